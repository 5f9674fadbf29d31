//! The fuzz corpus and every regression input, replayed on stable by plain `cargo test`.
//!
//! Each fuzz target (`fuzz/fuzz_targets/NAME.rs`) calls `ginit::fuzzing::NAME`; this file
//! feeds that same function every file of `fuzz/corpus/NAME/` and `fuzz/regressions/NAME/`,
//! so what libFuzzer once found stays fixed without nightly or libFuzzer. A test fails on a
//! panic (listing every input that panicked). A stack overflow or an allocation that the
//! memory cap below refuses aborts the whole test binary instead: that is a failure too (the
//! overflow message names the input: each runs on a thread named after it).

use std::path::{Path, PathBuf};

/// The stack PID 1 has under the usual `ulimit -s` (8 MiB): a nesting that fits there
/// is no bug, one that does not is (test threads get only 2 MiB by default).
const STACK: usize = 8 << 20;

/// Address space for the whole test binary: ordinary inputs need a few MiB, an input that
/// makes the parser allocate without bound ("billion laughs") aborts here instead of
/// taking the machine's memory (libFuzzer's `-rss_limit_mb` does the same while fuzzing).
const MEMORY: u64 = 2 << 30;

fn cap_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let lim = libc::rlimit {
            rlim_cur: MEMORY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit reads one rlimit; lowering the soft limit needs no privilege.
        #[allow(unsafe_code)]
        let ok = unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) } == 0;
        assert!(ok, "setrlimit: {}", std::io::Error::last_os_error());
    });
}

/// The files of `fuzz/KIND/TARGET/`, sorted (none when the directory is missing).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    files.retain(|p| p.is_file());
    files.sort();
    files
}

fn replay(target: &'static str, check: fn(&[u8])) {
    cap_memory();
    let corpus = inputs("corpus", target);
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target}/ is empty or missing: nothing would be replayed"
    );
    let all: Vec<PathBuf> = corpus
        .into_iter()
        .chain(inputs("regressions", target))
        .collect();
    let count = all.len();
    let mut failed = Vec::new();
    for path in all {
        let data = std::fs::read(&path).unwrap();
        // One thread per input, named by it: a stack overflow, which aborts the process
        // before any test output is shown, still names the input in Rust's own message.
        let name = format!("{target} {}", path.display());
        let run = std::thread::Builder::new()
            .name(name)
            .stack_size(STACK)
            .spawn(move || check(&data))
            .unwrap();
        if run.join().is_err() {
            failed.push(path);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {count} {target} inputs panicked:\n{}",
        failed.len(),
        failed
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn config() {
    replay("config", ginit::fuzzing::config);
}

#[test]
fn control_request() {
    replay("control_request", ginit::fuzzing::control_request);
}

#[test]
fn notify() {
    replay("notify", ginit::fuzzing::notify);
}

#[test]
fn env_file() {
    replay("env_file", ginit::fuzzing::env_file);
}

#[test]
fn glob() {
    replay("glob", ginit::fuzzing::glob);
}

#[test]
fn inotify() {
    replay("inotify", ginit::fuzzing::inotify);
}

#[test]
fn schedule() {
    replay("schedule", ginit::fuzzing::schedule);
}

#[test]
fn units() {
    replay("units", ginit::fuzzing::units);
}

#[test]
fn words() {
    replay("words", ginit::fuzzing::words);
}

#[test]
fn http_response() {
    replay("http_response", ginit::fuzzing::http_response);
}

#[test]
fn passwd() {
    replay("passwd", ginit::fuzzing::passwd);
}

#[test]
fn proc_stat() {
    replay("proc_stat", ginit::fuzzing::proc_stat);
}

#[test]
fn http_request() {
    replay("http_request", ginit::fuzzing::http_request);
}
