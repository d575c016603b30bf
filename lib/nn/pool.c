/* lib/nn/pool.c — max, average and global average pooling (kernels/pool.cl).
 *
 * The output size follows PyTorch's pooling_output_shape, ceil mode included; the window
 * rules (ties, NaN, divisors) are described in the kernel file's banner. Max-pool backward
 * first recomputes each window's argmax into scratch slot 0, then every input element
 * gathers the dy of the windows that chose it. 2x2 windows at stride 2 without padding
 * take vectorised kernels that do the backward pass in one.
 */
#include "nn/ops.h"

enum { SLOT_IDX = 0 };

/* Launches a kernel of pool.cl over `n` work-items in work-groups of a fixed size (PoCL
 * compiles a kernel once per work-group size: letting the runtime pick one per shape
 * would recompile for every new shape). */
static ct_status pool_run(ct_context *ctx, const char *name, size_t n, size_t nargs,
                          const ct_arg *args)
{
    ct_status st = CT_SUCCESS;
    cl_kernel k = NULL;
    size_t local = ctx->info.is_gpu ? 64 : 8;
    CT_TRY(ct_kernel_get(ctx, "pool.cl", name, NULL, &k));
    CT_TRY(ct_kernel_setargs(k, name, nargs, args));
    CT_TRY(ct_launch(ctx, k, name, 1, &n, &local));
cleanup:
    return st;
}
#define POOL_RUN(ctx, name, n, ...)                                                                \
    pool_run((ctx), (name), (n), sizeof((ct_arg[]){__VA_ARGS__}) / sizeof(ct_arg),                 \
             (ct_arg[]){__VA_ARGS__})

/* Output size of one dimension, PyTorch's rule: floor or ceil of (in + 2*pad - k)/stride,
 * plus one; in ceil mode a last window starting past the input and left padding is
 * dropped. 0 when no window fits. */
size_t ct_pool_out_size(size_t in, size_t k, size_t stride, size_t pad, bool ceil_mode)
{
    long num = (long)in + 2 * (long)pad - (long)k + (ceil_mode ? (long)stride - 1 : 0);
    if (num < 0)
        return 0;
    long out = num / (long)stride + 1;
    if (ceil_mode && (out - 1) * (long)stride >= (long)in + (long)pad)
        out--;
    return out > 0 ? (size_t)out : 0;
}

typedef struct pool_geom {
    size_t nc, h, w, p, q;
} pool_geom;

/* Checks x and the parameters; fills the geometry. `y` (output shape) is checked when
 * given, `what` names the op in messages. */
static ct_status pool_check(const char *what, const ct_tensor *x, const ct_pool2d_params *p,
                            const ct_tensor *y, const char *yname, pool_geom *g)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(x != NULL && p != NULL, CT_ERR_INVALID_ARG, "%s: NULL argument", what);
    CT_REQUIRE(x->ndim == 4, CT_ERR_SHAPE, "%s: input must be (N, C, H, W), has %zu dims", what,
               x->ndim);
    CT_REQUIRE(p->kernel_h >= 1 && p->kernel_w >= 1 && p->stride_h >= 1 && p->stride_w >= 1,
               CT_ERR_INVALID_ARG, "%s: kernel and stride must be >= 1", what);
    CT_REQUIRE(2 * p->pad_h <= p->kernel_h && 2 * p->pad_w <= p->kernel_w, CT_ERR_INVALID_ARG,
               "%s: padding %zux%zu must be at most half the kernel %zux%zu", what, p->pad_h,
               p->pad_w, p->kernel_h, p->kernel_w);
    g->nc = x->shape[0] * x->shape[1], g->h = x->shape[2], g->w = x->shape[3];
    g->p = ct_pool_out_size(g->h, p->kernel_h, p->stride_h, p->pad_h, p->ceil_mode);
    g->q = ct_pool_out_size(g->w, p->kernel_w, p->stride_w, p->pad_w, p->ceil_mode);
    CT_REQUIRE(g->p > 0 && g->q > 0, CT_ERR_SHAPE,
               "%s: a %zux%zu window does not fit a %zux%zu input padded by %zux%zu", what,
               p->kernel_h, p->kernel_w, g->h, g->w, p->pad_h, p->pad_w);
    if (y)
        CT_TRY(ct_tensor_expect(y, yname, 4, (size_t[]){x->shape[0], x->shape[1], g->p, g->q}));
