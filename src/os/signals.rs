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

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::sys;
use crate::config::signals::{is_untouched, nsig};

/// The set ginit blocks and reads from its signalfd: every signal but the untouched ones.
fn handled_set() -> libc::sigset_t {
    let mut set = sys::sigset_empty();
    for sig in (1..nsig()).filter(|&sig| !is_untouched(sig)) {
        sys::sigset_add(&mut set, sig);
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
        let mut set = sys::sigset_empty();
        for &sig in signals {
            sys::sigset_add(&mut set, sig);
        }
        Self::open(libc::SIG_BLOCK, set)
    }

    fn open(how: libc::c_int, set: libc::sigset_t) -> io::Result<Self> {
        let fd = sys::signalfd(how, &set)?;
        Ok(SignalSource { fd })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads every pending signal into `out`, in arrival order.
    pub fn drain(&self, out: &mut Vec<i32>) {
        sys::read_signals(self.fd.as_raw_fd(), out);
    }
}
