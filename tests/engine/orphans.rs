//! A sandbox that dies mid-run (`kill -9`, a closed terminal, a CI job
//! killed for its memory) or cannot act (stopped). Its container must not
//! outlive it or its time limit: the run's watcher removes it at once, a
//! later run removes what a dead watcher left, and a live run of another
//! sandbox is never touched.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{
    docker, finish, kill_with_watcher, signal, start_ready, start_ready_as, test_image, Workspace,
};

const SLEEPER: [&str; 3] = ["sh", "-c", "echo ready; exec sleep 1000"];

/// Whether container `id` runs; `None` once it is gone.
fn running(id: &str) -> Option<bool> {
    let out = docker(&["inspect", "-f", "{{.State.Running}}", id]);
    (out.status == 0).then(|| out.stdout.trim() == "true")
}

/// Polls `done` until it holds; fails with `what` after `secs` seconds.
/// Returns how long it took.
fn wait_until(secs: u64, what: &str, done: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(secs), "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

/// The container of `ws` that is not among `known`.
fn new_container(ws: &Workspace, known: &[String]) -> String {
    let fresh: Vec<String> = ws
        .containers()
        .into_iter()
        .filter(|id| !known.contains(id))
        .collect();
    assert_eq!(fresh.len(), 1, "one new container: {fresh:?}");
    fresh[0].clone()
}

/// A cold run of the sleeper in `ws`, in either pass: a claimed warm
/// container carries no owner label, so only its own watcher knows it.
fn cold_sleeper(ws: &Workspace) -> std::process::Child {
    let mut run = ws.command();
    run.args(["run", "--image", test_image(), "--pull", "never"])
        .args(SLEEPER);
    start_ready_as(run)
}

/// A container made outside sandbox, removed when dropped.
struct Foreign(String);

impl Drop for Foreign {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.0]);
    }
}

/// Resumes a stopped process when dropped, a failed test included.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "CONT", &self.0.to_string()])
            .status();
    }
}

#[test]
fn a_killed_sandbox_takes_its_container_with_it() {
    let ws = Workspace::new();
    let child = start_ready(&ws, &[&["--timeout", "5s"][..], &SLEEPER].concat());
    let id = new_container(&ws, &[]);
    signal(&child, "KILL");
    assert_eq!(finish(child).status, -1, "killed outright");
    let took = wait_until(20, "the container outlived its sandbox", || {
        running(&id).is_none()
    });

    // Control: `docker run` killed the same way leaves its container
    // running, past the time sandbox's took and its time limit both.
    let name = format!("sandbox-test-orphan-{}", std::process::id());
    let _foreign = Foreign(name.clone());
    let mut plain = Command::new("docker");
    plain
        .args([
            "run",
            "--rm",
            "--name",
            &name,
            "--label",
            "dev.sandbox.test=1",
        ])
        .arg(test_image())
        .args(SLEEPER);
    let client = start_ready_as(plain);
    signal(&client, "KILL");
    finish(client);
    std::thread::sleep(took + Duration::from_secs(6));
    assert_eq!(running(&name), Some(true), "docker run's container runs on");
}

#[test]
fn the_time_limit_holds_while_sandbox_is_stopped() {
    let ws = Workspace::new();
    let child = start_ready(&ws, &[&["--timeout", "3s"][..], &SLEEPER].concat());
    let id = new_container(&ws, &[]);
    signal(&child, "STOP");
    let resume = Resume(child.id());
    // Control: sandbox can do nothing now, and the command runs on.
    assert_eq!(running(&id), Some(true));
    // The limit, the grace after it and the watcher's margin: 13 s.
    wait_until(60, "the command outlived its time limit", || {
        running(&id) != Some(true)
    });
    drop(resume);
    let out = finish(child);
    assert!(
        [124, 137].contains(&out.status),
        "the time limit, or the kill the watcher sent: {out:?}"
    );
}

