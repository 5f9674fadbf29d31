//! `ginit status|start|stop|restart|reload|signal|ready|reload-config|shutdown`: one request
//! over the control socket, one response, printed for people (or as JSON with
//! `status --json`). `ginit events` and `ginit logs`: the answer, then the lines ginit sends,
//! copied to stdout until ginit ends the stream or the user interrupts.
//!
//! `status --watch` repeats the status request until interrupted.
//!
//! Exit status: 0 done (for `ready`: ready; for the streams also Ctrl-C or a closed stdout),
//! 1 refused or failed (not ready), 3 cannot connect to ginit.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::{InstanceStatus, Request, Response, Status};
use crate::config::units::format_duration;
use crate::os::signals::SignalSource;
use crate::os::sys;

pub const EXIT_FAILED: i32 = 1;
pub const EXIT_NO_CONNECTION: i32 = 3;

/// Sends `request` to the ginit serving `socket`, prints the answer, returns the exit status.
pub fn run(socket: &Path, request: &Request, json: bool) -> i32 {
    if let Request::Events { .. } | Request::Logs { .. } = request {
        return stream(socket, request);
    }
    let response = match exchange(socket, request) {
        Ok(r) => r,
        Err((code, e)) => {
            eprintln!("ginit: {e}");
            return code;
        }
    };
    if !response.ok {
        if let Request::Ready {} = request {
            println!("not ready");
        }
        eprintln!(
            "ginit: {}",
            response.error.as_deref().unwrap_or("request failed")
        );
        return EXIT_FAILED;
    }
    match (&response.status, json) {
        (Some(status), true) => {
            println!(
                "{}",
                serde_json::to_string_pretty(status).unwrap_or_default()
            );
        }
        (Some(status), false) => print!("{}", table(status)),
        (None, _) => {
            if let Some(m) = &response.message {
                println!("{m}");
            }
        }
    }
    0
}

/// `ginit status --watch EVERY`: the table, redrawn in place every `every` (as `watch(1)`
/// does; on a stdout that is not a terminal, one table after the other) until SIGINT, SIGTERM
/// or SIGHUP, or until stdout goes away: exit 0 then. Exit 3 when ginit cannot be reached
/// (it has gone: nothing more to watch).
pub fn watch(socket: &Path, every: Duration) -> i32 {
    // The signals that end the watch are read from a signalfd, so the wait between two
    // tables is one poll and an interrupt ends it cleanly, with no handler.
    let signals = match SignalSource::only(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ginit: cannot watch for Ctrl-C: {e}");
            return EXIT_FAILED;
        }
    };
    let tty = std::io::stdout().is_terminal();
    let header = format!("every {}: ginit status\n\n", format_duration(every));
    loop {
        let text = match exchange(socket, &Request::Status {}) {
            Ok(Response {
                status: Some(status),
                ..
            }) => table(&status),
            Ok(r) => format!("ginit: {}\n", r.error.as_deref().unwrap_or("no status")),
            Err((code, e)) => {
                eprintln!("ginit: {e}");
                return code;
            }
        };
        // Cursor home and clear: the table is redrawn in place.
        let clear = if tty { "\x1b[H\x1b[2J" } else { "" };
        let mut out = std::io::stdout().lock();
        if write!(out, "{clear}{header}{text}")
            .and_then(|()| if tty { Ok(()) } else { writeln!(out) })
            .and_then(|()| out.flush())
            .is_err()
        {
            return 0;
        }
        drop(out);
        if interrupted(&signals, every) {
            return 0;
        }
    }
}

