//! The file tools: `read_file`, `write_file`, `list_dir`, `search`. They
//! run on the host, as the server's user, over a workspace whose contents a
//! hostile command may have written: links to `~/.ssh`, a directory swapped
//! for a link between two calls, FIFOs. So no path is ever checked and then
//! used: every directory is opened beneath the workspace's descriptor with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | ...)`, every file with
//! `O_NOFOLLOW` on that directory's descriptor (`sync/beneath.rs`), and what
//! a file is, is asked of the open descriptor. A link anywhere on the way is
//! refused, never followed; links are listed as links.
//!
//! `write_file` refuses what a run's container sees read-only (the
//! protected names, what git's configuration names, `.git` at any depth),
//! and everything when the workspace is read-only: the host-side tool is no
//! way round the container's protections. Files are written beside their
//! place and renamed in, so a file is whole or untouched.

use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rmcp::schemars::JsonSchema;
use rustix::fs::{FileType, Mode};
use rustix::io::Errno;
use serde::Deserialize;

use rmcp::model::ErrorData;

use super::paths::{below_root, relative};
use super::FAILED;
use crate::mcp::workspace::Workspace;
use crate::sync::beneath::{self, Root};

/// The most `read_file` returns in one call; `offset` pages through more.
pub const READ_CAP: u64 = 256 * 1024;
/// The largest file `write_file` writes.
pub const WRITE_CAP: usize = 8 << 20;
/// Entries `list_dir` returns.
const LIST_CAP: usize = 2000;
/// `search`'s bounds: matches returned, files looked at, bytes read of one
/// file, characters of a matching line shown.
const MATCH_CAP: usize = 1000;
const FILE_CAP: usize = 20_000;
const SEARCHED_FILE_CAP: u64 = 1 << 20;
const LINE_CAP: usize = 300;
/// How many directories down `search` goes.
const MAX_DEPTH: usize = 128;

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    /// The file, relative to the workspace root (or as /work/... inside a run).
    pub path: String,
    /// Byte offset to start at, to page through a file larger than one read.
    #[serde(default)]
    pub offset: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct WriteParams {
    /// The file, relative to the workspace root; missing directories are created.
    pub path: String,
    /// The whole new content (UTF-8 text), replacing what the file held.
    pub content: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// The directory, relative to the workspace root; default the root.
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// A regular expression (Rust syntax, as ripgrep's), matched line by line.
    pub pattern: String,
    /// Where to look, relative to the workspace root; default the root.
    #[serde(default)]
    pub path: Option<String>,
    /// Only files whose name matches this glob ("*.rs", "test_*.py").
    #[serde(default)]
    pub glob: Option<String>,
    /// Match letters of either case.
    #[serde(default)]
    pub ignore_case: bool,
    /// Stop after this many matching lines (default 100, at most 1000).
    #[serde(default)]
    pub max_results: Option<usize>,
}

/// `read_file`: the text at `offset`, at most [`READ_CAP`] bytes, and what
/// is left after it.
pub fn read(workspace: &Workspace, params: &ReadParams) -> Result<String, ErrorData> {
    let rel = below_root(&params.path)?;
    read_at(workspace, &rel, params.offset).map_err(failed)
}

fn read_at(workspace: &Workspace, rel: &Path, offset: u64) -> Result<String> {
    let root = Root::open_to_read(&workspace.dir).context("cannot open the workspace")?;
    let (mut file, size) = open_regular(&root, rel)?;
    file.seek(SeekFrom::Start(offset))
        .with_context(|| format!("cannot read {}", rel.display()))?;
    let mut bytes = Vec::new();
    file.take(READ_CAP)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", rel.display()))?;
    let end = offset + bytes.len() as u64;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if bytes.contains(&0) {
        bail!(
            "{} looks binary ({size} bytes, NUL bytes in it): use `run` with a tool such as \
             `od` or `base64` to look at it",
            rel.display()
        );
    }
    if end < size {
        text.push_str(&format!(
            "\n[sandbox: {size} bytes in all; read again with offset {end} for the rest]"
        ));
    }
    Ok(text)
}

