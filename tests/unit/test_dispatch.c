/* Registration and dispatch of every event. */
#include <limits.h>

#include "helpers.h"

static uint64_t last_args[8];
static int64_t last_num, last_ret;
static uint64_t last_from, last_to;
static enum qpd_discon_type last_type;
static void *last_tb;

static void
cb_vcpu(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	log_call(1, id, vcpu, udata);
}

static void
cb_vcpu_b(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	log_call(2, id, vcpu, udata);
}

static void
cb_tb(qpd_plugin_id id, unsigned vcpu, void *tb, void *udata)
{
	last_tb = tb;
	log_call(3, id, vcpu, udata);
}

static void
cb_syscall(qpd_plugin_id id, unsigned vcpu, int64_t num,
	   const uint64_t args[8], void *udata)
{
	last_num = num;
	memcpy(last_args, args, sizeof(last_args));
	log_call(4, id, vcpu, udata);
}

static void
cb_syscall_ret(qpd_plugin_id id, unsigned vcpu, int64_t num, int64_t ret,
	       void *udata)
{
	last_num = num;
	last_ret = ret;
	log_call(5, id, vcpu, udata);
}

static bool
cb_filter_no(qpd_plugin_id id, unsigned vcpu, int64_t num,
	     const uint64_t args[8], uint64_t *sysret, void *udata)
{
	(void)num, (void)args, (void)sysret;
	log_call(6, id, vcpu, udata);
	return false;
}

static bool
cb_filter_yes(qpd_plugin_id id, unsigned vcpu, int64_t num,
	      const uint64_t args[8], uint64_t *sysret, void *udata)
{
	(void)args;
	*sysret = (uint64_t)num * 10;
	log_call(7, id, vcpu, udata);
	return true;
}

static void
cb_discon(qpd_plugin_id id, unsigned vcpu, enum qpd_discon_type type,
	  uint64_t from, uint64_t to, void *udata)
{
	last_type = type;
	last_from = from;
	last_to = to;
	log_call(8, id, vcpu, udata);
}

static void
cb_simple(qpd_plugin_id id, void *udata)
{
	log_call(9, id, 0, udata);
}

static struct qpd *
online(void)
{
	struct qpd *q = new_manual();

	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	cr_assert(qpd_vcpu_enter(q, 0));
	return q;
}

static void
done(struct qpd *q)
{
	qpd_vcpu_leave(q, 0);
	qpd_free(q);
}

Test(dispatch, tb_trans_passes_tb_and_udata)
{
	struct qpd *q = online();
	qpd_plugin_id id = add_plugin(q);
	int u;

	qpd_tb_trans(q, 0, (void *)0x1);
	cr_assert_eq(LOG.n, 0);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_TB_TRANS, cb_tb, &u), 0);
	qpd_tb_trans(q, 0, (void *)0x1234);
	cr_assert_eq(LOG.n, 1);
	cr_assert_eq(last_tb, (void *)0x1234);
	cr_assert_eq(LOG.e[0].udata, &u);
	cr_assert_eq(LOG.e[0].id, id);
	done(q);
}

Test(dispatch, syscall_and_ret_arguments)
{
	struct qpd *q = online();
	qpd_plugin_id id = add_plugin(q);
	uint64_t args[8] = { 1, 2, 3, 4, 5, 6, 7, UINT64_MAX };

	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_SYSCALL, cb_syscall,
				     NULL), 0);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_SYSCALL_RET,
				     cb_syscall_ret, NULL), 0);
	qpd_syscall(q, 0, 231, args);
	cr_assert_eq(last_num, 231);
	cr_assert_arr_eq(last_args, args, sizeof(args));
	qpd_syscall_ret(q, 0, 60, -14);
	cr_assert_eq(last_num, 60);
	cr_assert_eq(last_ret, -14);
	cr_assert_eq(LOG.n, 2);
	done(q);
}

