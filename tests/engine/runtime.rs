//! Stronger isolation: another OCI runtime (gVisor's runsc) under the same
//! hardening. `make engine` registers runsc with the engine.

use crate::common::{docker, Workspace};

fn require_runsc() {
    let runtimes = docker(&["info", "--format", "{{json .Runtimes}}"]);
    assert!(
        runtimes.stdout.contains("\"runsc\""),
        "the engine has no runsc runtime: `make engine` installs and registers it \
         (/etc/docker/daemon.json); it has {}",
        runtimes.stdout
    );
}

#[test]
fn runsc_runs_the_command_in_gvisors_kernel_with_the_same_hardening() {
    require_runsc();
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let ws = Workspace::new();
    let out = ws.run(&[
        "--runtime",
        "runsc",
        "--user",
        "4242:4242",
        "sh",
        "-c",
        "uname -r; id -u; grep CapEff /proc/self/status; touch /bin/x 2>/dev/null || echo ro; \
         echo out > /tmp/t && cat /tmp/t; exit 9",
    ]);
    assert_eq!(out.status, 9, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_ne!(
        lines[0],
        host_kernel.trim(),
        "the host's kernel answered: {out:?}"
    );
    assert_eq!(
        lines[1..],
        ["4242", "CapEff:\t0000000000000000", "ro", "out"],
        "{out:?}"
    );
}

#[test]
fn an_unknown_runtime_is_one_line_and_125() {
    let ws = Workspace::new();
    let out = ws.run(&["--runtime", "no-such-runtime", "true"]);
    assert_eq!(out.status, 125, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("sandbox doctor"), "{out:?}");
}
