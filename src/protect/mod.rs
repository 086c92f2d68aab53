//! What a command may never change in a mounted workspace: the names at its
//! root that tools on the host execute or trust (`.git`, `.envrc`, `.vscode`,
//! `.sandbox.yml`, ...), whether they exist or not.
//!
//! Each protected name is a mount point in every container of the workspace,
//! so no command can write, rename, remove or create it, and so nothing a
//! running command does can change what the next container mounts:
//! - an existing one is mounted read-only over itself;
//! - a missing one is covered by an empty read-only placeholder of sandbox's
//!   own, mounted over a mode-000 stand-in sandbox makes at that name for the
//!   run (removed afterwards when no other container of the workspace is
//!   left to need it);
//! - `.git` is presented through a directory made for the run (`gitdir.rs`);
//! - each submodule's `.git` is read-only, and every directory down to it is
//!   mounted over itself (writable, but immovable), because the host's
//!   `git status` at the root runs git inside it.
//!
//! Only names at the root can be configured: a command can rename any
//! directory it can write, and a mount point inside it moves along. Stand-ins
//! and placeholders live in `stand_in.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::gitdir::{GitDir, Snapshot};
use crate::hash::fnv1a;
use crate::mount::{BindMount, WORKDIR};

mod stand_in;

use stand_in::{ensure_private, make_placeholders, Own};
pub use stand_in::{is_placeholder, Hold, Placeholder};

/// Protected by default: what git, direnv, editors, the coding agents sandbox
/// runs (and others a user may run on the same checkout) and sandbox itself
/// read from a checkout and act on: hooks, MCP servers, plugins, tasks, a
/// dev container's host-side commands. Hidden names only: a missing one is
/// covered by a stand-in, which a plain `ls` would otherwise show in every
/// workspace (so `opencode.json` is left to the user's own list).
pub const DEFAULT: [&str; 15] = [
    ".git",
    ".gitmodules",
    ".sandbox.yml",
    ".envrc",
    ".vscode",
    ".idea",
    ".devcontainer",
    ".claude",
    ".mcp.json",
    ".codex",
    ".gemini",
    ".opencode",
    ".kilocode",
    ".aider.conf.yml",
    ".cursor",
];

/// Names that are directories when present; a missing one is covered by an
/// empty directory. Others (and user names without a trailing `/`) by an
/// empty file.
const DIRECTORIES: [&str; 10] = [
    ".git",
    ".vscode",
    ".idea",
    ".devcontainer",
    ".claude",
    ".codex",
    ".gemini",
    ".opencode",
    ".kilocode",
    ".cursor",
];

/// Whether `name` can be protected: one entry at the workspace root.
pub fn check_name(name: &str) -> Result<()> {
    let bare = name.strip_suffix('/').unwrap_or(name);
    if bare.is_empty() || bare == "." || bare == ".." || bare.contains('/') || bare.contains('\0') {
        bail!(
            "{name:?}: only a name at the workspace root can be protected (a command can rename \
             the directory above anything deeper) — protect the top-level directory instead"
        );
    }
    Ok(())
}

/// The protections of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Protections {
    /// Mounts over the workspace's protected names, outermost first.
    pub mounts: Vec<BindMount>,
    pub placeholders: Vec<Placeholder>,
    pub git: Option<GitDir>,
    /// Every protected path, names and what git's configuration names, for
    /// what must not come back from a copied workspace.
    pub paths: Vec<String>,
    /// Names the set of protections, which follow the configuration, the
    /// repository's submodules and its git configuration, so a run can tell
    /// that a container of the workspace started with another (`run/mod.rs`).
    pub key: Option<String>,
}

