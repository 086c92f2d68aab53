//! The way in: the workspace as a tar stream, walked in name order as
//! `.sandboxignore` allows (the `ignore` crate's walk, with every other
//! ignore file and filter off).
//!
//! The walk only names what to send. Every entry is read through `beneath`:
//! its directory opened from the workspace root without following a link
//! or leaving the tree, the entry itself without following a link either.
//! A link swapped in for a directory while the walk goes on (a concurrent
//! run with the workspace mounted can make one) is refused, never followed
//! out of the workspace; and what an entry is sent as (kind, mode, size,
//! time) is what the descriptor whose contents are sent says, not what an
//! earlier look at the path said.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bytes::Bytes;
use ignore::WalkBuilder;
use rustix::fs::{FileType, Stat};
use rustix::io::Errno;
use tokio::sync::mpsc;

use super::beneath::{self, Root};
use super::{Entry, Excludes, Manifest, CHUNK};

/// Mode bits sent: permissions with setuid, setgid and sticky, as stat
/// gives them (what comes back is stripped of the last three).
const MODE: u32 = 0o7777;

/// Writes the workspace as a tar stream into `tx` (run it where blocking is
/// allowed) and returns what it sent. Special files (sockets, devices) are
/// left out; symbolic links are sent as links, never followed.
pub fn send(
    workspace: &Path,
    excludes: &Excludes,
    tx: mpsc::Sender<Bytes>,
    progress: impl FnMut(u64),
) -> Result<Manifest> {
    let root = Root::open_to_read(workspace)
        .with_context(|| format!("cannot open {}", workspace.display()))?;
    let writer = ChannelWriter {
        tx,
        buf: Vec::with_capacity(CHUNK),
        progress,
    };
    let mut sender = Sender {
        root,
        parent: None,
        tar: tar::Builder::new(writer),
        manifest: Manifest::new(),
    };
    for found in walk(workspace, excludes) {
        let found = found.context("cannot read the workspace")?;
        let (Ok(rel), Some(kind)) = (found.path().strip_prefix(workspace), found.file_type())
        else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        sender
            .entry(rel, kind)
            .with_context(|| format!("cannot send {}", found.path().display()))?;
    }
    let mut writer = sender
        .tar
        .into_inner()
        .context("cannot finish the workspace archive")?;
    writer.flush().context("cannot send the workspace")?;
    Ok(sender.manifest)
}

/// The workspace's entries, parents first and siblings in name order, less
/// what `excludes` names (a directory excluded is not entered). Links are
/// listed, never followed.
pub(super) fn walk(workspace: &Path, excludes: &Excludes) -> ignore::Walk {
    let (root, excludes) = (workspace.to_path_buf(), excludes.clone());
    WalkBuilder::new(workspace)
        // Only `.sandboxignore` counts: no .gitignore, .ignore, git's global
        // or per-repository excludes, and hidden names are sent.
        .standard_filters(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |found| match found.path().strip_prefix(&root) {
            Ok(rel) if !rel.as_os_str().is_empty() => {
                let is_dir = found.file_type().is_some_and(|t| t.is_dir());
                !excludes.excludes(rel, is_dir)
            }
            _ => true,
        })
        .build()
}

/// The archive being written, and what went into it.
struct Sender<W: Write> {
    root: Root,
    /// The directory of the last file or link sent: its siblings follow.
    parent: Option<(PathBuf, OwnedFd)>,
    tar: tar::Builder<W>,
    manifest: Manifest,
}

impl<W: Write> Sender<W> {
    /// Sends `rel`, which the walk listed as `kind`.
    fn entry(&mut self, rel: &Path, kind: std::fs::FileType) -> io::Result<()> {
        let entry = if kind.is_dir() {
            let stat = rustix::fs::fstat(self.root.dir(rel)?)?;
            let mut header = header(tar::EntryType::Directory, &stat, 0);
            self.tar.append_data(&mut header, rel, io::empty())?;
            Entry::Dir {
                mode: stat.st_mode & MODE,
            }
        } else if kind.is_file() {
            let (dir, name) = self.parent(rel)?;
            let (file, stat) = beneath::open_file(dir, name)?;
            is_kind(&stat, FileType::RegularFile)?;
            let size = stat.st_size.max(0) as u64;
            let mut header = header(tar::EntryType::Regular, &stat, size);
            self.tar
                .append_data(&mut header, rel, Exactly { file, left: size })?;
            Entry::File {
                size,
                mtime: stat.st_mtime,
                mode: stat.st_mode & MODE,
                nanos: stat.st_mtime_nsec as u32,
            }
        } else if kind.is_symlink() {
            let (dir, name) = self.parent(rel)?;
            let stat = beneath::stat_at(dir, name)?;
            is_kind(&stat, FileType::Symlink)?;
            let target = beneath::read_link(dir, name)?;
            let mut header = header(tar::EntryType::Symlink, &stat, 0);
            self.tar.append_link(&mut header, rel, &target)?;
            Entry::Link {
                target,
                mtime: stat.st_mtime,
            }
        } else {
            return Ok(());
        };
        self.manifest.insert(rel.to_path_buf(), entry);
        Ok(())
    }

