//! ginit: a small init and process supervisor for containers.
//!
//! cli -> mode -> run -> exit status. This is the only place that decides ginit's exit
//! status: 2 for usage errors, 127/126 when the program cannot be started, otherwise the
//! status the run reports (the program's, 128+N when a signal killed it). Nothing else in
//! the crate exits: `--daemon`'s fork and the control client return their status here.
#![deny(unsafe_code)]
#![cfg_attr(not(test), no_main)]

use std::io::IsTerminal;
use std::path::PathBuf;

use log::{debug, error, warn};

use ginit::cli::{self, Command, RunOptions};
use ginit::machine::single;
use ginit::os::signals::SignalSource;
use ginit::os::{SystemResolver, daemon, event_loop, metrics, reaper, sockets, spawn};
use ginit::{config, control, logger};

/// The C entry point, without Rust's runtime start-up: ginit needs none of it (no threads,
/// no stack-overflow handler with panic=abort), it saves system calls on every container
/// start, and it keeps SIGPIPE at its default instead of ignored. std still works: the C
/// library hands argv and the environment to std before `main`.
// SAFETY: `main` is the one symbol the C runtime calls; nothing else defines it.
#[cfg(not(test))]
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    entry()
}

/// Test builds get the harness's `main`; this one only keeps `entry` reachable.
#[cfg(test)]
fn main() {
    entry();
}

fn entry() -> i32 {
    spawn::ensure_stdio();
    let code = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Version) => {
            println!("ginit {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            0
        }
        Ok(Command::Run(opts)) => run(opts),
        Ok(Command::Check { config }) => check(config),
        Ok(Command::Schema) => {
            print!("{}", config::keys::json_schema());
            0
        }
        Ok(Command::Control {
            request,
            socket,
            json,
            watch: None,
        }) => control::client::run(
            &control::socket_path(socket, config::DEFAULT_SOCKET),
            &request,
            json,
        ),
        Ok(Command::Control {
            socket,
            watch: Some(every),
            ..
        }) => control::client::watch(&control::socket_path(socket, config::DEFAULT_SOCKET), every),
        Err(reason) => {
            eprintln!("ginit: {reason} (see `ginit --help`)");
            2
        }
    };
    std::process::exit(code)
}

/// Where the config comes from: `-c`, else `$GINIT_CONFIG`, else `/etc/ginit.yaml` if present.
fn config_path(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| {
        std::env::var_os("GINIT_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .or_else(|| {
        let default = PathBuf::from("/etc/ginit.yaml");
        default.exists().then_some(default)
    })
}

/// `ginit check`: 0 and the plan for a valid config; 2 and every error otherwise.
fn check(flag: Option<PathBuf>) -> i32 {
    let Some(path) = config_path(flag) else {
        eprintln!("ginit: no config to check: give -c PATH or set GINIT_CONFIG");
        return 2;
    };
    match config::load(&path, &SystemResolver::new()) {
        Ok(cfg) => {
            println!("{}: valid", path.display());
            print!("{}", cfg.plan(ginit::os::proc::cpu_quota()));
            0
        }
        Err(errors) => {
            eprintln!("{errors}");
            let n = errors.count();
            eprintln!(
                "ginit: {n} error{} in {}",
                if n == 1 { "" } else { "s" },
                path.display()
            );
            2
        }
    }
}

