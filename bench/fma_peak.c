/* This core's floating-point peak, measured: NACC independent chains of W-byte float
 * multiply-adds, enough to cover the FMA latency on every pipe, nothing else in the loop.
 * Built by bench/x86.py with -O2 -march=native -ffp-contract=fast, so each line of the loop
 * body is one vfmadd on a register; returns the rate in FLOP/s (2 per lane per FMA). */
#include <time.h>

typedef float vec __attribute__((vector_size(W)));

double dgc_fma_peak(long iters)
{
    vec acc[NACC], a, b;
    for (int i = 0; i < W / 4; i++) {
        a[i] = 0.999f;
        b[i] = 0.001f;
    }
    for (int j = 0; j < NACC; j++)
        for (int i = 0; i < W / 4; i++)
            acc[j][i] = (float)j;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < iters; k++) {
#pragma GCC unroll 16
        for (int j = 0; j < NACC; j++)
            acc[j] = acc[j] * a + b;
        __asm__ volatile("" : "+x"(a)); /* keeps the chains from being folded */
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    float sink = 0.0f;
    for (int j = 0; j < NACC; j++)
        for (int i = 0; i < W / 4; i++)
            sink += acc[j][i];
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    return sink == -1.0f ? 0.0 : 2.0 * (double)iters * NACC * (W / 4) / s;
}
