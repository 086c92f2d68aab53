//! The project's setup steps (`.sandbox.yml`), in a container of their own,
//! created, run and removed before the command's container exists.
//!
//! The steps come with the repository, so they get nothing of the person
//! running sandbox: the same image and hardening as the run (seccomp,
//! capabilities, user, read-only root, limits, network), the workspace with
//! its protected paths and the package cache, but none of the agent's keys
//! or state directories, nothing from `-e` or `--env-file`, no SSH agent
//! (`plan.env.setup` says which variables). The command's keys are out
//! of reach as well: its container, and so its `/proc/*/environ`, does not
//! exist yet. What setup leaves behind is what it wrote to /work and /cache;
//! its HOME and /tmp go with its container.
//!
//! Its output goes to our stderr, so the command's stdout stays its own; it
//! reads no stdin, so the command's arrives whole. A failing step ends the
//! run with that step's status, a stop signal or the time limit stops it as
//! it would the command, and the container is removed on every path.

use std::ops::ControlFlow;

use anyhow::{Context, Result};
use futures_util::StreamExt;

use super::copy::{copy_back, copy_in};
use super::create::{check_warnings, create_pulling, Made};
use super::signals::Signals;
use super::supervise;
use crate::config::project;
use crate::engine::{short_id, Engine, Output, OutputStream};
use crate::exit::Outcome;
use crate::plan::{RunPlan, Transfer};
use crate::request::Purpose;
use crate::sync;
use crate::ui::Ui;

/// Runs the plan's setup steps, if it has any. `None` when they all
/// succeeded and the command may run; otherwise how the run ends: the
/// failing step's status, or the stop signal's, or the time limit.
pub async fn run(
    engine: &Engine,
    plan: &RunPlan,
    signals: &mut Signals,
    ui: Ui,
) -> Result<Option<Outcome>> {
    if plan.task.setup.is_empty() {
        return Ok(None);
    }
    let (id, warnings) =
        match create_pulling(engine, plan, Purpose::Setup, None, signals, ui).await? {
            Made::Container { id, warnings } => (id, warnings),
            Made::Stopped(outcome) => return Ok(Some(outcome)),
        };
    tracing::debug!(id = short_id(&id), "created the setup container");

    let result = match (check_warnings(plan, &warnings, ui), signals.stops.pending()) {
        (Err(e), _) => Err(e),
        (Ok(()), Some(signal)) => Ok(Outcome::Signalled(signal.number())),
        (Ok(()), None) => run_steps(engine, &id, plan, signals, ui).await,
    };
    // Removed on every path, --keep or not: it holds nothing of the run's.
    super::remove(engine, &id, &result, ui).await;
    match result? {
        Outcome::Exited(0) => Ok(None),
        ended => Ok(Some(ended)),
    }
}

/// Starts the created setup container and supervises it to its end. A
/// copied workspace goes in first and, when the run copies back, what setup
/// changed comes back after, so the command's own copy starts from it.
async fn run_steps(
    engine: &Engine,
    id: &str,
    plan: &RunPlan,
    signals: &mut Signals,
    ui: Ui,
) -> Result<Outcome> {
    let copied = match &plan.workspace.transfer {
        Transfer::Copy { sync_back, .. } => {
            let excludes = sync::Excludes::load(plan.workspace())?;
            let sent = match copy_in(engine, id, plan, &excludes, signals, ui).await? {
                ControlFlow::Continue(sent) => sent,
                ControlFlow::Break(stopped) => return Ok(stopped),
            };
            Some((excludes, sent, *sync_back))
        }
        Transfer::Mount => None,
    };
    let (output, input) = signals.stops.race(engine.attach(id, false, false)).await?;
    drop(input);
    signals
        .stops
        .race(engine.start(id))
        .await
        .with_context(|| format!("cannot run the setup steps of {}", project::FILE))?;
    let outcome = supervise(engine, id, plan, on_stderr(output), None, signals, ui).await?;
    if let Some((excludes, sent, true)) = &copied {
        let back = copy_back(engine, id, plan, sent, excludes, signals, ui).await?;
        if let ControlFlow::Break(stopped) = back {
            return Ok(stopped);
        }
    }
    Ok(outcome)
}

/// All of setup's output on our stderr. The script already sends each
/// step's stdout there; this holds for whatever it does not cover.
fn on_stderr(output: OutputStream) -> OutputStream {
    Box::pin(output.map(|chunk| {
        chunk.map(|c| match c {
            Output::Stdout(bytes) => Output::Stderr(bytes),
            other => other,
        })
    }))
}
