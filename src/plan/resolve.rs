//! Flags, configuration and the world resolved into a [`RunPlan`], one
//! small function per part: the command and its image, the workspace and
//! its mounts, the environment, the limits, the hardening, the terminal,
//! the lifecycle. Each reads what it needs and decides it once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{
    numeric_user, unique_name, BindMount, Env, Hardening, Io, Lifecycle, Limits, RunPlan, Task,
    Transfer, Workspace, World, WORKDIR,
};
use crate::agent::{self, AgentRun};
use crate::cache;
use crate::cli::RunArgs;
use crate::config::agents::Agent;
use crate::config::{Config, Cpus, Network, PullPolicy, WorkspaceTransfer};
use crate::env_filter::{self, Filter};
use crate::identity::{self, Account};
use crate::image;
use crate::protect::{self, Protections};
use crate::seccomp;

/// The longest time limit: any longer is none.
const CENTURY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// Where `--ssh-agent` puts the host's agent socket.
const SSH_AGENT_SOCKET: &str = "/run/sandbox/ssh-agent.sock";

/// The plan for `args` under `config`, with the project's `setup` steps.
pub fn resolve(
    args: &RunArgs,
    config: &Config,
    setup: &[String],
    world: &World,
) -> Result<RunPlan> {
    let dir = run_workspace(args.workspace.as_deref(), world)?;
    let home = config.container.home.clone();
    let profile = config.agent(&args.command[0]).filter(|_| !args.no_agent);
    let agent = match profile {
        Some(profile) => {
            let run = agent::resolve(
                &profile,
                &args.command[1..],
                args.agent_state,
                &home,
                &dir,
                world.env,
            )?;
            Some((run, profile))
        }
        None => None,
    };
    let agent = agent.as_ref();
    let mut task = task(args, config, agent, setup)?;
    let mut hardening = hardening(config, agent.map(|(_, p)| p), world, home)?;
    let owner = numeric_user(&hardening.user);
    let account = owner.and_then(|ids| Account::new(ids, &hardening.home, world.uid, world.env));
    let host = config.engine.host().to_string();
    let mut notes = Vec::new();
    let placed = Placement {
        host: &host,
        owner,
        account: account.as_ref(),
    };
    let workspace = workspace(
        args,
        config,
        dir,
        agent.map(|(r, _)| r),
        world,
        placed,
        &mut notes,
    )?;
    let mut env = env(
        args,
        config,
        agent.map(|(r, _)| r),
        &workspace,
        world,
        &hardening.home,
        account.as_ref(),
    )?;
    let limits = limits(config);
    let io = io(args, world, config);
    let mut lifecycle = lifecycle(args, config, &workspace, host)?;
    let egress = match hardening.network == Network::Allow.to_string() {
        true => {
            let network = super::unique_name("sandbox-net");
            let egress = super::egress::resolve(
                config,
                agent.map(|(_, p)| p),
                network,
                &mut env,
                world,
                &mut notes,
            )?;
            hardening.network = egress.network.clone();
            // A warm container is made before its run's network exists.
            // Said only to whoever asked for --warm: warm by default means
            // "where it applies", and most agents' runs take the allow-list.
            if lifecycle.warm.take().is_some() && args.warm {
                notes.push(
                    "warm starts do not combine with the allow-list: this run starts cold".into(),
                );
            }
            Some(egress)
        }
        false => None,
    };
    // After the relay has set the base URLs the arguments may name.
    if let Some((_, profile)) = agent {
        let at = profile.command.len();
        let words = agent::env_args(&profile.env_args, &env.passed);
        task.argv.splice(at..at, words);
    }
    Ok(RunPlan {
        task,
        workspace,
        env,
        limits,
        hardening,
        io,
        lifecycle,
        egress,
        notes,
    })
}

/// The command and its image: an agent's own, or the one the image map
/// gives the command's name.
fn task(
    args: &RunArgs,
    config: &Config,
    agent: Option<&(AgentRun, Agent)>,
    setup: &[String],
) -> Result<Task> {
    let argv = match agent {
        Some((run, _)) => run.argv.clone(),
        None => args.command.clone(),
    };
    let image = match (agent, &args.image) {
        (Some((_, profile)), None) => profile.image.clone(),
        _ => image::resolve(&argv[0], &config.images, args.image.as_deref())
            .context("no image for this command — pass --image or add an `images.default` entry")?
            .to_string(),
    };
    Ok(Task {
        image,
        argv,
        agent: agent.map(|(run, _)| run.name.clone()),
        setup: setup.to_vec(),
    })
}

