/*
 * Plugins: ids, uninstall and reset.
 *
 * Plugins live in a ck_hs keyed by id, read and written only under q->lock
 * (registration is a slow path; dispatch never looks a plugin up, because
 * every published callback carries its plugin's id).  Ids come from a
 * 64-bit counter, so they are unique for the life of the instance and their
 * order is install order.
 *
 * Uninstall and reset unpublish every callback of the plugin in one step
 * under the lock (all new arrays are allocated before anything is
 * published, so -ENOMEM leaves the plugin untouched), then queue a notice
 * through ck_epoch_call().  The notice's epoch callback runs after the
 * grace period, i.e. once no section that could have seen the old arrays is
 * open; it drops the notice's reference on the plugin, forgets an
 * uninstalled plugin when the last reference goes, and moves the notice to
 * q->ready so the `done` hook runs later with no lock held.  Registrations
 * are refused from the moment uninstall starts, so no callback of the
 * plugin can be published again and none can run after `done`.
 */
#include <errno.h>

#include "internal.h"

static unsigned long
plugin_hash(const void *key, unsigned long seed)
{
	const struct qpd_plugin *p = key;
	uint64_t x = p->id ^ seed;

	/* splitmix64 finaliser: ids are sequential, spread them. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return (unsigned long)x;
}

static bool
plugin_equal(const void *a, const void *b)
{
	return ((const struct qpd_plugin *)a)->id ==
	       ((const struct qpd_plugin *)b)->id;
}

int
qpd__plugins_init(struct qpd *q)
{
	if (!ck_hs_init(&q->plugins, CK_HS_MODE_OBJECT | CK_HS_MODE_SPMC,
			plugin_hash, plugin_equal, &qpd__ck_malloc, 8,
			(unsigned long)(uintptr_t)q))
		return -ENOMEM;
	return 0;
}

void
qpd__plugins_destroy(struct qpd *q)
{
	ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
	void *p;

	while (ck_hs_next(&q->plugins, &it, &p))
		qpd__dealloc(p);
	ck_hs_destroy(&q->plugins);
}

struct qpd_plugin *
qpd__plugin_find_locked(struct qpd *q, qpd_plugin_id id)
{
	struct qpd_plugin key = { .id = id };

	if (id == 0)
		return NULL;
	return ck_hs_get(&q->plugins, CK_HS_HASH(&q->plugins, plugin_hash,
						  &key), &key);
}

void
qpd__plugin_forget_locked(struct qpd *q, struct qpd_plugin *p)
{
	ck_hs_remove(&q->plugins, CK_HS_HASH(&q->plugins, plugin_hash, p), p);
	qpd__dealloc(p);
}

int
qpd_plugin_add(struct qpd *q, qpd_plugin_id *out)
{
	struct qpd_plugin *p;
	int err = 0;

	if (q == NULL || out == NULL)
		return QPD_FAIL(q, -EINVAL);
	p = qpd__alloc(sizeof(*p));
	if (p == NULL)
		return QPD_FAIL(q, -ENOMEM);
	pthread_mutex_lock(&q->lock);
	p->id = q->last_id + 1;
	if (ck_hs_put(&q->plugins, CK_HS_HASH(&q->plugins, plugin_hash, p), p))
		q->last_id = p->id;
	else
		err = -ENOMEM;
	pthread_mutex_unlock(&q->lock);
	if (err != 0) {
		qpd__dealloc(p);
		return QPD_FAIL(q, err);
	}
	*out = p->id;
	return 0;
}

/* Epoch callback, under q->lock: the notice's grace period has passed. */
static void
notice_ready(ck_epoch_entry_t *e)
{
	QPD_TSAN_GRACE_PASSED();
	struct qpd_notice *n = (struct qpd_notice *)(void *)e;
	struct qpd *q = n->q;
	struct qpd_plugin *p = n->plugin;
	struct qpd_notice **pos;

	if (!p->uninstalling)
		p->resetting = false;
	if (--p->refs == 0 && p->uninstalling)
		qpd__plugin_forget_locked(q, p);
	q->n_done_calls++;
	q->n_notices_pending--;
	for (pos = &q->ready; *pos != NULL && (*pos)->seq < n->seq;
	     pos = &(*pos)->next)
		;
	n->next = *pos;
	*pos = n;
}

static int
plugin_retire(struct qpd *q, qpd_plugin_id id, qpd_done_fn done, void *arg,
	      bool uninstall, const char *func)
{
	struct qpd_plugin *p;
	struct qpd_notice *n;
	bool changed = false;
	int err;

	if (q == NULL)
		return qpd__fail(q, -EINVAL, func);
	n = qpd__alloc(sizeof(*n));
	if (n == NULL)
		return qpd__fail(q, -ENOMEM, func);
	pthread_mutex_lock(&q->lock);
	p = qpd__plugin_find_locked(q, id);
	if (p == NULL)
		err = -ENOENT;
	else if (p->uninstalling)
		err = uninstall ? -EALREADY : -ESHUTDOWN;
	else if (!uninstall && p->resetting)
		err = -EALREADY;
	else
		err = qpd__remove_all_locked(q, id, &changed);
	if (err == 0) {
		if (uninstall)
			p->uninstalling = true;
		else
			p->resetting = true;
		p->refs++;
		n->q = q;
		n->plugin = p;
		n->done = done;
		n->arg = arg;
		n->id = id;
		n->seq = ++q->seq;
		q->n_notices_pending++;
		qpd__retire_locked(q, &n->retire, notice_ready);
	}
	pthread_mutex_unlock(&q->lock);
	if (changed)
		qpd__notify_masks(q);
	if (err != 0) {
		qpd__dealloc(n);
		return qpd__fail(q, err, func);
	}
	return 0;
}

int
qpd_plugin_uninstall(struct qpd *q, qpd_plugin_id id, qpd_done_fn done,
		     void *arg)
{
	return plugin_retire(q, id, done, arg, true, __func__);
}

int
qpd_plugin_reset(struct qpd *q, qpd_plugin_id id, qpd_done_fn done,
		 void *arg)
{
	return plugin_retire(q, id, done, arg, false, __func__);
}
