/* Dynamic callback lists: builders, executors, filters, conditions. */
#include <limits.h>

#include "helpers.h"

struct fx {
	struct qpd *q;
	struct qpd_scoreboard *sb;
	qpd_u64 c0, c1;
	struct qpd_dyn *l;
};

/* Columns padded to `align` bytes (0: the default, packed). */
static struct fx
setup_aligned(unsigned align)
{
	struct qpd_config cfg = { .no_reclaimer_thread = true,
				  .slot_align = align };
	struct fx f = { .q = qpd_new(&cfg) };

	cr_assert_not_null(f.q);
	memset(&LOG, 0, sizeof(LOG));

	f.sb = qpd_scoreboard_new(f.q, 16);
	cr_assert_not_null(f.sb);
	f.c0 = (qpd_u64){ f.sb, 0 };
	f.c1 = (qpd_u64){ f.sb, 8 };
	f.l = qpd_dyn_new(f.q);
	cr_assert_not_null(f.l);
	cr_assert_eq(qpd_vcpu_init(f.q, 1), 0);
	cr_assert(qpd_vcpu_enter(f.q, 1));
	return f;
}

static struct fx
setup(void)
{
	return setup_aligned(0);
}

static void
teardown(struct fx *f)
{
	qpd_vcpu_leave(f->q, 1);
	qpd_free(f->q);
}

static void
cb(unsigned vcpu, void *udata)
{
	log_call((int)(uintptr_t)udata, 0, vcpu, udata);
}

static uint64_t last_vaddr;
static uint32_t last_info;

static void
mem_cb(unsigned vcpu, uint32_t meminfo, uint64_t vaddr, void *udata)
{
	last_vaddr = vaddr;
	last_info = meminfo;
	log_call((int)(uintptr_t)udata, 0, vcpu, udata);
}

Test(dyn, callbacks_and_inline_ops_in_order)
{
	struct fx f = setup();

	cr_assert_eq(qpd_dyn_add_cb(f.l, cb, (void *)1), 0);
	cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_ADD_U64, f.c0, 5), 0);
	cr_assert_eq(qpd_dyn_add_cond_cb(f.l, cb, (void *)2, QPD_COND_EQ, f.c0,
					 5), 0);
	cr_assert_eq(qpd_dyn_add_cb(f.l, cb, (void *)3), 0);
	qpd_dyn_exec(f.l, 1);
	cr_assert_eq(LOG.n, 3);
	cr_assert_eq(LOG.e[0].tag, 1);
	cr_assert_eq(LOG.e[1].tag, 2, "the condition saw the add before it");
	cr_assert_eq(LOG.e[2].tag, 3);
	cr_assert_eq(LOG.e[0].vcpu, 1);
	qpd_dyn_exec(f.l, 1);
	cr_assert_eq(LOG.n, 5, "10 != 5: the conditional callback is skipped");
	cr_assert_eq(qpd_u64_get(f.c0, 1), 10);
	cr_assert_eq(qpd_u64_get(f.c0, 0), 0, "other vCPUs untouched");
	teardown(&f);
}

Test(dyn, store_then_add)
{
	struct fx f = setup();

	cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_STORE_U64, f.c1, 5), 0);
	cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_ADD_U64, f.c1, 3), 0);
	qpd_dyn_exec(f.l, 1);
	cr_assert_eq(qpd_u64_get(f.c1, 1), 8);
	qpd_dyn_exec(f.l, 1);
	cr_assert_eq(qpd_u64_get(f.c1, 1), 8);
	cr_assert_eq(qpd_u64_get(f.c0, 1), 0);
	teardown(&f);
}

