//! `sandbox doctor`: everything a run depends on, checked in one go, so a
//! person sees every problem at once rather than one failed run at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{bail, Result};

use crate::config::{self, project, Config, Flags, Source, User};
use crate::engine::Engine;
use crate::exit::Outcome;
use crate::plan::{self, World};
use crate::ui;

mod agents;

/// `loaded` is the configuration file as `config::load` read it: a broken
/// one is reported, and the defaults are used for the rest.
pub async fn run(
    source: &Source,
    loaded: Result<Config>,
    env: &BTreeMap<String, String>,
    cwd: &Path,
    flags: &Flags,
) -> Result<Outcome> {
    let mut out = String::new();
    let mut problems = 0;
    let mut line = |label: &str, text: &str| {
        let _ = writeln!(out, "{label:<10}  {}", ui::sanitize(text));
    };

    let file = source
        .path
        .as_ref()
        .map_or("none".into(), |p| p.display().to_string());
    let config = match loaded {
        Ok(config) => {
            let found = if source.found {
                "in use"
            } else {
                "not found: built-in defaults"
            };
            line("config", &format!("{file} ({found})"));
            config
        }
        Err(e) => {
            problems += 1;
            line(
                "config",
                &format!("{file}: {e:#} — run `sandbox config validate`"),
            );
            Config::default()
        }
    };
    let config = config::layer(config, None, env, flags)?.config;

    let workspace = plan::resolve_workspace(None, cwd)?;
    match project::load(&workspace) {
        Ok(Some(m)) => line(
            "project",
            &format!(
                "{} ({} setup steps)",
                m.path.display(),
                m.project.setup.len()
            ),
        ),
        Ok(None) => line(
            "project",
            &format!("none ({} in {})", project::FILE, workspace.display()),
        ),
        Err(e) => {
            problems += 1;
            line("project", &format!("{e:#}"));
        }
    }

    let host = World::current(env, cwd);
    let user = match &config.container.user {
        Some(user) => user.to_string(),
        None => plan::invoking_user(&host),
    };
    let ids = user.parse::<User>().ok().and_then(|u| u.numeric());
    let writable = std::fs::metadata(&workspace).is_ok_and(|meta| can_write(&meta, ids));
    if !writable {
        problems += 1;
    }
    let verdict = if writable {
        "writable"
    } else {
        "NOT writable (use --read-only-workspace, or chown it)"
    };
    line(
        "workspace",
        &format!("{} as {user}: {verdict}", workspace.display()),
    );

    match Engine::connect(config.engine.host()).await {
        Err(e) => {
            problems += 1;
            line("engine", &format!("{e:#}"));
        }
        Ok(engine) => {
            match engine.about().await {
                Ok(about) => {
                    line(
                        "engine",
                        &format!(
                            "{}: Docker {} on {}, API {}",
                            engine.host(),
                            about.version,
                            about.os,
                            about.api
                        ),
                    );
                    let runtimes: Vec<String> = about
                        .runtimes
                        .iter()
                        .map(|r| match *r == about.default_runtime {
                            true => format!("{r} (default)"),
                            false => r.clone(),
                        })
                        .collect();
                    line("runtimes", &runtimes.join(", "));
                }
                Err(e) => {
                    problems += 1;
                    line("engine", &format!("{}: {e:#}", engine.host()));
                }
            }
            let agents: BTreeMap<String, String> = config
                .agents
                .keys()
                .filter_map(|name| config.agent(name).map(|a| (a.image, name.clone())))
                .collect();
            let images: BTreeSet<&String> = config.images.values().chain(agents.keys()).collect();
            let mut present = BTreeSet::new();
            for image in images {
                let state = match engine.has_image(image).await {
                    Ok(true) => {
                        present.insert(image.clone());
                        "present".to_string()
                    }
                    Ok(false) => match agents.get(image) {
                        Some(agent) => format!("missing (build it: make images AGENTS={agent})"),
                        None => "missing (pulled on first use)".to_string(),
                    },
                    Err(e) => format!("{e:#}"),
                };
                line("image", &format!("{image}: {state}"));
            }
            let built: Vec<String> = config
                .agents
                .keys()
                .filter(|name| {
                    config
                        .agent(name)
                        .is_some_and(|a| present.contains(&a.image))
                })
                .cloned()
                .collect();
            let config_file = source.path.as_deref().filter(|_| source.found);
            for checked in agents::check(&built, config_file) {
                let text = match checked.result {
                    Ok(version) => version,
                    Err(why) => {
                        problems += 1;
                        why
                    }
                };
                line("agent", &format!("{}: {text}", checked.agent));
            }
        }
    }
    ui::print(&out)?;
    if problems > 0 {
        bail!(
            "{problems} problem{} found — see above",
            if problems == 1 { "" } else { "s" }
        );
    }
    Ok(Outcome::Exited(0))
}

/// Whether the user with `ids` (uid, gid) may write to a directory with
/// `meta`, by its mode bits alone: in the container even uid 0 has no
/// capability to override them.
fn can_write(meta: &std::fs::Metadata, ids: Option<(u32, u32)>) -> bool {
    let Some((uid, gid)) = ids else {
        // A name, not numbers: the image decides; do not guess.
        return true;
    };
    let mode = meta.mode();
    if meta.uid() == uid {
        mode & 0o200 != 0
    } else if meta.gid() == gid {
        mode & 0o020 != 0
    } else {
        mode & 0o002 != 0
    }
}
