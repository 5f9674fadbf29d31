//! Single-program mode (`ginit -- PROGRAM`) as a pure state machine.
//!
//! It decides, from events and a given `Instant`, what ginit does: forward a signal, escalate
//! to SIGKILL, clear the leftovers of the namespace, exit with which status. It performs no
//! system call; the event loop carries out its [`Action`]s. This keeps the subtle parts
//! (second SIGTERM, the grace period, the exit status) unit-testable without forking.
//!
//! Life of a run:
//! 1. `Running`: signals are forwarded to the child (or its process group with `-g`).
//!    SIGTERM, SIGINT or SIGQUIT mark the start of the wind-down; a second SIGTERM or SIGINT
//!    after that kills the child at once.
//! 2. The child exits: its status becomes ginit's. If other processes remain (daemonised
//!    grandchildren), they get SIGTERM and `grace` to exit (`Draining`).
//! 3. Grace over, or SIGTERM/SIGINT again: SIGKILL for the rest (`Killing`), reaped within a
//!    short bound.
//! 4. No child left: exit.
//!
//! Part of the machine: it must not import the OS edge (`event_loop.rs` runs it). Its
//! [`Action`]s are single mode's effects, kept apart from supervisor mode's
//! [`Effect`](super::Effect): none of those applies here, and each mode's loop matches only its own.

use std::time::{Duration, Instant};

use super::KILL_WAIT;

