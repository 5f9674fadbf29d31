//! Child stdout/stderr for the piped outputs: `prefix`, `json` and files with rotation.
//!
//! `inherit` and `null` never come here (the child gets ginit's fd or /dev/null, no copy).
//! For the others each started instance gets a pipe per stream; ginit reads it inside the one
//! poll loop, cuts whole lines (a line longer than [`MAX_LINE`] is split at a UTF-8 boundary)
//! and delivers them formatted.
//!
//! Never blocking, never dropping silently: ginit's own stdout/stderr are written through a
//! non-blocking [`Writer`] (`os/stdio.rs`). What cannot be written yet waits in a bounded buffer;
//! while that buffer is full, ginit stops reading the pipes that feed it, their pipe buffers
//! fill, and the programs block in `write` exactly as they would with `inherit`.
//!
//! Nothing leaks: a paused pipe is still polled (for no event), so poll's POLLHUP says when its
//! last writer is gone; then what it holds (at most the pipe's capacity) is read into the
//! buffer beyond the high-water mark, up to [`HARD_CAP`], and the pipe is closed. Past the cap
//! the lines of such exited writers are dropped, counted and reported in one line once the
//! stream takes bytes again; a live writer is never dropped, it waits. A stream that is gone
//! for good (EPIPE) loses lines, and that is logged.
//!
//! Files are written directly. One that cannot be opened or written sends its lines to ginit's
//! stderr: one error line when that starts, a retry on the first line at least
//! [`FILE_RETRY`] later (or after SIGUSR1), one line with a count when it works again.
//!
//! Every line delivered is also kept in its program's ring (`ring.rs`) for `ginit logs`,
//! stamped with the time of the read that brought it (one clock reading per read, not per
//! line); with `log.timestamps`, `prefix` lines start with that time.
//!
//! This module owns fds and bytes only; it does not know about states or restarts. System
//! calls go through [`super::sys`].

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use log::{error, warn};

use super::ring::Rings;
use super::stdio::{Writer, json_string, rfc3339};
use super::sys;
use crate::config::{Output, ProgramSpec, ReadyCheck, ReadySpec, Rotate};
use crate::machine::InstanceRef;

/// Longest line delivered in one piece; longer ones are cut into pieces of at most this.
pub const MAX_LINE: usize = 16 * 1024;
/// Bytes read from a pipe per read call.
const READ_CHUNK: usize = 16 * 1024;
/// Reads from one pipe per wake-up, so one chatty program cannot starve the loop.
const READS_PER_WAKE: usize = 4;
/// Above this many pending bytes for ginit's stdout or stderr, its pipes are not read.
const HIGH_WATER: usize = 64 * 1024;
/// Most pending bytes per stream that the pipes of exited writers may fill (read so they can
/// be closed); their lines past it are dropped and counted.
pub const HARD_CAP: usize = 1024 * 1024;
/// A log file that failed is tried again on the first line at least this much later.
pub const FILE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
/// An unused log file that failed keeps its failure (so a crash-looping program does not start
/// a new episode, and a new error line, with every run) for this long after its last attempt.
const FAILURE_MEMORY: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Where the lines of one pipe go.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Dest {
    Prefix,
    Json,
    File(PathBuf),
}

/// The read end of one instance's stdout or stderr.
struct Pipe {
    reader: File,
    program: String,
    instance: u32,
    /// `name` or `name.i` (when the program has several instances).
    label: String,
    stream: Stream,
    dest: Dest,
    /// Bytes after the last newline.
    partial: Vec<u8>,
    /// Every writer is gone (poll said POLLHUP): read to the end even while the destination
    /// is full, so the pipe can be closed; lines past [`HARD_CAP`] are dropped.
    hup: bool,
    /// Its program's log ring (`os/ring.rs`).
    ring: usize,
    /// `ready: {log: TEXT}` of a starting instance: TEXT, and whose lines these are.
    ready: Option<(String, InstanceRef)>,
}

impl Pipe {
    /// A pipe of `spec`'s output with nothing read yet, kept in no ring and watched for no
    /// readiness line.
    fn new(
        reader: OwnedFd,
        spec: &ProgramSpec,
        instance: u32,
        label: String,
        stream: Stream,
        dest: Dest,
    ) -> Pipe {
        Pipe {
            reader: File::from(reader),
            program: spec.name.clone(),
            instance,
            label,
            stream,
            dest,
            partial: Vec::new(),
            hup: false,
            ring: usize::MAX,
            ready: None,
        }
    }
}

/// ginit's stdout or stderr as a destination.
struct Sink {
    name: &'static str,
    fd: RawFd,
    writer: Option<Writer>,
    pending: Vec<u8>,
    /// The stream is gone (EPIPE); what arrives is dropped, not kept.
    broken: bool,
    /// Lines of exited writers dropped at [`HARD_CAP`], not reported yet.
    dropped: u64,
}

