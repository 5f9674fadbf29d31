//! The real [`Resolver`]: what validation asks of the machine ginit runs on, answered from it.
//! Users from /etc/passwd and /etc/group (read by ginit itself: a static binary has no NSS,
//! and a container's users are those files anyway), executables and directories from the
//! file system, hard limits from getrlimit, CAP_SYS_RESOURCE from /proc.
//!
//! The trait is config's seam (config imports nothing outside config/); this is its one
//! implementation with side effects. It reads; it must not change anything.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::{proc, spawn, sys};
use crate::config::users::{Credentials, Db};
use crate::config::{MAX_INCLUDED, Resolver, glob};

/// The real machine: /etc/passwd, the file system, ginit's environment and limits.
pub struct SystemResolver {
    users: Db,
}

impl SystemResolver {
    /// Reads the user database of `/`.
    pub fn new() -> SystemResolver {
        SystemResolver {
            users: load_users(Path::new("/")),
        }
    }
}

impl Default for SystemResolver {
    fn default() -> Self {
        SystemResolver::new()
    }
}

/// `etc/passwd` and `etc/group` below `root` (missing files are empty). Bytes that are not
/// UTF-8 (a Latin-1 comment field in an old image) are replaced, not a reason to treat the
/// whole file as empty: the fields ginit uses are ASCII in practice.
fn load_users(root: &Path) -> Db {
    let read = |p: &str| {
        std::fs::read(root.join(p))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    Db::from_text(&read("etc/passwd"), &read("etc/group"))
}

/// Bit of CAP_SYS_RESOURCE in a capability mask (capabilities(7)).
const CAP_SYS_RESOURCE: u32 = 24;

impl Resolver for SystemResolver {
    fn user(&self, spec: &str) -> Result<Credentials, String> {
        self.users.resolve(spec)
    }

    fn executable(&self, program: &str, path_var: Option<&str>) -> Result<(), String> {
        spawn::resolve(OsStr::new(program), path_var.map(OsStr::new))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn directory(&self, dir: &Path) -> Result<(), String> {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(format!("`{}` is not a directory", dir.display())),
            Err(e) => Err(format!("`{}`: {e}", dir.display())),
        }
    }

    fn euid(&self) -> u32 {
        sys::geteuid()
    }

    fn path_var(&self) -> Option<String> {
        std::env::var("PATH").ok()
    }

    fn hard_limit(&self, resource: i32) -> (Option<u64>, bool) {
        // A limit that cannot be read is treated as unlimited: validation then lets the
        // child's setrlimit be the judge, which reports its own error.
        let hard = sys::hard_limit(resource).ok().flatten();
        // Without /proc, root is assumed to hold the capability.
        let can_raise = match proc::effective_capabilities() {
            Some(caps) => caps & (1 << CAP_SYS_RESOURCE) != 0,
            None => sys::geteuid() == 0,
        };
        (hard, can_raise)
    }

    fn include(&self, pattern: &Path) -> Result<Vec<(PathBuf, String)>, String> {
        let shown = pattern.display();
        let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
            return Err(format!("`{shown}` names no file"));
        };
        let name = name.to_string_lossy();
        if glob::has_wildcard(&dir.to_string_lossy()) {
            return Err(format!(
                "`{shown}`: wildcards are allowed in the file name only"
            ));
        }
        let read = |path: PathBuf| match crate::config::read(&path) {
            Ok(text) => Ok((path, text)),
            Err(e) => Err(format!("{}: {e}", path.display())),
        };
        if !glob::has_wildcard(&name) {
            return read(pattern.to_path_buf()).map(|f| vec![f]);
        }
        // The directory must exist (it may be empty): a misspelt one is an error, not a
        // silent absence of programs.
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot list {} for `{shown}`: {e}", dir.display()))?;
        let mut names = Vec::new();
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(n) = file_name.to_str() else {
                continue;
            };
            if glob::matches(&name, n) {
                if names.len() >= MAX_INCLUDED {
                    return Err(format!("`{shown}` matches more than {MAX_INCLUDED} files"));
                }
                // Kept in name order as found (at most MAX_INCLUDED: an insertion costs less
                // than a sort's code in the binary).
                let n = n.to_string();
                if let Err(at) = names.binary_search(&n) {
                    names.insert(at, n);
                }
            }
        }
        names
            .into_iter()
            .map(|n| dir.join(n))
            // Directories that match are skipped; links to files (a Kubernetes ConfigMap's)
            // are followed.
            .filter(|p| !p.is_dir())
            .map(read)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_below_a_root_are_read_lossily_and_missing_ones_are_empty() {
        let root = std::env::temp_dir().join(format!("ginit-resolver-{}", std::process::id()));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            b"app:x:1000:1000:Caf\xe9:/home/app:/bin/sh\n",
        )
        .unwrap();
        let db = load_users(&root);
        let c = db.resolve("app").unwrap();
        assert_eq!((c.uid, c.gid), (1000, 1000), "a Latin-1 byte hides nothing");
        assert!(db.resolve("app:web").is_err(), "no group file: no groups");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_machine_answers() {
        let r = SystemResolver::new();
        assert!(r.executable("sh", Some("/bin:/usr/bin")).is_ok());
        assert!(r.executable("/nonexistent/x", None).is_err());
        assert!(r.directory(Path::new("/")).is_ok());
        assert!(r.directory(Path::new("/proc/self/stat")).is_err());
        assert_eq!(r.euid(), sys::geteuid());
        assert!(r.user("0").is_ok_and(|c| c.uid == 0));
    }
}
