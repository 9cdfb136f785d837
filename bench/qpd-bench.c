/*
 * qpd-bench: callback-dispatch overhead of qpd against the bare-call limit
 * (and, per case, other designs), measured interleaved in one process.
 *
 * Options: --filter REGEX (over "case/params"), --quick, --seconds S (per case), --threads N
 * (largest thread count to run), --json FILE (google-benchmark shape).
 * Progress goes to stderr; the table and one SUMMARY line to stdout.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cases.h"
#include "harness.h"

/* One row per group: every implementation's ns/op, then qpd/limit. */
static double
print_table(void)
{
	double worst = 0;

	printf("%-34s %-10s %12s %14s %10s\n", "case", "impl", "ns/op",
	       "Mops/s", "qpd/limit");
	for (unsigned i = 0; i < bench_n_results(); i++) {
		const struct bench_result *r = bench_result_at(i);
		const struct bench_result *qpd = bench_find(r->group, "qpd");
		const struct bench_result *lim = bench_find(r->group, "limit");
		bool first = i == 0 ||
			     strcmp(bench_result_at(i - 1)->group, r->group);
		char ratio[16] = "";

		if (first && qpd && lim && lim->ns_per_op > 0) {
			double x = qpd->ns_per_op / lim->ns_per_op;

			snprintf(ratio, sizeof(ratio), "%.2f", x);
			if (x > worst)
				worst = x;
		}
		printf("%-34s %-10s %12.3f %14.1f %10s\n",
		       first ? r->group : "", r->impl, r->ns_per_op,
		       r->items_per_second / 1e6, ratio);
	}
	return worst;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "filter", required_argument, NULL, 'f' },
		{ "json", required_argument, NULL, 'j' },
		{ "seconds", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *json = NULL;
	double worst, scaling, churn, build;
	int c;

	while ((c = getopt_long(argc, argv, "f:j:s:t:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'f': bench_opt.filter = optarg; break;
		case 'j': json = optarg; break;
		case 's': bench_opt.seconds = atof(optarg); break;
		case 't': bench_opt.max_threads = (unsigned)atoi(optarg); break;
		case 'q': bench_opt.seconds = 0.05; break;
		default:
			fprintf(stderr, "usage: %s [--filter REGEX] [--json FILE] "
				"[--seconds S] [--threads N] [--quick]\n",
				argv[0]);
			return c == 'h' ? 0 : 2;
		}
	}
	if (bench_opt.seconds <= 0) {
		fprintf(stderr, "--seconds must be positive\n");
		return 2;
	}
	fprintf(stderr, "qpd-bench: %.2f s per case\n", bench_opt.seconds);
	case_dispatch();
	case_dyn();
	case_dyn_build();
	case_inline_scaling();
	case_concurrent();

	worst = print_table();
	scaling = report_inline_scaling();
	churn = report_concurrent();
	build = report_dyn_build();
	if (json != NULL && bench_write_json(json) != 0) {
		perror(json);
		return 1;
	}
	printf("SUMMARY results=%u worst_qpd_over_limit=%.2f "
	       "inline_2t_scaling_vs_limit=%.2f churn_over_nochurn=%.2f "
	       "dyn_build_2t_over_1t=%.2f\n",
	       bench_n_results(), worst, scaling, churn, build);
	return 0;
}
