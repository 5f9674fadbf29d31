//! The events of `ginit events`: one user-visible state change each (an instance started,
//! exited, is ready; a program failed; a reload or a config reload ended; the shutdown began).
//!
//! The machine decides that one happened and publishes it (`Effect::Publish`); the edge stamps
//! the wall-clock time (the machine has no clock of its own) and hands it to what consumes
//! events: the subscribers of `ginit events` and the metrics' counters. This module is the
//! type both sides speak, and imports no other ginit module.
//!
//! It also renders an event as the line `ginit events` shows, text or JSON (below): written
//! with `write!` and serde_json's string escaping rather than a derive, which would cost more
//! binary than the whole renderer, and from one list of fields per event so the two forms
//! cannot drift.

use std::fmt::Write as _;

/// One state change, of one instance of `program` when `instance` is given, of the whole
/// program when only `program` is, of ginit itself when `program` is empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub program: String,
    pub instance: Option<u32>,
    pub what: What,
}

/// What happened, with its own fields. Durations are seconds.
#[derive(Clone, Debug, PartialEq)]
pub enum What {
    /// A line of the snapshot a subscriber gets first: where an instance stands now (`state`
    /// as `ginit status` shows it).
    State {
        state: &'static str,
        pid: Option<i32>,
        ready: bool,
        restarts: u32,
    },
    /// A process of the instance runs (the new one of a `replace` reload included).
    Started { pid: i32 },
    /// No process could be made for the instance (counts as a run that exited with 127).
    StartFailed { why: String },
    /// The instance is ready (its readiness check passed, or it has none).
    Ready,
    /// A process of the instance ended: its exit `status` (128+N for signal N), the
    /// signal's name if one killed it, and how long it ran.
    Exited {
        pid: i32,
        status: i32,
        signal: Option<String>,
        ran: f64,
    },
    /// The instance will be started again after `delay`; `restarts` counts this one.
    RestartScheduled { delay: f64, restarts: u32 },
    /// Given up: the instance will not be restarted (`why` says which limit).
    Failed { why: String },
    /// The instance has stopped and stays stopped (on request, at shutdown, or it ended and
    /// its policy does not restart it).
    Stopped,
    /// A oneshot instance succeeded (exit 0, or one of its `success_exit_codes`).
    Done,
    /// A `replace` reload of the program began.
    ReloadBegun,
    /// The `replace` reload's new instances serve; the old ones are stopping. `took`: since
    /// it began.
    ReloadDone { took: f64 },
    /// The `replace` reload was abandoned; the old instances keep serving.
    ReloadRolledBack { why: String },
    /// A health check failed `failures` times in a row (a readiness check that ran out of
    /// time is one too, with `failures` 1); `why` says so.
    HealthFailed { failures: u32, why: String },
    /// The instance's tree is over its `memory_max` or `cpu_max` (`resource`: `memory` or
    /// `cpu`); `why` says by how much and what ginit does.
    OverLimit { resource: &'static str, why: String },
    /// The config file was reloaded and applied; `summary` says what changed.
    ConfigReloaded { summary: String },
    /// The config file was read and rejected; nothing changed.
    ConfigRejected { errors: String },
    /// ginit began shutting down (`why`: the signal or request).
    ShutdownBegun { why: String },
    /// A scheduled program's run due at `due` (UTC) was not started: the previous run was
    /// still going.
    RunSkipped { due: String },
    /// A file under a program's `watch.paths` changed (`path`): it is reloaded.
    FilesChanged { path: String },
}

impl What {
    /// The event's name, as the `event` field of its JSON and the word of its text line.
    pub fn name(&self) -> &'static str {
        match self {
            What::State { .. } => "state",
            What::Started { .. } => "started",
            What::StartFailed { .. } => "start_failed",
            What::Ready => "ready",
            What::Exited { .. } => "exited",
            What::RestartScheduled { .. } => "restart_scheduled",
            What::Failed { .. } => "failed",
            What::Stopped => "stopped",
            What::Done => "done",
            What::ReloadBegun => "reload_begun",
            What::ReloadDone { .. } => "reload_done",
            What::ReloadRolledBack { .. } => "reload_rolled_back",
            What::HealthFailed { .. } => "health_failed",
            What::OverLimit { .. } => "over_limit",
            What::ConfigReloaded { .. } => "config_reloaded",
            What::ConfigRejected { .. } => "config_rejected",
            What::ShutdownBegun { .. } => "shutdown_begun",
            What::RunSkipped { .. } => "run_skipped",
            What::FilesChanged { .. } => "files_changed",
        }
    }
}

