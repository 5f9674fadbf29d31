//! What ginit does when it is asked something: each signal it receives, each control request,
//! and the rules of a config reload. Read this file for "what does ginit do on SIGHUP" or
//! "on `ginit reload web`".
//!
//! Signals (supervisor mode; single-program mode forwards them, see `single.rs`):
//! - SIGTERM, SIGINT, SIGQUIT: a graceful shutdown (`shutdown.rs`); a second one during it
//!   skips to SIGKILL for everything;
//! - SIGHUP: reload the config, as `ginit reload-config` does (below);
//! - SIGUSR1: reopen every log file (after an external rotation);
//! - SIGPIPE: nothing (a reader of ginit's output went away);
//! - SIGCHLD never gets here: it is the edge's cue to reap;
//! - any other: forwarded to `main` when a PROGRAM was given after `--`, else ignored.
//!
//! Control requests (the wire format is in `control::protocol`):
//! - `status`: every instance with its state, readiness, uptime, restarts, CPU and memory of
//!   its process tree (sampled now, CPU since the previous `status`), and the last config
//!   reload's error;
//! - `ready`: ok when every instance is ready and no shutdown is under way, else which not;
//! - `start`, `stop`, `restart NAME...` (`all`: every program): answered once done (started
//!   ones ready, stopped ones down), or with what went wrong; refused during a shutdown, and
//!   start/restart while a `replace` reload of the program is under way;
//! - `reload NAME...`: each program by its strategy (`reload.rs`): `signal` sends it and
//!   answers at once; `restart` answers when the program runs again; `replace` answers when
//!   every instance was replaced, or with why the reload failed and was rolled back;
//! - `signal SIG NAME...`: sends SIG to each named program's instances;
//! - `reload-config`: re-reads the file; refused during a shutdown;
//! - `shutdown`: as SIGTERM;
//! - `events`, `logs`: the two streams (`observe.rs`).
//!
//! Unknown program names are an error naming them, and nothing is done.
//!
//! Config reload rules (SIGHUP, `reload-config`): the edge reads and validates the file; a file
//! that does not validate, or one whose `sockets` differ (they are bound once, when ginit
//! starts), or whose `metrics` differ (its listener is bound once too), changes nothing, and
//! its error is logged and shown by `status` until a reload succeeds. `main` (the PROGRAM
//! after `--`) is added to the new config as to the first. A valid config is applied as a
//! difference (`reload.rs`).

use crate::config::signals;
use std::time::Instant;

use log::{debug, error, info, warn};

use crate::config::{Config, ReloadStrategy};
use crate::control::protocol::{InstanceStatus, Request, Response, Status};

use super::monitor::{Sample, cpu_percent};
use super::programs::counts_ready;
use super::reload::{Cause, Control, strategy};
use super::{ConnId, Effect, Machine, Pending, Sampling, What};

impl Machine {
    /// A signal ginit received (see the module header).
    pub(super) fn on_signal(&mut self, sig: i32, now: Instant) {
        match sig {
            libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => {
                let why = format!("received {}", signals::name(sig));
                info!("{why}");
                self.request_shutdown(why, now);
            }
            libc::SIGHUP => self.reload_config(None),
            libc::SIGUSR1 => self.out.push(Effect::ReopenLogs),
            libc::SIGPIPE | libc::SIGCHLD => {}
            _ if self.main.is_some() => {
                debug!("forwarding {} to main", signals::name(sig));
                self.signal_program("main", sig);
            }
            _ => debug!("ignoring {}", signals::name(sig)),
        }
    }

    /// Carries out one control request; some are answered later (see the module header).
    pub(super) fn on_request(&mut self, conn: ConnId, request: Request, now: Instant) {
        debug!("control request: {}", request.to_line().trim_end());
        let response = match request {
            Request::Status {} => return self.ask_status(conn),
            Request::Ready {} => self.readiness(),
            Request::ReloadConfig {} => return self.reload_config(Some(conn)),
            Request::Shutdown {} => {
                let why = "shutdown requested over the control socket";
                info!("{why}");
                self.request_shutdown(why.to_string(), now);
                Response::ok("shutting down")
            }
            Request::Signal { signal, programs } => self.signal_request(&signal, &programs),
            Request::Start { programs } => {
                return self.control(conn, &programs, Control::Start, now);
            }
            Request::Stop { programs } => return self.control(conn, &programs, Control::Stop, now),
            Request::Restart { programs } => {
                return self.control(conn, &programs, Control::Restart, now);
            }
            Request::Reload { programs } => return self.reload_request(conn, &programs, now),
            Request::Events { json } => return self.subscribe_events(conn, json),
            Request::Logs {
                programs,
                lines,
                follow,
                json,
            } => return self.answer_logs(conn, &programs, lines, follow, json),
        };
        self.respond(conn, response);
    }

