//! The supervisor: every program and its instances, start order, critical programs, the
//! ordered shutdown, and live reload as a difference.
//!
//! Side effects go through [`Ops`] (spawn, signal, clear leftovers), so the ordering rules are
//! unit-tested with a fake; the real implementation lives in `event_loop`. Per-instance rules
//! (restart policy, backoff, stop escalation) are in `program`.
//!
//! Rules:
//! - a program starts once each dependency is ready (every instance running) or, for a
//!   oneshot, done (exited 0); a program whose dependency failed for good never starts;
//! - a critical program that fails for good ends the run with its status (at least 1); a
//!   critical program with `restart: never` (such as `main`, the PROGRAM given after `--`)
//!   ends it whenever it exits, with its status;
//! - shutdown stops dependents before what they depend on; independent programs in parallel;
//!   each instance gets its stop signal and timeout; `shutdown.timeout` bounds it all; then
//!   the namespace is cleared of leftovers (SIGTERM, a grace period, SIGKILL).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use log::{error, info, warn};

use crate::config::{Config, ProgramSpec, ReloadStrategy, Restart, diff};
use crate::program::{Action, Instance, State};

/// Longest grace the leftovers get at the end of a run (bounded by `shutdown.timeout`).
const LEFTOVER_GRACE: Duration = Duration::from_secs(2);
/// How long SIGKILLed processes may take to be reaped before ginit exits anyway.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The side effects the supervisor asks for.
pub trait Ops {
    /// Starts instance `index` of `spec`; returns its pid.
    fn spawn(&mut self, spec: &ProgramSpec, index: u32) -> Result<i32, String>;
    /// Sends `sig` to the process group of an instance whose leader is `pid`.
    fn signal(&mut self, pid: i32, sig: i32);
    /// Sends `sig` to every leftover process (the namespace, or ginit's descendants).
    fn signal_leftovers(&mut self, sig: i32);
}

struct Program {
    spec: ProgramSpec,
    instances: Vec<Instance>,
    /// Its instances have been started once (start order is only about the first start).
    launched: bool,
    /// Removed from the config: dropped once every instance is down.
    removing: bool,
    /// Changed in the config: restarted with this spec once every instance is down.
    replacement: Option<ProgramSpec>,
    /// Already said why it cannot start.
    blocked_reported: bool,
    /// A `replace` reload under way: the instance indexes still to replace, in order.
    replacing: Option<VecDeque<u32>>,
    /// How the last `replace` reload ended.
    replace_result: Option<Result<String, String>>,
}

impl Program {
    fn new(spec: ProgramSpec) -> Program {
        let instances = (0..spec.instances)
            .map(|i| Instance::new(i, &spec))
            .collect();
        Program {
            spec,
            instances,
            launched: false,
            removing: false,
            replacement: None,
            blocked_reported: false,
            replacing: None,
            replace_result: None,
        }
    }

    fn live(&self) -> bool {
        self.instances.iter().any(Instance::is_live)
    }

    /// Ready for its dependents: every instance running (a oneshot: done).
    fn satisfies_dependents(&self) -> bool {
        self.launched
            && self.instances.iter().all(|i| {
                if self.spec.oneshot {
                    i.state == State::Done
                } else {
                    i.state == State::Running && i.ready
                }
            })
    }

    /// Will never satisfy its dependents without outside help.
    fn failed_for_good(&self) -> bool {
        self.instances.iter().any(|i| i.state == State::Failed)
            || (self.spec.oneshot
                && self.launched
                && self.instances.iter().all(|i| i.state == State::Stopped))
    }

    fn label(&self, index: u32) -> String {
        self.spec.label(index)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
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
    /// Leftovers got SIGKILL.
    Killing {
        until: Instant,
    },
    Done,
}

/// One status line per instance (what `ginit status` shows).
#[derive(Debug, PartialEq)]
pub struct InstanceStatus {
    pub program: String,
    pub index: u32,
    pub pid: Option<i32>,
    pub state: &'static str,
    pub ready: bool,
    pub started: Option<Instant>,
    pub restarts: u32,
    pub last_exit: Option<i32>,
}

/// What `ginit start|stop|restart` asks of programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Start,
    Stop,
    Restart,
    /// `replace` reload: new instance, ready, then the old one stops.
    Replace,
}

pub struct Supervisor {
    programs: Vec<Program>,
    shutdown: crate::config::ShutdownSpec,
    phase: Phase,
    /// The status ginit exits with.
    exit_code: i32,
    /// The status was decided by a program that ended the run (not just a signal).
    code_decided: bool,
    children_left: bool,
}

impl Supervisor {
    pub fn new(config: &Config) -> Supervisor {
        Supervisor {
            programs: config.programs.iter().cloned().map(Program::new).collect(),
            shutdown: config.shutdown,
            phase: Phase::Running,
            exit_code: 0,
            code_decided: false,
            children_left: true,
        }
    }

    /// Starts what can start. Call once after creating the supervisor.
    pub fn start(&mut self, now: Instant, ops: &mut dyn Ops) {
        self.progress(now, ops);
    }

    /// `Some(status)` once the run is over.
    pub fn finished(&self) -> Option<i32> {
        (self.phase == Phase::Done).then_some(self.exit_code)
    }

