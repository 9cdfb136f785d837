/*
 * dyn_build: building dynamic lists, as translation does, from T threads at
 * once (T = 1, 2).  One operation is the list of one instrumented memory
 * instruction: qpd_dyn_new, a memory callback and a memory inline op
 * appended (qpd_dyn_add_mem_cb, qpd_dyn_add_mem_inline on a live
 * scoreboard), then the list goes:
 *   dyn_build        qpd_dyn_retire of each list (an embedder invalidating
 *                    single blocks)
 *   dyn_build_flush  no retire; each thread calls qpd_flush every 1024
 *                    lists (QEMU's way: lists go with translated code)
 * Every thread builds its own lists on one shared instance (the default
 * configuration, so the reclaimer thread frees them).  ns/op is per list of
 * all threads together: a path that scales halves it at 2 threads, one
 * that serialises the threads keeps it or worse.
 */
#include <stdio.h>

#include <qpd.h>

#include "cases.h"
#include "harness.h"

#define FLUSH_EVERY 1024

static const unsigned thread_counts[] = { 1, 2 };

struct ctx {
	struct qpd *q;
	qpd_u64 c;
	unsigned failed;
};

static uint64_t sink;

static void
mem_cb(unsigned vcpu, uint32_t info, uint64_t vaddr, void *udata)
{
	*(volatile uint64_t *)udata += vcpu + info + vaddr;
}

/* One list, built; NULL (and the failure counted) if anything refused. */
static struct qpd_dyn *
build(struct ctx *c)
{
	struct qpd_dyn *l = qpd_dyn_new(c->q);

	if (l == NULL ||
	    qpd_dyn_add_mem_cb(l, mem_cb, QPD_MEM_RW, &sink) != 0 ||
	    qpd_dyn_add_mem_inline(l, QPD_MEM_RW, QPD_OP_ADD_U64, c->c, 1) != 0) {
		ck_pr_inc_uint(&c->failed);
		return NULL;
	}
	return l;
}

static void
run_retire(void *p, uint64_t iters)
{
	struct ctx *c = p;

	for (uint64_t i = 0; i < iters; i++) {
		struct qpd_dyn *l = build(c);

		if (l != NULL && qpd_dyn_retire(c->q, l) != 0)
			ck_pr_inc_uint(&c->failed);
	}
}

static void
run_flush(void *p, uint64_t iters)
{
	struct ctx *c = p;

	for (uint64_t i = 0; i < iters; i++) {
		build(c);
		if (i % FLUSH_EVERY == FLUSH_EVERY - 1)
			qpd_flush(c->q);
	}
}

static void
one(const char *name, bench_run_fn run)
{
	for (unsigned i = 0; i < sizeof(thread_counts) / sizeof(*thread_counts);
	     i++) {
		struct ctx c = { 0 };
		struct bench_impl impl = { "qpd", run, &c };
		unsigned t = thread_counts[i];
		char params[32];

		if (bench_opt.max_threads && t > bench_opt.max_threads)
			continue;
		snprintf(params, sizeof(params), "threads:%u", t);
		if (!bench_selected_case(name, params))
			continue;
		c.q = qpd_new(NULL);
		if (c.q == NULL)
			return;
		c.c = (qpd_u64){ qpd_scoreboard_new(c.q, 8), 0 };
		if (c.c.score != NULL)
			bench_measure(name, params, &impl, 1, t);
		if (c.c.score == NULL || c.failed != 0)
			fprintf(stderr, "  %s/%s: %u list(s) failed to build\n",
				name, params, c.failed);
		qpd_free(c.q);
	}
}

void
case_dyn_build(void)
{
	one("dyn_build", run_retire);
	one("dyn_build_flush", run_flush);
}

static double
rate(const char *name, unsigned threads)
{
	char group[64];
	const struct bench_result *r;

	snprintf(group, sizeof(group), "%s/threads:%u", name, threads);
	r = bench_find(group, "qpd");
	return r ? r->items_per_second : 0;
}

double
report_dyn_build(void)
{
	static const char *names[] = { "dyn_build", "dyn_build_flush" };

	if (rate(names[0], 1) == 0 && rate(names[1], 1) == 0)
		return 0;
	printf("\nbuilding dynamic lists, aggregate Mlists/s (2 threads over 1)\n");
	printf("%-16s %10s %10s %8s\n", "case", "1 thread", "2 threads",
	       "2t/1t");
	for (unsigned k = 0; k < 2; k++) {
		double r1 = rate(names[k], 1), r2 = rate(names[k], 2);

		if (r1 == 0)
			continue;
		printf("%-16s %10.2f %10.2f %8.2f\n", names[k], r1 / 1e6,
		       r2 / 1e6, r2 / r1);
	}
	return rate(names[0], 1) > 0 ? rate(names[0], 2) / rate(names[0], 1)
				     : 0;
}
