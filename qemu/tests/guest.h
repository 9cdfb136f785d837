/*
 * guest.h - what the guests in this directory share
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Static inline helpers only, so that each guest still builds from its one
 * source file with a plain `gcc ... NAME.c`: guest_arg() reads an optional
 * numeric argument and checks its range, guest_start() starts a thread and
 * says why it could not, guest_run() runs an array of workers to their end,
 * guest_xorshift() is the step of the pseudo-random sequence that drives
 * the workers' data-dependent branches.
 */
#ifndef QPD_GUEST_H
#define QPD_GUEST_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Store argv[i] (strtoul, base 0, so 0x10 is 16; trailing text is ignored
 * and text without a number reads 0), or dflt when there is no argv[i],
 * into *out; return whether it lies in [min, max].  A negative number reads
 * as a huge one, so any max below ULONG_MAX refuses it.
 */
static inline bool guest_arg(int argc, char **argv, int i, unsigned long dflt,
                             unsigned long min, unsigned long max,
                             unsigned long *out)
{
    *out = argc > i ? strtoul(argv[i], NULL, 0) : dflt;
    return *out >= min && *out <= max;
}

/*
 * Start a thread running fn(arg), its id in *tid; if it cannot be started,
 * print "pthread_create: REASON" on stderr and return false.
 */
static inline bool guest_start(pthread_t *tid, void *(*fn)(void *), void *arg)
{
    int err = pthread_create(tid, NULL, fn, arg);

    if (err != 0) {
        fprintf(stderr, "pthread_create: %s\n", strerror(err));
        return false;
    }
    return true;
}

/*
 * Start n threads, thread t running fn(&rec[t]) where rec is an array of n
 * records of size bytes, each beginning with its thread's pthread_t; then
 * join them all and return true.  If one cannot be started, return false at
 * once (as guest_start(); those already started are left running).
 */
static inline bool guest_run(void *rec, size_t size, unsigned long n,
                             void *(*fn)(void *))
{
    char *r = rec;

    for (unsigned long t = 0; t < n; t++) {
        if (!guest_start((pthread_t *)(r + t * size), fn, r + t * size)) {
            return false;
        }
    }
    for (unsigned long t = 0; t < n; t++) {
        pthread_join(*(pthread_t *)(r + t * size), NULL);
    }
    return true;
}

/* The xorshift64 successor of x (shifts 13, 7, 17): never 0 if x is not. */
static inline uint64_t guest_xorshift(uint64_t x)
{
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

#endif /* QPD_GUEST_H */
