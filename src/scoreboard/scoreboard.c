/*
 * Scoreboards: arenas of per-vCPU regions, one column per scoreboard.
 *
 * The layout.  An arena is one anonymous mapping of `cap` regions of
 * `region` bytes, region v belonging to vCPU index v.  A scoreboard is a
 * column of an arena: the same offset col_off in every region, as wide as
 * its element rounded up to the slot alignment.  So the slot of (s, v) is
 * base + v * stride with base = arena + col_off and stride = region, for
 * every v below the arena's cap.  Small elements share arenas, packed as
 * tightly as upstream QEMU packs them (a region holds one vCPU's slots
 * only, so packing shares no cache line between vCPUs).  The first small
 * arena has regions of QPD_SB_REGION_MIN bytes (two lines), each next one
 * twice the last, up to QPD_SB_REGION: a plugin with a few scoreboards
 * pays two lines per vCPU index (a linux-user program whose threads relay
 * climbs to thousands of indices), one with tens of thousands (one per
 * translated block) gets a few dozen arenas.  An element larger than
 * QPD_SB_REGION gets an arena whose region is its own size rounded up to a
 * page.  Arenas are added as scoreboards are created, so their number and
 * size have no limit but
 * memory; nothing is reserved up front, and untouched pages cost nothing.
 *
 * Growth.  Every arena has regions for every index below q->sb_cap.  A new
 * vCPU index past it raises the capacity of every arena in place: nothing
 * moves, so running vCPUs and translated code that embedded base and
 * stride are unaffected, and no one is stopped.  An arena holds address
 * space for its growth (up to 256 MiB, inaccessible until used: no memory,
 * no commit charge), so growth within it is an mprotect(2) that nothing
 * else can prevent; and it sits at the low end of a free gap as large as
 * it could ever grow (a probe mapping, released at once), so growth past
 * what it holds is an mremap(2) in place: the kernel hands out addresses
 * top-down, so other mappings fill that gap last.  Only when that gap has
 * been taken anyway (or a small RLIMIT_AS let it hold nothing) must an
 * arena move: qpd_scoreboard_reserve() does that only when its caller
 * allows it (every slot user stopped, as QEMU stops every vCPU for each
 * growth), and counts it.  The pages move with mremap (no copy); with
 * MREMAP_DONTUNMAP the old addresses stay mapped, zero-filled, until a
 * grace period has passed, so a stray reader inside a section does not
 * fault.
 *
 * Why this is safe.  base and stride change only in a move, which the
 * caller makes exclusive; max_vcpus only grows, after the memory it
 * covers is mapped.  Creating a scoreboard takes a free column under
 * q->lock and never touches another column.
 *
 * Freeing.  A freed column is zeroed and returned to its arena's free
 * list only from an epoch callback, after every slice that might still
 * run a dynamic list referring to it has ended.  Zeroing covers every
 * region an index was handed out for (slot_hwm), so every new slot starts
 * zeroed.  Descriptors come from slabs, one cache line each.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#ifdef QPD_HAVE_NUMA
#include <fcntl.h>
#include <linux/mempolicy.h>
#include <sys/syscall.h>
#endif

#include "../core/internal.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

#define DEFAULT_SLOT_ALIGN 8u
/* Capacity of the first arenas: grown in place from there. */
#define INITIAL_CAP 64u

static size_t
page_size(void)
{
	long p = sysconf(_SC_PAGESIZE);

	return p > 0 ? (size_t)p : 4096;
}

static size_t
round_up(size_t v, size_t to)
{
	return (v + to - 1) / to * to;
}

/*
 * Region size of a new arena for a column of len bytes: small arenas come
 * in doubling sizes from QPD_SB_REGION_MIN to QPD_SB_REGION, so that a few
 * scoreboards cost a few lines per vCPU index and thousands cost no more
 * arenas than needed; a larger column gets its size in pages.
 */
static size_t
region_for(struct qpd *q, size_t len)
{
	size_t r = q->sb_next_region;

	if (len > QPD_SB_REGION)
		return round_up(len, page_size());
	while (r < len)
		r *= 2;
	return r;
}

/* Bytes mapped for cap regions of a (whole pages). */
static size_t
span(const struct qpd_sb_arena *a, unsigned cap)
{
	return round_up((size_t)cap * a->region, page_size());
}

