//! Services a few engine tests start, once per test binary: a registry, a
//! second engine, Podman's API and an sshd, all on loopback. Each stops when
//! the tests end.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::images::build;
use super::{docker, require_engine, tempdir, test_image};

/// A registry on loopback for pull tests, started once per test binary.
pub fn registry() -> &'static str {
    static REGISTRY: OnceLock<(String, std::process::Child)> = OnceLock::new();
    let (addr, _) = REGISTRY.get_or_init(|| {
        require_engine();
        let bin = "/usr/bin/docker-registry";
        assert!(Path::new(bin).is_file(), "{bin} is missing: apt-get install docker-registry (`make engine` does)");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let dir = kept_dir("sandbox-registry-");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("data").display()
            ),
        )
        .expect("write registry config");
        let child = until_the_tests_end(&format!("{bin} serve {}", config.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        wait_for(20, 50, &format!("the registry on {addr} did not come up"), || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        (addr, child)
    });
    addr
}

/// Pushes an image with a layer of its own to the test registry and removes
/// it locally, so running it needs a real pull. Returns its reference.
pub fn image_only_in_registry(name: &str) -> String {
    let reference = format!("{}/sandbox-test/{name}:1", registry());
    let context = tempdir();
    // A unique file makes a layer the engine does not have yet.
    let unique = format!(
        "{name} {:?} {}",
        std::time::SystemTime::now(),
        std::process::id()
    );
    std::fs::write(context.path().join("unique"), unique).expect("write layer file");
    build(
        &reference,
        context.path(),
        &format!("FROM {}\nCOPY unique /unique\n", test_image()),
    );
    let pushed = docker(&["push", &reference]);
    assert_eq!(pushed.status, 0, "{}", pushed.stderr);
    let removed = docker(&["rmi", &reference]);
    assert_eq!(removed.status, 0, "{}", removed.stderr);
    reference
}

/// A second Docker engine on a loopback TCP port, standing in for a remote
/// host: it shares no files with the tests (sandbox must copy the workspace),
/// and it has the test image. Started once per test binary; it stops when
/// the tests end, like the registry.
pub fn remote_engine() -> &'static str {
    static REMOTE: OnceLock<(String, std::process::Child)> = OnceLock::new();
    let (host, _) = REMOTE.get_or_init(|| {
        let image = test_image();
        // Its own bridge: with `--bridge none` dockerd deletes docker0, the
        // first engine's.
        let bridge = Command::new("sh")
            .args([
                "-c",
                "ip link show sandbox-br0 >/dev/null 2>&1 || { ip link add sandbox-br0 type bridge \
                 && ip addr add 10.213.0.1/24 dev sandbox-br0 && ip link set sandbox-br0 up; }",
            ])
            .status()
            .expect("run ip (iproute2)");
        assert!(
            bridge.success(),
            "cannot create the bridge sandbox-br0 (needs root and iproute2)"
        );
        let port = free_port();
        let host = format!("tcp://127.0.0.1:{port}");
        let dir = kept_dir("sandbox-remote-");
        let d = dir.display();
        let child = until_the_tests_end(&format!(
            "dockerd --host {host} --data-root {d}/data --exec-root {d}/exec --pidfile {d}/pid \
             --bridge sandbox-br0 --iptables=false --ip-masq=false >{d}/log 2>&1"
        ))
        .spawn()
        .expect("start a second dockerd");
        wait_for(
            60,
            200,
            &format!("the second engine did not come up: see {d}/log"),
            || docker(&["-H", &host, "info"]).status == 0,
        );
        let load = Command::new("sh")
            .args([
                "-c",
                &format!("docker save {image} | docker -H {host} load -q"),
            ])
            .status()
            .expect("copy the test image");
        assert!(load.success(), "cannot load {image} into the second engine");
        (host, child)
    });
    host
}

