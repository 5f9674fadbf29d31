//! The two streams a control connection can turn into: `ginit events` (a snapshot, then every
//! event) and `ginit logs` (the last lines of the log rings, then with `-f` new ones).
//!
//! What goes into a stream was decided by the machine (`machine/observe.rs`); this module
//! renders it into the connection's queue and bounds that queue, so that nothing a client does
//! slows a program or ginit: supervision never waits for a subscriber.
//! - A connection becomes a stream after its answer line (`{"ok":true,...}`); from then on it
//!   is only written to (what the client sends is left unread) and it is never closed to make
//!   room for another connection, but at most [`MAX_STREAMS`] exist at once, fewer than the
//!   control server's connections, so `ginit ready` and `ginit status` always get through.
//! - An events subscriber whose unsent lines would pass [`QUEUE`] is disconnected, with a
//!   final line saying so (kept to be read for the control server's stall time).
//! - A `logs -f` client whose unsent lines would pass [`QUEUE`] misses lines (the rings are
//!   written all the same); once it has read half of its queue, it is told in-line how many
//!   it missed, and the lines flow again.
//! - `logs` sends at most [`DUMP`] bytes of old lines (the newest that fit; the client is
//!   told how many older ones were left out).
//!
//! It writes to no fd (the server flushes the queue) and decides nothing about events.

use std::fmt::Write as _;

use super::events::Event;
use crate::os::ring::{LogLine, Ring, Rings};

/// Streams at once (`events`, `logs` with or without `-f`); the control server keeps 64
/// connections, so 48 stay for requests.
pub const MAX_STREAMS: usize = 16;
/// Unsent bytes of new lines after which a subscriber falls behind.
pub const QUEUE: usize = 256 * 1024;
/// Most bytes of old lines one `ginit logs` sends.
pub const DUMP: usize = 4 << 20;

/// What a stream carries.
#[derive(Debug, PartialEq)]
pub enum Kind {
    Events,
    /// The lines of these programs (`None`: every program).
    Logs(Option<Vec<String>>),
}

#[derive(Debug)]
pub struct Stream {
    pub kind: Kind,
    pub json: bool,
    /// `logs -f`: lines not queued since the client fell behind.
    missed: u64,
}

impl Stream {
    pub fn new(kind: Kind, json: bool) -> Stream {
        Stream {
            kind,
            json,
            missed: 0,
        }
    }

    /// A `logs -f` stream that wants the lines of `program`.
    pub fn follows(&self, program: &str) -> bool {
        match &self.kind {
            Kind::Events => false,
            Kind::Logs(None) => true,
            Kind::Logs(Some(names)) => names.iter().any(|n| n == program),
        }
    }

    /// Queues one new line of output in `queue`, or counts it missed when the client is
    /// behind; the count is said in-line once the client has read half of its queue.
    pub fn follow(&mut self, queue: &mut Vec<u8>, line: &[u8]) {
        if self.missed > 0 {
            if queue.len() > QUEUE / 2 {
                self.missed += 1;
                return;
            }
            let note = if self.json {
                format!("{{\"missed\":{}}}\n", self.missed)
            } else {
                format!(
                    "ginit: {} lines missed: this client did not keep up\n",
                    self.missed
                )
            };
            queue.extend_from_slice(note.as_bytes());
            self.missed = 0;
        }
        if queue.len() + line.len() > QUEUE {
            self.missed = 1;
            return;
        }
        queue.extend_from_slice(line);
    }
}

/// Queues one event line in an events subscriber's `queue`; false when it would pass
/// [`QUEUE`]: then the queue holds what is needed to end the line being sent, and the final
/// line instead of the event (the caller closes the connection).
pub fn publish(queue: &mut Vec<u8>, line: &str, json: bool, time: &str) -> bool {
    if queue.len() + line.len() <= QUEUE {
        queue.extend_from_slice(line.as_bytes());
        return true;
    }
    // The front may be the rest of a line partly written: keep that, drop the others.
    let keep = queue.iter().position(|&b| b == b'\n').map_or(0, |n| n + 1);
    queue.truncate(keep);
    let why = "fell behind (256 KiB of events unsent) and was disconnected; supervision goes on";
    let last = if json {
        format!("{{\"time\":\"{time}\",\"event\":\"subscriber_dropped\",\"why\":\"{why}\"}}\n")
    } else {
        format!("{time} ginit subscriber_dropped why=\"{why}\"\n")
    };
    queue.extend_from_slice(last.as_bytes());
    false
}

/// One event as its subscribers see it.
pub fn render(event: &Event, json: bool, time: &str) -> String {
    let mut line = String::new();
    if json {
        event.write_json(time, &mut line);
    } else {
        event.write_text(time, &mut line);
    }
    line
}

/// The snapshot a new events subscriber gets first.
pub fn snapshot(events: &[Event], json: bool, time: &str) -> Vec<u8> {
    let mut out = String::new();
    for e in events {
        out.push_str(&render(e, json, time));
    }
    out.into_bytes()
}

