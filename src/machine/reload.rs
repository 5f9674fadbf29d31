//! Reloads (renewing a program by its strategy) and their kin: start/stop/restart on request,
//! `ginit reload`, the `replace` reload's steps and rollback, reloads that verdicts ask for,
//! and a new config applied as a difference. The strategy is chosen in one place,
//! [`strategy`].
//!
//! The `replace` reload, one instance at a time (so capacity never drops below `instances`):
//! 1. start a new instance ([`Role::Surge`]) with the same sockets, beside the old one;
//! 2. once it is ready, it becomes the instance, takes over the old one's restart history,
//!    and the old one ([`Role::Retiring`]) gets its stop signal and timeout;
//! 3. once the old one is down, on to the next index; when none is left, `replaced NAME`.
//!
//! Rollback: if the new instance exits before it is ready (or is killed for not being ready
//! within `ready.timeout`), the reload fails (`... before it was ready; the old one keeps
//! serving`), the old instance is untouched, and the indexes still queued are dropped. A stop
//! of the program or a shutdown cancels it (the answer says so). An index with nothing
//! running is simply (re)started.
//!
//! A reload a verdict asks for (memory_max, `cpu_action: restart`, failed health checks, a
//! missed watchdog, WATCHDOG=trigger) counts as a restart, as a crash would (RESTARTS, the
//! restart window, the backoff); requested reloads and restarts do not:
//! - `restart`: stopped now, started again the backoff delay after it is down;
//! - `replace`: the new instance starts after the backoff delay, while the old one keeps
//!   serving (and is stopped once the new one is ready, as in any replace);
//! - `signal`: the signal is sent now (there is nothing to delay), and counted.
//!
//! Past `max_restarts` within `restart_window`, the instance is stopped and failed (a critical
//! program then ends the run). Verdicts during a shutdown, about a new instance not serving
//! yet, or about one being reloaded already are not acted on.

use std::rc::Rc;
use std::time::Instant;

use log::{debug, error, info, warn};

use crate::config::units::format_duration;
use crate::config::{Config, ProgramSpec, ReloadStrategy, diff};

use super::instance::{Instance, Role};
use super::programs::Program;
use super::shutdown::Phase;
use super::{Effect, Event, Machine, What, positions};

/// What `ginit start|stop|restart|reload` asks of programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Control {
    Start,
    Stop,
    Restart,
    /// `replace` reload: new instance, ready, then the old one stops.
    Replace,
}

/// Why a program is reloaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cause {
    /// `ginit reload NAME`.
    Request,
    /// A verdict about one instance (memory, CPU, health, watchdog).
    Verdict,
    /// Its spec changed in a reloaded config; `in_place`: it runs, was started, and keeps its
    /// number of instances, so its instances can be replaced where they stand.
    Config { in_place: bool },
}

/// The strategy a program is reloaded by, chosen here and nowhere else: its `reload:`, except
/// that a changed config cannot be applied by a signal (the command or settings changed) and
/// is replaced only where it can be in place; otherwise it is restarted with its new spec.
pub(super) fn strategy(spec: &ProgramSpec, cause: Cause) -> ReloadStrategy {
    match (cause, spec.reload) {
        (Cause::Config { in_place: true }, ReloadStrategy::Replace) => ReloadStrategy::Replace,
        (Cause::Config { .. }, _) => ReloadStrategy::Restart,
        (_, chosen) => chosen,
    }
}

/// Moves the restart history of `instances[from]` to `instances[to]` (the new instance of a
/// `replace` takes over from the old one).
fn inherit(instances: &mut [Instance], from: usize, to: usize) {
    if from < to && to < instances.len() {
        let (a, b) = instances.split_at_mut(to);
        if let (Some(old), Some(new)) = (a.get_mut(from), b.first_mut()) {
            new.inherit_history(old);
        }
    } else if to < from && from < instances.len() {
        let (a, b) = instances.split_at_mut(from);
        if let (Some(new), Some(old)) = (a.get_mut(to), b.first_mut()) {
            new.inherit_history(old);
        }
    }
}

/// Removes `instances[at]`, if there is one.
fn remove_at(instances: &mut Vec<Instance>, at: usize) {
    if at < instances.len() {
        instances.remove(at);
    }
}

impl Program {
    /// The `replace` reload under way ended (`Ok`: the new instances serve); the event that
    /// says so, with how long it took.
    pub(super) fn end_replace(&mut self, result: Result<String, String>, now: Instant) -> Effect {
        let took = self
            .replace_began
            .take()
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        let what = match &result {
            Ok(_) => What::ReloadDone { took },
            Err(why) => What::ReloadRolledBack { why: why.clone() },
        };
        self.replace_result = Some(result);
        Effect::Publish(Event::of_program(&self.spec.name, what))
    }
}

impl Machine {
    /// Starts, stops, restarts or replaces programs on request (names already resolved).
    pub(super) fn control_programs(&mut self, names: &[String], what: Control, now: Instant) {
        self.control_programs_for(names, what, "on request", now);
    }

