/* tests/ops/test_model.c — the sequential model on the device against a host reference.
 *
 * The reference is a plain double-precision interpreter of the same layer list written
 * here with torch.nn semantics and no fusion (conv and pooling loops from lib/ref, the
 * rest inline); its parameter layout is computed independently (PyTorch's
 * model.parameters() order) and compared with ct_model_param_info. Gradients are
 * checked against central finite differences of that interpreter in double
 * (h = 1e-6, error ~1e-9), for L = sum(dy * model(x)) with a fixed random dy, so no
 * backward code is shared with the device. Models are chosen to cover every fusion path
 * (conv+relu, relu before maxpool, linear+relu followed by another layer, relu after
 * batch norm, flatten as a view and as the first layer, a fused relu as the last layer),
 * batch norm 2d/1d, dropout, strides, dilation, groups and every activation.
 *
 * Tolerances: the device computes in float32 through sums of at most a few hundred
 * terms here, so outputs carry ~1e-7..1e-6 relative error (measured on PoCL: worst
 * |diff| 1e-7 on outputs, 7e-7 on gradients of size ~2); batch norm divides by a batch
 * standard deviation and can amplify that by ~10. atol 1e-5 + rtol 1e-4 (outputs) and
 * atol 1e-5 + rtol 2e-4 (gradients) keep a margin of >= 10 over that, yet fail on any
 * wrong mask, routing or missing term (errors >= 1e-3).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/conv_ref.h"
#include "ref/elem_ref.h"
#include "testutil.h"

#define OUT_ATOL  1e-5
#define OUT_RTOL  1e-4
#define GRAD_ATOL 1e-5
#define GRAD_RTOL 2e-4

/* ---- the host reference ------------------------------------------------------------ */

typedef struct ref_model {
    ct_layer_desc *l;
    size_t nl;
    size_t in_ndim, in_shape[3];
    size_t shape[64][3], ndim[64]; /* output shape of layer i (per sample) */
    size_t woff[64], boff[64];     /* parameter offsets; SIZE_MAX when absent */
    size_t nparams;
    size_t bufoff[64]; /* running_mean offset (running_var follows at +C, count at +2C) */
    size_t nbuffers;
} ref_model;

static void ref_build(ref_model *r, const char *spec, size_t in_ndim, const size_t *in)
{
    memset(r, 0, sizeof *r);
    TU_OK(ct_spec_parse(spec, &r->l, &r->nl));
    cr_assert(r->nl <= 64);
    r->in_ndim = in_ndim;
    memcpy(r->in_shape, in, in_ndim * sizeof *in);
    size_t nd = in_ndim, sh[3] = {0};
    memcpy(sh, in, in_ndim * sizeof *in);
    for (size_t i = 0; i < r->nl; i++) {
        ct_layer_desc *d = &r->l[i];
        r->woff[i] = r->boff[i] = r->bufoff[i] = SIZE_MAX;
        switch (d->kind) {
        case CT_LAYER_CONV2D: {
            size_t c = sh[0];
            r->woff[i] = r->nparams;
            r->nparams += d->out * c / d->groups * d->kernel_h * d->kernel_w;
            if (d->bias)
                r->boff[i] = r->nparams, r->nparams += d->out;
            sh[0] = d->out;
            sh[1] = ct_ref_conv_out_size(sh[1], d->kernel_h, d->stride_h, d->pad_h, d->dil_h);
            sh[2] = ct_ref_conv_out_size(sh[2], d->kernel_w, d->stride_w, d->pad_w, d->dil_w);
            break;
        }
        case CT_LAYER_MAXPOOL2D:
        case CT_LAYER_AVGPOOL2D:
            if (!d->stride_h)
                d->stride_h = d->kernel_h, d->stride_w = d->kernel_w;
            sh[1] = ct_ref_pool_out_size(sh[1], d->kernel_h, d->stride_h, d->pad_h, d->ceil_mode);
            sh[2] = ct_ref_pool_out_size(sh[2], d->kernel_w, d->stride_w, d->pad_w, d->ceil_mode);
            break;
        case CT_LAYER_GAP:
            nd = 1;
            break;
        case CT_LAYER_FLATTEN:
            sh[0] = nd == 3 ? sh[0] * sh[1] * sh[2] : sh[0];
            nd = 1;
            break;
        case CT_LAYER_LINEAR:
            r->woff[i] = r->nparams;
            r->nparams += d->out * sh[0];
            if (d->bias)
                r->boff[i] = r->nparams, r->nparams += d->out;
            sh[0] = d->out;
            break;
        case CT_LAYER_BATCHNORM:
            if (d->affine) {
                r->woff[i] = r->nparams;
                r->boff[i] = r->nparams + sh[0];
                r->nparams += 2 * sh[0];
            }
            r->bufoff[i] = r->nbuffers;
            r->nbuffers += 2 * sh[0] + 1;
            break;
        default:
            break;
        }
        r->ndim[i] = nd;
        memcpy(r->shape[i], sh, sizeof sh);
    }
}

static size_t numel_of(size_t nd, const size_t *sh)
{
    size_t n = 1;
    for (size_t i = 0; i < nd; i++)
        n *= sh[i];
    return n;
}

/* Forward of n samples in double. p: parameters, buf: running stats (read in eval,
 * updated in training when not NULL). Dropout layer k (k-th in order) uses counter
 * counter0 + k. Returns a malloc'd output. */
