/*
 * dispatch_<event>: one dispatch of an event with N plugins subscribed.
 *   qpd     qpd's dispatch, per-vCPU events inside a vCPU slice (idle and
 *           resume outside one, as a halted vCPU calls them; flush from a
 *           non-vCPU thread);
 *   legacy  the model of QEMU 9.0's design, same placement;
 *   limit   the same N indirect calls from a plain array: the floor.
 */
#include <stdio.h>
#include <stdlib.h>

#include "backends.h"
#include "cases.h"
#include "harness.h"

static uint64_t sink;

#define BUMP(udata, v) (*(volatile uint64_t *)(udata) += (uint64_t)(v))

static __attribute__((noinline)) void
cb_syscall(qpd_plugin_id id, unsigned vcpu, int64_t num,
	   const uint64_t args[8], void *udata)
{
	(void)id, (void)vcpu, (void)args;
	BUMP(udata, num);
}

static __attribute__((noinline)) void
cb_ret(qpd_plugin_id id, unsigned vcpu, int64_t num, int64_t ret, void *udata)
{
	(void)id, (void)vcpu, (void)ret;
	BUMP(udata, num);
}

static __attribute__((noinline)) void
cb_tb(qpd_plugin_id id, unsigned vcpu, void *tb, void *udata)
{
	(void)id, (void)vcpu;
	BUMP(udata, (uintptr_t)tb);
}

static __attribute__((noinline)) void
cb_vcpu(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	(void)id;
	BUMP(udata, vcpu);
}

static __attribute__((noinline)) void
cb_discon(qpd_plugin_id id, unsigned vcpu, enum qpd_discon_type type,
	  uint64_t from, uint64_t to, void *udata)
{
	(void)id, (void)vcpu, (void)type, (void)to;
	BUMP(udata, from);
}

static __attribute__((noinline)) void
cb_simple(qpd_plugin_id id, void *udata)
{
	BUMP(udata, id);
}

enum which { W_SYSCALL, W_SYSCALL_RET, W_TB_TRANS, W_IDLE, W_RESUME,
	     W_DISCON, W_FLUSH, W_COUNT };

static const struct {
	const char *name;
	enum qpd_event ev;
	void *cb;
	bool in_slice;
} ev_info[W_COUNT] = {
	[W_SYSCALL] = { "dispatch_syscall", QPD_EV_VCPU_SYSCALL, cb_syscall, true },
	[W_SYSCALL_RET] = { "dispatch_syscall_ret", QPD_EV_VCPU_SYSCALL_RET,
			    cb_ret, true },
	[W_TB_TRANS] = { "dispatch_tb_trans", QPD_EV_VCPU_TB_TRANS, cb_tb, true },
	[W_IDLE] = { "dispatch_idle", QPD_EV_VCPU_IDLE, cb_vcpu, false },
	[W_RESUME] = { "dispatch_resume", QPD_EV_VCPU_RESUME, cb_vcpu, false },
	[W_DISCON] = { "dispatch_discon", QPD_EV_VCPU_EXCEPTION, cb_discon, true },
	[W_FLUSH] = { "dispatch_flush", QPD_EV_FLUSH, cb_simple, false },
};

struct ctx {
	void *inst;
	unsigned n;
	uint64_t args[8];
	void *fn[16];
	void *udata[16];
};

/* One loop per (backend, event): the backend's own dispatch call. */
#define DISPATCH_RUNNERS(P)                                                  \
	static void run_##P##_syscall(void *p, uint64_t iters)               \
	{                                                                    \
		struct ctx *c = p;                                           \
		for (uint64_t i = 0; i < iters; i++)                         \
			P##_syscall(c->inst, 0, (int64_t)i, c->args);        \
	}                                                                    \
	static void run_##P##_syscall_ret(void *p, uint64_t iters)           \
	{                                                                    \
		struct ctx *c = p;                                           \
		for (uint64_t i = 0; i < iters; i++)                         \
			P##_syscall_ret(c->inst, 0, (int64_t)i, 0);          \
	}                                                                    \
	static void run_##P##_tb_trans(void *p, uint64_t iters)              \
	{                                                                    \
		struct ctx *c = p;                                           \
		for (uint64_t i = 0; i < iters; i++)                         \
			P##_tb_trans(c->inst, 0, (void *)(uintptr_t)i);      \
	}                                                                    \
	static void run_##P##_idle(void *p, uint64_t iters)                  \
	{                                                                    \
		struct ctx *c = p;                                           \
		for (uint64_t i = 0; i < iters; i++)                         \
			P##_vcpu_idle(c->inst, 0);                           \
	}                                                                    \
	static void run_##P##_resume(void *p, uint64_t iters)                \
	{                                                                    \
		struct ctx *c = p;                                           \
		for (uint64_t i = 0; i < iters; i++)                         \
			P##_vcpu_resume(c->inst, 0);                         \
	}                                                                    \
	static void run_##P##_discon(void *p, uint64_t iters)                \
	{                                                                    \
		struct ctx *c = p;                                           \
		for (uint64_t i = 0; i < iters; i++)                         \
			P##_discon(c->inst, 0, QPD_DISCON_EXCEPTION, i, 0);  \
	}                                                                    \
	static void run_##P##_flush(void *p, uint64_t iters)                 \
	{                                                                    \
		struct ctx *c = p;                                           \
		for (uint64_t i = 0; i < iters; i++)                         \
			P##_flush(c->inst);                                  \
	}                                                                    \
	static const bench_run_fn P##_runners[W_COUNT] = {                   \
		run_##P##_syscall, run_##P##_syscall_ret, run_##P##_tb_trans, \
		run_##P##_idle, run_##P##_resume, run_##P##_discon,          \
		run_##P##_flush,                                             \
	};

