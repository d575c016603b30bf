/* Optimizers over the flat parameter buffer: SGD, Adam, AdamW, RMSprop and Adagrad with
 * torch.optim's single-tensor update rules (kernels/optim.cl), parameter groups, and
 * state export for checkpoints.
 *
 * A step is one kernel launch. The host computes each group's scalars in double exactly
 * as torch.optim does in Python (bias corrections from pow(), lr / bc1, 1 - beta...) and
 * passes them as float, the way ATen converts a Python scalar for a float tensor. Ranges
 * of the buffer become a segment table on the device (written once, at creation);
 * per-group scalars travel as float16 kernel arguments, captured at enqueue time.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cltrain/optim.h"
#include "core/internal.h"

/* keep in sync with kernels/optim.cl */
#define OPTIM_F_MAXIMIZE 1u
#define OPTIM_F_NESTEROV 2u
#define OPTIM_F_AMSGRAD 4u
#define OPTIM_F_DECOUPLED 8u
#define OPTIM_F_CENTERED 16u

/* Elements per work-item. CPUs: long contiguous runs (PoCL runs work-items one after the
 * other); GPUs: one float4 per work-item so neighbours coalesce. The clipping kernels'
 * partial-sum chunk is fixed: it decides the summation order, and so the result. */
#define OPTIM_CHUNK_CPU 256u
#define OPTIM_CHUNK_GPU 4u
#define CLIP_CHUNK 1024u

/* Used by clip.c as well, so both files build kernels/optim.cl with the same options. */
unsigned ct_optim_chunk(const ct_context *ctx);
const char *ct_optim_build_options(const ct_context *ctx);

unsigned ct_optim_chunk(const ct_context *ctx)
{
    return ctx->info.is_gpu ? OPTIM_CHUNK_GPU : OPTIM_CHUNK_CPU;
}

const char *ct_optim_build_options(const ct_context *ctx)
{
    return ctx->info.is_gpu ? "-DOPTIM_CHUNK=4 -DCLIP_CHUNK=1024"
                            : "-DOPTIM_CHUNK=256 -DCLIP_CHUNK=1024";
}

enum { SLOT0, SLOT1, SLOT2, NSLOTS };

struct ct_optim {
    ct_context *ctx;
    ct_optim_options o; /* groups/ranges pointers cleared: copies live below */
    ct_tensor *params, *grads;
    size_t numel;
    size_t n_groups;
    double lr[CT_OPTIM_MAX_GROUPS];
    double wd[CT_OPTIM_MAX_GROUPS];
    double mom[CT_OPTIM_MAX_GROUPS]; /* momentum (SGD, RMSprop) or beta1 (Adam, AdamW) */
    bool ready[CT_OPTIM_MAX_GROUPS]; /* SGD: the group's momentum buffer exists */
    ct_tensor *state[NSLOTS];
    cl_mem seg;
    size_t seg_bytes;
    cl_uint nseg, nchunks;
    uint64_t step;
};

/* ---- options ----------------------------------------------------------------------- */

ct_optim_options ct_optim_defaults(ct_optim_kind kind)
{
    ct_optim_options o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.lr = 1e-3;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.eps = 1e-8;
    o.alpha = 0.99;
    switch (kind) {
    case CT_OPTIM_ADAMW: o.weight_decay = 1e-2; break;
    case CT_OPTIM_RMSPROP: o.lr = 1e-2; break;
    case CT_OPTIM_ADAGRAD:
        o.lr = 1e-2;
        o.eps = 1e-10;
        break;
    default: break;
    }
    return o;
}

const char *ct_optim_kind_name(ct_optim_kind kind)
{
    switch (kind) {
    case CT_OPTIM_SGD: return "sgd";
    case CT_OPTIM_ADAM: return "adam";
    case CT_OPTIM_ADAMW: return "adamw";
    case CT_OPTIM_RMSPROP: return "rmsprop";
    case CT_OPTIM_ADAGRAD: return "adagrad";
    }
    return "?";
}

static bool has_momentum(ct_optim_kind k)
{
    return k == CT_OPTIM_SGD || k == CT_OPTIM_RMSPROP;
}

static bool has_beta1(ct_optim_kind k)
{
    return k == CT_OPTIM_ADAM || k == CT_OPTIM_ADAMW;
}

