//! The one room of the OS edge that holds `unsafe`: thin, safe wrappers over the libc calls
//! of the edge (poll, fd flags, socket addresses and options, signals, signalfd, recvmsg
//! with credentials, fork, waits, umask, limits, the adoption of inherited fds), and the
//! fork/exec boundary ([`spawn`]), whose child side must make raw calls.
//!
//! A leaf (but for `spawn`, which reads two config constants): it imports no other ginit
//! module and decides nothing. Each wrapper turns one system call into a `Result` (errno as
//! [`io::Error`]) and holds the `unsafe` block of that call, with its own `// SAFETY:` line;
//! the rest of `os/` writes no `unsafe` at all.
//!
//! Fds are [`RawFd`] numbers here, not `BorrowedFd` as rustix takes them. Deliberately: poll
//! works on numbers anyway (a `pollfd` array), ginit's own stdout and stderr are numbers it
//! does not own, and one concrete fd type keeps each wrapper a single function in the binary
//! (a generic `impl AsFd` is one copy per caller's type). A wrong number is an `EBADF` or a
//! write to the wrong file, never memory unsafety: every pointer passed to the kernel here
//! points into memory this module owns or borrows for the call.
#![allow(unsafe_code)]

pub mod spawn;

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `Ok(rc)` for a non-negative return code, else errno.
fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// As [`check`], for calls that return a byte count.
fn check_len(n: isize) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

// ---- waiting ----

/// poll(2) over `fds` for at most `timeout_ms` (-1: no limit). Returns how many entries have
/// events. An entry with a negative fd is skipped by the kernel (its `revents` is 0), which is
/// how a source that has nothing to wait for keeps its slot.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `fds`, which the kernel writes `revents` into.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    check(n).map(|n| n as usize)
}

/// Whether `fd` can take bytes right now (a zero-timeout poll for POLLOUT).
pub fn writable_now(fd: RawFd) -> bool {
    let mut pfd = [libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    }];
    poll(&mut pfd, 0).is_ok_and(|n| n == 1) && pfd[0].revents & libc::POLLOUT != 0
}

// ---- fd flags ----

/// Whether `fd` is an open file descriptor (fcntl F_GETFD succeeds).
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the fd's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Whether `fd` is close-on-exec.
pub fn is_cloexec(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFD only reads the fd's flags.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    Ok(flags & libc::FD_CLOEXEC != 0)
}

/// Makes `fd` close-on-exec (FD_CLOEXEC is the only fd flag, so it is set, not or-ed).
pub fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD only changes the fd's flags.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }).map(drop)
}

/// Marks every fd from `first` up close-on-exec at once: close_range(2) with
/// CLOSE_RANGE_CLOEXEC (Linux 5.11). An older kernel answers ENOSYS or EINVAL.
pub fn cloexec_from(first: RawFd) -> io::Result<()> {
    let first = u32::try_from(first).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes fd flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the open file description of `fd` is non-blocking (O_NONBLOCK).
pub fn is_nonblocking(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFL only reads the file status flags.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    Ok(flags & libc::O_NONBLOCK != 0)
}

/// Sets or clears O_NONBLOCK on the open file description of `fd`, keeping its other status
/// flags. Note that the description is shared with every dup of it (a child's copy too), so
/// this is for fds ginit alone uses.
pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL only reads the file status flags.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let wanted = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if wanted == flags {
        return Ok(());
    }
    // SAFETY: F_SETFL only changes the file status flags.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, wanted) }).map(drop)
}

/// dup2(2): makes `target` a copy of `fd` (clearing close-on-exec on `target`).
pub fn dup2(fd: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 has no memory effects; `target` is replaced as the caller asked.
    check(unsafe { libc::dup2(fd, target) }).map(drop)
}

/// What kind of file an fd is, as far as writing to it without blocking is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file: a write never waits for a reader.
    Regular,
    Socket,
    /// A pipe, FIFO, terminal or other device.
    Other,
}

