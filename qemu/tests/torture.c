/*
 * torture - a guest that keeps a plugin core busy with thread starts and
 * exits, system calls, signals and forks, for a bounded time:
 *   torture [THREADS [MILLISECONDS [FORK_MS]]]   (defaults 8 2000 200)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * THREADS (1-1024) relay slots run until MILLISECONDS have passed.  A slot's
 * thread makes system calls (getppid, sched_yield) and loads and stores
 * with data-dependent branches, and after a pseudo-random number of rounds
 * starts its successor and exits: under qemu-user every thread is a vCPU,
 * so vCPUs are created and destroyed all the time while THREADS run.  A
 * signaller sends SIGUSR1 to the process (one thread takes it) every
 * millisecond; every FORK_MS milliseconds (0: never) a forker forks a
 * child that starts 4 threads of its own, which make system calls, join
 * and check their work.  At the end the main thread waits for the last
 * generation of every slot and prints one line:
 *   torture: pid=P threads=T relays=R signals=G forks=F syscalls=N
 * (P tells the main process's plugin output from its children's) and exits 0, or 1 on a bad argument, a thread that could not start, a
 * child that failed or a worker whose check failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

#define STACK (256 * 1024)

static struct timespec deadline;
static atomic_ulong relays, signals, forks, syscalls, live;
static atomic_int failed, stop;

static bool past_deadline(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline.tv_sec ||
           (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec);
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_fetch_add_explicit(&signals, 1, memory_order_relaxed);
}

/* Some rounds of work: system calls and memory traffic; false on a bad sum. */
static bool work(uint64_t seed, unsigned rounds)
{
    uint64_t buf[64] = { 0 }, x = seed | 1, sum = 0, expect = 0;

    for (unsigned r = 0; r < rounds; r++) {
        x = guest_xorshift(x);
        buf[x % 64] += x & 0xff;
        expect += x & 0xff;
        if (x & 1) {
            syscall(SYS_getppid);
        } else {
            sched_yield();
        }
    }
    for (int i = 0; i < 64; i++) {
        sum += buf[i];
    }
    atomic_fetch_add_explicit(&syscalls, rounds, memory_order_relaxed);
    return sum == expect;
}

static bool spawn(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_t tid;
    int err;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, STACK);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    err = pthread_create(&tid, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (err != 0) {
        fprintf(stderr, "pthread_create: %s\n", strerror(err));
        return false;
    }
    return true;
}

/* A slot's thread: work, then hand the slot to a successor and exit. */
static void *slot(void *arg)
{
    uint64_t seed = (uintptr_t)arg;

    for (;;) {
        seed = guest_xorshift(seed);
        if (!work(seed, 200 + seed % 2000)) {
            atomic_store(&failed, 1);
        }
        if (past_deadline() || atomic_load(&stop)) {
            atomic_fetch_sub(&live, 1);
            return NULL;
        }
        if (seed % 4 == 0) {
            atomic_fetch_add_explicit(&relays, 1, memory_order_relaxed);
            if (spawn(slot, (void *)(uintptr_t)guest_xorshift(seed))) {
                return NULL;
            }
            atomic_store(&failed, 1);
            atomic_fetch_sub(&live, 1);
            return NULL;
        }
    }
}

static void *child_worker(void *arg)
{
    return work((uintptr_t)arg, 3000) ? NULL : (void *)1;
}

/* In a forked child: 4 threads of work, joined and checked. */
static void child(uint64_t seed)
{
    pthread_t tid[4];
    int bad = 0;

    for (int i = 0; i < 4; i++) {
        if (!guest_start(&tid[i], child_worker, (void *)(uintptr_t)(seed + i))) {
            _exit(1);
        }
    }
    for (int i = 0; i < 4; i++) {
        void *r;

        pthread_join(tid[i], &r);
        bad |= r != NULL;
    }
    _exit(bad);
}

static void sleep_ms(unsigned long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *forker(void *arg)
{
    unsigned long every = (uintptr_t)arg;
    uint64_t seed = 88172645463325252ull;

    while (!past_deadline()) {
        pid_t pid;
        int status;

        seed = guest_xorshift(seed);
        pid = fork();
        if (pid == 0) {
            child(seed);
        }
        if (pid < 0) {
            perror("fork");
            atomic_store(&failed, 1);
            break;
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "child %d: status %#x\n", (int)pid, status);
            atomic_store(&failed, 1);
        }
        atomic_fetch_add_explicit(&forks, 1, memory_order_relaxed);
        sleep_ms(every);
    }
    return NULL;
}

static void *signaller(void *arg)
{
    (void)arg;
    while (!past_deadline()) {
        kill(getpid(), SIGUSR1);
        sleep_ms(1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned long threads, ms, fork_ms;
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
    pthread_t sig_tid, fork_tid;
    uint64_t seed = 0x9e3779b97f4a7c15ull;

    if (!guest_arg(argc, argv, 1, 8, 1, 1024, &threads) ||
        !guest_arg(argc, argv, 2, 2000, 1, 3600000, &ms) ||
        !guest_arg(argc, argv, 3, 200, 0, 60000, &fork_ms)) {
        fprintf(stderr, "usage: torture [THREADS 1-1024 [MILLISECONDS [FORK_MS]]]\n");
        return 1;
    }
    sigaction(SIGUSR1, &sa, NULL);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    for (unsigned long t = 0; t < threads; t++) {
        seed = guest_xorshift(seed);
        atomic_fetch_add(&live, 1);
        if (!spawn(slot, (void *)(uintptr_t)seed)) {
            atomic_fetch_sub(&live, 1);
            atomic_store(&failed, 1);
            atomic_store(&stop, 1);
            break;
        }
    }
    if (!guest_start(&sig_tid, signaller, NULL) ||
        (fork_ms && !guest_start(&fork_tid, forker, (void *)(uintptr_t)fork_ms))) {
        return 1;
    }
    pthread_join(sig_tid, NULL);
    if (fork_ms) {
        pthread_join(fork_tid, NULL);
    }
    while (atomic_load(&live) != 0) {
        sleep_ms(1);
    }
    printf("torture: pid=%d threads=%lu relays=%lu signals=%lu forks=%lu syscalls=%lu\n",
           (int)getpid(), threads, atomic_load(&relays), atomic_load(&signals), atomic_load(&forks),
           atomic_load(&syscalls));
    return atomic_load(&failed);
}
