//! The fork/exec boundary: every process ginit starts is created here.
//!
//! Everything the child needs is prepared before `fork` in a [`SpawnPlan`]: the resolved
//! executable path, argv and envp as C strings with their pointer arrays. Between `fork` and
//! `execve` the child makes only async-signal-safe system calls: no allocation, no locks, no
//! logging, no Rust runtime. An `execve` failure is reported to the parent through a
//! close-on-exec pipe (EOF means the exec succeeded), and the child leaves with `_exit`.
//!
//! The child must start clean (SPEC section 2): ginit's blocked mask is cleared and every
//! signal disposition reset to default (SIGPIPE above all, which Rust ignores and which would
//! otherwise survive exec); it sees only fds 0, 1, 2, because every other fd ginit holds is
//! close-on-exec (see [`mark_inherited_fds_cloexec`]).
//!
//! It is part of `sys`, the one room of the OS edge that holds `unsafe`: the child's system
//! calls are raw libc calls on purpose, not the wrappers of `sys/mod.rs`, because between fork
//! and exec nothing may allocate, and an `io::Error` or a `Result` built there would be one
//! more thing to prove allocation-free. Everything on the parent's side goes through those
//! wrappers like the rest of the edge. (Unlike `sys/mod.rs`, it reads two constants of the
//! config: the socket limit and the signal count.)

use std::ffi::{CString, OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super as sys;
use crate::config::MAX_SOCKETS;
use crate::config::signals::nsig;

/// Why a program could not be started. Carries the name the user gave.
#[derive(Debug)]
pub enum SpawnError {
    /// No such file, or not found on PATH: exit status 127 by convention.
    NotFound { program: String },
    /// Found but not executable (permissions, a directory, a bad binary): 126.
    NotExecutable { program: String, reason: String },
    /// The system refused to create the process.
    Fork { program: String, error: io::Error },
}

impl SpawnError {
    /// The exit status a shell would report for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::NotFound { .. } => 127,
            SpawnError::NotExecutable { .. } | SpawnError::Fork { .. } => 126,
        }
    }
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::NotFound { program } => {
                write!(f, "cannot run `{program}`: no such file or directory")
            }
            SpawnError::NotExecutable { program, reason } => {
                write!(f, "cannot run `{program}`: {reason}")
            }
            SpawnError::Fork { program, error } => {
                write!(f, "cannot start `{program}`: {error}")
            }
        }
    }
}

/// The default search path when ginit's environment has no PATH (a `FROM scratch` image).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Finds the file `execvp` would run for `program`, checking it can be executed.
pub fn resolve(program: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, SpawnError> {
    let shown = program.to_string_lossy().into_owned();
    if program.is_empty() {
        return Err(SpawnError::NotFound { program: shown });
    }
    if program.as_bytes().contains(&b'/') {
        let path = PathBuf::from(program);
        return check_executable(&path)
            .map(|()| path)
            .map_err(|reason| match reason {
                None => SpawnError::NotFound { program: shown },
                Some(reason) => SpawnError::NotExecutable {
                    program: shown,
                    reason,
                },
            });
    }
    let search = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut denied = None;
    for dir in search.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() { b"." as &[u8] } else { dir };
        let candidate = Path::new(OsStr::from_bytes(dir)).join(program);
        match check_executable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(Some(reason)) if denied.is_none() => denied = Some(reason),
            Err(_) => {}
        }
    }
    Err(match denied {
        Some(reason) => SpawnError::NotExecutable {
            program: shown,
            reason,
        },
        None => SpawnError::NotFound { program: shown },
    })
}

