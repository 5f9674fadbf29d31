//! The one poll loop, the OS side of both modes: it polls, turns what is ready into events for
//! the machine (`machine/`), and turns the machine's effects into system calls. It decides
//! nothing: what a signal, a request, an exit or a check result means is the machine's.
//!
//! One thread, one `poll(2)`, whose timeout is the earliest deadline of the machine and of the
//! sources (or infinite when there is none: an idle ginit never wakes up). The poll array is
//! made of named `Slot`s, one per source, each recorded as the source pushes its fds, so a
//! source that pushes one fd more or less never shifts another, and no slice of it can be out
//! of bounds. It owns the OS objects: the signalfd, the control server, the notify socket, the
//! tcp/http probes and exec checks' processes, program output, the listening sockets, and the
//! exec reports of children on their way to exec. The machine's answers are fed back at once,
//! depth first (`Daemon::feed`): see `machine/mod.rs` for that contract.
//!
//! It makes no raw system call: everything goes through the rooms of `os/` (`sys::poll`,
//! `spawn`, `reaper`, ...).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::config::signals;
use crate::config::{self, Config, ProgramSpec, ReadyCheck};
use crate::control::events::Event;
use crate::control::server::Server;
use crate::control::streams::{self, Stream};
use crate::machine::single::{Action, Recipient, Single};
use crate::machine::{CheckRef, Effect, Exited, Input, Machine};
use crate::os::metrics::Endpoint;
use crate::os::notify::NotifySocket;
use crate::os::output::Outputs;
use crate::os::probes::{Probes, Purpose, Target};
use crate::os::reaper;
use crate::os::signals::SignalSource;
use crate::os::start::Starter;
use crate::os::watch::Watcher;
use crate::os::{proc, spawn, stdio, sys};

/// Milliseconds from `now` to `deadline` for poll, rounded up so a deadline is never polled
/// for early (which would spin), or -1 for none.
fn poll_timeout(deadline: Option<Instant>, now: Instant) -> i32 {
    match deadline {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(now);
            let ms = left.as_micros().div_ceil(1000);
            i32::try_from(ms).unwrap_or(i32::MAX)
        }
    }
}

