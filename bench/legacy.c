/*
 * legacy.c - a model of QEMU 9.0's plugin core, run beside qpd by the
 * benchmarks and used as the reference of differential tests.
 *
 * Written from a reading of QEMU 9.0's plugins/core.c (GPL-2.0-or-later);
 * no code or comment is taken from it.  Each mechanism names the QEMU
 * function it models.  Where the behaviour lives outside that file (the
 * loader, cpus-common.c) or arrived after 9.0, the text says so.
 *
 * 1. One recursive lock.  QEMU serialises registration
 *    (do_plugin_register_cb), vCPU init and exit (qemu_plugin_vcpu_init_hook,
 *    qemu_plugin_vcpu_exit_hook), scoreboard creation and removal
 *    (plugin_scoreboard_new, plugin_scoreboard_free), vCPU enumeration
 *    (qemu_plugin_vcpu_for_each) and user exit (qemu_plugin_user_exit) on
 *    one recursive mutex, plugin.lock; the loader takes it to install,
 *    uninstall and reset plugins (plugin_reset_uninstall,
 *    plugin_reset_destroy).  Here that is l->lock, a recursive pthread
 *    mutex taken by the same operations.  A callback called under it
 *    (for_each, `done`) may register again on the same thread.
 *
 * 2. GLib tables.  Plugin ids lead to their contexts through a GHashTable
 *    keyed by a pointer to the 64-bit id (plugin.id_ht with g_int64_hash,
 *    looked up by plugin_id_to_ctx_locked), and the online vCPUs form a
 *    GHashTable keyed by a pointer to the index (plugin.cpu_ht with
 *    g_int_hash, filled by qemu_plugin_vcpu_init_hook).  for_each visits
 *    that table in hash order, as plugin_vcpu_for_each does.  QEMU aborts on
 *    an unknown id; the model returns -ENOENT.  Ids count up from 1.
 *
 * 3. RCU callback lists.  Every event has a liburcu list (cds_list_*_rcu)
 *    of entries {context, fn, udata} (plugin.cb_lists, struct
 *    qemu_plugin_cb).  A plugin's first registration for an event inserts
 *    its entry at the head (QLIST_INSERT_HEAD_RCU in do_plugin_register_cb),
 *    so callbacks run in reverse registration order (qpd keeps the same
 *    order, in immutable arrays).  A later registration for the
 *    same plugin and event overwrites fn, then udata, in the entry that
 *    readers may be walking, as do_plugin_register_cb does: a reader racing
 *    with it can call the new fn with the old udata, the 1->0->1 pairing
 *    hazard that qpd's immutable arrays avoid.  Readers load the next
 *    pointer before each call (QLIST_FOREACH_SAFE_RCU in
 *    plugin_vcpu_cb__simple and qemu_plugin_vcpu_syscall) and reach the
 *    plugin id through the entry's context (cb->ctx->id).  QEMU's removal
 *    (plugin_unregister_cb__locked) unlinks the entry and frees it at once,
 *    which is safe only while every vCPU is stopped.  That holds for reset,
 *    uninstall and user exit, which run in a stop-the-world section (5),
 *    and there the model frees at once too.  A plain unregistration
 *    (fn == NULL) stops nothing, in QEMU or here; so that the benchmarks
 *    and the fuzzer cannot crash, the model hands that entry to call_rcu()
 *    instead of freeing it.
 *    When an event's list turns non-empty or empty, its bit in the global
 *    mask changes and every online vCPU is asked to copy the mask (4).
 *
 * 4. Masks set by asking each vCPU.  plugin_cpu_update__locked queues
 *    plugin_cpu_update__async to every vCPU of cpu_ht with async_run_on_cpu,
 *    carrying the global mask as it is when queued; the vCPU copies it into
 *    its own mask when it next runs its queued work, between executions
 *    (process_queued_cpu_work, cpus-common.c).  Here each vCPU has a FIFO of
 *    work items under its own mutex and an exit_request flag that queueing
 *    sets (the kick).  The vCPU runs its queue in legacy_vcpu_enter, in
 *    legacy_vcpu_leave, in legacy_vcpu_safepoint when the flag is up, and
 *    after the init, exit, idle and resume walks.
 *    syscall, syscall_ret and syscall_filter test the vCPU's own copy
 *    (qemu_plugin_vcpu_syscall, qemu_plugin_vcpu_syscall_ret), as does
 *    tb_trans (QEMU's translator tests the bit before calling
 *    qemu_plugin_tb_trans_cb), so a new callback reaches a running vCPU only
 *    after its next safepoint.  init, exit, idle, resume, discon, flush and
 *    atexit test no mask, as in QEMU.  The jump-cache flush of
 *    plugin_cpu_update__async has no counterpart.  A vCPU is always
 *    "realized" here, so the direct-copy branch of
 *    plugin_cpu_update__locked is not modelled.
 *
 * 5. Stop the world.  start_exclusive and end_exclusive (cpus-common.c,
 *    called by plugin_grow_scoreboards__locked and qemu_plugin_user_exit)
 *    use the same protocol here.  Starting a slice (cpu_exec_start) stores
 *    `running`, then reads pending_cpus; ending one (cpu_exec_end) clears
 *    `running`, then reads pending_cpus.  start_exclusive waits out any
 *    other section, stores pending_cpus, then reads every vCPU's `running`:
 *    a fence on each side between the store and the load means that either
 *    the starter sees the vCPU running, counts it, marks it has_waiter and
 *    kicks it, or the vCPU sees the section pending and sleeps
 *    (exclusive_idle) until end_exclusive.  The starter sleeps until every
 *    counted vCPU has ended its slice.  A slice is legacy_vcpu_enter ..
 *    legacy_vcpu_leave: cpu_exec_start plus rcu_read_lock, as cpu_exec
 *    holds the RCU read lock while it runs guest code.  Uninstall and reset
 *    are exclusive work (plugin_reset_uninstall queues plugin_flush_destroy
 *    with async_safe_run_on_cpu, loader.c).  Asked for inside a slice, the
 *    work is queued to the caller's vCPU and runs when that vCPU next leaves
 *    its slice; asked for elsewhere, the caller stops the world itself
 *    (QEMU then runs it with nothing stopped, which it assumes happens only
 *    before vCPUs exist).  The work flushes when vCPUs exist (the tb_flush
 *    of plugin_flush_destroy), then under the lock removes and frees the
 *    plugin's entries, forgets an uninstalled plugin and calls `done`
 *    (plugin_reset_destroy__locked).  Exclusive work asked for during a
 *    section runs at its end, before the vCPUs resume (QEMU queues it as
 *    more safe work).  Lists are also walked outside slices: init, exit,
 *    idle and resume on the vCPU's thread (QEMU calls them outside
 *    cpu_exec), and flush and atexit on any thread.  The first four are
 *    bracketed as short slices; flush, and atexit called outside a slice,
 *    run in a section of their own (QEMU's flush does too, through tb_flush;
 *    its atexit walk has no protection).  So no stop-the-world free can
 *    land under a walk.
 *
 * 6. Scoreboards.  Each scoreboard is a zeroed GArray of elements, as many
 *    as a shared alloc size that starts at 16 (plugin_init) and doubles
 *    (plugin_scoreboard_new, plugin_grow_scoreboards__locked).  When a vCPU
 *    index at or past the alloc size is initialised, the size doubles until
 *    it fits; if scoreboards exist, the world stops, g_array_set_size
 *    resizes (and may move) every one of them, a flush discards all dynamic
 *    lists because translated code holds their addresses, and the world
 *    restarts.  QEMU takes plugin.lock before start_exclusive on this path,
 *    the reverse of the order qemu_plugin_user_exit documents and
 *    plugin_flush_destroy relies on; the model drops the lock, stops the
 *    world, takes the lock again and rechecks, so growth cannot deadlock
 *    against an uninstall.  The inline ADD_U64 computes its address as
 *    exec_inline_op does: the array's current data, plus the entry's
 *    offset, plus the vCPU index times the element size, then a plain +=.
 *    legacy_stats counts the stops, the growths, and the longest and total
 *    time from start_exclusive asking the vCPUs to stop to end_exclusive.
 *
 * 7. Dynamic lists.  A list is a GArray of entries grown by one element per
 *    append (plugin_get_dyn_cb) holding regular callbacks
 *    (plugin_register_dyn_cb__udata), inline ops on a scoreboard entry
 *    (plugin_register_inline_op_on_entry), memory callbacks
 *    (plugin_register_vcpu_mem_cb) and memory inline ops; every list is
 *    known to the instance (plugin.dyn_cb_arr_ht, a qht with its own
 *    locking: here a GPtrArray under its own mutex) and a flush frees them
 *    all (qemu_plugin_flush_cb), then runs the FLUSH callbacks and the
 *    embedder's on_flush hook, which stands for retranslation.  The memory
 *    executor stops at the first entry whose rw does not intersect the
 *    access's (the `break` in qemu_plugin_vcpu_mem_cb);
 *    legacy_set_mem_break(l, false) makes it skip such entries and run
 *    every match instead.  QEMU 9.0 has only ADD_U64 (exec_inline_op);
 *    STORE_U64 and conditional callbacks came with QEMU 9.1 and are modelled
 *    after it: the condition compares the entry's counter with the
 *    immediate, unsigned, and branches over the call when it fails; ALWAYS
 *    registers a plain callback and NEVER registers nothing.
 *
 * 8. Events.  init/exit/idle/resume walk without a mask
 *    (plugin_vcpu_cb__simple); idle and resume are ignored for indices at
 *    or past num_vcpus (qemu_plugin_vcpu_idle_cb, qemu_plugin_vcpu_resume_cb);
 *    init raises num_vcpus to index + 1 and never lowers it.  FLUSH runs
 *    from a flush (plugin_cb__simple via qemu_plugin_flush_cb).  ATEXIT
 *    (plugin_cb__udata, qemu_plugin_atexit_cb) runs at most once: QEMU
 *    registers it with atexit() and calls it from user exit, and linux-user
 *    leaves through _exit(), so it runs once there too.  User exit stops
 *    the world, removes every callback but ATEXIT, flushes, restarts the
 *    world and runs ATEXIT (qemu_plugin_user_exit).  tb_trans
 *    (qemu_plugin_tb_trans_cb) and syscall/syscall_ret are walks after the
 *    mask test.  Discontinuities and the syscall filter are not in 9.0;
 *    they follow the later QEMU code: discon walks without a mask test when
 *    the index is below num_vcpus (plugin_vcpu_cb__discon), the filter
 *    walks after the mask test and the first filter returning true wins.
 *
 * Callback signatures are qpd's: every callback gets its registered udata,
 * and tb_trans callbacks get the vCPU index.  QEMU 9.0 passes no udata to
 * vCPU-simple, flush and tb_trans callbacks.  Not modelled: loading and
 * unloading plugin code, the prefork/postfork locking, raw-pointer inline
 * ops, callback flags, qemu_plugin_disable_mem_helpers.
 *
 * Where the model is safer than QEMU, so that a benchmark or fuzzer run
 * cannot corrupt memory or deadlock: plain unregistration defers the free
 * (3); growth takes start_exclusive before the lock (6); walks outside
 * slices are bracketed (5); an uninstall or reset asked for outside a slice
 * stops the world itself (5); the scoreboard alloc size is read under the
 * lock (QEMU reads it before taking the lock); legacy_u64_get/set/sum take
 * the lock (QEMU's accessors take none).  Hazard left: a for_each
 * callback that stops the world (uninstall, reset, flush, a vCPU init that
 * grows) does so holding the lock, as QEMU's growth path does, and
 * deadlocks if a running vCPU is blocked on that lock.
 */
