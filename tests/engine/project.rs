//! A project's `.sandbox.yml` and the package cache, against a real engine.

use crate::common::Workspace;

fn manifest(ws: &Workspace, text: &str) {
    std::fs::write(ws.path().join(".sandbox.yml"), text).expect("write .sandbox.yml");
}

#[test]
fn setup_runs_first_and_leaves_the_commands_output_and_status_alone() {
    let ws = Workspace::new();
    manifest(
        &ws,
        "setup:\n  - echo prepared > /tmp/marker\n  - echo setup says hi\n",
    );
    let out = ws.run_with_stdin(
        &["sh", "-c", "cat /tmp/marker; cat; exit 3"],
        b"stdin reaches the command\n",
    );
    assert_eq!(out.status, 3, "{out:?}");
    assert_eq!(
        out.stdout, "prepared\nstdin reaches the command\n",
        "setup output goes to stderr, and setup reads no stdin"
    );
    assert!(out.stderr.contains("setup says hi"), "{out:?}");
}

#[test]
fn a_failing_setup_step_is_named_and_stops_the_run() {
    let ws = Workspace::new();
    manifest(&ws, "setup:\n  - 'true'\n  - exit 4\n  - echo never\n");
    let out = ws.run(&["echo", "command"]);
    assert_eq!(out.status, 4, "{out:?}");
    assert!(!out.stdout.contains("command"), "{out:?}");
    assert!(
        out.stderr
            .contains("setup step 2 failed with status 4: exit 4"),
        "{out:?}"
    );
}

#[test]
fn manifest_mistakes_are_125_naming_the_key_and_file() {
    let ws = Workspace::new();
    manifest(&ws, "setup:\n  - make\ncontainer:\n  memroy: 1g\n");
    let out = ws.run(&["true"]);
    assert_eq!(out.status, 125, "{out:?}");
    assert!(
        out.stderr.contains(".sandbox.yml") && out.stderr.contains("memroy"),
        "{out:?}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");

    manifest(&ws, "setup:\n  - ''\n");
    let out = ws.run(&["true"]);
    assert_eq!(out.status, 125, "{out:?}");
    assert!(out.stderr.contains("setup[0]"), "{out:?}");
}

#[test]
fn a_project_can_tighten_but_never_loosen() {
    let ws = Workspace::new();
    manifest(&ws, "container:\n  network: none\n  pids_limit: 64\n");
    let out = ws.run(&[
        "sh",
        "-c",
        "ls /sys/class/net; cat /sys/fs/cgroup/pids/pids.max",
    ]);
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(out.stdout, "lo\n64\n", "{out:?}");

    manifest(&ws, "container:\n  network: host\n");
    let out = ws.run(&["true"]);
    assert_eq!(out.status, 125, "{out:?}");
    assert!(out.stderr.contains("only turn the network off"), "{out:?}");
}

#[test]
fn the_manifest_cannot_be_rewritten_from_inside() {
    let ws = Workspace::new();
    manifest(&ws, "setup:\n  - 'true'\n");
    let out = ws.run(&["sh", "-c", "echo 'setup: [evil]' > /work/.sandbox.yml"]);
    assert_ne!(out.status, 0, "{out:?}");
    let text = std::fs::read_to_string(ws.path().join(".sandbox.yml")).unwrap();
    assert_eq!(text, "setup:\n  - 'true'\n");
}

#[test]
fn the_cache_survives_between_runs_of_a_workspace_only() {
    let ws = Workspace::new();
    let out = ws.run(&[
        "sh",
        "-c",
        "mkdir -p $XDG_CACHE_HOME/pip && echo wheel > $XDG_CACHE_HOME/pip/pkg",
    ]);
    assert_eq!(out.status, 0, "{out:?}");
    let out = ws.run(&["cat", "/cache/pip/pkg"]);
    assert_eq!((out.status, out.stdout.as_str()), (0, "wheel\n"), "{out:?}");

    let other = Workspace::new();
    let out = other.run(&["cat", "/cache/pip/pkg"]);
    assert_ne!(
        out.status, 0,
        "another workspace has a cache of its own: {out:?}"
    );

    let out = ws.run(&["--no-cache", "sh", "-c", "test -e /cache/pip/pkg"]);
    assert_ne!(out.status, 0, "--no-cache leaves it out: {out:?}");

    let info = ws.command().args(["cache", "info"]).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(info.contains("(this workspace)"), "{info}");
    let clean = ws.command().args(["cache", "clean"]).output().unwrap();
    assert_eq!(clean.status.code(), Some(0), "{clean:?}");
    let out = ws.run(&["cat", "/cache/pip/pkg"]);
    assert_ne!(out.status, 0, "cleaned: {out:?}");
}
