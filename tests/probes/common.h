/*
 * What both probes share (syscalls.c and probe.c, run by
 * tests/engine/probes/): how a call's answer is printed, the child a probe
 * looks at, and where a scratch file may go.
 *
 * Each probe makes its call raw with syscall(2), so no libc fallback hides
 * what the kernel, or the seccomp filter in front of it, answered, and
 * prints one line: "allowed", or "denied ERRNO_NAME". It exits 0 whatever
 * the answer; an unknown probe exits 2. A probe must be able to print
 * "allowed": the tests run each one again in a control container to show it.
 *
 * Included first by each probe, so that _GNU_SOURCE comes before any system
 * header. Everything here is static inline: a probe that does not use a
 * helper must still build under -Wall -Werror.
 */
#ifndef SANDBOX_PROBES_COMMON_H
#define SANDBOX_PROBES_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* The name of errno `e`, as in <errno.h>; any number has one. */
static inline const char *errno_name(int e) {
    const char *name = strerrorname_np(e);
    if (name)
        return name;
    static char buf[32];
    snprintf(buf, sizeof buf, "errno%d", e);
    return buf;
}

/* The verdict for a call that returned `ret`, failing with `err`. */
static inline int report(long ret, int err) {
    if (ret >= 0)
        puts("allowed");
    else
        printf("denied %s\n", errno_name(err));
    return 0;
}

/* The verdict for a call that just returned `ret` (errno set on failure). */
static inline int verdict(long ret) { return report(ret, errno); }

static inline int setup_failed(void) {
    printf("setup-failed %s\n", errno_name(errno));
    return 0;
}

/* A child that waits to be looked at, for ptrace and its family. */
static inline pid_t sleeper(void) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Gone with us, even if a filter kills us first. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        pause();
        _exit(0);
    }
    return pid;
}

static inline void reap(pid_t pid) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Somewhere writable for a scratch file: /tmp in a sandbox, else the
 * working directory (/work, in a control run too). */
static inline const char *scratch(const char *name) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", access("/tmp", W_OK) == 0 ? "/tmp" : ".", name);
    return path;
}

/* The probe's name, its one argument; NULL, after a usage line, without one. */
static inline const char *probe_arg(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PROBE\n", argv[0]);
        return NULL;
    }
    return argv[1];
}

static inline int unknown_probe(const char *p) {
    fprintf(stderr, "unknown probe %s\n", p);
    return 2;
}

#endif
