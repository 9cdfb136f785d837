/*
 * Allocation failure, swept over every allocation an operation reaches.
 *
 * The library is rebuilt with -DQPD_FAULT_INJECTION: qpd__fault_allocs
 * counts allocation attempts and qpd__fault_countdown = k fails the k-th
 * from now.  For each scenario a dry run counts the allocations N of the
 * operation; then, on a fresh instance each time, allocation k = 1 .. N is
 * made to fail.  Either the operation absorbs the failure (it succeeds
 * and its effect is there: ck_hs growth after an insert is optional), or
 * it returns -ENOMEM (NULL with errno ENOMEM), the error hook sees -ENOMEM
 * from that public function, every counter of qpd_stats_get() is as
 * before, and retrying succeeds.  After each injection the instance must
 * still do everything (`works`), and qpd_free() must release everything:
 * the valgrind suite runs this binary under memcheck, and the sanitizer
 * build asks LeakSanitizer after every test.
 *
 * Each test prints how many allocation points it injected.
 */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, \
				  "LeakSanitizer found leaks")
#else
#define LEAK_CHECK() ((void)0)
#endif

extern unsigned long qpd__fault_countdown, qpd__fault_allocs;

#define MAX_OBJS 48

struct fx {
	struct qpd *q;
	qpd_plugin_id a, b;
	unsigned param;
	int done;
	struct qpd_scoreboard *sb[MAX_OBJS];
	struct qpd_dyn *l[MAX_OBJS];
	qpd_u64 c;
	uint64_t expect; /* scenario-specific */
	struct qpd_stats before;
};

struct scenario {
	const char *func; /* the public function that must report ENOMEM */
	bool bare;        /* the op creates the instance itself */
	void (*setup)(struct fx *f);
	int (*op)(struct fx *f);
	void (*check)(struct fx *f); /* the op's effect, after success */
};

static struct {
	int err;
	unsigned calls;
	const char *func;
} hook;

static unsigned points, absorbed;

static void
on_error(int err, const char *func, void *opaque)
{
	(void)opaque;
	hook.err = err;
	hook.func = func;
	hook.calls++;
}

static int tag_a, tag_b, tag_new;

static void
cb(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	log_call(1, id, vcpu, udata);
}

static void
cb2(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	log_call(2, id, vcpu, udata);
}

static void
simple_cb(qpd_plugin_id id, void *udata)
{
	log_call(3, id, 0, udata);
}

static void
dyn_cb(unsigned vcpu, void *udata)
{
	log_call(4, 0, vcpu, udata);
}

static void
mem_cb(unsigned vcpu, uint32_t info, uint64_t vaddr, void *udata)
{
	(void)info, (void)vaddr;
	log_call(5, 0, vcpu, udata);
}

/*
 * A small arena: memcheck scans every mapping for leaks, including the
 * arena of an instance a failed test left behind.
 */
#define MAXV 256u
#define NEW_CHUNK_VCPU 200u /* in a chunk nothing else touches */
#define NODE_VCPU 150u      /* in another one */

static const struct qpd_config cfg = {
	.max_vcpus = MAXV,
	.no_reclaimer_thread = true,
	.on_error = on_error,
};

/* Base state of every scenario: vCPU 0 online, plugins a and b. */
static void
fx_init(struct fx *f, const struct scenario *s, unsigned param)
{
	memset(f, 0, sizeof(*f));
	f->param = param;
	if (!s->bare) {
		f->q = qpd_new(&cfg);
		cr_assert_not_null(f->q);
		f->a = add_plugin(f->q);
		f->b = add_plugin(f->q);
		cr_assert_eq(qpd_vcpu_init(f->q, 0), 0);
	}
	if (s->setup != NULL)
		s->setup(f);
	memset(&hook, 0, sizeof(hook));
	memset(&LOG, 0, sizeof(LOG));
	if (f->q != NULL)
		cr_assert_eq(qpd_stats_get(f->q, &f->before), 0);
}

static void
fx_fini(struct fx *f)
{
	qpd_free(f->q);
	f->q = NULL;
}

