/*
 * The vCPU registry.
 *
 * vCPU blocks live in chunks of QPD_VCPU_CHUNK, reached through a
 * two-level directory: a top level sized once, at qpd_new(), for max_vcpus,
 * and pages of QPD_VDIR_PAGE chunk slots.  A page or chunk is allocated
 * (zeroed) under q->lock the first time one of its indices is initialised
 * and is published with one pointer store after a store fence; neither is
 * moved or freed before qpd_free().  So growth is a single store that running
 * vCPUs never wait for, a reader needs no section to reach a block, and the
 * address of a vCPU's block (and of its epoch record, which stays registered
 * with ck_epoch from its first init on) is stable across exit and re-init of
 * the index, as linux-user does when it reuses the lowest free index.
 *
 * online and the event mask of a block change only under q->lock, and the
 * mask is written before online is raised (store fence), so a dispatching
 * thread that sees a vCPU online sees its mask.  Dispatch on an offline
 * vCPU sees an empty mask and returns.
 */
#include <errno.h>

#include "../core/internal.h"

static struct qpd_vcpu **
vdir_page_get_locked(struct qpd *q, unsigned idx)
{
	struct qpd_vcpu **page = q->core.vdir[idx / QPD_VDIR_PAGE];

	if (page != NULL)
		return page;
	page = qpd__alloc(QPD_VDIR_PAGE * sizeof(*page));
	if (page == NULL)
		return NULL;
	/* The zeroed slots before the pointer that reaches them. */
	ck_pr_fence_store();
	ck_pr_store_ptr(&q->core.vdir[idx / QPD_VDIR_PAGE], page);
	return page;
}

/* The chunk of directory slot idx, allocated on first use (NULL: ENOMEM). */
static struct qpd_vcpu *
chunk_get_locked(struct qpd *q, unsigned idx)
{
	struct qpd_vcpu **page = vdir_page_get_locked(q, idx);
	struct qpd_vcpu *chunk;
	unsigned i;

	if (page == NULL)
		return NULL;
	chunk = page[idx % QPD_VDIR_PAGE];
	if (chunk != NULL)
		return chunk;
	chunk = qpd__alloc(QPD_VCPU_CHUNK * sizeof(*chunk));
	if (chunk == NULL)
		return NULL;
	for (i = 0; i < QPD_VCPU_CHUNK; i++) {
		CK_BITMAP_INIT(&chunk[i].mask, QPD_EV_CAPACITY, false);
		chunk[i].index = idx * QPD_VCPU_CHUNK + i;
	}
	/* The blocks' contents before the pointers that reach them. */
	ck_pr_fence_store();
	ck_pr_store_ptr(&page[idx % QPD_VDIR_PAGE], chunk);
	if (idx < QPD_VCPU_NEAR / QPD_VCPU_CHUNK)
		ck_pr_store_ptr(&q->core.near[idx], chunk);
	return chunk;
}

/* Runs ev's vCPU callbacks on the vCPU's own record, nesting if in a slice. */
static void
run_vcpu_cbs(struct qpd *q, struct qpd_vcpu *v, enum qpd_event ev)
{
	const struct qpd_cb_array *a;

	/* Nothing subscribed: no section needed (the mask is only a hint). */
	if (!CK_BITMAP_TEST(&v->mask, ev))
		return;
	ck_epoch_begin(&v->rec, NULL);
	a = qpd__dispatch_list(q, v->index, ev);
	if (a != NULL) {
		QPD__EACH(a, c)
			((qpd_vcpu_cb_t)c->fn)(c->id, v->index, c->udata);
	}
	qpd__epoch_end(&v->rec);
}

