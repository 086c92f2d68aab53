//! sandbox under a real pseudo-terminal, as a person uses it: a shell with
//! the right size, resizes, Ctrl-C and Ctrl-D reaching the program inside,
//! the exit status, and the terminal left as it was found.

use std::io::{Read, Write};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{Child, MasterPty};

use crate::common::{pty_size, spawn_on_pty, Workspace};

/// Generous: container starts are slow on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(20);

pub struct Pty {
    master: Box<dyn MasterPty + Send>,
    writer: Arc<Mutex<Box<dyn Write + Send>>>,
    child: Box<dyn Child + Send + Sync>,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    /// Runs `command` (program and arguments as a std Command holds them) on
    /// a new terminal of `rows` x `cols`.
    pub fn spawn(command: &Command, rows: u16, cols: u16) -> Pty {
        let (master, child) = spawn_on_pty(command, pty_size(rows, cols), "xterm");
        let mut reader = master.try_clone_reader().expect("pty reader");
        let writer = Arc::new(Mutex::new(master.take_writer().expect("pty writer")));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (sink, answer) = (Arc::clone(&seen), Arc::clone(&writer));
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                // busybox's line editor asks where the cursor is (ESC [6n)
                // and waits for a terminal's answer: give one.
                if buf[..n].windows(4).any(|w| w == b"\x1b[6n") {
                    let mut writer = answer.lock().unwrap();
                    let _ = writer.write_all(b"\x1b[1;1R");
                    let _ = writer.flush();
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            master,
            writer,
            child,
            seen,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal has shown `needle` after what was there
    /// when `since` was taken; returns everything shown so far.
    pub fn expect_after(&self, since: usize, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.text();
            if text.get(since..).is_some_and(|t| t.contains(needle)) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared; the terminal showed:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn expect(&self, needle: &str) -> String {
        self.expect_after(0, needle)
    }

    /// Types `keys` and returns where the screen was before them.
    pub fn send(&mut self, keys: &str) -> usize {
        let mark = self.text().len();
        let mut writer = self.writer.lock().unwrap();
        writer.write_all(keys.as_bytes()).unwrap();
        writer.flush().unwrap();
        mark
    }

    fn resize(&self, rows: u16, cols: u16) {
        self.master
            .resize(pty_size(rows, cols))
            .expect("resize the pty");
    }

    /// The exit status of the program on the terminal.
    pub fn wait(mut self) -> u32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                return status.exit_code();
            }
            assert!(
                Instant::now() < deadline,
                "still running; the terminal showed:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// busybox sh's prompt as root in /work.
pub const PROMPT: &str = "/work # ";

#[test]
fn a_shell_gets_a_terminal_its_size_and_ctrl_c() {
    let ws = Workspace::new();
    let mut pty = Pty::spawn(&ws.run_command(&["sh"]), 40, 120);
    pty.expect(PROMPT);

    let mark = pty.send("tty\r");
    pty.expect_after(mark, "/dev/pts/");
    let mark = pty.send("stty size\r");
    pty.expect_after(mark, "40 120");

    pty.resize(30, 100);
    // The resize travels as SIGWINCH to sandbox, then to the engine.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mark = pty.send("stty size\r");
        let text = pty.expect_after(mark, PROMPT);
        if text[mark..].contains("30 100") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resize never arrived:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    ctrl_c_stops_the_foreground_command_and_exit_passes_through(pty);
}

/// At the shell's prompt: Ctrl-C stops a `sleep` (and what would follow
/// it), the shell goes on, and its exit status is the run's.
pub(crate) fn ctrl_c_stops_the_foreground_command_and_exit_passes_through(mut pty: Pty) {
    let mark = pty.send("sleep 30; echo slept-through\r");
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    pty.send("\x03");
    pty.expect_after(mark, PROMPT);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "Ctrl-C did not stop sleep"
    );
    let mark = pty.send("echo after-ctrl-c\r");
    let text = pty.expect_after(mark, "after-ctrl-c\r\n");
    // The typed line holds the words too; the command's own line would not.
    assert!(!text.lines().any(|l| l.trim() == "slept-through"), "{text}");

    pty.send("exit 3\r");
    assert_eq!(pty.wait(), 3);
}

#[test]
fn ctrl_d_ends_the_shell_with_status_0() {
    let ws = Workspace::new();
    let mut pty = Pty::spawn(&ws.run_command(&["sh"]), 24, 80);
    pty.expect(PROMPT);
    pty.send("\x04");
    assert_eq!(pty.wait(), 0);
}

#[test]
fn the_terminal_is_left_as_it_was_found() {
    let ws = Workspace::new();
    let run = ws.run_command(&["sh", "-c", "echo inside; exit 5"]);
    let mut words = vec![run.get_program().to_string_lossy().into_owned()];
    words.extend(run.get_args().map(|a| a.to_string_lossy().into_owned()));
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect();
    // The terminal's settings before and after, as stty reads them.
    let script = format!(
        "stty -g; {}; echo status=$?; stty -g; stty -a | grep -o -- '-*icanon' | head -1",
        quoted.join(" ")
    );
    let mut outer = ws.command();
    outer = {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script]);
        for (key, value) in outer.get_envs() {
            if let Some(value) = value {
                cmd.env(key, value);
            }
        }
        if let Some(dir) = outer.get_current_dir() {
            cmd.current_dir(dir);
        }
        cmd
    };
    let pty = Pty::spawn(&outer, 24, 80);
    let text = pty.expect("icanon");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let status = lines.iter().position(|l| l.starts_with("status=")).unwrap();
    assert_eq!(lines[status], "status=5", "{text}");
    assert!(lines.contains(&"inside"), "{text}");
    assert_eq!(
        lines[0],
        lines[status + 1],
        "stty -g differs afterwards:\n{text}"
    );
    assert_eq!(
        lines[status + 2],
        "icanon",
        "canonical mode is back:\n{text}"
    );
}

#[test]
fn no_tty_means_no_terminal_inside() {
    let ws = Workspace::new();
    let pty = Pty::spawn(
        &ws.run_command(&["-T", "sh", "-c", "tty; echo done"]),
        24,
        80,
    );
    let text = pty.expect("done");
    assert!(text.contains("not a tty"), "{text}");
    assert_eq!(pty.wait(), 0);
}

#[test]
fn output_shows_as_soon_as_it_is_written() {
    let ws = Workspace::new();
    let pty = Pty::spawn(
        &ws.run_command(&["sh", "-c", "echo first; sleep 5; echo second"]),
        24,
        80,
    );
    let text = pty.expect("first");
    assert!(
        !text.contains("second"),
        "the first line waited for the second:\n{text}"
    );
    pty.expect("second");
    assert_eq!(pty.wait(), 0);
}

#[test]
fn control_bytes_in_a_terminals_output_arrive_intact() {
    let ws = Workspace::new();
    // Bytes 0, 1 and 2 at the start of a chunk look like the engine's frame
    // headers to a decoder that expects frames; a terminal's stream has none.
    let pty = Pty::spawn(
        &ws.run_command(&[
            "sh",
            "-c",
            "sleep 0.3; printf '\\001after-ctrl-a\\n'; sleep 0.3; printf '\\000\\002x\\n'; echo done",
        ]),
        24,
        80,
    );
    let text = pty.expect("done");
    assert!(text.contains("\u{1}after-ctrl-a\r\n"), "{text:?}");
    assert!(text.contains("\u{0}\u{2}x\r\n"), "{text:?}");
    assert_eq!(pty.wait(), 0);
}
