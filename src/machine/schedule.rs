//! Scheduled programs (`schedule:` cron times in UTC, or `every:` an interval; SPEC 9): when
//! each run starts, and what happens around it.
//!
//! Rules:
//! - a scheduled program is a oneshot with one instance; once its dependencies are satisfied
//!   (it is "launched"), it waits for its first time instead of starting, and runs at each
//!   time after that with all of its usual keys (restart policy within a run, hooks, output);
//! - a run due while the previous one still goes (starting, running, retrying after a failure
//!   or stopping) is not started: the skip is logged, counted (`status`, metrics) and
//!   published (`run_skipped`), and the next time is taken as usual. Runs never overlap and
//!   never queue up;
//! - no run starts during a shutdown (the shutdown delay included), and the timetable then
//!   has no deadline, so it causes no wake-up;
//! - `ginit start NAME` runs one now (the timetable goes on); `ginit stop NAME` stops the run
//!   and pauses the timetable until the next `start`; `restart` runs one now;
//! - a scheduled program never holds `ginit ready` false: its runs are not what serves;
//! - `every: D` runs first D after it is launched, then at each multiple of D after that (a
//!   grid, so a slow run does not push the later ones back);
//! - cron times are wall-clock (UTC) minutes, so the deadline is taken from the wall clock
//!   the edge gives with [`Machine::set_clock`]: a deadline reached while the wall clock still
//!   says "too early" (it was set back, or monotonic time ran ahead) waits for the rest
//!   instead of running early.

use std::time::{Duration, Instant};

use log::{info, warn};

use crate::config::schedule::{Schedule, utc};
use crate::control::protocol::InstanceStatus;

use super::instance::Instance;
use super::programs::Program;
use super::shutdown::Phase;
use super::{Machine, What};

/// A scheduled program's next run and what was skipped.
#[derive(Clone, Debug, Default)]
pub(super) struct Timetable {
    /// The next run: when on the monotonic clock, and its UTC time in seconds since 1970.
    /// `None` until the program is launched, and while a stop request pauses it.
    pub next: Option<(Instant, i64)>,
    /// Runs skipped because the previous run was still going.
    pub skipped: u64,
}

/// How far before its wall-clock time a cron run may start (the monotonic clock and the wall
/// clock drift apart a little between two readings).
const EARLY: Duration = Duration::from_millis(500);

impl Machine {
    /// The wall clock at `now`, as the edge read it: milliseconds since 1970 (UTC). The edge
    /// gives it before each input; cron times are wall-clock times.
    pub fn set_clock(&mut self, now: Instant, unix_ms: i64) {
        self.wall = Some((now, unix_ms));
    }

    /// The wall clock at `now` in milliseconds since 1970, from the last reading.
    fn unix_ms(&self, now: Instant) -> i64 {
        let Some((at, ms)) = self.wall else {
            return 0;
        };
        let since = now.saturating_duration_since(at).as_millis();
        ms.saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }

    /// Takes program `p`'s next run after `after` (a time due just now, or `None`: from
    /// now).
    pub(super) fn arm(&mut self, p: usize, after: Option<(Instant, i64)>, now: Instant) {
        let unix_ms = self.unix_ms(now);
        let Some(program) = self.programs.get_mut(p) else {
            return;
        };
        let Some(schedule) = &program.spec.schedule else {
            return;
        };
        program.timetable.next = match schedule {
            Schedule::Every(d) => {
                let d = (*d).max(Duration::from_secs(1));
                // The grid from the time that was due (or from now), past `now`.
                let (from, from_unix) = after.unwrap_or((now, unix_ms / 1000));
                let behind = now.saturating_duration_since(from).as_nanos();
                let steps = (behind / d.as_nanos() + 1).min(u128::from(u32::MAX)) as u32;
                let ahead = d.saturating_mul(steps);
                Some((
                    from + ahead,
                    from_unix.saturating_add(ahead.as_secs() as i64),
                ))
            }
            Schedule::Cron(_, cron) => {
                let from = after.map_or(unix_ms / 1000, |(_, u)| u.max(unix_ms / 1000));
                cron.next_after(from).map(|next| {
                    let wait = next.saturating_mul(1000).saturating_sub(unix_ms).max(0);
                    (now + Duration::from_millis(wait as u64), next)
                })
            }
        };
    }

    /// The earliest run due of any scheduled program (none during a shutdown).
    pub(super) fn schedule_deadline(&self) -> Option<Instant> {
        if self.phase != Phase::Running {
            return None;
        }
        self.programs
            .iter()
            .filter_map(|p| p.timetable.next.map(|n| n.0))
            .min()
    }