cleanup:
    return st;
}

/* Every generic pooling kernel ends with the same geometry arguments (POOL_GEOM in
 * kernels/pool.cl). */
#define POOL_GEOM_ARGS(g, p)                                                                       \
    CT_U32((g).nc), CT_U32((g).h), CT_U32((g).w), CT_U32((g).p), CT_U32((g).q),                    \
        CT_U32((p)->kernel_h), CT_U32((p)->kernel_w), CT_U32((p)->stride_h),                       \
        CT_U32((p)->stride_w), CT_U32((p)->pad_h), CT_U32((p)->pad_w)

bool ct_pool2d_is_2x2(const ct_pool2d_params *p, size_t h, size_t w)
{
    return p->kernel_h == 2 && p->kernel_w == 2 && p->stride_h == 2 && p->stride_w == 2 &&
           p->pad_h == 0 && p->pad_w == 0 && ct_pool_out_size(h, 2, 2, 0, p->ceil_mode) == h / 2 &&
           ct_pool_out_size(w, 2, 2, 0, p->ceil_mode) == w / 2;
}

/* 2x2 windows at stride 2, no padding, every window inside the input: maxpool2_* */
static bool pool_is_2x2(const ct_pool2d_params *p, const pool_geom *g)
{
    return ct_pool2d_is_2x2(p, g->h, g->w);
}

ct_status ct_maxpool2d_forward(ct_context *ctx, const ct_tensor *x, const ct_pool2d_params *p,
                               ct_tensor *y)
{
    ct_status st = CT_SUCCESS;
    pool_geom g = {0};
    CT_REQUIRE(ctx != NULL, CT_ERR_INVALID_ARG, "maxpool2d_forward: NULL context");
    CT_TRY(pool_check("maxpool2d_forward", x, p, y, "maxpool2d output y", &g));
    if (pool_is_2x2(p, &g))
        CT_TRY(POOL_RUN(ctx, "maxpool2_fwd", g.nc * g.p, CT_T(x), CT_T(y), CT_U32(g.nc),
                        CT_U32(g.h), CT_U32(g.w), CT_U32(g.p), CT_U32(g.q)));
    else /* values only: idx is not written but needs a valid buffer, y's storage */
        CT_TRY(POOL_RUN(ctx, "maxpool_fwd", g.nc * g.p, CT_T(x), CT_T(y), CT_MEM(y->mem), CT_U32(1),
                        POOL_GEOM_ARGS(g, p)));
cleanup:
    return st;
}

ct_status ct_maxpool2d_backward(ct_context *ctx, const ct_tensor *x, const ct_tensor *y,
                                const ct_tensor *dy, const ct_pool2d_params *p, bool relu_in,
                                ct_tensor *dx)
{
    ct_status st = CT_SUCCESS;
    pool_geom g = {0};
    cl_mem idx = NULL;
    CT_REQUIRE(ctx != NULL, CT_ERR_INVALID_ARG, "maxpool2d_backward: NULL context");
    CT_TRY(pool_check("maxpool2d_backward", x, p, dy, "maxpool2d output gradient dy", &g));
    if (y)
        CT_TRY(ct_tensor_expect(y, "maxpool2d output y", 4, dy->shape));
    CT_TRY(ct_tensor_expect(dx, "maxpool2d input gradient dx", 4, x->shape));
    if (pool_is_2x2(p, &g)) {
        CT_TRY(POOL_RUN(ctx, "maxpool2_bwd", g.nc * g.p, CT_T(x), CT_T(dy), CT_T(dx),
                        CT_U32(relu_in), CT_U32(g.nc), CT_U32(g.h), CT_U32(g.w), CT_U32(g.p),
                        CT_U32(g.q)));
    } else {
        CT_TRY(ct_scratch_get(ctx, SLOT_IDX, g.nc * g.p * g.q * sizeof(cl_uint), &idx));
        /* indices only (y is not written, dx stands in as its buffer) */
        CT_TRY(POOL_RUN(ctx, "maxpool_fwd", g.nc * g.p, CT_T(x), CT_T(dx), CT_MEM(idx), CT_U32(2),
                        POOL_GEOM_ARGS(g, p)));
        CT_TRY(POOL_RUN(ctx, "maxpool_bwd", g.nc * g.h, CT_T(x), CT_T(dy), CT_MEM(idx), CT_T(dx),
                        CT_U32(relu_in), POOL_GEOM_ARGS(g, p)));
    }
cleanup:
    return st;
}

