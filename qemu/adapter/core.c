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
 * for QEMU 10.0 and 10.2: what differs between them is in the section
 * marked "plugin API 5" at the end and at the top of common.c.inc, which
 * holds what every supported version shares (installed as
 * plugins/qpd-common.c.inc).
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
 * - Scoreboards are qpd scoreboards.  QEMU's translator addresses slot v
 *   as data + v * element_size of the scoreboard's GArray; here that GArray
 *   is a view whose data is vCPU 0's slot and whose element size is qpd's
 *   stride (a region of pages per vCPU: no false sharing), so the
 *   translator and api.c stay unchanged.  A new vCPU index grows qpd's
 *   slots in place, with neither start_exclusive() nor tb_flush().  Only if
 *   the address space after some slots was taken by then must they move:
 *   then, as QEMU does for every growth, every vCPU is stopped, the views
 *   follow the slots and translated code is flushed (qpd counts these).
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
 * the lists themselves outlive a grace period anyway.  Plugin removal is
 * QEMU's: in the exclusive section that flushed translated code, on a vCPU
 * thread, the plugin's callbacks are unpublished and its reset or uninstall
 * callback runs, so nothing executed after a reset escapes what the
 * callback registered.  A thread outside that section (a system call hook)
 * may still run an old callback: the arrays it reads are retired through
 * qpd's epoch, and an uninstalled plugin's module stays loaded until no
 * thread can be inside it.
 */
#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/lockable.h"
#include "qemu/rcu.h"
#include "qemu/plugin.h"
#include "qemu/qemu-plugin.h"
#include "exec/tb-flush.h"
#include "tcg/tcg-op-common.h"
#include "plugin.h"

#if __has_include("../subprojects/qpd/include/qpd.h")
#include "../subprojects/qpd/include/qpd.h"
#else
#include <qpd.h>
#endif

#include "qpd-common.c.inc"

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
    CPUState *cpu;

    QEMU_LOCK_GUARD(&cpus_lock);
    cpu = cpu_of_locked(vcpu);
    if (cpu != NULL) {
        async_run_on_cpu(cpu, vcpu_mask_update__async, RUN_ON_CPU_NULL);
    }
}

static void core_config(struct qpd_config *cfg)
{
    cfg->on_mask_change = vcpu_mask_changed;
}

/* ------------------------------------------------------------------ */
/* vCPU init and exit, translation, flush                               */

/* Runs on the vCPU's thread, which becomes the owner of its qpd record. */
static void qemu_plugin_vcpu_init__async(CPUState *cpu, run_on_cpu_data unused)
{
    int idx = cpu->cpu_index;
    int err;

    g_assert(idx >= 0);
    WITH_QEMU_LOCK_GUARD(&cpus_lock) {
        cpu_set_locked(idx, cpu);
    }
    /* Where QEMU grows every scoreboard: qpd's grow in place. */
    scoreboards_reserve(idx + 1);
    raise_num_vcpus(idx);
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

    if (qpd_q == NULL || idx < 0) {
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
        cpu_set_locked(idx, NULL);
    }
}

