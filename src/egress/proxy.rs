//! The forward proxy: CONNECT and plain HTTP, decided by name.
//!
//! The sandboxed command is hostile and has read this file, so: every
//! request is decided on the host it names (a keep-alive connection gets no
//! standing permission), every address a name resolves to is checked in
//! `addr.rs` before the connection is made (and the connection goes to the
//! checked address, never to a second lookup), plain-HTTP requests go out
//! with a Host header of the decided host, and bodies stream through with
//! hyper's bounded buffers. HTTPS is never decrypted: a CONNECT tunnel
//! carries bytes to the decided host and nothing more.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri,
};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use super::policy::{normal_host, Policy, DEFAULT_PORTS};
use super::{addr, Decision};

/// What the proxy and the relays answer with: their own short texts, or
/// an upstream's body streamed through.
pub(super) type Body = BoxBody<Bytes, hyper::Error>;

/// How long a lookup, and then a connection, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

const RETRY: &str = "Retrying another way will not work: this container has no other route out.\n";

/// Where decisions go: stdout in the egress container, where the
/// orchestration reads them from the log stream; a channel in tests.
#[derive(Clone)]
pub(super) enum Sink {
    Stdout,
    #[cfg(test)]
    Channel(tokio::sync::mpsc::UnboundedSender<Decision>),
}

impl Sink {
    pub(super) fn emit(&self, decision: Decision) {
        match self {
            Sink::Stdout => match serde_json::to_string(&decision) {
                Ok(line) => line_out(&line),
                Err(e) => eprintln!("sandbox egress: cannot write a decision: {e}"),
            },
            #[cfg(test)]
            Sink::Channel(sender) => {
                let _ = sender.send(decision);
            }
        }
    }
}

