//! `sandbox run`: the pipeline from a resolved plan to an outcome.
//!
//! connect → create (pull on a missing image) → from here every path removes
//! the container → attach (before start, so no output is lost) → raw mode →
//! start → resize → supervise → restore the terminal → remove. The same order
//! as docker/cli's `run.go`. A copied workspace (`copy.rs`) goes in before
//! the start and comes back before the removal; `signals.rs` holds what the
//! supervise loop listens to; `setup.rs` runs the project's setup steps
//! first, in a container of their own that holds no secret.

use std::pin::pin;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bollard::models::ContainerCreateBody;
use tokio::io::AsyncWriteExt;
use tokio::time::{sleep_until, Instant};

use crate::cache;
use crate::cli::PullPolicy;
use crate::engine::{short_id, Engine, ImageMissing, SeccompNeedsPath};
use crate::exit::Outcome;
use crate::host_dirs;
use crate::plan::{RunPlan, Transfer};
use crate::streams::{self, OutputEnd};
use crate::tty::{self, RawMode};
use crate::ui::Ui;
use crate::warm::{self, Warm};
use crate::{image, protect, security};

mod copy;
mod setup;
mod signals;

use copy::{run_copied, unique_name, Copy};
use signals::{Signals, Stop};

/// How long a command may take to exit after a forwarded signal (or the time
/// limit) before it is killed.
const GRACE: Duration = Duration::from_secs(5);

pub async fn run(mut plan: RunPlan, ui: Ui) -> Result<Outcome> {
    // Handlers go in first: from here a Ctrl-C is ours to handle, so it can
    // never strike between create and the removal that must follow it.
    let signals = Signals::new()?;
    let engine = Engine::connect(&plan.host).await?;
    tracing::info!(host = engine.host(), image = %plan.image, "running");
    // The cache only saves downloads: a run goes on without it.
    if let Some(dir) = &plan.cache {
        if let Err(e) = cache::ensure(dir, plan.workspace(), plan.numeric_user()) {
            ui.warn(&format!(
                "running without the package cache: {e:#} — set cache.dir or pass --no-cache"
            ));
            plan.drop_cache();
        }
    }
    for dir in &plan.state_dirs {
        host_dirs::ensure_owned(dir, plan.numeric_user())
            .context("cannot create the agent's state directory")?;
    }
    let protections = plan.protections.clone();
    let (workspace, private) = (plan.workspace().to_path_buf(), plan.private_dir.clone());
    let hold = match protections.is_empty() {
        true => None,
        false => Some(protect::Hold::shared(&private, &workspace)?),
    };
    let label = workspace.to_string_lossy().into_owned();
    if let Some(key) = &protections.key {
        refuse_other_guards(&engine, &label, key).await?;
    }
    let snapshot = protections.prepare(&workspace, &private, plan.numeric_user())?;
    let result = run_protected(&engine, plan, signals, ui).await;
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
        .remove_stand_ins(&workspace, &private, others)
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
    mut plan: RunPlan,
    mut signals: Signals,
    ui: Ui,
) -> Result<Outcome> {
    // The project's setup steps, in a container of their own (setup.rs).
    if let Some(ended) = setup::run(engine, &mut plan, &mut signals, ui).await? {
        return Ok(ended);
    }
    // A read-only copy needs a named volume, filled before the run. The
    // engine creates it, with the mount's labels, along with the container.
    if let Transfer::Copy { volume, .. } = &mut plan.transfer {
        if plan.mounts[0].read_only {
            *volume = Some(unique_name("sandbox-work"));
        }
    }
    let body = security::create_body(&plan);
    let warm = plan
        .warm
        .map(|idle| Warm::for_run(&body, idle, &plan.host).with_stand_ins(&plan));

    if let Some(warm) = &warm {
        if let Some(id) = warm::claim(engine, warm).await? {
            tracing::debug!(id = short_id(&id), "claimed a warm container");
            let _next = prepare_next(warm, ui);
            let result = match signals.stops.pending() {
                Some(signal) => Ok(Outcome::Exited(128 + signal.number())),
                None => hand_over_and_supervise(engine, &id, &plan, signals, ui).await,
            };
            return finish(engine, &id, &plan, result, ui).await;
        }
    }

    if plan.pull == PullPolicy::Always {
        if let Some(stopped) = pull(engine, &plan, &mut signals, ui).await? {
            return Ok(stopped);
        }
    }
    // Creating first and pulling only on "no such image" saves an inspect
    // round trip on every run with a local image.
    let (id, warnings) = match create(engine, &body, &plan).await {
        Err(e) if e.is::<ImageMissing>() => {
            if plan.pull == PullPolicy::Never {
                bail!(
                    "image {} is not present locally and --pull never forbids pulling — {}",
                    plan.image,
                    missing_image_advice(&plan, "or use --pull missing")
                );
            }
            if let Some(stopped) = pull(engine, &plan, &mut signals, ui).await? {
                return Ok(stopped);
            }
            create(engine, &body, &plan).await?
        }
        created => created?,
    };
    tracing::debug!(id = short_id(&id), "created");

    let mut _next = None;
    let result = match (
        check_warnings(&plan, &warnings, ui),
        signals.stops.pending(),
    ) {
        (Err(e), _) => Err(e),
        // Stopped while the container was being created: it never starts.
        (Ok(()), Some(signal)) => Ok(Outcome::Exited(128 + signal.number())),
        (Ok(()), None) => {
            if let Some(warm) = &warm {
                _next = prepare_next(warm, ui);
            }
            match &plan.transfer {
                Transfer::Mount => attach_and_supervise(engine, &id, &plan, signals, ui).await,
                Transfer::Copy { sync_back, volume } => {
                    let copy = Copy {
                        sync_back: *sync_back,
                        volume: volume.as_deref(),
                    };
                    run_copied(engine, &id, &plan, copy, signals, ui).await
                }
            }
        }
    };
    finish(engine, &id, &plan, result, ui).await
}

