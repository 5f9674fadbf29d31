//! Configuration: the YAML file -> a validated [`Config`], or every error at once.
//!
//! `yaml` turns text into nodes with positions; `schema` checks them against the keys ginit
//! knows and builds these types; Config is not
//! state: nothing here holds a pid or an fd, and nothing here is changed at run time.
//! [`load`] reads only a regular file of at most [`MAX_CONFIG_BYTES`], without blocking, so
//! a reload in PID 1 can never hang on a FIFO or read /dev/zero forever.

pub mod diff;
pub mod glob;
pub mod keys;
pub mod schedule;
mod schema;
pub mod signals;
pub mod units;
pub mod users;
pub mod vars;
pub mod words;
pub mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use users::Credentials;

pub use schema::{MAX_ERRORS, MAX_INCLUDED, MAX_SOCKETS, Resolver, parse_http_url, parse_tcp};

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Programs in the order the file lists them.
    pub programs: Vec<ProgramSpec>,
    pub shutdown: ShutdownSpec,
    pub log: LogSpec,
    /// `control.socket`: where ginit serves its control socket.
    pub control_socket: PathBuf,
    /// Listening sockets ginit binds (or adopts) once and hands to programs.
    pub sockets: Vec<SocketSpec>,
    /// `metrics.listen`: where ginit serves `GET /metrics` (None: no endpoint). Bound once,
    /// when ginit starts, like `sockets`.
    pub metrics: Option<Listen>,
    /// `config: {watch: true, debounce}`: the config reloads itself once its files change
    /// and then stay quiet for this long (`None`: not watched).
    pub watch: Option<Duration>,
    /// The `include` patterns as absolute paths (what a watch of the config looks at too).
    pub includes: Vec<PathBuf>,
}

impl Default for Config {
    /// A config with no program and every setting at its default (what an empty `programs:`
    /// would give).
    fn default() -> Config {
        Config {
            programs: Vec::new(),
            shutdown: ShutdownSpec {
                delay: Duration::ZERO,
                timeout: Duration::from_secs(30),
            },
            log: LogSpec {
                level: None,
                format: LogFormat::Text,
                file: None,
                buffer: LogBuffer::DEFAULT,
                timestamps: false,
            },
            control_socket: PathBuf::from(DEFAULT_SOCKET),
            sockets: Vec::new(),
            metrics: None,
            watch: None,
            includes: Vec::new(),
        }
    }
}

/// One entry of `sockets:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketSpec {
    pub name: String,
    pub listen: Listen,
    pub backlog: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(std::net::SocketAddr),
    Unix {
        path: PathBuf,
        /// File mode of the socket file (e.g. 0o660).
        mode: Option<u32>,
        /// uid and gid of the socket file.
        owner: Option<(u32, u32)>,
    },
    /// Adopted from ginit's own LISTEN_FDS, by LISTEN_FDNAMES name or index.
    Inherit(String),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "tcp://{addr}"),
            Listen::Unix { path, .. } => write!(f, "unix://{}", path.display()),
            Listen::Inherit(name) => write!(f, "inherited `{name}`"),
        }
    }
}

/// The control socket when the config does not name one.
pub const DEFAULT_SOCKET: &str = "/run/ginit/control.sock";

/// How `ginit reload NAME` (and a `memory_max` or `cpu_action: restart`) renews a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadStrategy {
    /// Start a new instance, wait until it is ready, then stop the old one; one instance at
    /// a time. A new instance that exits or is not ready in time is killed and the old one
    /// keeps serving. The default for programs with sockets.
    Replace,
    /// Stop each instance, then start it again.
    Restart,
    /// Send this signal; the program reloads itself.
    Signal(i32),
}

/// How ginit checks an instance (`ready:`, `health:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadyCheck {
    /// `READY=1` on NOTIFY_SOCKET (readiness only).
    Notify,
    /// A TCP connection to this address succeeds.
    Tcp(std::net::SocketAddr),
    /// `GET` answers 2xx or 3xx.
    Http {
        addr: std::net::SocketAddr,
        /// The Host header (as written in the URL).
        host: String,
        path: String,
    },
    /// The command exits 0 (run with the program's environment, user and directory).
    Exec(Vec<String>),
    /// Ready this long after the start (readiness only).
    Delay(Duration),
    /// A line of the program's output (through ginit) contains this text (readiness only).
    Log(String),
    /// A `tcp` (`http: false`) or `http` check whose address has `${NAME}`s: expanded from
    /// the program's environment and parsed at each attempt.
    Expand { http: bool, text: String },
}

/// `health:`: a check repeated every `interval` while the instance is ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthSpec {
    pub check: ReadyCheck,
    pub interval: Duration,
    /// Bound on one check.
    pub timeout: Duration,
    /// This many failures in a row: the instance is reloaded.
    pub failures: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadySpec {
    pub check: ReadyCheck,
    /// Not ready by then: the instance is killed and counts as a failed start.
    pub timeout: Duration,
}

