/*
 * Bad input: every public function with invalid ids, events, pointers,
 * vCPU indices, sizes, ops, conditions, access kinds and offsets, and
 * with double frees, double retires, double uninstalls and calls after
 * uninstall.  One test per row of doc/errors.md.
 *
 * Each row checks the documented result, that the error hook saw exactly
 * that code from that public function (or nothing, when the function has
 * no instance to report to), that every counter of qpd_stats_get() is
 * unchanged but n_errors, and that the instance still works afterwards.
 */
#include <limits.h>
#include <stdint.h>
#include <unistd.h>

#include "helpers.h"

#define MAXV 128u /* two chunks of vCPUs */

static struct {
	struct qpd *q;
	qpd_plugin_id id;        /* has an IDLE callback */
	struct qpd_scoreboard *sb; /* 16 bytes */
	qpd_u64 c;               /* offset 0 of sb */
	struct qpd_dyn *l;       /* one inline add of 1 on c */
	struct qpd_stats before;
} F;

static struct {
	int err;
	unsigned calls;
	const char *func;
} hook;

static void
on_error(int err, const char *func, void *opaque)
{
	cr_assert_eq(opaque, &hook);
	hook.err = err;
	hook.func = func;
	hook.calls++;
}

static void
cb(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	log_call(1, id, vcpu, udata);
}

static void
dyn_cb(unsigned vcpu, void *udata)
{
	log_call(2, 0, vcpu, udata);
}

static void
mem_cb(unsigned vcpu, uint32_t info, uint64_t vaddr, void *udata)
{
	(void)info, (void)vaddr;
	log_call(3, 0, vcpu, udata);
}

static void
fe_cb(qpd_plugin_id id, unsigned vcpu)
{
	log_call(4, id, vcpu, NULL);
}

static struct qpd *
new_instance(void)
{
	struct qpd_config cfg = { .max_vcpus = MAXV,
				  .no_reclaimer_thread = true,
				  .on_error = on_error, .opaque = &hook };
	struct qpd *q = qpd_new(&cfg);

	cr_assert_not_null(q);
	return q;
}

/* Takes the snapshot that a failing call must leave unchanged. */
static void
snap(void)
{
	cr_assert_eq(qpd_stats_get(F.q, &F.before), 0);
	memset(&hook, 0, sizeof(hook));
	memset(&LOG, 0, sizeof(LOG));
}

static void
setup(void)
{
	F.q = new_instance();
	F.id = add_plugin(F.q);
	cr_assert_eq(qpd_register_cb(F.q, F.id, QPD_EV_VCPU_IDLE, cb, NULL), 0);
	cr_assert_eq(qpd_vcpu_init(F.q, 0), 0);
	F.sb = qpd_scoreboard_new(F.q, 16);
	cr_assert_not_null(F.sb);
	F.c = (qpd_u64){ F.sb, 0 };
	F.l = qpd_dyn_new(F.q);
	cr_assert_not_null(F.l);
	cr_assert_eq(qpd_dyn_add_inline(F.l, QPD_OP_ADD_U64, F.c, 1), 0);
	snap();
}

static void
teardown(void)
{
	qpd_free(F.q);
}

TestSuite(badinput, .init = setup, .fini = teardown);

/* Every counter but n_errors as in the snapshot; n_errors up by errs. */
static void
assert_unchanged(unsigned errs)
{
	struct qpd_stats st;

	cr_assert_eq(qpd_stats_get(F.q, &st), 0);
	for (unsigned ev = 0; ev < QPD_EV_COUNT; ev++)
		cr_assert_eq(st.n_dispatch[ev], F.before.n_dispatch[ev],
			     "n_dispatch[%u]", ev);
	cr_assert_eq(st.n_registrations, F.before.n_registrations);
	cr_assert_eq(st.n_unregistrations, F.before.n_unregistrations);
	cr_assert_eq(st.n_grace_periods, F.before.n_grace_periods);
	cr_assert_eq(st.n_reclaimed, F.before.n_reclaimed);
	cr_assert_eq(st.n_pending_reclaim, F.before.n_pending_reclaim);
	cr_assert_eq(st.n_done_calls, F.before.n_done_calls);
	cr_assert_eq(st.n_plugins, F.before.n_plugins);
	cr_assert_eq(st.n_vcpus_online, F.before.n_vcpus_online);
	cr_assert_eq(st.n_vcpus, F.before.n_vcpus);
	cr_assert_eq(st.n_errors, F.before.n_errors + errs);
	cr_assert_eq(st.n_scoreboards, F.before.n_scoreboards);
	cr_assert_eq(st.n_sb_arenas, F.before.n_sb_arenas);
	cr_assert_eq(st.sb_capacity, F.before.sb_capacity);
	cr_assert_eq(st.n_sb_moved, F.before.n_sb_moved);
}

/* The instance still does what it is asked, and reports no error. */
static void
still_works(void)
{
	unsigned calls = hook.calls;
	struct qpd_scoreboard *sb;
	struct qpd_dyn *l;
	qpd_plugin_id id;
	uint64_t before;

	memset(&LOG, 0, sizeof(LOG));
	qpd_vcpu_idle(F.q, 0);
	cr_assert_eq(LOG.n, 1, "the IDLE callback runs");
	cr_assert_eq(LOG.e[0].id, F.id);
	cr_assert_eq(qpd_plugin_add(F.q, &id), 0);
	cr_assert_eq(qpd_register_cb(F.q, id, QPD_EV_VCPU_RESUME, cb, NULL), 0);
	qpd_vcpu_resume(F.q, 0);
	cr_assert_eq(LOG.n, 2, "a new registration runs");
	sb = qpd_scoreboard_new(F.q, 8);
	cr_assert_not_null(sb);
	l = qpd_dyn_new(F.q);
	cr_assert_not_null(l);
	cr_assert_eq(qpd_dyn_add_inline(l, QPD_OP_ADD_U64, F.c, 3), 0);
	cr_assert(qpd_vcpu_enter(F.q, 0));
	before = qpd_u64_get(F.c, 0);
	qpd_dyn_exec(l, 0);
	cr_assert_eq(qpd_u64_get(F.c, 0), before + 3, "a new list executes");
	qpd_vcpu_leave(F.q, 0);
	cr_assert_eq(qpd_dyn_retire(F.q, l), 0);
	cr_assert_eq(qpd_scoreboard_free(F.q, sb), 0);
	cr_assert_eq(qpd_vcpu_init(F.q, MAXV - 1), 0);
	cr_assert_eq(qpd_vcpu_exit(F.q, MAXV - 1), 0);
	cr_assert_eq(qpd_plugin_uninstall(F.q, id, NULL, NULL), 0);
	cr_assert_eq(hook.calls, calls, "no error on valid calls");
	memset(&LOG, 0, sizeof(LOG));
}