/* The checks torch.optim makes in its constructors, plus lr > 0 (the rule). */
static ct_status check_options(const ct_optim_options *o)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(o->kind >= CT_OPTIM_SGD && o->kind <= CT_OPTIM_ADAGRAD, CT_ERR_INVALID_ARG,
               "ct_optim_create: unknown optimizer kind %d", (int)o->kind);
    const char *kn = ct_optim_kind_name(o->kind);
    CT_REQUIRE(o->lr > 0 && isfinite(o->lr), CT_ERR_INVALID_ARG,
               "%s: lr must be a finite number > 0, got %g", kn, o->lr);
    CT_REQUIRE(o->weight_decay >= 0 && isfinite(o->weight_decay), CT_ERR_INVALID_ARG,
               "%s: weight_decay must be >= 0, got %g", kn, o->weight_decay);
    switch (o->kind) {
    case CT_OPTIM_SGD:
        CT_REQUIRE(o->momentum >= 0 && isfinite(o->momentum), CT_ERR_INVALID_ARG,
                   "sgd: momentum must be >= 0, got %g", o->momentum);
        CT_REQUIRE(isfinite(o->dampening), CT_ERR_INVALID_ARG,
                   "sgd: dampening must be finite, got %g", o->dampening);
        CT_REQUIRE(!o->nesterov || o->momentum > 0, CT_ERR_INVALID_ARG,
                   "sgd: nesterov needs momentum > 0, got momentum %g", o->momentum);
        CT_REQUIRE(!o->nesterov || o->dampening == 0, CT_ERR_INVALID_ARG,
                   "sgd: nesterov needs dampening 0, got dampening %g", o->dampening);
        break;
    case CT_OPTIM_ADAM:
    case CT_OPTIM_ADAMW:
        CT_REQUIRE(o->beta1 >= 0 && o->beta1 < 1, CT_ERR_INVALID_ARG,
                   "%s: beta1 (betas[0]) must be in [0, 1), got %g", kn, o->beta1);
        CT_REQUIRE(o->beta2 >= 0 && o->beta2 < 1, CT_ERR_INVALID_ARG,
                   "%s: beta2 (betas[1]) must be in [0, 1), got %g", kn, o->beta2);
        break;
    case CT_OPTIM_RMSPROP:
        CT_REQUIRE(o->momentum >= 0 && isfinite(o->momentum), CT_ERR_INVALID_ARG,
                   "rmsprop: momentum must be >= 0, got %g", o->momentum);
        CT_REQUIRE(o->alpha >= 0 && isfinite(o->alpha), CT_ERR_INVALID_ARG,
                   "rmsprop: alpha must be >= 0, got %g", o->alpha);
        break;
    case CT_OPTIM_ADAGRAD:
        CT_REQUIRE(o->lr_decay >= 0 && isfinite(o->lr_decay), CT_ERR_INVALID_ARG,
                   "adagrad: lr_decay must be >= 0, got %g", o->lr_decay);
        CT_REQUIRE(o->initial_accumulator_value >= 0 && isfinite(o->initial_accumulator_value),
                   CT_ERR_INVALID_ARG, "adagrad: initial_accumulator_value must be >= 0, got %g",
                   o->initial_accumulator_value);
        break;
    }
    CT_REQUIRE(o->eps >= 0 && isfinite(o->eps), CT_ERR_INVALID_ARG,
               "%s: eps must be >= 0, got %g", kn, o->eps);
    CT_REQUIRE(o->n_groups <= CT_OPTIM_MAX_GROUPS, CT_ERR_INVALID_ARG,
               "%s: %zu parameter groups, at most %d supported", kn, o->n_groups,
               CT_OPTIM_MAX_GROUPS);
    CT_REQUIRE(o->n_groups == 0 || o->groups != NULL, CT_ERR_INVALID_ARG,
               "%s: n_groups is %zu but groups is NULL", kn, o->n_groups);
    CT_REQUIRE(o->n_ranges == 0 || o->ranges != NULL, CT_ERR_INVALID_ARG,
               "%s: n_ranges is %zu but ranges is NULL", kn, o->n_ranges);
    for (size_t k = 0; k < o->n_groups; k++) {
        CT_REQUIRE(o->groups[k].lr > 0 && isfinite(o->groups[k].lr), CT_ERR_INVALID_ARG,
                   "%s: groups[%zu].lr must be a finite number > 0, got %g", kn, k,
                   o->groups[k].lr);
        CT_REQUIRE(o->groups[k].weight_decay >= 0 && isfinite(o->groups[k].weight_decay),
                   CT_ERR_INVALID_ARG, "%s: groups[%zu].weight_decay must be >= 0, got %g", kn,
                   k, o->groups[k].weight_decay);
    }
