//! `sandbox run`: the pipeline from a resolved plan to an outcome.
//!
//! connect → create (`create.rs`: the request from `request.rs`, pulled on a
//! missing image) → from here every path removes the container → attach (before start, so no output is lost) → raw mode →
//! start → resize → supervise → restore the terminal → remove. The same order
//! as docker/cli's `run.go`. A copied workspace (`copy.rs`) goes in before
//! the start and comes back before the removal; `signals.rs` holds what the
//! supervise loop listens to; `setup.rs` runs the project's setup steps
//! first, in a container of their own that holds no secret.
//!
//! Every wait on the engine yields to a stop signal, and the ending of a
//! run waits only briefly for an engine that does not answer: what is left
//! then is the watcher's (`reaper`), which removes it once the engine
//! answers, as it does when sandbox itself is killed.

use std::pin::pin;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use tokio::io::AsyncWriteExt;
use tokio::time::{sleep_until, Instant};

use crate::config::PullPolicy;
use crate::egress::sidecar::Sidecar;
use crate::engine::{short_id, Engine, NoAnswer, ANSWER, ENDING};
use crate::exit::Outcome;
use crate::pipes::{self, Flowing, Pipes};
use crate::plan::{RunPlan, Transfer};
use crate::protect;
use crate::reaper;
use crate::request::Purpose;
use crate::streams::{self, OutputEnd};
use crate::tty::{self, RawMode};
use crate::ui::Ui;
use crate::warm::{self, Handed, Warm};

mod cannot_run;
mod copy;
mod create;
mod setup;
mod signals;

use copy::{run_copied, Copy};
use create::{check_warnings, create_pulling, pull, Made};
use signals::{Signals, Stop, Stopped, Stops};

/// How long a command may take to exit after a forwarded signal (or the time
/// limit) before it is killed.
const GRACE: Duration = Duration::from_secs(5);

