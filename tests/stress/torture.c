/*
 * torture: rcutorture-style reliability test of the whole library.
 *
 * R reader threads act as vCPUs.  Reader r owns vCPU r and holds it inside
 * execution slices, dispatching every event kind (tb_trans, syscall,
 * syscall_ret, syscall_filter, the three discontinuities, idle and resume
 * between slices, flush), passing quiescent points and executing dynamic
 * lists with qpd_dyn_exec and qpd_dyn_exec_mem.  W writer threads add
 * plugins, register, replace and unregister their callbacks, reset and
 * uninstall them, create and free scoreboards, bring extra vCPUs up and
 * down (init, a short slice, exit), append to lists the readers execute,
 * and flush.  Every check that fails counts one violation.
 *
 * What is checked, and how.
 *  - fn and udata belong together: each plugin owns two objects per event,
 *    variant 0 and 1; writers register (fn0, obj0) or (fn1, obj1), and a
 *    callback that gets the other variant's object saw a torn pair.  The
 *    object also names its plugin and event, and the dispatching thread
 *    notes the event, vCPU and arguments it dispatches: a callback must see
 *    exactly those.
 *  - nothing runs after `done`: uninstall and reset hand the plugin's
 *    objects to the `done` hook, which poisons them (and, under
 *    AddressSanitizer, frees them).  A callback reaching a poisoned object
 *    ran after its plugin's done.  Registrations after uninstall use an
 *    object that is poisoned from the start, and must be refused.
 *  - exact inline totals: each reader owns a private scoreboard that only it
 *    adds to, directly (qpd_inline_add_u64) and through inline entries of
 *    its own dynamic list, and keeps a model of its two counters, of the
 *    entries of its list (conditions included) and of how many list
 *    callbacks must run.  At every quiescent point qpd_u64_get must equal
 *    the model.  Writers churn other scoreboards: a fresh one must be zero
 *    everywhere, and writers fill slots of their own scoreboards with a
 *    pattern that must survive until they free them, so overlapping
 *    columns or missed zeroing show up on either side.
 *  - lists are never executed after they may have been freed.  qpd_flush()
 *    retires every list.  Flushes are serialised by flush_lock and bracket
 *    qpd_flush() with two increments of flush_gen (odd while a flush runs).
 *    A list is tagged with the (even) generation read before it was
 *    created.  A reader re-reads flush_gen after every quiescent point and
 *    every re-entry, and executes only lists whose tag equals it: a flush
 *    that retired a list before that point had already made flush_gen odd,
 *    and one that retires it later cannot free it before the reader's next
 *    quiescent point.  Writers append to their shared list and retire lists
 *    only while holding flush_lock, so no flush can free a list under them.
 *
 * Under AddressSanitizer every retired array, list and object is really
 * freed, so a use after free is reported at once.
 *
 * usage: torture [--readers R] [--writers W] [--seconds S] [--extra-vcpus N]
 * (N: vCPU indices above the readers' that writers bring up and down,
 * 512 by default, at most 8128).
 * Prints one SUMMARY line with the count of each operation and of
 * violations; exits 1 on any violation.  CI runs 8 readers and 4 writers
 * for 30 s (60 s in the sanitizer build); for a soak run use --seconds 600.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ck_stack.h>
#include <qpd.h>

#include "poison.h"
#define MAX_READERS 64
#define MAX_WRITERS 32
#define PLUGS_PER_WRITER 6
#define SBS_PER_WRITER 6
#define MAX_OWN_ENTRIES 40
#define MAX_SHARED_ENTRIES 200
#define STORE_CONST 0x5a5a5a5aULL
#define FILTER_RET(num) ((uint64_t)(num) * 0x9e3779b97f4a7c15ULL)
#define SYSRET_UNSET 0x1234567890abcdefULL

/* Operations counted for the SUMMARY line. */
#define OPS(X) \
	X(tb_trans) X(syscall) X(syscall_ret) X(syscall_filter) \
	X(filter_hits) X(discon_interrupt) X(discon_exception) \
	X(discon_hostcall) X(idle) X(resume) X(reader_flush) X(quiescent) \
	X(reenter) X(inline_add) X(dyn_exec) X(dyn_exec_mem) X(shared_exec) \
	X(shared_exec_mem) X(list_build) X(list_append) X(sb_recreate) \
	X(checkpoint) X(callbacks) X(dyn_callbacks) X(for_each) \
	X(plugin_add) X(register) X(replace) X(unregister) X(reset) \
	X(uninstall) X(refused) X(sb_new) X(sb_free) X(sb_full) \
	X(vcpu_init) X(vcpu_exit) X(writer_flush) X(shared_append) \
	X(shared_replace) X(done)

enum op {
#define X(name) OP_##name,
	OPS(X)
#undef X
	N_OPS
};

static const char *const op_names[N_OPS] = {
#define X(name) #name,
	OPS(X)
#undef X
};

/* One registration's user data: whose it is, for which event, which fn. */
struct cbobj {
	uint64_t magic;
	qpd_plugin_id id;
	unsigned variant;
	int ev;
};

/* Everything a plugin's callbacks may reach; handed to `done` whole. */
struct pset {
	struct cbobj o[2][QPD_EV_COUNT];
	ck_stack_entry_t grave; /* kept poisoned until the end (no ASan) */
};

CK_STACK_CONTAINER(struct pset, grave, pset_of_grave)

/* What the dispatching thread is doing: callbacks compare with it. */
struct tls {
	int ev;
	unsigned vcpu;
	int64_t num;
	const uint64_t *args;
	void *tb;
	uint64_t vaddr;
	uint32_t meminfo;
	uint64_t ops[N_OPS];
};

static _Thread_local struct tls tl;

static struct qpd *q;
static unsigned n_readers = 8, n_writers = 4, seconds = 10;
static unsigned n_extra = 512; /* extra vCPU indices, shared among writers */
static unsigned stop;
static uint64_t totals[N_OPS];
static uint64_t n_violations, n_done_expected;

/* Flushes: serialised, flush_gen odd while one runs (see the essay). */
static pthread_mutex_t flush_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t flush_gen;

/* A scoreboard nobody frees: offset 0 stays 0, offset 8 gets STORE_CONST. */
static struct qpd_scoreboard *gsb;

/* Each writer's shared list, published with a sequence count. */
static struct {
	unsigned seq;
	struct qpd_dyn *l;
	uint64_t gen;
} pub[MAX_WRITERS];

/* User data of shared-list callbacks. */
static struct shobj {
	uint64_t magic;
	unsigned variant;
} shobj[2] = { { ALIVE, 0 }, { ALIVE, 1 } };

