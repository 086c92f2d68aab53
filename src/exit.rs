//! How a run ends, and the exit status each ending maps to. The numbers follow
//! `docker run` (125, 126, 127, 128+N) and `timeout(1)` (124).

/// The command ran; how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this status (128+N when the engine saw it killed by
    /// signal N).
    Exited(i64),
    /// Sandbox stopped it, or never started it, on signal N: 128+N, as a
    /// shell reports a command a signal ended.
    Signalled(i64),
    /// It was stopped when the time limit passed.
    TimedOut,
}

/// Sandbox itself or the engine failed.
pub const FAILED: u8 = 125;
/// The time limit passed.
pub const TIMED_OUT: u8 = 124;

/// The command could not be invoked: 126 (not executable) or 127 (not found).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{}", match .code {
    127 => "the command was not found in the image",
    _ => "the command cannot be executed",
})]
pub struct CannotRun {
    pub code: u8,
}

/// The command, by the name it was given, could not be invoked: the line
/// says which and why, in sandbox's words rather than the engine's or
/// docker-init's (`run/cannot_run.rs`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct NotRunnable {
    pub command: String,
    /// 127 (not found) or 126 (found, but cannot be executed).
    pub code: u8,
}

impl NotRunnable {
    fn describe(&self) -> String {
        let command = &self.command;
        match (self.code, command.contains('/')) {
            (127, false) => format!(
                "{command}: not found in the image (exit 127) — check its spelling, or run it \
                 in an image that has it: --image IMAGE, or images.{command} in the configuration"
            ),
            (127, true) => format!(
                "{command}: no such file in the container, or its #! interpreter is missing \
                 (exit 127) — the workspace is at /work"
            ),
            (code, _) => format!(
                "{command}: cannot be executed: permission denied (exit {code}) — it is not \
                 executable, is a directory or is on a noexec mount: `chmod +x` it, or run it \
                 through its interpreter (`sh {command}`)"
            ),
        }
    }
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            // Statuses outside 0..=255 wrap like a shell's, but never to 0.
            Outcome::Exited(status) => match u8::try_from(status.rem_euclid(256)) {
                Ok(0) if status != 0 => 1,
                Ok(code) => code,
                Err(_) => FAILED,
            },
            Outcome::Signalled(signal) => Outcome::Exited(128 + signal).code(),
            Outcome::TimedOut => TIMED_OUT,
        }
    }
}

/// The exit status for an error: 126/127 when the command could not be
/// invoked, else 125.
pub fn error_code(error: &anyhow::Error) -> u8 {
    // anyhow finds a context value at any depth of the chain.
    match error.downcast_ref::<NotRunnable>() {
        Some(named) => named.code,
        None => error.downcast_ref::<CannotRun>().map_or(FAILED, |c| c.code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::anyhow;

    #[test]
    fn statuses_map_like_a_shell() {
        assert_eq!(Outcome::Exited(0).code(), 0);
        assert_eq!(Outcome::Exited(7).code(), 7);
        assert_eq!(Outcome::Exited(137).code(), 137);
        assert_eq!(Outcome::Exited(256).code(), 1, "never a false success");
        assert_eq!(Outcome::Exited(-1).code(), 255);
        assert_eq!(Outcome::TimedOut.code(), 124);
        assert_eq!(Outcome::Signalled(2).code(), 130);
        assert_eq!(Outcome::Signalled(15).code(), 143);
    }

    #[test]
    fn errors_map_to_125_unless_the_command_cannot_run() {
        assert_eq!(error_code(&anyhow!("engine down")), 125);
        let not_found = anyhow!("exec: not found")
            .context(CannotRun { code: 127 })
            .context("outer");
        assert_eq!(error_code(&not_found), 127);
        assert_eq!(
            error_code(&anyhow!("x").context(CannotRun { code: 126 })),
            126
        );
        let named = NotRunnable {
            command: "python".into(),
            code: 127,
        };
        assert_eq!(error_code(&anyhow!(named)), 127);
    }

    #[test]
    fn not_runnable_names_the_command_in_sandboxs_words() {
        let line = |command: &str, code| {
            let command = command.to_string();
            crate::ui::error_line(&anyhow!(NotRunnable { command, code }))
        };
        assert!(line("python", 127)
            .starts_with("sandbox: python: not found in the image (exit 127) — "));
        assert!(line("./run.sh", 127).contains("#! interpreter"));
        assert!(line("./run.sh", 126)
            .starts_with("sandbox: ./run.sh: cannot be executed: permission denied (exit 126) — "));
    }

    #[test]
    fn cannot_run_says_which() {
        assert_eq!(
            CannotRun { code: 127 }.to_string(),
            "the command was not found in the image"
        );
        assert_eq!(
            CannotRun { code: 126 }.to_string(),
            "the command cannot be executed"
        );
    }
}
