//! The way back: the archive of /work, read entry by entry, and applied to
//! the workspace where it differs from what was sent.
//!
//! The command is hostile and made that archive, so nothing in it is taken
//! on trust: every write and delete goes through `beneath` (never through a
//! link, never outside the workspace); only directories, regular files and
//! symbolic links are made, without setuid, setgid or sticky bits; protected
//! paths never come back. A path that cannot be reached safely is refused
//! and named in the summary; only real I/O failure ends the sync.

use std::collections::BTreeSet;
use std::io;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use bytes::Bytes;
use rustix::io::Errno;
use tokio::sync::mpsc;

use super::beneath::{self, Root, Staged};
use super::{relative, Changes, ChannelReader, Entry, Excludes, Manifest};

/// Mode bits that may come back: never setuid, setgid or sticky.
const PERMISSIONS: u32 = 0o777;

/// Reads the archive of /work that the engine sends back (its entries under
/// `work/`) and applies to `workspace` what differs from `sent`. What is
/// made is given to `owner` when set (sandbox runs as root for another
/// user). Run it on a thread of its own: `rx` delivers the archive's chunks,
/// and an error in it stops the sync before anything is deleted.
pub fn receive(
    workspace: &Path,
    sent: &Manifest,
    excludes: &Excludes,
    protected: &[String],
    owner: Option<(u32, u32)>,
    rx: mpsc::Receiver<io::Result<Bytes>>,
) -> Result<Changes> {
    let root = Root::open(workspace, owner)
        .with_context(|| format!("cannot open {}", workspace.display()))?;
    let mut sync = SyncBack {
        workspace,
        root,
        sent,
        protected,
        seen: BTreeSet::new(),
        waiting: Vec::new(),
        dir_modes: Vec::new(),
        changes: Changes::default(),
    };
    let mut archive = tar::Archive::new(ChannelReader::new(rx));
    for entry in archive
        .entries()
        .context("cannot read the workspace archive")?
    {
        let mut entry = entry.context("cannot read the workspace archive")?;
        let Some(rel) = relative(&entry.path().context("a bad path in the archive")?) else {
            continue;
        };
        // What was sent passed the patterns as what it was. Anything else is
        // matched as a directory as well: `build/` excludes a directory, and
        // the host may hold an excluded one where the command made a file.
        if rel.as_os_str().is_empty() || (!sent.contains_key(&rel) && excludes.excludes(&rel, true))
        {
            continue;
        }
        sync.entry(rel, &mut entry)?;
    }
    sync.delete_unseen()?;
    sync.place_waiting()?;
    sync.set_dir_modes()?;
    Ok(sync.changes)
}

/// Whether `rel` is a protected path or lies beneath one, by whole names:
/// `.git` covers `.git/config` but not `.gitignore` or `.github/x`.
pub fn is_protected(rel: &Path, protected: &[String]) -> bool {
    // Git metadata at any depth: a submodule's `.git` names the
    // configuration the host's `git status` at the root runs it with.
    let in_git = rel.components().any(|c| {
        let name = c.as_os_str().to_string_lossy().to_ascii_lowercase();
        name.trim_end_matches(['.', ' ']) == ".git"
    });
    in_git
        || protected.iter().any(|p| {
            let p: PathBuf = Path::new(p)
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect();
            !p.as_os_str().is_empty() && rel.starts_with(&p)
        })
}

/// One sync back in progress.
struct SyncBack<'a> {
    workspace: &'a Path,
    root: Root,
    sent: &'a Manifest,
    protected: &'a [String],
    /// Every path the archive holds.
    seen: BTreeSet<PathBuf>,
    /// Files and links whose place is held by a directory on the host.
    waiting: Vec<Waiting>,
    /// Directory modes, set last so a read-only directory can still be filled.
    dir_modes: Vec<(PathBuf, u32)>,
    changes: Changes,
}

/// A file or link that replaces a directory once the deletions emptied it.
struct Waiting {
    rel: PathBuf,
    now: Entry,
    staged: Staged,
}

