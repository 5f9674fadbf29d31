//! The control socket's server side: non-blocking, inside the one poll loop.
//!
//! The listener and every connection are polled with the rest; nothing here ever blocks or
//! waits. A peer whose uid (SO_PEERCRED) is neither 0 nor ginit's own gets an error and is
//! closed. A request line longer than [`MAX_REQUEST`] gets an error and the connection is
//! closed; a malformed one gets an error and the connection stays; a connection that sends
//! no complete request for [`STALL`] is dropped, and so is one that does not read its
//! responses. Requests are handed out one at a time per connection: the next is read only
//! once the previous was answered (some answers wait until a stop or restart has finished).
//!
//! Never locked out: at most [`MAX_CONNECTIONS`] are kept (memory stays bounded); a new one
//! beyond that closes the connection idle longest, i.e. the one whose last request was
//! answered earliest (never one whose request is being carried out), so `ginit ready` gets
//! through however many connections a leaking probe keeps open. Only when every kept
//! connection has a request in progress is the newcomer refused. When ginit is out of fds,
//! the idlest connection makes room for the new one; with none to close, the listener rests
//! for [`ACCEPT_PAUSE`] rather than waking the loop over and over.
//!
//! A connection whose request was `events` or `logs` becomes a stream (`streams.rs`): from
//! then on it is only written to, with a bounded queue, it is never the idlest (so never closed
//! to make room), and at most [`MAX_STREAMS`] exist, so streams cannot crowd out requests.
//!
//! An OS edge like those of `os/`, kept beside the protocol it serves; its system calls go
//! through `os::sys`, so it holds no `unsafe`. It answers requests it is handed the responses
//! for; what a request does is not decided here.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{debug, warn};

use super::events::Event;
use super::protocol::{MAX_REQUEST, Request, Response};
use super::streams::{self, MAX_STREAMS, Stream};
use crate::os::ring::{LogLine, Ring};
use crate::os::stdio::rfc3339;
use crate::os::sys;

/// How long a connection may sit without sending a complete request.
const STALL: Duration = Duration::from_secs(10);
/// Connections kept at once; a newer one closes the idlest (see the module header).
pub const MAX_CONNECTIONS: usize = 64;
/// How long the listener is not polled after accept failed for want of fds with nothing to
/// close.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);
/// Unread response bytes after which a connection is dropped.
const MAX_OUTPUT: usize = 1 << 20;

pub use super::protocol::ConnId;

struct Conn {
    id: ConnId,
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// A request was handed out and is not answered yet.
    busy: bool,
    /// Close once the output is written (refused peer, oversized request, end of input).
    closing: bool,
    deadline: Option<Instant>,
    /// The connection is a stream (`ginit events`, `ginit logs`): only written to.
    subscription: Option<Stream>,
}

pub struct Server {
    listener: Option<UnixListener>,
    path: PathBuf,
    conns: Vec<Conn>,
    next_id: ConnId,
    uid: u32,
    /// Accept failed (no fds) with nothing to close: the listener is not polled until then.
    resting: Option<Instant>,
}

impl Server {
    /// A server with no socket (it could not be created): every call is a no-op.
    pub fn disabled() -> Server {
        Server {
            listener: None,
            path: PathBuf::new(),
            conns: Vec::new(),
            next_id: 0,
            uid: 0,
            resting: None,
        }
    }

