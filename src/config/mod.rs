//! Configuration: the units every option and YAML key is written in.
//!
//! Must not hold runtime state (pids, fds): config is not state.

pub mod units;
