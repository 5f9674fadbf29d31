//! NOTIFY_SOCKET: the sd_notify protocol (`READY=1`, `STOPPING=1`, `STATUS=...`, ...).
//!
//! An abstract Unix datagram socket (no file system needed, so it works on a read-only root)
//! with SO_PASSCRED: every datagram arrives with the sender's pid as the kernel saw it, which
//! is what ginit trusts, never a pid written in the message. The socket is made and read
//! (recvmsg(2) with its credentials) through [`super::sys`]. The pure
//! datagram parser [`parse`] stays beside the socket (the fuzz target calls it): it is the
//! one reading of the wire format. This module decides nothing about programs.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::sys::{self, SockAddr};

pub struct NotifySocket {
    fd: OwnedFd,
    /// The NOTIFY_SOCKET value: `@` and the abstract name.
    address: String,
}

/// One datagram: the sender's pid (from the kernel; 0 when unknown) and its `KEY=VALUE`
/// lines.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub pid: i32,
    pub fields: Vec<(String, String)>,
}

impl NotifySocket {
    pub fn bind() -> io::Result<NotifySocket> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("ginit-notify-{}-{nanos:08x}", std::process::id());
        let fd = sys::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK)?;
        let addr = SockAddr::unix_abstract(name.as_bytes())
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        sys::bind(fd.as_raw_fd(), &addr)?;
        // Best effort: without it every sender is pid 0 and ignored, which the
        // notify programs' ready timeout then reports.
        let _ = sys::enable_option(fd.as_raw_fd(), libc::SO_PASSCRED);
        Ok(NotifySocket {
            fd,
            address: format!("@{name}"),
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Every datagram waiting, until the socket would block.
    pub fn receive(&self) -> Vec<Message> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // pid 0: no credentials, or a sender outside ginit's PID namespace. Kept, so the
        // caller can say it ignored it.
        while let Some((n, pid)) = sys::recv_with_pid(self.fd.as_raw_fd(), &mut buf) {
            let fields = parse(buf.get(..n).unwrap_or_default());
            out.push(Message { pid, fields });
        }
        out
    }
}

/// `KEY=VALUE` lines of a notify datagram; lines without `=` are ignored.
pub fn parse(datagram: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(datagram)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_carry_the_kernels_idea_of_the_sender() {
        let s = NotifySocket::bind().unwrap();
        assert!(s.address().starts_with("@ginit-notify-"));
        let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&s.address().as_bytes()[1..])
            .unwrap();
        client
            .send_to_addr(b"READY=1\nSTATUS=warming up\nMAINPID=1", &addr)
            .unwrap();
        let got = s.receive();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].pid, std::process::id() as i32);
        assert_eq!(
            got[0].fields,
            vec![
                ("READY".into(), "1".into()),
                ("STATUS".into(), "warming up".into()),
                ("MAINPID".into(), "1".into())
            ]
        );
        assert!(s.receive().is_empty());
    }
}
