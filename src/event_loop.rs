//! The single poll loop: signals -> reap -> deadlines -> actions.
//!
//! One thread, one `poll(2)`, whose timeout is the earliest deadline of the state machine (or
//! infinite when there is none: an idle ginit never wakes up). Everything that happens is an
//! event read here and handed to pure code, whose actions are carried out here.
#![allow(unsafe_code)]

use std::time::Instant;

use log::{debug, error, info, warn};

use std::ffi::OsString;
use std::path::PathBuf;

use std::collections::HashMap;

use crate::checks::{Checks, Verdict};
use crate::config::{self, Config, CpuAction, Output, ProgramSpec, ReadyCheck, ReloadStrategy};
use crate::control::protocol::{InstanceStatus, Request, Response, Status};
use crate::control::server::{ConnId, Server};
use crate::monitor;
use crate::notify::NotifySocket;
use crate::output::{Outputs, Stream};
use crate::reaper::{self, Exit};
use crate::signals::{self, SignalSource};
use crate::single::{Action, Single, Target};
use crate::spawn;
use crate::supervisor::{Control, Ops, Supervisor};

/// Milliseconds from `now` to `deadline` for poll, rounded up so a deadline is never polled
/// for early (which would spin), or -1 for none.
fn poll_timeout(deadline: Option<std::time::Instant>, now: Instant) -> i32 {
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
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits until `fd` is readable or `timeout_ms` passes.
fn wait_readable(fd: i32, timeout_ms: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd. EINTR cannot occur with every signal blocked; on any error
    // the loop simply looks at its sources again.
    unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
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
    let mut exits: Vec<Exit> = Vec::new();
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
                codes.push((exit.pid, exit.code()));
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
                Target::Pid(pid) => pid,
                Target::Group(pgid) => -pgid,
            };
            debug!("forwarding {} to {}", signals::name(sig), pid);
            if let Err(e) = signals::kill(pid, sig) {
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

/// The real side effects of the supervisor.
struct SystemOps {
    /// ginit's own environment, the base of every program's.
    base_env: Vec<(OsString, OsString)>,
    /// stdin is a terminal: `main` gets its foreground.
    terminal: bool,
    outputs: Outputs,
    sockets: Vec<(String, std::os::fd::OwnedFd)>,
    /// NOTIFY_SOCKET for programs with `ready: {notify: true}`.
    notify_address: Option<String>,
    /// Children whose exec has not been confirmed yet.
    reports: Vec<ExecReport>,
    /// Exec checks still running (each leads its own process group), until reaped: a
    /// process group an exited instance left must never be confused with one of them.
    check_pids: Vec<i32>,
}

/// The report pipe of a child on its way to exec (end of file: it exec'd).
struct ExecReport {
    fd: std::fs::File,
    /// Kept to decode a failure (names, directory); its output fds are already closed.
    plan: spawn::SpawnPlan,
    label: String,
}

impl SystemOps {
    fn report_fds(&self, out: &mut Vec<libc::pollfd>) {
        for r in &self.reports {
            out.push(libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&r.fd),
                events: libc::POLLIN,
                revents: 0,
            });
        }
    }

    /// Reads the reports poll says are ready: a failed exec is logged (the child exits
    /// 126/127 and its exit is handled as any other).
    fn handle_reports(&mut self, fds: &[libc::pollfd]) {
        let mut done = Vec::new();
        for (i, (r, pfd)) in self.reports.iter().zip(fds).enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            let mut bytes = [0u8; 8];
            // Readable: the 8 bytes of a failure (written at once) or end of file.
            let n = std::io::Read::read(&mut &r.fd, &mut bytes).unwrap_or(0);
            if n == bytes.len() {
                error!("cannot start {}: {}", r.label, r.plan.report_error(&bytes));
            }
            done.push(i);
        }
        for i in done.into_iter().rev() {
            self.reports.remove(i);
        }
    }
}

