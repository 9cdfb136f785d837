/*
 * syscalls - a system-call-heavy guest: syscalls THREADS [CALLS]
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Each of THREADS workers makes CALLS (default 200000) cheap system calls
 * (getppid, a 1-byte pread of a file opened once, clock_gettime through
 * the raw syscall so that no vDSO short-cuts it, sched_getaffinity), so the
 * emulator spends its time entering and leaving the system-call path: under
 * a plugin, two plugin dispatches per call (syscall and syscall_ret).
 * Prints one line, identical for every run with the same arguments, and
 * exits 1 on a bad argument or a failed call.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

#define MAX_THREADS 1024

struct worker {
    pthread_t tid; /* first: see guest_run() */
    unsigned long calls;
    unsigned long ok;
} __attribute__((aligned(128)));

static struct worker workers[MAX_THREADS];
static int fd = -1;

static void *run(void *arg)
{
    struct worker *w = arg;
    struct timespec ts;
    cpu_set_t set;
    char c;

    for (unsigned long i = 0; i < w->calls; i++) {
        long r;

        switch (i & 3) {
        case 0:
            r = syscall(SYS_getppid) > 0;
            break;
        case 1:
            r = pread(fd, &c, 1, 0) == 1;
            break;
        case 2:
            r = syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) == 0;
            break;
        default:
            r = syscall(SYS_sched_getaffinity, 0, sizeof(set), &set) > 0;
            break;
        }
        w->ok += (unsigned long)r;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned long n, calls, ok = 0;

    if (!guest_arg(argc, argv, 1, 1, 1, MAX_THREADS, &n) ||
        !guest_arg(argc, argv, 2, 200000, 0, LONG_MAX, &calls)) {
        fprintf(stderr, "usage: syscalls THREADS(1..%d) [CALLS]\n",
                MAX_THREADS);
        return 1;
    }
    fd = open("/proc/self/exe", O_RDONLY);
    if (fd < 0) {
        perror("open /proc/self/exe");
        return 1;
    }
    for (unsigned long t = 0; t < n; t++) {
        workers[t].calls = calls;
    }
    if (!guest_run(workers, sizeof(workers[0]), n, run)) {
        return 1;
    }
    for (unsigned long t = 0; t < n; t++) {
        ok += workers[t].ok;
    }
    printf("syscalls threads=%lu calls=%lu ok=%lu\n", n, calls, ok);
    return ok == n * calls ? 0 : 1;
}
