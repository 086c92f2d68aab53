//! A copied workspace at its limits: a disk that fills while the changes
//! come back, a stop signal while the workspace goes in or comes back, and
//! what travels back for a small change in a big workspace.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{docker, remote_engine, signal, tempdir, Output, Workspace};

const MIB: usize = 1 << 20;

/// `count` files of `size` bytes under `dir`, each with bytes of its own.
fn fill(dir: &Path, count: usize, size: usize) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        let data: Vec<u8> = (0..size).map(|b| (b * 7 + i) as u8).collect();
        fs::write(dir.join(format!("f{i:02}.bin")), data).unwrap();
    }
}

/// What `-v` says the copy-back downloaded, in bytes.
fn downloaded(out: &Output) -> u64 {
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("copy-back downloaded"))
        .unwrap_or_else(|| panic!("no copy-back line: {out:?}"));
    let after = line.split("downloaded ").nth(1).unwrap();
    after.split(' ').next().unwrap().parse().unwrap()
}

/// Temporary files a copy-back left in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".part"))
        .collect()
}

/// No volume of `ws` is left on the engine (`-H host` when given).
fn assert_no_volumes(ws: &Workspace, host: &[&str]) {
    let filter = format!("label=dev.sandbox.workspace={}", ws.path().display());
    let args = [host, &["volume", "ls", "-q", "--filter", &filter]].concat();
    let left = docker(&args);
    assert_eq!(left.stdout, "", "volumes left: {left:?}");
}

/// `sandbox -v run --copy-workspace ...` in the background, its stderr read
/// as it comes.
struct Started {
    child: Child,
    /// What stderr showed up to the line waited for.
    seen: String,
    /// The rest of stderr, read on a thread of its own until sandbox exits.
    rest: std::thread::JoinHandle<String>,
}

impl Started {
    /// Starts `sandbox -v run --copy-workspace ARGS` in `ws` and returns once
    /// its stderr has shown a line containing `line`.
    fn until(ws: &Workspace, args: &[&str], line: &str) -> Started {
        let mut child = ws
            .run_command(&[&["-v", "--copy-workspace"], args].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sandbox");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        while !seen.contains(line) {
            let n = stderr.read_line(&mut seen).unwrap();
            assert_ne!(n, 0, "sandbox ended before {line:?}: {seen}");
        }
        let rest = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = stderr.read_to_string(&mut rest);
            rest
        });
        Started { child, seen, rest }
    }

    /// Waits for it to exit: its status, stdout, and all of its stderr.
    fn finish(self) -> Output {
        let mut out: Output = self.child.wait_with_output().unwrap().into();
        out.stderr = self.seen + &self.rest.join().unwrap();
        out
    }
}

