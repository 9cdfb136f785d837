/*
 * Private state of a qpd instance, shared by the core, dispatch and vcpu
 * modules.  Everything here but struct qpd_core is guarded by q->lock
 * unless a field's comment says otherwise.
 */
#ifndef QPD_INTERNAL_H
#define QPD_INTERNAL_H

#include <pthread.h>

/* First: in TSan builds its ck_pr forms reach ck's inline code below. */
#include <qpd.h>

#include <ck_hs.h>
#include <ck_malloc.h>
#include <ck_sequence.h>
#include <ck_stack.h>

struct qpd_plugin {
	qpd_plugin_id id;
	bool uninstalling;
	bool resetting;
	unsigned refs; /* pending done notices that point here */
};

/* A promise to call done(id, arg) after a grace period. */
struct qpd_notice {
	ck_epoch_entry_t retire; /* first: the epoch callback casts back */
	struct qpd *q;
	struct qpd_plugin *plugin;
	qpd_done_fn done;
	void *arg;
	qpd_plugin_id id;
	uint64_t seq;            /* issue order; done hooks run in this order */
	struct qpd_notice *next; /* on q->ready once the grace period passed */
};

/* An epoch record lent to a thread that is not a vCPU. */
struct qpd_guest {
	ck_epoch_record_t rec;
	ck_stack_entry_t link; /* on q->guests, forever */
	unsigned lent;         /* claimed by CAS; its borrower owns rec */
	uint64_t n_dispatch[QPD_EV_COUNT];
};

/* A free range of scoreboard columns. */
struct qpd_extent {
	size_t off, len;
};

/*
 * An arena: `cap` regions of `region` bytes, one per vCPU index; a
 * scoreboard is a column at the same offset in every region.
 */
struct sb_slab;

struct qpd_sb_arena {
	struct qpd *q;
	char *mem;               /* vCPU 0's region */
	size_t held;             /* bytes mapped: span(cap) usable, the rest
				    PROT_NONE, held for growth */
	size_t region;           /* a page multiple */
	unsigned cap;            /* regions mapped */
	unsigned n_promised;     /* frees awaiting their grace period */
	struct qpd_extent *free_ext; /* free columns, sorted by offset */
	unsigned n_free_ext, cap_free_ext;
	struct qpd_sb_arena *next;
};

CK_STACK_CONTAINER(struct qpd_guest, link, ck_stack_entry_container_guest)

/* A scoreboard dyn.c found live, with the sizes its appends check. */
struct qpd_sb_seen {
	const struct qpd_scoreboard *sb;
	unsigned elem_size, slot_size;
};
#define QPD_SB_SEEN 4

struct qpd {
	struct qpd_core core; /* first: the inline fast paths read it */

	pthread_mutex_t lock; /* serialises writers; never held in a callback */
	pthread_cond_t wake;  /* reclaimer: work arrived or stop */
	pthread_t reclaimer;
	bool reclaimer_running;
	bool stop;

	struct qpd_config cfg;
	ck_epoch_record_t wrec; /* writers' record: ck_epoch_call + poll */
	CK_BITMAP_INSTANCE(QPD_EV_CAPACITY) mask; /* events with callbacks */
	ck_hs_t plugins;        /* struct qpd_plugin *, keyed by id */
	qpd_plugin_id last_id;
	uint64_t seq;
	unsigned n_notices_pending; /* uninstalls/resets before their grace */
	struct qpd_notice *ready; /* sorted by seq */

	unsigned n_chunks;
	unsigned n_online;
	ck_stack_t guests;       /* lock-free push, never popped */
	unsigned atexit_ran;     /* ck_pr_fas: ATEXIT runs once */

	/* dyn.c: n_live_dyn below also counts a batch taken off new_dyn. */
	ck_stack_t new_dyn;      /* lists not yet in live_dyn: push_upmc */
	ck_sequence_t sb_seen_seq; /* writers hold the lock */
	struct qpd_sb_seen sb_seen[QPD_SB_SEEN];
	uint64_t sb_seen_gen;    /* sb_gen when sb_seen was filled */

	struct qpd_sb_arena *arenas; /* every arena, newest first */
	unsigned slot_align;
	unsigned sb_cap;         /* indices every arena has regions for */
	size_t sb_next_region;   /* region of the next small arena */
	struct sb_slab *sb_slabs; /* scoreboard descriptors, newest slab first */
	struct qpd_scoreboard *sb_free; /* freed descriptors, linked by base */
	unsigned slot_hwm;       /* indices handed out: [0, hwm) may be dirty */
	uint64_t n_sb_grown;     /* capacity raised in place */
	uint64_t n_sb_moved;     /* capacity raised by moving slots */
	uint64_t n_sb_arenas;    /* arenas created */
	ck_hs_t live_sb;         /* live scoreboards */
	ck_hs_t live_dyn;        /* live dynamic lists */
	unsigned n_live_dyn;     /* their number; ck_pr loads outside the lock */
	uint64_t sb_gen;         /* ck_pr loads outside the lock */

	uint64_t n_registrations;
	uint64_t n_unregistrations;
	uint64_t n_done_calls;
	uint64_t n_errors;       /* ck_pr_inc: failures happen unlocked */
};

/* alloc.c: every allocation of the library goes through these. */
void *qpd__alloc(size_t size); /* zeroed, cache-line aligned */
void qpd__dealloc(void *p);
extern struct ck_malloc qpd__ck_malloc;

/* instance.c */
int qpd__fail(struct qpd *q, int err, const char *func);
#define QPD_FAIL(q, err) qpd__fail((q), (err), __func__)
void qpd__retire_locked(struct qpd *q, ck_epoch_entry_t *e, ck_epoch_cb_t *fn);
void qpd__notify_masks(struct qpd *q);
struct qpd_guest *qpd__guest_enter(struct qpd *q);
void qpd__guest_leave(struct qpd_guest *g);

/* ptrset.c */
int qpd__ptrset_init(ck_hs_t *hs, unsigned long seed);
bool qpd__ptrset_add(ck_hs_t *hs, const void *p);
bool qpd__ptrset_has(ck_hs_t *hs, const void *p);
bool qpd__ptrset_del(ck_hs_t *hs, const void *p);

/* scoreboard.c */
int qpd__arena_init(struct qpd *q);
void qpd__arena_destroy(struct qpd *q);
int qpd__arena_place(struct qpd *q, unsigned vcpu, int node, bool move);
int qpd__current_node(void);

/* dyn.c */
void qpd__dyn_retire_all_locked(struct qpd *q);

/* plugin.c */
int qpd__plugins_init(struct qpd *q);
void qpd__plugins_destroy(struct qpd *q);
struct qpd_plugin *qpd__plugin_find_locked(struct qpd *q, qpd_plugin_id id);
void qpd__plugin_forget_locked(struct qpd *q, struct qpd_plugin *p);

/* registry.c */
int qpd__remove_all_locked(struct qpd *q, qpd_plugin_id id, bool *changed);
void qpd__free_arrays(struct qpd *q);

/* vcpu.c */
void qpd__vcpus_set_mask_bit(struct qpd *q, enum qpd_event ev, bool on);
void qpd__vcpus_after_fork(struct qpd *q);
void qpd__vcpus_destroy(struct qpd *q);
uint64_t qpd__vcpus_sum_dispatch(struct qpd *q, enum qpd_event ev);

#endif /* QPD_INTERNAL_H */
