//! The release shape of ginit: a fully static binary that runs as PID 1 in an otherwise empty
//! root directory (a chroot in fresh mount and PID namespaces), as in a `FROM scratch` image.
//! No /proc, no /etc, no shell, no C library on disk.

mod common;

use common::*;

struct Root {
    dir: TempDir,
}

impl Root {
    fn new() -> Root {
        let (ginit, helper) = static_binaries();
        let dir = TempDir::new("root");
        std::fs::copy(ginit, dir.path("ginit")).unwrap();
        std::fs::copy(helper, dir.path("helper")).unwrap();
        assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 2);
        Root { dir }
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut argv = unshare_prefix();
        argv.extend(["-m".to_string(), format!("--root={}", self.dir.0.display())]);
        argv.push("/ginit".into());
        argv.extend(args.iter().map(|s| s.to_string()));
        Run::command(&argv, "ginit", |_| {})
    }
}

#[test]
fn ginit_runs_as_pid_1_in_an_empty_root() {
    let root = Root::new();
    // The program's status comes back, and the daemon it leaves behind gets SIGTERM first,
    // with no /proc to look at.
    let mut run = root.run(&["--", "/helper", "daemon", "--exit", "3"]);
    run.line("daemon-ready");
    run.line("daemon got SIGTERM");
    assert_eq!(run.wait(), 3);

    let mut run = root.run(&["--", "/helper", "trap", "--exit-on", "TERM"]);
    run.line("ready");
    run.signal(libc::SIGUSR1);
    run.line("got SIGUSR1");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0);

    let mut run = root.run(&["--", "/bin/sh"]);
    assert_eq!(run.wait(), 127);
    assert!(
        run.stderr().contains("cannot run `/bin/sh`"),
        "{}",
        run.stderr()
    );
    // PATH lookup with no PATH and no directories at all.
    let mut run = root.run(&["--", "sh"]);
    assert_eq!(run.wait(), 127);
}
