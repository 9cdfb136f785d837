/*
 * guest-threads - a multithreaded guest workload for TCG plugin runs.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Build (static, so it runs under qemu-x86_64 without a sysroot):
 *   gcc -O2 -static -pthread -o guest-threads guest-threads.c
 * Run:
 *   guest-threads THREADS [ITERATIONS]
 *
 * THREADS workers share a fixed budget of ITERATIONS (default 2000000), so
 * the amount of guest work does not depend on the thread count while the
 * number of vCPUs does.  Every worker mixes what plugins instrument:
 *
 * - loads and stores to a private buffer (plain TCG memory ops);
 * - atomic adds to a shared counter (x86 LOCK ops: in a parallel vCPU
 *   context TCG emulates them in helpers, i.e. memory callbacks that go
 *   through CPUState.plugin_mem_cbs);
 * - 80-bit x87 loads and stores (long double: also helpers);
 * - system calls (getppid, sched_yield, a futex-backed mutex);
 * - data-dependent branches (many small translation blocks).
 *
 * All workers are started before any of them works (a barrier), so the
 * guest really has THREADS + 1 threads alive at once.  The program checks
 * its own results and exits 1 on a mismatch.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "guest.h"

#define BUF_WORDS 1024 /* 8 KiB per worker */
#define ATOMIC_EVERY 16
#define X87_EVERY 64
#define SYSCALL_EVERY 512
#define MUTEX_EVERY 4096

struct worker {
    pthread_t thread; /* first: see guest_run() */
    unsigned index;
    unsigned long iters;
    uint64_t checksum;
    unsigned long syscalls;
    long double fsum;
};

static pthread_barrier_t start;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long shared_atomic;
static unsigned long shared_locked;

static void *work(void *arg)
{
    struct worker *w = arg;
    uint64_t *buf = calloc(BUF_WORDS, sizeof(*buf));
    volatile long double acc = 0;
    uint64_t x = 0x9e3779b97f4a7c15ull * (w->index + 1);

    if (buf == NULL) {
        abort();
    }
    pthread_barrier_wait(&start);
    for (unsigned long i = 0; i < w->iters; i++) {
        x = guest_xorshift(x); /* branches below depend on data */
        buf[x % BUF_WORDS] += x >> 32;
        if (x & 1) {
            buf[(x >> 8) % BUF_WORDS] ^= i;
        } else {
            w->checksum += buf[(x >> 16) % BUF_WORDS];
        }
        if (i % ATOMIC_EVERY == 0) {
            __atomic_fetch_add(&shared_atomic, 1, __ATOMIC_RELAXED);
        }
        if (i % X87_EVERY == 0) {
            acc = acc + (long double)(i & 0xff);
        }
        if (i % SYSCALL_EVERY == 0) {
            if (syscall(SYS_getppid) <= 0) {
                w->checksum++; /* never: keeps the checksum deterministic */
            }
            w->syscalls++;
        }
        if (i % MUTEX_EVERY == 0) {
            pthread_mutex_lock(&lock);
            shared_locked++;
            pthread_mutex_unlock(&lock);
            sched_yield();
            w->syscalls++;
        }
    }
    for (unsigned j = 0; j < BUF_WORDS; j++) {
        w->checksum += buf[j];
    }
    w->fsum = acc;
    free(buf);
    return NULL;
}

/* How many times `every` divides some i in [0, n): the loop's own count. */
static unsigned long multiples(unsigned long n, unsigned long every)
{
    return n ? (n - 1) / every + 1 : 0;
}

int main(int argc, char **argv)
{
    unsigned long n, total, want_atomic = 0, want_locked = 0;
    unsigned long syscalls = 0;
    struct worker *w;
    uint64_t checksum = 0;
    long double fsum = 0;

    if (!guest_arg(argc, argv, 1, 0, 1, ULONG_MAX, &n)) {
        fprintf(stderr, "usage: %s THREADS [ITERATIONS]\n", argv[0]);
        return 2;
    }
    guest_arg(argc, argv, 2, 2000000, 0, ULONG_MAX, &total);
    w = calloc(n, sizeof(*w));
    if (w == NULL || pthread_barrier_init(&start, NULL, n) != 0) {
        perror("setup");
        return 2;
    }
    for (unsigned long t = 0; t < n; t++) {
        w[t].index = t;
        w[t].iters = total / n + (t < total % n);
        want_atomic += multiples(w[t].iters, ATOMIC_EVERY);
        want_locked += multiples(w[t].iters, MUTEX_EVERY);
    }
    if (!guest_run(w, sizeof(w[0]), n, work)) {
        return 2;
    }
    for (unsigned long t = 0; t < n; t++) {
        checksum += w[t].checksum;
        fsum += w[t].fsum;
        syscalls += w[t].syscalls;
    }
    printf("threads=%lu iterations=%lu atomic=%lu locked=%lu syscalls=%lu "
           "checksum=%016llx fsum=%.0Lf\n", n, total, shared_atomic,
           shared_locked, syscalls, (unsigned long long)checksum, fsum);
    if (shared_atomic != want_atomic || shared_locked != want_locked) {
        fprintf(stderr, "mismatch: atomic %lu/%lu locked %lu/%lu\n",
                shared_atomic, want_atomic, shared_locked, want_locked);
        return 1;
    }
    return 0;
}
