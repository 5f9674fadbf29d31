//! The keys ginit knows, checked against the YAML tree, with every error collected.
//!
//! Each error names the line and column, the key path (`programs.web.restart`) and, for a
//! misspelt key or value, the nearest valid one. Validation goes on after an error (using the
//! default for the broken value) so one run reports everything. Keys of features this version
//! does not have yet are refused as such, never silently ignored.
//!
//! What needs the system (users, executables, directories) goes through [`Resolver`], so the
//! rules are unit-tested without touching the machine; the real one is `os::SystemResolver`
//! (config imports nothing outside config/).
//!
//! Every number has a range (the bounds below), so no file can make ginit allocate, fork or
//! rotate without end, make a check spin, or set a limit no program can start with. And
//! validation runs in PID 1 on every reload, so it must stay near-linear in the file: names
//! are looked up in hash maps, never by scanning, the dependency graph is walked once without
//! recursion, and the errors kept (with their hints) stop at [`MAX_ERRORS`].

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::schedule::{Cron, Schedule};
use super::yaml::{self, Node, Value};
use super::{
    Backoff, Config, ConfigError, CpuAction, FileWatch, Limits, Listen, LogFormat, Output,
    ProgramSpec, ReloadStrategy, Restart, Rlimit, Rotate, SocketSpec, units,
};
use super::{HealthSpec, ReadyCheck, ReadySpec};
use super::{signals, users::Credentials, vars};

/// What validation needs to know about the machine.
pub trait Resolver {
    /// `user` or `user:group` -> credentials.
    fn user(&self, spec: &str) -> Result<Credentials, String>;
    /// Checks that `program` can be executed (PATH lookup with `path_var` when it has no `/`).
    fn executable(&self, program: &str, path_var: Option<&str>) -> Result<(), String>;
    /// Checks that `dir` is an existing directory.
    fn directory(&self, dir: &Path) -> Result<(), String>;
    /// ginit's effective uid (only root can start programs as another user).
    fn euid(&self) -> u32;
    /// ginit's own PATH.
    fn path_var(&self) -> Option<String>;
    /// ginit's hard limit for a setrlimit resource (None: unlimited), and whether ginit may
    /// raise hard limits (CAP_SYS_RESOURCE).
    fn hard_limit(&self, resource: i32) -> (Option<u64>, bool);
    /// The files an `include` pattern names (an absolute path whose last component may have
    /// wildcards, see `glob.rs`), in name order, each with its text; an error says why not.
    /// Without a file system (fuzzing), there is nothing to include.
    fn include(&self, pattern: &Path) -> Result<Vec<(PathBuf, String)>, String> {
        Err(format!(
            "cannot include {}: no files here",
            pattern.display()
        ))
    }
}

use super::keys::{self, Key};

// Bounds. Every number a file can write is bounded here, so no file makes ginit allocate,
// fork or loop without end, and no setting can start a program that cannot run or make a
// check spin. The README's config reference lists each one.

/// Copies of one program.
pub const MAX_INSTANCES: u32 = 1000;
/// Instances of all programs together (so also the number of programs).
pub const MAX_TOTAL_INSTANCES: u32 = 10_000;
/// `max_restarts`: the restart window remembers one time per restart (16 bytes each).
pub const MAX_RESTARTS: u32 = 1_000_000;
/// `rotate.keep`: each rotation renames every kept file once.
pub const MAX_KEEP: u32 = 100;
/// `rotate.size`: a smaller file would be rotated for nearly every line.
pub const MIN_ROTATE_SIZE: (u64, &str) = (1 << 10, "1KiB");
/// `health.failures`.
pub const MAX_FAILURES: u32 = 100;
/// `backlog`: listen(2)'s argument (the kernel caps it at net.core.somaxconn anyway).
pub const MAX_BACKLOG: u32 = 65_535;
/// Sockets one program can be given (the fork child moves them with a fixed-size array).
pub const MAX_SOCKETS: usize = 64;
/// Intervals and timeouts ginit acts on repeatedly (`health.interval`, `health.timeout`,
/// `watchdog`, `ready.timeout`): ready checks are retried every 100 ms, and anything shorter
/// would only keep ginit busy.
pub const MIN_CHECK_INTERVAL: (Duration, &str) = (Duration::from_millis(100), "100ms");
/// `monitor_window`: usage is sampled every second.
pub const MIN_MONITOR_WINDOW: (Duration, &str) = (Duration::from_secs(1), "1s");
/// `memory_max`: below this no program runs without being reloaded at once.
pub const MIN_MEMORY_MAX: (u64, &str) = (1 << 20, "1MiB");
/// `cpu_max`, in percent of one core.
pub const CPU_MAX_RANGE: (f64, f64) = (1.0, 100_000.0);
/// `config.debounce`: how long the config's files must be quiet before a watch reloads it.
pub const DEFAULT_CONFIG_DEBOUNCE: Duration = Duration::from_millis(500);
/// A program's `watch.debounce`.
pub const DEFAULT_WATCH_DEBOUNCE: Duration = Duration::from_secs(1);
/// `watch.paths` of one program.
pub const MAX_WATCH_PATHS: usize = 64;
/// `every`: a shorter interval is a busy loop, not a schedule.
pub const MIN_EVERY: (Duration, &str) = (Duration::from_secs(1), "1s");
/// Longest `ready: {log: TEXT}` (each line of a starting program is searched for it).
pub const MAX_READY_LOG: usize = 256;
/// Most files `include` may add (each at most MAX_CONFIG_BYTES).
pub const MAX_INCLUDED: usize = 256;
/// `log.buffer.lines`: lines kept per program for `ginit logs`.
pub const MAX_BUFFER_LINES: u32 = 1_000_000;
/// `log.buffer.bytes`: bytes of line text kept per program (so 10 programs at most 640 MiB).
pub const MAX_BUFFER_BYTES: (u64, &str) = (64 << 20, "64MiB");
/// At most this many errors are kept and printed (then "and N more errors"), which also
/// bounds the work spent on "did you mean" hints.
pub const MAX_ERRORS: usize = 100;
/// Words longer than this get no "did you mean" hint (no key or name is that long).
const MAX_HINT_LEN: usize = 64;

/// The least value of an rlimit with which a program can still start, with how it is
/// written: exec needs address space, data and stack, a few fds, one process, and a second
/// of CPU.
pub fn rlimit_floor(r: Rlimit) -> (u64, &'static str) {
    match r {
        Rlimit::AddressSpace => (16 << 20, "16MiB"),
        Rlimit::Data => (1 << 20, "1MiB"),
        Rlimit::Stack => (128 << 10, "128KiB"),
        Rlimit::OpenFiles => (16, "16"),
        Rlimit::Processes | Rlimit::CpuSeconds => (1, "1"),
        Rlimit::Core | Rlimit::FileSize => (0, "0"),
    }
}

/// `hook_timeout`: a hook is a short task beside supervision (a file, a webhook); past an
/// hour it is a program, and shorter than 100 ms it could not even start.
pub const HOOK_TIMEOUT_RANGE: (Duration, Duration, &str) = (
    Duration::from_millis(100),
    Duration::from_secs(3600),
    "must be from 100ms to 1h",
);
/// Default `hook_timeout`.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Default stop timeout, as Docker's `docker stop`.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub fn default_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(30),
        factor: 2.0,
        reset_after: Duration::from_secs(60),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The closest of `choices` to `word`, if close enough to be a likely typo. Candidates whose
/// length alone rules them out are skipped, and long words get no hint, so the work stays
/// small even against thousands of program names.
fn nearest<'a>(word: &str, choices: &[&'a str]) -> Option<&'a str> {
    if word.len() > MAX_HINT_LEN {
        return None;
    }
    let word = word.to_ascii_lowercase();
    let close = |c: &str| (c.len() / 3).max(2);
    let (best, d) = choices
        .iter()
        .filter(|c| c.len() <= MAX_HINT_LEN && c.len().abs_diff(word.len()) <= close(c))
        .map(|c| (*c, distance(&word, c)))
        .min_by_key(|(_, d)| *d)?;
    (d <= close(best)).then_some(best)
}

struct Validator<'r> {
    /// The main file (index 0) and the files it includes, for messages that point from one
    /// file into another; empty for text without a file.
    sources: Vec<PathBuf>,
    errors: Vec<ConfigError>,
    /// Errors found beyond MAX_ERRORS: counted, not kept.
    more: usize,
    resolver: &'r dyn Resolver,
    /// Every file output, checked once all are read (outputs may share a file, with one
    /// rotation).
    files: Vec<FileUse>,
    /// tcp and http checks of the program being read.
    addr_checks: Vec<AddrCheck>,
}

/// A file output: the file, its rotation, and the key path and position of the output.
struct FileUse {
    file: String,
    rotate: Option<Rotate>,
    path: String,
    mark: yaml::Mark,
}

/// A tcp or http check, kept to be compared with the sockets once all are read.
struct AddrCheck {
    /// Key path, e.g. `programs.web.ready.tcp`, and where its value is.
    path: String,
    mark: yaml::Mark,
    addr: SocketAddr,
    /// `ready` (else `health`).
    readiness: bool,
}

type Entries<'n> = Vec<(&'n str, &'n Node)>;

