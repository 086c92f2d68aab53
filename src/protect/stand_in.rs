//! Stand-ins and placeholders: what covers a missing protected name for a
//! run, the lock that tells when a stand-in may go, and sandbox's own files
//! in its private directory.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A missing protected name, covered for the run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Placeholder {
    pub name: String,
    pub is_dir: bool,
}

/// A stand-in sandbox made: empty, and with no permissions at all, which no
/// tool makes by itself.
pub fn is_placeholder(meta: &fs::Metadata) -> bool {
    meta.mode() & 0o7777 == 0 && (meta.is_dir() || (meta.is_file() && meta.len() == 0))
}

impl Placeholder {
    /// Makes the mode-000 stand-in at the name, unless something is there.
    pub fn stand_in(&self, workspace: &Path) -> Result<()> {
        let path = workspace.join(&self.name);
        // Neither call follows a link at the name: mkdir and O_EXCL fail on one.
        let made = match self.is_dir {
            true => fs::DirBuilder::new().mode(0o000).create(&path),
            false => fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o000)
                .open(&path)
                .map(drop),
        };
        match made {
            Ok(()) => Ok(()),
            // A concurrent run made it. Anything else there (a link made
            // meanwhile) is not mounted over, as the engine follows a link
            // inside the container: the run's checks before and after it
            // refuse a link at a protected name, and a warm container's
            // preparer finds no mount at the target and removes it.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e).with_context(|| {
                format!(
                    "cannot hold {} for the run — is the workspace writable?",
                    path.display()
                )
            }),
        }
    }

    /// Removes the stand-in if it is still one.
    pub(super) fn remove(&self, workspace: &Path) {
        let path = workspace.join(&self.name);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return;
        };
        if !is_placeholder(&meta) {
            return;
        }
        let _ = match meta.is_dir() {
            true => fs::remove_dir(&path),
            false => fs::remove_file(&path),
        };
    }
}

/// sandbox's own files for the run, in a directory only this user can write.
pub(super) struct Own {
    pub(super) empty_dir: PathBuf,
    pub(super) empty_file: PathBuf,
    /// An empty mapping, `{}`: what a JSON or YAML settings file must at
    /// least hold. Aider refuses to start on an empty `.aider.conf.yml`.
    pub(super) empty_mapping: PathBuf,
}

/// What `empty_mapping` holds: valid JSON and valid YAML.
const EMPTY_MAPPING: &[u8] = b"{}\n";

impl Own {
    pub(super) fn in_dir(private: &Path) -> Own {
        Own {
            empty_dir: private.join("empty.d"),
            empty_file: private.join("empty"),
            empty_mapping: private.join("empty-mapping"),
        }
    }
}

/// Whether a missing file at `name` is covered by the empty mapping rather
/// than the empty file: the names of JSON and YAML files, which their
/// readers would refuse empty.
pub(super) fn wants_a_mapping(name: &Path) -> bool {
    name.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "json" | "yml" | "yaml"))
}

/// Held (shared) by every run and warm preparer of a workspace from the
/// moment it makes stand-ins until its container is gone or started, so a
/// run removes stand-ins only when it can take it alone: no other run is
/// between the two, and so no container is about to mount over them.
pub struct Hold {
    /// The lock lasts as long as the open file.
    _file: fs::File,
}

impl Hold {
    /// Waits for a shared hold on `workspace`'s lock in `private`.
    pub fn shared(private: &Path, workspace: &Path) -> Result<Hold> {
        let file = lock_file(private, workspace)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockShared)
            .context("cannot lock the workspace's stand-ins")?;
        Ok(Hold { _file: file })
    }

    /// An exclusive hold, if no one else holds one of any kind.
    pub(super) fn alone(private: &Path, workspace: &Path) -> Option<Hold> {
        let file = lock_file(private, workspace).ok()?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).ok()?;
        Some(Hold { _file: file })
    }
}

fn lock_file(private: &Path, workspace: &Path) -> Result<fs::File> {
    let dir = private.join("locks");
    ensure_private(&dir)?;
    let path = dir.join(crate::host_dirs::workspace_key(workspace));
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// The empty directory and file mounted over missing names: read-only mounts
/// of sandbox's own, so the path the engine resolves is never the command's.
/// One found there must be exactly what sandbox makes: not a link, ours,
/// empty, and writable by nobody.
pub(super) fn make_placeholders(private: &Path) -> Result<()> {
    let own = Own::in_dir(private);
    let context = || format!("cannot make the placeholders in {}", private.display());
    match fs::DirBuilder::new().mode(0o555).create(&own.empty_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(e).with_context(context)
        }
        _ => {}
    }
    for (path, text) in [
        (&own.empty_file, &b""[..]),
        (&own.empty_mapping, EMPTY_MAPPING),
    ] {
        if fs::symlink_metadata(path).is_err() {
            let partial = private.join(format!("placeholder.{}.tmp", std::process::id()));
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o444)
                .open(&partial)
                .and_then(|mut file| std::io::Write::write_all(&mut file, text))
                .and_then(|()| fs::rename(&partial, path))
                .with_context(context)?;
        }
    }
    let me = rustix::process::getuid().as_raw();
    let files = [
        (&own.empty_dir, None),
        (&own.empty_file, Some(&b""[..])),
        (&own.empty_mapping, Some(EMPTY_MAPPING)),
    ];
    for (path, text) in files {
        let meta = fs::symlink_metadata(path).with_context(context)?;
        let empty = match text {
            None => meta.is_dir() && fs::read_dir(path).with_context(context)?.next().is_none(),
            // Not a link (symlink_metadata said so), and as long as the
            // placeholder: read whole.
            Some(text) => {
                meta.is_file()
                    && meta.len() == text.len() as u64
                    && fs::read(path).with_context(context)? == text
            }
        };
        if !empty || meta.uid() != me || meta.mode() & 0o222 != 0 {
            bail!(
                "{} is not the empty placeholder sandbox makes — remove it",
                path.display()
            );
        }
    }
    Ok(())
}

/// Creates `dir` (0700) inside a private directory, or checks the one there.
pub(super) fn ensure_private(dir: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(dir)?;
            if !meta.is_dir() || meta.permissions().mode() & 0o022 != 0 {
                bail!("{} is not a private directory — remove it", dir.display());
            }
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
}
