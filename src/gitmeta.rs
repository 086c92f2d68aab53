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

use std::collections::BTreeSet;

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
fn is_valid_branch(name: &str) -> bool {
    let forbidden = |c: char| c.is_ascii_control() || " ~^:?*[\\".contains(c);
    !name.is_empty()
        && !name.contains(forbidden)
        && !name.contains("..")
        && !name.contains("@{")
        && !name.ends_with('.')
        && name
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && !part.ends_with(".lock"))
}

/// The paths of `index`'s gitlink entries that `before` did not have.
pub fn added_gitlinks(before: Option<&[u8]>, after: &[u8]) -> Result<BTreeSet<Vec<u8>>> {
    let old = match before {
        Some(index) => gitlinks(index).context("the host's index")?,
        None => BTreeSet::new(),
    };
    let new = gitlinks(after)?;
    Ok(new.difference(&old).cloned().collect())
}

/// The paths of every gitlink (mode 160000) entry of a git index, versions
/// 2 to 4, with SHA-1 or SHA-256 object ids (an index whose whole layout,
/// extensions and checksum included, does not add up is refused).
pub fn gitlinks(index: &[u8]) -> Result<BTreeSet<Vec<u8>>> {
    gitlinks_with(index, 20).or_else(|e| gitlinks_with(index, 32).map_err(|_| e))
}

fn gitlinks_with(index: &[u8], hash: usize) -> Result<BTreeSet<Vec<u8>>> {
    // ctime, mtime (seconds and nanoseconds), dev, ino, mode, uid, gid, size.
    const STAT: usize = 40;
    const GITLINK: u32 = 0o160000;
    let mut r = Reader { data: index, at: 0 };
    ensure!(r.take(4)? == b"DIRC", "not a git index");
    let version = r.u32()?;
    ensure!((2..=4).contains(&version), "index version {version}");
    let count = r.u32()?;
    let mut found = BTreeSet::new();
    let mut previous: Vec<u8> = Vec::new();
    for _ in 0..count {
        let start = r.at;
        let stat = r.take(STAT)?;
        let mode = u32::from_be_bytes(stat[24..28].try_into().expect("four bytes"));
        r.take(hash)?;
        let flags = r.u16()?;
        if flags & 0x4000 != 0 {
            ensure!(version >= 3, "extended flags in a version 2 index");
            r.take(2)?;
        }
        let name = if version == 4 {
            let strip = r.varint()?;
            let keep = previous
                .len()
                .checked_sub(strip)
                .context("a path shorter than its prefix")?;
            let mut name = previous[..keep].to_vec();
            name.extend_from_slice(r.until_nul()?);
            name
        } else {
            let name = r.until_nul()?.to_vec();
            // Entries are padded with NULs to a multiple of eight bytes.
            let padded = (r.at - start + 7) & !7;
            r.take(start + padded - r.at)?;
            name
        };
        if !is_safe_path(&name) {
            bail!(
                "it has an entry at {:?}, which git would write outside the work tree or into \
                 a .git",
                String::from_utf8_lossy(&name)
            );
        }
        if mode & 0o170000 == GITLINK {
            found.insert(name.clone());
        }
        previous = name;
    }
    // Extensions (a signature and a length each), then the checksum.
    while r.data.len() - r.at > hash {
        r.take(4)?;
        let len = r.u32()? as usize;
        r.take(len)?;
    }
    ensure!(
        r.data.len() - r.at == hash,
        "the index does not end in its checksum"
    );
    Ok(found)
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

    /// The bytes up to a NUL, which is consumed.
    fn until_nul(&mut self) -> Result<&'a [u8]> {
        let rest = &self.data[self.at..];
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .context("a path without its end")?;
        self.at += len + 1;
        Ok(&rest[..len])
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
                gitlinks(&after).unwrap(),
                BTreeSet::from([b"deep/sub".to_vec()]),
                "version {version}"
            );
            assert_eq!(
                added_gitlinks(Some(&before), &after).unwrap(),
                BTreeSet::from([b"deep/sub".to_vec()])
            );
            assert!(added_gitlinks(Some(&after), &after).unwrap().is_empty());
        }
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
        assert!(gitlinks(b"").is_err());
        assert!(gitlinks(b"DIRC\0\0\0\x02\0\0\0\x05").is_err());
        assert!(gitlinks(b"DIRC\0\0\0\x09\0\0\0\0").is_err());
    }
}