QEMU_DISABLE_CFI
void qemu_plugin_tb_trans_cb(CPUState *cpu, struct qemu_plugin_tb *tb)
{
    VCPU_DISPATCH(cpu, QPD_EV_VCPU_TB_TRANS, qemu_plugin_vcpu_tb_trans_cb_t,
                  tb);
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

/*
 * Appends a record of @type that calls @fn with @udata as TCG call @info,
 * and returns its regular part.
 */
static struct qemu_plugin_regular_cb *
dyn_cb_regular(GArray **arr, enum plugin_dyn_cb_type type, void *fn,
               void *udata, TCGHelperInfo *info)
{
    struct qemu_plugin_dyn_cb *d = dyn_cb_new(arr);

    d->type = type;
    d->regular.f.generic = fn;
    d->regular.userp = udata;
    d->regular.info = info;
    return &d->regular;
}

void plugin_register_dyn_cb__udata(GArray **arr,
                                   qemu_plugin_vcpu_udata_cb_t cb,
                                   enum qemu_plugin_cb_flags flags,
                                   void *udata)
{
    dyn_cb_regular(arr, PLUGIN_CB_REGULAR, cb, udata,
                   call_info(udata_call_info, flags));
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
    dyn_cb_regular(arr, PLUGIN_CB_MEM_REGULAR, cb, udata,
                   call_info(mem_call_info, flags))->rw = rw;
}

/* ------------------------------------------------------------------ */
/* Scoreboards                                                          */

/* A plugin's scoreboard: the view QEMU reads and qpd's handle. */
struct sb_view {
    struct qemu_plugin_scoreboard score; /* first: what the plugin holds */
    struct qpd_scoreboard *sb;
};

static struct qpd_scoreboard *sb_of(const struct qemu_plugin_scoreboard *s)
{
    return container_of(s, struct sb_view, score)->sb;
}

static qpd_u64 u64_of(qemu_plugin_u64 entry)
{
    return (qpd_u64){ .score = sb_of(entry.score), .offset = entry.offset };
}

/*
 * Points @v's GArray at its slots: vCPU 0's slot as data and qpd's stride
 * as element size, so slot i is data + i * element size, as QEMU computes.
 */
static void view_follow(struct sb_view *v)
{
    GArray *old = v->score.data;

    v->score.data = g_array_sized_new(false, false, v->sb->stride, 0);
    v->score.data->data = v->sb->base;
    if (old != NULL) {
        /* A view owns no storage: detach it before freeing. */
        old->data = NULL;
        g_array_free(old, true);
    }
}

struct qemu_plugin_scoreboard *plugin_scoreboard_new(size_t element_size)
{
    struct sb_view *v = g_new0(struct sb_view, 1);

    /* No move may change the slots between qpd's answer and the view. */
    QEMU_LOCK_GUARD(&sb_lock);
    v->sb = scoreboard_new_or_die(element_size);
    view_follow(v);
    QLIST_INSERT_HEAD(&plugin.scoreboards, &v->score, entry);
    return &v->score;
}

void plugin_scoreboard_free(struct qemu_plugin_scoreboard *score)
{
    struct sb_view *v = container_of(score, struct sb_view, score);

    WITH_QEMU_LOCK_GUARD(&sb_lock) {
        QLIST_REMOVE(score, entry);
    }
    scoreboard_free_or_die(v->sb);
    score->data->data = NULL;
    g_array_free(score->data, true);
    g_free(v);
}

/* After slots moved (sb_lock held, every vCPU stopped): views follow. */
static void scoreboard_views_follow(void)
{
    struct qemu_plugin_scoreboard *s;

    QLIST_FOREACH(s, &plugin.scoreboards, entry) {
        view_follow(container_of(s, struct sb_view, score));
    }
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

/* Register access a TCG call of these flags was declared with. */
static enum qemu_plugin_cb_flags cb_flags_of(int tcg_call_flags)
{
    if (tcg_call_flags & TCG_CALL_NO_RWG) {
        return QEMU_PLUGIN_CB_NO_REGS;
    }
    return (tcg_call_flags & TCG_CALL_NO_WG) ? QEMU_PLUGIN_CB_R_REGS
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
    h->list = mem_list_new(arr->len);
    for (i = 0; i < arr->len; i++) {
        struct qemu_plugin_dyn_cb *cb =
            &g_array_index(arr, struct qemu_plugin_dyn_cb, i);

        switch (cb->type) {
        case PLUGIN_CB_MEM_REGULAR:
            h->rec[nrec] = (struct mem_cb_rec){
                .fn = cb->regular.f.vcpu_mem,
                .userp = cb->regular.userp,
                .flags = cb_flags_of(cb->regular.info->flags),
            };
            mem_list_add_cb(h->list, cb->regular.rw, tramp_mem,
                            &h->rec[nrec++]);
            break;
        case PLUGIN_CB_INLINE_ADD_U64:
        case PLUGIN_CB_INLINE_STORE_U64:
            mem_list_add_inline(h->list, cb->inline_insn.rw,
                                cb->type == PLUGIN_CB_INLINE_ADD_U64
                                ? QPD_OP_ADD_U64 : QPD_OP_STORE_U64,
                                u64_of(cb->inline_insn.entry),
                                cb->inline_insn.imm);
            break;
        default:
            g_assert_not_reached();
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

QEMU_DISABLE_CFI
static void vcpu_discon(CPUState *cpu, enum qpd_discon_type type,
                        uint64_t from)
{
    /*
     * The target's pc, read once and only when some plugin wants the event:
     * every callback sees where the discontinuity went, whatever an earlier
     * one wrote to the pc.
     */
    VCPU_DISPATCH_WITH(cpu, qpd_discon_event(type),
                       qemu_plugin_vcpu_discon_cb_t,
                       const uint64_t to_ = cpu->cc->get_pc(cpu),
                       cpu->cpu_index, (enum qemu_plugin_discon_type)type,
                       from, to_);
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
    return cb_flags_of(flags);
}
#endif
