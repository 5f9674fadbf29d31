//! ginit as a library: everything but the entry point. The binary (`src/main.rs`) is a thin
//! `main` over it; the fuzz targets (`fuzz/`) and the regression tests call the same parsers
//! through [`fuzzing`].
//!
//! `unsafe` is denied at the root and allowed only in the OS edge ([`os`], one folder), the
//! fenced libyaml FFI (`config/yaml.rs`) and the entry point (`main.rs`): each says so at its
//! top, and each block carries a `// SAFETY:` line.
#![deny(unsafe_code)]

pub mod checks;
pub mod cli;
pub mod config;
pub mod control;
pub mod event_loop;
pub mod fuzzing;
pub mod logger;
pub mod monitor;
pub mod os;
pub mod program;
pub mod single;
pub mod supervisor;

// Merge seam (issue 11): the event loop, the supervisor and the checks (rewritten in the other
// half of the issue) still import the OS edge by its old paths. These aliases keep them
// compiling until they import `os::...` and `config::signals` directly; then delete them.
pub use os::{notify, output, probes, spawn};
/// Old path of the reaper, with `parent`, which moved to the /proc reader.
pub mod reaper {
    pub use crate::os::proc::parent;
    pub use crate::os::reaper::*;
}
/// Old path of the signal table (now `config::signals`) and the signalfd (`os::signals`).
pub mod signals {
    pub use crate::config::signals::*;
    pub use crate::os::signals::SignalSource;
    pub use crate::os::sys::kill;
}