static void
assert_unchanged(struct fx *f)
{
	struct qpd_stats st;

	cr_assert_eq(qpd_stats_get(f->q, &st), 0);
	for (unsigned ev = 0; ev < QPD_EV_COUNT; ev++)
		cr_assert_eq(st.n_dispatch[ev], f->before.n_dispatch[ev]);
	cr_assert_eq(st.n_registrations, f->before.n_registrations);
	cr_assert_eq(st.n_unregistrations, f->before.n_unregistrations);
	cr_assert_eq(st.n_grace_periods, f->before.n_grace_periods);
	cr_assert_eq(st.n_reclaimed, f->before.n_reclaimed);
	cr_assert_eq(st.n_pending_reclaim, f->before.n_pending_reclaim);
	cr_assert_eq(st.n_done_calls, f->before.n_done_calls);
	cr_assert_eq(st.n_plugins, f->before.n_plugins);
	cr_assert_eq(st.n_vcpus_online, f->before.n_vcpus_online);
	cr_assert_eq(st.n_vcpus, f->before.n_vcpus);
	cr_assert_eq(st.n_errors, f->before.n_errors + 1);
}

/* Reclaims what is past its grace period (no slice is open). */
static void
drain(struct qpd *q)
{
	for (int i = 0; i < 100 && qpd_reclaim(q) > 0; i++)
		;
}

/* Everything still works after the injection, with no error reported. */
static void
works(struct fx *f)
{
	struct qpd_scoreboard *sb;
	struct qpd_dyn *l;
	qpd_plugin_id id;
	unsigned calls = hook.calls;

	memset(&LOG, 0, sizeof(LOG));
	cr_assert_eq(qpd_plugin_add(f->q, &id), 0);
	cr_assert_eq(qpd_register_cb(f->q, id, QPD_EV_VCPU_RESUME, cb2,
				     &tag_new), 0);
	qpd_vcpu_resume(f->q, 0);
	cr_assert_geq(LOG.n, 1);
	cr_assert_eq(LOG.e[0].udata, &tag_new, "registered last, runs first");
	sb = qpd_scoreboard_new(f->q, 8);
	cr_assert_not_null(sb);
	l = qpd_dyn_new(f->q);
	cr_assert_not_null(l);
	cr_assert_eq(qpd_dyn_add_inline(l, QPD_OP_ADD_U64, (qpd_u64){ sb, 0 },
					2), 0);
	cr_assert(qpd_vcpu_enter(f->q, 0));
	qpd_dyn_exec(l, 0);
	qpd_vcpu_leave(f->q, 0);
	cr_assert_eq(qpd_u64_get((qpd_u64){ sb, 0 }, 0), 2);
	cr_assert_eq(qpd_dyn_retire(f->q, l), 0);
	cr_assert_eq(qpd_scoreboard_free(f->q, sb), 0);
	cr_assert_eq(qpd_plugin_uninstall(f->q, id, NULL, NULL), 0);
	cr_assert_eq(qpd_vcpu_init(f->q, 1), 0);
	cr_assert_eq(qpd_vcpu_exit(f->q, 1), 0);
	drain(f->q);
	cr_assert_eq(hook.calls, calls, "valid calls report no error");
}

/*
 * Fails allocation 1 .. N of s->op in turn, N from a dry run; returns N.
 * Adds to the global tallies printed by report().
 */
static unsigned long
sweep(const struct scenario *s, unsigned param)
{
	struct fx f;
	unsigned long n, k, start;

	fx_init(&f, s, param);
	start = qpd__fault_allocs;
	cr_assert_eq(s->op(&f), 0, "%s(%u) fails with no fault", s->func,
		     param);
	cr_assert_eq(hook.calls, 0, "%s(%u) reports an error", s->func, param);
	n = qpd__fault_allocs - start;
	s->check(&f);
	fx_fini(&f);
	for (k = 1; k <= n; k++) {
		int rc;

		fx_init(&f, s, param);
		qpd__fault_countdown = k;
		rc = s->op(&f);
		cr_assert_eq(qpd__fault_countdown, 0,
			     "%s(%u): allocation %lu of %lu not reached",
			     s->func, param, k, n);
		if (rc == 0 && hook.calls == 0) {
			absorbed++;
			s->check(&f);
		} else {
			cr_assert_eq(rc, -ENOMEM, "%s(%u), allocation %lu: %d",
				     s->func, param, k, rc);
			if (s->bare) {
				cr_assert_null(f.q);
			} else {
				cr_assert_eq(hook.calls, 1);
				cr_assert_eq(hook.err, -ENOMEM);
				cr_assert_str_eq(hook.func, s->func);
				assert_unchanged(&f);
			}
			memset(&hook, 0, sizeof(hook));
			memset(&LOG, 0, sizeof(LOG));
			cr_assert_eq(s->op(&f), 0, "%s(%u): retry failed",
				     s->func, param);
			cr_assert_eq(hook.calls, 0);
			s->check(&f);
		}
		if (f.q != NULL)
			works(&f);
		fx_fini(&f);
	}
	points += (unsigned)n;
	return n;
}

