//! `on_exit` / `on_failed` hooks through the real binary as PID 1: the variables a hook sees
//! for a crash, a give-up, a requested stop, a oneshot and a shutdown; a hook that hangs is
//! killed at `hook_timeout` while supervision goes on; hook output is prefixed `NAME:hook`;
//! a crash loop faster than its hook runs one hook at a time and counts the skipped ones; a
//! critical program's `on_failed` runs before ginit exits with its status.

mod common;

use common::*;
use std::path::Path;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A hook that appends one line of what it was told (and where it ran) to DIR/FILE.
fn record(file: &str) -> String {
    format!(
        r#"["/bin/sh", "-c", "echo \"$GINIT_PROGRAM $GINIT_INSTANCE status=${{GINIT_EXIT_STATUS:-}} signal=${{GINIT_EXIT_SIGNAL:-}} restarts=$GINIT_RESTARTS next=$GINIT_NEXT app=${{APP:-}} cwd=$(pwd)\" >> DIR/{file}"]"#
    )
}

/// Waits until `path` holds `n` lines, and returns them.
fn lines(path: &Path, n: usize) -> Vec<String> {
    let ok = wait_until(PATIENCE, || read(path).lines().count() >= n);
    assert!(ok, "{}: {:?}", path.display(), read(path));
    read(path).lines().map(String::from).collect()
}

#[test]
fn a_hook_sees_a_crash_a_give_up_a_stop_a_oneshot_and_a_shutdown() {
    let dir = TempDir::new("hooks-env");
    let d = dir.0.to_str().unwrap().to_string();
    let exit_hook = record("exit.log");
    let failed_hook = record("failed.log");
    let cfg = config(
        &dir,
        &format!(
            r#"
programs:
  crash:
    command: ["/bin/sh", "-c", "exit 3"]
    env: {{APP: crashy}}
    cwd: DIR
    backoff: {{initial: 500ms}}
    max_restarts: 1
    on_exit: {exit_hook}
    on_failed: {failed_hook}
  svc:
    command: [HELPER, sleep]
    on_exit: {svc}
  job:
    command: [HELPER, exit, "0"]
    oneshot: true
    on_exit: {job}
  last:
    command: [HELPER, sleep]
    on_exit: ["/bin/sh", "-c", "exec >/dev/null 2>&1; sleep 0.5; echo \"$GINIT_PROGRAM signal=$GINIT_EXIT_SIGNAL next=$GINIT_NEXT\" >> DIR/last.log"]
"#,
            svc = record("svc.log"),
            job = record("job.log"),
        ),
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);

    // A crash restarts; the second one gives up: on_exit says so, then on_failed runs.
    let exits = lines(&dir.path("exit.log"), 2);
    assert_eq!(
        exits,
        [
            format!("crash 0 status=3 signal= restarts=1 next=restart app=crashy cwd={d}"),
            format!("crash 0 status=3 signal= restarts=1 next=failed app=crashy cwd={d}"),
        ]
    );
    let failed = lines(&dir.path("failed.log"), 1);
    assert_eq!(
        failed,
        [format!(
            "crash 0 status=3 signal= restarts=1 next=failed app=crashy cwd={d}"
        )]
    );
    assert!(
        !run.stderr().contains("hook exited with status"),
        "{}",
        run.stderr()
    );

    // A oneshot that exits 0 is done.
    let job = lines(&dir.path("job.log"), 1);
    assert!(
        job[0].starts_with("job 0 status=0 signal= restarts=0 next=done"),
        "{job:?}"
    );

    // A requested stop: stopped, by its stop signal.
    let out = client(&run, &["stop", "svc"]);
    assert!(out.status.success(), "{}", text(&out));
    let svc = lines(&dir.path("svc.log"), 1);
    assert!(
        svc[0].starts_with("svc 0 status= signal=SIGTERM restarts=0 next=stopped"),
        "{svc:?}"
    );

    // A shutdown runs the hooks of what it stops and waits for them (this one takes half a
    // second, with its output closed so that ginit's last copy of output does not wait for
    // it instead) before it clears the namespace and exits.
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
    assert_eq!(
        read(&dir.path("last.log")),
        "last signal=SIGTERM next=stopped\n"
    );
    // Nothing ran twice: exactly the exits above.
    assert_eq!(read(&dir.path("exit.log")).lines().count(), 2);
    assert_eq!(read(&dir.path("failed.log")).lines().count(), 1);
}

