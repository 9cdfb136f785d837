/*
 * Instances, reclamation and the non-vCPU epoch sections.
 *
 * The algorithm.  Everything a dispatching thread reads (callback arrays,
 * vCPU blocks, event masks) is either immutable once published or written
 * with single ck_pr stores.  Writers serialise on one plain mutex, build a
 * new array, publish it with a store-release and hand the old one to
 * ck_epoch_call() on the writers' own record (q->wrec).  Readers are vCPU
 * threads inside an execution slice (one ck_epoch section per slice, not per
 * dispatch) or non-vCPU threads inside a short section on a record lent from
 * ck's free pool.  ck_epoch_poll() runs retired entries only once every
 * record that was active when they were retired has left its section or
 * observed a later epoch, so no reader can still hold them.
 *
 * Why nothing blocks.  No thread ever waits for a grace period while holding
 * q->lock, and writers never wait for one at all: they only poll.  A
 * callback running inside its vCPU's section may therefore take q->lock
 * (register, unregister, uninstall) without deadlock: the lock holder never
 * waits for that section.  The reclaimer thread polls with a back-off of at
 * most 10 ms while work is pending and sleeps otherwise.
 *
 * `done` hooks.  An uninstall or reset queues a notice through the same
 * ck_epoch_call().  When its grace period has passed, the epoch callback
 * (running under q->lock inside ck_epoch_poll) only moves it to q->ready; the
 * reclaimer then calls the hooks in issue order with no lock held, so a hook
 * may call any qpd function.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "internal.h"

#ifdef QPD_TSAN
/* The sync object of QPD_TSAN_GRACE_END/PASSED (qpd/core.h). */
char qpd__tsan_grace;
#endif

/*
 * Poll intervals: memory alone can wait (a steady registration churn then
 * costs a few thousand polls a second); a pending `done` hook is polled for
 * eagerly, because someone (an uninstall) is waiting for it.
 */
#define RECLAIM_MEMORY_MIN_US 100
#define RECLAIM_NOTICE_MIN_US 5
#define RECLAIM_BACKOFF_MAX_US 10000

int
qpd__fail(struct qpd *q, int err, const char *func)
{
	if (q != NULL) {
		ck_pr_inc_64(&q->n_errors);
		if (q->cfg.on_error != NULL)
			q->cfg.on_error(err, func, q->cfg.opaque);
	}
	return err;
}

const char *
qpd_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -EINVAL:
		return "invalid argument (NULL pointer, unknown event or vCPU "
		       "index past the maximum)";
	case -ENOENT:
		return "unknown plugin id or vCPU not online";
	case -EEXIST:
		return "vCPU already online";
	case -ENOMEM:
		return "out of memory; nothing was changed";
	case -ESHUTDOWN:
		return "plugin is being uninstalled; request ignored";
	case -EALREADY:
		return "uninstall or reset already in progress";
	case -EBUSY:
		return "vCPU is inside an execution slice";
	}
	return "unknown qpd error";
}

/*
 * Defers fn(e) until no reader can hold e.  Caller holds q->lock (ck records
 * are single-owner: the lock makes q->wrec the writers' alone).
 */
void
qpd__retire_locked(struct qpd *q, ck_epoch_entry_t *e, ck_epoch_cb_t *fn)
{
	ck_epoch_call(&q->wrec, e, fn);
	pthread_cond_signal(&q->wake);
	if (q->cfg.on_reclaim_pending_locked != NULL)
		q->cfg.on_reclaim_pending_locked(q->cfg.opaque);
}

/* Polls once under the lock; returns the notices whose hooks are due. */
static struct qpd_notice *
reclaim_step_locked(struct qpd *q)
{
	struct qpd_notice *ready;

	if (q->wrec.n_pending != 0)
		ck_epoch_poll(&q->wrec);
	ready = q->ready;
	q->ready = NULL;
	return ready;
}

/* Calls due hooks in issue order; no lock held. */
static void
run_notices(struct qpd_notice *n)
{
	while (n != NULL) {
		struct qpd_notice *next = n->next;

		if (n->done != NULL)
			n->done(n->id, n->arg);
		qpd__dealloc(n);
		n = next;
	}
}

int
qpd_reclaim(struct qpd *q)
{
	struct qpd_notice *ready;
	unsigned pending;

	if (q == NULL)
		return QPD_FAIL(q, -EINVAL);
	pthread_mutex_lock(&q->lock);
	ready = reclaim_step_locked(q);
	pending = q->wrec.n_pending;
	pthread_mutex_unlock(&q->lock);
	run_notices(ready);
	return (int)pending;
}

