//! ginit's own log lines, on stderr: `ginit: warning: message` (after the time with
//! `log.timestamps`), or one JSON object per line (`time`, `level`, `message`) with
//! `log: {format: json}`.
//!
//! The level comes from `-v`/`-q` (which win), then `GINIT_LOG`, then the config's
//! `log.level`; the default is `info`. `GINIT_LOG` and `log.level` take env_logger's directive
//! syntax, which README documents and users already write: `debug`, `ginit=trace`,
//! comma-separated `target=level` directives (the longest matching target wins), `off`, and
//! an optional `/text` that keeps only messages containing `text`.
//!
//! Our own logger rather than env_logger: these few rules are all ginit used of it, and it
//! cost ~26 KB of a binary with a size budget. The rules follow env_logger 0.11 (env_filter)
//! exactly, quirks included, so no setting changes meaning: a bare word that is not a level
//! names a target (so `warning`, which is not one of log's level names, silences everything
//! but a target called `warning`), a spec without any valid directive means `error`, and a
//! later directive for the same target replaces an earlier one.
//!
//! Logging never fails or stalls a run: lines go through [`LogStream`], which drops (and
//! later counts) what a stderr nobody reads cannot take. This module decides only which lines
//! are written and how they look. It sits beside `main.rs` rather than in `os/` (DESIGN.md
//! does not place it): it makes no system call of its own, `os::stdio` does the writing, and
//! the directive rules are pure and tested here.

use std::fmt::Write as _;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::config::{LogFormat, LogSpec};
use crate::os::stdio::{LogStream, json_string, rfc3339, set_timestamps, timestamps};

/// One `target=level` directive; no target: every target.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Directive {
    target: Option<String>,
    level: LevelFilter,
}

/// Which records are written: the directives, shortest target first (so the last match is
/// the longest), and the text a message must contain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    directives: Vec<Directive>,
    contains: Option<String>,
}

impl Filter {
    /// Everything at `level` and more severe.
    pub fn level(level: LevelFilter) -> Filter {
        Filter {
            directives: vec![Directive {
                target: None,
                level,
            }],
            contains: None,
        }
    }

    /// Parses env_logger's syntax; the parts it refuses are returned as warnings (and
    /// ignored, as env_logger does).
    pub fn parse(spec: &str) -> (Filter, Vec<String>) {
        let mut directives: Vec<Directive> = Vec::new();
        let mut warnings = Vec::new();
        let mut parts = spec.split('/');
        let mods = parts.next().unwrap_or("");
        let contains = parts.next().map(str::to_string);
        if parts.next().is_some() {
            warnings.push(format!("invalid logging spec '{spec}' (too many '/'s)"));
            return (Filter::level(LevelFilter::Error), warnings);
        }
        // One addition to env_logger's syntax: `warning`, the word ginit's own lines show,
        // means `warn` (env_logger would take it for a target name and silence everything).
        let level_of = |word: &str| match word {
            "warning" | "WARNING" => Ok(LevelFilter::Warn),
            _ => word.parse::<LevelFilter>(),
        };
        for d in mods.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let mut words = d.split('=');
            let (target, level) = match (words.next(), words.next().map(str::trim), words.next()) {
                (Some(word), None, None) => match level_of(word) {
                    Ok(level) => (None, level),
                    Err(_) => (Some(word), LevelFilter::max()),
                },
                (Some(target), Some(""), None) => (Some(target), LevelFilter::max()),
                (Some(target), Some(level), None) => match level_of(level) {
                    Ok(level) => (Some(target), level),
                    Err(_) => {
                        warnings.push(format!("invalid logging spec '{level}'"));
                        continue;
                    }
                },
                _ => {
                    warnings.push(format!("invalid logging spec '{d}'"));
                    continue;
                }
            };
            let directive = Directive {
                target: target.map(str::to_string),
                level,
            };
            match directives.iter_mut().find(|x| x.target == directive.target) {
                Some(same) => *same = directive,
                None => directives.push(directive),
            }
        }
        if directives.is_empty() {
            directives.push(Directive {
                target: None,
                level: LevelFilter::Error,
            });
        }
        // Stable: of equal lengths, the order written is kept.
        directives.sort_by_key(|d| d.target.as_ref().map_or(0, String::len));
        (
            Filter {
                directives,
                contains,
            },
            warnings,
        )
    }

    /// Whether a record of `level` from `target` is written (before the message text test).
    pub fn enabled(&self, level: Level, target: &str) -> bool {
        for d in self.directives.iter().rev() {
            match &d.target {
                Some(t) if !target.starts_with(t.as_str()) => {}
                _ => return level <= d.level,
            }
        }
        false
    }

    /// The most verbose level any directive lets through (for `log::set_max_level`, so
    /// disabled records cost one comparison at the call site).
    pub fn max(&self) -> LevelFilter {
        self.directives
            .iter()
            .map(|d| d.level)
            .max()
            .unwrap_or(LevelFilter::Off)
    }
}

