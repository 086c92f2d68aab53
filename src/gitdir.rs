//! The workspace's git repository, presented so that a command can commit
//! but never change what the host's git executes or trusts.
//!
//! The command does not get the host's git directory. It gets a git directory
//! of its own, made by sandbox for this run outside the workspace: `HEAD` and
//! the index are copies; `objects/` and `refs/` are the repository's own,
//! writable, so commits and branches land on the host as they are made;
//! `config`, `hooks/`, `modules/`, `worktrees/`, `packed-refs` and `shallow`
//! are the repository's own, read-only; `info/` is a copy, whose `exclude`
//! also names the run's placeholders (`protect/`) so that `git add -A`
//! inside does not pick them up. Anything else the command
//! writes there (a `commondir`, rebase state, reflogs, a new `config`) stays
//! in that directory and is thrown away. After the run `HEAD` and the index
//! come back, if `gitmeta` accepts them and the host's did not change
//! meanwhile.
//!
//! A linked worktree (`.git` is a file pointing into the main repository)
//! gets the same, with a read-only `.git` file of sandbox's over the
//! workspace's, pointing at the directory made for the run.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::gitmeta;
use crate::hash::fnv1a;
use crate::mount::{BindMount, WORKDIR};

/// Where a linked worktree's git directory appears inside the container.
pub const LINKED_TARGET: &str = "/run/sandbox/git";
/// The repository's parts the command writes to, as git does when it commits.
const WRITABLE: [&str; 2] = ["objects", "refs"];
/// The repository's parts git reads for configuration or executes.
const READ_ONLY_DIRS: [&str; 3] = ["hooks", "modules", "worktrees"];
/// What `info/` may hold that is worth copying (git reads only these).
const INFO_FILES: [&str; 4] = ["exclude", "attributes", "sparse-checkout", "grafts"];
const READ_ONLY_FILES: [&str; 3] = ["config", "packed-refs", "shallow"];
/// The largest index brought back.
const INDEX_MAX: u64 = 1 << 30;
/// The largest `info/` file copied.
const INFO_MAX: u64 = 16 << 20;

/// The repository at the workspace root, as a run presents it.
#[derive(Debug, Clone, PartialEq)]
pub struct GitDir {
    /// The directory made for this run, mounted where the command's git looks.
    pub scratch: PathBuf,
    /// The host directory whose `HEAD` and index are copied in and back: the
    /// repository's git directory, or a linked worktree's own.
    pub worktree: PathBuf,
    /// The directory with the repository's objects, refs and configuration.
    pub common: PathBuf,
    /// A linked worktree's `.git` file, made by sandbox, pointing at the
    /// scratch directory inside.
    pub pointer: Option<PathBuf>,
    /// The workspace's protected names: index entries under them never
    /// change through a run (`gitmeta::index_to_hand_back`).
    pub protected: Vec<String>,
}

/// What was copied in, to tell later what the command changed and whether
/// the host changed it too.
#[derive(Debug)]
pub struct Snapshot {
    head: Vec<u8>,
    index: Option<Vec<u8>>,
}

impl GitDir {
    /// The repository at `workspace`'s root, whose `.git` is a directory or a
    /// `gitdir:` file; the run's directory goes to `scratch`. `None` for a
    /// `.git` directory that holds no repository (git ignores those too).
    pub fn find(
        workspace: &Path,
        dot_git: &fs::Metadata,
        scratch: PathBuf,
    ) -> Result<Option<GitDir>> {
        let path = workspace.join(".git");
        if dot_git.is_dir() {
            if !is_repository(&path) {
                return Ok(None);
            }
            return GitDir::checked(path.clone(), path, scratch, None).map(Some);
        }
        let text = read_capped(&path, gitmeta::HEAD_MAX)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let pointed = String::from_utf8(text)
            .ok()
            .and_then(|t| Some(t.strip_prefix("gitdir:")?.trim().to_string()))
            .filter(|p| !p.is_empty())
            .with_context(|| format!("{} is not a `gitdir:` file", path.display()))?;
        let worktree = workspace
            .join(pointed)
            .canonicalize()
            .with_context(|| format!("{} points at no directory", path.display()))?;
        // A linked worktree names the main repository in `commondir`.
        let common = match fs::read_to_string(worktree.join("commondir")) {
            Ok(dir) => worktree
                .join(dir.trim())
                .canonicalize()
                .with_context(|| format!("{}/commondir points at nothing", worktree.display()))?,
            Err(_) => worktree.clone(),
        };
        // A git directory inside the workspace is the command's to write:
        // `git init --separate-git-dir=.repo`, or a `.bare` layout.
        for dir in [&worktree, &common] {
            if dir.starts_with(workspace) {
                bail!(
                    "the repository's git directory {} is inside the workspace, where a command \
                     could change what your git runs — move it out of the workspace, or use \
                     --read-only-workspace",
                    dir.display()
                );
            }
        }
        let pointer = scratch.with_extension("gitfile");
        GitDir::checked(worktree, common, scratch, Some(pointer)).map(Some)
    }