/// Whether the workspace is copied rather than mounted: asked for, or the
/// engine is on another machine and cannot see this one's files.
fn copies(config: &Config, host: &str) -> bool {
    match config.engine.workspace {
        WorkspaceTransfer::Mount => false,
        WorkspaceTransfer::Copy => true,
        WorkspaceTransfer::Auto => !crate::engine::is_local(host),
    }
}

/// Where the run's files go: the engine, and who owns what is made for it.
#[derive(Clone, Copy)]
struct Placement<'a> {
    host: &'a str,
    owner: Option<(u32, u32)>,
    account: Option<&'a Account>,
}

/// The workspace, how it reaches /work, and every mount: the workspace
/// first, then its protections, the package cache, the agent's state and
/// the SSH agent's socket, the user's account and git identity. With
/// `world.make_dirs`, the host directories and files the mounts need are
/// made here, so nothing about them is left to decide.
fn workspace(
    args: &RunArgs,
    config: &Config,
    dir: PathBuf,
    agent: Option<&AgentRun>,
    world: &World,
    Placement {
        host,
        owner,
        account,
    }: Placement,
    notes: &mut Vec<String>,
) -> Result<Workspace> {
    let read_only = config.security.read_only_workspace;
    let copy = copies(config, host);
    let mut mounts = vec![BindMount {
        source: dir.clone(),
        target: WORKDIR.to_string(),
        read_only,
    }];
    let private_dir = crate::host_dirs::private_runtime_dir(world.env)?;
    let protections = match read_only {
        false => protect::resolve(
            &dir,
            &config.security.protected_paths,
            &private_dir,
            &run_name(),
            world.env,
        )?,
        true => Protections::default(),
    };
    // A copy has no host paths to mount over: it is kept by what comes
    // back, so it needs every protected path, names and what git's
    // configuration names.
    let protected_paths = match protections.paths.is_empty() {
        true => config.security.protected_paths.clone(),
        false => protections.paths.clone(),
    };
    let protections = match copy {
        true => Protections::default(),
        false => protections,
    };
    mounts.extend(protections.mounts.iter().cloned());

    let cache = cache_dir(
        args,
        config,
        &dir,
        agent.is_some() || copy,
        world,
        owner,
        notes,
    )?;
    if let Some(cache) = &cache {
        mounts.push(BindMount {
            source: cache.clone(),
            target: cache::TARGET.to_string(),
            read_only: false,
        });
    }
    // Host-side state stays out of a copy, as the cache does.
    let mut state_dirs = Vec::new();
    for (source, target) in agent.filter(|_| !copy).iter().flat_map(|run| &run.state) {
        if world.make_dirs {
            crate::host_dirs::ensure_owned(source, owner)
                .context("cannot create the agent's state directory")?;
        }
        state_dirs.push(source.clone());
        mounts.push(BindMount {
            source: source.clone(),
            target: target.clone(),
            read_only: false,
        });
    }
    if args.ssh_agent {
        if copy {
            bail!("--ssh-agent needs a local engine: a socket cannot be copied to another host");
        }
        mounts.push(BindMount {
            source: PathBuf::from(ssh_agent_socket(world)?),
            target: SSH_AGENT_SOCKET.to_string(),
            read_only: true,
        });
    }
    // Files of this machine's: a copy to another engine goes without them.
    if !copy {
        let files = identity::Files::new(account, &world.git);
        mounts.extend(files.mounts(&private_dir, world.make_dirs)?);
    }
    let transfer = match copy {
        true => Transfer::Copy {
            sync_back: !args.no_sync_back && !read_only,
            // Only a named volume can be mounted read-only; it is filled
            // before the run. The engine creates it, with the mount's
            // labels, along with the container.
            volume: read_only.then(|| unique_name("sandbox-work")),
        },
        false => Transfer::Mount,
    };
    Ok(Workspace {
        dir,
        mounts,
        transfer,
        protected_paths,
        protections,
        private_dir,
        cache,
        state_dirs,
    })
}

