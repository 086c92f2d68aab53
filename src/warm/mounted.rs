//! What the engine mounted in a warm container is what the preparer opened.
//!
//! The engine mounts by path, and a path in the workspace can be moved by
//! something nobody watches while the preparer works: a container of a
//! workspace that holds this one, or a process anywhere that was handed a
//! descriptor of such a directory. So the preparer opens every source first,
//! with no link in any part of its path, and, once the container has
//! started, looks up each target inside the container's own root
//! (`/proc/PID/root`, resolved there, again with no link): it must be a
//! mount's root and the very file opened, or the container goes. A path
//! swapped before the open is refused as a link; one swapped after it gives
//! the engine another file than the one opened, or (a link followed inside
//! the container) puts the mount somewhere else than its target, which is
//! then no mount at all, even if the original is back by the time we look.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bollard::models::{Mount, MountType};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, StatxAttributes, StatxFlags};
use rustix::io::Errno;

/// Each bind mount's target, and the file its source was when opened.
#[derive(Debug)]
pub struct Expected(Vec<(String, (u64, u64))>);

/// Why a warm container is not what its request asked for.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// A source in the workspace has a link in its path.
    Link(PathBuf),
    /// A target in the container is another file than its source, or no
    /// mount's root.
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

/// Opens the source of every bind mount in `mounts` without following a
/// link anywhere in its path: one in the workspace can be moved by what runs
/// there, and one elsewhere by whoever else writes its parents.
pub fn expect(mounts: &[Mount]) -> Result<Result<Expected, Refused>> {
    let mut expected = Vec::new();
    for mount in mounts {
        let (Some(MountType::BIND), Some(source), Some(target)) =
            (mount.typ, mount.source.as_deref(), mount.target.as_deref())
        else {
            continue;
        };
        let source = Path::new(source);
        let fd = match open_without_links(rustix::fs::CWD, source, ResolveFlags::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::XDEV) => return Ok(Err(Refused::Link(source.into()))),
            Err(e) => return Err(e).with_context(|| format!("cannot open {}", source.display())),
        };
        expected.push((target.to_string(), identity(&fd)?));
    }
    Ok(Ok(Expected(expected)))
}

/// Whether every target, looked up inside `root` (the container's root as
/// this machine sees it) as the container would, with no link in its path,
/// is a mount's root and the file its source was.
pub fn check(root: &Path, expected: &Expected) -> Result<(), Refused> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let root =
        rustix::fs::open(root, flags, Mode::empty()).map_err(|e| Refused::Unseen("/".into(), e))?;
    for (target, wanted) in &expected.0 {
        let unseen = |e| Refused::Unseen(target.clone(), e);
        let relative = Path::new(target.trim_start_matches('/'));
        let fd = open_without_links(&root, relative, ResolveFlags::IN_ROOT).map_err(unseen)?;
        let st = rustix::fs::statx(&fd, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)
            .map_err(unseen)?;
        let found = (
            rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            st.stx_ino,
        );
        let mounted = st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
            && st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
        if found != *wanted || !mounted {
            return Err(Refused::Other(target.clone()));
        }
    }
    Ok(())
}

/// The container's root as this machine sees it.
pub fn root_of(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root"))
}

/// `path` from `dir`, with no link anywhere in it; `also` as openat2 takes
/// it (`IN_ROOT`: `dir` is the root).
fn open_without_links<Fd: std::os::fd::AsFd>(
    dir: Fd,
    path: &Path,
    also: ResolveFlags,
) -> rustix::io::Result<OwnedFd> {
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS | also;
    // Not O_NOFOLLOW: with O_PATH it would open a link at the end as the
    // link, where RESOLVE_NO_SYMLINKS refuses it.
    let flags = OFlags::PATH | OFlags::CLOEXEC;
    loop {
        match rustix::fs::openat2(&dir, path, flags, Mode::empty(), resolve) {
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

        let refused = expect(&mounts).unwrap().unwrap_err();

        assert_eq!(refused, Refused::Link(ws.clone()));
        // CONTROL: the same sources without the link are taken.
        let mounts = [
            bind(&real, "/work"),
            bind(&real.join(".vscode"), "/work/.vscode"),
        ];
        assert!(expect(&mounts).unwrap().is_ok());
    }

    /// In a tree standing for the container's root, the workspace at
    /// /work as a mount would put it, but nothing mounted: the same file at
    /// a target (a source swapped back after the engine followed a link
    /// elsewhere) is no mount, and is refused; so is another file (a source
    /// swapped after it was opened), and a link at the target.
    #[test]
    fn a_target_must_be_a_mount_of_the_file_opened() {
        let root = tempfile::tempdir().unwrap();
        let ws = root.path().join("work");
        std::fs::create_dir_all(ws.join(".vscode")).unwrap();
        let mounts = [bind(&ws.join(".vscode"), "/work/.vscode")];
        let expected = expect(&mounts).unwrap().unwrap();
        let target = || Refused::Other("/work/.vscode".into());

        assert_eq!(check(root.path(), &expected), Err(target()), "not a mount");

        std::fs::rename(ws.join(".vscode"), ws.join(".v")).unwrap();
        std::fs::create_dir(ws.join(".vscode")).unwrap();
        assert_eq!(check(root.path(), &expected), Err(target()), "another file");

        std::fs::remove_dir(ws.join(".vscode")).unwrap();
        std::os::unix::fs::symlink(".v", ws.join(".vscode")).unwrap();
        let refused = check(root.path(), &expected).unwrap_err();
        assert!(matches!(refused, Refused::Unseen(..)), "{refused:?}");

        // CONTROL: the root of a mount is seen as one.
        let proc = expect(&[bind(Path::new("/proc"), "/proc")])
            .unwrap()
            .unwrap();
        assert_eq!(check(Path::new("/"), &proc), Ok(()));
    }
}
