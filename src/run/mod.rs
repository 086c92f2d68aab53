//! `sandbox run`: the pipeline from a resolved plan to an outcome.
//!
//! connect → create (`create.rs`: the request from `request.rs`, pulled on a
//! missing image) → from here every path removes the container → attach (before start, so no output is lost) → raw mode →
//! start → resize → supervise → restore the terminal → remove. The same order
//! as docker/cli's `run.go`. A copied workspace (`copy.rs`) goes in before
//! the start and comes back before the removal; `signals.rs` holds what the
//! supervise loop listens to; `setup.rs` runs the project's setup steps
//! first, in a container of their own that holds no secret.

use std::pin::pin;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::AsyncWriteExt;
use tokio::time::{sleep_until, Instant};

use crate::config::PullPolicy;
use crate::engine::{short_id, Engine};
use crate::exit::Outcome;
use crate::plan::{RunPlan, Transfer};
use crate::protect;
use crate::request::Purpose;
use crate::streams::{self, OutputEnd};
use crate::tty::{self, RawMode};
use crate::ui::Ui;
use crate::warm::{self, Warm};

mod cannot_run;
mod copy;
mod create;
mod setup;
mod signals;

use copy::{run_copied, Copy};
use create::{check_warnings, create_pulling, pull, Made};
use signals::{Signals, Stop};

/// How long a command may take to exit after a forwarded signal (or the time
/// limit) before it is killed.
const GRACE: Duration = Duration::from_secs(5);

pub async fn run(plan: RunPlan, ui: Ui) -> Result<Outcome> {
    // Handlers go in first: from here a Ctrl-C is ours to handle, so it can
    // never strike between create and the removal that must follow it.
    let signals = Signals::new()?;
    let engine = Engine::connect(&plan.lifecycle.host).await?;
    tracing::info!(host = engine.host(), image = %plan.task.image, "running");
    let protections = &plan.workspace.protections;
    let (workspace, private) = (plan.workspace(), &plan.workspace.private_dir);
    let hold = match protections.is_empty() {
        true => None,
        false => Some(protect::Hold::shared(private, workspace)?),
    };
    let label = workspace.to_string_lossy().into_owned();
    if let Some(key) = &protections.key {
        refuse_other_guards(&engine, &label, key).await?;
    }
    let snapshot = protections.prepare(workspace, private, plan.numeric_user())?;
    let result = run_protected(&engine, &plan, signals, ui).await;
    // The container is gone: what the command did to git comes back, and
    // the stand-ins go when nothing else of the workspace's needs them.
    for note in protections.finish(snapshot.as_ref()) {
        ui.warn(&note);
    }
    drop(hold);
    let others = async {
        engine
            .list(false)
            .await
            .map_or(true, |all| all.iter().any(|c| c.workspace == label))
    };
    protections
        .remove_stand_ins(workspace, private, others)
        .await;
    result
}

/// Protections are mounted over paths inside the workspace, which only
/// containers made with the same set cannot move: one made before the
/// configuration, the submodules or git's configuration changed could swap
/// what this run's engine mounts, so the run waits for it to end. Waiting
/// containers of a warm start run no command yet, and do not count.
///
/// An engine whose listing sandbox cannot read (Podman reports a `stopped`
/// state bollard does not know) cannot be asked; the run goes on, as it did
/// before the check existed, and the README says so.
async fn refuse_other_guards(engine: &Engine, workspace: &str, key: &str) -> Result<()> {
    let others = match engine.list(false).await {
        Ok(others) => others,
        Err(e) => {
            tracing::debug!("cannot compare protections with running containers: {e:#}");
            return Ok(());
        }
    };
    let older = others.iter().find(|c| {
        c.workspace == workspace
            && c.guards != key
            && !c.name.starts_with(warm::NAME_PREFIX)
            && !c.is_stopped(crate::engine::now())
    });
    if let Some(older) = older {
        bail!(
            "container {} of this workspace runs with other protections (the protected names, \
             submodules or git's configuration changed since it started) — \
             wait for it to end, or stop it (`docker rm -f {}`), then run again",
            short_id(&older.id),
            short_id(&older.id)
        );
    }
    Ok(())
}

