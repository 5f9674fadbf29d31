//! ginit's own stdout and stderr: writing to them without ever blocking, and the two text
//! encodings every line ginit writes there shares (RFC 3339 times, JSON string literals).
//!
//! Program output (`os/output.rs`) and ginit's log lines (`logger.rs`) both write here; this
//! module imports neither (it imports no other ginit module but [`super::sys`]), which is what
//! keeps them from importing each other.
//!
//! PID 1 must not stall on a write: a stderr that is a pipe nobody reads, a terminal under
//! flow control (Ctrl-S), a full socket. So each stream gets a [`Writer`] that can only take
//! what fits now: a fresh O_NONBLOCK open of `/proc/self/fd/N` for a pipe, FIFO or terminal
//! (so the children sharing the stream keep their blocking one: O_NONBLOCK lives on the open
//! file description, see open(2)), `MSG_DONTWAIT` for a socket, plain writes for a regular
//! file. It decides nothing about what is worth writing.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use super::sys::{self, FileKind};

/// How bytes reach one of ginit's own streams (stdout, stderr) without blocking.
pub enum Writer {
    /// A handle of its own with O_NONBLOCK (pipe, FIFO, terminal).
    Own(File),
    /// A socket: `send` with MSG_DONTWAIT.
    Socket(RawFd),
    /// A regular file (never blocks for long), or the fd as it is when nothing better exists.
    Plain(RawFd),
    /// No way to write without blocking was found: poll for POLLOUT first, then write at most
    /// PIPE_BUF bytes, which a pipe with room takes whole.
    PollFirst(RawFd),
}

impl Writer {
    /// The best non-blocking way to write to `fd`: a fresh O_NONBLOCK open of
    /// /proc/self/fd/N for a pipe, FIFO or terminal (the children sharing the stream keep
    /// their blocking one), MSG_DONTWAIT for a socket, plain writes for a regular file.
    pub fn for_fd(fd: RawFd) -> Writer {
        match sys::file_kind(fd) {
            Some(FileKind::Regular) => Writer::Plain(fd),
            Some(FileKind::Socket) => Writer::Socket(fd),
            _ => match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(format!("/proc/self/fd/{fd}"))
            {
                Ok(file) => Writer::Own(file),
                Err(_) => Writer::PollFirst(fd),
            },
        }
    }

    /// The fd written to (to poll for POLLOUT).
    pub fn raw_fd(&self) -> RawFd {
        match self {
            Writer::Own(file) => file.as_raw_fd(),
            Writer::Socket(fd) | Writer::Plain(fd) | Writer::PollFirst(fd) => *fd,
        }
    }

    /// One write attempt; `WouldBlock` when the stream cannot take anything now.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Writer::Own(file) => file.write(bytes),
            Writer::Socket(fd) => sys::send_nowait(*fd, bytes),
            Writer::Plain(fd) => sys::write(*fd, bytes),
            Writer::PollFirst(fd) => {
                if sys::writable_now(*fd) {
                    sys::write(*fd, &bytes[..bytes.len().min(libc::PIPE_BUF)])
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                }
            }
        }
    }
}

/// ginit's stderr for its own log lines, never blocking: when stderr cannot take a line (a
/// pipe nobody reads), the line is dropped and counted, and the next line that gets through
/// is preceded by how many were lost. Lines are not queued: a log line is worth less than
/// PID 1's time, and program output (which does wait, see `os/output.rs`) has its own buffer.
#[derive(Default)]
pub struct LogStream {
    writer: Option<Writer>,
    dropped: u64,
}

impl LogStream {
    /// Writes one whole line (with its newline), or counts it as dropped.
    pub fn line(&mut self, line: &[u8]) {
        if self.dropped > 0 {
            let note = format!(
                "ginit: warning: {} log lines were dropped: stderr was not being read\n",
                self.dropped
            );
            if !self.put(note.as_bytes()) {
                self.dropped += 1;
                return;
            }
            self.dropped = 0;
        }
        if !self.put(line) {
            self.dropped += 1;
        }
    }

