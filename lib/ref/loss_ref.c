/* Double-precision reference of the losses, straight from PyTorch's definitions:
 * cross_entropy = (1 - eps) * nll_loss(log_softmax(x)) + (eps / C) * smoothing term, each
 * reduced on its own as aten/src/ATen/native/LossNLL.cpp does, and the gradients by the
 * chain rule through log_softmax. See loss_ref.h. */
#include "ref/loss_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool ref_is_class(ct_loss_kind k)
{
    return k == CT_LOSS_CROSS_ENTROPY || k == CT_LOSS_NLL;
}

size_t ct_ref_loss_out_numel(const ct_loss_options *o, size_t ndim, const size_t *shape)
{
    if (o->reduction != CT_REDUCTION_NONE)
        return 1;
    size_t n = 1;
    for (size_t i = 0; i < ndim; i++)
        if (!(ref_is_class(o->kind) && i == 1))
            n *= shape[i];
    return n;
}

/* Index into a weight of shape wshape[0..wnd) broadcast (right-aligned) against the
 * input shape, for the input element whose coordinates are idx[0..ndim). */
static size_t ref_bcast_index(size_t ndim, const size_t *idx, size_t wnd, const size_t *wshape)
{
    size_t off = 0;
    for (size_t i = 0; i < wnd; i++) {
        size_t coord = wshape[i] == 1 ? 0 : idx[ndim - wnd + i];
        off = off * wshape[i] + coord;
    }
    return off;
}

/* ---- class losses ----------------------------------------------------------------- */

static int ref_class(const ct_loss_options *o, size_t ndim, const size_t *shape,
                     const double *x, const double *t, bool soft, const double *go, double *out,
                     double *grad)
{
    if (ndim < 2)
        return -1;
    const bool nll_kind = o->kind == CT_LOSS_NLL;
    if (soft && nll_kind)
        return -1;
    const size_t N = shape[0], C = shape[1];
    size_t S = 1;
    for (size_t i = 2; i < ndim; i++)
        S *= shape[i];
    if (o->weight && (o->weight_ndim != 1 || o->weight_shape[0] != C))
        return -1;
    const size_t P = N * S;
    const double eps = o->label_smoothing;
    double *logp = malloc(C * sizeof *logp);
    double *nll = calloc(P, sizeof *nll);    /* per position, weighted */
    double *smooth = calloc(P, sizeof *smooth);
    double *wt = calloc(P, sizeof *wt);      /* weight of the target, 0 if ignored */
    double *dlogp = malloc(C * sizeof *dlogp);
    if (!logp || !nll || !smooth || !wt || !dlogp) {
        free(logp), free(nll), free(smooth), free(wt), free(dlogp);
        return -1;
    }
#define X(n, c, s) x[((n) * C + (c)) * S + (s)]
#define T(n, c, s) t[((n) * C + (c)) * S + (s)]
#define W(c) (o->weight ? (double)o->weight[c] : 1.0)

    /* forward, per position */
    for (size_t n = 0; n < N; n++)
        for (size_t s = 0; s < S; s++) {
            const size_t p = n * S + s;
            if (nll_kind) {
                for (size_t c = 0; c < C; c++)
                    logp[c] = X(n, c, s);
            } else {
                double m = -INFINITY, sum = 0.0;
                for (size_t c = 0; c < C; c++)
                    m = fmax(m, X(n, c, s));
                for (size_t c = 0; c < C; c++)
                    sum += exp(X(n, c, s) - m);
                for (size_t c = 0; c < C; c++)
                    logp[c] = X(n, c, s) - m - log(sum);
            }
            if (soft) {
                for (size_t c = 0; c < C; c++) {
                    double q = T(n, c, s) * (1.0 - eps) + eps / (double)C;
                    nll[p] -= W(c) * q * logp[c];
                }
                continue;
            }
            if (t[p] == (double)o->ignore_index)
                continue;
            if (!(t[p] >= 0 && t[p] < (double)C && t[p] == floor(t[p])))
                goto bad;
            const size_t tc = (size_t)t[p];
            wt[p] = W(tc);
            nll[p] = -W(tc) * logp[tc];
            for (size_t c = 0; c < C; c++)
                smooth[p] -= W(c) * logp[c];
        }

    /* reductions: nll and smoothing terms separately, as PyTorch */
    double nll_sum = 0.0, smooth_sum = 0.0, wsum = 0.0;
    for (size_t p = 0; p < P; p++) {
        nll_sum += nll[p];
        smooth_sum += smooth[p];
        wsum += wt[p];
    }
    /* soft targets: the mean is over positions, whatever the weights */
    const double denom = soft ? (double)P : wsum;
    const double share = soft ? 0.0 : eps / (double)C, keep = soft ? 1.0 : 1.0 - eps;
    switch (o->reduction) {
    case CT_REDUCTION_NONE:
        for (size_t p = 0; p < P; p++)
            out[p] = keep * nll[p] + share * smooth[p];
        break;
    case CT_REDUCTION_SUM: out[0] = keep * nll_sum + share * smooth_sum; break;
    case CT_REDUCTION_MEAN: out[0] = keep * (nll_sum / denom) + share * (smooth_sum / denom); break;
    }

    /* gradient: d out / d logp, then through log_softmax: dx_j = dlogp_j - p_j sum dlogp */
    if (grad) {
        for (size_t n = 0; n < N; n++)
            for (size_t s = 0; s < S; s++) {
                const size_t p = n * S + s;
                double cp = go ? go[o->reduction == CT_REDUCTION_NONE ? p : 0] : 1.0;
                if (o->reduction == CT_REDUCTION_MEAN)
                    cp /= denom;
                for (size_t c = 0; c < C; c++)
                    dlogp[c] = 0.0;
                if (soft) {
                    for (size_t c = 0; c < C; c++)
                        dlogp[c] = -cp * W(c) * (T(n, c, s) * (1.0 - eps) + eps / (double)C);
                } else if (t[p] != (double)o->ignore_index) {
                    const size_t tc = (size_t)t[p];
                    dlogp[tc] = -cp * keep * W(tc);
                    if (share != 0.0)
                        for (size_t c = 0; c < C; c++)
                            dlogp[c] -= cp * share * W(c);
                }
                if (nll_kind) {
                    for (size_t c = 0; c < C; c++)
                        grad[((n * C) + c) * S + s] = dlogp[c];
                    continue;
                }
                double m = -INFINITY, sum = 0.0, dsum = 0.0;
                for (size_t c = 0; c < C; c++) {
                    m = fmax(m, X(n, c, s));
                    dsum += dlogp[c];
                }
                for (size_t c = 0; c < C; c++)
                    sum += exp(X(n, c, s) - m);
                for (size_t c = 0; c < C; c++)
                    grad[((n * C) + c) * S + s] = dlogp[c] - exp(X(n, c, s) - m) / sum * dsum;
            }
    }
#undef X
#undef T
#undef W
    free(logp), free(nll), free(smooth), free(wt), free(dlogp);
    return 0;
bad:
    free(logp), free(nll), free(smooth), free(wt), free(dlogp);
    return -1;
}

