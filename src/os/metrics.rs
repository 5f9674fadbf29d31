//! The metrics endpoint's OS side (`metrics: {listen: ...}`): its listener, bound once at
//! start like `sockets`, and its HTTP connections, served non-blocking from the one poll loop;
//! at scrape time, the /proc figures and the wall clock. What a request asks for, the counters
//! and the exposition's text are pure, in `control::metrics`; what an instance's state means
//! is the machine's (read through [`Machine::rows`], which decides nothing).
//!
//! Nothing a client does may block or stall the loop, or grow memory without bound:
//! - every fd is non-blocking; a request (line and headers) is at most
//!   [`control::metrics::MAX_REQUEST`] bytes: a longer one is closed unanswered (an answer
//!   would be lost anyway: closing a socket with unread bytes resets the connection);
//! - every connection has [`DEADLINE`] from its accept to say what it wants and read the
//!   answer, then it is closed (the loop's timeout includes it only while a connection is
//!   open, so an idle ginit never wakes up);
//! - at most [`MAX_CONNECTIONS`] are kept: a newcomer closes the oldest (whose deadline is the
//!   nearest anyway), so a client that opens connections and sends nothing cannot lock
//!   Prometheus out for longer than it keeps opening them;
//! - answers wait in per-connection buffers, at most [`MAX_PENDING`] bytes in all: a scrape
//!   beyond that gets 503;
//! - when ginit is out of fds, the listener rests for [`ACCEPT_PAUSE`] instead of waking the
//!   loop over and over.
//!
//! Every connection gets one answer and is closed (`Connection: close`): `GET /metrics` gets
//! the exposition (200), anything else 404.
//! /proc is read at scrape time only, never in between.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime};

use log::warn;

use super::{proc, sockets, sys};
use crate::config::Listen;
use crate::control::metrics::{self, Asked, Counters, MAX_REQUEST};
use crate::machine::Machine;

/// Connections kept at once; a newcomer closes the oldest.
pub const MAX_CONNECTIONS: usize = 16;
/// From accept to the last byte of the answer.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Answer bytes waiting in all connections together above which a scrape gets 503.
pub const MAX_PENDING: usize = 64 << 20;
/// How long the listener is not polled after accept failed (out of fds).
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);
/// listen(2)'s backlog: scrapers are few.
const BACKLOG: u32 = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the request.
    Reading,
    /// Asked for the exposition: answered in the same round of the loop.
    Scrape,
    /// Writing the answer.
    Writing,
    /// To be closed.
    Done,
}

struct Conn {
    file: File,
    input: Vec<u8>,
    output: Vec<u8>,
    sent: usize,
    deadline: Instant,
    phase: Phase,
}

/// The listener, its connections, and the counters kept from the published events.
pub struct Endpoint {
    listener: OwnedFd,
    conns: Vec<Conn>,
    /// Accept failed (no fds): the listener is not polled until then.
    resting: Option<Instant>,
    pub counters: Counters,
}

impl Endpoint {
    /// Binds `listen` (tcp or unix), before any program starts.
    pub fn bind(listen: &Listen) -> Result<Endpoint, String> {
        let listener = match listen {
            Listen::Tcp(addr) => sockets::bind_tcp(*addr, BACKLOG),
            Listen::Unix { path, mode, owner } => sockets::bind_unix(path, BACKLOG, *mode, *owner),
            Listen::Inherit(name) => Err(format!("cannot serve metrics on inherited `{name}`")),
        }
        .map_err(|e| format!("metrics: {e}"))?;
        sys::set_nonblocking(listener.as_raw_fd(), true)
            .map_err(|e| format!("metrics: cannot set up {listen}: {e}"))?;
        Ok(Endpoint {
            listener,
            conns: Vec::new(),
            resting: None,
            counters: Counters::default(),
        })
    }

    /// Appends the listener and each connection; [`Endpoint::handle`] takes the same.
    pub fn poll_fds(&self, out: &mut Vec<libc::pollfd>) {
        let listener = match self.resting {
            None => self.listener.as_raw_fd(),
            Some(_) => -1,
        };
        out.push(libc::pollfd {
            fd: listener,
            events: libc::POLLIN,
            revents: 0,
        });
        for c in &self.conns {
            let events = match c.phase {
                Phase::Reading => libc::POLLIN,
                _ => libc::POLLOUT,
            };
            out.push(libc::pollfd {
                fd: c.file.as_raw_fd(),
                events,
                revents: 0,
            });
        }
    }

