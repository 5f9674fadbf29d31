//! Hooks: `on_exit` after every exit of an instance, `on_failed` when a program fails. This
//! file decides which hook runs, when, with which variables, and what happens to one that is
//! due while another runs; the edge only starts, kills and reaps them ([`Effect::RunHook`],
//! [`Effect::KillHook`], [`Input::HookEnded`]). It must never let a hook change supervision:
//! no restart waits for one, no state or exit status depends on how one ended.
//!
//! Rules:
//! - `on_exit` runs after every exit of an instance (a run that could not start counts, with
//!   status 127), with `GINIT_EXIT_STATUS` (or `GINIT_EXIT_SIGNAL`, the signal's name),
//!   `GINIT_RESTARTS` (the instance's restarts so far, the one just scheduled included) and
//!   `GINIT_NEXT`, what the supervisor does next with the instance: `restart` (now or after
//!   its backoff, a requested restart included), `failed`, `stopped` (a requested stop, a
//!   shutdown, the old instance of a `replace`, an exit its restart policy does not restart)
//!   or `done` (a oneshot that exited 0);
//! - `on_failed` runs when a serving instance is failed (given up after `max_restarts`, or a
//!   failure its restart policy does not restart) and when a critical program ends the run
//!   with a non-zero status; it follows that exit's `on_exit`, with the same variables;
//! - at most one hook runs per program. One due while another runs is skipped and counted
//!   (the count is logged when the next one starts), except `on_failed`, which waits for the
//!   running one to end: it is the one a user must hear of, and it is due at most once per
//!   failure, so the wait is one slot, never a queue;
//! - each is killed (its process group) at `hook_timeout`; a shutdown waits for running hooks
//!   (those of instances it stops included, `GINIT_NEXT=stopped`) before it clears the
//!   namespace, and kills them at `shutdown.timeout` or a second request, like the programs.
//!   Nothing starts once the shutdown is past stopping programs;
//! - a hook's end, however it ended, is logged (a failure as a warning) and changes nothing
//!   else. With no hook running there is no deadline, so no wake-up.

use std::rc::Rc;
use std::time::Instant;

use log::{Level, info, log, warn};

use crate::config::ProgramSpec;

use super::instance::{Role, State};
use super::shutdown::Phase;
use super::{Effect, Exited, Machine};

/// What a hook is told, as `GINIT_*` variables (the edge writes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookVars {
    /// How the instance's process ended (status 127: it could not start):
    /// `GINIT_EXIT_SIGNAL` when a signal killed it, else `GINIT_EXIT_STATUS`.
    pub exit: Exited,
    /// `GINIT_RESTARTS`.
    pub restarts: u32,
    /// `GINIT_NEXT`.
    pub next: &'static str,
}

/// The hooks of one program that has one running (or skips to report).
struct Slot {
    program: String,
    /// The hook under way: its serial (its effects and its end carry it), `on_failed` or
    /// not, and SIGKILL at `kill_at` (`None`: sent already).
    running: Option<(u64, bool, Option<Instant>)>,
    /// An `on_failed` due while another hook ran.
    waiting: Option<Due>,
    /// Hooks skipped since the last one started.
    skipped: u32,
}

/// A hook to run: `on_failed` (else `on_exit`) of instance `index` of `spec`.
struct Due {
    spec: Rc<ProgramSpec>,
    index: u32,
    failed: bool,
    vars: HookVars,
}

/// The hooks of every program that has one running, by program name (a program removed by a
/// config reload keeps its slot until its hook ends).
#[derive(Default)]
pub(super) struct Hooks {
    slots: Vec<Slot>,
}

impl Hooks {
    /// Some hook runs (a shutdown waits for it).
    pub fn busy(&self) -> bool {
        self.slots.iter().any(|s| s.running.is_some())
    }

    /// The earliest `hook_timeout` to enforce.
    pub fn deadline(&self) -> Option<Instant> {
        self.slots.iter().filter_map(|s| s.running?.2).min()
    }
}

/// The hook's key in the config, for log lines.
fn key(failed: bool) -> &'static str {
    if failed { "on_failed" } else { "on_exit" }
}

