//! The way back: what the command changed in /work comes back, and only
//! that. A listing made after the command (`listing.rs`) names what differs
//! from what was sent, and each changed file is fetched on its own (or its
//! directory, when most of that changed); without a listing the whole of
//! /work is fetched and compared as it arrives.
//!
//! Every file is written beside its place and renamed over it
//! (`sync::Receiver`), so a failure or a stop signal leaves each host file
//! either as it was or whole and new. What did not come back is named on
//! one line; then the run fails (125) when something went wrong, or ends
//! with the signal's status when it was stopped.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::listing::{self, Listed};
use crate::engine::Engine;
use crate::exit::Outcome;
use crate::plan::{RunPlan, WORKDIR};
use crate::run::signals::{Signals, Stop, Stops};
use crate::sync::{self, Received, Receiver};
use crate::ui::{self, Ui};

/// Below this much archive, fetching all of /work costs less than starting
/// the helper that lists it.
const LISTING_PAYS_FROM: u64 = 4 << 20;
/// Paths named on the line that says what did not come back.
const NAMED: usize = 5;

/// Brings back what the command changed in /work, and says what it was.
/// `Break` with the signal's outcome when a stop signal came meanwhile.
pub(in crate::run) async fn copy_back(
    engine: &Engine,
    id: &str,
    plan: &RunPlan,
    sent: &sync::Manifest,
    excludes: &sync::Excludes,
    signals: &mut Signals,
    ui: Ui,
) -> Result<ControlFlow<Outcome>> {
    let cancel = Arc::new(AtomicBool::new(false));
    let mut receiver = Receiver::open(
        plan.workspace(),
        sent.clone(),
        excludes.clone(),
        plan.workspace.protected_paths.clone(),
        owner_of_what_comes_back(plan),
        cancel.clone(),
    )?;
    let mut units = vec![PathBuf::new()];
    if sync::archive_size(sent) >= LISTING_PAYS_FROM {
        match listing::list(engine, id, plan, &mut signals.stops, ui).await {
            Listed::Listing(listing) => {
                let changed =
                    sync::changed(&listing, sent, excludes, &plan.workspace.protected_paths);
                units = fetchable(sync::fetch_units(&listing, &changed.wanted));
                receiver = blocking(move || {
                    receiver.listed(changed);
                    receiver
                })
                .await?;
            }
            Listed::Unavailable(why) => {
                tracing::info!("fetching all of {WORKDIR}: no listing of it ({why})");
            }
            Listed::Stopped(stop) => {
                ui.notice("stopped before the copy-back: nothing came back");
                return Ok(ControlFlow::Break(Outcome::Signalled(stop.number())));
            }
        }
    }

    tracing::info!("copying the changes back: {} requests", units.len());
    // The whole of /work is about what went in; a listing's few paths are
    // too small to be worth a guess.
    let whole = units.len() == 1 && units[0].as_os_str().is_empty();
    let estimate = sync::estimate::of_manifest(sent);
    let progress = ui.transfer("copying back", move || if whole { estimate() } else { 0 });
    let mut count = progress.counter();
    let mut downloaded = 0;
    let mut stopped = None;
    for unit in &units {
        let (tx, rx) = mpsc::channel(8);
        let fetched = unit.clone();
        let writer = blocking(move || {
            receiver.archive(&fetched, rx);
            receiver
        });
        let archive = engine.download(id, &container_path(unit));
        stopped = pump(archive, tx, &mut signals.stops, &cancel, |n| {
            count(n);
            downloaded += n;
        })
        .await;
        receiver = writer.await?;
        if stopped.is_some() {
            break;
        }
    }
    let received = blocking(move || receiver.finish()).await?;
    progress.finish();
    tracing::info!(
        "copy-back downloaded {downloaded} bytes in {} requests",
        units.len()
    );
    report(&received, ui)?;
    match stopped.or_else(|| signals.stops.pending()) {
        Some(stop) => Ok(ControlFlow::Break(Outcome::Signalled(stop.number()))),
        None => Ok(ControlFlow::Continue(())),
    }
}

/// Blocking file I/O, off the runtime's one thread. It starts at once, not
/// when awaited: the writer must be reading while the archive is fed to it.
fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> impl Future<Output = Result<T>> {
    let task = tokio::task::spawn_blocking(work);
    async move {
        task.await
            .map_err(|_| anyhow!("the workspace writer failed"))
    }
}

/// Feeds one archive to the writer until it ends. A stop signal cuts it,
/// the writer told first, so the channel's end reads as a stop rather than
/// as the archive's end; an engine error is sent down the channel, so the
/// writer treats the archive as broken off.
async fn pump(
    archive: impl Stream<Item = Result<Bytes>>,
    tx: mpsc::Sender<io::Result<Bytes>>,
    stops: &mut Stops,
    cancel: &AtomicBool,
    mut count: impl FnMut(u64),
) -> Option<Stop> {
    let mut archive = pin!(archive);
    let stopped = |stop| {
        cancel.store(true, Ordering::Relaxed);
        Some(stop)
    };
    loop {
        let chunk = tokio::select! {
            chunk = archive.next() => chunk,
            stop = stops.stop() => return stopped(stop),
        };
        let chunk = match chunk {
            None => return None,
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                let _ = tx.send(Err(io::Error::other(format!("{e:#}")))).await;
                return None;
            }
        };
        count(chunk.len() as u64);
        tokio::select! {
            // The writer stopped reading: the archive's end is behind it.
            sent = tx.send(Ok(chunk)) => if sent.is_err() { return None },
            stop = stops.stop() => return stopped(stop),
        }
    }
}

