/*
 * qpd/core.h - instances, plugins, events, errors and statistics.
 *
 * Every slow-path function returns 0 or a negative errno and never aborts
 * on caller error; it calls the optional error hook of the instance first.
 * No function in this header may be called while the caller holds a lock
 * that a qpd callback could also take.
 */
#ifndef QPD_CORE_H
#define QPD_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ck_pr.h>

/*
 * ThreadSanitizer builds (meson -Dsanitize=thread, or an embedder compiled
 * with -fsanitize=thread).  ck_pr's loads, stores and read-modify-writes
 * are inline assembly, which TSan does not see: every publication (an
 * array filled, then its pointer stored) would read as a race.  In these
 * builds alone, qpd's own uses of them become C11 acquire loads, release
 * stores and acq_rel read-modify-writes -- the order x86's TSO gives the
 * assembly anyway -- and the epoch's grace period is told to TSan: each
 * section's end releases, each reclamation callback acquires, one sync
 * object for all instances (an over-approximation that can hide no free
 * during a section: that section has not released yet).  ck headers with
 * inline code on shared words (ck_epoch, ck_stack, ck_sequence) are
 * included after these forms, so their code uses them too.
 */
#if defined(__SANITIZE_THREAD__)
#define QPD_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define QPD_TSAN 1
#endif
#endif

#ifdef QPD_TSAN
#include <sanitizer/tsan_interface.h>
extern char qpd__tsan_grace;
#define QPD_TSAN_GRACE_END() __tsan_release(&qpd__tsan_grace)
#define QPD_TSAN_GRACE_PASSED() __tsan_acquire(&qpd__tsan_grace)
#undef ck_pr_load_ptr
#undef ck_pr_store_ptr
#undef ck_pr_load_uint
#undef ck_pr_store_uint
#undef ck_pr_load_int
#undef ck_pr_store_int
#undef ck_pr_load_64
#undef ck_pr_store_64
#define QPD__LD(t) __atomic_load_n((t), __ATOMIC_ACQUIRE)
#define QPD__ST(t, v) __atomic_store_n((t), (v), __ATOMIC_RELEASE)
#define ck_pr_load_ptr(t) __atomic_load_n((void **)(t), __ATOMIC_ACQUIRE)
#define ck_pr_store_ptr(t, v) \
	__atomic_store_n((void **)(t), (void *)(v), __ATOMIC_RELEASE)
#define ck_pr_load_uint(t) QPD__LD((const unsigned *)(t))
#define ck_pr_store_uint(t, v) QPD__ST((unsigned *)(t), (unsigned)(v))
#define ck_pr_load_int(t) QPD__LD((const int *)(t))
#define ck_pr_store_int(t, v) QPD__ST((int *)(t), (int)(v))
#define ck_pr_load_64(t) QPD__LD((const uint64_t *)(t))
#define ck_pr_store_64(t, v) QPD__ST((uint64_t *)(t), (uint64_t)(v))
#define ck_pr_inc_64(t) \
	((void)__atomic_fetch_add((uint64_t *)(t), 1, __ATOMIC_ACQ_REL))
#define ck_pr_fas_uint(t, v) \
	__atomic_exchange_n((unsigned *)(t), (unsigned)(v), __ATOMIC_ACQ_REL)
#define ck_pr_cas_uint(t, c, s) \
	__extension__({ unsigned qpd__c = (c); \
		__atomic_compare_exchange_n((unsigned *)(t), &qpd__c, (s), false, \
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE); })
#define ck_pr_fas_ptr(t, v) \
	__atomic_exchange_n((void **)(t), (void *)(v), __ATOMIC_ACQ_REL)
#define ck_pr_cas_ptr(t, c, s) \
	__extension__({ void *qpd__c = (void *)(c); \
		__atomic_compare_exchange_n((void **)(t), &qpd__c, (void *)(s), \
					    false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE); })
