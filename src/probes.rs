//! Readiness checks that need I/O (`ready: {tcp: ADDR}`), as non-blocking state machines in
//! the one poll loop: a connect in progress is polled for POLLOUT; a refused one is retried
//! every [`RETRY`]. Never blocks, never sleeps. This module imports no other ginit module.
#![allow(unsafe_code)]

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Time between two connection attempts of a TCP check.
const RETRY: Duration = Duration::from_millis(100);

struct Probe {
    addr: SocketAddr,
    connecting: Option<OwnedFd>,
    next_try: Instant,
}

/// The TCP checks of every starting instance, keyed by its pid.
#[derive(Default)]
pub struct Probes {
    probes: Vec<(i32, Probe)>,
}

impl Probes {
    /// Keeps a probe for exactly the instances in `starting` (pid, address).
    pub fn sync(&mut self, starting: &[(i32, SocketAddr)], now: Instant) {
        self.probes
            .retain(|(pid, _)| starting.iter().any(|(p, _)| p == pid));
        for &(pid, addr) in starting {
            if !self.probes.iter().any(|(p, _)| *p == pid) {
                self.probes.push((
                    pid,
                    Probe {
                        addr,
                        connecting: None,
                        next_try: now,
                    },
                ));
            }
        }
    }

    pub fn poll_fds(&self, out: &mut Vec<libc::pollfd>) {
        for (_, p) in &self.probes {
            out.push(libc::pollfd {
                fd: p.connecting.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLOUT,
                revents: 0,
            });
        }
    }

    pub fn poll_len(&self) -> usize {
        self.probes.len()
    }

    /// Connections that completed or failed; returns the pids that are ready.
    pub fn handle(&mut self, fds: &[libc::pollfd], now: Instant) -> Vec<i32> {
        let mut ready = Vec::new();
        for ((pid, p), pfd) in self.probes.iter_mut().zip(fds) {
            if pfd.revents == 0 {
                continue;
            }
            if let Some(fd) = p.connecting.take() {
                if socket_error(&fd) == 0 {
                    ready.push(*pid);
                } else {
                    p.next_try = now + RETRY;
                }
            }
        }
        self.probes.retain(|(pid, _)| !ready.contains(pid));
        ready
    }

    /// Starts the attempts that are due; returns pids whose connect succeeded at once.
    pub fn on_time(&mut self, now: Instant) -> Vec<i32> {
        let mut ready = Vec::new();
        for (pid, p) in &mut self.probes {
            if p.connecting.is_some() || now < p.next_try {
                continue;
            }
            match connect(p.addr) {
                Ok(None) => ready.push(*pid),
                Ok(Some(fd)) => p.connecting = Some(fd),
                Err(()) => p.next_try = now + RETRY,
            }
        }
        self.probes.retain(|(pid, _)| !ready.contains(pid));
        ready
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.probes
            .iter()
            .filter(|(_, p)| p.connecting.is_none())
            .map(|(_, p)| p.next_try)
            .min()
    }
}

/// A non-blocking connect: Ok(None) connected, Ok(Some(fd)) in progress, Err refused.
fn connect(addr: SocketAddr) -> Result<Option<OwnedFd>, ()> {
    let (family, storage, len) = sockaddr(addr);
    // SAFETY: a socket owned here; the sockaddr bytes and length come from `sockaddr`.
    unsafe {
        let fd = libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        );
        if fd < 0 {
            return Err(());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let rc = libc::connect(
            fd.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
        );
        if rc == 0 {
            return Ok(None);
        }
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINPROGRESS) {
            return Ok(Some(fd));
        }
        Err(())
    }
}

fn sockaddr(addr: SocketAddr) -> (libc::c_int, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid; the casts write within its size.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        match addr {
            SocketAddr::V4(a) => {
                let sin = (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                (*sin).sin_family = libc::AF_INET as libc::sa_family_t;
                (*sin).sin_port = a.port().to_be();
                (*sin).sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                (
                    libc::AF_INET,
                    storage,
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
            SocketAddr::V6(a) => {
                let sin6 =
                    (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                (*sin6).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*sin6).sin6_port = a.port().to_be();
                (*sin6).sin6_addr.s6_addr = a.ip().octets();
                (*sin6).sin6_scope_id = a.scope_id();
                (
                    libc::AF_INET6,
                    storage,
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    }
}

fn socket_error(fd: &OwnedFd) -> i32 {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one int.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 { -1 } else { err }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives the probes the way the event loop does, with a deadline.
    fn wait_ready(p: &mut Probes) -> Vec<i32> {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            let mut ready = p.on_time(Instant::now());
            let mut fds = Vec::new();
            p.poll_fds(&mut fds);
            // SAFETY: a valid pollfd array.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
            ready.extend(p.handle(&fds, Instant::now()));
            if !ready.is_empty() {
                return ready;
            }
        }
        Vec::new()
    }

    #[test]
    fn a_listener_makes_its_probe_ready_and_a_closed_port_does_not() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap();
        let closed = {
            let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            t.local_addr().unwrap()
        };
        let mut p = Probes::default();
        p.sync(&[(1, open), (2, closed)], Instant::now());
        assert_eq!(wait_ready(&mut p), vec![1]);
        assert_eq!(
            p.poll_len(),
            1,
            "the ready probe is gone, the other retries"
        );
        assert!(p.deadline().is_some() || p.poll_len() == 1);
        p.sync(&[], Instant::now());
        assert_eq!(p.poll_len(), 0);
    }
}
