//! The log rings behind `ginit logs`: each program's last lines of output, in memory, and the
//! lines new since the last round for `ginit logs -f` clients.
//!
//! Every line that passes through ginit (`prefix`, `json`, files; `inherit` and `null` never
//! reach ginit) is copied once into its program's ring, whatever the clients do: a ring keeps
//! at most `log.buffer.lines` lines and `log.buffer.bytes` bytes of text, dropping its oldest
//! first (either at 0: nothing is kept). Lines carry a sequence number shared by all rings, so
//! `ginit logs` with several programs shows them oldest first across programs. Only while a
//! `-f` client is connected (`tap`) is each line also copied, once, into `fresh`, for the
//! control server to hand out; with none, a line costs one copy and no more.
//!
//! It owns memory only: no fd, no client. Its lines are rendered here (the `prefix` form or
//! the `json` form of `os/output.rs`), so `logs` shows what the program's output mode shows.
//! It must not decide who may read what (the machine does) nor write to a client (the
//! control server does, with a bounded queue per client).

use std::collections::{HashMap, VecDeque};

use super::output::Stream;
use super::stdio::{json_string, rfc3339};
use crate::config::LogBuffer;

/// One line of output as kept.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    /// Order among the lines of every ring.
    pub seq: u64,
    /// When ginit read it: milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub instance: u32,
    pub stream: Stream,
    /// Without its newline.
    pub text: Box<[u8]>,
}

/// What a ring keeps of a line besides its text.
#[derive(Clone, Copy, Debug)]
struct Meta {
    seq: u64,
    time_ms: u64,
    instance: u32,
    stream: Stream,
    len: u32,
}

/// One program's ring: the lines' texts back to back in one buffer, and what else is known
/// of each. No allocation per line: keeping a line writes to the ends of two buffers, and
/// dropping the oldest moves their starts (a PID 1 that forks at every restart pays a page
/// fault for each page it writes after the fork, so writes are kept to few pages).
#[derive(Debug)]
pub struct Ring {
    pub name: String,
    /// The program has several instances: lines are labelled `name.i`.
    pub multi: bool,
    lines: VecDeque<Meta>,
    text: VecDeque<u8>,
    /// The program is in the running config (a ring of one that left it is reused).
    kept: bool,
}

/// Every program's ring, and the lines new since [`Rings::take_fresh`].
#[derive(Debug)]
pub struct Rings {
    rings: Vec<Ring>,
    by_name: HashMap<String, usize>,
    limit: LogBuffer,
    seq: u64,
    /// Some `ginit logs -f` client is connected: new lines are also copied to `fresh`.
    pub tap: bool,
    fresh: Vec<(usize, LogLine)>,
}

impl Default for Rings {
    fn default() -> Self {
        Rings {
            rings: Vec::new(),
            by_name: HashMap::new(),
            limit: LogBuffer::DEFAULT,
            seq: 0,
            tap: false,
            fresh: Vec::new(),
        }
    }
}

impl Rings {
    /// The ring of program `name` (made, or a ring of a program gone from the config and not
    /// `in_use` reused), as a position for [`Rings::push`].
    pub fn ring_for(&mut self, name: &str, multi: bool, in_use: impl Fn(usize) -> bool) -> usize {
        if let Some(&i) = self.by_name.get(name)
            && let Some(ring) = self.rings.get_mut(i)
        {
            ring.multi = multi;
            ring.kept = true;
            return i;
        }
        let ring = Ring {
            name: name.to_string(),
            multi,
            lines: VecDeque::new(),
            text: VecDeque::new(),
            kept: true,
        };
        let free = (0..self.rings.len()).find(|&i| !self.rings[i].kept && !in_use(i));
        let i = match free {
            Some(i) => {
                self.by_name.remove(&self.rings[i].name);
                self.rings[i] = ring;
                i
            }
            None => {
                self.rings.push(ring);
                self.rings.len() - 1
            }
        };
        self.by_name.insert(name.to_string(), i);
        i
    }

    /// The running config's ring size; the rings of programs not in `programs` are emptied
    /// (and reused by the next new program), every ring is trimmed to the new size.
    pub fn settings(&mut self, limit: LogBuffer, programs: &[String]) {
        self.limit = limit;
        // The map type `by_name` has: each distinct map type costs kilobytes of binary.
        let mut names: HashMap<String, usize> = HashMap::with_capacity(programs.len());
        for (i, p) in programs.iter().enumerate() {
            names.insert(p.clone(), i);
        }
        for ring in &mut self.rings {
            ring.kept = names.contains_key(&ring.name);
            if !ring.kept {
                ring.lines = VecDeque::new();
                ring.text = VecDeque::new();
            }
            ring.trim(limit, 0, 0);
        }
    }

