//! What a `sandbox run` will do, decided in full before the engine is
//! touched: `resolve.rs` turns flags, configuration and what was read from
//! the host (`world.rs`) into a [`RunPlan`], `render.rs` prints it for
//! `--dry-run`, and `request.rs` makes the engine's create request from it.
//! Nothing changes a plan once it is resolved.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::PullPolicy;
use crate::config::Size;
use crate::env_filter;
use crate::protect::Protections;
use crate::seccomp::Profile;

mod egress;
mod render;
mod resolve;
mod world;

pub use crate::mount::{BindMount, WORKDIR};
pub use render::render;
pub use resolve::{invoking_user, resolve, resolve_workspace, run_workspace};
pub use world::World;

/// Everything a `sandbox run` will do, resolved.
#[derive(Debug)]
pub struct RunPlan {
    pub task: Task,
    pub workspace: Workspace,
    pub env: Env,
    pub limits: Limits,
    pub hardening: Hardening,
    pub io: Io,
    pub lifecycle: Lifecycle,
    /// The allow-list and its proxy, for `--network allow`.
    pub egress: Option<Egress>,
    /// What the person running sandbox should hear before the run (a part
    /// of it left out, and why).
    pub notes: Vec<String>,
}

/// What runs, and in which image.
#[derive(Debug)]
pub struct Task {
    pub image: String,
    /// The command alone: setup steps run in a container of their own.
    pub argv: Vec<String>,
    /// The coding agent this run starts, if any.
    pub agent: Option<String>,
    /// The project's setup steps, run before the command in a container of
    /// their own (`run/setup.rs`).
    pub setup: Vec<String>,
}

/// The workspace, how it reaches /work, and what is mounted around it.
#[derive(Debug)]
pub struct Workspace {
    /// The host directory.
    pub dir: PathBuf,
    /// Every bind mount, the workspace first.
    pub mounts: Vec<BindMount>,
    pub transfer: Transfer,
    /// Names at the workspace root a command may not change.
    pub protected_paths: Vec<String>,
    /// How they are kept from it in a mounted workspace (their mounts are
    /// in `mounts`).
    pub protections: Protections,
    /// A directory of sandbox's that no container can write: the sources of
    /// the protections' mounts.
    pub private_dir: PathBuf,
    /// The workspace's package cache on the host, mounted at /cache.
    pub cache: Option<PathBuf>,
    /// Host directories to create (owned by the user) before the run: an
    /// agent's state.
    pub state_dirs: Vec<PathBuf>,
}

/// The environment of the command and of the setup steps.
#[derive(Debug)]
pub struct Env {
    /// The command's variables.
    pub passed: Vec<(String, String)>,
    /// Host variables held back, with the rule that held each (names only).
    pub withheld: Vec<(String, env_filter::Reason)>,
    /// The setup container's environment: the configured constants and the
    /// host variables the lists let through, never a value the person
    /// running sandbox passed (the agent's keys, env files, `-e`, the SSH
    /// agent). The cache's variables are among them while there is a cache.
    pub setup: Vec<(String, String)>,
}

/// What the container may use.
#[derive(Debug)]
pub struct Limits {
    pub memory: Size,
    pub cpus: Option<f64>,
    pub pids: i64,
    /// Each of the writable tmpfs at /tmp and HOME.
    pub tmpfs_size: Size,
    pub timeout: Option<Duration>,
}

/// Who the command runs as, and what it is kept from.
#[derive(Debug)]
pub struct Hardening {
    pub user: String,
    pub home: String,
    pub network: String,
    pub read_only_root: bool,
    pub seccomp: Profile,
    pub drop_all_capabilities: bool,
    pub no_new_privileges: bool,
    pub init: bool,
    pub allow_engine_warnings: bool,
    /// OCI runtime; the engine's default when `None`.
    pub runtime: Option<String>,
}

