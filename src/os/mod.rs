//! The OS edge: everything that touches the kernel. Every `unsafe` block of the crate outside
//! the fenced libyaml FFI (`config/yaml.rs`) and the `no_main` entry point (`main.rs`) is in
//! one room of it, `sys` (`sys/mod.rs` and the fork/exec boundary `sys/spawn.rs`).
//! `#![deny(unsafe_code)]` holds at the crate root; only `sys` lifts it, and each of its
//! blocks carries a `// SAFETY:` line.
//!
//! Rooms, and what each must not do:
//! - `event_loop`: the one poll loop: readiness -> events for the machine, its effects ->
//!   system calls; it decides nothing.
//! - `sys`: thin safe wrappers over the edge's libc calls, and every `unsafe` block of it.
//! - `start`: what an instance or an exec check starts with, from its spec (environment,
//!   user, limits, sockets, output pipes), and the exec reports of children.
//! - `spawn` (in `sys`): the fork/exec boundary; the child makes raw system calls on data
//!   built before fork and never allocates.
//! - `daemon`: `--daemon`'s fork; both sides return to `main`, which alone exits.
//! - `signals`: the signal mask and the signalfd (the signal table itself is pure data, in
//!   `config::signals`).
//! - `reaper`: waitpid and the leftover sweep; no policy.
//! - `proc`: the one reader of /proc (process table, parents, capabilities).
//! - `sockets`, `notify`: listeners bound once; NOTIFY_SOCKET with kernel credentials.
//! - `probes`: tcp and http check attempts; whether a result matters is not theirs.
//! - `output`: program output pipes and log files; `stdio`: ginit's own non-blocking stdout
//!   and stderr, shared by `output` and the logger; `ring`: each program's last lines of
//!   output in memory, for `ginit logs`.
//! - `resolver`: the real `config::Resolver`.
//! - `watch`: the inotify fd: where watched files changed (what a change means is the
//!   machine's).
//! - `metrics`: the `/metrics` endpoint's listener and HTTP connections, and the /proc figures
//!   read at scrape time; what a request asks and the exposition's text are
//!   `control::metrics`'.
//!
//! Imports go one way: these modules use `config` (data, the signal table) and the control
//! protocol, and carry out what the pure code decided; nothing pure imports them, and none
//! of them decides what a signal, an exit or a request means.

pub mod daemon;
pub mod event_loop;
pub mod metrics;
pub mod notify;
pub mod output;
pub mod probes;
pub mod proc;
pub mod reaper;
pub mod resolver;
pub mod ring;
pub mod signals;
pub mod sockets;
pub mod start;
pub mod stdio;
pub mod sys;
pub mod watch;
/// The fork/exec boundary (in `sys`, with the rest of the edge's `unsafe`).
pub use sys::spawn;

pub use resolver::SystemResolver;