impl SystemOps {
    fn environment(&self, spec: &ProgramSpec, index: u32) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> =
            Vec::with_capacity(self.base_env.len() + spec.env.len() + 5);
        let set = |k: &str, v: OsString, env: &mut Vec<(OsString, OsString)>| {
            env.retain(|(name, _)| name != k);
            env.push((k.into(), v));
        };
        env.extend(self.base_env.iter().cloned());
        if let Some(user) = &spec.user {
            set("HOME", user.home.clone().into_os_string(), &mut env);
            if let Some(name) = &user.name {
                set("USER", name.into(), &mut env);
                set("LOGNAME", name.into(), &mut env);
            }
        }
        for (k, v) in &spec.env {
            set(k, v.into(), &mut env);
        }
        let notify = spec
            .ready
            .as_ref()
            .is_some_and(|r| r.check == ReadyCheck::Notify);
        if let Some(addr) = &self.notify_address
            && (notify || spec.watchdog.is_some())
        {
            set("NOTIFY_SOCKET", addr.into(), &mut env);
        }
        if let Some(limit) = spec.watchdog {
            set(
                "WATCHDOG_USEC",
                limit.as_micros().to_string().into(),
                &mut env,
            );
        }
        set("GINIT_PROGRAM", spec.name.clone().into(), &mut env);
        set("GINIT_INSTANCE", index.to_string().into(), &mut env);
        env
    }
}

fn open_null() -> Result<std::os::fd::OwnedFd, String> {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map(Into::into)
        .map_err(|e| format!("cannot open /dev/null: {e}"))
}

impl SystemOps {
    /// Starts an exec check of instance `index` of `spec`: its own process group, the
    /// program's environment, user and directory, output discarded.
    fn spawn_check(
        &mut self,
        spec: &ProgramSpec,
        index: u32,
        argv: &[String],
    ) -> Result<i32, String> {
        let args: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let env = self.environment(spec, index);
        let mut plan =
            spawn::SpawnPlan::in_dir(&args, env, spec.cwd.as_deref()).map_err(|e| e.to_string())?;
        plan.new_pgroup = true;
        plan.cwd = spec
            .cwd
            .as_ref()
            .and_then(|d| std::ffi::CString::new(d.as_os_str().as_encoded_bytes()).ok());
        plan.credentials = spec.user.as_ref().map(|u| (u.uid, u.gid, u.groups.clone()));
        plan.stdout = Some(open_null()?);
        plan.stderr = Some(open_null()?);
        // Not waiting for the exec: a check that cannot run exits 126/127, a failed check.
        let pid = plan
            .start()
            .map(|(pid, _report)| pid)
            .map_err(|e| e.to_string())?;
        self.check_pids.push(pid);
        Ok(pid)
    }
}

impl Ops for SystemOps {
    fn spawn(&mut self, spec: &ProgramSpec, index: u32) -> Result<i32, String> {
        let argv: Vec<OsString> = spec.command.iter().map(OsString::from).collect();
        let env = self.environment(spec, index);
        let mut plan =
            spawn::SpawnPlan::in_dir(&argv, env, spec.cwd.as_deref()).map_err(|e| e.to_string())?;
        plan.new_pgroup = true;
        plan.foreground = self.terminal && spec.name == "main";
        plan.cwd = match &spec.cwd {
            None => None,
            Some(dir) => Some(
                std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
                    .map_err(|_| format!("its directory {} contains a NUL byte", dir.display()))?,
            ),
        };
        plan.credentials = spec.user.as_ref().map(|u| (u.uid, u.gid, u.groups.clone()));
        plan.rlimits = spec
            .limits
            .rlimits
            .iter()
            .map(|&(r, value)| {
                let v = value.map_or(libc::RLIM_INFINITY, |n| n as libc::rlim_t);
                let limit = libc::rlimit {
                    rlim_cur: v,
                    rlim_max: v,
                };
                (r.key(), r.resource(), limit)
            })
            .collect();
        if !spec.sockets.is_empty() {
            let mut fds = Vec::new();
            for name in &spec.sockets {
                let Some((_, fd)) = self.sockets.iter().find(|(n, _)| n == name) else {
                    return Err(format!("socket `{name}` is not open"));
                };
                fds.push(std::os::fd::AsRawFd::as_raw_fd(fd));
            }
            let names: Vec<&str> = spec.sockets.iter().map(String::as_str).collect();
            plan.listen(fds, &names);
        }
        plan.nice = spec.limits.nice;
        plan.oom_score_adj = spec
            .limits
            .oom_score_adj
            .map(|n| n.to_string().into_bytes());
        let mut readers = [None, None];
        for (i, output) in [&spec.stdout, &spec.stderr].into_iter().enumerate() {
            let fd = match output {
                Output::Inherit => continue,
                Output::Null => open_null()?,
                _ => {
                    let (reader, writer) = Outputs::pipe()
                        .map_err(|e| format!("cannot create a pipe for its output: {e}"))?;
                    readers[i] = Some(reader);
                    writer
                }
            };
            if i == 0 {
                plan.stdout = Some(fd);
            } else {
                plan.stderr = Some(fd);
            }
        }
        // Not waiting for the exec: the report pipe is read from the poll loop, so starting
        // ten programs does not take ten round trips through the scheduler.
        let (pid, report) = plan.start().map_err(|e| e.to_string())?;
        // The write ends of the output pipes go now: the pipes end when the program's
        // processes have all exited.
        plan.stdout = None;
        plan.stderr = None;
        let label = spec.label(index);
        self.reports.push(ExecReport {
            fd: report.into(),
            plan,
            label,
        });
        for (reader, stream) in readers.into_iter().zip([Stream::Stdout, Stream::Stderr]) {
            if let Some(reader) = reader {
                self.outputs.attach(reader, spec, index, stream);
            }
        }
        Ok(pid)
    }

