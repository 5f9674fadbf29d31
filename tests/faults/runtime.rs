//! Faults of the running supervisor (issue 10): what an exited instance leaves in its process
//! group, programs stopped with SIGSTOP, reloads that verdicts ask for and the restart
//! accounting, the exit status of a forced shutdown, and health checks during a `replace`.
//! See tests/faults.rs for the matrix as a whole.

use crate::common::*;
use std::process::{Child, Command, Output, Stdio};

/// `ginit ARGS` as a client of `run`, given until `limit` to answer; `None` if it did not
/// (it is killed then: a test never leaves a client hanging).
fn client_within(run: &Run, args: &[&str], limit: std::time::Duration) -> Option<Output> {
    let mut child = Command::new(GINIT)
        .args(args)
        .env("GINIT_SOCKET", &run.socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if wait_until(limit, || matches!(child.try_wait(), Ok(Some(_)))) {
        return Some(child.wait_with_output().unwrap());
    }
    signal(child.id() as i32, libc::SIGKILL);
    let _ = child.wait();
    None
}

/// A client left running while the test goes on (killed by pid if still there at the end).
struct Background(Option<Child>);

impl Background {
    fn start(run: &Run, args: &[&str]) -> Background {
        let child = Command::new(GINIT)
            .args(args)
            .env("GINIT_SOCKET", &run.socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Background(Some(child))
    }

    /// Waits for it to end and returns its output.
    fn output(mut self) -> Output {
        let mut child = self.0.take().unwrap();
        let ended = wait_until(PATIENCE, || matches!(child.try_wait(), Ok(Some(_))));
        if !ended {
            signal(child.id() as i32, libc::SIGKILL);
        }
        let out = child.wait_with_output().unwrap();
        assert!(ended, "the client never answered: {out:?}");
        out
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            signal(child.id() as i32, libc::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Processes under `run` (its namespace) whose command line is exactly `argv`, zombies not
/// counted.
fn count(run: &Run, argv: &[&str]) -> usize {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    descendants(run.pid)
        .into_iter()
        .filter(|&pid| stat_fields(pid).is_some_and(|f| f[0] != "Z"))
        .filter(|&pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .count()
}

/// (state, restarts) of instance 0 of `program`, from `ginit status --json`.
fn state(run: &Run, program: &str) -> Option<(String, u64)> {
    let out = client(run, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["instances"].as_array()?.iter().find_map(|i| {
        (i["program"].as_str()? == program).then(|| {
            (
                i["state"].as_str().unwrap_or("").to_string(),
                i["restarts"].as_u64().unwrap_or(0),
            )
        })
    })
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[test]
fn restarts_leave_nothing_running_in_the_old_process_groups() {
    let dir = TempDir::new("fault-pgroup");
    let cfg = config(
        &dir,
        r#"
programs:
  leaky:
    # Each run leaves a sleep behind in its process group, holding its output pipe.
    command: ["/bin/sh", "-c", "echo x >> DIR/leaky; sleep 1000 & exit 1"]
    backoff: {initial: 0s, max: 0s}
    max_restarts: 1000000
    restart_window: 1s
  stubborn:
    # ...and here one that ignores SIGTERM: SIGKILL at the stop timeout.
    command: ["/bin/sh", "-c", "echo x >> DIR/stubborn; trap '' TERM; sleep 1001 & exit 1"]
    backoff: {initial: 200ms, max: 200ms}
    max_restarts: 1000000
    restart_window: 1s
    stop: {timeout: 300ms}
"#,
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    assert!(
        wait_until(PATIENCE, || lines(&dir.path("leaky")) >= 40),
        "leaky never restarted 40 times: {}",
        run.stderr()
    );
    // Without the sweep there would be one sleep per run by now.
    let left = count(&run, &["sleep", "1000"]);
    assert!(left <= 5, "{left} sleeps left behind by 40 runs");
    assert!(wait_until(PATIENCE, || lines(&dir.path("stubborn")) >= 5));
    run.stderr_has("left processes in its process group: sent them SIGTERM");
    run.stderr_has("what stubborn left in its process group did not stop in time: sent SIGKILL");
    // Stopped: nothing of either is left once the stop timeout has passed.
    let out = client(&run, &["stop", "leaky", "stubborn"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        wait_until(PATIENCE, || count(&run, &["sleep", "1000"]) == 0
            && count(&run, &["sleep", "1001"]) == 0),
        "left behind: {} and {}",
        count(&run, &["sleep", "1000"]),
        count(&run, &["sleep", "1001"])
    );
}

#[test]
fn a_user_stop_ends_with_sigkill_for_what_ignored_the_stop_signal() {
    let dir = TempDir::new("fault-stop-group");
    let cfg = config(
        &dir,
        r#"
programs:
  web:
    # The leader exits on SIGTERM at once; its child ignores it.
    command: ["/bin/sh", "-c", "(trap '' TERM; exec sleep 1002) & echo up >> DIR/log; wait"]
    stop: {timeout: 500ms}
"#,
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    assert!(wait_until(PATIENCE, || lines(&dir.path("log")) == 1
        && count(&run, &["sleep", "1002"]) == 1));
    let out = client(&run, &["stop", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        wait_until(PATIENCE, || count(&run, &["sleep", "1002"]) == 0),
        "the child that ignored SIGTERM outlived the stop: {}",
        run.stderr()
    );
    run.stderr_has("what web left in its process group did not stop in time: sent SIGKILL");
}

#[test]
fn a_program_stopped_with_sigstop_is_continued_and_stops_at_once() {
    let dir = TempDir::new("fault-sigstop");
    let cfg = config(
        &dir,
        r#"
programs:
  paused:
    command: [HELPER, sleep]
    stop: {timeout: 1h}
  frozen:
    command: [HELPER, sleep, frozen]
    stop: {timeout: 1h}
shutdown: {timeout: 1h}
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    let find = |last: &str| {
        let mut pid = None;
        let found = wait_until(PATIENCE, || {
            pid = descendants(run.pid).into_iter().find(|&p| {
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.ends_with(format!("{last}\0").as_bytes()))
            });
            pid.is_some()
        });
        assert!(found, "no process ending in {last}");
        pid.unwrap()
    };
    let (paused, frozen) = (find("sleep"), find("frozen"));
    for pid in [paused, frozen] {
        signal(pid, libc::SIGSTOP);
        assert!(wait_until(PATIENCE, || stat_fields(pid).is_some_and(|f| f[0] == "T")));
    }
    // A stop does not wait an hour for SIGKILL: SIGCONT follows SIGTERM.
    let out = client_within(&run, &["stop", "paused"], PATIENCE)
        .expect("`ginit stop` of a stopped process waited for its stop timeout");
    assert!(out.status.success(), "{}", text(&out));
    // Nor does the shutdown.
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}

#[test]
fn memory_max_reloads_count_as_restarts_and_give_up_at_max_restarts() {
    let dir = TempDir::new("fault-memory");
    let cfg = config(
        &dir,
        r#"
programs:
  hog:
    command: [HELPER, hog, "64"]
    memory_max: 16MiB
    max_restarts: 2
    restart_window: 1h
    backoff: {initial: 100ms}
"#,
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    let failed = wait_until(PATIENCE, || {
        state(&run, "hog").is_some_and(|(s, _)| s == "failed")
    });
    assert!(
        failed,
        "never given up; status {:?}; stderr: {}",
        state(&run, "hog"),
        run.stderr()
    );
    assert_eq!(state(&run, "hog").map(|s| s.1), Some(2), "RESTARTS");
    run.stderr_has("over its memory_max of 16384 KiB: reloading it (restart 1");
    run.stderr_has("(restart 2, in 200ms)");
    run.stderr_has("restarted 2 times in 1h already: giving up, stopping it");
    run.stderr_has("hog failed: more than 2 restarts in 1h; giving up");
}

/// A program that catches SIGTERM and goes on; `stop` and `shutdown` as given.
fn stubborn(dir: &TempDir, stop: &str, shutdown: &str) -> String {
    config(
        dir,
        &format!(
            "programs:\n  stubborn:\n    command: [HELPER, trap]\n    stdout: prefix\n    stop: {{timeout: {stop}}}\n  quick:\n    command: [HELPER, sleep]\nshutdown: {{timeout: {shutdown}}}\n"
        ),
    )
}

#[test]
fn a_forced_shutdown_says_what_it_killed_and_exits_137() {
    // A stop timeout during the shutdown.
    let dir = TempDir::new("fault-forced-stop");
    let cfg = stubborn(&dir, "300ms", "1h");
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    run.line("stubborn | ready");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 137, "{}", run.stderr());
    let err = run.stderr();
    assert!(
        err.contains("the shutdown had to SIGKILL stubborn (its stop timeout); exit status 137"),
        "{err}"
    );

    // shutdown.timeout.
    let dir = TempDir::new("fault-forced-timeout");
    let cfg = stubborn(&dir, "1h", "500ms");
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    run.line("stubborn | ready");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 137, "{}", run.stderr());
    let err = run.stderr();
    assert!(
        err.contains("shutdown.timeout of 500ms reached: killing what is still running"),
        "{err}"
    );
    assert!(
        err.contains("the shutdown had to SIGKILL stubborn (shutdown.timeout of 500ms reached)"),
        "{err}"
    );

    // A second SIGTERM: no timeout was reached, and the log does not say one was.
    let dir = TempDir::new("fault-forced-second");
    let cfg = stubborn(&dir, "1h", "1h");
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    run.line("stubborn | ready");
    run.signal(libc::SIGTERM);
    run.stderr_has("shutting down");
    run.line("stubborn | got SIGTERM");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 137, "{}", run.stderr());
    let err = run.stderr();
    assert!(
        err.contains("a second shutdown request: killing what is still running"),
        "{err}"
    );
    assert!(
        err.contains("the shutdown had to SIGKILL stubborn (a second shutdown request)"),
        "{err}"
    );
    assert!(!err.contains("timeout reached"), "{err}");

    // Everything stopped in time: 0, as before.
    let dir = TempDir::new("fault-forced-none");
    let cfg = config(&dir, "programs:\n  quick:\n    command: [HELPER, sleep]\n");
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    run.stderr_has("started quick");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
    assert!(!run.stderr().contains("had to SIGKILL"), "{}", run.stderr());
}

#[test]
fn health_checks_are_suspended_while_a_replace_runs() {
    let dir = TempDir::new("fault-health-replace");
    let port = free_port();
    std::fs::write(dir.path("go"), "").unwrap();
    let cfg = config(
        &dir,
        &format!(
            r#"
sockets:
  web: {{listen: "tcp://127.0.0.1:{port}"}}
programs:
  web:
    command: [HELPER, serve-http, DIR/sick]
    sockets: [web]
    ready: {{exec: ["/bin/sh", "-c", "echo x >> DIR/attempts; test -e DIR/go"], timeout: 1h}}
    health: {{http: "http://127.0.0.1:{port}/health", interval: 100ms, timeout: 1s, failures: 2}}
"#
        ),
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    run.stderr_has("web is ready");
    // The new instance will not be ready until `go` is back; meanwhile both the old and the
    // new one answer /health with 503.
    std::fs::remove_file(dir.path("go")).unwrap();
    std::fs::write(dir.path("sick"), "").unwrap();
    let before = lines(&dir.path("attempts"));
    let reload = Background::start(&run, &["reload", "web"]);
    // 15 readiness attempts, 100 ms apart: time enough for many health intervals of 100 ms.
    assert!(wait_until(PATIENCE, || lines(&dir.path("attempts")) >= before + 15));
    std::fs::write(dir.path("go"), "").unwrap();
    let out = reload.output();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("replaced web"), "{}", text(&out));
    let err = run.stderr();
    assert!(
        !err.contains("health check"),
        "a health check ran during the replace: {err}"
    );
    assert_eq!(state(&run, "web").map(|s| s.1), Some(0), "RESTARTS");
    // Afterwards the checks resume, with a fresh count: the new instance is sick too.
    run.stderr_has("failed its health check 2 times in a row: reloading it (restart 1");
    std::fs::remove_file(dir.path("sick")).unwrap();
}
