/*
 * Callback registration: copy-on-update arrays published through ck_epoch.
 *
 * Each event has one immutable array of (fn, udata, plugin id) in QEMU's
 * order: most recently registered first, across all plugins.  A plugin's
 * first registration for an event goes to the front; registering another
 * function for an event the plugin already has replaces (fn, udata) where
 * the entry stands; removing it (NULL fn, reset, uninstall) drops the entry,
 * and a later registration goes to the front again.  The order is decided
 * here, on the registration slow path, so dispatch walks the array front
 * to back exactly as before.
 *
 * A writer, holding q->lock, builds the next array beside the current one,
 * publishes it with a single pointer store after a store fence, and retires
 * the old array through ck_epoch_call().  A reader loads the pointer once
 * and walks an array that can neither change nor be freed under it while
 * its epoch section lasts.  So a reader sees either the old pair or the new
 * pair of a replaced callback, never fn of one with udata of the other (the
 * tracepoint 1->0->1 hazard needs in-place updates, which never happen
 * here), and a callback that unregisters itself mid-walk only affects later
 * walks.  Every array a writer builds is derived from the current one by
 * inserting at the front, replacing in place or removing one entry (or all
 * of them), so the order of the entries that stay never changes.
 *
 * Event masks follow the arrays: a bit is set after its array is published
 * and cleared when the array becomes empty.  A reader that sees a set bit
 * with an empty array, or misses a callback registered concurrently, has
 * simply observed the registration as happening after its dispatch.
 */
#include <errno.h>
#include <string.h>

#include "../core/internal.h"

static void
array_free_cb(ck_epoch_entry_t *e)
{
	QPD_TSAN_GRACE_PASSED();
	qpd__dealloc(e); /* retire is the array's first member */
}

/*
 * Index of id's entry, or a->n if it has none.  An array holds at most one
 * entry per plugin and is not sorted by id: a linear scan, on the slow path.
 */
static unsigned
array_find(const struct qpd_cb_array *a, qpd_plugin_id id)
{
	unsigned i, n = a ? a->n : 0;

	for (i = 0; i < n && a->cb[i].id != id; i++)
		;
	return i;
}

/*
 * Builds the array that follows `old` once id's entry is set to (fn, udata)
 * or, with fn NULL, removed: a new entry goes to the front, an existing one
 * is replaced where it stands, the others keep their order.  *noop is set
 * when nothing would change.
 */
static int
array_prepare(const struct qpd_cb_array *old, qpd_plugin_id id, void *fn,
	      void *udata, struct qpd_cb_array **out, bool *noop)
{
	unsigned n = old ? old->n : 0;
	unsigned pos = array_find(old, id);
	bool exists = pos < n;
	unsigned next_n = n - (exists ? 1 : 0) + (fn ? 1 : 0);
	struct qpd_cb_array *a;

	*out = NULL;
	*noop = fn == NULL && !exists;
	if (*noop || next_n == 0)
		return 0;
	a = qpd__alloc(sizeof(*a) + next_n * sizeof(a->cb[0]));
	if (a == NULL)
		return -ENOMEM;
	a->n = next_n;
	if (exists && fn != NULL) {
		/* Re-registration: same place, new pair. */
		memcpy(a->cb, old->cb, n * sizeof(a->cb[0]));
		a->cb[pos] = (struct qpd_cb){ fn, udata, id };
	} else if (exists) {
		/* Removal: the entries before and after it close up. */
		memcpy(a->cb, old->cb, pos * sizeof(a->cb[0]));
		memcpy(&a->cb[pos], &old->cb[pos + 1],
		       (n - pos - 1) * sizeof(a->cb[0]));
	} else {
		/* First registration: to the front, as QEMU inserts at the
		 * head of the event's list. */
		a->cb[0] = (struct qpd_cb){ fn, udata, id };
		if (n)
			memcpy(&a->cb[1], old->cb, n * sizeof(a->cb[0]));
	}
	*out = a;
	return 0;
}

/*
 * Publishes `next` as ev's array and retires the current one.  Returns true
 * when the event's mask bit changed.
 */
static bool
array_commit_locked(struct qpd *q, enum qpd_event ev, struct qpd_cb_array *next)
{
	struct qpd_cb_array *old = q->core.ev[ev];
	bool was = old != NULL, is = next != NULL;

	/* Entries must be visible before the pointer (store-store). */
	ck_pr_fence_store();
	ck_pr_store_ptr(&q->core.ev[ev], next);
	if (old != NULL)
		qpd__retire_locked(q, &old->retire, array_free_cb);
	if (was == is)
		return false;
	/* The new array before the bit that advertises it (store-store). */
	ck_pr_fence_store();
	if (is)
		CK_BITMAP_SET(&q->mask, ev);
	else
		CK_BITMAP_RESET(&q->mask, ev);
	qpd__vcpus_set_mask_bit(q, ev, is);
	return true;
}

int
qpd_register_cb(struct qpd *q, qpd_plugin_id id, enum qpd_event ev, void *fn,
		void *udata)
{
	struct qpd_plugin *p;
	struct qpd_cb_array *next = NULL;
	bool noop = false, changed = false;
	int err;

	if (q == NULL || (unsigned)ev >= QPD_EV_COUNT)
		return QPD_FAIL(q, -EINVAL);
	pthread_mutex_lock(&q->lock);
	p = qpd__plugin_find_locked(q, id);
	if (p == NULL)
		err = -ENOENT;
	else if (p->uninstalling)
		err = -ESHUTDOWN;
	else
		err = array_prepare(q->core.ev[ev], id, fn, udata, &next, &noop);
	if (err == 0 && !noop) {
		changed = array_commit_locked(q, ev, next);
		if (fn)
			q->n_registrations++;
		else
			q->n_unregistrations++;
	}
	pthread_mutex_unlock(&q->lock);
	if (changed)
		qpd__notify_masks(q);
	return err ? QPD_FAIL(q, err) : 0;
}

