//! Directories sandbox keeps on the host (package caches, agents' state,
//! files the engine reads): where they live and how they are made.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

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

/// The last component of `workspace` as a file name a person can read:
/// ASCII letters, digits, `-` and `_`, at most 40 characters.
pub fn readable_name(workspace: &Path) -> String {
    workspace
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect()
}

/// A directory name of `workspace`'s own (the workspace is canonical): its
/// readable name, then 128 bits of SHA-256 of its full path. The name part
/// is partly chosen by whoever named the repository, so a weak hash would let
/// a hostile checkout aim at another project's directory; finding a second
/// path with these 128 bits is out of reach.
pub fn workspace_key(workspace: &Path) -> String {
    let hash = crate::hash::sha256_hex(workspace.as_os_str().as_encoded_bytes(), 32);
    format!("{}-{hash}", readable_name(workspace))
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

/// A directory only this user can write, for files the engine reads from
/// this machine (a seccomp profile for Podman): `$XDG_RUNTIME_DIR/sandbox`
/// when that is an absolute directory of ours that nobody else can enter,
/// else `sandbox-<uid>` in `$TMPDIR` (from `env`) or `/tmp`.
///
/// In a shared /tmp anyone can create that name first, as a directory or as
/// a link to somewhere of ours. So the directory is made with mode 0700,
/// then opened without following a link and checked through the open handle:
/// a directory, ours, writable by nobody else. Nothing is ever chmod-ed or
/// chown-ed, and one that fails the check is refused, not repaired.
pub fn private_runtime_dir(env: &BTreeMap<String, String>) -> Result<PathBuf> {
    let tmp = env
        .get("TMPDIR")
        .filter(|d| d.starts_with('/'))
        .map_or("/tmp", String::as_str);
    private_runtime_dir_in(env, Path::new(tmp), rustix::process::getuid().as_raw())
}

fn private_runtime_dir_in(env: &BTreeMap<String, String>, tmp: &Path, uid: u32) -> Result<PathBuf> {
    if let Some(runtime) = env.get("XDG_RUNTIME_DIR").filter(|d| d.starts_with('/')) {
        let runtime = Path::new(runtime);
        match open_dir(runtime).and_then(|fd| is_runtime_base(&fd, uid)) {
            Ok(()) => return private_dir_in(runtime, "sandbox", uid),
            Err(why) => tracing::debug!("XDG_RUNTIME_DIR {} not used: {why}", runtime.display()),
        }
    }
    private_dir_in(tmp, &format!("sandbox-{uid}"), uid)
}

/// `base/name`, made (mode 0700) if missing, after the checks described at
/// [`private_runtime_dir`]. `base` itself must keep others from renaming
/// entries: writable by nobody else, or sticky as /tmp is.
fn private_dir_in(base: &Path, name: &str, uid: u32) -> Result<PathBuf> {
    let path = base.join(name);
    let parent = open_dir(base).with_context(|| format!("cannot open {}", base.display()))?;
    let stat =
        rustix::fs::fstat(&parent).with_context(|| format!("cannot read {}", base.display()))?;
    let shared = stat.st_mode & 0o022 != 0;
    let sticky = stat.st_mode & 0o1000 != 0;
    if (stat.st_uid != uid && stat.st_uid != 0) || (shared && !sticky) {
        bail!(
            "{} lets others replace what sandbox keeps in it (owner uid {}, mode {:04o}) — \
             set TMPDIR or XDG_RUNTIME_DIR to a directory of yours",
            base.display(),
            stat.st_uid,
            stat.st_mode & 0o7777
        );
    }
    match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
    let refuse = |why: String| {
        anyhow::anyhow!(
            "{} is not a private directory of this user's ({why}) — remove it and run again",
            path.display()
        )
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = match rustix::fs::openat(&parent, name, flags, Mode::empty()) {
        Ok(dir) => dir,
        Err(e) => {
            // Only to say why: the refusal does not depend on it.
            let what = rustix::fs::statat(&parent, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                .map(|s| FileType::from_raw_mode(s.st_mode));
            return Err(refuse(match what {
                Ok(FileType::Symlink) => "a symbolic link".into(),
                Ok(_) => "not a directory".into(),
                Err(_) => format!("cannot open it: {e}"),
            }));
        }
    };
    let stat =
        rustix::fs::fstat(&dir).with_context(|| format!("cannot read {}", path.display()))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return Err(refuse("not a directory".into()));
    }
    if stat.st_uid != uid {
        return Err(refuse(format!("owned by uid {}", stat.st_uid)));
    }
    if stat.st_mode & 0o022 != 0 {
        return Err(refuse(format!(
            "writable by others, mode {:04o}",
            stat.st_mode & 0o7777
        )));
    }
    // Readable or searchable by others (made by hand, or by an older
    // sandbox): closed, as what is in it is for this user alone. A run's
    // FIFOs are open to any user inside it, for a container's remapped user.
    if stat.st_mode & 0o077 != 0 {
        rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o700))
            .with_context(|| format!("cannot make {} private (chmod 700)", path.display()))?;
    }
    Ok(path)
}

