//! `memory_max` and `cpu_max`: when usage is sampled and what a sample means.
//!
//! While some program has `memory_max` or `cpu_max` (and ginit is not shutting down), the
//! process tree of each of their running instances is sampled every [`SAMPLE_INTERVAL`]
//! ([`Effect::SampleUsage`]; the edge reads /proc). Resident memory over `memory_max` reloads
//! the instance by its program's strategy, as a counted restart; CPU over `cpu_max` for a
//! whole `monitor_window` is a warning, or such a reload with `cpu_action: restart`. With no
//! monitored program nothing is sampled and nothing wakes ginit up. What is measured of a
//! process (its last sample, its [`Watch`]) lives with it in its instance.

use std::time::{Duration, Instant};

use log::warn;

use crate::config::CpuAction;
use crate::config::units::format_duration;

use super::{Effect, Machine, Sampling, What};

/// How often programs with `memory_max` or `cpu_max` are sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// CPU time and resident memory of a process and all its descendants.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    pub cpu: Duration,
    pub rss_bytes: u64,
}

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

/// Per-process memory of the CPU check: since when it has been over the limit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
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

impl Machine {
    /// Sampling runs only while some program has `memory_max` or `cpu_max`.
    pub(super) fn schedule_sampling(&mut self, now: Instant) {
        let wanted = !self.is_shutting_down() && self.monitored;
        self.next_sample = match (wanted, self.next_sample) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => Some(now + SAMPLE_INTERVAL),
        };
    }

    /// The sample is due: the trees of the monitored programs' running instances.
    pub(super) fn sample(&mut self) {
        self.next_sample = None;
        let pids: Vec<i32> = self
            .programs
            .iter()
            .filter(|p| p.spec.is_monitored())
            .flat_map(|p| p.instances.iter())
            .filter(|i| i.is_starting() || i.is_ready())
            .filter_map(|i| i.pid())
            .collect();
        if !pids.is_empty() {
            self.out.push(Effect::SampleUsage {
                pids,
                sampling: Sampling::Monitor,
            });
        }
    }

    /// Judges each sampled tree and acts on `memory_max` / `cpu_max`.
    pub(super) fn on_monitor_sample(&mut self, usage: &[(i32, Option<Sample>)], now: Instant) {
        for &(pid, sample) in usage {
            let Some(sample) = sample else {
                continue;
            };
            let Some((p, i)) = self.find_pid(pid) else {
                continue;
            };
            let Some((spec, inst)) = self.instance_mut(p, i) else {
                continue;
            };
            let Some(process) = inst.process_mut() else {
                continue;
            };
            let cpu = process
                .monitor_cpu
                .replace((now, sample.cpu))
                .and_then(|before| cpu_percent(before, (now, sample.cpu)));
            let verdict = process.watch.judge(
                now,
                sample.rss_bytes,
                cpu,
                spec.memory_max,
                spec.cpu_max,
                spec.monitor_window,
            );
            let (resource, reason) = match verdict {
                None => continue,
                Some(Verdict::MemoryOver { rss, max }) => {
                    let msg = format!(
                        "uses {} KiB of memory, over its memory_max of {} KiB",
                        rss / 1024,
                        max / 1024
                    );
                    ("memory", msg)
                }
                Some(Verdict::CpuOver { percent, max }) => {
                    let window = format_duration(spec.monitor_window);
                    let msg = format!(
                        "has used {percent:.0}% CPU for {window}, over its cpu_max of {max:.0}%"
                    );
                    if spec.cpu_action != CpuAction::Restart {
                        warn!("{} (pid {pid}) {msg}", spec.name);
                        let (name, index) = (spec.name.clone(), inst.index);
                        let why = format!("{msg} (a warning only: cpu_action is warn)");
                        self.publish(
                            &name,
                            index,
                            What::OverLimit {
                                resource: "cpu",
                                why,
                            },
                        );
                        continue;
                    }
                    ("cpu", msg)
                }
            };
            let (name, index) = (spec.name.clone(), inst.index);
            let why = reason.clone();
            self.publish(&name, index, What::OverLimit { resource, why });
            self.reload_verdict(pid, &reason, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Input;
    use super::super::testing::*;
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

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn nothing_is_sampled_without_a_monitored_program() {
        let mut e = edge("programs:\n  a: {command: x}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        assert_eq!(e.m.deadline(), None, "an idle ginit never wakes up");
        e.feed(Input::Time, t + secs(5));
        assert!(e.sampled.is_empty());
    }

    #[test]
    fn memory_over_its_max_reloads_by_the_strategy() {
        let mut e =
            edge("programs:\n  hog: {command: x, memory_max: 1MiB}\n  calm: {command: x}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let hog = e.pid("hog");
        assert_eq!(e.m.deadline(), Some(t + secs(1)));
        e.usage.push((
            hog,
            Sample {
                cpu: secs(0),
                rss_bytes: 512 << 10,
            },
        ));
        e.feed(Input::Time, t + secs(1));
        assert_eq!(
            e.sampled,
            [vec![hog]],
            "only the monitored program's instances"
        );
        assert!(e.signals.is_empty(), "under its max");
        assert_eq!(e.m.deadline(), Some(t + secs(2)));
        e.usage[0].1.rss_bytes = 2 << 20;
        e.feed(Input::Time, t + secs(2));
        assert_eq!(e.signals, [(hog, libc::SIGTERM), (hog, libc::SIGCONT)]);
        assert_eq!(e.status(t)[0].restarts, 1);
    }

    #[test]
    fn cpu_over_its_max_for_the_window_warns_or_restarts() {
        for (action, reloads) in [("warn", false), ("restart", true)] {
            let mut e = edge(&format!(
                "programs:\n  spin: {{command: x, cpu_max: 50%, monitor_window: 2s, cpu_action: {action}}}\n"
            ));
            let t = Instant::now();
            e.feed(Input::Begin, t);
            let spin = e.pid("spin");
            // A full core from the start: the first sample has nothing to compare with.
            for n in 1..=4 {
                e.usage = vec![(
                    spin,
                    Sample {
                        cpu: secs(n),
                        rss_bytes: 0,
                    },
                )];
                e.feed(Input::Time, t + secs(n));
            }
            // Over since 2s, for the whole window at 4s.
            assert_eq!(!e.signals.is_empty(), reloads, "{action}");
        }
    }

    #[test]
    fn sampling_stops_for_a_shutdown() {
        let mut e = edge("programs:\n  hog: {command: x, memory_max: 1MiB}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        e.feed(Input::Signal(libc::SIGTERM), t);
        e.feed(Input::Time, t + secs(1));
        assert!(e.sampled.is_empty());
    }
}