/* A slow path refused: code, one hook call naming func, nothing else. */
static void
refused(long rc, int err, const char *func)
{
	cr_assert_eq(rc, err, "%s returned %ld, expected %d", func, rc, err);
	cr_assert_eq(hook.calls, 1, "the error hook runs once");
	cr_assert_eq(hook.err, err);
	cr_assert_str_eq(hook.func, func);
	assert_unchanged(1);
	still_works();
}

/* Same for functions that return NULL and set errno. */
static void
refused_null(const void *p, int err, const char *func)
{
	cr_assert_null(p);
	cr_assert_eq(errno, err, "errno %d, expected %d", errno, err);
	refused(-err, -err, func);
}

/* No instance to report to, or nothing to report: no change at all. */
static void
ignored(void)
{
	cr_assert_eq(hook.calls, 0, "no error reported");
	cr_assert_eq(LOG.n, 0, "no callback ran");
	assert_unchanged(0);
	still_works();
}

/* The same for a call that must return err without an instance. */
static void
ignored_rc(long rc, int err)
{
	cr_assert_eq(rc, err, "returned %ld, expected %d", rc, err);
	ignored();
}

/*
 * A plugin being uninstalled (forgotten too, once its done ran, when
 * `done` is set); the snapshot is taken after.
 */
static qpd_plugin_id
uninstalled(bool done)
{
	static int flag; /* the hook may run at teardown */
	qpd_plugin_id id = add_plugin(F.q);

	flag = 0;
	cr_assert_eq(qpd_plugin_uninstall(F.q, id, done_set_flag, &flag), 0);
	if (done)
		cr_assert(reclaim_until(F.q, &flag));
	snap();
	return id;
}

/* ---------------------------------------------------------------- core */

/* qpd_new refuses the configuration: NULL, errno EINVAL, nothing kept. */
static void
new_refused(struct qpd_config cfg)
{
	errno = 0;
	cr_assert_null(qpd_new(&cfg));
	cr_assert_eq(errno, EINVAL);
	ignored();
}

Test(badinput, new_max_vcpus_over_limit)
{
	new_refused((struct qpd_config){ .max_vcpus = QPD_MAX_VCPUS_LIMIT + 1 });
}

Test(badinput, new_max_vcpus_uint_max)
{
	new_refused((struct qpd_config){ .max_vcpus = UINT_MAX });
}

Test(badinput, new_slot_align_not_power_of_two)
{
	new_refused((struct qpd_config){ .slot_align = 96 });
}

Test(badinput, new_slot_align_below_8)
{
	new_refused((struct qpd_config){ .slot_align = 4 });
}

Test(badinput, new_slot_align_over_page)
{
	new_refused((struct qpd_config){
		.slot_align = 2 * (unsigned)sysconf(_SC_PAGESIZE) });
}

Test(badinput, free_null)
{
	qpd_free(NULL);
	ignored();
}

Test(badinput, strerror_unknown_and_positive_codes)
{
	const char *unknown = qpd_strerror(-9999);

	cr_assert_not_null(unknown);
	cr_assert_str_eq(qpd_strerror(INT_MIN), unknown);
	cr_assert_str_eq(qpd_strerror(EINVAL), unknown, "codes are negative");
	ignored();
}

Test(badinput, plugin_add_null_instance)
{
	qpd_plugin_id id;

	ignored_rc(qpd_plugin_add(NULL, &id), -EINVAL);
}

Test(badinput, plugin_add_null_out)
{
	refused(qpd_plugin_add(F.q, NULL), -EINVAL, "qpd_plugin_add");
}

Test(badinput, uninstall_null_instance)
{
	ignored_rc(qpd_plugin_uninstall(NULL, F.id, NULL, NULL), -EINVAL);
}

Test(badinput, uninstall_unknown_id)
{
	refused(qpd_plugin_uninstall(F.q, F.id + 1000, NULL, NULL), -ENOENT,
		"qpd_plugin_uninstall");
}

Test(badinput, uninstall_id_zero)
{
	refused(qpd_plugin_uninstall(F.q, 0, NULL, NULL), -ENOENT,
		"qpd_plugin_uninstall");
}

Test(badinput, uninstall_twice)
{
	qpd_plugin_id id = add_plugin(F.q);
	int first = 0, second = 0;

	cr_assert_eq(qpd_plugin_uninstall(F.q, id, done_set_flag, &first), 0);
	snap();
	refused(qpd_plugin_uninstall(F.q, id, done_set_flag, &second),
		-EALREADY, "qpd_plugin_uninstall");
	cr_assert(reclaim_until(F.q, &first));
	cr_assert_eq(first, 1);
	cr_assert_eq(second, 0, "the refused uninstall's done never runs");
}

Test(badinput, uninstall_after_done)
{
	refused(qpd_plugin_uninstall(F.q, uninstalled(true), NULL, NULL),
		-ENOENT, "qpd_plugin_uninstall");
}

Test(badinput, reset_null_instance)
{
	ignored_rc(qpd_plugin_reset(NULL, F.id, NULL, NULL), -EINVAL);
}

Test(badinput, reset_unknown_id)
{
	refused(qpd_plugin_reset(F.q, F.id + 1000, NULL, NULL), -ENOENT,
		"qpd_plugin_reset");
}

Test(badinput, reset_while_resetting)
{
	qpd_plugin_id id = add_plugin(F.q);

	cr_assert_eq(qpd_plugin_reset(F.q, id, NULL, NULL), 0);
	snap();
	refused(qpd_plugin_reset(F.q, id, NULL, NULL), -EALREADY,
		"qpd_plugin_reset");
}

