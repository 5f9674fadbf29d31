//! Reaping and clearing: collects every exited child (supervised or adopted orphan) and signals
//! the processes left over at the end of a run.
//!
//! It knows nothing of programs or policies. It turns wait statuses into [`Exited`]s and says
//! whether any child remains; callers decide what that means. Who descends from whom comes
//! from [`super::proc`], the one reader of /proc; the system calls from [`super::sys`].

use super::{proc, sys};
use crate::machine::Exited;

/// How a process ended, from its raw wait status (wait(2)): the exit status, or 128+N and
/// the signal when signal N killed it.
pub fn exited(pid: i32, status: i32) -> Exited {
    let signal = libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status));
    Exited {
        pid,
        code: signal.map_or_else(|| libc::WEXITSTATUS(status), |sig| 128 + sig),
        signal,
    }
}

/// Reaps every child that has exited, without blocking. Returns whether children remain.
pub fn reap(out: &mut Vec<Exited>) -> bool {
    loop {
        match sys::wait_any() {
            Ok(Some((pid, status))) => out.push(exited(pid, status)),
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
        let done = exited(1, 3 << 8);
        assert_eq!((done.code, done.signal), (3, None));
        assert_eq!(done.describe(), "exited with status 3");
        let killed = exited(1, libc::SIGKILL);
        assert_eq!((killed.code, killed.signal), (137, Some(libc::SIGKILL)));
        assert_eq!(killed.describe(), "was killed by SIGKILL");
        assert_eq!(exited(1, libc::SIGSEGV | 0x80).code, 139, "a core dump");
    }
}
