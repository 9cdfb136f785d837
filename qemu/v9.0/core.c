/*
 * plugins/core.c for QEMU 9.0.2, backed by libqpd.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * What this file is.  QEMU's TCG plugin core keeps every callback list,
 * the vCPU set and the scoreboards behind one recursive mutex and walks
 * RCU lists on each dispatch.  This replacement keeps QEMU's interface
 * (plugins/plugin.h, include/qemu/plugin.h) and hands all of that state to
 * one qpd instance per process, created with the first plugin:
 *
 * - A QEMU plugin id *is* a qpd plugin id: the loader asks plugin_new_id()
 *   for it, so nothing has to translate ids on a dispatch path.  The loader
 *   still keeps its id -> ctx table (GModule handle, arguments) under
 *   plugin.lock; no dispatch path takes that lock.
 *
 * - qpd calls every callback as fn(id, ..., udata).  QEMU's callback types
 *   for the vCPU, translation, syscall and flush events carry no udata, so
 *   those are registered as a trampoline of this file with the plugin's own
 *   function pointer as udata.  qpd publishes (fn, udata) as one pair, so a
 *   trampoline always calls the function that was registered with it; and
 *   since udata is the plugin's pointer itself, nothing is allocated per
 *   registration and nothing needs a grace period to be freed.  ATEXIT
 *   callbacks do take udata and are registered unchanged.
 *
 * - vCPU slices.  cpu_exec() calls qemu_plugin_vcpu_exec_enter/leave at the
 *   points where it takes and drops rcu_read_lock, and cpu_exec_step_atomic
 *   does the same around its exclusive step; translation (TB_TRANS) and the
 *   memory callbacks of helpers run inside those slices.  linux-user reports
 *   system calls outside cpu_exec(), so the syscall hooks open a short slice
 *   of their own when some plugin wants the event.
 *
 * - Scoreboards are qpd scoreboards: the QEMU handle is the qpd handle.  A
 *   vCPU's slot never moves, so a new vCPU index needs neither
 *   start_exclusive() nor tb_flush(): translated code keeps addressing the
 *   slot of vCPU n as base + n * stride with both values fixed for the
 *   scoreboard's life (qemu_plugin_u64_base()).
 *
 * - Dynamic callbacks.  The per-TB and per-instruction GArrays that plugins
 *   fill during translation stay QEMU's: plugin-gen.c turns them into direct
 *   calls and inline TCG ops before the TB exists, and nobody reads them at
 *   run time.  The only lists read at run time are the copies that back the
 *   memory callbacks of instructions emulated in helpers (CPUState's
 *   plugin_mem_cbs); those become qpd dynamic lists, executed with
 *   qpd_dyn_exec_mem() and retired by qpd_flush() when translated code is
 *   flushed, after a grace period instead of at once.
 *
 * Why it is safe.  Dispatch reads only qpd's epoch-published arrays from
 * inside a slice (or a section qpd opens itself for init, exit, idle,
 * resume, flush and atexit); registration never waits for a vCPU.  Plugin
 * removal stays QEMU's: the loader flushes translated code in an exclusive
 * section, then asks qpd to unpublish the plugin's callbacks, and closes
 * the module only from qpd's `done` hook, i.e. once no thread can still be
 * inside one of them.
 */
#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/lockable.h"
#include "qemu/plugin.h"
#include "hw/core/cpu.h"
#include "exec/exec-all.h"
#include "exec/tb-flush.h"
#include "plugin.h"

#include <qpd.h>

/* The loader's bookkeeping: contexts, the id -> ctx table and its lock. */
struct qemu_plugin_state plugin;

/* Created with the first plugin; written once, before any vCPU exists. */
static struct qpd *qpd_q;

/*
 * Trampolines: QEMU's callback types without udata, called with the
 * plugin's function pointer as qpd's udata.  CFI checks are off because
 * the target comes from a dlopen()ed module.
 */
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

/* QEMU's event, the qpd event and the trampoline (NULL: register as is). */
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
};

/* Memory directions are passed through unchanged. */
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
 * Applies QEMU's rules to a qpd result about plugin @id: an unknown id
 * aborts, a plugin on its way out is ignored, anything else is fatal.
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

static struct qpd_scoreboard *sb_of(struct qemu_plugin_scoreboard *score)
{
    return (struct qpd_scoreboard *)score;
}

static qpd_u64 u64_of(qemu_plugin_u64 entry)
{
    return (qpd_u64){ .score = sb_of(entry.score), .offset = entry.offset };
}

