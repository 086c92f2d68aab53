//! Configuration: the YAML schema, where the file is found, and how it layers
//! over the built-in defaults.
//!
//! Every YAML parse in the program happens in this file, so the deprecated
//! `serde_yaml` can be swapped for another parser here alone.
//!
//! Layering: scalars in the file replace the defaults; `images` merges key by
//! key (the file wins); the `env` and `protected_paths` lists extend the
//! defaults, so a file cannot drop a default secret from the block list by
//! accident. The project file, the environment and flags go over the result
//! in [`layer()`], and nowhere else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

pub mod agents;
pub mod check;
mod layer;
pub mod project;
pub mod types;

pub use layer::{layer, Flags};
use types::{duration_required, duration_text};
pub use types::{Cpus, Network, PidsLimit, PullPolicy, SeccompSpec, Size, User};

/// The engine when nothing names one: the local socket.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The effective configuration: built-in defaults with the user's file over them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Command basename → image; `default` is used when no key matches.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    pub env: EnvConfig,
    pub container: ContainerConfig,
    pub security: SecurityConfig,
    pub cache: CacheConfig,
    pub engine: EngineConfig,
    /// The allow-list of `container.network: allow`.
    pub network: NetworkConfig,
    /// Coding agents by command name; each key changes only itself.
    pub agents: BTreeMap<String, agents::AgentConfig>,
}

/// Which host environment variables reach the container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvConfig {
    /// Globs of variable names that may pass.
    pub allow: Vec<String>,
    /// Globs of variable names that never pass unless named with `-e`; wins over `allow`.
    pub block: Vec<String>,
    /// Variables set in every container, whatever the host has; `-e` wins.
    pub set: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainerConfig {
    /// Memory limit; swap is capped at the same value.
    pub memory: Size,
    /// CPU limit in cores; none when absent.
    pub cpus: Option<Cpus>,
    /// Maximum number of processes and threads in the container.
    pub pids_limit: PidsLimit,
    /// UID:GID to run as; the invoking user when absent.
    pub user: Option<User>,
    /// Network mode: bridge, none, host, allow (the allow-list in
    /// `network.allow`) or a network name.
    pub network: Network,
    /// Mount the image's root filesystem read-only.
    pub read_only_root: bool,
    /// Size cap of the writable tmpfs at /tmp and at HOME.
    pub tmpfs_size: Size,
    /// HOME inside the container (a writable tmpfs).
    pub home: String,
    /// How long a command may run before it is stopped (exit 124).
    #[serde(with = "duration_text")]
    pub timeout: Option<Duration>,
    /// When to pull the image.
    pub pull: PullPolicy,
    /// Hand each run to a container started ahead of time, and keep one
    /// ready for the next run, where that is safe (`plan/resolve.rs` says
    /// which runs start cold).
    pub warm: bool,
    /// How long a warm container waits unused before it stops.
    #[serde(with = "duration_required")]
    pub warm_idle: Duration,
    /// Carry a command's stdin, stdout and stderr through FIFOs on a local
    /// engine rather than the engine's attach stream (`pipes/`).
    pub fast_pipes: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Seccomp profile: a built-in name (default, strict, debug) or a path to a JSON profile.
    pub seccomp: SeccompSpec,
    /// Drop every capability, emptying the bounding set.
    pub drop_all_capabilities: bool,
    /// Forbid gaining privileges through setuid binaries and file capabilities.
    pub no_new_privileges: bool,
    /// Run an init process as PID 1 that forwards signals and reaps zombies.
    pub init: bool,
    /// Accept a container whose limits the engine said it could not enforce.
    pub allow_engine_warnings: bool,
    /// Names at the workspace root a command may not write, create, rename
    /// or remove, even when /work is writable (`protect/`).
    #[serde(default)]
    pub protected_paths: Vec<String>,
    /// Mount the whole workspace read-only.
    pub read_only_workspace: bool,
    /// OCI runtime registered with the engine (runc, runsc for gVisor, ...);
    /// the engine's default when absent.
    pub runtime: Option<String>,
}

/// The hosts `container.network: allow` lets through (`egress/policy.rs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Host patterns (`host`, `*.domain`, an address, each with an optional
    /// `:port`) and presets (`@pypi`).
    pub allow: Vec<String>,
    /// `HOST:ADDRESS`: names the proxy sends to an address of your choosing
    /// instead of asking DNS (split DNS, local test servers).
    pub resolve: Vec<String>,
    /// The project file's narrower list, checked against the rest when the
    /// run is planned (`plan/resolve.rs`).
    #[serde(skip)]
    pub project: Option<Vec<String>>,
    /// `--allow-host`: added whatever the project file says.
    #[serde(skip)]
    pub flags: Vec<String>,
}

