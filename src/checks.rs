//! Readiness and health checks and the sd_notify watchdog, for every instance: which checks
//! run when, their results, and the verdicts (ready, reload after too many failures or a
//! missed watchdog).
//!
//! tcp and http attempts are [`probes`](crate::probes) state machines; exec checks are
//! processes the event loop spawns and reaps, driven from here by pid. Nothing here blocks.
//!
//! Health checks run only for instances the supervisor lists with `health` set: it clears it
//! while a `replace` reload of the program runs, because a check through a shared socket could
//! then be answered by the other instance (SPEC section 10). A suspended check is dropped with
//! its failure count, and an attempt still under way is not counted; when it comes back it
//! starts afresh, its first attempt one interval later.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::{ProgramSpec, ReadyCheck};
use crate::probes::{Key, Probes, Purpose, Target};
use crate::reaper::Exit;

/// Time between two attempts of a readiness check.
const READY_RETRY: Duration = Duration::from_millis(100);
/// Bound on one attempt of a readiness check (the whole wait is `ready.timeout`).
const READY_ATTEMPT: Duration = Duration::from_secs(2);

/// An instance with a running process, as the supervisor lists them.
#[derive(Clone, Copy, Debug)]
pub struct Running<'a> {
    pub pid: i32,
    pub spec: &'a ProgramSpec,
    pub index: u32,
    /// Its readiness check passed (or it has none): its health check is the one to run.
    pub ready: bool,
    /// Its health check may run (not while a `replace` reload of its program runs).
    pub health: bool,
}

/// The instance whose process is `pid`.
fn find<'a, 'b>(running: &'b [Running<'a>], pid: i32) -> Option<&'b Running<'a>> {
    running.iter().find(|r| r.pid == pid)
}

/// Something the event loop must do about an instance.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Its readiness check passed.
    Ready(i32),
    /// Failed its health check `failures` times in a row, or missed its watchdog: reload it.
    Reload { pid: i32, reason: String },
}

struct Exec {
    key: Key,
    /// The check's process (its own process group).
    pid: i32,
    deadline: Instant,
}

#[derive(Default)]
pub struct Checks {
    probes: Probes,
    execs: Vec<Exec>,
    /// When each exec check is next due.
    exec_next: HashMap<Key, Instant>,
    /// Health failures in a row, by instance pid.
    failures: HashMap<i32, u32>,
    /// Instances whose health check runs now, by pid (the value is unused: one map type
    /// fewer in the binary); results for others are not counted.
    health_on: HashMap<i32, u32>,
    /// When each watched instance must have sent WATCHDOG=1 again, by pid.
    watchdogs: HashMap<i32, Instant>,
    verdicts: Vec<Verdict>,
}

/// An exec check to start now: whose (the key) and what to run.
pub struct DueExec {
    pub key: Key,
    pub argv: Vec<String>,
}

impl Checks {
    /// Brings the set of checks in line with the instances (pid, spec, index, ready).
    pub fn sync(&mut self, running: &[Running], now: Instant) {
        let mut probes = Vec::new();
        // Rebuilt rather than pruned: the maps keep only what `running` still wants.
        let mut exec_next = HashMap::new();
        let mut watchdogs = HashMap::new();
        self.health_on.clear();
        for r in running {
            let (pid, spec, ready) = (r.pid, r.spec, r.ready);
            let check = match (ready, &spec.ready, &spec.health) {
                (false, Some(r), _) => Some((Purpose::Ready, &r.check, READY_RETRY, READY_ATTEMPT)),
                (true, _, Some(h)) if r.health => {
                    self.health_on.insert(pid, 0);
                    Some((Purpose::Health, &h.check, h.interval, h.timeout))
                }
                _ => None,
            };
            if let Some((purpose, check, every, timeout)) = check {
                let key = (pid, purpose);
                match check {
                    ReadyCheck::Tcp(addr) => probes.push((key, Target::Tcp(*addr), every, timeout)),
                    ReadyCheck::Http { addr, host, path } => probes.push((
                        key,
                        Target::Http {
                            addr: *addr,
                            host: host.clone(),
                            path: path.clone(),
                        },
                        every,
                        timeout,
                    )),
                    ReadyCheck::Exec(_) => {
                        let start = match purpose {
                            Purpose::Ready => now,
                            Purpose::Health => now + every,
                        };
                        let at = self.exec_next.get(&key).copied().unwrap_or(start);
                        exec_next.insert(key, at);
                    }
                    ReadyCheck::Notify | ReadyCheck::Delay(_) => {}
                }
            }
            if let (true, Some(limit)) = (ready, spec.watchdog) {
                let at = self.watchdogs.get(&pid).copied().unwrap_or(now + limit);
                watchdogs.insert(pid, at);
            }
        }
        self.probes.sync(&probes, now);
        self.exec_next = exec_next;
        self.watchdogs = watchdogs;
        // A suspended health check starts over with a clean slate.
        let on = &self.health_on;
        self.failures.retain(|pid, _| on.contains_key(pid));
    }

    pub fn poll_fds(&self, out: &mut Vec<libc::pollfd>) {
        self.probes.poll_fds(out);
    }

    pub fn poll_len(&self) -> usize {
        self.probes.poll_len()
    }

    /// Results of the tcp/http attempts poll reported on.
    pub fn handle(&mut self, fds: &[libc::pollfd], running: &[Running], now: Instant) {
        for (key, ok) in self.probes.handle(fds, now) {
            self.result(key, ok, running);
        }
    }