/* Registered after uninstall: must never run. */
static struct cbobj zombie = { DEAD, 0, 0, -1 };

#ifndef FREE_ON_DONE
static ck_stack_t graveyard = CK_STACK_INITIALIZER;
#endif

static void
violation(const char *what)
{
	if (__atomic_fetch_add(&n_violations, 1, __ATOMIC_RELAXED) < 10)
		fprintf(stderr, "violation: %s\n", what);
}

static bool
stopped(void)
{
	return __atomic_load_n(&stop, __ATOMIC_ACQUIRE) != 0;
}

static uint64_t
rnd(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static uint64_t
gen_load(void)
{
	return __atomic_load_n(&flush_gen, __ATOMIC_SEQ_CST);
}

static void
tally_thread(void)
{
	for (unsigned i = 0; i < N_OPS; i++)
		__atomic_fetch_add(&totals[i], tl.ops[i], __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------
 * Plugin callbacks.
 */

static void fe_cb(qpd_plugin_id id, unsigned vcpu);

static void
check_obj(qpd_plugin_id id, const struct cbobj *o, unsigned variant, int ev)
{
	tl.ops[OP_callbacks]++;
	if (__atomic_load_n(&o->magic, __ATOMIC_ACQUIRE) != ALIVE) {
		violation("a callback reached its object after its plugin's done");
		return;
	}
	if (o->id != id)
		violation("a callback got another plugin's user data");
	if (o->variant != variant)
		violation("fn and udata of different registrations seen together");
	if (o->ev != ev || ev != tl.ev)
		violation("a callback ran for another event");
	/*
	 * Now and then, enumerate vCPUs from inside a callback: the plugin
	 * cannot be forgotten while one of its callbacks runs.
	 */
	if ((tl.ops[OP_callbacks] & 0xfff) == 0) {
		tl.ops[OP_for_each]++;
		if (qpd_vcpu_for_each(q, id, fe_cb) != 0)
			violation("for_each from a running callback failed");
	}
}

static void
fe_cb(qpd_plugin_id id, unsigned vcpu)
{
	(void)id;
	if (vcpu >= qpd_num_vcpus(q))
		violation("for_each visited an index past num_vcpus");
}

static void
vcpu_cb(qpd_plugin_id id, unsigned vcpu, void *udata, unsigned variant)
{
	check_obj(id, udata, variant, tl.ev);
	if (vcpu != tl.vcpu)
		violation("vCPU callback got another vCPU");
}

static void
tb_cb(qpd_plugin_id id, unsigned vcpu, void *tb, void *udata, unsigned var)
{
	check_obj(id, udata, var, QPD_EV_VCPU_TB_TRANS);
	if (vcpu != tl.vcpu || tb != tl.tb)
		violation("tb_trans callback got other arguments");
}

static void
sys_cb(qpd_plugin_id id, unsigned vcpu, int64_t num, const uint64_t *args,
       void *udata, unsigned var)
{
	check_obj(id, udata, var, QPD_EV_VCPU_SYSCALL);
	if (vcpu != tl.vcpu || num != tl.num || args != tl.args)
		violation("syscall callback got other arguments");
}

static void
sysret_cb(qpd_plugin_id id, unsigned vcpu, int64_t num, int64_t ret,
	  void *udata, unsigned var)
{
	check_obj(id, udata, var, QPD_EV_VCPU_SYSCALL_RET);
	if (vcpu != tl.vcpu || num != tl.num || ret != -tl.num)
		violation("syscall_ret callback got other arguments");
}

static bool
filter_cb(qpd_plugin_id id, unsigned vcpu, int64_t num, const uint64_t *args,
	  uint64_t *sysret, void *udata, unsigned var)
{
	check_obj(id, udata, var, QPD_EV_VCPU_SYSCALL_FILTER);
	if (vcpu != tl.vcpu || num != tl.num || args != tl.args)
		violation("syscall_filter callback got other arguments");
	if ((num & 63) != 63)
		return false;
	*sysret = FILTER_RET(num);
	return true;
}

static void
discon_cb(qpd_plugin_id id, unsigned vcpu, enum qpd_discon_type type,
	  uint64_t from, uint64_t to, void *udata, unsigned var)
{
	check_obj(id, udata, var, qpd_discon_event(type));
	if (vcpu != tl.vcpu || from != (uint64_t)tl.num || to != from + type)
		violation("discon callback got other arguments");
}

static void
simple_cb(qpd_plugin_id id, void *udata, unsigned var)
{
	check_obj(id, udata, var, tl.ev);
}

/* Two functions per signature: variant 0 and variant 1. */
#define VARIANTS(v) \
static void vcpu_cb##v(qpd_plugin_id id, unsigned vcpu, void *u) \
{ vcpu_cb(id, vcpu, u, v); } \
static void tb_cb##v(qpd_plugin_id id, unsigned vcpu, void *tb, void *u) \
{ tb_cb(id, vcpu, tb, u, v); } \
static void sys_cb##v(qpd_plugin_id id, unsigned vcpu, int64_t num, \
		      const uint64_t args[8], void *u) \
{ sys_cb(id, vcpu, num, args, u, v); } \
static void sysret_cb##v(qpd_plugin_id id, unsigned vcpu, int64_t num, \
			 int64_t ret, void *u) \
{ sysret_cb(id, vcpu, num, ret, u, v); } \
static bool filter_cb##v(qpd_plugin_id id, unsigned vcpu, int64_t num, \
			 const uint64_t args[8], uint64_t *sysret, void *u) \
{ return filter_cb(id, vcpu, num, args, sysret, u, v); } \
static void discon_cb##v(qpd_plugin_id id, unsigned vcpu, \
			 enum qpd_discon_type type, uint64_t from, \
			 uint64_t to, void *u) \
{ discon_cb(id, vcpu, type, from, to, u, v); } \
static void simple_cb##v(qpd_plugin_id id, void *u) \
{ simple_cb(id, u, v); }

VARIANTS(0)
VARIANTS(1)

