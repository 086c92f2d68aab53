//! The credential relay: plain HTTP in, TLS out, the real key added.
//!
//! The agent in the sandbox holds a placeholder key and talks plain HTTP to
//! a port of the egress container; the relay sends each request over TLS to
//! its one host with the real key, which so never enters the sandbox. The
//! host, the TLS name and the key are the relay's own: nothing the client
//! sends can point a request carrying the key anywhere else.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpListener;
use tokio_rustls::TlsConnector;

use super::proxy::{self, decision, Body, Gate};
use super::RelaySpec;

/// The port relays reach their hosts on.
const HTTPS_PORT: u16 = 443;

/// One relay, ready to serve.
pub(super) struct Relay {
    host: String,
    host_header: HeaderValue,
    /// [`HTTPS_PORT`]; another in tests, whose servers cannot listen there.
    port: u16,
    header: HeaderName,
    value: HeaderValue,
    name: ServerName<'static>,
    tls: TlsConnector,
    gate: Arc<Gate>,
}

impl Relay {
    pub(super) fn new(spec: &RelaySpec, tls: TlsConnector, gate: Arc<Gate>) -> Result<Relay> {
        let what = || format!("relay on port {} to {}", spec.port, spec.host);
        let header = HeaderName::from_bytes(spec.header.as_bytes())
            .with_context(|| format!("{}: {:?} is not a header name", what(), spec.header))?;
        let mut value = HeaderValue::from_str(&spec.value)
            .with_context(|| format!("{}: the key is not a valid header value", what()))?;
        // Keeps the key out of any Debug output of the request.
        value.set_sensitive(true);
        let name = ServerName::try_from(spec.host.clone())
            .with_context(|| format!("{}: {:?} is not a TLS server name", what(), spec.host))?;
        let host_header = HeaderValue::from_str(&spec.host)
            .with_context(|| format!("{}: {:?} is not a host name", what(), spec.host))?;
        Ok(Relay {
            host: spec.host.clone(),
            host_header,
            port: HTTPS_PORT,
            header,
            value,
            name,
            tls,
            gate,
        })
    }
}

impl Relay {
    pub(super) fn host(&self) -> &str {
        &self.host
    }
}

