//! Tests against a real Docker engine: one binary, one module per promise.
//! Needs a running engine (`make engine`); without one every test fails with
//! a line saying how to start it.

#[path = "../common/mod.rs"]
mod common;

mod agents;
mod copy;
mod egress;
mod hostile;
mod hostile_sync;
mod hung;
mod identity;
mod messages;
mod orphans;
mod pipes;
mod podman;
mod probes;
mod project;
mod pull;
mod remote;
mod run;
mod runtime;
mod setuid;
mod signals;
mod terminal;
mod warm;
