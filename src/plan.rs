//! The "high" arguments: flags layered over the configuration, resolved into a
//! `RunPlan` that says everything the run will do. `--dry-run` prints it and
//! stops; `security.rs` turns it into the engine's create request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::agent;
use crate::cache;
use crate::cli::RunArgs;
use crate::config::{Config, Cpus, Network, PullPolicy, Size, WorkspaceTransfer};
use crate::env_filter::{self, Filter};
use crate::image;
use crate::protect::{self, Protections};
use crate::security::{self, Profile};

/// Where the workspace appears inside the container, and the working directory.
pub const WORKDIR: &str = "/work";
/// Where `--ssh-agent` puts the host's agent socket.
const SSH_AGENT_SOCKET: &str = "/run/sandbox/ssh-agent.sock";

/// Everything a `sandbox run` will do, resolved.
#[derive(Debug)]
pub struct RunPlan {
    pub image: String,
    pub command: Vec<String>,
    /// The project's setup steps, run before `command` in a container of
    /// their own (`run/setup.rs`).
    pub setup: Vec<String>,
    /// The setup container's environment: the configured constants and the
    /// host variables the lists let through, never a value the person
    /// running sandbox passed (the agent's keys, env files, `-e`, the SSH
    /// agent). The cache's variables are among them while `cache` is set.
    pub setup_env: Vec<(String, String)>,
    /// Bind mounts, the workspace first.
    pub mounts: Vec<BindMount>,
    pub env: Vec<(String, String)>,
    /// Host variables held back, with the rule that held each (names only).
    pub withheld: Vec<(String, env_filter::Reason)>,
    pub user: String,
    pub home: String,
    pub memory: Size,
    pub cpus: Option<f64>,
    pub pids_limit: i64,
    pub network: String,
    pub read_only_root: bool,
    pub tmpfs_size: Size,
    pub seccomp: Profile,
    pub drop_all_capabilities: bool,
    pub no_new_privileges: bool,
    pub init: bool,
    pub allow_engine_warnings: bool,
    pub timeout: Option<Duration>,
    pub keep: bool,
    /// Allocate a terminal in the container.
    pub tty: bool,
    /// Forward our stdin to the command.
    pub stdin: bool,
    pub pull: PullPolicy,
    /// The workspace's package cache on the host, mounted at /cache.
    pub cache: Option<PathBuf>,
    /// Use a warm container and prepare the next; `None` for a cold run.
    pub warm: Option<Duration>,
    /// Names at the workspace root a command may not change.
    pub protected_paths: Vec<String>,
    /// How they are kept from it in a mounted workspace (their mounts are
    /// in `mounts`).
    pub protections: Protections,
    /// A directory of sandbox's that no container can write: the sources of
    /// the protections' mounts.
    pub private_dir: PathBuf,
    /// The engine to run on.
    pub host: String,
    /// How the workspace reaches /work.
    pub transfer: Transfer,
    /// OCI runtime; the engine's default when `None`.
    pub runtime: Option<String>,
    /// The coding agent this run starts, if any.
    pub agent: Option<String>,
    /// Host directories to create (owned by the user) before the run: an
    /// agent's state.
    pub state_dirs: Vec<PathBuf>,
}

/// How the workspace reaches /work.
#[derive(Debug, Clone, PartialEq)]
pub enum Transfer {
    /// A bind mount: the engine sees this machine's files.
    Mount,
    /// Copied into a volume before the command, changes copied back after.
    Copy {
        sync_back: bool,
        /// A named volume (needed to mount it read-only); anonymous if `None`.
        volume: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

/// What the plan needs from the world besides flags and configuration, read
/// once by the caller so resolution stays testable.
pub struct Host<'a> {
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'a Path,
    pub uid: u32,
    pub gid: u32,
    pub stdin_is_terminal: bool,
    pub stdout_is_terminal: bool,
}

impl<'a> Host<'a> {
    /// User 1000:1000 with no terminal, for tests.
    #[cfg(test)]
    pub fn quiet(env: &'a BTreeMap<String, String>, cwd: &'a Path) -> Host<'a> {
        Host {
            env,
            cwd,
            uid: 1000,
            gid: 1000,
            stdin_is_terminal: false,
            stdout_is_terminal: false,
        }
    }

