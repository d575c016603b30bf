/* lib/nn/model.c — the layers (one operations table per kind) and the sequential model:
 * one flat parameter tensor, one flat gradient tensor, activations allocated per batch
 * size, and the forward/backward loops.
 *
 * Fusion, invisible in names and numbers:
 *   - a ReLU right after a conv or linear runs inside that op (`relu` argument); the ReLU
 *     layer keeps its Sequential index but its output is the conv's output;
 *   - a ReLU right before a maxpool has no backward of its own: the maxpool backward
 *     masks with (x > 0) (`relu_in`), x being the ReLU's output, which is > 0 exactly
 *     where the ReLU's input is;
 *   - a fused ReLU not followed by a maxpool masks the gradient in place;
 *   - conv [-> relu] -> maxpool 2x2 at stride 2 runs as one op when the conv has the fused
 *     kernels (ct_conv2d_pool_fusable): the conv output is never stored, only the pooled
 *     output and one argmax byte per pooled element, and backward goes from the pooled
 *     gradient straight to the conv's gradients (ct_conv2d_pool_backward).
 *
 * Memory per batch size N (made on the first forward, again only when N exceeds the largest
 * batch so far; a smaller batch views the first part of each buffer):
 *   arena:  every non-aliased layer output, (N, out_shape) each, back to back; a fused
 *           ReLU's and a Flatten's output are views of their input's storage; a conv
 *           with a fused pool stores its argmax bytes instead of its output, and the
 *           layers inside the block have no output tensor;
 *   gbuf[2]: two gradient buffers, made at the first training forward and grown only
 *           with the training batch (evaluation needs none); none inside a fused pool
 *           block. The gradient w.r.t. a layer's output lives in one of them and its dx
 *           goes to the other (or to the same one for in-place and reshape-only layers);
 *           plan_grad_buffers walks the backward pass once to place each gradient, and
 *           each buffer is as large as the largest gradient placed in it (MiniCNN: the
 *           conv 32->64 block's dx in one, the pooled gradient above it in the other,
 *           1.53 + 0.77 MiB at batch 64 instead of 2 x 1.53).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/layer.h"

/* ---- helpers ---------------------------------------------------------------------- */