    /// As [`Machine::control_programs`], for the reason `why` (logged).
    pub(super) fn control_programs_for(
        &mut self,
        names: &[String],
        what: Control,
        why: &str,
        now: Instant,
    ) {
        for name in names {
            let Some(p) = self.program_index(name) else {
                continue;
            };
            info!(
                "{} {name} {why}",
                match what {
                    Control::Start => "starting",
                    Control::Stop => "stopping",
                    Control::Restart => "restarting",
                    Control::Replace => "replacing",
                }
            );
            let Some(program) = self.programs.get_mut(p) else {
                continue;
            };
            // Start order no longer applies to a program someone handles by hand.
            program.launched = true;
            if what != Control::Stop {
                self.resume_watch(p);
            }
            let Some(program) = self.programs.get_mut(p) else {
                continue;
            };
            if what != Control::Start {
                // A request supersedes the reloads verdicts scheduled.
                program.delayed.clear();
            }
            if what == Control::Replace {
                let indexes = (0..program.spec.instances).collect();
                self.begin_replace(p, indexes, now);
                continue;
            }
            if what == Control::Stop && program.replacing.take().is_some() {
                let why = Err(format!("{name} was stopped"));
                self.out.push(program.end_replace(why, now));
            }
            self.each_instance(p, now, |inst, spec| match what {
                Control::Start => inst.start(spec),
                Control::Stop => inst.stop(spec, now),
                Control::Restart | Control::Replace => inst.restart(spec, now),
            });
            // A scheduled program: a stop pauses its timetable, anything else resumes it.
            if let Some(program) = self.programs.get_mut(p)
                && program.spec.schedule.is_some()
            {
                if what == Control::Stop {
                    info!("{name}: no more scheduled runs until `ginit start {name}`");
                    program.timetable.next = None;
                } else if program.timetable.next.is_none() {
                    self.arm(p, None, now);
                }
            }
        }
        self.progress(now);
    }

    /// A `replace` reload of program `name` is under way.
    pub(super) fn is_replacing(&self, name: &str) -> bool {
        self.program_index(name)
            .and_then(|p| self.programs.get(p))
            .is_some_and(|q| q.replacing.is_some())
    }

    /// Replaces the given instances of program `p` one at a time (see the module header).
    fn begin_replace(&mut self, p: usize, indexes: Vec<u32>, now: Instant) {
        self.replacing_any = true;
        let Some(program) = self.programs.get_mut(p) else {
            return;
        };
        program.replace_result = None;
        match &mut program.replacing {
            Some(queue) => {
                for i in indexes {
                    if !queue.contains(&i) {
                        queue.push(i);
                    }
                }
            }
            None => {
                program.replacing = Some(indexes);
                program.replace_began = Some(now);
                let event = Event::of_program(&program.spec.name, What::ReloadBegun);
                self.out.push(Effect::Publish(event));
            }
        }
    }

    /// The `replace` reloads verdicts delayed whose backoff is over begin.
    pub(super) fn delayed_replaces(&mut self, p: usize, now: Instant) {
        let Some(program) = self.programs.get_mut(p) else {
            return;
        };
        if !self.replacing_any || !program.delayed.iter().any(|d| now >= d.0) {
            return;
        }
        let mut due = Vec::new();
        program.delayed.retain(|&(at, index)| {
            if now >= at {
                due.push(index);
            }
            now < at
        });
        self.begin_replace(p, due, now);
    }

    /// Moves every `replace` reload one step: start the new instance, promote it once
    /// ready and stop the old one, drop the old one once down; give up (keeping the old
    /// one) when the new one ends before it is ready.
    pub(super) fn advance_replacements(&mut self, now: Instant) {
        if !self.replacing_any {
            return;
        }
        for p in 0..self.programs.len() {
            let Some(program) = self.programs.get_mut(p) else {
                break;
            };
            if program.replacing.is_none() {
                // What a cancelled replace (a stop, a shutdown) left: a new instance that
                // never took over, or an old one that was retiring.
                program
                    .instances
                    .retain(|i| i.is_live() || i.role == Role::Serving);
                continue;
            }
            self.touched(p);
            while self.replace_step(p, now) {}
        }
        self.replacing_any = self
            .programs
            .iter()
            .any(|p| p.replace_pending() || p.instances.iter().any(|i| i.role != Role::Serving));
    }

