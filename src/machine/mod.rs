//! The machine: every decision of supervisor mode as pure code (and single-program mode's, in
//! [`single`]). Inputs in, effects out. (An "event", in ginit, is one line of the user-visible
//! stream of state changes, `ginit events`; what the machine is fed is an [`Input`].)
//!
//! It owns no fd, reads no /proc and no clock: `now` comes with every input, and whatever needs
//! the system is an [`Effect`] that the OS edge (`os/event_loop.rs`) carries out. It must never
//! import the edge (spawn, signalfd, reaping, /proc, sockets, notify, probes, output, the control
//! server); it may import `config` and `control::protocol` (types), and signal names.
//!
//! The contract with the edge: [`Machine::handle`] takes one [`Input`] and returns the effects
//! it decided, in order. The edge carries them out in that order; an effect that has an answer
//! (a spawn's pid, whether a process group still had members, a usage sample, a loaded config,
//! a check attempt that could not start) is answered by an input fed back *at once*, and the
//! effects of that answer are carried out before the rest of the batch (the edge keeps a
//! stack, not a queue). So the machine sees the same order of things as if it had made the
//! call itself, with no `dyn` callback into the edge. [`Machine::deadline`] is the earliest
//! instant at which [`Input::Time`] has something to do; with none, ginit sleeps.
//! [`Machine::rows`] is the other read-only query: where each instance stands (what `status`
//! answers), read by the metrics endpoint at scrape time; neither decides nor pushes effects.
//!
//! Where each decision lives (one file each, read the header first):
//! - `requests.rs`: what ginit does on each signal it receives (SIGTERM, SIGHUP, SIGUSR1...)
//!   and on each control request (`ginit reload web`, `ginit status`...); config reload rules.
//! - `checks.rs`: readiness and health checks and the watchdog: when attempts run, what a
//!   failure counts for, when a program is reloaded for it.
//! - `reload.rs`: reloads by strategy (chosen in one function), the `replace` reload's steps and
//!   rollback, reloads verdicts ask for, a new config applied as a difference.
//! - `programs.rs`: start order, exits and restarts, critical programs, process-group sweeps.
//! - `shutdown.rs`: the phases of a shutdown, forced kills and ginit's exit status.
//! - `notify.rs`: sd_notify messages: whose they are and what each field does.
//! - `monitor.rs`: memory_max and cpu_max verdicts, and when usage is sampled.
//! - `observe.rs`: what `ginit events` and `ginit logs` get (snapshot, names, notes).
//! - `instance.rs`: one instance: restart policy, backoff, stop escalation, readiness; its state
//!   carries its data (pid, deadlines, checks, monitoring).
//! - `single.rs`: single-program mode (`ginit -- PROGRAM`).
//! - `hooks.rs`: `on_exit` / `on_failed`: which hook runs, when, with which variables, and
//!   one at a time per program.
//! - `schedule.rs`: scheduled programs (`schedule`, `every`): when runs start, skips.
//! - `watch.rs`: file watches: the config reloading itself, programs reloaded on change.
//!
//! [`Machine`] is one struct; each file above adds the `impl Machine` block of its concern, so
//! the decisions stay in one state with no borrowing across objects, yet each reads alone.
//!
//! Deviations from DESIGN.md, and why:
//! - log lines are still written here (through the `log` facade, which is no fd of ours), not
//!   published as events: the event stream of a later issue can turn them into effects;
//! - effects with an answer come back as inputs fed at once, depth first, rather than being
//!   planned ahead: an instance is `State::Spawning` (`instance.rs`) for the instant between
//!   its spawn and the answer, and group signals are answered before the shutdown moves on
//!   (`asking`), so every decision is made on the same facts as when the edge was called;
//! - programs and effects share each program's spec through an `Rc`, so an effect that needs
//!   it (a spawn, an exec check) costs no copy;
//! - the wall clock, which cron schedules are written in, is handed over by the edge with
//!   [`Machine::set_clock`] before each input rather than carried by every [`Input`]: only
//!   `schedule.rs` reads it, and the tests set it once;
//! - the types both sides speak are defined on this side (the edge may import the machine,
//!   never the reverse): [`Exited`] is what the reaper returns, [`Sample`] what the /proc
//!   reader measures; a connection's id is the control protocol's `ConnId`.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::config::signals;
use crate::config::{Config, LogBuffer, ProgramSpec, ReadyCheck, ShutdownSpec};
use crate::control::events::{Event, What};
use crate::control::protocol::{Request, Response};

