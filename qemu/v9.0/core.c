/*
 * plugins/core.c for QEMU 9.0.2, backed by libqpd.
 *
 * What this file shares with QEMU 10.x (ids, trampolines, registration,
 * reset and uninstall, the steps of building a run-time memory list,
 * system calls, exit, fork) is in qemu/adapter/common.c.inc, installed
 * next to it as plugins/qpd-common.c.inc.  Below is what only 9.0.2 has.
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
#include "qemu/rcu.h"
#include "qemu/plugin.h"
#include "qemu/qemu-plugin.h"
#include "hw/core/cpu.h"
#include "exec/exec-all.h"
#include "exec/tb-flush.h"
#include "plugin.h"

#include <qpd.h>

#include "qpd-common.c.inc"

static void core_config(struct qpd_config *cfg)
{
}

static struct qpd_scoreboard *sb_of(struct qemu_plugin_scoreboard *score)
{
    return (struct qpd_scoreboard *)score;
}

static qpd_u64 u64_of(qemu_plugin_u64 entry)
{
    return (qpd_u64){ .score = sb_of(entry.score), .offset = entry.offset };
}

/* ------------------------------------------------------------------ */
/* vCPUs                                                                */

void qemu_plugin_vcpu_init_hook(CPUState *cpu)
{
    int err;

    if (qpd_q == NULL) {
        return;
    }
    /* Also the point where QEMU grew scoreboards: qpd's grow in place. */
    scoreboards_reserve(cpu->cpu_index + 1);
    raise_num_vcpus(cpu->cpu_index);
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

/* ------------------------------------------------------------------ */
/* Event dispatch                                                       */

bool qemu_plugin_tb_trans_enabled(CPUState *cpu)
{
    return vcpu_wants(cpu->cpu_index, QPD_EV_VCPU_TB_TRANS);
}

QEMU_DISABLE_CFI
void qemu_plugin_tb_trans_cb(CPUState *cpu, struct qemu_plugin_tb *tb)
{
    /* Called from translation, inside the vCPU's slice. */
    VCPU_DISPATCH(cpu, QPD_EV_VCPU_TB_TRANS, qemu_plugin_vcpu_tb_trans_cb_t,
                  tb);
}

void qemu_plugin_flush_cb(void)
{
    /* Retires every run-time list, then runs the FLUSH callbacks. */
    if (qpd_q != NULL) {
        qpd_flush(qpd_q);
    }
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
    struct qpd_dyn *list = mem_list_new(arr->len);
    guint i;

    for (i = 0; i < arr->len; i++) {
        struct qemu_plugin_dyn_cb *cb =
            &g_array_index(arr, struct qemu_plugin_dyn_cb, i);

        switch (cb->type) {
        case PLUGIN_CB_REGULAR:
            mem_list_add_cb(list, cb->rw, cb->f.vcpu_mem, cb->userp);
            break;
        case PLUGIN_CB_INLINE:
            /* QEMU 9.0's only inline op. */
            g_assert(cb->inline_insn.op == QEMU_PLUGIN_INLINE_ADD_U64);
            mem_list_add_inline(list, cb->rw, QPD_OP_ADD_U64,
                                u64_of(cb->inline_insn.entry),
                                cb->inline_insn.imm);
            break;
        default:
            g_assert_not_reached();
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
    struct qpd_scoreboard *sb = scoreboard_new_or_die(element_size);

    return (struct qemu_plugin_scoreboard *)sb;
}

void plugin_scoreboard_free(struct qemu_plugin_scoreboard *score)
{
    scoreboard_free_or_die(sb_of(score));
}

void *plugin_scoreboard_find(struct qemu_plugin_scoreboard *score,
                             unsigned int vcpu_index)
{
    void *slot = qpd_scoreboard_find(sb_of(score), vcpu_index);

    g_assert(slot != NULL);
    return slot;
}

/* The handle is qpd's: translated code reads its slots' address anew. */
static void scoreboard_views_follow(void)
{
}

void *qemu_plugin_u64_base(qemu_plugin_u64 entry, size_t *stride)
{
    *stride = sb_of(entry.score)->stride;
    return qpd_u64_slot(u64_of(entry), 0);
}
