/*
 * plugins/core.c for QEMU 10.x, backed by libqpd.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * qpd-adapter: this marker tells qemu/apply the file is already in place.
 *
 * What this file is.  QEMU's TCG plugin core keeps every callback list,
 * the vCPU set and the scoreboards behind one recursive mutex, walks RCU
 * lists on each dispatch, packs the vCPUs' scoreboard slots next to each
 * other and, when a vCPU index outgrows them, stops every vCPU and throws
 * away all translated code.  This file keeps QEMU's interface
 * (plugins/plugin.h, include/qemu/plugin.h) and hands that state to one qpd
 * instance per process, created with the first plugin.  It is the same file
 * for every supported QEMU; what differs between versions is in the small
 * compat header next to it (qpd-compat.h, from qemu/v<version>/) and in the
 * one section below marked "plugin API 5".
 *
 * - Ids.  A QEMU plugin id *is* a qpd plugin id: the loader asks
 *   plugin_new_id() for it, so nothing translates ids on a dispatch path.
 *   The loader keeps its contexts (module handle, arguments) under
 *   plugin.lock; no dispatch path takes that lock.
 *
 * - Callbacks.  qpd calls fn(id, ..., udata).  QEMU's vCPU, translation,
 *   syscall, discontinuity and flush callbacks carry no udata, so they are
 *   registered as a trampoline of this file with the plugin's function as
 *   udata.  qpd publishes (fn, udata) as one pair, so a trampoline always
 *   calls the function registered with it, and nothing is allocated per
 *   registration.
 *
 * - Sections.  Every dispatch that runs on a vCPU thread outside translated
 *   code (translation, system calls, discontinuities) is one short qpd
 *   section of that vCPU; init, exit, idle, resume, flush and atexit take
 *   their own inside qpd.  So no QEMU file outside plugins/ needs a hook,
 *   a vCPU never holds reclamation back while it runs guest code or sleeps,
 *   and unregistration (reset, uninstall, exit) never frees what a
 *   dispatching thread reads: QEMU 10's syscall hooks walk their list while
 *   an uninstall frees it in an exclusive section the syscall path is not
 *   part of.
 *
 * - Scoreboards are qpd scoreboards.  A vCPU's slot never moves, so a new
 *   vCPU index needs neither start_exclusive() nor tb_flush().  QEMU's
 *   translator addresses slot v as data + v * element_size of the
 *   scoreboard's GArray; here that GArray is a view whose data is vCPU 0's
 *   slot and whose element size is qpd's region stride, both fixed for the
 *   scoreboard's life, so the translator and api.c stay unchanged.  Slots of
 *   different vCPUs are QPD_SB_REGION apart: no false sharing.
 *
 * - Dynamic callbacks.  The per-TB and per-instruction arrays plugins fill
 *   at translation time stay QEMU's GArrays: plugin-gen.c turns them into
 *   direct calls and inline TCG ops.  The only lists read at run time back
 *   the memory callbacks of instructions emulated in helpers: plugin-gen.c
 *   hands a copy to qemu_plugin_add_dyn_cb_arr() and makes translated code
 *   store that GArray's address in CPUState.  Here its contents become a
 *   qpd dynamic list and the GArray keeps one element: a handle naming that
 *   list.  qemu_plugin_vcpu_mem_cb() runs it with qpd_dyn_exec_mem(); a
 *   flush retires every list through qpd's epoch and frees the handles.
 *
 * Why it is safe.  Dispatch reads only qpd's epoch-published arrays, from
 * inside a section; registration never waits for a vCPU.  Run-time memory
 * lists are executed by helpers inside translated code, which no vCPU runs
 * during a flush (do_tb_flush() is exclusive, and plugin_mem_cbs is cleared
 * after every instrumented instruction and on every exit from it), so the
 * handles may be freed in the flush, as QEMU frees its arrays there, and
 * the lists themselves outlive a grace period anyway.  Plugin removal stays
 * QEMU's shape: translated code is flushed in an exclusive section, qpd
 * unpublishes the plugin's callbacks, and the loader's remaining work
 * (the plugin's callback, dlclose) runs from qpd's `done` hook, once no
 * thread can be inside one of them.
 */
#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/lockable.h"
#include "qemu/plugin.h"
#include "exec/tb-flush.h"
#include "tcg/tcg-op-common.h"
#include "plugin.h"

#if __has_include("../subprojects/qpd/include/qpd.h")
#include "../subprojects/qpd/include/qpd.h"
#else
#include <qpd.h>
#endif

#include "qpd-compat.h"

/*
 * Translated code computes a slot's offset as cpu_index * element_size in
 * 32 bits and sign-extends it (plugin-gen.c); with a 1 MiB stride that is
 * exact for indices below 2048.
 */
#define QPD_QEMU_MAX_VCPUS (INT32_MAX / QPD_SB_REGION + 1)

/* The loader's bookkeeping: contexts, the id -> ctx table and its lock. */
struct qemu_plugin_state plugin;

/* Created with the first plugin, before any vCPU exists; never freed. */
static struct qpd *qpd_q;

/*
 * vCPU index -> CPUState, for queueing event-mask updates on a vCPU.
 * cpus_lock is a leaf lock held only around the table and async_run_on_cpu
 * so that a vCPU leaving the table is never sent work after it left.
 */