cleanup:
    return st;
}

/* ---- segments ---------------------------------------------------------------------- */

static int range_cmp(const void *a, const void *b)
{
    const ct_optim_range *x = a, *y = b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Sorts, checks and merges the ranges, then writes the segment table (first chunk,
 * first element, end element, group) to a device buffer, blocking: it never changes. */
static ct_status build_segments(ct_optim *opt, const ct_optim_options *o)
{
    ct_status st = CT_SUCCESS;
    ct_optim_range *r = NULL;
    cl_uint *table = NULL;
    size_t n = o->n_ranges;
    const unsigned chunk = ct_optim_chunk(opt->ctx);
    const char *kn = ct_optim_kind_name(o->kind);

    if (n == 0) {
        CT_REQUIRE(opt->n_groups <= 1, CT_ERR_INVALID_ARG,
                   "%s: %zu parameter groups need ranges saying which elements are whose", kn,
                   opt->n_groups);
        n = 1;
    }
    r = malloc(n * sizeof *r);
    CT_REQUIRE(r != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    if (o->n_ranges == 0)
        r[0] = (ct_optim_range){.offset = 0, .length = opt->numel, .group = 0};
    else
        memcpy(r, o->ranges, n * sizeof *r);
    for (size_t i = 0; i < n; i++) {
        CT_REQUIRE(r[i].length > 0, CT_ERR_INVALID_ARG, "%s: ranges[%zu] is empty", kn, i);
        CT_REQUIRE(r[i].offset < opt->numel && r[i].length <= opt->numel - r[i].offset,
                   CT_ERR_INVALID_ARG,
                   "%s: ranges[%zu] = [%zu, %zu) lies outside the %zu-element buffer", kn, i,
                   r[i].offset, r[i].offset + r[i].length, opt->numel);
        CT_REQUIRE(r[i].group < opt->n_groups, CT_ERR_INVALID_ARG,
                   "%s: ranges[%zu].group is %zu, only %zu groups", kn, i, r[i].group,
                   opt->n_groups);
    }
    qsort(r, n, sizeof *r, range_cmp);
    size_t m = 0; /* merged count */
    for (size_t i = 0; i < n; i++) {
        if (m > 0) {
            ct_optim_range *prev = &r[m - 1];
            size_t prev_end = prev->offset + prev->length;
            CT_REQUIRE(prev_end <= r[i].offset, CT_ERR_INVALID_ARG,
                       "%s: ranges [%zu, %zu) and [%zu, %zu) overlap", kn, prev->offset,
                       prev_end, r[i].offset, r[i].offset + r[i].length);
            if (prev_end == r[i].offset && prev->group == r[i].group) {
                prev->length += r[i].length;
                continue;
            }
        }
        r[m++] = r[i];
    }
    table = malloc(m * 4 * sizeof *table);
    CT_REQUIRE(table != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    uint64_t chunks = 0;
    for (size_t i = 0; i < m; i++) {
        table[4 * i + 0] = (cl_uint)chunks;
        table[4 * i + 1] = (cl_uint)r[i].offset;
        table[4 * i + 2] = (cl_uint)(r[i].offset + r[i].length);
        table[4 * i + 3] = (cl_uint)r[i].group;
        chunks += (r[i].length + chunk - 1) / chunk;
    }
    opt->nseg = (cl_uint)m;
    opt->nchunks = (cl_uint)chunks;
    opt->seg_bytes = m * 4 * sizeof *table;
    CT_TRY(ct_buffer_alloc(opt->ctx, opt->seg_bytes, &opt->seg));
    CT_CL(clEnqueueWriteBuffer(opt->ctx->queue, opt->seg, CL_TRUE, 0, opt->seg_bytes, table, 0,
                               NULL, NULL));
cleanup:
    free(table);
    free(r);
    return st;
}

/* ---- state buffers ----------------------------------------------------------------- */

/* Allocates state slot `slot` filled with `value` unless it exists. */
static ct_status ensure_slot(ct_optim *opt, int slot, float value)
{
    ct_status st = CT_SUCCESS;
    if (opt->state[slot])
        goto cleanup;
    size_t shape[1] = {opt->numel};
    CT_TRY(ct_tensor_create(opt->ctx, 1, shape, &opt->state[slot]));
    CT_TRY(ct_tensor_fill(opt->state[slot], value));
cleanup:
    return st;
}

/* The slot holding the momentum buffer of SGD (s0) and RMSprop (s1). */
static int momentum_slot(ct_optim_kind k)
{
    return k == CT_OPTIM_SGD ? SLOT0 : SLOT1;
}

ct_status ct_optim_create(ct_context *ctx, const ct_optim_options *o, ct_tensor *params,
                          ct_tensor *grads, ct_optim **out)
{
    ct_status st = CT_SUCCESS;
    ct_optim *opt = NULL;
    CT_REQUIRE(out != NULL, CT_ERR_INVALID_ARG, "ct_optim_create: out is NULL");
    *out = NULL;
    CT_REQUIRE(ctx && o && params && grads, CT_ERR_INVALID_ARG,
               "ct_optim_create: NULL context, options or tensor");
    CT_REQUIRE(params->ctx == ctx && grads->ctx == ctx, CT_ERR_INVALID_ARG,
               "ct_optim_create: params and grads must belong to the given context");
    CT_REQUIRE(params->numel == grads->numel, CT_ERR_SHAPE,
               "ct_optim_create: params has %zu elements, grads %zu", params->numel,
               grads->numel);
    CT_REQUIRE(params->numel <= 0xffffffffu - 1024u && params->offset <= 0xffffffffu &&
                   grads->offset <= 0xffffffffu,
               CT_ERR_UNSUPPORTED,
               "ct_optim_create: %zu parameters (offsets %zu, %zu) exceed the kernels' 32-bit "
               "indices",
               params->numel, params->offset, grads->offset);
    CT_TRY(check_options(o));

    opt = calloc(1, sizeof *opt);
    CT_REQUIRE(opt != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    opt->ctx = ctx;
    opt->o = *o;
    opt->o.groups = NULL;
    opt->o.ranges = NULL;
    opt->params = params;
    opt->grads = grads;
    opt->numel = params->numel;
    opt->n_groups = o->n_groups ? o->n_groups : 1;
    for (size_t k = 0; k < opt->n_groups; k++) {
        opt->lr[k] = o->n_groups ? o->groups[k].lr : o->lr;
        opt->wd[k] = o->n_groups ? o->groups[k].weight_decay : o->weight_decay;
        opt->mom[k] = has_beta1(o->kind) ? o->beta1 : o->momentum;
    }
    CT_TRY(build_segments(opt, o));

    switch (o->kind) {
    case CT_OPTIM_SGD:
        if (o->momentum != 0)
            CT_TRY(ensure_slot(opt, SLOT0, 0.0f));
        break;
    case CT_OPTIM_ADAM:
    case CT_OPTIM_ADAMW:
        CT_TRY(ensure_slot(opt, SLOT0, 0.0f));
        CT_TRY(ensure_slot(opt, SLOT1, 0.0f));
        if (o->amsgrad)
            CT_TRY(ensure_slot(opt, SLOT2, 0.0f));
        break;
    case CT_OPTIM_RMSPROP:
        CT_TRY(ensure_slot(opt, SLOT0, 0.0f));
        if (o->momentum > 0)
            CT_TRY(ensure_slot(opt, SLOT1, 0.0f));
        if (o->centered)
            CT_TRY(ensure_slot(opt, SLOT2, 0.0f));
        break;
    case CT_OPTIM_ADAGRAD:
        CT_TRY(ensure_slot(opt, SLOT0, (float)o->initial_accumulator_value));
        break;
    }
    *out = opt;
    opt = NULL;
cleanup:
    ct_optim_free(opt);
    return st;
}

void ct_optim_free(ct_optim *opt)
{
    if (!opt)
        return;
    for (int s = 0; s < NSLOTS; s++)
        ct_tensor_free(opt->state[s]);
    if (opt->seg)
        ct_buffer_free(opt->ctx, opt->seg, opt->seg_bytes);
    free(opt);
}

/* ---- the step ---------------------------------------------------------------------- */

static const char *kernel_name(ct_optim_kind k)
{
    switch (k) {
    case CT_OPTIM_SGD: return "optim_sgd";
    case CT_OPTIM_ADAM:
    case CT_OPTIM_ADAMW: return "optim_adam";
    case CT_OPTIM_RMSPROP: return "optim_rmsprop";
    case CT_OPTIM_ADAGRAD: return "optim_adagrad";
    }
    return "?";
}

ct_status ct_optim_step(ct_optim *opt)
{
    ct_status st = CT_SUCCESS;
    cl_kernel k = NULL;
    CT_REQUIRE(opt != NULL, CT_ERR_INVALID_ARG, "ct_optim_step: NULL optimizer");
    const ct_optim_options *o = &opt->o;
    const uint64_t step = opt->step + 1;
    const double t = (double)step; /* torch's state['step'].item() */
    cl_float16 ga, gb, gc, gd, ge;
    memset(&ga, 0, sizeof ga);
    memset(&gb, 0, sizeof gb);
    memset(&gc, 0, sizeof gc);
    memset(&gd, 0, sizeof gd);
    memset(&ge, 0, sizeof ge);
    cl_float c0 = 0, c1 = 0, c2 = 0;
    cl_uint flags = o->maximize ? OPTIM_F_MAXIMIZE : 0;

    for (size_t g = 0; g < opt->n_groups; g++) {
        const double lr = opt->lr[g], wd = opt->wd[g], m = opt->mom[g];
        switch (o->kind) {
        case CT_OPTIM_SGD:
            ga.s[g] = (cl_float)(-lr);
            gb.s[g] = (cl_float)wd;
            gc.s[g] = (cl_float)m;
            gd.s[g] = (m != 0 && !opt->ready[g]) ? 1.0f : 0.0f;
            break;
        case CT_OPTIM_ADAM:
        case CT_OPTIM_ADAMW: {
            const double bc1 = 1 - pow(m, t);
            const double bc2 = 1 - pow(o->beta2, t);
            const double step_size = lr / bc1;
            ga.s[g] = (cl_float)(-step_size);
            gb.s[g] = o->kind == CT_OPTIM_ADAMW ? (cl_float)(1 - lr * wd) : (cl_float)wd;
            gc.s[g] = (cl_float)sqrt(bc2);
            gd.s[g] = (cl_float)m;
            ge.s[g] = (cl_float)(1 - m);
            break;
        }
        case CT_OPTIM_RMSPROP:
            ga.s[g] = (cl_float)(-lr);
            gb.s[g] = (cl_float)wd;
            gc.s[g] = (cl_float)m;
            break;
        case CT_OPTIM_ADAGRAD: {
            const double clr = lr / (1 + (t - 1) * o->lr_decay);
            ga.s[g] = (cl_float)(-clr);
            gb.s[g] = (cl_float)wd;
            break;
        }
        }
    }
    switch (o->kind) {
    case CT_OPTIM_SGD:
        c0 = (cl_float)(1 - o->dampening);
        if (o->nesterov)
            flags |= OPTIM_F_NESTEROV;
        break;
    case CT_OPTIM_ADAM:
    case CT_OPTIM_ADAMW:
        c0 = (cl_float)o->beta2;
        c1 = (cl_float)(1 - o->beta2);
        c2 = (cl_float)o->eps;
        if (o->amsgrad)
            flags |= OPTIM_F_AMSGRAD;
        if (o->kind == CT_OPTIM_ADAMW)
            flags |= OPTIM_F_DECOUPLED;
        break;
    case CT_OPTIM_RMSPROP:
        c0 = (cl_float)o->alpha;
        c1 = (cl_float)(1 - o->alpha);
        c2 = (cl_float)o->eps;
        if (o->centered)
            flags |= OPTIM_F_CENTERED;
        break;
    case CT_OPTIM_ADAGRAD: c2 = (cl_float)o->eps; break;
    }
    /* a group with momentum needs the buffer (set_momentum allocates it; this is a guard) */
    if (has_momentum(o->kind)) {
        for (size_t g = 0; g < opt->n_groups; g++)
            CT_REQUIRE(opt->mom[g] == 0 || opt->state[momentum_slot(o->kind)] != NULL,
                       CT_ERR_INTERNAL, "%s: group %zu has momentum but no buffer",
                       ct_optim_kind_name(o->kind), g);
    }

    CT_TRY(ct_kernel_get(opt->ctx, "optim.cl", kernel_name(o->kind),
                         ct_optim_build_options(opt->ctx), &k));
    {
        const ct_tensor *ts[5] = {opt->params, opt->grads, opt->state[SLOT0], opt->state[SLOT1],
                                  opt->state[SLOT2]};
        cl_uint idx = 0;
        for (int i = 0; i < 5; i++) {
            const ct_tensor *tt = ts[i] ? ts[i] : opt->params; /* unused: any valid buffer */
            cl_uint off = (cl_uint)tt->offset;
            CT_CL(clSetKernelArg(k, idx++, sizeof(cl_mem), &tt->mem));
            CT_CL(clSetKernelArg(k, idx++, sizeof off, &off));
        }
        CT_CL(clSetKernelArg(k, idx++, sizeof(cl_mem), &opt->seg));
        CT_CL(clSetKernelArg(k, idx++, sizeof(cl_uint), &opt->nseg));
        CT_CL(clSetKernelArg(k, idx++, sizeof(cl_uint), &opt->nchunks));
        CT_CL(clSetKernelArg(k, idx++, sizeof ga, &ga));
        CT_CL(clSetKernelArg(k, idx++, sizeof gb, &gb));
        CT_CL(clSetKernelArg(k, idx++, sizeof gc, &gc));
        CT_CL(clSetKernelArg(k, idx++, sizeof gd, &gd));
        CT_CL(clSetKernelArg(k, idx++, sizeof ge, &ge));
        CT_CL(clSetKernelArg(k, idx++, sizeof c0, &c0));
        CT_CL(clSetKernelArg(k, idx++, sizeof c1, &c1));
        CT_CL(clSetKernelArg(k, idx++, sizeof c2, &c2));
        CT_CL(clSetKernelArg(k, idx++, sizeof flags, &flags));
    }
    size_t global = opt->nchunks;
    CT_TRY(ct_launch(opt->ctx, k, kernel_name(o->kind), 1, &global, NULL));
    opt->step = step;
    if (o->kind == CT_OPTIM_SGD)
        for (size_t g = 0; g < opt->n_groups; g++)
            if (opt->mom[g] != 0)
                opt->ready[g] = true;
cleanup:
    return st;
}

/* ---- accessors --------------------------------------------------------------------- */

ct_optim_kind ct_optim_get_kind(const ct_optim *opt)
{
    return opt ? opt->o.kind : CT_OPTIM_SGD;
}

size_t ct_optim_group_count(const ct_optim *opt)
{
    return opt ? opt->n_groups : 0;
}

uint64_t ct_optim_get_step(const ct_optim *opt)
{
    return opt ? opt->step : 0;
}

static ct_status check_group(const ct_optim *opt, size_t group, const char *what)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(opt != NULL, CT_ERR_INVALID_ARG, "%s: NULL optimizer", what);
    CT_REQUIRE(group < opt->n_groups, CT_ERR_INVALID_ARG, "%s: group %zu of %zu", what, group,
               opt->n_groups);
cleanup:
    return st;
}

ct_status ct_optim_set_lr(ct_optim *opt, size_t group, double lr)
{
    ct_status st = CT_SUCCESS;
    CT_TRY(check_group(opt, group, "ct_optim_set_lr"));
    /* any finite value, as torch: schedules can end slightly below 0 (OneCycleLR's last
     * step, chained cosine annealing) */
    CT_REQUIRE(isfinite(lr), CT_ERR_INVALID_ARG, "ct_optim_set_lr: lr must be finite, got %g",
               lr);
    opt->lr[group] = lr;
cleanup:
    return st;
}

ct_status ct_optim_get_lr(const ct_optim *opt, size_t group, double *lr)
{
    ct_status st = CT_SUCCESS;
    CT_TRY(check_group(opt, group, "ct_optim_get_lr"));
    CT_REQUIRE(lr != NULL, CT_ERR_INVALID_ARG, "ct_optim_get_lr: lr is NULL");
    *lr = opt->lr[group];
cleanup:
    return st;
}

ct_status ct_optim_set_weight_decay(ct_optim *opt, size_t group, double weight_decay)
{
    ct_status st = CT_SUCCESS;
    CT_TRY(check_group(opt, group, "ct_optim_set_weight_decay"));
    CT_REQUIRE(weight_decay >= 0 && isfinite(weight_decay), CT_ERR_INVALID_ARG,
               "ct_optim_set_weight_decay: weight_decay must be >= 0, got %g", weight_decay);
    opt->wd[group] = weight_decay;
cleanup:
    return st;
}

ct_status ct_optim_set_momentum(ct_optim *opt, size_t group, double momentum)
{
    ct_status st = CT_SUCCESS;
    CT_TRY(check_group(opt, group, "ct_optim_set_momentum"));
    ct_optim_kind kind = opt->o.kind;
    if (has_beta1(kind)) {
        CT_REQUIRE(momentum >= 0 && momentum < 1, CT_ERR_INVALID_ARG,
                   "%s: beta1 must be in [0, 1), got %g", ct_optim_kind_name(kind), momentum);
    } else {
        CT_REQUIRE(has_momentum(kind), CT_ERR_UNSUPPORTED, "%s has no momentum",
                   ct_optim_kind_name(kind));
        CT_REQUIRE(momentum >= 0 && isfinite(momentum), CT_ERR_INVALID_ARG,
                   "%s: momentum must be >= 0, got %g", ct_optim_kind_name(kind), momentum);
        if (momentum != 0)
            CT_TRY(ensure_slot(opt, momentum_slot(kind), 0.0f));
    }
    opt->mom[group] = momentum;
cleanup:
    return st;
}

ct_status ct_optim_get_momentum(const ct_optim *opt, size_t group, double *momentum)
{
    ct_status st = CT_SUCCESS;
    CT_TRY(check_group(opt, group, "ct_optim_get_momentum"));
    CT_REQUIRE(momentum != NULL, CT_ERR_INVALID_ARG, "ct_optim_get_momentum: momentum is NULL");
    CT_REQUIRE(has_momentum(opt->o.kind) || has_beta1(opt->o.kind), CT_ERR_UNSUPPORTED,
               "%s has no momentum", ct_optim_kind_name(opt->o.kind));
    *momentum = opt->mom[group];
cleanup:
    return st;
}

/* ---- state export ------------------------------------------------------------------ */

enum { E_STEP, E_LR, E_WD, E_MOM, E_READY, E_BUF };

typedef struct entry {
    const char *name;
    int what;
    int slot; /* E_BUF */
} entry;

/* The buffers each kind may have, by slot. */
static const char *buffer_name(ct_optim_kind k, int slot)
{
    static const char *names[5][NSLOTS] = {
        [CT_OPTIM_SGD] = {"momentum_buffer", NULL, NULL},
        [CT_OPTIM_ADAM] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
        [CT_OPTIM_ADAMW] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
        [CT_OPTIM_RMSPROP] = {"square_avg", "momentum_buffer", "grad_avg"},
        [CT_OPTIM_ADAGRAD] = {"sum", NULL, NULL},
    };
    return names[k][slot];
}

/* Whether slot `slot` may exist for these options (allocated now or on demand). */
static bool slot_allowed(const ct_optim_options *o, int slot)
{
    if (!buffer_name(o->kind, slot))
        return false;
    if (slot == SLOT2 && has_beta1(o->kind))
        return o->amsgrad;
    if (slot == SLOT2 && o->kind == CT_OPTIM_RMSPROP)
        return o->centered;
    return true;
}

/* Entries present now: scalars, then the allocated buffers. */
static size_t list_entries(const ct_optim *opt, entry *e)
{
    size_t n = 0;
    ct_optim_kind k = opt->o.kind;
    e[n++] = (entry){"step", E_STEP, 0};
    e[n++] = (entry){"lr", E_LR, 0};
    e[n++] = (entry){"weight_decay", E_WD, 0};
    if (has_momentum(k))
        e[n++] = (entry){"momentum", E_MOM, 0};
    if (has_beta1(k))
        e[n++] = (entry){"beta1", E_MOM, 0};
    if (k == CT_OPTIM_SGD)
        e[n++] = (entry){"momentum_buffer_ready", E_READY, 0};
    for (int s = 0; s < NSLOTS; s++)
        if (opt->state[s])
            e[n++] = (entry){buffer_name(k, s), E_BUF, s};
    return n;
}

static size_t entry_numel(const ct_optim *opt, const entry *e)
{
    switch (e->what) {
    case E_STEP: return 1;
    case E_BUF: return opt->numel;
    default: return opt->n_groups;
    }
}

size_t ct_optim_state_count(const ct_optim *opt)
{
    entry e[16];
    return opt ? list_entries(opt, e) : 0;
}

ct_status ct_optim_state_info_at(const ct_optim *opt, size_t index, ct_optim_state_info *out)
{
    ct_status st = CT_SUCCESS;
    entry e[16];
    CT_REQUIRE(opt && out, CT_ERR_INVALID_ARG, "ct_optim_state_info_at: NULL argument");
    size_t n = list_entries(opt, e);
    CT_REQUIRE(index < n, CT_ERR_INVALID_ARG, "ct_optim_state_info_at: index %zu of %zu", index,
               n);
    out->name = e[index].name;
    out->numel = entry_numel(opt, &e[index]);
    out->dtype = e[index].what == E_BUF ? CT_STATE_F32 : CT_STATE_F64;
cleanup:
    return st;
}

/* Finds `name` among the entries the options allow (existing or not). */
static bool find_entry(const ct_optim *opt, const char *name, entry *out)
{
    entry e[16];
    size_t n = list_entries(opt, e);
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].name, name) == 0) {
            *out = e[i];
            return true;
        }
    for (int s = 0; s < NSLOTS; s++)
        if (slot_allowed(&opt->o, s) && strcmp(buffer_name(opt->o.kind, s), name) == 0) {
            *out = (entry){buffer_name(opt->o.kind, s), E_BUF, s};
            return true;
        }
    return false;
}

