//! The fuzzing entry points: one function per parser of input that a user or another process
//! writes, each taking raw bytes. The cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) are one
//! line calling these, and `tests/fuzz_corpus.rs` replays the committed corpus and every
//! regression input through the same functions on stable, so a crash found once stays fixed.
//!
//! Each function checks more than "does not crash": it asserts a property the rest of ginit
//! relies on (a round trip, a bound, a field the input must not be able to shift), and panics
//! when it does not hold. That makes this module the one place in the library that panics on
//! purpose; nothing at run time calls it (the binary never links it: it is dead code there).
//!
//! It must not touch the machine: the config is validated against [`Sandbox`], a made-up
//! machine whose every answer depends only on its question, so a run is reproducible anywhere.

use std::path::Path;
use std::time::Duration;

use crate::config::users::{self, Credentials};
use crate::config::{self, Resolver, glob, schedule, signals, units, vars, words};
use crate::control::metrics::{self, Asked};
use crate::control::protocol::{Request, Response};
use crate::os::{notify, probes, proc, watch};

/// The users of [`Sandbox`]: what a typical image's /etc/passwd and /etc/group hold.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                      www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                      app:x:1000:1000:App:/home/app:/bin/sh\n";
const GROUP: &str = "root:x:0:\ndaemon:x:1:\nwww-data:x:33:app\nnogroup:x:65534:\n\
                     app:x:1000:\nlogs:x:4:app,www-data\n";

/// A machine made up for validation: root, the users above, executables under /bin, /usr/bin,
/// /usr/local/bin and /app (bare names found on PATH unless named `missing`), directories `/`,
/// /app, /tmp and /var, 1024 open files at most and no CAP_SYS_RESOURCE. Every answer is a
/// function of the question alone.
pub struct Sandbox {
    users: users::Db,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            users: users::Db::from_text(PASSWD, GROUP),
        }
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Resolver for Sandbox {
    fn user(&self, spec: &str) -> Result<Credentials, String> {
        self.users.resolve(spec)
    }

    fn executable(&self, program: &str, path_var: Option<&str>) -> Result<(), String> {
        let under = |dirs: &[&str]| dirs.iter().any(|d| program.starts_with(d));
        let found = if program.contains('/') {
            under(&["/bin/", "/usr/bin/", "/usr/local/bin/", "/app/"])
        } else {
            !program.is_empty() && program != "missing" && path_var.is_some_and(|p| !p.is_empty())
        };
        if found {
            Ok(())
        } else {
            Err(format!("cannot run `{program}`: no such file or directory"))
        }
    }

    fn directory(&self, dir: &Path) -> Result<(), String> {
        let known = ["/app", "/tmp", "/var"];
        if dir == Path::new("/") || known.iter().any(|k| dir.starts_with(k)) {
            Ok(())
        } else {
            Err(format!("`{}`: No such file or directory", dir.display()))
        }
    }

    fn euid(&self) -> u32 {
        0
    }

    fn path_var(&self) -> Option<String> {
        Some("/usr/local/bin:/usr/bin:/bin".into())
    }

    fn hard_limit(&self, resource: i32) -> (Option<u64>, bool) {
        let nofile = resource == libc::RLIMIT_NOFILE as i32;
        (nofile.then_some(1024), false)
    }
}