    fn checked(
        worktree: PathBuf,
        common: PathBuf,
        scratch: PathBuf,
        pointer: Option<PathBuf>,
    ) -> Result<GitDir> {
        if !is_repository(&common) {
            bail!(
                "{} is not a repository sandbox can present (its objects/ and refs/ must be \
                 directories, not links) — repair the workspace's .git, or remove it",
                common.display()
            );
        }
        Ok(GitDir {
            scratch,
            worktree,
            common,
            pointer,
            protected: Vec::new(),
        })
    }

    /// The paths of the submodules in the host's index, relative to the
    /// workspace; an index sandbox cannot read is refused.
    pub fn submodules(&self) -> Result<Vec<PathBuf>> {
        let index = match read_capped(&self.worktree.join("index"), INDEX_MAX) {
            Ok(index) => index,
            Err(e) if is_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e).context("cannot read the repository's index"),
        };
        let links = gitmeta::parse(&index, self.object_format())
            .with_context(|| {
                format!(
                    "cannot read {}/index, where sandbox looks for submodules",
                    self.worktree.display()
                )
            })?
            .gitlinks;
        let mut paths = Vec::new();
        for link in links {
            let path = PathBuf::from(String::from_utf8_lossy(&link).into_owned());
            // git never writes these; an index that has them is refused.
            let plain = path.components().all(
                |c| matches!(c, std::path::Component::Normal(p) if !p.eq_ignore_ascii_case(".git")),
            );
            if !plain {
                bail!("the repository's index has a submodule at {path:?} — repair the index");
            }
            paths.push(path);
        }
        Ok(paths)
    }

    /// What the host's git configuration (the repository's, with what it
    /// includes, the user's and the system's) names inside `workspace`:
    /// files it runs or reads as configuration (`gitconfig.rs`).
    pub fn named_in_worktree(
        &self,
        workspace: &Path,
        env: &std::collections::BTreeMap<String, String>,
    ) -> Vec<crate::gitconfig::Named> {
        let own = vec![
            self.common.join("config"),
            self.worktree.join("config.worktree"),
        ];
        named_by_config(own, workspace, env)
    }

    /// The same for the submodule at `path`: the host's `git status` at the
    /// root runs git inside it, with its own configuration and the user's.
    /// Paths relative to the workspace.
    pub fn named_in_submodule(
        workspace: &Path,
        path: &Path,
        env: &std::collections::BTreeMap<String, String>,
    ) -> Vec<crate::gitconfig::Named> {
        let root = workspace.join(path);
        let dot_git = root.join(".git");
        let gitdir = match fs::symlink_metadata(&dot_git) {
            Ok(meta) if meta.is_dir() => dot_git,
            Ok(_) => match read_capped(&dot_git, gitmeta::HEAD_MAX)
                .ok()
                .and_then(|t| String::from_utf8(t).ok())
                .and_then(|t| Some(t.strip_prefix("gitdir:")?.trim().to_string()))
            {
                Some(pointed) => root.join(pointed),
                None => return Vec::new(),
            },
            // Not checked out: git does not go in.
            Err(_) => return Vec::new(),
        };
        let Ok(root) = root.canonicalize() else {
            return Vec::new();
        };
        named_by_config(vec![gitdir.join("config")], &root, env)
            .into_iter()
            .map(|(p, is_dir)| (path.join(p), is_dir))
            .collect()
    }
}

