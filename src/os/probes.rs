//! Checks that need I/O (`ready` and `health` with `tcp` or `http`), as non-blocking state
//! machines in the one poll loop: connect, send, read the status line, each step driven by
//! poll, each attempt bounded by its timeout. Never blocks, never sleeps. Exec checks, which
//! need spawning and reaping, are the event loop's. Probes make attempts and report whether
//! they passed; counting failures and deciding what follows is not theirs. System calls go
//! through [`super::sys`].

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::sys::{self, SockAddr};

/// What one attempt does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A TCP connection succeeds.
    Tcp(SocketAddr),
    /// `GET path` answers with a 2xx or 3xx status.
    Http {
        addr: SocketAddr,
        host: String,
        path: String,
    },
}

/// Who a check is for: an instance's pid and whether it is its readiness or health check.
pub type Key = (i32, Purpose);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    Ready,
    Health,
}

enum Step {
    Connecting,
    Sending(usize),
    Reading(Vec<u8>),
}

struct Attempt {
    /// The socket, as a File for plain reads and writes.
    fd: std::fs::File,
    step: Step,
    deadline: Instant,
}

struct Probe {
    key: Key,
    target: Target,
    /// Time between attempts.
    every: Duration,
    /// Bound on one attempt.
    timeout: Duration,
    attempt: Option<Attempt>,
    next_try: Instant,
}

/// Every tcp/http check in progress.
#[derive(Default)]
pub struct Probes {
    probes: Vec<Probe>,
}

impl Probes {
    /// Keeps a probe for exactly the checks in `wanted` (key, target, every, timeout).
    pub fn sync(&mut self, wanted: &[(Key, Target, Duration, Duration)], now: Instant) {
        self.probes.retain(|p| {
            wanted
                .iter()
                .any(|(k, t, _, _)| *k == p.key && *t == p.target)
        });
        for (key, target, every, timeout) in wanted {
            if !self.probes.iter().any(|p| p.key == *key) {
                self.probes.push(Probe {
                    key: *key,
                    target: target.clone(),
                    every: *every,
                    timeout: *timeout,
                    attempt: None,
                    // A readiness probe tries at once, a health probe after one interval.
                    next_try: match key.1 {
                        Purpose::Ready => now,
                        Purpose::Health => now + *every,
                    },
                });
            }
        }
    }

    pub fn poll_fds(&self, out: &mut Vec<libc::pollfd>) {
        for p in &self.probes {
            let (fd, events) = match &p.attempt {
                None => (-1, 0),
                Some(a) => (
                    a.fd.as_raw_fd(),
                    match a.step {
                        Step::Connecting | Step::Sending(_) => libc::POLLOUT,
                        Step::Reading(_) => libc::POLLIN,
                    },
                ),
            };
            out.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
        }
    }

    pub fn poll_len(&self) -> usize {
        self.probes.len()
    }

    /// Advances attempts poll reported on; returns finished attempts as (key, passed).
    pub fn handle(&mut self, fds: &[libc::pollfd], now: Instant) -> Vec<(Key, bool)> {
        let mut done = Vec::new();
        for (p, pfd) in self.probes.iter_mut().zip(fds) {
            if pfd.revents == 0 {
                continue;
            }
            if let Some(result) = p.advance() {
                p.finish(now);
                done.push((p.key, result));
            }
        }
        done
    }

    /// Starts due attempts and times out slow ones; returns finished attempts.
    pub fn on_time(&mut self, now: Instant) -> Vec<(Key, bool)> {
        let mut done = Vec::new();
        for p in &mut self.probes {
            match &p.attempt {
                Some(a) if now >= a.deadline => {
                    p.finish(now);
                    done.push((p.key, false));
                }
                Some(_) => {}
                // A connect that completed at once (loopback) is seen by poll as writable.
                None if now >= p.next_try => match connect(target_addr(&p.target)) {
                    Ok(fd) => {
                        p.attempt = Some(Attempt {
                            fd: fd.into(),
                            step: Step::Connecting,
                            deadline: now + p.timeout,
                        })
                    }
                    Err(()) => {
                        p.next_try = now + p.every;
                        done.push((p.key, false));
                    }
                },
                None => {}
            }
        }
        done
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.probes
            .iter()
            .map(|p| match &p.attempt {
                Some(a) => a.deadline,
                None => p.next_try,
            })
            .min()
    }
}