/// The kind of file `fd` is (fstat), or None when it is not open.
pub fn file_kind(fd: RawFd) -> Option<FileKind> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills the whole stat buffer when it succeeds.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so the buffer is initialised.
    let mode = unsafe { st.assume_init_ref() }.st_mode & libc::S_IFMT;
    Some(match mode {
        libc::S_IFREG => FileKind::Regular,
        libc::S_IFSOCK => FileKind::Socket,
        _ => FileKind::Other,
    })
}

// ---- reading and writing ----

/// One write(2) of `bytes` to `fd`.
pub fn write(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: the kernel reads at most `bytes.len()` bytes from the slice.
    check_len(unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) })
}

/// One send(2) of `bytes` to the socket `fd` without waiting (MSG_DONTWAIT) and without
/// SIGPIPE (MSG_NOSIGNAL: a closed peer is EPIPE, not a signal).
pub fn send_nowait(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: the kernel reads at most `bytes.len()` bytes from the slice.
    check_len(unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), flags) })
}

// ---- socket addresses ----

/// A socket address as the kernel takes it: the bytes of a `sockaddr_in`, `sockaddr_in6` or
/// `sockaddr_un` inside a `sockaddr_storage` (big enough and aligned for each), and its
/// length. Built only by the constructors below, so the family, the bytes and the length
/// always agree.
#[derive(Clone, Copy)]
pub struct SockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

/// `sun_path` of a `sockaddr_un`: 108 bytes on Linux.
const SUN_PATH: usize = 108;
/// Where `sun_path` starts in a `sockaddr_un` (after the family).
const SUN_PATH_AT: usize = std::mem::size_of::<libc::sa_family_t>();

impl SockAddr {
    fn empty() -> SockAddr {
        // SAFETY: sockaddr_storage is plain integers and bytes: all zeroes is a valid value.
        let storage = unsafe { std::mem::zeroed::<libc::sockaddr_storage>() };
        SockAddr { storage, len: 0 }
    }

    /// Copies the struct `value` to the start of the storage and sets the length to its size.
    fn put<T: Copy>(&mut self, value: T) {
        const {
            assert!(std::mem::size_of::<T>() <= std::mem::size_of::<libc::sockaddr_storage>());
        }
        // SAFETY: T fits the storage (checked at compile time), whose alignment suits every
        // sockaddr type; the write covers only T's bytes.
        unsafe {
            std::ptr::write(
                (&mut self.storage as *mut libc::sockaddr_storage).cast::<T>(),
                value,
            )
        };
        self.len = std::mem::size_of::<T>() as libc::socklen_t;
    }