impl Event {
    /// An event of instance `index` of `program`.
    pub fn of(program: &str, index: u32, what: What) -> Event {
        Event {
            program: program.to_string(),
            instance: Some(index),
            what,
        }
    }

    /// An event of a whole program.
    pub fn of_program(program: &str, what: What) -> Event {
        Event {
            program: program.to_string(),
            instance: None,
            what,
        }
    }

    /// An event of ginit itself.
    pub fn of_ginit(what: What) -> Event {
        Event {
            program: String::new(),
            instance: None,
            what,
        }
    }
}

/// One field of an event, as both renderings need it.
#[derive(Clone, Copy)]
enum Field<'a> {
    Absent,
    Number(i64),
    /// Seconds, shown to the millisecond (`1.2s` in text, `1.2` in JSON).
    Secs(f64),
    Text(&'a str),
    Flag(bool),
}

/// Seconds to the millisecond, without trailing zeros: `1.2`, `0.002`, `3` (0 for what is not
/// a number, so JSON never gets NaN). Written from integers: float formatting would cost
/// kilobytes of binary.
fn secs(secs: f64) -> String {
    let ms = if secs.is_finite() && secs > 0.0 {
        (secs * 1000.0).round() as u64
    } else {
        0
    };
    let mut text = format!("{}.{:03}", ms / 1000, ms % 1000);
    while text.ends_with('0') {
        text.pop();
    }
    if text.ends_with('.') {
        text.pop();
    }
    text
}

/// A JSON string literal (serde_json's escaping).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

impl What {
    /// The event's own fields, in the order they are shown (at most four).
    fn fields(&self) -> [(&'static str, Field<'_>); 4] {
        use Field::*;
        let none = ("", Absent);
        match self {
            What::State {
                state,
                pid,
                ready,
                restarts,
            } => [
                ("state", Text(state)),
                ("pid", pid.map_or(Absent, |p| Number(p.into()))),
                ("ready", Flag(*ready)),
                ("restarts", Number((*restarts).into())),
            ],
            What::Started { pid } => [("pid", Number((*pid).into())), none, none, none],
            What::Exited {
                pid,
                status,
                signal,
                ran,
            } => [
                ("pid", Number((*pid).into())),
                ("status", Number((*status).into())),
                ("signal", signal.as_deref().map_or(Absent, Text)),
                ("ran", Secs(*ran)),
            ],
            What::RestartScheduled { delay, restarts } => [
                ("delay", Secs(*delay)),
                ("restarts", Number((*restarts).into())),
                none,
                none,
            ],
            What::ReloadDone { took } => [("took", Secs(*took)), none, none, none],
            What::HealthFailed { failures, why } => [
                ("failures", Number((*failures).into())),
                ("why", Text(why)),
                none,
                none,
            ],
            What::OverLimit { resource, why } => {
                [("resource", Text(resource)), ("why", Text(why)), none, none]
            }
            What::StartFailed { why }
            | What::Failed { why }
            | What::ReloadRolledBack { why }
            | What::ShutdownBegun { why } => [("why", Text(why)), none, none, none],
            What::ConfigReloaded { summary } => [("summary", Text(summary)), none, none, none],
            What::ConfigRejected { errors } => [("errors", Text(errors)), none, none, none],
            What::RunSkipped { due } => [("due", Text(due)), none, none, none],
            What::FilesChanged { path } => [("path", Text(path)), none, none, none],
            What::Ready | What::Stopped | What::Done | What::ReloadBegun => [none; 4],
        }
    }
}