pub async fn run(plan: RunPlan, ui: Ui) -> Result<Outcome> {
    // Handlers go in first: from here a Ctrl-C is ours to handle, so it can
    // never strike between create and the removal that must follow it.
    let mut signals = Signals::new()?;
    let connected = signals
        .stops
        .race(Engine::connect(&plan.lifecycle.host))
        .await;
    let engine = match connected {
        Ok(engine) => engine,
        Err(e) => return stopped(e, ui),
    };
    tracing::info!(host = engine.host(), image = %plan.task.image, "running");
    let protections = &plan.workspace.protections;
    let (workspace, private) = (plan.workspace(), &plan.workspace.private_dir);
    // Before the first container: from here a killed sandbox leaves nothing.
    if let Err(e) = reaper::start(engine.host(), private) {
        ui.warn(&format!(
            "{e:#} — if sandbox is killed, its container is removed only by a later run"
        ));
    }
    let hold = match protections.is_empty() {
        true => None,
        false => Some(protect::Hold::shared(private, workspace)?),
    };
    let label = workspace.to_string_lossy().into_owned();
    if let Some(key) = &protections.key {
        let checked = signals
            .stops
            .race(refuse_other_guards(&engine, &label, key))
            .await;
        if let Err(e) = checked {
            return stopped(e, ui);
        }
    }
    let snapshot = protections.prepare(workspace, private, plan.numeric_user())?;
    let result = match &plan.egress {
        None => run_protected(&engine, &plan, signals, None, ui).await,
        // Not raced with a stop signal: what it made must be removed, and
        // it ends within its own deadlines; a signal meanwhile ends the run
        // before its first container starts.
        Some(egress) => match Sidecar::prepare(&engine, egress, &plan).await {
            Ok(mut sidecar) => {
                let egress = Some(&mut sidecar);
                let result = run_protected(&engine, &plan, signals, egress, ui).await;
                // After the run's containers, which the network cannot outlive.
                sidecar.finish(&engine, plan.lifecycle.keep, ui).await;
                result
            }
            Err(e) => Err(e),
        },
    };
    let result = result.or_else(|e| stopped(e, ui));
    // The container is gone: what the command did to git comes back, and
    // the stand-ins go when nothing else of the workspace's needs them.
    let notes = protections.finish(snapshot.as_ref());
    for note in &notes {
        ui.warn(note);
    }
    // Podman is recognised on the run's first create: its preparer could not
    // make a waiting container (`warm.rs` speaks Docker's dialect).
    let podman = engine.reads_seccomp_from_files();
    let preparing = !podman && prepare_after(&plan, &result, &notes, ui);
    drop(hold);
    // Its stand-ins stay for the container being prepared.
    if preparing {
        return result;
    }
    // An engine that does not answer cannot tell: assume others.
    let others = async {
        !engine.is_silent()
            && engine
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

/// The run once the workspace's protections are in place. `egress`, the
/// allow-list's proxy, must listen before a container of the run starts.
async fn run_protected(
    engine: &Engine,
    plan: &RunPlan,
    mut signals: Signals,
    mut egress: Option<&mut Sidecar>,
    ui: Ui,
) -> Result<Outcome> {
    // Pulled before the image's first use, setup's or the command's.
    if plan.lifecycle.pull == PullPolicy::Always {
        if let Some(stopped) = pull(engine, plan, &mut signals, ui).await? {
            return Ok(stopped);
        }
    }
    // The project's setup steps, in a container of their own (setup.rs).
    if let (false, Some(egress)) = (plan.task.setup.is_empty(), egress.as_deref_mut()) {
        egress.launch(engine, plan).await?;
    }
    if let Some(ended) = setup::run(engine, plan, &mut signals, ui).await? {
        return Ok(ended);
    }
    // A terminal mangles some bytes of a typed line, and cuts a long one.
    let warm = plan
        .lifecycle
        .warm
        .filter(|_| !plan.io.tty || warm::fits_a_terminal(&plan.task.argv))
        .map(|idle| Warm::for_plan(plan, idle));
    if let Some(warm) = &warm {
        if let Some(claimed) = signals.stops.race(warm::claim(engine, warm)).await? {
            let id = &claimed.id;
            tracing::debug!(id = short_id(id), "claimed a warm container");
            // Its labels are its preparer's: the watcher is told instead.
            reaper::watch(id);
            if let Some(signal) = signals.stops.pending() {
                let stopped = Ok(Outcome::Signalled(signal.number()));
                return finish(engine, id, plan, stopped, ui).await;
            }
            // The terminal's size before the command starts, so the first
            // thing it sees is right; later changes come as in a cold run.
            let size = plan.io.tty.then(tty::size).flatten();
            // `None`: the container never took the command, and is gone.
            let handing =
                claimed.hand_over(engine, &plan.task.argv, plan.io.stdin, plan.io.tty, size);
            let handed = signals.stops.race(handing).await;
            if let Some(handed) = handed.transpose() {
                let result = match handed {
                    Ok(handed) => supervise_warm(engine, id, plan, handed, signals, ui).await,
                    Err(e) => Err(e),
                };
                return finish(engine, id, plan, result, ui).await;
            }
        }
    }

    let pipes = match &plan.workspace.transfer {
        Transfer::Mount => pipes::for_run(plan),
        Transfer::Copy { .. } => None,
    };
    let creating = create_pulling(engine, plan, Purpose::Run, pipes.as_ref(), &mut signals, ui);
    let (made, launched) = match egress.as_deref_mut() {
        Some(egress) => tokio::join!(creating, egress.launch(engine, plan)),
        None => (creating.await, Ok(())),
    };
    let (id, warnings) = match made? {
        Made::Container { id, warnings } => (id, warnings),
        Made::Stopped(outcome) => return Ok(outcome),
    };
    tracing::debug!(id = short_id(&id), "created");

    let ready = check_warnings(plan, &warnings, ui).and(launched);
    let result = match (ready, signals.stops.pending()) {
        (Err(e), _) => Err(e),
        // Stopped while the container was being created: it never starts.
        (Ok(()), Some(signal)) => Ok(Outcome::Signalled(signal.number())),
        (Ok(()), None) => match &plan.workspace.transfer {
            Transfer::Mount => {
                attach_and_supervise(engine, &id, plan, pipes, &mut signals, ui).await
            }
            Transfer::Copy { sync_back, volume } => {
                let copy = Copy {
                    sync_back: *sync_back,
                    volume: volume.as_deref(),
                };
                run_copied(engine, &id, plan, copy, signals, ui).await
            }
        },
    };
    // The proxy has nothing more to carry: it goes while the container does.
    match egress {
        Some(egress) => {
            let proxy_gone = egress.remove_proxy(engine, plan.lifecycle.keep);
            tokio::join!(finish(engine, &id, plan, result, ui), proxy_gone).0
        }
        None => finish(engine, &id, plan, result, ui).await,
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
    if plan.lifecycle.keep {
        ui.warn(&format!(
            "kept container {} (remove it with `sandbox prune`)",
            short_id(id)
        ));
    } else {
        remove(engine, id, &result, ui).await;
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

/// Removes container `id` at the end of a run (or of its setup), or says
/// why it stays: the engine did not answer, or a stop signal came while it
/// was asked. Either way the watcher removes it once the engine answers.
/// An engine already silent is not asked again, and one a stop signal
/// interrupted gets [`ENDING`]: Ctrl-C ends a run within seconds, whatever
/// the engine does.
async fn remove(engine: &Engine, id: &str, result: &Result<Outcome>, ui: Ui) {
    let left = |why: String| {
        ui.warn(&format!(
            "container {} is left for now: {why} — sandbox removes it once the engine \
             answers (or run `sandbox prune`)",
            short_id(id)
        ));
    };
    if engine.is_silent() {
        return left("the engine does not answer".into());
    }
    let interrupted = matches!(result, Err(e) if e.is::<Stopped>());
    let limit = if interrupted { ENDING } else { ANSWER };
    // A new listener: a signal that ended the run is not a second one.
    let mut stops = Stops::new().ok();
    let second = async {
        match stops.as_mut() {
            Some(stops) => stops.stop().await,
            None => std::future::pending().await,
        }
    };
    let removed = tokio::select! {
        removed = engine.remove_within(id, limit) => removed,
        signal = second => return left(format!("stopped by {}", signal.name())),
    };
    match removed {
        Ok(()) => reaper::done(id),
        Err(e) if e.is::<NoAnswer>() => left(format!("{e:#}")),
        // The run's own result matters more; say what was left behind.
        Err(e) => ui.warn(&format!(
            "{e:#} — remove it with `docker rm -f {}` or `sandbox prune`",
            short_id(id)
        )),
    }
}

/// The outcome of a run that a stop signal ended while it waited on the
/// engine, said in a line; any other error stays one.
fn stopped(error: anyhow::Error, ui: Ui) -> Result<Outcome> {
    match error.downcast_ref::<Stopped>() {
        Some(stopped) => {
            ui.notice(&stopped.to_string());
            Ok(Outcome::Signalled(stopped.0.number()))
        }
        None => Err(error),
    }
}

/// Has the next warm container prepared, in the background, once the run
/// is over: nothing of its command is left to change the workspace while
/// the engine makes the mounts, and they are made from a workspace checked
/// after it, the protected paths as the plan has them
/// ([`protect::Protections::check`]) and git's state handed back without a
/// refusal (`notes`). Not at all when a check found something wrong, or the
/// run failed before its command. Whether a preparer was started.
fn prepare_after(plan: &RunPlan, result: &Result<Outcome>, notes: &[String], ui: Ui) -> bool {
    let Some(idle) = plan.lifecycle.warm else {
        return false;
    };
    if result.is_err() || !notes.is_empty() {
        return false;
    }
    if let Err(e) = plan.workspace.protections.check(plan.workspace()) {
        tracing::debug!("no warm container for the next run: {e:#}");
        return false;
    }
    warm::prepare_in_background(&Warm::for_plan(plan, idle))
        .map_err(|e| ui.warn(&format!("the next run will not be warm: {e:#}")))
        .is_ok()
}

/// With `pipes`, the command's stdio goes through them, and the attach
/// stream carries only what the init and the stdio shim say.
async fn attach_and_supervise(
    engine: &Engine,
    id: &str,
    plan: &RunPlan,
    pipes: Option<Pipes>,
    signals: &mut Signals,
    ui: Ui,
) -> Result<Outcome> {
    let stdin = plan.io.stdin && pipes.is_none();
    let attached = engine.attach(id, stdin, plan.io.tty);
    let (output, input) = signals.stops.race(attached).await?;
    let (output, verdict) = cannot_run::watch(output, &plan.task.argv, plan.io.tty);
    let raw = if plan.io.tty { RawMode::enter()? } else { None };
    let result = async {
        let started = signals.stops.race(engine.start(id)).await;
        started.map_err(|e| cannot_run::named(e, &plan.task.argv))?;
        if plan.io.tty {
            if let Some((rows, cols)) = tty::size() {
                // A failed resize leaves the default size; not worth failing the run.
                let _ = engine.resize(id, rows, cols).await;
            }
        }
        if stdin {
            streams::pump_stdin(input);
        } else {
            drop(input);
        }
        let flowing = pipes.map(Pipes::start).transpose()?;
        let seen = flowing.as_ref().map(Flowing::seen);
        let result = supervise(engine, id, plan, output, flowing, signals, ui).await;
        Ok::<_, anyhow::Error>((result, seen))
    }
    .await;
    // Before the terminal is restored: a line held back goes out as the
    // rest of the output did. The command's own output through the FIFOs
    // says it ran, whatever the line says.
    let result = match result {
        Ok((result, seen)) => verdict.conclude_unless(result, seen.is_some_and(|s| s.any())),
        Err(e) => verdict.conclude(Err(e)),
    };
    drop(raw);
    result
}

/// A warm container has taken the command (`warm/claim.rs`): from here it
/// is any run. The command's stdin is ours, or EOF at once as in a cold run
/// without stdin. Through FIFOs, the waiter's stdin is done with, and what
/// the engine's stream still carries is the shim's, as in a cold run. A
/// terminal (never through FIFOs) goes raw only now: until the container
/// acknowledged, nothing typed was the command's.
async fn supervise_warm(
    engine: &Engine,
    id: &str,
    plan: &RunPlan,
    handed: Handed,
    mut signals: Signals,
    ui: Ui,
) -> Result<Outcome> {
    let Handed {
        output,
        mut input,
        pipes,
    } = handed;
    let Some(pipes) = pipes else {
        let raw = if plan.io.tty { RawMode::enter()? } else { None };
        if plan.io.stdin {
            streams::pump_stdin(input);
        } else {
            let _ = input.shutdown().await;
        }
        let result = supervise(engine, id, plan, output, None, &mut signals, ui).await;
        drop(raw);
        return result;
    };
    let _ = input.shutdown().await;
    let (output, verdict) = cannot_run::watch(output, &plan.task.argv, false);
    let flowing = pipes.start()?;
    let seen = flowing.seen();
    let result = supervise(engine, id, plan, output, Some(flowing), &mut signals, ui).await;
    verdict.conclude_unless(result, seen.any())
}

async fn supervise(
    engine: &Engine,
    id: &str,
    plan: &RunPlan,
    output: crate::engine::OutputStream,
    mut pipes: Option<Flowing>,
    signals: &mut Signals,
    ui: Ui,
) -> Result<Outcome> {
    let mut output = pin!(streams::forward_output(output));
    let mut gone = pipes.as_mut().and_then(Flowing::reader_gone);
    let mut output_done = false;
    let mut wait = pin!(engine.wait(id));
    let mut status = None;
    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let deadline = plan.limits.timeout.map(|t| Instant::now() + t);
    if let Some(limit) = plan.limits.timeout {
        // Should sandbox be alive but not acting (stopped), the watcher
        // stops the command a little later.
        reaper::deadline(id, SystemTime::now() + limit + GRACE);
    }
    let mut timed_out = false;
    // The first reason to stop the command, for when the engine takes none.
    let mut reason: Option<Stop> = None;
    // Set when a stop is under way: the moment to stop asking and kill.
    let mut kill_at: Option<Instant> = None;

    // The run is over when the container has stopped *and* its output is all
    // written: the wait can answer before the last bytes arrive.
    while status.is_none() || !output_done {
        let signal = tokio::select! {
            end = &mut output, if !output_done => {
                output_done = true;
                if end? == OutputEnd::ReaderGone {
                    if let Some(ended) = reader_gone(engine, id, &mut kill_at, ui).await {
                        return ended;
                    }
                }
                continue;
            }
            went = told(&mut gone) => {
                gone = None;
                if went.is_some() {
                    if let Some(ended) = reader_gone(engine, id, &mut kill_at, ui).await {
                        return ended;
                    }
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
        let reason = *reason.get_or_insert(signal);
        tracing::info!(signal = signal.name(), "stopping the container");
        if let Err(e) = engine.kill(id, signal.name()).await {
            return match timed_out {
                true => {
                    let limit = describe_limit(plan);
                    unanswered(
                        e,
                        Outcome::TimedOut,
                        &format!("the time limit of {limit} passed"),
                        ui,
                    )
                }
                false => {
                    let why = format!("stopped by {}", reason.name());
                    unanswered(e, Outcome::Signalled(reason.number()), &why, ui)
                }
            };
        }
        if signal != Stop::Kill {
            kill_at = Some(Instant::now() + GRACE);
        }
    }

    // The container is gone, and with it every writer of the FIFOs.
    if let Some(pipes) = pipes {
        if pipes.finish().await? == OutputEnd::ReaderGone {
            tracing::debug!("output reader gone");
        }
    }
    let status = status.unwrap_or(-1);
    if timed_out {
        ui.notice(&format!(
            "the command was stopped: it reached the time limit of {} — raise it with --timeout or container.timeout",
            describe_limit(plan)
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

/// Nobody reads the command's output any more: it is ended as a pipe would
/// end it, then killed if it lingers. `Some` when the engine did not take
/// the signal: the run's outcome then.
async fn reader_gone(
    engine: &Engine,
    id: &str,
    kill_at: &mut Option<Instant>,
    ui: Ui,
) -> Option<Result<Outcome>> {
    tracing::debug!("output reader gone");
    if let Err(e) = engine.kill(id, "SIGPIPE").await {
        let why = "the output's reader went away";
        return Some(unanswered(e, Outcome::Signalled(13), why, ui));
    }
    kill_at.get_or_insert(Instant::now() + GRACE);
    None
}

/// The FIFOs' word that our stdout or stderr lost its reader; never, for
/// none, or once it has been told.
async fn told(gone: &mut Option<tokio::sync::mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match gone {
        Some(gone) => gone.recv().await,
        None => std::future::pending().await,
    }
}

fn describe_limit(plan: &RunPlan) -> String {
    plan.limits
        .timeout
        .map(|t| humantime::format_duration(t).to_string())
        .unwrap_or_default()
}

/// The run ends as `outcome` when the engine did not take the signal that
/// was to end it (`why`): said in one line, the container left to the
/// watcher. Any other failure to signal stays an error.
fn unanswered(error: anyhow::Error, outcome: Outcome, why: &str, ui: Ui) -> Result<Outcome> {
    if !error.is::<NoAnswer>() {
        return Err(error);
    }
    ui.notice(&format!("{why}: {error:#}"));
    Ok(outcome)
}
