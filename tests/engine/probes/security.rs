//! The probe suite's second half. `hardening` runs `tests/probes/syscalls.c`
//! and shows that each dangerous call fails; this module shows what refuses
//! it, and covers what that half leaves out:
//!
//! - which layer refuses each call: the seccomp filter itself, or only the
//!   dropped capabilities (a copy of each profile whose default action kills
//!   tells them apart, through sandbox and the engine, for every probe of
//!   both suites, the setuid and setgid modes included);
//! - the calls `syscalls.c` does not try (`tests/probes/probe.c`): the rest of
//!   the ptrace family, of the new mount API and of the namespace calls, the
//!   host's clock, modules, I/O ports and fanotify, the x32 ABI, and the calls
//!   strict alone refuses;
//! - root inside the container: no capability, so no other user's files, ids
//!   or device nodes, and the kernel's tunables behind read-only mounts;
//! - file capabilities, and the kernel files the engine masks.
//!
//! Every answer is asserted exactly, with a control run that shows the probe
//! can give another one. Runs are as uid 4242 unless root is the point.

use std::path::Path;
use std::process::Command;

use crate::common::{docker, test_image, Workspace};

use super::hardening::{mode_probes, MODE_BITS};
use super::{
    binaries, expect, in_docker, plain_docker, sandboxed, under_profile, with_controls, workspace,
    Answers, Bin,
};

const OK: &str = "allowed";
const EPERM: &str = "denied EPERM";
const EACCES: &str = "denied EACCES";
const EROFS: &str = "denied EROFS";
const ENOSYS: &str = "denied ENOSYS";
const EINVAL: &str = "denied EINVAL";
const EBADF: &str = "denied EBADF";
/// A probe the filter killed: the shell's status for SIGSYS, 128 + 31.
const SIGSYS: &str = "exit 159";

/// What one profile does with one probe's call.
#[derive(Clone, Copy, Debug)]
enum Cell {
    /// The profile does not list the call, so its default action answers:
    /// EPERM (`defaultErrnoRet: 1`), and SIGSYS under the killing copy.
    Unlisted,
    /// The profile lets the call through, or a rule of its own answers (clone3's
    /// ENOSYS, which makes libc fall back to clone): the same line under the
    /// killing copy. What refuses such a call is the kernel, never the filter.
    Passes(&'static str),
    /// The profile names no architecture but the native one, so the filter
    /// kills a call through another ABI whatever the profile's actions.
    Killed,
}

use Cell::{Killed, Passes, Unlisted};

impl Cell {
    /// The line under the profile as it is.
    fn plain(self) -> &'static str {
        match self {
            Unlisted => EPERM,
            Passes(line) => line,
            Killed => SIGSYS,
        }
    }

    /// The line under the copy whose default action kills.
    fn killing(self) -> &'static str {
        match self {
            Unlisted | Killed => SIGSYS,
            Passes(line) => line,
        }
    }
}

/// One probe under the three built-in profiles, as uid 4242.
struct Row {
    bin: Bin,
    name: &'static str,
    default: Cell,
    strict: Cell,
    debug: Cell,
    /// For this module's probes: the answer through sandbox under a profile
    /// that allows everything (no capabilities still), and in a docker
    /// container as root with no filter and SYS_ADMIN, SYS_NICE and
    /// SYS_TTY_CONFIG added. `hardening` has the controls of its own probes.
    controls: Option<(&'static str, &'static str)>,
}

const fn old(name: &'static str, default: Cell, strict: Cell, debug: Cell) -> Row {
    Row {
        bin: Bin::Syscalls,
        name,
        default,
        strict,
        debug,
        controls: None,
    }
}

const fn new(
    name: &'static str,
    default: Cell,
    strict: Cell,
    debug: Cell,
    permissive: &'static str,
    capable: &'static str,
) -> Row {
    Row {
        bin: Bin::Probe,
        name,
        default,
        strict,
        debug,
        controls: Some((permissive, capable)),
    }
}

