/* Plugins: ids, uninstall, reset and their grace periods. */
#include "helpers.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static void
cb_vcpu(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	log_call(1, id, vcpu, udata);
}

static void
dispatch_idle(struct qpd *q, unsigned vcpu)
{
	qpd_vcpu_idle(q, vcpu);
}

Test(plugin, ids_unique_nonzero_increasing)
{
	struct qpd *q = new_manual();
	qpd_plugin_id prev = 0;

	for (int i = 0; i < 100; i++) {
		qpd_plugin_id id = add_plugin(q);

		cr_assert_gt(id, prev);
		prev = id;
	}
	qpd_free(q);
}

Test(plugin, two_instances_are_independent)
{
	struct qpd *a = new_manual(), *b = new_manual();
	qpd_plugin_id ia = add_plugin(a), ib = add_plugin(b);
	int flag = 0;

	cr_assert_eq(qpd_vcpu_init(a, 0), 0);
	cr_assert_eq(qpd_register_cb(a, ia, QPD_EV_VCPU_IDLE, cb_vcpu, NULL), 0);
	cr_assert_eq(qpd_vcpu_init(b, 0), 0);
	dispatch_idle(b, 0);
	cr_assert_eq(LOG.n, 0, "b has no callbacks");
	dispatch_idle(a, 0);
	cr_assert_eq(LOG.n, 1);
	cr_assert_eq(qpd_plugin_uninstall(b, ib, done_set_flag, &flag), 0);
	cr_assert(reclaim_until(b, &flag));
	dispatch_idle(a, 0);
	cr_assert_eq(LOG.n, 2, "uninstall in b left a alone");
	qpd_free(a);
	qpd_free(b);
}

Test(plugin, uninstall_removes_callbacks_then_done)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);
	struct qpd_stats st;
	int flag = 0;

	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	for (int ev = QPD_EV_VCPU_IDLE; ev <= QPD_EV_VCPU_RESUME; ev++)
		cr_assert_eq(qpd_register_cb(q, id, ev, cb_vcpu, NULL), 0);
	cr_assert_eq(qpd_plugin_uninstall(q, id, done_set_flag, &flag), 0);
	dispatch_idle(q, 0);
	qpd_vcpu_resume(q, 0);
	cr_assert_eq(LOG.n, 0, "no callback runs once uninstall returned");
	cr_assert(reclaim_until(q, &flag));
	cr_assert_eq(flag, 1, "done runs exactly once");
	qpd_reclaim(q);
	cr_assert_eq(flag, 1);
	cr_assert_eq(qpd_plugin_uninstall(q, id, NULL, NULL), -ENOENT);
	cr_assert_eq(qpd_stats_get(q, &st), 0);
	cr_assert_eq(st.n_plugins, 0);
	cr_assert_eq(st.n_done_calls, 1);
	qpd_free(q);
}

Test(plugin, done_waits_for_open_slice)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);
	int flag = 0;

	cr_assert_eq(qpd_vcpu_init(q, 3), 0);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_TB_TRANS,
				     (void *)cb_vcpu, NULL), 0);
	cr_assert(qpd_vcpu_enter(q, 3));
	cr_assert_eq(qpd_plugin_uninstall(q, id, done_set_flag, &flag), 0);
	for (int i = 0; i < 50; i++)
		qpd_reclaim(q);
	cr_assert_eq(flag, 0, "a slice that may hold the callbacks is open");
	qpd_vcpu_leave(q, 3);
	cr_assert(reclaim_until(q, &flag), "done after the slice ended");
	qpd_free(q);
}

Test(plugin, quiescent_lets_done_through)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);
	int flag = 0;

	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	cr_assert(qpd_vcpu_enter(q, 0));
	cr_assert_eq(qpd_plugin_uninstall(q, id, done_set_flag, &flag), 0);
	for (int i = 0; i < 10 && !flag; i++) {
		qpd_reclaim(q);
		qpd_vcpu_quiescent(q, 0);
	}
	cr_assert_eq(flag, 1, "quiescent points alone complete the grace period");
	qpd_vcpu_leave(q, 0);
	qpd_free(q);
}

Test(plugin, double_uninstall_and_register_after)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);
	int flag = 0;

	cr_assert_eq(qpd_plugin_uninstall(q, id, done_set_flag, &flag), 0);
	cr_assert_eq(qpd_plugin_uninstall(q, id, done_set_flag, &flag),
		     -EALREADY);
	cr_assert_eq(qpd_plugin_reset(q, id, NULL, NULL), -ESHUTDOWN);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_FLUSH, cb_vcpu, NULL),
		     -ESHUTDOWN);
	cr_assert(reclaim_until(q, &flag));
	cr_assert_eq(flag, 1);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_FLUSH, cb_vcpu, NULL),
		     -ENOENT);
	qpd_free(q);
}

