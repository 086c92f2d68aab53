//! The model APIs whose keys can stay on the host: for an agent whose CLI
//! takes a base URL, the container gets a placeholder key and a base URL
//! pointing at a relay in the egress container, which adds the real key on
//! the way out (`relay.rs`).

/// One API a relay can stand in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Api {
    /// The variable holding the key on the host.
    pub key: &'static str,
    /// The variable the agent reads its base URL from.
    pub base_url: &'static str,
    /// Appended to the relay's address in that variable: Codex expects the
    /// `/v1` of OpenAI's own base URL.
    pub path: &'static str,
    /// Where the relay forwards, over TLS on 443.
    pub host: &'static str,
    /// The header that carries the key, and what precedes it there.
    pub header: &'static str,
    pub prefix: &'static str,
}

/// Checked against each CLI: Claude Code sends `x-api-key` to
/// `$ANTHROPIC_BASE_URL/v1/messages`; Codex sends `Authorization: Bearer`
/// to `$OPENAI_BASE_URL/responses`.
pub const APIS: &[Api] = &[
    Api {
        key: "ANTHROPIC_API_KEY",
        base_url: "ANTHROPIC_BASE_URL",
        path: "",
        host: "api.anthropic.com",
        header: "x-api-key",
        prefix: "",
    },
    Api {
        key: "OPENAI_API_KEY",
        base_url: "OPENAI_BASE_URL",
        path: "/v1",
        host: "api.openai.com",
        header: "authorization",
        prefix: "Bearer ",
    },
];

/// What the container sees in place of a relayed key.
pub const PLACEHOLDER: &str = "sandbox-relay-holds-the-real-key";
/// The relays' ports in the egress container, the first one's.
pub const FIRST_PORT: u16 = 8081;

pub fn api(key: &str) -> Option<&'static Api> {
    APIS.iter().find(|api| api.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_agents_relay_is_an_api_sandbox_knows() {
        for (name, agent) in crate::config::agents::defaults() {
            for key in agent.relay.unwrap_or_default() {
                let api = api(&key).unwrap_or_else(|| panic!("{name}: no relay for {key}"));
                let allow = crate::egress::policy::expand(&agent.allow.clone().unwrap()).unwrap();
                assert!(
                    allow.iter().any(|p| p.matches(api.host, 443)),
                    "{name}: its allow-list misses {}",
                    api.host
                );
            }
        }
    }
}