/// What exceeding `cpu_max` for `monitor_window` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuAction {
    Warn,
    Restart,
}

/// A resource limit set with setrlimit in the child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rlimit {
    AddressSpace,
    Data,
    Stack,
    CpuSeconds,
    OpenFiles,
    Processes,
    Core,
    FileSize,
}

impl Rlimit {
    pub const ALL: [Rlimit; 8] = [
        Rlimit::AddressSpace,
        Rlimit::Data,
        Rlimit::Stack,
        Rlimit::CpuSeconds,
        Rlimit::OpenFiles,
        Rlimit::Processes,
        Rlimit::Core,
        Rlimit::FileSize,
    ];

    /// The config key.
    pub fn key(self) -> &'static str {
        match self {
            Rlimit::AddressSpace => "address_space",
            Rlimit::Data => "data",
            Rlimit::Stack => "stack",
            Rlimit::CpuSeconds => "cpu_seconds",
            Rlimit::OpenFiles => "open_files",
            Rlimit::Processes => "processes",
            Rlimit::Core => "core",
            Rlimit::FileSize => "file_size",
        }
    }

    /// The resource number for setrlimit(2).
    pub fn resource(self) -> i32 {
        (match self {
            Rlimit::AddressSpace => libc::RLIMIT_AS,
            Rlimit::Data => libc::RLIMIT_DATA,
            Rlimit::Stack => libc::RLIMIT_STACK,
            Rlimit::CpuSeconds => libc::RLIMIT_CPU,
            Rlimit::OpenFiles => libc::RLIMIT_NOFILE,
            Rlimit::Processes => libc::RLIMIT_NPROC,
            Rlimit::Core => libc::RLIMIT_CORE,
            Rlimit::FileSize => libc::RLIMIT_FSIZE,
        }) as i32
    }

    /// Counted in bytes (a size) rather than a plain number.
    pub fn is_size(self) -> bool {
        !matches!(
            self,
            Rlimit::CpuSeconds | Rlimit::OpenFiles | Rlimit::Processes
        )
    }
}

/// `limits:` of a program. A value of `None` in `rlimits` means unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub rlimits: Vec<(Rlimit, Option<u64>)>,
    pub nice: Option<i32>,
    pub oom_score_adj: Option<i32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    Always,
    OnFailure,
    Never,
}

impl Restart {
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::Always => "always",
            Restart::OnFailure => "on-failure",
            Restart::Never => "never",
        }
    }
}

/// Delays between restarts: `initial`, multiplied by `factor` after each quick failure, at
/// most `max`; back to `initial` after a run longer than `reset_after`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub factor: f64,
    pub reset_after: Duration,
}

/// Where a program's stdout or stderr goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// ginit's own stdout/stderr, passed to the program as is (no copy).
    Inherit,
    /// Discarded (/dev/null).
    Null,
    /// Each line on ginit's matching stream as `name[.i] | line`.
    Prefix,
    /// Each line on ginit's matching stream as one JSON object.
    Json,
    /// Each line appended to a file, rotated by size when `rotate` is given.
    File {
        path: PathBuf,
        rotate: Option<Rotate>,
    },
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Inherit => f.write_str("inherit"),
            Output::Null => f.write_str("null"),
            Output::Prefix => f.write_str("prefix"),
            Output::Json => f.write_str("json"),
            Output::File { path, rotate: None } => write!(f, "file {}", path.display()),
            Output::File {
                path,
                rotate: Some(r),
            } => write!(
                f,
                "file {} (rotated at {} bytes, {} kept)",
                path.display(),
                r.size,
                r.keep
            ),
        }
    }
}

/// Size-based rotation of a log file: `path` becomes `path.1`, `path.1` becomes `path.2`, ...
/// and the oldest beyond `keep` is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotate {
    pub size: u64,
    pub keep: u32,
}

