//! The workspace for an engine that cannot see this machine's files (a
//! remote host, or `--copy-workspace`): sent into the container as a tar
//! stream before the command (`send.rs`), and what the command changed
//! brought back after it (`receive.rs`). Both go through `beneath.rs`.
//!
//! Both directions stream: a thread walks the tree into `tar` and the chunks
//! flow to the engine as they are made; the archive that comes back is read
//! entry by entry. Nothing holds the tree in memory.
//!
//! What was sent is remembered (size, mtime, mode or link target of every
//! entry), so coming back only what differs is written and only what the
//! command deleted is deleted. Excluded paths are never sent and never
//! touched; protected paths (`.git`, `.sandbox.yml`, ...) are never written
//! back. A listing of /work made after the command (`listing.rs`) says what
//! differs before anything is fetched, so only that travels.

pub mod beneath;
pub mod estimate;
mod listing;
mod receive;
mod send;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use tokio::sync::mpsc;

pub use listing::{
    archive_size, changed, fetch_units, parse as parse_listing, Changed, Listing, LISTING_SCRIPT,
};
pub use receive::{is_protected, Received, Receiver};
pub use send::send;

/// The exclude file at the workspace root, in gitignore's syntax.
pub const IGNORE_FILE: &str = ".sandboxignore";
const CHUNK: usize = 256 * 1024;

/// Paths never sent and never touched: `.sandboxignore` lines (`*.log`,
/// `build/`, `/dist`), read as git reads a `.gitignore`.
#[derive(Debug, Clone)]
pub struct Excludes {
    patterns: Gitignore,
}

impl Excludes {
    /// Reads `.sandboxignore` from `workspace`, if there is one. Only that
    /// file counts: not `.gitignore`, `.ignore` or git's global excludes.
    pub fn load(workspace: &Path) -> Result<Excludes> {
        let path = workspace.join(IGNORE_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => Excludes::parse(&text).with_context(|| format!("in {}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Excludes::parse(""),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// gitignore's rules without negation: a pattern without a `/` (but a
    /// trailing one) matches at any depth; a leading `/` or one inside
    /// anchors it to the root; a trailing `/` matches directories only
    /// (and so all below them).
    pub fn parse(text: &str) -> Result<Excludes> {
        // Paths are matched relative to the workspace root.
        let mut patterns = GitignoreBuilder::new(".");
        for (i, line) in text.lines().enumerate() {
            // The README promises `!` is refused: what an earlier line
            // excluded stays excluded. `\!` is a plain `!`, as in git.
            if line.starts_with('!') {
                bail!("line {}: negation (!) is not supported", i + 1);
            }
            patterns
                .add_line(None, line)
                .with_context(|| format!("line {}: bad pattern", i + 1))?;
        }
        Ok(Excludes {
            patterns: patterns
                .build()
                .context("cannot compile the exclude patterns")?,
        })
    }

    /// Whether `relative` (to the workspace root; a directory if `is_dir`)
    /// is excluded, by its own name or by a directory above it.
    pub fn excludes(&self, relative: &Path, is_dir: bool) -> bool {
        // Not beneath the root (never asked): left alone, and the matcher
        // would panic on it.
        if relative.has_root() {
            return true;
        }
        self.patterns
            .matched_path_or_any_parents(relative, is_dir)
            .is_ignore()
    }
}

/// What one entry looked like when it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        mode: u32,
    },
    File {
        size: u64,
        mtime: i64,
        mode: u32,
        /// The nanoseconds of the host's mtime when it was sent (0 from an
        /// archive, whose headers have whole seconds).
        nanos: u32,
    },
    /// The link's own mtime, which the engine keeps when it unpacks it.
    Link {
        target: PathBuf,
        mtime: i64,
    },
}

impl Entry {
    /// Whether `now` (from the archive that came back) is what was sent, as
    /// far as its header tells. A link is its target: an engine that does
    /// not keep a link's mtime must not make every link look changed.
    pub fn is_same_as(&self, now: &Entry) -> bool {
        match (self, now) {
            (Entry::Link { target, .. }, Entry::Link { target: now, .. }) => target == now,
            (
                Entry::File {
                    size, mtime, mode, ..
                },
                Entry::File {
                    size: s,
                    mtime: m,
                    mode: o,
                    ..
                },
            ) => (size, mtime, mode) == (s, m, o),
            _ => self == now,
        }
    }
}

/// Every entry sent, by path relative to the workspace.
pub type Manifest = BTreeMap<PathBuf, Entry>;

/// What came back, for the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    pub created: usize,
    pub changed: usize,
    pub deleted: usize,
    /// Paths the command changed that were not written back, and why: at
    /// most [`REFUSALS_KEPT`]; the rest are only counted.
    pub refused: Vec<(PathBuf, &'static str)>,
    /// Refusals past those kept.
    pub refused_more: usize,
    pub bytes: u64,
}

/// Refused paths kept for the summary line: a command can make a million
/// special files, and each name may be 4 KiB of the host's memory.
pub const REFUSALS_KEPT: usize = 1000;

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.created + self.changed + self.deleted == 0
            && self.refused.is_empty()
            && self.refused_more == 0
    }
}

