//! Programs and their instances: start order, exits and restarts, critical programs, and what
//! exited instances leave in their process groups.
//!
//! Rules:
//! - a program starts once each dependency is ready (every instance running and ready) or, for
//!   a oneshot, done (exited 0); a program whose dependency failed for good never starts;
//! - a critical program that fails for good ends the run with its status (at least 1); a
//!   critical program with `restart: never` (such as `main`, the PROGRAM given after `--`)
//!   ends it whenever it exits, with its status;
//! - every instance leads its own process group; when its process exits, for any reason,
//!   what is left in the group gets the stop signal and SIGCONT, then SIGKILL at the stop
//!   timeout if anything is still there ([`Group`]). The restart never waits for it. A group
//!   is forgotten as soon as it is empty (a signal to it is not delivered), so its number is
//!   never signalled once it could belong to someone else, nor ever when it is a current
//!   instance's pid; with nothing left there is no deadline and so no wake-up;
//! - the cost of an event does not grow with the square of the number of programs: names,
//!   pids and dependencies are looked up in maps built once per config, and start order is a
//!   work list of the programs whose dependencies moved ([`Machine::launch_ready`]).

use crate::config::signals;
use std::rc::Rc;
use std::time::Instant;

use log::{error, info, warn};

use crate::config::units::format_duration;
use crate::config::{ProgramSpec, Restart};

use super::What;
use super::instance::{Instance, Role, State, Step};
use super::schedule::Timetable;
use super::shutdown::Phase;
use super::watch::WatchState;
use super::{CheckRef, Effect, Exited, GroupAsk, InstanceRef, Machine};

/// A program of the running config and its instances.
pub(super) struct Program {
    pub spec: Rc<ProgramSpec>,
    pub instances: Vec<Instance>,
    /// Its instances have been started once (start order is only about the first start).
    pub launched: bool,
    /// Removed from the config: dropped once every instance is down.
    pub removing: bool,
    /// Changed in the config: restarted with this spec once every instance is down.
    pub replacement: Option<Rc<ProgramSpec>>,
    /// Already said why it cannot start.
    pub blocked_reported: bool,
    /// A `replace` reload under way: the instance indexes still to replace, in order.
    pub replacing: Option<Vec<u32>>,
    /// How the last `replace` reload ended.
    pub replace_result: Option<Result<String, String>>,
    /// When the `replace` reload under way began.
    pub replace_began: Option<Instant>,
    /// `replace` reloads a verdict asked for, waiting out their backoff: (when, index).
    pub delayed: Vec<(Instant, u32)>,
    /// Its health checks are paused (see `checks.rs`).
    pub health_paused: bool,
    /// A scheduled program's next run and skips (see `schedule.rs`).
    pub timetable: Timetable,
    /// Its `watch`: the reload it waits to make (see `watch.rs`).
    pub watch: WatchState,
}