/// The protections for `names` in `workspace`. `private` is a directory no
/// container can write; `run` names this run's files in it.
pub fn resolve(
    workspace: &Path,
    names: &[String],
    private: &Path,
    run: &str,
    env: &BTreeMap<String, String>,
) -> Result<Protections> {
    // A workspace that holds sandbox's own files would let a command
    // replace the placeholders every later run mounts.
    if private.starts_with(workspace) || workspace.starts_with(private) {
        bail!(
            "the workspace {} holds sandbox's private directory {} — run from a project \
             directory, or set XDG_RUNTIME_DIR (or TMPDIR) to a directory outside it",
            workspace.display(),
            private.display()
        );
    }
    let mut guard = Guard {
        workspace,
        own: Own::in_dir(private),
        protections: Protections::default(),
    };
    for name in names {
        check_name(name)?;
        let wants_dir = name.ends_with('/') || DIRECTORIES.contains(&name.as_str());
        let name = Path::new(name.trim_end_matches('/'));
        let Some(meta) = guard.inspect(name)? else {
            guard.stand_in(name, wants_dir);
            continue;
        };
        if name == Path::new(".git") {
            let scratch = private.join("git").join(run);
            if let Some(git) = GitDir::find(workspace, &meta, scratch)? {
                guard.protections.mounts.extend(git.mounts());
                guard.protections.git = Some(git);
                continue;
            }
        }
        guard.read_only(name);
    }
    // The host's `git status` runs git inside every populated submodule,
    // with the configuration its `.git` names; and git runs or reads what
    // its configuration names in the work tree (`gitconfig.rs`).
    let (submodules, mut named) = match &guard.protections.git {
        Some(git) => (git.submodules()?, git.named_in_worktree(workspace, env)),
        None => (Vec::new(), Vec::new()),
    };
    for path in &submodules {
        named.extend(GitDir::named_in_submodule(workspace, path, env));
    }
    let mut leaves: Vec<String> = names
        .iter()
        .map(|n| n.trim_end_matches('/').to_string())
        .collect();
    for path in &submodules {
        guard.nested(&path.join(".git"), false, names)?;
    }
    for (path, is_dir) in &named {
        guard.nested(path, *is_dir, names)?;
        leaves.push(path.to_string_lossy().into_owned());
    }
    let hooks: Vec<PathBuf> = guard
        .protections
        .git
        .iter()
        .map(|g| g.common.join("hooks"))
        .collect();
    let named_dirs = named
        .iter()
        .filter(|(_, is_dir)| *is_dir)
        .map(|(p, _)| workspace.join(p));
    for dir in hooks.into_iter().chain(named_dirs) {
        for kept in guard.link_targets(&dir, names)? {
            leaves.push(kept.to_string_lossy().into_owned());
        }
    }
    let mut protections = guard.protections;
    // The index comes back with nothing under these changed, and neither
    // does a copied workspace.
    if let Some(git) = protections.git.as_mut() {
        git.protected = leaves.clone();
    }
    protections.paths = leaves;
    // Which paths are covered and how, so a run can tell that a container
    // of the workspace was made with other protections (`run/mod.rs`).
    let shape: Vec<String> = protections
        .mounts
        .iter()
        .map(|m| {
            let kind = match m.source.starts_with(private) {
                true => "sandbox's",
                false => "itself",
            };
            format!("{} {} {kind}", m.target, m.read_only)
        })
        .collect();
    protections.key = Some(format!("{:016x}", fnv1a(shape.join("\n").as_bytes())));
    Ok(protections)
}

/// Builds the protections, one path at a time.
struct Guard<'a> {
    workspace: &'a Path,
    own: Own,
    protections: Protections,
}

