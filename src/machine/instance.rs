//! One instance of a program as a pure state machine: restart policy, backoff, the restart
//! window, readiness, the stop -> SIGKILL escalation, and what its process group gets once its
//! process has exited. It knows nothing of other instances or programs.
//!
//! Inputs are events with a given `now`; outputs are [`Step`]s for the machine to carry out
//! (spawn, signal the instance's process group, sweep what an exited process left in its
//! group, drop a check attempt no longer wanted). No system calls, so every rule is
//! unit-tested with made-up instants.
//!
//! The state carries its data, so nothing valid in one state only can outlive it: a pid exists
//! only while a process may ([`State::Starting`], [`State::Running`], [`State::Stopping`]), the
//! readiness check only while starting, the health check and the watchdog only once ready, the
//! stop's deadline and what follows it only while stopping, and what is measured of a process
//! ([`Process`]) dies with it. The words `ginit status` shows come from [`Instance::word`].
//!
//! Rules worth knowing:
//! - every stop signal is followed by SIGCONT (as systemd does), so a process someone stopped
//!   with SIGSTOP acts on it at once instead of waiting for SIGKILL at the stop timeout;
//! - a restart is counted (RESTARTS, the restart window, the backoff) whether the process
//!   exited by itself or a verdict (memory_max, cpu_action: restart, health, watchdog) asked
//!   for a reload: [`Instance::count_restart`]; requested restarts and reloads are not;
//! - when the process has exited, whatever it left in its process group gets the stop signal
//!   (and SIGCONT) at once and SIGKILL at the stop timeout ([`Step::Leftovers`]); after a
//!   requested stop the group already had the stop signal and keeps the stop's deadline.

use std::time::{Duration, Instant};

use crate::config::{ProgramSpec, ReadyCheck, Restart};

use super::checks::Check;
use super::earliest;
use super::monitor::Watch;

/// What an instance is doing, with the data that goes with it and nothing else.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// Not running and not scheduled (never started, stopped on request, or exited for good
    /// without failing).
    Stopped,
    /// A process was asked of the edge; its pid (or why it could not start) comes back
    /// before any other event.
    Spawning,
    /// Its process runs; its readiness check has not passed yet.
    Starting {
        process: Process,
        /// `ready.timeout`: killed at this instant if not ready by then (`None`: it was).
        ready_by: Option<Instant>,
        /// `ready: {delay}`: ready at this instant.
        ready_at: Option<Instant>,
        /// The attempts of a tcp, http or exec readiness check.
        check: Option<Check>,
    },
    /// Its process runs and is ready (its readiness check passed, or it has none).
    Running {
        process: Process,
        /// The health check's attempts; `None` without one, or while paused (a replace
        /// reload of the program runs).
        health: Option<Check>,
        /// `watchdog`: the next WATCHDOG=1 is due by then.
        watchdog_at: Option<Instant>,
    },
    /// Told to stop; SIGKILL at `kill_at` (`None`: sent already).
    Stopping {
        process: Process,
        kill_at: Option<Instant>,
        then: AfterStop,
    },
    /// Waiting out the restart delay.
    Backoff { until: Instant },
    /// Gave up: exited with a failure and will not be restarted.
    Failed,
    /// A oneshot that succeeded (exit 0, or one of its `success_exit_codes`).
    Done,
}

/// One process of an instance, from its start to its exit, and what is measured of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Process {
    pub pid: i32,
    /// CPU time of its tree at the previous `status` (which shows the use since then).
    pub status_cpu: Option<(Instant, Duration)>,
    /// CPU time of its tree at the previous periodic sample (`cpu_max`).
    pub monitor_cpu: Option<(Instant, Duration)>,
    /// How long it has been over `cpu_max`.
    pub watch: Watch,
}

impl Process {
    fn new(pid: i32) -> Process {
        Process {
            pid,
            status_cpu: None,
            monitor_cpu: None,
            watch: Watch::default(),
        }
    }
}

/// What happens once a requested stop has completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterStop {
    /// Stay stopped.
    Nothing,
    /// Start again after this delay (zero: at once).
    Start(Duration),
    /// Given up (too many restarts): the instance is failed.
    Fail,
}

