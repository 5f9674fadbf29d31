//! The metrics endpoint's pure side: what an HTTP request to it asks for, the counters kept
//! from the published events, and the Prometheus text exposition (format 0.0.4) rendered from
//! plain data. The OS side (listener, connections, /proc, the clock) is `os/metrics.rs`.
//!
//! It owns no fd, reads no clock and no /proc: the rows, usage, dropped lines and the wall
//! time are handed in. It imports only the other leaves of `control` (the event and the status
//! row types), so it is unit-tested and fuzzed (`fuzzing::http_request`) without a socket.
//!
//! Counters are kept per program (and per instance where per instance) for as long as ginit
//! runs, so they never go down: not across restarts, not across config reloads. A program a
//! reload removes keeps its counter series (its gauges go, as it has no instance); if it comes
//! back, its counters carry on. The table is bounded by [`MAX_SERIES`] instance entries.

use std::collections::HashMap;
use std::fmt::Write;

use super::events::{Event, What};
use super::protocol::InstanceStatus;

/// Largest request (request line and headers) read; a longer one is closed unanswered.
pub const MAX_REQUEST: usize = 4096;
/// Instance entries of the counter table (each a few dozen bytes); events of instances
/// beyond it are not counted. Twice the instances a config may have, so a config reload
/// that renames every program still fits.
pub const MAX_SERIES: usize = 20_000;

/// What a complete request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    /// The end of the headers (an empty line) has not arrived yet.
    Incomplete,
    /// `GET /metrics` (any query string), HTTP/1.0 or 1.1.
    Metrics,
    /// Anything else (another method or path, or not an HTTP/1.x request line).
    NotFound,
}

/// Reads a request: its request line decides, once the headers have ended (so a reply never
/// races a client still sending them). What follows the headers is never looked at.
pub fn parse_request(buf: &[u8]) -> Asked {
    let Some(end) = header_end(buf) else {
        return Asked::Incomplete;
    };
    let head = buf.get(..end).unwrap_or_default();
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|b| *b == b' ');
    let (Some(b"GET"), Some(target), Some(b"HTTP/1.0" | b"HTTP/1.1"), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Asked::NotFound;
    };
    match target.split(|b| *b == b'?').next() {
        Some(b"/metrics") => Asked::Metrics,
        _ => Asked::NotFound,
    }
}

/// Where the headers end: the index of the empty line's last byte plus one (`\r\n\r\n` or,
/// leniently, `\n\n`), or None.
fn header_end(buf: &[u8]) -> Option<usize> {
    let mut prev_newline = false;
    for (i, b) in buf.iter().enumerate() {
        match b {
            b'\n' if prev_newline => return Some(i + 1),
            b'\n' => prev_newline = true,
            b'\r' => {}
            _ => prev_newline = false,
        }
    }
    None
}

/// A whole HTTP/1.1 response that closes the connection: `status` such as `404 Not Found`.
pub fn response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut head = String::with_capacity(128);
    let _ = write!(
        head,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out
}

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The counters of one program.
struct ProgramCounters {
    name: String,
    /// `replace` reloads: done, rolled back.
    reloads: [u64; 2],
    /// Seconds the last `replace` reload that was done took.
    reload_seconds: Option<f64>,
    /// Scheduled runs skipped because the previous run was still going.
    runs_skipped: u64,
    /// Reloads its `watch` made.
    watch_reloads: u64,
    /// By instance index.
    instances: Vec<InstanceCounters>,
}

#[derive(Clone, Copy, Default)]
struct InstanceCounters {
    restarts: u64,
    /// Exits: success (status 0), failure (another status), signal.
    exits: [u64; 3],
}

/// What the published events counted, since ginit started.
#[derive(Default)]
pub struct Counters {
    by_name: HashMap<String, usize>,
    programs: Vec<ProgramCounters>,
    /// Instance entries in `programs`, at most [`MAX_SERIES`].
    series: usize,
    /// Config reloads: applied, rejected.
    config_reloads: [u64; 2],
}

