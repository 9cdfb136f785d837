/*
 * qpd-gate-ops CASE N: performs N operations of one single-threaded hot
 * path, for bench/gate to count instructions under callgrind.  The gate
 * runs N and 2N and takes the difference, so set-up cancels out.
 *
 * `qpd-gate-ops --list` prints the cases, one per line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qpd.h>

static uint64_t sink;
static uint64_t args[8];

static __attribute__((noinline)) void
cb_syscall(qpd_plugin_id id, unsigned vcpu, int64_t num,
	   const uint64_t a[8], void *udata)
{
	(void)id, (void)vcpu, (void)a;
	*(volatile uint64_t *)udata += (uint64_t)num;
}

static __attribute__((noinline)) void
cb_ret(qpd_plugin_id id, unsigned vcpu, int64_t num, int64_t ret, void *udata)
{
	(void)id, (void)vcpu, (void)ret;
	*(volatile uint64_t *)udata += (uint64_t)num;
}

static __attribute__((noinline)) bool
cb_filter(qpd_plugin_id id, unsigned vcpu, int64_t num, const uint64_t a[8],
	  uint64_t *ret, void *udata)
{
	(void)id, (void)vcpu, (void)a, (void)ret;
	*(volatile uint64_t *)udata += (uint64_t)num;
	return false;
}

static __attribute__((noinline)) void
cb_tb(qpd_plugin_id id, unsigned vcpu, void *tb, void *udata)
{
	(void)id, (void)vcpu;
	*(volatile uint64_t *)udata += (uintptr_t)tb;
}

static __attribute__((noinline)) void
cb_vcpu(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	(void)id;
	*(volatile uint64_t *)udata += vcpu;
}

static __attribute__((noinline)) void
cb_discon(qpd_plugin_id id, unsigned vcpu, enum qpd_discon_type t,
	  uint64_t from, uint64_t to, void *udata)
{
	(void)id, (void)vcpu, (void)t, (void)to;
	*(volatile uint64_t *)udata += from;
}

static __attribute__((noinline)) void
cb_simple(qpd_plugin_id id, void *udata)
{
	*(volatile uint64_t *)udata += id;
}

static __attribute__((noinline)) void
dyn_cb(unsigned vcpu, void *udata)
{
	*(volatile uint64_t *)udata += vcpu + 1;
}

static __attribute__((noinline)) void
mem_cb(unsigned vcpu, uint32_t info, uint64_t vaddr, void *udata)
{
	*(volatile uint64_t *)udata += vcpu + info + vaddr;
}

struct env {
	struct qpd *q;
	struct qpd_dyn *list;
	qpd_u64 counter;
	qpd_plugin_id extra;
};

/* An instance with vCPU 0 inside a slice and `plugins` on ev. */
static struct env
env_new(unsigned plugins, enum qpd_event ev, void *fn, bool with_list)
{
	struct qpd_config cfg = { .no_reclaimer_thread = true };
	struct env e = { .q = qpd_new(&cfg) };

	if (e.q == NULL || qpd_vcpu_init(e.q, 0) != 0)
		exit(1);
	for (unsigned k = 0; k < plugins; k++) {
		qpd_plugin_id id;

		if (qpd_plugin_add(e.q, &id) != 0 ||
		    qpd_register_cb(e.q, id, ev, fn, &sink) != 0)
			exit(1);
	}
	if (qpd_plugin_add(e.q, &e.extra) != 0)
		exit(1);
	e.counter = (qpd_u64){ qpd_scoreboard_new(e.q, 8), 0 };
	e.list = with_list ? qpd_dyn_new(e.q) : NULL;
	if (e.counter.score == NULL || (with_list && e.list == NULL))
		exit(1);
	qpd_vcpu_enter(e.q, 0);
	return e;
}

/* The measured loops; noinline so that a profile names them. */
#define LOOP(name, body)                                                    \
	static __attribute__((noinline)) void name(struct env *e, long n)    \
	{                                                                    \
		for (long i = 0; i < n; i++) {                               \
			body;                                                \
		}                                                            \
	}

LOOP(op_syscall, qpd_syscall(e->q, 0, i, args))
LOOP(op_syscall_ret, qpd_syscall_ret(e->q, 0, i, 0))
LOOP(op_syscall_filter, { uint64_t r; qpd_syscall_filter(e->q, 0, i, args, &r); })
LOOP(op_tb_trans, qpd_tb_trans(e->q, 0, (void *)(uintptr_t)i))
LOOP(op_idle, qpd_vcpu_idle(e->q, 0))
LOOP(op_resume, qpd_vcpu_resume(e->q, 0))
LOOP(op_discon, qpd_discon(e->q, 0, QPD_DISCON_EXCEPTION, (uint64_t)i, 0))
LOOP(op_flush, qpd_flush(e->q))
LOOP(op_dyn, qpd_dyn_exec(e->list, 0))
LOOP(op_dyn_mem, qpd_dyn_exec_mem(e->list, 0, (uint64_t)i, 3, QPD_MEM_R))
LOOP(op_inline_add, qpd_inline_add_u64(e->counter, 0, 1))
LOOP(op_register, {
	qpd_register_cb(e->q, e->extra, QPD_EV_VCPU_SYSCALL, cb_syscall, &sink);
	qpd_register_cb(e->q, e->extra, QPD_EV_VCPU_SYSCALL, NULL, NULL);
	if ((i & 63) == 63) {
		qpd_vcpu_leave(e->q, 0);
		qpd_reclaim(e->q);
		qpd_vcpu_enter(e->q, 0);
	}
})
LOOP(op_vcpu_init, {
	qpd_vcpu_init(e->q, 1);
	qpd_vcpu_exit(e->q, 1);
})

