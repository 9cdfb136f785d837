/*
 * No lost update: T vCPU threads add to their own slots (inline adds and
 * dynamic-list inline ops) while another thread initialises 1000 more
 * vCPUs, creates and frees other scoreboards, and appends to a list the
 * vCPUs are executing.  After every round the sum must be exact.
 *
 * usage: stress-scoreboard --threads T --rounds R [--adds N]
 * Prints one SUMMARY line; exits 1 on any mismatch.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qpd.h>

static struct qpd *q;
static qpd_u64 counter;
static struct qpd_dyn *shared; /* grows while executed */
static struct qpd_dyn *own;    /* one inline ADD of 2 */
static unsigned n_threads = 8, n_rounds = 20;
static uint64_t n_adds = 200000;
static unsigned grower_done;
static uint64_t n_shared_calls, n_bad;

static void
shared_cb(unsigned vcpu, void *udata)
{
	(void)vcpu;
	if (udata != &n_shared_calls)
		__atomic_fetch_add(&n_bad, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&n_shared_calls, 1, __ATOMIC_RELAXED);
}

static void *
adder(void *arg)
{
	unsigned vcpu = (unsigned)(uintptr_t)arg;

	if (qpd_vcpu_init(q, vcpu) != 0) {
		__atomic_fetch_add(&n_bad, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	qpd_vcpu_enter(q, vcpu);
	for (uint64_t i = 0; i < n_adds; i++) {
		if (i & 1)
			qpd_inline_add_u64(counter, vcpu, 1);
		else
			qpd_dyn_exec(own, vcpu); /* adds 2 */
		if ((i & 255) == 0) {
			qpd_dyn_exec(shared, vcpu);
			qpd_vcpu_quiescent(q, vcpu);
		}
	}
	qpd_vcpu_leave(q, vcpu);
	return NULL;
}

/* Grows the registry and churns other scoreboards while adders run. */
static void *
grower(void *arg)
{
	unsigned first = (unsigned)(uintptr_t)arg;

	for (unsigned i = 0; i < 1000; i++) {
		struct qpd_scoreboard *sb = qpd_scoreboard_new(q, 8 + i % 300);
		unsigned char *p;

		if (qpd_vcpu_init(q, first + i) != 0 || sb == NULL) {
			__atomic_fetch_add(&n_bad, 1, __ATOMIC_RELAXED);
			continue;
		}
		/* A recycled column must come back zeroed. */
		p = qpd_scoreboard_find(sb, first + i);
		for (unsigned b = 0; b < 8 + i % 300; b++)
			if (p[b] != 0)
				__atomic_fetch_add(&n_bad, 1, __ATOMIC_RELAXED);
		memset(p, 0xff, 8 + i % 300);
		if ((i & 7) == 0)
			qpd_dyn_add_cb(shared, shared_cb, &n_shared_calls);
		qpd_scoreboard_free(q, sb);
	}
	__atomic_store_n(&grower_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static bool
round_once(unsigned round)
{
	pthread_t t[256], g;
	struct qpd_scoreboard *sb;
	uint64_t want = 3 * (n_adds / 2) + 2 * (n_adds % 2), got;
	unsigned base;

	q = qpd_new(NULL);
	sb = qpd_scoreboard_new(q, 8);
	counter = (qpd_u64){ sb, 0 };
	own = qpd_dyn_new(q);
	shared = qpd_dyn_new(q);
	if (q == NULL || sb == NULL || own == NULL || shared == NULL ||
	    qpd_dyn_add_inline(own, QPD_OP_ADD_U64, counter, 2) != 0)
		return false;
	/* Each round uses other indices, so growth crosses chunks. */
	base = (round * 37) % 3000;
	grower_done = 0;
	pthread_create(&g, NULL, grower, (void *)(uintptr_t)(base + 4096));
	for (unsigned i = 0; i < n_threads; i++)
		pthread_create(&t[i], NULL, adder, (void *)(uintptr_t)(base + i));
	for (unsigned i = 0; i < n_threads; i++)
		pthread_join(t[i], NULL);
	pthread_join(g, NULL);
	got = qpd_u64_sum(counter);
	qpd_free(q);
	if (got != want * n_threads) {
		fprintf(stderr, "round %u: sum %" PRIu64 ", expected %" PRIu64
			"\n", round, got, want * n_threads);
		return false;
	}
	return true;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "adds", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned failed = 0;
	int c;

	while ((c = getopt_long(argc, argv, "t:r:n:", opts, NULL)) != -1) {
		switch (c) {
		case 't': n_threads = (unsigned)atoi(optarg); break;
		case 'r': n_rounds = (unsigned)atoi(optarg); break;
		case 'n': n_adds = strtoull(optarg, NULL, 0); break;
		default:
			fprintf(stderr, "usage: %s --threads T --rounds R "
				"[--adds N]\n", argv[0]);
			return 2;
		}
	}
	if (n_threads == 0 || n_threads > 256)
		return 2;
	for (unsigned r = 0; r < n_rounds; r++)
		failed += !round_once(r);
	printf("SUMMARY threads=%u rounds=%u adds_per_thread=%" PRIu64
	       " lost_rounds=%u shared_calls=%" PRIu64 " violations=%" PRIu64
	       "\n", n_threads, n_rounds, n_adds, failed, n_shared_calls,
	       n_bad + failed);
	return failed || n_bad ? 1 : 0;
}