/// Which engine to talk to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// unix:///path, tcp://host:port (TLS with DOCKER_TLS_VERIFY and
    /// DOCKER_CERT_PATH), ssh://user@host; DOCKER_HOST and --host win.
    /// After [`layer()`], the engine chosen.
    pub host: Option<String>,
    /// How /work gets the workspace: mount it (the engine must see this
    /// machine's files), copy it in and the changes back, or auto (mount
    /// for a local engine, copy for any other).
    pub workspace: WorkspaceTransfer,
}

impl EngineConfig {
    /// The engine to use: the one [`layer()`] chose; the local socket for a
    /// configuration that was never layered.
    pub fn host(&self) -> &str {
        self.host.as_deref().unwrap_or(DEFAULT_HOST)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceTransfer {
    #[default]
    Auto,
    Mount,
    Copy,
}

/// Package-manager caches kept between runs, one directory per workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Mount the workspace's cache at /cache and point pip, npm, go and cargo at it.
    pub enabled: bool,
    /// Where the caches live on the host; the platform's cache directory when absent.
    pub dir: Option<PathBuf>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            dir: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let images = [
            ("default", "debian:bookworm-slim"),
            ("sh", "alpine:3.20"),
            ("bash", "debian:bookworm-slim"),
            ("python", "python:3.12-slim"),
            ("python3", "python:3.12-slim"),
            ("pip", "python:3.12-slim"),
            ("pip3", "python:3.12-slim"),
            ("node", "node:22-slim"),
            ("npm", "node:22-slim"),
            ("npx", "node:22-slim"),
            ("go", "golang:1.23"),
            ("cargo", "rust:1-slim"),
            ("rustc", "rust:1-slim"),
            ("ruby", "ruby:3.3-slim"),
            ("gem", "ruby:3.3-slim"),
            ("bundle", "ruby:3.3-slim"),
            ("bun", "oven/bun:1"),
        ];
        Config {
            images: images
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            env: EnvConfig::default_lists(),
            container: ContainerConfig::default(),
            security: SecurityConfig::default(),
            cache: CacheConfig::default(),
            engine: EngineConfig::default(),
            network: NetworkConfig::default(),
            agents: agents::defaults(),
        }
    }
}

impl EnvConfig {
    fn default_lists() -> Self {
        let allow = [
            "LANG",
            "LANGUAGE",
            "LC_*",
            "TERM",
            "COLORTERM",
            "TZ",
            "NO_COLOR",
            "FORCE_COLOR",
            "CLICOLOR",
            "CLICOLOR_FORCE",
        ];
        // Names that carry credentials by convention. Matching is case-insensitive.
        let block = [
            "AWS_*",
            "AMAZON_*",
            "GOOGLE_*",
            "GCLOUD_*",
            "GCP_*",
            "CLOUDSDK_*",
            "AZURE_*",
            "ARM_CLIENT_*",
            "DIGITALOCEAN_*",
            "HCLOUD_*",
            "OS_PASSWORD",
            "VAULT_*",
            "GITHUB_TOKEN",
            "GH_TOKEN",
            "GITLAB_TOKEN",
            "NPM_TOKEN",
            "DOCKER_*",
            "KUBECONFIG",
            "SSH_AUTH_SOCK",
            "SSH_AGENT_PID",
            "GPG_AGENT_INFO",
            "*_API_KEY",
            "*_APIKEY",
            "*_TOKEN",
            "*_SECRET*",
            "*_PASSWORD*",
            "*_PASSWD",
            "*_CREDENTIAL*",
            "*_PRIVATE_KEY*",
            "*_ACCESS_KEY*",
        ];
        EnvConfig {
            allow: allow.map(String::from).to_vec(),
            block: block.map(String::from).to_vec(),
            set: BTreeMap::new(),
        }
    }
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            memory: Size(4 << 30),
            cpus: None,
            pids_limit: PidsLimit::DEFAULT,
            user: None,
            network: Network::Bridge,
            read_only_root: true,
            tmpfs_size: Size(1 << 30),
            home: "/home/sandbox".into(),
            timeout: Some(Duration::from_secs(30 * 60)),
            pull: PullPolicy::Missing,
            warm: true,
            warm_idle: Duration::from_secs(10 * 60),
            fast_pipes: true,
        }
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            seccomp: SeccompSpec::Default,
            drop_all_capabilities: true,
            no_new_privileges: true,
            init: true,
            allow_engine_warnings: false,
            protected_paths: crate::protect::DEFAULT.map(String::from).to_vec(),
            read_only_workspace: false,
            runtime: None,
        }
    }
}