#[derive(Default)]
struct FileSink {
    file: Option<File>,
    size: u64,
    rotate: Option<Rotate>,
    /// Rotation is tried: the file is a regular one (never a device or FIFO named as a log
    /// file) and renaming it has not failed since it was opened.
    rotatable: bool,
    /// The file failed: its lines go to ginit's stderr until it works again.
    failure: Option<Failure>,
}

/// One failure episode of a log file.
struct Failure {
    /// Lines that went to ginit's stderr instead.
    diverted: u64,
    /// No new attempt before this.
    retry_at: Instant,
}

/// Every output pipe and destination of the supervisor.
pub struct Outputs {
    pipes: Vec<Pipe>,
    sinks: [Sink; 2],
    files: HashMap<PathBuf, FileSink>,
    scratch: Vec<u8>,
    /// Instances whose `ready: {log: TEXT}` a line just held, for the machine.
    pub ready_seen: Vec<InstanceRef>,
    /// Lines dropped at [`HARD_CAP`] since ginit started, by program (never reset: the
    /// metrics' `ginit_log_lines_dropped_total`); one entry per program that dropped any.
    dropped: Vec<(String, u64)>,
    /// Each program's last lines, for `ginit logs`.
    pub rings: Rings,
    /// `log.timestamps`: `prefix` lines start with the time.
    pub timestamps: bool,
    /// The time of `prefix` lines, formatted once per millisecond: (ms since the epoch, text).
    stamp: (u64, String),
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs::new()
    }
}

impl Outputs {
    pub fn new() -> Outputs {
        Outputs {
            pipes: Vec::new(),
            sinks: [Sink::new(1, "stdout"), Sink::new(2, "stderr")],
            files: HashMap::new(),
            scratch: vec![0; READ_CHUNK],
            ready_seen: Vec::new(),
            dropped: Vec::new(),
            rings: Rings::default(),
            timestamps: false,
            stamp: (u64::MAX, String::new()),
        }
    }

