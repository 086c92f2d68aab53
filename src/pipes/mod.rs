//! Pipes at native speed: the command's stdin, stdout and stderr through
//! FIFOs in a directory of the run's own, rather than the engine's attach
//! stream, which carries every byte through the daemon and its HTTP framing
//! (tens of MB/s where a pipe moves gigabytes).
//!
//! Only where the engine shares this machine's kernel and files (a `unix://`
//! socket), without a terminal (a pty is the engine's to make), and with the
//! engine's own runtime: the directory is bind-mounted read-only at
//! [`MOUNT_POINT`] with the stdio shim (`shim.rs`, built by `build.rs`),
//! which becomes the container's command and puts the FIFOs on descriptors
//! 0, 1 and 2 before it execs the real one. Anything else goes through the
//! attach stream as before; so does everything the init and the shim say
//! themselves, so a command that cannot run is named as it always was.
//!
//! The ends here are opened before the container starts and never block on
//! the container: stdout's and stderr's are open for reading (so the shim's
//! non-blocking open finds a reader), stdin's for reading and writing (so
//! what is written waits in the FIFO until the shim opens it), and closed
//! at our EOF only once the shim has opened its end ([`OPENED`]). Each stream
//! is copied on a thread of its own with `splice(2)` where the kernel can
//! (no copy through this process), `read`/`write` where it cannot, so
//! sandbox's memory stays the same however much flows.
//!
//! The directory is this run's alone: another run's container never sees
//! it, and this run's container cannot change it. Its name carries this
//! process's ID, so one a killed sandbox left is removed by the next run.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bollard::models::{ContainerCreateBody, Mount, MountType};
use rustix::fs::{Mode, OFlags};

use crate::plan::RunPlan;
use crate::streams::OutputEnd;

mod carry;

/// Where the directory appears in the container.
pub const MOUNT_POINT: &str = "/.sandbox-stdio";
/// The shim, for this build's architecture; empty where it could not be built.
const SHIM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/stdio-shim"));
/// The capacity asked for each FIFO: `/proc/sys/fs/pipe-max-size`'s default.
const PIPE_SIZE: usize = 1 << 20;
/// The prefix of a run's directory in the private runtime directory.
const PREFIX: &str = "stdio-";
/// A FIFO the shim opens for writing and closes once stdin's is open: our
/// reader of it sees the hang-up (`carry::into`).
const OPENED: &str = "0-opened";

/// Why a run's stdio goes through the attach stream, or `None` when it can
/// go through FIFOs.
pub fn not_here(plan: &RunPlan) -> Option<&'static str> {
    if !plan.io.fast_pipes {
        Some("container.fast_pipes is off")
    } else if plan.io.tty {
        Some("a terminal is the engine's")
    } else if !plan.lifecycle.host.starts_with("unix://") {
        Some("the engine is on another machine")
    } else if plan.hardening.runtime.is_some() {
        Some("another runtime may not share FIFOs")
    } else if SHIM.is_empty() {
        Some("this build has no stdio shim for its architecture")
    } else {
        None
    }
}

/// The FIFOs of `plan`'s command, where they can be used: otherwise (or
/// when they cannot be made) the run uses the attach stream, and says why
/// with `-v`.
pub fn for_run(plan: &RunPlan) -> Option<Pipes> {
    if let Some(why) = not_here(plan) {
        tracing::info!("stdio through the engine's stream: {why}");
        return None;
    }
    match Pipes::make(&plan.workspace.private_dir, plan.io.stdin) {
        Ok(pipes) => Some(pipes),
        Err(e) => {
            tracing::info!("stdio through the engine's stream: {e:#}");
            None
        }
    }
}

/// A run's FIFOs, made and opened at this end, before its container exists.
pub struct Pipes {
    dir: Dir,
    stdout: OwnedFd,
    stderr: OwnedFd,
    /// Ours to write, and our reader of [`OPENED`].
    stdin: Option<(OwnedFd, OwnedFd)>,
}

impl Pipes {
    /// Makes the run's directory in `private_dir`: the shim, and FIFOs for
    /// stdout, stderr and, when the command reads ours, stdin.
    pub fn make(private_dir: &Path, stdin: bool) -> Result<Pipes> {
        sweep(private_dir);
        let pid = std::process::id();
        let dir = Dir::new(private_dir, &format!("{pid}-"))?;
        fill(&dir.0, stdin)?;
        Pipes::open(dir, stdin)
    }

    /// The FIFOs of a warm container this run has claimed, in the directory
    /// its preparer made ([`make_warm`]); removed with them.
    pub fn claimed(dir: PathBuf, stdin: bool) -> Result<Pipes> {
        Pipes::open(Dir(dir), stdin)
    }

