//! Coding agents, wired to a stand-in agent image: each agent gets its own
//! keys and nothing else, keeps its state between runs (each workspace its
//! own), and a missing image says how to build it.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{
    agent_image, docker_group, hermetic, image_only_in_registry, Output, Workspace,
};

/// A configuration pointing claude and codex at the stand-in image.
fn agents_config(ws: &Workspace) -> String {
    let file = ws.home().join("agents.yaml");
    let image = agent_image();
    std::fs::write(
        &file,
        format!("agents:\n  claude:\n    image: {image}\n  codex:\n    image: {image}\n"),
    )
    .unwrap();
    file.to_str().unwrap().to_string()
}

/// `sandbox --config <agents> run --pull never ARGS` with `env` on the host.
fn agent_command(ws: &Workspace, env: &[(&str, &str)], args: &[&str]) -> Command {
    let config = agents_config(ws);
    let mut cmd = ws.command();
    cmd.args(["--config", &config, "run", "--pull", "never"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("run sandbox").into()
}

/// The environment the stand-in agent printed, as `NAME=value` lines.
fn env_of(out: &Output) -> Vec<&str> {
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("env: "))
        .collect()
}

const HOST_SECRETS: [(&str, &str); 4] = [
    ("ANTHROPIC_API_KEY", "sk-ant-test"),
    ("OPENAI_API_KEY", "sk-openai-test"),
    ("AWS_SECRET_ACCESS_KEY", "aws-test"),
    ("GITHUB_TOKEN", "ghp-test"),
];

#[test]
fn the_agent_runs_with_the_arguments_typed() {
    let ws = Workspace::new();
    let out = run(agent_command(&ws, &[], &["claude", "--version", "a b"]));
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.starts_with("args: --version a b\n"), "{out:?}");
}

#[test]
fn an_agent_gets_a_terminal_and_its_colours() {
    let ws = Workspace::new();
    let mut cmd = agent_command(&ws, &[("COLORTERM", "truecolor")], &["claude", "chat"]);
    cmd.env("COLORTERM", "truecolor");
    let pty = crate::terminal::Pty::spawn(&cmd, 30, 90);
    let text = pty.expect("runs: ");
    assert!(text.contains("args: chat"), "{text}");
    assert!(text.contains("tty: /dev/pts/"), "{text}");
    assert!(text.contains("env: TERM=xterm"), "{text}");
    assert!(text.contains("env: COLORTERM=truecolor"), "{text}");
    assert_eq!(pty.wait(), 0);
}

#[test]
fn each_agent_gets_its_own_keys_and_nothing_else() {
    let ws = Workspace::new();
    let claude = run(agent_command(&ws, &HOST_SECRETS, &["claude"]));
    let env = env_of(&claude);
    // Its key stays on the host behind the allow-list's relay
    // (`tests/engine/egress.rs` shows the API receiving it).
    assert!(
        env.contains(&"ANTHROPIC_API_KEY=sandbox-relay-holds-the-real-key"),
        "{claude:?}"
    );
    assert!(
        env.contains(&"ANTHROPIC_BASE_URL=http://egress:8081"),
        "{claude:?}"
    );
    assert!(!claude.stdout.contains("sk-ant-test"), "{claude:?}");
    for leaked in ["OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN"] {
        assert!(
            !env.iter().any(|e| e.starts_with(leaked)),
            "{leaked}: {claude:?}"
        );
    }

    let codex = run(agent_command(&ws, &HOST_SECRETS, &["codex"]));
    let env = env_of(&codex);
    assert!(
        env.contains(&"OPENAI_API_KEY=sandbox-relay-holds-the-real-key"),
        "{codex:?}"
    );
    assert!(
        env.contains(&"OPENAI_BASE_URL=http://egress:8081/v1"),
        "{codex:?}"
    );
    assert!(!codex.stdout.contains("sk-openai-test"), "{codex:?}");
    assert!(!env.iter().any(|e| e.starts_with("ANTHROPIC")), "{codex:?}");

    // A plain run, even of the same image, gets no agent's keys.
    let plain = run(agent_command(
        &ws,
        &HOST_SECRETS,
        &["--image", agent_image(), "env"],
    ));
    assert_eq!(plain.status, 0, "{plain:?}");
    for (name, value) in HOST_SECRETS {
        assert!(
            !plain.stdout.contains(value),
            "{name} reached a plain run: {plain:?}"
        );
    }

    // Not set on the host: not set in the agent either, not even empty.
    let unset = run(agent_command(&ws, &[], &["claude"]));
    assert!(
        !env_of(&unset)
            .iter()
            .any(|e| e.starts_with("ANTHROPIC_API_KEY")),
        "{unset:?}"
    );
}

