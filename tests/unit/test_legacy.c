/*
 * The QEMU 9.0 model (bench/legacy.c) behaves as QEMU 9.0 does: reverse
 * order, in-place replacement, masks copied at safepoints, stop-the-world
 * growth, uninstall and flush, the memory executor's early stop, atexit
 * once, idle before init ignored.
 */
#include <stdatomic.h>

#include "helpers.h"
#include "legacy.h"

static struct legacy *L;
static int n_hook; /* on_flush calls */

static void
hook_count(void *opaque)
{
	(*(int *)opaque)++;
}

static void
setup(void)
{
	struct legacy_opts o = { .on_flush = hook_count, .opaque = &n_hook };

	memset(&LOG, 0, sizeof(LOG));
	n_hook = 0;
	L = legacy_new(&o);
	cr_assert_not_null(L);
}

static void
teardown(void)
{
	legacy_free(L);
}

TestSuite(legacy, .init = setup, .fini = teardown);

static qpd_plugin_id
add(void)
{
	qpd_plugin_id id = 0;

	cr_assert_eq(legacy_plugin_add(L, &id), 0);
	cr_assert_neq(id, 0);
	return id;
}

static struct legacy_stats
stats(void)
{
	struct legacy_stats st;

	cr_assert_eq(legacy_stats_get(L, &st), 0);
	return st;
}

static uint64_t ARGS[8];

/* Tags say which function ran; the log keeps id, vCPU and udata. */
static void
sys_a(qpd_plugin_id id, unsigned vcpu, int64_t num, const uint64_t args[8],
      void *udata)
{
	(void)num, (void)args;
	log_call(1, id, vcpu, udata);
}

static void
sys_b(qpd_plugin_id id, unsigned vcpu, int64_t num, const uint64_t args[8],
      void *udata)
{
	(void)num, (void)args;
	log_call(2, id, vcpu, udata);
}

static void
simple_cb(qpd_plugin_id id, void *udata)
{
	log_call(3, id, 0, udata);
}

static void
vcpu_cb(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	log_call(4, id, vcpu, udata);
}

/* vCPU 0 online and inside a slice with its mask up to date. */
static void
enter0(void)
{
	cr_assert_eq(legacy_vcpu_init(L, 0), 0);
	cr_assert(legacy_vcpu_enter(L, 0));
}

static void
expect_ids(const qpd_plugin_id *ids, unsigned n)
{
	cr_assert_eq(LOG.n, n, "%u calls, expected %u", LOG.n, n);
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(LOG.e[i].id, ids[i], "call %u: plugin %lu", i,
			     (unsigned long)LOG.e[i].id);
}

Test(legacy, ids_unique_and_unknown_ids)
{
	qpd_plugin_id a = add(), b = add(), c = add();

	cr_assert(a < b && b < c);
	cr_assert_eq(legacy_register_cb(L, 99, QPD_EV_VCPU_SYSCALL, sys_a,
					NULL), -ENOENT);
	cr_assert_eq(legacy_plugin_uninstall(L, 99, NULL, NULL), -ENOENT);
	cr_assert_eq(legacy_plugin_reset(L, 99, NULL, NULL), -ENOENT);
	cr_assert_eq(legacy_vcpu_for_each(L, 99, NULL), -EINVAL);
	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_COUNT, sys_a, NULL),
		     -EINVAL);
	cr_assert_eq(stats().n_errors, 5);
	cr_assert_eq(stats().n_plugins, 3);
}

Test(legacy, callbacks_run_in_reverse_registration_order)
{
	qpd_plugin_id id[3] = { add(), add(), add() };
	const qpd_plugin_id rev[3] = { id[2], id[1], id[0] };

	enter0();
	for (unsigned i = 0; i < 3; i++) {
		cr_assert_eq(legacy_register_cb(L, id[i], QPD_EV_VCPU_SYSCALL,
						sys_a, NULL), 0);
		cr_assert_eq(legacy_register_cb(L, id[i], QPD_EV_ATEXIT,
						simple_cb, NULL), 0);
	}
	legacy_vcpu_safepoint(L, 0);
	legacy_syscall(L, 0, 1, ARGS);
	expect_ids(rev, 3);
	legacy_vcpu_leave(L, 0);
	LOG.n = 0;
	legacy_atexit(L);
	expect_ids(rev, 3);
}

/* Plugin b's callback re-registers plugin a's, which the walk reaches next. */
static qpd_plugin_id replace_target;

static void
sys_replacer(qpd_plugin_id id, unsigned vcpu, int64_t num,
	     const uint64_t args[8], void *udata)
{
	(void)num, (void)args;
	log_call(5, id, vcpu, udata);
	cr_assert_eq(legacy_register_cb(L, replace_target, QPD_EV_VCPU_SYSCALL,
					sys_b, &replace_target), 0);
}

