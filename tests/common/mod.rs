//! Shared harness for the integration tests: runs the real ginit binary as PID 1 of a fresh
//! PID namespace (`unshare -p -f --mount-proc`, or with `-U -r` when not root) or as a plain
//! subreaper, collects its output, and waits on conditions with deadlines, never fixed sleeps.
//! Every run is killed (by pid) when its handle is dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const GINIT: &str = env!("CARGO_BIN_EXE_ginit");
pub const HELPER: &str = env!("CARGO_BIN_EXE_ginit-test-helper");

/// True when the ELF file at `path` has no program interpreter, i.e. needs no dynamic loader.
pub fn is_static(path: &str) -> bool {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "{path} is not ELF");
    assert_eq!(elf[4], 2, "{path}: expected a 64-bit ELF");
    let le = elf[5] == 1;
    let u16_at = |o: usize| {
        let b = [elf[o], elf[o + 1]];
        if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    };
    let u32_at = |o: usize| {
        let b = [elf[o], elf[o + 1], elf[o + 2], elf[o + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&elf[o..o + 8]);
        if le {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        }
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36) as usize, u16_at(0x38));
    const PT_INTERP: u32 = 3;
    (0..phnum as usize).all(|i| u32_at(phoff + i * phentsize) != PT_INTERP)
}

/// Static builds of ginit and the test helper, for an empty root or a `FROM scratch` image:
/// the binaries under test when they are static already (`make test` builds them so), else
/// a static debug build of this checkout made once here (plain `cargo test` builds dynamic
/// binaries). The static flag goes with an explicit `--target`, so it never reaches
/// proc-macros, and into a target directory of its own, so it never waits on the build lock
/// of the `cargo test` that runs this.
pub fn static_binaries() -> (String, String) {
    if is_static(GINIT) && is_static(HELPER) {
        return (GINIT.to_string(), HELPER.to_string());
    }
    static BUILT: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = env!("CARGO_MANIFEST_DIR");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let host = Command::new("rustc").arg("-vV").output().unwrap();
            let host = String::from_utf8_lossy(&host.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("host: ").map(String::from))
                .expect("rustc -vV names the host");
            let dir = format!("{root}/target/static-tests");
            let flags = std::env::var("RUSTFLAGS").unwrap_or_default();
            let status = Command::new(cargo)
                .current_dir(root)
                .args(["build", "--target", &host, "--bins", "--target-dir", &dir])
                .env(
                    "RUSTFLAGS",
                    format!("{flags} -C target-feature=+crt-static"),
                )
                .status()
                .unwrap();
            assert!(status.success(), "the static build of ginit failed");
            let bin = |name: &str| format!("{dir}/{host}/debug/{name}");
            let built = (bin("ginit"), bin("ginit-test-helper"));
            assert!(is_static(&built.0) && is_static(&built.1));
            built
        })
        .clone()
}

/// A client's stdout and stderr together, for messages and `contains` checks.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// How long any single expected event may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// PID 1 of a new PID namespace.
    Pid1,
    /// An ordinary process (ginit makes itself child subreaper).
    Subreaper,
}

pub const MODES: [Mode; 2] = [Mode::Pid1, Mode::Subreaper];

pub fn is_root() -> bool {
    // SAFETY: no memory effects.
    unsafe { libc::geteuid() == 0 }
}

/// The unshare prefix for a fresh PID namespace, with a user namespace when not root.
pub fn unshare_prefix() -> Vec<String> {
    let mut v = vec!["unshare".to_string()];
    if !is_root() {
        v.extend(["-U".into(), "-r".into()]);
    }
    v.extend(["-p".into(), "-f".into()]);
    v
}

/// Polls `check` until it is true or `limit` passes; returns whether it became true.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Fields of /proc/PID/stat after the command name: state, ppid, ...
pub fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    Some(
        stat[close + 1..]
            .split_whitespace()
            .map(String::from)
            .collect(),
    )
}

pub fn process_exists(pid: i32) -> bool {
    stat_fields(pid).is_some()
}

