//! The subcommands around `sandbox run`: each takes what main read from the
//! world and returns how it ended; printing goes through `ui`.

pub mod cache;
pub mod config;
pub mod containers;
pub mod doctor;
pub mod mcp;
pub mod run;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};
use crate::exit::Outcome;
use crate::ui;

/// Runs a verb's async work to its end.
pub fn block_on(work: impl std::future::Future<Output = Result<Outcome>>) -> Result<Outcome> {
    // One thread is enough: blocking I/O has threads of its own (streams.rs).
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(work)
}

/// `sandbox completions SHELL`: the script on stdout. clap_complete offers
/// hidden subcommands and flags too; they are left out first.
pub fn completions(shell: clap_complete::Shell) -> Result<Outcome> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut visible(&Cli::command()), "sandbox", &mut script);
    ui::print(&String::from_utf8_lossy(&script))?;
    Ok(Outcome::Exited(0))
}

/// `cmd` without what it hides (`warm-prepare`, `--rm`): a copy with the
/// names, help, aliases and flags that completion scripts read.
fn visible(cmd: &clap::Command) -> clap::Command {
    let mut copy = clap::Command::new(cmd.get_name().to_string())
        .args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(visible_subcommands(cmd).map(visible))
        .visible_aliases(cmd.get_visible_aliases().map(str::to_string));
    if let Some(about) = cmd.get_about() {
        copy = copy.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        copy = copy.version(version.to_string());
    }
    copy
}

/// `sandbox man [SUBCOMMAND]`: a manual page, in roff, on stdout;
/// `--out-dir DIR` writes every one there (`make man`): sandbox.1,
/// sandbox-run.1, sandbox-config-show.1, ...
pub fn man(args: &ManArgs) -> Result<Outcome> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for page in pages(&root) {
            let written = page_of(page)
                .generate_to(dir)
                .with_context(|| format!("cannot write a manual page into {}", dir.display()))?;
            ui::print(&format!("{}\n", written.display()))?;
        }
        return Ok(Outcome::Exited(0));
    }
    let mut page = &root;
    for name in &args.command {
        let found = visible_subcommands(page)
            .find(|s| s.get_name() == name || s.get_all_aliases().any(|a| a == name));
        page = found.with_context(|| {
            let names: Vec<_> = visible_subcommands(page).map(|s| s.get_name()).collect();
            let parent = page
                .get_display_name()
                .unwrap_or("sandbox")
                .replace('-', " ");
            match names.is_empty() {
                true => {
                    format!("no manual page for `{parent} {name}` — `{parent}` has no subcommands")
                }
                false => format!(
                    "no manual page for `{parent} {name}` — there are pages for: {}",
                    names.join(", ")
                ),
            }
        })?;
    }
    let mut text = Vec::new();
    page_of(page).render(&mut text)?;
    ui::print(&String::from_utf8_lossy(&text))?;
    Ok(Outcome::Exited(0))
}

/// `cmd` and every subcommand it shows, at any depth.
fn pages(cmd: &clap::Command) -> Vec<&clap::Command> {
    let mut all = vec![cmd];
    for sub in visible_subcommands(cmd) {
        all.extend(pages(sub));
    }
    all
}

fn visible_subcommands(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands().filter(|s| !s.is_hide_set())
}

/// A page whose footer names sandbox, not the subcommand ("run 0.1.0").
fn page_of(cmd: &clap::Command) -> clap_mangen::Man {
    let source = format!("sandbox {}", env!("CARGO_PKG_VERSION"));
    clap_mangen::Man::new(cmd.clone()).source(source)
}

/// `sandbox warm-prepare`, started by a run once it is over: its request
/// is the first line on stdin.
pub async fn warm_prepare() -> Result<Outcome> {
    use std::io::BufRead;
    let mut request = Vec::new();
    std::io::stdin()
        .lock()
        .read_until(b'\n', &mut request)
        .context("cannot read the warm request")?;
    // Its stderr is a log that outlives many runs (`warm::preparer_log`):
    // a failure says when it happened.
    crate::warm::prepare(&request).await.with_context(|| {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        format!("cannot prepare a warm container at {now}")
    })?;
    Ok(Outcome::Exited(0))
}

/// `sandbox reap`, started by each run: removes what the run leaves if it
/// dies, and what earlier runs left (`reaper`). Its stderr is its log.
pub async fn reap() -> Result<Outcome> {
    crate::reaper::serve().await?;
    Ok(Outcome::Exited(0))
}

/// `sandbox egress-proxy`: the egress container's server, told its policy
/// in `spec` (JSON, from the variable `egress::SPEC_VAR`).
pub async fn egress_proxy(spec: Option<&String>) -> Result<Outcome> {
    let spec = spec.with_context(|| {
        format!(
            "{} is not set: this command runs only in a run's egress container",
            crate::egress::SPEC_VAR
        )
    })?;
    let mut spec: crate::egress::Spec =
        serde_json::from_str(spec).context("cannot read the egress policy")?;
    // The certificates come with the image: a bundle is too large for a
    // variable.
    if spec.roots.is_empty() && !spec.relays.is_empty() {
        spec.roots = std::fs::read_to_string(crate::egress::ROOTS)
            .with_context(|| format!("cannot read {}", crate::egress::ROOTS))?;
    }
    crate::egress::serve::serve(spec).await?;
    Ok(Outcome::Exited(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bash(cmd: &mut clap::Command) -> String {
        let mut script = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, cmd, "sandbox", &mut script);
        String::from_utf8(script).unwrap()
    }

    #[test]
    fn completions_leave_out_what_is_hidden() {
        // The control: clap_complete alone offers the hidden subcommand and flags.
        let all = bash(&mut Cli::command());
        assert!(all.contains("warm-prepare") && all.contains("--volume"));
        let shown = bash(&mut visible(&Cli::command()));
        assert!(!shown.contains("warm-prepare") && !shown.contains("--volume"));
        assert!(!shown.contains("--rm "), "{shown}");
        for kept in ["prune", "--read-only-workspace", "--host", "ps"] {
            assert!(shown.contains(kept), "{kept}");
        }
    }
}