/// What git's configuration, the repository's `own` files first, then the
/// user's and the system's, names inside `worktree`.
fn named_by_config(
    own: Vec<PathBuf>,
    worktree: &Path,
    env: &std::collections::BTreeMap<String, String>,
) -> Vec<crate::gitconfig::Named> {
    let var = |name: &str| env.get(name).filter(|v| !v.is_empty());
    let home = var("HOME").filter(|h| h.starts_with('/')).map(Path::new);
    let xdg = var("XDG_CONFIG_HOME")
        .filter(|d| d.starts_with('/'))
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".config")));
    let mut files = own;
    // As git reads them: the environment may name other files.
    match var("GIT_CONFIG_GLOBAL") {
        Some(global) => files.push(PathBuf::from(global)),
        None => {
            files.extend(home.map(|h| h.join(".gitconfig")));
            files.extend(xdg.map(|d| d.join("git/config")));
        }
    }
    if var("GIT_CONFIG_NOSYSTEM").is_none() {
        files.push(PathBuf::from(
            var("GIT_CONFIG_SYSTEM").map_or("/etc/gitconfig", |s| s.as_str()),
        ));
    }
    let count = var("GIT_CONFIG_COUNT").and_then(|c| c.parse::<usize>().ok());
    let extra = (0..count.unwrap_or(0).min(1000))
        .filter_map(|i| {
            let key = var(&format!("GIT_CONFIG_KEY_{i}"))?.to_ascii_lowercase();
            Some((key, var(&format!("GIT_CONFIG_VALUE_{i}"))?.clone()))
        })
        .collect();
    // These files are the user's (or in the protected git directory):
    // their links are followed, as git follows them.
    let read = |path: &Path| {
        let file = fs::File::open(path).ok()?;
        let mut text = String::new();
        file.take(INFO_MAX).read_to_string(&mut text).ok()?;
        Some(text)
    };
    // Links outside the work tree resolved, as far as the path exists.
    let real = |path: &Path| {
        let mut existing = path.to_path_buf();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name.to_os_string());
                    existing = parent.to_path_buf();
                }
                _ => return path.to_path_buf(),
            }
        }
        let mut real = existing.canonicalize().unwrap_or(existing);
        real.extend(rest.iter().rev());
        real
    };
    crate::gitconfig::paths_in_worktree(&crate::gitconfig::Sources {
        files,
        extra,
        worktree,
        home,
        read: &read,
        real: &real,
    })
}

impl GitDir {
    /// The repository's object format, from its (read-only) configuration.
    fn object_format(&self) -> gitmeta::ObjectFormat {
        let config = read_capped(&self.common.join("config"), INFO_MAX).unwrap_or_default();
        gitmeta::ObjectFormat::of_config(&String::from_utf8_lossy(&config))
    }

    /// Where the scratch directory appears inside the container.
    fn target(&self) -> String {
        match self.pointer {
            Some(_) => LINKED_TARGET.to_string(),
            None => format!("{WORKDIR}/.git"),
        }
    }

    /// The bind mounts that present the repository, outermost first.
    pub fn mounts(&self) -> Vec<BindMount> {
        let target = self.target();
        let mut mounts = vec![BindMount {
            source: self.scratch.clone(),
            target: target.clone(),
            read_only: false,
        }];
        if let Some(pointer) = &self.pointer {
            mounts.push(BindMount {
                source: pointer.clone(),
                target: format!("{WORKDIR}/.git"),
                read_only: true,
            });
        }
        for (name, source, read_only) in self.parts() {
            mounts.push(BindMount {
                source,
                target: format!("{target}/{name}"),
                read_only,
            });
        }
        mounts
    }

    /// The repository's parts mounted into the scratch directory: name,
    /// source and whether read-only. Parts the repository lacks are left out.
    fn parts(&self) -> Vec<(&'static str, PathBuf, bool)> {
        let mut parts: Vec<_> = WRITABLE
            .iter()
            .map(|name| (*name, self.common.join(name), false))
            .collect();
        let read_only = READ_ONLY_DIRS.iter().chain(&READ_ONLY_FILES);
        parts.extend(read_only.map(|name| (*name, self.common.join(name), true)));
        if self.pointer.is_some() {
            parts.push((
                "config.worktree",
                self.worktree.join("config.worktree"),
                true,
            ));
        }
        // A link is left out: the engine would mount what it points to.
        parts.retain(|(_, source, _)| {
            fs::symlink_metadata(source).is_ok_and(|m| !m.file_type().is_symlink())
        });
        parts
    }

