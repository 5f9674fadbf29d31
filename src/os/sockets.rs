//! Listening sockets that ginit binds (or adopts) once and keeps for its whole life.
//!
//! Bound before any program starts, so a program can run as a non-root user and still serve
//! port 80, and kept open while instances come and go, so connections that arrive while no
//! instance is up wait in the backlog instead of being refused. Every fd here is close-on-exec:
//! a child gets a socket only when the spawn plan moves it to fd 3 and up (LISTEN_FDS).
//!
//! Sockets handed to ginit itself by a service manager (systemd or podman socket activation:
//! `LISTEN_FDS`, `LISTEN_PID` equal to ginit's pid or 1, `LISTEN_FDNAMES`) are adopted by
//! name or index. System calls, the adoption of fd numbers and clearing the variables from
//! ginit's environment go through [`super::sys`]. It knows nothing of programs.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::sys::{self, SockAddr};

/// A listening stream socket of `family` bound to `addr`; `shown` names it in errors.
fn listener(
    family: libc::c_int,
    addr: &SockAddr,
    backlog: u32,
    shown: &dyn std::fmt::Display,
) -> Result<OwnedFd, String> {
    let fd = sys::socket(family, libc::SOCK_STREAM).map_err(|e| format!("socket: {e}"))?;
    if family != libc::AF_UNIX {
        // Best effort: without it a restarted ginit may wait out TIME_WAIT to bind again.
        let _ = sys::enable_option(fd.as_raw_fd(), libc::SO_REUSEADDR);
    }
    sys::bind(fd.as_raw_fd(), addr).map_err(|e| format!("cannot bind {shown}: {e}"))?;
    sys::listen(fd.as_raw_fd(), backlog).map_err(|e| format!("cannot listen on {shown}: {e}"))?;
    Ok(fd)
}

/// A TCP listener on `addr` (SO_REUSEADDR, so a restarted ginit can bind at once).
pub fn bind_tcp(addr: SocketAddr, backlog: u32) -> Result<OwnedFd, String> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    listener(family, &SockAddr::inet(addr), backlog, &addr)
}

/// A Unix stream listener at `path`. A stale socket file is replaced; any other file there is
/// an error. `mode` and `owner` are applied to the socket file.
pub fn bind_unix(
    path: &Path,
    backlog: u32,
    mode: Option<u32>,
    owner: Option<(u32, u32)>,
) -> Result<OwnedFd, String> {
    use std::os::unix::fs::FileTypeExt;
    let shown = path.display();
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(format!("{shown} exists and is not a socket"));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("{shown} is in use by another process"));
        }
        std::fs::remove_file(path).map_err(|e| format!("cannot replace {shown}: {e}"))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let bytes = path.as_os_str().as_bytes();
    let Some(addr) = SockAddr::unix_path(bytes) else {
        return Err(if bytes.contains(&0) {
            format!("{shown}: a unix socket path cannot hold a NUL byte")
        } else {
            format!("{shown}: the path is too long for a unix socket")
        });
    };
    let fd = listener(libc::AF_UNIX, &addr, backlog, &shown)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(|e| format!("cannot change the owner of {shown}: {e}"))?;
    }
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("cannot change the mode of {shown}: {e}"))?;
    }
    Ok(fd)
}

/// The sockets a service manager passed to ginit, with their names (`LISTEN_FDNAMES`, or
/// the index as text when unnamed). The variables are removed from ginit's environment so
/// programs do not see them. Empty unless `LISTEN_PID` is ginit's pid (or 1, as a container
/// runtime that cannot know the pid in advance passes it).
pub fn inherited() -> Vec<(String, OwnedFd)> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id() || p == 1);
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    // Programs must not see them (ginit reads its environment once, at start-up).
    sys::remove_env(&["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]);
    if !pid_ok || count <= 0 {
        return Vec::new();
    }
    let names: Vec<&str> = names.split(':').collect();
    sys::adopt_listen_fds(count)
        .into_iter()
        .map(|(fd, owned)| {
            let i = (fd - 3) as usize;
            let name = names
                .get(i)
                .filter(|n| !n.is_empty())
                .map_or_else(|| i.to_string(), |n| n.to_string());
            (name, owned)
        })
        .collect()
}

/// The port a listener is bound to.
#[cfg(test)]
pub fn local_port(fd: &OwnedFd) -> Option<u16> {
    Some(sys::local_addr(fd.as_raw_fd()).ok()?.to_inet()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_listeners_accept_on_loopback() {
        let fd = bind_tcp("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let port = local_port(&fd).unwrap();
        assert!(port > 0);
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let v6 = bind_tcp("[::1]:0".parse().unwrap(), 16);
        if let Ok(fd) = v6 {
            let port = local_port(&fd).unwrap();
            std::net::TcpStream::connect(("::1", port)).unwrap();
        }
    }

    #[test]
    fn unix_listeners_replace_stale_files_only() {
        let dir = std::env::temp_dir().join(format!("ginit-sock-{}", std::process::id()));
        let path = dir.join("app.sock");
        let fd = bind_unix(&path, 16, Some(0o660), None).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o660);
        assert!(
            bind_unix(&path, 16, None, None)
                .unwrap_err()
                .contains("in use")
        );
        drop(fd);
        bind_unix(&path, 16, None, None).expect("a stale socket file is replaced");
        std::fs::write(dir.join("file"), "x").unwrap();
        assert!(
            bind_unix(&dir.join("file"), 16, None, None)
                .unwrap_err()
                .contains("not a socket")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unix_paths_that_do_not_fit_are_refused_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("ginit-sock-long-{}", std::process::id()));
        let long = dir.join("s".repeat(120));
        let e = bind_unix(&long, 16, None, None).unwrap_err();
        assert!(e.ends_with("the path is too long for a unix socket"), "{e}");
        let nul = dir.join(std::ffi::OsStr::from_bytes(b"a\0b"));
        let e = bind_unix(&nul, 16, None, None).unwrap_err();
        assert!(e.ends_with("cannot hold a NUL byte"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