/// The config loader: YAML text -> a validated config, as `ginit check` and a reload run it.
///
/// Beyond not crashing: the answer is the same twice (no hidden state); a valid config has
/// unique program names, a start order that holds every program once with each after what it
/// depends on, a plan that can be printed, and no changes against itself; an invalid one has
/// at least one error, and every error's line is inside the file.
pub fn config(data: &[u8]) {
    // ginit reads the file with read_to_string: text that is not UTF-8 never gets further.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sandbox = Sandbox::new();
    let file = Path::new("fuzz.yaml");
    let first = config::parse(text, file, &sandbox);
    assert_eq!(
        first,
        config::parse(text, file, &sandbox),
        "not deterministic"
    );
    match first {
        Ok(c) => {
            let order = c.start_order();
            assert_eq!(order.len(), c.programs.len(), "start order {order:?}");
            for (i, name) in order.iter().enumerate() {
                let p = c
                    .program(name)
                    .unwrap_or_else(|| panic!("{name} is no program"));
                assert!(
                    !order[..i].contains(name),
                    "{name} twice in the start order"
                );
                for d in &p.depends_on {
                    assert!(order[..i].contains(&d.as_str()), "{name} starts before {d}");
                }
            }
            assert!(c.plan(Some(1.5)).contains("start order: "));
            let same = config::diff::diff(&c, &c);
            assert_eq!(same.unchanged.len(), c.programs.len());
        }
        Err(e) => {
            assert!(!e.errors.is_empty(), "refused without a reason");
            let lines = yaml_lines(text) + 1;
            for err in &e.errors {
                assert!(
                    err.line <= lines,
                    "line {} of a {lines}-line file",
                    err.line
                );
                assert!(!err.message.is_empty());
            }
            let _ = e.to_string();
        }
    }
}

/// Lines as YAML (and libyaml's positions) count them: LF, CR, CR LF, and NEL, LS and PS
/// (YAML 1.1) each end one; an editor that shows a lone CR as a break agrees.
fn yaml_lines(text: &str) -> usize {
    let mut chars = text.chars().peekable();
    let mut lines = 1;
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' => lines += 1,
            _ => {}
        }
    }
    lines
}

/// Control requests as the server reads them, and responses as the client reads them.
///
/// Beyond not crashing: a request that parses is written back as exactly one line that
/// parses to an equal request; a response that parses is written back as one line that parses
/// to the same response (floats within rounding), and its status table can be printed.
pub fn control_request(data: &[u8]) {
    if let Ok(request) = Request::parse(data) {
        let line = request.to_line();
        assert!(one_line(&line), "{line:?}");
        assert_eq!(Request::parse(line.as_bytes()), Ok(request));
    }
    if let Ok(response) = Response::parse(data) {
        let line = response.to_line();
        assert!(one_line(&line), "{line:?}");
        let back = Response::parse(line.as_bytes())
            .unwrap_or_else(|e| panic!("{line:?} does not parse back: {e}"));
        let (mut a, mut b) = (response.clone(), back);
        let (fa, fb) = (take_floats(&mut a), take_floats(&mut b));
        assert_eq!(a, b);
        for (x, y) in fa.iter().zip(&fb) {
            let close = match (x, y) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
                (x, y) => x == y,
            };
            assert!(close, "{x:?} came back as {y:?}");
        }
        if let Some(status) = &response.status {
            let _ = crate::control::client::table(status);
        }
    }
}

fn one_line(line: &str) -> bool {
    line.strip_suffix('\n').is_some_and(|l| !l.contains('\n'))
}

/// The float fields of a response, taken out (JSON numbers may come back one ulp off).
fn take_floats(r: &mut Response) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for i in r.status.iter_mut().flat_map(|s| s.instances.iter_mut()) {
        out.push(i.uptime_secs.take());
        out.push(i.cpu_percent.take());
    }
    out
}

/// sd_notify datagrams, as any process that knows NOTIFY_SOCKET may send them.
///
/// Beyond not crashing: no key holds `=` and no key or value a newline (each field is one
/// `KEY=VALUE` line of the datagram), there are no more fields than lines, and a `READY=1`
/// line is always seen, whatever surrounds it.
pub fn notify(data: &[u8]) {
    let fields = notify::parse(data);
    let lines = data.iter().filter(|b| **b == b'\n').count() + 1;
    assert!(
        fields.len() <= lines,
        "{} fields from {lines} lines",
        fields.len()
    );
    for (k, v) in &fields {
        assert!(
            !k.contains('=') && !k.contains('\n') && !v.contains('\n'),
            "{k:?}={v:?}"
        );
    }
    let text = String::from_utf8_lossy(data);
    if text.split('\n').any(|l| l == "READY=1") {
        assert!(fields.iter().any(|(k, v)| k == "READY" && v == "1"));
    }
}

