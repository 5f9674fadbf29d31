//! What `ginit events` and `ginit logs` get: the decisions behind the two streams of the
//! control socket. Read this file for "what does a new `ginit events` subscriber see first"
//! or "why does `ginit logs web` say its output is not kept".
//!
//! - `events`: the connection becomes a subscription ([`Effect::Subscribe`]) whose first lines
//!   are a snapshot of every instance (a `What::State` event each, from what `status` shows
//!   that the machine knows without a /proc sample: state, pid, readiness, restarts); every
//!   event published after it follows, in order.
//! - `logs`: the names are checked (none: every program); a program whose stdout and stderr
//!   both bypass ginit (`inherit`, `null`) has no lines to show, and the answer says so and
//!   what to set instead; with the ring off (`log.buffer` 0) only `-f` has anything to show.
//!   The edge serves the lines ([`Effect::ServeLogs`]): the output room owns the rings.
//! - the log settings of the running config (ring size, timestamps, which programs exist)
//!   go to the edge at the start and after every config reload applied
//!   ([`Effect::LogSettings`]).
//!
//! Bounds on subscribers and their queues are the edge's (`control/streams.rs`): they are
//! about memory and fds, not about what happens.

use crate::config::Output;
use crate::control::events::{Event, What};
use crate::control::protocol::Response;

use super::programs::counts_ready;
use super::{ConnId, Effect, Machine};

/// `ginit logs`, decided: what the edge serves on `conn` from the log rings.
#[derive(Clone, Debug, PartialEq)]
pub struct LogsAnswer {
    pub conn: ConnId,
    /// The programs whose lines are shown; `None`: every program (also ones added later).
    pub programs: Option<Vec<String>>,
    /// The last this many lines (0: none), oldest first across the programs.
    pub lines: u32,
    /// Then new lines until the client goes.
    pub follow: bool,
    pub json: bool,
    /// Said to the client before the lines (on stderr): named programs without lines.
    pub notes: Option<String>,
}

/// Whether lines of this output pass through ginit (and so reach the ring).
fn piped(output: &Output) -> bool {
    !matches!(output, Output::Inherit | Output::Null)
}

fn word(output: &Output) -> &'static str {
    match output {
        Output::Null => "null",
        _ => "inherit",
    }
}

impl Machine {
    /// `ginit events`: the snapshot, then the subscription.
    pub(super) fn subscribe_events(&mut self, conn: ConnId, json: bool) {
        let mut snapshot = Vec::new();
        for p in &self.programs {
            for i in &p.instances {
                let what = What::State {
                    state: i.word(&p.spec),
                    pid: i.pid(),
                    ready: counts_ready(p.launched, &p.spec, i),
                    restarts: i.restarts,
                };
                snapshot.push(Event::of(&p.spec.name, i.index, what));
            }
        }
        self.out.push(Effect::Subscribe {
            conn,
            json,
            snapshot,
        });
    }

    /// `ginit logs [-n N] [-f] [--json] [NAME...]`.
    pub(super) fn answer_logs(
        &mut self,
        conn: ConnId,
        names: &[String],
        lines: u32,
        follow: bool,
        json: bool,
    ) {
        let all = names.is_empty() || names.iter().any(|n| n == "all");
        let resolved = match self.resolve_names(if all { &[] } else { names }) {
            Ok(_) if all => self.programs.iter().map(|p| p.spec.name.clone()).collect(),
            Ok(names) => names,
            Err(e) => return self.respond(conn, Response::error(e)),
        };
        let mut bypass = Vec::new();
        for name in &resolved {
            let Some(p) = self.program_index(name).and_then(|p| self.programs.get(p)) else {
                continue;
            };
            let (out, err) = (&p.spec.stdout, &p.spec.stderr);
            if !piped(out) && !piped(err) {
                bypass.push(format!(
                    "{name}: stdout is `{}` and stderr `{}`",
                    word(out),
                    word(err)
                ));
            }
        }
        let mut notes = Vec::new();
        // Without names, programs that bypass ginit are only mentioned if no other has lines.
        let none = bypass.len() == resolved.len();
        if !bypass.is_empty() && (!all || none) {
            notes.push(format!(
                "{}: ginit passes such output on without reading it, so none of it is kept; \
                 set `stdout: prefix` (or `json`, or a file), and the same for `stderr`, to \
                 see it with `ginit logs`",
                bypass.join("; ")
            ));
        }
        if none {
            let e = match resolved.len() {
                0 => "there is no program".to_string(),
                _ => notes.join(""),
            };
            return self.respond(conn, Response::error(e));
        }
        if self.config.log.buffer.is_off() {
            let off = "the log buffer is off (`log.buffer` has 0 lines or bytes)";
            if !follow {
                let e = format!("{off}: nothing is kept; `ginit logs -f` shows new lines");
                return self.respond(conn, Response::error(e));
            }
            notes.push(format!("{off}: only new lines"));
        }
        let answer = LogsAnswer {
            conn,
            programs: (!all).then_some(resolved),
            lines,
            follow,
            json,
            notes: (!notes.is_empty()).then(|| notes.join("\n")),
        };
        self.out.push(Effect::ServeLogs(answer));
    }

