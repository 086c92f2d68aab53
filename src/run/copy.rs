//! A run whose workspace is copied rather than mounted (an engine on
//! another machine): the workspace goes in before the command starts, and
//! what the command changed comes back after it, whatever its status.

use std::io;
use std::pin::pin;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::attach_and_supervise;
use super::create::create;
use super::signals::Signals;
use crate::engine::Engine;
use crate::exit::Outcome;
use crate::plan::{RunPlan, WORKDIR};
use crate::request::Purpose;
use crate::sync;
use crate::ui::{self, Ui};

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
    signals: Signals,
    ui: Ui,
) -> Result<Outcome> {
    let excludes = sync::Excludes::load(plan.workspace())?;
    let sent = match volume {
        // A read-only volume cannot be written through the run's container:
        // fill it through a container of its own that never starts.
        Some(_) => {
            let (filler, _) = create(engine, plan, Purpose::Fill).await?;
            let sent = copy_in(engine, &filler, plan, &excludes, ui).await;
            engine.remove(&filler).await?;
            sent?
        }
        None => copy_in(engine, id, plan, &excludes, ui).await?,
    };
    let outcome = attach_and_supervise(engine, id, plan, signals, ui).await?;
    if sync_back {
        copy_back(engine, id, plan, &sent, &excludes, ui).await?;
    }
    Ok(outcome)
}

/// Streams the workspace into /work of container `id`.
pub(super) async fn copy_in(
    engine: &Engine,
    id: &str,
    plan: &RunPlan,
    excludes: &sync::Excludes,
    ui: Ui,
) -> Result<sync::Manifest> {
    if let Some(owner) = plan.numeric_user() {
        give_root(engine, id, plan, owner, ui).await?;
    }
    let progress = ui.transfer(
        "copying in",
        sync::estimate::of_workspace(plan.workspace(), excludes),
    );
    let (tx, rx) = mpsc::channel(8);
    let walker = {
        let (workspace, excludes, count) = (
            plan.workspace().to_path_buf(),
            excludes.clone(),
            progress.counter(),
        );
        // Blocking file I/O, off the runtime's one thread.
        tokio::task::spawn_blocking(move || sync::send(&workspace, &excludes, tx, count))
    };
    let uploaded = engine.upload(id, WORKDIR, rx).await;
    let sent = walker
        .await
        .map_err(|_| anyhow::anyhow!("the workspace reader failed"))?;
    progress.finish();
    // The walk's own error says more than the upload it cut short.
    let sent = sent.context("cannot copy the workspace in")?;
    uploaded?;
    Ok(sent)
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

/// Brings back what the command changed in /work, and says what it was.
pub(super) async fn copy_back(
    engine: &Engine,
    id: &str,
    plan: &RunPlan,
    sent: &sync::Manifest,
    excludes: &sync::Excludes,
    ui: Ui,
) -> Result<()> {
    let progress = ui.transfer("copying back", sync::estimate::of_manifest(sent));
    let mut count = progress.counter();
    let (tx, rx) = mpsc::channel(8);
    let writer = {
        let (workspace, sent, excludes, protected) = (
            plan.workspace().to_path_buf(),
            sent.clone(),
            excludes.clone(),
            plan.workspace.protected_paths.clone(),
        );
        let owner = owner_of_what_comes_back(plan);
        tokio::task::spawn_blocking(move || {
            sync::receive(&workspace, &sent, &excludes, &protected, owner, rx)
        })
    };
    let mut archive = pin!(engine.download(id, WORKDIR));
    let mut streamed = Ok(());
    while let Some(chunk) = archive.next().await {
        match chunk {
            Ok(chunk) => {
                count(chunk.len() as u64);
                if tx.send(Ok(chunk)).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                // Told, the writer stops before deleting anything the
                // missing part would have shown to be still there.
                let _ = tx.send(Err(io::Error::other(format!("{e:#}")))).await;
                streamed = Err(e);
                break;
            }
        }
    }
    drop(tx);
    let changes = writer
        .await
        .map_err(|_| anyhow::anyhow!("the workspace writer failed"))?;
    progress.finish();
    streamed?;
    let changes = changes.context("cannot copy the command's changes back")?;
    if !changes.is_empty() {
        ui.summary(&ui::describe_changes(&changes));
    }
    Ok(())
}

/// Who owns what comes back: the container's user when sandbox runs as root
/// for someone else (`sudo`), else whoever sandbox runs as.
fn owner_of_what_comes_back(plan: &RunPlan) -> Option<(u32, u32)> {
    plan.numeric_user()
        .filter(|_| rustix::process::geteuid().is_root())
}