/// Unmounts the tmpfs at its path when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs (the tests run as root)"
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A workspace on a disk too small for the new file: it does not come
/// back, the host's original is byte for byte as it was, no temporary file
/// is left, what fits still comes back, the deletion is held back, and one
/// line names what is missing (exit 125: the copy-back failed).
#[test]
fn a_disk_that_fills_during_copy_back_keeps_the_originals() {
    let ws = Workspace::new();
    let _tmpfs = Tmpfs::mount(ws.path(), "8m");
    let original: Vec<u8> = (0..3 * MIB).map(|b| (b % 251) as u8).collect();
    fs::write(ws.path().join("data.bin"), &original).unwrap();
    fs::write(ws.path().join("filler.bin"), vec![1u8; 2 * MIB]).unwrap();
    fs::write(ws.path().join("small.txt"), "old\n").unwrap();
    fs::write(ws.path().join("gone.txt"), "moved away\n").unwrap();

    let out: Output = ws
        .run_command(&[
            "-v",
            "--copy-workspace",
            "sh",
            "-c",
            "head -c 7340032 /dev/urandom > data.bin && printf 'hello world' > small.txt \
             && rm gone.txt; exit 3",
        ])
        .output()
        .unwrap()
        .into();

    assert_eq!(out.status, 125, "{out:?}");
    let missing: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("did not come back"))
        .collect();
    assert_eq!(missing.len(), 1, "{out:?}");
    assert!(
        missing[0].starts_with(
            "sandbox: the command exited with 3: the copy-back is incomplete: \
             data.bin (no space left on device)"
        ),
        "{out:?}"
    );
    assert!(missing[0].contains("1 deletion was held back"), "{out:?}");
    assert!(out.stderr.contains("listed 4 entries"), "listed: {out:?}");
    assert!(
        fs::read(ws.path().join("data.bin")).unwrap() == original,
        "the original is whole"
    );
    assert_eq!(
        fs::read_to_string(ws.path().join("small.txt")).unwrap(),
        "hello world",
        "what fits comes back"
    );
    assert!(
        ws.path().join("gone.txt").exists(),
        "held back: it may have been moved"
    );
    assert_eq!(leftovers(ws.path()), Vec::<String>::new());

    // The control: a writer that rewrites the file in place, on the same
    // disk, loses the original and leaves a part of the new file.
    let mut file = fs::File::create(ws.path().join("data.bin")).unwrap();
    let err = file.write_all(&vec![2u8; 7 * MIB]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(28), "ENOSPC: {err}");
    let left = fs::metadata(ws.path().join("data.bin")).unwrap().len();
    assert!(left > 0 && left < 7 * MIB as u64, "partial: {left}");
    assert_ne!(left, original.len() as u64);
}

/// An image without a shell on the remote engine: the command runs, no
/// helper can list /work, and the copy-back fetches all of it.
fn image_without_a_shell(host: &str) -> &'static str {
    const TAG: &str = "sandbox-test/no-shell:1";
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let context = tempdir();
        fs::copy("/usr/bin/busybox", context.path().join("busybox")).unwrap();
        fs::write(
            context.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nLABEL dev.sandbox.test=1\n",
        )
        .unwrap();
        let built = docker(&["build", "-q", "-t", TAG, context.path().to_str().unwrap()]);
        assert_eq!(built.status, 0, "{built:?}");
        let load = Command::new("sh")
            .args([
                "-c",
                &format!("docker save {TAG} | docker -H {host} load -q"),
            ])
            .status()
            .unwrap();
        assert!(load.success());
    });
    TAG
}

