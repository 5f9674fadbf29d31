//! ginit as a library: everything but the entry point. The binary (`src/main.rs`) is a thin
//! `main` over it; the fuzz targets (`fuzz/`) and the regression tests call the same parsers
//! through [`fuzzing`].
//!
//! `unsafe` is denied at the root and allowed only in one room of the OS edge (`os::sys`),
//! the libyaml FFI (the `events` module of `config/yaml.rs`) and the entry point's
//! `no_mangle` (`main.rs`): each says so where it lifts the deny, and each block carries a
//! `// SAFETY:` line.
#![deny(unsafe_code)]

pub mod cli;
pub mod config;
pub mod control;
pub mod fuzzing;
pub mod logger;
pub mod machine;
pub mod os;