    /// Acts on poll's report: reads requests, answers those that do not want the
    /// exposition, writes answers, accepts newcomers. True when some connection waits for
    /// the exposition: then [`Endpoint::serve`] it in this same round.
    pub fn handle(&mut self, fds: &[libc::pollfd], now: Instant) -> bool {
        let mut pending: usize = self
            .conns
            .iter()
            .map(|c| c.output.len().saturating_sub(c.sent))
            .sum();
        for (c, pfd) in self.conns.iter_mut().zip(fds.iter().skip(1)) {
            if pfd.revents == 0 {
                continue;
            }
            if c.phase == Phase::Writing {
                c.flush();
                continue;
            }
            let ended = c.read();
            let (status, body): (&str, &[u8]) = match metrics::parse_request(&c.input) {
                Asked::Incomplete => {
                    if ended || c.input.len() > MAX_REQUEST {
                        c.phase = Phase::Done;
                    }
                    continue;
                }
                Asked::Metrics if pending <= MAX_PENDING => {
                    c.phase = Phase::Scrape;
                    continue;
                }
                Asked::Metrics => ("503 Service Unavailable", b"too many scrapes at once\n"),
                Asked::NotFound => ("404 Not Found", b"not found: ask for GET /metrics\n"),
            };
            c.answer(metrics::response(status, "text/plain", body));
            pending += c.output.len();
        }
        if fds.first().is_some_and(|p| p.revents != 0) {
            self.accept(now);
        }
        self.prune();
        self.conns.iter().any(|c| c.phase == Phase::Scrape)
    }

    /// Answers every connection that asked for the exposition: rendered once, from the
    /// machine's rows, each instance's process tree read from /proc now, the counters and
    /// `dropped` (lines of program output dropped, by program).
    pub fn serve(&mut self, machine: &Machine, dropped: &[(String, u64)], now: Instant) {
        let rows = machine.rows(now);
        let pids: Vec<i32> = rows.iter().filter_map(|r| r.pid).collect();
        let mut trees = if pids.is_empty() {
            Vec::new()
        } else {
            proc::trees(pids)
        }
        .into_iter();
        // In row order: each row with a pid has its tree next.
        let usage: Vec<Option<(f64, u64)>> = rows
            .iter()
            .map(|r| {
                r.pid?;
                let sample = trees.next()?.1?;
                Some((sample.cpu.as_secs_f64(), sample.rss_bytes))
            })
            .collect();
        let now_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let body = self.counters.render(&rows, &usage, dropped, now_unix);
        let answer = metrics::response("200 OK", metrics::CONTENT_TYPE, body.as_bytes());
        for c in &mut self.conns {
            if c.phase == Phase::Scrape {
                c.answer(answer.clone());
            }
        }
        self.prune();
    }

    /// The earliest connection deadline (or the end of the listener's rest); None with no
    /// connection, so an idle ginit sleeps.
    pub fn deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .map(|c| c.deadline)
            .chain(self.resting)
            .min()
    }

    /// Closes connections past their deadline.
    pub fn on_time(&mut self, now: Instant) {
        if self.resting.is_some_and(|t| now >= t) {
            self.resting = None;
        }
        for c in &mut self.conns {
            if now >= c.deadline {
                c.phase = Phase::Done;
            }
        }
        self.prune();
    }

    /// Closes the connections that are done.
    fn prune(&mut self) {
        self.conns.retain(|c| c.phase != Phase::Done);
    }

    /// Takes the waiting connections, at most [`MAX_CONNECTIONS`] per round.
    fn accept(&mut self, now: Instant) {
        for _ in 0..MAX_CONNECTIONS {
            let fd = match sys::accept(self.listener.as_raw_fd()) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR)) => {
                    continue;
                }
                Err(e) => {
                    // The connection stays queued and the listener readable: rest.
                    warn!("metrics: cannot accept a connection: {e}");
                    self.resting = Some(now + ACCEPT_PAUSE);
                    return;
                }
            };
            if self.conns.len() >= MAX_CONNECTIONS {
                self.conns.remove(0);
            }
            self.conns.push(Conn {
                file: File::from(fd),
                input: Vec::new(),
                output: Vec::new(),
                sent: 0,
                deadline: now + DEADLINE,
                phase: Phase::Reading,
            });
        }
    }
}

