/* kernels.h -- plain float reference kernels for the Cortex-M benchmark (bench/cortexm.py).
 *
 * Straightforward loops as a competent engineer writes them without intrinsics or hand
 * tiling (the loop orders of TensorFlow Lite Micro's reference kernels): tensors are dense,
 * row-major, NCHW; outputs never alias inputs. The C file that bench/cref/emit.py generates
 * for an ONNX model includes this header and calls the kernels in graph order with
 * `static const` parameter structs: every kernel is inlined at its call, so GCC knows each
 * layer's shapes at compile time -- as dgc does -- and specializes the loops.
 * Built with -O3 -ffp-contract=off: no fused multiply-adds, the arithmetic as written. */
#ifndef CREF_KERNELS_H
#define CREF_KERNELS_H

#include <math.h>

#define REF_KERNEL static inline __attribute__((always_inline))

struct ref_conv {  /* 2-D convolution, NCHW input, OIHW weights (I = c_in / group) */
    int n, c_in, h, w, c_out, oh, ow;
    int kh, kw, sh, sw, pad_t, pad_l, dh, dw, group;
};

struct ref_pool {  /* 2-D max/average pooling over NCHW (n*c planes) */
    int planes, h, w, oh, ow, kh, kw, sh, sw, pad_t, pad_l, pad_b, pad_r;
    int count_include_pad;
};

struct ref_gemm {  /* y[m,n] = alpha * sum_k A[m,k] B[k,n] + beta * C[m,n]; strides in elements */
    int m, n, k;
    int a_sm, a_sk, b_sk, b_sn, c_sm, c_sn;
    float alpha, beta;
};

struct ref_bcast {  /* elementwise binary op; shapes padded to rank 4, stride 0 = broadcast */
    int flat;       /* non-zero: both inputs have the output's shape, n elements */
    int n;
    int shape[4], a_stride[4], b_stride[4];
};

/* [*lo, *hi): the taps k of an n-tap, d-dilated window starting at input index `start`
 * that fall inside [0, size) -- so the inner loops need no bounds checks. */
REF_KERNEL void taps(int start, int n, int d, int size, int *lo, int *hi)
{
    int a = 0, b = n;
    while (a < b && start + a * d < 0)
        a++;
    while (b > a && start + (b - 1) * d >= size)
        b--;
    *lo = a, *hi = b;
}

/* Output-stationary, as TensorFlow Lite Micro's reference Conv: for each output, the taps
 * inside the image, and for each tap the input channels of the group (innermost, so 1x1
 * convolutions run a long loop too). */
REF_KERNEL void ref_conv2d(const float *restrict x, const float *restrict w,
                           const float *restrict bias, float *restrict y,
                           const struct ref_conv *p)
{
    const int h = p->h, wd = p->w, oh = p->oh, ow = p->ow, kh = p->kh, kw = p->kw;
    const int cin_g = p->c_in / p->group, cout_g = p->c_out / p->group;
    const int plane = h * wd, ksize = kh * kw;
    for (int n = 0; n < p->n; n++) {
        for (int oc = 0; oc < p->c_out; oc++) {
            const float *xg = x + (n * p->c_in + oc / cout_g * cin_g) * plane;
            const float *wo = w + oc * cin_g * ksize;
            float *yo = y + (n * p->c_out + oc) * oh * ow;
            const float b = bias ? bias[oc] : 0.0f;
            for (int oy = 0; oy < oh; oy++) {
                const int iy0 = oy * p->sh - p->pad_t;
                int ky0, ky1;
                taps(iy0, kh, p->dh, h, &ky0, &ky1);
                for (int ox = 0; ox < ow; ox++) {
                    const int ix0 = ox * p->sw - p->pad_l;
                    int kx0, kx1;
                    taps(ix0, kw, p->dw, wd, &kx0, &kx1);
                    float acc = b;
                    for (int ky = ky0; ky < ky1; ky++) {
                        for (int kx = kx0; kx < kx1; kx++) {
                            const float *xp = xg + (iy0 + ky * p->dh) * wd + ix0 + kx * p->dw;
                            const float *wp = wo + ky * kw + kx;
                            for (int ic = 0; ic < cin_g; ic++)
                                acc += xp[ic * plane] * wp[ic * ksize];
                        }
                    }
                    yo[oy * ow + ox] = acc;
                }
            }
        }
    }
}

