//! Program output through the real binary as PID 1: `prefix` and `json` lines on ginit's
//! streams, long lines split at character boundaries, files with rotation and SIGUSR1
//! reopening, and back-pressure: a stdout nobody reads stalls only the program writing to it.

mod common;

use common::*;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Stdio;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn prefix_and_json_lines_reach_ginits_streams() {
    let dir = TempDir::new("out-lines");
    let cfg = config(
        &dir,
        r#"
programs:
  hello:
    command: [HELPER, print, "hello world"]
    instances: 2
    restart: never
    stdout: prefix
  oops:
    command: [HELPER, print, --stderr, 'bad "thing"']
    restart: never
    stderr: json
  long:
    command: [HELPER, print, "é", "20000"]
    restart: never
    stdout: prefix
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    run.line("hello.0 | hello world");
    run.line("hello.1 | hello world");
    run.stderr_has(r#""program":"oops","instance":0,"stream":"stderr","line":"bad \"thing\""}"#);
    run.line("long | é");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());

    // The 40,000-byte line came in pieces of at most 16 KiB, each valid UTF-8 (the reader
    // would have stopped at the first invalid one), which together are the whole line.
    let pieces: Vec<String> = run
        .all_lines()
        .into_iter()
        .filter_map(|l| l.strip_prefix("long | ").map(String::from))
        .collect();
    assert!(pieces.len() >= 3, "{} pieces", pieces.len());
    assert!(pieces.iter().all(|p| p.len() <= 16 * 1024));
    assert_eq!(pieces.concat(), "é".repeat(20000));
    let json = run
        .stderr()
        .lines()
        .find(|l| l.contains(r#""program":"oops""#))
        .unwrap()
        .to_string();
    assert!(json.starts_with(r#"{"time":"20"#), "{json}");
}

#[test]
fn files_rotate_by_size_and_reopen_on_sigusr1() {
    let dir = TempDir::new("out-files");
    let cfg = config(
        &dir,
        r#"
programs:
  burst:
    command: ["/bin/sh", "-c", "i=0; while [ $i -lt 400 ]; do echo line-$i-padding; i=$((i+1)); done; echo done >&2; exec sleep 1000"]
    stdout: {file: DIR/burst.log, rotate: {size: 2KiB, keep: 2}}
    stderr: {file: DIR/burst.log, rotate: {size: 2KiB, keep: 2}}
  ticker:
    command: ["/bin/sh", "-c", "while :; do echo tick; sleep 0.05; done"]
    stdout: {file: DIR/ticker.log}
"#,
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    let burst = dir.path("burst.log");
    assert!(
        wait_until(PATIENCE, || read(&burst).contains("done")),
        "burst.log: {}",
        read(&burst)
    );
    // Three files of at most 2 KiB each, holding the newest lines in order.
    let (one, two) = (dir.path("burst.log.1"), dir.path("burst.log.2"));
    assert!(!dir.path("burst.log.3").exists());
    let all = format!("{}{}{}", read(&two), read(&one), read(&burst));
    for file in [&burst, &one, &two] {
        let len = std::fs::metadata(file).unwrap().len();
        assert!(len > 0 && len <= 2048, "{}: {len} bytes", file.display());
    }
    let numbers: Vec<u32> = all
        .lines()
        .filter_map(|l| {
            l.strip_prefix("line-")?
                .strip_suffix("-padding")?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(numbers.last(), Some(&399), "{all}");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");

    // An external rotation: the file is moved away, SIGUSR1 makes ginit open a new one.
    let ticker = dir.path("ticker.log");
    assert!(wait_until(PATIENCE, || read(&ticker).contains("tick")));
    let moved = dir.path("ticker.log.old");
    std::fs::rename(&ticker, &moved).unwrap();
    run.signal(libc::SIGUSR1);
    run.stderr_has("reopened 2 log files");
    assert!(
        wait_until(PATIENCE, || read(&ticker).contains("tick")),
        "no new ticker.log"
    );
    let frozen = read(&moved).len();
    assert!(wait_until(PATIENCE, || read(&ticker).lines().count() >= 3));
    assert_eq!(
        read(&moved).len(),
        frozen,
        "the moved file is no longer written"
    );
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}

#[test]
fn a_blocked_stdout_stalls_only_the_program_writing_to_it() {
    let dir = TempDir::new("out-blocked");
    let cfg = config(
        &dir,
        r#"
programs:
  talker:
    command: ["seq", "1", "100000"]
    restart: never
    stdout: prefix
  ticker:
    command: ["/bin/sh", "-c", "echo x >> DIR/ticks"]
    backoff: {initial: 20ms, max: 20ms}
    max_restarts: 100000
"#,
    );
    // ginit's stdout is a pipe this test does not read at first: about 1.4 MB of prefixed
    // lines cannot fit in it, ginit's buffer and the talker's pipe together.
    let (reader, writer) = std::io::pipe().unwrap();
    let mut run = Run::start_with(Mode::Pid1, &["-c", &cfg], |cmd| {
        cmd.stdout(Stdio::from(writer));
    });
    let ticks = dir.path("ticks");
    // The loop goes on: the ticker keeps being restarted...
    assert!(
        wait_until(PATIENCE, || read(&ticks).lines().count() >= 20),
        "the ticker stalled; stderr: {}",
        run.stderr()
    );
    // ...while the talker is held up in write, not finished and not losing lines.
    let talker = descendants(run.pid)
        .into_iter()
        .find(|&p| comm(p).as_deref() == Some("seq"));
    assert!(talker.is_some(), "seq is not blocked: it finished");

    // Now read: every line arrives, once, in order.
    let rx = line_channel(reader);
    let mut next = 1;
    while next <= 100_000 {
        let line = rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no line after talker | {}", next - 1));
        if let Some(n) = line.strip_prefix("talker | ") {
            assert_eq!(n, next.to_string());
            next += 1;
        }
    }
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
    assert!(!run.stderr().contains("cannot write"), "{}", run.stderr());
}

#[test]
fn sigterm_while_stdout_is_blocked_still_ends_in_time() {
    let dir = TempDir::new("out-stuck");
    let cfg = config(
        &dir,
        r#"
programs:
  talker:
    command: ["seq", "1", "1000000"]
    restart: never
    stdout: prefix
"#,
    );
    let (reader, writer) = std::io::pipe().unwrap();
    let mut run = Run::start_with(Mode::Pid1, &["-c", &cfg], |cmd| {
        cmd.stdout(Stdio::from(writer));
    });
    // Wait until the pipe is full (ginit can write no more), then stop.
    let queued = || {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int; the fd is this test's pipe end.
        unsafe { libc::ioctl(reader.as_raw_fd(), libc::FIONREAD, &mut n) };
        n
    };
    assert!(wait_until(PATIENCE, || queued() >= 60_000), "{}", queued());
    run.signal(libc::SIGTERM);
    // Nobody ever reads: ginit gives up on the last bytes after a bounded time and says so.
    assert_eq!(run.wait(), 0, "{}", run.stderr());
    run.stderr_has("bytes not yet written");
    drop(reader);
}

#[test]
fn a_stderr_nobody_reads_never_stalls_ginit_s_own_logging() {
    let dir = TempDir::new("out-log-blocked");
    // A crash loop without delay: ginit logs a few lines per restart, far more than a pipe
    // holds once nobody reads it.
    let cfg = config(
        &dir,
        r#"
programs:
  crasher:
    command: ["/bin/sh", "-c", "echo x >> DIR/ticks; exit 1"]
    backoff: {initial: 0s, max: 0s}
    max_restarts: 1000000
    restart_window: 1s
"#,
    );
    let (reader, writer) = std::io::pipe().unwrap();
    let mut run = Run::start_with(Mode::Pid1, &["-c", &cfg], |cmd| {
        cmd.stderr(Stdio::from(writer));
    });
    let ticks = || read(&dir.path("ticks")).lines().count();
    // Well past the point where the pipe (64 KiB) is full, restarts go on.
    assert!(
        wait_until(PATIENCE, || ticks() >= 2000),
        "ginit stalled after {} restarts",
        ticks()
    );
    // Reading again: ginit says how many of its lines it had to drop.
    let rx = line_channel(reader);
    let dropped = wait_until(PATIENCE, || {
        rx.try_iter()
            .any(|l| l.contains("log lines were dropped: stderr was not being read"))
    });
    assert!(dropped, "no note of the dropped lines");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0);
}