Test(dyn, memory_filter_matrix_runs_every_match)
{
	struct fx f = setup();
	static const enum qpd_mem_rw kinds[3] = { QPD_MEM_R, QPD_MEM_W,
						  QPD_MEM_RW };

	/* Entry i: callback tagged 10+i with rw = kinds[i % 3], then an
	 * inline add of 1 << i with rw = kinds[(i + 1) % 3]. */
	for (unsigned i = 0; i < 6; i++) {
		cr_assert_eq(qpd_dyn_add_mem_cb(f.l, mem_cb, kinds[i % 3],
						(void *)(uintptr_t)(10 + i)), 0);
		cr_assert_eq(qpd_dyn_add_mem_inline(f.l, kinds[(i + 1) % 3],
						    QPD_OP_ADD_U64, f.c0,
						    1u << i), 0);
	}
	for (unsigned a = 0; a < 3; a++) {
		uint64_t before = qpd_u64_get(f.c0, 1), want_add = 0;
		unsigned want_n = 0;

		LOG.n = 0;
		qpd_dyn_exec_mem(f.l, 1, 0x1000 + a, 0xabc, kinds[a]);
		for (unsigned i = 0; i < 6; i++) {
			if (kinds[i % 3] & kinds[a]) {
				cr_assert_eq(LOG.e[want_n].tag, (int)(10 + i),
					     "access %u: callback %u", a, i);
				want_n++;
			}
			if (kinds[(i + 1) % 3] & kinds[a])
				want_add += 1u << i;
		}
		cr_assert_eq(LOG.n, want_n, "access %u", a);
		cr_assert_eq(qpd_u64_get(f.c0, 1) - before, want_add,
			     "access %u", a);
		cr_assert_eq(last_vaddr, 0x1000 + a);
		cr_assert_eq(last_info, 0xabc);
	}
	/* Memory entries are not run by the plain executor. */
	LOG.n = 0;
	qpd_dyn_exec(f.l, 1);
	cr_assert_eq(LOG.n, 0);
	teardown(&f);
}

Test(dyn, mixed_list_each_executor_runs_its_kind)
{
	struct fx f = setup();

	cr_assert_eq(qpd_dyn_add_cb(f.l, cb, (void *)1), 0);
	cr_assert_eq(qpd_dyn_add_mem_cb(f.l, mem_cb, QPD_MEM_RW, (void *)2), 0);
	cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_ADD_U64, f.c0, 1), 0);
	cr_assert_eq(qpd_dyn_add_mem_inline(f.l, QPD_MEM_RW, QPD_OP_ADD_U64,
					    f.c1, 1), 0);
	qpd_dyn_exec(f.l, 1);
	cr_assert_eq(LOG.n, 1);
	cr_assert_eq(LOG.e[0].tag, 1);
	qpd_dyn_exec_mem(f.l, 1, 0, 0, QPD_MEM_R);
	cr_assert_eq(LOG.n, 2);
	cr_assert_eq(LOG.e[1].tag, 2);
	cr_assert_eq(qpd_u64_get(f.c0, 1), 1);
	cr_assert_eq(qpd_u64_get(f.c1, 1), 1);
	teardown(&f);
}

static bool
expect(enum qpd_cond c, uint64_t v, uint64_t imm)
{
	switch (c) {
	case QPD_COND_EQ: return v == imm;
	case QPD_COND_NE: return v != imm;
	case QPD_COND_LT: return v < imm;
	case QPD_COND_LE: return v <= imm;
	case QPD_COND_GT: return v > imm;
	case QPD_COND_GE: return v >= imm;
	case QPD_COND_ALWAYS: return true;
	default: return false;
	}
}

