/* dgc_harness.h -- file I/O for the generated test harness (harness.c).
 *
 * The harness reads each input tensor from `<dir>/<file>` and writes each output the same
 * way; dir is argv[1]. Two implementations: harness_stdio.c (Linux, qemu-user) and
 * semihost.c (bare-metal Cortex-M, files on the host through semihosting). */
#ifndef DGC_HARNESS_H
#define DGC_HARNESS_H

#include <stddef.h>

#define DGC_EXIT_IO 2     /* a tensor file was missing, short or unwritable */
#define DGC_EXIT_FAULT 3  /* the CPU took a fault (bare metal) */
#define DGC_PATH_MAX 1024

/* Reads exactly n bytes of dir/name into buf; 0 on success. */
int dgc_load(const char *dir, const char *name, void *buf, size_t n);
/* Writes n bytes of buf to dir/name (created or truncated); 0 on success. */
int dgc_save(const char *dir, const char *name, const void *buf, size_t n);
/* Prints one line on the runner's stderr. */
void dgc_log(const char *msg);

/* dir + "/" + name into out (cap bytes); 0 on success, -1 when too long. */
static inline int dgc_join(char *out, size_t cap, const char *dir, const char *name)
{
    size_t i = 0;
    for (; *dir; dir++)
        if (i + 1 < cap) out[i++] = *dir; else return -1;
    if (i + 1 < cap) out[i++] = '/'; else return -1;
    for (; *name; name++)
        if (i + 1 < cap) out[i++] = *name; else return -1;
    out[i] = '\0';
    return 0;
}

#endif /* DGC_HARNESS_H */