/* The most indices an arena of this region may ever hold. */
static unsigned
cap_limit(const struct qpd *q, size_t region)
{
	size_t n = QPD_SB_SPAN_MAX / region;

	return n < q->core.max_vcpus ? (unsigned)n : q->core.max_vcpus;
}

/*
 * Address space left free above an arena's largest size: other mappings
 * fill the gap from its top end meanwhile.  A guest with 256 threads maps
 * 2 GiB of stacks (and its emulator as many host stacks) before its
 * vCPU indices reach 256, so the slack is far larger than any program's
 * mappings: it costs nothing, the probe is released at once.
 */
#define GAP_SLACK ((size_t)64 << 30)

/* The most address space an arena holds beyond what it uses. */
#define HOLD_MAX ((size_t)256 << 20)

/*
 * Whether the process has an address-space limit (RLIMIT_AS): then an
 * arena holds nothing it does not use, since what it holds would count
 * against what the embedder needs (QEMU's translation buffer, say).
 */
static bool
as_limited(void)
{
	struct rlimit r;

	return getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY;
}

/*
 * Maps an arena's len bytes, zero-filled, holding more address space for
 * its growth to `want` bytes (see the essay).  It holds up to HOLD_MAX
 * bytes itself, the part past len inaccessible (PROT_NONE: no memory, no
 * commit charge), so that growth within it is an mprotect nothing mapped
 * meanwhile can prevent (a debugger's or valgrind's own mappings land
 * anywhere); it sits at the low end of a free gap of `want` bytes plus
 * GAP_SLACK, for growth past that.  Under an RLIMIT_AS it holds len
 * alone.  *held gets the bytes mapped; MAP_FAILED on failure.
 */
static char *
map_arena(size_t len, size_t want, size_t *held)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	size_t hold = want < HOLD_MAX ? want : HOLD_MAX;
	size_t room = want + GAP_SLACK;
	char *p;

	if (hold < len || as_limited())
		hold = len;
	p = mmap(NULL, room, PROT_NONE, flags, -1, 0);
	if (p != MAP_FAILED) {
		munmap(p + hold, room - hold);
	} else {
		room = hold;
		p = mmap(NULL, hold, PROT_NONE, flags, -1, 0);
	}
	if (p != MAP_FAILED) {
		if (mprotect(p, len, PROT_READ | PROT_WRITE) == 0) {
			*held = hold;
			return p;
		}
		munmap(p, hold);
	}
	*held = len;
	return mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
}

/* Makes a's first `len` bytes usable in place; false if it cannot. */
static bool
arena_grow_in_place(struct qpd_sb_arena *a, size_t len)
{
	size_t used = span(a, a->cap);
	int rw = PROT_READ | PROT_WRITE;

	if (len <= a->held)
		return len == used || mprotect(a->mem + used, len - used, rw) == 0;
	/* Past what it holds: one accessible mapping first, then extend. */
	if (a->held > used && mprotect(a->mem + used, a->held - used, rw) != 0)
		return false;
	if (mremap(a->mem, a->held, len, 0) == MAP_FAILED)
		return false;
	a->held = len;
	return true;
}

int
qpd__arena_init(struct qpd *q)
{
	unsigned align = q->cfg.slot_align ? q->cfg.slot_align
					   : DEFAULT_SLOT_ALIGN;

	if (align < 8 || align > page_size() || (align & (align - 1)) != 0)
		return -EINVAL;
	q->slot_align = align;
	q->sb_next_region = QPD_SB_REGION_MIN;
	q->sb_cap = q->core.max_vcpus < INITIAL_CAP ? q->core.max_vcpus
						     : INITIAL_CAP;
	return 0;
}

/*
 * Descriptors come from slabs (a plugin may create one scoreboard per
 * translated block: one cache line each, no allocator header), under
 * q->lock; a freed one is reused.  Slabs live until qpd_free().
 */
#define SLAB_DESCS 1023u

struct sb_slab {
	struct sb_slab *next;
	unsigned used;
	struct qpd_scoreboard d[SLAB_DESCS] __attribute__((aligned(QPD_CACHELINE)));
};