impl Validator<'_> {
    fn error(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.error_at(node.mark, path, message);
    }

    fn error_at(&mut self, mark: yaml::Mark, path: &str, message: impl Into<String>) {
        if self.errors.len() >= MAX_ERRORS {
            self.more += 1;
            return;
        }
        self.errors.push(ConfigError {
            file: mark.file,
            line: mark.line,
            col: mark.col,
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Where `mark` is, for a message about another place: `FILE:LINE:COL`, or `line L` in
    /// text without a file.
    fn place(&self, mark: yaml::Mark) -> String {
        match self.sources.get(mark.file as usize) {
            Some(file) => format!("{}:{}:{}", file.display(), mark.line, mark.col),
            None => format!("line {}", mark.line),
        }
    }

    /// " (did you mean `x`?)" or nothing; nothing once no more errors are kept.
    fn hint(&self, word: &str, choices: &[&str]) -> String {
        if self.errors.len() >= MAX_ERRORS {
            return String::new();
        }
        match nearest(word, choices) {
            Some(n) => format!(" (did you mean `{n}`?)"),
            None => String::new(),
        }
    }

    /// The entries of a mapping, with unknown, duplicate and not-yet-supported keys reported.
    fn mapping<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[Key],
        later: &[&str],
    ) -> Entries<'n> {
        let Value::Map(pairs) = &node.value else {
            if !node.is_null() {
                self.error(
                    node,
                    path,
                    format!("expected a mapping, found {}", node.kind()),
                );
            }
            return Vec::new();
        };
        let mut out: Entries<'n> = Vec::new();
        let mut seen = super::Names::new(pairs.len());
        for (key, value) in pairs {
            let Some(name) = key.scalar() else {
                self.error(key, path, "keys must be plain names");
                continue;
            };
            let at = join(path, name);
            if seen.insert(name, out.len()).is_some() {
                self.error(key, &at, "this key is given twice");
            } else if known.iter().any(|k| k.0 == name) {
                out.push((name, value));
            } else if later.contains(&name) {
                self.error(
                    key,
                    &at,
                    format!(
                        "`{name}` is part of ginit's design but not supported by this version yet"
                    ),
                );
            } else {
                let mut all = keys::names(known);
                all.extend_from_slice(later);
                let hint = self.hint(name, &all);
                self.error(key, &at, format!("unknown key `{name}`{hint}"));
            }
        }
        out
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } if !node.is_null() => Some(text.clone()),
            _ => {
                self.error(
                    node,
                    path,
                    format!("expected a string, found {}", node.kind()),
                );
                None
            }
        }
    }

    fn plain<'n>(&mut self, node: &'n Node, path: &str, what: &str) -> Option<&'n str> {
        match &node.value {
            Value::Scalar { text, plain: true } if !node.is_null() => Some(text),
            Value::Scalar { text, plain: false } => {
                self.error(
                    node,
                    path,
                    format!("expected {what}, found the string \"{text}\" (remove the quotes)"),
                );
                None
            }
            _ => {
                self.error(
                    node,
                    path,
                    format!("expected {what}, found {}", node.kind()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match self.plain(node, path, "true or false")? {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            other => {
                self.error(
                    node,
                    path,
                    format!("expected true or false, found `{other}`"),
                );
                None
            }
        }
    }

    /// One entry of `sockets:`: `{listen: ADDR, backlog, mode, owner}` or `{inherit: NAME}`.
    fn socket(&mut self, name: &str, key: &Node, node: &Node, path: &str) -> Option<SocketSpec> {
        let fields = self.mapping(node, path, keys::SOCKET, &[]);
        let mut listen = None;
        let mut backlog = 1024;
        let (mut mode, mut owner) = (None, None);
        for (k, n) in &fields {
            let p = join(path, k);
            match *k {
                "listen" => {
                    if let Some(text) = self.string(n, &p) {
                        match parse_listen(&text) {
                            Ok(l) => listen = Some(l),
                            Err(e) => self.error(n, &p, e),
                        }
                    }
                }
                "inherit" => listen = self.string(n, &p).map(Listen::Inherit),
                "backlog" => backlog = self.number(n, &p, 1, MAX_BACKLOG).unwrap_or(backlog),
                "mode" => {
                    if let Some(text) = self.string(n, &p) {
                        match u32::from_str_radix(text.trim_start_matches("0o"), 8) {
                            Ok(m) if m <= 0o777 => mode = Some(m),
                            _ => {
                                let msg =
                                    format!("`{text}` is not a file mode (write it like \"0660\")");
                                self.error(n, &p, msg);
                            }
                        }
                    }
                }
                _ => {
                    if let Some(text) = self.string(n, &p) {
                        match self.resolver.user(&text) {
                            Ok(c) => owner = Some((c.uid, c.gid)),
                            Err(e) => self.error(n, &p, e),
                        }
                    }
                }
            }
        }
        let unix_only = mode.is_some() || owner.is_some();
        match listen {
            None => {
                self.error(
                    key,
                    path,
                    "a socket needs `listen: ADDRESS` or `inherit: NAME`",
                );
                None
            }
            Some(Listen::Unix { path: file, .. }) => Some(SocketSpec {
                name: name.to_string(),
                listen: Listen::Unix {
                    path: file,
                    mode,
                    owner,
                },
                backlog,
            }),
            Some(other) => {
                if unix_only {
                    self.error(key, path, "`mode` and `owner` are for unix sockets");
                }
                Some(SocketSpec {
                    name: name.to_string(),
                    listen: other,
                    backlog,
                })
            }
        }
    }

    /// `metrics: {listen: ADDR}`: a tcp or unix address, as a socket's `listen` (no
    /// `inherit`: the endpoint is ginit's own, never handed to a program).
    fn metrics(&mut self, node: &Node) -> Option<Listen> {
        let mut listen = None;
        let fields = self.mapping(node, "metrics", keys::METRICS, &[]);
        if fields.is_empty() {
            self.error(node, "metrics", "`metrics` needs `listen: ADDRESS`");
        }
        for (k, n) in fields {
            let p = join("metrics", k);
            if let Some(text) = self.string(n, &p) {
                match parse_listen(&text) {
                    Ok(l) => listen = Some(l),
                    Err(e) => self.error(n, &p, e),
                }
            }
        }
        listen
    }

    /// `ready: {notify: true | tcp: ADDR | http: URL | exec: CMD | delay: D, timeout: D}`.
    fn ready(&mut self, node: &Node, path: &str) -> Option<ReadySpec> {
        let fields = self.mapping(node, path, keys::READY, &[]);
        let mut timeout = Duration::from_secs(60);
        let check = self.check(node, path, &fields, true);
        for (k, n) in &fields {
            if *k == "timeout" {
                let p = join(path, k);
                timeout = self
                    .duration_at_least(n, &p, MIN_CHECK_INTERVAL)
                    .unwrap_or(timeout);
            }
        }
        check.map(|check| ReadySpec { check, timeout })
    }

    /// `health: {tcp: ADDR | http: URL | exec: CMD, interval, timeout, failures}`.
    fn health(&mut self, node: &Node, path: &str) -> Option<HealthSpec> {
        let fields = self.mapping(node, path, keys::HEALTH, &[]);
        let check = self.check(node, path, &fields, false)?;
        let mut h = HealthSpec {
            check,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            failures: 3,
        };
        for (k, n) in &fields {
            let p = join(path, k);
            match *k {
                "interval" => {
                    h.interval = self
                        .duration_at_least(n, &p, MIN_CHECK_INTERVAL)
                        .unwrap_or(h.interval)
                }
                "timeout" => {
                    h.timeout = self
                        .duration_at_least(n, &p, MIN_CHECK_INTERVAL)
                        .unwrap_or(h.timeout)
                }
                "failures" => {
                    h.failures = self.number(n, &p, 1, MAX_FAILURES).unwrap_or(h.failures)
                }
                _ => {}
            }
        }
        Some(h)
    }

    /// The one check among `fields` (notify and delay only for readiness).
    fn check(
        &mut self,
        node: &Node,
        path: &str,
        fields: &Entries,
        readiness: bool,
    ) -> Option<ReadyCheck> {
        let kinds: &[&str] = if readiness {
            &["notify", "tcp", "http", "exec", "delay", "log"]
        } else {
            &["tcp", "http", "exec"]
        };
        let mut checks = Vec::new();
        for (k, n) in fields {
            let p = join(path, k);
            match *k {
                "notify" => match self.plain(n, &p, "true") {
                    Some("true") => checks.push(ReadyCheck::Notify),
                    Some("false") => {}
                    Some(other) => {
                        let msg = format!("expected true or false, found `{other}`");
                        self.error(n, &p, msg);
                    }
                    None => {}
                },
                "tcp" | "http" if n.scalar().is_some_and(|t| t.contains('$')) => {
                    // Known only at each attempt; not compared with the owned sockets.
                    let text = self.string(n, &p).unwrap_or_default();
                    match vars::check(&text) {
                        Ok(()) => checks.push(ReadyCheck::Expand {
                            http: *k == "http",
                            text,
                        }),
                        Err(e) => self.error(n, &p, e),
                    }
                }
                "tcp" => {
                    if let Some(text) = self.string(n, &p) {
                        match parse_tcp(&text) {
                            Ok(addr) => {
                                self.addr_checks.push(AddrCheck {
                                    path: p.clone(),
                                    mark: n.mark,
                                    addr,
                                    readiness,
                                });
                                checks.push(ReadyCheck::Tcp(addr))
                            }
                            Err(e) => self.error(n, &p, e),
                        }
                    }
                }
                "http" => {
                    if let Some(text) = self.string(n, &p) {
                        match parse_http_url(&text) {
                            Ok(c) => {
                                if let ReadyCheck::Http { addr, .. } = &c {
                                    self.addr_checks.push(AddrCheck {
                                        path: p.clone(),
                                        mark: n.mark,
                                        addr: *addr,
                                        readiness,
                                    });
                                }
                                checks.push(c)
                            }
                            Err(e) => self.error(n, &p, e),
                        }
                    }
                }
                "exec" => {
                    let argv = self.command(n, &p);
                    if let Some(first) = argv.first() {
                        let path_var = self.resolver.path_var();
                        if let Err(e) = self.resolver.executable(first, path_var.as_deref()) {
                            self.error(n, &p, e);
                        }
                        checks.push(ReadyCheck::Exec(argv));
                    }
                }
                "delay" => {
                    if let Some(d) = self.duration(n, &p) {
                        checks.push(ReadyCheck::Delay(d));
                    }
                }
                "log" => match self.string(n, &p) {
                    Some(text) if !text.is_empty() && text.len() <= MAX_READY_LOG => {
                        checks.push(ReadyCheck::Log(text))
                    }
                    Some(_) => {
                        let msg = format!("the text is 1 to {MAX_READY_LOG} bytes long");
                        self.error(n, &p, msg);
                    }
                    None => {}
                },
                _ => {}
            }
        }
        let what = kinds.join(", ");
        let given = fields.iter().any(|(k, _)| kinds.contains(k));
        if checks.len() > 1 {
            self.error(node, path, format!("give one check: {what}"));
        } else if !given {
            self.error(node, path, format!("give a check: {what}"));
        }
        checks.pop()
    }

    /// `reload: {strategy: replace | restart}` or `{strategy: signal, signal: SIGHUP}`.
    fn reload(&mut self, node: &Node, path: &str) -> ReloadStrategy {
        let mut strategy = "restart";
        let mut signal = None;
        for (k, v) in self.mapping(node, path, keys::RELOAD, &[]) {
            let p = join(path, k);
            if k == "signal" {
                signal = self.signal(v, &p);
            } else if let Some(s) = self.choice(v, &p, &["replace", "restart", "signal"]) {
                strategy = s;
            }
        }
        if strategy != "signal" && signal.is_some() {
            let msg = "`signal` goes with `strategy: signal`";
            self.error(node, &join(path, "signal"), msg);
        }
        match strategy {
            "signal" => ReloadStrategy::Signal(signal.unwrap_or(libc::SIGHUP)),
            "replace" => ReloadStrategy::Replace,
            _ => ReloadStrategy::Restart,
        }
    }

    /// `limits:`: rlimits (sizes or numbers, or `unlimited`), `nice`, `oom_score_adj`. A
    /// limit above ginit's own hard limit that ginit cannot raise is an error here rather
    /// than a program that fails to start.
    fn limits(&mut self, node: &Node, path: &str) -> Limits {
        let mut limits = Limits::default();
        for (k, v) in self.mapping(node, path, keys::LIMITS, &[]) {
            let p = join(path, k);
            match k {
                "nice" => limits.nice = self.integer(v, &p, -20, 19),
                "oom_score_adj" => limits.oom_score_adj = self.integer(v, &p, -1000, 1000),
                _ => {
                    let Some(r) = Rlimit::ALL.into_iter().find(|r| r.key() == k) else {
                        continue;
                    };
                    let value = if v.scalar() == Some("unlimited") {
                        None
                    } else if r.is_size() {
                        match self.size(v, &p) {
                            Some(n) => Some(n),
                            None => continue,
                        }
                    } else {
                        match self.plain(v, &p, "a whole number or `unlimited`") {
                            Some(t) => match t.parse::<u64>() {
                                Ok(n) => Some(n),
                                Err(_) => {
                                    let msg = format!(
                                        "expected a whole number or `unlimited`, found `{t}`"
                                    );
                                    self.error(v, &p, msg);
                                    continue;
                                }
                            },
                            None => continue,
                        }
                    };
                    let floor = rlimit_floor(r);
                    if value.is_some_and(|n| n < floor.0) {
                        let text = v.scalar().unwrap_or_default();
                        let msg = format!(
                            "must be at least {} (a program cannot start with less), found `{text}`",
                            floor.1,
                        );
                        self.error(v, &p, msg);
                        continue;
                    }
                    let (hard, can_raise) = self.resolver.hard_limit(r.resource());
                    let above = match (value, hard) {
                        (_, None) => false,
                        (None, Some(_)) => true,
                        (Some(n), Some(h)) => n > h,
                    };
                    if above && !can_raise {
                        let shown =
                            |x: Option<u64>| x.map_or("unlimited".into(), |n| n.to_string());
                        let msg = format!(
                            "{} is above ginit's own hard limit ({}), which ginit cannot raise \
                             without CAP_SYS_RESOURCE",
                            shown(value),
                            shown(hard)
                        );
                        self.error(v, &p, msg);
                    }
                    limits.rlimits.push((r, value));
                }
            }
        }
        limits
    }

    fn integer(&mut self, node: &Node, path: &str, min: i32, max: i32) -> Option<i32> {
        let text = self.plain(node, path, "a whole number")?;
        match text.parse::<i32>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                let msg = format!("expected a whole number from {min} to {max}, found `{text}`");
                self.error(node, path, msg);
                None
            }
        }
    }

    /// `150%` (or `150`): percent of one core, within CPU_MAX_RANGE.
    fn percent(&mut self, node: &Node, path: &str) -> Option<f64> {
        let text = self.string(node, path)?;
        let (min, max) = CPU_MAX_RANGE;
        match text.trim().trim_end_matches('%').parse::<f64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(n) if n.is_finite() => {
                let msg = format!("must be from {min}% to {max}%, found `{text}`");
                self.error(node, path, msg);
                None
            }
            _ => {
                let msg = format!("`{text}` is not a CPU share (write it like 50% or 150%)");
                self.error(node, path, msg);
                None
            }
        }
    }

    fn size(&mut self, node: &Node, path: &str) -> Option<u64> {
        let text = self.string(node, path)?;
        units::parse_size(&text)
            .map_err(|e| self.error(node, path, e))
            .ok()
    }

    /// A size of at least `min` (a value and how it is written).
    fn size_at_least(&mut self, node: &Node, path: &str, min: (u64, &str)) -> Option<u64> {
        let n = self.size(node, path)?;
        if n < min.0 {
            let text = node.scalar().unwrap_or_default();
            self.error(
                node,
                path,
                format!("must be at least {}, found `{text}`", min.1),
            );
            return None;
        }
        Some(n)
    }

    /// `log.buffer: {lines: N, bytes: SIZE}`, each bounded; 0 turns the ring off.
    fn log_buffer(&mut self, node: &Node, path: &str, buffer: &mut super::LogBuffer) {
        for (k, n) in self.mapping(node, path, keys::BUFFER, &[]) {
            let p = join(path, k);
            if k == "lines" {
                if let Some(lines) = self.number(n, &p, 0, MAX_BUFFER_LINES) {
                    buffer.lines = lines;
                }
            } else if let Some(bytes) = self.size(n, &p) {
                if bytes > MAX_BUFFER_BYTES.0 {
                    let text = n.scalar().unwrap_or_default();
                    let msg = format!("must be from 0 to {}, found `{text}`", MAX_BUFFER_BYTES.1);
                    self.error(n, &p, msg);
                } else {
                    buffer.bytes = bytes;
                }
            }
        }
    }

    /// A whole number from `min` to `max`.
    fn number(&mut self, node: &Node, path: &str, min: u32, max: u32) -> Option<u32> {
        let text = self.plain(node, path, "a whole number")?;
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        // Digits that do not fit in 64 bits are still a number, just far out of range.
        match text.parse::<u64>().ok().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ if digits => {
                let msg = format!("must be from {min} to {max}, found {text}");
                self.error(node, path, msg);
                None
            }
            _ => {
                let msg = format!("expected a whole number, found `{text}`");
                self.error(node, path, msg);
                None
            }
        }
    }

    /// A duration of at least `min` (a value and how it is written), at most 365d.
    fn duration_at_least(
        &mut self,
        node: &Node,
        path: &str,
        min: (Duration, &str),
    ) -> Option<Duration> {
        let d = self.duration(node, path)?;
        if d < min.0 {
            let text = node.scalar().unwrap_or_default();
            let msg = format!("must be from {} to 365d, found `{text}`", min.1);
            self.error(node, path, msg);
            return None;
        }
        Some(d)
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let text = self.string(node, path)?;
        units::parse_duration(&text)
            .map_err(|e| self.error(node, path, e))
            .ok()
    }

    fn signal(&mut self, node: &Node, path: &str) -> Option<i32> {
        let text = self.string(node, path)?;
        match signals::parse(&text) {
            Some(sig) if !signals::is_untouched(sig) || sig == libc::SIGKILL => Some(sig),
            Some(_) => {
                self.error(
                    node,
                    path,
                    format!("`{text}` cannot be used to stop a program"),
                );
                None
            }
            None => {
                self.error(
                    node,
                    path,
                    format!("`{text}` is not a signal (write it like SIGTERM, TERM or 15)"),
                );
                None
            }
        }
    }

    fn choice<'c>(&mut self, node: &Node, path: &str, choices: &[&'c str]) -> Option<&'c str> {
        let text = self.string(node, path)?;
        match choices.iter().find(|c| **c == text) {
            Some(c) => Some(c),
            None => {
                let list = choices
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.error(
                    node,
                    path,
                    format!(
                        "unknown value `{text}`; expected one of {list}{}",
                        self.hint(&text, choices)
                    ),
                );
                None
            }
        }
    }

    /// `success_exit_codes`: a list of exit statuses 0 to 255, sorted and without repeats.
    fn exit_codes(&mut self, node: &Node, path: &str) -> Vec<i32> {
        let Value::Seq(items) = &node.value else {
            let found = node.kind();
            self.error(
                node,
                path,
                format!("expected a list of exit statuses, found {found}"),
            );
            return Vec::new();
        };
        let mut codes: Vec<i32> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(code) = self.integer(item, &format!("{path}[{i}]"), 0, 255)
                && let Err(at) = codes.binary_search(&code)
            {
                codes.insert(at, code);
            }
        }
        codes
    }

    fn string_list(&mut self, node: &Node, path: &str) -> Vec<(String, Node)> {
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let s = self.string(item, &format!("{path}[{i}]"))?;
                    Some((s, item.clone()))
                })
                .collect(),
            _ if node.is_null() => Vec::new(),
            _ => {
                self.error(
                    node,
                    path,
                    format!("expected a list, found {}", node.kind()),
                );
                Vec::new()
            }
        }
    }

    /// `inherit`, `null`, `prefix`, `json` or `{file: PATH, rotate: {size, keep}}`.
    fn output(&mut self, node: &Node, path: &str) -> Output {
        if let Value::Map(_) = node.value {
            return self.file_output(node, path);
        }
        // `null` is YAML's null too; here it names the output that discards.
        if matches!(node.scalar(), Some("null" | "Null" | "NULL" | "~")) {
            return Output::Null;
        }
        match self.choice(node, path, &["inherit", "prefix", "json", "null"]) {
            Some("null") => Output::Null,
            Some("prefix") => Output::Prefix,
            Some("json") => Output::Json,
            _ => Output::Inherit,
        }
    }

    fn file_output(&mut self, node: &Node, path: &str) -> Output {
        let mut file = None;
        let mut rotate = None;
        for (key, value) in self.mapping(node, path, keys::FILE_OUTPUT, &[]) {
            let at = join(path, key);
            if key == "file" {
                file = self.string(value, &at).map(PathBuf::from);
                continue;
            }
            let mut r = Rotate {
                size: 10 << 20,
                keep: 5,
            };
            for (k, v) in self.mapping(value, &at, keys::ROTATE, &[]) {
                let p = join(&at, k);
                if k == "size" {
                    r.size = self.size_at_least(v, &p, MIN_ROTATE_SIZE).unwrap_or(r.size);
                } else {
                    r.keep = self.number(v, &p, 1, MAX_KEEP).unwrap_or(r.keep);
                }
            }
            rotate = Some(r);
        }
        match file {
            Some(file) if file.is_absolute() => {
                self.files.push(FileUse {
                    file: file.to_string_lossy().into_owned(),
                    rotate,
                    path: path.to_string(),
                    mark: node.mark,
                });
                Output::File { path: file, rotate }
            }
            Some(file) => {
                let msg = format!("`{}` must be an absolute path", file.display());
                self.error(node, &join(path, "file"), msg);
                Output::Inherit
            }
            None => {
                self.error(node, path, "a file output needs `file: /path/to/log`");
                Output::Inherit
            }
        }
    }

    fn command(&mut self, node: &Node, path: &str) -> Vec<String> {
        let argv = match &node.value {
            Value::Seq(_) => self
                .string_list(node, path)
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
            Value::Scalar { text, .. } if !node.is_null() => match super::words::split(text) {
                Ok(words) => words,
                Err(e) => {
                    self.error(node, path, e);
                    return Vec::new();
                }
            },
            _ => {
                self.error(
                    node,
                    path,
                    format!("expected a list or a string, found {}", node.kind()),
                );
                return Vec::new();
            }
        };
        if argv.is_empty() {
            self.error(node, path, "the command is empty");
        }
        if argv.iter().any(|a| a.contains('\0')) {
            self.error(node, path, "the command contains a NUL byte");
        }
        for word in &argv {
            if let Err(e) = vars::check(word) {
                self.error(node, path, e);
            }
        }
        argv
    }

    /// `env_file: PATH | [PATH...]`: absolute paths, `-/path` for a file that may be missing.
    fn env_files(&mut self, node: &Node, path: &str) -> Vec<(PathBuf, bool)> {
        let list = match &node.value {
            Value::Seq(_) => self.string_list(node, path),
            _ => self
                .string(node, path)
                .map(|s| vec![(s, node.clone())])
                .unwrap_or_default(),
        };
        let mut files = Vec::new();
        for (i, (text, item)) in list.into_iter().enumerate() {
            let (file, optional) = match text.strip_prefix('-') {
                Some(rest) => (PathBuf::from(rest), true),
                None => (PathBuf::from(&text), false),
            };
            if !file.is_absolute() {
                let at = format!("{path}[{i}]");
                self.error(
                    &item,
                    &at,
                    "write an absolute path (`-/path` if it may be missing)",
                );
                continue;
            }
            files.push((file, optional));
        }
        files
    }

    /// `key` is the program's name in the file: errors about the program as a whole point there.
    fn program(&mut self, name: &str, key: &Node, node: &Node, path: &str) -> Option<ProgramSpec> {
        let fields = self.mapping(node, path, keys::PROGRAM, &[]);
        if !matches!(node.value, Value::Map(_)) {
            if node.is_null() {
                self.error(key, path, "a program needs at least `command`");
            }
            return None;
        }
        let mut spec = ProgramSpec::new(name, Vec::new());
        let mut restart = None;
        let mut command_node = None;
        let mut stop_command_node: Option<(&Node, String)> = None;
        let (mut user, mut group) = (None, None);
        for (key, value) in &fields {
            let at = join(path, key);
            match *key {
                "command" => {
                    spec.command = self.command(value, &at);
                    command_node = Some(*value);
                }
                "env" => {} // below, once `fields` is no longer borrowed mutably
                "cwd" => {
                    if let Some(dir) = self.string(value, &at) {
                        let dir = PathBuf::from(dir);
                        if !dir.is_absolute() {
                            self.error(
                                value,
                                &at,
                                format!("`{}` must be an absolute path", dir.display()),
                            );
                        } else if let Err(e) = self.resolver.directory(&dir) {
                            self.error(value, &at, e);
                        }
                        spec.cwd = Some(dir);
                    }
                }
                "user" => user = self.string(value, &at).map(|u| (u, *value)),
                "group" => group = self.string(value, &at).map(|g| (g, *value)),
                "instances" => {
                    spec.instances = self.number(value, &at, 1, MAX_INSTANCES).unwrap_or(1)
                }
                "oneshot" => spec.oneshot = self.boolean(value, &at).unwrap_or(false),
                "watch" => spec.watch = self.file_watch(value, &at),
                "schedule" => {
                    if let Some(text) = self.string(value, &at) {
                        match Cron::parse(&text) {
                            Ok(cron) => spec.schedule = Some(Schedule::Cron(text, cron)),
                            Err(e) => self.error(value, &at, e),
                        }
                    }
                }
                "every" => {
                    spec.schedule = self
                        .duration_at_least(value, &at, MIN_EVERY)
                        .map(Schedule::Every)
                }
                "depends_on" => {
                    spec.depends_on = self
                        .string_list(value, &at)
                        .into_iter()
                        .map(|(s, _)| s)
                        .collect()
                }
                "restart" => {
                    restart = self
                        .choice(value, &at, &["always", "on-failure", "never"])
                        .map(|r| match r {
                            "always" => Restart::Always,
                            "on-failure" => Restart::OnFailure,
                            _ => Restart::Never,
                        })
                }
                "backoff" => {
                    let f = self.mapping(value, &at, keys::BACKOFF, &[]);
                    for (k, v) in f {
                        let p = join(&at, k);
                        let b = &mut spec.backoff;
                        match k {
                            "initial" => b.initial = self.duration(v, &p).unwrap_or(b.initial),
                            "max" => b.max = self.duration(v, &p).unwrap_or(b.max),
                            "reset_after" => {
                                b.reset_after = self.duration(v, &p).unwrap_or(b.reset_after)
                            }
                            _ => {
                                let text = self.plain(v, &p, "a number").unwrap_or("2");
                                match text.parse::<f64>() {
                                    Ok(f) if (1.0..=100.0).contains(&f) => spec.backoff.factor = f,
                                    _ => self.error(
                                        v,
                                        &p,
                                        format!("expected a number from 1 to 100, found `{text}`"),
                                    ),
                                }
                            }
                        }
                    }
                    if spec.backoff.max < spec.backoff.initial {
                        self.error(
                            value,
                            &join(&at, "max"),
                            "must not be shorter than `initial`",
                        );
                    }
                }
                "max_restarts" => {
                    spec.max_restarts = self.number(value, &at, 0, MAX_RESTARTS).unwrap_or(10)
                }
                "restart_window" => {
                    spec.restart_window = self.duration(value, &at).unwrap_or(spec.restart_window)
                }
                "critical" => spec.critical = self.boolean(value, &at).unwrap_or(false),
                "stop" => {
                    let f = self.mapping(value, &at, keys::STOP, &[]);
                    for (k, v) in f {
                        let p = join(&at, k);
                        if k == "signal" {
                            spec.stop_signal = self.signal(v, &p).unwrap_or(libc::SIGTERM);
                        } else if k == "command" {
                            spec.stop_command = self.command(v, &p);
                            stop_command_node = Some((v, p));
                        } else {
                            spec.stop_timeout =
                                self.duration(v, &p).unwrap_or(DEFAULT_STOP_TIMEOUT);
                        }
                    }
                }
                "stdout" => spec.stdout = self.output(value, &at),
                "stderr" => spec.stderr = self.output(value, &at),
                "reload" => spec.reload = self.reload(value, &at),
                "ready" => spec.ready = self.ready(value, &at),
                "health" => spec.health = self.health(value, &at),
                "watchdog" => {
                    spec.watchdog = self.duration_at_least(value, &at, MIN_CHECK_INTERVAL)
                }
                "sockets" => {
                    spec.sockets = self
                        .string_list(value, &at)
                        .into_iter()
                        .map(|(s, _)| s)
                        .collect();
                    if spec.sockets.len() > MAX_SOCKETS {
                        let msg = format!("at most {MAX_SOCKETS} sockets per program");
                        self.error(value, &at, msg);
                    }
                }
                "limits" => spec.limits = self.limits(value, &at),
                "memory_max" => spec.memory_max = self.size_at_least(value, &at, MIN_MEMORY_MAX),
                "cpu_max" => spec.cpu_max = self.percent(value, &at),
                "monitor_window" => {
                    spec.monitor_window = self
                        .duration_at_least(value, &at, MIN_MONITOR_WINDOW)
                        .unwrap_or(spec.monitor_window)
                }
                "cpu_action" => {
                    spec.cpu_action = match self.choice(value, &at, &["warn", "restart"]) {
                        Some("restart") => CpuAction::Restart,
                        _ => CpuAction::Warn,
                    }
                }
                "success_exit_codes" => spec.success_exit_codes = self.exit_codes(value, &at),
                "env_file" => spec.env_files = self.env_files(value, &at),
                "runtime_env" => spec.runtime_env = self.boolean(value, &at).unwrap_or(true),
                "on_exit" | "on_failed" | "hook_timeout" => {} // below, with `env` and `cwd`
                _ => {}
            }
        }
        if let Some((_, env)) = fields.iter().find(|(k, _)| *k == "env") {
            spec.env = self.env(env, &join(path, "env"));
        }
        let through = |o: &Output| !matches!(o, Output::Inherit | Output::Null);
        if let Some(ReadySpec {
            check: ReadyCheck::Log(_),
            ..
        }) = &spec.ready
            && !through(&spec.stdout)
            && !through(&spec.stderr)
            && let Some((_, node)) = fields.iter().find(|(k, _)| *k == "ready")
        {
            let msg = "`log` reads the program's output, which must pass through ginit: set \
                       `stdout` (or `stderr`) to prefix, json or a file";
            self.error(node, &join(path, "ready"), msg);
        }
        if !spec.sockets.is_empty() && !fields.iter().any(|(k, _)| *k == "reload") {
            spec.reload = ReloadStrategy::Replace;
        }
        self.scheduled(&mut spec, &fields, path);
        spec.restart = restart.unwrap_or(if spec.oneshot {
            Restart::OnFailure
        } else {
            Restart::Always
        });
        if spec.oneshot && spec.instances != 1 {
            self.error(
                key,
                &join(path, "instances"),
                "a oneshot program runs once: `instances` must be 1",
            );
        }
        match command_node {
            None => self.error(key, path, "a program needs `command`"),
            Some(cmd_node) => {
                let command = std::mem::take(&mut spec.command);
                self.executable(&spec, &command, cmd_node, &join(path, "command"));
                spec.command = command;
            }
        }
        if let Some((node, at)) = stop_command_node {
            let command = std::mem::take(&mut spec.stop_command);
            self.executable(&spec, &command, node, &at);
            spec.stop_command = command;
        }
        self.hooks(&mut spec, &fields, path);
        let spec_user = match (&user, &group) {
            (Some((u, _)), Some((g, _))) => Some((format!("{u}:{g}"), user.as_ref().map(|x| x.1))),
            (Some((u, _)), None) => Some((u.clone(), user.as_ref().map(|x| x.1))),
            (None, Some((g, n))) => {
                self.error(
                    n,
                    &join(path, "group"),
                    format!("`group: {g}` needs `user` too"),
                );
                None
            }
            (None, None) => None,
        };
        if let Some((text, Some(at))) = spec_user {
            let p = join(path, "user");
            match self.resolver.user(&text) {
                Ok(creds) => {
                    let euid = self.resolver.euid();
                    if euid != 0 && creds.uid != euid {
                        self.error(at, &p, format!("ginit runs as uid {euid}, and only root can start programs as another user"));
                    }
                    spec.user = Some(creds);
                }
                Err(e) => self.error(at, &p, e),
            }
        }
        Some(spec)
    }

    /// Checks that `argv[0]` can be run as `spec` runs it (its PATH, its directory).
    fn executable(&mut self, spec: &ProgramSpec, argv: &[String], node: &Node, path: &str) {
        let Some(exe) = argv.first() else {
            return;
        };
        if exe.contains('$') {
            // Known only at each start (`${NAME}`): that start fails if it cannot run.
            return;
        }
        let own = self.resolver.path_var();
        let path_var = match spec.env.iter().find(|(k, _)| k == "PATH") {
            // `PATH: /app/bin:${PATH}` adds to ginit's.
            Some((_, v)) => vars::expand(v, |n| own.as_deref().filter(|_| n == "PATH")).ok(),
            None => own.clone(),
        };
        let exe = match &spec.cwd {
            Some(cwd) if exe.contains('/') && !exe.starts_with('/') => {
                cwd.join(exe).to_string_lossy().into_owned()
            }
            _ => exe.clone(),
        };
        if let Err(e) = self.resolver.executable(&exe, path_var.as_deref()) {
            self.error(node, path, e);
        }
    }

    /// `watch: {paths, ignore, debounce}`: absolute paths (at least one), globs to ignore.
    fn file_watch(&mut self, node: &Node, path: &str) -> Option<FileWatch> {
        let mut w = FileWatch {
            paths: Vec::new(),
            ignore: Vec::new(),
            debounce: DEFAULT_WATCH_DEBOUNCE,
        };
        for (k, n) in self.mapping(node, path, keys::WATCH, &[]) {
            let p = join(path, k);
            let list = match &n.value {
                Value::Seq(_) => self.string_list(n, &p),
                _ if k == "debounce" => Vec::new(),
                _ => self
                    .string(n, &p)
                    .map(|s| vec![(s, n.clone())])
                    .unwrap_or_default(),
            };
            match k {
                "paths" => {
                    for (text, item) in list {
                        let file = PathBuf::from(&text);
                        if !file.is_absolute() {
                            self.error(&item, &p, format!("`{text}` must be an absolute path"));
                        }
                        w.paths.push(file);
                    }
                    if w.paths.len() > MAX_WATCH_PATHS {
                        let msg = format!("at most {MAX_WATCH_PATHS} paths");
                        self.error(n, &p, msg);
                    }
                }
                "ignore" => w.ignore = list.into_iter().map(|(s, _)| s).collect(),
                _ => {
                    if let Some(d) = self.duration_at_least(n, &p, MIN_CHECK_INTERVAL) {
                        w.debounce = d;
                    }
                }
            }
        }
        if w.paths.is_empty() {
            self.error(
                node,
                &join(path, "paths"),
                "name at least one path to watch",
            );
            return None;
        }
        Some(w)
    }

    /// `schedule` / `every`: one of the two, and the program is a oneshot (`oneshot: false`
    /// beside them is a contradiction, said as such) with one instance.
    fn scheduled(&mut self, spec: &mut ProgramSpec, fields: &[(&str, &Node)], path: &str) {
        let has = |k: &str| fields.iter().find(|(key, _)| *key == k).map(|(_, n)| *n);
        let (schedule, every) = (has("schedule"), has("every"));
        if schedule.is_none() && every.is_none() {
            return;
        }
        if let (Some(_), Some(every)) = (schedule, every) {
            let msg = "give `schedule` (cron times) or `every` (an interval), not both";
            self.error(every, &join(path, "every"), msg);
        }
        if let Some(oneshot) = has("oneshot")
            && !spec.oneshot
        {
            let msg = "a scheduled program runs as a oneshot at each time: drop `oneshot: false`";
            self.error(oneshot, &join(path, "oneshot"), msg);
        }
        spec.oneshot = true;
    }

    /// `on_exit`, `on_failed` (commands like `command`, run as the program runs) and
    /// `hook_timeout`.
    fn hooks(&mut self, spec: &mut ProgramSpec, fields: &[(&str, &Node)], path: &str) {
        for (key, value) in fields {
            let at = join(path, key);
            let argv = match *key {
                "on_exit" | "on_failed" => self.command(value, &at),
                "hook_timeout" => {
                    let (min, max, range) = HOOK_TIMEOUT_RANGE;
                    match self.duration(value, &at) {
                        Some(d) if (min..=max).contains(&d) => spec.hooks.timeout = d,
                        Some(_) => {
                            let text = value.scalar().unwrap_or_default();
                            self.error(value, &at, format!("{range}, found `{text}`"));
                        }
                        None => {}
                    }
                    continue;
                }
                _ => continue,
            };
            self.executable(spec, &argv, value, &at);
            if *key == "on_exit" {
                spec.hooks.on_exit = argv;
            } else {
                spec.hooks.on_failed = argv;
            }
        }
    }

    fn env(&mut self, node: &Node, path: &str) -> Vec<(String, String)> {
        let Value::Map(pairs) = &node.value else {
            if !node.is_null() {
                self.error(
                    node,
                    path,
                    format!("expected a mapping of NAME: value, found {}", node.kind()),
                );
            }
            return Vec::new();
        };
        let mut env: Vec<(String, String)> = Vec::new();
        let mut seen = super::Names::new(pairs.len());
        for (k, v) in pairs {
            let Some(name) = k.scalar() else {
                self.error(k, path, "variable names must be strings");
                continue;
            };
            let at = join(path, name);
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                self.error(k, &at, "not a valid environment variable name");
                continue;
            }
            if seen.contains(name) {
                self.error(k, &at, "this variable is given twice");
                continue;
            }
            if v.is_null() {
                self.error(v, &at, "needs a value; write \"\" for an empty one");
                continue;
            }
            if let Some(value) = self.string(v, &at) {
                if value.contains('\0') {
                    self.error(v, &at, "contains a NUL byte");
                }
                if let Err(e) = vars::check(&value) {
                    self.error(v, &at, e);
                }
                seen.insert(name, env.len());
                env.push((name.to_string(), value));
            }
        }
        env
    }
}

