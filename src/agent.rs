//! Pure: a coding agent's profile applied to a run: its image and command,
//! its own credentials, its state directories.
//!
//! An agent's state is executable: Claude Code runs the hooks in its
//! `settings.json`, reads `CLAUDE.md` as instructions, starts the MCP servers
//! it lists and skips questions for the folders it trusts. So sandbox keeps
//! one copy per agent *and workspace*, under
//! `$XDG_DATA_HOME/sandbox/agents/<agent>/<workspace key>/`: what a hostile
//! checkout writes there reaches only its own later runs, never another
//! project's. Nothing is shared between workspaces, not even the login: a
//! shared credentials file would let one project swap in an account of its
//! choosing and read what other projects send. Each project logs in once, or
//! the agent takes its API key from the host's environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::agents::{Agent, StateSource};
use crate::host_dirs;

/// What an agent adds to a run.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRun {
    pub name: String,
    /// The agent's command, then the arguments typed after its name.
    pub argv: Vec<String>,
    /// `-e`-style entries: its constants, then the names of its keys (which
    /// pass only when set on the host, whatever the block list says).
    pub env: Vec<String>,
    /// State directories: host source → path in the container. From
    /// sandbox's own copy, a directory nested in HOME (`.local/share/x`) is
    /// kept with its top (`.local`): the engine would make the mount point's
    /// missing parents as root, and the agent could then create nothing
    /// beside it (`~/.local/state`). The user's own HOME is only ever
    /// mounted as deep as the profile says.
    pub state: Vec<(PathBuf, String)>,
}

/// Where sandbox keeps every agent's state, each workspace's apart.
pub fn state_home(host_env: &BTreeMap<String, String>) -> Result<PathBuf> {
    Ok(
        host_dirs::sandbox_dir(host_env, "XDG_DATA_HOME", directories::BaseDirs::data_dir)?
            .join("agents"),
    )
}

/// The directory that holds `agent`'s state for `workspace` (canonical).
pub fn state_root(
    host_env: &BTreeMap<String, String>,
    agent: &str,
    workspace: &Path,
) -> Result<PathBuf> {
    Ok(state_home(host_env)?
        .join(agent)
        .join(host_dirs::workspace_key(workspace)))
}

/// `agent` for `sandbox run NAME ARGS` in `workspace` (canonical), with HOME
/// at `home` in the container.
pub fn resolve(
    agent: &Agent,
    args: &[String],
    source: Option<StateSource>,
    home: &str,
    workspace: &Path,
    host_env: &BTreeMap<String, String>,
) -> Result<AgentRun> {
    let mut argv = agent.command.clone();
    argv.extend(args.iter().cloned());

    let mut env: Vec<String> = agent
        .set
        .iter()
        .map(|(k, v)| match v.strip_prefix("~/") {
            Some(rest) => format!("{k}={home}/{rest}"),
            None => format!("{k}={v}"),
        })
        .collect();
    env.extend(agent.env.iter().cloned());

    let root = match source.unwrap_or(agent.state_source) {
        StateSource::None => None,
        StateSource::Home => Some(
            host_env
                .get("HOME")
                .filter(|h| h.starts_with('/'))
                .map(PathBuf::from)
                .ok_or_else(|| {
                    anyhow::anyhow!("--agent-state home: HOME is not set — set it, or use sandbox")
                })?,
        ),
        StateSource::Sandbox => Some(state_root(host_env, &agent.name, workspace)?),
    };
    let state = match root {
        Some(root) => {
            let whole = source.unwrap_or(agent.state_source) == StateSource::Sandbox;
            let mut dirs: Vec<&str> = agent
                .state
                .iter()
                .map(|dir| dir.trim_matches('/'))
                .map(|dir| match whole {
                    true => dir.split('/').next().unwrap_or(dir),
                    false => dir,
                })
                .collect();
            dirs.sort_unstable();
            dirs.dedup();
            dirs.iter()
                .map(|dir| (root.join(dir), format!("{home}/{dir}")))
                .collect()
        }
        None => Vec::new(),
    };
    Ok(AgentRun {
        name: agent.name.clone(),
        argv,
        env,
        state,
    })
}