static QemuMutex cpus_lock;
static CPUState *cpus[QPD_QEMU_MAX_VCPUS];

/* ------------------------------------------------------------------ */
/* Trampolines: QEMU's callback types, the plugin's function as udata.  */

QEMU_DISABLE_CFI
static void tramp_vcpu(qpd_plugin_id id, unsigned vcpu, void *fn)
{
    ((qemu_plugin_vcpu_simple_cb_t)fn)(id, vcpu);
}

QEMU_DISABLE_CFI
static void tramp_tb_trans(qpd_plugin_id id, unsigned vcpu, void *tb,
                           void *fn)
{
    ((qemu_plugin_vcpu_tb_trans_cb_t)fn)(id, tb);
}

QEMU_DISABLE_CFI
static void tramp_syscall(qpd_plugin_id id, unsigned vcpu, int64_t num,
                          const uint64_t a[8], void *fn)
{
    ((qemu_plugin_vcpu_syscall_cb_t)fn)(id, vcpu, num, a[0], a[1], a[2],
                                        a[3], a[4], a[5], a[6], a[7]);
}

QEMU_DISABLE_CFI
static void tramp_syscall_ret(qpd_plugin_id id, unsigned vcpu, int64_t num,
                              int64_t ret, void *fn)
{
    ((qemu_plugin_vcpu_syscall_ret_cb_t)fn)(id, vcpu, num, ret);
}

QEMU_DISABLE_CFI
static void tramp_simple(qpd_plugin_id id, void *fn)
{
    ((qemu_plugin_simple_cb_t)fn)(id);
}

#if QPD_QEMU_PLUGIN_API >= 5
QEMU_DISABLE_CFI
static void tramp_discon(qpd_plugin_id id, unsigned vcpu,
                         enum qpd_discon_type type, uint64_t from,
                         uint64_t to, void *fn)
{
    ((qemu_plugin_vcpu_discon_cb_t)fn)(id, vcpu,
                                       (enum qemu_plugin_discon_type)type,
                                       from, to);
}
#endif

/* QEMU's event, qpd's event and the trampoline (NULL: register as is). */
static const struct {
    enum qpd_event ev;
    void *tramp;
} ev_map[QEMU_PLUGIN_EV_MAX] = {
    [QEMU_PLUGIN_EV_VCPU_INIT] = { QPD_EV_VCPU_INIT, (void *)tramp_vcpu },
    [QEMU_PLUGIN_EV_VCPU_EXIT] = { QPD_EV_VCPU_EXIT, (void *)tramp_vcpu },
    [QEMU_PLUGIN_EV_VCPU_TB_TRANS] = { QPD_EV_VCPU_TB_TRANS,
                                       (void *)tramp_tb_trans },
    [QEMU_PLUGIN_EV_VCPU_IDLE] = { QPD_EV_VCPU_IDLE, (void *)tramp_vcpu },
    [QEMU_PLUGIN_EV_VCPU_RESUME] = { QPD_EV_VCPU_RESUME, (void *)tramp_vcpu },
    [QEMU_PLUGIN_EV_VCPU_SYSCALL] = { QPD_EV_VCPU_SYSCALL,
                                      (void *)tramp_syscall },
    [QEMU_PLUGIN_EV_VCPU_SYSCALL_RET] = { QPD_EV_VCPU_SYSCALL_RET,
                                          (void *)tramp_syscall_ret },
    [QEMU_PLUGIN_EV_FLUSH] = { QPD_EV_FLUSH, (void *)tramp_simple },
    [QEMU_PLUGIN_EV_ATEXIT] = { QPD_EV_ATEXIT, NULL },
#if QPD_QEMU_PLUGIN_API >= 5
    [QEMU_PLUGIN_EV_VCPU_INTERRUPT] = { QPD_EV_VCPU_INTERRUPT,
                                        (void *)tramp_discon },
    [QEMU_PLUGIN_EV_VCPU_EXCEPTION] = { QPD_EV_VCPU_EXCEPTION,
                                        (void *)tramp_discon },
    [QEMU_PLUGIN_EV_VCPU_HOSTCALL] = { QPD_EV_VCPU_HOSTCALL,
                                       (void *)tramp_discon },
#endif
};

/* Memory directions pass through unchanged. */
QEMU_BUILD_BUG_ON(QEMU_PLUGIN_MEM_R != (int)QPD_MEM_R);
QEMU_BUILD_BUG_ON(QEMU_PLUGIN_MEM_W != (int)QPD_MEM_W);
QEMU_BUILD_BUG_ON(QEMU_PLUGIN_MEM_RW != (int)QPD_MEM_RW);

static G_NORETURN void invalid_id(qemu_plugin_id_t id)
{
    error_report("plugin: invalid plugin id %" PRIu64, id);
    abort();
}

static G_NORETURN void core_failed(const char *what, int err)
{
    error_report("plugin: %s: %s", what, qpd_strerror(err));
    abort();
}

/*
 * QEMU's rules for a qpd result about plugin @id: an unknown id aborts, a
 * plugin on its way out is ignored, anything else (no memory) is fatal.
 */
static void check_plugin_call(int err, qemu_plugin_id_t id, const char *what)
{
    if (err == -ENOENT) {
        invalid_id(id);
    }
    if (err != 0 && err != -ESHUTDOWN) {
        core_failed(what, err);
    }
}

