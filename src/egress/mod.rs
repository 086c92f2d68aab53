//! The allow-list network mode (`--network allow`, `--allow-host`): a run's
//! container gets no route out but to sandbox's egress proxy, which lets
//! through only the hosts the policy names.
//!
//! The shape, and why: the container joins a network of its own, created
//! `--internal` and with no address for the host on its bridge, so it can
//! reach neither the outside, nor the host's ports, nor the cloud metadata
//! address; the only other member is the egress container, which also
//! sits on the engine's default bridge and runs this same binary
//! (`sandbox egress-proxy`) as an unprivileged user. That works the same on
//! a local or a remote engine, and nothing in the sandbox needs a
//! capability.
//!
//! - `policy.rs`: host patterns, presets, resolve overrides, narrowing (pure)
//! - `addr.rs`: the addresses the proxy never connects to
//! - `serve.rs`, `proxy.rs`, `relay.rs`: what runs in the egress container
//! - `sidecar.rs`: the network and the egress container of one run

pub mod addr;
pub mod credentials;
mod image;
pub mod policy;
pub mod proxy;
pub mod relay;
pub mod serve;
pub mod sidecar;
mod splice;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The port the proxy listens on in the egress container.
pub const PROXY_PORT: u16 = 3128;
/// The name the sandboxed command reaches the egress container by.
pub const ALIAS: &str = "egress";
/// Where the binary is in the egress container's image.
pub const BINARY: &str = "/sandbox";
/// Where the relays' trusted certificates are in that image.
pub const ROOTS: &str = "/etc/sandbox/roots.pem";
/// The variable that carries the [`Spec`] to `sandbox egress-proxy`.
pub const SPEC_VAR: &str = "SANDBOX_EGRESS";

/// What the egress container is told: JSON in [`SPEC_VAR`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// Host patterns, presets already expanded (`policy::HostPattern` syntax).
    pub allow: Vec<String>,
    /// Names the proxy resolves to these addresses instead of asking DNS,
    /// as `curl --resolve` does. The person running sandbox named them, so
    /// they are exempt from the address refusals in `addr.rs`.
    pub resolve: Vec<(String, IpAddr)>,
    /// Credential relays: one plain-HTTP port each.
    pub relays: Vec<RelaySpec>,
    /// PEM certificates the relays trust for their upstreams.
    pub roots: String,
    /// The run's closed network (`a.b.c.d/n`): the proxy and the relays
    /// serve only its members. The egress container is on the engine's
    /// default bridge too, where any container could otherwise spend a
    /// relayed key or borrow the allow-list.
    #[serde(default)]
    pub clients: Option<String>,
}

/// A relay: the sandboxed agent talks plain HTTP to `port` of the egress
/// container, which forwards each request over TLS to `host:443` with
/// `header: value` set (the real key, which never enters the sandbox).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RelaySpec {
    pub port: u16,
    pub host: String,
    pub header: String,
    pub value: String,
}

impl std::fmt::Debug for RelaySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelaySpec")
            .field("port", &self.port)
            .field("host", &self.host)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// One line the egress container writes on stdout per decision (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub host: String,
    pub port: u16,
    pub allowed: bool,
    /// Why, in a few words: "allowed", "not in the allow-list",
    /// "resolves to 127.0.0.1 (loopback)", "cannot resolve", "relay".
    pub why: String,
}

/// The first line the egress container writes, once every port listens.
pub const READY: &str = "{\"ready\":true}";
