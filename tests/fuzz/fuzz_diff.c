/*
 * fuzz_diff.c - differential fuzzing of libqpd against the QEMU 9.0 model.
 *
 * The input is decoded into a single-threaded program of API calls (plugins,
 * registrations, vCPUs and slices, dispatch of every event, flush, atexit,
 * user exit, scoreboards, dynamic lists).  Each call is made on a qpd
 * instance and then on a legacy instance (bench/legacy.c), and everything
 * either side lets a caller observe is compared: which callbacks ran, in
 * what order, with which arguments, what they got back from the calls they
 * made, return codes, num_vcpus, scoreboard bytes and statistics.  Any
 * difference that is not one of the modelled ones below prints the
 * program's state and aborts, so libFuzzer keeps the input.
 *
 * The fuzzer keeps a shadow of the registrations (which plugin has which
 * (fn, udata) on which event, and the head-first order of QEMU's lists).
 * It predicts each dispatch's sequence for each backend from it, checks
 * both backends against their prediction, and so also checks qpd where
 * legacy legitimately differs.
 *
 * Deliberate differences, each modelled where it arises:
 *  D1 order: none any more.  Both run an event's callbacks in QEMU's
 *     order, the reverse of each plugin's first registration (a
 *     replacement keeps its place, a removal and a new registration puts
 *     the plugin first); both are checked against the shadow's list.
 *  D2 syscall filter: the first filter returning true wins, in that order,
 *     so both backends offer the call to the same filters.
 *  D3 masks: legacy's syscall, syscall_ret, syscall_filter and tb_trans
 *     test the vCPU's own mask copy, refreshed only when the vCPU drains
 *     its work (enter, safepoint).  Inside a slice, an event whose list was
 *     empty at the last drain and is not now runs nothing in legacy; qpd's
 *     masks change at once.  The shadow remembers the mask of the last
 *     drain.
 *  D4 deferred work: inside a slice legacy queues uninstall, reset and
 *     flush to the vCPU, and qpd runs `done` hooks after a grace period.
 *     After every op that may have left such work, the fuzzer settles both:
 *     legacy_vcpu_safepoint() and, for qpd, qpd_vcpu_quiescent() plus
 *     qpd_reclaim() until nothing is pending (qpd is created with
 *     no_reclaimer_thread for determinism).  Settling within a few rounds
 *     is itself checked, and `done` hooks are compared in each backend's
 *     issue order right after the op.  One op makes a second call on the
 *     plugin before settling: qpd knows an uninstalling plugin until its
 *     grace period ends (-EALREADY, -ESHUTDOWN, for_each succeeds) and
 *     refuses a second reset until then, while legacy outside a slice is
 *     done when the call returns (-ENOENT, a second reset succeeds); inside
 *     a slice they agree.  A registration made while a reset is queued in
 *     a slice is not generated: legacy's reset then removes it, qpd's not.
 *  D5 implicit flushes: legacy also flushes when it uninstalls or resets a
 *     plugin while vCPUs exist, on user exit, and when a vCPU index past
 *     its scoreboard size is initialised while scoreboards exist.  Its
 *     on_flush hook rebuilds every live dynamic list from the fuzzer's
 *     recipe, as retranslation would; qpd's lists are untouched by those
 *     events and stay equivalent, so they are not rebuilt.  The FLUSH
 *     callbacks of such a flush are marked implicit, take no action and
 *     are left out of the comparison.  An explicit flush rebuilds both.
 *  D6 memory executor: legacy runs with legacy_set_mem_break(l, false).
 *     Every exec_mem is also run on legacy with `true` first (the vCPU's
 *     counters saved and restored around it): its calls must be exactly
 *     the prefix of the `false` run up to the first entry that does not
 *     match, as predicted from the recipe.
 *  D7 idle/resume of an exited vCPU: legacy runs them for any index below
 *     num_vcpus that was ever initialised (as QEMU), qpd ignores offline
 *     vCPUs.  Each is checked against its own prediction.
 *  D8 for_each: legacy visits vCPUs in hash order; the sets are compared.
 *  D9 scoreboards: legacy's arrays have `alloc` elements (16, doubled to
 *     cover every initialised index); at or past it legacy reads 0 and
 *     ignores stores where qpd has a slot up to max_vcpus.  u64 get/set
 *     use indices below both.  Element sizes are multiples of 8, because
 *     legacy's arrays place a u64 at offset + index * elem_size and would
 *     make misaligned accesses otherwise.
 *  D10 conditional callbacks: legacy validates the counter reference
 *     before looking at the condition, qpd returns 0 for NEVER (and adds a
 *     plain callback for ALWAYS) without looking at it.  NEVER with a bad
 *     reference is expected to give qpd 0 and legacy -EINVAL, adding
 *     nothing to either; ALWAYS with a bad reference is not generated.
 *  D11 inline-op counters: qpd takes any offset whose 8 bytes lie inside
 *     the slot (the scoreboard's column, wider than the element), aligned
 *     or not, as QEMU's translated code does; legacy only an aligned u64
 *     inside the element.  An inline or memory inline op naming a counter
 *     only qpd accepts is not generated (qpd's side is unit-tested).
 *
 * Callbacks may call back into the API on their own plugin (qpd's
 * dispatch contract): the udata of a registration selects an action
 * (unregister itself, register or unregister another event, uninstall or
 * reset its plugin, enumerate vCPUs).  Actions run only in dispatches where
 * both backends run the same callbacks; their results are compared per
 * plugin, and the shadow applies them in legacy's execution order.
 *
 * Built two ways: with -DFUZZ_DIFF_LIBFUZZER as a libFuzzer target
 * (tests/fuzz/run-fuzz.sh), otherwise with a main() that replays files and
 * directories (the committed corpus is a unit test).  FUZZ_DIFF_TRACE=1 in
 * the environment prints every call as it is made.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qpd.h>

#include "legacy.h"

enum { QPD = 0, LEG = 1 };

#define MAXP 10          /* plugins per run */
#define MAXSB 6          /* live scoreboards */
#define MAXSB_BYTES 1024 /* largest element */
#define MAXL 6           /* dynamic lists */
#define MAXE 40          /* entries per list */
#define MAXOPS 600       /* calls per input */
#define SEGMAX 256       /* records one call may produce per backend */
#define NEV QPD_EV_COUNT

static const unsigned IDX[] = { 0, 1, 2, 3, 5, 7, 15, 16, 17, 31, 32, 33,
				63, 64, 65, 4095, 4096, 4159, 4160, 100000 };
#define NIDX (sizeof(IDX) / sizeof(IDX[0]))

static const unsigned MAXV[] = { 4160, 17, 70, 70 };

static const char *const EVNAME[NEV + 1] = {
	"INIT", "EXIT", "IDLE", "RESUME", "TB_TRANS", "SYSCALL", "SYSCALL_RET",
	"FLUSH", "ATEXIT", "INTERRUPT", "EXCEPTION", "HOSTCALL",
	"SYSCALL_FILTER", "(bad)"
};

/* ------------------------------------------------------------------
 * What callbacks saw.
 */
enum rec_kind { R_EV, R_DYN, R_MEM, R_DONE };

struct rec {
	uint8_t kind, ev, var;
	uint8_t implicit; /* legacy FLUSH callback of an implicit flush */
	uint8_t act;      /* action taken, 0 for none */
	int rc;           /* its result */
	uint64_t aux;     /* for_each digest */
	qpd_plugin_id id;
	unsigned vcpu;
	uintptr_t ud;
	uint64_t a, b, c; /* event arguments */
};

struct log {
	struct rec r[SEGMAX];
	unsigned n;
};

/* Callback actions, chosen by bits 12..15 of the udata. */
enum {
	A_NONE, A_UNREG_SELF, A_REG, A_UNREG, A_UNINSTALL, A_RESET, A_FOREACH,
	A_COUNT
};

/* ------------------------------------------------------------------
 * The shadow and the state of one run.
 */
struct plug {
	bool live;
	bool reg[NEV];
	uint8_t var[NEV];
	uint16_t ud[NEV];
};

struct sb {
	struct qpd_scoreboard *q;
	struct legacy_scoreboard *l;
	unsigned size;
	bool live;
};

enum dkind { D_CB, D_INLINE, D_COND, D_MEM_CB, D_MEM_INLINE, D_KINDS };

struct dent {
	uint8_t kind, var, op, cond, rw;
	int8_t sb;       /* scoreboard slot, -1 for a NULL reference */
	uint16_t ud;
	unsigned off;
	uint64_t imm;
};

struct list {
	struct qpd_dyn *q;
	struct legacy_dyn *l;
	struct dent e[MAXE];
	unsigned n;
	bool live;
};

static struct {
	struct qpd *q;
	struct legacy *l;
	unsigned maxv;
	unsigned nplug;
	struct plug p[MAXP + 2];      /* by id */
	qpd_plugin_id lorder[NEV][MAXP]; /* QEMU's lists, head first */
	unsigned nlorder[NEV];
	bool online[NIDX], ever[NIDX];
	unsigned num_vcpus, alloc;
	int cur;                      /* IDX slot of the slice, -1 outside */
	uint64_t lmask;               /* legacy's mask copy of that vCPU (D3) */
	bool lmask_sync;              /* refresh lmask when the call ends */
	struct sb sb[MAXSB];
	struct sb *freed;             /* for a double free, until the next new */
	struct list li[MAXL];
	uint64_t args[8];

	int backend;                  /* which one is being called */
	bool actions_on;
	bool lg_flush_explicit;       /* D5 */
	bool need_settle;
	bool atexit_ran;
	int64_t err_skew;             /* legacy's error count minus qpd's */
	int64_t done_skew;            /* legacy's done calls minus qpd's */
	unsigned op_no;
	char opdesc[160];
	bool trace;
	bool set_any;
	struct log log[2];
	unsigned fe_n[2];
	unsigned fe[2][NIDX + 4];     /* for_each visits */
	uint64_t n_implicit;          /* statistics of the run */
} F;

static uint64_t tot_implicit, tot_ops, tot_stale, tot_actions;

/* ------------------------------------------------------------------
 * Reporting.
 */
