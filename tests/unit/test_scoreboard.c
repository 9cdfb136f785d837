/* Scoreboards: stable slots, zeroing, padding, generations, NUMA. */
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "helpers.h"
/* White box: where an arena ends (struct qpd_sb_arena). */
#include "../../src/core/internal.h"

#if defined(QPD_HAVE_NUMA) && defined(QPD_TEST_LIBNUMA)
#include <numa.h>
#include <numaif.h>
#endif

static struct qpd *
new_q(unsigned align)
{
	struct qpd_config cfg = { .no_reclaimer_thread = true,
				  .max_vcpus = 8192,
				  .slot_align = align };
	struct qpd *q = qpd_new(&cfg);

	cr_assert_not_null(q);
	return q;
}

/* Frees sb and drives reclamation until its column is recycled. */
static void
free_and_reclaim(struct qpd *q, struct qpd_scoreboard *sb)
{
	cr_assert_eq(qpd_scoreboard_free(q, sb), 0);
	for (int i = 0; i < 100 && qpd_reclaim(q) > 0; i++)
		;
	cr_assert_eq(qpd_reclaim(q), 0);
}

static bool
all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

Test(scoreboard, find_is_stable_while_growing_to_4096)
{
	struct qpd *q = new_q(0);
	struct qpd_scoreboard *sb = qpd_scoreboard_new(q, 8);
	void *before[4];

	cr_assert_not_null(sb);
	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	for (unsigned v = 0; v < 4; v++)
		before[v] = qpd_scoreboard_find(sb, v);
	for (unsigned v = 1; v < 4096; v++)
		cr_assert_eq(qpd_vcpu_init(q, v), 0);
	struct qpd_scoreboard *other = qpd_scoreboard_new(q, 100);
	cr_assert_not_null(other);
	for (unsigned v = 0; v < 4; v++)
		cr_assert_eq(qpd_scoreboard_find(sb, v), before[v]);
	for (unsigned v = 0; v < 4096; v += 511)
		cr_assert_eq(qpd_scoreboard_find(sb, v),
			     (char *)before[0] + (size_t)v * sb->stride);
	cr_assert_null(qpd_scoreboard_find(sb, 8192));
	cr_assert_null(qpd_scoreboard_find(NULL, 0));
	qpd_free(q);
}

Test(scoreboard, element_sizes_start_zeroed_and_are_rezeroed)
{
	static const size_t sizes[] = { 1, 7, 8, 63, 64, 65, 4095, 4096, 12345,
					65536, 65537, (1u << 20) + 1 };
	struct qpd *q = new_q(0);

	for (unsigned v = 0; v < 3; v++)
		cr_assert_eq(qpd_vcpu_init(q, v), 0);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (int round = 0; round < 2; round++) {
			struct qpd_scoreboard *sb = qpd_scoreboard_new(q, sizes[i]);

			cr_assert_not_null(sb, "size %zu", sizes[i]);
			cr_assert_eq(sb->elem_size, sizes[i]);
			for (unsigned v = 0; v < 3; v++) {
				unsigned char *p = qpd_scoreboard_find(sb, v);

				cr_assert(all_zero(p, sizes[i]),
					  "size %zu round %d vcpu %u", sizes[i],
					  round, v);
				memset(p, 0xa5, sizes[i]);
			}
			/* The same column comes back: it must be zero again. */
			free_and_reclaim(q, sb);
		}
	}
	qpd_free(q);
}

Test(scoreboard, bad_sizes_and_double_free)
{
	struct qpd *q = new_q(0);
	struct qpd_scoreboard *sb;

	errno = 0;
	cr_assert_null(qpd_scoreboard_new(q, 0));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(qpd_scoreboard_new(q, QPD_SCOREBOARD_MAX_ELEM + 1));
	cr_assert_null(qpd_scoreboard_new(q, SIZE_MAX));
	cr_assert_null(qpd_scoreboard_new(NULL, 8));
	sb = qpd_scoreboard_new(q, 65536);
	cr_assert_not_null(sb);
	cr_assert_eq(qpd_scoreboard_free(q, sb), 0);
	cr_assert_eq(qpd_scoreboard_free(q, sb), -ENOENT);
	cr_assert_eq(qpd_scoreboard_free(q, NULL), -EINVAL);
	cr_assert_eq(qpd_scoreboard_free(NULL, sb), -EINVAL);
	qpd_free(q);
}