ct_status ct_optim_state_get(ct_optim *opt, const char *name, void *host, size_t count)
{
    ct_status st = CT_SUCCESS;
    entry e;
    CT_REQUIRE(opt && name && host, CT_ERR_INVALID_ARG, "ct_optim_state_get: NULL argument");
    CT_REQUIRE(find_entry(opt, name, &e) && (e.what != E_BUF || opt->state[e.slot]),
               CT_ERR_NOT_FOUND, "%s optimizer has no state '%s'",
               ct_optim_kind_name(opt->o.kind), name);
    size_t n = entry_numel(opt, &e);
    CT_REQUIRE(count == n, CT_ERR_SHAPE, "optimizer state '%s' has %zu values, asked for %zu",
               name, n, count);
    double *d = host;
    switch (e.what) {
    case E_STEP: d[0] = (double)opt->step; break;
    case E_LR: memcpy(d, opt->lr, n * sizeof *d); break;
    case E_WD: memcpy(d, opt->wd, n * sizeof *d); break;
    case E_MOM: memcpy(d, opt->mom, n * sizeof *d); break;
    case E_READY:
        for (size_t g = 0; g < n; g++)
            d[g] = opt->ready[g] ? 1.0 : 0.0;
        break;
    case E_BUF: CT_TRY(ct_tensor_download(opt->state[e.slot], host, n)); break;
    }
cleanup:
    return st;
}