/// The run once the workspace's protections are in place.
async fn run_protected(
    engine: &Engine,
    plan: &RunPlan,
    mut signals: Signals,
    ui: Ui,
) -> Result<Outcome> {
    // Pulled before the image's first use, setup's or the command's.
    if plan.lifecycle.pull == PullPolicy::Always {
        if let Some(stopped) = pull(engine, plan, &mut signals, ui).await? {
            return Ok(stopped);
        }
    }
    // The project's setup steps, in a container of their own (setup.rs).
    if let Some(ended) = setup::run(engine, plan, &mut signals, ui).await? {
        return Ok(ended);
    }
    let warm = plan.lifecycle.warm.map(|idle| Warm::for_plan(plan, idle));
    if let Some(warm) = &warm {
        if let Some(id) = warm::claim(engine, warm).await? {
            tracing::debug!(id = short_id(&id), "claimed a warm container");
            let _next = prepare_next(warm, ui);
            let result = match signals.stops.pending() {
                Some(signal) => Ok(Outcome::Signalled(signal.number())),
                None => hand_over_and_supervise(engine, &id, plan, signals, ui).await,
            };
            return finish(engine, &id, plan, result, ui).await;
        }
    }

    let (id, warnings) = match create_pulling(engine, plan, Purpose::Run, &mut signals, ui).await? {
        Made::Container { id, warnings } => (id, warnings),
        Made::Stopped(outcome) => return Ok(outcome),
    };
    tracing::debug!(id = short_id(&id), "created");

    let mut _next = None;
    let result = match (check_warnings(plan, &warnings, ui), signals.stops.pending()) {
        (Err(e), _) => Err(e),
        // Stopped while the container was being created: it never starts.
        (Ok(()), Some(signal)) => Ok(Outcome::Signalled(signal.number())),
        (Ok(()), None) => {
            if let Some(warm) = &warm {
                _next = prepare_next(warm, ui);
            }
            match &plan.workspace.transfer {
                Transfer::Mount => attach_and_supervise(engine, &id, plan, signals, ui).await,
                Transfer::Copy { sync_back, volume } => {
                    let copy = Copy {
                        sync_back: *sync_back,
                        volume: volume.as_deref(),
                    };
                    run_copied(engine, &id, plan, copy, signals, ui).await
                }
            }
        }
    };
    finish(engine, &id, plan, result, ui).await
}

/// Every run ends here: the container is removed (unless kept) whatever the
/// result, and the result is passed on.
async fn finish(
    engine: &Engine,
    id: &str,
    plan: &RunPlan,
    result: Result<Outcome>,
    ui: Ui,
) -> Result<Outcome> {
    if plan.lifecycle.keep {
        ui.warn(&format!(
            "kept container {} (remove it with `sandbox prune`)",
            short_id(id)
        ));
    } else if let Err(e) = engine.remove(id).await {
        // The run's own result matters more; say what was left behind.
        ui.warn(&format!(
            "{e:#} — remove it with `docker rm -f {}` or `sandbox prune`",
            short_id(id)
        ));
    }
    if let (
        Transfer::Copy {
            volume: Some(volume),
            ..
        },
        false,
    ) = (&plan.workspace.transfer, plan.lifecycle.keep)
    {
        if let Err(e) = engine.remove_volume(volume).await {
            ui.warn(&format!(
                "{e:#} — remove it with `docker volume rm {volume}`"
            ));
        }
    }
    result
}

/// Has the next warm container prepared. Hold the handle for as long as
/// this run goes on: the preparer holds back until it is dropped (or a
/// second has passed).
fn prepare_next(warm: &Warm, ui: Ui) -> Option<std::process::ChildStdin> {
    warm::prepare_in_background(warm)
        .map_err(|e| ui.warn(&format!("the next run will not be warm: {e:#}")))
        .ok()
}

