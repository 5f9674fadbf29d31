//! ginit's pollable signal source: the signal mask and a `signalfd(2)`.
//!
//! ginit blocks every signal it may receive and reads them from a signalfd, so signals are
//! ordinary events of the poll loop: no handlers, no async-signal-safety puzzles, no lost
//! wake-ups. Blocked signals are queued even for the init of a PID namespace (the kernel only
//! drops signals an init has neither blocked nor handled), which is what lets PID 1 see them.
//!
//! Which signals are blocked comes from the one signal table, [`crate::config::signals`]
//! (this file was split from it: the names and kinds are pure data that validation and the
//! pure machines use too; the mask and the fd are the OS edge's). This module must not decide
//! what a signal means.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::config::signals::{is_untouched, nsig};

/// An empty signal set.
pub(crate) fn empty_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    }
}

/// The set ginit blocks and reads from its signalfd: every signal but the untouched ones.
fn handled_set() -> libc::sigset_t {
    let mut set = empty_set();
    for sig in 1..nsig() {
        if !is_untouched(sig) {
            // SAFETY: set is initialised; an invalid number only makes sigaddset fail.
            unsafe { libc::sigaddset(&mut set, sig) };
        }
    }
    set
}

/// The signalfd through which ginit receives every signal it handles or forwards.
pub struct SignalSource {
    fd: OwnedFd,
}

impl SignalSource {
    /// Blocks the handled set and opens a non-blocking, close-on-exec signalfd for it.
    /// Call before the first fork, so no signal can arrive unseen.
    pub fn install() -> io::Result<Self> {
        Self::open(libc::SIG_SETMASK, handled_set())
    }

    /// Blocks only `signals` and opens a signalfd for them: for a client that must end
    /// cleanly on Ctrl-C (or a closed pipe) rather than be killed.
    pub fn only(signals: &[i32]) -> io::Result<Self> {
        let mut set = empty_set();
        for &sig in signals {
            // SAFETY: set is initialised; an invalid number only makes sigaddset fail.
            unsafe { libc::sigaddset(&mut set, sig) };
        }
        Self::open(libc::SIG_BLOCK, set)
    }

    fn open(how: libc::c_int, set: libc::sigset_t) -> io::Result<Self> {
        // SAFETY: set is a valid sigset; the old mask is not wanted.
        let rc = unsafe { libc::sigprocmask(how, &set, std::ptr::null_mut()) };
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
            for info in buf.iter().take(records) {
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
