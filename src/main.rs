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
mod egress;
mod engine;
mod env_filter;
mod exit;
mod gitconfig;
mod gitdir;
mod gitmeta;
mod habits;
mod hash;
mod host_dirs;
mod identity;
mod image;
mod labels;
mod mcp;
mod mount;
mod pipes;
mod plan;
mod protect;
mod reaper;
mod request;
mod run;
mod seccomp;
mod shell;
mod streams;
mod sync;
mod tty;
mod ui;
mod warm;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use cli::{Cli, Command};
use commands::block_on;
use exit::Outcome;
use ui::Ui;

fn main() -> ExitCode {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&raw) {
        Ok(cli) => cli,
        // A bare `sandbox` asks what this is: the help, on stdout, exit 0,
        // as `docker` alone does. It is neither a failure of sandbox (125)
        // nor any status the exit table gives a meaning to.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            return match ui::print(&help()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    ui::error(&e);
                    ExitCode::from(exit::FAILED)
                }
            };
        }
        // clap's own line would list the hidden subcommands.
        Err(e) if e.kind() == clap::error::ErrorKind::MissingSubcommand => {
            eprintln!(
                "sandbox: no subcommand — `sandbox run COMMAND` runs one; \
                 `sandbox --help` lists the others"
            );
            return ExitCode::from(exit::FAILED);
        }
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", usage_error(&e));
            // Usage errors are sandbox's own failures: 125, as docker run.
            return ExitCode::from(exit::FAILED);
        }
    };
    if let Some(refusal) = habits::refusal(&raw, &cli) {
        ui::error(&refusal);
        return ExitCode::from(exit::FAILED);
    }
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

/// `sandbox --help`'s text, in colour only on a terminal.
fn help() -> String {
    use clap::CommandFactory;
    let help = Cli::command().render_help();
    match std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        true => help.ansi().to_string(),
        false => help.to_string(),
    }
}

/// A flag's value its type refused reads as the same value in a file would
/// (`--memory "lots": not a size — ...`); any other usage error as clap has it.
fn usage_error(error: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let invalid = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<config::types::Invalid>());
    match (invalid, error.get(ContextKind::InvalidArg)) {
        // "--memory <SIZE>": the flag, without its placeholder.
        (Some(invalid), Some(ContextValue::String(arg))) => {
            let flag = arg.split_whitespace().next().unwrap_or(arg);
            ui::error_line(&anyhow::anyhow!(invalid.with_source(flag)))
        }
        _ => ui::usage_error_line(&error.render().to_string()),
    }
}

fn dispatch(cli: Cli, ui: Ui) -> Result<Outcome> {
    // The world is read once, here; everything below gets these.
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let cwd = || -> Result<PathBuf> {
        std::env::current_dir().context("cannot read the current directory")
    };
    let source = config::locate(cli.config.as_deref(), &env);
    let flags = cli.flags();
    // Layered without a project: the verbs that only need the engine.
    let engine_only = || -> Result<config::Config> {
        Ok(config::layer(config::load(&source)?, None, &env, &flags)?.config)
    };
    match &cli.command {
        // These report on the file itself, so it need not be valid.
        Command::Config(command) => commands::config::run(command, &source, &env),
        Command::Doctor => block_on(commands::doctor::run(
            &source,
            config::load(&source),
            &env,
            &cwd()?,
            &flags,
        )),
        Command::Completions { shell } => commands::completions(*shell),
        Command::Man(args) => commands::man(args),
        Command::WarmPrepare => block_on(commands::warm_prepare()),
        Command::Reap => block_on(commands::reap()),
        Command::EgressProxy => block_on(commands::egress_proxy(env.get(egress::SPEC_VAR))),
        Command::Run(args) => {
            let config = config::load(&source)?;
            commands::run::run(args, config, &flags, &env, &cwd()?, ui)
        }
        Command::Mcp(args) => {
            let host = cli.host.clone();
            commands::mcp::run(args, source, host, &env, &cwd()?, ui)
        }
        Command::Ls(args) => {
            let config = engine_only()?;
            block_on(commands::containers::ls(args, config.engine.host()))
        }
        Command::Prune(args) => {
            let config = engine_only()?;
            let private = host_dirs::private_runtime_dir(&env).ok();
            block_on(commands::containers::prune(
                args,
                config.engine.host(),
                private.as_deref(),
                ui,
            ))
        }
        Command::Cache(command) => {
            commands::cache::run(command, &config::load(&source)?, &env, &cwd()?)
        }
    }
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
        // rmcp warns of every error answer it sends: `sandbox mcp` says
        // its own.
        format!("warn,rmcp=error,sandbox={level}")
    };
    // Colour only for a person: never escape codes into a pipe or a log
    // file, nor when NO_COLOR is set (no-color.org).
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = !no_color && std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_env_filter(tracing_subscriber::EnvFilter::new(directive))
        .with_target(false)
        .without_time()
        .init();
}