    /// Creates the socket at `path` (mode 0600; the directory is created if missing). A socket
    /// file nobody listens on is replaced; one another live ginit serves is left alone.
    pub fn bind(path: &Path) -> Result<Server, String> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(format!("{} is in use by another process", path.display()));
            }
            let _ = std::fs::remove_file(path);
        }
        // The socket is created with mode 0600 from the start: no window in which another
        // user could connect. ginit is single-threaded, so the umask change is not racy.
        let old = sys::umask(0o177);
        let bound = UnixListener::bind(path);
        sys::umask(old);
        let listener = bound.map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("cannot set up {}: {e}", path.display()))?;
        Ok(Server {
            listener: Some(listener),
            path: path.to_path_buf(),
            conns: Vec::new(),
            next_id: 1,
            uid: sys::geteuid(),
            resting: None,
        })
    }

    /// Appends the listener and each connection to poll; [`Server::handle`] takes the same.
    pub fn poll_fds(&self, out: &mut Vec<libc::pollfd>) {
        let listener = match (&self.listener, self.resting) {
            (Some(l), None) => l.as_raw_fd(),
            _ => -1,
        };
        out.push(libc::pollfd {
            fd: listener,
            events: libc::POLLIN,
            revents: 0,
        });
        for c in &self.conns {
            let mut events = 0;
            if !c.busy && !c.closing && c.subscription.is_none() {
                events |= libc::POLLIN;
            }
            if !c.output.is_empty() {
                events |= libc::POLLOUT;
            }
            // Nothing wanted (a request is being carried out): not polled at all, or a peer
            // that hung up would wake the loop with POLLHUP over and over. A stream is polled
            // for nothing but that POLLHUP, which closes it.
            out.push(libc::pollfd {
                fd: if events == 0 && c.subscription.is_none() {
                    -1
                } else {
                    c.stream.as_raw_fd()
                },
                events,
                revents: 0,
            });
        }
    }

    /// How many pollfds [`Server::poll_fds`] appends.
    pub fn poll_len(&self) -> usize {
        1 + self.conns.len()
    }

    /// Acts on poll's report and returns the complete requests to carry out.
    pub fn handle(&mut self, fds: &[libc::pollfd], now: Instant) -> Vec<(ConnId, Request)> {
        let mut requests = Vec::new();
        for (c, pfd) in self.conns.iter_mut().zip(fds.iter().skip(1)) {
            if c.subscription.is_some() && pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                // The subscriber is gone.
                c.output.clear();
                c.closing = true;
                continue;
            }
            if pfd.revents & (libc::POLLOUT | libc::POLLHUP | libc::POLLERR) != 0 {
                c.flush();
            }
            if pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 && !c.closing {
                c.read();
            }
        }
        if fds.first().is_some_and(|p| p.revents != 0) {
            self.accept(now);
        }
        for c in &mut self.conns {
            if let Some(req) = c.next_request() {
                requests.push((c.id, req));
            }
        }
        // A stream bounds its own queue (`streams.rs`).
        self.conns.retain(|c| {
            !(c.closing && c.output.is_empty())
                && (c.subscription.is_some() || c.output.len() <= MAX_OUTPUT)
        });
        requests
    }

    /// Sends the answer to the request handed out on connection `id` (gone: ignored).
    pub fn respond(&mut self, id: ConnId, response: &Response, now: Instant) {
        let Some(c) = self.conns.iter_mut().find(|c| c.id == id) else {
            return;
        };
        c.output.extend_from_slice(response.to_line().as_bytes());
        c.busy = false;
        c.deadline = Some(now + STALL);
        c.flush();
        // A request that arrived meanwhile is picked up on the next round.
    }

    /// Connections whose request was answered and that have more lines waiting.
    pub fn more_requests(&mut self) -> Vec<(ConnId, Request)> {
        let mut requests = Vec::new();
        for c in &mut self.conns {
            if let Some(req) = c.next_request() {
                requests.push((c.id, req));
            }
        }
        requests
    }

    /// The earliest stall deadline (or the end of a rest of the listener).
    pub fn deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .filter_map(|c| c.deadline)
            .chain(self.resting)
            .min()
    }

    /// Drops connections that stalled.
    pub fn on_time(&mut self, now: Instant) {
        if self.resting.is_some_and(|t| now >= t) {
            self.resting = None;
        }
        self.conns.retain(|c| {
            let stalled = c.deadline.is_some_and(|d| now >= d);
            if stalled {
                debug!("control: dropping a connection that sent no complete request");
            }
            !stalled
        });
    }

    fn accept(&mut self, now: Instant) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let no_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                    if no_fds && evict_idlest(&mut self.conns) {
                        continue;
                    }
                    // The connection stays queued and the listener readable: rest, or every
                    // round of the loop would try (and log) again at once.
                    warn!("control: cannot accept a connection: {e}");
                    self.resting = Some(now + ACCEPT_PAUSE);
                    return;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let mut conn = Conn {
                id: self.next_id,
                stream,
                input: Vec::new(),
                output: Vec::new(),
                busy: false,
                closing: false,
                deadline: Some(now + STALL),
                subscription: None,
            };
            self.next_id += 1;
            let refusal = match peer_uid(&conn.stream) {
                Some(uid) if uid == 0 || uid == self.uid => None,
                Some(uid) => Some(format!(
                    "permission denied: uid {uid} may not control ginit (only root or uid {})",
                    self.uid
                )),
                None => Some("permission denied: cannot tell who is asking".to_string()),
            };
            // A refused peer never makes room: it cannot push anyone out.
            let refusal = match refusal {
                None if self.conns.len() >= MAX_CONNECTIONS && !evict_idlest(&mut self.conns) => {
                    Some("too many control requests in progress; try again".to_string())
                }
                refusal => refusal,
            };
            if let Some(why) = refusal {
                debug!("control: {why}");
                conn.output = Response::error(why).to_line().into_bytes();
                conn.closing = true;
                conn.flush();
                // Kept to finish saying so only while there is room.
                if conn.output.is_empty() || self.conns.len() >= MAX_CONNECTIONS {
                    continue;
                }
            }
            self.conns.push(conn);
        }
    }

    /// Removes the socket file (at exit).
    pub fn remove(&mut self) {
        if self.listener.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.remove();
    }
}

