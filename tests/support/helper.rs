//! ginit-test-helper: the program the integration tests and benchmarks run under ginit.
//!
//! One binary with small subcommands instead of shell scripts, so tests do not depend on a
//! shell and can run in an empty root. It reports on stdout, one line per fact, flushed at
//! once, so tests can wait on lines with a deadline.
//!
//! Subcommands:
//!   exit CODE                 exit with CODE
//!   kill-self SIG             kill itself with SIG (a number or name like TERM)
//!   sleep                     wait forever (any default-action signal ends it)
//!   trap [--exit-on SIG] [--stamp]
//!                             catch every catchable signal but SIGCHLD and print
//!                             `got SIGNAME` (or `got SIGNAME <monotonic ns>` with --stamp);
//!                             exit 0 on SIG
//!   fds                       print `fds=0,1,2` (the open fds)
//!   tty                       print `fg=yes|no`, then exit 0 on SIGINT with `got SIGINT`
//!   group-trap                a child in the same process group and this process both
//!                             print `leader|member got SIGUSR1`; both exit on SIGTERM
//!   orphans N                 make N orphans, wait until the init reaped them, print
//!                             `reaped N` or `zombies-left K`
//!   daemon [--stubborn] [--exit CODE]
//!                             leave a daemonised grandchild behind (prints
//!                             `daemon got SIGTERM` when asked to stop; --stubborn ignores
//!                             SIGTERM), print `daemon-ready PID`, then exit CODE (default 0)
//!   serve                     socket activation: print `fds=...` and `listen fds=N pid=ok|bad
//!                             names=NAMES`, send READY=1 if NOTIFY_SOCKET is set, then
//!                             accept on every fd 3.. and answer each
//!                             connection with `served by PID` (prefix `GINIT_INSTANCE`)
//!   notify-ready MS           after MS milliseconds send `READY=1` (and a STATUS) to
//!                             $NOTIFY_SOCKET, print `notified`, then wait
//!   listen PORT               after printing `listening`, accept on 127.0.0.1:PORT forever
//!   http PORT FILE            HTTP/1.0 on 127.0.0.1:PORT: /health answers 200 while FILE
//!                             exists, 503 otherwise; every other path 200
//!   serve-http SICK           HTTP/1.0 on the socket passed as fd 3 (LISTEN_FDS): /health
//!                             answers 503 while the file SICK exists, 200 otherwise; every
//!                             other path 200 `served by PID`
//!   watchdog N MS             send WATCHDOG=1 to $NOTIFY_SOCKET N times, MS apart, then wait
//!   hog MIB                   allocate and touch MIB MiB of memory, print `hogging`, wait
//!   print [--stderr] TEXT [N]
//!                             write TEXT repeated N times (default 1) and a newline
//!   orphans-bench N           benchmark: N orphans; print `elapsed_ms= init_cpu_ms= zombies=`
#![allow(clippy::print_stdout)]

use std::io::{self, Write};
use std::process::exit;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

static PIPE_W: AtomicI32 = AtomicI32::new(-1);

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn sig_name(sig: i32) -> String {
    const NAMES: [&str; 32] = [
        "0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match NAMES.get(sig as usize) {
        Some(n) => (*n).to_string(),
        None => format!("SIG{sig}"),
    }
}

fn parse_sig(text: &str) -> i32 {
    if let Ok(n) = text.parse() {
        return n;
    }
    let want = if text.starts_with("SIG") {
        text.to_string()
    } else {
        format!("SIG{text}")
    };
    (1..32).find(|&s| sig_name(s) == want).unwrap_or_else(|| {
        eprintln!("helper: unknown signal {text}");
        exit(2)
    })
}

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = PIPE_W.load(Ordering::Relaxed);
    let byte = sig as u8;
    // SAFETY: write is async-signal-safe; a full pipe only loses a report.
    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
}