static void *const fns[QPD_EV_COUNT][2] = {
	[QPD_EV_VCPU_INIT] = { vcpu_cb0, vcpu_cb1 },
	[QPD_EV_VCPU_EXIT] = { vcpu_cb0, vcpu_cb1 },
	[QPD_EV_VCPU_IDLE] = { vcpu_cb0, vcpu_cb1 },
	[QPD_EV_VCPU_RESUME] = { vcpu_cb0, vcpu_cb1 },
	[QPD_EV_VCPU_TB_TRANS] = { tb_cb0, tb_cb1 },
	[QPD_EV_VCPU_SYSCALL] = { sys_cb0, sys_cb1 },
	[QPD_EV_VCPU_SYSCALL_RET] = { sysret_cb0, sysret_cb1 },
	[QPD_EV_FLUSH] = { simple_cb0, simple_cb1 },
	[QPD_EV_ATEXIT] = { simple_cb0, simple_cb1 },
	[QPD_EV_VCPU_INTERRUPT] = { discon_cb0, discon_cb1 },
	[QPD_EV_VCPU_EXCEPTION] = { discon_cb0, discon_cb1 },
	[QPD_EV_VCPU_HOSTCALL] = { discon_cb0, discon_cb1 },
	[QPD_EV_VCPU_SYSCALL_FILTER] = { filter_cb0, filter_cb1 },
};

static struct pset *
pset_new(qpd_plugin_id id)
{
	struct pset *ps = calloc(1, sizeof(*ps));

	if (ps == NULL) {
		perror("calloc");
		exit(2);
	}
	for (unsigned v = 0; v < 2; v++) {
		for (int ev = 0; ev < QPD_EV_COUNT; ev++) {
			ps->o[v][ev] = (struct cbobj){ ALIVE, id, v, ev };
		}
	}
	return ps;
}

/* The done hook of uninstall and reset: the objects die here. */
static void
pset_done(qpd_plugin_id id, void *arg)
{
	struct pset *ps = arg;

	for (unsigned v = 0; v < 2; v++) {
		for (int ev = 0; ev < QPD_EV_COUNT; ev++) {
			if (ps->o[v][ev].id != id ||
			    ps->o[v][ev].magic != ALIVE)
				violation("done got a foreign or dead object");
			__atomic_store_n(&ps->o[v][ev].magic, DEAD,
					 __ATOMIC_RELEASE);
		}
	}
	__atomic_fetch_add(&totals[OP_done], 1, __ATOMIC_RELAXED);
#ifdef FREE_ON_DONE
	free(ps);
#else
	ck_stack_push_upmc(&graveyard, &ps->grave);
#endif
}

/* ------------------------------------------------------------------
 * Dispatch with the thread's expectations noted first.
 */

static void
dispatch_all(unsigned vcpu, uint64_t i)
{
	uint64_t args[8] = { i, 2, 3, 4, 5, 6, 7, 8 };
	uint64_t sysret = SYSRET_UNSET;
	bool hit;

	tl.vcpu = vcpu;
	tl.num = (int64_t)(i & 0xffffff);
	tl.args = args;
	tl.tb = &args[i & 7];

	tl.ev = QPD_EV_VCPU_TB_TRANS;
	qpd_tb_trans(q, vcpu, tl.tb);
	tl.ops[OP_tb_trans]++;

	tl.ev = QPD_EV_VCPU_SYSCALL_FILTER;
	hit = qpd_syscall_filter(q, vcpu, tl.num, args, &sysret);
	tl.ops[OP_syscall_filter]++;
	if (hit) {
		tl.ops[OP_filter_hits]++;
		if (sysret != FILTER_RET(tl.num))
			violation("filter returned true without its sysret");
	} else if (sysret != SYSRET_UNSET) {
		violation("no filter claimed the call but sysret changed");
	}

	tl.ev = QPD_EV_VCPU_SYSCALL;
	qpd_syscall(q, vcpu, tl.num, args);
	tl.ops[OP_syscall]++;

	tl.ev = QPD_EV_VCPU_SYSCALL_RET;
	qpd_syscall_ret(q, vcpu, tl.num, -tl.num);
	tl.ops[OP_syscall_ret]++;

	static const struct {
		enum qpd_discon_type type;
		enum op op;
	} dc[3] = {
		{ QPD_DISCON_INTERRUPT, OP_discon_interrupt },
		{ QPD_DISCON_EXCEPTION, OP_discon_exception },
		{ QPD_DISCON_HOSTCALL, OP_discon_hostcall },
	};
	unsigned k = (unsigned)(i % 3);

	tl.ev = qpd_discon_event(dc[k].type);
	qpd_discon(q, vcpu, dc[k].type, (uint64_t)tl.num,
		   (uint64_t)tl.num + dc[k].type);
	tl.ops[dc[k].op]++;
	tl.ev = -1;
}

static void
idle_resume(unsigned vcpu)
{
	tl.vcpu = vcpu;
	tl.ev = QPD_EV_VCPU_IDLE;
	qpd_vcpu_idle(q, vcpu);
	tl.ops[OP_idle]++;
	tl.ev = QPD_EV_VCPU_RESUME;
	qpd_vcpu_resume(q, vcpu);
	tl.ops[OP_resume]++;
	tl.ev = -1;
}

/* qpd_vcpu_init or qpd_vcpu_exit, with the INIT or EXIT callbacks noted. */
static int
vcpu_updown(unsigned vcpu, bool up)
{
	int err;

	tl.vcpu = vcpu;
	tl.ev = up ? QPD_EV_VCPU_INIT : QPD_EV_VCPU_EXIT;
	err = up ? qpd_vcpu_init(q, vcpu) : qpd_vcpu_exit(q, vcpu);
	tl.ev = -1;
	tl.ops[up ? OP_vcpu_init : OP_vcpu_exit]++;
	return err;
}

/* Any thread, inside a slice or not. */
static void
flush(enum op op)
{
	int saved = tl.ev;

	pthread_mutex_lock(&flush_lock);
	__atomic_store_n(&flush_gen, flush_gen + 1, __ATOMIC_SEQ_CST);
	tl.ev = QPD_EV_FLUSH;
	qpd_flush(q);
	tl.ev = saved;
	__atomic_store_n(&flush_gen, flush_gen + 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&flush_lock);
	tl.ops[op]++;
}

/* ------------------------------------------------------------------
 * Shared lists: written by their writer, executed by every reader.
 */

static void
sh_cb(unsigned vcpu, void *udata, unsigned variant)
{
	const struct shobj *o = udata;

	tl.ops[OP_dyn_callbacks]++;
	if (o->magic != ALIVE || o->variant != variant || vcpu != tl.vcpu)
		violation("shared-list callback got foreign arguments");
}

static void sh_cb0(unsigned vcpu, void *u) { sh_cb(vcpu, u, 0); }
static void sh_cb1(unsigned vcpu, void *u) { sh_cb(vcpu, u, 1); }

static void
sh_never(unsigned vcpu, void *udata)
{
	(void)vcpu, (void)udata;
	violation("a conditional callback ran although its condition is false");
}