impl Conn {
    fn read(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    // The peer is done sending; answer what it asked, then close.
                    if !self.busy && !self.input.contains(&b'\n') {
                        self.closing = true;
                    }
                    return;
                }
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    if self.input.len() > MAX_REQUEST && !self.input.contains(&b'\n') {
                        self.refuse_oversized();
                        return;
                    }
                    if self.input.contains(&b'\n') {
                        return; // one request at a time; the rest waits in the socket
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closing = true;
                    self.output.clear();
                    return;
                }
            }
        }
    }

    fn refuse_oversized(&mut self) {
        self.input.clear();
        let msg = format!("request too large (the limit is {MAX_REQUEST} bytes per line)");
        self.output
            .extend_from_slice(Response::error(msg).to_line().as_bytes());
        self.closing = true;
        self.flush();
    }

    /// The next complete request, if the connection is free to take one. Malformed lines are
    /// answered here.
    fn next_request(&mut self) -> Option<Request> {
        while !self.busy && !self.closing && self.subscription.is_none() {
            let end = self.input.iter().position(|&b| b == b'\n')?;
            let line: Vec<u8> = self.input.drain(..=end).collect();
            let line = &line[..end];
            if line.len() > MAX_REQUEST {
                self.refuse_oversized();
                return None;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match Request::parse(line) {
                Ok(req) => {
                    self.busy = true;
                    self.deadline = None;
                    return Some(req);
                }
                Err(e) => {
                    self.output
                        .extend_from_slice(Response::error(e).to_line().as_bytes());
                    self.flush();
                }
            }
        }
        None
    }

    fn flush(&mut self) {
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The peer is gone: nothing more to say.
                    self.output.clear();
                    self.closing = true;
                    return;
                }
            }
        }
    }
}

