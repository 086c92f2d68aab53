//! From inside the container, each dangerous system call is tried
//! (`tests/probes/syscalls.c`) and must fail with the exact errno the profile
//! and the dropped capabilities give. Every probe is run again in a control
//! container that allows it (a permissive seccomp profile, or capabilities
//! and no seccomp), where its answer must differ.

use std::path::Path;

use super::{
    allow_all, binaries, expect, plain_docker, under_profile, with_controls, workspace, Answers,
    Bin,
};

/// What each probe answers under the default profile, as uid 4242.
/// EPERM is the profile's answer to any call it does not list (and the
/// kernel's to one that needs a capability); ENOSYS is the profile's answer
/// to clone3, so libc falls back to clone, whose flags it can check.
const DEFAULT: &[(&str, &str)] = &[
    ("getpid", "allowed"),
    ("fork", "allowed"),
    ("socket-inet", "allowed"),
    ("socket-unix", "allowed"),
    ("socket-netlink", "allowed"),
    ("mount", "denied EPERM"),
    ("umount2", "denied EPERM"),
    ("pivot_root", "denied EPERM"),
    ("chroot", "denied EPERM"),
    ("setns", "denied EPERM"),
    ("unshare-user", "denied EPERM"),
    ("unshare-mount", "denied EPERM"),
    ("unshare-net", "denied EPERM"),
    ("unshare-pid", "denied EPERM"),
    ("unshare-uts", "denied EPERM"),
    ("unshare-ipc", "denied EPERM"),
    ("unshare-cgroup", "denied EPERM"),
    ("clone-user", "denied EPERM"),
    ("clone-mount", "denied EPERM"),
    ("clone-net", "denied EPERM"),
    ("clone-pid", "denied EPERM"),
    ("clone-uts", "denied EPERM"),
    ("clone-ipc", "denied EPERM"),
    ("clone-cgroup", "denied EPERM"),
    ("clone3", "denied ENOSYS"),
    ("keyctl", "denied EPERM"),
    ("add_key", "denied EPERM"),
    ("request_key", "denied EPERM"),
    ("bpf", "denied EPERM"),
    ("perf_event_open", "denied EPERM"),
    ("io_uring_setup", "denied EPERM"),
    ("userfaultfd", "denied EPERM"),
    ("fsopen", "denied EPERM"),
    ("open_tree", "denied EPERM"),
    ("move_mount", "denied EPERM"),
    ("open_by_handle_at", "denied EPERM"),
    ("init_module", "denied EPERM"),
    ("finit_module", "denied EPERM"),
    ("kexec_load", "denied EPERM"),
    ("reboot", "denied EPERM"),
    ("swapon", "denied EPERM"),
    ("acct", "denied EPERM"),
    ("syslog", "denied EPERM"),
    ("sethostname", "denied EPERM"),
    ("settimeofday", "denied EPERM"),
    ("mknod", "denied EPERM"),
    ("personality-aslr-off", "denied EPERM"),
    ("socket-vsock", "denied EPERM"),
    ("socket-alg", "denied EPERM"),
    ("socket-raw", "denied EPERM"),
    ("socket-packet", "denied EPERM"),
    ("ptrace", "denied EPERM"),
    ("process_vm_readv", "denied EPERM"),
];