/// The TLS client the relays share: the roots of `roots_pem`, ring's
/// cryptography, HTTP/1.1 offered by ALPN.
pub(super) fn connector(roots_pem: &str) -> Result<TlsConnector> {
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_slice_iter(roots_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("cannot read the relays' root certificates (PEM)")?;
    let (added, _unusable) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        bail!(
            "the relays have no root certificate to trust: the egress policy's roots hold no \
             usable PEM certificate"
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS for the relays")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Serves `relay` on `listener` until the process ends.
pub(super) async fn run(listener: TcpListener, relay: Arc<Relay>) {
    proxy::accept(listener, relay.gate.clients, move |stream| {
        let relay = relay.clone();
        proxy::serve_http(stream, false, move |request| handle(relay.clone(), request))
    })
    .await
}

async fn handle(relay: Arc<Relay>, request: Request<Incoming>) -> Response<Body> {
    // An API is called with these; TRACE would have a server echo the
    // headers, the key among them, back into the sandbox.
    if !matches!(
        *request.method(),
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::HEAD
    ) {
        return proxy::text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("sandbox's relay does not forward {}.\n", request.method()),
        );
    }
    // Codex opens its stream as a WebSocket first and falls back to plain
    // HTTPS only after five failed tries, unless told at once that the
    // server will not upgrade. The relay forwards requests, not sockets.
    if request.headers().contains_key(header::UPGRADE) {
        return proxy::text(
            StatusCode::UPGRADE_REQUIRED,
            "sandbox's relay does not upgrade connections: use plain HTTP.\n".into(),
        );
    }
    let target = format!("{}:{}", relay.host, relay.port);
    let dialled = relay.gate.dial(&relay.host, relay.port).await;
    let outcome = dialled.as_ref().map(|_| "relay");
    relay
        .gate
        .sink
        .emit(decision(&relay.host, relay.port, outcome));
    let tcp = match dialled {
        Ok(tcp) => tcp,
        Err(failure) => return failure.response(&relay.host, relay.port),
    };
    let tls = match relay.tls.connect(relay.name.clone(), tcp).await {
        Ok(tls) => tls,
        Err(e) => {
            return proxy::text(
                StatusCode::BAD_GATEWAY,
                format!("Cannot open TLS to {target}: {e}\n"),
            )
        }
    };
    let request = relay.outgoing(request);
    proxy::relayed(proxy::send(tls, request).await, &target)
}

impl Relay {
    /// The request with the real key in place of whatever the client sent,
    /// and the relay's host. Both usual key headers go, whichever this
    /// relay sets, so a placeholder never reaches the upstream.
    fn outgoing(&self, request: Request<Incoming>) -> Request<Incoming> {
        let mut request = proxy::outgoing(request, self.host_header.clone());
        let headers = request.headers_mut();
        headers.remove(header::AUTHORIZATION);
        headers.remove("x-api-key");
        headers.remove(&self.header);
        headers.insert(self.header.clone(), self.value.clone());
        request
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, SocketAddr};
    use std::path::Path;
    use std::process::Command;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, StreamBody};
    use hyper::body::Frame;
    use hyper_util::rt::TokioIo;
    use rustls_pki_types::PrivateKeyDer;
    use tokio::net::TcpStream;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
    use tokio::sync::Notify;
    use tokio_rustls::TlsAcceptor;

    use super::*;
    use crate::egress::policy::Policy;
    use crate::egress::proxy::Sink;
    use crate::egress::Decision;

    /// A root and a certificate it signs for `relay.test`, made by the
    /// openssl command as an operator would: (root PEM, chain, key).
    fn certificates(dir: &Path) -> (String, String, String) {
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stderr(std::process::Stdio::null())
                .status()
                .expect("the openssl command");
            assert!(status.success(), "openssl {args:?}");
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"],
                &ec[..],
                &[
                    "-keyout",
                    "root.key",
                    "-out",
                    "root.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=test root",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"],
                &ec[..],
                &[
                    "-keyout",
                    "leaf.key",
                    "-out",
                    "leaf.csr",
                    "-subj",
                    "/CN=relay.test",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            dir.join("leaf.ext"),
            "subjectAltName=DNS:relay.test\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-set_serial",
            "7",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ]);
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        (read("root.pem"), read("leaf.pem"), read("leaf.key"))
    }

    /// A TLS origin on loopback for `relay.test`: `/stream` sends one event,
    /// then a second once `go` is notified; any other path answers with
    /// the headers it got.
    async fn origin(chain: &str, key: &str, go: Arc<Notify>) -> u16 {
        let chain = CertificateDer::pem_slice_iter(chain.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let tls = acceptor.accept(tcp).await.unwrap();
                let go = go.clone();
                let service =
                    hyper::service::service_fn(move |request| answer(request, go.clone()));
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service),
                );
            }
        });
        port
    }

    async fn answer(
        request: Request<Incoming>,
        go: Arc<Notify>,
    ) -> Result<Response<Body>, std::convert::Infallible> {
        if request.uri().path() == "/stream" {
            let events = futures_util::stream::unfold(0, move |sent| {
                let go = go.clone();
                async move {
                    match sent {
                        0 => Some((Ok(Frame::data(Bytes::from("data: one\n\n"))), 1)),
                        1 => {
                            go.notified().await;
                            Some((Ok(Frame::data(Bytes::from("data: two\n\n"))), 2))
                        }
                        _ => None,
                    }
                }
            });
            let mut response = Response::new(StreamBody::new(events).boxed());
            response.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/event-stream"),
            );
            return Ok(response);
        }
        let seen = |name: &str| {
            request
                .headers()
                .get(name)
                .map_or("none".into(), |v| v.to_str().unwrap().to_string())
        };
        let body = format!(
            "{} {} host={} key={} auth={}",
            request.method(),
            request.uri(),
            seen("host"),
            seen("x-api-key"),
            seen("authorization")
        );
        Ok(proxy::text(StatusCode::OK, body))
    }

    struct Setup {
        relay: SocketAddr,
        decisions: UnboundedReceiver<Decision>,
        go: Arc<Notify>,
        _dir: tempfile::TempDir,
    }

    /// A relay to `host` setting `header`, on loopback, its upstream the
    /// test origin (through a resolve override unless `host` is localhost).
    async fn setup(host: &str, header: &str, value: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let (root, chain, key) = certificates(dir.path());
        let go = Arc::new(Notify::new());
        let port = origin(&chain, &key, go.clone()).await;
        let resolve = [("relay.test".to_string(), IpAddr::from([127, 0, 0, 1]))];
        let (sender, decisions) = unbounded_channel();
        let gate = Arc::new(Gate {
            clients: None,
            policy: Policy::new(&[], &resolve).unwrap(),
            sink: Sink::Channel(sender),
        });
        let spec = RelaySpec {
            port: 0,
            host: host.into(),
            header: header.into(),
            value: value.into(),
        };
        let mut relay = Relay::new(&spec, connector(&root).unwrap(), gate).unwrap();
        relay.port = port;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(run(listener, Arc::new(relay)));
        Setup {
            relay: address,
            decisions,
            go,
            _dir: dir,
        }
    }

    async fn get(relay: SocketAddr, path: &str) -> Response<Incoming> {
        let stream = TcpStream::connect(relay).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let request = Request::get(path)
            .header("host", "egress:8080")
            .header("x-api-key", "placeholder")
            .header("authorization", "Bearer placeholder")
            .body(Empty::<Bytes>::new())
            .unwrap();
        sender.send_request(request).await.unwrap()
    }

    async fn body(response: Response<Incoming>) -> String {
        String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn the_relay_puts_the_real_key_in_place_of_the_placeholders() {
        let mut setup = setup("relay.test", "x-api-key", "real-key").await;
        let response = get(setup.relay, "/v1/messages?beta=1").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            body(response).await,
            "GET /v1/messages?beta=1 host=relay.test key=real-key auth=none"
        );
        let decision = setup.decisions.try_recv().unwrap();
        assert_eq!(
            (
                decision.host.as_str(),
                decision.allowed,
                decision.why.as_str()
            ),
            ("relay.test", true, "relay")
        );

        let setup = self::setup("relay.test", "Authorization", "Bearer real").await;
        let response = get(setup.relay, "/v1/models").await;
        assert_eq!(
            body(response).await,
            "GET /v1/models host=relay.test key=none auth=Bearer real"
        );
    }

    async fn next(body: &mut Incoming) -> Bytes {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame()).await;
        frame
            .expect("an event in time")
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap()
    }

    #[tokio::test]
    async fn the_relay_streams_events_as_they_come() {
        let setup = setup("relay.test", "x-api-key", "real-key").await;
        let response = get(setup.relay, "/stream").await;
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut body = response.into_body();
        // The origin sends the second event only once the first arrived.
        assert_eq!(next(&mut body).await, "data: one\n\n");
        setup.go.notify_one();
        assert_eq!(next(&mut body).await, "data: two\n\n");
    }

    #[tokio::test]
    async fn an_upgrade_is_refused_at_once_so_the_client_falls_back() {
        let mut setup = setup("relay.test", "x-api-key", "real-key").await;
        let stream = TcpStream::connect(setup.relay).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let request = Request::get("/v1/responses")
            .header("host", "egress:8080")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        assert!(setup.decisions.try_recv().is_err(), "nothing was dialled");
        // The control: the same request without the upgrade is relayed.
        let response = get(setup.relay, "/v1/responses").await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_relay_host_resolving_to_loopback_is_refused() {
        let mut setup = setup("localhost", "x-api-key", "real-key").await;
        let response = get(setup.relay, "/").await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let text = body(response).await;
        assert!(
            text.contains("localhost resolves to") && text.contains("(loopback)"),
            "{text}"
        );
        let decision = setup.decisions.try_recv().unwrap();
        assert!(
            !decision.allowed && decision.why.contains("(loopback)"),
            "{decision:?}"
        );
    }

    #[test]
    fn relays_need_root_certificates() {
        for roots in ["", "not a certificate\n"] {
            let e = connector(roots)
                .err()
                .expect("no connector without roots")
                .to_string();
            assert!(e.contains("no root certificate"), "{e}");
        }
    }
}
