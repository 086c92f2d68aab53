//! Who the command is inside the container: a passwd and group entry for
//! the uid:gid it runs as, and the host user's git identity.
//!
//! The command runs as the invoking user's uid, which the image's
//! `/etc/passwd` does not know: `whoami`, `id -un`, Python's
//! `getpass.getuser()` and Node's `os.userInfo()` fail, and agents that
//! save a setting through them stop there. git inside has no `user.name`
//! either, so every commit fails with "Author identity unknown" (and aider
//! tries to write one into the read-only `.git/config`). So sandbox writes
//! small files of its own and mounts them read-only over `/etc/passwd`,
//! `/etc/group` and `/etc/gitconfig`: git and GitPython read the system
//! file, and `git config --global` still writes to HOME.
//!
//! The files live in sandbox's private directory, named by a hash of what
//! they hold, so a run never rewrites a file another run has mounted and a
//! warm container made earlier finds the same ones.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::mount::BindMount;

/// The host user's `user.name` and `user.email`, as git outside reads them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GitIdentity {
    pub name: Option<String>,
    pub email: Option<String>,
}

impl GitIdentity {
    /// What the host's git gives outside any repository: the user's and the
    /// system's configuration, with their includes. Read with the host's
    /// own git so that `GIT_CONFIG_GLOBAL` and includes mean what they mean
    /// there; never in the workspace, whose configuration is not the user's
    /// word. No git, or no identity, gives none.
    pub fn of_host() -> GitIdentity {
        let out = Command::new("git")
            .args(["config", "--includes", "-z", "--get-regexp"])
            .arg(r"^user\.(name|email)$")
            .current_dir("/")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_CONFIG_PARAMETERS")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        match out {
            Ok(out) => GitIdentity::parse(&out.stdout),
            Err(_) => GitIdentity::default(),
        }
    }

    /// `git config -z --get-regexp` output: `key\nvalue\0` entries, the last
    /// of a key winning as it does for git.
    fn parse(out: &[u8]) -> GitIdentity {
        let mut identity = GitIdentity::default();
        for entry in out.split(|b| *b == 0) {
            let Ok(entry) = std::str::from_utf8(entry) else {
                continue;
            };
            let Some((key, value)) = entry.split_once('\n') else {
                continue;
            };
            let value = Some(value.to_string()).filter(|v| !v.trim().is_empty());
            match key {
                "user.name" => identity.name = value.or(identity.name),
                "user.email" => identity.email = value.or(identity.email),
                _ => {}
            }
        }
        identity
    }

    /// The `[user]` section of a git configuration file, or `None` when
    /// there is nothing to say.
    fn config_file(&self) -> Option<String> {
        if self.name.is_none() && self.email.is_none() {
            return None;
        }
        let mut text = String::from("[user]\n");
        for (key, value) in [("name", &self.name), ("email", &self.email)] {
            if let Some(value) = value {
                text.push_str(&format!("\t{key} = {}\n", quoted(value)));
            }
        }
        Some(text)
    }
}

/// A git configuration value in double quotes, with git's escapes.
fn quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The user the command runs as, as `/etc/passwd` will name it.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

impl Account {
    /// The account for `uid:gid` with HOME at `home`. The name is the host
    /// user's when the command runs as the invoking user (or as the user
    /// behind sudo), and `sandbox` otherwise, or when the host's name would
    /// not make a valid entry. `None` for root, whom every image knows, and
    /// for a HOME that cannot be written in a passwd line.
    pub fn new(
        (uid, gid): (u32, u32),
        home: &str,
        host_uid: u32,
        env: &BTreeMap<String, String>,
    ) -> Option<Account> {
        if uid == 0 || home.contains([':', '\n']) {
            return None;
        }
        let from = |key: &str| env.get(key).filter(|name| valid_name(name)).cloned();
        let host_name = match host_uid {
            0 => from("SUDO_USER")
                .filter(|_| env.get("SUDO_UID").is_some_and(|u| u.parse() == Ok(uid))),
            me if me == uid => from("USER").or_else(|| from("LOGNAME")),
            _ => None,
        };
        Some(Account {
            name: host_name.unwrap_or_else(|| "sandbox".into()),
            uid,
            gid,
            home: home.to_string(),
        })
    }

    /// root, the user, and nobody, as `/etc/passwd` lines.
    fn passwd(&self) -> String {
        let mut text = String::from("root:x:0:0:root:/root:/bin/sh\n");
        text.push_str(&format!(
            "{name}:x:{uid}:{gid}:{name}:{home}:/bin/sh\n",
            name = self.name,
            uid = self.uid,
            gid = self.gid,
            home = self.home
        ));
        if self.uid != NOBODY {
            text.push_str(&format!(
                "nobody:x:{NOBODY}:{NOBODY}:nobody:/nonexistent:/usr/sbin/nologin\n"
            ));
        }
        text
    }

    /// root, the user's group (named as the user), and nogroup.
    fn group(&self) -> String {
        let mut text = String::from("root:x:0:\n");
        if self.gid != 0 {
            text.push_str(&format!("{}:x:{}:\n", self.name, self.gid));
        }
        if self.gid != NOBODY {
            text.push_str(&format!("nogroup:x:{NOBODY}:\n"));
        }
        text
    }
}

const NOBODY: u32 = 65534;

/// A name `useradd` would take: it ends up between colons and in prompts.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The files of one run: their contents and where each is mounted.
pub struct Files(Vec<(&'static str, &'static str, String)>);

impl Files {
    pub fn new(account: Option<&Account>, git: &GitIdentity) -> Files {
        let mut files = Vec::new();
        if let Some(account) = account {
            files.push(("passwd", "/etc/passwd", account.passwd()));
            files.push(("group", "/etc/group", account.group()));
        }
        if let Some(config) = git.config_file() {
            files.push(("gitconfig", "/etc/gitconfig", config));
        }
        Files(files)
    }

