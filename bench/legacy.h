/*
 * legacy.h - a model of QEMU 9.0's plugin-core design, for comparison.
 *
 * legacy reproduces how QEMU 9.0 organises plugin callbacks (one recursive
 * mutex, GHashTables, liburcu RCU lists, per-vCPU event masks updated by
 * work items, stop-the-world sections, GArray scoreboards that are
 * reallocated when vCPUs are added) behind qpd's names, with a `legacy_`
 * prefix, so that the benchmarks can run qpd and this model side by side
 * and a differential test can use it as an oracle.  It uses qpd's event
 * enum, callback types and dynamic-list enums from the qpd headers and
 * calls no libqpd function.  bench/legacy.c explains what is modelled and
 * where the model departs from QEMU.
 *
 * Threads: a vCPU's dispatch functions run on the thread that drives the
 * vCPU, inside a slice (legacy_vcpu_enter .. legacy_vcpu_leave), which
 * holds an RCU read-side section and keeps stop-the-world sections out.
 * Long slices call legacy_vcpu_safepoint() so that queued work (mask
 * updates, uninstall, flush) and stop-the-world sections can make progress.
 */
#ifndef QPD_BENCH_LEGACY_H
#define QPD_BENCH_LEGACY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>
#include <qpd/dispatch.h> /* types and enums only */

