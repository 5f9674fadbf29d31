//! One instance of a program as a pure state machine: restart policy, backoff, the restart
//! window, the stop -> SIGKILL escalation, and what its process group gets once its process
//! has exited.
//!
//! Inputs are events with a given `now`; outputs are [`Action`]s for the supervisor to carry
//! out (spawn, signal the instance's process group, sweep what an exited process left in its
//! group). No system calls here, so every rule is unit-tested with made-up instants.
//!
//! Rules worth knowing:
//! - every stop signal is followed by SIGCONT (as systemd does), so a process someone stopped
//!   with SIGSTOP acts on it at once instead of waiting for SIGKILL at the stop timeout;
//! - a restart is counted (RESTARTS, the restart window, the backoff) whether the process
//!   exited by itself or a verdict (memory_max, cpu_action: restart, health, watchdog) asked
//!   for a reload: [`Instance::count_restart`]; requested restarts and reloads are not;
//! - when the process has exited, whatever it left in its process group gets the stop signal
//!   (and SIGCONT) at once and SIGKILL at the stop timeout ([`Action::Leftovers`]); after a
//!   requested stop the group already had the stop signal and keeps the stop's deadline.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::{ProgramSpec, Restart};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not running and not scheduled (never started, stopped on request, or exited for good
    /// without failing).
    Stopped,
    /// Its process runs.
    Running,
    /// Told to stop; SIGKILL follows at the deadline.
    Stopping,
    /// Waiting out the restart delay.
    Backoff,
    /// Gave up: exited with a failure and will not be restarted.
    Failed,
    /// A oneshot that exited 0.
    Done,
}

impl State {
    /// The word `ginit status` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Backoff => "backoff",
            State::Failed => "failed",
            State::Done => "done",
        }
    }
}

/// What the supervisor must do for this instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start a process (then report it with `on_spawned` or `on_spawn_failed`).
    Spawn,
    /// Send a signal to the instance's process group.
    Signal(i32),
    /// The process that led group `pgid` has exited: send what is left in the group `signal`
    /// now (if any; SIGCONT after it), and SIGKILL at `kill_at` if anything is still there.
    Leftovers {
        pgid: i32,
        signal: Option<i32>,
        kill_at: Option<Instant>,
    },
}

/// What happens once a requested stop has completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterStop {
    /// Stay stopped.
    Nothing,
    /// Start again after this delay (zero: at once).
    Start(Duration),
    /// Given up (too many restarts): the instance is failed.
    Fail,
}

/// The signals that stop an instance: `sig`, then SIGCONT, so a process stopped by SIGSTOP
/// (or a terminal's Ctrl-Z) wakes up to act on it (systemd does the same). Not after SIGKILL,
/// which needs no waking, nor after SIGCONT itself.
pub fn stop_signals(sig: i32) -> Vec<Action> {
    if sig == libc::SIGKILL || sig == libc::SIGCONT {
        vec![Action::Signal(sig)]
    } else {
        vec![Action::Signal(sig), Action::Signal(libc::SIGCONT)]
    }
}

#[derive(Debug)]
pub struct Instance {
    pub index: u32,
    pub state: State,
    pub pid: Option<i32>,
    pub started: Option<Instant>,
    /// How many times it was restarted after exiting (not counting requested restarts).
    pub restarts: u32,
    /// The exit code of its last run (128+N for signal N).
    pub last_exit: Option<i32>,
    /// Restarts inside the current restart window.
    recent: VecDeque<Instant>,
    /// The delay before the next restart.
    delay: Duration,
    deadline: Option<Instant>,
    /// What to do once the requested stop completes.
    after_stop: AfterStop,
    /// Its readiness check passed (or it has none) in the current run.
    pub ready: bool,
    /// `ready: {delay}`: when the current run counts as ready.
    ready_at: Option<Instant>,
    /// The new instance of a `replace` reload, not serving as the instance yet.
    pub surge: bool,
    /// The old instance of a `replace` reload, stopping once its replacement is ready.
    pub retiring: bool,
}

impl Instance {
    pub fn new(index: u32, spec: &ProgramSpec) -> Instance {
        Instance {
            index,
            state: State::Stopped,
            pid: None,
            started: None,
            restarts: 0,
            last_exit: None,
            recent: VecDeque::new(),
            delay: spec.backoff.initial,
            deadline: None,
            after_stop: AfterStop::Nothing,
            ready: false,
            ready_at: None,
            surge: false,
            retiring: false,
        }
    }