static double *ref_forward(const ref_model *r, size_t n, const double *x, const double *p,
                           double *buf, bool training, uint64_t seed, uint64_t counter0)
{
    size_t nd = r->in_ndim, sh[3] = {0};
    memcpy(sh, r->in_shape, nd * sizeof *sh);
    size_t cur_n = n * numel_of(nd, sh);
    double *cur = malloc(cur_n * sizeof *cur);
    cr_assert(cur);
    memcpy(cur, x, cur_n * sizeof *cur);
    uint64_t counter = counter0;
    for (size_t i = 0; i < r->nl; i++) {
        const ct_layer_desc *d = &r->l[i];
        size_t out_n = n * numel_of(r->ndim[i], r->shape[i]);
        double *out = calloc(out_n, sizeof *out);
        cr_assert(out);
        switch (d->kind) {
        case CT_LAYER_CONV2D: {
            ct_ref_conv g = {n,           sh[0],       sh[1],       sh[2],       d->out,
                             d->kernel_h, d->kernel_w, d->stride_h, d->stride_w, d->pad_h,
                             d->pad_w,    d->dil_h,    d->dil_w,    d->groups};
            ct_ref_conv2d_forward(&g, cur, p + r->woff[i],
                                  r->boff[i] == SIZE_MAX ? NULL : p + r->boff[i], false, out);
            break;
        }
        case CT_LAYER_MAXPOOL2D:
        case CT_LAYER_AVGPOOL2D: {
            ct_ref_pool g = {n,           sh[0],       sh[1],        sh[2],
                             d->kernel_h, d->kernel_w, d->stride_h,  d->stride_w,
                             d->pad_h,    d->pad_w,    d->ceil_mode, d->count_include_pad};
            if (d->kind == CT_LAYER_MAXPOOL2D)
                ct_ref_maxpool2d_forward(&g, cur, out);
            else
                ct_ref_avgpool2d_forward(&g, cur, out);
            break;
        }
        case CT_LAYER_GAP:
            ct_ref_gap_forward(n, sh[0], sh[1], sh[2], cur, out);
            break;
        case CT_LAYER_LINEAR: {
            size_t in = sh[0];
            for (size_t s = 0; s < n; s++)
                for (size_t o = 0; o < d->out; o++) {
                    double acc = r->boff[i] == SIZE_MAX ? 0.0 : p[r->boff[i] + o];
                    for (size_t k = 0; k < in; k++)
                        acc += cur[s * in + k] * p[r->woff[i] + o * in + k];
                    out[s * d->out + o] = acc;
                }
            break;
        }
        case CT_LAYER_RELU:
        case CT_LAYER_LEAKY_RELU:
        case CT_LAYER_SIGMOID:
        case CT_LAYER_TANH: {
            int k = d->kind == CT_LAYER_RELU         ? CT_REF_RELU
                    : d->kind == CT_LAYER_LEAKY_RELU ? CT_REF_LEAKY_RELU
                    : d->kind == CT_LAYER_SIGMOID    ? CT_REF_SIGMOID
                                                     : CT_REF_TANH;
            for (size_t j = 0; j < out_n; j++)
                out[j] = ct_ref_act(k, d->negative_slope, cur[j]);
            break;
        }
        case CT_LAYER_FLATTEN:
            memcpy(out, cur, out_n * sizeof *out);
            break;
        case CT_LAYER_DROPOUT:
            if (training) {
                unsigned char *keep = malloc(out_n);
                cr_assert(keep);
                ct_ref_dropout_mask(out_n, d->p, seed, counter++, keep);
                double scale = ct_ref_dropout_scale(d->p);
                for (size_t j = 0; j < out_n; j++)
                    out[j] = keep[j] ? cur[j] * scale : 0.0;
                free(keep);
            } else {
                memcpy(out, cur, out_n * sizeof *out);
            }
            break;
        case CT_LAYER_BATCHNORM: {
            size_t c = sh[0], hw = nd == 3 ? sh[1] * sh[2] : 1, m = n * hw;
            for (size_t ch = 0; ch < c; ch++) {
                double mean = 0.0, var = 0.0;
                if (training) {
                    for (size_t s = 0; s < n; s++)
                        for (size_t j = 0; j < hw; j++)
                            mean += cur[(s * c + ch) * hw + j];
                    mean /= (double)m;
                    for (size_t s = 0; s < n; s++)
                        for (size_t j = 0; j < hw; j++) {
                            double dv = cur[(s * c + ch) * hw + j] - mean;
                            var += dv * dv;
                        }
                    double biased = var / (double)m;
                    if (buf) {
                        double *rm = buf + r->bufoff[i], *rv = rm + c;
                        rm[ch] = (1.0 - d->momentum) * rm[ch] + d->momentum * mean;
                        rv[ch] = (1.0 - d->momentum) * rv[ch] + d->momentum * var / (double)(m - 1);
                    }
                    var = biased;
                } else {
                    mean = buf[r->bufoff[i] + ch];
                    var = buf[r->bufoff[i] + c + ch];
                }
                double g = d->affine ? p[r->woff[i] + ch] : 1.0;
                double b = d->affine ? p[r->boff[i] + ch] : 0.0;
                double inv = 1.0 / sqrt(var + d->eps);
                for (size_t s = 0; s < n; s++)
                    for (size_t j = 0; j < hw; j++) {
                        size_t idx = (s * c + ch) * hw + j;
                        out[idx] = (cur[idx] - mean) * inv * g + b;
                    }
            }
            if (training && buf)
                buf[r->bufoff[i] + 2 * c] += 1.0;
            break;
        }
        case CT_LAYER_SOFTMAX:
        case CT_LAYER_LOG_SOFTMAX: {
            size_t f = sh[0];
            for (size_t s = 0; s < n; s++) {
                double mx = -INFINITY, z = 0.0;
                for (size_t j = 0; j < f; j++)
                    mx = fmax(mx, cur[s * f + j]);
                for (size_t j = 0; j < f; j++)
                    z += exp(cur[s * f + j] - mx);
                for (size_t j = 0; j < f; j++)
                    out[s * f + j] = d->kind == CT_LAYER_SOFTMAX ? exp(cur[s * f + j] - mx) / z
                                                                 : cur[s * f + j] - mx - log(z);
            }
            break;
        }
        default:
            cr_assert_fail("kind %d not in the reference", d->kind);
        }
        free(cur);
        cur = out;
        nd = r->ndim[i];
        memcpy(sh, r->shape[i], sizeof sh);
    }
    return cur;
}

