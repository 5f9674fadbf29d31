//! The supervisor: every program and its instances, start order, critical programs, the
//! ordered shutdown, live reload as a difference, reloads that verdicts ask for, and what
//! exited instances leave in their process groups.
//!
//! Side effects go through [`Ops`] (spawn, signal, clear leftovers), so the ordering rules are
//! unit-tested with a fake; the real implementation lives in `event_loop`. Per-instance rules
//! (restart policy, backoff, stop escalation) are in `program`. Nothing here blocks or reads
//! the system; `now` is always given.
//!
//! Rules:
//! - a program starts once each dependency is ready (every instance running) or, for a
//!   oneshot, done (exited 0); a program whose dependency failed for good never starts;
//! - a critical program that fails for good ends the run with its status (at least 1); a
//!   critical program with `restart: never` (such as `main`, the PROGRAM given after `--`)
//!   ends it whenever it exits, with its status;
//! - every instance leads its own process group; when its process exits, for any reason,
//!   what is left in the group gets the stop signal and SIGCONT, then SIGKILL at the stop
//!   timeout if anything is still there ([`Group`]). The restart never waits for it. A group
//!   is forgotten as soon as it is empty (kill(-pgid, 0) fails), so its number is never
//!   signalled once it could belong to someone else, nor ever when it is a current
//!   instance's pid; with nothing left there is no deadline and so no wake-up;
//! - a reload a verdict asks for (memory_max, `cpu_action: restart`, a failed health check, a
//!   missed watchdog) counts as a restart: RESTARTS, the restart window and the backoff, as a
//!   crash would ([`Supervisor::reload_verdict`]). Requested reloads and restarts do not;
//! - no health check of a program runs while a `replace` reload of it does (the old or the
//!   new instance could answer a check meant for the other); see [`Supervisor::running`];
//! - shutdown stops dependents before what they depend on; independent programs in parallel;
//!   each instance gets its stop signal and timeout; `shutdown.timeout` bounds it all; then
//!   the namespace is cleared of leftovers (SIGTERM, a grace period, SIGKILL). A shutdown
//!   that had to SIGKILL a program (its stop timeout, `shutdown.timeout`, a second request)
//!   says which and why, and ends with [`FORCED_EXIT`] unless a program decided the status;
//! - the cost of an event does not grow with the square of the number of programs: names,
//!   pids and dependencies are looked up in maps built once per config, and start order is a
//!   work list of the programs whose dependencies moved ([`Supervisor::launch_ready`]).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};

use crate::config::units::format_duration;
use crate::config::{Config, ProgramSpec, ReloadStrategy, Restart, diff};
use crate::program::{Action, Instance, State};

/// Longest grace the leftovers get at the end of a run (bounded by `shutdown.timeout`).
const LEFTOVER_GRACE: Duration = Duration::from_secs(2);
/// How long SIGKILLed processes may take to be reaped before ginit exits anyway.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// ginit's exit status after a shutdown that had to SIGKILL a program: 128+SIGKILL, what
/// Docker reports when its own stop timeout ran out. A status a program decided (`main`'s, a
/// failed critical program's) is kept.
pub const FORCED_EXIT: i32 = 128 + libc::SIGKILL;

/// The side effects the supervisor asks for.
pub trait Ops {
    /// Starts instance `index` of `spec`; returns its pid.
    fn spawn(&mut self, spec: &ProgramSpec, index: u32) -> Result<i32, String>;
    /// Sends `sig` to the process group of an instance whose leader is `pid`.
    fn signal(&mut self, pid: i32, sig: i32);
    /// Sends `sig` to every leftover process (the namespace, or ginit's descendants).
    fn signal_leftovers(&mut self, sig: i32);
    /// Sends `sig` (0: none, only asking) to process group `pgid`, which an exited instance
    /// led. False when nothing is left in it, or when the number now leads a group of
    /// ginit's own making (an exec check): either way the group is to be forgotten.
    fn signal_group(&mut self, pgid: i32, sig: i32) -> bool;
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
    /// `replace` reloads a verdict asked for, waiting out their backoff: (when, index).
    delayed: Vec<(Instant, u32)>,
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
            delayed: Vec::new(),
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

    /// A `replace` reload runs, or one a verdict asked for waits out its backoff.
    fn renewing(&self) -> bool {
        self.replacing.is_some() || !self.delayed.is_empty()
    }

    /// Instance `index` is being renewed already (queued, delayed, or its new instance is
    /// starting): a further verdict about it changes nothing and is not counted.
    fn renewing_index(&self, index: u32) -> bool {
        self.replacing.as_ref().is_some_and(|q| q.contains(&index))
            || self.delayed.iter().any(|&(_, i)| i == index)
            || self.instances.iter().any(|i| i.index == index && i.surge)
    }
}

/// What an exited instance left in its process group, until the group is empty or has had
/// SIGKILL at `kill_at`.
struct Group {
    pgid: i32,
    kill_at: Instant,
    /// The instance that led it, for log lines.
    label: String,
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
    /// Leftovers (or, after a second request, everything) got SIGKILL.
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
    /// Position of each program in `programs`, by name.
    by_name: HashMap<String, usize>,
    /// The program (position) of each instance's process, by pid.
    by_pid: HashMap<i32, u32>,
    /// The programs that depend on each program, as positions.
    dependents: Vec<Vec<usize>>,
    /// Programs not launched yet whose dependencies may have moved: what `launch_ready`
    /// looks at (file order among those queued together).
    wake: Vec<usize>,
    /// In `wake` already.
    queued: Vec<bool>,
    /// Some program is being removed or replaced by a config reload.
    reshaping: bool,
    /// Some program has a `replace` reload queued, delayed, or cleaning up.
    replacing_any: bool,
    /// Process groups of exited instances that still have members.
    groups: Vec<Group>,
    /// What the shutdown had to SIGKILL, and why.
    forced: Vec<String>,
    shutdown: crate::config::ShutdownSpec,
    phase: Phase,
    /// The status ginit exits with.
    exit_code: i32,
    /// The status was decided by a program that ended the run (not just a signal).
    code_decided: bool,
    children_left: bool,
}