    /// Our ends: stdout's and stderr's open for reading, so the shim's
    /// non-blocking open finds a reader; stdin's for reading and writing, so
    /// what we write waits until the shim opens it. Without stdin, the shim
    /// finds no writer, and the command reads EOF at once.
    fn open(dir: Dir, stdin: bool) -> Result<Pipes> {
        let open = |name: &str, access: OFlags| -> Result<OwnedFd> {
            let at = dir.0.join(name);
            let flags = access | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOFOLLOW;
            let fd = rustix::fs::open(&at, flags, Mode::empty())
                .with_context(|| format!("cannot open the FIFO {}", at.display()))?;
            match rustix::fs::fstat(&fd).map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode)) {
                Ok(rustix::fs::FileType::Fifo) => {}
                _ => bail!("{} is not a FIFO", at.display()),
            }
            // Fewer, larger hand-overs between the command and the copy here:
            // a pipe holds 64 KiB unless asked for more. The most an
            // unprivileged process may ask for is the system's limit; less
            // (or the default) still works.
            let _ = rustix::pipe::fcntl_setpipe_size(&fd, PIPE_SIZE);
            Ok(fd)
        };
        let stdout = open("1", OFlags::RDONLY)?;
        let stderr = open("2", OFlags::RDONLY)?;
        let stdin = match stdin {
            true => Some((open("0", OFlags::RDWR)?, open(OPENED, OFlags::RDONLY)?)),
            false => None,
        };
        Ok(Pipes {
            dir,
            stdout,
            stderr,
            stdin,
        })
    }

    /// `body`, the run's create request, with its stdio through the FIFOs:
    /// the shim runs the command, the directory is mounted read-only, and
    /// the engine attaches no stdin (stdout and stderr stay attached, for
    /// what the init and the shim say).
    pub fn apply(&self, body: &mut ContainerCreateBody) {
        let argv = body.cmd.take().unwrap_or_default();
        let mut cmd = shim_words().to_vec();
        cmd.extend(argv);
        body.cmd = Some(cmd);
        body.open_stdin = Some(false);
        body.stdin_once = Some(false);
        body.attach_stdin = Some(false);
        let host_config = body.host_config.get_or_insert_with(Default::default);
        host_config
            .mounts
            .get_or_insert_with(Vec::new)
            .push(mount(&self.dir.0));
    }

    /// Starts carrying: our stdin into the container (on a thread nobody
    /// waits for, as our stdin may never end), its stdout and stderr onto
    /// ours. Call once the container has started.
    pub fn start(self) -> Result<Flowing> {
        let (stop, stopping) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .context("cannot make a pipe")?;
        let watch = || stop.try_clone().context("cannot duplicate a pipe");
        if let Some((stdin, opened)) = self.stdin {
            let stop = watch()?;
            std::thread::spawn(move || carry::into(rustix::stdio::stdin(), stdin, stop, opened));
        }
        let (gone, gone_rx) = tokio::sync::mpsc::unbounded_channel();
        let moved = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for (fifo, to) in [
            (self.stdout, rustix::stdio::stdout()),
            (self.stderr, rustix::stdio::stderr()),
        ] {
            let (stop, gone, moved) = (watch()?, gone.clone(), moved.clone());
            let told = move || {
                let _ = gone.send(());
            };
            threads.push(std::thread::spawn(move || {
                carry::out_of(fifo, to, stop, told, moved)
            }));
        }
        Ok(Flowing {
            _dir: self.dir,
            threads,
            stopping,
            gone: Some(gone_rx),
            moved,
        })
    }
}

/// Whether any of the command's output came through the FIFOs.
pub struct Seen(Arc<AtomicU64>);

impl Seen {
    pub fn any(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }
}

/// The FIFOs being carried.
pub struct Flowing {
    _dir: Dir,
    threads: Vec<JoinHandle<io::Result<OutputEnd>>>,
    /// Closed when the container has stopped (`carry.rs`).
    stopping: OwnedFd,
    gone: Option<tokio::sync::mpsc::UnboundedReceiver<()>>,
    moved: Arc<AtomicU64>,
}

impl Flowing {
    /// Told once our stdout or stderr has no reader any more: the command
    /// is then ended as over the attach stream, should it not end itself
    /// (it gets SIGPIPE on its next write, but may ignore it).
    pub fn reader_gone(&mut self) -> Option<tokio::sync::mpsc::UnboundedReceiver<()>> {
        self.gone.take()
    }

    /// Tells, later, whether any of the command's output came through.
    pub fn seen(&self) -> Seen {
        Seen(self.moved.clone())
    }

