//! Output pipes, log files and the control socket under faults (issue 10, items 6, 7, 10):
//! restarts while nobody reads ginit's stdout must not leak pipes, a log file that cannot be
//! written must not cost a ginit line per program line, and idle connections must not lock
//! `ginit ready` out. See tests/faults.rs.

use crate::common::*;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Stdio;

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn rss_kib(pid: i32) -> u64 {
    status_field(pid, "VmRSS")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn lines_in(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[test]
fn restarts_while_stdout_is_blocked_leak_no_pipes() {
    let dir = TempDir::new("io-leak");
    // Each run writes one 16,000-byte line and exits at once: the pending buffer reaches its
    // cap after some 70 runs, so hundreds of runs also exercise dropping.
    let cfg = config(
        &dir,
        r#"
programs:
  crasher:
    command: ["/bin/sh", "-c", "echo x >> DIR/ticks; exec HELPER print 0123456789 1600"]
    stdout: prefix
    backoff: {initial: 0s, max: 0s}
    max_restarts: 1000000
    restart_window: 1s
"#,
    );
    // ginit's stdout is a pipe this test holds open but does not read (yet).
    let (reader, writer) = std::io::pipe().unwrap();
    let mut run = Run::start_with(Mode::Pid1, &["-c", &cfg], |cmd| {
        cmd.stdout(Stdio::from(writer));
    });
    let ticks = dir.path("ticks");
    // Past the point where ginit's stdout and its buffer are full.
    assert!(
        wait_until(PATIENCE, || lines_in(&ticks) >= 30),
        "{}",
        run.stderr()
    );
    let (fds_before, rss_before) = (fd_count(run.pid), rss_kib(run.pid));
    let target = lines_in(&ticks) + 300;
    assert!(
        wait_until(PATIENCE * 3, || lines_in(&ticks) >= target),
        "ginit stalled after {} restarts; stderr: {}",
        lines_in(&ticks),
        run.stderr()
    );
    let (fds_after, rss_after) = (fd_count(run.pid), rss_kib(run.pid));
    assert!(
        fds_after <= fds_before + 4,
        "fds grew from {fds_before} to {fds_after} over 300 restarts"
    );
    // The pending buffer is capped (1 MiB per stream), so memory stays flat too.
    assert!(
        rss_after <= rss_before + 8 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    // Reading again: the lines flow, and ginit says once how many it had to drop.
    let rx = line_channel(reader);
    let flowed = wait_until(PATIENCE, || {
        rx.try_iter().any(|l| l.starts_with("crasher | 0123456789"))
    });
    assert!(flowed, "no program line on stdout");
    run.stderr_has("lines of program output were dropped");
    // One line for many lost ones (about 200 here), not one per line.
    let stderr = run.stderr();
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("lines of program output were dropped"))
        .collect();
    let first: u64 = notes[0]
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or(0);
    assert!(first >= 10 && notes.len() <= 5, "{notes:?}");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}

/// ginit's own lines (not program lines) on stderr that mention `what`.
fn ginit_lines_about(run: &Run, what: &str) -> Vec<String> {
    run.stderr()
        .lines()
        .filter(|l| l.starts_with("ginit: ") && l.contains(what))
        .map(String::from)
        .collect()
}

#[test]
fn an_unwritable_log_file_is_reported_once_not_per_line() {
    let dir = TempDir::new("io-full");
    let cfg = config(
        &dir,
        r#"
programs:
  filler:
    command: ["seq", "1", "10000"]
    restart: never
    stdout: {file: /dev/full}
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    // Every line still reaches ginit's stderr, prefixed.
    run.stderr_has("filler | 10000\n");
    let about = ginit_lines_about(&run, "/dev/full");
    assert!(
        !about.is_empty() && about.len() <= 5,
        "{} ginit lines about /dev/full, e.g. {:?}",
        about.len(),
        &about[..about.len().min(5)]
    );
    let program_lines = run
        .stderr()
        .lines()
        .filter(|l| l.starts_with("filler | "))
        .count();
    assert_eq!(program_lines, 10_000);
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}

#[test]
fn a_log_file_that_works_again_is_said_once_with_a_count() {
    let dir = TempDir::new("io-back");
    // The log file's path is a directory at first: every open fails (EISDIR).
    let log = dir.path("app.log");
    std::fs::create_dir(&log).unwrap();
    let cfg = config(
        &dir,
        r#"
programs:
  ticker:
    command: ["/bin/sh", "-c", "while :; do echo tick; sleep 0.02; done"]
    stdout: {file: DIR/app.log}
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    run.stderr_has("cannot open");
    let diverted = || run.stderr().matches("ticker | tick").count();
    assert!(
        wait_until(PATIENCE, || diverted() >= 100),
        "{}",
        run.stderr()
    );
    std::fs::remove_dir(&log).unwrap();
    // Retried at most once a second, on a line: the file is found writable again.
    assert!(
        wait_until(PATIENCE, || lines_in(&log) >= 3),
        "{}",
        run.stderr()
    );
    run.stderr_has("lines went to ginit's stderr meanwhile");
    let about = ginit_lines_about(&run, "app.log");
    assert!(about.len() <= 3, "{about:?}");
    let back = about.iter().find(|l| l.contains("writing to")).unwrap();
    let count: u64 = back
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or(0);
    assert!(count >= 100, "{back}");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}

#[test]
fn idle_connections_never_lock_out_ready_and_status() {
    let dir = TempDir::new("io-conns");
    let cfg = config(
        &dir,
        r#"
programs:
  steady:
    command: [HELPER, sleep]
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    assert!(
        wait_until(PATIENCE, || client(&run, &["ready"]).status.success()),
        "{}",
        run.stderr()
    );
    // A leaking sidecar: 200 connections, each used once (so none is older than the stall
    // timeout) and then kept open without a word.
    let mut held = Vec::new();
    for _ in 0..200 {
        let Ok(mut s) = UnixStream::connect(&run.socket) else {
            continue;
        };
        let _ = s.write_all(b"{\"command\":\"status\"}\n");
        held.push(s);
    }
    assert!(held.len() >= 150, "only {} connections", held.len());
    let ready = client(&run, &["ready"]);
    assert!(
        ready.status.success(),
        "ready: {}{}",
        String::from_utf8_lossy(&ready.stdout),
        String::from_utf8_lossy(&ready.stderr)
    );
    let status = client(&run, &["status"]);
    assert!(
        status.status.success() && String::from_utf8_lossy(&status.stdout).contains("steady"),
        "status: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    // Memory stays bounded: ginit does not keep all 200.
    assert!(fd_count(run.pid) < 100, "{} fds", fd_count(run.pid));
    // Supervision goes on: a restart is carried out and answered.
    let restart = client(&run, &["restart", "steady"]);
    assert!(
        restart.status.success(),
        "{}",
        String::from_utf8_lossy(&restart.stderr)
    );
    drop(held);
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}

#[test]
fn running_out_of_fds_never_locks_out_ready_either() {
    let dir = TempDir::new("io-nofds");
    let cfg = config(
        &dir,
        r#"
programs:
  steady:
    command: [HELPER, sleep]
"#,
    );
    // A small fd limit, so idle connections use up every fd ginit has long before the
    // connection table is full: accept then fails with EMFILE.
    let mut run = Run::start_with(Mode::Pid1, &["-c", &cfg], |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 24,
                    rlim_max: 24,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    assert!(
        wait_until(PATIENCE, || client(&run, &["ready"]).status.success()),
        "{}",
        run.stderr()
    );
    let mut held = Vec::new();
    for _ in 0..40 {
        let Ok(mut s) = UnixStream::connect(&run.socket) else {
            continue;
        };
        let _ = s.write_all(b"{\"command\":\"status\"}\n");
        held.push(s);
    }
    let ready = client(&run, &["ready"]);
    assert!(
        ready.status.success(),
        "ready: {}{}",
        String::from_utf8_lossy(&ready.stdout),
        String::from_utf8_lossy(&ready.stderr)
    );
    // No storm of failed accepts either.
    let complaints = run.stderr().matches("cannot accept").count();
    assert!(complaints <= 3, "{complaints} complaints: {}", run.stderr());
    drop(held);
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}
