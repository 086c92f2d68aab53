//! The project's setup steps (`.sandbox.yml`), in a container of their own,
//! created, run and removed before the command's container exists.
//!
//! The steps come with the repository, so they get nothing of the person
//! running sandbox: the same image and hardening as the run (seccomp,
//! capabilities, user, read-only root, limits, network), the workspace with
//! its protected paths and the package cache, but none of the agent's keys
//! or state directories, nothing from `-e` or `--env-file`, no SSH agent
//! (`RunPlan::setup_env` says which variables). The command's keys are out
//! of reach as well: its container, and so its `/proc/*/environ`, does not
//! exist yet. What setup leaves behind is what it wrote to /work and /cache;
//! its HOME and /tmp go with its container.
//!
//! Its output goes to our stderr, so the command's stdout stays its own; it
//! reads no stdin, so the command's arrives whole. A failing step ends the
//! run with that step's status, a stop signal or the time limit stops it as
//! it would the command, and the container is removed on every path.

use std::path::Path;

use anyhow::{bail, Context, Result};
use bollard::models::{ContainerCreateBody, Mount, MountType};
use futures_util::StreamExt;

use super::copy::{copy_back, copy_in};
use super::signals::Signals;
use super::{check_warnings, create, missing_image_advice, pull, supervise};
use crate::cache;
use crate::cli::PullPolicy;
use crate::config::project;
use crate::engine::{short_id, Engine, ImageMissing, Output, OutputStream};
use crate::exit::Outcome;
use crate::labels;
use crate::plan::{RunPlan, Transfer, WORKDIR};
use crate::security;
use crate::sync;
use crate::ui::Ui;

/// Runs the plan's setup steps, if it has any. `None` when they all
/// succeeded and the command may run; otherwise how the run ends: the
/// failing step's status, or the stop signal's, or the time limit.
pub async fn run(
    engine: &Engine,
    plan: &mut RunPlan,
    signals: &mut Signals,
    ui: Ui,
) -> Result<Option<Outcome>> {
    if plan.setup.is_empty() {
        return Ok(None);
    }
    // The image is pulled before its first use, here; the command's
    // container then finds it and need not pull again.
    if plan.pull == PullPolicy::Always {
        if let Some(stopped) = pull(engine, plan, signals, ui).await? {
            return Ok(Some(stopped));
        }
        plan.pull = PullPolicy::Missing;
    }
    let body = body(plan);
    // As the command's own create: pull only on "no such image".
    let (id, warnings) = match create(engine, &body, plan).await {
        Err(e) if e.is::<ImageMissing>() => {
            if plan.pull == PullPolicy::Never {
                bail!(
                    "image {} is not present locally and --pull never forbids pulling — {}",
                    plan.image,
                    missing_image_advice(plan, "or use --pull missing")
                );
            }
            if let Some(stopped) = pull(engine, plan, signals, ui).await? {
                return Ok(Some(stopped));
            }
            create(engine, &body, plan).await?
        }
        created => created?,
    };
    tracing::debug!(id = short_id(&id), "created the setup container");

    let result = match (check_warnings(plan, &warnings, ui), signals.stops.pending()) {
        (Err(e), _) => Err(e),
        (Ok(()), Some(signal)) => Ok(Outcome::Exited(128 + signal.number())),
        (Ok(()), None) => run_steps(engine, &id, plan, signals, ui).await,
    };
    // Removed on every path, --keep or not: it holds nothing of the run's.
    if let Err(e) = engine.remove(&id).await {
        ui.warn(&format!(
            "{e:#} — remove it with `docker rm -f {}` or `sandbox prune`",
            short_id(&id)
        ));
    }
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
    let copied = match &plan.transfer {
        Transfer::Copy { sync_back, .. } => {
            let excludes = sync::Excludes::load(plan.workspace())?;
            let sent = copy_in(engine, id, plan, &excludes, ui).await?;
            Some((excludes, sent, *sync_back))
        }
        Transfer::Mount => None,
    };
    let (output, input) = engine.attach(id, false, false).await?;
    drop(input);
    engine
        .start(id)
        .await
        .with_context(|| format!("cannot run the setup steps of {}", project::FILE))?;
    let outcome = supervise(engine, id, plan, on_stderr(output), signals, ui).await?;
    if let Some((excludes, sent, true)) = &copied {
        copy_back(engine, id, plan, sent, excludes, ui).await?;
    }
    Ok(outcome)
}