/// One program of the config (immutable; instances are runtime state).
#[derive(Clone, Debug, PartialEq)]
pub struct ProgramSpec {
    pub name: String,
    /// argv; argv[0] is resolved on PATH when started.
    pub command: Vec<String>,
    /// Added to (and overriding) ginit's environment.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub user: Option<Credentials>,
    pub instances: u32,
    pub oneshot: bool,
    pub depends_on: Vec<String>,
    pub restart: Restart,
    pub backoff: Backoff,
    pub max_restarts: u32,
    pub restart_window: Duration,
    pub critical: bool,
    pub stop_signal: i32,
    pub stop_timeout: Duration,
    /// `stop.command`: run to stop an instance instead of sending `stop_signal` (empty: none).
    pub stop_command: Vec<String>,
    pub stdout: Output,
    pub stderr: Output,
    pub reload: ReloadStrategy,
    /// Names of `sockets` passed as fds 3, 4, ... (LISTEN_FDS), in this order.
    pub sockets: Vec<String>,
    /// The readiness check; none: ready as soon as it runs.
    pub ready: Option<ReadySpec>,
    pub health: Option<HealthSpec>,
    /// `WATCHDOG=1` required at least this often once ready.
    pub watchdog: Option<Duration>,
    pub limits: Limits,
    /// Resident memory of the process tree above which the program is reloaded.
    pub memory_max: Option<u64>,
    /// CPU use in percent of one core (150 = one and a half cores).
    pub cpu_max: Option<f64>,
    pub monitor_window: Duration,
    pub cpu_action: CpuAction,
    /// Exit statuses besides 0 that count as a success (`success_exit_codes`), sorted.
    pub success_exit_codes: Vec<i32>,
    /// `env_file`: files of `KEY=VALUE` lines read at each start, in order (`true`: optional,
    /// written `-/path`).
    pub env_files: Vec<(PathBuf, bool)>,
    /// `runtime_env`: GOMEMLIMIT and GOMAXPROCS are set (see [`ProgramSpec::runtime_env`]).
    pub runtime_env: bool,
    /// `on_exit`, `on_failed`, `hook_timeout`.
    pub hooks: Hooks,
    /// `schedule` or `every`: run as a oneshot at these times (`oneshot` is set too).
    pub schedule: Option<schedule::Schedule>,
    /// `watch`: the program is reloaded by its strategy when files under these paths change.
    pub watch: Option<FileWatch>,
}

/// A program's `watch: {paths, ignore, debounce}`.
#[derive(Clone, Debug, PartialEq)]
pub struct FileWatch {
    /// Absolute paths: a directory is watched with everything under it, a file (which may
    /// not exist yet) by its name in its directory.
    pub paths: Vec<PathBuf>,
    /// Names (globs, see `glob.rs`) whose changes do not count: a file's or a directory's on
    /// the way to it.
    pub ignore: Vec<String>,
    /// One reload once changes have stopped for this long.
    pub debounce: Duration,
}

/// Commands run when an instance exits (`on_exit`) or the program fails (`on_failed`), each
/// bounded by `timeout` (`hook_timeout`); an empty command is none. When they run, and with
/// which variables, is the machine's (`machine/hooks.rs`).
#[derive(Clone, Debug, PartialEq)]
pub struct Hooks {
    pub on_exit: Vec<String>,
    pub on_failed: Vec<String>,
    pub timeout: Duration,
}

impl ProgramSpec {
    /// What the Go runtime is told of this program's share of the machine (SPEC 9), each with
    /// why: GOMEMLIMIT at 90% of `memory_max`; GOMAXPROCS from `cpu_max` (its cores, rounded
    /// up), else from the container's CPU quota `quota` (in CPUs) split between the
    /// program's instances (rounded up, at least 1). Nothing with `runtime_env: false`; what
    /// the program's environment sets itself wins (the caller checks).
    pub fn runtime_env(&self, quota: Option<f64>) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        if !self.runtime_env {
            return out;
        }
        if let Some(max) = self.memory_max {
            let why = "90% of memory_max".to_string();
            out.push(("GOMEMLIMIT", (max / 10 * 9).to_string(), why));
        }
        let cores = |n: f64| (n.ceil() as u64).max(1).to_string();
        if let Some(percent) = self.cpu_max {
            out.push(("GOMAXPROCS", cores(percent / 100.0), "cpu_max".to_string()));
        } else if let Some(cpus) = quota {
            let n = self.instances.max(1);
            let why = format!(
                "CPU quota {cpus} over {n} instance{}",
                if n == 1 { "" } else { "s" }
            );
            out.push(("GOMAXPROCS", cores(cpus / f64::from(n)), why));
        }
        out
    }

    /// Whether a run that ended with `code` (128+N when killed by signal N) succeeded: 0
    /// always does (as systemd's `SuccessExitStatus=` adds to it), and so do the
    /// `success_exit_codes`.
    pub fn succeeded(&self, code: i32) -> bool {
        code == 0 || self.success_exit_codes.binary_search(&code).is_ok()
    }

    /// A program with every setting at its default (as if only `command` were written).
    pub fn new(name: &str, command: Vec<String>) -> ProgramSpec {
        ProgramSpec {
            name: name.to_string(),
            command,
            env: Vec::new(),
            cwd: None,
            user: None,
            instances: 1,
            oneshot: false,
            schedule: None,
            watch: None,
            depends_on: Vec::new(),
            restart: Restart::Always,
            backoff: schema::default_backoff(),
            max_restarts: 10,
            restart_window: Duration::from_secs(60),
            critical: false,
            stop_signal: libc::SIGTERM,
            stop_timeout: schema::DEFAULT_STOP_TIMEOUT,
            stop_command: Vec::new(),
            stdout: Output::Inherit,
            stderr: Output::Inherit,
            reload: ReloadStrategy::Restart,
            sockets: Vec::new(),
            ready: None,
            health: None,
            watchdog: None,
            limits: Limits::default(),
            memory_max: None,
            cpu_max: None,
            monitor_window: Duration::from_secs(30),
            cpu_action: CpuAction::Warn,
            success_exit_codes: Vec::new(),
            env_files: Vec::new(),
            runtime_env: true,
            hooks: Hooks {
                on_exit: Vec::new(),
                on_failed: Vec::new(),
                timeout: schema::DEFAULT_HOOK_TIMEOUT,
            },
        }
    }

    /// How logs and output name instance `index`: `name`, or `name.i` when the program has
    /// several instances.
    pub fn label(&self, index: u32) -> String {
        if self.instances > 1 {
            format!("{}.{index}", self.name)
        } else {
            self.name.clone()
        }
    }

    /// Whether ginit must sample this program's resource use periodically.
    pub fn is_monitored(&self) -> bool {
        self.memory_max.is_some() || self.cpu_max.is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownSpec {
    /// Keep serving (reporting not ready) this long after SIGTERM before stopping.
    pub delay: Duration,
    /// Hard bound on the whole shutdown.
    pub timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSpec {
    /// env_logger syntax; `None`: not set in the file.
    pub level: Option<String>,
    pub format: LogFormat,
    /// With `--daemon`: where ginit's stdout and stderr go (else /dev/null).
    pub file: Option<PathBuf>,
    /// `log.buffer`: the ring of each program's last lines (`ginit logs`).
    pub buffer: LogBuffer,
    /// `log.timestamps`: an RFC 3339 time at the start of `prefix` lines and of ginit's own
    /// text log lines.
    pub timestamps: bool,
}

/// `log.buffer`: how much of each program's output ginit keeps in memory for `ginit logs`,
/// whichever limit is reached first; either 0 turns the ring off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogBuffer {
    pub lines: u32,
    /// Bytes of line text (without newlines).
    pub bytes: u64,
}

impl LogBuffer {
    /// 1,000 lines or 1 MiB per program.
    pub const DEFAULT: LogBuffer = LogBuffer {
        lines: 1000,
        bytes: 1 << 20,
    };

    /// The ring keeps nothing.
    pub fn is_off(&self) -> bool {
        self.lines == 0 || self.bytes == 0
    }
}

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// 0: the main config file; k: the k-th file it includes.
    pub file: u32,
    pub line: usize,
    pub col: usize,
    /// Key path such as `programs.web.restart` (empty for the file as a whole).
    pub path: String,
    pub message: String,
}

