//! What the engine cannot do for a run whose sandbox dies. It has no
//! wall-clock limit, and a deadline inside the container would be a process
//! the command, running as the same user, can kill. It removes a container
//! on its own only with `AutoRemove`, and only once the container exits, not
//! while it runs on for a dead sandbox; sandbox reads the stopped container
//! besides (the OOM flag for the memory line, a copied workspace coming
//! back, `--keep`), and the wait for the status would have to be registered
//! before the start, which bollard cannot tell (a short command's status
//! would be lost).
//!
//! So each run starts a watcher: a detached `sandbox reap`, in a process
//! group of its own, which reads this process's messages on a pipe. The
//! pipe closes when sandbox exits, however it exits (`kill -9` included),
//! and the watcher then removes every container labelled with this
//! process as its owner (`owner.rs`) and every one whose owner has gone
//! (`sweep.rs`): what a killed sandbox left, and what earlier runs left
//! when their watcher died with them. It also stops a command still
//! running past its time limit, should sandbox be alive but not acting
//! (stopped with SIGSTOP, say). The code in the container cannot reach it.
//!
//! It costs the run one fork and exec (about a millisecond); its listing
//! and removals happen after the run, off its path.

mod owner;
mod seal;
mod sweep;

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use crate::engine::Engine;

pub use owner::{Liveness, Owner};
pub use seal::Seal;
pub use sweep::{owner_of, owner_of_label};

/// How late past a command's own deadline (its time limit and the grace
/// after it) the watcher stops it: sandbox, when it can, goes first.
const LATE: Duration = Duration::from_secs(5);
/// How long the watcher keeps trying an engine that does not answer (one
/// restarting, one stopped with SIGSTOP).
const PERSIST: Duration = Duration::from_secs(600);
/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_secs(10);
/// The watcher's log, in the private runtime directory.
const LOG: &str = "reap.log";

/// The pipe to this process's watcher: one per process, told from wherever
/// the pipeline is. A message that cannot be written is lost, never an
/// error: the run must not depend on its watcher.
static WATCHER: Mutex<Option<ChildStdin>> = Mutex::new(None);

/// What the watcher is told first.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Request {
    host: String,
    /// This process's owner label; `None` where it cannot be named.
    owner: Option<String>,
    /// Where the key that seals owner labels is (`seal.rs`).
    #[serde(default)]
    private_dir: std::path::PathBuf,
}

/// Starts this run's watcher for the engine at `host`. Its errors go to
/// `reap.log` in `private_dir`, never to the run's terminal, which it
/// outlives.
pub fn start(host: &str, private_dir: &Path) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let request = Request {
        host: host.to_string(),
        owner: Owner::current().map(Owner::label),
        private_dir: private_dir.to_path_buf(),
    };
    let mut line = serde_json::to_vec(&request).context("cannot encode the watcher's request")?;
    line.push(b'\n');
    let exe = std::env::current_exe().context("cannot find the sandbox binary")?;
    let mut child = Command::new(exe)
        .arg("reap")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log(private_dir))
        // Neither Ctrl-C at the terminal nor a directory held open.
        .process_group(0)
        .current_dir("/")
        .spawn()
        .context("cannot start the watcher")?;
    let mut stdin = child.stdin.take().context("the watcher has no stdin")?;
    stdin
        .write_all(&line)
        .context("cannot hand the watcher its request")?;
    // Not waited for: it outlives this process on purpose.
    drop(child);
    if let Ok(mut watcher) = WATCHER.lock() {
        *watcher = Some(stdin);
    }
    Ok(())
}

/// Has the watcher remove container `id` if this process dies: for one
/// that carries no owner label (a claimed warm container).
pub fn watch(id: &str) {
    tell(&format!("watch {id}\n"));
}

/// Has the watcher stop container `id` if it still runs at `by` (plus a
/// margin): the time limit and the grace after it.
pub fn deadline(id: &str, by: SystemTime) {
    let secs = by.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    tell(&format!("deadline {id} {secs}\n"));
}

/// Container `id` is gone: nothing more to watch or stop.
pub fn done(id: &str) {
    tell(&format!("done {id}\n"));
}

fn tell(line: &str) {
    if let Ok(mut watcher) = WATCHER.lock() {
        if let Some(stdin) = watcher.as_mut() {
            let _ = stdin.write_all(line.as_bytes());
        }
    }
}

/// One line from the run.
#[derive(Debug, PartialEq, Eq)]
enum Message {
    Request(Request),
    Watch(String),
    Deadline(String, SystemTime),
    Done(String),
}

fn parse(line: &str, first: bool) -> Option<Message> {
    if first {
        return serde_json::from_str(line).ok().map(Message::Request);
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["watch", id] => Some(Message::Watch(id.to_string())),
        ["done", id] => Some(Message::Done(id.to_string())),
        ["deadline", id, secs] => {
            let at = UNIX_EPOCH + Duration::from_secs(secs.parse().ok()?);
            Some(Message::Deadline(id.to_string(), at))
        }
        _ => None,
    }
}