static size_t prod(size_t ndim, const size_t *shape)
{
    size_t n = 1;
    for (size_t i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

static const char *fmt_shape(char *buf, size_t cap, size_t ndim, const size_t *shape)
{
    int k = snprintf(buf, cap, "(");
    for (size_t i = 0; i < ndim && k > 0 && (size_t)k < cap; i++)
        k += snprintf(buf + k, cap - (size_t)k, i ? ",%zu" : "%zu", shape[i]);
    if (k > 0 && (size_t)k < cap)
        snprintf(buf + k, cap - (size_t)k, ")");
    return buf;
}

#define LAYER_FAIL(l, ...)                                                                         \
    do {                                                                                           \
        char lf_msg_[200];                                                                         \
        snprintf(lf_msg_, sizeof lf_msg_, __VA_ARGS__);                                            \
        CT_FAIL(CT_ERR_SHAPE, "layer %zu (%s): %s", (l)->index,                                    \
                ct_layer_kind_name((l)->desc.kind), lf_msg_);                                      \
    } while (0)

static void add_param(ct_layer *l, const char *what, size_t ndim, const size_t *shape, double bound,
                      float value)
{
    ct_named_slot *s = &l->param_slot[l->nparams];
    snprintf(s->name, sizeof s->name, "%zu.%s", l->index, what);
    s->ndim = ndim;
    memcpy(s->shape, shape, ndim * sizeof *shape);
    s->numel = prod(ndim, shape);
    l->init_bound[l->nparams] = bound;
    l->init_value[l->nparams] = value;
    l->nparams++;
}

static void add_buffer(ct_layer *l, const char *what, size_t ndim, const size_t *shape, float value)
{
    ct_named_slot *s = &l->buffer_slot[l->nbuffers];
    snprintf(s->name, sizeof s->name, "%zu.%s", l->index, what);
    s->ndim = ndim;
    if (ndim) /* num_batches_tracked is a scalar: no shape to copy (and shape may be NULL) */
        memcpy(s->shape, shape, ndim * sizeof *shape);
    s->numel = prod(ndim, shape);
    l->buffer_init[l->nbuffers] = value;
    l->nbuffers++;
}

static void same_shape(ct_layer *l)
{
    l->out_ndim = l->in_ndim;
    memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
}

/* ---- conv2d ----------------------------------------------------------------------- */

static ct_status conv_setup(ct_layer *l)
{
    ct_status st = CT_SUCCESS;
    const ct_layer_desc *d = &l->desc;
    char sb[64];
    if (l->in_ndim != 3)
        LAYER_FAIL(l, "needs an image input (C,H,W), got %s",
                   fmt_shape(sb, sizeof sb, l->in_ndim, l->in_shape));
    size_t c = l->in_shape[0];
    if (d->out == 0 || d->kernel_h == 0 || d->kernel_w == 0 || d->stride_h == 0 ||
        d->stride_w == 0 || d->dil_h == 0 || d->dil_w == 0 || d->groups == 0)
        LAYER_FAIL(l, "out channels, kernel, stride, dilation and groups must be >= 1");
    if (c % d->groups || d->out % d->groups)
        LAYER_FAIL(l, "groups %zu must divide in channels %zu and out channels %zu", d->groups, c,
                   d->out);
    size_t p = ct_conv_out_size(l->in_shape[1], d->kernel_h, d->stride_h, d->pad_h, d->dil_h);
    size_t q = ct_conv_out_size(l->in_shape[2], d->kernel_w, d->stride_w, d->pad_w, d->dil_w);
    if (p == 0 || q == 0)
        LAYER_FAIL(l, "kernel %zux%zu (dilation %zux%zu, padding %zux%zu) does not fit input %s",
                   d->kernel_h, d->kernel_w, d->dil_h, d->dil_w, d->pad_h, d->pad_w,
                   fmt_shape(sb, sizeof sb, l->in_ndim, l->in_shape));
    l->out_ndim = 3;
    l->out_shape[0] = d->out;
    l->out_shape[1] = p;
    l->out_shape[2] = q;
    l->conv = (ct_conv2d_params){d->stride_h, d->stride_w, d->pad_h, d->pad_w,
                                 d->dil_h,    d->dil_w,    d->groups};
    size_t fan_in = c / d->groups * d->kernel_h * d->kernel_w;
    double bound = 1.0 / sqrt((double)fan_in);
    add_param(l, "weight", 4, (size_t[]){d->out, c / d->groups, d->kernel_h, d->kernel_w}, bound,
              0.0f);
    if (d->bias)
        add_param(l, "bias", 1, (size_t[]){d->out}, bound, 0.0f);
cleanup:
    return st;
}

static ct_status conv_forward(ct_layer *l, ct_context *ctx, const ct_tensor *x, ct_tensor *y,
                              bool training)
{
    (void)training;
    return ct_conv2d_forward(ctx, x, l->param[0], l->nparams > 1 ? l->param[1] : NULL, &l->conv,
                             l->fused_relu, y);
}

static ct_status conv_backward(ct_layer *l, ct_context *ctx, const ct_tensor *x, const ct_tensor *y,
                               const ct_tensor *dy, ct_tensor *dx)
{
    (void)y;
    return ct_conv2d_backward(ctx, x, l->param[0], dy, &l->conv, dx, l->grad[0],
                              l->nparams > 1 ? l->grad[1] : NULL);
}

/* ---- pooling ---------------------------------------------------------------------- */

static ct_status pool_setup(ct_layer *l)
{
    ct_status st = CT_SUCCESS;
    ct_layer_desc *d = &l->desc;
    char sb[64];
    if (l->in_ndim != 3)
        LAYER_FAIL(l, "needs an image input (C,H,W), got %s",
                   fmt_shape(sb, sizeof sb, l->in_ndim, l->in_shape));
    if (d->kernel_h == 0 || d->kernel_w == 0)
        LAYER_FAIL(l, "kernel must be >= 1");
    size_t sh = d->stride_h ? d->stride_h : d->kernel_h;
    size_t sw = d->stride_w ? d->stride_w : d->kernel_w;
    if (d->pad_h > d->kernel_h / 2 || d->pad_w > d->kernel_w / 2)
        LAYER_FAIL(l, "padding %zux%zu must be at most half the kernel %zux%zu", d->pad_h, d->pad_w,
                   d->kernel_h, d->kernel_w);
    size_t p = ct_pool_out_size(l->in_shape[1], d->kernel_h, sh, d->pad_h, d->ceil_mode);
    size_t q = ct_pool_out_size(l->in_shape[2], d->kernel_w, sw, d->pad_w, d->ceil_mode);
    if (p == 0 || q == 0)
        LAYER_FAIL(l, "window %zux%zu does not fit input %s", d->kernel_h, d->kernel_w,
                   fmt_shape(sb, sizeof sb, l->in_ndim, l->in_shape));
    l->out_ndim = 3;
    l->out_shape[0] = l->in_shape[0];
    l->out_shape[1] = p;
    l->out_shape[2] = q;
    l->pool = (ct_pool2d_params){d->kernel_h, d->kernel_w, sh,           sw,
                                 d->pad_h,    d->pad_w,    d->ceil_mode, d->count_include_pad};
cleanup:
    return st;
}

static ct_status maxpool_forward(ct_layer *l, ct_context *ctx, const ct_tensor *x, ct_tensor *y,
                                 bool training)
{
    (void)training;
    return ct_maxpool2d_forward(ctx, x, &l->pool, y);
}

static ct_status maxpool_backward(ct_layer *l, ct_context *ctx, const ct_tensor *x,
                                  const ct_tensor *y, const ct_tensor *dy, ct_tensor *dx)
{
    return ct_maxpool2d_backward(ctx, x, y, dy, &l->pool, l->relu_in, dx);
}

static ct_status avgpool_forward(ct_layer *l, ct_context *ctx, const ct_tensor *x, ct_tensor *y,
                                 bool training)
{
    (void)training;
    return ct_avgpool2d_forward(ctx, x, &l->pool, y);
}

static ct_status avgpool_backward(ct_layer *l, ct_context *ctx, const ct_tensor *x,
                                  const ct_tensor *y, const ct_tensor *dy, ct_tensor *dx)
{
    (void)x;
    (void)y;
    return ct_avgpool2d_backward(ctx, dy, &l->pool, dx);
}

static ct_status gap_setup(ct_layer *l)
{
    ct_status st = CT_SUCCESS;
    char sb[64];
    if (l->in_ndim != 3)
        LAYER_FAIL(l, "needs an image input (C,H,W), got %s",
                   fmt_shape(sb, sizeof sb, l->in_ndim, l->in_shape));
    l->out_ndim = 1;
    l->out_shape[0] = l->in_shape[0];
cleanup:
    return st;
}

static ct_status gap_forward(ct_layer *l, ct_context *ctx, const ct_tensor *x, ct_tensor *y,
                             bool training)
{
    (void)l;
    (void)training;
    return ct_gap_forward(ctx, x, y);
}

static ct_status gap_backward(ct_layer *l, ct_context *ctx, const ct_tensor *x, const ct_tensor *y,
                              const ct_tensor *dy, ct_tensor *dx)
{
    (void)l;
    (void)x;
    (void)y;
    return ct_gap_backward(ctx, dy, dx);
}

/* ---- linear ----------------------------------------------------------------------- */

static ct_status linear_setup(ct_layer *l)
{
    ct_status st = CT_SUCCESS;
    const ct_layer_desc *d = &l->desc;
    char sb[64];
    if (l->in_ndim != 1)
        LAYER_FAIL(l, "needs a feature input (F), got %s; put flatten or gap before it",
                   fmt_shape(sb, sizeof sb, l->in_ndim, l->in_shape));
    if (d->out == 0)
        LAYER_FAIL(l, "out features must be >= 1");
    size_t in = l->in_shape[0];
    l->out_ndim = 1;
    l->out_shape[0] = d->out;
    double bound = 1.0 / sqrt((double)in);
    add_param(l, "weight", 2, (size_t[]){d->out, in}, bound, 0.0f);
    if (d->bias)
        add_param(l, "bias", 1, (size_t[]){d->out}, bound, 0.0f);
cleanup:
    return st;
}

static ct_status linear_forward(ct_layer *l, ct_context *ctx, const ct_tensor *x, ct_tensor *y,
                                bool training)
{
    (void)training;
    return ct_linear_forward(ctx, x, l->param[0], l->nparams > 1 ? l->param[1] : NULL,
                             l->fused_relu, y);
}

static ct_status linear_backward(ct_layer *l, ct_context *ctx, const ct_tensor *x,
                                 const ct_tensor *y, const ct_tensor *dy, ct_tensor *dx)
{
    (void)y;
    return ct_linear_backward(ctx, x, l->param[0], dy, dx, l->grad[0],
                              l->nparams > 1 ? l->grad[1] : NULL);
}

/* ---- activations ------------------------------------------------------------------ */

static ct_status act_setup(ct_layer *l)
{
    switch (l->desc.kind) {
    case CT_LAYER_LEAKY_RELU:
        l->act = CT_ACT_LEAKY_RELU;
        break;
    case CT_LAYER_SIGMOID:
        l->act = CT_ACT_SIGMOID;
        break;
    case CT_LAYER_TANH:
        l->act = CT_ACT_TANH;
        break;
    default:
        l->act = CT_ACT_RELU;
        break;
    }
    same_shape(l);
    return CT_SUCCESS;
}

static ct_status act_forward(ct_layer *l, ct_context *ctx, const ct_tensor *x, ct_tensor *y,
                             bool training)
{
    (void)training;
    if (l->relu_is_fused)
        return CT_SUCCESS; /* done by the conv/linear before it; y is x */
    return ct_act_forward(ctx, l->act, l->desc.negative_slope, x, y);
}

static ct_status act_backward(ct_layer *l, ct_context *ctx, const ct_tensor *x, const ct_tensor *y,
                              const ct_tensor *dy, ct_tensor *dx)
{
    return ct_act_backward(ctx, l->act, l->desc.negative_slope, x, y, dy, dx);
}

/* ---- flatten, dropout ------------------------------------------------------------- */

static ct_status flatten_setup(ct_layer *l)
{
    l->out_ndim = 1;
    l->out_shape[0] = prod(l->in_ndim, l->in_shape);
    return CT_SUCCESS;
}

static ct_status flatten_forward(ct_layer *l, ct_context *ctx, const ct_tensor *x, ct_tensor *y,
                                 bool training)
{
    (void)ctx;
    (void)training;
    if (l->alias_output)
        return CT_SUCCESS; /* y is a reshaped view of x */
    return ct_tensor_copy(y, x);
}

static ct_status flatten_backward(ct_layer *l, ct_context *ctx, const ct_tensor *x,
                                  const ct_tensor *y, const ct_tensor *dy, ct_tensor *dx)
{
    (void)l;
    (void)ctx;
    (void)x;
    (void)y;
    return ct_tensor_copy(dx, dy);
}

static ct_status dropout_setup(ct_layer *l)
{
    ct_status st = CT_SUCCESS;
    if (!(l->desc.p >= 0.0f && l->desc.p < 1.0f))
        LAYER_FAIL(l, "p = %g must be in [0, 1)", (double)l->desc.p);
    same_shape(l);
cleanup:
    return st;
}

static ct_status dropout_forward(ct_layer *l, ct_context *ctx, const ct_tensor *x, ct_tensor *y,
                                 bool training)
{
    if (!training)
        return ct_tensor_copy(y, x);
    return ct_dropout_forward(ctx, x, l->desc.p, l->rng_seed, l->rng_counter, y);
}

static ct_status dropout_backward(ct_layer *l, ct_context *ctx, const ct_tensor *x,
                                  const ct_tensor *y, const ct_tensor *dy, ct_tensor *dx)
{
    (void)x;
    (void)y;
    return ct_dropout_backward(ctx, dy, l->desc.p, l->rng_seed, l->rng_counter, dx);
}

/* ---- batch norm ------------------------------------------------------------------- */

static ct_status bn_setup(ct_layer *l)
{
    ct_status st = CT_SUCCESS;
    const ct_layer_desc *d = &l->desc;
    if (!(d->eps > 0.0f) || !(d->momentum >= 0.0f && d->momentum <= 1.0f))
        LAYER_FAIL(l, "eps must be > 0 and momentum in [0, 1]");
    size_t c = l->in_shape[0];
    same_shape(l);
    if (d->affine) {
        add_param(l, "weight", 1, (size_t[]){c}, 0.0, 1.0f);
        add_param(l, "bias", 1, (size_t[]){c}, 0.0, 0.0f);
    }
    add_buffer(l, "running_mean", 1, (size_t[]){c}, 0.0f);
    add_buffer(l, "running_var", 1, (size_t[]){c}, 1.0f);
    add_buffer(l, "num_batches_tracked", 0, NULL, 0.0f);
cleanup:
    return st;
}

static ct_status bn_forward(ct_layer *l, ct_context *ctx, const ct_tensor *x, ct_tensor *y,
                            bool training)
{
    ct_status st = CT_SUCCESS;
    ct_bn_params p = {l->desc.eps, l->desc.momentum, training};
    const ct_tensor *gamma = l->desc.affine ? l->param[0] : NULL;
    const ct_tensor *beta = l->desc.affine ? l->param[1] : NULL;
    CT_TRY(ct_batchnorm_forward(ctx, x, gamma, beta, l->buffer[0], l->buffer[1], &p, l->save_mean,
                                l->save_invstd, y));
    if (training) {
        l->batches_tracked++;
        CT_TRY(ct_tensor_fill(l->buffer[2], (float)l->batches_tracked));
    }
cleanup:
    return st;
}

static ct_status bn_backward(ct_layer *l, ct_context *ctx, const ct_tensor *x, const ct_tensor *y,
                             const ct_tensor *dy, ct_tensor *dx)
{
    (void)y;
    const ct_tensor *gamma = l->desc.affine ? l->param[0] : NULL;
    return ct_batchnorm_backward(ctx, x, gamma, l->save_mean, l->save_invstd, dy, dx,
                                 l->desc.affine ? l->grad[0] : NULL,
                                 l->desc.affine ? l->grad[1] : NULL);
}

/* ---- softmax ---------------------------------------------------------------------- */

static ct_status softmax_setup(ct_layer *l)
{
    ct_status st = CT_SUCCESS;
    char sb[64];
    if (l->in_ndim != 1)
        LAYER_FAIL(l, "needs a feature input (F), got %s",
                   fmt_shape(sb, sizeof sb, l->in_ndim, l->in_shape));
    same_shape(l);
cleanup:
    return st;
}

static ct_status softmax_forward(ct_layer *l, ct_context *ctx, const ct_tensor *x, ct_tensor *y,
                                 bool training)
{
    (void)training;
    return ct_softmax_forward(ctx, x, l->desc.kind == CT_LAYER_LOG_SOFTMAX, y);
}

/* ---- the table -------------------------------------------------------------------- */

static void layer_free(ct_layer *l)
{
    for (size_t i = 0; i < CT_LAYER_MAX_PARAMS; i++) {
        ct_tensor_free(l->param[i]);
        ct_tensor_free(l->grad[i]);
        l->param[i] = l->grad[i] = NULL;
    }
    for (size_t i = 0; i < CT_LAYER_MAX_BUFFERS; i++) {
        ct_tensor_free(l->buffer[i]);
        l->buffer[i] = NULL;
    }
    ct_tensor_free(l->save_mean);
    ct_tensor_free(l->save_invstd);
    l->save_mean = l->save_invstd = NULL;
}

static const ct_layer_ops layer_ops[CT_LAYER_KIND_COUNT] = {
    [CT_LAYER_CONV2D] = {conv_setup, conv_forward, conv_backward, layer_free},
    [CT_LAYER_MAXPOOL2D] = {pool_setup, maxpool_forward, maxpool_backward, layer_free},
    [CT_LAYER_AVGPOOL2D] = {pool_setup, avgpool_forward, avgpool_backward, layer_free},
    [CT_LAYER_GAP] = {gap_setup, gap_forward, gap_backward, layer_free},
    [CT_LAYER_LINEAR] = {linear_setup, linear_forward, linear_backward, layer_free},
    [CT_LAYER_RELU] = {act_setup, act_forward, act_backward, layer_free},
    [CT_LAYER_LEAKY_RELU] = {act_setup, act_forward, act_backward, layer_free},
    [CT_LAYER_SIGMOID] = {act_setup, act_forward, act_backward, layer_free},
    [CT_LAYER_TANH] = {act_setup, act_forward, act_backward, layer_free},
    [CT_LAYER_FLATTEN] = {flatten_setup, flatten_forward, flatten_backward, layer_free},
    [CT_LAYER_DROPOUT] = {dropout_setup, dropout_forward, dropout_backward, layer_free},
    [CT_LAYER_BATCHNORM] = {bn_setup, bn_forward, bn_backward, layer_free},
    [CT_LAYER_SOFTMAX] = {softmax_setup, softmax_forward, NULL, layer_free},
    [CT_LAYER_LOG_SOFTMAX] = {softmax_setup, softmax_forward, NULL, layer_free},
};

const ct_layer_ops *ct_layer_ops_for(ct_layer_kind kind)
{
    if ((int)kind < 0 || kind >= CT_LAYER_KIND_COUNT)
        return NULL;
    return &layer_ops[kind];
}

ct_status ct_layer_setup(ct_layer *l, const ct_layer_desc *desc, size_t index, size_t in_ndim,
                         const size_t *in_shape)
{
    ct_status st = CT_SUCCESS;
    memset(l, 0, sizeof *l);
    l->ops = ct_layer_ops_for(desc->kind);
    CT_REQUIRE(l->ops != NULL, CT_ERR_INVALID_ARG, "layer %zu: invalid kind %d", index,
               (int)desc->kind);
    CT_REQUIRE(in_ndim == 1 || in_ndim == 3, CT_ERR_SHAPE, "layer %zu: input of %zu dims", index,
               in_ndim);
    l->desc = *desc;
    l->index = index;
    l->in_ndim = in_ndim;
    memcpy(l->in_shape, in_shape, in_ndim * sizeof *in_shape);
    l->grad_mode = CT_GRAD_NEW;
    CT_TRY(l->ops->setup(l));
cleanup:
    return st;
}

/* ---- the model -------------------------------------------------------------------- */

struct ct_model {
    ct_context *ctx;
    ct_layer *layers;
    size_t nlayers;
    size_t in_ndim, in_shape[3];
    bool training;
    uint64_t rng_seed, rng_counter;

    ct_tensor *params, *grads; /* 1-D, param_numel floats; NULL when there are none */
    size_t param_numel;
    const ct_named_slot **pslots; /* every layer's param slots, in order */
    size_t npslots;
    ct_tensor *buffers;
    size_t buffer_numel;
    const ct_named_slot **bslots;
    size_t nbslots;
    size_t first_param_layer; /* nlayers when no layer has parameters */

    /* per batch size: views of buffers made for the largest batch so far (cap; gcap, the
     * largest training batch, for the gradient buffers, which evaluation does not need) */
    size_t batch, cap, gcap;
    bool gviews; /* gin and gout made for this batch */
    ct_tensor *arena;
    ct_tensor **act; /* nlayers outputs */
    ct_tensor *gbuf[2];
    ct_tensor **gin; /* per layer: gradient w.r.t. its input, where plan_grad_buffers put it */
    ct_tensor *gout; /* the caller's output gradient copied, when the last layer's backward
                      * works in place (in gbuf[0]) */

    /* backward state of the last forward */
    const ct_tensor *x;
    bool can_backward;
};

/* The per-batch views (m->batch), keeping the buffers they view. */
static void free_views(ct_model *m)
{
    if (m->gin)
        for (size_t i = 0; i < m->nlayers; i++)
            ct_tensor_free(m->gin[i]);
    free(m->gin);
    m->gin = NULL;
    ct_tensor_free(m->gout);
    m->gout = NULL;
    for (size_t i = 0; i < m->nlayers; i++) {
        ct_tensor_free(m->layers[i].pool_idx);
        m->layers[i].pool_idx = NULL;
    }
    /* aliases are views of earlier outputs: free from the last layer down */
    if (m->act)
        for (size_t i = m->nlayers; i-- > 0;)
            ct_tensor_free(m->act[i]);
    free(m->act);
    m->act = NULL;
    m->batch = 0;
    m->gviews = false;
    m->can_backward = false;
}

static void free_grad_buffers(ct_model *m)
{
    for (size_t b = 0; b < 2; b++) {
        ct_tensor_free(m->gbuf[b]);
        m->gbuf[b] = NULL;
    }
    m->gcap = 0;
}

/* The views and the buffers. */
static void free_batch(ct_model *m)
{
    free_views(m);
    free_grad_buffers(m);
    ct_tensor_free(m->arena);
    m->arena = NULL;
    m->cap = 0;
}

/* Floats holding one argmax byte per pooled element of a pool-fused conv at batch n. */
static size_t idx_floats(const ct_model *m, const ct_layer *l, size_t n)
{
    const ct_layer *pool = &m->layers[l->pool_end];
    return (n * prod(pool->out_ndim, pool->out_shape) + sizeof(float) - 1) / sizeof(float);
}

/* The conv that starts the fused block layer i belongs to. */
static size_t block_conv(const ct_model *m, size_t i)
{
    while (!m->layers[i].pool_fused)
        i--;
    return i;
}

static size_t in_numel(const ct_layer *l, size_t n)
{
    return n * prod(l->in_ndim, l->in_shape);
}

/* The walk ct_model_backward makes, once per batch size: which gradient buffer holds
 * each layer's input gradient (where[i]; -1 where none is made) and the floats each
 * buffer needs, the largest gradient placed in it. The output gradient starts in the
 * caller's dy, or in gbuf[0] when the last layer works in place on it; a layer that
 * makes a new gradient writes it to the other buffer, an in-place or reshape-only one
 * leaves it where it is. */
static void plan_grad_buffers(const ct_model *m, size_t n, int *where, size_t need[2])
{
    need[0] = need[1] = 0;
    for (size_t i = 0; i < m->nlayers; i++)
        where[i] = -1;
    if (m->first_param_layer == m->nlayers)
        return;
    const ct_layer *last = &m->layers[m->nlayers - 1];
    int b = -1;
    if (last->grad_mode != CT_GRAD_NEW) {
        b = 0;
        need[0] = n * prod(last->out_ndim, last->out_shape);
    }
    for (size_t i = m->nlayers; i-- > m->first_param_layer;) {
        size_t at = m->layers[i].in_pool_block ? block_conv(m, i) : i;
        ct_grad_mode mode = m->layers[i].in_pool_block ? CT_GRAD_NEW : m->layers[i].grad_mode;
        if (at == m->first_param_layer && mode != CT_GRAD_SKIP)
            break; /* the first layer with parameters needs no input gradient */
        if (mode == CT_GRAD_NEW)
            b = b == 0 ? 1 : 0;
        where[at] = b;
        size_t numel = in_numel(&m->layers[at], n);
        need[b] = numel > need[b] ? numel : need[b];
        i = at;
    }
}

/* The per-batch tensors for batch n: views of the arena (layer outputs, argmax bytes), made
 * anew only when n exceeds the batch it was made for (a last, smaller batch of an epoch
 * or an evaluation batch then costs no reallocation, and the next full batch none
 * either), as the trainer's loss buffers do. A training forward adds the gradient views
 * (grad_views). */
static ct_status alloc_batch(ct_model *m, size_t n)
{
    ct_status st = CT_SUCCESS;
    size_t shape[CT_MAX_DIMS];

    free_views(m);
    if (n > m->cap) {
        size_t arena = 0;
        ct_tensor_free(m->arena);
        m->arena = NULL;
        m->cap = 0;
        for (size_t i = 0; i < m->nlayers; i++) {
            const ct_layer *l = &m->layers[i];
            if (l->pool_fused)
                arena += idx_floats(m, l, n);
            else if (l->in_pool_block ? l->desc.kind == CT_LAYER_MAXPOOL2D : !l->alias_output)
                arena += n * prod(l->out_ndim, l->out_shape);
        }
        if (arena)
            CT_TRY(ct_tensor_create(m->ctx, 1, (size_t[]){arena}, &m->arena));
        m->cap = n;
    }
    m->act = calloc(m->nlayers, sizeof *m->act);
    CT_REQUIRE(m->act, CT_ERR_OUT_OF_MEMORY, "out of host memory");

    size_t off = 0;
    for (size_t i = 0; i < m->nlayers; i++) {
        ct_layer *l = &m->layers[i];
        shape[0] = n;
        memcpy(shape + 1, l->out_shape, l->out_ndim * sizeof *shape);
        if (l->pool_fused) {
            /* the conv's output is never stored: its argmax bytes take its place */
            size_t f = idx_floats(m, l, n);
            CT_TRY(ct_tensor_view(m->arena, off, 1, &f, &l->pool_idx));
            off += f;
            continue;
        }
        if (l->in_pool_block) {
            /* the block's ReLU has no tensors; its pool has its output but no input
             * gradient (the conv's output and its gradient never exist) */
            if (l->desc.kind == CT_LAYER_MAXPOOL2D) {
                CT_TRY(ct_tensor_view(m->arena, off, l->out_ndim + 1, shape, &m->act[i]));
                off += n * prod(l->out_ndim, l->out_shape);
            }
            continue;
        }
        if (l->alias_output) {
            CT_TRY(ct_tensor_view(m->act[i - 1], 0, l->out_ndim + 1, shape, &m->act[i]));
        } else {
            CT_TRY(ct_tensor_view(m->arena, off, l->out_ndim + 1, shape, &m->act[i]));
            off += n * prod(l->out_ndim, l->out_shape);
        }
    }
    m->batch = n;
cleanup:
    if (st != CT_SUCCESS)
        free_batch(m);
    return st;
}

/* The input-gradient views for the current batch (a training forward's), in gradient
 * buffers made anew only when the batch exceeds the largest training batch so far. */
static ct_status grad_views(ct_model *m)
{
    ct_status st = CT_SUCCESS;
    size_t need[2], shape[CT_MAX_DIMS], n = m->batch;
    int *where = malloc(m->nlayers * sizeof *where);
    m->gin = calloc(m->nlayers, sizeof *m->gin);
    CT_REQUIRE(where && m->gin, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    plan_grad_buffers(m, n, where, need);
    if (n > m->gcap) {
        free_grad_buffers(m);
        for (size_t b = 0; b < 2; b++)
            if (need[b])
                CT_TRY(ct_tensor_create(m->ctx, 1, (size_t[]){need[b]}, &m->gbuf[b]));
        m->gcap = n;
    }
    for (size_t i = 0; i < m->nlayers; i++) {
        const ct_layer *l = &m->layers[i];
        if (where[i] < 0)
            continue;
        shape[0] = n;
        memcpy(shape + 1, l->in_shape, l->in_ndim * sizeof *shape);
        CT_TRY(ct_tensor_view(m->gbuf[where[i]], 0, l->in_ndim + 1, shape, &m->gin[i]));
    }
    const ct_layer *last = &m->layers[m->nlayers - 1];
    if (m->first_param_layer < m->nlayers && last->grad_mode != CT_GRAD_NEW) {
        shape[0] = n;
        memcpy(shape + 1, last->out_shape, last->out_ndim * sizeof *shape);
        CT_TRY(ct_tensor_view(m->gbuf[0], 0, last->out_ndim + 1, shape, &m->gout));
    }
    m->gviews = true;
cleanup:
    free(where);
    if (st != CT_SUCCESS)
        free_batch(m);
    return st;
}

void ct_model_free(ct_model *m)
{
    if (!m)
        return;
    free_batch(m);
    if (m->layers)
        for (size_t i = 0; i < m->nlayers; i++)
            if (m->layers[i].ops)
                m->layers[i].ops->free(&m->layers[i]);
    ct_tensor_free(m->params);
    ct_tensor_free(m->grads);
    ct_tensor_free(m->buffers);
    free(m->pslots);
    free(m->bslots);
    free(m->layers);
    free(m);
}

/* Decides fusion and how each layer's backward uses the gradient buffers. */
static void plan_fusion(ct_model *m)
{
    for (size_t i = 0; i < m->nlayers; i++) {
        ct_layer *l = &m->layers[i];
        ct_layer *prev = i > 0 ? &m->layers[i - 1] : NULL;
        ct_layer *next = i + 1 < m->nlayers ? &m->layers[i + 1] : NULL;
        if (l->desc.kind == CT_LAYER_RELU) {
            if (prev &&
                (prev->desc.kind == CT_LAYER_CONV2D || prev->desc.kind == CT_LAYER_LINEAR)) {
                prev->fused_relu = true;
                l->relu_is_fused = true;
                l->alias_output = true;
                l->grad_mode = CT_GRAD_INPLACE;
            }
            if (next && next->desc.kind == CT_LAYER_MAXPOOL2D) {
                next->relu_in = true;
                l->grad_mode = CT_GRAD_SKIP;
            }
        } else if (l->desc.kind == CT_LAYER_FLATTEN) {
            /* the first layer's input is the caller's tensor: copy instead of aliasing */
            l->alias_output = i > 0;
            l->grad_mode = CT_GRAD_SKIP;
        }
    }
    /* conv [-> relu] -> maxpool 2x2/2 as one op */
    for (size_t i = 0; i + 1 < m->nlayers; i++) {
        ct_layer *l = &m->layers[i];
        if (l->desc.kind != CT_LAYER_CONV2D)
            continue;
        size_t end = i + 1 + (l->fused_relu ? 1 : 0);
        if (end >= m->nlayers)
            continue;
        const ct_layer *pool = &m->layers[end];
        if (pool->desc.kind != CT_LAYER_MAXPOOL2D ||
            !ct_pool2d_is_2x2(&pool->pool, pool->in_shape[1], pool->in_shape[2]) ||
            !ct_conv2d_pool_fusable(m->ctx, l->in_shape, l->desc.out, l->desc.kernel_h,
                                    l->desc.kernel_w, &l->conv) ||
            ct_conv2d_forward_as_gemm(m->ctx, l->in_shape, l->desc.out, l->desc.kernel_h,
                                      l->desc.kernel_w, &l->conv))
            continue;
        l->pool_fused = true;
        l->pool_end = end;
        for (size_t j = i + 1; j <= end; j++)
            m->layers[j].in_pool_block = true;
        i = end;
    }
}

ct_status ct_model_create(ct_context *ctx, const ct_layer_desc *layers, size_t count,
                          size_t in_ndim, const size_t *in_shape, uint64_t seed, ct_model **out)
{
    ct_status st = CT_SUCCESS;
    ct_model *m = NULL;
    size_t ndim, shape[3];

    CT_REQUIRE(out != NULL, CT_ERR_INVALID_ARG, "ct_model_create: out is NULL");
    *out = NULL;
    CT_REQUIRE(ctx != NULL, CT_ERR_INVALID_ARG, "ct_model_create: ctx is NULL");
    CT_TRY(ct_layers_check(layers, count, in_ndim, in_shape, NULL, NULL, NULL));

    m = calloc(1, sizeof *m);
    CT_REQUIRE(m != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    m->ctx = ctx;
    m->training = true;
    m->rng_seed = seed;
    m->in_ndim = in_ndim;
    memcpy(m->in_shape, in_shape, in_ndim * sizeof *in_shape);
    m->layers = calloc(count, sizeof *m->layers);
    CT_REQUIRE(m->layers != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    m->nlayers = count;

    /* shapes, and the offsets of every parameter and buffer in the flat tensors */
    ndim = in_ndim;
    memcpy(shape, in_shape, in_ndim * sizeof *shape);
    m->first_param_layer = count;
    size_t np = 0, nb = 0;
    for (size_t i = 0; i < count; i++) {
        ct_layer *l = &m->layers[i];
        CT_TRY(ct_layer_setup(l, &layers[i], i, ndim, shape));
        for (size_t j = 0; j < l->nparams; j++) {
            l->param_slot[j].offset = m->param_numel;
            m->param_numel += l->param_slot[j].numel;
        }
        for (size_t j = 0; j < l->nbuffers; j++) {
            l->buffer_slot[j].offset = m->buffer_numel;
            m->buffer_numel += l->buffer_slot[j].numel;
        }
        if (l->nparams && m->first_param_layer == count)
            m->first_param_layer = i;
        np += l->nparams;
        nb += l->nbuffers;
        ndim = l->out_ndim;
        memcpy(shape, l->out_shape, sizeof shape);
    }
    plan_fusion(m);

    m->pslots = calloc(np ? np : 1, sizeof *m->pslots);
    m->bslots = calloc(nb ? nb : 1, sizeof *m->bslots);
    CT_REQUIRE(m->pslots && m->bslots, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    if (m->param_numel) {
        CT_TRY(ct_tensor_create(ctx, 1, (size_t[]){m->param_numel}, &m->params));
        CT_TRY(ct_tensor_zeros(ctx, 1, (size_t[]){m->param_numel}, &m->grads));
    }
    if (m->buffer_numel)
        CT_TRY(ct_tensor_create(ctx, 1, (size_t[]){m->buffer_numel}, &m->buffers));
    for (size_t i = 0; i < count; i++) {
        ct_layer *l = &m->layers[i];
        for (size_t j = 0; j < l->nparams; j++) {
            const ct_named_slot *s = &l->param_slot[j];
            m->pslots[m->npslots++] = s;
            CT_TRY(ct_tensor_view(m->params, s->offset, s->ndim, s->shape, &l->param[j]));
            CT_TRY(ct_tensor_view(m->grads, s->offset, s->ndim, s->shape, &l->grad[j]));
        }
        for (size_t j = 0; j < l->nbuffers; j++) {
            const ct_named_slot *s = &l->buffer_slot[j];
            m->bslots[m->nbslots++] = s;
            size_t one = 1;
            CT_TRY(ct_tensor_view(m->buffers, s->offset, s->ndim ? s->ndim : 1,
                                  s->ndim ? s->shape : &one, &l->buffer[j]));
        }
        if (l->desc.kind == CT_LAYER_BATCHNORM) {
            CT_TRY(ct_tensor_create(ctx, 1, l->in_shape, &l->save_mean));
            CT_TRY(ct_tensor_create(ctx, 1, l->in_shape, &l->save_invstd));
        }
    }
    CT_TRY(ct_model_init_params(m, seed));
    *out = m;
    m = NULL;
cleanup:
    ct_model_free(m);
    return st;
}

ct_status ct_model_create_spec(ct_context *ctx, const char *spec, size_t in_ndim,
                               const size_t *in_shape, uint64_t seed, ct_model **out)
{
    ct_status st = CT_SUCCESS;
    ct_layer_desc *layers = NULL;
    size_t n = 0;
    CT_REQUIRE(out != NULL, CT_ERR_INVALID_ARG, "ct_model_create_spec: out is NULL");
    *out = NULL;
    CT_TRY(ct_spec_parse(spec, &layers, &n));
    CT_TRY(ct_model_create(ctx, layers, n, in_ndim, in_shape, seed, out));
cleanup:
    free(layers);
    return st;
}

ct_status ct_model_init_params(ct_model *m, uint64_t seed)
{
    ct_status st = CT_SUCCESS;
    float *host = NULL;
    ct_init_rng rng = {seed};
    CT_REQUIRE(m != NULL, CT_ERR_INVALID_ARG, "ct_model_init_params: model is NULL");
    size_t n = m->param_numel > m->buffer_numel ? m->param_numel : m->buffer_numel;
    host = malloc((n ? n : 1) * sizeof *host);
    CT_REQUIRE(host != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    for (size_t i = 0; i < m->nlayers; i++) {
        ct_layer *l = &m->layers[i];
        for (size_t j = 0; j < l->nparams; j++)
            ct_init_fill(host + l->param_slot[j].offset, l->param_slot[j].numel, l->init_bound[j],
                         l->init_value[j], &rng);
    }
    if (m->param_numel)
        CT_TRY(ct_tensor_upload(m->params, host, m->param_numel));
    for (size_t i = 0; i < m->nlayers; i++) {
        ct_layer *l = &m->layers[i];
        for (size_t j = 0; j < l->nbuffers; j++)
            ct_init_fill(host + l->buffer_slot[j].offset, l->buffer_slot[j].numel, 0.0,
                         l->buffer_init[j], &rng);
        l->batches_tracked = 0;
    }
    if (m->buffer_numel)
        CT_TRY(ct_tensor_upload(m->buffers, host, m->buffer_numel));
cleanup:
    free(host);
    return st;
}

void ct_model_set_training(ct_model *m, bool training)
{
    if (m)
        m->training = training;
}

bool ct_model_training(const ct_model *m)
{
    return m && m->training;
}

ct_status ct_model_zero_grad(ct_model *m)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(m != NULL, CT_ERR_INVALID_ARG, "ct_model_zero_grad: model is NULL");
    if (m->grads)
        CT_TRY(ct_tensor_fill(m->grads, 0.0f));
cleanup:
    return st;
}

ct_status ct_model_forward(ct_model *m, const ct_tensor *x, ct_tensor **y)
{
    ct_status st = CT_SUCCESS;
    char got[64], want[64];
    CT_REQUIRE(m != NULL && x != NULL && y != NULL, CT_ERR_INVALID_ARG,
               "ct_model_forward: NULL argument");
    *y = NULL;
    m->can_backward = false;
    bool ok = x->ndim == m->in_ndim + 1 && x->shape[0] >= 1;
    for (size_t i = 0; ok && i < m->in_ndim; i++)
        ok = x->shape[i + 1] == m->in_shape[i];
    CT_REQUIRE(ok, CT_ERR_SHAPE, "model forward: input x is %s, expected (N,%s",
               fmt_shape(got, sizeof got, x->ndim, x->shape),
               fmt_shape(want, sizeof want, m->in_ndim, m->in_shape) + 1);
    CT_REQUIRE(x->ctx == m->ctx, CT_ERR_INVALID_ARG, "model forward: x is on another context");
    if (m->batch != x->shape[0])
        CT_TRY(alloc_batch(m, x->shape[0]));
    if (m->training && !m->gviews)
        CT_TRY(grad_views(m));

    for (size_t i = 0; i < m->nlayers; i++) {
        ct_layer *l = &m->layers[i];
        const ct_tensor *in = i ? m->act[i - 1] : x;
        if (l->desc.kind == CT_LAYER_DROPOUT && m->training) {
            l->rng_seed = m->rng_seed;
            l->rng_counter = m->rng_counter++;
        }
        if (l->pool_fused) {
            st = ct_conv2d_pool_forward(
                m->ctx, in, l->param[0], l->nparams > 1 ? l->param[1] : NULL, &l->conv,
                l->fused_relu, m->act[l->pool_end], m->training ? l->pool_idx : NULL);
            if (st != CT_SUCCESS) {
                ct_error_prefix("layers %zu-%zu (conv2d+maxpool) forward", l->index, l->pool_end);
                goto cleanup;
            }
            i = l->pool_end;
            continue;
        }
        st = l->ops->forward(l, m->ctx, in, m->act[i], m->training);
        if (st != CT_SUCCESS) {
            ct_error_prefix("layer %zu (%s) forward", l->index, ct_layer_kind_name(l->desc.kind));
            goto cleanup;
        }
    }
    m->x = x;
    m->can_backward = m->training;
    *y = m->act[m->nlayers - 1];
cleanup:
    return st;
}

ct_status ct_model_backward(ct_model *m, const ct_tensor *dy)
{
    ct_status st = CT_SUCCESS;
    char got[64], want[64];
    CT_REQUIRE(m != NULL && dy != NULL, CT_ERR_INVALID_ARG, "ct_model_backward: NULL argument");
    CT_REQUIRE(m->can_backward, CT_ERR_INVALID_ARG,
               "model backward: needs a train-mode forward first (the last forward was %s)",
               m->batch ? "in eval mode or failed" : "never run");
    const ct_tensor *out = m->act[m->nlayers - 1];
    bool ok = dy->ndim == out->ndim;
    for (size_t i = 0; ok && i < out->ndim; i++)
        ok = dy->shape[i] == out->shape[i];
    CT_REQUIRE(ok, CT_ERR_SHAPE, "model backward: dy is %s, the output is %s",
               fmt_shape(got, sizeof got, dy->ndim, dy->shape),
               fmt_shape(want, sizeof want, out->ndim, out->shape));
    if (m->first_param_layer == m->nlayers)
        goto cleanup; /* nothing to differentiate */

    /* the gradient flowing down: the caller's dy, or its copy for an in-place last layer;
     * each layer's input gradient where plan_grad_buffers put it */
    const ct_tensor *cur = dy;
    if (m->gout) {
        CT_TRY(ct_tensor_copy(m->gout, dy));
        cur = m->gout;
    }
    for (size_t i = m->nlayers; i-- > m->first_param_layer;) {
        ct_layer *l = &m->layers[i];
        const ct_tensor *x = i ? m->act[i - 1] : m->x;
        bool need_dx = i > m->first_param_layer;
        ct_tensor *dx = NULL;
        CT_REQUIRE(l->ops->backward != NULL, CT_ERR_UNSUPPORTED,
                   "layer %zu (%s) has no backward (inference only)", l->index,
                   ct_layer_kind_name(l->desc.kind));
        if (l->in_pool_block) {
            /* the top of a conv [+ relu] + maxpool block: its conv does all of it */
            size_t c = block_conv(m, i);
            ct_layer *conv = &m->layers[c];
            dx = c > m->first_param_layer ? m->gin[c] : NULL;
            st = ct_conv2d_pool_backward(m->ctx, c ? m->act[c - 1] : m->x, conv->param[0], cur,
                                         m->act[i], conv->pool_idx, &conv->conv, conv->fused_relu,
                                         dx, conv->grad[0],
                                         conv->nparams > 1 ? conv->grad[1] : NULL);
            if (st != CT_SUCCESS) {
                ct_error_prefix("layers %zu-%zu (conv2d+maxpool) backward", conv->index, i);
                goto cleanup;
            }
            cur = dx;
            i = c;
            continue;
        }
        if (l->grad_mode == CT_GRAD_SKIP) {
            cur = m->gin[i];
            continue;
        }
        if (l->grad_mode == CT_GRAD_INPLACE && !need_dx)
            break;
        if (need_dx)
            dx = m->gin[i];
        st = l->ops->backward(l, m->ctx, x, m->act[i], cur, dx);
        if (st != CT_SUCCESS) {
            ct_error_prefix("layer %zu (%s) backward", l->index, ct_layer_kind_name(l->desc.kind));
            goto cleanup;
        }
        cur = dx;
    }
cleanup:
    return st;
}

/* ---- parameters, buffers, queries -------------------------------------------------- */

ct_tensor *ct_model_params(ct_model *m)
{
    return m ? m->params : NULL;
}

ct_tensor *ct_model_grads(ct_model *m)
{
    return m ? m->grads : NULL;
}

size_t ct_model_param_numel(const ct_model *m)
{
    return m ? m->param_numel : 0;
}

size_t ct_model_param_count(const ct_model *m)
{
    return m ? m->npslots : 0;
}

static ct_status slot_info(const ct_named_slot *const *slots, size_t count, size_t i,
                           const char *what, const char **name, size_t *ndim, size_t *shape,
                           size_t *offset)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(i < count, CT_ERR_INVALID_ARG, "%s %zu does not exist (the model has %zu)", what, i,
               count);
    const ct_named_slot *s = slots[i];
    if (name)
        *name = s->name;
    if (ndim)
        *ndim = s->ndim;
    if (shape)
        memcpy(shape, s->shape, s->ndim * sizeof *shape);
    if (offset)
        *offset = s->offset;
cleanup:
    return st;
}

ct_status ct_model_param_info(const ct_model *m, size_t i, const char **name, size_t *ndim,
                              size_t *shape, size_t *offset)
{
    if (!m)
        return ct_error_set(CT_ERR_INVALID_ARG, __FILE__, __LINE__, "model is NULL");
    return slot_info(m->pslots, m->npslots, i, "parameter", name, ndim, shape, offset);
}

size_t ct_model_buffer_count(const ct_model *m)
{
    return m ? m->nbslots : 0;
}

size_t ct_model_buffer_numel(const ct_model *m)
{
    return m ? m->buffer_numel : 0;
}

ct_status ct_model_buffer_info(const ct_model *m, size_t i, const char **name, size_t *ndim,
                               size_t *shape, size_t *offset)
{
    if (!m)
        return ct_error_set(CT_ERR_INVALID_ARG, __FILE__, __LINE__, "model is NULL");
    return slot_info(m->bslots, m->nbslots, i, "buffer", name, ndim, shape, offset);
}

ct_tensor *ct_model_buffers(ct_model *m)
{
    return m ? m->buffers : NULL;
}

static ct_status copy_flat(ct_tensor *t, size_t numel, float *host, const float *src, size_t n,
                           const char *what)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(n == numel, CT_ERR_SHAPE, "model %s: got %zu floats, the model has %zu", what, n,
               numel);
    if (numel == 0)
        goto cleanup;
    CT_REQUIRE(host != NULL || src != NULL, CT_ERR_INVALID_ARG, "model %s: NULL array", what);
    if (src)
        CT_TRY(ct_tensor_upload(t, src, n));
    else
        CT_TRY(ct_tensor_download(t, host, n));
cleanup:
    return st;
}

ct_status ct_model_set_params(ct_model *m, const float *host, size_t n)
{
    if (!m || !host)
        return ct_error_set(CT_ERR_INVALID_ARG, __FILE__, __LINE__, "set_params: NULL argument");
    return copy_flat(m->params, m->param_numel, NULL, host, n, "set_params");
}

ct_status ct_model_get_params(ct_model *m, float *host, size_t n)
{
    if (!m || !host)
        return ct_error_set(CT_ERR_INVALID_ARG, __FILE__, __LINE__, "get_params: NULL argument");
    return copy_flat(m->params, m->param_numel, host, NULL, n, "get_params");
}

ct_status ct_model_set_buffers(ct_model *m, const float *host, size_t n)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(m != NULL && (host != NULL || n == 0), CT_ERR_INVALID_ARG,
               "set_buffers: NULL argument");
    CT_TRY(copy_flat(m->buffers, m->buffer_numel, NULL, host, n, "set_buffers"));
    for (size_t i = 0; i < m->nlayers; i++) {
        ct_layer *l = &m->layers[i];
        if (l->desc.kind == CT_LAYER_BATCHNORM) {
            float v = host[l->buffer_slot[2].offset];
            CT_REQUIRE(v >= 0.0f && v == floorf(v), CT_ERR_INVALID_ARG,
                       "set_buffers: %s = %g is not a count", l->buffer_slot[2].name, (double)v);
            l->batches_tracked = (uint64_t)v;
        }
    }
cleanup:
    return st;
}

ct_status ct_model_get_buffers(ct_model *m, float *host, size_t n)
{
    if (!m || (!host && n))
        return ct_error_set(CT_ERR_INVALID_ARG, __FILE__, __LINE__, "get_buffers: NULL argument");
    return copy_flat(m->buffers, m->buffer_numel, host, NULL, n, "get_buffers");
}

void ct_model_get_rng(const ct_model *m, uint64_t *seed, uint64_t *counter)
{
    if (!m)
        return;
    if (seed)
        *seed = m->rng_seed;
    if (counter)
        *counter = m->rng_counter;
}

void ct_model_set_rng(ct_model *m, uint64_t seed, uint64_t counter)
{
    if (!m)
        return;
    m->rng_seed = seed;
    m->rng_counter = counter;
}

void ct_model_input_shape(const ct_model *m, size_t *ndim, size_t *shape)
{
    if (!m)
        return;
    if (ndim)
        *ndim = m->in_ndim;
    if (shape)
        memcpy(shape, m->in_shape, m->in_ndim * sizeof *shape);
}

void ct_model_output_shape(const ct_model *m, size_t *ndim, size_t *shape)
{
    if (!m)
        return;
    const ct_layer *l = &m->layers[m->nlayers - 1];
    if (ndim)
        *ndim = l->out_ndim;
    if (shape)
        memcpy(shape, l->out_shape, l->out_ndim * sizeof *shape);
}

size_t ct_model_layer_count(const ct_model *m)
{
    return m ? m->nlayers : 0;
}

ct_status ct_model_layer_describe(const ct_model *m, size_t i, char *buf, size_t cap)
{
    ct_status st = CT_SUCCESS;
    char sb[64], args[160] = "";
    CT_REQUIRE(m != NULL && buf != NULL && cap > 0, CT_ERR_INVALID_ARG,
               "layer_describe: NULL argument");
    CT_REQUIRE(i < m->nlayers, CT_ERR_INVALID_ARG, "layer %zu does not exist (the model has %zu)",
               i, m->nlayers);
    const ct_layer *l = &m->layers[i];
    const ct_layer_desc *d = &l->desc;
    switch (d->kind) {
    case CT_LAYER_CONV2D:
        snprintf(args, sizeof args, "(%zu->%zu, %zux%zu, stride %zux%zu, pad %zux%zu%s%s)%s%s",
                 l->in_shape[0], d->out, d->kernel_h, d->kernel_w, d->stride_h, d->stride_w,
                 d->pad_h, d->pad_w, d->dil_h * d->dil_w > 1 ? ", dilated" : "",
                 d->groups > 1 ? ", grouped" : "", l->fused_relu ? " +relu" : "",
                 l->pool_fused ? " +maxpool" : "");
        break;
    case CT_LAYER_MAXPOOL2D:
    case CT_LAYER_AVGPOOL2D:
        snprintf(args, sizeof args, "(%zux%zu, stride %zux%zu, pad %zux%zu)%s", l->pool.kernel_h,
                 l->pool.kernel_w, l->pool.stride_h, l->pool.stride_w, l->pool.pad_h, l->pool.pad_w,
                 l->in_pool_block ? " (fused)" : "");
        break;
    case CT_LAYER_LINEAR:
        snprintf(args, sizeof args, "(%zu->%zu)%s", l->in_shape[0], d->out,
                 l->fused_relu ? " +relu" : "");
        break;
    case CT_LAYER_RELU:
        snprintf(args, sizeof args, "%s", l->relu_is_fused ? " (fused)" : "");
        break;
    case CT_LAYER_LEAKY_RELU:
        snprintf(args, sizeof args, "(%g)", (double)d->negative_slope);
        break;
    case CT_LAYER_DROPOUT:
        snprintf(args, sizeof args, "(p=%g)", (double)d->p);
        break;
    case CT_LAYER_BATCHNORM:
        snprintf(args, sizeof args, "%s(%zu)", l->in_ndim == 3 ? "2d" : "1d", l->in_shape[0]);
        break;
    default:
        break;
    }
    size_t np = 0;
    for (size_t j = 0; j < l->nparams; j++)
        np += l->param_slot[j].numel;
    snprintf(buf, cap, "%zu %s%s -> %s, %zu params", l->index, ct_layer_kind_name(d->kind), args,
             fmt_shape(sb, sizeof sb, l->out_ndim, l->out_shape), np);
cleanup:
    return st;
}

ct_status ct_model_layer_desc(const ct_model *m, size_t i, ct_layer_desc *out)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(m != NULL && out != NULL, CT_ERR_INVALID_ARG, "layer_desc: NULL argument");
    CT_REQUIRE(i < m->nlayers, CT_ERR_INVALID_ARG, "layer %zu does not exist (the model has %zu)",
               i, m->nlayers);
    *out = m->layers[i].desc;
cleanup:
    return st;
}

void ct_model_batch_memory(const ct_model *m, size_t *saved, size_t *grads)
{
    if (saved)
        *saved = m && m->arena ? ct_tensor_numel(m->arena) * sizeof(float) : 0;
    if (grads) {
        *grads = 0;
        for (size_t b = 0; m && b < 2; b++)
            *grads += m->gbuf[b] ? ct_tensor_numel(m->gbuf[b]) * sizeof(float) : 0;
    }
}
