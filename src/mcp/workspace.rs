//! The server's workspace: fixed when it starts, its configuration read
//! again for every call, as `sandbox run` reads it there (the user's file,
//! the project's `.sandbox.yml`, the environment), so a call sees what a
//! run typed in a shell at that moment would see.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::{self, Config, Flags};

/// The variable that holds `--listen`'s bearer token. Never handed on to a
/// run: the command inside would hold the key to the server.
pub const TOKEN_VAR: &str = "SANDBOX_MCP_TOKEN";

pub struct Workspace {
    /// Canonical; every call works here and nowhere else.
    pub dir: PathBuf,
    source: config::Source,
    env: BTreeMap<String, String>,
    /// `--host`, as the server was given it.
    host: Option<String>,
    /// `--warm` for every run.
    warm: bool,
}

impl Workspace {
    pub fn new(
        dir: PathBuf,
        source: config::Source,
        env: BTreeMap<String, String>,
        host: Option<String>,
        warm: bool,
    ) -> Workspace {
        Workspace {
            dir,
            source,
            env,
            host,
            warm,
        }
    }

    /// The configuration in force for a run here now: the same layers as
    /// `sandbox run`, less the run's own flags.
    pub fn config(&self) -> Result<Config> {
        let file = config::load(&self.source)?;
        let manifest = config::project::load(&self.dir)?;
        let flags = Flags {
            host: self.host.clone(),
            ..Flags::default()
        };
        Ok(config::layer(file, manifest.as_ref(), &self.env, &flags)?.config)
    }

    /// Every path a run may not change (`protect/`): the protected names
    /// and what git's configuration names in the work tree. `.git` at any
    /// depth is refused besides (`sync::is_protected`).
    pub fn protected(&self, config: &Config) -> Result<Vec<String>> {
        let names = &config.security.protected_paths;
        let private = crate::host_dirs::private_runtime_dir(&self.env)?;
        let run = crate::plan::unique_name("mcp");
        let protections = crate::protect::resolve(&self.dir, names, &private, &run, &self.env)?;
        Ok(match protections.paths.is_empty() {
            true => names.clone(),
            false => protections.paths,
        })
    }

    /// Removes what stopped runs left to their watchers (`leftovers.rs`):
    /// the ids still there after, or why they could not be looked for.
    pub async fn remove_leftovers(&self) -> Vec<String> {
        let found = async {
            let host = self.config()?.engine.host().to_string();
            let private = crate::host_dirs::private_runtime_dir(&self.env)?;
            super::leftovers::remove(&host, &self.dir, &private).await
        };
        found
            .await
            .unwrap_or_else(|e| vec![crate::ui::error_line(&e)])
    }

    /// `sandbox [--config F] [-H HOST] -q run -w DIR [--warm]`: what every
    /// run starts with. The server's own binary, so a run is exactly what
    /// `sandbox run` would do; `-q` keeps sandbox's progress lines out of
    /// the command's stderr (its one-line errors stay).
    pub fn run_command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("/proc/self/exe");
        if let (Some(path), true) = (&self.source.path, self.source.found) {
            command.arg(flag("--config=", path));
        }
        if let Some(host) = &self.host {
            command.arg(format!("--host={host}"));
        }
        // --no-agent: a caller that names an agent (`aider ...`) would get
        // the keys and state sandbox keeps from every other command.
        command
            .args(["-q", "run", "--no-agent"])
            .arg(flag("--workspace=", &self.dir));
        if self.warm {
            command.arg("--warm");
        }
        command.current_dir(&self.dir).env_remove(TOKEN_VAR);
        command
    }
}

/// `--name=VALUE` in one word, so a value that starts with `-` is not read
/// as a flag of its own.
fn flag(name: &str, value: &Path) -> OsString {
    let mut word = OsString::from(name);
    word.push(value);
    word
}

/// The workspace's directory, checked as `sandbox run` checks its own.
pub fn resolve(flag: Option<&Path>, env: &BTreeMap<String, String>, cwd: &Path) -> Result<PathBuf> {
    let world = crate::plan::World::current(env, cwd);
    crate::plan::run_workspace(flag, &world).context("cannot serve this workspace")
}