pub fn comm(pid: i32) -> Option<String> {
    Some(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()?
            .trim()
            .to_string(),
    )
}

/// Pids whose parent is `parent`.
pub fn children_of(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            stat_fields(pid)
                .and_then(|f| f.get(1)?.parse::<i32>().ok())
                .is_some_and(|pp| pp == parent)
        })
        .collect()
}

pub fn status_field(pid: i32, key: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(key)?
            .strip_prefix(':')
            .map(|v| v.trim().to_string())
    })
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill has no memory effects; the pid is one this test started.
    unsafe { libc::kill(pid, sig) };
}

/// A running ginit with its output.
pub struct Run {
    child: Child,
    /// The control socket this run's ginit serves (unless the test chose another).
    pub socket: std::path::PathBuf,
    /// ginit's pid as seen by the tests (outside any namespace).
    pub pid: i32,
    lines: Receiver<String>,
    /// Every stdout line received so far.
    seen: Vec<String>,
    /// Lines received but not yet matched by [`Run::line`].
    pending: Vec<String>,
    stderr: Arc<Mutex<String>>,
    /// Set by the stderr reader at end of file.
    stderr_done: Arc<std::sync::atomic::AtomicBool>,
    code: Option<i32>,
}

impl Run {
    /// Runs `ginit ARGS` in `mode`.
    pub fn start(mode: Mode, args: &[&str]) -> Run {
        Run::start_with(mode, args, |_| {})
    }

    /// Runs `ginit ARGS` in `mode`, letting `configure` adjust the command first.
    pub fn start_with(mode: Mode, args: &[&str], configure: impl FnOnce(&mut Command)) -> Run {
        let mut argv: Vec<String> = Vec::new();
        if mode == Mode::Pid1 {
            argv.extend(unshare_prefix());
            argv.push("--mount-proc".into());
        }
        argv.push(GINIT.into());
        argv.extend(args.iter().map(|s| s.to_string()));
        Run::command(&argv, "ginit", configure)
    }

    /// Runs an arbitrary command line whose ginit process has command name `ginit_comm`
    /// (either the command itself or a child of it, as with unshare -f).
    pub fn command(argv: &[String], ginit_comm: &str, configure: impl FnOnce(&mut Command)) -> Run {
        let mut cmd = Command::new(&argv[0]);
        // Each run serves its own control socket, so tests never meet at the default path.
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let socket = std::env::temp_dir().join(format!(
            "ginit-test-{}-{n}/control.sock",
            std::process::id()
        ));
        cmd.args(&argv[1..])
            .env("GINIT_SOCKET", &socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        configure(&mut cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        // A test may send stdout elsewhere (to read it later); then no line ever arrives here.
        let lines = match child.stdout.take() {
            Some(out) => line_channel(out),
            None => mpsc::channel().1,
        };
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (sink, done) = (Arc::clone(&stderr), Arc::clone(&stderr_done));
        // As for stdout, a test may keep stderr for itself.
        match child.stderr.take() {
            Some(mut err) => {
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = err.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        sink.lock()
                            .unwrap()
                            .push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                    done.store(true, std::sync::atomic::Ordering::SeqCst);
                });
            }
            None => done.store(true, std::sync::atomic::Ordering::SeqCst),
        }
        let outer = child.id() as i32;
        let mut pid = outer;
        if argv[0] != GINIT {
            // Started through a wrapper (unshare -f): ginit is its child once it has exec'd.
            // A wrapper that is already a zombie means ginit came and went.
            let found = wait_until(PATIENCE, || {
                if stat_fields(outer).is_none_or(|f| f[0] == "Z") {
                    return true;
                }
                let ginit = children_of(outer)
                    .into_iter()
                    .find(|&p| comm(p).as_deref() == Some(ginit_comm));
                pid = ginit.unwrap_or(outer);
                ginit.is_some()
            });
            assert!(found, "ginit did not start under {argv:?}");
        }
        Run {
            child,
            socket,
            pid,
            lines,
            seen: Vec::new(),
            pending: Vec::new(),
            stderr,
            stderr_done,
            code: None,
        }
    }