static void
rec_print(const struct rec *r)
{
	static const char *const kind[] = { "ev", "dyn", "mem", "done" };

	fprintf(stderr, "    %s %s var=%u id=%" PRIu64 " vcpu=%u ud=%#lx"
		" a=%#" PRIx64 " b=%#" PRIx64 " c=%#" PRIx64 " act=%u rc=%d"
		" aux=%#" PRIx64 "%s\n", kind[r->kind],
		r->kind == R_EV ? EVNAME[r->ev] : "", r->var, r->id, r->vcpu,
		(unsigned long)r->ud, r->a, r->b, r->c, r->act, r->rc, r->aux,
		r->implicit ? " (implicit flush)" : "");
}

static void
die(const char *fmt, ...)
{
	va_list ap;
	unsigned b, i;

	fprintf(stderr, "\nfuzz_diff: MISMATCH at call %u: %s\n  ", F.op_no,
		F.opdesc);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	for (b = 0; b < 2; b++) {
		fprintf(stderr, "  %s saw %u record(s):\n",
			b == QPD ? "qpd" : "legacy", F.log[b].n);
		for (i = 0; i < F.log[b].n; i++)
			rec_print(&F.log[b].r[i]);
	}
	fprintf(stderr, "  (FUZZ_DIFF_TRACE=1 replays the input with every "
		"call printed)\n");
	abort();
}

static void
trace(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(F.opdesc, sizeof(F.opdesc), fmt, ap);
	va_end(ap);
	if (F.trace)
		fprintf(stderr, "%4u %s\n", F.op_no, F.opdesc);
}

static void
note(const char *fmt, ...)
{
	va_list ap;

	if (!F.trace)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "       ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static bool
rec_eq(const struct rec *x, const struct rec *y)
{
	return x->kind == y->kind && x->ev == y->ev && x->var == y->var &&
	       x->implicit == y->implicit && x->act == y->act &&
	       x->rc == y->rc && x->aux == y->aux && x->id == y->id &&
	       x->vcpu == y->vcpu && x->ud == y->ud && x->a == y->a &&
	       x->b == y->b && x->c == y->c;
}

static void
log_push(const struct rec *r)
{
	struct log *lg = &F.log[F.backend];

	if (lg->n == SEGMAX)
		die("more than %u records in one call", SEGMAX);
	lg->r[lg->n++] = *r;
}

/* ------------------------------------------------------------------
 * Callbacks.  Each event has two functions (var 0 and 1) so that a
 * replacement can change fn as well as udata.
 */
static void on_done(qpd_plugin_id id, void *arg);
static void fe_visit(qpd_plugin_id id, unsigned vcpu);

static void *cb_fn(unsigned ev, unsigned var);

static int
do_register(int be, qpd_plugin_id id, unsigned ev, void *fn, void *ud)
{
	return be == QPD ? qpd_register_cb(F.q, id, (enum qpd_event)ev, fn, ud)
			 : legacy_register_cb(F.l, id, (enum qpd_event)ev, fn,
					      ud);
}

static int
do_retire(int be, qpd_plugin_id id, bool reset, qpd_done_fn done, void *arg)
{
	if (be == QPD)
		return reset ? qpd_plugin_reset(F.q, id, done, arg)
			     : qpd_plugin_uninstall(F.q, id, done, arg);
	return reset ? legacy_plugin_reset(F.l, id, done, arg)
		     : legacy_plugin_uninstall(F.l, id, done, arg);
}

/* Order-free digest of the vCPUs one for_each visited. */
static uint64_t
fe_digest(int be)
{
	uint64_t d = F.fe_n[be];

	for (unsigned i = 0; i < F.fe_n[be]; i++) {
		uint64_t x = F.fe[be][i] * 0x9e3779b97f4a7c15ULL;

		d += x ^ (x >> 29);
	}
	return d;
}

static int
do_for_each(int be, qpd_plugin_id id, bool null_cb)
{
	void (*cb)(qpd_plugin_id, unsigned) = null_cb ? NULL : fe_visit;

	F.fe_n[be] = 0;
	return be == QPD ? qpd_vcpu_for_each(F.q, id, cb)
			 : legacy_vcpu_for_each(F.l, id, cb);
}

static void
act_run(struct rec *r)
{
	unsigned act = (unsigned)(r->ud >> 12) & 15;
	unsigned e2 = (unsigned)(r->ud >> 4) % NEV;
	uintptr_t ud2 = r->ud & 0xff;
	int be = F.backend;

	switch (act) {
	case A_UNREG_SELF:
		r->rc = do_register(be, r->id, r->ev, NULL, NULL);
		break;
	case A_REG:
		r->rc = do_register(be, r->id, e2, cb_fn(e2, r->ud & 1),
				    (void *)ud2);
		break;
	case A_UNREG:
		r->rc = do_register(be, r->id, e2, NULL, NULL);
		break;
	case A_UNINSTALL:
	case A_RESET:
		r->rc = do_retire(be, r->id, act == A_RESET, on_done,
				  (void *)ud2);
		F.need_settle = true;
		break;
	case A_FOREACH:
		r->rc = do_for_each(be, r->id, false);
		r->aux = fe_digest(be);
		break;
	default:
		return;
	}
	r->act = (uint8_t)act;
}

static void
ev_hit(unsigned ev, unsigned var, qpd_plugin_id id, unsigned vcpu, void *ud,
       uint64_t a, uint64_t b, uint64_t c)
{
	struct rec r = { .kind = R_EV, .ev = (uint8_t)ev, .var = (uint8_t)var,
			 .id = id, .vcpu = vcpu, .ud = (uintptr_t)ud,
			 .a = a, .b = b, .c = c };

	/* D5: a FLUSH walk legacy makes on its own is no walk of qpd's. */
	if (F.backend == LEG && ev == QPD_EV_FLUSH && !F.lg_flush_explicit)
		r.implicit = 1;
	else if (F.actions_on)
		act_run(&r);
	log_push(&r);
}

#define VCPU_CB(EV, V)                                                     \
	static void cb_##EV##_##V(qpd_plugin_id id, unsigned vcpu, void *ud) \
	{                                                                  \
		ev_hit(EV, V, id, vcpu, ud, 0, 0, 0);                      \
	}
#define SIMPLE_CB(EV, V)                                                   \
	static void cb_##EV##_##V(qpd_plugin_id id, void *ud)              \
	{                                                                  \
		ev_hit(EV, V, id, 0, ud, 0, 0, 0);                         \
	}
#define DISCON_CB(EV, V)                                                   \
	static void cb_##EV##_##V(qpd_plugin_id id, unsigned vcpu,         \
				  enum qpd_discon_type type, uint64_t from,\
				  uint64_t to, void *ud)                   \
	{                                                                  \
		ev_hit(EV, V, id, vcpu, ud, (uint64_t)type, from, to);     \
	}
#define TB_CB(V)                                                           \
	static void cb_tb_##V(qpd_plugin_id id, unsigned vcpu, void *tb,   \
			      void *ud)                                    \
	{                                                                  \
		ev_hit(QPD_EV_VCPU_TB_TRANS, V, id, vcpu, ud,              \
		       (uint64_t)(uintptr_t)tb, 0, 0);                     \
	}
#define SYS_CB(V)                                                          \
	static void cb_sys_##V(qpd_plugin_id id, unsigned vcpu, int64_t num, \
			       const uint64_t args[8], void *ud)           \
	{                                                                  \
		ev_hit(QPD_EV_VCPU_SYSCALL, V, id, vcpu, ud, (uint64_t)num, \
		       args[0] ^ args[7], args == F.args);                 \
	}
#define SYSRET_CB(V)                                                       \
	static void cb_sysret_##V(qpd_plugin_id id, unsigned vcpu,         \
				  int64_t num, int64_t ret, void *ud)      \
	{                                                                  \
		ev_hit(QPD_EV_VCPU_SYSCALL_RET, V, id, vcpu, ud,           \
		       (uint64_t)num, (uint64_t)ret, 0);                   \
	}
/* Filter var 1 claims the call; var 0 declines. */
#define FILTER_CB(V)                                                       \
	static bool cb_filter_##V(qpd_plugin_id id, unsigned vcpu,         \
				  int64_t num, const uint64_t args[8],     \
				  uint64_t *sysret, void *ud)              \
	{                                                                  \
		ev_hit(QPD_EV_VCPU_SYSCALL_FILTER, V, id, vcpu, ud,        \
		       (uint64_t)num, *sysret, args == F.args);            \
		if (V)                                                     \
			*sysret = (uintptr_t)ud + 0x10000u;                \
		return V;                                                  \
	}

#define BOTH(M, EV) M(EV, 0) M(EV, 1)
BOTH(VCPU_CB, QPD_EV_VCPU_INIT)
BOTH(VCPU_CB, QPD_EV_VCPU_EXIT)
BOTH(VCPU_CB, QPD_EV_VCPU_IDLE)
BOTH(VCPU_CB, QPD_EV_VCPU_RESUME)
BOTH(SIMPLE_CB, QPD_EV_FLUSH)
BOTH(SIMPLE_CB, QPD_EV_ATEXIT)
BOTH(DISCON_CB, QPD_EV_VCPU_INTERRUPT)
BOTH(DISCON_CB, QPD_EV_VCPU_EXCEPTION)
BOTH(DISCON_CB, QPD_EV_VCPU_HOSTCALL)
TB_CB(0) TB_CB(1)
SYS_CB(0) SYS_CB(1)
SYSRET_CB(0) SYSRET_CB(1)
FILTER_CB(0) FILTER_CB(1)

#define FNS(a) { (void *)a##_0, (void *)a##_1 }
static void *
cb_fn(unsigned ev, unsigned var)
{
	static void *const fn[NEV][2] = {
		[QPD_EV_VCPU_INIT] = FNS(cb_QPD_EV_VCPU_INIT),
		[QPD_EV_VCPU_EXIT] = FNS(cb_QPD_EV_VCPU_EXIT),
		[QPD_EV_VCPU_IDLE] = FNS(cb_QPD_EV_VCPU_IDLE),
		[QPD_EV_VCPU_RESUME] = FNS(cb_QPD_EV_VCPU_RESUME),
		[QPD_EV_VCPU_TB_TRANS] = FNS(cb_tb),
		[QPD_EV_VCPU_SYSCALL] = FNS(cb_sys),
		[QPD_EV_VCPU_SYSCALL_RET] = FNS(cb_sysret),
		[QPD_EV_FLUSH] = FNS(cb_QPD_EV_FLUSH),
		[QPD_EV_ATEXIT] = FNS(cb_QPD_EV_ATEXIT),
		[QPD_EV_VCPU_INTERRUPT] = FNS(cb_QPD_EV_VCPU_INTERRUPT),
		[QPD_EV_VCPU_EXCEPTION] = FNS(cb_QPD_EV_VCPU_EXCEPTION),
		[QPD_EV_VCPU_HOSTCALL] = FNS(cb_QPD_EV_VCPU_HOSTCALL),
		[QPD_EV_VCPU_SYSCALL_FILTER] = FNS(cb_filter),
	};

	return fn[ev < NEV ? ev : 0][var & 1];
}