impl Guard<'_> {
    /// What is at `rel`: `None` when nothing (or a stand-in) is; refused
    /// when it is a link or neither a file nor a directory.
    fn inspect(&self, rel: &Path) -> Result<Option<fs::Metadata>> {
        let path = self.workspace.join(rel);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) if is_placeholder(&meta) => return Ok(None),
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            bail!(
                "{} is a symbolic link: sandbox cannot keep a command from changing what it \
                 points to — replace it with what it points to, or remove it",
                path.display()
            );
        }
        if !kind.is_dir() && !kind.is_file() {
            bail!(
                "{} is neither a file nor a directory — remove it",
                path.display()
            );
        }
        // Another name for the same file could be anywhere in the workspace.
        if kind.is_file() && meta.nlink() > 1 {
            bail!(
                "{} has other hard links: a command could change it through them — copy it \
                 (`cp --remove-destination`) so it stands alone",
                path.display()
            );
        }
        Ok(Some(meta))
    }

    /// Hooks are run through their links: what a hook in `dir` (the
    /// repository's hooks, or a hooks directory git's configuration names)
    /// links to inside the workspace is kept as the hook is. Returns the
    /// paths kept.
    fn link_targets(&mut self, dir: &Path, names: &[String]) -> Result<Vec<PathBuf>> {
        let mut kept = Vec::new();
        let Ok(entries) = fs::read_dir(dir) else {
            return Ok(kept);
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_symlink()) {
                continue;
            }
            let Ok(target) = entry.path().canonicalize() else {
                continue;
            };
            if let Ok(rel) = target.strip_prefix(self.workspace) {
                let rel = rel.to_path_buf();
                self.nested(&rel, target.is_dir(), names)?;
                kept.push(rel);
            }
        }
        Ok(kept)
    }

    fn target(rel: &Path) -> String {
        format!("{WORKDIR}/{}", rel.display())
    }

    fn has(&self, rel: &Path) -> bool {
        let target = Guard::target(rel);
        self.protections.mounts.iter().any(|m| m.target == target)
    }

    /// Covers a missing `rel` with an empty read-only placeholder.
    fn stand_in(&mut self, rel: &Path, is_dir: bool) {
        self.protections.placeholders.push(Placeholder {
            name: rel.to_string_lossy().into_owned(),
            is_dir,
        });
        self.protections.mounts.push(BindMount {
            source: match is_dir {
                true => self.own.empty_dir.clone(),
                false if stand_in::wants_a_mapping(rel) => self.own.empty_mapping.clone(),
                false => self.own.empty_file.clone(),
            },
            target: Guard::target(rel),
            read_only: true,
        });
    }

    /// Mounts `rel` over itself: read-only, or writable but immovable.
    fn over_itself(&mut self, rel: &Path, read_only: bool) {
        self.protections.mounts.push(BindMount {
            source: self.workspace.join(rel),
            target: Guard::target(rel),
            read_only,
        });
    }

    fn read_only(&mut self, rel: &Path) {
        self.over_itself(rel, true);
    }

    /// Keeps `leaf`, somewhere below the root, from changing: every
    /// directory down to it is mounted over itself (writable, but no command
    /// can rename it to put something of its own in its place), and `leaf`
    /// itself is read-only, or a stand-in (a directory if `leaf_is_dir`)
    /// when it is missing.
    fn nested(&mut self, leaf: &Path, leaf_is_dir: bool, names: &[String]) -> Result<()> {
        let mut parts = leaf.components();
        let Some(first) = parts.next() else {
            bail!(
                "git's configuration names the workspace itself as a file it runs or reads — \
                 sandbox cannot protect that; use --read-only-workspace"
            );
        };
        let first = first.as_os_str().to_string_lossy();
        if names.iter().any(|n| n.trim_end_matches('/') == first) {
            return Ok(());
        }
        let mut dir = PathBuf::new();
        for part in leaf.parent().into_iter().flat_map(|p| p.components()) {
            dir.push(part);
            if self.has(&dir) {
                continue;
            }
            match self.inspect(&dir)? {
                Some(meta) if meta.is_dir() => self.over_itself(&dir, false),
                // Nothing there: nothing can be made there either.
                None => {
                    self.stand_in(&dir, true);
                    return Ok(());
                }
                Some(_) => bail!(
                    "{} is a file where {} lies below it — commit or remove it",
                    self.workspace.join(&dir).display(),
                    leaf.display()
                ),
            }
        }
        let target = Guard::target(leaf);
        if let Some(mount) = self
            .protections
            .mounts
            .iter_mut()
            .find(|m| m.target == target)
        {
            // Already a directory above another protected path: now read-only.
            mount.read_only = true;
            return Ok(());
        }
        match self.inspect(leaf)? {
            Some(_) => self.read_only(leaf),
            None => self.stand_in(leaf, leaf_is_dir),
        }
        Ok(())
    }
}