    fn signal(&mut self, pid: i32, sig: i32) {
        // The instance's process group, so helpers it started (an `sh -c` wrapper's child)
        // hear it too; the process alone if it left its group.
        if signals::kill(-pid, sig).is_err() {
            let _ = signals::kill(pid, sig);
        }
    }

    fn signal_leftovers(&mut self, sig: i32) {
        reaper::signal_leftovers(sig);
    }

    fn signal_group(&mut self, pgid: i32, sig: i32) -> bool {
        // A group of that number led by an exec check is the check's, not the leftovers':
        // the old group was empty and its number reused.
        pgid > 1 && !self.check_pids.contains(&pgid) && signals::kill(-pgid, sig).is_ok()
    }
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
}

/// How often programs with `memory_max` or `cpu_max` are sampled.
const SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A start/stop/restart request answered once the programs have settled.
struct Pending {
    conn: ConnId,
    names: Vec<String>,
    what: Control,
}

/// Supervisor mode's state besides the supervisor itself.
struct Daemon {
    run: SupervisorRun,
    ops: SystemOps,
    sup: Supervisor,
    server: Server,
    pending: Vec<Pending>,
    /// Why the last config reload failed, until one succeeds (shown by `status`).
    reload_error: Option<String>,
    /// The previous CPU sample of each process tree, by pid: (when, CPU time); one map for
    /// the monitor's periodic samples, one for `status`, so a status request never shortens
    /// the monitor's measuring window.
    samples: HashMap<i32, (Instant, std::time::Duration)>,
    status_samples: HashMap<i32, (Instant, std::time::Duration)>,
    watches: HashMap<i32, monitor::Watch>,
    next_sample: Option<Instant>,
    notify: Option<NotifySocket>,
    checks: Checks,
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
    let ops = SystemOps {
        base_env: std::env::vars_os()
            .filter(|(k, _)| k != "NOTIFY_SOCKET")
            .collect(),
        terminal: run.terminal,
        outputs: Outputs::new(),
        sockets: std::mem::take(&mut run.sockets),
        notify_address: notify.as_ref().map(|n| n.address().to_string()),
        reports: Vec::new(),
        check_pids: Vec::new(),
    };
    let sup = Supervisor::new(&run.config);
    let mut d = Daemon {
        run,
        ops,
        sup,
        server,
        pending: Vec::new(),
        reload_error: None,
        samples: HashMap::new(),
        status_samples: HashMap::new(),
        watches: HashMap::new(),
        next_sample: None,
        notify,
        checks: Checks::default(),
    };
    d.sup.start(Instant::now(), &mut d.ops);
    d.schedule_sampling(Instant::now());
    d.run()
}

