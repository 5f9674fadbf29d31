//! The README's first command: `demo/run.sh` runs ginit as PID 1 with the demo config and
//! must keep doing what the README says it does.

mod common;

use common::*;

#[test]
fn the_demo_runs_as_the_readme_says() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/run.sh");
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
