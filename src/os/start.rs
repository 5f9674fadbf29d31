//! Starting processes: what an instance, an exec check or a hook of a program starts with (its
//! environment, user, directory, limits, sockets at fds 3.., output pipes), built from the
//! spec into a [`spawn::SpawnPlan`], and the exec reports of children on their way to exec,
//! read from the poll loop. It decides nothing: when to start what is the machine's.

use std::ffi::OsString;

use log::error;

use crate::config::{self, Output, ProgramSpec, ReadyCheck, signals, vars};
use crate::machine::{HookVars, InstanceRef};
use crate::os::output::{Outputs, Stream};
use crate::os::probes::Target;
use crate::os::{proc, spawn};

/// What starting processes needs: the environment, outputs and sockets programs get, and the
/// exec reports of children not yet confirmed.
pub struct Starter {
    /// ginit's own environment, the base of every program's.
    pub base_env: Vec<(OsString, OsString)>,
    /// stdin is a terminal: `main` gets its foreground.
    pub terminal: bool,
    pub outputs: Outputs,
    pub sockets: Vec<(String, std::os::fd::OwnedFd)>,
    /// NOTIFY_SOCKET for programs with `ready: {notify: true}`.
    pub notify_address: Option<String>,
    /// Children whose exec has not been confirmed yet.
    pub reports: Vec<ExecReport>,
}

/// The report pipe of a child on its way to exec (end of file: it exec'd).
pub struct ExecReport {
    fd: std::fs::File,
    /// Kept to decode a failure (names, directory); its output fds are already closed.
    plan: spawn::SpawnPlan,
    label: String,
}

