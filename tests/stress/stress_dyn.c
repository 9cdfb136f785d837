/*
 * Dynamic lists built, executed and retired by many threads at once, while
 * other threads flush (retire every list) and create and free scoreboards;
 * more threads than cores.
 *
 * Each builder is a vCPU.  In one slice it creates a list, appends
 * callbacks and inline adds, aligned and not (with a growth of the entry
 * array now and then), executes it, retires it and retires it again.  The
 * slice starts before the list is created, so a flush that retires the
 * list meanwhile cannot free it under the builder.  Every list is retired exactly once,
 * by qpd_dyn_retire or by a flush; one in eight is left to the flushes
 * and to qpd_free().  Checked:
 *   - a retire that returns 0 after a flush that began once the list
 *     existed has completed: the list survived a flush;
 *   - a retire that returns -ENOENT when every flush begun before it
 *     returned had completed before the list was created: the list was
 *     lost (or retired by someone else);
 *   - a second retire that does not return -ENOENT: retired twice;
 *   - an execution that does not run exactly what was appended;
 *   - an append naming a scoreboard whose free has returned (and none
 *     created since) that does not fail with -ENOENT;
 *   - counters that are not exact at the end.
 * A list retired twice, or by a flush and a retire both, is freed twice; a
 * list lost from the bookkeeping is never freed; a list freed while a
 * slice can run it is used after free.  Under AddressSanitizer (the
 * sanitizer build runs this test) each of those fails the run too.
 *
 * usage: stress-dyn [--threads T] [--flushers F] [--seconds S]
 * Prints one SUMMARY line; exits 1 on any violation.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <qpd.h>

#define MAX_THREADS 256
#define MAX_FLUSHERS 8
#define MAX_ENTRIES 12

static struct qpd *q;
static unsigned n_threads = 8, n_flushers = 2, seconds = 10;
static unsigned stop;
static qpd_u64 counter;  /* stable scoreboard: inline adds, per vCPU */
static qpd_u64 ucounter; /* the same scoreboard, unaligned, past the element */

/* Flushes begun and completed, per flusher (each runs them in order). */
static struct {
	uint64_t begun, done;
} __attribute__((aligned(64))) fl[MAX_FLUSHERS];

/*
 * Scoreboard churn: sb_live is live while set; sb_seq is odd from the
 * return of sb_freed's free until just before the next scoreboard exists.
 */
static unsigned sb_seq;
static struct qpd_scoreboard *sb_live, *sb_freed;

static uint64_t n_violations, n_lists, n_retired, n_flushed, n_kept;
static uint64_t n_sb_churn, n_enoent_checked, n_grown;

struct builder {
	unsigned vcpu;
	uint64_t calls;         /* callbacks of its lists that ran */
	uint64_t want_calls;
	uint64_t want_adds;     /* inline adds into its counter slot */
	uint64_t want_uadds;    /* and into its unaligned counter */
	uint64_t rng;
} __attribute__((aligned(64)));

static struct builder *builders;

