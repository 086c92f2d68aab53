//! Shared by the tests: the sandbox binary in a hermetic environment, the test
//! image (built locally once, never pulled), and workspaces whose guard
//! removes any container left behind and fails the test that left it.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// The image every engine test runs in: `FROM scratch` plus the host's static
/// busybox. Nothing is pulled; no registry is needed.
pub const TEST_IMAGE: &str = "sandbox-test/busybox:1";
const BUSYBOX: &str = "/usr/bin/busybox";

pub fn sandbox_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sandbox")
}

/// What a command printed and how it exited.
#[derive(Debug)]
pub struct Output {
    /// The process's exit code; -1 when killed by a signal.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    pub stdout_bytes: Vec<u8>,
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Self {
        Output {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            stdout_bytes: out.stdout,
        }
    }
}

/// The docker CLI, for setup, control runs and inspection.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("the docker CLI runs (apt-get install docker.io, or `make engine`)")
        .into()
}

/// Fails, with one line saying how to get one, when no engine answers.
pub fn require_engine() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let info = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output();
        match info {
            Ok(out) if out.status.success() => {}
            _ => panic!(
                "no Docker engine answers: start one with `make engine` (as root, Debian/Ubuntu) \
                 or `sudo systemctl start docker`; these tests need a real engine"
            ),
        }
    });
}

/// The test image, built on first use.
pub fn test_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        require_engine();
        assert!(
            Path::new(BUSYBOX).is_file(),
            "{BUSYBOX} is missing: apt-get install busybox-static (`make engine` does)"
        );
        let context = tempdir();
        std::fs::copy(BUSYBOX, context.path().join("busybox")).expect("copy busybox");
        std::fs::write(
            context.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             ENV PATH=/bin\nLABEL dev.sandbox.test=1\n",
        )
        .expect("write Dockerfile");
        let out = docker(&["build", "-q", "-t", TEST_IMAGE, context.path().to_str().expect("utf-8 path")]);
        assert_eq!(out.status, 0, "building {TEST_IMAGE} failed: {}", out.stderr);
    });
    TEST_IMAGE
}

/// A stand-in coding agent, `sandbox-test/agent:1`: busybox plus a script
/// installed as `claude` and `codex` that prints its arguments, uid, terminal
/// and environment, and counts its runs in its state directory.
pub const AGENT_IMAGE: &str = "sandbox-test/agent:1";

pub fn agent_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let base = test_image();
        let context = tempdir();
        let script = "#!/bin/sh\n\
            echo \"args: $*\"\n\
            echo \"uid: $(id -u):$(id -g)\"\n\
            echo \"tty: $(tty)\"\n\
            env | sort | sed 's/^/env: /'\n\
            state=\"${CLAUDE_CONFIG_DIR:-${CODEX_HOME:-$HOME/.none}}\"\n\
            echo run >> \"$state/runs\" && echo \"runs: $(wc -l < \"$state/runs\")\"\n";
        std::fs::write(context.path().join("agent"), script).expect("write agent script");
        std::fs::write(
            context.path().join("Dockerfile"),
            format!(
                "FROM {base}\nCOPY agent /usr/local/bin/claude\nCOPY agent /usr/local/bin/codex\n\
                 RUN [\"/bin/chmod\", \"755\", \"/usr/local/bin/claude\", \"/usr/local/bin/codex\"]\n\
                 ENV PATH=/usr/local/bin:/bin\n"
            ),
        )
        .expect("write Dockerfile");
        let out = docker(&["build", "-q", "-t", AGENT_IMAGE, context.path().to_str().expect("utf-8 path")]);
        assert_eq!(out.status, 0, "building {AGENT_IMAGE} failed: {}", out.stderr);
    });
    AGENT_IMAGE
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sandbox-test-")
        .tempdir()
        .expect("create a temp dir")
}

/// A `sandbox` command with a cleared environment: PATH, an empty config home
/// and nothing else, so the host's variables and config never leak in.
pub fn hermetic(config_home: &Path) -> Command {
    let mut cmd = Command::new(sandbox_bin());
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        )
        .env("HOME", config_home)
        .env("XDG_CONFIG_HOME", config_home.join(".config"));
    cmd
}

/// A temporary directory to mount at /work. Dropping it removes every
/// container sandbox made for it, and fails the test if there was one.
pub struct Workspace {
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
    path: PathBuf,
}

impl Workspace {
    pub fn new() -> Workspace {
        let dir = tempdir();
        let path = dir.path().canonicalize().expect("canonical workspace");
        Workspace {
            dir,
            home: tempdir(),
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The HOME (and config and data home) sandbox runs with.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `sandbox` in this workspace, hermetic, with no arguments yet.
    pub fn command(&self) -> Command {
        let mut cmd = hermetic(self.home.path());
        cmd.current_dir(&self.path).stdin(Stdio::null());
        cmd
    }

    /// `sandbox run --image <test image> --pull never ARGS...` in this workspace.
    pub fn run_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.command();
        cmd.args(["run", "--image", test_image(), "--pull", "never"]);
        if warm_mode() {
            cmd.arg("--warm");
        }
        cmd.args(args);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_command(args).output().expect("run sandbox").into()
    }

    /// Like `run`, with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        with_stdin(self.run_command(args), input)
    }