/// `rel` (relative to /work) as the engine's archive API takes it.
fn container_path(rel: &Path) -> String {
    match rel.as_os_str().is_empty() {
        true => WORKDIR.to_string(),
        false => format!("{WORKDIR}/{}", rel.display()),
    }
}

/// The paths to fetch as the engine's API can name them: a name that is not
/// UTF-8 is fetched through its nearest directory that is (the writer takes
/// only the wanted paths from it), and a path inside another one fetched
/// is not fetched again.
fn fetchable(units: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut fetched: Vec<PathBuf> = Vec::new();
    let mut units: Vec<PathBuf> = units
        .into_iter()
        .map(|unit| {
            let named = unit.ancestors().find(|a| a.to_str().is_some());
            named.unwrap_or(Path::new("")).to_path_buf()
        })
        .collect();
    units.sort();
    for unit in units {
        if !fetched.iter().any(|f| unit.starts_with(f)) {
            fetched.push(unit);
        }
    }
    fetched
}

/// Says what came back; an error naming what did not, unless a stop
/// signal ended the copy-back, which is said in a line of its own.
fn report(received: &Received, ui: Ui) -> Result<()> {
    if !received.changes.is_empty() {
        ui.summary(&ui::describe_changes(&received.changes));
    }
    if received.is_complete() {
        return Ok(());
    }
    let missed = describe_missed(received);
    if received.interrupted {
        ui.notice(&format!("stopped during the copy-back: {missed}"));
        return Ok(());
    }
    bail!(
        "the copy-back is incomplete: {missed} — what did not come back is as it was on the \
         host; free space (or fix the cause) and run the command again"
    )
}

/// What did not come back, on one line: paths grouped by why, the first
/// few named, and the deletions held back.
fn describe_missed(received: &Received) -> String {
    let mut parts = Vec::new();
    if !received.missed.is_empty() {
        let mut by_why: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (rel, why) in received.missed.iter().take(NAMED) {
            by_why
                .entry(why)
                .or_default()
                .push(rel.display().to_string());
        }
        let mut named: Vec<String> = (by_why.into_iter())
            .map(|(why, paths)| format!("{} ({why})", paths.join(", ")))
            .collect();
        if received.missed.len() > NAMED {
            named.push(format!("{} more", received.missed.len() - NAMED));
        }
        parts.push(format!("{} did not come back", named.join(", ")));
    }
    if let Some(at) = &received.broken {
        parts.push(format!(
            "the archive broke off at {at}, and what followed did not come back"
        ));
    }
    if received.interrupted && received.missed.is_empty() {
        parts.push(match &received.stopped_at {
            Some(at) => format!("{} and what followed it did not come back", at.display()),
            None => "what had not come back yet did not".to_string(),
        });
    }
    parts.push(match received.held {
        0 => "nothing was deleted".to_string(),
        1 => "1 deletion was held back".to_string(),
        n => format!("{n} deletions were held back"),
    });
    parts.join("; ")
}

/// Who owns what comes back: the container's user when sandbox runs as root
/// for someone else (`sudo`), else whoever sandbox runs as.
fn owner_of_what_comes_back(plan: &RunPlan) -> Option<(u32, u32)> {
    plan.numeric_user()
        .filter(|_| rustix::process::geteuid().is_root())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_utf8_are_fetched_through_their_directory() {
        use std::os::unix::ffi::OsStrExt;
        let odd = PathBuf::from(std::ffi::OsStr::from_bytes(b"src/\xff.txt"));
        let units = vec![
            PathBuf::from("src/a.txt"),
            odd,
            PathBuf::from("docs/b.md"),
            PathBuf::from("src"),
        ];
        assert_eq!(
            fetchable(units),
            [PathBuf::from("docs/b.md"), PathBuf::from("src")]
        );
        assert_eq!(container_path(Path::new("")), "/work");
        assert_eq!(container_path(Path::new("a b/c")), "/work/a b/c");
    }

    #[test]
    fn what_did_not_come_back_reads_on_one_line() {
        let mut received = Received {
            missed: (0..7)
                .map(|i| {
                    (
                        PathBuf::from(format!("f{i}")),
                        "no space left on device".into(),
                    )
                })
                .collect(),
            held: 2,
            ..Received::default()
        };
        received.missed[1].1 = "input/output error".into();
        assert_eq!(
            describe_missed(&received),
            "f1 (input/output error), f0, f2, f3, f4 (no space left on device), 2 more \
             did not come back; 2 deletions were held back"
        );
        let stopped = Received {
            interrupted: true,
            ..Received::default()
        };
        assert_eq!(
            describe_missed(&stopped),
            "what had not come back yet did not; nothing was deleted"
        );
    }
}
