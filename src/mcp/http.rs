//! MCP over streamable HTTP (`--listen`), for agents that connect rather
//! than spawn: on a loopback address only, every request carrying the
//! bearer token the user gave the server.
//!
//! Loopback alone is not enough: any local user or process, and a web page
//! through DNS rebinding, can reach a loopback port. So the token is
//! checked first, before rmcp sees the request; rmcp then checks the `Host`
//! header (loopback names only) and refuses any request a browser sent
//! (one with an `Origin`), which no agent sends.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::server::{Left, Server};

/// How long the last answers get to leave before the sessions end.
const ANSWERS_OUT: std::time::Duration = std::time::Duration::from_millis(200);
/// The shortest token accepted: guessing one must be out of reach.
const TOKEN_MIN: usize = 16;

/// Serves `server` on `addr` until `stop` completes; then takes no new
/// connection, stops every call (their answers go out on their sessions)
/// and ends every session. Returns what it could not wait for.
pub async fn serve(
    server: Server,
    addr: SocketAddr,
    token: String,
    stop: impl Future<Output = ()>,
) -> Result<Left> {
    if !addr.ip().is_loopback() {
        bail!(
            "--listen {addr}: only a loopback address (127.0.0.1, [::1]) is served — the \
             server runs commands for whoever holds the token; reach it from elsewhere \
             through an SSH tunnel"
        );
    }
    if token.trim().len() < TOKEN_MIN {
        bail!(
            "the bearer token in {} is missing or shorter than {TOKEN_MIN} characters — set \
             it to a long random string (`openssl rand -hex 32`) and give clients the same",
            super::workspace::TOKEN_VAR
        );
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, "serving MCP over HTTP");
    let sessions = CancellationToken::new();
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(sessions.clone())
        .enforce_origin_validation();
    let handler = server.clone();
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let expected: Arc<str> = format!("Bearer {}", token.trim()).into();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // A connection that failed as it was accepted; others may not.
                Err(e) => {
                    tracing::debug!("accept: {e}");
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let (service, expected) = (service.clone(), expected.clone());
        let handle = hyper::service::service_fn(move |request: Request<Incoming>| {
            let (service, expected) = (service.clone(), expected.clone());
            async move {
                if !is_authorized(&request, &expected) {
                    return Ok::<_, Infallible>(unauthorized());
                }
                Ok(service.handle(request).await)
            }
        });
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handle)
                .await;
            if let Err(e) = served {
                tracing::debug!("connection: {e}");
            }
        });
    }
    drop(listener);
    let left = server.stop_calls().await;
    // The stopped calls' answers are on their way to the sessions' streams.
    tokio::time::sleep(ANSWERS_OUT).await;
    sessions.cancel();
    Ok(left)
}

/// Whether `request` carries the token, compared in constant time so its
/// bytes cannot be guessed one by one from response times.
fn is_authorized(request: &Request<Incoming>, expected: &str) -> bool {
    let Some(given) = request.headers().get(http::header::AUTHORIZATION) else {
        return false;
    };
    let given = given.as_bytes();
    let expected = expected.as_bytes();
    // "Bearer" is case-insensitive (RFC 6750 via RFC 9110); the token is not.
    let scheme = 7;
    if given.len() != expected.len() || !given[..scheme].eq_ignore_ascii_case(&expected[..scheme]) {
        return false;
    }
    given[scheme..]
        .iter()
        .zip(&expected[scheme..])
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

fn unauthorized() -> Response<BoxBody<Bytes, Infallible>> {
    let body = Full::new(Bytes::from_static(
        b"missing or wrong bearer token: send `Authorization: Bearer <token>`\n",
    ));
    let mut response = Response::new(body.boxed());
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    response
}