/* ---- helpers ----------------------------------------------------------------------- */

typedef struct fixture {
    ct_context *ctx;
    ct_model *m;
    ref_model r;
    size_t n, in_numel, out_numel;
    float *xf, *pf, *dyf;
    double *xd, *pd, *dyd;
    ct_tensor *x, *dy;
} fixture;

/* When set, the convolution path of the fixtures' contexts (else the stored or default). */
static const ct_conv_path *fixture_path;

static void fixture_init(fixture *f, const char *spec, size_t in_ndim, const size_t *in, size_t n,
                         uint64_t seed)
{
    memset(f, 0, sizeof *f);
    f->ctx = tu_context();
    if (fixture_path)
        TU_OK(ct_context_set_conv_path(f->ctx, fixture_path));
    TU_OK(ct_model_create_spec(f->ctx, spec, in_ndim, in, seed, &f->m));
    ref_build(&f->r, spec, in_ndim, in);
    f->n = n;
    cr_assert_eq(ct_model_param_numel(f->m), f->r.nparams, "%s: parameter count", spec);
    cr_assert_eq(ct_model_buffer_numel(f->m), f->r.nbuffers, "%s: buffer count", spec);
    f->in_numel = n * numel_of(in_ndim, in);
    f->out_numel = n * numel_of(f->r.ndim[f->r.nl - 1], f->r.shape[f->r.nl - 1]);
    size_t np = f->r.nparams;
    f->xf = malloc(f->in_numel * sizeof *f->xf);
    f->pf = malloc((np ? np : 1) * sizeof *f->pf);
    f->dyf = malloc(f->out_numel * sizeof *f->dyf);
    f->xd = malloc(f->in_numel * sizeof *f->xd);
    f->pd = malloc((np ? np : 1) * sizeof *f->pd);
    f->dyd = malloc(f->out_numel * sizeof *f->dyd);
    cr_assert(f->xf && f->pf && f->dyf && f->xd && f->pd && f->dyd);
    tu_fill_uniform(f->xf, f->in_numel, seed + 1, -1.0, 1.0);
    tu_fill_uniform(f->pf, np, seed + 2, -0.5, 0.5);
    tu_fill_uniform(f->dyf, f->out_numel, seed + 3, -1.0, 1.0);
    for (size_t i = 0; i < f->in_numel; i++)
        f->xd[i] = f->xf[i];
    for (size_t i = 0; i < np; i++)
        f->pd[i] = f->pf[i];
    for (size_t i = 0; i < f->out_numel; i++)
        f->dyd[i] = f->dyf[i];
    if (np)
        TU_OK(ct_model_set_params(f->m, f->pf, np));
    size_t xs[4] = {n, in[0], in_ndim == 3 ? in[1] : 0, in_ndim == 3 ? in[2] : 0};
    f->x = tu_tensor(f->ctx, in_ndim + 1, xs, f->xf);
    size_t ys[4] = {n};
    for (size_t i = 0; i < f->r.ndim[f->r.nl - 1]; i++)
        ys[i + 1] = f->r.shape[f->r.nl - 1][i];
    f->dy = tu_tensor(f->ctx, f->r.ndim[f->r.nl - 1] + 1, ys, f->dyf);
}

static void fixture_free(fixture *f)
{
    ct_tensor_free(f->x);
    ct_tensor_free(f->dy);
    ct_model_free(f->m);
    free(f->r.l);
    free(f->xf), free(f->pf), free(f->dyf), free(f->xd), free(f->pd), free(f->dyd);
    ct_context_free(f->ctx);
}

/* The reference's fresh running stats: mean 0, var 1, count 0. */
static double *fresh_buffers(const ref_model *r)
{
    double *b = calloc(r->nbuffers ? r->nbuffers : 1, sizeof *b);
    cr_assert(b);
    for (size_t i = 0; i < r->nl; i++)
        if (r->bufoff[i] != SIZE_MAX) {
            size_t c = r->shape[i][0];
            for (size_t j = 0; j < c; j++)
                b[r->bufoff[i] + c + j] = 1.0;
        }
    return b;
}

static double dot_loss(const fixture *f, const double *p, uint64_t seed)
{
    double *buf = fresh_buffers(&f->r);
    double *y = ref_forward(&f->r, f->n, f->xd, p, buf, true, seed, 0);
    double l = 0.0;
    for (size_t i = 0; i < f->out_numel; i++)
        l += f->dyd[i] * y[i];
    free(y);
    free(buf);
    return l;
}

