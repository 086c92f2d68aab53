//! The helper that lists the copied /work once the command has ended, so
//! only what changed is fetched: a container of the run's image, with the
//! run's hardening and user, no network, none of the run's variables, and
//! the run's /work mounted read-only from its container (`VolumesFrom`),
//! runs `find` and `stat` (`sync::LISTING_SCRIPT`).
//!
//! Every image cannot do that (a distroless one has no shell), and an
//! engine may refuse the helper: then the copy-back fetches all of /work,
//! as it would without a listing. So does an output that does not read
//! unambiguously (`sync::parse_listing`).

use std::time::Duration;

use anyhow::{bail, Result};
use bollard::models::ContainerCreateBody;
use futures_util::StreamExt;

use crate::engine::{short_id, Engine, Output};
use crate::labels;
use crate::plan::RunPlan;
use crate::request::{self, Dialect, Purpose};
use crate::run::signals::{Stop, Stops};
use crate::sync;
use crate::ui::Ui;

/// Longer than any listing should take; then the whole of /work is fetched.
const LIMIT: Duration = Duration::from_secs(600);
/// A listing longer than this (about a million entries) is not read.
const MAX_OUTPUT: usize = 64 << 20;

/// What the helper found.
pub enum Listed {
    Listing(sync::Listing),
    /// Why there is no listing: the copy-back fetches all of /work.
    Unavailable(String),
    Stopped(Stop),
}

/// Lists /work of the stopped container `run_id`. The helper is removed on
/// every path.
pub async fn list(
    engine: &Engine,
    run_id: &str,
    plan: &RunPlan,
    stops: &mut Stops,
    ui: Ui,
) -> Listed {
    // Podman reads the profile from a file the helper's request would
    // have to name; its engine is on this machine, where a full copy is cheap.
    if engine.reads_seccomp_from_files() {
        return Listed::Unavailable("the engine reads seccomp profiles from files".into());
    }
    tracing::info!("listing the copied workspace");
    let helper = match engine.create(helper_request(plan, run_id), None).await {
        Ok((helper, _)) => helper,
        Err(e) => return Listed::Unavailable(format!("{e:#}")),
    };
    let listed = tokio::select! {
        output = tokio::time::timeout(LIMIT, output_of(engine, &helper)) => match output {
            Err(_) => Listed::Unavailable(format!("the helper took longer than {LIMIT:?}")),
            Ok(Err(e)) => Listed::Unavailable(format!("{e:#}")),
            Ok(Ok(output)) => match sync::parse_listing(&output) {
                Ok(listing) => {
                    tracing::info!("listed {} entries in {} bytes", listing.len(), output.len());
                    Listed::Listing(listing)
                }
                Err(why) => Listed::Unavailable(format!("its listing cannot be read: {why}")),
            },
        },
        stop = stops.stop() => Listed::Stopped(stop),
    };
    if let Err(e) = engine.remove(&helper).await {
        ui.warn(&format!(
            "{e:#} — remove it with `docker rm -f {}` or `sandbox prune`",
            short_id(&helper)
        ));
    }
    listed
}

/// The run's own request as a container that fills a copy would get it
/// (never reads stdin, no terminal), changed where listing differs.
fn helper_request(plan: &RunPlan, run_id: &str) -> ContainerCreateBody {
    let mut body = request::build(plan, Purpose::Fill, Dialect::Docker);
    body.cmd = Some(vec![
        "/bin/sh".into(),
        "-c".into(),
        sync::LISTING_SCRIPT.into(),
    ]);
    // The image's own variables only: the run's may hold keys.
    body.env = Some(Vec::new());
    if let Some(labels) = &mut body.labels {
        labels.insert(
            labels::COMMAND.into(),
            "(listing the copied workspace)".into(),
        );
    }
    if let Some(host) = &mut body.host_config {
        // The run's /work and nothing else, read-only: the helper reads the
        // very volume the command wrote.
        host.mounts = Some(Vec::new());
        host.volumes_from = Some(vec![format!("{run_id}:ro")]);
        host.network_mode = Some("none".into());
    }
    body
}

/// Starts the helper and returns its stdout once it exited 0.
async fn output_of(engine: &Engine, helper: &str) -> Result<Vec<u8>> {
    let (mut output, input) = engine.attach(helper, false, false).await?;
    drop(input);
    engine.start(helper).await?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(chunk) = output.next().await {
        match chunk? {
            Output::Stdout(bytes) => {
                if stdout.len() + bytes.len() > MAX_OUTPUT {
                    bail!("the listing is longer than {} MiB", MAX_OUTPUT >> 20);
                }
                stdout.extend_from_slice(&bytes);
            }
            Output::Stderr(bytes) if stderr.len() < 1024 => stderr.extend_from_slice(&bytes),
            Output::Stderr(_) => {}
        }
    }
    match engine.wait(helper).await? {
        0 => Ok(stdout),
        status => bail!(
            "the helper exited with {status}: {}",
            String::from_utf8_lossy(&stderr).trim()
        ),
    }
}
