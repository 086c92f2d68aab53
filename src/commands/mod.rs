//! The subcommands around `sandbox run`: each takes what main read from the
//! world and returns how it ended; printing goes through `ui`.

pub mod cache;
pub mod config;
pub mod containers;
pub mod doctor;

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit::Outcome;
use crate::ui;

/// `sandbox completions SHELL`: the script on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<Outcome> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "sandbox", &mut script);
    ui::print(&String::from_utf8_lossy(&script))?;
    Ok(Outcome::Exited(0))
}

/// `sandbox man`: the manual page, in roff, on stdout.
pub fn man() -> Result<Outcome> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    ui::print(&String::from_utf8_lossy(&page))?;
    Ok(Outcome::Exited(0))
}

/// `sandbox warm-prepare`, started by a warm run: reads its request on stdin.
pub async fn warm_prepare() -> Result<Outcome> {
    use anyhow::Context;
    use std::io::Read;
    let mut request = Vec::new();
    std::io::stdin()
        .read_to_end(&mut request)
        .context("cannot read the warm request")?;
    crate::warm::prepare(&request).await?;
    Ok(Outcome::Exited(0))
}
