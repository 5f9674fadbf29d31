//! `ginit check`: a valid config prints the plan and exits 0; an invalid one prints every
//! error with file:line:col, key path and hints, and exits 2.

mod common;

use common::*;
use std::process::Command;

fn check(dir: &TempDir, yaml: &str) -> (i32, String, String) {
    let path = dir.path("ginit.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(GINIT)
        .args(["check", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_valid_config_prints_the_plan() {
    let dir = TempDir::new("check-ok");
    let (code, out, err) = check(
        &dir,
        "programs:\n  web:\n    command: sleep 100\n    depends_on: [migrate]\n    instances: 2\n  migrate:\n    command: [\"/bin/true\"]\n    oneshot: true\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"), "{out}");
    assert!(out.contains("start order: migrate, web"), "{out}");
    assert!(out.contains("instances: 2"), "{out}");
    assert!(out.contains("restart: on-failure"), "{out}");
}

#[test]
fn an_invalid_config_reports_every_error() {
    let dir = TempDir::new("check-bad");
    let (code, out, err) = check(
        &dir,
        "programs:\n  web:\n    command: /no/such/server\n    restat: always\n    depends_on: [db]\n  db:\n    command: sleep 1\n    user: no-such-user\n    stop: {signal: SIGFOO}\n",
    );
    assert_eq!(code, 2);
    assert_eq!(out, "");
    let file = dir.path("ginit.yaml");
    let file = file.display();
    for want in [
        format!("{file}:3:14: programs.web.command: cannot run `/no/such/server`"),
        format!("{file}:4:5: programs.web.restat: unknown key `restat` (did you mean `restart`?)"),
        format!("{file}:8:11: programs.db.user: no user named `no-such-user`"),
        format!("{file}:9:20: programs.db.stop.signal: `SIGFOO` is not a signal"),
        "ginit: 4 errors in".to_string(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn the_config_comes_from_ginit_config_and_a_missing_one_is_an_error() {
    let dir = TempDir::new("check-env");
    let path = dir.path("c.yaml");
    std::fs::write(&path, "programs:\n  a: {command: sleep 1}\n").unwrap();
    let out = Command::new(GINIT)
        .arg("check")
        .env("GINIT_CONFIG", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = Command::new(GINIT)
        .args(["check", "-c", dir.path("absent.yaml").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the config"));
}
