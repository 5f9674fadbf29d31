//! Single-program mode (`ginit -- PROGRAM`), driven through the real binary as PID 1 of a
//! fresh PID namespace and as a plain subreaper: exit statuses, signal forwarding, reaping,
//! the clearing of leftovers, and the clean start of the child.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::Duration;

#[test]
fn exit_status_is_the_programs() {
    for mode in MODES {
        for code in ["0", "3", "255"] {
            let mut run = Run::start(mode, &["--", HELPER, "exit", code]);
            assert_eq!(run.wait().to_string(), code, "{mode:?}");
        }
    }
}

#[test]
fn a_program_killed_by_signal_n_gives_128_plus_n() {
    for mode in MODES {
        let mut run = Run::start(mode, &["--", HELPER, "kill-self", "KILL"]);
        assert_eq!(run.wait(), 137, "{mode:?}");
        let mut run = Run::start(mode, &["--", HELPER, "kill-self", "TERM"]);
        assert_eq!(run.wait(), 143, "{mode:?}");
    }
}

#[test]
fn a_missing_program_is_127_and_named() {
    for mode in MODES {
        let mut run = Run::start(mode, &["--", "/nonexistent/server"]);
        assert_eq!(run.wait(), 127);
        assert!(
            run.stderr().contains("cannot run `/nonexistent/server`"),
            "{}",
            run.stderr()
        );
        let mut run = Run::start(mode, &["no-such-program-on-path"]);
        assert_eq!(run.wait(), 127);
        assert!(
            run.stderr().contains("no-such-program-on-path"),
            "{}",
            run.stderr()
        );
    }
}