Test(legacy, re_registration_replaces_in_place)
{
	qpd_plugin_id a = add(), b = add(), c = add();
	int ua, ua2;

	enter0();
	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_SYSCALL, sys_a, &ua),
		     0);
	cr_assert_eq(legacy_register_cb(L, b, QPD_EV_VCPU_SYSCALL, sys_a, NULL),
		     0);
	cr_assert_eq(legacy_register_cb(L, c, QPD_EV_VCPU_SYSCALL, sys_a, NULL),
		     0);
	legacy_vcpu_safepoint(L, 0);

	/* a keeps its place at the tail, with the new fn and udata. */
	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_SYSCALL, sys_b, &ua2),
		     0);
	legacy_syscall(L, 0, 1, ARGS);
	expect_ids((qpd_plugin_id[]){ c, b, a }, 3);
	cr_assert_eq(LOG.e[2].tag, 2);
	cr_assert_eq(LOG.e[2].udata, &ua2);
	cr_assert_eq(stats().n_replacements, 1);

	/* Removal then registration is a new entry, at the head. */
	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_SYSCALL, NULL, NULL),
		     0);
	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_SYSCALL, sys_a, &ua),
		     0);
	LOG.n = 0;
	legacy_syscall(L, 0, 1, ARGS);
	expect_ids((qpd_plugin_id[]){ a, c, b }, 3);
	cr_assert_eq(stats().n_deferred_frees, 1);

	/* A replacement made during a walk is seen by that walk. */
	replace_target = b;
	cr_assert_eq(legacy_register_cb(L, c, QPD_EV_VCPU_SYSCALL, sys_replacer,
					NULL), 0);
	LOG.n = 0;
	legacy_syscall(L, 0, 1, ARGS);
	expect_ids((qpd_plugin_id[]){ a, c, b }, 3);
	cr_assert_eq(LOG.e[1].tag, 5);
	cr_assert_eq(LOG.e[2].tag, 2, "b ran its old function");
	cr_assert_eq(LOG.e[2].udata, &replace_target);
	legacy_vcpu_leave(L, 0);
}

Test(legacy, masks_change_only_when_the_vcpu_drains_its_queue)
{
	qpd_plugin_id a = add();
	struct legacy_stats before, after;

	enter0();
	before = stats();
	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_SYSCALL, sys_a, NULL),
		     0);
	after = stats();
	cr_assert_eq(after.n_work_queued, before.n_work_queued + 1);
	cr_assert_eq(after.n_mask_updates, before.n_mask_updates);
	legacy_syscall(L, 0, 1, ARGS);
	cr_assert_eq(LOG.n, 0, "dispatched before the vCPU copied the mask");

	legacy_vcpu_safepoint(L, 0);
	cr_assert_eq(stats().n_mask_updates, before.n_mask_updates + 1);
	legacy_syscall(L, 0, 1, ARGS);
	cr_assert_eq(LOG.n, 1);

	/* A safepoint with nothing queued changes nothing. */
	legacy_vcpu_safepoint(L, 0);
	cr_assert_eq(stats().n_mask_updates, before.n_mask_updates + 1);
	legacy_vcpu_leave(L, 0);

	/* An idle vCPU gets the mask when it next enters. */
	cr_assert_eq(legacy_vcpu_init(L, 1), 0);
	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_SYSCALL_RET, sys_a,
					NULL), 0);
	cr_assert(legacy_vcpu_enter(L, 1));
	legacy_syscall_ret(L, 1, 1, 0);
	cr_assert_eq(LOG.n, 2);
	legacy_vcpu_leave(L, 1);
}

static bool
filter_cb(qpd_plugin_id id, unsigned vcpu, int64_t num, const uint64_t args[8],
	  uint64_t *sysret, void *udata)
{
	(void)num, (void)args;
	log_call(6, id, vcpu, udata);
	if (udata == NULL)
		return false;
	*sysret = id * 11;
	return true;
}

static void
discon_cb(qpd_plugin_id id, unsigned vcpu, enum qpd_discon_type type,
	  uint64_t from, uint64_t to, void *udata)
{
	(void)type, (void)from, (void)to;
	log_call(7, id, vcpu, udata);
}

static void
tb_cb(qpd_plugin_id id, unsigned vcpu, void *tb, void *udata)
{
	(void)tb;
	log_call(8, id, vcpu, udata);
}