/* A zeroed descriptor, or NULL (no memory). */
static struct qpd_scoreboard *
desc_get_locked(struct qpd *q)
{
	struct qpd_scoreboard *sb = q->sb_free;
	struct sb_slab *s = q->sb_slabs;

	if (sb != NULL) {
		q->sb_free = (struct qpd_scoreboard *)(void *)sb->base;
		memset(sb, 0, sizeof(*sb));
		return sb;
	}
	if (s == NULL || s->used == SLAB_DESCS) {
		s = qpd__alloc(sizeof(*s));
		if (s == NULL)
			return NULL;
		s->next = q->sb_slabs;
		q->sb_slabs = s;
	}
	return &s->d[s->used++];
}

/* Back on the free list (its base links it). */
static void
desc_put_locked(struct qpd *q, struct qpd_scoreboard *sb)
{
	sb->base = (char *)q->sb_free;
	q->sb_free = sb;
}

/* Called with no slot user left: frees every arena and descriptor. */
void
qpd__arena_destroy(struct qpd *q)
{
	struct qpd_sb_arena *a, *next;
	while (q->sb_slabs != NULL) {
		struct sb_slab *next_slab = q->sb_slabs->next;

		qpd__dealloc(q->sb_slabs);
		q->sb_slabs = next_slab;
	}
	for (a = q->arenas; a != NULL; a = next) {
		next = a->next;
		munmap(a->mem, a->held);
		qpd__dealloc(a->free_ext);
		qpd__dealloc(a);
	}
	q->arenas = NULL;
}

static void arena_bind_locked(struct qpd *q, struct qpd_sb_arena *a,
			      unsigned from);

/* A new arena of `region` bytes per vCPU with q->sb_cap regions. */
static struct qpd_sb_arena *
arena_new_locked(struct qpd *q, size_t region)
{
	struct qpd_sb_arena *a = qpd__alloc(sizeof(*a));

	if (a == NULL)
		return NULL;
	a->free_ext = qpd__alloc(sizeof(*a->free_ext) * 4);
	if (a->free_ext == NULL)
		goto fail;
	a->q = q;
	a->region = region;
	a->mem = map_arena(span(a, q->sb_cap), span(a, cap_limit(q, region)),
			   &a->held);
	if (a->mem == MAP_FAILED)
		goto fail;
	a->cap = q->sb_cap;
	if (region < QPD_SB_REGION && region * 2 > q->sb_next_region)
		q->sb_next_region = region * 2;
	a->cap_free_ext = 4;
	a->n_free_ext = 1;
	a->free_ext[0] = (struct qpd_extent){ .off = 0, .len = region };
	a->next = q->arenas;
	q->arenas = a;
	q->n_sb_arenas++;
	arena_bind_locked(q, a, 0);
	return a;
fail:
	qpd__dealloc(a->free_ext);
	qpd__dealloc(a);
	return NULL;
}

/* First fit; returns the column offset or (size_t)-1 when full. */
static size_t
column_take(struct qpd_sb_arena *a, size_t len)
{
	for (unsigned i = 0; i < a->n_free_ext; i++) {
		struct qpd_extent *x = &a->free_ext[i];
		size_t off = x->off;

		if (x->len < len)
			continue;
		x->off += len;
		x->len -= len;
		if (x->len == 0) {
			memmove(x, x + 1, (a->n_free_ext - i - 1) * sizeof(*x));
			a->n_free_ext--;
		}
		return off;
	}
	return (size_t)-1;
}

/*
 * Makes room in a's free list for one more extent beyond those already
 * promised to frees still waiting for their grace period, so that the
 * epoch callback never allocates; called before anything changes.
 */
static int
extents_reserve(struct qpd_sb_arena *a)
{
	struct qpd_extent *n;

	if (a->n_free_ext + a->n_promised < a->cap_free_ext)
		return 0;
	n = qpd__alloc(sizeof(*n) * a->cap_free_ext * 2);
	if (n == NULL)
		return -ENOMEM;
	memcpy(n, a->free_ext, sizeof(*n) * a->n_free_ext);
	qpd__dealloc(a->free_ext);
	a->free_ext = n;
	a->cap_free_ext *= 2;
	return 0;
}

