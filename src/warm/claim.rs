//! Claiming a waiting warm container for one run, and handing it the command.
//!
//! A claim must be exclusive: a second run handed the same waiter would put
//! its command line into the first one's stdin, and read its output. A rename
//! alone is not exclusive: the engine looks the container up by its old name,
//! then renames whatever it found, so two runs that look it up at once both
//! succeed (Docker 20.10 gives each its different new name; Podman takes a
//! rename to the name a container already has for a success). So a claim is
//! made twice over:
//!
//! - on this machine, claims take turns under a lock in the private runtime
//!   directory: the next one looks the name up after the last rename, and
//!   finds the next container or none. This is what holds on Podman.
//! - on the engine, the container is renamed by its ID to a name made from
//!   that ID: racing claimers ask for the same new name, and Docker renames
//!   under the container's lock after reading its current name (moby
//!   `daemon/rename.go`), so all but one are told it has that name already.
//!   This holds between machines that share an engine.
//!
//! Whatever fails after a claim and before the command starts (the container
//! stopped, the attach failed) shows as a missing acknowledgement from the
//! waiter: the container is removed and the run goes cold. The command never
//! runs twice: the waiter acknowledges just before it execs the command.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::{handoff, Warm, ACK};
use crate::engine::{short_id, Engine, Input, Output, OutputStream};
use crate::pipes::Pipes;

/// A warm container this close to its idle limit is left to expire.
const MARGIN: Duration = Duration::from_secs(5);
/// How long a run waits for its turn to claim before it goes cold. A turn
/// takes two requests to the engine; this is for an engine that hangs.
const TURN_WAIT: Duration = Duration::from_secs(10);
/// The lock that claims take turns under, in the private runtime directory.
const TURN_LOCK: &str = "warm-claim.lock";

/// A warm container claimed by this run: its own, used once and removed.
pub struct Claimed {
    pub id: String,
    /// Its FIFOs' directory, when the command's stdio goes through them.
    stdio: Option<std::path::PathBuf>,
}

/// What a warm container that took the command hands back: its output (the
/// command's, or only the waiter's and the shim's when `pipes`), its stdin,
/// and the FIFOs the command's stdio goes through.
pub struct Handed {
    pub output: OutputStream,
    pub input: Input,
    pub pipes: Option<Pipes>,
}

/// The name a claimed container takes: the same for everyone who claims it,
/// so the engine lets only one of them rename it.
fn claimed_name(id: &str) -> String {
    format!("sandbox-run-{}", short_id(id))
}

/// Claims the warm container for `warm`, if one is waiting and this run gets
/// it; `None` sends the run cold.
///
/// Three requests: the image's tag is looked up (the warm container to claim
/// is the one made for the image the tag names now; a missing image has
/// none, and the cold run pulls it), the container named for it is inspected
/// (its ID, whether it runs, since when), and it is renamed.
pub async fn claim(engine: &Engine, warm: &Warm) -> Result<Option<Claimed>> {
    let Some(image_id) = engine.image_id(warm.image()).await? else {
        return Ok(None);
    };
    let (name, _) = warm.pinned(&image_id);
    let Some(turn) = Turn::take(&warm.private_dir).await else {
        return Ok(None);
    };
    let Some(found) = engine.state(&name).await? else {
        return Ok(None);
    };
    if !found.running {
        // Stopped after its idle time: the next preparer removes it.
        return Ok(None);
    }
    if !engine.rename(&found.id, &claimed_name(&found.id)).await? {
        tracing::debug!(id = short_id(&found.id), "another run claimed it first");
        return Ok(None);
    }
    drop(turn);
    let idle = Duration::from_secs(warm.idle);
    let fresh = found
        .started
        .and_then(|started| started.elapsed().ok())
        .is_some_and(|age| age + MARGIN < idle);
    if !fresh {
        // About to expire: not worth the race with its watchdog. Removed
        // only now that it is ours, so the preparer can make the next one.
        engine.remove(&found.id).await?;
        return Ok(None);
    }
    let stdio = crate::pipes::mounted_dir(&found.mounts, &warm.private_dir);
    Ok(Some(Claimed {
        id: found.id,
        stdio,
    }))
}

