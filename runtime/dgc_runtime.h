/* dgc_runtime.h -- what a dgc-compiled model and the code that calls it share.
 *
 * Every model object exports one function, declared in its generated header:
 *     int <name>_run(const T *input0, ..., T *output0, ..., void *arena);
 * Tensors are dense and row-major; `arena` holds <NAME>_ARENA_SIZE bytes aligned to
 * <NAME>_ARENA_ALIGN (NULL when the size is 0). The function returns DGC_OK on success,
 * allocates nothing and keeps no state, so several models link into one program and
 * may share one arena when they run one after another. */
#ifndef DGC_RUNTIME_H
#define DGC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#define DGC_OK 0             /* what <name>_run returns on success */
#define DGC_ARENA_ALIGN 16u  /* minimum alignment of every arena */

#define DGC_ALIGNED(n) __attribute__((aligned(n)))

/* DGC_BIG marks a large zero-initialised buffer (arena, tensors). On the Cortex-M boards
 * it goes to section .bss.dgc_big, which the dgc linker scripts place in the board's
 * largest RAM and do NOT clear at reset (the contents are written before they are read).
 * Elsewhere it is ordinary .bss. */
#if defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'
#define DGC_BIG __attribute__((section(".bss.dgc_big"))) DGC_ALIGNED(DGC_ARENA_ALIGN)
#else
#define DGC_BIG DGC_ALIGNED(DGC_ARENA_ALIGN)
#endif

/* DGC_ARENA(kws_arena, KWS_ARENA_SIZE); declares a static arena (at least 1 byte). */
#define DGC_ARENA(var, size) static uint8_t var[(size) ? (size) : 1u] DGC_BIG

#endif /* DGC_RUNTIME_H */