static void
deadline_after_us(struct timespec *ts, unsigned us)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_nsec += (long)us * 1000;
	while (ts->tv_nsec >= 1000000000L) {
		ts->tv_nsec -= 1000000000L;
		ts->tv_sec++;
	}
}

/* The shortest poll interval for what is pending now; under q->lock. */
static unsigned
reclaim_min_us(const struct qpd *q)
{
	return q->n_notices_pending ? RECLAIM_NOTICE_MIN_US
				    : RECLAIM_MEMORY_MIN_US;
}

static void *
reclaimer_main(void *arg)
{
	struct qpd *q = arg;
	unsigned backoff = RECLAIM_MEMORY_MIN_US;

#ifdef __linux__
	/* Timed waits of a few microseconds need less than the default 50 us
	 * of timer slack; best effort. */
	(void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
#endif
	pthread_mutex_lock(&q->lock);
	while (!q->stop) {
		unsigned before = q->wrec.n_pending;
		unsigned epoch = ck_pr_load_uint(&q->core.epoch.epoch);
		struct qpd_notice *ready = reclaim_step_locked(q);

		if (ready != NULL) {
			pthread_mutex_unlock(&q->lock);
			run_notices(ready);
			pthread_mutex_lock(&q->lock);
			backoff = reclaim_min_us(q);
			continue;
		}
		if (q->wrec.n_pending == 0) {
			backoff = reclaim_min_us(q);
			pthread_cond_wait(&q->wake, &q->lock);
			continue;
		}
		/*
		 * Some vCPU still holds an old epoch: wait for it, backing off
		 * only while nothing moves.
		 */
		if (q->wrec.n_pending < before ||
		    ck_pr_load_uint(&q->core.epoch.epoch) != epoch)
			backoff = reclaim_min_us(q);
		struct timespec ts;
		deadline_after_us(&ts, backoff);
		pthread_cond_timedwait(&q->wake, &q->lock, &ts);
		if (backoff < RECLAIM_BACKOFF_MAX_US)
			backoff *= 2;
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* The reclaimer's stack: room for `done` hooks (a dlclose, say). */
#define RECLAIMER_STACK ((size_t)1 << 20)

static int
reclaimer_start(struct qpd *q)
{
	sigset_t all, old;
	int err;

	q->stop = false;
	if (q->cfg.no_reclaimer_thread)
		return 0;
	/*
	 * The reclaimer is the library's thread, not the embedder's: it must
	 * never be the one a process-directed signal is delivered to (an
	 * emulator forwards those to its guest from the thread that takes
	 * them).  It inherits a full mask, as QEMU's and liburcu's own helper
	 * threads do.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	/*
	 * A small stack: it frees memory and runs `done` hooks, and the
	 * default (8 MiB of address space) would count against an
	 * embedder's RLIMIT_AS that the embedder alone would not need.
	 */
	pthread_attr_t attr;
	bool attr_ok = pthread_attr_init(&attr) == 0;

	if (attr_ok)
		pthread_attr_setstacksize(&attr, RECLAIMER_STACK);
	err = pthread_create(&q->reclaimer, attr_ok ? &attr : NULL,
			     reclaimer_main, q);
	if (attr_ok)
		pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0)
		return -EAGAIN;
	q->reclaimer_running = true;
	return 0;
}

static void
reclaimer_stop(struct qpd *q)
{
	if (!q->reclaimer_running)
		return;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->reclaimer, NULL);
	q->reclaimer_running = false;
}

static int
sync_init(struct qpd *q)
{
	pthread_condattr_t ca;
	int err;

	if (pthread_mutex_init(&q->lock, NULL) != 0)
		return -ENOMEM;
	if (pthread_condattr_init(&ca) != 0)
		return -ENOMEM;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	err = pthread_cond_init(&q->wake, &ca);
	pthread_condattr_destroy(&ca);
	return err ? -ENOMEM : 0;
}

struct qpd *
qpd_new(const struct qpd_config *cfg)
{
	struct qpd_config c = { 0 };
	struct qpd *q;
	int err = 0;

	if (cfg != NULL)
		c = *cfg;
	if (c.max_vcpus == 0)
		c.max_vcpus = QPD_DEFAULT_MAX_VCPUS;
	if (c.max_vcpus > QPD_MAX_VCPUS_LIMIT) {
		errno = EINVAL;
		return NULL;
	}
	q = qpd__alloc(sizeof(*q));
	if (q == NULL)
		goto nomem;
	q->cfg = c;
	q->core.max_vcpus = c.max_vcpus;
	q->n_chunks = (c.max_vcpus + QPD_VCPU_CHUNK - 1) / QPD_VCPU_CHUNK;
	q->core.vdir = qpd__alloc((q->n_chunks + QPD_VDIR_PAGE - 1) /
				  QPD_VDIR_PAGE * sizeof(*q->core.vdir));
	if (q->core.vdir == NULL)
		goto nomem_q;
	CK_BITMAP_INIT(&q->mask, QPD_EV_CAPACITY, false);
	ck_epoch_init(&q->core.epoch);
	ck_epoch_register(&q->core.epoch, &q->wrec, q);
	ck_stack_init(&q->guests);
	ck_stack_init(&q->new_dyn);
	ck_sequence_init(&q->sb_seen_seq);
	if (qpd__plugins_init(q) != 0)
		goto nomem_vdir;
	if (qpd__ptrset_init(&q->live_sb, (uintptr_t)q) != 0)
		goto nomem_plugins;
	if (qpd__ptrset_init(&q->live_dyn, (uintptr_t)q) != 0)
		goto nomem_live_sb;
	err = qpd__arena_init(q);
	if (err != 0)
		goto fail_live_dyn;
	if (sync_init(q) != 0)
		goto nomem_arena;
	if (reclaimer_start(q) != 0) {
		pthread_cond_destroy(&q->wake);
		pthread_mutex_destroy(&q->lock);
		goto nomem_arena;
	}
	return q;

nomem_arena:
	err = -ENOMEM;
	qpd__arena_destroy(q);
fail_live_dyn:
	ck_hs_destroy(&q->live_dyn);
nomem_live_sb:
	ck_hs_destroy(&q->live_sb);
nomem_plugins:
	qpd__plugins_destroy(q);
nomem_vdir:
	qpd__dealloc(q->core.vdir);
nomem_q:
	qpd__dealloc(q);
nomem:
	errno = err ? -err : ENOMEM;
	return NULL;
}

void
qpd_free(struct qpd *q)
{
	struct qpd_notice *ready;
	ck_stack_entry_t *e, *next;

	if (q == NULL)
		return;
	reclaimer_stop(q);
	/* No record is active any more (precondition): run every entry. */
	pthread_mutex_lock(&q->lock);
	qpd__dyn_retire_all_locked(q);
	ck_epoch_reclaim(&q->wrec);
	ready = q->ready;
	q->ready = NULL;
	pthread_mutex_unlock(&q->lock);
	run_notices(ready);

	qpd__free_arrays(q);
	qpd__plugins_destroy(q);
	ck_hs_destroy(&q->live_dyn);
	qpd__arena_destroy(q); /* frees the live descriptors it finds */
	ck_hs_destroy(&q->live_sb);
	qpd__vcpus_destroy(q);
	for (e = CK_STACK_FIRST(&q->guests); e != NULL; e = next) {
		next = CK_STACK_NEXT(e);
		qpd__dealloc(ck_stack_entry_container_guest(e));
	}
	qpd__dealloc(q->core.vdir);
	pthread_cond_destroy(&q->wake);
	pthread_mutex_destroy(&q->lock);
	qpd__dealloc(q);
}

/*
 * Lends an epoch record to a thread that is not (acting as) a vCPU and
 * opens a section on it.  Guest records stay registered (an inactive record
 * holds no grace period back) and are claimed with one compare-and-swap;
 * a new one is allocated only when every guest record is lent.  The pool
 * is separate from the vCPU records, so claiming never scans those.
 */
/*
 * Walks the guest records while other threads may push one: loads, not
 * CK_STACK_FOREACH's plain reads (records are never popped, and a record's
 * next is written before the push that publishes it).
 */
#define GUESTS_FOREACH(q, e)                                       \
	for ((e) = ck_pr_load_ptr(&(q)->guests.head); (e) != NULL; \
	     (e) = ck_pr_load_ptr(&(e)->next))

struct qpd_guest *
qpd__guest_enter(struct qpd *q)
{
	ck_stack_entry_t *e;
	struct qpd_guest *g;

	GUESTS_FOREACH(q, e) {
		g = ck_stack_entry_container_guest(e);
		if (ck_pr_load_uint(&g->lent) == 0 &&
		    ck_pr_cas_uint(&g->lent, 0, 1))
			goto claimed;
	}
	g = qpd__alloc(sizeof(*g));
	if (g == NULL)
		return NULL;
	g->lent = 1;
	ck_epoch_register(&q->core.epoch, &g->rec, g);
	ck_stack_push_upmc(&q->guests, &g->link);
claimed:
	ck_epoch_begin(&g->rec, NULL);
	return g;
}

void
qpd__guest_leave(struct qpd_guest *g)
{
	qpd__epoch_end(&g->rec);
	/* The section's end before the record can be lent again. */
	ck_pr_fence_release();
	ck_pr_store_uint(&g->lent, 0);
}

/* Tells the embedder that every online vCPU's mask changed; no lock held. */
void
qpd__notify_masks(struct qpd *q)
{
	unsigned i, n;

	if (q->cfg.on_mask_change == NULL)
		return;
	n = ck_pr_load_uint(&q->core.num_vcpus);
	for (i = 0; i < n; i++) {
		struct qpd_vcpu *v = qpd__vcpu(q, i);

		if (v != NULL && ck_pr_load_uint(&v->online))
			q->cfg.on_mask_change(i, q->cfg.opaque);
	}
}

int
qpd_stats_get(struct qpd *q, struct qpd_stats *st)
{
	ck_stack_entry_t *e;
	struct qpd_notice *n;
	unsigned ev;

	if (q == NULL || st == NULL)
		return QPD_FAIL(q, -EINVAL);
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&q->lock);
	for (ev = 0; ev < QPD_EV_COUNT; ev++)
		st->n_dispatch[ev] = qpd__vcpus_sum_dispatch(q, ev);
	GUESTS_FOREACH(q, e) {
		struct qpd_guest *g = ck_stack_entry_container_guest(e);

		for (ev = 0; ev < QPD_EV_COUNT; ev++)
			st->n_dispatch[ev] += ck_pr_load_64(&g->n_dispatch[ev]);
	}
	st->n_registrations = q->n_registrations;
	st->n_unregistrations = q->n_unregistrations;
	st->n_grace_periods = ck_pr_load_uint(&q->core.epoch.epoch) - 1;
	st->n_reclaimed = q->wrec.n_dispatch;
	st->n_pending_reclaim = q->wrec.n_pending;
	for (n = q->ready; n != NULL; n = n->next)
		st->n_pending_reclaim++;
	st->n_done_calls = q->n_done_calls;
	st->n_plugins = ck_hs_count(&q->plugins);
	st->n_vcpus_online = q->n_online;
	st->n_vcpus = q->core.num_vcpus;
	st->n_errors = ck_pr_load_64(&q->n_errors);
	st->n_sb_arenas = q->n_sb_arenas;
	st->n_sb_grown = q->n_sb_grown;
	st->n_sb_moved = q->n_sb_moved;
	st->sb_capacity = q->sb_cap;
	st->n_scoreboards = ck_hs_count(&q->live_sb);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

int
qpd_prefork(struct qpd *q)
{
	if (q == NULL)
		return QPD_FAIL(q, -EINVAL);
	/* The reclaimer is now waiting or outside the lock: safe to copy. */
	pthread_mutex_lock(&q->lock);
	return 0;
}

int
qpd_postfork(struct qpd *q, bool child)
{
	ck_stack_entry_t *e;

	if (q == NULL)
		return QPD_FAIL(q, -EINVAL);
	if (!child) {
		pthread_mutex_unlock(&q->lock);
		return 0;
	}
	/*
	 * Only the forking thread survives in the child.  Sections that other
	 * threads held in the parent will never end: release their records
	 * or no grace period would ever pass.  The forking thread holds no
	 * section (precondition), so every active record is an orphan.
	 */
	qpd__vcpus_after_fork(q);
	CK_STACK_FOREACH(&q->guests, e) {
		struct qpd_guest *g = ck_stack_entry_container_guest(e);

		if (g->lent) {
			ck_pr_store_uint(&g->rec.active, 0);
			g->lent = 0;
		}
	}
	pthread_mutex_unlock(&q->lock);
	/* The parent's reclaimer may have been waiting on it: start afresh. */
	if (sync_init(q) != 0)
		return QPD_FAIL(q, -ENOMEM);
	q->reclaimer_running = false;
	if (reclaimer_start(q) != 0)
		return QPD_FAIL(q, -EAGAIN);
	return 0;
}