    /// True while a process of this instance may exist.
    pub fn is_live(&self) -> bool {
        matches!(self.state, State::Running | State::Stopping)
    }

    pub fn deadline(&self) -> Option<Instant> {
        match (self.deadline, self.ready_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Running and waiting for its readiness check.
    pub fn is_starting(&self) -> bool {
        self.state == State::Running && !self.ready
    }

    /// The readiness check passed (READY=1, a TCP connect...). Ignored unless starting.
    pub fn on_ready(&mut self) -> bool {
        if !self.is_starting() {
            return false;
        }
        self.ready = true;
        self.ready_at = None;
        self.deadline = None;
        true
    }

    /// Starts the instance unless it runs already. A manual start forgets past failures.
    pub fn start(&mut self, spec: &ProgramSpec) -> Vec<Action> {
        match self.state {
            State::Running => Vec::new(),
            State::Stopping => {
                self.after_stop = AfterStop::Start(Duration::ZERO);
                Vec::new()
            }
            _ => {
                self.recent.clear();
                self.delay = spec.backoff.initial;
                self.deadline = None;
                vec![Action::Spawn]
            }
        }
    }

    pub fn on_spawned(&mut self, spec: &ProgramSpec, pid: i32, now: Instant) {
        self.state = State::Running;
        self.pid = Some(pid);
        self.started = Some(now);
        self.deadline = None;
        self.ready_at = None;
        match &spec.ready {
            None => self.ready = true,
            Some(r) => {
                self.ready = false;
                self.deadline = Some(now + r.timeout);
                if let crate::config::ReadyCheck::Delay(d) = r.check {
                    self.ready_at = Some(now + d);
                }
            }
        }
    }

    /// The process could not be started: counts as a failed run (status 127).
    pub fn on_spawn_failed(
        &mut self,
        spec: &ProgramSpec,
        may_restart: bool,
        now: Instant,
    ) -> Vec<Action> {
        self.state = State::Running;
        self.started = Some(now);
        self.on_exit(spec, 127, None, may_restart, now)
    }

    /// What the rest of the process group of `pgid`, whose leader has just exited, gets.
    /// Computed before the state changes: a stopping instance's group had its stop signal
    /// with the leader and keeps the stop's deadline (so a user's stop ends in SIGKILL for
    /// the stragglers, as it would for the leader); one SIGKILLed already gets SIGKILL again
    /// (it costs nothing and covers a leader that had left its group); any other exit (a
    /// crash, exit 0, a ready timeout) sends the stop signal now and SIGKILL at the stop
    /// timeout. The restart does not wait for any of it.
    fn leftovers(&self, pgid: i32, spec: &ProgramSpec, now: Instant) -> Action {
        let (signal, kill_at) = match (self.state, self.deadline) {
            (State::Stopping, Some(d)) => (None, Some(d)),
            (State::Stopping, None) => (Some(libc::SIGKILL), None),
            _ => (Some(spec.stop_signal), Some(now + spec.stop_timeout)),
        };
        Action::Leftovers {
            pgid,
            signal,
            kill_at,
        }
    }

    /// Its process exited with `code` (`signal` set when a signal killed it).
    /// `may_restart` is false while ginit shuts down.
    pub fn on_exit(
        &mut self,
        spec: &ProgramSpec,
        code: i32,
        signal: Option<i32>,
        may_restart: bool,
        now: Instant,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some(pgid) = self.pid.take() {
            actions.push(self.leftovers(pgid, spec, now));
        }
        self.last_exit = Some(code);
        self.deadline = None;
        self.ready = false;
        self.ready_at = None;
        if self.state == State::Stopping {
            self.state = State::Stopped;
            match std::mem::replace(&mut self.after_stop, AfterStop::Nothing) {
                AfterStop::Start(delay) if may_restart && delay.is_zero() => {
                    actions.push(Action::Spawn)
                }
                AfterStop::Start(delay) if may_restart => {
                    self.state = State::Backoff;
                    self.deadline = Some(now + delay);
                }
                AfterStop::Fail => self.state = State::Failed,
                _ => {}
            }
            return actions;
        }
        let stopped_by_its_stop_signal = signal == Some(spec.stop_signal);
        let failed = code != 0 && !stopped_by_its_stop_signal;
        if spec.oneshot && code == 0 {
            self.state = State::Done;
            return actions;
        }
        let restart = may_restart
            && match spec.restart {
                Restart::Always => true,
                Restart::OnFailure => failed,
                Restart::Never => false,
            };
        if !restart {
            self.state = if failed {
                State::Failed
            } else {
                State::Stopped
            };
            return actions;
        }
        match self.count_restart(spec, now) {
            Some(delay) => {
                self.state = State::Backoff;
                self.deadline = Some(now + delay);
            }
            None => self.state = State::Failed,
        }
        actions
    }

    /// Counts one restart, whether after an exit or for a reload a verdict asked for
    /// (memory_max, `cpu_action: restart`, health, watchdog): RESTARTS grows, the restart
    /// window fills, the backoff grows. Returns the delay to wait before it, or `None` when
    /// `max_restarts` restarts within `restart_window` have been made already (give up).
    /// A run longer than `reset_after` proves the program healthy again: the delay starts
    /// over from `initial`.
    pub fn count_restart(&mut self, spec: &ProgramSpec, now: Instant) -> Option<Duration> {
        if self
            .started
            .is_some_and(|s| now.saturating_duration_since(s) >= spec.backoff.reset_after)
        {
            self.delay = spec.backoff.initial;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= spec.restart_window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= spec.max_restarts as usize {
            return None;
        }
        self.recent.push_back(now);
        self.restarts = self.restarts.saturating_add(1);
        let delay = self.delay;
        // A float-to-integer `as` saturates: a factor that overflows ends at `max`, never in
        // a panic (Duration::mul_f64 would panic).
        let next = delay.as_secs_f64() * spec.backoff.factor * 1e9;
        self.delay = Duration::from_nanos(next as u64).min(spec.backoff.max);
        Some(delay)
    }

    /// Takes over the restart history of the instance it replaces (a `replace` reload), so
    /// RESTARTS, the restart window and the backoff carry on across the hand-over.
    pub fn inherit_history(&mut self, old: &mut Instance) {
        self.restarts = old.restarts;
        self.recent = std::mem::take(&mut old.recent);
        self.delay = old.delay;
    }

    /// Stops it and starts it again once it is down (at once when it is not running). A
    /// failed instance starts afresh, its failures forgotten.
    pub fn restart(&mut self, spec: &ProgramSpec, now: Instant) -> Vec<Action> {
        if self.state == State::Running {
            let actions = self.stop(spec, now);
            self.after_stop = AfterStop::Start(Duration::ZERO);
            actions
        } else {
            self.start(spec)
        }
    }

    /// A counted reload by strategy `restart`: stops it, then starts it again `delay` after
    /// it is down (the backoff [`Instance::count_restart`] returned).
    pub fn reload_after(
        &mut self,
        spec: &ProgramSpec,
        now: Instant,
        delay: Duration,
    ) -> Vec<Action> {
        let actions = self.stop(spec, now);
        if self.state == State::Stopping {
            self.after_stop = AfterStop::Start(delay);
        }
        actions
    }

    /// Too many restarts: stops it, and it is failed once down.
    pub fn give_up(&mut self, spec: &ProgramSpec, now: Instant) -> Vec<Action> {
        let actions = self.stop(spec, now);
        match self.state {
            State::Stopping => self.after_stop = AfterStop::Fail,
            _ => self.state = State::Failed,
        }
        actions
    }

    /// Asks the instance to stop: its stop signal now (and SIGCONT), SIGKILL at the stop
    /// timeout. A pending restart is cancelled; an instance being given up stays failed.
    pub fn stop(&mut self, spec: &ProgramSpec, now: Instant) -> Vec<Action> {
        if self.after_stop != AfterStop::Fail {
            self.after_stop = AfterStop::Nothing;
        }
        self.ready_at = None;
        match self.state {
            State::Running => {
                self.state = State::Stopping;
                self.deadline = Some(now + spec.stop_timeout);
                stop_signals(spec.stop_signal)
            }
            State::Backoff => {
                self.state = State::Stopped;
                self.deadline = None;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// SIGKILL now (second shutdown signal, or the shutdown timeout). An instance being
    /// given up stays failed.
    pub fn kill(&mut self) -> Vec<Action> {
        if self.after_stop != AfterStop::Fail {
            self.after_stop = AfterStop::Nothing;
        }
        match self.state {
            State::Running | State::Stopping => {
                self.state = State::Stopping;
                self.deadline = None;
                vec![Action::Signal(libc::SIGKILL)]
            }
            State::Backoff => {
                self.state = State::Stopped;
                self.deadline = None;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Acts on an expired deadline: the end of a backoff, or of a stop timeout.
    pub fn on_time(&mut self, now: Instant) -> Vec<Action> {
        if self.ready_at.is_some_and(|t| now >= t) {
            self.on_ready();
        }
        match (self.state, self.deadline) {
            // Not ready in time: killed; its exit counts as a failed run.
            (State::Running, Some(d)) if now >= d && !self.ready => {
                self.deadline = None;
                self.ready_at = None;
                vec![Action::Signal(libc::SIGKILL)]
            }
            (State::Backoff, Some(d)) if now >= d => {
                self.deadline = None;
                vec![Action::Spawn]
            }
            (State::Stopping, Some(d)) if now >= d => {
                self.deadline = None;
                vec![Action::Signal(libc::SIGKILL)]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Backoff;

    fn spec(restart: Restart) -> ProgramSpec {
        let mut s = ProgramSpec::new("p", vec!["x".into()]);
        s.restart = restart;
        s.backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
            factor: 2.0,
            reset_after: Duration::from_secs(10),
        };
        s.max_restarts = 3;
        s.stop_timeout = Duration::from_secs(5);
        s
    }

    fn running(spec: &ProgramSpec, t: Instant) -> Instance {
        let mut i = Instance::new(0, spec);
        assert_eq!(i.start(spec), vec![Action::Spawn]);
        i.on_spawned(spec, 42, t);
        i
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// What a stop sends: the stop signal, then SIGCONT.
    const TERM_CONT: [Action; 2] = [Action::Signal(libc::SIGTERM), Action::Signal(libc::SIGCONT)];

    /// The sweep of process group 42 (the pid `running` gives).
    fn sweep(signal: Option<i32>, kill_at: Option<Instant>) -> Action {
        Action::Leftovers {
            pgid: 42,
            signal,
            kill_at,
        }
    }

    #[test]
    fn backoff_grows_to_its_max_then_the_window_gives_up() {
        let s = spec(Restart::Always);
        let t = Instant::now();
        let mut i = running(&s, t);
        let mut now = t;
        for want in [100, 200, 350] {
            i.on_exit(&s, 1, None, true, now);
            assert_eq!(i.state, State::Backoff);
            assert_eq!(i.deadline(), Some(now + ms(want)));
            assert!(i.on_time(now + ms(want - 1)).is_empty());
            now += ms(want);
            assert_eq!(i.on_time(now), vec![Action::Spawn]);
            i.on_spawned(&s, 43, now);
        }
        assert_eq!(i.restarts, 3);
        // A fourth quick failure inside the window: given up.
        i.on_exit(&s, 1, None, true, now);
        assert_eq!(i.state, State::Failed);
        assert_eq!(i.deadline(), None);
        assert_eq!(i.last_exit, Some(1));
    }

    #[test]
    fn the_window_slides_and_a_long_run_resets_the_delay() {
        let s = spec(Restart::Always);
        let t = Instant::now();
        let mut i = running(&s, t);
        i.on_exit(&s, 1, None, true, t);
        i.on_spawned(&s, 1, t + ms(100));
        i.on_exit(&s, 1, None, true, t + ms(100));
        assert_eq!(i.deadline(), Some(t + ms(300)));
        // A run of 20 s (> reset_after) brings the delay back to `initial`.
        i.on_spawned(&s, 2, t + ms(300));
        let later = t + Duration::from_secs(20);
        i.on_exit(&s, 1, None, true, later);
        assert_eq!(i.deadline(), Some(later + ms(100)));
        // Past the window, old restarts no longer count.
        let much_later = t + Duration::from_secs(200);
        for k in 0..3 {
            i.on_spawned(&s, 3, much_later);
            i.on_exit(&s, 1, None, true, much_later + ms(k));
            assert_eq!(i.state, State::Backoff, "restart {k}");
        }
    }

    #[test]
    fn policies() {
        let t = Instant::now();
        // on-failure: exit 0 is the end; failure and foreign signals restart.
        let s = spec(Restart::OnFailure);
        let mut i = running(&s, t);
        i.on_exit(&s, 0, None, true, t);
        assert_eq!(i.state, State::Stopped);
        let mut i = running(&s, t);
        i.on_exit(&s, 3, None, true, t);
        assert_eq!(i.state, State::Backoff);
        let mut i = running(&s, t);
        i.on_exit(&s, 137, Some(libc::SIGKILL), true, t);
        assert_eq!(i.state, State::Backoff);
        // Killed by its own stop signal (from outside): not a failure.
        let mut i = running(&s, t);
        i.on_exit(&s, 143, Some(libc::SIGTERM), true, t);
        assert_eq!(i.state, State::Stopped);
        // never: failed or stopped, never restarted.
        let s = spec(Restart::Never);
        let mut i = running(&s, t);
        i.on_exit(&s, 2, None, true, t);
        assert_eq!(i.state, State::Failed);
        let mut i = running(&s, t);
        i.on_exit(&s, 0, None, true, t);
        assert_eq!(i.state, State::Stopped);
        // always restarts after exit 0 too, unless ginit is shutting down.
        let s = spec(Restart::Always);
        let mut i = running(&s, t);
        i.on_exit(&s, 0, None, true, t);
        assert_eq!(i.state, State::Backoff);
        let mut i = running(&s, t);
        i.on_exit(&s, 0, None, false, t);
        assert_eq!(i.state, State::Stopped);
    }

    #[test]
    fn oneshots_are_done_after_exit_0_and_retried_on_failure() {
        let mut s = spec(Restart::OnFailure);
        s.oneshot = true;
        let t = Instant::now();
        let mut i = running(&s, t);
        i.on_exit(&s, 1, None, true, t);
        assert_eq!(i.state, State::Backoff);
        i.on_spawned(&s, 5, t + ms(100));
        i.on_exit(&s, 0, None, true, t + ms(150));
        assert_eq!(i.state, State::Done);
    }

    #[test]
    fn stop_escalates_to_sigkill_at_the_timeout() {
        let s = spec(Restart::Always);
        let t = Instant::now();
        let mut i = running(&s, t);
        assert_eq!(i.stop(&s, t), TERM_CONT);
        assert_eq!(i.state, State::Stopping);
        assert!(i.on_time(t + Duration::from_secs(4)).is_empty());
        assert_eq!(
            i.on_time(t + Duration::from_secs(5)),
            vec![Action::Signal(libc::SIGKILL)]
        );
        assert_eq!(i.deadline(), None);
        // The exit after a requested stop is no failure and no restart; its group had
        // SIGKILL and gets it again, with nothing left to wait for.
        assert_eq!(
            i.on_exit(&s, 137, Some(libc::SIGKILL), true, t),
            [sweep(Some(libc::SIGKILL), None)]
        );
        assert_eq!(i.state, State::Stopped);
    }

    #[test]
    fn stopping_a_backoff_cancels_the_restart() {
        let s = spec(Restart::Always);
        let t = Instant::now();
        let mut i = running(&s, t);
        i.on_exit(&s, 1, None, true, t);
        assert!(i.stop(&s, t).is_empty());
        assert_eq!(i.state, State::Stopped);
        assert!(i.on_time(t + Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn restart_stops_then_spawns() {
        let s = spec(Restart::Never);
        let t = Instant::now();
        let mut i = running(&s, t);
        assert_eq!(i.restart(&s, t), TERM_CONT);
        // The group keeps the stop's deadline; the new process starts at once all the same.
        assert_eq!(
            i.on_exit(&s, 143, Some(libc::SIGTERM), true, t + ms(10)),
            [sweep(None, Some(t + s.stop_timeout)), Action::Spawn]
        );
        // ...but not while shutting down.
        let mut i = running(&s, t);
        i.restart(&s, t);
        assert_eq!(
            i.on_exit(&s, 0, None, false, t),
            [sweep(None, Some(t + s.stop_timeout))]
        );
        // A failed instance restarts at once, its failures forgotten.
        let mut i = running(&s, t);
        i.on_exit(&s, 1, None, true, t);
        assert_eq!(i.state, State::Failed);
        assert_eq!(i.restart(&s, t), vec![Action::Spawn]);
    }

    #[test]
    fn readiness_by_check_by_delay_and_the_timeout() {
        use crate::config::{ReadyCheck, ReadySpec};
        let t = Instant::now();
        let mut s = spec(Restart::Always);
        s.ready = Some(ReadySpec {
            check: ReadyCheck::Notify,
            timeout: ms(1000),
        });
        let mut i = Instance::new(0, &s);
        i.on_spawned(&s, 7, t);
        assert!(i.is_starting() && !i.ready);
        assert_eq!(i.deadline(), Some(t + ms(1000)));
        assert!(i.on_ready());
        assert!(i.ready && i.deadline().is_none());
        assert!(!i.on_ready(), "once");
        // Not ready within the timeout: killed, and the exit is a failed run.
        let mut i = Instance::new(0, &s);
        i.on_spawned(&s, 8, t);
        assert!(i.on_time(t + ms(999)).is_empty());
        assert_eq!(i.on_time(t + ms(1000)), vec![Action::Signal(libc::SIGKILL)]);
        i.on_exit(&s, 137, Some(libc::SIGKILL), true, t + ms(1001));
        assert_eq!(i.state, State::Backoff);
        assert!(!i.ready);
        // A delay: ready when it has passed.
        s.ready = Some(ReadySpec {
            check: ReadyCheck::Delay(ms(200)),
            timeout: ms(1000),
        });
        let mut i = Instance::new(0, &s);
        i.on_spawned(&s, 9, t);
        assert_eq!(i.deadline(), Some(t + ms(200)));
        assert!(i.on_time(t + ms(200)).is_empty());
        assert!(i.ready && i.deadline().is_none());
        // Without a check: ready at once.
        let plain = spec(Restart::Always);
        let mut i = Instance::new(0, &plain);
        i.on_spawned(&plain, 10, t);
        assert!(i.ready);
    }

    #[test]
    fn kill_is_immediate() {
        let s = spec(Restart::Always);
        let t = Instant::now();
        let mut i = running(&s, t);
        i.stop(&s, t);
        assert_eq!(i.kill(), vec![Action::Signal(libc::SIGKILL)]);
        assert_eq!(i.deadline(), None);
    }

    #[test]
    fn a_failed_spawn_is_a_failed_run() {
        let s = spec(Restart::Always);
        let t = Instant::now();
        let mut i = Instance::new(0, &s);
        i.start(&s);
        i.on_spawn_failed(&s, true, t);
        assert_eq!(i.state, State::Backoff);
        assert_eq!(i.last_exit, Some(127));
    }

    #[test]
    fn sigcont_follows_every_stop_signal_but_sigkill() {
        assert_eq!(stop_signals(libc::SIGTERM), TERM_CONT);
        assert_eq!(
            stop_signals(libc::SIGINT),
            [Action::Signal(libc::SIGINT), Action::Signal(libc::SIGCONT)]
        );
        assert_eq!(stop_signals(libc::SIGKILL), [Action::Signal(libc::SIGKILL)]);
        assert_eq!(stop_signals(libc::SIGCONT), [Action::Signal(libc::SIGCONT)]);
        let s = spec(Restart::Always);
        let t = Instant::now();
        let mut i = running(&s, t);
        assert_eq!(i.kill(), [Action::Signal(libc::SIGKILL)]);
    }

    #[test]
    fn an_exit_sweeps_the_group_without_delaying_the_restart() {
        let s = spec(Restart::Always);
        let t = Instant::now();
        // A crash: the group gets the stop signal now and SIGKILL at the stop timeout,
        // while the restart waits only for its backoff.
        let mut i = running(&s, t);
        let now = t + ms(500);
        assert_eq!(
            i.on_exit(&s, 1, None, true, now),
            [sweep(Some(libc::SIGTERM), Some(now + s.stop_timeout))]
        );
        assert_eq!(i.deadline(), Some(now + ms(100)));
        // Exit 0 of a oneshot too: what it left behind is no part of "done".
        let mut one = spec(Restart::OnFailure);
        one.oneshot = true;
        let mut i = running(&one, t);
        assert_eq!(
            i.on_exit(&one, 0, None, true, now),
            [sweep(Some(libc::SIGTERM), Some(now + s.stop_timeout))]
        );
        assert_eq!(i.state, State::Done);
        // A requested stop: the group had the stop signal with its leader and keeps the
        // stop's deadline, however early the leader went.
        let mut i = running(&s, t);
        i.stop(&s, t);
        assert_eq!(
            i.on_exit(&s, 0, None, true, now),
            [sweep(None, Some(t + s.stop_timeout))]
        );
        // A process that never started has no group.
        let mut i = Instance::new(0, &s);
        i.start(&s);
        assert!(i.on_spawn_failed(&s, true, t).is_empty());
    }

    #[test]
    fn verdict_reloads_count_as_restarts_with_backoff_and_a_limit() {
        let s = spec(Restart::Always);
        let t = Instant::now();
        let mut i = running(&s, t);
        // Each counted reload: RESTARTS, the window, the growing delay.
        assert_eq!(i.count_restart(&s, t), Some(ms(100)));
        assert_eq!(i.count_restart(&s, t + ms(1)), Some(ms(200)));
        assert_eq!(i.count_restart(&s, t + ms(2)), Some(ms(350)));
        assert_eq!(i.restarts, 3);
        // max_restarts (3) within the window: give up.
        assert_eq!(i.count_restart(&s, t + ms(3)), None);
        assert_eq!(i.restarts, 3);
        // Crashes and verdicts share the window: one more crash fails it.
        assert!(i.on_exit(&s, 1, None, true, t + ms(4)).len() == 1);
        assert_eq!(i.state, State::Failed);
    }

    #[test]
    fn a_counted_reload_by_restart_waits_out_its_delay_after_the_stop() {
        let s = spec(Restart::Always);
        let t = Instant::now();
        let mut i = running(&s, t);
        assert_eq!(i.reload_after(&s, t, ms(200)), TERM_CONT);
        let down = t + ms(50);
        i.on_exit(&s, 143, Some(libc::SIGTERM), true, down);
        assert_eq!(i.state, State::Backoff);
        assert_eq!(i.deadline(), Some(down + ms(200)));
        assert_eq!(i.on_time(down + ms(200)), [Action::Spawn]);
        // No delay: at once, as a requested restart.
        let mut i = running(&s, t);
        i.reload_after(&s, t, Duration::ZERO);
        assert_eq!(
            i.on_exit(&s, 143, Some(libc::SIGTERM), true, down),
            [sweep(None, Some(t + s.stop_timeout)), Action::Spawn]
        );
        // Not during a shutdown.
        let mut i = running(&s, t);
        i.reload_after(&s, t, ms(200));
        i.on_exit(&s, 143, Some(libc::SIGTERM), false, down);
        assert_eq!(i.state, State::Stopped);
    }

    #[test]
    fn giving_up_stops_then_fails_even_through_a_kill() {
        let s = spec(Restart::Always);
        let t = Instant::now();
        let mut i = running(&s, t);
        assert_eq!(i.give_up(&s, t), TERM_CONT);
        assert_eq!(i.state, State::Stopping);
        // A shutdown's SIGKILL or stop does not turn it into a clean stop.
        i.kill();
        i.stop(&s, t);
        i.on_exit(&s, 137, Some(libc::SIGKILL), true, t);
        assert_eq!(i.state, State::Failed);
        // A start by hand forgets it.
        let mut i = running(&s, t);
        i.give_up(&s, t);
        i.start(&s);
        assert_eq!(
            i.on_exit(&s, 143, Some(libc::SIGTERM), true, t),
            [sweep(None, Some(t + s.stop_timeout)), Action::Spawn]
        );
    }

    #[test]
    fn a_replacement_carries_the_restart_history_on() {
        let s = spec(Restart::Always);
        let t = Instant::now();
        let mut old = running(&s, t);
        old.count_restart(&s, t);
        old.count_restart(&s, t);
        let mut new = Instance::new(0, &s);
        new.inherit_history(&mut old);
        assert_eq!(new.restarts, 2);
        new.on_spawned(&s, 43, t);
        assert_eq!(new.count_restart(&s, t), Some(ms(350)));
        assert_eq!(new.count_restart(&s, t), None);
    }

    #[test]
    fn a_huge_backoff_factor_stops_at_max() {
        let mut s = spec(Restart::Always);
        s.backoff.factor = f64::MAX;
        let t = Instant::now();
        let mut i = running(&s, t);
        assert_eq!(i.count_restart(&s, t), Some(ms(100)));
        assert_eq!(i.count_restart(&s, t), Some(ms(350)));
    }
}