/// The workspace's package cache. Not for an agent: every run of the
/// workspace writes the cache, setup steps included, and agents load
/// plugins from it with their key in hand (opencode's under
/// XDG_CACHE_HOME). Not for a copy: it lives on this machine. A cache that
/// cannot be made only costs downloads: the run goes on without it.
fn cache_dir(
    args: &RunArgs,
    config: &Config,
    workspace: &Path,
    excluded: bool,
    world: &World,
    owner: Option<(u32, u32)>,
    notes: &mut Vec<String>,
) -> Result<Option<PathBuf>> {
    if !config.cache.enabled || args.no_cache || excluded {
        return Ok(None);
    }
    let dir = cache::dir_for(&cache::root(&config.cache, world.env)?, workspace);
    if world.make_dirs {
        if let Err(e) = cache::ensure(&dir, workspace, owner) {
            notes.push(format!(
                "running without the package cache: {e:#} — set cache.dir or pass --no-cache"
            ));
            return Ok(None);
        }
    }
    Ok(Some(dir))
}

fn ssh_agent_socket<'a>(world: &World<'a>) -> Result<&'a String> {
    world
        .env
        .get("SSH_AUTH_SOCK")
        .filter(|s| !s.is_empty())
        .context("--ssh-agent: SSH_AUTH_SOCK is not set — start an agent (ssh-agent) first")
}

/// The command's environment and the setup steps'. Later entries win: the
/// cache's variables, the configured constants, the agent's, env files,
/// then what was typed with -e.
fn env(
    args: &RunArgs,
    config: &Config,
    agent: Option<&AgentRun>,
    workspace: &Workspace,
    world: &World,
    home: &str,
    account: Option<&Account>,
) -> Result<Env> {
    let filter = Filter::new(&config.env.allow, &config.env.block)?;
    let cache_env = match workspace.cache {
        Some(_) => cache::env(),
        None => Vec::new(),
    };
    let constants: Vec<String> = cache_env
        .into_iter()
        .chain(config.env.set.clone())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut explicit = constants.clone();
    if let Some(run) = agent {
        explicit.extend(run.env.iter().cloned());
    }
    let mut from_files = Vec::new();
    for file in &args.env_file {
        let entries = env_file(file, agent.is_some(), config)?;
        from_files.extend(entries.iter().cloned());
        explicit.extend(filter.env_file(entries));
    }
    if args.ssh_agent {
        explicit.push(format!("SSH_AUTH_SOCK={SSH_AGENT_SOCKET}"));
    }
    explicit.extend(args.env.iter().cloned());
    let decision = filter.apply(world.env, &explicit)?;

    // Setup steps come with the repository: whatever the person running
    // sandbox passes by name stays out of their environment, even where
    // the allow list would have let the host's value through.
    let personal: Vec<&str> = agent
        .iter()
        .flat_map(|run| &run.env)
        .chain(&from_files)
        .chain(&args.env)
        .map(|entry| entry.split('=').next().unwrap_or_default().trim_end())
        .chain(["SSH_AUTH_SOCK"])
        .collect();
    let public: BTreeMap<String, String> = world
        .env
        .iter()
        .filter(|(name, _)| !personal.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let setup = filter.apply(&public, &constants)?.passed;
    let user = account.map(|a| a.name.as_str());
    Ok(Env {
        passed: with_home(decision.passed, home, user),
        withheld: decision.withheld,
        setup: with_home(setup, home, user),
    })
}

/// The entries of one `--env-file`. An agent's run refuses a variable that
/// would steer the agent: the file may come with the repository.
fn env_file(file: &Path, for_agent: bool, config: &Config) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("--env-file {}: cannot read it", file.display()))?;
    let entries = env_filter::parse_env_file(&text)
        .with_context(|| format!("--env-file {}", file.display()))?;
    if for_agent {
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
    Ok(entries)
}

/// HOME, and USER and LOGNAME as the container's passwd names the user,
/// unless set already: programs that ask who they run as read these first.
fn with_home(
    mut env: Vec<(String, String)>,
    home: &str,
    user: Option<&str>,
) -> Vec<(String, String)> {
    let defaults = [("HOME", Some(home)), ("USER", user), ("LOGNAME", user)];
    for (name, value) in defaults {
        if let Some(value) = value.filter(|_| !env.iter().any(|(k, _)| k == name)) {
            env.push((name.into(), value.to_string()));
        }
    }
    env
}

