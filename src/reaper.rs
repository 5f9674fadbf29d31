//! Reaping and clearing: collects every exited child (supervised or adopted orphan) and signals
//! the processes left over at the end of a run.
//!
//! It knows nothing of programs or policies. It turns wait statuses into [`Exit`]s and says
//! whether any child remains; callers decide what that means. /proc/PID/stat is read through
//! [`crate::monitor::read_stat`], the one reader of it.
#![allow(unsafe_code)]

use std::io;

use crate::signals;

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
        let mut status = 0;
        // SAFETY: status is a valid out-pointer; WNOHANG never blocks.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match pid {
            0 => return true,
            p if p > 0 => out.push(Exit { pid: p, status }),
            _ => match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                // ECHILD: nothing left to wait for.
                _ => return false,
            },
        }
    }
}

/// The parent of `pid`, from /proc.
pub fn parent(pid: i32) -> Option<i32> {
    parse_ppid(&crate::monitor::read_stat(pid)?)
}

/// Makes ginit the child subreaper of its descendants (prctl PR_SET_CHILD_SUBREAPER), so
/// orphans come back to it when it is not PID 1.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The pids of every descendant of `root`, read from /proc (empty if /proc is not there).
pub fn descendants(root: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut parents = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Some(stat) = crate::monitor::read_stat(pid) else {
            continue;
        };
        if let Some(ppid) = parse_ppid(&stat) {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The ppid field of /proc/PID/stat; the command name may hold spaces and parentheses, so
/// fields are counted from the last ')'.
pub(crate) fn parse_ppid(stat: &str) -> Option<i32> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Sends `sig` to every process ginit is responsible for at the end of a run: as PID 1 every
/// other process of the namespace, otherwise its own descendants. A stop signal is followed
/// by SIGCONT, so a stopped process acts on it now rather than at the SIGKILL. Returns how
/// many were signalled (for PID 1: 1 if any existed, since kill(-1) does not count).
pub fn signal_leftovers(sig: i32) -> usize {
    let wake = sig != libc::SIGKILL && sig != libc::SIGCONT;
    let me = std::process::id() as i32;
    if me == 1 {
        let sent = signals::kill(-1, sig).is_ok();
        if sent && wake {
            let _ = signals::kill(-1, libc::SIGCONT);
        }
        return usize::from(sent);
    }
    descendants(me)
        .into_iter()
        .filter(|&pid| {
            let sent = signals::kill(pid, sig).is_ok();
            if sent && wake {
                let _ = signals::kill(pid, libc::SIGCONT);
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

    #[test]
    fn ppid_parsing() {
        assert_eq!(parse_ppid("12 (sh) S 7 12 12 0"), Some(7));
        assert_eq!(parse_ppid("12 (a) b) (c) R 42 1"), Some(42));
        assert_eq!(parse_ppid("garbage"), None);
    }
}
