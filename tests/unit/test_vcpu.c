/* The vCPU registry: sparse and reused indices, init/exit/idle/resume. */
#include "helpers.h"

static void
cb_vcpu(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	log_call((int)(uintptr_t)udata, id, vcpu, udata);
}

static void
collect(qpd_plugin_id id, unsigned vcpu)
{
	log_call(0, id, vcpu, NULL);
}

Test(vcpu, sparse_indices_and_num_vcpus)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);

	cr_assert_eq(qpd_num_vcpus(q), 0);
	cr_assert_eq(qpd_vcpu_init(q, 5), 0);
	cr_assert_eq(qpd_num_vcpus(q), 6);
	cr_assert_eq(qpd_vcpu_init(q, 4095), 0);
	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	cr_assert_eq(qpd_num_vcpus(q), 4096);
	cr_assert_eq(qpd_vcpu_for_each(q, id, collect), 0);
	cr_assert_eq(LOG.n, 3);
	cr_assert_eq(LOG.e[0].vcpu, 0);
	cr_assert_eq(LOG.e[1].vcpu, 5);
	cr_assert_eq(LOG.e[2].vcpu, 4095);
	cr_assert_eq(LOG.e[2].id, id);
	cr_assert_eq(qpd_vcpu_exit(q, 4095), 0);
	cr_assert_eq(qpd_num_vcpus(q), 4096, "highest ever initialised");
	qpd_free(q);
}

Test(vcpu, reuse_lowest_free_index)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);
	struct qpd_vcpu *before;

	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_INIT, cb_vcpu,
				     (void *)1), 0);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_EXIT, cb_vcpu,
				     (void *)2), 0);
	for (unsigned i = 0; i < 3; i++)
		cr_assert_eq(qpd_vcpu_init(q, i), 0);
	before = qpd__vcpu(q, 1);
	cr_assert_eq(qpd_vcpu_exit(q, 1), 0);
	cr_assert_eq(qpd_vcpu_init(q, 1), 0);
	cr_assert_eq(qpd__vcpu(q, 1), before, "the block never moves");
	cr_assert_eq(LOG.n, 5);
	cr_assert_eq(LOG.e[3].tag, 2);
	cr_assert_eq(LOG.e[3].vcpu, 1);
	cr_assert_eq(LOG.e[4].tag, 1);
	cr_assert_eq(LOG.e[4].vcpu, 1);
	cr_assert_eq(qpd_num_vcpus(q), 3);
	qpd_free(q);
}

Test(vcpu, init_exit_errors)
{
	struct qpd_config cfg = { .max_vcpus = 4096,
				  .no_reclaimer_thread = true };
	struct qpd *q = qpd_new(&cfg);

	cr_assert_eq(qpd_vcpu_init(q, 4096), -EINVAL);
	cr_assert_eq(qpd_vcpu_init(q, 4095), 0);
	cr_assert_eq(qpd_vcpu_init(q, 4095), -EEXIST);
	cr_assert_eq(qpd_vcpu_exit(q, 1), -ENOENT);
	cr_assert_eq(qpd_vcpu_exit(q, 4096), -EINVAL);
	cr_assert(qpd_vcpu_enter(q, 4095));
	cr_assert_eq(qpd_vcpu_exit(q, 4095), -EBUSY);
	qpd_vcpu_leave(q, 4095);
	cr_assert_eq(qpd_vcpu_exit(q, 4095), 0);
	cr_assert_eq(qpd_vcpu_exit(q, 4095), -ENOENT);
	cr_assert_not(qpd_vcpu_enter(q, 4095), "offline vCPUs have no slice");
	cr_assert_not(qpd_vcpu_enter(q, 99999));
	qpd_free(q);
}

Test(vcpu, idle_resume_ignored_before_init)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);

	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_IDLE, cb_vcpu,
				     (void *)3), 0);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_RESUME, cb_vcpu,
				     (void *)4), 0);
	qpd_vcpu_idle(q, 0);
	qpd_vcpu_resume(q, 0);
	qpd_vcpu_idle(q, 1u << 30);
	cr_assert_eq(LOG.n, 0);
	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	qpd_vcpu_idle(q, 0);
	qpd_vcpu_resume(q, 0);
	cr_assert_eq(LOG.n, 2);
	cr_assert_eq(LOG.e[0].tag, 3);
	cr_assert_eq(LOG.e[1].tag, 4);
	cr_assert_eq(qpd_vcpu_exit(q, 0), 0);
	qpd_vcpu_idle(q, 0);
	cr_assert_eq(LOG.n, 2, "ignored after exit too");
	qpd_free(q);
}

Test(vcpu, dispatch_on_offline_vcpu_does_nothing)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);

	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_TB_TRANS,
				     (void *)cb_vcpu, NULL), 0);
	qpd_tb_trans(q, 3, NULL);
	qpd_tb_trans(q, 1u << 30, NULL);
	cr_assert_eq(LOG.n, 0);
	qpd_free(q);
}