/* One input channel per group (group == c_in): the taps of the window are the inner loops. */
REF_KERNEL void ref_depthwise_conv2d(const float *restrict x, const float *restrict w,
                                     const float *restrict bias, float *restrict y,
                                     const struct ref_conv *p)
{
    const int h = p->h, wd = p->w, oh = p->oh, ow = p->ow, kh = p->kh, kw = p->kw;
    const int dh = p->dh, dw = p->dw, mult = p->c_out / p->c_in;
    for (int n = 0; n < p->n; n++) {
        for (int oc = 0; oc < p->c_out; oc++) {
            const float *xc = x + (n * p->c_in + oc / mult) * h * wd;
            const float *wo = w + oc * kh * kw;
            float *yo = y + (n * p->c_out + oc) * oh * ow;
            const float b = bias ? bias[oc] : 0.0f;
            for (int oy = 0; oy < oh; oy++) {
                const int iy0 = oy * p->sh - p->pad_t;
                int ky0, ky1;
                taps(iy0, kh, dh, h, &ky0, &ky1);
                for (int ox = 0; ox < ow; ox++) {
                    const int ix0 = ox * p->sw - p->pad_l;
                    int kx0, kx1;
                    taps(ix0, kw, dw, wd, &kx0, &kx1);
                    float acc = b;
                    for (int ky = ky0; ky < ky1; ky++) {
                        const float *xr = xc + (iy0 + ky * dh) * wd + ix0;
                        const float *wr = wo + ky * kw;
                        for (int kx = kx0; kx < kx1; kx++)
                            acc += xr[kx * dw] * wr[kx];
                    }
                    yo[oy * ow + ox] = acc;
                }
            }
        }
    }
}

REF_KERNEL void ref_gemm(const float *restrict a, const float *restrict b,
                         const float *restrict c, float *restrict y, const struct ref_gemm *p)
{
    for (int i = 0; i < p->m; i++) {
        for (int j = 0; j < p->n; j++) {
            float acc = 0.0f;
            for (int k = 0; k < p->k; k++)
                acc += a[i * p->a_sm + k * p->a_sk] * b[k * p->b_sk + j * p->b_sn];
            acc *= p->alpha;
            if (c)
                acc += p->beta * c[i * p->c_sm + j * p->c_sn];
            y[i * p->n + j] = acc;
        }
    }
}

REF_KERNEL void ref_matmul(const float *restrict a, const float *restrict b, float *restrict y,
                           int batch, int m, int k, int n, int a_batch, int b_batch)
{
    for (int t = 0; t < batch; t++) {
        const float *at = a + t * a_batch, *bt = b + t * b_batch;
        float *yt = y + t * m * n;
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                float acc = 0.0f;
                for (int q = 0; q < k; q++)
                    acc += at[i * k + q] * bt[q * n + j];
                yt[i * n + j] = acc;
            }
        }
    }
}

/* Window [y0, y1) x [x0, x1) of output (oy, ox), clipped to the padded input when `padded`,
 * else to the input itself. */
REF_KERNEL void window(const struct ref_pool *p, int oy, int ox, int padded, int *y0, int *y1,
                       int *x0, int *x1)
{
    int ys = oy * p->sh - p->pad_t, xs = ox * p->sw - p->pad_l;
    int ye = ys + p->kh, xe = xs + p->kw;
    int ylim = padded ? p->h + p->pad_b : p->h, xlim = padded ? p->w + p->pad_r : p->w;
    if (ye > ylim) ye = ylim;
    if (xe > xlim) xe = xlim;
    if (!padded) {
        if (ys < 0) ys = 0;
        if (xs < 0) xs = 0;
    }
    *y0 = ys, *y1 = ye, *x0 = xs, *x1 = xe;
}

REF_KERNEL void ref_maxpool2d(const float *restrict x, float *restrict y,
                              const struct ref_pool *p)
{
    for (int c = 0; c < p->planes; c++) {
        const float *xc = x + c * p->h * p->w;
        float *yc = y + c * p->oh * p->ow;
        for (int oy = 0; oy < p->oh; oy++) {
            for (int ox = 0; ox < p->ow; ox++) {
                int y0, y1, x0, x1;
                window(p, oy, ox, 0, &y0, &y1, &x0, &x1);
                float m = -INFINITY;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++)
                        if (xc[iy * p->w + ix] > m)
                            m = xc[iy * p->w + ix];
                yc[oy * p->ow + ox] = m;
            }
        }
    }
}

