/* Instance set-up shared by the cases, per backend. */
#include "backends.h"

void *
qpd_bench_setup(unsigned plugins, enum qpd_event ev, void *fn, void *udata)
{
	struct qpd_config cfg = { .no_reclaimer_thread = true };
	struct qpd *q = qpd_new(&cfg);

	if (q == NULL || qpd_vcpu_init(q, 0) != 0)
		goto fail;
	for (unsigned k = 0; k < plugins; k++) {
		qpd_plugin_id id;

		if (qpd_plugin_add(q, &id) != 0 ||
		    (fn && qpd_register_cb(q, id, ev, fn, udata) != 0))
			goto fail;
	}
	return q;
fail:
	qpd_free(q);
	return NULL;
}

void
qpd_bench_teardown(void *inst)
{
	qpd_free(inst);
}