/// A one-entry archive that gives the root of the directory it is unpacked
/// in to `owner`, with the workspace's permissions: without it /work in a
/// fresh volume belongs to root, and the command (running as the user)
/// could not create or delete anything at its top.
///
/// The entry is named `/`: the engine's unpacker (moby `pkg/archive`
/// `Unpack`) skips a root entry named `.` or `./` when the directory exists,
/// but applies one named `/` (its "is-root" case) to the directory itself.
pub fn root_entry(workspace: &Path, (uid, gid): (u32, u32)) -> Result<Bytes> {
    let meta =
        fs::metadata(workspace).with_context(|| format!("cannot read {}", workspace.display()))?;
    let mut header = tar::Header::new_ustar();
    // Set by hand: the tar crate refuses an absolute name, rightly for
    // anything but this one entry.
    header.as_old_mut().name[0] = b'/';
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(meta.mode() & 0o777);
    header.set_uid(uid.into());
    header.set_gid(gid.into());
    header.set_mtime(meta.mtime().max(0) as u64);
    header.set_size(0);
    header.set_cksum();
    let mut tar = tar::Builder::new(Vec::new());
    tar.append(&header, io::empty())
        .context("cannot make the workspace's root entry")?;
    let archive = tar
        .into_inner()
        .context("cannot make the workspace's root entry")?;
    Ok(Bytes::from(archive))
}