/* Does @vcpu have a callback for @ev?  One relaxed load of its mask. */
static bool vcpu_wants(unsigned vcpu, enum qpd_event ev)
{
    return qpd_vcpu_has_event(qpd_q, vcpu, ev);
}

/* ------------------------------------------------------------------ */
/* Event masks: QEMU's per-vCPU copy follows qpd's                      */

/*
 * Runs on the vCPU's own thread (CPUPluginState is written only there):
 * plugin-gen.c reads the TB_TRANS bit to decide whether to instrument.
 */
static void vcpu_mask_update__async(CPUState *cpu, run_on_cpu_data unused)
{
    int ev;

    for (ev = 0; ev < QEMU_PLUGIN_EV_MAX; ev++) {
        if (vcpu_wants(cpu->cpu_index, ev_map[ev].ev)) {
            set_bit(ev, cpu->plugin_state->event_mask);
        } else {
            clear_bit(ev, cpu->plugin_state->event_mask);
        }
    }
    tcg_flush_jmp_cache(cpu);
}

/* qpd's hook: @vcpu's mask changed (any thread, no qpd lock held). */
static void vcpu_mask_changed(unsigned vcpu, void *opaque)
{
    QEMU_LOCK_GUARD(&cpus_lock);
    if (vcpu < QPD_QEMU_MAX_VCPUS && cpus[vcpu] != NULL) {
        async_run_on_cpu(cpus[vcpu], vcpu_mask_update__async,
                         RUN_ON_CPU_NULL);
    }
}

/* ------------------------------------------------------------------ */
/* Plugins and their callbacks                                          */

qemu_plugin_id_t plugin_new_id(void)
{
    qpd_plugin_id id;
    int err;

    if (qpd_q == NULL) {
        struct qpd_config cfg = {
            .max_vcpus = QPD_QEMU_MAX_VCPUS,
            .on_mask_change = vcpu_mask_changed,
        };

        qpd_q = qpd_new(&cfg);
        if (qpd_q == NULL) {
            core_failed("cannot create the plugin core", -errno);
        }
    }
    err = qpd_plugin_add(qpd_q, &id);
    if (err) {
        core_failed("cannot add a plugin", err);
    }
    return id;
}

struct qemu_plugin_ctx *plugin_id_to_ctx_locked(qemu_plugin_id_t id)
{
    qemu_plugin_id_t *key = g_hash_table_lookup(plugin.id_ht, &id);

    if (key == NULL) {
        invalid_id(id);
    }
    return container_of(key, struct qemu_plugin_ctx, id);
}

/* A reset or uninstall whose `done` has not run yet. */
struct removal {
    void (*done)(qemu_plugin_id_t id, void *opaque);
    void *opaque;
};

static unsigned n_removals_pending;

static void removal_done(qpd_plugin_id id, void *arg)
{
    struct removal r = *(struct removal *)arg;

    g_free(arg);
    r.done(id, r.opaque);
    qatomic_dec(&n_removals_pending);
}

/*
 * QEMU finished a reset or uninstall before returning to the guest, so a
 * plugin may count on its callback having run by exit: wait for them,
 * briefly (sections are short; a stuck one only costs the wait).
 */
static void wait_for_removals(void)
{
    for (int i = 0; i < 2000 && qatomic_read(&n_removals_pending); i++) {
        if (qpd_reclaim(qpd_q) > 0 && qatomic_read(&n_removals_pending)) {
            g_usleep(1000);
        }
    }
}

void plugin_remove_cbs(qemu_plugin_id_t id, bool reset,
                       void (*done)(qemu_plugin_id_t id, void *opaque),
                       void *opaque)
{
    struct removal *r = g_new(struct removal, 1);
    int err;

    if (qpd_q == NULL) {
        invalid_id(id);
    }
    *r = (struct removal){ .done = done, .opaque = opaque };
    qatomic_inc(&n_removals_pending);
    err = reset ? qpd_plugin_reset(qpd_q, id, removal_done, r)
                : qpd_plugin_uninstall(qpd_q, id, removal_done, r);
    if (err == -ENOENT) {
        invalid_id(id);
    }
    if (err) {
        /* The loader never asks twice for the same plugin. */
        core_failed(reset ? "reset" : "uninstall", err);
    }
}

/* Sets (@func != NULL) or clears the plugin's callback for @ev. */
static int set_cb(qemu_plugin_id_t id, enum qemu_plugin_event ev,
                  void *func, void *udata)
{
    void *fn = func;

    g_assert(ev < QEMU_PLUGIN_EV_MAX);
    if (qpd_q == NULL) {
        return -ENOENT;
    }
    if (func != NULL && ev_map[ev].tramp != NULL) {
        fn = ev_map[ev].tramp;
        udata = func;
    }
    return qpd_register_cb(qpd_q, id, ev_map[ev].ev, fn, udata);
}

void plugin_register_cb(qemu_plugin_id_t id, enum qemu_plugin_event ev,
                        void *func)
{
    check_plugin_call(set_cb(id, ev, func, NULL), id, "register");
}

void plugin_register_cb_udata(qemu_plugin_id_t id, enum qemu_plugin_event ev,
                              void *func, void *udata)
{
    check_plugin_call(set_cb(id, ev, func, udata), id, "register");
}

