//! The one reader of /proc: processes (`/proc/PID/stat`: parent, CPU time, resident memory)
//! and ginit's own capabilities (`/proc/self/status`).
//!
//! One parser of /proc/PID/stat ([`parse_stat`]) serves everything that asks about processes:
//! monitoring (a program's process tree, summed), the notify sender check (a process's
//! parent), and the leftover sweep (ginit's descendants). Reading happens only when asked:
//! a `status` request, a monitored program's sample, a notify message, the end of a run.
//!
//! It reads and parses; it must not decide what a figure means (the verdicts on `memory_max`
//! and `cpu_max` are the supervisor's).

use crate::machine::Sample;
use std::time::Duration;

use super::sys;

/// One process as /proc/PID/stat shows it: the fields ginit uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pid: i32,
    ppid: i32,
    /// utime + stime, in clock ticks.
    ticks: u64,
    /// Resident pages.
    rss_pages: u64,
}

/// A snapshot of every process.
pub struct Table {
    procs: Vec<Stat>,
    page_size: u64,
    ticks_per_sec: u64,
}

impl Table {
    /// Reads /proc (empty when it is not mounted). A process that vanishes mid-read is
    /// skipped.
    pub fn scan() -> Table {
        let mut procs = Vec::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
                    continue;
                };
                if let Some(p) = read_stat(pid).and_then(|text| parse_stat(pid, &text)) {
                    procs.push(p);
                }
            }
        }
        Table {
            procs,
            page_size: sys::page_size(),
            ticks_per_sec: sys::clock_ticks(),
        }
    }

    /// CPU time and resident memory of `root` and its descendants; None when `root` is not
    /// there.
    pub fn tree(&self, root: i32) -> Option<Sample> {
        let first = self.procs.iter().position(|p| p.pid == root)?;
        let members = std::iter::once(first).chain(self.walk(root));
        // Saturating: the figures come from a file, and a sum that overflows must not panic
        // PID 1 (found by the proc_stat fuzz target).
        let (ticks, pages) = members
            .filter_map(|i| self.procs.get(i))
            .fold((0u64, 0u64), |(t, r), p| {
                (t.saturating_add(p.ticks), r.saturating_add(p.rss_pages))
            });
        Some(Sample {
            cpu: Duration::from_secs_f64(ticks as f64 / self.ticks_per_sec as f64),
            rss_bytes: pages.saturating_mul(self.page_size),
        })
    }

    /// The pids of every descendant of `root` (not `root` itself, which need not be listed).
    pub fn descendants(&self, root: i32) -> Vec<i32> {
        self.walk(root)
            .into_iter()
            .filter_map(|i| self.procs.get(i).map(|p| p.pid))
            .collect()
    }

    /// Indices of `root`'s descendants, breadth first. Each process once and never `root`:
    /// a pid reused while /proc was read could otherwise close a loop and grow the walk
    /// without end.
    fn walk(&self, root: i32) -> Vec<usize> {
        let mut found: Vec<usize> = Vec::new();
        let mut parent = root;
        let mut next = 0;
        loop {
            for (i, p) in self.procs.iter().enumerate() {
                if p.ppid == parent && p.pid != root && !found.contains(&i) {
                    found.push(i);
                }
            }
            match found.get(next).and_then(|&i| self.procs.get(i)) {
                Some(p) => parent = p.pid,
                None => return found,
            }
            next += 1;
        }
    }
}

/// CPU time and resident memory of each pid's process tree (None: gone), from one scan of
/// /proc: what a usage sample (monitoring, `status`) and a metrics scrape read.
pub fn trees(pids: Vec<i32>) -> Vec<(i32, Option<Sample>)> {
    let table = Table::scan();
    pids.into_iter().map(|pid| (pid, table.tree(pid))).collect()
}

