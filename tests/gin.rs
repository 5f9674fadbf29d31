//! Zero downtime, end to end: the Gin example of docker/app (built from Debian's Go packages
//! by docker/app/build.sh) served through ginit as PID 1, under steady load from HTTP/1.1
//! keep-alive clients in this test, through reloads, a rollback, a SIGKILL and a rolling
//! reload of three instances. Every error is counted by kind; the expectation is none.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The Gin app, built once per test run into target/ (Go's cache in target/go-cache).
fn gin_app() -> PathBuf {
    static APP: OnceLock<PathBuf> = OnceLock::new();
    APP.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = root.join("target/gin-app");
        let status = Command::new(root.join("docker/app/build.sh"))
            .arg(&out)
            .env("GOCACHE", root.join("target/go-cache"))
            .status()
            .expect("docker/app/build.sh (needs golang-go and the Gin and go-systemd packages)");
        assert!(status.success(), "building the Gin app failed");
        out
    })
    .clone()
}

/// What went wrong with one request, by kind.
#[derive(Debug, Clone, PartialEq)]
enum Failure {
    Refused,
    Reset,
    /// The connection ended before a whole response.
    Eof,
    Status(u32),
    Other(String),
}

struct Response {
    body: String,
    /// The server said `Connection: close`.
    close: bool,
}

/// One HTTP/1.1 request on `stream` (kept alive unless the server closes).
fn request(stream: &mut BufReader<TcpStream>, path: &str) -> Result<Response, Failure> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => Failure::Reset,
        std::io::ErrorKind::UnexpectedEof => Failure::Eof,
        _ => Failure::Other(e.to_string()),
    };
    write!(
        stream.get_mut(),
        "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"
    )
    .map_err(io)?;
    let mut line = String::new();
    if stream.read_line(&mut line).map_err(io)? == 0 {
        return Err(Failure::Eof);
    }
    let status: u32 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Failure::Other(format!("bad status line {line:?}")))?;
    let (mut length, mut close) = (0usize, false);
    loop {
        line.clear();
        if stream.read_line(&mut line).map_err(io)? == 0 {
            return Err(Failure::Eof);
        }
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if l == "connection: close" {
            close = true;
        }
    }
    let mut body = vec![0; length];
    std::io::Read::read_exact(stream, &mut body).map_err(io)?;
    if status != 200 {
        return Err(Failure::Status(status));
    }
    Ok(Response {
        body: String::from_utf8_lossy(&body).into_owned(),
        close,
    })
}

fn connect(port: u16) -> Result<BufReader<TcpStream>, Failure> {
    let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Failure::Refused,
        _ => Failure::Other(e.to_string()),
    })?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    Ok(BufReader::new(s))
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failures: Vec<Failure>,
    pids: std::collections::BTreeSet<String>,
}

/// Keep-alive clients hitting `path` until `stop`; each reconnects when the server closes.
fn load(
    port: u16,
    path: &'static str,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Tally>> {
    (0..clients)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut t = Tally::default();
                let mut conn: Option<BufReader<TcpStream>> = None;
                while !stop.load(Ordering::SeqCst) {
                    let c = match conn.take() {
                        Some(c) => c,
                        None => match connect(port) {
                            Ok(c) => c,
                            Err(f) => {
                                t.failures.push(f);
                                continue;
                            }
                        },
                    };
                    let mut c = c;
                    match request(&mut c, path) {
                        Ok(r) => {
                            t.ok += 1;
                            if let Some(pid) = r.body.split_whitespace().last() {
                                t.pids.insert(pid.to_string());
                            }
                            if !r.close {
                                conn = Some(c);
                            }
                        }
                        Err(f) => t.failures.push(f),
                    }
                }
                t
            })
        })
        .collect()
}

