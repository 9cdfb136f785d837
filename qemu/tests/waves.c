/*
 * waves - guest threads that arrive in waves over a big body of code:
 *   waves THREADS [FUNCS] [ROUNDS] [WAVE]
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The program holds 4096 distinct functions (generated below by the
 * preprocessor, each with its own constants, so the compiler merges none).
 * Threads are started WAVE (default 16) at a time; each runs ROUNDS
 * (default 4) passes over the first FUNCS (default 4096) functions, in an
 * order of its own, and then stays alive, blocked, until every thread has
 * run: the number of live guest threads -- and of vCPU indices a plugin
 * core must give scoreboard slots to -- grows by WAVE per wave up to
 * THREADS.  An emulator that discards its translated code when that number
 * crosses a capacity makes every later wave translate the FUNCS functions
 * again; one that does not translates them once.  FUNCS=16 is the
 * small-code variant of the same workload.
 *
 * Prints one line, identical for every run with the same arguments, and
 * exits 1 on a bad argument or a wrong result.
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "guest.h"

#define MAX_THREADS 1024
#define NFUNCS 4096

/* Function n: a few dependent operations and a data-dependent branch, so
 * that each is a couple of translation blocks. */
#define F(n)                                                            \
    static __attribute__((noinline)) uint64_t f##n(uint64_t x)          \
    {                                                                   \
        x = x * (0x##n##ULL * 2 + 0x9e3779b97f4a7c15ULL) + 0x##n##ULL;  \
        if ((x >> 61) == (0x##n##ULL & 7)) {                            \
            x ^= x >> (0x##n##ULL % 29 + 3);                            \
        } else {                                                        \
            x += 0x##n##ULL << 17;                                      \
        }                                                               \
        return x ^ (x >> 31);                                           \
    }
/* EACH4096(M) is M(000) M(001) ... M(fff): M applied to the 4096 names. */
#define EACH16(M, p)                                                    \
    M(p##0) M(p##1) M(p##2) M(p##3) M(p##4) M(p##5) M(p##6) M(p##7)     \
    M(p##8) M(p##9) M(p##a) M(p##b) M(p##c) M(p##d) M(p##e) M(p##f)
#define EACH256(M, p)                                                   \
    EACH16(M, p##0) EACH16(M, p##1) EACH16(M, p##2) EACH16(M, p##3)     \
    EACH16(M, p##4) EACH16(M, p##5) EACH16(M, p##6) EACH16(M, p##7)     \
    EACH16(M, p##8) EACH16(M, p##9) EACH16(M, p##a) EACH16(M, p##b)     \
    EACH16(M, p##c) EACH16(M, p##d) EACH16(M, p##e) EACH16(M, p##f)
#define EACH4096(M)                                                     \
    EACH256(M, 0) EACH256(M, 1) EACH256(M, 2) EACH256(M, 3)             \
    EACH256(M, 4) EACH256(M, 5) EACH256(M, 6) EACH256(M, 7)             \
    EACH256(M, 8) EACH256(M, 9) EACH256(M, a) EACH256(M, b)             \
    EACH256(M, c) EACH256(M, d) EACH256(M, e) EACH256(M, f)

EACH4096(F)

#define P(n) f##n,
static uint64_t (*const funcs[NFUNCS])(uint64_t) = { EACH4096(P) };

struct worker {
    pthread_t tid;
    unsigned index;
    uint64_t sum;
} __attribute__((aligned(128)));

static struct worker workers[MAX_THREADS];
static unsigned nfuncs = NFUNCS, rounds = 4;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_done = PTHREAD_COND_INITIALIZER;
static unsigned finished, nthreads;

static void *run(void *arg)
{
    struct worker *w = arg;
    uint64_t x = w->index + 1;
    /* Odd stride: each thread visits every function once per round, in
     * its own order. */
    unsigned stride = (2 * w->index + 1) % nfuncs | 1;

    for (unsigned r = 0; r < rounds; r++) {
        unsigned k = w->index % nfuncs;
        for (unsigned i = 0; i < nfuncs; i++) {
            x = funcs[k](x);
            k = (k + stride) % nfuncs;
        }
    }
    w->sum = x;
    /* Stay alive until the last wave has run. */
    pthread_mutex_lock(&lock);
    if (++finished == nthreads) {
        pthread_cond_broadcast(&all_done);
    }
    while (finished < nthreads) {
        pthread_cond_wait(&all_done, &lock);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned long n, f, r, wave;
    uint64_t total = 0;

    if (!guest_arg(argc, argv, 1, 16, 1, MAX_THREADS, &n) ||
        !guest_arg(argc, argv, 2, NFUNCS, 1, NFUNCS, &f) ||
        !guest_arg(argc, argv, 3, 4, 0, LONG_MAX, &r) ||
        !guest_arg(argc, argv, 4, 16, 1, LONG_MAX, &wave)) {
        fprintf(stderr, "usage: waves THREADS(1..%d) [FUNCS(1..%d)] "
                "[ROUNDS] [WAVE]\n", MAX_THREADS, NFUNCS);
        return 1;
    }
    nthreads = (unsigned)n;
    nfuncs = (unsigned)f;
    rounds = (unsigned)r;
    for (unsigned long t = 0; t < n; t++) {
        workers[t].index = (unsigned)t;
        if (!guest_start(&workers[t].tid, run, &workers[t])) {
            return 1;
        }
        /* A wave is complete: let it work before the next one comes. */
        if ((t + 1) % wave == 0 || t + 1 == n) {
            pthread_mutex_lock(&lock);
            while (finished < (unsigned)(t + 1) && finished < nthreads) {
                pthread_mutex_unlock(&lock);
                sched_yield();
                pthread_mutex_lock(&lock);
            }
            pthread_mutex_unlock(&lock);
        }
    }
    for (unsigned long t = 0; t < n; t++) {
        pthread_join(workers[t].tid, NULL);
        total ^= workers[t].sum * (uint64_t)(t + 1);
    }
    printf("waves threads=%lu funcs=%lu rounds=%lu wave=%lu checksum=%016llx\n",
           n, f, r, wave, (unsigned long long)total);
    return 0;
}
