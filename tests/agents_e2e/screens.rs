//! The interactive screens of Claude Code and OpenCode on a real
//! pseudo-terminal: each draws its first screen and quits on its own keys;
//! the run then ends with the agent's status and leaves no container.

use std::io::{Read, Write};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::Child;

use crate::common::{model_api, pty_size, spawn_on_pty};
use crate::world::{key, resolve, World};

/// Start-up of the allow-list, the container and the agent on a loaded
/// machine.
const PATIENCE: Duration = Duration::from_secs(120);

struct Pty {
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    /// Runs `command` on a new 30x100 terminal.
    fn spawn(command: &Command) -> Pty {
        let (master, child) = spawn_on_pty(command, pty_size(30, 100), "xterm-256color");
        let mut reader = master.try_clone_reader().expect("pty reader");
        let writer = master.take_writer().expect("pty writer");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            let _master = master;
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            writer,
            child,
            seen,
        }
    }

    /// What the terminal showed so far, without escape sequences (a TUI
    /// moves the cursor between words): runs of text, one space between.
    fn text(&self) -> String {
        plain(&String::from_utf8_lossy(&self.seen.lock().unwrap()))
    }

    /// Waits until the terminal has shown one of `needles`, answering the
    /// terminal queries the agents send meanwhile.
    fn expect_any(&mut self, needles: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut answered = 0;
        loop {
            self.answer_queries(&mut answered);
            let text = self.text();
            if needles.iter().any(|n| text.contains(n)) {
                return text;
            }
            if let Some(status) = self.child.try_wait().expect("wait for sandbox") {
                panic!(
                    "ended ({}) before showing any of {needles:?}; the terminal showed:\n{text}",
                    status.exit_code()
                );
            }
            assert!(
                Instant::now() < deadline,
                "none of {needles:?} appeared; the terminal showed:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A terminal answers where its cursor is (ESC [6n) and what it is
    /// (ESC [c); a TUI may wait for either.
    fn answer_queries(&mut self, answered: &mut usize) {
        let raw = self.seen.lock().unwrap().clone();
        let queries = count(&raw, b"\x1b[6n") + count(&raw, b"\x1b[c");
        while *answered < queries {
            self.send("\x1b[1;1R\x1b[?62;c");
            *answered += 1;
        }
    }

    fn send(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Sends `keys` every few seconds until sandbox exits; its status.
    /// Both agents take Ctrl-C twice in a row to quit ("Press Ctrl-C again
    /// to exit"): each round sends it twice, 300 ms apart.
    fn quit_with(&mut self, keys: &str) -> u32 {
        let deadline = Instant::now() + PATIENCE;
        let mut next = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for sandbox") {
                return status.exit_code();
            }
            if Instant::now() >= next {
                self.send(keys);
                std::thread::sleep(Duration::from_millis(300));
                self.send(keys);
                next = Instant::now() + Duration::from_secs(3);
            }
            assert!(
                Instant::now() < deadline,
                "{keys:?} did not end the run; the terminal showed:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        // A failed test must not leave sandbox running: the workspace's
        // guard then removes what it made.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// `text` without CSI, OSC and two-byte escape sequences, each replaced by
/// a space, runs of spaces squeezed.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                match chars.next() {
                    Some('[') => {
                        for c in chars.by_ref() {
                            if ('@'..='~').contains(&c) {
                                break;
                            }
                        }
                    }
                    Some(']') | Some('P') | Some('_') => {
                        while let Some(c) = chars.next() {
                            if c == '\x07' || (c == '\x1b' && chars.peek() == Some(&'\\')) {
                                chars.next_if_eq(&'\\');
                                break;
                            }
                        }
                    }
                    Some('(') | Some(')') => {
                        chars.next();
                    }
                    _ => {}
                }
                out.push(' ');
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn claude_shows_its_first_screen_and_quits_on_ctrl_c() {
    let world = World::new("claude");
    let key = key("sk-ant", "claude-screen");
    let ca = model_api().ca();
    let trusted = format!("NODE_EXTRA_CA_CERTS={}", world.trust_stub());
    let api = resolve("api.anthropic.com");
    let login = resolve("platform.claude.com");
    let env = [
        ("ANTHROPIC_API_KEY", key.as_str()),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
    ];
    let args = [
        "--resolve",
        &api,
        "--resolve",
        &login,
        "-e",
        &trusted,
        "claude",
    ];
    let mut pty = Pty::spawn(&world.sandbox(&env, &args));
    // A first run: the welcome, the connectivity check (through the proxy,
    // of the API's name and its login's), then the choice of a theme.
    pty.expect_any(&["Welcome to Claude Code"]);
    let shown = pty.expect_any(&["theme", "Unable to connect"]);
    assert!(!shown.contains("Unable to connect"), "{shown}");
    let status = pty.quit_with("\x03");
    // Claude Code leaves its onboarding with 1; never sandbox's own 125.
    assert!(
        [0, 1, 130].contains(&status),
        "Ctrl-C ended claude with {status}:\n{}",
        pty.text()
    );
    drop(pty);
    assert_eq!(world.ws.containers(), Vec::<String>::new());
}

#[test]
fn opencode_shows_its_first_screen_and_quits_on_ctrl_c() {
    let world = World::new("opencode");
    let key = key("sk-openai", "opencode-screen");
    let config = format!(
        "OPENCODE_CONFIG_CONTENT={}",
        crate::prompts::openai_compatible_provider()
    );
    let models = resolve("models.test");
    let allowed = format!("models.test:{}", model_api().http);
    let args = [
        "--resolve",
        &models,
        "--allow-host",
        &allowed,
        "-e",
        &config,
        "opencode",
    ];
    let mut pty = Pty::spawn(&world.sandbox(&[("OPENAI_API_KEY", key.as_str())], &args));
    pty.expect_any(&["Ask anything"]);
    pty.expect_any(&["Stub model"]);
    // What is typed shows in its prompt; Ctrl-C clears it, then quits.
    pty.send("hello");
    pty.expect_any(&["hello"]);
    let status = pty.quit_with("\x03");
    // OpenCode 1.18.33's runtime (Bun) now and then dies of SIGILL as it
    // exits (132 = 128 + 4, passed through as any signal is); never
    // sandbox's own 125, and never a run left going.
    assert!(
        [0, 130, 132].contains(&status),
        "Ctrl-C ended opencode with {status}:\n{}",
        pty.text()
    );
    drop(pty);
    assert_eq!(world.ws.containers(), Vec::<String>::new());
}
