//! Where files changed, from one inotify fd in the poll loop: the config's files and each
//! program's `watch.paths` (what to watch is the machine's, [`Effect::WatchFiles`]; what a
//! change means is the machine's too, `machine/watch.rs`).
//!
//! Directories are watched, never files: an editor that saves by renaming, a `cp` over a
//! binary, a file deleted and made again, and Kubernetes' swap of a ConfigMap volume (the
//! `..data` symlink renamed over to a new directory) all show as events in the directory,
//! while a watch on the file itself would follow the old inode and go quiet. So each path is
//! watched as its directory with the names that matter there: the config file's name,
//! `..data`, an `include` pattern's file-name glob, a program path's own name (and `..data`,
//! for a file of a ConfigMap or Secret volume); a program path
//! that is a directory is watched with everything under it (each subdirectory its own watch,
//! new ones added as they appear, names matching `ignore` left out). A config file that is a
//! symlink is watched where it points too. The set is made again after every config reload,
//! so links are followed anew.
//!
//! Nothing polls: with inotify missing or its limits reached (`fs.inotify.max_user_instances`,
//! `max_user_watches`), ginit says so once and goes on without the watch; SIGHUP and `ginit
//! reload-config` work as ever.
//!
//! [`Effect::WatchFiles`]: crate::machine::Effect::WatchFiles

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use log::{debug, warn};

use crate::config::{FileWatch, glob};

use super::sys;

/// Watches at most this many directories in all (each costs the kernel about 1 KiB).
pub const MAX_WATCHES: usize = 4096;

/// Reads of the inotify fd per turn of the poll loop: a directory changing without pause
/// cannot hold the loop (the fd stays readable, and the rest is read next turn).
const READS_PER_TURN: usize = 8;

/// The events that say a directory's entries changed.
const MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_ATTRIB
    | libc::IN_ONLYDIR;

/// One watched directory, for one owner.
struct Watched {
    wd: i32,
    dir: PathBuf,
    /// The program it is for (`None`: the config).
    owner: Option<String>,
    /// Names (globs) that count; empty: every name but the ignored ones.
    names: Vec<String>,
    ignore: Vec<String>,
}

/// The inotify fd and what each of its watches is for.
#[derive(Default)]
pub struct Watcher {
    fd: Option<OwnedFd>,
    watched: Vec<Watched>,
    /// Said already that inotify cannot be had, or that its watch limit was reached.
    said: bool,
}

impl Watcher {
    /// The fd to poll for reading (-1: nothing is watched).
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    /// Watches these instead of what was watched: the config's files (the main file at
    /// `config_file`, and the `include` patterns) when `config` is given, and each program's
    /// `watch`.
    pub fn set(
        &mut self,
        config_file: &Path,
        config: Option<&[PathBuf]>,
        programs: &[(String, FileWatch)],
    ) {
        if let Some(fd) = &self.fd {
            for w in self.watched.drain(..) {
                sys::inotify_rm(fd.as_raw_fd(), w.wd);
            }
        }
        if config.is_none() && programs.is_empty() {
            self.fd = None;
            return;
        }
        if self.fd.is_none() {
            match sys::inotify() {
                Ok(fd) => self.fd = Some(fd),
                Err(e) => return self.cannot(&format!("inotify: {e}")),
            }
        }
        if let Some(patterns) = config {
            let dots = "..data".to_string();
            let (dir, name) = split(config_file);
            self.add(dir, None, vec![name, dots.clone()], Vec::new());
            if let Some(real) = link_target(config_file) {
                let (dir, name) = split(&real);
                self.add(dir, None, vec![name], Vec::new());
            }
            for pattern in patterns {
                let (dir, name) = split(pattern);
                self.add(dir, None, vec![name, dots.clone()], Vec::new());
            }
        }
        for (program, w) in programs {
            for path in &w.paths {
                let owner = Some(program.clone());
                if path.is_dir() {
                    self.add_tree(path.clone(), owner, &w.ignore);
                } else {
                    // `..data` too: a file of a Kubernetes volume changes by that link.
                    let (dir, name) = split(path);
                    let names = vec![name, "..data".to_string()];
                    self.add(dir, owner, names, w.ignore.clone());
                }
            }
        }
    }