int
qpd_vcpu_init(struct qpd *q, unsigned vcpu)
{
	struct qpd_vcpu *chunk, *v = NULL;
	int err = 0;

	if (q == NULL || vcpu >= q->core.max_vcpus)
		return QPD_FAIL(q, -EINVAL);
	/* Slots first, in place; -EAGAIN asks the caller for a move. */
	err = qpd_scoreboard_reserve(q, vcpu + 1, false);
	if (err < 0)
		return err;
	pthread_mutex_lock(&q->lock);
	chunk = chunk_get_locked(q, vcpu / QPD_VCPU_CHUNK);
	if (chunk == NULL) {
		err = -ENOMEM;
		goto out;
	}
	v = &chunk[vcpu % QPD_VCPU_CHUNK];
	if (v->online) {
		err = -EEXIST;
		goto out;
	}
	if (!v->node_set)
		ck_pr_store_int(&v->node, qpd__current_node());
	if (v->rec.global == NULL) {
		ck_epoch_register(&q->core.epoch, &v->rec, v);
		/* This index's slots come into being. */
		ck_pr_store_64(&q->sb_gen, q->sb_gen + 1);
	}
	CK_BITMAP_UNION(&v->mask, &q->mask);
	/* Mask before online: whoever sees the vCPU online sees its mask. */
	ck_pr_fence_store();
	ck_pr_store_uint(&v->online, 1);
	if (vcpu >= q->core.num_vcpus)
		ck_pr_store_uint(&q->core.num_vcpus, vcpu + 1);
	q->n_online++;
out:
	pthread_mutex_unlock(&q->lock);
	if (err != 0)
		return QPD_FAIL(q, err);
	/*
	 * Best effort, outside the lock, and only when the binding changes: a
	 * kernel that refuses mbind still runs the vCPU.
	 */
	int placed = ck_pr_load_int(&v->placed), node = ck_pr_load_int(&v->node);

	if (placed != node + 1 &&
	    qpd__arena_place(q, vcpu, node, placed != 0) == 0)
		ck_pr_store_int(&v->placed, node + 1);
	if (q->cfg.on_mask_change != NULL)
		q->cfg.on_mask_change(vcpu, q->cfg.opaque);
	run_vcpu_cbs(q, v, QPD_EV_VCPU_INIT);
	return 0;
}

/* Takes an online vCPU offline: no dispatch finds it after this; q->lock. */
static void
offline_locked(struct qpd *q, struct qpd_vcpu *v)
{
	ck_pr_store_uint(&v->online, 0);
	CK_BITMAP_CLEAR(&v->mask);
	q->n_online--;
}

