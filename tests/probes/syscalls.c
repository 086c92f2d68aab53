/*
 * The first probe: one dangerous system call per probe, and each call that
 * sets a file's mode (tests/engine/probes/hardening.rs). What a probe
 * prints, and the helpers, are in common.h.
 *
 *   syscalls NAME   prints "allowed" or "denied ERRNO_NAME", exits 0
 *   syscalls CALL-MODE   (chmod-4755, openat-0644, ...) makes CALL with that
 *                octal mode on a scratch file and prints "allowed MODE",
 *                the mode the file then has, or "denied ERRNO_NAME" when
 *                the call failed and left the file as it was
 *
 * Built static by the engine tests and run inside the container.
 */
#include "common.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/openat2.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452 /* Linux 6.6; the same number on every architecture */
#endif

/* clone(flags) with a child that exits at once: raw, so glibc's wrapper and
 * its stack handling stay out of it. */
static int probe_clone(unsigned long flags) {
    long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid((pid_t)pid, NULL, 0);
    return verdict(pid);
}

/* The mode bits of `path` (without its type), or -1 if it is not there. */
static long mode_of(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 ? (long)(st.st_mode & 07777) : -1;
}

static void remove_scratch(const char *path) {
    if (unlink(path) < 0)
        rmdir(path);
}

/* CALL-MODE: the calls that set a file's mode, each with `mode`. The ones
 * that change a mode get a file of mode 0644 to change; the ones that create
 * get a path that does not exist. The answer says whether the call succeeded
 * and what mode the file has afterwards, so a control run shows the setuid
 * bit really set, and a refusal that the file is as it was. Nothing is left
 * behind. Returns -1 for a call it does not know. */
static int mode_probe(const char *call, mode_t mode) {
    const char *path = scratch("probe-mode");
    umask(0); /* the mode asked for is the mode given */
    remove_scratch(path);
    int changes = !strcmp(call, "chmod") || !strcmp(call, "fchmod") || !strcmp(call, "fchmodat") ||
                  !strcmp(call, "fchmodat2") || !strcmp(call, "open-rdonly");
    long before = -1;
    int fd = -1;
    if (changes) {
        int made = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (made < 0)
            return setup_failed();
        close(made);
        before = 0644;
    }
    long ret;
    if (!strcmp(call, "chmod")) ret = syscall(SYS_chmod, path, mode);
    else if (!strcmp(call, "fchmod")) {
        fd = open(path, O_RDONLY);
        ret = syscall(SYS_fchmod, fd, mode);
    }
    else if (!strcmp(call, "fchmodat")) ret = syscall(SYS_fchmodat, AT_FDCWD, path, mode);
    else if (!strcmp(call, "fchmodat2")) ret = syscall(SYS_fchmodat2, AT_FDCWD, path, mode, 0);
    /* No O_CREAT: the kernel ignores the mode, the filter cannot know that. */
    else if (!strcmp(call, "open-rdonly")) ret = fd = (int)syscall(SYS_open, path, O_RDONLY, mode);
    else if (!strcmp(call, "open")) ret = fd = (int)syscall(SYS_open, path, O_WRONLY | O_CREAT | O_EXCL, mode);
    else if (!strcmp(call, "openat"))
        ret = fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_EXCL, mode);
    else if (!strcmp(call, "openat2")) {
        struct open_how how = {.flags = O_WRONLY | O_CREAT | O_EXCL, .mode = mode};
        ret = fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
    }
    else if (!strcmp(call, "creat")) ret = fd = (int)syscall(SYS_creat, path, mode);
    else if (!strcmp(call, "mkdir")) ret = syscall(SYS_mkdir, path, mode);
    else if (!strcmp(call, "mkdirat")) ret = syscall(SYS_mkdirat, AT_FDCWD, path, mode);
    else if (!strcmp(call, "mknod")) ret = syscall(SYS_mknod, path, S_IFREG | mode, 0);
    else if (!strcmp(call, "mknodat")) ret = syscall(SYS_mknodat, AT_FDCWD, path, S_IFREG | mode, 0);
    else return -1;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    long after = mode_of(path);
    remove_scratch(path);
    if (ret >= 0)
        printf("allowed %04lo\n", after);
    else if (after == before)
        printf("denied %s\n", errno_name(saved));
    else if (before < 0)
        printf("denied %s, yet created %04lo\n", errno_name(saved), after);
    else
        printf("denied %s, yet mode %04lo\n", errno_name(saved), after);
    return 0;
}