Test(dyn, unsigned_conditions_at_boundaries)
{
	static const uint64_t vals[] = { 0, 1, UINT64_C(1) << 63,
					 (UINT64_C(1) << 63) - 1,
					 (UINT64_C(1) << 63) + 1, UINT64_MAX };
	const unsigned nv = sizeof(vals) / sizeof(vals[0]);
	struct fx f = setup();

	for (enum qpd_cond c = QPD_COND_NEVER; c <= QPD_COND_GE; c++) {
		for (unsigned i = 0; i < nv; i++) {
			for (unsigned j = 0; j < nv; j++) {
				struct qpd_dyn *l = qpd_dyn_new(f.q);

				cr_assert_eq(qpd_dyn_add_cond_cb(l, cb, (void *)7,
								 c, f.c0,
								 vals[j]), 0);
				qpd_u64_set(f.c0, 1, vals[i]);
				LOG.n = 0;
				qpd_dyn_exec(l, 1);
				cr_assert_eq(LOG.n, expect(c, vals[i], vals[j]),
					     "cond %d, %llu vs %llu", c,
					     (unsigned long long)vals[i],
					     (unsigned long long)vals[j]);
				cr_assert_eq(qpd_dyn_retire(f.q, l), 0);
			}
		}
	}
	teardown(&f);
}

Test(dyn, never_adds_nothing_always_adds_plain)
{
	struct fx f = setup();

	cr_assert_eq(qpd_dyn_add_cond_cb(f.l, cb, (void *)1, QPD_COND_NEVER,
					 f.c0, 0), 0);
	cr_assert_eq(f.l->n, 0);
	cr_assert_eq(qpd_dyn_add_cond_cb(f.l, cb, (void *)1, QPD_COND_ALWAYS,
					 f.c0, 0), 0);
	cr_assert_eq(f.l->n, 1);
	cr_assert_eq(f.l->e[0].kind, QPD_DYN_CB);
	teardown(&f);
}

Test(dyn, growth_keeps_order)
{
	struct fx f = setup();

	for (uintptr_t i = 0; i < 200; i++)
		cr_assert_eq(qpd_dyn_add_cb(f.l, cb, (void *)i), 0);
	qpd_dyn_exec(f.l, 1);
	cr_assert_eq(LOG.n, 200);
	for (unsigned i = 0; i < 200; i++)
		cr_assert_eq(LOG.e[i].tag, (int)i);
	teardown(&f);
}

/*
 * Bytes of each vCPU's slot an inline op may use: the scoreboard's column
 * (its element rounded up to the slot alignment).
 */
static size_t
slot_size(const struct qpd_scoreboard *sb)
{
	return sb->col_size;
}

/* The 8 bytes at `off` in vcpu's slot, read bytewise. */
static uint64_t
slot_u64(struct qpd_scoreboard *sb, unsigned vcpu, size_t off)
{
	uint64_t v;

	memcpy(&v, (char *)qpd_scoreboard_find(sb, vcpu) + off, sizeof(v));
	return v;
}

/* Every byte of vcpu's slot outside [off, off + 8) is zero. */
static bool
zero_but(struct qpd_scoreboard *sb, unsigned vcpu, size_t off)
{
	const unsigned char *p = qpd_scoreboard_find(sb, vcpu);

	for (size_t i = 0; i < slot_size(sb); i++)
		if ((i < off || i >= off + 8) && p[i] != 0)
			return false;
	return true;
}

/*
 * QEMU's translated code runs an inline op at any offset a plugin gave;
 * the same entry run from a list does the same, through unaligned kinds.
 */
