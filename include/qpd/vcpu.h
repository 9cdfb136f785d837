/*
 * qpd/vcpu.h - the vCPU registry and execution slices.
 *
 * A vCPU is driven by one thread at a time (the "vCPU thread").  That
 * thread brackets each execution slice with qpd_vcpu_enter() and
 * qpd_vcpu_leave(); inside a slice every dispatch function of
 * qpd/dispatch.h runs with no epoch begin/end, no lock and no atomic
 * read-modify-write.  A slice delays reclamation (and `done` hooks) until
 * it ends or calls qpd_vcpu_quiescent(), never anything else.
 */
#ifndef QPD_VCPU_H
#define QPD_VCPU_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Returns the vCPU's state block or NULL when the index is out of range or
 * was never initialised.  Blocks never move or disappear before qpd_free().
 */
static inline struct qpd_vcpu *
qpd__vcpu(struct qpd *q, unsigned vcpu)
{
	struct qpd_core *c = qpd__core(q);
	struct qpd_vcpu *chunk;

	if (vcpu < QPD_VCPU_NEAR)
		chunk = ck_pr_load_ptr(&c->near[vcpu / QPD_VCPU_CHUNK]);
	else if (vcpu < c->max_vcpus) {
		struct qpd_vcpu **page = ck_pr_load_ptr(
			&c->vdir[vcpu / (QPD_VCPU_CHUNK * QPD_VDIR_PAGE)]);

		if (page == NULL)
			return NULL;
		/* The page's slots after its pointer (Alpha-style reorder). */
		ck_pr_fence_load_depends();
		chunk = ck_pr_load_ptr(
			&page[vcpu / QPD_VCPU_CHUNK % QPD_VDIR_PAGE]);
	} else {
		return NULL;
	}
	if (chunk == NULL)
		return NULL;
	/* Order the chunk's contents after its pointer (Alpha-style reorder). */
	ck_pr_fence_load_depends();
	return &chunk[vcpu % QPD_VCPU_CHUNK];
}

/*
 * Whether vcpu's event mask has ev: one relaxed load, from any thread, no
 * slice needed (a translator uses it to decide what to instrument); false
 * for an unknown or offline vCPU or an event out of range.
 */
static inline bool
qpd_vcpu_has_event(struct qpd *q, unsigned vcpu, enum qpd_event ev)
{
	struct qpd_vcpu *v = q ? qpd__vcpu(q, vcpu) : NULL;

	return v != NULL && (unsigned)ev < QPD_EV_COUNT &&
	       ck_bitmap_test(CK_BITMAP(&v->mask), ev);
}

/*
 * Starts an execution slice of an initialised vCPU on its own thread;
 * returns false (and does nothing) if the vCPU is not initialised.
 */
static inline bool
qpd_vcpu_enter(struct qpd *q, unsigned vcpu)
{
	struct qpd_vcpu *v = qpd__vcpu(q, vcpu);

	if (v == NULL || ck_pr_load_uint(&v->online) == 0)
		return false;
	ck_epoch_begin(&v->rec, NULL);
	return true;
}

/* Ends the slice begun by the matching qpd_vcpu_enter() on this thread. */
static inline void
qpd_vcpu_leave(struct qpd *q, unsigned vcpu)
{
	struct qpd_vcpu *v = qpd__vcpu(q, vcpu);

	if (v != NULL && v->rec.active != 0)
		qpd__epoch_end(&v->rec);
}

/*
 * Inside a top-level slice, lets reclamation advance past this vCPU.  Costs
 * one shared load when no writer retired anything since the slice began.
 */
static inline void
qpd_vcpu_quiescent(struct qpd *q, unsigned vcpu)
{
	struct qpd_vcpu *v = qpd__vcpu(q, vcpu);

	if (v == NULL || v->rec.active != 1)
		return;
	/*
	 * A record that already observed the current global epoch holds
	 * nothing back; re-entering would store the same value.
	 */
	if (ck_pr_load_uint(&v->rec.epoch) ==
	    ck_pr_load_uint(&qpd__core(q)->epoch.epoch))
		return;
	qpd__epoch_end(&v->rec);
	ck_epoch_begin(&v->rec, NULL);
}

/*
 * Brings vCPU `vcpu` online and runs the VCPU_INIT callbacks on the calling
 * thread, which becomes the vCPU thread.  -EINVAL past max_vcpus, -EEXIST if
 * online, -ENOMEM, -EAGAIN (nothing changed) if the index's scoreboard
 * slots could only be had by moving slots: call qpd_scoreboard_reserve()
 * with may_move first.  Never stops running vCPUs.
 */
int qpd_vcpu_init(struct qpd *q, unsigned vcpu);

/*
 * Runs the VCPU_EXIT callbacks then takes the vCPU offline; its index may be
 * initialised again later.  -EINVAL past max_vcpus, -ENOENT if not online,
 * -EBUSY inside a slice.
 */
int qpd_vcpu_exit(struct qpd *q, unsigned vcpu);

/*
 * Takes vCPU `vcpu` offline without running its EXIT callbacks, for a vCPU
 * whose thread no longer exists (a fork child's copies of the parent's other
 * threads); any thread, and a section the vanished thread held is released.
 * -EINVAL past max_vcpus, -ENOENT if not online.
 */
int qpd_vcpu_forget(struct qpd *q, unsigned vcpu);

/* Out-of-line part of idle/resume: the section and the walk. */
void qpd__vcpu_run(struct qpd *q, unsigned vcpu, enum qpd_event ev);

/*
 * Runs VCPU_IDLE / VCPU_RESUME callbacks on the vCPU thread, in a section of
 * their own (nested if inside a slice); ignored before init.  With nothing
 * subscribed this is one relaxed load.
 */
static inline void
qpd_vcpu_idle(struct qpd *q, unsigned vcpu)
{
	struct qpd_vcpu *v = q ? qpd__vcpu(q, vcpu) : NULL;

	/* An offline vCPU's mask is empty. */
	if (v != NULL && ck_bitmap_test(CK_BITMAP(&v->mask), QPD_EV_VCPU_IDLE))
		qpd__vcpu_run(q, vcpu, QPD_EV_VCPU_IDLE);
}

static inline void
qpd_vcpu_resume(struct qpd *q, unsigned vcpu)
{
	struct qpd_vcpu *v = q ? qpd__vcpu(q, vcpu) : NULL;

	if (v != NULL &&
	    ck_bitmap_test(CK_BITMAP(&v->mask), QPD_EV_VCPU_RESUME))
		qpd__vcpu_run(q, vcpu, QPD_EV_VCPU_RESUME);
}

/*
 * Calls cb(id, vcpu) for every online vCPU in index order, without any qpd
 * lock held.  -ENOENT for an unknown plugin, -EINVAL for a NULL cb.
 */
int qpd_vcpu_for_each(struct qpd *q, qpd_plugin_id id,
		      void (*cb)(qpd_plugin_id id, unsigned vcpu));

/* Highest vCPU index ever initialised, plus one: one relaxed load. */
static inline unsigned
qpd_num_vcpus(struct qpd *q)
{
	return q ? ck_pr_load_uint(&qpd__core(q)->num_vcpus) : 0;
}

#ifdef __cplusplus
}
#endif

#endif /* QPD_VCPU_H */