/// Moves the restart history of `instances[from]` to `instances[to]` (the new instance of a
/// `replace` takes over from the old one).
fn inherit(instances: &mut [Instance], from: usize, to: usize) {
    if from == to || from >= instances.len() || to >= instances.len() {
        return;
    }
    if from < to {
        let (a, b) = instances.split_at_mut(to);
        b[0].inherit_history(&mut a[from]);
    } else {
        let (a, b) = instances.split_at_mut(from);
        a[to].inherit_history(&mut b[0]);
    }
}

/// The position of each program by name. One map type for every name lookup, as each
/// distinct map type costs kilobytes of binary.
fn positions(programs: &[ProgramSpec]) -> HashMap<String, usize> {
    let mut map = HashMap::with_capacity(programs.len());
    for (i, p) in programs.iter().enumerate() {
        map.insert(p.name.clone(), i);
    }
    map
}

impl Supervisor {
    pub fn new(config: &Config) -> Supervisor {
        let mut s = Supervisor {
            programs: config.programs.iter().cloned().map(Program::new).collect(),
            by_name: HashMap::new(),
            by_pid: HashMap::new(),
            dependents: Vec::new(),
            wake: Vec::new(),
            queued: Vec::new(),
            reshaping: false,
            replacing_any: false,
            groups: Vec::new(),
            forced: Vec::new(),
            shutdown: config.shutdown,
            phase: Phase::Running,
            exit_code: 0,
            code_decided: false,
            children_left: true,
        };
        s.reindex();
        s
    }

