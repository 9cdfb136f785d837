/* The benchmark cases; each records its results through the harness. */
#ifndef QPD_BENCH_CASES_H
#define QPD_BENCH_CASES_H

/* Dispatch of each event with 0, 1, 4, 16 plugins. */
void case_dispatch(void);

/* Dynamic-list execution: each entry kind, lists of 1, 4, 16 entries. */
void case_dyn(void);

/* Building dynamic lists (new, two appends, retire or flush) on 1 and 2
 * threads. */
void case_dyn_build(void);

/* Prints the list-building table; returns the 2-thread over 1-thread
 * throughput of dyn_build (0 when not measured). */
double report_dyn_build(void);

/* Dispatch under registration churn, vCPU growth stalls, uninstall
 * latency. */
void case_concurrent(void);

/* Prints churn, growth and uninstall summaries; returns the worst
 * churn/no-churn throughput ratio of qpd (0 when not measured). */
double report_concurrent(void);

/* Inline ADD_U64 at 1, 2, 8, 64 threads: qpd, unpadded, atomic, limit. */
void case_inline_scaling(void);

/* Prints the inline scaling table; returns qpd's 2-thread scaling over
 * the limit's (0 when not measured). */
double report_inline_scaling(void);

#endif
