//! Seeing inside the container through the real binary as PID 1: `ginit logs` (the last lines
//! in order across programs, `-f` with nothing lost while the client keeps up, a stalled `-f`
//! client told what it missed while supervision goes on), `ginit events` (the snapshot, then
//! a crash loop, a config reload, a `replace` reload and a stop, in text and JSON; a stalled subscriber
//! disconnected with a last line), `logs` of an `inherit` program, and `log.timestamps`.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// A long-running client (`logs -f`, `events`): its stdout lines arrive on a channel.
struct Follower {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Follower {
    fn start(run: &Run, args: &[&str]) -> Follower {
        let mut child = Command::new(GINIT)
            .args(args)
            .env("GINIT_SOCKET", &run.socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = line_channel(child.stdout.take().unwrap());
        Follower {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `want`; returns its position among the lines seen.
    fn until(&mut self, want: &str) -> usize {
        let deadline = Instant::now() + PATIENCE;
        if let Some(i) = self.seen.iter().position(|l| l.contains(want)) {
            return i;
        }
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
            if self.seen.last().is_some_and(|l| l.contains(want)) {
                return self.seen.len() - 1;
            }
        }
        panic!("no line with {want:?}; got {:#?}", self.seen);
    }

    /// Ctrl-C: the client ends with status 0.
    fn interrupt(mut self) {
        signal(self.child.id() as i32, libc::SIGINT);
        let mut code = None;
        let ended = wait_until(PATIENCE, || {
            code = self.child.try_wait().unwrap();
            code.is_some()
        });
        assert!(ended, "the client did not end on SIGINT");
        assert_eq!(code.and_then(|c| c.code()), Some(0), "{code:?}");
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The restarts `status --json` shows for `program`'s first instance.
fn restarts(run: &Run, program: &str) -> u64 {
    let out = client(run, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["instances"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i["program"] == program))
        .and_then(|i| i["restarts"].as_u64())
        .unwrap_or(0)
}

/// A raw connection that sends `request` and then reads nothing until told to.
fn stalled(run: &Run, request: &str) -> UnixStream {
    let mut s = UnixStream::connect(&run.socket).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    s
}

/// Everything `s` holds until ginit closes it (or `limit` passes).
fn read_to_end(s: &mut UnixStream, limit: Duration) -> String {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn logs_show_the_last_lines_in_order_then_follow_with_nothing_lost() {
    let dir = TempDir::new("obs-logs");
    let cfg = config(
        &dir,
        r#"
log: {timestamps: true}
programs:
  first:
    command: ["/bin/sh", "-c", "echo f1; echo f2"]
    oneshot: true
    stdout: prefix
  second:
    command: ["/bin/sh", "-c", "echo s1; echo s2 >&2"]
    oneshot: true
    depends_on: [first]
    stdout: prefix
    stderr: {file: DIR/second.log}
  ticker:
    command: ["/bin/sh", "-c", "while [ ! -e DIR/go ]; do sleep 0.02; done; i=0; while [ $i -lt 500 ]; do echo t$i; i=$((i+1)); done; exec sleep 1000"]
    stdout: json
  quiet:
    command: [HELPER, sleep]
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    // Timestamps: at the start of prefix lines and of ginit's own lines.
    let f1 = run.line("first | f1");
    let stamp = |l: &str| {
        let b = l.as_bytes();
        l.len() > 25 && b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && &l[23..25] == "Z "
    };
    assert!(stamp(&f1), "{f1}");
    run.stderr_has("Z ginit: info: started first");
    wait_socket(&run);
    assert!(wait_until(PATIENCE, || {
        std::fs::read_to_string(dir.path("second.log")).is_ok_and(|t| t.contains("s2"))
    }));

    // The last N lines, oldest first across programs and streams (s2 went to a file).
    let out = client(&run, &["logs", "-n", "3", "first", "second"]);
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.get(25..).unwrap_or(l).to_string())
        .collect();
    assert_eq!(lines, ["first | f2", "second | s1", "second | s2"]);
    let out = client(&run, &["logs", "--json", "-n", "1", "second"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["program"].as_str(), v["stream"].as_str()),
        (Some("second"), Some("stderr"))
    );
    assert_eq!(v["line"], "s2");

    // A program whose output bypasses ginit: `logs` says so and what to set.
    let out = client(&run, &["logs", "quiet"]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out);
    assert!(
        said.contains("quiet: stdout is `inherit` and stderr `inherit`"),
        "{said}"
    );
    assert!(said.contains("set `stdout: prefix`"), "{said}");

    // -f: every line, in order, nothing lost while the client keeps up, whether it came
    // before the client (in the last 1000 lines) or after (followed).
    let mut follow = Follower::start(&run, &["logs", "-f", "--json", "-n", "1000", "ticker"]);
    std::fs::write(dir.path("go"), "").unwrap();
    follow.until("\"line\":\"t499\"");
    let numbers: Vec<u32> = follow
        .seen
        .iter()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["line"].as_str()?.strip_prefix('t')?.parse().ok()
        })
        .collect();
    assert_eq!(numbers, (0..500).collect::<Vec<_>>(), "{:?}", follow.seen);
    follow.interrupt();
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}

#[test]
fn a_stalled_logs_client_misses_lines_and_is_told_while_supervision_goes_on() {
    let dir = TempDir::new("obs-stall");
    let cfg = config(
        &dir,
        r#"
programs:
  flood:
    command: ["/bin/sh", "-c", "while [ ! -e DIR/start ]; do sleep 0.02; done; seq 1 300000; while [ ! -e DIR/go ]; do sleep 0.02; done; echo after; exec sleep 1000"]
    stdout: {file: DIR/flood.log}
  crash:
    command: [HELPER, exit, "1"]
    backoff: {initial: 50ms, max: 50ms}
    max_restarts: 1000000
    restart_window: 1s
"#,
    );
    let run = Run::start_with(Mode::Pid1, &["-c", &cfg], |c| {
        c.env("GINIT_LOG", "error");
    });
    wait_socket(&run);
    let mut stuck = stalled(
        &run,
        "{\"command\":\"logs\",\"programs\":[\"flood\"],\"follow\":true,\"lines\":0}\n",
    );
    // Once the answer is read the stream is open: then the flood starts.
    let mut answer = [0u8; 1];
    while stuck
        .read(&mut answer)
        .is_ok_and(|n| n == 1 && answer[0] != b'\n')
    {}
    std::fs::write(dir.path("start"), "").unwrap();
    let before = restarts(&run, "crash");
    assert!(
        wait_until(PATIENCE, || std::fs::read_to_string(dir.path("flood.log"))
            .is_ok_and(|t| t.contains("300000\n"))),
        "the flood never ended"
    );
    // Supervision went on while the client read nothing: `crash` kept restarting, and
    // `ready`-style requests are answered.
    assert!(
        wait_until(PATIENCE, || restarts(&run, "crash") >= before + 5),
        "crash stopped restarting: {} -> {}",
        before,
        restarts(&run, "crash")
    );
    assert!(client(&run, &["status"]).status.success());
    // Now the client reads: what was queued, then (once it has room) how much it missed,
    // then the new line.
    stuck
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = stuck.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    std::fs::write(dir.path("go"), "").unwrap();
    stuck.set_read_timeout(Some(PATIENCE)).unwrap();
    while !String::from_utf8_lossy(&got).contains("flood | after") {
        match stuck.read(&mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let got = String::from_utf8_lossy(&got).into_owned();
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], "flood | 1");
    let missed = lines
        .iter()
        .find(|l| l.starts_with("ginit: ") && l.contains("lines missed"))
        .unwrap_or_else(|| panic!("no missed-lines notice in {} lines", lines.len()));
    let n: usize = missed["ginit: ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap();
    let shown = lines.iter().filter(|l| l.starts_with("flood | ")).count();
    assert_eq!(
        shown - 1 + n,
        300000,
        "shown + missed = every line ({missed})"
    );
    assert_eq!(lines.last(), Some(&"flood | after"));
}

#[test]
fn events_show_the_snapshot_then_a_crash_loop_a_reload_and_a_stop() {
    let dir = TempDir::new("obs-events");
    let base = r#"
programs:
  web:
    command: [HELPER, sleep]
    reload: {strategy: replace}
  crash:
    command: ["/bin/sh", "-c", "while [ ! -e DIR/go ]; do sleep 0.02; done; exit 3"]
    backoff: {initial: 100ms, max: 100ms}
    max_restarts: 2
    restart_window: 1m
"#;
    let cfg = config(&dir, base);
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);
    let mut text_events = Follower::start(&run, &["events"]);
    let mut json_events = Follower::start(&run, &["events", "--json"]);
    let web = text_events.until(" web.0 state state=running pid=");
    let crash = text_events.until(" crash.0 state state=running pid=");
    assert!(web < crash && crash < 2, "{:#?}", text_events.seen);
    json_events.until("\"event\":\"state\",\"program\":\"crash\"");

    std::fs::write(dir.path("go"), "").unwrap();
    let mut at = 0;
    for want in [
        "crash.0 exited pid=",
        "crash.0 restart_scheduled delay=0.1s restarts=1",
        "crash.0 started pid=",
        "crash.0 exited pid=",
        "crash.0 restart_scheduled delay=0.1s restarts=2",
        "crash.0 started pid=",
        "crash.0 exited pid=",
        "crash.0 failed why=",
    ] {
        let i = text_events.until_after(want, at);
        at = i + 1;
    }
    assert!(
        text_events.seen[2].contains(" status=3 ran="),
        "{:#?}",
        text_events.seen
    );

    // A config reload that adds a program, then a stop.
    config(
        &dir,
        &format!("{base}  extra:\n    command: [HELPER, sleep]\n"),
    );
    let out = client(&run, &["reload-config"]);
    assert!(out.status.success(), "{}", text(&out));
    // (The new program starts as the config is applied, before the reload is published.)
    let reloaded = text_events.until_after(
        " ginit config_reloaded summary=\"config reloaded: 1 added",
        at,
    );
    let started = text_events.until_after(" extra.0 started pid=", at);
    at = reloaded.max(started) + 1;
    // A `replace` reload of web: begun, the new instance, done; the old one stops.
    assert!(client(&run, &["reload", "web"]).status.success());
    at = text_events.until_after(" web reload_begun", at) + 1;
    at = text_events.until_after(" web.0 started pid=", at) + 1;
    at = text_events.until_after(" web reload_done took=", at) + 1;
    assert!(client(&run, &["stop", "web"]).status.success());
    at = text_events.until_after(" web.0 exited pid=", at) + 1;
    text_events.until_after(" web.0 stopped", at);

    // The same story in JSON, each line an object with time and event.
    json_events.until("\"event\":\"stopped\",\"program\":\"web\"");
    for line in &json_events.seen {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
        assert!(v["event"].is_string(), "{line}");
    }
    let failed = json_events.until("\"event\":\"failed\"");
    let v: serde_json::Value = serde_json::from_str(&json_events.seen[failed]).unwrap();
    assert_eq!(
        (v["program"].as_str(), v["instance"].as_u64()),
        (Some("crash"), Some(0))
    );
    text_events.interrupt();
    json_events.interrupt();
}

#[test]
fn a_stalled_events_subscriber_is_disconnected_with_a_last_line() {
    let dir = TempDir::new("obs-evstall");
    let cfg = config(
        &dir,
        r#"
programs:
  crash:
    command: [HELPER, exit, "1"]
    backoff: {initial: 0s, max: 0s}
    max_restarts: 1000000
    restart_window: 1s
"#,
    );
    let run = Run::start_with(Mode::Pid1, &["-c", &cfg], |c| {
        c.env("GINIT_LOG", "error,ginit::control=warn");
    });
    wait_socket(&run);
    let mut stuck = stalled(&run, "{\"command\":\"events\"}\n");
    run.stderr_has("an events subscriber fell behind; disconnecting it");
    let before = restarts(&run, "crash");
    let got = read_to_end(&mut stuck, PATIENCE);
    let last = got.lines().last().unwrap_or_default();
    assert!(
        last.contains(" ginit subscriber_dropped why=\"fell behind"),
        "{last}"
    );
    assert!(got.starts_with("{\"ok\":true"));
    // Supervision never waited for it.
    assert!(wait_until(PATIENCE, || restarts(&run, "crash") > before + 100));
}

impl Follower {
    /// Waits for a line containing `want` at position `from` or later.
    fn until_after(&mut self, want: &str, from: usize) -> usize {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(i) = self.seen.iter().skip(from).position(|l| l.contains(want)) {
                return from + i;
            }
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line with {want:?} after {from}; got {:#?}", self.seen),
            }
        }
    }
}