/// Durations, sizes and signal names, as written in the config and on the command line.
///
/// Beyond not crashing: a duration is at most [`units::MAX_DURATION`] and what
/// `format_duration` writes for it parses back to it (within the millisecond it keeps; the
/// microsecond below 1ms); a size up to 2^53 written as a number parses back to itself; a
/// signal is a valid number, and its name parses back to it.
/// `include`'s file-name patterns: the input is `PATTERN\0NAME`. Matching never panics and
/// stays cheap on any input (the fuzzer's time limit catches a blow-up); a pattern without
/// wildcards matches exactly itself; `*` matches every name that does not start with `.`.
pub fn glob(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, name) = text.split_once('\0').unwrap_or((text, ""));
    let m = glob::matches(pattern, name);
    if !glob::has_wildcard(pattern) {
        let literal = pattern == name && (!name.starts_with('.') || pattern.starts_with('.'));
        assert_eq!(m, literal, "{pattern:?} {name:?}");
    }
    assert_eq!(glob::matches("*", name), !name.starts_with('.'), "{name:?}");
    assert!(
        glob::matches(name, name) || glob::has_wildcard(name),
        "{name:?}"
    );
}

/// `env_file` texts and `${NAME}` expansion: the input is an env file. Parsing never
/// panics; every variable it gives has a valid name and no NUL; a value written back in
/// single quotes (when it has none) parses to itself; expanding each value against the
/// variables found either succeeds or names an unset variable, and text without `$` is
/// returned as it is.
pub fn env_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = vars::check(text);
    if let Ok(found) = vars::parse_env_file(text) {
        assert!(found.len() <= vars::MAX_FILE_VARS);
        for (k, v) in &found {
            assert!(
                !k.is_empty() && !k.contains('=') && !v.contains('\0'),
                "{k:?}={v:?}"
            );
            if !v.contains('\'') && !v.contains('\n') && !v.contains('\r') {
                let again = vars::parse_env_file(&format!("{k}='{v}'"));
                assert_eq!(again, Ok(vec![(k.clone(), v.clone())]), "{k:?}={v:?}");
            }
            let get = |name: &str| {
                found
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            match vars::expand(v, get) {
                Ok(out) if !v.contains('$') => assert_eq!(&out, v),
                Ok(_) => {}
                Err(e) => assert!(e.contains("is not set") || vars::check(v).is_err(), "{e}"),
            }
        }
    }
}

pub fn units(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = units::parse_duration(text) {
        assert!(d <= units::MAX_DURATION, "{d:?}");
        let written = units::format_duration(d);
        let back = units::parse_duration(&written)
            .unwrap_or_else(|e| panic!("{d:?} written as {written:?} does not parse: {e}"));
        let grain = if d >= Duration::from_millis(1) {
            Duration::from_millis(1)
        } else {
            Duration::from_micros(1)
        };
        assert!(
            d.abs_diff(back) <= grain,
            "{d:?} -> {written:?} -> {back:?}"
        );
    }
    if let Ok(n) = units::parse_size(text)
        && n <= 1 << 53
    {
        assert_eq!(units::parse_size(&n.to_string()), Ok(n));
    }
    if let Some(sig) = signals::parse(text) {
        assert!(sig > 0 && sig < signals::nsig(), "signal {sig}");
        let name = signals::name(sig);
        assert_eq!(signals::parse(&name), Some(sig), "{name}");
    }
}

