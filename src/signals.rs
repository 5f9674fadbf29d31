//! The one signal table and ginit's pollable signal source.
//!
//! ginit blocks every signal it may receive and reads them from a `signalfd(2)`, so signals are
//! ordinary events of the poll loop: no handlers, no async-signal-safety puzzles, no lost
//! wake-ups. Blocked signals are queued even for the init of a PID namespace (the kernel only
//! drops signals an init has neither blocked nor handled), which is what lets PID 1 see them.
//!
//! The table has three kinds of signal:
//! - never touched: SIGKILL and SIGSTOP (cannot be caught) and the synchronous fault signals
//!   (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS), which must keep their default action so
//!   a real fault in ginit is not turned into a hang;
//! - handled: SIGCHLD, which means "reap";
//! - forwarded (single-program mode): every other signal, real-time ones included.
//!
//! This module owns the mask and names; it must not decide what a signal means for a program.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Signals ginit leaves at their default action and never blocks.
const UNTOUCHED: [i32; 8] = [
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// One past the highest signal number (`NSIG`).
pub fn nsig() -> i32 {
    libc::SIGRTMAX() + 1
}

/// True for signals that are never blocked, caught or forwarded.
pub fn is_untouched(sig: i32) -> bool {
    UNTOUCHED.contains(&sig)
}

/// True for signals forwarded to the child in single-program mode.
pub fn is_forwarded(sig: i32) -> bool {
    sig > 0 && sig < nsig() && sig != libc::SIGCHLD && !is_untouched(sig)
}

const NAMES: [(i32, &str); 31] = [
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGTRAP, "SIGTRAP"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGFPE, "SIGFPE"),
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGPIPE, "SIGPIPE"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGSTKFLT, "SIGSTKFLT"),
    (libc::SIGCHLD, "SIGCHLD"),
    (libc::SIGCONT, "SIGCONT"),
    (libc::SIGSTOP, "SIGSTOP"),
    (libc::SIGTSTP, "SIGTSTP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
    (libc::SIGURG, "SIGURG"),
    (libc::SIGXCPU, "SIGXCPU"),
    (libc::SIGXFSZ, "SIGXFSZ"),
    (libc::SIGVTALRM, "SIGVTALRM"),
    (libc::SIGPROF, "SIGPROF"),
    (libc::SIGWINCH, "SIGWINCH"),
    (libc::SIGIO, "SIGIO"),
    (libc::SIGPWR, "SIGPWR"),
    (libc::SIGSYS, "SIGSYS"),
];

/// The conventional name of a signal: `SIGTERM`, `SIGRTMIN+2`, or the number.
pub fn name(sig: i32) -> String {
    if let Some((_, n)) = NAMES.iter().find(|(s, _)| *s == sig) {
        return (*n).to_string();
    }
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if sig == min {
        "SIGRTMIN".to_string()
    } else if sig > min && sig <= max {
        format!("SIGRTMIN+{}", sig - min)
    } else {
        sig.to_string()
    }
}

/// Parses `SIGTERM`, `TERM`, `sigterm`, `SIGRTMIN+3`, `RTMAX-1` or a number.
pub fn parse(text: &str) -> Option<i32> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return (n > 0 && n < nsig()).then_some(n);
    }
    let upper = t.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((sig, _)) = NAMES.iter().find(|(_, n)| &n[3..] == bare) {
        return Some(*sig);
    }
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let rt = |rest: &str, base: i32, sign: i32| -> Option<i32> {
        let off = if rest.is_empty() {
            0
        } else {
            rest.get(1..)?.parse::<i32>().ok()?
        };
        if !rest.is_empty() && !rest.starts_with(if sign > 0 { '+' } else { '-' }) {
            return None;
        }
        let sig = base + sign * off;
        (min..=max).contains(&sig).then_some(sig)
    };
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        return rt(rest, min, 1);
    }
    if let Some(rest) = bare.strip_prefix("RTMAX") {
        return rt(rest, max, -1);
    }
    None
}

fn sigset_empty() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    }
}

/// The set ginit blocks and reads from its signalfd: every signal but the untouched ones.
fn handled_set() -> libc::sigset_t {
    let mut set = sigset_empty();
    for sig in 1..nsig() {
        if !is_untouched(sig) {
            // SAFETY: set is initialised; an invalid number only makes sigaddset fail.
            unsafe { libc::sigaddset(&mut set, sig) };
        }
    }
    set
}

/// Sends `sig` to `pid` (a negative pid names a process group, -1 everything allowed).
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill has no memory effects.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The signalfd through which ginit receives every signal it handles or forwards.
pub struct SignalSource {
    fd: OwnedFd,
}

impl SignalSource {
    /// Blocks the handled set and opens a non-blocking, close-on-exec signalfd for it.
    /// Call before the first fork, so no signal can arrive unseen.
    pub fn install() -> io::Result<Self> {
        let set = handled_set();
        // SAFETY: set is a valid sigset; the old mask is not wanted.
        let rc = unsafe { libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: -1 asks for a new fd; set is valid.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by signalfd and is owned by nobody else.
        Ok(SignalSource {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads every pending signal into `out`, in arrival order.
    pub fn drain(&self, out: &mut Vec<i32>) {
        const BATCH: usize = 16;
        let mut buf = [MaybeUninit::<libc::signalfd_siginfo>::uninit(); BATCH];
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            // SAFETY: buf is BATCH siginfo records long; the kernel writes whole records.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    BATCH * size,
                )
            };
            if n <= 0 {
                // EAGAIN: drained. EINTR cannot happen with every signal blocked; any other
                // error would repeat forever, so stop here rather than spin.
                return;
            }
            let records = n as usize / size;
            for info in &buf[..records] {
                // SAFETY: the kernel filled the first `records` entries.
                let info = unsafe { info.assume_init_ref() };
                out.push(info.ssi_signo as i32);
            }
            if records < BATCH {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for sig in 1..nsig() {
            let n = name(sig);
            assert_eq!(parse(&n), Some(sig), "{n}");
        }
    }

    #[test]
    fn parse_forms() {
        assert_eq!(parse("TERM"), Some(libc::SIGTERM));
        assert_eq!(parse("sigterm"), Some(libc::SIGTERM));
        assert_eq!(parse("9"), Some(libc::SIGKILL));
        assert_eq!(parse("RTMIN+2"), Some(libc::SIGRTMIN() + 2));
        assert_eq!(parse("SIGRTMAX-1"), Some(libc::SIGRTMAX() - 1));
        assert_eq!(parse("SIGRTMIN-1"), None);
        assert_eq!(parse("SIGNOPE"), None);
        assert_eq!(parse("0"), None);
        assert_eq!(parse("65"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn table() {
        assert!(!is_forwarded(libc::SIGCHLD));
        assert!(!is_forwarded(libc::SIGKILL));
        assert!(!is_forwarded(libc::SIGSEGV));
        assert!(is_forwarded(libc::SIGTERM));
        assert!(is_forwarded(libc::SIGPIPE));
        assert!(is_forwarded(libc::SIGWINCH));
        assert!(is_forwarded(libc::SIGRTMAX()));
    }
}
