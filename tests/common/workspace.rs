//! Workspaces: a temporary directory to mount at /work, `sandbox run` in it,
//! and the containers sandbox labelled with it, which its guard removes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{docker, hermetic, tempdir, test_image, Output};

/// A temporary directory to mount at /work. Dropping it removes every
/// container and network sandbox made for it, and fails the test if there
/// was one.
pub struct Workspace {
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
    path: PathBuf,
}

impl Workspace {
    /// In the cold pass, its user configuration turns warm starts off,
    /// which are on by default: every `sandbox run` of the workspace that
    /// reads it starts cold and prepares nothing. A test that writes its
    /// own configuration adds [`cold_config`] to it.
    pub fn new() -> Workspace {
        let dir = tempdir();
        let path = dir.path().canonicalize().expect("canonical workspace");
        let home = tempdir();
        if !warm_mode() {
            let config = home.path().join(".config/sandbox");
            std::fs::create_dir_all(&config).expect("a config directory");
            std::fs::write(config.join("config.yaml"), cold_config()).expect("a config file");
        }
        Workspace { dir, home, path }
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

    /// `sandbox run --image <test image> --pull never ARGS...` in this
    /// workspace: `--warm` in the warm pass, `--no-warm` in the cold one.
    pub fn run_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.command();
        cmd.args(["run", "--image", test_image(), "--pull", "never"]);
        cmd.arg(if warm_mode() { "--warm" } else { "--no-warm" });
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
        with_stdin(self.run_command_on(host, args), input)
    }

    /// `sandbox run` on the engine at `host`, without a network, cold.
    pub fn run_command_on(&self, host: &str, args: &[&str]) -> Command {
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
        cmd
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
        warm_containers_of(&self.path)
    }

    fn list_named(&self) -> Option<Vec<(String, String)>> {
        labelled(&self.path)
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        // Never a second panic while unwinding: that would abort the run.
        let all = self.list_named().unwrap_or_default();
        for (id, _) in &all {
            docker(&["rm", "-f", "-v", id]);
        }
        let left: Vec<_> = all.into_iter().filter(|(_, name)| !is_warm(name)).collect();
        // The allow-list's networks, once their containers are gone.
        let filter = format!("label=dev.sandbox.workspace={}", self.path.display());
        let networks = docker(&["network", "ls", "-q", "--filter", &filter]).stdout;
        let networks: Vec<&str> = networks.lines().collect();
        for network in &networks {
            docker(&["network", "rm", network]);
        }
        // Files a container wrote as another user must go too.
        let _ = std::fs::remove_dir_all(self.dir.path());
        if !left.is_empty() && !std::thread::panicking() {
            panic!("sandbox left {} container(s) behind: {left:?}", left.len());
        }
        if !networks.is_empty() && !std::thread::panicking() {
            panic!("sandbox left network(s) behind: {networks:?}");
        }
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

/// Ids of the warm containers sandbox made for `workspace` that wait for a
/// command.
pub fn warm_containers_of(workspace: &Path) -> Vec<String> {
    let listed = labelled(workspace).expect("docker ps answers");
    listed
        .into_iter()
        .filter(|(_, name)| is_warm(name))
        .map(|(id, _)| id)
        .collect()
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

/// What a configuration file written by a test holds first: in the cold
/// pass, warm starts off (they are on by default); nothing in the warm pass.
pub fn cold_config() -> String {
    format!("container:\n{}", cold_container_keys())
}

/// The same as keys of a `container:` mapping a test writes itself.
pub fn cold_container_keys() -> &'static str {
    match warm_mode() {
        true => "",
        false => "  warm: false\n",
    }
}

/// Whether this test binary runs with `--warm` on every `Workspace::run`
/// (`SANDBOX_TEST_WARM=1`, the second pass of `make test`).
pub fn warm_mode() -> bool {
    std::env::var_os("SANDBOX_TEST_WARM").is_some_and(|v| v == "1")
}