/// `Err(None)`: does not exist; `Err(Some(reason))`: exists but cannot be executed.
fn check_executable(path: &Path) -> Result<(), Option<String>> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => None,
        _ => Some(e.to_string()),
    })?;
    if meta.is_dir() {
        return Err(Some("it is a directory".into()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(Some("permission denied (not executable)".into()));
    }
    Ok(())
}

/// Everything a child needs, built before fork so the child only makes system calls.
pub struct SpawnPlan {
    /// The name the user gave, for messages.
    name: String,
    path: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    /// Put the child in a process group of its own.
    pub new_pgroup: bool,
    /// Make that group the foreground group of the terminal on fd 0.
    pub foreground: bool,
    /// Working directory of the child.
    pub cwd: Option<CString>,
    /// uid, gid and supplementary groups to switch to (root only).
    pub credentials: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
    /// Fds to put on the child's stdout and stderr (closed in ginit after the spawn).
    pub stdout: Option<std::os::fd::OwnedFd>,
    pub stderr: Option<std::os::fd::OwnedFd>,
    /// setrlimit(resource, soft = hard = value) in the child, with the key for messages.
    pub rlimits: Vec<(&'static str, i32, libc::rlimit)>,
    /// setpriority for the child itself.
    pub nice: Option<i32>,
    /// Written to /proc/self/oom_score_adj (the decimal text).
    pub oom_score_adj: Option<Vec<u8>>,
    /// Listening sockets to put on fds 3, 4, ... (LISTEN_FDS); ginit keeps owning them.
    listen_fds: Vec<RawFd>,
    /// The `LISTEN_PID=` entry of envp, whose digits the child fills in with its own pid.
    listen_pid: Option<ListenPid>,
}

/// A fixed-width `LISTEN_PID=` environment entry the child completes after fork (its pid is
/// not known before). Heap memory owned through a raw pointer, so the child may write it.
struct ListenPid(*mut u8);

const LISTEN_PID_LEN: usize = 32;
const LISTEN_PID_PREFIX: &[u8] = b"LISTEN_PID=";

impl ListenPid {
    fn new() -> ListenPid {
        let mut buf = vec![0u8; LISTEN_PID_LEN].into_boxed_slice();
        buf[..LISTEN_PID_PREFIX.len()].copy_from_slice(LISTEN_PID_PREFIX);
        ListenPid(Box::into_raw(buf).cast::<u8>())
    }

    /// Writes `pid` in decimal after the prefix, NUL-terminated. Async-signal-safe.
    ///
    /// # Safety
    /// Only in the child, before exec (the parent's copy is never read concurrently).
    unsafe fn fill(&self, pid: libc::pid_t) {
        let mut digits = [0u8; 12];
        let mut n = pid.unsigned_abs();
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            n /= 10;
            len += 1;
            if n == 0 {
                break;
            }
        }
        // SAFETY: the buffer is LISTEN_PID_LEN bytes: prefix (11) + at most 10 digits + NUL.
        unsafe {
            let mut at = self.0.add(LISTEN_PID_PREFIX.len());
            for i in (0..len).rev() {
                *at = digits[i];
                at = at.add(1);
            }
            *at = 0;
        }
    }
}

impl Drop for ListenPid {
    fn drop(&mut self) {
        // SAFETY: the pointer came from Box::into_raw of a LISTEN_PID_LEN slice.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.0,
                LISTEN_PID_LEN,
            )));
        }
    }
}

/// The step of the child's setup that failed, reported with errno through the pipe.
const STAGE_EXEC: i32 = 0;
const STAGE_CHDIR: i32 = 1;
const STAGE_CREDENTIALS: i32 = 2;
const STAGE_REDIRECT: i32 = 3;
const STAGE_NICE: i32 = 4;
const STAGE_OOM: i32 = 5;
const STAGE_SOCKETS: i32 = 6;
/// STAGE_RLIMIT + i: the i-th rlimit.
const STAGE_RLIMIT: i32 = 100;

fn cstring(bytes: Vec<u8>) -> CString {
    // Arguments and environment entries from the OS cannot hold NUL bytes; a config-provided
    // string that does is rejected by validation. Truncating at a NUL keeps this infallible.
    CString::new(bytes).unwrap_or_else(|e| {
        let at = e.nul_position();
        let mut v = e.into_vec();
        v.truncate(at);
        CString::new(v).unwrap_or_default()
    })
}

fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

impl SpawnPlan {
    /// A plan to run `argv` (argv[0] resolved on PATH) with the environment `env`.
    pub fn new(argv: &[OsString], env: Vec<(OsString, OsString)>) -> Result<Self, SpawnError> {
        Self::in_dir(argv, env, None)
    }

