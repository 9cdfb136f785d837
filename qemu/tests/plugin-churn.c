/*
 * plugin-churn - a plugin that changes the plugin core's state from vCPU
 * threads while the guest runs, and checks at the end that nothing was
 * lost, run twice or run late.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Build against the QEMU tree's include/qemu/qemu-plugin.h (10.0, 10.2):
 *   gcc -shared -fPIC -O2 -I<qemu>/include/qemu \
 *       $(pkg-config --cflags glib-2.0) -o libchurn.so plugin-churn.c
 * Run (several copies, each built or copied under its own file name, may
 * be loaded at once):
 *   qemu-x86_64 -plugin ./libchurn.so,tag=T[,toggle=N][,reset=N]
 *               [,uninstall=N][,sb=N][,tb=on] GUEST
 *
 * Every count below is of this plugin's own system-call callbacks (all
 * vCPUs together):
 *   toggle=N     every Nth call flips the registration of the syscall_ret,
 *                vcpu_idle, vcpu_resume, flush (and, from API 5, discon)
 *                callbacks: registered with a function, then with NULL
 *   reset=N      every Nth call asks for qemu_plugin_reset(); its done
 *                callback checks and frees the generation's scoreboards,
 *                makes new ones and registers everything again
 *   uninstall=N  the Nth call asks for qemu_plugin_uninstall()
 *   sb=N         every Nth call creates a scoreboard, writes and reads
 *                back its own vCPU's slot and frees it
 *   tb=on        at translation, each block gets an inline ADD_U64 and an
 *                exec callback (two scoreboards), an inline tick and a
 *                conditional callback (tick >= 16), and the memory accesses
 *                of one block in four an inline ADD_U64 and a memory
 *                callback
 *
 * What is checked (each failure counted, the first one described):
 *   - a generation's inline block count equals its callback count, and
 *     its inline memory count its memory-callback count (at each reset's
 *     done and at exit: every vCPU is stopped then);
 *   - an exec callback belongs to the current generation: none runs after
 *     the reset that dropped it was done;
 *   - a vCPU's scoreboard slot holds what that vCPU wrote last (an owner
 *     word), and a fresh scoreboard's slot reads back what was written;
 *   - a conditional callback runs only when its condition holds;
 *   - no callback runs after this plugin's uninstall callback has run.
 * At exit, or when the module is closed after an uninstall, it prints on
 * stderr one line:
 *   churn[T]: pid=P syscalls=.. toggles=.. rets=.. resets=.. uninstalled=..
 *             blocks=.. inline=.. cond=.. mem=.. sb=.. inits=.. exits=..
 *             violations=V [first=WHAT]
 */
#include <glib.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define TICK_LIMIT 16

/* One vCPU's slot of the inline scoreboard. */
struct inl_slot {
    uint64_t blocks;    /* inline ADD per block */
    uint64_t ticks;     /* inline ADD per block, reset by the cond callback */
    uint64_t mem;       /* inline ADD per memory access */
};

/* One vCPU's slot of the callback scoreboard: written by callbacks only. */
struct cb_slot {
    uint64_t owner;     /* vcpu_index + 1 of the last writer */
    uint64_t blocks;
    uint64_t mem;
    uint64_t cond;
};

/* The scoreboards one generation (the time between two resets) uses. */
struct generation {
    struct qemu_plugin_scoreboard *inl, *cb;
    qemu_plugin_u64 inl_blocks, inl_ticks, inl_mem;
    qemu_plugin_u64 cb_blocks, cb_mem, cb_cond;
};

static const char *tag = "?";
static uint64_t toggle_every, reset_every, uninstall_at, sb_every;
static bool tb_on;

static struct generation *gen;          /* current; changed only in done */
static int toggled_on;                  /* syscall_ret & co registered */
static int reset_pending, uninstall_asked, gone, reported;
static uint64_t syscalls, toggles, rets, resets, uninstalled, blocks_total,
                inline_total, cond_total, mem_total, sb_churned, inits, exits,
                violations;
static char first[160];

static void report(void);

static void violation(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void violation(const char *fmt, ...)
{
    if (__atomic_fetch_add(&violations, 1, __ATOMIC_RELAXED) == 0) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(first, sizeof(first), fmt, ap);
        va_end(ap);
    }
}