/// An 11-byte change in a workspace of 100 MiB, on an engine on another
/// "machine" (a second dockerd on loopback TCP): only the changed paths
/// travel back, and the result is the same as with the full archive.
#[test]
fn only_the_changes_travel_back() {
    let host = remote_engine();
    let ws = Workspace::new();
    fill(&ws.path().join("data"), 20, 5 * MIB);
    fs::write(ws.path().join("small.txt"), "hello\n").unwrap();
    fs::write(ws.path().join("gone.txt"), "bye\n").unwrap();
    fs::create_dir_all(ws.path().join(".git/hooks")).unwrap();
    let script = "printf 'hello world' > small.txt && rm gone.txt && mkdir -p new/d && \
                  echo made > new/d/f && ln -s small.txt link && echo x > .git/hooks/post-checkout";

    let out = ws.run_on(host, &["-v", "sh", "-c", script], b"");

    assert_eq!(out.status, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("copied back 1 changed, 4 new, 1 deleted (16 B)"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains(".git/hooks/post-checkout (protected)"),
        "{out:?}"
    );
    assert!(downloaded(&out) < 64 * 1024, "{out:?}");
    assert_eq!(
        fs::read_to_string(ws.path().join("small.txt")).unwrap(),
        "hello world"
    );
    assert!(!ws.path().join("gone.txt").exists());
    assert_eq!(
        fs::read_to_string(ws.path().join("new/d/f")).unwrap(),
        "made\n"
    );
    assert_eq!(
        fs::read_link(ws.path().join("link")).unwrap(),
        Path::new("small.txt")
    );
    assert!(!ws.path().join(".git/hooks/post-checkout").exists());
    assert_eq!(fs::read_dir(ws.path().join("data")).unwrap().count(), 20);

    // An 11-byte change alone: one file travels.
    let started = Instant::now();
    let out = ws.run_on(
        host,
        &["-v", "sh", "-c", "printf 'hello there' > small.txt"],
        b"",
    );
    let listed_in = started.elapsed();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(
        out.stderr.contains("copying the changes back: 1 requests"),
        "{out:?}"
    );
    let bytes = downloaded(&out);
    assert!(
        bytes < 4096,
        "{bytes} bytes for 11 bytes of change: {out:?}"
    );
    assert_eq!(
        fs::read_to_string(ws.path().join("small.txt")).unwrap(),
        "hello there"
    );

    // The control: an image without a shell cannot list /work, and the
    // whole workspace travels back for the same kind of change.
    let image = image_without_a_shell(host);
    let mut cmd = ws.command();
    cmd.env("DOCKER_HOST", host).args([
        "-v",
        "run",
        "--image",
        image,
        "--pull",
        "never",
        "--network",
        "none",
        "/bin/busybox",
        "sh",
        "-c",
        "printf 'hello again' > small.txt",
    ]);
    let started = Instant::now();
    let full: Output = cmd.output().unwrap().into();
    let fetched_in = started.elapsed();
    assert_eq!(full.status, 0, "{full:?}");
    assert!(
        full.stderr.contains("fetching all of /work: no listing"),
        "{full:?}"
    );
    assert!(
        full.stderr
            .contains("copied back 1 changed, 0 new, 0 deleted (11 B)"),
        "{full:?}"
    );
    let all = downloaded(&full);
    assert!(all > 100 * MIB as u64, "{all} bytes: {full:?}");
    assert_eq!(
        fs::read_to_string(ws.path().join("small.txt")).unwrap(),
        "hello again"
    );
    eprintln!(
        "an 11-byte change in 100 MiB: {bytes} bytes back in a run of {listed_in:?} with a \
         listing, {all} in {fetched_in:?} without"
    );
    assert_no_volumes(&ws, &["-H", host]);
}

/// A stop signal while the workspace is copied in: the upload is abandoned,
/// the command never runs, the exit status is the signal's, and neither the
/// container nor its volume is left.
#[test]
fn a_stop_while_the_workspace_goes_in_runs_nothing() {
    let ws = Workspace::new();
    fill(&ws.path().join("data"), 40, 5 * MIB);
    let args = ["sh", "-c", "echo RAN; echo ran > marker"];
    for (name, status) in [("INT", 130), ("TERM", 143)] {
        let started = Started::until(&ws, &args, "copying the workspace in");
        signal(&started.child, name);
        let out = started.finish();

        assert_eq!(out.status, status, "SIG{name}: {out:?}");
        assert_eq!(out.stdout, "", "the command never ran: {out:?}");
        assert!(!out.stderr.contains("copied the workspace in:"), "{out:?}");
        assert!(!ws.path().join("marker").exists());
        assert_eq!(ws.containers(), Vec::<String>::new());
        assert_no_volumes(&ws, &[]);
    }

    // The control: left alone, the same run copies everything in, runs the
    // command and brings its marker back.
    let out = Started::until(&ws, &args, "copying the workspace in").finish();
    assert_eq!((out.status, out.stdout.as_str()), (0, "RAN\n"), "{out:?}");
    assert!(out.stderr.contains("copied the workspace in: "), "{out:?}");
    assert!(ws.path().join("marker").exists());
}

/// Waits until a copy-back writes beside a file in `dir`: a file is in
/// flight.
fn wait_for_a_file_in_flight(dir: &Path) {
    let started = Instant::now();
    while leftovers(dir).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no file was copied back within 60 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether `path` is exactly what the command wrote: `size` zero bytes.
fn is_the_new_file(path: &Path, size: u64) -> bool {
    let mut file = fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 4 * MIB];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            return total == size;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return false;
        }
        total += n as u64;
    }
}

