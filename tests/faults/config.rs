//! See tests/faults.rs. Bounded config input and meaningful readiness: `ginit check` on each
//! hostile or mistaken file answers exit 2 with file:line:col (where a position applies) and
//! the bound, within PATIENCE and inside a memory cap; and a running ginit as PID 1 told to
//! reload such a file (SIGHUP and `ginit reload-config`) stays up, keeps its programs' pids,
//! shows the error in `ginit status`, and then applies a good file.
//!
//! The generators below are shared by every case here (and cheap: the biggest file is the
//! 10,000-program one, well under the 1 MiB cap).

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Address space given to every ginit started here: a file that once made ginit allocate
/// without bound (billion laughs, /dev/zero) then fails this test instead of the machine.
const MEMORY_CAP: u64 = 1 << 30;

/// The depth that overflowed the stack of the recursive reader.
const STACK_DEPTH: usize = 10_500;
/// The depth whose flow form took libyaml's scanner 65 s before the crash.
const DEEP: usize = 100_000;

// ---- generators ----

/// `programs: {a: [[[...]]]}` nested `depth` levels in flow style, on line 2.
pub fn nested_flow(depth: usize) -> String {
    format!(
        "programs:\n  a: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// The same in block style: `- - - ... x` (each `- ` one more level), on line 3.
pub fn nested_block(depth: usize) -> String {
    format!("programs:\n  a:\n    {}x\n", "- ".repeat(depth))
}

/// 9 levels of 9 aliases: under 400 bytes that expand to 9^9 strings.
pub fn billion_laughs() -> String {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        let uses = vec![format!("*{prev}"); 9].join(",");
        text.push_str(&format!("{name}: &{name} [{uses}]\n"));
    }
    text
}

/// `n` independent programs (`sleep 1`, found on PATH), about 40 bytes each.
pub fn many_programs(n: usize) -> String {
    let mut text = String::from("programs:\n");
    for i in 0..n {
        text.push_str(&format!("  p{i}: {{command: [sleep, \"1\"]}}\n"));
    }
    text
}

/// A chain of `n` programs, each depending on the one before; written in start order, or in
/// the reverse order (the last to start first in the file).
pub fn chain(n: usize, reversed: bool) -> String {
    let mut text = String::from("programs:\n");
    let mut add = |i: usize| {
        let deps = if i == 0 {
            String::new()
        } else {
            format!(", depends_on: [p{}]", i - 1)
        };
        text.push_str(&format!("  p{i}: {{command: [sleep, \"1\"]{deps}}}\n"));
    };
    if reversed {
        (0..n).rev().for_each(&mut add);
    } else {
        (0..n).for_each(&mut add);
    }
    text
}

/// `line:col` (1-based) of the first occurrence of `needle` in `text`.
fn at(text: &str, needle: &str) -> String {
    let i = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"));
    let line = text[..i].matches('\n').count() + 1;
    let col = i - text[..i].rfind('\n').map_or(0, |n| n + 1) + 1;
    format!("{line}:{col}")
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path; no memory effects.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Caps the address space of the command (and what it starts) at MEMORY_CAP.
fn cap_memory(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: MEMORY_CAP,
                rlim_max: MEMORY_CAP,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Runs `cmd` with its output in files of `dir`; gives up (SIGKILL, by pid) after PATIENCE.
/// The exit code is 128+N for signal N, None when it had to be killed.
fn run_within(mut cmd: Command, dir: &TempDir, tag: &str) -> (Option<i32>, String, String) {
    let (out_path, err_path) = (
        dir.path(&format!("{tag}.out")),
        dir.path(&format!("{tag}.err")),
    );
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let mut child = cmd.spawn().unwrap();
    let mut status = None;
    let done = wait_until(PATIENCE, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !done {
        signal(child.id() as i32, libc::SIGKILL);
        let _ = child.wait();
    }
    use std::os::unix::process::ExitStatusExt;
    let code = status.map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)));
    let read = |p: &PathBuf| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    (code, read(&out_path), read(&err_path))
}

/// `ginit check -c PATH` under the memory cap and PATIENCE.
fn check_path(dir: &TempDir, path: &Path) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(GINIT);
    cmd.args(["check", "-c", path.to_str().unwrap()]);
    cap_memory(&mut cmd);
    run_within(cmd, dir, "check")
}

