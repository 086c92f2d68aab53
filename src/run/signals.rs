//! The signals a run acts on: the ones that ask it to stop (forwarded to
//! the command) and the terminal's resizes.

use anyhow::{Context, Result};
use futures_util::FutureExt;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// The signals sandbox forwards or acts on.
pub struct Signals {
    pub stops: Stops,
    pub window: Signal,
}

/// The signals that ask a run to stop.
pub struct Stops {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

/// A signal that asks the run to stop; forwarded to the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Interrupt,
    Terminate,
    Hangup,
    Kill,
}

impl Stop {
    pub fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
            Stop::Hangup => "SIGHUP",
            Stop::Kill => "SIGKILL",
        }
    }

    pub fn number(self) -> i64 {
        match self {
            Stop::Interrupt => 2,
            Stop::Terminate => 15,
            Stop::Hangup => 1,
            Stop::Kill => 9,
        }
    }
}

impl Signals {
    pub fn new() -> Result<Signals> {
        let on = |kind| signal(kind).context("cannot install signal handlers");
        Ok(Signals {
            stops: Stops {
                interrupt: on(SignalKind::interrupt())?,
                terminate: on(SignalKind::terminate())?,
                hangup: on(SignalKind::hangup())?,
            },
            window: on(SignalKind::window_change())?,
        })
    }
}

impl Stops {
    /// The next stop signal.
    pub async fn stop(&mut self) -> Stop {
        tokio::select! {
            _ = self.interrupt.recv() => Stop::Interrupt,
            _ = self.terminate.recv() => Stop::Terminate,
            _ = self.hangup.recv() => Stop::Hangup,
        }
    }

    /// A stop signal that has already arrived, if any.
    pub fn pending(&mut self) -> Option<Stop> {
        self.stop().now_or_never()
    }
}