/// Where the configuration file was looked for, and whether it was found.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: Option<PathBuf>,
    pub found: bool,
}

/// The configuration path in force: `--config`, else `$SANDBOX_CONFIG`, else the
/// platform's config directory. An explicit path must exist; the default may not.
pub fn locate(flag: Option<&Path>, env: &BTreeMap<String, String>) -> Source {
    let explicit = flag.map(Path::to_path_buf).or_else(|| {
        env.get("SANDBOX_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    match explicit {
        Some(path) => Source {
            path: Some(path),
            found: true,
        },
        None => {
            let path = directories::BaseDirs::new()
                .map(|dirs| dirs.config_dir().join("sandbox").join("config.yaml"));
            let found = path.as_deref().is_some_and(Path::is_file);
            Source { path, found }
        }
    }
}

/// Loads the effective configuration from `source`.
pub fn load(source: &Source) -> Result<Config> {
    let path = match (&source.path, source.found) {
        (Some(path), true) => path,
        _ => return Ok(Config::default()),
    };
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the configuration file {} — check --config and SANDBOX_CONFIG",
            path.display()
        )
    })?;
    parse_file(&text, Some(path))
}

/// Parses a configuration file's text and layers it over the defaults.
pub fn parse(text: &str) -> Result<Config> {
    parse_file(text, None)
}

/// As [`parse`], naming `path` in errors: a bad value as
/// `container.memory "lots" (PATH:LINE): not a size — ...`, anything else
/// as `invalid configuration in PATH: ...`.
fn parse_file(text: &str, path: Option<&Path>) -> Result<Config> {
    // An empty or all-comment file is a valid "no changes".
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(Config::default());
    }
    let parsed = serde_yaml::from_str::<Config>(text);
    if let Some(line) = parsed.as_ref().err().and_then(|e| bad_value(e, path)) {
        bail!(line);
    }
    let config = parsed
        .map_err(|e| anyhow!("{e}"))
        .and_then(Config::over_defaults);
    match path {
        Some(path) => {
            config.with_context(|| format!("invalid configuration in {}", path.display()))
        }
        None => config,
    }
}

/// serde_yaml's error for a value a setting's type refused, in the one
/// shape ([`types::keyed`]); `None` for any other error.
fn bad_value(error: &serde_yaml::Error, path: Option<&Path>) -> Option<String> {
    let full = error.to_string();
    let location = error.location();
    let message = match &location {
        Some(at) => full
            .strip_suffix(&format!(" at line {} column {}", at.line(), at.column()))
            .unwrap_or(&full),
        None => &full,
    };
    let (key, message) = message.split_once(": ")?;
    let place = match (path, location) {
        (Some(path), Some(at)) => Some(format!("{}:{}", path.display(), at.line())),
        (Some(path), None) => Some(path.display().to_string()),
        (None, Some(at)) => Some(format!("line {}", at.line())),
        (None, None) => None,
    };
    types::keyed(key, message, place.as_deref())
}

impl Config {
    /// Merges the collections of a parsed file with the built-in ones (scalars
    /// already took their defaults during parsing) and checks cross-field rules.
    fn over_defaults(mut self) -> Result<Config> {
        let defaults = Config::default();
        for (command, image) in defaults.images {
            self.images.entry(command).or_insert(image);
        }
        for (name, profile) in defaults.agents {
            let merged = match self.agents.remove(&name) {
                Some(mine) => mine.over(&profile),
                None => profile,
            };
            self.agents.insert(name, merged);
        }
        extend_unique(&mut self.env.allow, defaults.env.allow);
        extend_unique(&mut self.env.block, defaults.env.block);
        extend_unique(
            &mut self.security.protected_paths,
            defaults.security.protected_paths,
        );
        self.validate()?;
        Ok(self)
    }

    fn validate(&self) -> Result<()> {
        if let Some((command, _)) = self
            .images
            .iter()
            .find(|(_, image)| image.trim().is_empty())
        {
            bail!("images.{command}: the image name is empty");
        }
        if let Some((name, _)) = self
            .agents
            .iter()
            .find(|(name, a)| a.resolve(name).is_none_or(|a| a.image.trim().is_empty()))
        {
            bail!("agents.{name}.image: an agent needs an image");
        }
        if let Some(name) = self.env.set.keys().find(|k| {
            k.is_empty()
                || k.starts_with(|c: char| c.is_ascii_digit())
                || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }) {
            bail!("env.set.{name}: not a variable name");
        }
        for name in &self.security.protected_paths {
            crate::protect::check_name(name).context("security.protected_paths")?;
        }
        if !self.container.home.starts_with('/') {
            bail!("container.home: must be an absolute path");
        }
        Ok(())
    }