/// Writes `text` as `name` in `dir` and checks it: returns (exit code, stderr, the path).
fn check_text(dir: &TempDir, name: &str, text: &str) -> (Option<i32>, String, String) {
    let path = dir.path(name);
    std::fs::write(&path, text).unwrap();
    let (code, _, err) = check_path(dir, &path);
    (code, err, path.display().to_string())
}

fn assert_refused(dir: &TempDir, name: &str, text: &str, wants: &[String]) {
    let (code, err, _) = check_text(dir, name, text);
    assert_eq!(code, Some(2), "{name}: {err}");
    for want in wants {
        assert!(
            err.contains(want.as_str()),
            "{name}: no {want:?} in:\n{err}"
        );
    }
}

// ---- `ginit check` ----

#[test]
fn deep_nesting_is_an_error_with_its_position() {
    let dir = TempDir::new("faults-deep");
    for (name, text, line) in [
        ("flow-10500.yaml", nested_flow(STACK_DEPTH), 2),
        ("flow-100000.yaml", nested_flow(DEEP), 2),
        ("block-10500.yaml", nested_block(STACK_DEPTH), 3),
        ("block-100000.yaml", nested_block(DEEP), 3),
    ] {
        let file = dir.path(name).display().to_string();
        assert_refused(
            &dir,
            name,
            &text,
            &[
                format!("{file}:{line}:"),
                "nested more than 64 levels deep".into(),
            ],
        );
    }
}

#[test]
fn billion_laughs_is_an_error_not_an_abort() {
    let dir = TempDir::new("faults-laughs");
    let text = billion_laughs();
    assert!(text.len() < 400, "{} bytes", text.len());
    let file = dir.path("laughs.yaml").display().to_string();
    assert_refused(
        &dir,
        "laughs.yaml",
        &text,
        &[file + ":", "more than 250000 values".into(), "alias".into()],
    );
}

