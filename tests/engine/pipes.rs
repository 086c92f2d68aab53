//! The command's stdio on both paths: through FIFOs beside the container
//! (a local engine's default) and through the engine's attach stream
//! (`container.fast_pipes: false`, as on a remote engine). Every test runs
//! on both, and first checks that the path under test is the one in use.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{tempdir, test_image, warm_mode, Output, Workspace};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Path {
    Fifos,
    Attach,
}

const BOTH: [Path; 2] = [Path::Fifos, Path::Attach];

/// `sandbox run` in `ws` on `path`, with `args`.
fn command(ws: &Workspace, path: Path, args: &[&str]) -> (Command, tempfile::TempDir) {
    let dir = tempdir();
    let config = dir.path().join("config.yaml");
    let on = path == Path::Fifos;
    std::fs::write(&config, format!("container:\n  fast_pipes: {on}\n")).unwrap();
    let mut cmd = ws.command();
    cmd.env("SANDBOX_CONFIG", &config)
        .args(["run", "--image", test_image(), "--pull", "never"]);
    // This configuration file replaces the workspace's: the pass decides.
    cmd.arg(if warm_mode() { "--warm" } else { "--no-warm" });
    cmd.args(args);
    (cmd, dir)
}

fn run(ws: &Workspace, path: Path, args: &[&str], input: &[u8]) -> Output {
    let (mut cmd, _dir) = command(ws, path, args);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // The command may exit without reading it all.
    let feeder = std::thread::spawn(move || drop(stdin.write_all(&input)));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out.into()
}

/// What descriptor 1 of the command is: the FIFO, or the engine's pipe.
#[test]
fn each_path_is_the_one_in_use() {
    let ws = Workspace::new();
    for path in BOTH {
        let out = run(
            &ws,
            path,
            &[
                "sh",
                "-c",
                "for fd in 0 1 2; do readlink /proc/self/fd/$fd; done",
            ],
            b"x",
        );
        assert_eq!(out.status, 0, "{path:?}: {out:?}");
        let links: Vec<&str> = out.stdout.lines().collect();
        match path {
            Path::Fifos => assert_eq!(
                links,
                [
                    "/.sandbox-stdio/0",
                    "/.sandbox-stdio/1",
                    "/.sandbox-stdio/2"
                ],
                "{out:?}"
            ),
            Path::Attach => assert!(
                links.len() == 3 && links.iter().all(|l| l.starts_with("pipe:[")),
                "{out:?}"
            ),
        }
    }
}

#[test]
fn output_status_and_input_are_the_same_on_both_paths() {
    let ws = Workspace::new();
    // Every byte value, several MiB.
    let blob: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for path in BOTH {
        let out = run(
            &ws,
            path,
            &["sh", "-c", "echo out; echo err >&2; exit 7"],
            b"",
        );
        assert_eq!(
            (out.status, out.stdout.as_str(), out.stderr.as_str()),
            (7, "out\n", "err\n"),
            "{path:?}"
        );

        let out = run(&ws, path, &["cat"], &blob);
        assert_eq!(out.status, 0, "{path:?}: {}", out.stderr);
        assert!(
            out.stdout_bytes == blob,
            "{path:?}: {} bytes back",
            out.stdout_bytes.len()
        );

        // EOF on our stdin is the command's EOF, and it goes on after it.
        let out = run(&ws, path, &["sh", "-c", "cat; echo after-eof"], b"in\n");
        assert_eq!(out.stdout, "in\nafter-eof\n", "{path:?}: {out:?}");

        // 50 MB out, with stderr after it, kept apart.
        let out = run(
            &ws,
            path,
            &["sh", "-c", "head -c 50000000 /dev/zero; echo tail >&2"],
            b"",
        );
        assert_eq!(out.stdout_bytes.len(), 50_000_000, "{path:?}");
        assert!(out.stdout_bytes.iter().all(|b| *b == 0));
        assert_eq!(out.stderr, "tail\n", "{path:?}");

        let out = run(&ws, path, &["sh", "-c", "kill -TERM $$"], b"");
        assert_eq!(out.status, 143, "{path:?}: {out:?}");
    }
}

#[test]
fn a_command_that_cannot_run_is_named_on_both_paths() {
    let ws = Workspace::new();
    for path in BOTH {
        let out = run(&ws, path, &["no-such-command"], b"");
        assert_eq!(out.status, 127, "{path:?}: {out:?}");
        if !warm_mode() {
            assert!(
                out.stderr
                    .starts_with("sandbox: no-such-command: not found in the image (exit 127)"),
                "{path:?}: {out:?}"
            );
        }
    }
}

#[test]
fn a_command_that_reads_nothing_does_not_hang_on_our_input() {
    let ws = Workspace::new();
    let input = vec![b'y'; 32 << 20];
    for path in BOTH {
        let out = run(&ws, path, &["echo", "done"], &input);
        assert_eq!(
            (out.status, out.stdout.as_str()),
            (0, "done\n"),
            "{path:?}: {out:?}"
        );
    }
}

#[test]
fn a_closed_reader_ends_the_command_as_a_pipe_would() {
    let ws = Workspace::new();
    for path in BOTH {
        let (mut cmd, _dir) = command(&ws, path, &["sh", "-c", "while true; do echo y; done"]);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 2];
        stdout.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"y\n");
        drop(stdout);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(141), "{path:?}: ended as by SIGPIPE");
    }
}

