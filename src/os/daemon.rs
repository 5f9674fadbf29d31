//! `--daemon`: detaching ginit from the terminal and the caller, as a classic daemon does
//! (outside containers, as PM2 users expect).
//!
//! A fork whose two sides both return to `main`: the parent with the exit status it must end
//! with, the child (the daemon) to go on supervising. Nothing here exits: `main.rs` alone
//! decides ginit's exit status. It does not know what the daemon will run.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use super::sys;

/// Which side of the fork returned, and what it must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Detached {
    /// This process is the daemon, set up: go on.
    Daemon,
    /// This process must exit with this status now, without running anything: the caller
    /// once the daemon reported (0, or 1 with the reason printed), or a daemon that failed to
    /// set itself up (its reason went to the caller through the pipe).
    Exit(i32),
}

/// Forks; the parent waits until the child says it is set up (new session, `/` as its
/// directory, umask 022, stdio on /dev/null or `log_file`, pid file written) and then returns
/// `Exit(0)`, or `Exit(1)` with the child's reason printed. The child returns `Daemon`, or
/// `Exit(1)` when its set-up failed. Call before any other child exists and before the signal
/// fd is created, so the daemon is the one that owns it. Err: the fork itself failed.
pub fn daemonize(pidfile: Option<&Path>, log_file: Option<&Path>) -> Result<Detached, String> {
    let (mut reader, mut writer) = io::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    // ginit is single-threaded here, so the child is a faithful copy that may go on running
    // Rust code; it continues as the daemon.
    let pid = sys::fork().map_err(|e| format!("cannot fork: {e}"))?;
    if pid > 0 {
        drop(writer);
        let mut answer = String::new();
        let _ = reader.read_to_string(&mut answer);
        return Ok(Detached::Exit(match answer.strip_prefix("ok ") {
            Some(pid) => {
                println!("ginit: running as a daemon, pid {pid}");
                0
            }
            None if answer.is_empty() => {
                eprintln!("ginit: the daemon died while starting");
                1
            }
            None => {
                eprintln!("ginit: {answer}");
                1
            }
        }));
    }
    drop(reader);
    let result = set_up(pidfile, log_file);
    let message = match &result {
        Ok(()) => format!("ok {}", std::process::id()),
        Err(e) => e.clone(),
    };
    let _ = writer.write_all(message.as_bytes());
    drop(writer);
    Ok(match result {
        Ok(()) => Detached::Daemon,
        Err(_) => Detached::Exit(1),
    })
}

/// The daemon's side: a session of its own, `/`, umask 022, stdio moved, the pid file.
fn set_up(pidfile: Option<&Path>, log_file: Option<&Path>) -> Result<(), String> {
    sys::setsid().map_err(|e| format!("setsid: {e}"))?;
    sys::umask(0o022);
    std::env::set_current_dir("/").map_err(|e| format!("cannot change to /: {e}"))?;
    let out = match log_file {
        Some(path) => std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?,
        None => std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| format!("cannot open /dev/null: {e}"))?,
    };
    let null =
        std::fs::File::open("/dev/null").map_err(|e| format!("cannot open /dev/null: {e}"))?;
    // dup2 clears close-on-exec on 0-2, so the programs inherit them as their stdio.
    for (from, to) in [(&null, 0), (&out, 1), (&out, 2)] {
        sys::dup2(from.as_raw_fd(), to).map_err(|e| format!("cannot move fd {to}: {e}"))?;
    }
    if let Some(path) = pidfile {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write the pid file {}: {e}", path.display()))?;
    }
    Ok(())
}
