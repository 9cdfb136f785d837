/*
 * Scoreboards: one reserved arena, one region per vCPU, one column per
 * scoreboard.
 *
 * The layout.  At qpd_new() the instance reserves (MAP_NORESERVE: address
 * space only, pages appear zero-filled on first touch) max_vcpus + 1
 * regions of QPD_SB_REGION (1 MiB) each.  Region 0 holds descriptors; vCPU
 * v owns region v + 1.  A scoreboard is a column: the same offset col_off
 * in every region, as wide as its element rounded up to the slot alignment
 * (and at least as wide as its descriptor, which sits in region 0 of its
 * own column).  So the slot of (scoreboard s, vCPU v) is
 * (char *)s + (v + 1) * QPD_SB_REGION, for every v below max_vcpus, from
 * the scoreboard's creation to its free: the inline add computes it from
 * the handle without loading anything, which keeps it as fast as a bare
 * per-thread counter.
 *
 * Why this is safe and never stops anyone.  Nothing ever moves: adding a
 * vCPU touches no existing slot and needs no copy, so no running vCPU and
 * no translated code that embedded base and stride can be invalidated; a
 * concurrent inline add can never be lost to a reallocation (QEMU 9.0 has
 * to stop every vCPU and flush all translated code for that).  Creating a
 * scoreboard only takes a free column under q->lock.  Regions are whole
 * pages, so two vCPUs' slots never share a cache line (nor a page: the
 * adjacent-line prefetcher cannot couple them either), and each region can
 * be bound to its vCPU's NUMA node with mbind().
 *
 * Freeing.  A freed column is zeroed and returned to the free list only
 * from an epoch callback, after every slice that might still run a dynamic
 * list referring to it has ended.  Zeroing covers every region an index
 * was handed out for (slot_hwm), so every new slot starts zeroed.
 *
 * Descriptors come from jemalloc (qpd__alloc); the arena is one mmap
 * because it must be page-aligned, placeable per page and larger than any
 * allocator would hand out without committing it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef QPD_HAVE_NUMA
#include <fcntl.h>
#include <linux/mempolicy.h>
#include <sys/syscall.h>
#endif

#include "../core/internal.h"

#define DEFAULT_SLOT_ALIGN 64u

static size_t
page_size(void)
{
	long p = sysconf(_SC_PAGESIZE);

	return p > 0 ? (size_t)p : 4096;
}

static size_t
arena_size(const struct qpd *q)
{
	return ((size_t)q->core.max_vcpus + 1) << QPD_SB_REGION_SHIFT;
}

/* Region of vCPU vcpu (region 0 holds the descriptors). */
static char *
region_of(const struct qpd *q, unsigned vcpu)
{
	return q->arena + (((size_t)vcpu + 1) << QPD_SB_REGION_SHIFT);
}