mod checks;
mod hooks;
mod instance;
mod monitor;
mod notify;
mod observe;
mod programs;
#[cfg(test)]
mod published;
mod reload;
mod requests;
mod schedule;
mod shutdown;
pub mod single;
#[cfg(test)]
mod testing;
mod watch;

pub use hooks::HookVars;
pub use monitor::Sample;
pub use observe::LogsAnswer;

use programs::{Group, Program};
use reload::Control;
use shutdown::Phase;

/// How long SIGKILLed processes may take to be reaped before ginit exits anyway (a process in
/// uninterruptible sleep cannot be helped by waiting longer). Both modes.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// ginit's exit status after a shutdown that had to SIGKILL a program: 128+SIGKILL, what
/// Docker reports when its own stop timeout ran out. A status a program decided (`main`'s, a
/// failed critical program's) is kept.
pub const FORCED_EXIT: i32 = 128 + libc::SIGKILL;

/// A control connection, as the control server numbers them (the same `u64`).
pub use crate::control::protocol::ConnId;

/// Instance `index` of `program`; `serial` tells apart the instances that share an index (the
/// new one of a `replace` reload, one that replaced another) and is never reused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceRef {
    pub program: String,
    pub index: u32,
    pub serial: u64,
}

/// One attempt of an instance's readiness or health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRef {
    pub instance: InstanceRef,
    pub attempt: u64,
}

/// How a reaped process ended (the reaper makes it from the wait status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exited {
    pub pid: i32,
    /// The shell convention: the exit status, or 128+N when killed by signal N.
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
}

impl Exited {
    /// "exited with status 3" / "was killed by SIGKILL".
    pub fn describe(&self) -> String {
        match self.signal {
            Some(sig) => format!("was killed by {}", signals::name(sig)),
            None => format!("exited with status {}", self.code),
        }
    }
}

/// Who asked for a usage sample, so the answer goes to the right place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// The periodic sample of programs with `memory_max` or `cpu_max`.
    Monitor,
    /// A `status` request on this connection.
    Status(ConnId),
}

/// Why the machine signals a process group an exited instance led. The answer says whether
/// anything was there (kill(2) on the group succeeded); this says what that means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupAsk {
    /// Its leader has just exited: the signal (or 0, only asking) for what is left.
    Sweep { label: String },
    /// After reaping: forget the group if nothing is left in it.
    Empty,
    /// SIGKILL at its stop timeout; `forced`: during a shutdown, so it is a forced kill.
    Overdue { label: String, forced: bool },
    /// SIGKILL because the shutdown kills everything, for this reason.
    Kill { label: String, why: String },
}

