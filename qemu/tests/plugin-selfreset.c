/*
 * plugin-selfreset - a plugin that resets itself over and over and must
 * not lose an event across its resets.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Build against the QEMU tree's include/qemu/qemu-plugin.h (9.0 to 10.2):
 *   gcc -shared -fPIC -O2 -I<qemu>/include/qemu \
 *       $(pkg-config --cflags glib-2.0) -o libplugin-selfreset.so \
 *       plugin-selfreset.c
 * Run:
 *   qemu-x86_64 -plugin ./libplugin-selfreset.so,every=N[,count=NR] GUEST
 *
 * The plugin counts system calls, executed translation blocks (one exec
 * callback per block, registered at translation) and vCPU exits.  Every
 * EVERY (default 2000) system calls, the syscall callback asks for
 * qemu_plugin_reset(); the reset's `done` callback registers every
 * callback again (syscall, tb_trans, vcpu_exit, atexit), so that a
 * correct plugin core loses no event: the system calls counted are all
 * the system calls the guest made.  COUNT names one system call number
 * (default 110, getppid on x86-64) also counted on its own, so that a
 * guest that knows how many of those it makes can be checked exactly.
 * At exit it prints one line:
 *   plugin-selfreset: syscalls=S resets=R blocks=B vcpu_exits=E counted=C
 * where R is the number of resets done (each asked for once, one at a
 * time).
 */
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t every = 2000;
static int64_t counted_nr = 110;
static uint64_t syscalls, counted, resets, blocks, vcpu_exits, asked;
static int pending;     /* a reset was asked for and is not done yet */

static void register_all(qemu_plugin_id_t id);

static void reset_done(qemu_plugin_id_t id)
{
    __atomic_fetch_add(&resets, 1, __ATOMIC_RELAXED);
    register_all(id);
    __atomic_store_n(&pending, 0, __ATOMIC_RELEASE);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num,
                       uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                       uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    uint64_t n = __atomic_add_fetch(&syscalls, 1, __ATOMIC_RELAXED);

    if (num == counted_nr) {
        __atomic_fetch_add(&counted, 1, __ATOMIC_RELAXED);
    }
    if (n % every == 0 && !__atomic_exchange_n(&pending, 1, __ATOMIC_ACQ_REL)) {
        __atomic_fetch_add(&asked, 1, __ATOMIC_RELAXED);
        qemu_plugin_reset(id, reset_done);
    }
}

static void tb_exec(unsigned int vcpu, void *udata)
{
    __atomic_fetch_add(&blocks, 1, __ATOMIC_RELAXED);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS,
                                         NULL);
}

static void vcpu_exit(qemu_plugin_id_t id, unsigned int vcpu)
{
    __atomic_fetch_add(&vcpu_exits, 1, __ATOMIC_RELAXED);
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    fprintf(stderr, "plugin-selfreset: syscalls=%" PRIu64 " resets=%" PRIu64
            " blocks=%" PRIu64 " vcpu_exits=%" PRIu64 " counted=%" PRIu64
            " asked=%" PRIu64 "\n", syscalls, resets, blocks, vcpu_exits,
            counted, asked);
}

static void register_all(qemu_plugin_id_t id)
{
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_exit_cb(id, vcpu_exit);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
                                           const qemu_info_t *info,
                                           int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "every=", 6) == 0) {
            every = strtoull(argv[i] + 6, NULL, 0);
        } else if (strncmp(argv[i], "count=", 6) == 0) {
            counted_nr = strtoll(argv[i] + 6, NULL, 0);
        } else {
            fprintf(stderr, "plugin-selfreset: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    if (every == 0) {
        fprintf(stderr, "plugin-selfreset: every must be > 0\n");
        return -1;
    }
    register_all(id);
    return 0;
}