#ifdef __cplusplus
extern "C" {
#endif

struct legacy;

struct legacy_opts {
	/* vCPU indices are 0 .. max_vcpus - 1; 0 means QPD_DEFAULT_MAX_VCPUS. */
	unsigned max_vcpus;
	/*
	 * Every flush discards all dynamic lists; this hook runs right after,
	 * still inside the stop-the-world section, so the embedder can build
	 * the lists its vCPUs execute again (QEMU translates blocks anew).
	 */
	void (*on_flush)(void *opaque);
	void *opaque;
};

/* Scoreboards start with room for this many vCPUs; the room doubles. */
#define LEGACY_SCOREBOARD_INITIAL 16u

struct legacy_stats {
	uint64_t n_registrations;   /* callbacks added or replaced */
	uint64_t n_replacements;    /* of which replaced in place */
	uint64_t n_unregistrations; /* callbacks removed */
	uint64_t n_deferred_frees;  /* removed entries handed to call_rcu */
	uint64_t n_done_calls;      /* uninstalls and resets completed */
	uint64_t n_plugins;         /* plugins known (incl. uninstalling) */
	uint64_t n_vcpus_online;    /* vCPUs between init and exit */
	uint64_t n_vcpus;           /* legacy_num_vcpus() */
	uint64_t n_errors;          /* calls that returned an error */
	uint64_t n_work_queued;     /* work items queued to vCPUs */
	uint64_t n_mask_updates;    /* mask copies applied by vCPUs */
	uint64_t n_stop_the_world;  /* exclusive sections */
	uint64_t n_growths;         /* scoreboard reallocations */
	uint64_t n_flushes;         /* times every dynamic list was discarded */
	uint64_t stall_max_ns;      /* longest exclusive section */
	uint64_t stall_total_ns;    /* all exclusive sections together */
	uint64_t scoreboard_alloc;  /* vCPU slots every scoreboard has */
};

/* Creates an instance (opts NULL = defaults); NULL with errno on failure. */
struct legacy *legacy_new(const struct legacy_opts *opts);

/*
 * Destroys an instance after running the work still queued to its vCPUs
 * (so pending uninstalls call `done`); no vCPU may be inside a slice and
 * no other thread may use l.
 */
void legacy_free(struct legacy *l);

/* Adds a plugin; *out gets its id (unique, non-zero, counting from 1). */
int legacy_plugin_add(struct legacy *l, qpd_plugin_id *out);

/*
 * Uninstalls a plugin as QEMU does: registrations are ignored from now on
 * (-ESHUTDOWN), and a stop-the-world section flushes, removes and frees its
 * callbacks and calls done(id, arg).  Called inside a slice, that work is
 * queued to the caller's vCPU and runs at its next safepoint or leave;
 * elsewhere it runs before the call returns.  -ENOENT, -EALREADY.
 */
int legacy_plugin_uninstall(struct legacy *l, qpd_plugin_id id,
			    qpd_done_fn done, void *arg);

/* Like uninstall but keeps the plugin; -EALREADY while a reset is queued. */
int legacy_plugin_reset(struct legacy *l, qpd_plugin_id id, qpd_done_fn done,
			void *arg);

/*
 * Sets (fn != NULL) or removes (fn == NULL) the plugin's callback for ev.
 * A new callback goes to the head of the event's list; an existing one has
 * fn and udata overwritten in place.  -ENOENT, -EINVAL, -ESHUTDOWN.
 */
int legacy_register_cb(struct legacy *l, qpd_plugin_id id, enum qpd_event ev,
		       void *fn, void *udata);

/*
 * Brings vCPU `vcpu` online and runs the VCPU_INIT callbacks; may stop the
 * world to grow the scoreboards.  -EINVAL past max_vcpus, -EEXIST if
 * online, -EBUSY when the calling thread is inside a slice.
 */
int legacy_vcpu_init(struct legacy *l, unsigned vcpu);

/* Runs the VCPU_EXIT callbacks, then takes the vCPU offline. -ENOENT, -EBUSY. */
int legacy_vcpu_exit(struct legacy *l, unsigned vcpu);

/* Runs VCPU_IDLE / VCPU_RESUME callbacks; ignored for indices >= num_vcpus. */
void legacy_vcpu_idle(struct legacy *l, unsigned vcpu);
void legacy_vcpu_resume(struct legacy *l, unsigned vcpu);

/*
 * Starts a slice: runs the vCPU's queued work, waits while a stop-the-world
 * section is pending, then enters an RCU read-side section.  False (and
 * nothing done) if the vCPU is offline or the thread is already in a slice.
 */
bool legacy_vcpu_enter(struct legacy *l, unsigned vcpu);

/* Ends the slice, then runs the vCPU's queued work. */
void legacy_vcpu_leave(struct legacy *l, unsigned vcpu);

/*
 * Inside a slice: when work is queued to the vCPU or a stop-the-world
 * section waits for it, leaves and re-enters the slice; otherwise costs
 * one load.
 */
void legacy_vcpu_safepoint(struct legacy *l, unsigned vcpu);

/* Highest vCPU index ever initialised, plus one. */
unsigned legacy_num_vcpus(struct legacy *l);

/*
 * Calls cb(id, vcpu) for every online vCPU, in hash-table order, with the
 * plugin mutex held.  -ENOENT for an unknown plugin, -EINVAL for a NULL cb.
 */
int legacy_vcpu_for_each(struct legacy *l, qpd_plugin_id id,
			 void (*cb)(qpd_plugin_id id, unsigned vcpu));

/* Dispatch, on the vCPU's thread inside a slice, as in qpd/dispatch.h. */
void legacy_tb_trans(struct legacy *l, unsigned vcpu, void *tb);
void legacy_syscall(struct legacy *l, unsigned vcpu, int64_t num,
		    const uint64_t args[8]);
void legacy_syscall_ret(struct legacy *l, unsigned vcpu, int64_t num,
			int64_t ret);
bool legacy_syscall_filter(struct legacy *l, unsigned vcpu, int64_t num,
			   const uint64_t args[8], uint64_t *sysret);
void legacy_discon(struct legacy *l, unsigned vcpu, enum qpd_discon_type type,
		   uint64_t from, uint64_t to);

/*
 * Stops the world, discards every dynamic list, runs the FLUSH callbacks
 * and the on_flush hook.  Inside a slice it is queued to the caller's vCPU.
 */
void legacy_flush(struct legacy *l);

/* Runs the ATEXIT callbacks, at most once per instance; not in a slice. */
void legacy_atexit(struct legacy *l);

/*
 * linux-user exit: stops the world, removes every callback but ATEXIT,
 * flushes, then runs the ATEXIT callbacks unless they already ran.
 * -EBUSY inside a slice.
 */
int legacy_user_exit(struct legacy *l);

/* --------------------------------------------------------------------
 * Scoreboards: one GArray per scoreboard, legacy's alloc size elements of
 * elem_size bytes, zeroed; reallocated (moved) when a vCPU past the alloc
 * size is initialised, so addresses are valid only until then.
 */
struct legacy_scoreboard {
	GArray *data;
	size_t elem_size;
	struct legacy *l;
};

typedef struct {
	struct legacy_scoreboard *score;
	size_t offset;
} legacy_u64;

/* NULL with errno EINVAL (size 0 or > QPD_SCOREBOARD_MAX_ELEM). */
struct legacy_scoreboard *legacy_scoreboard_new(struct legacy *l,
						size_t elem_size);

/* -ENOENT if sb is not a live scoreboard of l, -EINVAL for NULL. */
int legacy_scoreboard_free(struct legacy *l, struct legacy_scoreboard *sb);

/* Address of vcpu's element, valid until the next growth; NULL past it. */
void *legacy_scoreboard_find(struct legacy_scoreboard *sb, unsigned vcpu);

/*
 * The inline ADD_U64 of translated code: the address is recomputed from
 * the scoreboard's current array each time, then a plain +=.  vcpu must be
 * initialised and the call made inside its slice.
 */
static inline void
legacy_inline_add_u64(legacy_u64 e, unsigned vcpu, uint64_t imm)
{
	GArray *a = e.score->data;
	uint64_t *p = (uint64_t *)(void *)(a->data + e.offset +
					   (size_t)vcpu * e.score->elem_size);

	*p += imm;
}

/* Counter of vcpu (0 past the alloc size), and its setter (ignored there). */
uint64_t legacy_u64_get(legacy_u64 e, unsigned vcpu);
void legacy_u64_set(legacy_u64 e, unsigned vcpu, uint64_t v);

/* Sums the counter over vCPU indices below legacy_num_vcpus(). */
uint64_t legacy_u64_sum(legacy_u64 e);

/* --------------------------------------------------------------------
 * Dynamic lists: a GArray of entries per block or instruction.  As in
 * QEMU, a list is complete before vCPUs execute it (appends must not race
 * with execution), and every flush frees all lists.
 */
struct legacy_dyn;

/* Creates an empty list, freed by the next flush; NULL with errno EINVAL. */
struct legacy_dyn *legacy_dyn_new(struct legacy *l);

/* Appends fn(vcpu, udata).  -EINVAL (NULL list or fn). */
int legacy_dyn_add_cb(struct legacy_dyn *list, qpd_dyn_cb_t fn, void *udata);

/*
 * Appends an inline op on entry's counter (ADD_U64 adds imm, STORE_U64
 * stores it).  -EINVAL for a bad op or a counter that is not an aligned
 * u64 inside the element.
 */
int legacy_dyn_add_inline(struct legacy_dyn *list, enum qpd_inline_op op,
			  legacy_u64 entry, uint64_t imm);

/*
 * Appends fn(vcpu, udata) run when `counter cond imm` holds (unsigned);
 * ALWAYS adds a plain callback and NEVER adds nothing, as in QEMU.
 */
int legacy_dyn_add_cond_cb(struct legacy_dyn *list, qpd_dyn_cb_t fn,
			   void *udata, enum qpd_cond cond, legacy_u64 entry,
			   uint64_t imm);
/* Appends a memory callback for accesses whose rw intersects rw. */
int legacy_dyn_add_mem_cb(struct legacy_dyn *list, qpd_mem_cb_t fn,
			  enum qpd_mem_rw rw, void *udata);

/* Appends a memory inline op for accesses whose rw intersects rw. */
int legacy_dyn_add_mem_inline(struct legacy_dyn *list, enum qpd_mem_rw rw,
			      enum qpd_inline_op op, legacy_u64 entry,
			      uint64_t imm);

/* Runs the callback, inline and conditional entries in order. */
void legacy_dyn_exec(const struct legacy_dyn *list, unsigned vcpu);

/*
 * Runs the memory entries in order, stopping at the first whose rw does
 * not intersect the access's (other kinds of entry never match), as QEMU
 * 9.0 does.
 */
void legacy_dyn_exec_mem(const struct legacy_dyn *list, unsigned vcpu,
			 uint64_t vaddr, uint32_t meminfo, enum qpd_mem_rw rw);

/* false: legacy_dyn_exec_mem skips a mismatch and runs every match. */
void legacy_set_mem_break(struct legacy *l, bool stop_at_mismatch);

/* Fills *st with a snapshot of the instance's counters. */
int legacy_stats_get(struct legacy *l, struct legacy_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* QPD_BENCH_LEGACY_H */