static void
on_done(qpd_plugin_id id, void *arg)
{
	struct rec r = { .kind = R_DONE, .id = id, .ud = (uintptr_t)arg };

	log_push(&r);
}

static void
fe_visit(qpd_plugin_id id, unsigned vcpu)
{
	int be = F.backend;

	(void)id;
	if (F.fe_n[be] < NIDX + 4)
		F.fe[be][F.fe_n[be]++] = vcpu;
}

static void
dyn_hit(unsigned kind, unsigned var, unsigned vcpu, void *ud, uint64_t a,
	uint64_t b)
{
	struct rec r = { .kind = (uint8_t)kind, .var = (uint8_t)var,
			 .vcpu = vcpu, .ud = (uintptr_t)ud, .a = a, .b = b };

	log_push(&r);
}

static void
dyn_cb_0(unsigned vcpu, void *ud)
{
	dyn_hit(R_DYN, 0, vcpu, ud, 0, 0);
}

static void
dyn_cb_1(unsigned vcpu, void *ud)
{
	dyn_hit(R_DYN, 1, vcpu, ud, 0, 0);
}

static void
mem_cb_0(unsigned vcpu, uint32_t meminfo, uint64_t vaddr, void *ud)
{
	dyn_hit(R_MEM, 0, vcpu, ud, meminfo, vaddr);
}

static void
mem_cb_1(unsigned vcpu, uint32_t meminfo, uint64_t vaddr, void *ud)
{
	dyn_hit(R_MEM, 1, vcpu, ud, meminfo, vaddr);
}

/* ------------------------------------------------------------------
 * The shadow of registrations.
 */
static uint64_t
nonempty_mask(void)
{
	uint64_t m = 0;

	for (unsigned ev = 0; ev < NEV; ev++)
		if (F.nlorder[ev] != 0)
			m |= UINT64_C(1) << ev;
	return m;
}

static void
shadow_unreg(qpd_plugin_id id, unsigned ev)
{
	struct plug *p = &F.p[id];
	unsigned i, n = F.nlorder[ev];

	if (!p->reg[ev])
		return;
	p->reg[ev] = false;
	for (i = 0; i < n && F.lorder[ev][i] != id; i++)
		;
	memmove(&F.lorder[ev][i], &F.lorder[ev][i + 1],
		(n - i - 1) * sizeof(F.lorder[ev][0]));
	F.nlorder[ev]--;
}

static void
shadow_reg(qpd_plugin_id id, unsigned ev, unsigned var, unsigned ud)
{
	struct plug *p = &F.p[id];

	if (!p->reg[ev]) {
		/* A first registration goes to the head of legacy's list. */
		memmove(&F.lorder[ev][1], &F.lorder[ev][0],
			F.nlorder[ev] * sizeof(F.lorder[ev][0]));
		F.lorder[ev][0] = id;
		F.nlorder[ev]++;
	}
	p->reg[ev] = true;
	p->var[ev] = (uint8_t)var;
	p->ud[ev] = (uint16_t)ud;
}

static void
shadow_remove_all(qpd_plugin_id id)
{
	for (unsigned ev = 0; ev < NEV; ev++)
		shadow_unreg(id, ev);
}

/* Bytes of a qpd scoreboard's slot an inline op may use (D11). */
static size_t
qpd_slot_size(const struct qpd_scoreboard *sb)
{
	return sb->col_size;
}

static bool
known(qpd_plugin_id id)
{
	return id >= 1 && id <= F.nplug && F.p[id].live;
}

struct want {
	qpd_plugin_id id;
	unsigned var, ud;
};

/* The callbacks of ev that backend be walks, in order (D1: the same). */
static unsigned
want_group(int be, unsigned ev, struct want *w)
{
	unsigned n = 0, i;

	(void)be;
	for (i = 0; i < F.nlorder[ev]; i++) {
		qpd_plugin_id id = F.lorder[ev][i];

		w[n++] = (struct want){ id, F.p[id].var[ev], F.p[id].ud[ev] };
	}
	return n;
}

/* D2: a filter walk stops after the first filter that claims the call. */
static unsigned
cut_at_claim(const struct want *w, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (w[i].var == 1)
			return i + 1;
	return n;
}

/* ------------------------------------------------------------------
 * Comparing what one call produced.
 */
struct expect {
	unsigned ev;               /* NEV: no event walk expected */
	struct want w[2][MAXP];    /* per backend */
	unsigned n[2];
	unsigned vcpu;             /* arguments every record must carry */
	uint64_t a, b, c;
	struct rec done[2][4];     /* the call's own `done`s, per backend */
	unsigned ndone[2];
};

struct split {
	const struct rec *ev[SEGMAX], *dyn[SEGMAX], *done[SEGMAX];
	unsigned nev, ndyn, ndone;
};

/* Sorts a backend's records into walk, dynamic-list and done parts. */
static void
split_log(int be, struct split *s)
{
	unsigned stage = 0;

	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < F.log[be].n; i++) {
		const struct rec *r = &F.log[be].r[i];
		unsigned st = r->kind == R_EV ? 0 : r->kind == R_DONE ? 2 : 1;

		if (r->implicit) {
			F.n_implicit++;
			continue;
		}
		if (st < stage)
			die("%s: a %s record after a later kind",
			    be == QPD ? "qpd" : "legacy",
			    r->kind == R_EV ? "callback" : "list");
		stage = st;
		if (st == 0)
			s->ev[s->nev++] = r;
		else if (st == 1)
			s->dyn[s->ndyn++] = r;
		else
			s->done[s->ndone++] = r;
	}
}

static void
check_walk(int be, const struct split *s, const struct expect *x)
{
	const char *name = be == QPD ? "qpd" : "legacy";

	if (s->nev != x->n[be])
		die("%s ran %u %s callback(s), expected %u", name, s->nev,
		    x->ev < NEV ? EVNAME[x->ev] : "event", x->n[be]);
	for (unsigned i = 0; i < s->nev; i++) {
		const struct rec *r = s->ev[i];
		const struct want *w = &x->w[be][i];

		if (r->ev != x->ev || r->id != w->id || r->var != w->var ||
		    r->ud != w->ud)
			die("%s callback %u: %s of plugin %" PRIu64 " var %u "
			    "udata %#lx, expected %s of plugin %" PRIu64
			    " var %u udata %#x", name, i, EVNAME[r->ev], r->id,
			    r->var, (unsigned long)r->ud, EVNAME[x->ev], w->id,
			    w->var, w->ud);
		if (r->vcpu != x->vcpu || r->a != x->a || r->b != x->b ||
		    r->c != x->c)
			die("%s callback %u got arguments (vcpu %u, %#" PRIx64
			    ", %#" PRIx64 ", %#" PRIx64 "), expected (%u, %#"
			    PRIx64 ", %#" PRIx64 ", %#" PRIx64 ")", name, i,
			    r->vcpu, r->a, r->b, r->c, x->vcpu, x->a, x->b,
			    x->c);
	}
}

/* The `done` hooks a backend owes: the call's own, then its actions'. */
static void
check_done(int be, const struct split *s, const struct expect *x)
{
	const char *name = be == QPD ? "qpd" : "legacy";
	struct rec want[4 + SEGMAX];
	unsigned n = 0, i;

	for (i = 0; i < x->ndone[be]; i++)
		want[n++] = x->done[be][i];
	for (i = 0; i < s->nev; i++) {
		const struct rec *r = s->ev[i];

		if ((r->act == A_UNINSTALL || r->act == A_RESET) && r->rc == 0)
			want[n++] = (struct rec){ .kind = R_DONE, .id = r->id,
						  .ud = r->ud & 0xff };
	}
	if (s->ndone != n)
		die("%s ran %u done hook(s), expected %u", name, s->ndone, n);
	for (i = 0; i < n; i++)
		if (s->done[i]->id != want[i].id ||
		    s->done[i]->ud != want[i].ud)
			die("%s done hook %u: plugin %" PRIu64 " arg %#lx, "
			    "expected plugin %" PRIu64 " arg %#lx", name, i,
			    s->done[i]->id, (unsigned long)s->done[i]->ud,
			    want[i].id, (unsigned long)want[i].ud);
}

/* Applies the actions callbacks took to the shadow, in legacy's order. */
static void
apply_actions(const struct split *sq, const struct split *sl)
{
	for (unsigned i = 0; i < sl->nev; i++) {
		const struct rec *r = sl->ev[i], *o = NULL;
		unsigned e2 = (unsigned)(r->ud >> 4) % NEV;

		for (unsigned j = 0; j < sq->nev; j++)
			if (sq->ev[j]->id == r->id)
				o = sq->ev[j];
		if (o == NULL)
			die("plugin %" PRIu64 " ran in legacy only", r->id);
		if (o->act != r->act || o->rc != r->rc || o->aux != r->aux)
			die("plugin %" PRIu64 "'s action %u: qpd rc %d aux %#"
			    PRIx64 ", legacy rc %d aux %#" PRIx64, r->id,
			    r->act, o->rc, o->aux, r->rc, r->aux);
		if (r->act == A_NONE || r->rc != 0)
			continue;
		tot_actions++;
		switch (r->act) {
		case A_UNREG_SELF:
			shadow_unreg(r->id, r->ev);
			break;
		case A_REG:
			shadow_reg(r->id, e2, r->ud & 1, r->ud & 0xff);
			break;
		case A_UNREG:
			shadow_unreg(r->id, e2);
			break;
		case A_UNINSTALL:
			shadow_remove_all(r->id);
			F.p[r->id].live = false;
			break;
		case A_RESET:
			shadow_remove_all(r->id);
			break;
		}
	}
}

