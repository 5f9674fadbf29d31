//! Users and groups from /etc/passwd and /etc/group, read by ginit itself: a static binary has
//! no NSS, and a container's users are those files anyway.
//!
//! A leaf of pure parsing: the files are read by `os::SystemResolver`, which hands their text
//! to [`Db::from_text`]. `user: app`, `user: "app:web"`, `user: 1000`, `user: "1000:1000"`. As
//! in `docker run --user`, a numeric uid without a passwd entry runs with gid 0 unless a group
//! is given, and HOME is `/`.

use std::path::PathBuf;

/// Who a program runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the primary gid included).
    pub groups: Vec<u32>,
    /// The user's name, when known (for USER and LOGNAME).
    pub name: Option<String>,
    pub home: PathBuf,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).unwrap_or(&"/").to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The user database: the contents of passwd and group files.
pub struct Db {
    passwd: Vec<PasswdEntry>,
    group: Vec<GroupEntry>,
}

impl Db {
    /// The database of a passwd and a group file's text.
    pub fn from_text(passwd: &str, group: &str) -> Db {
        Db {
            passwd: parse_passwd(passwd),
            group: parse_group(group),
        }
    }

    /// Resolves `user` or `user:group` (names or numbers).
    pub fn resolve(&self, spec: &str) -> Result<Credentials, String> {
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let entry = if let Ok(uid) = user.parse::<u32>() {
            self.passwd.iter().find(|e| e.uid == uid)
        } else {
            Some(
                self.passwd
                    .iter()
                    .find(|e| e.name == user)
                    .ok_or_else(|| format!("no user named `{user}` in /etc/passwd"))?,
            )
        };
        let uid = match entry {
            Some(e) => e.uid,
            None => user
                .parse::<u32>()
                .map_err(|_| format!("`{user}` is not a user"))?,
        };
        let gid = match group {
            Some(g) => self.group_id(g)?,
            None => entry.map_or(0, |e| e.gid),
        };
        let name = entry.map(|e| e.name.clone());
        let mut groups = vec![gid];
        if let Some(name) = &name {
            for g in &self.group {
                if g.members.iter().any(|m| m == name) && !groups.contains(&g.gid) {
                    groups.push(g.gid);
                }
            }
        }
        Ok(Credentials {
            uid,
            gid,
            groups,
            name,
            home: PathBuf::from(entry.map_or("/", |e| e.home.as_str())),
        })
    }

    fn group_id(&self, group: &str) -> Result<u32, String> {
        if let Ok(gid) = group.parse::<u32>() {
            return Ok(gid);
        }
        self.group
            .iter()
            .find(|g| g.name == group)
            .map(|g| g.gid)
            .ok_or_else(|| format!("no group named `{group}` in /etc/group"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Db {
        Db::from_text(
            "root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1000:App:/home/app:/bin/false\n\
             broken line\n",
            "root:x:0:\napp:x:1000:\nweb:x:33:app,other\nlogs:x:4:app\n",
        )
    }

    #[test]
    fn by_name() {
        let c = db().resolve("app").unwrap();
        assert_eq!((c.uid, c.gid), (1000, 1000));
        assert_eq!(c.groups, [1000, 33, 4]);
        assert_eq!(c.name.as_deref(), Some("app"));
        assert_eq!(c.home, PathBuf::from("/home/app"));
    }

    #[test]
    fn with_group() {
        let c = db().resolve("app:web").unwrap();
        assert_eq!((c.uid, c.gid), (1000, 33));
        let c = db().resolve("1000:1000").unwrap();
        assert_eq!(c.name.as_deref(), Some("app"));
    }

    #[test]
    fn numeric_without_entry_is_like_docker() {
        let c = db().resolve("4242").unwrap();
        assert_eq!((c.uid, c.gid), (4242, 0));
        assert_eq!(c.groups, [0]);
        assert_eq!(c.name, None);
        assert_eq!(c.home, PathBuf::from("/"));
    }

    #[test]
    fn unknown_names() {
        assert!(
            db().resolve("nobody")
                .unwrap_err()
                .contains("no user named `nobody`")
        );
        assert!(
            db().resolve("app:nogroup")
                .unwrap_err()
                .contains("no group named `nogroup`")
        );
    }
}