    /// Hands the running config's log settings to the edge.
    pub(super) fn log_settings(&mut self) {
        self.out.push(Effect::LogSettings {
            buffer: self.config.log.buffer,
            timestamps: self.config.log.timestamps,
            programs: self
                .config
                .programs
                .iter()
                .map(|p| p.name.clone())
                .collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::config::LogBuffer;
    use crate::control::protocol::Request;
    use std::time::Instant;

    fn logs(names: &[&str], follow: bool) -> Request {
        Request::Logs {
            programs: names.iter().map(|s| s.to_string()).collect(),
            lines: 10,
            follow,
            json: false,
        }
    }

    const MIXED: &str = "programs:\n  web: {command: x, stdout: prefix, instances: 2, ready: {notify: true}}\n  quiet: {command: x}\n  gone: {command: x, stdout: null, stderr: null}\n";

    #[test]
    fn a_subscriber_gets_a_snapshot_of_every_instance_first() {
        let mut e = edge(MIXED);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        e.notify(e.spawned[0].2, "READY=1", t);
        let c = e.ask(Request::Events { json: true }, t);
        let Some((conn, json, snapshot)) = e.subscribed.last().cloned() else {
            panic!("no subscription");
        };
        assert_eq!((conn, json), (c, true));
        let states: Vec<(String, Option<u32>, &What)> = snapshot
            .iter()
            .map(|ev| (ev.program.clone(), ev.instance, &ev.what))
            .collect();
        assert_eq!(states.len(), 4);
        assert_eq!(
            states[0],
            (
                "web".to_string(),
                Some(0),
                &What::State {
                    state: "ready",
                    pid: Some(e.spawned[0].2),
                    ready: true,
                    restarts: 0
                }
            )
        );
        assert!(
            matches!(
                states[1].2,
                What::State {
                    state: "starting",
                    ready: false,
                    ..
                }
            ),
            "{states:?}"
        );
        assert_eq!(states[3].0, "gone");
        assert!(e.answer(c).is_none(), "the edge answers when it subscribes");
    }

    #[test]
    fn logs_check_names_and_say_when_output_bypasses_ginit() {
        let mut e = edge(MIXED);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let c = e.ask(logs(&["nope"], false), t);
        assert_eq!(
            e.answer(c).and_then(|r| r.error.clone()).as_deref(),
            Some("no program named `nope`")
        );
        // Only programs that bypass ginit: refused, saying what to set.
        let c = e.ask(logs(&["quiet", "gone"], false), t);
        let error = e
            .answer(c)
            .and_then(|r| r.error.clone())
            .unwrap_or_default();
        assert!(
            error.starts_with("quiet: stdout is `inherit` and stderr `inherit`; gone:"),
            "{error}"
        );
        assert!(error.contains("gone: stdout is `null` and stderr `null`"));
        assert!(error.contains("`stdout: prefix`"));
        assert!(e.served.is_empty());
        // Some have lines: served, with a note about the others.
        let c = e.ask(logs(&["web", "quiet"], true), t);
        let served = e.served.last().cloned().expect("served");
        assert_eq!(served.conn, c);
        assert_eq!(served.programs, Some(vec!["web".into(), "quiet".into()]));
        assert!((served.follow, served.lines) == (true, 10));
        assert!(
            served
                .notes
                .is_some_and(|n| n.contains("quiet: stdout is `inherit`"))
        );
        // No name (or `all`): every program, also those a reload adds; those without lines
        // are not mentioned.
        for names in [&[][..], &["all"]] {
            e.ask(logs(names, false), t);
            let served = e.served.last().cloned().expect("served");
            assert_eq!((served.programs, served.notes), (None, None));
        }
    }

    #[test]
    fn with_the_ring_off_only_follow_has_lines() {
        let mut e =
            edge("programs:\n  web: {command: x, stdout: prefix}\nlog: {buffer: {lines: 0}}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let c = e.ask(logs(&[], false), t);
        let error = e
            .answer(c)
            .and_then(|r| r.error.clone())
            .unwrap_or_default();
        assert!(error.starts_with("the log buffer is off"), "{error}");
        e.ask(logs(&[], true), t);
        let notes = e
            .served
            .last()
            .and_then(|s| s.notes.clone())
            .unwrap_or_default();
        assert!(notes.contains("only new lines"), "{notes}");
    }

    #[test]
    fn log_settings_go_to_the_edge_at_the_start_and_after_a_reload() {
        let mut e = edge("programs:\n  a: {command: x}\nlog: {timestamps: true}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        assert_eq!(
            e.log_settings,
            [(LogBuffer::DEFAULT, true, vec!["a".to_string()])]
        );
        e.next_config = Some(Ok(config(
            "programs:\n  b: {command: x}\nlog: {buffer: {lines: 5, bytes: 1KiB}}\n",
        )));
        e.feed(Input::Signal(libc::SIGHUP), t);
        let expected = LogBuffer {
            lines: 5,
            bytes: 1024,
        };
        assert_eq!(
            e.log_settings.last(),
            Some(&(expected, false, vec!["b".to_string()]))
        );
        // A rejected file changes nothing.
        e.next_config = Some(Err("bad".into()));
        e.feed(Input::Signal(libc::SIGHUP), t);
        assert_eq!(e.log_settings.len(), 2);
    }
}
