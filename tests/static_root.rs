//! The release shape of ginit: a fully static binary that runs as PID 1 in an otherwise empty
//! root directory (a chroot in fresh mount and PID namespaces), as in a `FROM scratch` image.
//! No /proc, no /etc, no shell, no C library on disk.

mod common;

use common::*;

/// True when the ELF file has no program interpreter, i.e. needs no dynamic loader.
fn is_static(path: &str) -> bool {
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

struct Root {
    dir: TempDir,
}

impl Root {
    fn new() -> Root {
        for bin in [GINIT, HELPER] {
            assert!(
                is_static(bin),
                "{bin} is dynamically linked: build with an explicit --target (`make test`) so \
                 .cargo/config.toml links it statically"
            );
        }
        let dir = TempDir::new("root");
        std::fs::copy(GINIT, dir.path("ginit")).unwrap();
        std::fs::copy(HELPER, dir.path("helper")).unwrap();
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
