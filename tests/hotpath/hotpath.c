/*
 * Out-of-line copies of every inline dispatch path, compiled as the
 * embedder would compile them, for check-hotpath.sh to disassemble.
 */
#include <qpd.h>

#define HOT __attribute__((noinline, used))

HOT void hot_tb_trans(struct qpd *q, unsigned v, void *tb)
{
	qpd_tb_trans(q, v, tb);
}

HOT void hot_syscall(struct qpd *q, unsigned v, int64_t n, const uint64_t *a)
{
	qpd_syscall(q, v, n, a);
}

HOT void hot_syscall_ret(struct qpd *q, unsigned v, int64_t n, int64_t r)
{
	qpd_syscall_ret(q, v, n, r);
}

HOT bool hot_syscall_filter(struct qpd *q, unsigned v, int64_t n,
			    const uint64_t *a, uint64_t *r)
{
	return qpd_syscall_filter(q, v, n, a, r);
}

HOT void hot_discon(struct qpd *q, unsigned v, enum qpd_discon_type t,
		    uint64_t f, uint64_t to)
{
	qpd_discon(q, v, t, f, to);
}

HOT void hot_inline_add(qpd_u64 e, unsigned v, uint64_t imm)
{
	qpd_inline_add_u64(e, v, imm);
}

HOT void hot_dyn_exec(const struct qpd_dyn *l, unsigned v)
{
	qpd_dyn_exec(l, v);
}

HOT void hot_dyn_exec_mem(const struct qpd_dyn *l, unsigned v, uint64_t a,
			  uint32_t info, enum qpd_mem_rw rw)
{
	qpd_dyn_exec_mem(l, v, a, info, rw);
}

int main(void)
{
	return 0;
}