/// Every problem found in one config file: the first [`MAX_ERRORS`] found, sorted by
/// position, and how many more there were (counted, not kept: a file with 10,000 broken
/// programs gives a readable report, and bounded work for its hints).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    pub file: PathBuf,
    /// The files `include` named, in order (an error's `file` k is the k-th).
    pub included: Vec<PathBuf>,
    pub errors: Vec<ConfigError>,
    /// Errors beyond `errors`.
    pub more: usize,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let file = match e.file {
                0 => &self.file,
                k => self.included.get(k as usize - 1).unwrap_or(&self.file),
            };
            write!(f, "{}", file.display())?;
            if e.line > 0 {
                write!(f, ":{}:{}", e.line, e.col)?;
            }
            if !e.path.is_empty() {
                write!(f, ": {}", e.path)?;
            }
            write!(f, ": {}", e.message)?;
        }
        if self.more > 0 {
            write!(
                f,
                "\n{}: and {} more errors",
                self.file.display(),
                self.more
            )?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    fn whole_file(file: &Path, message: String) -> ConfigErrors {
        ConfigErrors {
            file: file.to_path_buf(),
            included: Vec::new(),
            errors: vec![ConfigError {
                file: 0,
                line: 0,
                col: 0,
                path: String::new(),
                message,
            }],
            more: 0,
        }
    }

    /// How many errors were found, shown or not.
    pub fn count(&self) -> usize {
        self.errors.len() + self.more
    }
}

/// A config from test text, validated against a fake machine (see `schema::tests::Fake`).
#[cfg(test)]
pub fn schema_for_tests(text: &str) -> Config {
    schema::validate(text, &schema::tests::Fake).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The largest config file ginit reads: 1 MiB holds 10,000 programs of about 100 bytes
/// each, and reading it (in PID 1, on every reload) stays a bounded cost.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads and validates the config file at `path`.
pub fn load(path: &Path, resolver: &dyn Resolver) -> Result<Config, ConfigErrors> {
    let text = read(path).map_err(|e| ConfigErrors::whole_file(path, e))?;
    parse(&text, path, resolver)
}

/// Reads the config: a regular file of at most MAX_CONFIG_BYTES, else an error that says
/// why. Opened non-blocking, so a FIFO without a writer cannot hold PID 1 in open(2), and
/// without becoming a controlling terminal should the path name one; anything but a regular
/// file (/dev/zero reads forever) is refused before a byte is read.
pub(crate) fn read(path: &Path) -> Result<String, String> {
    read_text(path, "the config")
}

/// Reads `what` (a config, an env file) at `path` as the config is read (see [`read`]).
pub fn read_text(path: &Path, what: &str) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let cannot = |e: std::io::Error| format!("cannot read {what}: {e}");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!(
            "cannot read {what}: it is not a regular file (a FIFO, a device or a directory)"
        ));
    }
    let too_big = format!("{what} is larger than 1 MiB (1048576 bytes)");
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_big);
    }
    // The size may change between fstat and read (and files of /proc say 0): the read
    // itself is capped too.
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(cannot(e)),
        };
        if bytes.len() + n > MAX_CONFIG_BYTES as usize {
            return Err(too_big);
        }
        bytes.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    String::from_utf8(bytes).map_err(|_| format!("cannot read {what}: it is not UTF-8 text"))
}

