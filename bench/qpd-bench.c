/*
 * qpd-bench: callback-dispatch overhead, qpd against the bare-call limit.
 *
 * Each case runs its implementations interleaved in one process (A B A B
 * ...), each round timing a batch of operations, and reports the median
 * ns/op per implementation and the ratio qpd/limit.  `limit` is the same
 * indirect calls made from a plain array with no dispatcher: the floor.
 *
 * Options: --filter SUBSTR, --quick, --seconds S (time per case),
 * --json FILE (google-benchmark shape).  One progress line per case goes to
 * stderr; the table and one SUMMARY line to stdout.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <qpd.h>

#define MAX_ROUNDS 64
#define MAX_RESULTS 64

struct result {
	char name[96];
	const char *impl;
	double ns_per_op;
	uint64_t iterations;
};

static struct result results[MAX_RESULTS];
static unsigned n_results;
static double seconds_per_case = 1.0;
static const char *filter;

static uint64_t sink;

static __attribute__((noinline)) void
cb_syscall(qpd_plugin_id id, unsigned vcpu, int64_t num,
	   const uint64_t args[8], void *udata)
{
	(void)id, (void)vcpu, (void)args;
	*(uint64_t *)udata += (uint64_t)num;
}

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

static double
median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One implementation of a case: runs `iters` operations. */
typedef void (*run_fn)(void *ctx, uint64_t iters);

struct impl {
	const char *name;
	run_fn run;
	void *ctx;
};

/* Times impls interleaved; records one result per impl. */
static void
measure(const char *case_name, struct impl *impls, unsigned n_impls)
{
	double samples[4][MAX_ROUNDS];
	uint64_t iters = 1 << 16;
	unsigned rounds = 15, r, i;
	double t0, per_round_ns = seconds_per_case * 1e9 / rounds / n_impls;

	/* Size a batch so a round takes about per_round_ns. */
	for (;;) {
		t0 = now_ns();
		impls[0].run(impls[0].ctx, iters);
		if (now_ns() - t0 >= per_round_ns / 4 || iters >= (1ull << 34))
			break;
		iters *= 2;
	}
	for (r = 0; r < rounds; r++) {
		for (i = 0; i < n_impls; i++) {
			t0 = now_ns();
			impls[i].run(impls[i].ctx, iters);
			samples[i][r] = (now_ns() - t0) / (double)iters;
		}
	}
	for (i = 0; i < n_impls && n_results < MAX_RESULTS; i++) {
		struct result *res = &results[n_results++];

		snprintf(res->name, sizeof(res->name), "%s/impl:%s", case_name,
			 impls[i].name);
		res->impl = impls[i].name;
		res->ns_per_op = median(samples[i], rounds);
		res->iterations = iters * rounds;
	}
	fprintf(stderr, "  %-40s done (%" PRIu64 " ops/round)\n", case_name,
		iters);
}

struct limit_ctx {
	unsigned n;
	qpd_syscall_cb_t fn[16];
	void *udata[16];
	uint64_t args[8];
};

static void
run_limit(void *p, uint64_t iters)
{
	struct limit_ctx *c = p;

	for (uint64_t i = 0; i < iters; i++) {
		unsigned n = *(volatile unsigned *)&c->n;

		for (unsigned k = 0; k < n; k++)
			c->fn[k](k + 1, 0, (int64_t)i, c->args, c->udata[k]);
	}
}

struct qpd_ctx {
	struct qpd *q;
	uint64_t args[8];
};

static void
run_qpd(void *p, uint64_t iters)
{
	struct qpd_ctx *c = p;

	for (uint64_t i = 0; i < iters; i++)
		qpd_syscall(c->q, 0, (int64_t)i, c->args);
}

