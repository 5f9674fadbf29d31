//! Reaping and clearing: collects every exited child (supervised or adopted orphan) and signals
//! the processes left over at the end of a run.
//!
//! It knows nothing of programs or policies. It turns wait statuses into [`Exit`]s and says
//! whether any child remains; callers decide what that means. Who descends from whom comes
//! from [`super::proc`], the one reader of /proc; the system calls from [`super::sys`].

use super::{proc, sys};
use crate::config::signals;

/// How one process ended, from its raw wait status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    pub pid: i32,
    pub status: i32,
}

impl Exit {
    /// The signal that killed it, if any.
    pub fn signal(&self) -> Option<i32> {
        libc::WIFSIGNALED(self.status).then(|| libc::WTERMSIG(self.status))
    }

    /// The shell convention: the exit status, or 128+N when killed by signal N.
    pub fn code(&self) -> i32 {
        match self.signal() {
            Some(sig) => 128 + sig,
            None => libc::WEXITSTATUS(self.status),
        }
    }

    /// "exited with status 3" / "was killed by SIGKILL".
    pub fn describe(&self) -> String {
        match self.signal() {
            Some(sig) => format!("was killed by {}", signals::name(sig)),
            None => format!("exited with status {}", self.code()),
        }
    }
}

/// Reaps every child that has exited, without blocking. Returns whether children remain.
pub fn reap(out: &mut Vec<Exit>) -> bool {
    loop {
        match sys::wait_any() {
            Ok(Some((pid, status))) => out.push(Exit { pid, status }),
            Ok(None) => return true,
            // ECHILD: nothing left to wait for.
            Err(_) => return false,
        }
    }
}

/// Makes ginit the child subreaper of its descendants (prctl PR_SET_CHILD_SUBREAPER), so
/// orphans come back to it when it is not PID 1.
pub fn become_subreaper() -> std::io::Result<()> {
    sys::set_child_subreaper()
}

/// Sends `sig` to every process ginit is responsible for at the end of a run: as PID 1 every
/// other process of the namespace, otherwise its own descendants. A stop signal is followed
/// by SIGCONT, so a stopped process acts on it now rather than at the SIGKILL. Returns how
/// many were signalled (for PID 1: 1 if any existed, since kill(-1) does not count).
pub fn signal_leftovers(sig: i32) -> usize {
    let wake = sig != libc::SIGKILL && sig != libc::SIGCONT;
    let me = std::process::id() as i32;
    if me == 1 {
        let sent = sys::kill(-1, sig).is_ok();
        if sent && wake {
            let _ = sys::kill(-1, libc::SIGCONT);
        }
        return usize::from(sent);
    }
    proc::Table::scan()
        .descendants(me)
        .into_iter()
        .filter(|&pid| {
            let sent = sys::kill(pid, sig).is_ok();
            if sent && wake {
                let _ = sys::kill(pid, libc::SIGCONT);
            }
            sent
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        // Wait statuses as the kernel encodes them: exit code in bits 8-15, signal in 0-6.
        let exited = Exit {
            pid: 1,
            status: 3 << 8,
        };
        assert_eq!(exited.code(), 3);
        assert_eq!(exited.signal(), None);
        assert_eq!(exited.describe(), "exited with status 3");
        let killed = Exit {
            pid: 1,
            status: libc::SIGKILL,
        };
        assert_eq!(killed.code(), 137);
        assert_eq!(killed.describe(), "was killed by SIGKILL");
        let cored = Exit {
            pid: 1,
            status: libc::SIGSEGV | 0x80,
        };
        assert_eq!(cored.code(), 139);
    }
}
