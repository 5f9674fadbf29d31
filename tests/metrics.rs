//! The metrics endpoint through the real binary as PID 1 of a fresh PID namespace: a real
//! Prometheus server (Debian's `prometheus`, installed by tests/deps.sh) scrapes it while a
//! program crash-loops, `promtool` checks the exposition and the README's alert rule, values
//! agree with `ginit status`, other paths get 404, and oversized, silent and piled-up
//! clients are cut off while supervision goes on. Loopback only; every wait has a deadline;
//! every process started here is killed by pid (Prometheus by a guard, also on panic).

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

/// One HTTP/1.1 request on a new loopback connection: (status code, body). Panics on a
/// connection that does not answer within 10 s.
fn http(port: u16, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("an answer within 10 s");
    let text = String::from_utf8_lossy(&got).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (code, body.to_string())
}

fn get(port: u16, path: &str) -> (u16, String) {
    http(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes(),
    )
}

/// The exposition, once the endpoint answers.
fn scrape(port: u16) -> String {
    let (code, body) = get(port, "/metrics");
    assert_eq!(code, 200, "{body}");
    body
}

/// The value of the series written exactly `series` (`name{labels}`) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Waits (at most 15 s) until the endpoint closes `s` without sending anything.
fn assert_cut_off(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(n) => panic!("a client was sent {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => panic!("a client was not cut off within 15 s: {e}"),
    }
}