/* Checks the records of one call against x and against each other. */
static void
check_call(const struct expect *x)
{
	struct split sq, sl;

	if (F.trace) {
		for (int be = 0; be < 2; be++) {
			if (F.log[be].n != 0)
				fprintf(stderr, "       %s:\n",
					be == QPD ? "qpd" : "legacy");
			for (unsigned i = 0; i < F.log[be].n; i++)
				rec_print(&F.log[be].r[i]);
		}
	}
	split_log(QPD, &sq);
	split_log(LEG, &sl);
	if (x->ev == NEV && (sq.nev != 0 || sl.nev != 0))
		die("event callbacks ran where none were expected");
	if (x->ev < NEV) {
		check_walk(QPD, &sq, x);
		check_walk(LEG, &sl, x);
	}
	if (sq.ndyn != sl.ndyn)
		die("qpd ran %u list entries, legacy %u", sq.ndyn, sl.ndyn);
	for (unsigned i = 0; i < sq.ndyn; i++) {
		if (!rec_eq(sq.dyn[i], sl.dyn[i]))
			die("list entry %u differs", i);
	}
	check_done(QPD, &sq, x);
	check_done(LEG, &sl, x);
	if (x->ev < NEV && F.actions_on)
		apply_actions(&sq, &sl);
	F.log[QPD].n = F.log[LEG].n = 0;
}

/* ------------------------------------------------------------------
 * Settling (D4) and state checks.
 */
static bool
in_slice(void)
{
	return F.cur >= 0;
}

static unsigned
cur_vcpu(void)
{
	return IDX[F.cur];
}

static void
reclaim_qpd(void)
{
	int pending = 0;

	F.backend = QPD;
	for (unsigned round = 0; round < 8; round++) {
		if (in_slice())
			qpd_vcpu_quiescent(F.q, cur_vcpu());
		pending = qpd_reclaim(F.q);
		if (pending == 0)
			return;
		if (!in_slice() && round >= 1)
			break;
	}
	die("qpd_reclaim still has %d object(s) pending %s", pending,
	    in_slice() ? "after 8 quiescent rounds" : "with no slice open");
}

static void
settle(void)
{
	if (!F.need_settle)
		return;
	F.need_settle = false;
	if (in_slice()) {
		F.backend = LEG;
		legacy_vcpu_safepoint(F.l, cur_vcpu());
		/* Its mask copy is now the global mask as the call leaves
		 * it, once the shadow has taken in the call's effects. */
		F.lmask_sync = true;
	}
	reclaim_qpd();
	if (F.lg_flush_explicit)
		die("legacy's queued flush did not run at the safepoint");
}

static void
check_num_vcpus(void)
{
	unsigned nq = qpd_num_vcpus(F.q), nl = legacy_num_vcpus(F.l);

	if (nq != nl || nq != F.num_vcpus)
		die("num_vcpus: qpd %u, legacy %u, expected %u", nq, nl,
		    F.num_vcpus);
}

/* D9: indices below both backends' scoreboard sizes. */
static bool
sb_index_ok(unsigned v)
{
	return v < F.alloc && v < F.maxv;
}

static void
sb_compare_one(const struct sb *s, unsigned v)
{
	const unsigned char *qp, *lp;

	if (!sb_index_ok(v))
		return;
	/* The slot's address, computed: qpd_scoreboard_find would raise
	 * qpd's zeroing high-water mark and hide what it misses. */
	qp = (const unsigned char *)qpd_u64_slot((qpd_u64){ s->q, 0 }, v);
	lp = legacy_scoreboard_find(s->l, v);
	if (lp == NULL)
		die("legacy has no element %u in a scoreboard of %u", v,
		    F.alloc);
	for (unsigned i = 0; i < s->size; i++)
		if (qp[i] != lp[i])
			die("scoreboard %d (elem %u) vCPU %u byte %u: qpd %#x,"
			    " legacy %#x", (int)(s - F.sb), s->size, v, i,
			    qp[i], lp[i]);
}

static void
sb_compare(int only_slot)
{
	for (unsigned i = 0; i < MAXSB; i++) {
		if (!F.sb[i].live)
			continue;
		for (unsigned k = 0; k < NIDX; k++)
			if (only_slot < 0 || (unsigned)only_slot == k)
				sb_compare_one(&F.sb[i], IDX[k]);
	}
}

static void
stats_compare(void)
{
	struct qpd_stats sq;
	struct legacy_stats sl;

	if (qpd_stats_get(F.q, &sq) != 0 || legacy_stats_get(F.l, &sl) != 0)
		die("stats_get failed");
#define SAME(f)                                                            \
	if (sq.f != sl.f)                                                  \
		die("stats." #f ": qpd %" PRIu64 ", legacy %" PRIu64, sq.f, \
		    sl.f)
	SAME(n_registrations);
	SAME(n_unregistrations);
	SAME(n_plugins);
	SAME(n_vcpus_online);
	SAME(n_vcpus);
#undef SAME
	if (sq.n_done_calls + (uint64_t)F.done_skew != sl.n_done_calls)
		die("stats.n_done_calls: qpd %" PRIu64 ", legacy %" PRIu64
		    " (legacy counts %" PRId64 " more by D4)", sq.n_done_calls,
		    sl.n_done_calls, F.done_skew);
	if (sq.n_errors + (uint64_t)F.err_skew != sl.n_errors)
		die("stats.n_errors: qpd %" PRIu64 ", legacy %" PRIu64
		    " (legacy counts %" PRId64 " more by D4 and D10)",
		    sq.n_errors, sl.n_errors, F.err_skew);
	if (sl.scoreboard_alloc != F.alloc)
		die("legacy's scoreboard size %" PRIu64 ", modelled %u",
		    sl.scoreboard_alloc, F.alloc);
}

/* ------------------------------------------------------------------
 * Dynamic lists: recipes and their builds.
 */
static int
dent_add(int be, struct list *li, const struct dent *d)
{
	static qpd_dyn_cb_t const dfn[3] = { dyn_cb_0, dyn_cb_1, NULL };
	static qpd_mem_cb_t const mfn[3] = { mem_cb_0, mem_cb_1, NULL };
	const struct sb *s = d->sb >= 0 ? &F.sb[d->sb] : NULL;
	qpd_u64 eq = { s ? s->q : NULL, d->off };
	legacy_u64 el = { s ? s->l : NULL, d->off };
	qpd_dyn_cb_t fn = dfn[d->var];
	void *ud = (void *)(uintptr_t)d->ud;
	bool q = be == QPD;

	switch (d->kind) {
	case D_CB:
		return q ? qpd_dyn_add_cb(li->q, fn, ud)
			 : legacy_dyn_add_cb(li->l, fn, ud);
	case D_INLINE:
		return q ? qpd_dyn_add_inline(li->q, d->op, eq, d->imm)
			 : legacy_dyn_add_inline(li->l, d->op, el, d->imm);
	case D_COND:
		return q ? qpd_dyn_add_cond_cb(li->q, fn, ud, d->cond, eq,
					       d->imm)
			 : legacy_dyn_add_cond_cb(li->l, fn, ud, d->cond, el,
						  d->imm);
	case D_MEM_CB:
		return q ? qpd_dyn_add_mem_cb(li->q, mfn[d->var], d->rw, ud)
			 : legacy_dyn_add_mem_cb(li->l, mfn[d->var], d->rw, ud);
	default:
		return q ? qpd_dyn_add_mem_inline(li->q, d->rw, d->op, eq,
						  d->imm)
			 : legacy_dyn_add_mem_inline(li->l, d->rw, d->op, el,
						     d->imm);
	}
}

/* Builds list li afresh on backend be from its recipe. */
static void
list_build(int be, struct list *li)
{
	if (be == QPD)
		li->q = qpd_dyn_new(F.q);
	else
		li->l = legacy_dyn_new(F.l);
	if (be == QPD ? li->q == NULL : li->l == NULL)
		die("dyn_new failed while rebuilding a list");
	for (unsigned i = 0; i < li->n; i++) {
		int rc = dent_add(be, li, &li->e[i]);

		if (rc != 0)
			die("rebuilding list %d entry %u: rc %d",
			    (int)(li - F.li), i, rc);
	}
}

/* D5: legacy threw every list away; build the live ones again. */
static void
lg_on_flush(void *opaque)
{
	(void)opaque;
	F.lg_flush_explicit = false;
	for (unsigned i = 0; i < MAXL; i++)
		if (F.li[i].live)
			list_build(LEG, &F.li[i]);
}

/* ------------------------------------------------------------------
 * Input decoding.
 */
struct rd {
	const uint8_t *p;
	size_t n;
};

static unsigned
u8(struct rd *r)
{
	if (r->n == 0)
		return 0;
	r->n--;
	return *r->p++;
}

static unsigned
u16(struct rd *r)
{
	unsigned lo = u8(r);

	return lo | u8(r) << 8;
}

static uint64_t
val64(struct rd *r)
{
	unsigned b = u8(r);
	uint64_t v = 0;

	switch (b >> 6) {
	case 0:
		return b & 63;
	case 1:
		return (uint64_t)u16(r) << (b & 63);
	case 2:
		return UINT64_MAX - (b & 63);
	default:
		for (unsigned i = 0; i < 8; i++)
			v = v << 8 | u8(r);
		return v;
	}
}

/* A plugin id: 0, a known one, or one past the last. */
static qpd_plugin_id
pick_plugin(struct rd *r)
{
	return u8(r) % (F.nplug + 2);
}

static unsigned
pick_idx(struct rd *r)
{
	return u8(r) % NIDX;
}

static int
pick_sb(struct rd *r)
{
	unsigned k = u8(r) % (MAXSB + 1);

	return k < MAXSB && F.sb[k].live ? (int)k : -1;
}

/* ------------------------------------------------------------------
 * The calls.
 */
enum op {
	OP_ADD, OP_UNINSTALL, OP_RESET, OP_REG, OP_UNREG, OP_INIT, OP_EXIT,
	OP_ENTER, OP_LEAVE, OP_SAFEPOINT, OP_IDLE, OP_RESUME, OP_TB,
	OP_SYSCALL, OP_SYSRET, OP_FILTER, OP_DISCON, OP_FLUSH, OP_ATEXIT,
	OP_USER_EXIT, OP_FOREACH, OP_SB_NEW, OP_SB_FREE, OP_U64_GET,
	OP_U64_SET, OP_U64_SUM, OP_INLINE_ADD, OP_DYN_NEW, OP_DYN_ADD,
	OP_DYN_EXEC, OP_DYN_MEM, OP_DYN_DROP, OP_CHECK, OP_RETIRE2, OP_COUNT
};