/* Forward in train mode, output vs the reference, backward vs finite differences. */
static void check_model(const char *spec, size_t in_ndim, const size_t *in, size_t n, uint64_t seed)
{
    fixture f;
    fixture_init(&f, spec, in_ndim, in, n, seed);
    const uint64_t drop_seed = 0xC0FFEE;

    /* layout: the model's names/offsets agree with the independent PyTorch-order layout */
    size_t k = 0;
    for (size_t i = 0; i < f.r.nl; i++)
        for (int wb = 0; wb < 2; wb++) {
            size_t off = wb ? f.r.boff[i] : f.r.woff[i];
            if (off == SIZE_MAX)
                continue;
            const char *name;
            size_t o;
            TU_OK(ct_model_param_info(f.m, k++, &name, NULL, NULL, &o));
            char want[48];
            snprintf(want, sizeof want, "%zu.%s", i, wb ? "bias" : "weight");
            cr_assert_str_eq(name, want, "%s: parameter %zu", spec, k - 1);
            cr_assert_eq(o, off, "%s: offset of %s", spec, name);
        }
    cr_assert_eq(k, ct_model_param_count(f.m));

    ct_model_set_rng(f.m, drop_seed, 0);
    ct_tensor *y = NULL;
    TU_OK(ct_model_zero_grad(f.m));
    TU_OK(ct_model_forward(f.m, f.x, &y));
    cr_assert_eq(ct_tensor_numel(y), f.out_numel);
    float *yg = tu_download(y);
    double *buf = fresh_buffers(&f.r);
    double *yr = ref_forward(&f.r, n, f.xd, f.pd, buf, true, drop_seed, 0);
    tu_assert_close(spec, yg, yr, f.out_numel, OUT_ATOL, OUT_RTOL);

    /* running statistics after one training forward */
    if (f.r.nbuffers) {
        float *bg = malloc(f.r.nbuffers * sizeof *bg);
        cr_assert(bg);
        TU_OK(ct_model_get_buffers(f.m, bg, f.r.nbuffers));
        tu_assert_close("running stats", bg, buf, f.r.nbuffers, OUT_ATOL, OUT_RTOL);
        free(bg);
    }

    TU_OK(ct_model_backward(f.m, f.dy));
    float *gg = tu_download(ct_model_grads(f.m));
    double *fd = malloc(f.r.nparams * sizeof *fd);
    cr_assert(fd);
    for (size_t j = 0; j < f.r.nparams; j++) {
        double save = f.pd[j], h = 1e-6;
        f.pd[j] = save + h;
        double lp = dot_loss(&f, f.pd, drop_seed);
        f.pd[j] = save - h;
        double lm = dot_loss(&f, f.pd, drop_seed);
        f.pd[j] = save;
        fd[j] = (lp - lm) / (2 * h);
    }
    tu_assert_close("parameter gradients vs finite differences", gg, fd, f.r.nparams, GRAD_ATOL,
                    GRAD_RTOL);

    free(fd), free(gg), free(yg), free(yr), free(buf);
    fixture_free(&f);
}

/* ---- forward and backward against the reference ----------------------------------- */

Test(model, conv_bn_pool_dropout_mix)
{
    /* conv+relu fused, relu before maxpool (stride 1), grouped strided conv without bias,
     * BatchNorm2d, tanh, avgpool, flatten view, linear+relu fused with an in-place relu
     * backward, dropout, sigmoid */
    check_model("conv(4,3,pad=1) relu maxpool(2,stride=1) conv(6,3,stride=2,pad=1,groups=2,"
                "bias=0) bn tanh avgpool(2,1) flatten linear(8) relu dropout(0.25) linear(5) "
                "sigmoid",
                3, (size_t[]){2, 9, 9}, 3, 11);
}

Test(model, dilation_unfused_relu_gap_bn1d)
{
    /* relu after batch norm (not fused) before a maxpool (its backward skipped),
     * leaky relu, dilation, global average pooling, BatchNorm1d, a standalone relu */
    check_model("conv(3,3,dil=2) bn relu maxpool(2) leakyrelu(0.1) gap bn relu linear(4)", 3,
                (size_t[]){2, 10, 10}, 4, 21);
}

Test(model, fused_conv_relu_maxpool_blocks)
{
    /* conv + relu + maxpool as one op (32 output channels fill the fused kernel's
     * vectors): first layer (no input gradient, conv_bwd_w_pool) on a 5x7 image whose
     * last row and column no window covers, then a block without relu that needs dx, and
     * the model's memory report: only pooled outputs and argmax bytes are kept. The
     * plan when the forward pass is not a GEMM (CONV_GEMM=0; GPUs default to GEMMs); at
     * the end, with every pass a GEMM the model keeps its pools apart. */
    setenv("CLTRAIN_TUNE", "-DCONV_GEMM=0", 1);
    const char *spec = "conv(32,3,pad=1) relu maxpool(2) conv(32,3,pad=1) maxpool(2) flatten "
                       "linear(3)";
    check_model(spec, 3, (size_t[]){1, 5, 7}, 2, 41);
    fixture f;
    fixture_init(&f, spec, 3, (size_t[]){1, 5, 7}, 2, 41);
    char line[200];
    TU_OK(ct_model_layer_describe(f.m, 0, line, sizeof line));
    cr_assert(strstr(line, "+relu +maxpool") != NULL, "%s", line);
    TU_OK(ct_model_layer_describe(f.m, 3, line, sizeof line));
    cr_assert(strstr(line, "+maxpool") != NULL && strstr(line, "+relu") == NULL, "%s", line);
    size_t saved = 1, grads = 1;
    ct_model_batch_memory(f.m, &saved, &grads);
    cr_assert_eq(saved + grads, 0, "no memory before the first forward");
    ct_tensor *y = NULL;
    TU_OK(ct_model_forward(f.m, f.x, &y));
    ct_model_batch_memory(f.m, &saved, &grads);
    /* pooled (32,2,3) and (32,1,1), their argmax bytes rounded up to floats, the linear
     * output (3); gradients: the linear's (and flatten's) input gradient (32) in one
     * buffer, the second block's dx (32,2,3) in the other; the first block makes none */
    size_t n = 2, p1 = n * 32 * 2 * 3, p2 = n * 32 * 1 * 1;
    size_t want = 4 * ((p1 + 3) / 4 + p1 + (p2 + 3) / 4 + p2 + n * 3);
    cr_assert_eq(saved, want, "saved %zu bytes, want %zu", saved, want);
    cr_assert_eq(grads, 4 * (p1 + p2), "gradient buffers %zu bytes, want %zu", grads,
                 4 * (p1 + p2));
    fixture_free(&f);

    setenv("CLTRAIN_TUNE", "-DCONV_GEMM=7", 1);
    check_model(spec, 3, (size_t[]){1, 5, 7}, 2, 41);
    fixture_init(&f, spec, 3, (size_t[]){1, 5, 7}, 2, 41);
    TU_OK(ct_model_layer_describe(f.m, 0, line, sizeof line));
    cr_assert(strstr(line, "+relu") != NULL && strstr(line, "+maxpool") == NULL, "%s", line);
    fixture_free(&f);
    unsetenv("CLTRAIN_TUNE");
}

