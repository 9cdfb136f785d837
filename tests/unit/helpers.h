/* Shared fixtures of the unit suites: a call log and a no-thread instance. */
#ifndef QPD_TEST_HELPERS_H
#define QPD_TEST_HELPERS_H

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <qpd.h>

#define LOG_MAX 256

/* What callbacks saw, in call order. */
struct call_log {
	unsigned n;
	struct {
		int tag;
		qpd_plugin_id id;
		unsigned vcpu;
		void *udata;
	} e[LOG_MAX];
};

static struct call_log LOG;

static inline void
log_call(int tag, qpd_plugin_id id, unsigned vcpu, void *udata)
{
	if (LOG.n < LOG_MAX) {
		LOG.e[LOG.n].tag = tag;
		LOG.e[LOG.n].id = id;
		LOG.e[LOG.n].vcpu = vcpu;
		LOG.e[LOG.n].udata = udata;
	}
	LOG.n++;
}

/* An instance whose reclamation the test drives with qpd_reclaim(). */
static inline struct qpd *
new_manual(void)
{
	struct qpd_config cfg = { .no_reclaimer_thread = true };
	struct qpd *q = qpd_new(&cfg);

	cr_assert_not_null(q);
	memset(&LOG, 0, sizeof(LOG));
	return q;
}

static inline qpd_plugin_id
add_plugin(struct qpd *q)
{
	qpd_plugin_id id = 0;

	cr_assert_eq(qpd_plugin_add(q, &id), 0);
	cr_assert_neq(id, 0);
	return id;
}

/* Calls qpd_reclaim() until *flag is set or about two seconds pass. */
static inline bool
reclaim_until(struct qpd *q, const volatile int *flag)
{
	struct timespec ts = { 0, 1000000 };
	int i;

	for (i = 0; i < 2000 && !*flag; i++) {
		qpd_reclaim(q);
		if (!*flag)
			nanosleep(&ts, NULL);
	}
	return *flag != 0;
}

static inline void
done_set_flag(qpd_plugin_id id, void *arg)
{
	(void)id;
	__atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
}

#endif
