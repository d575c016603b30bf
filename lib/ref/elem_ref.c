/* lib/ref/elem_ref.c — double-precision references for linear, activations, softmax,
 * dropout and batch norm. See elem_ref.h. */
#include "ref/elem_ref.h"

#include <math.h>
#include <stdlib.h>

/* ---- linear ----------------------------------------------------------------------- */

void ct_ref_linear_forward(const float *x, const float *w, const float *b, bool relu,
                           size_t n, size_t in, size_t out, double *y)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t o = 0; o < out; o++) {
            double s = b ? (double)b[o] : 0.0;
            for (size_t k = 0; k < in; k++)
                s += (double)x[i * in + k] * (double)w[o * in + k];
            y[i * out + o] = (relu && s < 0.0) ? 0.0 : s;
        }
    }
}

void ct_ref_linear_backward(const float *x, const float *w, const float *dy, size_t n,
                            size_t in, size_t out, double *dx, double *dw, double *db)
{
    if (dx) {
        for (size_t i = 0; i < n; i++) {
            for (size_t k = 0; k < in; k++) {
                double s = 0.0;
                for (size_t o = 0; o < out; o++)
                    s += (double)dy[i * out + o] * (double)w[o * in + k];
                dx[i * in + k] = s;
            }
        }
    }
    if (dw) {
        for (size_t o = 0; o < out; o++) {
            for (size_t k = 0; k < in; k++) {
                double s = 0.0;
                for (size_t i = 0; i < n; i++)
                    s += (double)dy[i * out + o] * (double)x[i * in + k];
                dw[o * in + k] += s;
            }
        }
    }
    if (db) {
        for (size_t o = 0; o < out; o++) {
            double s = 0.0;
            for (size_t i = 0; i < n; i++)
                s += (double)dy[i * out + o];
            db[o] += s;
        }
    }
}

/* ---- activations ------------------------------------------------------------------ */

double ct_ref_act(int kind, double slope, double x)
{
    switch (kind) {
    case CT_REF_RELU:
        return x > 0.0 ? x : 0.0;
    case CT_REF_LEAKY_RELU:
        return x > 0.0 ? x : x * slope;
    case CT_REF_SIGMOID:
        return 1.0 / (1.0 + exp(-x));
    default:
        return tanh(x);
    }
}

double ct_ref_act_grad(int kind, double slope, double x)
{
    switch (kind) {
    case CT_REF_RELU:
        return x > 0.0 ? 1.0 : 0.0;
    case CT_REF_LEAKY_RELU:
        return x > 0.0 ? 1.0 : slope;
    case CT_REF_SIGMOID: {
        double s = 1.0 / (1.0 + exp(-x));
        return s * (1.0 - s);
    }
    default: {
        double t = tanh(x);
        return 1.0 - t * t;
    }
    }
}

void ct_ref_act_forward(int kind, double slope, const float *x, size_t n, double *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = ct_ref_act(kind, slope, (double)x[i]);
}

void ct_ref_act_backward(int kind, double slope, const float *x, const float *dy, size_t n,
                         double *dx)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = (double)dy[i] * ct_ref_act_grad(kind, slope, (double)x[i]);
}

void ct_ref_softmax(const float *x, size_t n, size_t f, bool log_out, double *y)
{
    for (size_t i = 0; i < n; i++) {
        const float *r = x + i * f;
        double m = -INFINITY;
        for (size_t j = 0; j < f; j++)
            m = fmax(m, (double)r[j]);
        double s = 0.0;
        for (size_t j = 0; j < f; j++)
            s += exp((double)r[j] - m);
        for (size_t j = 0; j < f; j++)
            y[i * f + j] = log_out ? (double)r[j] - m - log(s) : exp((double)r[j] - m) / s;
    }
}

/* ---- dropout ---------------------------------------------------------------------- */

void ct_ref_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

