//! Everything a person reads on stderr: the one-line error, warnings, pull
//! progress, and the plan that `--dry-run` prints.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::PullEvent;

/// The error as one line: `sandbox: <what failed>: <cause> — <what to do>`.
/// Contexts carry their advice after " — "; the first advice found is kept and
/// put last, so the line reads from the failure to the fix.
pub fn error_line(error: &anyhow::Error) -> String {
    let mut what = Vec::new();
    let mut advice = None;
    for cause in error.chain() {
        let text = sanitize(&cause.to_string());
        let (head, tail) = match text.split_once(" — ") {
            Some((head, tail)) => (head.to_string(), Some(tail.to_string())),
            None => (text, None),
        };
        // bollard and io errors often repeat their source's text; say it once.
        if !head.is_empty() && !what.iter().any(|w: &String| w.contains(&head)) {
            what.push(head);
        }
        advice = advice.or(tail);
    }
    let mut line = format!("sandbox: {}", what.join(": "));
    if let Some(advice) = advice {
        let _ = write!(line, " — {advice}");
    }
    line
}

/// clap's multi-line usage error as one line, with where to look.
pub fn usage_error_line(rendered: &str) -> String {
    // The message runs to the first blank line; usage and tips follow it.
    let message: Vec<_> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    format!("sandbox: {} — see `sandbox --help`", sanitize(message))
}

/// Writes a command's result to stdout. A reader that went away (`sandbox ls
/// | head -1`) is not an error; any other failure is.
pub fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

pub fn error(error: &anyhow::Error) {
    eprintln!("{}", error_line(error));
}