/// A process left behind holding stdout goes with the container: the run
/// ends when the command does.
#[test]
fn a_background_process_holding_stdout_does_not_hold_the_run() {
    let ws = Workspace::new();
    for path in BOTH {
        let started = Instant::now();
        let out = run(
            &ws,
            path,
            &["sh", "-c", "(sleep 60; echo late) & echo early"],
            b"",
        );
        assert_eq!(
            (out.status, out.stdout.as_str()),
            (0, "early\n"),
            "{path:?}: {out:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(50),
            "{path:?}: waited for the sleep"
        );
    }
}

/// The FIFOs' directory is mounted read-only: the command cannot swap a
/// FIFO for something else, nor leave anything there. The control runs the
/// same commands in a directory it can write.
#[test]
fn the_fifo_directory_cannot_be_changed_from_inside() {
    let ws = Workspace::new();
    let attack = "cd \"$1\" && { rm -f 1 || exit 10; } && { ln -s /etc/passwd 1 || exit 11; } \
                  && { echo x > planted || exit 12; }; echo reached";
    let out = run(
        &ws,
        Path::Fifos,
        &["sh", "-c", attack, "sh", "/.sandbox-stdio"],
        b"",
    );
    assert_eq!(out.status, 10, "{out:?}");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");

    let control = "mkdir -p /tmp/d && mkfifo /tmp/d/1 && set -- /tmp/d && ".to_string() + attack;
    let out = run(&ws, Path::Fifos, &["sh", "-c", &control, "sh"], b"");
    assert_eq!(
        (out.status, out.stdout.as_str()),
        (0, "reached\n"),
        "{out:?}"
    );
}

/// A warm container takes the same path: the run that claims it holds its
/// FIFOs before it hands the command over, and the waiter execs the
/// command through the shim.
#[test]
fn a_warm_container_takes_the_same_path() {
    let ws = Workspace::new();
    let warm: &[&str] = if warm_mode() { &[] } else { &["--warm"] };
    for path in BOTH {
        let first = run(&ws, path, &[warm, &["true"]].concat(), b"");
        assert_eq!(first.status, 0, "{path:?}: {first:?}");
        let waiting = crate::warm::wait_for_warm(&ws);
        let script = "hostname; for fd in 0 1 2; do readlink /proc/self/fd/$fd; done; cat";
        let out = run(
            &ws,
            path,
            &[warm, &["sh", "-c", script]].concat(),
            b"input\n",
        );
        assert_eq!(out.status, 0, "{path:?}: {out:?}");
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert!(
            waiting.starts_with(lines[0]),
            "{path:?}: not the warm one: {out:?}"
        );
        let fifos = lines[1..4]
            .iter()
            .all(|l| l.starts_with("/.sandbox-stdio/"));
        let engine = lines[1..4].iter().all(|l| l.starts_with("pipe:["));
        match path {
            Path::Fifos => assert!(fifos, "{out:?}"),
            Path::Attach => assert!(engine, "{out:?}"),
        }
        assert_eq!(lines[4..], ["input"], "{path:?}: {out:?}");
        // The next one, for the next path's settings, is another container.
        crate::common::docker(&["rm", "-f", &crate::warm::wait_for_warm(&ws)]);
    }
}

/// Hostile code hands its FIFOs' descriptors to another container (a
/// second run of the same workspace, over a socket in /work) and exits.
/// Its run still ends, with its status, once its container has: what the
/// other writes afterwards is not waited for and never reaches our output.
/// The control: what the other wrote while the command ran did arrive, so
/// the descriptors did change hands.
#[test]
fn descriptors_handed_outside_do_not_hold_the_run() {
    let ws = Workspace::new();
    let fdpass = crate::probes::static_program("fdpass");
    std::fs::copy(&fdpass, ws.path().join("fdpass")).unwrap();
    let other = "echo while-it-ran >&11; sleep 4; echo after-it-ended >&11; sleep 60";
    let mut holder = ws
        .run_command(&["./fdpass", "recv", "/work/sock", "/bin/sh", "-c", other])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let attack = "./fdpass send /work/sock 0 1 2 && sleep 1; exit 3";
    let (mut cmd, _dir) = command(&ws, Path::Fifos, &["sh", "-c", attack]);
    let mut run = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(40) {
            let _ = run.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out: Output = run.wait_with_output().unwrap().into();
    // The other run ends by itself when its late write finds no reader.
    let ended = Instant::now();
    while holder.try_wait().unwrap().is_none() && ended.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if holder.try_wait().unwrap().is_none() {
        crate::common::docker(&["ps"]);
        let _ = Command::new("kill").arg(holder.id().to_string()).status();
        let _ = holder.wait();
    }
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(3),
        "the run did not end: {out:?}"
    );
    assert_eq!(out.stdout, "while-it-ran\n", "{out:?}");
}

/// A command that reads our stdin as an event loop does (Node, Bun,
/// asyncio, Go: epoll says when to read) is told of its end, however early
/// that end came: a FIFO whose last writer closed before the command opened
/// it gives no event for the end, and such a command waits forever (as
/// OpenCode did now and then). `pipes::carry`'s unit test makes that order
/// happen; here the command runs as users run it, on both paths.
#[test]
fn an_event_loop_sees_the_end_of_our_input() {
    let ws = Workspace::new();
    let probe = crate::probes::static_program("pollin");
    std::fs::copy(&probe, ws.path().join("pollin")).unwrap();
    for path in BOTH {
        for (input, said) in [(&b"hi\n"[..], "3 bytes"), (b"", "0 bytes")] {
            let out = run(&ws, path, &["./pollin", "20"], input);
            let expected = format!("{said}, then the end\n");
            assert_eq!(
                (out.status, out.stdout.as_str()),
                (0, expected.as_str()),
                "{path:?}: {out:?}"
            );
        }
    }
}