Test(plugin, reset_keeps_plugin)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);
	int flag = 0;

	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_IDLE, cb_vcpu, NULL), 0);
	cr_assert_eq(qpd_plugin_reset(q, id, done_set_flag, &flag), 0);
	cr_assert_eq(qpd_plugin_reset(q, id, NULL, NULL), -EALREADY);
	dispatch_idle(q, 0);
	cr_assert_eq(LOG.n, 0);
	cr_assert(reclaim_until(q, &flag));
	cr_assert_eq(qpd_plugin_reset(q, id, NULL, NULL), 0, "reset again");
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_IDLE, cb_vcpu, NULL), 0);
	dispatch_idle(q, 0);
	cr_assert_eq(LOG.n, 1, "the plugin registers again after reset");
	qpd_free(q);
}

static qpd_plugin_id order[4];
static unsigned n_order;

static void
done_record(qpd_plugin_id id, void *arg)
{
	(void)arg;
	order[n_order++] = id;
}

Test(plugin, reset_then_uninstall_done_in_order)
{
	struct qpd *q = new_manual();
	qpd_plugin_id id = add_plugin(q);
	int flag = 0;

	cr_assert_eq(qpd_plugin_reset(q, id, done_record, NULL), 0);
	cr_assert_eq(qpd_plugin_uninstall(q, id, done_record, NULL), 0);
	cr_assert_eq(qpd_plugin_uninstall(q, add_plugin(q), done_set_flag,
					  &flag), 0);
	cr_assert(reclaim_until(q, &flag));
	cr_assert_eq(n_order, 2);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_FLUSH, cb_vcpu, NULL),
		     -ENOENT);
	qpd_free(q);
}

static struct qpd *self_q;
static int self_done;

static void
cb_uninstall_self(qpd_plugin_id id, unsigned vcpu, void *udata)
{
	log_call(2, id, vcpu, udata);
	cr_assert_eq(qpd_plugin_uninstall(self_q, id, done_set_flag,
					  &self_done), 0);
	cr_assert_eq(self_done, 0, "done cannot run inside the callback");
}

Test(plugin, uninstall_from_own_callback)
{
	struct qpd *q = self_q = new_manual();
	qpd_plugin_id id = add_plugin(q);

	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_TB_TRANS,
				     (void *)cb_uninstall_self, NULL), 0);
	cr_assert(qpd_vcpu_enter(q, 0));
	qpd_tb_trans(q, 0, NULL);
	qpd_tb_trans(q, 0, NULL);
	cr_assert_eq(LOG.n, 1, "the second dispatch sees no callback");
	qpd_reclaim(q);
	qpd_vcpu_leave(q, 0);
	cr_assert(reclaim_until(q, &self_done));
	qpd_free(q);
}

Test(plugin, reclaimer_thread_calls_done)
{
	struct qpd *q = qpd_new(NULL);
	qpd_plugin_id id;
	struct timespec ts = { 0, 1000000 };
	int flag = 0;

	cr_assert_not_null(q);
	cr_assert_eq(qpd_plugin_add(q, &id), 0);
	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	cr_assert(qpd_vcpu_enter(q, 0));
	cr_assert_eq(qpd_plugin_uninstall(q, id, done_set_flag, &flag), 0);
	for (int i = 0; i < 3000 && !__atomic_load_n(&flag, __ATOMIC_SEQ_CST);
	     i++) {
		qpd_vcpu_quiescent(q, 0);
		nanosleep(&ts, NULL);
	}
	cr_assert_eq(__atomic_load_n(&flag, __ATOMIC_SEQ_CST), 1);
	qpd_vcpu_leave(q, 0);
	qpd_free(q);
}

Test(plugin, free_runs_pending_done)
{
	struct qpd *q = new_manual();
	int flag = 0;

	cr_assert_eq(qpd_plugin_uninstall(q, add_plugin(q), done_set_flag,
					  &flag), 0);
	qpd_free(q);
	cr_assert_eq(flag, 1);
}

/* Thread ids of this process, from /proc/self/task; returns the count. */
static int
task_ids(long *ids, int max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL && n < max) {
		if (e->d_name[0] != '.')
			ids[n++] = strtol(e->d_name, NULL, 10);
	}
	closedir(d);
	return n;
}

/* The blocked-signal mask of thread `tid`, as /proc shows it. */
static unsigned long long
blocked_mask(long tid)
{
	char path[64], line[256];
	unsigned long long mask = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%ld/status", tid);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "SigBlk: %llx", &mask) == 1)
			break;
	}
	fclose(f);
	return mask;
}

