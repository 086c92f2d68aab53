//! An engine that stops answering: the second engine stopped with SIGSTOP
//! (never the first: other tests and builders use it), and a socket that
//! accepts and never answers. Ctrl-C and the time limit still end a run
//! within seconds, with a line saying the engine did not answer, and what
//! the run left goes once the engine answers again.

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::{docker, finish, remote_engine, signal, start_ready_as, test_image, Workspace};

const SLEEPER: [&str; 3] = ["sh", "-c", "echo ready; exec sleep 1000"];

/// One freeze at a time: a second test must not thaw the engine under the
/// first. Each freeze lasts seconds, less than any deadline the other
/// tests of the second engine (`remote.rs`) wait for.
static FREEZE: Mutex<()> = Mutex::new(());

/// The second engine, stopped with SIGSTOP until dropped.
struct Frozen {
    pid: String,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl Frozen {
    fn new(host: &str) -> Frozen {
        let one_at_a_time = FREEZE.lock().unwrap_or_else(|e| e.into_inner());
        let pid = dockerd_of(host);
        send(&pid, "STOP");
        Frozen {
            pid,
            _one_at_a_time: one_at_a_time,
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        send(&self.pid, "CONT");
    }
}

fn send(pid: &str, signal: &str) {
    let sent = Command::new("kill").args(["-s", signal, pid]).status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -s {signal} {pid}");
}

/// The pid of the dockerd listening at `host`: only the second engine is
/// started with `--host` on its command line.
fn dockerd_of(host: &str) -> String {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_dockerd = args.first().is_some_and(|a| a.ends_with(b"dockerd"));
        if is_dockerd && args.windows(2).any(|w| w == [b"--host", host.as_bytes()]) {
            return pid;
        }
    }
    panic!("no dockerd runs with --host {host}");
}

/// The docker CLI against the frozen engine, given `secs`: it hangs, and
/// timeout(1) ends it with 124. Shows the tests see a frozen engine.
fn docker_cli_hangs(host: &str, secs: u64) {
    let status = Command::new("timeout")
        .args([&secs.to_string(), "docker", "-H", host, "ps"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run timeout(1)");
    assert_eq!(status.code(), Some(124), "the docker CLI hangs on it too");
}

/// What sandbox left of `ws` on the engine at `host`.
fn left_on(host: &str, ws: &Workspace) -> String {
    let filter = format!("label=dev.sandbox.workspace={}", ws.path().display());
    docker(&["-H", host, "ps", "-aq", "--filter", &filter]).stdout
}

/// Waits until nothing of `ws` is left on `host`: the watcher removes what
/// the run could not once the engine answers.
fn removed_once_it_answers(host: &str, ws: &Workspace) {
    let start = Instant::now();
    while !left_on(host, ws).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the container stayed after the engine answered again"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A run of the sleeper on the second engine, running when this returns.
fn sleeper_on(host: &str, ws: &Workspace, args: &[&str]) -> Child {
    let mut run = ws.run_command_on(host, args);
    run.args(SLEEPER);
    start_ready_as(run)
}

#[test]
fn the_time_limit_ends_a_run_on_a_frozen_engine() {
    let host = remote_engine();
    let ws = Workspace::new();
    let child = sleeper_on(host, &ws, &["--no-sync-back", "--timeout", "3s"]);
    let frozen = Frozen::new(host);
    let start = Instant::now();
    docker_cli_hangs(host, 3);
    let out = finish(child);
    let took = start.elapsed();
    drop(frozen);
    assert_eq!(out.status, 124, "{out:?}");
    assert!(took < Duration::from_secs(15), "took {took:?}: {out:?}");
    assert!(
        out.stderr
            .contains("the time limit of 3s passed: cannot send SIGTERM to the container: the engine did not answer within 2s"),
        "{out:?}"
    );
    assert!(out.stderr.contains("is left for now"), "{out:?}");
    removed_once_it_answers(host, &ws);
}

#[test]
fn ctrl_c_ends_a_run_on_a_frozen_engine() {
    let host = remote_engine();
    let ws = Workspace::new();
    let child = sleeper_on(host, &ws, &["--no-sync-back"]);
    let frozen = Frozen::new(host);
    docker_cli_hangs(host, 2);
    let start = Instant::now();
    signal(&child, "INT");
    let out = finish(child);
    let took = start.elapsed();
    drop(frozen);
    assert_eq!(out.status, 130, "{out:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {out:?}");
    assert!(
        out.stderr.contains(
            "stopped by SIGINT: cannot send SIGINT to the container: the engine did not answer"
        ),
        "{out:?}"
    );
    removed_once_it_answers(host, &ws);
}

/// A socket that takes connections and never answers on them: an engine
/// hung from the start, as sandbox sees it.
fn silent_engine() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("tcp://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for connection in listener.incoming() {
            held.push(connection);
        }
    });
    host
}

#[test]
fn an_engine_that_never_answers_fails_the_run_or_yields_to_ctrl_c() {
    let host = silent_engine();
    docker_cli_hangs(&host, 2);
    let ws = Workspace::new();
    let run = || {
        let mut run = ws.command();
        run.env("DOCKER_HOST", &host).args([
            "run",
            "--image",
            test_image(),
            "--pull",
            "never",
            "true",
        ]);
        run
    };

    let start = Instant::now();
    let out: crate::common::Output = run().output().unwrap().into();
    assert_eq!(out.status, 125, "{out:?}");
    assert!(start.elapsed() < Duration::from_secs(30), "{out:?}");
    assert!(
        out.stderr.contains("the engine did not answer within 10s"),
        "{out:?}"
    );

    let child = run()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let start = Instant::now();
    signal(&child, "INT");
    let out = finish(child);
    assert_eq!(out.status, 130, "{out:?}");
    assert!(start.elapsed() < Duration::from_secs(5), "{out:?}");
    assert!(
        out.stderr
            .contains("stopped by SIGINT while waiting for the engine"),
        "{out:?}"
    );
}
