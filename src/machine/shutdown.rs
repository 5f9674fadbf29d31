//! The shutdown: its phases, forced kills, and the status ginit exits with.
//!
//! SIGTERM, SIGINT, SIGQUIT, `ginit shutdown`, or a critical program that ends (see
//! `programs.rs`) begin it:
//! 1. `shutdown.delay` ([`Phase::Delaying`]): every program keeps serving, `ginit ready` says
//!    no, so load balancers stop sending traffic first;
//! 2. [`Phase::Stopping`]: programs stop in reverse dependency order (dependents before what
//!    they depend on, independent programs in parallel), each with its stop signal and
//!    timeout (SIGKILL after it); restarts waiting out a backoff are cancelled and nothing
//!    starts again; all of it bounded by `shutdown.timeout`;
//! 3. [`Phase::Clearing`]: every program is down; what is left in the namespace gets SIGTERM
//!    and a short grace ([`LEFTOVER_GRACE`], within what is left of `shutdown.timeout`);
//! 4. [`Phase::Killing`]: SIGKILL for the rest, reaped within [`KILL_WAIT`];
//! 5. [`Phase::Done`]: ginit exits ([`Effect::Exit`]).
//!
//! A second request during the delay or the stopping skips to SIGKILL for everything. A
//! shutdown that had to SIGKILL a program (its stop timeout, `shutdown.timeout`, a second
//! request) says which and why, and ends with [`FORCED_EXIT`] unless a program decided the
//! status (`main`'s, a failed critical program's); otherwise the status is 0.

use std::time::{Duration, Instant};

use log::{info, warn};

use crate::config::units::format_duration;

use super::{Effect, FORCED_EXIT, KILL_WAIT, Machine, What};

/// Longest grace the leftovers get at the end of a run (bounded by `shutdown.timeout`).
pub const LEFTOVER_GRACE: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Running,
    /// `shutdown.delay`: keep serving until then.
    Delaying {
        until: Instant,
    },
    /// Stopping programs in reverse dependency order, until `deadline` (shutdown.timeout).
    Stopping {
        deadline: Instant,
    },
    /// Every program is down; leftovers got SIGTERM.
    Clearing {
        until: Instant,
    },
    /// Leftovers (or, after a second request, everything) got SIGKILL.
    Killing {
        until: Instant,
    },
    Done,
}

impl Phase {
    pub fn deadline(self) -> Option<Instant> {
        match self {
            Phase::Delaying { until } | Phase::Clearing { until } | Phase::Killing { until } => {
                Some(until)
            }
            Phase::Stopping { deadline } => Some(deadline),
            Phase::Running | Phase::Done => None,
        }
    }
}

impl Machine {
    pub(super) fn is_shutting_down(&self) -> bool {
        self.phase != Phase::Running
    }

    /// Stopping programs for good (not just delaying): SIGKILLs now count as forced.
    pub(super) fn stopping(&self) -> bool {
        matches!(
            self.phase,
            Phase::Stopping { .. } | Phase::Clearing { .. } | Phase::Killing { .. }
        )
    }

    /// A shutdown request (SIGTERM, SIGINT, SIGQUIT, `ginit shutdown`). A second one while
    /// shutting down kills everything at once.
    pub(super) fn request_shutdown(&mut self, why: String, now: Instant) {
        match self.phase {
            Phase::Running => {
                self.publish_program("", What::ShutdownBegun { why });
                if self.shutdown.delay.is_zero() {
                    info!("shutting down");
                    self.begin_stopping(now);
                } else {
                    info!(
                        "shutting down in {}: programs keep serving until then",
                        format_duration(self.shutdown.delay)
                    );
                    self.phase = Phase::Delaying {
                        until: now + self.shutdown.delay,
                    };
                }
            }
            Phase::Delaying { .. } | Phase::Stopping { .. } => {
                // No timeout was reached: it is the request that decides, and says so.
                self.kill_all("a second shutdown request", now);
                self.kill_leftovers(now);
            }
            Phase::Clearing { .. } => self.kill_leftovers(now),
            Phase::Killing { .. } | Phase::Done => {}
        }
        self.progress(now);
    }

    pub(super) fn begin_stopping(&mut self, now: Instant) {
        self.phase = Phase::Stopping {
            deadline: now + self.shutdown.timeout,
        };
    }

    /// SIGKILL for whatever is left in the namespace; reaped within [`KILL_WAIT`].
    fn kill_leftovers(&mut self, now: Instant) {
        self.out.push(Effect::SignalLeftovers(libc::SIGKILL));
        self.phase = Phase::Killing {
            until: now + KILL_WAIT,
        };
    }