Test(dispatch, syscall_filter_first_true_wins)
{
	struct qpd *q = online();
	qpd_plugin_id a = add_plugin(q), b = add_plugin(q), c = add_plugin(q);
	uint64_t args[8] = { 0 }, ret = 0;

	cr_assert_not(qpd_syscall_filter(q, 0, 5, args, &ret));
	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_VCPU_SYSCALL_FILTER,
				     cb_filter_no, NULL), 0);
	cr_assert_not(qpd_syscall_filter(q, 0, 5, args, &ret));
	cr_assert_eq(qpd_register_cb(q, c, QPD_EV_VCPU_SYSCALL_FILTER,
				     cb_filter_yes, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_VCPU_SYSCALL_FILTER,
				     cb_filter_no, NULL), 0);
	LOG.n = 0;
	cr_assert(qpd_syscall_filter(q, 0, 7, args, &ret));
	cr_assert_eq(ret, 70);
	cr_assert_eq(LOG.n, 2, "a never runs: c, before it, won");
	cr_assert_eq(LOG.e[0].id, b, "b, registered last, is offered first");
	cr_assert_eq(LOG.e[1].id, c);
	done(q);
}

Test(dispatch, discon_types_map_to_events)
{
	struct qpd *q = online();
	qpd_plugin_id id = add_plugin(q);

	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_EXCEPTION, cb_discon,
				     NULL), 0);
	qpd_discon(q, 0, QPD_DISCON_INTERRUPT, 1, 2);
	qpd_discon(q, 0, QPD_DISCON_HOSTCALL, 1, 2);
	qpd_discon(q, 0, (enum qpd_discon_type)3, 1, 2);
	cr_assert_eq(LOG.n, 0);
	qpd_discon(q, 0, QPD_DISCON_EXCEPTION, 0x1000, 0x2000);
	cr_assert_eq(LOG.n, 1);
	cr_assert_eq(last_type, QPD_DISCON_EXCEPTION);
	cr_assert_eq(last_from, 0x1000);
	cr_assert_eq(last_to, 0x2000);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_INTERRUPT, cb_discon,
				     NULL), 0);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_HOSTCALL, cb_discon,
				     NULL), 0);
	qpd_discon(q, 0, QPD_DISCON_INTERRUPT, 3, 4);
	cr_assert_eq(last_type, QPD_DISCON_INTERRUPT);
	qpd_discon(q, 0, QPD_DISCON_HOSTCALL, 5, 6);
	cr_assert_eq(last_type, QPD_DISCON_HOSTCALL);
	cr_assert_eq(LOG.n, 3);
	done(q);
}

/* The ids of LOG's entries are ids[0..n), in that order. */
static void
assert_log_ids(const qpd_plugin_id *ids, unsigned n, const char *what)
{
	cr_assert_eq(LOG.n, n, "%s: %u calls, expected %u", what, LOG.n, n);
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(LOG.e[i].id, ids[i], "%s: call %u", what, i);
}

Test(dispatch, most_recent_registration_first_not_install_order)
{
	struct qpd *q = online();
	qpd_plugin_id p[5];

	for (int i = 0; i < 5; i++)
		p[i] = add_plugin(q);
	/* Register in a scrambled order: 3, 0, 4, 1, 2. */
	int scramble[5] = { 3, 0, 4, 1, 2 };
	for (int i = 0; i < 5; i++)
		cr_assert_eq(qpd_register_cb(q, p[scramble[i]],
					     QPD_EV_VCPU_TB_TRANS, cb_tb,
					     NULL), 0);
	qpd_tb_trans(q, 0, NULL);
	cr_assert_eq(LOG.n, 5);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(LOG.e[i].id, p[scramble[4 - i]],
			     "call %d: the reverse of registration order", i);
	done(q);
}

