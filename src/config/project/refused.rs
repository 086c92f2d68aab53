//! Which variables a project file's `env.set` may not set.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::config::agents::arg_variables;
use crate::config::Config;

/// Names `env.set` in a project file may not set, by what they would give a
/// repository: the user's credentials or where they are sent, code run by
/// the loader or a shell before anything else, or the configuration of git,
/// ssh, the engine and the coding agents. Globs match case-insensitively
/// (`http_proxy` as `HTTP_PROXY`). The user's own configuration and `-e`
/// may still set any of them; so may the project's code once it runs, but
/// only in its own processes, not in the agent or tool that starts it.
const REFUSED: [(&str, &[&str]); 5] = [
    (
        "credentials",
        &[
            "*_KEY",
            "*_KEY_*",
            "*_KEYS",
            "*APIKEY*",
            "TOKEN",
            "*_TOKEN",
            "*_TOKEN_*",
            "*SECRET*",
            "*PASSWORD*",
            "*PASSWD*",
            "*_PASS",
            "*CREDENTIAL*",
            "*_AUTH",
            "*_AUTH_*",
            "*_DSN",
        ],
    ),
    (
        "endpoints and proxies",
        &[
            "*_BASE_URL",
            "*_API_BASE",
            "*_API_URL",
            "*_API_HOST",
            "*_ENDPOINT",
            "*_ENDPOINT_*",
            "*PROXY*",
        ],
    ),
    (
        "TLS trust",
        &[
            "SSL_*",
            "*_CA_BUNDLE",
            "*_CA_CERT*",
            "*_CA_FILE",
            "*_CA_PATH",
            "NODE_TLS_*",
            "NODE_EXTRA_CA_CERTS",
            "PYTHONHTTPSVERIFY",
        ],
    ),
    (
        "loader and startup variables",
        &[
            "LD_*",
            "DYLD_*",
            "GCONV_PATH",
            "NODE_OPTIONS",
            "NODE_PATH",
            "NODE_REPL_EXTERNAL_MODULE",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "PYTHONHOME",
            "PYTHONUSERBASE",
            "PYTHONPLATLIBDIR",
            "PYTHONEXECUTABLE",
            "PYTHONWARNINGS",
            "PYTHONBREAKPOINT",
            "PERL5OPT",
            "PERL5LIB",
            "PERLLIB",
            "PERL5DB",
            "RUBYOPT",
            "RUBYLIB",
            "JAVA_TOOL_OPTIONS",
            "_JAVA_OPTIONS",
            "JDK_JAVA_OPTIONS",
            "DOTNET_STARTUP_HOOKS",
            "BASH_ENV",
            "ENV",
            "PROMPT_COMMAND",
            "SHELLOPTS",
            "BASHOPTS",
            "ZDOTDIR",
            "EDITOR",
            "VISUAL",
            "PAGER",
            "*_PAGER",
            "LESSOPEN",
            "LESSCLOSE",
        ],
    ),
    (
        "tool, shell and agent settings",
        &[
            "HOME",
            "PATH",
            "SHELL",
            "XDG_*",
            "GIT_*",
            "SSH_*",
            "DOCKER_*",
            "KUBECONFIG",
            "AWS_*",
            "AZURE_*",
            "GOOGLE_*",
            "ANTHROPIC_*",
            "CLAUDE_*",
            "OPENAI_*",
            "CODEX_*",
            "GEMINI_*",
            "OPENROUTER_*",
            "OPENCODE_*",
            "KILOCODE_*",
            "KILO_*",
            "AIDER_*",
            "OLLAMA_*",
            "OTEL_*",
        ],
    ),
];

/// Why a project file may not set `name`: the rule it matches, as
/// "what (glob)". The names every agent profile in `config` passes from the
/// host or sets are refused too, whatever they are called.
pub fn refused_name(name: &str, config: &Config) -> Option<String> {
    for (what, globs) in REFUSED {
        let set = glob_set(globs);
        if let Some(i) = set.matches(name).first() {
            return Some(format!("{what}: matches {}", globs[*i]));
        }
    }
    config.agents.iter().find_map(|(agent, profile)| {
        let env = profile.env.iter().flatten().map(String::as_str);
        let set = profile
            .set
            .iter()
            .flat_map(|s| s.keys())
            .map(String::as_str);
        // An env_args variable becomes the agent's arguments.
        let args = profile
            .env_args
            .as_deref()
            .map(arg_variables)
            .unwrap_or_default();
        env.chain(set)
            .chain(args)
            .any(|entry| {
                let entry = entry.split('=').next().unwrap_or_default();
                entry.eq_ignore_ascii_case(name)
            })
            .then(|| format!("agents.{agent} passes, sets or takes arguments from it"))
    })
}