impl Counters {
    /// Counts one published event (most count nothing).
    pub fn count(&mut self, event: &Event) {
        let index = event.instance;
        match &event.what {
            What::RestartScheduled { .. } => {
                if let Some(i) = self.instance(&event.program, index) {
                    i.restarts += 1;
                }
            }
            What::Exited { status, signal, .. } => {
                let outcome = match (signal, status) {
                    (Some(_), _) => 2,
                    (None, 0) => 0,
                    _ => 1,
                };
                if let Some(i) = self.instance(&event.program, index)
                    && let Some(n) = i.exits.get_mut(outcome)
                {
                    *n += 1;
                }
            }
            What::ReloadDone { took } => {
                if let Some(p) = self.program_mut(&event.program) {
                    p.reloads[0] += 1;
                    p.reload_seconds = Some(*took);
                }
            }
            What::ReloadRolledBack { .. } => {
                if let Some(p) = self.program_mut(&event.program) {
                    p.reloads[1] += 1;
                }
            }
            What::RunSkipped { .. } => {
                if let Some(p) = self.program_mut(&event.program) {
                    p.runs_skipped += 1;
                }
            }
            What::FilesChanged { .. } => {
                if let Some(p) = self.program_mut(&event.program) {
                    p.watch_reloads += 1;
                }
            }
            What::ConfigReloaded { .. } => self.config_reloads[0] += 1,
            What::ConfigRejected { .. } => self.config_reloads[1] += 1,
            _ => {}
        }
    }

    fn program_mut(&mut self, name: &str) -> Option<&mut ProgramCounters> {
        let at = self.program(name)?;
        self.programs.get_mut(at)
    }

    /// The position of `name`'s counters, made on first use.
    fn program(&mut self, name: &str) -> Option<usize> {
        if let Some(&at) = self.by_name.get(name) {
            return Some(at);
        }
        if name.is_empty() || self.programs.len() >= MAX_SERIES {
            return None;
        }
        self.by_name.insert(name.to_string(), self.programs.len());
        self.programs.push(ProgramCounters {
            name: name.to_string(),
            reloads: [0; 2],
            reload_seconds: None,
            runs_skipped: 0,
            watch_reloads: 0,
            instances: Vec::new(),
        });
        Some(self.programs.len() - 1)
    }

    /// The counters of instance `index` of `name`, made on first use (within [`MAX_SERIES`]).
    fn instance(&mut self, name: &str, index: Option<u32>) -> Option<&mut InstanceCounters> {
        let index = index? as usize;
        let at = self.program(name)?;
        let p = self.programs.get_mut(at)?;
        let grow = (index + 1).saturating_sub(p.instances.len());
        if self.series + grow > MAX_SERIES {
            return None;
        }
        if grow > 0 {
            p.instances.resize(index + 1, InstanceCounters::default());
            self.series += grow;
        }
        p.instances.get_mut(index)
    }

    /// The exposition: every metric with its help and type, gauges from `rows` (where each
    /// instance stands now) and `usage` (the CPU seconds and resident bytes of each row's
    /// process tree, read at this scrape; None: no process), counters from the events and
    /// `dropped` (lines of program output dropped, by program). `now_unix`: the wall clock.
    pub fn render(
        &mut self,
        rows: &[InstanceStatus],
        usage: &[Option<(f64, u64)>],
        dropped: &[(String, u64)],
        now_unix: f64,
    ) -> String {
        // Every instance that exists has its counter series, at 0 before its first event.
        for r in rows {
            self.instance(&r.program, Some(r.instance));
        }
        let mut out = String::with_capacity(1024 + rows.len() * 1024);
        for (k, family) in FAMILIES.split('\n').enumerate() {
            let mut words = family.splitn(3, ' ');
            let (name, kind, help) = (
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
            );
            let _ = write!(
                out,
                "# HELP ginit_{name} {help}\n# TYPE ginit_{name} {kind}\n"
            );
            if k < FROM_ROWS {
                for (n, r) in rows.iter().enumerate() {
                    // During a `replace` two rows share an index: the first (the serving
                    // one) is shown, as a series appears once per scrape.
                    let earlier = rows.get(..n).unwrap_or_default().iter().rev();
                    let mut same = earlier.take_while(|o| o.program == r.program);
                    if same.any(|o| o.instance == r.instance) {
                        continue;
                    }
                    let used = usage.get(n).copied().flatten();
                    let value = match k {
                        0 => Some(flag(r.pid.is_some())),
                        1 => Some(flag(r.ready)),
                        2 => r.last_exit.map(f64::from),
                        3 => r.uptime_secs.map(|up| now_unix - up),
                        4 => used.map(|u| u.1 as f64),
                        _ => used.map(|u| u.0),
                    };
                    if let Some(v) = value {
                        sample(&mut out, name, &r.program, Some(r.instance), None, v);
                    }
                }
                continue;
            }
            if k == CONFIG_RELOADS {
                for (result, n) in ["success", "failure"].iter().zip(self.config_reloads) {
                    let _ = writeln!(out, "ginit_{name}{{result=\"{result}\"}} {n}");
                }
                continue;
            }
            for p in &self.programs {
                let program = p.name.as_str();
                match k {
                    // Per instance: restarts, exits by outcome.
                    6 | 7 => {
                        for (i, c) in p.instances.iter().enumerate() {
                            let i = Some(i as u32);
                            if k == 6 {
                                sample(&mut out, name, program, i, None, c.restarts as f64);
                                continue;
                            }
                            for (o, n) in ["success", "failure", "signal"].iter().zip(c.exits) {
                                let extra = Some(("outcome", *o));
                                sample(&mut out, name, program, i, extra, n as f64);
                            }
                        }
                    }
                    8 => {
                        for (r, n) in ["done", "rolled_back"].iter().zip(p.reloads) {
                            let extra = Some(("result", *r));
                            sample(&mut out, name, program, None, extra, n as f64);
                        }
                    }
                    9 => {
                        if let Some(v) = p.reload_seconds {
                            sample(&mut out, name, program, None, None, v);
                        }
                    }
                    11 => {
                        let n = dropped.iter().find(|d| d.0 == program).map_or(0, |d| d.1);
                        sample(&mut out, name, program, None, None, n as f64);
                    }
                    12 => sample(&mut out, name, program, None, None, p.runs_skipped as f64),
                    _ => sample(&mut out, name, program, None, None, p.watch_reloads as f64),
                }
            }
        }
        out
    }
}

