/*
 * qpd/dispatch.h - callback registration and event dispatch.
 *
 * Each event's callbacks form an immutable array published through the
 * instance's ck_epoch.  Dispatch tests the vCPU's event mask (one relaxed
 * load), loads the array pointer and calls every entry in the array's
 * order, which is QEMU's (see qpd_register_cb).  It takes no lock,
 * performs no atomic read-modify-write, and writes only the vCPU's own
 * counters.  The per-vCPU dispatch functions must be called by the vCPU
 * thread inside a slice (qpd_vcpu_enter/leave); a callback may register,
 * unregister, uninstall its plugin or call qpd_vcpu_for_each.
 */
#ifndef QPD_DISPATCH_H
#define QPD_DISPATCH_H

#include "core.h"
#include "scoreboard.h"
#include "vcpu.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Sets (fn != NULL) or removes (fn == NULL) the plugin's callback for ev;
 * fn and udata are published together.  An event's callbacks run in QEMU's
 * order, most recently registered first across all plugins: a plugin's
 * first callback for ev runs before every callback already there; setting
 * another fn (or udata) for an ev the plugin has keeps its place; removing
 * it (here, by qpd_plugin_reset or by uninstall) and registering again puts
 * it first.  -ENOENT unknown plugin, -EINVAL bad event, -ESHUTDOWN plugin
 * uninstalling (ignored, as QEMU does), -ENOMEM.
 */
int qpd_register_cb(struct qpd *q, qpd_plugin_id id, enum qpd_event ev,
		    void *fn, void *udata);

/*
 * Returns the callback list of ev to walk for this vCPU, or NULL when the
 * vCPU's mask says there is none.  Bumps the vCPU's own counter.
 */
static inline const struct qpd_cb_array *
qpd__dispatch_list(struct qpd *q, unsigned vcpu, enum qpd_event ev)
{
	struct qpd_vcpu *v = qpd__vcpu(q, vcpu);
	const struct qpd_cb_array *a;

	if (v == NULL || !ck_bitmap_test(CK_BITMAP(&v->mask), ev))
		return NULL;
	a = ck_pr_load_ptr(&qpd__core(q)->ev[ev]);
	if (a == NULL)
		return NULL;
	/* The array's entries were stored before its pointer: order after. */
	ck_pr_fence_load_depends();
	/* Single writer (this vCPU); a plain store keeps readers race-free. */
	ck_pr_store_64(&v->n_dispatch[ev], v->n_dispatch[ev] + 1);
	return a;
}

