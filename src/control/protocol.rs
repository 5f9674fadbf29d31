//! The control protocol: one JSON object per line each way (newline-delimited JSON).
//!
//! A client sends one request line and reads one response line; it may send more requests on
//! the same connection. Requests are tagged by `command` (`{"command":"restart","programs":
//! ["web"]}`); every response has `ok`, and either `error` or the command's result. The README
//! documents the format for other tools. This module is types and (de)serialisation only; it
//! imports no other ginit module.

use serde::Serialize;

use super::json::{self, Fields, Json};

/// A connection to the control socket, as the server numbers them (the machine answers on it).
pub type ConnId = u64;

/// Largest request line the server reads; anything longer is refused.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A request. Written by serde's derive (tagged by `command`); read by [`Request::parse`]
/// with `control::json` (serde_json's deserializer cost ~50 KB of binary).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    // The commands without arguments are empty structs, so they write as `{"command":...}`
    // like the others.
    Status {},
    Start {
        programs: Vec<String>,
    },
    Stop {
        programs: Vec<String>,
    },
    Restart {
        programs: Vec<String>,
    },
    Reload {
        programs: Vec<String>,
    },
    Signal {
        signal: String,
        programs: Vec<String>,
    },
    Ready {},
    ReloadConfig {},
    Shutdown {},
    // The two streams (`ginit events`, `ginit logs`): after the answer line, the connection
    // carries lines until either side closes it (see `control::streams`).
    /// `ginit events [--json]`: a snapshot of every instance, then every event.
    Events {
        json: bool,
    },
    /// `ginit logs [-n N] [-f] [--json] [NAME...]`: the last `lines` lines of the programs
    /// (none: every program), then with `follow` new ones.
    Logs {
        programs: Vec<String>,
        lines: u32,
        follow: bool,
        json: bool,
    },
}

/// `ginit logs` without `-n`.
pub const DEFAULT_LOG_LINES: u32 = 100;

/// Every field a request line may have; which ones a command takes is checked after.
struct Wire {
    command: String,
    programs: Option<Vec<String>>,
    signal: Option<String>,
    lines: Option<u32>,
    follow: Option<bool>,
    json: Option<bool>,
}

impl Wire {
    fn read(line: &[u8]) -> Result<Wire, String> {
        let mut f = Fields::of(json::parse(line)?, "the request")?;
        let w = Wire {
            command: f.string("command")?.ok_or("missing field `command`")?,
            programs: f.strings("programs")?,
            signal: f.string("signal")?,
            lines: f.number("lines")?,
            follow: f.boolean("follow")?,
            json: f.boolean("json")?,
        };
        f.done(&["command", "programs", "signal", "lines", "follow", "json"])?;
        Ok(w)
    }
}