/// Something that happened, for the machine to decide about.
#[derive(Debug, PartialEq)]
pub enum Input {
    /// The run begins: start what can start.
    Begin,
    /// A signal ginit received (not SIGCHLD: the exits it announces come as `Reaped`).
    Signal(i32),
    /// Processes were reaped (exec checks' excepted); `children_left`: some child remains.
    Reaped {
        exits: Vec<Exited>,
        children_left: bool,
    },
    /// A control request on a connection; it is answered with [`Effect::Respond`].
    Request { conn: ConnId, request: Request },
    /// An sd_notify datagram: the sender's pid as the kernel saw it, its ancestors as the edge
    /// read them from /proc (parent first, stopping before ginit), and its `KEY=VALUE` fields.
    Notify {
        pid: i32,
        ancestors: Vec<i32>,
        fields: Vec<(String, String)>,
    },
    /// A check attempt ended: passed or failed (an exec check that could not start failed).
    CheckResult { check: CheckRef, ok: bool },
    /// Answer to [`Effect::Spawn`]: the process runs as `pid` (its exec is not confirmed: a
    /// failed exec is an exit with status 126 or 127).
    Spawned { instance: InstanceRef, pid: i32 },
    /// Answer to [`Effect::Spawn`]: no process could be made, for this reason.
    SpawnFailed {
        instance: InstanceRef,
        reason: String,
    },
    /// Answer to [`Effect::SignalGroup`] with an `ask`: whether the group had members.
    GroupSignalled {
        pgid: i32,
        signal: i32,
        delivered: bool,
        ask: GroupAsk,
    },
    /// Answer to [`Effect::SampleUsage`]: each pid asked for, with its tree's usage (`None`:
    /// gone), in the order asked.
    Usage {
        sampling: Sampling,
        usage: Vec<(i32, Option<Sample>)>,
    },
    /// Answer to [`Effect::LoadConfig`]: the validated file, or every error in it.
    ConfigLoaded {
        conn: Option<ConnId>,
        config: Box<Result<Config, String>>,
    },
    /// A line of `instance`'s output held its `ready: {log: TEXT}` (the first such line).
    LogReady { instance: InstanceRef },
    /// Time passed (any wake-up): deadlines that are due are acted on.
    Time,
    /// Files changed where the edge watches for `program` (`None`: the config's files);
    /// `path` is one that changed.
    FilesChanged {
        program: Option<String>,
        path: String,
    },
    /// Hook `hook` ([`Effect::RunHook`]) ended: how its process exited once reaped, or
    /// status 127 at once when it could not start (the edge logs why).
    HookEnded { hook: u64, exit: Exited },
}

/// Something for the edge to do.
#[derive(Debug, PartialEq)]
pub enum Effect {
    /// Start instance `instance.index` of `spec` (environment, user, limits, sockets, output);
    /// answer with [`Input::Spawned`] or [`Input::SpawnFailed`].
    Spawn {
        instance: InstanceRef,
        spec: Rc<ProgramSpec>,
    },
    /// Send `signal` to the process group an instance leads (the process alone if it left its
    /// group), so helpers it started hear it too.
    SignalInstance { pid: i32, signal: i32 },
    /// Send `signal` (0: none, only asking) to process group `pgid`, which an exited instance
    /// led. Never to a group an exec check leads (the number was reused): that counts as not
    /// delivered. With an `ask`, answer with [`Input::GroupSignalled`].
    SignalGroup {
        pgid: i32,
        signal: i32,
        ask: Option<GroupAsk>,
    },
    /// Send `signal` to every process left over: as PID 1 the namespace, else ginit's
    /// descendants.
    SignalLeftovers(i32),
    /// Answer a control request.
    Respond { conn: ConnId, response: Response },
    /// Start one attempt of `what` for an instance of `spec` (an exec check runs with its
    /// environment, user and directory); answer with [`Input::CheckResult`] when it ends. The
    /// machine bounds it by `timeout` and cancels it then.
    StartCheck {
        check: CheckRef,
        what: ReadyCheck,
        spec: Rc<ProgramSpec>,
        timeout: Duration,
    },
    /// Drop an attempt no longer wanted (kill an exec check's process group); no answer.
    CancelCheck { check: CheckRef },
    /// Measure CPU time and resident memory of each pid's process tree; answer with
    /// [`Input::Usage`].
    SampleUsage { pids: Vec<i32>, sampling: Sampling },
    /// Read and validate the config file; answer with [`Input::ConfigLoaded`].
    LoadConfig { conn: Option<ConnId> },
    /// Reopen every log file (after an external rotation).
    ReopenLogs,
    /// The run is over: exit with this status once the output is drained.
    Exit(i32),
    /// Run `spec.stop_command` to stop instance `index`, whose process is `pid` (given as
    /// `GINIT_MAINPID`), as the program runs, its output prefixed `NAME:stop`; if it cannot
    /// start, send the stop signal instead. The stop timeout still applies; no answer.
    StopCommand {
        spec: Rc<ProgramSpec>,
        index: u32,
        pid: i32,
    },
    /// Something users may watch happened: the edge stamps the time and hands it to the
    /// subscribers of `ginit events` and to the metrics; no answer.
    Publish(Event),
    /// Run hook `hook`, a command of `spec.hooks`, as instance `index` of `spec` runs (user,
    /// directory, environment) with `vars` added, in its own process group, its output prefixed
    /// `NAME:hook` on ginit's streams. Answer with [`Input::HookEnded`] at once if it cannot
    /// start (status 127), else once it is reaped.
    RunHook {
        hook: u64,
        spec: Rc<ProgramSpec>,
        index: u32,
        /// `on_failed` (else `on_exit`).
        failed: bool,
        vars: HookVars,
    },
    /// SIGKILL the process group of hook `hook` (its end comes as usual); no answer.
    KillHook { hook: u64 },
    // The streams of `ginit events` and `ginit logs` (see `observe.rs`); no answers.
    /// Turn connection `conn` into a `ginit events` subscription: `snapshot` first (a
    /// `What::State` per instance), then every event published after it, text or `json`.
    Subscribe {
        conn: ConnId,
        json: bool,
        snapshot: Vec<Event>,
    },
    /// Answer `ginit logs` from the log rings (and with `follow`, keep sending new lines).
    ServeLogs(LogsAnswer),
    /// Watch these files (instead of any watched before): the config's (the main file and
    /// these `include` patterns) when `config` is given, and each program's `watch`. Answered
    /// by [`Input::FilesChanged`] whenever one changes.
    WatchFiles {
        config: Option<Vec<std::path::PathBuf>>,
        programs: Vec<(String, crate::config::FileWatch)>,
    },
    /// The running config's log settings: each program's ring size, timestamps on `prefix`
    /// lines and ginit's own; the rings of programs not in `programs` can go.
    LogSettings {
        buffer: LogBuffer,
        timestamps: bool,
        programs: Vec<String>,
    },
}

