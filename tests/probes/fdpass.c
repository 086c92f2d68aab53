/*
 * Hands descriptors from one container to another over a unix socket in a
 * directory both mount: what hostile code does to keep a run's FIFOs after
 * its container has gone (tests/engine/pipes.rs).
 *
 *   fdpass send SOCKET FD...  connect, send the descriptors, wait for the
 *                             other side to have them, exit
 *   fdpass recv SOCKET CMD... listen, take the descriptors onto 10, 11, ...,
 *                             exec CMD
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 8

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: fdpass send SOCKET FD... | fdpass recv SOCKET CMD...\n");
        return 2;
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, argv[2], sizeof addr.sun_path - 1);
    int sock = socket(AF_UNIX, SOCK_STREAM, 0);
    char byte = 'x';
    struct iovec iov = {&byte, 1};
    char control[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    memset(control, 0, sizeof control);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control};
    if (!strcmp(argv[1], "send")) {
        int n = argc - 3 > MAX_FDS ? MAX_FDS : argc - 3, fds[MAX_FDS];
        for (int i = 0; i < n; i++) fds[i] = atoi(argv[3 + i]);
        for (int tries = 0; connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0; tries++) {
            if (tries > 300) { perror("connect"); return 1; }
            usleep(100000);
        }
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
        if (sendmsg(sock, &msg, 0) < 0) { perror("sendmsg"); return 1; }
        return read(sock, &byte, 1) == 1 ? 0 : 1;
    }
    unlink(argv[2]);
    if (bind(sock, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(sock, 1) < 0) {
        perror("bind");
        return 1;
    }
    int conn = accept(sock, 0, 0);
    msg.msg_controllen = sizeof control;
    if (conn < 0 || recvmsg(conn, &msg, 0) < 0) { perror("recvmsg"); return 1; }
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    int n = cm ? (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int)) : 0;
    int fds[MAX_FDS];
    memcpy(fds, CMSG_DATA(cm), sizeof(int) * n);
    for (int i = 0; i < n; i++) {
        dup2(fds[i], 10 + i);
        close(fds[i]);
    }
    if (write(conn, "k", 1) != 1) return 1;
    close(conn);
    close(sock);
    execv(argv[3], argv + 3);
    perror("exec");
    return 1;
}
