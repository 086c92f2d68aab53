//! The way back: archives of /work, read entry by entry, and applied to the
//! workspace where they differ from what was sent.
//!
//! The command is hostile and made those archives, so nothing in them is
//! taken on trust: every write and delete goes through `beneath` (never
//! through a link, never outside the workspace); only directories, regular
//! files and symbolic links are made, without setuid, setgid or sticky
//! bits; protected paths never come back. A path that cannot be reached
//! safely is refused and named in the summary.
//!
//! Each file is written beside its place and renamed over it, so the host's
//! original stays whole until the new one is complete and on disk. A file
//! that cannot be written (a full disk) is named and the others still come
//! back; an archive that breaks off, or a stop signal, ends the copy-back
//! where it is. After any of these nothing is deleted: a deletion may be
//! the other half of a move whose new half did not come back.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use rustix::io::Errno;
use tokio::sync::mpsc;

use super::beneath::{self, Root, Staged};
use super::{relative, Changed, Changes, ChannelReader, Entry, Excludes, Manifest};

/// Mode bits that may come back: never setuid, setgid or sticky.
const PERMISSIONS: u32 = 0o777;
/// Files compared byte for byte when their header is what was sent. An
/// archive without a listing is smaller than this (past it the copy-back
/// asks for one) unless the listing failed; larger files are then taken by
/// their header.
const COMPARED_UP_TO: u64 = 4 << 20;

/// A copy-back in progress. Feed it archives of /work ([`Receiver::archive`],
/// on a thread where blocking is allowed), then [`Receiver::finish`].
pub struct Receiver {
    workspace: PathBuf,
    root: Root,
    sent: Manifest,
    excludes: Excludes,
    protected: Vec<String>,
    /// From a listing: the only paths taken from the archives. `None` when
    /// the one archive is the whole of /work.
    wanted: Option<BTreeSet<PathBuf>>,
    /// Wanted paths the archives delivered.
    delivered: BTreeSet<PathBuf>,
    /// Every path /work holds: what was sent and is not here was deleted.
    seen: BTreeSet<PathBuf>,
    /// Files and links whose place is held by a directory on the host.
    waiting: Vec<Waiting>,
    /// Directory modes, set last so a read-only directory can still be filled.
    dir_modes: Vec<(PathBuf, u32)>,
    /// Directories a file was renamed into, synced at the end so the new
    /// names survive a crash.
    renamed_in: BTreeSet<PathBuf>,
    changes: Changes,
    missed: Vec<(PathBuf, String)>,
    /// Why an archive after a listing broke off: what it did not deliver
    /// did not come back for that reason.
    cut: Option<String>,
    broken: Option<String>,
    stopped_at: Option<PathBuf>,
    /// Set from outside when a stop signal arrives.
    cancel: Arc<AtomicBool>,
}

/// How a copy-back ended.
#[derive(Debug, Default)]
pub struct Received {
    pub changes: Changes,
    /// Changes that did not come back (or deletions not made), and why.
    pub missed: Vec<(PathBuf, String)>,
    /// The whole archive broke off here: what followed did not come back.
    pub broken: Option<String>,
    /// The whole archive was stopped while this came back: neither it nor
    /// what followed came back.
    pub stopped_at: Option<PathBuf>,
    /// A stop signal ended it.
    pub interrupted: bool,
    /// Deletions not made because something else failed.
    pub held: usize,
}

impl Received {
    /// Whether everything the command changed came back (refusals aside).
    pub fn is_complete(&self) -> bool {
        self.missed.is_empty() && self.broken.is_none() && !self.interrupted
    }
}

/// A file or link that replaces a directory once the deletions emptied it.
struct Waiting {
    rel: PathBuf,
    now: Entry,
    staged: Staged,
}

