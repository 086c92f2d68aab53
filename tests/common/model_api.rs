//! Stand-ins for the coding agents' model APIs (`model_api.py`), for the
//! end-to-end tests: one server per test binary on the engine's bridge,
//! where the egress container reaches it. Plain HTTP on a free port serves
//! base URLs a test sets itself (`http://models.test:PORT`); HTTPS on port
//! 443, with a certificate of the test's authority for the real APIs' names,
//! serves the agents that talk to their API's own name, by way of
//! `--resolve` (and sandbox's relay, for the keys it keeps on the host).
//! Every request is logged, and each test finds its own by the unique key
//! its agent sends.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use super::{gateway, Certificates};

/// The names the stub's certificate is valid for: the APIs the agents reach
/// by default, and a name of the tests' own.
pub const API_NAMES: [&str; 5] = [
    "models.test",
    "api.anthropic.com",
    "platform.claude.com",
    "api.openai.com",
    "generativelanguage.googleapis.com",
];

/// The text the stub answers with, as `model_api.py` has it.
pub const STUB_REPLY: &str = "STUB-DONE";

/// The running stub: where it listens, what it trusts, what it received.
pub struct ModelApi {
    /// Plain HTTP, for base URLs the tests set.
    pub http: u16,
    /// HTTPS, on 443 as the real APIs.
    pub https: u16,
    dir: PathBuf,
    _child: Child,
    _certificates: Certificates,
}

/// The stub of this test binary, started on first use; it stops when the
/// binary exits (it reads its stdin, whose other end this process holds).
pub fn model_api() -> &'static ModelApi {
    static API: OnceLock<ModelApi> = OnceLock::new();
    API.get_or_init(ModelApi::start)
}

impl ModelApi {
    fn start() -> ModelApi {
        let certificates = Certificates::for_names(&API_NAMES);
        let dir = tempfile::Builder::new()
            .prefix("sandbox-model-api-")
            .tempdir()
            .expect("temp dir")
            .keep();
        // The tests run sandbox as an unprivileged user, whose relay reads the
        // authority (SSL_CERT_FILE) and whose agents read it from /work.
        let ca = dir.join("ca.pem");
        std::fs::copy(certificates.ca(), &ca).expect("copy the test CA");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o644)).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/model_api.py");
        let (cert, key) = certificates.leaf();
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(gateway())
            .arg(dir.join("requests.jsonl"))
            .args([&cert, &key])
            .arg("443")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs the model API stub (apt-get install python3)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the stub says where it listens");
        let port = |name: &str| -> Option<u16> {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .and_then(|p| p.parse().ok())
        };
        let (Some(http), Some(https)) = (port("http"), port("https")) else {
            let mut stderr = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
            panic!(
                "the model API stub did not start on {}:443 (is another test's server there?): {stderr}",
                gateway()
            );
        };
        ModelApi {
            http,
            https,
            dir,
            _child: child,
            _certificates: certificates,
        }
    }

    /// The test authority's certificate, which signed the stub's.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Every request so far that carried `secret` in a header (its key),
    /// as `model_api.py` logged them: method, path, scheme, headers, body.
    pub fn requests_with(&self, secret: &str) -> Vec<serde_json::Value> {
        let log = std::fs::read_to_string(self.dir.join("requests.jsonl")).unwrap_or_default();
        log.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|request| {
                request["headers"].as_object().is_some_and(|h| {
                    h.values()
                        .any(|v| v.as_str().is_some_and(|v| v.contains(secret)))
                })
            })
            .collect()
    }
}