static void
violation(const char *what)
{
	if (__atomic_fetch_add(&n_violations, 1, __ATOMIC_RELAXED) < 5)
		fprintf(stderr, "violation: %s\n", what);
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
count_cb(unsigned vcpu, void *udata)
{
	struct builder *b = udata;

	if (vcpu != b->vcpu)
		violation("callback ran with another vCPU's udata");
	b->calls++;
}

/* The unaligned counter of vcpu, read bytewise. */
static uint64_t
uget(unsigned vcpu)
{
	uint64_t v;

	memcpy(&v, (char *)qpd_scoreboard_find(ucounter.score, vcpu) +
	       ucounter.offset, sizeof(v));
	return v;
}

static void
snap_flushes(uint64_t *begun, uint64_t *done)
{
	for (unsigned f = 0; f < n_flushers; f++) {
		/* Sequentially consistent with the flushers' increments and
		 * ordered after the qpd calls before (store-load). */
		if (begun != NULL)
			begun[f] = __atomic_load_n(&fl[f].begun, __ATOMIC_SEQ_CST);
		if (done != NULL)
			done[f] = __atomic_load_n(&fl[f].done, __ATOMIC_SEQ_CST);
	}
}

/*
 * Appends naming the churned scoreboards to a list that is not executed
 * again: one while it is live (so that it is known live), and once its
 * free has returned, one that must be refused, as long as no scoreboard
 * was created since (its column, and address, may come back).
 */
static void
check_freed_scoreboard(struct qpd_dyn *scratch)
{
	unsigned s1 = __atomic_load_n(&sb_seq, __ATOMIC_ACQUIRE), s2;
	struct qpd_scoreboard *sb = __atomic_load_n(&sb_live, __ATOMIC_ACQUIRE);
	int rc;

	if (sb != NULL) {
		/* Live, or being freed: either answer is right. */
		rc = qpd_dyn_add_inline(scratch, QPD_OP_ADD_U64,
					(qpd_u64){ sb, 0 }, 1);
		if (rc != 0 && rc != -ENOENT)
			violation("append naming a live scoreboard failed");
	}
	if ((s1 & 1) == 0)
		return;
	sb = __atomic_load_n(&sb_freed, __ATOMIC_ACQUIRE);
	rc = qpd_dyn_add_inline(scratch, QPD_OP_ADD_U64, (qpd_u64){ sb, 0 }, 1);
	/* The append before the second look (store-load: seq_cst). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	s2 = __atomic_load_n(&sb_seq, __ATOMIC_ACQUIRE);
	if (s1 != s2)
		return;
	__atomic_fetch_add(&n_enoent_checked, 1, __ATOMIC_RELAXED);
	if (rc != -ENOENT)
		violation("append naming a freed scoreboard accepted");
}

static void
one_list(struct builder *b)
{
	uint64_t done0[MAX_FLUSHERS], begun1[MAX_FLUSHERS];
	uint64_t done[MAX_FLUSHERS], begun2[MAX_FLUSHERS];
	unsigned n = 1 + (unsigned)(rnd(&b->rng) % MAX_ENTRIES);
	unsigned n_cb = 0, n_add = 0, n_uadd = 0;
	uint64_t calls, adds, uadds;
	bool keep = rnd(&b->rng) % 8 == 0, survived = false, flushed = false;
	struct qpd_dyn *l;
	int rc;

	snap_flushes(NULL, done0);
	if (!qpd_vcpu_enter(q, b->vcpu)) {
		violation("vCPU not online");
		return;
	}
	l = qpd_dyn_new(q);
	if (l == NULL) {
		violation("qpd_dyn_new failed");
		qpd_vcpu_leave(q, b->vcpu);
		return;
	}
	snap_flushes(begun1, NULL);
	__atomic_fetch_add(&n_lists, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < n; i++) {
		switch (rnd(&b->rng) % 3) {
		case 0:
			rc = qpd_dyn_add_cb(l, count_cb, b);
			n_cb += rc == 0;
			break;
		case 1:
			rc = qpd_dyn_add_inline(l, QPD_OP_ADD_U64, counter, 1);
			n_add += rc == 0;
			break;
		default:
			rc = qpd_dyn_add_inline(l, QPD_OP_ADD_U64, ucounter, 3);
			n_uadd += rc == 0;
			break;
		}
		if (rc != 0)
			violation("append to a list failed");
	}
	if (n > 4)
		__atomic_fetch_add(&n_grown, 1, __ATOMIC_RELAXED);
	calls = b->calls;
	adds = qpd_u64_get(counter, b->vcpu);
	uadds = uget(b->vcpu);
	qpd_dyn_exec(l, b->vcpu);
	if (b->calls - calls != n_cb ||
	    qpd_u64_get(counter, b->vcpu) - adds != n_add ||
	    uget(b->vcpu) - uadds != 3 * n_uadd)
		violation("execution did not run what was appended");
	b->want_calls += n_cb;
	b->want_adds += n_add;
	b->want_uadds += 3 * n_uadd;
	check_freed_scoreboard(l);
	if (keep) {
		__atomic_fetch_add(&n_kept, 1, __ATOMIC_RELAXED);
		qpd_vcpu_leave(q, b->vcpu);
		return;
	}
	snap_flushes(NULL, done);
	rc = qpd_dyn_retire(q, l);
	snap_flushes(begun2, NULL);
	for (unsigned f = 0; f < n_flushers; f++) {
		/* Flush number begun1[f] + 1 of f began after the list... */
		survived |= done[f] > begun1[f];
		/* ...and one that had not completed before it may have
		 * retired it, if it began before the retire returned. */
		flushed |= begun2[f] > done0[f];
	}
	if (rc == 0) {
		__atomic_fetch_add(&n_retired, 1, __ATOMIC_RELAXED);
		if (survived)
			violation("a list survived a flush");
	} else if (rc == -ENOENT) {
		__atomic_fetch_add(&n_flushed, 1, __ATOMIC_RELAXED);
		if (!flushed)
			violation("a live list was not found (no flush ran)");
	} else {
		violation("qpd_dyn_retire failed");
	}
	if (qpd_dyn_retire(q, l) != -ENOENT)
		violation("a list was retired twice");
	qpd_vcpu_leave(q, b->vcpu);
}

static void *
builder_main(void *arg)
{
	struct builder *b = arg;

	if (qpd_vcpu_init(q, b->vcpu) != 0) {
		violation("qpd_vcpu_init failed");
		return NULL;
	}
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE))
		one_list(b);
	return NULL;
}

static void
sleep_us(unsigned us)
{
	struct timespec ts = { 0, (long)us * 1000 };

	nanosleep(&ts, NULL);
}

