//! Reads, writes and deletes beneath the workspace that never follow a link.
//!
//! What comes back was made by the command, and the host tree may hold links
//! it made (or a concurrent mounted run may swap one in): a path is never
//! trusted as a string. The workspace root is opened once; every directory
//! is opened from it with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)`, so the kernel refuses a link or
//! a mount anywhere on the way; the last step is a `*at` call on that
//! directory's descriptor (`unlinkat`, `renameat`, `symlinkat`), which does
//! not follow a link in the final name either.
//!
//! Files and links are made under a temporary name beside their place
//! (`O_EXCL | O_NOFOLLOW`), completed there, and renamed into place: what
//! the host had stays whole until the new one is.
//!
//! What is sent is read the same way ([`Root::open_to_read`], [`open_file`],
//! [`read_link`]), so a link swapped in while the workspace is walked is
//! refused rather than followed out of it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps, Uid, UTIME_OMIT,
};
use rustix::io::Errno;

/// Never follow a link or leave the tree, not even through a mount point.
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);
/// No O_NOFOLLOW: with it a link at the end is "not a directory" (ENOTDIR);
/// RESOLVE_NO_SYMLINKS refuses it as a link (ELOOP), like one on the way.
const DIRECTORY: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);
/// openat2 answers EAGAIN under RESOLVE_BENEATH when a rename elsewhere on
/// the file system raced the lookup; trying again gets through.
const TRIES: usize = 16;

/// The workspace root, open, and who should own what is made beneath it.
pub struct Root {
    fd: OwnedFd,
    dev: u64,
    owner: Option<(Uid, Gid)>,
    /// Whether a mount point beneath it may be crossed: when reading what
    /// is sent (a mount in the workspace was always sent), never when
    /// writing back.
    cross_mounts: bool,
}

/// What stands at a name in a directory, the name's own kind (a link is not
/// followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Nothing,
    Dir,
    Other,
}

impl Root {
    /// Opens `path` (chosen by the user, so followed as given). What is
    /// made beneath is given to `owner` when that is set.
    pub fn open(path: &Path, owner: Option<(u32, u32)>) -> io::Result<Root> {
        let fd = rustix::fs::open(path, DIRECTORY, Mode::empty())?;
        let dev = rustix::fs::fstat(&fd)?.st_dev;
        Ok(Root {
            fd,
            dev,
            owner: owner.map(|(uid, gid)| (Uid::from_raw(uid), Gid::from_raw(gid))),
            cross_mounts: false,
        })
    }

    /// Opens `path` to read what is beneath it: links are refused as when
    /// writing, mount points are crossed.
    pub fn open_to_read(path: &Path) -> io::Result<Root> {
        Ok(Root {
            cross_mounts: true,
            ..Root::open(path, None)?
        })
    }

    /// The directory that holds `rel`, and `rel`'s last name.
    pub fn parent<'a>(&self, rel: &'a Path) -> io::Result<(OwnedFd, &'a OsStr)> {
        let name = rel.file_name().ok_or(Errno::INVAL)?;
        let dir = self.dir(rel.parent().unwrap_or(Path::new("")))?;
        Ok((dir, name))
    }

    /// The directory `rel` (relative, plain names only), opened without
    /// following any link on the way or at the end.
    pub fn dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        let path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let resolve = match self.cross_mounts {
            true => RESOLVE.difference(ResolveFlags::NO_XDEV),
            false => RESOLVE,
        };
        for _ in 0..TRIES {
            match rustix::fs::openat2(&self.fd, path, DIRECTORY, Mode::empty(), resolve) {
                Err(Errno::AGAIN) => continue,
                // Before Linux 5.6, or a seccomp filter that predates it.
                Err(Errno::NOSYS | Errno::PERM) => return self.walk(rel),
                other => return other.map_err(io::Error::from),
            }
        }
        Err(Errno::AGAIN.into())
    }

    /// `dir` without openat2: one name at a time, each opened `O_NOFOLLOW`
    /// from the last. A bind mount of the same file system goes unseen here.
    pub(super) fn walk(&self, rel: &Path) -> io::Result<OwnedFd> {
        let mut dir = rustix::fs::openat(&self.fd, ".", DIRECTORY, Mode::empty())?;
        for part in rel.components() {
            let Component::Normal(name) = part else {
                return Err(Errno::XDEV.into());
            };
            dir = match rustix::fs::openat(&dir, name, DIRECTORY | OFlags::NOFOLLOW, Mode::empty())
            {
                // Said as openat2 says it, so a link is refused as a link.
                Err(Errno::NOTDIR) if is_link(&dir, name) => return Err(Errno::LOOP.into()),
                other => other?,
            };
            if !self.cross_mounts && rustix::fs::fstat(&dir)?.st_dev != self.dev {
                return Err(Errno::XDEV.into());
            }
        }
        Ok(dir)
    }

    /// Makes the directory `name` in `dir` unless one is there (anything
    /// else there is removed first).
    pub fn make_dir(&self, dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
        match found(dir, name)? {
            Found::Dir => return Ok(()),
            Found::Other => rustix::fs::unlinkat(dir, name, AtFlags::empty())?,
            Found::Nothing => {}
        }
        // Private until its contents are in; `set_mode` gives the real mode.
        rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?;
        self.chown_at(dir, name)
    }

    /// Sets the mode of the directory `rel`.
    pub fn set_mode(&self, rel: &Path, mode: u32) -> io::Result<()> {
        let dir = self.dir(rel)?;
        rustix::fs::fchmod(&dir, Mode::from_raw_mode(mode))?;
        Ok(())
    }

    /// The file `name` in `dir`, filled from `data` (exactly `size` bytes)
    /// and complete on disk under a temporary name.
    pub fn stage_file(
        &self,
        dir: OwnedFd,
        name: &OsStr,
        data: &mut impl Read,
        size: u64,
        mode: u32,
        mtime: i64,
    ) -> io::Result<Staged> {
        let (fd, temp) = make_temp(|temp| {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
            rustix::fs::openat(&dir, temp, flags | OFlags::CLOEXEC, Mode::RUSR | Mode::WUSR)
        })?;
        // From here a failure removes the half-made file.
        let staged = Staged::new(dir, temp, name);
        let mut file = File::from(fd);
        let written = io::copy(&mut data.take(size), &mut file)?;
        if written != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ended inside the file",
            ));
        }
        if let Some((uid, gid)) = self.owner {
            rustix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        // After the chown, which may clear mode bits.
        rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))?;
        let modified = Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        let untouched = Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        };
        rustix::fs::futimens(
            &file,
            &Timestamps {
                last_access: untouched,
                last_modification: modified,
            },
        )?;
        file.sync_all()?;
        Ok(staged)
    }

    /// The symbolic link `name` → `target` in `dir`, under a temporary name.
    /// Only the link is made: its target is never looked at.
    pub fn stage_link(&self, dir: OwnedFd, name: &OsStr, target: &Path) -> io::Result<Staged> {
        let ((), temp) = make_temp(|temp| rustix::fs::symlinkat(target, &dir, temp))?;
        let staged = Staged::new(dir, temp, name);
        self.chown_at(&staged.dir, &staged.temp)?;
        Ok(staged)
    }

    /// Gives `name` in `dir` (a link itself, never its target) to the owner.
    fn chown_at(&self, dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
        if let Some((uid, gid)) = self.owner {
            rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
        }
        Ok(())
    }
}