Test(badinput, reset_while_uninstalling)
{
	refused(qpd_plugin_reset(F.q, uninstalled(false), NULL, NULL),
		-ESHUTDOWN, "qpd_plugin_reset");
}

Test(badinput, reset_after_uninstall_done)
{
	refused(qpd_plugin_reset(F.q, uninstalled(true), NULL, NULL), -ENOENT,
		"qpd_plugin_reset");
}

Test(badinput, reclaim_null_instance)
{
	ignored_rc(qpd_reclaim(NULL), -EINVAL);
}

Test(badinput, stats_get_null_instance)
{
	struct qpd_stats st;

	ignored_rc(qpd_stats_get(NULL, &st), -EINVAL);
}

Test(badinput, stats_get_null_out)
{
	refused(qpd_stats_get(F.q, NULL), -EINVAL, "qpd_stats_get");
}

Test(badinput, prefork_null_instance)
{
	ignored_rc(qpd_prefork(NULL), -EINVAL);
}

Test(badinput, postfork_parent_null_instance)
{
	ignored_rc(qpd_postfork(NULL, false), -EINVAL);
}

Test(badinput, postfork_child_null_instance)
{
	ignored_rc(qpd_postfork(NULL, true), -EINVAL);
}

/* ---------------------------------------------------------------- vCPUs */

Test(badinput, vcpu_init_null_instance)
{
	ignored_rc(qpd_vcpu_init(NULL, 1), -EINVAL);
}

Test(badinput, vcpu_init_past_max)
{
	refused(qpd_vcpu_init(F.q, MAXV), -EINVAL, "qpd_vcpu_init");
}

Test(badinput, vcpu_init_uint_max)
{
	refused(qpd_vcpu_init(F.q, UINT_MAX), -EINVAL, "qpd_vcpu_init");
}

Test(badinput, vcpu_init_online)
{
	refused(qpd_vcpu_init(F.q, 0), -EEXIST, "qpd_vcpu_init");
}

Test(badinput, vcpu_exit_null_instance)
{
	ignored_rc(qpd_vcpu_exit(NULL, 0), -EINVAL);
}

Test(badinput, vcpu_exit_past_max)
{
	refused(qpd_vcpu_exit(F.q, MAXV), -EINVAL, "qpd_vcpu_exit");
}

Test(badinput, vcpu_exit_never_initialised)
{
	refused(qpd_vcpu_exit(F.q, 5), -ENOENT, "qpd_vcpu_exit");
}

Test(badinput, vcpu_exit_never_initialised_chunk)
{
	refused(qpd_vcpu_exit(F.q, MAXV - 2), -ENOENT, "qpd_vcpu_exit");
}

Test(badinput, vcpu_exit_twice)
{
	cr_assert_eq(qpd_vcpu_init(F.q, 3), 0);
	cr_assert_eq(qpd_vcpu_exit(F.q, 3), 0);
	snap();
	refused(qpd_vcpu_exit(F.q, 3), -ENOENT, "qpd_vcpu_exit");
}

Test(badinput, vcpu_forget_null_instance)
{
	ignored_rc(qpd_vcpu_forget(NULL, 0), -EINVAL);
}

Test(badinput, vcpu_forget_past_max)
{
	refused(qpd_vcpu_forget(F.q, MAXV), -EINVAL, "qpd_vcpu_forget");
}

Test(badinput, vcpu_forget_never_initialised)
{
	refused(qpd_vcpu_forget(F.q, MAXV - 2), -ENOENT, "qpd_vcpu_forget");
}

Test(badinput, vcpu_forget_twice)
{
	cr_assert_eq(qpd_vcpu_init(F.q, 3), 0);
	cr_assert_eq(qpd_vcpu_forget(F.q, 3), 0);
	snap();
	refused(qpd_vcpu_forget(F.q, 3), -ENOENT, "qpd_vcpu_forget");
}

Test(badinput, vcpu_exit_inside_slice)
{
	int rc;

	cr_assert(qpd_vcpu_enter(F.q, 0));
	snap();
	rc = qpd_vcpu_exit(F.q, 0);
	qpd_vcpu_leave(F.q, 0);
	refused(rc, -EBUSY, "qpd_vcpu_exit");
	cr_assert(qpd_vcpu_enter(F.q, 0), "still online");
	qpd_vcpu_leave(F.q, 0);
}

Test(badinput, vcpu_enter_past_max)
{
	cr_assert_not(qpd_vcpu_enter(F.q, MAXV));
	cr_assert_not(qpd_vcpu_enter(F.q, UINT_MAX));
	ignored();
}

Test(badinput, dispatch_begin_bad_vcpu)
{
	struct qpd_dispatch d;

	cr_assert_not(qpd_dispatch_begin(F.q, MAXV, QPD_EV_VCPU_SYSCALL, &d));
	cr_assert_not(qpd_dispatch_begin(F.q, UINT_MAX, QPD_EV_VCPU_SYSCALL,
					 &d));
	cr_assert_not(qpd_dispatch_begin(F.q, 5, QPD_EV_VCPU_SYSCALL, &d));
	ignored();
}

Test(badinput, dispatch_begin_bad_event)
{
	struct qpd_dispatch d;

	cr_assert_not(qpd_dispatch_begin(F.q, 0, QPD_EV_COUNT, &d));
	cr_assert_not(qpd_dispatch_begin(F.q, 0, (enum qpd_event)INT_MAX, &d));
	cr_assert_eq(qpd__vcpu(F.q, 0)->rec.active, 0, "no section opened");
	ignored();
}

Test(badinput, vcpu_enter_never_initialised)
{
	cr_assert_not(qpd_vcpu_enter(F.q, 5));
	cr_assert_not(qpd_vcpu_enter(F.q, MAXV - 2));
	ignored();
}

Test(badinput, vcpu_enter_after_exit)
{
	cr_assert_eq(qpd_vcpu_init(F.q, 3), 0);
	cr_assert_eq(qpd_vcpu_exit(F.q, 3), 0);
	snap();
	cr_assert_not(qpd_vcpu_enter(F.q, 3));
	ignored();
}

