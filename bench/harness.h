/*
 * The benchmark harness: interleaved timing, medians, results, output.
 *
 * A case offers several implementations of the same operation; measure()
 * sizes one batch, then runs the implementations round-robin (A B C A B C
 * ...) and keeps each one's median ns/op, so that drift of a shared, noisy
 * machine hits all of them alike.
 */
#ifndef QPD_BENCH_HARNESS_H
#define QPD_BENCH_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

/* Runs `iters` operations of one implementation. */
typedef void (*bench_run_fn)(void *ctx, uint64_t iters);

struct bench_impl {
	const char *name;
	bench_run_fn run;
	void *ctx;
};

struct bench_result {
	char name[128];    /* case/impl:X/param:Y */
	char group[96];    /* case/param:Y, for the table */
	const char *impl;
	double ns_per_op;  /* median over rounds, per operation */
	double items_per_second;
	uint64_t iterations;
	unsigned threads;
};

struct bench_options {
	double seconds;    /* per case, all implementations together */
	const char *filter; /* extended regex over "case/params" */
	unsigned max_threads; /* 0: no limit */
};

extern struct bench_options bench_opt;

/* True when a case named `group` should run under --filter. */
bool bench_selected(const char *group);

/* The same for a case name and its parameters ("plugins:4"). */
bool bench_selected_case(const char *case_name, const char *params);

/*
 * Measures impls interleaved and records one result each.  `threads`
 * (>= 1) threads run each batch together; ns/op is per operation of all
 * threads, so items_per_second is the aggregate rate.
 */
void bench_measure(const char *case_name, const char *params,
		   struct bench_impl *impls, unsigned n_impls, unsigned threads);

/* Records a result a case measured itself (value in ns). */
void bench_record(const char *case_name, const char *params, const char *impl,
		  double ns_per_op, uint64_t iterations, unsigned threads);

/* Median and p-th percentile (0..100) of v[0..n), which gets sorted. */
double bench_median(double *v, unsigned n);
double bench_percentile(double *v, unsigned n, double p);

/* CLOCK_MONOTONIC in ns. */
double bench_now_ns(void);

/* The recorded result of impl in group, or NULL. */
const struct bench_result *bench_find(const char *group, const char *impl);

unsigned bench_n_results(void);
const struct bench_result *bench_result_at(unsigned i);

/* Writes results in google-benchmark's JSON shape; 0 or -1. */
int bench_write_json(const char *path);

#endif
