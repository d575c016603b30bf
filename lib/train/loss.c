/* lib/train/loss.c — the host side of the losses: options, shape checks, launches.
 *
 * The kernels and the work split are described in kernels/loss.cl; the semantics in
 * include/cltrain/loss.h. Each call is one launch, plus a second when the problem needs
 * more than one work-group and a reduced value (see loss_groups()).
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cltrain/loss.h"
#include "core/internal.h"

/* ct_loss_options.init of options made by ct_loss_options_default(). */
#define LOSS_INIT_MARK 0x4c6f7373u /* "Loss" */

/* Largest work-group count of a launch. More groups than this only add partial sums:
 * 256 groups of 64 work-items already fill a large GPU, and the grid-stride loops take
 * any size. */
#define LOSS_GMAX 256
/* Work per work-item before a second group is started: (N, C) rows for the class
 * losses, elements for the others. With 64 work-items per group, one group (and one
 * launch) serves up to 512 rows (N = 512 at C = 10) or 4096 elements. */
#define LOSS_ROWS_PER_ITEM 8
#define LOSS_ELEMS_PER_ITEM 64

/* Flags and codes of kernels/loss.cl, handed to it as -D options from here. */
enum {
    LF_GRAD = 1u << 0,
    LF_OUT = 1u << 1,
    LF_NONE = 1u << 2,
    LF_MEAN = 1u << 3,
    LF_WDENOM = 1u << 4,
    LF_FINAL = 1u << 5,
    LF_GO_ROW = 1u << 6,
    LF_GO_ONE = 1u << 7,
    LF_WEIGHT = 1u << 8,
    LF_POSW = 1u << 9,
    LF_SOFT = 1u << 10,
    LF_NLL = 1u << 11
};
enum { RK_MSE, RK_L1, RK_SMOOTH_L1, RK_HUBER };

/* status words on the device: error bits, first bad index, suspicious rows */
#define LOSS_STATUS_WORDS 3

struct ct_loss {
    ct_context *ctx;
    ct_loss_options o; /* weight pointers cleared: the data lives in the buffers below */
    cl_mem weight;     /* weight_count floats, or NULL */
    size_t weight_count;
    cl_mem pos_weight;
    size_t pos_weight_count;
    cl_mem status; /* LOSS_STATUS_WORDS uints */
    cl_mem part;   /* 2 * LOSS_GMAX floats of per-group partial sums */
    unsigned wg;   /* work-group size: 64, or the device's maximum if smaller */
    char options[320];
    size_t rows;    /* positions / elements since the last check */
    size_t classes; /* C of the last class-loss call, for messages */
};

/* What one call works on. */
typedef struct loss_geom {
    size_t n;          /* input elements */
    size_t N, C, S, P; /* class losses: batch, classes, positions per sample, N*S */
    bool soft;         /* CE with class-probability targets */
    size_t out_ndim, out_shape[CT_MAX_DIMS], out_numel;
    unsigned d[4];        /* BCE: input shape padded to 4 dims from the left */
    unsigned ws[4], ps[4]; /* BCE: element strides of weight / pos_weight (0: broadcast) */
} loss_geom;

static bool loss_is_class(ct_loss_kind k)
{
    return k == CT_LOSS_CROSS_ENTROPY || k == CT_LOSS_NLL;
}

static const char *loss_kind_name(ct_loss_kind k)
{
    switch (k) {
    case CT_LOSS_CROSS_ENTROPY: return "cross_entropy";
    case CT_LOSS_BCE_WITH_LOGITS: return "bce_with_logits";
    case CT_LOSS_MSE: return "mse";
    case CT_LOSS_NLL: return "nll";
    case CT_LOSS_L1: return "l1";
    case CT_LOSS_SMOOTH_L1: return "smooth_l1";
    case CT_LOSS_HUBER: return "huber";
    }
    return "?";
}

ct_loss_options ct_loss_options_default(ct_loss_kind kind)
{
    ct_loss_options o;
    memset(&o, 0, sizeof o);
    o.init = LOSS_INIT_MARK;
    o.kind = kind;
    o.reduction = CT_REDUCTION_MEAN;
    o.ignore_index = -100;
    o.label_smoothing = 0.0f;
    o.beta = 1.0f;
    o.delta = 1.0f;
    return o;
}