/* A stray leave or quiescent must not end or corrupt anyone's section. */
Test(badinput, vcpu_leave_and_quiescent_outside_slice)
{
	int done = 0;

	qpd_vcpu_leave(F.q, 0);
	qpd_vcpu_leave(F.q, 5);
	qpd_vcpu_leave(F.q, MAXV);
	qpd_vcpu_quiescent(F.q, 0);
	qpd_vcpu_quiescent(F.q, MAXV);
	ignored();
	/* Grace periods still pass, and a slice still holds them back. */
	cr_assert(qpd_vcpu_enter(F.q, 0));
	cr_assert_eq(qpd_plugin_reset(F.q, F.id, done_set_flag, &done), 0);
	for (int i = 0; i < 50; i++)
		qpd_reclaim(F.q);
	cr_assert_eq(done, 0, "the open slice holds the grace period");
	qpd_vcpu_leave(F.q, 0);
	cr_assert(reclaim_until(F.q, &done));
}

Test(badinput, vcpu_idle_resume_past_max_or_offline)
{
	qpd_vcpu_idle(F.q, MAXV);
	qpd_vcpu_resume(F.q, UINT_MAX);
	qpd_vcpu_idle(F.q, 5);
	qpd_vcpu_idle(F.q, MAXV - 2);
	qpd_vcpu_idle(NULL, 0);
	qpd_vcpu_resume(NULL, 0);
	ignored();
}

Test(badinput, for_each_null_instance)
{
	ignored_rc(qpd_vcpu_for_each(NULL, F.id, fe_cb), -EINVAL);
}

Test(badinput, for_each_null_callback)
{
	refused(qpd_vcpu_for_each(F.q, F.id, NULL), -EINVAL,
		"qpd_vcpu_for_each");
}

Test(badinput, for_each_unknown_id)
{
	refused(qpd_vcpu_for_each(F.q, F.id + 1000, fe_cb), -ENOENT,
		"qpd_vcpu_for_each");
}

Test(badinput, num_vcpus_null_instance)
{
	cr_assert_eq(qpd_num_vcpus(NULL), 0);
	ignored();
}

/* ----------------------------------------------------------- scoreboards */

Test(badinput, scoreboard_new_null_instance)
{
	errno = 0;
	cr_assert_null(qpd_scoreboard_new(NULL, 8));
	cr_assert_eq(errno, EINVAL);
	ignored();
}

Test(badinput, scoreboard_new_size_zero)
{
	errno = 0;
	refused_null(qpd_scoreboard_new(F.q, 0), EINVAL, "qpd_scoreboard_new");
}

Test(badinput, scoreboard_new_size_over_max)
{
	errno = 0;
	refused_null(qpd_scoreboard_new(F.q, QPD_SCOREBOARD_MAX_ELEM + 1),
		     EINVAL, "qpd_scoreboard_new");
}

Test(badinput, scoreboard_new_size_max)
{
	errno = 0;
	refused_null(qpd_scoreboard_new(F.q, SIZE_MAX), EINVAL,
		     "qpd_scoreboard_new");
}

Test(badinput, scoreboard_new_too_large_for_capacity)
{
	/* Its slots for every index below the capacity would span > 2 GiB. */
	size_t size = QPD_SB_SPAN_MAX / qpd_scoreboard_capacity(F.q) + 1;

	snap();
	errno = 0;
	cr_assert_null(qpd_scoreboard_new(F.q, size));
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(hook.calls, 1);
	cr_assert_eq(hook.err, -EINVAL);
	cr_assert_str_eq(hook.func, "qpd_scoreboard_new");
	assert_unchanged(1);
	hook.calls = 0;
	still_works();
}

Test(badinput, scoreboard_reserve_bad_input)
{
	snap();
	cr_assert_eq(qpd_scoreboard_reserve(NULL, 1, false), -EINVAL);
	cr_assert_eq(qpd_scoreboard_reserve(F.q, UINT_MAX, true), -EINVAL);
	cr_assert_eq(qpd_scoreboard_capacity(NULL), 0);
	assert_unchanged(1);
	hook.calls = 0;
	still_works();
}

Test(badinput, scoreboard_free_null_instance)
{
	ignored_rc(qpd_scoreboard_free(NULL, F.sb), -EINVAL);
}

Test(badinput, scoreboard_free_null_scoreboard)
{
	refused(qpd_scoreboard_free(F.q, NULL), -EINVAL, "qpd_scoreboard_free");
}

Test(badinput, scoreboard_free_twice)
{
	struct qpd_scoreboard *sb = qpd_scoreboard_new(F.q, 24);

	cr_assert_not_null(sb);
	cr_assert_eq(qpd_scoreboard_free(F.q, sb), 0);
	snap();
	refused(qpd_scoreboard_free(F.q, sb), -ENOENT, "qpd_scoreboard_free");
}

Test(badinput, scoreboard_free_foreign)
{
	struct qpd *other = new_instance();
	struct qpd_scoreboard *sb = qpd_scoreboard_new(other, 8);

	snap();
	refused(qpd_scoreboard_free(F.q, sb), -ENOENT, "qpd_scoreboard_free");
	cr_assert_eq(qpd_scoreboard_free(other, sb), 0, "still the other's");
	qpd_free(other);
}

Test(badinput, scoreboard_free_wild_pointer)
{
	uint64_t junk[32] = { 0 };

	refused(qpd_scoreboard_free(F.q, (struct qpd_scoreboard *)junk),
		-ENOENT, "qpd_scoreboard_free");
}

Test(badinput, scoreboard_generation_and_sum_null)
{
	cr_assert_eq(qpd_scoreboard_generation(NULL), 0);
	cr_assert_eq(qpd_u64_sum((qpd_u64){ NULL, 0 }), 0);
	ignored();
}

Test(badinput, scoreboard_find_null_or_past_max)
{
	cr_assert_null(qpd_scoreboard_find(NULL, 0));
	cr_assert_null(qpd_scoreboard_find(F.sb, MAXV));
	cr_assert_null(qpd_scoreboard_find(F.sb, UINT_MAX));
	ignored();
}

