//! What the allow-list lets through: host patterns, the named presets they
//! may come from, the names resolved by hand, and how a project file may
//! narrow the list but never widen it. Pure: decided on names alone.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use anyhow::{anyhow, bail, Result};

/// The ports a pattern without one allows: HTTP and HTTPS.
pub const DEFAULT_PORTS: [u16; 2] = [80, 443];

/// Named lists of hosts, written `@name` wherever a host pattern goes.
/// Each agent's model API has one; the agents' profiles start from it.
pub const PRESETS: &[(&str, &[&str])] = &[
    // platform.claude.com: Claude Code's first start checks it answers
    // (`/v1/oauth/hello`) and exits when it does not; its login ends there.
    ("anthropic", &["api.anthropic.com", "platform.claude.com"]),
    (
        "crates",
        &["crates.io", "index.crates.io", "static.crates.io"],
    ),
    (
        "gemini",
        &[
            "generativelanguage.googleapis.com",
            "cloudcode-pa.googleapis.com",
            "oauth2.googleapis.com",
        ],
    ),
    (
        "github",
        &["github.com", "*.github.com", "*.githubusercontent.com"],
    ),
    ("npm", &["registry.npmjs.org"]),
    (
        "openai",
        &["api.openai.com", "auth.openai.com", "chatgpt.com"],
    ),
    ("openrouter", &["openrouter.ai"]),
    ("pypi", &["pypi.org", "files.pythonhosted.org"]),
];

/// One entry of the allow-list: `host`, `*.domain` (its subdomains, not the
/// domain itself), an IP address, each with an optional `:port`
/// (`[v6]:port` for IPv6). Without a port, 80 and 443.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: Host,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Exact(String),
    /// `*.suffix`: any name ending in `.suffix`.
    Subdomains(String),
    Address(IpAddr),
}

impl FromStr for HostPattern {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<HostPattern> {
        let bad = |why: &str| {
            anyhow!("host pattern {text:?}: {why} — write host, *.domain or an address, with an optional :port")
        };
        let (host, port) = split_port(text).map_err(|why| bad(&why))?;
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host = if let Ok(address) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Host::Address(address)
        } else if let Some(suffix) = host.strip_prefix("*.") {
            check_name(suffix).map_err(|why| bad(&why))?;
            Host::Subdomains(suffix.to_string())
        } else {
            check_name(&host).map_err(|why| bad(&why))?;
            Host::Exact(host)
        };
        Ok(HostPattern { host, port })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Exact(name) => f.write_str(name)?,
            Host::Subdomains(suffix) => write!(f, "*.{suffix}")?,
            Host::Address(IpAddr::V6(v6)) if self.port.is_some() => write!(f, "[{v6}]")?,
            Host::Address(address) => write!(f, "{address}")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// `host`, `host:port` or `[v6]:port` / `v6`: the host and the port.
fn split_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or("an unclosed [")?;
        match after {
            "" => (v6, None),
            _ => (v6, Some(after.strip_prefix(':').ok_or("text after ]")?)),
        }
    } else if text.matches(':').count() > 1 {
        (text, None)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u32>() {
            Ok(n @ 1..=65535) => Some(n as u16),
            Ok(_) => return Err(format!("port {port} is out of range (1-65535)")),
            Err(_) => return Err(format!("{port:?} is not a port")),
        },
    };
    Ok((host, port))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("no host name".into());
    }
    if name.contains('*') {
        return Err("a * goes only at the start, as *.domain".into());
    }
    if name.len() > 253 {
        return Err("longer than a host name can be".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("{label:?} is not a part of a host name"));
        }
    }
    Ok(())
}

impl HostPattern {
    /// Whether a request for `host:port` matches. `host` as the client
    /// wrote it: a name in any case, with or without a final dot, or an
    /// address (IPv6 in brackets or not).
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let port_ok = match self.port {
            Some(mine) => mine == port,
            None => DEFAULT_PORTS.contains(&port),
        };
        port_ok && self.matches_host(&normal_host(host))
    }

    fn matches_host(&self, host: &str) -> bool {
        match &self.host {
            Host::Exact(name) => name == host,
            Host::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            Host::Address(address) => host.parse::<IpAddr>().is_ok_and(|a| a == *address),
        }
    }

    /// Whether everything this pattern allows, `wider` allows too.
    fn within(&self, wider: &HostPattern) -> bool {
        let ports = match (self.port, wider.port) {
            (_, None) => self.port.is_none_or(|p| DEFAULT_PORTS.contains(&p)),
            (Some(mine), Some(theirs)) => mine == theirs,
            (None, Some(_)) => false,
        };
        let hosts = match (&self.host, &wider.host) {
            (Host::Subdomains(mine), Host::Subdomains(theirs)) => {
                mine == theirs || mine.ends_with(&format!(".{theirs}"))
            }
            (Host::Subdomains(_), _) => false,
            (Host::Exact(name), _) => wider.matches_host(name),
            (Host::Address(address), _) => wider.matches_host(&address.to_string()),
        };
        ports && hosts
    }
}

/// A host as the policy compares it: lower case, no final dot, no brackets.
pub fn normal_host(host: &str) -> String {
    host.trim_matches(['[', ']'])
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// The patterns of an allow-list's entries, `@preset` entries expanded.
pub fn expand(entries: &[String]) -> Result<Vec<HostPattern>> {
    let mut patterns = Vec::new();
    for entry in entries {
        match entry.strip_prefix('@') {
            Some(name) => {
                let (_, hosts) = PRESETS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
                    let names: Vec<_> = PRESETS.iter().map(|(n, _)| format!("@{n}")).collect();
                    anyhow!("no preset {entry:?} — the presets are {}", names.join(", "))
                })?;
                patterns.extend(hosts.iter().map(|h| h.parse().expect("presets parse")));
            }
            None => patterns.push(entry.parse()?),
        }
    }
    Ok(patterns)
}