/* Uploads `count` floats of `host` to a new buffer (blocking). */
static ct_status loss_upload(ct_context *ctx, const float *host, size_t count, cl_mem *out)
{
    ct_status st = CT_SUCCESS;
    cl_mem m = NULL;
    CT_TRY(ct_buffer_alloc(ctx, count * sizeof(float), &m));
    CT_CL(clEnqueueWriteBuffer(ctx->queue, m, CL_TRUE, 0, count * sizeof(float), host, 0, NULL,
                               NULL));
    *out = m;
    m = NULL;
cleanup:
    if (m)
        ct_buffer_free(ctx, m, count * sizeof(float));
    return st;
}

static ct_status loss_status_reset(ct_loss *L)
{
    ct_status st = CT_SUCCESS;
    const cl_uint init[LOSS_STATUS_WORDS] = {0u, 0xffffffffu, 0u};
    CT_CL(clEnqueueWriteBuffer(L->ctx->queue, L->status, CL_TRUE, 0, sizeof init, init, 0, NULL,
                               NULL));
    L->rows = 0;
cleanup:
    return st;
}

/* Checks a weight shape given in the options: 1..4 dims, each >= 1; *count = numel. */
static ct_status loss_weight_shape(const char *what, size_t ndim, const size_t *shape,
                                   size_t *count)
{
    ct_status st = CT_SUCCESS;
    size_t n = 1;
    CT_REQUIRE(ndim >= 1 && ndim <= CT_MAX_DIMS, CT_ERR_INVALID_ARG,
               "%s_ndim is %zu, expected 1..%d", what, ndim, CT_MAX_DIMS);
    for (size_t i = 0; i < ndim; i++) {
        CT_REQUIRE(shape[i] >= 1 && shape[i] <= 0xffffffffu, CT_ERR_INVALID_ARG,
                   "%s_shape[%zu] is %zu", what, i, shape[i]);
        n *= shape[i];
        CT_REQUIRE(n <= 0xffffffffu, CT_ERR_INVALID_ARG, "%s has too many elements", what);
    }
    *count = n;
cleanup:
    return st;
}