int
qpd__arena_init(struct qpd *q)
{
	unsigned align = q->cfg.slot_align ? q->cfg.slot_align
					   : DEFAULT_SLOT_ALIGN;
	void *p;

	if (align < 8 || align > page_size() || (align & (align - 1)) != 0)
		return -EINVAL;
	p = mmap(NULL, arena_size(q), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	q->arena = p;
	q->slot_align = align;
	q->free_ext = qpd__alloc(sizeof(*q->free_ext) * 4);
	if (q->free_ext == NULL) {
		munmap(p, arena_size(q));
		return -ENOMEM;
	}
	q->cap_free_ext = 4;
	q->n_free_ext = 1;
	q->free_ext[0].off = 0;
	q->free_ext[0].len = QPD_SB_REGION;
	return 0;
}

void
qpd__arena_destroy(struct qpd *q)
{
	if (q->arena != NULL)
		munmap(q->arena, arena_size(q));
	qpd__dealloc(q->free_ext);
}

/* First fit; returns the column offset or (size_t)-1 when full. */
static size_t
column_take_locked(struct qpd *q, size_t len)
{
	for (unsigned i = 0; i < q->n_free_ext; i++) {
		struct qpd_extent *x = &q->free_ext[i];
		size_t off = x->off;

		if (x->len < len)
			continue;
		x->off += len;
		x->len -= len;
		if (x->len == 0) {
			memmove(x, x + 1, (q->n_free_ext - i - 1) * sizeof(*x));
			q->n_free_ext--;
		}
		return off;
	}
	return (size_t)-1;
}

/*
 * Makes room for one more extent beyond those already promised to frees
 * still waiting for their grace period; called before anything changes.
 */
static int
extents_reserve_locked(struct qpd *q)
{
	struct qpd_extent *n;

	if (q->n_free_ext + q->n_ext_promised < q->cap_free_ext)
		return 0;
	n = qpd__alloc(sizeof(*n) * q->cap_free_ext * 2);
	if (n == NULL)
		return -ENOMEM;
	memcpy(n, q->free_ext, sizeof(*n) * q->n_free_ext);
	qpd__dealloc(q->free_ext);
	q->free_ext = n;
	q->cap_free_ext *= 2;
	return 0;
}

/* Returns a column, coalescing with its neighbours; room was reserved. */
static void
column_give_locked(struct qpd *q, size_t off, size_t len)
{
	unsigned i = 0;
	struct qpd_extent *x;

	while (i < q->n_free_ext && q->free_ext[i].off < off)
		i++;
	memmove(&q->free_ext[i + 1], &q->free_ext[i],
		(q->n_free_ext - i) * sizeof(*x));
	q->n_free_ext++;
	x = &q->free_ext[i];
	x->off = off;
	x->len = len;
	if (i + 1 < q->n_free_ext && x->off + x->len == x[1].off) {
		x->len += x[1].len;
		memmove(&x[1], &x[2], (q->n_free_ext - i - 2) * sizeof(*x));
		q->n_free_ext--;
	}
	if (i > 0 && x[-1].off + x[-1].len == x->off) {
		x[-1].len += x->len;
		memmove(x, x + 1, (q->n_free_ext - i - 1) * sizeof(*x));
		q->n_free_ext--;
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
	struct qpd_scoreboard *sb = (struct qpd_scoreboard *)(void *)
		((char *)e - offsetof(struct qpd_scoreboard, retire));
	struct qpd *q = sb->q;
	size_t off = sb->col_off, len = sb->col_size;
	unsigned n = ck_pr_load_uint(&q->slot_hwm);

	for (unsigned v = 0; v < n; v++)
		zero_range(region_of(q, v) + off, len);
	/* The descriptor last: it was read above. */
	zero_range(q->arena + off, len);
	q->n_ext_promised--;
	column_give_locked(q, off, len);
}

static void
hwm_raise(struct qpd *q, unsigned vcpu)
{
	unsigned cur = ck_pr_load_uint(&q->slot_hwm);

	while (vcpu >= cur &&
	       !ck_pr_cas_uint_value(&q->slot_hwm, cur, vcpu + 1, &cur))
		;
}

struct qpd_scoreboard *
qpd_scoreboard_new(struct qpd *q, size_t elem_size)
{
	struct qpd_scoreboard *sb = NULL;
	size_t len, off;
	int err = 0;

	if (q == NULL || elem_size == 0 || elem_size > QPD_SCOREBOARD_MAX_ELEM) {
		errno = EINVAL;
		QPD_FAIL(q, -EINVAL);
		return NULL;
	}
	len = elem_size > sizeof(*sb) ? elem_size : sizeof(*sb);
	len = (len + q->slot_align - 1) & ~(size_t)(q->slot_align - 1);
	pthread_mutex_lock(&q->lock);
	off = column_take_locked(q, len);
	if (off == (size_t)-1) {
		err = -ENOMEM;
	} else {
		/* A column is zero when taken: fresh, or zeroed when freed. */
		sb = (struct qpd_scoreboard *)(void *)(q->arena + off);
		if (!qpd__ptrset_add(&q->live_sb, sb)) {
			column_give_locked(q, off, len);
			err = -ENOMEM;
		}
	}
	if (err == 0) {
		sb->q = q;
		sb->col_off = off;
		sb->col_size = len;
		sb->elem_size = (unsigned)elem_size;
		sb->stride = QPD_SB_REGION;
		sb->max_vcpus = q->core.max_vcpus;
		sb->base = region_of(q, 0) + off;
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
	} else if (extents_reserve_locked(q) != 0) {
		err = -ENOMEM; /* still live: the caller may retry */
	} else {
		qpd__ptrset_del(&q->live_sb, sb);
		q->n_ext_promised++;
		ck_pr_store_64(&q->sb_gen, q->sb_gen + 1);
		qpd__retire_locked(q, &sb->retire, scoreboard_reclaim);
	}
	pthread_mutex_unlock(&q->lock);
	return err ? QPD_FAIL(q, err) : 0;
}

uint64_t
qpd_scoreboard_generation(const struct qpd_scoreboard *sb)
{
	return sb ? ck_pr_load_64(&sb->q->sb_gen) : 0;
}

void *
qpd_scoreboard_find(struct qpd_scoreboard *sb, unsigned vcpu)
{
	if (sb == NULL || vcpu >= sb->max_vcpus)
		return NULL;
	hwm_raise(sb->q, vcpu);
	return qpd_u64_slot((qpd_u64){ sb, 0 }, vcpu);
}

uint64_t
qpd_u64_sum(qpd_u64 e)
{
	unsigned n, v;
	uint64_t sum = 0;

	if (e.score == NULL)
		return 0;
	n = qpd_num_vcpus(e.score->q);
	for (v = 0; v < n; v++)
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

/*
 * Binds vCPU vcpu's region to `node`; with `move`, pages already touched
 * migrate too (costly: the kernel drains every CPU's page lists).
 */
int
qpd__arena_place(struct qpd *q, unsigned vcpu, int node, bool move)
{
	hwm_raise(q, vcpu);
#ifdef QPD_HAVE_NUMA
	unsigned long mask[16] = { 0 };

	if (!numa_policies())
		return node == 0 ? 0 : -EINVAL;
	if (node < 0 || node > max_node() ||
	    (size_t)node >= sizeof(mask) * 8)
		return -EINVAL;
	mask[node / 64] |= 1ul << (node % 64);
	if (syscall(SYS_mbind, region_of(q, vcpu), QPD_SB_REGION,
		    MPOL_PREFERRED, mask, sizeof(mask) * 8 + 1,
		    move ? MPOL_MF_MOVE : 0) != 0)
		return -errno;
	return 0;
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