/// A stop signal while a big file comes back: the file in flight is rolled
/// back (or was already whole), the exit status is the signal's, and the
/// container and its volume are gone.
#[test]
fn a_stop_while_the_changes_come_back_leaves_whole_files() {
    const SIZE: u64 = 300_000_000;
    let ws = Workspace::new();
    let big = ws.path().join("big");
    let write = format!("head -c {SIZE} /dev/zero > big");
    let args = ["sh", "-c", write.as_str()];
    // SIGINT with the whole of /work fetched, SIGTERM after a listing (the
    // workspace has grown past what a listing pays for).
    for (name, status, listed) in [("INT", 130, false), ("TERM", 143, true)] {
        if listed {
            fs::write(ws.path().join("filler.bin"), vec![1u8; 5 * MIB]).unwrap();
        }
        fs::write(&big, "original").unwrap();
        let started = Started::until(&ws, &args, "copying the changes back");
        wait_for_a_file_in_flight(ws.path());
        signal(&started.child, name);
        let out = started.finish();

        assert_eq!(out.status, status, "SIG{name}: {out:?}");
        assert_eq!(out.stderr.contains("listed 3 entries"), listed, "{out:?}");
        let original = fs::read(&big).is_ok_and(|b| b == b"original");
        assert!(
            original || is_the_new_file(&big, SIZE),
            "SIG{name}: a partial file"
        );
        if original {
            let line = match listed {
                true => "stopped during the copy-back: big (stopped) did not come back",
                false => "stopped during the copy-back: big and what followed it did not come back",
            };
            assert!(out.stderr.contains(line), "{out:?}");
        }
        assert_eq!(leftovers(ws.path()), Vec::<String>::new(), "rolled back");
        assert_eq!(ws.containers(), Vec::<String>::new());
        assert_no_volumes(&ws, &[]);
    }

    // The controls. Left alone, the new file comes back whole and the
    // command's status is kept.
    fs::write(&big, "original").unwrap();
    let out = Started::until(&ws, &args, "copying the changes back").finish();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(is_the_new_file(&big, SIZE));
    // Killed outright (no handler runs), the writer leaves its half-made
    // file beside the original, which is still whole: what the checks
    // above would see of a half-written file.
    fs::write(&big, "original").unwrap();
    let mut started = Started::until(&ws, &args, "copying the changes back");
    wait_for_a_file_in_flight(ws.path());
    started.child.kill().unwrap();
    let _ = started.finish();
    assert_eq!(fs::read(&big).unwrap(), b"original");
    let left = leftovers(ws.path());
    assert_eq!(left.len(), 1, "{left:?}");
    fs::remove_file(ws.path().join(&left[0])).unwrap();
    for id in ws.containers() {
        docker(&["rm", "-f", "-v", &id]);
    }
}