static void
sh_mem_cb(unsigned vcpu, uint32_t meminfo, uint64_t vaddr, void *udata)
{
	tl.ops[OP_dyn_callbacks]++;
	if (udata != &shobj[0] || vcpu != tl.vcpu || meminfo != tl.meminfo ||
	    vaddr != tl.vaddr)
		violation("shared-list memory callback got foreign arguments");
}

static void
publish(unsigned w, struct qpd_dyn *l, uint64_t gen)
{
	unsigned s = pub[w].seq;

	__atomic_store_n(&pub[w].seq, s + 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&pub[w].l, l, __ATOMIC_SEQ_CST);
	__atomic_store_n(&pub[w].gen, gen, __ATOMIC_SEQ_CST);
	__atomic_store_n(&pub[w].seq, s + 2, __ATOMIC_SEQ_CST);
}

/* The writer's list if it is safe to execute in this segment, else NULL. */
static struct qpd_dyn *
shared_get(unsigned w, uint64_t gen)
{
	unsigned s1 = __atomic_load_n(&pub[w].seq, __ATOMIC_SEQ_CST);
	struct qpd_dyn *l = __atomic_load_n(&pub[w].l, __ATOMIC_SEQ_CST);
	uint64_t g = __atomic_load_n(&pub[w].gen, __ATOMIC_SEQ_CST);
	unsigned s2 = __atomic_load_n(&pub[w].seq, __ATOMIC_SEQ_CST);

	return (s1 & 1) == 0 && s1 == s2 && g == gen ? l : NULL;
}

/* Appends one random entry whose effect any reader can check. */
static void
shared_entry(struct qpd_dyn *l, uint64_t *rng)
{
	qpd_u64 zero = { gsb, 0 }, store = { gsb, 8 };
	uint64_t r = rnd(rng);
	unsigned v = (unsigned)(r >> 8) & 1;
	int err;

	switch (r % 6) {
	case 0:
		err = qpd_dyn_add_cb(l, v ? sh_cb1 : sh_cb0, &shobj[v]);
		break;
	case 1: /* zero == 0 holds: EQ 0, LE 0, GE 0 run; NE, LT, GT don't */
		switch ((r >> 16) % 6) {
		case 0: err = qpd_dyn_add_cond_cb(l, v ? sh_cb1 : sh_cb0,
						  &shobj[v], QPD_COND_EQ, zero, 0);
			break;
		case 1: err = qpd_dyn_add_cond_cb(l, v ? sh_cb1 : sh_cb0,
						  &shobj[v], QPD_COND_LE, zero, 0);
			break;
		case 2: err = qpd_dyn_add_cond_cb(l, v ? sh_cb1 : sh_cb0,
						  &shobj[v], QPD_COND_GE, zero, 0);
			break;
		case 3: err = qpd_dyn_add_cond_cb(l, sh_never, NULL,
						  QPD_COND_NE, zero, 0);
			break;
		case 4: err = qpd_dyn_add_cond_cb(l, sh_never, NULL,
						  QPD_COND_LT, zero, 0);
			break;
		default: err = qpd_dyn_add_cond_cb(l, sh_never, NULL,
						   QPD_COND_GT, zero, 0);
			break;
		}
		break;
	case 2:
		err = qpd_dyn_add_mem_cb(l, sh_mem_cb,
					 (enum qpd_mem_rw)(1 + (r >> 16) % 3),
					 &shobj[0]);
		break;
	case 3:
		err = qpd_dyn_add_inline(l, QPD_OP_STORE_U64, store,
					 STORE_CONST);
		break;
	case 4:
		err = qpd_dyn_add_mem_inline(l,
					     (enum qpd_mem_rw)(1 + (r >> 16) % 3),
					     QPD_OP_STORE_U64, store,
					     STORE_CONST);
		break;
	default:
		err = qpd_dyn_add_cond_cb(l, sh_never, NULL, QPD_COND_NEVER,
					  zero, 0);
		break;
	}
	if (err != 0)
		violation("appending to a shared list failed");
}

/* ------------------------------------------------------------------
 * Readers.
 */

/* The reader's copy of one entry of its own list. */
struct mirror {
	enum qpd_dyn_kind kind;
	enum qpd_inline_op op;
	enum qpd_cond cond;
	enum qpd_mem_rw rw;
	unsigned ci; /* which of the two counters */
	uint64_t imm;
};

struct reader {
	unsigned vcpu;
	uint64_t rng;
	struct qpd_scoreboard *sb;
	size_t elem;
	qpd_u64 c[2];
	uint64_t model[2];
	void *slot; /* qpd_scoreboard_find(sb, vcpu): must not move */
	struct qpd_dyn *list;
	uint64_t list_gen;
	struct mirror m[MAX_OWN_ENTRIES];
	unsigned n;
	uint64_t fired, fired_expected;
	struct qpd_dyn *shared[MAX_WRITERS];
	uint64_t n_checkpoints;
};

/* Independent of the library's own evaluation, on purpose. */
static bool
cond_model(enum qpd_cond c, uint64_t v, uint64_t imm)
{
	switch (c) {
	case QPD_COND_ALWAYS: return true;
	case QPD_COND_EQ: return v == imm;
	case QPD_COND_NE: return v != imm;
	case QPD_COND_LT: return v < imm;
	case QPD_COND_LE: return v <= imm;
	case QPD_COND_GT: return v > imm;
	case QPD_COND_GE: return v >= imm;
	default: return false;
	}
}

static void
own_cb(unsigned vcpu, void *udata)
{
	struct reader *r = udata;

	tl.ops[OP_dyn_callbacks]++;
	if (vcpu != r->vcpu || vcpu != tl.vcpu)
		violation("own-list callback got another vCPU or reader");
	r->fired++;
}

static void
own_mem_cb(unsigned vcpu, uint32_t meminfo, uint64_t vaddr, void *udata)
{
	struct reader *r = udata;

	tl.ops[OP_dyn_callbacks]++;
	if (vcpu != r->vcpu || meminfo != tl.meminfo || vaddr != tl.vaddr)
		violation("own-list memory callback got other arguments");
	r->fired++;
}

static void
apply(struct reader *r, const struct mirror *e)
{
	if (e->op == QPD_OP_ADD_U64)
		r->model[e->ci] += e->imm;
	else
		r->model[e->ci] = e->imm;
}

