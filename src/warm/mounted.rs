//! What the engine mounted in a warm container is what the preparer opened.
//!
//! The engine mounts by path, and a path in the workspace can be moved by
//! something nobody watches while the preparer works: a container of a
//! workspace that holds this one, or a process anywhere that was handed a
//! descriptor of such a directory. So the preparer opens every source first
//! (one in the workspace with no link in any part of its path) and, once the
//! container has started, looks at each target through the container's own
//! root (`/proc/PID/root`): the same file, or the container goes. A path
//! swapped before the open is refused as a link; one swapped after it gives
//! the engine another file than the one opened.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bollard::models::{Mount, MountType};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Each bind mount's target, and the file its source was when opened.
#[derive(Debug)]
pub struct Expected(Vec<(String, (u64, u64))>);

/// Why a warm container is not what its request asked for.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// A source in the workspace has a link in its path.
    Link(PathBuf),
    /// A target in the container is another file than its source.
    Other(String),
    /// A target in the container cannot be looked at from here.
    Unseen(String, Errno),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Link(source) => write!(f, "{} has a link in its path", source.display()),
            Refused::Other(target) => write!(f, "{target} is not the file the request named"),
            Refused::Unseen(target, e) => {
                write!(f, "cannot look at {target} in the container: {e}")
            }
        }
    }
}

/// Opens the source of every bind mount in `mounts`: one in `workspace`
/// (itself included) without following a link anywhere in its path; one
/// elsewhere (sandbox's own directories, the user's) as any path.
pub fn expect(mounts: &[Mount], workspace: &Path) -> Result<Result<Expected, Refused>> {
    let mut expected = Vec::new();
    for mount in mounts {
        let (Some(MountType::BIND), Some(source), Some(target)) =
            (mount.typ, mount.source.as_deref(), mount.target.as_deref())
        else {
            continue;
        };
        let source = Path::new(source);
        let opened = match source.starts_with(workspace) {
            true => open_without_links(source),
            false => rustix::fs::open(source, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()),
        };
        let fd = match opened {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::XDEV) => return Ok(Err(Refused::Link(source.into()))),
            Err(e) => return Err(e).with_context(|| format!("cannot open {}", source.display())),
        };
        expected.push((target.to_string(), identity(&fd)?));
    }
    Ok(Ok(Expected(expected)))
}

/// Whether every target, looked up under `root` (the container's root as
/// this machine sees it) without following a link at its end, is the file
/// its source was.
pub fn check(root: &Path, expected: &Expected) -> Result<(), Refused> {
    for (target, wanted) in &expected.0 {
        let at = root.join(target.trim_start_matches('/'));
        let found = rustix::fs::statat(rustix::fs::CWD, &at, AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| (st.st_dev, st.st_ino))
            .map_err(|e| Refused::Unseen(target.clone(), e))?;
        if found != *wanted {
            return Err(Refused::Other(target.clone()));
        }
    }
    Ok(())
}

/// The container's root as this machine sees it.
pub fn root_of(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root"))
}

fn open_without_links(path: &Path) -> rustix::io::Result<OwnedFd> {
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    // Not O_NOFOLLOW: with O_PATH it would open a link at the end as the
    // link, where RESOLVE_NO_SYMLINKS refuses it.
    let flags = OFlags::PATH | OFlags::CLOEXEC;
    loop {
        match rustix::fs::openat2(rustix::fs::CWD, path, flags, Mode::empty(), resolve) {
            // A rename elsewhere on the file system while it looked.
            Err(Errno::AGAIN) => continue,
            other => return other,
        }
    }
}

fn identity(fd: &OwnedFd) -> Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd).context("cannot inspect a mount's source")?;
    Ok((st.st_dev, st.st_ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(source: &Path, target: &str) -> Mount {
        Mount {
            typ: Some(MountType::BIND),
            source: Some(source.to_string_lossy().into_owned()),
            target: Some(target.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_link_in_a_workspace_source_is_refused_before_anything_is_made() {
        let top = tempfile::tempdir().unwrap();
        let real = top.path().join("real");
        std::fs::create_dir_all(real.join(".vscode")).unwrap();
        let ws = top.path().join("app");
        std::os::unix::fs::symlink(&real, &ws).unwrap();
        let mounts = [
            bind(&ws, "/work"),
            bind(&ws.join(".vscode"), "/work/.vscode"),
        ];

        let refused = expect(&mounts, &ws).unwrap().unwrap_err();

        assert_eq!(refused, Refused::Link(ws.clone()));
        // CONTROL: the same sources without the link are taken.
        let mounts = [
            bind(&real, "/work"),
            bind(&real.join(".vscode"), "/work/.vscode"),
        ];
        assert!(expect(&mounts, &real).unwrap().is_ok());
    }

    #[test]
    fn a_source_swapped_after_it_was_opened_is_another_file_inside() {
        // The workspace at /work of a tree standing for the container's
        // root, where the mounts would put it.
        let root = tempfile::tempdir().unwrap();
        let ws = root.path().join("work");
        std::fs::create_dir_all(ws.join(".vscode")).unwrap();
        let mounts = [
            bind(&ws, "/work"),
            bind(&ws.join(".vscode"), "/work/.vscode"),
        ];
        let expected = expect(&mounts, &ws).unwrap().unwrap();
        // CONTROL: as opened, every target is its source.
        assert_eq!(check(root.path(), &expected), Ok(()));

        // Swapped between the open and the mount (here for a directory of
        // the mover's; for a link, the engine mounts what it names).
        std::fs::rename(ws.join(".vscode"), ws.join(".v")).unwrap();
        std::fs::create_dir(ws.join(".vscode")).unwrap();

        let refused = check(root.path(), &expected).unwrap_err();
        assert_eq!(refused, Refused::Other("/work/.vscode".into()));
    }
}