/// `write_file`: `content` as the whole file, in one step.
pub fn write(workspace: &Workspace, params: &WriteParams) -> Result<String, ErrorData> {
    let rel = below_root(&params.path)?;
    if params.content.len() > WRITE_CAP {
        return Err(ErrorData::invalid_params(
            format!(
                "the content is {} bytes; write_file takes at most {WRITE_CAP}",
                params.content.len()
            ),
            None,
        ));
    }
    write_at(workspace, &rel, params.content.as_bytes()).map_err(failed)
}

fn write_at(workspace: &Workspace, rel: &Path, data: &[u8]) -> Result<String> {
    let config = workspace.config()?;
    if config.security.read_only_workspace {
        bail!("the workspace is read-only (security.read_only_workspace): nothing can be written");
    }
    let protected = workspace
        .protected(&config)
        .context("cannot tell which paths are protected, so nothing is written")?;
    if crate::sync::is_protected(rel, &protected) {
        bail!(
            "{} is protected: a run's container sees it read-only (security.protected_paths, \
             `.git`, or a file git's configuration names), and so does this tool — change it \
             on the host yourself",
            rel.display()
        );
    }
    let root = Root::open(&workspace.dir, None).context("cannot open the workspace")?;
    let name = rel.file_name().context("no file name")?;
    let dir = make_parents(&root, rel.parent().unwrap_or(Path::new("")))?;
    let mode = match beneath::stat_at(&dir, name) {
        Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => stat.st_mode & 0o777,
            FileType::Symlink => bail!(
                "{} is a symbolic link: write_file does not write through links — remove it \
                 first with `run`, or write the file it points to",
                rel.display()
            ),
            FileType::Directory => bail!("{} is a directory", rel.display()),
            _ => bail!("{} is not a regular file", rel.display()),
        },
        Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => 0o644,
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", rel.display())),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let staged = root
        .stage_file(dir, name, &mut &data[..], data.len() as u64, mode, now)
        .with_context(|| format!("cannot write {}", rel.display()))?;
    staged
        .commit()
        .with_context(|| format!("cannot put {} in place", rel.display()))?;
    Ok(format!("wrote {} ({} bytes)", rel.display(), data.len()))
}

/// `list_dir`: one line per entry, links shown as links.
pub fn list(workspace: &Workspace, params: &ListParams) -> Result<String, ErrorData> {
    let rel = relative(params.path.as_deref().unwrap_or(""))?;
    list_at(workspace, &rel).map_err(failed)
}

fn list_at(workspace: &Workspace, rel: &Path) -> Result<String> {
    let root = Root::open_to_read(&workspace.dir).context("cannot open the workspace")?;
    let dir = root.dir(rel).map_err(|e| opened(e, rel))?;
    let mut lines = Vec::new();
    let mut more = 0;
    for (name, kind) in entries(&dir)? {
        if lines.len() == LIST_CAP {
            more += 1;
            continue;
        }
        let shown = String::from_utf8_lossy(name.as_bytes());
        let line = match kind {
            FileType::Directory => format!("{shown}/"),
            FileType::RegularFile => {
                let size = beneath::stat_at(&dir, &name).map_or(0, |s| s.st_size);
                format!("{shown}  ({size} bytes)")
            }
            FileType::Symlink => {
                let target = beneath::read_link(&dir, &name).unwrap_or_default();
                format!("{shown} -> {}  (link, not followed)", target.display())
            }
            _ => format!("{shown}  (special file)"),
        };
        lines.push(line);
    }
    let shown = if rel.as_os_str().is_empty() {
        ".".to_string()
    } else {
        rel.display().to_string()
    };
    let mut text = format!("{shown}: {} entries\n", lines.len() + more);
    text.push_str(&lines.join("\n"));
    if more > 0 {
        text.push_str(&format!("\n[sandbox: {more} more entries not shown]"));
    }
    Ok(text)
}