Test(dyn, inline_ops_at_unaligned_offsets)
{
	static const size_t offs[] = { 1, 2, 3, 4, 5, 6, 7, 9, 12, 15 };
	struct fx f = setup();
	const uint64_t imm = UINT64_C(0x0102030405060708);

	for (unsigned k = 0; k < sizeof(offs) / sizeof(offs[0]); k++) {
		/* Every counter inside the element, as a plugin's struct has. */
		struct qpd_scoreboard *sb = qpd_scoreboard_new(f.q, 24);
		qpd_u64 c = { sb, offs[k] };
		struct qpd_dyn *l = qpd_dyn_new(f.q), *m = qpd_dyn_new(f.q);

		cr_assert_eq(qpd_dyn_add_inline(l, QPD_OP_ADD_U64, c, imm), 0);
		cr_assert_eq(qpd_dyn_add_inline(l, QPD_OP_ADD_U64, c, 1), 0);
		cr_assert_eq(l->e[0].kind, QPD_DYN_INLINE_UNALIGNED);
		qpd_dyn_exec(l, 1);
		qpd_dyn_exec(l, 1);
		cr_assert_eq(slot_u64(sb, 1, offs[k]), 2 * (imm + 1),
			     "offset %zu", offs[k]);
		cr_assert(zero_but(sb, 1, offs[k]), "offset %zu: only its bytes",
			  offs[k]);
		cr_assert(zero_but(sb, 0, slot_size(sb)), "other vCPUs untouched");
		qpd_dyn_exec(l, UINT_MAX); /* past max_vcpus: nothing */

		/* Memory entries: only matching accesses, STORE and ADD. */
		cr_assert_eq(qpd_dyn_add_mem_inline(m, QPD_MEM_W,
						    QPD_OP_STORE_U64, c, 7), 0);
		cr_assert_eq(qpd_dyn_add_mem_inline(m, QPD_MEM_RW,
						    QPD_OP_ADD_U64, c, 3), 0);
		cr_assert_eq(m->e[1].kind, QPD_DYN_MEM_INLINE_UNALIGNED);
		qpd_dyn_exec_mem(m, 1, 0, 0, QPD_MEM_R);
		cr_assert_eq(slot_u64(sb, 1, offs[k]), 2 * (imm + 1) + 3);
		qpd_dyn_exec_mem(m, 1, 0, 0, QPD_MEM_W);
		cr_assert_eq(slot_u64(sb, 1, offs[k]), 10, "stored, then added");
		cr_assert(zero_but(sb, 1, offs[k]));
		qpd_dyn_exec_mem(m, UINT_MAX, 0, 0, QPD_MEM_RW);
		cr_assert_eq(qpd_dyn_retire(f.q, l), 0);
		cr_assert_eq(qpd_dyn_retire(f.q, m), 0);
	}
	teardown(&f);
}

/*
 * Aligned counters keep the aligned kinds, inside the element or not (a
 * column padded to 64 bytes has room past the element).
 */
Test(dyn, counter_past_element_inside_slot)
{
	struct fx f = setup_aligned(64);
	size_t slot = slot_size(f.sb);
	struct qpd_scoreboard *edge = qpd_scoreboard_new(f.q, 16);
	struct qpd_scoreboard *small = qpd_scoreboard_new(f.q, 4);

	cr_assert_geq(slot, 48, "the column is wider than the element");
	cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_ADD_U64,
					(qpd_u64){ f.sb, 16 }, 5), 0);
	cr_assert_eq(qpd_dyn_add_mem_inline(f.l, QPD_MEM_RW, QPD_OP_ADD_U64,
					    (qpd_u64){ f.sb, 24 }, 7), 0);
	cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_ADD_U64,
					(qpd_u64){ f.sb, 33 }, 8), 0);
	cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_STORE_U64,
					(qpd_u64){ f.sb, slot - 8 }, 6), 0);
	cr_assert_eq(f.l->e[0].kind, QPD_DYN_INLINE);
	cr_assert_eq(f.l->e[1].kind, QPD_DYN_MEM_INLINE);
	cr_assert_eq(f.l->e[2].kind, QPD_DYN_INLINE_UNALIGNED);
	cr_assert_eq(f.l->e[3].kind, QPD_DYN_INLINE);
	qpd_dyn_exec(f.l, 1);
	qpd_dyn_exec_mem(f.l, 1, 0, 0, QPD_MEM_R);
	cr_assert_eq(slot_u64(f.sb, 1, 16), 5);
	cr_assert_eq(slot_u64(f.sb, 1, 24), 7);
	cr_assert_eq(slot_u64(f.sb, 1, 33), 8);
	cr_assert_eq(slot_u64(f.sb, 1, slot - 8), 6);
	/* The last unaligned place: its last byte is the slot's last but one. */
	cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_ADD_U64,
					(qpd_u64){ edge, slot_size(edge) - 9 },
					UINT64_MAX), 0);
	/* A 4-byte element: the counter covers it and the padding after. */
	cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_STORE_U64,
					(qpd_u64){ small, 0 }, UINT64_MAX), 0);
	qpd_dyn_exec(f.l, 1);
	cr_assert_eq(slot_u64(edge, 1, slot_size(edge) - 9), UINT64_MAX);
	cr_assert(zero_but(edge, 1, slot_size(edge) - 9));
	cr_assert_eq(slot_u64(small, 1, 0), UINT64_MAX);
	cr_assert(zero_but(small, 1, 0));
	teardown(&f);
}