/// The hostile round trip of `hostile_sync.rs`, after a listing: a link
/// the command put where a directory was comes back as the link, nothing is
/// written or deleted through it, and setuid does not come back.
#[test]
fn after_a_listing_links_and_setuid_come_back_as_safely() {
    const KEYS: &str = "ssh-ed25519 AAAAC3Nza the user's own key\n";
    let ws = Workspace::new();
    let victim = tempdir();
    let victim_dir = victim.path().canonicalize().unwrap();
    assert_eq!(victim_dir.parent(), ws.path().parent(), "side by side");
    fs::write(victim_dir.join("authorized_keys"), KEYS).unwrap();
    fs::write(ws.path().join("filler.bin"), vec![1u8; 5 * MIB]).unwrap();
    fs::create_dir_all(ws.path().join("d/x")).unwrap();
    fs::write(ws.path().join("d/x/authorized_keys"), "workspace copy\n").unwrap();
    let relative = format!(
        "../../{}",
        victim_dir.file_name().unwrap().to_str().unwrap()
    );
    // Setuid modes are refused by the default profile; this is about what
    // the copy-back does with one that was made.
    let profile_dir = tempdir();
    let profile = profile_dir.path().join("allow-all.json");
    fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
    let script = format!(
        "rm -r d/x && ln -s {relative} d/x && echo tool > d/tool && chmod 4755 d/tool && \
         stat -c %a d/tool"
    );

    let out = ws.run(&[
        "-v",
        "--copy-workspace",
        "--seccomp",
        profile.to_str().unwrap(),
        "sh",
        "-c",
        &script,
    ]);

    assert_eq!((out.status, out.stdout.as_str()), (0, "4755\n"), "{out:?}");
    assert!(out.stderr.contains("listed 5 entries"), "{out:?}");
    assert!(
        out.stderr
            .contains("copied back 1 changed, 1 new, 1 deleted"),
        "{out:?}"
    );
    assert_eq!(
        fs::read_to_string(victim_dir.join("authorized_keys")).unwrap(),
        KEYS
    );
    assert_eq!(fs::read_dir(&victim_dir).unwrap().count(), 1);
    let link = fs::read_link(ws.path().join("d/x")).unwrap();
    assert_eq!(link, Path::new(&relative), "came back as the link");
    let tool = fs::metadata(ws.path().join("d/tool")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&tool.permissions()) & 0o7777,
        0o755
    );

    // The control: the link leads to the victim, so a write by path
    // through it would have reached the victim's keys.
    fs::write(ws.path().join("d/x/authorized_keys"), "ssh-rsa attacker\n").unwrap();
    assert_eq!(
        fs::read_to_string(victim_dir.join("authorized_keys")).unwrap(),
        "ssh-rsa attacker\n"
    );
}

/// A file the command rewrites at the same size within the second it was
/// sent with: the engine's archive has whole seconds, so its header is what
/// was sent. It comes back with a listing (a workspace past 4 MiB) and
/// without one. The control: the header as the engine gives it, which
/// alone reads as unchanged.
#[test]
fn a_rewrite_within_the_second_it_was_sent_with_comes_back() {
    for filler in [0, 5 * MIB] {
        let ws = Workspace::new();
        fs::write(ws.path().join("filler.bin"), vec![1u8; filler]).unwrap();
        let notes = ws.path().join("notes.txt");
        fs::write(&notes, "old\n").unwrap();
        // Dated a few seconds ahead; the command waits for that second.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let second = now.as_secs() + 4;
        let file = fs::File::options().write(true).open(&notes).unwrap();
        file.set_modified(UNIX_EPOCH + Duration::from_secs(second))
            .unwrap();
        let script = format!(
            "while [ $(date +%s) -lt {second} ]; do usleep 10000; done; \
             echo new > notes.txt; stat -c %Y notes.txt"
        );

        let out = ws.run(&["-v", "--copy-workspace", "--keep", "sh", "-c", &script]);

        assert_eq!(out.status, 0, "{out:?}");
        assert_eq!(out.stdout, format!("{second}\n"), "within the second");
        assert_eq!(
            out.stderr.contains("listing the copied"),
            filler > 0,
            "{out:?}"
        );
        assert!(out.stderr.contains("copied back 1 changed"), "{out:?}");
        assert_eq!(fs::read_to_string(&notes).unwrap(), "new\n");

        // CONTROL: the engine's archive of the file says what was sent.
        let [id] = ws.containers().try_into().expect("the kept container");
        let archive = docker(&["cp", &format!("{id}:/work/notes.txt"), "-"]);
        assert_eq!(archive.status, 0, "{archive:?}");
        let mut archive = tar::Archive::new(archive.stdout_bytes.as_slice());
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        let header = entry.header();
        assert_eq!(
            (header.size().unwrap(), header.mtime().unwrap()),
            (4, second)
        );
        docker(&["rm", "-f", "-v", &id]);
    }
}