    /// The agent profile for `command`, when it names one.
    pub fn agent(&self, command: &str) -> Option<agents::Agent> {
        self.agents.get(command)?.resolve(command)
    }

    /// The configuration as YAML, as `config show` and `--dry-run` print it.
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml::to_string(self).context("cannot render the configuration as YAML")
    }
}

fn extend_unique(list: &mut Vec<String>, more: Vec<String>) {
    for item in more {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(parse("# nothing\n\n").unwrap(), Config::default());
    }

    #[test]
    fn scalars_replace_and_maps_merge() {
        let c = parse("images:\n  python: my/python:1\ncontainer:\n  memory: 512m\n").unwrap();
        assert_eq!(c.images["python"], "my/python:1");
        assert_eq!(c.images["node"], Config::default().images["node"]);
        assert_eq!(c.container.memory, Size(512 << 20));
        assert_eq!(
            c.container.pids_limit, 512,
            "unset scalars keep their defaults"
        );
    }

    #[test]
    fn lists_extend_the_defaults() {
        let c = parse("env:\n  allow: [EDITOR]\n  block: [MY_*]\n").unwrap();
        assert!(c.env.allow.contains(&"EDITOR".to_string()));
        assert!(c.env.allow.contains(&"LANG".to_string()));
        assert!(c.env.block.contains(&"MY_*".to_string()));
        assert!(
            c.env.block.contains(&"AWS_*".to_string()),
            "a default block survives"
        );
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let err = parse("container:\n  memroy: 1g\n").unwrap_err().to_string();
        assert!(err.contains("memroy"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        let err = parse("imagez: {}\n").unwrap_err().to_string();
        assert!(err.contains("imagez"), "{err}");
    }

    #[test]
    fn bad_values_name_the_line() {
        let err = parse("container:\n  pids_limit: 5\n  memory: lots\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lots") && err.contains("line 3"), "{err}");
        let err = parse("container:\n  timeout: soon\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("soon") && err.contains("line 2"), "{err}");
        let err = parse("container:\n  pids_limit: 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pids_limit"), "{err}");
    }

    #[test]
    fn a_bad_value_reads_as_it_would_from_a_flag() {
        let text = "container:\n  pids_limit: 5\n  memory: lots\n";
        let advice = "not a size — use a number with k, m, g or t, like 512m";
        let err = parse(text).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!("container.memory \"lots\" (line 3): {advice}")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, text).unwrap();
        let source = Source {
            path: Some(path.clone()),
            found: true,
        };
        let err = load(&source).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            format!("container.memory \"lots\" ({}:3): {advice}", path.display())
        );
        let found = check::problems(text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, Some(3));
        assert_eq!(
            found[0].message,
            format!("container.memory \"lots\": {advice}")
        );
        let flag = "lots".parse::<Size>().unwrap_err().with_source("--memory");
        assert_eq!(flag, format!("--memory \"lots\": {advice}"));
    }

    #[test]
    fn malformed_yaml_names_the_line() {
        let err = parse("images:\n  python: [unclosed\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn timeout_can_be_turned_off() {
        assert_eq!(
            parse("container:\n  timeout: null\n")
                .unwrap()
                .container
                .timeout,
            None
        );
        assert_eq!(
            parse("container:\n  timeout: 0\n")
                .unwrap()
                .container
                .timeout,
            None
        );
        let c = parse("container:\n  timeout: 90s\n").unwrap();
        assert_eq!(c.container.timeout, Some(Duration::from_secs(90)));
    }

    #[test]
    fn show_round_trips() {
        let c = parse("images:\n  python: my/python:1\nenv:\n  allow: [EDITOR]\n").unwrap();
        assert_eq!(parse(&c.to_yaml().unwrap()).unwrap(), c);
    }

    #[test]
    fn explicit_paths_win_in_order() {
        let mut env = BTreeMap::new();
        env.insert("SANDBOX_CONFIG".to_string(), "/from/env.yaml".to_string());
        let flag = Path::new("/from/flag.yaml");
        assert_eq!(locate(Some(flag), &env).path.as_deref(), Some(flag));
        assert_eq!(
            locate(None, &env).path.as_deref(),
            Some(Path::new("/from/env.yaml"))
        );
    }

    #[test]
    fn the_example_file_loads() {
        let text = include_str!("../../config.example.yaml");
        let c = parse(text).expect("config.example.yaml must load");
        assert_eq!(c, Config::default(), "the example documents the defaults");
    }
}