impl Starter {
    pub fn report_fds(&self, out: &mut Vec<libc::pollfd>) {
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
    pub fn handle_reports(&mut self, fds: &[libc::pollfd]) {
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

impl Starter {
    /// The environment instance `index` of `spec` starts with: ginit's, the user's HOME,
    /// USER and LOGNAME, each `env_file` read now (so a Secret or ConfigMap changed in place
    /// reaches the next start), `env` with its `${NAME}`s replaced from what comes before,
    /// then what ginit sets itself; for the instance's own process (`runtime`), the Go
    /// runtime's share of the machine too (its checks and hooks need no cgroup read). An
    /// error (a file missing or malformed, a variable not set) fails this start, and says why.
    pub fn environment(
        &self,
        spec: &ProgramSpec,
        index: u32,
        runtime: bool,
    ) -> Result<Vec<(OsString, OsString)>, String> {
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
        for (file, optional) in &spec.env_files {
            let shown = file.display();
            let text = match config::read_text(file, "the env_file") {
                Ok(text) => text,
                Err(_) if *optional && !file.exists() => continue,
                Err(e) => return Err(format!("env_file {shown}: {e}")),
            };
            let vars = vars::parse_env_file(&text)
                .map_err(|(line, e)| format!("env_file {shown}:{line}: {e}"))?;
            for (k, v) in vars {
                set(&k, v.into(), &mut env);
            }
        }
        for (k, v) in &spec.env {
            let value =
                vars::expand(v, |name| lookup(&env, name)).map_err(|e| format!("env {k}: {e}"))?;
            set(k, value.into(), &mut env);
        }
        // The Go runtime's share of the machine, unless the environment says it already.
        let quota = if runtime && spec.cpu_max.is_none() && spec.runtime_env {
            proc::cpu_quota()
        } else {
            None
        };
        let sizing = if runtime {
            spec.runtime_env(quota)
        } else {
            Vec::new()
        };
        for (k, v, _) in sizing {
            if !env.iter().any(|(name, _)| name == k) {
                env.push((k.into(), v.into()));
            }
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
        Ok(env)
    }
}

impl Starter {
    /// The target of a tcp or http check written with `${NAME}`s, from instance `index`'s
    /// environment now.
    pub fn check_target(
        &self,
        spec: &ProgramSpec,
        index: u32,
        http: bool,
        text: &str,
    ) -> Result<Target, String> {
        let env = self.environment(spec, index, false)?;
        let text = vars::expand(text, |name| lookup(&env, name))?;
        if http {
            return match config::parse_http_url(&text)? {
                ReadyCheck::Http { addr, host, path } => Ok(Target::Http { addr, host, path }),
                _ => Err(format!("`{text}` is not an http URL")),
            };
        }
        config::parse_tcp(&text).map(Target::Tcp)
    }
}

/// The value of `name` in `env` (the last one set), if it is UTF-8.
fn lookup<'e>(env: &'e [(OsString, OsString)], name: &str) -> Option<&'e str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.to_str())
}

fn open_null() -> Result<std::os::fd::OwnedFd, String> {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map(Into::into)
        .map_err(|e| format!("cannot open /dev/null: {e}"))
}

impl Starter {
    /// The plan of a process of instance `index` of `spec` (the instance, an exec check, a
    /// hook): `argv` with the program's environment plus `vars`, its user and directory, in
    /// its own process group. Limits, sockets and output are the caller's: only the
    /// instance gets limits and sockets.
    fn beside(
        &self,
        spec: &ProgramSpec,
        index: u32,
        argv: &[String],
        vars: &[(&str, String)],
        runtime: bool,
    ) -> Result<spawn::SpawnPlan, String> {
        let mut env = self.environment(spec, index, runtime)?;
        for (k, v) in vars {
            env.retain(|(name, _)| name != k);
            env.push((k.into(), v.into()));
        }
        // `${NAME}` in the command, from the environment it gets (a hook's GINIT_* too).
        let args = argv
            .iter()
            .map(|word| vars::expand(word, |name| lookup(&env, name)).map(OsString::from))
            .collect::<Result<Vec<OsString>, String>>()?;
        let mut plan =
            spawn::SpawnPlan::in_dir(&args, env, spec.cwd.as_deref()).map_err(|e| e.to_string())?;
        plan.new_pgroup = true;
        plan.cwd = match &spec.cwd {
            None => None,
            Some(dir) => Some(
                std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
                    .map_err(|_| format!("its directory {} contains a NUL byte", dir.display()))?,
            ),
        };
        plan.credentials = spec.user.as_ref().map(|u| (u.uid, u.gid, u.groups.clone()));
        Ok(plan)
    }

    /// Starts an exec check of instance `index` of `spec`: its own process group, the
    /// program's environment, user and directory, output discarded.
    pub fn spawn_check(
        &mut self,
        spec: &ProgramSpec,
        index: u32,
        argv: &[String],
    ) -> Result<i32, String> {
        let mut plan = self.beside(spec, index, argv, &[], false)?;
        plan.stdout = Some(open_null()?);
        plan.stderr = Some(open_null()?);
        // Not waiting for the exec: a check that cannot run exits 126/127, a failed check.
        plan.start()
            .map(|(pid, _report)| pid)
            .map_err(|e| e.to_string())
    }
}

impl Starter {
    /// Starts instance `index` of `spec`: its environment, user, directory, limits, sockets
    /// and output; returns its pid.
    pub fn spawn(&mut self, spec: &ProgramSpec, instance: &InstanceRef) -> Result<i32, String> {
        let index = instance.index;
        let mut plan = self.beside(spec, index, &spec.command, &[], true)?;
        plan.foreground = self.terminal && spec.name == "main";
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
        for (i, (output, read_end)) in [&spec.stdout, &spec.stderr]
            .into_iter()
            .zip(&mut readers)
            .enumerate()
        {
            let fd = match output {
                Output::Inherit => continue,
                Output::Null => open_null()?,
                _ => {
                    let (reader, writer) = Outputs::pipe()
                        .map_err(|e| format!("cannot create a pipe for its output: {e}"))?;
                    *read_end = Some(reader);
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
                self.outputs.attach(reader, spec, instance, stream);
            }
        }
        Ok(pid)
    }
}

impl Starter {
    /// Starts a hook of instance `index` of `spec` (`on_failed`, else `on_exit`) with the
    /// `GINIT_*` variables of `vars`, its output prefixed `NAME:hook` on ginit's streams;
    /// returns its pid.
    pub fn spawn_hook(
        &mut self,
        spec: &ProgramSpec,
        index: u32,
        failed: bool,
        vars: HookVars,
    ) -> Result<i32, String> {
        let argv = if failed {
            &spec.hooks.on_failed
        } else {
            &spec.hooks.on_exit
        };
        let status = match vars.exit.signal {
            Some(sig) => ("GINIT_EXIT_SIGNAL", signals::name(sig).to_string()),
            None => ("GINIT_EXIT_STATUS", vars.exit.code.to_string()),
        };
        let vars = [
            status,
            ("GINIT_RESTARTS", vars.restarts.to_string()),
            ("GINIT_NEXT", vars.next.to_string()),
        ];
        self.spawn_aside(spec, index, argv, &vars, format!("{}:hook", spec.name))
    }

    /// Starts a command beside instance `index` of `spec` (a hook, a stop command): `argv`
    /// as the program runs, with `vars` added, in its own process group, its output prefixed
    /// `label` on ginit's streams; returns its pid.
    pub fn spawn_aside(
        &mut self,
        spec: &ProgramSpec,
        index: u32,
        argv: &[String],
        vars: &[(&str, String)],
        label: String,
    ) -> Result<i32, String> {
        let mut plan = self.beside(spec, index, argv, vars, false)?;
        let pipe = || Outputs::pipe().map_err(|e| format!("cannot create a pipe: {e}"));
        let (out, err) = (pipe()?, pipe()?);
        plan.stdout = Some(out.1);
        plan.stderr = Some(err.1);
        let (pid, report) = plan.start().map_err(|e| e.to_string())?;
        plan.stdout = None;
        plan.stderr = None;
        self.outputs
            .attach_aside(out.0, spec, &label, Stream::Stdout);
        self.outputs
            .attach_aside(err.0, spec, &label, Stream::Stderr);
        // Its exec failure is logged with the reason; it then exits 127, a failed hook.
        self.reports.push(ExecReport {
            fd: report.into(),
            plan,
            label,
        });
        Ok(pid)
    }
}