#[test]
fn only_a_regular_file_of_at_most_1_mib_is_read() {
    let dir = TempDir::new("faults-size");
    let (code, _, err) = check_path(&dir, Path::new("/dev/zero"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a regular file"), "{err}");

    let fifo = dir.path("fifo.yaml");
    mkfifo(&fifo);
    let (code, _, err) = check_path(&dir, &fifo);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a regular file"), "{err}");

    let (code, _, err) = check_path(&dir, &dir.0);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a regular file"), "{err}");

    // A comment of 1 MiB and a bit: refused by its size alone.
    let big = format!(
        "# {}\nprograms:\n  a: {{command: sleep 1}}\n",
        "x".repeat(1 << 20)
    );
    assert_refused(&dir, "big.yaml", &big, &["larger than 1 MiB".into()]);
}

#[test]
fn numbers_out_of_range_are_errors_with_the_range() {
    let dir = TempDir::new("faults-numbers");
    let text = "sockets:\n  s: {listen: \"tcp://127.0.0.1:9\", backlog: 70000}\nprograms:\n  a:\n    command: sleep 1\n    instances: 4294967295\n    max_restarts: 4294967296\n    stdout: {file: /tmp/ginit-faults-a.log, rotate: {keep: 4294967294, size: 10}}\n    health: {exec: [\"true\"], failures: 123456}\n  b:\n    command: sleep 1\n    instances: 100000000\n";
    let file = dir.path("numbers.yaml").display().to_string();
    assert_refused(
        &dir,
        "numbers.yaml",
        text,
        &[
            format!(
                "{file}:{}: sockets.s.backlog: must be from 1 to 65535, found 70000",
                at(text, "70000")
            ),
            format!(
                "{file}:{}: programs.a.instances: must be from 1 to 1000, found 4294967295",
                at(text, "4294967295")
            ),
            format!(
                "{file}:{}: programs.a.max_restarts: must be from 0 to 1000000, found 4294967296",
                at(text, "4294967296")
            ),
            format!(
                "{file}:{}: programs.a.stdout.rotate.keep: must be from 1 to 100, found 4294967294",
                at(text, "4294967294")
            ),
            format!(
                "{file}:{}: programs.a.stdout.rotate.size: must be at least 1KiB",
                at(text, "10}")
            ),
            format!(
                "{file}:{}: programs.a.health.failures: must be from 1 to 100, found 123456",
                at(text, "123456")
            ),
            format!(
                "{file}:{}: programs.b.instances: must be from 1 to 1000, found 100000000",
                at(text, "100000000")
            ),
        ],
    );
    // Within range per program but not in all: 11 programs of 1000 instances.
    let mut text = String::from("programs:\n");
    for i in 0..11 {
        text.push_str(&format!("  p{i}: {{command: sleep 1, instances: 1000}}\n"));
    }
    assert_refused(
        &dir,
        "instances.yaml",
        &text,
        &["11000 instances in all; at most 10000".into()],
    );
}

#[test]
fn intervals_that_would_burn_a_core_and_limits_that_cannot_start_are_errors() {
    let dir = TempDir::new("faults-floors");
    let text = "programs:\n  a:\n    command: sleep 1\n    ready: {exec: [\"true\"], timeout: 1ns}\n    health: {exec: [\"true\"], interval: 2ns, timeout: 3ns}\n    watchdog: 4ns\n    monitor_window: 5ns\n    memory_max: 6\n    cpu_max: 0.001%\n    limits: {address_space: 0, data: 1, stack: 2, open_files: 0, processes: 0, cpu_seconds: 0}\n    backoff: {initial: 0s, max: 0s}\n";
    let file = dir.path("floors.yaml").display().to_string();
    let want = |needle: &str, path: &str, msg: &str| {
        format!("{file}:{}: programs.a.{path}: {msg}", at(text, needle))
    };
    assert_refused(
        &dir,
        "floors.yaml",
        text,
        &[
            want(
                "1ns",
                "ready.timeout",
                "must be from 100ms to 365d, found `1ns`",
            ),
            want(
                "2ns",
                "health.interval",
                "must be from 100ms to 365d, found `2ns`",
            ),
            want(
                "3ns",
                "health.timeout",
                "must be from 100ms to 365d, found `3ns`",
            ),
            want("4ns", "watchdog", "must be from 100ms to 365d, found `4ns`"),
            want(
                "5ns",
                "monitor_window",
                "must be from 1s to 365d, found `5ns`",
            ),
            want("6\n", "memory_max", "must be at least 1MiB"),
            want("0.001%", "cpu_max", "must be from 1% to 100000%"),
            want("0, data", "limits.address_space", "must be at least 16MiB"),
            want("1, stack", "limits.data", "must be at least 1MiB"),
            want("2, open", "limits.stack", "must be at least 128KiB"),
            want("0, proc", "limits.open_files", "must be at least 16"),
            want("0, cpu", "limits.processes", "must be at least 1"),
            want("0}", "limits.cpu_seconds", "must be at least 1"),
        ],
    );
    let (code, err, _) = check_text(&dir, "err-count.yaml", text);
    assert_eq!(code, Some(2));
    assert!(err.contains("ginit: 13 errors in"), "{err}");
}

#[test]
fn thousands_of_programs_and_long_chains_validate_quickly() {
    let dir = TempDir::new("faults-many");
    for (name, text) in [
        ("many.yaml", many_programs(10_000)),
        ("chain.yaml", chain(10_000, false)),
        ("chain-reversed.yaml", chain(10_000, true)),
    ] {
        assert!(text.len() < 1 << 20, "{name}: {} bytes", text.len());
        let path = dir.path(name);
        std::fs::write(&path, &text).unwrap();
        let (code, out, err) = check_path(&dir, &path);
        assert_eq!(code, Some(0), "{name}: {err}");
        assert!(out.contains("p9999"), "{name}");
        if name.starts_with("chain") {
            let order = out
                .lines()
                .find(|l| l.starts_with("start order: "))
                .unwrap();
            assert!(order.starts_with("start order: p0, p1, p2, "), "{name}");
            assert!(order.ends_with(", p9998, p9999"), "{name}");
        }
    }
}

#[test]
fn a_long_cycle_and_many_errors_are_reported_in_bounded_form() {
    let dir = TempDir::new("faults-errors");
    // A cycle through 10,000 programs: one error, its middle elided.
    let text = chain(10_000, false).replace(
        "p0: {command: [sleep, \"1\"]}",
        "p0: {command: [sleep, \"1\"], depends_on: [p9999]}",
    );
    let (code, err, _) = check_text(&dir, "cycle.yaml", &text);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("dependency cycle: p0 -> p9999 -> p9998"),
        "{err}"
    );
    assert!(err.len() < 4096, "{} bytes of errors", err.len());
    // 10,000 unknown dependencies: the first 100 errors, then how many more.
    let mut text = many_programs(10_000);
    text = text.replace("]}\n", "], depends_on: [nope]}\n");
    let (code, err, _) = check_text(&dir, "unknown.yaml", &text);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.matches("no program named `nope`").count(), 100, "{err}");
    assert!(err.contains("and 9900 more errors"), "{err}");
    assert!(err.contains("ginit: 10000 errors in"), "{err}");
}