/// Waits up to `wait` for one of the signals that end a watch (the only ones `signals`
/// blocks); true if one came.
fn interrupted(signals: &SignalSource, wait: Duration) -> bool {
    let mut fds = [libc::pollfd {
        fd: signals.raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
    if !sys::poll(&mut fds, ms).is_ok_and(|n| n > 0) {
        return false;
    }
    let mut got = Vec::new();
    signals.drain(&mut got);
    !got.is_empty()
}

/// `ginit events` and `ginit logs`: the answer line (its error, or its notes, on stderr), then
/// every line ginit sends, to stdout. SIGINT, SIGTERM, SIGHUP and SIGPIPE are read from a
/// signalfd rather than left to kill the client, so Ctrl-C and `| head` end it with status 0.
fn stream(socket: &Path, request: &Request) -> i32 {
    let quit = SignalSource::only(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE]);
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ginit: {}", no_connection(socket, e));
            return EXIT_NO_CONNECTION;
        }
    };
    let sent = stream.write_all(request.to_line().as_bytes());
    let mut head: Option<Vec<u8>> = Some(Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = std::io::stdout().lock();
    loop {
        let mut fds = [
            libc::pollfd {
                fd: stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: quit.as_ref().map_or(-1, SignalSource::raw_fd),
                events: libc::POLLIN,
                revents: 0,
            },
            // Nothing asked: a pipe whose reader is gone (`| head`) reports POLLERR, so the
            // client ends then, not at the next line it could not write.
            libc::pollfd {
                fd: 1,
                events: 0,
                revents: 0,
            },
        ];
        let _ = sys::poll(&mut fds, -1);
        if fds[1].revents != 0 || fds[2].revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            return 0;
        }
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("ginit: talking to ginit: {e}");
                return EXIT_FAILED;
            }
        };
        let bytes = &buf[..n];
        if let Some(h) = &mut head {
            if n == 0 {
                let e = sent
                    .err()
                    .map_or("closed the connection".into(), |e| e.to_string());
                eprintln!("ginit: {e}");
                return EXIT_FAILED;
            }
            h.extend_from_slice(bytes);
            let Some(end) = h.iter().position(|&b| b == b'\n') else {
                continue;
            };
            let answer = match Response::parse(&h[..end]) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("ginit: {e}");
                    return EXIT_FAILED;
                }
            };
            if let Some(note) = answer.message.as_deref().or(answer.error.as_deref()) {
                eprintln!("ginit: {note}");
            }
            if !answer.ok {
                return EXIT_FAILED;
            }
            let rest = h.split_off(end + 1);
            head = None;
            if out.write_all(&rest).and_then(|()| out.flush()).is_err() {
                return 0;
            }
            continue;
        }
        if n == 0 {
            return 0; // ginit ended the stream (`logs` without -f, or it shut down)
        }
        if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
            return 0; // stdout closed (`| head`): done
        }
    }
}

fn no_connection(socket: &Path, e: std::io::Error) -> String {
    format!(
        "cannot connect to ginit at {}: {e} (is ginit running? --socket or GINIT_SOCKET \
         name another socket)",
        socket.display()
    )
}

fn exchange(socket: &Path, request: &Request) -> Result<Response, (i32, String)> {
    let no_conn = |e| (EXIT_NO_CONNECTION, no_connection(socket, e));
    let mut stream = UnixStream::connect(socket).map_err(no_conn)?;
    // Quick commands answer at once; stop/restart/reload answer when done, which the
    // programs' stop timeouts bound.
    let wait = match request {
        Request::Start { .. }
        | Request::Stop { .. }
        | Request::Restart { .. }
        | Request::Reload { .. } => None,
        _ => Some(Duration::from_secs(30)),
    };
    let _ = stream.set_read_timeout(wait);
    let failed = |e: std::io::Error| (EXIT_FAILED, format!("talking to ginit: {e}"));
    // A refused peer is told why and closed before it is heard: a failed write is not the
    // end, the answer may be waiting.
    let sent = stream.write_all(request.to_line().as_bytes());
    let mut line = Vec::new();
    let read = BufReader::new(&stream).read_until(b'\n', &mut line);
    if line.is_empty() {
        sent.map_err(failed)?;
        read.map_err(failed)?;
    }
    if line.is_empty() {
        return Err((EXIT_FAILED, "ginit closed the connection".into()));
    }
    Response::parse(&line).map_err(|e| (EXIT_FAILED, e))
}

