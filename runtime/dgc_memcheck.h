/* dgc_memcheck.h -- what the memory-safety harness (dgc_memcheck.c) knows of the model under
 * test. dgc.runtime.memcheck generates memcheck_model.c, which defines dgc_mc_the_model. */
#ifndef DGC_MEMCHECK_H
#define DGC_MEMCHECK_H

#include <stddef.h>

#define DGC_MC_MAX_IO 64

typedef struct {
    const char *name;                  /* the model's C prefix: inputs are <name>.input<i>.bin */
    int n_in, n_out;
    const size_t *in_bytes, *in_align; /* exact size and element alignment of every input */
    const size_t *out_bytes, *out_align;
    size_t arena_bytes, arena_align;
    /* calls <name>_run(in[0], ..., out[0], ..., arena) */
    int (*run)(void *const *in, void *const *out, void *arena);
} dgc_mc_model;

extern const dgc_mc_model dgc_mc_the_model;

#endif /* DGC_MEMCHECK_H */