impl Receiver {
    /// Starts a copy-back into `workspace` of what differs from `sent`.
    /// What is made is given to `owner` when set (sandbox runs as root for
    /// another user). Setting `cancel` stops it at the next entry.
    pub fn open(
        workspace: &Path,
        sent: Manifest,
        excludes: Excludes,
        protected: Vec<String>,
        owner: Option<(u32, u32)>,
        cancel: Arc<AtomicBool>,
    ) -> Result<Receiver> {
        let root = Root::open(workspace, owner)
            .with_context(|| format!("cannot open {}", workspace.display()))?;
        Ok(Receiver {
            workspace: workspace.to_path_buf(),
            root,
            sent,
            excludes,
            protected,
            wanted: None,
            delivered: BTreeSet::new(),
            seen: BTreeSet::new(),
            waiting: Vec::new(),
            dir_modes: Vec::new(),
            renamed_in: BTreeSet::new(),
            changes: Changes::default(),
            missed: Vec::new(),
            cut: None,
            broken: None,
            stopped_at: None,
            cancel,
        })
    }

    /// Takes what a listing of /work decided: its directories are made
    /// here, its refusals recorded, and only its wanted paths will be taken
    /// from the archives that follow.
    pub fn listed(&mut self, changed: Changed) {
        let Changed {
            dirs,
            wanted,
            refused,
            present,
        } = changed;
        self.seen = present;
        for (rel, why) in refused {
            self.refuse(rel, why);
        }
        for (rel, mode) in dirs {
            self.apply_counted(rel, Entry::Dir { mode }, &mut io::empty());
        }
        self.wanted = Some(wanted);
    }

    /// Reads one archive of `fetched` (relative to /work; `""` for /work
    /// itself), whose chunks arrive on `rx`, and applies what differs. An
    /// error sent down `rx` breaks the archive off there.
    pub fn archive(&mut self, fetched: &Path, rx: mpsc::Receiver<io::Result<Bytes>>) {
        let mut archive = tar::Archive::new(ChannelReader::new(rx));
        let entries = match archive.entries() {
            Ok(entries) => entries,
            Err(e) => return self.break_off(fetched, false, e),
        };
        for entry in entries {
            if self.is_cancelled() {
                return;
            }
            let mut entry = match entry {
                Ok(entry) => entry,
                Err(e) => return self.break_off(fetched, false, e),
            };
            let path = match entry.path() {
                Ok(path) => path.into_owned(),
                Err(e) => return self.break_off(fetched, false, e),
            };
            let Some(rel) = relative(&path, fetched) else {
                continue;
            };
            if !self.is_wanted(&rel) {
                continue;
            }
            if let Err(e) = self.entry(rel.clone(), &mut entry) {
                return self.break_off(&rel, true, e);
            }
        }
    }

    /// Whether the archive's `rel` is taken.
    fn is_wanted(&mut self, rel: &Path) -> bool {
        if rel.as_os_str().is_empty() {
            return false;
        }
        match &self.wanted {
            Some(wanted) => wanted.contains(rel) && self.delivered.insert(rel.to_path_buf()),
            // What was sent passed the patterns as what it was. Anything
            // else is matched as a directory as well: `build/` excludes a
            // directory, and the host may hold an excluded one where the
            // command made a file.
            None => self.sent.contains_key(rel) || !self.excludes.excludes(rel, true),
        }
    }

