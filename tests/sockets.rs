//! Socket hand-over through the real binary as PID 1: ginit binds TCP and unix listeners
//! once, passes them as fds 3.. with LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES, and keeps them
//! while instances come and go, so a connection made while no instance runs waits in the
//! backlog and is served by the next one.

mod common;

use common::*;
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

fn answer(mut stream: impl Read) -> String {
    let mut s = String::new();
    // A reset connection reads as an error: it shows up as an empty answer.
    let _ = stream.read_to_string(&mut s);
    s.trim().to_string()
}

#[test]
fn sockets_are_handed_over_and_outlive_their_programs() {
    let dir = TempDir::new("sockets");
    let port = free_port();
    let cfg = config(
        &dir,
        &format!(
            r#"
sockets:
  http: {{listen: "tcp://127.0.0.1:{port}"}}
  admin: {{listen: "unix://DIR/admin.sock", mode: "0600"}}
programs:
  web:
    command: [HELPER, serve]
    sockets: [http, admin]
    stdout: prefix
    backoff: {{initial: 500ms}}
"#
        ),
    );
    let mut run = Run::start(Mode::Pid1, &["-c", &cfg]);
    // fds 0-2 and exactly the two sockets, with the protocol's variables.
    run.line("web | fds=0,1,2,3,4");
    run.line("web | listen fds=2 pid=ok names=http:admin");
    let first = answer(TcpStream::connect(("127.0.0.1", port)).unwrap());
    assert!(first.starts_with("served by "), "{first}");
    assert_eq!(
        answer(UnixStream::connect(dir.path("admin.sock")).unwrap()),
        first
    );

    // Kill the program: while it waits out its backoff the socket stays open, so a
    // connection is accepted by the kernel into the backlog and served by the next instance.
    let web = descendants(run.pid)
        .into_iter()
        .find(|&p| comm(p).as_deref() == Some("ginit-test-help"))
        .unwrap();
    signal(web, libc::SIGKILL);
    run.stderr_has("web will restart in 500ms");
    let waiting =
        TcpStream::connect(("127.0.0.1", port)).expect("no refusal while no instance runs");
    let second = answer(waiting);
    assert!(second.starts_with("served by "), "{second}");
    assert_ne!(second, first, "served by the new instance");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}

#[test]
fn bad_socket_configs_are_refused_before_anything_starts() {
    let dir = TempDir::new("sockets-bad");
    let cfg = config(
        &dir,
        r#"
sockets:
  http: {listen: "tcp://0.0.0.0"}
  web2: {listen: "unix://relative.sock"}
  tcp: {listen: "tcp://127.0.0.1:1", mode: "0600"}
programs:
  web:
    command: [HELPER, serve]
    sockets: [htp]
"#,
    );
    let out = std::process::Command::new(GINIT)
        .args(["check", "-c", &cfg])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sockets.http.listen: `tcp://0.0.0.0` is not a listen address"),
        "{err}"
    );
    assert!(err.contains("the socket path must be absolute"), "{err}");
    assert!(
        err.contains("`mode` and `owner` are for unix sockets"),
        "{err}"
    );
    assert!(
        err.contains("programs.web.sockets: no socket named `htp` (did you mean `http`?)"),
        "{err}"
    );
}

