//! Pure: a coding agent's profile applied to a run: its image and command,
//! its own credentials, its state directories.

use std::collections::BTreeMap;
use std::path::PathBuf;

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
    /// State directories: host source → path in the container.
    pub state: Vec<(PathBuf, String)>,
}

/// `agent` for `sandbox run NAME ARGS`, with HOME at `home` in the container.
pub fn resolve(
    agent: &Agent,
    args: &[String],
    source: Option<StateSource>,
    home: &str,
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
        StateSource::Sandbox => Some(
            host_dirs::sandbox_dir(host_env, "XDG_DATA_HOME", directories::BaseDirs::data_dir)?
                .join("agents")
                .join(&agent.name),
        ),
    };
    let state = match root {
        Some(root) => agent
            .state
            .iter()
            .map(|dir| {
                let dir = dir.trim_matches('/');
                (root.join(dir), format!("{home}/{dir}"))
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(AgentRun {
        name: agent.name.clone(),
        argv,
        env,
        state,
    })
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

    #[test]
    fn the_agent_runs_its_command_with_the_typed_arguments() {
        let run = resolve(&claude(), &["--help".into()], None, "/home/sandbox", &env()).unwrap();
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
        let run = resolve(&claude(), &[], None, "/home/sandbox", &env()).unwrap();
        assert_eq!(
            run.state,
            [(
                PathBuf::from("/data/sandbox/agents/claude/.claude"),
                "/home/sandbox/.claude".to_string()
            )]
        );
        let home = StateSource::Home;
        let run = resolve(&claude(), &[], Some(home), "/home/sandbox", &env()).unwrap();
        assert_eq!(run.state[0].0, PathBuf::from("/home/me/.claude"));
        let none = StateSource::None;
        let run = resolve(&claude(), &[], Some(none), "/home/sandbox", &env()).unwrap();
        assert!(run.state.is_empty());
    }
}
