//! Readiness and health checks and the sd_notify watchdog: when each attempt starts, how long
//! it may take, what its result means. This is the file to read for "what does ginit do when a
//! health check fails".
//!
//! Each instance owns its check state, in its [`State`]: the readiness check's attempts while
//! it starts, the health check's and the watchdog's once it is ready. The machine only decides;
//! an attempt is an [`Effect::StartCheck`] (a tcp connect, an http GET, an exec'd command)
//! that the edge carries out and answers with [`Input::CheckResult`](super::Input).
//!
//! - Readiness (`ready: {tcp | http | exec}`): an attempt at once, then [`READY_RETRY`] after
//!   each failed one, each bounded by [`READY_ATTEMPT`], until one passes (the instance is then
//!   ready) or `ready.timeout` runs out (the instance is killed, see `instance.rs`). `notify`
//!   and `delay` have no attempts.
//! - Health (`health:`): once ready, an attempt every `interval` after the previous ended, each
//!   bounded by `timeout`. A pass resets the count; `failures` failed attempts in a row reload
//!   the instance by its program's strategy, as a counted restart (`reload.rs`,
//!   [`Machine::reload_verdict`]); the count starts over.
//! - Watchdog (`watchdog:`): once ready, WATCHDOG=1 is due within the limit after the previous
//!   one (or after ready); a missed one reloads the instance the same way.
//! - Health checks pause while a `replace` reload of their program runs (queued, delayed or
//!   under way): a check through a shared socket could be answered by the other instance
//!   (SPEC section 10). A paused check drops its attempt and its count; when the reload is
//!   over it starts afresh, its first attempt one interval later. The watchdog does not pause.
//! - An attempt that is no longer wanted (its process stopped, became ready, or its check was
//!   paused) is cancelled ([`Effect::CancelCheck`]); a result that comes for it anyway is
//!   ignored. Deviation from before this machine existed: an exec attempt is now killed at
//!   once instead of at its timeout, with the same outcome sooner.

use std::time::{Duration, Instant};

use log::warn;

use crate::config::units::format_duration;
use crate::config::{ProgramSpec, ReadyCheck};

use super::instance::State;
use super::{CheckRef, Effect, Event, InstanceRef, Machine, What};

/// Time between two attempts of a readiness check.
pub const READY_RETRY: Duration = Duration::from_millis(100);
/// Bound on one attempt of a readiness check (the whole wait is `ready.timeout`).
pub const READY_ATTEMPT: Duration = Duration::from_secs(2);

/// Where a check's attempts stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The next attempt starts then.
    Due(Instant),
    /// Attempt `id` is under way; it has failed if no result came by `until`.
    Running { id: u64, until: Instant },
}

/// One check of one process: its attempts and, for a health check, its failures in a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub attempt: Attempt,
    pub failures: u32,
}

/// Checks that work by attempts: tcp, http and exec (notify and delay have none).
fn has_attempts(check: &ReadyCheck) -> bool {
    matches!(
        check,
        ReadyCheck::Tcp(_)
            | ReadyCheck::Http { .. }
            | ReadyCheck::Exec(_)
            | ReadyCheck::Expand { .. }
    )
}

impl Check {
    /// The readiness check of a process just started: it tries at once.
    pub fn ready(check: &ReadyCheck, now: Instant) -> Option<Check> {
        has_attempts(check).then_some(Check {
            attempt: Attempt::Due(now),
            failures: 0,
        })
    }

    /// The health check of a process just ready (or resumed): its first attempt one interval
    /// later.
    pub fn health(spec: &ProgramSpec, now: Instant) -> Option<Check> {
        let h = spec.health.as_ref()?;
        has_attempts(&h.check).then_some(Check {
            attempt: Attempt::Due(now + h.interval),
            failures: 0,
        })
    }

    pub fn deadline(&self) -> Instant {
        match self.attempt {
            Attempt::Due(at) => at,
            Attempt::Running { until, .. } => until,
        }
    }

    /// The attempt under way, if one is.
    pub fn under_way(&self) -> Option<u64> {
        match self.attempt {
            Attempt::Running { id, .. } => Some(id),
            Attempt::Due(_) => None,
        }
    }

