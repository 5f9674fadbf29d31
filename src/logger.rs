//! ginit's own log lines, on stderr: `ginit: warning: message`.
//!
//! The level comes from `-v`/`-q` (which win) or `GINIT_LOG` in env_logger syntax
//! (`debug`, `ginit=trace`); the default is `info`. Logging never fails a run: a write error
//! on stderr is ignored.

use std::io::Write;

use log::LevelFilter;

/// Installs the logger. `verbosity` is the -v count minus the -q count.
pub fn init(verbosity: i32) {
    let mut builder = env_logger::Builder::new();
    builder.format(|out, record| {
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        writeln!(out, "ginit: {level}: {}", record.args())
    });
    let from_flags = match verbosity {
        i32::MIN..=-1 => Some(LevelFilter::Error),
        0 => None,
        1 => Some(LevelFilter::Debug),
        _ => Some(LevelFilter::Trace),
    };
    match (from_flags, std::env::var("GINIT_LOG")) {
        (Some(level), _) => {
            builder.filter_level(level);
        }
        (None, Ok(spec)) if !spec.trim().is_empty() => {
            builder.parse_filters(&spec);
        }
        _ => {
            builder.filter_level(LevelFilter::Info);
        }
    }
    // A second init (only possible in tests) keeps the first logger.
    let _ = builder.try_init();
}