Test(dispatch, replace_keeps_place_and_pairs)
{
	struct qpd *q = online();
	qpd_plugin_id a = add_plugin(q), b = add_plugin(q);
	int ua, ub, ub2;

	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_VCPU_IDLE, cb_vcpu, &ua), 0);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_VCPU_IDLE, cb_vcpu, &ub), 0);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_VCPU_IDLE, cb_vcpu_b, &ub2), 0);
	qpd_vcpu_idle(q, 0);
	cr_assert_eq(LOG.n, 2, "one callback per (plugin, event)");
	cr_assert_eq(LOG.e[0].tag, 2, "b, registered last, runs first");
	cr_assert_eq(LOG.e[0].udata, &ub2);
	cr_assert_eq(LOG.e[1].tag, 1);
	cr_assert_eq(LOG.e[1].udata, &ua);
	done(q);
}

/* Upstream's rule, across plugins: A then B registered, B runs first. */
Test(dispatch, atexit_later_registration_runs_first)
{
	struct qpd *q = new_manual();
	qpd_plugin_id a = add_plugin(q), b = add_plugin(q);

	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_ATEXIT, cb_simple, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_ATEXIT, cb_simple, NULL), 0);
	qpd_atexit(q);
	assert_log_ids((qpd_plugin_id[]){ b, a }, 2, "atexit");
	qpd_free(q);
}

/* A plugin registering a different function keeps its place. */
Test(dispatch, reregistration_keeps_position)
{
	struct qpd *q = new_manual();
	qpd_plugin_id a = add_plugin(q), b = add_plugin(q), c = add_plugin(q);
	int ua2;

	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_FLUSH, cb_simple, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_FLUSH, cb_simple, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, c, QPD_EV_FLUSH, cb_simple, NULL), 0);
	qpd_flush(q);
	assert_log_ids((qpd_plugin_id[]){ c, b, a }, 3, "registered");
	for (qpd_plugin_id id = a; id <= c; id++) {
		LOG.n = 0;
		cr_assert_eq(qpd_register_cb(q, id, QPD_EV_FLUSH, cb_simple,
					     &ua2), 0);
		qpd_flush(q);
		assert_log_ids((qpd_plugin_id[]){ c, b, a }, 3,
			       "after re-registering one");
		for (unsigned i = 0; i < 3; i++)
			if (LOG.e[i].id == id)
				cr_assert_eq(LOG.e[i].udata, &ua2,
					     "the new pair is in place");
	}
	qpd_free(q);
}

/* Unregistered, then registered again: to the front. */
Test(dispatch, unregister_then_register_moves_to_front)
{
	struct qpd *q = online();
	qpd_plugin_id a = add_plugin(q), b = add_plugin(q), c = add_plugin(q);
	uint64_t args[8] = { 0 };

	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_VCPU_SYSCALL, cb_syscall,
				     NULL), 0);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_VCPU_SYSCALL, cb_syscall,
				     NULL), 0);
	cr_assert_eq(qpd_register_cb(q, c, QPD_EV_VCPU_SYSCALL, cb_syscall,
				     NULL), 0);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_VCPU_SYSCALL, NULL, NULL), 0);
	qpd_syscall(q, 0, 1, args);
	assert_log_ids((qpd_plugin_id[]){ c, a }, 2, "b removed");
	LOG.n = 0;
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_VCPU_SYSCALL, cb_syscall,
				     NULL), 0);
	qpd_syscall(q, 0, 1, args);
	assert_log_ids((qpd_plugin_id[]){ b, c, a }, 3, "b back, in front");
	LOG.n = 0;
	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_VCPU_SYSCALL, NULL, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_VCPU_SYSCALL, cb_syscall,
				     NULL), 0);
	qpd_syscall(q, 0, 1, args);
	assert_log_ids((qpd_plugin_id[]){ a, b, c }, 3, "the last one moved");
	done(q);
}