Test(badinput, u64_accessors_past_max)
{
	uint64_t v0 = qpd_u64_get(F.c, 0), sum = qpd_u64_sum(F.c);

	qpd_inline_add_u64(F.c, MAXV, 5);
	qpd_u64_add(F.c, UINT_MAX, 5);
	qpd_u64_set(F.c, MAXV, 5);
	cr_assert_eq(qpd_u64_get(F.c, MAXV), 0);
	cr_assert_eq(qpd_u64_get(F.c, UINT_MAX), 0);
	cr_assert_eq(qpd_u64_get(F.c, 0), v0);
	cr_assert_eq(qpd_u64_sum(F.c), sum);
	ignored();
}

Test(badinput, set_node_null_instance)
{
	ignored_rc(qpd_vcpu_set_node(NULL, 0, 0), -EINVAL);
}

Test(badinput, set_node_past_max)
{
	refused(qpd_vcpu_set_node(F.q, MAXV, 0), -EINVAL, "qpd_vcpu_set_node");
}

Test(badinput, set_node_negative_node)
{
	refused(qpd_vcpu_set_node(F.q, 0, -1), -EINVAL, "qpd_vcpu_set_node");
}

Test(badinput, set_node_unknown_node)
{
	refused(qpd_vcpu_set_node(F.q, 0, 1 << 20), -EINVAL,
		"qpd_vcpu_set_node");
	cr_assert_geq(qpd_vcpu_get_node(F.q, 0), 0, "placement unchanged");
}

Test(badinput, get_node_null_instance)
{
	ignored_rc(qpd_vcpu_get_node(NULL, 0), -EINVAL);
}

Test(badinput, get_node_past_max)
{
	refused(qpd_vcpu_get_node(F.q, MAXV), -EINVAL, "qpd_vcpu_get_node");
}

Test(badinput, get_node_never_initialised_chunk)
{
	refused(qpd_vcpu_get_node(F.q, MAXV - 2), -EINVAL,
		"qpd_vcpu_get_node");
}

/* ------------------------------------------------------ registration */

Test(badinput, register_null_instance)
{
	ignored_rc(qpd_register_cb(NULL, F.id, QPD_EV_VCPU_IDLE, cb, NULL),
		   -EINVAL);
}

Test(badinput, register_event_count)
{
	refused(qpd_register_cb(F.q, F.id, QPD_EV_COUNT, cb, NULL), -EINVAL,
		"qpd_register_cb");
}

Test(badinput, register_event_capacity)
{
	refused(qpd_register_cb(F.q, F.id, (enum qpd_event)QPD_EV_CAPACITY, cb,
				NULL), -EINVAL, "qpd_register_cb");
}

Test(badinput, register_event_negative)
{
	refused(qpd_register_cb(F.q, F.id, (enum qpd_event)-1, cb, NULL),
		-EINVAL, "qpd_register_cb");
}

Test(badinput, unregister_bad_event)
{
	refused(qpd_register_cb(F.q, F.id, (enum qpd_event)INT_MAX, NULL,
				NULL), -EINVAL, "qpd_register_cb");
}

Test(badinput, register_unknown_id)
{
	refused(qpd_register_cb(F.q, F.id + 1000, QPD_EV_VCPU_IDLE, cb, NULL),
		-ENOENT, "qpd_register_cb");
}

Test(badinput, register_id_zero)
{
	refused(qpd_register_cb(F.q, 0, QPD_EV_VCPU_IDLE, cb, NULL), -ENOENT,
		"qpd_register_cb");
}

Test(badinput, register_while_uninstalling)
{
	refused(qpd_register_cb(F.q, uninstalled(false), QPD_EV_VCPU_IDLE, cb,
				NULL), -ESHUTDOWN, "qpd_register_cb");
}

Test(badinput, register_after_uninstall_done)
{
	refused(qpd_register_cb(F.q, uninstalled(true), QPD_EV_VCPU_IDLE, cb,
				NULL), -ENOENT, "qpd_register_cb");
}

Test(badinput, unregister_never_registered)
{
	cr_assert_eq(qpd_register_cb(F.q, F.id, QPD_EV_VCPU_SYSCALL, NULL,
				     NULL), 0);
	ignored();
}

/* -------------------------------------------------------------- dispatch */

static void
dispatch_everything(unsigned vcpu)
{
	uint64_t args[8] = { 0 }, sysret = 77;

	qpd_tb_trans(F.q, vcpu, NULL);
	qpd_syscall(F.q, vcpu, 1, args);
	qpd_syscall_ret(F.q, vcpu, 1, 0);
	cr_assert_not(qpd_syscall_filter(F.q, vcpu, 1, args, &sysret));
	cr_assert_eq(sysret, 77);
	qpd_discon(F.q, vcpu, QPD_DISCON_INTERRUPT, 1, 2);
	qpd_discon(F.q, vcpu, QPD_DISCON_EXCEPTION, 1, 2);
	qpd_discon(F.q, vcpu, QPD_DISCON_HOSTCALL, 1, 2);
}

static bool
filter_cb(qpd_plugin_id id, unsigned vcpu, int64_t num,
	  const uint64_t args[8], uint64_t *sysret, void *udata)
{
	(void)num, (void)args;
	*sysret = 1;
	log_call(5, id, vcpu, udata);
	return true;
}

static void
discon_cb(qpd_plugin_id id, unsigned vcpu, enum qpd_discon_type type,
	  uint64_t from, uint64_t to, void *udata)
{
	(void)type, (void)from, (void)to;
	log_call(6, id, vcpu, udata);
}

static void
tb_cb(qpd_plugin_id id, unsigned vcpu, void *tb, void *udata)
{
	log_call(8, id, vcpu, tb ? tb : udata);
}

static void
sys_cb(qpd_plugin_id id, unsigned vcpu, int64_t num, const uint64_t args[8],
       void *udata)
{
	(void)num, (void)args;
	log_call(9, id, vcpu, udata);
}

static void
sysret_cb(qpd_plugin_id id, unsigned vcpu, int64_t num, int64_t ret,
	  void *udata)
{
	(void)num, (void)ret;
	log_call(10, id, vcpu, udata);
}