/* Every callback starts here: none may run once the uninstall is done. */
static inline void entered(const char *what)
{
    if (__atomic_load_n(&gone, __ATOMIC_ACQUIRE)) {
        violation("%s callback after the uninstall callback", what);
    }
}

static struct generation *generation_new(void)
{
    struct generation *g = g_new0(struct generation, 1);

    g->inl = qemu_plugin_scoreboard_new(sizeof(struct inl_slot));
    g->cb = qemu_plugin_scoreboard_new(sizeof(struct cb_slot));
    g->inl_blocks = qemu_plugin_scoreboard_u64_in_struct(g->inl, struct inl_slot, blocks);
    g->inl_ticks = qemu_plugin_scoreboard_u64_in_struct(g->inl, struct inl_slot, ticks);
    g->inl_mem = qemu_plugin_scoreboard_u64_in_struct(g->inl, struct inl_slot, mem);
    g->cb_blocks = qemu_plugin_scoreboard_u64_in_struct(g->cb, struct cb_slot, blocks);
    g->cb_mem = qemu_plugin_scoreboard_u64_in_struct(g->cb, struct cb_slot, mem);
    g->cb_cond = qemu_plugin_scoreboard_u64_in_struct(g->cb, struct cb_slot, cond);
    return g;
}

/* Check a generation's sums; every vCPU is stopped (a reset's done, exit). */
static void generation_check(struct generation *g, const char *when)
{
    uint64_t ib = qemu_plugin_u64_sum(g->inl_blocks);
    uint64_t cb = qemu_plugin_u64_sum(g->cb_blocks);
    uint64_t im = qemu_plugin_u64_sum(g->inl_mem);
    uint64_t cm = qemu_plugin_u64_sum(g->cb_mem);

    if (ib != cb) {
        violation("%s: inline blocks %" PRIu64 " != exec callbacks %" PRIu64,
                  when, ib, cb);
    }
    if (im != cm) {
        violation("%s: inline memory %" PRIu64 " != memory callbacks %" PRIu64,
                  when, im, cm);
    }
    __atomic_fetch_add(&blocks_total, cb, __ATOMIC_RELAXED);
    __atomic_fetch_add(&inline_total, ib, __ATOMIC_RELAXED);
    __atomic_fetch_add(&mem_total, cm, __ATOMIC_RELAXED);
    __atomic_fetch_add(&cond_total, qemu_plugin_u64_sum(g->cb_cond), __ATOMIC_RELAXED);
}

static void generation_free(struct generation *g)
{
    qemu_plugin_scoreboard_free(g->inl);
    qemu_plugin_scoreboard_free(g->cb);
    g_free(g);
}

static struct cb_slot *own_slot(struct generation *g, unsigned int vcpu)
{
    struct cb_slot *s = qemu_plugin_scoreboard_find(g->cb, vcpu);
    uint64_t owner = __atomic_load_n(&s->owner, __ATOMIC_RELAXED);

    if (owner != 0 && owner != vcpu + 1) {
        violation("vCPU %u's slot last written by vCPU %" PRIu64, vcpu, owner - 1);
    }
    __atomic_store_n(&s->owner, vcpu + 1, __ATOMIC_RELAXED);
    return s;
}

static void tb_exec(unsigned int vcpu, void *udata)
{
    entered("exec");
    if (udata != __atomic_load_n(&gen, __ATOMIC_ACQUIRE)) {
        violation("exec callback of a generation dropped by a reset");
        return;
    }
    own_slot(udata, vcpu)->blocks++;
}

static void tb_cond(unsigned int vcpu, void *udata)
{
    struct generation *g = udata;

    entered("cond");
    if (g != __atomic_load_n(&gen, __ATOMIC_ACQUIRE)) {
        violation("cond callback of a generation dropped by a reset");
        return;
    }
    if (qemu_plugin_u64_get(g->inl_ticks, vcpu) < TICK_LIMIT) {
        violation("cond callback with tick %" PRIu64 " < %d",
                  qemu_plugin_u64_get(g->inl_ticks, vcpu), TICK_LIMIT);
    }
    qemu_plugin_u64_set(g->inl_ticks, vcpu, 0);
    own_slot(g, vcpu)->cond++;
}

