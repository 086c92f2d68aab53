/*
 * The second probe, for tests/engine/probes/security.rs: the calls and paths
 * that syscalls.c (tests/engine/probes/hardening.rs) does not try. What a
 * probe prints, and the helpers, are in common.h.
 *
 *   probe NAME   prints "allowed" or "denied ERRNO_NAME" and exits 0;
 *                "caps" prints "caps eff=HEX prm=HEX", a probe whose setup
 *                failed "setup-failed ERRNO_NAME"; a probe whose call the
 *                filter kills dies of SIGSYS (even when a child made the
 *                call); an unknown probe exits 2
 *
 * Nothing a probe does may outlast it: a control run may let a call
 * succeed, and the probes after it run in the same container.
 */
#include "common.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/fanotify.h>
#include <linux/kcmp.h>
#include <linux/mount.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/quota.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>

#ifndef SYS_cachestat
#define SYS_cachestat 451 /* the same number on every architecture */
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef FAN_REPORT_FID
#define FAN_REPORT_FID 0x00000200
#endif
#define X32_SYSCALL_BIT 0x40000000L

/* A page of our own, which a sleeping child has too, to look at. */
static char target[4096] __attribute__((aligned(4096)));

/* Runs `call` on a sleeping child (a pidfd to it when `pidfd`), kills it,
 * then reports. The child is our own: only the filter stands in the way. */
static int on_child(long (*call)(pid_t child, int pidfd), int want_pidfd) {
    pid_t child = sleeper();
    if (child < 0)
        return setup_failed();
    int pidfd = -1;
    if (want_pidfd) {
        pidfd = (int)syscall(SYS_pidfd_open, child, 0);
        if (pidfd < 0) {
            int saved = errno;
            reap(child);
            errno = saved;
            return setup_failed();
        }
    }
    long ret = call(child, pidfd);
    int saved = errno;
    reap(child);
    if (pidfd >= 0)
        close(pidfd);
    return report(ret, saved);
}

static long do_pidfd_getfd(pid_t child, int pidfd) {
    (void)child;
    long fd = syscall(SYS_pidfd_getfd, pidfd, 0, 0);
    if (fd >= 0)
        close((int)fd);
    return fd;
}

static long do_kcmp(pid_t child, int pidfd) {
    (void)pidfd;
    return syscall(SYS_kcmp, getpid(), child, KCMP_VM, 0, 0);
}

static long do_process_vm_writev(pid_t child, int pidfd) {
    (void)pidfd;
    static char here[16] = "probe";
    struct iovec local = {here, sizeof here}, remote = {target, sizeof here};
    return syscall(SYS_process_vm_writev, child, &local, 1, &remote, 1, 0);
}

static long do_process_madvise(pid_t child, int pidfd) {
    (void)child;
    struct iovec range = {target, sizeof target};
    return syscall(SYS_process_madvise, pidfd, &range, 1, MADV_COLD, 0);
}

/* Calls that change the caller (personality, ids, namespaces) run in a child,
 * which reports back through its exit status: 0, or the errno plus one. */
static int in_child(long (*call)(void)) {
    pid_t pid = fork();
    if (pid < 0)
        return setup_failed();
    if (pid == 0) {
        long ret = call();
        _exit(ret >= 0 ? 0 : (errno & 0x7f) + 1);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0)
        return setup_failed();
    if (WIFSIGNALED(status)) {
        /* Die the same way, so the caller sees what the call did. */
        signal(WTERMSIG(status), SIG_DFL);
        raise(WTERMSIG(status));
        return setup_failed();
    }
    int code = WEXITSTATUS(status);
    return report(code == 0 ? 0 : -1, code - 1);
}

static long do_traceme(void) { return syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0); }
static long do_read_implies_exec(void) { return syscall(SYS_personality, READ_IMPLIES_EXEC); }
static long do_linux32(void) { return syscall(SYS_personality, PER_LINUX32); }
static long do_unshare_files(void) { return syscall(SYS_unshare, CLONE_FILES); }
static long do_unshare_time(void) { return syscall(SYS_unshare, CLONE_NEWTIME); }
static long do_vhangup(void) { return syscall(SYS_vhangup); }

