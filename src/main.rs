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

use std::io::IsTerminal;

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
        Err(reason) => {
            eprintln!("ginit: {reason} (see `ginit --help`)");
            2
        }
    };
    std::process::exit(code);
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