impl Conn {
    /// Reads what is there, keeping at most one byte past [`MAX_REQUEST`] (enough to know
    /// the request is too large). True when the peer is done sending (end of input, error):
    /// a complete request is still answered, an incomplete one closed.
    fn read(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        while self.input.len() <= MAX_REQUEST {
            let room = (MAX_REQUEST + 1 - self.input.len()).min(buf.len());
            match (&self.file).read(buf.get_mut(..room).unwrap_or_default()) {
                Ok(0) => return true,
                Ok(n) => self
                    .input
                    .extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
        false
    }

    fn answer(&mut self, output: Vec<u8>) {
        self.input = Vec::new();
        self.output = output;
        self.phase = Phase::Writing;
        self.flush();
    }

    /// Writes what the socket takes now; done (to be closed) once all is written or the
    /// peer is gone.
    fn flush(&mut self) {
        while let Some(rest) = self.output.get(self.sent..).filter(|r| !r.is_empty()) {
            match sys::send_nowait(self.file.as_raw_fd(), rest) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => break,
            }
        }
        self.phase = Phase::Done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpStream;

    fn endpoint() -> (Endpoint, u16) {
        let e = Endpoint::bind(&Listen::Tcp("127.0.0.1:0".parse().unwrap())).unwrap();
        let port = sys::local_addr(e.listener.as_raw_fd())
            .unwrap()
            .to_inet()
            .unwrap()
            .port();
        (e, port)
    }

    /// One round of the loop as `event_loop.rs` runs it, with a zero poll timeout.
    fn round(e: &mut Endpoint, machine: &Machine, now: Instant) {
        let mut fds = Vec::new();
        e.poll_fds(&mut fds);
        let _ = sys::poll(&mut fds, 0);
        if e.handle(&fds, now) {
            e.serve(machine, &[], now);
        }
        e.on_time(now);
    }

    fn machine() -> Machine {
        let config = crate::config::schema_for_tests("programs:\n  web: {command: x}\n");
        Machine::new(config, None)
    }

    /// Runs rounds until `client` has read to the end (at most 2 s), and returns what it read.
    fn answer(e: &mut Endpoint, m: &Machine, client: &mut TcpStream, now: Instant) -> String {
        client.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            round(e, m, now);
            let mut buf = [0u8; 4096];
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    #[test]
    fn answers_each_request_once_and_closes() {
        let (mut e, port) = endpoint();
        let m = machine();
        let now = Instant::now();
        assert_eq!(e.deadline(), None, "no connection, no deadline");
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let text = answer(&mut e, &m, &mut c, now);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(text.contains("# TYPE ginit_program_up gauge\n"), "{text}");
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        assert!(text.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        assert!(e.conns.is_empty());

        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"GET /other HTTP/1.1\r\n\r\n").unwrap();
        assert!(answer(&mut e, &m, &mut c, now).starts_with("HTTP/1.1 404 Not Found\r\n"));

        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(&[b'x'; MAX_REQUEST + 100]).unwrap();
        assert_eq!(
            answer(&mut e, &m, &mut c, now),
            "",
            "too large: closed unanswered"
        );
        assert!(e.conns.is_empty());
    }

    #[test]
    fn silent_clients_are_closed_at_their_deadline_and_the_oldest_makes_room() {
        let (mut e, port) = endpoint();
        let m = machine();
        let now = Instant::now();
        let mut clients: Vec<TcpStream> = (0..MAX_CONNECTIONS + 3)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        // Connected once connect returns (the kernel queued them): two rounds accept all.
        for _ in 0..3 {
            round(&mut e, &m, now);
        }
        assert_eq!(e.conns.len(), MAX_CONNECTIONS);
        // The oldest three were closed to make room.
        for c in &mut clients[..3] {
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            assert_eq!(c.read(&mut [0u8; 8]).unwrap(), 0);
        }
        assert_eq!(e.deadline(), Some(now + DEADLINE));
        round(&mut e, &m, now + DEADLINE - Duration::from_millis(1));
        assert_eq!(e.conns.len(), MAX_CONNECTIONS);
        round(&mut e, &m, now + DEADLINE);
        assert!(e.conns.is_empty());
        assert_eq!(e.deadline(), None);
        drop(clients);
    }
}