static void
report(const char *what)
{
	fprintf(stderr, "nomem %s: %u allocation points injected, %u absorbed\n",
		what, points, absorbed);
	LEAK_CHECK();
}

/* ------------------------------------------------------------ qpd_new */

static int
op_new(struct fx *f)
{
	f->q = qpd_new(&cfg);
	return f->q != NULL ? 0 : -errno;
}

static void
check_new(struct fx *f)
{
	f->a = add_plugin(f->q);
	cr_assert_eq(qpd_vcpu_init(f->q, 0), 0);
}

Test(nomem, instance_new)
{
	static const struct scenario s = { .func = "qpd_new", .bare = true,
					   .op = op_new, .check = check_new };

	cr_assert_geq(sweep(&s, 0), 5);
	report("qpd_new");
}

/* ---------------------------------------------------------- plugins */

static void
setup_plugins(struct fx *f)
{
	for (unsigned i = 0; i < f->param; i++)
		add_plugin(f->q);
}

static int
op_add(struct fx *f)
{
	return qpd_plugin_add(f->q, &f->expect);
}

static void
check_add(struct fx *f)
{
	cr_assert_gt(f->expect, f->b);
	cr_assert_eq(qpd_register_cb(f->q, f->expect, QPD_EV_VCPU_IDLE, cb,
				     &tag_new), 0);
	qpd_vcpu_idle(f->q, 0);
	cr_assert_eq(LOG.n, 1);
	cr_assert_eq(LOG.e[0].id, f->expect);
}

/* Up to 40 plugins: the id table grows several times. */
Test(nomem, plugin_add)
{
	static const struct scenario s = { "qpd_plugin_add", false, setup_plugins,
					   op_add, check_add };

	for (unsigned m = 0; m <= 40; m++)
		cr_assert_geq(sweep(&s, m), 1);
	report("qpd_plugin_add");
}

/* m other plugins with an IDLE callback, then a on IDLE and RESUME. */
static void
setup_registered(struct fx *f)
{
	for (unsigned i = 0; i < f->param; i++) {
		qpd_plugin_id id = add_plugin(f->q);

		cr_assert_eq(qpd_register_cb(f->q, id, QPD_EV_VCPU_IDLE, cb,
					     &tag_b), 0);
	}
	cr_assert_eq(qpd_register_cb(f->q, f->a, QPD_EV_VCPU_IDLE, cb, &tag_a),
		     0);
	cr_assert_eq(qpd_register_cb(f->q, f->a, QPD_EV_VCPU_RESUME, cb,
				     &tag_a), 0);
}

static int
op_register(struct fx *f)
{
	return qpd_register_cb(f->q, f->b, QPD_EV_VCPU_IDLE, cb, &tag_new);
}

static int
op_replace(struct fx *f)
{
	return qpd_register_cb(f->q, f->a, QPD_EV_VCPU_IDLE, cb2, &tag_new);
}

static void
check_replace(struct fx *f)
{
	qpd_vcpu_idle(f->q, 0);
	cr_assert_eq(LOG.n, f->param + 1);
	cr_assert_eq(LOG.e[0].tag, 2, "the new function runs");
	cr_assert_eq(LOG.e[0].udata, &tag_new, "with the new user data");
}

static int
op_unregister(struct fx *f)
{
	return qpd_register_cb(f->q, f->a, QPD_EV_VCPU_IDLE, NULL, NULL);
}

static void
check_unregister(struct fx *f)
{
	qpd_vcpu_idle(f->q, 0);
	cr_assert_eq(LOG.n, f->param);
	qpd_vcpu_resume(f->q, 0);
	cr_assert_eq(LOG.n, f->param + 1, "a's RESUME callback stays");
}