/*
 * Unpublishes every callback of plugin `id`, all or nothing: every
 * replacement array is built before the first is published.
 */
int
qpd__remove_all_locked(struct qpd *q, qpd_plugin_id id, bool *changed)
{
	struct qpd_cb_array *next[QPD_EV_COUNT];
	bool noop[QPD_EV_COUNT];
	unsigned ev;

	for (ev = 0; ev < QPD_EV_COUNT; ev++) {
		if (array_prepare(q->core.ev[ev], id, NULL, NULL, &next[ev],
				  &noop[ev]) != 0) {
			while (ev-- > 0)
				qpd__dealloc(next[ev]);
			return -ENOMEM;
		}
	}
	for (ev = 0; ev < QPD_EV_COUNT; ev++) {
		if (noop[ev])
			continue;
		*changed |= array_commit_locked(q, ev, next[ev]);
		q->n_unregistrations++;
	}
	return 0;
}

void
qpd__free_arrays(struct qpd *q)
{
	unsigned ev;

	for (ev = 0; ev < QPD_EV_COUNT; ev++) {
		qpd__dealloc(q->core.ev[ev]);
		q->core.ev[ev] = NULL;
	}
}

/*
 * Runs ev's (id, udata) callbacks from any thread, in a lent section;
 * false if no section could be had (reported as func's -ENOMEM).
 */
static bool
dispatch_simple(struct qpd *q, enum qpd_event ev, const char *func)
{
	const struct qpd_cb_array *a;
	struct qpd_guest *g;

	if (!CK_BITMAP_TEST(&q->mask, ev))
		return true;
	g = qpd__guest_enter(q);
	if (g == NULL) {
		qpd__fail(q, -ENOMEM, func);
		return false;
	}
	a = ck_pr_load_ptr(&q->core.ev[ev]);
	if (a != NULL) {
		/* Entries after the pointer that published them. */
		ck_pr_fence_load_depends();
		ck_pr_store_64(&g->n_dispatch[ev], g->n_dispatch[ev] + 1);
		QPD__EACH(a, c)
			((qpd_simple_cb_t)c->fn)(c->id, c->udata);
	}
	qpd__guest_leave(g);
	return true;
}

/*
 * False only if no dynamic list is live: none waits on new_dyn and then
 * none is counted (the count covers a batch the lock holder took off
 * new_dyn, see dyn.c).
 */
static bool
dyn_maybe_live(struct qpd *q)
{
	uintptr_t head = (uintptr_t)ck_pr_load_ptr(&q->new_dyn.head);

	/* The stack before the count (load-load): see dyn.c. */
	ck_pr_fence_load();
	/* Both words, one branch: flush's fast path stays short. */
	return (head | ck_pr_load_uint(&q->n_live_dyn)) != 0;
}

void
qpd_flush(struct qpd *q)
{
	if (q == NULL)
		return;
	/* Rare (translated code is being thrown away): a short lock is fine. */
	if (dyn_maybe_live(q)) {
		pthread_mutex_lock(&q->lock);
		qpd__dyn_retire_all_locked(q);
		pthread_mutex_unlock(&q->lock);
	}
	dispatch_simple(q, QPD_EV_FLUSH, __func__);
}

/*
 * ATEXIT exactly once, whichever of qpd_atexit/qpd_user_exit comes first;
 * a run that could not start (no memory) leaves the next call its turn.
 * False only in that case.
 */
static bool
atexit_once(struct qpd *q, const char *func)
{
	if (ck_pr_fas_uint(&q->atexit_ran, 1) != 0)
		return true;
	if (dispatch_simple(q, QPD_EV_ATEXIT, func))
		return true;
	ck_pr_store_uint(&q->atexit_ran, 0);
	return false;
}

void
qpd_atexit(struct qpd *q)
{
	if (q != NULL)
		atexit_once(q, __func__);
}

int
qpd_unregister_all_but(struct qpd *q, enum qpd_event keep)
{
	bool changed = false;
	unsigned ev;

	if (q == NULL || (unsigned)keep > QPD_EV_COUNT)
		return QPD_FAIL(q, -EINVAL);
	pthread_mutex_lock(&q->lock);
	for (ev = 0; ev < QPD_EV_COUNT; ev++) {
		const struct qpd_cb_array *a = q->core.ev[ev];

		if (ev == (unsigned)keep || a == NULL)
			continue;
		q->n_unregistrations += a->n;
		changed |= array_commit_locked(q, ev, NULL);
	}
	pthread_mutex_unlock(&q->lock);
	if (changed)
		qpd__notify_masks(q);
	return 0;
}

int
qpd_user_exit(struct qpd *q)
{
	if (q == NULL)
		return QPD_FAIL(q, -EINVAL);
	qpd_unregister_all_but(q, QPD_EV_ATEXIT);
	/* The failure was reported through the hook already. */
	return atexit_once(q, __func__) ? 0 : -ENOMEM;
}
