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