    /// Waits for a stdout line containing `want` and returns it. Lines are matched in any
    /// order: a line that arrived earlier and has not been matched yet counts.
    pub fn line(&mut self, want: &str) -> String {
        if let Some(i) = self.pending.iter().position(|l| l.contains(want)) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(want) {
                        return line;
                    }
                    self.pending.push(line);
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no line with {want:?}; stdout so far: {:?}; stderr: {}",
                        self.seen,
                        self.stderr()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "output ended without {want:?}; stdout: {:?}; stderr: {}",
                    self.seen,
                    self.stderr()
                ),
            }
        }
    }

    /// Every stdout line seen so far plus whatever is left once the run has ended.
    pub fn all_lines(&mut self) -> Vec<String> {
        let new: Vec<String> = self.lines.try_iter().collect();
        self.seen.extend(new.iter().cloned());
        self.pending.extend(new);
        self.seen.clone()
    }

    /// Waits until ginit is blocked in poll(2), i.e. idle in its event loop.
    pub fn wait_idle(&self) {
        let idle = wait_until(PATIENCE, || {
            std::fs::read_to_string(format!("/proc/{}/wchan", self.pid))
                .is_ok_and(|w| w.contains("poll"))
        });
        assert!(idle, "ginit never went idle in poll");
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `want`.
    pub fn stderr_has(&self, want: &str) {
        let ok = wait_until(PATIENCE, || self.stderr().contains(want));
        assert!(ok, "stderr never said {want:?}: {}", self.stderr());
    }

    pub fn signal(&self, sig: i32) {
        signal(self.pid, sig);
    }

    /// Waits for the run to end and returns its exit code (128+N for signal N).
    pub fn wait(&mut self) -> i32 {
        if let Some(code) = self.code {
            return code;
        }
        let mut status = None;
        let ended = wait_until(PATIENCE, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        assert!(
            ended,
            "ginit did not exit; stdout {:?}; stderr {}",
            self.all_lines(),
            self.stderr()
        );
        let status = status.expect("status");
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        // Let the reader threads reach the end of both pipes, so every line is in.
        let _ = wait_until(Duration::from_secs(5), || {
            self.stderr_done.load(std::sync::atomic::Ordering::SeqCst)
        });
        let _ = wait_until(Duration::from_secs(5), || {
            loop {
                match self.lines.try_recv() {
                    Ok(line) => {
                        self.seen.push(line.clone());
                        self.pending.push(line);
                    }
                    Err(std::sync::mpsc::TryRecvError::Empty) => return false,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => return true,
                }
            }
        });
        self.code = Some(code);
        code
    }
}

/// Every descendant of `root`, from /proc.
pub fn descendants(root: i32) -> Vec<i32> {
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        found.extend(children_of(found[i]));
        i += 1;
    }
    found.remove(0);
    found
}