/// The calls that set a file's mode, each as `CALL-MODE` (the probe makes
/// CALL with that octal mode on a scratch file of its own and reports the
/// mode the file has afterwards): the answer under every built-in profile,
/// as uid 4242, and under a profile that allows everything, which shows the
/// probe sees the bit set where nothing refuses it. A file made setuid in the
/// workspace stays setuid on the host, where anyone could run it as the user.
pub(super) const MODE_BITS: &[(&str, &str, &str)] = &[
    // Changing a mode: setuid, setgid or both refused, and the file's
    // mode left as it was (0644); any other mode is set.
    ("chmod-4755", "denied EPERM", "allowed 4755"),
    ("chmod-2755", "denied EPERM", "allowed 2755"),
    ("chmod-6755", "denied EPERM", "allowed 6755"),
    ("chmod-0755", "allowed 0755", "allowed 0755"),
    ("fchmod-4755", "denied EPERM", "allowed 4755"),
    ("fchmod-2755", "denied EPERM", "allowed 2755"),
    ("fchmod-0600", "allowed 0600", "allowed 0600"),
    ("fchmodat-4755", "denied EPERM", "allowed 4755"),
    ("fchmodat-2755", "denied EPERM", "allowed 2755"),
    ("fchmodat-0700", "allowed 0700", "allowed 0700"),
    // Linux 6.6 on; its allowed answer shows the engine's libseccomp knows
    // it (a rule it did not know would be skipped, refusing every mode).
    ("fchmodat2-4755", "denied EPERM", "allowed 4755"),
    ("fchmodat2-2755", "denied EPERM", "allowed 2755"),
    ("fchmodat2-0755", "allowed 0755", "allowed 0755"),
    // Creating a file with the bits in its mode.
    ("open-4755", "denied EPERM", "allowed 4755"),
    ("open-2755", "denied EPERM", "allowed 2755"),
    ("open-0644", "allowed 0644", "allowed 0644"),
    ("openat-4755", "denied EPERM", "allowed 4755"),
    ("openat-2755", "denied EPERM", "allowed 2755"),
    ("openat-0600", "allowed 0600", "allowed 0600"),
    ("creat-4755", "denied EPERM", "allowed 4755"),
    ("creat-2755", "denied EPERM", "allowed 2755"),
    ("creat-0644", "allowed 0644", "allowed 0644"),
    ("mknod-4755", "denied EPERM", "allowed 4755"),
    ("mknod-2755", "denied EPERM", "allowed 2755"),
    ("mknod-0644", "allowed 0644", "allowed 0644"),
    ("mknodat-4755", "denied EPERM", "allowed 4755"),
    ("mknodat-2755", "denied EPERM", "allowed 2755"),
    ("mknodat-0600", "allowed 0600", "allowed 0600"),
    // mkdir: the kernel itself drops both bits from the mode it is given
    // (the control's 0755); the filter refuses them anyway, so nothing
    // depends on that. The sticky bit is no privilege and stays allowed.
    ("mkdir-4755", "denied EPERM", "allowed 0755"),
    ("mkdir-2755", "denied EPERM", "allowed 0755"),
    ("mkdir-0755", "allowed 0755", "allowed 0755"),
    ("mkdir-1777", "allowed 1777", "allowed 1777"),
    ("mkdirat-4755", "denied EPERM", "allowed 0755"),
    ("mkdirat-2755", "denied EPERM", "allowed 0755"),
    ("mkdirat-0700", "allowed 0700", "allowed 0700"),
    // openat2 passes its mode in memory the filter cannot read: ENOSYS for
    // any mode, and libc falls back to openat.
    ("openat2-4755", "denied ENOSYS", "allowed 4755"),
    ("openat2-0644", "denied ENOSYS", "allowed 0644"),
    // Without O_CREAT the kernel ignores the mode, the filter cannot: libc
    // passes 0, and a program that passes garbage with those bits is refused.
    ("open-rdonly-0", "allowed 0644", "allowed 0644"),
    ("open-rdonly-4755", "denied EPERM", "allowed 0644"),
];

/// Capabilities for the control run that bypasses the capability layer. Not
/// SYS_TIME's effect on the host clock: the settimeofday probe passes NULLs.
const CONTROL_CAPS: &[&str] = &[
    "SYS_ADMIN",
    "NET_RAW",
    "MKNOD",
    "SYS_CHROOT",
    "SYS_BOOT",
    "SYS_PACCT",
    "SYSLOG",
    "SYS_PTRACE",
    "SYS_TIME",
    "SYS_MODULE",
];

/// The probes of `DEFAULT`.
fn default_probes() -> Vec<(Bin, &'static str)> {
    DEFAULT
        .iter()
        .map(|(name, _)| (Bin::Syscalls, *name))
        .collect()
}

/// The probes of `MODE_BITS`.
pub(super) fn mode_probes() -> Vec<(Bin, &'static str)> {
    MODE_BITS
        .iter()
        .map(|(name, _, _)| (Bin::Syscalls, *name))
        .collect()
}