static void
register_every_vcpu_event(void)
{
	static const enum qpd_event dc[] = { QPD_EV_VCPU_INTERRUPT,
					     QPD_EV_VCPU_EXCEPTION,
					     QPD_EV_VCPU_HOSTCALL };

	cr_assert_eq(qpd_register_cb(F.q, F.id, QPD_EV_VCPU_TB_TRANS, tb_cb,
				     NULL), 0);
	cr_assert_eq(qpd_register_cb(F.q, F.id, QPD_EV_VCPU_SYSCALL, sys_cb,
				     NULL), 0);
	cr_assert_eq(qpd_register_cb(F.q, F.id, QPD_EV_VCPU_SYSCALL_RET,
				     sysret_cb, NULL), 0);
	cr_assert_eq(qpd_register_cb(F.q, F.id, QPD_EV_VCPU_SYSCALL_FILTER,
				     filter_cb, NULL), 0);
	for (unsigned i = 0; i < 3; i++)
		cr_assert_eq(qpd_register_cb(F.q, F.id, dc[i], discon_cb,
					     NULL), 0);
	snap();
}

Test(badinput, dispatch_past_max)
{
	register_every_vcpu_event();
	dispatch_everything(MAXV);
	dispatch_everything(UINT_MAX);
	ignored();
}

Test(badinput, dispatch_never_initialised)
{
	register_every_vcpu_event();
	dispatch_everything(5);
	dispatch_everything(MAXV - 2);
	ignored();
}

Test(badinput, dispatch_after_exit)
{
	cr_assert_eq(qpd_vcpu_init(F.q, 3), 0);
	cr_assert_eq(qpd_vcpu_exit(F.q, 3), 0);
	register_every_vcpu_event();
	dispatch_everything(3);
	ignored();
}

Test(badinput, discon_bad_type)
{
	static const int bad[] = { 0, 3, 5, 8, -1, INT_MAX };

	register_every_vcpu_event();
	cr_assert(qpd_vcpu_enter(F.q, 0));
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(qpd_discon_event((enum qpd_discon_type)bad[i]),
			     QPD_EV_COUNT);
		qpd_discon(F.q, 0, (enum qpd_discon_type)bad[i], 1, 2);
	}
	qpd_vcpu_leave(F.q, 0);
	ignored();
}

Test(badinput, flush_atexit_user_exit_null_instance)
{
	qpd_flush(NULL);
	qpd_atexit(NULL);
	ignored_rc(qpd_user_exit(NULL), -EINVAL);
}

static void
simple_cb(qpd_plugin_id id, void *udata)
{
	log_call(7, id, 0, udata);
}

Test(badinput, atexit_twice_runs_once)
{
	cr_assert_eq(qpd_register_cb(F.q, F.id, QPD_EV_ATEXIT, simple_cb,
				     NULL), 0);
	qpd_atexit(F.q);
	cr_assert_eq(LOG.n, 1);
	qpd_atexit(F.q);
	cr_assert_eq(qpd_user_exit(F.q), 0);
	cr_assert_eq(qpd_user_exit(F.q), 0);
	cr_assert_eq(LOG.n, 1, "ATEXIT callbacks run once");
	cr_assert_eq(hook.calls, 0);
}

/* ------------------------------------------------------- dynamic lists */

Test(badinput, dyn_new_null_instance)
{
	errno = 0;
	cr_assert_null(qpd_dyn_new(NULL));
	cr_assert_eq(errno, EINVAL);
	ignored();
}

Test(badinput, dyn_retire_null_instance)
{
	ignored_rc(qpd_dyn_retire(NULL, F.l), -EINVAL);
}

Test(badinput, dyn_retire_null_list)
{
	refused(qpd_dyn_retire(F.q, NULL), -EINVAL, "qpd_dyn_retire");
}

Test(badinput, dyn_retire_twice)
{
	struct qpd_dyn *l = qpd_dyn_new(F.q);

	cr_assert_not_null(l);
	cr_assert_eq(qpd_dyn_retire(F.q, l), 0);
	snap();
	refused(qpd_dyn_retire(F.q, l), -ENOENT, "qpd_dyn_retire");
}

Test(badinput, dyn_retire_after_flush)
{
	qpd_flush(F.q);
	snap();
	refused(qpd_dyn_retire(F.q, F.l), -ENOENT, "qpd_dyn_retire");
}

Test(badinput, dyn_retire_foreign)
{
	struct qpd *other = new_instance();
	struct qpd_dyn *l = qpd_dyn_new(other);

	snap();
	refused(qpd_dyn_retire(F.q, l), -ENOENT, "qpd_dyn_retire");
	cr_assert_eq(qpd_dyn_retire(other, l), 0, "still the other's");
	qpd_free(other);
}

Test(badinput, dyn_retire_wild_pointer)
{
	uint64_t junk[16] = { 0 };

	refused(qpd_dyn_retire(F.q, (struct qpd_dyn *)junk), -ENOENT,
		"qpd_dyn_retire");
}

/* The fixture's list still holds exactly its one inline add of 1. */
static void
list_unchanged(void)
{
	uint64_t before = qpd_u64_get(F.c, 0);

	cr_assert_eq(F.l->n, 1);
	cr_assert(qpd_vcpu_enter(F.q, 0));
	qpd_dyn_exec(F.l, 0);
	qpd_dyn_exec_mem(F.l, 0, 0, 0, QPD_MEM_RW);
	qpd_vcpu_leave(F.q, 0);
	cr_assert_eq(qpd_u64_get(F.c, 0), before + 1);
	cr_assert_eq(LOG.n, 0);
}

static void
add_refused(int rc, int err, const char *func)
{
	refused(rc, err, func);
	memset(&LOG, 0, sizeof(LOG));
	list_unchanged();
}

static void
add_ignored(int rc)
{
	ignored_rc(rc, -EINVAL);
	list_unchanged();
}

Test(badinput, dyn_add_cb_null_list)
{
	add_ignored(qpd_dyn_add_cb(NULL, dyn_cb, NULL));
}

Test(badinput, dyn_add_cb_null_fn)
{
	add_refused(qpd_dyn_add_cb(F.l, NULL, NULL), -EINVAL,
		    "qpd_dyn_add_cb");
}

