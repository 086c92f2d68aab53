//! A run whose workspace is copied rather than mounted (an engine on
//! another machine): the workspace goes in before the command starts, and
//! what the command changed comes back after it, whatever its status
//! (`back.rs`, told what changed by a listing from `listing.rs`).
//!
//! A stop signal is heard at every stage: during the copy in, the upload is
//! abandoned and the command never runs; during the copy back, the file in
//! flight is rolled back. Either way the run ends with the signal's status,
//! and the container goes as on any other path.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use super::attach_and_supervise;
use super::create::create;
use super::signals::Signals;
use crate::engine::Engine;
use crate::exit::Outcome;
use crate::plan::{RunPlan, WORKDIR};
use crate::request::Purpose;
use crate::sync;
use crate::ui::Ui;

mod back;
mod listing;

pub(super) use back::copy_back;

/// How a copied run moves the workspace.
pub struct Copy<'a> {
    pub sync_back: bool,
    /// The named volume a read-only copy is filled into.
    pub volume: Option<&'a str>,
}

/// A run whose workspace is copied: in before the start, the changes back
/// after the command, whatever its status.
pub async fn run_copied(
    engine: &Engine,
    id: &str,
    plan: &RunPlan,
    Copy { sync_back, volume }: Copy<'_>,
    mut signals: Signals,
    ui: Ui,
) -> Result<Outcome> {
    let excludes = sync::Excludes::load(plan.workspace())?;
    let copied = match volume {
        // A read-only volume cannot be written through the run's container:
        // fill it through a container of its own that never starts.
        Some(_) => {
            let (filler, _) = create(engine, plan, Purpose::Fill, None).await?;
            let copied = copy_in(engine, &filler, plan, &excludes, &mut signals, ui).await;
            engine.remove(&filler).await?;
            copied?
        }
        None => copy_in(engine, id, plan, &excludes, &mut signals, ui).await?,
    };
    let sent = match copied {
        ControlFlow::Continue(sent) => sent,
        ControlFlow::Break(stopped) => return Ok(stopped),
    };
    let outcome = attach_and_supervise(engine, id, plan, None, &mut signals, ui).await?;
    if sync_back {
        // A copy-back that fails ends the run with 125; the line says what
        // the command's own status was.
        let back = copy_back(engine, id, plan, &sent, &excludes, &mut signals, ui)
            .await
            .with_context(|| format!("the command exited with {}", outcome.code()))?;
        if let ControlFlow::Break(stopped) = back {
            return Ok(stopped);
        }
    }
    Ok(outcome)
}

/// Streams the workspace into /work of container `id`; a stop signal
/// abandons it, and the command must not run (`Break`).
pub(super) async fn copy_in(
    engine: &Engine,
    id: &str,
    plan: &RunPlan,
    excludes: &sync::Excludes,
    signals: &mut Signals,
    ui: Ui,
) -> Result<ControlFlow<Outcome, sync::Manifest>> {
    if let Some(owner) = plan.numeric_user() {
        give_root(engine, id, plan, owner, ui).await?;
    }
    tracing::info!("copying the workspace in");
    let progress = ui.transfer(
        "copying in",
        sync::estimate::of_workspace(plan.workspace(), excludes),
    );
    let (tx, rx) = mpsc::channel(8);
    let bytes = Arc::new(AtomicU64::new(0));
    let walker = {
        let (workspace, excludes, bytes) = (
            plan.workspace().to_path_buf(),
            excludes.clone(),
            bytes.clone(),
        );
        let mut count = progress.counter();
        let count = move |n| {
            count(n);
            bytes.fetch_add(n, Ordering::Relaxed);
        };
        // Blocking file I/O, off the runtime's one thread.
        tokio::task::spawn_blocking(move || sync::send(&workspace, &excludes, tx, count))
    };
    // A stop drops the upload, and with it the channel: the walk ends at
    // its next chunk, and the engine unpacks no more.
    let (uploaded, stopped) = tokio::select! {
        uploaded = engine.upload(id, WORKDIR, rx) => (Some(uploaded), None),
        stop = signals.stops.stop() => (None, Some(stop)),
    };
    let sent = walker
        .await
        .map_err(|_| anyhow::anyhow!("the workspace reader failed"))?;
    progress.finish();
    // Also a stop that came as the upload ended: the command has not
    // started, and must not.
    if let Some(stop) = stopped.or_else(|| signals.stops.pending()) {
        tracing::info!("{} while copying the workspace in", stop.name());
        return Ok(ControlFlow::Break(Outcome::Signalled(stop.number())));
    }
    // The walk's own error says more than the upload it cut short.
    let sent = sent.context("cannot copy the workspace in")?;
    uploaded.transpose()?;
    let bytes = bytes.load(Ordering::Relaxed);
    tracing::info!("copied the workspace in: {bytes} bytes");
    Ok(ControlFlow::Continue(sent))
}

/// Gives /work itself to the container's user. An engine that will not
/// take the root entry costs only this: the run goes on with /work as the
/// engine made it.
async fn give_root(
    engine: &Engine,
    id: &str,
    plan: &RunPlan,
    owner: (u32, u32),
    ui: Ui,
) -> Result<()> {
    let entry = sync::root_entry(plan.workspace(), owner)?;
    let (tx, rx) = mpsc::channel(1);
    // Cannot fail: the channel has room, and `rx` is alive.
    let _ = tx.send(entry).await;
    drop(tx);
    if let Err(e) = engine.upload(id, WORKDIR, rx).await {
        ui.warn(&format!(
            "{WORKDIR} stays owned by root: {e:#} — the command cannot create \
             or delete entries at its top"
        ));
    }
    Ok(())
}
