//! No setuid or setgid file reaches the host. The workspace is a bind mount
//! of the user's directory, and the engine cannot mount it nosuid: a file the
//! command made setuid there would stay so on the host, where any local user
//! could run it as the user who ran sandbox. The profiles refuse every mode
//! with either bit (hardening.rs probes each call); these tests go through
//! `sandbox run` itself, as an unprivileged invoking user in mount mode, with
//! the tools people use, and check what is left on the host. Everyday modes
//! must keep working, with busybox's tools and with GNU's (coreutils, tar,
//! git), which make different calls.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{docker, docker_group, test_image, Output, Workspace};

/// The invoking user: not root, in the docker group.
const UID: u32 = 4242;

/// GNU tools from this machine, run inside the busybox image through their
/// own loader: `gnu install -m 0644 a b` in the scripts below.
const GNU_TOOLS: &[&str] = &["install", "cp", "chmod", "mkdir", "tar", "touch", "git"];
const GNU: &str = "gnu() { t=$1; shift; /work/.tools/ld.so --library-path /work/.tools/lib \
                   /work/.tools/bin/$t \"$@\"; }\n";

/// A workspace owned by the invoking user, holding `f` (mode 0755, theirs),
/// the GNU tools under `.tools/`, and `normal.tar` (a file, an executable
/// and a directory).
fn workspace() -> Workspace {
    let ws = Workspace::new();
    let gid = docker_group();
    let root = ws.path();
    std::fs::write(root.join("f"), "#!/bin/sh\necho f\n").unwrap();
    std::fs::set_permissions(root.join("f"), PermissionsExt::from_mode(0o755)).unwrap();
    stage_gnu_tools(&root.join(".tools"));
    archive(root);
    for entry in [root.to_path_buf(), root.join("f")] {
        std::os::unix::fs::chown(&entry, Some(UID), Some(gid)).unwrap();
    }
    ws
}

/// Copies each of GNU_TOOLS, the libraries `ldd` lists for it and the
/// dynamic loader into `dir`.
fn stage_gnu_tools(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    for tool in GNU_TOOLS {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .expect("run sh");
        let path = PathBuf::from(String::from_utf8_lossy(&found.stdout).trim());
        assert!(
            path.is_absolute(),
            "{tool} is missing on this machine (coreutils, tar and git are needed)"
        );
        std::fs::copy(&path, dir.join("bin").join(tool)).unwrap();
        let ldd = Command::new("ldd").arg(&path).output().expect("run ldd");
        assert!(ldd.status.success(), "ldd {}: {ldd:?}", path.display());
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            // "libc.so.6 => /lib/.../libc.so.6 (0x...)", or the loader alone.
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (lib, is_loader) = match fields.as_slice() {
                [_, "=>", lib, ..] if lib.starts_with('/') => (*lib, false),
                [lib, ..] if lib.starts_with('/') => (*lib, true),
                _ => continue,
            };
            let to = match is_loader {
                true => dir.join("ld.so"),
                false => dir.join("lib").join(Path::new(lib).file_name().unwrap()),
            };
            std::fs::copy(lib, to).unwrap();
        }
    }
    assert!(dir.join("ld.so").is_file(), "ldd named no dynamic loader");
}

/// `normal.tar` in `root`, made with the host's GNU tar.
fn archive(root: &Path) {
    let src = crate::common::tempdir();
    std::fs::write(src.path().join("data"), "data\n").unwrap();
    std::fs::write(src.path().join("tool"), "#!/bin/sh\n").unwrap();
    std::fs::create_dir(src.path().join("dir")).unwrap();
    for (name, mode) in [("data", 0o644), ("tool", 0o755), ("dir", 0o755)] {
        std::fs::set_permissions(src.path().join(name), PermissionsExt::from_mode(mode)).unwrap();
    }
    let made = Command::new("tar")
        .arg("-cf")
        .arg(root.join("normal.tar"))
        .arg("-C")
        .arg(src.path())
        .args(["data", "tool", "dir"])
        .status()
        .expect("run tar");
    assert!(made.success(), "tar -cf normal.tar");
}

/// `script` through `sandbox run` as the invoking user UID, docker's group.
fn sandboxed(ws: &Workspace, script: &str) -> Output {
    let out = ws
        .run_command(&["--network", "none", "sh", "-c", script])
        .uid(UID)
        .gid(docker_group())
        .output()
        .expect("run sandbox");
    out.into()
}

/// `script` in a plain docker container: the same bind mount, user and
/// image, the engine's own seccomp profile instead of sandbox's.
fn plain_docker(ws: &Workspace, script: &str) -> Output {
    let volume = format!("{}:/work", ws.path().display());
    let user = format!("{UID}:{}", docker_group());
    docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        &user,
        "-v",
        &volume,
        "-w",
        "/work",
        test_image(),
        "sh",
        "-c",
        script,
    ])
}

/// Each of `commands` in a subshell of its own, each followed by a line
/// `COMMAND: STATUS`.
fn script(commands: &[&str]) -> String {
    let mut script = GNU.to_string();
    for command in commands {
        script.push_str(&format!(
            "({command}) >/dev/null 2>&1; echo \"{command}: $?\"\n"
        ));
    }
    script
}

