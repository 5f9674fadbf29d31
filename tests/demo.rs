//! The README's first command: `make demo` runs `demo/run.sh`, the main job (ginit as PID 1
//! supervising the Gin example through two zero-downtime reloads under load), and
//! `demo/pid1.sh` shows PID-1 duties alone. Both must keep doing what the README says.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn the_main_job_reloads_the_gin_app_twice_under_load_and_fails_no_request() {
    let dir = TempDir::new("demo-main");
    let out_path = dir.path("demo.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/run.sh");
    let mut child = std::process::Command::new("/bin/sh")
        .args([script, GINIT])
        .env("DEMO_PORT", free_port().to_string())
        .env("DEMO_PAUSE", "3")
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut status = None;
    // Building the app (first time: a minute or two), the load and reloads, the shutdown.
    let ended = wait_until(Duration::from_secs(600), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !ended {
        kill_tree(child.id() as i32);
        let _ = child.wait();
    }
    let text = std::fs::read_to_string(&out_path).unwrap();
    assert!(ended, "the demo did not end:\n{text}");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{text}");
    assert!(text.contains("requests failed: 0\n"), "{text}");
    let served: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("requests served: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(served > 1000, "hey got only {served} answers:\n{text}");
    // Two instances, replaced twice: six processes served.
    let pids: BTreeSet<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("pids that served: "))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(pids.len(), 6, "{pids:?}\n{text}");
    assert_eq!(
        text.matches("replaced web (2 instances)").count(),
        2,
        "{text}"
    );
    assert!(text.contains("web        0"), "the status table:\n{text}");
    assert!(text.contains("+ ginit exited with status 0"), "{text}");
}

#[test]
fn the_pid1_demo_runs_as_the_readme_says() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/pid1.sh");
    let argv = vec!["/bin/sh".to_string(), script.to_string(), GINIT.to_string()];
    let mut run = Run::command(&argv, "unshare", |_| {});
    for want in [
        "migrate | done",
        "worker.0 | up",
        "worker.1 | up",
        "program: exiting with status 3",
        "worker.0 | SIGTERM, finishing",
        "daemon: SIGTERM received, cleaning up",
        "+ ginit exited with status 3",
    ] {
        run.line(want);
    }
    assert_eq!(run.wait(), 0, "{}", run.stderr());
    run.stderr_has("flaky | crashing");
    run.stderr_has("flaky failed: more than 4 restarts in 30s; giving up");
}