    /// The next step of a shutdown under way, once nothing waits for an answer.
    pub(super) fn progress_shutdown(&mut self, now: Instant) {
        match self.phase {
            Phase::Stopping { deadline } => {
                if std::mem::take(&mut self.replacing_any) {
                    for program in &mut self.programs {
                        program.delayed.clear();
                        if program.replacing.take().is_some() {
                            let why = Err("ginit is shutting down".into());
                            self.out.push(program.end_replace(why, now));
                        }
                    }
                }
                self.stop_in_order(now);
                // Running hooks too: clearing the namespace would kill them (`hooks.rs`).
                if self.asking > 0
                    || !self.groups.is_empty()
                    || self.programs.iter().any(|p| p.live())
                    || self.hooks.busy()
                {
                    return;
                }
                if self.children_left {
                    let left = deadline.saturating_duration_since(now);
                    self.out.push(Effect::SignalLeftovers(libc::SIGTERM));
                    info!("every program has stopped; sent SIGTERM to the processes left behind");
                    self.phase = Phase::Clearing {
                        until: now + left.min(LEFTOVER_GRACE),
                    };
                } else {
                    self.finish();
                }
            }
            Phase::Clearing { .. } | Phase::Killing { .. } => {
                if self.asking == 0 && !self.children_left {
                    self.finish();
                }
            }
            Phase::Running | Phase::Delaying { .. } | Phase::Done => {}
        }
    }

    /// Stops every program none of whose dependents is still up. Restarts waiting out their
    /// backoff are cancelled first, for every program: nothing starts again during shutdown.
    fn stop_in_order(&mut self, now: Instant) {
        for p in 0..self.programs.len() {
            self.each_instance(p, now, |inst, spec| {
                if matches!(inst.state, super::instance::State::Backoff { .. }) {
                    inst.stop(spec, now)
                } else {
                    Vec::new()
                }
            });
        }
        for p in 0..self.programs.len() {
            let dependents_up = self.dependents.get(p).is_some_and(|ds| {
                ds.iter()
                    .any(|&d| self.programs.get(d).is_some_and(|q| q.live()))
            });
            if !dependents_up {
                self.each_instance(p, now, |inst, spec| inst.stop(spec, now));
            }
        }
    }

    /// SIGKILL for every instance that may have a process, and for what exited ones left
    /// in their groups; pending restarts are cancelled. Each kill is noted, with `why`, for
    /// the final word on the shutdown.
    fn kill_all(&mut self, why: &str, now: Instant) {
        warn!("{why}: killing what is still running");
        for p in 0..self.programs.len() {
            let n = self.programs.get(p).map_or(0, |q| q.instances.len());
            for i in 0..n {
                let Some((spec, inst)) = self.instance_mut(p, i) else {
                    break;
                };
                let killed = inst.pid().is_some().then(|| spec.label(inst.index));
                let steps = inst.kill();
                self.forced.extend(killed);
                self.apply(p, i, steps, now);
            }
        }
        self.why_forced(why);
        self.kill_all_groups(why);
        // Not noted as forced: a hook never decides ginit's exit status.
        self.kill_hooks(true, now);
    }

    /// Adds the reason to the entries `forced` got since the last reason was added.
    pub(super) fn why_forced(&mut self, why: &str) {
        for entry in self.forced.iter_mut().rev() {
            if entry.ends_with(')') {
                break;
            }
            entry.push_str(" (");
            entry.push_str(why);
            entry.push(')');
        }
    }

    /// The shutdown's own deadlines: the delay's end, `shutdown.timeout`, the leftovers'
    /// grace, the wait for the killed.
    pub(super) fn shutdown_time(&mut self, now: Instant) {
        match self.phase {
            Phase::Delaying { until } if now >= until => {
                info!("shutdown delay over: stopping programs");
                self.begin_stopping(now);
            }
            Phase::Stopping { deadline }
                if now >= deadline
                    && (!self.groups.is_empty()
                        || self.programs.iter().any(|p| p.live())
                        || self.hooks.busy()) =>
            {
                let limit = format_duration(self.shutdown.timeout);
                self.kill_all(&format!("shutdown.timeout of {limit} reached"), now);
                self.kill_leftovers(now);
            }
            Phase::Clearing { until } if now >= until => self.kill_leftovers(now),
            Phase::Killing { until } if now >= until => {
                warn!("some processes could not be reaped after SIGKILL; exiting anyway");
                self.finish();
            }
            _ => {}
        }
    }

    /// For tests: what the shutdown had to SIGKILL, and why.
    #[cfg(test)]
    pub(super) fn forced_for_tests(&self) -> Vec<&str> {
        self.forced.iter().map(String::as_str).collect()
    }