/// `tcp://HOST:PORT` (an IP literal or `localhost`; `[::]` for IPv6) or `unix:///path`.
pub fn parse_listen(text: &str) -> Result<Listen, String> {
    let bad = || {
        format!(
            "`{text}` is not a listen address (write it like tcp://0.0.0.0:8080, \
             tcp://[::]:8080 or unix:///run/app.sock)"
        )
    };
    if let Some(rest) = text
        .strip_prefix("unix://")
        .or_else(|| text.strip_prefix("unix:"))
    {
        let path = PathBuf::from(rest);
        if !path.is_absolute() {
            return Err(format!("`{text}`: the socket path must be absolute"));
        }
        return Ok(Listen::Unix {
            path,
            mode: None,
            owner: None,
        });
    }
    let rest = text.strip_prefix("tcp://").ok_or_else(bad)?;
    let rest = rest.replace("localhost:", "127.0.0.1:");
    rest.parse::<std::net::SocketAddr>()
        .map(Listen::Tcp)
        .map_err(|_| bad())
}

/// `http://HOST[:PORT]/path` (HOST an IP literal, `[v6]` or `localhost`; port 80 by default).
/// A `tcp` check's address: `[tcp://]IP:PORT` (`localhost` taken as 127.0.0.1).
pub fn parse_tcp(text: &str) -> Result<SocketAddr, String> {
    let t = text.strip_prefix("tcp://").unwrap_or(text);
    t.replace("localhost:", "127.0.0.1:")
        .parse()
        .map_err(|_| format!("`{text}` is not an address (write it like 127.0.0.1:8080)"))
}

