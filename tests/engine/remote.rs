//! An engine that does not share this machine's files: a second dockerd on
//! loopback TCP. The workspace is copied in, and exactly what the command
//! changed comes back.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{docker, remote_engine, test_image, Output, Workspace};

/// `sandbox run` against the remote engine, in `ws`.
fn remote(ws: &Workspace, args: &[&str], stdin: &[u8]) -> Output {
    ws.run_on(remote_engine(), args, stdin)
}

/// Nothing of this workspace is left on the remote engine.
fn assert_clean(ws: &Workspace) {
    let host = remote_engine();
    let filter = format!("label=dev.sandbox.workspace={}", ws.path().display());
    let left = docker(&["-H", host, "ps", "-aq", "--filter", &filter]);
    assert_eq!(left.stdout, "", "containers left on the remote engine");
    let volumes = docker(&["-H", host, "volume", "ls", "-q", "--filter", &filter]);
    assert_eq!(volumes.stdout, "", "volumes left on the remote engine");
}

/// Every file under `root`, with its contents.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                files.insert(rel, std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    files
}

#[test]
fn exactly_the_commands_changes_come_back() {
    let ws = Workspace::new();
    let root = ws.path();
    std::fs::create_dir_all(root.join("src/deep")).unwrap();
    std::fs::create_dir_all(root.join(".git/hooks")).unwrap();
    std::fs::write(root.join("src/keep.rs"), "unchanged\n").unwrap();
    std::fs::write(root.join("src/edit.rs"), "before\n").unwrap();
    std::fs::write(root.join("src/deep/gone.rs"), "delete me\n").unwrap();
    std::fs::write(root.join("secret.env"), "TOKEN=host-only\n").unwrap();
    std::fs::write(root.join(".sandboxignore"), "*.env\n").unwrap();
    std::os::unix::fs::symlink("keep.rs", root.join("src/link")).unwrap();
    let script = root.join("run.sh");
    std::fs::write(&script, "#!/bin/sh\necho ran\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&script).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut expected = tree(root);

    let out = remote(
        &ws,
        &[
            "sh",
            "-c",
            "test -e secret.env && echo SENT; ./run.sh; cat; \
             echo after > src/edit.rs; rm src/deep/gone.rs; mkdir -p new/dir; \
             echo made > new/dir/file.txt; echo hook > .git/hooks/post-checkout; exit 7",
        ],
        b"through stdin\n",
    );
    assert_eq!(out.status, 7, "{out:?}");
    assert_eq!(
        out.stdout, "ran\nthrough stdin\n",
        "excluded files never go: {out:?}"
    );
    assert!(
        out.stderr
            .contains("copied back 1 changed, 3 new, 1 deleted"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains(".git/hooks/post-checkout (protected)"),
        "{out:?}"
    );

    expected.insert("src/edit.rs".into(), "after\n".into());
    expected.remove("src/deep/gone.rs");
    expected.insert("new/dir/file.txt".into(), "made\n".into());
    assert_eq!(tree(root), expected);
    assert!(root.join("src/deep").is_dir(), "only the file was deleted");
    assert_eq!(
        std::fs::read_link(root.join("src/link")).unwrap(),
        Path::new("keep.rs")
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&script).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o755, "modes survive");
    assert_clean(&ws);
}

#[test]
fn no_sync_back_and_read_only_leave_the_host_alone() {
    let ws = Workspace::new();
    std::fs::write(ws.path().join("file"), "host\n").unwrap();
    let out = remote(
        &ws,
        &[
            "--no-sync-back",
            "sh",
            "-c",
            "echo changed > file; cat file",
        ],
        b"",
    );
    assert_eq!(
        (out.status, out.stdout.as_str()),
        (0, "changed\n"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(ws.path().join("file")).unwrap(),
        "host\n"
    );

    let out = remote(
        &ws,
        &[
            "--read-only-workspace",
            "sh",
            "-c",
            "cat file; echo x > file",
        ],
        b"",
    );
    assert_ne!(out.status, 0, "{out:?}");
    assert_eq!(out.stdout, "host\n", "{out:?}");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(ws.path().join("file")).unwrap(),
        "host\n"
    );
    assert_clean(&ws);
}

#[test]
fn a_large_tree_makes_the_round_trip() {
    let ws = Workspace::new();
    // 10,000 files in 100 directories, and 200 MB in all.
    for d in 0..100 {
        let dir = ws.path().join(format!("d{d:03}"));
        std::fs::create_dir(&dir).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("f{f:03}")), format!("{d}/{f}\n")).unwrap();
        }
    }
    let big = vec![7u8; 200 << 20];
    std::fs::write(ws.path().join("big.bin"), &big).unwrap();
    let out = remote(
        &ws,
        &[
            "sh",
            "-c",
            "find . -type f | wc -l; wc -c < big.bin; echo changed > d050/f050",
        ],
        b"",
    );
    assert_eq!(out.status, 0, "{out:?}");
    let counts: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(counts, ["10001", &(200u64 << 20).to_string()], "{out:?}");
    assert!(
        out.stderr
            .contains("copied back 1 changed, 0 new, 0 deleted"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(ws.path().join("d050/f050")).unwrap(),
        "changed\n"
    );
    assert_eq!(
        std::fs::metadata(ws.path().join("big.bin")).unwrap().len(),
        200 << 20
    );
    assert_clean(&ws);
}

#[test]
fn an_engine_over_ssh_gets_a_copy_too() {
    let (host, bin) = crate::common::ssh_engine();
    let ws = Workspace::new();
    std::fs::write(ws.path().join("in.txt"), "sent over ssh\n").unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out: Output = ws
        .command()
        .env("PATH", path)
        .args([
            "--host",
            host,
            "run",
            "--image",
            test_image(),
            "--pull",
            "never",
        ])
        .args(["sh", "-c", "cat in.txt; echo back > out.txt; exit 3"])
        .output()
        .expect("run sandbox")
        .into();
    assert_eq!(out.status, 3, "{out:?}");
    assert_eq!(out.stdout, "sent over ssh\n", "{out:?}");
    assert_eq!(
        std::fs::read_to_string(ws.path().join("out.txt")).unwrap(),
        "back\n"
    );
}