    /// The directory that holds `rel`, opened beneath the root (kept for
    /// the siblings that follow), and `rel`'s last name.
    fn parent<'a>(&mut self, rel: &'a Path) -> io::Result<(&OwnedFd, &'a OsStr)> {
        let name = rel.file_name().ok_or(Errno::INVAL)?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let (_, dir) = match self.parent.take() {
            Some((held, dir)) if held == parent => self.parent.insert((held, dir)),
            _ => self
                .parent
                .insert((parent.to_path_buf(), self.root.dir(parent)?)),
        };
        Ok((dir, name))
    }
}

/// An entry that changed kind between the walk and its opening.
fn is_kind(stat: &Stat, kind: FileType) -> io::Result<()> {
    match FileType::from_raw_mode(stat.st_mode) == kind {
        true => Ok(()),
        false => Err(io::Error::other("it changed while the workspace was sent")),
    }
}

/// A header as `tar` makes one from a file's metadata.
fn header(kind: tar::EntryType, stat: &Stat, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(stat.st_mode & MODE);
    header.set_uid(stat.st_uid.into());
    header.set_gid(stat.st_gid.into());
    header.set_mtime(stat.st_mtime.max(0) as u64);
    header.set_size(size);
    header
}

/// Exactly `left` bytes of a file, the size its header gives: what it grew
/// by after it was looked at is left out, and what it shrank by is made up
/// with zeros (as GNU tar does), so the archive stays well formed.
struct Exactly {
    file: File,
    left: u64,
}

impl Read for Exactly {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let max = usize::try_from(self.left).map_or(out.len(), |left| left.min(out.len()));
        let out = &mut out[..max];
        let n = match self.file.read(out)? {
            0 => {
                out.fill(0);
                max
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// A `Write` that sends what it is given as chunks down a channel.
struct ChannelWriter<F: FnMut(u64)> {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    progress: F,
}

impl<F: FnMut(u64)> Write for ChannelWriter<F> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        (self.progress)(chunk.len() as u64);
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the engine stopped reading"))
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    /// Sends `workspace` and returns the manifest and the archive's paths.
    fn sent(workspace: &Path, patterns: &str) -> (Manifest, Vec<String>) {
        let excludes = Excludes::parse(patterns).unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let sender = {
            let workspace = workspace.to_path_buf();
            std::thread::spawn(move || send(&workspace, &excludes, tx, |_| {}))
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = rx.blocking_recv() {
            bytes.extend_from_slice(&chunk);
        }
        let manifest = sender.join().unwrap().unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let paths = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        (manifest, paths)
    }

    #[test]
    fn only_sandboxignore_counts_and_links_are_sent_as_links() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "not yours").unwrap();
        let ws = tempfile::tempdir().unwrap();
        let ws = ws.path();
        fs::write(ws.join(".gitignore"), "*.txt\n").unwrap();
        fs::write(ws.join(".ignore"), "*.txt\n").unwrap();
        fs::write(ws.join("a.txt"), "sent").unwrap();
        fs::create_dir_all(ws.join("build/deep")).unwrap();
        fs::write(ws.join("build/deep/x.o"), "").unwrap();
        fs::write(ws.join("src"), "a file named like an excluded directory").unwrap();
        symlink(outside.path(), ws.join("out")).unwrap();

        let (manifest, paths) = sent(ws, "build/\nsrc/\n");

        assert_eq!(
            paths,
            [".gitignore", ".ignore", "a.txt", "out", "src"],
            "in name order, hidden names too"
        );
        let Entry::Link { target, mtime } = &manifest[Path::new("out")] else {
            panic!("{manifest:?}");
        };
        assert_eq!(target, outside.path());
        let link = fs::symlink_metadata(ws.join("out")).unwrap();
        assert_eq!(*mtime, std::os::unix::fs::MetadataExt::mtime(&link));
        assert!(matches!(
            manifest[Path::new("a.txt")],
            Entry::File { size: 4, .. }
        ));
    }

    /// The walk listed a directory; a link to elsewhere took its place
    /// before its files were read: they are refused, not read through it.
    #[test]
    fn a_link_swapped_in_for_a_directory_is_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("f"), "not yours").unwrap();
        let ws = tempfile::tempdir().unwrap();
        let ws = ws.path();
        symlink(outside.path(), ws.join("d")).unwrap();
        let mut sender = Sender {
            root: Root::open_to_read(ws).unwrap(),
            parent: None,
            tar: tar::Builder::new(Vec::new()),
            manifest: Manifest::new(),
        };
        let file = fs::symlink_metadata(outside.path().join("f")).unwrap();
        let dir = fs::symlink_metadata(outside.path()).unwrap();

        let err = sender
            .entry(Path::new("d/f"), file.file_type())
            .unwrap_err();
        assert_eq!(Errno::from_io_error(&err), Some(Errno::LOOP), "{err}");
        let err = sender.entry(Path::new("d"), dir.file_type()).unwrap_err();
        assert_eq!(Errno::from_io_error(&err), Some(Errno::LOOP), "{err}");
        assert!(sender.manifest.is_empty());
        let archive = sender.tar.into_inner().unwrap();
        assert!(archive.iter().all(|&b| b == 0), "only the archive's end");
    }

    #[test]
    fn a_file_is_sent_at_the_size_it_was_looked_at() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "0123456789").unwrap();
        let mut out = Vec::new();
        let file = File::open(&path).unwrap();
        Exactly { file, left: 4 }.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"0123", "grown: what was added is left out");
        out.clear();
        let file = File::open(&path).unwrap();
        Exactly { file, left: 12 }.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"0123456789\0\0", "shrunk: made up with zeros");
    }
}