    /// `sandbox run` on the engine at `host` (which has the test image),
    /// without a network, with `input` on stdin.
    pub fn run_on(&self, host: &str, args: &[&str], input: &[u8]) -> Output {
        let mut cmd = self.command();
        cmd.env("DOCKER_HOST", host)
            .args([
                "run",
                "--image",
                test_image(),
                "--pull",
                "never",
                "--network",
                "none",
            ])
            .args(args);
        with_stdin(cmd, input)
    }

    /// Ids of the containers sandbox labelled with this workspace.
    pub fn containers(&self) -> Vec<String> {
        self.list().expect("docker ps answers")
    }

    /// Containers of this workspace, without the warm ones still waiting for
    /// a command: those are meant to outlive a run.
    fn list(&self) -> Option<Vec<String>> {
        Some(
            self.list_named()?
                .into_iter()
                .filter(|(_, name)| !is_warm(name))
                .map(|(id, _)| id)
                .collect(),
        )
    }

    /// Ids of this workspace's warm containers that wait for a command.
    pub fn warm_containers(&self) -> Vec<String> {
        let listed = self.list_named().expect("docker ps answers");
        listed
            .into_iter()
            .filter(|(_, name)| is_warm(name))
            .map(|(id, _)| id)
            .collect()
    }

    fn list_named(&self) -> Option<Vec<(String, String)>> {
        labelled(&self.path)
    }
}

/// Ids and names of the containers sandbox made for `workspace`.
fn labelled(workspace: &Path) -> Option<Vec<(String, String)>> {
    let filter = format!("label=dev.sandbox.workspace={}", workspace.display());
    let out = docker(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &filter,
        "--format",
        "{{.ID}} {{.Names}}",
    ]);
    (out.status == 0).then(|| {
        out.stdout
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(id, name)| (id.to_string(), name.to_string()))
            .collect()
    })
}

/// Containers sandbox made for `workspace` and left behind: not counting
/// (but removing) warm ones, which are meant to outlive a run.
pub fn containers_of(workspace: &Path) -> Vec<String> {
    let all = labelled(workspace).expect("docker ps answers");
    let (warm, left): (Vec<_>, Vec<_>) = all.into_iter().partition(|(_, name)| is_warm(name));
    for (id, _) in warm {
        docker(&["rm", "-f", &id]);
    }
    left.into_iter().map(|(id, _)| id).collect()
}

fn is_warm(name: &str) -> bool {
    name.starts_with("sandbox-warm-")
}

/// Runs `cmd` with `input` on its stdin, fed from a thread of its own.
fn with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sandbox");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        // The command may exit before reading everything.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for sandbox");
    feeder.join().expect("stdin feeder");
    out.into()
}

/// Whether this test binary runs with `--warm` on every `Workspace::run`
/// (`SANDBOX_TEST_WARM=1`, the second pass of `make test`).
pub fn warm_mode() -> bool {
    std::env::var_os("SANDBOX_TEST_WARM").is_some_and(|v| v == "1")
}

impl Drop for Workspace {
    fn drop(&mut self) {
        // Never a second panic while unwinding: that would abort the run.
        let all = self.list_named().unwrap_or_default();
        for (id, _) in &all {
            docker(&["rm", "-f", "-v", id]);
        }
        let left: Vec<_> = all.into_iter().filter(|(_, name)| !is_warm(name)).collect();
        // Files a container wrote as another user must go too.
        let _ = std::fs::remove_dir_all(self.dir.path());
        if !left.is_empty() && !std::thread::panicking() {
            panic!("sandbox left {} container(s) behind: {left:?}", left.len());
        }
    }
}