/// Untrusted text (the daemon's messages, file names) on one line, without
/// control characters that could move the cursor or recolour the terminal.
pub fn sanitize(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Warnings and notices on stderr, unless `--quiet`.
#[derive(Clone, Copy)]
pub struct Ui {
    pub quiet: bool,
}

impl Ui {
    pub fn warn(self, message: &str) {
        if !self.quiet {
            eprintln!("sandbox: warning: {}", sanitize(message));
        }
    }

    /// A line that reports why the run ended the way it did: shown even
    /// with `--quiet`, as it explains a failing status (124, 137).
    pub fn notice(self, message: &str) {
        eprintln!("sandbox: {}", sanitize(message));
    }

    /// A line that reports what a run did (what came back from a copied
    /// workspace), unless `--quiet`.
    pub fn summary(self, message: &str) {
        if !self.quiet {
            eprintln!("sandbox: {}", sanitize(message));
        }
    }

    /// A progress display for copying the workspace (`what`: "copying in"):
    /// on a terminal a bar with the total, the rate and the time left; one
    /// summary line otherwise; nothing with `--quiet`. `total` estimates the
    /// bytes to come; it runs on a thread of its own, only on a terminal,
    /// and the bar shows bytes and rate until it answers.
    pub fn transfer(self, what: &str, total: impl FnOnce() -> u64 + Send + 'static) -> Transfer {
        let display = match (self.quiet, std::io::stderr().is_terminal()) {
            (true, _) => Display::Nothing,
            (false, true) => Display::Bar(transfer_bar(what, total)),
            (false, false) => Display::Summary {
                what: what.to_string(),
                started: std::time::Instant::now(),
            },
        };
        Transfer {
            display,
            bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A progress display for pulling `image`: a bar per layer on a terminal,
    /// one line once it is pulled otherwise, nothing with `--quiet`.
    pub fn pull_progress(self, image: &str) -> PullProgress {
        let fancy = !self.quiet && std::io::stderr().is_terminal();
        let multi = fancy.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        PullProgress {
            multi,
            quiet: self.quiet,
            image: image.to_string(),
            started: std::time::Instant::now(),
            layers: HashMap::new(),
            bars: HashMap::new(),
        }
    }
}

// Short enough for 80 columns: the bar takes what the terminal has left.
const TRANSFER_UNSIZED: &str = "{spinner} {msg} {bytes} {bytes_per_sec}";
const TRANSFER_SIZED: &str =
    "{spinner} {msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}";

/// The bar of a transfer on a terminal, sized once `total` answers.
fn transfer_bar(what: &str, total: impl FnOnce() -> u64 + Send + 'static) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(style(TRANSFER_UNSIZED));
    bar.set_message(format!("sandbox: {what}"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let sized = bar.clone();
    std::thread::spawn(move || {
        let total = total();
        // Too late, or already passed: the bar stays as it is.
        if !sized.is_finished() && sized.position() < total {
            sized.set_length(total);
            sized.set_style(style(TRANSFER_SIZED));
        }
    });
    bar
}

enum Display {
    Nothing,
    Bar(ProgressBar),
    /// One line when the transfer is done.
    Summary {
        what: String,
        started: std::time::Instant,
    },
}

/// A byte counter for copying the workspace in or out (see
/// [`Ui::transfer`]).
pub struct Transfer {
    display: Display,
    bytes: Arc<AtomicU64>,
}

impl Transfer {
    /// Counts `n` more bytes; callable from any thread.
    pub fn counter(&self) -> impl FnMut(u64) + Send + 'static {
        let bar = match &self.display {
            Display::Bar(bar) => Some(bar.clone()),
            _ => None,
        };
        let bytes = self.bytes.clone();
        move |n| {
            bytes.fetch_add(n, Ordering::Relaxed);
            if let Some(bar) = &bar {
                bar.inc(n);
                // More came than estimated: a total and a time left would lie.
                if bar.length().is_some_and(|total| bar.position() > total) {
                    bar.unset_length();
                    bar.set_style(style(TRANSFER_UNSIZED));
                }
            }
        }
    }

    pub fn finish(self) {
        match self.display {
            Display::Nothing => {}
            Display::Bar(bar) => bar.finish_and_clear(),
            Display::Summary { what, started } => {
                let bytes = self.bytes.load(Ordering::Relaxed);
                // Said as what moved, which holds even when the copy then
                // fails. What comes back is all of /work, read for changes.
                let size = indicatif::HumanBytes(bytes);
                let moved = match what.as_str() {
                    "copying in" => format!("sent {size} of the workspace"),
                    _ => format!("read {size} of /work back"),
                };
                eprintln!("sandbox: {moved} {}", timing(bytes, started.elapsed()));
            }
        }
    }
}

/// "12.3 MiB in 1.2s (10.3 MiB/s)"
fn rate(bytes: u64, elapsed: std::time::Duration) -> String {
    format!(
        "{} {}",
        indicatif::HumanBytes(bytes),
        timing(bytes, elapsed)
    )
}

/// "in 1.2s (10.3 MiB/s)"
fn timing(bytes: u64, elapsed: std::time::Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let mut line = format!("in {seconds:.1}s");
    if seconds > 0.0 {
        // Whole bytes a second: HumanBytes rounds to a readable unit.
        let per_second = (bytes as f64 / seconds) as u64;
        let _ = write!(line, " ({}/s)", indicatif::HumanBytes(per_second));
    }
    line
}

pub struct PullProgress {
    /// A bar per layer on a terminal; `None` for the one plain line.
    multi: Option<MultiProgress>,
    quiet: bool,
    image: String,
    started: std::time::Instant,
    /// Plain mode: each layer's size, and whether it had to be downloaded.
    layers: HashMap<String, (u64, bool)>,
    /// Terminal mode: each layer's bar, and whether it shows a transfer.
    bars: HashMap<String, (ProgressBar, bool)>,
}

const LAYER: &str = "{prefix:12} {msg}";
const TRANSFER: &str = "{prefix:12} {msg:12} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}";

impl PullProgress {
    pub fn update(&mut self, event: PullEvent) {
        if self.quiet {
            return;
        }
        let status = sanitize(&event.status);
        match (&self.multi, event.layer) {
            (None, layer) => self.count(layer, &status, event.total),
            (Some(_), None) => {}
            (Some(multi), Some(layer)) => {
                let (bar, transfer) = self.bars.entry(layer.clone()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new(0));
                    bar.set_style(style(LAYER));
                    bar.set_prefix(layer);
                    (bar, false)
                });
                bar.set_message(status);
                // Only downloads and extractions have sizes; other states get no bar.
                let sizes = event
                    .current
                    .zip(event.total)
                    .filter(|(_, total)| *total > 0);
                if sizes.is_some() != *transfer {
                    *transfer = sizes.is_some();
                    bar.set_style(style(if *transfer { TRANSFER } else { LAYER }));
                }
                if let Some((current, total)) = sizes {
                    bar.set_length(total);
                    bar.set_position(current);
                }
            }
        }
    }

    /// Plain mode: a layer's news is counted, not printed; the engine's
    /// last word ("Status: Downloaded newer image for ...", only sent on
    /// success) prints the one line.
    fn count(&mut self, layer: Option<String>, status: &str, total: Option<u64>) {
        let Some(layer) = layer else {
            if status.starts_with("Status: ") {
                eprintln!("sandbox: {}", self.pulled(status));
            }
            return;
        };
        // The first event names the tag, not a layer: "Pulling from ...".
        if status.starts_with("Pulling from") {
            return;
        }
        let (size, downloaded) = self.layers.entry(layer).or_default();
        // A layer the engine has says "Already exists" and nothing else.
        *downloaded |= status != "Already exists";
        if status == "Downloading" {
            *size = (*size).max(total.unwrap_or(0));
        }
    }

    /// "pulled IMAGE: 2 new layers, 1.2 MiB in 0.8s (1.5 MiB/s)", or that
    /// it was up to date.
    fn pulled(&self, status: &str) -> String {
        let elapsed = self.started.elapsed();
        if status.starts_with("Status: Image is up to date") {
            let seconds = elapsed.as_secs_f64();
            return format!("{} is up to date (checked in {seconds:.1}s)", self.image);
        }
        let (new, bytes) = self
            .layers
            .values()
            .filter(|(_, downloaded)| *downloaded)
            .fold((0, 0), |(n, sum), (size, _)| (n + 1, sum + size));
        let plural = if new == 1 { "" } else { "s" };
        format!(
            "pulled {}: {new} new layer{plural}, {}",
            self.image,
            rate(bytes, elapsed)
        )
    }

    pub fn finish(self) {
        for (bar, _) in self.bars.values() {
            bar.finish_and_clear();
        }
    }
}

/// "copied back 2 changed, 1 new, 1 deleted (12 KiB); not copied back:
/// .git/hooks/pre-commit (protected)". The refusals named are capped: the
/// command chooses how many there are.
pub fn describe_changes(changes: &crate::sync::Changes) -> String {
    const NAMED: usize = 10;
    let mut line = format!(
        "copied back {} changed, {} new, {} deleted ({})",
        changes.changed,
        changes.created,
        changes.deleted,
        indicatif::HumanBytes(changes.bytes)
    );
    let refusals = changes.refused.len() + changes.refused_more;
    if refusals > 0 {
        let mut refused: Vec<String> = changes
            .refused
            .iter()
            .take(NAMED)
            .map(|(path, why)| format!("{} ({why})", path.display()))
            .collect();
        if refusals > NAMED.min(changes.refused.len()) {
            refused.push(format!(
                "{} more",
                refusals - NAMED.min(changes.refused.len())
            ));
        }
        let _ = write!(line, "; not copied back: {}", refused.join(", "));
    }
    line
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{anyhow, Context};

    #[test]
    fn errors_read_from_failure_to_fix() {
        let e = Err::<(), _>(anyhow!("connection refused"))
            .context("cannot reach the engine at unix:///x — start the daemon")
            .unwrap_err();
        assert_eq!(
            error_line(&e),
            "sandbox: cannot reach the engine at unix:///x: connection refused — start the daemon"
        );
    }

    #[test]
    fn untrusted_text_stays_on_one_line() {
        let e = anyhow!("bad\nthing \x1b[31mred");
        assert_eq!(error_line(&e), "sandbox: bad thing ?[31mred");
    }

    #[test]
    fn repeated_causes_are_said_once() {
        let e = Err::<(), _>(anyhow!("no such file"))
            .context("no such file")
            .unwrap_err();
        assert_eq!(error_line(&e), "sandbox: no such file");
    }

    #[test]
    fn usage_errors_fit_one_line() {
        let rendered = "error: invalid value 'soon' for '--timeout <DURATION>'\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_error_line(rendered),
            "sandbox: invalid value 'soon' for '--timeout <DURATION>' — see `sandbox --help`"
        );
    }

    #[test]
    fn missing_arguments_are_named() {
        let rendered = "error: the following required arguments were not provided:\n  <COMMAND>...\n\nUsage: x\n";
        assert_eq!(
            usage_error_line(rendered),
            "sandbox: the following required arguments were not provided: <COMMAND>... — see `sandbox --help`"
        );
    }

    #[test]
    fn refusals_named_are_capped() {
        let changes = crate::sync::Changes {
            refused: (0..12)
                .map(|i| (std::path::PathBuf::from(format!("p{i}")), "a special file"))
                .collect(),
            ..Default::default()
        };
        let line = describe_changes(&changes);
        assert!(line.contains("p9 (a special file), 2 more"), "{line}");
        assert!(!line.contains("p10"), "{line}");
        // Past those kept in memory, refusals are only counted.
        let counted = crate::sync::Changes {
            refused_more: 1_000_000,
            ..changes
        };
        assert!(describe_changes(&counted).contains("1000002 more"));
    }
}
