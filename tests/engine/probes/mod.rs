//! The probe suite: small static C programs (`tests/probes/`) that make one
//! system call each from inside the container and print what the kernel, or
//! the seccomp filter in front of it, answered. Every answer is asserted
//! exactly, and every refusal is asked again in a control container that
//! allows the call, where the answer must differ: a probe that cannot report
//! success proves nothing.
//!
//! - `hardening`: each dangerous call fails with the errno the profile and
//!   the dropped capabilities give, the setuid and setgid modes included;
//! - `security`: which layer refuses each call (the filter itself, or only
//!   the capabilities), the calls the first probe leaves out, root inside
//!   the container, file capabilities and the masked kernel files.
//!
//! This module holds what both share: the probes' build, the workspace that
//! holds them, and the runs through sandbox and through plain docker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::common::{docker, test_image, Output, Workspace};

mod hardening;
mod security;

/// The two probe binaries, each at `/work/NAME` in a probe workspace.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Bin {
    /// `syscalls.c`: the dangerous calls and the calls that set a mode.
    Syscalls,
    /// `probe.c`: what `syscalls.c` leaves out.
    Probe,
}

impl Bin {
    const ALL: [Bin; 2] = [Bin::Syscalls, Bin::Probe];

    fn file(self) -> &'static str {
        match self {
            Bin::Syscalls => "syscalls",
            Bin::Probe => "probe",
        }
    }
}

/// Both probes, built (`static_program`), in one directory.
fn binaries() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut dir = PathBuf::new();
        for bin in Bin::ALL {
            let built = static_program(bin.file());
            dir = built.parent().expect("in a directory").to_path_buf();
        }
        dir
    })
}

/// `tests/probes/NAME.c`, compiled static once per test run with the
/// machine's gcc, into target/tmp/probes: built under a name of this
/// process's and renamed into place, so test runs side by side never see
/// half a binary.
pub(crate) fn static_program(name: &str) -> PathBuf {
    static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("probes");
    let path = dir.join(name);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.contains(name) {
        return path;
    }
    std::fs::create_dir_all(&dir).expect("create the probes' directory");
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/probes")
        .join(format!("{name}.c"));
    let partial = dir.join(format!("{name}.{}", std::process::id()));
    let compiled = Command::new("gcc")
        .args(["-static", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&partial)
        .arg(&source)
        .output()
        .expect("gcc runs (it builds the probes; install gcc and libc6-dev)");
    assert!(
        compiled.status.success(),
        "{} does not build: {}",
        source.display(),
        String::from_utf8_lossy(&compiled.stderr)
    );
    std::fs::rename(&partial, &path).expect("move a probe into place");
    built.insert(name.to_string());
    path
}

/// A workspace holding both probes, at /work/syscalls and /work/probe.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    for bin in Bin::ALL {
        std::fs::copy(binaries().join(bin.file()), ws.path().join(bin.file()))
            .expect("copy a probe");
    }
    ws
}

/// A script that runs each probe and prints `NAME: ANSWER`, or `NAME: exit
/// N` when it did not exit 0. The answer goes through a file, not a pipe: a
/// killed probe's child must not keep the shell waiting.
fn script(probes: &[(Bin, &str)]) -> String {
    probes
        .iter()
        .map(|(bin, name)| {
            format!(
                "/work/{} {name} >/tmp/probe.out 2>&1; s=$?; \
                 if [ $s = 0 ]; then echo \"{name}: $(cat /tmp/probe.out)\"; \
                 else echo \"{name}: exit $s\"; fi\n",
                bin.file()
            )
        })
        .collect()
}

fn parse(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The probes through sandbox, with `args` before the command.
fn sandboxed(ws: &Workspace, args: &[&str], probes: &[(Bin, &str)]) -> BTreeMap<String, String> {
    let script = script(probes);
    let mut full = vec!["--network", "none"];
    full.extend_from_slice(args);
    full.extend(["sh", "-c", &script]);
    let out = ws.run(&full);
    assert_eq!(out.status, 0, "sandbox run {args:?}: {out:?}");
    parse(&out.stdout)
}

/// The probes through sandbox as uid 4242 under the seccomp profile
/// `profile`: a built-in profile's name, or a file.
fn under_profile(
    ws: &Workspace,
    profile: &str,
    probes: &[(Bin, &str)],
) -> BTreeMap<String, String> {
    sandboxed(ws, &["--user", "4242:4242", "--seccomp", profile], probes)
}

/// `command` in a plain docker container (none of sandbox's hardening) with
/// `args` and the workspace at /work.
fn plain_docker(ws: &Workspace, args: &[&str], command: &[&str]) -> Output {
    let volume = format!("{}:/work", ws.path().display());
    let mut full = vec!["run", "--rm"];
    full.extend_from_slice(args);
    full.extend(["-v", &volume, test_image()]);
    full.extend_from_slice(command);
    docker(&full)
}

/// The probes in a plain docker container, with `args`.
fn in_docker(ws: &Workspace, args: &[&str], probes: &[(Bin, &str)]) -> BTreeMap<String, String> {
    let mut full = vec!["--network", "none", "--tmpfs", "/tmp", "-w", "/work"];
    full.extend_from_slice(args);
    let out = plain_docker(ws, &full, &["sh", "-c", &script(probes)]);
    assert_eq!(out.status, 0, "docker run {args:?}: {out:?}");
    parse(&out.stdout)
}

/// The probes in a plain docker container with no seccomp filter and `caps`
/// added to Docker's default capabilities.
fn unconfined(ws: &Workspace, caps: &[&str], probes: &[(Bin, &str)]) -> BTreeMap<String, String> {
    let mut args = vec!["--security-opt", "seccomp=unconfined"];
    for cap in caps {
        args.extend(["--cap-add", cap]);
    }
    in_docker(ws, &args, probes)
}

/// What the probes answer as uid 4242 under the default profile, and in
/// the two controls that allow what it refuses.
struct Answers {
    /// Through sandbox under the default profile.
    got: BTreeMap<String, String>,
    /// Through sandbox under a profile that allows everything.
    permissive: BTreeMap<String, String>,
    /// In plain docker with no filter and the capabilities asked for.
    capable: BTreeMap<String, String>,
}

/// The probes under the default profile and in both controls; the capable
/// one adds `caps` to Docker's default capabilities.
fn with_controls(ws: &Workspace, caps: &[&str], probes: &[(Bin, &str)]) -> Answers {
    Answers {
        got: sandboxed(ws, &["--user", "4242:4242"], probes),
        permissive: under_profile(ws, &allow_all(ws), probes),
        capable: unconfined(ws, caps, probes),
    }
}

/// Adds a line to `wrong` unless `got` answered `expected` for `name`.
fn expect(
    wrong: &mut Vec<String>,
    run: &str,
    got: &BTreeMap<String, String>,
    name: &str,
    expected: &str,
) {
    let answer = got.get(name).map_or("(no answer)", String::as_str);
    if answer != expected {
        wrong.push(format!(
            "{run}: {name}: expected {expected:?}, got {answer:?}"
        ));
    }
}

/// A profile that allows everything, on every x86 ABI.
fn allow_all(ws: &Workspace) -> String {
    let path = ws.home().join("allow-all.json");
    std::fs::write(
        &path,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]}"#,
    )
    .expect("write the permissive profile");
    path.to_str().expect("utf-8 path").to_string()
}