Test(legacy, filter_first_true_wins_and_discon_needs_no_mask)
{
	qpd_plugin_id id[4] = { add(), add(), add(), add() };
	static int yes;
	uint64_t sysret = 0;

	enter0();
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(legacy_register_cb(L, id[i],
						QPD_EV_VCPU_SYSCALL_FILTER,
						filter_cb, i % 2 ? NULL : &yes),
			     0);
	cr_assert_eq(legacy_register_cb(L, id[0], QPD_EV_VCPU_EXCEPTION,
					discon_cb, NULL), 0);
	cr_assert_eq(legacy_register_cb(L, id[0], QPD_EV_VCPU_TB_TRANS, tb_cb,
					NULL), 0);

	/* No safepoint yet: discon walks, the masked events do not. */
	cr_assert_not(legacy_syscall_filter(L, 0, 1, ARGS, &sysret));
	legacy_tb_trans(L, 0, NULL);
	legacy_discon(L, 0, QPD_DISCON_EXCEPTION, 1, 2);
	legacy_discon(L, 5, QPD_DISCON_EXCEPTION, 1, 2); /* >= num_vcpus */
	legacy_discon(L, 0, QPD_DISCON_INTERRUPT, 1, 2); /* no callback */
	cr_assert_eq(LOG.n, 1);
	cr_assert_eq(LOG.e[0].tag, 7);

	legacy_vcpu_safepoint(L, 0);
	LOG.n = 0;
	cr_assert(legacy_syscall_filter(L, 0, 1, ARGS, &sysret));
	expect_ids((qpd_plugin_id[]){ id[3], id[2] }, 2);
	cr_assert_eq(sysret, id[2] * 11);
	legacy_tb_trans(L, 0, NULL);
	cr_assert_eq(LOG.e[2].tag, 8);
	legacy_vcpu_leave(L, 0);
}

static void
flush_cb(qpd_plugin_id id, void *udata)
{
	log_call(9, id, 0, udata);
}

Test(legacy, growth_past_16_vcpus_stops_the_world_once)
{
	struct legacy_scoreboard *sb = legacy_scoreboard_new(L, 16);
	legacy_u64 c = { sb, 8 };
	qpd_plugin_id a = add();
	unsigned v;

	cr_assert_not_null(sb);
	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_FLUSH, flush_cb, NULL), 0);
	cr_assert_not_null(legacy_dyn_new(L));
	for (v = 0; v < 16; v++) {
		cr_assert_eq(legacy_vcpu_init(L, v), 0);
		legacy_u64_set(c, v, 100 + v);
	}
	cr_assert(legacy_vcpu_enter(L, 3));
	legacy_inline_add_u64(c, 3, 1000);
	legacy_vcpu_leave(L, 3);
	cr_assert_eq(stats().n_stop_the_world, 0);
	cr_assert_eq(stats().scoreboard_alloc, 16);
	cr_assert_null(legacy_scoreboard_find(sb, 16));

	cr_assert_eq(legacy_vcpu_init(L, 16), 0);
	cr_assert_eq(stats().n_stop_the_world, 1);
	cr_assert_eq(stats().n_growths, 1);
	cr_assert_eq(stats().n_flushes, 1);
	cr_assert_eq(n_hook, 1);
	cr_assert_eq(LOG.n, 1, "FLUSH callbacks run by the flush");
	cr_assert_eq(stats().scoreboard_alloc, 32);
	for (v = 0; v < 16; v++)
		cr_assert_eq(legacy_u64_get(c, v), 100 + v + (v == 3 ? 1000 : 0));
	cr_assert_eq(legacy_u64_get(c, 16), 0);
	cr_assert_not_null(legacy_scoreboard_find(sb, 31));
	cr_assert_null(legacy_scoreboard_find(sb, 32));

	for (v = 17; v < 32; v++)
		cr_assert_eq(legacy_vcpu_init(L, v), 0);
	cr_assert_eq(stats().n_stop_the_world, 1);
	cr_assert_eq(legacy_vcpu_init(L, 32), 0);
	cr_assert_eq(stats().n_stop_the_world, 2);
	cr_assert_eq(stats().scoreboard_alloc, 64);
	cr_assert_eq(legacy_u64_sum(c), 16 * 100 + 120 + 1000);
	cr_assert_eq(legacy_scoreboard_free(L, sb), 0);
}

Test(legacy, growth_without_scoreboards_only_raises_the_size)
{
	struct legacy_scoreboard *sb;

	cr_assert_eq(legacy_vcpu_init(L, 40), 0);
	cr_assert_eq(stats().n_stop_the_world, 0);
	cr_assert_eq(stats().scoreboard_alloc, 64);
	cr_assert_eq(n_hook, 0);
	sb = legacy_scoreboard_new(L, 8);
	cr_assert_not_null(legacy_scoreboard_find(sb, 63));
	cr_assert_null(legacy_scoreboard_find(sb, 64));
	cr_assert_eq(legacy_scoreboard_free(L, sb), 0);
}