    /// Ends the copy-back: when everything came back, deletes what the
    /// command deleted and puts in place what waited for that; then sets
    /// directory modes and syncs the directories written to.
    pub fn finish(mut self) -> Received {
        let listed = self.wanted.is_some();
        if let Some(wanted) = self.wanted.take() {
            let why = match (&self.cut, self.is_cancelled()) {
                (_, true) => "stopped".to_string(),
                (Some(cut), false) => cut.clone(),
                (None, false) => "missing from the engine's archive".to_string(),
            };
            for rel in wanted.difference(&self.delivered) {
                self.missed.push((rel.clone(), why.clone()));
            }
        }
        let complete = self.missed.is_empty() && self.broken.is_none() && !self.is_cancelled();
        let mut held = 0;
        if complete {
            self.delete_unseen();
            self.place_waiting();
        } else if listed || (self.broken.is_none() && !self.is_cancelled()) {
            // The listing said it all, or the archive was read to its end:
            // what the command deleted is known, and was not deleted here.
            held = self.unseen().count();
        }
        for Waiting { rel, .. } in std::mem::take(&mut self.waiting) {
            let why = "held back with the deletions".to_string();
            self.missed.push((rel, why));
        }
        self.set_dir_modes();
        self.sync_dirs();
        Received {
            interrupted: self.is_cancelled(),
            changes: self.changes,
            missed: self.missed,
            broken: self.broken,
            stopped_at: self.stopped_at,
            held,
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The archive cannot be read past `rel`, the path in flight if
    /// `in_flight`, else the one fetched: the engine's stream broke, or a
    /// stop signal came.
    fn break_off(&mut self, rel: &Path, in_flight: bool, e: io::Error) {
        let cancelled = self.is_cancelled();
        if self.wanted.is_some() {
            // After a listing every change is named: the one in flight, and
            // (at the end) the wanted ones never delivered.
            let why = match cancelled {
                true => "stopped".to_string(),
                false => format!("the engine's archive broke off: {e}"),
            };
            if in_flight {
                self.missed.push((rel.to_path_buf(), why.clone()));
            }
            self.cut = Some(why);
        } else if cancelled {
            self.stopped_at = in_flight.then(|| rel.to_path_buf());
        } else {
            let at = self.workspace.join(rel);
            self.broken = Some(format!("{} ({e})", at.display()));
        }
    }

    /// Applies one entry of an archive, if it changed. `Err` only when the
    /// archive itself fails: what the host refuses is recorded.
    fn entry<R: io::Read>(&mut self, rel: PathBuf, entry: &mut tar::Entry<R>) -> io::Result<()> {
        // Only what was sent can be missing later: a new path need not be
        // remembered, whatever number of them the command made.
        if self.sent.contains_key(&rel) {
            self.seen.insert(rel.clone());
        }
        let now = match entry_now(entry) {
            Ok(now) => now,
            Err(why) => {
                self.refuse(rel, why);
                return Ok(());
            }
        };
        // The archive's header has whole seconds: a same-sized rewrite
        // within the second the file was sent with looks unchanged there. A
        // listing saw the nanoseconds and chose only what changed; without
        // one, the bytes tell.
        let mut read = None;
        let listed = self.wanted.is_some();
        match self.sent.get(&rel) {
            Some(sent) if !listed && sent.is_same_as(&now) => {
                match rewritten(&self.root, &rel, sent, entry)? {
                    Some(data) => read = Some(data),
                    None => return Ok(()),
                }
            }
            _ => {}
        }
        if is_protected(&rel, &self.protected) {
            self.refuse(rel, "protected");
            return Ok(());
        }
        let applied = match read {
            Some(data) => self.apply(&rel, &now, &mut data.as_slice()),
            None => self.apply(&rel, &now, entry),
        };
        match applied {
            Ok(None) => self.count(&rel, &now),
            Ok(Some(staged)) => self.waiting.push(Waiting { rel, now, staged }),
            Err(e) if is_archive_error(&e) || self.is_cancelled() => return Err(e),
            Err(e) => self.refuse_or_miss(rel, e, "write"),
        }
        Ok(())
    }

    /// `apply`, counted or recorded: for what a listing decided, where no
    /// archive is read.
    fn apply_counted(&mut self, rel: PathBuf, now: Entry, data: &mut impl io::Read) {
        match self.apply(&rel, &now, data) {
            Ok(None) => self.count(&rel, &now),
            Ok(Some(staged)) => self.waiting.push(Waiting { rel, now, staged }),
            Err(e) => self.refuse_or_miss(rel, e, "write"),
        }
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
            Entry::File {
                size, mtime, mode, ..
            } => self
                .root
                .stage_file(dir, name, data, *size, mode & PERMISSIONS, *mtime)?,
            Entry::Link { target, .. } => self.root.stage_link(dir, name, target)?,
        };
        if staged.is_blocked()? {
            return Ok(Some(staged));
        }
        staged.commit()?;
        self.renamed_in.insert(parent_of(rel));
        Ok(None)
    }

    /// What was sent and is no longer there, deepest first so a directory
    /// is empty by the time it goes; protected paths are left out.
    fn unseen(&self) -> impl Iterator<Item = (&PathBuf, &Entry)> {
        self.sent
            .iter()
            .rev()
            .filter(|(rel, _)| !self.seen.contains(*rel) && !is_protected(rel, &self.protected))
    }

    fn delete_unseen(&mut self) {
        let unseen: Vec<(PathBuf, bool)> = (self.sent.iter().rev())
            .filter(|(rel, _)| !self.seen.contains(*rel))
            .map(|(rel, entry)| (rel.clone(), matches!(entry, Entry::Dir { .. })))
            .collect();
        for (rel, is_dir) in unseen {
            if is_protected(&rel, &self.protected) {
                self.refuse(rel, "protected");
                continue;
            }
            match self.delete(&rel, is_dir) {
                Ok(true) => self.changes.deleted += 1,
                Ok(false) => {}
                Err(e) => self.refuse_or_miss(rel, e, "delete"),
            }
        }
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
    fn place_waiting(&mut self) {
        for Waiting { rel, now, staged } in std::mem::take(&mut self.waiting) {
            match staged.commit() {
                Ok(()) => {
                    self.renamed_in.insert(parent_of(&rel));
                    self.count(&rel, &now);
                }
                Err(e) => self.refuse_or_miss(rel, e, "write"),
            }
        }
    }

    fn set_dir_modes(&mut self) {
        for (rel, mode) in std::mem::take(&mut self.dir_modes).into_iter().rev() {
            if let Err(e) = self.root.set_mode(&rel, mode) {
                self.refuse_or_miss(rel, e, "set the mode of");
            }
        }
    }

    /// A rename is on disk once its directory is: without this a crash
    /// could bring back the old name (never a partial file: each file was
    /// synced before its rename).
    fn sync_dirs(&mut self) {
        for rel in std::mem::take(&mut self.renamed_in) {
            let synced = self
                .root
                .dir(&rel)
                .and_then(|dir| Ok(rustix::fs::fsync(dir)?));
            if let Err(e) = synced {
                tracing::debug!("cannot sync {}: {e}", self.workspace.join(&rel).display());
            }
        }
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
        match self.changes.refused.len() < super::REFUSALS_KEPT {
            true => self.changes.refused.push((rel, why)),
            false => self.changes.refused_more += 1,
        }
    }

    /// A path the host will not let us reach safely is refused; any other
    /// failure (a full disk) means it did not come back.
    fn refuse_or_miss(&mut self, rel: PathBuf, e: io::Error, what: &str) {
        match refusal(&e) {
            Some(why) => self.refuse(rel, why),
            None => {
                let why = match what {
                    "write" => os_error(&e),
                    _ => format!("cannot {what} it: {}", os_error(&e)),
                };
                self.missed.push((rel, why));
            }
        }
    }
}

fn parent_of(rel: &Path) -> PathBuf {
    rel.parent().unwrap_or(Path::new("")).to_path_buf()
}

/// Whether `e` came from reading the archive (the engine's stream broke, or
/// ended inside a file) rather than from the host's file system, whose
/// errors carry an errno.
fn is_archive_error(e: &io::Error) -> bool {
    e.raw_os_error().is_none()
}

/// An OS error as a person reads it: `no space left on device`.
fn os_error(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.to_string(),
    }
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
                .filter(|c| matches!(c, std::path::Component::Normal(_)))
                .collect();
            !p.as_os_str().is_empty() && rel.starts_with(&p)
        })
}