/* Returns a column, coalescing with its neighbours; room was reserved. */
static void
column_give(struct qpd_sb_arena *a, size_t off, size_t len)
{
	unsigned i = 0;
	struct qpd_extent *x;

	while (i < a->n_free_ext && a->free_ext[i].off < off)
		i++;
	memmove(&a->free_ext[i + 1], &a->free_ext[i],
		(a->n_free_ext - i) * sizeof(*x));
	a->n_free_ext++;
	x = &a->free_ext[i];
	x->off = off;
	x->len = len;
	if (i + 1 < a->n_free_ext && x->off + x->len == x[1].off) {
		x->len += x[1].len;
		memmove(&x[1], &x[2], (a->n_free_ext - i - 2) * sizeof(*x));
		a->n_free_ext--;
	}
	if (i > 0 && x[-1].off + x[-1].len == x->off) {
		x[-1].len += x->len;
		memmove(x, x + 1, (a->n_free_ext - i - 1) * sizeof(*x));
		a->n_free_ext--;
	}
}

/*
 * Zeroes [p, p + len) without committing memory that is already zero:
 * reading an untouched page maps the shared zero page, writing would
 * allocate one per vCPU region.  Whole pages go back to the kernel.
 */
static void
zero_if_dirty(char *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)(void *)p;

	/* Columns are slot-aligned (>= 8 bytes) and a multiple of 8 long. */
	for (size_t i = 0; i < len / sizeof(*w); i++) {
		if (w[i] != 0) {
			memset(p, 0, len);
			return;
		}
	}
}

static void
zero_range(char *p, size_t len)
{
	size_t page = page_size();
	char *lo = (char *)(((uintptr_t)p + page - 1) & ~(uintptr_t)(page - 1));
	char *hi = (char *)(((uintptr_t)p + len) & ~(uintptr_t)(page - 1));

	if (hi > lo && madvise(lo, (size_t)(hi - lo), MADV_DONTNEED) == 0) {
		zero_if_dirty(p, (size_t)(lo - p));
		zero_if_dirty(hi, (size_t)(p + len - hi));
		return;
	}
	zero_if_dirty(p, len);
}

/* Epoch callback, under q->lock: no slice can still use the column. */
static void
scoreboard_reclaim(ck_epoch_entry_t *e)
{
	QPD_TSAN_GRACE_PASSED();
	struct qpd_scoreboard *sb = (struct qpd_scoreboard *)(void *)
		((char *)e - offsetof(struct qpd_scoreboard, retire));
	struct qpd_sb_arena *a = sb->arena;
	struct qpd *q = a->q;
	unsigned n = ck_pr_load_uint(&q->slot_hwm);

	if (n > a->cap)
		n = a->cap;
	for (unsigned v = 0; v < n; v++)
		zero_range(a->mem + (size_t)v * a->region + sb->col_off,
			   sb->col_size);
	column_give(a, sb->col_off, sb->col_size);
	a->n_promised--;
	desc_put_locked(q, sb);
}

static void
hwm_raise(struct qpd *q, unsigned vcpu)
{
	unsigned cur = ck_pr_load_uint(&q->slot_hwm);

	while (vcpu >= cur &&
	       !ck_pr_cas_uint_value(&q->slot_hwm, cur, vcpu + 1, &cur))
		;
}

/* A free column of len bytes, first fit, newest arena first; or -1. */
static size_t
column_find_locked(struct qpd *q, size_t region, size_t len,
		   struct qpd_sb_arena **out)
{
	struct qpd_sb_arena *a;
	size_t off;

	for (a = q->arenas; a != NULL; a = a->next) {
		off = column_take(a, len);
		if (off != (size_t)-1) {
			*out = a;
			return off;
		}
	}
	a = arena_new_locked(q, region);
	if (a == NULL)
		return (size_t)-1;
	*out = a;
	return column_take(a, len);
}