async fn attach_and_supervise(
    engine: &Engine,
    id: &str,
    plan: &RunPlan,
    mut signals: Signals,
    ui: Ui,
) -> Result<Outcome> {
    let (output, input) = engine.attach(id, plan.io.stdin, plan.io.tty).await?;
    let (output, verdict) = cannot_run::watch(output, &plan.task.argv, plan.io.tty);
    let raw = if plan.io.tty { RawMode::enter()? } else { None };
    let result = async {
        (engine.start(id).await).map_err(|e| cannot_run::named(e, &plan.task.argv))?;
        if plan.io.tty {
            if let Some((rows, cols)) = tty::size() {
                // A failed resize leaves the default size; not worth failing the run.
                let _ = engine.resize(id, rows, cols).await;
            }
        }
        if plan.io.stdin {
            streams::pump_stdin(input);
        } else {
            drop(input);
        }
        supervise(engine, id, plan, output, &mut signals, ui).await
    }
    .await;
    // Before the terminal is restored: a line held back goes out as the
    // rest of the output did.
    let result = verdict.conclude(result);
    drop(raw);
    result
}

/// A warm container is already running its waiter: hand it the command line,
/// then treat it as any run. Attaching first keeps every byte of output.
async fn hand_over_and_supervise(
    engine: &Engine,
    id: &str,
    plan: &RunPlan,
    mut signals: Signals,
    ui: Ui,
) -> Result<Outcome> {
    let (output, mut input) = engine.attach(id, true, false).await?;
    input
        .write_all(&warm::handoff(&plan.task.argv))
        .await
        .context("cannot hand the command to the warm container")?;
    input
        .flush()
        .await
        .context("cannot hand the command to the warm container")?;
    if plan.io.stdin {
        streams::pump_stdin(input);
    } else {
        // The command sees EOF, as in a cold run without stdin.
        let _ = input.shutdown().await;
    }
    supervise(engine, id, plan, output, &mut signals, ui).await
}

async fn supervise(
    engine: &Engine,
    id: &str,
    plan: &RunPlan,
    output: crate::engine::OutputStream,
    signals: &mut Signals,
    ui: Ui,
) -> Result<Outcome> {
    let mut output = pin!(streams::forward_output(output));
    let mut output_done = false;
    let mut wait = pin!(engine.wait(id));
    let mut status = None;
    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let deadline = plan.limits.timeout.map(|t| Instant::now() + t);
    let mut timed_out = false;
    // Set when a stop is under way: the moment to stop asking and kill.
    let mut kill_at: Option<Instant> = None;

    // The run is over when the container has stopped *and* its output is all
    // written: the wait can answer before the last bytes arrive.
    while status.is_none() || !output_done {
        let signal = tokio::select! {
            end = &mut output, if !output_done => {
                output_done = true;
                if end? == OutputEnd::ReaderGone {
                    // Nobody reads any more: end the command as a pipe would.
                    tracing::debug!("output reader gone");
                    engine.kill(id, "SIGPIPE").await?;
                    kill_at.get_or_insert(Instant::now() + GRACE);
                }
                continue;
            }
            code = &mut wait, if status.is_none() => {
                status = Some(code?);
                continue;
            }
            _ = signals.window.recv() => {
                if let (true, Some((rows, cols))) = (plan.io.tty, tty::size()) {
                    let _ = engine.resize(id, rows, cols).await;
                }
                continue;
            }
            signal = signals.stops.stop() => signal,
            _ = sleep_until(deadline.unwrap_or(far)), if deadline.is_some() && !timed_out => {
                timed_out = true;
                Stop::Terminate
            }
            _ = sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some() => {
                kill_at = None;
                Stop::Kill
            }
        };
        if status.is_some() {
            continue;
        }
        // A second signal while a stop is under way means "now".
        let signal = if kill_at.is_some() {
            Stop::Kill
        } else {
            signal
        };
        tracing::info!(signal = signal.name(), "stopping the container");
        engine.kill(id, signal.name()).await?;
        if signal != Stop::Kill {
            kill_at = Some(Instant::now() + GRACE);
        }
    }

    let status = status.unwrap_or(-1);
    if timed_out {
        let limit = plan.limits.timeout.map(humantime::format_duration);
        ui.notice(&format!(
            "the command was stopped: it reached the time limit of {} — raise it with --timeout or container.timeout",
            limit.map_or(String::new(), |l| l.to_string())
        ));
        return Ok(Outcome::TimedOut);
    }
    if status == 137 && engine.was_oom_killed(id).await {
        ui.notice(&format!(
            "the command was killed: it hit the memory limit of {} — raise it with --memory or container.memory",
            plan.limits.memory
        ));
    }
    Ok(Outcome::Exited(status))
}