/// Creates the run's container. Podman is recognised by its refusal of an
/// inline seccomp profile, so Docker users pay nothing for it; it then gets
/// the request in its own dialect, with the profile written to a file on this
/// machine (only a local engine can read it).
async fn create(
    engine: &Engine,
    body: &ContainerCreateBody,
    plan: &RunPlan,
) -> Result<(String, Vec<String>)> {
    match engine.create(body.clone(), None).await {
        Err(e) if e.is::<SeccompNeedsPath>() => {
            if !crate::engine::is_local(&plan.host) {
                bail!(
                    "the engine at {} reads seccomp profiles from its own disk — run sandbox on \
                     that machine, or use a Docker engine",
                    plan.host
                );
            }
            let path = security::profile_file(&plan.seccomp, &plan.private_dir)?;
            let mut body = body.clone();
            security::for_podman(&mut body, &path);
            engine.create(body, None).await
        }
        created => created,
    }
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
    if plan.keep {
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
    ) = (&plan.transfer, plan.keep)
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

/// Pulls the plan's image; a stop signal abandons the pull and says how to exit.
async fn pull(
    engine: &Engine,
    plan: &RunPlan,
    signals: &mut Signals,
    ui: Ui,
) -> Result<Option<Outcome>> {
    let reference = image::pull_reference(&plan.image);
    let mut progress = ui.pull_progress(&reference);
    let pulled = tokio::select! {
        pulled = engine.pull(&reference, |event| progress.update(event)) => pulled.map(|()| None),
        signal = signals.stops.stop() => Ok(Some(Outcome::Exited(128 + signal.number()))),
    };
    progress.finish();
    pulled.with_context(|| {
        format!(
            "the image {} is neither local nor pullable — {}",
            plan.image,
            missing_image_advice(plan, "or check its name")
        )
    })
}

/// What to do about a missing image: agents' images are built locally.
fn missing_image_advice(plan: &RunPlan, otherwise: &str) -> String {
    match &plan.agent {
        Some(agent) => {
            format!("build it with `make images AGENTS={agent}`, or set agents.{agent}.image")
        }
        None => format!("pull or build it first, {otherwise}"),
    }
}

/// A limit the engine could not enforce is a promise broken: refuse to run
/// unless the configuration allows it.
fn check_warnings(plan: &RunPlan, warnings: &[String], ui: Ui) -> Result<()> {
    if warnings.is_empty() {
        return Ok(());
    }
    let text = warnings.join("; ");
    if plan.allow_engine_warnings {
        ui.warn(&format!("the engine warned: {text}"));
        return Ok(());
    }
    bail!("the engine cannot enforce this container's settings: {text} — fix the engine, or set security.allow_engine_warnings: true to run anyway")
}

async fn attach_and_supervise(
    engine: &Engine,
    id: &str,
    plan: &RunPlan,
    mut signals: Signals,
    ui: Ui,
) -> Result<Outcome> {
    let (output, input) = engine.attach(id, plan.stdin, plan.tty).await?;
    let raw = if plan.tty { RawMode::enter()? } else { None };
    let result = async {
        engine.start(id).await?;
        if plan.tty {
            if let Some((rows, cols)) = tty::size() {
                // A failed resize leaves the default size; not worth failing the run.
                let _ = engine.resize(id, rows, cols).await;
            }
        }
        if plan.stdin {
            streams::pump_stdin(input);
        } else {
            drop(input);
        }
        supervise(engine, id, plan, output, &mut signals, ui).await
    }
    .await;
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
        .write_all(&warm::handoff(&plan.argv()))
        .await
        .context("cannot hand the command to the warm container")?;
    input
        .flush()
        .await
        .context("cannot hand the command to the warm container")?;
    if plan.stdin {
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
    let deadline = plan.timeout.map(|t| Instant::now() + t);
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
                if let (true, Some((rows, cols))) = (plan.tty, tty::size()) {
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
        let limit = plan.timeout.map(humantime::format_duration);
        ui.notice(&format!(
            "the command was stopped: it reached the time limit of {} — raise it with --timeout or container.timeout",
            limit.map_or(String::new(), |l| l.to_string())
        ));
        return Ok(Outcome::TimedOut);
    }
    if status == 137 && engine.was_oom_killed(id).await {
        ui.notice(&format!(
            "the command was killed: it hit the memory limit of {} — raise it with --memory or container.memory",
            plan.memory
        ));
    }
    Ok(Outcome::Exited(status))
}