#[test]
fn replace_reloads_without_refusals_and_rolls_back_a_broken_build() {
    let dir = TempDir::new("sockets-replace");
    let port = free_port();
    let cfg = config(
        &dir,
        &format!(
            r#"
sockets:
  http: {{listen: "tcp://127.0.0.1:{port}", backlog: 512}}
programs:
  web:
    command: ["/bin/sh", "-c", "if [ -e DIR/broken ]; then exit 3; fi; exec HELPER serve"]
    sockets: [http]
    ready: {{notify: true, timeout: 5s}}
    instances: 2
    stdout: prefix
"#
        ),
    );
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    assert!(wait_until(PATIENCE, || client(&run, &["ready"])
        .status
        .success()));
    let served = || answer(TcpStream::connect(("127.0.0.1", port)).expect("never refused"));
    let before = served();

    // Clients keep connecting during the reloads: none may be refused or left unanswered.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hammer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let served = TcpStream::connect(("127.0.0.1", port))
                    .map(|s| answer(s).starts_with("served by"));
                match served {
                    Ok(true) => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    for _ in 0..3 {
        let out = client(&run, &["reload", "web"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("replaced web"));
    }
    // A build that never becomes ready: rolled back, the old instances keep serving.
    std::fs::write(dir.path("broken"), "").unwrap();
    let out = client(&run, &["reload", "web"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ended with status 3 before it was ready; the old one keeps serving"),
        "{err}"
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed) = hammer.join().unwrap();
    assert_eq!(failed, 0, "{ok} served, {failed} failed");
    assert!(ok > 0);
    let after = served();
    assert!(
        after.starts_with("served by") && after != before,
        "{before} / {after}"
    );
    assert!(client(&run, &["ready"]).status.success());
    let status = String::from_utf8_lossy(&client(&run, &["status"]).stdout).into_owned();
    assert_eq!(
        status.lines().filter(|l| l.starts_with("web ")).count(),
        2,
        "{status}"
    );
}

#[test]
fn a_changed_config_is_applied_by_replacing_instances() {
    let dir = TempDir::new("sockets-reload-config");
    let port = free_port();
    let yaml = format!(
        r#"
sockets:
  http: {{listen: "tcp://127.0.0.1:{port}"}}
programs:
  web:
    command: [HELPER, serve]
    env: {{VERSION: "1"}}
    sockets: [http]
    ready: {{notify: true, timeout: 5s}}
"#
    );
    let cfg = config(&dir, &yaml);
    let run = Run::start(Mode::Pid1, &["-c", &cfg]);
    assert!(wait_until(PATIENCE, || client(&run, &["ready"])
        .status
        .success()));
    let before = answer(TcpStream::connect(("127.0.0.1", port)).unwrap());
    config(&dir, &yaml.replace("VERSION: \"1\"", "VERSION: \"2\""));
    let out = client(&run, &["reload-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run.stderr_has("the new web is ready: stopping the old one");
    run.stderr_has("replaced web");
    let after = answer(TcpStream::connect(("127.0.0.1", port)).unwrap());
    assert_ne!(before, after);
    assert!(after.starts_with("served by"));
}

#[test]
fn sockets_passed_to_ginit_are_adopted_by_name() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new("sockets-inherit");
    // The "service manager": this test binds the socket and starts ginit with it on fd 3.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = config(
        &dir,
        r#"
sockets:
  web: {inherit: http}
programs:
  app:
    command: [HELPER, serve]
    sockets: [web]
    stdout: prefix
"#,
    );
    let fd = listener.as_raw_fd();
    let mut run = Run::start_with(Mode::Pid1, &["-c", &cfg], |cmd| {
        // LISTEN_PID=1: ginit is PID 1 of its namespace, as under a container runtime.
        cmd.env("LISTEN_FDS", "1")
            .env("LISTEN_PID", "1")
            .env("LISTEN_FDNAMES", "http");
        // SAFETY: dup2 in the forked child before exec; fd 3 is then inherited (no CLOEXEC).
        unsafe {
            cmd.pre_exec(move || {
                // dup2 onto itself keeps close-on-exec: clear it explicitly.
                if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    drop(listener); // ginit holds it now
    // The program sees the config's name for it (web), not the manager's (http): ginit's
    // own LISTEN_* variables are replaced by the hand-over's.
    run.line("app | listen fds=1 pid=ok names=web");
    let reply = answer(TcpStream::connect(("127.0.0.1", port)).unwrap());
    assert!(reply.starts_with("served by"), "{reply}");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait(), 0, "{}", run.stderr());
}