#[test]
fn a_hook_that_hangs_is_killed_at_its_timeout_while_supervision_goes_on() {
    let dir = TempDir::new("hooks-hang");
    let cfg = config(
        &dir,
        r#"
programs:
  loop:
    command: ["/bin/sh", "-c", "echo run >> DIR/runs; exit 1"]
    backoff: {initial: 100ms, max: 100ms}
    max_restarts: 1000
    hook_timeout: 1s
    on_exit: ["/bin/sh", "-c", "echo hook >> DIR/hooks; exec sleep 1000"]
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    let runs = dir.path("runs");
    let hooks = dir.path("hooks");
    // The first hook hangs; restarts keep their pace meanwhile (a 100 ms backoff: well
    // more than 3 runs before the hook's second is up).
    lines(&hooks, 1);
    assert!(wait_until(PATIENCE, || read(&runs).lines().count() >= 4));
    assert_eq!(
        read(&hooks).lines().count(),
        1,
        "a second hook ran beside the first"
    );
    run.stderr_has("loop: its on_exit hook ran past its hook_timeout: killing it");
    run.stderr_has("loop: its on_exit hook was killed by SIGKILL");
    // The next exit runs the next hook, and says how many were skipped meanwhile.
    lines(&hooks, 2);
    run.stderr_has("skipped while the last one ran)");
    run.signal(libc::SIGTERM);
    // The hook running at the shutdown is waited for up to its timeout, then killed; the
    // exit status is the shutdown's own.
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}

#[test]
fn hook_output_is_prefixed_with_the_program_name() {
    let dir = TempDir::new("hooks-out");
    let cfg = config(
        &dir,
        r#"
programs:
  web:
    command: [HELPER, exit, "2"]
    restart: never
    on_exit: ["/bin/sh", "-c", "echo hello from the hook; echo oops >&2"]
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    run.line("web:hook | hello from the hook");
    run.stderr_has("web:hook | oops");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}

#[test]
fn a_crash_loop_faster_than_its_hook_runs_one_hook_at_a_time() {
    let dir = TempDir::new("hooks-fast");
    let cfg = config(
        &dir,
        r#"
programs:
  fast:
    command: ["/bin/sh", "-c", "echo run >> DIR/runs; exit 1"]
    backoff: {initial: 10ms, max: 10ms}
    max_restarts: 1000000
    on_exit: ["/bin/sh", "-c", "echo start >> DIR/hooks; sleep 0.3; echo end >> DIR/hooks"]
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    let hooks = dir.path("hooks");
    // Four hooks have run to their end.
    let ok = wait_until(PATIENCE, || read(&hooks).matches("end").count() >= 4);
    assert!(ok, "{}", read(&hooks));
    run.stderr_has("skipped while the last one ran)");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
    // Never two at once: every start is followed by its end before the next start.
    let text = read(&hooks);
    let seq: Vec<&str> = text.lines().collect();
    for pair in seq.chunks(2) {
        assert_eq!(pair, ["start", "end"], "{seq:?}");
    }
    // Far fewer hooks than exits: the rest were skipped, not queued.
    let runs = read(&dir.path("runs")).lines().count();
    assert!(
        runs > 2 * seq.len(),
        "{runs} runs, {} hook lines",
        seq.len()
    );
}

#[test]
fn a_critical_program_s_on_failed_runs_before_ginit_exits_with_its_status() {
    let dir = TempDir::new("hooks-critical");
    let cfg = config(
        &dir,
        r#"
programs:
  core:
    command: [HELPER, exit, "4"]
    critical: true
    restart: never
    on_failed: ["/bin/sh", "-c", "exec >/dev/null 2>&1; sleep 0.5; echo \"failed $GINIT_EXIT_STATUS $GINIT_NEXT\" > DIR/failed"]
  side:
    command: [HELPER, sleep]
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    assert_eq!(run.wait(), 4, "{}", run.stderr());
    assert_eq!(read(&dir.path("failed")), "failed 4 failed\n");
}

#[test]
fn a_hook_whose_command_is_missing_is_refused_by_validation() {
    let dir = TempDir::new("hooks-check");
    let cfg = config(
        &dir,
        r#"
programs:
  web:
    command: [HELPER, sleep]
    on_exit: /nonexistent/notify
    hook_timeout: 2h
"#,
    );
    let out = std::process::Command::new(GINIT)
        .args(["check", "-c", &cfg])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("programs.web.on_exit: cannot run `/nonexistent/notify`"),
        "{t}"
    );
    assert!(
        t.contains("programs.web.hook_timeout: must be from 100ms to 1h, found `2h`"),
        "{t}"
    );
}
