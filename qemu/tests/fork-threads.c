/*
 * fork-threads - a multithreaded guest that forks children which start
 * threads of their own.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Build (static, so it runs under qemu-x86_64 without a sysroot):
 *   gcc -std=c11 -O2 -static -pthread -o fork-threads fork-threads.c
 * Run:
 *   fork-threads [CHILDREN [THREADS [ITERATIONS]]]   (defaults 3 4 200000)
 *
 * The parent starts THREADS workers and, while all of them run, forks
 * CHILDREN children one after the other.  Each child starts THREADS
 * workers of its own (under qemu-user: new vCPUs in a process whose
 * parent's other vCPUs were not carried over by fork), lets them do
 * ITERATIONS rounds of work, joins them, checks their results and exits
 * 0, or 1 on a mismatch.  The parent then stops and checks its own
 * workers, waits for every child, prints one line per child and a
 * summary, and exits 0 only if every child exited 0 and its own check
 * held.
 *
 * A worker's work mixes what TCG plugins instrument: loads and stores, an
 * atomic add to a shared counter (x86 LOCK ops, helpers in a parallel
 * vCPU context), a mutex-protected counter (futex system calls) and
 * data-dependent branches.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest.h"

#define MAX_THREADS 64
#define MAX_CHILDREN 64
#define BUF_WORDS 256
#define LOCK_EVERY 1024

struct pool;

struct worker_arg {
    struct pool *pool;
    unsigned index;
};

struct pool {
    pthread_t thread[MAX_THREADS];
    struct worker_arg arg[MAX_THREADS];
    unsigned threads;
    unsigned long iterations;    /* per worker; 0: until pool.stop */
    pthread_barrier_t started;   /* workers + the thread that starts them */
    pthread_mutex_t lock;
    unsigned long locked;        /* incremented under lock */
    unsigned long atomic;        /* incremented with an atomic add */
    unsigned long done[MAX_THREADS]; /* rounds each worker did */
    int stop;
};

/* One round: a little arithmetic, memory traffic and a branch on data. */
static uint64_t round_of_work(uint64_t x, uint64_t *buf)
{
    x = guest_xorshift(x);
    buf[x % BUF_WORDS] += x >> 32;
    if (x & 1) {
        buf[(x >> 8) % BUF_WORDS] ^= x;
    }
    return x;
}

/* A worker: rounds until its budget is spent or the pool is stopped. */
static void *worker(void *opaque)
{
    struct worker_arg *a = opaque;
    struct pool *p = a->pool;
    uint64_t buf[BUF_WORDS] = { 0 };
    uint64_t x = 0x9e3779b97f4a7c15ull * (a->index + 1);
    unsigned long i;

    pthread_barrier_wait(&p->started);
    for (i = 0; p->iterations ? i < p->iterations :
                !__atomic_load_n(&p->stop, __ATOMIC_RELAXED); i++) {
        x = round_of_work(x, buf);
        __atomic_fetch_add(&p->atomic, 1, __ATOMIC_RELAXED);
        if (i % LOCK_EVERY == 0) {
            pthread_mutex_lock(&p->lock);
            p->locked++;
            pthread_mutex_unlock(&p->lock);
        }
    }
    p->done[a->index] = i;
    return (void *)(uintptr_t)(buf[x % BUF_WORDS] | 1); /* never NULL */
}

/* Start the pool's workers; returns once all of them are running. */
static int pool_start(struct pool *p, unsigned threads,
                      unsigned long iterations)
{
    memset(p, 0, sizeof(*p));
    p->threads = threads;
    p->iterations = iterations;
    pthread_mutex_init(&p->lock, NULL);
    if (pthread_barrier_init(&p->started, NULL, threads + 1) != 0) {
        return -1;
    }
    for (unsigned t = 0; t < threads; t++) {
        p->arg[t].pool = p;
        p->arg[t].index = t;
        if (!guest_start(&p->thread[t], worker, &p->arg[t])) {
            return -1;
        }
    }
    pthread_barrier_wait(&p->started);
    return 0;
}

/* Join the workers and check the counters against what they report. */
static int pool_join_check(struct pool *p)
{
    unsigned long rounds = 0, locks = 0;
    int ok = 1;

    for (unsigned t = 0; t < p->threads; t++) {
        void *ret = NULL;

        if (pthread_join(p->thread[t], &ret) != 0 || ret == NULL) {
            ok = 0;
        }
        if (p->iterations && p->done[t] != p->iterations) {
            ok = 0;
        }
        rounds += p->done[t];
        locks += p->done[t] ? (p->done[t] - 1) / LOCK_EVERY + 1 : 0;
    }
    if (p->atomic != rounds || p->locked != locks) {
        fprintf(stderr, "pid %d: mismatch atomic %lu/%lu locked %lu/%lu\n",
                (int)getpid(), p->atomic, rounds, p->locked, locks);
        ok = 0;
    }
    return ok;
}

/* A child's life: its own pool of workers, checked, then exit. */
static void child_main(unsigned threads, unsigned long iterations)
{
    static struct pool pool;

    if (pool_start(&pool, threads, iterations) != 0) {
        _exit(2);
    }
    exit(pool_join_check(&pool) ? 0 : 1);
}

/* Print how a child ended; returns 1 if it exited 0. */
static int report_child(unsigned i, pid_t pid, int status)
{
    if (WIFEXITED(status)) {
        printf("child %u (pid %d): exit %d\n", i, (int)pid,
               WEXITSTATUS(status));
        return WEXITSTATUS(status) == 0;
    }
    if (WIFSIGNALED(status)) {
        printf("child %u (pid %d): killed by signal %d (%s)\n", i, (int)pid,
               WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else {
        printf("child %u (pid %d): status 0x%x\n", i, (int)pid, status);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct pool pool;
    unsigned long children, threads, iterations;
    pid_t pids[MAX_CHILDREN];
    unsigned ok_children = 0;
    int parent_ok;

    if (!guest_arg(argc, argv, 1, 3, 1, MAX_CHILDREN, &children) ||
        !guest_arg(argc, argv, 2, 4, 1, MAX_THREADS, &threads) ||
        !guest_arg(argc, argv, 3, 200000, 1, ULONG_MAX, &iterations)) {
        fprintf(stderr, "usage: %s [CHILDREN<=%d [THREADS<=%d "
                "[ITERATIONS>0]]]\n", argv[0], MAX_CHILDREN, MAX_THREADS);
        return 2;
    }
    /* The parent's workers run until told to stop: they are busy at fork. */
    if (pool_start(&pool, threads, 0) != 0) {
        return 2;
    }
    fflush(stdout);
    for (unsigned i = 0; i < children; i++) {
        pid_t pid = fork();

        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            child_main(threads, iterations);
        }
        pids[i] = pid;
    }
    __atomic_store_n(&pool.stop, 1, __ATOMIC_RELAXED);
    parent_ok = pool_join_check(&pool);
    for (unsigned i = 0; i < children; i++) {
        int status;
        pid_t r;

        while ((r = waitpid(pids[i], &status, 0)) < 0 && errno == EINTR) {
        }
        if (r < 0) {
            perror("waitpid");
            return 2;
        }
        ok_children += report_child(i, pids[i], status);
    }
    printf("fork-threads: %s children=%lu ok=%u threads=%lu iterations=%lu "
           "parent=%s\n",
           ok_children == children && parent_ok ? "PASS" : "FAIL", children,
           ok_children, threads, iterations, parent_ok ? "ok" : "mismatch");
    return ok_children == children && parent_ok ? 0 : 1;
}
