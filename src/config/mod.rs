//! Configuration: the YAML schema, where the file is found, and how it layers
//! over the built-in defaults.
//!
//! Every YAML parse in the program happens in this file, so the deprecated
//! `serde_yaml` can be swapped for another parser here alone.
//!
//! Layering: scalars in the file replace the defaults; `images` merges key by
//! key (the file wins); the `env` and `protected_paths` lists extend the
//! defaults, so a file cannot drop a default secret from the block list by
//! accident. Flags are applied over the result in `plan.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cli::PullPolicy;

pub mod agents;
pub mod check;
pub mod project;

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
    pub cpus: Option<f64>,
    /// Maximum number of processes and threads in the container.
    pub pids_limit: i64,
    /// UID:GID to run as; the invoking user when absent.
    pub user: Option<String>,
    /// Network mode: bridge, none, host or a network name.
    pub network: String,
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
    /// Keep a started container ready for the next run (non-terminal runs).
    pub warm: bool,
    /// How long a warm container waits unused before it stops.
    #[serde(with = "duration_required")]
    pub warm_idle: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Seccomp profile: a built-in name (default, strict, debug) or a path to a JSON profile.
    pub seccomp: String,
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

/// Which engine to talk to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// unix:///path, tcp://host:port (TLS with DOCKER_TLS_VERIFY and
    /// DOCKER_CERT_PATH), ssh://user@host; DOCKER_HOST and --host win.
    pub host: Option<String>,
    /// How /work gets the workspace: mount it (the engine must see this
    /// machine's files), copy it in and the changes back, or auto (mount
    /// for a local engine, copy for any other).
    pub workspace: WorkspaceTransfer,
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
            pids_limit: 512,
            user: None,
            network: "bridge".into(),
            read_only_root: true,
            tmpfs_size: Size(1 << 30),
            home: "/home/sandbox".into(),
            timeout: Some(Duration::from_secs(30 * 60)),
            pull: PullPolicy::Missing,
            warm: false,
            warm_idle: Duration::from_secs(10 * 60),
        }
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            seccomp: "default".into(),
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
    parse(&text).with_context(|| format!("invalid configuration in {}", path.display()))
}

/// Parses a configuration file's text and layers it over the defaults.
pub fn parse(text: &str) -> Result<Config> {
    // An empty or all-comment file is a valid "no changes".
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(Config::default());
    }
    let file: Config = serde_yaml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    file.over_defaults()
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
        if self.container.pids_limit < 1 {
            bail!("container.pids_limit: must be at least 1");
        }
        if self
            .container
            .cpus
            .is_some_and(|c| !(c > 0.0 && c.is_finite()))
        {
            bail!("container.cpus: must be a positive number of cores");
        }
        if !self.container.home.starts_with('/') {
            bail!("container.home: must be an absolute path");
        }
        if self.container.network.trim().is_empty() {
            bail!("container.network: must not be empty");
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

/// A size in bytes written the docker way: `512m`, `4g`, `1024k`, `100` (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl Size {
    pub fn parse(text: &str) -> Result<Size> {
        let t = text.trim().to_ascii_lowercase();
        let t = t.strip_suffix('b').unwrap_or(&t);
        let (digits, shift) = match t.chars().last() {
            Some('k') => (&t[..t.len() - 1], 10),
            Some('m') => (&t[..t.len() - 1], 20),
            Some('g') => (&t[..t.len() - 1], 30),
            Some('t') => (&t[..t.len() - 1], 40),
            _ => (t, 0),
        };
        let n: u64 = digits.parse().ok().filter(|n| *n > 0).with_context(|| {
            format!("{text:?} is not a size: use a number with k, m, g or t, like 512m")
        })?;
        n.checked_mul(1 << shift)
            .map(Size)
            .with_context(|| format!("{text:?} is too large"))
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(40, 't'), (30, 'g'), (20, 'm'), (10, 'k')];
        match units
            .iter()
            .find(|(shift, _)| self.0 % (1u64 << shift) == 0)
        {
            Some((shift, unit)) => write!(f, "{}{unit}", self.0 >> shift),
            None => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than an untagged enum: serde_yaml keeps the value's
        // line in the error only when the value is read directly.
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 512m or 4g")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Size, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Size, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Size, E> {
                Size::parse(text).map_err(|e| E::custom(format!("{e:#}")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `Option<Duration>` as humantime text (`30m`, `1h30m`); `null` or `0` for none.
mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        match text.as_deref().map(str::trim) {
            None | Some("0") | Some("") => Ok(None),
            Some(t) => humantime::parse_duration(t).map(Some).map_err(|e| {
                serde::de::Error::custom(format!(
                    "{t:?} is not a duration ({e}): use 90s, 5m, 1h30m"
                ))
            }),
        }
    }
}

/// `Duration` as humantime text, where a value is required.
mod duration_required {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match duration_text::deserialize(d)? {
            Some(duration) => Ok(duration),
            None => Err(serde::de::Error::custom(
                "a duration is required here: use 90s, 5m, 1h30m",
            )),
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
    fn malformed_yaml_names_the_line() {
        let err = parse("images:\n  python: [unclosed\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn sizes_parse_the_docker_way() {
        assert_eq!(Size::parse("512m").unwrap(), Size(512 << 20));
        assert_eq!(Size::parse("4G").unwrap(), Size(4 << 30));
        assert_eq!(Size::parse("1024kb").unwrap(), Size(1 << 20));
        assert_eq!(Size::parse("100").unwrap(), Size(100));
        for bad in ["", "m", "-1g", "0", "1x", "99999999999t"] {
            assert!(Size::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(Size(4 << 30).to_string(), "4g");
        assert_eq!(Size(1500).to_string(), "1500");
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