int
qpd_vcpu_exit(struct qpd *q, unsigned vcpu)
{
	struct qpd_vcpu *v;

	if (q == NULL || vcpu >= q->core.max_vcpus)
		return QPD_FAIL(q, -EINVAL);
	v = qpd__vcpu(q, vcpu);
	if (v == NULL || !ck_pr_load_uint(&v->online))
		return QPD_FAIL(q, -ENOENT);
	/* Only the vCPU thread calls this: its own record, read plainly. */
	if (v->rec.active != 0)
		return QPD_FAIL(q, -EBUSY);
	run_vcpu_cbs(q, v, QPD_EV_VCPU_EXIT);
	pthread_mutex_lock(&q->lock);
	offline_locked(q, v);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

int
qpd_vcpu_forget(struct qpd *q, unsigned vcpu)
{
	struct qpd_vcpu *v;
	int err = 0;

	if (q == NULL || vcpu >= q->core.max_vcpus)
		return QPD_FAIL(q, -EINVAL);
	pthread_mutex_lock(&q->lock);
	v = qpd__vcpu(q, vcpu);
	if (v == NULL || !v->online) {
		err = -ENOENT;
		goto out;
	}
	offline_locked(q, v);
	/*
	 * Its thread is gone: a section it held would never end and would stop
	 * every later grace period.  The record stays registered for reuse.
	 */
	ck_pr_store_uint(&v->rec.active, 0);
out:
	pthread_mutex_unlock(&q->lock);
	return err != 0 ? QPD_FAIL(q, err) : 0;
}

void
qpd__vcpu_run(struct qpd *q, unsigned vcpu, enum qpd_event ev)
{
	struct qpd_vcpu *v = qpd__vcpu(q, vcpu);

	/* Idle and resume may come before init: ignore them then. */
	if (v != NULL && ck_pr_load_uint(&v->online))
		run_vcpu_cbs(q, v, ev);
}

int
qpd_vcpu_for_each(struct qpd *q, qpd_plugin_id id,
		  void (*cb)(qpd_plugin_id id, unsigned vcpu))
{
	struct qpd_plugin *p;
	unsigned i, n;

	if (q == NULL || cb == NULL)
		return QPD_FAIL(q, -EINVAL);
	pthread_mutex_lock(&q->lock);
	p = qpd__plugin_find_locked(q, id);
	pthread_mutex_unlock(&q->lock);
	if (p == NULL)
		return QPD_FAIL(q, -ENOENT);
	/* Blocks never move or vanish: walk them with no lock held. */
	n = ck_pr_load_uint(&q->core.num_vcpus);
	for (i = 0; i < n; i++) {
		struct qpd_vcpu *v = qpd__vcpu(q, i);

		if (v != NULL && ck_pr_load_uint(&v->online))
			cb(id, i);
	}
	return 0;
}

int
qpd_vcpu_set_node(struct qpd *q, unsigned vcpu, int node)
{
	struct qpd_vcpu *chunk;
	int err;

	if (q == NULL || vcpu >= q->core.max_vcpus)
		return QPD_FAIL(q, -EINVAL);
	err = qpd__arena_place(q, vcpu, node, true);
	if (err == 0) {
		pthread_mutex_lock(&q->lock);
		chunk = chunk_get_locked(q, vcpu / QPD_VCPU_CHUNK);
		if (chunk == NULL) {
			err = -ENOMEM;
		} else {
			struct qpd_vcpu *v = &chunk[vcpu % QPD_VCPU_CHUNK];

			ck_pr_store_int(&v->node, node);
			ck_pr_store_uint(&v->node_set, 1);
			ck_pr_store_int(&v->placed, node + 1);
		}
		pthread_mutex_unlock(&q->lock);
	}
	return err ? QPD_FAIL(q, err) : 0;
}

int
qpd_vcpu_get_node(struct qpd *q, unsigned vcpu)
{
	struct qpd_vcpu *v = q ? qpd__vcpu(q, vcpu) : NULL;

	/* A block exists for all 64 of a chunk: check this one was used. */
	if (v == NULL ||
	    (!ck_pr_load_uint(&v->node_set) && ck_pr_load_ptr(&v->rec.global) == NULL))
		return QPD_FAIL(q, -EINVAL);
	return ck_pr_load_int(&v->node);
}

/* Under q->lock: mirror a global mask bit into every online vCPU. */
void
qpd__vcpus_set_mask_bit(struct qpd *q, enum qpd_event ev, bool on)
{
	unsigned i;

	for (i = 0; i < q->core.num_vcpus; i++) {
		struct qpd_vcpu *v = qpd__vcpu(q, i);

		if (v == NULL || !v->online)
			continue;
		if (on)
			CK_BITMAP_SET(&v->mask, ev);
		else
			CK_BITMAP_RESET(&v->mask, ev);
	}
}

/* In a fork child: the threads of all vCPUs but the caller's are gone. */
void
qpd__vcpus_after_fork(struct qpd *q)
{
	unsigned i;

	for (i = 0; i < q->core.num_vcpus; i++) {
		struct qpd_vcpu *v = qpd__vcpu(q, i);

		if (v != NULL && v->rec.global != NULL)
			ck_pr_store_uint(&v->rec.active, 0);
	}
}

uint64_t
qpd__vcpus_sum_dispatch(struct qpd *q, enum qpd_event ev)
{
	uint64_t sum = 0;
	unsigned i;

	for (i = 0; i < q->core.num_vcpus; i++) {
		struct qpd_vcpu *v = qpd__vcpu(q, i);

		if (v != NULL)
			sum += ck_pr_load_64(&v->n_dispatch[ev]);
	}
	return sum;
}

void
qpd__vcpus_destroy(struct qpd *q)
{
	unsigned i;

	for (i = 0; i < q->n_chunks; i++) {
		struct qpd_vcpu **page = q->core.vdir[i / QPD_VDIR_PAGE];

		if (page != NULL) {
			qpd__dealloc(page[i % QPD_VDIR_PAGE]);
			page[i % QPD_VDIR_PAGE] = NULL;
		}
	}
	for (i = 0; i < q->n_chunks; i += QPD_VDIR_PAGE) {
		qpd__dealloc(q->core.vdir[i / QPD_VDIR_PAGE]);
		q->core.vdir[i / QPD_VDIR_PAGE] = NULL;
	}
}