/// Supervisor mode, decided.
pub struct Machine {
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
    /// Some program has its health checks paused (see `checks.rs`).
    health_paused_any: bool,
    /// Process groups of exited instances that still have members.
    groups: Vec<Group>,
    /// Group signals whose answer has not come back yet: the shutdown's next step waits for
    /// them (they come back before any other event, see the module header).
    asking: u32,
    /// What the shutdown had to SIGKILL, and why.
    forced: Vec<String>,
    shutdown: ShutdownSpec,
    phase: Phase,
    /// The status ginit exits with.
    exit_code: i32,
    /// The status was decided by a program that ended the run (not just a signal).
    code_decided: bool,
    children_left: bool,
    /// The running config: what a reload is compared with.
    config: Config,
    /// The PROGRAM given after `--`, run as `main`; re-added to every reloaded config.
    main: Option<Vec<String>>,
    /// Some program has `memory_max` or `cpu_max` (so usage is sampled).
    monitored: bool,
    next_sample: Option<Instant>,
    /// start/stop/restart/reload requests answered once the programs have settled.
    pending: Vec<Pending>,
    /// Why the last config reload failed, until one succeeds (shown by `status`).
    config_error: Option<String>,
    /// The last serial handed out (instances and check attempts).
    serial: u64,
    /// The effects decided while handling the current input.
    out: Vec<Effect>,
    /// Hooks running, waiting or skipped, per program (`hooks.rs`).
    hooks: hooks::Hooks,
    /// The wall clock (milliseconds since 1970, UTC) at an instant, as the edge last read it
    /// ([`Machine::set_clock`]); cron schedules are wall-clock times.
    wall: Option<(Instant, i64)>,
    /// `config.watch`: when to reload the config, and a path whose change asked for it.
    config_due: Option<(Instant, String)>,
}