    /// The run is over: the exit status is settled, and a forced shutdown says so.
    fn finish(&mut self) {
        self.phase = Phase::Done;
        if !self.forced.is_empty() {
            if !self.code_decided {
                self.exit_code = FORCED_EXIT;
            }
            warn!(
                "the shutdown had to SIGKILL {}; exit status {}",
                self.forced.join(", "),
                self.exit_code
            );
        }
        self.out.push(Effect::Exit(self.exit_code));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{FORCED_EXIT, Input, KILL_WAIT};
    use super::*;
    use crate::control::protocol::Request;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn shutdown_stops_dependents_first_then_clears_leftovers() {
        let mut e = edge(
            "programs:\n  db: {command: x}\n  web: {command: x, depends_on: [db]}\n  side: {command: x, stop: {signal: SIGINT}}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let (db, web, side) = (e.pid("db"), e.pid("web"), e.pid("side"));
        e.feed(Input::Signal(libc::SIGTERM), t);
        // web and side (independent) first, in parallel; db waits for web. SIGCONT follows
        // each stop signal.
        assert_eq!(
            e.signals,
            [
                (web, libc::SIGTERM),
                (web, libc::SIGCONT),
                (side, libc::SIGINT),
                (side, libc::SIGCONT)
            ]
        );
        e.reap(&[killed(web, libc::SIGTERM)], true, t);
        assert_eq!(e.signals[4..], [(db, libc::SIGTERM), (db, libc::SIGCONT)]);
        e.reap(&[exit(db, 0), exit(side, 0)], true, t);
        assert_eq!(e.leftovers, [libc::SIGTERM]);
        assert_eq!(e.exit, None);
        e.feed(Input::Time, t + LEFTOVER_GRACE);
        assert_eq!(e.leftovers, [libc::SIGTERM, libc::SIGKILL]);
        e.reap(&[], false, t + LEFTOVER_GRACE);
        assert_eq!(e.exit, Some(0));
        // Nothing restarted during the shutdown.
        assert_eq!(e.spawned.len(), 3);
    }

    #[test]
    fn stop_timeouts_escalate_and_the_shutdown_timeout_bounds_everything() {
        let mut e =
            edge("programs:\n  slow: {command: x, stop: {timeout: 1s}}\nshutdown: {timeout: 3s}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let pid = e.pid("slow");
        e.feed(Input::Signal(libc::SIGTERM), t);
        assert_eq!(e.m.deadline(), Some(t + secs(1)));
        e.feed(Input::Time, t + secs(1));
        assert_eq!(
            e.signals,
            [
                (pid, libc::SIGTERM),
                (pid, libc::SIGCONT),
                (pid, libc::SIGKILL)
            ]
        );
        // Still not reaped (uninterruptible): the shutdown timeout ends it.
        e.feed(Input::Time, t + secs(3));
        assert_eq!(e.leftovers, [libc::SIGKILL]);
        e.feed(Input::Time, t + secs(3) + KILL_WAIT);
        // It had to be killed: the exit status says so.
        assert_eq!(e.exit, Some(FORCED_EXIT));
    }

    #[test]
    fn a_second_request_kills_at_once() {
        for second in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT] {
            let mut e = edge("programs:\n  a: {command: x}\n");
            let t = Instant::now();
            e.feed(Input::Begin, t);
            let pid = e.pid("a");
            e.feed(Input::Signal(libc::SIGTERM), t);
            e.feed(Input::Signal(second), t);
            assert_eq!(
                e.signals,
                [
                    (pid, libc::SIGTERM),
                    (pid, libc::SIGCONT),
                    (pid, libc::SIGKILL)
                ]
            );
            // Whatever else is left gets no grace either; and no timeout is waited for.
            assert_eq!(e.leftovers, [libc::SIGKILL]);
            assert_eq!(e.m.deadline(), Some(t + KILL_WAIT));
            e.reap(&[killed(pid, libc::SIGKILL)], false, t);
            assert_eq!(e.exit, Some(FORCED_EXIT));
        }
    }

    #[test]
    fn the_shutdown_delay_keeps_serving() {
        let mut e = edge("programs:\n  a: {command: x}\nshutdown: {delay: 5s}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let c = e.ask(Request::Ready {}, t);
        assert_eq!(e.answer(c).map(|r| r.ok), Some(true));
        e.feed(Input::Signal(libc::SIGTERM), t);
        assert!(e.signals.is_empty());
        let c = e.ask(Request::Ready {}, t);
        assert_eq!(
            e.answer(c).and_then(|r| r.error.clone()).as_deref(),
            Some("not ready: shutting down")
        );
        assert_eq!(e.m.deadline(), Some(t + secs(5)));
        e.feed(Input::Time, t + secs(5));
        let a = e.pid("a");
        assert_eq!(e.signals, [(a, libc::SIGTERM), (a, libc::SIGCONT)]);
    }

    #[test]
    fn a_dependency_in_backoff_is_not_restarted_during_shutdown() {
        let mut e = edge("programs:\n  db: {command: x}\n  web: {command: x, depends_on: [db]}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let (db, web) = (e.pid("db"), e.pid("web"));
        e.reap(&[exit(db, 1)], true, t);
        assert_eq!(e.status(t)[0].state, "backoff");
        e.feed(Input::Signal(libc::SIGTERM), t);
        // web is still stopping when db's restart delay runs out: db must stay down.
        e.feed(Input::Time, t + secs(1));
        assert_eq!(e.names(), ["db", "web"]);
        e.reap(&[exit(web, 0)], false, t + secs(1));
        assert_eq!(e.exit, Some(0));
    }

    #[test]
    fn a_stopped_program_s_stragglers_get_sigkill_at_the_stop_timeout() {
        let mut e = edge("programs:\n  a: {command: x, stop: {timeout: 2s}}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let pid = e.pid("a");
        let c = e.ask(
            Request::Stop {
                programs: vec!["a".into()],
            },
            t,
        );
        assert_eq!(e.signals, [(pid, libc::SIGTERM), (pid, libc::SIGCONT)]);
        // The leader goes at once; a child that ignores SIGTERM stays.
        e.groups.insert(pid);
        e.reap(&[killed(pid, libc::SIGTERM)], true, t + secs(1));
        assert!(e.group_signals.is_empty(), "it had its stop signal already");
        assert_eq!(
            e.answer(c).and_then(|r| r.message.clone()).as_deref(),
            Some("stopped a")
        );
        assert_eq!(e.m.deadline(), Some(t + secs(2)));
        e.feed(Input::Time, t + secs(2));
        assert_eq!(e.group_signals, [(pid, libc::SIGKILL)]);
        assert_eq!(e.m.deadline(), None);
    }

    #[test]
    fn shutdown_waits_for_groups_and_a_sigkill_for_them_is_a_forced_shutdown() {
        let mut e = edge("programs:\n  a: {command: x, stop: {timeout: 2s}}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let pid = e.pid("a");
        e.feed(Input::Signal(libc::SIGTERM), t);
        e.groups.insert(pid);
        e.reap(&[killed(pid, libc::SIGTERM)], true, t);
        assert!(e.leftovers.is_empty(), "still waiting for the group");
        e.feed(Input::Time, t + secs(2));
        assert_eq!(e.group_signals, [(pid, libc::SIGKILL)]);
        assert_eq!(e.leftovers, [libc::SIGTERM]);
        e.reap(&[], false, t + secs(2));
        assert_eq!(e.exit, Some(FORCED_EXIT));
    }

    #[test]
    fn a_status_a_program_decided_survives_a_forced_shutdown() {
        let mut e = edge(
            "programs:\n  main: {command: x, critical: true, restart: never}\n  side: {command: x, stop: {timeout: 1s}}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        e.reap(&[exit(e.pid("main"), 3)], true, t);
        e.feed(Input::Time, t + secs(1)); // side ignores its SIGTERM: SIGKILL
        e.reap(&[killed(e.pid("side"), libc::SIGKILL)], false, t + secs(1));
        assert_eq!(e.exit, Some(3));
    }

    #[test]
    fn the_shutdown_timeout_kills_groups_too_and_says_why() {
        let mut e =
            edge("programs:\n  a: {command: x, stop: {timeout: 10s}}\nshutdown: {timeout: 1s}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let pid = e.pid("a");
        e.groups.insert(pid);
        e.reap(&[exit(pid, 1)], true, t);
        let again = e.pid("a");
        e.feed(Input::Time, t + Duration::from_millis(100)); // its restart
        let b = e.pid("a");
        assert_ne!(b, again);
        e.feed(Input::Signal(libc::SIGTERM), t + Duration::from_millis(100));
        e.feed(Input::Time, t + Duration::from_millis(1100));
        assert!(e.group_signals.contains(&(pid, libc::SIGKILL)));
        assert_eq!(e.leftovers, [libc::SIGKILL]);
        assert_eq!(
            e.m.forced_for_tests(),
            [
                "a (shutdown.timeout of 1s reached)",
                "what a left behind (shutdown.timeout of 1s reached)"
            ]
        );
        e.reap(
            &[killed(b, libc::SIGKILL)],
            false,
            t + Duration::from_millis(1100),
        );
        assert_eq!(e.exit, Some(FORCED_EXIT));
    }

    #[test]
    fn the_exit_effect_comes_once() {
        let mut e = edge("programs:\n  a: {command: x}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let pid = e.pid("a");
        e.feed(Input::Signal(libc::SIGTERM), t);
        e.reap(&[killed(pid, libc::SIGTERM)], false, t);
        assert_eq!(e.exits, 1);
        e.reap(&[], false, t);
        e.feed(Input::Time, t + secs(10));
        e.feed(Input::Signal(libc::SIGTERM), t + secs(10));
        assert_eq!(e.exits, 1);
        assert_eq!(e.exit, Some(0));
    }
}