static void
expect_none(struct expect *x)
{
	memset(x, 0, sizeof(*x));
	x->ev = NEV;
}

/* Expects backend-specific walks of ev with the given arguments. */
static void
expect_walk(struct expect *x, unsigned ev, unsigned vcpu, uint64_t a,
	    uint64_t b, uint64_t c)
{
	expect_none(x);
	x->ev = ev;
	x->n[QPD] = want_group(QPD, ev, x->w[QPD]);
	x->n[LEG] = want_group(LEG, ev, x->w[LEG]);
	x->vcpu = vcpu;
	x->a = a;
	x->b = b;
	x->c = c;
}

static void
same_rc(const char *what, int rq, int rl)
{
	if (rq != rl)
		die("%s: qpd returned %d, legacy %d", what, rq, rl);
}

static void
leave_slice(void)
{
	struct expect x;
	unsigned v = cur_vcpu();

	trace("leave(vcpu %u)", v);
	F.backend = QPD;
	qpd_vcpu_leave(F.q, v);
	F.backend = LEG;
	legacy_vcpu_leave(F.l, v);
	F.cur = -1;
	expect_none(&x);
	check_call(&x);
	/* With no slice open, one poll must free everything retired. */
	reclaim_qpd();
}

static bool
enter_slice(unsigned k)
{
	bool eq, el;

	F.backend = QPD;
	eq = qpd_vcpu_enter(F.q, IDX[k]);
	F.backend = LEG;
	el = legacy_vcpu_enter(F.l, IDX[k]);
	if (eq != el || eq != F.online[k])
		die("enter(%u): qpd %d, legacy %d, vCPU online %d", IDX[k], eq,
		    el, F.online[k]);
	if (eq) {
		F.cur = (int)k;
		F.lmask = nonempty_mask();
	}
	return eq;
}

/* Ops that need a slice enter the lowest online vCPU; false if none. */
static bool
need_slice(void)
{
	if (in_slice())
		return true;
	for (unsigned k = 0; k < NIDX; k++) {
		if (F.online[k]) {
			note("(enter vcpu %u)", IDX[k]);
			return enter_slice(k);
		}
	}
	return false;
}

static void
need_no_slice(void)
{
	if (in_slice())
		leave_slice();
}

static void
expect_done(struct expect *x, int be, qpd_plugin_id id, unsigned arg)
{
	x->done[be][x->ndone[be]++] = (struct rec){ .kind = R_DONE, .id = id,
						    .ud = arg };
}

/* What the call after an uninstall or reset gets (D4), per backend. */
enum { AGAIN_UNINSTALL, AGAIN_RESET, AGAIN_REGISTER, AGAIN_FOREACH };

static void
again_rc(bool reset, unsigned again, int want[2])
{
	bool slice = in_slice();

	if (!reset) {
		/* qpd knows the plugin until its grace period ends; legacy
		 * until its work runs, at once outside a slice. */
		want[QPD] = again == AGAIN_UNINSTALL ? -EALREADY
			    : again == AGAIN_FOREACH ? 0 : -ESHUTDOWN;
		want[LEG] = slice ? want[QPD] : -ENOENT;
	} else {
		/* Outside a slice legacy's reset is over when it returns. */
		want[QPD] = again == AGAIN_RESET ? -EALREADY : 0;
		want[LEG] = slice ? want[QPD] : 0;
	}
}

/*
 * uninstall or reset, then optionally one more call on the same plugin
 * before anything settles: the window where the plugin is going away.
 */
static void
op_retire(struct rd *r, bool reset, bool twice)
{
	static const char *const aname[] = { "uninstall", "reset", "register",
					     "for_each" };
	qpd_plugin_id id = pick_plugin(r);
	unsigned arg = u8(r), again = twice ? u8(r) % 4 : 0;
	unsigned ev = twice ? u8(r) % NEV : 0, ud = twice ? u16(r) & 0xfff : 0;
	bool with_done = arg & 1;
	qpd_done_fn done = with_done ? on_done : NULL;
	int r1[2], r2[2] = { 0, 0 }, want[2], rq;
	struct expect x;

	/* D4: legacy drops a registration made while its reset is queued. */
	if (twice && reset && again == AGAIN_REGISTER && in_slice())
		return;
	trace("%s(plugin %" PRIu64 ", done %s, arg %#x)%s%s%s",
	      reset ? "reset" : "uninstall", id, with_done ? "yes" : "NULL",
	      arg, twice ? ", then " : "", twice ? aname[again] : "",
	      in_slice() ? " in a slice" : "");
	for (int be = 0; be < 2; be++) {
		F.backend = be;
		r1[be] = do_retire(be, id, reset, done, (void *)(uintptr_t)arg);
		if (!twice || r1[be] != 0)
			continue;
		switch (again) {
		case AGAIN_UNINSTALL:
		case AGAIN_RESET:
			r2[be] = do_retire(be, id, again == AGAIN_RESET,
					   on_done, (void *)(uintptr_t)(arg ^ 2));
			break;
		case AGAIN_REGISTER:
			r2[be] = do_register(be, id, ev, cb_fn(ev, ud & 1),
					     (void *)(uintptr_t)ud);
			break;
		default:
			r2[be] = do_for_each(be, id, false);
			break;
		}
	}
	same_rc(reset ? "reset" : "uninstall", r1[QPD], r1[LEG]);
	rq = r1[QPD];
	if (rq != (known(id) ? 0 : -ENOENT))
		die("rc %d for plugin %" PRIu64 " (known %d)", rq, id,
		    known(id));
	expect_none(&x);
	if (rq == 0 && with_done) {
		expect_done(&x, QPD, id, arg);
		expect_done(&x, LEG, id, arg);
	}
	if (twice && rq == 0) {
		again_rc(reset, again, want);
		for (int be = 0; be < 2; be++) {
			if (r2[be] != want[be])
				die("%s then %s: %s returned %d, expected %d",
				    reset ? "reset" : "uninstall", aname[again],
				    be == QPD ? "qpd" : "legacy", r2[be],
				    want[be]);
			if (r2[be] == 0 && again <= AGAIN_RESET)
				expect_done(&x, be, id, arg ^ 2);
		}
		F.err_skew += (want[LEG] != 0) - (want[QPD] != 0);
		F.done_skew += (again <= AGAIN_RESET && want[LEG] == 0) -
			       (again <= AGAIN_RESET && want[QPD] == 0);
		if (again == AGAIN_FOREACH && r2[QPD] == 0 && r2[LEG] == 0 &&
		    fe_digest(QPD) != fe_digest(LEG))
			die("for_each visited different vCPUs");
	}
	F.need_settle = true;
	settle();
	check_call(&x);
	if (rq != 0)
		return;
	shadow_remove_all(id);
	if (!reset || (twice && again == AGAIN_UNINSTALL))
		F.p[id].live = false;
	if (twice && again == AGAIN_REGISTER && r2[QPD] == 0)
		shadow_reg(id, ev, ud & 1, ud);
}

static void
op_register(struct rd *r, bool unreg)
{
	qpd_plugin_id id = pick_plugin(r);
	unsigned ev = u8(r) % (NEV + 1);
	unsigned var = unreg ? 0 : u8(r) & 1;
	unsigned ud = unreg ? 0 : u16(r);
	void *fn = unreg ? NULL : cb_fn(ev, var);
	int rq, rl, want;
	struct expect x;

	trace("register(plugin %" PRIu64 ", %s, %s, udata %#x)", id,
	      EVNAME[ev < NEV ? ev : NEV], unreg ? "NULL" : var ? "fn1" : "fn0",
	      ud);
	F.backend = QPD;
	rq = do_register(QPD, id, ev, fn, (void *)(uintptr_t)ud);
	F.backend = LEG;
	rl = do_register(LEG, id, ev, fn, (void *)(uintptr_t)ud);
	same_rc("register", rq, rl);
	want = ev >= NEV ? -EINVAL : known(id) ? 0 : -ENOENT;
	if (rq != want)
		die("register returned %d, expected %d", rq, want);
	expect_none(&x);
	check_call(&x);
	if (rq != 0)
		return;
	if (unreg)
		shadow_unreg(id, ev);
	else
		shadow_reg(id, ev, var, ud);
}

static void
op_init_exit(struct rd *r, bool init)
{
	unsigned k = pick_idx(r), v = IDX[k];
	int rq, rl, want;
	struct expect x;

	need_no_slice();
	trace("vcpu_%s(%u)", init ? "init" : "exit", v);
	want = v >= F.maxv ? -EINVAL
	       : init ? (F.online[k] ? -EEXIST : 0)
		      : (F.online[k] ? 0 : -ENOENT);
	if (want == 0)
		expect_walk(&x, init ? QPD_EV_VCPU_INIT : QPD_EV_VCPU_EXIT, v,
			    0, 0, 0);
	else
		expect_none(&x);
	F.actions_on = true;
	F.backend = QPD;
	rq = init ? qpd_vcpu_init(F.q, v) : qpd_vcpu_exit(F.q, v);
	F.backend = LEG;
	rl = init ? legacy_vcpu_init(F.l, v) : legacy_vcpu_exit(F.l, v);
	same_rc(init ? "vcpu_init" : "vcpu_exit", rq, rl);
	if (rq != want)
		die("returned %d, expected %d", rq, want);
	if (rq == 0) {
		F.online[k] = init;
		if (init) {
			F.ever[k] = true;
			if (v >= F.num_vcpus)
				F.num_vcpus = v + 1;
			while (v >= F.alloc)
				F.alloc *= 2;
		}
	}
	F.need_settle = true;
	settle();
	check_call(&x);
	F.actions_on = false;
	if (init && rq == 0)
		sb_compare(-1);
}

