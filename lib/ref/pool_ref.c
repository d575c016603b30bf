/* lib/ref/pool_ref.c — max, average and global average pooling, in double precision,
 * following PyTorch's CPU kernels rule by rule (output size, window clipping, divisor,
 * tie-breaking), written as plain loops.
 */
#include "ref/conv_ref.h"

#include <math.h>
#include <string.h>

size_t ct_ref_pool_out_size(size_t in, size_t k, size_t stride, size_t pad, bool ceil_mode)
{
    if (k == 0 || stride == 0)
        return 0;
    long num = (long)in + 2 * (long)pad - (long)k + (ceil_mode ? (long)stride - 1 : 0);
    if (num < 0)
        return 0;
    long out = num / (long)stride + 1;
    /* the last window must start inside the input or the left padding */
    if (ceil_mode && (out - 1) * (long)stride >= (long)in + (long)pad)
        out--;
    return out > 0 ? (size_t)out : 0;
}

/* Window of output (p, q) clipped to the input: rows [*h0, *h1), columns [*w0, *w1). */
static void pool_window(const ct_ref_pool *g, size_t p, size_t q, long *h0, long *h1, long *w0,
                        long *w1)
{
    long hs = (long)(p * g->stride_h) - (long)g->pad_h;
    long ws = (long)(q * g->stride_w) - (long)g->pad_w;
    long he = hs + (long)g->kernel_h, we = ws + (long)g->kernel_w;
    *h0 = hs < 0 ? 0 : hs;
    *w0 = ws < 0 ? 0 : ws;
    *h1 = he > (long)g->h ? (long)g->h : he;
    *w1 = we > (long)g->w ? (long)g->w : we;
}

/* Index (into the plane) of the first maximum of window (p, q) in scan order: a value
 * replaces the current one when strictly greater, or when it is NaN (PyTorch's rule, so
 * the last NaN of a window wins). */
static size_t max_index(const ct_ref_pool *g, const double *plane, size_t p, size_t q)
{
    long h0, h1, w0, w1;
    pool_window(g, p, q, &h0, &h1, &w0, &w1);
    size_t best = (size_t)h0 * g->w + (size_t)w0;
    double m = -INFINITY;
    for (long ih = h0; ih < h1; ih++)
        for (long iw = w0; iw < w1; iw++) {
            size_t i = (size_t)ih * g->w + (size_t)iw;
            if (plane[i] > m || isnan(plane[i])) {
                m = plane[i];
                best = i;
            }
        }
    return best;
}

/* PyTorch's divisor for window (p, q). */
static double avg_divisor(const ct_ref_pool *g, size_t p, size_t q)
{
    long hs = (long)(p * g->stride_h) - (long)g->pad_h;
    long ws = (long)(q * g->stride_w) - (long)g->pad_w;
    long he = hs + (long)g->kernel_h, we = ws + (long)g->kernel_w;
    if (g->count_include_pad) {
        long hmax = (long)(g->h + g->pad_h), wmax = (long)(g->w + g->pad_w);
        he = he > hmax ? hmax : he;
        we = we > wmax ? wmax : we;
        return (double)((he - hs) * (we - ws));
    }
    long h0, h1, w0, w1;
    pool_window(g, p, q, &h0, &h1, &w0, &w1);
    return (double)((h1 - h0) * (w1 - w0));
}

void ct_ref_maxpool2d_forward(const ct_ref_pool *g, const double *x, double *y)
{
    size_t P = ct_ref_pool_out_size(g->h, g->kernel_h, g->stride_h, g->pad_h, g->ceil_mode);
    size_t Q = ct_ref_pool_out_size(g->w, g->kernel_w, g->stride_w, g->pad_w, g->ceil_mode);
    for (size_t nc = 0; nc < g->n * g->c; nc++) {
        const double *plane = x + nc * g->h * g->w;
        for (size_t p = 0; p < P; p++)
            for (size_t q = 0; q < Q; q++) {
                long h0, h1, w0, w1;
                pool_window(g, p, q, &h0, &h1, &w0, &w1);
                /* an empty window (impossible with pad <= kernel/2) would give -inf */
                y[(nc * P + p) * Q + q] =
                    h0 < h1 && w0 < w1 ? plane[max_index(g, plane, p, q)] : -INFINITY;
            }
    }
}

