/* Plugin callbacks shared by the benchmark programs (out of line on purpose). */
#include "callbacks.h"

__attribute__((noinline)) void
bench_cb_syscall(qpd_plugin_id id, unsigned vcpu, int64_t num,
		 const uint64_t args[8], void *udata)
{
	(void)id, (void)vcpu, (void)args;
	*(volatile uint64_t *)udata += (uint64_t)num;
}

__attribute__((noinline)) void
bench_cb_tb(qpd_plugin_id id, unsigned vcpu, void *tb, void *udata)
{
	(void)id, (void)vcpu;
	*(volatile uint64_t *)udata += (uintptr_t)tb;
}
