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
    let world = plan::World {
        make_dirs: !args.dry_run,
        ..plan::World::current(env, cwd)
    };
    let workspace = plan::run_workspace(args.workspace.as_deref(), &world)?;
    let manifest = config::project::load(&workspace)?;
    let layered = config::layer(config, manifest.as_ref(), env, flags)?;
    for note in &layered.notes {
        ui.warn(note);
    }
    let setup = manifest.map(|m| m.project.setup).unwrap_or_default();
    let plan = plan::resolve(args, &layered.config, &setup, &world)?;
    for note in &plan.notes {
        ui.warn(note);
    }
    if args.dry_run {
        ui::print(&plan::render(&plan))?;
        return Ok(Outcome::Exited(0));
    }
    block_on(crate::run::run(plan, ui))
}
