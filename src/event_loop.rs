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

use crate::config::{self, Config, Output, ProgramSpec};
use crate::output::{Outputs, Stream};
use crate::reaper::{self, Exit};
use crate::signals::{self, SignalSource};
use crate::single::{Action, Single, Target};
use crate::spawn;
use crate::supervisor::{Ops, Supervisor};

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
        let pid = plan.spawn().map_err(|e| e.to_string())?;
        // The plan (and with it the write ends) is gone: the pipes end when the program's
        // processes have all exited.
        let streams = [
            (&spec.stdout, Stream::Stdout),
            (&spec.stderr, Stream::Stderr),
        ];
        for (reader, (output, stream)) in readers.into_iter().zip(streams) {
            if let Some(reader) = reader {
                let instances = spec.instances;
                self.outputs
                    .attach(reader, output, &spec.name, index, instances, stream);
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
}

/// What supervisor mode needs.
pub struct SupervisorRun {
    pub signals: SignalSource,
    pub config: Config,
    pub config_path: PathBuf,
    /// The PROGRAM given after `--`, run as `main`.
    pub main: Option<Vec<String>>,
    pub terminal: bool,
}

/// Runs the supervisor until the run is over and returns ginit's exit status.
pub fn run_supervisor(mut run: SupervisorRun) -> i32 {
    let mut ops = SystemOps {
        base_env: std::env::vars_os().collect(),
        terminal: run.terminal,
        outputs: Outputs::new(),
    };
    let mut sup = Supervisor::new(&run.config);
    sup.start(Instant::now(), &mut ops);
    let mut received = Vec::new();
    let mut exits: Vec<Exit> = Vec::new();
    let mut fds = Vec::new();
    loop {
        if let Some(code) = sup.finished() {
            ops.outputs.drain(Instant::now() + DRAIN_TIME);
            return code;
        }
        fds.clear();
        fds.push(libc::pollfd {
            fd: run.signals.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        ops.outputs.poll_fds(&mut fds);
        let timeout = poll_timeout(sup.deadline(), Instant::now());
        // SAFETY: `fds` is a valid array of its length. EINTR cannot occur with every signal
        // blocked; on an error the loop looks at its sources again.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        ops.outputs.handle(&fds[1..]);
        let now = Instant::now();
        received.clear();
        run.signals.drain(&mut received);
        let mut reap = false;
        for &sig in &received {
            match sig {
                libc::SIGCHLD => reap = true,
                libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => {
                    info!("received {}", signals::name(sig));
                    sup.request_shutdown(now, &mut ops);
                }
                libc::SIGHUP => reload_config(&mut run, &mut sup, now, &mut ops),
                libc::SIGUSR1 => {
                    let n = ops.outputs.reopen();
                    info!("SIGUSR1: reopened {n} log files");
                }
                libc::SIGPIPE => {}
                _ if run.main.is_some() => {
                    debug!("forwarding {} to main", signals::name(sig));
                    sup.signal_program("main", sig, &mut ops);
                }
                _ => debug!("ignoring {}", signals::name(sig)),
            }
        }
        if reap {
            exits.clear();
            let children_left = reaper::reap(&mut exits);
            sup.on_reaped(&exits, children_left, now, &mut ops);
        }
        sup.on_time(now, &mut ops);
    }
}

/// SIGHUP: re-reads the config. An invalid file changes nothing; a valid one is applied as
/// a difference.
fn reload_config(run: &mut SupervisorRun, sup: &mut Supervisor, now: Instant, ops: &mut SystemOps) {
    if sup.is_shutting_down() {
        warn!("not reloading the config: shutting down");
        return;
    }
    info!("reloading {}", run.config_path.display());
    let mut new = match config::load(&run.config_path, &config::SystemResolver::new()) {
        Ok(new) => new,
        Err(errors) => {
            error!("the new config is invalid; nothing changed:\n{errors}");
            return;
        }
    };
    if let Some(main) = &run.main
        && let Err(e) = new.add_main(main.clone())
    {
        error!("the new config is invalid; nothing changed: {e}");
        return;
    }
    sup.reload(&run.config, &new, now, ops);
    run.config = new;
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