/// Why an env file may not set `name` in an agent's run: what the project
/// file may not set, credentials aside (an env file is where a person keeps
/// them). The file may come with the repository, and these names would send
/// the agent's key, or its requests, somewhere else.
pub fn steers_an_agent(name: &str, config: &Config) -> Option<String> {
    let (_, credentials) = REFUSED[0];
    if glob_set(credentials).is_match(name) {
        return None;
    }
    refused_name(name, config)
}

fn glob_set(globs: &[&str]) -> GlobSet {
    let mut set = GlobSetBuilder::new();
    for glob in globs {
        // The globs are constants; a bad one fails every test.
        if let Ok(glob) = GlobBuilder::new(glob)
            .case_insensitive(true)
            .literal_separator(false)
            .build()
        {
            set.add(glob);
        }
    }
    set.build().unwrap_or_else(|_| GlobSet::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_env_file_may_hold_keys_but_not_steer_the_agent() {
        let config = Config::default();
        for key in ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GITHUB_TOKEN"] {
            assert_eq!(steers_an_agent(key, &config), None, "{key}");
        }
        for steer in [
            "ANTHROPIC_BASE_URL",
            "HTTPS_PROXY",
            "NODE_OPTIONS",
            "CLAUDE_CONFIG_DIR",
        ] {
            assert!(steers_an_agent(steer, &config).is_some(), "{steer}");
        }
    }

    /// The attack: a user's profile takes a flag from `${EXTRA}`; the
    /// repository's project file or env file sets EXTRA to a flag of its
    /// choosing. The control: before the profile names it, EXTRA is free.
    #[test]
    fn what_an_agents_arguments_are_made_of_cannot_be_set() {
        let mut config = Config::default();
        assert_eq!(refused_name("EXTRA", &config), None);
        let codex = config.agents.get_mut("codex").unwrap();
        codex.env_args = Some(vec!["--model=${MODEL}".into(), "${EXTRA}".into()]);
        for name in ["EXTRA", "extra", "MODEL"] {
            assert!(refused_name(name, &config).is_some(), "{name}");
            assert!(steers_an_agent(name, &config).is_some(), "{name}");
        }
    }

    #[test]
    fn env_set_cannot_name_credentials_endpoints_or_loaders() {
        let config = Config::default();
        for name in [
            "ANTHROPIC_BASE_URL",
            "anthropic_base_url",
            "OPENAI_API_KEY",
            "AWS_ACCESS_KEY_ID",
            "GITHUB_TOKEN",
            "NPM_TOKEN",
            "DB_PASSWORD",
            "CLIENT_SECRET",
            "HTTPS_PROXY",
            "https_proxy",
            "NO_PROXY",
            "NODE_OPTIONS",
            "NODE_TLS_REJECT_UNAUTHORIZED",
            "NODE_EXTRA_CA_CERTS",
            "LD_PRELOAD",
            "DYLD_INSERT_LIBRARIES",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "PERL5OPT",
            "RUBYOPT",
            "BASH_ENV",
            "ENV",
            "PROMPT_COMMAND",
            "GIT_SSH_COMMAND",
            "GIT_CONFIG_GLOBAL",
            "SSH_AUTH_SOCK",
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "DOCKER_HOST",
            "HOME",
            "PATH",
            "SHELL",
            "XDG_CONFIG_HOME",
            "CLAUDE_CONFIG_DIR",
            "CODEX_HOME",
            "GEMINI_API_KEY",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "SENTRY_DSN",
        ] {
            assert!(
                refused_name(name, &config).is_some(),
                "{name} should be refused"
            );
        }
        for name in [
            "PYTHONDONTWRITEBYTECODE",
            "PYTHONUNBUFFERED",
            "NODE_ENV",
            "RUST_BACKTRACE",
            "RUST_LOG",
            "CI",
            "TZ",
            "LANG",
            "DATABASE_URL",
            "TOKENIZERS_PARALLELISM",
            "KEYBOARD",
            "DEBUG",
            "MAX_WORKERS",
        ] {
            assert_eq!(refused_name(name, &config), None, "{name} should pass");
        }

        // Every agent's keys, whatever they are called, a user's own agent's too.
        let mut config = Config::default();
        config.agents.insert(
            "mine".into(),
            crate::config::agents::AgentConfig {
                image: Some("me/agent:1".into()),
                env: Some(vec!["MYLLM_ACCESS".into()]),
                ..Default::default()
            },
        );
        let rule = refused_name("MYLLM_ACCESS", &config).unwrap();
        assert!(rule.contains("agents.mine"), "{rule}");
        assert!(refused_name("ANTHROPIC_MODEL", &config).is_some());
    }
}