#[test]
fn a_ready_check_answered_by_ginits_own_socket_is_refused() {
    let dir = TempDir::new("faults-ready");
    let text = "sockets:\n  http: {listen: \"tcp://0.0.0.0:8080\"}\n  v6: {listen: \"tcp://[::]:8443\"}\nprograms:\n  web:\n    command: sleep 1\n    sockets: [http]\n    instances: 2\n    ready: {tcp: \"127.0.0.1:8080\"}\n    health: {http: \"http://localhost:8080/healthz\"}\n  api:\n    command: sleep 1\n    ready: {http: \"http://127.0.0.1:8443/ready\"}\n    health: {tcp: \"127.0.0.1:8443\"}\n";
    let file = dir.path("ready.yaml").display().to_string();
    assert_refused(
        &dir,
        "ready.yaml",
        text,
        &[
            format!(
                "{file}:{}: programs.web.ready.tcp: `127.0.0.1:8080` is served by socket `http`",
                at(text, "\"127.0.0.1:8080\"")
            ),
            "the kernel's backlog".into(),
            "notify: true".into(),
            format!(
                "{file}:{}: programs.web.health.http: `127.0.0.1:8080` is served by socket `http`",
                at(text, "\"http://localhost")
            ),
            "only with `instances: 1`".into(),
            format!(
                "{file}:{}: programs.api.ready.http: `127.0.0.1:8443` is served by socket `v6`",
                at(text, "\"http://127.0.0.1:8443")
            ),
            "ginit: 3 errors in".into(),
        ],
    );
    // The same health check with one instance is fine (it is suspended during a replace), and
    // so is a ready check on an address only the instance serves.
    let ok = "sockets:\n  http: {listen: \"tcp://0.0.0.0:8080\"}\nprograms:\n  web:\n    command: sleep 1\n    sockets: [http]\n    ready: {http: \"http://127.0.0.1:8081/ready\"}\n    health: {http: \"http://127.0.0.1:8080/healthz\"}\n";
    let (code, err, _) = check_text(&dir, "ok.yaml", ok);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn the_shipped_configs_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = TempDir::new("faults-shipped");
    // The main job's config, as demo/run.sh fills it in.
    let gin = std::fs::read_to_string(root.join("demo/gin.yaml")).unwrap();
    let gin = gin
        .replace("PORT", "18080")
        .replace("APP", "/bin/true")
        .replace("DIR", dir.0.to_str().unwrap());
    let (code, err, _) = check_text(&dir, "gin.yaml", &gin);
    assert_eq!(code, Some(0), "demo/gin.yaml: {err}");
    for file in ["docker/ginit.yaml", "demo/pid1.yaml"] {
        // Their programs live in an image or next to the demo; only the executables may be
        // missing here.
        let (code, _, err) = check_path(&dir, &root.join(file));
        let other = err
            .lines()
            .filter(|l| l.contains(": ") && !l.contains("cannot run") && !l.starts_with("ginit: "))
            .count();
        assert!(code == Some(0) || other == 0, "{file}: {err}");
    }
    // The README's big example, cut out of the README.
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("## Supervising programs\n\n```yaml\n").unwrap();
    let body = &readme[start..];
    let body = &body[body.find("```yaml\n").unwrap() + 8..];
    let example = &body[..body.find("```").unwrap()];
    let (code, err, _) = check_text(&dir, "readme.yaml", example);
    let other: Vec<&str> = err
        .lines()
        .filter(|l| {
            l.contains(": ")
                && !l.starts_with("ginit: ")
                && !l.contains("cannot run")
                && !l.contains("no user named")
                && !l.contains(".cwd:")
                && !l.contains("hard limit")
        })
        .collect();
    assert!(code == Some(0) || other.is_empty(), "README example: {err}");
}

