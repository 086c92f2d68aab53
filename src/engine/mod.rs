//! The only module that talks to the container engine (through bollard): connect,
//! pull, create, attach, start, wait, signal, resize, remove, and turning the
//! daemon's errors into sentences a person can act on. Every call has a
//! deadline (`deadline.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    KillContainerOptionsBuilder, RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder,
    ResizeContainerTTYOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWrite;

use crate::exit::CannotRun;

mod deadline;
mod inventory;
mod network;
mod raw;
mod transfer;

pub use deadline::{NoAnswer, ANSWER, ENDING};
use deadline::{Silence, PING, PULL_STALL};
pub use inventory::{now, Listed};

/// 127 or 126 when the runtime's refusal to start is about the command
/// itself: runc says `exec: "NAME": ...`. A missing mount source also reads
/// "no such file or directory", and is the engine's failure, not the
/// command's.
fn cannot_run_code(message: &str) -> Option<u8> {
    let lower = message.to_lowercase();
    let about_the_command = lower.contains("exec: ") || lower.contains("exec format error");
    if lower.contains("executable file not found")
        || (about_the_command && lower.contains("no such file"))
    {
        Some(127)
    } else if about_the_command && lower.contains("permission denied") {
        Some(126)
    } else {
        None
    }
}

/// A connection to the engine.
pub struct Engine {
    docker: Docker,
    host: String,
    /// Learned from the first create it refused: the engine reads seccomp
    /// profiles from files (Podman), so every later request says so.
    seccomp_from_files: AtomicBool,
    /// Whether a call has gone unanswered: later ones wait less.
    silence: Silence,
}

/// bollard's own deadline, out of the way of ours: a day.
const NO_CLIENT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// A chunk of the command's output.
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// The command's output, as the engine delivers it.
pub type OutputStream = Pin<Box<dyn Stream<Item = Result<Output>> + Send>>;
/// The command's stdin.
pub type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// One update from a pull, per layer.
pub struct PullEvent {
    pub layer: Option<String>,
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// Whether `host` is this machine's engine, which sees this machine's files.
pub fn is_local(host: &str) -> bool {
    host.starts_with("unix://") || host.starts_with("npipe://")
}

/// The engine reads `seccomp=` as a file path rather than the profile itself:
/// Podman's Docker-compatible API does.
#[derive(Debug, thiserror::Error)]
#[error("the engine takes seccomp profiles as file paths")]
pub struct SeccompNeedsPath;

/// The image is not present locally.
#[derive(Debug, thiserror::Error)]
#[error("the image is not present locally")]
pub struct ImageMissing;

/// A container's identity and state, as [`Engine::state`] reads them.
#[derive(Debug)]
pub struct ContainerState {
    pub id: String,
    pub running: bool,
    /// When it last started, if the engine says.
    pub started: Option<std::time::SystemTime>,
    /// Its mounts' sources and targets.
    pub mounts: Vec<(String, String)>,
    /// Its first process, in this machine's terms, while it runs.
    pub pid: Option<u32>,
}

/// Another container has the name asked for (the engine's 409 Conflict).
#[derive(Debug, thiserror::Error)]
#[error("another container has this name")]
pub struct NameTaken;

impl Engine {
    /// Connects to `host` (chosen by [`config::layer`](crate::config::layer))
    /// and agrees on an API version with the daemon.
    pub async fn connect(host: &str) -> Result<Engine> {
        let unreachable = || {
            format!(
                "cannot reach the Docker engine at {host} — is the daemon running? \
                 Start it (`sudo systemctl start docker`, or `make engine` as root), or choose \
                 another with --host, DOCKER_HOST or engine.host"
            )
        };
        let docker = Docker::connect_with_host(host)
            .map_err(plain)
            .with_context(unreachable)?
            // bollard's deadline covers a request until the answer's
            // headers, which for an upload is the whole upload; each call
            // here has its own (`deadline.rs`) instead.
            .with_timeout(NO_CLIENT_TIMEOUT);
        let engine = Engine {
            docker,
            host: host.to_string(),
            seccomp_from_files: AtomicBool::new(false),
            silence: Silence::default(),
        };
        // No version negotiation: bollard 0.21 sends every request without
        // the /vX.Y prefix (its URL join drops it), so the daemon answers at
        // its own API version, and negotiating would only cost a /version
        // round trip, which takes the daemon several milliseconds where a
        // ping takes well under one. Recheck this on a bollard upgrade.
        // An engine that takes the connection and never answers is not
        // "down": its own advice (restart it) says more than starting one.
        match engine.silence.within(PING, engine.docker.ping()).await {
            Err(silent) => {
                return Err(anyhow::Error::new(silent))
                    .with_context(|| format!("cannot reach the Docker engine at {host}"))
            }
            Ok(pinged) => pinged.map_err(|e| {
                let e = plain(e);
                // Only a socket: over ssh, "Permission denied" is about keys.
                match host.starts_with("unix://") && is_permission_denied(&e) {
                    // The client's wording of EACCES adds nothing to the line.
                    true => anyhow!(denied(host)),
                    false => e.context(unreachable()),
                }
            })?,
        };
        tracing::info!(host, "connected");
        Ok(engine)
    }