impl Event {
    /// The text line of `ginit events`, newline included: `TIME web.0 exited pid=12 status=3
    /// ran=1.2s`. Who: `web.0` (an instance), `web` (a program), `ginit` (ginit itself). A
    /// text field with spaces, quotes or control characters is a JSON string literal, so one
    /// event is always one line.
    pub fn write_text(&self, time: &str, out: &mut String) {
        out.push_str(time);
        out.push(' ');
        match (self.program.as_str(), self.instance) {
            ("", _) => out.push_str("ginit"),
            (program, Some(i)) => {
                let _ = write!(out, "{program}.{i}");
            }
            (program, None) => out.push_str(program),
        }
        out.push(' ');
        out.push_str(self.what.name());
        for (key, field) in self.what.fields() {
            let _ = match field {
                Field::Absent => continue,
                Field::Number(n) => write!(out, " {key}={n}"),
                Field::Secs(s) => write!(out, " {key}={}s", secs(s)),
                Field::Flag(b) => write!(out, " {key}={}", if b { "yes" } else { "no" }),
                Field::Text(t)
                    if !t.is_empty()
                        && !t
                            .chars()
                            .any(|c| c.is_whitespace() || c.is_control() || c == '"') =>
                {
                    write!(out, " {key}={t}")
                }
                Field::Text(t) => write!(out, " {key}={}", quoted(t)),
            };
        }
        out.push('\n');
    }

