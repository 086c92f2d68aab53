//! What a plan needs from the host besides flags and configuration, read
//! once by the caller so resolution stays testable.

use std::collections::BTreeMap;
use std::path::Path;

use crate::identity::GitIdentity;

pub struct World<'a> {
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'a Path,
    pub uid: u32,
    pub gid: u32,
    pub stdin_is_terminal: bool,
    pub stdout_is_terminal: bool,
    /// Make the host directories the run mounts (the package cache, an
    /// agent's state) while resolving; off for `--dry-run` and tests.
    pub make_dirs: bool,
    /// The host user's git identity, for git inside.
    pub git: GitIdentity,
}

impl<'a> World<'a> {
    /// User 1000:1000 with no terminal, for tests.
    #[cfg(test)]
    pub fn quiet(env: &'a BTreeMap<String, String>, cwd: &'a Path) -> World<'a> {
        World {
            env,
            cwd,
            uid: 1000,
            gid: 1000,
            stdin_is_terminal: false,
            stdout_is_terminal: false,
            make_dirs: false,
            git: GitIdentity::default(),
        }
    }

    /// This process's view: its user, its terminals.
    pub fn current(env: &'a BTreeMap<String, String>, cwd: &'a Path) -> World<'a> {
        use std::io::IsTerminal;
        World {
            env,
            cwd,
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            stdin_is_terminal: std::io::stdin().is_terminal(),
            stdout_is_terminal: std::io::stdout().is_terminal(),
            make_dirs: true,
            git: GitIdentity::of_host(),
        }
    }
}
