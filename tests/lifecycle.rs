//! `sandbox ls` and `sandbox prune` against a real engine.
//!
//! A test binary of its own: prune removes every stopped sandbox container
//! on the engine, and cargo runs test binaries one after another, so it can
//! never take a container from under a test in `tests/engine/`.

mod common;

use common::{docker, finish, kill_with_watcher, signal, start_ready, test_image, Workspace};

/// A container sandbox did not make, from the same image: prune must leave it.
struct Foreign(String);

impl Foreign {
    fn create() -> Foreign {
        let out = docker(&[
            "create",
            "--label",
            "dev.sandbox.test=1",
            test_image(),
            "true",
        ]);
        assert_eq!(out.status, 0, "{out:?}");
        Foreign(out.stdout.trim().to_string())
    }

    fn exists(&self) -> bool {
        docker(&["inspect", &self.0]).status == 0
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.0]);
    }
}

fn kept_container(ws: &Workspace) -> String {
    let out = ws.run(&["--keep", "true"]);
    assert_eq!(out.status, 0, "{out:?}");
    let ids = ws.containers();
    assert_eq!(ids.len(), 1, "{out:?}");
    ids[0].clone()
}

#[test]
fn prune_takes_sandboxs_stopped_containers_and_nothing_else() {
    let foreign = Foreign::create();
    let stopped = Workspace::new();
    let kept = kept_container(&stopped);
    let busy = Workspace::new();
    let running = start_ready(&busy, &["sh", "-c", "echo ready; exec sleep 60"]);

    let out = stopped
        .command()
        .args(["prune", "--dry-run"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        listing.contains(&format!("would remove {}", &kept[..12])),
        "{listing}"
    );
    assert_eq!(
        stopped.containers(),
        std::slice::from_ref(&kept),
        "a dry run removes nothing"
    );

    let out = stopped.command().arg("prune").output().unwrap();
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        summary.contains(&format!("removed {}", &kept[..12])),
        "{summary}"
    );
    assert!(
        summary.lines().last().unwrap().starts_with("removed "),
        "{summary}"
    );
    assert!(
        stopped.containers().is_empty(),
        "the kept container is gone"
    );
    assert!(foreign.exists(), "a container sandbox did not make stays");
    assert_eq!(busy.containers().len(), 1, "a running sandbox stays");

    // A copied workspace's volume left by a run killed outright goes too;
    // anyone else's volume stays.
    let ours = format!("sandbox-work-test-{}", std::process::id());
    let theirs = format!("not-sandbox-{}", std::process::id());
    let made = docker(&[
        "volume",
        "create",
        "--label",
        "dev.sandbox.managed=true",
        &ours,
    ]);
    assert_eq!(made.status, 0, "{made:?}");
    assert_eq!(docker(&["volume", "create", &theirs]).status, 0);
    let out = stopped.command().arg("prune").output().unwrap();
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        summary.contains(&format!("removed volume {ours}")),
        "{summary}"
    );
    assert_ne!(docker(&["volume", "inspect", &ours]).status, 0, "{summary}");
    assert_eq!(
        docker(&["volume", "rm", &theirs]).status,
        0,
        "theirs stayed"
    );

    // A running container whose sandbox died with its watcher.
    let orphaned = Workspace::new();
    let doomed = start_ready(&orphaned, &["sh", "-c", "echo ready; exec sleep 60"]);
    kill_with_watcher(&doomed);
    finish(doomed);
    assert_eq!(orphaned.containers().len(), 1, "left running");

    let out = busy.command().args(["prune", "--all"]).output().unwrap();
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        orphaned.containers().is_empty(),
        "--all takes a running container whose sandbox is gone: {summary}"
    );
    let live = busy.containers();
    assert_eq!(live.len(), 1, "--all leaves a live run alone: {summary}");
    assert!(
        summary.contains(&format!("left {}", &live[0][..12])),
        "and says so: {summary}"
    );
    assert!(foreign.exists(), "and still leaves others alone");

    // Named, it goes.
    let out = busy
        .command()
        .args(["prune", &live[0][..12]])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(busy.containers().is_empty(), "named, a live run's goes");
    let ended = finish(running);
    assert_ne!(
        ended.status, 0,
        "the run whose container went away fails: {ended:?}"
    );
    let out = busy.command().args(["prune", "f00"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125), "{out:?}");
}

#[test]
fn ls_shows_a_running_sandbox() {
    let ws = Workspace::new();
    let running = start_ready(&ws, &["sh", "-c", "echo ready; exec sleep 60"]);
    let workspace = ws.path().to_str().unwrap().to_string();

    let out = ws.command().args(["ls", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ls --json is JSON");
    let mine: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["workspace"] == workspace.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{listed:#}");
    assert_eq!(mine[0]["state"], "running");
    assert_eq!(mine[0]["image"], test_image());
    assert!(
        mine[0]["command"].as_str().unwrap().starts_with("sh -c"),
        "{listed:#}"
    );

    let out = ws.command().arg("ps").output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(table.starts_with("CONTAINER ID"), "{table}");
    let row = table
        .lines()
        .find(|l| l.contains(&workspace))
        .expect("a row for the run");
    assert!(row.contains("Up "), "{row}");

    signal(&running, "TERM");
    assert_eq!(finish(running).status, 143);
}
