//! The single poll loop: signals -> reap -> deadlines -> actions.
//!
//! One thread, one `poll(2)`, whose timeout is the earliest deadline of the state machine (or
//! infinite when there is none: an idle ginit never wakes up). Everything that happens is an
//! event read here and handed to pure code, whose actions are carried out here.
#![allow(unsafe_code)]

use std::time::Instant;

use log::{debug, info, warn};

use crate::reaper::{self, Exit};
use crate::signals::{self, SignalSource};
use crate::single::{Action, Single, Target};
use crate::spawn;

/// Milliseconds from `now` to `deadline` for poll, rounded up so a deadline is never polled
/// for early (which would spin), or -1 for none.
fn poll_timeout(deadline: Option<std::time::Instant>, now: Instant) -> i32 {
    match deadline {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(now);
            let ms = left.as_micros().div_ceil(1000);
            i32::try_from(ms).unwrap_or(i32::MAX)
        }
    }
}

/// Waits until `fd` is readable or `timeout_ms` passes.
fn wait_readable(fd: i32, timeout_ms: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd. EINTR cannot occur with every signal blocked; on any error
    // the loop simply looks at its sources again.
    unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
}

/// What single-program mode needs besides the state machine.
pub struct SingleRun {
    pub signals: SignalSource,
    pub machine: Single,
    pub child: i32,
    pub name: String,
    /// The child was given the terminal and ginit takes it back when the child is gone.
    pub foreground: bool,
}

/// Runs single-program mode to its end and returns ginit's exit status.
pub fn run_single(mut run: SingleRun) -> i32 {
    let mut received = Vec::new();
    let mut exits: Vec<Exit> = Vec::new();
    let mut codes = Vec::new();
    let mut actions = Vec::new();
    loop {
        wait_readable(
            run.signals.raw_fd(),
            poll_timeout(run.machine.deadline(), Instant::now()),
        );
        let now = Instant::now();
        received.clear();
        run.signals.drain(&mut received);
        let mut reap = false;
        for &sig in &received {
            if sig == libc::SIGCHLD {
                reap = true;
            } else if signals::is_forwarded(sig) {
                debug!("received {}", signals::name(sig));
                actions.extend(run.machine.on_signal(sig, now));
            }
        }
        if reap {
            exits.clear();
            let children_left = reaper::reap(&mut exits);
            codes.clear();
            for exit in &exits {
                if exit.pid == run.child {
                    debug!("{} (pid {}) {}", run.name, exit.pid, exit.describe());
                } else {
                    debug!("reaped pid {}, which {}", exit.pid, exit.describe());
                }
                codes.push((exit.pid, exit.code()));
            }
            actions.extend(run.machine.on_reaped(&codes, children_left, now));
        }
        actions.extend(run.machine.on_time(now));
        for action in actions.drain(..) {
            if let Some(code) = perform(&run, action) {
                return code;
            }
        }
    }
}

fn perform(run: &SingleRun, action: Action) -> Option<i32> {
    match action {
        Action::Signal(target, sig) => {
            let pid = match target {
                Target::Pid(pid) => pid,
                Target::Group(pgid) => -pgid,
            };
            debug!("forwarding {} to {}", signals::name(sig), pid);
            if let Err(e) = signals::kill(pid, sig) {
                debug!("could not forward {} to {pid}: {e}", signals::name(sig));
            }
        }
        Action::SignalLeftovers(sig) => {
            let n = reaper::signal_leftovers(sig);
            if n > 0 {
                info!("sent {} to the processes left behind", signals::name(sig));
            }
        }
        Action::ChildGone => {
            if run.foreground {
                spawn::reclaim_terminal();
            }
        }
        Action::Exit(code) => {
            let mut ignored = Vec::new();
            if reaper::reap(&mut ignored) {
                warn!("exiting while some processes could not be reaped after SIGKILL");
            }
            return Some(code);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timeouts_round_up_and_never_spin() {
        let now = Instant::now();
        assert_eq!(poll_timeout(None, now), -1);
        assert_eq!(poll_timeout(Some(now), now), 0);
        assert_eq!(poll_timeout(Some(now + Duration::from_micros(1)), now), 1);
        assert_eq!(
            poll_timeout(Some(now + Duration::from_millis(1500)), now),
            1500
        );
        assert_eq!(poll_timeout(Some(now - Duration::from_secs(1)), now), 0);
        assert_eq!(
            poll_timeout(Some(now + Duration::from_secs(1 << 40)), now),
            i32::MAX
        );
    }
}