struct qpd_scoreboard *
qpd_scoreboard_new(struct qpd *q, size_t elem_size)
{
	struct qpd_scoreboard *sb = NULL;
	struct qpd_sb_arena *a = NULL;
	size_t len, region, off;
	int err = 0;

	if (q == NULL || elem_size == 0 ||
	    elem_size > QPD_SCOREBOARD_MAX_ELEM) {
		errno = EINVAL;
		QPD_FAIL(q, -EINVAL);
		return NULL;
	}
	len = round_up(elem_size, q->slot_align);
	pthread_mutex_lock(&q->lock);
	region = region_for(q, len);
	if ((size_t)q->sb_cap * region > QPD_SB_SPAN_MAX) {
		err = -EINVAL; /* too large for the indices already handed out */
	} else if ((sb = desc_get_locked(q)) == NULL) {
		err = -ENOMEM;
	} else if ((off = column_find_locked(q, region, len, &a)) ==
		   (size_t)-1) {
		desc_put_locked(q, sb);
		err = -ENOMEM;
	} else if (!qpd__ptrset_add(&q->live_sb, sb)) {
		column_give(a, off, len);
		desc_put_locked(q, sb);
		err = -ENOMEM;
	} else {
		/* A column is zero when taken: fresh, or zeroed when freed. */
		sb->arena = a;
		sb->col_off = off;
		sb->col_size = (unsigned)len;
		sb->elem_size = (unsigned)elem_size;
		sb->stride = a->region;
		sb->base = a->mem + off;
		ck_pr_store_uint(&sb->max_vcpus, a->cap);
		ck_pr_store_64(&q->sb_gen, q->sb_gen + 1);
	}
	pthread_mutex_unlock(&q->lock);
	if (err != 0) {
		errno = -err;
		QPD_FAIL(q, err);
		return NULL;
	}
	return sb;
}

int
qpd_scoreboard_free(struct qpd *q, struct qpd_scoreboard *sb)
{
	int err = 0;

	if (q == NULL || sb == NULL)
		return QPD_FAIL(q, -EINVAL);
	pthread_mutex_lock(&q->lock);
	if (!qpd__ptrset_has(&q->live_sb, sb)) {
		err = -ENOENT;
	} else if (extents_reserve(sb->arena) != 0) {
		err = -ENOMEM; /* still live: the caller may retry */
	} else {
		qpd__ptrset_del(&q->live_sb, sb);
		sb->arena->n_promised++;
		ck_pr_store_64(&q->sb_gen, q->sb_gen + 1);
		qpd__retire_locked(q, &sb->retire, scoreboard_reclaim);
	}
	pthread_mutex_unlock(&q->lock);
	return err ? QPD_FAIL(q, err) : 0;
}

uint64_t
qpd_scoreboard_generation(const struct qpd_scoreboard *sb)
{
	return sb ? ck_pr_load_64(&sb->arena->q->sb_gen) : 0;
}

unsigned
qpd_scoreboard_capacity(struct qpd *q)
{
	return q ? ck_pr_load_uint(&q->sb_cap) : 0;
}

/* Sets max_vcpus (and, when moved, base) of every live scoreboard of a. */
static void
arena_publish_locked(struct qpd *q, struct qpd_sb_arena *a, bool moved)
{
	ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
	void *p;

	/* The regions exist before any reader may index them. */
	ck_pr_fence_store();
	while (ck_hs_next(&q->live_sb, &it, &p)) {
		struct qpd_scoreboard *sb = p;

		if (sb->arena != a)
			continue;
		if (moved)
			ck_pr_store_ptr(&sb->base, a->mem + sb->col_off);
		ck_pr_store_uint(&sb->max_vcpus, a->cap);
	}
}

/* Old addresses of a moved arena, unmapped after a grace period. */
struct landing {
	ck_epoch_entry_t retire; /* first: the epoch callback casts back */
	void *mem;
	size_t len;
};

static void
landing_reclaim(ck_epoch_entry_t *e)
{
	QPD_TSAN_GRACE_PASSED();
	struct landing *l = (struct landing *)(void *)e;

	munmap(l->mem, l->len);
	qpd__dealloc(l);
}

/*
 * Moves a's regions to a new place with room for cap indices; the caller
 * stopped every slot user.  0 or -ENOMEM (a unchanged).
 */
