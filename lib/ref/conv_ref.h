/* lib/ref/conv_ref.h — plain-C double-precision references for conv2d and pooling (the ops
 * of lib/nn/conv2d.c and lib/nn/pool.c).
 *
 * Written for clarity, not speed: a loop per index, straight from the definitions, so the
 * tests have an independent answer. Everything is double (inputs too), so the references
 * can themselves be checked against central finite differences in double precision.
 * Layouts are dense NCHW, as in lib/nn/ops.h. Gradient functions follow the device
 * contract: dx is OVERWRITTEN, parameter gradients (dw, db) are ACCUMULATED (+=).
 * No OpenCL here.
 */
#ifndef CLTRAIN_REF_CONV_REF_H
#define CLTRAIN_REF_CONV_REF_H

#include <stdbool.h>
#include <stddef.h>

/* ---- conv2d ----------------------------------------------------------------------- */

/* The geometry of one convolution. x: (n, c, h, w)  w: (k, c/groups, r, s)  b: (k)
 * y: (n, k, p, q) with p, q from ct_ref_conv_out_size. */
typedef struct ct_ref_conv {
    size_t n, c, h, w;
    size_t k, r, s;
    size_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
} ct_ref_conv;

/* (in + 2*pad - dil*(k-1) - 1)/stride + 1, or 0 when the kernel does not fit. */
size_t ct_ref_conv_out_size(size_t in, size_t k, size_t stride, size_t pad, size_t dil);

/* y = conv(x, w) + b, then max(y, 0) when relu. b may be NULL. */
void ct_ref_conv2d_forward(const ct_ref_conv *g, const double *x, const double *w, const double *b,
                           bool relu, double *y);
/* dy: (n, k, p, q). dx (like x) overwritten, or NULL; dw (like w) +=, or NULL;
 * db (k) +=, or NULL. */
void ct_ref_conv2d_backward(const ct_ref_conv *g, const double *x, const double *w,
                            const double *dy, double *dx, double *dw, double *db);

/* ---- pooling ---------------------------------------------------------------------- */

/* x: (n, c, h, w) -> y: (n, c, p, q) with p, q from ct_ref_pool_out_size. */
typedef struct ct_ref_pool {
    size_t n, c, h, w;
    size_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    bool ceil_mode;
    bool count_include_pad;
} ct_ref_pool;

/* PyTorch's pooling_output_shape: floor or ceil of (in + 2*pad - k)/stride, plus one; in
 * ceil mode the last window must start inside the input or the left padding, else it is
 * dropped. 0 when the window does not fit. */
size_t ct_ref_pool_out_size(size_t in, size_t k, size_t stride, size_t pad, bool ceil_mode);

/* Max over each window, padding counting as -inf; NaN wins, the last one (as PyTorch). */
void ct_ref_maxpool2d_forward(const ct_ref_pool *g, const double *x, double *y);
/* dx overwritten: each dy goes to the first maximum of its window in scan order (row by
 * row); times (x > 0) when relu_in. */
void ct_ref_maxpool2d_backward(const ct_ref_pool *g, const double *x, const double *dy,
                               bool relu_in, double *dx);
/* Mean over each window; the divisor is PyTorch's: with count_include_pad the window
 * clipped to the padded input, else the window clipped to the input itself. */
void ct_ref_avgpool2d_forward(const ct_ref_pool *g, const double *x, double *y);
void ct_ref_avgpool2d_backward(const ct_ref_pool *g, const double *dy, double *dx);

/* Global average pooling: x (n, c, h, w) -> y (n, c); backward spreads dy / (h*w). */
void ct_ref_gap_forward(size_t n, size_t c, size_t h, size_t w, const double *x, double *y);
void ct_ref_gap_backward(size_t n, size_t c, size_t h, size_t w, const double *dy, double *dx);

#endif