static void
mem_cb(unsigned vcpu, uint32_t meminfo, uint64_t vaddr, void *udata)
{
	(void)meminfo, (void)vaddr;
	log_call((int)(intptr_t)udata, 0, vcpu, udata);
}

Test(legacy, memory_executor_stops_at_the_first_mismatch)
{
	struct legacy_scoreboard *sb = legacy_scoreboard_new(L, 8);
	legacy_u64 c = { sb, 0 };
	struct legacy_dyn *d = legacy_dyn_new(L);

	cr_assert_eq(legacy_vcpu_init(L, 0), 0);
	cr_assert_eq(legacy_dyn_add_mem_cb(d, mem_cb, QPD_MEM_R, (void *)1), 0);
	cr_assert_eq(legacy_dyn_add_mem_cb(d, mem_cb, QPD_MEM_W, (void *)2), 0);
	cr_assert_eq(legacy_dyn_add_mem_inline(d, QPD_MEM_R, QPD_OP_ADD_U64, c,
					       5), 0);
	cr_assert_eq(legacy_dyn_add_mem_cb(d, mem_cb, QPD_MEM_RW, (void *)3),
		     0);
	cr_assert(legacy_vcpu_enter(L, 0));

	legacy_dyn_exec_mem(d, 0, 0x1000, 0, QPD_MEM_R);
	cr_assert_eq(LOG.n, 1, "QEMU 9.0 stops at the W entry");
	cr_assert_eq(LOG.e[0].tag, 1);
	cr_assert_eq(legacy_u64_get(c, 0), 0);
	legacy_dyn_exec_mem(d, 0, 0x1000, 0, QPD_MEM_W);
	cr_assert_eq(LOG.n, 1, "the first entry already mismatches");

	legacy_set_mem_break(L, false);
	LOG.n = 0;
	legacy_dyn_exec_mem(d, 0, 0x1000, 0, QPD_MEM_R);
	cr_assert_eq(LOG.n, 2);
	cr_assert_eq(LOG.e[0].tag, 1);
	cr_assert_eq(LOG.e[1].tag, 3);
	cr_assert_eq(legacy_u64_get(c, 0), 5);
	LOG.n = 0;
	legacy_dyn_exec_mem(d, 0, 0x1000, 0, QPD_MEM_W);
	cr_assert_eq(LOG.n, 2);
	cr_assert_eq(LOG.e[0].tag, 2);
	cr_assert_eq(LOG.e[1].tag, 3);
	legacy_vcpu_leave(L, 0);
}

static void
dyn_cb(unsigned vcpu, void *udata)
{
	log_call((int)(intptr_t)udata, 0, vcpu, udata);
}

Test(legacy, dynamic_list_entries_run_in_order)
{
	struct legacy_scoreboard *sb = legacy_scoreboard_new(L, 16);
	legacy_u64 c = { sb, 8 }, bad = { sb, 12 }, past = { sb, 16 };
	struct legacy_dyn *d = legacy_dyn_new(L);
	static const int want[] = { 1, 2, 3, 5 };

	cr_assert_eq(legacy_vcpu_init(L, 1), 0);
	cr_assert_eq(legacy_dyn_add_cb(d, dyn_cb, (void *)1), 0);
	cr_assert_eq(legacy_dyn_add_inline(d, QPD_OP_ADD_U64, c, 3), 0);
	cr_assert_eq(legacy_dyn_add_cond_cb(d, dyn_cb, (void *)2, QPD_COND_GE,
					    c, 3), 0);
	cr_assert_eq(legacy_dyn_add_inline(d, QPD_OP_STORE_U64, c, 10), 0);
	cr_assert_eq(legacy_dyn_add_cond_cb(d, dyn_cb, (void *)3, QPD_COND_EQ,
					    c, 10), 0);
	cr_assert_eq(legacy_dyn_add_cond_cb(d, dyn_cb, (void *)4, QPD_COND_LT,
					    c, 5), 0);
	cr_assert_eq(legacy_dyn_add_cond_cb(d, dyn_cb, (void *)6,
					    QPD_COND_NEVER, c, 0), 0);
	cr_assert_eq(legacy_dyn_add_cond_cb(d, dyn_cb, (void *)5,
					    QPD_COND_ALWAYS, c, 0), 0);
	cr_assert_eq(legacy_dyn_add_inline(d, 7, c, 1), -EINVAL);
	cr_assert_eq(legacy_dyn_add_inline(d, QPD_OP_ADD_U64, bad, 1), -EINVAL);
	cr_assert_eq(legacy_dyn_add_inline(d, QPD_OP_ADD_U64, past, 1),
		     -EINVAL);
	cr_assert_eq(legacy_dyn_add_mem_cb(d, mem_cb, 0, NULL), -EINVAL);
	cr_assert_eq(legacy_dyn_add_cb(d, NULL, NULL), -EINVAL);

	cr_assert(legacy_vcpu_enter(L, 1));
	legacy_dyn_exec(d, 1);
	legacy_vcpu_leave(L, 1);
	cr_assert_eq(LOG.n, 4);
	for (unsigned i = 0; i < 4; i++) {
		cr_assert_eq(LOG.e[i].tag, want[i]);
		cr_assert_eq(LOG.e[i].vcpu, 1);
	}
	cr_assert_eq(legacy_u64_get(c, 1), 10);
	cr_assert_eq(legacy_u64_get(c, 0), 0);
}