#[test]
fn state_persists_between_runs_and_belongs_to_the_user() {
    let ws = Workspace::new();
    let uid = 4242;
    let gid = docker_group();
    for dir in [ws.path(), ws.home()] {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
    }
    let as_user = || {
        let mut cmd = agent_command(&ws, &[], &["claude"]);
        cmd.uid(uid).gid(gid);
        run(cmd)
    };
    let first = as_user();
    assert_eq!(first.status, 0, "{first:?}");
    assert!(
        first.stdout.contains(&format!("uid: {uid}:{gid}")),
        "{first:?}"
    );
    assert!(first.stdout.contains("runs: 1"), "{first:?}");
    let second = as_user();
    assert!(
        second.stdout.contains("runs: 2"),
        "kept between runs: {second:?}"
    );

    let state = state_dir(ws.home(), "claude", ws.path()).join(".claude");
    let meta = std::fs::metadata(&state).expect("sandbox's own copy, not ~/.claude");
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    assert!(
        !ws.home().join(".claude").exists(),
        "the real ~/.claude is untouched"
    );

    let fresh = run({
        let mut cmd = agent_command(&ws, &[], &["--agent-state", "none", "claude"]);
        cmd.uid(uid).gid(gid);
        cmd
    });
    assert!(
        !fresh.stdout.contains("runs: 3"),
        "--agent-state none keeps nothing: {fresh:?}"
    );
}

/// The directory that holds `agent`'s state for `workspace`, under the data
/// home of `home`: named after the workspace, and the only one so named.
fn state_dir(home: &Path, agent: &str, workspace: &Path) -> PathBuf {
    let agents = home.join(".local/share/sandbox/agents").join(agent);
    let prefix = format!("{}-", workspace.file_name().unwrap().to_str().unwrap());
    let found: Vec<PathBuf> = std::fs::read_dir(&agents)
        .unwrap_or_else(|e| panic!("{}: {e}", agents.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&prefix)
        })
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

/// A Claude Code hook: what a hostile checkout would plant for later sessions.
const HOOK: &str =
    r#"{"hooks":{"SessionStart":[{"hooks":[{"type":"command","command":"touch /tmp/pwned"}]}]}}"#;

/// `claude` as a script that plants [`HOOK`] in its settings when its first
/// argument is `plant`, then prints the settings it finds.
fn hook_config(home: &Path) -> String {
    let file = home.join("hooks.yaml");
    let script = format!(
        "if [ \"$1\" = plant ]; then echo '{HOOK}' > \"$CLAUDE_CONFIG_DIR/settings.json\"; fi; \
         cat \"$CLAUDE_CONFIG_DIR/settings.json\" 2>/dev/null || echo 'no settings'"
    );
    let yaml = serde_json::json!({
        "agents": {"claude": {"image": agent_image(), "command": ["sh", "-c", script, "claude"]}}
    });
    std::fs::write(&file, yaml.to_string()).unwrap();
    file.to_str().unwrap().to_string()
}

/// `sandbox run claude ARGS` in `workspace`, with the data home of `home`:
/// two workspaces of one user.
fn claude_in(home: &Path, workspace: &Path, args: &[&str]) -> Output {
    let config = hook_config(home);
    let mut cmd = hermetic(home);
    cmd.current_dir(workspace)
        .stdin(Stdio::null())
        .args(["--config", &config, "run", "--pull", "never"])
        .args(args);
    run(cmd)
}

#[test]
fn a_hook_planted_in_one_workspace_never_reaches_another() {
    let a = Workspace::new();
    let b = Workspace::new();
    let home = a.home();

    let planted = claude_in(home, a.path(), &["claude", "plant"]);
    assert_eq!(planted.status, 0, "{planted:?}");
    assert!(planted.stdout.contains("touch /tmp/pwned"), "{planted:?}");
    let file = state_dir(home, "claude", a.path()).join(".claude/settings.json");
    assert!(file.is_file(), "kept in workspace A's own state");

    let other = claude_in(home, b.path(), &["claude"]);
    assert_eq!(other.status, 0, "{other:?}");
    assert_eq!(other.stdout, "no settings\n", "workspace B: {other:?}");
    let b_state = state_dir(home, "claude", b.path());
    assert_ne!(b_state, file.parent().unwrap().parent().unwrap());

    // CONTROL: the probe sees a planted hook where one is meant to be seen:
    // a second run in workspace A ...
    let again = claude_in(home, a.path(), &["claude"]);
    assert!(again.stdout.contains("touch /tmp/pwned"), "{again:?}");
    // ... and in every workspace with --agent-state home, the shared state
    // the README warns about.
    let home_flag = ["--agent-state", "home", "claude"];
    let planted = claude_in(
        home,
        a.path(),
        &["--agent-state", "home", "claude", "plant"],
    );
    assert_eq!(planted.status, 0, "{planted:?}");
    let shared = claude_in(home, b.path(), &home_flag);
    assert!(shared.stdout.contains("touch /tmp/pwned"), "{shared:?}");
}