    /// A `sockaddr_in` or `sockaddr_in6` for `addr` (port in network byte order; the flow
    /// info and scope id of an IPv6 address kept).
    pub fn inet(addr: SocketAddr) -> SockAddr {
        let mut out = SockAddr::empty();
        match addr {
            SocketAddr::V4(a) => out.put(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            }),
            SocketAddr::V6(a) => out.put(libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            }),
        }
        out
    }

    /// A `sockaddr_un` for a path in the file system, NUL-terminated; None when the path does
    /// not fit (107 bytes at most) or holds a NUL byte.
    pub fn unix_path(path: &[u8]) -> Option<SockAddr> {
        if path.is_empty() || path.len() >= SUN_PATH || path.contains(&0) {
            return None;
        }
        let mut out = SockAddr::unix_with(path, 0);
        out.len += 1; // the NUL after the path, as sockaddr_un lengths count it
        Some(out)
    }

    /// A `sockaddr_un` in the abstract namespace (a NUL, then `name`, no file behind it; see
    /// unix(7)); None when the name does not fit (107 bytes at most).
    pub fn unix_abstract(name: &[u8]) -> Option<SockAddr> {
        (name.len() < SUN_PATH).then(|| SockAddr::unix_with(name, 1))
    }

    /// AF_UNIX, then `bytes` at `sun_path[skip..]`; the length ends after them.
    fn unix_with(bytes: &[u8], skip: usize) -> SockAddr {
        let mut sun = libc::sockaddr_un {
            sun_family: libc::AF_UNIX as libc::sa_family_t,
            sun_path: [0; SUN_PATH],
        };
        for (d, s) in sun.sun_path[skip..].iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let mut out = SockAddr::empty();
        out.put(sun);
        out.len = (SUN_PATH_AT + skip + bytes.len()) as libc::socklen_t;
        out
    }

    /// The address family (AF_INET, AF_INET6, AF_UNIX).
    pub fn family(&self) -> libc::c_int {
        libc::c_int::from(self.storage.ss_family)
    }

    /// The length passed to the kernel with the address.
    pub fn len(&self) -> libc::socklen_t {
        self.len
    }

    /// Never true for an address built here (clippy asks for it beside `len`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The IP address and port, for an AF_INET or AF_INET6 address.
    pub fn to_inet(&self) -> Option<SocketAddr> {
        let at = (&self.storage as *const libc::sockaddr_storage).cast::<u8>();
        match self.family() {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in, and it is aligned for one.
                let sin = unsafe { std::ptr::read(at.cast::<libc::sockaddr_in>()) };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let sin6 = unsafe { std::ptr::read(at.cast::<libc::sockaddr_in6>()) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }
}

// ---- sockets ----

/// A new socket of `family` and `kind` (SOCK_STREAM, SOCK_DGRAM, with SOCK_NONBLOCK if
/// wanted), always close-on-exec: a child gets a socket only when it is handed over on
/// purpose.
pub fn socket(family: libc::c_int, kind: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket has no memory effects.
    let fd = check(unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// bind(2) of socket `fd` to `addr`.
pub fn bind(fd: RawFd, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: the kernel reads `addr.len` bytes of the storage, which holds at least that many.
    check(unsafe { libc::bind(fd, addr.as_ptr(), addr.len) }).map(drop)
}

/// listen(2) with `backlog` (the kernel caps it at net.core.somaxconn).
pub fn listen(fd: RawFd, backlog: u32) -> io::Result<()> {
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    // SAFETY: listen has no memory effects.
    check(unsafe { libc::listen(fd, backlog) }).map(drop)
}

/// accept4(2) on listening socket `fd`: the next connection, non-blocking and close-on-exec
/// from the start (the peer's address is not asked for). Used where the listener is a raw
/// fd of either family (the metrics endpoint).
pub fn accept(fd: RawFd) -> io::Result<OwnedFd> {
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: null address and length pointers ask the kernel to write no address.
    let conn =
        check(unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), flags) })?;
    // SAFETY: `conn` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(conn) })
}

/// connect(2) of socket `fd` to `addr`. On a non-blocking socket the error EINPROGRESS (see
/// [`in_progress`]) means the connection is on its way.
pub fn connect(fd: RawFd, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: the kernel reads `addr.len` bytes of the storage, which holds at least that many.
    check(unsafe { libc::connect(fd, addr.as_ptr(), addr.len) }).map(drop)
}

/// Whether `e` is EINPROGRESS: a non-blocking connect that has started and not finished.
pub fn in_progress(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINPROGRESS)
}

/// Turns on the boolean socket option `name` at SOL_SOCKET (SO_REUSEADDR, SO_PASSCRED).
pub fn enable_option(fd: RawFd, name: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel reads one int from `one`.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&one as *const libc::c_int).cast(),
            len,
        )
    };
    check(rc).map(drop)
}

/// getsockopt(2) at SOL_SOCKET of an option whose value is the plain struct `T` (an int, a
/// `ucred`). Private: the two options ginit reads have their own functions below.
fn get_option<T: Copy>(fd: RawFd, name: libc::c_int, zero: T) -> io::Result<T> {
    let mut value = zero;
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes, the size of `value`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    };
    check(rc).map(|_| value)
}

/// The pending error of a socket (SO_ERROR): 0 when a non-blocking connect succeeded, else
/// the errno it failed with. Reading it clears it.
pub fn socket_error(fd: RawFd) -> io::Result<i32> {
    get_option(fd, libc::SO_ERROR, 0 as libc::c_int)
}