int main(int argc, char **argv) {
    const char *p = probe_arg(argc, argv);
    if (!p)
        return 2;
    static char buf[64];

    if (!strcmp(p, "getpid")) return verdict(syscall(SYS_getpid));
    if (!strcmp(p, "fork")) return probe_clone(0);
    if (!strcmp(p, "euid")) { printf("%d\n", (int)geteuid()); return 0; }

    /* Paths are relative to the working directory (/work), which exists in
     * the control runs too. A control run may succeed, so nothing here may
     * leave a change behind for the probes after it: what is mounted is
     * unmounted, and umount2, move_mount and pivot_root name a path that is no mount. */
    if (!strcmp(p, "mount")) {
        mkdir("probe-mnt", 0700);
        long ret = syscall(SYS_mount, "none", "probe-mnt", "tmpfs", 0, NULL);
        int saved = errno;
        if (ret >= 0)
            umount2("probe-mnt", MNT_DETACH);
        rmdir("probe-mnt");
        return report(ret, saved);
    }
    if (!strcmp(p, "umount2")) return verdict(syscall(SYS_umount2, "probe-no-mount", MNT_DETACH));
    if (!strcmp(p, "pivot_root")) return verdict(syscall(SYS_pivot_root, "probe-no-mount", "probe-no-mount"));
    if (!strcmp(p, "chroot")) return verdict(syscall(SYS_chroot, "."));
    if (!strcmp(p, "setns")) return verdict(syscall(SYS_setns, 0, 0));

    if (!strcmp(p, "unshare-user")) return verdict(syscall(SYS_unshare, CLONE_NEWUSER));
    if (!strcmp(p, "unshare-mount")) return verdict(syscall(SYS_unshare, CLONE_NEWNS));
    if (!strcmp(p, "unshare-net")) return verdict(syscall(SYS_unshare, CLONE_NEWNET));
    if (!strcmp(p, "unshare-pid")) return verdict(syscall(SYS_unshare, CLONE_NEWPID));
    if (!strcmp(p, "unshare-uts")) return verdict(syscall(SYS_unshare, CLONE_NEWUTS));
    if (!strcmp(p, "unshare-ipc")) return verdict(syscall(SYS_unshare, CLONE_NEWIPC));
    if (!strcmp(p, "unshare-cgroup")) return verdict(syscall(SYS_unshare, CLONE_NEWCGROUP));

    if (!strcmp(p, "clone-user")) return probe_clone(CLONE_NEWUSER);
    if (!strcmp(p, "clone-mount")) return probe_clone(CLONE_NEWNS);
    if (!strcmp(p, "clone-net")) return probe_clone(CLONE_NEWNET);
    if (!strcmp(p, "clone-pid")) return probe_clone(CLONE_NEWPID);
    if (!strcmp(p, "clone-uts")) return probe_clone(CLONE_NEWUTS);
    if (!strcmp(p, "clone-ipc")) return probe_clone(CLONE_NEWIPC);
    if (!strcmp(p, "clone-cgroup")) return probe_clone(CLONE_NEWCGROUP);
    if (!strcmp(p, "clone3")) {
        /* An all-zero struct would be a plain fork; the filter answers before
         * the kernel reads it. */
        uint64_t args[11] = {0};
        args[4] = SIGCHLD; /* exit_signal */
        long pid = syscall(SYS_clone3, args, sizeof args);
        if (pid == 0)
            _exit(0);
        if (pid > 0)
            waitpid((pid_t)pid, NULL, 0);
        return verdict(pid);
    }

    if (!strcmp(p, "keyctl")) return verdict(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0));
    if (!strcmp(p, "add_key")) return verdict(syscall(SYS_add_key, "user", "sandbox-probe", "x", 1, -3));
    if (!strcmp(p, "request_key")) return verdict(syscall(SYS_request_key, "user", "sandbox-probe", NULL, 0));
    if (!strcmp(p, "bpf")) {
        union bpf_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.map_type = BPF_MAP_TYPE_ARRAY;
        attr.key_size = 4;
        attr.value_size = 4;
        attr.max_entries = 1;
        return verdict(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
    }
    if (!strcmp(p, "perf_event_open")) {
        struct perf_event_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.size = sizeof attr;
        attr.type = PERF_TYPE_SOFTWARE;
        attr.config = PERF_COUNT_SW_CPU_CLOCK;
        attr.exclude_kernel = 1;
        return verdict(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
    }
    if (!strcmp(p, "io_uring_setup")) {
        static char params[120];
        return verdict(syscall(SYS_io_uring_setup, 1, params));
    }
    if (!strcmp(p, "userfaultfd")) return verdict(syscall(SYS_userfaultfd, O_CLOEXEC));
    if (!strcmp(p, "fsopen")) return verdict(syscall(SYS_fsopen, "tmpfs", 0));
    if (!strcmp(p, "open_tree")) return verdict(syscall(SYS_open_tree, AT_FDCWD, ".", 0));
    if (!strcmp(p, "move_mount")) return verdict(syscall(SYS_move_mount, -1, "", AT_FDCWD, "probe-no-mount", 0));
    if (!strcmp(p, "open_by_handle_at")) {
        static char handle[128];
        return verdict(syscall(SYS_open_by_handle_at, AT_FDCWD, handle, O_RDONLY));
    }
    if (!strcmp(p, "init_module")) return verdict(syscall(SYS_init_module, buf, sizeof buf, ""));
    if (!strcmp(p, "finit_module")) return verdict(syscall(SYS_finit_module, 0, "", 0));
    /* An architecture in the flags that is not ours: refused (EINVAL) even
     * where the call is allowed and CAP_SYS_BOOT held, as in a control run,
     * where zero segments would unload the host's crash kernel. */
    if (!strcmp(p, "kexec_load")) return verdict(syscall(SYS_kexec_load, 0, 0, NULL, 0x7fff0000UL));
    if (!strcmp(p, "reboot"))
        return verdict(syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_OFF, NULL));
    if (!strcmp(p, "swapon")) return verdict(syscall(SYS_swapon, argv[0], 0));
    if (!strcmp(p, "acct")) return verdict(syscall(SYS_acct, NULL));
    if (!strcmp(p, "syslog")) return verdict(syscall(SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0));
    if (!strcmp(p, "sethostname")) return verdict(syscall(SYS_sethostname, "probe", 5));
    /* Both arguments NULL: the permission check still runs, and a control
     * run allowed to make the call changes no clock. */
    if (!strcmp(p, "settimeofday")) return verdict(syscall(SYS_settimeofday, NULL, NULL));
    if (!strcmp(p, "mknod")) {
        /* Somewhere writable, so the answer is about the device, not the
         * directory. */
        const char *node = scratch("probe-null");
        long ret = syscall(SYS_mknodat, AT_FDCWD, node, S_IFCHR | 0600, makedev(1, 3));
        if (ret >= 0)
            unlink(node);
        return verdict(ret);
    }
    if (!strcmp(p, "personality-aslr-off")) {
        long ret = syscall(SYS_personality, ADDR_NO_RANDOMIZE);
        if (ret >= 0)
            syscall(SYS_personality, 0); /* put it back before we say so */
        return verdict(ret);
    }

    if (!strcmp(p, "socket-inet")) return verdict(syscall(SYS_socket, AF_INET, SOCK_STREAM, 0));
    if (!strcmp(p, "socket-unix")) return verdict(syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0));
    if (!strcmp(p, "socket-netlink")) return verdict(syscall(SYS_socket, AF_NETLINK, SOCK_RAW, 0));
    if (!strcmp(p, "socket-vsock")) return verdict(syscall(SYS_socket, AF_VSOCK, SOCK_STREAM, 0));
    if (!strcmp(p, "socket-alg")) return verdict(syscall(SYS_socket, AF_ALG, SOCK_SEQPACKET, 0));
    if (!strcmp(p, "socket-raw")) return verdict(syscall(SYS_socket, AF_INET, SOCK_RAW, 1 /* ICMP */));
    if (!strcmp(p, "socket-packet")) return verdict(syscall(SYS_socket, AF_PACKET, SOCK_RAW, 0));

    if (!strcmp(p, "ptrace")) {
        pid_t child = sleeper();
        long ret = syscall(SYS_ptrace, PTRACE_ATTACH, child, 0, 0);
        int saved = errno;
        reap(child);
        return report(ret, saved);
    }
    if (!strcmp(p, "process_vm_readv")) {
        pid_t child = sleeper();
        static char there[16], here[16];
        struct iovec local = {here, sizeof here}, remote = {there, sizeof there};
        long ret = syscall(SYS_process_vm_readv, child, &local, 1, &remote, 1, 0);
        int saved = errno;
        reap(child);
        return report(ret, saved);
    }

#if defined(__x86_64__)
    if (!strcmp(p, "int80-getpid")) {
        /* The 32-bit entry point: getpid is 20 there. The profile names only
         * the native architecture, so the filter refuses it whatever the
         * number. */
        long ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
        return report(ret, (int)-ret);
    }
#endif

    /* A write that must fail: /proc/sys, sysrq-trigger, the cgroup tree. */
    if (!strncmp(p, "write:", 6)) {
        int fd = open(p + 6, O_WRONLY | O_CREAT, 0644);
        if (fd < 0)
            return verdict(-1);
        long ret = write(fd, "0", 1);
        close(fd);
        return verdict(ret);
    }

    /* CALL-MODE, the mode in octal after the last dash. */
    const char *dash = strrchr(p, '-');
    if (dash && dash[1] && strspn(dash + 1, "01234567") == strlen(dash + 1)) {
        static char call[64];
        snprintf(call, sizeof call, "%.*s", (int)(dash - p), p);
        if (mode_probe(call, (mode_t)strtoul(dash + 1, NULL, 8)) == 0)
            return 0;
    }

    return unknown_probe(p);
}
