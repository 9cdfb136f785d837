/* Plugin callbacks shared by the benchmark programs: each adds to *udata. */
#ifndef QPD_BENCH_CALLBACKS_H
#define QPD_BENCH_CALLBACKS_H

#include <qpd.h>

void bench_cb_syscall(qpd_plugin_id id, unsigned vcpu, int64_t num,
		      const uint64_t args[8], void *udata);
void bench_cb_tb(qpd_plugin_id id, unsigned vcpu, void *tb, void *udata);

#endif