static void
case_dispatch_syscall(unsigned plugins)
{
	struct qpd_config cfg = { .no_reclaimer_thread = true };
	struct qpd_ctx qc = { .q = qpd_new(&cfg) };
	struct limit_ctx lc = { .n = plugins };
	char name[64];
	struct impl impls[2] = {
		{ "qpd", run_qpd, &qc },
		{ "limit", run_limit, &lc },
	};

	snprintf(name, sizeof(name), "dispatch_syscall/plugins:%u", plugins);
	if (filter != NULL && strstr(name, filter) == NULL) {
		qpd_free(qc.q);
		return;
	}
	qpd_vcpu_init(qc.q, 0);
	for (unsigned k = 0; k < plugins; k++) {
		qpd_plugin_id id;

		qpd_plugin_add(qc.q, &id);
		qpd_register_cb(qc.q, id, QPD_EV_VCPU_SYSCALL, cb_syscall, &sink);
		lc.fn[k] = cb_syscall;
		lc.udata[k] = &sink;
	}
	qpd_vcpu_enter(qc.q, 0);
	measure(name, impls, 2);
	qpd_vcpu_leave(qc.q, 0);
	qpd_free(qc.q);
}

static const struct result *
find(const char *case_prefix, const char *impl)
{
	for (unsigned i = 0; i < n_results; i++) {
		if (strcmp(results[i].impl, impl) == 0 &&
		    strncmp(results[i].name, case_prefix,
			    strlen(case_prefix)) == 0 &&
		    results[i].name[strlen(case_prefix)] == '/')
			return &results[i];
	}
	return NULL;
}

static void
write_json(const char *path)
{
	FILE *f = fopen(path, "w");
	time_t t = time(NULL);
	char date[64];

	if (f == NULL) {
		perror(path);
		exit(1);
	}
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", gmtime(&t));
	fprintf(f, "{\n  \"context\": {\"date\": \"%s\", \"executable\": "
		"\"qpd-bench\", \"seconds_per_case\": %.3f},\n"
		"  \"benchmarks\": [\n", date, seconds_per_case);
	for (unsigned i = 0; i < n_results; i++) {
		const struct result *r = &results[i];

		fprintf(f, "    {\"name\": \"%s\", \"iterations\": %" PRIu64
			", \"real_time\": %.4f, \"cpu_time\": %.4f, "
			"\"time_unit\": \"ns\", \"items_per_second\": %.1f}%s\n",
			r->name, r->iterations, r->ns_per_op, r->ns_per_op,
			1e9 / r->ns_per_op, i + 1 < n_results ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	fclose(f);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "filter", required_argument, NULL, 'f' },
		{ "json", required_argument, NULL, 'j' },
		{ "seconds", required_argument, NULL, 's' },
		{ "quick", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	static const unsigned plugin_counts[] = { 0, 1, 4, 16 };
	const char *json = NULL;
	double worst = 0;
	int c;

	while ((c = getopt_long(argc, argv, "f:j:s:q", opts, NULL)) != -1) {
		switch (c) {
		case 'f': filter = optarg; break;
		case 'j': json = optarg; break;
		case 's': seconds_per_case = atof(optarg); break;
		case 'q': seconds_per_case = 0.1; break;
		default:
			fprintf(stderr, "usage: %s [--filter S] [--json FILE] "
				"[--seconds S] [--quick]\n", argv[0]);
			return 2;
		}
	}
	for (unsigned i = 0; i < 4; i++)
		case_dispatch_syscall(plugin_counts[i]);

	printf("%-34s %12s %12s %10s\n", "case (ns/op, median)", "qpd",
	       "limit", "qpd/limit");
	for (unsigned i = 0; i < n_results; i++) {
		char prefix[96];
		const struct result *a, *b;

		if (strcmp(results[i].impl, "qpd") != 0)
			continue;
		snprintf(prefix, sizeof(prefix), "%.*s",
			 (int)(strstr(results[i].name, "/impl:") -
			       results[i].name), results[i].name);
		a = &results[i];
		b = find(prefix, "limit");
		printf("%-34s %12.2f %12.2f %10.2f\n", prefix, a->ns_per_op,
		       b ? b->ns_per_op : 0.0,
		       b && b->ns_per_op > 0 ? a->ns_per_op / b->ns_per_op : 0.0);
		if (b != NULL && b->ns_per_op > 0 &&
		    a->ns_per_op / b->ns_per_op > worst &&
		    strstr(prefix, "plugins:0") == NULL)
			worst = a->ns_per_op / b->ns_per_op;
	}
	if (json != NULL)
		write_json(json);
	printf("SUMMARY cases=%u worst_qpd_over_limit=%.2f\n", n_results / 2,
	       worst);
	return 0;
}
