/* The benchmark harness: see harness.h. */
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define MAX_RESULTS 512
#define MAX_IMPLS 8
#define ROUNDS 9

struct bench_options bench_opt = { .seconds = 1.0 };

static struct bench_result results[MAX_RESULTS];
static unsigned n_results;

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

bool
bench_selected(const char *group)
{
	static regex_t re;
	static const char *compiled;

	if (bench_opt.filter == NULL)
		return true;
	if (compiled != bench_opt.filter) {
		if (compiled != NULL)
			regfree(&re);
		if (regcomp(&re, bench_opt.filter, REG_EXTENDED | REG_NOSUB) != 0) {
			fprintf(stderr, "bad --filter regex: %s\n", bench_opt.filter);
			exit(2);
		}
		compiled = bench_opt.filter;
	}
	return regexec(&re, group, 0, NULL, 0) == 0;
}

bool
bench_selected_case(const char *case_name, const char *params)
{
	char group[128];

	snprintf(group, sizeof(group), "%s%s%s", case_name, *params ? "/" : "",
		 params);
	return bench_selected(group);
}

struct worker {
	struct bench_impl *impl;
	uint64_t iters;
	pthread_barrier_t start;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(&w->start);
	w->impl->run(w->impl->ctx, w->iters);
	return NULL;
}

/*
 * Wall time of one batch: `threads` threads each running iters ops, timed
 * from the moment all of them exist (creating them is not the operation).
 */
static double
run_batch(struct bench_impl *impl, uint64_t iters, unsigned threads)
{
	pthread_t t[256];
	struct worker w = { .impl = impl, .iters = iters };
	double t0;

	if (threads <= 1) {
		t0 = now_ns();
		impl->run(impl->ctx, iters);
		return now_ns() - t0;
	}
	pthread_barrier_init(&w.start, NULL, threads + 1);
	for (unsigned i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, worker_main, &w);
	pthread_barrier_wait(&w.start);
	t0 = now_ns();
	for (unsigned i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	t0 = now_ns() - t0;
	pthread_barrier_destroy(&w.start);
	return t0;
}

void
bench_measure(const char *case_name, const char *params,
	      struct bench_impl *impls, unsigned n_impls, unsigned threads)
{
	double samples[MAX_IMPLS][ROUNDS];
	double round_ns = bench_opt.seconds * 1e9 / ROUNDS / n_impls;
	uint64_t iters[MAX_IMPLS];
	char group[96];

	snprintf(group, sizeof(group), "%s%s%s", case_name, *params ? "/" : "",
		 params);
	if (!bench_selected(group) || n_impls > MAX_IMPLS || threads > 256)
		return;
	/*
	 * Each implementation gets its own batch, grown until it takes about
	 * a round's share of the time: sized on a fast one, a slow one's
	 * batches would take tens of times the budget; sized on a slow one, a
	 * fast one's would be too short to time.
	 */
	for (unsigned i = 0; i < n_impls; i++) {
		iters[i] = 1024;
		while (run_batch(&impls[i], iters[i], threads) < round_ns &&
		       iters[i] < (UINT64_C(1) << 36))
			iters[i] *= 2;
	}
	for (unsigned r = 0; r < ROUNDS; r++)
		for (unsigned i = 0; i < n_impls; i++)
			samples[i][r] = run_batch(&impls[i], iters[i], threads) /
					((double)iters[i] * threads);
	for (unsigned i = 0; i < n_impls; i++)
		bench_record(case_name, params, impls[i].name,
			     bench_median(samples[i], ROUNDS),
			     iters[i] * threads * ROUNDS, threads);
	fprintf(stderr, "  %-48s %3u thread(s), %llu ops per first batch\n",
		group, threads, (unsigned long long)iters[0] * threads);
}

double
bench_median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double
bench_percentile(double *v, unsigned n, double p)
{
	unsigned i;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	i = (unsigned)(p / 100.0 * (n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

void
bench_record(const char *case_name, const char *params, const char *impl,
	     double ns_per_op, uint64_t iterations, unsigned threads)
{
	struct bench_result *res;

	if (n_results >= MAX_RESULTS)
		return;
	res = &results[n_results++];
	snprintf(res->name, sizeof(res->name), "%s/impl:%s%s%s", case_name,
		 impl, *params ? "/" : "", params);
	snprintf(res->group, sizeof(res->group), "%s%s%s", case_name,
		 *params ? "/" : "", params);
	res->impl = impl;
	res->ns_per_op = ns_per_op;
	res->items_per_second = ns_per_op > 0 ? 1e9 / ns_per_op : 0;
	res->iterations = iterations;
	res->threads = threads;
}

double
bench_now_ns(void)
{
	return now_ns();
}

const struct bench_result *
bench_find(const char *group, const char *impl)
{
	for (unsigned i = 0; i < n_results; i++)
		if (strcmp(results[i].group, group) == 0 &&
		    strcmp(results[i].impl, impl) == 0)
			return &results[i];
	return NULL;
}

unsigned
bench_n_results(void)
{
	return n_results;
}

const struct bench_result *
bench_result_at(unsigned i)
{
	return i < n_results ? &results[i] : NULL;
}

int
bench_write_json(const char *path)
{
	FILE *f = fopen(path, "w");
	time_t t = time(NULL);
	char date[64];

	if (f == NULL)
		return -1;
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	fprintf(f, "{\n  \"context\": {\"date\": \"%s\", \"executable\": "
		"\"qpd-bench\", \"seconds_per_case\": %.3f, \"rounds\": %d},\n"
		"  \"benchmarks\": [\n", date, bench_opt.seconds, ROUNDS);
	for (unsigned i = 0; i < n_results; i++) {
		const struct bench_result *r = &results[i];

		fprintf(f, "    {\"name\": \"%s\", \"iterations\": %llu, "
			"\"real_time\": %.4f, \"cpu_time\": %.4f, "
			"\"time_unit\": \"ns\", \"items_per_second\": %.1f, "
			"\"threads\": %u}%s\n", r->name,
			(unsigned long long)r->iterations, r->ns_per_op,
			r->ns_per_op, r->items_per_second, r->threads,
			i + 1 < n_results ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	return fclose(f) == 0 ? 0 : -1;
}