/* The loader calls this per event on reset/uninstall; qpd already did it. */
void plugin_unregister_cb__locked(struct qemu_plugin_ctx *ctx,
                                  enum qemu_plugin_event ev)
{
    int err = set_cb(ctx->id, ev, NULL, NULL);

    if (err != 0 && err != -ESHUTDOWN && err != -ENOENT) {
        core_failed("unregister", err);
    }
}

void qemu_plugin_register_vcpu_idle_cb(qemu_plugin_id_t id,
                                       qemu_plugin_vcpu_simple_cb_t cb)
{
    plugin_register_cb(id, QEMU_PLUGIN_EV_VCPU_IDLE, cb);
}

void qemu_plugin_register_vcpu_resume_cb(qemu_plugin_id_t id,
                                         qemu_plugin_vcpu_simple_cb_t cb)
{
    plugin_register_cb(id, QEMU_PLUGIN_EV_VCPU_RESUME, cb);
}

void qemu_plugin_register_flush_cb(qemu_plugin_id_t id,
                                   qemu_plugin_simple_cb_t cb)
{
    plugin_register_cb(id, QEMU_PLUGIN_EV_FLUSH, cb);
}

void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id,
                                    qemu_plugin_udata_cb_t cb,
                                    void *udata)
{
    plugin_register_cb_udata(id, QEMU_PLUGIN_EV_ATEXIT, cb, udata);
}

/* ------------------------------------------------------------------ */
/* vCPUs                                                                */

CPUPluginState *qemu_plugin_create_vcpu_state(void)
{
    return g_new0(CPUPluginState, 1);
}

/* Runs on the vCPU's thread, which becomes the owner of its qpd record. */
static void qemu_plugin_vcpu_init__async(CPUState *cpu, run_on_cpu_data unused)
{
    int idx = cpu->cpu_index;
    int err;

    if (idx < 0 || idx >= QPD_QEMU_MAX_VCPUS) {
        error_report("plugin: vCPU index %d: at most %d vCPUs with plugins",
                     idx, (int)QPD_QEMU_MAX_VCPUS);
        abort();
    }
    WITH_QEMU_LOCK_GUARD(&cpus_lock) {
        cpus[idx] = cpu;
    }
    /* Where QEMU grew every scoreboard: qpd's slots already exist. */
    qpd_qemu_set_cb_flags(cpu, QEMU_PLUGIN_CB_RW_REGS);
    err = qpd_vcpu_init(qpd_q, idx);
    qpd_qemu_set_cb_flags(cpu, QEMU_PLUGIN_CB_NO_REGS);
    if (err) {
        error_report("plugin: vCPU %d: %s", idx, qpd_strerror(err));
        abort();
    }
    vcpu_mask_update__async(cpu, RUN_ON_CPU_NULL);
}

void qemu_plugin_vcpu_init_hook(CPUState *cpu)
{
    /* As in QEMU: initialise once the vCPU thread starts running. */
    if (qpd_q != NULL) {
        async_run_on_cpu(cpu, qemu_plugin_vcpu_init__async, RUN_ON_CPU_NULL);
    }
}

void qemu_plugin_vcpu_exit_hook(CPUState *cpu)
{
    int idx = cpu->cpu_index;
    int err;

    if (qpd_q == NULL || idx < 0 || idx >= QPD_QEMU_MAX_VCPUS) {
        return;
    }
    qpd_qemu_set_cb_flags(cpu, QEMU_PLUGIN_CB_RW_REGS);
    err = qpd_vcpu_exit(qpd_q, idx);
    qpd_qemu_set_cb_flags(cpu, QEMU_PLUGIN_CB_NO_REGS);
    /* -ENOENT: the thread ended before its queued init ran. */
    if (err != 0 && err != -ENOENT) {
        error_report("plugin: vCPU %d exit: %s", idx, qpd_strerror(err));
        abort();
    }
    WITH_QEMU_LOCK_GUARD(&cpus_lock) {
        cpus[idx] = NULL;
    }
}

void qemu_plugin_vcpu_idle_cb(CPUState *cpu)
{
    /* qpd ignores a vCPU that is not initialised, as QEMU does. */
    if (qpd_q != NULL) {
        qpd_qemu_set_cb_flags(cpu, QEMU_PLUGIN_CB_RW_REGS);
        qpd_vcpu_idle(qpd_q, cpu->cpu_index);
        qpd_qemu_set_cb_flags(cpu, QEMU_PLUGIN_CB_NO_REGS);
    }
}

void qemu_plugin_vcpu_resume_cb(CPUState *cpu)
{
    if (qpd_q != NULL) {
        qpd_qemu_set_cb_flags(cpu, QEMU_PLUGIN_CB_RW_REGS);
        qpd_vcpu_resume(qpd_q, cpu->cpu_index);
        qpd_qemu_set_cb_flags(cpu, QEMU_PLUGIN_CB_NO_REGS);
    }
}

void qemu_plugin_vcpu_for_each(qemu_plugin_id_t id,
                               qemu_plugin_vcpu_simple_cb_t cb)
{
    if (cb == NULL) {
        return;
    }
    if (qpd_q == NULL) {
        invalid_id(id);
    }
    /* No lock held while @cb runs (QEMU held its recursive mutex). */
    check_plugin_call(qpd_vcpu_for_each(qpd_q, id, cb), id, "vcpu_for_each");
}

