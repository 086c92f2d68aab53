//! Podman, through its Docker-compatible API: the same promises hold.

use crate::common::{podman_engine, Workspace};

fn podman(ws: &Workspace, args: &[&str]) -> crate::common::Output {
    ws.run_on(podman_engine(), args, b"")
}

fn podman_containers(ws: &Workspace) -> String {
    let filter = format!("label=dev.sandbox.workspace={}", ws.path().display());
    let out = std::process::Command::new("podman")
        .args(["ps", "-aq", "--filter", &filter])
        .output()
        .expect("podman ps");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_run_on_podman_is_hardened_mounted_and_removed() {
    let ws = Workspace::new();
    std::fs::write(ws.path().join("in"), "from the host\n").unwrap();
    let out = podman(
        &ws,
        &[
            "--user",
            "4242:4242",
            "sh",
            "-c",
            "id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; cat in; \
             touch /bin/x 2>/dev/null || echo ro; ls -ld $HOME | cut -c1-10; exit 6",
        ],
    );
    assert_eq!(out.status, 6, "{out:?}");
    assert_eq!(
        out.stdout,
        "4242\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n\
         from the host\nro\ndrwx------\n",
        "{out:?}"
    );
    assert_eq!(podman_containers(&ws), "", "removed after the run");
}

#[test]
fn the_seccomp_profile_holds_on_podman() {
    let ws = Workspace::new();
    // unshare is not on the allow-list: busybox's unshare fails to create
    // the namespace.
    let out = podman(&ws, &["unshare", "-U", "true"]);
    assert_ne!(out.status, 0, "{out:?}");
    assert!(out.stderr.contains("Operation not permitted"), "{out:?}");

    // The control: with a profile that allows everything, the same call works.
    let open = ws.home().join("allow-all.json");
    std::fs::write(&open, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
    let out = podman(
        &ws,
        &["--seccomp", open.to_str().unwrap(), "unshare", "-U", "true"],
    );
    assert_eq!(out.status, 0, "{out:?}");
}

#[test]
fn the_allow_list_is_refused_on_podman_rather_than_run_open() {
    let ws = Workspace::new();
    let out: crate::common::Output = ws
        .command()
        .env("DOCKER_HOST", podman_engine())
        .args([
            "run",
            "--image",
            crate::common::test_image(),
            "--pull",
            "never",
        ])
        .args(["--allow-host", "example.test", "true"])
        .output()
        .expect("run sandbox")
        .into();
    assert_eq!(out.status, 125, "{out:?}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("Podman"), "{out:?}");
    assert_eq!(podman_containers(&ws), "", "nothing made");
    // Control: the same run without the allow-list runs there.
    let open = podman(&ws, &["true"]);
    assert_eq!(open.status, 0, "{open:?}");
}