/// Validates config text read from `file` (whose directory relative `include` patterns are
/// taken from), with the files it includes.
pub fn parse(text: &str, file: &Path, resolver: &dyn Resolver) -> Result<Config, ConfigErrors> {
    let mut included = Vec::new();
    schema::validate_file(text, Some(file), resolver, &mut included).map_err(|(errors, more)| {
        ConfigErrors {
            file: file.to_path_buf(),
            included,
            errors,
            more,
        }
    })
}

/// Program name -> position in `programs`; the first of duplicate names wins, as a search in
/// file order would find it.
pub(crate) fn name_index(programs: &[ProgramSpec]) -> Names<'_> {
    let mut index = Names::new(programs.len());
    for (i, p) in programs.iter().enumerate() {
        index.insert(&p.name, i);
    }
    index
}

/// Names -> positions: every lookup by name in the config (keys, programs, sockets, files,
/// variables), so validation stays linear over thousands of names. Open addressing with
/// SipHash keyed at random per process, as std's HashMap, so no list of names written to
/// collide makes it quadratic. One concrete type instead of a HashMap per key and value type:
/// each of those costs the binary a copy of the table code.
pub(crate) struct Names<'a> {
    /// (name, position); position EMPTY: a free slot. The length is a power of two, at
    /// least twice the names held.
    slots: Vec<(&'a str, usize)>,
    len: usize,
    keys: std::hash::RandomState,
}

const EMPTY: usize = usize::MAX;

impl<'a> Names<'a> {
    /// A table for about `n` names (it grows if given more).
    pub(crate) fn new(n: usize) -> Names<'a> {
        let size = n.saturating_mul(2).max(8).next_power_of_two();
        Names {
            slots: vec![("", EMPTY); size],
            len: 0,
            keys: std::hash::RandomState::new(),
        }
    }

    /// The slot holding `name`, or the free one where it would go (there always is one:
    /// the table is never more than half full).
    fn slot(&self, name: &str) -> usize {
        use std::hash::BuildHasher;
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = self.keys.hash_one(name) as usize & mask;
        while let Some((held, at)) = self.slots.get(i) {
            if *at == EMPTY || *held == name {
                break;
            }
            i = (i + 1) & mask;
        }
        i
    }

    pub(crate) fn get(&self, name: &str) -> Option<usize> {
        let at = self.slots.get(self.slot(name))?.1;
        (at != EMPTY).then_some(at)
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Adds `name` at `position` unless it is there already; returns the position it had.
    pub(crate) fn insert(&mut self, name: &'a str, position: usize) -> Option<usize> {
        if let Some(had) = self.get(name) {
            return Some(had);
        }
        if (self.len + 1) * 2 > self.slots.len() {
            let old = std::mem::replace(self, Names::new(self.slots.len()));
            for (held, at) in old.slots.into_iter().filter(|s| s.1 != EMPTY) {
                self.insert(held, at);
            }
        }
        let i = self.slot(name);
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = (name, position);
            self.len += 1;
        }
        None
    }
}

/// The pass of a program that is never started (see [`walk_dependencies`]).
const NEVER: usize = usize::MAX;

