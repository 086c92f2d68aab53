//! Shared by the tests: the sandbox binary in a hermetic environment (this
//! file), the local engine (`engine`), the test images, built locally once
//! and never pulled (`images`), workspaces whose guard removes any container
//! left behind and fails the test that left it (`workspace`), runs to signal
//! (`background`), and the services a few engine tests start: a registry, a
//! second engine, Podman, sshd (`services`), the outside world of the
//! allow-list's tests (`outside`), stand-ins for the agents' model APIs
//! (`model_api`), and commands on a pseudo-terminal (`terminal`).

use std::path::Path;
use std::process::Command;

// Every test binary compiles all of common and uses a part of it:
// tests/cli.rs runs no engine and uses this file only, tests/lifecycle.rs
// starts no service, tests/engine/ uses everything. What one binary leaves
// unused is another's, so the modules allow it; this file's items are
// checked.
#[allow(dead_code)]
mod background;
#[allow(dead_code)]
mod engine;
#[allow(dead_code)]
mod images;
#[allow(dead_code)]
mod model_api;
#[allow(dead_code)]
mod outside;
#[allow(dead_code)]
mod services;
#[allow(dead_code)]
mod terminal;
#[allow(dead_code)]
mod workspace;

#[allow(unused_imports)]
pub use {
    background::*, engine::*, images::*, model_api::*, outside::*, services::*, terminal::*,
    workspace::*,
};

/// The sandbox binary cargo built for these tests.
pub fn sandbox_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sandbox")
}

/// What a command printed and how it exited.
#[derive(Debug)]
pub struct Output {
    /// The process's exit code; -1 when killed by a signal.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    /// Only the engine tests read output that may not be text.
    #[allow(dead_code)]
    pub stdout_bytes: Vec<u8>,
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Self {
        Output {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            stdout_bytes: out.stdout,
        }
    }
}

/// A temporary directory, removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sandbox-test-")
        .tempdir()
        .expect("create a temp dir")
}

/// A `sandbox` command with a cleared environment: PATH, an empty config home
/// and nothing else, so the host's variables and config never leak in.
pub fn hermetic(config_home: &Path) -> Command {
    let mut cmd = Command::new(sandbox_bin());
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        )
        .env("HOME", config_home)
        .env("XDG_CONFIG_HOME", config_home.join(".config"));
    cmd
}
