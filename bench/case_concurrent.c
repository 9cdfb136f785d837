/*
 * Cases where other threads change the dispatcher while vCPUs run.
 *
 * dispatch_churn: VCPU_SYSCALL dispatch with 4 plugins on vCPU 0 while
 *   another thread registers and unregisters a fifth plugin's VCPU_TB_TRANS
 *   callback 10 000 times a second (impl+churn), against the same loop
 *   without the churn, interleaved.  Every registration publishes a new
 *   list and flips the vCPU's TB_TRANS mask bit, yet the syscall work stays
 *   the same.  Both pass a quiescent point every 1024 dispatches.
 * vcpu_growth: 2 vCPU threads do inline adds (timestamping every 256)
 *   while the main thread initialises vCPUs 2 .. 1023; reports the longest
 *   and the 99th-percentile gap between timestamps of the running threads.
 * uninstall_latency: time from plugin uninstall to its `done` while a vCPU
 *   thread (vCPU 1, its own) dispatches the plugin's callback and passes a
 *   safe point every 1024 dispatches (median and p99 of 200).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends.h"
#include "callbacks.h"
#include "cases.h"
#include "harness.h"

#define CHURN_PER_SECOND 10000
#define GROW_TO 1024
#define GROW_ADDERS 2
#define GAP_SAMPLES 65536
#define UNINSTALLS 200

static uint64_t sink;

#define cb_syscall bench_cb_syscall
#define cb_tb bench_cb_tb

static void
sleep_until(struct timespec *t, long step_ns)
{
	t->tv_nsec += step_ns;
	while (t->tv_nsec >= 1000000000L) {
		t->tv_nsec -= 1000000000L;
		t->tv_sec++;
	}
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL);
}

/* ---- dispatch under churn ---------------------------------------- */

struct churn_ctx {
	void *inst;
	qpd_plugin_id extra;
	bool churn;
	unsigned stop;
	uint64_t n_ops;
	uint64_t args[8];
};