/* A convolution path per layer shape (cltrain/tune.h): the first conv's forward pass as a
 * GEMM keeps its pool apart while the second conv, a shape of its own on the kernels,
 * keeps its fused pool; both still match the reference, forward and backward. The same
 * model with the two choices swapped is planned the other way round. */
Test(model, conv_path_per_layer_shape)
{
    unsetenv("CLTRAIN_TUNE");
    const char *spec = "conv(32,3,pad=1) relu maxpool(2) conv(32,3,pad=1) relu maxpool(2) flatten "
                       "linear(3)";
    const ct_conv_shape c1 = {1, 4, 5, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    const ct_conv_shape c2 = {32, 2, 2, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    for (int swap = 0; swap < 2; swap++) {
        ct_conv_path cp;
        ct_conv_path_init(&cp, 7);
        TU_OK(ct_conv_path_set(&cp, swap ? &c1 : &c2, 0));
        fixture_path = &cp;
        check_model(spec, 3, (size_t[]){1, 4, 5}, 2, 71);
        fixture f;
        fixture_init(&f, spec, 3, (size_t[]){1, 4, 5}, 2, 71);
        fixture_path = NULL;
        char l0[200], l3[200];
        TU_OK(ct_model_layer_describe(f.m, 0, l0, sizeof l0));
        TU_OK(ct_model_layer_describe(f.m, 3, l3, sizeof l3));
        const char *fused = swap ? l0 : l3, *apart = swap ? l3 : l0;
        cr_assert(strstr(fused, "+relu +maxpool") != NULL, "swap %d: %s", swap, fused);
        cr_assert(strstr(apart, "+relu") != NULL && strstr(apart, "+maxpool") == NULL,
                  "swap %d: %s", swap, apart);
        fixture_free(&f);
    }
}

/* One forward + backward at batch n: the output and the gradients, downloaded. */
static void run_batch(ct_model *m, ct_tensor *x, ct_tensor *dy, float **y, float **g)
{
    ct_tensor *out = NULL;
    TU_OK(ct_model_zero_grad(m));
    TU_OK(ct_model_forward(m, x, &out));
    TU_OK(ct_model_backward(m, dy));
    *y = tu_download(out);
    *g = tu_download(ct_model_grads(m));
}

/* The per-batch buffers are made for the largest batch so far and viewed for smaller
 * ones: a model that ran batch 5 runs batch 2 in the same memory and gives the bits a
 * model that only ever ran batch 2 gives (the first two images of the same data), runs
 * batch 5 again without growing, and grows for batch 7; an evaluation at batch 9 grows
 * the kept outputs but not the gradient buffers. */
Test(model, smaller_batches_reuse_the_buffers)
{
    setenv("CLTRAIN_TUNE", "-DCONV_GEMM=0", 1);
    const char *spec = "conv(32,3,pad=1) relu maxpool(2) conv(32,3,pad=1) relu maxpool(2) flatten "
                       "linear(8) relu linear(3)";
    const size_t in[3] = {1, 8, 6};
    fixture big, small;
    fixture_init(&big, spec, 3, in, 5, 61);
    fixture_init(&small, spec, 3, in, 2, 61);
    cr_assert(memcmp(big.xf, small.xf, small.in_numel * sizeof *small.xf) == 0 &&
                  memcmp(big.dyf, small.dyf, small.out_numel * sizeof *small.dyf) == 0,
              "the two fixtures start from the same data");
    float *y5, *g5, *y2, *g2, *yr, *gr;
    size_t saved5, grads5, saved, grads;
    run_batch(big.m, big.x, big.dy, &y5, &g5);
    ct_model_batch_memory(big.m, &saved5, &grads5);
    uint64_t in_use = ct_context_mem_in_use(big.ctx);

    ct_tensor *x2 = NULL, *dy2 = NULL;
    TU_OK(ct_tensor_view(big.x, 0, 4, (size_t[]){2, 1, 8, 6}, &x2));
    TU_OK(ct_tensor_view(big.dy, 0, 2, (size_t[]){2, 3}, &dy2));
    run_batch(big.m, x2, dy2, &y2, &g2);
    run_batch(small.m, small.x, small.dy, &yr, &gr);
    ct_model_batch_memory(big.m, &saved, &grads);
    cr_assert(saved == saved5 && grads == grads5 && ct_context_mem_in_use(big.ctx) == in_use,
              "batch 2 after batch 5 allocated anew");
    cr_assert(memcmp(y2, yr, small.out_numel * sizeof *y2) == 0, "batch 2 output differs");
    cr_assert(memcmp(g2, gr, ct_model_param_numel(big.m) * sizeof *g2) == 0,
              "batch 2 gradients differ");
    free(y2), free(g2), free(yr), free(gr);

    float *y5b, *g5b;
    run_batch(big.m, big.x, big.dy, &y5b, &g5b);
    cr_assert(ct_context_mem_in_use(big.ctx) == in_use, "batch 5 again allocated anew");
    cr_assert(memcmp(y5, y5b, big.out_numel * sizeof *y5) == 0 &&
                  memcmp(g5, g5b, ct_model_param_numel(big.m) * sizeof *g5) == 0,
              "batch 5 differs after batch 2");
    free(y5), free(g5), free(y5b), free(g5b);

    float *x7h = tu_rand(7 * 48, 62, -1, 1), *dy7h = tu_rand(7 * 3, 63, -1, 1);
    ct_tensor *x7 = tu_tensor(big.ctx, 4, (size_t[]){7, 1, 8, 6}, x7h);
    ct_tensor *dy7 = tu_tensor(big.ctx, 2, (size_t[]){7, 3}, dy7h);
    float *y7, *g7;
    run_batch(big.m, x7, dy7, &y7, &g7);
    size_t saved7, grads7;
    ct_model_batch_memory(big.m, &saved7, &grads7);
    cr_assert(saved7 > saved5 && grads7 > grads5, "batch 7 did not grow the buffers");
    /* an evaluation batch grows the kept outputs only: it makes no gradients */
    float *x9h = tu_rand(9 * 48, 64, -1, 1);
    ct_tensor *x9 = tu_tensor(big.ctx, 4, (size_t[]){9, 1, 8, 6}, x9h), *y9 = NULL;
    ct_model_set_training(big.m, false);
    TU_OK(ct_model_forward(big.m, x9, &y9));
    ct_model_batch_memory(big.m, &saved, &grads);
    cr_assert(saved > saved7 && grads == grads7,
              "evaluation at batch 9: saved %zu -> %zu, "
              "gradient buffers %zu -> %zu",
              saved7, saved, grads7, grads);
    ct_model_set_training(big.m, true);
    free(y7), free(g7), free(x7h), free(dy7h), free(x9h);
    ct_tensor_free(x7), ct_tensor_free(dy7), ct_tensor_free(x2), ct_tensor_free(dy2);
    ct_tensor_free(x9);
    fixture_free(&small);
    fixture_free(&big);
    unsetenv("CLTRAIN_TUNE");
}

Test(model, flatten_first_and_fused_relu_last)
{
    /* flatten as the first layer copies; the last layer is a fused relu (its gradient is
     * masked in place, after copying the caller's dy) */
    check_model("flatten linear(5) relu linear(3) relu", 3, (size_t[]){1, 4, 4}, 2, 31);
}

Test(model, features_input_and_avgpool_options)
{
    check_model("linear(6) tanh dropout(0.5) linear(3)", 1, (size_t[]){7}, 5, 41);
    check_model("avgpool(3,2,1,ceil=1,count_include_pad=0) conv(2,2,bias=0) relu flatten "
                "linear(2,bias=0)",
                3, (size_t[]){2, 7, 6}, 2, 51);
}

/* ---- the training-loop contract ---------------------------------------------------- */

Test(model, backward_accumulates_and_zero_grad_resets)
{
    fixture f;
    fixture_init(&f, "conv(4,3,pad=1) relu maxpool(2) flatten linear(3)", 3, (size_t[]){1, 6, 6}, 2,
                 61);
    size_t np = f.r.nparams;
    ct_tensor *y = NULL;
    TU_OK(ct_model_zero_grad(f.m));
    TU_OK(ct_model_forward(f.m, f.x, &y));
    TU_OK(ct_model_backward(f.m, f.dy));
    float *g1 = tu_download(ct_model_grads(f.m));
    /* a second backward of the same forward adds the same (deterministic) values */
    TU_OK(ct_model_backward(f.m, f.dy));
    float *g2 = tu_download(ct_model_grads(f.m));
    double *twice = malloc(np * sizeof *twice);
    cr_assert(twice);
    for (size_t i = 0; i < np; i++)
        twice[i] = 2.0 * (double)g1[i];
    tu_assert_close("two backwards accumulate", g2, twice, np, 0.0, 0.0);
    TU_OK(ct_model_zero_grad(f.m));
    float *g0 = tu_download(ct_model_grads(f.m));
    for (size_t i = 0; i < np; i++)
        cr_assert(g0[i] == 0.0f, "grad %zu = %g after zero_grad", i, (double)g0[i]);
    free(g0), free(g1), free(g2), free(twice);
    fixture_free(&f);
}

Test(model, batch_size_changes_and_memory_is_reused)
{
    fixture f;
    const char *spec = "conv(3,3,pad=1) relu maxpool(2) flatten linear(4) softmax";
    fixture_init(&f, spec, 3, (size_t[]){2, 6, 6}, 5, 71);
    ct_tensor *y = NULL;
    double *yr = ref_forward(&f.r, 5, f.xd, f.pd, NULL, false, 0, 0);

    /* the first 2 samples of x as a view: a different N */
    ct_tensor *x2 = NULL;
    TU_OK(ct_tensor_view(f.x, 0, 4, (size_t[]){2, 2, 6, 6}, &x2));
    TU_OK(ct_model_forward(f.m, f.x, &y));
    TU_OK(ct_context_finish(f.ctx));
    uint64_t mem5 = ct_context_mem_in_use(f.ctx);
    for (int round = 0; round < 2; round++) {
        TU_OK(ct_model_forward(f.m, x2, &y));
        cr_assert_eq(ct_tensor_dim(y, 0), 2);
        float *yg = tu_download(y);
        tu_assert_close("N=2", yg, yr, 2 * 4, OUT_ATOL, OUT_RTOL);
        free(yg);
        TU_OK(ct_model_forward(f.m, f.x, &y));
        TU_OK(ct_model_forward(f.m, f.x, &y));
        cr_assert_eq(ct_tensor_dim(y, 0), 5);
        yg = tu_download(y);
        tu_assert_close("N=5", yg, yr, 5 * 4, OUT_ATOL, OUT_RTOL);
        free(yg);
        cr_assert_eq(ct_context_mem_in_use(f.ctx), mem5, "memory grew across same-N forwards");
    }
    /* softmax is inference-only */
    ct_status st = ct_model_backward(f.m, f.dy);
    cr_assert_eq(st, CT_ERR_UNSUPPORTED, "%s", ct_last_error());
    cr_assert(strstr(ct_last_error(), "layer 5 (softmax)") != NULL, "%s", ct_last_error());
    ct_tensor_free(x2);
    free(yr);
    fixture_free(&f);
}

Test(model, eval_mode_uses_running_stats_and_keeps_no_backward_state)
{
    fixture f;
    const char *spec = "conv(3,3) bn relu dropout(0.5) flatten linear(3) logsoftmax";
    fixture_init(&f, spec, 3, (size_t[]){2, 5, 5}, 4, 81);
    ct_tensor *y = NULL;
    /* two training forwards move the running statistics */
    TU_OK(ct_model_forward(f.m, f.x, &y));
    TU_OK(ct_model_forward(f.m, f.x, &y));
    uint64_t seed, counter;
    ct_model_get_rng(f.m, &seed, &counter);
    cr_assert_eq(seed, 81);
    cr_assert_eq(counter, 2, "one counter value per dropout layer and forward");

    float *bg = malloc(f.r.nbuffers * sizeof *bg);
    double *bd = malloc(f.r.nbuffers * sizeof *bd);
    cr_assert(bg && bd);
    TU_OK(ct_model_get_buffers(f.m, bg, f.r.nbuffers));
    cr_assert_eq(bg[f.r.nbuffers - 1], 2.0f, "num_batches_tracked");
    for (size_t i = 0; i < f.r.nbuffers; i++)
        bd[i] = bg[i];
    const char *name;
    TU_OK(ct_model_buffer_info(f.m, 2, &name, NULL, NULL, NULL));
    cr_assert_str_eq(name, "1.num_batches_tracked");

    ct_model_set_training(f.m, false);
    cr_assert(!ct_model_training(f.m));
    TU_OK(ct_model_forward(f.m, f.x, &y));
    float *yg = tu_download(y);
    double *yr = ref_forward(&f.r, 4, f.xd, f.pd, bd, false, 0, 0);
    tu_assert_close("eval forward", yg, yr, f.out_numel, OUT_ATOL, OUT_RTOL);
    ct_model_get_rng(f.m, NULL, &counter);
    cr_assert_eq(counter, 2, "eval forward must not use dropout randomness");
    float *bg2 = malloc(f.r.nbuffers * sizeof *bg2);
    cr_assert(bg2);
    TU_OK(ct_model_get_buffers(f.m, bg2, f.r.nbuffers));
    cr_assert(memcmp(bg, bg2, f.r.nbuffers * sizeof *bg) == 0, "eval changed running stats");

    ct_status st = ct_model_backward(f.m, f.dy);
    cr_assert_eq(st, CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "train-mode forward") != NULL, "%s", ct_last_error());

    /* set_buffers restores the count and the statistics */
    bg[f.r.nbuffers - 1] = 5.0f;
    TU_OK(ct_model_set_buffers(f.m, bg, f.r.nbuffers));
    ct_model_set_training(f.m, true);
    TU_OK(ct_model_forward(f.m, f.x, &y));
    TU_OK(ct_model_get_buffers(f.m, bg2, f.r.nbuffers));
    cr_assert_eq(bg2[f.r.nbuffers - 1], 6.0f);

    free(bg), free(bg2), free(bd), free(yg), free(yr);
    fixture_free(&f);
}

Test(model, dropout_masks_advance_per_forward)
{
    fixture f;
    fixture_init(&f, "dropout(0.5)", 1, (size_t[]){64}, 2, 91);
    ct_tensor *y = NULL;
    TU_OK(ct_model_forward(f.m, f.x, &y));
    float *a = tu_download(y);
    TU_OK(ct_model_forward(f.m, f.x, &y));
    float *b = tu_download(y);
    cr_assert(memcmp(a, b, 128 * sizeof *a) != 0, "two forwards used the same mask");
    /* rewinding the counter reproduces the first mask */
    ct_model_set_rng(f.m, 91, 0);
    TU_OK(ct_model_forward(f.m, f.x, &y));
    float *c = tu_download(y);
    cr_assert(memcmp(a, c, 128 * sizeof *a) == 0);
    free(a), free(b), free(c);
    fixture_free(&f);
}

Test(model, errors)
{
    fixture f;
    fixture_init(&f, "conv(2,3) flatten linear(3)", 3, (size_t[]){1, 5, 5}, 2, 101);
    ct_tensor *y = NULL, *bad = NULL;
    ct_status st = ct_model_backward(f.m, f.dy);
    cr_assert_eq(st, CT_ERR_INVALID_ARG, "backward before any forward");

    TU_OK(ct_tensor_create(f.ctx, 4, (size_t[]){2, 1, 5, 4}, &bad));
    st = ct_model_forward(f.m, bad, &y);
    cr_assert_eq(st, CT_ERR_SHAPE);
    cr_assert(strstr(ct_last_error(), "(2,1,5,4), expected (N,1,5,5)") != NULL, "%s",
              ct_last_error());
    ct_tensor_free(bad);

    TU_OK(ct_model_forward(f.m, f.x, &y));
    TU_OK(ct_tensor_create(f.ctx, 2, (size_t[]){2, 4}, &bad));
    st = ct_model_backward(f.m, bad);
    cr_assert_eq(st, CT_ERR_SHAPE);
    ct_tensor_free(bad);

    float tmp[4];
    cr_assert_eq(ct_model_set_params(f.m, tmp, 4), CT_ERR_SHAPE);
    cr_assert_eq(ct_model_get_params(f.m, tmp, 4), CT_ERR_SHAPE);
    cr_assert_eq(ct_model_param_info(f.m, 4, NULL, NULL, NULL, NULL), CT_ERR_INVALID_ARG);

    ct_model *m2 = (ct_model *)1;
    st = ct_model_create_spec(f.ctx, "conv(2,3) linear(3)", 3, (size_t[]){1, 5, 5}, 0, &m2);
    cr_assert_eq(st, CT_ERR_SHAPE);
    cr_assert(m2 == NULL);
    st = ct_model_create_spec(f.ctx, "conv(2,3) lineaer(3)", 3, (size_t[]){1, 5, 5}, 0, &m2);
    cr_assert_eq(st, CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "unknown layer 'lineaer' at position 11") != NULL);
    fixture_free(&f);
}

