//! Package-manager caches kept between runs, so the second `pip install` or
//! `npm ci` in a workspace does not download everything again.
//!
//! Each workspace has a cache directory of its own on the host, mounted at
//! /cache: a shared one would let code run in one project plant packages that
//! another project's builds pick up later.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::CacheConfig;
use crate::host_dirs;

/// Where the cache appears inside the container.
pub const TARGET: &str = "/cache";
/// Written in each workspace's cache directory: the workspace it belongs to.
const OWNER_FILE: &str = ".workspace";

/// Variables that point package managers at /cache. Tools that follow
/// XDG_CACHE_HOME (pip, uv, go's build cache, yarn, poetry) need nothing more.
pub fn env() -> Vec<(String, String)> {
    [
        ("XDG_CACHE_HOME", TARGET.to_string()),
        ("npm_config_cache", format!("{TARGET}/npm")),
        ("GOMODCACHE", format!("{TARGET}/go-mod")),
        ("CARGO_HOME", format!("{TARGET}/cargo")),
        ("BUN_INSTALL_CACHE_DIR", format!("{TARGET}/bun")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The directory that holds every workspace's cache.
pub fn root(config: &CacheConfig, env: &BTreeMap<String, String>) -> Result<PathBuf> {
    match &config.dir {
        Some(dir) => Ok(dir.clone()),
        None => host_dirs::sandbox_dir(env, "XDG_CACHE_HOME", directories::BaseDirs::cache_dir)
            .context("no cache directory — set cache.dir in the configuration"),
    }
}

/// The cache directory of `workspace`: its name, for a person reading the
/// listing, and a hash of its full path, so two `app` folders never share.
pub fn dir_for(root: &Path, workspace: &Path) -> PathBuf {
    // A hash no repository's name can be chosen to collide with: a shared
    // cache would let one project plant packages another picks up.
    root.join(host_dirs::workspace_key(workspace))
}

/// Creates `dir` for `workspace` if needed, owned by the user the container
/// runs as, so the command can write to it.
pub fn ensure(dir: &Path, workspace: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    if host_dirs::ensure_owned(dir, owner).context("cannot create the cache directory")? {
        std::fs::write(
            dir.join(OWNER_FILE),
            workspace.as_os_str().as_encoded_bytes(),
        )
        .with_context(|| format!("cannot write in the cache directory {}", dir.display()))?;
    }
    Ok(())
}

/// One workspace's cache, for `sandbox cache info`.
pub struct Entry {
    pub dir: PathBuf,
    /// The workspace it belongs to, when recorded.
    pub workspace: Option<PathBuf>,
    pub bytes: u64,
}

/// Every workspace's cache under `root`, largest first.
pub fn entries(root: &Path) -> Result<Vec<Entry>> {
    let listing = match std::fs::read_dir(root) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", root.display())),
    };
    let mut entries = Vec::new();
    for item in listing {
        let dir = item
            .with_context(|| format!("cannot read {}", root.display()))?
            .path();
        if !dir.is_dir() {
            continue;
        }
        let workspace = std::fs::read(dir.join(OWNER_FILE))
            .ok()
            .map(|b| PathBuf::from(String::from_utf8_lossy(&b).into_owned()));
        entries.push(Entry {
            bytes: disk_usage(&dir),
            dir,
            workspace,
        });
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.bytes));
    Ok(entries)
}

/// Bytes in the files under `path`; what cannot be read counts as nothing.
fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|items| items.flatten().map(|i| disk_usage(&i.path())).sum())
        .unwrap_or(0)
}

/// Removes `dir` and everything in it. Go makes its module cache read-only,
/// so directories are made writable on the way down.
pub fn remove(dir: &Path) -> Result<()> {
    make_writable(dir);
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        let mode = meta.permissions().mode();
        if mode & 0o700 != 0o700 {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o700));
        }
        if let Ok(items) = std::fs::read_dir(path) {
            for item in items.flatten() {
                make_writable(&item.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_workspace_has_its_own_directory() {
        let root = Path::new("/c");
        let a = dir_for(root, Path::new("/home/me/app"));
        let b = dir_for(root, Path::new("/home/you/app"));
        assert_ne!(a, b);
        assert_eq!(a, dir_for(root, Path::new("/home/me/app")), "stable");
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("app-") && name.len() == "app-".len() + 32,
            "{name}"
        );
        let odd = dir_for(root, Path::new("/x/my app (1)"));
        assert!(
            odd.to_str().unwrap().starts_with("/c/my_app__1_-"),
            "{odd:?}"
        );
    }

    #[test]
    fn the_root_follows_config_then_xdg() {
        let mut env = BTreeMap::new();
        env.insert("XDG_CACHE_HOME".to_string(), "/xdg".to_string());
        let mut config = CacheConfig::default();
        assert_eq!(root(&config, &env).unwrap(), Path::new("/xdg/sandbox"));
        config.dir = Some("/mine".into());
        assert_eq!(root(&config, &env).unwrap(), Path::new("/mine"));
    }

    #[test]
    fn read_only_trees_are_removed() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("sandbox-cache-test-{}", std::process::id()));
        let locked = base.join("mod/pkg");
        std::fs::create_dir_all(&locked).unwrap();
        std::fs::write(locked.join("file"), "x").unwrap();
        for dir in [&locked, &base.join("mod")] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        assert_eq!(disk_usage(&base), 1);
        remove(&base).unwrap();
        assert!(!base.exists());
    }
}