static void
op_idle_resume(struct rd *r, bool idle)
{
	unsigned k = pick_idx(r), v = IDX[k];
	unsigned ev = idle ? QPD_EV_VCPU_IDLE : QPD_EV_VCPU_RESUME;
	struct expect x;

	trace("vcpu_%s(%u)%s", idle ? "idle" : "resume", v,
	      in_slice() ? " in a slice" : "");
	expect_walk(&x, ev, v, 0, 0, 0);
	if (!F.online[k])
		x.n[QPD] = 0; /* qpd: offline vCPUs are ignored */
	if (!(F.ever[k] && v < F.num_vcpus))
		x.n[LEG] = 0; /* legacy: D7 */
	F.actions_on = x.n[QPD] == x.n[LEG];
	F.backend = QPD;
	if (idle)
		qpd_vcpu_idle(F.q, v);
	else
		qpd_vcpu_resume(F.q, v);
	F.backend = LEG;
	if (idle)
		legacy_vcpu_idle(F.l, v);
	else
		legacy_vcpu_resume(F.l, v);
	settle();
	check_call(&x);
	F.actions_on = false;
}

/* D3: an event whose list was empty at legacy's last drain. */
static bool
stale(unsigned ev)
{
	return (F.lmask & UINT64_C(1) << ev) == 0 && F.nlorder[ev] != 0;
}

/* Dispatches a per-vCPU event on backend be; the filter's result. */
static bool
dispatch(int be, enum op op, unsigned v, uint64_t a, uint64_t b, uint64_t c,
	 uint64_t *sysret)
{
	bool q = be == QPD;

	F.backend = be;
	switch (op) {
	case OP_TB:
		if (q)
			qpd_tb_trans(F.q, v, (void *)(uintptr_t)a);
		else
			legacy_tb_trans(F.l, v, (void *)(uintptr_t)a);
		break;
	case OP_SYSCALL:
		if (q)
			qpd_syscall(F.q, v, (int64_t)a, F.args);
		else
			legacy_syscall(F.l, v, (int64_t)a, F.args);
		break;
	case OP_SYSRET:
		if (q)
			qpd_syscall_ret(F.q, v, (int64_t)a, (int64_t)b);
		else
			legacy_syscall_ret(F.l, v, (int64_t)a, (int64_t)b);
		break;
	case OP_FILTER:
		return q ? qpd_syscall_filter(F.q, v, (int64_t)a, F.args, sysret)
			 : legacy_syscall_filter(F.l, v, (int64_t)a, F.args,
						 sysret);
	default: /* a is the discontinuity's type */
		if (q)
			qpd_discon(F.q, v, (enum qpd_discon_type)a, b, c);
		else
			legacy_discon(F.l, v, (enum qpd_discon_type)a, b, c);
		break;
	}
	return false;
}

static void
op_vcpu_event(struct rd *r, enum op op)
{
	static const unsigned dtype[] = { QPD_DISCON_INTERRUPT,
					  QPD_DISCON_EXCEPTION,
					  QPD_DISCON_HOSTCALL, 0, 3, 8 };
	unsigned v, ev, t = 0;
	uint64_t a = 0, b = 0, c = 0, sysret = 0, sq = 0, sl = 0;
	bool rq = false, rl = false;
	struct expect x;

	if (!need_slice())
		return;
	v = cur_vcpu();
	switch (op) {
	case OP_TB:
		ev = QPD_EV_VCPU_TB_TRANS;
		a = val64(r);
		trace("tb_trans(vcpu %u, tb %#" PRIx64 ")", v, a);
		break;
	case OP_SYSCALL:
		ev = QPD_EV_VCPU_SYSCALL;
		a = val64(r);
		for (unsigned i = 0; i < 8; i++)
			F.args[i] = a * (i + 1) + i;
		b = F.args[0] ^ F.args[7];
		c = 1;
		trace("syscall(vcpu %u, num %#" PRIx64 ")", v, a);
		break;
	case OP_SYSRET:
		ev = QPD_EV_VCPU_SYSCALL_RET;
		a = val64(r);
		b = val64(r);
		trace("syscall_ret(vcpu %u, num %#" PRIx64 ", ret %#" PRIx64
		      ")", v, a, b);
		break;
	case OP_FILTER:
		ev = QPD_EV_VCPU_SYSCALL_FILTER;
		a = val64(r);
		sysret = val64(r);
		for (unsigned i = 0; i < 8; i++)
			F.args[i] = a + i;
		b = sysret;
		c = 1;
		trace("syscall_filter(vcpu %u, num %#" PRIx64 ", sysret %#"
		      PRIx64 ")", v, a, sysret);
		break;
	default:
		t = dtype[u8(r) % 6];
		a = t;
		b = val64(r);
		c = val64(r);
		ev = qpd_discon_event((enum qpd_discon_type)t);
		trace("discon(vcpu %u, type %u, from %#" PRIx64 ", to %#"
		      PRIx64 ")", v, t, b, c);
		break;
	}
	if (ev == QPD_EV_COUNT) {
		expect_none(&x);
	} else {
		expect_walk(&x, ev, v, a, b, c);
		if (ev != QPD_EV_VCPU_INTERRUPT && ev != QPD_EV_VCPU_EXCEPTION &&
		    ev != QPD_EV_VCPU_HOSTCALL && stale(ev)) {
			x.n[LEG] = 0; /* D3 */
			tot_stale++;
			note("(legacy's mask copy lacks %s)", EVNAME[ev]);
		}
		if (ev == QPD_EV_VCPU_SYSCALL_FILTER) {
			x.n[QPD] = cut_at_claim(x.w[QPD], x.n[QPD]); /* D2 */
			x.n[LEG] = cut_at_claim(x.w[LEG], x.n[LEG]);
		}
	}
	F.actions_on = ev != QPD_EV_VCPU_SYSCALL_FILTER && ev != QPD_EV_COUNT &&
		       x.n[QPD] == x.n[LEG];
	sq = sl = sysret;
	rq = dispatch(QPD, op, v, a, b, c, &sq);
	rl = dispatch(LEG, op, v, a, b, c, &sl);
	settle();
	check_call(&x);
	F.actions_on = false;
	if (op == OP_FILTER) {
		for (int be = 0; be < 2; be++) {
			const struct want *w = x.w[be];
			unsigned n = x.n[be];
			bool claimed = n != 0 && w[n - 1].var == 1;
			uint64_t want = claimed ? w[n - 1].ud + 0x10000u
						: sysret;
			bool got = be == QPD ? rq : rl;
			uint64_t gs = be == QPD ? sq : sl;

			if (got != claimed || gs != want)
				die("%s filter returned %d sysret %#" PRIx64
				    ", expected %d %#" PRIx64,
				    be == QPD ? "qpd" : "legacy", got, gs,
				    claimed, want);
		}
	}
}

static void
op_flush(void)
{
	struct expect x;

	trace("flush()%s", in_slice() ? " in a slice" : "");
	expect_walk(&x, QPD_EV_FLUSH, 0, 0, 0, 0);
	F.actions_on = true;
	F.backend = QPD;
	qpd_flush(F.q);
	/* qpd retired every list: translate them again (D5). */
	for (unsigned i = 0; i < MAXL; i++)
		if (F.li[i].live)
			list_build(QPD, &F.li[i]);
	F.backend = LEG;
	F.lg_flush_explicit = true;
	legacy_flush(F.l);
	F.need_settle = true;
	settle();
	check_call(&x);
	F.actions_on = false;
}

static void
op_atexit(bool user_exit)
{
	struct expect x;
	int rq = 0, rl = 0;

	need_no_slice();
	trace("%s()", user_exit ? "user_exit" : "atexit");
	if (user_exit) {
		/* Both drop every callback but ATEXIT first. */
		for (qpd_plugin_id id = 1; id <= F.nplug; id++)
			for (unsigned ev = 0; ev < NEV; ev++)
				if (ev != QPD_EV_ATEXIT)
					shadow_unreg(id, ev);
	}
	if (F.atexit_ran)
		expect_none(&x);
	else
		expect_walk(&x, QPD_EV_ATEXIT, 0, 0, 0, 0);
	F.atexit_ran = true;
	F.actions_on = true;
	F.backend = QPD;
	if (user_exit)
		rq = qpd_user_exit(F.q);
	else
		qpd_atexit(F.q);
	F.backend = LEG;
	if (user_exit)
		rl = legacy_user_exit(F.l);
	else
		legacy_atexit(F.l);
	same_rc("user_exit", rq, rl);
	if (rq != 0)
		die("user_exit returned %d", rq);
	F.need_settle = true;
	settle();
	check_call(&x);
	F.actions_on = false;
}

static void
op_foreach(struct rd *r)
{
	qpd_plugin_id id = pick_plugin(r);
	bool null_cb = (u8(r) & 7) == 0;
	unsigned want[NIDX], n = 0;
	int rq, rl;

	trace("for_each(plugin %" PRIu64 ", %s)", id, null_cb ? "NULL" : "cb");
	F.backend = QPD;
	rq = do_for_each(QPD, id, null_cb);
	F.backend = LEG;
	rl = do_for_each(LEG, id, null_cb);
	same_rc("for_each", rq, rl);
	if (rq != (null_cb ? -EINVAL : known(id) ? 0 : -ENOENT))
		die("for_each returned %d", rq);
	if (rq != 0)
		return;
	for (unsigned k = 0; k < NIDX; k++)
		if (F.online[k])
			want[n++] = IDX[k];
	/* qpd visits in index order; legacy in hash order (D8). */
	if (F.fe_n[QPD] != n || F.fe_n[LEG] != n)
		die("for_each visited %u (qpd) and %u (legacy) vCPUs, %u online",
		    F.fe_n[QPD], F.fe_n[LEG], n);
	for (unsigned i = 0; i < n; i++) {
		bool found = false;

		if (F.fe[QPD][i] != want[i])
			die("qpd for_each visit %u: vCPU %u, expected %u", i,
			    F.fe[QPD][i], want[i]);
		for (unsigned j = 0; j < n; j++)
			found |= F.fe[LEG][j] == want[i];
		if (!found)
			die("legacy for_each missed vCPU %u", want[i]);
	}
}

