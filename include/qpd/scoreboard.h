/*
 * qpd/scoreboard.h - per-vCPU scoreboards whose slots do not move.
 *
 * A scoreboard gives every vCPU a zero-initialised slot of elem_size bytes.
 * The slot of vCPU v is at base + v * stride: base and stride are fixed
 * while vCPUs come and go, so translated code may embed them.  Slots of
 * different vCPUs never share a cache line nor an adjacent pair, and where
 * a vCPU's slots take whole pages they sit on its NUMA node.  Any number of scoreboards of any
 * element size may exist; the vCPU indices that have slots grow on demand,
 * in place.  Only when the address space right after a group of slots is
 * taken do they have to move (qpd_scoreboard_reserve() with may_move), which
 * the embedder does with every slot user stopped, as QEMU does for every
 * growth; qpd_stats counts those moves.
 *
 * The inline accessors take no lock and make no atomic read-modify-write:
 * each slot has one writer, its vCPU's thread, and readers use ck_pr loads.
 */
#ifndef QPD_SCOREBOARD_H
#define QPD_SCOREBOARD_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Bytes from one vCPU's slots to the next's: arenas of small columns have
 * regions of QPD_SB_REGION_MIN, then twice that, up to QPD_SB_REGION; an
 * element larger than that gets an arena whose region is its size rounded
 * up to a page.  Two lines at least, so that an adjacent-line prefetcher
 * does not couple two vCPUs either.
 */
#define QPD_SB_REGION_MIN ((size_t)128)
#define QPD_SB_REGION ((size_t)16 * 1024)

/*
 * The largest index * stride product qpd hands out: translators (QEMU's
 * plugin-gen) compute a slot's offset as a signed 32-bit product.
 */
#define QPD_SB_SPAN_MAX ((size_t)1 << 31)

struct qpd_sb_arena;

/*
 * A scoreboard's descriptor (one cache line: a plugin may make one per
 * translated block).  base, stride and max_vcpus are read by the inline
 * accessors; base and stride change only in qpd_scoreboard_reserve() with
 * may_move, while no thread uses a slot.  The rest is private.
 */
struct qpd_scoreboard {
	char *base;          /* vCPU 0's slot */
	size_t stride;       /* bytes between consecutive vCPUs' slots */
	unsigned max_vcpus;  /* vCPU indices below this have a slot */
	unsigned elem_size;
	unsigned col_size;   /* elem_size rounded up to the slot alignment */
	struct qpd_sb_arena *arena;
	size_t col_off;      /* offset of the slot in every vCPU region */
	ck_epoch_entry_t retire;
};

/*
 * A 64-bit counter at `offset` inside each slot of `score`.  The inline
 * accessors below are for vCPU indices below qpd_num_vcpus() (as QEMU's
 * are) and for slots whose address qpd_scoreboard_find() returned: only
 * those are re-zeroed when a freed scoreboard's column is reused.
 */
typedef struct {
	struct qpd_scoreboard *score;
	size_t offset;
} qpd_u64;

/* The largest element: a slot must fit a region whose index span fits. */
#define QPD_SCOREBOARD_MAX_ELEM (QPD_SB_SPAN_MAX / 2)

/*
 * Creates a scoreboard of elem_size (1 .. QPD_SCOREBOARD_MAX_ELEM) bytes
 * per vCPU, zeroed, with slots for every index below
 * qpd_scoreboard_capacity(); never stops running vCPUs and never moves
 * another scoreboard's slots.  NULL with errno EINVAL or ENOMEM on failure.
 */
struct qpd_scoreboard *qpd_scoreboard_new(struct qpd *q, size_t elem_size);

/*
 * Frees a scoreboard; its slots are recycled after a grace period, so no
 * dynamic list or inline op may use it once this is called.  -ENOENT if sb
 * is not a live scoreboard of q (double free), -EINVAL for NULL, -ENOMEM
 * (then it stays live).
 */
int qpd_scoreboard_free(struct qpd *q, struct qpd_scoreboard *sb);

/*
 * Changes whenever the set of slots changes (scoreboard created or freed,
 * vCPU index first initialised, slots moved).
 */
