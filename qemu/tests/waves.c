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
#define F16(p)                                                          \
    F(p##0) F(p##1) F(p##2) F(p##3) F(p##4) F(p##5) F(p##6) F(p##7)     \
    F(p##8) F(p##9) F(p##a) F(p##b) F(p##c) F(p##d) F(p##e) F(p##f)
#define F256(p)                                                         \
    F16(p##0) F16(p##1) F16(p##2) F16(p##3) F16(p##4) F16(p##5)         \
    F16(p##6) F16(p##7) F16(p##8) F16(p##9) F16(p##a) F16(p##b)         \
    F16(p##c) F16(p##d) F16(p##e) F16(p##f)
#define F4096                                                           \
    F256(0) F256(1) F256(2) F256(3) F256(4) F256(5) F256(6) F256(7)     \
    F256(8) F256(9) F256(a) F256(b) F256(c) F256(d) F256(e) F256(f)
F4096

#define P(n) f##n,
#define P16(p)                                                          \
    P(p##0) P(p##1) P(p##2) P(p##3) P(p##4) P(p##5) P(p##6) P(p##7)     \
    P(p##8) P(p##9) P(p##a) P(p##b) P(p##c) P(p##d) P(p##e) P(p##f)
#define P256(p)                                                         \
    P16(p##0) P16(p##1) P16(p##2) P16(p##3) P16(p##4) P16(p##5)         \
    P16(p##6) P16(p##7) P16(p##8) P16(p##9) P16(p##a) P16(p##b)         \
    P16(p##c) P16(p##d) P16(p##e) P16(p##f)

static uint64_t (*const funcs[NFUNCS])(uint64_t) = {
    P256(0) P256(1) P256(2) P256(3) P256(4) P256(5) P256(6) P256(7)
    P256(8) P256(9) P256(a) P256(b) P256(c) P256(d) P256(e) P256(f)
};

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
    long n = argc > 1 ? strtol(argv[1], NULL, 0) : 16;
    long f = argc > 2 ? strtol(argv[2], NULL, 0) : NFUNCS;
    long r = argc > 3 ? strtol(argv[3], NULL, 0) : 4;
    long wave = argc > 4 ? strtol(argv[4], NULL, 0) : 16;
    uint64_t total = 0;

    if (n < 1 || n > MAX_THREADS || f < 1 || f > NFUNCS || r < 0 ||
        wave < 1) {
        fprintf(stderr, "usage: waves THREADS(1..%d) [FUNCS(1..%d)] "
                "[ROUNDS] [WAVE]\n", MAX_THREADS, NFUNCS);
        return 1;
    }
    nthreads = (unsigned)n;
    nfuncs = (unsigned)f;
    rounds = (unsigned)r;
    for (long t = 0; t < n; t++) {
        workers[t].index = (unsigned)t;
        if (pthread_create(&workers[t].tid, NULL, run, &workers[t]) != 0) {
            perror("pthread_create");
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
    for (long t = 0; t < n; t++) {
        pthread_join(workers[t].tid, NULL);
        total ^= workers[t].sum * (uint64_t)(t + 1);
    }
    printf("waves threads=%ld funcs=%ld rounds=%ld wave=%ld checksum=%016llx\n",
           n, f, r, wave, (unsigned long long)total);
    return 0;
}
