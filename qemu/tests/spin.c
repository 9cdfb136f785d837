/*
 * spin - tight guest loops for inline-counter scaling: spin THREADS [ITERS]
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Each of THREADS workers runs ITERS (default 20000000) iterations of a
 * short loop with a load, a store and a data-dependent branch on its own
 * cache lines, so every worker does the same work and nothing is shared:
 * with N host cores, N workers should take as long as one.  Whatever makes
 * them slower than that is the emulator's (or the plugin core's) sharing.
 * Prints one checksum line, identical for every run with the same
 * arguments, and exits 1 on a bad argument.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_THREADS 1024

struct worker {
    pthread_t tid;
    uint64_t iters;
    uint64_t sum;
    uint64_t buf[8];
} __attribute__((aligned(128)));

static struct worker workers[MAX_THREADS];

static void *run(void *arg)
{
    struct worker *w = arg;
    volatile uint64_t *b = w->buf;
    uint64_t x = (uint64_t)(w - workers) + 1;

    for (uint64_t i = 0; i < w->iters; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        if (x >> 63) {
            b[i & 7] += x >> 32;
        } else {
            b[(i + 3) & 7] ^= x;
        }
    }
    for (int k = 0; k < 8; k++) {
        w->sum += b[k];
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 0) : 1;
    long long iters = argc > 2 ? strtoll(argv[2], NULL, 0) : 20000000;
    uint64_t total = 0;

    if (n < 1 || n > MAX_THREADS || iters < 0) {
        fprintf(stderr, "usage: spin THREADS(1..%d) [ITERATIONS]\n",
                MAX_THREADS);
        return 1;
    }
    for (long t = 0; t < n; t++) {
        workers[t].iters = (uint64_t)iters;
        if (pthread_create(&workers[t].tid, NULL, run, &workers[t]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    for (long t = 0; t < n; t++) {
        pthread_join(workers[t].tid, NULL);
        total += workers[t].sum;
    }
    printf("spin threads=%ld iterations=%lld checksum=%016llx\n", n, iters,
           (unsigned long long)total);
    return 0;
}