    /// Keeps one line of ring `ring` (and copies it to `fresh` while tapped).
    pub fn push(&mut self, ring: usize, instance: u32, stream: Stream, time_ms: u64, text: &[u8]) {
        let keep = !self.limit.is_off() && (text.len() as u64) <= self.limit.bytes;
        if !keep && !self.tap {
            return;
        }
        let Some(r) = self.rings.get_mut(ring) else {
            return;
        };
        self.seq += 1;
        let meta = Meta {
            seq: self.seq,
            time_ms,
            instance,
            stream,
            len: text.len() as u32,
        };
        if self.tap {
            self.fresh.push((ring, meta.with(text)));
        }
        if keep {
            r.trim(self.limit, 1, text.len());
            r.text.extend(text);
            r.lines.push_back(meta);
        }
    }

    /// The last `n` lines of the named programs (`None`: all), oldest first across them; of
    /// each ring at most about `budget` bytes of text (what a client may ask for is copied
    /// only as far as it can be sent).
    pub fn last(&self, programs: Option<&[String]>, n: usize, budget: usize) -> Vec<Kept<'_>> {
        // Each ring is in order already: its last `n` lines are merged two runs at a time
        // (O(lines log rings), and no sort's code in the binary).
        let mut runs: Vec<Vec<Kept<'_>>> = Vec::new();
        for ring in &self.rings {
            let wanted = match programs {
                None => ring.kept,
                Some(names) => names.contains(&ring.name),
            };
            if wanted && n > 0 && !ring.lines.is_empty() {
                let mut end = ring.text.len();
                let mut run: Vec<Kept<'_>> = Vec::new();
                for meta in ring.lines.iter().rev().take(n) {
                    if ring.text.len() - end > budget {
                        break;
                    }
                    let start = end.saturating_sub(meta.len as usize);
                    let text: Vec<u8> = ring.text.range(start..end).copied().collect();
                    run.push((ring, meta.with(&text)));
                    end = start;
                }
                run.reverse();
                runs.push(run);
            }
        }
        while runs.len() > 1 {
            let mut merged = Vec::with_capacity(runs.len().div_ceil(2));
            let mut pairs = runs.into_iter();
            while let Some(a) = pairs.next() {
                merged.push(match pairs.next() {
                    Some(b) => merge(a, b),
                    None => a,
                });
            }
            runs = merged;
        }
        let mut out = runs.pop().unwrap_or_default();
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
        out
    }

    /// How many lines [`Rings::last`] would give without a budget.
    pub fn count(&self, programs: Option<&[String]>, n: usize) -> usize {
        let wanted = |ring: &&Ring| match programs {
            None => ring.kept,
            Some(names) => names.contains(&ring.name),
        };
        let all: usize = self
            .rings
            .iter()
            .filter(wanted)
            .map(|r| r.lines.len().min(n))
            .sum();
        all.min(n)
    }

    /// The lines kept since the last call (only while tapped), with their ring.
    pub fn take_fresh(&mut self) -> (Vec<(usize, LogLine)>, &[Ring]) {
        (std::mem::take(&mut self.fresh), &self.rings)
    }
}

/// A line of a ring, with its ring.
pub type Kept<'a> = (&'a Ring, LogLine);

impl Meta {
    fn with(self, text: &[u8]) -> LogLine {
        LogLine {
            seq: self.seq,
            time_ms: self.time_ms,
            instance: self.instance,
            stream: self.stream,
            text: text.into(),
        }
    }
}

/// Two runs of lines in order, as one.
fn merge<'a>(a: Vec<Kept<'a>>, b: Vec<Kept<'a>>) -> Vec<Kept<'a>> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.1.seq <= y.1.seq => a.next(),
            (_, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => return out,
        };
        out.extend(next);
    }
}

impl Ring {
    /// Drops the oldest lines until `more` lines of `room` bytes in all fit too.
    fn trim(&mut self, limit: LogBuffer, more: usize, room: usize) {
        while !self.lines.is_empty()
            && (self.lines.len() + more > limit.lines as usize
                || (self.text.len() + room) as u64 > limit.bytes)
        {
            if let Some(old) = self.lines.pop_front() {
                let len = (old.len as usize).min(self.text.len());
                self.text.drain(..len);
            }
        }
        if self.lines.is_empty() {
            self.text.clear();
        }
    }