/// Every probe of both suites, by profile. The rows of `hardening`'s probe
/// (`old`) only run under the killing copies: their plain answers and
/// controls are asserted there.
#[rustfmt::skip]
const SECCOMP: &[Row] = &[
    // Sanity: the killing copies are no deny-everything.
    old("fork", Passes(OK), Passes(OK), Passes(OK)),
    old("socket-inet", Passes(OK), Passes(OK), Passes(OK)),
    old("socket-unix", Passes(OK), Passes(OK), Passes(OK)),
    // Strict keeps AF_UNIX, AF_INET and AF_INET6 only.
    old("socket-netlink", Passes(OK), Unlisted, Passes(OK)),
    // The filter itself refuses all of these: without it, the dropped
    // capabilities would still refuse most (see `hardening`'s controls),
    // but a capability granted by mistake would not open them.
    old("mount", Unlisted, Unlisted, Unlisted),
    old("umount2", Unlisted, Unlisted, Unlisted),
    old("pivot_root", Unlisted, Unlisted, Unlisted),
    old("chroot", Unlisted, Unlisted, Unlisted),
    old("setns", Unlisted, Unlisted, Unlisted),
    old("unshare-user", Unlisted, Unlisted, Unlisted),
    old("unshare-mount", Unlisted, Unlisted, Unlisted),
    old("unshare-net", Unlisted, Unlisted, Unlisted),
    old("unshare-pid", Unlisted, Unlisted, Unlisted),
    old("unshare-uts", Unlisted, Unlisted, Unlisted),
    old("unshare-ipc", Unlisted, Unlisted, Unlisted),
    old("unshare-cgroup", Unlisted, Unlisted, Unlisted),
    // clone is allowed only with no namespace flag (masked compare).
    old("clone-user", Unlisted, Unlisted, Unlisted),
    old("clone-mount", Unlisted, Unlisted, Unlisted),
    old("clone-net", Unlisted, Unlisted, Unlisted),
    old("clone-pid", Unlisted, Unlisted, Unlisted),
    old("clone-uts", Unlisted, Unlisted, Unlisted),
    old("clone-ipc", Unlisted, Unlisted, Unlisted),
    old("clone-cgroup", Unlisted, Unlisted, Unlisted),
    old("clone3", Passes(ENOSYS), Passes(ENOSYS), Passes(ENOSYS)),
    old("keyctl", Unlisted, Unlisted, Unlisted),
    old("add_key", Unlisted, Unlisted, Unlisted),
    old("request_key", Unlisted, Unlisted, Unlisted),
    old("bpf", Unlisted, Unlisted, Unlisted),
    old("perf_event_open", Unlisted, Unlisted, Unlisted),
    old("io_uring_setup", Unlisted, Unlisted, Unlisted),
    old("userfaultfd", Unlisted, Unlisted, Unlisted),
    old("fsopen", Unlisted, Unlisted, Unlisted),
    old("open_tree", Unlisted, Unlisted, Unlisted),
    old("move_mount", Unlisted, Unlisted, Unlisted),
    old("open_by_handle_at", Unlisted, Unlisted, Unlisted),
    old("init_module", Unlisted, Unlisted, Unlisted),
    old("finit_module", Unlisted, Unlisted, Unlisted),
    old("kexec_load", Unlisted, Unlisted, Unlisted),
    old("reboot", Unlisted, Unlisted, Unlisted),
    old("swapon", Unlisted, Unlisted, Unlisted),
    old("acct", Unlisted, Unlisted, Unlisted),
    old("syslog", Unlisted, Unlisted, Unlisted),
    old("sethostname", Unlisted, Unlisted, Unlisted),
    old("settimeofday", Unlisted, Unlisted, Unlisted),
    old("socket-vsock", Unlisted, Unlisted, Unlisted),
    old("socket-alg", Unlisted, Unlisted, Unlisted),
    old("personality-aslr-off", Unlisted, Unlisted, Passes(OK)),
    old("ptrace", Unlisted, Unlisted, Passes(OK)),
    old("process_vm_readv", Unlisted, Unlisted, Passes(OK)),
    // Only the missing capability refuses these, as in Docker's profile:
    // mknod (CAP_MKNOD), raw IP (CAP_NET_RAW), and AF_PACKET (CAP_NET_RAW)
    // everywhere but strict, whose socket families leave it out.
    old("mknod", Passes(EPERM), Passes(EPERM), Passes(EPERM)),
    old("socket-raw", Passes(EPERM), Passes(EPERM), Passes(EPERM)),
    old("socket-packet", Passes(EPERM), Unlisted, Passes(EPERM)),
    old("int80-getpid", Killed, Killed, Killed),
    // This module's probes. Sanity first.
    new("getpid", Passes(OK), Passes(OK), Passes(OK), OK, OK),
    new("socket-inet6", Passes(OK), Passes(OK), Passes(OK), OK, OK),
    new("pidfd_open", Passes(OK), Passes(OK), Passes(OK), OK, OK),
    // What ptrace would give, on our own child: another process's files
    // (pidfd_getfd, left out of debug too), its memory layout (kcmp), its
    // memory (process_vm_writev), its paging (process_madvise: the kernel
    // also wants CAP_SYS_NICE), and being traced (PTRACE_TRACEME).
    new("pidfd_getfd", Unlisted, Unlisted, Unlisted, OK, OK),
    new("kcmp", Unlisted, Unlisted, Passes(OK), OK, OK),
    new("process_vm_writev", Unlisted, Unlisted, Passes(OK), OK, OK),
    new("process_madvise", Unlisted, Unlisted, Unlisted, EPERM, OK),
    new("ptrace-traceme", Unlisted, Unlisted, Passes(OK), OK, OK),
    // The rest of the new mount API; the controls get no fs context (EBADF,
    // EINVAL) or no mount (ENOENT) once SYS_ADMIN lets them past may_mount.
    new("fspick", Unlisted, Unlisted, Unlisted, EPERM, OK),
    new("fsconfig", Unlisted, Unlisted, Unlisted, EINVAL, EINVAL),
    new("fsmount", Unlisted, Unlisted, Unlisted, EPERM, EBADF),
    new("mount_setattr", Unlisted, Unlisted, Unlisted, EPERM, "denied ENOENT"),
    // unshare is refused whatever the flags, even harmless CLONE_FILES.
    new("unshare-files", Unlisted, Unlisted, Unlisted, OK, OK),
    new("unshare-time", Unlisted, Unlisted, Unlisted, EPERM, OK),
    new("setns-fd", Unlisted, Unlisted, Unlisted, EPERM, OK),
    // The host's clock, modules and I/O ports. ENOSYS in the controls: this
    // kernel has no kexec, no modules and no ioperm/iopl; EFAULT: the NULL
    // time is read before any permission check.
    new("clock_settime", Unlisted, Unlisted, Unlisted, "denied EFAULT", "denied EFAULT"),
    new("setdomainname", Unlisted, Unlisted, Unlisted, EPERM, OK),
    new("kexec_file_load", Unlisted, Unlisted, Unlisted, ENOSYS, ENOSYS),
    new("delete_module", Unlisted, Unlisted, Unlisted, ENOSYS, ENOSYS),
    new("quotactl", Unlisted, Unlisted, Unlisted, "denied ENOTBLK", "denied ENOTBLK"),
    new("ioperm", Unlisted, Unlisted, Unlisted, ENOSYS, ENOSYS),
    new("iopl", Unlisted, Unlisted, Unlisted, ENOSYS, ENOSYS),
    new("vhangup", Unlisted, Unlisted, Unlisted, EPERM, OK),
    // Unprivileged fanotify exists since Linux 5.13; only the filter stops it.
    new("fanotify_init", Unlisted, Unlisted, Unlisted, OK, OK),
    new("io_uring_enter", Unlisted, Unlisted, Unlisted, EBADF, EBADF),
    new("io_uring_register", Unlisted, Unlisted, Unlisted, EINVAL, EINVAL),
    new("personality-read-implies-exec", Unlisted, Unlisted, Unlisted, OK, OK),
    new("personality-linux32", Passes(OK), Unlisted, Passes(OK), OK, OK),
    // The x32 ABI (bit 30 of the number): killed, not refused. This kernel
    // has no x32, so the controls can only say ENOSYS; that they live shows
    // the filter is what kills.
    new("x32-getpid", Killed, Killed, Killed, ENOSYS, ENOSYS),
    // What strict refuses and default allows (profiles/README.md).
    new("memfd_secret", Passes(OK), Unlisted, Passes(OK), OK, OK),
    new("modify_ldt", Passes(OK), Unlisted, Passes(OK), OK, OK),
    new("mq_open", Passes(OK), Unlisted, Passes(OK), OK, OK),
    new("io_setup", Passes(OK), Unlisted, Passes(OK), OK, OK),
    new("mincore", Passes(OK), Unlisted, Passes(OK), OK, OK),
    new("cachestat", Passes(OK), Unlisted, Passes(OK), OK, OK),
    new("name_to_handle_at", Passes(OK), Unlisted, Passes(OK), OK, OK),
    // Past the filter the kernel finds no fanotify descriptor.
    new("fanotify_mark", Passes(EBADF), Unlisted, Passes(EBADF), EBADF, EBADF),
];