static void *
flusher_main(void *arg)
{
	unsigned f = (unsigned)(uintptr_t)arg;
	uint64_t rng = 0x9e3779b97f4a7c15ULL * (f + 1);

	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		__atomic_fetch_add(&fl[f].begun, 1, __ATOMIC_SEQ_CST);
		qpd_flush(q);
		__atomic_fetch_add(&fl[f].done, 1, __ATOMIC_SEQ_CST);
		sleep_us((unsigned)(rnd(&rng) % 500));
	}
	return NULL;
}

/* Creates and frees scoreboards: appends must see frees at once. */
static void *
churner_main(void *arg)
{
	uint64_t rng = 0x2545f4914f6cdd1dULL;

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		struct qpd_scoreboard *sb =
			qpd_scoreboard_new(q, 8 + rnd(&rng) % 64);

		if (sb == NULL) {
			violation("qpd_scoreboard_new failed");
			return NULL;
		}
		__atomic_store_n(&sb_live, sb, __ATOMIC_RELEASE);
		sleep_us((unsigned)(rnd(&rng) % 200));
		__atomic_store_n(&sb_live, NULL, __ATOMIC_RELEASE);
		if (qpd_scoreboard_free(q, sb) != 0)
			violation("qpd_scoreboard_free failed");
		__atomic_store_n(&sb_freed, sb, __ATOMIC_RELEASE);
		/* Odd once the free has returned. */
		__atomic_fetch_add(&sb_seq, 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&n_sb_churn, 1, __ATOMIC_RELAXED);
		sleep_us((unsigned)(rnd(&rng) % 200));
		/* Even again before the next scoreboard exists (store-load). */
		__atomic_fetch_add(&sb_seq, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static void
usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--threads T] [--flushers F] [--seconds S]\n",
		argv0);
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "flushers", required_argument, NULL, 'f' },
		{ "seconds", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t n_flushes = 0;
	unsigned n_all;
	pthread_t *t;
	int c;

	while ((c = getopt_long(argc, argv, "t:f:s:", opts, NULL)) != -1) {
		switch (c) {
		case 't': n_threads = (unsigned)atoi(optarg); break;
		case 'f': n_flushers = (unsigned)atoi(optarg); break;
		case 's': seconds = (unsigned)atoi(optarg); break;
		default: usage(argv[0]);
		}
	}
	if (n_threads == 0 || n_threads > MAX_THREADS ||
	    n_flushers > MAX_FLUSHERS)
		usage(argv[0]);
	/* Columns padded to 64 bytes: room past the 16-byte element. */
	q = qpd_new(&(struct qpd_config){ .slot_align = 64 });
	if (q == NULL)
		return 1;
	counter = (qpd_u64){ qpd_scoreboard_new(q, 16), 8 };
	ucounter = (qpd_u64){ counter.score, 21 };
	builders = calloc(n_threads, sizeof(*builders));
	n_all = n_threads + n_flushers + 1;
	t = calloc(n_all, sizeof(*t));
	if (counter.score == NULL || builders == NULL || t == NULL)
		return 1;
	for (unsigned i = 0; i < n_threads; i++) {
		builders[i].vcpu = i;
		builders[i].rng = 0x853c49e6748fea9bULL ^
				  (i + 1) * 0x9e3779b9ULL;
		pthread_create(&t[i], NULL, builder_main, &builders[i]);
	}
	for (unsigned f = 0; f < n_flushers; f++)
		pthread_create(&t[n_threads + f], NULL, flusher_main,
			       (void *)(uintptr_t)f);
	pthread_create(&t[n_all - 1], NULL, churner_main, NULL);
	for (unsigned s = 0; s < seconds; s++)
		sleep_us(999999);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < n_all; i++)
		pthread_join(t[i], NULL);
	for (unsigned i = 0; i < n_threads; i++) {
		struct builder *b = &builders[i];

		if (b->calls != b->want_calls)
			violation("callback count not exact");
		if (qpd_u64_get(counter, b->vcpu) != b->want_adds ||
		    uget(b->vcpu) != b->want_uadds)
			violation("inline add count not exact");
	}
	for (unsigned f = 0; f < n_flushers; f++)
		n_flushes += fl[f].done;
	/* Kept lists go with qpd_free(), as do retired ones still pending. */
	qpd_free(q);
	free(builders);
	free(t);
	printf("SUMMARY threads=%u flushers=%u seconds=%u lists=%" PRIu64
	       " retired=%" PRIu64 " retired_by_flush=%" PRIu64
	       " kept=%" PRIu64 " grown=%" PRIu64 " flushes=%" PRIu64
	       " sb_churn=%" PRIu64 " freed_sb_checks=%" PRIu64
	       " violations=%" PRIu64 "\n",
	       n_threads, n_flushers, seconds, n_lists, n_retired, n_flushed,
	       n_kept, n_grown, n_flushes, n_sb_churn,
	       n_enoent_checked, n_violations);
	return n_violations ? 1 : 0;
}