/* The uid (gid) that is not ours: root's for a user, another for root. */
static long other_id(void) { return geteuid() == 0 ? 4243 : 0; }
static long do_setuid(void) { return syscall(SYS_setuid, other_id()); }
static long do_setgid(void) { return syscall(SYS_setgid, other_id()); }
static long do_setgroups(void) {
    gid_t groups[1] = {(gid_t)other_id()};
    return syscall(SYS_setgroups, 1, groups);
}
/* A better nice value than the one we have needs CAP_SYS_NICE. */
static long do_nice_raise(void) {
    errno = 0;
    long now = syscall(SYS_getpriority, PRIO_PROCESS, 0);
    if (errno)
        return -1;
    /* The raw call returns 20 - nice. */
    return syscall(SYS_setpriority, PRIO_PROCESS, 0, (int)(20 - now) - 1);
}
int main(int argc, char **argv) {
    const char *p = probe_arg(argc, argv);
    if (!p)
        return 2;
    static char buf[256];

    /* Sanity: calls every profile allows. */
    if (!strcmp(p, "getpid")) return verdict(syscall(SYS_getpid));
    if (!strcmp(p, "socket-inet6")) {
        long fd = syscall(SYS_socket, AF_INET6, SOCK_STREAM, 0);
        if (fd >= 0)
            close((int)fd);
        return verdict(fd);
    }
    if (!strcmp(p, "pidfd_open")) {
        long fd = syscall(SYS_pidfd_open, getpid(), 0);
        if (fd >= 0)
            close((int)fd);
        return verdict(fd);
    }
    if (!strcmp(p, "caps")) {
        struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct data[2];
        if (syscall(SYS_capget, &header, data) < 0)
            return setup_failed();
        printf("caps eff=%llx prm=%llx\n",
               ((unsigned long long)data[1].effective << 32) | data[0].effective,
               ((unsigned long long)data[1].permitted << 32) | data[0].permitted);
        return 0;
    }

    /* Another process's memory and files: what ptrace would give. */
    if (!strcmp(p, "pidfd_getfd")) return on_child(do_pidfd_getfd, 1);
    if (!strcmp(p, "kcmp")) return on_child(do_kcmp, 0);
    if (!strcmp(p, "process_vm_writev")) return on_child(do_process_vm_writev, 0);
    if (!strcmp(p, "process_madvise")) return on_child(do_process_madvise, 1);
    if (!strcmp(p, "ptrace-traceme")) return in_child(do_traceme);

    /* The rest of the new mount API. Nothing is mounted by any of them:
     * fsconfig and fsmount get no context, mount_setattr no mount. */
    if (!strcmp(p, "fspick")) {
        long fd = syscall(SYS_fspick, AT_FDCWD, "/", 0);
        if (fd >= 0)
            close((int)fd);
        return verdict(fd);
    }
    if (!strcmp(p, "fsconfig")) return verdict(syscall(SYS_fsconfig, -1, FSCONFIG_CMD_CREATE, NULL, NULL, 0));
    if (!strcmp(p, "fsmount")) return verdict(syscall(SYS_fsmount, -1, 0, 0));
    if (!strcmp(p, "mount_setattr")) {
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
        return verdict(syscall(SYS_mount_setattr, AT_FDCWD, "probe-no-mount", 0, &attr, sizeof attr));
    }

    /* Namespaces, beyond the flags syscalls.c tries. */
    if (!strcmp(p, "unshare-files")) return in_child(do_unshare_files);
    if (!strcmp(p, "unshare-time")) return in_child(do_unshare_time);
    if (!strcmp(p, "setns-fd")) {
        int fd = open("/proc/self/ns/uts", O_RDONLY);
        if (fd < 0)
            return setup_failed();
        long ret = syscall(SYS_setns, fd, CLONE_NEWUTS);
        int saved = errno;
        close(fd);
        return report(ret, saved);
    }

    /* The host's kernel and clock. Arguments are chosen so that a call let
     * through changes nothing: a NULL time, a module that does not exist. */
    if (!strcmp(p, "clock_settime")) return verdict(syscall(SYS_clock_settime, CLOCK_REALTIME, NULL));
    /* The name a new UTS namespace has anyway. */
    if (!strcmp(p, "setdomainname")) return verdict(syscall(SYS_setdomainname, "(none)", 6));
    if (!strcmp(p, "kexec_file_load")) return verdict(syscall(SYS_kexec_file_load, -1, -1, 0, "", 0));
    if (!strcmp(p, "delete_module")) return verdict(syscall(SYS_delete_module, "sandbox_probe_none", O_NONBLOCK));
    if (!strcmp(p, "quotactl")) return verdict(syscall(SYS_quotactl, QCMD(Q_GETFMT, USRQUOTA), "/", 0, buf));
    if (!strcmp(p, "ioperm")) return verdict(syscall(SYS_ioperm, 0x80, 1, 1));
    if (!strcmp(p, "iopl")) return verdict(syscall(SYS_iopl, 3));
    if (!strcmp(p, "vhangup")) return in_child(do_vhangup);
    if (!strcmp(p, "fanotify_init")) {
        long fd = syscall(SYS_fanotify_init, FAN_CLASS_NOTIF | FAN_REPORT_FID, O_RDONLY);
        if (fd >= 0)
            close((int)fd);
        return verdict(fd);
    }
    if (!strcmp(p, "io_uring_enter")) return verdict(syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0));
    if (!strcmp(p, "io_uring_register")) return verdict(syscall(SYS_io_uring_register, -1, 0, NULL, 0));
    if (!strcmp(p, "personality-read-implies-exec")) return in_child(do_read_implies_exec);
    if (!strcmp(p, "personality-linux32")) return in_child(do_linux32);
