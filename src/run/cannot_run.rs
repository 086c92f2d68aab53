//! A command that cannot be invoked, said in sandbox's words.
//!
//! With `init: true` (the default) the container's first process is
//! docker-init (tini), which forks and execs the command. When that exec
//! fails, tini writes one line on stderr and the container exits 127 (not
//! found) or 126 (not executable), where docker run itself would have said
//! so (`docker: Error response from daemon: ... executable file not found`):
//!
//! ```text
//! [FATAL tini (7)] exec nosuch failed: No such file or directory
//! ```
//!
//! That line, and only it, becomes sandbox's own
//! ([`NotRunnable`]): when it is exactly the first thing on stderr (the
//! terminal's output, with a terminal), names the command as it was given,
//! gives the reason that matches the status, nothing at all follows it, and
//! the container then exits with that status. Any other output goes through
//! untouched and in order; bytes that might begin the line are held back
//! only until they cannot (or for [`HOLD`] at most), so a command's own
//! output is never lost, only, when it looks exactly like tini's line,
//! briefly delayed.
//!
//! Without an init the engine refuses the start instead, with its own
//! words; [`named`] puts those in sandbox's too.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::engine::{Output, OutputStream};
use crate::exit::{CannotRun, NotRunnable, Outcome};

/// How long bytes that may be tini's line are held back. tini writes its
/// line and exits at once; a command that prints those very bytes and then
/// goes on is shown them after this long.
const HOLD: Duration = Duration::from_secs(10);

/// What tini says after `failed: `, and the status it then exits with
/// (tini's `spawn`: ENOENT 127, EACCES 126).
const REASONS: [(&[u8], u8); 2] = [
    (b"No such file or directory", 127),
    (b"Permission denied", 126),
];

/// tini's line, held back until the run's status says what it was.
struct Held {
    bytes: Bytes,
    code: u8,
}

/// The other end of [`watch`]: decides, once the run has ended, whether the
/// line held back was tini's.
pub struct Verdict {
    held: Arc<Mutex<Option<Held>>>,
    command: String,
    tty: bool,
}

/// Watches the start of `output` for tini's line about `argv[0]`. With a
/// terminal, stdout and stderr are one stream, and the line ends in `\r\n`.
pub fn watch(output: OutputStream, argv: &[String], tty: bool) -> (OutputStream, Verdict) {
    watch_for(output, argv, tty, HOLD)
}

fn watch_for(
    output: OutputStream,
    argv: &[String],
    tty: bool,
    hold: Duration,
) -> (OutputStream, Verdict) {
    let command = argv.first().cloned().unwrap_or_default();
    let held = Arc::new(Mutex::new(None));
    let filter = Filter {
        inner: output,
        pending: VecDeque::new(),
        state: State::Deciding(Vec::new()),
        deadline: None,
        hold,
        command: command.clone().into_bytes(),
        tty,
        held: held.clone(),
    };
    let stream = futures_util::stream::unfold(filter, |mut filter| async move {
        let item = filter.next().await?;
        Some((item, filter))
    });
    let verdict = Verdict { held, command, tty };
    (Box::pin(stream), verdict)
}

impl Verdict {
    /// The run's result, with tini's line turned into [`NotRunnable`] when
    /// the status confirms it; otherwise the line held back is written out
    /// as it came, and the result stands.
    pub fn conclude(self, result: Result<Outcome>) -> Result<Outcome> {
        self.conclude_unless(result, false)
    }

    /// As [`Verdict::conclude`], unless the command is known to have run
    /// (`ran`: its output came through another way, the FIFOs): a line that
    /// looks like the init's is then the command's own.
    pub fn conclude_unless(self, result: Result<Outcome>, ran: bool) -> Result<Outcome> {
        let held = self.held.lock().map(|mut h| h.take()).unwrap_or(None);
        let Some(held) = held else {
            return result;
        };
        if let (Ok(Outcome::Exited(status)), false) = (&result, ran) {
            let status = *status;
            if status == i64::from(held.code) {
                return Err(anyhow::anyhow!(NotRunnable {
                    command: self.command,
                    code: held.code,
                }));
            }
        }
        let written = match self.tty {
            true => std::io::stdout().lock().write_all(&held.bytes),
            false => std::io::stderr().lock().write_all(&held.bytes),
        };
        if let Err(e) = written {
            tracing::debug!("cannot write the command's last line: {e}");
        }
        result
    }
}