/// As root (uid 0, which is the host's root: there is no user namespace),
/// under the default profile, and in the control: docker as root with the
/// same profile file, no-new-privileges, Docker's default capabilities
/// (CHOWN, DAC_OVERRIDE, FOWNER, SETUID, SETGID, MKNOD, NET_RAW, ...) plus
/// SYS_NICE, and the probe's device allowed. Each pair shows the profile
/// lets the call through and the dropped capability, the device cgroup or a
/// read-only mount is what stops root.
#[rustfmt::skip]
const ROOT: &[(Bin, &str, &str, &str)] = &[
    (Bin::Probe, "setuid", EPERM, OK),
    (Bin::Probe, "setgid", EPERM, OK),
    (Bin::Probe, "setgroups", EPERM, OK),
    (Bin::Probe, "chown", EPERM, OK),
    // The test's file of uid 4243, mode 0600: CAP_DAC_OVERRIDE, CAP_FOWNER.
    (Bin::Probe, "read:/work/probe-secret", EACCES, OK),
    (Bin::Probe, "chmod:/work/probe-secret", EPERM, OK),
    (Bin::Probe, "nice-raise", EACCES, OK),
    (Bin::Syscalls, "mknod", EPERM, OK),
    (Bin::Syscalls, "socket-raw", EPERM, OK),
    (Bin::Syscalls, "socket-packet", EPERM, OK),
    // /dev/fuse's numbers on a node the test made in the workspace, which
    // is mounted without nodev: only the device cgroup refuses it.
    (Bin::Probe, "read:/work/probe-fuse", EPERM, OK),
    // Root owns these, so only the read-only mounts refuse (uid 4242 would
    // get EACCES first). Opening is enough: nothing is written. No control
    // can open them (only --privileged would), so EROFS, which only a
    // read-only mount gives, stands on its own.
    (Bin::Probe, "openw:/proc/sys/kernel/core_pattern", EROFS, EROFS),
    (Bin::Probe, "openw:/proc/sys/vm/drop_caches", EROFS, EROFS),
    (Bin::Probe, "openw:/sys/kernel/mm/transparent_hugepage/enabled", EROFS, EROFS),
    // This machine's cgroup v1 hierarchy: the container's own limits.
    (Bin::Probe, "openw:/sys/fs/cgroup/memory/memory.limit_in_bytes", EROFS, EROFS),
    (Bin::Probe, "openw:/sys/fs/cgroup/pids/pids.max", EROFS, EROFS),
    // The probe can open a /proc file for writing where nothing forbids it.
    (Bin::Probe, "openw:/proc/self/oom_score_adj", OK, OK),
];

