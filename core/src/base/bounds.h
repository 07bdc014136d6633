/*
** bounds.h: every limit and default of the engine, said once.
**
** Owns: the numbers.  Code and messages refer to these names (a message
** that quotes a bound formats it from here), so a changed bound changes
** its checks and its messages together.
** Invariants: plain constants only, no declarations: the policy VM is a
** shared object of its own and includes this header as well.  The public
** defaults (mmfs_options_init, a search limit of 0) are documented in
** memmapfs.h; the binding and the CLI reach them through the public API.
*/
#ifndef MMFS_BOUNDS_H
#define MMFS_BOUNDS_H

#include <stddef.h>
#include <stdint.h>

#define MMFS__MAX_VALUE ((size_t)1 << 30) /* one payload field: 1 GiB */
/* One commit, hooks' commands included: one value at its largest and
** 64 MiB more.  Past it the commit fails LIMIT (a hook adding commands
** must not turn one call into gigabytes under the writer lock). */
#define MMFS__MAX_COMMIT (MMFS__MAX_VALUE + ((size_t)64 << 20))
#define MMFS__DEFAULT_LIMIT 20 /* results of a search given a limit of 0 */

/* Segment files: the bounds of mmfs_options.segment_size (a larger
** segment in a header is not grown to), and the default. */
#define MMFS__SEGMENT_MIN ((uint64_t)1 << 16)     /* 64 KiB */
#define MMFS__SEGMENT_MAX ((uint64_t)1 << 38)     /* 256 GiB */
#define MMFS__SEGMENT_DEFAULT ((uint64_t)64 << 20) /* 64 MiB */

/* mmfs_options.checkpoint_bytes by default: log written since the last
** checkpoint before the background checkpointer writes one (ckpt.c). */
#define MMFS__CKPT_BYTES_DEFAULT ((uint64_t)64 << 20) /* 64 MiB */

/* A memory: its route name (the policy VM checks the same bound) and its
** tags. */
#define MMFS__MAX_ROUTE 256      /* bytes of a route name */
#define MMFS__MAX_TAGS 65536     /* tags of one memory */
#define MMFS__MAX_TAG_LEN 65536  /* bytes of one tag: 64 KiB */

/* compress = "zstd" (engine/ztext.c): memory texts of these sizes are
** compressed (shorter ones gain nothing past the frame's header; longer
** ones would need buffers that size on every reading thread).  The
** store's dictionary is trained from the live texts once this many
** memories or bytes of raw text are there, from at most SAMPLE bytes of
** them, into at most DICT bytes; LEVEL is zstd's compression level. */
#define MMFS__ZTEXT_MIN 64
#define MMFS__ZTEXT_MAX ((size_t)16 << 20)
#define MMFS__ZDICT_TEXTS 4000
#define MMFS__ZDICT_BYTES ((uint64_t)1 << 20)
#define MMFS__ZDICT_SAMPLE ((size_t)4 << 20)
#define MMFS__ZDICT_SIZE ((size_t)64 << 10)
#define MMFS__ZTEXT_LEVEL 3

/* The policy VM's limits (mmfs__policy_limits), filled by the host. */
#define MMFS__DEFAULT_HOOK_BUDGET 1000000u /* instructions per hook call (option 0) */
#define MMFS__BATCH_BUDGET_FACTOR 100      /* a batch's run: this many hook budgets */
#define MMFS__POLICY_MEM_LIMIT ((size_t)64 << 20) /* bytes the VM may allocate */

#endif
