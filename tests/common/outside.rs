//! The outside world of the allow-list's tests: a certificate authority of
//! the test's own, and HTTP and HTTPS servers (`outside.py`) on the engine's
//! default bridge, where the egress container reaches them and a sandboxed
//! command, on its closed network, must not. Their names (`allowed.test`,
//! `denied.test`, `api.anthropic.com`) lead there through `--resolve`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use super::{docker, require_engine, tempdir};

/// The names the test certificate is valid for.
pub const NAMES: [&str; 3] = ["allowed.test", "denied.test", "api.anthropic.com"];

/// The engine's default bridge's address on this machine.
pub fn gateway() -> &'static str {
    static GATEWAY: OnceLock<String> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        require_engine();
        let out = docker(&[
            "network",
            "inspect",
            "bridge",
            "-f",
            "{{(index .IPAM.Config 0).Gateway}} {{(index .IPAM.Config 0).Subnet}}",
        ]);
        assert_eq!(
            out.status, 0,
            "cannot read the bridge's gateway: {}",
            out.stderr
        );
        let words: Vec<&str> = out.stdout.split_whitespace().collect();
        match words[..] {
            [gateway, _] => gateway.to_string(),
            // An engine that found docker0 already up reports no gateway:
            // the bridge then has the subnet's first address, as the
            // engine would have given it.
            [subnet] => {
                let base: std::net::Ipv4Addr = subnet
                    .split('/')
                    .next()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| panic!("the bridge's subnet {subnet:?} is not IPv4"));
                std::net::Ipv4Addr::from(u32::from(base) + 1).to_string()
            }
            _ => panic!("the bridge has no address: {:?}", out.stdout),
        }
    })
}

/// The test's certificate authority and a certificate for [`NAMES`].
pub struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    pub fn new() -> Certificates {
        Certificates::for_names(&NAMES)
    }

    /// The authority and a certificate for `names` (the first is its CN).
    pub fn for_names(names: &[&str]) -> Certificates {
        let dir = tempdir();
        let sans: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        std::fs::write(
            dir.path().join("san.ext"),
            format!("subjectAltName={}\n", sans.join(",")),
        )
        .unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            dir.path(),
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=sandbox test CA",
                ],
            ]
            .concat(),
        );
        openssl(
            dir.path(),
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "leaf.key",
                    "-out",
                    "leaf.csr",
                    "-subj",
                    &format!("/CN={}", names[0]),
                ],
            ]
            .concat(),
        );
        openssl(
            dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "leaf.pem",
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ],
        );
        Certificates { dir }
    }

    /// The authority's certificate, which clients of the test trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The certificate and its key, for a server of the test's.
    pub(super) fn leaf(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("leaf.pem"),
            self.dir.path().join("leaf.key"),
        )
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An HTTP and an HTTPS server on the bridge's address, echoing what they
/// receive. Stopped when dropped.
pub struct Outside {
    child: Child,
    pub http: u16,
    pub https: u16,
}

impl Outside {
    /// The servers, HTTPS on `https_port` (0: any free port).
    pub fn start(certificates: &Certificates, https_port: u16) -> Outside {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/outside.py");
        let (cert, key) = certificates.leaf();
        let mut child = Command::new("python3")
            .arg(&script)
            .args([gateway(), cert.to_str().unwrap(), key.to_str().unwrap()])
            .arg(https_port.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the test servers (apt-get install python3)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the test servers say where they listen");
        let port = |name: &str| -> u16 {
            let field = line
                .split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("the test servers did not start: {line:?}"));
            field.parse().unwrap()
        };
        let (http, https) = (port("http"), port("https"));
        Outside { child, http, https }
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