/// What stands at `name` in `dir`.
pub fn found(dir: &OwnedFd, name: &OsStr) -> io::Result<Found> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Directory => Ok(Found::Dir),
        Ok(_) => Ok(Found::Other),
        Err(Errno::NOENT) => Ok(Found::Nothing),
        Err(e) => Err(e.into()),
    }
}

/// The file `name` in `dir`, open for reading, and what it is: a link there
/// is refused (`ELOOP`), and a FIFO put there does not make the open wait.
/// The caller checks the kind: it is the open file's, not an earlier look's.
pub fn open_file(dir: &OwnedFd, name: &OsStr) -> io::Result<(File, Stat)> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = rustix::fs::openat(dir, name, flags | OFlags::CLOEXEC, Mode::empty())?;
    let stat = rustix::fs::fstat(&fd)?;
    Ok((File::from(fd), stat))
}

/// What stands at `name` in `dir`, a link itself rather than its target.
pub fn stat_at(dir: &OwnedFd, name: &OsStr) -> io::Result<Stat> {
    Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// Where the link `name` in `dir` points (`EINVAL` if it is not a link).
pub fn read_link(dir: &OwnedFd, name: &OsStr) -> io::Result<PathBuf> {
    let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
    Ok(PathBuf::from(OsString::from_vec(target.into_bytes())))
}

fn is_link(dir: &OwnedFd, name: &OsStr) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Symlink)
}

/// Removes `name` from `dir`: an empty directory if `is_dir`, else a file or
/// a link (the link itself).
pub fn remove(dir: &OwnedFd, name: &OsStr, is_dir: bool) -> io::Result<()> {
    let flags = match is_dir {
        true => AtFlags::REMOVEDIR,
        false => AtFlags::empty(),
    };
    rustix::fs::unlinkat(dir, name, flags)?;
    Ok(())
}

/// A file or link complete under a temporary name beside its place.
/// Dropped before `commit`, it is removed.
pub struct Staged {
    dir: OwnedFd,
    temp: OsString,
    name: OsString,
    placed: bool,
}

impl Staged {
    fn new(dir: OwnedFd, temp: OsString, name: &OsStr) -> Staged {
        Staged {
            dir,
            temp,
            name: name.to_os_string(),
            placed: false,
        }
    }

    /// Whether a directory stands in its place: a rename cannot replace one,
    /// so it waits until the deletions have emptied it.
    pub fn is_blocked(&self) -> io::Result<bool> {
        Ok(found(&self.dir, &self.name)? == Found::Dir)
    }

    /// Moves it into place in one step, over a file or link that is there.
    /// An empty directory there is removed first; one that is not empty
    /// stays, and so does everything in it (`ENOTEMPTY`).
    pub fn commit(mut self) -> io::Result<()> {
        match rustix::fs::unlinkat(&self.dir, &self.name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT | Errno::NOTDIR) => {}
            Err(e) => return Err(e.into()),
        }
        rustix::fs::renameat(&self.dir, &self.temp, &self.dir, &self.name)?;
        self.placed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.placed {
            let _ = rustix::fs::unlinkat(&self.dir, &self.temp, AtFlags::empty());
        }
    }
}

/// Runs `make` with fresh names until one is free (`EEXIST` means taken:
/// `make` must create exclusively), returning what it made and the name.
fn make_temp<T>(
    mut make: impl FnMut(&OsStr) -> rustix::io::Result<T>,
) -> io::Result<(T, OsString)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let temp = OsString::from(format!(".sandbox-{}-{n}.part", std::process::id()));
        match make(&temp) {
            Ok(made) => return Ok((made, temp)),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