int plugin_num_vcpus(void)
{
    return qpd_q ? (int)qpd_num_vcpus(qpd_q) : 0;
}

/* ------------------------------------------------------------------ */
/* Event dispatch                                                       */

/*
 * A dispatch on @cpu's own thread, outside translated code: one qpd section
 * around it, taken only when some plugin wants @ev, so a run without such
 * callbacks pays one load.  Callbacks may read and write registers.
 */
#define VCPU_DISPATCH(cpu, ev, call)                                   \
    do {                                                               \
        unsigned vcpu_ = (cpu)->cpu_index;                             \
        if (vcpu_wants(vcpu_, (ev)) && qpd_vcpu_enter(qpd_q, vcpu_)) { \
            qpd_qemu_set_cb_flags((cpu), QEMU_PLUGIN_CB_RW_REGS);      \
            call;                                                      \
            qpd_qemu_set_cb_flags((cpu), QEMU_PLUGIN_CB_NO_REGS);      \
            qpd_vcpu_leave(qpd_q, vcpu_);                              \
        }                                                              \
    } while (0)

void qemu_plugin_tb_trans_cb(CPUState *cpu, struct qemu_plugin_tb *tb)
{
    VCPU_DISPATCH(cpu, QPD_EV_VCPU_TB_TRANS,
                  qpd_tb_trans(qpd_q, vcpu_, tb));
}

void qemu_plugin_vcpu_syscall(CPUState *cpu, int64_t num, uint64_t a1,
                              uint64_t a2, uint64_t a3, uint64_t a4,
                              uint64_t a5, uint64_t a6, uint64_t a7,
                              uint64_t a8)
{
    const uint64_t args[8] = { a1, a2, a3, a4, a5, a6, a7, a8 };

    VCPU_DISPATCH(cpu, QPD_EV_VCPU_SYSCALL,
                  qpd_syscall(qpd_q, vcpu_, num, args));
}

void qemu_plugin_vcpu_syscall_ret(CPUState *cpu, int64_t num, int64_t ret)
{
    VCPU_DISPATCH(cpu, QPD_EV_VCPU_SYSCALL_RET,
                  qpd_syscall_ret(qpd_q, vcpu_, num, ret));
}

/* Handles of run-time memory lists, freed by the next flush. */
static ck_stack_t mem_handles = CK_STACK_INITIALIZER;
static void free_mem_handles(void);

void qemu_plugin_flush_cb(void)
{
    /* Exclusive (do_tb_flush): no vCPU is inside translated code. */
    free_mem_handles();
    if (qpd_q != NULL) {
        /* Retires every run-time list, then runs the FLUSH callbacks. */
        qpd_flush(qpd_q);
    }
}

void qemu_plugin_atexit_cb(void)
{
    if (qpd_q != NULL) {
        wait_for_removals();
        qpd_atexit(qpd_q);
    }
}

/*
 * linux-user exit.  Other threads may still run, so, as QEMU does: with
 * every vCPU stopped remove every callback but ATEXIT, stop the helpers'
 * memory callbacks and flush translated code; then let the vCPUs go and run
 * ATEXIT, which qpd_user_exit() finds alone and runs once.
 */
void qemu_plugin_user_exit(void)
{
    CPUState *cpu;

    if (qpd_q == NULL) {
        return;
    }
    start_exclusive();
    qpd_unregister_all_but(qpd_q, QPD_EV_ATEXIT);
    CPU_FOREACH(cpu) {
        qemu_plugin_disable_mem_helpers(cpu);
    }
    qpd_qemu_tb_flush_exclusive();
    end_exclusive();

    wait_for_removals();
    qpd_user_exit(qpd_q);
}

/*
 * fork() in linux-user: the loader's lock, the vCPU table's and qpd's are
 * held across it, so the child finds them consistent.
 */
void qemu_plugin_user_prefork_lock(void)
{
    qemu_rec_mutex_lock(&plugin.lock);
    qemu_mutex_lock(&cpus_lock);
    if (qpd_q != NULL) {
        qpd_prefork(qpd_q);
    }
}

/*
 * The child has one thread, the forking one.  The parent's other vCPUs
 * vanished with their threads: take them offline without running their
 * exit callbacks, as their threads never will.  Otherwise the child's next
 * thread, which reuses one of their indices, would find it still online
 * (QEMU 10 aborts there, in qemu_plugin_vcpu_init__async).
 */
static void forget_vanished_vcpus(void)
{
    int self = current_cpu ? current_cpu->cpu_index : -1;
    unsigned i, n = qpd_num_vcpus(qpd_q);

    for (i = 0; i < n && i < QPD_QEMU_MAX_VCPUS; i++) {
        if ((int)i != self) {
            qpd_vcpu_forget(qpd_q, i); /* -ENOENT: was not online */
            cpus[i] = NULL;
        }
    }
}

void qemu_plugin_user_postfork(bool is_child)
{
    if (qpd_q != NULL) {
        int err = qpd_postfork(qpd_q, is_child);

        if (err) {
            /* Only reclamation stops (no reclaimer thread): keep going. */
            warn_report("plugin: after fork: %s", qpd_strerror(err));
        }
        if (is_child) {
            forget_vanished_vcpus();
        }
    }
    if (is_child) {
        qemu_mutex_init(&cpus_lock);
        qemu_rec_mutex_init(&plugin.lock);
    } else {
        qemu_mutex_unlock(&cpus_lock);
        qemu_rec_mutex_unlock(&plugin.lock);
    }
}