/* A reset removes the plugin's entries; registering again puts it first. */
Test(dispatch, reset_then_register_puts_plugin_first)
{
	struct qpd *q = new_manual();
	qpd_plugin_id a = add_plugin(q), b = add_plugin(q), c = add_plugin(q);
	int flag = 0;

	/* a is first on FLUSH and last on ATEXIT. */
	cr_assert_eq(qpd_register_cb(q, c, QPD_EV_FLUSH, cb_simple, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_FLUSH, cb_simple, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_FLUSH, cb_simple, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_ATEXIT, cb_simple, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_ATEXIT, cb_simple, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, c, QPD_EV_ATEXIT, cb_simple, NULL), 0);
	cr_assert_eq(qpd_plugin_reset(q, b, done_set_flag, &flag), 0);
	qpd_flush(q);
	assert_log_ids((qpd_plugin_id[]){ a, c }, 2, "b reset");
	cr_assert(reclaim_until(q, &flag));
	LOG.n = 0;
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_ATEXIT, cb_simple, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_FLUSH, cb_simple, NULL), 0);
	qpd_flush(q);
	assert_log_ids((qpd_plugin_id[]){ b, a, c }, 3, "flush after reset");
	LOG.n = 0;
	qpd_atexit(q);
	assert_log_ids((qpd_plugin_id[]){ b, c, a }, 3, "atexit after reset");
	qpd_free(q);
}

/* Uninstalling a plugin in the middle leaves the others' order alone. */
Test(dispatch, uninstall_keeps_order_of_the_rest)
{
	struct qpd *q = online();
	qpd_plugin_id p[4];
	int flag = 0;

	for (int i = 0; i < 4; i++) {
		p[i] = add_plugin(q);
		cr_assert_eq(qpd_register_cb(q, p[i], QPD_EV_VCPU_RESUME,
					     cb_vcpu, NULL), 0);
	}
	cr_assert_eq(qpd_plugin_uninstall(q, p[2], done_set_flag, &flag), 0);
	qpd_vcpu_resume(q, 0);
	assert_log_ids((qpd_plugin_id[]){ p[3], p[1], p[0] }, 3,
		       "p2 uninstalled");
	done(q);
}

Test(dispatch, null_fn_unregisters)
{
	struct qpd *q = online();
	qpd_plugin_id id = add_plugin(q);
	struct qpd_stats st;

	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_IDLE, NULL, NULL), 0,
		     "removing nothing is not an error");
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_IDLE, cb_vcpu, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_IDLE, NULL, NULL), 0);
	qpd_vcpu_idle(q, 0);
	cr_assert_eq(LOG.n, 0);
	cr_assert_eq(qpd_stats_get(q, &st), 0);
	cr_assert_eq(st.n_registrations, 1);
	cr_assert_eq(st.n_unregistrations, 1);
	done(q);
}

static struct qpd *inner_q;
static qpd_plugin_id inner_other;

static void
cb_registers_other(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	log_call(1, id, vcpu, udata);
	cr_assert_eq(qpd_register_cb(inner_q, inner_other, QPD_EV_VCPU_IDLE,
				     cb_vcpu_b, NULL), 0);
	cr_assert_eq(qpd_register_cb(inner_q, id, QPD_EV_VCPU_IDLE, NULL,
				     NULL), 0);
}

static void
count_vcpu(qpd_plugin_id id, unsigned vcpu)
{
	log_call(10, id, vcpu, NULL);
}

static void
cb_for_each(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	(void)vcpu, (void)udata;
	cr_assert_eq(qpd_vcpu_for_each(inner_q, id, count_vcpu), 0);
}

Test(dispatch, register_and_unregister_self_inside_callback)
{
	struct qpd *q = inner_q = online();
	qpd_plugin_id a = add_plugin(q);

	inner_other = add_plugin(q);
	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_VCPU_IDLE,
				     cb_registers_other, NULL), 0);
	qpd_vcpu_idle(q, 0);
	cr_assert_eq(LOG.n, 1, "the walk in progress is a snapshot");
	qpd_vcpu_idle(q, 0);
	cr_assert_eq(LOG.n, 2);
	cr_assert_eq(LOG.e[1].tag, 2, "only the newly registered callback");
	cr_assert_eq(LOG.e[1].id, inner_other);
	done(q);
}