    /// As [`SpawnPlan::new`], for a child that will run in `dir`: a relative argv[0] such as
    /// `./server` is found there.
    pub fn in_dir(
        argv: &[OsString],
        env: Vec<(OsString, OsString)>,
        dir: Option<&Path>,
    ) -> Result<Self, SpawnError> {
        let first = argv.first().map(OsString::as_os_str).unwrap_or_default();
        let path_var = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_os_str());
        let relative = first.as_bytes().contains(&b'/') && !first.as_bytes().starts_with(b"/");
        let path = match dir {
            Some(dir) if relative => resolve(dir.join(first).as_os_str(), path_var)?,
            _ => resolve(first, path_var)?,
        };
        let args: Vec<CString> = argv
            .iter()
            .map(|a| cstring(a.as_bytes().to_vec()))
            .collect();
        let envs: Vec<CString> = env
            .into_iter()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstring(kv)
            })
            .collect();
        Ok(SpawnPlan {
            name: first.to_string_lossy().into_owned(),
            path: cstring(path.into_os_string().into_vec()),
            argv_ptrs: pointers(&args),
            _argv: args,
            envp_ptrs: pointers(&envs),
            _envp: envs,
            new_pgroup: false,
            foreground: false,
            cwd: None,
            credentials: None,
            stdout: None,
            stderr: None,
            rlimits: Vec::new(),
            nice: None,
            oom_score_adj: None,
            listen_fds: Vec::new(),
            listen_pid: None,
        })
    }

    /// Hands `fds` to the child as fds 3, 4, ... with the systemd socket-activation variables
    /// `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID` (the child's own pid).
    pub fn listen(&mut self, fds: Vec<RawFd>, names: &[&str]) {
        if fds.is_empty() {
            return;
        }
        self._envp.retain(|e| {
            let b = e.as_bytes();
            !(b.starts_with(b"LISTEN_FDS=")
                || b.starts_with(b"LISTEN_FDNAMES=")
                || b.starts_with(LISTEN_PID_PREFIX))
        });
        self._envp
            .push(cstring(format!("LISTEN_FDS={}", fds.len()).into_bytes()));
        self._envp.push(cstring(
            format!("LISTEN_FDNAMES={}", names.join(":")).into_bytes(),
        ));
        let slot = ListenPid::new();
        let mut ptrs = pointers(&self._envp);
        ptrs.insert(ptrs.len() - 1, slot.0.cast_const().cast());
        self.envp_ptrs = ptrs;
        self.listen_pid = Some(slot);
        self.listen_fds = fds;
    }

    /// Forks and execs the plan. Returns the child's pid once the exec has happened, or the
    /// reason it could not (the failed child has then already exited and waits to be reaped).
    pub fn spawn(&self) -> Result<i32, SpawnError> {
        let (pid, report) = self.start()?;
        let mut report = std::fs::File::from(report);
        let mut bytes = [0u8; 8];
        let mut got = 0;
        while got < bytes.len() {
            match report.read(&mut bytes[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if got < bytes.len() {
            return Ok(pid); // EOF: the exec succeeded and closed the pipe.
        }
        Err(self.report_error(&bytes))
    }

    /// Forks; the child goes on to exec. Returns at once with the pid and the read end of the
    /// report pipe (close-on-exec in the child: end of file means the exec happened; 8 bytes
    /// are a failure to decode with [`SpawnPlan::report_error`]). The supervisor reads it from
    /// its poll loop instead of waiting for each child in turn.
    pub fn start(&self) -> Result<(i32, OwnedFd), SpawnError> {
        // Both ends close-on-exec (std's pipe is pipe2 with O_CLOEXEC).
        let (read_end, write_end) = io::pipe().map_err(|e| self.fork_error(e))?;
        // The kernel's struct sigaction with SIG_DFL, no flags and an empty mask is all
        // zeroes on every architecture; 32 bytes cover the largest layout.
        let default_action = [0u64; 4];
        let nsig = nsig();
        let empty = sys::sigset_empty();
        let report = write_end.as_raw_fd();

        // ginit is single-threaded, so the child is a faithful copy; it runs only
        // async-signal-safe calls on data prepared above, then execs or _exits.
        let pid = sys::fork().map_err(|e| self.fork_error(e))?;
        if pid == 0 {
            // SAFETY: in the child; only system calls on pre-built data (see module docs).
            unsafe {
                self.child(report, &default_action, nsig, &empty);
            }
        }

        drop(write_end);
        if self.new_pgroup {
            // Done on both sides of the fork so the group exists before either relies on it.
            // After the exec this fails with EACCES, which is harmless.
            let _ = sys::setpgid(pid, pid);
        }
        Ok((pid, OwnedFd::from(read_end)))
    }

    /// The failure a child reported through the pipe: stage and errno, 4 bytes each.
    pub fn report_error(&self, bytes: &[u8; 8]) -> SpawnError {
        let stage = i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let errno = i32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let err = io::Error::from_raw_os_error(errno);
        let program = self.name.clone();
        match (stage, errno) {
            (STAGE_EXEC, libc::ENOENT) => SpawnError::NotFound { program },
            (STAGE_EXEC, _) => SpawnError::NotExecutable {
                program,
                reason: err.to_string(),
            },
            (STAGE_CHDIR, _) => SpawnError::NotExecutable {
                program,
                reason: format!(
                    "cannot change to its directory {:?}: {err}",
                    self.cwd.as_deref().unwrap_or_default()
                ),
            },
            (STAGE_CREDENTIALS, _) => SpawnError::NotExecutable {
                program,
                reason: format!("cannot switch to its user: {err}"),
            },
            (STAGE_NICE, _) => SpawnError::NotExecutable {
                program,
                reason: format!("cannot set its nice value: {err}"),
            },
            (STAGE_SOCKETS, _) => SpawnError::NotExecutable {
                program,
                reason: format!("cannot pass its sockets: {err}"),
            },
            (STAGE_OOM, _) => SpawnError::NotExecutable {
                program,
                reason: format!("cannot set its oom_score_adj: {err}"),
            },
            (n, _) if n >= STAGE_RLIMIT => SpawnError::NotExecutable {
                program,
                reason: format!(
                    "cannot set its limit `{}`: {err}",
                    self.rlimits
                        .get((n - STAGE_RLIMIT) as usize)
                        .map_or("?", |l| l.0)
                ),
            },
            _ => SpawnError::NotExecutable {
                program,
                reason: format!("cannot set up its output: {err}"),
            },
        }
    }

    fn fork_error(&self, error: io::Error) -> SpawnError {
        SpawnError::Fork {
            program: self.name.clone(),
            error,
        }
    }

    /// The child side of the fork. Never returns.
    ///
    /// # Safety
    /// Call only in a freshly forked child of a single-threaded process.
    unsafe fn child(
        &self,
        report: libc::c_int,
        default_action: &[u64; 4],
        nsig: i32,
        empty: &libc::sigset_t,
    ) -> ! {
        // SAFETY: every call below is async-signal-safe and uses memory prepared before fork.
        unsafe {
            let n = self.listen_fds.len() as libc::c_int;
            // Keep the report pipe clear of fds 3..3+n, which the sockets will take.
            let report = if n > 0 {
                libc::fcntl(report, libc::F_DUPFD_CLOEXEC, 3 + n)
            } else {
                report
            };
            if self.new_pgroup {
                libc::setpgid(0, 0);
            }
            if self.foreground {
                // SIGTTOU is still blocked here (inherited mask), so a background group may
                // take the terminal. Failure (not our controlling tty) is harmless.
                libc::tcsetpgrp(0, libc::getpgrp());
            }
            let fail = |stage: i32| -> ! {
                let errno = *libc::__errno_location();
                let mut bytes = [0u8; 8];
                bytes[..4].copy_from_slice(&stage.to_ne_bytes());
                bytes[4..].copy_from_slice(&errno.to_ne_bytes());
                libc::write(report, bytes.as_ptr().cast(), bytes.len());
                libc::_exit(if stage == STAGE_EXEC && errno == libc::ENOENT {
                    127
                } else {
                    126
                });
            };
            for (fd, target) in [(&self.stdout, 1), (&self.stderr, 2)] {
                if let Some(fd) = fd
                    && libc::dup2(std::os::fd::AsRawFd::as_raw_fd(fd), target) < 0
                {
                    fail(STAGE_REDIRECT);
                }
            }
            // Sockets to 3.. in two phases: first copies above the target range (so no move
            // overwrites a source still to be moved), then dup2 down, which clears CLOEXEC.
            let mut high = [0 as libc::c_int; MAX_SOCKETS];
            for (i, &fd) in self.listen_fds.iter().enumerate().take(high.len()) {
                high[i] = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3 + n);
                if high[i] < 0 {
                    fail(STAGE_SOCKETS);
                }
            }
            for (i, &fd) in high.iter().enumerate().take(self.listen_fds.len()) {
                if libc::dup2(fd, 3 + i as libc::c_int) < 0 {
                    fail(STAGE_SOCKETS);
                }
            }
            if let Some(slot) = &self.listen_pid {
                slot.fill(libc::getpid());
            }
            if let Some(dir) = &self.cwd
                && libc::chdir(dir.as_ptr()) != 0
            {
                fail(STAGE_CHDIR);
            }
            // Limits before the user switch: raising a limit, a lower nice value or a lower
            // oom_score_adj need privileges the target user may not have.
            for (i, (_, resource, limit)) in self.rlimits.iter().enumerate() {
                if libc::setrlimit(*resource as _, limit) != 0 {
                    fail(STAGE_RLIMIT + i as i32);
                }
            }
            if let Some(nice) = self.nice
                && libc::setpriority(libc::PRIO_PROCESS, 0, nice) != 0
            {
                fail(STAGE_NICE);
            }
            if let Some(text) = &self.oom_score_adj {
                let fd = libc::open(
                    c"/proc/self/oom_score_adj".as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                );
                if fd < 0 || libc::write(fd, text.as_ptr().cast(), text.len()) < 0 {
                    fail(STAGE_OOM);
                }
                libc::close(fd);
            }
            if let Some((uid, gid, groups)) = &self.credentials
                && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(*gid) != 0
                    || libc::setuid(*uid) != 0)
            {
                fail(STAGE_CREDENTIALS);
            }
            // The raw system call, not libc's sigaction: the C library refuses the signals it
            // reserves for itself (32, 33), yet those too may have been left ignored.
            for sig in 1..nsig {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        sig,
                        default_action.as_ptr(),
                        std::ptr::null_mut::<libc::c_void>(),
                        8usize, // the kernel's sigset size: 64 signals on every architecture
                    );
                }
            }
            libc::sigprocmask(libc::SIG_SETMASK, empty, std::ptr::null_mut());
            libc::execve(
                self.path.as_ptr(),
                self.argv_ptrs.as_ptr(),
                self.envp_ptrs.as_ptr(),
            );
            fail(STAGE_EXEC);
        }
    }
}