/// Where an instance stands in a `replace` reload of its program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The instance (what `ready` and dependents look at).
    Serving,
    /// The new instance of a `replace` reload, not serving as the instance yet.
    Surge,
    /// The old instance of a `replace` reload, stopping now that its replacement is ready.
    Retiring,
}

/// What the machine must do for an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
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
    /// Drop check attempt `attempt`: its process stopped or is ready, it is no longer wanted.
    Cancel(u64),
    /// Run `stop.command` to stop the instance's process (instead of its stop signal).
    StopCommand,
}

/// The signals that stop an instance: `sig`, then SIGCONT, so a process stopped by SIGSTOP
/// (or a terminal's Ctrl-Z) wakes up to act on it (systemd does the same). Not after SIGKILL,
/// which needs no waking, nor after SIGCONT itself.
pub fn stop_signals(sig: i32) -> Vec<Step> {
    if sig == libc::SIGKILL || sig == libc::SIGCONT {
        vec![Step::Signal(sig)]
    } else {
        vec![Step::Signal(sig), Step::Signal(libc::SIGCONT)]
    }
}

/// The attempt of `check` under way, to cancel with it.
fn cancel(check: Option<Check>) -> Option<Step> {
    check.and_then(|c| c.under_way()).map(Step::Cancel)
}

#[derive(Debug)]
pub struct Instance {
    pub index: u32,
    /// Never reused: answers to effects find their instance by it.
    pub serial: u64,
    pub role: Role,
    pub state: State,
    /// When its latest run began (kept once it ended: a long run resets the backoff).
    pub started: Option<Instant>,
    /// How many times it was restarted after exiting (not counting requested restarts).
    pub restarts: u32,
    /// The exit code of its last run (128+N for signal N).
    pub last_exit: Option<i32>,
    /// Health checks are paused for its whole program (a replace reload runs).
    pub health_paused: bool,
    /// Restarts inside the current restart window, oldest first.
    recent: Vec<Instant>,
    /// The delay before the next restart.
    delay: Duration,
}

impl Instance {
    pub fn new(index: u32, serial: u64, spec: &ProgramSpec) -> Instance {
        Instance {
            index,
            serial,
            role: Role::Serving,
            state: State::Stopped,
            started: None,
            restarts: 0,
            last_exit: None,
            health_paused: false,
            recent: Vec::new(),
            delay: spec.backoff.initial,
        }
    }

    /// Its process, while it has one.
    pub fn process(&self) -> Option<&Process> {
        match &self.state {
            State::Starting { process, .. }
            | State::Running { process, .. }
            | State::Stopping { process, .. } => Some(process),
            _ => None,
        }
    }

    pub fn process_mut(&mut self) -> Option<&mut Process> {
        match &mut self.state {
            State::Starting { process, .. }
            | State::Running { process, .. }
            | State::Stopping { process, .. } => Some(process),
            _ => None,
        }
    }

    pub fn pid(&self) -> Option<i32> {
        self.process().map(|p| p.pid)
    }

    /// True while a process of this instance may exist (or is being made).
    pub fn is_live(&self) -> bool {
        self.state == State::Spawning || self.process().is_some()
    }

    /// Running (or being started) and not told to stop: what a `replace` reload replaces.
    pub fn is_up(&self) -> bool {
        matches!(
            self.state,
            State::Spawning | State::Starting { .. } | State::Running { .. }
        )
    }

    /// Its process runs and waits for its readiness check.
    pub fn is_starting(&self) -> bool {
        matches!(self.state, State::Starting { .. })
    }

