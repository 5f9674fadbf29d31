//! File watches through the real binary as PID 1 of a fresh namespace: the config reloads
//! itself when edited (once per burst, a broken edit changing nothing), follows a Kubernetes
//! ConfigMap's `..data` swap, programs are reloaded when their files change (ignored names
//! and all), a program that writes into its own watched directory does not loop, and an idle
//! ginit with watches and a schedule never wakes up (a run an hour away is one deadline).
//! (The Gin app replaced under load by a new binary is in tests/gin.rs.)

mod common;

use common::*;
use std::time::Duration;

/// The pid of `program`'s instance 0, if it runs.
fn pid(run: &Run, program: &str) -> Option<i64> {
    status_instances(run)
        .iter()
        .find(|i| i["program"] == program)
        .and_then(|i| i["pid"].as_i64())
}

/// Writes `text` to `path` as an editor that saves in place would.
fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn program(name: &str) -> String {
    format!("  {name}: {{command: [HELPER, sleep]}}\n")
}

#[test]
fn an_edited_config_is_applied_once_and_a_broken_edit_changes_nothing() {
    let dir = TempDir::new("watch-config");
    let head = "config: {watch: true, debounce: 300ms}\nprograms:\n";
    let cfg = config(&dir, &format!("{head}{}", program("a")));
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);
    let a = pid(&run, "a").unwrap();
    // A burst of three writes, as editors and `kubectl cp` make: one reload.
    let path = std::path::Path::new(&cfg);
    let with_b = format!("{head}{}{}", program("a"), program("b")).replace("HELPER", HELPER);
    for _ in 0..3 {
        write(path, &with_b);
    }
    assert!(
        wait_until(PATIENCE, || pid(&run, "b").is_some()),
        "{}",
        run.stderr()
    );
    run.stderr_has("config reloaded: 1 added, 0 removed, 0 changed, 1 unchanged");
    let stderr = run.stderr();
    assert_eq!(
        stderr.matches("changed: reloading the config").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        pid(&run, "a"),
        Some(a),
        "an unchanged program keeps running"
    );
    // A broken edit: nothing changes, and the error is shown (log and status).
    write(
        path,
        &format!("{head}  a: {{command: [HELPER, sleep], instances: many}}\n"),
    );
    run.stderr_has("the new config is invalid; nothing changed");
    let out = client(&run, &["status"]);
    assert!(
        text(&out).contains("last config reload failed"),
        "{}",
        text(&out)
    );
    assert!(pid(&run, "b").is_some() && pid(&run, "a") == Some(a));
    // The next good edit is applied.
    write(
        path,
        &format!("{head}{}", program("a")).replace("HELPER", HELPER),
    );
    assert!(
        wait_until(PATIENCE, || pid(&run, "b").is_none()),
        "{}",
        run.stderr()
    );
    let out = client(&run, &["status"]);
    assert!(
        !text(&out).contains("last config reload failed"),
        "{}",
        text(&out)
    );
    // A file deleted and made again (as some deploy tools do) is followed.
    std::fs::remove_file(path).unwrap();
    let with_c = format!("{head}{}{}", program("a"), program("c"));
    write(path, &with_c.replace("HELPER", HELPER));
    assert!(
        wait_until(PATIENCE, || pid(&run, "c").is_some()),
        "{}",
        run.stderr()
    );
    assert_eq!(pid(&run, "a"), Some(a));
}

#[test]
fn a_kubernetes_configmap_swap_is_followed() {
    let dir = TempDir::new("watch-k8s");
    // A ConfigMap volume: ginit.yaml -> ..data/ginit.yaml, ..data -> ..<timestamp>; and
    // app.conf beside it, which program `app` watches.
    let conf = dir.path("app.conf");
    let version = |n: u32, programs: &[&str]| {
        let d = dir.path(&format!("..2026_12_01_{n}"));
        std::fs::create_dir(&d).unwrap();
        let mut body: String = programs.iter().map(|p| program(p)).collect();
        body.push_str(&format!(
            "  app: {{command: [HELPER, sleep], watch: {{paths: [{}], debounce: 200ms}}}}\n",
            conf.display()
        ));
        let text = format!("config: {{watch: true, debounce: 200ms}}\nprograms:\n{body}");
        write(&d.join("ginit.yaml"), &text.replace("HELPER", HELPER));
        write(&d.join("app.conf"), &format!("version {n}\n"));
        d
    };
    let first = version(1, &["a"]);
    std::os::unix::fs::symlink(first.file_name().unwrap(), dir.path("..data")).unwrap();
    std::os::unix::fs::symlink("..data/ginit.yaml", dir.path("ginit.yaml")).unwrap();
    std::os::unix::fs::symlink("..data/app.conf", &conf).unwrap();
    let cfg = dir.path("ginit.yaml");
    let run = Run::start(Mode::Pid1, &["-c", cfg.to_str().unwrap()]);
    wait_socket(&run);
    // The kubelet's update: a new directory, a new link renamed over `..data`, the old one
    // removed. Twice, so the watch is seen to hold after the first swap.
    let mut old = first;
    for (n, programs, gone, came) in [(2, ["a", "b"], "", "b"), (3, ["b", "c"], "a", "c")] {
        let app = pid(&run, "app").unwrap();
        let new = version(n, &programs);
        let tmp = dir.path("..data_tmp");
        std::os::unix::fs::symlink(new.file_name().unwrap(), &tmp).unwrap();
        std::fs::rename(&tmp, dir.path("..data")).unwrap();
        std::fs::remove_dir_all(&old).unwrap();
        old = new;
        let ok = wait_until(PATIENCE, || {
            pid(&run, came).is_some() && (gone.is_empty() || pid(&run, gone).is_none())
        });
        assert!(ok, "swap {n}: {}", run.stderr());
        // Its file changed by the same swap: `app` is reloaded (its spec is not).
        let ok = wait_until(PATIENCE, || pid(&run, "app").is_some_and(|p| p != app));
        assert!(ok, "swap {n}: {}", run.stderr());
    }
}