/* A refused inline op changes neither the list nor any counter. */
Test(dyn, refused_inline_ops_leave_state_unchanged)
{
	struct fx f = setup();
	struct qpd_scoreboard *gone = qpd_scoreboard_new(f.q, 8);
	size_t slot = slot_size(f.sb);
	const qpd_u64 bad[] = {
		{ f.sb, slot - 7 }, { f.sb, slot - 1 }, { f.sb, slot },
		{ f.sb, SIZE_MAX - 7 }, { f.sb, SIZE_MAX }, { NULL, 3 },
		{ f.sb, (size_t)1 << 20 },
	};
	struct qpd_stats before, after;

	cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_ADD_U64, f.c0, 1), 0);
	cr_assert_eq(qpd_scoreboard_free(f.q, gone), 0);
	cr_assert_eq(qpd_stats_get(f.q, &before), 0);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_ADD_U64, bad[i], 1),
			     -EINVAL, "reference %u", i);
		cr_assert_eq(qpd_dyn_add_mem_inline(f.l, QPD_MEM_RW,
						    QPD_OP_STORE_U64, bad[i], 1),
			     -EINVAL, "reference %u", i);
	}
	cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_ADD_U64,
					(qpd_u64){ gone, 3 }, 1), -ENOENT);
	cr_assert_eq(qpd_dyn_add_mem_inline(f.l, QPD_MEM_RW, QPD_OP_ADD_U64,
					    (qpd_u64){ gone, 3 }, 1), -ENOENT);
	cr_assert_eq(f.l->n, 1, "nothing was appended");
	cr_assert_eq(qpd_stats_get(f.q, &after), 0);
	cr_assert_eq(after.n_errors, before.n_errors + 16);
	cr_assert_eq(after.n_pending_reclaim, before.n_pending_reclaim);
	qpd_dyn_exec(f.l, 1);
	qpd_dyn_exec_mem(f.l, 1, 0, 0, QPD_MEM_RW);
	cr_assert_eq(qpd_u64_get(f.c0, 1), 1);
	cr_assert(zero_but(f.sb, 1, 0), "no refused entry ran");
	teardown(&f);
}

/* A condition reads its counter in one atomic load: aligned, in the element. */
Test(dyn, cond_counter_stays_aligned_inside_element)
{
	struct fx f = setup();

	cr_assert_eq(qpd_dyn_add_cond_cb(f.l, cb, NULL, QPD_COND_EQ,
					 (qpd_u64){ f.sb, 4 }, 0), -EINVAL);
	cr_assert_eq(qpd_dyn_add_cond_cb(f.l, cb, NULL, QPD_COND_EQ,
					 (qpd_u64){ f.sb, 16 }, 0), -EINVAL);
	cr_assert_eq(qpd_dyn_add_cond_cb(f.l, cb, NULL, QPD_COND_EQ,
					 (qpd_u64){ f.sb, 8 }, 0), 0);
	cr_assert_eq(f.l->n, 1);
	teardown(&f);
}

