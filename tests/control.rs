//! The control plane through the real binary as PID 1: every client command, the socket's
//! mode and peer check, a flood of bad requests that must not stall supervision, limits in
//! the child's /proc/PID/limits, and memory and CPU monitoring.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;

/// `ginit status --json` parsed just enough: (program, instance) -> (pid, state).
fn status(run: &Run) -> Vec<(String, u64, Option<i64>, String)> {
    status_instances(run)
        .iter()
        .map(|i| {
            (
                i["program"].as_str().unwrap().to_string(),
                i["instance"].as_u64().unwrap(),
                i["pid"].as_i64(),
                i["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pids(run: &Run, program: &str) -> Vec<i64> {
    status(run)
        .into_iter()
        .filter(|s| s.0 == program)
        .filter_map(|s| s.2)
        .collect()
}

#[test]
fn every_command_does_what_it_says() {
    let dir = TempDir::new("ctl-all");
    let cfg = config(
        &dir,
        r#"
programs:
  web:
    command: [HELPER, sleep]
    instances: 2
    stop: {timeout: 5s}
  hup:
    command: [HELPER, trap, --exit-on, TERM]
    reload: {strategy: signal, signal: SIGHUP}
    stdout: prefix
  once:
    command: [HELPER, exit, "0"]
    oneshot: true
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);
    assert!(wait_until(PATIENCE, || client(&run, &["ready"])
        .status
        .success()));

    // status: the table with every instance.
    let out = client(&run, &["status"]);
    let t = text(&out);
    assert!(t.starts_with("NAME"), "{t}");
    for col in [
        "INSTANCE",
        "PID",
        "STATE",
        "READY",
        "UPTIME",
        "RESTARTS",
        "CPU%",
        "RSS",
        "LAST-EXIT",
    ] {
        assert!(t.lines().next().unwrap().contains(col), "{t}");
    }
    assert_eq!(
        t.lines().filter(|l| l.starts_with("web ")).count(),
        2,
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.starts_with("once") && l.contains("done")),
        "{t}"
    );

    // restart: new pids, answered only once they run.
    let before = pids(&run, "web");
    let out = client(&run, &["restart", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("restarted web"));
    let after = pids(&run, "web");
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} {after:?}"
    );

    // reload with the signal strategy: the program hears SIGHUP and keeps its pid.
    let hup = pids(&run, "hup");
    let out = client(&run, &["reload", "hup"]);
    assert!(out.status.success(), "{}", text(&out));
    run.line("hup | got SIGHUP");
    assert_eq!(pids(&run, "hup"), hup);

    // signal: any signal to a program.
    let out = client(&run, &["signal", "USR2", "hup"]);
    assert!(out.status.success(), "{}", text(&out));
    run.line("hup | got SIGUSR2");

    // stop, then start.
    let out = client(&run, &["stop", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(pids(&run, "web").is_empty());
    assert!(
        status(&run)
            .iter()
            .filter(|s| s.0 == "web")
            .all(|s| s.3 == "stopped")
    );
    let out = client(&run, &["start", "web"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(pids(&run, "web").len(), 2);

    // Errors: unknown program, bad signal, refused at exit 1.
    let out = client(&run, &["restart", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no program named `nope`"),
        "{}",
        text(&out)
    );
    let out = client(&run, &["signal", "SIGNOPE", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not a signal"), "{}", text(&out));

    // reload-config: an invalid file changes nothing and status shows why...
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, good.replace("instances: 2", "instances: two")).unwrap();
    let out = client(&run, &["reload-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("programs.web.instances"),
        "{}",
        text(&out)
    );
    let t = text(&client(&run, &["status"]));
    assert!(
        t.contains("last config reload failed") && t.contains("programs.web.instances"),
        "{t}"
    );
    // ...and a valid one is applied as a difference, clearing the error.
    std::fs::write(&cfg, good.replace("instances: 2", "instances: 3")).unwrap();
    let out = client(&run, &["reload-config"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("1 changed"), "{}", text(&out));
    assert!(wait_until(PATIENCE, || pids(&run, "web").len() == 3));
    assert!(!text(&client(&run, &["status"])).contains("last config reload failed"));

    // shutdown: ginit stops everything and exits 0.
    let out = client(&run, &["shutdown"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(run.wait(), 0, "{}", run.stderr());
    // Nobody is listening any more: exit status 3.
    let out = client(&run, &["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("cannot connect"));
}

#[test]
fn ready_turns_false_during_the_shutdown_delay() {
    let dir = TempDir::new("ctl-ready");
    let cfg = config(
        &dir,
        r#"
programs:
  flaky:
    command: [HELPER, exit, "1"]
    backoff: {initial: 30s}
  web:
    command: [HELPER, sleep]
shutdown: {delay: 30s, timeout: 5s}
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);
    // A program waiting out its backoff (once its first run has ended) is not ready.
    assert!(wait_until(PATIENCE, || {
        let out = client(&run, &["ready"]);
        out.status.code() == Some(1) && text(&out).contains("flaky.0 is backoff")
    }));
    let out = client(&run, &["stop", "flaky"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(client(&run, &["ready"]).status.success());
    // SIGTERM: everything keeps running through the delay, but ready is false at once.
    run.signal(libc::SIGTERM);
    run.stderr_has("shutting down in 30s");
    let out = client(&run, &["ready"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("shutting down"), "{}", text(&out));
    assert_eq!(pids(&run, "web").len(), 1);
    // Control requests that would start programs are refused while shutting down.
    let out = client(&run, &["start", "flaky"]);
    assert_eq!(out.status.code(), Some(1));
    // A second SIGTERM ends it now, with SIGKILL (hence 128+9).
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 137, "{}", run.stderr());
}

#[test]
fn the_socket_is_private_and_other_users_are_refused() {
    assert!(
        is_root(),
        "this test runs a client as another uid, which needs root"
    );
    let dir = TempDir::new("ctl-perm");
    let cfg = config(&dir, "programs:\n  web:\n    command: [HELPER, sleep]\n");
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);
    let mode = std::fs::metadata(&run.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    // Even with the file opened up, the peer check refuses uid 65534.
    std::fs::set_permissions(
        run.socket.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&run.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            GINIT,
            "status",
        ])
        .env("GINIT_SOCKET", &run.socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("permission denied: uid 65534"),
        "{}",
        text(&out)
    );
    assert!(client(&run, &["status"]).status.success());
}

#[test]
fn bad_requests_never_stall_supervision() {
    let dir = TempDir::new("ctl-flood");
    let cfg = config(
        &dir,
        r#"
programs:
  ticker:
    command: ["/bin/sh", "-c", "echo x >> DIR/ticks"]
    backoff: {initial: 10ms, max: 10ms}
    max_restarts: 1000000
"#,
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);
    let ticks = || {
        std::fs::read_to_string(dir.path("ticks"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    // Stalled connections: a partial line, never finished, and one that sends nothing.
    let mut stalled = Vec::new();
    for i in 0..20 {
        let mut s = UnixStream::connect(&run.socket).unwrap();
        if i % 2 == 0 {
            s.write_all(b"{\"command\":").unwrap();
        }
        stalled.push(s);
    }
    // Malformed requests, each answered with an error on a connection that stays usable.
    for _ in 0..200 {
        let mut s = UnixStream::connect(&run.socket).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(b"\xff{not json\n{\"command\":\"status\",\"x\":1}\n{\"command\":\"status\"}\n")
            .unwrap();
        let mut got = String::new();
        let mut buf = [0u8; 4096];
        while got.matches('\n').count() < 3 {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early: {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        let lines: Vec<&str> = got.lines().collect();
        assert!(lines[0].contains("malformed request"), "{got}");
        assert!(lines[1].contains("unknown field"), "{got}");
        assert!(lines[2].starts_with("{\"ok\":true"), "{got}");
    }
    // An oversized request: an error, then the connection is closed.
    let mut s = UnixStream::connect(&run.socket).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = s.write_all(&vec![b'a'; 100 * 1024]);
    let mut got = String::new();
    let _ = s.read_to_string(&mut got);
    assert!(got.contains("request too large"), "{got}");

    // Meanwhile supervision went on, and status still answers.
    let seen = ticks();
    assert!(
        wait_until(PATIENCE, || ticks() >= seen + 10),
        "the ticker stalled"
    );
    let out = client(&run, &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ticker"));
    drop(stalled);
}

#[test]
fn a_socket_that_cannot_be_created_only_costs_the_control_commands() {
    let dir = TempDir::new("ctl-none");
    let cfg = config(
        &dir,
        "programs:\n  web:\n    command: [\"/bin/sh\", \"-c\", \"echo up; exec sleep 100\"]\n",
    );
    // /proc/ginit cannot be created, as on a read-only file system.
    let mut run = Run::start_with(Mode::Pid1, &["-c", &cfg], |cmd| {
        cmd.env("GINIT_SOCKET", "/proc/ginit/control.sock");
    });
    run.line("up");
    run.stderr_has("no control socket: cannot create /proc/ginit");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0);
}

#[test]
fn limits_reach_the_child() {
    let dir = TempDir::new("ctl-limits");
    let cfg = config(
        &dir,
        r#"
programs:
  capped:
    command: [HELPER, sleep]
    limits:
      open_files: 512
      core: 0
      address_space: 1GiB
      processes: 4000
      cpu_seconds: 3600
      file_size: 10MiB
      nice: 7
      oom_score_adj: 600
"#,
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);
    // The pid inside the namespace differs; find the helper among ginit's children.
    let mut pid = None;
    assert!(wait_until(PATIENCE, || {
        pid = children_of(run.pid)
            .into_iter()
            .find(|&p| comm(p).as_deref() == Some("ginit-test-help"));
        pid.is_some()
    }));
    let pid = pid.unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let row = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {limits}"))
            .split_whitespace()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
    };
    assert!(row("Max open files").contains(&"512"), "{limits}");
    assert!(row("Max core file size").contains(&"0"), "{limits}");
    assert!(row("Max address space").contains(&"1073741824"), "{limits}");
    assert!(row("Max processes").contains(&"4000"), "{limits}");
    assert!(row("Max cpu time").contains(&"3600"), "{limits}");
    assert!(row("Max file size").contains(&"10485760"), "{limits}");
    let nice = stat_fields(pid).unwrap()[16].clone();
    assert_eq!(nice, "7");
    let adj = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
    assert_eq!(adj.trim(), "600");
}

#[test]
fn memory_max_restarts_and_cpu_max_warns() {
    let dir = TempDir::new("ctl-monitor");
    let cfg = config(
        &dir,
        r#"
programs:
  hog:
    command: [HELPER, hog, "64"]
    ready: {delay: 10ms}  # a program with a ready check is watched as well
    memory_max: 32MiB
    backoff: {initial: 0s}
  spinner:
    command: ["/bin/sh", "-c", "while :; do :; done"]
    cpu_max: 20%
    monitor_window: 2s
"#,
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    // Reloaded (restarted) each time it passes the limit: a new process every time.
    let over = |run: &Run| {
        run.stderr()
            .matches("over its memory_max of 32768 KiB: reloading it")
            .count()
    };
    assert!(wait_until(PATIENCE, || over(&run) >= 2), "{}", run.stderr());
    assert!(run.stderr().matches("started hog (pid").count() >= 2);
    run.stderr_has("over its cpu_max of 20%");
    // The spinner was only warned about (cpu_action: warn): same process.
    let s = status(&run);
    let spinner: Vec<_> = s.iter().filter(|s| s.0 == "spinner").collect();
    assert_eq!(spinner[0].3, "running");
}

/// Kills a daemon and what it started, by pid, unless it is already gone.
struct DaemonGuard(i32);

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        if self.0 > 0 && process_exists(self.0) {
            kill_tree(self.0);
            signal(self.0, libc::SIGKILL);
        }
    }
}

#[test]
fn daemon_mode_detaches_and_serves_the_socket() {
    let dir = TempDir::new("ctl-daemon");
    let cfg = config(
        &dir,
        "programs:\n  web:\n    command: [HELPER, sleep]\nlog: {file: DIR/daemon.log}\n",
    );
    let (pidfile, socket) = (dir.path("ginit.pid"), dir.path("ctl.sock"));
    let out = Command::new(GINIT)
        .args(["--daemon", "--pidfile"])
        .arg(&pidfile)
        .arg("--socket")
        .arg(&socket)
        .args(["-c", &cfg])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("running as a daemon"), "{}", text(&out));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _guard = DaemonGuard(pid);
    // Its own session, in `/`, no longer our child.
    let stat = stat_fields(pid).unwrap();
    assert_eq!(stat[3], pid.to_string(), "session id: {stat:?}");
    assert_ne!(stat[1], std::process::id().to_string());
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        std::path::Path::new("/")
    );

    let ask = |args: &[&str]| {
        Command::new(GINIT)
            .args(args)
            .arg("--socket")
            .arg(&socket)
            .output()
            .unwrap()
    };
    // Its status once it serves: the client's own error ("is ginit running?") must not count.
    assert!(wait_until(PATIENCE, || {
        let out = ask(&["status"]);
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("running")
    }));
    let out = ask(&["shutdown"]);
    let log = || std::fs::read_to_string(dir.path("daemon.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\ndaemon.log:\n{}",
        text(&out),
        log()
    );
    assert!(wait_until(PATIENCE, || !process_exists(pid)
        || stat_fields(pid).is_none_or(|f| f[0] == "Z")));
    assert!(!pidfile.exists(), "the pid file is removed at exit");
    let log = std::fs::read_to_string(dir.path("daemon.log")).unwrap();
    assert!(
        log.contains("started web") && log.contains("shutting down"),
        "{log}"
    );
}

#[test]
fn status_watch_redraws_until_interrupted() {
    let dir = TempDir::new("ctl-watch");
    let cfg = config(
        &dir,
        "programs:\n  web:\n    command: [HELPER, sleep]\n  flaky:\n    command: [HELPER, exit, \"3\"]\n    backoff: {initial: 100ms, max: 100ms}\n",
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);

    // Not a terminal: one table after the other, each with its header; SIGINT ends it with 0.
    let mut watch = Command::new(GINIT)
        .args(["status", "--watch", "200ms"])
        .env("GINIT_SOCKET", &run.socket)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = line_channel(watch.stdout.take().unwrap());
    let (mut headers, mut restarts) = (0, Vec::new());
    let deadline = std::time::Instant::now() + PATIENCE;
    while headers < 4 && std::time::Instant::now() < deadline {
        let Ok(line) = lines.recv_timeout(PATIENCE) else {
            break;
        };
        if line == "every 200ms: ginit status" {
            headers += 1;
        }
        if line.starts_with("flaky ") {
            let cells: Vec<&str> = line.split_whitespace().collect();
            restarts.push(cells.get(6).and_then(|c| c.parse::<u32>().ok()));
        }
    }
    assert!(headers >= 4, "only {headers} tables");
    // The tables are fresh ones: the crash-looping program's restart count moves.
    assert!(
        restarts.first() != restarts.last(),
        "the same table every time: {restarts:?}"
    );
    signal(watch.id() as i32, libc::SIGINT);
    let status = watch.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");

    // A terminal: redrawn in place (cursor home, clear), and Ctrl-C ends it with 0.
    let argv = vec![
        GINIT.to_string(),
        "status".into(),
        "--watch".into(),
        "1s".into(),
    ];
    let socket = run.socket.to_str().unwrap().to_string();
    let mut pty = Pty::spawn(&argv, &[("GINIT_SOCKET", &socket)]);
    pty.expect("\x1b[H\x1b[2Jevery 1s: ginit status");
    pty.expect("web");
    pty.expect("\x1b[H\x1b[2J");
    pty.send("\x03");
    assert_eq!(pty.wait(), 0, "{}", pty.text());
}

#[test]
fn success_exit_codes_are_not_restarted_under_on_failure() {
    let dir = TempDir::new("ctl-success");
    let cfg = config(
        &dir,
        r#"
programs:
  jvm:
    command: [HELPER, exit, "143"]
    restart: on-failure
    success_exit_codes: [143]
  plain:
    command: [HELPER, exit, "143"]
    restart: on-failure
    backoff: {initial: 100ms}
"#,
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);
    // `plain` is restarted for the same status; by then `jvm` has long exited, once.
    let restarted = wait_until(PATIENCE, || {
        let out = client(&run, &["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["instances"][1]["restarts"].as_u64().unwrap_or(0) >= 3
    });
    assert!(restarted, "{}", run.stderr());
    let out = client(&run, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let jvm = &v["instances"][0];
    assert_eq!(jvm["program"], "jvm");
    assert_eq!(jvm["state"], "stopped", "{v}");
    assert_eq!(jvm["restarts"], 0, "{v}");
    assert_eq!(jvm["last_exit"], 143, "{v}");
    // An exit it counts as a success is logged as one (info, not a warning).
    run.stderr_has("info: jvm (pid ");
}

#[test]
fn a_reload_reads_the_included_files_again() {
    let dir = TempDir::new("ctl-include");
    let d = dir.path("conf.d");
    std::fs::create_dir(&d).unwrap();
    let cfg = config(
        &dir,
        "include: [DIR/conf.d/*.yaml]\nprograms:\n  web:\n    command: [HELPER, sleep]\n",
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);
    assert_eq!(pids(&run, "web").len(), 1);
    // A drop-in added by an image layer or a ConfigMap: applied by the next reload.
    std::fs::write(
        d.join("worker.yaml"),
        format!("programs:\n  worker:\n    command: [{HELPER}, sleep]\n"),
    )
    .unwrap();
    let out = client(&run, &["reload-config"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(wait_until(PATIENCE, || pids(&run, "worker").len() == 1));
    // A broken drop-in changes nothing, and the error points into it.
    std::fs::write(
        d.join("worker.yaml"),
        "programs:\n  worker: {command: [x], restart: sometimes}\n",
    )
    .unwrap();
    let out = client(&run, &["reload-config"]);
    assert!(!out.status.success());
    let want = format!(
        "{}:2:35: programs.worker.restart",
        d.join("worker.yaml").display()
    );
    assert!(text(&out).contains(&want), "{}", text(&out));
    assert_eq!(pids(&run, "worker").len(), 1);
}

#[test]
fn env_files_are_read_at_each_start_and_variables_expanded() {
    let dir = TempDir::new("ctl-envfile");
    let secret = dir.path("secret.env");
    std::fs::write(
        &secret,
        "# a Kubernetes Secret as a file\nexport TOKEN='first one'\n",
    )
    .unwrap();
    let out = dir.path("seen");
    let cfg = config(
        &dir,
        r#"
programs:
  app:
    command: [/bin/sh, -c, 'echo "$TOKEN|$URL|$$" >> ${OUT}; exec HELPER sleep']
    env_file: [DIR/secret.env, -DIR/optional.env]
    env:
      OUT: DIR/seen
      URL: "http://${HOST:-localhost}:${PORT:-8080}/"
  broken:
    command: [HELPER, sleep, "${NOT_SET}"]
    restart: never
"#,
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);
    let lines = |n: usize| {
        wait_until(PATIENCE, || {
            std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() >= n)
        })
    };
    assert!(lines(1), "{}", run.stderr());
    // The Secret changes in place; the next start sees the new value, no config reload.
    std::fs::write(&secret, "TOKEN=\"second\\tone\"\n").unwrap();
    let out_restart = client(&run, &["restart", "app"]);
    assert!(out_restart.status.success(), "{}", text(&out_restart));
    assert!(lines(2), "{}", run.stderr());
    let seen = std::fs::read_to_string(&out).unwrap();
    let seen: Vec<&str> = seen.lines().collect();
    assert_eq!(seen[0], "first one|http://localhost:8080/|$", "{seen:?}");
    assert_eq!(seen[1], "second\tone|http://localhost:8080/|$", "{seen:?}");
    // An unset variable fails that start, naming it.
    run.stderr_has("cannot start broken: ${NOT_SET} is not set");
    // A missing env file that is not optional fails the start with its path.
    std::fs::remove_file(&secret).unwrap();
    let _ = client(&run, &["restart", "app"]);
    run.stderr_has(&format!(
        "env_file {}: cannot read the env_file",
        secret.display()
    ));
}

#[test]
fn a_stop_command_stops_the_instance_and_a_hung_one_meets_the_timeout() {
    let dir = TempDir::new("ctl-stopcmd");
    let cfg = config(
        &dir,
        r#"
programs:
  nginx:
    command: [HELPER, trap, --exit-on, QUIT]
    stop: {command: [/bin/sh, -c, 'echo "quitting $GINIT_MAINPID"; kill -QUIT $GINIT_MAINPID'], timeout: 5s}
  stuck:
    command: [HELPER, sleep]
    stop: {command: [/bin/sh, -c, 'echo never; exec sleep 100'], timeout: 300ms}
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);
    let pid = pids(&run, "nginx")[0];
    // `ginit stop` runs the command (not SIGTERM, which the program ignores): SIGQUIT.
    let out = client(&run, &["stop", "nginx"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        run.line("nginx:stop |"),
        format!("nginx:stop | quitting {pid}")
    );
    run.stderr_has(&format!(
        "nginx (pid {pid}) stopped: it exited with status 0"
    ));
    // A stop command that hangs: the instance gets SIGKILL at its stop timeout, and the
    // command's own process group goes with it.
    let out = client(&run, &["stop", "stuck"]);
    assert!(out.status.success(), "{}", text(&out));
    run.stderr_has("stuck did not stop in time: sending SIGKILL");
    assert!(pids(&run, "stuck").is_empty());
    let sleepers = || {
        descendants(run.pid)
            .into_iter()
            .filter(|&p| comm(p).as_deref() == Some("sleep"))
            .count()
    };
    assert!(
        wait_until(PATIENCE, || sleepers() == 0),
        "the stop command was left running"
    );
}

#[test]
fn scheduled_runs_never_overlap_skips_are_said_and_start_runs_one_now() {
    let dir = TempDir::new("ctl-schedule");
    let cfg = config(
        &dir,
        r#"
programs:
  job:
    command: [/bin/sh, -c, 'echo start >> DIR/runs; sleep 2.5; echo end >> DIR/runs']
    every: 1s
  yearly:
    command: [/bin/sh, -c, 'echo ran >> DIR/yearly']
    schedule: "0 0 1 1 *"
"#,
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);
    let runs = || std::fs::read_to_string(dir.path("runs")).unwrap_or_default();
    // Two whole runs of 2.5 s each, due every second: the runs in between are skipped.
    let ended = wait_until(PATIENCE, || runs().matches("end").count() >= 2);
    assert!(ended, "{}\n{}", runs(), run.stderr());
    let seen = runs();
    let lines: Vec<&str> = seen.lines().collect();
    for pair in lines.windows(2) {
        assert_ne!(pair[0], pair[1], "runs overlapped: {lines:?}");
    }
    assert_eq!(lines.first(), Some(&"start"), "{lines:?}");
    run.stderr_has("is still going (2 skipped so far)");
    let stderr = run.stderr();
    assert!(
        stderr.contains("job: the run due at ")
            && stderr.contains(" is skipped: the previous run (pid "),
        "{stderr}"
    );
    // `status`: the next run in UTC, and the skips, in text and JSON.
    let instances = status_instances(&run);
    let job = instances.iter().find(|i| i["program"] == "job").unwrap();
    assert_eq!(job["schedule"], "every 1s");
    assert!(job["skipped_runs"].as_u64().unwrap() >= 2, "{job}");
    let next = job["next_run"].as_str().unwrap().to_string();
    assert!(next.len() == 20 && next.ends_with('Z'), "{next}");
    let yearly = instances.iter().find(|i| i["program"] == "yearly").unwrap();
    let year: i64 = next[..4].parse().unwrap();
    let want = [
        format!("{year}-01-01T00:00:00Z"),
        format!("{}-01-01T00:00:00Z", year + 1),
    ];
    assert!(
        want.contains(&yearly["next_run"].as_str().unwrap().to_string()),
        "{yearly}"
    );
    assert_eq!(
        yearly["ready"], true,
        "a scheduled program never holds readiness back"
    );
    let out = client(&run, &["status"]);
    let table = text(&out);
    assert!(
        table.contains("yearly: 0 0 1 1 * (UTC), next run "),
        "{table}"
    );
    assert!(table.contains("job: every 1s, next run 20"), "{table}");
    // `ginit start` runs one now; the yearly timetable goes on.
    let out = client(&run, &["start", "yearly"]);
    assert!(out.status.success(), "{}", text(&out));
    let ran = wait_until(PATIENCE, || dir.path("yearly").exists());
    assert!(ran, "{}", run.stderr());
    // `ginit stop` ends the run and pauses the timetable until the next start.
    let out = client(&run, &["stop", "job"]);
    assert!(out.status.success(), "{}", text(&out));
    run.stderr_has("job: no more scheduled runs until `ginit start job`");
    let instances = status_instances(&run);
    let job = instances.iter().find(|i| i["program"] == "job").unwrap();
    assert_eq!(job["next_run"], serde_json::Value::Null, "{job}");
    let out = client(&run, &["status"]);
    assert!(
        text(&out).contains("job: every 1s, next run none"),
        "{}",
        text(&out)
    );
}