/// How the command meets the terminal.
#[derive(Debug, Clone, Copy)]
pub struct Io {
    /// Allocate a terminal in the container.
    pub tty: bool,
    /// Forward our stdin to the command.
    pub stdin: bool,
    /// Carry the stdio through FIFOs where the engine allows (`pipes/`).
    pub fast_pipes: bool,
}

/// Where the container runs and how long it lives.
#[derive(Debug)]
pub struct Lifecycle {
    /// The engine to run on.
    pub host: String,
    pub pull: PullPolicy,
    pub keep: bool,
    /// Use a warm container and prepare the next; `None` for a cold run.
    pub warm: Option<Duration>,
    /// This sandbox process as its containers name their owner, sealed so
    /// that a label nobody but sandbox wrote can be told (`reaper/`);
    /// `None` where the process cannot be named.
    pub owner: Option<String>,
}

/// A run behind the allow-list (`egress/`).
#[derive(Debug)]
pub struct Egress {
    /// The network of its own the run's containers join (also
    /// `hardening.network`), created for the run and removed after it.
    pub network: String,
    /// The allow-list's entries as written, presets unexpanded.
    pub allow: Vec<String>,
    /// Names sent to an address of the user's choosing.
    pub resolve: Vec<(String, std::net::IpAddr)>,
    pub relays: Vec<Relay>,
    /// The certificates the relays trust (a PEM bundle on this machine).
    pub roots: Option<PathBuf>,
}

/// A key kept on the host: the command sees a placeholder in `key` and
/// `url` in `base_url`.
#[derive(Debug)]
pub struct Relay {
    pub key: String,
    pub base_url: String,
    pub url: String,
    pub spec: crate::egress::RelaySpec,
}

/// How the workspace reaches /work.
#[derive(Debug, Clone, PartialEq)]
pub enum Transfer {
    /// A bind mount: the engine sees this machine's files.
    Mount,
    /// Copied into a volume before the command, changes copied back after.
    Copy {
        sync_back: bool,
        /// A named volume (needed to mount it read-only, and filled before
        /// the run); anonymous if `None`.
        volume: Option<String>,
    },
}

impl RunPlan {
    /// The host workspace mounted at /work.
    pub fn workspace(&self) -> &Path {
        &self.workspace.dir
    }

    /// Numeric uid and gid, when the user was given as numbers.
    pub fn numeric_user(&self) -> Option<(u32, u32)> {
        numeric_user(&self.hardening.user)
    }
}

fn numeric_user(user: &str) -> Option<(u32, u32)> {
    let (uid, gid) = user.split_once(':')?;
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

/// A name no other run uses at the same moment: `<prefix>-<pid>-<nanos>`,
/// whose pid `gitdir::sweep` reads back to tell a run whose `sandbox` is gone.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The plan for `sandbox run ARGV` in a fresh directory named after `name`,
/// as user 1000:1001 with no terminal, the project's setup being `npm ci`.
#[cfg(test)]
pub fn for_test(argv: &[&str], env: &[(&str, &str)], name: &str) -> RunPlan {
    use clap::Parser;
    let mut full = vec!["sandbox", "run"];
    full.extend_from_slice(argv);
    let crate::cli::Command::Run(args) = crate::cli::Cli::parse_from(full).command else {
        panic!("not a run")
    };
    // A workspace of its own: /tmp itself holds sandbox's private directory.
    let cwd = std::env::temp_dir().join(format!("sandbox-{name}-{}", std::process::id()));
    std::fs::create_dir_all(cwd.join(".git/hooks")).unwrap();
    let env: std::collections::BTreeMap<_, _> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let world = World {
        gid: 1001,
        ..World::quiet(&env, &cwd)
    };
    let setup = ["npm ci".to_string()];
    let config = crate::config::Config::default();
    let config = crate::config::layer(config, None, &env, &args.flags()).unwrap();
    resolve(&args, &config.config, &setup, &world).unwrap()
}