/* Uninstalling from a callback inside a slice. */
static qpd_plugin_id self_id;
static int n_done;
static struct legacy_stats at_done;

static void
done_snapshot(qpd_plugin_id id, void *arg)
{
	cr_assert_eq(id, self_id);
	cr_assert_eq(legacy_stats_get(L, &at_done), 0);
	(*(int *)arg)++;
}

static void
sys_uninstall_self(qpd_plugin_id id, unsigned vcpu, int64_t num,
		   const uint64_t args[8], void *udata)
{
	(void)num, (void)args;
	log_call(10, id, vcpu, udata);
	if (num == 1)
		cr_assert_eq(legacy_plugin_uninstall(L, id, done_snapshot,
						     &n_done), 0);
}

Test(legacy, uninstall_inside_a_slice_waits_for_the_safepoint)
{
	qpd_plugin_id a = add(), b = add();

	self_id = a;
	enter0();
	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_SYSCALL,
					sys_uninstall_self, NULL), 0);
	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_FLUSH, flush_cb, NULL), 0);
	cr_assert_eq(legacy_register_cb(L, b, QPD_EV_FLUSH, flush_cb, NULL), 0);
	legacy_vcpu_safepoint(L, 0);

	legacy_syscall(L, 0, 1, ARGS);
	cr_assert_eq(n_done, 0, "done before the vCPU left its slice");
	cr_assert_eq(stats().n_stop_the_world, 0);
	legacy_syscall(L, 0, 2, ARGS);
	cr_assert_eq(LOG.n, 2, "callbacks stay until the stop");
	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_IDLE, vcpu_cb, NULL),
		     -ESHUTDOWN);
	cr_assert_eq(legacy_plugin_uninstall(L, a, NULL, NULL), -EALREADY);
	cr_assert_eq(legacy_plugin_reset(L, a, NULL, NULL), -ESHUTDOWN);

	LOG.n = 0;
	legacy_vcpu_leave(L, 0);
	cr_assert_eq(n_done, 1);
	cr_assert_eq(at_done.n_stop_the_world, 1);
	cr_assert_eq(at_done.n_flushes, 1, "flushed before done");
	cr_assert_eq(n_hook, 1);
	expect_ids((qpd_plugin_id[]){ b, a }, 2); /* both FLUSH callbacks */
	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_IDLE, vcpu_cb, NULL),
		     -ENOENT);
	cr_assert_eq(stats().n_plugins, 1);
	cr_assert_eq(stats().n_done_calls, 1);
	cr_assert(legacy_vcpu_enter(L, 0));
	LOG.n = 0;
	legacy_syscall(L, 0, 1, ARGS);
	cr_assert_eq(LOG.n, 0);
	legacy_vcpu_leave(L, 0);
}

/* Helper threads count failed checks; the test thread asserts none. */
static atomic_int thread_failures;
#define CHECK(x) ((x) ? (void)0 : (void)atomic_fetch_add(&thread_failures, 1))

/* Uninstall from another thread waits until the vCPU leaves its slice. */
static atomic_int in_slice, ready, requested, seen_in_slice = -1;

static void *
slow_vcpu(void *arg)
{
	struct timespec ms = { 0, 1000000 }, pause = { 0, 30000000 };

	(void)arg;
	CHECK(legacy_vcpu_init(L, 0) == 0);
	CHECK(legacy_vcpu_enter(L, 0));
	atomic_store(&in_slice, 1);
	atomic_store(&ready, 1);
	while (!atomic_load(&requested))
		nanosleep(&ms, NULL);
	nanosleep(&pause, NULL); /* an uninstall that did not wait runs now */
	atomic_store(&in_slice, 0);
	legacy_vcpu_leave(L, 0);
	CHECK(legacy_vcpu_exit(L, 0) == 0);
	return NULL;
}