uint32_t ct_ref_dropout_threshold(float p)
{
    double t = floor((1.0 - (double)p) * 4294967296.0);
    if (t >= 4294967295.0)
        return 0xFFFFFFFFu;
    if (t <= 0.0)
        return 0u;
    return (uint32_t)t;
}

void ct_ref_dropout_mask(size_t n, float p, uint64_t seed, uint64_t counter,
                         unsigned char *keep)
{
    uint32_t thr = ct_ref_dropout_threshold(p);
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (size_t i = 0; i < n; i += 4) {
        uint64_t block = i / 4;
        uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)counter,
                           (uint32_t)(counter >> 32)};
        uint32_t r[4];
        ct_ref_philox4x32_10(ctr, key, r);
        for (size_t j = 0; j < 4 && i + j < n; j++)
            keep[i + j] = r[j] < thr;
    }
}

float ct_ref_dropout_scale(float p)
{
    return (float)(1.0 / (1.0 - (double)p));
}

/* ---- batch norm ------------------------------------------------------------------- */

static void bn_stats(const float *x, size_t n, size_t c, size_t hw, size_t ch, double *mean,
                     double *var)
{
    double m = (double)n * (double)hw, s = 0.0, ss = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < hw; j++)
            s += (double)x[(i * c + ch) * hw + j];
    double mu = s / m;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < hw; j++) {
            double d = (double)x[(i * c + ch) * hw + j] - mu;
            ss += d * d;
        }
    }
    *mean = mu;
    *var = ss / m; /* biased */
}

void ct_ref_batchnorm_forward(const float *x, const float *gamma, const float *beta, size_t n,
                              size_t c, size_t hw, double eps, double momentum, bool training,
                              double *running_mean, double *running_var, double *mean,
                              double *invstd, double *y)
{
    double m = (double)n * (double)hw;
    for (size_t ch = 0; ch < c; ch++) {
        double mu, var;
        if (training) {
            bn_stats(x, n, c, hw, ch, &mu, &var);
            if (running_mean)
                running_mean[ch] = (1.0 - momentum) * running_mean[ch] + momentum * mu;
            if (running_var) {
                double unbiased = m > 1.0 ? var * m / (m - 1.0) : NAN;
                running_var[ch] = (1.0 - momentum) * running_var[ch] + momentum * unbiased;
            }
        } else {
            mu = running_mean[ch];
            var = running_var[ch];
        }
        double is = 1.0 / sqrt(var + eps);
        if (mean)
            mean[ch] = mu;
        if (invstd)
            invstd[ch] = is;
        double g = gamma ? (double)gamma[ch] : 1.0, b = beta ? (double)beta[ch] : 0.0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < hw; j++) {
                size_t e = (i * c + ch) * hw + j;
                y[e] = ((double)x[e] - mu) * is * g + b;
            }
    }
}

void ct_ref_batchnorm_backward(const float *x, const float *gamma, const float *dy, size_t n,
                               size_t c, size_t hw, double eps, double *dx, double *dgamma,
                               double *dbeta)
{
    double m = (double)n * (double)hw;
    for (size_t ch = 0; ch < c; ch++) {
        double mu, var;
        bn_stats(x, n, c, hw, ch, &mu, &var);
        double is = 1.0 / sqrt(var + eps);
        double sdy = 0.0, sdyxh = 0.0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < hw; j++) {
                size_t e = (i * c + ch) * hw + j;
                sdy += (double)dy[e];
                sdyxh += (double)dy[e] * ((double)x[e] - mu) * is;
            }
        if (dbeta)
            dbeta[ch] += sdy;
        if (dgamma)
            dgamma[ch] += sdyxh;
        if (!dx)
            continue;
        double g = gamma ? (double)gamma[ch] : 1.0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < hw; j++) {
                size_t e = (i * c + ch) * hw + j;
                double xh = ((double)x[e] - mu) * is;
                dx[e] = g * is * ((double)dy[e] - sdy / m - xh * sdyxh / m);
            }
    }
}
