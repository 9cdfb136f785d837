/*
 * relay - guest threads that hand over to one another:
 *   relay [GENERATIONS]
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The main thread starts generation 1 and waits.  Each generation does a
 * little work, starts the next one as a detached thread and exits, so
 * never more than two relay threads (and the main thread) are alive at
 * once, while GENERATIONS (default 5000) threads are started in all.
 * Under qemu-user each thread is a vCPU, and a new vCPU's index is one
 * more than the highest live one: the indices a plugin core sees climb to
 * GENERATIONS although at most three vCPUs ever run together.  The last
 * generation wakes the main thread, which prints one line, identical for
 * every run with the same argument, and exits 0 (1 on a bad argument or a
 * thread that could not be started).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "guest.h"

static unsigned long generations;
static uint64_t checksum;        /* written by one generation at a time */
static int failed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int done;

static void finish(int fail)
{
    pthread_mutex_lock(&lock);
    failed |= fail;
    done = 1;
    pthread_cond_signal(&done_cond);
    pthread_mutex_unlock(&lock);
}

static void *generation(void *arg)
{
    unsigned long g = (uintptr_t)arg;
    uint64_t x = checksum ^ (g * 0x9e3779b97f4a7c15ull);
    pthread_attr_t attr;
    pthread_t next;

    for (int i = 0; i < 64; i++) {
        x = guest_xorshift(x | 1);
    }
    checksum = x;
    if (g == generations) {
        finish(0);
        return NULL;
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&next, &attr, generation, (void *)(uintptr_t)(g + 1))) {
        fprintf(stderr, "pthread_create failed at generation %lu\n", g + 1);
        finish(1);
    }
    pthread_attr_destroy(&attr);
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t first;

    if (!guest_arg(argc, argv, 1, 5000, 1, 10000000, &generations)) {
        fprintf(stderr, "usage: relay [GENERATIONS(1..10000000)]\n");
        return 1;
    }
    if (!guest_start(&first, generation, (void *)(uintptr_t)1)) {
        return 1;
    }
    pthread_detach(first);
    pthread_mutex_lock(&lock);
    while (!done) {
        pthread_cond_wait(&done_cond, &lock);
    }
    pthread_mutex_unlock(&lock);
    printf("relay generations=%lu checksum=%016llx%s\n", generations,
           (unsigned long long)checksum, failed ? " FAILED" : "");
    return failed;
}