/// A registry on loopback for pull tests, started once per test binary. It
/// stops when the tests end: its shell waits on a pipe only we hold open.
pub fn registry() -> &'static str {
    static REGISTRY: OnceLock<(String, std::process::Child)> = OnceLock::new();
    let (addr, _) = REGISTRY.get_or_init(|| {
        require_engine();
        let bin = "/usr/bin/docker-registry";
        assert!(Path::new(bin).is_file(), "{bin} is missing: apt-get install docker-registry (`make engine` does)");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let addr = format!("127.0.0.1:{port}");
        let dir = tempfile::Builder::new().prefix("sandbox-registry-").tempdir().expect("temp dir").keep();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("data").display()
            ),
        )
        .expect("write registry config");
        let child = Command::new("sh")
            .args(["-c", &format!("{bin} serve {} & pid=$!; read _; kill $pid", config.display())])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(std::time::Instant::now() < deadline, "the registry on {addr} did not come up");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
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
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {}\nCOPY unique /unique\n", test_image()),
    )
    .expect("write Dockerfile");
    let built = docker(&[
        "build",
        "-q",
        "-t",
        &reference,
        context.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(built.status, 0, "{}", built.stderr);
    let pushed = docker(&["push", &reference]);
    assert_eq!(pushed.status, 0, "{}", pushed.stderr);
    let removed = docker(&["rmi", &reference]);
    assert_eq!(removed.status, 0, "{}", removed.stderr);
    reference
}

/// Starts `sandbox run ARGS` and waits until the command inside has printed
/// `ready`, so a signal sent next reaches a running command.
pub fn start_ready(ws: &Workspace, args: &[&str]) -> Child {
    let mut child = ws
        .run_command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sandbox");
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"ready\n") {
        let n = std::io::Read::read(&mut stdout, &mut byte).unwrap();
        assert_eq!(
            n,
            1,
            "the command ended before it was ready: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.push(byte[0]);
    }
    child.stdout = Some(stdout);
    child
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn finish(child: Child) -> Output {
    child.wait_with_output().unwrap().into()
}

/// The gid of the group that may use the engine's socket, for tests that
/// run sandbox as an unprivileged user.
pub fn docker_group() -> u32 {
    let groups = std::fs::read_to_string("/etc/group").expect("read /etc/group");
    groups
        .lines()
        .find_map(|line| {
            let fields: Vec<_> = line.split(':').collect();
            (fields[0] == "docker").then(|| fields[2].parse().expect("a numeric gid"))
        })
        .expect("a docker group owns the engine's socket")
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
        assert!(bridge.success(), "cannot create the bridge sandbox-br0 (needs root and iproute2)");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let host = format!("tcp://127.0.0.1:{port}");
        let dir = tempfile::Builder::new().prefix("sandbox-remote-").tempdir().expect("temp dir").keep();
        let d = dir.display();
        let child = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "dockerd --host {host} --data-root {d}/data --exec-root {d}/exec --pidfile {d}/pid \
                     --bridge sandbox-br0 --iptables=false --ip-masq=false >{d}/log 2>&1 & pid=$!; \
                     read _; kill $pid; wait $pid"
                ),
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("start a second dockerd");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while docker(&["-H", &host, "info"]).status != 0 {
            assert!(std::time::Instant::now() < deadline, "the second engine did not come up: see {d}/log");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let load = Command::new("sh")
            .args(["-c", &format!("docker save {image} | docker -H {host} load -q")])
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
        let dir = tempfile::Builder::new().prefix("sandbox-podman-").tempdir().expect("temp dir").keep();
        let conf = dir.join("containers.conf");
        std::fs::write(&conf, "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n")
            .expect("write containers.conf");
        let socket = dir.join("podman.sock");
        let host = format!("unix://{}", socket.display());
        let child = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "podman system service --time=0 {host} >{d}/log 2>&1 & pid=$!; read _; kill $pid; wait $pid",
                    d = dir.display()
                ),
            ])
            .env("CONTAINERS_CONF", &conf)
            .stdin(Stdio::piped())
            .spawn()
            .expect("start podman system service");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !socket.exists() {
            assert!(std::time::Instant::now() < deadline, "podman's socket did not appear");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
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
        let dir = tempfile::Builder::new().prefix("sandbox-ssh-").tempdir().expect("temp dir").keep();
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
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
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
        let child = Command::new("sh")
            .args(["-c", &format!("{sshd} -D -f {d}/sshd_config -E {d}/sshd.log & pid=$!; read _; kill $pid; wait $pid")])
            .stdin(Stdio::piped())
            .spawn()
            .expect("start sshd");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "sshd did not come up: see {d}/sshd.log");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        ("ssh://root@127.0.0.1".to_string(), bin, child)
    });
    // A tuple of the first two, kept alongside the child in the static.
    static VIEW: OnceLock<(String, PathBuf)> = OnceLock::new();
    VIEW.get_or_init(|| (host.clone(), bin.clone()))
}

/// The test image plus the host's git (the binary and the libraries it
/// links), for tests of what a command may do to a repository. Built once.
pub const GIT_IMAGE: &str = "sandbox-test/git:1";

pub fn git_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let base = test_image();
        let context = tempdir();
        let root = context.path().join("root");
        let git = Path::new("/usr/bin/git");
        assert!(
            git.is_file(),
            "{} is missing: apt-get install git",
            git.display()
        );
        let ldd = Command::new("ldd").arg(git).output().expect("ldd runs");
        let mut files = vec![git.to_path_buf()];
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux... (0x...)"
            let path = line.split("=>").last().unwrap_or("").trim();
            let path = path.split(" (").next().unwrap_or("").trim();
            if path.starts_with('/') {
                files.push(PathBuf::from(path));
            }
        }
        for file in &files {
            let copy = root.join(file.strip_prefix("/").unwrap());
            std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
            std::fs::copy(file, &copy).expect("copy git and its libraries");
        }
        std::fs::write(
            context.path().join("Dockerfile"),
            format!("FROM {base}\nCOPY root/ /\nENV PATH=/usr/bin:/bin\n"),
        )
        .expect("write Dockerfile");
        let out = docker(&[
            "build",
            "-q",
            "-t",
            GIT_IMAGE,
            context.path().to_str().expect("utf-8 path"),
        ]);
        assert_eq!(out.status, 0, "building {GIT_IMAGE} failed: {}", out.stderr);
    });
    GIT_IMAGE
}