Test(dispatch, for_each_inside_callback)
{
	struct qpd *q = inner_q = online();
	qpd_plugin_id a = add_plugin(q);

	cr_assert_eq(qpd_vcpu_init(q, 7), 0);
	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_VCPU_IDLE, cb_for_each,
				     NULL), 0);
	qpd_vcpu_idle(q, 0);
	cr_assert_eq(LOG.n, 2);
	cr_assert_eq(LOG.e[0].vcpu, 0);
	cr_assert_eq(LOG.e[1].vcpu, 7);
	done(q);
}

Test(dispatch, flush_from_any_thread)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);
	int u;

	qpd_flush(q);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_FLUSH, cb_simple, &u), 0);
	qpd_flush(q);
	qpd_flush(q);
	cr_assert_eq(LOG.n, 2);
	cr_assert_eq(LOG.e[1].udata, &u);
	qpd_free(q);
}

Test(dispatch, atexit_runs_once)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);

	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_ATEXIT, cb_simple, NULL), 0);
	qpd_atexit(q);
	qpd_atexit(q);
	cr_assert_eq(qpd_user_exit(q), 0);
	cr_assert_eq(LOG.n, 1);
	qpd_free(q);
}

Test(dispatch, user_exit_keeps_only_atexit_and_runs_it_once)
{
	struct qpd *q = online();
	qpd_plugin_id a = add_plugin(q), b = add_plugin(q);
	uint64_t args[8] = { 0 };

	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_VCPU_SYSCALL, cb_syscall,
				     NULL), 0);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_FLUSH, cb_simple, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_ATEXIT, cb_simple, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_ATEXIT, cb_simple, NULL), 0);
	cr_assert_eq(qpd_user_exit(q), 0);
	cr_assert_eq(LOG.n, 2);
	cr_assert_eq(LOG.e[0].id, b, "registered last, runs first");
	cr_assert_eq(LOG.e[1].id, a);
	qpd_syscall(q, 0, 1, args);
	qpd_flush(q);
	qpd_atexit(q);
	cr_assert_eq(qpd_user_exit(q), 0);
	cr_assert_eq(LOG.n, 2, "nothing else ran, ATEXIT not twice");
	done(q);
}

Test(dispatch, unregister_all_but_keeps_one_event_and_runs_nothing)
{
	struct qpd *q = online();
	qpd_plugin_id a = add_plugin(q), b = add_plugin(q);
	uint64_t args[8] = { 0 };

	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_VCPU_SYSCALL, cb_syscall,
				     NULL), 0);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_FLUSH, cb_simple, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_ATEXIT, cb_simple, NULL), 0);
	cr_assert(qpd_vcpu_has_event(q, 0, QPD_EV_VCPU_SYSCALL));
	cr_assert_eq(qpd_unregister_all_but(q, (enum qpd_event)99), -EINVAL);
	cr_assert_eq(qpd_unregister_all_but(q, QPD_EV_ATEXIT), 0);
	cr_assert_eq(LOG.n, 0, "nothing ran");
	cr_assert_not(qpd_vcpu_has_event(q, 0, QPD_EV_VCPU_SYSCALL));
	qpd_syscall(q, 0, 1, args);
	qpd_flush(q);
	cr_assert_eq(LOG.n, 0);
	qpd_atexit(q);
	cr_assert_eq(LOG.n, 1, "ATEXIT was kept");
	cr_assert_eq(qpd_unregister_all_but(q, QPD_EV_COUNT), 0);
	cr_assert_eq(qpd_unregister_all_but(NULL, QPD_EV_COUNT), -EINVAL);
	cr_assert_not(qpd_vcpu_has_event(q, 0, QPD_EV_COUNT));
	cr_assert_not(qpd_vcpu_has_event(q, 9999, QPD_EV_ATEXIT));
	cr_assert_not(qpd_vcpu_has_event(NULL, 0, QPD_EV_ATEXIT));
	done(q);
}