pub fn parse_http_url(url: &str) -> Result<ReadyCheck, String> {
    let bad =
        || format!("`{url}` is not an http URL (write it like http://127.0.0.1:8080/healthz)");
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let with_port = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:80")
    } else {
        authority.to_string()
    };
    let addr = with_port
        .replace("localhost:", "127.0.0.1:")
        .parse()
        .map_err(|_| bad())?;
    Ok(ReadyCheck::Http {
        addr,
        host: authority.to_string(),
        path: path.to_string(),
    })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A cycle as a message: whole when short, else its first and last names around a count.
fn show_cycle(cycle: &[&str]) -> String {
    const SHOWN: usize = 8;
    let elide = cycle.len() > 2 * SHOWN + 1;
    let mut out = String::new();
    for (i, name) in cycle.iter().enumerate() {
        if elide && i == SHOWN {
            out += &format!(" -> ({} more)", cycle.len() - 2 * SHOWN);
        }
        if elide && (SHOWN..cycle.len() - SHOWN).contains(&i) {
            continue;
        }
        if i > 0 {
            out += " -> ";
        }
        out += name;
    }
    out
}

/// Whether a listener on `listener` answers connections to `check`: the same port, and the
/// same address, or the listener's address unspecified (0.0.0.0 for IPv4; [::], which is
/// taken to cover IPv4 too), or the check's address unspecified (a connect to 0.0.0.0 or
/// [::] reaches this host). IPv4-mapped IPv6 addresses count as IPv4.
fn serves(listener: SocketAddr, check: SocketAddr) -> bool {
    let plain = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (l, c) = (plain(listener.ip()), plain(check.ip()));
    listener.port() == check.port()
        && (l == c
            || c.is_unspecified()
            || match l {
                IpAddr::V4(a) => a.is_unspecified() && c.is_ipv4(),
                IpAddr::V6(a) => a.is_unspecified(),
            })
}

/// Validates config text: the whole config, or every error found.
/// Errors of a file that does not validate: the first MAX_ERRORS found (in file order), and
/// how many more there were.
pub type Rejection = (Vec<ConfigError>, usize);

/// Validates config text without a file (so without `include`): the whole config, or every
/// error found (see [`Rejection`]).
#[cfg(test)]
pub fn validate(text: &str, resolver: &dyn Resolver) -> Result<Config, Rejection> {
    validate_file(text, None, resolver, &mut Vec::new())
}