    /// One step of the `replace` reload of program `p`; true to take the next one at once.
    fn replace_step(&mut self, p: usize, now: Instant) -> bool {
        let serial = self.serial + 1;
        let Some(program) = self.programs.get_mut(p) else {
            return false;
        };
        let Some(&index) = program.replacing.as_ref().and_then(|q| q.first()) else {
            if program.replacing.take().is_some() {
                let n = program.spec.instances;
                info!(
                    "replaced {} ({n} instance{})",
                    program.spec.name,
                    if n == 1 { "" } else { "s" }
                );
                let done = Ok(format!("replaced {}", program.spec.name));
                self.out.push(program.end_replace(done, now));
            }
            return false;
        };
        let label = program.label(index);
        let find = |surge: bool| {
            program
                .instances
                .iter()
                .position(|i| i.index == index && (i.role == Role::Surge) == surge)
        };
        let (old, new) = (find(false), find(true));
        let old_one = old.and_then(|o| program.instances.get(o));
        let new_one = new.and_then(|n| program.instances.get(n));
        match (old, old_one, new, new_one) {
            (Some(o), Some(i), None, _) if i.role == Role::Retiring => {
                if i.is_live() {
                    return false; // the old one is still stopping
                }
                remove_at(&mut program.instances, o);
                next_index(program);
                true
            }
            (Some(o), Some(i), None, _) if !i.is_up() => {
                // Nothing serves at this index: a plain (re)start is all there is to do.
                let spec = program.spec.clone();
                let steps = program
                    .instances
                    .get_mut(o)
                    .map(|i| i.restart(&spec, now))
                    .unwrap_or_default();
                next_index(program);
                self.apply(p, o, steps, now);
                true
            }
            (_, _, None, _) => {
                self.serial = serial;
                let mut fresh = Instance::new(index, serial, &program.spec);
                fresh.role = Role::Surge;
                fresh.health_paused = program.health_paused;
                let steps = fresh.start(&program.spec);
                program.instances.push(fresh);
                let at = program.instances.len() - 1;
                info!("starting a new {label} to replace the running one");
                self.apply(p, at, steps, now);
                // On to the next step at once: the answer to the spawn comes before anything
                // else, and then it is ready already if it has no ready check.
                true
            }
            (old, _, Some(n), Some(i)) if i.is_ready() => {
                if let Some(i) = program.instances.get_mut(n) {
                    i.role = Role::Serving;
                }
                let Some(o) = old else {
                    next_index(program);
                    return true;
                };
                inherit(&mut program.instances, o, n);
                let spec = program.spec.clone();
                let Some(i) = program.instances.get_mut(o) else {
                    return true;
                };
                i.role = Role::Retiring;
                info!("the new {label} is ready: stopping the old one");
                let steps = i.stop(&spec, now);
                self.apply(p, o, steps, now);
                true
            }
            // Starting, or being killed for not being ready.
            (_, _, Some(_), Some(i)) if i.is_live() => false,
            (_, _, Some(n), new_one) => {
                let code = new_one.and_then(|i| i.last_exit).unwrap_or(127);
                let why = format!("ended with status {code} before it was ready");
                remove_at(&mut program.instances, n);
                program.replacing = None;
                let msg = format!("the new {label} {why}; the old one keeps serving");
                error!("reload of {} failed: {msg}", program.spec.name);
                self.out.push(program.end_replace(Err(msg), now));
                false
            }
        }
    }

    /// A verdict about the instance whose process is `pid` (over its `memory_max`, its
    /// `cpu_max` with `cpu_action: restart`, failed health checks, a missed or triggered
    /// watchdog) asks for a reload by the program's strategy, counted as a restart (see the
    /// module header).
    pub(super) fn reload_verdict(&mut self, pid: i32, reason: &str, now: Instant) {
        if self.phase != Phase::Running {
            return;
        }
        let Some((p, i)) = self.find_pid(pid) else {
            return;
        };
        let Some(program) = self.programs.get_mut(p) else {
            return;
        };
        let Some(inst) = program.instances.get(i) else {
            return;
        };
        let index = inst.index;
        let label = program.label(index);
        if !(inst.is_starting() || inst.is_ready()) || inst.role != Role::Serving {
            return;
        }
        if program.reload_pending(index) {
            debug!("{label} (pid {pid}) {reason}; a reload of it is under way already");
            return;
        }
        let spec = program.spec.clone();
        let Some(inst) = program.instances.get_mut(i) else {
            return;
        };
        let Some(delay) = inst.count_restart(&spec, now) else {
            error!(
                "{label} (pid {pid}) {reason}, and was restarted {} times in {} already: \
                 giving up, stopping it",
                spec.max_restarts,
                format_duration(spec.restart_window)
            );
            let steps = inst.give_up(&spec, now);
            self.apply(p, i, steps, now);
            self.progress(now);
            return;
        };
        warn!(
            "{label} (pid {pid}) {reason}: reloading it (restart {}, in {})",
            inst.restarts,
            format_duration(delay)
        );
        // A counted restart is published as one, so `events` and the metrics' restart count
        // agree with RESTARTS. `restart` publishes it once the instance is down (it is then
        // in backoff, as after a crash); `signal` and `replace` have no such moment.
        let scheduled = Effect::Publish(Event::of(
            &spec.name,
            index,
            What::RestartScheduled {
                delay: delay.as_secs_f64(),
                restarts: inst.restarts,
            },
        ));
        let strategy = strategy(&spec, Cause::Verdict);
        if !matches!(strategy, ReloadStrategy::Restart) {
            self.out.push(scheduled);
        }
        match strategy {
            ReloadStrategy::Signal(signal) => self.out.push(Effect::SignalInstance { pid, signal }),
            ReloadStrategy::Restart => {
                let steps = inst.reload_after(&spec, now, delay);
                self.apply(p, i, steps, now);
            }
            ReloadStrategy::Replace if delay.is_zero() => self.begin_replace(p, vec![index], now),
            ReloadStrategy::Replace => {
                program.delayed.push((now + delay, index));
                self.replacing_any = true;
            }
        }
        self.progress(now);
    }