#[test]
fn a_later_run_removes_an_orphan_and_leaves_a_live_run_alone() {
    let ws = Workspace::new();
    let live = cold_sleeper(&ws);
    let live_id = new_container(&ws, &[]);
    let doomed = cold_sleeper(&ws);
    let orphan = new_container(&ws, std::slice::from_ref(&live_id));
    // Sandbox and its watcher both killed; sandbox, not collected yet,
    // still counts as alive, so no other test's run takes the container.
    kill_with_watcher(&doomed);
    // Control: with the watcher gone too, nothing of its own removes it.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(running(&orphan), Some(true), "an orphan, running on");
    assert_eq!(finish(doomed).status, -1, "killed outright");

    let out = ws.run(&["true"]);
    assert_eq!(out.status, 0, "{out:?}");
    wait_until(30, "the next run left the orphan", || {
        running(&orphan).is_none()
    });
    assert_eq!(
        running(&live_id),
        Some(true),
        "the live run of another sandbox stays"
    );
    signal(&live, "TERM");
    assert_eq!(finish(live).status, 143, "and ends as its own");
}

/// A container of the user's, labelled like one of sandbox's: what an
/// image's `LABEL` lines or a compose file put on it.
fn labelled_sleeper(owner: &str) -> Foreign {
    let out = docker(&[
        "run",
        "-d",
        "--label",
        "dev.sandbox.managed=true",
        "--label",
        &format!("dev.sandbox.owner={owner}"),
        test_image(),
        "sleep",
        "600",
    ]);
    assert_eq!(out.status, 0, "{out:?}");
    Foreign(out.stdout.trim().to_string())
}

/// `owner` sealed with the key sandbox keeps for this user (as root with
/// no XDG_RUNTIME_DIR, the tests' hermetic runs keep it in /tmp/sandbox-0).
fn sealed(owner: &str) -> String {
    let uid = rustix::process::getuid().as_raw();
    let key = std::fs::read(format!("/tmp/sandbox-{uid}/owner.key")).expect("the owner key");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let tag = ring::hmac::sign(&key, owner.as_bytes());
    let hex: String = tag.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{owner}/{hex}")
}

/// The attack: code in a run reads the host's boot id (not namespaced),
/// names a sandbox process long gone, and has the repository label the
/// project's own containers with it. sandbox's next run must leave them be.
#[test]
fn a_label_a_repository_wrote_never_gets_a_container_removed() {
    let ws = Workspace::new();
    let out = ws.run(&["cat", "/proc/sys/kernel/random/boot_id"]);
    assert_eq!(out.status, 0, "{out:?}");
    let boot = out.stdout.trim().to_string();
    let pidns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let pidns: String = pidns
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let gone = format!("{boot}/{pidns}/999999/1");
    let victim = labelled_sleeper(&gone);
    // The control: the same owner under sandbox's own seal is an orphan,
    // and goes.
    let orphan = labelled_sleeper(&sealed(&gone));

    let out = Workspace::new().run(&["true"]);
    assert_eq!(out.status, 0, "{out:?}");
    wait_until(30, "the sealed orphan was left", || {
        running(&orphan.0).is_none()
    });
    assert_eq!(
        running(&victim.0),
        Some(true),
        "the user's own container stays"
    );
    let out = ws
        .command()
        .args(["prune", "--all", "--dry-run"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listed.contains(&format!("left {}", &victim.0[..12])),
        "prune --all leaves it as a live run: {listed}"
    );
}

/// The allow-list's network and egress container, labelled with `ws`.
fn egress_of(ws: &Workspace) -> (Vec<String>, Vec<String>) {
    let filter = format!("label=dev.sandbox.workspace={}", ws.path().display());
    let networks = docker(&["network", "ls", "-q", "--filter", &filter]);
    let containers = docker(&["ps", "-aq", "--filter", &filter]);
    let ids = |out: crate::common::Output| out.stdout.lines().map(String::from).collect();
    (ids(networks), ids(containers))
}

#[test]
fn a_killed_sandbox_takes_its_allow_list_network_with_it() {
    let ws = Workspace::new();
    let mut run = ws.command();
    run.args(["run", "--image", test_image(), "--pull", "never"])
        .args(["--allow-host", "example.test"])
        .args(SLEEPER);
    let child = start_ready_as(run);
    let (networks, containers) = egress_of(&ws);
    assert_eq!(
        (networks.len(), containers.len()),
        (1, 2),
        "a network, the command's container and the egress container"
    );
    signal(&child, "KILL");
    assert_eq!(finish(child).status, -1, "killed outright");
    wait_until(30, "the network or a container outlived sandbox", || {
        egress_of(&ws) == (Vec::new(), Vec::new())
    });
}
