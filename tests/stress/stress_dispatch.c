/*
 * Dispatch under registration churn, with more threads than cores.
 *
 * Readers act as vCPUs: each holds a slice open, dispatching several event
 * kinds, passing quiescent points and re-entering now and then.  Writers
 * add plugins, register and replace their callbacks, reset and uninstall
 * them; readers' callbacks sometimes uninstall their own plugin.
 *
 * mode churn: every plugin owns an object that its `done` hook poisons
 * (and, under AddressSanitizer, frees).  A callback that reaches a poisoned
 * object ran after its plugin's `done`: a violation.
 * mode pair: writers flip each plugin between (f1, &u1) and (f2, &u2); a
 * callback that sees f1 with &u2 or f2 with &u1 is a violation.
 *
 * Prints one SUMMARY line; exits 1 on any violation.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <qpd.h>

#include "poison.h"
#define PLUGINS_PER_WRITER 4

struct obj {
	uint64_t magic;
	qpd_plugin_id id;
	struct obj *grave_next;
};

static struct qpd *q;
static unsigned n_readers = 8, n_writers = 2, seconds = 10;
static bool pair_mode;
static unsigned stop;
static unsigned churn_span; /* vCPU indices each writer cycles through */

static uint64_t n_violations, n_done, n_uninstalls, n_self_uninstalls;
static uint64_t n_resets, n_registers, n_calls, n_dispatch, n_vcpu_churn;
#ifndef FREE_ON_DONE
static struct obj *graveyard;
static pthread_mutex_t grave_lock = PTHREAD_MUTEX_INITIALIZER;
#endif

static struct { int u1, u2; } pair_udata;

static void obj_done(qpd_plugin_id id, void *arg);

static void
violation(const char *what)
{
	if (__atomic_fetch_add(&n_violations, 1, __ATOMIC_RELAXED) < 5)
		fprintf(stderr, "violation: %s\n", what);
}

static void
check(void *udata, unsigned salt)
{
	struct obj *o = udata;

	__atomic_fetch_add(&n_calls, 1, __ATOMIC_RELAXED);
	if (__atomic_load_n(&o->magic, __ATOMIC_ACQUIRE) != ALIVE) {
		violation("callback ran after its plugin's done");
		return;
	}
	/* Rarely, a plugin uninstalls itself from its own callback. */
	if ((salt & 0x3fff) == 7) {
		int err = qpd_plugin_uninstall(q, o->id, obj_done, o);

		if (err == 0)
			__atomic_fetch_add(&n_self_uninstalls, 1,
					   __ATOMIC_RELAXED);
		else if (err != -EALREADY && err != -ENOENT)
			violation("self-uninstall failed");
	}
}

static void
cb_syscall(qpd_plugin_id id, unsigned vcpu, int64_t num,
	   const uint64_t args[8], void *udata)
{
	(void)id, (void)args;
	check(udata, (unsigned)num ^ vcpu);
}

static void
cb_syscall_alt(qpd_plugin_id id, unsigned vcpu, int64_t num,
	       const uint64_t args[8], void *udata)
{
	cb_syscall(id, vcpu, num, args, udata);
}

static void
cb_tb(qpd_plugin_id id, unsigned vcpu, void *tb, void *udata)
{
	(void)id, (void)vcpu, (void)tb;
	check(udata, 1);
}

static void
cb_vcpu(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	(void)id, (void)vcpu;
	check(udata, 1);
}

static void
cb_discon(qpd_plugin_id id, unsigned vcpu, enum qpd_discon_type type,
	  uint64_t from, uint64_t to, void *udata)
{
	(void)id, (void)vcpu, (void)type, (void)from, (void)to;
	check(udata, 1);
}

static void
cb_flush(qpd_plugin_id id, void *udata)
{
	(void)id;
	check(udata, 1);
}

static void
pair_f1(qpd_plugin_id id, unsigned vcpu, int64_t num, const uint64_t args[8],
	void *udata)
{
	(void)id, (void)vcpu, (void)num, (void)args;
	__atomic_fetch_add(&n_calls, 1, __ATOMIC_RELAXED);
	if (udata != &pair_udata.u1)
		violation("f1 seen with u2");
}

static void
pair_f2(qpd_plugin_id id, unsigned vcpu, int64_t num, const uint64_t args[8],
	void *udata)
{
	(void)id, (void)vcpu, (void)num, (void)args;
	__atomic_fetch_add(&n_calls, 1, __ATOMIC_RELAXED);
	if (udata != &pair_udata.u2)
		violation("f2 seen with u1");
}

static void
obj_done(qpd_plugin_id id, void *arg)
{
	struct obj *o = arg;

	if (o->id != id)
		violation("done got another plugin's argument");
	__atomic_store_n(&o->magic, DEAD, __ATOMIC_RELEASE);
	__atomic_fetch_add(&n_done, 1, __ATOMIC_RELAXED);
#ifdef FREE_ON_DONE
	free(o);
#else
	pthread_mutex_lock(&grave_lock);
	o->grave_next = graveyard;
	graveyard = o;
	pthread_mutex_unlock(&grave_lock);
#endif
}