static void mem_cb(unsigned int vcpu, qemu_plugin_meminfo_t info,
                   uint64_t vaddr, void *udata)
{
    entered("memory");
    if (udata != __atomic_load_n(&gen, __ATOMIC_ACQUIRE)) {
        violation("memory callback of a generation dropped by a reset");
        return;
    }
    own_slot(udata, vcpu)->mem++;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    struct generation *g = __atomic_load_n(&gen, __ATOMIC_ACQUIRE);
    size_t n = qemu_plugin_tb_n_insns(tb);

    entered("tb_trans");
    qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(
        tb, QEMU_PLUGIN_INLINE_ADD_U64, g->inl_blocks, 1);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, g);
    qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(
        tb, QEMU_PLUGIN_INLINE_ADD_U64, g->inl_ticks, 1);
    qemu_plugin_register_vcpu_tb_exec_cond_cb(tb, tb_cond, QEMU_PLUGIN_CB_NO_REGS,
                                              QEMU_PLUGIN_COND_GE, g->inl_ticks,
                                              TICK_LIMIT, g);
    if ((qemu_plugin_tb_vaddr(tb) >> 4) % 4 != 0) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);

        qemu_plugin_register_vcpu_mem_inline_per_vcpu(
            insn, QEMU_PLUGIN_MEM_RW, QEMU_PLUGIN_INLINE_ADD_U64, g->inl_mem, 1);
        qemu_plugin_register_vcpu_mem_cb(insn, mem_cb, QEMU_PLUGIN_CB_NO_REGS,
                                         QEMU_PLUGIN_MEM_RW, g);
    }
}

static void on_ret(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, int64_t ret)
{
    entered("syscall_ret");
    __atomic_fetch_add(&rets, 1, __ATOMIC_RELAXED);
}

static void on_idle(qemu_plugin_id_t id, unsigned int vcpu)
{
    entered("idle/resume");
}

static void on_flush(qemu_plugin_id_t id)
{
    entered("flush");
}

#if QEMU_PLUGIN_VERSION >= 5
static void on_discon(qemu_plugin_id_t id, unsigned int vcpu,
                      enum qemu_plugin_discon_type type, uint64_t from, uint64_t to)
{
    entered("discon");
}
#endif

/* Flip the optional callbacks: registered, or unregistered with NULL. */
static void toggle(qemu_plugin_id_t id)
{
    bool on = !__atomic_fetch_xor(&toggled_on, 1, __ATOMIC_ACQ_REL);

    qemu_plugin_register_vcpu_syscall_ret_cb(id, on ? on_ret : NULL);
    qemu_plugin_register_vcpu_idle_cb(id, on ? on_idle : NULL);
    qemu_plugin_register_vcpu_resume_cb(id, on ? on_idle : NULL);
    qemu_plugin_register_flush_cb(id, on ? on_flush : NULL);
#if QEMU_PLUGIN_VERSION >= 5
    qemu_plugin_register_vcpu_discon_cb(id, QEMU_PLUGIN_DISCON_ALL,
                                        on ? on_discon : NULL);
#endif
    __atomic_fetch_add(&toggles, 1, __ATOMIC_RELAXED);
}

static void sb_churn(unsigned int vcpu, uint64_t n)
{
    size_t size = 8 * (1 + n % 7);
    struct qemu_plugin_scoreboard *sb = qemu_plugin_scoreboard_new(size);
    uint64_t *slot = qemu_plugin_scoreboard_find(sb, vcpu);

    for (size_t i = 0; i < size / 8; i++) {
        if (slot[i] != 0) {
            violation("a new scoreboard's slot is not zero");
        }
        slot[i] = n + i;
    }
    slot = qemu_plugin_scoreboard_find(sb, vcpu);
    for (size_t i = 0; i < size / 8; i++) {
        if (slot[i] != n + i) {
            violation("a scoreboard slot lost what its vCPU wrote");
        }
    }
    qemu_plugin_scoreboard_free(sb);
    __atomic_fetch_add(&sb_churned, 1, __ATOMIC_RELAXED);
}

static void register_all(qemu_plugin_id_t id);