Test(dyn, bad_arguments)
{
	struct fx f = setup();
	struct qpd_scoreboard *gone = qpd_scoreboard_new(f.q, 8);

	cr_assert_eq(qpd_dyn_add_cb(NULL, cb, NULL), -EINVAL);
	cr_assert_eq(qpd_dyn_add_cb(f.l, NULL, NULL), -EINVAL);
	cr_assert_eq(qpd_dyn_add_inline(f.l, (enum qpd_inline_op)2, f.c0, 1),
		     -EINVAL);
	cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_ADD_U64,
					(qpd_u64){ f.sb, slot_size(f.sb) - 4 },
					1), -EINVAL);
	cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_ADD_U64,
					(qpd_u64){ f.sb, slot_size(f.sb) }, 1),
		     -EINVAL);
	cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_ADD_U64,
					(qpd_u64){ NULL, 0 }, 1), -EINVAL);
	cr_assert_eq(qpd_dyn_add_cond_cb(f.l, cb, NULL, (enum qpd_cond)99,
					 f.c0, 0), -EINVAL);
	cr_assert_eq(qpd_dyn_add_mem_cb(f.l, mem_cb, (enum qpd_mem_rw)0, NULL),
		     -EINVAL);
	cr_assert_eq(qpd_dyn_add_mem_cb(f.l, mem_cb, (enum qpd_mem_rw)4, NULL),
		     -EINVAL);
	cr_assert_eq(qpd_dyn_add_mem_inline(f.l, QPD_MEM_R,
					    (enum qpd_inline_op)7, f.c0, 0),
		     -EINVAL);
	cr_assert_eq(qpd_scoreboard_free(f.q, gone), 0);
	cr_assert_eq(qpd_dyn_add_inline(f.l, QPD_OP_ADD_U64,
					(qpd_u64){ gone, 0 }, 1), -ENOENT);
	cr_assert_eq(f.l->n, 0, "no failed call added anything");
	teardown(&f);
}

Test(dyn, flush_and_retire)
{
	struct fx f = setup();
	struct qpd_dyn *other = qpd_dyn_new(f.q);
	struct qpd_stats st;

	cr_assert_eq(qpd_dyn_add_cb(other, cb, NULL), 0);
	cr_assert_eq(qpd_dyn_retire(f.q, other), 0);
	cr_assert_eq(qpd_dyn_retire(f.q, other), -ENOENT);
	qpd_flush(f.q);
	cr_assert_eq(qpd_dyn_retire(f.q, f.l), -ENOENT, "flush retired it");
	cr_assert_eq(qpd_stats_get(f.q, &st), 0);
	cr_assert_geq(st.n_pending_reclaim, 2, "freed only after the slice");
	qpd_vcpu_leave(f.q, 1);
	for (int i = 0; i < 10; i++)
		qpd_reclaim(f.q);
	cr_assert_eq(qpd_stats_get(f.q, &st), 0);
	cr_assert_eq(st.n_pending_reclaim, 0);
	qpd_free(f.q);
}

/* A sized list holds its first entries in its own allocation, then grows. */
Test(dyn, sized_list_grows_past_its_room)
{
	struct fx f = setup();
	struct qpd_dyn *l = qpd_dyn_new_sized(f.q, 2);

	cr_assert_not_null(l);
	cr_assert_eq(l->e, l->inl);
	cr_assert_eq(l->cap, 2);
	for (unsigned i = 0; i < 5; i++)
		cr_assert_eq(qpd_dyn_add_inline(l, QPD_OP_ADD_U64, f.c0, 1), 0);
	cr_assert_neq(l->e, l->inl, "grew into an array of its own");
	qpd_dyn_exec(l, 1);
	cr_assert_eq(qpd_u64_get(f.c0, 1), 5);
	cr_assert_eq(qpd_dyn_retire(f.q, l), 0);
	errno = 0;
	cr_assert_null(qpd_dyn_new_sized(NULL, 1));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(qpd_dyn_new_sized(f.q, UINT_MAX));
	cr_assert_eq(errno, EINVAL);
	teardown(&f);
}