    /// Whether `id` is the attempt under way (answers for others are stale).
    fn is(&self, id: u64) -> bool {
        self.under_way() == Some(id)
    }

    /// A health attempt of the instance `pid` failed: one more in a row (the event that
    /// says so); at `limit`, also the reason to reload it (and the count starts over).
    fn failed(&mut self, pid: i32, limit: u32) -> (What, Option<String>) {
        self.failures = self.failures.saturating_add(1);
        let failures = self.failures;
        warn!("health check of pid {pid} failed ({failures} in a row)");
        let why = format!("health check failed ({failures} in a row)");
        let event = What::HealthFailed { failures, why };
        if failures < limit {
            return (event, None);
        }
        self.failures = 0;
        let reason = format!("failed its health check {limit} times in a row");
        (event, Some(reason))
    }
}

/// What a check's deadline means at `now`.
enum Due {
    Nothing,
    /// Start attempt `id`.
    Start(u64),
    /// Attempt `id` ran out of time: cancel it; it failed.
    Late(u64),
}

/// Moves `check` past `now`: starts an attempt that is due (bounded by `timeout`), or fails
/// one over its time (the next one `every` later).
fn tick(
    check: &mut Check,
    every: Duration,
    timeout: Duration,
    serial: &mut u64,
    now: Instant,
) -> Due {
    match check.attempt {
        Attempt::Running { id, until } if now >= until => {
            check.attempt = Attempt::Due(now + every);
            Due::Late(id)
        }
        Attempt::Due(at) if now >= at => {
            *serial += 1;
            check.attempt = Attempt::Running {
                id: *serial,
                until: now + timeout,
            };
            Due::Start(*serial)
        }
        _ => Due::Nothing,
    }
}

impl Machine {
    /// Check deadlines of every instance: attempts over their time fail, due ones start,
    /// missed watchdogs ask for a reload.
    pub(super) fn check_time(&mut self, now: Instant) {
        let mut verdicts = Vec::new();
        for program in &mut self.programs {
            let spec = &program.spec;
            for inst in &mut program.instances {
                let who = |attempt| CheckRef {
                    instance: InstanceRef {
                        program: spec.name.clone(),
                        index: inst.index,
                        serial: inst.serial,
                    },
                    attempt,
                };
                let (due, what, timeout) = match &mut inst.state {
                    State::Starting {
                        check: Some(check), ..
                    } => {
                        let Some(r) = &spec.ready else { continue };
                        let due = tick(check, READY_RETRY, READY_ATTEMPT, &mut self.serial, now);
                        (due, &r.check, READY_ATTEMPT)
                    }
                    State::Running {
                        process,
                        health,
                        watchdog_at,
                    } => {
                        if let Some(limit) = spec.watchdog
                            && watchdog_at.is_some_and(|at| now >= at)
                        {
                            *watchdog_at = Some(now + limit);
                            let reason =
                                format!("sent no WATCHDOG=1 for {}", format_duration(limit));
                            verdicts.push((process.pid, reason));
                        }
                        let (Some(check), Some(h)) = (health, &spec.health) else {
                            continue;
                        };
                        let due = tick(check, h.interval, h.timeout, &mut self.serial, now);
                        if let Due::Late(_) = due {
                            let (event, verdict) = check.failed(process.pid, h.failures);
                            let event = Event::of(&spec.name, inst.index, event);
                            self.out.push(Effect::Publish(event));
                            if let Some(reason) = verdict {
                                verdicts.push((process.pid, reason));
                            }
                        }
                        (due, &h.check, h.timeout)
                    }
                    _ => continue,
                };
                match due {
                    Due::Start(id) => self.out.push(Effect::StartCheck {
                        check: who(id),
                        what: what.clone(),
                        spec: spec.clone(),
                        timeout,
                    }),
                    Due::Late(id) => self.out.push(Effect::CancelCheck { check: who(id) }),
                    Due::Nothing => {}
                }
            }
        }
        for (pid, reason) in verdicts {
            self.reload_verdict(pid, &reason, now);
        }
    }