#[test]
fn a_program_that_cannot_be_executed_is_126_and_named() {
    let dir = TempDir::new("noexec");
    let script = dir.path("not-executable");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let script = script.to_str().unwrap();
    for mode in MODES {
        let mut run = Run::start(mode, &["--", script]);
        assert_eq!(run.wait(), 126);
        assert!(run.stderr().contains(script), "{}", run.stderr());
        let mut run = Run::start(mode, &["--", dir.0.to_str().unwrap()]);
        assert_eq!(run.wait(), 126);
        assert!(run.stderr().contains("directory"), "{}", run.stderr());
    }
    // Executable bit set but not a valid executable: the exec itself fails.
    let bogus = dir.path("bogus");
    std::fs::write(&bogus, [0x7f, b'E', b'L', b'F', 0, 0, 0, 0]).unwrap();
    std::fs::set_permissions(&bogus, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut run = Run::start(Mode::Subreaper, &["--", bogus.to_str().unwrap()]);
    assert_eq!(run.wait(), 126);
    assert!(run.stderr().contains("bogus"), "{}", run.stderr());
}

#[test]
fn usage_errors_exit_2_with_a_reason() {
    for (args, want) in [
        (&[][..], "nothing to run"),
        (&["--"][..], "nothing to run"),
        (&["--bogus", "true"][..], "--bogus"),
        (&["--grace", "soon", "true"][..], "not a duration"),
        (&["stop"][..], "name at least one program"),
    ] {
        let mut run = Run::start(Mode::Subreaper, args);
        assert_eq!(run.wait(), 2, "{args:?}");
        let err = run.stderr();
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn version_and_help() {
    let out = std::process::Command::new(GINIT)
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ginit "));
    let out = std::process::Command::new(GINIT)
        .arg("-h")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--grace"));
}

/// Every catchable signal but SIGCHLD reaches the program; the shutdown signals too.
#[test]
fn every_catchable_signal_is_forwarded() {
    let rt_min = libc::SIGRTMIN();
    let rt_max = libc::SIGRTMAX();
    let mut sigs = vec![
        (libc::SIGHUP, "SIGHUP".to_string()),
        (libc::SIGUSR1, "SIGUSR1".into()),
        (libc::SIGUSR2, "SIGUSR2".into()),
        (libc::SIGPIPE, "SIGPIPE".into()),
        (libc::SIGALRM, "SIGALRM".into()),
        (libc::SIGWINCH, "SIGWINCH".into()),
        (libc::SIGCONT, "SIGCONT".into()),
        (libc::SIGTSTP, "SIGTSTP".into()),
        (libc::SIGTTIN, "SIGTTIN".into()),
        (libc::SIGTTOU, "SIGTTOU".into()),
        (libc::SIGURG, "SIGURG".into()),
        (libc::SIGXCPU, "SIGXCPU".into()),
        (libc::SIGXFSZ, "SIGXFSZ".into()),
        (libc::SIGVTALRM, "SIGVTALRM".into()),
        (libc::SIGPROF, "SIGPROF".into()),
        (libc::SIGIO, "SIGIO".into()),
        (libc::SIGPWR, "SIGPWR".into()),
        (libc::SIGSTKFLT, "SIGSTKFLT".into()),
        (libc::SIGABRT, "SIGABRT".into()),
    ];
    for rt in [rt_min, rt_min + 5, rt_max] {
        sigs.push((rt, format!("SIG{rt}")));
    }
    for mode in MODES {
        let mut run = Run::start(mode, &["--", HELPER, "trap", "--exit-on", "TERM"]);
        run.line("ready");
        for (sig, name) in &sigs {
            run.signal(*sig);
            run.line(&format!("got {name}"));
        }
        run.signal(libc::SIGTERM);
        run.line("got SIGTERM");
        assert_eq!(run.wait(), 0, "{mode:?}");
    }
}

#[test]
fn sigint_and_sigquit_are_forwarded() {
    for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGQUIT, "SIGQUIT")] {
        let mut run = Run::start(Mode::Pid1, &["--", HELPER, "trap", "--exit-on", name]);
        run.line("ready");
        run.signal(sig);
        run.line(&format!("got {name}"));
        assert_eq!(run.wait(), 0);
    }
}

#[test]
fn a_second_sigterm_kills_a_program_that_ignored_the_first() {
    for mode in MODES {
        for second in [libc::SIGTERM, libc::SIGINT] {
            let mut run = Run::start(mode, &["--", HELPER, "trap"]);
            run.line("ready");
            run.signal(libc::SIGTERM);
            run.line("got SIGTERM");
            run.signal(second);
            assert_eq!(run.wait(), 137, "{mode:?}");
        }
    }
}

#[test]
fn pgroup_sends_signals_to_the_whole_process_group() {
    for mode in MODES {
        let mut run = Run::start(mode, &["-g", "--", HELPER, "group-trap"]);
        run.line("ready");
        run.signal(libc::SIGUSR1);
        run.line("leader got SIGUSR1");
        run.line("member got SIGUSR1");
        run.signal(libc::SIGTERM);
        assert_eq!(run.wait(), 0);
    }
    // Without -g only the program itself is signalled.
    let mut run = Run::start(Mode::Pid1, &["--", HELPER, "group-trap"]);
    run.line("ready");
    run.signal(libc::SIGUSR1);
    run.line("leader got SIGUSR1");
    run.signal(libc::SIGTERM);
    run.line("leader got SIGTERM");
    run.line("member got SIGTERM"); // sent by the leader itself
    assert_eq!(run.wait(), 0);
    assert!(
        !run.all_lines().iter().any(|l| l == "member got SIGUSR1"),
        "{:?}",
        run.all_lines()
    );
}

#[test]
fn adopted_orphans_are_reaped() {
    for mode in MODES {
        let mut run = Run::start(mode, &["--", HELPER, "orphans", "300"]);
        run.line("reaped 300");
        assert_eq!(run.wait(), 0, "{mode:?}");
    }
}

#[test]
fn leftovers_get_sigterm_and_are_reaped_before_ginit_exits() {
    for mode in MODES {
        let mut run = Run::start(mode, &["--", HELPER, "daemon", "--exit", "5"]);
        let daemon: i32 = run
            .line("daemon-ready")
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        run.line("daemon got SIGTERM");
        assert_eq!(run.wait(), 5, "{mode:?}");
        if mode == Mode::Subreaper {
            assert!(!process_exists(daemon), "daemon {daemon} outlived ginit");
        }
    }
}

#[test]
fn stubborn_leftovers_are_killed_after_the_grace_period() {
    for mode in MODES {
        let mut run = Run::start(
            mode,
            &[
                "--grace",
                "100ms",
                "--",
                HELPER,
                "daemon",
                "--stubborn",
                "--exit",
                "4",
            ],
        );
        let daemon: i32 = run
            .line("daemon-ready")
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(run.wait(), 4, "{mode:?}");
        if mode == Mode::Subreaper {
            assert!(!process_exists(daemon), "daemon {daemon} outlived ginit");
        }
    }
}

#[test]
fn sigterm_during_the_grace_period_skips_to_sigkill() {
    for mode in MODES {
        // A grace period far longer than the test's patience: only the skip can end the run.
        let mut run = Run::start(
            mode,
            &[
                "-v",
                "--grace",
                "1h",
                "--",
                HELPER,
                "daemon",
                "--stubborn",
                "--exit",
                "6",
            ],
        );
        run.line("daemon-ready");
        run.stderr_has("sent SIGTERM to the processes left behind");
        run.signal(libc::SIGTERM);
        assert_eq!(run.wait(), 6, "{mode:?}");
    }
}

/// SIGBLK/SIGIGN of the program, read by a program that does not touch its signals (cat).
fn signal_state(run: &mut Run) -> (String, String) {
    let blk = run.line("SigBlk:");
    let ign = run.line("SigIgn:");
    (blk, ign)
}

#[test]
fn the_program_starts_with_a_clean_signal_state_and_only_fds_0_1_2() {
    let dir = TempDir::new("fds");
    let leak = std::fs::File::create(dir.path("leak")).unwrap();
    use std::os::fd::AsRawFd;
    let leak_fd = leak.as_raw_fd();
    for mode in MODES {
        let dirty = |cmd: &mut std::process::Command| {
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    // An inherited fd without CLOEXEC, a blocked signal and an ignored one,
                    // as a careless parent (or nohup) would leave them.
                    libc::dup2(leak_fd, 7);
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, libc::SIGUSR1);
                    libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                    libc::signal(libc::SIGHUP, libc::SIG_IGN);
                    Ok(())
                });
            }
        };
        let mut run = Run::start_with(mode, &["--", "cat", "/proc/self/status"], dirty);
        let (blk, ign) = signal_state(&mut run);
        assert_eq!(run.wait(), 0);
        assert!(blk.ends_with("0000000000000000"), "{mode:?}: {blk}");
        assert!(ign.ends_with("0000000000000000"), "{mode:?}: {ign}");
        let mut run = Run::start_with(mode, &["--", HELPER, "fds"], dirty);
        assert_eq!(run.line("fds="), "fds=0,1,2", "{mode:?}");
        assert_eq!(run.wait(), 0);
    }
}