uint64_t qpd_scoreboard_generation(const struct qpd_scoreboard *sb);

/*
 * vCPU indices below the returned value have a slot in every scoreboard,
 * present and future; it only grows.  0 for NULL.
 */
unsigned qpd_scoreboard_capacity(struct qpd *q);

/*
 * Gives every vCPU index below n a slot in every scoreboard.  Without
 * may_move no slot moves: -EAGAIN if that cannot be done in place (nothing
 * changed that a slot user could see).  With may_move, slots that cannot
 * grow in place move: the caller guarantees that no thread reads or writes
 * a slot or keeps its address meanwhile (QEMU: every vCPU stopped,
 * translated code flushed after).  Returns 0 when nothing moved, 1 when
 * something did; -EINVAL (NULL, or n past max_vcpus), -E2BIG (an element
 * too large for n indices under QPD_SB_SPAN_MAX), -ENOMEM.
 */
int qpd_scoreboard_reserve(struct qpd *q, unsigned n, bool may_move);

/*
 * Address of vCPU vcpu's slot, stable until sb is freed or moved; grows
 * the slots in place if needed; NULL if vcpu gets no slot that way.
 */
void *qpd_scoreboard_find(struct qpd_scoreboard *sb, unsigned vcpu);

/*
 * Address of e's counter for vcpu, from the descriptor's cache line; vcpu
 * must be below max_vcpus.
 */
static inline uint64_t *
qpd_u64_slot(qpd_u64 e, unsigned vcpu)
{
	return (uint64_t *)(void *)(e.score->base + e.offset +
				    (size_t)vcpu * e.score->stride);
}

/*
 * The inline ADD_U64 fast path, for the vCPU's own thread: a load, an add
 * and a store, no lock, no atomic read-modify-write, no call.
 */
static inline void
qpd_inline_add_u64(qpd_u64 e, unsigned vcpu, uint64_t imm)
{
	uint64_t *p;

	if (vcpu >= ck_pr_load_uint(&e.score->max_vcpus))
		return;
	p = qpd_u64_slot(e, vcpu);
	/* Single writer: a plain add, stored with ck_pr for racing readers. */
	ck_pr_store_64(p, ck_pr_load_64(p) + imm);
}

/* Adds to the counter of vcpu; same contract as qpd_inline_add_u64. */
static inline void
qpd_u64_add(qpd_u64 e, unsigned vcpu, uint64_t v)
{
	qpd_inline_add_u64(e, vcpu, v);
}

/* Sets the counter of vcpu (from its own thread, or with vCPUs stopped). */
static inline void
qpd_u64_set(qpd_u64 e, unsigned vcpu, uint64_t v)
{
	if (vcpu < ck_pr_load_uint(&e.score->max_vcpus))
		ck_pr_store_64(qpd_u64_slot(e, vcpu), v);
}

/* Reads the counter of vcpu; 0 past max_vcpus. */
static inline uint64_t
qpd_u64_get(qpd_u64 e, unsigned vcpu)
{
	return vcpu < ck_pr_load_uint(&e.score->max_vcpus) ? ck_pr_load_64(qpd_u64_slot(e, vcpu))
					 : 0;
}

/* Sums the counter over every vCPU index below qpd_num_vcpus(). */
uint64_t qpd_u64_sum(qpd_u64 e);

/*
 * Places vCPU vcpu's slots on NUMA node `node` (moving pages already
 * touched).  -EINVAL for an unknown node or vCPU index, -ENOMEM, or the
 * error mbind(2) reported; 0 where there is no NUMA and node is 0.
 */
int qpd_vcpu_set_node(struct qpd *q, unsigned vcpu, int node);

/*
 * The NUMA node vcpu's slots are bound to: the node set, else the one
 * chosen at init, 0 before either (and without NUMA); -EINVAL for an
 * index past max_vcpus or one never set nor initialised.
 */
int qpd_vcpu_get_node(struct qpd *q, unsigned vcpu);

#ifdef __cplusplus
}
#endif

#endif /* QPD_SCOREBOARD_H */