/// Who is at the other end of a Unix socket, as the kernel saw it at connect time
/// (SO_PEERCRED, see unix(7)): pid, uid and gid.
pub fn peer_credentials(fd: RawFd) -> io::Result<libc::ucred> {
    let zero = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    get_option(fd, libc::SO_PEERCRED, zero)
}

/// The address socket `fd` is bound to (getsockname).
pub fn local_addr(fd: RawFd) -> io::Result<SockAddr> {
    let mut out = SockAddr::empty();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let at = (&mut out.storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
    // SAFETY: the kernel writes at most `len` bytes, the size of the storage.
    check(unsafe { libc::getsockname(fd, at, &mut len) })?;
    out.len = len;
    Ok(out)
}

// ---- processes ----

/// kill(2): sends `sig` to `pid` (a negative pid names a process group, -1 every process
/// the caller may signal; `sig` 0 only checks).
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill has no memory effects.
    check(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// One waitpid(-1, WNOHANG): `Some((pid, raw wait status))` for a child that has ended,
/// `None` when children remain and none has ended. ECHILD (no children at all) is an error;
/// EINTR is retried.
pub fn wait_any() -> io::Result<Option<(i32, i32)>> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer; WNOHANG never blocks.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match pid {
            0 => return Ok(None),
            p if p > 0 => return Ok(Some((p, status))),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are re-parented to this process
/// instead of to the namespace's init (see prctl(2)).
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(drop)
}

/// setsid(2): a new session and process group led by this process, without a terminal.
pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid has no memory effects.
    check(unsafe { libc::setsid() }).map(drop)
}

/// Makes this process's group the foreground group of the terminal on `fd` (tcsetpgrp with
/// getpgrp). Fails harmlessly (ENOTTY) when `fd` is not this process's controlling terminal.
pub fn take_terminal(fd: RawFd) -> io::Result<()> {
    // SAFETY: getpgrp and tcsetpgrp have no memory effects.
    check(unsafe { libc::tcsetpgrp(fd, libc::getpgrp()) }).map(drop)
}

unsafe extern "C" {
    /// glibc's (2.34+) fork without `pthread_atfork` handlers and without the locks of stdio
    /// and malloc that `fork` takes for multithreaded callers. POSIX 2024 names it too.
    fn _Fork() -> libc::pid_t;
}

/// fork(2), as `_Fork`. Call only while ginit is single-threaded (it always is): the child is
/// then a faithful copy that may go on running Rust code (`--daemon`). Returns 0 in the child.
///
/// Why not `fork`: with one thread there is no lock another thread could hold, so what
/// `fork` adds is of no use here, and in a static link it costs: it takes stdio's list lock,
/// which pulls in all of glibc's stdio, wide-character conversion and `dlopen` (with them,
/// about 100 KB of ginit's 1.5 MiB budget).
pub fn fork() -> io::Result<i32> {
    // SAFETY: ginit has one thread, so no lock can be held by a thread the child lacks; no
    // atfork handler is registered (ginit registers none, and Rust's std none).
    check(unsafe { _Fork() })
}

/// setpgid(2): puts `pid` (0: this process) in process group `pgid` (0: its own).
pub fn setpgid(pid: i32, pgid: i32) -> io::Result<()> {
    // SAFETY: setpgid has no memory effects.
    check(unsafe { libc::setpgid(pid, pgid) }).map(drop)
}

/// Adopts the fds 3..3+`count` a service manager handed to ginit (sd_listen_fds(3)), those
/// that are open, made close-on-exec like every other fd of ginit: (number, fd). Called once,
/// at start-up (sockets.rs), so each number is owned once.
pub fn adopt_listen_fds(count: i32) -> Vec<(RawFd, OwnedFd)> {
    (3..3 + count.clamp(0, 4096))
        .filter(|&fd| is_open(fd))
        .map(|fd| {
            let _ = set_cloexec(fd);
            // SAFETY: the protocol hands fds 3..3+N to ginit, which owns them from here on;
            // each is open (checked above) and adopted once (this runs once).
            (fd, unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .collect()
}

/// Removes variables from ginit's environment (read once at start, while single-threaded).
pub fn remove_env(names: &[&str]) {
    for name in names {
        // SAFETY: ginit has one thread; nothing reads the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
}

/// open("/dev/null", O_RDWR) without close-on-exec, for a standard fd (0-2) found closed: it
/// takes the lowest free number and stays open for good, for ginit's children too.
pub fn open_dev_null_inherited() {
    // SAFETY: a static C string; the fd is deliberately not owned (it is 0, 1 or 2 for good).
    unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
}

// ---- signals ----

/// An empty signal set.
pub fn sigset_empty() -> libc::sigset_t {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    }
}

/// Adds `sig` to `set` (a number out of range is left out).
pub fn sigset_add(set: &mut libc::sigset_t, sig: i32) {
    // SAFETY: set is initialised; an invalid number only makes sigaddset fail.
    unsafe { libc::sigaddset(set, sig) };
}

/// Blocks `set` (`how`: SIG_BLOCK adds to the mask, SIG_SETMASK replaces it) and opens a
/// non-blocking, close-on-exec signalfd for it.
pub fn signalfd(how: libc::c_int, set: &libc::sigset_t) -> io::Result<OwnedFd> {
    // SAFETY: set is a valid sigset; the old mask is not wanted.
    check(unsafe { libc::sigprocmask(how, set, std::ptr::null_mut()) })?;
    // SAFETY: -1 asks for a new fd; set is valid.
    let fd = check(unsafe { libc::signalfd(-1, set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?;
    // SAFETY: fd was just returned by signalfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads every signal waiting on signalfd `fd` into `out`, in arrival order.
pub fn read_signals(fd: RawFd, out: &mut Vec<i32>) {
    const BATCH: usize = 16;
    let mut buf = [std::mem::MaybeUninit::<libc::signalfd_siginfo>::uninit(); BATCH];
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    loop {
        // SAFETY: buf is BATCH siginfo records long; the kernel writes whole records.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast::<libc::c_void>(), BATCH * size) };
        if n <= 0 {
            // EAGAIN: drained. EINTR cannot happen with every signal blocked; any other
            // error would repeat forever, so stop here rather than spin.
            return;
        }
        let records = n as usize / size;
        for info in buf.iter().take(records) {
            // SAFETY: the kernel filled the first `records` entries.
            out.push(unsafe { info.assume_init_ref() }.ssi_signo as i32);
        }
        if records < BATCH {
            return;
        }
    }
}

/// One datagram from socket `fd` without waiting, into `buf`: its length and the sender's
/// pid from SCM_CREDENTIALS (0 when none came). None when nothing waits (or on an error
/// that would repeat).
pub fn recv_with_pid(fd: RawFd, buf: &mut [u8]) -> Option<(usize, i32)> {
    // Room for one SCM_CREDENTIALS control message (aligned generously).
    let mut control = [0u64; 8];
    loop {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is zeroed then pointed at live buffers of the given sizes.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: recvmsg writes within the buffers msghdr describes.
        let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return None;
        }
        let mut pid = 0;
        // SAFETY: walking the control messages recvmsg filled, with libc's macros.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_CREDENTIALS
                {
                    let cred =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::ucred>());
                    pid = cred.pid;
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        return Some((n as usize, pid));
    }
}

// ---- identity and limits ----

/// umask(2): sets the file mode creation mask, returns the previous one.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask cannot fail and has no memory effects.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// The effective uid of ginit.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail and has no memory effects.
    unsafe { libc::geteuid() }
}

/// The hard limit of a setrlimit resource (`RLIMIT_NOFILE`, ...): None when unlimited.
pub fn hard_limit(resource: i32) -> io::Result<Option<u64>> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills one rlimit; a bad resource number is EINVAL.
    check(unsafe { libc::getrlimit(resource as _, &mut lim) })?;
    Ok((lim.rlim_max != libc::RLIM_INFINITY).then_some(lim.rlim_max))
}

/// The size of a memory page in bytes (4096 when the kernel did not say).
///
/// From the auxiliary vector the kernel gives every process, as `sysconf` reads it too:
/// `sysconf` itself, in a static link, brings glibc's locale and character-set conversion
/// with it (through `strtol`), tens of kilobytes for two numbers.
pub fn page_size() -> u64 {
    // SAFETY: getauxval has no memory effects.
    let n = unsafe { libc::getauxval(libc::AT_PAGESZ) };
    if n > 0 { n } else { 4096 }
}

/// Clock ticks per second, the unit of CPU times in /proc (100 when the kernel did not say),
/// from the auxiliary vector as [`page_size`].
pub fn clock_ticks() -> u64 {
    // SAFETY: getauxval has no memory effects.
    let n = unsafe { libc::getauxval(libc::AT_CLKTCK) };
    if n > 0 { n } else { 100 }
}

// ---- inotify ----

/// A non-blocking, close-on-exec inotify instance.
pub fn inotify() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; the flags are valid.
    let fd = check(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })?;
    // SAFETY: fd was just returned by inotify_init1 and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Watches `path` for the events in `mask` on inotify instance `fd`: the watch descriptor.
pub fn inotify_add(fd: RawFd, path: &std::path::Path, mask: u32) -> io::Result<i32> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: c is a NUL-terminated path that outlives the call.
    check(unsafe { libc::inotify_add_watch(fd, c.as_ptr(), mask) })
}

/// Drops watch `wd` of inotify instance `fd` (one already gone is EINVAL, ignored).
pub fn inotify_rm(fd: RawFd, wd: i32) {
    // SAFETY: no pointers.
    unsafe { libc::inotify_rm_watch(fd, wd) };
}

/// One read(2) from `fd` into `buf`: how many bytes (0 at the end, an error such as EAGAIN).
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into the slice.
    check_len(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

// ---- the C library's own assertion failures ----

/// glibc's handler for a failed `assert` inside the C library itself, replaced.
///
/// Why: glibc's own `__assert_fail` formats its message with `asprintf` and wide-character
/// stdio, and in a static link that one object drags in the whole printf family (narrow and
/// wide) with it: 31 KB of ginit's 1.5 MiB budget for a path that never runs unless glibc
/// has found its own state broken. A static link takes the first definition of a symbol, so
/// this one is used and glibc's `assert.o` is never pulled from `libc.a` (were anything else
/// to need it, the link would fail with a duplicate symbol, not silently misbehave). This
/// handler is also the better one for PID 1 in that state: it writes the message with plain
/// write(2) calls, allocates nothing, and aborts.
#[unsafe(no_mangle)]
extern "C" fn __assert_fail(
    assertion: *const libc::c_char,
    file: *const libc::c_char,
    line: libc::c_uint,
    function: *const libc::c_char,
) -> ! {
    // SAFETY: glibc passes NUL-terminated strings (or null, which `c_text` maps to "?").
    let (assertion, file, function) =
        unsafe { (c_text(assertion), c_text(file), c_text(function)) };
    assert_message(assertion, file, line, function, &mut |piece| {
        // Best effort: there is nothing to do about a failed write on the way to abort.
        let _ = write(libc::STDERR_FILENO, piece);
    });
    std::process::abort()
}

/// The bytes of a C string, or `?` for a null pointer.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that outlives the result.
unsafe fn c_text<'a>(p: *const libc::c_char) -> &'a [u8] {
    if p.is_null() {
        b"?"
    } else {
        // SAFETY: the caller's promise.
        unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes()
    }
}

/// The message of a failed C library assertion, handed to `out` piece by piece (no
/// allocation: the heap may be what is broken).
fn assert_message(
    assertion: &[u8],
    file: &[u8],
    line: u32,
    function: &[u8],
    out: &mut dyn FnMut(&[u8]),
) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut n = line;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let pieces: [&[u8]; 9] = [
        b"ginit: the C library failed its own check `",
        assertion,
        b"` in ",
        function,
        b" (",
        file,
        b":",
        &digits[at..],
        b"); aborting\n",
    ];
    for piece in pieces {
        out(piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_c_library_assertion_is_one_plain_line() {
        let mut text = Vec::new();
        assert_message(
            b"p != NULL",
            b"malloc.c",
            4302,
            b"_int_free",
            &mut |piece| text.extend_from_slice(piece),
        );
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "ginit: the C library failed its own check `p != NULL` in _int_free (malloc.c:4302); aborting\n"
        );
        let mut text = Vec::new();
        assert_message(b"?", b"?", 0, b"?", &mut |piece| {
            text.extend_from_slice(piece)
        });
        assert!(String::from_utf8(text).unwrap().contains("(?:0)"));
        let mut text = Vec::new();
        assert_message(b"x", b"f", u32::MAX, b"g", &mut |piece| {
            text.extend_from_slice(piece)
        });
        assert!(String::from_utf8(text).unwrap().contains("f:4294967295)"));
    }

    #[test]
    fn inet_addresses_round_trip_with_their_sizes() {
        let v4: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let a = SockAddr::inet(v4);
        assert_eq!(a.family(), libc::AF_INET);
        assert_eq!(a.len() as usize, std::mem::size_of::<libc::sockaddr_in>());
        assert_eq!(a.to_inet(), Some(v4));
        // The port is in network byte order in the struct, as bind(2) wants it.
        let raw = bytes(&a);
        assert_eq!(&raw[..2], &(libc::AF_INET as u16).to_ne_bytes());
        assert_eq!(&raw[2..4], &8080u16.to_be_bytes());
        assert_eq!(&raw[4..8], &[127, 0, 0, 1]);
        assert_eq!(&raw[8..], &[0; 8]);

        let v6 = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 443, 7, 3));
        let a = SockAddr::inet(v6);
        assert_eq!(a.family(), libc::AF_INET6);
        assert_eq!(a.len() as usize, std::mem::size_of::<libc::sockaddr_in6>());
        assert_eq!(a.to_inet(), Some(v6), "flow info and scope id are kept");
        let raw = bytes(&a);
        assert_eq!(&raw[2..4], &443u16.to_be_bytes());
        assert_eq!(&raw[8..24], &Ipv6Addr::LOCALHOST.octets());
    }

    /// The bytes of the address as the kernel reads them (`len` of them).
    fn bytes(a: &SockAddr) -> &[u8] {
        // SAFETY: the storage is `size_of::<sockaddr_storage>()` initialised bytes (zeroed,
        // then written), and `len` never exceeds that.
        unsafe {
            std::slice::from_raw_parts(
                (&a.storage as *const libc::sockaddr_storage).cast::<u8>(),
                a.len() as usize,
            )
        }
    }

    #[test]
    fn unix_addresses_count_what_the_kernel_reads() {
        let a = SockAddr::unix_path(b"/run/app.sock").unwrap();
        assert_eq!(a.family(), libc::AF_UNIX);
        assert_eq!(a.len() as usize, SUN_PATH_AT + b"/run/app.sock".len() + 1);
        assert_eq!(a.to_inet(), None);
        assert_eq!(&bytes(&a)[SUN_PATH_AT..], b"/run/app.sock\0");
        // 107 bytes and the NUL fit in sun_path; 108 do not.
        assert!(SockAddr::unix_path(&[b'a'; SUN_PATH - 1]).is_some());
        assert!(SockAddr::unix_path(&[b'a'; SUN_PATH]).is_none());
        assert!(SockAddr::unix_path(b"").is_none());
        assert!(SockAddr::unix_path(b"a\0b").is_none());
        // Abstract: the leading NUL, then the name, no terminator counted.
        let a = SockAddr::unix_abstract(b"ginit-notify").unwrap();
        assert_eq!(&bytes(&a)[SUN_PATH_AT..], b"\0ginit-notify");
        assert!(SockAddr::unix_abstract(&[b'a'; SUN_PATH - 1]).is_some());
        assert!(SockAddr::unix_abstract(&[b'a'; SUN_PATH]).is_none());
    }

    #[test]
    fn sockets_bind_listen_connect_and_say_who_is_there() {
        let listener = socket(libc::AF_INET, libc::SOCK_STREAM).unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        enable_option(listener.as_raw_fd(), libc::SO_REUSEADDR).unwrap();
        bind(listener.as_raw_fd(), &SockAddr::inet(any)).unwrap();
        listen(listener.as_raw_fd(), 4).unwrap();
        assert!(is_cloexec(listener.as_raw_fd()).unwrap());
        let bound = local_addr(listener.as_raw_fd()).unwrap().to_inet().unwrap();
        assert_ne!(bound.port(), 0);
        let client = socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK).unwrap();
        match connect(client.as_raw_fd(), &SockAddr::inet(bound)) {
            Ok(()) => {}
            Err(e) => assert!(in_progress(&e), "{e}"),
        }
        let mut pfd = [libc::pollfd {
            fd: client.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        }];
        assert_eq!(poll(&mut pfd, 5000).unwrap(), 1);
        assert_eq!(socket_error(client.as_raw_fd()).unwrap(), 0);

        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let cred = peer_credentials(a.as_raw_fd()).unwrap();
        assert_eq!(cred.pid, std::process::id() as i32);
        assert_eq!(cred.uid, geteuid());
        assert_eq!(file_kind(a.as_raw_fd()), Some(FileKind::Socket));
    }

    #[test]
    fn fd_flags_change_only_what_is_asked() {
        let (r, w) = std::io::pipe().unwrap();
        let (r, w) = (r.as_raw_fd(), w.as_raw_fd());
        assert!(is_open(r));
        assert!(!is_open(-1));
        assert!(!is_nonblocking(r).unwrap());
        set_nonblocking(r, true).unwrap();
        assert!(is_nonblocking(r).unwrap());
        assert!(!is_nonblocking(w).unwrap(), "the other end keeps blocking");
        set_nonblocking(r, false).unwrap();
        assert!(!is_nonblocking(r).unwrap());
        assert!(set_nonblocking(-1, true).is_err());
        assert_eq!(file_kind(r), Some(FileKind::Other));
        assert_eq!(file_kind(-1), None);
        // A pipe with room is writable; its read end has nothing to read.
        assert!(writable_now(w));
        let mut pfd = [libc::pollfd {
            fd: r,
            events: libc::POLLIN,
            revents: 0,
        }];
        assert_eq!(poll(&mut pfd, 0).unwrap(), 0);
        assert_eq!(write(w, b"x").unwrap(), 1);
        assert_eq!(poll(&mut pfd, 0).unwrap(), 1);
        assert!(write(-1, b"x").is_err());
        // A skipped slot (negative fd) never reports.
        let mut skipped = [libc::pollfd {
            fd: -1,
            events: libc::POLLIN,
            revents: 0,
        }];
        assert_eq!(poll(&mut skipped, 0).unwrap(), 0);
    }

    #[test]
    fn cloexec_is_set_on_a_dup() {
        let file = std::fs::File::open("/dev/null").unwrap();
        // dup(2) through std's try_clone keeps CLOEXEC; dup2 clears it on the target.
        let copy = file.try_clone().unwrap();
        assert!(is_cloexec(copy.as_raw_fd()).unwrap());
        dup2(file.as_raw_fd(), copy.as_raw_fd()).unwrap();
        assert!(!is_cloexec(copy.as_raw_fd()).unwrap());
        set_cloexec(copy.as_raw_fd()).unwrap();
        assert!(is_cloexec(copy.as_raw_fd()).unwrap());
        // A negative start is refused, never read as 0 (which would take stdio from children).
        assert_eq!(
            cloexec_from(-1).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
    }

    #[test]
    fn files_limits_and_clocks() {
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        assert_eq!(file_kind(file.as_raw_fd()), Some(FileKind::Regular));
        kill(std::process::id() as i32, 0).unwrap();
        assert!(page_size() >= 4096);
        assert!(clock_ticks() > 0);
        assert!(hard_limit(libc::RLIMIT_NOFILE as i32).is_ok());
        assert!(hard_limit(-1).is_err());
    }
}
