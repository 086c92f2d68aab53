//! Making a plan's containers: the request in the engine's dialect, the
//! image pulled when the engine has none, and the engine's warnings
//! weighed before anything starts.

use anyhow::{bail, Context, Result};

use super::signals::Signals;
use crate::config::PullPolicy;
use crate::engine::{Engine, ImageMissing, SeccompNeedsPath};
use crate::exit::Outcome;
use crate::image;
use crate::pipes::Pipes;
use crate::plan::RunPlan;
use crate::request::{self, Dialect, Purpose};
use crate::seccomp;
use crate::ui::Ui;

/// A container made, or the stop signal that came first.
pub enum Made {
    Container { id: String, warnings: Vec<String> },
    Stopped(Outcome),
}

/// Creates `plan`'s container for `purpose`. Creating first and pulling only
/// on "no such image" saves an inspect round trip on every run with a
/// local image. A stop signal abandons the wait on the engine; a container
/// the engine makes all the same carries this process as its owner, and the
/// watcher removes it.
pub async fn create_pulling(
    engine: &Engine,
    plan: &RunPlan,
    purpose: Purpose,
    pipes: Option<&Pipes>,
    signals: &mut Signals,
    ui: Ui,
) -> Result<Made> {
    let (id, warnings) = match signals
        .stops
        .race(create(engine, plan, purpose, pipes))
        .await
    {
        Err(e) if e.is::<ImageMissing>() => {
            if plan.lifecycle.pull == PullPolicy::Never {
                bail!(
                    "image {} is not present locally and --pull never forbids pulling — {}",
                    plan.task.image,
                    missing_image_advice(plan, "or use --pull missing")
                );
            }
            if let Some(stopped) = pull(engine, plan, signals, ui).await? {
                return Ok(Made::Stopped(stopped));
            }
            signals
                .stops
                .race(create(engine, plan, purpose, pipes))
                .await?
        }
        created => created?,
    };
    Ok(Made::Container { id, warnings })
}

/// Creates the container in the engine's dialect. Podman is recognised by
/// its refusal of an inline seccomp profile, so Docker users pay nothing for
/// it; the engine remembers, and every later request of this run is made in
/// Podman's dialect from the start, with the profile in a file on this
/// machine (only a local engine can read it). With `pipes`, the command's
/// stdio goes through them.
pub async fn create(
    engine: &Engine,
    plan: &RunPlan,
    purpose: Purpose,
    pipes: Option<&Pipes>,
) -> Result<(String, Vec<String>)> {
    let build = |dialect| {
        let mut body = request::build(plan, purpose, dialect);
        if let Some(pipes) = pipes {
            pipes.apply(&mut body);
        }
        body
    };
    if !engine.reads_seccomp_from_files() {
        let body = build(Dialect::Docker);
        match engine.create(body, None).await {
            Err(e) if e.is::<SeccompNeedsPath>() => engine.learn_seccomp_from_files(),
            created => return created,
        }
    }
    if !crate::engine::is_local(&plan.lifecycle.host) {
        bail!(
            "the engine at {} reads seccomp profiles from its own disk — run sandbox on \
             that machine, or use a Docker engine",
            plan.lifecycle.host
        );
    }
    let file = seccomp::profile_file(&plan.hardening.seccomp, &plan.workspace.private_dir)?;
    let dialect = Dialect::Podman {
        seccomp_file: &file,
    };
    engine.create(build(dialect), None).await
}

/// Pulls the plan's image; a stop signal abandons the pull and says how to exit.
pub async fn pull(
    engine: &Engine,
    plan: &RunPlan,
    signals: &mut Signals,
    ui: Ui,
) -> Result<Option<Outcome>> {
    let reference = image::pull_reference(&plan.task.image);
    let mut progress = ui.pull_progress(&reference);
    let pulled = tokio::select! {
        pulled = engine.pull(&reference, |event| progress.update(event)) => pulled.map(|()| None),
        signal = signals.stops.stop() => Ok(Some(Outcome::Signalled(signal.number()))),
    };
    progress.finish();
    pulled.with_context(|| {
        format!(
            "the image {} is neither local nor pullable — {}",
            plan.task.image,
            missing_image_advice(plan, "or check its name")
        )
    })
}

/// What to do about a missing image: agents' images are built locally.
fn missing_image_advice(plan: &RunPlan, otherwise: &str) -> String {
    match &plan.task.agent {
        Some(agent) => {
            format!("build it with `make images AGENTS={agent}`, or set agents.{agent}.image")
        }
        None => format!("pull or build it first, {otherwise}"),
    }
}

/// A limit the engine could not enforce is a promise broken: refuse to run
/// unless the configuration allows it.
pub fn check_warnings(plan: &RunPlan, warnings: &[String], ui: Ui) -> Result<()> {
    if warnings.is_empty() {
        return Ok(());
    }
    let text = warnings.join("; ");
    if plan.hardening.allow_engine_warnings {
        ui.warn(&format!("the engine warned: {text}"));
        return Ok(());
    }
    bail!("the engine cannot enforce this container's settings: {text} — fix the engine, or set security.allow_engine_warnings: true to run anyway")
}