Test(model, set_get_params_round_trip_and_describe)
{
    /* the described plan is the fused one (CONV_GEMM=0; GPUs default to GEMMs) */
    setenv("CLTRAIN_TUNE", "-DCONV_GEMM=0", 1);
    fixture f;
    fixture_init(&f, "minicnn", 3, (size_t[]){1, 28, 28}, 1, 111);
    size_t np = ct_model_param_numel(f.m);
    float *back = malloc(np * sizeof *back);
    cr_assert(back);
    TU_OK(ct_model_get_params(f.m, back, np));
    cr_assert(memcmp(back, f.pf, np * sizeof *back) == 0, "get_params != set_params");
    free(back);

    static const char *want[10] = {
        "0 conv(1->32, 3x3, stride 1x1, pad 1x1) +relu +maxpool -> (32,28,28), 320 params",
        "1 relu (fused) -> (32,28,28), 0 params",
        "2 maxpool(2x2, stride 2x2, pad 0x0) (fused) -> (32,14,14), 0 params",
        "3 conv(32->64, 3x3, stride 1x1, pad 1x1) +relu +maxpool -> (64,14,14), 18496 params",
        "4 relu (fused) -> (64,14,14), 0 params",
        "5 maxpool(2x2, stride 2x2, pad 0x0) (fused) -> (64,7,7), 0 params",
        "6 flatten -> (3136), 0 params",
        "7 linear(3136->128) +relu -> (128), 401536 params",
        "8 relu (fused) -> (128), 0 params",
        "9 linear(128->10) -> (10), 1290 params",
    };
    cr_assert_eq(ct_model_layer_count(f.m), 10);
    for (size_t i = 0; i < 10; i++) {
        char line[200];
        TU_OK(ct_model_layer_describe(f.m, i, line, sizeof line));
        cr_assert_str_eq(line, want[i]);
    }
    size_t nd, sh[3];
    ct_model_output_shape(f.m, &nd, sh);
    cr_assert(nd == 1 && sh[0] == 10);
    ct_model_input_shape(f.m, &nd, sh);
    cr_assert(nd == 3 && sh[0] == 1 && sh[1] == 28 && sh[2] == 28);
    fixture_free(&f);
    unsetenv("CLTRAIN_TUNE");
}