Test(vcpu, many_vcpus)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);

	for (unsigned i = 0; i < 4096; i++)
		cr_assert_eq(qpd_vcpu_init(q, i), 0);
	cr_assert_eq(qpd_vcpu_for_each(q, id, collect), 0);
	cr_assert_eq(LOG.n, 4096);
	cr_assert_eq(qpd_num_vcpus(q), 4096);
	qpd_free(q);
}

Test(vcpu, for_each_errors)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);

	cr_assert_eq(qpd_vcpu_for_each(q, id, NULL), -EINVAL);
	cr_assert_eq(qpd_vcpu_for_each(q, id + 1, collect), -ENOENT);
	cr_assert_eq(qpd_vcpu_for_each(q, 0, collect), -ENOENT);
	qpd_free(q);
}

/* A vCPU thread that vanishes inside its slice, as a fork child sees it. */
static void *
vanish_in_slice(void *arg)
{
	struct qpd *q = arg;

	cr_assert_eq(qpd_vcpu_init(q, 3), 0);
	cr_assert(qpd_vcpu_enter(q, 3));
	return NULL; /* never leaves */
}

Test(vcpu, forget_takes_offline_without_exit_and_releases_section)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q), other = add_plugin(q);
	volatile int done = 0;
	pthread_t t;

	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_EXIT, cb_vcpu,
				     (void *)2), 0);
	cr_assert_eq(pthread_create(&t, NULL, vanish_in_slice, q), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(qpd_vcpu_forget(NULL, 3), -EINVAL);
	cr_assert_eq(qpd_vcpu_forget(q, 4096 * 4), -EINVAL);
	cr_assert_eq(qpd_vcpu_forget(q, 2), -ENOENT);
	/* While the orphan section stands, no grace period can pass. */
	cr_assert_eq(qpd_plugin_uninstall(q, other, done_set_flag,
					  (void *)&done), 0);
	for (int i = 0; i < 8; i++)
		qpd_reclaim(q);
	cr_assert_eq(done, 0, "an open section holds reclamation back");
	cr_assert_eq(qpd_vcpu_forget(q, 3), 0);
	cr_assert_eq(LOG.n, 0, "no EXIT callback for a vanished thread");
	cr_assert_not(qpd_vcpu_has_event(q, 3, QPD_EV_VCPU_EXIT));
	cr_assert(reclaim_until(q, &done), "the section was released");
	cr_assert_eq(qpd_vcpu_forget(q, 3), -ENOENT);
	/* The index is free again and comes back with the current mask. */
	cr_assert_eq(qpd_vcpu_init(q, 3), 0);
	cr_assert(qpd_vcpu_has_event(q, 3, QPD_EV_VCPU_EXIT));
	cr_assert_eq(qpd_vcpu_exit(q, 3), 0);
	cr_assert_eq(LOG.n, 1);
	qpd_free(q);
}

/*
 * Indices past the near table go through the directory's pages: one in the
 * first page, one at a page's edge, the last allowed; their neighbours in
 * pages never touched stay unknown, and a vCPU's block keeps its address.
 */
Test(vcpu, far_indices_across_directory_pages)
{
	const unsigned page_span = QPD_VCPU_CHUNK * QPD_VDIR_PAGE;
	const unsigned max = 4 * page_span + 7;
	const unsigned idx[] = { QPD_VCPU_NEAR, page_span - 1, page_span,
				 3 * page_span + 1, max - 1 };
	struct qpd_config cfg = { .no_reclaimer_thread = true,
				  .max_vcpus = max };
	struct qpd *q = qpd_new(&cfg);
	struct qpd_vcpu *block[5];
	qpd_plugin_id id;

	cr_assert_not_null(q);
	memset(&LOG, 0, sizeof(LOG));
	cr_assert_eq(qpd_plugin_add(q, &id), 0);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_IDLE, cb_vcpu, NULL),
		     0);
	for (unsigned i = 0; i < 5; i++) {
		cr_assert_eq(qpd_vcpu_init(q, idx[i]), 0, "index %u", idx[i]);
		block[i] = qpd__vcpu(q, idx[i]);
		cr_assert_not_null(block[i]);
		cr_assert_eq(block[i]->index, idx[i]);
	}
	cr_assert_null(qpd__vcpu(q, 2 * page_span), "a page never used");
	cr_assert_null(qpd__vcpu(q, max));
	cr_assert_eq(qpd_vcpu_init(q, max), -EINVAL);
	cr_assert_eq(qpd_num_vcpus(q), max);
	for (unsigned i = 0; i < 5; i++)
		qpd_vcpu_idle(q, idx[i]);
	cr_assert_eq(LOG.n, 5);
	cr_assert_eq(LOG.e[4].vcpu, max - 1);
	cr_assert_eq(qpd_vcpu_exit(q, page_span), 0);
	cr_assert_eq(qpd_vcpu_init(q, page_span), 0);
	cr_assert_eq(qpd__vcpu(q, page_span), block[2], "blocks never move");
	qpd_free(q);
}