fn new_probes() -> Vec<(Bin, &'static str)> {
    SECCOMP
        .iter()
        .filter(|r| r.bin == Bin::Probe)
        .map(|r| (r.bin, r.name))
        .collect()
}

/// profiles/NAME.json with the default action SCMP_ACT_KILL_PROCESS: what
/// the profile refuses by default now kills the probe, while what it lets
/// through, or answers with a rule of its own, is unchanged. A changed
/// defaultErrnoRet would not do: docker 20.10 drops it and answers EPERM.
fn killing_copy(ws: &Workspace, name: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("profiles/{name}.json"));
    let text = std::fs::read_to_string(&file).expect("read a built-in profile");
    let mut profile: serde_json::Value = serde_json::from_str(&text).expect("a JSON profile");
    let object = profile.as_object_mut().expect("a profile is an object");
    assert_eq!(
        object["defaultAction"], "SCMP_ACT_ERRNO",
        "{name} is an allow-list"
    );
    object.insert("defaultAction".into(), "SCMP_ACT_KILL_PROCESS".into());
    object.remove("defaultErrnoRet");
    let path = ws.home().join(format!("{name}-killing.json"));
    std::fs::write(&path, profile.to_string()).expect("write the killing copy");
    path.to_str().expect("utf-8 path").to_string()
}