/// Validates the config text of `file`, with the files its `include` patterns name (relative
/// ones from the directory of `file`), which are listed in `included` (an error's `file` k
/// is the k-th).
///
/// Near-linear in the size of the files: names are looked up in hash maps, the dependency
/// graph is walked once, and hints stop with the errors kept.
pub fn validate_file(
    text: &str,
    file: Option<&Path>,
    resolver: &dyn Resolver,
    included: &mut Vec<PathBuf>,
) -> Result<Config, Rejection> {
    let mut root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            let e = ConfigError {
                file: 0,
                line: 1,
                col: 1,
                path: String::new(),
                message: "the config is empty: it needs a `programs:` mapping".into(),
            };
            return Err((vec![e], 0));
        }
        Err(e) => {
            let e = ConfigError {
                file: 0,
                line: e.mark.line,
                col: e.mark.col,
                path: String::new(),
                message: e.message,
            };
            return Err((vec![e], 0));
        }
    };
    let mut v = Validator {
        sources: file.map(Path::to_path_buf).into_iter().collect(),
        errors: Vec::new(),
        more: 0,
        resolver,
        files: Vec::new(),
        addr_checks: Vec::new(),
    };
    let includes = match file {
        Some(file) => merge_includes(&mut v, &mut root, file, included),
        None => Vec::new(),
    };
    let top = v.mapping(&root, "", keys::TOP, &[]);
    let mut config = Config {
        includes,
        ..Config::default()
    };
    let mut socket_refs: Vec<(&str, &Node)> = Vec::new();
    // Every socket name written, valid or not: references are checked against these.
    let mut declared_sockets = super::Names::new(0);
    let mut socket_names: Vec<&str> = Vec::new();
    // Where each program and socket name is first defined (for "defined twice" messages).
    let mut program_marks: Vec<yaml::Mark> = Vec::new();
    let mut socket_marks: Vec<yaml::Mark> = Vec::new();
    let mut dep_nodes: Vec<(&str, &Node)> = Vec::new();
    // Program names written (valid or not), and sockets defined.
    let mut program_names = super::Names::new(0);
    let mut socket_index = super::Names::new(0);
    // tcp and http checks, with the index of their program in `config.programs`.
    let mut addr_checks: Vec<(usize, AddrCheck)> = Vec::new();
    let mut programs_node = None;
    for (key, value) in &top {
        match *key {
            "programs" => {
                let Value::Map(pairs) = &value.value else {
                    v.error(
                        value,
                        "programs",
                        format!("expected a mapping of programs, found {}", value.kind()),
                    );
                    continue;
                };
                programs_node = Some(*value);
                for (k, node) in pairs {
                    let Some(name) = k.scalar() else { continue };
                    let path = join("programs", name);
                    if !valid_name(name) {
                        v.error(k, &path, "program names use letters, digits, `_`, `-` and `.`, starting with a letter or digit");
                    }
                    if let Some(first) = program_names.insert(name, program_marks.len()) {
                        let at = program_marks.get(first).map(|&m| v.place(m));
                        let msg = format!(
                            "this program is defined twice (first at {})",
                            at.unwrap_or_default()
                        );
                        v.error(k, &path, msg);
                        continue;
                    }
                    program_marks.push(k.mark);
                    v.addr_checks.clear();
                    if let Some(spec) = v.program(name, k, node, &path) {
                        let at = config.programs.len();
                        addr_checks.extend(v.addr_checks.drain(..).map(|c| (at, c)));
                        if let Value::Map(fields) = &node.value
                            && let Some((_, deps)) = fields
                                .iter()
                                .find(|(k, _)| k.scalar() == Some("depends_on"))
                            && let Value::Seq(items) = &deps.value
                        {
                            dep_nodes.extend(items.iter().map(|item| (name, item)));
                        }
                        if let Value::Map(fields) = &node.value
                            && let Some((_, socks)) =
                                fields.iter().find(|(k, _)| k.scalar() == Some("sockets"))
                            && let Value::Seq(items) = &socks.value
                        {
                            socket_refs.extend(items.iter().map(|item| (name, item)));
                        }
                        config.programs.push(spec);
                    }
                }
            }
            "shutdown" => {
                for (k, n) in v.mapping(value, "shutdown", keys::SHUTDOWN, &[]) {
                    let p = join("shutdown", k);
                    let d = v.duration(n, &p);
                    match (k, d) {
                        ("delay", Some(d)) => config.shutdown.delay = d,
                        (_, Some(d)) => config.shutdown.timeout = d,
                        _ => {}
                    }
                }
            }
            "sockets" => {
                let Value::Map(pairs) = &value.value else {
                    let msg = format!("expected a mapping of sockets, found {}", value.kind());
                    v.error(value, "sockets", msg);
                    continue;
                };
                for (k, node) in pairs {
                    let Some(name) = k.scalar() else { continue };
                    let path = join("sockets", name);
                    let earlier = declared_sockets.insert(name, socket_names.len());
                    let first = earlier.is_none();
                    if first {
                        socket_names.push(name);
                        socket_marks.push(k.mark);
                    }
                    if !valid_name(name) {
                        v.error(
                            k,
                            &path,
                            "socket names use letters, digits, `_`, `-` and `.`",
                        );
                    } else if !first || socket_index.contains(name) {
                        let at = earlier
                            .and_then(|i| socket_marks.get(i))
                            .map(|&m| v.place(m));
                        let msg = format!(
                            "this socket is defined twice (first at {})",
                            at.unwrap_or_default()
                        );
                        v.error(k, &path, msg);
                    } else if let Some(spec) = v.socket(name, k, node, &path) {
                        socket_index.insert(name, config.sockets.len());
                        config.sockets.push(spec);
                    }
                }
            }
            // Read already (merge_includes).
            "include" => {}
            "metrics" => config.metrics = v.metrics(value),
            "config" => {
                let (mut on, mut debounce) = (false, DEFAULT_CONFIG_DEBOUNCE);
                for (k, n) in v.mapping(value, "config", keys::CONFIG, &[]) {
                    let p = join("config", k);
                    if k == "watch" {
                        on = v.boolean(n, &p).unwrap_or(false);
                    } else if let Some(d) = v.duration_at_least(n, &p, MIN_CHECK_INTERVAL) {
                        debounce = d;
                    }
                }
                config.watch = on.then_some(debounce);
            }
            "control" => {
                for (k, n) in v.mapping(value, "control", keys::CONTROL, &[]) {
                    if let Some(path) = v.string(n, &join("control", k)) {
                        config.control_socket = PathBuf::from(path);
                    }
                }
            }
            _ => {
                for (k, n) in v.mapping(value, "log", keys::LOG, &[]) {
                    let p = join("log", k);
                    if k == "buffer" {
                        v.log_buffer(n, &p, &mut config.log.buffer);
                    } else if k == "timestamps" {
                        config.log.timestamps = v.boolean(n, &p).unwrap_or(false);
                    } else if k == "level" {
                        config.log.level = v.string(n, &p);
                    } else if k == "file" {
                        match v.string(n, &p).map(PathBuf::from) {
                            Some(f) if f.is_absolute() => config.log.file = Some(f),
                            Some(f) => {
                                let msg = format!("`{}` must be an absolute path", f.display());
                                v.error(n, &p, msg);
                            }
                            None => {}
                        }
                    } else if let Some(f) = v.choice(n, &p, &["text", "json"]) {
                        config.log.format = if f == "json" {
                            LogFormat::Json
                        } else {
                            LogFormat::Text
                        };
                    }
                }
            }
        }
    }
    if !top.iter().any(|(k, _)| *k == "programs") {
        v.error(&root, "programs", "the config needs a `programs:` mapping");
    }
    let total: u64 = config.programs.iter().map(|p| u64::from(p.instances)).sum();
    if total > u64::from(MAX_TOTAL_INSTANCES)
        && let Some(node) = programs_node
    {
        let msg =
            format!("the programs have {total} instances in all; at most {MAX_TOTAL_INSTANCES}");
        v.error(node, "programs", msg);
    }
    let parsed = super::name_index(&config.programs);
    let mut name_refs: Vec<&str> = Vec::new();
    for (program, node) in &dep_nodes {
        let Some(dep) = node.scalar() else { continue };
        let path = format!("programs.{program}.depends_on");
        if dep == *program {
            v.error(node, &path, format!("`{program}` cannot depend on itself"));
        } else if let Some(i) = parsed.get(dep)
            && config.programs.get(i).is_some_and(|p| p.schedule.is_some())
        {
            let msg = format!(
                "`{dep}` is scheduled: it runs at its times, not once, so nothing can wait for it"
            );
            v.error(node, &path, msg);
        } else if !parsed.contains(dep) {
            // Only built when a hint is wanted, and only once.
            if name_refs.is_empty() {
                name_refs = config.programs.iter().map(|p| p.name.as_str()).collect();
            }
            let hint = v.hint(dep, &name_refs);
            v.error(node, &path, format!("no program named `{dep}`{hint}"));
        }
    }
    for (program, node) in &socket_refs {
        let Some(name) = node.scalar() else { continue };
        if !declared_sockets.contains(name) {
            let hint = v.hint(name, &socket_names);
            v.error(
                node,
                &format!("programs.{program}.sockets"),
                format!("no socket named `{name}`{hint}"),
            );
        }
    }
    // Where each program's dependencies are written, for errors about the program's cycle.
    let mut deps_at = super::Names::new(config.programs.len());
    for (i, (program, _)) in dep_nodes.iter().enumerate() {
        deps_at.insert(program, i);
    }
    for cycle in super::walk_dependencies(&config.programs, MAX_ERRORS).0 {
        if cycle.len() <= 2 {
            continue; // self-dependency, reported above
        }
        let Some(first) = cycle.first() else { continue };
        let mark = deps_at
            .get(first)
            .and_then(|i| dep_nodes.get(i))
            .map_or(root.mark, |(_, n)| n.mark);
        v.error_at(
            mark,
            &format!("programs.{first}.depends_on"),
            format!("dependency cycle: {}", show_cycle(&cycle)),
        );
    }
    shared_files(&mut v);
    owned_addresses(&mut v, &config, &addr_checks);
    if v.errors.is_empty() {
        Ok(config)
    } else {
        v.errors.sort_by_key(|e| (e.file, e.line, e.col));
        Err((v.errors, v.more))
    }
}

/// `include: PATTERN | [PATTERN...]`: each file the patterns name (in order, each pattern's
/// files in name order) is read, and its `programs` and `sockets` are added to the main
/// file's, their nodes marked with the file's number so errors point into it. An included
/// file may define nothing else, and includes nothing itself.
fn merge_includes(
    v: &mut Validator,
    root: &mut Node,
    main: &Path,
    included: &mut Vec<PathBuf>,
) -> Vec<PathBuf> {
    let Value::Map(pairs) = &root.value else {
        return Vec::new();
    };
    let Some((key, node)) = pairs.iter().find(|(k, _)| k.scalar() == Some("include")) else {
        return Vec::new();
    };
    let (key_mark, node) = (key.mark, node.clone());
    let patterns = match &node.value {
        Value::Scalar { .. } => v
            .string(&node, "include")
            .map(|p| vec![(p, node.clone())])
            .unwrap_or_default(),
        _ => v.string_list(&node, "include"),
    };
    v.sources.truncate(1);
    let base = main.parent().unwrap_or(Path::new("/"));
    let mut extra: [Vec<(Node, Node)>; 2] = [Vec::new(), Vec::new()];
    let mut absolute = Vec::new();
    for (i, (pattern, at)) in patterns.iter().enumerate() {
        let path = format!("include[{i}]");
        absolute.push(base.join(pattern));
        let files = match v.resolver.include(&base.join(pattern)) {
            Ok(files) => files,
            Err(e) => {
                v.error(at, &path, e);
                continue;
            }
        };
        for (file, text) in files {
            if included.len() >= MAX_INCLUDED {
                v.error(
                    at,
                    &path,
                    format!("more than {MAX_INCLUDED} files are included"),
                );
                break;
            }
            included.push(file.clone());
            v.sources.push(file);
            let k = included.len() as u32;
            let mut tree = match yaml::parse(&text) {
                Ok(Some(tree)) => tree,
                Ok(None) => continue, // an empty file adds nothing
                Err(e) => {
                    v.error_at(yaml::Mark { file: k, ..e.mark }, "", e.message);
                    continue;
                }
            };
            yaml::set_file(&mut tree, k);
            let Value::Map(top) = tree.value else {
                let msg = "an included file is a mapping with `programs` and `sockets`";
                v.error(&tree, "", msg);
                continue;
            };
            for (key, value) in top {
                let slot = match key.scalar() {
                    Some("programs") => 0,
                    Some("sockets") => 1,
                    other => {
                        let name = other.unwrap_or_default().to_string();
                        let msg = "an included file may define only `programs` and `sockets`";
                        v.error(&key, &name, msg);
                        continue;
                    }
                };
                match value.value {
                    Value::Map(entries) => extra[slot].extend(entries),
                    _ if value.is_null() => {}
                    _ => {
                        let what = ["programs", "sockets"][slot];
                        let msg = format!("expected a mapping of {what}, found {}", value.kind());
                        v.error(&value, what, msg);
                    }
                }
            }
        }
    }
    let Value::Map(pairs) = &mut root.value else {
        return absolute;
    };
    for (slot, entries) in extra.into_iter().enumerate() {
        if entries.is_empty() {
            continue;
        }
        let name = ["programs", "sockets"][slot];
        match pairs.iter_mut().find(|(k, _)| k.scalar() == Some(name)) {
            Some((
                _,
                Node {
                    value: Value::Map(own),
                    ..
                },
            )) => own.extend(entries),
            // Not a mapping in the main file: the validator says so there.
            Some(_) => {}
            None => {
                let scalar = Value::Scalar {
                    text: name.to_string(),
                    plain: true,
                };
                let key = Node {
                    value: scalar,
                    mark: key_mark,
                };
                let map = Node {
                    value: Value::Map(entries),
                    mark: key_mark,
                };
                pairs.push((key, map));
            }
        }
    }
    absolute
}

/// Outputs may share a file (stdout and stderr together, say), but one file has one
/// rotation: each use is compared with the first use of its file.
fn shared_files(v: &mut Validator) {
    let files = std::mem::take(&mut v.files);
    let mut first = super::Names::new(files.len());
    for (i, f) in files.iter().enumerate() {
        match first.get(&f.file).and_then(|j| files.get(j)) {
            Some(earlier) if earlier.rotate != f.rotate => {
                let msg = format!(
                    "`{}` is also written by `{}` with a different `rotate`; give both the same",
                    f.file, earlier.path
                );
                v.error_at(f.mark, &f.path, msg);
            }
            Some(_) => {}
            None => {
                first.insert(&f.file, i);
            }
        }
    }
}