FOR_EACH_BACKEND(DISPATCH_RUNNERS)

/* The floor: the same calls, straight from an array. */
static void
run_limit(void *p, uint64_t iters, enum which w)
{
	struct ctx *c = p;

	for (uint64_t i = 0; i < iters; i++) {
		/* Reload the count as a dispatcher reloads its list. */
		unsigned n = *(volatile unsigned *)&c->n;

		for (unsigned k = 0; k < n; k++) {
			void *f = c->fn[k], *u = c->udata[k];

			switch (w) {
			case W_SYSCALL:
				((qpd_syscall_cb_t)f)(k + 1, 0, (int64_t)i,
						      c->args, u);
				break;
			case W_SYSCALL_RET:
				((qpd_syscall_ret_cb_t)f)(k + 1, 0, (int64_t)i,
							  0, u);
				break;
			case W_TB_TRANS:
				((qpd_tb_trans_cb_t)f)(k + 1, 0,
						       (void *)(uintptr_t)i, u);
				break;
			case W_IDLE:
			case W_RESUME:
				((qpd_vcpu_cb_t)f)(k + 1, 0, u);
				break;
			case W_DISCON:
				((qpd_discon_cb_t)f)(k + 1, 0,
						     QPD_DISCON_EXCEPTION, i, 0,
						     u);
				break;
			case W_FLUSH:
			case W_COUNT:
				((qpd_simple_cb_t)f)(k + 1, u);
				break;
			}
		}
	}
}

#define LIMIT_RUNNER(W)                                                     \
	static void run_limit_##W(void *p, uint64_t iters)                   \
	{                                                                    \
		run_limit(p, iters, W);                                      \
	}
LIMIT_RUNNER(W_SYSCALL)
LIMIT_RUNNER(W_SYSCALL_RET)
LIMIT_RUNNER(W_TB_TRANS)
LIMIT_RUNNER(W_IDLE)
LIMIT_RUNNER(W_RESUME)
LIMIT_RUNNER(W_DISCON)
LIMIT_RUNNER(W_FLUSH)

static const bench_run_fn limit_runners[W_COUNT] = {
	run_limit_W_SYSCALL, run_limit_W_SYSCALL_RET, run_limit_W_TB_TRANS,
	run_limit_W_IDLE, run_limit_W_RESUME, run_limit_W_DISCON,
	run_limit_W_FLUSH,
};

static void
one(enum which w, unsigned plugins)
{
	struct ctx bc[BACKEND_COUNT] = { 0 }, lc = { .n = plugins };
	struct bench_impl impls[BACKEND_COUNT + 1];
	bool in_slice = ev_info[w].in_slice;
	char params[32];
	unsigned n = 0, b = 0;

	snprintf(params, sizeof(params), "plugins:%u", plugins);
	if (!bench_selected_case(ev_info[w].name, params))
		return;
	for (unsigned k = 0; k < plugins; k++) {
		lc.fn[k] = ev_info[w].cb;
		lc.udata[k] = &sink;
	}
#define ADD_IMPL(P)                                                         \
	bc[b].inst = P##_bench_setup(plugins, ev_info[w].ev, ev_info[w].cb,  \
				     &sink);                                 \
	if (bc[b].inst != NULL) {                                            \
		if (in_slice)                                                \
			P##_vcpu_enter(bc[b].inst, 0);                       \
		impls[n++] = (struct bench_impl){ #P, P##_runners[w], &bc[b] }; \
	}                                                                    \
	b++;
	FOR_EACH_BACKEND(ADD_IMPL)
#undef ADD_IMPL
	impls[n++] = (struct bench_impl){ "limit", limit_runners[w], &lc };
	bench_measure(ev_info[w].name, params, impls, n, 1);
	b = 0;
#define TEARDOWN(P)                                                         \
	if (bc[b].inst != NULL) {                                            \
		if (in_slice)                                                \
			P##_vcpu_leave(bc[b].inst, 0);                       \
		P##_bench_teardown(bc[b].inst);                              \
	}                                                                    \
	b++;
	FOR_EACH_BACKEND(TEARDOWN)
#undef TEARDOWN
}

void
case_dispatch(void)
{
	static const unsigned counts[] = { 0, 1, 4, 16 };

	for (unsigned w = 0; w < W_COUNT; w++)
		for (unsigned i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
			one((enum which)w, counts[i]);
}