impl Claimed {
    /// Hands `argv` to the waiting shell and returns the container's output
    /// (from the command's first byte on) and stdin. `None` when the shell
    /// never took it: the container stopped, or could not be attached to,
    /// or its FIFOs cannot be opened. The command has not started then; the
    /// container is removed, and the run goes cold. `stdin`: the command
    /// reads ours.
    ///
    /// With `tty`, the container's terminal is given `size` (rows, columns)
    /// first, so the command starts with it, and the line goes through the
    /// terminal: what it echoes is dropped with the acknowledgement.
    pub async fn hand_over(
        &self,
        engine: &Engine,
        argv: &[String],
        stdin: bool,
        tty: bool,
        size: Option<(u16, u16)>,
    ) -> Result<Option<Handed>> {
        // Held before the handoff: the shim, which the waiter execs next,
        // finds them open.
        let pipes = match &self.stdio {
            Some(dir) => match Pipes::claimed(dir.clone(), stdin) {
                Ok(pipes) => Some(pipes),
                Err(e) => return self.abandon(engine, &format!("{e:#}")).await,
            },
            None => None,
        };
        // Attached first, so the command's output is all there.
        let (mut output, mut input) = match engine.attach(&self.id, true, tty).await {
            Ok(attached) => attached,
            Err(e) => return self.abandon(engine, &format!("{e:#}")).await,
        };
        if let (true, Some((rows, cols))) = (tty, size) {
            // A failed resize leaves the engine's size, as in a cold run.
            let _ = engine.resize(&self.id, rows, cols).await;
        }
        let line = handoff(argv);
        let written = async {
            input.write_all(&line).await?;
            input.flush().await
        };
        if let Err(e) = written.await {
            // What the shell got is told by the acknowledgement, or its absence.
            tracing::debug!("cannot hand the command over: {e}");
        }
        match acknowledged(&mut output, &self.id, tty).await? {
            Some(early) => {
                let output = futures_util::stream::iter(early).chain(output);
                Ok(Some(Handed {
                    output: Box::pin(output),
                    input,
                    pipes,
                }))
            }
            None => self.abandon(engine, "it stopped first").await,
        }
    }

    async fn abandon<T>(&self, engine: &Engine, why: &str) -> Result<Option<T>> {
        tracing::debug!(
            id = short_id(&self.id),
            "the warm container did not take the command ({why}); running cold"
        );
        engine.remove(&self.id).await?;
        Ok(None)
    }
}

/// Reads `output` up to the waiter's acknowledgement and returns what came
/// with or before it, the acknowledgement taken off; `None` when the output
/// ended without one. On a terminal, what came before it is the terminal's
/// echo of the command line (and the waiter's, never the command's): it is
/// dropped.
async fn acknowledged(
    output: &mut OutputStream,
    id: &str,
    tty: bool,
) -> Result<Option<Vec<Result<Output>>>> {
    let mut early = Vec::new();
    while let Some(chunk) = output.next().await {
        match chunk? {
            Output::Stdout(bytes) if bytes.is_empty() => {}
            Output::Stdout(bytes) if tty => {
                if let Some(at) = bytes.iter().position(|&b| b == ACK) {
                    if at + 1 < bytes.len() {
                        early.push(Ok(Output::Stdout(bytes.slice(at + 1..))));
                    }
                    return Ok(Some(early));
                }
            }
            Output::Stdout(bytes) if bytes[0] == ACK => {
                if bytes.len() > 1 {
                    early.push(Ok(Output::Stdout(bytes.slice(1..))));
                }
                return Ok(Some(early));
            }
            // Only a waiter sandbox did not make would say anything else
            // first; whether the command started is unknown, so it is not
            // run again.
            Output::Stdout(_) => bail!(
                "the warm container {} answered the command unexpectedly — run it again \
                 without --warm, and remove the container with `sandbox prune`",
                short_id(id)
            ),
            stderr @ Output::Stderr(_) => early.push(Ok(stderr)),
        }
    }
    Ok(None)
}

/// This user's turn to claim a warm container on this machine: an exclusive
/// lock on a file in the private runtime directory, released when dropped.
struct Turn {
    _file: std::fs::File,
}

