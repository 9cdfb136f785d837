/*
 * dyn_<kind>: executing one dynamic list of N entries on vCPU 0.
 *   cb           N regular callbacks
 *   inline_add   N inline ADD_U64 on a scoreboard counter
 *   inline_store N inline STORE_U64
 *   cond         N conditional callbacks (counter >= 0: always taken)
 *   mem          N memory callbacks with rw cycling R, W, RW, executed for
 *                a read: two thirds match
 * limit makes the same calls (only the matching ones for mem) or the same
 * load/add/store on a per-thread padded counter, with no list.
 */
#include <stdio.h>

#include "backends.h"
#include "cases.h"
#include "harness.h"

enum kind { K_CB, K_ADD, K_STORE, K_COND, K_MEM, K_COUNT };

static const char *const kind_name[K_COUNT] = {
	"dyn_cb", "dyn_inline_add", "dyn_inline_store", "dyn_cond", "dyn_mem",
};

static uint64_t sink;

static __attribute__((noinline)) void
cb(unsigned vcpu, void *udata)
{
	*(volatile uint64_t *)udata += vcpu + 1;
}

static __attribute__((noinline)) void
mem_cb(unsigned vcpu, uint32_t info, uint64_t vaddr, void *udata)
{
	*(volatile uint64_t *)udata += vcpu + info + vaddr;
}

static enum qpd_mem_rw
rw_of(unsigned i)
{
	static const enum qpd_mem_rw cycle[3] = { QPD_MEM_R, QPD_MEM_W,
						  QPD_MEM_RW };
	return cycle[i % 3];
}

struct ctx {
	void *inst;
	void *list;
	enum kind kind;
	unsigned n;
	uint64_t imm; /* cond threshold: 0 */
	struct {
		uint64_t v;
	} __attribute__((aligned(64))) counter;
};

/* Builds the list for `kind` on backend P; 0 or -1. */
#define DYN_SETUP(P)                                                        \
	static int P##_dyn_setup(struct ctx *c)                              \
	{                                                                    \
		struct P##_scoreboard *sb;                                   \
		c->inst = P##_bench_setup(0, QPD_EV_COUNT, NULL, NULL);      \
		if (c->inst == NULL)                                         \
			return -1;                                           \
		sb = P##_scoreboard_new(c->inst, 8);                         \
		c->list = P##_dyn_new(c->inst);                              \
		if (sb == NULL || c->list == NULL)                           \
			return -1;                                           \
		P##_u64 e = { sb, 0 };                                       \
		for (unsigned i = 0; i < c->n; i++) {                        \
			int err = 0;                                         \
			switch (c->kind) {                                   \
			case K_CB:                                           \
				err = P##_dyn_add_cb(c->list, cb, &sink);    \
				break;                                       \
			case K_ADD:                                          \
				err = P##_dyn_add_inline(c->list,            \
					QPD_OP_ADD_U64, e, 1);               \
				break;                                       \
			case K_STORE:                                        \
				err = P##_dyn_add_inline(c->list,            \
					QPD_OP_STORE_U64, e, i);             \
				break;                                       \
			case K_COND:                                         \
				err = P##_dyn_add_cond_cb(c->list, cb, &sink, \
					QPD_COND_GE, e, 0);                  \
				break;                                       \
			default:                                             \
				err = P##_dyn_add_mem_cb(c->list, mem_cb,    \
					rw_of(i), &sink);                    \
				break;                                       \
			}                                                    \
			if (err != 0)                                        \
				return -1;                                   \
		}                                                            \
		P##_vcpu_enter(c->inst, 0);                                  \
		return 0;                                                    \
	}                                                                    \
	static void P##_dyn_teardown(struct ctx *c)                          \
	{                                                                    \
		if (c->inst != NULL) {                                       \
			P##_vcpu_leave(c->inst, 0);                          \
			P##_bench_teardown(c->inst);                         \
		}                                                            \
	}                                                                    \
	static void run_##P##_dyn(void *p, uint64_t iters)                   \
	{                                                                    \
		struct ctx *c = p;                                           \
		for (uint64_t i = 0; i < iters; i++)                         \
			P##_dyn_exec(c->list, 0);                            \
	}                                                                    \
	static void run_##P##_dyn_mem(void *p, uint64_t iters)               \
	{                                                                    \
		struct ctx *c = p;                                           \
		for (uint64_t i = 0; i < iters; i++)                         \
			P##_dyn_exec_mem(c->list, 0, i, 3, QPD_MEM_R);       \
	}

FOR_EACH_BACKEND(DYN_SETUP)

static void
run_limit(void *p, uint64_t iters)
{
	struct ctx *c = p;
	uint64_t *x = &c->counter.v;

	for (uint64_t i = 0; i < iters; i++) {
		unsigned n = *(volatile unsigned *)&c->n;

		for (unsigned k = 0; k < n; k++) {
			switch (c->kind) {
			case K_CB:
				cb(0, &sink);
				break;
			case K_ADD:
				ck_pr_store_64(x, ck_pr_load_64(x) + 1);
				break;
			case K_STORE:
				ck_pr_store_64(x, k);
				break;
			case K_COND:
				/* The threshold is data, as in an entry. */
				if (ck_pr_load_64(x) >= *(volatile uint64_t *)&c->imm)
					cb(0, &sink);
				break;
			default:
				if (rw_of(k) & QPD_MEM_R)
					mem_cb(0, 3, i, &sink);
				break;
			}
		}
	}
}

static void
one(enum kind kind, unsigned n)
{
	struct ctx bc[BACKEND_COUNT] = { 0 }, lc = { .kind = kind, .n = n };
	struct bench_impl impls[BACKEND_COUNT + 1];
	char params[32];
	unsigned m = 0, b = 0;

	snprintf(params, sizeof(params), "entries:%u", n);
	if (!bench_selected_case(kind_name[kind], params))
		return;
#define ADD_IMPL(P)                                                         \
	bc[b].kind = kind;                                                   \
	bc[b].n = n;                                                         \
	if (P##_dyn_setup(&bc[b]) == 0)                                      \
		impls[m++] = (struct bench_impl){ #P, kind == K_MEM ?        \
			run_##P##_dyn_mem : run_##P##_dyn, &bc[b] };         \
	b++;
	FOR_EACH_BACKEND(ADD_IMPL)
#undef ADD_IMPL
	impls[m++] = (struct bench_impl){ "limit", run_limit, &lc };
	bench_measure(kind_name[kind], params, impls, m, 1);
	b = 0;
#define TEARDOWN(P) P##_dyn_teardown(&bc[b++]);
	FOR_EACH_BACKEND(TEARDOWN)
#undef TEARDOWN
}

void
case_dyn(void)
{
	static const unsigned sizes[] = { 1, 4, 16 };

	for (unsigned k = 0; k < K_COUNT; k++)
		for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			one((enum kind)k, sizes[i]);
}