/// How long ginit, once everything has stopped, keeps copying what programs left in their
/// output pipes before it exits.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// A pollfd asking for input on `fd` (-1: none, poll skips it).
fn pollin(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Waits until `fd` is readable or `timeout_ms` passes.
fn wait_readable(fd: i32, timeout_ms: i32) {
    poll(&mut [pollin(fd)], timeout_ms);
}

/// What single-program mode needs besides the state machine.
pub struct SingleRun {
    pub signals: SignalSource,
    pub machine: Single,
    pub child: i32,
    pub name: String,
    /// The child was given the terminal and ginit takes it back when the child is gone.
    pub foreground: bool,
}

/// Runs single-program mode to its end and returns ginit's exit status.
pub fn run_single(mut run: SingleRun) -> i32 {
    let mut received = Vec::new();
    let mut exits: Vec<Exited> = Vec::new();
    let mut codes = Vec::new();
    let mut actions = Vec::new();
    loop {
        wait_readable(
            run.signals.raw_fd(),
            poll_timeout(run.machine.deadline(), Instant::now()),
        );
        let now = Instant::now();
        received.clear();
        run.signals.drain(&mut received);
        let mut reap = false;
        for &sig in &received {
            if sig == libc::SIGCHLD {
                reap = true;
            } else if signals::is_forwarded(sig) {
                debug!("received {}", signals::name(sig));
                actions.extend(run.machine.on_signal(sig, now));
            }
        }
        if reap {
            exits.clear();
            let children_left = reaper::reap(&mut exits);
            codes.clear();
            for exit in &exits {
                if exit.pid == run.child {
                    debug!("{} (pid {}) {}", run.name, exit.pid, exit.describe());
                } else {
                    debug!("reaped pid {}, which {}", exit.pid, exit.describe());
                }
                codes.push((exit.pid, exit.code));
            }
            actions.extend(run.machine.on_reaped(&codes, children_left, now));
        }
        actions.extend(run.machine.on_time(now));
        for action in actions.drain(..) {
            if let Some(code) = perform(&run, action) {
                return code;
            }
        }
    }
}

fn perform(run: &SingleRun, action: Action) -> Option<i32> {
    match action {
        Action::Signal(target, sig) => {
            let pid = match target {
                Recipient::Pid(pid) => pid,
                Recipient::Group(pgid) => -pgid,
            };
            debug!("forwarding {} to {}", signals::name(sig), pid);
            if let Err(e) = sys::kill(pid, sig) {
                debug!("could not forward {} to {pid}: {e}", signals::name(sig));
            }
        }
        Action::SignalLeftovers(sig) => {
            let n = reaper::signal_leftovers(sig);
            if n > 0 {
                info!("sent {} to the processes left behind", signals::name(sig));
            }
        }
        Action::ChildGone => {
            if run.foreground {
                spawn::reclaim_terminal();
            }
        }
        Action::Exit(code) => {
            let mut ignored = Vec::new();
            if reaper::reap(&mut ignored) {
                warn!("exiting while some processes could not be reaped after SIGKILL");
            }
            return Some(code);
        }
    }
    None
}

/// What supervisor mode needs.
pub struct SupervisorRun {
    pub signals: SignalSource,
    pub config: Config,
    pub config_path: PathBuf,
    /// The PROGRAM given after `--`, run as `main`.
    pub main: Option<Vec<String>>,
    pub terminal: bool,
    /// Where to serve the control socket.
    pub socket: PathBuf,
    /// The config's listening sockets, bound once, by name.
    pub sockets: Vec<(String, std::os::fd::OwnedFd)>,
    /// The metrics endpoint (`metrics.listen`), bound once.
    pub metrics: Option<Endpoint>,
}

/// The pollfds one source pushed into the poll array: recorded as it pushes, read back with
/// `get`, so a source that pushes an fd more or less moves no other and no slice of the
/// array is ever out of bounds.
#[derive(Clone, Debug, Default, PartialEq)]
struct Slot(std::ops::Range<usize>);

impl Slot {
    fn fill(fds: &mut Vec<libc::pollfd>, push: impl FnOnce(&mut Vec<libc::pollfd>)) -> Slot {
        let start = fds.len();
        push(fds);
        Slot(start..fds.len())
    }

    fn of<'a>(&self, fds: &'a [libc::pollfd]) -> &'a [libc::pollfd] {
        fds.get(self.0.clone()).unwrap_or_default()
    }
}

/// Where each source's pollfds are in the one poll array.
struct Slots {
    signals: Slot,
    control: Slot,
    notify: Slot,
    probes: Slot,
    reports: Slot,
    outputs: Slot,
    metrics: Slot,
    watch: Slot,
}

/// A tcp or http check attempt under way, as `probes` knows it (by `key`).
struct ProbeCheck {
    key: i32,
    check: CheckRef,
    target: Target,
    timeout: Duration,
}

/// Supervisor mode's OS side: the sources it polls and the objects effects act on.
struct Daemon {
    machine: Machine,
    signals: SignalSource,
    config_path: PathBuf,
    server: Server,
    notify: Option<NotifySocket>,
    starter: Starter,
    probes: Probes,
    probe_checks: Vec<ProbeCheck>,
    next_probe: i32,
    /// Exec check attempts under way, by their process's pid.
    exec_checks: Vec<(i32, CheckRef)>,
    /// Exec checks' processes until reaped (each leads its own process group): a process
    /// group an exited instance left must never be confused with one of them.
    check_pids: Vec<i32>,
    /// The status to exit with, once the machine said so.
    exit: Option<i32>,
    /// Hooks' processes until reaped, as (pid, hook): each leads its own process group,
    /// which, like an exec check's, is never taken for an exited instance's.
    hooks: Vec<(i32, u64)>,
    /// Stop commands' processes until reaped, as (pid, the instance's pid): each leads its
    /// own process group, killed if still there once the instance has exited.
    stoppers: Vec<(i32, i32)>,
    /// `GET /metrics`, and the counters of the published events.
    metrics: Option<Endpoint>,
    /// The inotify fd of `config.watch` and programs' `watch`.
    watcher: Watcher,
}