static int
arena_move_locked(struct qpd *q, struct qpd_sb_arena *a, unsigned cap)
{
	size_t old_len = span(a, a->cap), held;
	struct landing *l = qpd__alloc(sizeof(*l));
	char *to;
	void *moved;

	if (l == NULL)
		return -ENOMEM;
	to = map_arena(span(a, cap), span(a, cap_limit(q, a->region)), &held);
	if (to == MAP_FAILED) {
		qpd__dealloc(l);
		return -ENOMEM;
	}
	/* The pages themselves move; the old range stays mapped, empty. */
	moved = mremap(a->mem, old_len, old_len,
		       MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to);
	if (moved == MAP_FAILED) {
		/* Kernels before 5.7: copy instead, keeping the old range. */
		memcpy(to, a->mem, old_len);
	}
	l->mem = a->mem;
	l->len = a->held;
	qpd__retire_locked(q, &l->retire, landing_reclaim);
	a->mem = to;
	a->held = held;
	a->cap = cap;
	q->n_sb_moved++;
	arena_publish_locked(q, a, true);
	return 0;
}

int
qpd_scoreboard_reserve(struct qpd *q, unsigned n, bool may_move)
{
	struct qpd_sb_arena *a;
	unsigned cap;
	bool stuck = false, moved = false;
	int err = 0;

	if (q == NULL || n > q->core.max_vcpus)
		return QPD_FAIL(q, -EINVAL);
	if (n <= ck_pr_load_uint(&q->sb_cap))
		return 0;
	pthread_mutex_lock(&q->lock);
	/* Doubling, as QEMU grows, within what every arena may span. */
	cap = q->sb_cap;
	while (cap < n)
		cap = cap > q->core.max_vcpus / 2 ? q->core.max_vcpus : cap * 2;
	for (a = q->arenas; a != NULL && err == 0; a = a->next) {
		unsigned lim = cap_limit(q, a->region);
		size_t in_hold = a->held / a->region;

		if (lim < n)
			err = -E2BIG;
		else if (cap > lim)
			cap = lim;
		/* Rather less than doubling than past what an arena holds. */
		if (in_hold >= n && cap > in_hold)
			cap = (unsigned)in_hold;
	}
	for (a = q->arenas; a != NULL && err == 0; a = a->next) {
		if (a->cap >= cap)
			continue;
		if (arena_grow_in_place(a, span(a, cap))) {
			a->cap = cap;
			q->n_sb_grown++;
			arena_bind_locked(q, a, 0);
			arena_publish_locked(q, a, false);
		} else if (!may_move) {
			stuck = true;
		} else if ((err = arena_move_locked(q, a, cap)) == 0) {
			arena_bind_locked(q, a, 0);
			moved = true;
		}
	}
	if (err == 0 && stuck)
		err = -EAGAIN;
	if (err == 0) {
		ck_pr_store_uint(&q->sb_cap, cap);
		ck_pr_store_64(&q->sb_gen, q->sb_gen + 1);
	}
	pthread_mutex_unlock(&q->lock);
	if (err == -EAGAIN)
		return err; /* a request to call again with may_move, not a fault */
	return err ? QPD_FAIL(q, err) : moved;
}

void *
qpd_scoreboard_find(struct qpd_scoreboard *sb, unsigned vcpu)
{
	if (sb == NULL)
		return NULL;
	if (vcpu >= ck_pr_load_uint(&sb->max_vcpus) &&
	    (vcpu >= sb->arena->q->core.max_vcpus ||
	     qpd_scoreboard_reserve(sb->arena->q, vcpu + 1, false) != 0 ||
	     vcpu >= ck_pr_load_uint(&sb->max_vcpus)))
		return NULL;
	hwm_raise(sb->arena->q, vcpu);
	return qpd_u64_slot((qpd_u64){ sb, 0 }, vcpu);
}

uint64_t
qpd_u64_sum(qpd_u64 e)
{
	unsigned n, v, max;
	uint64_t sum = 0;

	if (e.score == NULL)
		return 0;
	n = qpd_num_vcpus(e.score->arena->q);
	max = ck_pr_load_uint(&e.score->max_vcpus);
	for (v = 0; v < n && v < max; v++)
		sum += ck_pr_load_64(qpd_u64_slot(e, v));
	return sum;
}

#ifdef QPD_HAVE_NUMA
/*
 * NUMA through the system calls themselves, not libnuma: libnuma's
 * constructor reads /proc and /sys in every process that links it, which
 * an emulator linking qpd would pay at every start, plugins or not.
 */