    /// start/stop/restart/replace, answered once settled.
    fn control(&mut self, conn: ConnId, names: &[String], what: Control, now: Instant) {
        if self.is_shutting_down() {
            return self.respond(conn, Response::error("ginit is shutting down"));
        }
        let names = match self.resolve_names(names) {
            Ok(names) => names,
            Err(e) => return self.respond(conn, Response::error(e)),
        };
        let busy: Vec<&str> = names
            .iter()
            .filter(|n| self.is_replacing(n))
            .map(String::as_str)
            .collect();
        if matches!(what, Control::Start | Control::Restart) && !busy.is_empty() {
            let e = format!(
                "a reload of {} is under way; try again once it has finished",
                busy.join(", ")
            );
            return self.respond(conn, Response::error(e));
        }
        self.control_programs(&names, what, now);
        self.pending.push(Pending { conn, names, what });
    }

    /// `reload NAME...`: each program by its strategy.
    fn reload_request(&mut self, conn: ConnId, names: &[String], now: Instant) {
        let names = match self.resolve_names(names) {
            Ok(names) => names,
            Err(e) => return self.respond(conn, Response::error(e)),
        };
        let mut restart = Vec::new();
        let mut replace = Vec::new();
        let mut signalled = Vec::new();
        for name in names {
            let Some(program) = self.program_index(&name).and_then(|p| self.programs.get(p)) else {
                continue;
            };
            match strategy(&program.spec, Cause::Request) {
                ReloadStrategy::Signal(sig) => {
                    if let Some(p) = self.program_index(&name) {
                        self.resume_watch(p);
                    }
                    self.signal_program(&name, sig);
                    signalled.push(format!("sent {} to {name}", signals::name(sig)));
                }
                ReloadStrategy::Replace => replace.push(name),
                ReloadStrategy::Restart => restart.push(name),
            }
        }
        match (restart.is_empty(), replace.is_empty()) {
            (true, true) => self.respond(conn, Response::ok(signalled.join("; "))),
            (false, true) => self.control(conn, &restart, Control::Restart, now),
            (true, false) => self.control(conn, &replace, Control::Replace, now),
            (false, false) => {
                // Both kinds at once: the restarts go ahead unanswered, the answer waits for
                // the replacements (which take longer, as they wait for readiness).
                self.control_programs(&restart, Control::Restart, now);
                self.control(conn, &replace, Control::Replace, now);
            }
        }
    }

    /// `signal SIG NAME...`.
    fn signal_request(&mut self, signal: &str, names: &[String]) -> Response {
        let Some(sig) = signals::parse(signal) else {
            return Response::error(format!("`{signal}` is not a signal name or number"));
        };
        let names = match self.resolve_names(names) {
            Ok(names) => names,
            Err(e) => return Response::error(e),
        };
        let mut none = Vec::new();
        for name in &names {
            if !self.signal_program(name, sig) {
                none.push(name.as_str());
            }
        }
        if none.is_empty() {
            Response::ok(format!(
                "sent {} to {}",
                signals::name(sig),
                names.join(", ")
            ))
        } else {
            Response::error(format!("not running: {}", none.join(", ")))
        }
    }

    /// Answers the requests whose programs have settled.
    pub(super) fn answer_settled(&mut self) {
        let mut i = 0;
        while let Some(p) = self.pending.get(i) {
            let Some(result) = self.settled(&p.names, p.what) else {
                i += 1;
                continue;
            };
            let response = match result {
                Ok(msg) => Response::ok(msg),
                Err(e) => Response::error(e),
            };
            let conn = self.pending.remove(i).conn;
            self.respond(conn, response);
        }
    }

    /// `ready`.
    fn readiness(&self) -> Response {
        if self.ready() {
            return Response::ok("ready");
        }
        if self.is_shutting_down() {
            return Response::error("not ready: shutting down");
        }
        let mut waiting = Vec::new();
        for p in &self.programs {
            for i in &p.instances {
                if !Self::instance_ready(p, i) {
                    waiting.push(format!(
                        "{}.{} is {}",
                        p.spec.name,
                        i.index,
                        i.word(&p.spec)
                    ));
                }
            }
        }
        Response::error(format!("not ready: {}", waiting.join(", ")))
    }