impl Request {
    /// Parses one request line; the error is a sentence for the client.
    pub fn parse(line: &[u8]) -> Result<Request, String> {
        let bad = |e: String| format!("malformed request: {e}");
        let w = Wire::read(line).map_err(bad)?;
        let given = [
            ("programs", w.programs.is_some()),
            ("signal", w.signal.is_some()),
            ("lines", w.lines.is_some()),
            ("follow", w.follow.is_some()),
            ("json", w.json.is_some()),
        ];
        // The fields `command` takes, or None for an unknown command.
        let takes: Option<&[&str]> = match w.command.as_str() {
            "status" | "ready" | "reload-config" | "shutdown" => Some(&[]),
            "start" | "stop" | "restart" | "reload" => Some(&["programs"]),
            "signal" => Some(&["signal", "programs"]),
            "events" => Some(&["json"]),
            "logs" => Some(&["programs", "lines", "follow", "json"]),
            _ => None,
        };
        let Some(takes) = takes else {
            return Err(bad(format!("unknown command `{}`", w.command)));
        };
        if let Some((field, _)) = given.iter().find(|(f, on)| *on && !takes.contains(f)) {
            return Err(bad(format!("`{}` takes no `{field}`", w.command)));
        }
        let programs = w
            .programs
            .ok_or_else(|| bad("missing field `programs`".into()));
        Ok(match w.command.as_str() {
            "status" => Request::Status {},
            "ready" => Request::Ready {},
            "reload-config" => Request::ReloadConfig {},
            "shutdown" => Request::Shutdown {},
            "start" => Request::Start {
                programs: programs?,
            },
            "stop" => Request::Stop {
                programs: programs?,
            },
            "restart" => Request::Restart {
                programs: programs?,
            },
            "reload" => Request::Reload {
                programs: programs?,
            },
            "signal" => Request::Signal {
                signal: w
                    .signal
                    .ok_or_else(|| bad("missing field `signal`".into()))?,
                programs: programs?,
            },
            "events" => Request::Events {
                json: w.json.unwrap_or(false),
            },
            _ => Request::Logs {
                programs: programs.unwrap_or_default(),
                lines: w.lines.unwrap_or(DEFAULT_LOG_LINES),
                follow: w.follow.unwrap_or(false),
                json: w.json.unwrap_or(false),
            },
        })
    }

    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Response {
    pub ok: bool,
    /// Why the request failed (with `ok: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was done, for people (`restarted web`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The answer to `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl Response {
    pub fn ok(message: impl Into<String>) -> Response {
        Response {
            ok: true,
            message: Some(message.into()),
            ..Response::default()
        }
    }

    pub fn error(error: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(error.into()),
            ..Response::default()
        }
    }

    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }

    /// Reads a response line (members it does not know are ignored: a newer ginit may add
    /// some).
    pub fn parse(line: &[u8]) -> Result<Response, String> {
        Response::read(line).map_err(|e| format!("malformed response from ginit: {e}"))
    }

    fn read(line: &[u8]) -> Result<Response, String> {
        let mut f = Fields::of(json::parse(line)?, "the response")?;
        Ok(Response {
            ok: f.boolean("ok")?.ok_or("missing field `ok`")?,
            error: f.string("error")?,
            message: f.string("message")?,
            status: match f.take("status") {
                None => None,
                Some(s) => Some(Status::read(s)?),
            },
        })
    }
}

impl Status {
    fn read(value: Json) -> Result<Status, String> {
        let mut f = Fields::of(value, "`status`")?;
        let mut instances = Vec::new();
        if let Some(list) = f.take("instances") {
            let Json::Arr(items) = list else {
                return Err(format!("`instances` is {}, not a list", list.kind()));
            };
            for item in items {
                instances.push(InstanceStatus::read(item)?);
            }
        }
        Ok(Status {
            ready: f.boolean("ready")?.unwrap_or(false),
            shutting_down: f.boolean("shutting_down")?.unwrap_or(false),
            config_error: f.string("config_error")?,
            instances,
        })
    }
}