/// The engine's refusal to start a command it cannot find or execute (no
/// init), in sandbox's words; any other error as it is.
pub fn named(error: anyhow::Error, argv: &[String]) -> anyhow::Error {
    match error.downcast_ref::<CannotRun>() {
        Some(&CannotRun { code }) => {
            tracing::info!("the engine's words: {error:#}");
            anyhow::anyhow!(NotRunnable {
                command: argv.first().cloned().unwrap_or_default(),
                code,
            })
        }
        None => error,
    }
}

enum State {
    /// Nothing has gone out yet; these watched bytes may begin tini's line.
    Deciding(Vec<u8>),
    /// tini's whole line, and nothing else, has come.
    Holding(Held),
    /// Everything goes through as it comes.
    Passing,
    /// The engine's stream has ended.
    Done,
}

struct Filter {
    inner: OutputStream,
    /// What goes out next, in order, before anything else is read.
    pending: VecDeque<Result<Output>>,
    state: State,
    /// When bytes held back go out regardless.
    deadline: Option<Instant>,
    hold: Duration,
    command: Vec<u8>,
    tty: bool,
    held: Arc<Mutex<Option<Held>>>,
}

impl Filter {
    async fn next(&mut self) -> Option<Result<Output>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            match self.state {
                State::Passing => return self.inner.next().await,
                State::Done => return None,
                State::Deciding(_) | State::Holding(_) => {}
            }
            let item = match self.deadline {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, self.inner.next()).await {
                        Ok(item) => item,
                        Err(_) => {
                            self.release();
                            continue;
                        }
                    }
                }
                None => self.inner.next().await,
            };
            match item {
                Some(Ok(chunk)) => self.take_in(chunk),
                Some(Err(e)) => {
                    self.release();
                    self.pending.push_back(Err(e));
                }
                None => self.end(),
            }
        }
    }

    fn take_in(&mut self, chunk: Output) {
        let watched = match (&chunk, self.tty) {
            (Output::Stdout(bytes), true) | (Output::Stderr(bytes), false) => Some(bytes.clone()),
            _ => None,
        };
        match (&mut self.state, watched) {
            (State::Deciding(buf), Some(bytes)) => {
                buf.extend_from_slice(&bytes);
                let hold = self.hold;
                self.deadline.get_or_insert_with(|| Instant::now() + hold);
                match classify(buf, &self.command) {
                    Class::Prefix => {}
                    Class::Line(code) => {
                        let bytes = Bytes::from(std::mem::take(buf));
                        self.state = State::Holding(Held { bytes, code });
                    }
                    Class::Other => self.release(),
                }
            }
            // Anything else first, or after the line: not tini's failure.
            _ => {
                self.release();
                self.pending.push_back(Ok(chunk));
            }
        }
    }

    /// Sends what was held back, and everything after it, as it came.
    fn release(&mut self) {
        let bytes = match std::mem::replace(&mut self.state, State::Passing) {
            State::Deciding(buf) => Bytes::from(buf),
            State::Holding(held) => held.bytes,
            State::Passing => Bytes::new(),
            State::Done => {
                self.state = State::Done;
                Bytes::new()
            }
        };
        self.deadline = None;
        if !bytes.is_empty() {
            self.pending.push_back(Ok(match self.tty {
                true => Output::Stdout(bytes),
                false => Output::Stderr(bytes),
            }));
        }
    }

    /// The stream ended: a whole line is left for the [`Verdict`]; bytes
    /// that only began one go out.
    fn end(&mut self) {
        if let State::Holding(_) = self.state {
            if let State::Holding(held) = std::mem::replace(&mut self.state, State::Done) {
                if let Ok(mut slot) = self.held.lock() {
                    *slot = Some(held);
                }
            }
            return;
        }
        self.release();
        self.state = State::Done;
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Class {
    /// Could still become tini's line.
    Prefix,
    /// Exactly tini's line, and the status it exits with.
    Line(u8),
    /// Not tini's line.
    Other,
}

/// Whether `buf` is, or begins, tini's line or the stdio shim's
/// (`pipes/shim.rs`), which says the same in its own prefix.
fn classify(buf: &[u8], command: &[u8]) -> Class {
    match (tini_line(buf, command), shim_line(buf, command)) {
        (Class::Other, class) | (class, Class::Other) => class,
        (Class::Line(code), _) | (_, Class::Line(code)) => Class::Line(code),
        _ => Class::Prefix,
    }
}

/// `[FATAL tini (PID)] exec COMMAND failed: REASON` and a line end.
fn tini_line(buf: &[u8], command: &[u8]) -> Class {
    let mut rest = buf;
    if let Some(class) = literal(&mut rest, b"[FATAL tini (") {
        return class;
    }
    // tini's PID: at most 10 digits.
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    match (digits, digits == rest.len()) {
        (11.., _) => return Class::Other,
        (_, true) => return Class::Prefix,
        (0, false) => return Class::Other,
        _ => {}
    }
    rest = &rest[digits..];
    if let Some(class) = literal(&mut rest, b")] exec ") {
        return class;
    }
    failed(rest, command)
}

/// `[sandbox-stdio] exec COMMAND failed: REASON` and a line end.
fn shim_line(buf: &[u8], command: &[u8]) -> Class {
    let mut rest = buf;
    if let Some(class) = literal(&mut rest, b"[sandbox-stdio] exec ") {
        return class;
    }
    failed(rest, command)
}

/// `COMMAND failed: REASON` and a line end, nothing after it.
fn failed(mut rest: &[u8], command: &[u8]) -> Class {
    for part in [command, b" failed: "] {
        if let Some(class) = literal(&mut rest, part) {
            return class;
        }
    }
    let mut code = None;
    for (reason, status) in REASONS {
        let mut after = rest;
        match literal(&mut after, reason) {
            None => {
                code = Some(status);
                rest = after;
                break;
            }
            Some(Class::Prefix) => return Class::Prefix,
            Some(_) => {}
        }
    }
    let Some(code) = code else {
        return Class::Other;
    };
    match rest {
        b"" | b"\r" => Class::Prefix,
        b"\n" | b"\r\n" => Class::Line(code),
        _ => Class::Other,
    }
}

/// Consumes `want` from the front of `rest`: `None` when it was all there,
/// `Prefix` when `rest` ended inside it, `Other` when they differ.
fn literal(rest: &mut &[u8], want: &[u8]) -> Option<Class> {
    let n = rest.len().min(want.len());
    if rest[..n] != want[..n] {
        return Some(Class::Other);
    }
    if n < want.len() {
        return Some(Class::Prefix);
    }
    *rest = &rest[n..];
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::anyhow;

    const LINE: &[u8] = b"[FATAL tini (7)] exec nosuch failed: No such file or directory\n";

    /// What the init (`tini`) or the stdio shim (`by`) says of a command
    /// it cannot execute is recognised exactly: not a part of it, not for
    /// another command, not with more after it, not for another reason.
    fn recognised_exactly(by: &str) {
        let line = format!("{by} exec nosuch failed: No such file or directory\n");
        let line = line.as_bytes();
        assert_eq!(classify(line, b"nosuch"), Class::Line(127));
        let denied = format!("{by} exec ./x failed: Permission denied\n");
        assert_eq!(classify(denied.as_bytes(), b"./x"), Class::Line(126));
        for n in 0..line.len() {
            assert_eq!(classify(&line[..n], b"nosuch"), Class::Prefix, "{n}");
        }
        assert_eq!(classify(line, b"other"), Class::Other, "another command");
        let mut more = line.to_vec();
        more.extend_from_slice(b"x");
        assert_eq!(classify(&more, b"nosuch"), Class::Other, "more after it");
        let odd = format!("{by} exec nosuch failed: Exec format error\n");
        assert_eq!(
            classify(odd.as_bytes(), b"nosuch"),
            Class::Other,
            "another reason"
        );
    }

    #[test]
    fn only_tinis_exact_line_about_the_command_is_recognised() {
        recognised_exactly("[FATAL tini (7)]");
        let denied = b"[FATAL tini (12)] exec ./x failed: Permission denied\r\n";
        assert_eq!(classify(denied, b"./x"), Class::Line(126));
        assert_eq!(classify(b"[FAIL] x\n", b"nosuch"), Class::Other);
        assert_eq!(classify(b"[FATAL tini ()]", b"nosuch"), Class::Other);
    }

    #[test]
    fn the_stdio_shims_line_is_recognised_as_tinis() {
        recognised_exactly("[sandbox-stdio]");
        assert_eq!(
            classify(b"[sandbox-stdio] nobody holds /x\n", b"x"),
            Class::Other
        );
    }

    fn stream(chunks: Vec<Output>) -> OutputStream {
        Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)))
    }

    /// Every chunk that came out, as (is stderr, bytes), merged by kind.
    async fn drain(output: OutputStream) -> Vec<(bool, Vec<u8>)> {
        let chunks: Vec<_> = output.collect().await;
        let mut merged: Vec<(bool, Vec<u8>)> = Vec::new();
        for chunk in chunks {
            let (is_err, bytes) = match chunk.expect("no error") {
                Output::Stdout(b) => (false, b),
                Output::Stderr(b) => (true, b),
            };
            match merged.last_mut() {
                Some((kind, all)) if *kind == is_err => all.extend_from_slice(&bytes),
                _ => merged.push((is_err, bytes.to_vec())),
            }
        }
        merged
    }

    fn run<T>(work: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(work)
    }

    fn argv(command: &str) -> Vec<String> {
        vec![command.to_string()]
    }

    #[test]
    fn tinis_line_in_pieces_becomes_sandboxs_own() {
        // tini writes its line in three writes: prefix, message, newline.
        let pieces = [&LINE[..17], &LINE[17..LINE.len() - 1], b"\n"];
        let chunks = pieces
            .iter()
            .map(|p| Output::Stderr(Bytes::copy_from_slice(p)))
            .collect();
        let (output, verdict) = watch(stream(chunks), &argv("nosuch"), false);
        assert!(run(drain(output)).is_empty(), "held back");
        let err = verdict.conclude(Ok(Outcome::Exited(127))).unwrap_err();
        assert_eq!(crate::exit::error_code(&err), 127);
        assert!(err
            .to_string()
            .starts_with("nosuch: not found in the image"));
    }

    #[test]
    fn the_line_stays_when_the_status_does_not_confirm_it() {
        for result in [
            Ok(Outcome::Exited(0)),
            Ok(Outcome::Exited(126)),
            Ok(Outcome::TimedOut),
            Err(anyhow!("lost")),
        ] {
            let chunks = vec![Output::Stderr(Bytes::from_static(LINE))];
            let (output, verdict) = watch(stream(chunks), &argv("nosuch"), false);
            assert!(run(drain(output)).is_empty());
            let expected = result.as_ref().map(|o| *o).map_err(|e| e.to_string());
            let concluded = verdict.conclude(result).map_err(|e| e.to_string());
            assert_eq!(concluded, expected, "the result stands");
        }
    }

    #[test]
    fn other_output_goes_through_whole_and_in_order() {
        let cases: Vec<Vec<Output>> = vec![
            // Output before the line: the command ran.
            vec![
                Output::Stdout(Bytes::from_static(b"hello\n")),
                Output::Stderr(Bytes::from_static(LINE)),
            ],
            // Output after it.
            vec![
                Output::Stderr(Bytes::from_static(LINE)),
                Output::Stderr(Bytes::from_static(b"and more\n")),
            ],
            vec![
                Output::Stderr(Bytes::from_static(LINE)),
                Output::Stdout(Bytes::from_static(b"out\n")),
            ],
            // A beginning that goes elsewhere, split anywhere.
            vec![
                Output::Stderr(Bytes::from_static(b"[FATAL ti")),
                Output::Stderr(Bytes::from_static(b"ny] no\n")),
            ],
            // Only a beginning, then the end.
            vec![Output::Stderr(Bytes::from_static(
                b"[FATAL tini (7)] exec ",
            ))],
        ];
        for chunks in cases {
            let expected: Vec<(bool, Vec<u8>)> = {
                let mut merged: Vec<(bool, Vec<u8>)> = Vec::new();
                for c in &chunks {
                    let (k, b) = match c {
                        Output::Stdout(b) => (false, b),
                        Output::Stderr(b) => (true, b),
                    };
                    match merged.last_mut() {
                        Some((kind, all)) if *kind == k => all.extend_from_slice(b),
                        _ => merged.push((k, b.to_vec())),
                    }
                }
                merged
            };
            let (output, verdict) = watch(stream(chunks), &argv("nosuch"), false);
            assert_eq!(run(drain(output)), expected);
            assert!(matches!(
                verdict.conclude(Ok(Outcome::Exited(127))),
                Ok(Outcome::Exited(127))
            ));
        }
    }

    #[test]
    fn a_line_that_never_ends_goes_out_after_the_hold() {
        let pending = futures_util::stream::pending::<Result<Output>>();
        let first = futures_util::stream::iter([Ok(Output::Stderr(Bytes::from_static(LINE)))]);
        let output: OutputStream = Box::pin(first.chain(pending));
        let hold = Duration::from_millis(50);
        let (mut output, _verdict) = watch_for(output, &argv("nosuch"), false, hold);
        let first = run(output.next());
        assert!(
            matches!(first, Some(Ok(Output::Stderr(b))) if b == LINE),
            "released after the hold"
        );
    }

    #[test]
    fn the_engines_refusal_is_named_too() {
        let refused = anyhow!("exec: \"nosuch\": executable file not found in $PATH")
            .context(CannotRun { code: 127 });
        let said = named(refused, &argv("nosuch"));
        assert_eq!(crate::exit::error_code(&said), 127);
        assert!(said.to_string().starts_with("nosuch: not found"));
        let other = named(anyhow!("engine gone"), &argv("nosuch"));
        assert_eq!(other.to_string(), "engine gone");
    }
}