    /// Renders one of its lines (with its newline) as `ginit logs` shows it: as a `prefix`
    /// line (`[TIME ]name[.i] | line`), or as a `json` output line.
    pub fn render(&self, line: &LogLine, json: bool, timestamps: bool, out: &mut Vec<u8>) {
        let time = || {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(line.time_ms);
            rfc3339(t)
        };
        if json {
            let record = format!(
                "{{\"time\":\"{}\",\"program\":{},\"instance\":{},\"stream\":\"{}\",\"line\":{}}}\n",
                time(),
                json_string(&self.name),
                line.instance,
                line.stream.name(),
                json_string(&String::from_utf8_lossy(&line.text)),
            );
            out.extend_from_slice(record.as_bytes());
            return;
        }
        if timestamps {
            out.extend_from_slice(time().as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(self.name.as_bytes());
        if self.multi {
            out.extend_from_slice(format!(".{}", line.instance).as_bytes());
        }
        out.extend_from_slice(b" | ");
        out.extend_from_slice(&line.text);
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(rings: &Rings, programs: Option<&[String]>, n: usize) -> Vec<String> {
        rings
            .last(programs, n, usize::MAX)
            .into_iter()
            .map(|(r, l)| {
                let mut out = Vec::new();
                r.render(&l, false, false, &mut out);
                String::from_utf8(out).unwrap()
            })
            .collect()
    }

    #[test]
    fn rings_keep_the_newest_lines_within_both_limits() {
        let mut rings = Rings::default();
        rings.settings(
            LogBuffer {
                lines: 3,
                bytes: 10,
            },
            &["a".into(), "b".into()],
        );
        let a = rings.ring_for("a", false, |_| false);
        let b = rings.ring_for("b", true, |_| false);
        for (i, text) in ["one", "two", "three", "four"].iter().enumerate() {
            rings.push(a, 0, Stream::Stdout, i as u64, text.as_bytes());
        }
        // 3 lines would be 13 bytes: only "three" and "four" fit in 10.
        assert_eq!(texts(&rings, None, 100), ["a | three\n", "a | four\n"]);
        rings.push(b, 1, Stream::Stderr, 9, b"x");
        rings.push(a, 0, Stream::Stdout, 9, b"y");
        rings.push(b, 0, Stream::Stdout, 9, b"z");
        assert_eq!(
            texts(&rings, None, 3),
            ["b.1 | x\n", "a | y\n", "b.0 | z\n"],
            "oldest first across programs"
        );
        assert_eq!(texts(&rings, Some(&["b".into()]), 1), ["b.0 | z\n"]);
        assert_eq!(rings.rings[a].lines.len(), 3);
        // A line longer than the ring is not kept; neither is anything with the ring off.
        rings.push(a, 0, Stream::Stdout, 9, b"much too long");
        assert_eq!(rings.rings[a].lines.len(), 3);
        rings.settings(
            LogBuffer {
                lines: 0,
                bytes: 10,
            },
            &["a".into(), "b".into()],
        );
        assert!(texts(&rings, None, 100).is_empty(), "trimmed to nothing");
        rings.push(a, 0, Stream::Stdout, 9, b"y");
        assert!(texts(&rings, None, 100).is_empty());
        assert!(rings.fresh.is_empty(), "no copy without a follower");
    }

    #[test]
    fn a_tap_copies_new_lines_once_and_gone_programs_free_their_ring() {
        let mut rings = Rings::default();
        let a = rings.ring_for("a", false, |_| false);
        rings.tap = true;
        rings.push(a, 0, Stream::Stdout, 5, b"hello");
        let (fresh, all) = rings.take_fresh();
        assert_eq!(fresh.len(), 1);
        assert_eq!(all[fresh[0].0].name, "a");
        assert_eq!(&*fresh[0].1.text, b"hello");
        assert!(rings.take_fresh().0.is_empty());
        // `a` leaves the config: its lines go, and a new program reuses its ring once no
        // pipe writes to it.
        rings.settings(LogBuffer::DEFAULT, &["b".into()]);
        assert!(texts(&rings, None, 10).is_empty());
        assert_eq!(
            rings.ring_for("b", false, |i| i == a),
            1,
            "in use: not reused"
        );
        assert_eq!(rings.ring_for("c", false, |_| false), a);
        assert_eq!(rings.by_name.get("a"), None);
    }

    #[test]
    fn lines_render_as_prefix_and_json_output_does() {
        let ring = Ring {
            name: "web".into(),
            multi: true,
            lines: VecDeque::new(),
            text: VecDeque::new(),
            kept: true,
        };
        let line = LogLine {
            seq: 1,
            time_ms: 1_795_532_400_123,
            instance: 1,
            stream: Stream::Stderr,
            text: b"say \"hi\"".as_slice().into(),
        };
        let render = |json, stamps| {
            let mut out = Vec::new();
            ring.render(&line, json, stamps, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(render(false, false), "web.1 | say \"hi\"\n");
        assert_eq!(
            render(false, true),
            "2026-11-24T15:00:00.123Z web.1 | say \"hi\"\n"
        );
        assert_eq!(
            render(true, false),
            "{\"time\":\"2026-11-24T15:00:00.123Z\",\"program\":\"web\",\"instance\":1,\
             \"stream\":\"stderr\",\"line\":\"say \\\"hi\\\"\"}\n"
        );
    }
}