/// One depth-first walk over `depends_on`, from each program in file order, with an explicit
/// stack (a 10,000-long chain costs ginit's own stack nothing), in O(n + e). It gives:
///
/// - the dependency cycles, each as the names around it (first == last), one per back edge
///   in the order the walk meets them, at most `limit` of them;
/// - for each program the pass of [`Config::start_order`] in which it starts: 0 without
///   dependencies, else the largest over its dependencies of their pass, plus one for a
///   dependency written after it (a pass in file order meets the program before it); NEVER
///   in a cycle or after a missing name. A program finishes after every dependency has (or
///   while one is still open on the stack, which is a cycle), so one look at its
///   dependencies when it finishes is enough.
///
/// Dependencies on unknown names are skipped by the cycle search.
pub(crate) fn walk_dependencies(
    programs: &[ProgramSpec],
    limit: usize,
) -> (Vec<Vec<&str>>, Vec<usize>) {
    let index = name_index(programs);
    // Per program: NEW, DONE, or its position on the walk's stack.
    const NEW: usize = usize::MAX;
    const DONE: usize = usize::MAX - 1;
    let mut mark = vec![NEW; programs.len()];
    let mut pass = vec![NEVER; programs.len()];
    let mut cycles: Vec<Vec<&str>> = Vec::new();
    // (program, next dependency to look at)
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..programs.len() {
        match mark.get_mut(root) {
            Some(m) if *m == NEW => *m = 0,
            _ => continue,
        }
        stack.push((root, 0));
        while let Some(top) = stack.last_mut() {
            let p = top.0;
            let deps = programs.get(p).map_or(&[][..], |q| q.depends_on.as_slice());
            let Some(dep) = deps.get(top.1) else {
                // Finished: every dependency is done, or open (a cycle), or missing.
                let mut at = 0;
                for dep in deps {
                    let d = index.get(dep);
                    let done = d.filter(|d| mark.get(*d) == Some(&DONE));
                    match done.and_then(|d| pass.get(d).map(|q| (d, *q))) {
                        Some((d, q)) if q != NEVER => at = at.max(q + usize::from(d > p)),
                        _ => {
                            at = NEVER;
                            break;
                        }
                    }
                }
                if let (Some(m), Some(q)) = (mark.get_mut(p), pass.get_mut(p)) {
                    *m = DONE;
                    *q = at;
                }
                stack.pop();
                continue;
            };
            top.1 += 1;
            let Some(d) = index.get(dep) else {
                continue;
            };
            let depth = stack.len();
            match mark.get_mut(d) {
                Some(m) if *m == NEW => {
                    *m = depth;
                    stack.push((d, 0));
                }
                Some(m) if *m < depth && cycles.len() < limit => {
                    let names = |q: &(usize, usize)| programs.get(q.0).map(|p| p.name.as_str());
                    let mut cycle: Vec<&str> = stack.iter().skip(*m).filter_map(names).collect();
                    cycle.extend(programs.get(d).map(|p| p.name.as_str()));
                    cycles.push(cycle);
                }
                _ => {}
            }
        }
    }
    (cycles, pass)
}

impl Config {
    /// Adds the PROGRAM given after `--` as the program `main`: `restart: never` and
    /// critical, so its exit ends the run with its status, as `docker run` users expect.
    pub fn add_main(&mut self, command: Vec<String>) -> Result<(), String> {
        if self.program("main").is_some() {
            return Err(
                "the config already has a program named `main`, and a PROGRAM was given \
                        after `--` too; rename one of them"
                    .into(),
            );
        }
        let mut main = ProgramSpec::new("main", command);
        main.restart = Restart::Never;
        main.max_restarts = 0;
        main.critical = true;
        self.programs.push(main);
        Ok(())
    }

    pub fn program(&self, name: &str) -> Option<&ProgramSpec> {
        self.programs.iter().find(|p| p.name == name)
    }

    /// Program names in an order where each comes after what it depends on (file order among
    /// equals). Validation guarantees there is no cycle.
    pub fn start_order(&self) -> Vec<&str> {
        self.start_order_indices()
            .into_iter()
            .filter_map(|i| self.programs.get(i).map(|p| p.name.as_str()))
            .collect()
    }

    /// [`Config::start_order`] as indices into `programs`.
    ///
    /// The order is that of repeated passes over the programs in file order, each pass adding
    /// every program whose dependencies were all added before it (earlier in the same pass
    /// included); programs never added (in a cycle, or after a missing name) are left out.
    /// Computed without the passes: [`walk_dependencies`] gives each program its pass, and
    /// the programs are laid out by (pass, file position) with a counting sort.
    fn start_order_indices(&self) -> Vec<usize> {
        let (_, pass) = walk_dependencies(&self.programs, 0);
        let mut at = vec![0usize; pass.len() + 1];
        for p in pass.iter().filter(|p| **p != NEVER) {
            if let Some(slot) = at.get_mut(p + 1) {
                *slot += 1;
            }
        }
        for p in 1..at.len() {
            let before = at.get(p - 1).copied().unwrap_or(0);
            if let Some(slot) = at.get_mut(p) {
                *slot += before;
            }
        }
        let mut order = vec![0usize; at.last().copied().unwrap_or(0)];
        for (i, p) in pass.iter().enumerate() {
            if let Some(cursor) = at.get_mut(*p) {
                if let Some(slot) = order.get_mut(*cursor) {
                    *slot = i;
                }
                *cursor += 1;
            }
        }
        order
    }

