/*
 * patch-target - the instruction that the boot check's libpatch run rewrites.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Build: gcc -O2 -static -o patch-target patch-target.c
 *
 * marker() loads a 64-bit constant with one 10-byte instruction,
 * `movabs $MARK_ORIG, %rax` (48 b8 + the constant, little-endian). No other
 * code in the guest (kernel, busybox, guest-threads) contains that
 * instruction, so QEMU's libpatch, given those 10 bytes as `target` and
 * `movabs $MARK_PATCHED, %rax` as `patch`, rewrites only this one. It
 * patches when the translation block holding the instruction first runs,
 * which invalidates the block, so every later call returns the patched
 * constant. The program calls marker() many times (a system call between
 * calls, so the block is looked up again) and prints the last value:
 * "original" without libpatch, "patched" with it.
 */
#include <stdio.h>
#include <unistd.h>

#define MARK_ORIG 0x5150445f4f524947ull    /* "GIRO_DPQ" */
#define MARK_PATCHED 0x5150445f50415443ull /* "CTAP_DPQ" */
#define CALLS 1000

static __attribute__((noinline)) unsigned long long marker(void)
{
    unsigned long long v;

    /* movabs forces the 10-byte encoding even for a small constant */
    asm volatile("movabs $0x5150445f4f524947, %0" : "=a"(v));
    return v;
}

/* in memory, so the compiler does not load them with a matching movabs */
static volatile unsigned long long mark_orig = MARK_ORIG;
static volatile unsigned long long mark_patched = MARK_PATCHED;

int main(void)
{
    unsigned long long v = 0;

    for (int i = 0; i < CALLS; i++) {
        v = marker();
        if (getppid() < 0) {
            return 2;
        }
    }
    printf("patch-target=%s\n", v == mark_orig ? "original"
                                : v == mark_patched ? "patched" : "other");
    return 0;
}
