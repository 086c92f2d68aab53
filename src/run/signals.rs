//! The signals a run acts on: the ones that ask it to stop (forwarded to
//! the command, or ending a wait on the engine) and the terminal's resizes.

use std::future::Future;

use anyhow::{anyhow, Context, Result};
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

/// A stop signal came while sandbox waited on the engine: the run ends with
/// that signal's status (`run` turns this error into the outcome once the
/// container is gone).
#[derive(Debug, thiserror::Error)]
#[error("stopped by {} while waiting for the engine", .0.name())]
pub struct Stopped(pub Stop);

fn on(kind: SignalKind) -> Result<Signal> {
    signal(kind).context("cannot install signal handlers")
}

impl Signals {
    pub fn new() -> Result<Signals> {
        Ok(Signals {
            stops: Stops::new()?,
            window: on(SignalKind::window_change())?,
        })
    }
}

impl Stops {
    /// Listens for stop signals from now on: one that came before is
    /// another listener's.
    pub fn new() -> Result<Stops> {
        Ok(Stops {
            interrupt: on(SignalKind::interrupt())?,
            terminate: on(SignalKind::terminate())?,
            hangup: on(SignalKind::hangup())?,
        })
    }

    /// `call` to the engine, unless a stop signal comes first: then the
    /// call is abandoned and the error is [`Stopped`].
    pub async fn race<T>(&mut self, call: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            result = call => result,
            signal = self.stop() => Err(anyhow!(Stopped(signal))),
        }
    }

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
