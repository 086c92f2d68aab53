//! Coding agents: `sandbox run claude ...` runs Claude Code in its own image,
//! with the credentials it needs and nothing another agent needs.
//!
//! Every field is optional in a file, so `agents.claude.image: mine:1`
//! changes the image and keeps the rest of the built-in profile. The built-in
//! profiles come from the agent table, images/agents/agents.txt (table.rs),
//! which `make images` builds the images from: one list for both.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

mod table;

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
    #[serde(deserialize_with = "program_first")]
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
    /// The hosts its runs may reach under the allow-list.
    pub allow: Option<Vec<String>>,
    /// Its key variables kept on the host behind sandbox's relay.
    pub relay: Option<Vec<String>>,
    /// Arguments put before yours, for a setting it reads only from its
    /// command line: each word with `${NAME}` replaced by the run's value
    /// of NAME, passed only when NAME is set in the run.
    pub env_args: Option<Vec<String>>,
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
    pub allow: Vec<String>,
    pub relay: Vec<String>,
    pub env_args: Vec<String>,
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
            allow: self.allow.or_else(|| base.allow.clone()),
            relay: self.relay.or_else(|| base.relay.clone()),
            env_args: self.env_args.or_else(|| base.env_args.clone()),
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
            // An agent of one's own with no hosts named keeps the open
            // network it had before the allow-list existed.
            network: self.network.clone().unwrap_or_else(|| {
                match self.allow.as_ref().is_some_and(|a| !a.is_empty()) {
                    true => "allow".into(),
                    false => "bridge".into(),
                }
            }),
            allow: self.allow.clone().unwrap_or_default(),
            relay: self.relay.clone().unwrap_or_default(),
            env_args: self.env_args.clone().unwrap_or_default(),
        })
    }
}

/// The built-in profiles, one per agent of the agent table: the Makefile
/// builds the images they name from the same stanzas.
pub fn defaults() -> BTreeMap<String, AgentConfig> {
    // Compiled in, and read by a unit test: it cannot fail at run time.
    let agents = table::parse(table::TEXT).expect("the agent table reads (a unit test checks it)");
    agents
        .iter()
        .map(|agent| (agent.text("name").to_string(), profile(agent)))
        .collect()
}

