/*
 * serial - a deterministic single-threaded guest: serial [ITERATIONS]
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * No thread is ever started, so every plugin sees one vCPU (index 0) and
 * the same instruction stream on every run: ITERATIONS (default 200000)
 * rounds of xorshift steps, loads and stores to a 32 KiB buffer (several
 * pages, for hotpages and the cache model), a data-dependent branch, a
 * call through a small table of functions, and every 1024th round a
 * getppid system call.  Prints one line, identical for every run with the
 * same argument, and exits 1 on a bad argument.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "guest.h"

#define BUF_WORDS 4096 /* 32 KiB: 8 pages */
#define SYSCALL_EVERY 1024

static uint64_t buf[BUF_WORDS];

static __attribute__((noinline)) uint64_t op_add(uint64_t a, uint64_t b)
{
    return a + b;
}

static __attribute__((noinline)) uint64_t op_xor(uint64_t a, uint64_t b)
{
    return a ^ (b << 3);
}

static __attribute__((noinline)) uint64_t op_mul(uint64_t a, uint64_t b)
{
    return a * (b | 1);
}

static __attribute__((noinline)) uint64_t op_rot(uint64_t a, uint64_t b)
{
    unsigned r = b & 63;
    return r ? (a << r) | (a >> (64 - r)) : a;
}

static uint64_t (*const ops[4])(uint64_t, uint64_t) = {
    op_add, op_xor, op_mul, op_rot
};

int main(int argc, char **argv)
{
    unsigned long iters, syscalls = 0;
    uint64_t x = 0x9e3779b97f4a7c15ull, sum = 0;

    if (!guest_arg(argc, argv, 1, 200000, 0, ULONG_MAX, &iters)) {
        fprintf(stderr, "usage: serial [ITERATIONS]\n");
        return 1;
    }
    for (unsigned long i = 0; i < iters; i++) {
        x = guest_xorshift(x);
        buf[x % BUF_WORDS] += x >> 32;
        if (x & 1) {
            sum = ops[(x >> 8) & 3](sum, buf[(x >> 16) % BUF_WORDS]);
        } else {
            sum += buf[(x >> 24) % BUF_WORDS];
        }
        if (i % SYSCALL_EVERY == 0) {
            syscalls += syscall(SYS_getppid) > 0;
        }
    }
    for (unsigned j = 0; j < BUF_WORDS; j++) {
        sum ^= buf[j] + j;
    }
    printf("serial iterations=%lu syscalls=%lu checksum=%016llx\n", iters,
           syscalls, (unsigned long long)sum);
    return 0;
}
