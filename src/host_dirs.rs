//! Directories sandbox keeps on the host (package caches, agents' state):
//! where they live and how they are made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The XDG base directory `var` (XDG_CACHE_HOME, XDG_DATA_HOME) from `env`,
/// else the platform's, joined with `sandbox`.
pub fn sandbox_dir(
    env: &BTreeMap<String, String>,
    var: &str,
    platform: fn(&directories::BaseDirs) -> &Path,
) -> Result<PathBuf> {
    let base = env
        .get(var)
        .filter(|d| d.starts_with('/'))
        .map(PathBuf::from)
        .or_else(|| directories::BaseDirs::new().map(|d| platform(&d).to_path_buf()))
        .with_context(|| format!("no {var} and no home directory — set {var} or HOME"))?;
    Ok(base.join("sandbox"))
}

/// Creates `dir` if it is missing, owned by `owner` (the container's user)
/// so the command can write to it. Returns whether it was created.
pub fn ensure_owned(dir: &Path, owner: Option<(u32, u32)>) -> Result<bool> {
    if dir.is_dir() {
        return Ok(false);
    }
    let context = || format!("cannot create {}", dir.display());
    std::fs::create_dir_all(dir).with_context(context)?;
    if let Some((uid, gid)) = owner {
        // Only root may give a directory away; anyone else makes their own.
        let me = rustix::process::getuid().as_raw();
        if me == 0 || me == uid {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).with_context(context)?;
        }
    }
    Ok(true)
}

/// A directory only this user can write, for files the engine mounts from
/// this machine: `$XDG_RUNTIME_DIR/sandbox`, else `/tmp/sandbox-<uid>`.
pub fn private_runtime_dir(env: &BTreeMap<String, String>) -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = rustix::process::getuid().as_raw();
    let dir = match env.get("XDG_RUNTIME_DIR").filter(|d| d.starts_with('/')) {
        Some(base) => Path::new(base).join("sandbox"),
        None => std::env::temp_dir().join(format!("sandbox-{uid}")),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(e).with_context(|| format!("cannot create {}", dir.display()))
        }
        _ => {}
    }
    // Anyone can make a directory in /tmp first, or a link there.
    let meta = std::fs::symlink_metadata(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        anyhow::bail!(
            "{} is not a private directory of this user's — remove it",
            dir.display()
        );
    }
    Ok(dir)
}