static void
op_sb_new(struct rd *r)
{
	static const unsigned size[] = { 8, 16, 24, 64, 128, 264, MAXSB_BYTES,
					 0, QPD_SCOREBOARD_MAX_ELEM + 1 };
	unsigned sz = size[u8(r) % 9], k;
	struct sb *s = NULL;

	for (k = 0; k < MAXSB && s == NULL; k++)
		if (!F.sb[k].live)
			s = &F.sb[k];
	if (s == NULL)
		return;
	trace("scoreboard_new(%u) -> slot %d", sz, (int)(s - F.sb));
	F.backend = QPD;
	s->q = qpd_scoreboard_new(F.q, sz);
	F.backend = LEG;
	s->l = legacy_scoreboard_new(F.l, sz);
	if ((s->q == NULL) != (s->l == NULL))
		die("scoreboard_new(%u): qpd %p, legacy %p", sz, (void *)s->q,
		    (void *)s->l);
	if ((s->q == NULL) != (sz == 0 || sz > QPD_SCOREBOARD_MAX_ELEM))
		die("scoreboard_new(%u) %s", sz, s->q ? "succeeded" : "failed");
	F.freed = NULL;
	if (s->q == NULL)
		return;
	s->size = sz;
	s->live = true;
	sb_compare(-1);
}

static void
op_sb_free(struct rd *r)
{
	unsigned k = u8(r) % (MAXSB + 2);
	struct sb *s;
	int rq, rl;

	if (k == MAXSB) {
		trace("scoreboard_free(NULL)");
		F.backend = QPD;
		rq = qpd_scoreboard_free(F.q, NULL);
		F.backend = LEG;
		rl = legacy_scoreboard_free(F.l, NULL);
		same_rc("scoreboard_free(NULL)", rq, rl);
		if (rq != -EINVAL)
			die("scoreboard_free(NULL) returned %d", rq);
		return;
	}
	if (k == MAXSB + 1) {
		/* A double free, while no scoreboard has been created since. */
		if (F.freed == NULL)
			return;
		trace("scoreboard_free(freed slot %d)", (int)(F.freed - F.sb));
		F.backend = QPD;
		rq = qpd_scoreboard_free(F.q, F.freed->q);
		F.backend = LEG;
		rl = legacy_scoreboard_free(F.l, F.freed->l);
		same_rc("double scoreboard_free", rq, rl);
		if (rq != -ENOENT)
			die("double scoreboard_free returned %d", rq);
		return;
	}
	s = &F.sb[k];
	if (!s->live)
		return;
	trace("scoreboard_free(slot %u)", k);
	/* Lists that count into it may not run again: retire them. */
	for (unsigned i = 0; i < MAXL; i++) {
		struct list *li = &F.li[i];
		bool uses = false;

		for (unsigned j = 0; j < li->n; j++)
			uses |= li->e[j].sb == (int8_t)k;
		if (!li->live || !uses)
			continue;
		note("(list %u retired with it)", i);
		F.backend = QPD;
		if (qpd_dyn_retire(F.q, li->q) != 0)
			die("qpd_dyn_retire of a live list failed");
		li->live = false;
	}
	F.backend = QPD;
	rq = qpd_scoreboard_free(F.q, s->q);
	F.backend = LEG;
	rl = legacy_scoreboard_free(F.l, s->l);
	same_rc("scoreboard_free", rq, rl);
	if (rq != 0)
		die("scoreboard_free returned %d", rq);
	s->live = false;
	F.freed = s;
	F.need_settle = true;
	settle();
}

static void
op_u64(struct rd *r, enum op op)
{
	int k = pick_sb(r);
	unsigned o = u8(r), kv = pick_idx(r), v = IDX[kv];
	uint64_t val = op == OP_U64_SET || op == OP_INLINE_ADD ? val64(r) : 0;
	struct sb *s;
	qpd_u64 eq;
	legacy_u64 el;
	uint64_t gq, gl;

	if (k < 0)
		return;
	s = &F.sb[k];
	o = o % (s->size / 8) * 8;
	eq = (qpd_u64){ s->q, o };
	el = (legacy_u64){ s->l, o };
	switch (op) {
	case OP_U64_GET:
		if (!sb_index_ok(v))
			return;
		trace("u64_get(slot %d, offset %u, vcpu %u)", k, o, v);
		gq = qpd_u64_get(eq, v);
		gl = legacy_u64_get(el, v);
		break;
	case OP_U64_SET:
		/*
		 * qpd zeroes a freed scoreboard's slots only below the highest
		 * vCPU index initialised (or passed to scoreboard_find), so a
		 * store past num_vcpus survives into the next scoreboard given
		 * the same column.  QEMU allows indices below num_vcpus only;
		 * FUZZ_DIFF_SET_ANY=1 stores anywhere below D9's limit.
		 */
		if (!sb_index_ok(v) || (v >= F.num_vcpus && !F.set_any))
			return;
		trace("u64_set(slot %d, offset %u, vcpu %u, %#" PRIx64 ")", k,
		      o, v, val);
		qpd_u64_set(eq, v, val);
		legacy_u64_set(el, v, val);
		gq = qpd_u64_get(eq, v);
		gl = legacy_u64_get(el, v);
		break;
	case OP_U64_SUM:
		trace("u64_sum(slot %d, offset %u)", k, o);
		gq = qpd_u64_sum(eq);
		gl = legacy_u64_sum(el);
		break;
	default:
		if (!need_slice())
			return;
		v = cur_vcpu();
		kv = (unsigned)F.cur;
		trace("inline_add_u64(slot %d, offset %u, vcpu %u, %#" PRIx64
		      ")", k, o, v, val);
		qpd_inline_add_u64(eq, v, val);
		legacy_inline_add_u64(el, v, val);
		gq = qpd_u64_get(eq, v);
		gl = legacy_u64_get(el, v);
		break;
	}
	if (gq != gl)
		die("counter: qpd %#" PRIx64 ", legacy %#" PRIx64, gq, gl);
	if (op != OP_U64_GET && op != OP_U64_SUM)
		sb_compare((int)kv);
}

static void
op_dyn_new(void)
{
	struct list *li = NULL;

	for (unsigned i = 0; i < MAXL && li == NULL; i++)
		if (!F.li[i].live)
			li = &F.li[i];
	if (li == NULL)
		return;
	trace("dyn_new() -> list %d", (int)(li - F.li));
	li->n = 0;
	F.backend = QPD;
	li->q = qpd_dyn_new(F.q);
	F.backend = LEG;
	li->l = legacy_dyn_new(F.l);
	if (li->q == NULL || li->l == NULL)
		die("dyn_new: qpd %p, legacy %p", (void *)li->q, (void *)li->l);
	li->live = true;
}

static struct list *
pick_list(struct rd *r)
{
	struct list *li = &F.li[u8(r) % MAXL];

	return li->live ? li : NULL;
}

static void
op_dyn_add(struct rd *r)
{
	static const char *const kname[] = { "cb", "inline", "cond_cb",
					     "mem_cb", "mem_inline" };
	struct list *li = pick_list(r), none = { .q = NULL, .l = NULL };
	struct dent d = { 0 };
	unsigned b;
	int rq, rl;

	if (li != NULL && li->n == MAXE)
		return;
	d.kind = (uint8_t)(u8(r) % D_KINDS);
	b = u8(r);
	d.var = b % 8 == 7 ? 2 : b & 1;     /* 2: a NULL function */
	d.op = (b >> 3) % 8 == 7 ? 2 : (b >> 3) & 1; /* 2: a bad op */
	d.rw = (uint8_t)((b >> 6) == 0 ? 3 : b >> 6);
	b = u8(r);
	d.cond = (uint8_t)(b % 9);          /* 8 is not a condition */
	if ((b >> 4) == 15)
		d.rw = (b & 1) ? 0 : 4;     /* not an access kind */
	d.ud = (uint16_t)u16(r);
	d.sb = (int8_t)pick_sb(r);
	b = u8(r);
	if (d.sb >= 0)
		d.off = b < 192 ? b % (F.sb[d.sb].size / 8) * 8
				: (b - 192) * 7;  /* misaligned or outside */
	d.imm = val64(r);
	bool bad_ref = d.sb < 0 || d.off % 8 != 0 ||
		       d.off + 8 > F.sb[d.sb].size;
	if (d.kind == D_COND && d.cond == QPD_COND_ALWAYS && bad_ref &&
	    d.var != 2)
		return; /* D10: the two designs disagree on what it adds */
	if ((d.kind == D_INLINE || d.kind == D_MEM_INLINE) && bad_ref &&
	    d.sb >= 0 && d.off + 8 <= qpd_slot_size(F.sb[d.sb].q))
		return; /* D11: only qpd takes this counter */
	trace("dyn_add_%s(list %d, var %u, op %u, cond %u, rw %u, sb %d, "
	      "offset %u, imm %#" PRIx64 ", udata %#x)", kname[d.kind],
	      li ? (int)(li - F.li) : -1, d.var, d.op, d.cond, d.rw, d.sb,
	      d.off, d.imm, d.ud);
	if (li == NULL) {
		/* A list slot not in use: both refuse a NULL list. */
		rq = dent_add(QPD, &none, &d);
		rl = dent_add(LEG, &none, &d);
		same_rc("dyn_add to a NULL list", rq, rl);
		if (rq != -EINVAL)
			die("dyn_add to a NULL list returned %d", rq);
		return;
	}
	F.backend = QPD;
	rq = dent_add(QPD, li, &d);
	F.backend = LEG;
	rl = dent_add(LEG, li, &d);
	if (d.kind == D_COND && d.cond == QPD_COND_NEVER && d.var != 2 &&
	    bad_ref) {
		/* D10: qpd does not look at the reference of a NEVER. */
		if (rq != 0 || rl != -EINVAL)
			die("cond NEVER with a bad reference: qpd %d, legacy %d"
			    " (expected 0, -EINVAL)", rq, rl);
		F.err_skew++;
		return;
	}
	same_rc("dyn_add", rq, rl);
	if (rq == 0)
		li->e[li->n++] = d;
}

/* D6: the calls of a stopping walk, from the recipe. */
static unsigned
mem_prefix(const struct list *li, unsigned rw)
{
	unsigned n = 0;

	for (unsigned i = 0; i < li->n; i++) {
		const struct dent *d = &li->e[i];
		bool mem = d->kind == D_MEM_CB || d->kind == D_MEM_INLINE;

		if (d->kind == D_COND && d->cond == QPD_COND_NEVER)
			continue; /* added nothing */
		if (!mem || (d->rw & rw) == 0)
			break;
		n += d->kind == D_MEM_CB;
	}
	return n;
}

