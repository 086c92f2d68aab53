//! Claims: however many runs start at once, one waiting container serves one
//! of them, every other runs cold, and each gets its own output. A container
//! that stops before it takes the command sends the run cold too.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};

use super::{idle_config, wait_for_warm, warm_args, warm_run};
use crate::common::{docker, podman_engine, test_image, Output, Workspace};

/// Starts `n` runs of `sandbox()` at once, each printing a token of its own
/// and its container's hostname (the short ID), and checks that each exited
/// 0 with its own token, that no two had one container, and that exactly one
/// had the `waiting` one.
fn one_container_each(waiting: &str, tag: &str, n: usize, sandbox: impl Fn() -> Command) {
    let children: Vec<_> = (0..n)
        .map(|i| {
            let mut run = sandbox();
            run.args(["sh", "-c", &format!("echo {tag}-{i}; hostname")]);
            let run = run.stdout(Stdio::piped()).stderr(Stdio::piped());
            run.spawn().expect("spawn sandbox")
        })
        .collect();
    let mut hostnames = Vec::new();
    for (i, child) in children.into_iter().enumerate() {
        let out: Output = child.wait_with_output().expect("wait for sandbox").into();
        assert_eq!(
            (out.status, out.stderr.as_str()),
            (0, ""),
            "{tag}-{i}: {out:?}"
        );
        let (token, hostname) = out.stdout.split_once('\n').expect("two lines");
        assert_eq!(token, format!("{tag}-{i}"), "{out:?}");
        hostnames.push(hostname.trim().to_string());
    }
    let mut distinct = hostnames.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        n,
        "a container served two runs: {hostnames:?}"
    );
    let warm: Vec<_> = hostnames
        .iter()
        .filter(|h| waiting.starts_with(h.as_str()))
        .collect();
    assert_eq!(warm.len(), 1, "{waiting} served {warm:?} of {hostnames:?}");
}

#[test]
fn runs_started_at_once_share_no_container_and_no_output() {
    let ws = Workspace::new();
    warm_run(&ws, &["true"]);
    for round in 0..3 {
        let waiting = wait_for_warm(&ws);
        let tag = format!("token-{round}");
        one_container_each(&waiting, &tag, 8, || ws.run_command(&warm_args(&[])));
    }
    assert!(ws.containers().is_empty(), "{:?}", ws.containers());
    assert!(
        ws.warm_containers().len() <= 1,
        "{:?}",
        ws.warm_containers()
    );
}

/// Podman's containers of a workspace, removed when the test ends however it
/// ends: the workspace's own guard knows only Docker's.
struct OnPodman(String);

impl OnPodman {
    fn containers(&self) -> Vec<String> {
        let out = Command::new("podman")
            .args(["ps", "-aq", "--filter", &self.0])
            .output()
            .expect("podman ps");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    }
}

impl Drop for OnPodman {
    fn drop(&mut self) {
        for id in self.containers() {
            let _ = Command::new("podman").args(["rm", "-f", &id]).output();
        }
    }
}

