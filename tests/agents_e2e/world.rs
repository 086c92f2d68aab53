//! The world of an end-to-end test: a user who is not uid 1000 (so nothing
//! works by the accident of matching the images' own user), with a home and
//! a git identity of its own, allowed to use the engine's socket; a
//! repository checked out as a linked worktree (`.git` is a file); the
//! agent's real image; and sandbox run as that user, bounded in time.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{docker, docker_group, gateway, model_api, require_engine, sandbox_bin};
use crate::common::{Output, Workspace};
use crate::table;

/// The invoking user, and its group.
pub const UID: u32 = 4321;
/// Its git identity, in its ~/.gitconfig.
pub const GIT_NAME: &str = "E2E Tester";
pub const GIT_EMAIL: &str = "e2e@sandbox.test";

/// How long one run of an agent may take, start-up of the allow-list and a
/// loaded machine included, before sandbox stops it (`--timeout`) ...
pub const RUN_LIMIT: &str = "4m";
/// ... and, should sandbox itself hang, before the test does.
pub const TEST_LIMIT: Duration = Duration::from_secs(300);

/// An agent's image as sandbox's built-in profile names it.
pub fn image_of(agent: &str) -> String {
    table::parse(table::TEXT)
        .expect("the agent table reads")
        .iter()
        .find(|stanza| stanza.text("name") == agent)
        .unwrap_or_else(|| panic!("{agent} is not in the agent table"))
        .text("image")
        .to_string()
}

/// Fails, saying how to build it, when the agent's image is missing: these
/// tests never pull and never skip.
pub fn require_image(agent: &str) {
    require_engine();
    let image = image_of(agent);
    let out = docker(&["image", "inspect", "--format", "{{.Id}}", &image]);
    assert_eq!(
        out.status, 0,
        "{image} is not built: build the agent images first with `make images BASES=local` \
         (CI builds them before the tests); the end-to-end tests run the real agents"
    );
}

/// A test's world for `agent`: its image checked, a workspace that is a
/// linked worktree of a repository in the user's home.
pub struct World {
    pub ws: Workspace,
}

impl World {
    pub fn new(agent: &str) -> World {
        require_image(agent);
        let ws = Workspace::new();
        let home = ws.home();
        std::fs::write(
            home.join(".gitconfig"),
            format!("[user]\n\tname = {GIT_NAME}\n\temail = {GIT_EMAIL}\n[init]\n\tdefaultBranch = main\n"),
        )
        .unwrap();
        // The main checkout beside the home's dotfiles, the workspace a
        // worktree of it: the layout of `git worktree add ../feature`.
        let main = home.join("project");
        std::fs::create_dir(&main).unwrap();
        std::fs::write(main.join("README.md"), "# e2e\n").unwrap();
        let git = |dir: &Path, args: &[&str]| {
            let out: Output = Command::new("git")
                .args(args)
                .current_dir(dir)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", home)
                .output()
                .expect("git runs (apt-get install git)")
                .into();
            assert_eq!(out.status, 0, "git {args:?}: {out:?}");
        };
        git(&main, &["init", "-q"]);
        git(&main, &["add", "README.md"]);
        git(&main, &["commit", "-q", "-m", "init"]);
        let worktree = ws.path().to_str().unwrap().to_string();
        git(
            &main,
            &["worktree", "add", "-q", "-b", "feature", &worktree],
        );
        let dot_git =
            std::fs::read_to_string(ws.path().join(".git")).expect("a worktree's .git file");
        assert!(dot_git.starts_with("gitdir: "), "{dot_git}");
        for dir in [home, ws.path()] {
            chown_tree(dir);
        }
        World { ws }
    }

    /// The user's home: HOME, and sandbox's configuration and data homes.
    pub fn home(&self) -> &Path {
        self.ws.home()
    }

    /// `sandbox run --pull never --timeout LIMIT ARGS` as the user, in the
    /// worktree, with only `env` of the host's variables besides PATH and
    /// the user's names and directories.
    pub fn sandbox(&self, env: &[(&str, &str)], args: &[&str]) -> Command {
        let home = self.home();
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", &UID.to_string(), "--regid", &UID.to_string()])
            .args(["--groups", &docker_group().to_string(), "--"])
            .arg(sandbox_bin())
            .args(["run", "--pull", "never", "--timeout", RUN_LIMIT])
            .args(args)
            .current_dir(self.ws.path())
            .stdin(Stdio::null())
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            )
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("USER", "e2e")
            .env("LOGNAME", "e2e");
        for (name, value) in env {
            cmd.env(name, value);
        }
        cmd
    }

    /// [`World::sandbox`], run to its end within [`TEST_LIMIT`].
    /// What sandbox said goes to the test's output (shown for a failure,
    /// or with --nocapture): refusals of the allow-list, notes.
    pub fn run(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let started = Instant::now();
        let out = run_bounded(self.sandbox(env, args), TEST_LIMIT);
        eprintln!(
            "sandbox run {args:?}: exit {} after {:.1?}\n{}",
            out.status,
            started.elapsed(),
            out.stderr
        );
        out
    }

    /// git on the host, in the worktree, as a person inspects it afterwards.
    pub fn git(&self, args: &[&str]) -> String {
        let out: Output = Command::new("git")
            .args(["-c", "safe.directory=*"])
            .args(args)
            .current_dir(self.ws.path())
            .env("HOME", self.home())
            .output()
            .expect("git runs")
            .into();
        assert_eq!(out.status, 0, "git {args:?}: {out:?}");
        out.stdout.trim().to_string()
    }

    /// Copies the stub's authority into the worktree, for an agent told to
    /// trust it (`NODE_EXTRA_CA_CERTS`); returns its path in the container.
    pub fn trust_stub(&self) -> &'static str {
        let copy = self.ws.path().join(".e2e-ca.pem");
        std::fs::copy(model_api().ca(), &copy).unwrap();
        std::os::unix::fs::chown(&copy, Some(UID), Some(UID)).unwrap();
        "/work/.e2e-ca.pem"
    }
}

/// `--resolve NAME:GATEWAY`: the stub plays NAME.
pub fn resolve(name: &str) -> String {
    format!("{name}:{}", gateway())
}

/// A key unique to a test, so that it finds its own requests in the stub's
/// log.
pub fn key(prefix: &str, test: &str) -> String {
    format!("{prefix}-e2e-{test}-{}", std::process::id())
}

fn chown_tree(dir: &Path) {
    let status = Command::new("chown")
        .args(["-R", &format!("{UID}:{UID}")])
        .arg(dir)
        .status()
        .expect("chown runs");
    assert!(status.success(), "chown -R {}", dir.display());
}

/// Runs `cmd` to its end; past `limit`, stops it as a person would (SIGTERM,
/// which sandbox forwards before it removes the container; SIGKILL 15
/// seconds later) and fails with what it printed.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sandbox");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let mut stopped = None;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for sandbox") {
            break status;
        }
        match stopped {
            None if Instant::now() > deadline => {
                signal(child.id(), "TERM");
                stopped = Some(Instant::now());
            }
            Some(at) if at.elapsed() > Duration::from_secs(15) => {
                let _ = child.kill();
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = Output::from(std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    });
    assert!(
        stopped.is_none(),
        "still running after {limit:?}, stopped: {out:?}"
    );
    out
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status();
}