/// Runs the supervisor until the run is over and returns ginit's exit status.
pub fn run_supervisor(mut run: SupervisorRun) -> i32 {
    let server = match Server::bind(&run.socket) {
        Ok(server) => {
            debug!("control socket at {}", run.socket.display());
            server
        }
        Err(e) => {
            warn!("no control socket: {e}; `ginit status` and friends will not work here");
            Server::disabled()
        }
    };
    let notify = match NotifySocket::bind() {
        Ok(n) => Some(n),
        Err(e) => {
            warn!("no NOTIFY_SOCKET: {e}; `ready: {{notify: true}}` programs will time out");
            None
        }
    };
    let starter = Starter {
        base_env: std::env::vars_os()
            .filter(|(k, _)| k != "NOTIFY_SOCKET")
            .collect(),
        terminal: run.terminal,
        outputs: Outputs::new(),
        sockets: std::mem::take(&mut run.sockets),
        notify_address: notify.as_ref().map(|n| n.address().to_string()),
        reports: Vec::new(),
    };
    let mut d = Daemon {
        machine: Machine::new(run.config, run.main),
        signals: run.signals,
        config_path: run.config_path,
        server,
        notify,
        starter,
        probes: Probes::default(),
        probe_checks: Vec::new(),
        next_probe: 0,
        exec_checks: Vec::new(),
        check_pids: Vec::new(),
        exit: None,
        hooks: Vec::new(),
        stoppers: Vec::new(),
        metrics: run.metrics.take(),
        watcher: Watcher::default(),
    };
    let now = d.tick();
    d.feed(Input::Begin, now);
    d.run()
}

impl Daemon {
    fn run(&mut self) -> i32 {
        let mut received = Vec::new();
        let mut exits: Vec<Exited> = Vec::new();
        let mut fds = Vec::new();
        loop {
            if let Some(code) = self.exit {
                self.server.remove();
                self.starter.outputs.drain(Instant::now() + DRAIN_TIME);
                return code;
            }
            fds.clear();
            let slots = Slots {
                signals: Slot::fill(&mut fds, |f| f.push(pollin(self.signals.raw_fd()))),
                control: Slot::fill(&mut fds, |f| self.server.poll_fds(f)),
                notify: Slot::fill(&mut fds, |f| {
                    f.push(pollin(
                        self.notify.as_ref().map_or(-1, NotifySocket::raw_fd),
                    ))
                }),
                probes: Slot::fill(&mut fds, |f| self.probes.poll_fds(f)),
                reports: Slot::fill(&mut fds, |f| self.starter.report_fds(f)),
                outputs: Slot::fill(&mut fds, |f| self.starter.outputs.poll_fds(f)),
                metrics: Slot::fill(&mut fds, |f| {
                    self.metrics.iter().for_each(|m| m.poll_fds(f))
                }),
                watch: Slot::fill(&mut fds, |f| f.push(pollin(self.watcher.raw_fd()))),
            };
            let deadline = [
                self.machine.deadline(),
                self.probes.deadline(),
                self.server.deadline(),
                self.metrics.as_ref().and_then(Endpoint::deadline),
            ]
            .into_iter()
            .flatten()
            .min();
            poll(&mut fds, poll_timeout(deadline, Instant::now()));
            let now = self.tick();
            let requests = self.server.handle(slots.control.of(&fds), now);
            let notified = slots.notify.of(&fds).iter().any(|p| p.revents != 0);
            let done = self.probes.handle(slots.probes.of(&fds), now);
            let mut results = self.probes_done(done, now);
            self.starter.handle_reports(slots.reports.of(&fds));
            self.starter.outputs.rings.tap = self.server.follows_logs();
            self.starter.outputs.handle(slots.outputs.of(&fds));
            // Lines that said a starting instance is ready (`ready: {log: TEXT}`).
            for instance in std::mem::take(&mut self.starter.outputs.ready_seen) {
                self.feed(Input::LogReady { instance }, now);
            }
            if let Some(m) = &mut self.metrics
                && m.handle(slots.metrics.of(&fds), now)
            {
                m.serve(&self.machine, self.starter.outputs.dropped(), now);
            }
            self.follow_logs();

            received.clear();
            // Level-triggered: a signal still queued is seen on the next round.
            if slots.signals.of(&fds).iter().any(|p| p.revents != 0) {
                self.signals.drain(&mut received);
            }
            let mut reap = false;
            for &sig in &received {
                if sig == libc::SIGCHLD {
                    reap = true;
                } else {
                    self.feed(Input::Signal(sig), now);
                }
            }
            if reap {
                exits.clear();
                let children_left = reaper::reap(&mut exits);
                let rest = self.exec_checks_ended(&exits, &mut results);
                let event = Input::Reaped {
                    exits: rest,
                    children_left,
                };
                self.feed(event, now);
                // Hooks' processes among them (the machine takes them for no instance's).
                for exit in &exits {
                    self.hook_ended(exit, now);
                    self.stopper_ended(exit);
                }
            }
            if notified {
                self.on_notify(now);
            }
            let watched = slots.watch.of(&fds).iter().any(|p| p.revents != 0);
            for (program, path) in self.watcher.handle(watched) {
                self.feed(Input::FilesChanged { program, path }, now);
            }
            let done = self.probes.on_time(now);
            results.extend(self.probes_done(done, now));
            for (check, ok) in results {
                self.feed(Input::CheckResult { check, ok }, now);
            }
            for (conn, request) in requests {
                self.feed(Input::Request { conn, request }, now);
            }
            self.server.on_time(now);
            if let Some(m) = &mut self.metrics {
                m.on_time(now);
            }
            self.feed(Input::Time, now);
            // Requests that waited behind an answered one on the same connection.
            loop {
                let more = self.server.more_requests();
                if more.is_empty() {
                    break;
                }
                for (conn, request) in more {
                    self.feed(Input::Request { conn, request }, now);
                }
            }
        }
    }