    /// Says once that watching cannot be done, and why.
    fn cannot(&mut self, why: &str) {
        if !self.said {
            self.said = true;
            warn!(
                "cannot watch files ({why}): changes are not seen; SIGHUP and `ginit \
                 reload-config` still reload the config"
            );
        }
    }

    /// Watches `dir` for `owner`'s names; false if it could not.
    fn add(
        &mut self,
        dir: PathBuf,
        owner: Option<String>,
        names: Vec<String>,
        ignore: Vec<String>,
    ) -> bool {
        let Some(fd) = &self.fd else {
            return false;
        };
        if self.watched.len() >= MAX_WATCHES {
            self.cannot(&format!("more than {MAX_WATCHES} directories"));
            return false;
        }
        match sys::inotify_add(fd.as_raw_fd(), &dir, MASK) {
            Ok(wd) => {
                debug!("watching {} for {:?}", dir.display(), names);
                self.watched.push(Watched {
                    wd,
                    dir,
                    owner,
                    names,
                    ignore,
                });
                true
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                self.cannot("the inotify watch limit, fs.inotify.max_user_watches, is reached");
                false
            }
            Err(e) => {
                let who = owner.as_deref().unwrap_or("the config");
                warn!("cannot watch {} for {who}: {e}", dir.display());
                false
            }
        }
    }

    /// Watches `root` and every directory under it (not the ignored ones) for `owner`.
    /// A walk with its own stack, bounded by [`MAX_WATCHES`]: never a recursion.
    fn add_tree(&mut self, root: PathBuf, owner: Option<String>, ignore: &[String]) {
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            if !self.add(dir.clone(), owner.clone(), Vec::new(), ignore.to_vec()) {
                return;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if is_dir && !ignored(ignore, &name) {
                    stack.push(entry.path());
                }
            }
        }
    }

    /// Reads what the kernel reported: each owner whose files changed, once, with the first
    /// path that did. A new directory under a watched tree is watched too.
    pub fn handle(&mut self, ready: bool) -> Vec<(Option<String>, String)> {
        let mut changed: Vec<(Option<String>, String)> = Vec::new();
        let Some(fd) = self.fd.as_ref().map(AsRawFd::as_raw_fd).filter(|_| ready) else {
            return changed;
        };
        let mut buf = [0u8; 8192];
        let mut new_dirs = Vec::new();
        for _ in 0..READS_PER_TURN {
            let n = match sys::read(fd, &mut buf) {
                Ok(n) if n > 0 => n,
                _ => break,
            };
            for (wd, mask, name) in events(buf.get(..n).unwrap_or_default()) {
                let name = String::from_utf8_lossy(name);
                if mask & libc::IN_IGNORED != 0 {
                    // The watch is gone (its directory was deleted, or `set` removed it).
                    self.watched.retain(|w| w.wd != wd);
                    continue;
                }
                if mask & libc::IN_Q_OVERFLOW != 0 {
                    // Events were lost: every owner may have changed.
                    for w in &self.watched {
                        note(&mut changed, &w.owner, w.dir.display().to_string());
                    }
                    continue;
                }
                for w in self.watched.iter().filter(|w| w.wd == wd) {
                    let counts = if w.names.is_empty() {
                        !ignored(&w.ignore, &name)
                    } else {
                        w.names.iter().any(|p| glob::matches(p, &name))
                    };
                    if !counts {
                        continue;
                    }
                    let path = w.dir.join(name.as_ref());
                    let made = libc::IN_CREATE | libc::IN_MOVED_TO;
                    if w.names.is_empty() && mask & libc::IN_ISDIR != 0 && mask & made != 0 {
                        new_dirs.push((path.clone(), w.owner.clone(), w.ignore.clone()));
                    }
                    note(&mut changed, &w.owner, path.display().to_string());
                }
            }
        }
        for (dir, owner, ignore) in new_dirs {
            self.add_tree(dir, owner, &ignore);
        }
        changed
    }
}

