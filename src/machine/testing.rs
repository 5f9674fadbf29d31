//! A fake OS edge for the machine's unit tests: it carries out effects as `event_loop.rs`
//! does (in order, each answer fed back at once and its effects carried out before the rest
//! of the batch) and records them, with made-up pids. Nothing is forked, signalled or read.

use std::collections::HashSet;
use std::rc::Rc;
use std::time::Instant;

use crate::config::{Config, LogBuffer, ProgramSpec, ReadyCheck};
use crate::control::events::Event;
use crate::control::protocol::{InstanceStatus, Request, Response, Status};

use super::{
    CheckRef, ConnId, Effect, HookVars, InstanceRef, LogsAnswer, Machine, Sample, Sampling,
};

pub use super::{Exited, Input};

/// A config from test text (validated against a fake machine).
pub fn config(text: &str) -> Config {
    crate::config::schema_for_tests(text)
}

pub fn edge(text: &str) -> Edge {
    Edge::new(config(text), None)
}

/// With a PROGRAM after `--`, run as `main`.
pub fn edge_with_main(text: &str, argv: &[&str]) -> Edge {
    let main: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let mut c = config(text);
    c.add_main(main.clone()).unwrap();
    Edge::new(c, Some(main))
}

pub fn exit(pid: i32, code: i32) -> Exited {
    Exited {
        pid,
        code,
        signal: None,
    }
}

pub fn killed(pid: i32, sig: i32) -> Exited {
    Exited {
        pid,
        code: 128 + sig,
        signal: Some(sig),
    }
}

#[derive(Default)]
pub struct Record {
    /// (program, index, pid) of every process started.
    pub spawned: Vec<(String, u32, i32)>,
    /// The spec each was started with.
    pub spawned_specs: Vec<Rc<ProgramSpec>>,
    /// (pid, signal) sent to instances.
    pub signals: Vec<(i32, i32)>,
    /// Signals sent to the leftovers.
    pub leftovers: Vec<i32>,
    /// Programs whose spawn fails.
    pub fail: Vec<String>,
    /// Process groups with members left (pgid).
    pub groups: HashSet<i32>,
    /// Signals sent to groups (0 excluded), delivered or not.
    pub group_signals: Vec<(i32, i32)>,
    /// Exec checks' pids: their groups are never signalled.
    pub check_pids: Vec<i32>,
    /// The pid the next spawn gets (a reused number), instead of a fresh one.
    pub reuse: Option<i32>,
    pub responses: Vec<(ConnId, Response)>,
    /// Check attempts started, with what they check.
    pub checks_started: Vec<(CheckRef, ReadyCheck)>,
    /// Check attempts neither ended nor cancelled.
    pub under_way: Vec<CheckRef>,
    pub cancelled: Vec<CheckRef>,
    /// What SampleUsage answers, by pid.
    pub usage: Vec<(i32, Sample)>,
    /// The pids each periodic sample asked for.
    pub sampled: Vec<Vec<i32>>,
    /// What LoadConfig answers.
    pub next_config: Option<Result<Config, String>>,
    pub loads: usize,
    pub reopened: usize,
    pub exit: Option<i32>,
    pub exits: usize,
    /// Every event published, in order.
    pub events: Vec<Event>,
    /// The pids whose stop command was run.
    pub stop_commands: Vec<i32>,
    /// Hooks started, in order.
    pub hooks_run: Vec<HookRun>,
    /// Hooks killed, by serial.
    pub hooks_killed: Vec<u64>,
    /// `ginit events` subscriptions: (connection, json, snapshot).
    pub subscribed: Vec<(ConnId, bool, Vec<Event>)>,
    /// `ginit logs` answers served from the rings.
    pub served: Vec<LogsAnswer>,
    /// What the edge was told to watch: (the config's include patterns when it is watched,
    /// the programs with a `watch`).
    pub watching: Vec<(Option<Vec<std::path::PathBuf>>, Vec<String>)>,
    /// Log settings handed over: (ring size, timestamps, programs).
    pub log_settings: Vec<(LogBuffer, bool, Vec<String>)>,
    next_pid: i32,
    next_conn: ConnId,
}