    /// Makes the scratch directory: a mount point for every part, copies of
    /// `HEAD`, the index and `info/` (whose `exclude` gains `excluded`),
    /// owned by `owner` when sandbox runs as root.
    pub fn prepare(&self, excluded: &[String], owner: Option<(u32, u32)>) -> Result<Snapshot> {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&self.scratch)
            .with_context(|| format!("cannot create {}", self.scratch.display()))?;
        let made = self.fill(excluded, owner);
        if made.is_err() {
            let _ = fs::remove_dir_all(&self.scratch);
        }
        made
    }

    fn fill(&self, excluded: &[String], owner: Option<(u32, u32)>) -> Result<Snapshot> {
        let context = || format!("cannot prepare {}", self.scratch.display());
        let mut made = vec![self.scratch.clone()];
        for (name, source, _) in self.parts() {
            let point = self.scratch.join(name);
            if source.is_dir() {
                fs::create_dir(&point).with_context(context)?;
            } else {
                fs::File::create(&point).with_context(context)?;
            }
            made.push(point);
        }
        // Reflogs are written beside HEAD: the command's stay with it.
        for dir in ["logs", "info"] {
            fs::create_dir(self.scratch.join(dir)).with_context(context)?;
            made.push(self.scratch.join(dir));
        }
        for name in INFO_FILES {
            let mut text =
                read_capped(&self.common.join("info").join(name), INFO_MAX).unwrap_or_default();
            if name == "exclude" {
                for path in excluded {
                    text.extend_from_slice(format!("\n/{path}").as_bytes());
                }
                text.push(b'\n');
            } else if text.is_empty() {
                continue;
            }
            let copy = self.scratch.join("info").join(name);
            fs::write(&copy, text).with_context(context)?;
            made.push(copy);
        }
        let head = read_capped(&self.worktree.join("HEAD"), gitmeta::HEAD_MAX)
            .with_context(|| format!("cannot read {}/HEAD", self.worktree.display()))?;
        let index = match read_capped(&self.worktree.join("index"), INDEX_MAX) {
            Ok(index) => Some(index),
            Err(e) if is_not_found(&e) => None,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read {}/index", self.worktree.display()))
            }
        };
        fs::write(self.scratch.join("HEAD"), &head).with_context(context)?;
        made.push(self.scratch.join("HEAD"));
        if let Some(index) = &index {
            fs::write(self.scratch.join("index"), index).with_context(context)?;
            made.push(self.scratch.join("index"));
        }
        if let Some(pointer) = &self.pointer {
            fs::write(pointer, format!("gitdir: {LINKED_TARGET}\n")).with_context(context)?;
            made.push(pointer.clone());
        }
        if let (Some((uid, gid)), true) = (owner, rustix::process::getuid().is_root()) {
            for path in &made {
                std::os::unix::fs::lchown(path, Some(uid), Some(gid)).with_context(context)?;
            }
        }
        Ok(Snapshot { head, index })
    }

    /// After the run: brings `HEAD` and the index back when they changed,
    /// are acceptable, and the host's did not change meanwhile; then removes
    /// the scratch directory. Returns a line for each thing not brought back.
    pub fn hand_back(&self, before: &Snapshot) -> Vec<String> {
        let mut notes = Vec::new();
        if let Err(e) = self.bring_back(before, &mut notes) {
            notes.push(format!("{e:#}"));
        }
        if let Err(e) = remove_all(&self.scratch) {
            notes.push(format!(
                "cannot remove {}: {e} — remove it by hand",
                self.scratch.display()
            ));
        }
        if let Some(pointer) = &self.pointer {
            let _ = fs::remove_file(pointer);
        }
        notes
    }

    fn bring_back(&self, before: &Snapshot, notes: &mut Vec<String>) -> Result<()> {
        let refused = |what: &str, why: &str| {
            format!(
                "the command's git {what} was not brought back: {why} — the repository keeps \
                 the host's; `git status` shows what the command committed"
            )
        };
        // What the command left is read without following its links.
        let head = read_capped(&self.scratch.join("HEAD"), gitmeta::HEAD_MAX).ok();
        if let Some(head) = head.filter(|h| *h != before.head) {
            if !gitmeta::is_branch_head(&head) {
                notes.push(refused("HEAD", "it names no branch"));
            } else if !self.host_has("HEAD", Some(&before.head)) {
                notes.push(refused("HEAD", "the host's changed during the run"));
            } else {
                self.replace("HEAD", &head)?;
            }
        }
        let index = read_capped(&self.scratch.join("index"), INDEX_MAX).ok();
        let changed = index
            .as_ref()
            .is_some_and(|i| before.index.as_ref().is_none_or(|b| fnv1a(b) != fnv1a(i)));
        if let (Some(index), true) = (index, changed) {
            let format = self.object_format();
            let back = gitmeta::index_to_hand_back(
                before.index.as_deref(),
                &index,
                format,
                &self.protected,
            );
            match back {
                Err(e) => notes.push(refused("index", &format!("{e:#}"))),
                Ok(_) if !self.host_has("index", before.index.as_deref()) => {
                    notes.push(refused("index", "the host's changed during the run"));
                }
                Ok(entries) => self.replace("index", &entries)?,
            }
        }
        Ok(())
    }

    /// Whether the host's `name` still holds `expected` (`None`: is absent).
    fn host_has(&self, name: &str, expected: Option<&[u8]>) -> bool {
        let now = read_capped(&self.worktree.join(name), INDEX_MAX);
        match (now, expected) {
            (Ok(now), Some(expected)) => now == expected,
            (Err(e), None) => is_not_found(&e),
            _ => false,
        }
    }

    /// Replaces the host's `name` with `contents` in one rename, so git
    /// never sees half of it.
    fn replace(&self, name: &str, contents: &[u8]) -> Result<()> {
        let target = self.worktree.join(name);
        let partial = self
            .worktree
            .join(format!("{name}.sandbox-{}.tmp", std::process::id()));
        let context = || format!("cannot write {}", target.display());
        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&partial)?;
            file.write_all(contents)?;
            file.sync_all()?;
            fs::rename(&partial, &target)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&partial);
        }
        written.with_context(context)
    }
}

