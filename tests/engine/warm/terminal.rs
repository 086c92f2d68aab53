//! A terminal that starts warm: a run on a terminal takes a container made
//! with one, sized before the command starts, whose terminal the command
//! finds as a cold run's (the command line typed into it leaves no trace),
//! and where Ctrl-C, resizes and the exit status work as on a cold one.

use super::{wait_for_warm, warm_args};
use crate::common::Workspace;
use crate::terminal::{Pty, PROMPT};

/// `sandbox run --warm ARGS` on a terminal of `rows` x `cols`, to its end;
/// what it showed and its status.
fn on_terminal(ws: &Workspace, args: &[&str], rows: u16, cols: u16) -> (String, u32) {
    let pty = Pty::spawn(&ws.run_command(&warm_args(args)), rows, cols);
    let text = pty.expect("end-of-run");
    (text, pty.wait())
}

#[test]
fn a_terminal_run_starts_warm_sized_and_with_the_terminal_of_a_cold_one() {
    let ws = Workspace::new();
    let probe = [
        "sh",
        "-c",
        "hostname; stty -g; stty size; stty -a; echo end-of-run; exit 7",
    ];
    // Nothing waits yet: this one is cold, and prepares the next.
    let (cold, status) = on_terminal(&ws, &probe, 33, 111);
    assert_eq!(status, 7, "{cold}");
    let waiting = wait_for_warm(&ws);
    let (warm, status) = on_terminal(&ws, &probe, 33, 111);
    assert_eq!(status, 7, "{warm}");
    let lines: Vec<&str> = warm.lines().map(str::trim).collect();
    assert!(
        !lines[0].is_empty() && waiting.starts_with(lines[0]),
        "ran in the waiting container {waiting}:\n{warm}"
    );
    // The line discipline is as the engine made it (echo, canonical mode,
    // ...), and the size the terminal's from the first byte on (which a
    // cold run's command may start before).
    let settings = cold.lines().nth(1).unwrap_or_default().trim();
    assert_eq!(lines[1], settings, "stty -g differs:\n{warm}\n{cold}");
    assert_eq!(lines[2], "33 111", "{warm}");
    assert!(
        warm.contains(" icanon ") && warm.contains(" echo "),
        "{warm}"
    );
    assert!(
        !warm.contains("sandbox-warm"),
        "nothing of the handoff shows"
    );
    assert!(ws.containers().is_empty(), "used once, then removed");
}

#[test]
fn a_warm_shell_takes_keystrokes_resizes_and_ctrl_c() {
    let ws = Workspace::new();
    let (_, status) = on_terminal(&ws, &["sh", "-c", "echo end-of-run"], 24, 80);
    assert_eq!(status, 0);
    let waiting = wait_for_warm(&ws);
    let mut pty = Pty::spawn(&ws.run_command(&warm_args(&["sh"])), 40, 120);
    pty.expect(PROMPT);
    let mark = pty.send("hostname; stty size\r");
    let text = pty.expect_after(mark, "40 120");
    let short = &waiting[..12];
    assert!(text[mark..].contains(short), "not the waiting one:\n{text}");

    crate::terminal::ctrl_c_stops_the_foreground_command_and_exit_passes_through(pty);
}

/// A line discipline acts on control characters (Ctrl-C, Ctrl-U, a carriage
/// return, ...): a command line holding one goes cold, and arrives intact.
#[test]
fn a_command_line_a_terminal_would_change_runs_cold_and_intact() {
    let ws = Workspace::new();
    on_terminal(&ws, &["sh", "-c", "echo end-of-run"], 24, 80);
    let waiting = wait_for_warm(&ws);
    let script = "printf '%s' \"$1\" | od -An -c; echo end-of-run";
    let (text, status) = on_terminal(&ws, &["sh", "-c", script, "x", "a\x03b\x15c\rd"], 24, 80);
    assert_eq!(status, 0, "{text}");
    let bytes: String = text.split_whitespace().collect();
    assert!(bytes.contains(r"a003b025c\rd"), "{text}");
    assert!(
        ws.warm_containers().contains(&waiting),
        "the waiting container was not used"
    );
}
