/*
 * inline_add: ADD_U64 on a per-vCPU counter from T threads at once.
 *   qpd       qpd_inline_add_u64 on the thread's own scoreboard slot
 *   unpadded  a plain uint64_t array indexed by thread (false sharing)
 *   atomic    one shared counter, atomic add (what a naive plugin does)
 *   limit     a per-thread counter padded to a cache line, no qpd
 * Every implementation does a load, an add and a store per operation
 * (atomic: one locked add), so the differences are layout and sharing.
 */
#include <stdio.h>

#include <qpd.h>

#include "cases.h"
#include "harness.h"

#define MAX_T 64

struct ctx {
	unsigned next;              /* hands out thread indices */
	struct qpd *q;
	qpd_u64 c;
	uint64_t unpadded[MAX_T];
	uint64_t shared;
	struct {
		uint64_t v;
	} __attribute__((aligned(64))) padded[MAX_T];
};

static unsigned
me(struct ctx *c)
{
	return ck_pr_faa_uint(&c->next, 1) % MAX_T;
}

static void
run_qpd(void *p, uint64_t iters)
{
	struct ctx *c = p;
	unsigned v = me(c);
	qpd_u64 e = c->c; /* as translated code holds it: in registers */

	for (uint64_t i = 0; i < iters; i++)
		qpd_inline_add_u64(e, v, 1);
}

static void
run_unpadded(void *p, uint64_t iters)
{
	struct ctx *c = p;
	uint64_t *x = &c->unpadded[me(c)];

	for (uint64_t i = 0; i < iters; i++)
		ck_pr_store_64(x, ck_pr_load_64(x) + 1);
}

static void
run_atomic(void *p, uint64_t iters)
{
	struct ctx *c = p;

	(void)me(c);
	for (uint64_t i = 0; i < iters; i++)
		ck_pr_add_64(&c->shared, 1);
}

static void
run_limit(void *p, uint64_t iters)
{
	struct ctx *c = p;
	uint64_t *x = &c->padded[me(c)].v;

	for (uint64_t i = 0; i < iters; i++)
		ck_pr_store_64(x, ck_pr_load_64(x) + 1);
}

static const unsigned thread_counts[] = { 1, 2, 8, 64 };

void
case_inline_scaling(void)
{
	static struct ctx c;
	struct qpd_config cfg = { .no_reclaimer_thread = true };
	struct bench_impl impls[4] = {
		{ "qpd", run_qpd, &c },
		{ "unpadded", run_unpadded, &c },
		{ "atomic", run_atomic, &c },
		{ "limit", run_limit, &c },
	};

	c.q = qpd_new(&cfg);
	if (c.q == NULL)
		return;
	c.c = (qpd_u64){ qpd_scoreboard_new(c.q, 8), 0 };
	for (unsigned i = 0; i < sizeof(thread_counts) / sizeof(*thread_counts);
	     i++) {
		char params[32];

		if (bench_opt.max_threads && thread_counts[i] > bench_opt.max_threads)
			continue;
		snprintf(params, sizeof(params), "threads:%u", thread_counts[i]);
		bench_measure("inline_add", params, impls, 4, thread_counts[i]);
	}
	qpd_free(c.q);
}

static double
rate(unsigned threads, const char *impl)
{
	char group[64];
	const struct bench_result *r;

	snprintf(group, sizeof(group), "inline_add/threads:%u", threads);
	r = bench_find(group, impl);
	return r ? r->items_per_second : 0;
}

double
report_inline_scaling(void)
{
	static const char *impls[] = { "qpd", "unpadded", "atomic", "limit" };
	double base[4];

	if (rate(1, "qpd") == 0)
		return 0;
	printf("\ninline ADD_U64, aggregate Mops/s (scaling vs 1 thread)\n");
	printf("%-8s", "threads");
	for (unsigned k = 0; k < 4; k++)
		printf(" %19s", impls[k]);
	printf(" %10s\n", "qpd/limit");
	for (unsigned k = 0; k < 4; k++)
		base[k] = rate(1, impls[k]);
	for (unsigned i = 0; i < sizeof(thread_counts) / sizeof(*thread_counts);
	     i++) {
		unsigned t = thread_counts[i];

		if (rate(t, "qpd") == 0)
			continue;
		printf("%-8u", t);
		for (unsigned k = 0; k < 4; k++)
			printf(" %10.1f (%5.2fx)", rate(t, impls[k]) / 1e6,
			       rate(t, impls[k]) / base[k]);
		printf(" %10.2f\n", rate(t, "qpd") / rate(t, "limit"));
	}
	if (rate(2, "qpd") == 0)
		return 0;
	return (rate(2, "qpd") / base[0]) / (rate(2, "limit") / base[3]);
}