/// SIGKILLs `root` and everything below it, children first seen first: as a subreaper ginit's
/// programs would outlive it otherwise (as PID 1 the kernel kills the namespace with it).
pub fn kill_tree(root: i32) {
    // Stop the tree from changing while it is being killed.
    signal(root, libc::SIGSTOP);
    for pid in descendants(root) {
        signal(pid, libc::SIGKILL);
    }
    signal(root, libc::SIGKILL);
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.code.is_none() {
            kill_tree(self.pid);
            // A wrapper (unshare) exits by itself once it has reaped ginit; killing it first
            // would leave ginit's zombie to the machine's init.
            let gone = wait_until(Duration::from_secs(5), || {
                matches!(self.child.try_wait(), Ok(Some(_)))
            });
            if !gone {
                signal(self.child.id() as i32, libc::SIGKILL);
                let _ = self.child.wait();
            }
        }
        if let Some(dir) = self.socket.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The lines `reader` yields, sent by a thread of their own (which ends at end of file).
pub fn line_channel(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A loopback port that was free a moment ago. Taken below the kernel's ephemeral range
/// (which starts at 32768), so a test that binds port 0 can never be handed the same port
/// between this check and the bind of the ginit that uses it; each call tries the next one.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    // Test binaries run at the same time start at different places (by pid).
    let offset = (std::process::id() % 600) * 20;
    for _ in 0..12_000 {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let port = (20_000 + (offset + n) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000");
}

/// Runs `ginit ARGS` as a control client of `run`'s ginit.
pub fn client(run: &Run, args: &[&str]) -> std::process::Output {
    Command::new(GINIT)
        .args(args)
        .env("GINIT_SOCKET", &run.socket)
        .output()
        .unwrap()
}

/// Waits until `run`'s control socket answers.
pub fn wait_socket(run: &Run) {
    let ok = wait_until(PATIENCE, || client(run, &["status"]).status.success());
    assert!(ok, "the control socket never answered: {}", run.stderr());
}

/// `ginit status --json` of `run`'s ginit: its instances, as JSON values.
pub fn status_instances(run: &Run) -> Vec<serde_json::Value> {
    let out = client(run, &["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    match v["instances"].take() {
        serde_json::Value::Array(items) => items,
        other => panic!("no instances in the status: {other}"),
    }
}

/// Writes `yaml` as `ginit.yaml` in `dir`, with `DIR` replaced by the directory and `HELPER`
/// by the test helper's path; returns the file's path.
pub fn config(dir: &TempDir, yaml: &str) -> String {
    let path = dir.path("ginit.yaml");
    let text = yaml
        .replace("DIR", dir.0.to_str().unwrap())
        .replace("HELPER", HELPER);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A temporary directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ginit-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A pseudo-terminal whose slave side becomes the controlling terminal of a command, the way
/// `docker run -it` gives one to ginit.
pub struct Pty {
    master: std::fs::File,
    output: Arc<Mutex<Vec<u8>>>,
    /// How much of the output earlier `expect`s consumed.
    cursor: usize,
    pub child: Child,
}

impl Pty {
    pub fn spawn(argv: &[String], envs: &[(&str, &str)]) -> Pty {
        use std::os::fd::FromRawFd;
        use std::os::unix::process::CommandExt;
        let (mut master, mut slave) = (0, 0);
        // SAFETY: out-pointers to two ints; no name, termios or size requested.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: fresh fds from openpty, owned here.
        let (master, slave) = unsafe {
            (
                std::fs::File::from_raw_fd(master),
                std::fs::File::from_raw_fd(slave),
            )
        };
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave.try_clone().unwrap());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        drop(slave);
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&output);
        let mut reader = master.try_clone().unwrap();
        let mut answerer = master.try_clone().unwrap();
        thread::spawn(move || {
            use std::io::Write;
            let mut buf = [0u8; 4096];
            // EIO once every slave fd is closed ends the loop.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                // Answer a cursor position query (ESC [ 6 n) as a terminal would: line
                // editors such as busybox's wait for it.
                if buf[..n].windows(4).any(|w| w == b"\x1b[6n") {
                    let _ = answerer.write_all(b"\x1b[1;1R");
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            master,
            output,
            cursor: 0,
            child,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until `want` appears in the output after what earlier calls consumed.
    pub fn expect(&mut self, want: &str) {
        let mut at = None;
        let found = wait_until(PATIENCE, || {
            let out = self.output.lock().unwrap();
            let hay = String::from_utf8_lossy(&out[self.cursor.min(out.len())..]).into_owned();
            at = hay.find(want).map(|i| self.cursor + i + want.len());
            at.is_some()
        });
        assert!(
            found,
            "terminal never showed {want:?}; it shows:\n{}",
            self.text()
        );
        self.cursor = at.unwrap();
    }

    pub fn send(&mut self, bytes: &str) {
        use std::io::Write;
        self.master.write_all(bytes.as_bytes()).unwrap();
    }

    pub fn wait(&mut self) -> i32 {
        let mut status = None;
        let ended = wait_until(PATIENCE, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        assert!(ended, "command did not exit; terminal:\n{}", self.text());
        status.unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            kill_tree(self.child.id() as i32);
            let _ = self.child.wait();
        }
    }
}
