//! `sandbox mcp`: the workspace fixed and checked as `sandbox run` checks
//! its own, the configuration checked once up front (each call reads it
//! again), then the server until it is told to stop.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::McpArgs;
use crate::config;
use crate::exit::Outcome;
use crate::mcp::{self, Server, Transport, Workspace};
use crate::ui::Ui;

pub fn run(
    args: &McpArgs,
    source: config::Source,
    host: Option<String>,
    env: &BTreeMap<String, String>,
    cwd: &Path,
    ui: Ui,
) -> Result<Outcome> {
    let dir = mcp::workspace::resolve(args.workspace.as_deref(), env, cwd)?;
    // Children run in the workspace: a relative --config is the caller's.
    let source = config::Source {
        path: source.path.map(|p| cwd.join(p)),
        ..source
    };
    let workspace = Workspace::new(dir, source, env.clone(), host, args.warm);
    // A broken configuration is said now, not on every call.
    workspace.config()?;
    let transport = match args.listen {
        None => Transport::Stdio,
        Some(addr) => Transport::Http {
            addr,
            token: env
                .get(mcp::workspace::TOKEN_VAR)
                .cloned()
                .unwrap_or_default(),
        },
    };
    let max_output = usize::try_from(args.max_output.0).unwrap_or(usize::MAX);
    let server = Server::new(workspace, args.max_concurrent.get(), max_output);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(mcp::serve(server, transport));
    // A read of stdin may still wait on a blocking thread: not for it.
    runtime.shutdown_background();
    let left = served?;
    if left.calls > 0 {
        ui.warn(&format!(
            "{} calls did not end in time: their containers are removed by their watchers \
             (or run `sandbox prune`)",
            left.calls
        ));
    }
    if !left.containers.is_empty() {
        ui.warn(&format!(
            "stopped calls left containers the engine has not removed yet: {} — their \
             watchers go on trying (or run `sandbox prune`)",
            left.containers.join(", ")
        ));
    }
    Ok(Outcome::Exited(0))
}