/// Checks that every pattern of a project file's list is within the
/// list it narrows: a project may take hosts away, never add one.
pub fn narrow(wider: &[HostPattern], narrower: &[HostPattern]) -> Result<()> {
    for pattern in narrower {
        if !wider.iter().any(|w| pattern.within(w)) {
            bail!(
                "network.allow: the project file allows {pattern}, which your own list does not — \
                 a project file may only narrow the list; allow it in your configuration or with --allow-host"
            );
        }
    }
    Ok(())
}

/// `HOST:ADDRESS` (as `curl --resolve`, without the port): the name the
/// proxy sends to that address without asking DNS.
pub fn parse_resolve(text: &str) -> Result<(String, IpAddr)> {
    let bad =
        || anyhow!("resolve entry {text:?}: write HOST:ADDRESS, as in api.example.com:10.0.0.5");
    let (host, address) = text.split_once(':').ok_or_else(bad)?;
    let address = address
        .trim_matches(['[', ']'])
        .parse()
        .map_err(|_| bad())?;
    check_name(&normal_host(host)).map_err(|why| anyhow!("resolve entry {text:?}: {why}"))?;
    Ok((normal_host(host), address))
}

/// The allow-list the proxy applies.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allow: Vec<HostPattern>,
    resolve: BTreeMap<String, IpAddr>,
}

impl Policy {
    pub fn new(allow: &[String], resolve: &[(String, IpAddr)]) -> Result<Policy> {
        Ok(Policy {
            allow: expand(allow)?,
            resolve: resolve.iter().map(|(h, a)| (normal_host(h), *a)).collect(),
        })
    }

    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.allow.iter().any(|p| p.matches(host, port))
    }

    /// The address the person running sandbox gave for `host`, if any.
    pub fn resolved(&self, host: &str) -> Option<IpAddr> {
        self.resolve.get(&normal_host(host)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> HostPattern {
        text.parse().unwrap()
    }

    #[test]
    fn patterns_match_names_ports_and_addresses() {
        assert!(p("api.example.com").matches("API.example.com.", 443));
        assert!(p("api.example.com").matches("api.example.com", 80));
        assert!(!p("api.example.com").matches("api.example.com", 22));
        assert!(!p("api.example.com").matches("xapi.example.com", 443));
        assert!(p("*.example.com").matches("a.b.example.com", 443));
        assert!(!p("*.example.com").matches("example.com", 443));
        assert!(!p("*.example.com").matches("badexample.com", 443));
        assert!(p("git.example.com:22").matches("git.example.com", 22));
        assert!(!p("git.example.com:22").matches("git.example.com", 443));
        assert!(p("10.1.2.3:8080").matches("10.1.2.3", 8080));
        assert!(p("[::1]:8080").matches("[::1]", 8080));
        assert!(p("::1").matches("::1", 443));
    }

    #[test]
    fn bad_patterns_name_themselves() {
        for (text, why) in [
            ("", "no host name"),
            ("a.com:0", "out of range"),
            ("a.com:70000", "out of range"),
            ("a.com:http", "not a port"),
            ("a.*.com", "only at the start"),
            ("*", "only at the start"),
            ("a..com", "not a part"),
            ("a b.com", "not a part"),
            ("[::1", "unclosed"),
        ] {
            let e = text.parse::<HostPattern>().unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains(&format!("{text:?}")),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn presets_expand_and_unknown_ones_are_named() {
        let all = expand(&["@pypi".into(), "x.org".into()]).unwrap();
        assert_eq!(all.len(), 3);
        let e = expand(&["@pipy".into()]).unwrap_err().to_string();
        assert!(e.contains("\"@pipy\"") && e.contains("@pypi"), "{e}");
        for (name, _) in PRESETS {
            expand(&[format!("@{name}")]).unwrap();
        }
    }

    #[test]
    fn a_project_may_narrow_but_not_widen() {
        let mine = expand(&["*.example.com".into(), "@pypi".into(), "a.org:8443".into()]).unwrap();
        for ok in [
            "api.example.com",
            "*.x.example.com",
            "pypi.org:443",
            "a.org:8443",
        ] {
            narrow(&mine, &[p(ok)]).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for wider in [
            "example.com",
            "*.com",
            "evil.org",
            "pypi.org:22",
            "a.org",
            "a.org:443",
        ] {
            let e = narrow(&mine, &[p(wider)]).unwrap_err().to_string();
            assert!(e.contains(wider), "{wider}: {e}");
        }
    }

    #[test]
    fn resolve_entries_take_v4_and_v6() {
        let (h, a) = parse_resolve("Api.Test:172.17.0.1").unwrap();
        assert_eq!(
            (h.as_str(), a.to_string().as_str()),
            ("api.test", "172.17.0.1")
        );
        assert_eq!(parse_resolve("x.test:[::1]").unwrap().1.to_string(), "::1");
        assert!(parse_resolve("x.test").is_err());
        assert!(parse_resolve("x.test:nope").is_err());
        let policy = Policy::new(&[], &[(h, a)]).unwrap();
        assert_eq!(policy.resolved("API.test."), Some(a));
    }
}