/// `schedule:` cron times: the input is the field's text, then (after a NUL) a time in
/// seconds. Parsing never panics; a schedule it accepts always has a next run after any time
/// of this millennium, on a whole minute, strictly later, and in the nine-year horizon; and
/// the next run after "one second before that run" is that run again (no time is skipped).
pub fn schedule(data: &[u8]) {
    let (text, time) = match data.iter().position(|&b| b == 0) {
        Some(at) => (
            data.get(..at).unwrap_or_default(),
            data.get(at + 1..).unwrap_or_default(),
        ),
        None => (data, &b""[..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(cron) = schedule::Cron::parse(text) else {
        return;
    };
    // From 2000-01-01 on, by the bytes given (at most about 3,000 years ahead).
    let mut t: i64 = 946_684_800;
    for &b in time.iter().take(5) {
        t = t
            .wrapping_mul(251)
            .wrapping_add(i64::from(b))
            .rem_euclid(1 << 36)
            + 946_684_800;
    }
    let next = cron
        .next_after(t)
        .unwrap_or_else(|| panic!("{text:?} accepted but never comes after {t}"));
    assert!(next > t && next % 60 == 0, "{text:?}: {t} -> {next}");
    assert!(next - t <= 9 * 366 * 86_400, "{text:?}: {t} -> {next}");
    assert_eq!(cron.next_after(next - 1), Some(next), "{text:?}");
    assert_eq!(schedule::utc(next).len(), 20);
}

/// What inotify reports (whose names any user who can write in a watched directory
/// chooses), as `os::watch::events` reads it. Beyond not crashing: no name holds a NUL, every
/// record takes at least its 16-byte head, and records are read in order (the first starts
/// at the start of the buffer).
pub fn inotify(data: &[u8]) {
    let events = watch::events(data);
    assert!(
        events.len() <= data.len() / 16,
        "{} from {}",
        events.len(),
        data.len()
    );
    for (_, _, name) in &events {
        assert!(!name.contains(&0), "{name:?}");
    }
    if let Some((wd, _, _)) = events.first() {
        assert_eq!(
            data.get(..4)
                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
            Some(*wd)
        );
    }
}

/// The shell-like splitter behind `command: "..."`.
///
/// Beyond not crashing: a refusal says why, and the words of a command that splits, each
/// written back in single quotes, split to the same words (nothing is lost or merged).
pub fn words(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match words::split(text) {
        // Words with a `$` are in expansion form (`$$` for a literal one), which quoting
        // does not give back; every word's `${...}` is well formed.
        Ok(words) if words.iter().any(|w| w.contains('$')) => {
            for w in &words {
                assert!(vars::check(w).is_ok(), "{w:?}");
            }
        }
        Ok(words) => {
            let quoted: Vec<String> = words
                .iter()
                .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
                .collect();
            assert_eq!(words::split(&quoted.join(" ")), Ok(words));
        }
        Err(e) => assert!(!e.is_empty()),
    }
}

/// The answer of an `http` check's target: whatever the program (or anything listening on
/// that port) writes back.
///
/// Beyond not crashing: the verdict comes from the status line alone, so nothing after the
/// first newline can change it (the probe stops reading there, or wherever a read ends).
pub fn http_response(data: &[u8]) {
    let ok = probes::status_ok(data);
    if let Some(end) = data.iter().position(|b| *b == b'\n') {
        let head = data.get(..=end).unwrap_or(data);
        assert_eq!(probes::status_ok(head), ok, "the body changed the verdict");
    }
}

/// A request to the metrics endpoint, as any client that reaches its address may send it.
///
/// Beyond not crashing: the verdict comes from the request line once the headers have ended,
/// so bytes after the end of the headers never change it and a request cut short before
/// that end is never answered; `Metrics` only for a request line that starts with
/// `GET /metrics` and names HTTP/1.0 or 1.1.
pub fn http_request(data: &[u8]) {
    let asked = metrics::parse_request(data);
    let mut more = data.to_vec();
    more.extend_from_slice(b"\r\n\r\nPOST / HTTP/1.1\r\n\r\n");
    match asked {
        Asked::Incomplete => {
            assert!(!data.windows(2).any(|w| w == b"\n\n"), "the headers ended");
        }
        done => {
            assert_eq!(
                metrics::parse_request(&more),
                done,
                "later bytes changed it"
            );
            // Every prefix of a complete request is at most as far along: Incomplete, or
            // the same verdict once its own headers have ended.
            for cut in [data.len() / 2, data.len().saturating_sub(1)] {
                let part = metrics::parse_request(data.get(..cut).unwrap_or_default());
                assert!(
                    part == Asked::Incomplete || part == done,
                    "{part:?} {done:?}"
                );
            }
        }
    }
    if asked == Asked::Metrics {
        let line = data.split(|b| *b == b'\n').next().unwrap_or_default();
        assert!(line.starts_with(b"GET /metrics"), "{line:?}");
        assert!(
            line.windows(8)
                .any(|w| w == b"HTTP/1.0" || w == b"HTTP/1.1"),
            "{line:?}"
        );
    }
}

/// /etc/passwd and /etc/group (image content) and a `user:` value: the input is the passwd
/// text, a NUL, the group text, a NUL, then the user spec.
///
/// Beyond not crashing: resolved credentials list the primary group first and no group twice,
/// and a numeric uid or gid in the spec is the one used.
pub fn passwd(data: &[u8]) {
    // The files are read as bytes and converted lossily (os::SystemResolver); the spec comes
    // from the config, which is UTF-8.
    let mut parts = data.splitn(3, |b| *b == 0);
    let (Some(passwd), Some(group), Some(Ok(spec))) = (
        parts.next(),
        parts.next(),
        parts.next().map(std::str::from_utf8),
    ) else {
        return;
    };
    let db = users::Db::from_text(
        &String::from_utf8_lossy(passwd),
        &String::from_utf8_lossy(group),
    );
    match db.resolve(spec) {
        Ok(c) => {
            assert_eq!(c.groups.first(), Some(&c.gid), "{c:?}");
            for (i, g) in c.groups.iter().enumerate() {
                assert!(!c.groups[..i].contains(g), "group {g} twice: {c:?}");
            }
            let (user, group) = spec.split_once(':').unwrap_or((spec, ""));
            if let Ok(uid) = user.parse::<u32>() {
                assert_eq!(c.uid, uid);
            }
            if let Ok(gid) = group.parse::<u32>() {
                assert_eq!(c.gid, gid);
            }
        }
        Err(e) => assert!(!e.is_empty()),
    }
}

/// /proc/PID/stat: the kernel writes it, but the command name in it is chosen by the process
/// (its executable's name, or prctl(PR_SET_NAME)), and may hold spaces, parentheses and
/// newlines.
///
/// Beyond not crashing on any text: for a line as the kernel writes it, whatever the name,
/// the fields after it parse exactly as they do for a plain name.
pub fn proc_stat(data: &[u8]) {
    // ginit reads the file as bytes and converts it lossily (os::proc::read_stat).
    let text = String::from_utf8_lossy(data);
    // A cgroup's cpu.max, the same way: a quota is a positive, finite number of CPUs.
    if let Some(cpus) = proc::parse_cpu_max(&text) {
        assert!(cpus.is_finite() && cpus > 0.0, "{cpus}");
    }
    let _ = proc::parse_stat(1, &text);
    let _ = proc::parse_ppid(&text);
    let line = |comm: &str| {
        format!(
            "4242 ({comm}) S 17 4242 4242 0 -1 4194560 1000 0 0 0 31 9 0 0 20 0 1 0 123456 \
             10000000 2500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 \
             0 0 0 0\n"
        )
    };
    let plain = line("sleep");
    let named = line(&String::from_utf8_lossy(data));
    let want = proc::parse_stat(4242, &plain);
    assert!(want.is_some(), "{plain:?}");
    assert_eq!(proc::parse_stat(4242, &named), want, "{named:?}");
    assert_eq!(proc::parse_ppid(&named), Some(17), "{named:?}");
}