#if defined(__x86_64__)
    /* The x32 ABI: the native entry point with bit 30 set in the number. */
    if (!strcmp(p, "x32-getpid")) return verdict(syscall(X32_SYSCALL_BIT | SYS_getpid));
#endif

    /* Calls the default profile allows and strict does not. */
    if (!strcmp(p, "memfd_secret")) {
        long fd = syscall(SYS_memfd_secret, 0);
        if (fd >= 0)
            close((int)fd);
        return verdict(fd);
    }
    if (!strcmp(p, "modify_ldt")) return verdict(syscall(SYS_modify_ldt, 0 /* read */, buf, sizeof buf));
    if (!strcmp(p, "mq_open")) {
        long fd = syscall(SYS_mq_open, "sandbox-probe", O_CREAT | O_RDWR, 0600, NULL);
        if (fd >= 0) {
            close((int)fd);
            syscall(SYS_mq_unlink, "sandbox-probe");
        }
        return verdict(fd);
    }
    if (!strcmp(p, "io_setup")) {
        unsigned long ctx = 0;
        long ret = syscall(SYS_io_setup, 1, &ctx);
        int saved = errno;
        if (ret >= 0)
            syscall(SYS_io_destroy, ctx);
        return report(ret, saved);
    }
    if (!strcmp(p, "mincore")) {
        unsigned char vec[1];
        return verdict(syscall(SYS_mincore, target, sizeof target, vec));
    }
    if (!strcmp(p, "cachestat")) {
        /* A file of our own, opened for writing: the kernel (6.14 on) lets
         * only a caller that could write a file see its page cache. */
        const char *path = scratch("probe-cachestat");
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
            return setup_failed();
        unlink(path);
        uint64_t range[2] = {0, 0}, stat[5];
        long ret = syscall(SYS_cachestat, fd, range, stat, 0);
        int saved = errno;
        close(fd);
        return report(ret, saved);
    }
    if (!strcmp(p, "name_to_handle_at")) {
        /* /dev is a tmpfs in every container, and tmpfs hands out handles. */
        struct { unsigned int bytes; int type; unsigned char handle[128]; } fh = {128, 0, {0}};
        int mount_id;
        return verdict(syscall(SYS_name_to_handle_at, AT_FDCWD, "/dev", &fh, &mount_id, 0));
    }
    if (!strcmp(p, "fanotify_mark"))
        return verdict(syscall(SYS_fanotify_mark, -1, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, "."));

    /* What root could do with capabilities: the profile lets each call
     * through, and only the empty capability sets refuse it. */
    if (!strcmp(p, "setuid")) return in_child(do_setuid);
    if (!strcmp(p, "setgid")) return in_child(do_setgid);
    if (!strcmp(p, "setgroups")) return in_child(do_setgroups);
    if (!strcmp(p, "nice-raise")) return in_child(do_nice_raise);
    if (!strcmp(p, "chown")) {
        const char *path = scratch("probe-chown");
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
            return setup_failed();
        close(fd);
        long ret = syscall(SYS_fchownat, AT_FDCWD, path, (uid_t)other_id(), (gid_t)-1, 0);
        int saved = errno;
        unlink(path);
        return report(ret, saved);
    }
    /* Another user's file: reading it needs CAP_DAC_OVERRIDE (or
     * DAC_READ_SEARCH), changing its mode CAP_FOWNER. A device node: the
     * device cgroup must allow it. The mode is 0, as libc passes it without
     * O_CREAT: the profiles refuse a mode with the setuid or setgid bit
     * whatever the flags, and a raw call would pass whatever is in the
     * register. */
    if (!strncmp(p, "read:", 5)) {
        long fd = syscall(SYS_openat, AT_FDCWD, p + 5, O_RDONLY, 0);
        if (fd >= 0)
            close((int)fd);
        return verdict(fd);
    }
    if (!strncmp(p, "chmod:", 6)) {
        struct stat st;
        if (stat(p + 6, &st) < 0)
            return setup_failed();
        /* The mode it has: a control that may change it changes nothing. */
        return verdict(syscall(SYS_fchmodat, AT_FDCWD, p + 6, st.st_mode & 07777));
    }
    /* Opening for writing is enough to be refused; nothing is written, so
     * a path that is wrongly writable is not changed by the probe. */
    if (!strncmp(p, "openw:", 6)) {
        long fd = syscall(SYS_openat, AT_FDCWD, p + 6, O_WRONLY, 0);
        if (fd >= 0)
            close((int)fd);
        return verdict(fd);
    }

    return unknown_probe(p);
}
