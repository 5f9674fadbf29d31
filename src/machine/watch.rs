//! File watches: the config that reloads itself when its files change (`config: {watch:
//! true}`), and programs reloaded when files under their `watch.paths` change. The edge
//! holds the inotify fd and says where a change was seen ([`Input::FilesChanged`]); what to
//! watch goes out as [`Effect::WatchFiles`], at the start and after every config reload
//! (applied or not: the files an `include` names may have come or gone).
//!
//! Rules:
//! - a burst of changes is one reload, once the files have been quiet for the debounce
//!   (`config.debounce`, `watch.debounce`): each change moves the deadline on;
//! - a change of the config's files reloads it exactly as SIGHUP does: an invalid file
//!   changes nothing and says why (log, `status`, a `config_rejected` event);
//! - a change under a program's paths reloads it by its strategy (`replace` with sockets: no
//!   request is lost), logged and published (`files_changed`) with the path, and only while
//!   it runs (a stopped program stays stopped);
//! - a program that changes its own watched files would be reloaded forever: after
//!   [`LOOP_RELOADS`] reloads by its watch within [`LOOP_WINDOW`], its watch is paused and
//!   that is said once; `ginit start`, `restart` or `reload` of it, or a config reload, turn
//!   it back on;
//! - nothing is reloaded by a watch during a shutdown, and a watch has no deadline then.

use std::time::{Duration, Instant};

use log::{info, warn};

use crate::config::units::format_duration;
use crate::config::{FileWatch, ReloadStrategy};

use super::reload::{Cause, Control, strategy};
use super::shutdown::Phase;
use super::{Effect, Machine, What};

/// Reloads by watch within [`LOOP_WINDOW`] that make a loop.
pub const LOOP_RELOADS: usize = 5;
pub const LOOP_WINDOW: Duration = Duration::from_secs(60);

/// A program's watch: the reload it waits to make, and the reloads it made.
#[derive(Clone, Debug, Default)]
pub(super) struct WatchState {
    /// When to reload, and the path whose change asked for it.
    pub due: Option<(Instant, String)>,
    /// When the last reloads by watch were made (at most [`LOOP_RELOADS`]).
    pub recent: Vec<Instant>,
    /// Paused: its files kept changing after each reload.
    pub paused: bool,
}

impl Machine {
    /// What to watch, for the edge: the config's files (the main file is the edge's, the
    /// `include` patterns come here) when `config.watch` is on, and each program's paths.
    pub(super) fn watch_files(&mut self) {
        let config = self.config.watch.map(|_| self.config.includes.clone());
        let programs: Vec<(String, FileWatch)> = self
            .config
            .programs
            .iter()
            .filter_map(|p| p.watch.clone().map(|w| (p.name.clone(), w)))
            .collect();
        self.out.push(Effect::WatchFiles { config, programs });
    }

    /// Files changed: `program`'s watched paths, or the config's (`None`), at `path`.
    pub(super) fn on_files_changed(&mut self, program: Option<&str>, path: &str, now: Instant) {
        if self.phase != Phase::Running {
            return;
        }
        let Some(name) = program else {
            if let Some(debounce) = self.config.watch {
                self.config_due = Some((now + debounce, path.to_string()));
            }
            return;
        };
        let Some(program) = self
            .program_index(name)
            .and_then(|p| self.programs.get_mut(p))
        else {
            return;
        };
        let Some(w) = &program.spec.watch else {
            return;
        };
        if !program.watch.paused {
            program.watch.due = Some((now + w.debounce, path.to_string()));
        }
    }

    /// The earliest watch deadline (none during a shutdown).
    pub(super) fn watch_deadline(&self) -> Option<Instant> {
        if self.phase != Phase::Running {
            return None;
        }
        let programs = self.programs.iter().filter_map(|p| p.watch.due.as_ref());
        self.config_due.iter().chain(programs).map(|d| d.0).min()
    }

    /// Reloads what has been quiet long enough.
    pub(super) fn watch_time(&mut self, now: Instant) {
        if self.phase != Phase::Running {
            return;
        }
        if let Some((_, path)) = self.config_due.take_if(|d| now >= d.0) {
            info!("{path} changed: reloading the config");
            self.reload_config(None);
        }
        for p in 0..self.programs.len() {
            let Some(program) = self.programs.get_mut(p) else {
                break;
            };
            let Some((_, path)) = program.watch.due.take_if(|d| now >= d.0) else {
                continue;
            };
            let debounce = program
                .spec
                .watch
                .as_ref()
                .map_or(Duration::ZERO, |w| w.debounce);
            let name = program.spec.name.clone();
            if !program.instances.iter().any(|i| i.is_up()) {
                info!("{name}: {path} changed; not reloading it, as it does not run");
                continue;
            }
            if program.replacing.is_some() {
                // A replace under way: once it is done, the change is looked at again.
                program.watch.due = Some((now + debounce, path));
                continue;
            }
            let recent = &mut program.watch.recent;
            recent.retain(|t| now.saturating_duration_since(*t) < LOOP_WINDOW);
            if recent.len() >= LOOP_RELOADS {
                program.watch.paused = true;
                warn!(
                    "{name}: its watched files changed again ({path}) after {LOOP_RELOADS} \
                     reloads by its watch within {}: it may write into its own watched paths. \
                     Reloads on change are paused until `ginit reload {name}` or a config reload",
                    format_duration(LOOP_WINDOW)
                );
                continue;
            }
            recent.push(now);
            let how = strategy(&program.spec, Cause::Request);
            info!("{name}: {path} changed: reloading it");
            let why = "as its files changed";
            let what = What::FilesChanged { path };
            self.publish_program(&name, what);
            let names = [name.clone()];
            match how {
                ReloadStrategy::Signal(sig) => {
                    self.signal_program(&name, sig);
                }
                ReloadStrategy::Replace => {
                    self.control_programs_for(&names, Control::Replace, why, now)
                }
                ReloadStrategy::Restart => {
                    self.control_programs_for(&names, Control::Restart, why, now)
                }
            }
        }
    }