static bool
listed(const long *ids, int n, long id)
{
	for (int i = 0; i < n; i++) {
		if (ids[i] == id)
			return true;
	}
	return false;
}

/*
 * The reclaimer never takes a process-directed signal: an emulator that
 * forwards host signals to its guest expects them on its own threads (QEMU's
 * linux-user crashed when qpd's thread caught one), and the creating
 * thread's mask is left as it was.
 */
Test(plugin, reclaimer_thread_blocks_every_signal)
{
	long before[64], after[64];
	int nb, na, checked = 0;
	sigset_t mine, now;
	struct qpd *q;

	sigemptyset(&mine);
	sigaddset(&mine, SIGUSR2);
	cr_assert_eq(pthread_sigmask(SIG_SETMASK, &mine, NULL), 0);
	nb = task_ids(before, 64);
	q = qpd_new(NULL);
	cr_assert_not_null(q);
	na = task_ids(after, 64);
	for (int i = 0; i < na; i++) {
		unsigned long long m;

		if (listed(before, nb, after[i]))
			continue;
		m = blocked_mask(after[i]);
		/* Bit n-1 is signal n; SIGKILL and SIGSTOP cannot be blocked. */
		cr_assert(m & (1ULL << (SIGUSR1 - 1)), "SigBlk %llx", m);
		cr_assert(m & (1ULL << (SIGALRM - 1)), "SigBlk %llx", m);
		cr_assert(m & (1ULL << (SIGRTMIN + 4 - 1)), "SigBlk %llx", m);
		cr_assert(m & (1ULL << (SIGSEGV - 1)), "SigBlk %llx", m);
		checked++;
	}
	cr_assert_geq(checked, 1, "the reclaimer thread was found");
	cr_assert_eq(pthread_sigmask(SIG_SETMASK, NULL, &now), 0);
	cr_assert(sigismember(&now, SIGUSR2) && !sigismember(&now, SIGUSR1),
		  "the caller's mask is restored");
	qpd_free(q);
}

/* The embedder's side of on_reclaim_pending_locked: count and schedule. */
struct kick {
	int n;     /* calls since the driver last looked */
	int total; /* calls in all */
};

static void
kick_count(void *opaque)
{
	struct kick *k = opaque;

	k->n++;
	k->total++;
}

/* Drives reclamation only when told to, as an embedder's own thread would. */
static bool
reclaim_when_kicked(struct qpd *q, struct kick *k, const int *flag)
{
	for (int i = 0; i < 100 && (k->n != 0 || !*flag); i++) {
		if (k->n == 0)
			return false; /* work pending, nobody told */
		k->n = 0;
		if (qpd_reclaim(q) > 0)
			k->n++; /* still waiting: the driver reschedules itself */
	}
	return *flag != 0;
}

/*
 * Without the reclaimer thread no thread is started, and every piece of
 * reclamation work (a replaced callback array, a `done` hook) is announced,
 * so an embedder that reclaims only when told to never strands any.
 */
Test(plugin, embedder_told_of_every_pending_reclaim)
{
	struct kick k = { 0, 0 };
	struct qpd_config cfg = { .no_reclaimer_thread = true,
				  .on_reclaim_pending_locked = kick_count,
				  .opaque = &k };
	long before[64], after[64];
	struct qpd_stats st;
	qpd_plugin_id id;
	int nb, na, flag = 0;
	struct qpd *q;

	nb = task_ids(before, 64);
	q = qpd_new(&cfg);
	cr_assert_not_null(q);
	na = task_ids(after, 64);
	cr_assert_eq(na, nb, "no thread of qpd's own");
	cr_assert_eq(qpd_plugin_add(q, &id), 0);
	cr_assert_eq(qpd_vcpu_init(q, 0), 0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(qpd_register_cb(q, id, QPD_EV_VCPU_IDLE,
					     i % 2 ? (void *)cb_vcpu : NULL,
					     NULL), 0);
	cr_assert_eq(qpd_stats_get(q, &st), 0);
	cr_assert_gt(st.n_pending_reclaim, 0, "arrays were retired");
	cr_assert_gt(k.n, 0, "and announced");
	cr_assert_eq(qpd_plugin_reset(q, id, done_set_flag, &flag), 0);
	cr_assert(reclaim_when_kicked(q, &k, &flag), "done ran when told");
	cr_assert_eq(qpd_stats_get(q, &st), 0);
	cr_assert_eq(st.n_pending_reclaim, 0, "nothing stranded");
	flag = 0;
	k.n = 0;
	cr_assert_eq(qpd_plugin_uninstall(q, id, done_set_flag, &flag), 0);
	cr_assert_gt(k.n, 0, "an uninstall's done hook is announced");
	cr_assert(reclaim_when_kicked(q, &k, &flag));
	qpd_free(q);
}