static void __attribute__((__constructor__)) plugin_init(void)
{
    qemu_rec_mutex_init(&plugin.lock);
    qemu_mutex_init(&cpus_lock);
    plugin.id_ht = g_hash_table_new(g_int64_hash, g_int64_equal);
    QTAILQ_INIT(&plugin.ctxs);
    atexit(qemu_plugin_atexit_cb);
}

/* ------------------------------------------------------------------ */
/* Translation-time callback records (QEMU's format, read by plugin-gen) */

/*
 * TCG call descriptors of the plugin's direct calls, one per register
 * access level; TCG fills the rest on first use.
 */
static TCGHelperInfo udata_call_info[3];
static TCGHelperInfo mem_call_info[3];

static void init_call_info(TCGHelperInfo info[3], unsigned typemask)
{
    info[QEMU_PLUGIN_CB_NO_REGS].flags = TCG_CALL_NO_RWG;
    info[QEMU_PLUGIN_CB_R_REGS].flags = TCG_CALL_NO_WG;
    info[QEMU_PLUGIN_CB_RW_REGS].flags = 0;
    for (int i = 0; i < 3; i++) {
        info[i].typemask = typemask;
    }
}

/* qemu_plugin_meminfo_t is 32 bits, signed or not. */
QEMU_BUILD_BUG_ON(
    !__builtin_types_compatible_p(qemu_plugin_meminfo_t, uint32_t) &&
    !__builtin_types_compatible_p(qemu_plugin_meminfo_t, int32_t));

static void __attribute__((__constructor__)) call_info_init(void)
{
    /* void (*)(uint32_t vcpu, void *udata) */
    init_call_info(udata_call_info, dh_typemask(void, 0) |
                   dh_typemask(i32, 1) | dh_typemask(ptr, 2));
    /* void (*)(uint32_t vcpu, meminfo, uint64_t vaddr, void *udata) */
    init_call_info(mem_call_info, dh_typemask(void, 0) |
                   dh_typemask(i32, 1) |
                   (__builtin_types_compatible_p(qemu_plugin_meminfo_t,
                                                 uint32_t)
                    ? dh_typemask(i32, 2) : dh_typemask(s32, 2)) |
                   dh_typemask(i64, 3) | dh_typemask(ptr, 4));
}

static TCGHelperInfo *call_info(TCGHelperInfo info[3],
                                enum qemu_plugin_cb_flags flags)
{
    g_assert((unsigned)flags < 3);
    return &info[flags];
}

/* Appends a zeroed record to *@arr, creating the array on first use. */
static struct qemu_plugin_dyn_cb *dyn_cb_new(GArray **arr)
{
    if (*arr == NULL) {
        *arr = g_array_sized_new(false, true,
                                 sizeof(struct qemu_plugin_dyn_cb), 1);
    }
    g_array_set_size(*arr, (*arr)->len + 1);
    return &g_array_index(*arr, struct qemu_plugin_dyn_cb, (*arr)->len - 1);
}

void plugin_register_inline_op_on_entry(GArray **arr,
                                        enum qemu_plugin_mem_rw rw,
                                        enum qemu_plugin_op op,
                                        qemu_plugin_u64 entry,
                                        uint64_t imm)
{
    struct qemu_plugin_dyn_cb *cb = dyn_cb_new(arr);

    switch (op) {
    case QEMU_PLUGIN_INLINE_ADD_U64:
        cb->type = PLUGIN_CB_INLINE_ADD_U64;
        break;
    case QEMU_PLUGIN_INLINE_STORE_U64:
        cb->type = PLUGIN_CB_INLINE_STORE_U64;
        break;
    default:
        g_assert_not_reached();
    }
    cb->inline_insn.rw = rw;
    cb->inline_insn.entry = entry;
    cb->inline_insn.imm = imm;
}

void plugin_register_dyn_cb__udata(GArray **arr,
                                   qemu_plugin_vcpu_udata_cb_t cb,
                                   enum qemu_plugin_cb_flags flags,
                                   void *udata)
{
    struct qemu_plugin_dyn_cb *d = dyn_cb_new(arr);

    d->type = PLUGIN_CB_REGULAR;
    d->regular.f.vcpu_udata = cb;
    d->regular.userp = udata;
    d->regular.info = call_info(udata_call_info, flags);
}

void plugin_register_dyn_cond_cb__udata(GArray **arr,
                                        qemu_plugin_vcpu_udata_cb_t cb,
                                        enum qemu_plugin_cb_flags flags,
                                        enum qemu_plugin_cond cond,
                                        qemu_plugin_u64 entry,
                                        uint64_t imm,
                                        void *udata)
{
    struct qemu_plugin_dyn_cb *d = dyn_cb_new(arr);

    d->type = PLUGIN_CB_COND;
    d->cond.f.vcpu_udata = cb;
    d->cond.userp = udata;
    d->cond.cond = cond;
    d->cond.entry = entry;
    d->cond.imm = imm;
    d->cond.info = call_info(udata_call_info, flags);
}