/// The setup container's create request: the run's, with the setup script
/// for a command, the setup environment, no stdin or terminal, and only
/// the workspace's and the cache's mounts.
fn body(plan: &RunPlan) -> ContainerCreateBody {
    let mut body = security::create_body(plan);
    body.cmd = Some(project::setup_argv(&plan.setup));
    body.env = Some(env(plan));
    body.tty = Some(false);
    body.open_stdin = Some(false);
    body.stdin_once = Some(false);
    body.attach_stdin = Some(false);
    if let Some(labels) = body.labels.as_mut() {
        labels.insert(
            labels::COMMAND.into(),
            format!("(setup, {})", project::FILE),
        );
    }
    if let Some(mounts) = body.host_config.as_mut().and_then(|h| h.mounts.as_mut()) {
        mounts.retain(|m| is_for_setup(m, plan));
        // A copied workspace: a volume of setup's own, gone with it.
        for m in mounts
            .iter_mut()
            .filter(|m| m.typ == Some(MountType::VOLUME))
        {
            m.source = None;
            m.read_only = Some(false);
        }
    }
    body
}

/// Whether setup gets `mount`: the workspace (with every mount that
/// protects it, its git directory included) and the package cache. Everything else, the
/// agent's state and the SSH agent's socket among it, stays out; so does a
/// state directory, wherever it is mounted.
fn is_for_setup(mount: &Mount, plan: &RunPlan) -> bool {
    let target = mount.target.as_deref().unwrap_or_default();
    let under = |dir: &str| {
        target == dir
            || target
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    // A linked worktree's git directory is mounted beside /work.
    let in_work = under(WORKDIR) || under(crate::gitdir::LINKED_TARGET);
    let is_state = mount
        .source
        .as_deref()
        .is_some_and(|source| plan.state_dirs.iter().any(|d| d == Path::new(source)));
    (in_work || target == cache::TARGET) && !is_state
}

/// `NAME=value` entries of the setup environment; the cache's variables
/// only while the cache is mounted (a run goes on without it).
fn env(plan: &RunPlan) -> Vec<String> {
    let pointers = cache::env();
    let mut env: Vec<String> = plan
        .setup_env
        .iter()
        .filter(|entry| plan.cache.is_some() || !pointers.contains(entry))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    // docker-init (tini) passes a signal to its child alone: the setup
    // shell, which acts on it only once the running step has ended. Sent to
    // the process group, a Ctrl-C or the time limit reaches the step itself.
    if plan.init {
        env.push("TINI_KILL_PROCESS_GROUP=1".into());
    }
    env
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::config::Config;
    use crate::plan::Host;
    use clap::Parser;
    use std::collections::BTreeMap;

    fn plan(argv: &[&str], env: &[(&str, &str)]) -> RunPlan {
        let mut full = vec!["sandbox", "run"];
        full.extend_from_slice(argv);
        let Command::Run(args) = Cli::parse_from(full).command else {
            panic!("not a run")
        };
        let cwd = std::env::temp_dir().join(format!("sandbox-setup-{}", std::process::id()));
        std::fs::create_dir_all(cwd.join(".git/hooks")).unwrap();
        let env: BTreeMap<_, _> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let host = Host::quiet(&env, &cwd);
        let setup = ["npm ci".to_string()];
        let config = crate::config::layer(Config::default(), None, &env, &args.flags()).unwrap();
        RunPlan::resolve(&args, &config.config, &setup, &host).unwrap()
    }

    const HOST: [(&str, &str); 5] = [
        ("ANTHROPIC_API_KEY", "sk-secret-123"),
        ("SSH_AUTH_SOCK", "/run/user/1000/ssh.sock"),
        ("XDG_DATA_HOME", "/data"),
        ("XDG_CACHE_HOME", "/c"),
        ("LANG", "C.UTF-8"),
    ];

    #[test]
    fn setup_runs_with_the_workspace_and_cache_and_nothing_personal() {
        let plan = plan(&["--ssh-agent", "-e", "SECRET=typed", "claude"], &HOST);
        let run = security::create_body(&plan);
        let setup = body(&plan);

        assert_eq!(setup.cmd, Some(project::setup_argv(&plan.setup)));
        assert_eq!(run.cmd, Some(vec!["claude".to_string()]));
        let env = setup.env.clone().unwrap().join("\n");
        for personal in [
            "sk-secret-123",
            "SECRET",
            "SSH_AUTH_SOCK",
            "CLAUDE_CONFIG_DIR",
        ] {
            assert!(!env.contains(personal), "{personal}: {env}");
        }
        assert!(
            !env.contains("XDG_CACHE_HOME"),
            "an agent's run has no cache: {env}"
        );
        assert!(env.contains("LANG=C.UTF-8"), "{env}");
        assert!(run
            .env
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|e| e == "ANTHROPIC_API_KEY=sk-secret-123"));

        let targets = |body: &ContainerCreateBody| -> Vec<String> {
            let mounts = body.host_config.as_ref().unwrap().mounts.clone().unwrap();
            mounts.into_iter().filter_map(|m| m.target).collect()
        };
        // Everything that protects the workspace, nothing that is personal.
        let expected: Vec<String> = targets(&run)
            .into_iter()
            .filter(|t| t.starts_with("/work") || t == "/cache")
            .collect();
        assert!(expected.contains(&"/work/.git".to_string()));
        assert_eq!(targets(&setup), expected, "the run has {:?}", targets(&run));
        assert!(targets(&run).contains(&"/home/sandbox/.claude".to_string()));
        assert!(targets(&run).iter().any(|t| t.starts_with("/run/sandbox")));

        assert_eq!(setup.open_stdin, Some(false));
        assert_eq!(setup.attach_stdin, Some(false));
        assert_eq!(setup.tty, Some(false));
        // The same hardening, field by field.
        let mut same = setup.host_config.clone().unwrap();
        same.mounts = None;
        let mut theirs = run.host_config.clone().unwrap();
        theirs.mounts = None;
        assert_eq!(same, theirs);
        assert_eq!((setup.user, setup.image), (run.user, run.image));
        let labels = setup.labels.unwrap();
        assert_eq!(labels[labels::MANAGED], "true", "prune and ls find it");
        assert!(labels[labels::COMMAND].contains("setup"));
    }

    #[test]
    fn without_the_cache_its_variables_go_too() {
        let mut plan = plan(&["true"], &HOST);
        plan.drop_cache();
        let env = body(&plan).env.unwrap().join("\n");
        assert!(!env.contains("XDG_CACHE_HOME"), "{env}");
        assert!(env.contains("TINI_KILL_PROCESS_GROUP=1"), "{env}");
        assert!(env.contains("HOME=/home/sandbox"), "{env}");
    }

    #[test]
    fn a_copied_workspace_gets_a_volume_of_its_own() {
        let plan = plan(
            &["--copy-workspace", "--read-only-workspace", "true"],
            &HOST,
        );
        let mounts = body(&plan).host_config.unwrap().mounts.unwrap();
        assert_eq!(mounts.len(), 1, "{mounts:?}");
        assert_eq!(mounts[0].typ, Some(MountType::VOLUME));
        assert_eq!(mounts[0].source, None);
        assert_eq!(mounts[0].read_only, Some(false));
    }
}
