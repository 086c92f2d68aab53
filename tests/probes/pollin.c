/* Reads descriptor 0 to its end as an event loop does (Node, Bun, Python's
 * asyncio, Go): epoll says when to read, so the end must be seen as an
 * event, not only as a read that returns 0. Prints the bytes read and
 * exits 0 at the end; exits 2 if no event came for SECONDS (argv[1]).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int seconds = argc > 1 ? atoi(argv[1]) : 10;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0) {
        perror("epoll");
        return 1;
    }
    long total = 0;
    char buf[65536];
    for (;;) {
        struct epoll_event got;
        int n = epoll_wait(ep, &got, 1, seconds * 1000);
        if (n < 0) {
            perror("epoll_wait");
            return 1;
        }
        if (n == 0) {
            printf("no event in %ds after %ld bytes\n", seconds, total);
            return 2;
        }
        ssize_t r = read(0, buf, sizeof buf);
        if (r < 0) {
            perror("read");
            return 1;
        }
        if (r == 0) {
            printf("%ld bytes, then the end\n", total);
            return 0;
        }
        total += r;
    }
}
