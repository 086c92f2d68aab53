//! The only module that talks to the container engine (through bollard): connect,
//! pull, create, attach, start, wait, signal, resize, remove, and turning the
//! daemon's errors into sentences a person can act on.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, Context, Result};
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    DownloadFromContainerOptionsBuilder, KillContainerOptionsBuilder,
    RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder, ResizeContainerTTYOptionsBuilder,
    UploadToContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

use crate::exit::CannotRun;

mod inventory;
mod raw;

pub use inventory::{now, Listed};

/// A connection to the engine.
pub struct Engine {
    docker: Docker,
    host: String,
    /// Learned from the first create it refused: the engine reads seccomp
    /// profiles from files (Podman), so every later request says so.
    seccomp_from_files: AtomicBool,
}

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
            .with_context(unreachable)?;
        // No version negotiation: bollard 0.21 sends every request without
        // the /vX.Y prefix (its URL join drops it), so the daemon answers at
        // its own API version, and negotiating would only cost a /version
        // round trip, which takes the daemon several milliseconds where a
        // ping takes well under one. Recheck this on a bollard upgrade.
        docker.ping().await.map_err(|e| {
            let e = plain(e);
            // Only a socket: over ssh, "Permission denied" is about keys.
            match host.starts_with("unix://") && is_permission_denied(&e) {
                // The client's wording of EACCES adds nothing to the line.
                true => anyhow!(denied(host)),
                false => e.context(unreachable()),
            }
        })?;
        tracing::info!(host, "connected");
        Ok(Engine {
            docker,
            host: host.to_string(),
            seccomp_from_files: AtomicBool::new(false),
        })
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
        while let Some(event) = events.next().await {
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
        match self.docker.create_container(options, body).await {
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
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(image.id.filter(|id| !id.is_empty())),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => {
                Err(plain(e)).with_context(|| format!("cannot inspect the image {reference}"))
            }
        }
    }

    /// Renames a container; `false` when no container has the name `from`.
    /// The engine renames atomically, so of two callers only one succeeds:
    /// this is how a warm container is claimed.
    pub async fn rename(&self, from: &str, to: &str) -> Result<bool> {
        let options = RenameContainerOptionsBuilder::new().name(to).build();
        match self.docker.rename_container(from, options).await {
            Ok(()) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(plain(e)).with_context(|| format!("cannot rename container {from}")),
        }
    }

    /// When the container started, if it is running now.
    pub async fn running_since(&self, id: &str) -> Result<Option<std::time::SystemTime>> {
        let inspected = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(plain)
            .context("cannot inspect the container")?;
        let state = inspected.state.unwrap_or_default();
        if state.running != Some(true) {
            return Ok(None);
        }
        let started = state.started_at.unwrap_or_default();
        Ok(humantime::parse_rfc3339_weak(&started).ok())
    }

    /// Attaches to the container's streams; call before `start` so no output is
    /// lost. A terminal's stream on a local socket is read raw: bollard's
    /// decoder takes a chunk that starts with byte 0, 1 or 2 for a frame
    /// header, which a terminal's output is not, and would eat the bytes.
    pub async fn attach(&self, id: &str, stdin: bool, tty: bool) -> Result<(OutputStream, Input)> {
        if let (true, Some(socket)) = (tty, self.host.strip_prefix("unix://")) {
            return raw::attach_raw(socket, id, stdin)
                .await
                .context("cannot attach to the container");
        }
        let options = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdin(stdin)
            .stdout(true)
            .stderr(true)
            .build();
        let attached = self
            .docker
            .attach_container(id, Some(options))
            .await
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
        match self.docker.start_container(id, None).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError { message, .. }) => {
                let lower = message.to_lowercase();
                let code = if lower.contains("executable file not found")
                    || lower.contains("no such file")
                {
                    Some(127)
                } else if lower.contains("permission denied") {
                    Some(126)
                } else {
                    None
                };
                let error = anyhow!("{}", message.trim());
                Err(match code {
                    Some(code) => error.context(CannotRun { code }),
                    None => error.context("the engine could not start the container"),
                })
            }
            Err(e) => Err(plain(e)).context("the engine could not start the container"),
        }
    }

    /// Waits for the container to stop and returns its exit status.
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
    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let options = KillContainerOptionsBuilder::default()
            .signal(signal)
            .build();
        match self.docker.kill_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // Already stopped: nothing left to signal.
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
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
        self.docker
            .resize_container_tty(id, options)
            .await
            .map_err(plain)
            .context("cannot resize the container's terminal")
    }

    /// Whether the kernel's OOM killer stopped the container.
    pub async fn was_oom_killed(&self, id: &str) -> bool {
        let inspected = self.docker.inspect_container(id, None).await;
        inspected
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.oom_killed)
            .unwrap_or(false)
    }

    /// Unpacks the tar stream from `chunks` into `path` in the container,
    /// which may be created and not yet started.
    pub async fn upload(
        &self,
        id: &str,
        path: &str,
        mut chunks: mpsc::Receiver<Bytes>,
    ) -> Result<()> {
        let options = UploadToContainerOptionsBuilder::new().path(path).build();
        let stream = futures_util::stream::poll_fn(move |cx| chunks.poll_recv(cx));
        self.docker
            .upload_to_container(id, Some(options), bollard::body_stream(stream))
            .await
            .map_err(plain)
            .with_context(|| format!("cannot copy into {path} in the container"))
    }

    /// `path` in the container (stopped or not) as a tar stream.
    pub fn download(&self, id: &str, path: &str) -> impl Stream<Item = Result<Bytes>> + '_ {
        let options = DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let path = path.to_string();
        self.docker
            .download_from_container(id, Some(options))
            .map(move |chunk| {
                chunk
                    .map_err(plain)
                    .with_context(|| format!("cannot copy {path} out of the container"))
            })
    }

    /// Removes the container, running or not, with its anonymous volumes.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
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