/// SPEC section 10: a tcp or http check must observe the instance, not ginit. One on an
/// address a socket of ginit's serves would be answered by the kernel's backlog (tcp) or by
/// another instance (http), so a `ready` check there is refused, and a `health` check only
/// allowed with one instance (the runtime suspends it while a replace runs). Sockets adopted
/// with `inherit` have no address known before they are adopted, and unix sockets none a
/// tcp or http check can name.
fn owned_addresses(v: &mut Validator, config: &Config, checks: &[(usize, AddrCheck)]) {
    if checks.is_empty() {
        return;
    }
    // Sockets by port: the first with each port, and each one's next with the same port (a
    // table of every port rather than a map: one allocation, no hashing, no generic code).
    const NONE: usize = usize::MAX;
    let mut first = vec![NONE; 1 << 16];
    let mut next = vec![NONE; config.sockets.len()];
    for (i, s) in config.sockets.iter().enumerate().rev() {
        if let Listen::Tcp(addr) = s.listen
            && let (Some(head), Some(link)) =
                (first.get_mut(usize::from(addr.port())), next.get_mut(i))
        {
            *link = *head;
            *head = i;
        }
    }
    for (program, check) in checks {
        let AddrCheck {
            path,
            mark,
            addr,
            readiness,
        } = check;
        let Some(spec) = config.programs.get(*program) else {
            continue;
        };
        let mut at = first.get(usize::from(addr.port())).copied().unwrap_or(NONE);
        let mut found = None;
        while let Some(s) = config.sockets.get(at) {
            if let Listen::Tcp(listen) = s.listen
                && serves(listen, *addr)
            {
                found = Some((&s.name, listen));
                break;
            }
            at = next.get(at).copied().unwrap_or(NONE);
        }
        let Some((socket, listen)) = found else {
            continue;
        };
        let why = if *readiness {
            "the kernel's backlog (tcp) or another instance (http) would answer this check, \
             not this instance, so a build that never serves would count as ready; use \
             `notify: true`, `exec`, or an address only this instance serves"
        } else if spec.instances > 1 {
            "another instance would answer this check; a health check on such an address is \
             allowed only with `instances: 1` (ginit suspends it while a replace runs); use \
             `exec` or an address only this instance serves"
        } else {
            continue;
        };
        let msg = format!(
            "`{addr}` is served by socket `{socket}` (tcp://{listen}), which ginit owns: {why}"
        );
        v.error_at(*mark, path, msg);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::schedule::Schedule;

    /// A machine where /bin/* and /app/* exist, users `root` and `app`.
    pub struct Fake;

    impl Resolver for Fake {
        fn user(&self, spec: &str) -> Result<Credentials, String> {
            super::super::users::Db::from_text(
                "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
                "root:x:0:\napp:x:1000:\n",
            )
            .resolve(spec)
        }
        fn executable(&self, program: &str, _path: Option<&str>) -> Result<(), String> {
            let known = ["/bin/", "/app/"];
            if known.iter().any(|k| program.starts_with(k))
                || !program.contains('/') && program != "missing"
            {
                Ok(())
            } else {
                Err(format!("cannot run `{program}`: no such file or directory"))
            }
        }
        fn directory(&self, dir: &Path) -> Result<(), String> {
            if dir.starts_with("/app") || dir == Path::new("/") {
                Ok(())
            } else {
                Err(format!("`{}`: No such file or directory", dir.display()))
            }
        }
        fn euid(&self) -> u32 {
            0
        }
        fn path_var(&self) -> Option<String> {
            Some("/bin".into())
        }

        /// Open files are capped at 1024 for ginit, the rest unlimited; no CAP_SYS_RESOURCE.
        fn hard_limit(&self, resource: i32) -> (Option<u64>, bool) {
            let nofile = resource == libc::RLIMIT_NOFILE as i32;
            (nofile.then_some(1024), false)
        }

        /// `/etc/ginit.d/*.yaml`: two files; `/etc/bad.yaml`: a file with errors.
        fn include(&self, pattern: &Path) -> Result<Vec<(PathBuf, String)>, String> {
            let file = |name: &str, text: &str| (PathBuf::from(name), text.to_string());
            match pattern.to_str() {
                Some("/etc/ginit.d/*.yaml") => Ok(vec![
                    file(
                        "/etc/ginit.d/10-db.yaml",
                        "programs:\n  db: {command: x, sockets: [pg]}\nsockets:\n  pg: {listen: \"tcp://127.0.0.1:5432\"}\n",
                    ),
                    file("/etc/ginit.d/20-empty.yaml", ""),
                ]),
                Some("/etc/bad.yaml") => Ok(vec![file(
                    "/etc/bad.yaml",
                    "programs:\n  web: {command: x}\n  cache: {command: x, restart: sometimes}\nlog: {level: debug}\n",
                )]),
                _ => Err(format!("cannot include {}", pattern.display())),
            }
        }
    }

    #[test]
    fn include_adds_programs_and_sockets_and_errors_point_into_their_file() {
        let mut included = Vec::new();
        let main = Path::new("/etc/ginit.yaml");
        let c = validate_file(
            "include: ginit.d/*.yaml\nprograms:\n  web: {command: x, depends_on: [db]}\n",
            Some(main),
            &Fake,
            &mut included,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let names: Vec<&str> = c.programs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["web", "db"]);
        assert_eq!(c.sockets.len(), 1);
        assert_eq!(included.len(), 2);

        let mut included = Vec::new();
        let (errs, _) = validate_file(
            "include: [/etc/bad.yaml, /nowhere/*.yaml]\nprograms:\n  web: {command: x}\n",
            Some(main),
            &Fake,
            &mut included,
        )
        .unwrap_err();
        let errs: Vec<String> = errs
            .iter()
            .map(|e| format!("{}:{}:{}: {}: {}", e.file, e.line, e.col, e.path, e.message))
            .collect();
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(
            errs[0].starts_with("0:1:26: include[1]: cannot include /nowhere"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with(
                "1:2:3: programs.web: this program is defined twice (first at /etc/ginit.yaml:3:3)"
            ),
            "{errs:?}"
        );
        assert!(
            errs[2].starts_with("1:3:32: programs.cache.restart"),
            "{errs:?}"
        );
        assert!(
            errs[3].starts_with("1:4:1: log: an included file may define only"),
            "{errs:?}"
        );
    }

    fn ok(text: &str) -> Config {
        validate(text, &Fake).unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// `errs` are as many as `want`, each containing its wanted text, in order.
    fn expect_errors(errs: &[String], want: &[&str]) {
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
        for (e, w) in errs.iter().zip(want) {
            assert!(e.contains(w), "{e}\nwanted: {w}");
        }
    }

    fn errors(text: &str) -> Vec<String> {
        validate(text, &Fake)
            .expect_err("should be invalid")
            .0
            .into_iter()
            .map(|e| format!("{}:{}: {}: {}", e.line, e.col, e.path, e.message))
            .collect()
    }

    #[test]
    fn a_full_program() {
        let c = ok(r#"
programs:
  migrate:
    command: ["/app/migrate", "up"]
    oneshot: true
  web:
    command: /app/server --port 8080
    env: {GIN_MODE: release, PORT: 8080}
    cwd: /app
    user: app
    depends_on: [migrate]
    instances: 2
    restart: on-failure
    backoff: {initial: 0s, max: 5s, factor: 1.5, reset_after: 1m}
    max_restarts: 3
    restart_window: 10s
    critical: true
    stop: {signal: SIGINT, timeout: 3s}
    stdout: prefix
    stderr: {file: /var/log/web.log, rotate: {size: 1MiB, keep: 2}}
shutdown: {delay: 5s, timeout: 20s}
log: {level: debug, format: json}
"#);
        let web = c.program("web").unwrap();
        assert_eq!(web.command, ["/app/server", "--port", "8080"]);
        assert_eq!(
            web.env,
            [
                ("GIN_MODE".into(), "release".into()),
                ("PORT".into(), "8080".into())
            ]
        );
        assert_eq!(web.user.as_ref().unwrap().uid, 1000);
        assert_eq!(web.instances, 2);
        assert_eq!(web.restart, Restart::OnFailure);
        assert_eq!(web.backoff.initial, Duration::ZERO);
        assert_eq!(web.backoff.factor, 1.5);
        assert_eq!(web.stop_signal, libc::SIGINT);
        assert_eq!(web.stdout, Output::Prefix);
        assert_eq!(
            web.stderr,
            Output::File {
                path: "/var/log/web.log".into(),
                rotate: Some(Rotate {
                    size: 1 << 20,
                    keep: 2
                })
            }
        );
        let migrate = c.program("migrate").unwrap();
        assert_eq!(migrate.restart, Restart::OnFailure, "oneshot default");
        assert_eq!(c.start_order(), ["migrate", "web"]);
        assert_eq!(c.shutdown.delay, Duration::from_secs(5));
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn the_log_buffer_and_timestamps_are_bounded() {
        let c = ok("programs:\n  a: {command: x}\n");
        assert_eq!(c.log.buffer, super::super::LogBuffer::DEFAULT);
        assert!(!c.log.timestamps);
        let c = ok(
            "programs:\n  a: {command: x}\nlog: {buffer: {lines: 0, bytes: 64MiB}, timestamps: true}\n",
        );
        assert_eq!((c.log.buffer.lines, c.log.buffer.bytes), (0, 64 << 20));
        assert!(c.log.buffer.is_off() && c.log.timestamps);
        assert_eq!(
            errors(
                "programs:\n  a: {command: x}\nlog:\n  buffer: {lines: 1000001, bytes: 65MiB, line: 3}\n  timestamps: yes\n"
            ),
            [
                "4:19: log.buffer.lines: must be from 0 to 1000000, found 1000001",
                "4:35: log.buffer.bytes: must be from 0 to 64MiB, found `65MiB`",
                "4:42: log.buffer.line: unknown key `line` (did you mean `lines`?)",
                "5:15: log.timestamps: expected true or false, found `yes`",
            ]
        );
    }

    #[test]
    fn defaults() {
        let c = ok("programs:\n  a:\n    command: sleep 1\n");
        let a = &c.programs[0];
        assert_eq!(a.restart, Restart::Always);
        assert_eq!(a.instances, 1);
        assert_eq!(a.stop_signal, libc::SIGTERM);
        assert_eq!(a.stop_timeout, DEFAULT_STOP_TIMEOUT);
        assert_eq!(a.stdout, Output::Inherit);
        assert_eq!(c.shutdown.timeout, Duration::from_secs(30));
    }

    #[test]
    fn every_error_at_once_with_positions_paths_and_hints() {
        let errs = errors(
            "programs:\n  web:\n    comand: /app/server\n    restart: alwys\n    stop: {timeout: soon}\n  worker:\n    command: missing\n    depends_on: [wbe]\n",
        );
        assert_eq!(
            errs,
            [
                "2:3: programs.web: a program needs `command`",
                "3:5: programs.web.comand: unknown key `comand` (did you mean `command`?)",
                "4:14: programs.web.restart: unknown value `alwys`; expected one of `always`, `on-failure`, `never` (did you mean `always`?)",
                "5:21: programs.web.stop.timeout: `soon` is not a duration (write it like 250ms, 10s, 1m30s or 2h)",
                "7:14: programs.worker.command: cannot run `missing`: no such file or directory",
                "8:18: programs.worker.depends_on: no program named `wbe` (did you mean `web`?)",
            ]
        );
    }

    #[test]
    fn cycles_and_self_dependencies() {
        let errs = errors(
            "programs:\n  a: {command: x, depends_on: [b]}\n  b: {command: x, depends_on: [c]}\n  c: {command: x, depends_on: [a]}\n  d: {command: x, depends_on: [d]}\n",
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("dependency cycle: a -> b -> c -> a")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("`d` cannot depend on itself")),
            "{errs:?}"
        );
    }

    #[test]
    fn types_are_checked() {
        let errs = errors(
            "programs:\n  a:\n    command: x\n    instances: \"2\"\n    oneshot: yes\n    critical: 1\n    env: [A]\n    depends_on: a\n",
        );
        assert_eq!(errs.len(), 5, "{errs:?}");
        assert!(
            errs[0].contains("found the string \"2\" (remove the quotes)"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains("expected true or false, found `yes`"),
            "{errs:?}"
        );
        assert!(
            errs[3].contains("expected a mapping of NAME: value"),
            "{errs:?}"
        );
        assert!(errs[4].contains("expected a list"), "{errs:?}");
    }

    #[test]
    fn success_exit_codes_are_statuses_0_to_255() {
        let c = ok("programs:\n  a:\n    command: x\n    success_exit_codes: [143, 0, 143, 2]\n");
        let a = c.program("a").unwrap();
        assert_eq!(a.success_exit_codes, [0, 2, 143]);
        assert!(a.succeeded(0) && a.succeeded(143) && !a.succeeded(1));
        assert!(
            ok("programs:\n  a: {command: x}\n")
                .program("a")
                .unwrap()
                .succeeded(0)
        );
        let errs = errors(
            "programs:\n  a:\n    command: x\n    success_exit_codes: [1, 256, x, -1]\n  b:\n    command: x\n    success_exit_codes: 143\n",
        );
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0].contains("4:29: programs.a.success_exit_codes[1]: expected a whole number from 0 to 255, found `256`"), "{errs:?}");
        assert!(errs[1].contains("found `x`"), "{errs:?}");
        assert!(errs[2].contains("found `-1`"), "{errs:?}");
        assert!(
            errs[3].contains("programs.b.success_exit_codes: expected a list of exit statuses"),
            "{errs:?}"
        );
    }

    #[test]
    fn env_files_and_variables_are_checked_before_anything_starts() {
        let c = ok(
            "programs:\n  a:\n    command: [x, \"${HOME}/y\", \"$$5\"]\n    env_file: [/run/secrets/a.env, -/etc/opt.env]\n    env: {PATH: \"/app/bin:${PATH}\", U: \"${X:-1}\"}\n  b:\n    command: \"${APP_BIN} --port ${PORT}\"\n    env_file: /etc/b.env\n",
        );
        let a = c.program("a").unwrap();
        assert_eq!(
            a.env_files,
            [
                (PathBuf::from("/run/secrets/a.env"), false),
                (PathBuf::from("/etc/opt.env"), true)
            ]
        );
        assert_eq!(
            a.command[1], "${HOME}/y",
            "expanded at each start, not here"
        );
        assert_eq!(c.program("b").unwrap().env_files.len(), 1);
        let errs = errors(
            "programs:\n  a:\n    command: [x, \"${#ARGS}\"]\n    env_file: [relative.env]\n    env: {A: \"${B\"}\n",
        );
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(
            errs[0].contains("programs.a.command: `${#ARGS}` is not ${NAME}"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains("programs.a.env_file[0]: write an absolute path"),
            "{errs:?}"
        );
        assert!(
            errs[2].contains("programs.a.env.A: `${B` has no closing"),
            "{errs:?}"
        );
    }

    #[test]
    fn the_go_runtime_is_sized_from_caps_and_the_quota() {
        let c = ok(
            "programs:\n  a: {command: x, instances: 3, memory_max: 1000MiB}\n  b: {command: x, cpu_max: 150%}\n  c: {command: x, runtime_env: false, memory_max: 1GiB}\n  d: {command: x, cpu_max: 10%}\n",
        );
        let env = |name: &str, quota| {
            c.program(name)
                .unwrap()
                .runtime_env(quota)
                .into_iter()
                .map(|(k, v, _)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(env("a", None), ["GOMEMLIMIT=943718400"]);
        assert_eq!(
            env("a", Some(4.0)),
            ["GOMEMLIMIT=943718400", "GOMAXPROCS=2"]
        );
        assert_eq!(
            env("a", Some(1.0)),
            ["GOMEMLIMIT=943718400", "GOMAXPROCS=1"]
        );
        assert_eq!(
            env("b", Some(8.0)),
            ["GOMAXPROCS=2"],
            "cpu_max wins over the quota"
        );
        assert_eq!(env("d", None), ["GOMAXPROCS=1"], "at least one");
        assert!(env("c", Some(2.0)).is_empty());
    }

    #[test]
    fn check_addresses_with_variables_wait_for_each_attempt() {
        let c = ok(
            "programs:\n  a:\n    command: x\n    ready: {tcp: \"127.0.0.1:${PORT}\"}\n    health: {http: \"http://localhost:${PORT:-80}/h\"}\n",
        );
        let a = c.program("a").unwrap();
        assert_eq!(
            a.ready.as_ref().map(|r| r.check.clone()),
            Some(ReadyCheck::Expand {
                http: false,
                text: "127.0.0.1:${PORT}".into()
            })
        );
        assert!(
            matches!(&a.health, Some(h) if matches!(h.check, ReadyCheck::Expand { http: true, .. }))
        );
        let errs =
            errors("programs:\n  a:\n    command: x\n    ready: {tcp: \"127.0.0.1:${PORT\"}\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("programs.a.ready.tcp: `${PORT` has no closing"),
            "{errs:?}"
        );
    }

    #[test]
    fn watches_of_the_config_and_of_programs() {
        let c = ok(
            "config: {watch: true}\ninclude: []\nprograms:\n  web:\n    command: x\n    watch: {paths: [/app, /etc/app.conf], ignore: \"*.log\", debounce: 250ms}\n",
        );
        assert_eq!(c.watch, Some(DEFAULT_CONFIG_DEBOUNCE));
        let w = c.program("web").unwrap().watch.clone().unwrap();
        assert_eq!(
            w.paths,
            [PathBuf::from("/app"), PathBuf::from("/etc/app.conf")]
        );
        assert_eq!(w.ignore, ["*.log"]);
        assert_eq!(w.debounce, Duration::from_millis(250));
        assert_eq!(ok("programs:\n  a: {command: x}\n").watch, None);
        let c = ok("config: {watch: false, debounce: 2s}\nprograms:\n  a: {command: x}\n");
        assert_eq!(c.watch, None);
        let errs = errors(
            "config: {watch: yes, debounce: 10ms}\nprograms:\n  a: {command: x, watch: {paths: [app]}}\n  b: {command: x, watch: {ignore: [x]}}\n  c: {command: x, watch: {paths: /x, depth: 2}}\n",
        );
        let want = [
            "1:17: config.watch: expected true or false",
            "1:32: config.debounce: must be from 100ms",
            "3:35: programs.a.watch.paths: `app` must be an absolute path",
            "4:26: programs.b.watch.paths: name at least one path to watch",
            "5:38: programs.c.watch.depth: unknown key `depth`",
        ];
        expect_errors(&errs, &want);
    }

    #[test]
    fn schedules_are_oneshots_of_one_instance_that_nothing_waits_for() {
        let c = ok(
            "programs:\n  backup: {command: x, schedule: \"30 2 * * *\", on_failed: y}\n  sweep: {command: x, every: 10m, restart: never}\n",
        );
        let backup = c.program("backup").unwrap();
        assert!(backup.oneshot);
        assert_eq!(backup.restart, Restart::OnFailure, "a oneshot's default");
        assert!(matches!(&backup.schedule, Some(Schedule::Cron(t, _)) if t == "30 2 * * *"));
        let sweep = c.program("sweep").unwrap();
        assert_eq!(
            sweep.schedule,
            Some(Schedule::Every(Duration::from_secs(600)))
        );
        let errs = errors(
            "programs:\n  a: {command: x, schedule: \"* * *\"}\n  b: {command: x, schedule: \"@daily\", every: 1h}\n  c: {command: x, every: 1h, oneshot: false}\n  d: {command: x, every: 500ms}\n  e: {command: x, depends_on: [b]}\n  f: {command: x, every: 1m, instances: 2}\n  g: {command: x, schedule: \"0 0 31 2 *\"}\n",
        );
        let want = [
            "2:29: programs.a.schedule: a schedule has five fields",
            "3:46: programs.b.every: give `schedule` (cron times) or `every` (an interval), not both",
            "4:39: programs.c.oneshot: a scheduled program runs as a oneshot at each time",
            "5:26: programs.d.every: must be from 1s to 365d",
            "6:32: programs.e.depends_on: `b` is scheduled",
            "7:3: programs.f.instances: a oneshot program runs once",
            "8:29: programs.g.schedule: `0 0 31 2 *` never comes",
        ];
        expect_errors(&errs, &want);
    }

    #[test]
    fn ready_log_needs_output_through_ginit() {
        let c = ok(
            "programs:\n  db:\n    command: x\n    ready: {log: accepting}\n    stderr: prefix\n",
        );
        let ready = c.program("db").unwrap().ready.clone().unwrap();
        assert_eq!(ready.check, ReadyCheck::Log("accepting".into()));
        let errs = errors(
            "programs:\n  a:\n    command: x\n    ready: {log: up}\n  b:\n    command: x\n    ready: {log: \"\"}\n    stdout: prefix\n",
        );
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].contains("programs.a.ready: `log` reads the program's output"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains("programs.b.ready.log: the text is 1 to 256 bytes"),
            "{errs:?}"
        );
    }

    #[test]
    fn limits_reload_and_monitoring() {
        let c = ok(
            "control: {socket: /tmp/c.sock}\nprograms:\n  a:\n    command: x\n    reload: {strategy: signal, signal: USR2}\n    limits: {open_files: 1000, address_space: 4GiB, core: 0, processes: unlimited, nice: 5, oom_score_adj: 500}\n    memory_max: 300MiB\n    cpu_max: 150%\n    monitor_window: 10s\n    cpu_action: restart\n",
        );
        assert_eq!(c.control_socket, PathBuf::from("/tmp/c.sock"));
        let a = c.program("a").unwrap();
        assert_eq!(a.reload, ReloadStrategy::Signal(libc::SIGUSR2));
        assert_eq!(
            a.limits,
            Limits {
                rlimits: vec![
                    (Rlimit::OpenFiles, Some(1000)),
                    (Rlimit::AddressSpace, Some(4 << 30)),
                    (Rlimit::Core, Some(0)),
                    (Rlimit::Processes, None),
                ],
                nice: Some(5),
                oom_score_adj: Some(500),
            }
        );
        assert_eq!(a.memory_max, Some(300 << 20));
        assert_eq!(a.cpu_max, Some(150.0));
        assert_eq!(a.monitor_window, Duration::from_secs(10));
        assert_eq!(a.cpu_action, CpuAction::Restart);
        assert_eq!(
            ok("programs:\n  a: {command: x}\n").control_socket,
            PathBuf::from("/run/ginit/control.sock")
        );

        let errs = errors(
            "programs:\n  a:\n    command: x\n    limits: {open_files: 4096, stack: lots, nice: 40, cpu_seconds: 1.5, open_file: 3}\n    reload: {strategy: replace}\n    cpu_max: fast\n",
        );
        let want = [
            "4:26: programs.a.limits.open_files: 4096 is above ginit's own hard limit (1024)",
            "4:39: programs.a.limits.stack: `lots` is not a size",
            "4:51: programs.a.limits.nice: expected a whole number from -20 to 19, found `40`",
            "4:68: programs.a.limits.cpu_seconds: expected a whole number or `unlimited`",
            "4:73: programs.a.limits.open_file: unknown key `open_file` (did you mean `open_files`?)",
            "6:14: programs.a.cpu_max: `fast` is not a CPU share",
        ];
        expect_errors(&errs, &want);
    }

    #[test]
    fn file_outputs_are_checked() {
        let errs = errors(
            "programs:\n  a:\n    command: x\n    stdout: {file: a.log}\n    stderr: {rotate: {size: 1 parsec}}\n  b:\n    command: x\n    stdout: {file: /l, rotate: {keep: 2}}\n    stderr: {file: /l}\n    \n",
        );
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0].contains("programs.a.stdout.file: `a.log` must be an absolute path"));
        assert!(errs[1].contains("needs `file: /path/to/log`"), "{errs:?}");
        assert!(errs[2].contains("`1 parsec` is not a size"), "{errs:?}");
        assert!(
            errs[3].contains("also written by `programs.b.stdout` with a different `rotate`"),
            "{errs:?}"
        );
        assert!(
            errors("programs:\n  a:\n    command: x\n    stdout: pefix\n")[0]
                .contains("did you mean `prefix`?")
        );
    }

    #[test]
    fn checks_health_and_watchdog() {
        let c = ok(
            "programs:\n  a:\n    command: x\n    ready: {http: \"http://localhost:8081/ready\", timeout: 5s}\n    health: {exec: [x, --check], interval: 5s, failures: 2}\n    watchdog: 20s\n",
        );
        let a = c.program("a").unwrap();
        assert_eq!(
            a.ready,
            Some(ReadySpec {
                check: ReadyCheck::Http {
                    addr: "127.0.0.1:8081".parse().unwrap(),
                    host: "localhost:8081".into(),
                    path: "/ready".into()
                },
                timeout: Duration::from_secs(5)
            })
        );
        assert_eq!(
            a.health,
            Some(HealthSpec {
                check: ReadyCheck::Exec(vec!["x".into(), "--check".into()]),
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(2),
                failures: 2
            })
        );
        assert_eq!(a.watchdog, Some(Duration::from_secs(20)));
        let errs = errors(
            "programs:\n  a:\n    command: x\n    ready: {timeout: 1s}\n    health: {notify: true}\n  b:\n    command: x\n    ready: {tcp: \"127.0.0.1:1\", delay: 1s, http: \"https://x\"}\n    watchdog: 0s\n    health: {tcp: \"127.0.0.1:1\", interval: 0s}\n",
        );
        let want = [
            "4:12: programs.a.ready: give a check: notify, tcp, http, exec, delay",
            "5:13: programs.a.health: give a check: tcp, http, exec",
            "programs.a.health.notify: unknown key `notify`",
            "8:12: programs.b.ready: give one check",
            "8:50: programs.b.ready.http: `https://x` is not an http URL",
            "9:15: programs.b.watchdog: must be from 100ms to 365d, found `0s`",
            "10:44: programs.b.health.interval: must be from 100ms to 365d, found `0s`",
        ];
        expect_errors(&errs, &want);
    }

    #[test]
    fn whole_file_problems() {
        assert!(errors("")[0].contains("the config is empty"));
        assert!(errors("shutdown: {}\n")[0].contains("needs a `programs:` mapping"));
        assert!(errors("programs: [a, b]\n")[0].contains("expected a mapping of programs"));
        assert!(
            errors("programs:\n  a: {command: x}\n  a: {command: y}\n")[0]
                .contains("defined twice")
        );
        assert!(errors("programs:\n  \"bad name\": {command: x}\n")[0].contains("program names"));
        let e = errors("programs:\n  a: [unclosed\n");
        assert!(e[0].starts_with("2:") || e[0].starts_with("3:"), "{e:?}");
        assert!(e[0].contains("invalid YAML"), "{e:?}");
    }

    #[test]
    fn users_cwd_and_commands() {
        let errs = errors(
            "programs:\n  a:\n    command: x\n    user: nobody\n  b:\n    command: x\n    group: app\n  c:\n    command: \"x | y\"\n  d:\n    command: ./run\n    cwd: /nope\n  e:\n    command: []\n",
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("programs.a.user: no user named `nobody`")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("programs.b.group: `group: app` needs `user` too")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("programs.c.command: `|` needs a shell")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.contains("programs.d.cwd: `/nope`")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("programs.d.command: cannot run `/nope/./run`")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("programs.e.command: the command is empty")),
            "{errs:?}"
        );
        let c = ok("programs:\n  a:\n    command: x\n    user: app\n    group: root\n");
        assert_eq!(c.programs[0].user.as_ref().unwrap().gid, 0);
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            nearest("restat", &keys::names(keys::PROGRAM)),
            Some("restart")
        );
        assert_eq!(
            nearest("depend_on", &keys::names(keys::PROGRAM)),
            Some("depends_on")
        );
        assert_eq!(nearest("zzzzzz", &keys::names(keys::PROGRAM)), None);
    }

    /// Each error of `text` must contain the matching `want`, in order, and no more errors.
    fn refused(text: &str, want: &[&str]) {
        let errs = errors(text);
        expect_errors(&errs, want);
    }

    #[test]
    fn every_number_has_a_range() {
        let ok_text = "sockets:\n  s: {listen: \"tcp://127.0.0.1:9\", backlog: 65535}\nprograms:\n  a:\n    command: x\n    instances: 1000\n    max_restarts: 1000000\n    stdout: {file: /l, rotate: {size: 1KiB, keep: 100}}\n    health: {exec: [x], failures: 100, interval: 100ms, timeout: 100ms}\n    ready: {exec: [x], timeout: 100ms}\n    watchdog: 100ms\n    monitor_window: 1s\n    memory_max: 1MiB\n    cpu_max: 1%\n    backoff: {initial: 0s, max: 0s, reset_after: 0s}\n    stop: {timeout: 0s}\n";
        let c = ok(ok_text);
        let a = &c.programs[0];
        assert_eq!((a.instances, a.max_restarts), (1000, 1_000_000));
        assert_eq!(a.backoff.initial, Duration::ZERO, "0s backoff stays valid");
        assert_eq!(c.sockets[0].backlog, 65535);
        assert_eq!(a.cpu_max, Some(1.0));
        let bad = ok_text
            .replace("65535", "65536")
            .replace("1000\n", "1001\n")
            .replace("1000000", "1000001")
            .replace("1KiB", "1023")
            .replace("keep: 100", "keep: 101")
            .replace("failures: 100", "failures: 0")
            .replace("interval: 100ms", "interval: 99ms")
            .replace("timeout: 100ms}\n    ready", "timeout: 1ns}\n    ready")
            .replace(
                "timeout: 100ms}\n    watchdog",
                "timeout: 0s}\n    watchdog",
            )
            .replace("watchdog: 100ms", "watchdog: 1us")
            .replace("monitor_window: 1s", "monitor_window: 999ms")
            .replace("1MiB", "1048575")
            .replace("cpu_max: 1%", "cpu_max: 100001%");
        refused(
            &bad,
            &[
                "sockets.s.backlog: must be from 1 to 65535, found 65536",
                "programs.a.instances: must be from 1 to 1000, found 1001",
                "programs.a.max_restarts: must be from 0 to 1000000, found 1000001",
                "programs.a.stdout.rotate.size: must be at least 1KiB, found `1023`",
                "programs.a.stdout.rotate.keep: must be from 1 to 100, found 101",
                "programs.a.health.failures: must be from 1 to 100, found 0",
                "programs.a.health.interval: must be from 100ms to 365d, found `99ms`",
                "programs.a.health.timeout: must be from 100ms to 365d, found `1ns`",
                "programs.a.ready.timeout: must be from 100ms to 365d, found `0s`",
                "programs.a.watchdog: must be from 100ms to 365d, found `1us`",
                "programs.a.monitor_window: must be from 1s to 365d, found `999ms`",
                "programs.a.memory_max: must be at least 1MiB, found `1048575`",
                "programs.a.cpu_max: must be from 1% to 100000%, found `100001%`",
            ],
        );
        // Far beyond 64 bits is still out of range, not "not a number".
        refused(
            "programs:\n  a: {command: x, instances: 99999999999999999999999}\n",
            &["must be from 1 to 1000, found 99999999999999999999999"],
        );
    }

    #[test]
    fn instances_are_bounded_in_all() {
        let mut text = String::from("programs:\n");
        for i in 0..10 {
            text.push_str(&format!("  p{i}: {{command: x, instances: 1000}}\n"));
        }
        ok(&text);
        text.push_str("  one-more: {command: x}\n");
        refused(
            &text,
            &["2:3: programs: the programs have 10001 instances in all; at most 10000"],
        );
    }

    #[test]
    fn limits_a_program_cannot_start_with_are_refused() {
        let floors = "programs:\n  a:\n    command: x\n    limits: {address_space: 16MiB, data: 1MiB, stack: 128KiB, open_files: 16, processes: 1, cpu_seconds: 1, core: 0, file_size: 0}\n";
        assert_eq!(ok(floors).programs[0].limits.rlimits.len(), 8);
        refused(
            "programs:\n  a:\n    command: x\n    limits: {address_space: 0, data: 1KiB, stack: 64KiB, open_files: 15, processes: 0, cpu_seconds: 0, core: unlimited}\n",
            &[
                "programs.a.limits.address_space: must be at least 16MiB (a program cannot start with less), found `0`",
                "programs.a.limits.data: must be at least 1MiB",
                "programs.a.limits.stack: must be at least 128KiB",
                "programs.a.limits.open_files: must be at least 16 (a program cannot start with less), found `15`",
                "programs.a.limits.processes: must be at least 1",
                "programs.a.limits.cpu_seconds: must be at least 1",
            ],
        );
    }

    #[test]
    fn only_the_first_errors_are_kept() {
        let mut text = String::from("programs:\n");
        for i in 0..150 {
            text.push_str(&format!("  p{i}: {{command: x, depends_on: [p{i}x]}}\n"));
        }
        let (errs, more) = validate(&text, &Fake).unwrap_err();
        assert_eq!((errs.len(), more), (MAX_ERRORS, 50));
        assert!(
            errs[0].message.contains("(did you mean `p0`?)"),
            "{:?}",
            errs[0]
        );
        // Sorted by position.
        assert!(
            errs.windows(2)
                .all(|w| (w[0].line, w[0].col) <= (w[1].line, w[1].col))
        );
    }

    /// The cycle search as it was (recursive, quadratic): the definition the iterative one
    /// must match.
    fn cycles_before(programs: &[ProgramSpec]) -> Vec<Vec<String>> {
        fn visit(
            name: &str,
            programs: &[ProgramSpec],
            stack: &mut Vec<String>,
            done: &mut Vec<String>,
            cycles: &mut Vec<Vec<String>>,
        ) {
            if let Some(pos) = stack.iter().position(|s| s == name) {
                let mut cycle: Vec<String> = stack[pos..].to_vec();
                cycle.push(name.to_string());
                cycles.push(cycle);
                return;
            }
            if done.iter().any(|d| d == name) {
                return;
            }
            stack.push(name.to_string());
            if let Some(p) = programs.iter().find(|p| p.name == name) {
                for dep in &p.depends_on {
                    visit(dep, programs, stack, done, cycles);
                }
            }
            stack.pop();
            done.push(name.to_string());
        }
        let (mut cycles, mut done) = (Vec::new(), Vec::new());
        for p in programs {
            visit(&p.name, programs, &mut Vec::new(), &mut done, &mut cycles);
        }
        cycles
    }

    #[test]
    fn cycles_are_found_as_before_without_recursion() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut below = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) % n as u64) as usize
        };
        for round in 0..300 {
            let n = 1 + below(25);
            let mut programs: Vec<ProgramSpec> = (0..n)
                .map(|i| ProgramSpec::new(&format!("p{i}"), vec!["x".into()]))
                .collect();
            for _ in 0..below(2 * n + 1) {
                let (a, b) = (below(n), below(n + 1));
                let dep = if b == n {
                    "missing".to_string()
                } else {
                    format!("p{b}")
                };
                programs[a].depends_on.push(dep);
            }
            let got: Vec<Vec<String>> = super::super::walk_dependencies(&programs, usize::MAX)
                .0
                .into_iter()
                .map(|c| c.into_iter().map(String::from).collect())
                .collect();
            assert_eq!(got, cycles_before(&programs), "round {round}");
        }
        // A 10,000-long cycle: found, and shown elided.
        let n = 10_000;
        let programs: Vec<ProgramSpec> = (0..n)
            .map(|i| {
                let mut p = ProgramSpec::new(&format!("p{i}"), vec!["x".into()]);
                p.depends_on.push(format!("p{}", (i + 1) % n));
                p
            })
            .collect();
        let cycles = super::super::walk_dependencies(&programs, MAX_ERRORS).0;
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), n + 1);
        assert_eq!(
            show_cycle(&cycles[0]),
            "p0 -> p1 -> p2 -> p3 -> p4 -> p5 -> p6 -> p7 -> (9985 more) -> p9993 -> p9994 \
             -> p9995 -> p9996 -> p9997 -> p9998 -> p9999 -> p0"
        );
        assert_eq!(show_cycle(&["a", "b", "a"]), "a -> b -> a");
    }

    #[test]
    fn which_listener_serves_which_address() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        for (listener, check, served) in [
            ("0.0.0.0:80", "127.0.0.1:80", true),
            ("0.0.0.0:80", "10.1.2.3:80", true),
            ("0.0.0.0:80", "127.0.0.1:81", false),
            ("0.0.0.0:80", "[::1]:80", false),
            ("[::]:80", "127.0.0.1:80", true),
            ("[::]:80", "[::1]:80", true),
            ("127.0.0.1:80", "127.0.0.1:80", true),
            ("127.0.0.1:80", "127.0.0.2:80", false),
            ("127.0.0.1:80", "0.0.0.0:80", true),
            ("127.0.0.1:80", "[::]:80", true),
            ("127.0.0.1:80", "[::ffff:127.0.0.1]:80", true),
            ("[::1]:80", "127.0.0.1:80", false),
            ("10.0.0.1:80", "127.0.0.1:80", false),
        ] {
            assert_eq!(serves(a(listener), a(check)), served, "{listener} {check}");
        }
    }

    #[test]
    fn checks_on_ginits_own_sockets() {
        let sockets = "sockets:\n  http: {listen: \"tcp://0.0.0.0:8080\"}\n  unix: {listen: \"unix:///run/a.sock\"}\n  adopted: {inherit: web}\n";
        let program = |extra: &str| {
            format!("{sockets}programs:\n  web:\n    command: x\n    sockets: [http]\n{extra}")
        };
        refused(
            &program("    ready: {tcp: \"localhost:8080\"}\n"),
            &[
                "9:18: programs.web.ready.tcp: `127.0.0.1:8080` is served by socket `http` (tcp://0.0.0.0:8080), which ginit owns: the kernel's backlog (tcp) or another instance (http) would answer this check",
            ],
        );
        refused(
            &program("    ready: {http: \"http://127.0.0.1:8080/\"}\n"),
            &["programs.web.ready.http: `127.0.0.1:8080` is served by socket `http`"],
        );
        refused(
            &program("    instances: 3\n    health: {tcp: \"10.0.0.7:8080\"}\n"),
            &[
                "programs.web.health.tcp: `10.0.0.7:8080` is served by socket `http` (tcp://0.0.0.0:8080), which ginit owns: another instance would answer this check; a health check on such an address is allowed only with `instances: 1`",
            ],
        );
        // Allowed: health with one instance, and checks on other ports or not tcp/http.
        for extra in [
            "    health: {http: \"http://127.0.0.1:8080/healthz\"}\n",
            "    instances: 2\n    ready: {tcp: \"127.0.0.1:8081\"}\n    health: {http: \"http://127.0.0.1:9090/\"}\n",
            "    instances: 2\n    ready: {notify: true}\n    health: {exec: [x]}\n",
        ] {
            ok(&program(extra));
        }
    }

    #[test]
    fn metrics_listen_is_a_tcp_or_unix_address_and_off_by_default() {
        assert_eq!(ok("programs: {}\n").metrics, None);
        let c = ok("metrics: {listen: \"tcp://127.0.0.1:9100\"}\nprograms: {}\n");
        assert_eq!(
            c.metrics,
            Some(Listen::Tcp("127.0.0.1:9100".parse().unwrap()))
        );
        let c = ok("metrics: {listen: \"tcp://[::1]:9100\"}\nprograms: {}\n");
        assert_eq!(c.metrics, Some(Listen::Tcp("[::1]:9100".parse().unwrap())));
        let c = ok("metrics: {listen: \"unix:///run/ginit/metrics.sock\"}\nprograms: {}\n");
        assert!(matches!(c.metrics, Some(Listen::Unix { .. })));
        assert_eq!(
            errors("metrics: {listen: \"http://x\", lisen: 1}\nprograms: {}\n"),
            [
                "1:19: metrics.listen: `http://x` is not a listen address (write it like \
                 tcp://0.0.0.0:8080, tcp://[::]:8080 or unix:///run/app.sock)",
                "1:31: metrics.lisen: unknown key `lisen` (did you mean `listen`?)",
            ]
        );
        assert_eq!(
            errors("metrics: {}\nprograms: {}\n"),
            ["1:10: metrics: `metrics` needs `listen: ADDRESS`"]
        );
        assert_eq!(
            errors("metrics: {listen: \"unix:run.sock\"}\nprograms: {}\n"),
            ["1:19: metrics.listen: `unix:run.sock`: the socket path must be absolute"]
        );
    }
}