/// A hook the machine started.
#[derive(Debug)]
pub struct HookRun {
    pub hook: u64,
    pub program: String,
    pub index: u32,
    pub argv: Vec<String>,
    pub vars: HookVars,
}

pub struct Edge {
    pub m: Machine,
    pub r: Record,
}

impl std::ops::Deref for Edge {
    type Target = Record;
    fn deref(&self) -> &Record {
        &self.r
    }
}

impl std::ops::DerefMut for Edge {
    fn deref_mut(&mut self) -> &mut Record {
        &mut self.r
    }
}

impl Edge {
    pub fn new(config: Config, main: Option<Vec<String>>) -> Edge {
        Edge {
            m: Machine::new(config, main),
            r: Record::default(),
        }
    }

    /// Feeds one event, and the answers to its effects, depth first (as the real edge).
    pub fn feed(&mut self, event: Input, now: Instant) {
        let mut stack: Vec<Effect> = self.m.handle(event, now);
        stack.reverse();
        while let Some(effect) = stack.pop() {
            if let Some(answer) = self.r.perform(effect) {
                let mut more = self.m.handle(answer, now);
                more.reverse();
                stack.extend(more);
            }
        }
    }

    pub fn reap(&mut self, exits: &[Exited], children_left: bool, now: Instant) {
        self.feed(
            Input::Reaped {
                exits: exits.to_vec(),
                children_left,
            },
            now,
        );
    }

    /// An sd_notify datagram from `pid` itself, lines of `KEY=VALUE`.
    pub fn notify(&mut self, pid: i32, text: &str, now: Instant) {
        let fields = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.feed(
            Input::Notify {
                pid,
                ancestors: Vec::new(),
                fields,
            },
            now,
        );
    }

    /// A verdict about instance `pid`: it asks for a reload itself (WATCHDOG=trigger).
    pub fn trigger(&mut self, pid: i32, now: Instant) {
        self.notify(pid, "WATCHDOG=trigger", now);
    }

    /// Sends a control request on a new connection; returns the connection.
    pub fn ask(&mut self, request: Request, now: Instant) -> ConnId {
        self.r.next_conn += 1;
        let conn = self.r.next_conn;
        self.feed(Input::Request { conn, request }, now);
        conn
    }

    /// The answer on connection `conn`, once there is one.
    pub fn answer(&self, conn: ConnId) -> Option<&Response> {
        self.r
            .responses
            .iter()
            .find(|(c, _)| *c == conn)
            .map(|(_, r)| r)
    }

    pub fn full_status(&mut self, now: Instant) -> Status {
        let c = self.ask(Request::Status {}, now);
        self.answer(c)
            .and_then(|r| r.status.clone())
            .expect("a status")
    }

    pub fn status(&mut self, now: Instant) -> Vec<InstanceStatus> {
        self.full_status(now).instances
    }

    /// Ends the check attempt started last.
    pub fn finish_check(&mut self, ok: bool, now: Instant) {
        let check = self.r.under_way.pop().expect("an attempt under way");
        self.feed(Input::CheckResult { check, ok }, now);
    }

    /// The pid of the last process started for `name`.
    pub fn pid(&self, name: &str) -> i32 {
        self.r
            .spawned
            .iter()
            .rev()
            .find(|(n, _, _)| n == name)
            .map(|s| s.2)
            .expect("a process of that program")
    }

    /// The pid the instance `r` was started as.
    pub fn pid_of(&self, r: &InstanceRef) -> i32 {
        let (p, i) = self.m.find_instance(r).expect("the instance");
        self.m.programs[p].instances[i].pid().expect("its process")
    }

