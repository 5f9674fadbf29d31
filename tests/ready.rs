//! Readiness through the real binary as PID 1: sd_notify READY=1 on NOTIFY_SOCKET (from the
//! program's own process tree only), TCP checks, delays, the ready timeout, and dependents
//! that wait for readiness.

mod common;

use common::*;

fn ginit_status(run: &Run) -> String {
    String::from_utf8_lossy(&client(run, &["status"]).stdout).into_owned()
}

fn state_of(run: &Run, program: &str) -> Option<String> {
    ginit_status(run)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(program))
        .and_then(|l| l.split_whitespace().nth(3).map(String::from))
}

#[test]
fn notify_ready_gates_dependents_and_forged_senders_are_ignored() {
    let dir = TempDir::new("ready-notify");
    let cfg = config(
        &dir,
        r#"
programs:
  web:
    command: [HELPER, notify-ready, "400"]
    ready: {notify: true, timeout: 20s}
    stdout: prefix
  after:
    command: ["/bin/sh", "-c", "echo after; exec sleep 100"]
    depends_on: [web]
    stdout: prefix
  never:
    command: [HELPER, sleep]
    ready: {notify: true, timeout: 20s}
  forger:
    # Finds ginit's notify socket in /proc/net/unix and sends READY=1 from its own pid.
    command: ["/bin/sh", "-c", "sleep 0.2; NOTIFY_SOCKET=$(grep -o '@ginit-notify-[^ ]*' /proc/net/unix | head -n 1) exec HELPER notify-ready 0"]
    stdout: prefix
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-v", "-c", &cfg]);
    // `never` is starting; a READY=1 from outside its process tree (this test) is ignored.
    assert!(wait_until(PATIENCE, || state_of(&run, "never").as_deref()
        == Some("starting")));
    let never = descendants(run.pid)
        .into_iter()
        .find(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.ends_with("sleep\0"))
        })
        .unwrap();
    let environ = std::fs::read(format!("/proc/{never}/environ")).unwrap();
    let notify = environ
        .split(|&b| b == 0)
        .find_map(|e| e.strip_prefix(b"NOTIFY_SOCKET=@"))
        .expect("NOTIFY_SOCKET in the program's environment")
        .to_vec();
    use std::os::linux::net::SocketAddrExt;
    let to = std::os::unix::net::SocketAddr::from_abstract_name(&notify).unwrap();
    let forger = std::os::unix::net::UnixDatagram::unbound().unwrap();
    forger.send_to_addr(b"READY=1", &to).unwrap();
    run.stderr_has("ignoring a message from pid");
    // A program of the same namespace, but not `never`'s tree, cannot make it ready either.
    run.line("forger | notified");
    run.stderr_has("forger (pid"); // its STATUS= arrived, so its READY=1 did too

    // web becomes ready by its own message, and only then `after` starts.
    run.line("web | notified");
    run.line("after | after");
    run.stderr_has("started after"); // stderr is read by its own thread: wait for it
    let err = run.stderr();
    let ready = err.find("web is ready").expect("web is ready");
    let after = err.find("started after").expect("after started");
    assert!(ready < after, "{err}");
    assert!(
        err.contains("web (pid") && err.contains("warmed up"),
        "{err}"
    );
    assert_eq!(state_of(&run, "web").as_deref(), Some("ready"));
    assert_eq!(state_of(&run, "never").as_deref(), Some("starting"));
    // One instance not ready: ginit is not ready.
    assert_eq!(client(&run, &["ready"]).status.code(), Some(1));
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}