void ct_ref_maxpool2d_backward(const ct_ref_pool *g, const double *x, const double *dy,
                               bool relu_in, double *dx)
{
    size_t P = ct_ref_pool_out_size(g->h, g->kernel_h, g->stride_h, g->pad_h, g->ceil_mode);
    size_t Q = ct_ref_pool_out_size(g->w, g->kernel_w, g->stride_w, g->pad_w, g->ceil_mode);
    size_t hw = g->h * g->w;
    memset(dx, 0, g->n * g->c * hw * sizeof *dx);
    for (size_t nc = 0; nc < g->n * g->c; nc++)
        for (size_t p = 0; p < P; p++)
            for (size_t q = 0; q < Q; q++)
                dx[nc * hw + max_index(g, x + nc * hw, p, q)] += dy[(nc * P + p) * Q + q];
    if (relu_in)
        for (size_t i = 0; i < g->n * g->c * hw; i++)
            if (x[i] <= 0.0) /* a NaN passes, as torch's ReLU backward */
                dx[i] = 0.0;
}

void ct_ref_avgpool2d_forward(const ct_ref_pool *g, const double *x, double *y)
{
    size_t P = ct_ref_pool_out_size(g->h, g->kernel_h, g->stride_h, g->pad_h, g->ceil_mode);
    size_t Q = ct_ref_pool_out_size(g->w, g->kernel_w, g->stride_w, g->pad_w, g->ceil_mode);
    for (size_t nc = 0; nc < g->n * g->c; nc++)
        for (size_t p = 0; p < P; p++)
            for (size_t q = 0; q < Q; q++) {
                long h0, h1, w0, w1;
                pool_window(g, p, q, &h0, &h1, &w0, &w1);
                double sum = 0.0;
                for (long ih = h0; ih < h1; ih++)
                    for (long iw = w0; iw < w1; iw++)
                        sum += x[nc * g->h * g->w + (size_t)ih * g->w + (size_t)iw];
                y[(nc * P + p) * Q + q] = sum / avg_divisor(g, p, q);
            }
}

void ct_ref_avgpool2d_backward(const ct_ref_pool *g, const double *dy, double *dx)
{
    size_t P = ct_ref_pool_out_size(g->h, g->kernel_h, g->stride_h, g->pad_h, g->ceil_mode);
    size_t Q = ct_ref_pool_out_size(g->w, g->kernel_w, g->stride_w, g->pad_w, g->ceil_mode);
    memset(dx, 0, g->n * g->c * g->h * g->w * sizeof *dx);
    for (size_t nc = 0; nc < g->n * g->c; nc++)
        for (size_t p = 0; p < P; p++)
            for (size_t q = 0; q < Q; q++) {
                long h0, h1, w0, w1;
                pool_window(g, p, q, &h0, &h1, &w0, &w1);
                double d = dy[(nc * P + p) * Q + q] / avg_divisor(g, p, q);
                for (long ih = h0; ih < h1; ih++)
                    for (long iw = w0; iw < w1; iw++)
                        dx[nc * g->h * g->w + (size_t)ih * g->w + (size_t)iw] += d;
            }
}

void ct_ref_gap_forward(size_t n, size_t c, size_t h, size_t w, const double *x, double *y)
{
    for (size_t i = 0; i < n * c; i++) {
        double sum = 0.0;
        for (size_t j = 0; j < h * w; j++)
            sum += x[i * h * w + j];
        y[i] = sum / (double)(h * w);
    }
}

void ct_ref_gap_backward(size_t n, size_t c, size_t h, size_t w, const double *dy, double *dx)
{
    for (size_t i = 0; i < n * c; i++)
        for (size_t j = 0; j < h * w; j++)
            dx[i * h * w + j] = dy[i] / (double)(h * w);
}