    /// The time, once per turn of the loop: the monotonic clock, and the wall clock handed
    /// to the machine with it (cron schedules are in wall-clock time).
    fn tick(&mut self) -> Instant {
        let now = Instant::now();
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let ms = i64::try_from(unix.as_millis()).unwrap_or(i64::MAX);
        self.machine.set_clock(now, ms);
        now
    }

    /// An event the machine published: counted for the metrics, and stamped with the time
    /// and sent to the subscribers of `ginit events`.
    fn publish(&mut self, event: Event, now: Instant) {
        if let Some(m) = &mut self.metrics {
            m.counters.count(&event);
        }
        self.server.publish(&event, now);
    }

    /// Hands `event` to the machine and carries out its effects in order; an effect's answer
    /// is fed back at once and its own effects go first (a stack, not a queue), so the
    /// machine sees what it would have seen had it made the call itself.
    fn feed(&mut self, event: Input, now: Instant) {
        let mut stack = self.machine.handle(event, now);
        stack.reverse();
        while let Some(effect) = stack.pop() {
            if let Some(answer) = self.perform(effect, now) {
                let mut more = self.machine.handle(answer, now);
                more.reverse();
                stack.append(&mut more);
            }
        }
    }

    /// Carries out one effect; returns its answer, for those that have one.
    fn perform(&mut self, effect: Effect, now: Instant) -> Option<Input> {
        match effect {
            Effect::Spawn { instance, spec } => Some(match self.starter.spawn(&spec, &instance) {
                Ok(pid) => Input::Spawned { instance, pid },
                Err(reason) => Input::SpawnFailed { instance, reason },
            }),
            Effect::SignalInstance { pid, signal } => {
                // The instance's process group, so helpers it started (an `sh -c` wrapper's
                // child) hear it too; the process alone if it left its group.
                if sys::kill(-pid, signal).is_err() {
                    let _ = sys::kill(pid, signal);
                }
                None
            }
            Effect::SignalGroup { pgid, signal, ask } => {
                // A group of that number led by an exec check is the check's, not the
                // leftovers': the old group was empty and its number reused.
                let delivered = pgid > 1
                    && !self.check_pids.contains(&pgid)
                    && !self.hooks.iter().any(|h| h.0 == pgid)
                    && !self.stoppers.iter().any(|s| s.0 == pgid)
                    && sys::kill(-pgid, signal).is_ok();
                ask.map(|ask| Input::GroupSignalled {
                    pgid,
                    signal,
                    delivered,
                    ask,
                })
            }
            Effect::SignalLeftovers(sig) => {
                reaper::signal_leftovers(sig);
                None
            }
            Effect::Respond { conn, response } => {
                self.server.respond(conn, &response, now);
                None
            }
            Effect::StartCheck {
                check,
                what,
                spec,
                timeout,
            } => self.start_check(check, what, &spec, timeout, now),
            Effect::CancelCheck { check } => {
                if let Some(k) = self.exec_checks.iter().position(|(_, c)| *c == check) {
                    let (pid, _) = self.exec_checks.swap_remove(k);
                    // Its own process group; reaped (and forgotten) as any other child.
                    let _ = sys::kill(-pid, libc::SIGKILL);
                } else if let Some(k) = self.probe_checks.iter().position(|p| p.check == check) {
                    self.probe_checks.swap_remove(k);
                    self.sync_probes(now);
                }
                None
            }
            Effect::SampleUsage { pids, sampling } => {
                if pids.is_empty() {
                    let usage = Vec::new();
                    return Some(Input::Usage { sampling, usage });
                }
                let usage = proc::trees(pids);
                Some(Input::Usage { sampling, usage })
            }
            Effect::LoadConfig { conn } => {
                info!("reloading {}", self.config_path.display());
                let config = config::load(&self.config_path, &crate::os::SystemResolver::new())
                    .map_err(|errors| errors.to_string());
                Some(Input::ConfigLoaded {
                    conn,
                    config: Box::new(config),
                })
            }
            Effect::WatchFiles { config, programs } => {
                self.watcher
                    .set(&self.config_path, config.as_deref(), &programs);
                None
            }
            Effect::ReopenLogs => {
                let n = self.starter.outputs.reopen();
                info!("SIGUSR1: reopened {n} log files");
                None
            }
            Effect::Exit(code) => {
                self.exit = Some(code);
                None
            }
            Effect::Publish(event) => {
                self.publish(event, now);
                None
            }
            Effect::StopCommand { spec, index, pid } => {
                let label = format!("{}:stop", spec.name);
                let vars = [("GINIT_MAINPID", pid.to_string())];
                let argv = &spec.stop_command;
                match self.starter.spawn_aside(&spec, index, argv, &vars, label) {
                    Ok(stopper) => self.stoppers.push((stopper, pid)),
                    Err(e) => {
                        let sig = spec.stop_signal;
                        warn!(
                            "cannot run the stop command of {}: {e}; sending {} instead",
                            spec.label(index),
                            signals::name(sig)
                        );
                        for sig in [sig, libc::SIGCONT] {
                            if sys::kill(-pid, sig).is_err() {
                                let _ = sys::kill(pid, sig);
                            }
                        }
                    }
                }
                None
            }
            Effect::RunHook {
                hook,
                spec,
                index,
                failed,
                vars,
            } => match self.starter.spawn_hook(&spec, index, failed, vars) {
                Ok(pid) => {
                    self.hooks.push((pid, hook));
                    None
                }
                Err(reason) => {
                    warn!("cannot start {}:hook: {reason}", spec.name);
                    let exit = Exited {
                        pid: 0,
                        code: 127,
                        signal: None,
                    };
                    Some(Input::HookEnded { hook, exit })
                }
            },
            Effect::KillHook { hook } => {
                if let Some(&(pid, _)) = self.hooks.iter().find(|h| h.1 == hook) {
                    // Its own process group; reaped (and reported) as usual.
                    let _ = sys::kill(-pid, libc::SIGKILL);
                }
                None
            }
            effect @ (Effect::Subscribe { .. }
            | Effect::ServeLogs(_)
            | Effect::LogSettings { .. }) => {
                self.observe(effect, now);
                None
            }
        }
    }