#[test]
fn every_dangerous_call_is_refused_and_every_probe_can_tell() {
    let ws = workspace();
    let Answers {
        got,
        permissive,
        capable,
    } = with_controls(&ws, CONTROL_CAPS, &default_probes());

    let mut wrong = Vec::new();
    for (name, expected) in DEFAULT {
        expect(&mut wrong, "default", &got, name, expected);
        if expected.starts_with("denied") {
            let controls = [&permissive[*name], &capable[*name]];
            // A control that broke (the probe gone, a shell error) proves
            // nothing either.
            if let Some(bad) = controls
                .iter()
                .find(|c| !(c.as_str() == "allowed" || c.starts_with("denied ")))
            {
                wrong.push(format!("{name}: a control gave no answer: {bad}"));
            }
            if controls.iter().all(|c| c.as_str() == *expected) {
                wrong.push(format!(
                    "{name}: the controls answered {controls:?} too; the probe proves nothing"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_call_sets_the_setuid_or_setgid_bit_and_every_probe_can_tell() {
    let ws = workspace();
    let probes = mode_probes();
    let permissive = under_profile(&ws, &allow_all(&ws), &probes);
    let mut wrong = Vec::new();
    for profile in ["default", "strict", "debug"] {
        let got = under_profile(&ws, profile, &probes);
        for (name, expected, _) in MODE_BITS {
            expect(&mut wrong, profile, &got, name, expected);
        }
    }
    for (name, expected, control) in MODE_BITS {
        expect(&mut wrong, "allow-all", &permissive, name, control);
        // The table itself: a refusal its control does not undo proves nothing.
        if expected.starts_with("denied") && control == expected {
            wrong.push(format!("{name}: the control answers {control} too"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_32_bit_entry_point_is_closed() {
    let ws = workspace();
    // Not in the profile's architectures: the filter kills the caller
    // (SIGSYS, 31) whatever the call.
    let out = ws.run(&["sh", "-c", "/work/syscalls int80-getpid; echo status=$?"]);
    assert!(out.stdout.ends_with("status=159\n"), "{out:?}");
    let open = allow_all(&ws);
    let out = ws.run(&[
        "--seccomp",
        &open,
        "sh",
        "-c",
        "/work/syscalls int80-getpid",
    ]);
    assert_eq!(out.stdout, "allowed\n", "the control: {out:?}");
}

#[test]
fn strict_narrows_sockets_and_debug_opens_tracing() {
    let ws = workspace();
    let probes = default_probes();
    let strict = under_profile(&ws, "strict", &probes);
    let debug = under_profile(&ws, "debug", &probes);
    for (name, default) in DEFAULT {
        let strict_expected = match *name {
            "socket-netlink" => "denied EPERM",
            _ => default,
        };
        assert_eq!(strict[*name], strict_expected, "strict: {name}");
        let debug_expected = match *name {
            "ptrace" | "process_vm_readv" | "personality-aslr-off" => "allowed",
            _ => default,
        };
        assert_eq!(debug[*name], debug_expected, "debug: {name}");
    }
}

#[test]
fn kernel_interfaces_stay_read_only_and_the_engine_out_of_reach() {
    let ws = workspace();
    let out = ws.run(&[
        "--user",
        "4242:4242",
        "sh",
        "-c",
        "for f in /proc/sys/kernel/hostname /proc/sysrq-trigger /sys/fs/cgroup/pids/pids.max \
         /tmp/writable; do echo \"$f: $(/work/syscalls write:$f)\"; done; \
         ls /var/run/docker.sock /run/docker.sock 2>&1 | grep -c 'No such file'",
    ]);
    let got = super::parse(&out.stdout);
    for path in [
        "/proc/sys/kernel/hostname",
        "/proc/sysrq-trigger",
        "/sys/fs/cgroup/pids/pids.max",
    ] {
        // Some kernels have no sysrq-trigger at all: then, and only then,
        // "no such file" is the answer, not a refusal.
        let absent = path == "/proc/sysrq-trigger" && !Path::new(path).exists();
        let expected: &[&str] = if !absent {
            &["denied EACCES", "denied EROFS", "denied EPERM"]
        } else {
            &["denied ENOENT"]
        };
        assert!(expected.contains(&got[path].as_str()), "{path}: {out:?}");
    }
    assert_eq!(
        got["/tmp/writable"], "allowed",
        "the probe can write: {out:?}"
    );
    assert!(
        out.stdout.ends_with("2\n"),
        "no engine socket inside: {out:?}"
    );
}

#[test]
fn a_setuid_binary_does_not_make_root() {
    let ws = workspace();
    let suid = ws.path().join("suid-probe");
    std::fs::copy(binaries().join(Bin::Syscalls.file()), &suid).unwrap();
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&suid, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    let out = ws.run(&["--user", "4242:4242", "/work/suid-probe", "euid"]);
    assert_eq!(out.stdout, "4242\n", "{out:?}");

    // The control: the same binary, same mount, without sandbox's hardening.
    let control = plain_docker(&ws, &["--user", "4242:4242"], &["/work/suid-probe", "euid"]);
    assert_eq!(
        control.stdout, "0\n",
        "setuid works in the control: {control:?}"
    );
}