    /// Whether a `control` request has finished: `None` while instances are still on their
    /// way, then `Ok(message)` or `Err(why)`.
    pub(super) fn settled(
        &self,
        names: &[String],
        what: Control,
    ) -> Option<Result<String, String>> {
        let mut problems = Vec::new();
        for name in names {
            let Some(program) = self.program_index(name).and_then(|p| self.programs.get(p)) else {
                problems.push(format!("{name} was removed from the config"));
                continue;
            };
            if what == Control::Replace {
                if program.replacing.is_some() {
                    return None;
                }
                match &program.replace_result {
                    Some(Err(e)) => problems.push(e.clone()),
                    Some(Ok(_)) => {}
                    None => problems.push(format!("the reload of {name} was interrupted")),
                }
                continue;
            }
            for inst in &program.instances {
                if inst.is_stopping() {
                    return None;
                }
                let starting = inst.is_live() && !inst.is_ready();
                match what {
                    Control::Start | Control::Restart if starting => return None,
                    Control::Stop => {}
                    _ if inst.is_ready() || inst.state == super::instance::State::Done => {}
                    _ => problems.push(format!(
                        "{} is {}{}",
                        program.label(inst.index),
                        inst.word(&program.spec),
                        inst.last_exit
                            .map(|c| format!(" (last exit status {c})"))
                            .unwrap_or_default()
                    )),
                }
            }
        }
        if !problems.is_empty() {
            return Some(Err(problems.join("; ")));
        }
        let done = match what {
            Control::Start => "started",
            Control::Stop => "stopped",
            Control::Restart => "restarted",
            Control::Replace => "replaced",
        };
        Some(Ok(format!("{done} {}", names.join(", "))))
    }

    /// Applies a new, valid config as a difference: new programs start, removed ones stop,
    /// changed ones are reloaded by [`strategy`], unchanged ones are not touched. Linear in the
    /// size of both configs.
    pub(super) fn apply_config(&mut self, new: Config, now: Instant) -> String {
        let d = diff::diff(&self.config, &new);
        let summary = format!(
            "config reloaded: {} added, {} removed, {} changed, {} unchanged",
            d.added.len(),
            d.removed.len(),
            d.changed.len(),
            d.unchanged.len()
        );
        info!("{summary}");
        self.shutdown = new.shutdown;
        let specs = positions(&new.programs);
        let spec_of = |name: &str| specs.get(name).and_then(|&i| new.programs.get(i));
        for name in &d.removed {
            let Some(p) = self.program_index(name) else {
                continue;
            };
            if let Some(program) = self.programs.get_mut(p) {
                program.removing = true;
                program.delayed.clear();
            }
            self.reshaping = true;
            self.each_instance(p, now, |inst, spec| inst.stop(spec, now));
        }
        for name in &d.changed {
            let Some(p) = self.program_index(name) else {
                continue;
            };
            let (Some(program), Some(spec)) = (self.programs.get_mut(p), spec_of(name)) else {
                continue;
            };
            program.delayed.clear();
            let in_place =
                program.spec.instances == spec.instances && program.launched && program.live();
            if strategy(spec, Cause::Config { in_place }) == ReloadStrategy::Replace {
                // Zero downtime: new instances with the new settings, each replacing an old
                // one once ready (a new build that never gets ready is rolled back).
                program.spec = Rc::new(spec.clone());
                self.begin_replace(p, (0..spec.instances).collect(), now);
                continue;
            }
            program.replacement = Some(Rc::new(spec.clone()));
            self.reshaping = true;
            self.each_instance(p, now, |inst, spec| inst.stop(spec, now));
        }
        for name in &d.added {
            if let Some(spec) = spec_of(name) {
                let program = Program::new(Rc::new(spec.clone()), &mut self.serial);
                self.programs.push(program);
            }
        }
        // Keep the file's order, which is the order of start among equals.
        self.programs
            .sort_by_key(|q| specs.get(&q.spec.name).copied().unwrap_or(usize::MAX));
        self.monitored = new.programs.iter().any(ProgramSpec::is_monitored);
        self.config = new;
        self.reindex();
        self.progress(now);
        summary
    }