#define _LGPL_SOURCE /* inline rcu_read_lock, as QEMU's is */

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <urcu/urcu-memb.h>
#include <urcu/rculist.h>

#include "legacy.h"

#define EV_BIT(ev) (UINT64_C(1) << (ev))

/* One registration on an event's list. */
struct legacy_cb {
	struct cds_list_head node;
	struct legacy_ctx *ctx;
	void *fn;          /* overwritten in place on re-registration */
	void *udata;
	struct rcu_head rcu;
};

struct legacy_ctx {
	qpd_plugin_id id;  /* key of l->id_ht */
	struct legacy_cb *cb[QPD_EV_COUNT];
	bool uninstalling;
	bool resetting;
};

struct legacy_vcpu;
struct legacy_work;

typedef void (*work_fn)(struct legacy *l, struct legacy_vcpu *v,
			struct legacy_work *w);

/* A work item: a mask copy, or exclusive work (flush, uninstall, reset). */
struct legacy_work {
	struct legacy_work *next;
	work_fn fn;
	bool exclusive;
	bool reset;
	uint64_t mask;
	struct legacy_ctx *ctx;
	qpd_done_fn done;
	void *arg;
};

struct legacy_vcpu {
	uint64_t mask;          /* the vCPU's copy of the event mask */
	unsigned exit_request;  /* set when work is queued or a section waits */
	unsigned running;       /* inside a slice (cpu_exec_start .. end) */
	unsigned has_waiter;    /* counted by start_exclusive; excl_lock */
	unsigned index;
	gint key;               /* key of l->cpu_ht */
	unsigned online;        /* in cpu_ht; written under l->lock */
	pthread_mutex_t qlock;
	struct legacy_work *head, **tail;
	uint64_t n_work_queued;
	uint64_t n_mask_updates;
} __attribute__((aligned(64)));

struct legacy_dyn_entry {
	uint8_t kind, op, cond, rw;
	void *fn;
	void *udata;
	legacy_u64 entry;
	uint64_t imm;
};

struct legacy_dyn {
	GArray *e;          /* created by the first append */
	struct legacy *l;
};

struct legacy {
	pthread_mutex_t lock; /* recursive: plugin.lock */
	struct cds_list_head ev[QPD_EV_COUNT];
	uint64_t mask;        /* events with a non-empty list */
	GHashTable *id_ht;    /* &ctx->id -> ctx */
	GHashTable *cpu_ht;   /* &v->key -> &v->key, online vCPUs */
	GHashTable *scoreboards; /* set of live scoreboards */
	unsigned alloc;       /* elements per scoreboard */
	unsigned num_vcpus;
	qpd_plugin_id last_id;
	unsigned atexit_ran;
	unsigned mem_break;

	struct legacy_vcpu **vcpu; /* max_vcpus slots, published once */
	unsigned max_vcpus;
	unsigned n_slots;     /* highest allocated index + 1 */

	/* The exclusive section (qemu_cpu_list_lock and its conditions). */
	pthread_mutex_t excl_lock;
	pthread_cond_t excl_cond;   /* the starter waits for counted vCPUs */
	pthread_cond_t excl_resume; /* vCPUs wait for the section to end */
	unsigned pending_cpus;
	void *excl_owner;     /* &self of the thread holding the section */
	unsigned excl_depth;  /* its nesting; touched by the owner only */
	struct timespec excl_t0;
	struct legacy_work *later, **later_tail; /* asked for during a section */

	pthread_mutex_t dyn_lock;
	GPtrArray *dyns;

	void (*on_flush)(void *opaque);
	void *opaque;