/// Every metric, one line each: its name after `ginit_`, its type and its help, in the order
/// rendered. The first [`FROM_ROWS`] come from where each instance stands now, the rest from
/// counters. One text, not a table of strings: each string pointer in a table costs a
/// relocation in the binary.
const FAMILIES: &str = "\
program_up gauge 1 if the instance has a live process, else 0.\n\
program_ready gauge 1 if the instance is ready (its readiness check passed), else 0.\n\
program_last_exit_status gauge Exit status of the instance's last process (128+N if killed by signal N).\n\
program_start_time_seconds gauge Start time of the instance's current process, in seconds since the epoch.\n\
program_resident_memory_bytes gauge Resident memory of the instance's process tree, in bytes.\n\
program_cpu_seconds_total counter CPU time (user and system) of the instance's process tree, in seconds.\n\
program_restarts_total counter Restarts of the instance after it exited (or a check or limit asked for one).\n\
program_exits_total counter Exits of the instance's process, by outcome: success (status 0), failure, signal.\n\
reloads_total counter Replace reloads of the program, by result: done or rolled_back.\n\
reload_duration_seconds gauge How long the program's last replace reload that was done took, in seconds.\n\
config_reloads_total counter Config reloads, by result: success (applied) or failure (rejected).\n\
log_lines_dropped_total counter Lines of program output dropped because ginit's stdout or stderr was not read.\n\
program_runs_skipped_total counter Runs of a scheduled program not started because its previous run was still going.\n\
program_watch_reloads_total counter Reloads of the program because files under its watch paths changed.";
const FROM_ROWS: usize = 6;
const CONFIG_RELOADS: usize = 10;

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// One line: `ginit_NAME{program="..",instance="..",KEY="VALUE"} VALUE`.
fn sample(
    out: &mut String,
    name: &str,
    program: &str,
    instance: Option<u32>,
    extra: Option<(&str, &str)>,
    value: f64,
) {
    let _ = write!(out, "ginit_{name}{{program=\"");
    escape(out, program);
    out.push('"');
    if let Some(i) = instance {
        let _ = write!(out, ",instance=\"{i}\"");
    }
    if let Some((key, v)) = extra {
        let _ = write!(out, ",{key}=\"");
        escape(out, v);
        out.push('"');
    }
    let _ = writeln!(out, "}} {value}");
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_once_the_headers_end() {
        let get = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        for n in 0..get.len() {
            assert_eq!(parse_request(&get[..n]), Asked::Incomplete, "{n}");
        }
        assert_eq!(parse_request(get), Asked::Metrics);
        let cases: [(&[u8], Asked); 12] = [
            (b"GET /metrics HTTP/1.0\n\n", Asked::Metrics),
            (b"GET /metrics?name[]=x HTTP/1.1\r\n\r\n", Asked::Metrics),
            (
                b"GET /metrics HTTP/1.1\r\n\r\ntrailing bytes",
                Asked::Metrics,
            ),
            (b"GET / HTTP/1.1\r\n\r\n", Asked::NotFound),
            (b"GET /metricsx HTTP/1.1\r\n\r\n", Asked::NotFound),
            (b"POST /metrics HTTP/1.1\r\n\r\n", Asked::NotFound),
            (b"get /metrics HTTP/1.1\r\n\r\n", Asked::NotFound),
            (b"GET /metrics HTTP/2.0\r\n\r\n", Asked::NotFound),
            (b"GET /metrics\r\n\r\n", Asked::NotFound),
            (b"GET  /metrics HTTP/1.1\r\n\r\n", Asked::NotFound),
            (b"\r\n\r\n", Asked::NotFound),
            (b"GET /metrics HTTP/1.1 x\r\n\r\n", Asked::NotFound),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_request(text),
                want,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn responses_say_their_length_and_close() {
        let r = response("404 Not Found", "text/plain", b"not found\n");
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\
             Connection: close\r\n\r\nnot found\n"
        );
    }

    fn row(program: &str, instance: u32, pid: Option<i32>) -> InstanceStatus {
        InstanceStatus {
            program: program.into(),
            instance,
            pid,
            state: "running".into(),
            ready: pid.is_some(),
            uptime_secs: pid.map(|_| 10.5),
            restarts: 0,
            cpu_percent: None,
            rss_bytes: None,
            last_exit: None,
            ..InstanceStatus::default()
        }
    }

    fn event(program: &str, instance: Option<u32>, what: What) -> Event {
        Event {
            program: program.into(),
            instance,
            what,
        }
    }

    fn exited(status: i32, signal: Option<&str>) -> What {
        What::Exited {
            pid: 9,
            status,
            signal: signal.map(String::from),
            ran: 1.0,
        }
    }

    /// The lines of `text` that start with `prefix`.
    fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn the_exposition_has_every_metric_with_help_type_and_values() {
        let mut c = Counters::default();
        let restart = What::RestartScheduled {
            delay: 0.1,
            restarts: 1,
        };
        for what in [exited(1, None), restart.clone(), exited(0, None)] {
            c.count(&event("web", Some(1), what));
        }
        c.count(&event("web", Some(1), exited(137, Some("SIGKILL"))));
        c.count(&event("web", Some(1), restart));
        c.count(&event("web", None, What::ReloadDone { took: 2.25 }));
        let why = "not ready".to_string();
        c.count(&event("web", None, What::ReloadRolledBack { why }));
        let summary = String::new();
        c.count(&event("", None, What::ConfigReloaded { summary }));
        let errors = String::new();
        c.count(&event("", None, What::ConfigRejected { errors }));
        c.count(&event(
            "",
            None,
            What::ConfigRejected { errors: "x".into() },
        ));
        let path = "/app/server".to_string();
        c.count(&event("web", None, What::FilesChanged { path }));
        for _ in 0..2 {
            let due = String::new();
            c.count(&event("web", None, What::RunSkipped { due }));
        }
        let mut up = row("web", 0, Some(40));
        up.last_exit = Some(3);
        let rows = [up, row("web", 1, None), row("q\"\\\n", 0, Some(41))];
        let usage = [Some((1.5, 4096)), None, Some((0.0, 0))];
        let dropped = [("web".to_string(), 7)];
        let text = c.render(&rows, &usage, &dropped, 1000.0);
        for (name, kind) in [
            ("program_up", "gauge"),
            ("program_ready", "gauge"),
            ("program_last_exit_status", "gauge"),
            ("program_start_time_seconds", "gauge"),
            ("program_resident_memory_bytes", "gauge"),
            ("program_cpu_seconds_total", "counter"),
            ("program_restarts_total", "counter"),
            ("program_exits_total", "counter"),
            ("reloads_total", "counter"),
            ("reload_duration_seconds", "gauge"),
            ("config_reloads_total", "counter"),
            ("log_lines_dropped_total", "counter"),
            ("program_runs_skipped_total", "counter"),
            ("program_watch_reloads_total", "counter"),
        ] {
            assert_eq!(
                lines(&text, &format!("# HELP ginit_{name} ")).len(),
                1,
                "{name}"
            );
            let ty = format!("# TYPE ginit_{name} {kind}");
            assert_eq!(lines(&text, &ty), [ty.as_str()]);
        }
        assert_eq!(
            lines(&text, "ginit_program_runs_skipped_total{program=\"web\""),
            ["ginit_program_runs_skipped_total{program=\"web\"} 2"]
        );
        assert_eq!(
            lines(&text, "ginit_program_watch_reloads_total{program=\"web\""),
            ["ginit_program_watch_reloads_total{program=\"web\"} 1"]
        );
        assert_eq!(
            lines(&text, "ginit_program_up{"),
            [
                "ginit_program_up{program=\"web\",instance=\"0\"} 1",
                "ginit_program_up{program=\"web\",instance=\"1\"} 0",
                "ginit_program_up{program=\"q\\\"\\\\\\n\",instance=\"0\"} 1",
            ]
        );
        assert_eq!(
            lines(&text, "ginit_program_last_exit_status{"),
            ["ginit_program_last_exit_status{program=\"web\",instance=\"0\"} 3"]
        );
        assert_eq!(
            lines(&text, "ginit_program_start_time_seconds{")[0],
            "ginit_program_start_time_seconds{program=\"web\",instance=\"0\"} 989.5"
        );
        assert_eq!(
            lines(&text, "ginit_program_resident_memory_bytes{")[0],
            "ginit_program_resident_memory_bytes{program=\"web\",instance=\"0\"} 4096"
        );
        assert_eq!(
            lines(&text, "ginit_program_cpu_seconds_total{")[0],
            "ginit_program_cpu_seconds_total{program=\"web\",instance=\"0\"} 1.5"
        );
        // Counters exist at 0 for every instance, and count what happened to each.
        assert_eq!(
            lines(&text, "ginit_program_restarts_total{"),
            [
                "ginit_program_restarts_total{program=\"web\",instance=\"0\"} 0",
                "ginit_program_restarts_total{program=\"web\",instance=\"1\"} 2",
                "ginit_program_restarts_total{program=\"q\\\"\\\\\\n\",instance=\"0\"} 0",
            ]
        );
        let exits = lines(
            &text,
            "ginit_program_exits_total{program=\"web\",instance=\"1\"",
        );
        assert_eq!(
            exits,
            [
                "ginit_program_exits_total{program=\"web\",instance=\"1\",outcome=\"success\"} 1",
                "ginit_program_exits_total{program=\"web\",instance=\"1\",outcome=\"failure\"} 1",
                "ginit_program_exits_total{program=\"web\",instance=\"1\",outcome=\"signal\"} 1",
            ]
        );
        assert_eq!(
            lines(&text, "ginit_reloads_total{program=\"web\""),
            [
                "ginit_reloads_total{program=\"web\",result=\"done\"} 1",
                "ginit_reloads_total{program=\"web\",result=\"rolled_back\"} 1",
            ]
        );
        assert_eq!(
            lines(&text, "ginit_reload_duration_seconds{"),
            ["ginit_reload_duration_seconds{program=\"web\"} 2.25"]
        );
        assert_eq!(
            lines(&text, "ginit_config_reloads_total{"),
            [
                "ginit_config_reloads_total{result=\"success\"} 1",
                "ginit_config_reloads_total{result=\"failure\"} 2",
            ]
        );
        assert_eq!(
            lines(&text, "ginit_log_lines_dropped_total{"),
            [
                "ginit_log_lines_dropped_total{program=\"web\"} 7",
                "ginit_log_lines_dropped_total{program=\"q\\\"\\\\\\n\"} 0",
            ]
        );
    }

    #[test]
    fn counters_survive_the_instance_going_and_a_replace_shows_each_series_once() {
        let mut c = Counters::default();
        let restart = What::RestartScheduled {
            delay: 0.1,
            restarts: 1,
        };
        c.count(&event("old", Some(0), restart));
        // `old` was removed by a config reload: no rows, its counter stays.
        let rows = [row("web", 0, Some(1)), row("web", 0, Some(2))];
        let text = c.render(&rows, &[None, None], &[], 0.0);
        assert_eq!(
            lines(&text, "ginit_program_restarts_total{"),
            [
                "ginit_program_restarts_total{program=\"old\",instance=\"0\"} 1",
                "ginit_program_restarts_total{program=\"web\",instance=\"0\"} 0",
            ]
        );
        assert_eq!(lines(&text, "ginit_program_up{").len(), 1);
    }

    #[test]
    fn the_counter_table_is_bounded() {
        let mut c = Counters::default();
        let restart = What::RestartScheduled {
            delay: 0.1,
            restarts: 1,
        };
        c.count(&event("big", Some(MAX_SERIES as u32 - 1), restart.clone()));
        assert_eq!(c.series, MAX_SERIES);
        c.count(&event("more", Some(0), restart.clone()));
        c.count(&event("big", Some(MAX_SERIES as u32), restart));
        assert_eq!(c.series, MAX_SERIES);
        assert!(c.programs.iter().all(|p| p.instances.len() <= MAX_SERIES));
    }
}