fn target_addr(t: &Target) -> SocketAddr {
    match t {
        Target::Tcp(a) | Target::Http { addr: a, .. } => *a,
    }
}

impl Probe {
    fn finish(&mut self, now: Instant) {
        self.attempt = None;
        self.next_try = now + self.every;
    }

    /// One step of the attempt; Some(result) when it is over.
    fn advance(&mut self) -> Option<bool> {
        let a = self.attempt.as_mut()?;
        loop {
            match &mut a.step {
                Step::Connecting => {
                    if sys::socket_error(a.fd.as_raw_fd()).ok() != Some(0) {
                        return Some(false);
                    }
                    match &self.target {
                        Target::Tcp(_) => return Some(true),
                        Target::Http { .. } => a.step = Step::Sending(0),
                    }
                }
                Step::Sending(sent) => {
                    let Target::Http { host, path, .. } = &self.target else {
                        return Some(true);
                    };
                    let request = format!(
                        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: ginit\r\nConnection: close\r\n\r\n"
                    );
                    match (&a.fd).write(&request.as_bytes()[*sent..]) {
                        Ok(n) => {
                            *sent += n;
                            if *sent < request.len() {
                                return None;
                            }
                            a.step = Step::Reading(Vec::new());
                            return None;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                        Err(_) => return Some(false),
                    }
                }
                Step::Reading(buf) => {
                    let mut chunk = [0u8; 512];
                    match (&a.fd).read(&mut chunk) {
                        Ok(0) => return Some(status_ok(buf)),
                        Ok(n) => {
                            buf.extend_from_slice(&chunk[..n]);
                            if buf.contains(&b'\n') || buf.len() > 4096 {
                                return Some(status_ok(buf));
                            }
                            return None;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                        Err(_) => return Some(false),
                    }
                }
            }
        }
    }
}

/// `HTTP/1.x 2xx` or `3xx` on the first line.
pub(crate) fn status_ok(buf: &[u8]) -> bool {
    let line = String::from_utf8_lossy(buf);
    let code = line
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok());
    matches!(code, Some(200..=399))
}

/// A non-blocking connect, connected or in progress; Err when refused at once.
fn connect(addr: SocketAddr) -> Result<OwnedFd, ()> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = sys::socket(family, libc::SOCK_STREAM | libc::SOCK_NONBLOCK).map_err(drop)?;
    match sys::connect(fd.as_raw_fd(), &SockAddr::inet(addr)) {
        Ok(()) => Ok(fd),
        Err(e) if sys::in_progress(&e) => Ok(fd),
        Err(_) => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives the probes the way the event loop does, with a deadline.
    fn results(p: &mut Probes, want: usize) -> Vec<(Key, bool)> {
        let end = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while Instant::now() < end && got.len() < want {
            got.extend(p.on_time(Instant::now()));
            let mut fds = Vec::new();
            p.poll_fds(&mut fds);
            let _ = sys::poll(&mut fds, 20);
            got.extend(p.handle(&fds, Instant::now()));
        }
        got
    }

    #[test]
    fn tcp_and_http_checks() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        // A tiny HTTP server: 200 for /ok, 503 otherwise.
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let n = c.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let status = if req.starts_with("GET /ok ") {
                    "200 OK"
                } else {
                    "503 No"
                };
                let _ = c.write_all(format!("HTTP/1.0 {status}\r\n\r\n").as_bytes());
            }
        });
        let ms = Duration::from_millis;
        let url = |path: &str| Target::Http {
            addr: open,
            host: open.to_string(),
            path: path.into(),
        };
        let mut p = Probes::default();
        let wanted = vec![
            ((1, Purpose::Ready), Target::Tcp(open), ms(100), ms(1000)),
            ((2, Purpose::Ready), Target::Tcp(closed), ms(100), ms(1000)),
            ((3, Purpose::Health), url("/ok"), ms(10), ms(1000)),
            ((4, Purpose::Health), url("/bad"), ms(10), ms(1000)),
        ];
        p.sync(&wanted, Instant::now());
        let got = results(&mut p, 8);
        let first = |pid| got.iter().find(|((p, _), _)| *p == pid).map(|r| r.1);
        assert_eq!(first(1), Some(true));
        assert_eq!(first(2), Some(false));
        assert_eq!(first(3), Some(true));
        assert_eq!(first(4), Some(false));
        p.sync(&[], Instant::now());
        assert_eq!(p.poll_len(), 0);
    }
}