/// The last `n` lines of `programs` (`None`: all), rendered, at most [`DUMP`] bytes: the
/// newest that fit, after a line saying how many older ones were left out.
pub fn dump(
    rings: &Rings,
    programs: Option<&[String]>,
    n: u32,
    json: bool,
    timestamps: bool,
) -> Vec<u8> {
    let lines = rings.last(programs, n as usize, DUMP);
    let mut rendered: Vec<Vec<u8>> = Vec::new();
    let mut total = 0;
    for (ring, line) in lines.iter().rev() {
        let mut one = Vec::new();
        ring.render(line, json, timestamps, &mut one);
        if total + one.len() > DUMP {
            break;
        }
        total += one.len();
        rendered.push(one);
    }
    let mut out = Vec::with_capacity(total + 100);
    let left_out = rings
        .count(programs, n as usize)
        .saturating_sub(rendered.len());
    if left_out > 0 {
        let mut note = String::new();
        let _ = if json {
            writeln!(note, "{{\"left_out\":{left_out}}}")
        } else {
            writeln!(
                note,
                "ginit: {left_out} older lines left out (at most {} MiB at once)",
                DUMP >> 20
            )
        };
        out.extend_from_slice(note.as_bytes());
    }
    for one in rendered.iter().rev() {
        out.extend_from_slice(one);
    }
    out
}

/// One fresh line, rendered for a follower (`None` for a line of a ring that is gone).
pub fn render_line(rings: &[Ring], fresh: &(usize, LogLine), json: bool, stamps: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(ring) = rings.get(fresh.0) {
        ring.render(&fresh.1, json, stamps, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::events::What;
    use crate::os::output::Stream as Out;

    #[test]
    fn a_follower_that_falls_behind_is_told_how_many_lines_it_missed() {
        let mut s = Stream::new(Kind::Logs(Some(vec!["web".into()])), false);
        assert!(s.follows("web") && !s.follows("db"));
        assert!(Stream::new(Kind::Logs(None), true).follows("db"));
        assert!(!Stream::new(Kind::Events, true).follows("db"));
        let mut queue = Vec::new();
        let line = vec![b'x'; 1023];
        let mut line = line;
        line.push(b'\n');
        for _ in 0..300 {
            s.follow(&mut queue, &line);
        }
        assert_eq!(queue.len(), 256 * 1024);
        assert_eq!(s.missed, 44);
        // The client reads less than half: still behind.
        queue.drain(..100 * 1024);
        s.follow(&mut queue, &line);
        assert_eq!(s.missed, 45);
        queue.drain(..60 * 1024);
        s.follow(&mut queue, b"next\n");
        assert_eq!(s.missed, 0);
        let tail = String::from_utf8_lossy(&queue[queue.len() - 60..]).into_owned();
        assert!(
            tail.ends_with("ginit: 45 lines missed: this client did not keep up\nnext\n"),
            "{tail}"
        );
    }

    #[test]
    fn an_events_subscriber_that_falls_behind_gets_a_last_line() {
        let mut queue = b"rest of a line\nwhole line\n".to_vec();
        let big = "e".repeat(QUEUE);
        assert!(publish(&mut queue, "ok\n", false, "T"));
        assert!(!publish(&mut queue, &big, true, "T"));
        let text = String::from_utf8(queue).unwrap();
        assert!(
            text.starts_with("rest of a line\n{\"time\":\"T\",\"event\":\"subscriber_dropped\"")
        );
        let last = text.lines().nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(last).unwrap();
        assert!(v["why"].as_str().unwrap().contains("disconnected"));
    }

    #[test]
    fn the_snapshot_and_the_dump() {
        let events = [
            Event::of("web", 0, What::Ready),
            Event::of_program("web", What::ReloadBegun),
        ];
        assert_eq!(
            String::from_utf8(snapshot(&events, false, "T")).unwrap(),
            "T web.0 ready\nT web reload_begun\n"
        );
        let mut rings = Rings::default();
        let web = rings.ring_for("web", false, |_| false);
        rings.settings(
            crate::config::LogBuffer {
                lines: 100_000,
                bytes: 64 << 20,
            },
            &["web".into()],
        );
        let long = vec![b'y'; 16 * 1024];
        for _ in 0..300 {
            rings.push(web, 0, Out::Stdout, 0, &long);
        }
        rings.push(web, 0, Out::Stdout, 0, b"last");
        let out = dump(&rings, None, 1000, false, false);
        assert!(out.len() <= DUMP + 100);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("ginit: 45 older lines left out (at most 4 MiB at once)\n"));
        assert!(text.ends_with("web | last\n"));
        let two = dump(&rings, Some(&["web".into()]), 2, true, false);
        assert_eq!(String::from_utf8(two).unwrap().lines().count(), 2);
    }
}