fn statuses(out: &Output) -> Vec<(String, i32)> {
    out.stdout
        .lines()
        .filter_map(|l| l.rsplit_once(": "))
        .map(|(c, s)| (c.to_string(), s.parse().expect("a status")))
        .collect()
}

/// Every entry below `dir` whose mode has the setuid or setgid bit.
fn setuid_or_setgid(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.mode() & 0o6000 != 0 {
            found.push((path.clone(), meta.mode() & 0o7777));
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
    }
    found
}

fn mode(path: PathBuf) -> u32 {
    std::fs::symlink_metadata(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// What a hostile command would do: set the bits on a file it owns, or
/// install or create one with them. (Unpacking an archive that holds a setuid
/// file is no such way: busybox's and GNU's tar, run as a user, drop the bits
/// themselves.)
const ATTEMPTS: &[&str] = &[
    "chmod u+s f",
    "chmod g+s f",
    "gnu chmod u+s f",
    "gnu install -m 4755 f installed",
    "mkdir -m 2775 d",
];

#[test]
fn a_setuid_file_made_inside_never_reaches_the_host() {
    let script = script(ATTEMPTS);

    let ws = workspace();
    let out = sandboxed(&ws, &script);
    assert_eq!(out.status, 0, "{out:?}");
    let got = statuses(&out);
    assert_eq!(got.len(), ATTEMPTS.len(), "{out:?}");
    for (command, status) in &got {
        assert_ne!(*status, 0, "{command} succeeded: {out:?}");
    }
    let left = setuid_or_setgid(ws.path());
    assert!(left.is_empty(), "setuid or setgid on the host: {left:?}");
    assert_eq!(mode(ws.path().join("f")), 0o755);

    // The control: the same commands, mount and user in a plain container.
    let control_ws = workspace();
    let out = plain_docker(&control_ws, &script);
    assert_eq!(out.status, 0, "{out:?}");
    let got = statuses(&out);
    assert_eq!(got.len(), ATTEMPTS.len(), "{out:?}");
    for (command, status) in got {
        assert_eq!(status, 0, "the control: {command}: {out:?}");
    }
    let root = control_ws.path();
    assert_eq!(
        mode(root.join("f")),
        0o6755,
        "the host file is setuid and setgid"
    );
    assert_eq!(mode(root.join("installed")), 0o4755);
    assert_eq!(mode(root.join("d")), 0o2775);
}

#[test]
fn everyday_modes_still_work() {
    let commands = [
        // busybox
        "echo x > plain",
        "chmod 755 plain",
        "echo y > script.sh && chmod +x script.sh",
        "chmod 640 f",
        "mkdir -p a/b/c",
        "mkdir -m 1777 shared",
        "cp -p plain plain-copy",
        "touch touched",
        "mkdir bt && tar -xf normal.tar -C bt",
        // GNU coreutils and tar
        "gnu install -m 0644 plain installed",
        "gnu install -m 0755 plain installed-exec",
        "gnu install -d -m 0750 installed-dir",
        "gnu chmod u+x,go-w plain",
        "gnu chmod -R u+rwX a",
        "gnu mkdir -p g/h/i",
        "gnu cp -p script.sh script-copy.sh",
        "gnu cp -a a a-copy",
        "gnu touch -d 2001-01-01 touched",
        "mkdir gt && gnu tar -xf normal.tar -C gt",
        // git: lock files made with O_CREAT|O_EXCL and renamed, objects 0444
        "gnu git init -q repo",
        "cd repo && echo a > a && chmod +x a && gnu git add a",
        "cd repo && gnu git -c user.name=u -c user.email=u@e -c maintenance.auto=0 commit -qm m",
        "cd repo && gnu git update-index --chmod=-x a && gnu git status --short | grep -q '^M'",
    ];
    let ws = workspace();
    let out = sandboxed(&ws, &script(&commands));
    assert_eq!(out.status, 0, "{out:?}");
    let failed: Vec<_> = statuses(&out)
        .into_iter()
        .filter(|(_, s)| *s != 0)
        .collect();
    assert!(failed.is_empty(), "these failed: {failed:?}\n{out:?}");
    assert_eq!(statuses(&out).len(), commands.len(), "{out:?}");
    let root = ws.path();
    for (path, expected) in [
        ("plain", 0o755),
        ("script.sh", 0o755),
        ("f", 0o640),
        ("a/b/c", 0o755),
        ("shared", 0o1777),
        ("plain-copy", 0o755),
        ("bt/data", 0o644),
        ("bt/tool", 0o755),
        ("bt/dir", 0o755),
        ("installed", 0o644),
        ("installed-exec", 0o755),
        ("installed-dir", 0o750),
        ("g/h/i", 0o755),
        ("script-copy.sh", 0o755),
        ("a-copy/b/c", 0o755),
        ("gt/data", 0o644),
        ("gt/tool", 0o755),
        ("gt/dir", 0o755),
        ("repo/a", 0o755),
    ] {
        assert_eq!(mode(root.join(path)), expected, "{path}: {out:?}");
    }
    assert!(root.join("repo/.git/HEAD").is_file());
    assert!(setuid_or_setgid(root).is_empty());
}
