//! Resource use of a program's process tree, read from /proc: CPU time and resident memory.
//!
//! Sampling happens only when asked (a `status` request, or programs with `memory_max` /
//! `cpu_max`): one pass over /proc/[pid]/stat builds the parent links, then each tree is
//! summed. What a sample means (`memory_max`, `cpu_max`) is the machine's
//! (`machine/monitor.rs`). This module imports no other ginit module.
#![allow(unsafe_code)]

use std::time::Duration;

/// One process as /proc/PID/stat shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Proc {
    pid: i32,
    ppid: i32,
    /// utime + stime, in clock ticks.
    ticks: u64,
    /// Resident pages.
    rss_pages: u64,
}

/// A snapshot of every process.
pub struct Table {
    procs: Vec<Proc>,
    page_size: u64,
    ticks_per_sec: u64,
}

/// CPU time and resident memory of a process and all its descendants.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub cpu: Duration,
    pub rss_bytes: u64,
}

impl Table {
    /// Reads /proc. A process that vanishes mid-read is skipped.
    pub fn scan() -> Table {
        let mut procs = Vec::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
                    continue;
                };
                if let Some(text) = read_stat(pid)
                    && let Some(p) = parse_stat(pid, &text)
                {
                    procs.push(p);
                }
            }
        }
        // SAFETY: sysconf has no memory effects.
        let (page, hz) = unsafe {
            (
                libc::sysconf(libc::_SC_PAGESIZE),
                libc::sysconf(libc::_SC_CLK_TCK),
            )
        };
        Table {
            procs,
            page_size: u64::try_from(page).unwrap_or(4096).max(1),
            ticks_per_sec: u64::try_from(hz).unwrap_or(100).max(1),
        }
    }

    /// Usage of `root` and its descendants; None when `root` is not there.
    pub fn tree(&self, root: i32) -> Option<Usage> {
        let first = self.procs.iter().find(|p| p.pid == root)?;
        let mut members = vec![*first];
        let mut i = 0;
        while i < members.len() {
            let parent = members[i].pid;
            // A pid reused while /proc was read could close a loop: each process once.
            for p in &self.procs {
                if p.ppid == parent && !members.iter().any(|m| m.pid == p.pid) {
                    members.push(*p);
                }
            }
            i += 1;
        }
        // Saturating: the figures come from a file, and a sum that overflows must not panic
        // PID 1 (found by the proc_stat fuzz target).
        let ticks = members.iter().fold(0u64, |a, p| a.saturating_add(p.ticks));
        let pages = members
            .iter()
            .fold(0u64, |a, p| a.saturating_add(p.rss_pages));
        Some(Usage {
            cpu: Duration::from_secs_f64(ticks as f64 / self.ticks_per_sec as f64),
            rss_bytes: pages.saturating_mul(self.page_size),
        })
    }
}

/// The text of /proc/PID/stat: the one reader of it in ginit. Read as bytes, because the
/// command name in it is whatever the process chose (prctl PR_SET_NAME takes any bytes): a
/// name that is not UTF-8 must not hide the process, and its descendants, from monitoring,
/// notify's sender check and the leftover sweep. The fields after the name are ASCII, so a
/// lossy conversion keeps them intact.
pub fn read_stat(pid: i32) -> Option<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Fields of /proc/PID/stat after the command name, which may hold spaces and parentheses.
pub(crate) fn parse_stat(pid: i32, text: &str) -> Option<Proc> {
    let rest = text.get(text.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state): ppid is field 4, utime 14, stime 15, rss 24.
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(Proc {
        pid,
        ppid: f.get(1)?.parse().ok()?,
        ticks: field(14)?.saturating_add(field(15)?),
        rss_pages: field(24)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_is_not_utf8_does_not_hide_a_process() {
        // This thread renames itself with bytes that are not UTF-8 (and a parenthesis), as
        // any program may; /proc/TID/stat must still give its fields.
        let tid = std::thread::spawn(|| {
            let name = b"x\xff) S 1 \xfe\0";
            // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
            unsafe {
                libc::prctl(libc::PR_SET_NAME, name.as_ptr());
                let tid = libc::gettid();
                let stat = read_stat(tid).expect("the thread's stat");
                parse_stat(tid, &stat).map(|p| p.ppid)
            }
        })
        .join()
        .unwrap();
        assert_eq!(tid, Some(std::os::unix::process::parent_id() as i32));
    }

    #[test]
    fn stat_lines_with_odd_names() {
        let text = "42 (a b) c) S 7 42 42 0 -1 4194560 100 0 0 0 25 5 0 0 20 0 1 0 100 1000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(42, text),
            Some(Proc {
                pid: 42,
                ppid: 7,
                ticks: 30,
                rss_pages: 300
            })
        );
        assert_eq!(parse_stat(1, "garbage"), None);
    }

    #[test]
    fn trees_sum_their_descendants_only() {
        let p = |pid, ppid, ticks, rss_pages| Proc {
            pid,
            ppid,
            ticks,
            rss_pages,
        };
        let t = Table {
            procs: vec![
                p(10, 1, 100, 10),
                p(11, 10, 50, 5),
                p(12, 11, 50, 5),
                p(20, 1, 999, 999),
            ],
            page_size: 4096,
            ticks_per_sec: 100,
        };
        assert_eq!(
            t.tree(10),
            Some(Usage {
                cpu: Duration::from_secs(2),
                rss_bytes: 20 * 4096
            })
        );
        assert_eq!(t.tree(99), None);
    }
}