ct_status ct_avgpool2d_forward(ct_context *ctx, const ct_tensor *x, const ct_pool2d_params *p,
                               ct_tensor *y)
{
    ct_status st = CT_SUCCESS;
    pool_geom g = {0};
    CT_REQUIRE(ctx != NULL, CT_ERR_INVALID_ARG, "avgpool2d_forward: NULL context");
    CT_TRY(pool_check("avgpool2d_forward", x, p, y, "avgpool2d output y", &g));
    CT_TRY(POOL_RUN(ctx, "avgpool_fwd", g.nc * g.p, CT_T(x), CT_T(y), CT_U32(p->count_include_pad),
                    POOL_GEOM_ARGS(g, p)));
cleanup:
    return st;
}

ct_status ct_avgpool2d_backward(ct_context *ctx, const ct_tensor *dy, const ct_pool2d_params *p,
                                ct_tensor *dx)
{
    ct_status st = CT_SUCCESS;
    pool_geom g = {0};
    CT_REQUIRE(ctx != NULL, CT_ERR_INVALID_ARG, "avgpool2d_backward: NULL context");
    CT_TRY(pool_check("avgpool2d_backward", dx, p, dy, "avgpool2d output gradient dy", &g));
    CT_TRY(POOL_RUN(ctx, "avgpool_bwd", g.nc * g.h, CT_T(dy), CT_T(dx),
                    CT_U32(p->count_include_pad), POOL_GEOM_ARGS(g, p)));
cleanup:
    return st;
}

ct_status ct_gap_forward(ct_context *ctx, const ct_tensor *x, ct_tensor *y)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(ctx != NULL && x != NULL, CT_ERR_INVALID_ARG, "gap_forward: NULL argument");
    CT_REQUIRE(x->ndim == 4, CT_ERR_SHAPE, "gap_forward: x must be (N, C, H, W), has %zu dims",
               x->ndim);
    CT_TRY(ct_tensor_expect(y, "global average pool output y", 2,
                            (size_t[]){x->shape[0], x->shape[1]}));
    CT_TRY(POOL_RUN(ctx, "gap_fwd", y->numel, CT_T(x), CT_T(y), CT_U32(y->numel),
                    CT_U32(x->shape[2] * x->shape[3])));
cleanup:
    return st;
}

ct_status ct_gap_backward(ct_context *ctx, const ct_tensor *dy, ct_tensor *dx)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(ctx != NULL && dx != NULL, CT_ERR_INVALID_ARG, "gap_backward: NULL argument");
    CT_REQUIRE(dx->ndim == 4, CT_ERR_SHAPE, "gap_backward: dx must be (N, C, H, W), has %zu dims",
               dx->ndim);
    CT_TRY(ct_tensor_expect(dy, "global average pool gradient dy", 2,
                            (size_t[]){dx->shape[0], dx->shape[1]}));
    CT_TRY(POOL_RUN(ctx, "gap_bwd", dx->numel, CT_T(dy), CT_T(dx), CT_U32(dy->numel),
                    CT_U32(dx->shape[2] * dx->shape[3])));
cleanup:
    return st;
}