// ---- a running PID 1 ----

/// `ginit ARGS` as a client of `run`, given up after PATIENCE (a ginit stuck on a FIFO
/// would otherwise hang the test).
fn client_within(run: &Run, dir: &TempDir, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(GINIT);
    cmd.args(args).env("GINIT_SOCKET", &run.socket);
    let (code, out, err) = run_within(cmd, dir, "client");
    (code, out + &err)
}

/// What replaces the config of a running ginit.
enum Hostile<'p> {
    Text(String),
    /// A symlink to this path (renamed over the config, as a ConfigMap update would be).
    LinkTo(&'p Path),
}

impl Hostile<'_> {
    fn install(&self, cfg: &Path, dir: &TempDir) {
        match self {
            Hostile::Text(text) => std::fs::write(cfg, text).unwrap(),
            Hostile::LinkTo(target) => {
                let link = dir.path("link");
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(target, &link).unwrap();
                std::fs::rename(&link, cfg).unwrap();
            }
        }
    }
}

fn keep_pid(run: &Run) -> Option<i64> {
    let out: Output = client(run, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["instances"]
        .as_array()?
        .iter()
        .find(|i| i["program"] == "keep")?["pid"]
        .as_i64()
}

#[test]
fn a_running_ginit_survives_hostile_configs_and_then_applies_a_good_one() {
    let dir = TempDir::new("faults-reload");
    let good = "programs:\n  keep:\n    command: [HELPER, sleep]\n";
    let cfg = config(&dir, good);
    let run = Run::start_with(Mode::Pid1, &["-c", &cfg], cap_memory);
    let mut pid = None;
    assert!(
        wait_until(PATIENCE, || {
            pid = keep_pid(&run);
            pid.is_some()
        }),
        "keep never ran: {}",
        run.stderr()
    );

    let fifo = dir.path("fifo");
    mkfifo(&fifo);
    let zero = PathBuf::from("/dev/zero");
    let hostile = [
        (
            "nested more than 64 levels deep",
            Hostile::Text(nested_flow(DEEP)),
        ),
        (
            "nested more than 64 levels deep",
            Hostile::Text(nested_block(STACK_DEPTH)),
        ),
        ("more than 250000 values", Hostile::Text(billion_laughs())),
        ("not a regular file", Hostile::LinkTo(&zero)),
        ("not a regular file", Hostile::LinkTo(&fifo)),
    ];
    for (i, (want, bad)) in hostile.iter().enumerate() {
        // Each case starts from the good file, so the error seen is this case's.
        let _ = std::fs::remove_file(&cfg);
        std::fs::write(&cfg, good.replace("HELPER", HELPER)).unwrap();
        let (code, text) = client_within(&run, &dir, &["reload-config"]);
        assert_eq!(code, Some(0), "case {i}: {text}");
        bad.install(Path::new(&cfg), &dir);

        run.signal(libc::SIGHUP);
        let shown = wait_until(PATIENCE, || {
            let (_, t) = client_within(&run, &dir, &["status"]);
            t.contains("last config reload failed") && t.contains(want)
        });
        assert!(shown, "case {i} ({want}) after SIGHUP: {}", run.stderr());

        let (code, text) = client_within(&run, &dir, &["reload-config"]);
        assert_eq!(code, Some(1), "case {i}: {text}");
        assert!(text.contains(want), "case {i}: {text}");
        assert_eq!(keep_pid(&run), pid, "case {i}: keep was restarted");
    }

    // A good file with one more program: applied, the error cleared, keep untouched.
    let _ = std::fs::remove_file(&cfg);
    let better =
        "programs:\n  keep:\n    command: [HELPER, sleep]\n  more:\n    command: [HELPER, sleep]\n";
    std::fs::write(&cfg, better.replace("HELPER", HELPER)).unwrap();
    let (code, text) = client_within(&run, &dir, &["reload-config"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("1 added"), "{text}");
    let (_, status) = client_within(&run, &dir, &["status"]);
    assert!(!status.contains("last config reload failed"), "{status}");
    assert_eq!(keep_pid(&run), pid);
}
