/* Error codes, the error hook and qpd_strerror. */
#include "helpers.h"

static int hook_err;
static const char *hook_func;
static unsigned hook_calls;

static void
on_error(int err, const char *func, void *opaque)
{
	cr_assert_eq(opaque, &hook_calls);
	hook_err = err;
	hook_func = func;
	hook_calls++;
}

static void
cb(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	log_call(1, id, vcpu, udata);
}

Test(errors, hook_sees_code_and_function)
{
	struct qpd_config cfg = { .no_reclaimer_thread = true,
				  .on_error = on_error, .opaque = &hook_calls };
	struct qpd *q = qpd_new(&cfg);
	struct qpd_stats st;

	cr_assert_eq(qpd_register_cb(q, 42, QPD_EV_VCPU_IDLE, cb, NULL),
		     -ENOENT);
	cr_assert_eq(hook_err, -ENOENT);
	cr_assert_str_eq(hook_func, "qpd_register_cb");
	cr_assert_eq(qpd_plugin_uninstall(q, 42, NULL, NULL), -ENOENT);
	cr_assert_str_eq(hook_func, "qpd_plugin_uninstall");
	cr_assert_eq(hook_calls, 2);
	cr_assert_eq(qpd_stats_get(q, &st), 0);
	cr_assert_eq(st.n_errors, 2);
	qpd_free(q);
}

Test(errors, bad_event_leaves_state_unchanged)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);
	struct qpd_stats st;

	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_COUNT, cb, NULL), -EINVAL);
	cr_assert_eq(qpd_register_cb(q, id, (enum qpd_event)-1, cb, NULL),
		     -EINVAL);
	cr_assert_eq(qpd_register_cb(q, id, (enum qpd_event)64, cb, NULL),
		     -EINVAL);
	cr_assert_eq(qpd_stats_get(q, &st), 0);
	cr_assert_eq(st.n_registrations, 0);
	cr_assert_eq(st.n_errors, 3);
	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_IDLE, cb, NULL), 0);
	qpd_vcpu_idle(q, 0);
	cr_assert_eq(LOG.n, 1, "the instance still works");
	qpd_free(q);
}

Test(errors, null_arguments)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id;

	cr_assert_eq(qpd_plugin_add(NULL, &id), -EINVAL);
	cr_assert_eq(qpd_plugin_add(q, NULL), -EINVAL);
	cr_assert_eq(qpd_plugin_uninstall(NULL, 1, NULL, NULL), -EINVAL);
	cr_assert_eq(qpd_plugin_reset(NULL, 1, NULL, NULL), -EINVAL);
	cr_assert_eq(qpd_register_cb(NULL, 1, QPD_EV_FLUSH, NULL, NULL),
		     -EINVAL);
	cr_assert_eq(qpd_vcpu_init(NULL, 0), -EINVAL);
	cr_assert_eq(qpd_vcpu_exit(NULL, 0), -EINVAL);
	cr_assert_eq(qpd_vcpu_for_each(NULL, 1, NULL), -EINVAL);
	cr_assert_eq(qpd_stats_get(q, NULL), -EINVAL);
	cr_assert_eq(qpd_stats_get(NULL, NULL), -EINVAL);
	cr_assert_eq(qpd_reclaim(NULL), -EINVAL);
	cr_assert_eq(qpd_user_exit(NULL), -EINVAL);
	cr_assert_eq(qpd_prefork(NULL), -EINVAL);
	cr_assert_eq(qpd_postfork(NULL, false), -EINVAL);
	cr_assert_eq(qpd_num_vcpus(NULL), 0);
	qpd_flush(NULL);
	qpd_atexit(NULL);
	qpd_vcpu_idle(NULL, 0);
	qpd_free(NULL);
	qpd_free(q);
}

Test(errors, new_rejects_absurd_max_vcpus)
{
	struct qpd_config cfg = { .max_vcpus = QPD_MAX_VCPUS_LIMIT + 1 };

	errno = 0;
	cr_assert_null(qpd_new(&cfg));
	cr_assert_eq(errno, EINVAL);
}

Test(errors, strerror_names_every_code)
{
	int codes[] = { 0, -EINVAL, -ENOENT, -EEXIST, -ENOMEM, -ESHUTDOWN,
			-EALREADY, -EBUSY };
	const char *unknown = qpd_strerror(-9999);

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		cr_assert_not_null(qpd_strerror(codes[i]));
		cr_assert_str_neq(qpd_strerror(codes[i]), unknown);
	}
}