/// Where a forwarded signal goes (named apart from the probes' `Target`, a check's address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipient {
    Pid(i32),
    Group(i32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a signal to the child or its process group.
    Signal(Recipient, i32),
    /// Send a signal to every leftover process (the namespace, or ginit's descendants).
    SignalLeftovers(i32),
    /// The child has exited: give the terminal back to ginit's own process group.
    ChildGone,
    /// Exit ginit with this status.
    Exit(i32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running { stopping: bool, killed: bool },
    Draining { deadline: Instant },
    Killing { deadline: Instant },
    Done,
}

#[derive(Debug)]
pub struct Single {
    child: i32,
    pgroup: bool,
    grace: Duration,
    status: i32,
    phase: Phase,
}

impl Single {
    pub fn new(child: i32, pgroup: bool, grace: Duration) -> Self {
        Single {
            child,
            pgroup,
            grace,
            status: 0,
            phase: Phase::Running {
                stopping: false,
                killed: false,
            },
        }
    }

    fn target(&self) -> Recipient {
        if self.pgroup {
            Recipient::Group(self.child)
        } else {
            Recipient::Pid(self.child)
        }
    }

    /// The next instant at which [`Single::on_time`] has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Draining { deadline } | Phase::Killing { deadline } => Some(deadline),
            _ => None,
        }
    }

    /// A signal other than SIGCHLD arrived.
    pub fn on_signal(&mut self, sig: i32, now: Instant) -> Vec<Action> {
        let hard = sig == libc::SIGTERM || sig == libc::SIGINT;
        let soft = hard || sig == libc::SIGQUIT;
        match &mut self.phase {
            Phase::Running { stopping, killed } => {
                if *stopping && hard {
                    *killed = true;
                    return vec![Action::Signal(self.target(), libc::SIGKILL)];
                }
                if soft {
                    *stopping = true;
                }
                vec![Action::Signal(self.target(), sig)]
            }
            Phase::Draining { .. } if hard => self.kill_leftovers(now),
            _ => Vec::new(),
        }
    }

    fn kill_leftovers(&mut self, now: Instant) -> Vec<Action> {
        self.phase = Phase::Killing {
            deadline: now + KILL_WAIT,
        };
        vec![Action::SignalLeftovers(libc::SIGKILL)]
    }

    /// A batch of processes was reaped: `exits` as (pid, exit code); `children_left` says
    /// whether any child remains.
    pub fn on_reaped(
        &mut self,
        exits: &[(i32, i32)],
        children_left: bool,
        now: Instant,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Phase::Running { killed, .. } = self.phase {
            if let Some(&(_, code)) = exits.iter().find(|(pid, _)| *pid == self.child) {
                self.status = code;
                actions.push(Action::ChildGone);
                if children_left {
                    if killed {
                        actions.extend(self.kill_leftovers(now));
                    } else {
                        self.phase = Phase::Draining {
                            deadline: now + self.grace,
                        };
                        actions.push(Action::SignalLeftovers(libc::SIGTERM));
                    }
                }
            } else {
                return actions;
            }
        }
        if !children_left && self.phase != Phase::Done {
            self.phase = Phase::Done;
            actions.push(Action::Exit(self.status));
        }
        actions
    }

    /// Time passed; acts on an expired deadline.
    pub fn on_time(&mut self, now: Instant) -> Vec<Action> {
        match self.phase {
            Phase::Draining { deadline } if now >= deadline => self.kill_leftovers(now),
            Phase::Killing { deadline } if now >= deadline => {
                self.phase = Phase::Done;
                vec![Action::Exit(self.status)]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::{SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM, SIGUSR1};

    const CHILD: i32 = 42;

    fn single(pgroup: bool) -> (Single, Instant) {
        (
            Single::new(CHILD, pgroup, Duration::from_secs(2)),
            Instant::now(),
        )
    }

    #[test]
    fn forwards_to_pid_or_group() {
        let (mut s, t) = single(false);
        assert_eq!(
            s.on_signal(SIGUSR1, t),
            vec![Action::Signal(Recipient::Pid(CHILD), SIGUSR1)]
        );
        let (mut g, t) = single(true);
        assert_eq!(
            g.on_signal(SIGHUP, t),
            vec![Action::Signal(Recipient::Group(CHILD), SIGHUP)]
        );
    }

    #[test]
    fn child_exit_alone_exits_with_its_status() {
        let (mut s, t) = single(false);
        assert_eq!(
            s.on_reaped(&[(CHILD, 3)], false, t),
            vec![Action::ChildGone, Action::Exit(3)]
        );
        assert_eq!(s.deadline(), None);
        // Nothing more happens after the exit.
        assert!(s.on_reaped(&[], false, t).is_empty());
    }

    #[test]
    fn orphans_reaped_while_running_change_nothing() {
        let (mut s, t) = single(false);
        assert!(s.on_reaped(&[(7, 0), (8, 137)], true, t).is_empty());
        assert!(s.on_reaped(&[(9, 1)], true, t).is_empty());
        assert_eq!(
            s.on_reaped(&[(CHILD, 0)], false, t),
            vec![Action::ChildGone, Action::Exit(0)]
        );
    }

    #[test]
    fn leftovers_get_term_then_grace_then_kill() {
        let (mut s, t) = single(false);
        assert_eq!(
            s.on_reaped(&[(CHILD, 5)], true, t),
            vec![Action::ChildGone, Action::SignalLeftovers(SIGTERM)]
        );
        assert_eq!(s.deadline(), Some(t + Duration::from_secs(2)));
        assert!(s.on_time(t + Duration::from_secs(1)).is_empty());
        let later = t + Duration::from_secs(2);
        assert_eq!(s.on_time(later), vec![Action::SignalLeftovers(SIGKILL)]);
        assert_eq!(s.deadline(), Some(later + KILL_WAIT));
        assert_eq!(
            s.on_reaped(&[(77, 137)], false, later),
            vec![Action::Exit(5)]
        );
    }

    #[test]
    fn leftovers_that_leave_in_grace_end_the_run_early() {
        let (mut s, t) = single(false);
        s.on_reaped(&[(CHILD, 0)], true, t);
        assert_eq!(s.on_reaped(&[(77, 143)], false, t), vec![Action::Exit(0)]);
    }

    #[test]
    fn second_term_kills_the_child() {
        let (mut s, t) = single(false);
        assert_eq!(
            s.on_signal(SIGTERM, t),
            vec![Action::Signal(Recipient::Pid(CHILD), SIGTERM)]
        );
        // Other signals are still forwarded during the wind-down.
        assert_eq!(
            s.on_signal(SIGUSR1, t),
            vec![Action::Signal(Recipient::Pid(CHILD), SIGUSR1)]
        );
        assert_eq!(
            s.on_signal(SIGINT, t),
            vec![Action::Signal(Recipient::Pid(CHILD), SIGKILL)]
        );
        // Leftovers then get no grace.
        assert_eq!(
            s.on_reaped(&[(CHILD, 137)], true, t),
            vec![Action::ChildGone, Action::SignalLeftovers(SIGKILL)]
        );
    }

    #[test]
    fn quit_starts_the_wind_down_but_a_second_quit_is_forwarded() {
        let (mut s, t) = single(true);
        s.on_signal(SIGQUIT, t);
        assert_eq!(
            s.on_signal(SIGQUIT, t),
            vec![Action::Signal(Recipient::Group(CHILD), SIGQUIT)]
        );
        assert_eq!(
            s.on_signal(SIGTERM, t),
            vec![Action::Signal(Recipient::Group(CHILD), SIGKILL)]
        );
    }

    #[test]
    fn term_during_grace_skips_to_kill() {
        let (mut s, t) = single(false);
        s.on_reaped(&[(CHILD, 0)], true, t);
        assert!(s.on_signal(SIGUSR1, t).is_empty());
        assert_eq!(
            s.on_signal(SIGTERM, t),
            vec![Action::SignalLeftovers(SIGKILL)]
        );
        assert!(s.on_signal(SIGTERM, t).is_empty());
    }

    #[test]
    fn unkillable_leftovers_do_not_keep_ginit_forever() {
        let (mut s, t) = single(false);
        s.on_reaped(&[(CHILD, 9)], true, t);
        let t2 = t + Duration::from_secs(2);
        s.on_time(t2);
        assert_eq!(s.on_time(t2 + KILL_WAIT), vec![Action::Exit(9)]);
        assert!(s.on_time(t2 + KILL_WAIT * 2).is_empty());
    }
}
