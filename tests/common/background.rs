//! `sandbox run` in the background, for tests that signal it while its
//! command runs.

use std::process::{Child, Command, Stdio};

use super::{Output, Workspace};

/// Starts `sandbox run ARGS` and waits until the command inside has printed
/// `ready`, so a signal sent next reaches a running command.
pub fn start_ready(ws: &Workspace, args: &[&str]) -> Child {
    let mut child = ws
        .run_command(args)
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