	uint64_t n_registrations, n_replacements, n_unregistrations;
	uint64_t n_deferred_frees, n_done_calls, n_errors, n_growths;
	uint64_t n_flushes, n_stop_the_world, stall_max_ns, stall_total_ns;
};

/* The slice the calling thread is in, if any. */
static __thread struct {
	struct legacy *l;
	struct legacy_vcpu *v;
	bool rcu_registered;
} self;

/* Whether the calling thread holds l's exclusive section. */
static bool
holds_section(struct legacy *l)
{
	return ck_pr_load_ptr(&l->excl_owner) == (void *)&self;
}

static int
fail(struct legacy *l, int err)
{
	if (l != NULL)
		ck_pr_inc_64(&l->n_errors);
	return err;
}

/* ------------------------------------------------------------------
 * RCU reader registration: liburcu wants every thread that reads or calls
 * call_rcu() registered, and unregistered before it exits.
 */
static pthread_key_t rcu_key;
static pthread_once_t rcu_once = PTHREAD_ONCE_INIT;

static void
rcu_thread_gone(void *unused)
{
	(void)unused;
	urcu_memb_unregister_thread();
	self.rcu_registered = false;
}

static void
rcu_key_create(void)
{
	pthread_key_create(&rcu_key, rcu_thread_gone);
}