    /// A pipe for a program's stream: the write end is for the child, the read end stays
    /// here. Register it with [`Outputs::attach`] once the child is started.
    pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
        let (reader, writer) = io::pipe()?;
        let reader = OwnedFd::from(reader);
        // Only the read end is non-blocking: the child's write end must block like any stdout.
        sys::set_nonblocking(reader.as_raw_fd(), true)?;
        Ok((reader, OwnedFd::from(writer)))
    }

    /// Starts copying from `reader`, the read end of `stream` of instance `instance` of
    /// `spec`, as that stream's output says.
    pub fn attach(
        &mut self,
        reader: OwnedFd,
        spec: &ProgramSpec,
        who: &InstanceRef,
        stream: Stream,
    ) {
        let instance = who.index;
        // `ready: {log: TEXT}`: its lines are searched for TEXT until one has it.
        let ready = match &spec.ready {
            Some(ReadySpec {
                check: ReadyCheck::Log(text),
                ..
            }) => Some((text.clone(), who.clone())),
            _ => None,
        };
        let output = match stream {
            Stream::Stdout => &spec.stdout,
            Stream::Stderr => &spec.stderr,
        };
        let dest = match output {
            Output::Prefix => Dest::Prefix,
            Output::Json => Dest::Json,
            Output::File { path, rotate } => {
                self.forget_old_failures(Instant::now());
                let sink = self.files.entry(path.clone()).or_default();
                sink.rotate = *rotate;
                Dest::File(path.clone())
            }
            Output::Inherit | Output::Null => return,
        };
        if matches!(dest, Dest::Prefix | Dest::Json) {
            self.sinks[stream.index()].prepare();
        }
        let pipes = &self.pipes;
        let ring = self.rings.ring_for(&spec.name, spec.instances > 1, |r| {
            pipes.iter().any(|p| p.ring == r)
        });
        let mut pipe = Pipe::new(reader, spec, instance, spec.label(instance), stream, dest);
        pipe.ring = ring;
        pipe.ready = ready;
        self.pipes.push(pipe);
    }

    /// Starts copying from `reader`, the read end of `stream` of a command run beside an
    /// instance of `spec` (a hook, a stop command): always prefixed, with `label`
    /// (`NAME:hook`, `NAME:stop`), whatever the program's own output is, and kept in no ring
    /// (`ginit logs` shows the program's own lines).
    pub fn attach_aside(
        &mut self,
        reader: OwnedFd,
        spec: &ProgramSpec,
        label: &str,
        stream: Stream,
    ) {
        self.sinks[stream.index()].prepare();
        let label = label.to_string();
        self.pipes
            .push(Pipe::new(reader, spec, 0, label, stream, Dest::Prefix));
    }

    /// Appends what to poll: ginit's stdout and stderr (POLLOUT while bytes wait), then each
    /// pipe (POLLIN unless its destination is full; then no event, but poll still reports
    /// POLLHUP once its last writer is gone). [`Outputs::handle`] takes the same slice.
    pub fn poll_fds(&self, out: &mut Vec<libc::pollfd>) {
        for sink in &self.sinks {
            let waiting = !sink.pending.is_empty() && !sink.broken;
            out.push(libc::pollfd {
                fd: if waiting { sink.fd } else { -1 },
                events: libc::POLLOUT,
                revents: 0,
            });
        }
        for pipe in &self.pipes {
            let paused = !pipe.hup && self.blocked(pipe);
            out.push(libc::pollfd {
                fd: pipe.reader.as_raw_fd(),
                events: if paused { 0 } else { libc::POLLIN },
                revents: 0,
            });
        }
    }

    /// Acts on what poll reported for the fds [`Outputs::poll_fds`] appended.
    pub fn handle(&mut self, fds: &[libc::pollfd]) {
        for (i, pfd) in fds.iter().take(2).enumerate() {
            if pfd.revents != 0 {
                self.sinks[i].flush();
            }
        }
        let mut i = 0;
        let mut index = 2;
        while i < self.pipes.len() {
            let revents = fds.get(index).map_or(0, |p| p.revents);
            index += 1;
            if revents & libc::POLLHUP != 0 {
                self.pipes[i].hup = true;
            }
            if revents != 0 && self.read_pipe(i) {
                self.close_pipe(i);
            } else {
                i += 1;
            }
        }
    }

    /// Whether anything is still open or waiting to be written.
    pub fn is_idle(&self) -> bool {
        self.pipes.is_empty() && self.sinks.iter().all(|s| s.pending.is_empty() || s.broken)
    }

    /// Reopens every log file (SIGUSR1, after an external rotation); one that failed is tried
    /// again on its next line. Returns how many.
    pub fn reopen(&mut self) -> usize {
        let now = Instant::now();
        for (path, sink) in &mut self.files {
            sink.file = None;
            match &mut sink.failure {
                Some(failure) => failure.retry_at = now,
                None => {
                    if let Err(e) = sink.open(path) {
                        sink.fail(path, "open", &e, now);
                    }
                }
            }
        }
        self.files.len()
    }

    /// Reads what the programs left in their pipes and writes it out, until every pipe is
    /// closed and ginit's streams took everything, or `deadline`. Called before ginit exits.
    pub fn drain(&mut self, deadline: Instant) {
        let mut fds = Vec::new();
        while !self.is_idle() {
            let now = Instant::now();
            if now >= deadline {
                let open = self.pipes.len();
                let bytes: usize = self.sinks.iter().map(|s| s.pending.len()).sum();
                warn!("exiting with {open} output pipes open and {bytes} bytes not yet written");
                return;
            }
            fds.clear();
            self.poll_fds(&mut fds);
            let ms = deadline.saturating_duration_since(now).as_millis().max(1);
            // An error (none is expected with every signal blocked) only means another round.
            let _ = sys::poll(&mut fds, i32::try_from(ms).unwrap_or(i32::MAX));
            self.handle(&fds);
        }
    }

    fn blocked(&self, pipe: &Pipe) -> bool {
        match pipe.dest {
            Dest::Prefix | Dest::Json => {
                let sink = &self.sinks[pipe.stream.index()];
                !sink.broken && sink.pending.len() >= HIGH_WATER
            }
            // A file that fails sends its lines to ginit's stderr: then that bounds it too.
            Dest::File(ref path) => {
                let sink = &self.sinks[1];
                self.files.get(path).is_some_and(|f| f.failure.is_some())
                    && !sink.broken
                    && sink.pending.len() >= HIGH_WATER
            }
        }
    }

    /// Reads up to a few chunks from pipe `i`; true at end of file (or a read error).
    fn read_pipe(&mut self, i: usize) -> bool {
        for _ in 0..READS_PER_WAKE {
            if !self.pipes[i].hup && self.blocked(&self.pipes[i]) {
                return false;
            }
            let n = match self.pipes[i].reader.read(&mut self.scratch) {
                Ok(0) => return true,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let p = &self.pipes[i];
                    warn!("cannot read the {} of {}: {e}", p.stream.name(), p.label);
                    return true;
                }
            };
            let mut partial = std::mem::take(&mut self.pipes[i].partial);
            partial.extend_from_slice(&self.scratch[..n]);
            // One clock reading per read: the lines of one chunk arrived together.
            let now = now_ms();
            let mut start = 0;
            while let Some(end) = next_line(&partial[start..]) {
                let (line, used) = end;
                self.deliver(i, &partial[start..start + line], now);
                start += used;
            }
            partial.drain(..start);
            self.pipes[i].partial = partial;
            self.flush_sinks();
        }
        false
    }

    fn close_pipe(&mut self, i: usize) {
        let rest = std::mem::take(&mut self.pipes[i].partial);
        if !rest.is_empty() {
            self.deliver(i, &rest, now_ms());
        }
        let pipe = self.pipes.remove(i);
        self.flush_sinks();
        if let Dest::File(path) = &pipe.dest
            && !self.pipes.iter().any(|p| p.dest == pipe.dest)
        {
            // Closed when unused; one that fails keeps its episode (without an fd) for the
            // program's next run, see [`FAILURE_MEMORY`].
            match self.files.get_mut(path) {
                Some(sink) if sink.failure.is_some() => sink.file = None,
                _ => {
                    self.files.remove(path);
                }
            }
        }
    }

    /// Drops unused failed log files whose last attempt is [`FAILURE_MEMORY`] old, so paths
    /// that left the config do not pile up.
    fn forget_old_failures(&mut self, now: Instant) {
        let pipes = &self.pipes;
        self.files.retain(|path, sink| {
            sink.failure
                .as_ref()
                .is_none_or(|f| now < f.retry_at + FAILURE_MEMORY)
                || pipes
                    .iter()
                    .any(|p| matches!(&p.dest, Dest::File(d) if d == path))
        });
    }

    fn flush_sinks(&mut self) {
        for sink in &mut self.sinks {
            sink.flush();
        }
    }

    /// Formats one line (without its newline) of pipe `i`, read at `now` (ms since the
    /// epoch), to its destination, and keeps it in its program's ring.
    fn deliver(&mut self, i: usize, line: &[u8], now: u64) {
        if let Some(pipe) = self.pipes.get_mut(i)
            && pipe
                .ready
                .as_ref()
                .is_some_and(|(t, _)| contains(line, t.as_bytes()))
            && let Some((_, who)) = pipe.ready.take()
        {
            self.ready_seen.push(who);
        }
        let pipe = &self.pipes[i];
        self.rings
            .push(pipe.ring, pipe.instance, pipe.stream, now, line);
        let json = matches!(pipe.dest, Dest::Json);
        if (self.timestamps || json) && self.stamp.0 != now {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now);
            self.stamp = (now, rfc3339(t));
        }
        let stamp = self.timestamps.then_some(self.stamp.1.as_str());
        let sink = &mut self.sinks[pipe.stream.index()];
        // Only a pipe without writers is read while its stream is full: it alone meets the cap.
        let capped = pipe.hup;
        let kept = match &pipe.dest {
            Dest::Prefix => sink.push_prefixed(stamp, &pipe.label, line, capped),
            Dest::Json => {
                let text = String::from_utf8_lossy(line);
                let record = format!(
                    "{{\"time\":\"{}\",\"program\":{},\"instance\":{},\"stream\":\"{}\",\"line\":{}}}\n",
                    self.stamp.1,
                    json_string(&pipe.program),
                    pipe.instance,
                    pipe.stream.name(),
                    json_string(&text),
                );
                sink.push(record.as_bytes(), capped)
            }
            Dest::File(path) => {
                let written = self
                    .files
                    .get_mut(path)
                    .is_some_and(|file| file.write_line(path, line));
                // The file cannot take it: the line goes to ginit's stderr, not nowhere.
                written || self.sinks[1].push_prefixed(stamp, &pipe.label, line, capped)
            }
        };
        if !kept {
            match self.dropped.iter_mut().find(|(p, _)| *p == pipe.program) {
                Some(entry) => entry.1 += 1,
                None => self.dropped.push((pipe.program.clone(), 1)),
            }
        }
    }

    /// Lines of program output dropped since ginit started, by program.
    pub fn dropped(&self) -> &[(String, u64)] {
        &self.dropped
    }
}

