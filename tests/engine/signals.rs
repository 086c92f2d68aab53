//! Ending a run from outside: signals to sandbox, the time limit. Every way
//! out removes the container (the workspace guard checks).

use std::time::{Duration, Instant};

use crate::common::{finish, signal, start_ready, Workspace};

#[test]
fn sigterm_stops_the_command_with_143() {
    let ws = Workspace::new();
    let child = start_ready(&ws, &["sh", "-c", "echo ready; exec sleep 100"]);
    signal(&child, "TERM");
    let out = finish(child);
    assert_eq!(out.status, 143, "{out:?}");
}

#[test]
fn sigint_reaches_a_program_that_traps_it() {
    let ws = Workspace::new();
    let child = start_ready(
        &ws,
        &[
            "sh",
            "-c",
            "trap 'echo caught; exit 42' INT; echo ready; while true; do sleep 0.1; done",
        ],
    );
    signal(&child, "INT");
    let out = finish(child);
    assert_eq!(out.status, 42, "{out:?}");
    assert!(out.stdout.ends_with("caught\n"), "{out:?}");
}

#[test]
fn a_program_that_ignores_signals_is_killed_after_a_grace_period() {
    let ws = Workspace::new();
    let child = start_ready(
        &ws,
        &[
            "sh",
            "-c",
            "trap '' TERM INT; echo ready; while true; do sleep 0.1; done",
        ],
    );
    let started = Instant::now();
    signal(&child, "TERM");
    let out = finish(child);
    assert_eq!(out.status, 137, "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped at all"
    );
}

#[test]
fn a_second_interrupt_kills_at_once() {
    let ws = Workspace::new();
    let child = start_ready(
        &ws,
        &[
            "sh",
            "-c",
            "trap '' INT; echo ready; while true; do sleep 0.1; done",
        ],
    );
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    let out = finish(child);
    assert_eq!(out.status, 137, "{out:?}");
}

#[test]
fn the_time_limit_stops_the_command_with_124() {
    let ws = Workspace::new();
    let out = ws.run(&["--timeout", "2s", "sleep", "100"]);
    assert_eq!(out.status, 124, "{out:?}");
    assert!(out.stderr.contains("time limit"), "{out:?}");
}
