//! The `run` tool: one command in a fresh container, as `sandbox run` in
//! the server's workspace would run it.
//!
//! Each call is a child process, `sandbox -q run -w WORKSPACE -- ARGV`, of
//! this same binary: it reads the configuration, the project file, the env
//! filter and the network policy exactly as a run typed in a shell does,
//! warm starts included, and it owns its container's removal on every way
//! out (its watcher removes it even if the child is killed). A crash there
//! is one failed call, not a dead server, and the server's memory stays
//! its own. The child never sees the server's stdin, which carries MCP.
//!
//! Stopping one (a cancelled call, the server shutting down) is a signal to
//! the child, as Ctrl-C would be: SIGTERM, which `sandbox run` forwards to
//! the command and turns into SIGKILL after 5 seconds, then removes the
//! container. Never a second SIGTERM: `sandbox run` would take it as "now"
//! and leave the removal to its watcher. SIGKILL only if the child has not
//! ended long after (its watcher then removes the container).

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolResult, ContentBlock, ErrorData, ProgressNotificationParam, ProgressToken,
};
use rmcp::schemars::JsonSchema;
use rmcp::service::RequestContext;
use rmcp::RoleServer;
use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use super::output::{Capture, Captured};
use super::{FAILED, STOPPED, TIMED_OUT};
use crate::mcp::workspace::Workspace;

/// How long a child has after SIGTERM before SIGKILL: `sandbox run`'s own
/// 5 seconds before it kills the command, and the removal after, on a busy
/// engine.
const ESCALATE: Duration = Duration::from_secs(30);
/// How often a long call reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long output may still arrive once the child has exited.
const DRAIN: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct RunParams {
    /// What to run. An array of words runs as is, without a shell
    /// (["python3", "-c", "print(1)"]); its first word also picks the image
    /// from the configuration's image map. A single string runs with
    /// `sh -c` ("make test 2>&1 | tail -20"); its first word picks the image
    /// when the map names it.
    pub command: CommandLine,
    /// Text for the command's standard input. Without it, the command reads
    /// end-of-file at once.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Stop the command after this many seconds (the call then fails with a
    /// time-limit error carrying the output so far). Default and most: the
    /// configuration's limit, 30 minutes unless changed.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub timeout_seconds: Option<u64>,
    /// Run in this image instead of the one the configuration maps the
    /// command to (an image present on the engine, e.g. "python:3.12-slim").
    #[serde(default)]
    pub image: Option<String>,
}

/// A command line: words, or one string for `sh -c`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(untagged)]
pub enum CommandLine {
    Words(Vec<String>),
    Shell(String),
}

/// What `run` returns.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct RunResult {
    /// The command's exit status (126: cannot be executed, 127: not found,
    /// 128+N: killed by signal N, 137 also when out of memory).
    pub exit_code: i32,
    /// Standard output; when longer than the server's cap, its start and
    /// end with a marker between them.
    pub stdout: String,
    pub stderr: String,
    /// Bytes written to each stream in all.
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// Whether either stream was cut to the cap.
    pub truncated: bool,
    pub duration_ms: u64,
}

/// A call's command, checked: the words to run and the image to ask for.
#[derive(Debug, PartialEq)]
struct Invocation {
    argv: Vec<String>,
    image: Option<String>,
    timeout: Option<Duration>,
}

/// Why the child was told to stop.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ending {
    Cancelled,
    ShuttingDown,
}

