//! Warm starts (`--warm`): a run hands its command to a container started
//! ahead of time. It must behave as a cold run in every way a command can
//! tell, and still give every command a container of its own.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{
    docker, finish, signal, start_ready, warm_containers_of, warm_mode, Workspace,
};

mod claims;
mod terminal;
mod timing;

/// Waits until the workspace has a warm container waiting for a run to
/// claim it (not one its preparer is still checking), and returns its id.
pub(crate) fn wait_for_warm(ws: &Workspace) -> String {
    wait_for_warm_at(ws.path())
}

/// The same for the workspace at `path`.
pub(crate) fn wait_for_warm_at(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let warm = warm_containers_of(path);
        if let [id] = warm.as_slice() {
            let state = docker(&["inspect", "-f", "{{.State.Running}} {{.Name}}", id]);
            if let Some(("true", name)) = state.stdout.trim().split_once(' ') {
                if !name.ends_with("-pending") {
                    return id.clone();
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no warm container came up: {warm:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `args` with `--warm` in front, unless the whole pass runs warm already.
fn warm_args<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut full = if warm_mode() { vec![] } else { vec!["--warm"] };
    full.extend_from_slice(args);
    full
}

fn warm_run(ws: &Workspace, args: &[&str]) -> crate::common::Output {
    ws.run(&warm_args(args))
}

/// A configuration file in `ws` that sets warm containers' idle time;
/// returns its path, for `--config`.
fn idle_config(ws: &Workspace, idle: &str) -> String {
    let config = ws.path().join("warm.yaml");
    std::fs::write(&config, format!("container:\n  warm_idle: {idle}\n")).unwrap();
    config.to_str().unwrap().to_string()
}

#[test]
fn the_next_run_takes_the_prepared_container_and_leaves_nothing() {
    let ws = Workspace::new();
    let out = warm_run(&ws, &["true"]);
    assert_eq!(out.status, 0, "{out:?}");
    let prepared = wait_for_warm(&ws);

    let out = warm_run(&ws, &["hostname"]);
    assert_eq!(out.status, 0, "{out:?}");
    assert!(
        prepared.starts_with(out.stdout.trim()),
        "the command ran in the prepared container {prepared}: {out:?}"
    );
    assert!(ws.containers().is_empty(), "used once, then removed");
    let next = wait_for_warm(&ws);
    assert_ne!(next, prepared, "a fresh one waits for the next run");
}

#[test]
fn a_warm_run_is_indistinguishable_from_a_cold_one() {
    let ws = Workspace::new();
    // Everything a command can observe, but the container's own name.
    let probe = "printf '[%s]' \"$@\"; echo; id; pwd; env | grep -v ^HOSTNAME= | sort; \
                 cat /proc/self/status | grep -E '^(Cap|NoNewPrivs|Seccomp)'; \
                 cat /sys/fs/cgroup/pids/pids.max; ls -l /proc/self/fd/0 >/dev/null; cat; \
                 echo err >&2; exit 5";
    let args = [
        "sh",
        "-c",
        probe,
        "probe",
        "a b",
        "it's",
        "two\nlines",
        "",
        "$HOME",
    ];
    let input = b"stdin arrives\n";
    let cold = ws.run_with_stdin(&args, input);
    warm_run(&ws, &["true"]);
    wait_for_warm(&ws);
    let warm = ws.run_with_stdin(&warm_args(&args), input);
    assert_eq!(cold.status, 5, "{cold:?}");
    assert_eq!(warm.status, cold.status);
    assert_eq!(warm.stdout, cold.stdout);
    assert_eq!(warm.stderr, cold.stderr);
    assert!(
        cold.stdout
            .starts_with("[a b][it's][two\nlines][][$HOME]\n"),
        "{cold:?}"
    );
    assert!(cold.stdout.contains("stdin arrives"), "{cold:?}");

    // The environment the command itself receives, with no shell between.
    let sorted_env = |out: crate::common::Output| {
        let mut lines: Vec<String> = out
            .stdout
            .lines()
            .filter(|l| !l.starts_with("HOSTNAME="))
            .map(String::from)
            .collect();
        lines.sort();
        lines
    };
    let cold = sorted_env(ws.run(&["env"]));
    wait_for_warm(&ws);
    let warm = sorted_env(warm_run(&ws, &["env"]));
    assert_eq!(warm, cold);
    assert!(cold.iter().any(|l| l == "HOME=/home/sandbox"), "{cold:?}");
}

#[test]
fn signals_time_limits_and_missing_commands_behave_as_cold() {
    let ws = Workspace::new();
    warm_run(&ws, &["true"]);
    wait_for_warm(&ws);
    let child = start_ready(&ws, &warm_args(&["sh", "-c", "echo ready; exec sleep 100"]));
    signal(&child, "TERM");
    assert_eq!(finish(child).status, 143);

    wait_for_warm(&ws);
    let started = Instant::now();
    let out = warm_run(&ws, &["--timeout", "1s", "sleep", "100"]);
    assert_eq!(out.status, 124, "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(30));

    wait_for_warm(&ws);
    let out = warm_run(&ws, &["no-such-command"]);
    assert_eq!(out.status, 127, "{out:?}");
    assert!(out.stderr.contains("no-such-command"), "{out:?}");
    assert!(ws.containers().is_empty());
}

#[test]
fn different_settings_never_share_a_warm_container() {
    let ws = Workspace::new();
    warm_run(&ws, &["true"]);
    let plain = wait_for_warm(&ws);
    let out = warm_run(
        &ws,
        &[
            "--memory",
            "256m",
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        ],
    );
    assert_eq!(out.stdout.trim(), (256u64 << 20).to_string(), "{out:?}");
    let still = ws.warm_containers();
    assert!(
        still.contains(&plain),
        "the other settings' container was not used: {still:?}"
    );
}

#[test]
fn an_unused_warm_container_stops_after_its_idle_time() {
    let ws = Workspace::new();
    let config = idle_config(&ws, "2s");
    let out = ws
        .command()
        .args(["--config", &config, "run", "--warm", "--image"])
        .arg(crate::common::test_image())
        .args(["--pull", "never", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let id = wait_for_warm(&ws);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running = docker(&["inspect", "-f", "{{.State.Running}}", &id]);
        // Once stopped, any preparer (another test's too) may sweep it away.
        let gone = running.status != 0 && running.stderr.contains("No such");
        if running.stdout.trim() == "false" || gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still waiting after its idle time"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Removes the images it names when the test ends, however it ends.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for image in &self.0 {
            docker(&["rmi", "-f", image]);
        }
    }
}

/// Builds `FROM <test image>` with `/version` holding `text`, tagged `tag`;
/// returns its image ID.
fn build_version(tag: &str, text: &str) -> String {
    let context = crate::common::tempdir();
    std::fs::write(context.path().join("version"), format!("{text}\n")).unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {}\nCOPY version /version\nLABEL dev.sandbox.test=1\n",
            crate::common::test_image()
        ),
    )
    .unwrap();
    let built = docker(&["build", "-q", "-t", tag, context.path().to_str().unwrap()]);
    assert_eq!(built.status, 0, "{built:?}");
    built.stdout.trim().to_string()
}

#[test]
fn a_moved_tag_is_never_served_by_a_container_of_the_old_image() {
    let tag = format!(
        "sandbox-test/warm-retag-{}-{}:1",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut images = Images(vec![tag.clone()]);
    let ws = Workspace::new();
    let run = |ws: &Workspace| -> crate::common::Output {
        let args = ["run", "--warm", "--image", &tag, "--pull", "never"];
        let cmd = ws.command().args(args).args(["cat", "/version"]).output();
        cmd.unwrap().into()
    };

    let one = build_version(&tag, "one");
    images.0.push(one.clone());
    let out = run(&ws);
    assert_eq!((out.status, out.stdout.as_str()), (0, "one\n"), "{out:?}");
    let waiting = wait_for_warm(&ws);

    let two = build_version(&tag, "two");
    images.0.push(two.clone());
    assert_ne!(one, two);
    // CONTROL: the container waiting for the next run is of the old image,
    // which is what a warm key naming the image by its tag handed out
    // ("one") after the tag had moved.
    let of = |id: &str| {
        docker(&["inspect", "-f", "{{.Image}}", id])
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(of(&waiting), one, "prepared before the tag moved");

    let out = run(&ws);
    assert_eq!((out.status, out.stdout.as_str()), (0, "two\n"), "{out:?}");
    assert!(
        ws.warm_containers().contains(&waiting),
        "the old image's container was not used"
    );
    // The next one is prepared from the tag's new image.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ws.warm_containers().iter().any(|id| of(id) == two) {
        assert!(
            Instant::now() < deadline,
            "none prepared from the new image"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run(&ws);
    assert_eq!((out.status, out.stdout.as_str()), (0, "two\n"), "{out:?}");
    // The workspace's guard removes the containers, then `images` the
    // images: one in use could not be removed.
}