impl Turn {
    /// Waits for the turn, polling: the runtime has one thread, which a
    /// blocking lock would stop, signals and all. `None` when the lock cannot
    /// be had; the run then goes cold rather than claim without it.
    async fn take(private_dir: &Path) -> Option<Turn> {
        use rustix::fs::{flock, FlockOperation, Mode, OFlags};
        if private_dir.as_os_str().is_empty() {
            return None;
        }
        let path = private_dir.join(TURN_LOCK);
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = match rustix::fs::open(&path, flags, Mode::RUSR | Mode::WUSR) {
            Ok(fd) => std::fs::File::from(fd),
            Err(e) => {
                tracing::debug!("no warm start: cannot open {}: {e}", path.display());
                return None;
            }
        };
        let deadline = Instant::now() + TURN_WAIT;
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Some(Turn { _file: file }),
                Err(rustix::io::Errno::WOULDBLOCK) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(e) => {
                    tracing::debug!("no warm start: cannot lock {}: {e}", path.display());
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_claimer_asks_for_the_same_name() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(claimed_name(id), "sandbox-run-0123456789ab");
        assert!(!claimed_name(id).starts_with(super::super::NAME_PREFIX));
    }

    fn stream(chunks: Vec<Output>) -> OutputStream {
        Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)))
    }

    fn text(chunks: Vec<Result<Output>>) -> Vec<String> {
        chunks
            .into_iter()
            .map(|c| match c.unwrap() {
                Output::Stdout(b) => format!("out:{}", String::from_utf8_lossy(&b)),
                Output::Stderr(b) => format!("err:{}", String::from_utf8_lossy(&b)),
            })
            .collect()
    }

    #[tokio::test]
    async fn the_acknowledgement_is_taken_off_and_nothing_else() {
        let ack = |rest: &str| {
            let mut bytes = vec![ACK];
            bytes.extend_from_slice(rest.as_bytes());
            Output::Stdout(bytes.into())
        };
        let mut output = stream(vec![
            Output::Stderr("early\n".into()),
            ack("hello "),
            Output::Stdout("world\n".into()),
        ]);
        let early = acknowledged(&mut output, "id", false)
            .await
            .unwrap()
            .unwrap();
        let rest: Vec<_> = output.collect().await;
        let all: Vec<_> = early.into_iter().chain(rest).collect();
        assert_eq!(text(all), ["err:early\n", "out:hello ", "out:world\n"]);

        let mut output = stream(vec![ack(""), Output::Stdout([ACK].to_vec().into())]);
        let early = acknowledged(&mut output, "id", false)
            .await
            .unwrap()
            .unwrap();
        assert!(early.is_empty());
        let rest: Vec<_> = output.collect().await;
        assert_eq!(rest.len(), 1, "a second ACK byte is the command's own");
    }

    #[tokio::test]
    async fn on_a_terminal_the_echo_before_the_acknowledgement_is_dropped() {
        let mut output = stream(vec![
            Output::Stdout("sh -c 'echo hi'\r".into()),
            Output::Stdout(b"\n\x06$ ".to_vec().into()),
            Output::Stdout("more".into()),
        ]);
        let early = acknowledged(&mut output, "id", true)
            .await
            .unwrap()
            .unwrap();
        let rest: Vec<_> = output.collect().await;
        let all: Vec<_> = early.into_iter().chain(rest).collect();
        assert_eq!(text(all), ["out:$ ", "out:more"]);
        let mut output = stream(vec![Output::Stdout("echo only".into())]);
        let acked = acknowledged(&mut output, "id", true).await.unwrap();
        assert!(acked.is_none(), "an echo is not an acknowledgement");
    }

    #[tokio::test]
    async fn no_acknowledgement_means_the_command_never_started() {
        let mut output = stream(vec![]);
        assert!(acknowledged(&mut output, "id", false)
            .await
            .unwrap()
            .is_none());
        let mut output = stream(vec![Output::Stderr("sh: oops\n".into())]);
        assert!(acknowledged(&mut output, "id", false)
            .await
            .unwrap()
            .is_none());
        let mut output = stream(vec![Output::Stdout("hello".into())]);
        assert!(acknowledged(&mut output, "id", false).await.is_err());
    }

    #[tokio::test]
    async fn claims_take_turns() {
        let dir = tempfile::tempdir().unwrap();
        let first = Turn::take(dir.path()).await.expect("the first turn");
        let second = tokio::time::timeout(Duration::from_millis(100), Turn::take(dir.path()));
        assert!(second.await.is_err(), "waits while the first holds it");
        drop(first);
        assert!(Turn::take(dir.path()).await.is_some());
    }
}