static void
done_sees_slice(qpd_plugin_id id, void *arg)
{
	(void)id, (void)arg;
	atomic_store(&seen_in_slice, atomic_load(&in_slice));
}

Test(legacy, uninstall_elsewhere_stops_the_world_before_done)
{
	qpd_plugin_id a = add();
	struct timespec ms = { 0, 1000000 };
	pthread_t t;

	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_SYSCALL, sys_a, NULL),
		     0);
	pthread_create(&t, NULL, slow_vcpu, NULL);
	while (!atomic_load(&ready))
		nanosleep(&ms, NULL);
	atomic_store(&requested, 1);
	cr_assert_eq(legacy_plugin_uninstall(L, a, done_sees_slice, NULL), 0);
	cr_assert_eq(atomic_load(&seen_in_slice), 0,
		     "done ran while a vCPU was inside its slice");
	pthread_join(t, NULL);
	cr_assert_eq(atomic_load(&thread_failures), 0);
	cr_assert_eq(stats().n_stop_the_world, 1);
	cr_assert_eq(stats().n_done_calls, 1);
}

Test(legacy, reset_keeps_the_plugin)
{
	qpd_plugin_id a = add();
	int done = 0;

	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_SYSCALL, sys_a, NULL),
		     0);
	/* No vCPU yet: stopped, but nothing to flush (QEMU skips tb_flush). */
	cr_assert_eq(legacy_plugin_reset(L, a, done_set_flag, &done), 0);
	cr_assert_eq(done, 1);
	cr_assert_eq(stats().n_flushes, 0);
	cr_assert_eq(stats().n_plugins, 1);

	enter0();
	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_SYSCALL, sys_a, NULL),
		     0);
	legacy_vcpu_safepoint(L, 0);
	legacy_syscall(L, 0, 1, ARGS);
	cr_assert_eq(LOG.n, 1);
	cr_assert_eq(legacy_plugin_reset(L, a, done_set_flag, &done), 0);
	cr_assert_eq(legacy_plugin_reset(L, a, NULL, NULL), -EALREADY);
	legacy_vcpu_leave(L, 0);
	cr_assert_eq(done, 2);
	cr_assert_eq(stats().n_flushes, 1);
	cr_assert(legacy_vcpu_enter(L, 0));
	legacy_syscall(L, 0, 1, ARGS);
	cr_assert_eq(LOG.n, 1, "a reset callback ran");
	cr_assert_eq(legacy_plugin_reset(L, a, NULL, NULL), 0);
	legacy_vcpu_leave(L, 0);
}

Test(legacy, atexit_runs_once_and_user_exit_keeps_only_atexit)
{
	qpd_plugin_id a = add(), b = add();

	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_ATEXIT, simple_cb, NULL),
		     0);
	cr_assert_eq(legacy_register_cb(L, b, QPD_EV_ATEXIT, simple_cb, NULL),
		     0);
	cr_assert_eq(legacy_register_cb(L, b, QPD_EV_VCPU_SYSCALL, sys_a, NULL),
		     0);
	cr_assert_eq(legacy_register_cb(L, b, QPD_EV_FLUSH, flush_cb, NULL), 0);
	enter0();
	cr_assert_eq(legacy_user_exit(L), -EBUSY);
	legacy_vcpu_leave(L, 0);

	cr_assert_eq(legacy_user_exit(L), 0);
	expect_ids((qpd_plugin_id[]){ b, a }, 2);
	cr_assert_eq(stats().n_unregistrations, 2, "SYSCALL and FLUSH removed");
	cr_assert_eq(n_hook, 1);
	legacy_atexit(L);
	legacy_atexit(L);
	cr_assert_eq(LOG.n, 2);
	cr_assert(legacy_vcpu_enter(L, 0));
	legacy_syscall(L, 0, 1, ARGS);
	cr_assert_eq(LOG.n, 2);
	legacy_vcpu_leave(L, 0);
}

Test(legacy, idle_and_resume_before_init_are_ignored)
{
	qpd_plugin_id a = add();

	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_IDLE, vcpu_cb, NULL),
		     0);
	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_RESUME, vcpu_cb,
					NULL), 0);
	legacy_vcpu_idle(L, 0);
	legacy_vcpu_resume(L, 0);
	cr_assert_eq(LOG.n, 0);
	cr_assert_eq(legacy_vcpu_init(L, 0), 0);
	legacy_vcpu_idle(L, 0);
	legacy_vcpu_resume(L, 0);
	legacy_vcpu_idle(L, 3);
	cr_assert_eq(LOG.n, 2);
	cr_assert_eq(legacy_vcpu_init(L, 3), 0);
	cr_assert_eq(legacy_vcpu_exit(L, 3), 0);
	legacy_vcpu_idle(L, 3); /* below num_vcpus: QEMU runs it, offline or not */
	cr_assert_eq(LOG.n, 3);
	cr_assert_eq(LOG.e[2].vcpu, 3);
}