/* hotblocks makes one 8-byte scoreboard per block: tens of thousands. */
Test(scoreboard, any_number_of_scoreboards)
{
	enum { N = 60000 };
	struct qpd *q = new_q(0);
	struct qpd_scoreboard **sb = calloc(N, sizeof(*sb));
	struct qpd_stats st;

	cr_assert_not_null(sb);
	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	cr_assert_eq(qpd_vcpu_init(q, 3), 0);
	for (unsigned i = 0; i < N; i++) {
		cr_assert_not_null(sb[i] = qpd_scoreboard_new(q, 8), "#%u", i);
		qpd_u64_add((qpd_u64){ sb[i], 0 }, 0, i);
		qpd_u64_add((qpd_u64){ sb[i], 0 }, 3, 2 * (uint64_t)i);
	}
	for (unsigned i = 0; i < N; i++)
		cr_assert_eq(qpd_u64_sum((qpd_u64){ sb[i], 0 }), 3 * (uint64_t)i);
	cr_assert_eq(qpd_stats_get(q, &st), 0);
	cr_assert_eq(st.n_scoreboards, N);
	/* Packed like an array: 8 bytes per scoreboard and vCPU. */
	cr_assert_leq(st.n_sb_arenas, N * 8 / QPD_SB_REGION + 8 + 1);
	for (unsigned i = 0; i < N; i += 2)
		cr_assert_eq(qpd_scoreboard_free(q, sb[i]), 0);
	while (qpd_reclaim(q) > 0)
		;
	for (unsigned i = 0; i < N; i += 2)
		cr_assert_not_null(sb[i] = qpd_scoreboard_new(q, 8));
	cr_assert_eq(qpd_stats_get(q, &st), 0);
	cr_assert_leq(st.n_sb_arenas, N * 8 / QPD_SB_REGION + 8 + 1, "reused");
	for (unsigned i = 0; i < N; i += 2)
		cr_assert_eq(qpd_u64_sum((qpd_u64){ sb[i], 0 }), 0, "rezeroed");
	free(sb);
	qpd_free(q);
}

/* Relay threads in linux-user: every new thread takes a new index. */
Test(scoreboard, capacity_grows_in_place_past_the_first_arena)
{
	struct qpd_config cfg = { .no_reclaimer_thread = true,
				  .max_vcpus = 1u << 16 };
	struct qpd *q = qpd_new(&cfg);
	struct qpd_scoreboard *a = qpd_scoreboard_new(q, 8);
	/* An arena of its own (over QPD_SB_REGION), held whole for 12000. */
	struct qpd_scoreboard *big = qpd_scoreboard_new(q, 16400);
	char *base_a = a->base, *base_big = big->base;
	struct qpd_stats st;
	unsigned cap0 = qpd_scoreboard_capacity(q);

	cr_assert_geq(cap0, 1);
	for (unsigned v = 0; v < 12000; v++) {
		cr_assert_eq(qpd_vcpu_init(q, v), 0, "vCPU %u", v);
		qpd_u64_add((qpd_u64){ a, 0 }, v, 1);
		qpd_u64_add((qpd_u64){ big, 16392 }, v, 2);
		if (v > 0)
			cr_assert_eq(qpd_vcpu_exit(q, v - 1), 0);
	}
	cr_assert_eq(a->base, base_a, "nothing moved");
	cr_assert_eq(big->base, base_big, "nothing moved");
	cr_assert_geq(qpd_scoreboard_capacity(q), 12000);
	cr_assert_eq(qpd_u64_sum((qpd_u64){ a, 0 }), 12000);
	cr_assert_eq(qpd_u64_sum((qpd_u64){ big, 16392 }), 24000);
	cr_assert_eq(qpd_stats_get(q, &st), 0);
	cr_assert_eq(st.n_sb_moved, 0);
	cr_assert_gt(st.n_sb_grown, 0);
	cr_assert_eq(qpd_scoreboard_reserve(q, (1u << 16) + 1, false), -EINVAL);
	cr_assert_eq(qpd_scoreboard_reserve(NULL, 1, false), -EINVAL);
	qpd_free(q);

	/* Past what an index * stride product may span: refused. */
	q = qpd_new(&cfg);
	big = qpd_scoreboard_new(q, 100000);
	cr_assert_not_null(big);
	cr_assert_eq(qpd_scoreboard_reserve(q, 1u << 16, false), -E2BIG);
	cr_assert_eq(qpd_scoreboard_capacity(q), cap0, "unchanged");
	qpd_free(q);
}