/* Highest possible node number, from sysfs, read once; 0 if unknown. */
static int
max_node(void)
{
	static int cached = -1;
	int n = ck_pr_load_int(&cached);
	char buf[64];
	ssize_t len;
	int fd;

	if (n >= 0)
		return n;
	n = 0;
	fd = open("/sys/devices/system/node/possible", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len > 0) {
			char *p = buf;

			buf[len] = '\0';
			/* "0", "0-3" or "0,2-5": the last number is the highest. */
			for (char *q = buf; *q != '\0'; q++) {
				if (*q == ',' || *q == '-')
					p = q + 1;
			}
			n = atoi(p);
		}
	}
	ck_pr_store_int(&cached, n);
	return n;
}

/* Whether the kernel has NUMA memory policies at all. */
static bool
numa_policies(void)
{
	int mode;

	return syscall(SYS_get_mempolicy, &mode, NULL, 0UL, NULL, 0UL) == 0;
}
#endif

#ifdef QPD_HAVE_NUMA
/* Whether placing pages can matter: NUMA policies and more than one node. */
static bool
numa_useful(void)
{
	static int cached = -1;
	int v = ck_pr_load_int(&cached);

	if (v < 0) {
		v = numa_policies() && max_node() > 0;
		ck_pr_store_int(&cached, v);
	}
	return v;
}

/* Binds vcpu's region of a to node; with move, touched pages migrate. */
static int
region_bind(struct qpd_sb_arena *a, unsigned vcpu, int node, bool move)
{
	unsigned long mask[16] = { 0 };

	mask[node / 64] |= 1ul << (node % 64);
	if (syscall(SYS_mbind, a->mem + (size_t)vcpu * a->region, a->region,
		    MPOL_PREFERRED, mask, sizeof(mask) * 8 + 1,
		    move ? MPOL_MF_MOVE : 0) != 0)
		return -errno;
	return 0;
}
#endif

/*
 * Binds the regions of a from index `from` on to the nodes their vCPUs
 * were placed on (best effort: a kernel that refuses still runs them).
 */
static void
arena_bind_locked(struct qpd *q, struct qpd_sb_arena *a, unsigned from)
{
#ifdef QPD_HAVE_NUMA
	unsigned n = ck_pr_load_uint(&q->core.num_vcpus);

	if (!numa_useful() || a->region % page_size() != 0)
		return;
	for (unsigned v = from; v < n && v < a->cap; v++) {
		struct qpd_vcpu *vc = qpd__vcpu(q, v);
		int placed = vc ? ck_pr_load_int(&vc->placed) : 0;

		if (placed > 0)
			region_bind(a, v, placed - 1, false);
	}
#else
	(void)q;
	(void)a;
	(void)from;
#endif
}

/*
 * Binds vCPU vcpu's regions in every arena to `node`; with `move`, pages
 * already touched migrate too (costly: the kernel drains every CPU's page
 * lists).  Nothing to do, and 0, for node 0 on a machine of one node.
 */
int
qpd__arena_place(struct qpd *q, unsigned vcpu, int node, bool move)
{
	hwm_raise(q, vcpu);
#ifdef QPD_HAVE_NUMA
	int err = 0;

	if (node < 0 || node > max_node() || node >= 16 * 64)
		return -EINVAL;
	if (!numa_useful())
		return 0;
	pthread_mutex_lock(&q->lock);
	for (struct qpd_sb_arena *a = q->arenas; a != NULL && err == 0;
	     a = a->next) {
		/* Smaller regions share pages: first touch places them. */
		if (vcpu < a->cap && a->region % page_size() == 0)
			err = region_bind(a, vcpu, node, move);
	}
	pthread_mutex_unlock(&q->lock);
	return err;
#else
	(void)move;
	return node == 0 ? 0 : -EINVAL;
#endif
}

/* The NUMA node of the CPU the calling thread runs on; 0 without NUMA. */
int
qpd__current_node(void)
{
#ifdef QPD_HAVE_NUMA
	unsigned cpu, node;

	if (syscall(SYS_getcpu, &cpu, &node, NULL) != 0)
		return 0;
	return (int)node;
#else
	return 0;
#endif
}

/* A plugin may create one scoreboard per translated block: keep it small. */
_Static_assert(sizeof(struct qpd_scoreboard) <= QPD_CACHELINE,
	       "a scoreboard descriptor fits one cache line");