/// The filter ginit runs with: `verbosity` (the -v count minus the -q count) wins, then
/// `GINIT_LOG` when set and not blank, then the config's `log.level`, then `info`.
pub fn choose(
    verbosity: i32,
    ginit_log: Option<&str>,
    config: Option<&str>,
) -> (Filter, Vec<String>) {
    let from_flags = match verbosity {
        i32::MIN..=-1 => Some(LevelFilter::Error),
        0 => None,
        1 => Some(LevelFilter::Debug),
        _ => Some(LevelFilter::Trace),
    };
    match (
        from_flags,
        ginit_log.filter(|s| !s.trim().is_empty()),
        config,
    ) {
        (Some(level), _, _) => (Filter::level(level), Vec::new()),
        (None, Some(spec), _) | (None, None, Some(spec)) => Filter::parse(spec),
        (None, None, None) => (Filter::level(LevelFilter::Info), Vec::new()),
    }
}

struct Logger {
    filter: Filter,
    json: bool,
    /// Locked with `try_lock`: ginit has one thread, so a busy lock can only mean a log call
    /// from inside a log call, whose line is then dropped rather than deadlocking PID 1.
    out: Mutex<LogStream>,
}

fn level_word(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

impl Logger {
    /// The line for `message` at `level`, newline included.
    fn format(&self, level: Level, message: &std::fmt::Arguments) -> String {
        let mut line = String::new();
        if self.json {
            let text = message.to_string();
            let _ = writeln!(
                line,
                "{{\"time\":\"{}\",\"level\":\"{}\",\"message\":{}}}",
                rfc3339(std::time::SystemTime::now()),
                level_word(level),
                json_string(&text)
            );
        } else {
            if timestamps() {
                line.push_str(&rfc3339(std::time::SystemTime::now()));
                line.push(' ');
            }
            let _ = writeln!(line, "ginit: {}: {message}", level_word(level));
        }
        line
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.filter.enabled(metadata.level(), metadata.target())
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if let Some(text) = &self.filter.contains
            && !record.args().to_string().contains(text.as_str())
        {
            return;
        }
        let line = self.format(record.level(), record.args());
        if let Ok(mut out) = self.out.try_lock() {
            out.line(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger. `verbosity` is the -v count minus the -q count; `spec` the config's
/// `log` section, if any. A second call (only possible in tests) keeps the first logger.
pub fn init(verbosity: i32, spec: Option<&LogSpec>) {
    let ginit_log = std::env::var("GINIT_LOG").ok();
    let (filter, warnings) = choose(
        verbosity,
        ginit_log.as_deref(),
        spec.and_then(|s| s.level.as_deref()),
    );
    let mut out = LogStream::default();
    // As env_logger does: a refused directive is said once, whatever the level.
    for w in &warnings {
        out.line(format!("ginit: warning: {w}, ignoring it\n").as_bytes());
    }
    set_timestamps(spec.is_some_and(|s| s.timestamps));
    let max = filter.max();
    let logger = Logger {
        filter,
        json: spec.is_some_and(|s| s.format == LogFormat::Json),
        out: Mutex::new(out),
    };
    if log::set_logger(Box::leak(Box::new(logger))).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Filter {
        let (filter, warnings) = Filter::parse(spec);
        assert!(warnings.is_empty(), "{spec}: {warnings:?}");
        filter
    }

    fn on(f: &Filter, level: Level, target: &str) -> bool {
        f.enabled(level, target)
    }

    #[test]
    fn a_bare_level_applies_everywhere() {
        let f = parse("debug");
        assert!(on(&f, Level::Debug, "ginit::event_loop"));
        assert!(!on(&f, Level::Trace, "ginit::event_loop"));
        assert_eq!(f.max(), LevelFilter::Debug);
        assert_eq!(parse(" DEBUG "), f, "case and spaces do not matter");
        let off = parse("off");
        assert!(!on(&off, Level::Error, "ginit"));
        assert_eq!(off.max(), LevelFilter::Off);
    }

    #[test]
    fn targets_match_by_prefix_and_the_longest_wins() {
        let f = parse("ginit=trace");
        assert!(on(&f, Level::Trace, "ginit::os::output"));
        assert!(
            !on(&f, Level::Error, "other"),
            "no directive for it: nothing"
        );
        let f = parse("info,ginit::os=debug,ginit::os::output=warn");
        assert!(on(&f, Level::Debug, "ginit::os::reaper"));
        assert!(!on(&f, Level::Info, "ginit::os::output"));
        assert!(on(&f, Level::Warn, "ginit::os::output"));
        assert!(on(&f, Level::Info, "ginit::event_loop"));
        assert!(!on(&f, Level::Debug, "ginit::event_loop"));
        // A target alone, or with an empty level, means every level of it.
        assert!(on(&parse("ginit"), Level::Trace, "ginit::cli"));
        assert!(on(&parse("ginit="), Level::Trace, "ginit::cli"));
    }

    #[test]
    fn later_directives_replace_earlier_ones_for_the_same_target() {
        let f = parse("ginit=trace,ginit=error,info,warn");
        assert!(!on(&f, Level::Warn, "ginit"));
        assert!(!on(&f, Level::Info, "x"));
        assert!(on(&f, Level::Warn, "x"));
    }

    #[test]
    fn refused_parts_are_reported_and_ignored() {
        let (f, w) = Filter::parse("ginit=loud,debug");
        assert_eq!(w, ["invalid logging spec 'loud'"]);
        assert!(on(&f, Level::Debug, "ginit"));
        let (f, w) = Filter::parse("a=b=c");
        assert_eq!(w, ["invalid logging spec 'a=b=c'"]);
        assert_eq!(
            f,
            Filter::level(LevelFilter::Error),
            "nothing valid: errors only"
        );
        let (f, w) = Filter::parse("a/b/c");
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("too many '/'s"));
        assert_eq!(f, Filter::level(LevelFilter::Error));
        // `warning` (the word ginit's lines show) is `warn`; any other word that is not a
        // level is a target, as in env_logger.
        let f = parse("warning");
        assert!(on(&f, Level::Warn, "ginit") && !on(&f, Level::Info, "ginit"));
        let f = parse("loud");
        assert!(!on(&f, Level::Error, "ginit"));
        assert_eq!(parse(""), Filter::level(LevelFilter::Error));
    }

    #[test]
    fn a_text_after_a_slash_filters_messages() {
        let f = parse("debug/reload");
        assert_eq!(f.contains.as_deref(), Some("reload"));
        assert!(on(&f, Level::Debug, "ginit"));
        assert_eq!(
            parse("/x").directives,
            Filter::level(LevelFilter::Error).directives
        );
    }

    #[test]
    fn flags_win_then_ginit_log_then_the_config_then_info() {
        let level = |v, env, cfg| choose(v, env, cfg).0.max();
        assert_eq!(level(0, None, None), LevelFilter::Info);
        assert_eq!(level(1, Some("off"), Some("off")), LevelFilter::Debug);
        assert_eq!(level(2, None, None), LevelFilter::Trace);
        assert_eq!(level(-1, Some("trace"), None), LevelFilter::Error);
        assert_eq!(level(0, Some("trace"), Some("off")), LevelFilter::Trace);
        assert_eq!(level(0, Some("  "), Some("debug")), LevelFilter::Debug);
        assert_eq!(level(0, None, Some("warn")), LevelFilter::Warn);
        assert_eq!(level(0, None, Some("warning")), LevelFilter::Warn);
        assert_eq!(level(0, Some(""), None), LevelFilter::Info);
    }

    #[test]
    fn lines_in_text_and_json() {
        let logger = |json| Logger {
            filter: Filter::level(LevelFilter::Info),
            json,
            out: Mutex::new(LogStream::default()),
        };
        assert_eq!(
            logger(false).format(Level::Warn, &format_args!("disk {}% full", 90)),
            "ginit: warning: disk 90% full\n"
        );
        let line = logger(true).format(Level::Error, &format_args!("say \"no\""));
        assert!(line.starts_with("{\"time\":\""), "{line}");
        assert!(
            line.ends_with("Z\",\"level\":\"error\",\"message\":\"say \\\"no\\\"\"}\n"),
            "{line}"
        );
    }
}
