/*
 * Dynamic callback lists.
 *
 * A list is an array of entries and a count, both published with ck_pr
 * stores.  Appending writes the entry past the published count, fences,
 * then stores the new count, so an executor that loads the count first
 * (qpd__dyn_snapshot) only walks entries that are complete.  When the
 * array is full the appender copies it into one twice the size, publishes
 * the new pointer before any count that needs it, and retires the old
 * array through the epoch: an executor still walking the old one is inside
 * its slice, so the old array outlives it.  The count only grows, and every
 * array ever published holds the first `count` entries it was published
 * with, so any (count, array) pair an executor loads is consistent.
 *
 * Lists are tracked in q->live_dyn.  qpd_flush() (like QEMU's flush of
 * translated code) retires them all at once; qpd_dyn_retire() retires one.
 * Either way the list is freed from an epoch callback, after every slice
 * that might still execute it has ended.
 *
 * Memory entries match an access when their rw bits intersect the access's,
 * and the walk never stops early: QEMU 9.0 broke out of the loop at the
 * first entry that did not match, skipping later matching ones.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "../core/internal.h"

/* An entry array with the epoch entry that retires it. */
struct dyn_arr {
	ck_epoch_entry_t retire;
	struct qpd_dyn_entry e[];
};

static struct dyn_arr *
arr_of(struct qpd_dyn_entry *e)
{
	return (struct dyn_arr *)(void *)((char *)e -
					  offsetof(struct dyn_arr, e));
}

static void
arr_free_cb(ck_epoch_entry_t *e)
{
	qpd__dealloc(e);
}

static void
list_free_cb(ck_epoch_entry_t *e)
{
	struct qpd_dyn *l = (struct qpd_dyn *)(void *)
		((char *)e - offsetof(struct qpd_dyn, retire));

	if (l->e != NULL)
		qpd__dealloc(arr_of(l->e));
	qpd__dealloc(l);
}

struct qpd_dyn *
qpd_dyn_new(struct qpd *q)
{
	struct qpd_dyn *l;
	bool ok;

	if (q == NULL) {
		errno = EINVAL;
		return NULL;
	}
	l = qpd__alloc(sizeof(*l));
	if (l == NULL)
		goto nomem;
	l->q = q;
	pthread_mutex_lock(&q->lock);
	ok = qpd__ptrset_add(&q->live_dyn, l);
	if (ok)
		ck_pr_store_uint(&q->n_live_dyn, q->n_live_dyn + 1);
	pthread_mutex_unlock(&q->lock);
	if (ok)
		return l;
	qpd__dealloc(l);
nomem:
	errno = ENOMEM;
	QPD_FAIL(q, -ENOMEM);
	return NULL;
}

int
qpd_dyn_retire(struct qpd *q, struct qpd_dyn *list)
{
	int err = 0;

	if (q == NULL || list == NULL)
		return QPD_FAIL(q, -EINVAL);
	pthread_mutex_lock(&q->lock);
	if (qpd__ptrset_del(&q->live_dyn, list)) {
		ck_pr_store_uint(&q->n_live_dyn, q->n_live_dyn - 1);
		qpd__retire_locked(q, &list->retire, list_free_cb);
	} else
		err = -ENOENT;
	pthread_mutex_unlock(&q->lock);
	return err ? QPD_FAIL(q, err) : 0;
}

/* Under q->lock, from qpd_flush(): every live list goes. */
void
qpd__dyn_retire_all_locked(struct qpd *q)
{
	ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
	void *p;

	/*
	 * Remove entries one by one: unlike a reset, removal never allocates,
	 * so no list can be retired and yet stay in the set.
	 */
	while (ck_hs_next(&q->live_dyn, &it, &p)) {
		struct qpd_dyn *l = p;

		qpd__ptrset_del(&q->live_dyn, l);
		qpd__retire_locked(q, &l->retire, list_free_cb);
	}
	ck_pr_store_uint(&q->n_live_dyn, 0);
}

/* Publishes *ne as the list's next entry. */
static int
dyn_append(struct qpd_dyn *l, const struct qpd_dyn_entry *ne)
{
	if (l->n == l->cap) {
		unsigned cap = l->cap ? l->cap * 2 : 4;
		struct dyn_arr *a;

		if (cap < l->cap)
			return -ENOMEM;
		a = qpd__alloc(sizeof(*a) + cap * sizeof(a->e[0]));
		if (a == NULL)
			return -ENOMEM;
		if (l->n)
			memcpy(a->e, l->e, l->n * sizeof(a->e[0]));
		/* The copied entries before the pointer (store-store). */
		ck_pr_fence_store();
		if (l->e != NULL) {
			struct dyn_arr *old = arr_of(l->e);

			ck_pr_store_ptr(&l->e, a->e);
			pthread_mutex_lock(&l->q->lock);
			qpd__retire_locked(l->q, &old->retire, arr_free_cb);
			pthread_mutex_unlock(&l->q->lock);
		} else {
			ck_pr_store_ptr(&l->e, a->e);
		}
		l->cap = cap;
	}
	l->e[l->n] = *ne;
	/* The entry before the count that exposes it (store-store). */
	ck_pr_fence_store();
	ck_pr_store_uint(&l->n, l->n + 1);
	return 0;
}