    /// Starts the runs that are due, or skips those whose previous run still goes.
    pub(super) fn schedule_time(&mut self, now: Instant) {
        if self.phase != Phase::Running {
            return;
        }
        let unix_ms = self.unix_ms(now);
        for p in 0..self.programs.len() {
            let Some(program) = self.programs.get_mut(p) else {
                break;
            };
            let Some(due) = program.timetable.next.filter(|d| now >= d.0) else {
                continue;
            };
            let early_ms = due.1.saturating_mul(1000).saturating_sub(unix_ms);
            if matches!(program.spec.schedule, Some(Schedule::Cron(..)))
                && early_ms > EARLY.as_millis() as i64
            {
                // The wall clock says it is not time yet: wait for the rest.
                program.timetable.next =
                    Some((now + Duration::from_millis(early_ms as u64), due.1));
                continue;
            }
            let name = program.spec.name.clone();
            let when = utc(due.1);
            let going = program.instances.iter().find(|i| busy(i));
            if let Some(inst) = going {
                program.timetable.skipped += 1;
                let skipped = program.timetable.skipped;
                let pid = inst
                    .pid()
                    .map(|p| format!(" (pid {p})"))
                    .unwrap_or_default();
                warn!(
                    "{name}: the run due at {when} is skipped: the previous run{pid} is still \
                     going ({skipped} skipped so far)"
                );
                self.publish_program(&name, What::RunSkipped { due: when });
            } else {
                info!("{name}: starting the run due at {when}");
                self.each_instance(p, now, |inst, spec| inst.start(spec));
            }
            self.arm(p, Some(due), now);
        }
    }
}

impl Program {
    /// A scheduled program's timetable as `status` shows it (on its instance's row); the
    /// rest of the row is left at its defaults.
    pub(super) fn timetable_status(&self) -> InstanceStatus {
        let Some(schedule) = &self.spec.schedule else {
            return InstanceStatus::default();
        };
        InstanceStatus {
            schedule: Some(schedule.describe()),
            next_run: self.timetable.next.map(|n| utc(n.1)),
            skipped_runs: Some(self.timetable.skipped),
            ..InstanceStatus::default()
        }
    }
}

/// The previous run still goes: a process runs or stops, one is being made, or a failed run
/// waits to be retried.
fn busy(i: &Instance) -> bool {
    i.is_live() || matches!(i.state, super::instance::State::Backoff { .. })
}

#[cfg(test)]
mod tests {
    use super::super::Input;
    use super::super::testing::*;
    use crate::control::protocol::Request;
    use std::time::{Duration, Instant};

    fn secs(n: f64) -> Duration {
        Duration::from_secs_f64(n)
    }