    /// The earliest instant at which [`Supervisor::on_time`] has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Delaying { until } | Phase::Clearing { until } | Phase::Killing { until } => {
                Some(until)
            }
            Phase::Stopping { deadline } => Some(deadline),
            Phase::Running | Phase::Done => None,
        };
        self.programs
            .iter()
            .flat_map(|p| p.instances.iter().filter_map(Instance::deadline))
            .chain(phase)
            .min()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.phase != Phase::Running
    }

    pub fn status(&self) -> Vec<InstanceStatus> {
        self.programs
            .iter()
            .flat_map(|p| {
                p.instances.iter().map(|i| InstanceStatus {
                    program: p.spec.name.clone(),
                    index: i.index,
                    pid: i.pid,
                    state: match i.state {
                        State::Running if !i.ready => "starting",
                        State::Running if p.spec.ready.is_some() => "ready",
                        other => other.as_str(),
                    },
                    ready: Self::instance_ready(p, i),
                    started: i.pid.and(i.started),
                    restarts: i.restarts,
                    last_exit: i.last_exit,
                })
            })
            .collect()
    }

    /// An instance counts as ready when it runs (no readiness checks yet), a oneshot when it
    /// is done, and one that was stopped on purpose (or ended without failing) once it
    /// was started at all.
    fn instance_ready(p: &Program, i: &Instance) -> bool {
        match i.state {
            State::Running => i.ready,
            State::Done => true,
            State::Stopped => p.launched && !p.spec.oneshot,
            State::Stopping | State::Backoff | State::Failed => false,
        }
    }

    /// `ginit ready`: every instance ready and no shutdown under way (the shutdown delay
    /// turns it false first, so load balancers stop sending traffic).
    pub fn ready(&self) -> bool {
        self.phase == Phase::Running
            && self.programs.iter().all(|p| {
                p.instances
                    .iter()
                    .filter(|i| !i.surge && !i.retiring)
                    .all(|i| Self::instance_ready(p, i))
            })
    }

    /// The names a control request means: `all` is every program. Unknown names are an error.
    pub fn resolve_names(&self, names: &[String]) -> Result<Vec<String>, String> {
        if names.iter().any(|n| n == "all") && self.program_index("all").is_none() {
            return Ok(self.programs.iter().map(|p| p.spec.name.clone()).collect());
        }
        let unknown: Vec<&str> = names
            .iter()
            .filter(|n| self.program_index(n).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(format!("no program named `{}`", unknown.join("`, `")));
        }
        Ok(names.to_vec())
    }

    fn program_index(&self, name: &str) -> Option<usize> {
        self.programs.iter().position(|p| p.spec.name == name)
    }

    pub fn spec(&self, name: &str) -> Option<&ProgramSpec> {
        self.program_index(name).map(|p| &self.programs[p].spec)
    }

    /// Starts, stops or restarts programs on request (names already resolved).
    pub fn control(&mut self, names: &[String], what: Control, now: Instant, ops: &mut dyn Ops) {
        for name in names {
            let Some(p) = self.program_index(name) else {
                continue;
            };
            info!(
                "{} {name} on request",
                match what {
                    Control::Start => "starting",
                    Control::Stop => "stopping",
                    Control::Restart => "restarting",
                    Control::Replace => "replacing",
                }
            );
            // Start order no longer applies to a program someone handles by hand.
            self.programs[p].launched = true;
            if what == Control::Replace {
                let indexes = (0..self.programs[p].spec.instances).collect();
                self.begin_replace(p, indexes);
                continue;
            }
            if what == Control::Stop && self.programs[p].replacing.take().is_some() {
                self.programs[p].replace_result = Some(Err(format!("{name} was stopped")));
            }
            self.each_instance(p, now, ops, |inst, spec| match what {
                Control::Start => inst.start(spec),
                Control::Stop => inst.stop(spec, now),
                Control::Restart | Control::Replace => inst.restart(spec, now),
            });
        }
        self.progress(now, ops);
    }

    /// An instance's readiness check passed; `pid` is its process (or one of its tree, for
    /// READY=1 sent by a helper process). False when no starting instance has that pid.
    pub fn mark_ready(&mut self, pid: i32, now: Instant, ops: &mut dyn Ops) -> bool {
        let found = self.programs.iter().enumerate().find_map(|(p, prog)| {
            prog.instances
                .iter()
                .position(|i| i.pid == Some(pid))
                .map(|i| (p, i))
        });
        let Some((p, i)) = found else {
            return false;
        };
        let program = &mut self.programs[p];
        if !program.instances[i].on_ready() {
            return false;
        }
        info!("{} is ready", program.label(program.instances[i].index));
        self.progress(now, ops);
        true
    }

    /// Every instance with a running process: (pid, its program's spec, index, ready).
    pub fn running(&self) -> Vec<crate::checks::Running<'_>> {
        self.programs
            .iter()
            .flat_map(|p| {
                p.instances.iter().filter_map(|i| match i.pid {
                    Some(pid) if i.state == State::Running => {
                        Some((pid, &p.spec, i.index, i.ready))
                    }
                    _ => None,
                })
            })
            .collect()
    }

    /// A `replace` reload of program `name` is under way.
    pub fn is_replacing(&self, name: &str) -> bool {
        self.program_index(name)
            .is_some_and(|p| self.programs[p].replacing.is_some())
    }

    /// Replaces the given instances of program `p` one at a time (see [`Control::Replace`]).
    fn begin_replace(&mut self, p: usize, indexes: Vec<u32>) {
        let program = &mut self.programs[p];
        program.replace_result = None;
        match &mut program.replacing {
            Some(queue) => {
                for i in indexes {
                    if !queue.contains(&i) {
                        queue.push_back(i);
                    }
                }
            }
            None => program.replacing = Some(indexes.into()),
        }
    }

    /// Moves every `replace` reload one step: start the new instance, promote it once
    /// ready and stop the old one, drop the old one once down; give up (keeping the old
    /// one) when the new one ends before it is ready.
    fn advance_replacements(&mut self, now: Instant, ops: &mut dyn Ops) {
        for p in 0..self.programs.len() {
            let program = &mut self.programs[p];
            if program.replacing.is_none() {
                // What a cancelled replace (a stop, a shutdown) left: a new instance that
                // never took over, or an old one that was retiring.
                program
                    .instances
                    .retain(|i| i.is_live() || !(i.surge || i.retiring));
            }
            loop {
                let program = &mut self.programs[p];
                let Some(&index) = program.replacing.as_ref().and_then(|q| q.front()) else {
                    if program.replacing.take().is_some() {
                        let n = program.spec.instances;
                        info!(
                            "replaced {} ({n} instance{})",
                            program.spec.name,
                            if n == 1 { "" } else { "s" }
                        );
                        program.replace_result =
                            Some(Ok(format!("replaced {}", program.spec.name)));
                    }
                    break;
                };
                let label = program.label(index);
                let old = program
                    .instances
                    .iter()
                    .position(|i| i.index == index && !i.surge);
                let surge = program
                    .instances
                    .iter()
                    .position(|i| i.index == index && i.surge);
                match (old, surge) {
                    (Some(o), None) if program.instances[o].retiring => {
                        if program.instances[o].is_live() {
                            break; // the old one is still stopping
                        }
                        program.instances.remove(o);
                        if let Some(q) = &mut program.replacing {
                            q.pop_front();
                        }
                    }
                    (Some(o), None) if program.instances[o].state != State::Running => {
                        // Nothing serves at this index: a plain (re)start is all there is to do.
                        let actions = {
                            let prog = &mut self.programs[p];
                            prog.instances[o].restart(&prog.spec, now)
                        };
                        self.apply(p, o, actions, now, ops);
                        if let Some(q) = &mut self.programs[p].replacing {
                            q.pop_front();
                        }
                    }
                    (_, None) => {
                        let mut fresh = Instance::new(index, &program.spec);
                        fresh.surge = true;
                        let actions = fresh.start(&program.spec);
                        program.instances.push(fresh);
                        let at = program.instances.len() - 1;
                        info!("starting a new {label} to replace the running one");
                        self.apply(p, at, actions, now, ops);
                        break;
                    }
                    (old, Some(s)) => {
                        let new = &program.instances[s];
                        if new.state == State::Running && new.ready {
                            program.instances[s].surge = false;
                            if let Some(o) = old {
                                program.instances[o].retiring = true;
                                info!("the new {label} is ready: stopping the old one");
                                let actions = {
                                    let prog = &mut self.programs[p];
                                    prog.instances[o].stop(&prog.spec, now)
                                };
                                self.apply(p, o, actions, now, ops);
                            } else if let Some(q) = &mut program.replacing {
                                q.pop_front();
                            }
                            continue;
                        }
                        if new.is_live() {
                            break; // starting, or being killed for not being ready
                        }
                        let code = new.last_exit.unwrap_or(127);
                        let why = format!("ended with status {code} before it was ready");
                        program.instances.remove(s);
                        program.replacing = None;
                        let msg = format!("the new {label} {why}; the old one keeps serving");
                        error!("reload of {} failed: {msg}", program.spec.name);
                        program.replace_result = Some(Err(msg));
                        break;
                    }
                }
            }
        }
    }

    /// Restarts one instance (a `memory_max` or `cpu_max` verdict), by replacing it when
    /// that is the program's reload strategy.
    pub fn restart_instance(&mut self, name: &str, index: u32, now: Instant, ops: &mut dyn Ops) {
        let Some(p) = self.program_index(name) else {
            return;
        };
        if self.programs[p].spec.reload == ReloadStrategy::Replace {
            self.begin_replace(p, vec![index]);
            self.progress(now, ops);
            return;
        }
        if let Some(i) = self.programs[p]
            .instances
            .iter()
            .position(|i| i.index == index)
        {
            let program = &mut self.programs[p];
            let actions = program.instances[i].restart(&program.spec, now);
            self.apply(p, i, actions, now, ops);
        }
    }

    /// Whether a `control` request has finished: `None` while instances are still stopping,
    /// then `Ok(message)` or `Err(why)`.
    pub fn settled(&self, names: &[String], what: Control) -> Option<Result<String, String>> {
        let mut problems = Vec::new();
        for name in names {
            let Some(p) = self.program_index(name) else {
                problems.push(format!("{name} was removed from the config"));
                continue;
            };
            let program = &self.programs[p];
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
                let label = program.label(inst.index);
                match (what, inst.state) {
                    (_, State::Stopping) => return None,
                    (Control::Start | Control::Restart, State::Running) if !inst.ready => {
                        return None;
                    }
                    (Control::Stop, _) => {}
                    (_, State::Running | State::Done) => {}
                    (_, state) => problems.push(format!(
                        "{label} is {}{}",
                        state.as_str(),
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

    fn apply(&mut self, p: usize, i: usize, actions: Vec<Action>, now: Instant, ops: &mut dyn Ops) {
        for action in actions {
            let program = &mut self.programs[p];
            let label = program.label(program.instances[i].index);
            match action {
                Action::Spawn => {
                    let index = program.instances[i].index;
                    match ops.spawn(&program.spec, index) {
                        Ok(pid) => {
                            info!("started {label} (pid {pid})");
                            program.instances[i].on_spawned(&program.spec, pid, now);
                        }
                        Err(e) => {
                            error!("cannot start {label}: {e}");
                            let surge = program.instances[i].surge;
                            let may_restart = self.phase == Phase::Running && !surge;
                            let prog = &mut self.programs[p];
                            let more =
                                prog.instances[i].on_spawn_failed(&prog.spec, may_restart, now);
                            if !surge {
                                self.report_end(p, i, now);
                            }
                            self.apply(p, i, more, now, ops);
                        }
                    }
                }
                Action::Signal(sig) => {
                    if let Some(pid) = program.instances[i].pid {
                        ops.signal(pid, sig);
                    }
                }
            }
        }
    }

    /// Runs `step` on every instance of program `p` and carries out the actions it returns.
    fn each_instance(
        &mut self,
        p: usize,
        now: Instant,
        ops: &mut dyn Ops,
        step: impl Fn(&mut Instance, &ProgramSpec) -> Vec<Action>,
    ) {
        for i in 0..self.programs[p].instances.len() {
            let program = &mut self.programs[p];
            let actions = step(&mut program.instances[i], &program.spec);
            self.apply(p, i, actions, now, ops);
        }
    }

    /// SIGKILL for every instance that may have a process; pending restarts are cancelled.
    fn kill_all(&mut self, now: Instant, ops: &mut dyn Ops) {
        for p in 0..self.programs.len() {
            self.each_instance(p, now, ops, |inst, _| inst.kill());
        }
    }

    /// Logs how an instance's run ended, once it has a new state.
    fn report_end(&self, p: usize, i: usize, now: Instant) {
        let program = &self.programs[p];
        let inst = &program.instances[i];
        let label = program.label(inst.index);
        match (inst.state, inst.deadline()) {
            (State::Backoff, Some(at)) => {
                let wait = at.saturating_duration_since(now);
                warn!(
                    "{label} will restart in {} (restart {})",
                    crate::config::units::format_duration(wait),
                    inst.restarts
                );
            }
            (State::Failed, _) if program.spec.restart != Restart::Never => {
                error!(
                    "{label} failed: more than {} restarts in {}; giving up",
                    program.spec.max_restarts,
                    crate::config::units::format_duration(program.spec.restart_window)
                );
            }
            (State::Failed, _) => error!("{label} failed"),
            (State::Done, _) => info!("{label} is done"),
            _ => {}
        }
    }

    /// A batch of reaped processes; `children_left` says whether any child remains.
    pub fn on_reaped(
        &mut self,
        exits: &[crate::reaper::Exit],
        children_left: bool,
        now: Instant,
        ops: &mut dyn Ops,
    ) {
        self.children_left = children_left;
        for exit in exits {
            let found = self.programs.iter().enumerate().find_map(|(p, prog)| {
                prog.instances
                    .iter()
                    .position(|i| i.pid == Some(exit.pid))
                    .map(|i| (p, i))
            });
            let Some((p, i)) = found else { continue };
            let program = &mut self.programs[p];
            let surge = program.instances[i].surge;
            let may_restart = self.phase == Phase::Running && !surge;
            let label = program.label(program.instances[i].index);
            let was_stopping = program.instances[i].state == State::Stopping;
            if surge {
                warn!("the new {label} (pid {}) {}", exit.pid, exit.describe());
            } else if was_stopping {
                info!("{label} (pid {}) stopped: it {}", exit.pid, exit.describe());
            } else if exit.code() == 0 {
                info!("{label} (pid {}) {}", exit.pid, exit.describe());
            } else {
                warn!("{label} (pid {}) {}", exit.pid, exit.describe());
            }
            let actions = program.instances[i].on_exit(
                &program.spec,
                exit.code(),
                exit.signal(),
                may_restart,
                now,
            );
            if !was_stopping && !surge {
                self.report_end(p, i, now);
                self.check_critical(p, i, now);
            }
            self.apply(p, i, actions, now, ops);
        }
        self.progress(now, ops);
    }

    /// A critical program that is over for good ends the run.
    fn check_critical(&mut self, p: usize, i: usize, now: Instant) {
        let program = &self.programs[p];
        let inst = &program.instances[i];
        if !program.spec.critical || self.code_decided {
            return;
        }
        let code = inst.last_exit.unwrap_or(1);
        let ends = match inst.state {
            State::Failed => Some(code.max(1)),
            State::Stopped if program.spec.restart == Restart::Never && !program.spec.oneshot => {
                Some(code)
            }
            _ => None,
        };
        if let Some(code) = ends {
            let label = program.label(inst.index);
            if self.phase == Phase::Running || matches!(self.phase, Phase::Delaying { .. }) {
                warn!("{label} is critical and has ended: shutting down with status {code}");
                self.begin_stopping(now);
            }
            self.exit_code = code;
            self.code_decided = true;
        }
    }

    /// A shutdown request (SIGTERM, SIGINT, SIGQUIT, `ginit shutdown`). A second one while
    /// shutting down kills everything at once.
    pub fn request_shutdown(&mut self, now: Instant, ops: &mut dyn Ops) {
        match self.phase {
            Phase::Running => {
                if self.shutdown.delay.is_zero() {
                    info!("shutting down");
                    self.begin_stopping(now);
                } else {
                    info!(
                        "shutting down in {}: programs keep serving until then",
                        crate::config::units::format_duration(self.shutdown.delay)
                    );
                    self.phase = Phase::Delaying {
                        until: now + self.shutdown.delay,
                    };
                }
            }
            Phase::Delaying { .. } | Phase::Stopping { .. } => {
                warn!("second shutdown request: killing every program now");
                self.kill_everything(now, ops);
            }
            Phase::Clearing { .. } => {
                ops.signal_leftovers(libc::SIGKILL);
                self.phase = Phase::Killing {
                    until: now + KILL_WAIT,
                };
            }
            Phase::Killing { .. } | Phase::Done => {}
        }
        self.progress(now, ops);
    }

    fn begin_stopping(&mut self, now: Instant) {
        self.phase = Phase::Stopping {
            deadline: now + self.shutdown.timeout,
        };
    }

    fn kill_everything(&mut self, now: Instant, ops: &mut dyn Ops) {
        if !matches!(self.phase, Phase::Stopping { .. }) {
            self.begin_stopping(now);
        }
        self.kill_all(now, ops);
        // Whatever else is left gets no grace either.
        if let Phase::Stopping { deadline } = &mut self.phase {
            *deadline = now;
        }
    }

    /// Deadlines: backoffs, stop timeouts, the shutdown delay and timeout, the grace period.
    pub fn on_time(&mut self, now: Instant, ops: &mut dyn Ops) {
        for p in 0..self.programs.len() {
            self.each_instance(p, now, ops, |inst, spec| {
                let was_ready = inst.ready;
                let actions = inst.on_time(now);
                let label = spec.label(inst.index);
                if actions.contains(&Action::Signal(libc::SIGKILL)) {
                    if inst.state == State::Running {
                        let limit = spec.ready.as_ref().map(|r| r.timeout).unwrap_or_default();
                        warn!(
                            "{label} was not ready within {}: killing it",
                            crate::config::units::format_duration(limit)
                        );
                    } else {
                        warn!("{label} did not stop in time: sending SIGKILL");
                    }
                } else if inst.ready && !was_ready {
                    info!("{label} is ready");
                }
                actions
            });
        }
        match self.phase {
            Phase::Delaying { until } if now >= until => {
                info!("shutdown delay over: stopping programs");
                self.begin_stopping(now);
            }
            Phase::Stopping { deadline }
                if now >= deadline && self.programs.iter().any(Program::live) =>
            {
                warn!("shutdown timeout reached: killing what is still running");
                self.kill_all(now, ops);
                ops.signal_leftovers(libc::SIGKILL);
                self.phase = Phase::Killing {
                    until: now + KILL_WAIT,
                };
            }
            Phase::Clearing { until } if now >= until => {
                ops.signal_leftovers(libc::SIGKILL);
                self.phase = Phase::Killing {
                    until: now + KILL_WAIT,
                };
            }
            Phase::Killing { until } if now >= until => {
                warn!("some processes could not be reaped after SIGKILL; exiting anyway");
                self.phase = Phase::Done;
            }
            _ => {}
        }
        self.progress(now, ops);
    }

    /// Moves everything forward after any event.
    fn progress(&mut self, now: Instant, ops: &mut dyn Ops) {
        match self.phase {
            Phase::Running | Phase::Delaying { .. } => {
                self.finish_replacements();
                self.launch_ready(now, ops);
                self.advance_replacements(now, ops);
            }
            Phase::Stopping { .. } if self.programs.iter().any(|p| p.replacing.is_some()) => {
                for program in &mut self.programs {
                    if program.replacing.take().is_some() {
                        program.replace_result = Some(Err("ginit is shutting down".into()));
                    }
                }
                self.progress(now, ops);
            }
            Phase::Stopping { deadline } => {
                self.stop_in_order(now, ops);
                if !self.programs.iter().any(Program::live) {
                    if self.children_left {
                        let left = deadline.saturating_duration_since(now);
                        ops.signal_leftovers(libc::SIGTERM);
                        info!(
                            "every program has stopped; sent SIGTERM to the processes left behind"
                        );
                        self.phase = Phase::Clearing {
                            until: now + left.min(LEFTOVER_GRACE),
                        };
                    } else {
                        self.phase = Phase::Done;
                    }
                }
            }
            Phase::Clearing { .. } | Phase::Killing { .. } => {
                if !self.children_left {
                    self.phase = Phase::Done;
                }
            }
            Phase::Done => {}
        }
    }

    /// Starts each program whose dependencies are satisfied, once.
    fn launch_ready(&mut self, now: Instant, ops: &mut dyn Ops) {
        loop {
            let mut launched_any = false;
            for p in 0..self.programs.len() {
                let program = &self.programs[p];
                if program.launched || program.removing {
                    continue;
                }
                let deps: Vec<&Program> = program
                    .spec
                    .depends_on
                    .iter()
                    .filter_map(|d| self.programs.iter().find(|q| &q.spec.name == d))
                    .collect();
                if let Some(dead) = deps.iter().find(|d| d.failed_for_good()) {
                    if !program.blocked_reported {
                        error!(
                            "{} will not start: its dependency {} failed",
                            program.spec.name, dead.spec.name
                        );
                        self.programs[p].blocked_reported = true;
                    }
                    continue;
                }
                if !deps.iter().all(|d| d.satisfies_dependents()) {
                    continue;
                }
                self.programs[p].launched = true;
                launched_any = true;
                self.each_instance(p, now, ops, |inst, spec| inst.start(spec));
            }
            // A start may satisfy others at once (programs without readiness checks are
            // ready as soon as they run).
            if !launched_any {
                break;
            }
        }
    }

    /// Stops every program none of whose dependents is still up. Restarts waiting out their
    /// backoff are cancelled first, for every program: nothing starts again during shutdown.
    fn stop_in_order(&mut self, now: Instant, ops: &mut dyn Ops) {
        for p in 0..self.programs.len() {
            self.each_instance(p, now, ops, |inst, spec| {
                if inst.state == State::Backoff {
                    inst.stop(spec, now)
                } else {
                    Vec::new()
                }
            });
        }
        for p in 0..self.programs.len() {
            let name = &self.programs[p].spec.name;
            let dependents_up = self
                .programs
                .iter()
                .any(|q| q.spec.depends_on.contains(name) && q.live());
            if !dependents_up {
                self.each_instance(p, now, ops, |inst, spec| inst.stop(spec, now));
            }
        }
    }

    /// Sends `sig` to every running instance of program `name`; false if there is none.
    pub fn signal_program(&self, name: &str, sig: i32, ops: &mut dyn Ops) -> bool {
        let Some(program) = self.programs.iter().find(|p| p.spec.name == name) else {
            return false;
        };
        let mut sent = false;
        for pid in program.instances.iter().filter_map(|i| i.pid) {
            ops.signal(pid, sig);
            sent = true;
        }
        sent
    }

    /// Applies a new, valid config as a difference: new programs start, removed ones stop,
    /// changed ones restart with their new spec, unchanged ones are not touched.
    pub fn reload(
        &mut self,
        old: &Config,
        new: &Config,
        now: Instant,
        ops: &mut dyn Ops,
    ) -> String {
        let d = diff::diff(old, new);
        let summary = format!(
            "config reloaded: {} added, {} removed, {} changed, {} unchanged",
            d.added.len(),
            d.removed.len(),
            d.changed.len(),
            d.unchanged.len()
        );
        info!("{summary}");
        self.shutdown = new.shutdown;
        for name in &d.removed {
            if let Some(p) = self.programs.iter().position(|q| &q.spec.name == name) {
                self.programs[p].removing = true;
                self.each_instance(p, now, ops, |inst, spec| inst.stop(spec, now));
            }
        }
        for name in &d.changed {
            let (Some(p), Some(spec)) = (
                self.programs.iter().position(|q| &q.spec.name == name),
                new.program(name),
            ) else {
                continue;
            };
            let program = &self.programs[p];
            let in_place = spec.reload == ReloadStrategy::Replace
                && program.spec.instances == spec.instances
                && program.launched
                && program.live();
            if in_place {
                // Zero downtime: new instances with the new settings, each replacing an old
                // one once ready (a new build that never gets ready is rolled back).
                self.programs[p].spec = spec.clone();
                self.begin_replace(p, (0..spec.instances).collect());
                continue;
            }
            self.programs[p].replacement = Some(spec.clone());
            self.each_instance(p, now, ops, |inst, spec| inst.stop(spec, now));
        }
        for name in &d.added {
            if let Some(spec) = new.program(name) {
                self.programs.push(Program::new(spec.clone()));
            }
        }
        // Keep the file's order, which is the order of start among equals.
        self.programs.sort_by_key(|q| {
            new.programs
                .iter()
                .position(|s| s.name == q.spec.name)
                .unwrap_or(usize::MAX)
        });
        self.progress(now, ops);
        summary
    }

    /// Drops removed programs and restarts changed ones once they are down.
    fn finish_replacements(&mut self) {
        self.programs.retain(|p| !p.removing || p.live());
        for program in &mut self.programs {
            if !program.live()
                && let Some(spec) = program.replacement.take()
            {
                *program = Program::new(spec);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema_for_tests as parse;
    use crate::reaper::Exit;

    #[derive(Default)]
    struct Fake {
        next_pid: i32,
        spawned: Vec<(String, u32, i32)>,
        signals: Vec<(i32, i32)>,
        leftovers: Vec<i32>,
        fail: Vec<String>,
    }

    impl Ops for Fake {
        fn spawn(&mut self, spec: &ProgramSpec, index: u32) -> Result<i32, String> {
            if self.fail.contains(&spec.name) {
                return Err("no such file".into());
            }
            self.next_pid += 1;
            let pid = 100 + self.next_pid;
            self.spawned.push((spec.name.clone(), index, pid));
            Ok(pid)
        }
        fn signal(&mut self, pid: i32, sig: i32) {
            self.signals.push((pid, sig));
        }
        fn signal_leftovers(&mut self, sig: i32) {
            self.leftovers.push(sig);
        }
    }

    impl Fake {
        fn pid(&self, name: &str) -> i32 {
            self.spawned
                .iter()
                .rev()
                .find(|(n, _, _)| n == name)
                .unwrap()
                .2
        }
        fn names(&self) -> Vec<&str> {
            self.spawned.iter().map(|(n, _, _)| n.as_str()).collect()
        }
    }

    fn exit(pid: i32, code: i32) -> Exit {
        Exit {
            pid,
            status: code << 8,
        }
    }

    fn killed(pid: i32, sig: i32) -> Exit {
        Exit { pid, status: sig }
    }

    #[test]
    fn dependencies_start_in_order_and_wait_for_oneshots() {
        let c = parse(
            "programs:\n  web: {command: x, depends_on: [migrate, cache]}\n  migrate: {command: x, oneshot: true}\n  cache: {command: x}\n  other: {command: x}\n",
        );
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        assert_eq!(ops.names(), ["migrate", "cache", "other"]);
        // The oneshot fails once, retries, then exits 0: only then does web start.
        s.on_reaped(&[exit(ops.pid("migrate"), 1)], true, t, &mut ops);
        assert_eq!(ops.names().len(), 3);
        s.on_time(t + Duration::from_millis(100), &mut ops);
        assert_eq!(ops.names().len(), 4);
        s.on_reaped(&[exit(ops.pid("migrate"), 0)], true, t, &mut ops);
        assert_eq!(ops.names(), ["migrate", "cache", "other", "migrate", "web"]);
    }

    #[test]
    fn a_failed_dependency_blocks_its_dependents() {
        let c = parse(
            "programs:\n  a: {command: x, restart: never}\n  b: {command: x, depends_on: [a]}\n",
        );
        let mut ops = Fake::default();
        let t = Instant::now();
        let mut s = Supervisor::new(&c);
        ops.fail.push("a".into());
        s.start(t, &mut ops);
        assert!(ops.spawned.is_empty());
        assert_eq!(s.status()[0].state, "failed");
        assert_eq!(s.status()[1].state, "stopped");
        assert_eq!(
            s.finished(),
            None,
            "a non-critical failure does not end the run"
        );
    }

    #[test]
    fn shutdown_stops_dependents_first_then_clears_leftovers() {
        let c = parse(
            "programs:\n  db: {command: x}\n  web: {command: x, depends_on: [db]}\n  side: {command: x, stop: {signal: SIGINT}}\n",
        );
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        let (db, web, side) = (ops.pid("db"), ops.pid("web"), ops.pid("side"));
        s.request_shutdown(t, &mut ops);
        // web and side (independent) first, in parallel; db waits for web.
        assert_eq!(ops.signals, [(web, libc::SIGTERM), (side, libc::SIGINT)]);
        s.on_reaped(&[killed(web, libc::SIGTERM)], true, t, &mut ops);
        assert_eq!(ops.signals.last(), Some(&(db, libc::SIGTERM)));
        s.on_reaped(&[exit(db, 0), exit(side, 0)], true, t, &mut ops);
        assert_eq!(ops.leftovers, [libc::SIGTERM]);
        assert_eq!(s.finished(), None);
        s.on_time(t + LEFTOVER_GRACE, &mut ops);
        assert_eq!(ops.leftovers, [libc::SIGTERM, libc::SIGKILL]);
        s.on_reaped(&[], false, t + LEFTOVER_GRACE, &mut ops);
        assert_eq!(s.finished(), Some(0));
        // Nothing restarted during the shutdown.
        assert_eq!(ops.spawned.len(), 3);
    }

    #[test]
    fn stop_timeouts_escalate_and_the_shutdown_timeout_bounds_everything() {
        let c = parse(
            "programs:\n  slow: {command: x, stop: {timeout: 1s}}\nshutdown: {timeout: 3s}\n",
        );
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        let pid = ops.pid("slow");
        s.request_shutdown(t, &mut ops);
        assert_eq!(s.deadline(), Some(t + Duration::from_secs(1)));
        s.on_time(t + Duration::from_secs(1), &mut ops);
        assert_eq!(ops.signals, [(pid, libc::SIGTERM), (pid, libc::SIGKILL)]);
        // Still not reaped (uninterruptible): the shutdown timeout ends it.
        s.on_time(t + Duration::from_secs(3), &mut ops);
        assert_eq!(ops.leftovers, [libc::SIGKILL]);
        s.on_time(t + Duration::from_secs(3) + KILL_WAIT, &mut ops);
        assert_eq!(s.finished(), Some(0));
    }

    #[test]
    fn a_second_request_kills_at_once() {
        let c = parse("programs:\n  a: {command: x}\n");
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        let pid = ops.pid("a");
        s.request_shutdown(t, &mut ops);
        s.request_shutdown(t, &mut ops);
        assert_eq!(ops.signals, [(pid, libc::SIGTERM), (pid, libc::SIGKILL)]);
        s.on_reaped(&[killed(pid, libc::SIGKILL)], false, t, &mut ops);
        assert_eq!(s.finished(), Some(0));
    }

    #[test]
    fn the_shutdown_delay_keeps_serving() {
        let c = parse("programs:\n  a: {command: x}\nshutdown: {delay: 5s}\n");
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        s.request_shutdown(t, &mut ops);
        assert!(ops.signals.is_empty());
        assert!(s.is_shutting_down());
        assert_eq!(s.deadline(), Some(t + Duration::from_secs(5)));
        s.on_time(t + Duration::from_secs(5), &mut ops);
        assert_eq!(ops.signals, [(ops.pid("a"), libc::SIGTERM)]);
    }

    #[test]
    fn a_critical_failure_ends_the_run_with_its_status() {
        let c = parse(
            "programs:\n  key: {command: x, critical: true, max_restarts: 1}\n  other: {command: x}\n",
        );
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        s.on_reaped(&[exit(ops.pid("key"), 3)], true, t, &mut ops);
        s.on_time(t + Duration::from_millis(100), &mut ops);
        s.on_reaped(&[exit(ops.pid("key"), 4)], true, t, &mut ops);
        // Given up: the rest is stopped and ginit will exit with 4.
        let other = ops.pid("other");
        assert_eq!(ops.signals, [(other, libc::SIGTERM)]);
        s.on_reaped(&[exit(other, 0)], false, t, &mut ops);
        assert_eq!(s.finished(), Some(4));
    }

    #[test]
    fn main_ends_the_run_with_its_status_even_zero() {
        let c = parse(
            "programs:\n  main: {command: x, critical: true, restart: never}\n  side: {command: x}\n",
        );
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        s.on_reaped(&[exit(ops.pid("main"), 0)], true, t, &mut ops);
        s.on_reaped(&[exit(ops.pid("side"), 0)], false, t, &mut ops);
        assert_eq!(s.finished(), Some(0));
        // Killed by a signal: 128+N.
        let mut s = Supervisor::new(&c);
        s.start(t, &mut ops);
        s.on_reaped(&[killed(ops.pid("main"), libc::SIGKILL)], true, t, &mut ops);
        s.on_reaped(&[exit(ops.pid("side"), 0)], false, t, &mut ops);
        assert_eq!(s.finished(), Some(137));
    }

    #[test]
    fn reload_applies_the_difference() {
        let old = parse(
            "programs:\n  keep: {command: x}\n  change: {command: x}\n  drop: {command: x}\n",
        );
        let new = parse(
            "programs:\n  keep: {command: x}\n  change: {command: x --new}\n  add: {command: x}\n",
        );
        let mut s = Supervisor::new(&old);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        let (keep, change, drop) = (ops.pid("keep"), ops.pid("change"), ops.pid("drop"));
        s.reload(&old, &new, t, &mut ops);
        assert_eq!(
            ops.signals,
            [(drop, libc::SIGTERM), (change, libc::SIGTERM)]
        );
        assert_eq!(ops.names().last(), Some(&"add"));
        s.on_reaped(&[exit(drop, 0), exit(change, 0)], true, t, &mut ops);
        let status = s.status();
        let names: Vec<&str> = status.iter().map(|st| st.program.as_str()).collect();
        assert_eq!(names, ["keep", "change", "add"]);
        assert_eq!(status[0].pid, Some(keep), "unchanged program untouched");
        assert_ne!(status[1].pid, Some(change));
        assert_eq!(status[1].state, "running");
    }

    #[test]
    fn a_dependency_in_backoff_is_not_restarted_during_shutdown() {
        let c = parse("programs:\n  db: {command: x}\n  web: {command: x, depends_on: [db]}\n");
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        let (db, web) = (ops.pid("db"), ops.pid("web"));
        s.on_reaped(&[exit(db, 1)], true, t, &mut ops);
        assert_eq!(s.status()[0].state, "backoff");
        s.request_shutdown(t, &mut ops);
        // web is still stopping when db's restart delay runs out: db must stay down.
        s.on_time(t + Duration::from_secs(1), &mut ops);
        assert_eq!(ops.names(), ["db", "web"]);
        s.on_reaped(&[exit(web, 0)], false, t + Duration::from_secs(1), &mut ops);
        assert_eq!(s.finished(), Some(0));
    }

    #[test]
    fn instances_each_get_their_own_process() {
        let c = parse("programs:\n  w: {command: x, instances: 3}\n");
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        s.start(Instant::now(), &mut ops);
        let idx: Vec<u32> = ops.spawned.iter().map(|(_, i, _)| *i).collect();
        assert_eq!(idx, [0, 1, 2]);
    }
}
