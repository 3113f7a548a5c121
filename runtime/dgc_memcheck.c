/* dgc_memcheck.c -- memory-safety harness for one dgc-compiled model (hosted Linux).
 *
 * Linked with the model's object and a generated description (memcheck.py renders
 * memcheck_model.c: sizes, alignments and a call of <name>_run).
 * Usage: prog DIR [THREADS=2] [RUNS=2] [GUARDS=1] (GUARDS=0 skips the two single guarded runs).
 * Inputs are read from DIR/<name>.input<i>.bin. The program runs the model
 *
 *   exact       on heap buffers of exactly the sizes the header states, arena and outputs
 *               left uninitialised: under valgrind memcheck every read outside them or of a
 *               byte nobody wrote is reported (outputs are written to files, so undefined
 *               output bytes reach a system call); AddressSanitizer checks this program
 *   guard-tail  each buffer in its own mapping, ending flush against an inaccessible guard
 *               page; inputs read-only; the bytes before it in its page are canaries
 *   guard-head  the same with each buffer starting right after a guard page
 *   threads     THREADS threads at once, each RUNS times, each with its own guarded arena,
 *               inputs and outputs (re-entrancy)
 *
 * Arena and outputs are pre-filled with a different byte pattern in every run, and every
 * run's outputs must equal the exact run's bit for bit: a result that depends on memory
 * the model did not write first shows up as a difference. A touched guard page stops the
 * program with the buffer and offset; a damaged canary names buffer and offset too.
 * Outputs of the exact run and of every thread's last run go to DIR/<pass>.output<i>.bin
 * for comparison with a reference. Exit status: 0 clean, 1 a check failed, 2 a file could
 * not be read or written, 3 memory fault, 4 the model returned non-zero. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dgc_harness.h"
#include "dgc_memcheck.h"

#define EXIT_CHECK 1
#define EXIT_FAULT 3
#define EXIT_STATUS 4

static const uint8_t FILLS[] = {0x00, 0xFF, 0x7F, 0xA5}; /* 0x7F..: NaN as float */

static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dgc memcheck: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

/* ---- guarded buffers ------------------------------------------------------------------ */

typedef struct {
    const char *what; /* "input", "output", "arena" */
    int index;
    uint8_t *map;     /* guard page, data pages, guard page */
    size_t map_len;
    uint8_t *data;    /* the data pages */
    size_t data_len;
    uint8_t *p;       /* the buffer handed to the model */
    size_t n;
    uint8_t canary;
} region;

#define MAX_REGIONS 1024
static region *g_regions[MAX_REGIONS]; /* for the fault handler: which buffer was hit */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t g_page;

static void fault_handler(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    uint8_t *a = (uint8_t *)si->si_addr;
    char msg[256];
    int len = snprintf(msg, sizeof msg, "dgc memcheck: memory fault (signal %d) at %p, outside every "
                       "buffer the model was given\n", sig, si->si_addr);
    for (int i = 0; i < MAX_REGIONS; i++) {
        region *r = g_regions[i];
        if (r && a >= r->map && a < r->map + r->map_len) {
            len = snprintf(msg, sizeof msg, "dgc memcheck: memory fault: %s %d (%zu bytes) accessed at "
                           "offset %ld from its start%s\n", r->what, r->index, r->n, (long)(a - r->p),
                           a >= r->p && a < r->p + r->n ? " (a write to a read-only input)" : "");
            break;
        }
    }
    if (len > 0 && write(2, msg, (size_t)len) < 0) {}
    _exit(EXIT_FAULT);
}

static void install_fault_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fault_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

/* n bytes aligned to align, flush against the trailing guard page (tail) or right after
 * the leading one; the rest of the data pages hold the canary byte, the buffer `fill`. */