Test(nomem, register_replace_unregister)
{
	static const struct scenario rep = { "qpd_register_cb", false,
		setup_registered, op_replace, check_replace };
	static const struct scenario unreg = { "qpd_register_cb", false,
		setup_registered, op_unregister, check_unregister };

	for (unsigned m = 0; m <= 6; m++) {
		cr_assert_eq(sweep(&rep, m), 1, "one new array");
		cr_assert_eq(sweep(&unreg, m), m ? 1 : 0,
			     "a smaller array, none when it becomes empty");
	}
	report("qpd_register_cb (replace, remove)");
}

/* b, registered last, goes in front of a and the m others. */
static void
check_register_first(struct fx *f)
{
	qpd_vcpu_idle(f->q, 0);
	cr_assert_eq(LOG.n, f->param + 2, "every IDLE callback runs");
	cr_assert_eq(LOG.e[0].udata, &tag_new, "b (registered last) first");
	cr_assert_eq(LOG.e[1].udata, &tag_a, "then a");
	if (f->param > 0)
		cr_assert_eq(LOG.e[LOG.n - 1].udata, &tag_b, "the others last");
}

Test(nomem, register_new)
{
	static const struct scenario s = { "qpd_register_cb", false,
		setup_registered, op_register, check_register_first };

	for (unsigned m = 0; m <= 6; m++)
		cr_assert_eq(sweep(&s, m), 1, "one new array");
	report("qpd_register_cb (new)");
}

/*
 * a on param events (each shared with b) and on RESUME alone; with
 * param 0, b alone on IDLE.  Uninstall or reset allocates the notice and
 * one array per shared event (RESUME's becomes empty: no allocation).
 */
static void
setup_spread(struct fx *f)
{
	static const enum qpd_event evs[] = {
		QPD_EV_VCPU_IDLE, QPD_EV_VCPU_TB_TRANS, QPD_EV_VCPU_SYSCALL,
		QPD_EV_VCPU_SYSCALL_RET, QPD_EV_VCPU_EXCEPTION, QPD_EV_FLUSH,
		QPD_EV_VCPU_INIT, QPD_EV_VCPU_EXIT,
	};

	for (unsigned i = 0; i < f->param; i++) {
		void *fn = evs[i] == QPD_EV_FLUSH ? (void *)simple_cb
						  : (void *)cb;

		cr_assert_eq(qpd_register_cb(f->q, f->a, evs[i], fn, &tag_a), 0);
		cr_assert_eq(qpd_register_cb(f->q, f->b, evs[i], fn, &tag_b), 0);
	}
	cr_assert_eq(qpd_register_cb(f->q, f->a, QPD_EV_VCPU_RESUME, cb,
				     &tag_a), 0);
	if (f->param == 0)
		cr_assert_eq(qpd_register_cb(f->q, f->b, QPD_EV_VCPU_IDLE, cb,
					     &tag_b), 0);
}

static int
op_uninstall(struct fx *f)
{
	return qpd_plugin_uninstall(f->q, f->a, done_set_flag, &f->done);
}

static int
op_reset(struct fx *f)
{
	return qpd_plugin_reset(f->q, f->a, done_set_flag, &f->done);
}

/* Only b's callbacks are left, and the done hook runs once. */
static void
check_removed(struct fx *f, bool uninstalled)
{
	qpd_vcpu_idle(f->q, 0);
	qpd_vcpu_resume(f->q, 0);
	cr_assert_eq(LOG.n, 1, "only b's IDLE callback is left");
	cr_assert_eq(LOG.e[0].udata, &tag_b);
	cr_assert(reclaim_until(f->q, &f->done));
	cr_assert_eq(f->done, 1);
	cr_assert_eq(qpd_register_cb(f->q, f->a, QPD_EV_VCPU_IDLE, cb, &tag_a),
		     uninstalled ? -ENOENT : 0);
}

static void
check_uninstall(struct fx *f)
{
	check_removed(f, true);
}

static void
check_reset(struct fx *f)
{
	check_removed(f, false);
}

Test(nomem, uninstall_is_all_or_nothing)
{
	static const struct scenario s = { "qpd_plugin_uninstall", false,
		setup_spread, op_uninstall, check_uninstall };

	for (unsigned m = 0; m <= 8; m++)
		cr_assert_eq(sweep(&s, m), 1 + m, "the notice and m arrays");
	report("qpd_plugin_uninstall");
}

Test(nomem, reset_is_all_or_nothing)
{
	static const struct scenario s = { "qpd_plugin_reset", false,
		setup_spread, op_reset, check_reset };

	for (unsigned m = 0; m <= 8; m++)
		cr_assert_eq(sweep(&s, m), 1 + m, "the notice and m arrays");
	report("qpd_plugin_reset");
}

