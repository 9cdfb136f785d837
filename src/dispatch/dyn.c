/*
 * Dynamic callback lists.
 *
 * A list is an array of entries and a count, both published with ck_pr
 * stores.  Appending writes the entry past the published count, fences,
 * then stores the new count, so an executor that loads the count first
 * (qpd__dyn_snapshot) only walks entries that are complete.  When the
 * array is full the appender copies it into one twice the size and
 * publishes the new pointer before any count that needs it.  The count
 * only grows, and every array ever published holds the first `count`
 * entries it was published with, so any (count, array) pair an executor
 * loads is consistent.  A replaced array stays allocated, chained to its
 * successor, until the list itself is freed: an executor may still be
 * walking it, and the list is freed only after a grace period that follows
 * its retirement, when no slice that could hold any of its arrays is left.
 * Arrays double, so the replaced ones add up to less than the current one;
 * no lock and no epoch call is needed to grow.
 *
 * Which lists are live.  qpd_flush() (like QEMU's flush of translated
 * code) retires every list and qpd_free() frees those left; qpd_dyn_retire()
 * retires one, and must answer -ENOENT, without reading through the
 * pointer, for anything that is not a live list of q (a second retire, a
 * list a flush took, a foreign or wild pointer).  So the live lists are
 * kept by address, in two places:
 *   - q->new_dyn, a ck_stack that qpd_dyn_new() pushes on with
 *     ck_stack_push_upmc: no lock, so vCPUs translating at once do not
 *     serialise;
 *   - q->live_dyn, a set of addresses (ck_hs), read and written under
 *     q->lock only.
 * Everything else happens under q->lock, which makes the lock holder the
 * stack's only consumer: qpd_dyn_retire() takes the whole stack at once
 * (ck_stack_batch_pop_upmc, a single exchange that concurrent pushes
 * cannot lose anything to) and moves every list but the one it retires
 * into the set, or back onto the stack if the set cannot grow;
 * qpd__dyn_retire_all_locked() takes the whole stack and empties the set.
 * A list is thus, at any time, on the stack, in the set, or in the hands
 * of the lock holder, and it leaves them exactly once, into the epoch, by
 * the one path that found it: never retired twice, never lost.
 *
 * qpd_flush() skips the lock when there is no list to retire: when the
 * stack is empty and then q->n_live_dyn is 0.  That count, written only
 * under q->lock, is the size of the set plus one while the lock holder has
 * a batch of the stack in hand: it is raised before the exchange that
 * empties the stack and set to its final value once the batch is in the
 * set or retired.  A flush that finds the stack empty after such an
 * exchange therefore finds the count raised, and one that finds both empty
 * comes after every list created before it began was retired.  Creating a
 * list touches nothing shared but the stack's head.
 *
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

/* An entry array and the array it replaced (NULL for the first). */
struct dyn_arr {
	struct dyn_arr *older;
	struct qpd_dyn_entry e[];
};

CK_STACK_CONTAINER(struct qpd_dyn, link, dyn_of_link)

static struct dyn_arr *
arr_of(struct qpd_dyn_entry *e)
{
	return (struct dyn_arr *)(void *)((char *)e -
					  offsetof(struct dyn_arr, e));
}

static void
list_free_cb(ck_epoch_entry_t *e)
{
	QPD_TSAN_GRACE_PASSED();
	struct qpd_dyn *l = (struct qpd_dyn *)(void *)
		((char *)e - offsetof(struct qpd_dyn, retire));
	struct dyn_arr *a = l->e != NULL && l->e != l->inl ? arr_of(l->e)
							  : NULL;

	while (a != NULL) {
		struct dyn_arr *older = a->older;

		qpd__dealloc(a);
		a = older;
	}
	qpd__dealloc(l);
}