    /// An attempt ended. Readiness: a pass makes the instance ready, a failure waits for the
    /// next try. Health: a pass resets the count, a failure counts (see the module header).
    pub(super) fn on_check_result(&mut self, check: &CheckRef, ok: bool, now: Instant) {
        let Some((p, i)) = self.find_instance(&check.instance) else {
            return;
        };
        let Some((spec, inst)) = self.instance_mut(p, i) else {
            return;
        };
        let mut ready = None;
        let mut verdict = None;
        let mut event = None;
        match &mut inst.state {
            State::Starting {
                process,
                check: Some(c),
                ..
            } if c.is(check.attempt) => {
                c.attempt = Attempt::Due(now + READY_RETRY);
                if ok {
                    ready = Some(process.pid);
                }
            }
            State::Running {
                process,
                health: Some(c),
                ..
            } if c.is(check.attempt) => {
                let Some(h) = &spec.health else {
                    return;
                };
                c.attempt = Attempt::Due(now + h.interval);
                if ok {
                    c.failures = 0;
                } else {
                    let (what, reason) = c.failed(process.pid, h.failures);
                    event = Some(Event::of(&spec.name, inst.index, what));
                    verdict = reason.map(|reason| (process.pid, reason));
                }
            }
            // An attempt no longer wanted: its process stopped or is ready, or it was paused.
            _ => {}
        }
        if let Some(event) = event {
            self.out.push(Effect::Publish(event));
        }
        if let Some(pid) = ready {
            self.mark_ready(pid, now);
        }
        if let Some((pid, reason)) = verdict {
            self.reload_verdict(pid, &reason, now);
        }
    }

    /// The instance's output said the text of its `ready: {log: TEXT}`: it is ready (if it is
    /// still starting; a line after that means nothing).
    pub(super) fn on_log_ready(&mut self, r: &InstanceRef, now: Instant) {
        let Some((p, i)) = self.find_instance(r) else {
            return;
        };
        let Some(program) = self.programs.get(p) else {
            return;
        };
        let logs = program
            .spec
            .ready
            .as_ref()
            .is_some_and(|r| matches!(r.check, ReadyCheck::Log(_)));
        let pid = program
            .instances
            .get(i)
            .filter(|i| i.is_starting())
            .and_then(|i| i.pid());
        if let (true, Some(pid)) = (logs, pid) {
            self.mark_ready(pid, now);
        }
    }

    /// WATCHDOG=1 from instance `pid`: the next one is due within the limit. Only once ready
    /// (a starting instance's watchdog has not begun).
    pub(super) fn watchdog_ping(&mut self, pid: i32, now: Instant) {
        let Some((p, i)) = self.find_pid(pid) else {
            return;
        };
        if let Some((spec, inst)) = self.instance_mut(p, i)
            && let Some(limit) = spec.watchdog
            && let State::Running { watchdog_at, .. } = &mut inst.state
        {
            *watchdog_at = Some(now + limit);
        }
    }

    /// Pauses the health checks of programs a `replace` reload is pending for, and resumes
    /// them once it is over. Costs nothing while no replace is pending and none is paused.
    pub(super) fn sync_health(&mut self, now: Instant) {
        if !self.replacing_any && !self.health_paused_any {
            return;
        }
        let mut any = false;
        for p in 0..self.programs.len() {
            let Some(program) = self.programs.get_mut(p) else {
                break;
            };
            let paused = program.replace_pending();
            any |= paused;
            if paused == program.health_paused {
                continue;
            }
            program.health_paused = paused;
            self.each_instance(p, now, |inst, spec| inst.pause_health(paused, spec, now));
        }
        self.health_paused_any = any;
    }
}

#[cfg(test)]
mod log_ready_tests {
    use super::super::Input;
    use super::super::testing::*;
    use std::time::Instant;