/* ---- element-wise losses ---------------------------------------------------------- */

/* Loss and d loss / dx of one element. */
static double ref_elem(const ct_loss_options *o, double x, double y, double w, double pw,
                       double *dx)
{
    const double d = x - y, ad = fabs(d);
    const double sgn = d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0;
    switch (o->kind) {
    case CT_LOSS_BCE_WITH_LOGITS: {
        /* (1 - y) x + lw * softplus(-x), lw = (pw - 1) y + 1, as PyTorch with
         * softplus(-x) = m + log(exp(-m) + exp(-x - m)), m = max(-x, 0) */
        const double m = fmax(-x, 0.0);
        const double lw = (pw - 1.0) * y + 1.0;
        const double sig = 1.0 / (1.0 + exp(-x));
        *dx = w * (lw * sig - pw * y);
        return w * ((1.0 - y) * x + lw * (m + log(exp(-m) + exp(-x - m))));
    }
    case CT_LOSS_MSE: *dx = 2.0 * d; return d * d;
    case CT_LOSS_L1: *dx = sgn; return ad;
    case CT_LOSS_SMOOTH_L1: {
        /* PyTorch's backward: d <= -beta ? -1 : d >= beta ? 1 : d / beta (so -1 at
         * d = 0 when beta = 0) */
        const double b = o->beta;
        *dx = d <= -b ? -1.0 : d >= b ? 1.0 : d / b;
        return ad < b ? 0.5 * d * d / b : ad - 0.5 * b;
    }
    case CT_LOSS_HUBER: {
        const double dl = o->delta;
        if (ad < dl) {
            *dx = d;
            return 0.5 * d * d;
        }
        *dx = dl * sgn;
        return dl * (ad - 0.5 * dl);
    }
    default: *dx = 0.0; return 0.0;
    }
}

static int ref_elementwise(const ct_loss_options *o, size_t ndim, const size_t *shape,
                           const double *x, const double *y, const double *go, double *out,
                           double *grad)
{
    size_t n = 1, idx[CT_MAX_DIMS] = {0};
    for (size_t i = 0; i < ndim; i++)
        n *= shape[i];
    if ((o->weight && o->weight_ndim > ndim) || (o->pos_weight && o->pos_weight_ndim > ndim))
        return -1;
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        /* coordinates of element i */
        size_t r = i;
        for (size_t k = ndim; k-- > 0;) {
            idx[k] = r % shape[k];
            r /= shape[k];
        }
        double w = 1.0, pw = 1.0, dx;
        if (o->weight)
            w = o->weight[ref_bcast_index(ndim, idx, o->weight_ndim, o->weight_shape)];
        if (o->pos_weight)
            pw = o->pos_weight[ref_bcast_index(ndim, idx, o->pos_weight_ndim,
                                               o->pos_weight_shape)];
        const double l = ref_elem(o, x[i], y[i], w, pw, &dx);
        if (o->reduction == CT_REDUCTION_NONE)
            out[i] = l;
        total += l;
        if (grad) {
            double c = go ? go[o->reduction == CT_REDUCTION_NONE ? i : 0] : 1.0;
            if (o->reduction == CT_REDUCTION_MEAN)
                c /= (double)n;
            grad[i] = c * dx;
        }
    }
    if (o->reduction == CT_REDUCTION_SUM)
        out[0] = total;
    if (o->reduction == CT_REDUCTION_MEAN)
        out[0] = total / (double)n;
    return 0;
}

int ct_ref_loss(const ct_loss_options *o, size_t ndim, const size_t *shape, const double *x,
                const double *t, bool soft, const double *go, double *out, double *grad)
{
    if (!o || !shape || !x || !t || !out || ndim < 1 || ndim > CT_MAX_DIMS)
        return -1;
    if (ref_is_class(o->kind))
        return ref_class(o, ndim, shape, x, t, soft, go, out, grad);
    return ref_elementwise(o, ndim, shape, x, t, go, out, grad);
}