/* ------------------------------------------------------------- vCPUs */

static int
op_vcpu_init(struct fx *f)
{
	return qpd_vcpu_init(f->q, NEW_CHUNK_VCPU);
}

static void
check_vcpu_init(struct fx *f)
{
	cr_assert_eq(qpd_num_vcpus(f->q), NEW_CHUNK_VCPU + 1);
	cr_assert(qpd_vcpu_enter(f->q, NEW_CHUNK_VCPU));
	qpd_vcpu_leave(f->q, NEW_CHUNK_VCPU);
	cr_assert_eq(qpd_vcpu_exit(f->q, NEW_CHUNK_VCPU), 0);
}

static int
op_set_node(struct fx *f)
{
	return qpd_vcpu_set_node(f->q, NODE_VCPU, 0);
}

static void
check_set_node(struct fx *f)
{
	cr_assert_eq(qpd_vcpu_get_node(f->q, NODE_VCPU), 0);
	cr_assert_eq(qpd_vcpu_init(f->q, NODE_VCPU), 0);
	cr_assert_eq(qpd_vcpu_get_node(f->q, NODE_VCPU), 0,
		     "the chosen node stays");
	cr_assert_eq(qpd_vcpu_exit(f->q, NODE_VCPU), 0);
}

Test(nomem, vcpu_init_new_chunk)
{
	static const struct scenario s = { "qpd_vcpu_init", false, NULL, op_vcpu_init,
					   check_vcpu_init };

	cr_assert_eq(sweep(&s, 0), 1, "the chunk");
	report("qpd_vcpu_init");
}

Test(nomem, vcpu_set_node_new_chunk)
{
	static const struct scenario s = { "qpd_vcpu_set_node", false, NULL,
					   op_set_node, check_set_node };

	cr_assert_eq(sweep(&s, 0), 1, "the chunk");
	report("qpd_vcpu_set_node");
}

/* -------------------------------------------------------- scoreboards */

/*
 * Pages of the process in RAM (the resident set of /proc/self/statm).
 * Unlike mincore(), it leaves out the shared zero page that merely reading
 * an untouched slot maps: that commits no memory.
 */
static long
resident_pages(void)
{
	long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%ld %ld", &size, &resident), 2);
	fclose(f);
	return resident;
}

/*
 * Memory is committed only where a slot is written: freeing a scoreboard
 * must not fault in a page of every vCPU region up to the highest index
 * ever initialised (with 8192 vCPU indices in use that is 32 MiB per free,
 * and the pages stay committed).
 */
Test(nomem, scoreboard_free_commits_no_memory)
{
	struct qpd *q = qpd_new(&cfg);
	struct qpd_scoreboard *sb;

	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	cr_assert_eq(qpd_vcpu_init(q, MAXV - 1), 0);
	cr_assert_eq(qpd_vcpu_exit(q, MAXV - 1), 0);
	sb = qpd_scoreboard_new(q, 64);
	cr_assert_not_null(sb);
	qpd_inline_add_u64((qpd_u64){ sb, 0 }, 0, 1);
	(void)resident_pages(); /* its own stdio buffers, once */
	long before = resident_pages();
	cr_assert_eq(qpd_scoreboard_free(q, sb), 0);
	drain(q);
	/* MAXV - 1 regions would be MAXV - 1 pages; allow noise of a few. */
	cr_assert_lt(resident_pages() - before, 16,
		     "freeing the scoreboard committed %ld pages of slots that "
		     "were never written", resident_pages() - before);
	qpd_vcpu_exit(q, 0);
	qpd_free(q);
	LEAK_CHECK();
}

static void
setup_scoreboards(struct fx *f)
{
	for (unsigned i = 0; i < f->param; i++) {
		f->sb[i] = qpd_scoreboard_new(f->q, 8 + 8 * i);
		cr_assert_not_null(f->sb[i]);
	}
}

static int
op_sb_new(struct fx *f)
{
	f->sb[f->param] = qpd_scoreboard_new(f->q, 24);
	return f->sb[f->param] != NULL ? 0 : -errno;
}