pub async fn run(
    workspace: &Workspace,
    max_output: usize,
    params: RunParams,
    context: RequestContext<RoleServer>,
    stopping: &CancellationToken,
) -> Result<CallToolResult, ErrorData> {
    let config = workspace.config().map_err(refused)?;
    let invocation = invocation(
        params.command,
        params.image,
        params.timeout_seconds,
        &config,
    )?;
    let limit = invocation.timeout.or(config.container.timeout);
    let started = Instant::now();
    let mut child = sandbox_run(workspace, &invocation, params.stdin.is_some())
        .spawn()
        .map_err(|e| ErrorData::internal_error(format!("cannot start sandbox run: {e}"), None))?;
    if let (Some(mut pipe), Some(text)) = (child.stdin.take(), params.stdin) {
        tokio::spawn(async move {
            // A command that does not read its input closes the pipe: fine.
            let _ = pipe.write_all(text.as_bytes()).await;
        });
    }
    let mut stdout = Stream::read(child.stdout.take(), max_output);
    let mut stderr = Stream::read(child.stderr.take(), max_output);
    let watched = Watched {
        context: &context,
        stopping,
        started,
        output: [&stdout, &stderr],
    };
    let (status, ending) = watched.until_exit(&mut child).await;
    let status = status.map_err(|e| {
        ErrorData::internal_error(format!("cannot wait for sandbox run: {e}"), None)
    })?;
    let elapsed = started.elapsed();
    // A process the command left behind may hold the pipes open: what came
    // so far is the output.
    let _ = tokio::time::timeout(DRAIN, stdout.done()).await;
    let _ = tokio::time::timeout(DRAIN, stderr.done()).await;
    let last_line = stderr.last_line();
    let result = Ran {
        code: status.code(),
        stdout: stdout.finish(),
        stderr: stderr.finish(),
        elapsed,
    };
    let timed_out = limit.is_some_and(|limit| elapsed >= limit);
    conclude(result, ending, timed_out, last_line.as_deref(), limit)
}

/// `sandbox -q run -w WORKSPACE [--image=I] [--timeout=Ns] -- ARGV`, its
/// output piped, its stdin piped only when the call gives one (else
/// `/dev/null`: never the server's, which carries MCP).
fn sandbox_run(
    workspace: &Workspace,
    invocation: &Invocation,
    has_stdin: bool,
) -> tokio::process::Command {
    let mut command = workspace.run_command();
    if let Some(image) = &invocation.image {
        command.arg(format!("--image={image}"));
    }
    if let Some(timeout) = invocation.timeout {
        command.arg(format!("--timeout={}s", timeout.as_secs()));
    }
    // `--`: whatever the words are, none is a flag of sandbox's.
    command.arg("--").args(&invocation.argv);
    let stdin = match has_stdin {
        true => Stdio::piped(),
        false => Stdio::null(),
    };
    command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Ctrl-C at the server's terminal is the server's: it signals each
        // run once itself (a second signal would have `sandbox run` leave
        // its container to the watcher).
        .process_group(0);
    command
}

/// A running child and what may end it early: the client cancelling the
/// call, the server stopping. Meanwhile, progress for the client.
struct Watched<'a> {
    context: &'a RequestContext<RoleServer>,
    stopping: &'a CancellationToken,
    started: Instant,
    output: [&'a Stream; 2],
}

impl Watched<'_> {
    /// Waits for `child` to exit, signalling it when the call must stop:
    /// SIGTERM, and SIGKILL [`ESCALATE`] later if it is still there.
    async fn until_exit(
        &self,
        child: &mut tokio::process::Child,
    ) -> (std::io::Result<std::process::ExitStatus>, Option<Ending>) {
        let token = self.context.meta.get_progress_token();
        let now = tokio::time::Instant::now;
        let mut ticker = tokio::time::interval_at(now() + PROGRESS_EVERY, PROGRESS_EVERY);
        let mut ending = None;
        // Sent in turn once the call must stop, ESCALATE apart.
        let mut signals = [Signal::TERM, Signal::KILL].into_iter().peekable();
        let mut signal_at = now();
        loop {
            tokio::select! {
                status = child.wait() => return (status, ending),
                _ = self.context.ct.cancelled(), if ending.is_none() => {
                    ending = Some(Ending::Cancelled);
                    signal_at = now();
                }
                _ = self.stopping.cancelled(), if ending.is_none() => {
                    ending = Some(Ending::ShuttingDown);
                    signal_at = now();
                }
                _ = sleep_until(signal_at), if ending.is_some() && signals.peek().is_some() => {
                    let pid = child.id().and_then(|id| Pid::from_raw(id as i32));
                    if let (Some(signal), Some(pid)) = (signals.next(), pid) {
                        tracing::debug!(pid = pid.as_raw_nonzero().get(), ?signal, "stopping a run");
                        let _ = rustix::process::kill_process(pid, signal);
                    }
                    signal_at = now() + ESCALATE;
                }
                _ = ticker.tick(), if token.is_some() => {
                    if let Some(token) = &token {
                        self.report(token).await;
                    }
                }
            }
        }
    }

    /// A progress notification: how long the command has run, how much it
    /// has written.
    async fn report(&self, token: &ProgressToken) {
        let secs = self.started.elapsed().as_secs_f64();
        let [stdout, stderr] = self.output;
        let message = format!(
            "running for {secs:.0}s; {} bytes on stdout, {} on stderr",
            stdout.bytes(),
            stderr.bytes()
        );
        let param = ProgressNotificationParam::new(token.clone(), secs).with_message(message);
        // A client that went away hears nothing; the call goes on to its end.
        let _ = self.context.peer.notify_progress(param).await;
    }
}