/// Podman takes a rename to the name a container has already for a success,
/// so a claim there rests on runs of one machine taking turns.
#[test]
fn on_podman_too_one_waiting_container_serves_one_run() {
    let podman = podman_engine();
    let ws = Workspace::new();
    let label = format!("label=dev.sandbox.workspace={}", ws.path().display());
    let on_podman = OnPodman(label.clone());
    // The preparer makes no waiting container on Podman (it sends the
    // seccomp profile inline): one is prepared on Docker, with the same
    // settings and so the same name, and remade on Podman with its shell.
    let docker_host = "unix:///var/run/docker.sock";
    let out: Output = (ws.run_command_on(docker_host, &["--warm", "true"]).output())
        .unwrap()
        .into();
    assert_eq!(out.status, 0, "{out:?}");
    let prepared = wait_for_warm(&ws);
    // Its FIFOs' directory (the waiter execs the command through the stdio
    // shim in it) goes with it.
    let format = "{{.Name}} {{range .Mounts}}{{if eq .Destination \"/.sandbox-stdio\"}}\
                  {{.Source}}{{end}}{{end}} {{json .Config.Cmd}}";
    let inspected = docker(&["inspect", "-f", format, &prepared]);
    let mut fields = inspected.stdout.trim().splitn(3, ' ');
    let (name, fifos, cmd) = (
        fields.next().unwrap(),
        fields.next().unwrap(),
        fields.next().unwrap(),
    );
    assert!(!fifos.is_empty(), "{inspected:?}");
    let name = name.trim_start_matches('/');
    let cmd: Vec<String> = serde_json::from_str(cmd).unwrap();
    docker(&["rm", "-f", &prepared]);
    let made = Command::new("podman")
        .args(["run", "-d", "-i", "--name", name, "--network", "none"])
        .args(["--label", label.trim_start_matches("label=")])
        .args(["-v", &format!("{fifos}:/.sandbox-stdio:ro")])
        // What the test service's containers.conf sets (see `podman_engine`).
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
        ])
        .arg(format!("docker.io/{}", test_image()))
        .args(&cmd)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let waiting = String::from_utf8_lossy(&made.stdout).trim().to_string();

    one_container_each(&waiting, "token", 6, || {
        ws.run_command_on(podman, &["--warm"])
    });
    assert_eq!(on_podman.containers(), Vec::<String>::new(), "all removed");

    // CONTROL: through Podman's Docker API, a second rename to the name made
    // from the ID succeeds as the first did, so a run that renamed it second
    // would not know it lost: the runs above did not race.
    let made = Command::new("podman")
        .args(["create", "--label", label.trim_start_matches("label=")])
        .arg(format!("docker.io/{}", test_image()))
        .arg("true")
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&made.stdout).trim().to_string();
    let claimed = format!("sandbox-run-{}", &id[..12]);
    for _ in 0..2 {
        let renamed = Command::new("docker")
            .env("DOCKER_HOST", podman)
            .args(["rename", &id, &claimed])
            .output()
            .unwrap();
        assert!(renamed.status.success(), "{renamed:?}");
    }
}

/// Renames one container from `threads` at once, each to `to(i)`; returns
/// how many succeeded.
fn race_renames(from: &str, to: impl Fn(usize) -> String, threads: usize) -> usize {
    let barrier = Arc::new(Barrier::new(threads));
    let racers: Vec<_> = (0..threads)
        .map(|i| {
            let (barrier, from, to) = (barrier.clone(), from.to_string(), to(i));
            std::thread::spawn(move || {
                barrier.wait();
                docker(&["rename", &from, &to]).status == 0
            })
        })
        .collect();
    racers
        .into_iter()
        .filter_map(|r| r.join().unwrap().then_some(()))
        .count()
}

/// CONTROL for the test above: on this engine, a plain rename (what a claim
/// was) is not exclusive: of several renames of one container started at
/// once, more than one succeeds. Renaming by ID to one name made from the ID
/// (what a claim is now) lets exactly one succeed.
#[test]
fn of_renames_racing_only_those_to_one_name_have_one_winner() {
    let ws = Workspace::new();
    let label = format!("dev.sandbox.workspace={}", ws.path().display());
    let create = |name: &str| {
        let made = docker(&[
            "create",
            "--label",
            &label,
            "--name",
            name,
            test_image(),
            "true",
        ]);
        assert_eq!(made.status, 0, "{made:?}");
        made.stdout.trim().to_string()
    };
    let name = format!("sandbox-test-race-{}", std::process::id());

    let mut doubled = None;
    for round in 0..30 {
        let id = create(&name);
        let won = race_renames(&name, |i| format!("{name}-{i}"), 8);
        docker(&["rm", "-f", &id]);
        if won > 1 {
            doubled = Some((round, won));
            break;
        }
    }
    let (round, won) = doubled.expect("plain renames of one container never both succeeded");
    eprintln!("plain renames: {won} of 8 succeeded in round {round}");

    for _ in 0..10 {
        let id = create(&name);
        let claimed = format!("sandbox-run-{}", &id[..12]);
        let won = race_renames(&id, |_| claimed.clone(), 8);
        docker(&["rm", "-f", &id]);
        assert_eq!(won, 1, "renames to one name made from the ID");
    }
    // The same, one after the other: Docker refuses the second.
    let id = create(&name);
    let claimed = format!("sandbox-run-{}", &id[..12]);
    assert_eq!(docker(&["rename", &id, &claimed]).status, 0);
    let again = docker(&["rename", &id, &claimed]);
    assert_ne!(again.status, 0, "{again:?}");
    assert!(again.stderr.contains("same name"), "{again:?}");
    docker(&["rm", "-f", &id]);
}