impl Protections {
    /// Whether there is nothing to prepare or undo.
    pub fn is_empty(&self) -> bool {
        self.placeholders.is_empty() && self.git.is_none()
    }

    /// Makes on the host what the mounts need before the container starts:
    /// the empty placeholders, a stand-in at each missing name, the run's
    /// git directory. Returns what the git directory started from.
    pub fn prepare(
        &self,
        workspace: &Path,
        private: &Path,
        owner: Option<(u32, u32)>,
    ) -> Result<Option<Snapshot>> {
        if !self.placeholders.is_empty() {
            make_placeholders(private)?;
            for placeholder in &self.placeholders {
                placeholder.stand_in(workspace)?;
            }
        }
        match &self.git {
            Some(git) => {
                ensure_private(&private.join("git"))?;
                crate::gitdir::sweep(&private.join("git"));
                let names: Vec<_> = self.placeholders.iter().map(|p| p.name.clone()).collect();
                Ok(Some(git.prepare(&names, owner)?))
            }
            None => Ok(None),
        }
    }

    /// Whether the workspace's protected paths are still what these
    /// protections were made for: each stand-in still one (or gone, to be
    /// made again), each path mounted over itself still there, neither a
    /// link nor a file with other hard links. What a warm container for the
    /// next run is made from (`run/mod.rs`).
    pub fn check(&self, workspace: &Path) -> Result<()> {
        for placeholder in &self.placeholders {
            let path = workspace.join(&placeholder.name);
            match fs::symlink_metadata(&path) {
                Ok(meta) if is_placeholder(&meta) && meta.is_dir() == placeholder.is_dir => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                _ => bail!("{} is no longer sandbox's stand-in", path.display()),
            }
        }
        let own = self
            .mounts
            .iter()
            .filter(|m| m.source.starts_with(workspace));
        for mount in own {
            let meta = fs::symlink_metadata(&mount.source)
                .with_context(|| format!("{} has gone", mount.source.display()))?;
            let kind = meta.file_type();
            if kind.is_symlink() || !(kind.is_dir() || kind.is_file()) || is_placeholder(&meta) {
                bail!("{} has changed kind", mount.source.display());
            }
            if kind.is_file() && meta.nlink() > 1 {
                bail!("{} has other hard links", mount.source.display());
            }
        }
        Ok(())
    }

    /// After the container is gone: brings git's state back. Returns lines
    /// for the user.
    pub fn finish(&self, snapshot: Option<&Snapshot>) -> Vec<String> {
        match (&self.git, snapshot) {
            (Some(git), Some(snapshot)) => git.hand_back(snapshot),
            _ => Vec::new(),
        }
    }

