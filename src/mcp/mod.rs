//! `sandbox mcp`: the sandbox as an MCP server, so an agent that does not
//! itself run inside `sandbox` still has somewhere safe to run code.
//!
//! The transports (`stdio.rs`, `http.rs`) carry JSON-RPC to the handler
//! (`server.rs`), whose tools (`tools/`) run each command as `sandbox run`
//! in the fixed workspace (`workspace.rs`) and read and write its files
//! without following a link out of it.
//!
//! It ends on SIGTERM, SIGINT or SIGHUP, or when stdin ends (stdio): it
//! then takes no new call, stops the running ones, waits until their
//! containers are gone, and only then closes the transport.

mod http;
mod leftovers;
mod server;
mod stdio;
mod tools;
pub mod workspace;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use rmcp::ServiceExt;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

pub use server::{Left, Server};
pub use workspace::Workspace;

/// How long the transport may take to say its last words (the calls'
/// answers) once every call has ended.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Where the server listens.
pub enum Transport {
    Stdio,
    /// Streamable HTTP on a loopback address, with the bearer token.
    Http {
        addr: SocketAddr,
        token: String,
    },
}

/// Serves `server` until a stop signal or (stdio) the end of stdin, then
/// stops every call. Returns what it could not wait for.
pub async fn serve(server: Server, transport: Transport) -> Result<Left> {
    let stop = CancellationToken::new();
    watch_signals(stop.clone())?;
    match transport {
        Transport::Stdio => serve_stdio(&server, &stop).await,
        Transport::Http { addr, token } => {
            http::serve(server, addr, token, stop.cancelled_owned()).await
        }
    }
}

async fn serve_stdio(server: &Server, stop: &CancellationToken) -> Result<Left> {
    let (reader, writer, input_ended) = stdio::transport();
    let rmcp_stop = CancellationToken::new();
    let starting = server
        .clone()
        .serve_with_ct((reader, writer), rmcp_stop.clone());
    let running = tokio::select! {
        running = starting => match running {
            Ok(running) => running,
            // No client came (stdin ended, or no initialize): nothing ran.
            Err(e) => {
                tracing::debug!("no MCP session: {e}");
                return Ok(Left::default());
            }
        },
        () = stop.cancelled() => return Ok(Left::default()),
        () = input_ended.cancelled() => return Ok(Left::default()),
    };
    let mut waiting = std::pin::pin!(running.waiting());
    let ended = tokio::select! {
        _ = &mut waiting => true,
        () = stop.cancelled() => false,
        () = input_ended.cancelled() => false,
    };
    // Every call's answer (stopped) goes out before the transport closes.
    let left = server.stop_calls().await;
    rmcp_stop.cancel();
    if !ended {
        let _ = tokio::time::timeout(CLOSE_WAIT, waiting).await;
    }
    Ok(left)
}

/// Cancels `stop` on the first SIGTERM, SIGINT or SIGHUP. Installed before
/// anything is served, so none of them can kill the server outright and
/// leave its calls' containers to the watchers.
fn watch_signals(stop: CancellationToken) -> Result<()> {
    let on = |kind| signal(kind).context("cannot install signal handlers");
    let mut terminate = on(SignalKind::terminate())?;
    let mut interrupt = on(SignalKind::interrupt())?;
    let mut hangup = on(SignalKind::hangup())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
            _ = hangup.recv() => {}
        }
        tracing::info!("stopping: a signal came");
        stop.cancel();
    });
    Ok(())
}
