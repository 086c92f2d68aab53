//! What the server's stopped runs may have left for their watchers.
//!
//! A run stopped while it waits on the engine (creating or starting its
//! container) gives the engine 2 seconds to remove the container, then
//! leaves it to its watcher, which removes it moments after the run has
//! ended. The server promises more: when it exits, its runs' containers
//! are gone. So once every stopped run has ended, it removes what they left
//! itself, as the watcher would: containers of this workspace whose sandbox
//! process has ended (sealed owner labels, `reaper`). Live runs of the same
//! workspace from elsewhere, and warm containers still waiting, are not
//! touched.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::engine::{short_id, Engine};
use crate::reaper::{owner_of, Liveness, Seal};

/// How long the server waits for the engine to remove what is left.
const LIMIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(250);

/// Removes the containers of `workspace` whose runs have ended, until none
/// is left or [`LIMIT`] passes. Returns the ids still there.
pub async fn remove(host: &str, workspace: &Path, private_dir: &Path) -> Result<Vec<String>> {
    let seal = Seal::load(private_dir)?;
    let work = async {
        let engine = Engine::connect(host).await?;
        loop {
            let left = left_by_ended_runs(&engine, workspace, &seal).await?;
            if left.is_empty() {
                return Ok(left);
            }
            for id in &left {
                // The watcher may be removing it too: either of us will do.
                if let Err(e) = engine.remove(id).await {
                    tracing::debug!("removing {}: {e:#}", short_id(id));
                }
            }
            tokio::time::sleep(POLL).await;
        }
    };
    match tokio::time::timeout(LIMIT, work).await {
        Ok(result) => result,
        Err(_) => {
            let engine = Engine::connect(host).await?;
            left_by_ended_runs(&engine, workspace, &seal).await
        }
    }
}

async fn left_by_ended_runs(engine: &Engine, workspace: &Path, seal: &Seal) -> Result<Vec<String>> {
    let workspace = workspace.to_string_lossy();
    Ok(engine
        .list(false)
        .await?
        .into_iter()
        .filter(|c| {
            c.workspace == workspace
                && !c.kept
                && !c.name.starts_with(crate::warm::NAME_PREFIX)
                && owner_of(c, None, Some(seal)) == Liveness::Gone
        })
        .map(|c| c.id)
        .collect())
}
