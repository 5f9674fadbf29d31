//! The events of `ginit events`: one user-visible state change each (an instance started,
//! exited, is ready; a program failed; a reload or a config reload ended; the shutdown began).
//!
//! The machine decides that one happened and publishes it (`Effect::Publish`); the edge stamps
//! the wall-clock time (the machine has no clock of its own) and hands it to what consumes
//! events: the subscribers of `ginit events` and the metrics' counters. This module is the
//! type both sides speak, and imports no other ginit module.

/// One state change, of one instance of `program` when `instance` is given, of the whole
/// program when only `program` is, of ginit itself when `program` is empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub program: String,
    pub instance: Option<u32>,
    pub what: What,
}

/// What happened, with its own fields. Durations are seconds.
#[derive(Clone, Debug, PartialEq)]
pub enum What {
    /// A line of the snapshot a subscriber gets first: where an instance stands now (`state`
    /// as `ginit status` shows it).
    State {
        state: &'static str,
        pid: Option<i32>,
        ready: bool,
        restarts: u32,
    },
    /// A process of the instance runs (the new one of a `replace` reload included).
    Started { pid: i32 },
    /// No process could be made for the instance (counts as a run that exited with 127).
    StartFailed { why: String },
    /// The instance is ready (its readiness check passed, or it has none).
    Ready,
    /// A process of the instance ended: its exit `status` (128+N for signal N), the
    /// signal's name if one killed it, and how long it ran.
    Exited {
        pid: i32,
        status: i32,
        signal: Option<String>,
        ran: f64,
    },
    /// The instance will be started again after `delay`; `restarts` counts this one.
    RestartScheduled { delay: f64, restarts: u32 },
    /// Given up: the instance will not be restarted (`why` says which limit).
    Failed { why: String },
    /// The instance has stopped and stays stopped (on request, at shutdown, or it ended and
    /// its policy does not restart it).
    Stopped,
    /// A oneshot instance succeeded (exit 0, or one of its `success_exit_codes`).
    Done,
    /// A `replace` reload of the program began.
    ReloadBegun,
    /// The `replace` reload's new instances serve; the old ones are stopping. `took`: since
    /// it began.
    ReloadDone { took: f64 },
    /// The `replace` reload was abandoned; the old instances keep serving.
    ReloadRolledBack { why: String },
    /// A health check failed `failures` times in a row (a readiness check that ran out of
    /// time is one too, with `failures` 1); `why` says so.
    HealthFailed { failures: u32, why: String },
    /// The instance's tree is over its `memory_max` or `cpu_max` (`resource`: `memory` or
    /// `cpu`); `why` says by how much and what ginit does.
    OverLimit { resource: &'static str, why: String },
    /// The config file was reloaded and applied; `summary` says what changed.
    ConfigReloaded { summary: String },
    /// The config file was read and rejected; nothing changed.
    ConfigRejected { errors: String },
    /// ginit began shutting down (`why`: the signal or request).
    ShutdownBegun { why: String },
}

impl What {
    /// The event's name, as the `event` field of its JSON and the word of its text line.
    pub fn name(&self) -> &'static str {
        match self {
            What::State { .. } => "state",
            What::Started { .. } => "started",
            What::StartFailed { .. } => "start_failed",
            What::Ready => "ready",
            What::Exited { .. } => "exited",
            What::RestartScheduled { .. } => "restart_scheduled",
            What::Failed { .. } => "failed",
            What::Stopped => "stopped",
            What::Done => "done",
            What::ReloadBegun => "reload_begun",
            What::ReloadDone { .. } => "reload_done",
            What::ReloadRolledBack { .. } => "reload_rolled_back",
            What::HealthFailed { .. } => "health_failed",
            What::OverLimit { .. } => "over_limit",
            What::ConfigReloaded { .. } => "config_reloaded",
            What::ConfigRejected { .. } => "config_rejected",
            What::ShutdownBegun { .. } => "shutdown_begun",
        }
    }
}

impl Event {
    /// An event of instance `index` of `program`.
    pub fn of(program: &str, index: u32, what: What) -> Event {
        Event {
            program: program.to_string(),
            instance: Some(index),
            what,
        }
    }

    /// An event of a whole program.
    pub fn of_program(program: &str, what: What) -> Event {
        Event {
            program: program.to_string(),
            instance: None,
            what,
        }
    }

    /// An event of ginit itself.
    pub fn of_ginit(what: What) -> Event {
        Event {
            program: String::new(),
            instance: None,
            what,
        }
    }
}