    /// Whether the engine left a call unanswered (or abandoned to a signal)
    /// and has answered none since.
    pub fn is_silent(&self) -> bool {
        self.silence.is_silent()
    }

    /// `call` within `limit`; an engine that does not answer is an error
    /// saying it could not `what`.
    async fn answered<T>(
        &self,
        what: &str,
        limit: Duration,
        call: impl Future<Output = T>,
    ) -> Result<T> {
        self.silence
            .within(limit, call)
            .await
            .map_err(anyhow::Error::new)
            .with_context(|| format!("cannot {what}"))
    }

    /// Where the engine was reached.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the engine has refused an inline seccomp profile.
    pub fn reads_seccomp_from_files(&self) -> bool {
        self.seccomp_from_files.load(Ordering::Relaxed)
    }

    pub fn learn_seccomp_from_files(&self) {
        self.seccomp_from_files.store(true, Ordering::Relaxed);
    }

    /// Pulls `reference`, reporting progress to `report`.
    pub async fn pull(&self, reference: &str, mut report: impl FnMut(PullEvent)) -> Result<()> {
        let options = CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build();
        let mut events = self.docker.create_image(Some(options), None, None);
        let what = format!("pull {reference}");
        while let Some(event) = self.answered(&what, PULL_STALL, events.next()).await? {
            let event = event
                .map_err(plain)
                .with_context(|| format!("cannot pull {reference}"))?;
            if let Some(detail) = event.error_detail.and_then(|d| d.message) {
                return Err(anyhow!("{detail}"))
                    .with_context(|| format!("cannot pull {reference}"));
            }
            let progress = event.progress_detail.unwrap_or_default();
            report(PullEvent {
                layer: event.id,
                status: event.status.unwrap_or_default(),
                current: progress.current.and_then(|c| u64::try_from(c).ok()),
                total: progress.total.and_then(|t| u64::try_from(t).ok()),
            });
        }
        Ok(())
    }

    /// Creates the container, named when `name` is given; returns its id and
    /// the engine's warnings. A missing image comes back as [`ImageMissing`]
    /// so the caller can pull; a name in use as [`NameTaken`].
    pub async fn create(
        &self,
        body: ContainerCreateBody,
        name: Option<&str>,
    ) -> Result<(String, Vec<String>)> {
        let options = name.map(|n| CreateContainerOptionsBuilder::new().name(n).build());
        let created = self.docker.create_container(options, body);
        match self
            .answered("create the container", ANSWER, created)
            .await?
        {
            Ok(created) => Ok((created.id, created.warnings)),
            Err(BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            }) if message.contains("No such image") => Err(anyhow!(ImageMissing)),
            Err(BollardError::DockerResponseServerError {
                status_code: 409,
                message,
            }) => Err(anyhow!("{}", message.trim())).context(NameTaken),
            Err(BollardError::DockerResponseServerError { message, .. })
                if message.contains("opening seccomp profile failed") =>
            {
                Err(anyhow!(SeccompNeedsPath))
            }
            Err(BollardError::DockerResponseServerError { message, .. })
                if message.to_lowercase().contains("unknown runtime")
                    || message.contains("unknown or invalid runtime") =>
            {
                Err(anyhow!("{}", message.trim())).context(
                    "the engine does not know this runtime — `sandbox doctor` lists the ones it \
                     has; register others in the daemon's daemon.json (\"runtimes\")",
                )
            }
            Err(e) => Err(plain(e)).context("the engine refused to create the container"),
        }
    }

    /// The ID (`sha256:...`) of the image `reference` names now; `None` when
    /// it is not present locally.
    pub async fn image_id(&self, reference: &str) -> Result<Option<String>> {
        let inspected = self.docker.inspect_image(reference);
        match self
            .answered("inspect the image", ANSWER, inspected)
            .await?
        {
            Ok(image) => Ok(image.id.filter(|id| !id.is_empty())),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => {
                Err(plain(e)).with_context(|| format!("cannot inspect the image {reference}"))
            }
        }
    }