static void
check_sb_new(struct fx *f)
{
	qpd_u64 c = { f->sb[f->param], 16 };

	cr_assert_eq(qpd_u64_get(c, 0), 0);
	qpd_inline_add_u64(c, 0, 5);
	cr_assert_eq(qpd_u64_sum(c), 5);
	for (unsigned i = 0; i <= f->param; i++)
		cr_assert_eq(qpd_scoreboard_free(f->q, f->sb[i]), 0);
}

Test(nomem, scoreboard_new)
{
	static const struct scenario s = { "qpd_scoreboard_new", false,
		setup_scoreboards, op_sb_new, check_sb_new };

	for (unsigned m = 0; m <= 24; m++)
		sweep(&s, m);
	cr_assert_geq(points, 3, "the live-set table grows");
	report("qpd_scoreboard_new");
}

/* 2 * param + 2 scoreboards; every other one of the first 2 * param freed. */
static void
setup_fragmented(struct fx *f)
{
	unsigned n = 2 * f->param + 2;
	struct qpd_scoreboard *whole = qpd_scoreboard_new(f->q, QPD_SB_REGION);

	/* An arena of the largest small region, empty: all fit there. */
	cr_assert_not_null(whole);
	cr_assert_eq(qpd_scoreboard_free(f->q, whole), 0);
	drain(f->q);
	for (unsigned i = 0; i < n; i++) {
		f->sb[i] = qpd_scoreboard_new(f->q, 64);
		cr_assert_not_null(f->sb[i]);
	}
	for (unsigned i = 0; i < 2 * f->param; i += 2)
		cr_assert_eq(qpd_scoreboard_free(f->q, f->sb[i]), 0);
}

static int
op_sb_free(struct fx *f)
{
	return qpd_scoreboard_free(f->q, f->sb[2 * f->param]);
}

static void
check_sb_free(struct fx *f)
{
	struct qpd_scoreboard *sb;
	struct qpd_stats before, after;

	cr_assert_eq(qpd_scoreboard_free(f->q, f->sb[2 * f->param]), -ENOENT);
	memset(&hook, 0, sizeof(hook));
	drain(f->q);
	/* Every freed column came back, coalesced: room for the largest. */
	for (unsigned i = 1; i < 2 * f->param + 2; i += 2)
		cr_assert_eq(qpd_scoreboard_free(f->q, f->sb[i]), 0);
	drain(f->q);
	cr_assert_eq(qpd_stats_get(f->q, &before), 0);
	/* Every column came back: as many fit again, in the same arenas. */
	for (unsigned i = 0; i < 2 * f->param + 2; i++) {
		sb = qpd_scoreboard_new(f->q, 64);
		cr_assert_not_null(sb);
	}
	cr_assert_eq(qpd_stats_get(f->q, &after), 0);
	cr_assert_eq(after.n_sb_arenas, before.n_sb_arenas,
		     "the freed columns were reused");
}

Test(nomem, scoreboard_free_with_pending_frees)
{
	static const struct scenario s = { "qpd_scoreboard_free", false,
		setup_fragmented, op_sb_free, check_sb_free };

	for (unsigned m = 0; m <= 20; m++)
		sweep(&s, m);
	cr_assert_geq(points, 3, "the free-extent array grows");
	report("qpd_scoreboard_free");
}

/* ----------------------------------------------------- dynamic lists */

static void
setup_lists(struct fx *f)
{
	for (unsigned i = 0; i < f->param; i++) {
		f->l[i] = qpd_dyn_new(f->q);
		cr_assert_not_null(f->l[i]);
	}
}

static int
op_dyn_new(struct fx *f)
{
	f->l[f->param] = qpd_dyn_new(f->q);
	return f->l[f->param] != NULL ? 0 : -errno;
}

static void
check_dyn_new(struct fx *f)
{
	for (unsigned i = 0; i <= f->param; i++)
		cr_assert_eq(qpd_dyn_retire(f->q, f->l[i]), 0);
}

Test(nomem, dyn_new)
{
	static const struct scenario s = { "qpd_dyn_new", false, setup_lists,
					   op_dyn_new, check_dyn_new };

	for (unsigned m = 0; m <= 24; m++)
		cr_assert_geq(sweep(&s, m), 1);
	report("qpd_dyn_new");
}

