//! Which events each input publishes (tests only: the events are published where each
//! decision is made, in the other files; here they are checked from the outside, in order).

use std::time::{Duration, Instant};

use super::testing::*;
use crate::control::events::What;
use crate::control::protocol::Request;

/// The names of the events published so far, as `program[.instance] event`.
fn seen(e: &Edge) -> Vec<String> {
    e.events
        .iter()
        .map(|ev| {
            let who = match ev.instance {
                Some(i) => format!("{}.{i}", ev.program),
                None => ev.program.clone(),
            };
            format!("{who} {}", ev.what.name())
        })
        .collect()
}

#[test]
fn a_crash_loop_publishes_each_exit_restart_and_the_give_up() {
    let mut e = edge("programs:\n  w: {command: x, max_restarts: 1, restart_window: 1m}\n");
    let t = Instant::now();
    e.feed(Input::Begin, t);
    let pid = e.pid("w");
    e.reap(&[exit(pid, 3)], true, t + Duration::from_secs(2));
    assert_eq!(
        seen(&e),
        ["w.0 started", "w.0 exited", "w.0 restart_scheduled"]
    );
    match &e.events[1].what {
        What::Exited {
            pid: p,
            status,
            signal,
            ran,
        } => {
            assert_eq!((*p, *status, signal.as_deref()), (pid, 3, None));
            assert!((*ran - 2.0).abs() < 1e-6, "{ran}");
        }
        other => panic!("{other:?}"),
    }
    e.feed(Input::Time, t + Duration::from_secs(3));
    let pid = e.pid("w");
    e.reap(
        &[killed(pid, libc::SIGKILL)],
        true,
        t + Duration::from_secs(3),
    );
    let names = seen(&e);
    assert_eq!(names[3..], ["w.0 started", "w.0 exited", "w.0 failed"]);
    match &e.events[4].what {
        What::Exited { signal, status, .. } => {
            assert_eq!((signal.as_deref(), *status), (Some("SIGKILL"), 137))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stop_a_oneshot_and_a_start_failure_are_published() {
    let mut e = edge(
        "programs:\n  a: {command: x}\n  once: {command: x, oneshot: true}\n  bad: {command: x, restart: never}\n",
    );
    e.fail.push("bad".into());
    let t = Instant::now();
    e.feed(Input::Begin, t);
    e.reap(&[exit(e.pid("once"), 0)], true, t);
    e.ask(
        Request::Stop {
            programs: vec!["a".into()],
        },
        t,
    );
    e.reap(&[killed(e.pid("a"), libc::SIGTERM)], true, t);
    assert_eq!(
        seen(&e),
        [
            "a.0 started",
            "once.0 started",
            "bad.0 start_failed",
            "bad.0 failed",
            "once.0 exited",
            "once.0 done",
            "a.0 exited",
            "a.0 stopped",
        ]
    );
}

#[test]
fn stopping_an_instance_that_waits_to_restart_publishes_stopped() {
    let mut e = edge("programs:\n  w: {command: x}\n");
    let t = Instant::now();
    e.feed(Input::Begin, t);
    e.reap(&[exit(e.pid("w"), 1)], true, t);
    e.ask(
        Request::Stop {
            programs: vec!["w".into()],
        },
        t,
    );
    assert_eq!(seen(&e).last().map(String::as_str), Some("w.0 stopped"));
}

/// One ready `web` with a `replace` reload, asked for at `t`.
fn replacing(t: Instant) -> Edge {
    let mut e = edge(
        "programs:\n  web:\n    command: x\n    reload: {strategy: replace}\n    ready: {notify: true, timeout: 5s}\n",
    );
    e.feed(Input::Begin, t);
    e.notify(e.pid("web"), "READY=1", t);
    e.ask(
        Request::Reload {
            programs: vec!["web".into()],
        },
        t,
    );
    e
}

#[test]
fn a_replace_reload_publishes_begun_ready_and_done_with_its_duration() {
    let t = Instant::now();
    let mut e = replacing(t);
    let old = e.spawned[0].2;
    e.notify(e.pid("web"), "READY=1", t + Duration::from_secs(1));
    // Done once the old instance is down.
    e.reap(
        &[killed(old, libc::SIGTERM)],
        true,
        t + Duration::from_millis(1500),
    );
    let names = seen(&e);
    assert_eq!(
        names,
        [
            "web.0 started",
            "web.0 ready",
            "web reload_begun",
            "web.0 started",
            "web.0 ready",
            "web.0 exited",
            "web.0 stopped",
            "web reload_done",
        ]
    );
    assert_eq!(e.events[7].what, What::ReloadDone { took: 1.5 });
}

#[test]
fn a_replace_whose_new_instance_dies_is_rolled_back() {
    let t = Instant::now();
    let mut e = replacing(t);
    e.reap(&[exit(e.pid("web"), 2)], true, t);
    let last = e.events.last().map(|ev| &ev.what);
    assert!(
        matches!(last, Some(What::ReloadRolledBack { why }) if why.contains("status 2")),
        "{last:?}"
    );
}

#[test]
fn config_reloads_and_shutdown_are_events_of_ginit() {
    let mut e = edge("programs:\n  w: {command: x}\n");
    let t = Instant::now();
    e.feed(Input::Begin, t);
    e.next_config = Some(Err("bad.yaml:1:1: nope".into()));
    e.feed(Input::Signal(libc::SIGHUP), t);
    e.next_config = Some(Ok(config(
        "programs:\n  w: {command: x}\n  v: {command: y}\n",
    )));
    e.feed(Input::Signal(libc::SIGHUP), t);
    e.feed(Input::Signal(libc::SIGTERM), t);
    let ginit: Vec<&What> = e
        .events
        .iter()
        .filter(|ev| ev.program.is_empty())
        .map(|ev| &ev.what)
        .collect();
    assert!(matches!(ginit[0], What::ConfigRejected { errors } if errors.contains("nope")));
    assert!(matches!(ginit[1], What::ConfigReloaded { summary } if summary.contains("1 added")));
    assert_eq!(
        ginit[2],
        &What::ShutdownBegun {
            why: "received SIGTERM".into()
        }
    );
    assert_eq!(ginit.len(), 3);
}