#[test]
fn the_calls_the_first_suite_leaves_out_are_refused_and_every_control_can_tell() {
    let ws = workspace();
    let Answers {
        got,
        permissive,
        capable,
    } = with_controls(
        &ws,
        &["SYS_ADMIN", "SYS_NICE", "SYS_TTY_CONFIG"],
        &new_probes(),
    );
    let mut wrong = Vec::new();
    for row in SECCOMP.iter().filter(|r| r.bin == Bin::Probe) {
        let (open, with_caps) = row
            .controls
            .expect("a control for each of this module's probes");
        expect(&mut wrong, "default", &got, row.name, row.default.plain());
        expect(&mut wrong, "allow-all profile", &permissive, row.name, open);
        expect(
            &mut wrong,
            "capabilities, no filter",
            &capable,
            row.name,
            with_caps,
        );
        // The table itself: a refusal no control undoes proves nothing.
        let refused = matches!(row.default, Unlisted | Killed);
        if refused && open == row.default.plain() && with_caps == open {
            wrong.push(format!("{}: no control answers otherwise", row.name));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn strict_and_debug_answer_the_new_probes_as_documented() {
    let ws = workspace();
    let probes = new_probes();
    let strict = under_profile(&ws, "strict", &probes);
    let debug = under_profile(&ws, "debug", &probes);
    let mut wrong = Vec::new();
    for row in SECCOMP.iter().filter(|r| r.bin == Bin::Probe) {
        expect(&mut wrong, "strict", &strict, row.name, row.strict.plain());
        expect(&mut wrong, "debug", &debug, row.name, row.debug.plain());
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Under a copy of each profile whose default action kills, a probe dies
/// exactly where the filter itself refuses the call: EPERM from the plain
/// profile cannot say whether the filter or a missing capability answered.
#[test]
fn the_filter_itself_refuses_each_call_not_only_the_dropped_capabilities() {
    let ws = workspace();
    let mut probes: Vec<(Bin, &str)> = SECCOMP.iter().map(|r| (r.bin, r.name)).collect();
    probes.extend(mode_probes());
    let mut wrong = Vec::new();
    for profile in ["default", "strict", "debug"] {
        let copy = killing_copy(&ws, profile);
        let got = under_profile(&ws, &copy, &probes);
        let run = format!("{profile}, killing copy");
        for row in SECCOMP {
            let cell = match profile {
                "default" => row.default,
                "strict" => row.strict,
                _ => row.debug,
            };
            expect(&mut wrong, &run, &got, row.name, cell.killing());
        }
        // `hardening`'s mode probes, the same under every profile: a mode
        // with the setuid or setgid bit matches no rule, so the default
        // action answers it, which kills here.
        for (name, answer, _) in MODE_BITS {
            let cell = if *answer == EPERM {
                Unlisted
            } else {
                Passes(answer)
            };
            expect(&mut wrong, &run, &got, name, cell.killing());
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn root_inside_holds_no_capability_and_kernel_tunables_stay_read_only() {
    let ws = workspace();
    let secret = ws.path().join("probe-secret");
    std::fs::write(&secret, "secret\n").unwrap();
    std::os::unix::fs::chown(&secret, Some(4243), Some(4243)).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let fuse = ws.path().join("probe-fuse");
    let made = Command::new("mknod")
        .arg(&fuse)
        .args(["c", "10", "229"])
        .status()
        .expect("run mknod (coreutils)");
    assert!(
        made.success(),
        "mknod {} failed (the tests run as root)",
        fuse.display()
    );
    std::fs::set_permissions(&fuse, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();

    let probes: Vec<(Bin, &str)> = ROOT.iter().map(|(bin, name, _, _)| (*bin, *name)).collect();
    let got = sandboxed(&ws, &["--user", "0:0"], &probes);
    let profile = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/default.json");
    let seccomp = format!("seccomp={profile}");
    let control = in_docker(
        &ws,
        &[
            "--security-opt",
            &seccomp,
            "--security-opt",
            "no-new-privileges",
            "--cap-add",
            "SYS_NICE",
            "--device-cgroup-rule",
            "c 10:229 r",
        ],
        &probes,
    );
    let mut wrong = Vec::new();
    for (_, name, expected, in_control) in ROOT {
        expect(&mut wrong, "sandbox as root", &got, name, expected);
        expect(
            &mut wrong,
            "docker with capabilities",
            &control,
            name,
            in_control,
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A binary with file capabilities gains none. With the effective bit the
/// kernel refuses to run it at all, as the empty bounding set cannot grant
/// what it asks for; without the bit it runs with nothing permitted. The
/// control shows both grant CAP_NET_RAW (bit 13) in a plain container.
#[test]
fn file_capabilities_grant_nothing() {
    let ws = workspace();
    for (file, caps) in [
        ("probe-fcap-e", "cap_net_raw+ep"),
        ("probe-fcap-p", "cap_net_raw+p"),
    ] {
        let path = ws.path().join(file);
        std::fs::copy(binaries().join(Bin::Probe.file()), &path).unwrap();
        let set = Command::new("setcap")
            .arg(caps)
            .arg(&path)
            .status()
            .expect("setcap runs (apt-get install libcap2-bin)");
        assert!(set.success(), "setcap {caps} {} failed", path.display());
    }
    let script = "/work/probe-fcap-e caps; echo \"exit $?\"; /work/probe-fcap-p caps";
    let out = ws.run(&["--user", "4242:4242", "sh", "-c", script]);
    assert_eq!(out.stdout, "exit 126\ncaps eff=0 prm=0\n", "{out:?}");
    assert!(out.stderr.contains("Operation not permitted"), "{out:?}");

    let control = plain_docker(&ws, &["--user", "4242:4242"], &["sh", "-c", script]);
    assert_eq!(
        control.stdout, "caps eff=2000 prm=2000\nexit 0\ncaps eff=0 prm=2000\n",
        "the control: {control:?}"
    );
}

/// The engine's masked paths, from inside: the kernel's timers and the
/// firmware tables read as empty. (run.rs checks the masks are requested.)
#[test]
fn masked_kernel_files_read_as_empty() {
    let ws = Workspace::new();
    let script = "echo $(wc -c < /proc/timer_list) $(ls /sys/firmware | wc -l)";
    let out = ws.run(&["sh", "-c", script]);
    assert_eq!(out.stdout, "0 0\n", "{out:?}");
    let control = docker(&[
        "run",
        "--rm",
        "--security-opt",
        "systempaths=unconfined",
        test_image(),
        "sh",
        "-c",
        script,
    ]);
    let counts: Vec<u64> = control
        .stdout
        .split_whitespace()
        .map(|n| n.parse().expect("two counts"))
        .collect();
    assert!(
        counts.len() == 2 && counts.iter().all(|n| *n > 0),
        "unmasked, both have content: {control:?}"
    );
}