    /// Once the container has stopped: waits until what its FIFOs hold is
    /// on our stdout and stderr. Every process of the container is gone;
    /// a writer that is not (a descriptor handed outside) is not waited for.
    pub async fn finish(self) -> Result<OutputEnd> {
        drop(self.stopping);
        let threads = self.threads;
        let joined = tokio::task::spawn_blocking(move || {
            threads.into_iter().map(|t| t.join()).collect::<Vec<_>>()
        })
        .await
        .context("the output threads stopped unexpectedly")?;
        let mut end = OutputEnd::Finished;
        for result in joined {
            match result {
                Ok(Ok(OutputEnd::ReaderGone)) => end = OutputEnd::ReaderGone,
                Ok(Ok(OutputEnd::Finished)) => {}
                Ok(Err(e)) => {
                    return Err(anyhow::Error::new(e).context("cannot write the command's output"))
                }
                Err(_) => bail!("the output writer stopped unexpectedly"),
            }
        }
        Ok(end)
    }
}

/// The directory of a warm container's FIFOs, made by its preparer before
/// the container exists (its mount names it): the run that claims the
/// container opens them ([`Pipes::claimed`]) and removes the directory after
/// the run. One never claimed is removed by a later run once its container
/// has stopped waiting: its name says when that is.
pub fn make_warm(private_dir: &Path, idle: Duration) -> Result<Prepared> {
    sweep(private_dir);
    let until = SystemTime::now() + idle + AFTER_IDLE;
    let until = until
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let dir = Dir::new(
        private_dir,
        &format!("{WARM}{until}-{}-", std::process::id()),
    )?;
    fill(&dir.0, true)?;
    Ok(Prepared(dir))
}

/// A warm container's FIFO directory while its container is made: removed
/// unless [`Prepared::keep`] hands it to the container.
pub struct Prepared(Dir);

impl Prepared {
    pub fn path(&self) -> &Path {
        &self.0 .0
    }

    /// The container has started with it: it stays for the run that claims it.
    pub fn keep(self) {
        self.0.keep();
    }
}

/// How long after its idle time a warm container's directory may still be
/// in use: the claim that took it just before, and the shim's start.
const AFTER_IDLE: Duration = Duration::from_secs(60);
/// The prefix of a warm container's directory, after [`PREFIX`].
const WARM: &str = "warm-";

/// The mount of `dir` at [`MOUNT_POINT`], read-only.
pub fn mount(dir: &Path) -> Mount {
    Mount {
        target: Some(MOUNT_POINT.to_string()),
        source: Some(dir.to_string_lossy().into_owned()),
        typ: Some(MountType::BIND),
        read_only: Some(true),
        ..Default::default()
    }
}

/// The words that run a command through the shim: a warm container's
/// waiter puts them before the command it execs.
pub fn shim_words() -> [String; 2] {
    [format!("{MOUNT_POINT}/shim"), MOUNT_POINT.to_string()]
}

/// Where a container of ours mounts its FIFOs, when it does: the source of
/// its mount at [`MOUNT_POINT`], if that is a directory of this user's
/// private runtime directory.
pub fn mounted_dir(mounts: &[(String, String)], private_dir: &Path) -> Option<PathBuf> {
    let (source, _) = mounts.iter().find(|(_, target)| target == MOUNT_POINT)?;
    let source = PathBuf::from(source);
    let ours = source.parent() == Some(private_dir)
        && source
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(PREFIX));
    ours.then_some(source)
}

/// The shim, and FIFOs for stdout, stderr and, with `stdin`, stdin, in
/// `dir`. Readable and writable by any user: the container's user may be
/// another (a remapped one), and nobody else reaches the private directory
/// this one is in. A mount from a `noexec` file system keeps the flag: the
/// shim would not run, and the command would be reported as not found.
fn fill(dir: &Path, stdin: bool) -> Result<()> {
    let flags = rustix::fs::statvfs(dir)
        .with_context(|| format!("cannot inspect {}", dir.display()))?
        .f_flag;
    if flags.contains(rustix::fs::StatVfsMountFlags::NOEXEC) {
        bail!("{} is on a noexec file system", dir.display());
    }
    let shim = dir.join("shim");
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o555)
        .open(&shim)
        .and_then(|mut f| io::Write::write_all(&mut f, SHIM))
        .with_context(|| format!("cannot write {}", shim.display()))?;
    let names: &[&str] = if stdin {
        &["0", OPENED, "1", "2"]
    } else {
        &["1", "2"]
    };
    for name in names {
        let at = dir.join(name);
        rustix::fs::mkfifoat(rustix::fs::CWD, &at, Mode::from_raw_mode(0o666))
            .with_context(|| format!("cannot make the FIFO {}", at.display()))?;
        fs::set_permissions(&at, fs::Permissions::from_mode(0o666))?;
    }
    Ok(())
}