/// Removes the git directories of runs whose `sandbox` is gone (killed, or
/// the machine restarted): each is named `run-<pid>-<nanos>` by the process
/// that made it (`plan/resolve.rs`). A pid now taken by another process only keeps
/// a directory a while longer.
pub fn sweep(runs: &Path) {
    let Ok(entries) = fs::read_dir(runs) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let pid = name
            .strip_prefix("run-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw);
        let Some(pid) = pid else { continue };
        let gone = matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        );
        if gone {
            let path = entry.path();
            let _ = match name.ends_with(".gitfile") {
                true => fs::remove_file(&path),
                false => remove_all(&path),
            };
        }
    }
}

/// Removes `dir`, which the command could write, whatever it left there:
/// directories it made unreadable are opened up, links are removed, never
/// followed, and everything is reached through open directories, so no path
/// grows too long. Past a depth, a directory is moved up to the top and
/// removed from there, which bounds the directories held open.
fn remove_all(dir: &Path) -> std::io::Result<()> {
    use rustix::fs::{openat, Mode, OFlags, CWD};
    const DEPTH: usize = 32;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let root = match openat(CWD, dir, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut moved = 0usize;
    fn names(dir: &rustix::fd::OwnedFd) -> std::io::Result<Vec<std::ffi::CString>> {
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(dir)? {
            let name = entry?.file_name().to_owned();
            if name.as_bytes() != b"." && name.as_bytes() != b".." {
                names.push(name);
            }
        }
        Ok(names)
    }
    fn remove(
        root: &rustix::fd::OwnedFd,
        parent: &rustix::fd::OwnedFd,
        name: &std::ffi::CStr,
        depth: usize,
        moved: &mut usize,
    ) -> std::io::Result<()> {
        use rustix::fs::{chmodat, openat, unlinkat, AtFlags, Mode, OFlags};
        match unlinkat(parent, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(rustix::io::Errno::ISDIR) => {}
            Err(e) => return Err(e.into()),
        }
        if depth >= DEPTH {
            *moved += 1;
            let up = format!(".sandbox-removing-{moved}");
            return Ok(rustix::fs::renameat(parent, name, root, up.as_str())?);
        }
        // A directory (a link would have been unlinked above).
        let _ = chmodat(parent, name, Mode::from_raw_mode(0o700), AtFlags::empty());
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = openat(parent, name, flags, Mode::empty())?;
        for child in names(&dir)? {
            remove(root, &dir, &child, depth + 1, moved)?;
        }
        Ok(unlinkat(parent, name, AtFlags::REMOVEDIR)?)
    }
    // What was moved up is removed on a later pass.
    loop {
        let children = names(&root)?;
        if children.is_empty() {
            break;
        }
        for child in children {
            remove(&root, &root, &child, 1, &mut moved)?;
        }
    }
    drop(root);
    fs::remove_dir(dir)
}

/// Whether `dir` holds `objects/` and `refs/` directories (not links).
fn is_repository(dir: &Path) -> bool {
    WRITABLE
        .iter()
        .all(|part| fs::symlink_metadata(dir.join(part)).is_ok_and(|m| m.is_dir()))
}

/// Reads a regular file without following a link at its last component,
/// without blocking on a FIFO, and refusing one larger than `max`.
pub fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    if meta.len() > max {
        bail!("{} is larger than {max} bytes", path.display());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        bail!("{} is larger than {max} bytes", path.display());
    }
    Ok(bytes)
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    fn repo() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        fs::create_dir(&ws).unwrap();
        git(&ws, &["init", "-q", "-b", "main"]);
        fs::write(ws.join("a"), "a").unwrap();
        git(&ws, &["add", "a"]);
        git(&ws, &["commit", "-qm", "one"]);
        (dir, ws)
    }

    fn found(ws: &Path, scratch: PathBuf) -> GitDir {
        let meta = fs::symlink_metadata(ws.join(".git")).unwrap();
        GitDir::find(ws, &meta, scratch).unwrap().unwrap()
    }

    #[test]
    fn a_repository_is_presented_through_a_directory_of_the_runs_own() {
        let (dir, ws) = repo();
        let git_dir = found(&ws, dir.path().join("run-1"));
        let mounts: Vec<_> = git_dir
            .mounts()
            .iter()
            .map(|m| (m.target.clone(), m.read_only))
            .collect();
        assert_eq!(mounts[0], ("/work/.git".to_string(), false));
        assert!(mounts.contains(&("/work/.git/objects".into(), false)));
        assert!(mounts.contains(&("/work/.git/refs".into(), false)));
        assert!(mounts.contains(&("/work/.git/config".into(), true)));
        assert!(mounts.contains(&("/work/.git/hooks".into(), true)));
        assert!(
            !mounts.iter().any(|(t, _)| t.ends_with("/modules")),
            "absent parts are left out"
        );
        assert!(git_dir.mounts()[0]
            .source
            .starts_with(dir.path().join("run-1")));
    }

    #[test]
    fn head_and_index_come_back_unless_refused() {
        let (dir, ws) = repo();
        let git_dir = found(&ws, dir.path().join("run"));
        let before = git_dir.prepare(&[], None).unwrap();
        let scratch = &git_dir.scratch;
        assert_eq!(
            fs::read(scratch.join("HEAD")).unwrap(),
            b"ref: refs/heads/main\n"
        );
        fs::write(scratch.join("HEAD"), "ref: refs/heads/feature\n").unwrap();
        let notes = git_dir.hand_back(&before);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            fs::read(ws.join(".git/HEAD")).unwrap(),
            b"ref: refs/heads/feature\n"
        );
        assert!(!scratch.exists(), "the run's directory is removed");

        // A HEAD that points out of refs/heads stays out.
        let before = git_dir.prepare(&[], None).unwrap();
        fs::write(scratch.join("HEAD"), "ref: ../../../x\n").unwrap();
        let notes = git_dir.hand_back(&before);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(
            fs::read(ws.join(".git/HEAD")).unwrap(),
            b"ref: refs/heads/feature\n"
        );

        // Nor a detached one, nor a directory made unremovable.
        let before = git_dir.prepare(&[], None).unwrap();
        fs::write(scratch.join("HEAD"), format!("{}\n", "0".repeat(64))).unwrap();
        // Deeper than PATH_MAX, its top unreadable.
        fs::create_dir(scratch.join("x")).unwrap();
        let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY;
        let mode = rustix::fs::Mode::from_raw_mode(0o755);
        let mut deep = rustix::fs::open(scratch.join("x"), flags, mode).unwrap();
        for _ in 0..300 {
            rustix::fs::mkdirat(&deep, "a-rather-long-directory-name", mode).unwrap();
            deep = rustix::fs::openat(&deep, "a-rather-long-directory-name", flags, mode).unwrap();
        }
        fs::set_permissions(scratch.join("x"), fs::Permissions::from_mode(0o000)).unwrap();
        let notes = git_dir.hand_back(&before);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(!scratch.exists(), "{notes:?}");

        // A HEAD replaced by a link is not followed.
        let before = git_dir.prepare(&[], None).unwrap();
        let secret = dir.path().join("secret");
        fs::write(&secret, "ref: refs/heads/secret\n").unwrap();
        fs::remove_file(scratch.join("HEAD")).unwrap();
        std::os::unix::fs::symlink(&secret, scratch.join("HEAD")).unwrap();
        git_dir.hand_back(&before);
        assert_eq!(
            fs::read(ws.join(".git/HEAD")).unwrap(),
            b"ref: refs/heads/feature\n"
        );
    }

    #[test]
    fn an_index_that_adds_a_submodule_stays_out() {
        let (dir, ws) = repo();
        let git_dir = found(&ws, dir.path().join("run"));
        let before = git_dir.prepare(&[], None).unwrap();
        let host_index = fs::read(ws.join(".git/index")).unwrap();
        // What a command would do inside: the run's directory as GIT_DIR.
        let out = Command::new("git")
            .args([
                "update-index",
                "--add",
                "--cacheinfo",
                "160000,0123456789abcdef0123456789abcdef01234567,sub",
            ])
            .env("GIT_DIR", &git_dir.scratch)
            .env("GIT_INDEX_FILE", git_dir.scratch.join("index"))
            .current_dir(&ws)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let notes = git_dir.hand_back(&before);
        assert!(notes[0].contains("submodules (sub)"), "{notes:?}");
        assert_eq!(fs::read(ws.join(".git/index")).unwrap(), host_index);
    }

    #[test]
    fn runs_whose_sandbox_is_gone_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join(format!("run-{}-1", std::process::id()));
        // No process has this pid: pids stop well below it.
        let gone = dir.path().join("run-2147483646-1");
        for run in [&mine, &gone] {
            fs::create_dir_all(run.join("objects")).unwrap();
        }
        fs::write(dir.path().join("run-2147483646-1.gitfile"), "gitdir: x\n").unwrap();
        sweep(dir.path());
        assert!(mine.exists(), "a live run keeps its directory");
        assert!(!gone.exists());
        assert!(!dir.path().join("run-2147483646-1.gitfile").exists());
    }

    #[test]
    fn a_git_directory_inside_the_workspace_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        fs::create_dir(&ws).unwrap();
        git(&ws, &["init", "-q", "--separate-git-dir=.repo"]);
        let meta = fs::symlink_metadata(ws.join(".git")).unwrap();
        let err = GitDir::find(&ws, &meta, dir.path().join("run")).unwrap_err();
        assert!(err.to_string().contains("inside the workspace"), "{err}");
    }

    #[test]
    fn a_linked_worktree_points_at_the_runs_directory() {
        let (dir, ws) = repo();
        let linked = dir.path().join("linked");
        git(&ws, &["worktree", "add", "-q", linked.to_str().unwrap()]);
        let git_dir = found(&linked, dir.path().join("run"));
        assert_eq!(git_dir.common, ws.join(".git").canonicalize().unwrap());
        assert!(git_dir.worktree.starts_with(&git_dir.common));
        let targets: Vec<_> = git_dir.mounts().into_iter().map(|m| m.target).collect();
        assert_eq!(targets[..2], ["/run/sandbox/git", "/work/.git"]);
        git_dir.prepare(&[], None).unwrap();
        assert_eq!(
            fs::read_to_string(git_dir.pointer.as_ref().unwrap()).unwrap(),
            "gitdir: /run/sandbox/git\n"
        );
    }
}