    /// A reaped process: a stop command that failed is logged; an instance whose stop
    /// command still runs has stopped, and the command's process group is killed.
    fn stopper_ended(&mut self, exit: &Exited) {
        if self.stoppers.is_empty() {
            return;
        }
        if let Some(k) = self.stoppers.iter().position(|s| s.0 == exit.pid) {
            self.stoppers.swap_remove(k);
            if exit.code != 0 {
                warn!("a stop command (pid {}) {}", exit.pid, exit.describe());
            }
        }
        for &(stopper, _) in self.stoppers.iter().filter(|s| s.1 == exit.pid) {
            let _ = sys::kill(-stopper, libc::SIGKILL);
        }
    }

    /// A reaped process: if it was a hook's, its end goes to the machine.
    fn hook_ended(&mut self, exit: &Exited, now: Instant) {
        if let Some(k) = self.hooks.iter().position(|h| h.0 == exit.pid) {
            let hook = self.hooks.swap_remove(k).1;
            self.feed(Input::HookEnded { hook, exit: *exit }, now);
        }
    }

    /// The effects behind `ginit events` and `ginit logs`: a subscription, an answer from
    /// the log rings, the log settings of the running config.
    fn observe(&mut self, effect: Effect, now: Instant) {
        let outputs = &mut self.starter.outputs;
        match effect {
            Effect::Subscribe {
                conn,
                json,
                snapshot,
            } => {
                let time = stdio::rfc3339(std::time::SystemTime::now());
                let first = streams::snapshot(&snapshot, json, &time);
                let stream = Stream::new(streams::Kind::Events, json);
                self.server
                    .open_stream(conn, stream, None, &first, false, now);
            }
            Effect::ServeLogs(a) => {
                let programs = a.programs.as_deref();
                let first = streams::dump(
                    &outputs.rings,
                    programs,
                    a.lines,
                    a.json,
                    outputs.timestamps,
                );
                let stream = Stream::new(streams::Kind::Logs(a.programs), a.json);
                self.server
                    .open_stream(a.conn, stream, a.notes, &first, !a.follow, now);
            }
            Effect::LogSettings {
                buffer,
                timestamps,
                programs,
            } => {
                outputs.rings.settings(buffer, &programs);
                outputs.timestamps = timestamps;
                stdio::set_timestamps(timestamps);
            }
            _ => {}
        }
    }