    /// `status`: the usage of every instance's process tree is sampled first.
    fn ask_status(&mut self, conn: ConnId) {
        let pids = self
            .programs
            .iter()
            .flat_map(|p| p.instances.iter().filter_map(|i| i.pid()))
            .collect();
        self.out.push(Effect::SampleUsage {
            pids,
            sampling: Sampling::Status(conn),
        });
    }

    /// The answer to `status`, with the usage sampled for it (in instance order).
    pub(super) fn answer_status(
        &mut self,
        conn: ConnId,
        usage: &[(i32, Option<Sample>)],
        now: Instant,
    ) {
        let mut next = usage.iter();
        let mut instances = self.rows(now);
        let mut row = instances.iter_mut();
        for program in &mut self.programs {
            for i in &mut program.instances {
                let Some(status) = row.next() else { continue };
                let started = i.started;
                if let Some(process) = i.process_mut() {
                    let sample = next
                        .next()
                        .filter(|(pid, _)| *pid == process.pid)
                        .and_then(|(_, s)| *s);
                    if let Some(s) = sample {
                        let before = process
                            .status_cpu
                            .or(started.map(|t| (t, std::time::Duration::ZERO)));
                        process.status_cpu = Some((now, s.cpu));
                        status.cpu_percent = before.and_then(|b| cpu_percent(b, (now, s.cpu)));
                        status.rss_bytes = Some(s.rss_bytes);
                    }
                }
            }
        }
        let response = Response {
            ok: true,
            status: Some(Status {
                ready: self.ready(),
                shutting_down: self.is_shutting_down(),
                config_error: self.config_error.clone(),
                instances,
            }),
            ..Response::default()
        };
        self.respond(conn, response);
    }

    /// Where every instance stands now, in `status` order, without usage (CPU and memory are
    /// the edge's to read): what `status` answers and the metrics' gauges show. A read-only
    /// query, as [`Machine::deadline`]: it decides nothing and pushes no effect.
    pub fn rows(&self, now: Instant) -> Vec<InstanceStatus> {
        let mut rows = Vec::new();
        for program in &self.programs {
            for i in &program.instances {
                let pid = i.pid();
                rows.push(InstanceStatus {
                    program: program.spec.name.clone(),
                    instance: i.index,
                    pid,
                    state: i.word(&program.spec).to_string(),
                    ready: counts_ready(program.launched, &program.spec, i),
                    uptime_secs: pid
                        .and(i.started)
                        .map(|t| now.saturating_duration_since(t).as_secs_f64()),
                    restarts: i.restarts,
                    cpu_percent: None,
                    rss_bytes: None,
                    last_exit: i.last_exit,
                    ..program.timetable_status()
                });
            }
        }
        rows
    }

    /// SIGHUP or `reload-config`: the edge is asked for the file, unless ginit is shutting
    /// down.
    pub(super) fn reload_config(&mut self, conn: Option<ConnId>) {
        if self.is_shutting_down() {
            warn!("not reloading the config: shutting down");
            if let Some(conn) = conn {
                let e = "not reloading the config: ginit is shutting down";
                self.respond(conn, Response::error(e));
            }
            return;
        }
        self.out.push(Effect::LoadConfig { conn });
    }