/// One line on stdout, flushed now: the reader counts on whole lines.
/// A closed stdout must not bring the proxy down, so errors are dropped.
pub(super) fn line_out(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// The policy and where its decisions go, shared by the proxy and relays.
pub(super) struct Gate {
    pub(super) policy: Policy,
    pub(super) sink: Sink,
    /// Who may connect: the run's closed network; anyone when `None`.
    pub(super) clients: Option<super::addr::Subnet>,
}

/// Why a request goes no further.
#[derive(Debug)]
pub(super) enum Failure {
    NotAllowed,
    /// The host resolves to (or is) an address `addr.rs` refuses.
    Refused {
        address: IpAddr,
        reason: &'static str,
        literal: bool,
    },
    Unresolvable(String),
    Unreachable(String),
}

impl Failure {
    /// Whether the policy let the request through (it then failed for
    /// another reason): the orchestration counts the refusals alone.
    fn allowed(&self) -> bool {
        matches!(self, Failure::Unresolvable(_) | Failure::Unreachable(_))
    }

    fn why(&self) -> String {
        match self {
            Failure::NotAllowed => "not in the allow-list".into(),
            Failure::Refused {
                address,
                reason,
                literal: false,
            } => format!("resolves to {address} ({reason})"),
            Failure::Refused {
                address,
                reason,
                literal: true,
            } => format!("refused address {address} ({reason})"),
            Failure::Unresolvable(_) => "cannot resolve".into(),
            Failure::Unreachable(_) => "cannot connect".into(),
        }
    }

    /// The answer the client gets, written for the person (or agent)
    /// reading it: what was refused, why, and what to do about it.
    pub(super) fn response(&self, host: &str, port: u16) -> Response<Body> {
        let host = normal_host(host);
        let target = shown(&host, port);
        let body = match self {
            Failure::NotAllowed => {
                let allow = if DEFAULT_PORTS.contains(&port) {
                    host.clone()
                } else {
                    target.clone()
                };
                format!(
                    "Blocked by sandbox's network policy: {target} is not in the allow-list.\n\
                     Allow it with --allow-host {allow} (or network.allow in your sandbox \
                     configuration), then run again.\n{RETRY}"
                )
            }
            Failure::Refused {
                address,
                reason,
                literal: false,
            } => format!(
                "Blocked by sandbox's network policy: {host} resolves to {address} ({reason}), \
                 which sandbox never connects to.\n{RETRY}"
            ),
            Failure::Refused {
                reason,
                literal: true,
                ..
            } => format!(
                "Blocked by sandbox's network policy: {host} is an address sandbox never \
                 connects to ({reason}).\n{RETRY}"
            ),
            Failure::Unresolvable(e) => {
                return text(
                    StatusCode::BAD_GATEWAY,
                    format!("Cannot resolve {host}: {e}\n"),
                )
            }
            Failure::Unreachable(e) => {
                return text(
                    StatusCode::BAD_GATEWAY,
                    format!("Cannot connect to {target}: {e}\n"),
                )
            }
        };
        let mut response = text(StatusCode::FORBIDDEN, body);
        response
            .headers_mut()
            .insert("x-sandbox-policy", HeaderValue::from_static("denied"));
        response
    }
}

/// `host:port`, IPv6 in brackets.
fn shown(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub(super) fn decision(host: &str, port: u16, outcome: Result<&str, &Failure>) -> Decision {
    let (allowed, why) = match outcome {
        Ok(why) => (true, why.to_string()),
        Err(failure) => (failure.allowed(), failure.why()),
    };
    Decision {
        host: normal_host(host),
        port,
        allowed,
        why,
    }
}

impl Gate {
    /// A connection to `host:port` through the address rules alone (the
    /// relays' hosts are the user's own; the proxy checks the list first).
    pub(super) async fn dial(&self, host: &str, port: u16) -> Result<TcpStream, Failure> {
        let targets = self.targets(host, port).await?;
        let stream = connect_first(&targets).await?;
        // Interactive protocols (SSE, git) want their small writes sent now.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// The addresses to try for `host:port`: the user's override as it is,
    /// or what the name resolves to less the refused addresses.
    async fn targets(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Failure> {
        let name = normal_host(host);
        if let Some(address) = self.policy.resolved(&name) {
            return Ok(vec![SocketAddr::new(address, port)]);
        }
        let literal = name.parse::<IpAddr>().ok();
        let found = match literal {
            Some(address) => vec![SocketAddr::new(address, port)],
            None => lookup(&name, port).await?,
        };
        let mut refused = None;
        let acceptable: Vec<SocketAddr> = found
            .into_iter()
            .filter(|target| match addr::refusal(target.ip()) {
                Some(reason) => {
                    refused.get_or_insert((target.ip(), reason));
                    false
                }
                None => true,
            })
            .collect();
        match refused {
            Some((address, reason)) if acceptable.is_empty() => Err(Failure::Refused {
                address,
                reason,
                literal: literal.is_some(),
            }),
            None if acceptable.is_empty() => Err(Failure::Unresolvable("no address".into())),
            _ => Ok(acceptable),
        }
    }

    /// A proxied request's connection: decided on the name, then dialled,
    /// with the decision written either way.
    async fn open(&self, host: &str, port: u16) -> Result<TcpStream, Failure> {
        // No name is this long: it is not worth a line in anyone's log.
        if host.len() > MAX_HOST {
            return Err(Failure::Unresolvable(
                "longer than a host name can be".into(),
            ));
        }
        let result = if self.policy.allows(host, port) {
            self.dial(host, port).await
        } else {
            Err(Failure::NotAllowed)
        };
        let outcome = result.as_ref().map(|_| "allowed");
        self.sink.emit(decision(host, port, outcome));
        result
    }
}

/// The longest host name (RFC 1035), with room for brackets.
const MAX_HOST: usize = 255;

async fn lookup(name: &str, port: u16) -> Result<Vec<SocketAddr>, Failure> {
    let found = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((name, port)))
        .await
        .map_err(|_| Failure::Unresolvable("the lookup timed out".into()))?
        .map_err(|e| Failure::Unresolvable(e.to_string()))?;
    Ok(found.collect())
}

/// The first of `targets` that answers, all within one timeout.
async fn connect_first(targets: &[SocketAddr]) -> Result<TcpStream, Failure> {
    let attempts = async {
        let mut last = String::from("no address");
        for target in targets {
            match TcpStream::connect(target).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = format!("{target}: {e}"),
            }
        }
        Err(Failure::Unreachable(last))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempts)
        .await
        .unwrap_or_else(|_| Err(Failure::Unreachable("timed out".into())))
}

/// Serves the proxy on `listener` until the process ends.
pub(super) async fn run(listener: TcpListener, gate: Arc<Gate>) {
    accept(listener, gate.clients, move |stream| {
        let gate = gate.clone();
        serve_http(stream, true, move |request| handle(gate.clone(), request))
    })
    .await
}

/// Accepts connections for ever, one task each. Running out of file
/// descriptors must not end the server, so accept errors only pause it.
/// A peer outside `clients` is closed at once, unanswered.
pub(super) async fn accept<F, Fut>(
    listener: TcpListener,
    clients: Option<super::addr::Subnet>,
    mut serve: F,
) where
    F: FnMut(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((_, peer)) if clients.is_some_and(|c| !c.contains(peer.ip())) => {}
            Ok((stream, _)) => {
                tokio::spawn(serve(stream));
            }
            Err(e) => {
                eprintln!("sandbox egress: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client connection of HTTP/1.1 (keep-alive; the request head's
/// size and read time capped by hyper).
pub(super) async fn serve_http<H, Fut>(stream: TcpStream, upgrades: bool, handler: H)
where
    H: Fn(Request<Incoming>) -> Fut + Send + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let service = service_fn(move |request| {
        let answer = handler(request);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    // Errors here are the client's (a bad request, a dropped connection).
    if upgrades {
        let _ = connection.with_upgrades().await;
    } else {
        let _ = connection.await;
    }
}

async fn handle(gate: Arc<Gate>, request: Request<Incoming>) -> Response<Body> {
    if request.method() == Method::CONNECT {
        tunnel(&gate, request).await
    } else {
        forward(&gate, request).await
    }
}

/// Each direction's buffer in a tunnel: tokio's default (8 KiB) costs a
/// system call pair per 8 KiB, a third of the direct rate on a fast link.
const TUNNEL_BUFFER: usize = 256 << 10;

/// `CONNECT host:port`: a tunnel of bytes to the decided host.
async fn tunnel(gate: &Gate, mut request: Request<Incoming>) -> Response<Body> {
    let Some((host, port)) = request
        .uri()
        .authority()
        .and_then(|a| Some((a.host().to_string(), a.port_u16()?)))
    else {
        return text(StatusCode::BAD_REQUEST, "CONNECT takes host:port.\n".into());
    };
    let mut upstream = match gate.open(&host, port).await {
        Ok(upstream) => upstream,
        Err(failure) => return failure.response(&host, port),
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        // The client's own socket, for the kernel to move bytes between the
        // two; what the client sent after its CONNECT goes first.
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let client = parts.io.into_inner();
                let sent = tokio::io::AsyncWriteExt::write_all(&mut upstream, &parts.read_buf);
                if sent.await.is_ok() {
                    let _ = super::splice::tunnel(&client, &upstream).await;
                }
            }
            Err(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                let _ = tokio::io::copy_bidirectional_with_sizes(
                    &mut client,
                    &mut upstream,
                    TUNNEL_BUFFER,
                    TUNNEL_BUFFER,
                )
                .await;
            }
        }
    });
    Response::new(Empty::new().map_err(|never| match never {}).boxed())
}

/// `GET http://host:port/path`: the request sent on to the decided host.
async fn forward(gate: &Gate, request: Request<Incoming>) -> Response<Body> {
    let uri = request.uri();
    let authority = match (uri.scheme(), uri.authority()) {
        (Some(scheme), Some(authority)) if *scheme == Scheme::HTTP => authority.clone(),
        (Some(_), Some(_)) => {
            return text(
                StatusCode::BAD_REQUEST,
                "sandbox's egress proxy forwards http:// URLs; for https:// use CONNECT \
                 (HTTPS_PROXY does).\n"
                    .into(),
            )
        }
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                "This is sandbox's egress proxy: use it as an HTTP proxy \
                 (HTTP_PROXY/HTTPS_PROXY), with absolute http:// URLs or CONNECT.\n"
                    .into(),
            )
        }
    };
    let (host, port) = (authority.host(), authority.port_u16().unwrap_or(80));
    let upstream = match gate.open(host, port).await {
        Ok(upstream) => upstream,
        Err(failure) => return failure.response(host, port),
    };
    let Some(host_header) = host_header(&authority) else {
        return text(
            StatusCode::BAD_REQUEST,
            "The URL's host is not valid.\n".into(),
        );
    };
    let request = outgoing(request, host_header);
    relayed(
        send(upstream, request).await,
        &shown(&normal_host(host), port),
    )
}

/// The Host header of the decided host, so the request cannot name
/// another site behind the same address; never the URL's user:password.
fn host_header(authority: &Authority) -> Option<HeaderValue> {
    let value = match authority.port_u16() {
        Some(port) if port != 80 => format!("{}:{port}", authority.host()),
        _ => authority.host().to_string(),
    };
    HeaderValue::from_str(&value).ok()
}

/// The request as the origin server takes it: origin-form, no hop-by-hop
/// headers (the proxy's credentials stay here), the given Host.
pub(super) fn outgoing(request: Request<Incoming>, host: HeaderValue) -> Request<Incoming> {
    let (mut parts, body) = request.into_parts();
    parts.uri = parts
        .uri
        .path_and_query()
        .map(|path| Uri::from(path.clone()))
        .unwrap_or_else(|| Uri::from_static("/"));
    parts.version = http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert(header::HOST, host);
    Request::from_parts(parts, body)
}

/// Removes the headers meant for one connection only, and those the
/// Connection header names. hyper frames the bodies again on each side.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

/// Sends `request` on a new HTTP/1.1 connection over `stream`.
pub(super) async fn send<S>(
    stream: S,
    request: Request<Incoming>,
) -> Result<Response<Incoming>, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection ends by itself once the response's body is read.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender.send_request(request).await
}