    /// New lines of output, to the `ginit logs -f` clients.
    fn follow_logs(&mut self) {
        let stamps = self.starter.outputs.timestamps;
        let (fresh, rings) = self.starter.outputs.rings.take_fresh();
        if !fresh.is_empty() {
            self.server.follow_logs(&fresh, rings, stamps);
        }
    }

    /// Starts one check attempt: an exec check is a process of its own group; a tcp or http
    /// one a probe, which starts on the next round of the loop (its deadline is now). An
    /// exec check that cannot start has failed at once.
    fn start_check(
        &mut self,
        check: CheckRef,
        what: ReadyCheck,
        spec: &ProgramSpec,
        timeout: Duration,
        now: Instant,
    ) -> Option<Input> {
        let target = match what {
            ReadyCheck::Exec(argv) => {
                return match self.starter.spawn_check(spec, check.instance.index, &argv) {
                    Ok(pid) => {
                        self.check_pids.push(pid);
                        self.exec_checks.push((pid, check));
                        None
                    }
                    Err(_) => Some(Input::CheckResult { check, ok: false }),
                };
            }
            ReadyCheck::Tcp(addr) => Target::Tcp(addr),
            ReadyCheck::Http { addr, host, path } => Target::Http { addr, host, path },
            ReadyCheck::Expand { http, text } => {
                match self
                    .starter
                    .check_target(spec, check.instance.index, http, &text)
                {
                    Ok(target) => target,
                    Err(e) => {
                        warn!("check of {}: {e}", spec.label(check.instance.index));
                        return Some(Input::CheckResult { check, ok: false });
                    }
                }
            }
            // Never asked for: they have no attempts.
            ReadyCheck::Notify | ReadyCheck::Delay(_) | ReadyCheck::Log(_) => return None,
        };
        self.next_probe = self.next_probe.wrapping_add(1);
        self.probe_checks.push(ProbeCheck {
            key: self.next_probe,
            check,
            target,
            timeout,
        });
        self.sync_probes(now);
        None
    }

    /// Keeps a probe for exactly the attempts under way. Each tries at once and is dropped
    /// when it ends, before it could try again (the machine schedules the next one).
    fn sync_probes(&mut self, now: Instant) {
        const NEVER_AGAIN: Duration = Duration::from_secs(3600);
        let wanted: Vec<_> = self
            .probe_checks
            .iter()
            .map(|p| {
                let key = (p.key, Purpose::Ready);
                (key, p.target.clone(), NEVER_AGAIN, p.timeout)
            })
            .collect();
        self.probes.sync(&wanted, now);
    }