/// The `ginit status` table.
pub fn table(status: &Status) -> String {
    let header = [
        "NAME",
        "INSTANCE",
        "PID",
        "STATE",
        "READY",
        "UPTIME",
        "RESTARTS",
        "CPU%",
        "RSS",
        "LAST-EXIT",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for i in &status.instances {
        rows.push(row(i));
    }
    let mut widths = vec![0; header.len()];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (k, (cell, w)) in r.iter().zip(&widths).enumerate() {
            if k + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for i in &status.instances {
        let Some(schedule) = &i.schedule else {
            continue;
        };
        let next = i
            .next_run
            .as_deref()
            .unwrap_or("none (stopped: `ginit start` resumes)");
        out.push_str(&format!("{}: {schedule}, next run {next}", i.program));
        if let Some(n) = i.skipped_runs.filter(|&n| n > 0) {
            out.push_str(&format!(", {n} skipped"));
        }
        out.push('\n');
    }
    if status.shutting_down {
        out.push_str("ginit is shutting down\n");
    }
    if let Some(e) = &status.config_error {
        out.push_str(&format!("last config reload failed:\n{e}\n"));
    }
    out
}

fn row(i: &InstanceStatus) -> Vec<String> {
    let dash = || "-".to_string();
    vec![
        i.program.clone(),
        i.instance.to_string(),
        i.pid.map_or_else(dash, |p| p.to_string()),
        i.state.clone(),
        if i.ready { "yes" } else { "no" }.to_string(),
        i.uptime_secs.map_or_else(dash, uptime),
        i.restarts.to_string(),
        i.cpu_percent.map_or_else(dash, |c| format!("{c:.1}")),
        i.rss_bytes.map_or_else(dash, size),
        i.last_exit.map_or_else(dash, |c| c.to_string()),
    ]
}

fn uptime(secs: f64) -> String {
    let s = secs as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

fn size(bytes: u64) -> String {
    const K: u64 = 1024;
    match bytes {
        0..K => format!("{bytes}B"),
        K..0x10_0000 => format!("{:.1}KiB", bytes as f64 / K as f64),
        0x10_0000..0x4000_0000 => format!("{:.1}MiB", bytes as f64 / (K * K) as f64),
        _ => format!("{:.1}GiB", bytes as f64 / (K * K * K) as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lines_up() {
        let status = Status {
            ready: false,
            shutting_down: false,
            config_error: Some("ginit.yaml:3:5: bad".into()),
            instances: vec![
                InstanceStatus {
                    program: "web".into(),
                    instance: 0,
                    pid: Some(42),
                    state: "running".into(),
                    ready: true,
                    uptime_secs: Some(3725.0),
                    restarts: 1,
                    cpu_percent: Some(2.25),
                    rss_bytes: Some(15 << 20),
                    last_exit: Some(1),
                    ..InstanceStatus::default()
                },
                InstanceStatus {
                    program: "migrate".into(),
                    state: "done".into(),
                    last_exit: Some(0),
                    ..InstanceStatus::default()
                },
                InstanceStatus {
                    program: "backup".into(),
                    state: "done".into(),
                    schedule: Some("0 3 * * * (UTC)".into()),
                    next_run: Some("2026-12-02T03:00:00Z".into()),
                    skipped_runs: Some(2),
                    ..InstanceStatus::default()
                },
                InstanceStatus {
                    program: "sweep".into(),
                    state: "stopped".into(),
                    schedule: Some("every 10m".into()),
                    skipped_runs: Some(0),
                    ..InstanceStatus::default()
                },
            ],
        };
        let t = table(&status);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "NAME     INSTANCE  PID  STATE    READY  UPTIME  RESTARTS  CPU%  RSS      LAST-EXIT"
        );
        assert_eq!(
            lines[1],
            "web      0         42   running  yes    1h2m    1         2.2   15.0MiB  1"
        );
        assert_eq!(
            lines[2],
            "migrate  0         -    done     no     -       0         -     -        0"
        );
        assert_eq!(
            lines[5],
            "backup: 0 3 * * * (UTC), next run 2026-12-02T03:00:00Z, 2 skipped"
        );
        assert_eq!(
            lines[6],
            "sweep: every 10m, next run none (stopped: `ginit start` resumes)"
        );
        assert_eq!(lines[7], "last config reload failed:");
    }
}
