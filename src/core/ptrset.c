/*
 * Sets of live objects (scoreboards, dynamic lists), so that a slow path
 * handed a stale or foreign pointer reports -ENOENT instead of freeing it
 * twice.  A ck_hs in direct mode keyed by address, used under q->lock.
 */
#include <errno.h>

#include "internal.h"

static unsigned long
ptr_hash(const void *key, unsigned long seed)
{
	uint64_t x = (uint64_t)(uintptr_t)key ^ seed;

	/* Addresses share low zero bits and high prefixes: mix them. */
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (unsigned long)x;
}

int
qpd__ptrset_init(ck_hs_t *hs, unsigned long seed)
{
	return ck_hs_init(hs, CK_HS_MODE_DIRECT | CK_HS_MODE_SPMC, ptr_hash,
			  NULL, &qpd__ck_malloc, 8, seed) ? 0 : -ENOMEM;
}

bool
qpd__ptrset_add(ck_hs_t *hs, const void *p)
{
	return ck_hs_put(hs, CK_HS_HASH(hs, ptr_hash, p), p);
}

bool
qpd__ptrset_has(ck_hs_t *hs, const void *p)
{
	return ck_hs_get(hs, CK_HS_HASH(hs, ptr_hash, p), p) != NULL;
}

bool
qpd__ptrset_del(ck_hs_t *hs, const void *p)
{
	return ck_hs_remove(hs, CK_HS_HASH(hs, ptr_hash, p), p) != NULL;
}