    /// The plan `ginit check` prints.
    /// What `ginit check` prints: the start order and each program's settings, with the Go
    /// runtime sizing it would get in a container whose CPU quota is `quota`.
    pub fn plan(&self, quota: Option<f64>) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let order = self.start_order_indices();
        for s in &self.sockets {
            let _ = writeln!(
                out,
                "socket {}: {} (backlog {})",
                s.name, s.listen, s.backlog
            );
        }
        let names: Vec<&str> = order
            .iter()
            .filter_map(|i| self.programs.get(*i).map(|p| p.name.as_str()))
            .collect();
        if let Some(listen) = &self.metrics {
            let _ = writeln!(out, "metrics: GET /metrics on {listen}");
        }
        if let Some(d) = self.watch {
            let d = units::format_duration(d);
            let _ = writeln!(
                out,
                "config: reloaded when its files change (quiet for {d})"
            );
        }
        let _ = writeln!(out, "start order: {}", names.join(", "));
        for p in order.iter().filter_map(|i| self.programs.get(*i)) {
            let _ = writeln!(out, "\n{}:", p.name);
            let _ = writeln!(out, "  command: {:?}", p.command);
            if p.instances != 1 {
                let _ = writeln!(out, "  instances: {}", p.instances);
            }
            match &p.schedule {
                Some(s) => {
                    let _ = writeln!(out, "  schedule: {} (a oneshot at each)", s.describe());
                }
                None if p.oneshot => {
                    let _ = writeln!(out, "  oneshot: true");
                }
                None => {}
            }
            if !p.depends_on.is_empty() {
                let _ = writeln!(out, "  depends_on: {}", p.depends_on.join(", "));
            }
            if let Some(w) = &p.watch {
                let paths: Vec<String> = w.paths.iter().map(|p| p.display().to_string()).collect();
                let d = units::format_duration(w.debounce);
                let _ = write!(out, "  watch: {} (quiet for {d})", paths.join(", "));
                if !w.ignore.is_empty() {
                    let _ = write!(out, ", ignoring {}", w.ignore.join(", "));
                }
                out.push('\n');
            }
            if !p.sockets.is_empty() {
                let _ = writeln!(out, "  sockets: {} (fds 3..)", p.sockets.join(", "));
            }
            let who = match &p.user {
                None => "(ginit's own)".to_string(),
                Some(c) => format!(
                    "{} (uid {}, gid {})",
                    c.name.as_deref().unwrap_or("-"),
                    c.uid,
                    c.gid
                ),
            };
            let _ = writeln!(out, "  user: {who}");
            if let Some(cwd) = &p.cwd {
                let _ = writeln!(out, "  cwd: {}", cwd.display());
            }
            let _ = writeln!(
                out,
                "  restart: {} (backoff {} to {}, at most {} in {}){}",
                p.restart.as_str(),
                units::format_duration(p.backoff.initial),
                units::format_duration(p.backoff.max),
                p.max_restarts,
                units::format_duration(p.restart_window),
                if p.critical { ", critical" } else { "" }
            );
            let how = match p.stop_command.is_empty() {
                true => signals::name(p.stop_signal).to_string(),
                false => format!("{:?}", p.stop_command),
            };
            let after = units::format_duration(p.stop_timeout);
            let _ = writeln!(out, "  stop: {how} then SIGKILL after {after}");
            for (stream, output) in [("stdout", &p.stdout), ("stderr", &p.stderr)] {
                if *output != Output::Inherit {
                    let _ = writeln!(out, "  {stream}: {output}");
                }
            }
            for (key, value, why) in p.runtime_env(quota) {
                if !p.env.iter().any(|(k, _)| k == key) {
                    let _ = writeln!(out, "  {key}={value} ({why})");
                }
            }
            for (key, argv) in [
                ("on_exit", &p.hooks.on_exit),
                ("on_failed", &p.hooks.on_failed),
            ] {
                if !argv.is_empty() {
                    let _ = writeln!(out, "  {key}: {argv:?}");
                }
            }
        }
        let _ = writeln!(
            out,
            "\nshutdown: delay {}, timeout {}",
            units::format_duration(self.shutdown.delay),
            units::format_duration(self.shutdown.timeout)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order as it was computed before: repeated passes in file order, each adding the
    /// programs whose dependencies are all added already (quadratic and more; kept here as
    /// the definition the fast version must match).
    fn passes(programs: &[ProgramSpec]) -> Vec<&str> {
        let mut done: Vec<&str> = Vec::new();
        while done.len() < programs.len() {
            let before = done.len();
            for p in programs {
                if !done.contains(&p.name.as_str())
                    && p.depends_on.iter().all(|d| done.contains(&d.as_str()))
                {
                    done.push(&p.name);
                }
            }
            if done.len() == before {
                break;
            }
        }
        done
    }

    /// A small deterministic generator (xorshift), so failures are reproducible.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    fn config(programs: Vec<ProgramSpec>) -> Config {
        Config {
            programs,
            ..Config::default()
        }
    }