/// A path of the archive of `fetched` (relative to /work; `""` for /work
/// itself) as a path relative to the workspace: the archive names its
/// entries from the fetched path's own name (`work/a/b` for /work,
/// `b` for /work/a/b). `None` for anything that would leave the workspace.
fn relative(path: &Path, fetched: &Path) -> Option<PathBuf> {
    let top = fetched.file_name().unwrap_or(std::ffi::OsStr::new("work"));
    let mut parts = path.components();
    match parts.next() {
        Some(Component::Normal(first)) if first == top => {}
        _ => return None,
    }
    let mut rel = fetched.to_path_buf();
    for part in parts {
        match part {
            Component::Normal(p) => rel.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(rel)
}

/// A `Read` over the chunks that arrive down a channel. An error sent down
/// it is the reader's error: a stream cut short must not look like its end.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> ChannelReader {
        ChannelReader {
            rx,
            chunk: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk?,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len());
        out[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(patterns: &str, path: &str) -> bool {
        let is_dir = path.ends_with('/');
        Excludes::parse(patterns)
            .unwrap()
            .excludes(Path::new(path.trim_end_matches('/')), is_dir)
    }

    #[test]
    fn excludes_read_like_gitignore() {
        assert!(excluded("*.log\n", "a.log"));
        assert!(excluded("*.log\n", "deep/down/a.log"));
        assert!(excluded("node_modules/\n", "web/node_modules/x/y.js"));
        assert!(excluded("/build\n", "build/out.o"));
        assert!(
            !excluded("/build\n", "src/build/out.o"),
            "anchored to the root"
        );
        assert!(excluded("docs/tmp\n", "docs/tmp/a"));
        assert!(!excluded("# *.rs\n\n", "main.rs"));
        assert!(Excludes::parse("!keep.log\n").is_err());
        assert!(excluded("target/\n", "target/"));
        assert!(
            !excluded("target/\n", "target"),
            "a trailing / names directories only"
        );
        assert!(excluded("\\!keep.log\n", "!keep.log"), "an escaped !");
        assert!(!excluded("", "a"));
    }

    #[test]
    fn paths_that_leave_the_workspace_are_refused() {
        let root = Path::new("");
        assert_eq!(
            relative(Path::new("work/a/b"), root),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(relative(Path::new("work"), root), Some(PathBuf::new()));
        assert_eq!(relative(Path::new("work/../etc/passwd"), root), None);
        assert_eq!(relative(Path::new("/etc/passwd"), root), None);
        assert_eq!(relative(Path::new("other/a"), root), None);
        let one = Path::new("src/a.txt");
        assert_eq!(relative(Path::new("a.txt"), one), Some(one.to_path_buf()));
        assert_eq!(relative(Path::new("work/a.txt"), one), None);
        let dir = Path::new("src/d");
        assert_eq!(
            relative(Path::new("d/x"), dir),
            Some(PathBuf::from("src/d/x"))
        );
        assert_eq!(relative(Path::new("d/../../x"), dir), None);
    }

    #[test]
    fn the_root_entry_is_named_slash_and_belongs_to_the_user() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o2750),
        )
        .unwrap();
        let bytes = root_entry(dir.path(), (4242, 4343)).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let entries: Vec<_> = archive.entries().unwrap().map(|e| e.unwrap()).collect();
        assert_eq!(entries.len(), 1);
        let header = entries[0].header();
        assert_eq!(&header.as_old().name[..2], b"/\0");
        assert_eq!(header.entry_type(), tar::EntryType::Directory);
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (4242, 4343));
        assert_eq!(header.mode().unwrap(), 0o750, "no setgid");
    }

    /// The whole round trip without an engine: send a tree, change the
    /// archive as a command would, receive it back.
    #[test]
    fn only_what_changed_comes_back() {
        let base = std::env::temp_dir().join(format!("sandbox-sync-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let host = base.join("host");
        fs::create_dir_all(host.join("src")).unwrap();
        fs::create_dir_all(host.join(".git/hooks")).unwrap();
        fs::write(host.join("src/keep.txt"), "same").unwrap();
        fs::write(host.join("src/edit.txt"), "old").unwrap();
        fs::write(host.join("gone.txt"), "bye").unwrap();
        fs::write(host.join("big.log"), "excluded").unwrap();
        let excludes = Excludes::parse("*.log\n").unwrap();

        let (tx, mut rx) = mpsc::channel(4);
        let sender = {
            let host = host.clone();
            let excludes = excludes.clone();
            std::thread::spawn(move || send(&host, &excludes, tx, |_| {}))
        };
        let mut sent_bytes = Vec::new();
        while let Some(chunk) = rx.blocking_recv() {
            sent_bytes.extend_from_slice(&chunk);
        }
        let manifest = sender.join().unwrap().unwrap();
        assert!(manifest.contains_key(Path::new("src/keep.txt")));
        assert!(!manifest.contains_key(Path::new("big.log")), "never sent");

        // What the engine would send back: the tree under work/, changed.
        let mut back = tar::Builder::new(Vec::new());
        let mut archive = tar::Archive::new(&sent_bytes[..]);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().into_owned();
            if path == Path::new("gone.txt") {
                continue;
            }
            let mut header = entry.header().clone();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            if path == Path::new("src/edit.txt") {
                data = b"new contents".to_vec();
                header.set_size(data.len() as u64);
                header.set_mtime(header.mtime().unwrap() + 10);
            }
            back.append_data(&mut header, Path::new("work").join(&path), &data[..])
                .unwrap();
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(4);
        header.set_mode(0o755);
        header.set_mtime(1_700_000_000);
        back.append_data(&mut header, "work/src/new.sh", &b"#!/x"[..])
            .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(4);
        header.set_mode(0o755);
        back.append_data(&mut header, "work/.git/hooks/pre-commit", &b"evil"[..])
            .unwrap();
        let back = back.into_inner().unwrap();

        let protected = vec![".git/hooks".to_string()];
        let changes =
            receive::tests::receive_bytes(&host, &manifest, &excludes, &protected, None, back)
                .unwrap();

        assert_eq!(
            (changes.created, changes.changed, changes.deleted),
            (1, 1, 1),
            "{changes:?}"
        );
        assert_eq!(
            changes.refused,
            [(PathBuf::from(".git/hooks/pre-commit"), "protected")]
        );
        assert_eq!(
            fs::read_to_string(host.join("src/edit.txt")).unwrap(),
            "new contents"
        );
        assert_eq!(
            fs::read_to_string(host.join("src/keep.txt")).unwrap(),
            "same"
        );
        assert!(!host.join("gone.txt").exists());
        assert_eq!(
            fs::read_to_string(host.join("big.log")).unwrap(),
            "excluded",
            "untouched"
        );
        assert!(!host.join(".git/hooks/pre-commit").exists());
        let new = fs::metadata(host.join("src/new.sh")).unwrap();
        assert_eq!(new.mode() & 0o777, 0o755);
        assert_eq!(new.mtime(), 1_700_000_000);
        fs::remove_dir_all(&base).unwrap();
    }
}