/* Appends a random entry to the reader's list and to its mirror. */
static void
own_append(struct reader *r)
{
	uint64_t x = rnd(&r->rng);
	struct mirror e = { .ci = (unsigned)(x >> 8) & 1,
			    .rw = (enum qpd_mem_rw)(1 + (x >> 12) % 3),
			    .op = (x >> 16) % 4 ? QPD_OP_ADD_U64
						: QPD_OP_STORE_U64 };
	qpd_u64 c;
	int err;

	e.imm = e.op == QPD_OP_ADD_U64 ? 1 + (x >> 20) % 7 : (x >> 20) % 1000;
	c = r->c[e.ci];
	switch (x % 5) {
	case 0:
		e.kind = QPD_DYN_CB;
		err = qpd_dyn_add_cb(r->list, own_cb, r);
		break;
	case 1:
		e.kind = QPD_DYN_INLINE;
		err = qpd_dyn_add_inline(r->list, e.op, c, e.imm);
		break;
	case 2:
		e.kind = QPD_DYN_COND_CB;
		e.cond = (enum qpd_cond)((x >> 24) % 8);
		/* Near the current value, so that both outcomes occur. */
		e.imm = r->model[e.ci] + (x >> 32) % 64 - 16;
		err = qpd_dyn_add_cond_cb(r->list, own_cb, r, e.cond, c, e.imm);
		if (e.cond == QPD_COND_NEVER)
			return; /* documented to add nothing */
		if (e.cond == QPD_COND_ALWAYS)
			e.kind = QPD_DYN_CB;
		break;
	case 3:
		e.kind = QPD_DYN_MEM_CB;
		err = qpd_dyn_add_mem_cb(r->list, own_mem_cb, e.rw, r);
		break;
	default:
		e.kind = QPD_DYN_MEM_INLINE;
		err = qpd_dyn_add_mem_inline(r->list, e.rw, e.op, c, e.imm);
		break;
	}
	if (err != 0) {
		violation("appending to an own list failed");
		return;
	}
	r->m[r->n++] = e;
	tl.ops[OP_list_append]++;
}

static void
own_build(struct reader *r, uint64_t gen)
{
	r->list = qpd_dyn_new(q);
	if (r->list == NULL) {
		violation("qpd_dyn_new failed");
		return;
	}
	r->list_gen = gen;
	r->n = 0;
	for (unsigned i = 0; i < 3; i++)
		own_append(r);
	tl.ops[OP_list_build]++;
}

static void
own_exec(struct reader *r)
{
	for (unsigned i = 0; i < r->n; i++) {
		const struct mirror *e = &r->m[i];

		if (e->kind == QPD_DYN_CB)
			r->fired_expected++;
		else if (e->kind == QPD_DYN_INLINE)
			apply(r, e);
		else if (e->kind == QPD_DYN_COND_CB &&
			 cond_model(e->cond, r->model[e->ci], e->imm))
			r->fired_expected++;
	}
	qpd_dyn_exec(r->list, r->vcpu);
	tl.ops[OP_dyn_exec]++;
}

static void
own_exec_mem(struct reader *r, enum qpd_mem_rw rw)
{
	for (unsigned i = 0; i < r->n; i++) {
		const struct mirror *e = &r->m[i];

		if ((e->rw & rw) == 0)
			continue;
		if (e->kind == QPD_DYN_MEM_CB)
			r->fired_expected++;
		else if (e->kind == QPD_DYN_MEM_INLINE)
			apply(r, e);
	}
	qpd_dyn_exec_mem(r->list, r->vcpu, tl.vaddr, tl.meminfo, rw);
	tl.ops[OP_dyn_exec_mem]++;
}

/*
 * After every quiescent point or re-entry: drop lists a flush may have
 * freed before it, rebuild, and pick the shared lists safe to execute.
 */
static void
revalidate(struct reader *r)
{
	uint64_t g = gen_load();

	if (r->list != NULL && r->list_gen != g)
		r->list = NULL; /* retired by a flush; freed after our slice */
	if (r->list == NULL && (g & 1) == 0)
		own_build(r, g);
	for (unsigned w = 0; w < n_writers; w++)
		r->shared[w] = (g & 1) == 0 ? shared_get(w, g) : NULL;
}

static bool
all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

/* A private scoreboard of 16 .. 520 bytes; NULL with errno on failure. */
static struct qpd_scoreboard *
private_scoreboard(struct reader *r, size_t *elem)
{
	*elem = 16 + 8 * (rnd(&r->rng) % 64);
	return qpd_scoreboard_new(q, *elem);
}

static void
make_scoreboard(struct reader *r, struct qpd_scoreboard *sb, size_t elem)
{
	size_t words = elem / 8;
	unsigned o0, o1;

	r->sb = sb;
	r->elem = elem;
	o0 = (unsigned)(rnd(&r->rng) % words);
	o1 = (unsigned)((o0 + 1 + rnd(&r->rng) % (words - 1)) % words);
	r->c[0] = (qpd_u64){ sb, 8 * o0 };
	r->c[1] = (qpd_u64){ sb, 8 * o1 };
	r->model[0] = r->model[1] = 0;
	r->slot = qpd_scoreboard_find(sb, r->vcpu);
	if (r->slot == NULL || !all_zero(r->slot, r->elem))
		violation("a new scoreboard's slot is missing or not zero");
}

/* Exact totals: only this reader writes its slots. */
static void
check_counters(struct reader *r)
{
	uint64_t v;
	unsigned other;

	tl.ops[OP_checkpoint]++;
	for (unsigned i = 0; i < 2; i++)
		if (qpd_u64_get(r->c[i], r->vcpu) != r->model[i])
			violation("a counter differs from the reader's model");
	if (r->fired != r->fired_expected)
		violation("list callbacks ran a wrong number of times");
	if (qpd_scoreboard_find(r->sb, r->vcpu) != r->slot)
		violation("a scoreboard slot moved");
	v = qpd_u64_get((qpd_u64){ gsb, 8 }, r->vcpu);
	if (qpd_u64_get((qpd_u64){ gsb, 0 }, r->vcpu) != 0 ||
	    (v != 0 && v != STORE_CONST))
		violation("shared-list inline stores hit the wrong counter");
	if ((++r->n_checkpoints & 15) != 0)
		return;
	/* Nobody else writes this column. */
	other = (unsigned)(rnd(&r->rng) % qpd_num_vcpus(q));
	if (other != r->vcpu &&
	    !all_zero(qpd_scoreboard_find(r->sb, other), r->elem))
		violation("another vCPU's slot of a private scoreboard changed");
	if ((r->n_checkpoints & 255) == 0 &&
	    (qpd_u64_sum(r->c[0]) != r->model[0] ||
	     qpd_u64_sum(r->c[1]) != r->model[1]))
		violation("a private counter's sum differs from the model");
}

/*
 * Replaces the reader's scoreboard (its list refers to it, so the list goes
 * first).  The old one is freed inside our slice: its column cannot be
 * reused before our next quiescent point, so a second free must say
 * -ENOENT and cannot hit anyone else's scoreboard.
 */