    fn names(programs: &[&str]) -> Vec<String> {
        programs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_runs_on_its_grid_and_skips_while_a_run_goes() {
        let mut e = edge("programs:\n  web: {command: x}\n  job: {command: x, every: 1s}\n");
        let t = Instant::now();
        e.m.set_clock(t, 1_795_532_400_000);
        e.feed(Input::Begin, t);
        assert_eq!(e.names(), ["web"], "the first run is one interval away");
        assert_eq!(e.m.deadline(), Some(t + secs(1.0)));
        e.feed(Input::Time, t + secs(1.0));
        assert_eq!(e.names(), ["web", "job"]);
        // The run takes 2.5 s: the runs due at 2 s and 3 s are skipped, not queued.
        e.feed(Input::Time, t + secs(2.0));
        e.feed(Input::Time, t + secs(3.0));
        assert_eq!(e.names(), ["web", "job"]);
        e.reap(&[exit(e.pid("job"), 0)], true, t + secs(3.5));
        assert_eq!(
            e.m.deadline(),
            Some(t + secs(4.0)),
            "the grid, not 1 s after the end"
        );
        e.feed(Input::Time, t + secs(4.0));
        assert_eq!(e.names(), ["web", "job", "job"]);
        let skipped = e.published("run_skipped");
        assert_eq!(
            skipped,
            [
                "job RunSkipped { due: \"2026-11-24T15:00:02Z\" }",
                "job RunSkipped { due: \"2026-11-24T15:00:03Z\" }"
            ]
        );
        let job = &e.status(t + secs(4.0))[1];
        assert_eq!(job.schedule.as_deref(), Some("every 1s"));
        assert_eq!(job.skipped_runs, Some(2));
        assert_eq!(job.next_run.as_deref(), Some("2026-11-24T15:00:05Z"));
        assert_eq!(e.status(t)[0].schedule, None, "web is not scheduled");
        // A late wake-up does not make up for the runs it missed: the next grid point.
        e.reap(&[exit(e.pid("job"), 0)], true, t + secs(4.2));
        e.feed(Input::Time, t + secs(7.5));
        assert_eq!(e.names().len(), 4);
        assert_eq!(e.m.deadline(), Some(t + secs(8.0)));
    }

    #[test]
    fn cron_times_come_from_the_wall_clock() {
        let mut e = edge("programs:\n  job: {command: x, schedule: \"*/5 * * * *\"}\n");
        let t = Instant::now();
        // 2026-11-24T15:02:30Z: the next run is 15:05, two and a half minutes away.
        e.m.set_clock(t, 1_795_532_550_000);
        e.feed(Input::Begin, t);
        assert!(e.spawned.is_empty());
        assert_eq!(e.m.deadline(), Some(t + secs(150.0)));
        let status = e.full_status(t);
        let job = &status.instances[0];
        assert_eq!(job.schedule.as_deref(), Some("*/5 * * * * (UTC)"));
        assert_eq!(job.next_run.as_deref(), Some("2026-11-24T15:05:00Z"));
        assert!(
            status.ready,
            "a scheduled program never holds readiness back"
        );
        // The wall clock was set back 10 s meanwhile: the deadline waits for the rest.
        let at = t + secs(150.0);
        e.m.set_clock(at, 1_795_532_690_000);
        e.feed(Input::Time, at);
        assert!(e.spawned.is_empty());
        assert_eq!(e.m.deadline(), Some(at + secs(10.0)));
        e.feed(Input::Time, at + secs(10.0));
        assert_eq!(e.names(), ["job"]);
        e.reap(&[exit(e.pid("job"), 0)], true, at + secs(12.0));
        assert_eq!(e.status(at + secs(12.0))[0].state, "done");
        assert_eq!(
            e.status(at + secs(12.0))[0].next_run.as_deref(),
            Some("2026-11-24T15:10:00Z")
        );
    }

    #[test]
    fn start_runs_now_stop_pauses_and_shutdown_ends_the_runs() {
        let mut e = edge("programs:\n  job: {command: x, every: 1h}\n");
        let t = Instant::now();
        e.m.set_clock(t, 0);
        e.feed(Input::Begin, t);
        e.ask(
            Request::Start {
                programs: names(&["job"]),
            },
            t,
        );
        assert_eq!(e.names(), ["job"], "start runs one now");
        e.reap(&[exit(e.pid("job"), 0)], true, t + secs(1.0));
        assert_eq!(
            e.m.deadline(),
            Some(t + secs(3600.0)),
            "the timetable goes on"
        );
        e.ask(
            Request::Stop {
                programs: names(&["job"]),
            },
            t + secs(2.0),
        );
        assert_eq!(e.m.deadline(), None, "a stop pauses it");
        assert_eq!(e.status(t)[0].next_run, None);
        e.ask(
            Request::Start {
                programs: names(&["job"]),
            },
            t + secs(3.0),
        );
        assert_eq!(e.names(), ["job", "job"]);
        assert_eq!(e.m.deadline(), Some(t + secs(3603.0)));
        e.reap(&[exit(e.pid("job"), 0)], true, t + secs(4.0));
        e.feed(Input::Signal(libc::SIGTERM), t + secs(5.0));
        assert_eq!(e.m.schedule_deadline(), None, "no run during a shutdown");
        e.feed(Input::Time, t + secs(3603.0));
        assert_eq!(e.names().len(), 2);
    }

    #[test]
    fn a_failed_run_is_retried_within_its_run_and_the_next_time_still_comes() {
        let mut e = edge(
            "programs:\n  job:\n    command: x\n    every: 10s\n    max_restarts: 1\n    backoff: {initial: 1s}\n",
        );
        let t = Instant::now();
        e.m.set_clock(t, 0);
        e.feed(Input::Begin, t);
        e.feed(Input::Time, t + secs(10.0));
        e.reap(&[exit(e.pid("job"), 1)], true, t + secs(10.5));
        e.feed(Input::Time, t + secs(11.5));
        assert_eq!(e.names().len(), 2, "on-failure, as any oneshot");
        e.reap(&[exit(e.pid("job"), 1)], true, t + secs(12.0));
        assert_eq!(e.status(t + secs(12.0))[0].state, "failed");
        e.feed(Input::Time, t + secs(20.0));
        assert_eq!(
            e.names().len(),
            3,
            "a failed run does not end the timetable"
        );
    }
}