/// Runs as init: supervisor mode with a config, single-program mode without.
fn run(opts: RunOptions) -> i32 {
    let config_file = config_path(opts.config.clone());
    let Some(path) = config_file else {
        if opts.daemon {
            eprintln!("ginit: --daemon needs a config (-c PATH) (see `ginit --help`)");
            return 2;
        }
        if opts.program.is_empty() {
            eprintln!(
                "ginit: nothing to run: give a program (`ginit -- /app/server`) or a config \
                 (-c PATH, $GINIT_CONFIG, /etc/ginit.yaml) (see `ginit --help`)"
            );
            return 2;
        }
        logger::init(opts.verbosity, None);
        return run_single(opts);
    };
    let mut cfg = match config::load(&path, &SystemResolver::new()) {
        Ok(cfg) => cfg,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("ginit: the config is invalid; nothing was started");
            return 2;
        }
    };
    let main: Option<Vec<String>> = (!opts.program.is_empty()).then(|| {
        opts.program
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    });
    if let Some(argv) = &main {
        let resolved = spawn::resolve(
            opts.program[0].as_os_str(),
            std::env::var_os("PATH").as_deref(),
        );
        if let Err(e) = resolved {
            eprintln!("ginit: {e}");
            return e.exit_code();
        }
        if let Err(e) = cfg.add_main(argv.clone()) {
            eprintln!("ginit: {e}");
            return 2;
        }
    }
    let mut socket =
        control::socket_path(opts.socket.clone(), &cfg.control_socket.to_string_lossy());
    let mut path = path;
    let pidfile = opts
        .pidfile
        .as_ref()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    if opts.daemon {
        socket = std::path::absolute(&socket).unwrap_or(socket);
        // The daemon works from `/`: the config must still be found for reloads (by the
        // same links, which a reload follows anew).
        path = match std::path::absolute(&path) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("ginit: {}: {e}", path.display());
                return 2;
            }
        };
        match daemon::daemonize(pidfile.as_deref(), cfg.log.file.as_deref()) {
            Ok(daemon::Detached::Daemon) => {}
            // The caller's side (or a daemon that could not set itself up): done here.
            Ok(daemon::Detached::Exit(code)) => return code,
            Err(e) => {
                eprintln!("ginit: cannot become a daemon: {e}");
                return 1;
            }
        }
    }
    logger::init(opts.verbosity, Some(&cfg.log));
    let listeners = match open_sockets(&cfg) {
        Ok(l) => l,
        Err(e) => {
            error!("{e}");
            return 2;
        }
    };
    // Bound once, before any program starts, as the sockets are.
    let metrics = match cfg.metrics.as_ref().map(metrics::Endpoint::bind) {
        Some(Err(e)) => {
            error!("{e}");
            return 2;
        }
        bound => bound.and_then(Result::ok),
    };
    let signals = match setup_init() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let code = event_loop::run_supervisor(event_loop::SupervisorRun {
        signals,
        config: cfg,
        config_path: path,
        main,
        terminal: std::io::stdin().is_terminal(),
        socket,
        sockets: listeners,
        metrics,
    });
    if let Some(pidfile) = pidfile {
        let _ = std::fs::remove_file(pidfile);
    }
    code
}

/// Binds (or adopts) every socket of the config, before any program starts.
fn open_sockets(cfg: &config::Config) -> Result<Vec<(String, std::os::fd::OwnedFd)>, String> {
    let mut inherited = sockets::inherited();
    let mut out = Vec::new();
    for s in &cfg.sockets {
        let fd = match &s.listen {
            config::Listen::Tcp(addr) => sockets::bind_tcp(*addr, s.backlog),
            config::Listen::Unix { path, mode, owner } => {
                sockets::bind_unix(path, s.backlog, *mode, *owner)
            }
            config::Listen::Inherit(name) => match inherited.iter().position(|(n, _)| n == name) {
                Some(i) => Ok(inherited.remove(i).1),
                None => Err(format!(
                    "no socket named `{name}` was passed to ginit (LISTEN_FDS/LISTEN_FDNAMES)"
                )),
            },
        }
        .map_err(|e| format!("socket `{}`: {e}", s.name))?;
        debug!("socket {} on {}", s.name, s.listen);
        out.push((s.name.clone(), fd));
    }
    Ok(out)
}

/// What every init mode does first: block signals (before any fork, so none is missed; the
/// children unblock them), become subreaper when not PID 1, and keep inherited fds away from
/// children.
fn setup_init() -> Result<SignalSource, i32> {
    let signals = SignalSource::install().map_err(|e| {
        error!("cannot set up signal handling: {e}");
        2
    })?;
    if std::process::id() != 1 {
        match reaper::become_subreaper() {
            Ok(()) => {
                debug!("not PID 1: registered as child subreaper, orphans come back to ginit")
            }
            Err(e) => warn!(
                "not PID 1 and cannot become child subreaper ({e}): orphans will not be reaped by ginit"
            ),
        }
    }
    spawn::mark_inherited_fds_cloexec();
    Ok(signals)
}

/// Single-program mode: start PROGRAM, then reap, forward and clear until it is over.
fn run_single(opts: RunOptions) -> i32 {
    let signals = match setup_init() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut plan = match spawn::SpawnPlan::new(&opts.program, std::env::vars_os().collect()) {
        Ok(plan) => plan,
        Err(e) => {
            error!("{e}");
            return e.exit_code();
        }
    };
    plan.new_pgroup = true;
    plan.foreground = std::io::stdin().is_terminal();
    let child = match plan.spawn() {
        Ok(pid) => pid,
        Err(e) => {
            error!("{e}");
            return e.exit_code();
        }
    };
    let name = opts.program[0].to_string_lossy().into_owned();
    debug!("started {name} as pid {child}");
    event_loop::run_single(event_loop::SingleRun {
        signals,
        machine: single::Single::new(child, opts.pgroup, opts.grace),
        child,
        name,
        foreground: plan.foreground,
    })
}
