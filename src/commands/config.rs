//! `sandbox config show|path|init|edit|validate`. None of them needs the file
//! to be valid first: they are how a person finds out what is wrong with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cli::ConfigCommand;
use crate::config::{self, check, Source};
use crate::exit::Outcome;
use crate::ui;

/// The file `config init` writes: every key with its default, commented.
const EXAMPLE: &str = include_str!("../../config.example.yaml");

pub fn run(
    command: &ConfigCommand,
    source: &Source,
    env: &BTreeMap<String, String>,
) -> Result<Outcome> {
    match command {
        ConfigCommand::Show => {
            ui::print(&config::load(source)?.to_yaml()?)?;
            Ok(Outcome::Exited(0))
        }
        ConfigCommand::Path => {
            ui::print(&format!("{}\n", path(source)?.display()))?;
            Ok(Outcome::Exited(0))
        }
        ConfigCommand::Init { force } => init(path(source)?, *force),
        ConfigCommand::Edit => edit(path(source)?, env),
        ConfigCommand::Validate { file } => validate(file.as_deref().unwrap_or(path(source)?)),
    }
}

fn path(source: &Source) -> Result<&Path> {
    source
        .path
        .as_deref()
        .context("no configuration directory — set SANDBOX_CONFIG or pass --config")
}

fn init(path: &Path, force: bool) -> Result<Outcome> {
    if path.exists() && !force {
        bail!(
            "{} already exists — edit it with `sandbox config edit`, or pass --force to replace it",
            path.display()
        );
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    std::fs::write(path, EXAMPLE).with_context(|| format!("cannot write {}", path.display()))?;
    ui::print(&format!("wrote {}\n", path.display()))?;
    Ok(Outcome::Exited(0))
}

/// Opens the file in the user's editor (created first if missing), then
/// checks what they saved, so a typo is found now and not at the next run.
fn edit(path: &Path, env: &BTreeMap<String, String>) -> Result<Outcome> {
    if !path.exists() {
        init(path, false)?;
    }
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|k| env.get(*k).filter(|v| !v.trim().is_empty()))
        .map_or("vi", String::as_str);
    // "code --wait" and the like: the editor may carry its own arguments.
    let mut words = editor.split_whitespace();
    let program = words.next().unwrap_or("vi");
    let status = Command::new(program)
        .args(words)
        .arg(path)
        .status()
        .with_context(|| format!("cannot start the editor {program:?} — set VISUAL or EDITOR"))?;
    if !status.success() {
        bail!("the editor {program:?} failed ({status}); the file was not checked");
    }
    validate(path)
}

fn validate(path: &Path) -> Result<Outcome> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} — check the path", path.display()))?;
    let problems = check::problems(&text);
    if problems.is_empty() {
        ui::print(&format!("{}: valid\n", path.display()))?;
        return Ok(Outcome::Exited(0));
    }
    for p in &problems {
        let place = p.line.map(|l| format!(":{l}")).unwrap_or_default();
        eprintln!("{}{place}: {}", path.display(), ui::sanitize(&p.message));
    }
    bail!(
        "{} has {} problem{} — fix {} and run `sandbox config validate` again",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        if problems.len() == 1 { "it" } else { "them" },
    )
}