static void
recreate_scoreboard(struct reader *r)
{
	size_t elem;
	struct qpd_scoreboard *sb = private_scoreboard(r, &elem);

	if (sb == NULL) {
		if (errno != ENOMEM)
			violation("scoreboard_new failed other than ENOMEM");
		tl.ops[OP_sb_full]++;
		return;
	}
	pthread_mutex_lock(&flush_lock);
	if (r->list != NULL && gen_load() == r->list_gen) {
		if (qpd_dyn_retire(q, r->list) != 0)
			violation("retiring a live list failed");
		if (qpd_dyn_retire(q, r->list) != -ENOENT)
			violation("double retire of a list did not say ENOENT");
	}
	pthread_mutex_unlock(&flush_lock);
	r->list = NULL;
	if (qpd_scoreboard_free(q, r->sb) != 0)
		violation("freeing a live scoreboard failed");
	if (qpd_scoreboard_free(q, r->sb) != -ENOENT)
		violation("double free of a scoreboard did not say ENOENT");
	make_scoreboard(r, sb, elem);
	tl.ops[OP_sb_recreate]++;
	revalidate(r);
}

static void
enter(struct reader *r)
{
	if (!qpd_vcpu_enter(q, r->vcpu))
		violation("enter refused an online vCPU");
	revalidate(r);
}

static void
reader_step(struct reader *r, uint64_t i)
{
	uint64_t x = rnd(&r->rng);

	dispatch_all(r->vcpu, i);
	if (x & 1) {
		uint64_t imm = 1 + (x >> 1) % 5;
		unsigned ci = (unsigned)(x >> 8) & 1;

		qpd_inline_add_u64(r->c[ci], r->vcpu, imm);
		r->model[ci] += imm;
		tl.ops[OP_inline_add]++;
	}
	if (r->list != NULL) {
		if (x & 2) {
			own_exec(r);
		} else {
			tl.vaddr = x;
			tl.meminfo = (uint32_t)(x >> 32);
			own_exec_mem(r, (enum qpd_mem_rw)(1 + (x >> 16) % 3));
		}
		if (r->fired != r->fired_expected) {
			violation("list callbacks ran a wrong number of times");
			r->fired = r->fired_expected;
		}
		if ((x >> 20) % 97 == 0 && r->n < MAX_OWN_ENTRIES)
			own_append(r);
	}
	struct qpd_dyn *sl = r->shared[(x >> 24) % n_writers];

	if (sl != NULL) {
		tl.vaddr = x ^ 0x5555;
		tl.meminfo = (uint32_t)x;
		qpd_dyn_exec(sl, r->vcpu);
		qpd_dyn_exec_mem(sl, r->vcpu, tl.vaddr, tl.meminfo,
				 (enum qpd_mem_rw)(1 + (x >> 28) % 3));
		tl.ops[OP_shared_exec]++;
		tl.ops[OP_shared_exec_mem]++;
	}
}

static void *
reader(void *arg)
{
	struct reader *r = calloc(1, sizeof(*r));
	struct qpd_scoreboard *sb;
	size_t elem;
	uint64_t i = 0;

	r->vcpu = (unsigned)(uintptr_t)arg;
	r->rng = 0x9e3779b97f4a7c15ULL * (r->vcpu + 1);
	if (vcpu_updown(r->vcpu, true) != 0) {
		violation("reader vcpu init");
		return NULL;
	}
	sb = private_scoreboard(r, &elem);
	if (sb == NULL) {
		violation("reader scoreboard");
		return NULL;
	}
	make_scoreboard(r, sb, elem);
	enter(r);
	while (!stopped()) {
		uint64_t x;

		reader_step(r, ++i);
		if ((i & 63) != 0)
			continue;
		/* A quiescent point: the model must match exactly. */
		check_counters(r);
		qpd_vcpu_quiescent(q, r->vcpu);
		tl.ops[OP_quiescent]++;
		revalidate(r);
		x = rnd(&r->rng);
		if (x % 16 == 0) {
			qpd_vcpu_leave(q, r->vcpu);
			if (x % 64 == 0)
				idle_resume(r->vcpu);
			enter(r);
			tl.ops[OP_reenter]++;
		}
		if (x % 97 == 1)
			flush(OP_reader_flush);
		if (x % 331 == 2)
			recreate_scoreboard(r);
		if (x % 503 == 3) {
			if (qpd_vcpu_exit(q, r->vcpu) != -EBUSY)
				violation("exit inside a slice did not say EBUSY");
			if (qpd_vcpu_init(q, r->vcpu) != -EEXIST)
				violation("init of an online vCPU not EEXIST");
		}
	}
	check_counters(r);
	qpd_vcpu_leave(q, r->vcpu);
	if (vcpu_updown(r->vcpu, false) != 0)
		violation("reader vcpu exit");
	free(r);
	tally_thread();
	return NULL;
}

/* ------------------------------------------------------------------
 * Writers.
 */

struct wplug {
	qpd_plugin_id id;
	struct pset *ps; /* NULL: slot empty */
};

struct wsb {
	struct qpd_scoreboard *sb;
	size_t elem;
	unsigned pattern_vcpu; /* its slot holds the pattern */
	unsigned char pattern;
};

struct writer {
	unsigned idx;
	uint64_t rng;
	struct wplug p[PLUGS_PER_WRITER];
	struct wsb s[SBS_PER_WRITER];
	struct qpd_dyn *shared;
	uint64_t shared_gen;
	unsigned shared_n;
	unsigned vbase, vspan;
};

static void
plug_register(struct writer *w, struct wplug *p, int ev, enum op op)
{
	unsigned v = (unsigned)rnd(&w->rng) & 1;
	int err = qpd_register_cb(q, p->id, (enum qpd_event)ev, fns[ev][v],
				  &p->ps->o[v][ev]);

	if (err != 0)
		violation("registering for an owned plugin failed");
	tl.ops[op]++;
}

static void
plug_add(struct writer *w, struct wplug *p)
{
	qpd_plugin_id id;

	if (qpd_plugin_add(q, &id) != 0) {
		violation("plugin_add failed");
		return;
	}
	p->id = id;
	p->ps = pset_new(id);
	tl.ops[OP_plugin_add]++;
	for (int ev = 0; ev < QPD_EV_COUNT; ev++) {
		if (rnd(&w->rng) % 3 == 0)
			continue;
		plug_register(w, p, ev, OP_register);
	}
}