static void
op_dyn_exec(struct rd *r, bool mem)
{
	struct list *li = pick_list(r);
	unsigned rw = u8(r) % 3 + 1;
	uint32_t meminfo = (uint32_t)val64(r);
	uint64_t vaddr = mem ? val64(r) : 0;
	static unsigned char save[MAXSB][MAXSB_BYTES];
	struct rec pre[SEGMAX];
	unsigned npre, want, v;
	struct expect x;

	if (li == NULL || !need_slice())
		return;
	v = cur_vcpu();
	if (!mem) {
		trace("dyn_exec(list %d, vcpu %u)", (int)(li - F.li), v);
		F.backend = QPD;
		qpd_dyn_exec(li->q, v);
		F.backend = LEG;
		legacy_dyn_exec(li->l, v);
	} else {
		trace("dyn_exec_mem(list %d, vcpu %u, vaddr %#" PRIx64
		      ", meminfo %#x, rw %u)", (int)(li - F.li), v, vaddr,
		      meminfo, rw);
		F.backend = QPD;
		qpd_dyn_exec_mem(li->q, v, vaddr, meminfo,
				 (enum qpd_mem_rw)rw);
		/* D6: the stopping walk first, its effects undone. */
		F.backend = LEG;
		for (unsigned k = 0; k < MAXSB; k++)
			if (F.sb[k].live)
				memcpy(save[k],
				       legacy_scoreboard_find(F.sb[k].l, v),
				       F.sb[k].size);
		legacy_set_mem_break(F.l, true);
		legacy_dyn_exec_mem(li->l, v, vaddr, meminfo,
				    (enum qpd_mem_rw)rw);
		legacy_set_mem_break(F.l, false);
		npre = F.log[LEG].n;
		memcpy(pre, F.log[LEG].r, npre * sizeof(pre[0]));
		F.log[LEG].n = 0;
		for (unsigned k = 0; k < MAXSB; k++)
			if (F.sb[k].live)
				memcpy(legacy_scoreboard_find(F.sb[k].l, v),
				       save[k], F.sb[k].size);
		legacy_dyn_exec_mem(li->l, v, vaddr, meminfo,
				    (enum qpd_mem_rw)rw);
		want = mem_prefix(li, rw);
		bool prefix = npre == want && npre <= F.log[LEG].n;

		for (unsigned i = 0; prefix && i < npre; i++)
			prefix = rec_eq(&pre[i], &F.log[LEG].r[i]);
		if (!prefix)
			die("legacy's stopping walk made %u call(s), expected "
			    "the first %u of the %u of the full walk", npre,
			    want, F.log[LEG].n);
	}
	expect_none(&x);
	check_call(&x);
	sb_compare(F.cur);
}

static void
op_dyn_drop(struct rd *r)
{
	struct list *li = pick_list(r);

	if (li == NULL)
		return;
	/* A block invalidated alone: qpd retires its list, legacy keeps
	 * its own until the next flush, as QEMU 9.0 does. */
	trace("dyn_retire(list %d)", (int)(li - F.li));
	F.backend = QPD;
	if (qpd_dyn_retire(F.q, li->q) != 0)
		die("qpd_dyn_retire of a live list failed");
	li->live = false;
}

static void
run_op(struct rd *r)
{
	enum op op = (enum op)(u8(r) % OP_COUNT);
	struct expect x;
	qpd_plugin_id iq = 0, il = 0;
	int rq, rl;

	F.log[QPD].n = F.log[LEG].n = 0;
	snprintf(F.opdesc, sizeof(F.opdesc), "op %d", (int)op);
	switch (op) {
	case OP_ADD:
		if (F.nplug == MAXP)
			break;
		trace("plugin_add()");
		F.backend = QPD;
		rq = qpd_plugin_add(F.q, &iq);
		F.backend = LEG;
		rl = legacy_plugin_add(F.l, &il);
		same_rc("plugin_add", rq, rl);
		if (rq != 0 || iq != il || iq != F.nplug + 1)
			die("plugin_add: ids %" PRIu64 " and %" PRIu64, iq, il);
		F.nplug++;
		memset(&F.p[iq], 0, sizeof(F.p[iq]));
		F.p[iq].live = true;
		break;
	case OP_UNINSTALL:
	case OP_RESET:
		op_retire(r, op == OP_RESET, false);
		break;
	case OP_RETIRE2: {
		bool reset = u8(r) & 1;

		op_retire(r, reset, true);
		break;
	}
	case OP_REG:
	case OP_UNREG:
		op_register(r, op == OP_UNREG);
		break;
	case OP_INIT:
	case OP_EXIT:
		op_init_exit(r, op == OP_INIT);
		break;
	case OP_ENTER: {
		unsigned k = pick_idx(r);

		need_no_slice();
		trace("enter(vcpu %u)", IDX[k]);
		enter_slice(k);
		expect_none(&x);
		check_call(&x);
		break;
	}
	case OP_LEAVE:
		if (in_slice())
			leave_slice();
		break;
	case OP_SAFEPOINT:
		if (!in_slice())
			break;
		trace("safepoint(vcpu %u)", cur_vcpu());
		F.backend = QPD;
		qpd_vcpu_quiescent(F.q, cur_vcpu());
		F.backend = LEG;
		legacy_vcpu_safepoint(F.l, cur_vcpu());
		F.lmask = nonempty_mask();
		expect_none(&x);
		check_call(&x);
		break;
	case OP_IDLE:
	case OP_RESUME:
		op_idle_resume(r, op == OP_IDLE);
		break;
	case OP_TB:
	case OP_SYSCALL:
	case OP_SYSRET:
	case OP_FILTER:
	case OP_DISCON:
		op_vcpu_event(r, op);
		break;
	case OP_FLUSH:
		op_flush();
		break;
	case OP_ATEXIT:
	case OP_USER_EXIT:
		op_atexit(op == OP_USER_EXIT);
		break;
	case OP_FOREACH:
		op_foreach(r);
		break;
	case OP_SB_NEW:
		op_sb_new(r);
		break;
	case OP_SB_FREE:
		op_sb_free(r);
		break;
	case OP_U64_GET:
	case OP_U64_SET:
	case OP_U64_SUM:
	case OP_INLINE_ADD:
		op_u64(r, op);
		break;
	case OP_DYN_NEW:
		op_dyn_new();
		break;
	case OP_DYN_ADD:
		op_dyn_add(r);
		break;
	case OP_DYN_EXEC:
	case OP_DYN_MEM:
		op_dyn_exec(r, op == OP_DYN_MEM);
		break;
	case OP_DYN_DROP:
		op_dyn_drop(r);
		break;
	case OP_CHECK:
		trace("check()");
		sb_compare(-1);
		stats_compare();
		break;
	case OP_COUNT:
		break;
	}
	if (F.log[QPD].n != 0 || F.log[LEG].n != 0) {
		/* Every op that makes records checks them itself. */
		expect_none(&x);
		check_call(&x);
	}
	if (F.lmask_sync && in_slice())
		F.lmask = nonempty_mask();
	F.lmask_sync = false;
	check_num_vcpus();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rd r = { data, size };
	struct qpd_config qc = { .no_reclaimer_thread = true };
	struct legacy_opts lo = { .on_flush = lg_on_flush };
	bool tr = getenv("FUZZ_DIFF_TRACE") != NULL;
	bool set_any = getenv("FUZZ_DIFF_SET_ANY") != NULL;

	memset(&F, 0, sizeof(F));
	F.trace = tr;
	F.set_any = set_any;
	F.cur = -1;
	F.alloc = LEGACY_SCOREBOARD_INITIAL;
	F.maxv = MAXV[u8(&r) % 4];
	qc.max_vcpus = lo.max_vcpus = F.maxv;
	F.q = qpd_new(&qc);
	F.l = legacy_new(&lo);
	if (F.q == NULL || F.l == NULL) {
		fprintf(stderr, "fuzz_diff: cannot create the instances\n");
		abort();
	}
	/* D6: compare against the walk that skips non-matching entries. */
	legacy_set_mem_break(F.l, false);
	if (F.trace)
		fprintf(stderr, "---- max_vcpus %u\n", F.maxv);
	while (r.n != 0 && F.op_no < MAXOPS) {
		F.op_no++;
		run_op(&r);
	}
	tot_ops += F.op_no;
	tot_implicit += F.n_implicit;
	if (in_slice())
		leave_slice();
	snprintf(F.opdesc, sizeof(F.opdesc), "end of input");
	sb_compare(-1);
	stats_compare();
	F.log[QPD].n = F.log[LEG].n = 0;
	/* Pending `done` hooks run in both frees; there must be none. */
	F.backend = QPD;
	qpd_free(F.q);
	F.backend = LEG;
	legacy_free(F.l);
	if (F.log[QPD].n != 0 || F.log[LEG].n != 0)
		die("the frees ran %u and %u callbacks", F.log[QPD].n,
		    F.log[LEG].n);
	return 0;
}

#ifndef FUZZ_DIFF_LIBFUZZER
/* Replays files, and the files of directories in name order, once each. */
static int
run_file(const char *path)
{
	static uint8_t buf[1 << 20];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL) {
		perror(path);
		return 1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (getenv("FUZZ_DIFF_TRACE") != NULL)
		fprintf(stderr, "==== %s (%zu bytes)\n", path, n);
	LLVMFuzzerTestOneInput(buf, n);
	return 0;
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
main(int argc, char **argv)
{
	unsigned files = 0;
	int err = 0;

	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		struct dirent *e;
		char **names = NULL;
		size_t n = 0, cap = 0;

		if (d == NULL) {
			err |= run_file(argv[i]);
			files++;
			continue;
		}
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				names = realloc(names, cap * sizeof(*names));
				if (names == NULL)
					abort();
			}
			names[n] = malloc(strlen(argv[i]) +
					  strlen(e->d_name) + 2);
			if (names[n] == NULL)
				abort();
			sprintf(names[n], "%s/%s", argv[i], e->d_name);
			n++;
		}
		closedir(d);
		qsort(names, n, sizeof(*names), cmp_name);
		for (size_t j = 0; j < n; j++) {
			err |= run_file(names[j]);
			files++;
			free(names[j]);
		}
		free(names);
	}
	printf("fuzz_diff: %u input(s), %" PRIu64 " calls, %" PRIu64
	       " callback actions, %" PRIu64 " stale-mask dispatches, %"
	       PRIu64 " implicit legacy flush callbacks: no mismatch\n",
	       files, tot_ops, tot_actions, tot_stale, tot_implicit);
	return err || files == 0;
}
#endif
