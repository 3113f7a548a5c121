/* semihost.c -- Arm semihosting for bare-metal Cortex-M, and dgc_harness.h on top of it. */
#include <stdint.h>

#include "dgc_harness.h"
#include "semihost.h"

enum {
    SYS_OPEN = 0x01, SYS_CLOSE = 0x02, SYS_WRITE0 = 0x04, SYS_WRITE = 0x05,
    SYS_READ = 0x06, SYS_GET_CMDLINE = 0x15, SYS_EXIT = 0x18, SYS_EXIT_EXTENDED = 0x20,
};
enum { MODE_RB = 1, MODE_WB = 5 };           /* fopen modes "rb" and "wb" */
#define ADP_Stopped_ApplicationExit 0x20026u

static int call(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static size_t length(const char *s)
{
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static int open_file(const char *dir, const char *name, int mode)
{
    char path[DGC_PATH_MAX];
    if (dgc_join(path, sizeof path, dir, name)) return -1;
    uintptr_t block[3] = {(uintptr_t)path, (uintptr_t)mode, length(path)};
    return call(SYS_OPEN, block);
}

/* SYS_READ and SYS_WRITE return the number of bytes NOT transferred. */
static int transfer(int op, int fd, const void *buf, size_t n)
{
    uintptr_t block[3] = {(uintptr_t)fd, (uintptr_t)buf, n};
    int left = call(op, block);
    uintptr_t close_block[1] = {(uintptr_t)fd};
    int closed = call(SYS_CLOSE, close_block);
    return (left == 0 && closed == 0) ? 0 : -1;
}

int dgc_load(const char *dir, const char *name, void *buf, size_t n)
{
    int fd = open_file(dir, name, MODE_RB);
    return fd < 0 ? -1 : transfer(SYS_READ, fd, buf, n);
}

int dgc_save(const char *dir, const char *name, const void *buf, size_t n)
{
    int fd = open_file(dir, name, MODE_WB);
    return fd < 0 ? -1 : transfer(SYS_WRITE, fd, buf, n);
}

void dgc_semihost_write0(const char *s)
{
    call(SYS_WRITE0, s);
}

void dgc_log(const char *msg)
{
    dgc_semihost_write0(msg);
    dgc_semihost_write0("\n");
}

void dgc_semihost_args(int *argc, char ***argv)
{
    static char line[DGC_PATH_MAX];
    static char *args[3];
    uintptr_t block[2] = {(uintptr_t)line, sizeof line - 1};
    *argc = 0;
    *argv = args;
    if (call(SYS_GET_CMDLINE, block) != 0) return;
    line[block[1]] = '\0';
    char *p = line;
    args[(*argc)++] = p;
    while (*p && *p != ' ') p++;
    if (*p) {
        *p = '\0';
        args[(*argc)++] = p + 1;
    }
    args[*argc] = 0;
}

void dgc_semihost_exit(int status)
{
    uintptr_t block[2] = {ADP_Stopped_ApplicationExit, (uintptr_t)status};
    call(SYS_EXIT_EXTENDED, block);
    /* A host without SYS_EXIT_EXTENDED: plain SYS_EXIT can only say success/failure. */
    call(SYS_EXIT, (const void *)(uintptr_t)(status == 0 ? ADP_Stopped_ApplicationExit : 0));
    for (;;) {
    }
}