Test(badinput, dyn_add_inline_null_list)
{
	add_ignored(qpd_dyn_add_inline(NULL, QPD_OP_ADD_U64, F.c, 1));
}

Test(badinput, dyn_add_inline_bad_op)
{
	add_refused(qpd_dyn_add_inline(F.l, (enum qpd_inline_op)2, F.c, 1),
		    -EINVAL, "qpd_dyn_add_inline");
}

Test(badinput, dyn_add_inline_negative_op)
{
	add_refused(qpd_dyn_add_inline(F.l, (enum qpd_inline_op)-1, F.c, 1),
		    -EINVAL, "qpd_dyn_add_inline");
}

Test(badinput, dyn_add_inline_null_scoreboard)
{
	add_refused(qpd_dyn_add_inline(F.l, QPD_OP_ADD_U64,
				       (qpd_u64){ NULL, 0 }, 1),
		    -EINVAL, "qpd_dyn_add_inline");
}

/*
 * Bytes of each vCPU's slot an inline op may use: the scoreboard's column
 * (its element rounded up to the slot alignment).
 */
static size_t
slot_size(const struct qpd_scoreboard *sb)
{
	return sb->col_size;
}

/* Unaligned, and its last byte one past the slot. */
Test(badinput, dyn_add_inline_misaligned_past_slot)
{
	add_refused(qpd_dyn_add_inline(F.l, QPD_OP_ADD_U64,
				       (qpd_u64){ F.sb, slot_size(F.sb) - 7 },
				       1),
		    -EINVAL, "qpd_dyn_add_inline");
}

Test(badinput, dyn_add_inline_offset_at_slot_end)
{
	add_refused(qpd_dyn_add_inline(F.l, QPD_OP_ADD_U64,
				       (qpd_u64){ F.sb, slot_size(F.sb) }, 1),
		    -EINVAL, "qpd_dyn_add_inline");
}

Test(badinput, dyn_add_inline_offset_straddles_slot_end)
{
	struct qpd_scoreboard *sb = qpd_scoreboard_new(F.q, 12);

	snap();
	add_refused(qpd_dyn_add_inline(F.l, QPD_OP_ADD_U64,
				       (qpd_u64){ sb, slot_size(sb) - 4 }, 1),
		    -EINVAL, "qpd_dyn_add_inline");
}

/* A 4-byte element: the counter may cover it, not leave the slot. */
Test(badinput, dyn_add_inline_small_element_past_slot)
{
	struct qpd_scoreboard *sb = qpd_scoreboard_new(F.q, 4);

	snap();
	add_refused(qpd_dyn_add_inline(F.l, QPD_OP_ADD_U64,
				       (qpd_u64){ sb, slot_size(sb) - 1 }, 1),
		    -EINVAL, "qpd_dyn_add_inline");
}

Test(badinput, dyn_add_inline_offset_far_past_end)
{
	add_refused(qpd_dyn_add_inline(F.l, QPD_OP_ADD_U64,
				       (qpd_u64){ F.sb, 1u << 20 }, 1),
		    -EINVAL, "qpd_dyn_add_inline");
}

/* offset + 8 wraps around to 0: must not pass the bounds check. */
Test(badinput, dyn_add_inline_offset_wraps)
{
	add_refused(qpd_dyn_add_inline(F.l, QPD_OP_ADD_U64,
				       (qpd_u64){ F.sb, SIZE_MAX - 7 }, 1),
		    -EINVAL, "qpd_dyn_add_inline");
}

Test(badinput, dyn_add_inline_freed_scoreboard)
{
	struct qpd_scoreboard *sb = qpd_scoreboard_new(F.q, 8);

	cr_assert_eq(qpd_scoreboard_free(F.q, sb), 0);
	snap();
	add_refused(qpd_dyn_add_inline(F.l, QPD_OP_ADD_U64,
				       (qpd_u64){ sb, 0 }, 1),
		    -ENOENT, "qpd_dyn_add_inline");
}

Test(badinput, dyn_add_inline_foreign_scoreboard)
{
	struct qpd *other = new_instance();
	struct qpd_scoreboard *sb = qpd_scoreboard_new(other, 8);

	snap();
	add_refused(qpd_dyn_add_inline(F.l, QPD_OP_ADD_U64,
				       (qpd_u64){ sb, 0 }, 1),
		    -ENOENT, "qpd_dyn_add_inline");
	qpd_free(other);
}

Test(badinput, dyn_add_cond_cb_null_list)
{
	add_ignored(qpd_dyn_add_cond_cb(NULL, dyn_cb, NULL, QPD_COND_EQ, F.c,
					0));
}

Test(badinput, dyn_add_cond_cb_bad_cond)
{
	add_refused(qpd_dyn_add_cond_cb(F.l, dyn_cb, NULL,
					(enum qpd_cond)(QPD_COND_GE + 1), F.c,
					0),
		    -EINVAL, "qpd_dyn_add_cond_cb");
}

Test(badinput, dyn_add_cond_cb_negative_cond)
{
	add_refused(qpd_dyn_add_cond_cb(F.l, dyn_cb, NULL, (enum qpd_cond)-1,
					F.c, 0),
		    -EINVAL, "qpd_dyn_add_cond_cb");
}

Test(badinput, dyn_add_cond_cb_null_fn)
{
	add_refused(qpd_dyn_add_cond_cb(F.l, NULL, NULL, QPD_COND_EQ, F.c, 0),
		    -EINVAL, "qpd_dyn_add_cond_cb");
}

Test(badinput, dyn_add_cond_cb_null_fn_never)
{
	add_refused(qpd_dyn_add_cond_cb(F.l, NULL, NULL, QPD_COND_NEVER, F.c,
					0),
		    -EINVAL, "qpd_dyn_add_cond_cb");
}

Test(badinput, dyn_add_cond_cb_bad_entry)
{
	add_refused(qpd_dyn_add_cond_cb(F.l, dyn_cb, NULL, QPD_COND_EQ,
					(qpd_u64){ F.sb, 12 }, 0),
		    -EINVAL, "qpd_dyn_add_cond_cb");
}