    /// Rebuilds the maps after `programs` changed shape (a config reload), and queues every
    /// program not launched yet. Linear in programs, instances and dependencies.
    fn reindex(&mut self) {
        self.by_name.clear();
        self.by_pid.clear();
        for (p, program) in self.programs.iter().enumerate() {
            self.by_name.insert(program.spec.name.clone(), p);
            for pid in program.instances.iter().filter_map(|i| i.pid) {
                self.by_pid.insert(pid, p as u32);
            }
        }
        self.dependents = vec![Vec::new(); self.programs.len()];
        for (p, program) in self.programs.iter().enumerate() {
            for d in &program.spec.depends_on {
                if let Some(&d) = self.by_name.get(d) {
                    self.dependents[d].push(p);
                }
            }
        }
        self.wake.clear();
        self.queued = vec![false; self.programs.len()];
        for p in 0..self.programs.len() {
            self.queue(p);
        }
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
    fn touched(&mut self, p: usize) {
        let Some(dependents) = self.dependents.get(p) else {
            return;
        };
        for k in 0..dependents.len() {
            let d = self.dependents[p][k];
            self.queue(d);
        }
    }

    /// The program and position of the instance whose process is `pid`.
    fn find_pid(&self, pid: i32) -> Option<(usize, usize)> {
        let p = *self.by_pid.get(&pid)? as usize;
        let i = self
            .programs
            .get(p)?
            .instances
            .iter()
            .position(|i| i.pid == Some(pid))?;
        Some((p, i))
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
        let mut first = match self.phase {
            Phase::Delaying { until } | Phase::Clearing { until } | Phase::Killing { until } => {
                Some(until)
            }
            Phase::Stopping { deadline } => Some(deadline),
            Phase::Running | Phase::Done => None,
        };
        let mut consider = |t: Instant| {
            if first.is_none_or(|f| t < f) {
                first = Some(t);
            }
        };
        for p in &self.programs {
            p.instances
                .iter()
                .filter_map(Instance::deadline)
                .for_each(&mut consider);
            p.delayed.iter().for_each(|d| consider(d.0));
        }
        self.groups.iter().for_each(|g| consider(g.kill_at));
        first
    }

    pub fn is_shutting_down(&self) -> bool {
        self.phase != Phase::Running
    }

    /// Stopping programs for good (not just delaying): SIGKILLs now count as forced.
    fn stopping(&self) -> bool {
        matches!(
            self.phase,
            Phase::Stopping { .. } | Phase::Clearing { .. } | Phase::Killing { .. }
        )
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
        self.by_name.get(name).copied()
    }

    pub fn spec(&self, name: &str) -> Option<&ProgramSpec> {
        self.program_index(name).map(|p| &self.programs[p].spec)
    }

    /// The program whose instance runs as `pid`.
    pub fn program_of(&self, pid: i32) -> Option<&str> {
        self.find_pid(pid)
            .map(|(p, _)| self.programs[p].spec.name.as_str())
    }

    /// Whether `pid` is an instance's process (running or stopping).
    pub fn has_pid(&self, pid: i32) -> bool {
        self.by_pid.contains_key(&pid)
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
            if what != Control::Start {
                // A request supersedes the reloads verdicts scheduled.
                self.programs[p].delayed.clear();
            }
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
        let Some((p, i)) = self.find_pid(pid) else {
            return false;
        };
        let program = &mut self.programs[p];
        if !program.instances[i].on_ready() {
            return false;
        }
        info!("{} is ready", program.label(program.instances[i].index));
        self.touched(p);
        self.progress(now, ops);
        true
    }

    /// Every instance with a running process. Health checks are off for every instance of
    /// a program being replaced (see the module's rules), and start afresh afterwards.
    pub fn running(&self) -> Vec<crate::checks::Running<'_>> {
        self.programs
            .iter()
            .flat_map(|p| {
                let health = !p.renewing();
                p.instances.iter().filter_map(move |i| match i.pid {
                    Some(pid) if i.state == State::Running => Some(crate::checks::Running {
                        pid,
                        spec: &p.spec,
                        index: i.index,
                        ready: i.ready,
                        health,
                    }),
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
        self.replacing_any = true;
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
        if !self.replacing_any {
            return;
        }
        for p in 0..self.programs.len() {
            let program = &mut self.programs[p];
            if program.replacing.is_none() {
                // What a cancelled replace (a stop, a shutdown) left: a new instance that
                // never took over, or an old one that was retiring.
                program
                    .instances
                    .retain(|i| i.is_live() || !(i.surge || i.retiring));
                continue;
            }
            self.touched(p);
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
                        // On to the next step at once: without a ready check it is ready
                        // already (and a start that failed is a failed reload).
                        continue;
                    }
                    (old, Some(s)) => {
                        let new = &program.instances[s];
                        if new.state == State::Running && new.ready {
                            program.instances[s].surge = false;
                            if let Some(o) = old {
                                inherit(&mut program.instances, o, s);
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
        self.replacing_any = self
            .programs
            .iter()
            .any(|p| p.renewing() || p.instances.iter().any(|i| i.surge || i.retiring));
    }

    /// A verdict about the instance whose process is `pid` (over its `memory_max`, its
    /// `cpu_max` with `cpu_action: restart`, failed health checks, a missed or triggered
    /// watchdog) asks for a reload by the program's strategy. It counts as a restart, as a
    /// crash would (RESTARTS, the restart window, the backoff):
    /// - `restart`: stopped now, started again the backoff delay after it is down;
    /// - `replace`: the new instance is started after the backoff delay, while the old one
    ///   keeps serving (and is stopped once the new one is ready, as in any replace);
    /// - `signal`: the signal is sent now (there is nothing to delay), and counted.
    ///
    /// Past `max_restarts` within `restart_window`, the instance is stopped and failed
    /// (a critical program then ends the run). Verdicts during a shutdown, about a new
    /// instance not serving yet, or about one already being renewed are not acted on.
    pub fn reload_verdict(&mut self, pid: i32, reason: &str, now: Instant, ops: &mut dyn Ops) {
        if self.phase != Phase::Running {
            return;
        }
        let Some((p, i)) = self.find_pid(pid) else {
            return;
        };
        let program = &mut self.programs[p];
        let inst = &program.instances[i];
        let index = inst.index;
        let label = program.label(index);
        if inst.state != State::Running || inst.surge || inst.retiring {
            return;
        }
        if program.renewing_index(index) {
            debug!("{label} (pid {pid}) {reason}; a reload of it is under way already");
            return;
        }
        let Some(delay) = program.instances[i].count_restart(&program.spec, now) else {
            error!(
                "{label} (pid {pid}) {reason}, and was restarted {} times in {} already: \
                 giving up, stopping it",
                program.spec.max_restarts,
                format_duration(program.spec.restart_window)
            );
            let actions = program.instances[i].give_up(&program.spec, now);
            self.apply(p, i, actions, now, ops);
            self.progress(now, ops);
            return;
        };
        warn!(
            "{label} (pid {pid}) {reason}: reloading it (restart {}, in {})",
            program.instances[i].restarts,
            format_duration(delay)
        );
        match program.spec.reload {
            ReloadStrategy::Signal(sig) => ops.signal(pid, sig),
            ReloadStrategy::Restart => {
                let actions = program.instances[i].reload_after(&program.spec, now, delay);
                self.apply(p, i, actions, now, ops);
            }
            ReloadStrategy::Replace if delay.is_zero() => self.begin_replace(p, vec![index]),
            ReloadStrategy::Replace => {
                program.delayed.push((now + delay, index));
                self.replacing_any = true;
            }
        }
        self.progress(now, ops);
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
                            self.by_pid.insert(pid, p as u32);
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
                Action::Leftovers {
                    pgid,
                    signal,
                    kill_at,
                } => self.sweep_group(&label, pgid, signal, kill_at, ops),
            }
        }
        self.touched(p);
    }

    /// What instance `label` left in its process group `pgid` once its process exited:
    /// `signal` now (SIGCONT after it), and tracked until SIGKILL at `kill_at` unless it is
    /// empty. A number that is a current instance's pid is never touched.
    fn sweep_group(
        &mut self,
        label: &str,
        pgid: i32,
        signal: Option<i32>,
        kill_at: Option<Instant>,
        ops: &mut dyn Ops,
    ) {
        if self.by_pid.contains_key(&pgid) {
            return;
        }
        match signal {
            Some(sig) => {
                if !ops.signal_group(pgid, sig) {
                    return; // nothing left
                }
                if sig != libc::SIGKILL && sig != libc::SIGCONT {
                    ops.signal_group(pgid, libc::SIGCONT);
                }
                info!(
                    "{label} left processes in its process group: sent them {}",
                    crate::signals::name(sig)
                );
            }
            None => {
                if !ops.signal_group(pgid, 0) {
                    return;
                }
            }
        }
        if let Some(kill_at) = kill_at
            && !self.groups.iter().any(|g| g.pgid == pgid)
        {
            self.groups.push(Group {
                pgid,
                kill_at,
                label: label.to_string(),
            });
        }
    }

    /// Forgets the groups nothing is left in (called after reaping, which is when they
    /// empty), so an empty group costs no wake-up and its number is never signalled again.
    fn forget_empty_groups(&mut self, ops: &mut dyn Ops) {
        if self.groups.is_empty() {
            return;
        }
        let by_pid = &self.by_pid;
        self.groups
            .retain(|g| !by_pid.contains_key(&g.pgid) && ops.signal_group(g.pgid, 0));
    }

    /// SIGKILL for the groups whose time is up.
    fn kill_groups(&mut self, now: Instant, ops: &mut dyn Ops) {
        let mut k = 0;
        while k < self.groups.len() {
            if now < self.groups[k].kill_at {
                k += 1;
                continue;
            }
            let g = self.groups.swap_remove(k);
            if !self.by_pid.contains_key(&g.pgid) && ops.signal_group(g.pgid, libc::SIGKILL) {
                warn!(
                    "what {} left in its process group did not stop in time: sent SIGKILL",
                    g.label
                );
                if self.stopping() {
                    self.forced.push(format!("what {} left behind", g.label));
                    self.why_forced("its stop timeout");
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

    /// SIGKILL for every instance that may have a process, and for what exited ones left
    /// in their groups; pending restarts are cancelled. Each kill is noted, with `why`, for
    /// the final word on the shutdown.
    fn kill_all(&mut self, why: &str, now: Instant, ops: &mut dyn Ops) {
        warn!("{why}: killing what is still running");
        for p in 0..self.programs.len() {
            for i in 0..self.programs[p].instances.len() {
                let program = &mut self.programs[p];
                let inst = &mut program.instances[i];
                if inst.is_live() {
                    self.forced.push(program.spec.label(inst.index));
                }
                let actions = inst.kill();
                self.apply(p, i, actions, now, ops);
            }
        }
        for g in std::mem::take(&mut self.groups) {
            if !self.has_pid(g.pgid) && ops.signal_group(g.pgid, libc::SIGKILL) {
                self.forced.push(format!("what {} left behind", g.label));
            }
        }
        self.why_forced(why);
    }

    /// Adds the reason to the entries `forced` got since the last reason was added.
    fn why_forced(&mut self, why: &str) {
        for entry in self.forced.iter_mut().rev() {
            if entry.ends_with(')') {
                break;
            }
            entry.push_str(" (");
            entry.push_str(why);
            entry.push(')');
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
                    format_duration(wait),
                    inst.restarts
                );
            }
            (State::Failed, _) if program.spec.restart != Restart::Never => {
                error!(
                    "{label} failed: more than {} restarts in {}; giving up",
                    program.spec.max_restarts,
                    format_duration(program.spec.restart_window)
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
            let Some((p, i)) = self.find_pid(exit.pid) else {
                continue;
            };
            self.by_pid.remove(&exit.pid);
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
            // After a stop: a counted reload now waits out its backoff, or a given-up
            // instance is failed (and a critical one ends the run).
            let state = program.instances[i].state;
            if !surge && (!was_stopping || matches!(state, State::Backoff | State::Failed)) {
                self.report_end(p, i, now);
            }
            if !surge && (!was_stopping || state == State::Failed) {
                self.check_critical(p, i, now);
            }
            self.apply(p, i, actions, now, ops);
        }
        self.forget_empty_groups(ops);
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
                        format_duration(self.shutdown.delay)
                    );
                    self.phase = Phase::Delaying {
                        until: now + self.shutdown.delay,
                    };
                }
            }
            Phase::Delaying { .. } | Phase::Stopping { .. } => {
                // No timeout was reached: it is the request that decides, and says so.
                self.kill_all("a second shutdown request", now, ops);
                ops.signal_leftovers(libc::SIGKILL);
                self.phase = Phase::Killing {
                    until: now + KILL_WAIT,
                };
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

    /// The run is over: the exit status is settled, and a forced shutdown says so.
    fn finish(&mut self) {
        self.phase = Phase::Done;
        if self.forced.is_empty() {
            return;
        }
        if !self.code_decided {
            self.exit_code = FORCED_EXIT;
        }
        warn!(
            "the shutdown had to SIGKILL {}; exit status {}",
            self.forced.join(", "),
            self.exit_code
        );
    }

    /// Deadlines: backoffs, stop timeouts, delayed reloads, process groups, the shutdown
    /// delay and timeout, the grace period.
    pub fn on_time(&mut self, now: Instant, ops: &mut dyn Ops) {
        let stopping = self.stopping();
        for p in 0..self.programs.len() {
            for i in 0..self.programs[p].instances.len() {
                let program = &mut self.programs[p];
                let inst = &mut program.instances[i];
                if inst.deadline().is_none_or(|d| now < d) {
                    continue;
                }
                let (was_ready, was) = (inst.ready, inst.state);
                let actions = inst.on_time(now);
                let label = program.spec.label(inst.index);
                if actions.contains(&Action::Signal(libc::SIGKILL)) {
                    if was == State::Running {
                        let limit = program.spec.ready.as_ref().map(|r| r.timeout);
                        warn!(
                            "{label} was not ready within {}: killing it",
                            format_duration(limit.unwrap_or_default())
                        );
                    } else {
                        warn!("{label} did not stop in time: sending SIGKILL");
                        if stopping {
                            self.forced.push(label);
                            self.why_forced("its stop timeout");
                        }
                    }
                } else if inst.ready && !was_ready {
                    info!("{label} is ready");
                }
                self.apply(p, i, actions, now, ops);
            }
            if self.replacing_any && self.programs[p].delayed.iter().any(|d| now >= d.0) {
                let mut due = Vec::new();
                self.programs[p].delayed.retain(|&(at, index)| {
                    if now >= at {
                        due.push(index);
                    }
                    now < at
                });
                self.begin_replace(p, due);
            }
        }
        self.kill_groups(now, ops);
        match self.phase {
            Phase::Delaying { until } if now >= until => {
                info!("shutdown delay over: stopping programs");
                self.begin_stopping(now);
            }
            Phase::Stopping { deadline }
                if now >= deadline
                    && (!self.groups.is_empty() || self.programs.iter().any(Program::live)) =>
            {
                let limit = format_duration(self.shutdown.timeout);
                self.kill_all(&format!("shutdown.timeout of {limit} reached"), now, ops);
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
                self.finish();
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
            Phase::Stopping { deadline } => {
                if std::mem::take(&mut self.replacing_any) {
                    for program in &mut self.programs {
                        program.delayed.clear();
                        if program.replacing.take().is_some() {
                            program.replace_result = Some(Err("ginit is shutting down".into()));
                        }
                    }
                }
                self.stop_in_order(now, ops);
                if self.groups.is_empty() && !self.programs.iter().any(Program::live) {
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
                        self.finish();
                    }
                }
            }
            Phase::Clearing { .. } | Phase::Killing { .. } => {
                if !self.children_left {
                    self.finish();
                }
            }
            Phase::Done => {}
        }
    }

    /// Starts each program whose dependencies are satisfied, once. Looks only at the
    /// programs on the work list (those whose dependencies moved since), so an event costs
    /// what it changed, not a scan of every program for every dependency. The list is
    /// taken in rounds, which keeps it first in, first out.
    fn launch_ready(&mut self, now: Instant, ops: &mut dyn Ops) {
        while !self.wake.is_empty() {
            for p in std::mem::take(&mut self.wake) {
                self.launch_if_ready(p, now, ops);
            }
        }
    }

    /// Program `p` of the work list: started if its dependencies are satisfied.
    fn launch_if_ready(&mut self, p: usize, now: Instant, ops: &mut dyn Ops) {
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
            let Some(dep) = self.by_name.get(d).map(|&d| &self.programs[d]) else {
                continue;
            };
            if dep.failed_for_good() {
                dead = Some(dep.spec.name.clone());
                break;
            }
            ready &= dep.satisfies_dependents();
        }
        if let Some(dead) = dead {
            if !self.programs[p].blocked_reported {
                error!(
                    "{} will not start: its dependency {dead} failed",
                    self.programs[p].spec.name
                );
                self.programs[p].blocked_reported = true;
            }
            return;
        }
        if !ready {
            return;
        }
        self.programs[p].launched = true;
        // A start may satisfy others at once (programs without readiness checks are
        // ready as soon as they run): its dependents go on the list.
        self.each_instance(p, now, ops, |inst, spec| inst.start(spec));
        self.touched(p);
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
            let dependents_up = self
                .dependents
                .get(p)
                .is_some_and(|ds| ds.iter().any(|&d| self.programs[d].live()));
            if !dependents_up {
                self.each_instance(p, now, ops, |inst, spec| inst.stop(spec, now));
            }
        }
    }

    /// Sends `sig` to every running instance of program `name`; false if there is none.
    pub fn signal_program(&self, name: &str, sig: i32, ops: &mut dyn Ops) -> bool {
        let Some(program) = self.program_index(name).map(|p| &self.programs[p]) else {
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
    /// changed ones restart with their new spec, unchanged ones are not touched. Linear in
    /// the size of both configs.
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
        let specs = positions(&new.programs);
        let spec_of = |name: &str| specs.get(name).and_then(|&i| new.programs.get(i));
        for name in &d.removed {
            if let Some(p) = self.program_index(name) {
                self.programs[p].removing = true;
                self.programs[p].delayed.clear();
                self.reshaping = true;
                self.each_instance(p, now, ops, |inst, spec| inst.stop(spec, now));
            }
        }
        for name in &d.changed {
            let (Some(p), Some(spec)) = (self.program_index(name), spec_of(name)) else {
                continue;
            };
            let program = &mut self.programs[p];
            program.delayed.clear();
            let in_place = spec.reload == ReloadStrategy::Replace
                && program.spec.instances == spec.instances
                && program.launched
                && program.live();
            if in_place {
                // Zero downtime: new instances with the new settings, each replacing an old
                // one once ready (a new build that never gets ready is rolled back).
                program.spec = spec.clone();
                self.begin_replace(p, (0..spec.instances).collect());
                continue;
            }
            program.replacement = Some(spec.clone());
            self.reshaping = true;
            self.each_instance(p, now, ops, |inst, spec| inst.stop(spec, now));
        }
        for name in &d.added {
            if let Some(spec) = spec_of(name) {
                self.programs.push(Program::new(spec.clone()));
            }
        }
        // Keep the file's order, which is the order of start among equals.
        self.programs
            .sort_by_key(|q| specs.get(&q.spec.name).copied().unwrap_or(usize::MAX));
        self.reindex();
        self.progress(now, ops);
        summary
    }

    /// Drops removed programs and restarts changed ones once they are down.
    fn finish_replacements(&mut self) {
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
                *program = Program::new(spec);
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
        /// Process groups with members left (pgid).
        groups: std::collections::HashSet<i32>,
        /// Signals sent to groups (0 excluded).
        group_signals: Vec<(i32, i32)>,
        /// How many times a group was asked about (signal 0).
        group_probes: usize,
        /// The pid the next spawn gets (a reused number), instead of a fresh one.
        reuse: Option<i32>,
    }

    impl Ops for Fake {
        fn spawn(&mut self, spec: &ProgramSpec, index: u32) -> Result<i32, String> {
            if self.fail.contains(&spec.name) {
                return Err("no such file".into());
            }
            self.next_pid += 1;
            let pid = self.reuse.take().unwrap_or(100 + self.next_pid);
            self.spawned.push((spec.name.clone(), index, pid));
            Ok(pid)
        }
        fn signal(&mut self, pid: i32, sig: i32) {
            self.signals.push((pid, sig));
        }
        fn signal_leftovers(&mut self, sig: i32) {
            self.leftovers.push(sig);
        }
        fn signal_group(&mut self, pgid: i32, sig: i32) -> bool {
            if sig == 0 {
                self.group_probes += 1;
            } else {
                self.group_signals.push((pgid, sig));
            }
            self.groups.contains(&pgid)
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
        // web and side (independent) first, in parallel; db waits for web. SIGCONT follows
        // each stop signal.
        assert_eq!(
            ops.signals,
            [
                (web, libc::SIGTERM),
                (web, libc::SIGCONT),
                (side, libc::SIGINT),
                (side, libc::SIGCONT)
            ]
        );
        s.on_reaped(&[killed(web, libc::SIGTERM)], true, t, &mut ops);
        assert_eq!(ops.signals[4..], [(db, libc::SIGTERM), (db, libc::SIGCONT)]);
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
        assert_eq!(
            ops.signals,
            [
                (pid, libc::SIGTERM),
                (pid, libc::SIGCONT),
                (pid, libc::SIGKILL)
            ]
        );
        // Still not reaped (uninterruptible): the shutdown timeout ends it.
        s.on_time(t + Duration::from_secs(3), &mut ops);
        assert_eq!(ops.leftovers, [libc::SIGKILL]);
        s.on_time(t + Duration::from_secs(3) + KILL_WAIT, &mut ops);
        // It had to be killed: the exit status says so.
        assert_eq!(s.finished(), Some(FORCED_EXIT));
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
        assert_eq!(
            ops.signals,
            [
                (pid, libc::SIGTERM),
                (pid, libc::SIGCONT),
                (pid, libc::SIGKILL)
            ]
        );
        // Whatever else is left gets no grace either; and no timeout is waited for.
        assert_eq!(ops.leftovers, [libc::SIGKILL]);
        assert_eq!(s.deadline(), Some(t + KILL_WAIT));
        s.on_reaped(&[killed(pid, libc::SIGKILL)], false, t, &mut ops);
        assert_eq!(s.finished(), Some(FORCED_EXIT));
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
        let a = ops.pid("a");
        assert_eq!(ops.signals, [(a, libc::SIGTERM), (a, libc::SIGCONT)]);
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
        assert_eq!(
            ops.signals,
            [(other, libc::SIGTERM), (other, libc::SIGCONT)]
        );
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
            [
                (drop, libc::SIGTERM),
                (drop, libc::SIGCONT),
                (change, libc::SIGTERM),
                (change, libc::SIGCONT)
            ]
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

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn an_exited_instance_s_group_gets_its_stop_signal_then_sigkill() {
        let c =
            parse("programs:\n  a: {command: x, stop: {timeout: 2s}, backoff: {initial: 1s}}\n");
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        let first = ops.pid("a");
        ops.groups.insert(first); // it left a child behind in its group
        s.on_reaped(&[exit(first, 1)], true, t, &mut ops);
        assert_eq!(
            ops.group_signals,
            [(first, libc::SIGTERM), (first, libc::SIGCONT)]
        );
        // The restart does not wait for the group.
        assert_eq!(s.deadline(), Some(t + secs(1)));
        s.on_time(t + secs(1), &mut ops);
        assert_ne!(ops.pid("a"), first);
        // The stop timeout: SIGKILL, and the group is forgotten.
        assert_eq!(s.deadline(), Some(t + secs(2)));
        s.on_time(t + secs(2), &mut ops);
        assert_eq!(ops.group_signals[2..], [(first, libc::SIGKILL)]);
        assert_eq!(s.deadline(), None, "nothing left to wake up for");
        assert_eq!(s.finished(), None);
    }

    #[test]
    fn an_empty_group_costs_nothing_and_is_never_signalled_again() {
        let c =
            parse("programs:\n  a: {command: x, stop: {timeout: 2s}, backoff: {initial: 1s}}\n");
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        // Nothing left in the group: one signal that fails, no SIGCONT, no tracking.
        let first = ops.pid("a");
        s.on_reaped(&[exit(first, 1)], true, t, &mut ops);
        assert_eq!(ops.group_signals, [(first, libc::SIGTERM)]);
        s.on_time(t + secs(1), &mut ops);
        assert_eq!(s.deadline(), None);
        // A group that empties as its members are reaped is forgotten then.
        let second = ops.pid("a");
        ops.groups.insert(second);
        s.on_reaped(&[exit(second, 1)], true, t + secs(1), &mut ops);
        ops.groups.remove(&second);
        s.on_reaped(&[exit(999, 0)], true, t + secs(1), &mut ops); // an orphan of it
        s.on_time(t + secs(3), &mut ops); // the restart, after 2s of backoff
        assert_eq!(s.deadline(), None);
        let signalled = ops.group_signals.len();
        s.on_time(t + secs(10), &mut ops);
        assert_eq!(ops.group_signals.len(), signalled);
    }

    #[test]
    fn a_group_number_that_is_an_instance_s_pid_again_is_left_alone() {
        let c =
            parse("programs:\n  a: {command: x, stop: {timeout: 2s}, backoff: {initial: 1s}}\n");
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        let first = ops.pid("a");
        ops.groups.insert(first);
        s.on_reaped(&[exit(first, 1)], true, t, &mut ops);
        // The group empties unseen and the number comes back as the new instance's pid,
        // leading its own group.
        ops.reuse = Some(first);
        s.on_time(t + secs(1), &mut ops);
        assert_eq!(ops.pid("a"), first);
        s.on_time(t + secs(2), &mut ops);
        assert_eq!(
            ops.group_signals,
            [(first, libc::SIGTERM), (first, libc::SIGCONT)],
            "the new instance's group must not get the old one's SIGKILL"
        );
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn a_stopped_program_s_stragglers_get_sigkill_at_the_stop_timeout() {
        let c = parse("programs:\n  a: {command: x, stop: {timeout: 2s}}\n");
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        let pid = ops.pid("a");
        s.control(&["a".into()], Control::Stop, t, &mut ops);
        assert_eq!(ops.signals, [(pid, libc::SIGTERM), (pid, libc::SIGCONT)]);
        // The leader goes at once; a child that ignores SIGTERM stays.
        ops.groups.insert(pid);
        s.on_reaped(&[killed(pid, libc::SIGTERM)], true, t + secs(1), &mut ops);
        assert!(
            ops.group_signals.is_empty(),
            "it had its stop signal already"
        );
        assert_eq!(
            s.settled(&["a".into()], Control::Stop),
            Some(Ok("stopped a".into()))
        );
        assert_eq!(s.deadline(), Some(t + secs(2)));
        s.on_time(t + secs(2), &mut ops);
        assert_eq!(ops.group_signals, [(pid, libc::SIGKILL)]);
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn shutdown_waits_for_groups_and_a_sigkill_for_them_is_a_forced_shutdown() {
        let c = parse("programs:\n  a: {command: x, stop: {timeout: 2s}}\n");
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        let pid = ops.pid("a");
        s.request_shutdown(t, &mut ops);
        ops.groups.insert(pid);
        s.on_reaped(&[killed(pid, libc::SIGTERM)], true, t, &mut ops);
        assert!(ops.leftovers.is_empty(), "still waiting for the group");
        s.on_time(t + secs(2), &mut ops);
        assert_eq!(ops.group_signals, [(pid, libc::SIGKILL)]);
        assert_eq!(ops.leftovers, [libc::SIGTERM]);
        s.on_reaped(&[], false, t + secs(2), &mut ops);
        assert_eq!(s.finished(), Some(FORCED_EXIT));
    }

    #[test]
    fn a_status_a_program_decided_survives_a_forced_shutdown() {
        let c = parse(
            "programs:\n  main: {command: x, critical: true, restart: never}\n  side: {command: x, stop: {timeout: 1s}}\n",
        );
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        s.on_reaped(&[exit(ops.pid("main"), 3)], true, t, &mut ops);
        s.on_time(t + secs(1), &mut ops); // side ignores its SIGTERM: SIGKILL
        s.on_reaped(
            &[killed(ops.pid("side"), libc::SIGKILL)],
            false,
            t + secs(1),
            &mut ops,
        );
        assert_eq!(s.finished(), Some(3));
    }

    #[test]
    fn verdict_reloads_by_restart_count_back_off_and_give_up() {
        let c = parse(
            "programs:\n  a: {command: x, critical: true, max_restarts: 2, backoff: {initial: 1s}}\n",
        );
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        let mut now = t;
        for (n, delay) in [(1, 1), (2, 2)] {
            let pid = ops.pid("a");
            s.reload_verdict(pid, "uses too much memory", now, &mut ops);
            assert_eq!(
                ops.signals[ops.signals.len() - 2..],
                [(pid, libc::SIGTERM), (pid, libc::SIGCONT)]
            );
            assert_eq!(s.status()[0].restarts, n);
            // A second verdict before it is down changes nothing.
            s.reload_verdict(pid, "uses too much memory", now, &mut ops);
            assert_eq!(s.status()[0].restarts, n);
            s.on_reaped(&[killed(pid, libc::SIGTERM)], true, now, &mut ops);
            assert_eq!(s.status()[0].state, "backoff");
            assert_eq!(s.deadline(), Some(now + secs(delay)));
            now += secs(delay);
            s.on_time(now, &mut ops);
            assert_ne!(ops.pid("a"), pid);
        }
        // The third within the window: stopped, failed, and (critical) the run ends.
        let pid = ops.pid("a");
        s.reload_verdict(pid, "uses too much memory", now, &mut ops);
        assert_eq!(ops.signals.last(), Some(&(pid, libc::SIGCONT)));
        s.on_reaped(&[killed(pid, libc::SIGTERM)], false, now, &mut ops);
        assert_eq!(s.status()[0].state, "failed");
        assert_eq!(s.status()[0].restarts, 2);
        assert_eq!(ops.names().len(), 3);
        assert_eq!(s.finished(), Some(143));
    }

    #[test]
    fn a_requested_restart_is_not_counted() {
        let c = parse("programs:\n  a: {command: x, max_restarts: 1}\n");
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        for _ in 0..3 {
            let pid = ops.pid("a");
            s.control(&["a".into()], Control::Restart, t, &mut ops);
            s.on_reaped(&[killed(pid, libc::SIGTERM)], true, t, &mut ops);
        }
        assert_eq!(s.status()[0].restarts, 0);
        assert_eq!(s.status()[0].state, "running");
    }

    #[test]
    fn verdict_reloads_by_signal_are_counted() {
        let c = parse(
            "programs:\n  a: {command: x, max_restarts: 1, reload: {strategy: signal, signal: SIGHUP}}\n",
        );
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        let pid = ops.pid("a");
        s.reload_verdict(pid, "missed its watchdog", t, &mut ops);
        assert_eq!(ops.signals, [(pid, libc::SIGHUP)]);
        assert_eq!(s.status()[0].restarts, 1);
        s.reload_verdict(pid, "missed its watchdog", t, &mut ops);
        assert_eq!(
            ops.signals[1..],
            [(pid, libc::SIGTERM), (pid, libc::SIGCONT)]
        );
        s.on_reaped(&[killed(pid, libc::SIGTERM)], true, t, &mut ops);
        assert_eq!(s.status()[0].state, "failed");
    }

    #[test]
    fn verdict_replaces_wait_their_backoff_while_the_old_one_serves_without_health() {
        let c = parse(
            "programs:\n  a:\n    command: x\n    reload: {strategy: replace}\n    backoff: {initial: 1s}\n    health: {exec: [x], interval: 1s}\n",
        );
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        let old = ops.pid("a");
        assert!(s.running()[0].health);
        s.reload_verdict(old, "failed its health check 3 times in a row", t, &mut ops);
        assert_eq!(
            ops.spawned.len(),
            1,
            "the replacement waits for the backoff"
        );
        assert!(ops.signals.is_empty(), "the old one keeps serving");
        assert_eq!(s.status()[0].restarts, 1);
        assert!(
            !s.running()[0].health,
            "no health checks while it is being replaced"
        );
        // Not counted twice.
        s.reload_verdict(old, "failed its health check 3 times in a row", t, &mut ops);
        assert_eq!(s.status()[0].restarts, 1);
        assert_eq!(s.deadline(), Some(t + secs(1)));
        s.on_time(t + secs(1), &mut ops);
        let new = ops.pid("a");
        assert_ne!(new, old);
        assert!(s.running().iter().all(|r| !r.health));
        // No ready check: ready at once, so the old one is told to stop.
        assert_eq!(ops.signals, [(old, libc::SIGTERM), (old, libc::SIGCONT)]);
        s.on_reaped(&[killed(old, libc::SIGTERM)], true, t + secs(1), &mut ops);
        let status = s.status();
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].pid, Some(new));
        assert_eq!(
            status[0].restarts, 1,
            "the new instance carries the count on"
        );
        assert!(s.running()[0].health, "health checks resume once replaced");
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn health_is_suspended_during_a_requested_replace() {
        let c = parse(
            "programs:\n  a:\n    command: x\n    reload: {strategy: replace}\n    ready: {notify: true}\n    health: {exec: [x]}\n",
        );
        let mut s = Supervisor::new(&c);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        let old = ops.pid("a");
        s.mark_ready(old, t, &mut ops);
        assert!(s.running()[0].health);
        s.control(&["a".into()], Control::Replace, t, &mut ops);
        let new = ops.pid("a");
        assert!(s.running().iter().all(|r| !r.health));
        s.mark_ready(new, t, &mut ops);
        assert!(s.running().iter().all(|r| !r.health));
        s.on_reaped(&[killed(old, libc::SIGTERM)], true, t, &mut ops);
        assert_eq!(s.running().len(), 1);
        assert!(s.running()[0].health);
        // Verdicts are not taken while shutting down.
        s.request_shutdown(t, &mut ops);
        s.reload_verdict(new, "over memory_max", t, &mut ops);
        assert_eq!(s.status()[0].restarts, 0);
    }

    /// 10,000 programs in one dependency chain, listed last first, each waiting for the
    /// readiness of the one before: started link by link, then reloaded with one change.
    /// Each event costs what it changes, so this stays quick (a quadratic walk would take
    /// 10^8 steps or more). No timing is asserted; the test would simply crawl.
    #[test]
    fn a_long_dependency_chain_starts_and_reloads_in_near_linear_time() {
        const N: usize = 10_000;
        let template = parse("programs:\n  x: {command: x, ready: {notify: true}}\n");
        let chain = |changed: Option<usize>| {
            let mut c = parse("programs:\n  x: {command: x}\n");
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
        let old = chain(None);
        let mut s = Supervisor::new(&old);
        let mut ops = Fake::default();
        let t = Instant::now();
        s.start(t, &mut ops);
        for k in 0..N {
            assert_eq!(ops.spawned.len(), k + 1, "p{k} started alone");
            assert!(s.mark_ready(ops.spawned[k].2, t, &mut ops));
        }
        assert_eq!(ops.spawned[N - 1].0, format!("p{}", N - 1));
        assert!(s.ready());
        let new = chain(Some(N / 2));
        let summary = s.reload(&old, &new, t, &mut ops);
        assert!(summary.contains("1 changed"), "{summary}");
        let pid = ops.pid(&format!("p{}", N / 2));
        s.on_reaped(&[killed(pid, libc::SIGTERM)], true, t, &mut ops);
        assert_eq!(ops.spawned.len(), N + 1);
        assert!(s.mark_ready(ops.spawned[N].2, t, &mut ops));
        assert!(s.ready());
        assert_eq!(s.status().len(), N);
    }
}
