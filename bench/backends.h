/*
 * The dispatchers compared by the benchmarks: qpd and, when the build has
 * liburcu and GLib, the model of QEMU 9.0's design (legacy).  Hot loops are
 * generated per backend from the backends' identically named functions
 * (qpd_syscall, legacy_syscall, ...), so no case pays an extra indirection.
 */
#ifndef QPD_BENCH_BACKENDS_H
#define QPD_BENCH_BACKENDS_H

#include <qpd.h>

#ifdef QPD_BENCH_LEGACY
#include "legacy.h"
#define FOR_EACH_BACKEND(X) X(qpd) X(legacy)
#define BACKEND_COUNT 2
#else
#define FOR_EACH_BACKEND(X) X(qpd)
#define BACKEND_COUNT 1
#endif

/*
 * An instance with vCPU 0 online and `plugins` plugins, each subscribed to
 * ev with (fn, udata) (none when fn is NULL); NULL on failure.
 */
void *qpd_bench_setup(unsigned plugins, enum qpd_event ev, void *fn,
		      void *udata);
void qpd_bench_teardown(void *inst);

/* A vCPU's periodic safe point inside a long slice. */
static inline void
qpd_bench_safepoint(struct qpd *q, unsigned vcpu)
{
	qpd_vcpu_quiescent(q, vcpu);
}

/* What a thread waiting for a `done` does between checks. */
void qpd_bench_idle_wait(struct qpd *q);

/*
 * An instance for a whole-process workload; `rebuild` is called when the
 * backend throws dynamic lists away (qpd never does).
 */
struct qpd *qpd_workload_new(void (*rebuild)(void *opaque));
#ifdef QPD_BENCH_LEGACY
void *legacy_bench_setup(unsigned plugins, enum qpd_event ev, void *fn,
			 void *udata);
void legacy_bench_teardown(void *inst);

static inline void
legacy_bench_safepoint(struct legacy *l, unsigned vcpu)
{
	legacy_vcpu_safepoint(l, vcpu);
}

void legacy_bench_idle_wait(struct legacy *l);
struct legacy *legacy_workload_new(void (*rebuild)(void *opaque));
#endif

#endif
