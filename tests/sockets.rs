//! Socket hand-over through the real binary as PID 1: ginit binds TCP and unix listeners
//! once, passes them as fds 3.. with LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES, and keeps them
//! while instances come and go, so a connection made while no instance runs waits in the
//! backlog and is served by the next one.

mod common;

use common::*;
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn answer(mut stream: impl Read) -> String {
    let mut s = String::new();
    stream.read_to_string(&mut s).unwrap();
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