REF_KERNEL void ref_avgpool2d(const float *restrict x, float *restrict y,
                              const struct ref_pool *p)
{
    for (int c = 0; c < p->planes; c++) {
        const float *xc = x + c * p->h * p->w;
        float *yc = y + c * p->oh * p->ow;
        for (int oy = 0; oy < p->oh; oy++) {
            for (int ox = 0; ox < p->ow; ox++) {
                int y0, y1, x0, x1, py0, py1, px0, px1;
                window(p, oy, ox, 0, &y0, &y1, &x0, &x1);
                window(p, oy, ox, 1, &py0, &py1, &px0, &px1);
                float acc = 0.0f;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++)
                        acc += xc[iy * p->w + ix];
                int count = p->count_include_pad ? (py1 - py0) * (px1 - px0)
                                                 : (y1 - y0) * (x1 - x0);
                yc[oy * p->ow + ox] = acc / (float)count;
            }
        }
    }
}

REF_KERNEL void ref_global_avgpool(const float *restrict x, float *restrict y, int planes,
                                   int size)
{
    for (int c = 0; c < planes; c++) {
        float acc = 0.0f;
        for (int i = 0; i < size; i++)
            acc += x[c * size + i];
        y[c] = acc / (float)size;
    }
}

REF_KERNEL void ref_batchnorm(const float *restrict x, const float *restrict scale,
                              const float *restrict bias, const float *restrict mean,
                              const float *restrict var, float eps, float *restrict y, int n,
                              int c, int size)
{
    for (int b = 0; b < n; b++) {
        for (int ch = 0; ch < c; ch++) {
            const float a = scale[ch] / sqrtf(var[ch] + eps);
            const float s = bias[ch] - mean[ch] * a;
            const float *xc = x + (b * c + ch) * size;
            float *yc = y + (b * c + ch) * size;
            for (int i = 0; i < size; i++)
                yc[i] = xc[i] * a + s;
        }
    }
}

REF_KERNEL void ref_softmax(const float *restrict x, float *restrict y, int outer, int len,
                            int inner)
{
    for (int o = 0; o < outer; o++) {
        for (int i = 0; i < inner; i++) {
            const float *xs = x + o * len * inner + i;
            float *ys = y + o * len * inner + i;
            float m = xs[0];
            for (int j = 1; j < len; j++)
                if (xs[j * inner] > m)
                    m = xs[j * inner];
            float sum = 0.0f;
            for (int j = 0; j < len; j++) {
                ys[j * inner] = expf(xs[j * inner] - m);
                sum += ys[j * inner];
            }
            for (int j = 0; j < len; j++)
                ys[j * inner] /= sum;
        }
    }
}

#define BINARY(name, OP)                                                                    \
    REF_KERNEL void name(const float *restrict a, const float *restrict b,                  \
                         float *restrict y, const struct ref_bcast *p)                      \
    {                                                                                       \
        if (p->flat) {                                                                      \
            for (int i = 0; i < p->n; i++)                                                  \
                y[i] = a[i] OP b[i];                                                        \
            return;                                                                         \
        }                                                                                   \
        int i = 0;                                                                          \
        for (int d0 = 0; d0 < p->shape[0]; d0++)                                            \
            for (int d1 = 0; d1 < p->shape[1]; d1++)                                        \
                for (int d2 = 0; d2 < p->shape[2]; d2++)                                    \
                    for (int d3 = 0; d3 < p->shape[3]; d3++) {                              \
                        int ia = d0 * p->a_stride[0] + d1 * p->a_stride[1]                  \
                                 + d2 * p->a_stride[2] + d3 * p->a_stride[3];               \
                        int ib = d0 * p->b_stride[0] + d1 * p->b_stride[1]                  \
                                 + d2 * p->b_stride[2] + d3 * p->b_stride[3];               \
                        y[i++] = a[ia] OP b[ib];                                            \
                    }                                                                       \
    }

BINARY(ref_add, +)
BINARY(ref_sub, -)
BINARY(ref_mul, *)
BINARY(ref_div, /)

REF_KERNEL void ref_relu(const float *restrict x, float *restrict y, int n)
{
    for (int i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

REF_KERNEL void ref_clip(const float *restrict x, float *restrict y, int n, float lo, float hi)
{
    for (int i = 0; i < n; i++)
        y[i] = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]);
}

REF_KERNEL void ref_sigmoid(const float *restrict x, float *restrict y, int n)
{
    for (int i = 0; i < n; i++)
        y[i] = 1.0f / (1.0f + expf(-x[i]));
}

REF_KERNEL void ref_copy(const float *restrict x, float *restrict y, int n)
{
    for (int i = 0; i < n; i++)
        y[i] = x[i];
}

#endif /* CREF_KERNELS_H */
