//! The core promises of `sandbox run`: output, exit status, /work, ownership,
//! the environment filter, hardening, limits, streaming and cleanup.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;

use crate::common::{docker, docker_group, hermetic, tempdir, test_image, Workspace};

#[test]
fn output_and_status_pass_through_apart() {
    let ws = Workspace::new();
    let out = ws.run(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(out.status, 7, "{out:?}");
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");

    let out = ws.run(&["true"]);
    assert_eq!(
        (out.status, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );
}

#[test]
fn arguments_arrive_verbatim() {
    let ws = Workspace::new();
    let out = ws.run(&["printf", "[%s]", "a b", "-la", "--keep", "", "$HOME", "'q'"]);
    assert_eq!(out.stdout, "[a b][-la][--keep][][$HOME]['q']", "{out:?}");
}

#[test]
fn a_missing_command_is_127_and_a_non_executable_one_126() {
    let ws = Workspace::new();
    let out = ws.run(&["no-such-command"]);
    assert_eq!(out.status, 127, "{out:?}");
    assert!(out.stderr.contains("no-such-command"), "{out:?}");

    std::fs::write(ws.path().join("script"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        ws.path().join("script"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = ws.run(&["/work/script"]);
    assert_eq!(out.status, 126, "{out:?}");
}

#[test]
fn death_by_signal_is_128_plus_n() {
    let ws = Workspace::new();
    let out = ws.run(&["sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status, 143, "{out:?}");
    assert!(!out.stderr.contains("memory"), "not an OOM kill: {out:?}");
}

#[test]
fn the_workspace_is_work_both_ways() {
    let ws = Workspace::new();
    std::fs::write(ws.path().join("from-host.txt"), "hello from the host\n").unwrap();
    let out = ws.run(&[
        "sh",
        "-c",
        "pwd; cat from-host.txt; echo written > from-container.txt",
    ]);
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(out.stdout, "/work\nhello from the host\n");
    assert_eq!(
        std::fs::read_to_string(ws.path().join("from-container.txt")).unwrap(),
        "written\n"
    );
}

#[test]
fn workspace_flag_selects_another_directory() {
    let ws = Workspace::new();
    std::fs::create_dir(ws.path().join("sub")).unwrap();
    std::fs::write(ws.path().join("sub/marker"), "").unwrap();
    let out = ws.run(&["-w", "sub", "ls"]);
    assert_eq!(out.stdout, "marker\n", "{out:?}");
    assert_eq!(
        crate::common::containers_of(&ws.path().join("sub")),
        Vec::<String>::new(),
        "removed after the run"
    );
}

/// The invoking user, not root, owns what the command writes: the test drops
/// to an unprivileged uid (with the docker group, to reach the socket).
#[test]
fn files_belong_to_the_invoking_user() {
    let ws = Workspace::new();
    let uid = 4242;
    let gid = docker_group();
    std::os::unix::fs::chown(ws.path(), Some(uid), Some(gid)).unwrap();
    let out = ws
        .run_command(&[
            "sh",
            "-c",
            "id -u; id -g; echo x > owned; mkdir d; echo $HOME; touch $HOME/ok",
        ])
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    let out = crate::common::Output::from(out);
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(out.stdout, format!("{uid}\n{gid}\n/home/sandbox\n"));
    // The test's HOME is root's, so this user cannot keep a cache there.
    assert!(
        out.stderr.contains("running without the package cache"),
        "{out:?}"
    );
    for name in ["owned", "d"] {
        let meta = std::fs::metadata(ws.path().join(name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{name}");
    }
}

#[test]
fn user_flag_overrides_the_invoking_user() {
    let ws = Workspace::new();
    let out = ws.run(&["--user", "1234:5678", "sh", "-c", "id -u; id -g"]);
    assert_eq!(out.stdout, "1234\n5678\n", "{out:?}");
}

#[test]
fn secrets_stay_on_the_host() {
    let ws = Workspace::new();
    let out = ws
        .run_command(&["-e", "OPENAI_API_KEY", "-e", "EXTRA=given", "env"])
        .env("LANG", "C.UTF-8")
        .env("TERM", "xterm-test")
        .env("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
        .env("AWS_ACCESS_KEY_ID", "aws-key-id")
        .env("GITHUB_TOKEN", "ghp-value")
        .env("ANTHROPIC_API_KEY", "sk-ant-value")
        .env("OPENAI_API_KEY", "sk-openai-value")
        .env("DATABASE_PASSWORD", "db-value")
        .env("SSH_AUTH_SOCK", "/tmp/agent.sock")
        .env("UNLISTED", "unlisted-value")
        .output()
        .unwrap();
    let out = crate::common::Output::from(out);
    assert_eq!(out.status, 0, "{out:?}");
    let env: Vec<&str> = out.stdout.lines().collect();
    for expected in [
        "LANG=C.UTF-8",
        "TERM=xterm-test",
        "OPENAI_API_KEY=sk-openai-value",
        "EXTRA=given",
    ] {
        assert!(env.contains(&expected), "{expected} missing from {env:?}");
    }
    for secret in [
        "aws-secret-value",
        "aws-key-id",
        "ghp-value",
        "sk-ant-value",
        "db-value",
        "agent.sock",
        "unlisted-value",
    ] {
        assert!(!out.stdout.contains(secret), "{secret} leaked: {env:?}");
    }
}

#[test]
fn the_root_filesystem_is_read_only_but_tmp_and_home_are_not() {
    let ws = Workspace::new();
    let out = ws.run(&[
        "sh",
        "-c",
        "touch /bin/x 2>&1; echo $?; touch /tmp/x && touch $HOME/x && echo writable",
    ]);
    assert!(out.stdout.contains("Read-only file system"), "{out:?}");
    assert!(out.stdout.ends_with("1\nwritable\n"), "{out:?}");
}

#[test]
fn the_process_has_no_privileges() {
    let ws = Workspace::new();
    let out = ws.run(&["cat", "/proc/self/status"]);
    let field = |name: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{name} missing: {out:?}"))
            .to_string()
    };
    for caps in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(caps), "0000000000000000", "{caps}");
    }
    assert_eq!(field("NoNewPrivs"), "1");
    assert_eq!(field("Seccomp"), "2");
}

#[test]
fn pid_1_is_an_init_that_reaps() {
    let ws = Workspace::new();
    let out = ws.run(&["sh", "-c", "cat /proc/1/comm; echo $$"]);
    let lines: Vec<_> = out.stdout.lines().collect();
    assert_ne!(
        lines.first(),
        Some(&"sh"),
        "the command is not PID 1: {out:?}"
    );
    assert_ne!(lines.get(1), Some(&"1"), "{out:?}");
}

#[test]
fn the_pids_limit_stops_a_fork_bomb() {
    let ws = Workspace::new();
    let out = ws.run(&[
        "--pids-limit",
        "20",
        "sh",
        "-c",
        // The shell dies when fork fails; the subshell's count survives it.
        "(for i in $(seq 1 40); do sleep 5 & echo $i > /tmp/n; done) 2>/dev/null; echo started $(cat /tmp/n)",
    ]);
    let started: usize = out
        .stdout
        .trim()
        .strip_prefix("started ")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(started < 20, "the limit let {started} processes start");
}

#[test]
fn running_out_of_memory_is_137_with_a_message() {
    let ws = Workspace::new();
    // Doubling a shell variable grows without bound.
    let out = ws.run(&[
        "--memory",
        "32m",
        "sh",
        "-c",
        "x=a; while true; do x=$x$x; done",
    ]);
    assert_eq!(out.status, 137, "{out:?}");
    assert!(out.stderr.contains("memory limit"), "{out:?}");
}

#[test]
fn piped_stdin_arrives_intact() {
    let ws = Workspace::new();
    let lines: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    let out = ws.run_with_stdin(&["wc", "-l"], lines.as_bytes());
    assert_eq!(out.stdout.trim(), "100000", "{out:?}");

    // Every byte value, several MiB: no line buffering, no text decoding.
    let blob: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let out = ws.run_with_stdin(&["cat"], &blob);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(
        out.stdout_bytes == blob,
        "{} bytes came back for {}",
        out.stdout_bytes.len(),
        blob.len()
    );
}

#[test]
fn large_output_arrives_whole() {
    let ws = Workspace::new();
    let out = ws.run(&["sh", "-c", "head -c 50000000 /dev/zero; echo tail >&2"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.stdout_bytes.len(), 50_000_000);
    assert!(out.stdout_bytes.iter().all(|b| *b == 0));
    assert_eq!(out.stderr, "tail\n");
}

#[test]
fn a_closed_reader_ends_the_command() {
    let ws = Workspace::new();
    let mut child = ws
        .run_command(&["sh", "-c", "while true; do echo y; done"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 2];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert_eq!(&first, b"y\n");
    drop(stdout);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(141), "ended as by SIGPIPE");
}

/// With --keep the container stays, and the engine's own record shows every
/// piece of hardening as sent.
#[test]
fn the_engine_records_the_hardening() {
    let ws = Workspace::new();
    let out = ws.run(&["--keep", "--memory", "256m", "--pids-limit", "99", "true"]);
    assert_eq!(out.status, 0, "{out:?}");
    let ids = ws.containers();
    assert_eq!(ids.len(), 1, "--keep keeps exactly one container");
    let inspect = docker(&["inspect", &ids[0]]);
    let value: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let hc = &value[0]["HostConfig"];
    assert_eq!(hc["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(hc["ReadonlyRootfs"], true);
    assert_eq!(hc["Init"], true);
    assert_eq!(hc["Privileged"], false);
    assert_eq!(hc["Memory"], 256 << 20);
    assert_eq!(hc["MemorySwap"], 256 << 20);
    assert_eq!(hc["PidsLimit"], 99);
    let opts: Vec<String> = serde_json::from_value(hc["SecurityOpt"].clone()).unwrap();
    assert!(opts.iter().any(|o| o == "no-new-privileges"), "{opts:?}");
    assert!(
        opts.iter().any(|o| o.starts_with("seccomp={")),
        "the profile is sent inline"
    );
    let masked = hc["MaskedPaths"]
        .as_array()
        .expect("the daemon's masked paths stay");
    assert!(masked.iter().any(|p| p == "/proc/kcore"), "{masked:?}");
    assert!(hc["ReadonlyPaths"]
        .as_array()
        .is_some_and(|p| !p.is_empty()));
    assert_eq!(value[0]["Config"]["WorkingDir"], "/work");
    assert_eq!(value[0]["Config"]["Labels"]["dev.sandbox.managed"], "true");
    docker(&["rm", "-f", &ids[0]]);
}

#[test]
fn a_missing_image_with_pull_never_is_125() {
    let ws = Workspace::new();
    let out = ws
        .command()
        .args([
            "run",
            "--pull",
            "never",
            "--image",
            "sandbox-test/absent:0",
            "true",
        ])
        .output()
        .unwrap();
    let out = crate::common::Output::from(out);
    assert_eq!(out.status, 125, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {out:?}");
    assert!(out.stderr.contains("sandbox-test/absent:0"), "{out:?}");
}

#[test]
fn protected_paths_stay_read_only() {
    let ws = Workspace::new();
    for dir in [".git/hooks", ".git/objects", ".git/refs/heads"] {
        std::fs::create_dir_all(ws.path().join(dir)).unwrap();
    }
    std::fs::write(ws.path().join(".git/config"), "[core]\n").unwrap();
    std::fs::write(ws.path().join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    let out = ws.run(&[
        "sh",
        "-c",
        "echo evil > .git/hooks/pre-commit; echo evil >> .git/config; \
         echo 'ref: refs/heads/next' > .git/HEAD; echo x > .git/refs/heads/next; echo done",
    ]);
    assert!(out.stdout.ends_with("done\n"), "{out:?}");
    assert!(
        !ws.path().join(".git/hooks/pre-commit").exists(),
        "a hook was planted"
    );
    assert_eq!(
        std::fs::read_to_string(ws.path().join(".git/config")).unwrap(),
        "[core]\n"
    );
    // Refs are written in place; a HEAD naming a branch comes back.
    assert_eq!(
        std::fs::read_to_string(ws.path().join(".git/HEAD")).unwrap(),
        "ref: refs/heads/next\n",
        "the rest stays writable"
    );
    assert!(ws.path().join(".git/refs/heads/next").is_file());
}

#[test]
fn a_read_only_workspace_cannot_be_written() {
    let ws = Workspace::new();
    let out = ws.run(&["--read-only-workspace", "sh", "-c", "ls; touch new"]);
    assert_ne!(out.status, 0, "{out:?}");
    assert!(!ws.path().join("new").exists());
}

#[test]
fn network_none_leaves_only_loopback() {
    let ws = Workspace::new();
    let out = ws.run(&["--network", "none", "ls", "/sys/class/net"]);
    assert_eq!(out.stdout, "lo\n", "{out:?}");
}

#[test]
fn a_config_file_selects_the_image() {
    let ws = Workspace::new();
    let dir = tempdir();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "images:\n  default: {}\ncontainer:\n  pull: never\n{}",
            test_image(),
            crate::common::cold_container_keys()
        ),
    )
    .unwrap();
    let out = ws
        .command()
        .args([
            "--config",
            config.to_str().unwrap(),
            "run",
            "echo",
            "via config",
        ])
        .output()
        .unwrap();
    let out = crate::common::Output::from(out);
    assert_eq!(out.stdout, "via config\n", "{out:?}");

    let out = hermetic(dir.path())
        .current_dir(ws.path())
        .env("SANDBOX_CONFIG", &config)
        .args(["run", "echo", "via env"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via env\n");
}