/// An agent's stanza as its profile. What every agent shares is here, not in
/// the table: state from sandbox's own copy, the allow-list network.
fn profile(agent: &table::Stanza) -> AgentConfig {
    let words = |field| agent.words(field).into_iter().map(String::from).collect();
    AgentConfig {
        image: Some(agent.text("image").to_string()),
        command: Some(vec![agent.text("binary").to_string()]),
        env: Some(words("env")),
        set: Some(
            agent
                .pairs("set")
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        state: Some(words("state")),
        state_source: Some(StateSource::Sandbox),
        network: Some("allow".into()),
        allow: Some(words("allow")),
        relay: Some(words("relay")),
        env_args: Some(words("env_args")),
    }
}

/// The variables `${NAME}` in an agent's `env_args` words: what a project
/// must not set, as they become the agent's arguments.
pub fn arg_variables(words: &[String]) -> Vec<&str> {
    let mut names = Vec::new();
    for word in words {
        let mut rest = word.as_str();
        while let Some(start) = rest.find("${") {
            let Some(end) = rest[start..].find('}') else {
                break;
            };
            names.push(&rest[start + 2..start + end]);
            rest = &rest[start + end + 1..];
        }
    }
    names
}

/// `command: []` would leave nothing to run. Refused while the list is read,
/// where serde_yaml still knows the key's line (as `Size` does).
fn program_first<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct Command;
    impl<'de> Visitor<'de> for Command {
        type Value = Option<Vec<String>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a command, like [claude] or [aider, --model, sonnet]")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut command = Vec::new();
            while let Some(word) = seq.next_element::<String>()? {
                command.push(word);
            }
            if command
                .first()
                .is_none_or(|program| program.trim().is_empty())
            {
                return Err(de::Error::custom(
                    "the command is empty: name the program first, like [claude]",
                ));
            }
            Ok(Some(command))
        }
    }
    d.deserialize_option(Command)
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

    #[test]
    fn every_agent_of_the_table_has_a_whole_profile() {
        let stanzas = table::parse(table::TEXT).unwrap();
        let agents = defaults();
        assert_eq!(agents.len(), stanzas.len());
        assert!(agents.len() >= 6, "{:?}", agents.keys());
        for stanza in &stanzas {
            let name = stanza.text("name");
            let agent = agents[name].resolve(name).unwrap();
            assert_eq!(agent.image, stanza.text("image"));
            assert_eq!(agent.command, [stanza.text("binary")]);
            assert_eq!(agent.state_source, StateSource::Sandbox);
            assert_eq!(agent.network, "allow");
            assert!(!agent.allow.is_empty(), "{name} reaches no model API");
            crate::egress::policy::expand(&agent.allow).unwrap();
        }
        let aider = &agents["aider"];
        assert_eq!(aider.set.as_ref().unwrap()["AIDER_ENV_FILE"], "/dev/null");
        assert_eq!(
            aider.state.as_deref(),
            Some(&[][..]),
            "no state field, none kept"
        );
    }

    #[test]
    fn a_bad_table_is_refused_at_its_line() {
        let good =
            "# an agent\nname: a\nbase: node\npackage: p\nversion: 1.0.0\nbinary: a\nimage: a:1\n";
        let read = table::parse(&format!("\n\n{good}\n\n# end\n")).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!((read[0].line, read[0].text("image")), (4, "a:1"));
        assert_eq!(read[0].text("set"), "", "not written, empty");
        for (bad, why) in [
            (format!("{good}nmae: b\n"), ":8: unknown field `nmae`"),
            (
                format!("{good}set: A=1 B\n"),
                ":8: set: \"B\" is not NAME=value",
            ),
            (
                format!("{good}image_env: =1\n"),
                ":8: image_env: \"=1\" is not",
            ),
            (format!("{good}image: b:1\n"), ":8: `image` a second time"),
            (format!("{good}just words\n"), ":8: `field: value` expected"),
            (format!("{good}\n{good}"), ":10: `a` a second time"),
            (
                good.replace("image: a:1\n", ""),
                ":2: this stanza has no `image`",
            ),
            (
                good.replace("version: 1.0.0", "version:"),
                ":2: this stanza has no `version`",
            ),
        ] {
            let err = table::parse(&bad).unwrap_err().to_string();
            assert!(err.starts_with(table::PATH), "{err}");
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn an_empty_command_is_refused_at_its_line() {
        for command in ["[]", "['']", "[' ', x]"] {
            let text =
                format!("container:\n  memory: 1g\nagents:\n  claude:\n    command: {command}\n");
            let err = format!("{:#}", crate::config::parse(&text).unwrap_err());
            assert!(
                err.contains("agents.claude.command: the command is empty"),
                "{err}"
            );
            assert!(err.contains("line 5"), "{err}");
            let found = crate::config::check::problems(&text);
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].line, Some(5));
            assert!(found[0]
                .message
                .starts_with("agents.claude.command: the command is empty"));
        }
        let mine = "agents:\n  mine:\n    image: me/agent:1\n    command: []\n";
        assert!(crate::config::parse(mine).is_err());
        // null is no command of its own: the built-in one.
        let config = crate::config::parse("agents:\n  claude:\n    command: null\n").unwrap();
        assert_eq!(config.agent("claude").unwrap().command, ["claude"]);
        let config =
            crate::config::parse("agents:\n  claude:\n    command: [claude, -c]\n").unwrap();
        assert_eq!(config.agent("claude").unwrap().command, ["claude", "-c"]);
    }
}