impl Daemon {
    fn run(&mut self) -> i32 {
        let mut received = Vec::new();
        let mut exits: Vec<Exit> = Vec::new();
        let mut fds = Vec::new();
        loop {
            if let Some(code) = self.sup.finished() {
                self.server.remove();
                self.ops.outputs.drain(Instant::now() + DRAIN_TIME);
                return code;
            }
            fds.clear();
            fds.push(libc::pollfd {
                fd: self.run.signals.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            self.server.poll_fds(&mut fds);
            let control_fds = self.server.poll_len();
            fds.push(libc::pollfd {
                fd: self.notify.as_ref().map_or(-1, NotifySocket::raw_fd),
                events: libc::POLLIN,
                revents: 0,
            });
            self.checks.sync(&self.sup.running(), Instant::now());
            self.checks.poll_fds(&mut fds);
            let probe_fds = self.checks.poll_len();
            self.ops.report_fds(&mut fds);
            let report_fds = self.ops.reports.len();
            self.ops.outputs.poll_fds(&mut fds);
            let deadline = [
                self.checks.deadline(),
                self.sup.deadline(),
                self.server.deadline(),
                self.next_sample,
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = poll_timeout(deadline, Instant::now());
            // SAFETY: `fds` is a valid array of its length. EINTR cannot occur with every
            // signal blocked; on an error the loop looks at its sources again.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            let now = Instant::now();
            let requests = self.server.handle(&fds[1..1 + control_fds], now);
            let notified = fds[1 + control_fds].revents != 0;
            let probes_at = 2 + control_fds;
            let running = self.sup.running();
            self.checks
                .handle(&fds[probes_at..probes_at + probe_fds], &running, now);
            drop(running);
            let reports_at = probes_at + probe_fds;
            self.ops
                .handle_reports(&fds[reports_at..reports_at + report_fds]);
            self.ops.outputs.handle(&fds[reports_at + report_fds..]);

            received.clear();
            self.run.signals.drain(&mut received);
            let mut reap = false;
            for &sig in &received {
                match sig {
                    libc::SIGCHLD => reap = true,
                    libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => {
                        info!("received {}", signals::name(sig));
                        self.sup.request_shutdown(now, &mut self.ops);
                    }
                    libc::SIGHUP => {
                        let _ = self.reload_config(now);
                    }
                    libc::SIGUSR1 => {
                        let n = self.ops.outputs.reopen();
                        info!("SIGUSR1: reopened {n} log files");
                    }
                    libc::SIGPIPE => {}
                    _ if self.run.main.is_some() => {
                        debug!("forwarding {} to main", signals::name(sig));
                        self.sup.signal_program("main", sig, &mut self.ops);
                    }
                    _ => debug!("ignoring {}", signals::name(sig)),
                }
            }
            if reap {
                exits.clear();
                let children_left = reaper::reap(&mut exits);
                if !self.ops.check_pids.is_empty() {
                    self.ops
                        .check_pids
                        .retain(|pid| !exits.iter().any(|e| e.pid == *pid));
                }
                let running = self.sup.running();
                self.checks.on_reaped(&exits, &running, now);
                drop(running);
                self.sup
                    .on_reaped(&exits, children_left, now, &mut self.ops);
            }
            if notified {
                self.on_notify(now);
            }
            self.run_checks(now);
            for (conn, request) in requests {
                self.dispatch(conn, request, now);
            }
            self.server.on_time(now);
            self.sup.on_time(now, &mut self.ops);
            if self.next_sample.is_some_and(|t| now >= t) {
                self.sample(now);
            }
            self.answer_settled(now);
        }
    }

    /// sd_notify datagrams: the sender (as the kernel reports it) must be a starting
    /// instance's process or one of its descendants.
    fn on_notify(&mut self, now: Instant) {
        let Some(notify) = &self.notify else { return };
        for msg in notify.receive() {
            // The sender itself, or its nearest ancestor, must be an instance's process:
            // one walk up the sender's parents (at most 64), not one per instance.
            let mut owner = None;
            let mut pid = msg.pid;
            for _ in 0..64 {
                if pid <= 1 {
                    break;
                }
                if let Some(program) = self.sup.program_of(pid) {
                    owner = Some((pid, program.to_string()));
                    break;
                }
                match reaper::parent(pid) {
                    Some(parent) => pid = parent,
                    None => break,
                }
            }
            let Some((pid, program)) = owner else {
                debug!(
                    "notify: ignoring a message from pid {}, which is no program's",
                    msg.pid
                );
                continue;
            };
            for (key, value) in &msg.fields {
                match key.as_str() {
                    "READY" if value == "1" => {
                        self.sup.mark_ready(pid, now, &mut self.ops);
                    }
                    "STOPPING" if value == "1" => info!("{program} (pid {pid}) is stopping"),
                    "WATCHDOG" if value == "1" => {
                        let running = self.sup.running();
                        self.checks.watchdog_ping(pid, &running, now);
                    }
                    "WATCHDOG" if value == "trigger" => {
                        self.reload_instance(pid, "asked for it (WATCHDOG=trigger)", now);
                    }
                    "STATUS" => info!("{program} (pid {pid}): {value}"),
                    _ => debug!("notify from {program} (pid {pid}): {key}={value}"),
                }
            }
        }
    }

    /// Starts due exec checks and acts on the verdicts of every check.
    fn run_checks(&mut self, now: Instant) {
        let running = self.sup.running();
        let due = self.checks.on_time(&running, now);
        for d in due {
            let started = running
                .iter()
                .find(|r| r.pid == d.key.0)
                .ok_or_else(|| "gone".to_string())
                .and_then(|r| self.ops.spawn_check(r.spec, r.index, &d.argv));
            self.checks.exec_started(d.key, started, &running, now);
        }
        drop(running);
        for verdict in self.checks.verdicts() {
            match verdict {
                Verdict::Ready(pid) => {
                    self.sup.mark_ready(pid, now, &mut self.ops);
                }
                Verdict::Reload { pid, reason } => self.reload_instance(pid, &reason, now),
            }
        }
    }

    /// A verdict asks for a reload of the instance whose process is `pid`: the supervisor
    /// counts it as a restart and reloads it by its program's strategy.
    fn reload_instance(&mut self, pid: i32, reason: &str, now: Instant) {
        self.sup.reload_verdict(pid, reason, now, &mut self.ops);
    }

    /// Carries out one control request; start/stop/restart are answered once settled.
    fn dispatch(&mut self, conn: ConnId, request: Request, now: Instant) {
        debug!("control request: {request:?}");
        let response = match request {
            Request::Status {} => self.status(now),
            Request::Ready {} => self.readiness(),
            Request::ReloadConfig {} => match self.reload_config(now) {
                Ok(msg) => Response::ok(msg),
                Err(e) => Response::error(e),
            },
            Request::Shutdown {} => {
                info!("shutdown requested over the control socket");
                self.sup.request_shutdown(now, &mut self.ops);
                Response::ok("shutting down")
            }
            Request::Signal { signal, programs } => self.signal(&signal, &programs),
            Request::Start { programs } => {
                return self.control(conn, &programs, Control::Start, now);
            }
            Request::Stop { programs } => return self.control(conn, &programs, Control::Stop, now),
            Request::Restart { programs } => {
                return self.control(conn, &programs, Control::Restart, now);
            }
            Request::Reload { programs } => return self.reload(conn, &programs, now),
        };
        self.server.respond(conn, &response, now);
    }

    fn control(&mut self, conn: ConnId, names: &[String], what: Control, now: Instant) {
        if self.sup.is_shutting_down() {
            let r = Response::error("ginit is shutting down");
            return self.server.respond(conn, &r, now);
        }
        match self.sup.resolve_names(names) {
            Ok(names) => {
                let busy: Vec<&str> = names
                    .iter()
                    .filter(|n| self.sup.is_replacing(n))
                    .map(String::as_str)
                    .collect();
                if matches!(what, Control::Start | Control::Restart) && !busy.is_empty() {
                    let e = format!(
                        "a reload of {} is under way; try again once it has finished",
                        busy.join(", ")
                    );
                    return self.server.respond(conn, &Response::error(e), now);
                }
                self.sup.control(&names, what, now, &mut self.ops);
                self.pending.push(Pending { conn, names, what });
            }
            Err(e) => self.server.respond(conn, &Response::error(e), now),
        }
    }

    /// `reload NAME...`: each program by its strategy (a signal is sent at once; a restart
    /// is answered when the program runs again).
    fn reload(&mut self, conn: ConnId, names: &[String], now: Instant) {
        let names = match self.sup.resolve_names(names) {
            Ok(names) => names,
            Err(e) => return self.server.respond(conn, &Response::error(e), now),
        };
        let mut restart = Vec::new();
        let mut replace = Vec::new();
        let mut signalled = Vec::new();
        for name in names {
            match self.sup.spec(&name).map(|s| s.reload) {
                Some(ReloadStrategy::Signal(sig)) => {
                    self.sup.signal_program(&name, sig, &mut self.ops);
                    signalled.push(format!("sent {} to {name}", signals::name(sig)));
                }
                Some(ReloadStrategy::Replace) => replace.push(name),
                _ => restart.push(name),
            }
        }
        match (restart.is_empty(), replace.is_empty()) {
            (true, true) => {
                let r = Response::ok(signalled.join("; "));
                self.server.respond(conn, &r, now);
            }
            (false, true) => self.control(conn, &restart, Control::Restart, now),
            (true, false) => self.control(conn, &replace, Control::Replace, now),
            (false, false) => {
                // Both kinds at once: the restarts go ahead unanswered, the answer waits for
                // the replacements (which take longer, as they wait for readiness).
                if let Ok(names) = self.sup.resolve_names(&restart) {
                    self.sup
                        .control(&names, Control::Restart, now, &mut self.ops);
                }
                self.control(conn, &replace, Control::Replace, now);
            }
        }
    }

    fn signal(&mut self, signal: &str, names: &[String]) -> Response {
        let Some(sig) = signals::parse(signal) else {
            return Response::error(format!("`{signal}` is not a signal name or number"));
        };
        let names = match self.sup.resolve_names(names) {
            Ok(names) => names,
            Err(e) => return Response::error(e),
        };
        let mut none = Vec::new();
        for name in &names {
            if !self.sup.signal_program(name, sig, &mut self.ops) {
                none.push(name.as_str());
            }
        }
        if none.is_empty() {
            Response::ok(format!(
                "sent {} to {}",
                signals::name(sig),
                names.join(", ")
            ))
        } else {
            Response::error(format!("not running: {}", none.join(", ")))
        }
    }

    fn answer_settled(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            if let Some(result) = self.sup.settled(&p.names, p.what) {
                let response = match result {
                    Ok(msg) => Response::ok(msg),
                    Err(e) => Response::error(e),
                };
                let conn = self.pending.remove(i).conn;
                self.server.respond(conn, &response, now);
            } else {
                i += 1;
            }
        }
        // Requests that waited behind an answered one on the same connection.
        loop {
            let more = self.server.more_requests();
            if more.is_empty() {
                break;
            }
            for (conn, request) in more {
                self.dispatch(conn, request, now);
            }
        }
        self.schedule_sampling(now);
    }

    fn readiness(&self) -> Response {
        if self.sup.ready() {
            return Response::ok("ready");
        }
        if self.sup.is_shutting_down() {
            return Response::error("not ready: shutting down");
        }
        let waiting: Vec<String> = self
            .sup
            .status()
            .into_iter()
            .filter(|i| !i.ready)
            .map(|i| format!("{}.{} is {}", i.program, i.index, i.state))
            .collect();
        Response::error(format!("not ready: {}", waiting.join(", ")))
    }

    fn status(&mut self, now: Instant) -> Response {
        let table = monitor::Table::scan();
        let rows = self.sup.status();
        let instances = rows
            .into_iter()
            .map(|i| {
                let usage = i.pid.and_then(|pid| table.tree(pid));
                let cpu_percent = match (i.pid, usage) {
                    (Some(pid), Some(u)) => {
                        let before = self
                            .status_samples
                            .get(&pid)
                            .copied()
                            .or(i.started.map(|t| (t, std::time::Duration::ZERO)));
                        self.status_samples.insert(pid, (now, u.cpu));
                        before.and_then(|b| monitor::cpu_percent(b, (now, u.cpu)))
                    }
                    _ => None,
                };
                InstanceStatus {
                    program: i.program,
                    instance: i.index,
                    pid: i.pid,
                    state: i.state.to_string(),
                    ready: i.ready,
                    uptime_secs: i
                        .started
                        .map(|t| now.saturating_duration_since(t).as_secs_f64()),
                    restarts: i.restarts,
                    cpu_percent,
                    rss_bytes: usage.map(|u| u.rss_bytes),
                    last_exit: i.last_exit,
                }
            })
            .collect::<Vec<_>>();
        self.forget_gone_processes();
        Response {
            ok: true,
            status: Some(Status {
                ready: self.sup.ready(),
                shutting_down: self.sup.is_shutting_down(),
                config_error: self.reload_error.clone(),
                instances,
            }),
            ..Response::default()
        }
    }

    fn forget_gone_processes(&mut self) {
        let sup = &self.sup;
        self.samples.retain(|pid, _| sup.has_pid(*pid));
        self.status_samples.retain(|pid, _| sup.has_pid(*pid));
        self.watches.retain(|pid, _| sup.has_pid(*pid));
    }

    /// Sampling runs only while some program has `memory_max` or `cpu_max`.
    fn schedule_sampling(&mut self, now: Instant) {
        let wanted = !self.sup.is_shutting_down()
            && self
                .run
                .config
                .programs
                .iter()
                .any(ProgramSpec::is_monitored);
        self.next_sample = match (wanted, self.next_sample) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => Some(now + SAMPLE_INTERVAL),
        };
    }

    /// Samples the monitored programs and acts on `memory_max` / `cpu_max`.
    fn sample(&mut self, now: Instant) {
        self.next_sample = None;
        let table = monitor::Table::scan();
        let monitored: Vec<(i32, ProgramSpec)> = self
            .sup
            .running()
            .into_iter()
            .filter(|r| r.spec.is_monitored())
            .map(|r| (r.pid, r.spec.clone()))
            .collect();
        for (pid, spec) in monitored {
            let spec = &spec;
            let Some(usage) = table.tree(pid) else {
                continue;
            };
            let cpu = self
                .samples
                .insert(pid, (now, usage.cpu))
                .and_then(|before| monitor::cpu_percent(before, (now, usage.cpu)));
            let verdict = self.watches.entry(pid).or_default().judge(
                now,
                usage.rss_bytes,
                cpu,
                spec.memory_max,
                spec.cpu_max,
                spec.monitor_window,
            );
            let reason = match verdict {
                None => continue,
                Some(monitor::Verdict::MemoryOver { rss, max }) => format!(
                    "uses {} KiB of memory, over its memory_max of {} KiB",
                    rss / 1024,
                    max / 1024
                ),
                Some(monitor::Verdict::CpuOver { percent, max }) => {
                    let window = config::units::format_duration(spec.monitor_window);
                    let msg = format!(
                        "has used {percent:.0}% CPU for {window}, over its cpu_max of {max:.0}%"
                    );
                    if spec.cpu_action != CpuAction::Restart {
                        warn!("{} (pid {pid}) {msg}", spec.name);
                        continue;
                    }
                    msg
                }
            };
            self.reload_instance(pid, &reason, now);
        }
        self.forget_gone_processes();
        self.schedule_sampling(now);
    }

    /// SIGHUP or `reload-config`: re-reads the config. An invalid file changes nothing; a
    /// valid one is applied as a difference.
    fn reload_config(&mut self, now: Instant) -> Result<String, String> {
        if self.sup.is_shutting_down() {
            warn!("not reloading the config: shutting down");
            return Err("not reloading the config: ginit is shutting down".into());
        }
        let path = &self.run.config_path;
        info!("reloading {}", path.display());
        let loaded = config::load(path, &config::SystemResolver::new())
            .map_err(|errors| errors.to_string())
            .and_then(|mut new| match &self.run.main {
                Some(main) => new.add_main(main.clone()).map(|()| new),
                None => Ok(new),
            });
        let loaded = loaded.and_then(|new| {
            if new.sockets == self.run.config.sockets {
                Ok(new)
            } else {
                Err(
                    "`sockets` changed: sockets are bound once, when ginit starts, and \
                     cannot change on a reload (restart ginit to change them)"
                        .to_string(),
                )
            }
        });
        let new = match loaded {
            Ok(new) => new,
            Err(e) => {
                error!("the new config is invalid; nothing changed:\n{e}");
                self.reload_error = Some(e.clone());
                return Err(format!("the new config is invalid; nothing changed:\n{e}"));
            }
        };
        self.reload_error = None;
        let summary = self.sup.reload(&self.run.config, &new, now, &mut self.ops);
        self.run.config = new;
        self.next_sample = None;
        self.schedule_sampling(now);
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