ct_status ct_loss_create(ct_context *ctx, const ct_loss_options *opts, ct_loss **out)
{
    ct_status st = CT_SUCCESS;
    ct_loss *L = NULL;
    CT_REQUIRE(ctx != NULL && opts != NULL && out != NULL, CT_ERR_INVALID_ARG,
               "ct_loss_create: NULL argument");
    *out = NULL;
    const ct_loss_options *o = opts;
    CT_REQUIRE(o->init == LOSS_INIT_MARK, CT_ERR_INVALID_ARG,
               "ct_loss_create: options not initialised with ct_loss_options_default() "
               "(a zeroed struct would mean ignore_index 0 and beta 0)");
    CT_REQUIRE((int)o->kind >= CT_LOSS_CROSS_ENTROPY && (int)o->kind <= CT_LOSS_HUBER,
               CT_ERR_INVALID_ARG, "ct_loss_create: unknown loss kind %d", (int)o->kind);
    CT_REQUIRE((int)o->reduction >= CT_REDUCTION_MEAN && (int)o->reduction <= CT_REDUCTION_NONE,
               CT_ERR_INVALID_ARG, "ct_loss_create: unknown reduction %d", (int)o->reduction);
    const char *name = loss_kind_name(o->kind);
    CT_REQUIRE(o->weight == NULL || loss_is_class(o->kind) || o->kind == CT_LOSS_BCE_WITH_LOGITS,
               CT_ERR_INVALID_ARG, "%s loss takes no weight", name);
    CT_REQUIRE(o->pos_weight == NULL || o->kind == CT_LOSS_BCE_WITH_LOGITS, CT_ERR_INVALID_ARG,
               "pos_weight is for bce_with_logits only, not %s", name);
    CT_REQUIRE(o->weight == NULL || !loss_is_class(o->kind) || o->weight_ndim == 1,
               CT_ERR_INVALID_ARG, "%s weight must be 1-D (one per class), got %zu dims", name,
               o->weight_ndim);
    CT_REQUIRE(isfinite(o->label_smoothing) && o->label_smoothing >= 0.0f &&
                   o->label_smoothing <= 1.0f,
               CT_ERR_INVALID_ARG, "label_smoothing %g outside [0, 1]", (double)o->label_smoothing);
    CT_REQUIRE(o->label_smoothing == 0.0f || o->kind == CT_LOSS_CROSS_ENTROPY,
               CT_ERR_INVALID_ARG, "label_smoothing is for cross_entropy only, not %s", name);
    CT_REQUIRE(o->kind != CT_LOSS_SMOOTH_L1 || (isfinite(o->beta) && o->beta >= 0.0f),
               CT_ERR_INVALID_ARG, "smooth_l1 beta %g must be >= 0", (double)o->beta);
    CT_REQUIRE(o->kind != CT_LOSS_HUBER || (isfinite(o->delta) && o->delta > 0.0f),
               CT_ERR_INVALID_ARG, "huber delta %g must be > 0", (double)o->delta);
    /* targets are float32: an ignore_index beyond 2^24 could not be told from its
     * neighbours */
    CT_REQUIRE(o->ignore_index > -(1 << 24) && o->ignore_index < (1 << 24), CT_ERR_INVALID_ARG,
               "ignore_index %ld is not exact in float32", (long)o->ignore_index);

    L = calloc(1, sizeof *L);
    CT_REQUIRE(L != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    L->ctx = ctx;
    L->o = *o;
    L->o.weight = NULL;
    L->o.pos_weight = NULL;
    if (o->weight) {
        CT_TRY(loss_weight_shape("weight", o->weight_ndim, o->weight_shape, &L->weight_count));
        CT_TRY(loss_upload(ctx, o->weight, L->weight_count, &L->weight));
    }
    if (o->pos_weight) {
        CT_TRY(loss_weight_shape("pos_weight", o->pos_weight_ndim, o->pos_weight_shape,
                                 &L->pos_weight_count));
        CT_TRY(loss_upload(ctx, o->pos_weight, L->pos_weight_count, &L->pos_weight));
    }
    CT_TRY(ct_buffer_alloc(ctx, LOSS_STATUS_WORDS * sizeof(cl_uint), &L->status));
    CT_TRY(ct_buffer_alloc(ctx, 2 * LOSS_GMAX * sizeof(float), &L->part));
    CT_TRY(loss_status_reset(L));

    /* the tree reduction wants a power of two */
    L->wg = 64;
    while (L->wg > 1 && L->wg > ctx->info.max_work_group)
        L->wg /= 2;
    snprintf(L->options, sizeof L->options,
             "-DLOSS_WG=%u -DLF_GRAD=%uu -DLF_OUT=%uu -DLF_NONE=%uu -DLF_MEAN=%uu "
             "-DLF_WDENOM=%uu -DLF_FINAL=%uu -DLF_GO_ROW=%uu -DLF_GO_ONE=%uu -DLF_WEIGHT=%uu "
             "-DLF_POSW=%uu -DLF_SOFT=%uu -DLF_NLL=%uu -DRK_MSE=%uu -DRK_L1=%uu "
             "-DRK_SMOOTH_L1=%uu -DRK_HUBER=%uu -DLE_CLASS_INDEX=%uu -DLE_BCE_TARGET=%uu "
             "-DLE_NEGATIVE_PROB=%uu",
             L->wg, LF_GRAD, LF_OUT, LF_NONE, LF_MEAN, LF_WDENOM, LF_FINAL, LF_GO_ROW, LF_GO_ONE,
             LF_WEIGHT, LF_POSW, LF_SOFT, LF_NLL, RK_MSE, RK_L1, RK_SMOOTH_L1, RK_HUBER,
             (unsigned)CT_LOSS_ERR_CLASS_INDEX, (unsigned)CT_LOSS_ERR_BCE_TARGET,
             (unsigned)CT_LOSS_ERR_NEGATIVE_PROB);
    *out = L;
    L = NULL;
cleanup:
    ct_loss_free(L);
    return st;
}

void ct_loss_free(ct_loss *L)
{
    if (!L)
        return;
    if (L->weight)
        ct_buffer_free(L->ctx, L->weight, L->weight_count * sizeof(float));
    if (L->pos_weight)
        ct_buffer_free(L->ctx, L->pos_weight, L->pos_weight_count * sizeof(float));
    if (L->status)
        ct_buffer_free(L->ctx, L->status, LOSS_STATUS_WORDS * sizeof(cl_uint));
    if (L->part)
        ct_buffer_free(L->ctx, L->part, 2 * LOSS_GMAX * sizeof(float));
    free(L);
}

/* Element strides of a weight of shape wshape (wnd dims) broadcast against the input
 * dims d[4] (right-aligned, numpy's rule; the weight may not add dims). */
static ct_status loss_broadcast(const char *what, size_t wnd, const size_t *wshape,
                                size_t xnd, const unsigned d[4], unsigned strides[4])
{
    ct_status st = CT_SUCCESS;
    size_t w4[4] = {1, 1, 1, 1};
    CT_REQUIRE(wnd <= xnd, CT_ERR_SHAPE, "%s has %zu dims, more than the input's %zu", what,
               wnd, xnd);
    for (size_t i = 0; i < wnd; i++)
        w4[4 - wnd + i] = wshape[i];
    size_t stride = 1;
    for (int k = 3; k >= 0; k--) {
        CT_REQUIRE(w4[k] == d[k] || w4[k] == 1, CT_ERR_SHAPE,
                   "%s dim %zu is %zu, cannot broadcast to the input's %u", what,
                   (size_t)k - (4 - wnd), w4[k], d[k]);
        strides[k] = w4[k] == 1 ? 0u : (unsigned)stride;
        stride *= w4[k];
    }
cleanup:
    return st;
}

static ct_status loss_geometry(const ct_loss *L, const ct_tensor *x, const ct_tensor *t,
                               loss_geom *g)
{
    ct_status st = CT_SUCCESS;
    const char *name = loss_kind_name(L->o.kind);
    memset(g, 0, sizeof *g);
    CT_REQUIRE(x != NULL && t != NULL, CT_ERR_INVALID_ARG, "%s loss: input or target is NULL",
               name);
    CT_REQUIRE(x->ctx == L->ctx && t->ctx == L->ctx, CT_ERR_INVALID_ARG,
               "%s loss: tensors of another context", name);
    /* the kernels index with 32-bit integers */
    CT_REQUIRE(x->numel <= 0xffffffffu && t->numel <= 0xffffffffu, CT_ERR_UNSUPPORTED,
               "%s loss: %zu elements exceed the kernels' 32-bit indices", name, x->numel);
    g->n = x->numel;
    if (loss_is_class(L->o.kind)) {
        CT_REQUIRE(x->ndim >= 2, CT_ERR_SHAPE,
                   "%s loss: input must be (N, C) or (N, C, d1[, d2]), got %zu dims", name,
                   x->ndim);
        g->N = x->shape[0];
        g->C = x->shape[1];
        g->S = x->numel / (g->N * g->C);
        g->P = g->N * g->S;
        g->soft = t->ndim == x->ndim;
        if (g->soft) {
            CT_REQUIRE(L->o.kind == CT_LOSS_CROSS_ENTROPY, CT_ERR_SHAPE,
                       "nll loss takes class-index targets (%zu dims for a %zu-dim input), "
                       "not probabilities", x->ndim - 1, x->ndim);
            CT_TRY(ct_tensor_expect(t, "cross_entropy soft target", x->ndim, x->shape));
        } else {
            size_t want[CT_MAX_DIMS] = {g->N};
            for (size_t i = 2; i < x->ndim; i++)
                want[i - 1] = x->shape[i];
            CT_TRY(ct_tensor_expect(t, "class-index target", x->ndim - 1, want));
        }
        CT_REQUIRE(!L->weight || L->weight_count == g->C, CT_ERR_SHAPE,
                   "%s loss: %zu class weights for %zu classes", name, L->weight_count, g->C);
        g->out_ndim = x->ndim - 1;
        g->out_shape[0] = g->N;
        for (size_t i = 2; i < x->ndim; i++)
            g->out_shape[i - 1] = x->shape[i];
        g->out_numel = g->P;
    } else {
        CT_TRY(ct_tensor_expect(t, "target", x->ndim, x->shape));
        g->out_ndim = x->ndim;
        memcpy(g->out_shape, x->shape, sizeof g->out_shape);
        g->out_numel = x->numel;
        for (size_t k = 0; k < 4; k++)
            g->d[k] = k < 4 - x->ndim ? 1u : (unsigned)x->shape[k - (4 - x->ndim)];
        if (L->weight)
            CT_TRY(loss_broadcast("weight", L->o.weight_ndim, L->o.weight_shape, x->ndim, g->d,
                                  g->ws));
        if (L->pos_weight)
            CT_TRY(loss_broadcast("pos_weight", L->o.pos_weight_ndim, L->o.pos_weight_shape,
                                  x->ndim, g->d, g->ps));
    }
    if (L->o.reduction != CT_REDUCTION_NONE) {
        g->out_ndim = 1;
        g->out_shape[0] = 1;
        g->out_numel = 1;
    }
cleanup:
    return st;
}

ct_status ct_loss_output_shape(const ct_loss *loss, const ct_tensor *input,
                               const ct_tensor *target, size_t *ndim,
                               size_t shape[CT_MAX_DIMS])
{
    ct_status st = CT_SUCCESS;
    loss_geom g;
    CT_REQUIRE(loss && ndim && shape, CT_ERR_INVALID_ARG, "ct_loss_output_shape: NULL argument");
    CT_TRY(loss_geometry(loss, input, target, &g));
    *ndim = g.out_ndim;
    for (size_t i = 0; i < CT_MAX_DIMS; i++)
        shape[i] = i < g.out_ndim ? g.out_shape[i] : 0;
cleanup:
    return st;
}

/* Work-groups for `units` rows or elements at `per_item` each, 1..LOSS_GMAX: a
 * function of the size alone, so the summation order is too. */
static size_t loss_groups(const ct_loss *L, size_t units, size_t per_item)
{
    size_t items = (units + per_item - 1) / per_item;
    size_t groups = (items + L->wg - 1) / L->wg;
    return groups < 1 ? 1 : groups > LOSS_GMAX ? LOSS_GMAX : groups;
}

/* Everything goes through here. out: the loss (or NULL); g: the input gradient (or
 * NULL); go: grad_output (or NULL for ones). At least one of out and g. */
static ct_status loss_run(ct_loss *L, const ct_tensor *x, const ct_tensor *t, ct_tensor *out,
                          ct_tensor *g, const ct_tensor *go)
{
    ct_status st = CT_SUCCESS;
    loss_geom geo;
    cl_kernel k = NULL;
    ct_context *ctx = L->ctx;
    const char *name = loss_kind_name(L->o.kind);
    const ct_reduction red = L->o.reduction;
    CT_TRY(loss_geometry(L, x, t, &geo));
    if (out) {
        CT_REQUIRE(out->ctx == ctx, CT_ERR_INVALID_ARG, "%s loss: output of another context",
                   name);
        CT_REQUIRE(out->numel == geo.out_numel, CT_ERR_SHAPE,
                   "%s loss: output has %zu elements, the loss gives %zu", name, out->numel,
                   geo.out_numel);
    }
    if (g) {
        CT_REQUIRE(g->ctx == ctx, CT_ERR_INVALID_ARG, "%s loss: gradient of another context",
                   name);
        CT_TRY(ct_tensor_expect(g, "grad_input", x->ndim, x->shape));
    }
    if (go) {
        CT_REQUIRE(go->ctx == ctx, CT_ERR_INVALID_ARG,
                   "%s loss: grad_output of another context", name);
        size_t want = red == CT_REDUCTION_NONE ? geo.out_numel : 1;
        CT_REQUIRE(go->numel == want, CT_ERR_SHAPE,
                   "%s loss: grad_output has %zu elements, expected %zu", name, go->numel, want);
    }

    cl_uint flags = 0;
    if (g)
        flags |= LF_GRAD;
    if (out)
        flags |= LF_OUT;
    if (red == CT_REDUCTION_NONE)
        flags |= LF_NONE;
    if (red == CT_REDUCTION_MEAN)
        flags |= LF_MEAN;
    if (go)
        flags |= red == CT_REDUCTION_NONE ? LF_GO_ROW : LF_GO_ONE;
    if (L->weight)
        flags |= LF_WEIGHT;
    if (L->pos_weight)
        flags |= LF_POSW;
    /* kernel arguments that are absent: any valid object, never accessed */
    const ct_tensor *dummy = x;
    cl_mem wmem = L->weight ? L->weight : L->part;
    cl_mem pmem = L->pos_weight ? L->pos_weight : L->part;
    size_t wg = L->wg, groups, global;

    if (loss_is_class(L->o.kind)) {
        if (L->o.kind == CT_LOSS_NLL)
            flags |= LF_NLL;
        if (geo.soft)
            flags |= LF_SOFT;
        else if (red == CT_REDUCTION_MEAN)
            flags |= LF_WDENOM;
        groups = loss_groups(L, geo.P, LOSS_ROWS_PER_ITEM);
        if (groups == 1)
            flags |= LF_FINAL;
        global = groups * wg;
        const float count = (float)geo.P;
        L->classes = geo.C;
        L->rows += geo.P;
        CT_TRY(ct_kernel_get(ctx, "loss.cl", "ce_rows", L->options, &k));
        CT_TRY(CT_SETARGS(k, "ce_rows", CT_T(x), CT_T(t), CT_T(out ? out : dummy),
                          CT_T(g ? g : dummy), CT_T(go ? go : dummy), CT_MEM(wmem),
                          CT_MEM(L->part), CT_MEM(L->status), CT_U32(geo.N), CT_U32(geo.C),
                          CT_U32(geo.S), CT_F32((float)L->o.ignore_index),
                          CT_F32(L->o.label_smoothing), CT_F32(count), CT_U32(flags)));
        CT_TRY(ct_launch(ctx, k, "loss_ce_rows", 1, &global, &wg));
        if (red == CT_REDUCTION_NONE || groups == 1)
            goto cleanup;
        if ((flags & LF_WDENOM) && g) {
            CT_TRY(ct_kernel_get(ctx, "loss.cl", "ce_finish", L->options, &k));
            CT_TRY(CT_SETARGS(k, "ce_finish", CT_T(t), CT_T(out ? out : dummy), CT_T(g),
                              CT_T(go ? go : dummy), CT_MEM(wmem), CT_MEM(L->part),
                              CT_U32(groups), CT_U32(geo.N), CT_U32(geo.C), CT_U32(geo.S),
                              CT_F32((float)L->o.ignore_index), CT_F32(count), CT_U32(flags)));
            CT_TRY(ct_launch(ctx, k, "loss_ce_finish", 1, &global, &wg));
            goto cleanup;
        }
        if (out) {
            CT_TRY(ct_kernel_get(ctx, "loss.cl", "loss_finish", L->options, &k));
            CT_TRY(CT_SETARGS(k, "loss_finish", CT_MEM(L->part), CT_U32(groups), CT_T(out),
                              CT_F32(count), CT_U32(flags)));
            CT_TRY(ct_launch(ctx, k, "loss_finish", 1, &wg, &wg));
        }
        goto cleanup;
    }

    /* element-wise losses: the denominator is the element count, known here */
    const float count = (float)geo.n;
    L->rows += geo.n;
    if (L->o.kind == CT_LOSS_BCE_WITH_LOGITS) {
        groups = loss_groups(L, geo.n, LOSS_ELEMS_PER_ITEM);
        if (groups == 1)
            flags |= LF_FINAL;
        global = groups * wg;
        CT_TRY(ct_kernel_get(ctx, "loss.cl", "bce_elems", L->options, &k));
        CT_TRY(CT_SETARGS(k, "bce_elems", CT_T(x), CT_T(t), CT_T(out ? out : dummy),
                          CT_T(g ? g : dummy), CT_T(go ? go : dummy), CT_MEM(wmem),
                          CT_MEM(pmem), CT_MEM(L->part), CT_MEM(L->status), CT_U32(geo.n),
                          CT_U32(geo.d[1]), CT_U32(geo.d[2]), CT_U32(geo.d[3]),
                          CT_U32(geo.ws[0]), CT_U32(geo.ws[1]), CT_U32(geo.ws[2]),
                          CT_U32(geo.ws[3]), CT_U32(geo.ps[0]), CT_U32(geo.ps[1]),
                          CT_U32(geo.ps[2]), CT_U32(geo.ps[3]), CT_F32(count), CT_U32(flags)));
        CT_TRY(ct_launch(ctx, k, "loss_bce", 1, &global, &wg));
    } else {
        unsigned kind = L->o.kind == CT_LOSS_MSE ? RK_MSE
                        : L->o.kind == CT_LOSS_L1 ? RK_L1
                        : L->o.kind == CT_LOSS_SMOOTH_L1 ? RK_SMOOTH_L1
                                                         : RK_HUBER;
        float param = L->o.kind == CT_LOSS_SMOOTH_L1 ? L->o.beta : L->o.delta;
        groups = loss_groups(L, geo.n, LOSS_ELEMS_PER_ITEM);
        if (groups == 1)
            flags |= LF_FINAL;
        global = groups * wg;
        CT_TRY(ct_kernel_get(ctx, "loss.cl", "reg_elems", L->options, &k));
        CT_TRY(CT_SETARGS(k, "reg_elems", CT_T(x), CT_T(t), CT_T(out ? out : dummy),
                          CT_T(g ? g : dummy), CT_T(go ? go : dummy), CT_MEM(L->part),
                          CT_U32(geo.n), CT_U32(kind), CT_F32(param), CT_F32(count),
                          CT_U32(flags)));
        CT_TRY(ct_launch(ctx, k, "loss_reg", 1, &global, &wg));
    }
    if (red != CT_REDUCTION_NONE && groups > 1 && out) {
        CT_TRY(ct_kernel_get(ctx, "loss.cl", "loss_finish", L->options, &k));
        CT_TRY(CT_SETARGS(k, "loss_finish", CT_MEM(L->part), CT_U32(groups), CT_T(out),
                          CT_F32(count), CT_U32(flags)));
        CT_TRY(ct_launch(ctx, k, "loss_finish", 1, &wg, &wg));
    }
cleanup:
    return st;
}

ct_status ct_loss_forward(ct_loss *loss, const ct_tensor *input, const ct_tensor *target,
                          ct_tensor *out)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(loss != NULL && out != NULL, CT_ERR_INVALID_ARG,
               "ct_loss_forward: loss or out is NULL");
    CT_TRY(loss_run(loss, input, target, out, NULL, NULL));
cleanup:
    return st;
}

