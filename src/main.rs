//! sandbox: run any command in a throwaway, hardened container.
//!
//! parse → logging → read the world once → dispatch → exit status. Only this
//! file chooses the exit status; nothing below exits the process, so guards
//! (terminal modes, container removal) always run.

mod agent;
mod cache;
mod cli;
mod commands;
mod config;
mod engine;
mod env_filter;
mod exit;
mod gitconfig;
mod gitdir;
mod gitmeta;
mod hash;
mod host_dirs;
mod image;
mod labels;
mod plan;
mod protect;
mod run;
mod security;
mod shell;
mod streams;
mod sync;
mod tty;
mod ui;
mod warm;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use cli::{Cli, Command, RunArgs};
use exit::Outcome;
use ui::Ui;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", ui::usage_error_line(&e.render().to_string()));
            // Usage errors are sandbox's own failures: 125, as docker run.
            return ExitCode::from(exit::FAILED);
        }
    };
    init_logging(cli.verbose, cli.quiet);
    let ui = Ui { quiet: cli.quiet };
    match dispatch(cli, ui) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(e) => {
            ui::error(&e);
            ExitCode::from(exit::error_code(&e))
        }
    }
}

fn dispatch(cli: Cli, ui: Ui) -> Result<Outcome> {
    // The environment is read once, here; everything below gets this map.
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let source = config::locate(cli.config.as_deref(), &env);
    let cwd = || std::env::current_dir().context("cannot read the current directory");
    match &cli.command {
        // These report on the file itself, so it need not be valid.
        Command::Config(command) => commands::config::run(command, &source, &env),
        Command::Completions { shell } => commands::completions(*shell),
        Command::Man => commands::man(),
        Command::WarmPrepare => block_on(commands::warm_prepare()),
        Command::Doctor => block_on(commands::doctor::run(
            &source,
            &env,
            &cwd()?,
            cli.host.as_deref(),
        )),
        Command::Run(args) => {
            let mut config = config::load(&source)?;
            config.engine.host = Some(host(&cli, &env, &config));
            run_command(args, &config, &env, &cwd()?, ui)
        }
        Command::Ls(args) => {
            let host = host(&cli, &env, &config::load(&source)?);
            block_on(commands::containers::ls(args, &host))
        }
        Command::Prune(args) => {
            let host = host(&cli, &env, &config::load(&source)?);
            block_on(commands::containers::prune(args, &host, ui))
        }
        Command::Cache(command) => {
            commands::cache::run(command, &config::load(&source)?, &env, &cwd()?)
        }
    }
}

fn host(cli: &Cli, env: &BTreeMap<String, String>, config: &config::Config) -> String {
    engine::choose_host(cli.host.as_deref(), env, config.engine.host.as_deref())
}

fn run_command(
    args: &RunArgs,
    config: &config::Config,
    env: &BTreeMap<String, String>,
    cwd: &Path,
    ui: Ui,
) -> Result<Outcome> {
    let workspace = plan::resolve_workspace(args.workspace.as_deref(), cwd)?;
    let mut config = config.clone();
    let mut setup = Vec::new();
    if let Some(manifest) = config::project::load(&workspace)? {
        let notes = manifest
            .project
            .apply(&mut config)
            .with_context(|| format!("invalid project file {}", manifest.path.display()))?;
        for note in notes {
            ui.warn(&note);
        }
        setup = manifest.project.setup;
    }
    let host = plan::Host::current(env, cwd);
    let plan = plan::RunPlan::resolve(args, &config, &setup, &host)?;
    if args.dry_run {
        ui::print(&ui::render_plan(&plan))?;
        return Ok(Outcome::Exited(0));
    }
    block_on(run::run(plan, ui))
}

fn block_on(work: impl std::future::Future<Output = Result<Outcome>>) -> Result<Outcome> {
    // One thread is enough: blocking I/O has threads of its own (streams.rs).
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(work)
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    // Only sandbox's own events below "trace"; dependencies are noisy.
    let directive = if verbose >= 3 {
        level.to_string()
    } else {
        format!("warn,sandbox={level}")
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(directive))
        .with_target(false)
        .without_time()
        .init();
}