/// What the archive says one path is now; `Err` with why it is not copied.
fn entry_now<R: io::Read>(entry: &tar::Entry<R>) -> Result<Entry, &'static str> {
    let header = entry.header();
    let mode = header.mode().unwrap_or(0o644) & 0o7777;
    match header.entry_type() {
        tar::EntryType::Directory => Ok(Entry::Dir { mode }),
        tar::EntryType::Regular | tar::EntryType::Continuous => Ok(Entry::File {
            size: header.size().unwrap_or(0),
            mtime: header.mtime().map_or(0, |m| m as i64),
            mode,
        }),
        tar::EntryType::Symlink => match entry.link_name() {
            Ok(Some(target)) => Ok(Entry::Link {
                target: target.into_owned(),
            }),
            _ => Err("a link without a target"),
        },
        tar::EntryType::Link => Err("a hard link"),
        _ => Err("a special file"),
    }
}

impl SyncBack<'_> {
    /// Applies one entry of the archive, if it changed.
    fn entry<R: io::Read>(&mut self, rel: PathBuf, entry: &mut tar::Entry<R>) -> Result<()> {
        self.seen.insert(rel.clone());
        let now = match entry_now(entry) {
            Ok(now) => now,
            Err(why) => {
                self.refuse(rel, why);
                return Ok(());
            }
        };
        if self.sent.get(&rel) == Some(&now) {
            return Ok(());
        }
        if is_protected(&rel, self.protected) {
            self.refuse(rel, "protected");
            return Ok(());
        }
        match self.apply(&rel, &now, entry) {
            Ok(None) => self.count(&rel, &now),
            Ok(Some(staged)) => self.waiting.push(Waiting { rel, now, staged }),
            Err(e) => self.refuse_or_fail(rel, e, "write")?,
        }
        Ok(())
    }

    /// Puts `now` in place at `rel`; a file or link that must wait for a
    /// directory to be emptied is handed back.
    fn apply(
        &mut self,
        rel: &Path,
        now: &Entry,
        data: &mut impl io::Read,
    ) -> io::Result<Option<Staged>> {
        let (dir, name) = self.root.parent(rel)?;
        let staged = match now {
            Entry::Dir { mode } => {
                self.root.make_dir(&dir, name)?;
                self.dir_modes.push((rel.to_path_buf(), mode & PERMISSIONS));
                return Ok(None);
            }
            Entry::File { size, mtime, mode } => {
                self.root
                    .stage_file(dir, name, data, *size, mode & PERMISSIONS, *mtime)?
            }
            Entry::Link { target } => self.root.stage_link(dir, name, target)?,
        };
        if staged.is_blocked()? {
            return Ok(Some(staged));
        }
        staged.commit()?;
        Ok(None)
    }

    /// Deletes what was sent and is no longer there, deepest first so a
    /// directory is empty by the time it goes.
    fn delete_unseen(&mut self) -> Result<()> {
        let sent = self.sent;
        for (rel, entry) in sent.iter().rev() {
            if self.seen.contains(rel) {
                continue;
            }
            if is_protected(rel, self.protected) {
                self.refuse(rel.clone(), "protected");
                continue;
            }
            match self.delete(rel, matches!(entry, Entry::Dir { .. })) {
                Ok(true) => self.changes.deleted += 1,
                Ok(false) => {}
                Err(e) => self.refuse_or_fail(rel.clone(), e, "delete")?,
            }
        }
        Ok(())
    }

    /// Removes `rel`; `false` if it was already gone.
    fn delete(&self, rel: &Path, is_dir: bool) -> io::Result<bool> {
        let (dir, name) = match self.root.parent(rel) {
            Ok(found) => found,
            Err(e) if Errno::from_io_error(&e) == Some(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(e),
        };
        match beneath::remove(&dir, name, is_dir) {
            Ok(()) => Ok(true),
            Err(e) if Errno::from_io_error(&e) == Some(Errno::NOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Files and links that replace a directory, now that what was in it
    /// is deleted.
    fn place_waiting(&mut self) -> Result<()> {
        for Waiting { rel, now, staged } in std::mem::take(&mut self.waiting) {
            match staged.commit() {
                Ok(()) => self.count(&rel, &now),
                Err(e) => self.refuse_or_fail(rel, e, "write")?,
            }
        }
        Ok(())
    }

    fn set_dir_modes(&mut self) -> Result<()> {
        for (rel, mode) in std::mem::take(&mut self.dir_modes).into_iter().rev() {
            if let Err(e) = self.root.set_mode(&rel, mode) {
                self.refuse_or_fail(rel, e, "set the mode of")?;
            }
        }
        Ok(())
    }

    fn count(&mut self, rel: &Path, now: &Entry) {
        match self.sent.contains_key(rel) {
            true => self.changes.changed += 1,
            false => self.changes.created += 1,
        }
        if let Entry::File { size, .. } = now {
            self.changes.bytes += size;
        }
    }

    fn refuse(&mut self, rel: PathBuf, why: &'static str) {
        self.changes.refused.push((rel, why));
    }

    /// A path the host will not let us reach safely is refused; any other
    /// failure (a full disk, a broken archive) ends the sync.
    fn refuse_or_fail(&mut self, rel: PathBuf, e: io::Error, what: &str) -> Result<()> {
        match refusal(&e) {
            Some(why) => {
                self.refuse(rel, why);
                Ok(())
            }
            None => Err(e)
                .with_context(|| format!("cannot {what} {}", self.workspace.join(&rel).display())),
        }
    }
}

/// Why a path was refused, for the errors that say something about the path
/// on the host rather than about the disk or the archive.
fn refusal(e: &io::Error) -> Option<&'static str> {
    let why = match Errno::from_io_error(e)? {
        Errno::LOOP => "a symbolic link in its path",
        Errno::XDEV => "a mount point in its path",
        Errno::NOTDIR => "a file where a directory was expected",
        Errno::ISDIR => "a directory where a file was expected",
        Errno::NOTEMPTY => "a directory that still holds files on the host",
        Errno::EXIST => "changed on the host meanwhile",
        Errno::NOENT => "its directory is gone from the host",
        Errno::ACCESS | Errno::PERM => "permission denied on the host",
        Errno::NAMETOOLONG => "a name too long for the host",
        _ => return None,
    };
    Some(why)
}

#[cfg(test)]
pub(super) mod tests {
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt};

    use super::*;

    /// Runs `receive` over `archive`, fed in small chunks as the engine would.
    pub(in crate::sync) fn receive_bytes(
        workspace: &Path,
        sent: &Manifest,
        excludes: &Excludes,
        protected: &[String],
        owner: Option<(u32, u32)>,
        archive: Vec<u8>,
    ) -> Result<Changes> {
        let (tx, rx) = mpsc::channel(4);
        let feeder = std::thread::spawn(move || {
            for chunk in archive.chunks(1000) {
                if tx.blocking_send(Ok(Bytes::copy_from_slice(chunk))).is_err() {
                    break;
                }
            }
        });
        let changes = receive(workspace, sent, excludes, protected, owner, rx);
        feeder.join().unwrap();
        changes
    }

    /// An archive as the engine sends /work back: every path under `work/`.
    struct Back(tar::Builder<Vec<u8>>);

    impl Back {
        fn new() -> Back {
            Back(tar::Builder::new(Vec::new())).dir("", 0o755)
        }

        fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_mtime(1_700_000_000);
            header.set_size(0);
            header
        }

        fn dir(mut self, path: &str, mode: u32) -> Back {
            let mut header = Back::header(tar::EntryType::Directory, mode);
            let path = Path::new("work").join(path);
            self.0.append_data(&mut header, path, io::empty()).unwrap();
            self
        }

        fn file(mut self, path: &str, mode: u32, data: &[u8]) -> Back {
            let mut header = Back::header(tar::EntryType::Regular, mode);
            header.set_size(data.len() as u64);
            let path = Path::new("work").join(path);
            self.0.append_data(&mut header, path, data).unwrap();
            self
        }

        fn link(mut self, path: &str, target: &Path) -> Back {
            let mut header = Back::header(tar::EntryType::Symlink, 0o777);
            let path = Path::new("work").join(path);
            self.0.append_link(&mut header, path, target).unwrap();
            self
        }

        fn special(mut self, path: &str, kind: tar::EntryType) -> Back {
            let mut header = Back::header(kind, 0o666);
            if kind == tar::EntryType::Link {
                header.set_link_name("work/a").unwrap();
            }
            let path = Path::new("work").join(path);
            self.0.append_data(&mut header, path, io::empty()).unwrap();
            self
        }

        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    /// A workspace `ws` with a directory `outside` beside it whose
    /// `authorized_keys` the command is after.
    struct Host {
        _base: tempfile::TempDir,
        ws: PathBuf,
        outside: PathBuf,
    }

    const VICTIM: &str = "ssh-ed25519 AAAA the user's key\n";

    impl Host {
        fn new() -> Host {
            let base = tempfile::tempdir().unwrap();
            let ws = base.path().join("ws");
            let outside = base.path().join("outside");
            fs::create_dir_all(&ws).unwrap();
            fs::create_dir_all(&outside).unwrap();
            fs::write(outside.join("authorized_keys"), VICTIM).unwrap();
            Host {
                _base: base,
                ws,
                outside,
            }
        }

        /// The victim is byte-identical and alone in its directory.
        fn assert_outside_untouched(&self) {
            let keys = fs::read_to_string(self.outside.join("authorized_keys")).unwrap();
            assert_eq!(keys, VICTIM);
            assert_eq!(fs::read_dir(&self.outside).unwrap().count(), 1);
        }

        fn receive(&self, sent: &Manifest, archive: Vec<u8>) -> Result<Changes> {
            let excludes = Excludes::parse("").unwrap();
            receive_bytes(&self.ws, sent, &excludes, &[], None, archive)
        }
    }

    fn sent(entries: &[(&str, Entry)]) -> Manifest {
        entries
            .iter()
            .map(|(path, entry)| (PathBuf::from(path), entry.clone()))
            .collect()
    }

    fn dir() -> Entry {
        Entry::Dir { mode: 0o755 }
    }

    fn file(size: u64) -> Entry {
        Entry::File {
            size,
            mtime: 1_600_000_000,
            mode: 0o644,
        }
    }

    /// Temporary files left in `dir`.
    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".part"))
            .collect()
    }

    #[test]
    fn protected_names_match_whole_leading_components() {
        let protected = [".git".to_string(), "./.sandbox.yml".to_string()];
        for path in [
            ".git",
            ".git/config",
            ".git/hooks/pre-commit",
            ".sandbox.yml",
            "src/.git/config",
            "lib/.GIT",
            "lib/.git./config",
        ] {
            assert!(is_protected(Path::new(path), &protected), "{path}");
        }
        for path in [".gitignore", ".github/x", ".sandbox.yml.bak"] {
            assert!(!is_protected(Path::new(path), &protected), "{path}");
        }
        assert!(!is_protected(Path::new("a"), &["".to_string()]));
    }

    /// Links the host already has (an earlier run, the repository itself)
    /// lead out of the workspace: nothing is written or deleted through them.
    #[test]
    fn nothing_goes_through_a_link_in_the_path() {
        for (name, relative) in [("relative", true), ("absolute", false)] {
            let host = Host::new();
            let target = match relative {
                true => PathBuf::from("../../outside"),
                false => host.outside.clone(),
            };
            fs::create_dir_all(host.ws.join("d")).unwrap();
            symlink(&target, host.ws.join("d/x")).unwrap();
            // Swapped in after the send: d/y was a directory then.
            symlink(&target, host.ws.join("d/y")).unwrap();
            let sent = sent(&[
                ("d", dir()),
                (
                    "d/x",
                    Entry::Link {
                        target: target.clone(),
                    },
                ),
                ("d/y", dir()),
                ("d/y/authorized_keys", file(3)),
            ]);
            let archive = Back::new()
                .dir("d", 0o755)
                .link("d/x", &target)
                .file("d/x/authorized_keys", 0o600, b"ssh-rsa attacker\n")
                .dir("d/x/new", 0o755)
                .bytes();

            let changes = host.receive(&sent, archive).unwrap();

            host.assert_outside_untouched();
            let link = "a symbolic link in its path";
            assert_eq!(
                changes.refused,
                [
                    (PathBuf::from("d/x/authorized_keys"), link),
                    (PathBuf::from("d/x/new"), link),
                    (PathBuf::from("d/y/authorized_keys"), link),
                    (
                        PathBuf::from("d/y"),
                        "a file where a directory was expected"
                    ),
                ],
                "{name}"
            );
            assert_eq!((changes.created, changes.deleted), (0, 0), "{name}");
        }
    }

    /// The command turns a directory and a file into links out of the
    /// workspace: they come back as links, and the deletions of what was in
    /// the directory stay in the workspace.
    #[test]
    fn what_became_a_link_comes_back_as_the_link_alone() {
        let host = Host::new();
        let outside_keys = host.outside.join("authorized_keys");
        fs::create_dir_all(host.ws.join("d/x")).unwrap();
        fs::write(host.ws.join("d/x/authorized_keys"), "workspace copy").unwrap();
        fs::write(host.ws.join("f"), "a file").unwrap();
        let sent = sent(&[
            ("d", dir()),
            ("d/x", dir()),
            ("d/x/authorized_keys", file(14)),
            ("f", file(6)),
        ]);
        let archive = Back::new()
            .dir("d", 0o755)
            .link("d/x", &host.outside)
            .link("f", &outside_keys)
            .bytes();

        let changes = host.receive(&sent, archive).unwrap();

        host.assert_outside_untouched();
        assert_eq!(fs::read_link(host.ws.join("d/x")).unwrap(), host.outside);
        assert_eq!(fs::read_link(host.ws.join("f")).unwrap(), outside_keys);
        assert_eq!(
            (changes.changed, changes.deleted, changes.refused.len()),
            (2, 1, 0),
            "{changes:?}"
        );
        assert_eq!(leftovers(&host.ws.join("d")), Vec::<String>::new());
    }

    #[test]
    fn modes_lose_setuid_setgid_and_sticky() {
        let host = Host::new();
        fs::write(host.ws.join("tool"), "old").unwrap();
        let sent = sent(&[("tool", file(3))]);
        let archive = Back::new()
            .file("tool", 0o4755, b"new")
            .file("both", 0o6711, b"x")
            .dir("shared", 0o1777)
            .dir("ro", 0o555)
            .file("ro/inside", 0o444, b"y")
            .bytes();

        let changes = host.receive(&sent, archive).unwrap();

        assert!(changes.refused.is_empty(), "{changes:?}");
        for (path, mode) in [
            ("tool", 0o755),
            ("both", 0o711),
            ("shared", 0o777),
            ("ro", 0o555),
            ("ro/inside", 0o444),
        ] {
            let meta = fs::symlink_metadata(host.ws.join(path)).unwrap();
            assert_eq!(meta.mode() & 0o7777, mode, "{path}");
        }
        let tool = fs::metadata(host.ws.join("tool")).unwrap();
        assert_eq!(tool.mtime(), 1_700_000_000);
    }

    #[test]
    fn what_is_made_belongs_to_the_owner() {
        // Root may give files away; anyone else may still name themselves.
        let owner = match rustix::process::geteuid().is_root() {
            true => (4242, 4343),
            false => (
                rustix::process::getuid().as_raw(),
                rustix::process::getgid().as_raw(),
            ),
        };
        let host = Host::new();
        let excludes = Excludes::parse("").unwrap();
        let archive = Back::new()
            .dir("d", 0o755)
            .file("d/f", 0o644, b"x")
            .link("l", Path::new("d/f"))
            .bytes();
        let changes = receive_bytes(
            &host.ws,
            &Manifest::new(),
            &excludes,
            &[],
            Some(owner),
            archive,
        )
        .unwrap();
        assert_eq!(changes.created, 3, "{changes:?}");
        for path in ["d", "d/f", "l"] {
            let meta = fs::symlink_metadata(host.ws.join(path)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), owner, "{path}");
        }
    }

    #[test]
    fn special_files_and_hard_links_never_come_back() {
        let host = Host::new();
        fs::write(host.ws.join("was-a-file"), "kept").unwrap();
        let sent = sent(&[("was-a-file", file(4))]);
        let archive = Back::new()
            .special("fifo", tar::EntryType::Fifo)
            .special("tty", tar::EntryType::Char)
            .special("disk", tar::EntryType::Block)
            .special("hard", tar::EntryType::Link)
            .special("was-a-file", tar::EntryType::Fifo)
            .bytes();

        let changes = host.receive(&sent, archive).unwrap();

        for name in ["fifo", "tty", "disk", "hard"] {
            assert!(fs::symlink_metadata(host.ws.join(name)).is_err(), "{name}");
        }
        assert_eq!(
            fs::read_to_string(host.ws.join("was-a-file")).unwrap(),
            "kept"
        );
        let refused: Vec<&str> = changes.refused.iter().map(|(_, why)| *why).collect();
        assert_eq!(
            refused,
            [
                "a special file",
                "a special file",
                "a special file",
                "a hard link",
                "a special file"
            ]
        );
        assert_eq!(
            (changes.created, changes.changed, changes.deleted),
            (0, 0, 0)
        );
    }

    /// A file becomes a directory and a directory a file: the file waits
    /// until the deletions emptied the directory, and never takes what the
    /// host kept in it (excluded, never sent) with it.
    #[test]
    fn a_directory_is_replaced_only_once_empty() {
        let host = Host::new();
        for d in ["gone", "kept"] {
            fs::create_dir_all(host.ws.join(d)).unwrap();
            fs::write(host.ws.join(d).join("a"), "in it").unwrap();
        }
        fs::write(host.ws.join("kept/local.log"), "excluded").unwrap();
        let sent = sent(&[
            ("gone", dir()),
            ("gone/a", file(5)),
            ("kept", dir()),
            ("kept/a", file(5)),
        ]);
        let archive = Back::new()
            .file("gone", 0o644, b"now a file")
            .file("kept", 0o644, b"now a file")
            .bytes();
        let excludes = Excludes::parse("*.log\n").unwrap();

        let changes = receive_bytes(&host.ws, &sent, &excludes, &[], None, archive).unwrap();

        assert_eq!(
            fs::read_to_string(host.ws.join("gone")).unwrap(),
            "now a file"
        );
        assert_eq!(
            fs::read_to_string(host.ws.join("kept/local.log")).unwrap(),
            "excluded"
        );
        assert_eq!(
            changes.refused,
            [(
                PathBuf::from("kept"),
                "a directory that still holds files on the host"
            )]
        );
        assert_eq!((changes.changed, changes.deleted), (1, 2), "{changes:?}");
        assert_eq!(leftovers(&host.ws), Vec::<String>::new());
    }

    /// The archive ends inside a file: the host's file is untouched, no
    /// temporary file is left, and nothing is deleted.
    #[test]
    fn a_failed_write_leaves_the_original_whole() {
        let host = Host::new();
        fs::write(host.ws.join("f"), "original").unwrap();
        fs::write(host.ws.join("z"), "still here").unwrap();
        let sent = sent(&[("f", file(8)), ("z", file(10))]);
        let full = Back::new().file("f", 0o644, &[b'x'; 4096]).bytes();
        // Two headers (work/ and work/f) and part of the data.
        let cut = full[..2 * 512 + 100].to_vec();

        let err = host.receive(&sent, cut).unwrap_err();

        assert!(
            format!("{err:#}").contains("the archive ended inside the file"),
            "{err:#}"
        );
        assert_eq!(fs::read_to_string(host.ws.join("f")).unwrap(), "original");
        assert_eq!(fs::read_to_string(host.ws.join("z")).unwrap(), "still here");
        assert_eq!(leftovers(&host.ws), Vec::<String>::new());
    }

    /// A file stands where the archive needs a directory (the host changed
    /// during the run): refused, and the file is byte-identical.
    #[test]
    fn a_file_where_a_directory_is_expected_is_left_alone() {
        let host = Host::new();
        fs::write(host.ws.join("a"), "host's own").unwrap();
        let sent = sent(&[("a", dir()), ("a/b", file(3))]);
        let archive = Back::new()
            .dir("a", 0o755)
            .file("a/b", 0o644, b"changed")
            .bytes();

        let changes = host.receive(&sent, archive).unwrap();

        assert_eq!(fs::read_to_string(host.ws.join("a")).unwrap(), "host's own");
        assert_eq!(
            changes.refused,
            [(
                PathBuf::from("a/b"),
                "a file where a directory was expected"
            )]
        );
    }

    /// The engine's stream breaks: nothing is deleted on the strength of an
    /// archive that never finished.
    #[test]
    fn a_broken_stream_deletes_nothing() {
        let host = Host::new();
        fs::write(host.ws.join("z"), "not in the part that arrived").unwrap();
        let sent = sent(&[("z", file(28))]);
        let part = Back::new().file("a", 0o644, b"arrived").bytes();
        let (tx, rx) = mpsc::channel(4);
        tx.blocking_send(Ok(Bytes::from(part[..1024].to_vec())))
            .unwrap();
        tx.blocking_send(Err(io::Error::other("the engine went away")))
            .unwrap();
        drop(tx);
        let excludes = Excludes::parse("").unwrap();

        let err = receive(&host.ws, &sent, &excludes, &[], None, rx).unwrap_err();

        assert!(
            format!("{err:#}").contains("the engine went away"),
            "{err:#}"
        );
        assert!(host.ws.join("z").exists());
    }

    /// The per-name walk used without openat2 refuses what openat2 refuses.
    #[test]
    fn both_resolvers_refuse_links() {
        let host = Host::new();
        fs::create_dir_all(host.ws.join("d/real")).unwrap();
        symlink("../../outside", host.ws.join("d/x")).unwrap();
        symlink(&host.outside, host.ws.join("d/abs")).unwrap();
        let root = Root::open(&host.ws, None).unwrap();
        for rel in ["d", "d/real", ""] {
            assert!(root.dir(Path::new(rel)).is_ok(), "{rel}");
            assert!(root.walk(Path::new(rel)).is_ok(), "{rel}");
        }
        for rel in ["d/x", "d/abs", "d/x/deeper"] {
            let errno = |r: io::Result<_>| Errno::from_io_error(&r.unwrap_err());
            assert_eq!(errno(root.dir(Path::new(rel))), Some(Errno::LOOP), "{rel}");
            assert_eq!(errno(root.walk(Path::new(rel))), Some(Errno::LOOP), "{rel}");
        }
    }

    /// `build/` excludes directories: a file the command made where the host
    /// keeps an excluded directory leaves it alone, and a file of that name
    /// that was sent comes back like any other.
    #[test]
    fn a_directory_pattern_never_lets_an_excluded_directory_be_replaced() {
        let host = Host::new();
        fs::create_dir(host.ws.join("build")).unwrap();
        fs::write(host.ws.join("src"), "old").unwrap();
        let sent = sent(&[("src", file(3))]);
        let archive = Back::new()
            .file("build", 0o644, b"made by the command")
            .file("src", 0o644, b"changed")
            .bytes();
        let excludes = Excludes::parse("build/\nsrc/\n").unwrap();

        let changes = receive_bytes(&host.ws, &sent, &excludes, &[], None, archive).unwrap();

        assert!(host.ws.join("build").is_dir(), "untouched");
        assert_eq!(fs::read_to_string(host.ws.join("src")).unwrap(), "changed");
        assert_eq!(
            (changes.created, changes.changed, changes.deleted),
            (0, 1, 0),
            "{changes:?}"
        );
        assert!(changes.refused.is_empty(), "{changes:?}");
    }
}