Test(dispatch, stats_count_dispatches_per_vcpu)
{
	struct qpd *q = online();
	qpd_plugin_id id = add_plugin(q);
	uint64_t args[8] = { 0 };
	struct qpd_stats st;

	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_SYSCALL, cb_syscall,
				     NULL), 0);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_FLUSH, cb_simple, NULL), 0);
	cr_assert_eq(qpd_vcpu_init(q, 1), 0);
	for (int i = 0; i < 5; i++)
		qpd_syscall(q, 0, 1, args);
	cr_assert(qpd_vcpu_enter(q, 1));
	qpd_syscall(q, 1, 1, args);
	qpd_vcpu_leave(q, 1);
	qpd_flush(q);
	cr_assert_eq(qpd_stats_get(q, &st), 0);
	cr_assert_eq(st.n_dispatch[QPD_EV_VCPU_SYSCALL], 6);
	cr_assert_eq(st.n_dispatch[QPD_EV_FLUSH], 1);
	cr_assert_eq(st.n_dispatch[QPD_EV_VCPU_SYSCALL_RET], 0);
	cr_assert_eq(st.n_vcpus_online, 2);
	cr_assert_eq(st.n_plugins, 1);
	done(q);
}

static unsigned mask_calls[8];

static void
on_mask(unsigned vcpu, void *opaque)
{
	cr_assert_eq(opaque, (void *)mask_calls);
	if (vcpu < 8)
		mask_calls[vcpu]++;
}

Test(dispatch, mask_hook_on_first_and_last_callback)
{
	struct qpd_config cfg = { .no_reclaimer_thread = true,
				  .on_mask_change = on_mask,
				  .opaque = mask_calls };
	struct qpd *q = qpd_new(&cfg);
	qpd_plugin_id a, b;

	cr_assert_eq(qpd_plugin_add(q, &a), 0);
	cr_assert_eq(qpd_plugin_add(q, &b), 0);
	cr_assert_eq(qpd_vcpu_init(q, 2), 0);
	cr_assert_eq(mask_calls[2], 1, "a new vCPU gets its mask");
	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_VCPU_IDLE, cb_vcpu, NULL), 0);
	cr_assert_eq(mask_calls[2], 2);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_VCPU_IDLE, cb_vcpu, NULL), 0);
	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_VCPU_IDLE, cb_vcpu_b, NULL), 0);
	cr_assert_eq(mask_calls[2], 2, "the mask did not change");
	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_VCPU_IDLE, NULL, NULL), 0);
	cr_assert_eq(mask_calls[2], 2);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_VCPU_IDLE, NULL, NULL), 0);
	cr_assert_eq(mask_calls[2], 3, "the last callback went");
	cr_assert_eq(mask_calls[0] + mask_calls[1], 0, "offline vCPUs skipped");
	qpd_free(q);
}

/* Calls an open SYSCALL_RET dispatch's entries as qpd_syscall_ret does. */
static unsigned
call_open_ret(struct qpd_dispatch *d, unsigned vcpu, int64_t num, int64_t ret)
{
	unsigned n = 0;

	QPD_DISPATCH_FOREACH(d, c) {
		((qpd_syscall_ret_cb_t)c->fn)(c->id, vcpu, num, ret, c->udata);
		n++;
	}
	return n;
}

Test(dispatch, open_dispatch_outside_slice_is_its_own_section)
{
	struct qpd *q = new_manual();
	qpd_plugin_id a = add_plugin(q), b = add_plugin(q);
	struct qpd_dispatch d;
	struct qpd_stats st;
	int ua, ub;

	cr_assert_eq(qpd_vcpu_init(q, 2), 0);
	cr_assert_eq(qpd_register_cb(q, b, QPD_EV_VCPU_SYSCALL_RET,
				     cb_syscall_ret, &ub), 0);
	cr_assert_eq(qpd_register_cb(q, a, QPD_EV_VCPU_SYSCALL_RET,
				     cb_syscall_ret, &ua), 0);
	cr_assert(qpd_dispatch_begin(q, 2, QPD_EV_VCPU_SYSCALL_RET, &d));
	cr_assert(d.opened, "no slice was open: the dispatch opens one");
	cr_assert_eq(d.v->rec.active, 1);
	cr_assert_eq(call_open_ret(&d, 2, 60, -1), 2);
	qpd_dispatch_end(&d);
	cr_assert_eq(d.v->rec.active, 0, "end closes what begin opened");
	cr_assert_eq(LOG.n, 2);
	cr_assert_eq(LOG.e[0].id, a, "registered last, runs first");
	cr_assert_eq(LOG.e[0].udata, &ua);
	cr_assert_eq(LOG.e[1].id, b);
	cr_assert_eq(LOG.e[1].vcpu, 2);
	cr_assert_eq(last_num, 60);
	cr_assert_eq(last_ret, -1);
	cr_assert_eq(qpd_stats_get(q, &st), 0);
	cr_assert_eq(st.n_dispatch[QPD_EV_VCPU_SYSCALL_RET], 1);
	qpd_free(q);
}