// The streams of `ginit events` and `ginit logs` (see `streams.rs` for their rules).
impl Server {
    /// Turns connection `id`, whose request is being carried out, into `stream`: the answer
    /// line (with `message`), then `first` (a snapshot, old lines); with `done` it closes once
    /// that is sent. Refused past [`MAX_STREAMS`].
    pub fn open_stream(
        &mut self,
        id: ConnId,
        stream: Stream,
        message: Option<String>,
        first: &[u8],
        done: bool,
        now: Instant,
    ) {
        let open = self
            .conns
            .iter()
            .filter(|c| c.subscription.is_some())
            .count();
        if open >= MAX_STREAMS {
            let e = format!(
                "too many `ginit events` and `ginit logs` clients (at most {MAX_STREAMS}); try again later"
            );
            return self.respond(id, &Response::error(e), now);
        }
        let Some(c) = self.conns.iter_mut().find(|c| c.id == id) else {
            return;
        };
        let answer = Response {
            ok: true,
            message,
            ..Response::default()
        };
        c.output.extend_from_slice(answer.to_line().as_bytes());
        c.output.extend_from_slice(first);
        c.busy = false;
        c.closing = done;
        // Never the idlest: a stream is not closed to make room (see `evict_idlest`).
        c.deadline = None;
        c.subscription = Some(stream);
        c.flush();
        // All said at once: closed now, as nothing may wake the loop again soon.
        self.conns.retain(|c| !(c.closing && c.output.is_empty()));
    }

    /// Hands a published event to every events subscriber; one that cannot take it is
    /// disconnected with a final line.
    pub fn publish(&mut self, event: &Event, now: Instant) {
        if !self
            .conns
            .iter()
            .any(|c| matches!(&c.subscription, Some(s) if s.kind == streams::Kind::Events))
        {
            return;
        }
        let time = rfc3339(std::time::SystemTime::now());
        let mut lines: [Option<String>; 2] = [None, None];
        for c in &mut self.conns {
            let Some(s) = c
                .subscription
                .as_ref()
                .filter(|s| s.kind == streams::Kind::Events)
            else {
                continue;
            };
            if c.closing {
                continue;
            }
            let json = s.json;
            let line =
                lines[usize::from(json)].get_or_insert_with(|| streams::render(event, json, &time));
            if !streams::publish(&mut c.output, line, json, &time) {
                warn!("control: an events subscriber fell behind; disconnecting it");
                c.closing = true;
                c.deadline = Some(now + STALL);
            }
            c.flush();
        }
    }

    /// Some `ginit logs -f` client is connected.
    pub fn follows_logs(&self) -> bool {
        self.conns.iter().any(|c| {
            !c.closing
                && c.subscription
                    .as_ref()
                    .is_some_and(|s| matches!(s.kind, streams::Kind::Logs(_)))
        })
    }

    /// Hands new lines of output to the `ginit logs -f` clients that follow their program.
    pub fn follow_logs(&mut self, fresh: &[(usize, LogLine)], rings: &[Ring], stamps: bool) {
        for c in &mut self.conns {
            let Some(s) = c.subscription.as_mut() else {
                continue;
            };
            if c.closing {
                continue;
            }
            for line in fresh {
                let name = rings.get(line.0).map_or("", |r| r.name.as_str());
                if s.follows(name) {
                    let text = streams::render_line(rings, line, s.json, stamps);
                    s.follow(&mut c.output, &text);
                }
            }
            c.flush();
        }
    }
}

/// Closes the connection idle longest: the earliest stall deadline, i.e. the earliest accept or
/// answer (a connection with a request in progress has none, and is never chosen). It is told
/// why if it can take one line at once. False when every connection is busy.
fn evict_idlest(conns: &mut Vec<Conn>) -> bool {
    let idlest = conns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((c.deadline?, i)))
        .min();
    let Some((_, i)) = idlest else {
        return false;
    };
    let mut conn = conns.remove(i);
    debug!("control: closing the idlest connection to make room");
    let _ = conn.stream.write(EVICTED.as_bytes());
    true
}