/// Podman's Docker-compatible API (`podman system service`) on a socket of
/// its own, with the test image. Its containers.conf caps the rlimits it
/// would otherwise set above what this machine allows.
pub fn podman_engine() -> &'static str {
    static PODMAN: OnceLock<(String, std::process::Child)> = OnceLock::new();
    let (host, _) = PODMAN.get_or_init(|| {
        let image = test_image();
        assert!(
            Command::new("podman").arg("--version").output().is_ok_and(|o| o.status.success()),
            "podman is missing: apt-get install podman catatonit (`make engine` does)"
        );
        let dir = kept_dir("sandbox-podman-");
        let conf = dir.join("containers.conf");
        std::fs::write(&conf, "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n")
            .expect("write containers.conf");
        let socket = dir.join("podman.sock");
        let host = format!("unix://{}", socket.display());
        let child = until_the_tests_end(&format!(
            "podman system service --time=0 {host} >{d}/log 2>&1",
            d = dir.display()
        ))
        .env("CONTAINERS_CONF", &conf)
        .spawn()
        .expect("start podman system service");
        wait_for(30, 100, "podman's socket did not appear", || socket.exists());
        // Podman names a loaded image localhost/...; the Docker API resolves
        // a short name to docker.io/..., so it gets that name too.
        let load = Command::new("sh")
            .args([
                "-c",
                &format!("docker save {image} | podman load -q && podman tag localhost/{image} docker.io/{image}"),
            ])
            .status()
            .expect("copy the test image into podman");
        assert!(load.success(), "cannot load {image} into podman");
        (host, child)
    });
    host
}

/// An sshd on a loopback port with throwaway keys, in front of this machine's
/// engine, for `ssh://` engines. Returns the host URL and a directory to put
/// first on PATH: its `ssh` adds the test's client configuration (port, key,
/// known hosts), which ssh would otherwise read only from the user's home.
pub fn ssh_engine() -> &'static (String, PathBuf) {
    static SSH: OnceLock<(String, PathBuf, std::process::Child)> = OnceLock::new();
    let (host, bin, _) = SSH.get_or_init(|| {
        require_engine();
        let sshd = "/usr/sbin/sshd";
        assert!(Path::new(sshd).is_file(), "{sshd} is missing: apt-get install openssh-server (`make engine` does)");
        let dir = kept_dir("sandbox-ssh-");
        let d = dir.display();
        for key in ["host_key", "client_key"] {
            let made = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key))
                .status()
                .expect("run ssh-keygen");
            assert!(made.success(), "ssh-keygen failed");
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).expect("authorize the key");
        std::fs::create_dir_all("/run/sshd").expect("sshd's privilege separation directory");
        let port = free_port();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PidFile {d}/sshd.pid\nPasswordAuthentication no\nPermitRootLogin prohibit-password\n\
                 StrictModes no\nUsePAM no\n"
            ),
        )
        .expect("write sshd_config");
        std::fs::write(
            dir.join("ssh_config"),
            format!(
                "Host *\n  Port {port}\n  IdentityFile {d}/client_key\n  UserKnownHostsFile {d}/known_hosts\n\
                 \x20 StrictHostKeyChecking accept-new\n  BatchMode yes\n  LogLevel ERROR\n"
            ),
        )
        .expect("write ssh_config");
        let bin = dir.join("bin");
        std::fs::create_dir(&bin).expect("create bin");
        std::fs::write(bin.join("ssh"), format!("#!/bin/sh\nexec /usr/bin/ssh -F {d}/ssh_config \"$@\"\n"))
            .expect("write the ssh wrapper");
        std::fs::set_permissions(bin.join("ssh"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod the ssh wrapper");
        let child = until_the_tests_end(&format!("{sshd} -D -f {d}/sshd_config -E {d}/sshd.log"))
            .spawn()
            .expect("start sshd");
        wait_for(20, 50, &format!("sshd did not come up: see {d}/sshd.log"), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        ("ssh://root@127.0.0.1".to_string(), bin, child)
    });
    // A tuple of the first two, kept alongside the child in the static.
    static VIEW: OnceLock<(String, PathBuf)> = OnceLock::new();
    VIEW.get_or_init(|| (host.clone(), bin.clone()))
}

/// `command`, a shell line, run in the background until the tests end: its
/// shell waits on a pipe only this process holds open, and stops the command
/// when the pipe closes with the test binary.
fn until_the_tests_end(command: &str) -> Command {
    let mut shell = Command::new("sh");
    shell
        .args([
            "-c",
            &format!("{command} & pid=$!; read _; kill $pid; wait $pid"),
        ])
        .stdin(Stdio::piped());
    shell
}

/// Polls `ready` every `poll_ms` milliseconds; fails with `failure` after
/// `secs` seconds.
fn wait_for(secs: u64, poll_ms: u64, failure: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ready() {
        assert!(Instant::now() < deadline, "{failure}");
        std::thread::sleep(Duration::from_millis(poll_ms));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A directory for a service's files, never removed: the service runs until
/// the tests end, and its log is there to read after.
fn kept_dir(prefix: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
        .keep()
}