Test(dispatch, open_dispatch_inside_slice_nests)
{
	struct qpd *q = online();
	qpd_plugin_id id = add_plugin(q);
	struct qpd_dispatch d;

	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_SYSCALL_RET,
				     cb_syscall_ret, NULL), 0);
	cr_assert(qpd_dispatch_begin(q, 0, QPD_EV_VCPU_SYSCALL_RET, &d));
	cr_assert_not(d.opened, "the slice's section covers the dispatch");
	cr_assert_eq(call_open_ret(&d, 0, 1, 2), 1);
	qpd_dispatch_end(&d);
	cr_assert_eq(d.v->rec.active, 1, "the slice stays open");
	done(q);
}

Test(dispatch, open_dispatch_refuses_without_touching_the_section)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);
	struct qpd_dispatch d;
	struct qpd_vcpu *v;

	cr_assert_not(qpd_dispatch_begin(q, 0, QPD_EV_VCPU_SYSCALL, &d),
		      "vCPU never initialised");
	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	cr_assert_not(qpd_dispatch_begin(q, 0, QPD_EV_VCPU_SYSCALL, &d),
		      "no callback for the event");
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_SYSCALL, cb_syscall,
				     NULL), 0);
	cr_assert_not(qpd_dispatch_begin(q, 0, QPD_EV_COUNT, &d), "bad event");
	cr_assert_not(qpd_dispatch_begin(q, 0, (enum qpd_event)-1, &d),
		      "bad event");
	cr_assert_not(qpd_dispatch_begin(q, UINT_MAX, QPD_EV_VCPU_SYSCALL, &d),
		      "index past max_vcpus");
	cr_assert(qpd_dispatch_begin(q, 0, QPD_EV_VCPU_SYSCALL, &d));
	v = d.v;
	qpd_dispatch_end(&d);
	cr_assert_eq(qpd_vcpu_exit(q, 0), 0);
	cr_assert_not(qpd_dispatch_begin(q, 0, QPD_EV_VCPU_SYSCALL, &d),
		      "vCPU offline");
	cr_assert_eq(v->rec.active, 0, "a refused dispatch opens nothing");
	cr_assert_eq(LOG.n, 0, "nothing was called");
	qpd_free(q);
}

Test(dispatch, open_dispatch_holds_back_done)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);
	struct qpd_dispatch d;
	int flag = 0;

	cr_assert_eq(qpd_vcpu_init(q, 1), 0);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_SYSCALL_RET,
				     cb_syscall_ret, NULL), 0);
	cr_assert(qpd_dispatch_begin(q, 1, QPD_EV_VCPU_SYSCALL_RET, &d));
	cr_assert_eq(qpd_plugin_uninstall(q, id, done_set_flag, &flag), 0);
	for (int i = 0; i < 50; i++)
		qpd_reclaim(q);
	cr_assert_eq(flag, 0, "the open dispatch may still call the plugin");
	cr_assert_eq(call_open_ret(&d, 1, 3, 4), 1,
		     "the list it loaded stays valid");
	qpd_dispatch_end(&d);
	cr_assert(reclaim_until(q, &flag), "done after the dispatch ended");
	qpd_free(q);
}
