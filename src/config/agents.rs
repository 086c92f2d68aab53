//! Coding agents: `sandbox run claude ...` runs Claude Code in its own image,
//! with the credentials it needs and nothing another agent needs.
//!
//! Every field is optional in a file, so `agents.claude.image: mine:1`
//! changes the image and keeps the rest of the built-in profile.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where an agent's state directories (login, settings, history) come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StateSource {
    /// sandbox's own copy for this workspace, kept between runs: the agent
    /// never sees yours, nor another project's.
    Sandbox,
    /// Your own (~/.claude, ...), the same for every project. The agent can
    /// then change what runs outside the sandbox and in every other project,
    /// such as Claude Code's hooks.
    Home,
    /// Nothing kept: every run starts logged out.
    None,
}

/// One agent's profile; `None` fields take the built-in values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The image it runs in; `make images` builds the defaults.
    pub image: Option<String>,
    /// What starts it: `sandbox run claude ARGS` runs COMMAND... ARGS.
    pub command: Option<Vec<String>>,
    /// Host variables passed to this agent only, and only when set.
    pub env: Option<Vec<String>>,
    /// Constants set for it; a leading `~/` is the container's HOME.
    pub set: Option<BTreeMap<String, String>>,
    /// Directories under HOME where it keeps its state.
    pub state: Option<Vec<String>>,
    /// Where those directories come from.
    pub state_source: Option<StateSource>,
    /// Its network: it has to reach its model's API.
    pub network: Option<String>,
}

/// A profile with every field resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub set: BTreeMap<String, String>,
    pub state: Vec<String>,
    pub state_source: StateSource,
    pub network: String,
}

impl AgentConfig {
    /// `self` over `base`, field by field.
    pub fn over(self, base: &AgentConfig) -> AgentConfig {
        AgentConfig {
            image: self.image.or_else(|| base.image.clone()),
            command: self.command.or_else(|| base.command.clone()),
            env: self.env.or_else(|| base.env.clone()),
            set: self.set.or_else(|| base.set.clone()),
            state: self.state.or_else(|| base.state.clone()),
            state_source: self.state_source.or(base.state_source),
            network: self.network.or_else(|| base.network.clone()),
        }
    }

    /// The profile ready to use; a user's agent without an image gets none.
    pub fn resolve(&self, name: &str) -> Option<Agent> {
        Some(Agent {
            name: name.to_string(),
            image: self.image.clone()?,
            command: self
                .command
                .clone()
                .unwrap_or_else(|| vec![name.to_string()]),
            env: self.env.clone().unwrap_or_default(),
            set: self.set.clone().unwrap_or_default(),
            state: self.state.clone().unwrap_or_default(),
            state_source: self.state_source.unwrap_or(StateSource::Sandbox),
            network: self.network.clone().unwrap_or_else(|| "bridge".into()),
        })
    }
}

/// The built-in profiles. Images are local builds (`make images`): none of
/// these agents publishes an image of its own.
pub fn defaults() -> BTreeMap<String, AgentConfig> {
    let agent = |name: &str, env: &[&str], set: &[(&str, &str)], state: &[&str]| {
        let profile = AgentConfig {
            image: Some(format!("sandbox-agents/{name}:1")),
            command: Some(vec![name.to_string()]),
            env: Some(env.iter().map(|e| e.to_string()).collect()),
            set: Some(
                set.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            state: Some(state.iter().map(|s| s.to_string()).collect()),
            state_source: Some(StateSource::Sandbox),
            network: Some("bridge".into()),
        };
        (name.to_string(), profile)
    };
    BTreeMap::from([
        agent(
            "claude",
            &[
                "ANTHROPIC_API_KEY",
                "ANTHROPIC_AUTH_TOKEN",
                "ANTHROPIC_BASE_URL",
                "ANTHROPIC_MODEL",
            ],
            // Keeps .claude.json inside the mounted directory, not beside it.
            &[
                ("CLAUDE_CONFIG_DIR", "~/.claude"),
                ("DISABLE_AUTOUPDATER", "1"),
            ],
            &[".claude"],
        ),
        agent(
            "codex",
            &["OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID"],
            &[("CODEX_HOME", "~/.codex")],
            &[".codex"],
        ),
        agent(
            "gemini",
            &[
                "GEMINI_API_KEY",
                "GOOGLE_API_KEY",
                "GOOGLE_CLOUD_PROJECT",
                "GOOGLE_GENAI_USE_VERTEXAI",
            ],
            &[],
            &[".gemini"],
        ),
        agent(
            "opencode",
            &[
                "ANTHROPIC_API_KEY",
                "OPENAI_API_KEY",
                "GEMINI_API_KEY",
                "OPENROUTER_API_KEY",
            ],
            &[],
            &[".local/share/opencode", ".config/opencode"],
        ),
        agent(
            "kilocode",
            &[
                "KILOCODE_API_KEY",
                "ANTHROPIC_API_KEY",
                "OPENAI_API_KEY",
                "OPENROUTER_API_KEY",
            ],
            &[],
            // Kilo Code 7 is built on OpenCode and keeps its state where it does.
            &[".config/kilo", ".local/share/kilo"],
        ),
        agent(
            "aider",
            &[
                "OPENAI_API_KEY",
                "ANTHROPIC_API_KEY",
                "GEMINI_API_KEY",
                "OPENROUTER_API_KEY",
            ],
            // Aider loads the repository's .env over its environment: a
            // planted OPENAI_API_BASE would send the key elsewhere.
            &[("AIDER_ENV_FILE", "/dev/null")],
            &[],
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_changes_only_the_keys_it_names() {
        let base = &defaults()["claude"];
        let mine = AgentConfig {
            image: Some("me/claude:2".into()),
            ..Default::default()
        };
        let agent = mine.over(base).resolve("claude").unwrap();
        assert_eq!(agent.image, "me/claude:2");
        assert_eq!(agent.command, ["claude"]);
        assert!(agent.env.contains(&"ANTHROPIC_API_KEY".to_string()));
        assert_eq!(agent.state, [".claude"]);
        assert_eq!(agent.state_source, StateSource::Sandbox);
    }

    #[test]
    fn every_agent_keeps_to_its_own_keys() {
        let agents = defaults();
        let env = |name: &str| agents[name].env.clone().unwrap();
        assert!(!env("codex").iter().any(|e| e.starts_with("ANTHROPIC")));
        assert!(!env("claude").iter().any(|e| e.starts_with("OPENAI")));
        assert!(!env("gemini").iter().any(|e| e.starts_with("ANTHROPIC")));
    }

    #[test]
    fn a_new_agent_needs_an_image() {
        assert_eq!(AgentConfig::default().resolve("mine"), None);
        let mine = AgentConfig {
            image: Some("me/agent:1".into()),
            ..Default::default()
        };
        let agent = mine.resolve("mine").unwrap();
        assert_eq!(agent.command, ["mine"]);
        assert_eq!(agent.network, "bridge");
    }
}