fn limits(config: &Config) -> Limits {
    Limits {
        memory: config.container.memory,
        cpus: config.container.cpus.map(Cpus::get),
        pids: config.container.pids_limit.get(),
        tmpfs_size: config.container.tmpfs_size,
        // A century is no limit: beyond it, clocks would overflow.
        timeout: config
            .container
            .timeout
            .filter(|t| !t.is_zero())
            .map(|t| t.min(CENTURY)),
    }
}

fn hardening(
    config: &Config,
    agent: Option<&Agent>,
    world: &World,
    home: String,
) -> Result<Hardening> {
    let user = match &config.container.user {
        Some(user) => user.to_string(),
        None => invoking_user(world),
    };
    let seccomp = seccomp::profile(&config.security.seccomp.to_string())?;
    // An agent needs its API; a configuration or project that turned the
    // network off still wins, and `--network` names the agent's too.
    let network = match agent {
        Some(profile) if config.container.network != Network::None => profile.network.clone(),
        _ => config.container.network.to_string(),
    };
    Ok(Hardening {
        user,
        home,
        network,
        read_only_root: config.container.read_only_root,
        seccomp,
        drop_all_capabilities: config.security.drop_all_capabilities,
        no_new_privileges: config.security.no_new_privileges,
        init: config.security.init,
        allow_engine_warnings: config.security.allow_engine_warnings,
        runtime: config.security.runtime.clone(),
    })
}

/// A terminal when both ends are one (or when asked). A terminal on stdin
/// with stdout going elsewhere (`sandbox run ls | less`) is left alone, as
/// `docker run` without -i does: reading it would steal the pager's
/// keystrokes; `-i` asks for it anyway, as docker run -i.
fn io(args: &RunArgs, world: &World, config: &Config) -> Io {
    let tty = if args.tty {
        true
    } else if args.no_tty {
        false
    } else {
        world.stdin_is_terminal && world.stdout_is_terminal
    };
    Io {
        tty,
        stdin: args.interactive || tty || !world.stdin_is_terminal || world.stdout_is_terminal,
        fast_pipes: config.container.fast_pipes,
    }
}