/// `owner` changed at `path`, unless it is listed already.
fn note(changed: &mut Vec<(Option<String>, String)>, owner: &Option<String>, path: String) {
    if !changed.iter().any(|(o, _)| o == owner) {
        changed.push((owner.clone(), path));
    }
}

fn ignored(ignore: &[String], name: &str) -> bool {
    ignore.iter().any(|p| glob::matches(p, name))
}

/// Where `path` leads when its last component is a symlink (followed up to 40 links, as the
/// kernel does); `None` when it is no link.
fn link_target(path: &Path) -> Option<PathBuf> {
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        let Ok(target) = std::fs::read_link(&at) else {
            break;
        };
        at = at.parent().unwrap_or(Path::new("/")).join(target);
    }
    (at != path).then_some(at)
}

/// A path's directory (`.` for a bare name) and file name.
fn split(path: &Path) -> (PathBuf, String) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
}

/// The events in a buffer inotify filled: (watch, mask, name without its NUL padding). A
/// record cut short ends the list (the kernel writes whole records; this only guards).
pub fn events(mut buf: &[u8]) -> Vec<(i32, u32, &[u8])> {
    const HEAD: usize = 16;
    let mut out = Vec::new();
    while buf.len() >= HEAD {
        let word = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(buf.get(at..at + 4).unwrap_or(&[0; 4]));
            b
        };
        let wd = i32::from_ne_bytes(word(0));
        let mask = u32::from_ne_bytes(word(4));
        let len = u32::from_ne_bytes(word(12)) as usize;
        let Some(name) = buf.get(HEAD..HEAD.saturating_add(len)) else {
            break;
        };
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        out.push((wd, mask, name.get(..end).unwrap_or_default()));
        buf = buf.get(HEAD + len..).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(wd: i32, mask: u32, name: &str, pad: usize) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&wd.to_ne_bytes());
        r.extend_from_slice(&mask.to_ne_bytes());
        r.extend_from_slice(&0u32.to_ne_bytes());
        r.extend_from_slice(&((name.len() + pad) as u32).to_ne_bytes());
        r.extend_from_slice(name.as_bytes());
        r.extend(std::iter::repeat_n(0, pad));
        r
    }

    #[test]
    fn records_are_read_whole_and_names_lose_their_padding() {
        let mut buf = record(1, libc::IN_CLOSE_WRITE, "ginit.yaml", 6);
        buf.extend(record(2, libc::IN_Q_OVERFLOW, "", 0));
        buf.extend(record(3, libc::IN_MOVED_TO, "..data", 2));
        let got = events(&buf);
        assert_eq!(
            got,
            [
                (1, libc::IN_CLOSE_WRITE, &b"ginit.yaml"[..]),
                (2, libc::IN_Q_OVERFLOW, &b""[..]),
                (3, libc::IN_MOVED_TO, &b"..data"[..]),
            ]
        );
        // A record cut short ends the list; a length past the end is no slice out of bounds.
        let mut cut = record(1, 0, "abc", 1);
        cut.truncate(cut.len() - 1);
        assert!(events(&cut).is_empty());
        let huge = record(1, 0, "", 0);
        let mut huge = huge.clone();
        huge[12..16].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(events(&huge).is_empty());
    }

    #[test]
    fn paths_split_into_directory_and_name() {
        assert_eq!(
            split(Path::new("/etc/ginit.yaml")),
            (PathBuf::from("/etc"), "ginit.yaml".into())
        );
        assert_eq!(
            split(Path::new("ginit.yaml")),
            (PathBuf::from("."), "ginit.yaml".into())
        );
    }
}