/// The data of the archive's `entry` at `rel`, whose header is `sent`, if
/// it is not what the host holds: the host's file still as it was sent (to
/// the nanosecond: else you changed it meanwhile, and it stays) and other
/// bytes. A file past [`COMPARED_UP_TO`] is taken as unchanged, as its
/// header says.
fn rewritten<R: io::Read>(
    root: &Root,
    rel: &Path,
    sent: &Entry,
    entry: &mut tar::Entry<R>,
) -> io::Result<Option<Vec<u8>>> {
    let &Entry::File {
        size, mtime, nanos, ..
    } = sent
    else {
        return Ok(None);
    };
    if size > COMPARED_UP_TO {
        return Ok(None);
    }
    let mut data = Vec::with_capacity(size as usize);
    io::Read::read_to_end(entry, &mut data)?;
    let host = root.parent(rel).and_then(|(dir, name)| {
        let (file, stat) = beneath::open_file(&dir, name)?;
        let as_sent = stat.st_mode & 0o170000 == 0o100000
            && (
                stat.st_size as u64,
                stat.st_mtime,
                stat.st_mtime_nsec as u32,
            ) == (size, mtime, nanos);
        let mut held = Vec::with_capacity(data.len());
        if as_sent {
            io::Read::read_to_end(&mut io::Read::take(file, size + 1), &mut held)?;
        }
        Ok(as_sent.then_some(held))
    });
    Ok(match host {
        Ok(Some(held)) if held != data => Some(data),
        _ => None,
    })
}