fn collect(handles: Vec<std::thread::JoinHandle<Tally>>) -> Tally {
    let mut all = Tally::default();
    for h in handles {
        let t = h.join().unwrap();
        all.ok += t.ok;
        all.failures.extend(t.failures);
        all.pids.extend(t.pids);
    }
    all
}

fn start(dir: &TempDir, port: u16, instances: u32, command: &str) -> Run {
    start_with(dir, port, instances, command, "")
}

/// [`start`], with `extra` lines added to the program (indented by four spaces).
fn start_with(dir: &TempDir, port: u16, instances: u32, command: &str, extra: &str) -> Run {
    let cfg = config(
        dir,
        &format!(
            r#"
sockets:
  http: {{listen: "tcp://127.0.0.1:{port}", backlog: 1024}}
programs:
  web:
    command: {command}
    sockets: [http]
    instances: {instances}
    ready: {{notify: true, timeout: 5s}}
    stop: {{timeout: 20s}}
    backoff: {{initial: 300ms}}
{extra}"#
        ),
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    assert!(
        wait_until(PATIENCE, || client(&run, &["ready"]).status.success()),
        "{}",
        run.stderr()
    );
    run
}

#[test]
fn ten_reloads_under_load_fail_no_request() {
    let app = gin_app();
    let dir = TempDir::new("gin-reloads");
    let port = free_port();
    let mut run = start(&dir, port, 1, &format!("[{}]", app.display()));
    let stop = Arc::new(AtomicBool::new(false));
    let fast = load(port, "/", 8, stop.clone());
    let slow = load(port, "/slow?ms=700", 4, stop.clone());
    for i in 0..10 {
        let out = client(&run, &["reload", "web"]);
        assert!(
            out.status.success(),
            "reload {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::thread::sleep(Duration::from_millis(200)); // let the last instance serve a little
    stop.store(true, Ordering::SeqCst);
    let fast = collect(fast);
    let slow = collect(slow);
    assert!(
        fast.failures.is_empty(),
        "{} ok, failures {:?}",
        fast.ok,
        fast.failures
    );
    assert!(
        slow.failures.is_empty(),
        "{} ok, failures {:?}",
        slow.ok,
        slow.failures
    );
    assert!(fast.ok > 100 && slow.ok > 4, "{} / {}", fast.ok, slow.ok);
    assert!(
        fast.pids.len() >= 5,
        "the serving pid changes: {:?}",
        fast.pids
    );
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}

#[test]
fn a_build_that_never_gets_ready_is_rolled_back_without_a_failed_request() {
    let app = gin_app();
    let dir = TempDir::new("gin-rollback");
    std::fs::write(dir.path("which"), app.to_str().unwrap()).unwrap();
    let port = free_port();
    let run = start(
        &dir,
        port,
        1,
        r#"["/bin/sh", "-c", "exec $(cat DIR/which)"]"#,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let handles = load(port, "/", 6, stop.clone());
    // The "new build" runs but never says READY=1.
    std::fs::write(dir.path("which"), "sleep 100").unwrap();
    let t = Instant::now();
    let reload = reload_in_background(&run);
    // While the new instance is on trial, a start or restart of the program is refused
    // (it would revive the instance being replaced).
    assert!(wait_until(PATIENCE, || {
        String::from_utf8_lossy(&client(&run, &["status"]).stdout).contains("starting")
    }));
    let busy = client(&run, &["restart", "web"]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&busy.stderr).contains("a reload of web is under way"));
    let out = reload.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("before it was ready; the old one keeps serving"),
        "{err}"
    );
    assert!(
        t.elapsed() >= Duration::from_secs(5),
        "waited for ready.timeout"
    );
    stop.store(true, Ordering::SeqCst);
    let tally = collect(handles);
    assert!(tally.failures.is_empty(), "{:?}", tally.failures);
    assert_eq!(
        tally.pids.len(),
        1,
        "the old instance served throughout: {:?}",
        tally.pids
    );
    run.stderr_has("was not ready within 5s: killing it");
}

#[test]
fn connections_made_while_the_app_is_down_wait_in_the_backlog() {
    let app = gin_app();
    let dir = TempDir::new("gin-kill");
    let port = free_port();
    let run = start(&dir, port, 1, &format!("[{}]", app.display()));
    let first = request(&mut connect(port).unwrap(), "/").unwrap().body;
    let pid = descendants(run.pid)
        .into_iter()
        .find(|&p| comm(p).as_deref() == Some("gin-app"))
        .unwrap();
    signal(pid, libc::SIGKILL);
    // While ginit waits out the 300ms backoff and the new instance starts, connections are
    // accepted by the kernel into the backlog: none is refused, every one is answered.
    let results: Vec<Result<Response, Failure>> = (0..20)
        .map(|_| connect(port).and_then(|mut c| request(&mut c, "/")))
        .collect();
    for r in &results {
        let body = &r.as_ref().expect("answered").body;
        assert_ne!(body, &first, "served by the new instance");
    }
    assert!(
        run.stderr().contains("web will restart in 300ms"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_rolling_reload_keeps_three_instances_ready() {
    let app = gin_app();
    let dir = TempDir::new("gin-rolling");
    let port = free_port();
    let run = start(&dir, port, 3, &format!("[{}]", app.display()));
    let ready_count = |run: &Run| -> usize {
        let out = client(run, &["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["instances"]
            .as_array()
            .map(|a| a.iter().filter(|i| i["state"] == "ready").count())
            .unwrap_or(0)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let handles = load(port, "/", 6, stop.clone());
    let before: Vec<i64> = pids(&run);
    // Watch capacity while the reload runs.
    let low = Arc::new(Mutex::new(usize::MAX));
    let reload = reload_in_background(&run);
    while !reload.is_finished() {
        let n = ready_count(&run);
        let mut l = low.lock().unwrap();
        *l = (*l).min(n);
    }
    let out = reload.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop.store(true, Ordering::SeqCst);
    let tally = collect(handles);
    assert!(tally.failures.is_empty(), "{:?}", tally.failures);
    assert!(
        *low.lock().unwrap() >= 3,
        "capacity fell to {}",
        low.lock().unwrap()
    );
    let after = pids(&run);
    assert_eq!(after.len(), 3);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} -> {after:?}"
    );
}

#[test]
fn a_new_binary_dropped_in_place_is_a_zero_downtime_replace() {
    let app = gin_app();
    let dir = TempDir::new("gin-watch");
    std::fs::create_dir(dir.path("bin")).unwrap();
    let server = dir.path("bin/server");
    std::fs::copy(&app, &server).unwrap();
    let port = free_port();
    let watch = "    watch: {paths: [DIR/bin/server], debounce: 300ms}\n";
    let run = start_with(&dir, port, 1, "[DIR/bin/server]", watch);
    let old = pids(&run);
    let stop = Arc::new(AtomicBool::new(false));
    let handles = load(port, "/", 6, stop.clone());
    // A build tool's install: the new binary written beside, then renamed over the old one
    // (a copy over a running binary is refused with ETXTBSY).
    let staged = dir.path("bin/.server.new");
    std::fs::copy(&app, &staged).unwrap();
    std::fs::rename(&staged, &server).unwrap();
    let replaced = wait_until(PATIENCE, || {
        let now = pids(&run);
        now.len() == 1 && now != old && client(&run, &["ready"]).status.success()
    });
    assert!(replaced, "{}", run.stderr());
    run.stderr_has(&format!("web: {} changed: reloading it", server.display()));
    std::thread::sleep(Duration::from_millis(200)); // let the new instance serve a little
    stop.store(true, Ordering::SeqCst);
    let tally = collect(handles);
    assert!(
        tally.failures.is_empty(),
        "{} ok, failures {:?}",
        tally.ok,
        tally.failures
    );
    assert_eq!(
        tally.pids.len(),
        2,
        "the old pid, then the new: {:?}",
        tally.pids
    );
    // One reload for one install: the staged name is no change to `bin/server`.
    assert_eq!(
        run.stderr().matches("changed: reloading it").count(),
        1,
        "{}",
        run.stderr()
    );
}

/// `ginit reload web` in a thread of its own, for a test that watches meanwhile.
fn reload_in_background(run: &Run) -> std::thread::JoinHandle<std::process::Output> {
    let socket = run.socket.clone();
    std::thread::spawn(move || {
        Command::new(GINIT)
            .args(["reload", "web"])
            .env("GINIT_SOCKET", socket)
            .output()
            .unwrap()
    })
}

fn pids(run: &Run) -> Vec<i64> {
    status_instances(run)
        .iter()
        .filter_map(|i| i["pid"].as_i64())
        .collect()
}

#[test]
fn the_go_runtime_gets_its_share_of_the_container() {
    let app = gin_app();
    let dir = TempDir::new("gin-runtime");
    let port = free_port();
    let cfg = config(
        &dir,
        &format!(
            r#"
sockets:
  http: {{listen: "tcp://127.0.0.1:{port}"}}
programs:
  web:
    command: [{app}]
    sockets: [http]
    instances: 2
    memory_max: 100MiB
    ready: {{notify: true, timeout: 10s}}
    stdout: prefix
  pinned:
    command: [/bin/sh, -c, 'echo "pinned GOMAXPROCS=$GOMAXPROCS GOMEMLIMIT=$GOMEMLIMIT"; exec HELPER sleep']
    env: {{GOMAXPROCS: "7"}}
    memory_max: 10MiB
    stdout: prefix
  cpu:
    command: [/bin/sh, -c, 'echo "cpu GOMAXPROCS=$GOMAXPROCS"; exec HELPER sleep']
    cpu_max: 250%
    stdout: prefix
  off:
    command: [/bin/sh, -c, 'echo "off GOMAXPROCS=$GOMAXPROCS."; exec HELPER sleep']
    runtime_env: false
    stdout: prefix
"#,
            app = app.display()
        ),
    );
    // The container's CPU quota: one CPU, written where cgroup v2 keeps it, on a tmpfs of
    // this test's own mount namespace (no switch in the binary: ginit reads the real path).
    let script = format!(
        "mount -t tmpfs cgroup /sys/fs/cgroup && printf '100000 100000\\n' > /sys/fs/cgroup/cpu.max \
         && {GINIT} check -c {cfg} > {check} && exec {GINIT} -c {cfg}",
        check = dir.path("check.out").display()
    );
    let mut argv = unshare_prefix();
    argv.extend(["--mount-proc".into(), "/bin/sh".into(), "-c".into(), script]);
    let mut run = Run::command(&argv, "ginit", |_| {});
    // One CPU for two instances: one P each; 90% of 100 MiB.
    run.line("web.0 | runtime: GOMAXPROCS=1 GOMEMLIMIT=94371840");
    run.line("web.1 | runtime: GOMAXPROCS=1 GOMEMLIMIT=94371840");
    // The program's own GOMAXPROCS wins; cpu_max 250% is 3 cores; runtime_env: false, none.
    assert_eq!(
        run.line("pinned |"),
        "pinned | pinned GOMAXPROCS=7 GOMEMLIMIT=9437184"
    );
    assert_eq!(run.line("cpu |"), "cpu | cpu GOMAXPROCS=3");
    assert_eq!(run.line("off |"), "off | off GOMAXPROCS=.");
    let check = std::fs::read_to_string(dir.path("check.out")).unwrap();
    assert!(
        check.contains("GOMAXPROCS=1 (CPU quota 1 over 2 instances)"),
        "{check}"
    );
    assert!(
        check.contains("GOMEMLIMIT=94371840 (90% of memory_max)"),
        "{check}"
    );
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}
