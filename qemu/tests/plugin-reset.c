/*
 * plugin-reset - exercises qemu_plugin_reset() and qemu_plugin_uninstall()
 * while guest threads run.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Build against the QEMU tree's include/qemu/qemu-plugin.h (9.0 to 10.2):
 *   gcc -shared -fPIC -O2 -I<qemu>/include/qemu \
 *       $(pkg-config --cflags glib-2.0) -o libplugin-reset.so plugin-reset.c
 * Run:
 *   qemu-x86_64 -plugin ./libplugin-reset.so,syscalls=N guest-threads T
 *
 * Phase 1 counts system calls, translated blocks (a callback and an inline
 * add per block) and vCPU inits.  After N system calls a syscall callback
 * resets the plugin.  The reset's `done` callback checks that no phase-1
 * callback runs any more, and phase 2 registers a different syscall
 * callback; after N more system calls it uninstalls the plugin, whose
 * `done` callback prints one line:
 *   plugin-reset: PASS|FAIL resets=1 uninstalls=1 late=0 ...
 * `late` counts phase-1 callbacks that ran after the reset completed; it
 * must be 0.  Once the module is closed any late call would crash QEMU.
 * If the process exits before the reset or the uninstall completed, an
 * ATEXIT callback (one per phase; each goes with its phase) prints
 *   plugin-reset: FAIL reset|uninstall not done before exit: ...
 * instead, so such a run says how far it got.
 */
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t limit = 1000;
static uint64_t phase1_syscalls, phase2_syscalls, tb_execs, vcpu_inits;
static uint64_t late, resets, uninstalls;
static int reset_done_flag;  /* set once phase 1's callbacks are gone */
static int reset_asked, uninstall_asked;
static struct qemu_plugin_scoreboard *tb_inline;

static void count_late(void)
{
    if (__atomic_load_n(&reset_done_flag, __ATOMIC_ACQUIRE)) {
        __atomic_fetch_add(&late, 1, __ATOMIC_RELAXED);
    }
}

/* ATEXIT while a phase is still installed: the run ended too early. */
static void unfinished_at_exit(qemu_plugin_id_t id, void *what)
{
    fprintf(stderr, "plugin-reset: FAIL %s before exit: resets=%" PRIu64
            " late=%" PRIu64 " phase1_syscalls=%" PRIu64
            " phase2_syscalls=%" PRIu64 " tb_execs=%" PRIu64 "\n",
            (const char *)what, resets, late, phase1_syscalls,
            phase2_syscalls, tb_execs);
}

static void uninstall_done(qemu_plugin_id_t id)
{
    uint64_t inl = qemu_plugin_u64_sum(qemu_plugin_scoreboard_u64(tb_inline));
    bool ok = resets == 1 && late == 0 && phase2_syscalls >= limit &&
              tb_execs > 0 && inl == tb_execs;

    __atomic_fetch_add(&uninstalls, 1, __ATOMIC_RELAXED);
    fprintf(stderr, "plugin-reset: %s resets=%" PRIu64 " uninstalls=%" PRIu64
            " late=%" PRIu64 " phase1_syscalls=%" PRIu64
            " phase2_syscalls=%" PRIu64 " tb_execs=%" PRIu64
            " tb_inline=%" PRIu64 " vcpu_inits=%" PRIu64 "\n",
            ok ? "PASS" : "FAIL", resets, uninstalls, late, phase1_syscalls,
            phase2_syscalls, tb_execs, inl, vcpu_inits);
    qemu_plugin_scoreboard_free(tb_inline);
}

static void phase2_syscall(qemu_plugin_id_t id, unsigned int vcpu,
                           int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                           uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7,
                           uint64_t a8)
{
    if (__atomic_add_fetch(&phase2_syscalls, 1, __ATOMIC_RELAXED) == limit &&
        !__atomic_exchange_n(&uninstall_asked, 1, __ATOMIC_RELAXED)) {
        qemu_plugin_uninstall(id, uninstall_done);
    }
}

static void reset_done(qemu_plugin_id_t id)
{
    __atomic_fetch_add(&resets, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&reset_done_flag, 1, __ATOMIC_RELEASE);
    qemu_plugin_register_vcpu_syscall_cb(id, phase2_syscall);
    qemu_plugin_register_atexit_cb(id, unfinished_at_exit,
                                   (void *)"uninstall not done");
}

static void phase1_syscall(qemu_plugin_id_t id, unsigned int vcpu,
                           int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                           uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7,
                           uint64_t a8)
{
    count_late();
    if (__atomic_add_fetch(&phase1_syscalls, 1, __ATOMIC_RELAXED) == limit &&
        !__atomic_exchange_n(&reset_asked, 1, __ATOMIC_RELAXED)) {
        qemu_plugin_reset(id, reset_done);
    }
}

static void tb_exec(unsigned int vcpu, void *udata)
{
    count_late();
    __atomic_fetch_add(&tb_execs, 1, __ATOMIC_RELAXED);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    count_late();
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS,
                                         NULL);
    qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(
        tb, QEMU_PLUGIN_INLINE_ADD_U64, qemu_plugin_scoreboard_u64(tb_inline),
        1);
}

static void vcpu_init(qemu_plugin_id_t id, unsigned int vcpu)
{
    count_late();
    __atomic_fetch_add(&vcpu_inits, 1, __ATOMIC_RELAXED);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
                                           const qemu_info_t *info,
                                           int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "syscalls=", 9) == 0) {
            limit = strtoull(argv[i] + 9, NULL, 0);
        } else {
            fprintf(stderr, "plugin-reset: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    tb_inline = qemu_plugin_scoreboard_new(sizeof(uint64_t));
    qemu_plugin_register_vcpu_init_cb(id, vcpu_init);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, phase1_syscall);
    qemu_plugin_register_atexit_cb(id, unfinished_at_exit,
                                   (void *)"reset not done");
    return 0;
}