void plugin_register_vcpu_mem_cb(GArray **arr,
                                 void *cb,
                                 enum qemu_plugin_cb_flags flags,
                                 enum qemu_plugin_mem_rw rw,
                                 void *udata)
{
    struct qemu_plugin_dyn_cb *d = dyn_cb_new(arr);

    d->type = PLUGIN_CB_MEM_REGULAR;
    d->regular.f.vcpu_mem = cb;
    d->regular.userp = udata;
    d->regular.rw = rw;
    d->regular.info = call_info(mem_call_info, flags);
}

/* ------------------------------------------------------------------ */
/* Scoreboards                                                          */

static struct qpd_scoreboard *sb_of(const struct qemu_plugin_scoreboard *s)
{
    /* The view's data is vCPU 0's slot, qpd's handle's `base`. */
    return (struct qpd_scoreboard *)(void *)(s->data->data - QPD_SB_REGION);
}

static qpd_u64 u64_of(qemu_plugin_u64 entry)
{
    return (qpd_u64){ .score = sb_of(entry.score), .offset = entry.offset };
}

struct qemu_plugin_scoreboard *plugin_scoreboard_new(size_t element_size)
{
    struct qemu_plugin_scoreboard *score;
    struct qpd_scoreboard *sb = NULL;

    if (qpd_q != NULL) {
        sb = qpd_scoreboard_new(qpd_q, element_size);
    }
    if (sb == NULL) {
        error_report("plugin: cannot create a scoreboard of %zu bytes: %s",
                     element_size, qpd_q ? strerror(errno) : "no plugin");
        abort();
    }
    g_assert(sb->base == (char *)sb + QPD_SB_REGION &&
             sb->stride == QPD_SB_REGION);
    /*
     * A GArray view of the scoreboard (never resized): slot v is
     * data + v * element size, for every v, for the scoreboard's life.
     * No vCPU is stopped and nothing is flushed, now or when vCPUs grow.
     */
    score = g_new0(struct qemu_plugin_scoreboard, 1);
    score->data = g_array_sized_new(false, false, QPD_SB_REGION, 0);
    score->data->data = sb->base;
    return score;
}

void plugin_scoreboard_free(struct qemu_plugin_scoreboard *score)
{
    int err = qpd_q ? qpd_scoreboard_free(qpd_q, sb_of(score)) : -ENOENT;

    if (err) {
        core_failed("scoreboard free", err);
    }
    /* The view owns no storage: detach it before freeing. */
    score->data->data = NULL;
    g_array_free(score->data, true);
    g_free(score);
}

void exec_inline_op(enum plugin_dyn_cb_type type,
                    struct qemu_plugin_inline_cb *cb,
                    int cpu_index)
{
    switch (type) {
    case PLUGIN_CB_INLINE_ADD_U64:
        qpd_inline_add_u64(u64_of(cb->entry), cpu_index, cb->imm);
        break;
    case PLUGIN_CB_INLINE_STORE_U64:
        qpd_u64_set(u64_of(cb->entry), cpu_index, cb->imm);
        break;
    default:
        g_assert_not_reached();
    }
}

/* ------------------------------------------------------------------ */
/* Run-time memory callback lists                                       */

/*
 * A memory callback as registered, with the register access its call
 * declared: QEMU >= 10.2 lets it read or write registers accordingly.
 */
struct mem_cb_rec {
    qemu_plugin_vcpu_mem_cb_t fn;
    void *userp;
    enum qemu_plugin_cb_flags flags;
};

/* What the GArray handed to qemu_plugin_add_dyn_cb_arr() now holds. */
struct mem_handle {
    struct qpd_dyn *list;
    ck_stack_entry_t link;    /* on mem_handles until the next flush */
    GArray *arr;
    struct mem_cb_rec rec[];  /* one per regular callback of the list */
};

QEMU_BUILD_BUG_ON(sizeof(struct mem_handle *) >
                  sizeof(struct qemu_plugin_dyn_cb));

CK_STACK_CONTAINER(struct mem_handle, link, mem_handle_of_link)

QEMU_DISABLE_CFI
static void tramp_mem(unsigned vcpu, uint32_t meminfo, uint64_t vaddr,
                      void *udata)
{
    struct mem_cb_rec *r = udata;

    /* Helpers run on the vCPU's thread: current_cpu is that vCPU. */
    qpd_qemu_set_cb_flags(current_cpu, r->flags);
    r->fn(vcpu, meminfo, vaddr, r->userp);
    qpd_qemu_set_cb_flags(current_cpu, QEMU_PLUGIN_CB_NO_REGS);
}

static enum qemu_plugin_cb_flags cb_flags_of(const TCGHelperInfo *info)
{
    if (info->flags & TCG_CALL_NO_RWG) {
        return QEMU_PLUGIN_CB_NO_REGS;
    }
    return (info->flags & TCG_CALL_NO_WG) ? QEMU_PLUGIN_CB_R_REGS
                                          : QEMU_PLUGIN_CB_RW_REGS;
}

/*
 * plugin-gen.c hands over a copy of an instruction's memory callbacks and
 * makes translated code store @arr's address in CPUState.plugin_mem_cbs.
 * @arr's records become a qpd list; @arr keeps one element, the handle.
 */