ct_status ct_optim_state_set(ct_optim *opt, const char *name, const void *host, size_t count)
{
    ct_status st = CT_SUCCESS;
    entry e;
    CT_REQUIRE(opt && name && host, CT_ERR_INVALID_ARG, "ct_optim_state_set: NULL argument");
    CT_REQUIRE(find_entry(opt, name, &e), CT_ERR_NOT_FOUND, "%s optimizer has no state '%s'",
               ct_optim_kind_name(opt->o.kind), name);
    size_t n = entry_numel(opt, &e);
    CT_REQUIRE(count == n, CT_ERR_SHAPE, "optimizer state '%s' has %zu values, got %zu", name, n,
               count);
    const double *d = host;
    switch (e.what) {
    case E_STEP:
        CT_REQUIRE(d[0] >= 0 && d[0] <= 9007199254740992.0 && d[0] == floor(d[0]),
                   CT_ERR_INVALID_ARG, "optimizer state 'step' must be a whole number >= 0, got %g",
                   d[0]);
        opt->step = (uint64_t)d[0];
        break;
    case E_LR:
        for (size_t g = 0; g < n; g++)
            CT_TRY(ct_optim_set_lr(opt, g, d[g]));
        break;
    case E_WD:
        for (size_t g = 0; g < n; g++)
            CT_TRY(ct_optim_set_weight_decay(opt, g, d[g]));
        break;
    case E_MOM:
        for (size_t g = 0; g < n; g++)
            CT_TRY(ct_optim_set_momentum(opt, g, d[g]));
        break;
    case E_READY:
        for (size_t g = 0; g < n; g++) {
            CT_REQUIRE(d[g] == 0 || d[g] == 1, CT_ERR_INVALID_ARG,
                       "optimizer state 'momentum_buffer_ready' must be 0 or 1, got %g", d[g]);
            opt->ready[g] = d[g] == 1;
        }
        break;
    case E_BUF:
        CT_TRY(ensure_slot(opt, e.slot, 0.0f));
        CT_TRY(ct_tensor_upload(opt->state[e.slot], host, n));
        break;
    }
cleanup:
    return st;
}
