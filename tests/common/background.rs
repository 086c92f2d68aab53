//! `sandbox run` in the background, for tests that signal it while its
//! command runs.

use std::process::{Child, Command, Stdio};

use super::{Output, Workspace};

/// Starts `sandbox run ARGS` and waits until the command inside has printed
/// `ready`, so a signal sent next reaches a running command.
pub fn start_ready(ws: &Workspace, args: &[&str]) -> Child {
    start_ready_as(ws.run_command(args))
}

/// Starts `command` (a `sandbox run` of any kind) and waits until the
/// command inside has printed `ready`.
pub fn start_ready_as(mut command: Command) -> Child {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sandbox");
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"ready\n") {
        let n = std::io::Read::read(&mut stdout, &mut byte).unwrap();
        assert_eq!(
            n,
            1,
            "the command ended before it was ready: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.push(byte[0]);
    }
    child.stdout = Some(stdout);
    child
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn finish(child: Child) -> Output {
    child.wait_with_output().unwrap().into()
}

/// The watcher (`sandbox reap`) a running sandbox started: its child that
/// outlives it.
pub fn watcher_of(child: &Child) -> u32 {
    let parent = child.id().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let ppid = rest.split_whitespace().nth(1).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if ppid == parent && cmdline.ends_with(b"\0reap\0") {
                return pid.parse().unwrap();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sandbox {parent} has no watcher"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Kills sandbox and its watcher outright, the watcher first, as the end
/// of a CI job kills every process it has: nothing of sandbox's is left to
/// remove its container. Sandbox is not collected: until `finish`, it is a
/// zombie, which counts as alive.
pub fn kill_with_watcher(child: &Child) {
    let watcher = watcher_of(child);
    let status = Command::new("kill")
        .args(["-s", "KILL", &watcher.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    signal(child, "KILL");
}