#define QPD__EACH(a, c) \
	for (const struct qpd_cb *c = (a)->cb, *c##_end = (a)->cb + (a)->n; \
	     c < c##_end; c++)

/*
 * An open dispatch of one event on one vCPU: its callbacks, valid until
 * qpd_dispatch_end().
 */
struct qpd_dispatch {
	struct qpd_vcpu *v;
	const struct qpd_cb_array *a;
	bool opened;            /* this dispatch began the vCPU's section */
};

/* Every callback of an open dispatch, in order (see qpd_register_cb). */
#define QPD_DISPATCH_FOREACH(d, c) QPD__EACH((d)->a, c)

/*
 * Opens a dispatch of ev on vcpu's own thread, inside or outside a slice,
 * for a caller that calls the entries itself (QPD_DISPATCH_FOREACH, with
 * the signature it registered them with): false, with nothing to end, if
 * the vCPU is not online or has no callback for ev (or ev is invalid).
 * Outside a slice it begins the vCPU's epoch section, which
 * qpd_dispatch_end() ends: one section per dispatch, for callers with no
 * slice around their dispatch points.
 */
static inline bool
qpd_dispatch_begin(struct qpd *q, unsigned vcpu, enum qpd_event ev,
		   struct qpd_dispatch *d)
{
	struct qpd_vcpu *v = qpd__vcpu(q, vcpu);
	const struct qpd_cb_array *a;

	if (v == NULL || (unsigned)ev >= QPD_EV_COUNT ||
	    !ck_bitmap_test(CK_BITMAP(&v->mask), ev))
		return false;
	/* Only this thread changes its own record's nesting count. */
	d->opened = v->rec.active == 0;
	if (d->opened) {
		if (ck_pr_load_uint(&v->online) == 0)
			return false;
		/* Full fence inside: the list is loaded after the section
		 * is visible to the reclaimer. */
		ck_epoch_begin(&v->rec, NULL);
	}
	a = ck_pr_load_ptr(&qpd__core(q)->ev[ev]);
	if (a == NULL) {
		if (d->opened)
			qpd__epoch_end(&v->rec);
		return false;
	}
	/* The array's entries were stored before its pointer: order after. */
	ck_pr_fence_load_depends();
	ck_pr_store_64(&v->n_dispatch[ev], v->n_dispatch[ev] + 1);
	d->v = v;
	d->a = a;
	return true;
}

/* Closes a dispatch that qpd_dispatch_begin() opened (returned true). */
static inline void
qpd_dispatch_end(struct qpd_dispatch *d)
{
	if (d->opened)
		qpd__epoch_end(&d->v->rec);
}

/* A block was translated on this vCPU. */
static inline void
qpd_tb_trans(struct qpd *q, unsigned vcpu, void *tb)
{
	const struct qpd_cb_array *a =
	    qpd__dispatch_list(q, vcpu, QPD_EV_VCPU_TB_TRANS);

	if (a == NULL)
		return;
	QPD__EACH(a, c)
		((qpd_tb_trans_cb_t)c->fn)(c->id, vcpu, tb, c->udata);
}

/* The guest is entering a system call. */
static inline void
qpd_syscall(struct qpd *q, unsigned vcpu, int64_t num, const uint64_t args[8])
{
	const struct qpd_cb_array *a =
	    qpd__dispatch_list(q, vcpu, QPD_EV_VCPU_SYSCALL);

	if (a == NULL)
		return;
	QPD__EACH(a, c)
		((qpd_syscall_cb_t)c->fn)(c->id, vcpu, num, args, c->udata);
}

/* A system call returned. */
static inline void
qpd_syscall_ret(struct qpd *q, unsigned vcpu, int64_t num, int64_t ret)
{
	const struct qpd_cb_array *a =
	    qpd__dispatch_list(q, vcpu, QPD_EV_VCPU_SYSCALL_RET);

	if (a == NULL)
		return;
	QPD__EACH(a, c)
		((qpd_syscall_ret_cb_t)c->fn)(c->id, vcpu, num, ret, c->udata);
}

/*
 * Offers a system call to the filters in callback order (most recently
 * registered first, see qpd_register_cb); the first that returns true
 * wins, its *sysret is the call's result and true is returned.
 */
static inline bool
qpd_syscall_filter(struct qpd *q, unsigned vcpu, int64_t num,
		   const uint64_t args[8], uint64_t *sysret)
{
	const struct qpd_cb_array *a =
	    qpd__dispatch_list(q, vcpu, QPD_EV_VCPU_SYSCALL_FILTER);

	if (a == NULL)
		return false;
	QPD__EACH(a, c) {
		if (((qpd_syscall_filter_cb_t)c->fn)(c->id, vcpu, num, args,
						     sysret, c->udata))
			return true;
	}
	return false;
}

/* Maps a discontinuity type to its event; QPD_EV_COUNT if unknown. */
static inline enum qpd_event
qpd_discon_event(enum qpd_discon_type type)
{
	switch (type) {
	case QPD_DISCON_INTERRUPT:
		return QPD_EV_VCPU_INTERRUPT;
	case QPD_DISCON_EXCEPTION:
		return QPD_EV_VCPU_EXCEPTION;
	case QPD_DISCON_HOSTCALL:
		return QPD_EV_VCPU_HOSTCALL;
	}
	return QPD_EV_COUNT;
}

/* Control left `from` for `to` through an interrupt, exception or hostcall. */
static inline void
qpd_discon(struct qpd *q, unsigned vcpu, enum qpd_discon_type type,
	   uint64_t from, uint64_t to)
{
	enum qpd_event ev = qpd_discon_event(type);
	const struct qpd_cb_array *a;

	if (ev == QPD_EV_COUNT)
		return;
	a = qpd__dispatch_list(q, vcpu, ev);
	if (a == NULL)
		return;
	QPD__EACH(a, c)
		((qpd_discon_cb_t)c->fn)(c->id, vcpu, type, from, to, c->udata);
}

/* --------------------------------------------------------------------
 * Dynamic callback lists: one per translated block or instruction, built
 * by the embedder at translation time and executed by vCPUs inside their
 * slices.  Entries run in the order they were added.  Appending is safe
 * while other threads execute the list (entries are published after they
 * are written and a grown array's predecessor is freed only with the
 * list); appends to one list must be serialised by the caller.  Creating
 * lists and appending to them take no lock (an append naming a scoreboard
 * may take the instance's lock once after scoreboards or vCPUs come and
 * go), so vCPUs translating at once do not wait for each other.
 * qpd_flush() retires every list through the epoch: slices that are
 * executing one may finish, but no list may be executed in a slice that
 * starts after the flush.
 */

enum qpd_inline_op {
	QPD_OP_ADD_U64 = 0,
	QPD_OP_STORE_U64 = 1,
};

/* Conditions compare the counter with the immediate, unsigned. */
enum qpd_cond {
	QPD_COND_NEVER = 0,
	QPD_COND_ALWAYS,
	QPD_COND_EQ,
	QPD_COND_NE,
	QPD_COND_LT,
	QPD_COND_LE,
	QPD_COND_GT,
	QPD_COND_GE,
};

enum qpd_mem_rw {
	QPD_MEM_R = 1,
	QPD_MEM_W = 2,
	QPD_MEM_RW = 3,
};

typedef void (*qpd_dyn_cb_t)(unsigned vcpu, void *udata);
typedef void (*qpd_mem_cb_t)(unsigned vcpu, uint32_t meminfo, uint64_t vaddr,
			     void *udata);

enum qpd_dyn_kind {
	QPD_DYN_CB,
	QPD_DYN_INLINE,
	QPD_DYN_COND_CB,
	QPD_DYN_MEM_CB,
	QPD_DYN_MEM_INLINE,
	QPD_DYN_INLINE_UNALIGNED,     /* QPD_DYN_INLINE, offset % 8 != 0 */
	QPD_DYN_MEM_INLINE_UNALIGNED, /* QPD_DYN_MEM_INLINE, offset % 8 != 0 */
};

/* Layout read by the inline executors; build entries with the functions. */
struct qpd_dyn_entry {
	uint8_t kind, op, cond, rw;
	void *fn;
	void *udata;
	qpd_u64 entry;
	uint64_t imm;
};

struct qpd_dyn {
	struct qpd_dyn_entry *e; /* published array, at least n entries */
	unsigned n;              /* published count */
	unsigned cap;
	struct qpd *q;
	ck_epoch_entry_t retire;
	ck_stack_entry_t link;   /* on the instance's stack of new lists */
	struct qpd_dyn_entry inl[]; /* qpd_dyn_new_sized()'s first array */
};

/*
 * Creates an empty list, live until qpd_dyn_retire(), a qpd_flush() that
 * begins after this returns, or qpd_free(); lock-free (one allocation and
 * a push).  NULL with errno ENOMEM or EINVAL (NULL q).
 */
struct qpd_dyn *qpd_dyn_new(struct qpd *q);

/*
 * The same, with room for cap entries in the list's own allocation (an
 * embedder that knows a list's size pays one allocation for it); it still
 * grows past cap.  NULL with errno ENOMEM or EINVAL (NULL q, cap too large).
 */
struct qpd_dyn *qpd_dyn_new_sized(struct qpd *q, unsigned cap);

/*
 * Retires one list (for an embedder that invalidates a single block); it
 * is freed after a grace period.  -ENOENT if not a live list of q (retired
 * already, by this or by a flush, or not a list of q: nothing is read
 * through the pointer), -EINVAL for NULL.  Takes the instance's lock.
 */
int qpd_dyn_retire(struct qpd *q, struct qpd_dyn *list);

/* Appends fn(vcpu, udata).  -EINVAL (NULL list or fn), -ENOMEM. */
int qpd_dyn_add_cb(struct qpd_dyn *list, qpd_dyn_cb_t fn, void *udata);

/*
 * Appends an inline op on entry's counter (ADD_U64 adds imm, STORE_U64
 * stores it).  As in QEMU's translated code, the counter may be at any
 * offset inside each vCPU's slot: offset + 8 must not exceed the slot's
 * width, which is the scoreboard's column (its element size rounded up to
 * the slot alignment, at least 64 bytes by default; no other scoreboard
 * uses those bytes, and they are zero in a new scoreboard), so a counter
 * may lie past the element or straddle its end.  A counter at an offset
 * that is not a multiple of 8 is accessed with unaligned loads and stores
 * (not single-copy atomic for a concurrent qpd_u64_sum); an aligned one
 * takes the same path as before.  -EINVAL for a bad op, a NULL scoreboard
 * or a counter that leaves the slot, -ENOENT if entry's scoreboard is not
 * live, -ENOMEM.
 */
int qpd_dyn_add_inline(struct qpd_dyn *list, enum qpd_inline_op op,
		       qpd_u64 entry, uint64_t imm);

/*
 * Appends fn(vcpu, udata) run only when `counter cond imm` holds; ALWAYS
 * adds a plain callback and NEVER adds nothing.  The counter must be an
 * aligned u64 inside the element (it is read with one atomic load).
 * Errors as for qpd_dyn_add_inline, with -EINVAL also for a counter that
 * is misaligned or not inside the element, a NULL fn or an unknown cond.
 */
int qpd_dyn_add_cond_cb(struct qpd_dyn *list, qpd_dyn_cb_t fn, void *udata,
			enum qpd_cond cond, qpd_u64 entry, uint64_t imm);

/*
 * Appends a memory callback run for accesses whose rw intersects rw.
 * -EINVAL (NULL list or fn, rw not R, W or RW), -ENOMEM.
 */
int qpd_dyn_add_mem_cb(struct qpd_dyn *list, qpd_mem_cb_t fn,
		       enum qpd_mem_rw rw, void *udata);

/*
 * Appends a memory inline op run for accesses whose rw intersects rw; the
 * counter may be at any offset inside the slot, as for qpd_dyn_add_inline.
 * Errors as for qpd_dyn_add_inline, and -EINVAL for a bad rw.
 */
int qpd_dyn_add_mem_inline(struct qpd_dyn *list, enum qpd_mem_rw rw,
			   enum qpd_inline_op op, qpd_u64 entry, uint64_t imm);

/* Loads a published (n, array) pair: the array holds at least n entries. */
static inline const struct qpd_dyn_entry *
qpd__dyn_snapshot(const struct qpd_dyn *l, unsigned *n)
{
	*n = ck_pr_load_uint(&l->n);
	/* The count before the array it counts (load-load). */
	ck_pr_fence_load();
	return ck_pr_load_ptr(&l->e);
}

static inline void
qpd__dyn_inline(const struct qpd_dyn_entry *e, unsigned vcpu)
{
	if (e->op == QPD_OP_ADD_U64)
		qpd_inline_add_u64(e->entry, vcpu, e->imm);
	else
		qpd_u64_set(e->entry, vcpu, e->imm);
}

/* A u64 at any address: one load or store where the host allows it. */
typedef uint64_t qpd__u64_unaligned __attribute__((may_alias, aligned(1)));

/*
 * The inline op of an entry whose counter is not 8-byte aligned, on the
 * vCPU's own slot: a load, an add and a store as in qpd_inline_add_u64,
 * through an unaligned access (volatile, as ck_pr's, for racing readers).
 */
static inline void
qpd__dyn_inline_unaligned(const struct qpd_dyn_entry *e, unsigned vcpu)
{
	volatile qpd__u64_unaligned *p;

	if (vcpu >= e->entry.score->max_vcpus)
		return;
	/* The slot's start is aligned; step to the counter bytewise. */
	p = (volatile qpd__u64_unaligned *)(void *)
		((char *)qpd_u64_slot((qpd_u64){ e->entry.score, 0 }, vcpu) +
		 e->entry.offset);
	if (e->op == QPD_OP_ADD_U64)
		*p = *p + e->imm;
	else
		*p = e->imm;
}

static inline bool
qpd__cond_holds(enum qpd_cond c, uint64_t v, uint64_t imm)
{
	switch (c) {
	case QPD_COND_ALWAYS:
		return true;
	case QPD_COND_EQ:
		return v == imm;
	case QPD_COND_NE:
		return v != imm;
	case QPD_COND_LT:
		return v < imm;
	case QPD_COND_LE:
		return v <= imm;
	case QPD_COND_GT:
		return v > imm;
	case QPD_COND_GE:
		return v >= imm;
	case QPD_COND_NEVER:
		break;
	}
	return false;
}

/* Runs the list's callback, inline and conditional entries, in order. */
static inline void
qpd_dyn_exec(const struct qpd_dyn *list, unsigned vcpu)
{
	unsigned n, i;
	const struct qpd_dyn_entry *e = qpd__dyn_snapshot(list, &n);

	for (i = 0; i < n; i++, e++) {
		switch (e->kind) {
		case QPD_DYN_CB:
			((qpd_dyn_cb_t)e->fn)(vcpu, e->udata);
			break;
		case QPD_DYN_INLINE:
			qpd__dyn_inline(e, vcpu);
			break;
		case QPD_DYN_COND_CB:
			if (qpd__cond_holds((enum qpd_cond)e->cond,
					    qpd_u64_get(e->entry, vcpu), e->imm))
				((qpd_dyn_cb_t)e->fn)(vcpu, e->udata);
			break;
		default:
			/* Off the aligned kinds' path (memory kinds skip). */
			if (e->kind == QPD_DYN_INLINE_UNALIGNED)
				qpd__dyn_inline_unaligned(e, vcpu);
			break;
		}
	}
}

/*
 * Runs, in order, every memory entry whose rw intersects the access's
 * (all of them: one that does not match does not stop the walk).
 */
static inline void
qpd_dyn_exec_mem(const struct qpd_dyn *list, unsigned vcpu, uint64_t vaddr,
		 uint32_t meminfo, enum qpd_mem_rw rw)
{
	unsigned n, i;
	const struct qpd_dyn_entry *e = qpd__dyn_snapshot(list, &n);

	for (i = 0; i < n; i++, e++) {
		if ((e->rw & rw) == 0)
			continue;
		if (e->kind == QPD_DYN_MEM_CB)
			((qpd_mem_cb_t)e->fn)(vcpu, meminfo, vaddr, e->udata);
		else if (e->kind == QPD_DYN_MEM_INLINE)
			qpd__dyn_inline(e, vcpu);
		else if (e->kind == QPD_DYN_MEM_INLINE_UNALIGNED)
			qpd__dyn_inline_unaligned(e, vcpu);
	}
}

/*
 * Retires every dynamic list (through the epoch, see above), then runs the
 * FLUSH callbacks; callable from any thread, inside a slice or not (it
 * takes a short epoch section of its own).
 */
void qpd_flush(struct qpd *q);

/* Runs the ATEXIT callbacks, at most once per instance; any thread. */
void qpd_atexit(struct qpd *q);

/*
 * Removes every callback of every plugin except those of event `keep`
 * (QPD_EV_COUNT keeps none), running none; any thread.  -EINVAL for a bad
 * `keep`.
 */
int qpd_unregister_all_but(struct qpd *q, enum qpd_event keep);

/*
 * linux-user exit: qpd_unregister_all_but(q, QPD_EV_ATEXIT), then runs the
 * ATEXIT callbacks unless they already ran; any thread.  -ENOMEM if they
 * could not run (a later qpd_atexit() or qpd_user_exit() will).
 */
int qpd_user_exit(struct qpd *q);

#ifdef __cplusplus
}
#endif

#endif /* QPD_DISPATCH_H */