    /// Deadlines: attempts to start or time out, watchdogs. Returns the exec checks to
    /// start now (the caller spawns them and reports with [`Checks::exec_started`]).
    pub fn on_time(&mut self, running: &[Running], now: Instant) -> Vec<DueExec> {
        for (key, ok) in self.probes.on_time(now) {
            self.result(key, ok, running);
        }
        let expired: Vec<i32> = self
            .watchdogs
            .iter()
            .filter(|(_, d)| now >= **d)
            .map(|(p, _)| *p)
            .collect();
        for pid in expired {
            self.watchdogs.remove(&pid);
            if let Some(limit) = find(running, pid).and_then(|r| r.spec.watchdog) {
                let reason = format!(
                    "sent no WATCHDOG=1 for {}",
                    crate::config::units::format_duration(limit)
                );
                self.verdicts.push(Verdict::Reload { pid, reason });
            }
        }
        let mut timed_out = Vec::new();
        self.execs.retain(|e| {
            let late = now >= e.deadline;
            if late {
                timed_out.push((e.key, e.pid));
            }
            !late
        });
        for (key, pid) in timed_out {
            crate::signals::kill(-pid, libc::SIGKILL).ok();
            self.reschedule(key, running, now);
            self.result(key, false, running);
        }
        let mut due = Vec::new();
        for (key, at) in &mut self.exec_next {
            if now < *at || self.execs.iter().any(|e| e.key == *key) {
                continue;
            }
            let check = find(running, key.0).and_then(|r| match key.1 {
                Purpose::Ready => r.spec.ready.as_ref().map(|x| &x.check),
                Purpose::Health => r.spec.health.as_ref().map(|x| &x.check),
            });
            if let Some(ReadyCheck::Exec(argv)) = check {
                due.push(DueExec {
                    key: *key,
                    argv: argv.clone(),
                });
            }
            *at = now + Duration::from_secs(3600); // rescheduled when the attempt ends
        }
        due
    }

    /// An exec check was spawned (`Ok(pid)`) or could not be (a failed attempt).
    pub fn exec_started(
        &mut self,
        key: Key,
        started: Result<i32, String>,
        running: &[Running],
        now: Instant,
    ) {
        match started {
            Ok(pid) => {
                let timeout = find(running, key.0).map_or(READY_ATTEMPT, |r| match key.1 {
                    Purpose::Ready => READY_ATTEMPT,
                    Purpose::Health => r.spec.health.as_ref().map_or(READY_ATTEMPT, |h| h.timeout),
                });
                self.execs.push(Exec {
                    key,
                    pid,
                    deadline: now + timeout,
                });
            }
            Err(_) => {
                self.reschedule(key, running, now);
                self.result(key, false, running);
            }
        }
    }

    /// Exits of exec checks among everything reaped.
    pub fn on_reaped(&mut self, exits: &[Exit], running: &[Running], now: Instant) {
        for exit in exits {
            if let Some(i) = self.execs.iter().position(|e| e.pid == exit.pid) {
                let key = self.execs.remove(i).key;
                self.reschedule(key, running, now);
                self.result(key, exit.code() == 0, running);
            }
        }
    }

    /// WATCHDOG=1 from instance `pid`.
    pub fn watchdog_ping(&mut self, pid: i32, running: &[Running], now: Instant) {
        if let Some(limit) = find(running, pid).and_then(|r| r.spec.watchdog) {
            self.watchdogs.insert(pid, now + limit);
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        [
            self.probes.deadline(),
            self.execs.iter().map(|e| e.deadline).min(),
            self.exec_next.values().min().copied(),
            self.watchdogs.values().min().copied(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// What came out of the checks since the last call.
    pub fn verdicts(&mut self) -> Vec<Verdict> {
        std::mem::take(&mut self.verdicts)
    }

    fn reschedule(&mut self, key: Key, running: &[Running], now: Instant) {
        let every = match key.1 {
            Purpose::Ready => READY_RETRY,
            Purpose::Health => find(running, key.0)
                .and_then(|r| r.spec.health.as_ref())
                .map_or(READY_RETRY, |h| h.interval),
        };
        if let Some(at) = self.exec_next.get_mut(&key) {
            *at = now + every;
        }
    }

    fn result(&mut self, key: Key, ok: bool, running: &[Running]) {
        let (pid, purpose) = key;
        match (purpose, ok) {
            (Purpose::Ready, true) => {
                self.exec_next.remove(&key);
                self.verdicts.push(Verdict::Ready(pid));
            }
            (Purpose::Ready, false) => {}
            (Purpose::Health, true) => {
                self.failures.remove(&pid);
            }
            // An attempt that was under way when its check was suspended.
            (Purpose::Health, _) if !self.health_on.contains_key(&pid) => {}
            (Purpose::Health, false) => {
                let n = self.failures.entry(pid).or_insert(0);
                *n = n.saturating_add(1);
                let limit = find(running, pid)
                    .and_then(|r| r.spec.health.as_ref())
                    .map_or(u32::MAX, |h| h.failures);
                log::warn!("health check of pid {pid} failed ({n} in a row)");
                if *n >= limit {
                    self.failures.remove(&pid);
                    let reason = format!("failed its health check {limit} times in a row");
                    self.verdicts.push(Verdict::Reload { pid, reason });
                }
            }
        }
    }
}