/* Does @vcpu have a callback for @ev?  One relaxed load of its mask. */
static bool vcpu_has_event(unsigned vcpu, enum qpd_event ev)
{
    return qpd_vcpu_has_event(qpd_q, vcpu, ev);
}

/* ------------------------------------------------------------------ */
/* Plugins and their callbacks                                          */

qemu_plugin_id_t plugin_new_id(void)
{
    qpd_plugin_id id;
    int err;

    if (qpd_q == NULL) {
        qpd_q = qpd_new(NULL);
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

void plugin_remove_cbs(qemu_plugin_id_t id, bool reset,
                       plugin_done_fn done, void *opaque)
{
    int err;

    if (qpd_q == NULL) {
        invalid_id(id);
    }
    err = reset ? qpd_plugin_reset(qpd_q, id, done, opaque)
                : qpd_plugin_uninstall(qpd_q, id, done, opaque);
    if (err == -ENOENT) {
        invalid_id(id);
    }
    if (err) {
        /* The loader never asks twice; anything else is fatal. */
        core_failed(reset ? "reset" : "uninstall", err);
    }
}

/* Sets (func != NULL) or clears the plugin's callback for @ev; see above. */
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

void plugin_unregister_cb__locked(struct qemu_plugin_ctx *ctx,
                                  enum qemu_plugin_event ev)
{
    check_plugin_call(set_cb(ctx->id, ev, NULL, NULL), ctx->id,
                      "unregister");
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
    /* Unused by this core (qpd keeps the event masks); kept for the ABI. */
    return g_new0(CPUPluginState, 1);
}

void qemu_plugin_vcpu_init_hook(CPUState *cpu)
{
    int err;

    if (qpd_q == NULL) {
        return;
    }
    /* Also the point where QEMU grew scoreboards: qpd's slots exist. */
    err = qpd_vcpu_init(qpd_q, cpu->cpu_index);
    if (err) {
        error_report("plugin: vCPU %d: %s", cpu->cpu_index,
                     qpd_strerror(err));
        abort();
    }
}

void qemu_plugin_vcpu_exit_hook(CPUState *cpu)
{
    int err;

    if (qpd_q == NULL) {
        return;
    }
    err = qpd_vcpu_exit(qpd_q, cpu->cpu_index);
    if (err) {
        error_report("plugin: vCPU %d exit: %s", cpu->cpu_index,
                     qpd_strerror(err));
        abort();
    }
}

void qemu_plugin_vcpu_exec_enter(CPUState *cpu)
{
    if (qpd_q != NULL) {
        qpd_vcpu_enter(qpd_q, cpu->cpu_index);
    }
}

void qemu_plugin_vcpu_exec_leave(CPUState *cpu)
{
    if (qpd_q != NULL) {
        qpd_vcpu_leave(qpd_q, cpu->cpu_index);
    }
}

void qemu_plugin_vcpu_idle_cb(CPUState *cpu)
{
    /* qpd ignores a vCPU that is not initialised, as QEMU does. */
    if (qpd_q != NULL) {
        qpd_vcpu_idle(qpd_q, cpu->cpu_index);
    }
}

void qemu_plugin_vcpu_resume_cb(CPUState *cpu)
{
    if (qpd_q != NULL) {
        qpd_vcpu_resume(qpd_q, cpu->cpu_index);
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
    check_plugin_call(qpd_vcpu_for_each(qpd_q, id, cb), id, "vcpu_for_each");
}

int plugin_num_vcpus(void)
{
    return qpd_q ? (int)qpd_num_vcpus(qpd_q) : 0;
}

/* ------------------------------------------------------------------ */
/* Event dispatch                                                       */

bool qemu_plugin_tb_trans_enabled(CPUState *cpu)
{
    return vcpu_has_event(cpu->cpu_index, QPD_EV_VCPU_TB_TRANS);
}

QEMU_DISABLE_CFI
void qemu_plugin_tb_trans_cb(CPUState *cpu, struct qemu_plugin_tb *tb)
{
    /* Called from translation, inside the vCPU's slice. */
    if (qpd_q != NULL) {
        qpd_tb_trans(qpd_q, cpu->cpu_index, tb);
    }
}

QEMU_DISABLE_CFI
void qemu_plugin_vcpu_syscall(CPUState *cpu, int64_t num, uint64_t a1,
                              uint64_t a2, uint64_t a3, uint64_t a4,
                              uint64_t a5, uint64_t a6, uint64_t a7,
                              uint64_t a8)
{
    const uint64_t args[8] = { a1, a2, a3, a4, a5, a6, a7, a8 };
    unsigned vcpu = cpu->cpu_index;

    /* Outside cpu_exec(): a slice of its own, only when it is needed. */
    if (vcpu_has_event(vcpu, QPD_EV_VCPU_SYSCALL) &&
        qpd_vcpu_enter(qpd_q, vcpu)) {
        qpd_syscall(qpd_q, vcpu, num, args);
        qpd_vcpu_leave(qpd_q, vcpu);
    }
}

QEMU_DISABLE_CFI
void qemu_plugin_vcpu_syscall_ret(CPUState *cpu, int64_t num, int64_t ret)
{
    unsigned vcpu = cpu->cpu_index;

    if (vcpu_has_event(vcpu, QPD_EV_VCPU_SYSCALL_RET) &&
        qpd_vcpu_enter(qpd_q, vcpu)) {
        qpd_syscall_ret(qpd_q, vcpu, num, ret);
        qpd_vcpu_leave(qpd_q, vcpu);
    }
}

void qemu_plugin_flush_cb(void)
{
    /* Retires every run-time list, then runs the FLUSH callbacks. */
    if (qpd_q != NULL) {
        qpd_flush(qpd_q);
    }
}

void qemu_plugin_atexit_cb(void)
{
    if (qpd_q != NULL) {
        qpd_atexit(qpd_q);
    }
}

/*
 * linux-user exit.  Other threads may still run, so, as in QEMU: with
 * every vCPU stopped, remove every callback but ATEXIT, stop the helpers'
 * memory callbacks and flush translated code; then let the vCPUs go and
 * run the ATEXIT callbacks.  Running ATEXIT inside the exclusive section
 * would change QEMU's order, so the removal comes first, on its own, and
 * qpd_user_exit() afterwards only finds ATEXIT left.
 */
void qemu_plugin_user_exit(void)
{
    CPUState *cpu;

    if (qpd_q == NULL) {
        return;
    }
    /* start_exclusive() before plugin.lock; tb_flush() without it. */
    start_exclusive();
    WITH_QEMU_LOCK_GUARD(&plugin.lock) {
        qpd_unregister_all_but(qpd_q, QPD_EV_ATEXIT);
    }
    CPU_FOREACH(cpu) {
        qemu_plugin_disable_mem_helpers(cpu);
    }
    tb_flush(current_cpu);
    end_exclusive();

    qpd_user_exit(qpd_q);
}

/* fork() in linux-user: the loader's lock, then qpd's, are held across it. */
void qemu_plugin_user_prefork_lock(void)
{
    qemu_rec_mutex_lock(&plugin.lock);
    if (qpd_q != NULL) {
        qpd_prefork(qpd_q);
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
    }
    if (is_child) {
        qemu_rec_mutex_init(&plugin.lock);
    } else {
        qemu_rec_mutex_unlock(&plugin.lock);
    }
}

static void __attribute__((__constructor__)) plugin_init(void)
{
    qemu_rec_mutex_init(&plugin.lock);
    plugin.id_ht = g_hash_table_new(g_int64_hash, g_int64_equal);
    QTAILQ_INIT(&plugin.ctxs);
    atexit(qemu_plugin_atexit_cb);
}

/* ------------------------------------------------------------------ */
/* Dynamic callbacks                                                    */

/*
 * Translation-time records: appended to the TB's or instruction's GArray,
 * which plugin-gen.c turns into TCG ops before the TB runs.
 */
static void dyn_cb_push(GArray **arr, struct qemu_plugin_dyn_cb cb)
{
    if (*arr == NULL) {
        *arr = g_array_new(false, false, sizeof(cb));
    }
    g_array_append_val(*arr, cb);
}

void plugin_register_inline_op_on_entry(GArray **arr,
                                        enum qemu_plugin_mem_rw rw,
                                        enum qemu_plugin_op op,
                                        qemu_plugin_u64 entry,
                                        uint64_t imm)
{
    dyn_cb_push(arr, (struct qemu_plugin_dyn_cb) {
        .type = PLUGIN_CB_INLINE,
        .rw = rw,
        .inline_insn = { .entry = entry, .op = op, .imm = imm },
    });
}

void plugin_register_dyn_cb__udata(GArray **arr,
                                   qemu_plugin_vcpu_udata_cb_t cb,
                                   enum qemu_plugin_cb_flags flags,
                                   void *udata)
{
    /* flags select the TCG call flavour in api.c; nothing to keep here. */
    dyn_cb_push(arr, (struct qemu_plugin_dyn_cb) {
        .type = PLUGIN_CB_REGULAR,
        .f.vcpu_udata = cb,
        .userp = udata,
    });
}

void plugin_register_vcpu_mem_cb(GArray **arr,
                                 void *cb,
                                 enum qemu_plugin_cb_flags flags,
                                 enum qemu_plugin_mem_rw rw,
                                 void *udata)
{
    dyn_cb_push(arr, (struct qemu_plugin_dyn_cb) {
        .type = PLUGIN_CB_REGULAR,
        .rw = rw,
        .f.generic = cb,
        .userp = udata,
    });
}

/*
 * Run-time records: plugin-gen.c hands over the memory callbacks of an
 * instruction emulated in helpers; they become a qpd list whose address
 * the translated code stores in CPUState.plugin_mem_cbs.  Takes @arr.
 */
void *qemu_plugin_add_dyn_cb_arr(GArray *arr)
{
    struct qpd_dyn *list = qpd_dyn_new(qpd_q);
    guint i;

    if (list == NULL) {
        core_failed("memory callback list", -errno);
    }
    for (i = 0; i < arr->len; i++) {
        struct qemu_plugin_dyn_cb *cb =
            &g_array_index(arr, struct qemu_plugin_dyn_cb, i);
        int err;

        switch (cb->type) {
        case PLUGIN_CB_REGULAR:
            err = qpd_dyn_add_mem_cb(list, cb->f.vcpu_mem,
                                     (enum qpd_mem_rw)cb->rw, cb->userp);
            break;
        case PLUGIN_CB_INLINE:
            /* QEMU 9.0's only inline op. */
            g_assert(cb->inline_insn.op == QEMU_PLUGIN_INLINE_ADD_U64);
            err = qpd_dyn_add_mem_inline(list, (enum qpd_mem_rw)cb->rw,
                                         QPD_OP_ADD_U64,
                                         u64_of(cb->inline_insn.entry),
                                         cb->inline_insn.imm);
            break;
        default:
            g_assert_not_reached();
        }
        if (err) {
            core_failed("memory callback list", err);
        }
    }
    g_array_free(arr, true);
    return list;
}

void exec_inline_op(struct qemu_plugin_dyn_cb *cb, int cpu_index)
{
    g_assert(cb->inline_insn.op == QEMU_PLUGIN_INLINE_ADD_U64);
    qpd_inline_add_u64(u64_of(cb->inline_insn.entry), cpu_index,
                       cb->inline_insn.imm);
}

QEMU_DISABLE_CFI
void qemu_plugin_vcpu_mem_cb(CPUState *cpu, uint64_t vaddr,
                             MemOpIdx oi, enum qemu_plugin_mem_rw rw)
{
    const struct qpd_dyn *list = cpu->plugin_mem_cbs;

    /* Every entry whose direction matches runs (QEMU 9.0 stopped early). */
    if (list != NULL) {
        qpd_dyn_exec_mem(list, cpu->cpu_index, vaddr,
                         make_plugin_meminfo(oi, rw), (enum qpd_mem_rw)rw);
    }
}

/* ------------------------------------------------------------------ */
/* Scoreboards                                                          */

struct qemu_plugin_scoreboard *plugin_scoreboard_new(size_t element_size)
{
    struct qpd_scoreboard *sb = NULL;

    if (qpd_q != NULL) {
        sb = qpd_scoreboard_new(qpd_q, element_size);
    }
    if (sb == NULL) {
        error_report("plugin: cannot create a scoreboard of %zu bytes: %s",
                     element_size, qpd_q ? strerror(errno) : "no plugin");
        abort();
    }
    /* No vCPU is stopped and nothing is flushed, now or when vCPUs grow. */
    return (struct qemu_plugin_scoreboard *)sb;
}

void plugin_scoreboard_free(struct qemu_plugin_scoreboard *score)
{
    int err = qpd_q ? qpd_scoreboard_free(qpd_q, sb_of(score)) : -ENOENT;

    if (err) {
        core_failed("scoreboard free", err);
    }
}

void *plugin_scoreboard_find(struct qemu_plugin_scoreboard *score,
                             unsigned int vcpu_index)
{
    void *slot = qpd_scoreboard_find(sb_of(score), vcpu_index);

    g_assert(slot != NULL);
    return slot;
}

void *qemu_plugin_u64_base(qemu_plugin_u64 entry, size_t *stride)
{
    *stride = QPD_SB_REGION;
    return qpd_u64_slot(u64_of(entry), 0);
}