/// A run's directory, removed with everything in it when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(private_dir: &Path, stem: &str) -> Result<Dir> {
        for n in 0..100u32 {
            let path = private_dir.join(format!("{PREFIX}{stem}{n}"));
            match fs::DirBuilder::new().mode(0o711).create(&path) {
                Ok(()) => return Ok(Dir(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot make {}", path.display())),
            }
        }
        bail!("cannot make a FIFO directory in {}", private_dir.display())
    }

    /// The path, the directory left in place.
    fn keep(mut self) -> PathBuf {
        std::mem::take(&mut self.0)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Removes the directories of runs whose sandbox is gone (killed before it
/// could remove its own), and of warm containers past their time.
fn sweep(private_dir: &Path) {
    let Ok(entries) = fs::read_dir(private_dir) else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let stale = match rest.strip_prefix(WARM) {
            Some(warm) => number(warm).is_some_and(|until| until < now),
            None => number(rest).is_some_and(|pid| !alive(pid)),
        };
        if stale {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The number `text` starts with, up to a `-`.
fn number(text: &str) -> Option<u64> {
    text.split_once('-')?.0.parse().ok()
}

fn alive(pid: u64) -> bool {
    // EPERM: alive, as another user's process that took the ID.
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|p| rustix::process::test_kill_process(p) != Err(rustix::io::Errno::SRCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_runs_the_command_through_the_shim_and_mounts_the_fifos_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let pipes = Pipes::make(dir.path(), true).unwrap();
        let plan = crate::plan::for_test(&["printf", "%s", "a b"], &[], "pipes");
        let mut body = crate::request::build(
            &plan,
            crate::request::Purpose::Run,
            crate::request::Dialect::Docker,
        );
        pipes.apply(&mut body);
        assert_eq!(
            body.cmd.unwrap(),
            [
                "/.sandbox-stdio/shim",
                "/.sandbox-stdio",
                "printf",
                "%s",
                "a b"
            ]
        );
        assert_eq!(
            (body.open_stdin, body.attach_stdin),
            (Some(false), Some(false))
        );
        let mounts = body.host_config.unwrap().mounts.unwrap();
        let fifos = mounts
            .iter()
            .find(|m| m.target.as_deref() == Some(MOUNT_POINT))
            .unwrap();
        assert_eq!(fifos.read_only, Some(true));
        assert_eq!(fifos.source.as_deref(), Some(pipes.dir.0.to_str().unwrap()));
        let names: Vec<_> = fs::read_dir(&pipes.dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        // The shim, stdin's FIFO and its `0-opened`, stdout's, stderr's.
        assert_eq!(names.len(), 5, "{names:?}");
        let made = pipes.dir.0.clone();
        drop(pipes);
        assert!(!made.exists(), "removed with the run");
    }

    #[test]
    fn only_a_directory_of_ours_is_taken_for_a_warm_containers_fifos() {
        let private = Path::new("/run/user/1000/sandbox");
        let mount = |source: &str| {
            vec![
                ("/w".to_string(), "/work".to_string()),
                (source.to_string(), MOUNT_POINT.to_string()),
            ]
        };
        let ours = "/run/user/1000/sandbox/stdio-warm-1-2-0";
        assert_eq!(
            mounted_dir(&mount(ours), private),
            Some(PathBuf::from(ours))
        );
        for other in [
            "/tmp/stdio-warm-1-2-0",
            "/run/user/1000/sandbox/identity",
            "/run/user/1000/sandbox/x/stdio-1-0",
        ] {
            assert_eq!(mounted_dir(&mount(other), private), None, "{other}");
        }
        assert_eq!(mounted_dir(&[], private), None);
    }

    #[test]
    fn directories_whose_run_is_gone_or_whose_time_is_past_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let me = std::process::id();
        // A PID no process has: above the kernel's maximum.
        let names = [
            (format!("stdio-{me}-0"), true),
            ("stdio-99999999-0".to_string(), false),
            (format!("stdio-warm-{}-1-0", now + 3600), true),
            (format!("stdio-warm-{}-1-0", now - 1), false),
            ("other".to_string(), true),
        ];
        for (name, _) in &names {
            fs::create_dir(dir.path().join(name)).unwrap();
        }
        sweep(dir.path());
        for (name, stays) in &names {
            assert_eq!(dir.path().join(name).exists(), *stays, "{name}");
        }
    }
}
