//! A run's allow-list (`--network allow`): the hosts it may reach, the
//! names resolved by hand, the keys kept behind a relay, and what that
//! changes in the command's environment.

use anyhow::{Context, Result};

use std::path::PathBuf;

use super::{Egress, Env, Relay, World};
use crate::config::agents::Agent;
use crate::config::Config;
use crate::egress::credentials::{self, PLACEHOLDER};
use crate::egress::{policy, RelaySpec, ALIAS, PROXY_PORT};

/// The allow-list a run gets: the agent's hosts and the user's, or the
/// project file's narrower list, and `--allow-host` in either case; each
/// entry once. Checked by the caller, which expands it anyway.
fn allow_list(config: &Config, agent: Option<&Agent>) -> Result<Vec<String>> {
    let net = &config.network;
    let mut base: Vec<String> = agent.map(|a| a.allow.clone()).unwrap_or_default();
    base.extend(net.allow.iter().cloned());
    base.extend(net.flags.iter().cloned());
    let mut list = match &net.project {
        Some(project) => {
            policy::narrow(&policy::expand(&base)?, &policy::expand(project)?)?;
            let mut list = project.clone();
            list.extend(net.flags.iter().cloned());
            list
        }
        None => base,
    };
    let mut seen = std::collections::BTreeSet::new();
    list.retain(|entry| seen.insert(entry.clone()));
    Ok(list)
}

/// The egress of a run on the network `network` (from `unique_name`):
/// the proxy's variables go into both environments, and each relayed key
/// leaves the command's for a placeholder and a base URL.
pub fn resolve(
    config: &Config,
    agent: Option<&Agent>,
    network: String,
    env: &mut Env,
    world: &World,
    notes: &mut Vec<String>,
) -> Result<Egress> {
    let allow = allow_list(config, agent)?;
    let resolve = config
        .network
        .resolve
        .iter()
        .map(|entry| policy::parse_resolve(entry))
        .collect::<Result<Vec<_>>>()
        .context("network.resolve")?;
    let patterns = policy::expand(&allow)?;
    let mut relays = Vec::new();
    let roots = roots(world);
    let keys = agent.map(|a| a.relay.as_slice()).unwrap_or_default();
    if roots.is_none() && !keys.is_empty() {
        notes.push(format!(
            "no certificate bundle found for the relay (set SSL_CERT_FILE): {} reach the \
             container as they would without the allow-list",
            keys.join(", ")
        ));
    }
    for key in keys.iter().filter(|_| roots.is_some()) {
        let Some(api) = credentials::api(key) else {
            continue;
        };
        let value = lookup(&env.passed, api.key);
        // A base URL of the user's own is a gateway sandbox knows nothing
        // of: the key goes to it as before.
        let (Some(value), None) = (value, lookup(&env.passed, api.base_url)) else {
            continue;
        };
        if !patterns.iter().any(|p| p.matches(api.host, 443)) {
            continue;
        }
        let port = credentials::FIRST_PORT + relays.len() as u16;
        relays.push(Relay {
            key: api.key.to_string(),
            base_url: api.base_url.to_string(),
            url: format!("http://{ALIAS}:{port}{}", api.path),
            spec: RelaySpec {
                port,
                host: api.host.to_string(),
                header: api.header.to_string(),
                value: format!("{}{value}", api.prefix),
            },
        });
    }
    for relay in &relays {
        set(&mut env.passed, &relay.key, PLACEHOLDER);
        set(&mut env.passed, &relay.base_url, &relay.url);
    }
    for (name, value) in proxy_variables() {
        set(&mut env.passed, &name, &value);
        set(&mut env.setup, &name, &value);
    }
    Ok(Egress {
        network,
        allow,
        resolve,
        relays,
        roots,
    })
}

/// The certificates the relays trust: `SSL_CERT_FILE`, as OpenSSL and
/// rustls-native-certs read it, else the system's bundle.
fn roots(world: &World) -> Option<PathBuf> {
    let named = world.env.get("SSL_CERT_FILE").map(PathBuf::from);
    named
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// Where Debian, Fedora and Alpine, and macOS keep theirs.
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// What points a client at the proxy: the usual variables in both cases
/// (curl, pip and git read the lower case, others the upper), and
/// `NODE_USE_ENV_PROXY` because Node's built-in fetch reads none of them
/// without it. The relays are reached directly, never through the proxy.
fn proxy_variables() -> Vec<(String, String)> {
    let proxy = format!("http://{ALIAS}:{PROXY_PORT}");
    let direct = format!("localhost,127.0.0.1,::1,{ALIAS}");
    let mut vars = Vec::new();
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        vars.push((name.to_string(), proxy.clone()));
        vars.push((name.to_lowercase(), proxy.clone()));
    }
    vars.push(("NO_PROXY".into(), direct.clone()));
    vars.push(("no_proxy".into(), direct));
    vars.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
    vars
}

fn lookup<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    vars.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn set(vars: &mut Vec<(String, String)>, name: &str, value: &str) {
    vars.retain(|(n, _)| n != name);
    vars.push((name.to_string(), value.to_string()));
}