    /// Drops removed programs and restarts changed ones once they are down.
    pub(super) fn finish_replacements(&mut self) {
        if !self.reshaping {
            return;
        }
        let before = self.programs.len();
        self.programs.retain(|p| !p.removing || p.live());
        let mut changed = self.programs.len() != before;
        for program in &mut self.programs {
            if !program.live()
                && let Some(spec) = program.replacement.take()
            {
                *program = Program::new(spec, &mut self.serial);
                changed = true;
            }
        }
        self.reshaping = self
            .programs
            .iter()
            .any(|p| p.removing || p.replacement.is_some());
        if changed {
            self.reindex();
        }
    }
}

/// The index at the front of the replace queue is done.
fn next_index(program: &mut Program) {
    if let Some(q) = &mut program.replacing
        && !q.is_empty()
    {
        q.remove(0);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Exited, Input};
    use super::*;
    use crate::control::protocol::Request;
    use std::time::Duration;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_strategy_is_chosen_in_one_place() {
        let mut spec = ProgramSpec::new("p", vec!["x".into()]);
        let config = |in_place| Cause::Config { in_place };
        for (reload, request, config_in_place, config_not) in [
            (
                ReloadStrategy::Replace,
                ReloadStrategy::Replace,
                ReloadStrategy::Replace,
                ReloadStrategy::Restart,
            ),
            (
                ReloadStrategy::Restart,
                ReloadStrategy::Restart,
                ReloadStrategy::Restart,
                ReloadStrategy::Restart,
            ),
            (
                ReloadStrategy::Signal(libc::SIGHUP),
                ReloadStrategy::Signal(libc::SIGHUP),
                ReloadStrategy::Restart,
                ReloadStrategy::Restart,
            ),
        ] {
            spec.reload = reload;
            assert_eq!(strategy(&spec, Cause::Request), request);
            assert_eq!(strategy(&spec, Cause::Verdict), request);
            assert_eq!(strategy(&spec, config(true)), config_in_place);
            assert_eq!(strategy(&spec, config(false)), config_not);
        }
    }

    const REPLACE: &str = "programs:\n  web:\n    command: x\n    reload: {strategy: replace}\n    ready: {notify: true, timeout: 5s}\n    instances: 2\n";

    /// Starts REPLACE's two instances and makes them ready; returns their pids.
    fn serving(e: &mut Edge, t: Instant) -> (i32, i32) {
        e.feed(Input::Begin, t);
        let (a, b) = (e.spawned[0].2, e.spawned[1].2);
        e.notify(a, "READY=1", t);
        e.notify(b, "READY=1", t);
        (a, b)
    }

    #[test]
    fn a_replace_goes_one_instance_at_a_time_and_carries_the_history() {
        let mut e = edge(REPLACE);
        let t = Instant::now();
        let (a, b) = serving(&mut e, t);
        let c = e.ask(
            Request::Reload {
                programs: vec!["web".into()],
            },
            t,
        );
        // 1. a new instance beside the old one, capacity kept.
        let a2 = e.pid("web");
        assert_eq!(e.spawned.len(), 3);
        assert!(e.signals.is_empty());
        assert_eq!(e.status(t).len(), 3);
        let r = e.ask(Request::Ready {}, t);
        assert_eq!(
            e.answer(r).map(|r| r.ok),
            Some(true),
            "the new one does not count yet"
        );
        // 2. ready: the old one is told to stop.
        e.notify(a2, "READY=1", t);
        assert_eq!(e.signals, [(a, libc::SIGTERM), (a, libc::SIGCONT)]);
        assert_eq!(
            e.spawned.len(),
            3,
            "the next waits for the old one to be down"
        );
        // 3. down: the next index.
        e.reap(&[killed(a, libc::SIGTERM)], true, t);
        let b2 = e.pid("web");
        assert_eq!(e.spawned.len(), 4);
        e.notify(b2, "READY=1", t);
        assert!(e.answer(c).is_none());
        e.reap(&[killed(b, libc::SIGTERM)], true, t);
        assert_eq!(
            e.answer(c).and_then(|r| r.message.clone()).as_deref(),
            Some("replaced web")
        );
        let status = e.status(t);
        assert_eq!(
            status.iter().map(|s| s.pid).collect::<Vec<_>>(),
            [Some(a2), Some(b2)]
        );
        assert!(status.iter().all(|s| s.state == "ready" && s.restarts == 0));
    }

    #[test]
    fn a_new_instance_that_exits_before_it_is_ready_rolls_back() {
        let mut e = edge(REPLACE);
        let t = Instant::now();
        let (a, _) = serving(&mut e, t);
        let c = e.ask(
            Request::Reload {
                programs: vec!["web".into()],
            },
            t,
        );
        let a2 = e.pid("web");
        e.reap(&[exit(a2, 3)], true, t);
        assert_eq!(
            e.answer(c).and_then(|r| r.error.clone()).as_deref(),
            Some(
                "the new web.0 ended with status 3 before it was ready; the old one keeps serving"
            )
        );
        assert!(e.signals.is_empty(), "the old instance is untouched");
        let status = e.status(t);
        assert_eq!(status.len(), 2);
        assert_eq!(status[0].pid, Some(a));
        assert!(status.iter().all(|s| s.state == "ready"));
        // Nothing restarts the new one, nor replaces the second index.
        e.feed(Input::Time, t + secs(60));
        assert_eq!(e.spawned.len(), 3);
    }

    #[test]
    fn a_new_instance_not_ready_in_time_is_killed_and_rolled_back() {
        let mut e = edge(REPLACE);
        let t = Instant::now();
        serving(&mut e, t);
        let c = e.ask(
            Request::Reload {
                programs: vec!["web".into()],
            },
            t,
        );
        let a2 = e.pid("web");
        assert_eq!(e.m.deadline(), Some(t + secs(5)));
        e.feed(Input::Time, t + secs(5));
        assert_eq!(e.signals, [(a2, libc::SIGKILL)]);
        assert!(e.answer(c).is_none(), "until it is gone");
        e.reap(&[killed(a2, libc::SIGKILL)], true, t + secs(5));
        assert_eq!(
            e.answer(c).and_then(|r| r.error.clone()).as_deref(),
            Some(
                "the new web.0 ended with status 137 before it was ready; the old one keeps serving"
            )
        );
    }

    #[test]
    fn a_new_instance_that_cannot_be_spawned_rolls_back() {
        let mut e = edge(REPLACE);
        let t = Instant::now();
        serving(&mut e, t);
        e.fail.push("web".into());
        let c = e.ask(
            Request::Reload {
                programs: vec!["web".into()],
            },
            t,
        );
        assert_eq!(
            e.answer(c).and_then(|r| r.error.clone()).as_deref(),
            Some(
                "the new web.0 ended with status 127 before it was ready; the old one keeps serving"
            )
        );
    }

    #[test]
    fn stopping_or_shutting_down_cancels_a_replace() {
        let mut e = edge(REPLACE);
        let t = Instant::now();
        let (a, b) = serving(&mut e, t);
        let c = e.ask(
            Request::Reload {
                programs: vec!["web".into()],
            },
            t,
        );
        let a2 = e.pid("web");
        let s = e.ask(
            Request::Stop {
                programs: vec!["web".into()],
            },
            t,
        );
        assert_eq!(
            e.answer(c).and_then(|r| r.error.clone()).as_deref(),
            Some("web was stopped")
        );
        e.reap(
            &[
                killed(a, libc::SIGTERM),
                killed(b, libc::SIGTERM),
                killed(a2, libc::SIGTERM),
            ],
            true,
            t,
        );
        assert_eq!(e.answer(s).map(|r| r.ok), Some(true));
        assert_eq!(
            e.status(t).len(),
            2,
            "the new instance that never took over is gone"
        );
        // A shutdown during a replace: the answer says so.
        let mut e = edge(REPLACE);
        serving(&mut e, t);
        let c = e.ask(
            Request::Reload {
                programs: vec!["web".into()],
            },
            t,
        );
        e.feed(Input::Signal(libc::SIGTERM), t);
        assert_eq!(
            e.answer(c).and_then(|r| r.error.clone()).as_deref(),
            Some("ginit is shutting down")
        );
    }

    #[test]
    fn verdict_reloads_by_restart_count_back_off_and_give_up() {
        let mut e = edge(
            "programs:\n  a: {command: x, critical: true, max_restarts: 2, backoff: {initial: 1s}}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let mut now = t;
        for (n, delay) in [(1, 1), (2, 2)] {
            let pid = e.pid("a");
            e.trigger(pid, now);
            assert_eq!(
                e.signals[e.signals.len() - 2..],
                [(pid, libc::SIGTERM), (pid, libc::SIGCONT)]
            );
            assert_eq!(e.status(now)[0].restarts, n);
            // A second verdict before it is down changes nothing.
            e.trigger(pid, now);
            assert_eq!(e.status(now)[0].restarts, n);
            e.reap(&[killed(pid, libc::SIGTERM)], true, now);
            assert_eq!(e.status(now)[0].state, "backoff");
            assert_eq!(e.m.deadline(), Some(now + secs(delay)));
            now += secs(delay);
            e.feed(Input::Time, now);
            assert_ne!(e.pid("a"), pid);
        }
        // The third within the window: stopped, failed, and (critical) the run ends.
        let pid = e.pid("a");
        e.trigger(pid, now);
        assert_eq!(e.signals.last(), Some(&(pid, libc::SIGCONT)));
        e.reap(&[killed(pid, libc::SIGTERM)], false, now);
        assert_eq!(e.status(now)[0].state, "failed");
        assert_eq!(e.status(now)[0].restarts, 2);
        assert_eq!(e.names().len(), 3);
        assert_eq!(e.exit, Some(143));
    }

    #[test]
    fn a_requested_restart_is_not_counted() {
        let mut e = edge("programs:\n  a: {command: x, max_restarts: 1}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        for _ in 0..3 {
            let pid = e.pid("a");
            let c = e.ask(
                Request::Restart {
                    programs: vec!["a".into()],
                },
                t,
            );
            e.reap(&[killed(pid, libc::SIGTERM)], true, t);
            assert_eq!(
                e.answer(c).and_then(|r| r.message.clone()).as_deref(),
                Some("restarted a")
            );
        }
        assert_eq!(e.status(t)[0].restarts, 0);
        assert_eq!(e.status(t)[0].state, "running");
    }

    #[test]
    fn verdict_reloads_by_signal_are_counted() {
        let mut e = edge(
            "programs:\n  a: {command: x, max_restarts: 1, reload: {strategy: signal, signal: SIGHUP}}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let pid = e.pid("a");
        e.trigger(pid, t);
        assert_eq!(e.signals, [(pid, libc::SIGHUP)]);
        assert_eq!(e.status(t)[0].restarts, 1);
        e.trigger(pid, t);
        assert_eq!(e.signals[1..], [(pid, libc::SIGTERM), (pid, libc::SIGCONT)]);
        e.reap(&[killed(pid, libc::SIGTERM)], true, t);
        assert_eq!(e.status(t)[0].state, "failed");
    }

    #[test]
    fn verdict_reloads_publish_one_restart_scheduled_per_counted_restart() {
        for reload in ["restart", "replace", "signal, signal: SIGHUP"] {
            let mut e = edge(&format!(
                "programs:\n  a: {{command: x, reload: {{strategy: {reload}}}}}\n"
            ));
            let t = Instant::now();
            e.feed(Input::Begin, t);
            let pid = e.pid("a");
            e.trigger(pid, t);
            // The restart strategy publishes it once the instance is down.
            if reload == "restart" {
                e.reap(&[killed(pid, libc::SIGTERM)], true, t);
            }
            let scheduled: Vec<_> = e
                .events
                .iter()
                .filter_map(|ev| match ev.what {
                    What::RestartScheduled { restarts, .. } => Some(restarts),
                    _ => None,
                })
                .collect();
            assert_eq!(scheduled, [1], "{reload}");
            assert_eq!(e.status(t)[0].restarts, 1, "{reload}");
        }
    }

    #[test]
    fn verdict_replaces_wait_their_backoff_while_the_old_one_serves_without_health() {
        let mut e = edge(
            "programs:\n  a:\n    command: x\n    reload: {strategy: replace}\n    backoff: {initial: 1s}\n    health: {exec: [x], interval: 1s}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let old = e.pid("a");
        assert_eq!(e.m.health_checks("a"), [true]);
        e.trigger(old, t);
        assert_eq!(e.spawned.len(), 1, "the replacement waits for the backoff");
        assert!(e.signals.is_empty(), "the old one keeps serving");
        assert_eq!(e.status(t)[0].restarts, 1);
        assert_eq!(
            e.m.health_checks("a"),
            [false],
            "no health checks while it is being replaced"
        );
        // Not counted twice.
        e.trigger(old, t);
        assert_eq!(e.status(t)[0].restarts, 1);
        assert_eq!(e.m.deadline(), Some(t + secs(1)));
        e.feed(Input::Time, t + secs(1));
        let new = e.pid("a");
        assert_ne!(new, old);
        assert!(e.m.health_checks("a").iter().all(|h| !h));
        // No ready check: ready at once, so the old one is told to stop.
        assert_eq!(e.signals, [(old, libc::SIGTERM), (old, libc::SIGCONT)]);
        e.reap(&[killed(old, libc::SIGTERM)], true, t + secs(1));
        let status = e.status(t);
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].pid, Some(new));
        assert_eq!(
            status[0].restarts, 1,
            "the new instance carries the count on"
        );
        assert_eq!(
            e.m.health_checks("a"),
            [true],
            "health checks resume once replaced"
        );
        assert_eq!(
            e.m.deadline(),
            Some(t + secs(2)),
            "its first health attempt"
        );
    }

    #[test]
    fn health_is_suspended_during_a_requested_replace() {
        let mut e = edge(
            "programs:\n  a:\n    command: x\n    reload: {strategy: replace}\n    ready: {notify: true}\n    health: {exec: [x]}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let old = e.pid("a");
        e.notify(old, "READY=1", t);
        assert_eq!(e.m.health_checks("a"), [true]);
        e.ask(
            Request::Reload {
                programs: vec!["a".into()],
            },
            t,
        );
        let new = e.pid("a");
        assert!(e.m.health_checks("a").iter().all(|h| !h));
        e.notify(new, "READY=1", t);
        assert!(e.m.health_checks("a").iter().all(|h| !h));
        e.reap(&[killed(old, libc::SIGTERM)], true, t);
        assert_eq!(e.m.health_checks("a"), [true]);
        // Verdicts are not taken while shutting down.
        e.feed(Input::Signal(libc::SIGTERM), t);
        e.trigger(new, t);
        assert_eq!(e.status(t)[0].restarts, 0);
    }

    #[test]
    fn reload_applies_the_difference() {
        let old = "programs:\n  keep: {command: x}\n  change: {command: x}\n  drop: {command: x}\n";
        let new =
            "programs:\n  keep: {command: x}\n  change: {command: x --new}\n  add: {command: x}\n";
        let mut e = edge(old);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let (keep, change, drop) = (e.pid("keep"), e.pid("change"), e.pid("drop"));
        e.next_config = Some(Ok(config(new)));
        e.feed(Input::Signal(libc::SIGHUP), t);
        assert_eq!(
            e.signals,
            [
                (drop, libc::SIGTERM),
                (drop, libc::SIGCONT),
                (change, libc::SIGTERM),
                (change, libc::SIGCONT)
            ]
        );
        assert_eq!(e.names().last(), Some(&"add"));
        e.reap(&[exit(drop, 0), exit(change, 0)], true, t);
        let status = e.status(t);
        let names: Vec<&str> = status.iter().map(|st| st.program.as_str()).collect();
        assert_eq!(names, ["keep", "change", "add"]);
        assert_eq!(status[0].pid, Some(keep), "unchanged program untouched");
        assert_ne!(status[1].pid, Some(change));
        assert_eq!(status[1].state, "running");
    }

    #[test]
    fn a_changed_program_with_replace_is_replaced_in_place() {
        let old = "programs:\n  web: {command: x, reload: {strategy: replace}}\n";
        let new = "programs:\n  web: {command: x --new, reload: {strategy: replace}}\n";
        let mut e = edge(old);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let before = e.pid("web");
        e.next_config = Some(Ok(config(new)));
        let c = e.ask(Request::ReloadConfig {}, t);
        assert_eq!(
            e.answer(c).and_then(|r| r.message.clone()).as_deref(),
            Some("config reloaded: 0 added, 0 removed, 1 changed, 0 unchanged")
        );
        // The new instance first, with the new command; then the old one stops.
        let spec = e.spawned_specs.last().expect("a spawn");
        assert_eq!(spec.command, ["x", "--new"]);
        assert_eq!(
            e.signals,
            [(before, libc::SIGTERM), (before, libc::SIGCONT)]
        );
    }

    /// 10,000 programs in one dependency chain, listed last first, each waiting for the
    /// readiness of the one before: started link by link, then reloaded with one change.
    /// Each event costs what it changes, so this stays quick (a quadratic walk would take
    /// 10^8 steps or more). No timing is asserted; the test would simply crawl.
    #[test]
    fn a_long_dependency_chain_starts_and_reloads_in_near_linear_time() {
        const N: usize = 10_000;
        let template = config("programs:\n  x: {command: x, ready: {notify: true}}\n");
        let chain = |changed: Option<usize>| {
            let mut c = config("programs:\n  x: {command: x}\n");
            c.programs = (0..N)
                .rev()
                .map(|k| {
                    let mut p = template.programs[0].clone();
                    p.name = format!("p{k}");
                    if k > 0 {
                        p.depends_on = vec![format!("p{}", k - 1)];
                    }
                    if changed == Some(k) {
                        p.command.push("--new".into());
                    }
                    p
                })
                .collect();
            c
        };
        let mut e = Edge::new(chain(None), None);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        for k in 0..N {
            assert_eq!(e.spawned.len(), k + 1, "p{k} started alone");
            let pid = e.spawned[k].2;
            e.notify(pid, "READY=1", t);
            assert!(e.m.is_ready_pid(pid));
        }
        assert_eq!(e.spawned[N - 1].0, format!("p{}", N - 1));
        assert!(e.m.ready());
        e.next_config = Some(Ok(chain(Some(N / 2))));
        let c = e.ask(Request::ReloadConfig {}, t);
        let summary = e
            .answer(c)
            .and_then(|r| r.message.clone())
            .unwrap_or_default();
        assert!(summary.contains("1 changed"), "{summary}");
        let pid = e.pid(&format!("p{}", N / 2));
        e.reap(&[killed(pid, libc::SIGTERM)], true, t);
        assert_eq!(e.spawned.len(), N + 1);
        let pid = e.spawned[N].2;
        e.notify(pid, "READY=1", t);
        assert!(e.m.is_ready_pid(pid));
        assert!(e.m.ready());
        assert_eq!(e.status(t).len(), N);
    }

    #[test]
    fn exits_of_unknown_processes_change_nothing() {
        let mut e = edge("programs:\n  a: {command: x}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        e.reap(
            &[Exited {
                pid: 4242,
                code: 0,
                signal: None,
            }],
            true,
            t,
        );
        assert_eq!(e.status(t)[0].state, "running");
    }
}