/// Routes `sigs` to a pipe and returns its read end.
fn catch(sigs: impl Iterator<Item = i32>) -> i32 {
    let mut fds = [0; 2];
    // SAFETY: valid array; handlers only write to the pipe.
    unsafe {
        libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC);
        PIPE_W.store(fds[1], Ordering::Relaxed);
        for sig in sigs {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as *const () as usize;
            act.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
    fds[0]
}

fn next_signal(read_fd: i32) -> i32 {
    let mut byte = 0u8;
    loop {
        // SAFETY: one-byte read into a local.
        let n = unsafe { libc::read(read_fd, (&mut byte as *mut u8).cast(), 1) };
        if n == 1 {
            return i32::from(byte);
        }
    }
}

fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn catchable() -> impl Iterator<Item = i32> {
    (1..=libc::SIGRTMAX())
        .filter(|&s| ![libc::SIGKILL, libc::SIGSTOP, libc::SIGCHLD, 32, 33].contains(&s))
}

fn trap(args: &[String]) -> ! {
    let mut exit_on = None;
    let mut stamp = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--exit-on" => exit_on = it.next().map(|s| parse_sig(s)),
            "--stamp" => stamp = true,
            other => {
                eprintln!("helper trap: unknown argument {other}");
                exit(2)
            }
        }
    }
    let rd = catch(catchable());
    say("ready");
    loop {
        let sig = next_signal(rd);
        if stamp {
            say(&format!("got {} {}", sig_name(sig), monotonic_ns()));
        } else {
            say(&format!("got {}", sig_name(sig)));
        }
        if Some(sig) == exit_on {
            exit(0);
        }
    }
}

fn fork() -> i32 {
    // SAFETY: the helper is single-threaded.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        eprintln!("helper: fork failed: {}", io::Error::last_os_error());
        exit(3);
    }
    pid
}

fn wait_child(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    status
}

/// Zombies whose parent is `parent`, from /proc.
fn zombies_of(parent: i32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let Some(close) = stat.rfind(')') else {
                return false;
            };
            let mut f = stat[close + 1..].split_whitespace();
            let state = f.next();
            let ppid: Option<i32> = f.next().and_then(|p| p.parse().ok());
            state == Some("Z") && ppid == Some(parent)
        })
        .count()
}

fn make_orphans(n: usize) {
    for _ in 0..n {
        let pid = fork();
        if pid == 0 {
            if fork() == 0 {
                // SAFETY: leaving a forked child without running Rust destructors.
                unsafe { libc::_exit(0) };
            }
            // SAFETY: as above.
            unsafe { libc::_exit(0) };
        }
        wait_child(pid);
    }
}

