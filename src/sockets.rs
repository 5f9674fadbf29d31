//! Listening sockets that ginit binds (or adopts) once and keeps for its whole life.
//!
//! Bound before any program starts, so a program can run as a non-root user and still serve
//! port 80, and kept open while instances come and go, so connections that arrive while no
//! instance is up wait in the backlog instead of being refused. Every fd here is close-on-exec:
//! a child gets a socket only when the spawn plan moves it to fd 3 and up (LISTEN_FDS).
//!
//! Sockets handed to ginit itself by a service manager (systemd or podman socket activation:
//! `LISTEN_FDS`, `LISTEN_PID` equal to ginit's pid or 1, `LISTEN_FDNAMES`) are adopted by
//! name or index. This module imports no other ginit module.
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn check(rc: libc::c_int, what: &str) -> Result<libc::c_int, String> {
    if rc < 0 {
        Err(format!("{what}: {}", io::Error::last_os_error()))
    } else {
        Ok(rc)
    }
}

/// A TCP listener on `addr` (SO_REUSEADDR, so a restarted ginit can bind at once).
pub fn bind_tcp(addr: SocketAddr, backlog: u32) -> Result<OwnedFd, String> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket calls on an fd owned here; the sockaddr structs are fully
    // initialised and their sizes passed along.
    unsafe {
        let fd = check(
            libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0),
            "socket",
        )?;
        let fd = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            size,
        );
        let rc = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                libc::bind(
                    fd.as_raw_fd(),
                    (&sin as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                libc::bind(
                    fd.as_raw_fd(),
                    (&sin6 as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        };
        check(rc, &format!("cannot bind {addr}"))?;
        check(
            libc::listen(fd.as_raw_fd(), backlog.min(i32::MAX as u32) as i32),
            &format!("cannot listen on {addr}"),
        )?;
        Ok(fd)
    }
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
    // SAFETY: sockaddr_un is zeroed then filled within its bounds (checked below); the fd
    // is owned here.
    unsafe {
        let mut sun: libc::sockaddr_un = std::mem::zeroed();
        if bytes.len() >= sun.sun_path.len() {
            return Err(format!("{shown}: the path is too long for a unix socket"));
        }
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in sun.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let fd = check(
            libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0),
            "socket",
        )?;
        let fd = OwnedFd::from_raw_fd(fd);
        check(
            libc::bind(
                fd.as_raw_fd(),
                (&sun as *const libc::sockaddr_un).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            ),
            &format!("cannot bind {shown}"),
        )?;
        check(
            libc::listen(fd.as_raw_fd(), backlog.min(i32::MAX as u32) as i32),
            &format!("cannot listen on {shown}"),
        )?;
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
    // SAFETY: ginit is single-threaded while it reads its own environment at start-up.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    if !pid_ok || count <= 0 {
        return Vec::new();
    }
    let names: Vec<&str> = names.split(':').collect();
    (0..count)
        .filter_map(|i| {
            let fd: RawFd = 3 + i;
            // SAFETY: F_GETFD checks the fd is open before it is owned; the protocol says fds
            // 3..3+N are ours. They are made close-on-exec like every other fd of ginit.
            unsafe {
                if libc::fcntl(fd, libc::F_GETFD) < 0 {
                    return None;
                }
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                let name = names
                    .get(i as usize)
                    .filter(|n| !n.is_empty())
                    .map_or_else(|| i.to_string(), |n| n.to_string());
                Some((name, OwnedFd::from_raw_fd(fd)))
            }
        })
        .collect()
}

/// The port a listener is bound to.
#[cfg(test)]
pub fn local_port(fd: &OwnedFd) -> Option<u16> {
    let mut storage: libc::sockaddr_storage = unsafe {
        // SAFETY: an all-zero sockaddr_storage is valid.
        std::mem::zeroed()
    };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into `storage`.
    let rc = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in.
            let sin =
                unsafe { *(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(u16::from_be(sin.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6.
            let sin6 = unsafe {
                *(&storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(u16::from_be(sin6.sin6_port))
        }
        _ => None,
    }
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
}