Test(badinput, dyn_add_cond_cb_freed_scoreboard)
{
	struct qpd_scoreboard *sb = qpd_scoreboard_new(F.q, 8);

	cr_assert_eq(qpd_scoreboard_free(F.q, sb), 0);
	snap();
	add_refused(qpd_dyn_add_cond_cb(F.l, dyn_cb, NULL, QPD_COND_EQ,
					(qpd_u64){ sb, 0 }, 0),
		    -ENOENT, "qpd_dyn_add_cond_cb");
}

Test(badinput, dyn_add_cond_cb_never_adds_nothing)
{
	cr_assert_eq(qpd_dyn_add_cond_cb(F.l, dyn_cb, NULL, QPD_COND_NEVER,
					 (qpd_u64){ NULL, 3 }, 0), 0);
	ignored();
	list_unchanged();
}

Test(badinput, dyn_add_mem_cb_null_list)
{
	add_ignored(qpd_dyn_add_mem_cb(NULL, mem_cb, QPD_MEM_R, NULL));
}

Test(badinput, dyn_add_mem_cb_null_fn)
{
	add_refused(qpd_dyn_add_mem_cb(F.l, NULL, QPD_MEM_R, NULL), -EINVAL,
		    "qpd_dyn_add_mem_cb");
}

Test(badinput, dyn_add_mem_cb_rw_zero)
{
	add_refused(qpd_dyn_add_mem_cb(F.l, mem_cb, (enum qpd_mem_rw)0, NULL),
		    -EINVAL, "qpd_dyn_add_mem_cb");
}

Test(badinput, dyn_add_mem_cb_rw_unknown_bit)
{
	add_refused(qpd_dyn_add_mem_cb(F.l, mem_cb, (enum qpd_mem_rw)4, NULL),
		    -EINVAL, "qpd_dyn_add_mem_cb");
}

Test(badinput, dyn_add_mem_inline_null_list)
{
	add_ignored(qpd_dyn_add_mem_inline(NULL, QPD_MEM_R, QPD_OP_ADD_U64,
					   F.c, 1));
}

Test(badinput, dyn_add_mem_inline_bad_rw)
{
	add_refused(qpd_dyn_add_mem_inline(F.l, (enum qpd_mem_rw)7,
					   QPD_OP_ADD_U64, F.c, 1),
		    -EINVAL, "qpd_dyn_add_mem_inline");
}

Test(badinput, dyn_add_mem_inline_bad_op)
{
	add_refused(qpd_dyn_add_mem_inline(F.l, QPD_MEM_W,
					   (enum qpd_inline_op)9, F.c, 1),
		    -EINVAL, "qpd_dyn_add_mem_inline");
}

Test(badinput, dyn_add_mem_inline_bad_entry)
{
	add_refused(qpd_dyn_add_mem_inline(F.l, QPD_MEM_W, QPD_OP_STORE_U64,
					   (qpd_u64){ F.sb, slot_size(F.sb) - 5 },
					   1),
		    -EINVAL, "qpd_dyn_add_mem_inline");
}

Test(badinput, dyn_add_mem_inline_null_scoreboard)
{
	add_refused(qpd_dyn_add_mem_inline(F.l, QPD_MEM_R, QPD_OP_ADD_U64,
					   (qpd_u64){ NULL, 3 }, 1),
		    -EINVAL, "qpd_dyn_add_mem_inline");
}

Test(badinput, dyn_add_mem_inline_offset_wraps)
{
	add_refused(qpd_dyn_add_mem_inline(F.l, QPD_MEM_R, QPD_OP_ADD_U64,
					   (qpd_u64){ F.sb, SIZE_MAX - 4 }, 1),
		    -EINVAL, "qpd_dyn_add_mem_inline");
}

Test(badinput, dyn_add_mem_inline_freed_scoreboard)
{
	struct qpd_scoreboard *sb = qpd_scoreboard_new(F.q, 8);

	cr_assert_eq(qpd_scoreboard_free(F.q, sb), 0);
	snap();
	add_refused(qpd_dyn_add_mem_inline(F.l, QPD_MEM_R, QPD_OP_ADD_U64,
					   (qpd_u64){ sb, 3 }, 1),
		    -ENOENT, "qpd_dyn_add_mem_inline");
}

/* Only aligned counters inside the element: a condition reads one load. */
Test(badinput, dyn_add_cond_cb_misaligned_counter)
{
	add_refused(qpd_dyn_add_cond_cb(F.l, dyn_cb, NULL, QPD_COND_EQ,
					(qpd_u64){ F.sb, 4 }, 0),
		    -EINVAL, "qpd_dyn_add_cond_cb");
}

Test(badinput, dyn_add_cond_cb_counter_past_element)
{
	add_refused(qpd_dyn_add_cond_cb(F.l, dyn_cb, NULL, QPD_COND_EQ,
					(qpd_u64){ F.sb, 16 }, 0),
		    -EINVAL, "qpd_dyn_add_cond_cb");
}

Test(badinput, dyn_exec_past_max)
{
	uint64_t v0 = qpd_u64_get(F.c, 0), sum = qpd_u64_sum(F.c);

	/* Inline entries of a vCPU past the maximum touch nothing. */
	qpd_dyn_exec(F.l, MAXV);
	qpd_dyn_exec_mem(F.l, UINT_MAX, 0, 0, QPD_MEM_RW);
	cr_assert_eq(qpd_u64_get(F.c, 0), v0);
	cr_assert_eq(qpd_u64_sum(F.c), sum);
	ignored();
}

Test(badinput, dyn_exec_mem_no_access_kind)
{
	cr_assert_eq(qpd_dyn_add_mem_inline(F.l, QPD_MEM_RW, QPD_OP_ADD_U64,
					    F.c, 10), 0);
	cr_assert_eq(qpd_dyn_add_mem_cb(F.l, mem_cb, QPD_MEM_RW, NULL), 0);
	snap();
	cr_assert(qpd_vcpu_enter(F.q, 0));
	qpd_dyn_exec_mem(F.l, 0, 0, 0, (enum qpd_mem_rw)0);
	qpd_vcpu_leave(F.q, 0);
	cr_assert_eq(qpd_u64_get(F.c, 0), 0, "no entry matches rw 0");
	ignored();
}
