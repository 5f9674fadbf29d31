//! sd_notify messages (NOTIFY_SOCKET): whose they are, and what each field does.
//!
//! A message belongs to the instance whose process sent it or, for a helper the program
//! started (a shell wrapper's child), to the nearest ancestor that is an instance's process.
//! The sender's pid is the kernel's (SO_PASSCRED), never one written in the message, and its
//! ancestors are read by the edge from /proc; a message from any other process (another
//! program's, a stranger's, or pid 0 for a sender outside ginit's PID namespace) is ignored.
//!
//! - `READY=1`: a starting instance is ready (whatever its readiness check; a second one, or
//!   one from a ready instance, changes nothing);
//! - `WATCHDOG=1`: the instance's watchdog starts over (see `checks.rs`);
//! - `WATCHDOG=trigger`: the instance asks to be reloaded: a verdict, as a missed watchdog;
//! - `STOPPING=1` and `STATUS=...`: logged;
//! - anything else (`MAINPID=`, unknown fields): logged at debug level.

use std::time::Instant;

use log::{debug, info};

use super::Machine;

/// How far up from the sender its owner is looked for.
const MAX_ANCESTORS: usize = 64;

impl Machine {
    pub(super) fn on_notify(
        &mut self,
        sender: i32,
        ancestors: &[i32],
        fields: &[(String, String)],
        now: Instant,
    ) {
        // The sender itself, or its nearest ancestor, must be an instance's process.
        let mut owner = None;
        for pid in std::iter::once(sender)
            .chain(ancestors.iter().copied())
            .take(MAX_ANCESTORS)
        {
            if pid <= 1 {
                break;
            }
            if let Some((p, _)) = self.find_pid(pid)
                && let Some(program) = self.programs.get(p)
            {
                owner = Some((pid, program.spec.name.clone()));
                break;
            }
        }
        let Some((pid, program)) = owner else {
            debug!("notify: ignoring a message from pid {sender}, which is no program's");
            return;
        };
        for (key, value) in fields {
            match key.as_str() {
                "READY" if value == "1" => {
                    self.mark_ready(pid, now);
                }
                "STOPPING" if value == "1" => info!("{program} (pid {pid}) is stopping"),
                "WATCHDOG" if value == "1" => self.watchdog_ping(pid, now),
                "WATCHDOG" if value == "trigger" => {
                    self.reload_verdict(pid, "asked for it (WATCHDOG=trigger)", now);
                }
                "STATUS" => info!("{program} (pid {pid}): {value}"),
                _ => debug!("notify from {program} (pid {pid}): {key}={value}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Input;
    use super::super::testing::*;
    use std::time::{Duration, Instant};

    const TWO: &str = "programs:\n  a: {command: x, ready: {notify: true}}\n  b: {command: x, ready: {notify: true}}\n";

    #[test]
    fn ready_from_the_instance_or_a_descendant_and_only_once() {
        let mut e = edge(TWO);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let (a, b) = (e.pid("a"), e.pid("b"));
        // A helper of a (its grandchild) speaks for a.
        e.feed(
            Input::Notify {
                pid: 900,
                ancestors: vec![901, a],
                fields: vec![("READY".into(), "1".into())],
            },
            t,
        );
        let words = |e: &mut Edge| e.status(t).into_iter().map(|s| s.state).collect::<Vec<_>>();
        assert_eq!(words(&mut e), ["ready", "starting"]);
        // A second READY=1 changes nothing.
        e.notify(a, "READY=1", t);
        assert_eq!(words(&mut e), ["ready", "starting"]);
        e.notify(b, "STATUS=warming up\nREADY=1", t);
        assert_eq!(words(&mut e), ["ready", "ready"]);
    }

    #[test]
    fn a_foreign_sender_is_ignored() {
        let mut e = edge(TWO);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        for (pid, ancestors) in [(500, vec![400, 1]), (0, vec![]), (1, vec![])] {
            e.feed(
                Input::Notify {
                    pid,
                    ancestors,
                    fields: vec![
                        ("READY".into(), "1".into()),
                        ("WATCHDOG".into(), "trigger".into()),
                    ],
                },
                t,
            );
        }
        let status = e.status(t);
        assert!(
            status
                .iter()
                .all(|s| s.state == "starting" && s.restarts == 0)
        );
        // An ancestor beyond pid 1 is never looked at.
        let a = e.pid("a");
        e.feed(
            Input::Notify {
                pid: 500,
                ancestors: vec![1, a],
                fields: vec![("READY".into(), "1".into())],
            },
            t,
        );
        assert_eq!(e.status(t)[0].state, "starting");
    }

    #[test]
    fn watchdog_trigger_asks_for_a_counted_reload() {
        let mut e = edge("programs:\n  a: {command: x}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let a = e.pid("a");
        e.notify(a, "WATCHDOG=trigger", t);
        assert_eq!(e.signals, [(a, libc::SIGTERM), (a, libc::SIGCONT)]);
        e.reap(&[killed(a, libc::SIGTERM)], true, t);
        assert_eq!(e.status(t)[0].state, "backoff");
        assert_eq!(e.status(t)[0].restarts, 1);
        e.feed(Input::Time, t + Duration::from_millis(100));
        assert_ne!(e.pid("a"), a);
    }
}