/// The upstream's response, streamed back; a 502 if there is none.
pub(super) fn relayed(
    response: Result<Response<Incoming>, hyper::Error>,
    target: &str,
) -> Response<Body> {
    match response {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => text(
            StatusCode::BAD_GATEWAY,
            format!("{target} did not answer the request: {e}\n"),
        ),
    }
}

pub(super) fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    /// A proxy on an ephemeral loopback port; its decisions on the channel.
    async fn proxy(
        allow: &[String],
        resolve: &[&str],
    ) -> (SocketAddr, UnboundedReceiver<Decision>) {
        let resolve: Vec<(String, IpAddr)> = resolve
            .iter()
            .map(|name| (name.to_string(), IpAddr::from([127, 0, 0, 1])))
            .collect();
        let (sender, decisions) = unbounded_channel();
        let gate = Arc::new(Gate {
            clients: None,
            policy: Policy::new(allow, &resolve).unwrap(),
            sink: Sink::Channel(sender),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(run(listener, gate));
        (address, decisions)
    }

    /// An origin server that answers with what it was asked.
    async fn origin() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(accept(listener, None, |stream| {
            serve_http(stream, false, |request: Request<Incoming>| async move {
                let seen = |name: &str| {
                    let value = request.headers().get(name);
                    value.map_or("none".into(), |v| v.to_str().unwrap().to_string())
                };
                let body = format!(
                    "{} {} host={} proxy-auth={} secret={}",
                    request.method(),
                    request.uri(),
                    seen("host"),
                    seen("proxy-authorization"),
                    seen("x-secret"),
                );
                text(StatusCode::OK, body)
            })
        }));
        port
    }

    /// A TCP server that sends back what it gets.
    async fn echo() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(accept(listener, None, |mut stream| async move {
            let (mut read, mut write) = stream.split();
            let _ = tokio::io::copy(&mut read, &mut write).await;
        }));
        port
    }

    /// A response read off a raw connection: its head and its body.
    async fn read_response(stream: &mut TcpStream) -> (String, String) {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap();
        let length = head
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_string)
            })
            .map_or(0, |n| n.trim().parse().unwrap());
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.unwrap();
        (head, String::from_utf8(body).unwrap())
    }

    async fn connect(proxy: SocketAddr, target: &str) -> (TcpStream, String, String) {
        let mut stream = TcpStream::connect(proxy).await.unwrap();
        let ask = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
        stream.write_all(ask.as_bytes()).await.unwrap();
        let (head, body) = read_response(&mut stream).await;
        (stream, head, body)
    }

    /// A client on one connection to the proxy, as curl with a proxy is.
    async fn client(proxy: SocketAddr) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
        let stream = TcpStream::connect(proxy).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        sender
    }

    async fn get(
        sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
        uri: &str,
    ) -> (StatusCode, HeaderMap, String) {
        let request = Request::get(uri)
            .header("proxy-authorization", "Basic c2VjcmV0")
            .header("proxy-connection", "keep-alive")
            .header("x-secret", "kept")
            .header("host", "fronted.example")
            .body(Empty::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    fn expect(
        decisions: &mut UnboundedReceiver<Decision>,
        host: &str,
        port: u16,
        allowed: bool,
        why: &str,
    ) {
        let decision = decisions.try_recv().expect("a decision");
        assert_eq!(
            (decision.host.as_str(), decision.port, decision.allowed),
            (host, port, allowed),
            "{decision:?}"
        );
        assert!(decision.why.contains(why), "{decision:?}");
    }

    #[tokio::test]
    async fn an_allowed_connect_tunnels_bytes() {
        let port = echo().await;
        let (proxy, mut decisions) =
            proxy(&[format!("tunnel.test:{port}")], &["tunnel.test"]).await;
        let (mut stream, head, _) = connect(proxy, &format!("Tunnel.Test:{port}")).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        stream.write_all(b"ping through the tunnel").await.unwrap();
        let mut back = [0; 23];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ping through the tunnel");
        expect(&mut decisions, "tunnel.test", port, true, "allowed");
    }

    #[tokio::test]
    async fn a_denied_connect_gets_403_with_the_explanation() {
        let port = echo().await;
        let (proxy, mut decisions) = proxy(
            &[format!("tunnel.test:{port}")],
            &["tunnel.test", "other.test"],
        )
        .await;
        let (_, head, body) = connect(proxy, "other.test:443").await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("x-sandbox-policy: denied"),
            "{head}"
        );
        assert_eq!(
            body,
            "Blocked by sandbox's network policy: other.test:443 is not in the allow-list.\n\
             Allow it with --allow-host other.test (or network.allow in your sandbox configuration), then run again.\n\
             Retrying another way will not work: this container has no other route out.\n"
        );
        // The allowed host on a port it does not name is refused too.
        let (_, head, body) = connect(proxy, &format!("tunnel.test:{}", port + 1)).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        assert!(
            body.contains(&format!("--allow-host tunnel.test:{}", port + 1)),
            "{body}"
        );
        expect(
            &mut decisions,
            "other.test",
            443,
            false,
            "not in the allow-list",
        );
        expect(
            &mut decisions,
            "tunnel.test",
            port + 1,
            false,
            "not in the allow-list",
        );
    }

    #[tokio::test]
    async fn plain_http_is_decided_per_request_on_a_kept_alive_connection() {
        let port = origin().await;
        let (proxy, mut decisions) =
            proxy(&[format!("web.test:{port}")], &["web.test", "other.test"]).await;
        let mut sender = client(proxy).await;

        let (status, _, body) = get(&mut sender, &format!("http://web.test:{port}/a?b=1")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Origin-form, the decided host, the proxy's own headers gone.
        assert_eq!(
            body,
            format!("GET /a?b=1 host=web.test:{port} proxy-auth=none secret=kept")
        );

        let (status, headers, body) = get(&mut sender, &format!("http://other.test:{port}/")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(headers["x-sandbox-policy"], "denied");
        assert!(
            body.contains(&format!("other.test:{port} is not in the allow-list")),
            "{body}"
        );

        let (status, _, body) = get(&mut sender, &format!("http://web.test:{port}/again")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.starts_with("GET /again "), "{body}");

        expect(&mut decisions, "web.test", port, true, "allowed");
        expect(
            &mut decisions,
            "other.test",
            port,
            false,
            "not in the allow-list",
        );
        expect(&mut decisions, "web.test", port, true, "allowed");
        assert!(decisions.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_request_not_made_to_a_proxy_is_told_so() {
        let (proxy, mut decisions) = proxy(&[], &[]).await;
        let mut stream = TcpStream::connect(proxy).await.unwrap();
        stream
            .write_all(b"GET /path HTTP/1.1\r\nHost: egress:3128\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = read_response(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{head}");
        assert!(body.contains("use it as an HTTP proxy"), "{body}");
        assert!(decisions.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused() {
        let port = origin().await;
        // No override: localhost goes through the resolver.
        let (proxy, mut decisions) = proxy(&[format!("localhost:{port}")], &[]).await;
        let mut sender = client(proxy).await;
        let (status, headers, body) = get(&mut sender, &format!("http://localhost:{port}/")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(headers["x-sandbox-policy"], "denied");
        assert!(
            body.starts_with("Blocked by sandbox's network policy: localhost resolves to "),
            "{body}"
        );
        assert!(
            body.contains("(loopback), which sandbox never connects to.\n"),
            "{body}"
        );
        assert!(
            body.ends_with("this container has no other route out.\n"),
            "{body}"
        );
        expect(&mut decisions, "localhost", port, false, "(loopback)");

        let (_, head, body) = connect(proxy, &format!("localhost:{port}")).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        assert!(body.contains("(loopback)"), "{body}");
    }

    #[tokio::test]
    async fn the_metadata_address_is_refused_even_when_allowed() {
        let (proxy, mut decisions) = proxy(
            &["169.254.169.254".into(), "[::ffff:127.0.0.1]".into()],
            &[],
        )
        .await;
        let mut sender = client(proxy).await;
        let (status, _, body) = get(&mut sender, "http://169.254.169.254/latest/meta-data/").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("169.254.169.254 is an address sandbox never connects to (link-local, cloud metadata)"), "{body}");
        expect(
            &mut decisions,
            "169.254.169.254",
            80,
            false,
            "link-local, cloud metadata",
        );

        let (_, head, body) = connect(proxy, "169.254.169.254:443").await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        assert!(body.contains("(link-local, cloud metadata)"), "{body}");

        let (_, head, body) = connect(proxy, "[::ffff:127.0.0.1]:443").await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        assert!(body.contains("(loopback)"), "{body}");
    }

    #[tokio::test]
    async fn an_unresolvable_name_gets_502() {
        let (proxy, mut decisions) = proxy(&["nowhere.invalid".into()], &[]).await;
        let mut sender = client(proxy).await;
        let (status, headers, body) = get(&mut sender, "http://nowhere.invalid/").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert!(headers.get("x-sandbox-policy").is_none());
        assert!(body.starts_with("Cannot resolve nowhere.invalid"), "{body}");
        assert_eq!(body.lines().count(), 1, "{body}");
        expect(
            &mut decisions,
            "nowhere.invalid",
            80,
            true,
            "cannot resolve",
        );
    }

    #[test]
    fn hop_by_hop_headers_go_with_those_connection_names() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("proxy-authorization", "Basic x"),
            ("upgrade", "websocket"),
            ("accept", "*/*"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.keys().collect::<Vec<_>>(), ["accept"]);
    }
}