/* PyTorch's default bounds: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in));
 * batch norm weight 1, bias 0. The values themselves are checked bit-exactly against
 * gen_minicnn.py in the golden suite; here the spread: over n uniform draws the max |w|
 * comes within 1% of the bound and the mean square is bound^2/3 within 10%
 * (n >= 288 draws, the standard error of the mean square is <= 5%). */
Test(model, default_init_bounds)
{
    ct_context *ctx = tu_context();
    ct_model *m = NULL;
    TU_OK(ct_model_create_spec(ctx, "conv(32,3,groups=2) bn flatten linear(40)", 3,
                               (size_t[]){4, 6, 6}, 5, &m));
    size_t np = ct_model_param_numel(m);
    float *p = malloc(np * sizeof *p);
    cr_assert(p);
    TU_OK(ct_model_get_params(m, p, np));
    const double fan_in[6] = {2 * 9, 2 * 9, 0, 0, 32 * 16, 32 * 16};
    for (size_t i = 0; i < ct_model_param_count(m); i++) {
        const char *name;
        size_t ndim, shape[4], off;
        TU_OK(ct_model_param_info(m, i, &name, &ndim, shape, &off));
        size_t n = 1;
        for (size_t d = 0; d < ndim; d++)
            n *= shape[d];
        if (fan_in[i] == 0.0) {
            float v = strstr(name, "weight") ? 1.0f : 0.0f;
            for (size_t j = 0; j < n; j++)
                cr_assert(p[off + j] == v, "%s[%zu] = %g", name, j, (double)p[off + j]);
            continue;
        }
        double bound = 1.0 / sqrt(fan_in[i]), mx = 0.0, ms = 0.0;
        for (size_t j = 0; j < n; j++) {
            double v = fabs(p[off + j]);
            cr_assert(v <= bound, "%s[%zu] = %g beyond %g", name, j, v, bound);
            mx = fmax(mx, v);
            ms += v * v / (double)n;
        }
        if (n >= 288) {
            cr_assert(mx > 0.99 * bound, "%s: max %g vs bound %g", name, mx, bound);
            cr_assert(fabs(ms / (bound * bound / 3.0) - 1.0) < 0.1, "%s: mean square %g", name, ms);
        }
    }
    /* another seed gives other numbers, the same seed the same */
    ct_model *m2 = NULL, *m3 = NULL;
    TU_OK(ct_model_create_spec(ctx, "conv(32,3,groups=2) bn flatten linear(40)", 3,
                               (size_t[]){4, 6, 6}, 6, &m2));
    TU_OK(ct_model_create_spec(ctx, "conv(32,3,groups=2) bn flatten linear(40)", 3,
                               (size_t[]){4, 6, 6}, 5, &m3));
    float *p2 = malloc(np * sizeof *p2), *p3 = malloc(np * sizeof *p3);
    cr_assert(p2 && p3);
    TU_OK(ct_model_get_params(m2, p2, np));
    TU_OK(ct_model_get_params(m3, p3, np));
    cr_assert(memcmp(p, p2, np * sizeof *p) != 0);
    cr_assert(memcmp(p, p3, np * sizeof *p) == 0);
    /* init_params re-initialises in place */
    TU_OK(ct_model_init_params(m2, 5));
    TU_OK(ct_model_get_params(m2, p2, np));
    cr_assert(memcmp(p, p2, np * sizeof *p) == 0);
    free(p), free(p2), free(p3);
    ct_model_free(m);
    ct_model_free(m2);
    ct_model_free(m3);
    ct_context_free(ctx);
}
