//! The one signal table: names, numbers, and which signals ginit leaves alone. Pure data
//! (libc's numbers for this architecture), so validation, the pure state machines and the OS
//! edge all read the same table; the signalfd that receives signals is in `os/signals.rs`.
//!
//! The table has three kinds of signal:
//! - never touched: SIGKILL and SIGSTOP (cannot be caught) and the synchronous fault signals
//!   (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS), which must keep their default action so
//!   a real fault in ginit is not turned into a hang;
//! - handled: SIGCHLD, which means "reap";
//! - forwarded (single-program mode): every other signal, real-time ones included.
//!
//! This module must not decide what a signal means for a program, and imports nothing.

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