ct_status ct_loss_forward_backward(ct_loss *loss, const ct_tensor *input,
                                   const ct_tensor *target, ct_tensor *out_loss,
                                   ct_tensor *grad_input)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(loss != NULL && grad_input != NULL, CT_ERR_INVALID_ARG,
               "ct_loss_forward_backward: loss or grad_input is NULL");
    CT_TRY(loss_run(loss, input, target, out_loss, grad_input, NULL));
cleanup:
    return st;
}

ct_status ct_loss_backward(ct_loss *loss, const ct_tensor *input, const ct_tensor *target,
                           const ct_tensor *grad_output, ct_tensor *grad_input)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(loss != NULL && grad_input != NULL, CT_ERR_INVALID_ARG,
               "ct_loss_backward: loss or grad_input is NULL");
    CT_REQUIRE(grad_output != NULL || loss->o.reduction != CT_REDUCTION_NONE,
               CT_ERR_INVALID_ARG,
               "ct_loss_backward: reduction none needs a grad_output per output element");
    CT_TRY(loss_run(loss, input, target, NULL, grad_input, grad_output));
cleanup:
    return st;
}

ct_status ct_loss_check(ct_loss *loss, ct_loss_report *report)
{
    ct_status st = CT_SUCCESS;
    cl_uint s[LOSS_STATUS_WORDS] = {0, 0, 0};
    size_t rows = 0;
    CT_REQUIRE(loss != NULL, CT_ERR_INVALID_ARG, "ct_loss_check: loss is NULL");
    CT_CL(clEnqueueReadBuffer(loss->ctx->queue, loss->status, CL_TRUE, 0, sizeof s, s, 0, NULL,
                              NULL));
    rows = loss->rows;
    CT_TRY(loss_status_reset(loss));
    if (report) {
        report->errors = s[0];
        report->first_error = s[0] ? (size_t)s[1] : SIZE_MAX;
        report->suspicious_rows = s[2];
        report->rows = rows;
    }
    if (s[0] & CT_LOSS_ERR_CLASS_INDEX)
        CT_FAIL(CT_ERR_INVALID_ARG,
                "%s loss: a target is not a class index in [0, %zu) nor ignore_index %ld "
                "(first at target element %u); those positions were ignored",
                loss_kind_name(loss->o.kind), loss->classes, (long)loss->o.ignore_index, s[1]);
    if (s[0] & CT_LOSS_ERR_BCE_TARGET)
        CT_FAIL(CT_ERR_INVALID_ARG,
                "bce_with_logits loss: a target is outside [0, 1] (first at element %u)", s[1]);
    if (s[0] & CT_LOSS_ERR_NEGATIVE_PROB)
        CT_FAIL(CT_ERR_INVALID_ARG,
                "cross_entropy loss: a class-probability target is negative (first at target "
                "element %u)", s[1]);
cleanup:
    return st;
}