    #[test]
    fn a_log_line_makes_only_a_starting_instance_ready() {
        let mut e = edge(
            "programs:\n  db:\n    command: x\n    ready: {log: up}\n    stdout: prefix\n  w:\n    command: x\n    ready: {notify: true}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let (db, w) = (
            e.m.programs[0].who(&e.m.programs[0].instances[0]),
            e.m.programs[1].who(&e.m.programs[1].instances[0]),
        );
        // A program that waits for READY=1 is not made ready by a line.
        e.feed(Input::LogReady { instance: w }, t);
        assert_eq!(e.status(t)[1].state, "starting");
        e.feed(
            Input::LogReady {
                instance: db.clone(),
            },
            t,
        );
        assert_eq!(e.status(t)[0].state, "ready");
        // Later lines mean nothing.
        e.feed(Input::LogReady { instance: db }, t);
        assert_eq!(e.status(t)[0].state, "ready");
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::control::protocol::Request;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The attempts started since the last call, as (pid of the instance, check).
    fn started(e: &mut Edge) -> Vec<(i32, ReadyCheck)> {
        std::mem::take(&mut e.checks_started)
            .into_iter()
            .map(|(r, what)| (e.pid_of(&r.instance), what))
            .collect()
    }

    #[test]
    fn readiness_attempts_start_at_once_retry_and_make_the_instance_ready() {
        let mut e = edge(
            "programs:\n  web: {command: x, ready: {exec: [probe]}}\n  after: {command: x, depends_on: [web]}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let web = e.pid("web");
        assert_eq!(e.m.deadline(), Some(t), "the first attempt is due at once");
        e.feed(Input::Time, t);
        assert_eq!(
            started(&mut e),
            [(web, ReadyCheck::Exec(vec!["probe".into()]))]
        );
        e.feed(Input::Time, t + ms(50));
        assert!(started(&mut e).is_empty(), "one attempt at a time");
        // A failed attempt: the next one 100ms after it ended.
        e.finish_check(false, t + ms(60));
        assert_eq!(e.m.deadline(), Some(t + ms(160)));
        e.feed(Input::Time, t + ms(160));
        assert_eq!(started(&mut e).len(), 1);
        // An attempt over its 2s bound is cancelled and counts as failed.
        e.feed(Input::Time, t + ms(2160));
        assert_eq!(e.cancelled.len(), 1);
        e.feed(Input::Time, t + ms(2260));
        assert_eq!(started(&mut e).len(), 1);
        assert_eq!(e.names(), ["web"], "not ready: its dependent waits");
        e.finish_check(true, t + ms(2300));
        assert_eq!(e.status(t)[0].state, "ready");
        assert_eq!(e.names(), ["web", "after"]);
        // Ready: no more readiness attempts, and no health check to run.
        assert_eq!(e.m.deadline(), None);
    }

    #[test]
    fn health_failures_in_a_row_reload_and_a_pass_resets_the_count() {
        let mut e = edge(
            "programs:\n  api:\n    command: x\n    health: {tcp: \"127.0.0.1:9\", interval: 1s, timeout: 200ms, failures: 3}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let api = e.pid("api");
        // The first attempt one interval after ready.
        assert_eq!(e.m.deadline(), Some(t + ms(1000)));
        let mut now = t + ms(1000);
        for _ in 0..2 {
            e.feed(Input::Time, now);
            assert_eq!(started(&mut e).len(), 1);
            e.finish_check(false, now + ms(10));
            now += ms(1010);
        }
        // A pass in between: the count starts over.
        e.feed(Input::Time, now);
        e.finish_check(true, now + ms(10));
        now += ms(1010);
        for _ in 0..2 {
            e.feed(Input::Time, now);
            e.finish_check(false, now + ms(10));
            now += ms(1010);
        }
        assert!(e.signals.is_empty(), "two in a row only");
        // The third in a row times out (200ms): reloaded by its strategy (restart), counted.
        e.feed(Input::Time, now);
        assert_eq!(e.under_way.len(), 1);
        e.feed(Input::Time, now + ms(200));
        assert_eq!(e.cancelled.len(), 1);
        assert_eq!(e.signals, [(api, libc::SIGTERM), (api, libc::SIGCONT)]);
        assert_eq!(e.status(now)[0].restarts, 1);
        // Stopping: no health attempt.
        assert_eq!(e.m.deadline(), Some(now + ms(200) + ms(10_000)));
    }

    #[test]
    fn a_stale_result_and_one_for_a_stopped_instance_are_ignored() {
        let mut e = edge(
            "programs:\n  api:\n    command: x\n    health: {tcp: \"127.0.0.1:9\", interval: 1s, failures: 1}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        e.feed(Input::Time, t + ms(1000));
        let (attempt, _) = e.checks_started.pop().unwrap();
        let c = e.ask(
            Request::Stop {
                programs: vec!["api".into()],
            },
            t + ms(1100),
        );
        assert_eq!(
            e.cancelled,
            std::slice::from_ref(&attempt),
            "its attempt goes with the stop"
        );
        e.feed(
            Input::CheckResult {
                check: attempt,
                ok: false,
            },
            t + ms(1200),
        );
        assert_eq!(e.status(t)[0].restarts, 0);
        assert!(e.answer(c).is_none(), "still stopping");
    }

    #[test]
    fn a_missed_watchdog_reloads_and_pings_keep_it_quiet() {
        let mut e = edge(
            "programs:\n  w:\n    command: x\n    watchdog: 1s\n    reload: {strategy: signal, signal: SIGHUP}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let w = e.pid("w");
        assert_eq!(e.m.deadline(), Some(t + ms(1000)));
        e.notify(w, "WATCHDOG=1", t + ms(900));
        assert_eq!(e.m.deadline(), Some(t + ms(1900)));
        e.feed(Input::Time, t + ms(1000));
        assert!(e.signals.is_empty());
        e.feed(Input::Time, t + ms(1900));
        assert_eq!(e.signals, [(w, libc::SIGHUP)]);
        assert_eq!(e.status(t)[0].restarts, 1);
        // Counted once; the watchdog starts over.
        assert_eq!(e.m.deadline(), Some(t + ms(2900)));
    }

    #[test]
    fn a_starting_instance_s_watchdog_has_not_begun() {
        let mut e = edge(
            "programs:\n  w: {command: x, watchdog: 1s, ready: {notify: true, timeout: 10s}}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let w = e.pid("w");
        e.notify(w, "WATCHDOG=1", t);
        assert_eq!(
            e.m.deadline(),
            Some(t + ms(10_000)),
            "only the ready timeout"
        );
        e.notify(w, "READY=1", t + ms(500));
        assert_eq!(e.m.deadline(), Some(t + ms(1500)));
    }

    #[test]
    fn health_pauses_during_a_replace_and_resumes_afresh() {
        let mut e = edge(
            "programs:\n  a:\n    command: x\n    reload: {strategy: replace}\n    ready: {notify: true}\n    health: {exec: [x], interval: 1s, failures: 2}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let old = e.pid("a");
        e.notify(old, "READY=1", t);
        // One failure counted before the reload.
        e.feed(Input::Time, t + ms(1000));
        e.finish_check(false, t + ms(1000));
        e.feed(Input::Time, t + ms(2000));
        let (attempt, _) = e.checks_started.pop().unwrap();
        let c = e.ask(
            Request::Reload {
                programs: vec!["a".into()],
            },
            t + ms(2100),
        );
        assert_eq!(e.cancelled, [attempt], "the attempt under way goes");
        assert_eq!(
            e.m.health_checks("a"),
            [false, false],
            "the old one's, and the new one starts"
        );
        let new = e.pid("a");
        e.notify(new, "READY=1", t + ms(2200));
        assert_eq!(
            e.m.health_checks("a"),
            [false],
            "the new one's neither, until replaced"
        );
        e.reap(&[killed(old, libc::SIGTERM)], true, t + ms(2300));
        assert_eq!(e.answer(c).map(|r| r.ok), Some(true));
        assert_eq!(e.m.health_checks("a"), [true]);
        // Afresh: first attempt one interval later, and one failure is not two in a row.
        assert_eq!(e.m.deadline(), Some(t + ms(3300)));
        e.feed(Input::Time, t + ms(3300));
        e.finish_check(false, t + ms(3300));
        assert!(e.signals.iter().all(|s| s.0 != new), "{:?}", e.signals);
    }
}
