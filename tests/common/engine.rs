//! The engine on this machine: its CLI, whether it answers, and which group
//! may use its socket.

use std::process::Command;
use std::sync::OnceLock;

use super::Output;

/// The docker CLI, for setup, control runs and inspection.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("the docker CLI runs (apt-get install docker.io, or `make engine`)")
        .into()
}

/// Fails, with one line saying how to get one, when no engine answers.
pub fn require_engine() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let info = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output();
        match info {
            Ok(out) if out.status.success() => {}
            _ => panic!(
                "no Docker engine answers: start one with `make engine` (as root, Debian/Ubuntu) \
                 or `sudo systemctl start docker`; these tests need a real engine"
            ),
        }
    });
}

/// The gid of the group that may use the engine's socket, for tests that
/// run sandbox as an unprivileged user.
pub fn docker_group() -> u32 {
    let groups = std::fs::read_to_string("/etc/group").expect("read /etc/group");
    groups
        .lines()
        .find_map(|line| {
            let fields: Vec<_> = line.split(':').collect();
            (fields[0] == "docker").then(|| fields[2].parse().expect("a numeric gid"))
        })
        .expect("a docker group owns the engine's socket")
}