    /// This process's view: its user, its terminals.
    pub fn current(env: &'a BTreeMap<String, String>, cwd: &'a Path) -> Host<'a> {
        use std::io::IsTerminal;
        Host {
            env,
            cwd,
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            stdin_is_terminal: std::io::stdin().is_terminal(),
            stdout_is_terminal: std::io::stdout().is_terminal(),
        }
    }
}

impl RunPlan {
    pub fn resolve(
        args: &RunArgs,
        config: &Config,
        setup: &[String],
        host: &Host,
    ) -> Result<RunPlan> {
        let home = config.container.home.clone();
        let workspace = resolve_workspace(args.workspace.as_deref(), host.cwd)?;
        let agent = match config.agent(&args.command[0]) {
            Some(profile) => Some((
                agent::resolve(
                    &profile,
                    &args.command[1..],
                    args.agent_state,
                    &home,
                    &workspace,
                    host.env,
                )?,
                profile,
            )),
            None => None,
        };
        let command = match &agent {
            Some((run, _)) => run.argv.clone(),
            None => args.command.clone(),
        };
        let image = match (&agent, &args.image) {
            (Some((_, profile)), None) => profile.image.clone(),
            _ => image::resolve(&command[0], &config.images, args.image.as_deref())
                .context(
                    "no image for this command — pass --image or add an `images.default` entry",
                )?
                .to_string(),
        };

        let read_only_workspace = config.security.read_only_workspace;
        let mut mounts = vec![BindMount {
            source: workspace.clone(),
            target: WORKDIR.to_string(),
            read_only: read_only_workspace,
        }];
        let engine_host = config.engine.host().to_string();
        let copy = match config.engine.workspace {
            WorkspaceTransfer::Mount => false,
            WorkspaceTransfer::Copy => true,
            WorkspaceTransfer::Auto => !crate::engine::is_local(&engine_host),
        };
        // A copy has no host paths to mount over: protected paths are kept
        // from coming back instead, and host-side caches and state stay out.
        let private_dir = crate::host_dirs::private_runtime_dir(host.env)?;
        let protections = match read_only_workspace {
            false => protect::resolve(
                &workspace,
                &config.security.protected_paths,
                &private_dir,
                &run_name(),
                host.env,
            )?,
            true => Protections::default(),
        };
        // A copy is kept by what comes back, not by mounts.
        let protected_paths = match protections.paths.is_empty() {
            true => config.security.protected_paths.clone(),
            false => protections.paths.clone(),
        };
        let protections = match copy {
            true => Protections::default(),
            false => protections,
        };
        mounts.extend(protections.mounts.iter().cloned());
        let has_git_dir = protections.git.is_some();

        // Not for an agent: every run of the workspace writes the cache,
        // setup steps included, and agents load plugins from it with their
        // key in hand (opencode's under XDG_CACHE_HOME).
        let cache = match config.cache.enabled && !args.no_cache && !copy && agent.is_none() {
            true => Some(cache::dir_for(
                &cache::root(&config.cache, host.env)?,
                &workspace,
            )),
            false => None,
        };
        if let Some(dir) = &cache {
            mounts.push(BindMount {
                source: dir.clone(),
                target: cache::TARGET.to_string(),
                read_only: false,
            });
        }

        let mut state_dirs = Vec::new();
        if let (Some((run, _)), false) = (&agent, copy) {
            for (source, target) in &run.state {
                state_dirs.push(source.clone());
                mounts.push(BindMount {
                    source: source.clone(),
                    target: target.clone(),
                    read_only: false,
                });
            }
        }
        if args.ssh_agent && copy {
            bail!("--ssh-agent needs a local engine: a socket cannot be copied to another host");
        }
        if args.ssh_agent {
            let socket = host
                .env
                .get("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .context(
                    "--ssh-agent: SSH_AUTH_SOCK is not set — start an agent (ssh-agent) first",
                )?;
            mounts.push(BindMount {
                source: PathBuf::from(socket),
                target: SSH_AGENT_SOCKET.to_string(),
                read_only: true,
            });
        }

        // Later entries win: the cache's variables, the configured constants,
        // the agent's, env files, then what was typed with -e.
        let filter = Filter::new(&config.env.allow, &config.env.block)?;
        let cache_env = cache.as_ref().map(|_| cache::env()).unwrap_or_default();
        let constants: Vec<String> = cache_env
            .into_iter()
            .chain(config.env.set.clone())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut explicit = constants.clone();
        if let Some((run, _)) = &agent {
            explicit.extend(run.env.iter().cloned());
        }
        let mut from_files = Vec::new();
        for file in &args.env_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("--env-file {}: cannot read it", file.display()))?;
            let entries = env_filter::parse_env_file(&text)
                .with_context(|| format!("--env-file {}", file.display()))?;
            if agent.is_some() {
                for (name, _) in entries.iter().filter_map(|e| e.split_once('=')) {
                    if let Some(why) = crate::config::project::steers_an_agent(name, config) {
                        bail!(
                            "--env-file {}: {name} would steer the agent ({why}); the file may \
                             come with the repository — pass it with -e {name}=...",
                            file.display()
                        );
                    }
                }
            }
            from_files.extend(entries.iter().cloned());
            explicit.extend(filter.env_file(entries));
        }
        if args.ssh_agent {
            explicit.push(format!("SSH_AUTH_SOCK={SSH_AGENT_SOCKET}"));
        }
        explicit.extend(args.env.iter().cloned());
        let decision = filter.apply(host.env, &explicit)?;
        let mut env = decision.passed;
        if !env.iter().any(|(k, _)| k == "HOME") {
            env.push(("HOME".into(), home.clone()));
        }
        // Setup steps come with the repository: whatever the person running
        // sandbox passes by name stays out of their environment, even where
        // the allow list would have let the host's value through.
        let personal: Vec<&str> = agent
            .iter()
            .flat_map(|(run, _)| &run.env)
            .chain(&from_files)
            .chain(&args.env)
            .map(|entry| entry.split('=').next().unwrap_or_default().trim_end())
            .chain(["SSH_AUTH_SOCK"])
            .collect();
        let public: BTreeMap<String, String> = host
            .env
            .iter()
            .filter(|(name, _)| !personal.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let mut setup_env = filter.apply(&public, &constants)?.passed;
        if !setup_env.iter().any(|(k, _)| k == "HOME") {
            setup_env.push(("HOME".into(), home.clone()));
        }

        let user = match &config.container.user {
            Some(user) => user.to_string(),
            None => invoking_user(host),
        };
        let memory = config.container.memory;
        let cpus = config.container.cpus.map(Cpus::get);
        let pids_limit = config.container.pids_limit.get();
        let seccomp = security::profile(&config.security.seccomp.to_string())?;
        let tty = if args.tty {
            true
        } else if args.no_tty {
            false
        } else {
            host.stdin_is_terminal && host.stdout_is_terminal
        };
        // A terminal on stdin with stdout going elsewhere (`sandbox run ls | less`)
        // is left alone, as `docker run` without -i does: reading it would steal
        // the pager's keystrokes.
        let stdin = tty || !host.stdin_is_terminal || host.stdout_is_terminal;

        Ok(RunPlan {
            image,
            command,
            setup: setup.to_vec(),
            setup_env,
            mounts,
            env,
            withheld: decision.withheld,
            user,
            home,
            memory,
            cpus,
            pids_limit,
            // An agent needs its API; a configuration or project that turned
            // the network off still wins, and `--network` names the agent's.
            network: match &agent {
                Some((_, profile)) if config.container.network != Network::None => {
                    profile.network.clone()
                }
                _ => config.container.network.to_string(),
            },
            read_only_root: config.container.read_only_root,
            tmpfs_size: config.container.tmpfs_size,
            seccomp,
            drop_all_capabilities: config.security.drop_all_capabilities,
            no_new_privileges: config.security.no_new_privileges,
            init: config.security.init,
            allow_engine_warnings: config.security.allow_engine_warnings,
            timeout: config.container.timeout.filter(|t| !t.is_zero()),
            keep: args.keep,
            tty,
            stdin,
            pull: config.container.pull,
            cache,
            agent: agent.map(|(run, _)| run.name),
            protected_paths,
            host: engine_host,
            private_dir,
            transfer: match copy {
                true => Transfer::Copy {
                    sync_back: !args.no_sync_back && !read_only_workspace,
                    volume: None,
                },
                false => Transfer::Mount,
            },
            runtime: config.security.runtime.clone(),
            state_dirs,
            protections,
            // A terminal session is fixed when its container is created, and a
            // kept container or a pull on every run defeat the point. A git
            // directory is made for each run, with HEAD and the index as they
            // are when it starts: one made ahead of time would be stale.
            warm: (config.container.warm
                && !copy
                && !has_git_dir
                && !tty
                && !args.keep
                && config.container.pull != PullPolicy::Always)
                .then_some(config.container.warm_idle),
        })
    }

    /// The host workspace mounted at /work.
    pub fn workspace(&self) -> &Path {
        &self.mounts[0].source
    }

    /// What the command's container runs: the command alone; setup steps
    /// ran in a container of their own before it.
    pub fn argv(&self) -> Vec<String> {
        self.command.clone()
    }

    /// Leaves the package cache out: its mount and the variables that point
    /// at it, unless -e gave them other values.
    pub fn drop_cache(&mut self) {
        self.cache = None;
        self.mounts.retain(|m| m.target != cache::TARGET);
        let pointers = cache::env();
        self.env.retain(|entry| !pointers.contains(entry));
    }

    /// Numeric uid and gid, when the user was given as numbers.
    pub fn numeric_user(&self) -> Option<(u32, u32)> {
        let (uid, gid) = self.user.split_once(':')?;
        Some((uid.parse().ok()?, gid.parse().ok()?))
    }
}