/// The command, image and time limit a call asks for, or why they cannot
/// be run. A shell string's first word picks the image when the image map
/// names it, as the first of an array of words does (`sh` otherwise).
fn invocation(
    command: CommandLine,
    image: Option<String>,
    timeout_seconds: Option<u64>,
    config: &crate::config::Config,
) -> Result<Invocation, ErrorData> {
    let argv = match command {
        CommandLine::Words(words) => words,
        CommandLine::Shell(line) => {
            vec!["sh".to_string(), "-c".to_string(), line]
        }
    };
    let first = argv.first().map(String::as_str).unwrap_or("");
    if first.is_empty() || (argv[0] == "sh" && argv.get(2).is_some_and(|l| l.trim().is_empty())) {
        return Err(ErrorData::invalid_params("the command is empty", None));
    }
    if argv.iter().any(|w| w.contains('\0')) {
        return Err(ErrorData::invalid_params(
            "the command holds a NUL byte, which no command line can carry",
            None,
        ));
    }
    if image
        .as_deref()
        .is_some_and(|i| i.trim().is_empty() || i.contains('\0'))
    {
        return Err(ErrorData::invalid_params("the image name is empty", None));
    }
    let timeout = match timeout_seconds {
        Some(0) => {
            return Err(ErrorData::invalid_params(
                "timeout_seconds must be at least 1",
                None,
            ))
        }
        Some(secs) => Some(Duration::from_secs(secs)),
        None => None,
    };
    // The caller may shorten the workspace's limit, never lengthen it: the
    // configuration and the project file set it, not the model.
    let timeout = match (timeout, config.container.timeout.filter(|t| !t.is_zero())) {
        (Some(asked), Some(limit)) => Some(asked.min(limit)),
        (asked, _) => asked,
    };
    let image = image.or_else(|| shell_image(&argv, config));
    Ok(Invocation {
        argv,
        image,
        timeout,
    })
}