/// `sandbox reap`: the watcher itself, until its run has ended and what it
/// left is gone.
pub async fn serve() -> Result<()> {
    // A closed terminal's hangup is not for the watcher.
    let _hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let (tx, mut rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin().lock();
        for (n, line) in stdin.lines().enumerate() {
            let Ok(line) = line else { break };
            if let Some(message) = parse(&line, n == 0) {
                if tx.send(message).is_err() {
                    break;
                }
            }
        }
    });
    let Some(Message::Request(request)) = rx.recv().await else {
        anyhow::bail!("the watcher got no request");
    };
    // Without the key no container's owner can be believed: only the
    // run's own watched ones go.
    let seal = Seal::load(&request.private_dir)
        .map_err(|e| note(&format!("judging no other container: {e:#}")))
        .ok();
    let mut engine = Connection::new(&request.host, seal);
    let mut watched = Vec::new();
    let mut deadlines: Vec<(SystemTime, String)> = Vec::new();
    loop {
        let next = deadlines.iter().map(|(at, _)| *at).min();
        let pause = next.map_or(Duration::from_secs(3600), |at| {
            at.duration_since(SystemTime::now()).unwrap_or_default()
        });
        tokio::select! {
            message = rx.recv() => match message {
                Some(Message::Watch(id)) => watched.push(id),
                Some(Message::Deadline(id, by)) => deadlines.push((by + LATE, id)),
                Some(Message::Done(id)) => {
                    watched.retain(|w| *w != id);
                    deadlines.retain(|(_, d)| *d != id);
                }
                Some(Message::Request(_)) => {}
                // The run has ended, one way or another.
                None => break,
            },
            () = tokio::time::sleep(pause), if next.is_some() => {
                let now = SystemTime::now();
                let (due, later) = deadlines.into_iter().partition(|(at, _)| *at <= now);
                deadlines = later;
                for (_, id) in due {
                    // Its sandbox is alive but has not stopped it.
                    if let Err(e) = engine.stop(&id).await {
                        note(&format!("cannot stop {id} at its time limit: {e:#}"));
                    }
                }
            }
        }
    }
    engine.clean_up(request.owner.as_deref(), &watched).await
}

/// The engine, reached when there is something to do.
struct Connection<'a> {
    host: &'a str,
    engine: Option<Engine>,
    seal: Option<Seal>,
}

impl<'a> Connection<'a> {
    fn new(host: &'a str, seal: Option<Seal>) -> Connection<'a> {
        Connection {
            host,
            engine: None,
            seal,
        }
    }

    async fn engine(&mut self) -> Result<&Engine> {
        if self.engine.is_none() {
            self.engine = Some(Engine::connect(self.host).await?);
        }
        self.engine.as_ref().context("no engine")
    }

    async fn stop(&mut self, id: &str) -> Result<()> {
        self.engine().await?.kill(id, "SIGKILL").await?;
        note(&format!("stopped {id}: past its time limit"));
        Ok(())
    }

    /// What the run left: the containers it was told of, and every one
    /// whose owner is gone, its own first among them. Tried again while
    /// the engine does not answer, for [`PERSIST`].
    async fn clean_up(&mut self, owner: Option<&str>, watched: &[String]) -> Result<()> {
        let give_up = Instant::now() + PERSIST;
        let mut pause = Duration::from_secs(1);
        loop {
            match self.clean_up_once(owner, watched).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < give_up => {
                    note(&format!("will try again: {e:#}"));
                    // A fresh connection: the old one may be stuck.
                    self.engine = None;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
                Err(e) => return Err(e).context("gave up removing what a run left"),
            }
        }
    }

    async fn clean_up_once(&mut self, owner: Option<&str>, watched: &[String]) -> Result<()> {
        self.engine().await?;
        let engine = self.engine.as_ref().context("no engine")?;
        for id in watched {
            engine.remove(id).await?;
        }
        for line in sweep::sweep(engine, owner, self.seal.as_ref()).await? {
            note(&line);
        }
        Ok(())
    }
}

/// A line in the watcher's log, dated: the log outlives many runs.
fn note(line: &str) {
    let now = humantime::format_rfc3339_seconds(SystemTime::now());
    eprintln!("{now} sandbox reap: {}", crate::ui::sanitize(line));
}

/// `reap.log` in the private directory (`host_dirs::private_log`).
fn log(private_dir: &Path) -> Stdio {
    crate::host_dirs::private_log(private_dir, LOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runs_messages_read_back() {
        let request = Request {
            host: "unix:///var/run/docker.sock".into(),
            owner: Some("b/1/2/3".into()),
            private_dir: "/run/user/1000/sandbox".into(),
        };
        let line = serde_json::to_string(&request).unwrap();
        assert_eq!(parse(&line, true), Some(Message::Request(request)));
        assert_eq!(
            parse("watch abc", false),
            Some(Message::Watch("abc".into()))
        );
        assert_eq!(parse("done abc", false), Some(Message::Done("abc".into())));
        assert_eq!(
            parse("deadline abc 100", false),
            Some(Message::Deadline(
                "abc".into(),
                UNIX_EPOCH + Duration::from_secs(100)
            ))
        );
        for bad in ["", "watch", "deadline abc", "deadline abc soon", "kill abc"] {
            assert_eq!(parse(bad, false), None, "{bad}");
        }
        assert_eq!(parse("not json", true), None);
    }
}