/*
 * A guest with hundreds of threads maps gigabytes of stacks (top-down, as
 * the kernel hands addresses out) before its indices grow: growth must
 * still happen in place.
 */
Test(scoreboard, growth_in_place_after_gigabytes_of_mappings)
{
	enum { N = 131072, CHUNK = 64 << 10 }; /* 8 GiB, no gap left unfilled */
	struct qpd_config cfg = { .no_reclaimer_thread = true,
				  .max_vcpus = 4096 };
	struct qpd *q = qpd_new(&cfg);
	struct qpd_scoreboard *sb = qpd_scoreboard_new(q, 8);
	static void *m[N];
	struct qpd_stats st;

	cr_assert_not_null(sb);
	for (unsigned i = 0; i < N; i++) {
		m[i] = mmap(NULL, CHUNK, PROT_NONE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		cr_assert_neq(m[i], MAP_FAILED);
	}
	for (unsigned v = 0; v < 1024; v++)
		cr_assert_eq(qpd_vcpu_init(q, v), 0, "vCPU %u", v);
	cr_assert_eq(qpd_stats_get(q, &st), 0);
	cr_assert_eq(st.n_sb_moved, 0, "8 GiB mapped meanwhile, yet grown in place");
	for (unsigned i = 0; i < N; i++)
		munmap(m[i], CHUNK);
	qpd_free(q);
}

/*
 * The fallback: an arena holds address space for growth up to a limit;
 * past it, when the address space after it was taken, slots must move.
 */
Test(scoreboard, blocked_growth_moves_only_when_allowed)
{
	struct qpd_config cfg = { .no_reclaimer_thread = true,
				  .max_vcpus = 1u << 22 };
	struct qpd *q = qpd_new(&cfg);
	struct qpd_scoreboard *sb = qpd_scoreboard_new(q, 16);
	unsigned cap = qpd_scoreboard_capacity(q), past;
	struct qpd_sb_arena *a = sb->arena;
	char *end = a->mem + a->held;
	void *wall = mmap(end, 4096, PROT_READ,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			  -1, 0);
	struct qpd_stats st;
	char *old;

	cr_assert_eq(wall, (void *)end, "the test needs the page after it");
	past = (unsigned)(a->held / sb->stride) + 1;
	cr_assert_leq(past, cfg.max_vcpus);
	for (unsigned v = 0; v < cap; v++) {
		cr_assert_eq(qpd_vcpu_init(q, v), 0);
		qpd_u64_set((qpd_u64){ sb, 8 }, v, 1000 + v);
	}
	/* Within what the arena holds: in place, whatever is mapped after. */
	cr_assert_eq(qpd_scoreboard_reserve(q, past - 1, false), 0);
	old = sb->base;
	cr_assert_eq(qpd_scoreboard_reserve(q, past, false), -EAGAIN);
	cr_assert_eq(qpd_scoreboard_find(sb, past - 1), NULL);
	cr_assert_lt(qpd_scoreboard_capacity(q), past, "unchanged");
	cr_assert_eq(sb->base, old, "unchanged");
	cr_assert_eq(qpd_scoreboard_reserve(q, past, true), 1);
	cr_assert_neq(sb->base, old);
	cr_assert_geq(qpd_scoreboard_capacity(q), past);
	for (unsigned v = 0; v < cap; v++)
		cr_assert_eq(qpd_u64_get((qpd_u64){ sb, 8 }, v), 1000 + v);
	cr_assert_eq(*(uint64_t *)qpd_scoreboard_find(sb, past - 1), 0);
	/* The old addresses stay readable until a grace period passed. */
	(void)*(volatile uint64_t *)(old + 8);
	cr_assert_eq(qpd_stats_get(q, &st), 0);
	cr_assert_eq(st.n_sb_moved, 1);
	cr_assert_eq(qpd_scoreboard_reserve(q, past, false), 0, "no-op");
	munmap(wall, 4096);
	qpd_free(q);
}

static void
check_layout(unsigned align)
{
	struct qpd *q = new_q(align);
	struct qpd_scoreboard *a = qpd_scoreboard_new(q, 8);
	struct qpd_scoreboard *b = qpd_scoreboard_new(q, 3);
	unsigned want = align ? align : 8;

	for (unsigned v = 0; v < 16; v++) {
		uintptr_t pa = (uintptr_t)qpd_scoreboard_find(a, v);
		uintptr_t pb = (uintptr_t)qpd_scoreboard_find(b, v);
		uintptr_t next = (uintptr_t)qpd_scoreboard_find(a, v + 1);

		cr_assert_eq(pa % want, 0);
		cr_assert_eq(pb % want, 0);
		cr_assert_geq(next - pa, 128, "adjacent vCPUs share no line pair");
		cr_assert_eq((next - pa) % 128, 0);
		if (align >= 64)
			cr_assert_neq(pa / 64, pb / 64);
		else
			cr_assert_eq(pb - pa, 8, "packed like an array");
	}
	qpd_free(q);
}

Test(scoreboard, layout_packed_or_padded_64_and_128)
{
	check_layout(0);
	check_layout(64);
	check_layout(128);
}

Test(scoreboard, bad_alignment_is_refused)
{
	struct qpd_config cfg = { .slot_align = 48 };

	errno = 0;
	cr_assert_null(qpd_new(&cfg));
	cr_assert_eq(errno, EINVAL);
}

Test(scoreboard, generation_bumps_when_slots_change)
{
	struct qpd *q = new_q(0);
	struct qpd_scoreboard *a = qpd_scoreboard_new(q, 8), *b;
	uint64_t g0 = qpd_scoreboard_generation(a), g;

	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	g = qpd_scoreboard_generation(a);
	cr_assert_gt(g, g0, "a new vCPU index");
	cr_assert_eq(qpd_vcpu_exit(q, 0), 0);
	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	cr_assert_eq(qpd_scoreboard_generation(a), g, "same index again");
	b = qpd_scoreboard_new(q, 8);
	cr_assert_gt(qpd_scoreboard_generation(a), g);
	g = qpd_scoreboard_generation(b);
	cr_assert_eq(qpd_scoreboard_free(q, b), 0);
	cr_assert_gt(qpd_scoreboard_generation(a), g);
	cr_assert_eq(qpd_scoreboard_generation(NULL), 0);
	qpd_free(q);
}

Test(scoreboard, u64_accessors_and_sum)
{
	struct qpd *q = new_q(0);
	struct qpd_scoreboard *sb = qpd_scoreboard_new(q, 24);
	qpd_u64 c = { sb, 16 };

	cr_assert_eq(qpd_u64_sum(c), 0);
	for (unsigned v = 0; v < 5; v += 2)
		cr_assert_eq(qpd_vcpu_init(q, v), 0);
	qpd_u64_set(c, 0, 40);
	qpd_u64_add(c, 0, 2);
	qpd_inline_add_u64(c, 2, 100);
	qpd_inline_add_u64(c, 4, UINT64_MAX);
	qpd_inline_add_u64(c, 4, 2);
	qpd_inline_add_u64(c, 9000, 5);
	cr_assert_eq(qpd_u64_get(c, 0), 42);
	cr_assert_eq(qpd_u64_get(c, 4), 1, "wraps modulo 2^64");
	cr_assert_eq(qpd_u64_get(c, 9000), 0);
	cr_assert_eq(*(uint64_t *)((char *)qpd_scoreboard_find(sb, 2) + 16), 100);
	cr_assert_eq(qpd_u64_sum(c), 143);
	cr_assert_eq(qpd_u64_sum((qpd_u64){ NULL, 0 }), 0);
	qpd_free(q);
}

struct runner {
	struct qpd *q;
	qpd_u64 c;
	unsigned vcpu;
	uint64_t n;
};

static void *
run_adds(void *arg)
{
	struct runner *r = arg;

	cr_assert_eq(qpd_vcpu_init(r->q, r->vcpu), 0);
	qpd_vcpu_enter(r->q, r->vcpu);
	for (uint64_t i = 0; i < r->n; i++) {
		qpd_inline_add_u64(r->c, r->vcpu, 3);
		if ((i & 1023) == 0)
			qpd_vcpu_quiescent(r->q, r->vcpu);
	}
	qpd_vcpu_leave(r->q, r->vcpu);
	return NULL;
}

Test(scoreboard, free_others_while_vcpus_run)
{
	struct qpd *q = qpd_new(NULL);
	struct qpd_scoreboard *sb = qpd_scoreboard_new(q, 8);
	struct runner r[2];
	pthread_t t[2];

	for (unsigned i = 0; i < 2; i++) {
		r[i] = (struct runner){ q, { sb, 0 }, i, 2000000 };
		pthread_create(&t[i], NULL, run_adds, &r[i]);
	}
	for (int i = 0; i < 2000; i++) {
		struct qpd_scoreboard *o = qpd_scoreboard_new(q, 8 + i % 200);

		cr_assert_not_null(o);
		cr_assert_eq(qpd_scoreboard_free(q, o), 0);
	}
	for (unsigned i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(qpd_u64_sum((qpd_u64){ sb, 0 }), 2 * 2000000 * 3);
	qpd_free(q);
}

#if defined(QPD_HAVE_NUMA) && defined(QPD_TEST_LIBNUMA)
/* The node the kernel placed the page holding p on. */
static int
page_node(void *p)
{
	int node = -1;

	cr_assert_eq(get_mempolicy(&node, NULL, 0, p, MPOL_F_NODE | MPOL_F_ADDR),
		     0);
	return node;
}

Test(scoreboard, slots_live_on_the_init_threads_node)
{
	struct qpd *q = new_q(0);
	struct qpd_scoreboard *sb = qpd_scoreboard_new(q, 8);
	cpu_set_t one;
	int want;

	CPU_ZERO(&one);
	CPU_SET(0, &one);
	cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0);
	want = numa_available() < 0 ? 0 : numa_node_of_cpu(0);
	cr_assert_eq(qpd_vcpu_init(q, 5), 0);
	cr_assert_eq(qpd_vcpu_get_node(q, 5), want);
	*(volatile uint64_t *)qpd_scoreboard_find(sb, 5) = 1;
	cr_assert_eq(page_node(qpd_scoreboard_find(sb, 5)), want);

	/* An explicit node, set before init, wins. */
	int last = numa_available() < 0 ? 0 : numa_max_node();
	cr_assert_eq(qpd_vcpu_set_node(q, 6, last), 0);
	cr_assert_eq(qpd_vcpu_init(q, 6), 0);
	*(volatile uint64_t *)qpd_scoreboard_find(sb, 6) = 1;
	cr_assert_eq(page_node(qpd_scoreboard_find(sb, 6)), last);
	cr_assert_eq(qpd_vcpu_get_node(q, 6), last);

	cr_assert_eq(qpd_vcpu_set_node(q, 6, last + 1), -EINVAL);
	cr_assert_eq(qpd_vcpu_set_node(q, 6, -1), -EINVAL);
	cr_assert_eq(qpd_vcpu_set_node(q, 8192, 0), -EINVAL);
	cr_assert_eq(qpd_vcpu_get_node(q, 8192), -EINVAL);
	cr_assert_eq(qpd_vcpu_get_node(q, 6), last, "state unchanged");
	qpd_free(q);
}
#endif