#define CHURN_RUNNERS(P)                                                     \
	static void *P##_churner(void *p)                                     \
	{                                                                     \
		struct churn_ctx *c = p;                                      \
		struct timespec t;                                            \
		bool on = false;                                              \
		clock_gettime(CLOCK_MONOTONIC, &t);                           \
		while (!ck_pr_load_uint(&c->stop)) {                          \
			P##_register_cb(c->inst, c->extra,                    \
					QPD_EV_VCPU_TB_TRANS,                 \
					on ? NULL : (void *)cb_tb, &sink);    \
			on = !on;                                             \
			c->n_ops++;                                           \
			sleep_until(&t, 1000000000L / CHURN_PER_SECOND);      \
		}                                                             \
		return NULL;                                                  \
	}                                                                     \
	static void run_##P##_churn(void *p, uint64_t iters)                  \
	{                                                                     \
		struct churn_ctx *c = p;                                      \
		pthread_t t;                                                  \
		if (c->churn) {                                               \
			ck_pr_store_uint(&c->stop, 0);                        \
			pthread_create(&t, NULL, P##_churner, c);             \
		}                                                             \
		for (uint64_t i = 0; i < iters; i++) {                        \
			P##_syscall(c->inst, 0, (int64_t)i, c->args);         \
			if ((i & 1023) == 1023)                               \
				P##_bench_safepoint(c->inst, 0);              \
		}                                                             \
		if (c->churn) {                                               \
			ck_pr_store_uint(&c->stop, 1);                        \
			pthread_join(t, NULL);                                \
		}                                                             \
	}                                                                     \
	static bool P##_churn_setup(struct churn_ctx *c)                      \
	{                                                                     \
		c->inst = P##_bench_setup(4, QPD_EV_VCPU_SYSCALL, cb_syscall, \
					  &sink);                             \
		if (c->inst == NULL ||                                        \
		    P##_plugin_add(c->inst, &c->extra) != 0)                  \
			return false;                                         \
		P##_vcpu_enter(c->inst, 0);                                   \
		return true;                                                  \
	}                                                                     \
	static void P##_churn_teardown(struct churn_ctx *c)                   \
	{                                                                     \
		if (c->inst == NULL)                                          \
			return;                                               \
		P##_vcpu_leave(c->inst, 0);                                   \
		P##_bench_teardown(c->inst);                                  \
	}

FOR_EACH_BACKEND(CHURN_RUNNERS)

/* The floor: the same calls and wake-ups with no dispatcher to change. */
struct limit_churn {
	bool churn;
	unsigned stop;
	uint64_t args[8];
};

static void *
idle_waker(void *p)
{
	struct limit_churn *c = p;
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	while (!ck_pr_load_uint(&c->stop))
		sleep_until(&t, 1000000000L / CHURN_PER_SECOND);
	return NULL;
}

static void
run_limit_churn(void *p, uint64_t iters)
{
	struct limit_churn *c = p;
	pthread_t t;

	if (c->churn) {
		ck_pr_store_uint(&c->stop, 0);
		pthread_create(&t, NULL, idle_waker, c);
	}
	for (uint64_t i = 0; i < iters; i++)
		for (unsigned k = 0; k < 4; k++)
			cb_syscall(k + 1, 0, (int64_t)i, c->args, &sink);
	if (c->churn) {
		ck_pr_store_uint(&c->stop, 1);
		pthread_join(t, NULL);
	}
}

/*
 * One interleaved measurement: each backend quiet and churned, and the
 * limit quiet and with a thread waking as often as the churner (the cost
 * of the wake-ups themselves on this machine).
 */
static void
churn_case(void)
{
	static const char *const names[2][3] = {
		{ "qpd", "legacy", "limit" },
		{ "qpd+churn", "legacy+churn", "limit+wakeups" },
	};
	struct churn_ctx c[2][BACKEND_COUNT];
	struct limit_churn lc[2] = { { .churn = false }, { .churn = true } };
	struct bench_impl impls[2 * BACKEND_COUNT + 2];
	unsigned n = 0, b = 0;

	if (!bench_selected_case("dispatch_churn", "plugins:4"))
		return;
	memset(c, 0, sizeof(c));
	/* One instance per backend serves its quiet and churned variants. */
#define SETUP(P)                                                            \
	if (P##_churn_setup(&c[0][b])) {                                     \
		c[1][b] = c[0][b];                                           \
		c[1][b].churn = true;                                        \
		impls[n++] = (struct bench_impl){ names[0][b],               \
			run_##P##_churn, &c[0][b] };                         \
		impls[n++] = (struct bench_impl){ names[1][b],               \
			run_##P##_churn, &c[1][b] };                         \
	}                                                                    \
	b++;
	FOR_EACH_BACKEND(SETUP)
#undef SETUP
	for (unsigned w = 0; w < 2; w++)
		impls[n++] = (struct bench_impl){ names[w][2], run_limit_churn,
						  &lc[w] };
	bench_measure("dispatch_churn", "plugins:4", impls, n, 1);
	b = 0;
#define TEARDOWN(P) P##_churn_teardown(&c[0][b++]);
	FOR_EACH_BACKEND(TEARDOWN)
#undef TEARDOWN
}

/* ---- vCPU growth ---------------------------------------------------- */

struct grow_ctx {
	void *inst;
	void *score;
	unsigned vcpu;
	unsigned *stop;
	double gaps[GAP_SAMPLES];
	unsigned n_gaps;
	double max_gap;
};

/* qpd has no code path that stops running vCPUs: nothing to report. */
static void
qpd_bench_report_stops(struct qpd *q)
{
	(void)q;
}

#ifdef QPD_BENCH_LEGACY
/* The model counts its stop-the-world sections; report them beside. */
static void
legacy_bench_report_stops(struct legacy *l)
{
	struct legacy_stats st;

	if (legacy_stats_get(l, &st) != 0)
		return;
	bench_record("vcpu_growth", "stat:stop_the_world_max", "legacy",
		     (double)st.stall_max_ns, st.n_stop_the_world, 1);
	fprintf(stderr, "  legacy: %llu stop-the-world sections, longest "
		"%.1f us, total %.1f us\n",
		(unsigned long long)st.n_stop_the_world,
		st.stall_max_ns / 1e3, st.stall_total_ns / 1e3);
}
#endif

#define GROW_RUNNERS(P)                                                      \
	static void *P##_adder(void *p)                                       \
	{                                                                     \
		struct grow_ctx *g = p;                                       \
		P##_u64 e = { g->score, 0 };                                  \
		double last;                                                  \
		P##_vcpu_init(g->inst, g->vcpu);                              \
		P##_vcpu_enter(g->inst, g->vcpu);                             \
		last = bench_now_ns();                                        \
		while (!ck_pr_load_uint(g->stop)) {                           \
			for (int i = 0; i < 256; i++)                         \
				P##_inline_add_u64(e, g->vcpu, 1);            \
			P##_bench_safepoint(g->inst, g->vcpu);                \
			double now = bench_now_ns(), gap = now - last;        \
			last = now;                                           \
			if (gap > g->max_gap)                                 \
				g->max_gap = gap;                             \
			g->gaps[g->n_gaps++ % GAP_SAMPLES] = gap;             \
		}                                                             \
		P##_vcpu_leave(g->inst, g->vcpu);                             \
		return NULL;                                                  \
	}                                                                     \
	static void P##_grow(struct grow_ctx *g)                              \
	{                                                                     \
		pthread_t t[GROW_ADDERS];                                     \
		unsigned stop = 0;                                            \
		void *inst = P##_bench_setup(0, QPD_EV_COUNT, NULL, NULL);    \
		void *score = inst ? P##_scoreboard_new(inst, 8) : NULL;      \
		struct timespec pace;                                         \
		if (score == NULL)                                            \
			return;                                               \
		for (unsigned i = 0; i < GROW_ADDERS; i++) {                  \
			g[i].inst = inst;                                     \
			g[i].score = score;                                   \
			g[i].vcpu = i + 1;                                    \
			g[i].stop = &stop;                                    \
			pthread_create(&t[i], NULL, P##_adder, &g[i]);        \
		}                                                             \
		clock_gettime(CLOCK_MONOTONIC, &pace);                        \
		sleep_until(&pace, 20000000L);                                \
		for (unsigned v = GROW_ADDERS + 1; v < GROW_TO; v++) {        \
			P##_vcpu_init(inst, v);                               \
			sleep_until(&pace, 100000L);                          \
		}                                                             \
		ck_pr_store_uint(&stop, 1);                                   \
		for (unsigned i = 0; i < GROW_ADDERS; i++)                    \
			pthread_join(t[i], NULL);                             \
		P##_bench_report_stops(inst);                                 \
		P##_bench_teardown(inst);                                     \
	}

FOR_EACH_BACKEND(GROW_RUNNERS)

static void
record_gaps(const char *impl, struct grow_ctx *g)
{
	static double all[GROW_ADDERS * GAP_SAMPLES];
	unsigned n = 0;
	double max = 0;

	for (unsigned i = 0; i < GROW_ADDERS; i++) {
		unsigned k = g[i].n_gaps < GAP_SAMPLES ? g[i].n_gaps
							: GAP_SAMPLES;

		memcpy(&all[n], g[i].gaps, k * sizeof(double));
		n += k;
		if (g[i].max_gap > max)
			max = g[i].max_gap;
	}
	bench_record("vcpu_growth", "stat:max_stall", impl, max, n, GROW_ADDERS);
	bench_record("vcpu_growth", "stat:p99_stall", impl,
		     bench_percentile(all, n, 99), n, GROW_ADDERS);
}

static void
growth_case(void)
{
	static struct grow_ctx g[GROW_ADDERS];

	if (!bench_selected_case("vcpu_growth", "stat:max_stall"))
		return;
#define RUN(P)                                                              \
	memset(g, 0, sizeof(g));                                             \
	P##_grow(g);                                                         \
	record_gaps(#P, g);
	FOR_EACH_BACKEND(RUN)
#undef RUN
	fprintf(stderr, "  %-48s grew to %u vCPUs\n", "vcpu_growth", GROW_TO);
}

/* ---- uninstall latency ---------------------------------------------- */

struct unin_ctx {
	void *inst;
	unsigned stop;
	unsigned ready;
	pthread_mutex_t lock;   /* the waiter sleeps on `done`, woken by it */
	pthread_cond_t done;
	double t_done;          /* 0 until the hook ran */
	uint64_t args[8];
};

static void
on_done(qpd_plugin_id id, void *arg)
{
	struct unin_ctx *u = arg;
	double t = bench_now_ns();

	(void)id;
	pthread_mutex_lock(&u->lock);
	u->t_done = t;
	pthread_cond_signal(&u->done);
	pthread_mutex_unlock(&u->lock);
}

/* Blocks until on_done ran; returns its time stamp and re-arms. */
static double
wait_done(struct unin_ctx *u)
{
	double t;

	pthread_mutex_lock(&u->lock);
	while (u->t_done == 0)
		pthread_cond_wait(&u->done, &u->lock);
	t = u->t_done;
	u->t_done = 0;
	pthread_mutex_unlock(&u->lock);
	return t;
}

#define UNINSTALL_RUNNERS(P)                                                 \
	static void *P##_unin_vcpu(void *p)                                   \
	{                                                                     \
		struct unin_ctx *u = p;                                       \
		P##_vcpu_init(u->inst, 1);                                    \
		ck_pr_store_uint(&u->ready, 1);                               \
		P##_vcpu_enter(u->inst, 1);                                   \
		for (uint64_t i = 0; !ck_pr_load_uint(&u->stop); i++) {       \
			P##_syscall(u->inst, 1, (int64_t)i, u->args);         \
			if ((i & 1023) == 1023)                               \
				P##_bench_safepoint(u->inst, 1);              \
		}                                                             \
		P##_vcpu_leave(u->inst, 1);                                   \
		return NULL;                                                  \
	}                                                                     \
	static void P##_uninstall_latency(double *lat, unsigned n)            \
	{                                                                     \
		struct unin_ctx u = { .lock = PTHREAD_MUTEX_INITIALIZER,      \
				      .done = PTHREAD_COND_INITIALIZER };     \
		struct timespec pause = { 0, 200000 };                        \
		pthread_t t;                                                  \
		u.inst = P##_bench_setup(1, QPD_EV_VCPU_SYSCALL, cb_syscall,  \
					 &sink);                              \
		if (u.inst == NULL)                                           \
			return;                                               \
		pthread_create(&t, NULL, P##_unin_vcpu, &u);                  \
		while (!ck_pr_load_uint(&u.ready))                            \
			P##_bench_idle_wait(u.inst);                          \
		for (unsigned k = 0; k < n; k++) {                            \
			qpd_plugin_id id;                                     \
			double t0;                                            \
			P##_plugin_add(u.inst, &id);                          \
			P##_register_cb(u.inst, id, QPD_EV_VCPU_SYSCALL,      \
					(void *)cb_syscall, &sink);           \
			nanosleep(&pause, NULL);                              \
			t0 = bench_now_ns();                                  \
			P##_plugin_uninstall(u.inst, id, on_done, &u);        \
			lat[k] = wait_done(&u) - t0;                          \
		}                                                             \
		ck_pr_store_uint(&u.stop, 1);                                 \
		pthread_join(t, NULL);                                        \
		P##_bench_teardown(u.inst);                                   \
	}

FOR_EACH_BACKEND(UNINSTALL_RUNNERS)

static void
uninstall_case(void)
{
	static double lat[UNINSTALLS];

	if (!bench_selected_case("uninstall_latency", "stat:median"))
		return;
#define RUN(P)                                                              \
	memset(lat, 0, sizeof(lat));                                         \
	P##_uninstall_latency(lat, UNINSTALLS);                              \
	bench_record("uninstall_latency", "stat:p99", #P,                    \
		     bench_percentile(lat, UNINSTALLS, 99), UNINSTALLS, 1);  \
	bench_record("uninstall_latency", "stat:median", #P,                 \
		     bench_median(lat, UNINSTALLS), UNINSTALLS, 1);
	FOR_EACH_BACKEND(RUN)
#undef RUN
	fprintf(stderr, "  %-48s %u uninstalls\n", "uninstall_latency",
		UNINSTALLS);
}

void
case_concurrent(void)
{
	churn_case();
	growth_case();
	uninstall_case();
}

static double
value(const char *group, const char *impl)
{
	const struct bench_result *r = bench_find(group, impl);

	return r ? r->ns_per_op : 0;
}

double
report_concurrent(void)
{
	static const char *const impls[] = { "qpd", "legacy", "limit" };

	static const char *const churned[] = { "qpd+churn", "legacy+churn",
					       "limit+wakeups" };
	double qpd_ratio = 0;

	printf("\n%-10s %16s %16s %12s %14s %14s %14s %14s\n", "impl",
	       "quiet ns/op", "churn ns/op", "churn/quiet", "max stall us",
	       "p99 stall us", "uninst med us", "uninst p99 us");
	for (unsigned i = 0; i < 3; i++) {
		double a = value("dispatch_churn/plugins:4", impls[i]);
		double b = value("dispatch_churn/plugins:4", churned[i]);
		double ratio = a > 0 && b > 0 ? a / b : 0;

		if (a == 0 && value("vcpu_growth/stat:max_stall", impls[i]) == 0)
			continue;
		if (i == 0)
			qpd_ratio = ratio;
		printf("%-10s %16.3f %16.3f %12.2f %14.1f %14.1f %14.1f %14.1f\n",
		       impls[i], a, b, ratio,
		       value("vcpu_growth/stat:max_stall", impls[i]) / 1e3,
		       value("vcpu_growth/stat:p99_stall", impls[i]) / 1e3,
		       value("uninstall_latency/stat:median", impls[i]) / 1e3,
		       value("uninstall_latency/stat:p99", impls[i]) / 1e3);
	}
	printf("(churn/quiet: throughput under %d registrations/s over "
	       "throughput without; for limit, %d bare wake-ups/s)\n",
	       CHURN_PER_SECOND, CHURN_PER_SECOND);
	return qpd_ratio;
}
