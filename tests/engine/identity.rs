//! Who the command is inside: the invoking user has a name (passwd, group,
//! USER, LOGNAME), git commits carry the host user's identity, and an
//! agent's nested state directories leave it directories of its own.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::common::{docker_group, git_image, test_image, Output, Workspace};

/// Not 1000: images have their own user there.
const UID: u32 = 4317;

/// The workspace and its HOME handed to `UID`.
fn hand_over(ws: &Workspace) {
    for dir in [ws.path(), ws.home()] {
        std::os::unix::fs::chown(dir, Some(UID), Some(docker_group())).unwrap();
    }
}

/// `sandbox run` as `UID`, in the workspace handed over.
fn as_user(ws: &Workspace) -> impl Fn(&[&str]) -> Command + '_ {
    hand_over(ws);
    move |args| {
        let mut cmd = ws.command();
        cmd.args(["run", "--pull", "never", "--no-cache"])
            .args(args)
            .uid(UID)
            .gid(docker_group());
        cmd
    }
}

fn output(mut cmd: Command) -> Output {
    cmd.output().expect("run sandbox").into()
}

#[test]
fn the_invoking_user_has_a_name_inside() {
    let ws = Workspace::new();
    let sandbox = as_user(&ws);
    let script = "whoami; id -gn; echo \"$USER/$LOGNAME/$HOME\"; \
                  grep \"^$(whoami):\" /etc/passwd; echo > /etc/passwd";
    let mut cmd = sandbox(&["--image", test_image(), "sh", "-c", script]);
    cmd.env("USER", "ada");
    let out = output(cmd);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "ada",
            "ada",
            "ada/ada//home/sandbox",
            &format!("ada:x:{UID}:{}:ada:/home/sandbox:/bin/sh", docker_group()),
        ],
        "{out:?}"
    );
    assert!(
        out.stderr.contains("Read-only file system"),
        "the entry is sandbox's, not the command's: {out:?}"
    );

    // The control: the image alone knows no such user.
    let bare = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--user",
            &format!("{UID}:{UID}"),
            test_image(),
        ])
        .args(["sh", "-c", "whoami"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&bare.stderr).contains("unknown uid"),
        "{bare:?}"
    );
}

#[test]
fn commits_inside_carry_the_host_users_identity() {
    let ws = Workspace::new();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(ws.path())
            .env("HOME", ws.home())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .uid(UID)
            .gid(docker_group())
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let sandbox = as_user(&ws);
    git(&["init", "-q", "-b", "main"]);
    let commit = [
        "--image",
        git_image(),
        "git",
        "commit",
        "-q",
        "--allow-empty",
    ];
    let commit = [&commit[..], &["-m", "inside"]].concat();

    // The control: with no identity on the host, git inside has none.
    let mut cmd = sandbox(&commit);
    cmd.env("GIT_CONFIG_NOSYSTEM", "1");
    let none = output(cmd);
    assert_ne!(none.status, 0, "{none:?}");
    assert!(none.stderr.contains("Author identity unknown"), "{none:?}");

    std::fs::write(
        ws.home().join(".gitconfig"),
        "[user]\n\tname = Ada \\\"The\\\" Lovelace\n\temail = ada@example.org\n",
    )
    .unwrap();
    let mut cmd = sandbox(&commit);
    cmd.env("GIT_CONFIG_NOSYSTEM", "1");
    let out = output(cmd);
    assert_eq!(out.status, 0, "{out:?}");
    let log = git(&["log", "-1", "--format=%an <%ae>|%cn <%ce>|%s"]);
    assert_eq!(
        log.trim(),
        "Ada \"The\" Lovelace <ada@example.org>|Ada \"The\" Lovelace <ada@example.org>|inside"
    );

    // git config --global still works inside: the identity is a system file.
    let mut cmd = sandbox(&[
        "--image",
        git_image(),
        "sh",
        "-c",
        "git config --global core.pager cat && git config --show-origin user.email",
    ]);
    cmd.env("GIT_CONFIG_NOSYSTEM", "1");
    let out = output(cmd);
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "file:/etc/gitconfig\tada@example.org");
}

#[test]
fn an_agents_nested_state_leaves_its_parents_to_the_user() {
    let ws = Workspace::new();
    let config = ws.home().join("agents.yaml");
    std::fs::write(
        &config,
        format!(
            "{}agents:\n  claude:\n    image: {}\n    command: [sh, -c]\n    \
             state: [.local/share/claude]\n    network: none\n",
            crate::common::cold_config(),
            test_image()
        ),
    )
    .unwrap();
    hand_over(&ws);
    let script = "mkdir -p ~/.local/share/claude ~/.local/state/claude && \
                  echo kept > ~/.local/share/claude/mark && stat -c %u ~/.local";
    let run = |state: &str| {
        let mut cmd = ws.command();
        cmd.args(["--config", config.to_str().unwrap()])
            .args(["run", "--pull", "never", "--agent-state", state])
            .args(["claude", script])
            .uid(UID)
            .gid(docker_group());
        output(cmd)
    };
    let out = run("sandbox");
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), UID.to_string(), "{out:?}");
    let kept = std::fs::read_dir(ws.home().join(".local/share/sandbox/agents/claude"))
        .unwrap()
        .map(|e| e.unwrap().path().join(".local/share/claude/mark"))
        .find(|p| p.exists())
        .expect("the state is kept in sandbox's copy");
    assert_eq!(std::fs::metadata(&kept).unwrap().uid(), UID);

    // The control: the user's own HOME is mounted only as deep as the
    // profile says, and there the engine's parents are root's.
    let own = ws.home().join(".local/share/claude");
    std::fs::create_dir_all(&own).unwrap();
    std::os::unix::fs::chown(&own, Some(UID), Some(docker_group())).unwrap();
    let out = run("home");
    assert_ne!(out.status, 0, "{out:?}");
    assert!(out.stderr.contains("Permission denied"), "{out:?}");
}