/* After uninstall nothing of the plugin may be accepted again. */
static void
check_refused(qpd_plugin_id id)
{
	int err = qpd_register_cb(q, id, QPD_EV_VCPU_SYSCALL,
				  fns[QPD_EV_VCPU_SYSCALL][0], &zombie);

	if (err != -ESHUTDOWN && err != -ENOENT)
		violation("registration after uninstall was not refused");
	err = qpd_plugin_uninstall(q, id, NULL, NULL);
	if (err != -EALREADY && err != -ENOENT)
		violation("double uninstall not EALREADY/ENOENT");
	err = qpd_plugin_reset(q, id, NULL, NULL);
	if (err != -ESHUTDOWN && err != -ENOENT)
		violation("reset after uninstall not ESHUTDOWN/ENOENT");
	tl.ops[OP_refused]++;
}

static void
plug_uninstall(struct wplug *p)
{
	if (qpd_plugin_uninstall(q, p->id, pset_done, p->ps) != 0) {
		violation("uninstall of an owned plugin failed");
		return;
	}
	__atomic_fetch_add(&n_done_expected, 1, __ATOMIC_RELAXED);
	tl.ops[OP_uninstall]++;
	check_refused(p->id);
	p->ps = NULL;
}

static void
plug_op(struct writer *w, uint64_t x)
{
	struct wplug *p = &w->p[(x >> 8) % PLUGS_PER_WRITER];
	int ev = (int)((x >> 16) % QPD_EV_COUNT), err;

	if (p->ps == NULL) {
		plug_add(w, p);
		return;
	}
	switch ((x >> 24) % 16) {
	case 0:
		plug_uninstall(p);
		break;
	case 1:
		err = qpd_plugin_reset(q, p->id, pset_done, p->ps);
		if (err == -EALREADY)
			break; /* the previous reset's grace period is running */
		if (err != 0) {
			violation("reset of an owned plugin failed");
			break;
		}
		__atomic_fetch_add(&n_done_expected, 1, __ATOMIC_RELAXED);
		p->ps = pset_new(p->id);
		tl.ops[OP_reset]++;
		break;
	case 2:
		/* A burst of replacements of one event: torn pairs would show. */
		for (unsigned k = 0; k < 32; k++) {
			if (qpd_register_cb(q, p->id, (enum qpd_event)ev,
					    fns[ev][k & 1],
					    &p->ps->o[k & 1][ev]) != 0)
				violation("registering for an owned plugin failed");
			tl.ops[OP_replace]++;
		}
		break;
	case 3:
	case 4:
		if (qpd_register_cb(q, p->id, (enum qpd_event)ev, NULL,
				    NULL) != 0)
			violation("unregistering failed");
		tl.ops[OP_unregister]++;
		break;
	default:
		plug_register(w, p, ev, OP_replace);
		break;
	}
}

static void
sb_free_checked(struct wsb *s)
{
	unsigned char *slot = qpd_scoreboard_find(s->sb, s->pattern_vcpu);

	for (size_t b = 0; b < s->elem; b++) {
		if (slot[b] != s->pattern) {
			violation("a scoreboard pattern was overwritten");
			break;
		}
	}
	if (qpd_scoreboard_free(q, s->sb) != 0)
		violation("freeing a live scoreboard failed");
	s->sb = NULL;
	tl.ops[OP_sb_free]++;
}

static void
sb_op(struct writer *w, uint64_t x)
{
	struct wsb *s = &w->s[(x >> 8) % SBS_PER_WRITER];
	unsigned n = qpd_num_vcpus(q) + 1, v;
	unsigned char *slot;

	if (s->sb != NULL) {
		sb_free_checked(s);
		return;
	}
	s->elem = (x >> 16) % 4 ? 1 + (x >> 20) % 256 : 1 + (x >> 20) % 8192;
	s->sb = qpd_scoreboard_new(q, s->elem);
	if (s->sb == NULL) {
		if (errno != ENOMEM)
			violation("scoreboard_new failed other than ENOMEM");
		tl.ops[OP_sb_full]++;
		return;
	}
	tl.ops[OP_sb_new]++;
	v = (unsigned)(rnd(&w->rng) % n);
	if (!all_zero(qpd_scoreboard_find(s->sb, v), s->elem))
		violation("a new scoreboard is not zero");
	/* A pattern on a reader's index: overlapping columns would show. */
	s->pattern_vcpu = (unsigned)(rnd(&w->rng) % n_readers);
	s->pattern = (unsigned char)(1 + rnd(&w->rng) % 255);
	slot = qpd_scoreboard_find(s->sb, s->pattern_vcpu);
	memset(slot, s->pattern, s->elem);
}

/*
 * An extra vCPU on the writer's own index range: init, a slice that
 * dispatches and runs a list on one of the writer's scoreboards, exit.
 */
static void
vcpu_visit(struct writer *w, uint64_t x)
{
	unsigned v = w->vbase + (unsigned)((x >> 8) % w->vspan);
	struct wsb *s = &w->s[(x >> 20) % SBS_PER_WRITER];
	struct qpd_dyn *l = NULL;
	qpd_u64 c = { NULL, 0 };
	uint64_t before = 0, g = 0, imm = 1 + (x >> 32) % 9;
	unsigned reps = 1 + (unsigned)((x >> 40) % 20);

	if (vcpu_updown(v, true) != 0) {
		violation("init of an extra vCPU failed");
		return;
	}
	if (qpd_vcpu_init(q, v) != -EEXIST)
		violation("second init not EEXIST");
	if (s->sb != NULL && s->elem >= 8) {
		/* Built under flush_lock: no flush can free it meanwhile. */
		pthread_mutex_lock(&flush_lock);
		g = gen_load();
		c = (qpd_u64){ s->sb, 8 * ((x >> 44) % (s->elem / 8)) };
		before = qpd_u64_get(c, v);
		l = qpd_dyn_new(q);
		if (l == NULL || qpd_dyn_add_inline(l, QPD_OP_ADD_U64, c,
						    imm) != 0)
			violation("building an extra vCPU's list failed");
		pthread_mutex_unlock(&flush_lock);
	}
	if (!qpd_vcpu_enter(q, v))
		violation("enter refused an online vCPU");
	if (l != NULL && gen_load() != g)
		l = NULL; /* a flush took it; it may be gone already */
	for (unsigned i = 0; i < reps; i++) {
		dispatch_all(v, x + i);
		if (l != NULL)
			qpd_dyn_exec(l, v);
	}
	if (qpd_vcpu_exit(q, v) != -EBUSY)
		violation("exit inside a slice did not say EBUSY");
	qpd_vcpu_leave(q, v);
	if (l != NULL && qpd_u64_get(c, v) != before + reps * imm)
		violation("an extra vCPU's inline total is wrong");
	idle_resume(v);
	if (l != NULL) {
		pthread_mutex_lock(&flush_lock);
		if (gen_load() == g && qpd_dyn_retire(q, l) != 0)
			violation("retiring a live list failed");
		pthread_mutex_unlock(&flush_lock);
	}
	if (vcpu_updown(v, false) != 0)
		violation("exit of an extra vCPU failed");
	if (qpd_vcpu_exit(q, v) != -ENOENT)
		violation("second exit not ENOENT");
	if (qpd_vcpu_enter(q, v))
		violation("enter accepted an offline vCPU");
}