    /// Probe attempts that ended, as check results.
    fn probes_done(
        &mut self,
        done: Vec<((i32, Purpose), bool)>,
        now: Instant,
    ) -> Vec<(CheckRef, bool)> {
        let mut results = Vec::new();
        for ((key, _), ok) in done {
            if let Some(k) = self.probe_checks.iter().position(|p| p.key == key) {
                results.push((self.probe_checks.swap_remove(k).check, ok));
            }
        }
        if !results.is_empty() {
            self.sync_probes(now);
        }
        results
    }

    /// Sorts what was reaped: exec checks' processes end their attempt (exit 0: passed);
    /// the rest goes to the machine.
    fn exec_checks_ended(
        &mut self,
        exits: &[Exited],
        results: &mut Vec<(CheckRef, bool)>,
    ) -> Vec<Exited> {
        let mut rest = Vec::with_capacity(exits.len());
        for exit in exits {
            if let Some(k) = self.check_pids.iter().position(|p| *p == exit.pid) {
                self.check_pids.swap_remove(k);
                if let Some(j) = self.exec_checks.iter().position(|(p, _)| *p == exit.pid) {
                    results.push((self.exec_checks.swap_remove(j).1, exit.code == 0));
                }
                continue;
            }
            rest.push(*exit);
        }
        rest
    }

    /// sd_notify datagrams, each with its sender's ancestors (the machine decides whose it is).
    fn on_notify(&mut self, now: Instant) {
        let Some(notify) = &self.notify else { return };
        for msg in notify.receive() {
            let ancestors = ancestors(msg.pid);
            let event = Input::Notify {
                pid: msg.pid,
                ancestors,
                fields: msg.fields,
            };
            self.feed(event, now);
        }
    }
}

/// The ancestors of `pid`, parent first, read from /proc: at most 64, and never pid 1 or ginit
/// itself or beyond (no instance can be there).
fn ancestors(pid: i32) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let mut pid = pid;
    while pid > 1 && out.len() < 64 {
        match proc::parent(pid) {
            Some(parent) if parent > 1 && parent != me => {
                out.push(parent);
                pid = parent;
            }
            _ => break,
        }
    }
    out
}

/// poll(2) over `fds`, for at most `timeout_ms` (-1: no limit). EINTR cannot occur with every
/// signal blocked; on any error the loop simply looks at its sources again.
fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) {
    let _ = sys::poll(fds, timeout_ms);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_and_never_spin() {
        let now = Instant::now();
        assert_eq!(poll_timeout(None, now), -1);
        assert_eq!(poll_timeout(Some(now), now), 0);
        assert_eq!(poll_timeout(Some(now + Duration::from_micros(1)), now), 1);
        assert_eq!(
            poll_timeout(Some(now + Duration::from_millis(1500)), now),
            1500
        );
        assert_eq!(poll_timeout(Some(now - Duration::from_secs(1)), now), 0);
        assert_eq!(
            poll_timeout(Some(now + Duration::from_secs(1 << 40)), now),
            i32::MAX
        );
    }

    #[test]
    fn slots_name_what_each_source_pushed_even_when_one_pushes_more() {
        let mut fds = Vec::new();
        let a = Slot::fill(&mut fds, |f| f.push(pollin(3)));
        let none = Slot::fill(&mut fds, |_| {});
        let b = Slot::fill(&mut fds, |f| {
            f.push(pollin(4));
            f.push(pollin(5));
        });
        let c = Slot::fill(&mut fds, |f| f.push(pollin(6)));
        let fd =
            |s: &Slot, fds: &[libc::pollfd]| s.of(fds).iter().map(|p| p.fd).collect::<Vec<_>>();
        assert_eq!(fd(&a, &fds), [3]);
        assert!(fd(&none, &fds).is_empty());
        assert_eq!(fd(&b, &fds), [4, 5]);
        assert_eq!(fd(&c, &fds), [6]);
        // A shorter array (never made so, but never trusted either): empty, not a panic.
        assert!(c.of(&fds[..2]).is_empty());
    }

    #[test]
    fn ancestors_stop_before_ginit() {
        // This test's own process: its parent chain ends before pid 1 and before itself.
        let me = std::process::id() as i32;
        let list = ancestors(me);
        assert!(list.iter().all(|&p| p > 1 && p != me), "{list:?}");
        assert!(ancestors(1).is_empty());
        assert!(ancestors(0).is_empty());
    }
}