#[test]
fn env_files_and_the_ssh_agent_are_opt_in() {
    let ws = Workspace::new();
    let file = ws.home().join("creds.env");
    std::fs::write(&file, "# test\nFROM_FILE=file value\nGITHUB_TOKEN\n").unwrap();
    let socket_dir = crate::common::tempdir();
    let socket = socket_dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let socket = socket.to_str().unwrap();
    let host = [("GITHUB_TOKEN", "ghp-test"), ("SSH_AUTH_SOCK", socket)];

    let image = agent_image();
    let probe = [
        "sh",
        "-c",
        "env | sort; test -S \"$SSH_AUTH_SOCK\" && echo socket-ok",
    ];
    let mut args = vec![
        "--image",
        image,
        "--env-file",
        file.to_str().unwrap(),
        "--ssh-agent",
    ];
    args.extend(probe);
    let out = run(agent_command(&ws, &host, &args));
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains("FROM_FILE=file value\n"), "{out:?}");
    assert!(
        !out.stdout.contains("ghp-test"),
        "a bare name in a file obeys the block list like the host's variables: {out:?}"
    );
    assert!(out.stdout.contains("socket-ok"), "{out:?}");

    // Typed with -e, the same name passes.
    let mut args = vec!["--image", image, "-e", "GITHUB_TOKEN"];
    args.extend(probe);
    let out = run(agent_command(&ws, &host, &args));
    assert!(out.stdout.contains("GITHUB_TOKEN=ghp-test\n"), "{out:?}");

    let mut args = vec!["--image", image];
    args.extend(probe);
    let out = run(agent_command(&ws, &host, &args));
    assert!(!out.stdout.contains("ghp-test"), "{out:?}");
    assert!(
        !out.stdout.contains("SSH_AUTH_SOCK"),
        "not forwarded by default: {out:?}"
    );
}

#[test]
fn a_missing_agent_image_says_how_to_build_it() {
    let ws = Workspace::new();
    // In the loopback registry's namespace, but never pushed: the pull fails.
    let absent = image_only_in_registry("agent-present").replace("agent-present", "agent-absent");
    let config = ws.home().join("absent.yaml");
    std::fs::write(
        &config,
        format!("agents:\n  gemini:\n    image: {absent}\n"),
    )
    .unwrap();
    let out: Output = ws
        .command()
        .args(["--config", config.to_str().unwrap(), "run", "gemini"])
        .output()
        .unwrap()
        .into();
    assert_eq!(out.status, 125, "{out:?}");
    // The pull's own status line, then the one line that says it all.
    let error = out.stderr.lines().last().unwrap_or_default();
    for part in [
        absent.as_str(),
        "make images AGENTS=gemini",
        "agents.gemini.image",
    ] {
        assert!(error.contains(part), "{part}: {out:?}");
    }
}

/// The agents the doctor tests do not use, pointed at an image nobody builds:
/// the real agents' checks are the end-to-end tests'.
const ABSENT_AGENTS: &str = "  gemini: {image: sandbox-test/absent:1}\n  \
    opencode: {image: sandbox-test/absent:1}\n  kilocode: {image: sandbox-test/absent:1}\n  \
    aider: {image: sandbox-test/absent:1}\n";

#[test]
fn doctor_reports_the_engine_images_and_workspace() {
    let ws = Workspace::new();
    let config = agents_config(&ws);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(ABSENT_AGENTS);
    std::fs::write(&config, text).unwrap();
    let out: Output = ws
        .command()
        .args(["--config", &config, "doctor"])
        .output()
        .unwrap()
        .into();
    assert_eq!(out.status, 0, "{out:?}");
    let line = |label: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} line: {out:?}"))
            .to_string()
    };
    assert!(line("engine").contains("API 1."), "{out:?}");
    assert!(line("runtimes").contains("runc"), "{out:?}");
    assert!(line("config").contains(&config), "{out:?}");
    assert!(line("workspace").ends_with("writable"), "{out:?}");
    let image = format!("image       {}: present", agent_image());
    assert!(out.stdout.lines().any(|l| l == image), "{out:?}");
    assert!(
        out.stdout
            .contains("sandbox-test/absent:1: missing (build it: make images AGENTS="),
        "{out:?}"
    );
}

#[test]
fn doctor_runs_each_built_agents_version_command() {
    let ws = Workspace::new();
    let config = ws.home().join("doctor.yaml");
    std::fs::write(
        &config,
        format!(
            "agents:\n  claude:\n    image: {}\n  codex:\n    image: {}\n{ABSENT_AGENTS}",
            agent_image(),
            crate::common::test_image()
        ),
    )
    .unwrap();
    let out = run({
        let mut cmd = ws.command();
        cmd.args(["--config", config.to_str().unwrap(), "doctor"]);
        cmd
    });
    let agent = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(&format!("agent       {name}: ")))
            .unwrap_or_else(|| panic!("no line for {name}: {out:?}"))
            .to_string()
    };
    // The stand-in prints its arguments first: it ran as `claude --version`.
    assert!(
        agent("claude").ends_with("claude: args: --version"),
        "{out:?}"
    );
    // The image without the agent: one line, what failed and what to do.
    let codex = agent("codex");
    assert!(
        codex.contains("`codex --version` failed (exit 127)"),
        "{out:?}"
    );
    assert!(codex.contains("make images AGENTS=codex"), "{out:?}");
    assert_ne!(out.status, 0, "a failed agent is a problem: {out:?}");
    assert!(out.stderr.contains("problem"), "{out:?}");
}