void qemu_plugin_add_dyn_cb_arr(GArray *arr)
{
    struct mem_handle *h;
    guint i, nrec = 0;

    h = g_malloc0(sizeof(*h) + arr->len * sizeof(h->rec[0]));
    h->arr = arr;
    h->list = qpd_dyn_new(qpd_q);
    if (h->list == NULL) {
        core_failed("memory callback list", -errno);
    }
    for (i = 0; i < arr->len; i++) {
        struct qemu_plugin_dyn_cb *cb =
            &g_array_index(arr, struct qemu_plugin_dyn_cb, i);
        int err;

        switch (cb->type) {
        case PLUGIN_CB_MEM_REGULAR:
            h->rec[nrec] = (struct mem_cb_rec){
                .fn = cb->regular.f.vcpu_mem,
                .userp = cb->regular.userp,
                .flags = cb_flags_of(cb->regular.info),
            };
            err = qpd_dyn_add_mem_cb(h->list, tramp_mem,
                                     (enum qpd_mem_rw)cb->regular.rw,
                                     &h->rec[nrec++]);
            break;
        case PLUGIN_CB_INLINE_ADD_U64:
        case PLUGIN_CB_INLINE_STORE_U64:
            err = qpd_dyn_add_mem_inline(
                h->list, (enum qpd_mem_rw)cb->inline_insn.rw,
                cb->type == PLUGIN_CB_INLINE_ADD_U64 ? QPD_OP_ADD_U64
                                                     : QPD_OP_STORE_U64,
                u64_of(cb->inline_insn.entry), cb->inline_insn.imm);
            break;
        default:
            g_assert_not_reached();
        }
        if (err) {
            core_failed("memory callback list", err);
        }
    }
    g_array_set_size(arr, 1);
    memcpy(arr->data, &h, sizeof(h));
    /* Translation runs on many vCPUs at once: a lock-free push. */
    ck_stack_push_upmc(&mem_handles, &h->link);
}

static void free_mem_handles(void)
{
    ck_stack_entry_t *e = ck_stack_batch_pop_upmc(&mem_handles);

    while (e != NULL) {
        struct mem_handle *h = mem_handle_of_link(e);

        e = e->next;
        g_array_free(h->arr, true);
        g_free(h);
    }
}

void qemu_plugin_vcpu_mem_cb(CPUState *cpu, uint64_t vaddr,
                             uint64_t value_low,
                             uint64_t value_high,
                             MemOpIdx oi, enum qemu_plugin_mem_rw rw)
{
    GArray *arr = cpu->neg.plugin_mem_cbs;
    const struct mem_handle *h;

    if (arr == NULL) {
        return;
    }
    cpu->neg.plugin_mem_value_low = value_low;
    cpu->neg.plugin_mem_value_high = value_high;
    memcpy(&h, arr->data, sizeof(h));
    /* Every entry whose direction matches runs, in registration order. */
    qpd_dyn_exec_mem(h->list, cpu->cpu_index, vaddr,
                     make_plugin_meminfo(oi, rw), (enum qpd_mem_rw)rw);
}

/* ------------------------------------------------------------------ */
/* Plugin API 5 (QEMU 10.2): discontinuities, register-access flags    */

#if QPD_QEMU_PLUGIN_API >= 5
QEMU_BUILD_BUG_ON(QEMU_PLUGIN_DISCON_INTERRUPT != (int)QPD_DISCON_INTERRUPT);
QEMU_BUILD_BUG_ON(QEMU_PLUGIN_DISCON_EXCEPTION != (int)QPD_DISCON_EXCEPTION);
QEMU_BUILD_BUG_ON(QEMU_PLUGIN_DISCON_HOSTCALL != (int)QPD_DISCON_HOSTCALL);

static void vcpu_discon(CPUState *cpu, enum qpd_discon_type type,
                        uint64_t from)
{
    /* The target's pc is read only when some plugin wants the event. */
    VCPU_DISPATCH(cpu, qpd_discon_event(type),
                  qpd_discon(qpd_q, vcpu_, type, from,
                             cpu->cc->get_pc(cpu)));
}

void qemu_plugin_vcpu_interrupt_cb(CPUState *cpu, uint64_t from)
{
    vcpu_discon(cpu, QPD_DISCON_INTERRUPT, from);
}

void qemu_plugin_vcpu_exception_cb(CPUState *cpu, uint64_t from)
{
    vcpu_discon(cpu, QPD_DISCON_EXCEPTION, from);
}

void qemu_plugin_vcpu_hostcall_cb(CPUState *cpu, uint64_t from)
{
    vcpu_discon(cpu, QPD_DISCON_HOSTCALL, from);
}

void qemu_plugin_register_vcpu_discon_cb(qemu_plugin_id_t id,
                                         enum qemu_plugin_discon_type type,
                                         qemu_plugin_vcpu_discon_cb_t cb)
{
    if (type & QEMU_PLUGIN_DISCON_INTERRUPT) {
        plugin_register_cb(id, QEMU_PLUGIN_EV_VCPU_INTERRUPT, cb);
    }
    if (type & QEMU_PLUGIN_DISCON_EXCEPTION) {
        plugin_register_cb(id, QEMU_PLUGIN_EV_VCPU_EXCEPTION, cb);
    }
    if (type & QEMU_PLUGIN_DISCON_HOSTCALL) {
        plugin_register_cb(id, QEMU_PLUGIN_EV_VCPU_HOSTCALL, cb);
    }
}

enum qemu_plugin_cb_flags tcg_call_to_qemu_plugin_cb_flags(int flags)
{
    TCGHelperInfo info = { .flags = flags };

    return cb_flags_of(&info);
}
#endif