#[test]
fn tcp_and_delay_checks_and_the_timeout() {
    let dir = TempDir::new("ready-tcp");
    let port = free_port();
    let cfg = config(
        &dir,
        &format!(
            r#"
programs:
  slowbind:
    command: ["/bin/sh", "-c", "sleep 0.5; exec HELPER listen {port}"]
    ready: {{tcp: "127.0.0.1:{port}", timeout: 20s}}
  delayed:
    command: [HELPER, sleep]
    ready: {{delay: 300ms}}
  stuck:
    command: [HELPER, sleep]
    ready: {{notify: true, timeout: 500ms}}
    backoff: {{initial: 10s}}
"#
        ),
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    run.stderr_has("slowbind is ready");
    run.stderr_has("delayed is ready");
    run.stderr_has("stuck was not ready within 500ms: killing it");
    run.stderr_has("stuck (pid");
    run.stderr_has("stuck will restart in 10s");
    assert_eq!(state_of(&run, "slowbind").as_deref(), Some("ready"));
    assert_eq!(state_of(&run, "stuck").as_deref(), Some("backoff"));
}

#[test]
fn http_and_exec_checks_health_and_the_watchdog() {
    let dir = TempDir::new("ready-health");
    let port = free_port();
    std::fs::write(dir.path("healthy"), "").unwrap();
    let cfg = config(
        &dir,
        &format!(
            r#"
programs:
  site:
    command: ["/bin/sh", "-c", "sleep 0.3; exec HELPER http {port} DIR/healthy"]
    ready: {{http: "http://127.0.0.1:{port}/ready", timeout: 20s}}
    health: {{http: "http://127.0.0.1:{port}/health", interval: 100ms, timeout: 1s, failures: 2}}
    backoff: {{initial: 0s}}
  gate:
    command: [HELPER, sleep]
    ready: {{exec: ["/bin/sh", "-c", "test -e DIR/open"], timeout: 20s}}
  slowcheck:
    command: [HELPER, sleep]
    health: {{exec: [sleep, "5"], interval: 100ms, timeout: 100ms, failures: 3}}
  dog:
    command: [HELPER, watchdog, "3", "100"]
    watchdog: 600ms
    stdout: prefix
"#
        ),
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    run.stderr_has("site is ready");
    assert_eq!(state_of(&run, "gate").as_deref(), Some("starting"));
    std::fs::write(dir.path("open"), "").unwrap();
    run.stderr_has("gate is ready");

    // The health check fails twice in a row: the instance is restarted.
    let before = ginit_status(&run);
    std::fs::remove_file(dir.path("healthy")).unwrap();
    run.stderr_has("site (pid");
    run.stderr_has("failed its health check 2 times in a row: reloading it");
    std::fs::write(dir.path("healthy"), "").unwrap();
    assert!(wait_until(PATIENCE, || state_of(&run, "site").as_deref()
        == Some("ready")));
    let pid_of = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("site "))
            .and_then(|l| l.split_whitespace().nth(2).map(String::from))
    };
    assert_ne!(pid_of(&before), pid_of(&ginit_status(&run)));

    // An exec check that outlives its timeout is killed, counted as a failure, and tried
    // again at the next interval.
    run.stderr_has("slowcheck (pid");
    run.stderr_has("failed its health check 3 times in a row: reloading it");

    // The watchdog: three pings, then silence, then a restart.
    run.line("dog | watchdog silent");
    run.stderr_has("sent no WATCHDOG=1 for 600ms: reloading it");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}

#[test]
fn a_log_line_gates_dependents() {
    let dir = TempDir::new("ready-log");
    let cfg = config(
        &dir,
        r#"
programs:
  db:
    # Says it is ready only once the file exists; before that, other lines.
    command: [/bin/sh, -c, 'echo starting up; while [ ! -e DIR/go ]; do sleep 0.05; done; echo "LOG:  database system is ready to accept connections" >&2; exec HELPER sleep']
    ready: {log: "ready to accept connections", timeout: 30s}
    stdout: prefix
    stderr: prefix
  app:
    command: [/bin/sh, -c, 'echo app up; exec HELPER sleep']
    depends_on: [db]
    stdout: prefix
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    run.line("db | starting up");
    assert!(wait_until(PATIENCE, || state_of(&run, "db").as_deref()
        == Some("starting")));
    assert_eq!(
        state_of(&run, "app").as_deref(),
        Some("stopped"),
        "app waits for db"
    );
    std::fs::write(dir.path("go"), "").unwrap();
    run.line("app | app up");
    assert_eq!(state_of(&run, "db").as_deref(), Some("ready"));
    run.stderr_has("db is ready");
}

#[test]
fn check_addresses_take_variables_from_the_program_environment() {
    let dir = TempDir::new("ready-vars");
    let port = free_port();
    let cfg = config(
        &dir,
        &format!(
            r#"
programs:
  server:
    command: [HELPER, listen, "${{PORT}}"]
    env: {{PORT: "{port}"}}
    ready: {{tcp: "127.0.0.1:${{PORT}}", timeout: 20s}}
  broken:
    command: [HELPER, sleep]
    ready: {{http: "http://127.0.0.1:${{NO_SUCH_PORT}}/", timeout: 1s}}
"#
        ),
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    assert!(
        wait_until(PATIENCE, || state_of(&run, "server").as_deref()
            == Some("ready")),
        "{}",
        run.stderr()
    );
    run.stderr_has("check of broken: ${NO_SUCH_PORT} is not set");
}