/// An agent's `env_args` for a run whose environment is `env`: each word
/// with every `${NAME}` replaced by NAME's value; a word naming a variable
/// the run does not have (or has empty) is left out whole.
pub fn env_args(words: &[String], env: &[(String, String)]) -> Vec<String> {
    let value = |name: &str| {
        env.iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    words
        .iter()
        .filter_map(|word| {
            let mut out = String::new();
            let mut rest = word.as_str();
            while let Some(start) = rest.find("${") {
                let (before, after) = rest.split_at(start);
                let end = after.find('}')?;
                out.push_str(before);
                out.push_str(value(&after[2..end])?);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            Some(out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::agents::defaults;

    fn claude() -> Agent {
        defaults()["claude"].resolve("claude").unwrap()
    }

    fn env() -> BTreeMap<String, String> {
        [
            ("HOME".to_string(), "/home/me".to_string()),
            ("XDG_DATA_HOME".to_string(), "/data".to_string()),
        ]
        .into()
    }

    const WORK: &str = "/home/me/src/app";

    fn resolve_in(workspace: &str, source: Option<StateSource>) -> AgentRun {
        let workspace = Path::new(workspace);
        resolve(&claude(), &[], source, "/home/sandbox", workspace, &env()).unwrap()
    }

    #[test]
    fn the_agent_runs_its_command_with_the_typed_arguments() {
        let args = ["--help".to_string()];
        let run = resolve(
            &claude(),
            &args,
            None,
            "/home/sandbox",
            Path::new(WORK),
            &env(),
        )
        .unwrap();
        assert_eq!(run.argv, ["claude", "--help"]);
        assert!(run
            .env
            .contains(&"CLAUDE_CONFIG_DIR=/home/sandbox/.claude".to_string()));
        assert!(
            run.env.contains(&"ANTHROPIC_API_KEY".to_string()),
            "by name only"
        );
    }

    #[test]
    fn state_comes_from_sandbox_unless_asked() {
        let run = resolve_in(WORK, None);
        let key = host_dirs::workspace_key(Path::new(WORK));
        assert_eq!(
            run.state,
            [(
                PathBuf::from(format!("/data/sandbox/agents/claude/{key}/.claude")),
                "/home/sandbox/.claude".to_string()
            )]
        );
        let run = resolve_in(WORK, Some(StateSource::Home));
        assert_eq!(run.state[0].0, PathBuf::from("/home/me/.claude"));
        let run = resolve_in(WORK, Some(StateSource::None));
        assert!(run.state.is_empty());
    }

    #[test]
    fn env_args_take_the_runs_values_and_drop_what_it_lacks() {
        let words = [
            "--config=openai_base_url=\"${OPENAI_BASE_URL}\"".to_string(),
            "--org=${ORG}".to_string(),
            "${A}-${B}".to_string(),
            "plain".to_string(),
        ];
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let run = env(&[
            ("OPENAI_BASE_URL", "http://egress:8082/v1"),
            ("ORG", ""),
            ("A", "1"),
        ]);
        assert_eq!(
            env_args(&words, &run),
            [
                "--config=openai_base_url=\"http://egress:8082/v1\"",
                "plain"
            ]
        );
        let run = env(&[("A", "1"), ("B", "2"), ("ORG", "o")]);
        assert_eq!(env_args(&words, &run), ["--org=o", "1-2", "plain"]);
        let unclosed = ["${A".to_string()];
        assert!(env_args(&unclosed, &run).is_empty());
    }

    #[test]
    fn nested_state_is_kept_from_the_top_so_its_parents_are_the_users() {
        let opencode = defaults()["opencode"].resolve("opencode").unwrap();
        let workspace = Path::new(WORK);
        let run = resolve(&opencode, &[], None, "/h", workspace, &env()).unwrap();
        let root = state_root(&env(), "opencode", workspace).unwrap();
        let expected = [".config", ".local"].map(|d| (root.join(d), format!("/h/{d}")));
        assert_eq!(run.state, expected);
        // The user's own HOME: only the directories named, never all of ~/.config.
        let home = Some(StateSource::Home);
        let run = resolve(&opencode, &[], home, "/h", workspace, &env()).unwrap();
        let targets: Vec<&str> = run.state.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(targets, ["/h/.config/opencode", "/h/.local/share/opencode"]);
    }

    #[test]
    fn each_workspace_has_state_of_its_own() {
        let here = resolve_in(WORK, None).state;
        let again = resolve_in(WORK, None).state;
        assert_eq!(here, again, "the same workspace finds its state again");
        for other in [
            "/home/me/src/other",
            "/home/you/src/app",
            "/home/me/src/app/sub",
        ] {
            let there = resolve_in(other, None).state;
            assert_ne!(here[0].0, there[0].0, "{other}");
            assert!(
                !there[0].0.starts_with(here[0].0.parent().unwrap()),
                "{other} is not inside {WORK}'s state"
            );
            assert_eq!(here[0].1, there[0].1, "the same place in the container");
        }
        let name = here[0]
            .0
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        assert!(name.starts_with("app-"), "readable: {name}");
        // --agent-state home is one directory for every workspace, by request.
        assert_eq!(
            resolve_in(WORK, Some(StateSource::Home)).state,
            resolve_in("/home/me/src/other", Some(StateSource::Home)).state
        );
    }
}
