/*
 * qpd/dispatch.h - callback registration and event dispatch.
 *
 * Each event's callbacks form an immutable array published through the
 * instance's ck_epoch.  Dispatch tests the vCPU's event mask (one relaxed
 * load), loads the array pointer and calls every entry in plugin add order.
 * It takes no lock, performs no atomic read-modify-write, and writes only
 * the vCPU's own counters.  The per-vCPU dispatch functions must be called
 * by the vCPU thread inside a slice (qpd_vcpu_enter/leave); a callback may
 * register, unregister, uninstall its plugin or call qpd_vcpu_for_each.
 */
#ifndef QPD_DISPATCH_H
#define QPD_DISPATCH_H

#include <qpd/core.h>
#include <qpd/vcpu.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Sets (fn != NULL) or removes (fn == NULL) the plugin's callback for ev;
 * fn and udata are published together.  -ENOENT unknown plugin, -EINVAL bad
 * event, -ESHUTDOWN plugin uninstalling (ignored, as QEMU does), -ENOMEM.
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
 * Offers a system call to the filters in plugin order; the first that
 * returns true wins, its *sysret is the call's result and true is returned.
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

/*
 * Runs the FLUSH callbacks; callable from any thread, inside a slice or
 * not (it takes a short epoch section of its own).
 */
void qpd_flush(struct qpd *q);

/* Runs the ATEXIT callbacks, at most once per instance; any thread. */
void qpd_atexit(struct qpd *q);

/*
 * linux-user exit: removes every callback but ATEXIT, then runs the ATEXIT
 * callbacks unless they already ran; any thread.
 */
int qpd_user_exit(struct qpd *q);

#ifdef __cplusplus
}
#endif

#endif /* QPD_DISPATCH_H */