    /// Its process runs and is ready.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    pub fn is_stopping(&self) -> bool {
        matches!(self.state, State::Stopping { .. })
    }

    /// The word `ginit status` shows for it: the one place states are named.
    pub fn word(&self, spec: &ProgramSpec) -> &'static str {
        match self.state {
            State::Stopped => "stopped",
            State::Spawning | State::Starting { .. } => "starting",
            State::Running { .. } if spec.ready.is_some() => "ready",
            State::Running { .. } => "running",
            State::Stopping { .. } => "stopping",
            State::Backoff { .. } => "backoff",
            State::Failed => "failed",
            State::Done => "done",
        }
    }

    /// When [`Instance::on_time`] has something to do: the readiness timeout or delay, the
    /// stop timeout, the end of the backoff.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Starting {
                ready_by, ready_at, ..
            } => earliest(*ready_by, *ready_at),
            State::Stopping { kill_at, .. } => *kill_at,
            State::Backoff { until } => Some(*until),
            _ => None,
        }
    }

    /// When its checks have something to do (see `checks.rs`).
    pub fn check_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Starting { check, .. } => check.as_ref().map(Check::deadline),
            State::Running {
                health,
                watchdog_at,
                ..
            } => earliest(health.as_ref().map(Check::deadline), *watchdog_at),
            _ => None,
        }
    }

    /// The state of a process that has just become ready: its health check (unless paused)
    /// first tries one interval later; its watchdog starts counting.
    fn ready_state(&self, process: Process, spec: &ProgramSpec, now: Instant) -> State {
        State::Running {
            process,
            health: if self.health_paused {
                None
            } else {
                Check::health(spec, now)
            },
            watchdog_at: spec.watchdog.map(|limit| now + limit),
        }
    }

    /// The readiness check passed (READY=1, a TCP connect...). `None` unless starting; the
    /// steps drop a readiness attempt still under way.
    pub fn on_ready(&mut self, spec: &ProgramSpec, now: Instant) -> Option<Vec<Step>> {
        if !self.is_starting() {
            return None;
        }
        let State::Starting { process, check, .. } =
            std::mem::replace(&mut self.state, State::Stopped)
        else {
            return None;
        };
        self.state = self.ready_state(process, spec, now);
        Some(cancel(check).into_iter().collect())
    }

    /// Pauses or resumes its health check (a replace reload of its program begins or ends).
    /// A resumed check starts afresh, its first attempt one interval later.
    pub fn pause_health(&mut self, paused: bool, spec: &ProgramSpec, now: Instant) -> Vec<Step> {
        self.health_paused = paused;
        if let State::Running { health, .. } = &mut self.state {
            if paused {
                return cancel(health.take()).into_iter().collect();
            }
            if health.is_none() {
                *health = Check::health(spec, now);
            }
        }
        Vec::new()
    }

    /// Starts the instance unless it runs already. A manual start forgets past failures.
    pub fn start(&mut self, spec: &ProgramSpec) -> Vec<Step> {
        match &mut self.state {
            State::Spawning | State::Starting { .. } | State::Running { .. } => Vec::new(),
            State::Stopping { then, .. } => {
                *then = AfterStop::Start(Duration::ZERO);
                Vec::new()
            }
            _ => {
                self.recent.clear();
                self.delay = spec.backoff.initial;
                self.state = State::Spawning;
                vec![Step::Spawn]
            }
        }
    }

    pub fn on_spawned(&mut self, spec: &ProgramSpec, pid: i32, now: Instant) {
        self.started = Some(now);
        let process = Process::new(pid);
        self.state = match &spec.ready {
            None => self.ready_state(process, spec, now),
            Some(r) => State::Starting {
                process,
                ready_by: Some(now + r.timeout),
                ready_at: match r.check {
                    ReadyCheck::Delay(d) => Some(now + d),
                    _ => None,
                },
                check: Check::ready(&r.check, now),
            },
        };
    }

    /// The process could not be started: counts as a failed run (status 127).
    pub fn on_spawn_failed(
        &mut self,
        spec: &ProgramSpec,
        may_restart: bool,
        now: Instant,
    ) -> Vec<Step> {
        self.started = Some(now);
        self.state = State::Stopped;
        self.ended(
            spec,
            Ending::new(127, None, may_restart),
            None,
            now,
            Vec::new(),
        )
    }

    /// Its process exited with `code` (`signal` set when a signal killed it).
    /// `may_restart` is false while ginit shuts down.
    ///
    /// What the rest of its process group gets is decided from the state it was in: a
    /// stopping instance's group had its stop signal with the leader and keeps the stop's
    /// deadline (so a user's stop ends in SIGKILL for the stragglers, as it would for the
    /// leader); one SIGKILLed already gets SIGKILL again (it costs nothing and covers a leader
    /// that had left its group); any other exit (a crash, exit 0, a ready timeout) sends the
    /// stop signal now and SIGKILL at the stop timeout. The restart does not wait for any of it.
    pub fn on_exit(
        &mut self,
        spec: &ProgramSpec,
        code: i32,
        signal: Option<i32>,
        may_restart: bool,
        now: Instant,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        let then = match std::mem::replace(&mut self.state, State::Stopped) {
            State::Starting { process, check, .. }
            | State::Running {
                process,
                health: check,
                ..
            } => {
                steps.push(Step::Leftovers {
                    pgid: process.pid,
                    signal: Some(spec.stop_signal),
                    kill_at: Some(now + spec.stop_timeout),
                });
                steps.extend(cancel(check));
                None
            }
            State::Stopping {
                process,
                kill_at,
                then,
            } => {
                steps.push(Step::Leftovers {
                    pgid: process.pid,
                    signal: if kill_at.is_some() {
                        None
                    } else {
                        Some(libc::SIGKILL)
                    },
                    kill_at,
                });
                Some(then)
            }
            _ => None,
        };
        self.ended(
            spec,
            Ending::new(code, signal, may_restart),
            then,
            now,
            steps,
        )
    }

    /// What follows the end of a run: `then` if it was stopped on request, else the restart
    /// policy.
    fn ended(
        &mut self,
        spec: &ProgramSpec,
        how: Ending,
        then: Option<AfterStop>,
        now: Instant,
        mut steps: Vec<Step>,
    ) -> Vec<Step> {
        self.last_exit = Some(how.code);
        if let Some(then) = then {
            self.state = match then {
                AfterStop::Start(delay) if how.may_restart && delay.is_zero() => {
                    steps.push(Step::Spawn);
                    State::Spawning
                }
                AfterStop::Start(delay) if how.may_restart => State::Backoff { until: now + delay },
                AfterStop::Fail => State::Failed,
                _ => State::Stopped,
            };
            return steps;
        }
        let stopped_by_its_stop_signal = how.signal == Some(spec.stop_signal);
        let failed = !spec.succeeded(how.code) && !stopped_by_its_stop_signal;
        if spec.oneshot && spec.succeeded(how.code) {
            self.state = State::Done;
            return steps;
        }
        let restart = how.may_restart
            && match spec.restart {
                Restart::Always => true,
                Restart::OnFailure => failed,
                Restart::Never => false,
            };
        self.state = if !restart {
            if failed {
                State::Failed
            } else {
                State::Stopped
            }
        } else {
            match self.count_restart(spec, now) {
                Some(delay) => State::Backoff { until: now + delay },
                None => State::Failed,
            }
        };
        steps
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
        let expired = self
            .recent
            .iter()
            .take_while(|t| now.saturating_duration_since(**t) >= spec.restart_window)
            .count();
        self.recent.drain(..expired);
        if self.recent.len() >= spec.max_restarts as usize {
            return None;
        }
        self.recent.push(now);
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
    pub fn restart(&mut self, spec: &ProgramSpec, now: Instant) -> Vec<Step> {
        if matches!(self.state, State::Starting { .. } | State::Running { .. }) {
            let steps = self.stop(spec, now);
            self.then(AfterStop::Start(Duration::ZERO));
            steps
        } else {
            self.start(spec)
        }
    }

    /// A counted reload by strategy `restart`: stops it, then starts it again `delay` after
    /// it is down (the backoff [`Instance::count_restart`] returned).
    pub fn reload_after(&mut self, spec: &ProgramSpec, now: Instant, delay: Duration) -> Vec<Step> {
        let steps = self.stop(spec, now);
        self.then(AfterStop::Start(delay));
        steps
    }

    /// Too many restarts: stops it, and it is failed once down.
    pub fn give_up(&mut self, spec: &ProgramSpec, now: Instant) -> Vec<Step> {
        let steps = self.stop(spec, now);
        if self.is_stopping() {
            self.then(AfterStop::Fail);
        } else {
            self.state = State::Failed;
        }
        steps
    }

    /// What follows the stop under way (if one is).
    fn then(&mut self, next: AfterStop) {
        if let State::Stopping { then, .. } = &mut self.state {
            *then = next;
        }
    }

    /// Asks the instance to stop: its stop signal now (and SIGCONT), SIGKILL at the stop
    /// timeout. A pending restart is cancelled; an instance being given up stays failed.
    pub fn stop(&mut self, spec: &ProgramSpec, now: Instant) -> Vec<Step> {
        match std::mem::replace(&mut self.state, State::Stopped) {
            State::Starting { process, check, .. }
            | State::Running {
                process,
                health: check,
                ..
            } => {
                self.state = State::Stopping {
                    process,
                    kill_at: Some(now + spec.stop_timeout),
                    then: AfterStop::Nothing,
                };
                let mut steps = if spec.stop_command.is_empty() {
                    stop_signals(spec.stop_signal)
                } else {
                    vec![Step::StopCommand]
                };
                steps.extend(cancel(check));
                steps
            }
            State::Stopping {
                process,
                kill_at,
                then,
            } => {
                self.state = State::Stopping {
                    process,
                    kill_at,
                    then: keep_failing(then),
                };
                Vec::new()
            }
            // A restart waiting out its backoff is cancelled: it stays stopped.
            State::Backoff { .. } => Vec::new(),
            other => {
                self.state = other;
                Vec::new()
            }
        }
    }

    /// SIGKILL now (second shutdown signal, or the shutdown timeout). An instance being
    /// given up stays failed.
    pub fn kill(&mut self) -> Vec<Step> {
        let (process, then, check) = match std::mem::replace(&mut self.state, State::Stopped) {
            State::Starting { process, check, .. }
            | State::Running {
                process,
                health: check,
                ..
            } => (process, AfterStop::Nothing, check),
            State::Stopping { process, then, .. } => (process, keep_failing(then), None),
            State::Backoff { .. } => return Vec::new(),
            other => {
                self.state = other;
                return Vec::new();
            }
        };
        self.state = State::Stopping {
            process,
            kill_at: None,
            then,
        };
        let mut steps = vec![Step::Signal(libc::SIGKILL)];
        steps.extend(cancel(check));
        steps
    }

    /// Acts on an expired deadline: the readiness delay or timeout, the end of a backoff, a
    /// stop timeout.
    pub fn on_time(&mut self, spec: &ProgramSpec, now: Instant) -> Vec<Step> {
        let mut steps = Vec::new();
        if let State::Starting {
            ready_at: Some(t), ..
        } = self.state
            && now >= t
        {
            steps.extend(self.on_ready(spec, now).unwrap_or_default());
        }
        match &mut self.state {
            // Not ready in time: killed; its exit counts as a failed run.
            State::Starting {
                ready_by, ready_at, ..
            } if ready_by.is_some_and(|d| now >= d) => {
                *ready_by = None;
                *ready_at = None;
                steps.push(Step::Signal(libc::SIGKILL));
            }
            State::Backoff { until } if now >= *until => {
                self.state = State::Spawning;
                steps.push(Step::Spawn);
            }
            State::Stopping { kill_at, .. } if kill_at.is_some_and(|d| now >= d) => {
                *kill_at = None;
                steps.push(Step::Signal(libc::SIGKILL));
            }
            _ => {}
        }
        steps
    }
}