static unsigned visited[8];

static void
visit(qpd_plugin_id id, unsigned vcpu)
{
	(void)id;
	visited[vcpu]++;
}

Test(legacy, vcpu_lifecycle_and_for_each)
{
	qpd_plugin_id a = add();
	static const unsigned want[8] = { 1, 0, 0, 0, 0, 1, 0, 0 };

	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_INIT, vcpu_cb, NULL),
		     0);
	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_EXIT, vcpu_cb, NULL),
		     0);
	cr_assert_eq(legacy_vcpu_init(L, 0), 0);
	cr_assert_eq(legacy_vcpu_init(L, 2), 0);
	cr_assert_eq(legacy_vcpu_init(L, 5), 0);
	cr_assert_eq(legacy_vcpu_init(L, 5), -EEXIST);
	cr_assert_eq(legacy_vcpu_init(L, QPD_DEFAULT_MAX_VCPUS), -EINVAL);
	cr_assert_eq(legacy_vcpu_exit(L, 4), -ENOENT);
	cr_assert(legacy_vcpu_enter(L, 0));
	cr_assert_eq(legacy_vcpu_init(L, 1), -EBUSY);
	cr_assert_eq(legacy_vcpu_exit(L, 2), -EBUSY);
	cr_assert_not(legacy_vcpu_enter(L, 2), "nested slice");
	legacy_vcpu_leave(L, 0);
	cr_assert_eq(legacy_vcpu_exit(L, 2), 0);
	cr_assert_not(legacy_vcpu_enter(L, 2), "offline");
	cr_assert_eq(LOG.n, 4);
	cr_assert_eq(LOG.e[3].vcpu, 2);
	cr_assert_eq(legacy_num_vcpus(L), 6);
	cr_assert_eq(stats().n_vcpus_online, 2);

	cr_assert_eq(legacy_vcpu_for_each(L, a, visit), 0);
	cr_assert_arr_eq(visited, want, sizeof(want));
	cr_assert_eq(legacy_vcpu_init(L, 2), 0, "an index can come back");
}

Test(legacy, scoreboard_errors)
{
	struct legacy_scoreboard *sb;

	errno = 0;
	cr_assert_null(legacy_scoreboard_new(L, 0));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(legacy_scoreboard_new(L, QPD_SCOREBOARD_MAX_ELEM + 1));
	sb = legacy_scoreboard_new(L, QPD_SCOREBOARD_MAX_ELEM);
	cr_assert_not_null(sb);
	cr_assert_eq(legacy_scoreboard_free(L, NULL), -EINVAL);
	cr_assert_eq(legacy_scoreboard_free(L, sb), 0);
	cr_assert_eq(legacy_scoreboard_free(L, sb), -ENOENT);
}

Test(legacy, flush_inside_a_slice_is_queued)
{
	qpd_plugin_id a = add();

	cr_assert_eq(legacy_register_cb(L, a, QPD_EV_FLUSH, flush_cb, NULL), 0);
	legacy_flush(L);
	cr_assert_eq(n_hook, 1);
	cr_assert_eq(LOG.n, 1);
	enter0();
	legacy_flush(L);
	cr_assert_eq(n_hook, 1);
	legacy_vcpu_safepoint(L, 0);
	cr_assert_eq(n_hook, 2);
	cr_assert_eq(LOG.n, 2);
	legacy_vcpu_leave(L, 0);
	cr_assert_eq(stats().n_stop_the_world, 2);
	cr_assert_eq(stats().n_flushes, 2);
}

/* ------------------------------------------------------------------
 * Threads: growth parks running vCPUs, plain unregistration is deferred.
 */
#define ADDERS 2
#define LAST_VCPU 199 /* growths at 16, 32, 64 and 128 */

static legacy_u64 counter;
static struct legacy_dyn *block; /* rebuilt by every flush */
static atomic_int n_inside, grower_done;
static uint64_t iterations[ADDERS];

static void
rebuild(void *opaque)
{
	struct legacy_dyn *d = legacy_dyn_new(L);

	(*(int *)opaque)++;
	cr_assert_eq(legacy_dyn_add_inline(d, QPD_OP_ADD_U64, counter, 2), 0);
	ck_pr_store_ptr(&block, d);
}