/* A list with room for cap entries inline; failures reported as func's. */
static struct qpd_dyn *
dyn_new(struct qpd *q, unsigned cap, const char *func)
{
	struct qpd_dyn *l;

	if (q == NULL || cap > (1u << 20)) {
		errno = EINVAL;
		if (q != NULL)
			qpd__fail(q, -EINVAL, func);
		return NULL;
	}
	l = qpd__alloc(sizeof(*l) + (size_t)cap * sizeof(l->inl[0]));
	if (l == NULL) {
		errno = ENOMEM;
		qpd__fail(q, -ENOMEM, func);
		return NULL;
	}
	l->q = q;
	if (cap != 0) {
		l->e = l->inl;
		l->cap = cap;
	}
	/* The push fences l's fields before the CAS that publishes l. */
	ck_stack_push_upmc(&q->new_dyn, &l->link);
	return l;
}

struct qpd_dyn *
qpd_dyn_new(struct qpd *q)
{
	return dyn_new(q, 0, __func__);
}

struct qpd_dyn *
qpd_dyn_new_sized(struct qpd *q, unsigned cap)
{
	return dyn_new(q, cap, __func__);
}

/*
 * Takes q->new_dyn's whole stack in one exchange, counting the batch in
 * q->n_live_dyn while it is in hand (see the comment at the top); the
 * caller stores the final count.  Under q->lock, the stack's only consumer.
 */
static ck_stack_entry_t *
take_batch_locked(struct qpd *q)
{
	ck_pr_store_uint(&q->n_live_dyn, q->n_live_dyn + 1);
	/* The raised count before the stack is seen empty (store-store). */
	ck_pr_fence_store();
	return ck_stack_batch_pop_upmc(&q->new_dyn);
}

/*
 * Moves every list of q->new_dyn into q->live_dyn, except `target`, which
 * is left out (no longer tracked) and reported; a list the set has no room
 * for goes back on the stack, still live.  Under q->lock.
 */
static bool
take_new_locked(struct qpd *q, const struct qpd_dyn *target)
{
	unsigned n = q->n_live_dyn;
	ck_stack_entry_t *e = take_batch_locked(q), *next;
	bool found = false;

	for (; e != NULL; e = next) {
		struct qpd_dyn *l = dyn_of_link(e);

		next = e->next;
		if (l == target)
			found = true;
		else if (qpd__ptrset_add(&q->live_dyn, l))
			n++;
		else
			ck_stack_push_upmc(&q->new_dyn, e);
	}
	ck_pr_store_uint(&q->n_live_dyn, n);
	return found;
}

int
qpd_dyn_retire(struct qpd *q, struct qpd_dyn *list)
{
	bool found;

	if (q == NULL || list == NULL)
		return QPD_FAIL(q, -EINVAL);
	/* Compared by address only: nothing is read through list. */
	pthread_mutex_lock(&q->lock);
	found = qpd__ptrset_del(&q->live_dyn, list);
	if (found)
		ck_pr_store_uint(&q->n_live_dyn, q->n_live_dyn - 1);
	else
		found = take_new_locked(q, list);
	if (found)
		qpd__retire_locked(q, &list->retire, list_free_cb);
	pthread_mutex_unlock(&q->lock);
	return found ? 0 : QPD_FAIL(q, -ENOENT);
}

/*
 * Under q->lock, from qpd_flush() and qpd_free(): every live list goes.
 * Lists pushed after the stack is taken are not retired: their
 * qpd_dyn_new() returned after this flush began.
 */
void
qpd__dyn_retire_all_locked(struct qpd *q)
{
	ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
	ck_stack_entry_t *e = take_batch_locked(q), *next;
	void *p;

	for (; e != NULL; e = next) {
		next = e->next;
		qpd__retire_locked(q, &dyn_of_link(e)->retire, list_free_cb);
	}
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

/*
 * Publishes *ne as the list's next entry.  Appends to one list are
 * serialised by the caller; no lock is taken.
 */
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
		/* Executors may still walk it: freed with the list. */
		a->older = l->e != NULL && l->e != l->inl ? arr_of(l->e) : NULL;
		/* The copied entries before the pointer (store-store). */
		ck_pr_fence_store();
		ck_pr_store_ptr(&l->e, a->e);
		l->cap = cap;
	}
	l->e[l->n] = *ne;
	/* The entry before the count that exposes it (store-store). */
	ck_pr_fence_store();
	ck_pr_store_uint(&l->n, l->n + 1);
	return 0;
}