/* A list of param inline adds of 1 on c. */
static void
setup_list(struct fx *f)
{
	f->sb[0] = qpd_scoreboard_new(f->q, 16);
	cr_assert_not_null(f->sb[0]);
	f->c = (qpd_u64){ f->sb[0], 0 };
	f->l[0] = qpd_dyn_new(f->q);
	cr_assert_not_null(f->l[0]);
	for (unsigned i = 0; i < f->param; i++)
		cr_assert_eq(qpd_dyn_add_inline(f->l[0], QPD_OP_ADD_U64, f->c,
						1), 0);
}

/* Appends an entry of kind param % 5; returns what it adds to c. */
static int
op_append(struct fx *f)
{
	struct qpd_dyn *l = f->l[0];

	switch (f->param % 5) {
	case 0:
		return qpd_dyn_add_cb(l, dyn_cb, &tag_new);
	case 1:
		return qpd_dyn_add_inline(l, QPD_OP_ADD_U64, f->c, 100);
	case 2:
		return qpd_dyn_add_cond_cb(l, dyn_cb, &tag_new, QPD_COND_EQ,
					   f->c, f->param);
	case 3:
		return qpd_dyn_add_mem_cb(l, mem_cb, QPD_MEM_W, &tag_new);
	default:
		return qpd_dyn_add_mem_inline(l, QPD_MEM_R, QPD_OP_ADD_U64,
					      f->c, 1000);
	}
}

static const char *const append_func[5] = {
	"qpd_dyn_add_cb", "qpd_dyn_add_inline", "qpd_dyn_add_cond_cb",
	"qpd_dyn_add_mem_cb", "qpd_dyn_add_mem_inline",
};

static void
check_append(struct fx *f)
{
	static const uint64_t add[5] = { 0, 100, 0, 0, 0 };
	static const uint64_t mem_add[5] = { 0, 0, 0, 0, 1000 };
	static const unsigned calls[5] = { 1, 0, 1, 0, 0 };
	unsigned k = f->param % 5;

	cr_assert_eq(f->l[0]->n, f->param + 1);
	cr_assert(qpd_vcpu_enter(f->q, 0));
	qpd_dyn_exec(f->l[0], 0);
	cr_assert_eq(qpd_u64_get(f->c, 0), f->param + add[k]);
	cr_assert_eq(LOG.n, calls[k]);
	qpd_dyn_exec_mem(f->l[0], 0, 0x1000, 7, QPD_MEM_RW);
	cr_assert_eq(qpd_u64_get(f->c, 0), f->param + add[k] + mem_add[k]);
	cr_assert_eq(LOG.n, calls[k] + (k == 3));
	qpd_vcpu_leave(f->q, 0);
}

Test(nomem, dyn_append_with_growth)
{
	for (unsigned n = 0; n <= 40; n++) {
		const struct scenario s = { append_func[n % 5], false, setup_list,
					    op_append, check_append };
		unsigned long got = sweep(&s, n);
		bool grows = n == 0 || (n >= 4 && (n & (n - 1)) == 0);

		cr_assert_eq(got, grows ? 1 : 0, "%lu allocations at %u entries",
			     got, n);
	}
	report("qpd_dyn_add_* (growth)");
}

static int
op_append_always(struct fx *f)
{
	return qpd_dyn_add_cond_cb(f->l[0], dyn_cb, &tag_new, QPD_COND_ALWAYS,
				   f->c, 0);
}

static void
check_append_always(struct fx *f)
{
	cr_assert(qpd_vcpu_enter(f->q, 0));
	qpd_dyn_exec(f->l[0], 0);
	qpd_vcpu_leave(f->q, 0);
	cr_assert_eq(LOG.n, 1);
}

/* A condition that always holds is stored as a plain callback. */
Test(nomem, dyn_add_cond_cb_always)
{
	static const struct scenario s = { "qpd_dyn_add_cond_cb", false,
		setup_list, op_append_always, check_append_always };

	cr_assert_eq(sweep(&s, 0), 1);
	report("qpd_dyn_add_cond_cb (ALWAYS)");
}

/* -------------------------------------------- flush and atexit */

static void
setup_flush(struct fx *f)
{
	setup_lists(f);
	cr_assert_eq(qpd_register_cb(f->q, f->a, QPD_EV_FLUSH, simple_cb,
				     &tag_a), 0);
	cr_assert_eq(qpd_register_cb(f->q, f->b, QPD_EV_ATEXIT, simple_cb,
				     &tag_b), 0);
}