    /// The JSON line of `ginit events --json`, newline included: `{"time", "event",
    /// "program" and "instance" where they apply, then the event's own fields}`.
    pub fn write_json(&self, time: &str, out: &mut String) {
        let _ = write!(
            out,
            "{{\"time\":{},\"event\":\"{}\"",
            quoted(time),
            self.what.name()
        );
        if !self.program.is_empty() {
            let _ = write!(out, ",\"program\":{}", quoted(&self.program));
        }
        if let Some(i) = self.instance {
            let _ = write!(out, ",\"instance\":{i}");
        }
        for (key, field) in self.what.fields() {
            let _ = match field {
                Field::Absent => continue,
                Field::Number(n) => write!(out, ",\"{key}\":{n}"),
                Field::Secs(s) => write!(out, ",\"{key}\":{}", secs(s)),
                Field::Flag(b) => write!(out, ",\"{key}\":{b}"),
                Field::Text(t) => write!(out, ",\"{key}\":{}", quoted(t)),
            };
        }
        out.push_str("}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIME: &str = "2026-12-01T08:00:00.123Z";

    fn every_what() -> Vec<What> {
        let why = || "say \"no\"\nthen\ttab \u{1}".to_string();
        vec![
            What::State {
                state: "running",
                pid: Some(12),
                ready: true,
                restarts: 2,
            },
            What::State {
                state: "backoff",
                pid: None,
                ready: false,
                restarts: 0,
            },
            What::Started { pid: 12 },
            What::StartFailed { why: why() },
            What::Ready,
            What::Exited {
                pid: 12,
                status: 3,
                signal: None,
                ran: 1.2,
            },
            What::Exited {
                pid: 12,
                status: 137,
                signal: Some("SIGKILL".into()),
                ran: 0.0004,
            },
            What::RestartScheduled {
                delay: 0.1,
                restarts: 1,
            },
            What::Failed { why: why() },
            What::Stopped,
            What::Done,
            What::ReloadBegun,
            What::ReloadDone { took: 1.5 },
            What::ReloadRolledBack { why: why() },
            What::HealthFailed {
                failures: 3,
                why: why(),
            },
            What::OverLimit {
                resource: "memory",
                why: why(),
            },
            What::ConfigReloaded {
                summary: "1 added".into(),
            },
            What::ConfigRejected { errors: why() },
            What::ShutdownBegun {
                why: "received SIGTERM".into(),
            },
        ]
    }

    fn text(e: &Event) -> String {
        let mut s = String::new();
        e.write_text(TIME, &mut s);
        s
    }

    fn json(e: &Event) -> serde_json::Value {
        let mut s = String::new();
        e.write_json(TIME, &mut s);
        assert!(
            s.ends_with('\n') && !s[..s.len() - 1].contains('\n'),
            "{s:?}"
        );
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn text_lines_read_as_sentences() {
        let ev = |what| Event::of("web", 0, what);
        assert_eq!(
            text(&ev(What::Exited {
                pid: 12,
                status: 3,
                signal: None,
                ran: 1.2
            })),
            "2026-12-01T08:00:00.123Z web.0 exited pid=12 status=3 ran=1.2s\n"
        );
        assert_eq!(
            text(&ev(What::State {
                state: "ready",
                pid: Some(7),
                ready: true,
                restarts: 0
            })),
            "2026-12-01T08:00:00.123Z web.0 state state=ready pid=7 ready=yes restarts=0\n"
        );
        assert_eq!(
            text(&Event::of_program("web", What::ReloadBegun)),
            "2026-12-01T08:00:00.123Z web reload_begun\n"
        );
        assert_eq!(
            text(&Event::of_ginit(What::ShutdownBegun {
                why: "received SIGTERM".into()
            })),
            "2026-12-01T08:00:00.123Z ginit shutdown_begun why=\"received SIGTERM\"\n"
        );
        assert_eq!(
            text(&ev(What::RestartScheduled {
                delay: 0.1,
                restarts: 4
            })),
            "2026-12-01T08:00:00.123Z web.0 restart_scheduled delay=0.1s restarts=4\n"
        );
        // Every event is one line, whatever its text holds.
        for what in every_what() {
            let line = text(&ev(what.clone()));
            assert!(line.starts_with(TIME), "{line}");
            assert_eq!(line.matches('\n').count(), 1, "{line:?}");
            assert!(line.contains(what.name()));
        }
    }

    #[test]
    fn json_lines_parse_with_their_fields() {
        for what in every_what() {
            for e in [
                Event::of("w\"eb", 1, what.clone()),
                Event::of_program("web", what.clone()),
                Event::of_ginit(what.clone()),
            ] {
                let v = json(&e);
                assert_eq!(v["time"], TIME);
                assert_eq!(v["event"], what.name());
                match (e.program.as_str(), e.instance) {
                    ("", _) => assert!(v.get("program").is_none() && v.get("instance").is_none()),
                    (p, Some(i)) => {
                        assert_eq!(v["program"], p);
                        assert_eq!(v["instance"], i);
                    }
                    (p, None) => {
                        assert_eq!(v["program"], p);
                        assert!(v.get("instance").is_none());
                    }
                }
            }
        }
        let v = json(&Event::of(
            "web",
            0,
            What::Exited {
                pid: 12,
                status: 137,
                signal: Some("SIGKILL".into()),
                ran: 0.0004,
            },
        ));
        assert_eq!(v["pid"], 12);
        assert_eq!(v["status"], 137);
        assert_eq!(v["signal"], "SIGKILL");
        assert_eq!(v["ran"], 0.0);
        let v = json(&Event::of_ginit(What::ConfigRejected {
            errors: "a \"b\"\nc\u{1}".into(),
        }));
        assert_eq!(v["errors"], "a \"b\"\nc\u{1}", "escaped and back");
        let v = json(&Event::of(
            "web",
            0,
            What::State {
                state: "backoff",
                pid: None,
                ready: false,
                restarts: 3,
            },
        ));
        assert!(v.get("pid").is_none());
        assert_eq!(
            (v["ready"].as_bool(), v["restarts"].as_u64()),
            (Some(false), Some(3))
        );
        assert_eq!(
            json(&Event::of_program(
                "web",
                What::ReloadDone { took: f64::NAN }
            ))["took"],
            0.0
        );
    }
}