/// What a connection closed to make room is told.
const EVICTED: &str = "{\"ok\":false,\"error\":\"closed: too many control connections, this one was idle longest\"}\n";

/// The uid of the process at the other end (SO_PEERCRED).
fn peer_uid(stream: &UnixStream) -> Option<u32> {
    sys::peer_credentials(stream.as_raw_fd())
        .ok()
        .map(|c| c.uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_bounded_and_never_evicted_so_requests_always_get_through() {
        let dir = std::env::temp_dir().join(format!("ginit-streams-{}", std::process::id()));
        let path = dir.join("control.sock");
        let mut server = Server::bind(&path).unwrap();
        let ready = [libc::pollfd {
            fd: 0,
            events: 0,
            revents: libc::POLLIN,
        }];
        let now = Instant::now();
        let connect = || UnixStream::connect(&path).unwrap();
        let mut clients: Vec<UnixStream> = (0..MAX_CONNECTIONS).map(|_| connect()).collect();
        server.handle(&ready, now);
        let ids: Vec<ConnId> = server.conns.iter().map(|c| c.id).collect();
        for &id in &ids[..=MAX_STREAMS] {
            let stream = Stream::new(streams::Kind::Events, false);
            server.open_stream(id, stream, None, b"", false, now);
        }
        let open = |s: &Server| s.conns.iter().filter(|c| c.subscription.is_some()).count();
        assert_eq!(open(&server), MAX_STREAMS, "one past the bound is refused");
        let refused = &server.conns[MAX_STREAMS];
        assert!(refused.subscription.is_none() && refused.deadline.is_some());
        // Newcomers close idle connections, never a stream (they have no stall deadline).
        for _ in 0..MAX_CONNECTIONS {
            clients.push(connect());
            server.handle(&ready, now);
            assert_eq!(server.conns.len(), MAX_CONNECTIONS);
            assert_eq!(open(&server), MAX_STREAMS);
        }
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_eviction_notice_is_a_response() {
        let r = Response::parse(EVICTED.trim_end().as_bytes()).unwrap();
        assert!(!r.ok && r.error.is_some_and(|e| e.contains("idle longest")));
    }

    #[test]
    fn a_full_table_closes_the_idlest_connection_never_a_busy_one() {
        let dir = std::env::temp_dir().join(format!("ginit-server-{}", std::process::id()));
        let path = dir.join("control.sock");
        let mut server = Server::bind(&path).unwrap();
        let listener_ready = [libc::pollfd {
            fd: 0,
            events: 0,
            revents: libc::POLLIN,
        }];
        let now = Instant::now();
        let connect = || {
            let s = UnixStream::connect(&path).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        };
        let mut clients: Vec<UnixStream> = (0..MAX_CONNECTIONS).map(|_| connect()).collect();
        server.handle(&listener_ready, now);
        assert_eq!(server.conns.len(), MAX_CONNECTIONS);
        // The first is carrying out a request; the second was answered longest ago.
        server.conns[0].busy = true;
        server.conns[0].deadline = None;
        server.conns[1].deadline = Some(now);
        clients.push(connect());
        server.handle(&listener_ready, now);
        assert_eq!(server.conns.len(), MAX_CONNECTIONS);
        let mut told = String::new();
        clients[1].read_to_string(&mut told).unwrap();
        assert_eq!(told, EVICTED);
        assert!(server.conns[0].busy, "the busy one stays");
        // Every connection busy: the newcomer is refused, the table does not grow.
        for c in &mut server.conns {
            c.busy = true;
            c.deadline = None;
        }
        let mut late = connect();
        server.handle(&listener_ready, now);
        assert_eq!(server.conns.len(), MAX_CONNECTIONS);
        let mut refused = String::new();
        late.read_to_string(&mut refused).unwrap();
        assert!(
            refused.contains("too many control requests in progress"),
            "{refused}"
        );
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
