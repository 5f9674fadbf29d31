//! Supervisor mode (`ginit -c CONFIG [-- PROGRAM]`) through the real binary as PID 1 of a
//! fresh PID namespace: start order, restarts, critical programs, ordered shutdown, live
//! reload, and bad configs.

mod common;

use common::*;
use std::path::Path;

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Waits until the file has at least `n` lines.
fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let ok = wait_until(PATIENCE, || lines(path).len() >= n);
    assert!(
        ok,
        "{} never had {n} lines: {:?}",
        path.display(),
        lines(path)
    );
    lines(path)
}

#[test]
fn programs_start_in_dependency_order_after_oneshots() {
    let dir = TempDir::new("order");
    let cfg = config(
        &dir,
        r#"
programs:
  web:
    command: ["/bin/sh", "-c", "echo web.$GINIT_INSTANCE >> DIR/log; exec sleep 100"]
    depends_on: [migrate, cache]
    instances: 2
  migrate:
    command: ["/bin/sh", "-c", "echo migrate-start >> DIR/log; sleep 0.3; echo migrate-end >> DIR/log"]
    oneshot: true
  cache:
    command: ["/bin/sh", "-c", "echo cache >> DIR/log; exec sleep 100"]
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    let log = wait_lines(&dir.path("log"), 5);
    let pos = |name: &str| {
        log.iter()
            .position(|l| l == name)
            .unwrap_or_else(|| panic!("{name} in {log:?}"))
    };
    assert!(pos("migrate-end") < pos("web.0"), "{log:?}");
    assert!(pos("migrate-end") < pos("web.1"), "{log:?}");
    assert!(pos("cache") < pos("web.0"), "{log:?}");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}

#[test]
fn shutdown_stops_dependents_first_and_exits_0() {
    let dir = TempDir::new("shutdown");
    let stopper = |name: &str| {
        format!(
            r#"["/bin/sh", "-c", "trap 'echo {name}-stopping >> DIR/log; sleep 0.2; echo {name}-stopped >> DIR/log; exit 0' TERM; echo {name}-up >> DIR/log; while :; do sleep 0.05; done"]"#
        )
    };
    let cfg = config(
        &dir,
        &format!(
            "programs:\n  db:\n    command: {}\n  web:\n    command: {}\n    depends_on: [db]\n",
            stopper("db"),
            stopper("web")
        ),
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_lines(&dir.path("log"), 2);
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
    let log = lines(&dir.path("log"));
    let pos = |name: &str| {
        log.iter()
            .position(|l| l == name)
            .unwrap_or_else(|| panic!("{name} in {log:?}"))
    };
    assert!(
        pos("web-stopped") < pos("db-stopping"),
        "db stopped before web was down: {log:?}"
    );
}

/// A program that ignores SIGTERM, with the given stop timeout.
fn stubborn(timeout: &str) -> String {
    format!(
        "programs:\n  stubborn:\n    command: [\"/bin/sh\", \"-c\", \"trap '' TERM; echo up >> DIR/log; while :; do sleep 0.05; done\"]\n    stop: {{timeout: {timeout}}}\n"
    )
}

#[test]
fn a_program_that_ignores_its_stop_signal_is_killed_at_the_timeout() {
    let dir = TempDir::new("stubborn");
    let cfg = config(&dir, &stubborn("200ms"));
    let mut run = Run::start(Mode::Pid1, &["-v", "-c", &cfg]);
    wait_lines(&dir.path("log"), 1);
    run.signal(libc::SIGTERM);
    // It had to be killed: 128+SIGKILL, as Docker reports its own timeout.
    assert_eq!(run.wait(), 137);
    assert!(
        run.stderr()
            .contains("did not stop in time: sending SIGKILL"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_second_sigterm_skips_the_stop_timeout() {
    let dir = TempDir::new("second");
    let cfg = config(&dir, &stubborn("1h"));
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_lines(&dir.path("log"), 1);
    run.signal(libc::SIGTERM);
    run.stderr_has("shutting down");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 137, "SIGKILLed by the second request");
}

#[test]
fn a_critical_program_that_fails_ends_the_run_with_its_status() {
    let dir = TempDir::new("critical");
    let cfg = config(
        &dir,
        r#"
programs:
  key:
    command: ["/bin/sh", "-c", "exit 7"]
    critical: true
    max_restarts: 2
    backoff: {initial: 10ms}
  side:
    command: ["/bin/sh", "-c", "trap 'echo side-stopped >> DIR/log; exit 0' TERM; while :; do sleep 0.05; done"]
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    assert_eq!(run.wait(), 7, "{}", run.stderr());
    assert!(run.stderr().contains("giving up"), "{}", run.stderr());
    assert_eq!(lines(&dir.path("log")), ["side-stopped"]);
}

#[test]
fn a_program_after_dashes_is_main_and_its_status_is_ginits() {
    let dir = TempDir::new("main");
    let cfg = config(
        &dir,
        r#"
programs:
  side:
    command: ["/bin/sh", "-c", "trap 'echo side-stopped >> DIR/log; exit 0' TERM; echo side-up >> DIR/log; while :; do sleep 0.05; done"]
"#,
    );
    let mut run = Run::start(
        Mode::Pid1,
        &[
            "-c",
            &cfg,
            "--",
            "/bin/sh",
            "-c",
            "while [ ! -s DIR/log ]; do sleep 0.05; done; exit 5"
                .replace("DIR", dir.0.to_str().unwrap())
                .as_str(),
        ],
    );
    assert_eq!(run.wait(), 5, "{}", run.stderr());
    assert_eq!(lines(&dir.path("log")), ["side-up", "side-stopped"]);
    // A PROGRAM that does not exist is refused before anything starts.
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg, "--", "/no/such/main"]);
    assert_eq!(run.wait(), 127);
    assert!(run.stderr().contains("/no/such/main"), "{}", run.stderr());
}

#[test]
fn an_invalid_config_starts_nothing_and_exits_2() {
    let dir = TempDir::new("invalid");
    let cfg = config(
        &dir,
        "programs:\n  a:\n    command: [\"/bin/sh\", \"-c\", \"echo ran >> DIR/log\"]\n    restart: sometimes\n",
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    assert_eq!(run.wait(), 2);
    assert!(
        run.stderr()
            .contains("programs.a.restart: unknown value `sometimes`"),
        "{}",
        run.stderr()
    );
    assert!(!dir.path("log").exists());
}

#[test]
fn sighup_reloads_the_config_as_a_difference() {
    let dir = TempDir::new("reload");
    let program = |name: &str, tag: &str| {
        format!(
            "  {name}:\n    command: [\"/bin/sh\", \"-c\", \"echo $$$$ {tag} >> DIR/{name}.pids; exec sleep 100\"]\n"
        )
    };
    let cfg = config(
        &dir,
        &format!(
            "programs:\n{}{}{}",
            program("keep", "v1"),
            program("change", "v1"),
            program("drop", "v1")
        ),
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    for name in ["keep", "change", "drop"] {
        wait_lines(&dir.path(&format!("{name}.pids")), 1);
    }
    // An invalid file changes nothing.
    config(
        &dir,
        "programs:\n  keep: {command: [\"/bin/true\"], restart: bogus}\n",
    );
    run.signal(libc::SIGHUP);
    run.stderr_has("the new config is invalid; nothing changed");
    run.stderr_has("programs.keep.restart");
    // A valid one: keep untouched, change restarted, drop stopped, add started.
    config(
        &dir,
        &format!(
            "programs:\n{}{}{}",
            program("keep", "v1"),
            program("change", "v2"),
            program("add", "v1")
        ),
    );
    run.signal(libc::SIGHUP);
    let add = wait_lines(&dir.path("add.pids"), 1);
    let change = wait_lines(&dir.path("change.pids"), 2);
    assert!(change[1].ends_with("v2"), "{change:?}");
    assert_ne!(change[0].split(' ').next(), change[1].split(' ').next());
    run.stderr_has("1 added, 1 removed, 1 changed, 1 unchanged");
    run.stderr_has("drop (pid");
    assert_eq!(lines(&dir.path("keep.pids")).len(), 1, "keep was restarted");
    assert_eq!(add.len(), 1);
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}

#[test]
fn an_executable_gone_or_broken_at_start_is_reported_and_retried() {
    let dir = TempDir::new("exec-gone");
    std::fs::copy(HELPER, dir.path("tool")).unwrap();
    // Executable bits but no valid format: found at start, refused by execve in the child,
    // reported through the exec pipe read from the poll loop.
    std::fs::write(dir.path("broken"), b"\x00\x01\x02\x03").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path("broken"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = config(
        &dir,
        r#"
programs:
  prep:
    command: ["/bin/rm", "DIR/tool"]
    oneshot: true
  tool:
    command: [DIR/tool, sleep]
    depends_on: [prep]
    backoff: {initial: 5s}
  broken:
    command: [DIR/broken]
    backoff: {initial: 5s}
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    run.stderr_has("cannot start tool: cannot run `");
    run.stderr_has("/tool`: no such file or directory");
    run.stderr_has("tool will restart in 5s");
    run.stderr_has("cannot start broken: cannot run `");
    run.stderr_has("broken (pid");
    run.stderr_has("exited with status 126");
    run.stderr_has("broken will restart in 5s");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}