/// Whether `line` holds `text` (at most MAX_READY_LOG bytes: a bounded search per line).
fn contains(line: &[u8], text: &[u8]) -> bool {
    !text.is_empty() && line.windows(text.len()).any(|w| w == text)
}

/// Now, in milliseconds since the Unix epoch (the time lines are stamped with).
fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| d.as_millis() as u64)
}

/// The next line in `buf`: (length without the newline, bytes consumed), or None when `buf`
/// holds only the start of a line of at most [`MAX_LINE`] bytes. A longer one is cut at the
/// last UTF-8 character boundary within [`MAX_LINE`].
pub fn next_line(buf: &[u8]) -> Option<(usize, usize)> {
    let window = &buf[..buf.len().min(MAX_LINE + 1)];
    if let Some(n) = window.iter().position(|&b| b == b'\n') {
        return Some((n, n + 1));
    }
    if buf.len() <= MAX_LINE {
        return None;
    }
    // Back up over at most three continuation bytes (10xxxxxx) to the start of a character.
    let mut cut = MAX_LINE;
    while cut > MAX_LINE - 3 && buf[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    if buf[cut] & 0xC0 == 0x80 {
        cut = MAX_LINE; // not UTF-8 at all: cut anywhere
    }
    Some((cut, cut))
}

/// The part of `pending` to write at once: all of it when it fits in PIPE_BUF, else up to the
/// last line end within PIPE_BUF. A pipe takes a write of at most PIPE_BUF whole or not at
/// all, so every write ends at a line's end and ginit's own log lines, written whole to the
/// same stream between two writes, never land inside a program's line.
fn whole_lines(pending: &[u8]) -> &[u8] {
    if pending.len() <= libc::PIPE_BUF {
        return pending;
    }
    let window = &pending[..libc::PIPE_BUF];
    match window.iter().rposition(|&b| b == b'\n') {
        Some(nl) => &pending[..=nl],
        None => window,
    }
}

impl Sink {
    fn new(fd: RawFd, name: &'static str) -> Sink {
        Sink {
            name,
            fd,
            writer: None,
            pending: Vec::new(),
            broken: false,
            dropped: 0,
        }
    }

    /// Finds a way to write to the stream without blocking (once).
    fn prepare(&mut self) {
        if self.writer.is_some() {
            return;
        }
        let writer = Writer::for_fd(self.fd);
        // poll must watch the handle that is written.
        self.fd = writer.raw_fd();
        self.writer = Some(writer);
    }

    /// Queues `[STAMP ]label | line`; false when it was dropped at [`HARD_CAP`].
    fn push_prefixed(
        &mut self,
        stamp: Option<&str>,
        label: &str,
        line: &[u8],
        capped: bool,
    ) -> bool {
        let mut record = Vec::with_capacity(label.len() + line.len() + 30);
        if let Some(stamp) = stamp {
            record.extend_from_slice(stamp.as_bytes());
            record.push(b' ');
        }
        record.extend_from_slice(label.as_bytes());
        record.extend_from_slice(b" | ");
        record.extend_from_slice(line);
        record.push(b'\n');
        self.push(&record, capped)
    }

    /// Queues one record; with `capped`, only while the buffer stays within [`HARD_CAP`].
    /// False when it was dropped at the cap.
    fn push(&mut self, bytes: &[u8], capped: bool) -> bool {
        if self.broken {
            return true;
        }
        if capped && self.pending.len() + bytes.len() > HARD_CAP {
            self.dropped += 1;
            return false;
        }
        self.pending.extend_from_slice(bytes);
        true
    }

    /// Writes what is pending until the stream would block.
    fn flush(&mut self) {
        while !self.pending.is_empty() && !self.broken {
            let result = match &mut self.writer {
                Some(w) => w.write(whole_lines(&self.pending)),
                None => {
                    self.prepare();
                    continue;
                }
            };
            match result {
                Ok(n) => {
                    self.pending.drain(..n);
                    if self.dropped > 0 && n > 0 {
                        warn!(
                            "{} lines of program output were dropped: ginit's {} was not being read",
                            self.dropped, self.name
                        );
                        self.dropped = 0;
                    }
                    if self.pending.is_empty() && self.pending.capacity() > 4 * HIGH_WATER {
                        // The buffer grew towards the cap: give the memory back.
                        self.pending = Vec::new();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.broken = true;
                    self.pending = Vec::new();
                    error!(
                        "cannot write program output to ginit's {} any more: {e}",
                        self.name
                    );
                }
            }
        }
    }
}

impl FileSink {
    /// Opens (creates) the file for appending.
    fn open(&mut self, path: &Path) -> io::Result<()> {
        // O_NONBLOCK: a FIFO or a terminal named as a log file must not block the loop (a
        // regular file ignores the flag).
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        let meta = file.metadata();
        self.rotatable = meta.as_ref().is_ok_and(|m| m.is_file());
        self.size = meta.map_or(0, |m| m.len());
        self.file = Some(file);
        Ok(())
    }

    /// Appends one line, rotating first when it would pass the size. False when the line
    /// could not be written (it goes to ginit's stderr): then the file is not tried again
    /// before [`FILE_RETRY`] has passed, so a full disk costs one attempt a second, not two
    /// syscalls and two log lines per program line.
    fn write_line(&mut self, path: &Path, line: &[u8]) -> bool {
        let now = self.failure.as_ref().map(|_| Instant::now());
        if let (Some(failure), Some(now)) = (&mut self.failure, now)
            && now < failure.retry_at
        {
            failure.diverted += 1;
            return false;
        }
        match self.append(path, line) {
            Ok(()) => {
                if let Some(failure) = self.failure.take() {
                    warn!(
                        "writing to {} again; {} lines went to ginit's stderr meanwhile",
                        path.display(),
                        failure.diverted
                    );
                }
                true
            }
            Err((what, e)) => {
                self.fail(path, what, &e, now.unwrap_or_else(Instant::now));
                if let Some(failure) = &mut self.failure {
                    failure.diverted += 1;
                }
                false
            }
        }
    }

    fn append(&mut self, path: &Path, line: &[u8]) -> Result<(), (&'static str, io::Error)> {
        if self.file.is_none() {
            self.open(path).map_err(|e| ("open", e))?;
        }
        let len = line.len() as u64 + 1;
        if let Some(rotate) = self.rotate
            && self.rotatable
            && self.size > 0
            && self.size + len > rotate.size
        {
            self.rotate(path, rotate.keep);
            if self.file.is_none() {
                self.open(path).map_err(|e| ("open", e))?;
            }
        }
        let Some(file) = &mut self.file else {
            return Err(("open", io::ErrorKind::NotFound.into()));
        };
        // One write per line keeps lines whole when several programs share the file.
        let mut record = Vec::with_capacity(line.len() + 1);
        record.extend_from_slice(line);
        record.push(b'\n');
        match file.write_all(&record) {
            Ok(()) => {
                self.size += len;
                Ok(())
            }
            Err(e) => Err(("write to", e)),
        }
    }

    /// Starts a failure episode (one error line) or extends the one going on (silently).
    fn fail(&mut self, path: &Path, what: &str, e: &io::Error, now: Instant) {
        self.file = None;
        let retry_at = now + FILE_RETRY;
        match &mut self.failure {
            Some(failure) => failure.retry_at = retry_at,
            None => {
                error!(
                    "cannot {what} {}: {e}; its lines go to ginit's stderr until it works \
                     again (tried again once a second)",
                    path.display()
                );
                self.failure = Some(Failure {
                    diverted: 0,
                    retry_at,
                });
            }
        }
    }

    /// `path.{keep-1}` -> `path.{keep}`, ..., `path` -> `path.1`; the next write opens a new
    /// `path`. `keep` renames at most (validation bounds it). When `path` cannot be renamed
    /// (a bind-mounted file: EBUSY), writing goes on in it and rotation stops until it is
    /// opened again (SIGUSR1, the program's next run): one warning, not one per line, and the
    /// numbered files are not shifted again for nothing.
    fn rotate(&mut self, path: &Path, keep: u32) {
        let numbered = |n: u32| {
            let mut p = path.as_os_str().to_owned();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        for n in (1..keep).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        self.size = 0;
        match std::fs::rename(path, numbered(1)) {
            Ok(()) => self.file = None,
            Err(e) => {
                self.rotatable = false;
                warn!("cannot rotate {}: {e}; it grows on", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Instance `index` of `spec`, as the machine names it.
    fn who(spec: &ProgramSpec, index: u32) -> InstanceRef {
        InstanceRef {
            program: spec.name.clone(),
            index,
            serial: u64::from(index) + 1,
        }
    }

    #[test]
    fn writes_to_a_pipe_end_at_a_line_end_so_log_lines_never_land_inside_one() {
        let (r, w) = std::io::pipe().unwrap();
        sys::set_nonblocking(w.as_raw_fd(), true).unwrap();
        sys::set_nonblocking(r.as_raw_fd(), true).unwrap();
        let mut sink = Sink::new(w.as_raw_fd(), "stderr");
        sink.writer = Some(Writer::Plain(w.as_raw_fd()));
        let mut reader = std::fs::File::from(std::os::fd::OwnedFd::from(r));
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        for n in 0..20_000u32 {
            sink.push_prefixed(
                None,
                "app",
                format!("line {n} of the program").as_bytes(),
                false,
            );
            if n % 997 == 0 {
                // The sink fills the pipe; the reader takes only some of it, so there is
                // room for ginit's own line, written whole between two of the sink's writes.
                sink.flush();
                if let Ok(k) = std::io::Read::read(&mut reader, &mut buf[..5000]) {
                    got.extend_from_slice(&buf[..k]);
                }
                let _ = sys::write(w.as_raw_fd(), b"ginit: a log line\n");
            }
        }
        while !sink.pending.is_empty() {
            sink.flush();
            while let Ok(k) = std::io::Read::read(&mut reader, &mut buf) {
                if k == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..k]);
            }
        }
        let text = String::from_utf8(got).unwrap();
        let mut next = 0;
        for line in text.lines() {
            if line == "ginit: a log line" {
                continue;
            }
            assert_eq!(line, format!("app | line {next} of the program"));
            next += 1;
        }
        assert_eq!(next, 20_000);
    }

    #[test]
    fn lines_are_cut_at_newlines() {
        assert_eq!(next_line(b"abc\ndef"), Some((3, 4)));
        assert_eq!(next_line(b"\n"), Some((0, 1)));
        assert_eq!(next_line(b"abc"), None);
        assert_eq!(next_line(b""), None);
    }

    #[test]
    fn long_lines_are_cut_at_a_character_boundary() {
        let mut buf = vec![b'a'; MAX_LINE - 1];
        buf.extend_from_slice("é".as_bytes()); // 2 bytes across the limit
        buf.extend_from_slice(b"tail");
        assert_eq!(next_line(&buf), Some((MAX_LINE - 1, MAX_LINE - 1)));
        let exact = vec![b'a'; MAX_LINE];
        assert_eq!(next_line(&exact), None);
        let mut over = vec![b'a'; MAX_LINE + 1];
        assert_eq!(next_line(&over), Some((MAX_LINE, MAX_LINE)));
        over[MAX_LINE] = b'\n';
        assert_eq!(next_line(&over), Some((MAX_LINE, MAX_LINE + 1)));
        let junk = vec![0x80; MAX_LINE + 5];
        assert_eq!(next_line(&junk), Some((MAX_LINE, MAX_LINE)));
    }

    #[test]
    fn files_rotate_and_keep_the_newest() {
        let dir = std::env::temp_dir().join(format!("ginit-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("app.log");
        let mut sink = FileSink {
            file: None,
            size: 0,
            rotate: Some(Rotate { size: 9, keep: 2 }),
            ..FileSink::default()
        };
        for line in ["one", "two", "three", "four", "five"] {
            assert!(sink.write_line(&path, line.as_bytes()));
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(&path), "five\n");
        assert_eq!(read(&dir.join("app.log.1")), "four\n");
        assert_eq!(read(&dir.join("app.log.2")), "three\n");
        assert!(!dir.join("app.log.3").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn prefixed_and_json_lines() {
        let mut outputs = Outputs::new();
        let (r, w) = Outputs::pipe().unwrap();
        let mut web = ProgramSpec::new("web", vec!["web".into()]);
        web.instances = 2;
        web.stdout = Output::Prefix;
        web.stderr = Output::Json;
        outputs.attach(r, &web, &who(&web, 1), Stream::Stdout);
        let (r2, w2) = Outputs::pipe().unwrap();
        web.instances = 1;
        outputs.attach(r2, &web, &who(&web, 0), Stream::Stderr);
        // Keep the records in the buffer: pretend both streams would block.
        for sink in &mut outputs.sinks {
            sink.writer = Some(Writer::PollFirst(-1));
        }
        File::from(w).write_all(b"hello\npart").unwrap();
        File::from(w2).write_all(b"say \"hi\"\n").unwrap();
        let fds: Vec<libc::pollfd> = (0..4)
            .map(|_| libc::pollfd {
                fd: 0,
                events: 0,
                revents: libc::POLLIN,
            })
            .collect();
        outputs.handle(&fds);
        outputs.handle(&fds);
        assert!(outputs.pipes.is_empty(), "both writers closed");
        assert_eq!(
            String::from_utf8_lossy(&outputs.sinks[0].pending),
            "web.1 | hello\nweb.1 | part\n"
        );
        let json = String::from_utf8_lossy(&outputs.sinks[1].pending).into_owned();
        assert!(json.starts_with("{\"time\":\""), "{json}");
        assert!(
            json.ends_with(
                "\",\"program\":\"web\",\"instance\":0,\"stream\":\"stderr\",\"line\":\"say \\\"hi\\\"\"}\n"
            ),
            "{json}"
        );
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ginit-output-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// One round of the loop without waiting: poll, then handle.
    fn round(outputs: &mut Outputs) -> Vec<libc::pollfd> {
        let mut fds = Vec::new();
        outputs.poll_fds(&mut fds);
        sys::poll(&mut fds, 0).unwrap();
        outputs.handle(&fds);
        fds
    }

    #[test]
    fn a_paused_pipe_is_closed_once_its_writer_is_gone_and_the_cap_holds() {
        let mut outputs = Outputs::new();
        let mut app = ProgramSpec::new("app", vec!["app".into()]);
        app.stdout = Output::Prefix;
        // ginit's stdout takes nothing and its buffer is at the high-water mark: paused.
        outputs.sinks[0].writer = Some(Writer::PollFirst(-1));
        outputs.sinks[0].pending = vec![b'.'; HIGH_WATER];
        let (r, w) = Outputs::pipe().unwrap();
        outputs.attach(r, &app, &who(&app, 0), Stream::Stdout);
        let mut live = File::from(w);
        live.write_all(b"waits\n").unwrap();
        let (r, w) = Outputs::pipe().unwrap();
        outputs.attach(r, &app, &who(&app, 1), Stream::Stdout);
        // A pipe's default capacity of 1 KiB lines from a writer that then exits.
        let mut line = vec![b'y'; 1023];
        line.push(b'\n');
        let mut gone = File::from(w);
        for _ in 0..64 {
            gone.write_all(&line).unwrap();
        }
        drop(gone);
        let mut rounds = 0;
        while outputs.pipes.len() > 1 && rounds < 20 {
            let fds = round(&mut outputs);
            assert!(fds[2].fd >= 0 && fds[2].events == 0, "paused, still polled");
            rounds += 1;
        }
        assert_eq!(outputs.pipes.len(), 1, "the pipe without writers is closed");
        let record = "app | ".len() + 1024;
        assert_eq!(outputs.sinks[0].pending.len(), HIGH_WATER + 64 * record);
        assert_eq!(outputs.sinks[0].dropped, 0);
        // The live writer is not read while the stream is full, so it waits, losing nothing.
        round(&mut outputs);
        assert_eq!(outputs.pipes.len(), 1);
        assert!(outputs.pipes[0].partial.is_empty());
        assert!(!String::from_utf8_lossy(&outputs.sinks[0].pending).contains("waits"));

        // Near the cap, an exited writer's lines past it are dropped and counted.
        outputs.sinks[0].pending = vec![b'.'; HARD_CAP - record - 10];
        let (r, w) = Outputs::pipe().unwrap();
        outputs.attach(r, &app, &who(&app, 1), Stream::Stdout);
        let mut gone = File::from(w);
        for _ in 0..3 {
            gone.write_all(&line).unwrap();
        }
        drop(gone);
        let mut rounds = 0;
        while outputs.pipes.len() > 1 && rounds < 20 {
            round(&mut outputs);
            rounds += 1;
        }
        assert_eq!(outputs.pipes.len(), 1);
        assert_eq!(outputs.sinks[0].pending.len(), HARD_CAP - 10);
        assert_eq!(outputs.sinks[0].dropped, 2);
        // ... and counted by program for the metrics, for good.
        let by_program = [("app".to_string(), 2)];
        assert_eq!(outputs.dropped(), by_program);

        // Once the stream takes bytes, the loss is reported (and forgotten), the buffer
        // empties and the live writer's line comes through.
        let dir = temp_dir("drop");
        let out = File::create(dir.join("stdout")).unwrap();
        outputs.sinks[0].writer = Some(Writer::Plain(out.as_raw_fd()));
        round(&mut outputs);
        round(&mut outputs);
        assert_eq!(outputs.sinks[0].dropped, 0);
        assert_eq!(
            outputs.dropped(),
            by_program,
            "the metrics' count is never reset"
        );
        let written = std::fs::read(dir.join("stdout")).unwrap();
        assert!(written.ends_with(b"app | waits\n"));
        assert!(outputs.sinks[0].pending.capacity() <= 4 * HIGH_WATER);
        drop(live);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failing_file_is_tried_again_after_a_second_and_counts_what_went_to_stderr() {
        let dir = temp_dir("fail");
        let path = dir.join("app.log");
        std::fs::create_dir(&path).unwrap(); // open fails: EISDIR
        let mut sink = FileSink::default();
        assert!(!sink.write_line(&path, b"one"));
        assert!(!sink.write_line(&path, b"two"));
        std::fs::remove_dir(&path).unwrap();
        // Writable now, but not tried again before FILE_RETRY has passed.
        assert!(!sink.write_line(&path, b"three"));
        assert_eq!(sink.failure.as_ref().map(|f| f.diverted), Some(3));
        assert!(!path.exists());
        if let Some(f) = &mut sink.failure {
            f.retry_at = Instant::now();
        }
        assert!(sink.write_line(&path, b"four"));
        assert!(sink.failure.is_none());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "four\n");
        std::fs::remove_dir_all(&dir).unwrap();

        // A device is never rotated, and a full one costs one attempt, not one per line.
        let full = Path::new("/dev/full");
        if full.exists() {
            let mut sink = FileSink {
                rotate: Some(Rotate { size: 1, keep: 3 }),
                ..FileSink::default()
            };
            for _ in 0..1000 {
                assert!(!sink.write_line(full, b"x"));
            }
            assert_eq!(sink.failure.as_ref().map(|f| f.diverted), Some(1000));
            assert!(sink.file.is_none() && !sink.rotatable);
        }
    }

    #[test]
    fn a_file_that_cannot_be_renamed_stops_rotating_and_grows_on() {
        let dir = temp_dir("norotate");
        let path = dir.join("app.log");
        // `app.log.1` is a directory that is not empty: renaming app.log onto it fails.
        std::fs::create_dir_all(dir.join("app.log.1/x")).unwrap();
        let mut sink = FileSink {
            rotate: Some(Rotate { size: 9, keep: 1 }),
            ..FileSink::default()
        };
        for line in ["one", "two", "three", "four", "five"] {
            assert!(sink.write_line(&path, line.as_bytes()));
        }
        assert!(!sink.rotatable);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "one\ntwo\nthree\nfour\nfive\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
