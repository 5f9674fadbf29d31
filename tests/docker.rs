//! The example image against a real Docker engine: this test starts its own dockerd (private
//! socket, data root and exec root, no bridge, no iptables), builds the top-level Dockerfile
//! offline (docker/build-offline.sh swaps the builder stages for images of this machine's
//! binaries), and drives containers the way users do: run, exec `ginit status` and `ginit
//! reload` under load, SIGHUP with a changed mounted config, `docker stop` draining a slow
//! request, a failing main program, --read-only and --user, and `docker run -it` with Ctrl-C.
//! Everything it starts is removed at the end, the engine last.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const DOCKER: &str = "/usr/bin/docker";
const IMAGE: &str = "ginit-example-test";

/// A private dockerd, stopped (by pid) and its directories removed on drop.
struct Engine {
    dir: PathBuf,
    host: String,
    daemon: std::process::Child,
}

impl Engine {
    fn start() -> Engine {
        let dir = std::env::temp_dir().join(format!("ginit-docker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let host = format!("unix://{}/docker.sock", dir.display());
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let daemon = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .args([
                "--storage-driver=vfs",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--host",
                &host,
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd (Debian package docker.io; tests/deps.sh installs it)");
        let engine = Engine { dir, host, daemon };
        let up = wait_until(Duration::from_secs(60), || {
            engine.docker(&["info"]).status.success()
        });
        assert!(up, "dockerd did not start: {}", engine.log());
        engine
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_BUILDKIT", "1")
            .output()
            .unwrap()
    }

    /// `docker ARGS` that must succeed; returns its stdout, trimmed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        signal(self.daemon.id() as i32, libc::SIGTERM);
        let gone = wait_until(Duration::from_secs(20), || {
            matches!(self.daemon.try_wait(), Ok(Some(_)))
        });
        if !gone {
            kill_tree(self.daemon.id() as i32);
            let _ = self.daemon.wait();
        }
        // dockerd can leave its network namespace file mounted in the exec root.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let prefix = self.dir.to_string_lossy().into_owned();
        let mut inside: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        inside.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in inside {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let _ = Command::new("rm").arg("-rf").arg(&self.dir).status();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the example image offline with this checkout's ginit and the Gin app.
fn build_image(engine: &Engine) {
    let app = root().join("target/gin-app");
    let built = Command::new(root().join("docker/app/build.sh"))
        .arg(&app)
        .env("GOCACHE", root().join("target/go-cache"))
        .status()
        .unwrap();
    assert!(built.success(), "building the Gin app");
    let (ginit, _) = static_binaries();
    let out = Command::new(root().join("docker/build-offline.sh"))
        .args([ginit.as_str(), app.to_str().unwrap(), IMAGE])
        .env("DOCKER_HOST", &engine.host)
        .env("DOCKER", DOCKER)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build-offline.sh: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// docker/ginit.yaml with the app on `port` (host networking: the test reaches it on loopback).
fn example_config(dir: &TempDir, port: u16) -> PathBuf {
    let text = std::fs::read_to_string(root().join("docker/ginit.yaml")).unwrap();
    let path = dir.path("ginit.yaml");
    std::fs::write(&path, text.replace("8080", &port.to_string())).unwrap();
    path
}

fn get(port: u16, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").map_err(|e| format!("write: {e}"))?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("read: {e}"))?;
    if !text.starts_with("HTTP/1.1 200") && !text.starts_with("HTTP/1.0 200") {
        return Err(format!("answer: {text:?}"));
    }
    Ok(text
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

fn run_example(engine: &Engine, config: &Path, extra: &[&str]) -> String {
    let mount = format!("{}:/etc/ginit.yaml:ro", config.display());
    let mut args = vec!["run", "-d", "--network", "host", "-v", &mount];
    args.extend_from_slice(extra);
    args.push(IMAGE);
    engine.ok(&args)
}

#[test]
fn the_example_image_behaves_in_a_real_engine() {
    let engine = Engine::start();
    build_image(&engine);
    let dir = TempDir::new("docker");

    // docker run: the app answers through ginit's socket; status lists every program.
    let port = free_port();
    let config = example_config(&dir, port);
    let c = run_example(&engine, &config, &[]);
    assert!(
        wait_until(PATIENCE, || get(port, "/").is_ok()),
        "{}",
        engine.ok(&["logs", &c])
    );
    assert!(wait_until(PATIENCE, || engine
        .docker(&["exec", &c, "/sbin/ginit", "ready"])
        .status
        .success()));
    let status = engine.ok(&["exec", &c, "/sbin/ginit", "status"]);
    for line in ["migrate", "web", "heartbeat"] {
        assert!(status.lines().any(|l| l.starts_with(line)), "{status}");
    }

    // docker exec ... ginit reload web, under load: no failed request.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                let mut ok = 0;
                while !stop.load(Ordering::SeqCst) {
                    match get(port, "/") {
                        Ok(_) => ok += 1,
                        Err(e) => failures.push(e),
                    }
                }
                (ok, failures)
            })
        })
        .collect();
    let first = get(port, "/").unwrap();
    for _ in 0..3 {
        engine.ok(&["exec", &c, "/sbin/ginit", "reload", "web"]);
    }
    stop.store(true, Ordering::SeqCst);
    for h in load {
        let (ok, failures) = h.join().unwrap();
        assert!(failures.is_empty() && ok > 0, "{ok} ok, {failures:?}");
    }
    assert_ne!(get(port, "/").unwrap(), first, "a new process serves");

    // docker kill -s HUP with a changed config mounted: the new program runs.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "shutdown:",
            "  extra:\n    command: [/app/server, heartbeat]\nshutdown:",
        ),
    )
    .unwrap();
    engine.ok(&["kill", "-s", "HUP", &c]);
    assert!(wait_until(PATIENCE, || {
        engine
            .ok(&["exec", &c, "/sbin/ginit", "status"])
            .contains("extra")
    }));

    // docker stop: a slow request in flight completes, the container exits 0 in time.
    let slow = std::thread::spawn(move || get(port, "/slow?ms=2000"));
    std::thread::sleep(Duration::from_millis(300)); // the request is in the app by then
    let t = Instant::now();
    engine.ok(&["stop", "-t", "40", &c]);
    let took = t.elapsed();
    assert!(
        slow.join().unwrap().is_ok(),
        "the in-flight request was answered"
    );
    assert_eq!(
        engine.ok(&["inspect", "-f", "{{.State.ExitCode}}", &c]),
        "0"
    );
    assert!(took < Duration::from_secs(30), "docker stop took {took:?}");

    // A failing main program: the container exits with its status.
    let out = engine.docker(&[
        "run",
        "--rm",
        IMAGE,
        "--",
        "/sbin/ginit",
        "check",
        "-c",
        "/nope",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // --read-only and another --user: it still serves (the control socket cannot be created
    // on the read-only root, which ginit says and survives).
    let port = free_port();
    let config = example_config(&dir, port);
    let c = run_example(&engine, &config, &["--read-only", "--user", "1000:1000"]);
    assert!(
        wait_until(PATIENCE, || get(port, "/").is_ok()),
        "{}",
        engine.ok(&["logs", &c])
    );
    let logs = engine.docker(&["logs", &c]);
    assert!(String::from_utf8_lossy(&logs.stderr).contains("no control socket"));
    engine.ok(&["rm", "-f", &c]);

    // docker run --cpus 1 with two instances of the app: each Go runtime is told one CPU
    // (from the container's cgroup quota), and 90% of its memory_max.
    let port = free_port();
    let sized = dir.path("sized.yaml");
    std::fs::write(
        &sized,
        format!(
            "sockets:\n  http: {{listen: \"tcp://127.0.0.1:{port}\"}}\nprograms:\n  web:\n    command: [/app/server]\n    sockets: [http]\n    instances: 2\n    memory_max: 200MiB\n    ready: {{notify: true}}\n    stdout: prefix\n"
        ),
    )
    .unwrap();
    let c = run_example(&engine, &sized, &["--cpus", "1"]);
    let logs = || String::from_utf8_lossy(&engine.docker(&["logs", &c]).stdout).into_owned();
    let want = "runtime: GOMAXPROCS=1 GOMEMLIMIT=188743680";
    assert!(
        wait_until(PATIENCE, || logs().matches(want).count() == 2),
        "{}",
        logs()
    );
    engine.ok(&["rm", "-f", &c]);

    // docker run -it IMAGE -- sh: an interactive shell (a static busybox added to the image)
    // whose foreground job gets Ctrl-C, with the shell still there afterwards.
    let ctx = TempDir::new("docker-shell");
    std::fs::copy("/bin/busybox", ctx.path("busybox")).expect("/bin/busybox (busybox-static)");
    std::fs::write(
        ctx.path("Dockerfile"),
        format!("FROM {IMAGE}\nCOPY busybox /bin/sh\n"),
    )
    .unwrap();
    engine.ok(&[
        "build",
        "-q",
        "-t",
        "ginit-example-shell",
        ctx.0.to_str().unwrap(),
    ]);
    let mut pty = Pty::spawn(
        &[
            DOCKER.to_string(),
            "-H".into(),
            engine.host.clone(),
            "run".into(),
            "--rm".into(),
            "-it".into(),
            "ginit-example-shell".into(),
            "--".into(),
            "/bin/sh".into(),
        ],
        &[],
    );
    // Type only at a prompt: the line editor flushes what was typed before it started.
    pty.expect("$ ");
    std::thread::sleep(Duration::from_millis(300));
    pty.send("echo shell-$((6*7))\r");
    pty.expect("shell-42");
    pty.expect("$ ");
    std::thread::sleep(Duration::from_millis(300));
    pty.send("/bin/sh -c 'read x'\r");
    std::thread::sleep(Duration::from_millis(500)); // the job is in the foreground by then
    pty.send("\x03");
    // The shell abandons the command line the job was on (as shells do after a SIGINT'd
    // job); the job's status says how it ended.
    pty.expect("$ ");
    std::thread::sleep(Duration::from_millis(300));
    pty.send("echo status-$?\r");
    pty.expect("status-130");
    pty.expect("$ ");
    std::thread::sleep(Duration::from_millis(300));
    pty.send("exit 7\r");
    assert_eq!(pty.wait(), 7, "{}", pty.text());
}
