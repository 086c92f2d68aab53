//! Command-line surface: clap derive types only, no behaviour.
//!
//! These are the "low" arguments, as typed; a setting's value is parsed here
//! by its own type (`config::types`), as a file's is. The flags that stand
//! for a configuration key go over it in `config::layer`; `plan.rs` turns
//! the rest and the layered configuration into a resolved `RunPlan`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::config::types::duration;
use crate::config::{Cpus, Flags, Network, PidsLimit, PullPolicy, SeccompSpec, Size, User};

/// Run any command in a throwaway, hardened container.
#[derive(Debug, Parser)]
#[command(
    name = "sandbox",
    version,
    propagate_version = true,
    max_term_width = 100,
    // A bare `sandbox` is a request for orientation: main prints the help.
    arg_required_else_help = true
)]
pub struct Cli {
    /// Configuration file [default: $SANDBOX_CONFIG, else ~/.config/sandbox/config.yaml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// More diagnostics on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr: no progress, no warnings
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Engine to use: unix:///path, tcp://host:port, ssh://user@host
    /// [default: $DOCKER_HOST, else engine.host, else the local socket]
    #[arg(short = 'H', long, global = true, value_name = "URL")]
    pub host: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run COMMAND in a fresh container with the workspace at /work
    #[command(
        after_help = "Exit status: the command's own; 124 on --timeout; 125 when sandbox or the \
                      engine fails; 126 when the command cannot be invoked; 127 when it is not \
                      found; 128+N when it is killed by signal N (137: out of memory)."
    )]
    Run(Box<RunArgs>),
    /// List sandbox's containers (only those kept or still running)
    #[command(visible_alias = "ps")]
    Ls(LsArgs),
    /// Remove sandbox's stopped containers, and nothing else
    Prune(PruneArgs),
    /// Serve MCP on stdio (or HTTP): agents run commands here as `sandbox run` does
    Mcp(McpArgs),
    /// Show, create, edit or check the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Show or empty the package caches kept between runs
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Check the engine, the configuration, images and the workspace
    Doctor,
    /// Print a shell completion script: sandbox completions bash > /etc/bash_completion.d/sandbox
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff): sandbox man run | man -l -
    Man(ManArgs),
    /// Internal: start a warm container from the request on stdin
    #[command(hide = true)]
    WarmPrepare,
    /// Internal: remove what a run leaves if it dies (the run starts it)
    #[command(hide = true)]
    Reap,
    /// Internal: the allow-list's proxy, in the egress container of a run
    #[command(hide = true)]
    EgressProxy,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (`run`, `config show`)
    /// [default: sandbox's own page]
    #[arg(value_name = "SUBCOMMAND", conflicts_with = "out_dir")]
    pub command: Vec<String>,

    /// Write every page (sandbox.1, sandbox-run.1, ...) into DIR
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// One JSON array, for scripts
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Also stop and remove running containers, but not those of runs whose sandbox is alive
    #[arg(short, long)]
    pub all: bool,

    /// Remove these containers (ID or name), running or not, and nothing else
    #[arg(value_name = "CONTAINER", conflicts_with = "all")]
    pub containers: Vec<String>,

    /// List what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `sandbox mcp`: the workspace and the bounds are the server's; every