impl Machine {
    /// Instance `i` of program `p` has exited (`exit`; `None`: it could not start) and has
    /// its new state; `ended_run`: it is critical and has just ended the run. Runs its
    /// program's `on_exit`, and `on_failed` if this is a failure of the program.
    pub(super) fn exit_hooks(
        &mut self,
        p: usize,
        i: usize,
        exit: Option<&Exited>,
        ended_run: bool,
        now: Instant,
    ) {
        let Some(program) = self.programs.get(p) else {
            return;
        };
        let Some(inst) = program.instances.get(i) else {
            return;
        };
        let spec = program.spec.clone();
        let next = match inst.state {
            State::Spawning | State::Backoff { .. } => "restart",
            State::Failed => "failed",
            State::Done => "done",
            _ => "stopped",
        };
        let exit = exit.copied().unwrap_or(Exited {
            pid: 0,
            code: 127,
            signal: None,
        });
        let failed =
            (next == "failed" && inst.role == Role::Serving) || (ended_run && exit.code != 0);
        let vars = HookVars {
            exit,
            restarts: inst.restarts,
            next,
        };
        let index = inst.index;
        for (run, failed) in [
            (!spec.hooks.on_exit.is_empty(), false),
            (failed && !spec.hooks.on_failed.is_empty(), true),
        ] {
            if run {
                let spec = spec.clone();
                self.run_hook(
                    Due {
                        spec,
                        index,
                        failed,
                        vars,
                    },
                    now,
                );
            }
        }
    }

    /// Starts `due` unless its program has a hook running: then it is skipped and counted (an
    /// `on_failed` waits instead, in its one slot). Nothing starts once the shutdown is past
    /// stopping programs.
    fn run_hook(&mut self, due: Due, now: Instant) {
        // Hook runs, skips and failures are logged, not published: the exit or failure that
        // called the hook is the event (SPEC 8's list), and a hook never changes a state.
        let name = &due.spec.name;
        let k = match self.hooks.slots.iter().position(|s| s.program == *name) {
            Some(k) => k,
            None => {
                self.hooks.slots.push(Slot {
                    program: name.clone(),
                    running: None,
                    waiting: None,
                    skipped: 0,
                });
                self.hooks.slots.len() - 1
            }
        };
        let Some(slot) = self.hooks.slots.get_mut(k) else {
            return;
        };
        let late = !matches!(
            self.phase,
            Phase::Running | Phase::Delaying { .. } | Phase::Stopping { .. }
        );
        if slot.running.is_some() || late {
            if due.failed && slot.waiting.is_none() && !late {
                slot.waiting = Some(due);
            } else {
                slot.skipped = slot.skipped.saturating_add(1);
            }
            return;
        }
        let skipped = std::mem::take(&mut slot.skipped);
        if skipped > 0 {
            let what = key(due.failed);
            info!("{name}: running its {what} hook ({skipped} skipped while the last one ran)");
        }
        self.serial += 1;
        slot.running = Some((self.serial, due.failed, Some(now + due.spec.hooks.timeout)));
        self.out.push(Effect::RunHook {
            hook: self.serial,
            spec: due.spec,
            index: due.index,
            failed: due.failed,
            vars: due.vars,
        });
    }

    /// Hook `hook` has ended: logged (a failure as a warning), and the program's waiting
    /// `on_failed` runs. A shutdown that waited for it moves on.
    pub(super) fn on_hook_ended(&mut self, hook: u64, exit: Exited, now: Instant) {
        let Some(slot) = self
            .hooks
            .slots
            .iter_mut()
            .find(|s| s.running.is_some_and(|r| r.0 == hook))
        else {
            return;
        };
        let what = key(slot.running.take().is_some_and(|r| r.1));
        let level = if exit.code == 0 {
            Level::Debug
        } else {
            Level::Warn
        };
        log!(
            level,
            "{}: its {what} hook {}",
            slot.program,
            exit.describe()
        );
        let waiting = slot.waiting.take();
        self.hooks
            .slots
            .retain(|s| s.running.is_some() || s.skipped > 0);
        if let Some(due) = waiting {
            self.run_hook(due, now);
        }
        self.progress(now);
    }