static void *
adder(void *arg)
{
	unsigned v = (unsigned)(uintptr_t)arg;
	const struct legacy_dyn *d;
	uint64_t i;

	CHECK(legacy_vcpu_init(L, v) == 0);
	CHECK(legacy_vcpu_enter(L, v));
	d = ck_pr_load_ptr(&block);
	atomic_fetch_add(&n_inside, 1);
	for (i = 0; i < 100000 || !atomic_load(&grower_done); i++) {
		legacy_inline_add_u64(counter, v, 1);
		legacy_dyn_exec(d, v); /* adds 2 */
		if ((i & 63) == 63) {
			legacy_vcpu_safepoint(L, v);
			d = ck_pr_load_ptr(&block); /* retranslated */
		}
	}
	iterations[v] = i;
	legacy_vcpu_leave(L, v);
	CHECK(legacy_vcpu_exit(L, v) == 0);
	return NULL;
}

Test(legacy, growth_parks_running_vcpus_and_loses_no_update)
{
	struct legacy_opts o = { .on_flush = rebuild, .opaque = &n_hook };
	struct timespec ms = { 0, 1000000 };
	pthread_t t[ADDERS];
	uint64_t want = 0;
	struct legacy_stats st;

	legacy_free(L);
	L = legacy_new(&o);
	counter = (legacy_u64){ legacy_scoreboard_new(L, 8), 0 };
	rebuild(&n_hook);
	n_hook = 0;
	for (unsigned i = 0; i < ADDERS; i++)
		pthread_create(&t[i], NULL, adder, (void *)(uintptr_t)i);
	while (atomic_load(&n_inside) < ADDERS)
		nanosleep(&ms, NULL);
	for (unsigned v = ADDERS; v <= LAST_VCPU; v++)
		cr_assert_eq(legacy_vcpu_init(L, v), 0);
	atomic_store(&grower_done, 1);
	for (unsigned i = 0; i < ADDERS; i++) {
		pthread_join(t[i], NULL);
		want += 3 * iterations[i];
	}
	cr_assert_eq(atomic_load(&thread_failures), 0);
	cr_assert_eq(legacy_u64_sum(counter), want, "sum %lu, expected %lu",
		     (unsigned long)legacy_u64_sum(counter),
		     (unsigned long)want);
	st = stats();
	cr_assert_eq(st.n_growths, 4);
	cr_assert_eq(st.n_stop_the_world, 4);
	cr_assert_eq(n_hook, 4);
	cr_assert_eq(st.scoreboard_alloc, 256);
	cr_assert_geq(st.stall_total_ns, st.stall_max_ns);
	cr_assert_gt(st.stall_max_ns, 0);
}

static atomic_int reader_stop;

static void *
reader(void *arg)
{
	(void)arg;
	CHECK(legacy_vcpu_init(L, 0) == 0);
	CHECK(legacy_vcpu_enter(L, 0));
	atomic_store(&ready, 1);
	while (!atomic_load(&reader_stop)) {
		legacy_syscall(L, 0, 1, ARGS);
		legacy_vcpu_safepoint(L, 0);
	}
	legacy_vcpu_leave(L, 0);
	CHECK(legacy_vcpu_exit(L, 0) == 0);
	return NULL;
}

static void
sys_count(qpd_plugin_id id, unsigned vcpu, int64_t num,
	  const uint64_t args[8], void *udata)
{
	(void)id, (void)vcpu, (void)num, (void)args;
	atomic_fetch_add((atomic_int *)udata, 1);
}

Test(legacy, plain_unregistration_defers_the_free)
{
	qpd_plugin_id a = add(), b = add();
	struct timespec ms = { 0, 1000000 };
	static atomic_int calls;
	pthread_t t;

	cr_assert_eq(legacy_register_cb(L, b, QPD_EV_VCPU_SYSCALL, sys_count,
					&calls), 0);
	pthread_create(&t, NULL, reader, NULL);
	while (!atomic_load(&ready))
		nanosleep(&ms, NULL);
	/* Freed at once, an entry would be read after free (ASan). */
	for (unsigned i = 0; i < 20000; i++) {
		cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_SYSCALL,
						sys_count, &calls), 0);
		cr_assert_eq(legacy_register_cb(L, a, QPD_EV_VCPU_SYSCALL,
						NULL, NULL), 0);
	}
	atomic_store(&reader_stop, 1);
	pthread_join(t, NULL);
	cr_assert_eq(atomic_load(&thread_failures), 0);
	cr_assert_eq(stats().n_deferred_frees, 20000);
	cr_assert_gt(atomic_load(&calls), 0);
}