/// For `sh -c LINE`: the image the map gives LINE's first word, if it names
/// that word (past `NAME=value` assignments). Otherwise `sandbox run`
/// resolves `sh` as usual.
fn shell_image(argv: &[String], config: &crate::config::Config) -> Option<String> {
    let [sh, dash_c, line] = argv else {
        return None;
    };
    if sh != "sh" || dash_c != "-c" {
        return None;
    }
    let words = shell_words::split(line).ok()?;
    let first = words.iter().find(|w| !is_assignment(w))?;
    let name = first.rsplit('/').next().unwrap_or(first);
    config.images.get(name).cloned()
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// How a child ended, with its output.
struct Ran {
    code: Option<i32>,
    stdout: Captured,
    stderr: Captured,
    elapsed: Duration,
}

impl Ran {
    fn result(&self, exit_code: i32) -> RunResult {
        RunResult {
            exit_code,
            stdout: self.stdout.text.clone(),
            stderr: self.stderr.text.clone(),
            stdout_bytes: self.stdout.total,
            stderr_bytes: self.stderr.total,
            truncated: self.stdout.cut || self.stderr.cut,
            duration_ms: self.elapsed.as_millis() as u64,
        }
    }
}

/// The call's answer: the command's result, or the one error that says why
/// there is none. sandbox's own failures are its exit status 125 with its
/// one-line error last on stderr; a time limit, 124 once the limit passed.
fn conclude(
    ran: Ran,
    ending: Option<Ending>,
    timed_out: bool,
    last_line: Option<&str>,
    limit: Option<Duration>,
) -> Result<CallToolResult, ErrorData> {
    let data = |ran: &Ran, code: i32| serde_json::to_value(ran.result(code)).ok();
    match (ending, ran.code) {
        (Some(ending), code) => {
            let why = match ending {
                Ending::Cancelled => "the call was cancelled",
                Ending::ShuttingDown => "the server is shutting down",
            };
            let data = code.and_then(|c| data(&ran, c));
            Err(ErrorData::new(
                STOPPED,
                format!("{why}: the command was stopped and its container removed"),
                data,
            ))
        }
        (None, None) => Err(ErrorData::internal_error(
            "sandbox run was killed by a signal: its container is removed by its watcher",
            None,
        )),
        (None, Some(124)) if timed_out => {
            let limit = limit
                .map(|l| humantime::format_duration(l).to_string())
                .unwrap_or_default();
            Err(ErrorData::new(
                TIMED_OUT,
                format!("the command reached the time limit of {limit} and was stopped (exit 124); pass a larger timeout_seconds if it needs longer"),
                data(&ran, 124),
            ))
        }
        (None, Some(125)) if last_line.is_some_and(|l| l.starts_with("sandbox: ")) => {
            Err(ErrorData::new(
                FAILED,
                last_line.unwrap_or_default().to_string(),
                data(&ran, 125),
            ))
        }
        (None, Some(code)) => {
            let result = ran.result(code);
            let text = render(&result);
            let structured = serde_json::to_value(&result)
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
            let mut answer = CallToolResult::success(vec![ContentBlock::text(text)]);
            answer.structured_content = Some(structured);
            Ok(answer)
        }
    }
}

/// The result as the model reads it.
fn render(result: &RunResult) -> String {
    let mut text = format!(
        "exit status {} after {:.2}s",
        result.exit_code,
        result.duration_ms as f64 / 1000.0
    );
    for (name, output) in [("stdout", &result.stdout), ("stderr", &result.stderr)] {
        if !output.is_empty() {
            text.push_str(&format!("\n\n[{name}]\n{output}"));
        }
    }
    if result.stdout.is_empty() && result.stderr.is_empty() {
        text.push_str(" (no output)");
    }
    text
}

/// Sandbox refused the call before anything ran: its error line.
fn refused(error: anyhow::Error) -> ErrorData {
    ErrorData::new(FAILED, crate::ui::error_line(&error), None)
}

/// One of the child's output streams, read to its end into a capture.
struct Stream {
    capture: Arc<Mutex<Capture>>,
    seen: Arc<AtomicU64>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl Stream {
    fn read(pipe: Option<impl AsyncRead + Unpin + Send + 'static>, cap: usize) -> Stream {
        let capture = Arc::new(Mutex::new(Capture::new(cap)));
        let seen = Arc::new(AtomicU64::new(0));
        let reader = pipe.map(|mut pipe| {
            let (capture, seen) = (capture.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                    seen.fetch_add(n as u64, Ordering::Relaxed);
                    if let Ok(mut capture) = capture.lock() {
                        capture.push(&buf[..n]);
                    }
                }
            })
        });
        Stream {
            capture,
            seen,
            reader,
        }
    }

    fn bytes(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    /// Waits for the end of the stream.
    async fn done(&mut self) {
        if let Some(reader) = &mut self.reader {
            let _ = reader.await;
            self.reader = None;
        }
    }

    fn last_line(&self) -> Option<String> {
        self.capture.lock().ok()?.last_line()
    }

    fn finish(self) -> Captured {
        if let Some(reader) = self.reader {
            reader.abort();
        }
        let capture = std::mem::replace(
            &mut *self.capture.lock().unwrap_or_else(|p| p.into_inner()),
            Capture::new(0),
        );
        capture.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn words(words: &[&str]) -> CommandLine {
        CommandLine::Words(words.iter().map(|w| w.to_string()).collect())
    }

    fn config() -> Config {
        let mut config = Config::default();
        config.images.insert("python3".into(), "py:1".into());
        config
    }

    #[test]
    fn words_run_as_given_and_a_string_through_sh() {
        let asked = invocation(words(&["ls", "-la"]), None, Some(5), &config()).unwrap();
        assert_eq!(asked.argv, ["ls", "-la"]);
        assert_eq!(
            (asked.image, asked.timeout),
            (None, Some(Duration::from_secs(5)))
        );
        let asked =
            invocation(CommandLine::Shell("ls | wc".into()), None, None, &config()).unwrap();
        assert_eq!(asked.argv, ["sh", "-c", "ls | wc"]);
    }

    #[test]
    fn a_call_may_shorten_the_time_limit_but_never_lengthen_it() {
        let mut config = config();
        config.container.timeout = Some(Duration::from_secs(60));
        let asked = |secs| invocation(words(&["true"]), None, Some(secs), &config).unwrap();
        assert_eq!(asked(5).timeout, Some(Duration::from_secs(5)));
        assert_eq!(asked(u64::MAX).timeout, Some(Duration::from_secs(60)));
        config.container.timeout = None;
        let unbounded = invocation(words(&["true"]), None, Some(7), &config).unwrap();
        assert_eq!(unbounded.timeout, Some(Duration::from_secs(7)));
    }

    #[test]
    fn a_strings_first_word_picks_its_image_when_the_map_names_it() {
        let line = |l: &str| invocation(CommandLine::Shell(l.into()), None, None, &config());
        assert_eq!(
            line("python3 x.py | head").unwrap().image.as_deref(),
            Some("py:1")
        );
        let assigned = line("PYTHONPATH=. /usr/bin/python3 -m t").unwrap();
        assert_eq!(assigned.image.as_deref(), Some("py:1"));
        // Not named: `sandbox run` resolves `sh`, as for `sandbox run sh -c`.
        assert_eq!(line("make test").unwrap().image, None);
        // The caller's image wins.
        let chosen = invocation(
            CommandLine::Shell("python3".into()),
            Some("mine".into()),
            None,
            &config(),
        );
        assert_eq!(chosen.unwrap().image.as_deref(), Some("mine"));
    }

    #[test]
    fn empty_or_unrunnable_commands_are_bad_arguments() {
        for command in [
            words(&[]),
            words(&[""]),
            CommandLine::Shell(" ".into()),
            words(&["a\0b"]),
        ] {
            let err = invocation(command, None, None, &config()).unwrap_err();
            assert_eq!(err.code, ErrorData::invalid_params("", None).code);
        }
        assert!(invocation(words(&["true"]), None, Some(0), &config()).is_err());
        assert!(invocation(words(&["true"]), Some(" ".into()), None, &config()).is_err());
    }

    fn ran(code: Option<i32>, stderr: &str) -> Ran {
        let mut capture = Capture::new(1024);
        capture.push(stderr.as_bytes());
        Ran {
            code,
            stdout: Capture::new(1024).finish(),
            stderr: capture.finish(),
            elapsed: Duration::from_secs(2),
        }
    }

    fn conclude_on(
        code: Option<i32>,
        stderr: &str,
        ending: Option<Ending>,
        timed_out: bool,
    ) -> Result<CallToolResult, ErrorData> {
        let last = stderr.trim_end().rsplit('\n').next().map(str::to_string);
        conclude(
            ran(code, stderr),
            ending,
            timed_out,
            last.as_deref(),
            Some(Duration::from_secs(1)),
        )
    }

    #[test]
    fn exit_statuses_are_results_and_sandboxs_failures_errors() {
        let ok = conclude_on(Some(3), "oops\n", None, false).unwrap();
        assert_eq!(ok.structured_content.unwrap()["exit_code"], 3);
        // The command's own 125 and 124 are its results.
        assert!(conclude_on(Some(125), "mine\n", None, false).is_ok());
        assert!(conclude_on(Some(124), "", None, false).is_ok());
        let failed =
            conclude_on(Some(125), "x\nsandbox: the engine is down\n", None, false).unwrap_err();
        assert_eq!(
            (failed.code, failed.message.as_ref()),
            (FAILED, "sandbox: the engine is down")
        );
        let timed = conclude_on(Some(124), "", None, true).unwrap_err();
        assert_eq!(timed.code, TIMED_OUT);
        assert!(
            timed.message.contains("time limit of 1s"),
            "{}",
            timed.message
        );
        let stopped = conclude_on(Some(143), "", Some(Ending::Cancelled), false).unwrap_err();
        assert_eq!(stopped.code, STOPPED);
        assert!(conclude_on(None, "", None, false).is_err());
    }

    #[test]
    fn the_rendering_names_the_status_and_each_stream() {
        let text = render(&RunResult {
            exit_code: 1,
            stdout: "out\n".into(),
            stderr: String::new(),
            stdout_bytes: 4,
            stderr_bytes: 0,
            truncated: false,
            duration_ms: 1500,
        });
        assert_eq!(text, "exit status 1 after 1.50s\n\n[stdout]\nout\n");
    }
}
