/*
 * dispatch_syscall: one VCPU_SYSCALL dispatch inside a vCPU slice with N
 * plugins registered, against `limit`, the same N indirect calls made from
 * a plain array.
 */
#include <stdio.h>

#include <qpd.h>

#include "cases.h"
#include "harness.h"

static uint64_t sink;

static __attribute__((noinline)) void
cb_syscall(qpd_plugin_id id, unsigned vcpu, int64_t num,
	   const uint64_t args[8], void *udata)
{
	(void)id, (void)vcpu, (void)args;
	*(volatile uint64_t *)udata += (uint64_t)num;
}

struct limit_ctx {
	unsigned n;
	qpd_syscall_cb_t fn[16];
	void *udata[16];
	uint64_t args[8];
};

static void
run_limit(void *p, uint64_t iters)
{
	struct limit_ctx *c = p;

	for (uint64_t i = 0; i < iters; i++) {
		/* Reload the count as dispatch reloads its array. */
		unsigned n = *(volatile unsigned *)&c->n;

		for (unsigned k = 0; k < n; k++)
			c->fn[k](k + 1, 0, (int64_t)i, c->args, c->udata[k]);
	}
}

struct qpd_ctx {
	struct qpd *q;
	uint64_t args[8];
};

static void
run_qpd(void *p, uint64_t iters)
{
	struct qpd_ctx *c = p;

	for (uint64_t i = 0; i < iters; i++)
		qpd_syscall(c->q, 0, (int64_t)i, c->args);
}

static void
one(unsigned plugins)
{
	struct qpd_config cfg = { .no_reclaimer_thread = true };
	struct qpd_ctx qc = { .q = qpd_new(&cfg) };
	struct limit_ctx lc = { .n = plugins };
	struct bench_impl impls[2] = {
		{ "qpd", run_qpd, &qc },
		{ "limit", run_limit, &lc },
	};
	char params[32];

	snprintf(params, sizeof(params), "plugins:%u", plugins);
	if (qc.q == NULL || qpd_vcpu_init(qc.q, 0) != 0)
		return;
	for (unsigned k = 0; k < plugins; k++) {
		qpd_plugin_id id;

		qpd_plugin_add(qc.q, &id);
		qpd_register_cb(qc.q, id, QPD_EV_VCPU_SYSCALL, cb_syscall, &sink);
		lc.fn[k] = cb_syscall;
		lc.udata[k] = &sink;
	}
	qpd_vcpu_enter(qc.q, 0);
	bench_measure("dispatch_syscall", params, impls, 2, 1);
	qpd_vcpu_leave(qc.q, 0);
	qpd_free(qc.q);
}

void
case_dispatch(void)
{
	static const unsigned counts[] = { 0, 1, 4, 16 };

	for (unsigned i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		one(counts[i]);
}
