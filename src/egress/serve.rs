//! `sandbox egress-proxy`: what runs in the egress container.
//!
//! It runs as an unprivileged user with no capabilities, so every port it
//! listens on is above 1024.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use super::policy::Policy;
use super::proxy::{self, Gate, Sink};
use super::relay::{self, Relay};
use super::{Spec, PROXY_PORT, READY};

/// Serves the proxy and the relays of `spec` until killed; writes
/// [`super::READY`] then one [`super::Decision`] per line on stdout.
pub async fn serve(spec: Spec) -> Result<()> {
    let policy = Policy::new(&spec.allow, &spec.resolve).context("cannot read the allow-list")?;
    let clients = match &spec.clients {
        Some(subnet) => Some(subnet.parse().context("cannot read the clients' network")?),
        None => None,
    };
    let gate = Arc::new(Gate {
        policy,
        sink: Sink::Stdout,
        clients,
    });
    // Everything that can be wrong with the spec fails before any port opens.
    let relays = relays(&spec, &gate)?;
    let listener = bind(PROXY_PORT, "the proxy").await?;
    let mut bound = Vec::new();
    for (port, relay) in relays {
        let what = format!("the relay to {}", relay.host());
        bound.push((bind(port, &what).await?, relay));
    }
    // Only now: the orchestration starts the command once it reads this.
    proxy::line_out(READY);
    for (listener, relay) in bound {
        tokio::spawn(relay::run(listener, Arc::new(relay)));
    }
    proxy::run(listener, gate).await;
    Ok(())
}

/// Every relay of `spec`, with the port it is to listen on.
fn relays(spec: &Spec, gate: &Arc<Gate>) -> Result<Vec<(u16, Relay)>> {
    if spec.relays.is_empty() {
        return Ok(Vec::new());
    }
    let tls = relay::connector(&spec.roots)?;
    spec.relays
        .iter()
        .map(|relay| Ok((relay.port, Relay::new(relay, tls.clone(), gate.clone())?)))
        .collect()
}

async fn bind(port: u16, what: &str) -> Result<TcpListener> {
    let address = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on port {port} for {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::RelaySpec;

    #[tokio::test]
    async fn a_bad_spec_fails_before_any_port_opens() {
        let relay = RelaySpec {
            port: 8080,
            host: "api.example.com".into(),
            header: "x-api-key".into(),
            value: "key".into(),
        };
        let spec = |allow: &str, roots: &str| Spec {
            allow: vec![allow.into()],
            resolve: vec![],
            relays: vec![relay.clone()],
            roots: roots.into(),
            clients: None,
        };
        let e = format!("{:#}", serve(spec("@nope", "")).await.unwrap_err());
        assert!(
            e.contains("cannot read the allow-list") && e.contains("@nope"),
            "{e}"
        );
        let e = format!("{:#}", serve(spec("a.test", "")).await.unwrap_err());
        assert!(e.contains("no root certificate"), "{e}");
    }
}