pub fn resolve_workspace(flag: Option<&Path>, cwd: &Path) -> Result<PathBuf> {
    let dir = flag
        .map(|p| cwd.join(p))
        .unwrap_or_else(|| cwd.to_path_buf());
    let dir = dir.canonicalize().with_context(|| {
        format!(
            "workspace {} cannot be used — pass an existing directory with -w",
            dir.display()
        )
    })?;
    if !dir.is_dir() {
        bail!(
            "workspace {} is not a directory — pass a directory with -w",
            dir.display()
        );
    }
    Ok(dir)
}

/// A name for this run's own files, unique on this machine:
/// `run-<pid>-<nanos>`, whose pid `gitdir::sweep` reads back to tell a run
/// whose `sandbox` is gone.
fn run_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("run-{}-{nanos}", std::process::id())
}

/// The invoking user's uid:gid, so files written in /work belong to them. Run
/// through sudo, that is the user who ran sudo, not root.
pub fn invoking_user(host: &Host) -> String {
    if host.uid == 0 {
        let sudo = |key| host.env.get(key).and_then(|v| v.parse::<u32>().ok());
        if let (Some(uid), Some(gid)) = (sudo("SUDO_UID"), sudo("SUDO_GID")) {
            return format!("{uid}:{gid}");
        }
    }
    format!("{}:{}", host.uid, host.gid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(argv: &[&str]) -> RunArgs {
        let mut full = vec!["sandbox", "run"];
        full.extend_from_slice(argv);
        match crate::cli::Cli::parse_from(full).command {
            crate::cli::Command::Run(run) => *run,
            other => panic!("not a run: {other:?}"),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sandbox-plan-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.canonicalize().unwrap()
    }

    fn resolve(argv: &[&str], env: &BTreeMap<String, String>, cwd: &Path) -> Result<RunPlan> {
        let host = Host {
            env,
            cwd,
            uid: 1000,
            gid: 1000,
            stdin_is_terminal: false,
            stdout_is_terminal: false,
        };
        // The cache has a test of its own; elsewhere it would only add a mount.
        let mut config = Config::default();
        config.cache.enabled = false;
        let args = args(argv);
        let config = crate::config::layer(config, None, env, &args.flags())?.config;
        RunPlan::resolve(&args, &config, &[], &host)
    }

    #[test]
    fn the_cache_is_mounted_and_announced_with_flags_winning() {
        let dir = temp_dir("cache");
        let env: BTreeMap<_, _> = [("XDG_CACHE_HOME".to_string(), "/c".to_string())].into();
        let host = Host::quiet(&env, &dir);
        let mut config = Config::default();
        config.env.set.insert("PIP_NO_INPUT".into(), "1".into());
        let argv = args(&["-e", "GOMODCACHE=/mine", "true"]);
        let plan = RunPlan::resolve(&argv, &config, &[], &host).unwrap();
        let cache = plan.cache.clone().unwrap();
        assert_eq!(cache, crate::cache::dir_for(Path::new("/c/sandbox"), &dir));
        let last = plan.mounts.last().unwrap();
        assert_eq!(
            (last.source.as_path(), last.target.as_str()),
            (cache.as_path(), "/cache")
        );
        let env: BTreeMap<_, _> = plan.env.iter().cloned().collect();
        assert_eq!(env["XDG_CACHE_HOME"], "/cache");
        assert_eq!(env["PIP_NO_INPUT"], "1", "configured constants");
        assert_eq!(env["GOMODCACHE"], "/mine", "-e wins");

        let mut dropped = plan;
        dropped.drop_cache();
        assert!(dropped.mounts.iter().all(|m| m.target != "/cache"));
        let env: BTreeMap<_, _> = dropped.env.iter().cloned().collect();
        assert!(!env.contains_key("XDG_CACHE_HOME"));
        assert_eq!(env["GOMODCACHE"], "/mine", "what -e said stays");

        let plan = RunPlan::resolve(&args(&["--no-cache", "true"]), &config, &[], &host).unwrap();
        assert!(plan.cache.is_none());
        assert!(plan.mounts.iter().all(|m| m.target != "/cache"));
        assert!(plan.env.iter().all(|(k, _)| k != "XDG_CACHE_HOME"));
    }

    #[test]
    fn setup_gets_no_value_the_person_passed() {
        let dir = temp_dir("setup-env");
        let file = dir.join("creds.env");
        std::fs::write(&file, "FROM_FILE=file-secret\nLANG\nGITHUB_TOKEN\n").unwrap();
        let socket = dir.join("agent.sock");
        let env: BTreeMap<_, _> = [
            ("ANTHROPIC_API_KEY", "sk-secret"),
            ("ANTHROPIC_BASE_URL", "https://proxy.internal"),
            ("GITHUB_TOKEN", "ghp-secret"),
            ("LANG", "C.UTF-8"),
            ("TERM", "xterm"),
            ("SSH_AUTH_SOCK", socket.to_str().unwrap()),
            ("XDG_DATA_HOME", "/data"),
            ("XDG_CACHE_HOME", "/c"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let host = Host::quiet(&env, &dir);
        let mut config = Config::default();
        config.env.set.insert("PIP_NO_INPUT".into(), "1".into());
        // A user who allowed the agent's key name still keeps it from setup.
        config.env.allow.push("ANTHROPIC_*".into());
        let argv = args(&[
            "--env-file",
            file.to_str().unwrap(),
            "-e",
            "SECRET=typed-secret",
            "-e",
            "TERM",
            "--ssh-agent",
            "claude",
        ]);
        let plan = RunPlan::resolve(&argv, &config, &["make".into()], &host).unwrap();
        let run: BTreeMap<_, _> = plan.env.iter().cloned().collect();
        assert_eq!(run["ANTHROPIC_API_KEY"], "sk-secret");
        assert_eq!(run["FROM_FILE"], "file-secret");
        assert_eq!(run["SECRET"], "typed-secret");
        assert!(run.contains_key("SSH_AUTH_SOCK"));
        assert!(
            !run.contains_key("GITHUB_TOKEN"),
            "a bare name in an env file obeys the block list"
        );
        assert!(plan.withheld.contains(&(
            "GITHUB_TOKEN".into(),
            env_filter::Reason::Blocked("GITHUB_TOKEN".into())
        )));

        let setup: BTreeMap<_, _> = plan.setup_env.iter().cloned().collect();
        for personal in [
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_BASE_URL",
            "GITHUB_TOKEN",
            "FROM_FILE",
            "SECRET",
            "SSH_AUTH_SOCK",
            "TERM",
            "LANG",
            "CLAUDE_CONFIG_DIR",
        ] {
            assert!(!setup.contains_key(personal), "{personal}: {setup:?}");
        }
        for value in [
            "sk-secret",
            "proxy.internal",
            "ghp-secret",
            "file-secret",
            "typed-secret",
        ] {
            assert!(
                !setup.values().any(|v| v.contains(value)),
                "{value}: {setup:?}"
            );
        }
        assert_eq!(setup["PIP_NO_INPUT"], "1", "configured constants");
        assert!(
            !setup.contains_key("XDG_CACHE_HOME"),
            "an agent's run keeps no package cache"
        );
        assert!(plan.cache.is_none());
        assert_eq!(setup["HOME"], "/home/sandbox");
        assert_eq!(plan.argv(), ["claude"], "the command runs alone");

        // Without the agent or flags, the allowed host variables pass as in any run.
        let plan = RunPlan::resolve(&args(&["true"]), &config, &[], &host).unwrap();
        let setup: BTreeMap<_, _> = plan.setup_env.iter().cloned().collect();
        assert_eq!(setup["LANG"], "C.UTF-8");
        assert_eq!(setup["ANTHROPIC_BASE_URL"], "https://proxy.internal");
        assert_eq!(setup["TERM"], "xterm");
    }

    #[test]
    fn defaults_resolve() {
        let dir = temp_dir("defaults");
        let plan = resolve(&["python", "app.py"], &BTreeMap::new(), &dir).unwrap();
        assert_eq!(plan.image, Config::default().images["python"]);
        assert_eq!(plan.command, ["python", "app.py"]);
        assert_eq!(
            plan.mounts[0],
            BindMount {
                source: dir.clone(),
                target: "/work".into(),
                read_only: false
            }
        );
        // Every protected name is covered, read-only.
        assert_eq!(plan.mounts.len(), 1 + crate::protect::DEFAULT.len());
        assert!(plan.mounts[1..].iter().all(|m| m.read_only));
        assert_eq!(plan.user, "1000:1000");
        assert_eq!(
            plan.env,
            [("HOME".to_string(), "/home/sandbox".to_string())]
        );
        assert_eq!(plan.memory, Size(4 << 30));
        assert_eq!(plan.pids_limit, 512);
        assert_eq!(plan.seccomp.name, "default");
        assert!(!plan.tty);
        assert!(plan.stdin, "piped stdin is forwarded");
        assert_eq!(plan.timeout, Some(Duration::from_secs(1800)));
    }

    #[test]
    fn flags_override_the_configuration() {
        let dir = temp_dir("flags");
        let plan = resolve(
            &[
                "--memory",
                "512m",
                "--pids-limit",
                "64",
                "--user",
                "1:2",
                "--network",
                "none",
                "--tty",
                "-t",
                "5s",
                "sh",
            ],
            &BTreeMap::new(),
            &dir,
        )
        .unwrap();
        assert_eq!(plan.memory, Size(512 << 20));
        assert_eq!(plan.pids_limit, 64);
        assert_eq!(plan.user, "1:2");
        assert_eq!(plan.numeric_user(), Some((1, 2)));
        assert_eq!(plan.network, "none");
        assert!(plan.tty);
        assert_eq!(plan.timeout, Some(Duration::from_secs(5)));
    }

    #[test]
    fn terminals_decide_tty_and_stdin() {
        let dir = temp_dir("terminals");
        let env = BTreeMap::new();
        let decide = |stdin_is_terminal, stdout_is_terminal, argv: &[&str]| {
            let host = Host {
                env: &env,
                cwd: &dir,
                uid: 1,
                gid: 1,
                stdin_is_terminal,
                stdout_is_terminal,
            };
            let plan = RunPlan::resolve(&args(argv), &Config::default(), &[], &host).unwrap();
            (plan.tty, plan.stdin)
        };
        assert_eq!(decide(true, true, &["sh"]), (true, true));
        assert_eq!(decide(true, true, &["-T", "sh"]), (false, true));
        assert_eq!(
            decide(true, false, &["ls"]),
            (false, false),
            "a pager keeps its keystrokes"
        );
        assert_eq!(decide(false, true, &["cat"]), (false, true));
        assert_eq!(decide(false, false, &["--tty", "cat"]), (true, true));
    }

    #[test]
    fn sudo_maps_back_to_the_real_user() {
        let dir = temp_dir("sudo");
        let env: BTreeMap<_, _> = [
            ("SUDO_UID".to_string(), "1001".to_string()),
            ("SUDO_GID".to_string(), "1002".to_string()),
        ]
        .into();
        let host = Host {
            env: &env,
            cwd: &dir,
            uid: 0,
            gid: 0,
            stdin_is_terminal: false,
            stdout_is_terminal: false,
        };
        let mut config = Config::default();
        config.cache.enabled = false;
        let plan = RunPlan::resolve(&args(&["true"]), &config, &[], &host).unwrap();
        assert_eq!(plan.user, "1001:1002");
    }

    /// A git directory as `git init` lays it out, without needing git.
    fn fake_repository(dir: &Path) {
        for part in ["objects", "refs/heads", "hooks"] {
            std::fs::create_dir_all(dir.join(".git").join(part)).unwrap();
        }
        std::fs::write(dir.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(dir.join(".git/config"), "").unwrap();
    }

    #[test]
    fn protected_paths_are_mounted_read_only() {
        let dir = temp_dir("protected");
        fake_repository(&dir);
        std::fs::create_dir(dir.join(".vscode")).unwrap();
        let plan = resolve(&["true"], &BTreeMap::new(), &dir).unwrap();
        let target = |t: &str| plan.mounts.iter().find(|m| m.target == t).cloned();
        let git = target("/work/.git").unwrap();
        assert!(!git.read_only && git.source.starts_with(&plan.private_dir));
        assert!(target("/work/.git/hooks").unwrap().read_only);
        assert!(target("/work/.git/config").unwrap().read_only);
        assert!(!target("/work/.git/objects").unwrap().read_only);
        let vscode = target("/work/.vscode").unwrap();
        assert_eq!(
            (vscode.source, vscode.read_only),
            (dir.join(".vscode"), true)
        );
        let envrc = target("/work/.envrc").unwrap();
        assert!(envrc.read_only && envrc.source.starts_with(&plan.private_dir));
        assert!(plan.protections.git.is_some());

        let plan = resolve(&["--read-only-workspace", "true"], &BTreeMap::new(), &dir).unwrap();
        assert_eq!(
            plan.mounts.len(),
            1,
            "a read-only workspace needs no nested mounts"
        );
        assert!(plan.mounts[0].read_only);
    }

    #[test]
    fn protected_symlinks_are_never_followed() {
        let dir = temp_dir("symlink");
        let outside = temp_dir("symlink-target");
        fake_repository(&dir);
        std::fs::remove_dir(dir.join(".git/hooks")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join(".git/hooks")).unwrap();
        let plan = resolve(&["true"], &BTreeMap::new(), &dir).unwrap();
        assert!(plan.mounts.iter().all(|m| !m.source.starts_with(&outside)));
        assert!(plan.mounts.iter().all(|m| m.target != "/work/.git/hooks"));

        std::os::unix::fs::symlink(&outside, dir.join(".claude")).unwrap();
        let err = resolve(&["true"], &BTreeMap::new(), &dir).unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
    }

    #[test]
    fn bad_input_is_refused() {
        let dir = temp_dir("bad");
        let env = BTreeMap::new();
        assert!(resolve(&["-w", "/no/such/dir", "true"], &env, &dir).is_err());
        // Bad settings never parse: `cli.rs`'s bad_values_are_refused_with_the_types_words.
    }
}