    /// Writes all of `bytes` or nothing more once the stream would block; true if all went.
    fn put(&mut self, bytes: &[u8]) -> bool {
        let writer = self.writer.get_or_insert_with(|| Writer::for_fd(2));
        let mut done = 0;
        while done < bytes.len() {
            match writer.write(&bytes[done..]) {
                Ok(0) => return false,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}

/// `log.timestamps`: ginit's own text log lines start with the time. Set by the event loop
/// from the running config (an atomic: the logger is a global behind the `log` facade).
static TIMESTAMPS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_timestamps(on: bool) {
    TIMESTAMPS.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn timestamps() -> bool {
    TIMESTAMPS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A JSON string literal for `text`.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// UTC time as RFC 3339 with milliseconds: `2026-11-24T15:00:00.123Z`.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let (year, month, day) = crate::config::schedule::civil(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_532_400_123);
        assert_eq!(rfc3339(t), "2026-11-24T15:00:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn json_strings() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }

    #[test]
    fn writers_by_kind_and_a_full_pipe_would_block() {
        let file = std::fs::File::create(
            std::env::temp_dir().join(format!("ginit-stdio-{}", std::process::id())),
        )
        .unwrap();
        assert!(matches!(Writer::for_fd(file.as_raw_fd()), Writer::Plain(_)));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(matches!(Writer::for_fd(a.as_raw_fd()), Writer::Socket(_)));
        // A pipe gets its own non-blocking handle; the original stays blocking.
        let (_r, w) = std::io::pipe().unwrap();
        let mut writer = Writer::for_fd(w.as_raw_fd());
        assert!(matches!(writer, Writer::Own(_)));
        assert!(sys::is_nonblocking(writer.raw_fd()).unwrap());
        assert!(!sys::is_nonblocking(w.as_raw_fd()).unwrap());
        let chunk = [b'x'; 4096];
        let mut result = Ok(0);
        for _ in 0..1024 {
            result = writer.write(&chunk);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(
            result.map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock),
            "a pipe nobody reads fills, and then the write would block"
        );
        let mut poll_first = Writer::PollFirst(w.as_raw_fd());
        assert_eq!(
            poll_first.write(b"x").map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        drop(file);
        let _ = std::fs::remove_file(
            std::env::temp_dir().join(format!("ginit-stdio-{}", std::process::id())),
        );
    }

    #[test]
    fn a_log_stream_counts_what_it_could_not_write_and_says_so_once() {
        let (r, w) = std::io::pipe().unwrap();
        let mut log = LogStream {
            writer: Some(Writer::PollFirst(w.as_raw_fd())),
            dropped: 0,
        };
        // Fill the pipe, then two lines are dropped.
        sys::set_nonblocking(w.as_raw_fd(), true).unwrap();
        while sys::write(w.as_raw_fd(), &[b'.'; 4096]).is_ok() {}
        log.line(b"lost one\n");
        log.line(b"lost two\n");
        assert_eq!(log.dropped, 2);
        // Drain the pipe: the next line is preceded by the count, and the count is reset.
        sys::set_nonblocking(r.as_raw_fd(), true).unwrap();
        let mut reader = std::fs::File::from(std::os::fd::OwnedFd::from(r));
        let mut sink = [0u8; 65536];
        while std::io::Read::read(&mut reader, &mut sink).is_ok_and(|n| n > 0) {}
        log.line(b"ginit: info: back\n");
        assert_eq!(log.dropped, 0);
        let mut got = Vec::new();
        while let Ok(n) = std::io::Read::read(&mut reader, &mut sink) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&sink[..n]);
        }
        assert_eq!(
            String::from_utf8_lossy(&got),
            "ginit: warning: 2 log lines were dropped: stderr was not being read\n\
             ginit: info: back\n"
        );
    }
}