/// `search`: `path:line: text` for each matching line, in name order.
pub fn search(workspace: &Workspace, params: &SearchParams) -> Result<String, ErrorData> {
    let rel = relative(params.path.as_deref().unwrap_or(""))?;
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        ErrorData::invalid_params(format!("{what}: {e}"), None)
    };
    let pattern = regex::bytes::RegexBuilder::new(&params.pattern)
        .case_insensitive(params.ignore_case)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| invalid("the pattern is not a valid regular expression", &e))?;
    let glob = match &params.glob {
        Some(glob) => Some(
            globset::Glob::new(glob)
                .map_err(|e| invalid("the glob is not valid", &e))?
                .compile_matcher(),
        ),
        None => None,
    };
    let max = params.max_results.unwrap_or(100).clamp(1, MATCH_CAP);
    let mut search = Search {
        pattern,
        glob,
        max,
        found: Vec::new(),
        files: 0,
        skipped: 0,
        too_deep: 0,
    };
    search.from(workspace, &rel).map_err(failed)?;
    let mut text = match search.found.is_empty() {
        true => "no match".to_string(),
        false => search.found.join("\n"),
    };
    if search.found.len() == max {
        text.push_str(&format!(
            "\n[sandbox: stopped at {max} matches; narrow the path or pattern]"
        ));
    }
    if search.files >= FILE_CAP {
        text.push_str(&format!(
            "\n[sandbox: stopped after {FILE_CAP} files; narrow the path]"
        ));
    }
    if search.skipped > 0 {
        text.push_str(&format!(
            "\n[sandbox: {} files over {SEARCHED_FILE_CAP} bytes not searched]",
            search.skipped
        ));
    }
    if search.too_deep > 0 {
        text.push_str(&format!(
            "\n[sandbox: {} directories more than {MAX_DEPTH} levels down not searched]",
            search.too_deep
        ));
    }
    Ok(text)
}

struct Search {
    pattern: regex::bytes::Regex,
    glob: Option<globset::GlobMatcher>,
    max: usize,
    found: Vec<String>,
    files: usize,
    skipped: usize,
    too_deep: usize,
}

impl Search {
    fn from(&mut self, workspace: &Workspace, rel: &Path) -> Result<()> {
        let root = Root::open_to_read(&workspace.dir).context("cannot open the workspace")?;
        let start = root.dir(rel).map_err(|e| opened(e, rel))?;
        self.dir(start, rel)
    }

    fn is_done(&self) -> bool {
        self.found.len() >= self.max || self.files >= FILE_CAP
    }