    /// SIGKILL for the hooks whose `hook_timeout` has passed (`all`: for every hook, and no
    /// waiting one will run: the shutdown is killing everything).
    pub(super) fn kill_hooks(&mut self, all: bool, now: Instant) {
        for slot in &mut self.hooks.slots {
            if all {
                slot.waiting = None;
            }
            let Some((hook, failed, kill_at)) = &mut slot.running else {
                continue;
            };
            if kill_at.is_some_and(|t| all || now >= t) {
                *kill_at = None;
                if !all {
                    let what = key(*failed);
                    warn!(
                        "{}: its {what} hook ran past its hook_timeout: killing it",
                        slot.program
                    );
                }
                self.out.push(Effect::KillHook { hook: *hook });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Input;
    use super::super::testing::*;
    use crate::config::signals;
    use std::time::{Duration, Instant};

    const HOOKS: &str = "on_exit: [/bin/exit-hook]\n    on_failed: /bin/failed-hook --now\n";

    /// The variable `key` as the edge would set it (empty: not set).
    fn var(run: &HookRun, key: &str) -> String {
        let v = run.vars;
        let value = match key {
            "GINIT_EXIT_SIGNAL" => v.exit.signal.map(|s| signals::name(s).to_string()),
            "GINIT_EXIT_STATUS" if v.exit.signal.is_none() => Some(v.exit.code.to_string()),
            "GINIT_RESTARTS" => Some(v.restarts.to_string()),
            "GINIT_NEXT" => Some(v.next.to_string()),
            _ => None,
        };
        value.unwrap_or_default()
    }

    fn end(e: &mut Edge, hook: u64, code: i32, now: Instant) {
        let exit = Exited {
            pid: 0,
            code,
            signal: None,
        };
        e.feed(Input::HookEnded { hook, exit }, now);
    }

    #[test]
    fn a_crash_runs_on_exit_with_restart_and_its_status() {
        let mut e = edge(&format!("programs:\n  web:\n    command: x\n    {HOOKS}"));
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let pid = e.pid("web");
        e.reap(&[exit(pid, 3)], true, t);
        let [run] = &e.hooks_run[..] else {
            panic!("{:?}", e.hooks_run)
        };
        assert_eq!(run.program, "web");
        assert_eq!(run.argv, ["/bin/exit-hook"]);
        assert_eq!(var(run, "GINIT_EXIT_STATUS"), "3");
        assert_eq!(var(run, "GINIT_EXIT_SIGNAL"), "");
        assert_eq!(var(run, "GINIT_NEXT"), "restart");
        assert_eq!(var(run, "GINIT_RESTARTS"), "1");
        // Its timeout is the only deadline besides the backoff; killed then, and supervision
        // goes on: the restart happened at its own time regardless.
        let hook = run.hook;
        e.feed(Input::Time, t + Duration::from_millis(100));
        assert_eq!(e.spawned.len(), 2);
        assert_eq!(e.m.deadline(), Some(t + Duration::from_secs(10)));
        e.feed(Input::Time, t + Duration::from_secs(10));
        assert_eq!(e.hooks_killed, [hook]);
        // Killed once; its end clears it and nothing is due any more.
        e.feed(Input::Time, t + Duration::from_secs(11));
        assert_eq!(e.hooks_killed, [hook]);
        e.feed(
            Input::HookEnded {
                hook,
                exit: killed(0, libc::SIGKILL),
            },
            t + Duration::from_secs(11),
        );
        assert_eq!(e.m.deadline(), None);
        assert_eq!(e.spawned.len(), 2);
    }

    #[test]
    fn giving_up_runs_on_exit_with_failed_then_on_failed() {
        let mut e = edge(&format!(
            "programs:\n  web:\n    command: x\n    max_restarts: 0\n    {HOOKS}"
        ));
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let pid = e.pid("web");
        e.reap(&[killed(pid, libc::SIGSEGV)], true, t);
        // on_failed waits for on_exit, which runs first.
        let [run] = &e.hooks_run[..] else {
            panic!("{:?}", e.hooks_run)
        };
        assert_eq!(run.argv, ["/bin/exit-hook"]);
        assert_eq!(var(run, "GINIT_NEXT"), "failed");
        assert_eq!(var(run, "GINIT_EXIT_SIGNAL"), "SIGSEGV");
        assert_eq!(var(run, "GINIT_EXIT_STATUS"), "");
        let hook = run.hook;
        end(&mut e, hook, 1, t);
        let [_, failed] = &e.hooks_run[..] else {
            panic!("{:?}", e.hooks_run)
        };
        assert_eq!(failed.argv, ["/bin/failed-hook", "--now"]);
        assert_eq!(var(failed, "GINIT_NEXT"), "failed");
        assert_eq!(var(failed, "GINIT_RESTARTS"), "0");
    }

    #[test]
    fn a_user_stop_is_stopped_and_a_oneshot_is_done() {
        let mut e = edge(&format!(
            "programs:\n  web:\n    command: x\n    {HOOKS}  job:\n    command: x\n    oneshot: true\n    {HOOKS}"
        ));
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let (web, job) = (e.pid("web"), e.pid("job"));
        e.ask(
            crate::control::protocol::Request::Stop {
                programs: vec!["web".into()],
            },
            t,
        );
        e.reap(&[killed(web, libc::SIGTERM), exit(job, 0)], true, t);
        let next: Vec<(&str, String)> = e
            .hooks_run
            .iter()
            .map(|r| (r.program.as_str(), var(r, "GINIT_NEXT")))
            .collect();
        assert_eq!(
            next,
            [("web", "stopped".to_string()), ("job", "done".to_string())]
        );
        assert!(e.hooks_run.iter().all(|r| r.argv == ["/bin/exit-hook"]));
    }

    #[test]
    fn exits_while_a_hook_runs_are_skipped_and_counted_never_queued() {
        let mut e = edge(&format!(
            "programs:\n  web:\n    command: x\n    instances: 3\n    backoff: {{initial: 0s, max: 0s}}\n    max_restarts: 100\n    {HOOKS}"
        ));
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let pids: Vec<i32> = e.spawned.iter().map(|s| s.2).collect();
        let exits: Vec<Exited> = pids.iter().map(|&p| exit(p, 1)).collect();
        e.reap(&exits, true, t);
        assert_eq!(e.hooks_run.len(), 1);
        assert_eq!(e.m.hooks.slots[0].skipped, 2);
        // The restarts went on regardless.
        e.feed(Input::Time, t);
        assert_eq!(e.spawned.len(), 6);
        let first = e.hooks_run[0].hook;
        end(&mut e, first, 0, t);
        // Nothing was queued: the next hook runs at the next exit only.
        assert_eq!(e.hooks_run.len(), 1);
        let pid = e.pid("web");
        e.reap(&[exit(pid, 1)], true, t);
        assert_eq!(e.hooks_run.len(), 2);
        // Each with its instance: the first of the three, then the one that exited last.
        assert_eq!((e.hooks_run[0].index, e.hooks_run[1].index), (0, 2));
        assert_eq!(e.m.hooks.slots.len(), 1);
        assert_eq!(e.m.hooks.slots[0].skipped, 0);
    }

    #[test]
    fn a_shutdown_runs_the_stop_hooks_waits_for_them_and_kills_them_at_its_timeout() {
        let mut e = edge(&format!(
            "programs:\n  web:\n    command: x\n    hook_timeout: 1h\n    {HOOKS}shutdown: {{timeout: 5s}}\n"
        ));
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let pid = e.pid("web");
        e.feed(Input::Signal(libc::SIGTERM), t);
        e.reap(&[killed(pid, libc::SIGTERM)], true, t);
        let [run] = &e.hooks_run[..] else {
            panic!("{:?}", e.hooks_run)
        };
        assert_eq!(var(run, "GINIT_NEXT"), "stopped");
        let hook = run.hook;
        // Every program is down, yet the namespace is not cleared while the hook runs.
        assert!(e.leftovers.is_empty());
        assert_eq!(e.m.deadline(), Some(t + Duration::from_secs(5)));
        e.feed(Input::Time, t + Duration::from_secs(5));
        assert_eq!(e.hooks_killed, [hook]);
        // A hook never decides ginit's exit status.
        e.feed(
            Input::HookEnded {
                hook,
                exit: killed(0, libc::SIGKILL),
            },
            t + Duration::from_secs(5),
        );
        e.reap(&[], false, t + Duration::from_secs(5));
        assert_eq!(e.exit, Some(0));
    }

    #[test]
    fn a_critical_program_that_ends_the_run_runs_on_failed_before_the_shutdown_ends() {
        let mut e = edge(&format!(
            "programs:\n  core:\n    command: x\n    critical: true\n    restart: never\n    {HOOKS}"
        ));
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let pid = e.pid("core");
        e.reap(&[exit(pid, 4)], true, t);
        assert_eq!(e.hooks_run.len(), 1);
        let hook = e.hooks_run[0].hook;
        end(&mut e, hook, 0, t);
        let [_, failed] = &e.hooks_run[..] else {
            panic!("{:?}", e.hooks_run)
        };
        assert_eq!(failed.argv[0], "/bin/failed-hook");
        assert_eq!(var(failed, "GINIT_EXIT_STATUS"), "4");
        assert_eq!(e.exit, None);
        let hook = failed.hook;
        // It could not start: status 127, and the shutdown goes on all the same.
        end(&mut e, hook, 127, t);
        e.reap(&[], false, t);
        assert_eq!(e.exit, Some(4));
    }

    #[test]
    fn without_hooks_an_exit_runs_none() {
        let mut e = edge("programs:\n  web: {command: x}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let pid = e.pid("web");
        e.reap(&[exit(pid, 1)], true, t);
        assert!(e.hooks_run.is_empty());
        assert!(!e.m.hooks.busy());
    }
}