    /// The events named `name` published so far, as `PROGRAM What` (the fields in Debug form).
    pub fn published(&self, name: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|ev| ev.what.name() == name)
            .map(|ev| format!("{} {:?}", ev.program, ev.what))
            .collect()
    }

    pub fn names(&self) -> Vec<&str> {
        self.r.spawned.iter().map(|(n, _, _)| n.as_str()).collect()
    }
}

impl Record {
    /// Carries out one effect; the answer, for those that have one.
    fn perform(&mut self, effect: Effect) -> Option<Input> {
        match effect {
            Effect::Spawn { instance, spec } => {
                if self.fail.contains(&spec.name) {
                    return Some(Input::SpawnFailed {
                        instance,
                        reason: "no such file".into(),
                    });
                }
                self.next_pid += 1;
                let pid = self.reuse.take().unwrap_or(100 + self.next_pid);
                self.spawned.push((spec.name.clone(), instance.index, pid));
                self.spawned_specs.push(spec);
                Some(Input::Spawned { instance, pid })
            }
            Effect::SignalInstance { pid, signal } => {
                self.signals.push((pid, signal));
                None
            }
            Effect::SignalGroup { pgid, signal, ask } => {
                let refused = self.check_pids.contains(&pgid);
                if signal != 0 && !refused {
                    self.group_signals.push((pgid, signal));
                }
                let delivered = !refused && self.groups.contains(&pgid);
                ask.map(|ask| Input::GroupSignalled {
                    pgid,
                    signal,
                    delivered,
                    ask,
                })
            }
            Effect::SignalLeftovers(sig) => {
                self.leftovers.push(sig);
                None
            }
            Effect::Respond { conn, response } => {
                self.responses.push((conn, response));
                None
            }
            Effect::StartCheck { check, what, .. } => {
                self.under_way.push(check.clone());
                self.checks_started.push((check, what));
                None
            }
            Effect::CancelCheck { check } => {
                self.under_way.retain(|c| *c != check);
                self.cancelled.push(check);
                None
            }
            Effect::SampleUsage { pids, sampling } => {
                if sampling == Sampling::Monitor {
                    self.sampled.push(pids.clone());
                }
                let usage = pids
                    .into_iter()
                    .map(|pid| {
                        let s = self.usage.iter().find(|(p, _)| *p == pid).map(|u| u.1);
                        (pid, s)
                    })
                    .collect();
                Some(Input::Usage { sampling, usage })
            }
            Effect::LoadConfig { conn } => {
                self.loads += 1;
                let config = self.next_config.take().unwrap_or(Err("no file".into()));
                Some(Input::ConfigLoaded {
                    conn,
                    config: Box::new(config),
                })
            }
            Effect::ReopenLogs => {
                self.reopened += 1;
                None
            }
            Effect::Exit(code) => {
                self.exit = Some(code);
                self.exits += 1;
                None
            }
            Effect::StopCommand { pid, .. } => {
                self.stop_commands.push(pid);
                None
            }
            Effect::Publish(event) => {
                self.events.push(event);
                None
            }
            Effect::RunHook {
                hook,
                spec,
                index,
                failed,
                vars,
            } => {
                let program = spec.name.clone();
                let hooks = &spec.hooks;
                let argv = if failed {
                    &hooks.on_failed
                } else {
                    &hooks.on_exit
                }
                .clone();
                self.hooks_run.push(HookRun {
                    hook,
                    program,
                    index,
                    argv,
                    vars,
                });
                None
            }
            Effect::KillHook { hook } => {
                self.hooks_killed.push(hook);
                None
            }
            Effect::Subscribe {
                conn,
                json,
                snapshot,
            } => {
                self.subscribed.push((conn, json, snapshot));
                None
            }
            Effect::ServeLogs(answer) => {
                self.served.push(answer);
                None
            }
            Effect::LogSettings {
                buffer,
                timestamps,
                programs,
            } => {
                self.log_settings.push((buffer, timestamps, programs));
                None
            }
            Effect::WatchFiles { config, programs } => {
                let names = programs.into_iter().map(|(name, _)| name).collect();
                self.watching.push((config, names));
                None
            }
        }
    }
}