    /// The read-only mounts of these files from `private` (a directory no
    /// container can write), written there first when `write` is set.
    pub fn mounts(&self, private: &Path, write: bool) -> Result<Vec<BindMount>> {
        let mut mounts = Vec::new();
        for (name, target, text) in &self.0 {
            let hash = crate::hash::sha256_hex(text.as_bytes(), 16);
            let source = private.join(format!("{name}-{hash}"));
            if write {
                write_once(&source, text)
                    .with_context(|| format!("cannot write {}", source.display()))?;
            }
            mounts.push(BindMount {
                source,
                target: target.to_string(),
                read_only: true,
            });
        }
        Ok(mounts)
    }
}

/// `path` with `text`, unless it is already there: a file of a given name
/// only ever holds one text, so one that exists is left alone. Written
/// beside it and renamed into place, so no run mounts half a file.
fn write_once(path: &Path, text: &str) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    let partial = PathBuf::from(format!("{}.{}.tmp", path.display(), std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&partial)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    let placed = written.and_then(|()| std::fs::rename(&partial, path));
    if placed.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    Ok(placed?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_invoking_user_keeps_their_name() {
        let me = Account::new(
            (4321, 4322),
            "/home/sandbox",
            4321,
            &env(&[("USER", "ada")]),
        );
        let me = me.unwrap();
        assert_eq!(me.name, "ada");
        assert_eq!(
            me.passwd().lines().nth(1),
            Some("ada:x:4321:4322:ada:/home/sandbox:/bin/sh")
        );
        assert_eq!(me.group().lines().nth(1), Some("ada:x:4322:"));
        let logname = Account::new((5, 5), "/h", 5, &env(&[("LOGNAME", "bob")]));
        assert_eq!(logname.unwrap().name, "bob");
    }

    #[test]
    fn sudo_names_the_user_behind_it() {
        let env = env(&[("USER", "root"), ("SUDO_USER", "ada"), ("SUDO_UID", "1000")]);
        assert_eq!(
            Account::new((1000, 1000), "/h", 0, &env).unwrap().name,
            "ada"
        );
        // Another uid than sudo's: not ada.
        assert_eq!(
            Account::new((2000, 2000), "/h", 0, &env).unwrap().name,
            "sandbox"
        );
    }

    #[test]
    fn a_name_that_would_break_the_file_is_not_used() {
        for bad in [
            "a:b",
            "a\nroot:x:0:0::/:/bin/sh",
            "",
            "Ada",
            "-x",
            &"a".repeat(33),
        ] {
            let account = Account::new((7, 7), "/h", 7, &env(&[("USER", bad)])).unwrap();
            assert_eq!(account.name, "sandbox", "{bad:?}");
        }
        assert!(Account::new((7, 7), "/h:x", 7, &env(&[])).is_none());
        assert!(
            Account::new((0, 0), "/root", 0, &env(&[])).is_none(),
            "root is known"
        );
    }

    #[test]
    fn nobody_is_not_listed_twice() {
        let nobody = Account::new((NOBODY, NOBODY), "/h", 1, &env(&[])).unwrap();
        assert_eq!(nobody.passwd().matches(":65534:").count(), 1);
        assert_eq!(nobody.group().matches(":65534:").count(), 1);
        let root_group = Account::new((9, 0), "/h", 1, &env(&[])).unwrap();
        assert_eq!(root_group.group().matches("x:0:").count(), 1);
    }

    #[test]
    fn git_output_is_read_last_value_winning() {
        let out = b"user.name\nOld Name\0user.email\nada@example.org\0user.name\nAda Lovelace\0";
        let identity = GitIdentity::parse(out);
        assert_eq!(identity.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(identity.email.as_deref(), Some("ada@example.org"));
        assert_eq!(GitIdentity::parse(b""), GitIdentity::default());
        assert_eq!(GitIdentity::default().config_file(), None);
    }

    #[test]
    fn the_git_file_quotes_what_git_would_misread() {
        let identity = GitIdentity {
            name: Some(r#"A "quoted" \ name ; # not a comment"#.into()),
            email: None,
        };
        let text = identity.config_file().unwrap();
        assert_eq!(
            text,
            "[user]\n\tname = \"A \\\"quoted\\\" \\\\ name ; # not a comment\"\n"
        );
        let read = crate::gitconfig::entries(&text);
        assert_eq!(
            read,
            [(
                "user.name".to_string(),
                r#"A "quoted" \ name ; # not a comment"#.to_string()
            )]
        );
    }

    #[test]
    fn files_are_named_by_their_text_and_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let account = Account::new((7, 8), "/h", 7, &env(&[("USER", "ada")])).unwrap();
        let git = GitIdentity {
            name: Some("Ada".into()),
            email: Some("a@b".into()),
        };
        let files = Files::new(Some(&account), &git);
        let planned = files.mounts(dir.path(), false).unwrap();
        assert!(planned.iter().all(|m| !m.source.exists() && m.read_only));
        let targets: Vec<&str> = planned.iter().map(|m| m.target.as_str()).collect();
        assert_eq!(targets, ["/etc/passwd", "/etc/group", "/etc/gitconfig"]);
        let written = files.mounts(dir.path(), true).unwrap();
        assert_eq!(planned, written, "the same names, written or not");
        let passwd = std::fs::read_to_string(&written[0].source).unwrap();
        assert!(passwd.contains("ada:x:7:8:"));
        let other = Files::new(None, &GitIdentity::default());
        assert!(other.mounts(dir.path(), true).unwrap().is_empty());
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 3, "no partial file left");
    }
}