/// A requested stop or kill cancels what was to follow the stop under way, except giving up.
fn keep_failing(then: AfterStop) -> AfterStop {
    if then == AfterStop::Fail {
        then
    } else {
        AfterStop::Nothing
    }
}

/// How a run ended, and whether a restart may follow (not while ginit shuts down).
struct Ending {
    code: i32,
    signal: Option<i32>,
    may_restart: bool,
}

impl Ending {
    fn new(code: i32, signal: Option<i32>, may_restart: bool) -> Ending {
        Ending {
            code,
            signal,
            may_restart,
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
        let mut i = Instance::new(0, 1, spec);
        assert_eq!(i.start(spec), vec![Step::Spawn]);
        i.on_spawned(spec, 42, t);
        i
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn is_backoff(i: &Instance) -> bool {
        matches!(i.state, State::Backoff { .. })
    }

    /// What a stop sends: the stop signal, then SIGCONT.
    const TERM_CONT: [Step; 2] = [Step::Signal(libc::SIGTERM), Step::Signal(libc::SIGCONT)];

    /// The sweep of process group 42 (the pid `running` gives).
    fn sweep(signal: Option<i32>, kill_at: Option<Instant>) -> Step {
        Step::Leftovers {
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
            assert!(is_backoff(&i));
            assert_eq!(i.deadline(), Some(now + ms(want)));
            assert!(i.on_time(&s, now + ms(want - 1)).is_empty());
            now += ms(want);
            assert_eq!(i.on_time(&s, now), vec![Step::Spawn]);
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
            assert!(is_backoff(&i), "restart {k}");
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
        assert!(is_backoff(&i));
        let mut i = running(&s, t);
        i.on_exit(&s, 137, Some(libc::SIGKILL), true, t);
        assert!(is_backoff(&i));
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
        assert!(is_backoff(&i));
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
        assert!(is_backoff(&i));
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
        assert!(i.is_stopping());
        assert!(i.on_time(&s, t + Duration::from_secs(4)).is_empty());
        assert_eq!(
            i.on_time(&s, t + Duration::from_secs(5)),
            vec![Step::Signal(libc::SIGKILL)]
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
        assert!(i.on_time(&s, t + Duration::from_secs(1)).is_empty());
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
            [sweep(None, Some(t + s.stop_timeout)), Step::Spawn]
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
        assert_eq!(i.restart(&s, t), vec![Step::Spawn]);
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
        let mut i = Instance::new(0, 1, &s);
        i.on_spawned(&s, 7, t);
        assert!(i.is_starting() && !i.is_ready());
        assert_eq!(i.deadline(), Some(t + ms(1000)));
        assert!(i.on_ready(&s, t).is_some());
        assert!(i.is_ready() && i.deadline().is_none());
        assert!(i.on_ready(&s, t).is_none(), "once");
        // Not ready within the timeout: killed, and the exit is a failed run.
        let mut i = Instance::new(0, 1, &s);
        i.on_spawned(&s, 8, t);
        assert!(i.on_time(&s, t + ms(999)).is_empty());
        assert_eq!(
            i.on_time(&s, t + ms(1000)),
            vec![Step::Signal(libc::SIGKILL)]
        );
        i.on_exit(&s, 137, Some(libc::SIGKILL), true, t + ms(1001));
        assert!(is_backoff(&i));
        assert!(!i.is_ready());
        // A delay: ready when it has passed.
        s.ready = Some(ReadySpec {
            check: ReadyCheck::Delay(ms(200)),
            timeout: ms(1000),
        });
        let mut i = Instance::new(0, 1, &s);
        i.on_spawned(&s, 9, t);
        assert_eq!(i.deadline(), Some(t + ms(200)));
        assert!(i.on_time(&s, t + ms(200)).is_empty());
        assert!(i.is_ready() && i.deadline().is_none());
        // Without a check: ready at once.
        let plain = spec(Restart::Always);
        let mut i = Instance::new(0, 1, &plain);
        i.on_spawned(&plain, 10, t);
        assert!(i.is_ready());
    }

    #[test]
    fn kill_is_immediate() {
        let s = spec(Restart::Always);
        let t = Instant::now();
        let mut i = running(&s, t);
        i.stop(&s, t);
        assert_eq!(i.kill(), vec![Step::Signal(libc::SIGKILL)]);
        assert_eq!(i.deadline(), None);
    }

    #[test]
    fn a_failed_spawn_is_a_failed_run() {
        let s = spec(Restart::Always);
        let t = Instant::now();
        let mut i = Instance::new(0, 1, &s);
        i.start(&s);
        i.on_spawn_failed(&s, true, t);
        assert!(is_backoff(&i));
        assert_eq!(i.last_exit, Some(127));
    }

    #[test]
    fn sigcont_follows_every_stop_signal_but_sigkill() {
        assert_eq!(stop_signals(libc::SIGTERM), TERM_CONT);
        assert_eq!(
            stop_signals(libc::SIGINT),
            [Step::Signal(libc::SIGINT), Step::Signal(libc::SIGCONT)]
        );
        assert_eq!(stop_signals(libc::SIGKILL), [Step::Signal(libc::SIGKILL)]);
        assert_eq!(stop_signals(libc::SIGCONT), [Step::Signal(libc::SIGCONT)]);
        let s = spec(Restart::Always);
        let t = Instant::now();
        let mut i = running(&s, t);
        assert_eq!(i.kill(), [Step::Signal(libc::SIGKILL)]);
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
        let mut i = Instance::new(0, 1, &s);
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
        assert!(is_backoff(&i));
        assert_eq!(i.deadline(), Some(down + ms(200)));
        assert_eq!(i.on_time(&s, down + ms(200)), [Step::Spawn]);
        // No delay: at once, as a requested restart.
        let mut i = running(&s, t);
        i.reload_after(&s, t, Duration::ZERO);
        assert_eq!(
            i.on_exit(&s, 143, Some(libc::SIGTERM), true, down),
            [sweep(None, Some(t + s.stop_timeout)), Step::Spawn]
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
        assert!(i.is_stopping());
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
            [sweep(None, Some(t + s.stop_timeout)), Step::Spawn]
        );
    }

    #[test]
    fn a_replacement_carries_the_restart_history_on() {
        let s = spec(Restart::Always);
        let t = Instant::now();
        let mut old = running(&s, t);
        old.count_restart(&s, t);
        old.count_restart(&s, t);
        let mut new = Instance::new(0, 2, &s);
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

    #[test]
    fn a_check_attempt_under_way_is_dropped_with_its_state() {
        use crate::config::{HealthSpec, ReadySpec};
        let t = Instant::now();
        let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut s = spec(Restart::Always);
        s.ready = Some(ReadySpec {
            check: ReadyCheck::Tcp(addr),
            timeout: ms(1000),
        });
        s.health = Some(HealthSpec {
            check: ReadyCheck::Tcp(addr),
            interval: ms(500),
            timeout: ms(100),
            failures: 3,
        });
        s.watchdog = Some(ms(700));
        let mut i = Instance::new(0, 1, &s);
        i.on_spawned(&s, 7, t);
        // The readiness check tries at once.
        assert_eq!(i.check_deadline(), Some(t));
        let under_way = |i: &mut Instance, id| {
            if let State::Starting { check: Some(c), .. }
            | State::Running {
                health: Some(c), ..
            } = &mut i.state
            {
                c.attempt = crate::machine::checks::Attempt::Running { id, until: t };
            }
        };
        under_way(&mut i, 5);
        // READY=1 while an attempt runs: the attempt goes, the health check and the watchdog
        // start counting.
        assert_eq!(i.on_ready(&s, t), Some(vec![Step::Cancel(5)]));
        assert_eq!(i.check_deadline(), Some(t + ms(500)));
        under_way(&mut i, 6);
        assert_eq!(i.pause_health(true, &s, t), [Step::Cancel(6)]);
        assert_eq!(
            i.check_deadline(),
            Some(t + ms(700)),
            "the watchdog still runs"
        );
        assert!(i.pause_health(false, &s, t + ms(100)).is_empty());
        assert_eq!(
            i.check_deadline(),
            Some(t + ms(600)),
            "afresh, one interval later"
        );
        under_way(&mut i, 7);
        assert_eq!(
            i.stop(&s, t),
            [
                Step::Signal(libc::SIGTERM),
                Step::Signal(libc::SIGCONT),
                Step::Cancel(7)
            ]
        );
        assert_eq!(i.check_deadline(), None);
        assert_eq!(i.word(&s), "stopping");
    }
}
