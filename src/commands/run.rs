//! `sandbox run`: the workspace, its project file and the flags layered over
//! the configuration, the plan resolved from them, then printed
//! (`--dry-run`) or run.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use super::block_on;
use crate::cli::RunArgs;
use crate::config::{self, Config, Flags};
use crate::exit::Outcome;
use crate::plan;
use crate::ui::{self, Ui};

pub fn run(
    args: &RunArgs,
    config: Config,
    flags: &Flags,
    env: &BTreeMap<String, String>,
    cwd: &Path,
    ui: Ui,
) -> Result<Outcome> {
    let workspace = plan::resolve_workspace(args.workspace.as_deref(), cwd)?;
    let manifest = config::project::load(&workspace)?;
    let layered = config::layer(config, manifest.as_ref(), env, flags)?;
    for note in &layered.notes {
        ui.warn(note);
    }
    let setup = manifest.map(|m| m.project.setup).unwrap_or_default();
    let host = plan::Host::current(env, cwd);
    let plan = plan::RunPlan::resolve(args, &layered.config, &setup, &host)?;
    if args.dry_run {
        ui::print(&ui::render_plan(&plan))?;
        return Ok(Outcome::Exited(0));
    }
    block_on(crate::run::run(plan, ui))
}
