//! A command on a real pseudo-terminal, for the tests of terminal use.

use std::process::Command;

use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};

/// A terminal of `rows` x `cols`.
pub fn pty_size(rows: u16, cols: u16) -> PtySize {
    PtySize {
        rows,
        cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}

/// Starts `command` (program, arguments, environment and directory as a std
/// Command holds them, and nothing else of this process's environment) on a
/// new terminal of `size`, with TERM set to `term`. The master end is the
/// caller's to read, write and resize.
pub fn spawn_on_pty(
    command: &Command,
    size: PtySize,
    term: &str,
) -> (Box<dyn MasterPty + Send>, Box<dyn Child + Send + Sync>) {
    let pair = native_pty_system()
        .openpty(size)
        .expect("open a pseudo-terminal");
    let mut builder = CommandBuilder::new(command.get_program());
    builder.args(command.get_args());
    builder.env_clear();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            builder.env(key, value);
        }
    }
    builder.env("TERM", term);
    if let Some(dir) = command.get_current_dir() {
        builder.cwd(dir);
    }
    let child = pair.slave.spawn_command(builder).expect("spawn on the pty");
    drop(pair.slave);
    (pair.master, child)
}
