/* Instance set-up shared by the cases, per backend. */
#include <time.h>

#include "backends.h"

void *
qpd_bench_setup(unsigned plugins, enum qpd_event ev, void *fn, void *udata)
{
	/* The default configuration: a reclaimer thread calls `done`. */
	struct qpd *q = qpd_new(NULL);

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

void
qpd_bench_idle_wait(struct qpd *q)
{
	struct timespec ts = { 0, 10000 };

	(void)q; /* the reclaimer thread does the work */
	nanosleep(&ts, NULL);
}

struct qpd *
qpd_workload_new(void (*rebuild)(void *opaque))
{
	(void)rebuild; /* lists survive vCPU growth: nothing to rebuild */
	return qpd_new(NULL);
}

#ifdef QPD_BENCH_LEGACY
/* Rebuilds nothing: the cases that grow past 16 vCPUs use no lists. */
static void
no_lists(void *opaque)
{
	(void)opaque;
}

void *
legacy_bench_setup(unsigned plugins, enum qpd_event ev, void *fn,
		   void *udata)
{
	struct legacy_opts opts = { .on_flush = no_lists };
	struct legacy *l = legacy_new(&opts);

	if (l == NULL || legacy_vcpu_init(l, 0) != 0)
		goto fail;
	for (unsigned k = 0; k < plugins; k++) {
		qpd_plugin_id id;

		if (legacy_plugin_add(l, &id) != 0 ||
		    (fn && legacy_register_cb(l, id, ev, fn, udata) != 0))
			goto fail;
	}
	return l;
fail:
	if (l != NULL)
		legacy_free(l);
	return NULL;
}

void
legacy_bench_teardown(void *inst)
{
	legacy_free(inst);
}

void
legacy_bench_idle_wait(struct legacy *l)
{
	struct timespec ts = { 0, 10000 };

	(void)l;
	nanosleep(&ts, NULL);
}

struct legacy *
legacy_workload_new(void (*rebuild)(void *opaque))
{
	struct legacy_opts opts = { .on_flush = rebuild };

	return legacy_new(&opts);
}
#endif
