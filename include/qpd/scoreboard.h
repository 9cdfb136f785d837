/*
 * qpd/scoreboard.h - per-vCPU scoreboards whose slots never move.
 *
 * A scoreboard gives every vCPU a zero-initialised slot of elem_size bytes.
 * The slot of vCPU v is at base + v * QPD_SB_REGION for the scoreboard's
 * whole life, whatever vCPUs are added, so translated code may embed base
 * and the constant stride.  Slots of different vCPUs never share a cache
 * line (they live in different pages), and a vCPU's slots sit on its NUMA
 * node.  The descriptor itself sits one region below vCPU 0's slot, so a
 * slot's address is computed from the handle with no memory load.
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

/* Bytes from one vCPU's slots to the next's: a compile-time constant. */
#define QPD_SB_REGION_SHIFT 20
#define QPD_SB_REGION ((size_t)1 << QPD_SB_REGION_SHIFT)

/*
 * Lives in the arena, at (char *)base - QPD_SB_REGION.  max_vcpus is read
 * by the inline accessors; the rest is informative or private.
 */
struct qpd_scoreboard {
	char *base;          /* vCPU 0's slot */
	size_t stride;       /* QPD_SB_REGION */
	unsigned max_vcpus;
	unsigned elem_size;
	struct qpd *q;
	size_t col_off;      /* offset of the slot in every vCPU region */
	size_t col_size;     /* elem_size rounded up to the slot alignment */
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

#define QPD_SCOREBOARD_MAX_ELEM (64u * 1024u)

/*
 * Creates a scoreboard of elem_size (1 .. 64 KiB) bytes per vCPU, zeroed;
 * never stops running vCPUs.  NULL with errno EINVAL or ENOMEM on failure.
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
 * vCPU index first initialised); the address of an existing slot never does.
 */
uint64_t qpd_scoreboard_generation(const struct qpd_scoreboard *sb);

/* Address of vCPU vcpu's slot, stable until sb is freed; NULL past max. */
void *qpd_scoreboard_find(struct qpd_scoreboard *sb, unsigned vcpu);

/*
 * Address of e's counter for vcpu, computed from the handle alone; vcpu
 * must be below max_vcpus.
 */
static inline uint64_t *
qpd_u64_slot(qpd_u64 e, unsigned vcpu)
{
	return (uint64_t *)(void *)((char *)e.score + e.offset +
				    (((size_t)vcpu + 1) << QPD_SB_REGION_SHIFT));
}

/*
 * The inline ADD_U64 fast path, for the vCPU's own thread: a load, an add
 * and a store, no lock, no atomic read-modify-write, no call.
 */
static inline void
qpd_inline_add_u64(qpd_u64 e, unsigned vcpu, uint64_t imm)
{
	uint64_t *p;

	if (vcpu >= e.score->max_vcpus)
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
	if (vcpu < e.score->max_vcpus)
		ck_pr_store_64(qpd_u64_slot(e, vcpu), v);
}

/* Reads the counter of vcpu; 0 past max_vcpus. */
static inline uint64_t
qpd_u64_get(qpd_u64 e, unsigned vcpu)
{
	return vcpu < e.score->max_vcpus ? ck_pr_load_64(qpd_u64_slot(e, vcpu))
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