static bool
stopped(void)
{
	return __atomic_load_n(&stop, __ATOMIC_ACQUIRE) != 0;
}

static void *
reader(void *arg)
{
	unsigned vcpu = (unsigned)(uintptr_t)arg;
	uint64_t args[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, ret, local = 0;
	unsigned i = 0;

	if (qpd_vcpu_init(q, vcpu) != 0) {
		violation("vcpu init");
		return NULL;
	}
	qpd_vcpu_enter(q, vcpu);
	while (!stopped()) {
		i++;
		qpd_syscall(q, vcpu, (int64_t)(i * 2654435761u), args);
		if (!pair_mode) {
			qpd_tb_trans(q, vcpu, NULL);
			qpd_syscall_ret(q, vcpu, 1, 0);
			qpd_syscall_filter(q, vcpu, 1, args, &ret);
			qpd_discon(q, vcpu, QPD_DISCON_EXCEPTION, 1, 2);
			if ((i & 0xff) == 0) {
				qpd_vcpu_idle(q, vcpu);
				qpd_flush(q);
			}
		}
		if ((i & 7) == 5) {
			/* No slice around it: the dispatch is its own
			 * section, as in the QEMU adapter. */
			struct qpd_dispatch d;

			qpd_vcpu_leave(q, vcpu);
			if (qpd_dispatch_begin(q, vcpu, QPD_EV_VCPU_SYSCALL,
					       &d)) {
				QPD_DISPATCH_FOREACH(&d, c)
					((qpd_syscall_cb_t)c->fn)(c->id, vcpu,
						(int64_t)i, args, c->udata);
				qpd_dispatch_end(&d);
			}
			qpd_vcpu_enter(q, vcpu);
		}
		local++;
		if ((i & 0x3f) == 0)
			qpd_vcpu_quiescent(q, vcpu);
		if ((i & 0xfff) == 0) {
			qpd_vcpu_leave(q, vcpu);
			qpd_vcpu_enter(q, vcpu);
		}
	}
	qpd_vcpu_leave(q, vcpu);
	if (qpd_vcpu_exit(q, vcpu) != 0)
		violation("vcpu exit");
	__atomic_fetch_add(&n_dispatch, local, __ATOMIC_RELAXED);
	return NULL;
}

static int
register_all(qpd_plugin_id id, struct obj *o, bool alt)
{
	int err = 0;

	err |= qpd_register_cb(q, id, QPD_EV_VCPU_SYSCALL,
			       alt ? cb_syscall_alt : cb_syscall, o);
	err |= qpd_register_cb(q, id, QPD_EV_VCPU_TB_TRANS, cb_tb, o);
	err |= qpd_register_cb(q, id, QPD_EV_VCPU_IDLE, cb_vcpu, o);
	err |= qpd_register_cb(q, id, QPD_EV_VCPU_EXCEPTION, cb_discon, o);
	err |= qpd_register_cb(q, id, QPD_EV_FLUSH, cb_flush, o);
	err |= qpd_register_cb(q, id, QPD_EV_VCPU_INIT, cb_vcpu, o);
	err |= qpd_register_cb(q, id, QPD_EV_VCPU_EXIT, cb_vcpu, o);
	__atomic_fetch_add(&n_registers, 7, __ATOMIC_RELAXED);
	return err;
}

/* A short-lived vCPU on the writer's thread: init, idle, exit. */
static void
vcpu_churn(unsigned vcpu)
{
	if (qpd_vcpu_init(q, vcpu) != 0) {
		violation("vcpu init (churn)");
		return;
	}
	qpd_vcpu_idle(q, vcpu);
	if (qpd_vcpu_exit(q, vcpu) != 0)
		violation("vcpu exit (churn)");
	__atomic_fetch_add(&n_vcpu_churn, 1, __ATOMIC_RELAXED);
}

/*
 * The writer never dereferences an object after creating it: once anyone
 * uninstalls the plugin, the object belongs to its done hook.
 */
static void
churn_writer(unsigned widx)
{
	unsigned seed = widx * 7919u + 17u;
	struct { qpd_plugin_id id; struct obj *o; } live[PLUGINS_PER_WRITER];
	int err;

	memset(live, 0, sizeof(live));
	while (!stopped()) {
		unsigned r = rand_r(&seed);
		unsigned k = r % PLUGINS_PER_WRITER;

		if (live[k].o == NULL) {
			struct obj *o = calloc(1, sizeof(*o));

			o->magic = ALIVE;
			if (qpd_plugin_add(q, &o->id) != 0) {
				violation("plugin add");
				free(o);
				continue;
			}
			live[k].id = o->id;
			live[k].o = o;
			register_all(live[k].id, o, r & 1);
			continue;
		}
		switch ((r >> 8) % 8) {
		case 0:
		case 1:
			err = qpd_plugin_uninstall(q, live[k].id, obj_done,
						   live[k].o);
			if (err == 0)
				__atomic_fetch_add(&n_uninstalls, 1,
						   __ATOMIC_RELAXED);
			else if (err != -EALREADY && err != -ENOENT)
				violation("uninstall");
			live[k].o = NULL;
			break;
		case 2:
			if (qpd_plugin_reset(q, live[k].id, NULL, NULL) == 0)
				__atomic_fetch_add(&n_resets, 1,
						   __ATOMIC_RELAXED);
			break;
		case 3:
			qpd_register_cb(q, live[k].id, QPD_EV_VCPU_SYSCALL,
					NULL, NULL);
			break;
		case 4: /* grow the registry while readers run */
			vcpu_churn(1024 + widx * churn_span +
				   (r >> 12) % churn_span);
			break;
		default:
			register_all(live[k].id, live[k].o, r & 2);
			break;
		}
	}
	for (unsigned k = 0; k < PLUGINS_PER_WRITER; k++) {
		if (live[k].o == NULL)
			continue;
		err = qpd_plugin_uninstall(q, live[k].id, obj_done, live[k].o);
		if (err == 0)
			__atomic_fetch_add(&n_uninstalls, 1, __ATOMIC_RELAXED);
		else if (err != -EALREADY && err != -ENOENT)
			violation("uninstall");
	}
}

static void
pair_writer(void)
{
	qpd_plugin_id id;
	bool one = true;

	if (qpd_plugin_add(q, &id) != 0) {
		violation("plugin add");
		return;
	}
	while (!stopped()) {
		int err = one ? qpd_register_cb(q, id, QPD_EV_VCPU_SYSCALL,
						pair_f1, &pair_udata.u1)
			      : qpd_register_cb(q, id, QPD_EV_VCPU_SYSCALL,
						pair_f2, &pair_udata.u2);
		if (err != 0)
			violation("register");
		__atomic_fetch_add(&n_registers, 1, __ATOMIC_RELAXED);
		one = !one;
	}
}

static void *
writer(void *arg)
{
	if (pair_mode)
		pair_writer();
	else
		churn_writer((unsigned)(uintptr_t)arg);
	return NULL;
}

static void
usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--mode churn|pair] [--readers N] "
		"[--writers N] [--seconds N]\n", argv0);
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "readers", required_argument, NULL, 'r' },
		{ "writers", required_argument, NULL, 'w' },
		{ "seconds", required_argument, NULL, 's' },
		{ "mode", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	struct timespec ts;
	pthread_t *t;
	int c;

	while ((c = getopt_long(argc, argv, "r:w:s:m:", opts, NULL)) != -1) {
		switch (c) {
		case 'r': n_readers = (unsigned)atoi(optarg); break;
		case 'w': n_writers = (unsigned)atoi(optarg); break;
		case 's': seconds = (unsigned)atoi(optarg); break;
		case 'm': pair_mode = strcmp(optarg, "pair") == 0; break;
		default: usage(argv[0]);
		}
	}
	q = qpd_new(NULL);
	if (q == NULL || n_readers > 1024 || n_writers == 0)
		return 1;
	churn_span = (QPD_DEFAULT_MAX_VCPUS - 1024) / n_writers;
	t = calloc(n_readers + n_writers, sizeof(*t));
	for (unsigned i = 0; i < n_readers; i++)
		pthread_create(&t[i], NULL, reader, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < n_writers; i++)
		pthread_create(&t[n_readers + i], NULL, writer,
			       (void *)(uintptr_t)i);
	ts.tv_sec = seconds;
	ts.tv_nsec = 0;
	nanosleep(&ts, NULL);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < n_readers + n_writers; i++)
		pthread_join(t[i], NULL);
	free(t);
	/* Pending done hooks run here; every uninstall must get its done. */
	qpd_free(q);
	if (n_done != n_uninstalls + n_self_uninstalls)
		violation("an uninstall never got its done");
#ifndef FREE_ON_DONE
	while (graveyard != NULL) {
		struct obj *o = graveyard;

		graveyard = o->grave_next;
		free(o);
	}
#endif
	printf("SUMMARY mode=%s readers=%u writers=%u seconds=%u "
	       "dispatch_loops=%" PRIu64 " callbacks=%" PRIu64
	       " registrations=%" PRIu64 " uninstalls=%" PRIu64
	       " self_uninstalls=%" PRIu64 " resets=%" PRIu64
	       " done=%" PRIu64 " vcpu_churn=%" PRIu64
	       " violations=%" PRIu64 "\n",
	       pair_mode ? "pair" : "churn", n_readers, n_writers, seconds,
	       n_dispatch, n_calls, n_registers, n_uninstalls,
	       n_self_uninstalls, n_resets, n_done, n_vcpu_churn,
	       n_violations);
	return n_violations ? 1 : 0;
}
