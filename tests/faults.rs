//! The fault matrix: ginit as a hostile or unlucky user meets it, driven through the real
//! binary as PID 1 of a fresh namespace. Each case is one that once broke PID 1 or degraded
//! it (issue 10): a config that overflowed the stack or memory, numbers without bounds,
//! readiness checks answered by ginit's own sockets, leaked pipes and process groups,
//! uncounted reloads, log spam, a locked-out control socket, a forced shutdown reported as
//! clean. The cheap cases run here; the long ones (10,000 restarts, 1 GiB of output) are in
//! `tests/bench/soak.py`.
//!
//! One file per area, so each reads on its own: `faults/config.rs` (bounded input and
//! meaningful readiness), `faults/runtime.rs` (process groups, restarts, shutdown),
//! `faults/io.rs` (output pipes, log files, the control socket).

mod common;

#[path = "faults/config.rs"]
mod config;
#[path = "faults/io.rs"]
mod io;
#[path = "faults/runtime.rs"]
mod runtime;