    /// Removes the stand-ins when this run can hold the workspace's lock
    /// alone and `others` (which lists the workspace's other containers,
    /// warm ones included) finds none that mounts over them. Call it with
    /// this run's own hold dropped.
    pub async fn remove_stand_ins<F>(&self, workspace: &Path, private: &Path, others: F)
    where
        F: std::future::Future<Output = bool>,
    {
        if self.placeholders.is_empty() {
            return;
        }
        let Some(_alone) = Hold::alone(private, workspace) else {
            return;
        };
        if others.await {
            return;
        }
        // Side by side: removing a directory frees its block, which a file
        // system mounted with `discard` trims before rmdir returns (a few
        // milliseconds each, on the run's path); the trims overlap.
        // Removing an empty file frees nothing and is quick.
        let (dirs, files): (Vec<_>, Vec<_>) = self.placeholders.iter().partition(|p| p.is_dir);
        std::thread::scope(|scope| {
            for placeholder in dirs.iter().skip(1) {
                let removing = std::thread::Builder::new()
                    .spawn_scoped(scope, move || placeholder.remove(workspace));
                // No thread to spare: this one removes it.
                if removing.is_err() {
                    placeholder.remove(workspace);
                }
            }
            for placeholder in dirs.iter().take(1).chain(&files) {
                placeholder.remove(workspace);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_root_names_can_be_protected() {
        for good in [".git", ".vscode/", "secrets.env"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "/", ".", "..", ".git/hooks", "a/b/"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn present_names_are_read_only_and_missing_ones_covered() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let private = dir.path().join("private");
        fs::create_dir_all(ws.join(".vscode")).unwrap();
        fs::write(ws.join(".envrc"), "export A=1").unwrap();
        let list = names(&[
            ".vscode",
            ".envrc",
            ".claude",
            ".mcp.json",
            "build/",
            ".gitmodules",
        ]);
        let p = resolve(&ws, &list, &private, "run", &BTreeMap::new()).unwrap();
        let mounts: Vec<_> = p
            .mounts
            .iter()
            .map(|m| (m.target.as_str(), m.source.clone(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                ("/work/.vscode", ws.join(".vscode"), true),
                ("/work/.envrc", ws.join(".envrc"), true),
                ("/work/.claude", private.join("empty.d"), true),
                // What reads JSON or YAML refuses an empty file.
                ("/work/.mcp.json", private.join("empty-mapping"), true),
                ("/work/build", private.join("empty.d"), true),
                ("/work/.gitmodules", private.join("empty"), true),
            ]
        );

        fs::create_dir(&private).unwrap();
        p.prepare(&ws, &private, None).unwrap();
        let claude = fs::symlink_metadata(ws.join(".claude")).unwrap();
        assert!(claude.is_dir() && is_placeholder(&claude));
        let mcp = fs::symlink_metadata(ws.join(".mcp.json")).unwrap();
        assert!(mcp.is_file() && is_placeholder(&mcp));
        // A stand-in counts as missing next time.
        assert_eq!(
            resolve(&ws, &list, &private, "run", &BTreeMap::new()).unwrap(),
            p
        );

        let remove = |others: bool| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(p.remove_stand_ins(&ws, &private, async move { others }))
        };
        let held = Hold::shared(&private, &ws).unwrap();
        remove(false);
        assert!(ws.join(".claude").exists(), "another run holds the lock");
        drop(held);
        remove(true);
        assert!(ws.join(".claude").exists(), "another container needs it");
        remove(false);
        assert!(!ws.join(".claude").exists() && !ws.join(".mcp.json").exists());
        assert!(ws.join(".envrc").exists() && ws.join(".vscode").exists());
    }

    #[test]
    fn a_workspace_that_holds_the_private_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("sandbox-1");
        let err = resolve(
            dir.path(),
            &names(&[".envrc"]),
            &private,
            "r",
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("private directory"), "{err}");
    }

    #[test]
    fn a_placeholder_that_is_not_ours_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("empty.d")).unwrap();
        assert!(make_placeholders(dir.path()).is_err());
        fs::remove_file(dir.path().join("empty.d")).unwrap();
        make_placeholders(dir.path()).unwrap();
        make_placeholders(dir.path()).unwrap();
        assert_eq!(fs::read(dir.path().join("empty-mapping")).unwrap(), b"{}\n");
        // A mapping that says more than nothing is not ours.
        let mapping = dir.path().join("empty-mapping");
        fs::remove_file(&mapping).unwrap();
        fs::write(&mapping, "{a: 1}").unwrap();
        fs::set_permissions(&mapping, fs::Permissions::from_mode(0o444)).unwrap();
        assert!(make_placeholders(dir.path()).is_err());
    }

    #[test]
    fn a_link_at_a_protected_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let private = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join(".vscode")).unwrap();
        let err = resolve(
            dir.path(),
            &names(&[".vscode"]),
            private.path(),
            "r",
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[test]
    fn something_the_user_made_is_never_taken_for_a_stand_in() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path();
        let private = tempfile::tempdir().unwrap();
        fs::write(ws.join(".envrc"), "").unwrap();
        let p = resolve(
            ws,
            &names(&[".envrc"]),
            private.path(),
            "r",
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(p.placeholders.is_empty());
        assert!(
            ws.join(".envrc").exists(),
            "an empty file of the user's stays"
        );
    }
}
