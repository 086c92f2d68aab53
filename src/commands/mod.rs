//! The subcommands around `sandbox run`: each takes what main read from the
//! world and returns how it ended; printing goes through `ui`.

pub mod cache;
pub mod config;
pub mod containers;
pub mod doctor;
pub mod run;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::Cli;
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

/// `sandbox completions SHELL`: the script on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<Outcome> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut shown(), "sandbox", &mut script);
    ui::print(&String::from_utf8_lossy(&script))?;
    Ok(Outcome::Exited(0))
}

/// The verbs a run starts for itself, nobody's to type.
const INTERNAL: [&str; 2] = ["warm-prepare", "reap"];

/// The command line as completions offer it: clap's generators offer hidden
/// verbs too, and the internal ones do not belong there.
fn shown() -> clap::Command {
    let full = Cli::command();
    let verbs = full.get_subcommands();
    clap::Command::new("sandbox")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .args(full.get_arguments().cloned())
        .subcommands(verbs.filter(|v| !INTERNAL.contains(&v.get_name())).cloned())
}

/// `sandbox man`: the manual page, in roff, on stdout.
pub fn man() -> Result<Outcome> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    ui::print(&String::from_utf8_lossy(&page))?;
    Ok(Outcome::Exited(0))
}

/// `sandbox warm-prepare`, started by a warm run: its request is the first
/// line on stdin; it starts once the run has ended (stdin closes) or after
/// [`warm::HOLD_BACK`](crate::warm::HOLD_BACK), whichever comes first.
pub async fn warm_prepare() -> Result<Outcome> {
    use std::io::{BufRead, Read};
    let (request_tx, request_rx) = tokio::sync::oneshot::channel();
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut request = Vec::new();
        let read = stdin.read_until(b'\n', &mut request);
        let _ = request_tx.send(read.map(|_| request));
        let _ = stdin.read_to_end(&mut Vec::new());
        let _ = ended_tx.send(());
    });
    let request = request_rx
        .await
        .context("the warm request never came")?
        .context("cannot read the warm request")?;
    // Either way is fine: the run ended, or it is long enough to share with.
    let _ = tokio::time::timeout(crate::warm::HOLD_BACK, ended_rx).await;
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
