/* lib/ref/conv_ref.c — conv2d straight from its definition, in double precision.
 *
 *   y[n,k,p,q] = b[k] + sum_{c<C/G, r<R, s<S} w[k,c,r,s] * x[n, g*C/G + c, ih, iw]
 *   ih = p*stride_h - pad_h + r*dil_h,  iw = q*stride_w - pad_w + s*dil_w,  g = k / (K/G)
 *
 * with x taken as 0 outside the image. The backward pass walks the same terms: each one
 * adds dy*w to dx and dy*x to dw.
 */
#include "ref/conv_ref.h"

#include <string.h>

size_t ct_ref_conv_out_size(size_t in, size_t k, size_t stride, size_t pad, size_t dil)
{
    if (k == 0 || stride == 0 || dil == 0)
        return 0;
    size_t span = dil * (k - 1) + 1;
    if (in + 2 * pad < span)
        return 0;
    return (in + 2 * pad - span) / stride + 1;
}

/* Visits every term of the sum whose input lies inside the image. Forward when y is
 * given (y += w*x); otherwise backward (dx += dy*w, dw += dy*x, each when non-NULL). */
static void conv_terms(const ct_ref_conv *g, const double *x, const double *w, double *y,
                       const double *dy, double *dx, double *dw)
{
    size_t P = ct_ref_conv_out_size(g->h, g->r, g->stride_h, g->pad_h, g->dil_h);
    size_t Q = ct_ref_conv_out_size(g->w, g->s, g->stride_w, g->pad_w, g->dil_w);
    size_t Cg = g->c / g->groups, Kg = g->k / g->groups;
    for (size_t n = 0; n < g->n; n++)
        for (size_t k = 0; k < g->k; k++)
            for (size_t p = 0; p < P; p++)
                for (size_t q = 0; q < Q; q++) {
                    size_t yi = ((n * g->k + k) * P + p) * Q + q;
                    for (size_t c = 0; c < Cg; c++)
                        for (size_t r = 0; r < g->r; r++)
                            for (size_t s = 0; s < g->s; s++) {
                                long ih = (long)(p * g->stride_h + r * g->dil_h) - (long)g->pad_h;
                                long iw = (long)(q * g->stride_w + s * g->dil_w) - (long)g->pad_w;
                                if (ih < 0 || iw < 0 || ih >= (long)g->h || iw >= (long)g->w)
                                    continue;
                                size_t ci = (k / Kg) * Cg + c;
                                size_t xi =
                                    ((n * g->c + ci) * g->h + (size_t)ih) * g->w + (size_t)iw;
                                size_t wi = ((k * Cg + c) * g->r + r) * g->s + s;
                                if (y)
                                    y[yi] += w[wi] * x[xi];
                                if (dx)
                                    dx[xi] += dy[yi] * w[wi];
                                if (dw)
                                    dw[wi] += dy[yi] * x[xi];
                            }
                }
}

void ct_ref_conv2d_forward(const ct_ref_conv *g, const double *x, const double *w, const double *b,
                           bool relu, double *y)
{
    size_t P = ct_ref_conv_out_size(g->h, g->r, g->stride_h, g->pad_h, g->dil_h);
    size_t Q = ct_ref_conv_out_size(g->w, g->s, g->stride_w, g->pad_w, g->dil_w);
    size_t ny = g->n * g->k * P * Q;
    for (size_t i = 0; i < ny; i++)
        y[i] = b ? b[(i / (P * Q)) % g->k] : 0.0;
    conv_terms(g, x, w, y, NULL, NULL, NULL);
    if (relu)
        for (size_t i = 0; i < ny; i++)
            y[i] = y[i] < 0.0 ? 0.0 : y[i]; /* NaN stays NaN, as torch.relu */
}

void ct_ref_conv2d_backward(const ct_ref_conv *g, const double *x, const double *w,
                            const double *dy, double *dx, double *dw, double *db)
{
    size_t P = ct_ref_conv_out_size(g->h, g->r, g->stride_h, g->pad_h, g->dil_h);
    size_t Q = ct_ref_conv_out_size(g->w, g->s, g->stride_w, g->pad_w, g->dil_w);
    if (dx)
        memset(dx, 0, g->n * g->c * g->h * g->w * sizeof *dx);
    if (dx || dw)
        conv_terms(g, x, w, NULL, dy, dx, dw);
    if (db)
        for (size_t n = 0; n < g->n; n++)
            for (size_t k = 0; k < g->k; k++)
                for (size_t i = 0; i < P * Q; i++)
                    db[k] += dy[(n * g->k + k) * P * Q + i];
}
