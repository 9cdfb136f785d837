/*
 * qpd-workload: a whole-process workload for bench/compare (hyperfine).
 *
 *   qpd-workload --impl qpd|legacy --threads T --ops N [--plugins P]
 *                [--churn]
 *
 * T vCPU threads start one after another (so the vCPU count grows while
 * the first ones run, as guest threads do under linux-user); each one
 * initialises its vCPU, builds a dynamic list (an inline add and a
 * callback), then runs N operations: a syscall dispatch to P plugins and
 * one execution of its list, a block translation every 64 operations and a
 * safe point every 256.  With --churn another thread registers and
 * unregisters a callback 10 000 times a second.  The process exits 1 if the
 * inline adds do not sum to T x N.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends.h"
#include "callbacks.h"

#define MAX_THREADS 1024

static uint64_t sink;
static unsigned n_threads = 4, n_plugins = 4;
static long n_ops = 1000000;
static bool churn;
static unsigned stop;

#define cb_syscall bench_cb_syscall
#define cb_tb bench_cb_tb

static __attribute__((noinline)) void
dyn_cb(unsigned vcpu, void *udata)
{
	*(volatile uint64_t *)udata += vcpu;
}

static void
pace(struct timespec *t)
{
	t->tv_nsec += 100000;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_nsec -= 1000000000L;
		t->tv_sec++;
	}
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL);
}

/* Per backend: instance, counter, per-vCPU lists, thread bodies. */
#define WORKLOAD(P)                                                          \
	static struct P *P##_inst;                                            \
	static P##_u64 P##_counter;                                           \
	static struct P##_dyn *P##_lists[MAX_THREADS];                        \
	static unsigned P##_built;                                            \
	static void P##_build(unsigned v)                                     \
	{                                                                     \
		P##_lists[v] = P##_dyn_new(P##_inst);                         \
		if (P##_lists[v] == NULL ||                                   \
		    P##_dyn_add_inline(P##_lists[v], QPD_OP_ADD_U64,          \
				       P##_counter, 1) != 0 ||                \
		    P##_dyn_add_cb(P##_lists[v], dyn_cb, &sink) != 0)         \
			exit(2);                                              \
	}                                                                     \
	static void P##_rebuild_all(void *opaque)                             \
	{                                                                     \
		(void)opaque;                                                 \
		for (unsigned v = 0; v < ck_pr_load_uint(&P##_built); v++)    \
			P##_build(v);                                         \
	}                                                                     \
	static void *P##_vcpu(void *arg)                                      \
	{                                                                     \
		unsigned v = (unsigned)(uintptr_t)arg;                        \
		uint64_t args[8] = { 0 };                                     \
		if (P##_vcpu_init(P##_inst, v) != 0)                          \
			exit(2);                                              \
		P##_vcpu_enter(P##_inst, v);                                  \
		for (long i = 0; i < n_ops; i++) {                            \
			P##_syscall(P##_inst, v, i, args);                    \
			P##_dyn_exec(P##_lists[v], v);                        \
			if ((i & 63) == 0)                                    \
				P##_tb_trans(P##_inst, v, &args);             \
			if ((i & 255) == 255)                                 \
				P##_bench_safepoint(P##_inst, v);             \
		}                                                             \
		P##_vcpu_leave(P##_inst, v);                                  \
		return NULL;                                                  \
	}                                                                     \
	static void *P##_churner(void *arg)                                   \
	{                                                                     \
		qpd_plugin_id id;                                             \
		struct timespec t;                                            \
		bool on = false;                                              \
		(void)arg;                                                    \
		if (P##_plugin_add(P##_inst, &id) != 0)                       \
			exit(2);                                              \
		clock_gettime(CLOCK_MONOTONIC, &t);                           \
		while (!ck_pr_load_uint(&stop)) {                             \
			P##_register_cb(P##_inst, id, QPD_EV_VCPU_TB_TRANS,   \
					on ? NULL : (void *)cb_tb, &sink);    \
			on = !on;                                             \
			pace(&t);                                             \
		}                                                             \
		return NULL;                                                  \
	}                                                                     \
	static int P##_main(void)                                             \
	{                                                                     \
		static pthread_t t[MAX_THREADS];                              \
		pthread_t c;                                                  \
		uint64_t sum;                                                 \
		P##_inst = P##_workload_new(P##_rebuild_all);                 \
		if (P##_inst == NULL)                                         \
			return 2;                                             \
		for (unsigned k = 0; k < n_plugins; k++) {                    \
			qpd_plugin_id id;                                     \
			if (P##_plugin_add(P##_inst, &id) != 0 ||             \
			    P##_register_cb(P##_inst, id, QPD_EV_VCPU_SYSCALL, \
					    (void *)cb_syscall, &sink) != 0)  \
				return 2;                                     \
		}                                                             \
		P##_counter = (P##_u64){ P##_scoreboard_new(P##_inst, 8), 0 }; \
		if (P##_counter.score == NULL)                                \
			return 2;                                             \
		if (churn)                                                    \
			pthread_create(&c, NULL, P##_churner, NULL);          \
		for (unsigned v = 0; v < n_threads; v++) {                    \
			P##_build(v);                                         \
			ck_pr_store_uint(&P##_built, v + 1);                  \
			pthread_create(&t[v], NULL, P##_vcpu,                 \
				       (void *)(uintptr_t)v);                 \
		}                                                             \
		for (unsigned v = 0; v < n_threads; v++)                      \
			pthread_join(t[v], NULL);                             \
		ck_pr_store_uint(&stop, 1);                                   \
		if (churn)                                                    \
			pthread_join(c, NULL);                                \
		sum = P##_u64_sum(P##_counter);                               \
		P##_bench_teardown(P##_inst);                                 \
		if (sum != (uint64_t)n_threads * (uint64_t)n_ops) {           \
			fprintf(stderr, "lost updates: %llu of %llu\n",       \
				(unsigned long long)sum,                      \
				(unsigned long long)n_threads * n_ops);       \
			return 1;                                             \
		}                                                             \
		return 0;                                                     \
	}

FOR_EACH_BACKEND(WORKLOAD)

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "impl", required_argument, NULL, 'i' },
		{ "threads", required_argument, NULL, 't' },
		{ "ops", required_argument, NULL, 'n' },
		{ "plugins", required_argument, NULL, 'p' },
		{ "churn", no_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	const char *impl = "qpd";
	int c;

	while ((c = getopt_long(argc, argv, "i:t:n:p:c", opts, NULL)) != -1) {
		switch (c) {
		case 'i': impl = optarg; break;
		case 't': n_threads = (unsigned)atoi(optarg); break;
		case 'n': n_ops = atol(optarg); break;
		case 'p': n_plugins = (unsigned)atoi(optarg); break;
		case 'c': churn = true; break;
		default:
			fprintf(stderr, "usage: %s --impl qpd|legacy --threads T "
				"--ops N [--plugins P] [--churn]\n", argv[0]);
			return 2;
		}
	}
	if (n_threads == 0 || n_threads > MAX_THREADS || n_ops <= 0) {
		fprintf(stderr, "threads must be 1..%d, ops positive\n",
			MAX_THREADS);
		return 2;
	}
#define DISPATCH_IMPL(P)                                                    \
	if (strcmp(impl, #P) == 0)                                           \
		return P##_main();
	FOR_EACH_BACKEND(DISPATCH_IMPL)
	fprintf(stderr, "unknown --impl %s\n", impl);
	return 2;
}