/*
 * Scoreboard checks without q->lock.  An append naming a scoreboard must
 * fail with -ENOENT once that scoreboard's free has returned, and the set
 * of live scoreboards (q->live_sb) can only be read under q->lock.  So an
 * append first looks in q->sb_seen: up to QPD_SB_SEEN scoreboards found in
 * q->live_sb under q->lock, stored (under q->lock, in a ck_sequence write
 * section) with the generation q->sb_gen had then, and read without a lock
 * in ck_sequence read sections, which retry on a concurrent write.  Every
 * qpd_scoreboard_free() raises q->sb_gen under q->lock before it returns,
 * so while q->sb_gen still equals sb_seen_gen no scoreboard has been freed
 * since the cached ones were seen live: they are live.  Any change of the
 * generation (a scoreboard created or freed, a vCPU index first
 * initialised) empties the cache at the next miss, which takes q->lock
 * once.  An append racing with the free of its scoreboard may see it live:
 * it is ordered before the free, as it could be under a lock.
 */

/* The counter behind qpd_scoreboard_generation(); see the comment above. */
static uint64_t
sb_set_generation(struct qpd *q)
{
	return ck_pr_load_64(&q->sb_gen);
}

/* Whether sb is cached as live and the cache is current; *seen gets it. */
static bool
sb_seen_live(struct qpd *q, const struct qpd_scoreboard *sb,
	     struct qpd_sb_seen *seen)
{
	unsigned version, i;
	uint64_t gen;
	bool hit;

	do {
		version = ck_sequence_read_begin(&q->sb_seen_seq);
		gen = ck_pr_load_64(&q->sb_seen_gen);
		hit = false;
		for (i = 0; i < QPD_SB_SEEN && !hit; i++) {
			if (ck_pr_load_ptr(&q->sb_seen[i].sb) != sb)
				continue;
			seen->sb = sb;
			seen->elem_size =
				ck_pr_load_uint(&q->sb_seen[i].elem_size);
			seen->slot_size =
				ck_pr_load_uint(&q->sb_seen[i].slot_size);
			hit = true;
		}
	} while (ck_sequence_read_retry(&q->sb_seen_seq, version));
	return hit && gen == sb_set_generation(q);
}

/* Caches *seen, found live now, in front; under q->lock. */
static void
sb_seen_put_locked(struct qpd *q, const struct qpd_sb_seen *seen)
{
	uint64_t gen = sb_set_generation(q);
	unsigned i;

	ck_sequence_write_begin(&q->sb_seen_seq);
	if (q->sb_seen_gen != gen) {
		for (i = 0; i < QPD_SB_SEEN; i++)
			ck_pr_store_ptr(&q->sb_seen[i].sb, NULL);
		ck_pr_store_64(&q->sb_seen_gen, gen);
	}
	for (i = QPD_SB_SEEN - 1; i > 0; i--) {
		ck_pr_store_ptr(&q->sb_seen[i].sb, q->sb_seen[i - 1].sb);
		ck_pr_store_uint(&q->sb_seen[i].elem_size,
				 q->sb_seen[i - 1].elem_size);
		ck_pr_store_uint(&q->sb_seen[i].slot_size,
				 q->sb_seen[i - 1].slot_size);
	}
	ck_pr_store_ptr(&q->sb_seen[0].sb, seen->sb);
	ck_pr_store_uint(&q->sb_seen[0].elem_size, seen->elem_size);
	ck_pr_store_uint(&q->sb_seen[0].slot_size, seen->slot_size);
	ck_sequence_write_end(&q->sb_seen_seq);
}