    /// The file was read: rejected (nothing changes) or applied as a difference.
    pub(super) fn on_config_loaded(
        &mut self,
        conn: Option<ConnId>,
        loaded: Result<Config, String>,
        now: Instant,
    ) {
        let loaded = loaded
            .and_then(|mut new| match &self.main {
                Some(main) => new.add_main(main.clone()).map(|()| new),
                None => Ok(new),
            })
            .and_then(|new| {
                if new.sockets == self.config.sockets {
                    Ok(new)
                } else {
                    Err(
                        "`sockets` changed: sockets are bound once, when ginit starts, and \
                         cannot change on a reload (restart ginit to change them)"
                            .to_string(),
                    )
                }
            })
            .and_then(|new| {
                // The metrics listener is bound once, as `sockets` are.
                if new.metrics == self.config.metrics {
                    Ok(new)
                } else {
                    Err(
                        "`metrics` changed: its listener is bound once, when ginit starts, \
                         and cannot change on a reload (restart ginit to change it)"
                            .to_string(),
                    )
                }
            });
        let response = match loaded {
            Err(e) => {
                error!("the new config is invalid; nothing changed:\n{e}");
                let errors = e.clone();
                self.publish_program("", What::ConfigRejected { errors });
                let response =
                    Response::error(format!("the new config is invalid; nothing changed:\n{e}"));
                self.config_error = Some(e);
                response
            }
            Ok(new) => {
                self.config_error = None;
                let summary = self.apply_config(new, now);
                let what = What::ConfigReloaded {
                    summary: summary.clone(),
                };
                self.publish_program("", what);
                self.log_settings();
                for p in 0..self.programs.len() {
                    self.resume_watch(p);
                }
                // Sampling starts over with the new set of monitored programs.
                self.next_sample = None;
                Response::ok(summary)
            }
        };
        self.watch_files();
        if let Some(conn) = conn {
            self.respond(conn, response);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Input, Sample};
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn error(r: Option<&Response>) -> String {
        r.and_then(|r| r.error.clone()).unwrap_or_default()
    }

    fn message(r: Option<&Response>) -> String {
        r.and_then(|r| r.message.clone()).unwrap_or_default()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const TWO: &str = "programs:\n  web: {command: x, ready: {notify: true}}\n  job: {command: x, restart: never}\n";

    #[test]
    fn every_signal_has_one_meaning() {
        let mut e = edge_with_main("programs:\n  side: {command: x}\n", &["app"]);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let main = e.pid("main");
        // SIGUSR1: logs reopened; SIGPIPE: nothing; others: forwarded to main.
        e.feed(Input::Signal(libc::SIGUSR1), t);
        assert_eq!(e.reopened, 1);
        e.feed(Input::Signal(libc::SIGPIPE), t);
        e.feed(Input::Signal(libc::SIGWINCH), t);
        e.feed(Input::Signal(libc::SIGUSR2), t);
        assert_eq!(e.signals, [(main, libc::SIGWINCH), (main, libc::SIGUSR2)]);
        // SIGHUP: the config is read again.
        e.next_config = Some(Ok(config("programs:\n  side: {command: x}\n")));
        e.feed(Input::Signal(libc::SIGHUP), t);
        assert_eq!(e.loads, 1);
        assert_eq!(e.status(t).len(), 2, "main was added to the new config");
        // SIGQUIT: a shutdown; then SIGHUP is refused.
        e.feed(Input::Signal(libc::SIGQUIT), t);
        assert!(e.signals.contains(&(main, libc::SIGTERM)));
        e.feed(Input::Signal(libc::SIGHUP), t);
        assert_eq!(e.loads, 1);
        // Without main, other signals are ignored.
        let mut e = edge("programs:\n  side: {command: x}\n");
        e.feed(Input::Begin, t);
        e.feed(Input::Signal(libc::SIGUSR2), t);
        assert!(e.signals.is_empty());
        e.feed(Input::Signal(libc::SIGINT), t);
        assert_eq!(e.signals.len(), 2, "SIGINT shuts down");
    }

    #[test]
    fn status_reports_every_instance_with_usage_and_cpu_since_the_last_status() {
        let mut e = edge(TWO);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let web = e.pid("web");
        e.usage.push((
            web,
            Sample {
                cpu: Duration::from_millis(500),
                rss_bytes: 4096,
            },
        ));
        let s = e.status(t + ms(1000));
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].state.as_str(), s[0].ready), ("starting", false));
        assert_eq!(s[0].cpu_percent, Some(50.0), "since it started");
        assert_eq!(s[0].rss_bytes, Some(4096));
        assert_eq!(s[0].uptime_secs, Some(1.0));
        assert_eq!((s[1].state.as_str(), s[1].ready), ("running", true));
        assert_eq!(s[1].cpu_percent, None, "no sample for it");
        e.usage[0].1.cpu = Duration::from_millis(1500);
        let s = e.status(t + ms(2000));
        assert_eq!(s[0].cpu_percent, Some(100.0), "since the previous status");
        e.notify(web, "READY=1", t);
        assert_eq!(e.status(t)[0].state, "ready");
        e.reap(&[exit(e.pid("job"), 0)], true, t);
        let s = e.status(t);
        assert_eq!(
            (s[1].state.as_str(), s[1].pid, s[1].last_exit),
            ("stopped", None, Some(0))
        );
        assert_eq!(s[1].uptime_secs, None);
    }

    #[test]
    fn ready_says_which_instances_are_not() {
        let mut e = edge(TWO);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let c = e.ask(Request::Ready {}, t);
        assert_eq!(error(e.answer(c)), "not ready: web.0 is starting");
        e.notify(e.pid("web"), "READY=1", t);
        let c = e.ask(Request::Ready {}, t);
        assert_eq!(message(e.answer(c)), "ready");
    }

    #[test]
    fn start_stop_restart_are_answered_once_settled() {
        let mut e = edge(TWO);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let web = e.pid("web");
        e.notify(web, "READY=1", t);
        let c = e.ask(
            Request::Stop {
                programs: names(&["web"]),
            },
            t,
        );
        assert!(e.answer(c).is_none());
        e.reap(&[killed(web, libc::SIGTERM)], true, t);
        assert_eq!(message(e.answer(c)), "stopped web");
        let c = e.ask(
            Request::Start {
                programs: names(&["web"]),
            },
            t,
        );
        assert!(e.answer(c).is_none(), "until it is ready");
        let web = e.pid("web");
        e.notify(web, "READY=1", t);
        assert_eq!(message(e.answer(c)), "started web");
        let c = e.ask(
            Request::Restart {
                programs: names(&["all"]),
            },
            t,
        );
        e.reap(
            &[
                killed(web, libc::SIGTERM),
                killed(e.pid("job"), libc::SIGTERM),
            ],
            true,
            t,
        );
        e.notify(e.pid("web"), "READY=1", t);
        assert_eq!(message(e.answer(c)), "restarted web, job");
        // Stopping what is stopped already is done at once.
        e.reap(&[exit(e.pid("job"), 0)], true, t);
        let c = e.ask(
            Request::Stop {
                programs: names(&["job"]),
            },
            t,
        );
        assert_eq!(message(e.answer(c)), "stopped job");
    }

    #[test]
    fn a_start_that_fails_at_once_says_why() {
        let mut e = edge("programs:\n  job: {command: x, restart: never}\n");
        let t = Instant::now();
        e.fail.push("job".into());
        e.feed(Input::Begin, t);
        let c = e.ask(
            Request::Start {
                programs: names(&["job"]),
            },
            t,
        );
        assert_eq!(error(e.answer(c)), "job is failed (last exit status 127)");
    }

    #[test]
    fn unknown_names_are_refused_and_nothing_is_done() {
        let mut e = edge(TWO);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        for request in [
            Request::Start {
                programs: names(&["web", "nope", "nada"]),
            },
            Request::Stop {
                programs: names(&["nope"]),
            },
            Request::Restart {
                programs: names(&["nope"]),
            },
            Request::Reload {
                programs: names(&["nope"]),
            },
            Request::Signal {
                signal: "HUP".into(),
                programs: names(&["nope"]),
            },
        ] {
            let c = e.ask(request, t);
            assert!(error(e.answer(c)).starts_with("no program named `nope`"));
        }
        let c = e.ask(
            Request::Signal {
                signal: "SIGNOPE".into(),
                programs: names(&["web"]),
            },
            t,
        );
        assert_eq!(
            error(e.answer(c)),
            "`SIGNOPE` is not a signal name or number"
        );
        assert!(e.signals.is_empty());
        assert_eq!(e.spawned.len(), 2);
    }

    #[test]
    fn signal_goes_to_running_instances_only() {
        let mut e = edge(TWO);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let web = e.pid("web");
        e.reap(&[exit(e.pid("job"), 0)], true, t);
        let c = e.ask(
            Request::Signal {
                signal: "USR2".into(),
                programs: names(&["web"]),
            },
            t,
        );
        assert_eq!(message(e.answer(c)), "sent SIGUSR2 to web");
        assert_eq!(e.signals, [(web, libc::SIGUSR2)]);
        let c = e.ask(
            Request::Signal {
                signal: "10".into(),
                programs: names(&["web", "job"]),
            },
            t,
        );
        assert_eq!(error(e.answer(c)), "not running: job");
    }

    #[test]
    fn reload_by_each_strategy() {
        let mut e = edge(
            "programs:\n  sig: {command: x, reload: {strategy: signal, signal: SIGUSR1}}\n  re: {command: x}\n  rep: {command: x, reload: {strategy: replace}}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let (sig, re, rep) = (e.pid("sig"), e.pid("re"), e.pid("rep"));
        // signal: sent, answered at once.
        let c = e.ask(
            Request::Reload {
                programs: names(&["sig"]),
            },
            t,
        );
        assert_eq!(message(e.answer(c)), "sent SIGUSR1 to sig");
        assert_eq!(e.signals, [(sig, libc::SIGUSR1)]);
        // restart: answered when it runs again.
        let c = e.ask(
            Request::Reload {
                programs: names(&["re"]),
            },
            t,
        );
        assert!(e.answer(c).is_none());
        e.reap(&[killed(re, libc::SIGTERM)], true, t);
        assert_eq!(message(e.answer(c)), "restarted re");
        // replace: the new one is ready at once (no ready check), the old one stops.
        let c = e.ask(
            Request::Reload {
                programs: names(&["rep"]),
            },
            t,
        );
        assert!(
            e.signals
                .ends_with(&[(rep, libc::SIGTERM), (rep, libc::SIGCONT)])
        );
        e.reap(&[killed(rep, libc::SIGTERM)], true, t);
        assert_eq!(message(e.answer(c)), "replaced rep");
        // all three at once: the answer waits for the replace; the restart goes ahead.
        let (re, rep) = (e.pid("re"), e.pid("rep"));
        let c = e.ask(
            Request::Reload {
                programs: names(&["all"]),
            },
            t,
        );
        assert!(e.signals.ends_with(&[
            (re, libc::SIGTERM),
            (re, libc::SIGCONT),
            (rep, libc::SIGTERM),
            (rep, libc::SIGCONT)
        ]));
        e.reap(
            &[killed(re, libc::SIGTERM), killed(rep, libc::SIGTERM)],
            true,
            t,
        );
        assert_eq!(message(e.answer(c)), "replaced rep");
    }

    #[test]
    fn start_and_restart_wait_for_a_replace_under_way() {
        let mut e = edge(
            "programs:\n  web: {command: x, reload: {strategy: replace}, ready: {notify: true}}\n",
        );
        let t = Instant::now();
        e.feed(Input::Begin, t);
        e.notify(e.pid("web"), "READY=1", t);
        let r = e.ask(
            Request::Reload {
                programs: names(&["web"]),
            },
            t,
        );
        for request in [
            Request::Start {
                programs: names(&["web"]),
            },
            Request::Restart {
                programs: names(&["web"]),
            },
        ] {
            let c = e.ask(request, t);
            assert_eq!(
                error(e.answer(c)),
                "a reload of web is under way; try again once it has finished"
            );
        }
        assert!(e.answer(r).is_none());
        assert_eq!(e.spawned.len(), 2);
    }

    #[test]
    fn requests_during_a_shutdown() {
        let mut e = edge(TWO);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let c = e.ask(Request::Shutdown {}, t);
        assert_eq!(message(e.answer(c)), "shutting down");
        for request in [
            Request::Start {
                programs: names(&["web"]),
            },
            Request::Stop {
                programs: names(&["web"]),
            },
            Request::Restart {
                programs: names(&["web"]),
            },
            Request::Reload {
                programs: names(&["web"]),
            },
        ] {
            let c = e.ask(request, t);
            assert_eq!(error(e.answer(c)), "ginit is shutting down");
        }
        let c = e.ask(Request::ReloadConfig {}, t);
        assert_eq!(
            error(e.answer(c)),
            "not reloading the config: ginit is shutting down"
        );
        assert_eq!(e.loads, 0);
        let c = e.ask(Request::Ready {}, t);
        assert_eq!(error(e.answer(c)), "not ready: shutting down");
        let c = e.ask(Request::Status {}, t);
        let status = e
            .answer(c)
            .and_then(|r| r.status.clone())
            .unwrap_or_default();
        assert!(status.shutting_down && !status.ready);
        // A second shutdown request kills.
        let c = e.ask(Request::Shutdown {}, t);
        assert_eq!(message(e.answer(c)), "shutting down");
        assert!(e.signals.contains(&(e.pid("web"), libc::SIGKILL)));
    }

    #[test]
    fn reload_config_accepted_rejected_and_sockets_cannot_change() {
        let base = "sockets:\n  http: {listen: \"tcp://127.0.0.1:8080\"}\nprograms:\n  web: {command: x, sockets: [http]}\n";
        let mut e = edge(base);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let web = e.pid("web");
        // Rejected by validation: nothing changes, the error is kept for status.
        e.next_config = Some(Err("programs.web.instances: not a number".into()));
        let c = e.ask(Request::ReloadConfig {}, t);
        assert_eq!(
            error(e.answer(c)),
            "the new config is invalid; nothing changed:\nprograms.web.instances: not a number"
        );
        let status = e.full_status(t);
        assert_eq!(
            status.config_error.as_deref(),
            Some("programs.web.instances: not a number")
        );
        // Sockets changed: rejected.
        e.next_config = Some(Ok(config(&base.replace("8080", "8081"))));
        let c = e.ask(Request::ReloadConfig {}, t);
        assert!(error(e.answer(c)).contains("`sockets` changed"));
        assert!(e.signals.is_empty());
        assert_eq!(e.status(t)[0].pid, Some(web));
        // Accepted: applied, and the error is gone.
        e.next_config = Some(Ok(config(&format!("{base}  more: {{command: y}}\n"))));
        let c = e.ask(Request::ReloadConfig {}, t);
        assert_eq!(
            message(e.answer(c)),
            "config reloaded: 1 added, 0 removed, 0 changed, 1 unchanged"
        );
        assert_eq!(e.full_status(t).config_error, None);
        assert_eq!(e.names(), ["web", "more"]);
    }

    #[test]
    fn reload_config_cannot_change_metrics_and_rows_push_no_effect() {
        let base = "metrics: {listen: \"tcp://127.0.0.1:9100\"}\nprograms:\n  web: {command: x}\n";
        let mut e = edge(base);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        let web = e.pid("web");
        for changed in [
            base.replace("9100", "9101"),
            base.replace("metrics: {listen: \"tcp://127.0.0.1:9100\"}\n", ""),
        ] {
            e.next_config = Some(Ok(config(&changed)));
            let c = e.ask(Request::ReloadConfig {}, t);
            assert!(error(e.answer(c)).contains("`metrics` changed"));
        }
        // Unchanged metrics (and a new program): applied.
        e.next_config = Some(Ok(config(&format!("{base}  more: {{command: y}}\n"))));
        let c = e.ask(Request::ReloadConfig {}, t);
        assert!(message(e.answer(c)).starts_with("config reloaded: 1 added"));
        // rows: what status shows, read without deciding anything.
        let rows = e.m.rows(t + Duration::from_secs(2));
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].program.as_str(), rows[0].pid), ("web", Some(web)));
        assert_eq!(rows[0].uptime_secs, Some(2.0));
        assert_eq!((rows[0].state.as_str(), rows[0].ready), ("running", true));
        assert!(e.m.out.is_empty());
        assert_eq!(rows, e.status(t + Duration::from_secs(2)));
    }

    #[test]
    fn a_reloaded_config_with_its_own_main_is_rejected() {
        let mut e = edge_with_main("programs:\n  side: {command: x}\n", &["app"]);
        let t = Instant::now();
        e.feed(Input::Begin, t);
        e.next_config = Some(Ok(config("programs:\n  main: {command: x}\n")));
        let c = e.ask(Request::ReloadConfig {}, t);
        assert!(error(e.answer(c)).contains("already has a program named `main`"));
    }

    #[test]
    fn sampling_starts_over_after_a_reload() {
        let mut e = edge("programs:\n  a: {command: x}\n");
        let t = Instant::now();
        e.feed(Input::Begin, t);
        assert_eq!(e.m.deadline(), None);
        e.next_config = Some(Ok(config(
            "programs:\n  a: {command: x, memory_max: 1MiB}\n",
        )));
        e.feed(Input::Signal(libc::SIGHUP), t + ms(500));
        // a changed: restarted with its new spec, and sampled from now on.
        let a = e.pid("a");
        e.reap(&[killed(a, libc::SIGTERM)], true, t + ms(500));
        assert_eq!(e.m.deadline(), Some(t + ms(1500)));
        let a = e.pid("a");
        e.usage.push((
            a,
            Sample {
                cpu: Duration::ZERO,
                rss_bytes: 2 << 20,
            },
        ));
        e.feed(Input::Time, t + ms(1500));
        assert_eq!(e.sampled.len(), 1);
        assert_eq!(e.status(t)[0].restarts, 1, "over its new memory_max");
    }
}
