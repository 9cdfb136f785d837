/*
 * The library's single allocation point.
 *
 * Production builds allocate through jemalloc's non-standard mallocx()
 * and dallocx(), so qpd's memory comes from jemalloc whatever allocator the
 * embedding process uses for malloc().  Sanitizer and valgrind builds
 * select the libc allocator (meson option `allocator=libc`), because those
 * tools only track malloc/free.  Every block is zeroed and aligned to a
 * cache line so that no two owners share one.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifdef QPD_FAULT_INJECTION
/*
 * Test builds only: when non-zero, the allocation that brings the countdown
 * to zero fails; every allocation attempt is counted in qpd__fault_allocs.
 */
unsigned long qpd__fault_countdown;
unsigned long qpd__fault_allocs;

static bool
fault_now(void)
{
	qpd__fault_allocs++;
	return qpd__fault_countdown != 0 && --qpd__fault_countdown == 0;
}
#else
static inline bool
fault_now(void)
{
	return false;
}
#endif

#ifdef QPD_USE_JEMALLOC
#include <jemalloc/jemalloc.h>

void *
qpd__alloc(size_t size)
{
	if (fault_now())
		return NULL;
	return mallocx(size ? size : 1, MALLOCX_ZERO |
		       MALLOCX_ALIGN(QPD_CACHELINE));
}

void
qpd__dealloc(void *p)
{
	if (p != NULL)
		dallocx(p, 0);
}
#else
void *
qpd__alloc(size_t size)
{
	size_t rounded = (size + QPD_CACHELINE - 1) & ~(size_t)(QPD_CACHELINE - 1);
	void *p;

	if (rounded < size || fault_now())
		return NULL;
	p = aligned_alloc(QPD_CACHELINE, rounded ? rounded : QPD_CACHELINE);
	if (p != NULL)
		memset(p, 0, rounded);
	return p;
}

void
qpd__dealloc(void *p)
{
	free(p);
}
#endif

static void *
ck_alloc(size_t size)
{
	return qpd__alloc(size);
}

static void
ck_dealloc(void *p, size_t size, bool defer)
{
	/* ck_hs is only read under the writer lock: nothing to defer. */
	(void)size;
	(void)defer;
	qpd__dealloc(p);
}

struct ck_malloc qpd__ck_malloc = {
	.malloc = ck_alloc,
	.realloc = NULL,
	.free = ck_dealloc,
};