impl InstanceStatus {
    fn read(value: Json) -> Result<InstanceStatus, String> {
        let mut f = Fields::of(value, "an instance")?;
        Ok(InstanceStatus {
            program: f.string("program")?.unwrap_or_default(),
            instance: f.number("instance")?.unwrap_or(0),
            pid: f.number("pid")?,
            state: f.string("state")?.unwrap_or_default(),
            ready: f.boolean("ready")?.unwrap_or(false),
            uptime_secs: f.float("uptime_secs")?,
            restarts: f.number("restarts")?.unwrap_or(0),
            cpu_percent: f.float("cpu_percent")?,
            rss_bytes: f.number("rss_bytes")?,
            last_exit: f.number("last_exit")?,
            schedule: f.string("schedule")?,
            next_run: f.string("next_run")?,
            skipped_runs: f.number("skipped_runs")?,
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Status {
    /// Every program's readiness holds and ginit is not shutting down.
    pub ready: bool,
    pub shutting_down: bool,
    /// The error of the last config reload, until one succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    pub instances: Vec<InstanceStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct InstanceStatus {
    pub program: String,
    pub instance: u32,
    pub pid: Option<i32>,
    /// starting, running, ready, stopping, stopped, backoff, failed, done.
    pub state: String,
    pub ready: bool,
    /// Seconds since the current process started.
    pub uptime_secs: Option<f64>,
    pub restarts: u32,
    /// CPU use of the process tree in percent of one core, since the last sample.
    pub cpu_percent: Option<f64>,
    /// Resident memory of the process tree.
    pub rss_bytes: Option<u64>,
    /// Exit status of the previous run (128+N for signal N).
    pub last_exit: Option<i32>,
    /// A scheduled program's times: the cron fields as written (UTC), or `every 10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// A scheduled program's next run (RFC 3339, UTC); none while a stop request pauses its
    /// timetable, or before its dependencies let it start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<String>,
    /// Runs of a scheduled program not started because the previous run was still going.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_runs: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let all = [
            Request::Status {},
            Request::Start {
                programs: vec!["web".into()],
            },
            Request::Stop {
                programs: vec!["a".into(), "b".into()],
            },
            Request::Restart { programs: vec![] },
            Request::Reload {
                programs: vec!["web".into()],
            },
            Request::Signal {
                signal: "HUP".into(),
                programs: vec!["web".into()],
            },
            Request::Ready {},
            Request::ReloadConfig {},
            Request::Shutdown {},
            Request::Events { json: true },
            Request::Logs {
                programs: vec!["web".into()],
                lines: 5,
                follow: true,
                json: false,
            },
        ];
        for r in all {
            let line = r.to_line();
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            assert_eq!(Request::parse(line.as_bytes()), Ok(r));
        }
        assert_eq!(
            Request::Restart {
                programs: vec!["web".into()]
            }
            .to_line(),
            "{\"command\":\"restart\",\"programs\":[\"web\"]}\n"
        );
        assert_eq!(
            Request::parse(b"{\"command\":\"reload-config\"}"),
            Ok(Request::ReloadConfig {})
        );
        // The streams' fields may be left out.
        assert_eq!(
            Request::parse(b"{\"command\":\"logs\"}"),
            Ok(Request::Logs {
                programs: vec![],
                lines: DEFAULT_LOG_LINES,
                follow: false,
                json: false
            })
        );
        assert_eq!(
            Request::parse(b"{\"command\":\"events\"}"),
            Ok(Request::Events { json: false })
        );
    }

    #[test]
    fn bad_requests_say_why() {
        for bad in [
            &b"not json"[..],
            b"{}",
            b"{\"command\":\"explode\"}",
            b"{\"command\":\"start\"}",
            b"{\"command\":\"status\",\"extra\":1}",
            b"{\"command\":\"status\",\"programs\":[]}",
            b"{\"command\":\"signal\",\"programs\":[\"a\"]}",
            b"{\"command\":\"logs\",\"lines\":-1}",
            b"{\"programs\":[]}",
            b"[1,2]",
            b"\xff\xfe",
        ] {
            let e = Request::parse(bad).unwrap_err();
            assert!(e.starts_with("malformed request: "), "{e}");
        }
    }

    #[test]
    fn responses_round_trip() {
        let status = Response {
            ok: true,
            status: Some(Status {
                ready: true,
                shutting_down: false,
                config_error: Some("bad".into()),
                instances: vec![InstanceStatus {
                    program: "web".into(),
                    instance: 1,
                    pid: Some(42),
                    state: "running".into(),
                    ready: true,
                    uptime_secs: Some(1.5),
                    restarts: 2,
                    cpu_percent: Some(12.5),
                    rss_bytes: Some(1 << 20),
                    last_exit: None,
                    schedule: Some("@daily (UTC)".into()),
                    next_run: Some("2026-12-02T00:00:00Z".into()),
                    skipped_runs: Some(1),
                }],
            }),
            ..Response::default()
        };
        for r in [status, Response::ok("done"), Response::error("no")] {
            assert_eq!(Response::parse(r.to_line().as_bytes()), Ok(r));
        }
        assert_eq!(
            Response::error("no such program `x`").to_line(),
            "{\"ok\":false,\"error\":\"no such program `x`\"}\n"
        );
    }
}