/* Under flush_lock, so no flush can retire the list while we touch it. */
static void
shared_op(struct writer *w, uint64_t x)
{
	uint64_t g;

	pthread_mutex_lock(&flush_lock);
	g = gen_load();
	if (w->shared != NULL && w->shared_gen != g)
		w->shared = NULL; /* a flush retired it */
	if (w->shared == NULL || w->shared_n >= MAX_SHARED_ENTRIES ||
	    (x >> 8) % 64 == 0) {
		struct qpd_dyn *old = w->shared;

		w->shared = qpd_dyn_new(q);
		w->shared_gen = g;
		w->shared_n = 0;
		if (w->shared == NULL)
			violation("qpd_dyn_new failed");
		publish(w->idx, w->shared, g);
		/* Published before retired: readers switch at their next point. */
		if (old != NULL && qpd_dyn_retire(q, old) != 0)
			violation("retiring a live shared list failed");
		tl.ops[OP_shared_replace]++;
	}
	if (w->shared != NULL) {
		shared_entry(w->shared, &w->rng);
		w->shared_n++;
		tl.ops[OP_shared_append]++;
	}
	pthread_mutex_unlock(&flush_lock);
}

static void *
writer(void *arg)
{
	struct writer *w = calloc(1, sizeof(*w));

	w->idx = (unsigned)(uintptr_t)arg;
	w->rng = 0xc2b2ae3d27d4eb4fULL * (w->idx + 7);
	w->vspan = n_extra / n_writers;
	w->vbase = MAX_READERS + w->idx * w->vspan;
	while (!stopped()) {
		uint64_t x = rnd(&w->rng);

		unsigned pick = (unsigned)(x % 100);

		if (pick < 45)
			plug_op(w, x);
		else if (pick < 60)
			sb_op(w, x);
		else if (pick < 72)
			vcpu_visit(w, x);
		else if (pick < 74)
			flush(OP_writer_flush);
		else
			shared_op(w, x);
	}
	for (unsigned k = 0; k < PLUGS_PER_WRITER; k++)
		if (w->p[k].ps != NULL)
			plug_uninstall(&w->p[k]);
	for (unsigned k = 0; k < SBS_PER_WRITER; k++)
		if (w->s[k].sb != NULL)
			sb_free_checked(&w->s[k]);
	pthread_mutex_lock(&flush_lock);
	publish(w->idx, NULL, 0);
	if (w->shared != NULL && w->shared_gen == gen_load() &&
	    qpd_dyn_retire(q, w->shared) != 0)
		violation("retiring a live shared list failed");
	pthread_mutex_unlock(&flush_lock);
	free(w);
	tally_thread();
	return NULL;
}

/* ------------------------------------------------------------------ */

static void
usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--readers R] [--writers W] "
		"[--seconds S] [--extra-vcpus N]\n", argv0);
	exit(2);
}

/* After every thread stopped: ATEXIT once, nothing left online. */
static void
final_checks(void)
{
	struct qpd_stats st;
	uint64_t calls;

	if (qpd_stats_get(q, &st) != 0 || st.n_vcpus_online != 0)
		violation("vCPUs left online after every thread exited");
	tl.ev = QPD_EV_ATEXIT;
	qpd_atexit(q);
	calls = tl.ops[OP_callbacks];
	if (qpd_user_exit(q) != 0)
		violation("user_exit failed");
	qpd_atexit(q);
	if (tl.ops[OP_callbacks] != calls)
		violation("ATEXIT callbacks ran twice");
	tl.ev = -1;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "readers", required_argument, NULL, 'r' },
		{ "writers", required_argument, NULL, 'w' },
		{ "seconds", required_argument, NULL, 's' },
		{ "extra-vcpus", required_argument, NULL, 'x' },
		{ NULL, 0, NULL, 0 },
	};
	struct timespec ts = { 0, 0 };
	pthread_t t[MAX_READERS + MAX_WRITERS];
	int c;

	while ((c = getopt_long(argc, argv, "r:w:s:x:", opts, NULL)) != -1) {
		switch (c) {
		case 'r': n_readers = (unsigned)atoi(optarg); break;
		case 'w': n_writers = (unsigned)atoi(optarg); break;
		case 's': seconds = (unsigned)atoi(optarg); break;
		case 'x': n_extra = (unsigned)atoi(optarg); break;
		default: usage(argv[0]);
		}
	}
	if (n_readers == 0 || n_readers > MAX_READERS || n_writers == 0 ||
	    n_writers > MAX_WRITERS || n_extra < n_writers ||
	    n_extra > QPD_DEFAULT_MAX_VCPUS - MAX_READERS)
		usage(argv[0]);
	q = qpd_new(NULL);
	gsb = q ? qpd_scoreboard_new(q, 16) : NULL;
	if (gsb == NULL) {
		fprintf(stderr, "qpd_new or scoreboard failed\n");
		return 1;
	}
	for (unsigned i = 0; i < n_readers; i++)
		pthread_create(&t[i], NULL, reader, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < n_writers; i++)
		pthread_create(&t[n_readers + i], NULL, writer,
			       (void *)(uintptr_t)i);
	ts.tv_sec = seconds;
	nanosleep(&ts, NULL);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < n_readers + n_writers; i++)
		pthread_join(t[i], NULL);
	final_checks();
	tally_thread();
	/* Pending done hooks run here: every uninstall and reset gets one. */
	qpd_free(q);
	if (totals[OP_done] != n_done_expected)
		violation("an uninstall or reset never got its done");
#ifndef FREE_ON_DONE
	for (ck_stack_entry_t *e; (e = ck_stack_pop_upmc(&graveyard)) != NULL;)
		free(pset_of_grave(e));
#endif
	printf("SUMMARY readers=%u writers=%u seconds=%u", n_readers,
	       n_writers, seconds);
	for (unsigned i = 0; i < N_OPS; i++)
		printf(" %s=%" PRIu64, op_names[i], totals[i]);
	printf(" violations=%" PRIu64 "\n", n_violations);
	return n_violations ? 1 : 0;
}
