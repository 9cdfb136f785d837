/* fork() of a process whose vCPU threads are inside their slices. */
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

static struct qpd *fq;
static volatile int stop;
static int child_hits;

static void
cb_syscall(qpd_plugin_id id, unsigned vcpu, int64_t num,
	   const uint64_t args[8], void *udata)
{
	(void)id, (void)num, (void)args;
	if (udata != NULL && vcpu == 2)
		child_hits++;
}

static void *
vcpu_thread(void *arg)
{
	unsigned vcpu = (unsigned)(uintptr_t)arg;
	uint64_t args[8] = { 0 };

	cr_assert_eq(qpd_vcpu_init(fq, vcpu), 0);
	qpd_vcpu_enter(fq, vcpu);
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		for (int i = 0; i < 1000; i++)
			qpd_syscall(fq, vcpu, i, args);
		qpd_vcpu_quiescent(fq, vcpu);
	}
	qpd_vcpu_leave(fq, vcpu);
	return NULL;
}

/* Runs in the child: registers, dispatches and uninstalls; 0 if all work. */
static int
child_main(qpd_plugin_id old)
{
	uint64_t args[8] = { 0 };
	struct timespec ts = { 0, 1000000 };
	qpd_plugin_id id;
	int done = 0;

	if (qpd_postfork(fq, true) != 0)
		return 10;
	if (qpd_plugin_add(fq, &id) != 0)
		return 11;
	if (qpd_register_cb(fq, id, QPD_EV_VCPU_SYSCALL, cb_syscall, &id) != 0)
		return 12;
	if (qpd_vcpu_init(fq, 2) != 0 || !qpd_vcpu_enter(fq, 2))
		return 13;
	qpd_syscall(fq, 2, 1, args);
	qpd_vcpu_leave(fq, 2);
	if (child_hits != 1)
		return 14;
	if (qpd_plugin_uninstall(fq, old, done_set_flag, &done) != 0)
		return 15;
	/* The reclaimer thread, restarted in the child, must get there. */
	for (int i = 0; i < 3000 && !__atomic_load_n(&done, __ATOMIC_SEQ_CST);
	     i++)
		nanosleep(&ts, NULL);
	if (!__atomic_load_n(&done, __ATOMIC_SEQ_CST))
		return 16;
	qpd_free(fq);
	return 0;
}

Test(fork, child_registers_dispatches_and_reclaims)
{
	pthread_t t[2];
	qpd_plugin_id id;
	struct timespec ts = { 0, 20000000 };
	int status;
	pid_t pid;

	fq = qpd_new(NULL);
	cr_assert_not_null(fq);
	cr_assert_eq(qpd_plugin_add(fq, &id), 0);
	cr_assert_eq(qpd_register_cb(fq, id, QPD_EV_VCPU_SYSCALL, cb_syscall,
				     NULL), 0);
	for (uintptr_t i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, vcpu_thread, (void *)i);
	nanosleep(&ts, NULL);
	cr_assert_eq(qpd_prefork(fq), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(child_main(id));
	cr_assert_eq(qpd_postfork(fq, false), 0);
	/* The parent goes on too. */
	int done = 0;
	cr_assert_eq(qpd_plugin_uninstall(fq, id, done_set_flag, &done), 0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	cr_assert(WIFEXITED(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "child failed at step %d",
		     WEXITSTATUS(status));
	qpd_free(fq);
	cr_assert_eq(done, 1);
}