/// Waits until the endpoint on `port` answers a scrape.
fn wait_endpoint(run: &Run, port: u16) {
    let ok = wait_until(PATIENCE, || TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(ok, "the metrics endpoint never listened: {}", run.stderr());
}

/// `ginit status --json`: each instance's (program, state, restarts).
fn status(run: &Run) -> Vec<(String, String, u64)> {
    status_instances(run)
        .iter()
        .map(|i| {
            (
                i["program"].as_str().unwrap().to_string(),
                i["state"].as_str().unwrap().to_string(),
                i["restarts"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// A Prometheus server this test started: killed by pid when dropped, also on panic.
struct Prometheus {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus on loopback, scraping `target` (host:port) every second as job
    /// `ginit`, its storage in a temporary directory.
    fn start(target: &str) -> Prometheus {
        assert!(
            std::path::Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing (Debian package prometheus; tests/deps.sh installs it)"
        );
        let dir = TempDir::new("prometheus");
        let config = dir.path("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: ginit\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path("prometheus.log")).unwrap();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, port, dir }
    }

    /// The value of an instant query's first series, if it has one yet.
    fn query(&self, promql_encoded: &str) -> Option<f64> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let request = format!(
            "GET /api/v1/query?query={promql_encoded} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        );
        s.write_all(request.as_bytes()).ok()?;
        let mut got = String::new();
        s.read_to_string(&mut got).ok()?;
        let (_, body) = got.split_once("\r\n\r\n")?;
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_ginit_while_a_program_crash_loops() {
    let dir = TempDir::new("metrics-prom");
    let port = free_port();
    let cfg = config(
        &dir,
        &format!(
            r#"
metrics: {{listen: "tcp://127.0.0.1:{port}"}}
programs:
  crash:
    command: [HELPER, exit, "1"]
    backoff: {{initial: 200ms, max: 500ms}}
    max_restarts: 10000
  web:
    command: [HELPER, sleep]
"#
        ),
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_endpoint(&run, port);
    let prometheus = Prometheus::start(&format!("127.0.0.1:{port}"));
    // Prometheus takes a few seconds to start and scrape; the counter rises with each crash.
    let mut restarts = None;
    let risen = wait_until(Duration::from_secs(60), || {
        restarts = prometheus.query("ginit_program_restarts_total%7Bprogram%3D%22crash%22%7D");
        restarts.is_some_and(|r| r > 2.0)
    });
    assert!(
        risen,
        "Prometheus never saw ginit_program_restarts_total rise past 2 (last {restarts:?}); \
         prometheus log:\n{}\nginit: {}",
        prometheus.log(),
        run.stderr()
    );
    let up = prometheus.query("up%7Bjob%3D%22ginit%22%7D");
    assert_eq!(up, Some(1.0), "{}", prometheus.log());
    let web_up = prometheus.query("ginit_program_up%7Bprogram%3D%22web%22%7D");
    assert_eq!(web_up, Some(1.0));
}

#[test]
fn promtool_accepts_the_exposition_and_the_readme_alert_rule() {
    let dir = TempDir::new("metrics-promtool");
    let port = free_port();
    let cfg = config(
        &dir,
        &format!(
            r#"
metrics: {{listen: "tcp://127.0.0.1:{port}"}}
programs:
  crash:
    command: [HELPER, exit, "3"]
    backoff: {{initial: 100ms, max: 100ms}}
    max_restarts: 10000
  web:
    command: [HELPER, sleep]
    instances: 2
"#
        ),
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_endpoint(&run, port);
    let ok = wait_until(PATIENCE, || {
        value(
            &scrape(port),
            "ginit_program_exits_total{program=\"crash\",instance=\"0\",outcome=\"failure\"}",
        )
        .is_some_and(|n| n >= 1.0)
    });
    assert!(ok, "no exit counted");
    let body = scrape(port);
    let mut check = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; tests/deps.sh installs it)");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{body}",
        text(&out)
    );

    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ginit-alerts.yml");
    let out = Command::new(PROMTOOL)
        .args(["check", "rules", rules])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("SUCCESS"), "{}", text(&out));
    let readme = include_str!("../README.md");
    let example = std::fs::read_to_string(rules).unwrap();
    assert!(
        readme.contains(example.trim()),
        "README's Metrics section shows examples/ginit-alerts.yml as it is"
    );
}

#[test]
fn values_agree_with_status_and_a_changed_endpoint_is_refused_on_reload() {
    let dir = TempDir::new("metrics-values");
    let port = free_port();
    let yaml = format!(
        r#"
metrics: {{listen: "tcp://127.0.0.1:{port}"}}
programs:
  crash:
    command: [HELPER, exit, "3"]
    backoff: {{initial: 50ms, max: 50ms}}
    max_restarts: 3
    restart_window: 1m
  web:
    command: [HELPER, sleep]
"#
    );
    let cfg = config(&dir, &yaml);
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_endpoint(&run, port);
    // Three restarts, then the fourth exit gives up.
    let failed = wait_until(PATIENCE, || {
        status(&run)
            .iter()
            .any(|(p, state, _)| p == "crash" && state == "failed")
    });
    assert!(failed, "{:?}", status(&run));
    let restarts = status(&run)
        .into_iter()
        .find(|s| s.0 == "crash")
        .map(|s| s.2)
        .unwrap();
    assert_eq!(restarts, 3);
    let m = scrape(port);
    let crash = "{program=\"crash\",instance=\"0\"}";
    let web = "{program=\"web\",instance=\"0\"}";
    assert_eq!(
        value(&m, &format!("ginit_program_restarts_total{crash}")),
        Some(restarts as f64),
        "{m}"
    );
    let failures =
        "ginit_program_exits_total{program=\"crash\",instance=\"0\",outcome=\"failure\"}";
    assert_eq!(value(&m, failures), Some(4.0), "{m}");
    assert_eq!(value(&m, &format!("ginit_program_up{crash}")), Some(0.0));
    assert_eq!(
        value(&m, &format!("ginit_program_last_exit_status{crash}")),
        Some(3.0)
    );
    assert_eq!(value(&m, &format!("ginit_program_up{web}")), Some(1.0));
    assert_eq!(value(&m, &format!("ginit_program_ready{web}")), Some(1.0));
    assert_eq!(
        value(&m, &format!("ginit_program_restarts_total{web}")),
        Some(0.0)
    );
    let rss = value(&m, &format!("ginit_program_resident_memory_bytes{web}"));
    assert!(rss.is_some_and(|r| r > 0.0), "{m}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value(&m, &format!("ginit_program_start_time_seconds{web}")).unwrap();
    assert!(
        started <= now + 1.0 && started > now - 60.0,
        "{started} vs {now}"
    );

    // A reload that moves the endpoint is refused and counted as a failed config reload;
    // one that keeps it is applied.
    let moved = yaml.replace(&port.to_string(), &free_port().to_string());
    config(&dir, &moved);
    let out = client(&run, &["reload-config"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("`metrics` changed"), "{}", text(&out));
    config(&dir, &yaml);
    let out = client(&run, &["reload-config"]);
    assert!(out.status.success(), "{}", text(&out));
    let m = scrape(port);
    let reloads = |result: &str| {
        value(
            &m,
            &format!("ginit_config_reloads_total{{result=\"{result}\"}}"),
        )
    };
    assert_eq!(
        (reloads("success"), reloads("failure")),
        (Some(1.0), Some(1.0))
    );
    // Counters survive the reload.
    assert_eq!(value(&m, failures), Some(4.0), "{m}");
}

#[test]
fn other_paths_oversized_silent_and_piled_up_clients_never_stall_supervision() {
    let dir = TempDir::new("metrics-abuse");
    let port = free_port();
    let cfg = config(
        &dir,
        &format!(
            r#"
metrics: {{listen: "tcp://127.0.0.1:{port}"}}
programs:
  crash:
    command: [HELPER, exit, "1"]
    backoff: {{initial: 100ms, max: 100ms}}
    max_restarts: 100000
"#
        ),
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_endpoint(&run, port);
    let restarts_series = "ginit_program_restarts_total{program=\"crash\",instance=\"0\"}";
    let restarts = || value(&scrape(port), restarts_series).unwrap_or(-1.0);

    // Another path, another method, not HTTP at all: 404.
    assert_eq!(get(port, "/").0, 404);
    assert_eq!(get(port, "/metrics/x").0, 404);
    assert_eq!(http(port, b"POST /metrics HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(http(port, b"hello\r\n\r\n").0, 404);
    assert_eq!(get(port, "/metrics?name[]=x").0, 200);

    // A request larger than 4 KiB: closed unanswered.
    let mut big = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 8192));
    // The write may fail part way: ginit may close before it has all been sent.
    let _ = big.write_all(&request);
    assert_cut_off(&mut big);

    // Clients that connect and send nothing, more than the endpoint keeps: scrapes still get
    // through (the oldest is closed for each newcomer), and so do restarts.
    let before = restarts();
    let mut silent: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let t0 = Instant::now();
    let grew = wait_until(PATIENCE, || restarts() >= before + 3.0);
    assert!(
        grew,
        "restarts stopped being counted: {before} -> {}",
        restarts()
    );
    // Each silent one is cut off (closed for a newcomer, or at its 5 s deadline).
    for s in &mut silent {
        assert_cut_off(s);
    }
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "silent clients were kept {:?}",
        t0.elapsed()
    );
    // A client that sends half a request and stalls is cut off at its deadline too, and
    // supervision went on meanwhile.
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost:").unwrap();
    let before = restarts();
    let t1 = Instant::now();
    assert_cut_off(&mut half);
    let waited = t1.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(10),
        "cut off after {waited:?}"
    );
    assert!(restarts() >= before + 3.0, "supervision stalled");
}

#[test]
fn a_unix_socket_endpoint_serves_the_same() {
    let dir = TempDir::new("metrics-unix");
    let sock = dir.path("m.sock");
    let cfg = config(
        &dir,
        "metrics: {listen: \"unix://DIR/m.sock\"}\nprograms:\n  web: {command: [HELPER, sleep]}\n",
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    let mut body = String::new();
    let ok = wait_until(PATIENCE, || {
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&sock) else {
            return false;
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        body.clear();
        s.read_to_string(&mut body).unwrap();
        body.contains("ginit_program_up{program=\"web\",instance=\"0\"} 1")
    });
    assert!(ok, "{body}\n{}", run.stderr());
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"));
}