/* Fails allocation k of a flush on an instance with m lists. */
static void
failed_flush(struct fx *f, unsigned m, unsigned long k)
{
	static const struct scenario s = { "qpd_flush", false, setup_flush,
					   NULL, NULL };

	fx_init(f, &s, m);
	qpd__fault_countdown = k;
	qpd_flush(f->q);
	cr_assert_eq(qpd__fault_countdown, 0, "allocation %lu reached", k);
}

/*
 * A flush's allocation: a guest record (retiring lists removes them from
 * the live set one by one, which allocates nothing).
 */
#define FLUSH_ALLOCS 1

/* Whatever allocation fails, every live list is retired exactly once. */
Test(nomem, flush_retires_every_list_once)
{
	struct fx f;

	for (unsigned m = 1; m <= 3; m++) {
		for (unsigned long k = 1; k <= FLUSH_ALLOCS; k++) {
			failed_flush(&f, m, k);
			for (unsigned i = 0; i < m; i++)
				cr_assert_eq(qpd_dyn_retire(f.q, f.l[i]),
					     -ENOENT, "allocation %lu failed: "
					     "list %u is still live after the "
					     "flush retired it", k, i);
			memset(&hook, 0, sizeof(hook));
			works(&f);
			fx_fini(&f);
			points++;
		}
	}
	report("qpd_flush (lists)");
}

/*
 * qpd_flush() returns nothing: a flush that could not run the FLUSH
 * callbacks must say so through the hook, naming qpd_flush, and the next
 * flush must run them.
 */
Test(nomem, flush_failure_is_reported)
{
	struct fx f;

	for (unsigned long k = 1; k <= FLUSH_ALLOCS; k++) {
		failed_flush(&f, 0, k);
		if (LOG.n == 0) {
			cr_assert_eq(hook.calls, 1, "allocation %lu", k);
			cr_assert_eq(hook.err, -ENOMEM);
			cr_assert_str_eq(hook.func, "qpd_flush");
			qpd_flush(f.q);
			cr_assert_eq(LOG.n, 1, "the next flush runs them");
		} else {
			absorbed++;
		}
		memset(&hook, 0, sizeof(hook));
		works(&f);
		fx_fini(&f);
		points++;
	}
	report("qpd_flush (callbacks)");
}

/*
 * ATEXIT callbacks run once; an allocation failure must not turn that
 * into never.  qpd_user_exit() returns 0 only if they ran.
 */
Test(nomem, atexit_runs_after_a_failure)
{
	static const struct scenario s = { "qpd_atexit", false, setup_flush,
					   NULL, NULL };
	struct fx f;

	for (unsigned user = 0; user < 2; user++) {
		int rc = 0;

		fx_init(&f, &s, 0);
		qpd__fault_countdown = 1; /* the guest record */
		if (user)
			rc = qpd_user_exit(f.q);
		else
			qpd_atexit(f.q);
		cr_assert_eq(qpd__fault_countdown, 0);
		if (LOG.n == 0) {
			cr_assert_eq(hook.err, -ENOMEM);
			if (user)
				cr_assert_eq(rc, -ENOMEM, "qpd_user_exit "
					     "returned %d but ATEXIT did not "
					     "run", rc);
			qpd_atexit(f.q);
			cr_assert_eq(LOG.n, 1, "ATEXIT callbacks never ran "
				     "(%s failed once)",
				     user ? "qpd_user_exit" : "qpd_atexit");
		}
		fx_fini(&f);
		points++;
	}
	report("qpd_atexit/qpd_user_exit");
}

/* ------------------------------------------------------------ qpd_free */

static void
setup_everything(struct fx *f)
{
	setup_flush(f);
	setup_scoreboards(f);
	cr_assert_eq(qpd_dyn_add_cb(f->l[0], dyn_cb, NULL), 0);
	cr_assert_eq(qpd_plugin_uninstall(f->q, f->b, done_set_flag, &f->done),
		     0);
}

static int
op_free(struct fx *f)
{
	qpd_free(f->q);
	f->q = NULL;
	return 0;
}

static void
check_free(struct fx *f)
{
	cr_assert_eq(f->done, 1, "qpd_free runs pending done hooks");
}

/* Nothing qpd_free() fails to allocate may leak (valgrind, LSan). */
Test(nomem, free_releases_everything)
{
	static const struct scenario s = { "qpd_free", false, setup_everything,
					   op_free, check_free };

	for (unsigned m = 1; m <= 4; m++)
		sweep(&s, m);
	report("qpd_free");
}
