//! The verdicts on a program's resource use: CPU percent between two samples, and whether
//! `memory_max` / `cpu_max` are exceeded ([`Watch`], pure and unit-tested). This module imports
//! no other ginit module but the /proc reader's types it re-exports below.

use std::time::{Duration, Instant};

// Merge seam (issue 11): the /proc reader moved to `os::proc` (one parser of /proc/PID/stat);
// the event loop still names it `monitor::Table`. Remove once it imports `os::proc`.
pub use crate::os::proc::{Table, Usage};

/// CPU use in percent of one core between two samples.
pub fn cpu_percent(before: (Instant, Duration), after: (Instant, Duration)) -> Option<f64> {
    let wall = after.0.checked_duration_since(before.0)?.as_secs_f64();
    (wall > 0.0).then(|| after.1.saturating_sub(before.1).as_secs_f64() / wall * 100.0)
}

/// What a sample means for a program with `memory_max` / `cpu_max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// Resident memory above `memory_max`.
    MemoryOver { rss: u64, max: u64 },
    /// CPU above `cpu_max` for the whole `monitor_window`.
    CpuOver { percent: f64, max: f64 },
}

/// Per-instance memory of the CPU check: since when it has been over the limit.
#[derive(Clone, Copy, Debug, Default)]
pub struct Watch {
    over_since: Option<Instant>,
}

impl Watch {
    /// Judges one sample. A CPU verdict comes once per window of sustained excess.
    pub fn judge(
        &mut self,
        now: Instant,
        rss: u64,
        cpu: Option<f64>,
        memory_max: Option<u64>,
        cpu_max: Option<f64>,
        window: Duration,
    ) -> Option<Verdict> {
        if let Some(max) = memory_max
            && rss > max
        {
            return Some(Verdict::MemoryOver { rss, max });
        }
        let (Some(max), Some(percent)) = (cpu_max, cpu) else {
            return None;
        };
        if percent <= max {
            self.over_since = None;
            return None;
        }
        let since = *self.over_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= window {
            self.over_since = Some(now);
            return Some(Verdict::CpuOver { percent, max });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let mut w = Watch::default();
        assert_eq!(
            w.judge(t, 300, None, Some(200), None, s(30)),
            Some(Verdict::MemoryOver { rss: 300, max: 200 })
        );
        assert_eq!(
            w.judge(t, 100, Some(50.0), Some(200), Some(80.0), s(10)),
            None
        );
        // Over for less than the window: nothing; for the whole window: one verdict.
        assert_eq!(w.judge(t, 0, Some(90.0), None, Some(80.0), s(10)), None);
        assert_eq!(
            w.judge(t + s(5), 0, Some(95.0), None, Some(80.0), s(10)),
            None
        );
        assert_eq!(
            w.judge(t + s(10), 0, Some(99.0), None, Some(80.0), s(10)),
            Some(Verdict::CpuOver {
                percent: 99.0,
                max: 80.0
            })
        );
        assert_eq!(
            w.judge(t + s(11), 0, Some(99.0), None, Some(80.0), s(10)),
            None
        );
        // A dip resets the window.
        assert_eq!(
            w.judge(t + s(12), 0, Some(10.0), None, Some(80.0), s(10)),
            None
        );
        assert_eq!(
            w.judge(t + s(21), 0, Some(99.0), None, Some(80.0), s(10)),
            None
        );
        assert_eq!(cpu_percent((t, s(1)), (t + s(2), s(2))), Some(50.0));
    }
}