#define ck_pr_cas_ptr_value(t, c, s, v) \
	__extension__({ *(void **)(v) = (void *)(c); \
		__atomic_compare_exchange_n((void **)(t), (void **)(v), (void *)(s), \
					    false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE); })
#define ck_pr_cas_uint_value(t, c, s, v) \
	__extension__({ *(v) = (c); \
		__atomic_compare_exchange_n((unsigned *)(t), (v), (s), false, \
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE); })
#else
#define QPD_TSAN_GRACE_END() ((void)0)
#define QPD_TSAN_GRACE_PASSED() ((void)0)
#endif

/* After the forms above: ck_epoch's inline code and ck_stack's use them. */
#include <ck_bitmap.h>
#include <ck_epoch.h>

/* Ends an epoch section (see QPD_TSAN above for the sanitizer's part). */
static inline void
qpd__epoch_end(ck_epoch_record_t *rec)
{
	QPD_TSAN_GRACE_END();
	ck_epoch_end(rec, NULL);
}

#ifdef __cplusplus
extern "C" {
#endif

/* A plugin's identity: unique and non-zero for the life of its instance. */
typedef uint64_t qpd_plugin_id;

struct qpd;

/* Events a plugin can subscribe to; the values are stable. */
enum qpd_event {
	QPD_EV_VCPU_INIT = 0,
	QPD_EV_VCPU_EXIT,
	QPD_EV_VCPU_IDLE,
	QPD_EV_VCPU_RESUME,
	QPD_EV_VCPU_TB_TRANS,
	QPD_EV_VCPU_SYSCALL,
	QPD_EV_VCPU_SYSCALL_RET,
	QPD_EV_FLUSH,
	QPD_EV_ATEXIT,
	QPD_EV_VCPU_INTERRUPT,
	QPD_EV_VCPU_EXCEPTION,
	QPD_EV_VCPU_HOSTCALL,
	QPD_EV_VCPU_SYSCALL_FILTER,
	QPD_EV_COUNT /* number of events defined today */
};

/* Every event mask has room for this many events. */
#define QPD_EV_CAPACITY 64

/* Kinds of control-flow discontinuity reported through qpd_discon(). */
enum qpd_discon_type {
	QPD_DISCON_INTERRUPT = 1,
	QPD_DISCON_EXCEPTION = 2,
	QPD_DISCON_HOSTCALL = 4,
};

/*
 * Callback signatures, by event.  udata is the pointer given at
 * registration; the (fn, udata) pair a callback sees is always one that was
 * registered together.
 */
typedef void (*qpd_vcpu_cb_t)(qpd_plugin_id id, unsigned vcpu, void *udata);
typedef void (*qpd_tb_trans_cb_t)(qpd_plugin_id id, unsigned vcpu, void *tb,
				  void *udata);
typedef void (*qpd_syscall_cb_t)(qpd_plugin_id id, unsigned vcpu, int64_t num,
				 const uint64_t args[8], void *udata);
typedef void (*qpd_syscall_ret_cb_t)(qpd_plugin_id id, unsigned vcpu,
				     int64_t num, int64_t ret, void *udata);
typedef bool (*qpd_syscall_filter_cb_t)(qpd_plugin_id id, unsigned vcpu,
					int64_t num, const uint64_t args[8],
					uint64_t *sysret, void *udata);
typedef void (*qpd_discon_cb_t)(qpd_plugin_id id, unsigned vcpu,
				enum qpd_discon_type type, uint64_t from,
				uint64_t to, void *udata);
typedef void (*qpd_simple_cb_t)(qpd_plugin_id id, void *udata);

/* Called after a plugin's callbacks are gone and no thread can be in one. */
typedef void (*qpd_done_fn)(qpd_plugin_id id, void *arg);

struct qpd_config {
	/* vCPU indices are 0 .. max_vcpus - 1; 0 means QPD_DEFAULT_MAX_VCPUS. */
	unsigned max_vcpus;
	/*
	 * Run a reclaimer thread that frees retired memory and calls `done`
	 * hooks.  When false the embedder drives reclamation with
	 * qpd_reclaim().
	 */
	bool no_reclaimer_thread;
	/*
	 * Reclamation work (memory or a `done` hook) was queued: lets an
	 * embedder without the reclaimer thread schedule a qpd_reclaim() on a
	 * thread of its own.  Called with qpd's writer lock held, possibly
	 * many times per reclaim: it must not call qpd, only schedule.
	 * (Why an embedder may want this: with glibc, the first free() on a
	 * thread gives it a malloc arena, 64 MiB of address space that counts
	 * against RLIMIT_AS.)
	 */
	void (*on_reclaim_pending_locked)(void *opaque);
	/* A vCPU's event mask changed; called with no qpd lock held. */
	void (*on_mask_change)(unsigned vcpu, void *opaque);
	/* A slow path is about to return err (< 0); called with no lock held. */
	void (*on_error)(int err, const char *func, void *opaque);
	void *opaque;
	/*
	 * Alignment of each scoreboard's slot: 0 means 8 (packed like an
	 * array; one vCPU's slots never share a line with another's anyway).
	 */
	unsigned slot_align;
};

#define QPD_DEFAULT_MAX_VCPUS 8192u
#define QPD_MAX_VCPUS_LIMIT (1u << 24)

struct qpd_stats {
	uint64_t n_dispatch[QPD_EV_COUNT]; /* callback-list walks per event */
	uint64_t n_registrations;          /* callbacks added or replaced */
	uint64_t n_unregistrations;        /* callbacks removed */
	uint64_t n_grace_periods;          /* epoch advances observed */
	uint64_t n_reclaimed;              /* deferred objects reclaimed */
	uint64_t n_pending_reclaim;        /* deferred objects still waiting */
	uint64_t n_done_calls;             /* uninstalls and resets completed */
	uint64_t n_plugins;                /* plugins known (incl. uninstalling) */
	uint64_t n_vcpus_online;           /* vCPUs between init and exit */
	uint64_t n_vcpus;                  /* qpd_num_vcpus() */
	uint64_t n_errors;                 /* slow-path calls that failed */
	uint64_t n_scoreboards;            /* live scoreboards */
	uint64_t n_sb_arenas;              /* scoreboard arenas mapped */
	uint64_t sb_capacity;              /* vCPU indices with slots */
	uint64_t n_sb_grown;               /* arenas grown in place */
	uint64_t n_sb_moved;               /* arenas moved: the fallback */
};

/*
 * Creates an instance (cfg NULL = defaults); NULL with errno EINVAL (bad
 * max_vcpus or slot_align) or ENOMEM (or EAGAIN: no reclaimer thread).
 */
struct qpd *qpd_new(const struct qpd_config *cfg);

/*
 * Destroys an instance, first calling every pending `done` hook; no other
 * thread may use q and no vCPU may be inside a slice.
 */
void qpd_free(struct qpd *q);

/* Returns a static description of a qpd error code (negative errno). */
const char *qpd_strerror(int err);

/*
 * Adds a plugin; *out gets its id (ids grow in add order).  -EINVAL (NULL
 * argument), -ENOMEM.
 */
int qpd_plugin_add(struct qpd *q, qpd_plugin_id *out);

/*
 * Starts removing a plugin: its registrations are refused from now on, its
 * callbacks are unpublished, and done(id, arg) runs (done may be NULL) once
 * no thread can be inside any of them; then the id is forgotten.  May be
 * called from the plugin's own callback.  -EINVAL (NULL q), -ENOENT
 * (unknown id), -EALREADY (already uninstalling), -ENOMEM.
 */
int qpd_plugin_uninstall(struct qpd *q, qpd_plugin_id id, qpd_done_fn done,
			 void *arg);

/*
 * Removes every callback of a plugin but keeps the plugin; done(id, arg)
 * runs once no thread can be inside a removed callback.  -EINVAL, -ENOENT,
 * -EALREADY (a reset is pending), -ESHUTDOWN (uninstalling), -ENOMEM.
 */
int qpd_plugin_reset(struct qpd *q, qpd_plugin_id id, qpd_done_fn done,
		     void *arg);

/*
 * Advances reclamation without blocking: frees what is past its grace
 * period and calls ready `done` hooks on the calling thread.  Returns the
 * number of objects still waiting (-EINVAL for NULL q).  Must not be
 * called inside a slice of a vCPU whose progress the caller waits for.
 */
int qpd_reclaim(struct qpd *q);

/* Fills *st with a snapshot of the instance's counters; -EINVAL for NULL. */
int qpd_stats_get(struct qpd *q, struct qpd_stats *st);

/*
 * linux-user fork support: qpd_prefork() before fork(), then
 * qpd_postfork(q, false) in the parent and qpd_postfork(q, true) in the
 * child.  The forking thread must not be inside a vCPU slice.  -EINVAL for
 * NULL q; in the child, -ENOMEM or -EAGAIN if the reclaimer could not be
 * restarted (then drive reclamation with qpd_reclaim()).
 */
int qpd_prefork(struct qpd *q);
int qpd_postfork(struct qpd *q, bool child);

/* --------------------------------------------------------------------
 * Internal layout used by the inline fast paths.  Not part of the API:
 * touch only through the functions of qpd/vcpu.h and qpd/dispatch.h.
 */

#define QPD_CACHELINE 64
#define QPD_VCPU_CHUNK 64 /* vCPUs per directory chunk */
#define QPD_VDIR_PAGE 512 /* chunk slots per directory page (4 KiB) */

struct qpd_cb {
	void *fn;
	void *udata;
	qpd_plugin_id id;
};

/* An immutable, epoch-published list of one event's callbacks. */
struct qpd_cb_array {
	ck_epoch_entry_t retire;
	unsigned n;
	struct qpd_cb cb[];
};

/* Per-vCPU state; written by the vCPU's own thread except where noted. */
struct qpd_vcpu {
	ck_epoch_record_t rec;   /* the vCPU thread's epoch record */
	CK_BITMAP_INSTANCE(QPD_EV_CAPACITY) mask; /* written by writers */
	unsigned index;
	unsigned online;         /* written by the vCPU thread at init/exit */
	int node;                /* NUMA node of its scoreboard slots */
	unsigned node_set;       /* node chosen by qpd_vcpu_set_node() */
	int placed;              /* node the region is bound to, plus one */
	uint64_t n_dispatch[QPD_EV_COUNT];
} __attribute__((aligned(QPD_CACHELINE)));

/* vCPUs below this index are reached with one load from the instance. */
#define QPD_VCPU_NEAR 4096u

/* The first member of every struct qpd: what the fast paths read. */
struct qpd_core {
	/* Chunks of the first QPD_VCPU_NEAR vCPUs, mirrored from vdir. */
	struct qpd_vcpu *near[QPD_VCPU_NEAR / QPD_VCPU_CHUNK];
	struct qpd_cb_array *ev[QPD_EV_CAPACITY];
	/*
	 * Pages of QPD_VDIR_PAGE chunk slots, added as indices are first used:
	 * a high max_vcpus costs 8 bytes per 32768 indices up front.
	 */
	struct qpd_vcpu ***vdir;
	unsigned max_vcpus;
	unsigned num_vcpus;      /* written under q->lock, ck_pr loads outside */
	ck_epoch_t epoch;
};

static inline struct qpd_core *
qpd__core(struct qpd *q)
{
	return (struct qpd_core *)(void *)q;
}

#ifdef __cplusplus
}
#endif

#endif /* QPD_CORE_H */
