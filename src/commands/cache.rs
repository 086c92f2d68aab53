//! `sandbox cache info|clean`: the package caches kept between runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use indicatif::HumanBytes;

use crate::agent;
use crate::cache;
use crate::cli::CacheCommand;
use crate::config::Config;
use crate::exit::Outcome;
use crate::host_dirs;
use crate::plan;
use crate::ui;

pub fn run(
    command: &CacheCommand,
    config: &Config,
    env: &BTreeMap<String, String>,
    cwd: &Path,
) -> Result<Outcome> {
    let root = cache::root(&config.cache, env)?;
    match command {
        CacheCommand::Info => {
            let workspace = plan::resolve_workspace(None, cwd).ok();
            let here = workspace.as_ref().map(|w| cache::dir_for(&root, w));
            let entries = cache::entries(&root)?;
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            let mut out = String::new();
            let state = if config.cache.enabled { "on" } else { "off" };
            let _ = writeln!(
                out,
                "cache: {} ({state}, {} in all)",
                root.display(),
                HumanBytes(total)
            );
            for e in &entries {
                let workspace = e
                    .workspace
                    .as_ref()
                    .map_or("unknown workspace".into(), |w| w.display().to_string());
                let mark = if here.as_ref() == Some(&e.dir) {
                    "  (this workspace)"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "{:>10}  {}{mark}",
                    HumanBytes(e.bytes).to_string(),
                    ui::sanitize(&workspace)
                );
            }
            // Not a cache, and `clean` leaves it alone; said here so a person
            // looking for what sandbox keeps finds it.
            if let Ok(agents) = agent::state_home(env) {
                let key = workspace
                    .as_deref()
                    .map_or("<workspace>".into(), host_dirs::workspace_key);
                let _ = writeln!(
                    out,
                    "agent state: {} (each workspace's own; not emptied by clean)",
                    agents.join("<agent>").join(key).display()
                );
            }
            ui::print(&out)?;
        }
        CacheCommand::Clean { all: true, .. } => {
            cache::remove(&root)?;
            ui::print(&format!("emptied {}\n", root.display()))?;
        }
        CacheCommand::Clean {
            all: false,
            workspace,
        } => {
            let workspace = plan::resolve_workspace(workspace.as_deref(), cwd)?;
            let dir = cache::dir_for(&root, &workspace);
            cache::remove(&dir)?;
            ui::print(&format!("emptied the cache of {}\n", workspace.display()))?;
        }
    }
    Ok(Outcome::Exited(0))
}