static region *guarded(const char *what, int index, size_t n, size_t align, int tail, uint8_t fill,
                       uint8_t canary)
{
    region *r = calloc(1, sizeof *r);
    if (!r) die(EXIT_CHECK, "out of memory for %s %d", what, index);
    size_t span = (n + align - 1) / align * align;
    r->what = what;
    r->index = index;
    r->n = n;
    r->canary = canary;
    r->data_len = (span + g_page - 1) / g_page * g_page;
    if (r->data_len == 0) r->data_len = g_page;
    r->map_len = r->data_len + 2 * g_page;
    void *m = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) die(EXIT_CHECK, "mmap failed for %s %d", what, index);
    r->map = m;
    r->data = r->map + g_page;
    r->p = tail ? r->data + r->data_len - span : r->data;
    memset(r->data, canary, r->data_len);
    memset(r->p, fill, n);
    if (mprotect(r->map, g_page, PROT_NONE) || mprotect(r->data + r->data_len, g_page, PROT_NONE))
        die(EXIT_CHECK, "mprotect failed for %s %d", what, index);
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < MAX_REGIONS; i++)
        if (!g_regions[i]) { g_regions[i] = r; break; }
    pthread_mutex_unlock(&g_lock);
    return r;
}

static void check_canaries(const region *r, const char *pass)
{
    for (size_t i = 0; i < r->data_len; i++) {
        const uint8_t *b = r->data + i;
        if ((b < r->p || b >= r->p + r->n) && *b != r->canary) {
            fprintf(stderr, "dgc memcheck: %s: the model wrote outside %s %d (%zu bytes): canary at "
                    "offset %ld changed\n", pass, r->what, r->index, r->n, (long)(b - r->p));
            exit(EXIT_CHECK);
        }
    }
}

static void release(region *r)
{
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < MAX_REGIONS; i++)
        if (g_regions[i] == r) g_regions[i] = NULL;
    pthread_mutex_unlock(&g_lock);
    munmap(r->map, r->map_len);
    free(r);
}

/* ---- runs ----------------------------------------------------------------------------- */

static const dgc_mc_model *M;
static void *g_inputs[DGC_MC_MAX_IO];  /* exact-size copies of the input files */
static uint8_t *g_expect[DGC_MC_MAX_IO]; /* outputs of the exact run */

static void check_status(int rc, const char *pass)
{
    if (rc != 0) {
        fprintf(stderr, "dgc memcheck: %s: %s_run returned %d\n", pass, M->name, rc);
        exit(EXIT_STATUS);
    }
}

static void save_outputs(const char *dir, const char *pass, void *const *outs)
{
    char name[256];
    for (int i = 0; i < M->n_out; i++) {
        snprintf(name, sizeof name, "%s.output%d.bin", pass, i);
        if (dgc_save(dir, name, outs[i], M->out_bytes[i])) {
            fprintf(stderr, "dgc memcheck: cannot write %s/%s\n", dir, name);
            exit(DGC_EXIT_IO);
        }
    }
}

static void compare_outputs(void *const *outs, const char *pass)
{
    for (int i = 0; i < M->n_out; i++) {
        const uint8_t *got = outs[i];
        for (size_t k = 0; k < M->out_bytes[i]; k++)
            if (got[k] != g_expect[i][k]) {
                fprintf(stderr, "dgc memcheck: %s: output %d differs from the exact run at byte %zu: the "
                        "result depends on memory the model did not write first (uninitialised arena or "
                        "output, or bytes outside its buffers), or the code is not deterministic\n", pass, i, k);
                exit(EXIT_CHECK);
            }
    }
}

/* The exact run: heap buffers of exactly the stated sizes, arena and outputs uninitialised. */
static void run_exact(const char *dir)
{
    void *outs[DGC_MC_MAX_IO];
    void *arena = NULL;
    for (int i = 0; i < M->n_out; i++)
        if (!(outs[i] = malloc(M->out_bytes[i] ? M->out_bytes[i] : 1)))
            die(EXIT_CHECK, "out of memory for %s %d", "output", i);
    size_t align = M->arena_align < sizeof(void *) ? sizeof(void *) : M->arena_align;
    if (M->arena_bytes && posix_memalign(&arena, align, M->arena_bytes))
        die(EXIT_CHECK, "out of memory for the arena");
    check_status(M->run(g_inputs, outs, arena), "exact");
    save_outputs(dir, "exact", outs);
    for (int i = 0; i < M->n_out; i++)
        g_expect[i] = outs[i];
    free(arena);
}