/*
 * What the checks read of a scoreboard, while it is known live (the only
 * places dyn.c looks inside struct qpd_scoreboard).
 */

/* Bytes of sb's element. */
static unsigned
sb_elem_size(const struct qpd_scoreboard *sb)
{
	return sb->elem_size;
}

/*
 * Bytes of each vCPU's slot of sb an inline op may touch: the scoreboard's
 * column, its element rounded up to the slot alignment, which no other
 * scoreboard uses and which is zeroed for a new one.
 */
static unsigned
sb_slot_size(const struct qpd_scoreboard *sb)
{
	return (unsigned)sb->col_size;
}

/* sb is a live scoreboard of q: from the cache, else under q->lock. */
static int
sb_lookup(struct qpd *q, const struct qpd_scoreboard *sb,
	  struct qpd_sb_seen *seen)
{
	int err = 0;

	if (sb_seen_live(q, sb, seen))
		return 0;
	pthread_mutex_lock(&q->lock);
	if (!qpd__ptrset_has(&q->live_sb, sb)) {
		err = -ENOENT;
	} else {
		seen->sb = sb;
		seen->elem_size = sb_elem_size(sb);
		seen->slot_size = sb_slot_size(sb);
		sb_seen_put_locked(q, seen);
	}
	pthread_mutex_unlock(&q->lock);
	return err;
}

/* What an entry's counter reference must satisfy. */
enum check {
	CHECK_NONE,    /* no counter */
	CHECK_ELEM,    /* an aligned u64 inside the element (conditions) */
	CHECK_SLOT,    /* 8 bytes anywhere inside the slot (inline ops) */
};

/*
 * A counter reference must name a live scoreboard of q and 8 bytes that
 * the check allows.  Inline ops accept what QEMU's translated code does,
 * where qemu_plugin_scoreboard_u64_in_struct() takes any offset and the
 * op is a 64-bit access at slot + offset: any offset with offset + 8 <=
 * the slot's width (sb_slot_size), aligned or not.  What would leave the
 * vCPU's slot is refused.  Nothing is changed on refusal.
 */
static int
check_entry(struct qpd *q, qpd_u64 entry, enum check check)
{
	struct qpd_sb_seen seen;
	unsigned limit;
	int err;

	if (entry.score == NULL ||
	    (check == CHECK_ELEM && entry.offset % sizeof(uint64_t) != 0))
		return -EINVAL;
	err = sb_lookup(q, entry.score, &seen);
	if (err != 0)
		return err;
	limit = check == CHECK_SLOT ? seen.slot_size : seen.elem_size;
	/* Written so that no sum can wrap. */
	if (limit < sizeof(uint64_t) || entry.offset > limit - sizeof(uint64_t))
		return -EINVAL;
	return 0;
}

static int
add_checked(struct qpd_dyn *list, const struct qpd_dyn_entry *ne,
	    enum check check, const char *func)
{
	struct qpd_dyn_entry e = *ne;
	int err = 0;

	if (check != CHECK_NONE)
		err = check_entry(list->q, e.entry, check);
	/* Aligned counters keep the aligned kinds and their executors. */
	if (check == CHECK_SLOT && e.entry.offset % sizeof(uint64_t) != 0)
		e.kind = e.kind == QPD_DYN_INLINE ?
			 QPD_DYN_INLINE_UNALIGNED : QPD_DYN_MEM_INLINE_UNALIGNED;
	if (err == 0)
		err = dyn_append(list, &e);
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
	return add_checked(list, &ne, CHECK_NONE, func);
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
	return add_checked(list, &ne, CHECK_SLOT, __func__);
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
	return add_checked(list, &ne, CHECK_ELEM, __func__);
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
	return add_checked(list, &ne, CHECK_NONE, __func__);
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
	return add_checked(list, &ne, CHECK_SLOT, __func__);
}