static void reset_done(qemu_plugin_id_t id)
{
    entered("reset done");
    if (tb_on) {
        struct generation *old = gen;

        generation_check(old, "reset");
        __atomic_store_n(&gen, generation_new(), __ATOMIC_RELEASE);
        generation_free(old);
    }
    __atomic_store_n(&toggled_on, 0, __ATOMIC_RELAXED);
    __atomic_fetch_add(&resets, 1, __ATOMIC_RELAXED);
    register_all(id);
    __atomic_store_n(&reset_pending, 0, __ATOMIC_RELEASE);
}

static void uninstall_done(qemu_plugin_id_t id)
{
    entered("uninstall");
    if (tb_on) {
        generation_check(gen, "uninstall");
    }
    __atomic_store_n(&uninstalled, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&gone, 1, __ATOMIC_RELEASE);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num,
                       uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                       uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    uint64_t n = __atomic_add_fetch(&syscalls, 1, __ATOMIC_RELAXED);

    entered("syscall");
    if (toggle_every && n % toggle_every == 0) {
        toggle(id);
    }
    if (sb_every && n % sb_every == 0) {
        sb_churn(vcpu, n);
    }
    if (reset_every && n % reset_every == 0 &&
        !__atomic_exchange_n(&reset_pending, 1, __ATOMIC_ACQ_REL)) {
        qemu_plugin_reset(id, reset_done);
    }
    if (uninstall_at && n == uninstall_at &&
        !__atomic_exchange_n(&uninstall_asked, 1, __ATOMIC_ACQ_REL)) {
        qemu_plugin_uninstall(id, uninstall_done);
    }
}

static void vcpu_init(qemu_plugin_id_t id, unsigned int vcpu)
{
    entered("vcpu_init");
    __atomic_fetch_add(&inits, 1, __ATOMIC_RELAXED);
}

static void vcpu_exit(qemu_plugin_id_t id, unsigned int vcpu)
{
    entered("vcpu_exit");
    __atomic_fetch_add(&exits, 1, __ATOMIC_RELAXED);
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    entered("atexit");
    if (tb_on) {
        generation_check(gen, "exit");
    }
    report();
}

static void report(void)
{
    if (__atomic_exchange_n(&reported, 1, __ATOMIC_ACQ_REL)) {
        return;
    }
    fprintf(stderr, "churn[%s]: pid=%d syscalls=%" PRIu64 " toggles=%" PRIu64
            " rets=%" PRIu64 " resets=%" PRIu64 " uninstalled=%" PRIu64
            " blocks=%" PRIu64 " inline=%" PRIu64 " cond=%" PRIu64 " mem=%" PRIu64
            " sb=%" PRIu64 " inits=%" PRIu64 " exits=%" PRIu64
            " violations=%" PRIu64 "%s%s\n", tag, (int)getpid(), syscalls, toggles,
            rets, resets, uninstalled, blocks_total, inline_total, cond_total,
            mem_total, sb_churned, inits, exits, violations,
            violations ? " first=" : "", violations ? first : "");
}

/* After an uninstall nothing calls at_exit: the module's closing reports. */
static void __attribute__((destructor)) closing(void)
{
    if (__atomic_load_n(&uninstalled, __ATOMIC_ACQUIRE)) {
        report();
    }
}

static void register_all(qemu_plugin_id_t id)
{
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_vcpu_init_cb(id, vcpu_init);
    qemu_plugin_register_vcpu_exit_cb(id, vcpu_exit);
    if (tb_on) {
        qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    }
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
}

static bool number(const char *arg, const char *key, uint64_t *out)
{
    size_t n = strlen(key);

    if (strncmp(arg, key, n) != 0 || arg[n] != '=') {
        return false;
    }
    *out = strtoull(arg + n + 1, NULL, 0);
    return true;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
                                           const qemu_info_t *info,
                                           int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "tag=", 4) == 0) {
            tag = argv[i] + 4;
        } else if (strcmp(argv[i], "tb=on") == 0) {
            tb_on = true;
        } else if (!number(argv[i], "toggle", &toggle_every) &&
                   !number(argv[i], "reset", &reset_every) &&
                   !number(argv[i], "uninstall", &uninstall_at) &&
                   !number(argv[i], "sb", &sb_every)) {
            fprintf(stderr, "plugin-churn: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    tag = g_strdup(tag);
    if (tb_on) {
        gen = generation_new();
    }
    register_all(id);
    return 0;
}