#[test]
fn programs_reload_when_their_files_change_but_not_for_ignored_names_or_in_a_loop() {
    let dir = TempDir::new("watch-programs");
    std::fs::create_dir(dir.path("app")).unwrap();
    std::fs::create_dir(dir.path("own")).unwrap();
    let cfg = config(
        &dir,
        r#"
programs:
  web:
    command: [HELPER, sleep]
    watch: {paths: [DIR/app], ignore: ["*.log"], debounce: 200ms}
  writer:
    command: [/bin/sh, -c, 'date +%s%N >> DIR/own/stamp; exec HELPER sleep']
    watch: {paths: [DIR/own], debounce: 100ms}
"#,
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);
    let web = pid(&run, "web").unwrap();
    // An ignored name first, then a file that counts: the reload names the second.
    write(&dir.path("app/debug.log"), "x");
    write(&dir.path("app/index.html"), "<p>new</p>");
    let reloaded =
        |before: i64| wait_until(PATIENCE, || pid(&run, "web").is_some_and(|p| p != before));
    assert!(reloaded(web), "{}", run.stderr());
    let index = dir.path("app/index.html");
    run.stderr_has(&format!("web: {} changed: reloading it", index.display()));
    assert!(
        !run.stderr().contains("debug.log changed"),
        "{}",
        run.stderr()
    );
    // A directory made later is watched too.
    let web = pid(&run, "web").unwrap();
    std::fs::create_dir(dir.path("app/static")).unwrap();
    assert!(reloaded(web), "{}", run.stderr());
    let web = pid(&run, "web").unwrap();
    write(&dir.path("app/static/site.css"), "p {}");
    assert!(reloaded(web), "{}", run.stderr());
    run.stderr_has("static/site.css changed: reloading it");
    // `writer` writes into its own watched directory at every start: after five reloads in
    // a minute its watch is paused, and it keeps running.
    run.stderr_has("writer: its watched files changed again");
    run.stderr_has("it may write into its own watched paths");
    let writer = pid(&run, "writer").unwrap();
    let stamps = std::fs::read_to_string(dir.path("own/stamp")).unwrap();
    assert_eq!(
        stamps.lines().count(),
        6,
        "the first start and five reloads: {stamps}"
    );
    // A window to observe, not a wait for a condition: no further reload may come.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pid(&run, "writer"), Some(writer));
    // `ginit reload writer` turns its watch back on (and the loop begins again).
    let out = client(&run, &["reload", "writer"]);
    assert!(out.status.success(), "{}", text(&out));
    run.stderr_has("writer: reloads on change are on again");
}

#[test]
fn an_idle_ginit_with_watches_and_a_schedule_never_wakes_up() {
    let dir = TempDir::new("watch-idle");
    std::fs::create_dir(dir.path("app")).unwrap();
    let cfg = config(
        &dir,
        r#"
config: {watch: true}
programs:
  web:
    command: [HELPER, sleep]
    watch: {paths: [DIR/app]}
  hourly:
    command: [HELPER, exit, "0"]
    every: 1h
"#,
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);
    run.wait_idle();
    let switches = |pid| {
        (
            status_field(pid, "voluntary_ctxt_switches").unwrap(),
            status_field(pid, "nonvoluntary_ctxt_switches").unwrap(),
        )
    };
    let ginit = run.pid;
    let before = switches(ginit);
    // A window to observe, not a wait for a condition: nothing may happen in it.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(switches(ginit), before, "ginit woke up while idle");
}

#[test]
fn past_the_watch_limit_ginit_says_so_once_and_sighup_still_works() {
    let dir = TempDir::new("watch-limit");
    // More directories than ginit watches (4096): the rest are left unwatched.
    for i in 0..4100 {
        std::fs::create_dir_all(dir.path(&format!("tree/{}/{i}", i % 64))).unwrap();
    }
    let head = "programs:\n  big: {command: [HELPER, sleep], watch: {paths: [DIR/tree]}}\n";
    let cfg = config(&dir, head);
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    wait_socket(&run);
    run.stderr_has("cannot watch files (more than 4096 directories)");
    run.stderr_has("SIGHUP and `ginit reload-config` still reload the config");
    // SIGHUP reloads (the watch set is made again, and the limit is not said again).
    let text = format!("{head}{}", program("more")).replace("DIR", dir.0.to_str().unwrap());
    write(std::path::Path::new(&cfg), &text.replace("HELPER", HELPER));
    run.signal(libc::SIGHUP);
    assert!(
        wait_until(PATIENCE, || pid(&run, "more").is_some()),
        "{}",
        run.stderr()
    );
    assert_eq!(
        run.stderr().matches("cannot watch files").count(),
        1,
        "{}",
        run.stderr()
    );
    // And no polling took the place of the watch: idle means asleep.
    run.wait_idle();
    let switches = || status_field(run.pid, "voluntary_ctxt_switches").unwrap();
    let before = switches();
    // A window to observe, not a wait for a condition: nothing may happen in it.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(switches(), before, "ginit woke up while idle");
}