    /// Renames the container `id` to `to`; `false` when another caller got
    /// there first: the container has gone (404), already has the name
    /// (Docker's 400: a racing rename to the same name), or another
    /// container holds it (409). Docker reserves the new name under the
    /// container's lock after reading its current one (moby
    /// `daemon/rename.go`), so of several callers asking for one name, one
    /// succeeds. Podman answers a rename to the current name with success
    /// instead: see `warm::claim`, which does not rely on this alone.
    pub async fn rename(&self, id: &str, to: &str) -> Result<bool> {
        let options = RenameContainerOptionsBuilder::new().name(to).build();
        let renamed = self.docker.rename_container(id, options);
        match self.answered("rename a container", ANSWER, renamed).await? {
            Ok(()) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(false),
            Err(BollardError::DockerResponseServerError {
                status_code: 400,
                message,
            }) if message.contains("same name") => Ok(false),
            Err(e) => {
                Err(plain(e)).with_context(|| format!("cannot rename container {}", short_id(id)))
            }
        }
    }

    /// The container `name` names now, and whether and since when it runs;
    /// `None` when there is none.
    pub async fn state(&self, name: &str) -> Result<Option<ContainerState>> {
        let inspected = self.docker.inspect_container(name, None);
        let inspected = match self
            .answered("inspect the container", ANSWER, inspected)
            .await?
        {
            Ok(inspected) => inspected,
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(plain(e)).context("cannot inspect the container"),
        };
        let state = inspected.state.unwrap_or_default();
        let started = state.started_at.unwrap_or_default();
        let mounts = inspected.mounts.unwrap_or_default().into_iter();
        Ok(Some(ContainerState {
            id: inspected.id.unwrap_or_default(),
            running: state.running == Some(true),
            started: humantime::parse_rfc3339_weak(&started).ok(),
            mounts: mounts
                .filter_map(|m| Some((m.source?, m.destination?)))
                .collect(),
            pid: state
                .pid
                .and_then(|p| u32::try_from(p).ok())
                .filter(|&p| p > 0),
        }))
    }

    /// Attaches to the container's streams; call before `start` so no output is
    /// lost. A terminal's stream on a local socket is read raw: bollard's
    /// decoder takes a chunk that starts with byte 0, 1 or 2 for a frame
    /// header, which a terminal's output is not, and would eat the bytes.
    pub async fn attach(&self, id: &str, stdin: bool, tty: bool) -> Result<(OutputStream, Input)> {
        if let (true, Some(socket)) = (tty, self.host.strip_prefix("unix://")) {
            let attached = raw::attach_raw(socket, id, stdin);
            return self
                .answered("attach to the container", ANSWER, attached)
                .await?
                .context("cannot attach to the container");
        }
        let options = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdin(stdin)
            .stdout(true)
            .stderr(true)
            .build();
        let attached = self.docker.attach_container(id, Some(options));
        let attached = self
            .answered("attach to the container", ANSWER, attached)
            .await?
            .map_err(plain)
            .context("cannot attach to the container")?;
        let output = attached.output.filter_map(|item| async move {
            match item {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                    Some(Ok(Output::Stdout(message)))
                }
                Ok(LogOutput::StdErr { message }) => Some(Ok(Output::Stderr(message))),
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(plain(e).context("the container's output stream broke"))),
            }
        });
        Ok((Box::pin(output), attached.input))
    }

    /// Starts the container. A command that cannot be found or executed comes
    /// back as [`CannotRun`] (127 / 126, as `docker run`).
    pub async fn start(&self, id: &str) -> Result<()> {
        let started = self.docker.start_container(id, None);
        match self
            .answered("start the container", ANSWER, started)
            .await?
        {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError { message, .. }) => {
                let error = anyhow!("{}", message.trim());
                Err(match cannot_run_code(&message) {
                    Some(code) => error.context(CannotRun { code }),
                    None => error.context("the engine could not start the container"),
                })
            }
            Err(e) => Err(plain(e)).context("the engine could not start the container"),
        }
    }

    /// Waits for the container to stop and returns its exit status. No
    /// deadline: the command takes as long as it takes, and the supervise
    /// loop races this against signals and the time limit.
    pub async fn wait(&self, id: &str) -> Result<i64> {
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut waiting = self.docker.wait_container(id, Some(options));
        match waiting.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            // bollard reports a non-zero status as an error.
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(plain(e)).context("lost track of the container"),
            None => Err(anyhow!("the engine closed the wait without a status")),
        }
    }

    /// Sends `signal` (a name such as `SIGTERM`) to the container's PID 1.
    /// A run that signals is ending, and a signal is the quickest thing an
    /// engine does: it gets [`ENDING`], not [`ANSWER`], so Ctrl-C and
    /// the time limit end a run within seconds whatever the engine does.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let options = KillContainerOptionsBuilder::default()
            .signal(signal)
            .build();
        let killed = self.docker.kill_container(id, Some(options));
        let what = format!("send {signal} to the container");
        match self.answered(&what, ENDING, killed).await? {
            Ok(()) => Ok(()),
            // Already stopped, or gone: nothing left to signal.
            Err(BollardError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(()),
            Err(e) => {
                Err(plain(e)).with_context(|| format!("cannot send {signal} to the container"))
            }
        }
    }

    /// Sets the container's terminal size.
    pub async fn resize(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
        let options = ResizeContainerTTYOptionsBuilder::default()
            .h(rows.into())
            .w(cols.into())
            .build();
        // Asked from inside the supervise loop, which must stay free for
        // signals: a size is not worth more than a moment.
        let resized = self.docker.resize_container_tty(id, options);
        self.answered("resize the container's terminal", ENDING, resized)
            .await?
            .map_err(plain)
            .context("cannot resize the container's terminal")
    }

    /// Whether the kernel's OOM killer stopped the container.
    pub async fn was_oom_killed(&self, id: &str) -> bool {
        let inspected = self.docker.inspect_container(id, None);
        let inspected = self.answered("inspect the container", ANSWER, inspected);
        inspected
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|c| c.state)
            .and_then(|s| s.oom_killed)
            .unwrap_or(false)
    }

    /// Removes the container, running or not, with its anonymous volumes.
    pub async fn remove(&self, id: &str) -> Result<()> {
        self.remove_within(id, ANSWER).await
    }

    /// [`Engine::remove`], waiting at most `limit` for the engine.
    pub async fn remove_within(&self, id: &str, limit: Duration) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        let removed = self.docker.remove_container(id, Some(options));
        let what = format!("remove container {}", short_id(id));
        match self.answered(&what, limit, removed).await? {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => {
                Err(plain(e)).with_context(|| format!("cannot remove container {}", short_id(id)))
            }
        }
    }
}

