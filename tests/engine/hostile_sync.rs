//! A copied workspace (`--copy-workspace`) against a command that knows how
//! sync-back works: what it leaves in /work may not reach outside the
//! workspace, plant a setuid file, or come back owned by root; and, copied,
//! /work is the user's to change, as a mounted one is.

use std::fs;
use std::os::unix::fs::{lchown, symlink, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

use crate::common::{docker, docker_group, tempdir, test_image, Output, Workspace};

/// The unprivileged user sandbox runs as here.
const UID: u32 = 4242;
const KEYS: &str = "ssh-ed25519 AAAAC3Nza the user's own key\n";

/// `sandbox run --copy-workspace ARGS` as `UID` (with the docker group, to
/// reach the socket), who owns the workspace.
fn run_as_user(ws: &Workspace, args: &[&str]) -> Output {
    let gid = docker_group();
    chown_tree(ws.path(), UID, gid);
    let out = ws
        .run_command(&[&["--copy-workspace"], args].concat())
        .uid(UID)
        .gid(gid)
        .output()
        .expect("run sandbox");
    Output::from(out)
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    lchown(path, Some(uid), Some(gid)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// A seccomp profile that allows everything, readable by `UID`: the filter
/// may refuse setuid modes, and this test is about what sync-back does
/// with one that was made.
fn allow_all(dir: &Path) -> String {
    let path = dir.join("allow-all.json");
    fs::write(&path, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_string()
}

/// The command swaps two directories that were sent, each holding an
/// `authorized_keys`, for links to a victim directory beside the workspace
/// (one relative, one absolute), and makes a setuid file. The old sync-back
/// placed the links, then deleted the sent `authorized_keys` by path:
/// through the link, the victim's.
#[test]
fn links_the_command_made_never_carry_sync_back_outside() {
    let ws = Workspace::new();
    let victim = tempdir();
    let victim_dir = victim.path().canonicalize().unwrap();
    assert_eq!(victim_dir.parent(), ws.path().parent(), "side by side");
    let victim_name = victim_dir.file_name().unwrap().to_str().unwrap();
    let victim_keys = victim_dir.join("authorized_keys");
    fs::write(&victim_keys, KEYS).unwrap();
    // The victim is the user's own, so a sync-back running as the user
    // could delete it: only not following the link saves it.
    chown_tree(&victim_dir, UID, docker_group());
    for d in ["d/x", "e/x"] {
        fs::create_dir_all(ws.path().join(d)).unwrap();
        fs::write(
            ws.path().join(d).join("authorized_keys"),
            "workspace copy\n",
        )
        .unwrap();
    }
    let relative = format!("../../{victim_name}");
    let absolute = victim_dir.to_str().unwrap();
    let profile_dir = tempdir();
    let profile = allow_all(profile_dir.path());

    let script = format!(
        "rm -r d/x e/x && ln -s {relative} d/x && ln -s {absolute} e/x && \
         echo tool > d/tool && chmod 4755 d/tool && stat -c %a d/tool"
    );
    let out = run_as_user(&ws, &["--seccomp", &profile, "sh", "-c", &script]);

    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(out.stdout, "4755\n", "setuid inside: {out:?}");
    assert!(out.stderr.contains("copied back"), "{out:?}");
    assert_eq!(fs::read_to_string(&victim_keys).unwrap(), KEYS);
    assert_eq!(fs::read_dir(&victim_dir).unwrap().count(), 1);
    let link = fs::read_link(ws.path().join("d/x")).unwrap();
    assert_eq!(link, Path::new(&relative), "came back as the link");
    assert_eq!(
        fs::read_link(ws.path().join("e/x")).unwrap(),
        Path::new(absolute)
    );
    let tool = fs::metadata(ws.path().join("d/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o755, "no setuid on the host");

    // The control: the link the run left, in a throwaway copy of the same
    // layout, takes the old code's path-based delete and write outside.
    let throwaway = tempdir();
    let copy = throwaway.path().join("ws");
    fs::create_dir_all(copy.join("d")).unwrap();
    symlink(&link, copy.join("d/x")).unwrap();
    let decoy = throwaway.path().join(victim_name);
    fs::create_dir(&decoy).unwrap();
    fs::write(decoy.join("authorized_keys"), KEYS).unwrap();
    fs::remove_file(copy.join("d/x/authorized_keys")).expect("the naive delete goes through");
    assert!(!decoy.join("authorized_keys").exists(), "reached the decoy");
    fs::write(copy.join("d/x/authorized_keys"), "ssh-rsa attacker\n").unwrap();
    assert_eq!(
        fs::read_to_string(decoy.join("authorized_keys")).unwrap(),
        "ssh-rsa attacker\n"
    );
}

/// Copied, /work's root belongs to the user, so the command can create and
/// delete at its top as in a mounted workspace.
#[test]
fn a_copied_work_is_the_users_to_change_at_its_top() {
    let ws = Workspace::new();
    fs::write(ws.path().join("old.txt"), "old\n").unwrap();
    let out = run_as_user(
        &ws,
        &[
            "sh",
            "-c",
            "stat -c %u /work && rm old.txt && echo new > new.txt && mkdir top",
        ],
    );
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(out.stdout, format!("{UID}\n"), "{out:?}");
    assert!(!ws.path().join("old.txt").exists());
    assert_eq!(
        fs::read_to_string(ws.path().join("new.txt")).unwrap(),
        "new\n"
    );
    assert!(ws.path().join("top").is_dir());

    // The control: a fresh volume's root belongs to root, and the same user
    // cannot create anything in it.
    let user = format!("{UID}:{UID}");
    let plain = docker(&[
        "run",
        "--rm",
        "--user",
        &user,
        "--mount",
        "type=volume,target=/work",
        test_image(),
        "touch",
        "/work/x",
    ]);
    assert_ne!(plain.status, 0, "{plain:?}");
    assert!(plain.stderr.contains("Permission denied"), "{plain:?}");
}

/// Under sudo sandbox runs as root for the user: what comes back is the
/// user's, links included (the link itself, not its target).
#[test]
fn under_sudo_what_comes_back_belongs_to_the_user() {
    let ws = Workspace::new();
    let out: Output = ws
        .run_command(&[
            "--copy-workspace",
            "sh",
            "-c",
            "echo x > made && mkdir dir && ln -s /etc/passwd link",
        ])
        .env("SUDO_UID", UID.to_string())
        .env("SUDO_GID", "4343")
        .output()
        .expect("run sandbox")
        .into();
    assert_eq!(out.status, 0, "{out:?}");
    for name in ["made", "dir", "link"] {
        let meta = fs::symlink_metadata(ws.path().join(name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (UID, 4343), "{name}");
    }
    let passwd = fs::metadata("/etc/passwd").unwrap();
    assert_eq!(passwd.uid(), 0, "the link's target is never touched");
}
