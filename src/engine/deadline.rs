//! How long sandbox waits for the engine. bollard's own timeout (two minutes
//! for every request) is the wrong rule both ways: too long for a call a
//! healthy engine answers in milliseconds, too short for an upload it cannot
//! end sooner. So each call says what it waits for:
//!
//! - a short call (ping, create, start, kill, inspect, list, remove) must
//!   be answered within [`ANSWER`] ([`PING`] for the first one);
//! - a stream must keep moving: a pull's next event, a download's next
//!   chunk, an upload's next read within an interval of its own, however
//!   long the whole takes;
//! - the command's own pace is not the engine's: the wait for its exit and
//!   its output have no deadline here; the supervise loop races them
//!   against signals and the time limit.
//!
//! Once a call has gone unanswered, the engine is *silent*: every later call
//! gets [`ENDING`] until one is answered, so a run that is ending does not
//! wait twice for an engine that has stopped answering.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A call a healthy engine answers at once, even on a loaded machine.
pub const ANSWER: Duration = Duration::from_secs(30);
/// The first call, which only the engine's HTTP server has to answer.
pub const PING: Duration = Duration::from_secs(10);
/// What a run that is ending (a signal, the time limit) gives the engine,
/// and every call once the engine has been silent: enough for one that is
/// merely slow, short enough that Ctrl-C ends a run within seconds.
pub const ENDING: Duration = Duration::from_secs(2);
/// The longest a pull may go without a progress event.
pub const PULL_STALL: Duration = Duration::from_secs(120);

/// The engine did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error(
    "the engine did not answer within {} — is it overloaded or stopped? \
     `docker info` should answer at once; restart the engine if it does not",
    humantime::format_duration(*.waited)
)]
pub struct NoAnswer {
    pub waited: Duration,
}

/// Whether the engine has gone silent, shared by every call of one
/// connection.
#[derive(Debug, Default)]
pub struct Silence(AtomicBool);

impl Silence {
    pub fn is_silent(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The deadline for a call that would get `limit` from an engine that
    /// answers.
    pub fn limit(&self, limit: Duration) -> Duration {
        match self.is_silent() {
            true => limit.min(ENDING),
            false => limit,
        }
    }

    /// Runs `call` within `limit` (or [`ENDING`] while silent).
    pub async fn within<T>(
        &self,
        limit: Duration,
        call: impl Future<Output = T>,
    ) -> Result<T, NoAnswer> {
        let waited = self.limit(limit);
        match tokio::time::timeout(waited, call).await {
            Ok(answer) => {
                self.answered();
                Ok(answer)
            }
            Err(_) => Err(self.unanswered(waited)),
        }
    }

    /// The engine answered: it is not silent (any more).
    pub fn answered(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    /// The engine left a call unanswered for `waited`.
    pub fn unanswered(&self, waited: Duration) -> NoAnswer {
        self.0.store(true, Ordering::Relaxed);
        NoAnswer { waited }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(20);

    #[tokio::test]
    async fn an_unanswered_call_makes_the_next_ones_short() {
        let silence = Silence::default();
        assert_eq!(silence.limit(ANSWER), ANSWER);
        let e = silence
            .within(SHORT, std::future::pending::<()>())
            .await
            .unwrap_err();
        assert_eq!(e.waited, SHORT);
        assert!(
            e.to_string()
                .starts_with("the engine did not answer within 20ms — "),
            "{e}"
        );
        assert!(silence.is_silent());
        assert_eq!(silence.limit(ANSWER), ENDING);
        // An answer ends the silence.
        assert_eq!(silence.within(ANSWER, async { 7 }).await.unwrap(), 7);
        assert!(!silence.is_silent());
        assert_eq!(silence.limit(ANSWER), ANSWER);
    }
}