    /// `n` programs with random dependencies: mostly on earlier or later programs (acyclic
    /// or not), sometimes on themselves, on a missing name, or twice on the same one.
    fn random_graph(rng: &mut Rng, n: usize, edges: usize, acyclic: bool) -> Config {
        let mut programs: Vec<ProgramSpec> = (0..n)
            .map(|i| ProgramSpec::new(&format!("p{i}"), vec!["x".into()]))
            .collect();
        // A random file order over a random hidden topological order.
        let mut rank: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            rank.swap(i, rng.below(i + 1));
        }
        for _ in 0..edges {
            let (a, b) = (rng.below(n), rng.below(n));
            let dep = match rng.below(20) {
                0 if !acyclic => format!("p{a}"),
                1 if !acyclic => "missing".to_string(),
                _ if acyclic && rank[b] >= rank[a] => continue,
                _ => format!("p{b}"),
            };
            programs[a].depends_on.push(dep.clone());
            if rng.below(10) == 0 {
                programs[a].depends_on.push(dep);
            }
        }
        config(programs)
    }

    #[test]
    fn start_order_is_the_order_of_the_passes() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..400 {
            let n = 1 + rng.below(40);
            let edges = rng.below(3 * n);
            let c = random_graph(&mut rng, n, edges, round % 2 == 0);
            assert_eq!(c.start_order(), passes(&c.programs), "round {round}: {c:?}");
        }
        // Chains in both file orders, and a program after all of its dependents.
        for n in [1, 2, 3, 50] {
            let forward: Vec<ProgramSpec> = (0..n)
                .map(|i| {
                    let mut p = ProgramSpec::new(&format!("p{i}"), vec!["x".into()]);
                    p.depends_on.extend((i > 0).then(|| format!("p{}", i - 1)));
                    p
                })
                .collect();
            let mut backward = forward.clone();
            backward.reverse();
            for c in [config(forward), config(backward)] {
                let order = c.start_order();
                assert_eq!(order, passes(&c.programs));
                let want: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
                assert_eq!(order, want);
            }
        }
    }

    #[test]
    fn start_order_of_a_long_chain_is_fast_enough_to_run_here() {
        // 10,000 programs written last-first: the passes would take 10,000 rounds.
        let n = 10_000;
        let programs: Vec<ProgramSpec> = (0..n)
            .rev()
            .map(|i| {
                let mut p = ProgramSpec::new(&format!("p{i}"), vec!["x".into()]);
                if i > 0 {
                    p.depends_on.push(format!("p{}", i - 1));
                }
                p
            })
            .collect();
        let order = config(programs).start_order().len();
        assert_eq!(order, n);
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = std::env::temp_dir().join(format!("ginit-config-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ok.yaml");
        std::fs::write(&file, "programs: {}\n").unwrap();
        assert_eq!(read(&file).unwrap(), "programs: {}\n");

        let big = dir.join("big.yaml");
        std::fs::write(&big, vec![b'#'; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        assert!(read(&big).unwrap_err().contains("larger than 1 MiB"));
        std::fs::write(&big, vec![b'#'; MAX_CONFIG_BYTES as usize]).unwrap();
        assert!(read(&big).is_ok());

        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        // No writer: a blocking open would never return.
        for odd in [fifo.as_path(), Path::new("/dev/zero"), dir.as_path()] {
            let e = read(odd).unwrap_err();
            assert!(e.contains("not a regular file"), "{}: {e}", odd.display());
        }
        assert!(
            read(&dir.join("absent"))
                .unwrap_err()
                .contains("cannot read the config")
        );
        std::fs::write(&file, b"\xff\xfe").unwrap();
        assert!(read(&file).unwrap_err().contains("UTF-8"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_find_what_was_put_and_keep_the_first() {
        let words: Vec<String> = (0..5000).map(|i| format!("name-{i}")).collect();
        // Made for 10, given 5,000: it grows.
        let mut names = Names::new(10);
        for (i, w) in words.iter().enumerate() {
            assert_eq!(names.insert(w, i), None);
        }
        assert_eq!(
            names.insert("name-7", 99),
            Some(7),
            "the first position stays"
        );
        for (i, w) in words.iter().enumerate() {
            assert_eq!(names.get(w), Some(i));
        }
        assert!(!names.contains("name-5000") && !names.contains(""));
        assert_eq!(names.insert("", 1), None, "the empty name is a name too");
        assert_eq!(names.get(""), Some(1));
        assert!(names.slots.len() >= 2 * names.len);
    }

    #[test]
    fn errors_beyond_those_shown_are_counted() {
        let e = ConfigErrors {
            file: "c.yaml".into(),
            included: Vec::new(),
            errors: vec![ConfigError {
                file: 0,
                line: 2,
                col: 3,
                path: "programs.a".into(),
                message: "bad".into(),
            }],
            more: 7,
        };
        assert_eq!(
            e.to_string(),
            "c.yaml:2:3: programs.a: bad\nc.yaml: and 7 more errors"
        );
        assert_eq!(e.count(), 8);
    }
}