fn open_dir(path: &Path) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open(path, flags, Mode::empty())
}

/// XDG_RUNTIME_DIR as the Base Directory spec describes it: ours, mode 0700.
fn is_runtime_base(dir: &OwnedFd, uid: u32) -> rustix::io::Result<()> {
    let stat = rustix::fs::fstat(dir)?;
    match stat.st_uid == uid && stat.st_mode & 0o077 == 0 {
        true => Ok(()),
        false => Err(Errno::PERM),
    }
}

/// Writes `bytes` to `dir/name` (`dir` from [`private_runtime_dir`]): to a
/// new file made with O_EXCL (which never follows a link), then renamed into
/// place, so a reader never sees half a file and nothing already there is
/// written through.
pub fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let partial = dir.join(format!(".{name}.{}.{nanos}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| std::fs::rename(&partial, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(path)
}

/// `name` in the private directory `dir` as the stderr of a helper that
/// outlives its run (the warm preparer, the watcher): appended to, opened
/// without following a link, made readable by this user only, and started
/// over past 64 KiB, where only the last failures are worth reading.
/// Nowhere (`/dev/null`) when it cannot be opened: a helper's log must not
/// stop a run.
pub fn private_log(dir: &Path, name: &str) -> std::process::Stdio {
    use rustix::fs::{Mode, OFlags};
    const MAX: u64 = 64 * 1024;
    if dir.as_os_str().is_empty() {
        return std::process::Stdio::null();
    }
    let path = dir.join(name);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND | OFlags::NOFOLLOW;
    let opened = rustix::fs::open(&path, flags | OFlags::CLOEXEC, Mode::RUSR | Mode::WUSR)
        .map(std::fs::File::from)
        .map_err(std::io::Error::from)
        .and_then(|log| {
            if log.metadata()?.len() > MAX {
                log.set_len(0)?;
            }
            Ok(log)
        });
    match opened {
        Ok(log) => log.into(),
        Err(e) => {
            tracing::debug!("no log at {}: {e}", path.display());
            std::process::Stdio::null()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn base(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sandbox-hostdirs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        dir
    }

    fn me() -> u32 {
        rustix::process::getuid().as_raw()
    }

    #[test]
    fn workspace_keys_are_readable_and_distinct() {
        let a = workspace_key(Path::new("/home/me/app"));
        let b = workspace_key(Path::new("/home/you/app"));
        assert_ne!(a, b);
        assert_eq!(a, workspace_key(Path::new("/home/me/app")), "stable");
        assert!(a.starts_with("app-") && a.len() == "app-".len() + 32, "{a}");
        assert!(workspace_key(Path::new("/x/my app (1)")).starts_with("my_app__1_-"));
        assert!(workspace_key(Path::new("/")).starts_with("root-"));
    }

    #[test]
    fn the_private_directory_is_made_once_and_then_accepted() {
        let base = base("made");
        let dir = private_dir_in(&base, "sandbox-1", me()).unwrap();
        assert_eq!(dir, base.join("sandbox-1"));
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.mode() & 0o777, 0o700);
        assert_eq!(private_dir_in(&base, "sandbox-1", me()).unwrap(), dir);
        // Opened to others by hand: closed again, since a run's FIFOs in it
        // are open to any user.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
        assert_eq!(private_dir_in(&base, "sandbox-1", me()).unwrap(), dir);
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);

        let path = write_private(&dir, "f.json", b"one").unwrap();
        write_private(&dir, "f.json", b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no partial files left"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_planted_link_is_refused_and_its_target_untouched() {
        let base = base("link");
        let target = base.join("victim");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&target, base.join("sandbox-1")).unwrap();

        let err = private_dir_in(&base, "sandbox-1", me())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a symbolic link") && err.contains("remove it"),
            "{err}"
        );
        assert!(!err.contains('\n'), "one line: {err}");
        let meta = std::fs::metadata(&target).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o755, "not chmod-ed through the link");
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);

        // CONTROL: the same name as a real directory of ours is accepted.
        std::fs::remove_file(base.join("sandbox-1")).unwrap();
        assert!(private_dir_in(&base, "sandbox-1", me()).is_ok());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_directory_of_another_user_or_open_to_others_is_refused() {
        let base = base("owner");
        let theirs = base.join("sandbox-1");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
        if me() == 0 {
            std::os::unix::fs::chown(&theirs, Some(4242), Some(4242)).unwrap();
            let err = private_dir_in(&base, "sandbox-1", me())
                .unwrap_err()
                .to_string();
            assert!(err.contains("owned by uid 4242"), "{err}");
            let meta = std::fs::metadata(&theirs).unwrap();
            assert_eq!(
                (meta.uid(), meta.mode() & 0o7777),
                (4242, 0o700),
                "left as it was"
            );
            // CONTROL: as the uid that owns it, it passes.
            assert!(private_dir_in(&base, "sandbox-1", 4242).is_ok());
        } else {
            // Not root: the same refusal, seen from the other side.
            let err = private_dir_in(&base, "sandbox-1", me() + 1)
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("owned by uid {}", me())), "{err}");
        }
        std::fs::remove_dir_all(&theirs).unwrap();

        std::fs::create_dir(&theirs).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = private_dir_in(&base, "sandbox-1", me())
            .unwrap_err()
            .to_string();
        assert!(err.contains("writable by others"), "{err}");
        let mode = std::fs::metadata(&theirs).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o777, "never chmod-ed");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_shared_parent_must_be_sticky() {
        let base = base("sticky");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = private_dir_in(&base, "sandbox-1", me())
            .unwrap_err()
            .to_string();
        assert!(err.contains("lets others replace"), "{err}");
        assert!(!base.join("sandbox-1").exists(), "nothing made there");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn xdg_runtime_dir_is_used_only_when_private() {
        let tmp = base("xdg-tmp");
        let runtime = base("xdg-runtime");
        let env: BTreeMap<_, _> = [(
            "XDG_RUNTIME_DIR".to_string(),
            runtime.to_str().unwrap().to_string(),
        )]
        .into();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(
            private_runtime_dir_in(&env, &tmp, me()).unwrap(),
            runtime.join("sandbox")
        );
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            private_runtime_dir_in(&env, &tmp, me()).unwrap(),
            tmp.join(format!("sandbox-{}", me())),
            "open to others: /tmp instead"
        );
        let relative: BTreeMap<_, _> = [("XDG_RUNTIME_DIR".to_string(), "run".to_string())].into();
        assert_eq!(
            private_runtime_dir_in(&relative, &tmp, me()).unwrap(),
            tmp.join(format!("sandbox-{}", me()))
        );
        std::fs::remove_dir_all(&tmp).unwrap();
        std::fs::remove_dir_all(&runtime).unwrap();
    }
}
