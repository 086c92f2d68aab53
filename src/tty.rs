//! The only file that touches terminal modes: raw mode for the duration of a
//! TTY run, restored on every way out (return, error, panic), and the size.

use std::io::{IsTerminal, Stdin};
use std::sync::{Mutex, Once};

use anyhow::{Context, Result};
use rustix::termios::{self, OptionalActions, Termios};

/// The terminal's original modes, for the panic hook.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);
static HOOK: Once = Once::new();

/// Puts the terminal on stdin in raw mode until dropped, so every keystroke
/// (Ctrl-C, Ctrl-D, Ctrl-Z included) reaches the program inside unchanged.
pub struct RawMode {
    original: Termios,
}

impl RawMode {
    /// Enters raw mode, or does nothing (`None`) when stdin is not a terminal.
    pub fn enter() -> Result<Option<RawMode>> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(None);
        }
        let original = termios::tcgetattr(&stdin).context("cannot read the terminal's modes")?;
        // The hook goes in before the terminal changes, so a panic at any later
        // point still restores it.
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore_saved();
                previous(info);
            }));
        });
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(original.clone());
        let mut raw = original.clone();
        raw.make_raw();
        set(&stdin, &raw).context("cannot switch the terminal to raw mode")?;
        Ok(Some(RawMode { original }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = set(&std::io::stdin(), &self.original);
        SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

fn restore_saved() {
    if let Some(original) = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = set(&std::io::stdin(), &original);
    }
}

fn set(stdin: &Stdin, modes: &Termios) -> rustix::io::Result<()> {
    // Drain: output already written is shown in the mode it was written for.
    termios::tcsetattr(stdin, OptionalActions::Drain, modes)
}

/// The terminal's size as (rows, columns), from stdout or else stdin.
pub fn size() -> Option<(u16, u16)> {
    let from = |size: rustix::io::Result<termios::Winsize>| {
        size.ok()
            .filter(|s| s.ws_row > 0 && s.ws_col > 0)
            .map(|s| (s.ws_row, s.ws_col))
    };
    from(termios::tcgetwinsize(std::io::stdout()))
        .or_else(|| from(termios::tcgetwinsize(std::io::stdin())))
}