/// Waits (up to `limit`) until the init has no zombies left; returns how many remain.
fn wait_reaped(init: i32, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let left = zombies_of(init);
        if left == 0 || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn orphans(n: usize) {
    // SAFETY: no memory effects.
    let init = unsafe { libc::getppid() };
    make_orphans(n);
    match wait_reaped(init, Duration::from_secs(20)) {
        0 => say(&format!("reaped {n}")),
        k => say(&format!("zombies-left {k}")),
    }
}

fn schedstat_ns(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn orphans_bench(n: usize) {
    // SAFETY: no memory effects.
    let init = unsafe { libc::getppid() };
    let cpu0 = schedstat_ns(init);
    let t0 = Instant::now();
    make_orphans(n);
    let left = wait_reaped(init, Duration::from_secs(60));
    let elapsed = t0.elapsed();
    let cpu = schedstat_ns(init).saturating_sub(cpu0);
    say(&format!(
        "elapsed_ms={:.1} init_cpu_ms={:.1} zombies={left}",
        elapsed.as_secs_f64() * 1e3,
        cpu as f64 / 1e6
    ));
}

fn daemon(args: &[String]) {
    let stubborn = args.iter().any(|a| a == "--stubborn");
    let code = args
        .iter()
        .position(|a| a == "--exit")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(0);
    let mut ready = [0; 2];
    // SAFETY: valid array.
    unsafe { libc::pipe(ready.as_mut_ptr()) };
    let mid = fork();
    if mid == 0 {
        // SAFETY: plain system calls in a forked child.
        unsafe { libc::setsid() };
        if fork() == 0 {
            let rd = if stubborn {
                // SAFETY: ignoring a signal.
                unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
                None
            } else {
                Some(catch(std::iter::once(libc::SIGTERM)))
            };
            // SAFETY: no memory effects.
            let me = unsafe { libc::getpid() };
            let bytes = me.to_ne_bytes();
            // SAFETY: writing 4 bytes from a local.
            unsafe { libc::write(ready[1], bytes.as_ptr().cast(), 4) };
            match rd {
                Some(rd) => {
                    next_signal(rd);
                    say("daemon got SIGTERM");
                    exit(0);
                }
                None => loop {
                    // SAFETY: waits for a signal.
                    unsafe { libc::pause() };
                },
            }
        }
        // SAFETY: leaving the intermediate child.
        unsafe { libc::_exit(0) };
    }
    wait_child(mid);
    let mut bytes = [0u8; 4];
    // SAFETY: reading 4 bytes into a local.
    unsafe { libc::read(ready[0], bytes.as_mut_ptr().cast(), 4) };
    say(&format!("daemon-ready {}", i32::from_ne_bytes(bytes)));
    exit(code);
}

fn group_trap() {
    let mut ready = [0; 2];
    // SAFETY: valid array.
    unsafe { libc::pipe(ready.as_mut_ptr()) };
    let member = fork();
    // Each process gets its own signal pipe, after the fork.
    let rd = catch([libc::SIGUSR1, libc::SIGTERM].into_iter());
    let mut byte = 0u8;
    if member == 0 {
        // SAFETY: one-byte write from a local.
        unsafe { libc::write(ready[1], (&byte as *const u8).cast(), 1) };
    } else {
        // SAFETY: one-byte read into a local.
        unsafe { libc::read(ready[0], (&mut byte as *mut u8).cast(), 1) };
        say("ready");
    }
    let who = if member == 0 { "member" } else { "leader" };
    loop {
        let sig = next_signal(rd);
        say(&format!("{who} got {}", sig_name(sig)));
        if sig == libc::SIGTERM {
            if member != 0 {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(member, libc::SIGTERM) };
                wait_child(member);
            }
            exit(0);
        }
    }
}

fn fds() {
    let dir = std::fs::read_dir("/proc/self/fd").unwrap_or_else(|e| {
        eprintln!("helper: /proc/self/fd: {e}");
        exit(3)
    });
    let mut fds: Vec<i32> = dir
        .flatten()
        .filter(|e| {
            // Skip the fd of this very directory listing.
            std::fs::read_link(e.path())
                .map(|t| !t.to_string_lossy().ends_with("/fd"))
                .unwrap_or(false)
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort();
    let list: Vec<String> = fds.iter().map(i32::to_string).collect();
    say(&format!("fds={}", list.join(",")));
}

/// Sends one sd_notify datagram to $NOTIFY_SOCKET (abstract), if set.
fn notify(message: &[u8]) {
    use std::os::linux::net::SocketAddrExt;
    let Ok(addr) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let name = addr.strip_prefix('@').unwrap_or(&addr);
    if let (Ok(to), Ok(sock)) = (
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()),
        std::os::unix::net::UnixDatagram::unbound(),
    ) {
        let _ = sock.send_to_addr(message, &to);
    }
}

fn serve() {
    fds();
    let n: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: getpid has no memory effects.
    let me = unsafe { libc::getpid() };
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        == Some(me);
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    say(&format!(
        "listen fds={n} pid={} names={names}",
        if pid_ok { "ok" } else { "bad" }
    ));
    notify(b"READY=1");
    // SIGTERM ends it gracefully: connections already accepted are answered first, as a
    // real server drains (so a replace reload loses nothing).
    let term = catch(std::iter::once(libc::SIGTERM));
    let mut pfds: Vec<libc::pollfd> = (0..n)
        .map(|i| libc::pollfd {
            fd: 3 + i,
            events: libc::POLLIN,
            revents: 0,
        })
        .chain(std::iter::once(libc::pollfd {
            fd: term,
            events: libc::POLLIN,
            revents: 0,
        }))
        .collect();
    loop {
        // SAFETY: a valid pollfd array; accept/write/close on fds this process owns.
        unsafe {
            libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1);
            for p in &pfds[..n as usize] {
                if p.revents != 0 {
                    let c = libc::accept(p.fd, std::ptr::null_mut(), std::ptr::null_mut());
                    if c >= 0 {
                        let msg = format!("served by {me}\n");
                        libc::write(c, msg.as_ptr().cast(), msg.len());
                        libc::close(c);
                    }
                }
            }
            if pfds[n as usize].revents != 0 {
                exit(0);
            }
        }
    }
}

fn serve_http(sick: &str) {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    if std::env::var("LISTEN_FDS").as_deref() != Ok("1") {
        eprintln!("helper serve-http: needs exactly one socket (LISTEN_FDS=1)");
        exit(2)
    }
    // SAFETY: fd 3 is the listening socket ginit passed (LISTEN_FDS=1), owned from here on.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(3) };
    // SAFETY: getpid has no memory effects.
    let me = unsafe { libc::getpid() };
    for mut c in listener.incoming().flatten() {
        let mut buf = [0u8; 1024];
        let n = c.read(&mut buf).unwrap_or(0);
        let health = buf[..n].starts_with(b"GET /health ");
        let answer = if health && std::path::Path::new(sick).exists() {
            "HTTP/1.0 503 Unhealthy\r\n\r\n".to_string()
        } else {
            format!("HTTP/1.0 200 OK\r\n\r\nserved by {me}\n")
        };
        let _ = c.write_all(answer.as_bytes());
    }
}

fn tty() {
    let rd = catch(std::iter::once(libc::SIGINT));
    // SAFETY: no memory effects.
    let fg = unsafe { libc::tcgetpgrp(0) == libc::getpgrp() };
    say(if fg { "fg=yes" } else { "fg=no" });
    next_signal(rd);
    say("got SIGINT");
    exit(0);
}

fn print(args: &[String]) {
    let (stderr, args) = match args.first().map(String::as_str) {
        Some("--stderr") => (true, &args[1..]),
        _ => (false, args),
    };
    let text = args.first().map(String::as_str).unwrap_or("");
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut line = text.repeat(n);
    line.push('\n');
    let written = if stderr {
        io::stderr().lock().write_all(line.as_bytes())
    } else {
        io::stdout().lock().write_all(line.as_bytes())
    };
    exit(i32::from(written.is_err()))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("usage: ginit-test-helper COMMAND [ARGS]");
        exit(2)
    };
    let rest = &args[1..];
    let num = |i: usize| -> usize {
        rest.get(i).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            eprintln!("helper {cmd}: needs a number");
            exit(2)
        })
    };
    match cmd.as_str() {
        "exit" => exit(num(0) as i32),
        "kill-self" => {
            let sig = parse_sig(rest.first().map(String::as_str).unwrap_or("TERM"));
            // SAFETY: resetting and raising a signal.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
                libc::kill(libc::getpid(), sig);
            }
            std::thread::sleep(Duration::from_secs(10));
            exit(99)
        }
        "sleep" => loop {
            // SAFETY: waits for a signal.
            unsafe { libc::pause() };
        },
        "trap" => trap(rest),
        "fds" => fds(),
        "tty" => tty(),
        "group-trap" => group_trap(),
        "orphans" => orphans(num(0)),
        "orphans-bench" => orphans_bench(num(0)),
        "daemon" => daemon(rest),
        "print" => print(rest),
        "notify-ready" => {
            std::thread::sleep(Duration::from_millis(num(0) as u64));
            let addr = std::env::var("NOTIFY_SOCKET").unwrap_or_default();
            let name = addr.strip_prefix('@').unwrap_or(&addr);
            use std::os::linux::net::SocketAddrExt;
            let to = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .expect("an abstract NOTIFY_SOCKET");
            let sock = std::os::unix::net::UnixDatagram::unbound().expect("socket");
            sock.send_to_addr(b"STATUS=warmed up\nREADY=1", &to)
                .expect("send");
            say("notified");
            loop {
                // SAFETY: waits for a signal.
                unsafe { libc::pause() };
            }
        }
        "listen" => {
            let l = std::net::TcpListener::bind(("127.0.0.1", num(0) as u16)).expect("bind");
            say("listening");
            for c in l.incoming() {
                drop(c);
            }
        }
        "serve" => serve(),
        "serve-http" => serve_http(rest.first().map(String::as_str).unwrap_or("")),
        "http" => {
            let l = std::net::TcpListener::bind(("127.0.0.1", num(0) as u16)).expect("bind");
            let file = rest.get(1).cloned().unwrap_or_default();
            say("serving");
            for mut c in l.incoming().flatten() {
                use std::io::Read;
                let mut buf = [0u8; 1024];
                let n = c.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let sick = req.starts_with("GET /health ") && !std::path::Path::new(&file).exists();
                let status = if sick { "503 Unhealthy" } else { "200 OK" };
                let _ = c.write_all(format!("HTTP/1.0 {status}\r\n\r\n").as_bytes());
            }
        }
        "watchdog" => {
            let ms = rest.get(1).and_then(|s| s.parse().ok()).unwrap_or(100);
            for _ in 0..num(0) {
                notify(b"WATCHDOG=1");
                std::thread::sleep(Duration::from_millis(ms));
            }
            say("watchdog silent");
            loop {
                // SAFETY: waits for a signal.
                unsafe { libc::pause() };
            }
        }
        "hog" => {
            let mut memory = vec![0u8; num(0) << 20];
            // Touch every page so it is resident, not just reserved.
            for i in (0..memory.len()).step_by(4096) {
                memory[i] = 1;
            }
            say("hogging");
            std::hint::black_box(&memory);
            loop {
                // SAFETY: waits for a signal.
                unsafe { libc::pause() };
            }
        }
        other => {
            eprintln!("helper: unknown command {other}");
            exit(2)
        }
    }
}