struct gcase {
	const char *name;
	enum qpd_event ev;
	void *fn;
	unsigned plugins;
	void (*loop)(struct env *, long);
	int dyn; /* 0 none, else one of 'c' cb, 'a' add, 's' store, 'q' cond, 'm' mem */
};

#define DISPATCH(ev_name, EV, fn, loop)                                     \
	{ "dispatch_" ev_name "/plugins:1", EV, fn, 1, loop, 0 },            \
	{ "dispatch_" ev_name "/plugins:4", EV, fn, 4, loop, 0 }

static const struct gcase cases[] = {
	DISPATCH("syscall", QPD_EV_VCPU_SYSCALL, cb_syscall, op_syscall),
	DISPATCH("syscall_ret", QPD_EV_VCPU_SYSCALL_RET, cb_ret, op_syscall_ret),
	DISPATCH("syscall_filter", QPD_EV_VCPU_SYSCALL_FILTER, cb_filter,
		 op_syscall_filter),
	DISPATCH("tb_trans", QPD_EV_VCPU_TB_TRANS, cb_tb, op_tb_trans),
	DISPATCH("idle", QPD_EV_VCPU_IDLE, cb_vcpu, op_idle),
	DISPATCH("resume", QPD_EV_VCPU_RESUME, cb_vcpu, op_resume),
	DISPATCH("discon", QPD_EV_VCPU_EXCEPTION, cb_discon, op_discon),
	DISPATCH("flush", QPD_EV_FLUSH, cb_simple, op_flush),
	{ "dispatch_syscall/plugins:0", QPD_EV_VCPU_SYSCALL, NULL, 0, op_syscall, 0 },
	{ "dyn_cb/entries:4", QPD_EV_COUNT, NULL, 0, op_dyn, 'c' },
	{ "dyn_inline_add/entries:4", QPD_EV_COUNT, NULL, 0, op_dyn, 'a' },
	{ "dyn_inline_store/entries:4", QPD_EV_COUNT, NULL, 0, op_dyn, 's' },
	{ "dyn_cond/entries:4", QPD_EV_COUNT, NULL, 0, op_dyn, 'q' },
	{ "dyn_mem/entries:4", QPD_EV_COUNT, NULL, 0, op_dyn_mem, 'm' },
	{ "inline_add", QPD_EV_COUNT, NULL, 0, op_inline_add, 0 },
	{ "register_unregister", QPD_EV_COUNT, NULL, 0, op_register, 0 },
	{ "vcpu_init_exit", QPD_EV_COUNT, NULL, 0, op_vcpu_init, 0 },
};

static void
fill_list(struct env *e, int kind)
{
	static const enum qpd_mem_rw rw[3] = { QPD_MEM_R, QPD_MEM_W, QPD_MEM_RW };

	for (unsigned k = 0; k < 4; k++) {
		int err;

		switch (kind) {
		case 'c':
			err = qpd_dyn_add_cb(e->list, dyn_cb, &sink);
			break;
		case 'a':
			err = qpd_dyn_add_inline(e->list, QPD_OP_ADD_U64,
						 e->counter, 1);
			break;
		case 's':
			err = qpd_dyn_add_inline(e->list, QPD_OP_STORE_U64,
						 e->counter, k);
			break;
		case 'q':
			err = qpd_dyn_add_cond_cb(e->list, dyn_cb, &sink,
						  QPD_COND_GE, e->counter, 0);
			break;
		default:
			err = qpd_dyn_add_mem_cb(e->list, mem_cb, rw[k % 3], &sink);
			break;
		}
		if (err != 0)
			exit(1);
	}
}

int
main(int argc, char **argv)
{
	const size_t n_cases = sizeof(cases) / sizeof(cases[0]);

	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (size_t i = 0; i < n_cases; i++)
			puts(cases[i].name);
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: %s CASE N | --list\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < n_cases; i++) {
		const struct gcase *c = &cases[i];
		struct env e;
		long n = atol(argv[2]);

		if (strcmp(c->name, argv[1]) != 0)
			continue;
		e = env_new(c->plugins, c->ev, c->fn, c->dyn != 0);
		if (c->dyn)
			fill_list(&e, c->dyn);
		/* Idle and resume are called by a halted vCPU: outside a slice. */
		bool outside = c->loop == op_idle || c->loop == op_resume ||
			       c->loop == op_vcpu_init;

		if (outside)
			qpd_vcpu_leave(e.q, 0);
		c->loop(&e, n);
		if (!outside)
			qpd_vcpu_leave(e.q, 0);
		qpd_free(e.q);
		return 0;
	}
	fprintf(stderr, "%s: unknown case %s\n", argv[0], argv[1]);
	return 2;
}