    /// A request or a config reload turns program `p`'s paused watch back on.
    pub(super) fn resume_watch(&mut self, p: usize) {
        if let Some(program) = self.programs.get_mut(p)
            && program.watch.paused
        {
            program.watch.paused = false;
            program.watch.recent.clear();
            info!("{}: reloads on change are on again", program.spec.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Input;
    use super::super::testing::*;
    use super::*;
    use crate::control::protocol::Request;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn changed(program: Option<&str>, path: &str) -> Input {
        Input::FilesChanged {
            program: program.map(str::to_string),
            path: path.to_string(),
        }
    }

    #[test]
    fn a_burst_of_config_changes_is_one_reload_once_quiet() {
        let text =
            "config: {watch: true, debounce: 500ms}\ninclude: []\nprograms:\n  a: {command: x}\n";
        let mut e = edge(text);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        assert_eq!(e.watching, [(Some(Vec::new()), Vec::new())]);
        for k in 0..3 {
            e.feed(changed(None, "/etc/ginit.yaml"), t + ms(200 * k));
        }
        assert_eq!(
            e.m.deadline(),
            Some(t + ms(900)),
            "quiet for 500ms after the last"
        );
        e.next_config = Some(Ok(config(text)));
        e.feed(Input::Time, t + ms(900));
        assert_eq!(e.loads, 1);
        assert_eq!(e.m.deadline(), None);
        // After the reload the edge is told again what to watch.
        assert_eq!(e.watching.len(), 2);
        // Without `config.watch`, a change is nothing.
        let mut e = edge("programs:\n  a: {command: x}\n");
        e.feed(Input::Begin, t);
        assert_eq!(e.watching, [(None, Vec::new())]);
        e.feed(changed(None, "/etc/ginit.yaml"), t);
        assert_eq!(e.m.deadline(), None);
    }

    #[test]
    fn a_program_is_reloaded_by_its_strategy_and_a_loop_is_stopped() {
        let mut e = edge(
            "programs:\n  web:\n    command: x\n    watch: {paths: [/app], debounce: 1s}\n    restart: always\n    backoff: {initial: 0s}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        assert_eq!(e.watching, [(None, vec!["web".to_string()])]);
        let mut at = t;
        for round in 0..LOOP_RELOADS {
            let pid = e.pid("web");
            e.feed(changed(Some("web"), "/app/server"), at);
            e.feed(Input::Time, at + ms(1000));
            assert!(e.signals.contains(&(pid, libc::SIGTERM)), "round {round}");
            e.reap(&[killed(pid, libc::SIGTERM)], true, at + ms(1100));
            assert_ne!(e.pid("web"), pid, "restarted");
            at += ms(2000);
        }
        let published = e.published("files_changed");
        assert_eq!(published.len(), LOOP_RELOADS);
        assert_eq!(published[0], "web FilesChanged { path: \"/app/server\" }");
        // The sixth change within a minute: paused, no reload.
        let signals = e.signals.len();
        e.feed(changed(Some("web"), "/app/server"), at);
        e.feed(Input::Time, at + ms(1000));
        assert_eq!(e.signals.len(), signals);
        e.feed(changed(Some("web"), "/app/server"), at + ms(1500));
        assert_eq!(e.m.deadline(), None, "a paused watch waits for nothing");
        // `ginit reload web` turns it back on.
        e.ask(
            Request::Reload {
                programs: vec!["web".into()],
            },
            at + ms(2000),
        );
        e.reap(&[killed(e.pid("web"), libc::SIGTERM)], true, at + ms(2100));
        e.feed(changed(Some("web"), "/app/server"), at + ms(3000));
        assert_eq!(e.m.deadline(), Some(at + ms(4000)));
    }

    #[test]
    fn a_stopped_program_stays_stopped_and_a_shutdown_ends_the_watches() {
        let mut e = edge(
            "programs:\n  web:\n    command: x\n    watch: {paths: [/app]}\n  other: {command: x}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        e.ask(
            Request::Stop {
                programs: vec!["web".into()],
            },
            t,
        );
        e.reap(&[killed(e.pid("web"), libc::SIGTERM)], true, t);
        let started = e.spawned.len();
        e.feed(changed(Some("web"), "/app/x"), t);
        e.feed(Input::Time, t + ms(1000));
        assert_eq!(e.spawned.len(), started);
        e.feed(changed(Some("other"), "/x"), t);
        e.feed(changed(Some("web"), "/app/x"), t + ms(1100));
        e.feed(Input::Signal(libc::SIGTERM), t + ms(1200));
        assert_eq!(e.m.watch_deadline(), None);
        e.feed(Input::Time, t + ms(2200));
        assert_eq!(e.spawned.len(), started);
    }
}
