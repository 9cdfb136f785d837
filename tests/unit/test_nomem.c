/*
 * Allocation failure: every allocation an operation reaches is made to
 * fail in turn; each failure must return -ENOMEM and change nothing.
 */
#include "helpers.h"

extern unsigned long qpd__fault_countdown;

static void
cb(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	log_call(1, id, vcpu, udata);
}

struct fixture {
	struct qpd *q;
	qpd_plugin_id a, b;
	struct qpd_stats before;
};

typedef int (*op_fn)(struct fixture *f);

/* Stats that an operation failing with -ENOMEM must leave alone. */
static void
assert_unchanged(struct fixture *f)
{
	struct qpd_stats st;

	cr_assert_eq(qpd_stats_get(f->q, &st), 0);
	cr_assert_eq(st.n_plugins, f->before.n_plugins);
	cr_assert_eq(st.n_registrations, f->before.n_registrations);
	cr_assert_eq(st.n_unregistrations, f->before.n_unregistrations);
	cr_assert_eq(st.n_vcpus, f->before.n_vcpus);
	cr_assert_eq(st.n_vcpus_online, f->before.n_vcpus_online);
	cr_assert_eq(st.n_pending_reclaim, f->before.n_pending_reclaim);
}

/* Fails the 1st, 2nd, ... allocation of op until op succeeds. */
static unsigned
sweep(struct fixture *f, op_fn op)
{
	for (unsigned long n = 1; n < 64; n++) {
		int err;

		cr_assert_eq(qpd_stats_get(f->q, &f->before), 0);
		qpd__fault_countdown = n;
		err = op(f);
		qpd__fault_countdown = 0;
		if (err == 0)
			return (unsigned)n - 1;
		cr_assert_eq(err, -ENOMEM, "allocation %lu: %d", n, err);
		assert_unchanged(f);
	}
	cr_assert_fail("operation never succeeded");
	return 0;
}

static struct fixture
setup(void)
{
	struct fixture f = { .q = new_manual() };

	f.a = add_plugin(f.q);
	f.b = add_plugin(f.q);
	cr_assert_eq(qpd_vcpu_init(f.q, 0), 0);
	cr_assert_eq(qpd_register_cb(f.q, f.a, QPD_EV_VCPU_IDLE, cb, NULL), 0);
	cr_assert_eq(qpd_register_cb(f.q, f.a, QPD_EV_VCPU_RESUME, cb, NULL), 0);
	cr_assert_eq(qpd_register_cb(f.q, f.b, QPD_EV_VCPU_IDLE, cb, NULL), 0);
	return f;
}

static int
op_add(struct fixture *f)
{
	qpd_plugin_id id;

	return qpd_plugin_add(f->q, &id);
}

static int
op_register(struct fixture *f)
{
	return qpd_register_cb(f->q, f->b, QPD_EV_VCPU_RESUME, cb, NULL);
}

static int
op_unregister(struct fixture *f)
{
	return qpd_register_cb(f->q, f->a, QPD_EV_VCPU_IDLE, NULL, NULL);
}

static int
op_vcpu_init(struct fixture *f)
{
	return qpd_vcpu_init(f->q, 4000);
}

static int
op_uninstall(struct fixture *f)
{
	return qpd_plugin_uninstall(f->q, f->a, NULL, NULL);
}

static int
op_reset(struct fixture *f)
{
	return qpd_plugin_reset(f->q, f->a, NULL, NULL);
}

Test(nomem, plugin_add)
{
	struct fixture f = setup();

	cr_assert_geq(sweep(&f, op_add), 1);
	qpd_free(f.q);
}

Test(nomem, register_and_unregister)
{
	struct fixture f = setup();

	cr_assert_geq(sweep(&f, op_register), 1);
	cr_assert_geq(sweep(&f, op_unregister), 1);
	qpd_vcpu_idle(f.q, 0);
	qpd_vcpu_resume(f.q, 0);
	cr_assert_eq(LOG.n, 3, "b idle, a resume, b resume");
	qpd_free(f.q);
}

Test(nomem, vcpu_init_new_chunk)
{
	struct fixture f = setup();

	cr_assert_geq(sweep(&f, op_vcpu_init), 1);
	cr_assert_eq(qpd_num_vcpus(f.q), 4001);
	qpd_free(f.q);
}

Test(nomem, uninstall_is_all_or_nothing)
{
	struct fixture f = setup();

	/* The notice and IDLE's new array; RESUME's empties: no allocation. */
	cr_assert_eq(sweep(&f, op_uninstall), 2);
	qpd_vcpu_idle(f.q, 0);
	qpd_vcpu_resume(f.q, 0);
	cr_assert_eq(LOG.n, 1, "only b's idle callback is left");
	cr_assert_eq(LOG.e[0].id, f.b);
	qpd_free(f.q);
}

Test(nomem, reset_is_all_or_nothing)
{
	struct fixture f = setup();

	cr_assert_eq(sweep(&f, op_reset), 2);
	cr_assert_eq(qpd_register_cb(f.q, f.a, QPD_EV_VCPU_IDLE, cb, NULL), 0);
	qpd_free(f.q);
}