/* A counter reference must name a live scoreboard and an aligned u64. */
static int
check_entry(struct qpd *q, qpd_u64 entry)
{
	int err = 0;

	if (entry.score == NULL || entry.offset % sizeof(uint64_t) != 0)
		return -EINVAL;
	pthread_mutex_lock(&q->lock);
	if (!qpd__ptrset_has(&q->live_sb, entry.score))
		err = -ENOENT;
	else if (entry.score->elem_size < sizeof(uint64_t) ||
		 entry.offset > entry.score->elem_size - sizeof(uint64_t))
		err = -EINVAL; /* written so that no sum can wrap */
	pthread_mutex_unlock(&q->lock);
	return err;
}

static int
add_checked(struct qpd_dyn *list, const struct qpd_dyn_entry *ne,
	    bool has_entry, const char *func)
{
	int err = 0;

	if (has_entry)
		err = check_entry(list->q, ne->entry);
	if (err == 0)
		err = dyn_append(list, ne);
	return err ? qpd__fail(list->q, err, func) : 0;
}

static bool
op_valid(enum qpd_inline_op op)
{
	return op == QPD_OP_ADD_U64 || op == QPD_OP_STORE_U64;
}

static bool
rw_valid(enum qpd_mem_rw rw)
{
	return rw >= QPD_MEM_R && rw <= QPD_MEM_RW;
}

/* A plain callback entry, errors reported as func's. */
static int
add_cb(struct qpd_dyn *list, qpd_dyn_cb_t fn, void *udata, const char *func)
{
	struct qpd_dyn_entry ne = { .kind = QPD_DYN_CB, .fn = (void *)fn,
				    .udata = udata };

	if (list == NULL)
		return -EINVAL;
	if (fn == NULL)
		return qpd__fail(list->q, -EINVAL, func);
	return add_checked(list, &ne, false, func);
}

int
qpd_dyn_add_cb(struct qpd_dyn *list, qpd_dyn_cb_t fn, void *udata)
{
	return add_cb(list, fn, udata, __func__);
}

int
qpd_dyn_add_inline(struct qpd_dyn *list, enum qpd_inline_op op,
		   qpd_u64 entry, uint64_t imm)
{
	struct qpd_dyn_entry ne = { .kind = QPD_DYN_INLINE, .op = (uint8_t)op,
				    .entry = entry, .imm = imm };

	if (list == NULL)
		return -EINVAL;
	if (!op_valid(op))
		return qpd__fail(list->q, -EINVAL, __func__);
	return add_checked(list, &ne, true, __func__);
}

int
qpd_dyn_add_cond_cb(struct qpd_dyn *list, qpd_dyn_cb_t fn, void *udata,
		    enum qpd_cond cond, qpd_u64 entry, uint64_t imm)
{
	struct qpd_dyn_entry ne = { .kind = QPD_DYN_COND_CB, .cond = (uint8_t)cond,
				    .fn = (void *)fn, .udata = udata,
				    .entry = entry, .imm = imm };

	if (list == NULL)
		return -EINVAL;
	if (fn == NULL || (unsigned)cond > QPD_COND_GE)
		return qpd__fail(list->q, -EINVAL, __func__);
	if (cond == QPD_COND_NEVER)
		return 0;
	if (cond == QPD_COND_ALWAYS)
		return add_cb(list, fn, udata, __func__);
	return add_checked(list, &ne, true, __func__);
}

int
qpd_dyn_add_mem_cb(struct qpd_dyn *list, qpd_mem_cb_t fn, enum qpd_mem_rw rw,
		   void *udata)
{
	struct qpd_dyn_entry ne = { .kind = QPD_DYN_MEM_CB, .rw = (uint8_t)rw,
				    .fn = (void *)fn, .udata = udata };

	if (list == NULL)
		return -EINVAL;
	if (fn == NULL || !rw_valid(rw))
		return qpd__fail(list->q, -EINVAL, __func__);
	return add_checked(list, &ne, false, __func__);
}

int
qpd_dyn_add_mem_inline(struct qpd_dyn *list, enum qpd_mem_rw rw,
		       enum qpd_inline_op op, qpd_u64 entry, uint64_t imm)
{
	struct qpd_dyn_entry ne = { .kind = QPD_DYN_MEM_INLINE,
				    .op = (uint8_t)op, .rw = (uint8_t)rw,
				    .entry = entry, .imm = imm };

	if (list == NULL)
		return -EINVAL;
	if (!op_valid(op) || !rw_valid(rw))
		return qpd__fail(list->q, -EINVAL, __func__);
	return add_checked(list, &ne, true, __func__);
}