/// other setting is the configuration's, as for `sandbox run` there.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// The workspace every call works in, fixed for the server's life
    /// [default: the current directory]
    #[arg(short, long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,

    /// Serve streamable HTTP on this loopback address (127.0.0.1:8931)
    /// instead of stdio; clients must send the bearer token in
    /// $SANDBOX_MCP_TOKEN
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,

    /// How many calls run at once; more wait for a turn
    #[arg(long, value_name = "N", default_value_t = std::num::NonZeroUsize::new(4).unwrap())]
    pub max_concurrent: std::num::NonZeroUsize,

    /// Hand each `run` to a warm container, as `sandbox run --warm`
    #[arg(long)]
    pub warm: bool,

    /// How much of each output stream a `run` returns (head and tail kept)
    #[arg(long, value_name = "SIZE", default_value = "64k")]
    pub max_output: Size,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (defaults merged with the file) as YAML
    Show,
    /// Print the path of the configuration file in use
    Path,
    /// Write a commented file with every default to the configuration path
    Init {
        /// Replace an existing file
        #[arg(long)]
        force: bool,
    },
    /// Open the configuration file in $VISUAL or $EDITOR, then check it
    Edit,
    /// Check a configuration file and report every problem with its line
    Validate {
        /// The file to check [default: the configuration file in use]
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Where the caches are, how much each workspace's holds, and where
    /// agents' state is kept
    Info,
    /// Empty this workspace's cache
    Clean {
        /// Every workspace's cache
        #[arg(long)]
        all: bool,
        /// The workspace whose cache to empty [default: the current directory]
        #[arg(short, long, value_name = "DIR", conflicts_with = "all")]
        workspace: Option<PathBuf>,
    },
}

/// `sandbox run`'s flags. Where docker run has a flag of the same name, it
/// means the same here (`-i`, `-t`, `-e`, `-u`, `--network`, `--memory`,
/// `--cpus`, `--pids-limit`, `--pull`, `--runtime`, `--env-file`, `--rm`);
/// what sandbox does otherwise (`-v`) is refused in one line (`habits.rs`).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Image to run in, instead of the one the configuration maps COMMAND to
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,

    /// Stop the command after this long: 90s, 5m, 1h30m (exit status 124)
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub timeout: Option<Duration>,

    /// Directory mounted at /work [default: the current directory]
    #[arg(short, long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,

    /// Keep the container after it exits (remove it later with `sandbox prune`)
    #[arg(short, long)]
    pub keep: bool,

    /// docker run's --rm, accepted as it changes nothing: sandbox always
    /// removes the container unless told --keep
    #[arg(long, hide = true, conflicts_with = "keep")]
    pub rm: bool,

    /// docker run's -v/--volume and --mount: refused in one line naming
    /// the workspace, sandbox's one mount (`habits.rs`)
    #[arg(long, alias = "mount", hide = true, value_name = "SPEC")]
    pub volume: Vec<String>,

    /// Pass KEY=VALUE, or KEY with the host's value; passes even if blocked
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,

    /// Read variables from FILE: KEY=VALUE lines, or KEY for the host's value;
    /// they pass even if blocked, as with -e
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,

    /// Forward your SSH agent ($SSH_AUTH_SOCK): the command can then use every
    /// key the agent holds, for as long as it runs
    #[arg(long)]
    pub ssh_agent: bool,

    /// Where a coding agent's state (login, settings) comes from: sandbox's
    /// own copy for this workspace, your home directory (shared with every
    /// project, and with the agent outside the sandbox), or none
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub agent_state: Option<crate::config::agents::StateSource>,

    /// Network: bridge, none, host, allow (only the hosts of the
    /// allow-list, through sandbox's proxy), or a network name
    #[arg(long, value_name = "MODE")]
    pub network: Option<Network>,

    /// Let the command reach HOST through the allow-list (implies --network
    /// allow): api.example.com, *.example.com, an address, each with an
    /// optional :PORT (else 80 and 443), or a preset such as @pypi
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,

    /// Send requests for HOST to ADDRESS instead of asking DNS, as
    /// curl --resolve (allow-list only)
    #[arg(long, value_name = "HOST:ADDRESS")]
    pub resolve: Vec<String>,

    // A value that starts with `-` is the type's to refuse (`--memory -1g`:
    // "not a size"), not clap's "unexpected argument".
    /// Memory limit, swap capped at the same: 512m, 4g
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory: Option<Size>,

    /// CPU limit, in cores: 1.5
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub cpus: Option<Cpus>,

    /// Maximum number of processes and threads
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<PidsLimit>,

    /// Run as UID:GID [default: the invoking user]
    #[arg(short, long, value_name = "UID:GID")]
    pub user: Option<User>,

    /// OCI runtime registered with the engine, e.g. runsc (gVisor)
    #[arg(long, value_name = "NAME")]
    pub runtime: Option<String>,

    /// Seccomp profile: default, strict, debug, or a path to a JSON profile
    #[arg(long, value_name = "NAME|PATH")]
    pub seccomp: Option<SeccompSpec>,

    /// When to pull the image
    #[arg(long, value_enum, value_name = "WHEN")]
    pub pull: Option<PullPolicy>,

    /// Mount the workspace read-only (recommended for code you did not write)
    #[arg(long)]
    pub read_only_workspace: bool,

    /// Keep stdin open even when it is a terminal and stdout is not, as
    /// docker run -i (without it, stdin is forwarded unless it is a terminal
    /// whose keystrokes belong to a pager: `sandbox run ls | less`)
    #[arg(short, long)]
    pub interactive: bool,

    /// Allocate a terminal even when stdin or stdout is not one, as docker
    /// run -t [default: when both are terminals]
    #[arg(short, long, conflicts_with = "no_tty")]
    pub tty: bool,

    /// Never allocate a terminal
    #[arg(short = 'T', long)]
    pub no_tty: bool,

    /// Hand the command to a container started ahead of time, and have the
    /// next one prepared once the run has ended [default: on, as
    /// container.warm; runs where it cannot apply start cold]
    #[arg(long, overrides_with_all = ["warm", "no_warm"])]
    pub warm: bool,

    /// Start cold, and prepare no container for the next run, whatever the
    /// configuration says (the last of --warm and --no-warm counts)
    #[arg(long, overrides_with_all = ["warm", "no_warm"])]
    pub no_warm: bool,

    /// Internal (`sandbox mcp`): COMMAND is a command, never a coding agent,
    /// so a caller cannot name an agent to be handed its keys and state
    #[arg(long, hide = true)]
    pub no_agent: bool,

    /// Copy the workspace into the container and the changes back, as for a
    /// remote engine, instead of mounting it
    #[arg(long)]
    pub copy_workspace: bool,

    /// With a copied workspace, bring nothing back: the host stays untouched
    #[arg(long)]
    pub no_sync_back: bool,

    /// Leave the package cache (/cache) out of this run
    #[arg(long)]
    pub no_cache: bool,

    /// Print what would be sent to the engine and exit without running anything
    #[arg(long)]
    pub dry_run: bool,

    /// The command and its arguments, passed to the container verbatim
    #[arg(
        required = true,
        trailing_var_arg = true,
        value_name = "COMMAND",
        num_args = 1..
    )]
    pub command: Vec<String>,
}

