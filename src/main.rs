//! ginit: a small init and process supervisor for containers.
//!
//! cli -> mode -> run -> exit status. This is the only place that decides ginit's exit
//! status: 2 for usage errors, 127/126 when the program cannot be started, otherwise the
//! status the run reports (the program's, 128+N when a signal killed it).
#![deny(unsafe_code)]

mod cli;
mod config;
mod event_loop;
mod logger;
mod reaper;
mod signals;
mod single;
mod spawn;
mod users;

use std::io::IsTerminal;
use std::path::PathBuf;

use log::{debug, error, warn};

use crate::cli::{Command, RunOptions};

fn main() {
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
        Err(reason) => {
            eprintln!("ginit: {reason} (see `ginit --help`)");
            2
        }
    };
    std::process::exit(code);
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
    match config::load(&path, &config::SystemResolver::new()) {
        Ok(cfg) => {
            println!("{}: valid", path.display());
            print!("{}", cfg.plan());
            0
        }
        Err(errors) => {
            eprintln!("{errors}");
            let n = errors.errors.len();
            eprintln!(
                "ginit: {n} error{} in {}",
                if n == 1 { "" } else { "s" },
                path.display()
            );
            2
        }
    }
}

/// Single-program mode: start PROGRAM, then reap, forward and clear until it is over.
fn run(opts: RunOptions) -> i32 {
    logger::init(opts.verbosity);
    // Block signals before the first fork so none can be missed; the child unblocks them.
    let signals = match signals::SignalSource::install() {
        Ok(s) => s,
        Err(e) => {
            error!("cannot set up signal handling: {e}");
            return 2;
        }
    };
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