#[test]
fn an_idle_ginit_never_wakes_up() {
    let mut run = Run::start(Mode::Subreaper, &["--", HELPER, "trap"]);
    run.line("ready");
    run.wait_idle();
    let switches = |pid| {
        (
            status_field(pid, "voluntary_ctxt_switches").unwrap(),
            status_field(pid, "nonvoluntary_ctxt_switches").unwrap(),
        )
    };
    let before = switches(run.pid);
    // A window to observe, not a wait for a condition: nothing may happen in it.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(switches(run.pid), before, "ginit woke up while idle");
    // The run's Drop kills ginit and the program.
}

#[test]
fn as_a_subreaper_ginit_says_so_at_debug_level() {
    let mut run = Run::start(Mode::Subreaper, &["-v", "--", HELPER, "exit", "0"]);
    assert_eq!(run.wait(), 0);
    assert!(run.stderr().contains("subreaper"), "{}", run.stderr());
    let mut run = Run::start(Mode::Pid1, &["-v", "--", HELPER, "exit", "0"]);
    assert_eq!(run.wait(), 0);
    assert!(!run.stderr().contains("subreaper"), "{}", run.stderr());
    // The same through GINIT_LOG, and silence by default.
    let mut run = Run::start_with(Mode::Subreaper, &["--", HELPER, "exit", "0"], |c| {
        c.env("GINIT_LOG", "debug");
    });
    assert_eq!(run.wait(), 0);
    assert!(run.stderr().contains("subreaper"), "{}", run.stderr());
    let mut run = Run::start(Mode::Subreaper, &["--", HELPER, "exit", "0"]);
    assert_eq!(run.wait(), 0);
    assert_eq!(run.stderr(), "");
}