/// The text of /proc/PID/stat. Read as bytes, because the command name in it is whatever
/// the process chose (prctl PR_SET_NAME takes any bytes): a name that is not UTF-8 must not
/// hide the process, and its descendants, from monitoring, notify's sender check and the
/// leftover sweep. The fields after the name are ASCII, so a lossy conversion keeps them
/// intact.
pub fn read_stat(pid: i32) -> Option<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The fields of /proc/PID/stat (see proc(5)) from field 3 (state) on. The command name
/// before them may hold spaces and parentheses, so they are counted from the last `)`. The
/// one place that splits the line: [`parse_stat`] and [`parse_ppid`] both read through it.
fn fields(text: &str) -> Option<Vec<&str>> {
    let rest = text.get(text.rfind(')')? + 2..)?;
    Some(rest.split(' ').collect())
}

/// Field `n` (numbered from 1, as in proc(5)) of the fields [`fields`] returns.
fn field<T: std::str::FromStr>(f: &[&str], n: usize) -> Option<T> {
    f.get(n.checked_sub(3)?)?.parse().ok()
}

/// What ginit uses of one /proc/PID/stat line: ppid (field 4), utime and stime (14, 15),
/// rss (24).
pub fn parse_stat(pid: i32, text: &str) -> Option<Stat> {
    let f = fields(text)?;
    Some(Stat {
        pid,
        ppid: field(&f, 4)?,
        ticks: field::<u64>(&f, 14)?.saturating_add(field(&f, 15)?),
        rss_pages: field(&f, 24)?,
    })
}

/// The ppid field alone (a line cut short after it still gives it).
pub fn parse_ppid(text: &str) -> Option<i32> {
    field(&fields(text)?, 4)
}

/// The parent of `pid`, from /proc.
pub fn parent(pid: i32) -> Option<i32> {
    parse_ppid(&read_stat(pid)?)
}

/// ginit's effective capabilities (the `CapEff` bit mask of /proc/self/status), or None
/// when /proc is not there. A status without a readable `CapEff` line counts as no
/// capabilities.
pub fn effective_capabilities() -> Option<u64> {
    let bytes = std::fs::read("/proc/self/status").ok()?;
    Some(parse_cap_eff(&String::from_utf8_lossy(&bytes)).unwrap_or(0))
}

/// The `CapEff:` line of a /proc/PID/status text, in hexadecimal.
fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// The CPU quota of ginit's cgroup in CPUs (`200000 100000` is 2), or None without one: cgroup
/// v2's `cpu.max` of ginit's own cgroup (from /proc/self/cgroup) or of the root of the
/// cgroup file system (a container with its own cgroup namespace sees its cgroup there),
/// else cgroup v1's `cpu.cfs_quota_us` / `cpu.cfs_period_us`. Read at each start: a
/// container's quota may be changed while it runs (Kubernetes' in-place resize).
pub fn cpu_quota() -> Option<f64> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let own = read("/proc/self/cgroup")
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .filter(|p| p != "/");
    let v2 = own
        .and_then(|p| read(&format!("/sys/fs/cgroup{p}/cpu.max")))
        .or_else(|| read("/sys/fs/cgroup/cpu.max"));
    if let Some(text) = v2 {
        return parse_cpu_max(&text);
    }
    for dir in ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"] {
        if let (Some(q), Some(p)) = (
            read(&format!("{dir}/cpu.cfs_quota_us")),
            read(&format!("{dir}/cpu.cfs_period_us")),
        ) {
            return parse_cpu_max(&format!("{} {}", q.trim(), p.trim()));
        }
    }
    None
}