/// Whether the engine's socket refused us: it is there, but not ours to open.
fn is_permission_denied(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
            || cause
                .to_string()
                .to_lowercase()
                .contains("permission denied")
    })
}

/// How to get access to a socket that refused us. The docker group is
/// root on this machine in all but name, so it is offered with the others.
fn denied(host: &str) -> String {
    format!(
        "cannot reach the Docker engine at {host}: permission denied: you may not open its \
         socket — get access: join the group that owns it, usually docker (`sudo usermod -aG \
         docker $USER`, then log in again; it grants root on this machine), use a rootless \
         engine (--host unix://$XDG_RUNTIME_DIR/docker.sock), or run sandbox with sudo"
    )
}

/// The first 12 characters of an id, as docker prints them.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// bollard's error as one plain sentence: the daemon's own message when it
/// sent one, without the status-code prefix.
fn plain(error: BollardError) -> anyhow::Error {
    match error {
        BollardError::DockerResponseServerError { message, .. } => anyhow!("{}", message.trim()),
        other => anyhow!(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_command_itself_is_a_command_that_cannot_run() {
        let runc = |tail: &str| {
            format!("failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: {tail}: unknown")
        };
        assert_eq!(
            cannot_run_code(&runc(
                r#"exec: "nosuch": executable file not found in $PATH"#
            )),
            Some(127)
        );
        assert_eq!(
            cannot_run_code(&runc(
                r#"exec: "/work/x": stat /work/x: no such file or directory"#
            )),
            Some(127)
        );
        assert_eq!(
            cannot_run_code(&runc(r#"exec: "/work/x": permission denied"#)),
            Some(126)
        );
        let mount = runc(
            r#"error during container init: error mounting "/tmp/a" to rootfs at "/cache": stat /tmp/a: no such file or directory"#,
        );
        assert_eq!(cannot_run_code(&mount), None);
        assert_eq!(cannot_run_code("open /etc/x: permission denied"), None);
    }

    #[test]
    fn the_markers_read_as_sentences() {
        assert_eq!(
            SeccompNeedsPath.to_string(),
            "the engine takes seccomp profiles as file paths"
        );
        assert_eq!(ImageMissing.to_string(), "the image is not present locally");
        let taken = anyhow!("Conflict.").context(NameTaken);
        assert!(taken.is::<NameTaken>());
        assert_eq!(
            format!("{taken:#}"),
            "another container has this name: Conflict."
        );
    }

    #[test]
    fn only_a_socket_is_local() {
        assert!(is_local(crate::config::DEFAULT_HOST));
        assert!(!is_local("tcp://127.0.0.1:2375"));
        assert!(!is_local("ssh://me@box"));
    }
}