fn lifecycle(
    args: &RunArgs,
    config: &Config,
    workspace: &Workspace,
    host: String,
) -> Result<Lifecycle> {
    let pull = config.container.pull;
    // Silently cold where warm cannot apply: a kept container or a pull on
    // every run defeat the point, and a copied workspace is filled per run.
    // A git directory is made for each run, with HEAD and the index as they
    // are when it starts: one made ahead of time would be stale. A terminal
    // gets a warm container of its own (`warm.rs`).
    let warm = config.container.warm
        && workspace.transfer == Transfer::Mount
        && workspace.protections.git.is_none()
        && !args.keep
        && pull != PullPolicy::Always;
    let owner = match crate::reaper::Owner::current() {
        Some(owner) => Some(
            crate::reaper::Seal::load(&workspace.private_dir)
                .context("cannot seal this run's containers as sandbox's own")?
                .sign(&owner.label()),
        ),
        None => None,
    };
    Ok(Lifecycle {
        host,
        pull,
        keep: args.keep,
        warm: warm.then_some(config.container.warm_idle),
        owner,
    })
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

/// The workspace of a run: never `/`, and never the home directory or a
/// directory that holds it unless `-w` names it. Mounted writable, either
/// would hand the command the user's shell startup files, keys and every
/// project, and from `/` as root, the machine's `/etc`.
pub fn run_workspace(flag: Option<&Path>, world: &World) -> Result<PathBuf> {
    let dir = resolve_workspace(flag, world.cwd)?;
    if dir == Path::new("/") {
        bail!(
            "the workspace cannot be / (the whole machine) — run from a project directory, \
             or name one with -w"
        );
    }
    let home = world
        .env
        .get("HOME")
        .filter(|h| h.starts_with('/'))
        .and_then(|h| Path::new(h).canonicalize().ok());
    if let (Some(home), None) = (home, flag) {
        if home.starts_with(&dir) {
            bail!(
                "the workspace would be {}, which holds your home directory — run from a \
                 project directory, or pass -w {} if you mean it",
                dir.display(),
                dir.display()
            );
        }
    }
    Ok(dir)
}

/// A name for this run's own files, unique on this machine:
/// `run-<pid>-<nanos>`, whose pid `gitdir::sweep` reads back to tell a run
/// whose `sandbox` is gone.
fn run_name() -> String {
    unique_name("run")
}

/// The invoking user's uid:gid, so files written in /work belong to them. Run
/// through sudo, that is the user who ran sudo, not root.
pub fn invoking_user(world: &World) -> String {
    if world.uid == 0 {
        let sudo = |key| world.env.get(key).and_then(|v| v.parse::<u32>().ok());
        if let (Some(uid), Some(gid)) = (sudo("SUDO_UID"), sudo("SUDO_GID")) {
            return format!("{uid}:{gid}");
        }
    }
    format!("{}:{}", world.uid, world.gid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Size;
    use crate::env_filter;
    use clap::Parser;
    use std::time::Duration;

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

    fn plan_in(argv: &[&str], env: &BTreeMap<String, String>, cwd: &Path) -> Result<RunPlan> {
        let host = World::quiet(env, cwd);
        // The cache has a test of its own; elsewhere it would only add a mount.
        let mut config = Config::default();
        config.cache.enabled = false;
        resolve_layered(argv, config, &host)
    }

    /// `argv`'s flags layered over `config`, as `sandbox run` does, then resolved.
    fn resolve_layered(argv: &[&str], config: Config, world: &World) -> Result<RunPlan> {
        let args = args(argv);
        let config = crate::config::layer(config, None, world.env, &args.flags())?.config;
        resolve(&args, &config, &[], world)
    }

    #[test]
    fn the_cache_is_mounted_and_announced_with_flags_winning() {
        let dir = temp_dir("cache");
        let env: BTreeMap<_, _> = [("XDG_CACHE_HOME".to_string(), "/c".to_string())].into();
        let host = World::quiet(&env, &dir);
        let mut config = Config::default();
        config.env.set.insert("PIP_NO_INPUT".into(), "1".into());
        let argv = args(&["-e", "GOMODCACHE=/mine", "true"]);
        let plan = resolve(&argv, &config, &[], &host).unwrap();
        let cache = plan.workspace.cache.clone().unwrap();
        assert_eq!(cache, crate::cache::dir_for(Path::new("/c/sandbox"), &dir));
        let mounted = plan.workspace.mounts.iter().find(|m| m.target == "/cache");
        assert_eq!(mounted.unwrap().source, cache);
        let env: BTreeMap<_, _> = plan.env.passed.iter().cloned().collect();
        assert_eq!(env["XDG_CACHE_HOME"], "/cache");
        assert_eq!(env["PIP_NO_INPUT"], "1", "configured constants");
        assert_eq!(env["GOMODCACHE"], "/mine", "-e wins");

        // A cache that cannot be made is left out, with a note: its mount
        // and the variables that point at it, unless -e gave them values.
        let file = dir.join("not-a-directory");
        std::fs::write(&file, "").unwrap();
        config.cache.dir = Some(file.join("cache"));
        let no_env = BTreeMap::new();
        let making = World {
            make_dirs: true,
            ..World::quiet(&no_env, &dir)
        };
        let dropped = resolve(&argv, &config, &["make".into()], &making).unwrap();
        assert!(dropped.workspace.cache.is_none());
        assert!(dropped
            .workspace
            .mounts
            .iter()
            .all(|m| m.target != "/cache"));
        let env: BTreeMap<_, _> = dropped.env.passed.iter().cloned().collect();
        assert!(!env.contains_key("XDG_CACHE_HOME"));
        assert_eq!(env["GOMODCACHE"], "/mine", "what -e said stays");
        let setup: BTreeMap<_, _> = dropped.env.setup.iter().cloned().collect();
        assert!(!setup.contains_key("XDG_CACHE_HOME"), "nor for setup");
        assert!(
            dropped
                .notes
                .iter()
                .any(|n| n.contains("without the package cache")),
            "{:?}",
            dropped.notes
        );
        config.cache.dir = None;

        let plan = resolve(&args(&["--no-cache", "true"]), &config, &[], &host).unwrap();
        assert!(plan.workspace.cache.is_none());
        assert!(plan.workspace.mounts.iter().all(|m| m.target != "/cache"));
        assert!(plan.env.passed.iter().all(|(k, _)| k != "XDG_CACHE_HOME"));
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
        let host = World::quiet(&env, &dir);
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
        let plan = resolve(&argv, &config, &["make".into()], &host).unwrap();
        let run: BTreeMap<_, _> = plan.env.passed.iter().cloned().collect();
        assert_eq!(run["ANTHROPIC_API_KEY"], "sk-secret");
        assert_eq!(run["FROM_FILE"], "file-secret");
        assert_eq!(run["SECRET"], "typed-secret");
        assert!(run.contains_key("SSH_AUTH_SOCK"));
        assert!(
            !run.contains_key("GITHUB_TOKEN"),
            "a bare name in an env file obeys the block list"
        );
        assert!(plan.env.withheld.contains(&(
            "GITHUB_TOKEN".into(),
            env_filter::Reason::Blocked("GITHUB_TOKEN".into())
        )));

        let setup: BTreeMap<_, _> = plan.env.setup.iter().cloned().collect();
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
        assert!(plan.workspace.cache.is_none());
        assert_eq!(setup["HOME"], "/home/sandbox");
        assert_eq!(plan.task.argv, ["claude"], "the command runs alone");

        // Without the agent or flags, the allowed host variables pass as in any run.
        let plan = resolve(&args(&["true"]), &config, &[], &host).unwrap();
        let setup: BTreeMap<_, _> = plan.env.setup.iter().cloned().collect();
        assert_eq!(setup["LANG"], "C.UTF-8");
        assert_eq!(setup["ANTHROPIC_BASE_URL"], "https://proxy.internal");
        assert_eq!(setup["TERM"], "xterm");
    }

    #[test]
    fn defaults_resolve() {
        let dir = temp_dir("defaults");
        let plan = plan_in(&["python", "app.py"], &BTreeMap::new(), &dir).unwrap();
        assert_eq!(plan.task.image, Config::default().images["python"]);
        assert_eq!(plan.task.argv, ["python", "app.py"]);
        assert_eq!(
            plan.workspace.mounts[0],
            BindMount {
                source: dir.clone(),
                target: "/work".into(),
                read_only: false
            }
        );
        // Every protected name is covered, read-only; the user has an
        // account (there is no git identity in a quiet world).
        let (work, etc): (Vec<_>, Vec<_>) = plan.workspace.mounts[1..]
            .iter()
            .partition(|m| m.target.starts_with("/work/"));
        assert_eq!(work.len(), crate::protect::DEFAULT.len());
        let etc: Vec<&str> = etc.iter().map(|m| m.target.as_str()).collect();
        assert_eq!(etc, ["/etc/passwd", "/etc/group"]);
        assert!(plan.workspace.mounts[1..].iter().all(|m| m.read_only));
        assert_eq!(plan.hardening.user, "1000:1000");
        assert_eq!(
            plan.env.passed,
            [
                ("HOME", "/home/sandbox"),
                ("USER", "sandbox"),
                ("LOGNAME", "sandbox")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(plan.limits.memory, Size(4 << 30));
        assert_eq!(plan.limits.pids, 512);
        assert_eq!(plan.hardening.seccomp.name, "default");
        assert!(!plan.io.tty);
        assert!(plan.io.stdin, "piped stdin is forwarded");
        assert_eq!(plan.limits.timeout, Some(Duration::from_secs(1800)));
    }

    #[test]
    fn flags_override_the_configuration() {
        let dir = temp_dir("flags");
        let plan = plan_in(
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
                "--timeout",
                "5s",
                "sh",
            ],
            &BTreeMap::new(),
            &dir,
        )
        .unwrap();
        assert_eq!(plan.limits.memory, Size(512 << 20));
        assert_eq!(plan.limits.pids, 64);
        assert_eq!(plan.hardening.user, "1:2");
        assert_eq!(plan.numeric_user(), Some((1, 2)));
        assert_eq!(plan.hardening.network, "none");
        assert!(plan.io.tty);
        assert_eq!(plan.limits.timeout, Some(Duration::from_secs(5)));
    }

    #[test]
    fn terminals_decide_tty_and_stdin() {
        let dir = temp_dir("terminals");
        let env = BTreeMap::new();
        let decide = |stdin_is_terminal, stdout_is_terminal, argv: &[&str]| {
            let host = World {
                stdin_is_terminal,
                stdout_is_terminal,
                ..World::quiet(&env, &dir)
            };
            let plan = resolve(&args(argv), &Config::default(), &[], &host).unwrap();
            (plan.io.tty, plan.io.stdin)
        };
        assert_eq!(decide(true, true, &["sh"]), (true, true));
        assert_eq!(decide(true, true, &["-T", "sh"]), (false, true));
        assert_eq!(
            decide(true, false, &["ls"]),
            (false, false),
            "a pager keeps its keystrokes"
        );
        assert_eq!(
            decide(true, false, &["-i", "cat"]),
            (false, true),
            "unless -i"
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
        let host = World {
            uid: 0,
            gid: 0,
            ..World::quiet(&env, &dir)
        };
        let mut config = Config::default();
        config.cache.enabled = false;
        let plan = resolve(&args(&["true"]), &config, &[], &host).unwrap();
        assert_eq!(plan.hardening.user, "1001:1002");
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
        let plan = plan_in(&["true"], &BTreeMap::new(), &dir).unwrap();
        let target = |t: &str| {
            plan.workspace
                .mounts
                .iter()
                .find(|m| m.target == t)
                .cloned()
        };
        let git = target("/work/.git").unwrap();
        assert!(!git.read_only && git.source.starts_with(&plan.workspace.private_dir));
        assert!(target("/work/.git/hooks").unwrap().read_only);
        assert!(target("/work/.git/config").unwrap().read_only);
        assert!(!target("/work/.git/objects").unwrap().read_only);
        let vscode = target("/work/.vscode").unwrap();
        assert_eq!(
            (vscode.source, vscode.read_only),
            (dir.join(".vscode"), true)
        );
        let envrc = target("/work/.envrc").unwrap();
        assert!(envrc.read_only && envrc.source.starts_with(&plan.workspace.private_dir));
        assert!(plan.workspace.protections.git.is_some());

        let plan = plan_in(&["--read-only-workspace", "true"], &BTreeMap::new(), &dir).unwrap();
        let at_work = plan
            .workspace
            .mounts
            .iter()
            .filter(|m| m.target.starts_with("/work"));
        assert_eq!(
            at_work.count(),
            1,
            "a read-only workspace needs no nested mounts"
        );
        assert!(plan.workspace.mounts[0].read_only);
    }

    #[test]
    fn protected_symlinks_are_never_followed() {
        let dir = temp_dir("symlink");
        let outside = temp_dir("symlink-target");
        fake_repository(&dir);
        std::fs::remove_dir(dir.join(".git/hooks")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join(".git/hooks")).unwrap();
        let plan = plan_in(&["true"], &BTreeMap::new(), &dir).unwrap();
        assert!(plan
            .workspace
            .mounts
            .iter()
            .all(|m| !m.source.starts_with(&outside)));
        assert!(plan
            .workspace
            .mounts
            .iter()
            .all(|m| m.target != "/work/.git/hooks"));

        std::os::unix::fs::symlink(&outside, dir.join(".claude")).unwrap();
        let err = plan_in(&["true"], &BTreeMap::new(), &dir).unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
    }

    #[test]
    fn the_machine_and_the_home_directory_are_no_workspace() {
        let home = temp_dir("home");
        let project = home.join("src/app");
        std::fs::create_dir_all(&project).unwrap();
        let env: BTreeMap<_, _> = [("HOME".to_string(), home.display().to_string())].into();
        let err =
            |argv: &[&str], cwd: &Path| format!("{:#}", plan_in(argv, &env, cwd).unwrap_err());
        assert!(err(&["true"], Path::new("/")).contains("cannot be /"));
        assert!(err(&["-w", "/", "true"], &project).contains("cannot be /"));
        assert!(err(&["true"], &home).contains("holds your home directory"));
        let parent = home.parent().unwrap();
        assert!(err(&["true"], parent).contains("holds your home directory"));
        // Named with -w, it is what the person means.
        let named = plan_in(&["-w", home.to_str().unwrap(), "true"], &env, &project).unwrap();
        assert_eq!(named.workspace(), home);
        assert_eq!(
            plan_in(&["true"], &env, &project).unwrap().workspace(),
            project
        );
    }

    #[test]
    fn bad_input_is_refused() {
        let dir = temp_dir("bad");
        let env = BTreeMap::new();
        assert!(plan_in(&["-w", "/no/such/dir", "true"], &env, &dir).is_err());
        // Bad settings never parse: `cli.rs`'s bad_values_are_refused_with_the_types_words.
    }
}