static void
rcu_thread_ensure(void)
{
	if (self.rcu_registered)
		return;
	pthread_once(&rcu_once, rcu_key_create);
	urcu_memb_register_thread();
	pthread_setspecific(rcu_key, &self);
	self.rcu_registered = true;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct legacy_vcpu *
vcpu_get(struct legacy *l, unsigned vcpu)
{
	if (vcpu >= l->max_vcpus)
		return NULL;
	return ck_pr_load_ptr(&l->vcpu[vcpu]);
}

/* ------------------------------------------------------------------
 * The exclusive section (cpu_exec_start/end, start/end_exclusive).
 */
static void
exclusive_idle_locked(struct legacy *l)
{
	while (ck_pr_load_uint(&l->pending_cpus) != 0)
		pthread_cond_wait(&l->excl_resume, &l->excl_lock);
}

/* Publishes v's running flag; true when a section is pending. */
static bool
set_running(struct legacy *l, struct legacy_vcpu *v, unsigned running)
{
	ck_pr_store_uint(&v->running, running);
	/* The flag before the pending load (store-load, with the starter). */
	ck_pr_fence_memory();
	return ck_pr_load_uint(&l->pending_cpus) != 0;
}

static void
exec_start(struct legacy *l, struct legacy_vcpu *v)
{
	if (!set_running(l, v, 1))
		return;
	pthread_mutex_lock(&l->excl_lock);
	if (!v->has_waiter) {
		/* Not counted by the starter: stay out until it is done. */
		ck_pr_store_uint(&v->running, 0);
		exclusive_idle_locked(l);
		ck_pr_store_uint(&v->running, 1);
	}
	pthread_mutex_unlock(&l->excl_lock);
}

static void
exec_end(struct legacy *l, struct legacy_vcpu *v)
{
	if (!set_running(l, v, 0))
		return;
	pthread_mutex_lock(&l->excl_lock);
	if (v->has_waiter) {
		/* Counted by the starter: release it when the last one is out. */
		v->has_waiter = 0;
		ck_pr_store_uint(&l->pending_cpus, l->pending_cpus - 1);
		if (l->pending_cpus == 1)
			pthread_cond_signal(&l->excl_cond);
	}
	pthread_mutex_unlock(&l->excl_lock);
}

/* Returns once no vCPU of l is inside a slice; nests on one thread. */
static void
start_exclusive(struct legacy *l)
{
	unsigned i, n, running = 0;

	if (holds_section(l)) {
		l->excl_depth++;
		return;
	}
	pthread_mutex_lock(&l->excl_lock);
	exclusive_idle_locked(l);
	clock_gettime(CLOCK_MONOTONIC, &l->excl_t0);
	ck_pr_store_uint(&l->pending_cpus, 1);
	/* pending before the running loads (store-load, with exec_start/end). */
	ck_pr_fence_memory();
	n = ck_pr_load_uint(&l->n_slots);
	for (i = 0; i < n; i++) {
		struct legacy_vcpu *v = ck_pr_load_ptr(&l->vcpu[i]);

		if (v == NULL || ck_pr_load_uint(&v->running) == 0)
			continue;
		/* The kick after the running load it answers (load-store). */
		ck_pr_fence_load_store();
		v->has_waiter = 1;
		ck_pr_store_uint(&v->exit_request, 1);
		running++;
	}
	ck_pr_store_uint(&l->pending_cpus, running + 1);
	while (l->pending_cpus > 1)
		pthread_cond_wait(&l->excl_cond, &l->excl_lock);
	pthread_mutex_unlock(&l->excl_lock);
	ck_pr_store_ptr(&l->excl_owner, &self);
	l->excl_depth = 1;
	ck_pr_inc_64(&l->n_stop_the_world);
}

static void
end_exclusive(struct legacy *l)
{
	struct legacy_work *w;
	uint64_t stall;

	if (l->excl_depth > 1) {
		l->excl_depth--;
		return;
	}
	/* Work asked for during the section, before anyone resumes. */
	while ((w = l->later) != NULL) {
		l->later = w->next;
		if (l->later == NULL)
			l->later_tail = &l->later;
		w->fn(l, NULL, w);
		g_free(w);
	}
	l->excl_depth = 0;
	ck_pr_store_ptr(&l->excl_owner, NULL);
	pthread_mutex_lock(&l->excl_lock);
	stall = now_ns() - ((uint64_t)l->excl_t0.tv_sec * 1000000000u +
			    (uint64_t)l->excl_t0.tv_nsec);
	ck_pr_store_64(&l->stall_total_ns, l->stall_total_ns + stall);
	if (stall > l->stall_max_ns)
		ck_pr_store_64(&l->stall_max_ns, stall);
	ck_pr_store_uint(&l->pending_cpus, 0);
	pthread_cond_broadcast(&l->excl_resume);
	pthread_mutex_unlock(&l->excl_lock);
}

/* ------------------------------------------------------------------
 * Per-vCPU work queues (async_run_on_cpu, process_queued_cpu_work).
 */
static void
queue_work(struct legacy_vcpu *v, struct legacy_work *w)
{
	w->next = NULL;
	pthread_mutex_lock(&v->qlock);
	*v->tail = w;
	v->tail = &w->next;
	ck_pr_store_64(&v->n_work_queued, v->n_work_queued + 1);
	pthread_mutex_unlock(&v->qlock);
	ck_pr_store_uint(&v->exit_request, 1);
}

/* Runs v's queue; the calling thread must not be inside a slice. */
static void
drain(struct legacy *l, struct legacy_vcpu *v)
{
	struct legacy_work *w;

	for (;;) {
		pthread_mutex_lock(&v->qlock);
		w = v->head;
		if (w != NULL) {
			v->head = w->next;
			if (v->head == NULL)
				v->tail = &v->head;
		}
		pthread_mutex_unlock(&v->qlock);
		if (w == NULL)
			return;
		if (w->exclusive) {
			start_exclusive(l);
			w->fn(l, v, w);
			end_exclusive(l);
		} else {
			w->fn(l, v, w);
		}
		g_free(w);
	}
}

/*
 * Runs exclusive work: after the current work if the thread holds a
 * section, at the vCPU's next safepoint if it is in a slice, else now.
 */
static void
run_exclusive(struct legacy *l, struct legacy_work *w)
{
	w->exclusive = true;
	w->next = NULL;
	if (holds_section(l)) {
		*l->later_tail = w;
		l->later_tail = &w->next;
	} else if (self.l == l) {
		queue_work(self.v, w);
	} else {
		start_exclusive(l);
		w->fn(l, NULL, w);
		g_free(w);
		end_exclusive(l);
	}
}

static void
work_mask(struct legacy *l, struct legacy_vcpu *v, struct legacy_work *w)
{
	(void)l;
	ck_pr_store_64(&v->mask, w->mask);
	ck_pr_store_64(&v->n_mask_updates, v->n_mask_updates + 1);
}

/* Asks v to copy the global mask as it is now. */
static void
update_vcpu_locked(struct legacy *l, struct legacy_vcpu *v)
{
	struct legacy_work *w = g_new0(struct legacy_work, 1);

	w->fn = work_mask;
	w->mask = l->mask;
	queue_work(v, w);
}

static struct legacy_vcpu *
vcpu_of_key(gpointer key)
{
	return (struct legacy_vcpu *)(void *)((char *)key -
					      offsetof(struct legacy_vcpu, key));
}

static void
update_all_locked(struct legacy *l)
{
	GHashTableIter it;
	gpointer k;

	g_hash_table_iter_init(&it, l->cpu_ht);
	while (g_hash_table_iter_next(&it, &k, NULL))
		update_vcpu_locked(l, vcpu_of_key(k));
}

/* ------------------------------------------------------------------
 * Callback lists.
 */
static struct legacy_cb *
cb_at(struct legacy *l, enum qpd_event ev, struct cds_list_head *p)
{
	return p == &l->ev[ev] ? NULL : caa_container_of(p, struct legacy_cb,
							 node);
}

/* Walks ev's list, loading each successor before the entry's call. */
#define EACH_CB(L, E, cb, nx)                                               \
	for (struct legacy_cb *cb = cb_at(L, E, rcu_dereference(              \
					  (L)->ev[E].next)), *nx;           \
	     cb != NULL &&                                                  \
	     ((nx = cb_at(L, E, rcu_dereference(cb->node.next))), true);    \
	     cb = nx)

/* Calls every callback of ev as a `type`: (plugin id, args..., udata). */
#define CALL_EACH(L, E, type, ...)                                          \
	EACH_CB(L, E, cb_, nx_)                                              \
		((type)ck_pr_load_ptr(&cb_->fn))(cb_->ctx->id, __VA_ARGS__,   \
						 ck_pr_load_ptr(&cb_->udata))

static void
cb_free_rcu(struct rcu_head *h)
{
	g_free(caa_container_of(h, struct legacy_cb, rcu));
}

/*
 * Unlinks ctx's entry for ev.  `now`: the world is stopped, free it at once
 * (as QEMU always does); otherwise after a grace period.
 */
static void
unregister_locked(struct legacy *l, struct legacy_ctx *ctx,
		  enum qpd_event ev, bool now)
{
	struct legacy_cb *cb = ctx->cb[ev];

	if (cb == NULL)
		return;
	cds_list_del_rcu(&cb->node);
	ctx->cb[ev] = NULL;
	if (now) {
		g_free(cb);
	} else {
		urcu_memb_call_rcu(&cb->rcu, cb_free_rcu);
		l->n_deferred_frees++;
	}
	l->n_unregistrations++;
	if (cds_list_empty(&l->ev[ev])) {
		l->mask &= ~EV_BIT(ev);
		update_all_locked(l);
	}
}

static struct legacy_ctx *
ctx_find_locked(struct legacy *l, qpd_plugin_id id)
{
	return g_hash_table_lookup(l->id_ht, &id);
}

int
legacy_register_cb(struct legacy *l, qpd_plugin_id id, enum qpd_event ev,
		   void *fn, void *udata)
{
	struct legacy_ctx *ctx;
	struct legacy_cb *cb;
	int err = 0;

	if (l == NULL || (unsigned)ev >= QPD_EV_COUNT)
		return fail(l, -EINVAL);
	rcu_thread_ensure();
	pthread_mutex_lock(&l->lock);
	ctx = ctx_find_locked(l, id);
	if (ctx == NULL) {
		err = -ENOENT;
	} else if (ctx->uninstalling) {
		err = -ESHUTDOWN; /* QEMU ignores it silently */
	} else if (fn == NULL) {
		unregister_locked(l, ctx, ev, false);
	} else if ((cb = ctx->cb[ev]) != NULL) {
		/* In place, two separate stores, as QEMU does. */
		ck_pr_store_ptr(&cb->fn, fn);
		ck_pr_store_ptr(&cb->udata, udata);
		l->n_registrations++;
		l->n_replacements++;
	} else {
		cb = g_new0(struct legacy_cb, 1);
		cb->ctx = ctx;
		cb->fn = fn;
		cb->udata = udata;
		ctx->cb[ev] = cb;
		cds_list_add_rcu(&cb->node, &l->ev[ev]);
		l->n_registrations++;
		if ((l->mask & EV_BIT(ev)) == 0) {
			l->mask |= EV_BIT(ev);
			update_all_locked(l);
		}
	}
	pthread_mutex_unlock(&l->lock);
	return err == 0 ? 0 : fail(l, err);
}

/* ------------------------------------------------------------------
 * Walks outside slices.
 */

/* A walk's bracket: whether it is a slice of its own, and what it hid. */
struct walk {
	bool own;
	struct legacy *l;
	struct legacy_vcpu *v;
};

/*
 * Brackets a walk on v's thread made outside its slices as a short slice,
 * so no stop-the-world free can land under it.
 */
static struct walk
walk_begin(struct legacy *l, struct legacy_vcpu *v)
{
	struct walk w = { self.l != l && !holds_section(l), self.l, self.v };

	rcu_thread_ensure();
	if (w.own) {
		exec_start(l, v);
		self.l = l;
		self.v = v;
	}
	urcu_memb_read_lock();
	return w;
}

static void
walk_end(struct legacy *l, struct legacy_vcpu *v, struct walk w)
{
	urcu_memb_read_unlock();
	if (!w.own)
		return;
	self.l = w.l;
	self.v = w.v;
	exec_end(l, v);
	drain(l, v);
}

static void
vcpu_simple(struct legacy *l, struct legacy_vcpu *v, enum qpd_event ev)
{
	struct walk w = walk_begin(l, v);

	CALL_EACH(l, ev, qpd_vcpu_cb_t, v->index);
	walk_end(l, v, w);
}

/* A walk of a global event (FLUSH, ATEXIT) by a slice or section holder. */
static void
global_simple(struct legacy *l, enum qpd_event ev)
{
	urcu_memb_read_lock();
	EACH_CB(l, ev, cb, nx)
		((qpd_simple_cb_t)ck_pr_load_ptr(&cb->fn))(
		    cb->ctx->id, ck_pr_load_ptr(&cb->udata));
	urcu_memb_read_unlock();
}

/* ------------------------------------------------------------------
 * Flush, uninstall, reset, user exit.
 */

static void
free_dyns(struct legacy *l)
{
	unsigned i;

	for (i = 0; i < l->dyns->len; i++) {
		struct legacy_dyn *d = g_ptr_array_index(l->dyns, i);

		if (d->e != NULL)
			g_array_free(d->e, TRUE);
		g_free(d);
	}
	g_ptr_array_set_size(l->dyns, 0);
}

/* In a section: frees every dynamic list, runs FLUSH and on_flush. */
static void
flush_exclusive(struct legacy *l)
{
	pthread_mutex_lock(&l->dyn_lock);
	free_dyns(l);
	pthread_mutex_unlock(&l->dyn_lock);
	ck_pr_inc_64(&l->n_flushes);
	global_simple(l, QPD_EV_FLUSH);
	if (l->on_flush != NULL)
		l->on_flush(l->opaque);
}

static void
work_flush(struct legacy *l, struct legacy_vcpu *v, struct legacy_work *w)
{
	(void)v, (void)w;
	flush_exclusive(l);
}

void
legacy_flush(struct legacy *l)
{
	struct legacy_work *w;

	if (l == NULL)
		return;
	rcu_thread_ensure();
	w = g_new0(struct legacy_work, 1);
	w->fn = work_flush;
	run_exclusive(l, w);
}

static void
work_reset_destroy(struct legacy *l, struct legacy_vcpu *v,
		   struct legacy_work *w)
{
	struct legacy_ctx *ctx = w->ctx;
	qpd_plugin_id id = ctx->id;
	unsigned ev;

	(void)v;
	if (ck_pr_load_uint(&l->num_vcpus) > 0)
		flush_exclusive(l);
	pthread_mutex_lock(&l->lock);
	for (ev = 0; ev < QPD_EV_COUNT; ev++)
		unregister_locked(l, ctx, (enum qpd_event)ev, true);
	if (w->reset) {
		if (w->done != NULL)
			w->done(id, w->arg);
		ctx->resetting = false;
	} else {
		g_hash_table_remove(l->id_ht, &ctx->id);
		if (w->done != NULL)
			w->done(id, w->arg);
		g_free(ctx);
	}
	l->n_done_calls++;
	pthread_mutex_unlock(&l->lock);
}

static int
reset_uninstall(struct legacy *l, qpd_plugin_id id, qpd_done_fn done,
		void *arg, bool reset)
{
	struct legacy_ctx *ctx;
	struct legacy_work *w;
	int err = 0;

	if (l == NULL)
		return fail(l, -EINVAL);
	rcu_thread_ensure();
	pthread_mutex_lock(&l->lock);
	ctx = ctx_find_locked(l, id);
	if (ctx == NULL)
		err = -ENOENT;
	else if (ctx->uninstalling)
		err = reset ? -ESHUTDOWN : -EALREADY;
	else if (reset && ctx->resetting)
		err = -EALREADY;
	else if (reset)
		ctx->resetting = true;
	else
		ctx->uninstalling = true;
	pthread_mutex_unlock(&l->lock);
	if (err != 0)
		return fail(l, err);
	w = g_new0(struct legacy_work, 1);
	w->fn = work_reset_destroy;
	w->reset = reset;
	w->ctx = ctx;
	w->done = done;
	w->arg = arg;
	run_exclusive(l, w);
	return 0;
}

int
legacy_plugin_uninstall(struct legacy *l, qpd_plugin_id id, qpd_done_fn done,
			void *arg)
{
	return reset_uninstall(l, id, done, arg, false);
}

int
legacy_plugin_reset(struct legacy *l, qpd_plugin_id id, qpd_done_fn done,
		    void *arg)
{
	return reset_uninstall(l, id, done, arg, true);
}

void
legacy_atexit(struct legacy *l)
{
	if (l == NULL || ck_pr_fas_uint(&l->atexit_ran, 1) != 0)
		return;
	rcu_thread_ensure();
	if (self.l == l || holds_section(l)) {
		global_simple(l, QPD_EV_ATEXIT);
		return;
	}
	start_exclusive(l);
	global_simple(l, QPD_EV_ATEXIT);
	end_exclusive(l);
}

int
legacy_user_exit(struct legacy *l)
{
	unsigned ev;

	if (l == NULL)
		return fail(l, -EINVAL);
	if (self.l == l)
		return fail(l, -EBUSY);
	rcu_thread_ensure();
	start_exclusive(l);
	pthread_mutex_lock(&l->lock);
	for (ev = 0; ev < QPD_EV_COUNT; ev++) {
		if (ev == QPD_EV_ATEXIT)
			continue;
		while (!cds_list_empty(&l->ev[ev])) {
			struct legacy_cb *cb = cb_at(l, (enum qpd_event)ev,
						     l->ev[ev].next);

			unregister_locked(l, cb->ctx, (enum qpd_event)ev, true);
		}
	}
	pthread_mutex_unlock(&l->lock);
	flush_exclusive(l);
	end_exclusive(l);
	legacy_atexit(l);
	return 0;
}

/* ------------------------------------------------------------------
 * Instances and plugins.
 */
struct legacy *
legacy_new(const struct legacy_opts *opts)
{
	struct legacy_opts o = { 0 };
	pthread_mutexattr_t attr;
	struct legacy *l;
	unsigned ev;

	if (opts != NULL)
		o = *opts;
	if (o.max_vcpus == 0)
		o.max_vcpus = QPD_DEFAULT_MAX_VCPUS;
	if (o.max_vcpus > QPD_MAX_VCPUS_LIMIT) {
		errno = EINVAL;
		return NULL;
	}
	l = g_new0(struct legacy, 1);
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&l->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	for (ev = 0; ev < QPD_EV_COUNT; ev++)
		CDS_INIT_LIST_HEAD(&l->ev[ev]);
	l->id_ht = g_hash_table_new(g_int64_hash, g_int64_equal);
	l->cpu_ht = g_hash_table_new(g_int_hash, g_int_equal);
	l->scoreboards = g_hash_table_new(g_direct_hash, g_direct_equal);
	l->alloc = LEGACY_SCOREBOARD_INITIAL;
	l->mem_break = 1;
	l->max_vcpus = o.max_vcpus;
	l->vcpu = g_new0(struct legacy_vcpu *, o.max_vcpus);
	pthread_mutex_init(&l->excl_lock, NULL);
	pthread_cond_init(&l->excl_cond, NULL);
	pthread_cond_init(&l->excl_resume, NULL);
	l->later_tail = &l->later;
	pthread_mutex_init(&l->dyn_lock, NULL);
	l->dyns = g_ptr_array_new();
	l->on_flush = o.on_flush;
	l->opaque = o.opaque;
	return l;
}

static void
free_value(gpointer key, gpointer value, gpointer unused)
{
	(void)key, (void)unused;
	g_free(value);
}

static void
free_scoreboard(gpointer key, gpointer value, gpointer unused)
{
	struct legacy_scoreboard *sb = key;

	(void)value, (void)unused;
	g_array_free(sb->data, TRUE);
	g_free(sb);
}

void
legacy_free(struct legacy *l)
{
	struct legacy_work *w;
	unsigned i, ev;

	if (l == NULL)
		return;
	rcu_thread_ensure();
	for (i = 0; i < l->n_slots; i++)
		if (l->vcpu[i] != NULL)
			drain(l, l->vcpu[i]);
	for (ev = 0; ev < QPD_EV_COUNT; ev++) {
		while (!cds_list_empty(&l->ev[ev])) {
			struct legacy_cb *cb = cb_at(l, (enum qpd_event)ev,
						     l->ev[ev].next);

			cds_list_del(&cb->node);
			g_free(cb);
		}
	}
	g_hash_table_foreach(l->id_ht, free_value, NULL);
	g_hash_table_destroy(l->id_ht);
	g_hash_table_destroy(l->cpu_ht);
	g_hash_table_foreach(l->scoreboards, free_scoreboard, NULL);
	g_hash_table_destroy(l->scoreboards);
	free_dyns(l);
	g_ptr_array_free(l->dyns, TRUE);
	for (i = 0; i < l->n_slots; i++) {
		struct legacy_vcpu *v = l->vcpu[i];

		if (v == NULL)
			continue;
		while ((w = v->head) != NULL) {
			v->head = w->next;
			g_free(w);
		}
		pthread_mutex_destroy(&v->qlock);
		g_aligned_free(v);
	}
	g_free(l->vcpu);
	pthread_mutex_destroy(&l->dyn_lock);
	pthread_cond_destroy(&l->excl_resume);
	pthread_cond_destroy(&l->excl_cond);
	pthread_mutex_destroy(&l->excl_lock);
	pthread_mutex_destroy(&l->lock);
	g_free(l);
}

int
legacy_plugin_add(struct legacy *l, qpd_plugin_id *out)
{
	struct legacy_ctx *ctx;

	if (l == NULL || out == NULL)
		return fail(l, -EINVAL);
	ctx = g_new0(struct legacy_ctx, 1);
	pthread_mutex_lock(&l->lock);
	ctx->id = ++l->last_id;
	g_hash_table_insert(l->id_ht, &ctx->id, ctx);
	pthread_mutex_unlock(&l->lock);
	*out = ctx->id;
	return 0;
}

/* ------------------------------------------------------------------
 * vCPUs.
 */

/* Resizes every scoreboard for index vcpu, the world stopped. */
static void
grow_scoreboards(struct legacy *l, unsigned vcpu)
{
	GHashTableIter it;
	gpointer k;
	bool moved = false;

	start_exclusive(l);
	pthread_mutex_lock(&l->lock);
	if (vcpu >= l->alloc) {
		while (vcpu >= l->alloc)
			l->alloc *= 2;
		g_hash_table_iter_init(&it, l->scoreboards);
		while (g_hash_table_iter_next(&it, &k, NULL)) {
			struct legacy_scoreboard *sb = k;

			g_array_set_size(sb->data, l->alloc);
			moved = true;
		}
		if (moved)
			l->n_growths++;
	}
	pthread_mutex_unlock(&l->lock);
	/* Translated code holds the old addresses: retranslate everything. */
	if (moved)
		flush_exclusive(l);
	end_exclusive(l);
}

static struct legacy_vcpu *
vcpu_create_locked(struct legacy *l, unsigned vcpu)
{
	struct legacy_vcpu *v = g_aligned_alloc0(1, sizeof(*v), 64);

	v->index = vcpu;
	v->key = (gint)vcpu;
	pthread_mutex_init(&v->qlock, NULL);
	v->tail = &v->head;
	/* The block's contents before its pointer (store-store). */
	ck_pr_fence_store();
	ck_pr_store_ptr(&l->vcpu[vcpu], v);
	if (vcpu >= l->n_slots)
		ck_pr_store_uint(&l->n_slots, vcpu + 1);
	return v;
}

/*
 * Checks an init or exit request from outside l's slices; on success takes
 * the lock and sets *v to the index's block (NULL if never created).
 */
static int
vcpu_lock(struct legacy *l, unsigned vcpu, struct legacy_vcpu **v)
{
	if (l == NULL || vcpu >= l->max_vcpus)
		return fail(l, -EINVAL);
	if (self.l == l)
		return fail(l, -EBUSY);
	rcu_thread_ensure();
	pthread_mutex_lock(&l->lock);
	*v = l->vcpu[vcpu];
	return 0;
}

int
legacy_vcpu_init(struct legacy *l, unsigned vcpu)
{
	struct legacy_vcpu *v;
	bool grow;
	int err = vcpu_lock(l, vcpu, &v);

	if (err != 0)
		return err;
	if (v != NULL && v->online) {
		pthread_mutex_unlock(&l->lock);
		return fail(l, -EEXIST);
	}
	if (v == NULL)
		v = vcpu_create_locked(l, vcpu);
	if (vcpu >= l->num_vcpus)
		ck_pr_store_uint(&l->num_vcpus, vcpu + 1);
	update_vcpu_locked(l, v);
	g_hash_table_insert(l->cpu_ht, &v->key, &v->key);
	ck_pr_store_uint(&v->online, 1);
	grow = vcpu >= l->alloc;
	if (grow && g_hash_table_size(l->scoreboards) == 0) {
		/* No scoreboard to move: only later ones get the new size. */
		while (vcpu >= l->alloc)
			l->alloc *= 2;
		grow = false;
	}
	pthread_mutex_unlock(&l->lock);
	if (grow)
		grow_scoreboards(l, vcpu);
	vcpu_simple(l, v, QPD_EV_VCPU_INIT);
	return 0;
}

int
legacy_vcpu_exit(struct legacy *l, unsigned vcpu)
{
	struct legacy_vcpu *v;
	bool online;
	int err;

	if ((err = vcpu_lock(l, vcpu, &v)) != 0)
		return err;
	online = v != NULL && v->online;
	pthread_mutex_unlock(&l->lock);
	if (!online)
		return fail(l, -ENOENT);
	vcpu_simple(l, v, QPD_EV_VCPU_EXIT);
	pthread_mutex_lock(&l->lock);
	g_hash_table_remove(l->cpu_ht, &v->key);
	ck_pr_store_uint(&v->online, 0);
	pthread_mutex_unlock(&l->lock);
	drain(l, v);
	return 0;
}

static void
idle_resume(struct legacy *l, unsigned vcpu, enum qpd_event ev)
{
	struct legacy_vcpu *v;

	/* May come before init: ignored below num_vcpus, as QEMU does. */
	if (l == NULL || vcpu >= ck_pr_load_uint(&l->num_vcpus))
		return;
	v = vcpu_get(l, vcpu);
	if (v != NULL)
		vcpu_simple(l, v, ev);
}

void
legacy_vcpu_idle(struct legacy *l, unsigned vcpu)
{
	idle_resume(l, vcpu, QPD_EV_VCPU_IDLE);
}

void
legacy_vcpu_resume(struct legacy *l, unsigned vcpu)
{
	idle_resume(l, vcpu, QPD_EV_VCPU_RESUME);
}

bool
legacy_vcpu_enter(struct legacy *l, unsigned vcpu)
{
	struct legacy_vcpu *v;

	if (l == NULL || self.l != NULL || holds_section(l))
		return false;
	v = vcpu_get(l, vcpu);
	if (v == NULL || ck_pr_load_uint(&v->online) == 0)
		return false;
	rcu_thread_ensure();
	ck_pr_store_uint(&v->exit_request, 0);
	/* The clear before running = 1 (store-store): a kick lands after it. */
	ck_pr_fence_store();
	drain(l, v);
	exec_start(l, v);
	self.l = l;
	self.v = v;
	urcu_memb_read_lock();
	return true;
}

void
legacy_vcpu_leave(struct legacy *l, unsigned vcpu)
{
	struct legacy_vcpu *v;

	if (l == NULL || self.l != l)
		return;
	v = vcpu_get(l, vcpu);
	if (v == NULL || self.v != v)
		return;
	urcu_memb_read_unlock();
	self.l = NULL;
	self.v = NULL;
	exec_end(l, v);
	drain(l, v);
}

void
legacy_vcpu_safepoint(struct legacy *l, unsigned vcpu)
{
	struct legacy_vcpu *v = vcpu_get(l, vcpu);

	if (v == NULL || ck_pr_load_uint(&v->exit_request) == 0 ||
	    self.v != v)
		return;
	legacy_vcpu_leave(l, vcpu);
	legacy_vcpu_enter(l, vcpu);
}

unsigned
legacy_num_vcpus(struct legacy *l)
{
	return l == NULL ? 0 : ck_pr_load_uint(&l->num_vcpus);
}

int
legacy_vcpu_for_each(struct legacy *l, qpd_plugin_id id,
		     void (*cb)(qpd_plugin_id id, unsigned vcpu))
{
	GHashTableIter it;
	gpointer k;
	int err = 0;

	if (l == NULL || cb == NULL)
		return fail(l, -EINVAL);
	pthread_mutex_lock(&l->lock);
	if (ctx_find_locked(l, id) == NULL) {
		err = -ENOENT;
	} else {
		g_hash_table_iter_init(&it, l->cpu_ht);
		while (g_hash_table_iter_next(&it, &k, NULL))
			cb(id, (unsigned)*(gint *)k);
	}
	pthread_mutex_unlock(&l->lock);
	return err == 0 ? 0 : fail(l, err);
}

/* ------------------------------------------------------------------
 * Dispatch inside slices.
 */
static bool
masked_in(struct legacy *l, unsigned vcpu, enum qpd_event ev)
{
	struct legacy_vcpu *v = vcpu_get(l, vcpu);

	return v != NULL && (ck_pr_load_64(&v->mask) & EV_BIT(ev)) != 0;
}

void
legacy_tb_trans(struct legacy *l, unsigned vcpu, void *tb)
{
	if (masked_in(l, vcpu, QPD_EV_VCPU_TB_TRANS))
		CALL_EACH(l, QPD_EV_VCPU_TB_TRANS, qpd_tb_trans_cb_t, vcpu, tb);
}

void
legacy_syscall(struct legacy *l, unsigned vcpu, int64_t num,
	       const uint64_t args[8])
{
	if (masked_in(l, vcpu, QPD_EV_VCPU_SYSCALL))
		CALL_EACH(l, QPD_EV_VCPU_SYSCALL, qpd_syscall_cb_t, vcpu, num,
			  args);
}

void
legacy_syscall_ret(struct legacy *l, unsigned vcpu, int64_t num, int64_t ret)
{
	if (masked_in(l, vcpu, QPD_EV_VCPU_SYSCALL_RET))
		CALL_EACH(l, QPD_EV_VCPU_SYSCALL_RET, qpd_syscall_ret_cb_t, vcpu,
			  num, ret);
}

bool
legacy_syscall_filter(struct legacy *l, unsigned vcpu, int64_t num,
		      const uint64_t args[8], uint64_t *sysret)
{
	if (!masked_in(l, vcpu, QPD_EV_VCPU_SYSCALL_FILTER))
		return false;
	EACH_CB(l, QPD_EV_VCPU_SYSCALL_FILTER, cb, nx) {
		if (((qpd_syscall_filter_cb_t)ck_pr_load_ptr(&cb->fn))(
			cb->ctx->id, vcpu, num, args, sysret,
			ck_pr_load_ptr(&cb->udata)))
			return true;
	}
	return false;
}

void
legacy_discon(struct legacy *l, unsigned vcpu, enum qpd_discon_type type,
	      uint64_t from, uint64_t to)
{
	static const enum qpd_event by_type[] = {
		[QPD_DISCON_INTERRUPT] = QPD_EV_VCPU_INTERRUPT,
		[QPD_DISCON_EXCEPTION] = QPD_EV_VCPU_EXCEPTION,
		[QPD_DISCON_HOSTCALL] = QPD_EV_VCPU_HOSTCALL,
	};
	enum qpd_event ev;

	if ((unsigned)type >= G_N_ELEMENTS(by_type) ||
	    vcpu >= ck_pr_load_uint(&l->num_vcpus))
		return;
	ev = by_type[type];
	if (ev == QPD_EV_VCPU_INIT) /* a hole in the table */
		return;
	CALL_EACH(l, ev, qpd_discon_cb_t, vcpu, type, from, to);
}

/* ------------------------------------------------------------------
 * Scoreboards.
 */
struct legacy_scoreboard *
legacy_scoreboard_new(struct legacy *l, size_t elem_size)
{
	struct legacy_scoreboard *sb;

	if (l == NULL || elem_size == 0 ||
	    elem_size > QPD_SCOREBOARD_MAX_ELEM) {
		fail(l, -EINVAL);
		errno = EINVAL;
		return NULL;
	}
	sb = g_new0(struct legacy_scoreboard, 1);
	sb->elem_size = elem_size;
	sb->l = l;
	sb->data = g_array_new(FALSE, TRUE, (guint)elem_size);
	pthread_mutex_lock(&l->lock);
	g_array_set_size(sb->data, l->alloc);
	g_hash_table_add(l->scoreboards, sb);
	pthread_mutex_unlock(&l->lock);
	return sb;
}

int
legacy_scoreboard_free(struct legacy *l, struct legacy_scoreboard *sb)
{
	bool found;

	if (l == NULL || sb == NULL)
		return fail(l, -EINVAL);
	pthread_mutex_lock(&l->lock);
	found = g_hash_table_remove(l->scoreboards, sb);
	pthread_mutex_unlock(&l->lock);
	if (!found)
		return fail(l, -ENOENT);
	g_array_free(sb->data, TRUE);
	g_free(sb);
	return 0;
}

void *
legacy_scoreboard_find(struct legacy_scoreboard *sb, unsigned vcpu)
{
	if (sb == NULL || vcpu >= sb->data->len)
		return NULL;
	return sb->data->data + (size_t)vcpu * sb->elem_size;
}

/* exec_inline_op's address: the array's current data, element size. */
static uint64_t *
entry_slot(legacy_u64 e, unsigned vcpu)
{
	GArray *a = e.score->data;

	return (uint64_t *)(void *)(a->data + e.offset +
				    (size_t)vcpu * g_array_get_element_size(a));
}

uint64_t
legacy_u64_get(legacy_u64 e, unsigned vcpu)
{
	struct legacy *l = e.score->l;
	uint64_t v = 0;

	pthread_mutex_lock(&l->lock);
	if (vcpu < e.score->data->len)
		v = *entry_slot(e, vcpu);
	pthread_mutex_unlock(&l->lock);
	return v;
}

void
legacy_u64_set(legacy_u64 e, unsigned vcpu, uint64_t v)
{
	struct legacy *l = e.score->l;

	pthread_mutex_lock(&l->lock);
	if (vcpu < e.score->data->len)
		*entry_slot(e, vcpu) = v;
	pthread_mutex_unlock(&l->lock);
}

uint64_t
legacy_u64_sum(legacy_u64 e)
{
	struct legacy *l = e.score->l;
	uint64_t sum = 0;
	unsigned i, n;

	pthread_mutex_lock(&l->lock);
	n = MIN(l->num_vcpus, e.score->data->len);
	for (i = 0; i < n; i++)
		sum += *entry_slot(e, i);
	pthread_mutex_unlock(&l->lock);
	return sum;
}

/* ------------------------------------------------------------------
 * Dynamic lists.
 */
struct legacy_dyn *
legacy_dyn_new(struct legacy *l)
{
	struct legacy_dyn *d;

	if (l == NULL) {
		errno = EINVAL;
		return NULL;
	}
	d = g_new0(struct legacy_dyn, 1);
	d->l = l;
	pthread_mutex_lock(&l->dyn_lock);
	g_ptr_array_add(l->dyns, d);
	pthread_mutex_unlock(&l->dyn_lock);
	return d;
}

/* Appends a copy of *e, growing the array by one (plugin_get_dyn_cb). */
static int
dyn_push(struct legacy_dyn *d, struct legacy_dyn_entry e)
{
	if (d->e == NULL)
		d->e = g_array_sized_new(FALSE, FALSE, sizeof(e), 1);
	g_array_set_size(d->e, d->e->len + 1);
	g_array_index(d->e, struct legacy_dyn_entry, d->e->len - 1) = e;
	return 0;
}

static int
dyn_einval(struct legacy_dyn *d)
{
	return fail(d != NULL ? d->l : NULL, -EINVAL);
}

/* An entry's counter must be an aligned u64 inside the element. */
static bool
entry_ok(legacy_u64 entry)
{
	return entry.score != NULL && entry.offset % sizeof(uint64_t) == 0 &&
	       entry.offset + sizeof(uint64_t) <= entry.score->elem_size;
}

static bool
rw_ok(enum qpd_mem_rw rw)
{
	return rw == QPD_MEM_R || rw == QPD_MEM_W || rw == QPD_MEM_RW;
}

static bool
op_ok(enum qpd_inline_op op)
{
	return op == QPD_OP_ADD_U64 || op == QPD_OP_STORE_U64;
}

int
legacy_dyn_add_cb(struct legacy_dyn *list, qpd_dyn_cb_t fn, void *udata)
{
	if (list == NULL || fn == NULL)
		return dyn_einval(list);
	return dyn_push(list, (struct legacy_dyn_entry){
		.kind = QPD_DYN_CB, .fn = (void *)fn, .udata = udata });
}

int
legacy_dyn_add_inline(struct legacy_dyn *list, enum qpd_inline_op op,
		      legacy_u64 entry, uint64_t imm)
{
	if (list == NULL || !op_ok(op) || !entry_ok(entry))
		return dyn_einval(list);
	return dyn_push(list, (struct legacy_dyn_entry){
		.kind = QPD_DYN_INLINE, .op = (uint8_t)op, .entry = entry,
		.imm = imm });
}

int
legacy_dyn_add_mem_inline(struct legacy_dyn *list, enum qpd_mem_rw rw,
			  enum qpd_inline_op op, legacy_u64 entry,
			  uint64_t imm)
{
	if (list == NULL || !rw_ok(rw) || !op_ok(op) || !entry_ok(entry))
		return dyn_einval(list);
	return dyn_push(list, (struct legacy_dyn_entry){
		.kind = QPD_DYN_MEM_INLINE, .rw = (uint8_t)rw, .op = (uint8_t)op,
		.entry = entry, .imm = imm });
}

int
legacy_dyn_add_cond_cb(struct legacy_dyn *list, qpd_dyn_cb_t fn, void *udata,
		       enum qpd_cond cond, legacy_u64 entry, uint64_t imm)
{
	if (list == NULL || fn == NULL || (unsigned)cond > QPD_COND_GE ||
	    !entry_ok(entry))
		return dyn_einval(list);
	if (cond == QPD_COND_NEVER)
		return 0;
	if (cond == QPD_COND_ALWAYS)
		return legacy_dyn_add_cb(list, fn, udata);
	return dyn_push(list, (struct legacy_dyn_entry){
		.kind = QPD_DYN_COND_CB, .cond = (uint8_t)cond, .fn = (void *)fn,
		.udata = udata, .entry = entry, .imm = imm });
}

int
legacy_dyn_add_mem_cb(struct legacy_dyn *list, qpd_mem_cb_t fn,
		      enum qpd_mem_rw rw, void *udata)
{
	if (list == NULL || fn == NULL || !rw_ok(rw))
		return dyn_einval(list);
	return dyn_push(list, (struct legacy_dyn_entry){
		.kind = QPD_DYN_MEM_CB, .rw = (uint8_t)rw, .fn = (void *)fn,
		.udata = udata });
}

static void
exec_inline(const struct legacy_dyn_entry *e, unsigned vcpu)
{
	uint64_t *p = entry_slot(e->entry, vcpu);

	if (e->op == QPD_OP_ADD_U64)
		*p += e->imm;
	else
		*p = e->imm;
}

/*
 * Translated code compiles a condition into a branch over the call, taken
 * on the inverse condition; true when the call is skipped.
 */
static bool
branch_over(uint8_t cond, uint64_t v, uint64_t imm)
{
	int cmp = (v > imm) - (v < imm);

	switch (cond) {
	case QPD_COND_EQ:
		return cmp != 0;
	case QPD_COND_NE:
		return cmp == 0;
	case QPD_COND_LT:
		return cmp >= 0;
	case QPD_COND_LE:
		return cmp > 0;
	case QPD_COND_GT:
		return cmp <= 0;
	default: /* QPD_COND_GE: the only other kind stored */
		return cmp < 0;
	}
}

/* A list's entries and their count (none before the first append). */
static const struct legacy_dyn_entry *
entries(const struct legacy_dyn *list, unsigned *n)
{
	*n = list->e != NULL ? list->e->len : 0;
	return *n != 0 ? (const void *)list->e->data : NULL;
}

void
legacy_dyn_exec(const struct legacy_dyn *list, unsigned vcpu)
{
	unsigned n, i;
	const struct legacy_dyn_entry *e = entries(list, &n);

	for (i = 0; i < n; i++, e++) {
		if (e->kind == QPD_DYN_INLINE)
			exec_inline(e, vcpu);
		else if (e->kind == QPD_DYN_CB ||
			 (e->kind == QPD_DYN_COND_CB &&
			  !branch_over(e->cond, *entry_slot(e->entry, vcpu),
				       e->imm)))
			((qpd_dyn_cb_t)e->fn)(vcpu, e->udata);
	}
}

void
legacy_dyn_exec_mem(const struct legacy_dyn *list, unsigned vcpu,
		    uint64_t vaddr, uint32_t meminfo, enum qpd_mem_rw rw)
{
	bool stop = ck_pr_load_uint(&list->l->mem_break) != 0;
	unsigned n, i;
	const struct legacy_dyn_entry *e = entries(list, &n);

	for (i = 0; i < n; i++, e++) {
		if ((e->rw & (unsigned)rw) == 0) {
			if (stop)
				break; /* QEMU 9.0's qemu_plugin_vcpu_mem_cb */
			continue;
		}
		if (e->kind == QPD_DYN_MEM_CB)
			((qpd_mem_cb_t)e->fn)(vcpu, meminfo, vaddr, e->udata);
		else
			exec_inline(e, vcpu);
	}
}

void
legacy_set_mem_break(struct legacy *l, bool stop_at_mismatch)
{
	if (l != NULL)
		ck_pr_store_uint(&l->mem_break, stop_at_mismatch);
}

/* ------------------------------------------------------------------
 * Statistics.
 */
int
legacy_stats_get(struct legacy *l, struct legacy_stats *st)
{
	unsigned i, n;

	if (l == NULL || st == NULL)
		return fail(l, -EINVAL);
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&l->lock);
	st->n_registrations = l->n_registrations;
	st->n_replacements = l->n_replacements;
	st->n_unregistrations = l->n_unregistrations;
	st->n_deferred_frees = l->n_deferred_frees;
	st->n_done_calls = l->n_done_calls;
	st->n_plugins = g_hash_table_size(l->id_ht);
	st->n_vcpus_online = g_hash_table_size(l->cpu_ht);
	st->n_vcpus = l->num_vcpus;
	st->n_growths = l->n_growths;
	st->scoreboard_alloc = l->alloc;
	pthread_mutex_unlock(&l->lock);
	st->n_errors = ck_pr_load_64(&l->n_errors);
	st->n_flushes = ck_pr_load_64(&l->n_flushes);
	st->n_stop_the_world = ck_pr_load_64(&l->n_stop_the_world);
	st->stall_max_ns = ck_pr_load_64(&l->stall_max_ns);
	st->stall_total_ns = ck_pr_load_64(&l->stall_total_ns);
	n = ck_pr_load_uint(&l->n_slots);
	for (i = 0; i < n; i++) {
		struct legacy_vcpu *v = ck_pr_load_ptr(&l->vcpu[i]);

		if (v == NULL)
			continue;
		st->n_work_queued += ck_pr_load_64(&v->n_work_queued);
		st->n_mask_updates += ck_pr_load_64(&v->n_mask_updates);
	}
	return 0;
}
