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

#include "guest.h"

#define MAX_THREADS 1024

struct worker {
    pthread_t tid; /* first: see guest_run() */
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
    unsigned long n, iters;
    uint64_t total = 0;

    if (!guest_arg(argc, argv, 1, 1, 1, MAX_THREADS, &n) ||
        !guest_arg(argc, argv, 2, 20000000, 0, LONG_MAX, &iters)) {
        fprintf(stderr, "usage: spin THREADS(1..%d) [ITERATIONS]\n",
                MAX_THREADS);
        return 1;
    }
    for (unsigned long t = 0; t < n; t++) {
        workers[t].iters = iters;
    }
    if (!guest_run(workers, sizeof(workers[0]), n, run)) {
        return 1;
    }
    for (unsigned long t = 0; t < n; t++) {
        total += workers[t].sum;
    }
    printf("spin threads=%lu iterations=%lu checksum=%016llx\n", n, iters,
           (unsigned long long)total);
    return 0;
}