impl Program {
    pub fn new(spec: Rc<ProgramSpec>, serial: &mut u64) -> Program {
        let instances = (0..spec.instances)
            .map(|i| {
                *serial += 1;
                Instance::new(i, *serial, &spec)
            })
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
            replace_began: None,
            delayed: Vec::new(),
            health_paused: false,
            timetable: Timetable::default(),
            watch: WatchState::default(),
        }
    }

    pub fn live(&self) -> bool {
        self.instances.iter().any(Instance::is_live)
    }

    /// Ready for its dependents: every instance ready (a oneshot: done).
    fn satisfies_dependents(&self) -> bool {
        self.launched
            && self.instances.iter().all(|i| {
                if self.spec.oneshot {
                    i.state == State::Done
                } else {
                    i.is_ready()
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

    pub fn label(&self, index: u32) -> String {
        self.spec.label(index)
    }

    /// A `replace` reload runs, or one a verdict asked for waits out its backoff.
    pub fn replace_pending(&self) -> bool {
        self.replacing.is_some() || !self.delayed.is_empty()
    }

    /// Instance `index` is being reloaded already (queued, delayed, or its new instance is
    /// starting): a further verdict about it changes nothing and is not counted.
    pub fn reload_pending(&self, index: u32) -> bool {
        self.replacing.as_ref().is_some_and(|q| q.contains(&index))
            || self.delayed.iter().any(|&(_, i)| i == index)
            || self
                .instances
                .iter()
                .any(|i| i.index == index && i.role == Role::Surge)
    }

    /// Who instance `i` is, for an effect's answer to find it again.
    pub(super) fn who(&self, i: &Instance) -> InstanceRef {
        InstanceRef {
            program: self.spec.name.clone(),
            index: i.index,
            serial: i.serial,
        }
    }
}

/// Whether an instance counts as ready: it runs and its readiness check passed, a oneshot is
/// done, or it was stopped on purpose (or ended without failing) once started at all. A
/// scheduled program's always does: its runs are not what serves.
pub(super) fn counts_ready(launched: bool, spec: &ProgramSpec, i: &Instance) -> bool {
    if spec.schedule.is_some() {
        return true;
    }
    match i.state {
        State::Running { .. } | State::Done => true,
        State::Stopped => launched && !spec.oneshot,
        State::Spawning
        | State::Starting { .. }
        | State::Stopping { .. }
        | State::Backoff { .. }
        | State::Failed => false,
    }
}

/// What an exited instance left in its process group, until the group is empty or has had
/// SIGKILL at `kill_at`.
pub(super) struct Group {
    pub pgid: i32,
    pub kill_at: Instant,
    /// The instance that led it, for log lines.
    pub label: String,
    /// The sweep that found it has not been answered yet.
    pub unanswered: bool,
}

impl Machine {
    /// Rebuilds the maps after `programs` changed shape (a config reload), and queues every
    /// program not launched yet. Linear in programs, instances and dependencies.
    pub(super) fn reindex(&mut self) {
        self.by_name.clear();
        self.by_pid.clear();
        for (p, program) in self.programs.iter().enumerate() {
            self.by_name.insert(program.spec.name.clone(), p);
            for pid in program.instances.iter().filter_map(Instance::pid) {
                self.by_pid.insert(pid, p as u32);
            }
        }
        self.dependents = vec![Vec::new(); self.programs.len()];
        for (p, program) in self.programs.iter().enumerate() {
            for d in &program.spec.depends_on {
                if let Some(&d) = self.by_name.get(d)
                    && let Some(list) = self.dependents.get_mut(d)
                {
                    list.push(p);
                }
            }
        }
        self.wake.clear();
        self.queued = vec![false; self.programs.len()];
        for p in 0..self.programs.len() {
            self.queue(p);
        }
        self.health_paused_any = self.programs.iter().any(|p| p.health_paused);
    }

    /// Puts program `p` on the work list of `launch_ready` unless it has started already.
    fn queue(&mut self, p: usize) {
        let waiting = self
            .programs
            .get(p)
            .is_some_and(|q| !q.launched && !q.removing);
        if let Some(queued) = self.queued.get_mut(p)
            && waiting
            && !*queued
        {
            *queued = true;
            self.wake.push(p);
        }
    }

    /// Program `p` changed: its dependents that wait to start look at it again.
    pub(super) fn touched(&mut self, p: usize) {
        let Some(dependents) = self.dependents.get(p) else {
            return;
        };
        for k in 0..dependents.len() {
            if let Some(&d) = self.dependents.get(p).and_then(|ds| ds.get(k)) {
                self.queue(d);
            }
        }
    }

    pub(super) fn program_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The program and position of the instance whose process is `pid`.
    pub(super) fn find_pid(&self, pid: i32) -> Option<(usize, usize)> {
        let p = *self.by_pid.get(&pid)? as usize;
        let i = self
            .programs
            .get(p)?
            .instances
            .iter()
            .position(|i| i.pid() == Some(pid))?;
        Some((p, i))
    }

    /// The program and position of the instance an effect was about.
    pub(super) fn find_instance(&self, r: &InstanceRef) -> Option<(usize, usize)> {
        let p = self.program_index(&r.program)?;
        let i = self
            .programs
            .get(p)?
            .instances
            .iter()
            .position(|i| i.serial == r.serial)?;
        Some((p, i))
    }

    /// Instance `i` of program `p`, with its program's spec.
    pub(super) fn instance_mut(
        &mut self,
        p: usize,
        i: usize,
    ) -> Option<(&ProgramSpec, &mut Instance)> {
        let program = self.programs.get_mut(p)?;
        let inst = program.instances.get_mut(i)?;
        Some((&program.spec, inst))
    }

    /// Whether `pid` is an instance's process (running or stopping).
    pub(super) fn has_pid(&self, pid: i32) -> bool {
        self.by_pid.contains_key(&pid)
    }

    /// Carries out the steps instance `i` of program `p` asked for.
    pub(super) fn apply(&mut self, p: usize, i: usize, steps: Vec<Step>, _now: Instant) {
        for step in steps {
            let Some(program) = self.programs.get(p) else {
                return;
            };
            let Some(inst) = program.instances.get(i) else {
                return;
            };
            match step {
                Step::Spawn => {
                    let instance = program.who(inst);
                    let spec = program.spec.clone();
                    self.out.push(Effect::Spawn { instance, spec });
                }
                Step::Signal(signal) => {
                    if let Some(pid) = inst.pid() {
                        self.out.push(Effect::SignalInstance { pid, signal });
                    }
                }
                Step::Leftovers {
                    pgid,
                    signal,
                    kill_at,
                } => {
                    let label = program.label(inst.index);
                    self.sweep_group(label, pgid, signal, kill_at);
                }
                Step::Cancel(attempt) => {
                    let instance = program.who(inst);
                    let check = CheckRef { instance, attempt };
                    self.out.push(Effect::CancelCheck { check });
                }
                Step::StopCommand => {
                    if let Some(pid) = inst.pid() {
                        let spec = program.spec.clone();
                        let index = inst.index;
                        self.out.push(Effect::StopCommand { spec, index, pid });
                    }
                }
            }
        }
        self.touched(p);
    }

    /// Runs `step` on every instance of program `p` and carries out what it returns.
    pub(super) fn each_instance(
        &mut self,
        p: usize,
        now: Instant,
        step: impl Fn(&mut Instance, &ProgramSpec) -> Vec<Step>,
    ) {
        let n = self.programs.get(p).map_or(0, |q| q.instances.len());
        for i in 0..n {
            let Some((spec, inst)) = self.instance_mut(p, i) else {
                return;
            };
            let was_down = matches!(inst.state, State::Backoff { .. } | State::Failed);
            let steps = step(inst, spec);
            // A stop of an instance with no process (waiting to restart, or failed) ends
            // here, with no exit to report it.
            if was_down && inst.state == State::Stopped {
                let (name, index) = (spec.name.clone(), inst.index);
                self.publish(&name, index, What::Stopped);
            }
            self.apply(p, i, steps, now);
        }
    }

    /// Answer to a spawn: the instance runs as `pid`.
    pub(super) fn on_spawned(&mut self, r: &InstanceRef, pid: i32, now: Instant) {
        let Some((p, i)) = self.find_instance(r) else {
            // Cannot happen (the answer comes before anything else): nothing knows the
            // process, which is reaped as any orphan is.
            warn!(
                "started pid {pid} for an instance of {} that is gone",
                r.program
            );
            return;
        };
        let Some((spec, inst)) = self.instance_mut(p, i) else {
            return;
        };
        info!("started {} (pid {pid})", spec.label(inst.index));
        inst.on_spawned(spec, pid, now);
        let (name, index) = (spec.name.clone(), inst.index);
        self.publish(&name, index, What::Started { pid });
        self.by_pid.insert(pid, p as u32);
        self.touched(p);
        self.progress(now);
    }

    /// Answer to a spawn: no process could be made; a failed run (status 127).
    pub(super) fn on_spawn_failed(&mut self, r: &InstanceRef, reason: &str, now: Instant) {
        let Some((p, i)) = self.find_instance(r) else {
            return;
        };
        let running = self.phase == Phase::Running;
        let Some((spec, inst)) = self.instance_mut(p, i) else {
            return;
        };
        error!("cannot start {}: {reason}", spec.label(inst.index));
        let surge = inst.role == Role::Surge;
        let steps = inst.on_spawn_failed(spec, running && !surge, now);
        let (name, index) = (spec.name.clone(), inst.index);
        let why = reason.to_string();
        self.publish(&name, index, What::StartFailed { why });
        if !surge {
            self.report_end(p, i, now);
        }
        self.exit_hooks(p, i, None, false, now);
        self.apply(p, i, steps, now);
        self.progress(now);
    }

    /// Signals process group `pgid` and waits for the answer (see [`GroupAsk`]).
    fn ask_group(&mut self, pgid: i32, signal: i32, ask: GroupAsk) {
        self.asking += 1;
        self.out.push(Effect::SignalGroup {
            pgid,
            signal,
            ask: Some(ask),
        });
    }

    /// What instance `label` left in its process group `pgid` once its process exited:
    /// `signal` now (SIGCONT after it), and tracked until SIGKILL at `kill_at` unless it is
    /// empty. A number that is a current instance's pid is never touched.
    fn sweep_group(
        &mut self,
        label: String,
        pgid: i32,
        signal: Option<i32>,
        kill_at: Option<Instant>,
    ) {
        if self.has_pid(pgid) {
            return;
        }
        // Tracked at once (dropped again if the answer says it is empty), so nothing decided
        // before the answer comes back takes the group for gone.
        if let Some(kill_at) = kill_at
            && !self.groups.iter().any(|g| g.pgid == pgid)
        {
            self.groups.push(Group {
                pgid,
                kill_at,
                label: label.clone(),
                unanswered: true,
            });
        }
        self.ask_group(pgid, signal.unwrap_or(0), GroupAsk::Sweep { label });
    }

    /// Answer to a group signal: whether anything was in the group.
    pub(super) fn on_group_signalled(
        &mut self,
        pgid: i32,
        signal: i32,
        delivered: bool,
        ask: GroupAsk,
        now: Instant,
    ) {
        self.asking = self.asking.saturating_sub(1);
        match ask {
            GroupAsk::Sweep { label } => {
                if !delivered {
                    self.groups.retain(|g| g.pgid != pgid);
                } else {
                    if let Some(g) = self.groups.iter_mut().find(|g| g.pgid == pgid) {
                        g.unanswered = false;
                    }
                    if signal != 0 {
                        if signal != libc::SIGKILL && signal != libc::SIGCONT {
                            self.out.push(Effect::SignalGroup {
                                pgid,
                                signal: libc::SIGCONT,
                                ask: None,
                            });
                        }
                        info!(
                            "{label} left processes in its process group: sent them {}",
                            signals::name(signal)
                        );
                    }
                }
            }
            GroupAsk::Empty => {
                if !delivered {
                    self.groups.retain(|g| g.pgid != pgid);
                }
            }
            GroupAsk::Overdue { label, forced } => {
                if delivered {
                    warn!(
                        "what {label} left in its process group did not stop in time: sent SIGKILL"
                    );
                    if forced {
                        self.forced
                            .push(format!("what {label} left behind (its stop timeout)"));
                    }
                }
            }
            GroupAsk::Kill { label, why } => {
                if delivered {
                    self.forced
                        .push(format!("what {label} left behind ({why})"));
                }
            }
        }
        self.progress(now);
    }

    /// Forgets the groups nothing is left in (called after reaping, which is when they
    /// empty), so an empty group costs no wake-up and its number is never signalled again.
    fn forget_empty_groups(&mut self) {
        if self.groups.is_empty() {
            return;
        }
        let by_pid = &self.by_pid;
        self.groups.retain(|g| !by_pid.contains_key(&g.pgid));
        let asks: Vec<i32> = self
            .groups
            .iter()
            .filter(|g| !g.unanswered)
            .map(|g| g.pgid)
            .collect();
        for pgid in asks {
            self.ask_group(pgid, 0, GroupAsk::Empty);
        }
    }

    /// SIGKILL for the groups whose time is up.
    pub(super) fn kill_groups(&mut self, now: Instant) {
        let forced = self.stopping();
        let mut k = 0;
        while let Some(g) = self.groups.get(k) {
            if now < g.kill_at {
                k += 1;
                continue;
            }
            let g = self.groups.swap_remove(k);
            if !self.has_pid(g.pgid) {
                let ask = GroupAsk::Overdue {
                    label: g.label,
                    forced,
                };
                self.ask_group(g.pgid, libc::SIGKILL, ask);
            }
        }
    }

    /// SIGKILL for every group still tracked (the shutdown kills everything), for `why`.
    pub(super) fn kill_all_groups(&mut self, why: &str) {
        for g in std::mem::take(&mut self.groups) {
            if !self.has_pid(g.pgid) {
                let ask = GroupAsk::Kill {
                    label: g.label,
                    why: why.to_string(),
                };
                self.ask_group(g.pgid, libc::SIGKILL, ask);
            }
        }
    }

    /// Logs and publishes how an instance's run ended, once it has a new state.
    pub(super) fn report_end(&mut self, p: usize, i: usize, now: Instant) {
        let Some(program) = self.programs.get(p) else {
            return;
        };
        let Some(inst) = program.instances.get(i) else {
            return;
        };
        let label = program.label(inst.index);
        let what = match inst.state {
            State::Backoff { until } => {
                let wait = until.saturating_duration_since(now);
                warn!(
                    "{label} will restart in {} (restart {})",
                    format_duration(wait),
                    inst.restarts
                );
                What::RestartScheduled {
                    delay: wait.as_secs_f64(),
                    restarts: inst.restarts,
                }
            }
            State::Failed if program.spec.restart != Restart::Never => {
                let why = format!(
                    "more than {} restarts in {}",
                    program.spec.max_restarts,
                    format_duration(program.spec.restart_window)
                );
                error!("{label} failed: {why}; giving up");
                What::Failed { why }
            }
            State::Failed => {
                error!("{label} failed");
                let code = inst.last_exit.unwrap_or(1);
                let why = format!("it ended with status {code} and is not restarted");
                What::Failed { why }
            }
            State::Done => {
                info!("{label} is done");
                What::Done
            }
            State::Stopped => What::Stopped,
            _ => return,
        };
        let (name, index) = (program.spec.name.clone(), inst.index);
        self.publish(&name, index, what);
    }

    /// A batch of reaped processes; `children_left` says whether any child remains.
    pub(super) fn on_reaped(&mut self, exits: &[Exited], children_left: bool, now: Instant) {
        self.children_left = children_left;
        for exit in exits {
            let Some((p, i)) = self.find_pid(exit.pid) else {
                continue;
            };
            self.by_pid.remove(&exit.pid);
            let running = self.phase == Phase::Running;
            let Some((spec, inst)) = self.instance_mut(p, i) else {
                continue;
            };
            let surge = inst.role == Role::Surge;
            let may_restart = running && !surge;
            let label = spec.label(inst.index);
            let was_stopping = inst.is_stopping();
            if surge {
                warn!("the new {label} (pid {}) {}", exit.pid, exit.describe());
            } else if was_stopping {
                info!("{label} (pid {}) stopped: it {}", exit.pid, exit.describe());
            } else if spec.succeeded(exit.code) {
                info!("{label} (pid {}) {}", exit.pid, exit.describe());
            } else {
                warn!("{label} (pid {}) {}", exit.pid, exit.describe());
            }
            let ran = inst
                .started
                .map_or(0.0, |s| now.saturating_duration_since(s).as_secs_f64());
            let steps = inst.on_exit(spec, exit.code, exit.signal, may_restart, now);
            let exited = What::Exited {
                pid: exit.pid,
                status: exit.code,
                signal: exit.signal.map(signals::name),
                ran,
            };
            let (name, index) = (spec.name.clone(), inst.index);
            let stopped = inst.state == State::Stopped && (surge || was_stopping);
            // After a stop: a counted reload now waits out its backoff, or a given-up
            // instance is failed (and a critical one ends the run).
            let backoff = matches!(inst.state, State::Backoff { .. });
            let failed = inst.state == State::Failed;
            self.publish(&name, index, exited);
            if stopped {
                self.publish(&name, index, What::Stopped);
            }
            if !surge && (!was_stopping || backoff || failed) {
                self.report_end(p, i, now);
            }
            let decided = self.code_decided;
            if !surge && (!was_stopping || failed) {
                self.check_critical(p, i, now);
            }
            self.exit_hooks(p, i, Some(exit), !decided && self.code_decided, now);
            self.apply(p, i, steps, now);
        }
        self.forget_empty_groups();
        self.progress(now);
    }

    /// A critical program that is over for good ends the run.
    fn check_critical(&mut self, p: usize, i: usize, now: Instant) {
        let Some(program) = self.programs.get(p) else {
            return;
        };
        let Some(inst) = program.instances.get(i) else {
            return;
        };
        if !program.spec.critical || self.code_decided {
            return;
        }
        let code = inst.last_exit.unwrap_or(1);
        let ends = match inst.state {
            State::Failed => Some(code.max(1)),
            // A success of its own (`success_exit_codes`) ends the run as a success.
            State::Stopped if program.spec.restart == Restart::Never && !program.spec.oneshot => {
                Some(if program.spec.succeeded(code) {
                    0
                } else {
                    code
                })
            }
            _ => None,
        };
        if let Some(code) = ends {
            let label = program.label(inst.index);
            if matches!(self.phase, Phase::Running | Phase::Delaying { .. }) {
                warn!("{label} is critical and has ended: shutting down with status {code}");
                if self.phase == Phase::Running {
                    let why = format!("{label} is critical and has ended (status {code})");
                    self.publish_program("", What::ShutdownBegun { why });
                }
                self.begin_stopping(now);
            }
            self.exit_code = code;
            self.code_decided = true;
        }
    }

    /// Moves everything forward after any event.
    pub(super) fn progress(&mut self, now: Instant) {
        match self.phase {
            Phase::Running | Phase::Delaying { .. } => {
                self.finish_replacements();
                self.launch_ready(now);
                self.advance_replacements(now);
            }
            Phase::Stopping { .. } | Phase::Clearing { .. } | Phase::Killing { .. } => {
                self.progress_shutdown(now)
            }
            Phase::Done => {}
        }
    }

    /// Starts each program whose dependencies are satisfied, once. Looks only at the
    /// programs on the work list (those whose dependencies moved since), so an event costs
    /// what it changed, not a scan of every program for every dependency. The list is
    /// taken in rounds, which keeps it first in, first out.
    fn launch_ready(&mut self, now: Instant) {
        while !self.wake.is_empty() {
            for p in std::mem::take(&mut self.wake) {
                self.launch_if_ready(p, now);
            }
        }
    }

    /// Program `p` of the work list: started if its dependencies are satisfied.
    fn launch_if_ready(&mut self, p: usize, now: Instant) {
        if let Some(q) = self.queued.get_mut(p) {
            *q = false;
        }
        let Some(program) = self.programs.get(p) else {
            return;
        };
        if program.launched || program.removing {
            return;
        }
        let (mut dead, mut ready) = (None, true);
        for d in &program.spec.depends_on {
            let Some(dep) = self.by_name.get(d).and_then(|&d| self.programs.get(d)) else {
                continue;
            };
            if dep.failed_for_good() {
                dead = Some(dep.spec.name.clone());
                break;
            }
            ready &= dep.satisfies_dependents();
        }
        let Some(program) = self.programs.get_mut(p) else {
            return;
        };
        if let Some(dead) = dead {
            if !program.blocked_reported {
                error!(
                    "{} will not start: its dependency {dead} failed",
                    program.spec.name
                );
                program.blocked_reported = true;
            }
            return;
        }
        if !ready {
            return;
        }
        program.launched = true;
        if program.spec.schedule.is_some() {
            // It waits for its first time instead of starting now.
            return self.arm(p, None, now);
        }
        // A start may satisfy others at once (programs without readiness checks are ready as
        // soon as their spawn is answered): its dependents go on the list then.
        self.each_instance(p, now, |inst, spec| inst.start(spec));
        self.touched(p);
    }

    /// An instance's readiness check passed; `pid` is its process. False when no starting
    /// instance has that pid.
    pub(super) fn mark_ready(&mut self, pid: i32, now: Instant) -> bool {
        let Some((p, i)) = self.find_pid(pid) else {
            return false;
        };
        let Some((spec, inst)) = self.instance_mut(p, i) else {
            return false;
        };
        let Some(steps) = inst.on_ready(spec, now) else {
            return false;
        };
        info!("{} is ready", spec.label(inst.index));
        let (name, index) = (spec.name.clone(), inst.index);
        self.publish(&name, index, What::Ready);
        self.apply(p, i, steps, now);
        self.progress(now);
        true
    }

    /// Deadlines of instances (backoffs, stop and readiness timeouts), delayed reloads,
    /// process groups, and the shutdown's phases.
    pub(super) fn lifecycle_time(&mut self, now: Instant) {
        let stopping = self.stopping();
        for p in 0..self.programs.len() {
            let n = self.programs.get(p).map_or(0, |q| q.instances.len());
            for i in 0..n {
                let Some((spec, inst)) = self.instance_mut(p, i) else {
                    break;
                };
                if inst.deadline().is_none_or(|d| now < d) {
                    continue;
                }
                let (was_starting, was_ready) = (inst.is_starting(), inst.is_ready());
                let steps = inst.on_time(spec, now);
                let label = spec.label(inst.index);
                let (name, index) = (spec.name.clone(), inst.index);
                if steps.contains(&Step::Signal(libc::SIGKILL)) {
                    if was_starting {
                        let limit = spec.ready.as_ref().map(|r| r.timeout);
                        let why = format!(
                            "not ready within {}: killing it",
                            format_duration(limit.unwrap_or_default())
                        );
                        warn!("{label} was {why}");
                        let what = What::HealthFailed { failures: 1, why };
                        self.publish(&name, index, what);
                    } else {
                        warn!("{label} did not stop in time: sending SIGKILL");
                        if stopping {
                            self.forced.push(label);
                            self.why_forced("its stop timeout");
                        }
                    }
                } else if inst.is_ready() && !was_ready {
                    info!("{label} is ready");
                    self.publish(&name, index, What::Ready);
                }
                self.apply(p, i, steps, now);
            }
            self.delayed_replaces(p, now);
        }
        self.kill_groups(now);
        self.shutdown_time(now);
        self.progress(now);
    }

    /// Whether instance `i` of `p` counts as ready (see [`Machine::ready`]).
    pub(super) fn instance_ready(p: &Program, i: &Instance) -> bool {
        counts_ready(p.launched, &p.spec, i)
    }

    /// `ginit ready`: every instance ready and no shutdown under way (the shutdown delay
    /// turns it false first, so load balancers stop sending traffic). An instance counts as
    /// ready when it runs and its readiness check passed, a oneshot when it is done, and one
    /// that was stopped on purpose (or ended without failing) once it was started at all.
    pub(super) fn ready(&self) -> bool {
        self.phase == Phase::Running
            && self.programs.iter().all(|p| {
                p.instances
                    .iter()
                    .filter(|i| i.role == Role::Serving)
                    .all(|i| Self::instance_ready(p, i))
            })
    }

    /// The names a control request means: `all` is every program. Unknown names are an error.
    pub(super) fn resolve_names(&self, names: &[String]) -> Result<Vec<String>, String> {
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

    /// Sends `sig` to every instance of program `name` that has a process; false if none has.
    pub(super) fn signal_program(&mut self, name: &str, sig: i32) -> bool {
        let Some(program) = self.program_index(name).and_then(|p| self.programs.get(p)) else {
            return false;
        };
        let pids: Vec<i32> = program.instances.iter().filter_map(Instance::pid).collect();
        for &pid in &pids {
            self.out.push(Effect::SignalInstance { pid, signal: sig });
        }
        !pids.is_empty()
    }

    /// For tests: whether each instance of `program` with a process (starting or ready)
    /// runs its health check.
    #[cfg(test)]
    pub(super) fn health_checks(&self, program: &str) -> Vec<bool> {
        let Some(p) = self.program_index(program) else {
            return Vec::new();
        };
        self.programs[p]
            .instances
            .iter()
            .filter_map(|i| match &i.state {
                State::Starting { .. } => Some(false),
                State::Running { health, .. } => Some(health.is_some()),
                _ => None,
            })
            .collect()
    }

    /// For tests: whether `pid` is a ready instance's process.
    #[cfg(test)]
    pub(super) fn is_ready_pid(&self, pid: i32) -> bool {
        self.find_pid(pid)
            .is_some_and(|(p, i)| self.programs[p].instances[i].is_ready())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Input;
    use super::super::testing::*;
    use std::time::{Duration, Instant};

    #[test]
    fn dependencies_start_in_order_and_wait_for_oneshots() {
        let mut e = edge(
            "programs:\n  web: {command: x, depends_on: [migrate, cache]}\n  migrate: {command: x, oneshot: true}\n  cache: {command: x}\n  other: {command: x}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        assert_eq!(e.names(), ["migrate", "cache", "other"]);
        // The oneshot fails once, retries, then exits 0: only then does web start.
        e.reap(&[exit(e.pid("migrate"), 1)], true, t);
        assert_eq!(e.names().len(), 3);
        e.feed(Input::Time, t + Duration::from_millis(100));
        assert_eq!(e.names().len(), 4);
        e.reap(&[exit(e.pid("migrate"), 0)], true, t);
        assert_eq!(e.names(), ["migrate", "cache", "other", "migrate", "web"]);
    }

    #[test]
    fn a_dependency_without_a_ready_check_starts_its_dependents_in_the_same_pass() {
        let mut e = edge(
            "programs:\n  a: {command: x}\n  b: {command: x, depends_on: [a]}\n  c: {command: x}\n",
        );
        e.feed(Input::Begin, Instant::now());
        // b is started as soon as a's spawn is answered, before c, as when spawns were calls.
        assert_eq!(e.names(), ["a", "b", "c"]);
    }

    #[test]
    fn a_failed_dependency_blocks_its_dependents() {
        let mut e = edge(
            "programs:\n  a: {command: x, restart: never}\n  b: {command: x, depends_on: [a]}\n",
        );
        let t = Instant::now();
        e.fail.push("a".into());
        e.feed(Input::Begin, t);
        assert!(e.spawned.is_empty());
        assert_eq!(e.status(t)[0].state, "failed");
        assert_eq!(e.status(t)[1].state, "stopped");
        assert_eq!(e.exit, None, "a non-critical failure does not end the run");
    }

    #[test]
    fn instances_each_get_their_own_process() {
        let mut e = edge("programs:\n  w: {command: x, instances: 3}\n");
        e.feed(Input::Begin, Instant::now());
        let idx: Vec<u32> = e.spawned.iter().map(|(_, i, _)| *i).collect();
        assert_eq!(idx, [0, 1, 2]);
    }

    #[test]
    fn success_exit_codes_count_as_success_for_restart_oneshots_and_critical() {
        let mut e = edge(
            "programs:\n  java:\n    command: x\n    restart: on-failure\n    success_exit_codes: [143]\n  job:\n    command: x\n    oneshot: true\n    success_exit_codes: [3]\n  other:\n    command: x\n    restart: on-failure\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        e.reap(&[exit(e.pid("java"), 143)], true, t);
        e.reap(&[exit(e.pid("job"), 3)], true, t);
        e.reap(&[exit(e.pid("other"), 143)], true, t);
        let status = e.status(t);
        assert_eq!(
            (status[0].state.as_str(), status[0].restarts),
            ("stopped", 0),
            "143 is a success: not restarted"
        );
        assert_eq!(status[1].state, "done");
        assert_eq!(
            status[2].state, "backoff",
            "without the list, 143 is a failure"
        );
        // Killed by SIGTERM from elsewhere is 143 too: a success as well.
        let mut e = edge(
            "programs:\n  key:\n    command: x\n    critical: true\n    restart: never\n    success_exit_codes: [143]\n",
        );
        e.feed(Input::Begin, t);
        e.reap(&[killed(e.pid("key"), libc::SIGTERM)], false, t);
        assert_eq!(
            e.exit,
            Some(0),
            "a critical program's success ends the run with 0"
        );
    }

    #[test]
    fn a_stop_command_replaces_the_stop_signal() {
        let mut e =
            edge("programs:\n  ng:\n    command: x\n    stop: {command: [x, quit], timeout: 2s}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let pid = e.pid("ng");
        e.ask(
            crate::control::protocol::Request::Stop {
                programs: vec!["ng".into()],
            },
            t,
        );
        assert_eq!(e.stop_commands, [pid]);
        assert!(e.signals.is_empty(), "{:?}", e.signals);
        // The stop timeout still holds.
        e.feed(Input::Time, t + Duration::from_secs(2));
        assert_eq!(e.signals, [(pid, libc::SIGKILL)]);
    }

    #[test]
    fn a_critical_failure_ends_the_run_with_its_status() {
        let mut e = edge(
            "programs:\n  key: {command: x, critical: true, max_restarts: 1}\n  other: {command: x}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        e.reap(&[exit(e.pid("key"), 3)], true, t);
        e.feed(Input::Time, t + Duration::from_millis(100));
        e.reap(&[exit(e.pid("key"), 4)], true, t);
        // Given up: the rest is stopped and ginit will exit with 4.
        let other = e.pid("other");
        assert_eq!(e.signals, [(other, libc::SIGTERM), (other, libc::SIGCONT)]);
        e.reap(&[exit(other, 0)], false, t);
        assert_eq!(e.exit, Some(4));
    }

    #[test]
    fn main_ends_the_run_with_its_status_even_zero() {
        let c = "programs:\n  main: {command: x, critical: true, restart: never}\n  side: {command: x}\n";
        let t = Instant::now();
        let mut e = edge(c);
        e.feed(Input::Begin, t);
        e.reap(&[exit(e.pid("main"), 0)], true, t);
        e.reap(&[exit(e.pid("side"), 0)], false, t);
        assert_eq!(e.exit, Some(0));
        // Killed by a signal: 128+N.
        let mut e = edge(c);
        e.feed(Input::Begin, t);
        e.reap(&[killed(e.pid("main"), libc::SIGKILL)], true, t);
        e.reap(&[exit(e.pid("side"), 0)], false, t);
        assert_eq!(e.exit, Some(137));
    }

    #[test]
    fn a_spawn_that_fails_is_a_failed_run_with_its_backoff() {
        let mut e = edge("programs:\n  tool: {command: x, backoff: {initial: 5s}}\n");
        let t = Instant::now();
        e.fail.push("tool".into());
        e.feed(Input::Begin, t);
        let status = e.status(t);
        assert_eq!(status[0].state, "backoff");
        assert_eq!(status[0].last_exit, Some(127));
        assert_eq!(e.m.deadline(), Some(t + Duration::from_secs(5)));
        e.fail.clear();
        e.feed(Input::Time, t + Duration::from_secs(5));
        assert_eq!(e.names(), ["tool"]);
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn an_exited_instance_s_group_gets_its_stop_signal_then_sigkill() {
        let mut e =
            edge("programs:\n  a: {command: x, stop: {timeout: 2s}, backoff: {initial: 1s}}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let first = e.pid("a");
        e.groups.insert(first); // it left a child behind in its group
        e.reap(&[exit(first, 1)], true, t);
        assert_eq!(
            e.group_signals,
            [(first, libc::SIGTERM), (first, libc::SIGCONT)]
        );
        // The restart does not wait for the group.
        assert_eq!(e.m.deadline(), Some(t + secs(1)));
        e.feed(Input::Time, t + secs(1));
        assert_ne!(e.pid("a"), first);
        // The stop timeout: SIGKILL, and the group is forgotten.
        assert_eq!(e.m.deadline(), Some(t + secs(2)));
        e.feed(Input::Time, t + secs(2));
        assert_eq!(e.group_signals[2..], [(first, libc::SIGKILL)]);
        assert_eq!(e.m.deadline(), None, "nothing left to wake up for");
        assert_eq!(e.exit, None);
    }

    #[test]
    fn an_empty_group_costs_nothing_and_is_never_signalled_again() {
        let mut e =
            edge("programs:\n  a: {command: x, stop: {timeout: 2s}, backoff: {initial: 1s}}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        // Nothing left in the group: one signal that fails, no SIGCONT, no tracking.
        let first = e.pid("a");
        e.reap(&[exit(first, 1)], true, t);
        assert_eq!(e.group_signals, [(first, libc::SIGTERM)]);
        e.feed(Input::Time, t + secs(1));
        assert_eq!(e.m.deadline(), None);
        // A group that empties as its members are reaped is forgotten then.
        let second = e.pid("a");
        e.groups.insert(second);
        e.reap(&[exit(second, 1)], true, t + secs(1));
        e.groups.remove(&second);
        e.reap(&[exit(999, 0)], true, t + secs(1)); // an orphan of it
        e.feed(Input::Time, t + secs(3)); // the restart, after 2s of backoff
        assert_eq!(e.m.deadline(), None);
        let signalled = e.group_signals.len();
        e.feed(Input::Time, t + secs(10));
        assert_eq!(e.group_signals.len(), signalled);
    }

    #[test]
    fn a_group_number_that_is_an_instance_s_pid_again_is_left_alone() {
        let mut e =
            edge("programs:\n  a: {command: x, stop: {timeout: 2s}, backoff: {initial: 1s}}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let first = e.pid("a");
        e.groups.insert(first);
        e.reap(&[exit(first, 1)], true, t);
        // The group empties unseen and the number comes back as the new instance's pid,
        // leading its own group.
        e.reuse = Some(first);
        e.feed(Input::Time, t + secs(1));
        assert_eq!(e.pid("a"), first);
        e.feed(Input::Time, t + secs(2));
        assert_eq!(
            e.group_signals,
            [(first, libc::SIGTERM), (first, libc::SIGCONT)],
            "the new instance's group must not get the old one's SIGKILL"
        );
        assert_eq!(e.m.deadline(), None);
    }

    #[test]
    fn a_group_led_by_an_exec_check_is_not_the_leftovers() {
        // The edge refuses to signal a group an exec check leads: to the machine, the old
        // group is empty and forgotten.
        let mut e = edge("programs:\n  a: {command: x, stop: {timeout: 2s}}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let first = e.pid("a");
        e.check_pids.push(first);
        e.groups.insert(first);
        e.reap(&[exit(first, 1)], true, t);
        assert!(e.group_signals.is_empty());
        assert_eq!(e.m.deadline(), Some(t + Duration::from_millis(100)));
    }
}
