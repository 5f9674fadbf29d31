//! Talking to a running ginit: the protocol (a leaf), the non-blocking server inside the
//! poll loop, and the client behind `ginit status` and friends; the events both sides speak,
//! and the metrics endpoint's pure side (request, counters, exposition).

pub mod client;
pub mod events;
pub mod json;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod streams;

use std::path::PathBuf;

/// The socket: `--socket`, else `$GINIT_SOCKET`, else `fallback` (the config's
/// `control.socket`, or the default for a client).
pub fn socket_path(flag: Option<PathBuf>, fallback: &str) -> PathBuf {
    flag.or_else(|| std::env::var_os("GINIT_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(fallback))
}
