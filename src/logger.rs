//! ginit's own log lines, on stderr: `ginit: warning: message`, or one JSON object per line
//! with `log: {format: json}`.
//!
//! The level comes from `-v`/`-q` (which win), then `GINIT_LOG`, then the config's
//! `log.level` (env_logger syntax: `debug`, `ginit=trace`); the default is `info`. Logging
//! never fails a run: a write error on stderr is ignored.

use std::io::Write;

use log::LevelFilter;

use crate::config::{LogFormat, LogSpec};

fn level_word(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
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
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Installs the logger. `verbosity` is the -v count minus the -q count; `spec` the config's
/// `log` section, if any.
pub fn init(verbosity: i32, spec: Option<&LogSpec>) {
    let mut builder = env_logger::Builder::new();
    if spec.is_some_and(|s| s.format == LogFormat::Json) {
        builder.format(|out, record| {
            writeln!(
                out,
                "{{\"time\":\"{}\",\"level\":\"{}\",\"message\":{}}}",
                rfc3339(std::time::SystemTime::now()),
                level_word(record.level()),
                json_string(&record.args().to_string())
            )
        });
    } else {
        builder.format(|out, record| {
            writeln!(
                out,
                "ginit: {}: {}",
                level_word(record.level()),
                record.args()
            )
        });
    }
    let from_flags = match verbosity {
        i32::MIN..=-1 => Some(LevelFilter::Error),
        0 => None,
        1 => Some(LevelFilter::Debug),
        _ => Some(LevelFilter::Trace),
    };
    let from_config = spec.and_then(|s| s.level.clone());
    match (from_flags, std::env::var("GINIT_LOG")) {
        (Some(level), _) => {
            builder.filter_level(level);
        }
        (None, Ok(filters)) if !filters.trim().is_empty() => {
            builder.parse_filters(&filters);
        }
        (None, _) if from_config.is_some() => {
            builder.parse_filters(from_config.as_deref().unwrap_or("info"));
        }
        _ => {
            builder.filter_level(LevelFilter::Info);
        }
    }
    builder.target(env_logger::Target::Pipe(Box::new(Stderr::default())));
    // A second init (only possible in tests) keeps the first logger.
    let _ = builder.try_init();
}

/// ginit's stderr for its own log lines, never blocking: when stderr cannot take a line (a
/// pipe nobody reads), the line is dropped and counted, and the next line that gets through
/// is preceded by how many were lost. PID 1 must not stall on a log line.
#[derive(Default)]
struct Stderr {
    writer: Option<crate::output::Writer>,
    dropped: u64,
}

impl Stderr {
    /// Writes all of `bytes` or nothing more once the stream would block; true if all went.
    fn put(&mut self, bytes: &[u8]) -> bool {
        let writer = self
            .writer
            .get_or_insert_with(|| crate::output::Writer::for_fd(2));
        let mut done = 0;
        while done < bytes.len() {
            match writer.write(&bytes[done..]) {
                Ok(0) => return false,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.dropped > 0 {
            let note = format!(
                "ginit: warning: {} log lines were dropped: stderr was not being read\n",
                self.dropped
            );
            if !self.put(note.as_bytes()) {
                self.dropped += 1;
                return Ok(buf.len());
            }
            self.dropped = 0;
        }
        if !self.put(buf) {
            self.dropped += 1;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
}
