/* The benchmark cases; each records its results through the harness. */
#ifndef QPD_BENCH_CASES_H
#define QPD_BENCH_CASES_H

/* Dispatch of VCPU_SYSCALL with 0, 1, 4, 16 plugins: qpd vs limit. */
void case_dispatch(void);

/* Inline ADD_U64 at 1, 2, 8, 64 threads: qpd, unpadded, atomic, limit. */
void case_inline_scaling(void);

/* Prints the inline scaling table; returns qpd's 2-thread scaling over
 * the limit's (0 when not measured). */
double report_inline_scaling(void);

#endif