/// What the archive says one path is now; `Err` with why it is not copied.
fn entry_now<R: io::Read>(entry: &tar::Entry<R>) -> Result<Entry, &'static str> {
    let header = entry.header();
    let mode = header.mode().unwrap_or(0o644) & 0o7777;
    let mtime = header.mtime().map_or(0, |m| m as i64);
    match header.entry_type() {
        tar::EntryType::Directory => Ok(Entry::Dir { mode }),
        tar::EntryType::Regular | tar::EntryType::Continuous => Ok(Entry::File {
            size: header.size().unwrap_or(0),
            mtime,
            mode,
            nanos: 0,
        }),
        tar::EntryType::Symlink => match entry.link_name() {
            Ok(Some(target)) => Ok(Entry::Link {
                target: target.into_owned(),
                mtime,
            }),
            _ => Err("a link without a target"),
        },
        tar::EntryType::Link => Err("a hard link"),
        _ => Err("a special file"),
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

    /// A copy-back of one whole archive of /work arriving on `rx`; what did
    /// not come back is an error, as the run reports it.
    fn receive(
        workspace: &Path,
        sent: &Manifest,
        excludes: &Excludes,
        protected: &[String],
        owner: Option<(u32, u32)>,
        rx: mpsc::Receiver<io::Result<Bytes>>,
    ) -> Result<Changes> {
        let mut receiver = Receiver::open(
            workspace,
            sent.clone(),
            excludes.clone(),
            protected.to_vec(),
            owner,
            Arc::default(),
        )?;
        receiver.archive(Path::new(""), rx);
        let received = receiver.finish();
        if let Some(at) = received.broken {
            anyhow::bail!("the archive broke off at {at}");
        }
        if !received.missed.is_empty() {
            anyhow::bail!("did not come back: {:?}", received.missed);
        }
        Ok(received.changes)
    }

    /// `archive` in small chunks down a channel, as the engine sends it.
    fn feed(archive: Vec<u8>) -> mpsc::Receiver<io::Result<Bytes>> {
        let (tx, rx) = mpsc::channel(4);
        std::thread::spawn(move || {
            for chunk in archive.chunks(1000) {
                if tx.blocking_send(Ok(Bytes::copy_from_slice(chunk))).is_err() {
                    break;
                }
            }
        });
        rx
    }

    /// Runs `receive` over `archive`, fed in small chunks as the engine would.
    pub(in crate::sync) fn receive_bytes(
        workspace: &Path,
        sent: &Manifest,
        excludes: &Excludes,
        protected: &[String],
        owner: Option<(u32, u32)>,
        archive: Vec<u8>,
    ) -> Result<Changes> {
        receive(workspace, sent, excludes, protected, owner, feed(archive))
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
            nanos: 0,
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
                        mtime: 1_700_000_000,
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

    fn receiver(host: &Host, sent: &Manifest, cancel: Arc<AtomicBool>) -> Receiver {
        let excludes = Excludes::parse("").unwrap();
        Receiver::open(&host.ws, sent.clone(), excludes, Vec::new(), None, cancel).unwrap()
    }

    /// A stop signal while a file is on its way: the file in flight is
    /// rolled back, the host's original is whole, nothing is deleted, and
    /// nothing after it is applied.
    #[test]
    fn a_stop_rolls_back_the_file_in_flight() {
        let host = Host::new();
        fs::write(host.ws.join("big"), "original").unwrap();
        fs::write(host.ws.join("gone"), "deleted by the command").unwrap();
        let sent = sent(&[("big", file(8)), ("gone", file(22))]);
        let archive = Back::new()
            .file("big", 0o644, &[b'n'; 64 * 1024])
            .file("later", 0o644, b"after the stop")
            .bytes();
        let cancel = Arc::new(AtomicBool::new(false));
        let mut receiver = receiver(&host, &sent, cancel.clone());
        let (tx, rx) = mpsc::channel(4);
        let ws = host.ws.clone();
        let feeder = std::thread::spawn(move || {
            // The headers and a part of big's data; once big is being
            // written beside its place, the stop.
            tx.blocking_send(Ok(Bytes::from(archive[..2 * 512 + 5000].to_vec())))
                .unwrap();
            while leftovers(&ws).is_empty() {
                std::thread::yield_now();
            }
            cancel.store(true, Ordering::Relaxed);
            drop(tx);
        });

        receiver.archive(Path::new(""), rx);
        feeder.join().unwrap();
        let received = receiver.finish();

        assert!(received.interrupted, "{received:?}");
        assert!(received.broken.is_none(), "a stop is not a failure");
        assert_eq!(received.stopped_at, Some(PathBuf::from("big")));
        assert_eq!(fs::read_to_string(host.ws.join("big")).unwrap(), "original");
        assert!(host.ws.join("gone").exists(), "nothing deleted");
        assert!(!host.ws.join("later").exists());
        assert_eq!(leftovers(&host.ws), Vec::<String>::new());
        assert_eq!(received.changes, Changes::default());
    }

    /// After a listing: its directories are made, only the wanted paths are
    /// taken from archives of single paths, what it no longer holds is
    /// deleted, and a wanted path no archive brought is named.
    #[test]
    fn a_listing_decides_and_single_paths_come_back() {
        let host = Host::new();
        fs::create_dir(host.ws.join("src")).unwrap();
        fs::write(host.ws.join("src/a.txt"), "old").unwrap();
        fs::write(host.ws.join("src/same.txt"), "same").unwrap();
        fs::write(host.ws.join("gone"), "bye").unwrap();
        let sent = sent(&[
            ("gone", file(3)),
            ("src", dir()),
            ("src/a.txt", file(3)),
            ("src/same.txt", file(4)),
        ]);
        let present = ["src", "src/a.txt", "src/same.txt", "new"];
        let changed = Changed {
            dirs: vec![(PathBuf::from("new"), 0o750)],
            wanted: ["src/a.txt", "new/f"]
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            refused: vec![(PathBuf::from(".git/x"), "protected")],
            present: present.into_iter().map(PathBuf::from).collect(),
        };
        let mut receiver = receiver(&host, &sent, Arc::default());
        receiver.listed(changed);
        // The engine names a single path's entry by its own name; a path
        // the listing did not ask for is not taken.
        let mut one = tar::Builder::new(Vec::new());
        let mut header = Back::header(tar::EntryType::Regular, 0o644);
        header.set_size(3);
        one.append_data(&mut header.clone(), "a.txt", &b"new"[..])
            .unwrap();
        header.set_size(4);
        one.append_data(&mut header, "same.txt", &b"evil"[..])
            .unwrap();

        receiver.archive(Path::new("src/a.txt"), feed(one.into_inner().unwrap()));
        let received = receiver.finish();

        assert_eq!(
            fs::read_to_string(host.ws.join("src/a.txt")).unwrap(),
            "new"
        );
        assert_eq!(
            fs::read_to_string(host.ws.join("src/same.txt")).unwrap(),
            "same"
        );
        let new = fs::metadata(host.ws.join("new")).unwrap();
        assert_eq!(new.mode() & 0o777, 0o750);
        assert_eq!(
            received.missed,
            [(
                PathBuf::from("new/f"),
                "missing from the engine's archive".to_string()
            )]
        );
        assert!(
            host.ws.join("gone").exists(),
            "held: something did not come back"
        );
        assert_eq!(received.held, 1);
        assert_eq!(
            received.changes.refused,
            [(PathBuf::from(".git/x"), "protected")]
        );
        assert_eq!((received.changes.created, received.changes.changed), (1, 1));
    }

    /// A same-sized rewrite within the second the file was sent with: the
    /// archive's header is what was sent. A listing that saw the
    /// nanoseconds differ asks for it; without one, its bytes differ from
    /// the host's. Either way it comes back. The controls: the same bytes,
    /// and a host file changed meanwhile, stay as they are.
    #[test]
    fn a_rewrite_within_the_second_it_was_sent_with_comes_back() {
        let sent_at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        // Within the same second: only the nanoseconds tell.
        let meanwhile = sent_at + std::time::Duration::from_millis(500);
        let at_header = Entry::File {
            size: 3,
            mtime: 1_700_000_000,
            mode: 0o644,
            nanos: 0,
        };
        // Listed, the host's file and its mtime, what came back; then the
        // host's file after, and the files counted as changed.
        let cases = [
            (true, "old", sent_at, "new", "new", 1),
            (false, "old", sent_at, "new", "new", 1),
            (false, "old", sent_at, "old", "old", 0),
            (false, "own", meanwhile, "new", "own", 0),
        ];
        for (listed, host_has, mtime, back, after, changed) in cases {
            let host = Host::new();
            let path = host.ws.join("a.txt");
            fs::write(&path, host_has).unwrap();
            let file = fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(mtime).unwrap();
            let sent = sent(&[("a.txt", at_header.clone())]);
            let mut receiver = receiver(&host, &sent, Arc::default());
            if listed {
                receiver.listed(Changed {
                    wanted: [PathBuf::from("a.txt")].into(),
                    present: [PathBuf::from("a.txt")].into(),
                    ..Changed::default()
                });
            }
            let archive = Back::new().file("a.txt", 0o644, back.as_bytes()).bytes();

            receiver.archive(Path::new(""), feed(archive));
            let received = receiver.finish();

            let now = fs::read_to_string(&path).unwrap();
            assert_eq!(
                (now.as_str(), received.changes.changed),
                (after, changed),
                "listed {listed}, {host_has} on the host, {back} back"
            );
        }
    }

    /// The control for the one above: with everything delivered, what the
    /// listing no longer holds is deleted.
    #[test]
    fn a_complete_listing_deletes_what_it_no_longer_holds() {
        let host = Host::new();
        fs::write(host.ws.join("gone"), "bye").unwrap();
        fs::write(host.ws.join("kept"), "kept").unwrap();
        let sent = sent(&[("gone", file(3)), ("kept", file(4))]);
        let mut receiver = receiver(&host, &sent, Arc::default());
        receiver.listed(Changed {
            present: [PathBuf::from("kept")].into(),
            ..Changed::default()
        });

        let received = receiver.finish();

        assert!(received.is_complete(), "{received:?}");
        assert!(!host.ws.join("gone").exists());
        assert!(host.ws.join("kept").exists());
        assert_eq!(received.changes.deleted, 1);
    }

    #[test]
    fn refusals_past_those_kept_are_only_counted() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut receiver = Receiver::open(
            dir.path(),
            Manifest::new(),
            Excludes::parse("").unwrap(),
            Vec::new(),
            None,
            cancel,
        )
        .unwrap();
        for i in 0..super::super::REFUSALS_KEPT + 7 {
            receiver.refuse(PathBuf::from(format!("fifo{i}")), "a special file");
        }
        assert_eq!(receiver.changes.refused.len(), super::super::REFUSALS_KEPT);
        assert_eq!(receiver.changes.refused_more, 7);
    }
}