    /// Searches the directory `dir` (at `rel`), depth first in name order,
    /// at most [`MAX_DEPTH`] directories down.
    /// Each entry is opened from `dir`'s descriptor without following a
    /// link; links are passed over, and so is git's own directory.
    fn dir(&mut self, dir: OwnedFd, rel: &Path) -> Result<()> {
        for (name, kind) in entries(&dir)? {
            if self.is_done() {
                break;
            }
            let path = rel.join(&name);
            match kind {
                // Deeper than anyone's source tree: a tree made to be deep
                // would hold a descriptor a level, or end the thread's stack.
                FileType::Directory if rel.components().count() >= MAX_DEPTH => {
                    self.too_deep += 1;
                }
                FileType::Directory if name.as_bytes() != b".git" => {
                    let flags = rustix::fs::OFlags::RDONLY
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::NOFOLLOW
                        | rustix::fs::OFlags::CLOEXEC;
                    // Gone or swapped for a link since the listing: passed over.
                    if let Ok(sub) = rustix::fs::openat(&dir, &name, flags, Mode::empty()) {
                        self.dir(sub, &path)?;
                    }
                }
                FileType::RegularFile => {
                    let wanted = self.glob.as_ref().is_none_or(|g| g.is_match(&name));
                    if wanted {
                        self.file(&dir, &name, &path);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn file(&mut self, dir: &OwnedFd, name: &OsStr, path: &Path) {
        let Ok((file, stat)) = beneath::open_file(dir, name) else {
            return;
        };
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return;
        }
        self.files += 1;
        if stat.st_size as u64 > SEARCHED_FILE_CAP {
            self.skipped += 1;
            return;
        }
        let mut bytes = Vec::new();
        if file
            .take(SEARCHED_FILE_CAP)
            .read_to_end(&mut bytes)
            .is_err()
            || bytes.contains(&0)
        {
            return;
        }
        for (number, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if self.found.len() >= self.max {
                return;
            }
            if self.pattern.is_match(line) {
                let text = String::from_utf8_lossy(line);
                let text: String = text.trim_end_matches('\r').chars().take(LINE_CAP).collect();
                self.found
                    .push(format!("{}:{}: {text}", path.display(), number + 1));
            }
        }
    }
}

/// The names in `dir` and what each is (a link as a link), in name order.
fn entries(dir: &OwnedFd) -> Result<Vec<(std::ffi::OsString, FileType)>> {
    let mut all = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir).context("cannot read the directory")? {
        let entry = entry.context("cannot read the directory")?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string();
        if name == "." || name == ".." {
            continue;
        }
        // Some file systems leave the kind out of the listing.
        let kind = match entry.file_type() {
            FileType::Unknown => beneath::stat_at(dir, &name)
                .map_or(FileType::Unknown, |s| FileType::from_raw_mode(s.st_mode)),
            kind => kind,
        };
        all.push((name, kind));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(all)
}

/// The regular file at `rel`, open, and its size: a link at any step is
/// refused, and a FIFO does not make the call wait.
fn open_regular(root: &Root, rel: &Path) -> Result<(std::fs::File, u64)> {
    let (dir, name) = root.parent(rel).map_err(|e| opened(e, rel))?;
    let (file, stat) = beneath::open_file(&dir, name).map_err(|e| opened(e, rel))?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => Ok((file, stat.st_size as u64)),
        FileType::Directory => bail!("{} is a directory: use list_dir", rel.display()),
        _ => bail!("{} is not a regular file", rel.display()),
    }
}

/// The directory `rel`, made where missing, one name at a time from the
/// root: an existing name must be a directory, never a link to one.
fn make_parents(root: &Root, rel: &Path) -> Result<OwnedFd> {
    match root.dir(rel) {
        Ok(dir) => return Ok(dir),
        Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {}
        Err(e) => return Err(opened(e, rel)),
    }
    let mut made = PathBuf::new();
    for part in rel.components() {
        let parent = root.dir(&made).map_err(|e| opened(e, &made))?;
        made.push(part);
        match rustix::fs::mkdirat(&parent, part.as_os_str(), Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => {
                return Err(std::io::Error::from(e))
                    .with_context(|| format!("cannot create {}", made.display()))
            }
        }
    }
    root.dir(rel).map_err(|e| opened(e, rel))
}

/// An open that failed, in words: a link or a mount on the way is named as
/// the reason.
fn opened(error: std::io::Error, rel: &Path) -> anyhow::Error {
    let why = match Errno::from_io_error(&error) {
        Some(Errno::LOOP) => {
            "a symbolic link is on the way, and the file tools never follow one".to_string()
        }
        Some(Errno::XDEV) => "it lies across a mount point".to_string(),
        Some(Errno::NOENT) => "no such file or directory".to_string(),
        Some(Errno::NOTDIR) => "a part of the path is not a directory".to_string(),
        _ => error.to_string(),
    };
    anyhow::anyhow!("{}: {why}", shown(rel))
}

fn shown(rel: &Path) -> String {
    match rel.as_os_str().is_empty() {
        true => ".".to_string(),
        false => crate::ui::sanitize(&rel.display().to_string()),
    }
}

/// What the tool could not do, in sandbox's one-line form (without its
/// `sandbox: ` prefix: the client says whose error it is).
fn failed(error: anyhow::Error) -> ErrorData {
    let line = crate::ui::error_line(&error);
    let line = line.strip_prefix("sandbox: ").unwrap_or(&line).to_string();
    ErrorData::new(FAILED, line, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::symlink;

    fn workspace(dir: &Path) -> Workspace {
        let source = crate::config::Source {
            path: None,
            found: false,
        };
        let dir = dir.canonicalize().unwrap();
        Workspace::new(dir, source, BTreeMap::new(), None, false)
    }

    fn write_to(ws: &Workspace, path: &str) -> Result<String, ErrorData> {
        let params = WriteParams {
            path: path.into(),
            content: "new\n".into(),
        };
        write(ws, &params)
    }

    #[test]
    fn links_are_never_followed_out() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "SECRET\n").unwrap();
        symlink(outside.path(), root.path().join("up")).unwrap();
        symlink(outside.path().join("secret"), root.path().join("s")).unwrap();
        let ws = workspace(root.path());
        for path in ["up/secret", "s"] {
            let read = read(
                &ws,
                &ReadParams {
                    path: path.into(),
                    offset: 0,
                },
            );
            assert!(read.unwrap_err().message.contains("link"), "{path}");
            assert!(
                write_to(&ws, path).unwrap_err().message.contains("link"),
                "{path}"
            );
        }
        assert!(write_to(&ws, "up/new").is_err());
        assert_eq!(
            std::fs::read_to_string(outside.path().join("secret")).unwrap(),
            "SECRET\n"
        );
        assert!(!outside.path().join("new").exists());
        let found = search(
            &ws,
            &SearchParams {
                pattern: "SECRET".into(),
                path: None,
                glob: None,
                ignore_case: false,
                max_results: None,
            },
        );
        assert_eq!(found.unwrap(), "no match");
    }

    /// The attack: a tree deeper than any stack (a command in a container
    /// makes one in seconds). The control: a match above the bound is found.
    #[test]
    fn a_deep_tree_is_searched_only_so_far() {
        let root = tempfile::tempdir().unwrap();
        let mut dir = root.path().to_path_buf();
        for depth in 0..MAX_DEPTH + 20 {
            dir.push("d");
            std::fs::create_dir(&dir).unwrap();
            if depth == 10 || depth == MAX_DEPTH + 10 {
                std::fs::write(dir.join("f"), "NEEDLE\n").unwrap();
            }
        }
        let found = search(
            &workspace(root.path()),
            &SearchParams {
                pattern: "NEEDLE".into(),
                path: None,
                glob: None,
                ignore_case: false,
                max_results: None,
            },
        )
        .unwrap();
        assert_eq!(found.matches("NEEDLE").count(), 1, "{found}");
        assert!(
            found.contains(&format!("more than {MAX_DEPTH} levels down")),
            "{found}"
        );
    }

    #[test]
    fn writes_make_directories_and_spare_protected_paths() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(".git")).unwrap();
        let ws = workspace(root.path());
        assert_eq!(
            write_to(&ws, "a/b/c.txt").unwrap(),
            "wrote a/b/c.txt (4 bytes)"
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("a/b/c.txt")).unwrap(),
            "new\n"
        );
        for path in [
            ".git/config",
            ".sandbox.yml",
            "x/.git/hooks/post-checkout",
            ".claude/settings.json",
        ] {
            let err = write_to(&ws, path).unwrap_err();
            assert!(err.message.contains("protected"), "{path}: {}", err.message);
        }
        assert!(!root.path().join(".git/config").exists());
        let listed = list(
            &ws,
            &ListParams {
                path: Some("a/b".into()),
            },
        )
        .unwrap();
        assert_eq!(listed, "a/b: 1 entries\nc.txt  (4 bytes)");
    }

    #[test]
    fn large_files_are_read_in_pages() {
        let root = tempfile::tempdir().unwrap();
        let big = "x".repeat(READ_CAP as usize + 10);
        std::fs::write(root.path().join("big"), &big).unwrap();
        let ws = workspace(root.path());
        let first = read(
            &ws,
            &ReadParams {
                path: "big".into(),
                offset: 0,
            },
        )
        .unwrap();
        assert!(first.ends_with(&format!("read again with offset {READ_CAP} for the rest]")));
        let rest = read(
            &ws,
            &ReadParams {
                path: "big".into(),
                offset: READ_CAP,
            },
        )
        .unwrap();
        assert_eq!(rest, "x".repeat(10));
    }
}
