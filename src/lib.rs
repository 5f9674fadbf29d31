//! ginit as a library: everything but the entry point. The binary (`src/main.rs`) is a thin
//! `main` over it; the fuzz targets (`fuzz/`) and the regression tests call the same parsers
//! through [`fuzzing`].
//!
//! `unsafe` is denied at the root and allowed only in the modules that talk to the kernel or
//! to libyaml (each says so at its top, and each block carries a `// SAFETY:` line).
#![deny(unsafe_code)]

pub mod cli;
pub mod config;
pub mod control;
pub mod event_loop;
pub mod fuzzing;
pub mod logger;
pub mod machine;
pub mod monitor;
pub mod notify;
pub mod output;
pub mod probes;
pub mod reaper;
pub mod signals;
pub mod sockets;
pub mod spawn;
pub mod users;

/// Single-program mode's machine under its old path, for `main.rs` until the merge moves its
/// import to `machine::single` (main.rs belongs to the other half of issue 11).
pub use machine::single;
