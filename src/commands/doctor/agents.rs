//! `sandbox doctor`'s agents check: each built agent image's version
//! command, run as `sandbox run` would run the agent (the same binary, the
//! same configuration and hardening), so what fails here fails for real.
//!
//! Each check is a child `sandbox run`: it brings the run's own cleanup, and
//! a hung agent is stopped through the signal handling every run has. The
//! network is off (a version needs none), nothing of the agent's state is
//! kept, and the workspace is an empty directory of the check's own.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a version command may take: a cold container and a Node start
/// on a busy machine, with room to spare.
const LIMIT: Duration = Duration::from_secs(120);

/// One agent's result: the version it printed, or what failed and what to do.
pub struct Checked {
    pub agent: String,
    pub result: Result<String, String>,
}

/// Runs `AGENT --version` for each of `agents` at once. `config` is the
/// configuration file the doctor read, if any.
pub fn check(agents: &[String], config: Option<&Path>) -> Vec<Checked> {
    let scratch = std::env::temp_dir().join(format!("sandbox-doctor-{}", std::process::id()));
    let started: Vec<_> = agents
        .iter()
        .map(|name| {
            let workspace = scratch.join(name);
            let child = std::fs::create_dir_all(&workspace)
                .map_err(|e| format!("cannot make {}: {e}", workspace.display()))
                .and_then(|()| spawn(name, &workspace, config));
            (name.clone(), child)
        })
        .collect();
    let deadline = Instant::now() + LIMIT;
    let checked = started
        .into_iter()
        .map(|(agent, child)| {
            let result = child.and_then(|child| finish(child, deadline, &agent));
            Checked { agent, result }
        })
        .collect();
    let _ = std::fs::remove_dir_all(&scratch);
    checked
}

fn spawn(agent: &str, workspace: &Path, config: Option<&Path>) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find sandbox itself: {e}"))?;
    let mut cmd = Command::new(exe);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(["run", "--pull", "never", "--network", "none", "--no-cache"])
        .args([
            "--agent-state",
            "none",
            "--no-tty",
            "--no-warm",
            "--workspace",
        ])
        .arg(workspace)
        .args([agent, "--version"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn()
        .map_err(|e| format!("cannot start sandbox: {e}"))
}

/// The child's first line of output, or why it failed, in one line.
fn finish(mut child: Child, deadline: Instant, agent: &str) -> Result<String, String> {
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                // SIGTERM, so the run removes its container on the way out.
                let _ = rustix::process::kill_process(
                    rustix::process::Pid::from_child(&child),
                    rustix::process::Signal::TERM,
                );
                let _ = child.wait();
                return Err(format!(
                    "no answer within {} — run `sandbox run {agent} --version` to see it hang",
                    humantime::format_duration(LIMIT)
                ));
            }
            Err(e) => return Err(format!("cannot wait for sandbox: {e}")),
        }
    };
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let lines = |bytes: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let code = status.code().unwrap_or(-1);
    match code {
        // The version is what comes first; an error's cause comes last.
        0 => Ok(lines(&out.stdout)
            .into_iter()
            .next()
            .unwrap_or_else(|| "ok (printed nothing)".into())),
        _ => Err(format!(
            "`{agent} --version` failed (exit {code}): {} — {}",
            lines(&out.stderr).pop().unwrap_or_default(),
            remedy(code, agent)
        )),
    }
}

fn remedy(code: i32, agent: &str) -> String {
    match code {
        125 => format!("see `sandbox run {agent} --version`"),
        126 | 127 => format!("the image lacks the agent: rebuild it (make images AGENTS={agent})"),
        _ => format!("rebuild the image (make images AGENTS={agent}); if it persists, report it"),
    }
}