/* One run on guarded buffers; its outputs are saved when dir is not NULL. */
static void run_guarded(const char *pass, int tail, uint8_t fill, const char *dir)
{
    region *in[DGC_MC_MAX_IO], *out[DGC_MC_MAX_IO], *arena = NULL;
    void *ip[DGC_MC_MAX_IO], *op[DGC_MC_MAX_IO];
    uint8_t canary = (uint8_t)(0xC5 ^ fill);
    for (int i = 0; i < M->n_in; i++) {
        in[i] = guarded("input", i, M->in_bytes[i], M->in_align[i], tail, 0, canary);
        memcpy(in[i]->p, g_inputs[i], M->in_bytes[i]);
        if (mprotect(in[i]->data, in[i]->data_len, PROT_READ))
            die(EXIT_CHECK, "mprotect failed for %s %d", "input", i);
        ip[i] = in[i]->p;
    }
    for (int i = 0; i < M->n_out; i++) {
        out[i] = guarded("output", i, M->out_bytes[i], M->out_align[i], tail, fill, canary);
        op[i] = out[i]->p;
    }
    if (M->arena_bytes)
        arena = guarded("arena", 0, M->arena_bytes, M->arena_align, tail, fill, canary);
    check_status(M->run(ip, op, arena ? arena->p : NULL), pass);
    for (int i = 0; i < M->n_out; i++)
        check_canaries(out[i], pass);
    if (arena)
        check_canaries(arena, pass);
    compare_outputs(op, pass);
    if (dir)
        save_outputs(dir, pass, op);
    for (int i = 0; i < M->n_in; i++)
        release(in[i]);
    for (int i = 0; i < M->n_out; i++)
        release(out[i]);
    if (arena)
        release(arena);
}

typedef struct {
    int id, runs;
    const char *dir;
    pthread_barrier_t *start;
} thread_arg;

static void *thread_main(void *p)
{
    thread_arg *a = p;
    char pass[32];
    snprintf(pass, sizeof pass, "thread%d", a->id);
    pthread_barrier_wait(a->start);
    for (int r = 0; r < a->runs; r++)
        run_guarded(pass, (a->id + r) % 2, FILLS[(a->id + r) % 4], r == a->runs - 1 ? a->dir : NULL);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    int runs = argc > 3 ? atoi(argv[3]) : 2;
    int guards = argc > 4 ? atoi(argv[4]) : 1;
    M = &dgc_mc_the_model;
    g_page = (size_t)sysconf(_SC_PAGESIZE);
    install_fault_handler();

    char name[256];
    for (int i = 0; i < M->n_in; i++) {
        snprintf(name, sizeof name, "%s.input%d.bin", M->name, i);
        if (!(g_inputs[i] = malloc(M->in_bytes[i] ? M->in_bytes[i] : 1)) ||
            dgc_load(dir, name, g_inputs[i], M->in_bytes[i])) {
            fprintf(stderr, "dgc memcheck: cannot read %s/%s\n", dir, name);
            return DGC_EXIT_IO;
        }
    }
    run_exact(dir);
    if (guards) {
        run_guarded("guard-tail", 1, FILLS[1], NULL);
        run_guarded("guard-head", 0, FILLS[2], NULL);
    }

    pthread_t tid[64];
    thread_arg args[64];
    pthread_barrier_t start;
    if (threads > 64) threads = 64;
    if (threads > 0) {
        pthread_barrier_init(&start, NULL, (unsigned)threads);
        for (int t = 0; t < threads; t++) {
            args[t] = (thread_arg){t, runs, dir, &start};
            if (pthread_create(&tid[t], NULL, thread_main, &args[t]))
                die(EXIT_CHECK, "cannot start %s %d", "thread", t);
        }
        for (int t = 0; t < threads; t++)
            pthread_join(tid[t], NULL);
        pthread_barrier_destroy(&start);
    }
    for (int i = 0; i < M->n_in; i++)
        free(g_inputs[i]);
    for (int i = 0; i < M->n_out; i++)
        free(g_expect[i]);
    fprintf(stderr, "dgc memcheck: %s clean: exact%s, %d threads x %d runs\n",
            M->name, guards ? ", guard-tail, guard-head" : "", threads, runs);
    return 0;
}
