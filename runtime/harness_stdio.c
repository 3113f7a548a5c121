/* harness_stdio.c -- dgc_harness.h for hosted C (Linux under qemu-user). */
#include <stdio.h>

#include "dgc_harness.h"

int dgc_load(const char *dir, const char *name, void *buf, size_t n)
{
    char path[DGC_PATH_MAX];
    if (dgc_join(path, sizeof path, dir, name)) return -1;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    return got == n ? 0 : -1;
}

int dgc_save(const char *dir, const char *name, const void *buf, size_t n)
{
    char path[DGC_PATH_MAX];
    if (dgc_join(path, sizeof path, dir, name)) return -1;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t put = fwrite(buf, 1, n, f);
    return (fclose(f) == 0 && put == n) ? 0 : -1;
}

void dgc_log(const char *msg)
{
    fprintf(stderr, "%s\n", msg);
}