impl Cli {
    /// The flags that stand for configuration keys, for `config::layer`:
    /// `--host`, and a run's own.
    pub fn flags(&self) -> Flags {
        let run = match &self.command {
            Command::Run(args) => args.flags(),
            _ => Flags::default(),
        };
        Flags {
            host: self.host.clone(),
            ..run
        }
    }
}

impl RunArgs {
    /// This run's flags that stand for configuration keys (`--host` is
    /// [`Cli`]'s).
    pub fn flags(&self) -> Flags {
        Flags {
            host: None,
            memory: self.memory,
            cpus: self.cpus,
            pids_limit: self.pids_limit,
            user: self.user.clone(),
            network: self.network.clone(),
            allow_hosts: self.allow_hosts.clone(),
            resolve: self.resolve.clone(),
            seccomp: self.seccomp.clone(),
            pull: self.pull,
            runtime: self.runtime.clone(),
            timeout: self.timeout,
            warm: match (self.warm, self.no_warm) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            read_only_workspace: self.read_only_workspace,
            copy_workspace: self.copy_workspace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(args).expect("arguments parse");
        match cli.command {
            Command::Run(run) => *run,
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn options_stop_at_the_command() {
        let run = parse(&["sandbox", "run", "-k", "ls", "-la", "--keep", "-e", "X"]);
        assert!(run.keep);
        assert_eq!(run.command, ["ls", "-la", "--keep", "-e", "X"]);
        assert!(run.env.is_empty());
    }

    #[test]
    fn the_last_of_warm_and_no_warm_counts() {
        let warm = |args: &[&str]| parse(args).flags().warm;
        assert_eq!(warm(&["sandbox", "run", "true"]), None);
        assert_eq!(
            warm(&["sandbox", "run", "--no-warm", "--warm", "t"]),
            Some(true)
        );
        assert_eq!(
            warm(&["sandbox", "run", "--warm", "--no-warm", "t"]),
            Some(false)
        );
    }

    #[test]
    fn double_dash_is_accepted() {
        let run = parse(&["sandbox", "run", "--", "-weird", "arg"]);
        assert_eq!(run.command, ["-weird", "arg"]);
    }

    #[test]
    fn quoted_arguments_stay_whole() {
        let run = parse(&["sandbox", "run", "python", "-c", "print(1)"]);
        assert_eq!(run.command, ["python", "-c", "print(1)"]);
    }

    #[test]
    fn timeout_takes_humantime() {
        let run = parse(&["sandbox", "run", "--timeout", "1m30s", "true"]);
        assert_eq!(run.timeout, Some(Duration::from_secs(90)));
    }

    #[test]
    fn dockers_short_flags_mean_what_they_mean_to_docker() {
        let run = parse(&["sandbox", "run", "-it", "-u", "1:2", "--rm", "sh"]);
        assert!(run.interactive && run.tty && run.rm);
        assert_eq!(run.user.map(|u| u.to_string()).as_deref(), Some("1:2"));
        assert_eq!(run.command, ["sh"]);
        // Neither takes a value: what follows is the command.
        let run = parse(&["sandbox", "run", "-i", "python:3.12", "-t", "5m"]);
        assert!(run.interactive && !run.tty && run.image.is_none());
        assert_eq!(run.command, ["python:3.12", "-t", "5m"]);
        assert!(Cli::try_parse_from(["sandbox", "run", "--rm", "-k", "true"]).is_err());
    }

    #[test]
    fn negative_values_reach_their_type() {
        for (flag, value) in [
            ("--memory", "-1g"),
            ("--cpus", "-1"),
            ("--pids-limit", "-5"),
        ] {
            let err = Cli::try_parse_from(["sandbox", "run", flag, value, "true"]).unwrap_err();
            let source = std::error::Error::source(&err).expect("the type's error");
            let invalid = source.downcast_ref::<crate::config::types::Invalid>();
            assert_eq!(invalid.map(|i| i.value.as_str()), Some(value), "{flag}");
        }
    }

    #[test]
    fn a_command_is_required() {
        assert!(Cli::try_parse_from(["sandbox", "run", "-k"]).is_err());
    }

    #[test]
    fn settings_parse_by_their_type() {
        let run = parse(&[
            "sandbox",
            "run",
            "--memory",
            "512m",
            "--cpus",
            "1.5",
            "--user",
            "1:2",
            "--network",
            "none",
            "--seccomp",
            "strict",
            "true",
        ]);
        let flags = run.flags();
        assert_eq!(flags.memory, Some(Size(512 << 20)));
        assert_eq!(flags.cpus.map(Cpus::get), Some(1.5));
        assert_eq!(flags.user.and_then(|u| u.numeric()), Some((1, 2)));
        assert_eq!(flags.network, Some(Network::None));
        assert_eq!(flags.seccomp, Some(SeccompSpec::Strict));
        let cli = Cli::try_parse_from(["sandbox", "-H", "ssh://box", "ls"]).unwrap();
        assert_eq!(cli.flags().host.as_deref(), Some("ssh://box"));
    }

    #[test]
    fn bad_values_are_refused_with_the_types_words() {
        for (flag, value) in [
            ("--memory", "lots"),
            ("--cpus", "0"),
            ("--pids-limit", "0"),
            ("--user", "a b"),
            ("--seccomp", "no-such-profile"),
            ("--timeout", "soon"),
        ] {
            let err = Cli::try_parse_from(["sandbox", "run", flag, value, "true"]).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
            let source = std::error::Error::source(&err).expect("the type's error");
            let invalid = source.downcast_ref::<crate::config::types::Invalid>();
            assert_eq!(invalid.map(|i| i.value.as_str()), Some(value), "{flag}");
        }
    }
}