/// Makes ginit's own process group the foreground group of the terminal on fd 0 again, after
/// the child that held it is gone (so a shell that started ginit gets its terminal back).
/// SIGTTOU is blocked, so a background caller is not stopped; failing (no terminal) is fine.
pub fn reclaim_terminal() {
    let _ = sys::take_terminal(0);
}

/// Opens /dev/null on any of fds 0, 1, 2 that is closed, so no fd ginit opens later lands
/// there and is mistaken for stdio by a child.
pub fn ensure_stdio() {
    for fd in 0..3 {
        if !sys::is_open(fd) {
            // Not through std: its files are close-on-exec, and these must reach children.
            sys::open_dev_null_inherited();
        }
    }
}

/// Marks every fd above 2 that ginit inherited as close-on-exec, so children see only 0-2 and
/// the fds ginit hands them on purpose. Uses `close_range(2)` and falls back to /proc/self/fd.
pub fn mark_inherited_fds_cloexec() {
    if sys::cloexec_from(3).is_ok() {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // One of them (the read_dir's own) is already closed: that just fails.
        let _ = sys::set_cloexec(fd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn os(s: &str) -> OsString {
        OsString::from(s)
    }

    #[test]
    fn resolves_on_path() {
        let p = resolve(
            OsStr::new("sh"),
            Some(OsStr::new("/nonexistent:/bin:/usr/bin")),
        )
        .unwrap();
        assert!(p.ends_with("sh"));
    }

    #[test]
    fn missing_and_denied() {
        let err = resolve(OsStr::new("no-such-program-xyz"), Some(OsStr::new("/bin"))).unwrap_err();
        assert_eq!(err.exit_code(), 127);
        assert!(err.to_string().contains("no-such-program-xyz"));
        let err = resolve(OsStr::new("/"), None).unwrap_err();
        assert_eq!(err.exit_code(), 126);
        assert!(err.to_string().contains("directory"));
        let err = resolve(OsStr::new(""), None).unwrap_err();
        assert_eq!(err.exit_code(), 127);
    }

    #[test]
    fn plan_builds_null_terminated_arrays() {
        let plan = SpawnPlan::new(
            &[os("/bin/sh"), os("-c"), os("true")],
            vec![(os("A"), os("1")), (os("PATH"), os("/bin"))],
        )
        .unwrap();
        assert_eq!(plan.argv_ptrs.len(), 4);
        assert!(plan.argv_ptrs[3].is_null());
        assert_eq!(plan.envp_ptrs.len(), 3);
        assert_eq!(plan._envp[0].to_str().unwrap(), "A=1");
    }

    #[test]
    fn cstring_truncates_at_nul() {
        assert_eq!(cstring(b"ab\0cd".to_vec()).to_str().unwrap(), "ab");
    }
}