/// A request answered once the programs it names have settled.
struct Pending {
    conn: ConnId,
    names: Vec<String>,
    what: Control,
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

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Machine {
    /// The machine for `config` (with `main` added already, if any); nothing runs until
    /// [`Input::Begin`].
    pub fn new(config: Config, main: Option<Vec<String>>) -> Machine {
        let mut serial = 0;
        let programs = config
            .programs
            .iter()
            .map(|spec| Program::new(Rc::new(spec.clone()), &mut serial))
            .collect();
        let mut m = Machine {
            programs,
            by_name: HashMap::new(),
            by_pid: HashMap::new(),
            dependents: Vec::new(),
            wake: Vec::new(),
            queued: Vec::new(),
            reshaping: false,
            replacing_any: false,
            health_paused_any: false,
            groups: Vec::new(),
            asking: 0,
            forced: Vec::new(),
            shutdown: config.shutdown,
            phase: Phase::Running,
            exit_code: 0,
            code_decided: false,
            children_left: true,
            monitored: config.programs.iter().any(ProgramSpec::is_monitored),
            config,
            main,
            next_sample: None,
            pending: Vec::new(),
            config_error: None,
            serial,
            out: Vec::new(),
            hooks: hooks::Hooks::default(),
            wall: None,
            config_due: None,
        };
        m.reindex();
        m
    }

    /// Decides about one input; returns the effects, to be carried out in order (see the
    /// module header for how answers come back).
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        match input {
            Input::Begin => {
                self.log_settings();
                self.watch_files();
                self.progress(now)
            }
            Input::Signal(sig) => self.on_signal(sig, now),
            Input::Reaped {
                exits,
                children_left,
            } => self.on_reaped(&exits, children_left, now),
            Input::Request { conn, request } => self.on_request(conn, request, now),
            Input::Notify {
                pid,
                ancestors,
                fields,
            } => self.on_notify(pid, &ancestors, &fields, now),
            Input::CheckResult { check, ok } => self.on_check_result(&check, ok, now),
            Input::LogReady { instance } => self.on_log_ready(&instance, now),
            Input::Spawned { instance, pid } => self.on_spawned(&instance, pid, now),
            Input::SpawnFailed { instance, reason } => {
                self.on_spawn_failed(&instance, &reason, now)
            }
            Input::GroupSignalled {
                pgid,
                signal,
                delivered,
                ask,
            } => self.on_group_signalled(pgid, signal, delivered, ask, now),
            Input::Usage { sampling, usage } => match sampling {
                Sampling::Monitor => self.on_monitor_sample(&usage, now),
                Sampling::Status(conn) => self.answer_status(conn, &usage, now),
            },
            Input::ConfigLoaded { conn, config } => self.on_config_loaded(conn, *config, now),
            Input::Time => self.on_time(now),
            Input::HookEnded { hook, exit } => self.on_hook_ended(hook, exit, now),
            Input::FilesChanged { program, path } => {
                self.on_files_changed(program.as_deref(), &path, now)
            }
        }
        self.sync_health(now);
        self.answer_settled();
        self.schedule_sampling(now);
        std::mem::take(&mut self.out)
    }

    /// The earliest instant at which [`Input::Time`] has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        let mut first = earliest(self.phase.deadline(), self.next_sample);
        for p in &self.programs {
            for i in &p.instances {
                first = earliest(first, earliest(i.deadline(), i.check_deadline()));
            }
            for d in &p.delayed {
                first = earliest(first, Some(d.0));
            }
        }
        for g in &self.groups {
            first = earliest(first, Some(g.kill_at));
        }
        first = earliest(first, self.hooks.deadline());
        first = earliest(first, self.watch_deadline());
        earliest(first, self.schedule_deadline())
    }

    /// Time passed: checks first (their verdicts may stop instances), then the lifecycle and
    /// shutdown deadlines, then the usage sample if it is due.
    fn on_time(&mut self, now: Instant) {
        self.check_time(now);
        self.kill_hooks(false, now);
        self.schedule_time(now);
        self.watch_time(now);
        self.lifecycle_time(now);
        if self.next_sample.is_some_and(|t| now >= t) {
            self.sample();
        }
    }

    fn respond(&mut self, conn: ConnId, response: Response) {
        self.out.push(Effect::Respond { conn, response });
    }

    /// Publishes an event of instance `index` of `program`.
    fn publish(&mut self, program: &str, index: u32, what: What) {
        self.out
            .push(Effect::Publish(Event::of(program, index, what)));
    }

    /// Publishes an event of a whole program, or of ginit itself (`program` empty).
    fn publish_program(&mut self, program: &str, what: What) {
        self.out
            .push(Effect::Publish(Event::of_program(program, what)));
    }
}