/// `QUOTA PERIOD` (cgroup v2's `cpu.max`, or v1's two files joined) in CPUs; `max` or a
/// negative quota (v1's -1) is no quota.
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut words = text.split_whitespace();
    let quota: f64 = words.next()?.parse().ok()?;
    let period: f64 = words.next().map_or(Some(100_000.0), |p| p.parse().ok())?;
    let cpus = quota / period;
    (quota > 0.0 && period > 0.0 && cpus.is_finite()).then_some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quotas_as_cgroups_write_them() {
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2.0));
        assert_eq!(parse_cpu_max("150000 100000"), Some(1.5));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("-1 100000"), None);
        assert_eq!(parse_cpu_max("50000 0"), None);
        assert_eq!(parse_cpu_max(""), None);
    }

    #[test]
    fn a_name_that_is_not_utf8_does_not_hide_a_process() {
        // This thread renames itself with bytes that are not UTF-8 (and a parenthesis), as
        // any program may (writing its comm is prctl PR_SET_NAME by another door); its
        // /proc/TID/stat must still give its fields.
        let got = std::thread::spawn(|| {
            let me = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
            let tid: i32 = me
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok())
                .expect("a thread id");
            std::fs::write("/proc/thread-self/comm", b"x\xff) S 1 \xfe").expect("rename");
            let stat = read_stat(tid).expect("the thread's stat");
            assert!(stat.contains("x\u{fffd}) S 1 \u{fffd}"), "{stat}");
            (parse_stat(tid, &stat).map(|p| p.ppid), parse_ppid(&stat))
        })
        .join()
        .unwrap();
        let ginit = std::os::unix::process::parent_id() as i32;
        assert_eq!(got, (Some(ginit), Some(ginit)));
    }

    #[test]
    fn stat_lines_with_odd_names() {
        let text = "42 (a b) c) S 7 42 42 0 -1 4194560 100 0 0 0 25 5 0 0 20 0 1 0 100 1000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(42, text),
            Some(Stat {
                pid: 42,
                ppid: 7,
                ticks: 30,
                rss_pages: 300
            })
        );
        assert_eq!(parse_ppid(text), Some(7));
        assert_eq!(parse_stat(1, "garbage"), None);
        assert_eq!(parse_ppid("garbage"), None);
        assert_eq!(parse_ppid("12 (sh) S 7 12 12 0"), Some(7));
        assert_eq!(parse_ppid("12 (a) b) (c) R 42 1"), Some(42));
        // Fields missing or not numbers: nothing, rather than a wrong field.
        assert_eq!(parse_stat(12, "12 (sh) S 7 12 12 0"), None);
        assert_eq!(parse_stat(1, "1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 5"), None);
        assert_eq!(parse_ppid("12 (sh)"), None);
    }

    fn p(pid: i32, ppid: i32, ticks: u64, rss_pages: u64) -> Stat {
        Stat {
            pid,
            ppid,
            ticks,
            rss_pages,
        }
    }

    #[test]
    fn trees_sum_their_descendants_only() {
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
            Some(Sample {
                cpu: Duration::from_secs(2),
                rss_bytes: 20 * 4096
            })
        );
        assert_eq!(t.tree(99), None);
        assert_eq!(t.descendants(10), [11, 12]);
        assert_eq!(t.descendants(1), [10, 20, 11, 12]);
        // The root need not be listed itself (ginit when /proc shows only its children).
        assert_eq!(t.descendants(11), [12]);
        assert!(t.descendants(12).is_empty());
    }

    #[test]
    fn a_loop_from_reused_pids_ends() {
        // 31 and 32 claim each other as parent (a pid reused mid-read), and 32 lists twice.
        let t = Table {
            procs: vec![
                p(30, 1, 1, 1),
                p(31, 32, 1, 1),
                p(32, 31, 1, 1),
                p(32, 30, 1, 1),
            ],
            page_size: 1,
            ticks_per_sec: 1,
        };
        assert_eq!(t.descendants(30), [32, 31, 32]);
        assert_eq!(t.descendants(31), [32]);
        assert_eq!(t.tree(31).map(|u| u.rss_bytes), Some(2));
    }

    #[test]
    fn ginit_is_its_own_childrens_parent_and_has_capabilities_or_none() {
        let me = std::process::id() as i32;
        assert_eq!(parent(me), Some(std::os::unix::process::parent_id() as i32));
        let table = Table::scan();
        assert!(table.tree(me).is_some_and(|u| u.rss_bytes > 0));
        assert!(effective_capabilities().is_some());
        assert_eq!(
            parse_cap_eff("Name:\tx\nCapEff:\t0000000001000000\nCapBnd:\tffff\n"),
            Some(1 << 24)
        );
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
        assert_eq!(parse_cap_eff("CapEff:\tzz\n"), None);
    }
}