#[test]
fn a_warm_container_that_stops_before_taking_the_command_sends_the_run_cold() {
    let ws = Workspace::new();
    warm_run(&ws, &["true"]);
    let prepared = wait_for_warm(&ws);
    let name = docker(&["inspect", "-f", "{{.Name}}", &prepared]);
    let name = name.stdout.trim().trim_start_matches('/').to_string();
    docker(&["rm", "-f", &prepared]);
    // In its place, one that takes the command line and ends without running
    // it, as a waiter whose container stops at that moment.
    let label = format!("dev.sandbox.workspace={}", ws.path().display());
    let stand_in = ["sh", "-c", "read line; exit 3"];
    let mut run = vec![
        "run",
        "-d",
        "-i",
        "--name",
        &name,
        "--label",
        &label,
        test_image(),
    ];
    run.extend(stand_in);
    let started = docker(&run);
    assert_eq!(started.status, 0, "{started:?}");
    let stand_in_id = started.stdout.trim().to_string();

    let out = warm_run(&ws, &["sh", "-c", "echo ran; exit 7"]);
    assert_eq!((out.status, out.stdout.as_str()), (7, "ran\n"), "{out:?}");
    assert_eq!(out.stderr, "", "{out:?}");
    let gone = docker(&["inspect", &stand_in_id]);
    assert_ne!(
        gone.status, 0,
        "the stand-in was claimed and removed: {gone:?}"
    );
    assert!(ws.containers().is_empty(), "{:?}", ws.containers());

    // CONTROL: handed the command line as before, the stand-in ends with a
    // status of its own and no output, which is what such a run reported.
    let mut control = Command::new("docker")
        .args(["run", "--rm", "-i", test_image()])
        .args(stand_in)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = b"sh -c 'echo ran; exit 7'\n";
    control.stdin.take().unwrap().write_all(line).unwrap();
    let control: Output = control.wait_with_output().unwrap().into();
    assert_eq!((control.status, control.stdout.as_str()), (3, ""));
}

#[test]
fn a_warm_container_about_to_expire_is_removed_not_used() {
    let ws = Workspace::new();
    // Every warm container is within its last seconds from the start.
    let config = idle_config(&ws, "5s");
    let run = |cmd: &str| -> Output {
        let args = [
            "--config",
            &config,
            "run",
            "--warm",
            "--image",
            test_image(),
        ];
        let mut command = ws.command();
        command
            .args(args)
            .args(["--pull", "never", "sh", "-c", cmd]);
        command.output().unwrap().into()
    };
    assert_eq!(run("true").status, 0);
    let expiring = wait_for_warm(&ws);
    let out = run("echo cold; hostname");
    assert_eq!(out.status, 0, "{out:?}");
    let (said, hostname) = out.stdout.split_once('\n').unwrap();
    assert_eq!(said, "cold");
    assert!(!expiring.starts_with(hostname.trim()), "{out:?}");
    let gone = docker(&["inspect", &expiring]);
    assert_ne!(gone.status, 0, "removed once claimed: {gone:?}");
    assert!(ws.containers().is_empty(), "{:?}", ws.containers());
}
