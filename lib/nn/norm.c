/* lib/nn/norm.c — batch normalisation over (N, C, H, W), (N, C, L) or (N, C), per channel.
 *
 * The kernels, their launch shapes and the exact formulas are described in
 * kernels/norm.cl. Host side: shape checks, the slice count S of the deterministic
 * per-channel reductions, and scratch memory (slot 0: partial sums, slot 1: second partial
 * sums, slot 2: per-channel coefficients), nothing allocated.
 *
 * Semantics (PyTorch's BatchNorm in train()/eval()):
 *   training: y = (x - mean) / sqrt(var + eps) * gamma + beta with the batch mean and the
 *             biased variance; running_mean/var (if given) become
 *             (1 - momentum) * running + momentum * stat, using the unbiased variance
 *             var * M / (M - 1), M = N*H*W; save_mean and save_invstd = 1/sqrt(var + eps)
 *             are written for the backward. M == 1 is CT_ERR_SHAPE, as in PyTorch.
 *   eval:     the same with running_mean/running_var; nothing is updated, save_* unused.
 */
#include "nn/ops.h"

enum { SLOT_PART = 0, SLOT_PART2 = 1, SLOT_COEF = 2 };

/* Work-items a reduction should offer in total; channels are split into slices of whole
 * samples until there are about this many. Depends on the shape only, so a given shape
 * always sums in the same order. */
#define CT_BN_TARGET_ITEMS 256

typedef struct bn_shape {
    size_t n, c, hw;
} bn_shape;

static ct_status bn_shape_of(const ct_tensor *x, bn_shape *s)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(x->ndim >= 2 && x->ndim <= 4, CT_ERR_SHAPE,
               "batchnorm: x must be (N, C), (N, C, L) or (N, C, H, W), has %zu dims", x->ndim);
    CT_REQUIRE(x->numel <= UINT32_MAX, CT_ERR_UNSUPPORTED, "batchnorm: more than 2^32 elements");
    s->n = x->shape[0];
    s->c = x->shape[1];
    s->hw = x->numel / (s->n * s->c);
cleanup:
    return st;
}

static ct_status expect_channels(const ct_tensor *t, const char *what, size_t c)
{
    ct_status st = CT_SUCCESS;
    if (t)
        CT_REQUIRE(t->numel == c, CT_ERR_SHAPE, "batchnorm: %s has %zu elements, expected C = %zu",
                   what, t->numel, c);
cleanup:
    return st;
}

static size_t bn_slices(const bn_shape *s)
{
    size_t want = (CT_BN_TARGET_ITEMS + s->c - 1) / s->c;
    return want < s->n ? want : s->n;
}

/* coef-driven row kernel: bn_apply_* or bn_bwd_apply_*. */
static ct_status bn_rows(ct_context *ctx, const char *name2d, const char *name1d,
                         const bn_shape *s, size_t nargs, const ct_arg *args)
{
    ct_status st = CT_SUCCESS;
    cl_kernel k = NULL;
    size_t global[2] = {s->n * s->c, 1};
    cl_uint dims = 1;
    const char *name = s->hw == 1 ? name1d : name2d;
    if (s->hw == 1) {
        global[0] = (s->c + 7) / 8;
        global[1] = s->n;
        dims = 2;
    }
    CT_TRY(ct_kernel_get(ctx, "norm.cl", name, NULL, &k));
    CT_TRY(ct_kernel_setargs(k, name, nargs, args));
    CT_TRY(ct_launch(ctx, k, name, dims, global, NULL));
cleanup:
    return st;
}

ct_status ct_batchnorm_forward(ct_context *ctx, const ct_tensor *x, const ct_tensor *gamma,
                               const ct_tensor *beta, ct_tensor *running_mean,
                               ct_tensor *running_var, const ct_bn_params *p,
                               ct_tensor *save_mean, ct_tensor *save_invstd, ct_tensor *y)
{
    ct_status st = CT_SUCCESS;
    cl_kernel k = NULL;
    cl_mem part = NULL, part2 = NULL, coef = NULL;
    bn_shape s;
    CT_REQUIRE(ctx && x && p && y, CT_ERR_INVALID_ARG, "batchnorm forward: NULL argument");
    CT_TRY(bn_shape_of(x, &s));
    CT_TRY(ct_tensor_expect(y, "batchnorm y", x->ndim, x->shape));
    CT_TRY(expect_channels(gamma, "gamma", s.c));
    CT_TRY(expect_channels(beta, "beta", s.c));
    CT_TRY(expect_channels(running_mean, "running_mean", s.c));
    CT_TRY(expect_channels(running_var, "running_var", s.c));
    CT_TRY(expect_channels(save_mean, "save_mean", s.c));
    CT_TRY(expect_channels(save_invstd, "save_invstd", s.c));
    CT_REQUIRE(p->eps >= 0.0f, CT_ERR_INVALID_ARG, "batchnorm: eps = %g", (double)p->eps);
    CT_REQUIRE((running_mean == NULL) == (running_var == NULL), CT_ERR_INVALID_ARG,
               "batchnorm: running_mean and running_var come together");

    const ct_tensor *any = x; /* stands in for absent tensors; never read then */
    cl_uint affine = (gamma ? 1u : 0u) | (beta ? 2u : 0u);
    CT_TRY(ct_scratch_get(ctx, SLOT_COEF, 3 * s.c * sizeof(float), &coef));

    if (p->training) {
        size_t m = s.n * s.hw, S = bn_slices(&s);
        CT_REQUIRE(m > 1, CT_ERR_SHAPE,
                   "batchnorm: training needs more than 1 value per channel (N*H*W = %zu)", m);
        CT_REQUIRE(save_mean && save_invstd, CT_ERR_INVALID_ARG,
                   "batchnorm: training needs save_mean and save_invstd");
        CT_REQUIRE(p->momentum >= 0.0f && p->momentum <= 1.0f, CT_ERR_INVALID_ARG,
                   "batchnorm: momentum = %g", (double)p->momentum);
        float inv_m = (float)(1.0 / (double)m);
        float unbias = (float)((double)m / (double)(m - 1));
        size_t g2[2] = {S, s.c};
        CT_TRY(ct_scratch_get(ctx, SLOT_PART, S * s.c * sizeof(float), &part));
        CT_TRY(ct_scratch_get(ctx, SLOT_PART2, S * s.c * sizeof(float), &part2));

        CT_TRY(ct_kernel_get(ctx, "norm.cl", "bn_part_sum", NULL, &k));
        CT_TRY(CT_SETARGS(k, "bn_part_sum", CT_T(x), CT_MEM(part), CT_U32(s.n), CT_U32(s.c),
                          CT_U32(s.hw), CT_U32(S)));
        CT_TRY(ct_launch(ctx, k, "bn_part_sum", 2, g2, NULL));

        CT_TRY(ct_kernel_get(ctx, "norm.cl", "bn_part_sqdev", NULL, &k));
        CT_TRY(CT_SETARGS(k, "bn_part_sqdev", CT_T(x), CT_MEM(part), CT_MEM(part2), CT_U32(s.n),
                          CT_U32(s.c), CT_U32(s.hw), CT_U32(S), CT_F32(inv_m)));
        CT_TRY(ct_launch(ctx, k, "bn_part_sqdev", 2, g2, NULL));

        cl_uint flags = affine | (running_mean ? 4u : 0u) | 8u;
        CT_TRY(ct_kernel_get(ctx, "norm.cl", "bn_finalize", NULL, &k));
        CT_TRY(CT_SETARGS(k, "bn_finalize", CT_MEM(part), CT_MEM(part2), CT_T(gamma ? gamma : any),
                          CT_T(beta ? beta : any), CT_T(running_mean ? running_mean : save_mean),
                          CT_T(running_var ? running_var : save_invstd), CT_T(save_mean),
                          CT_T(save_invstd), CT_MEM(coef), CT_U32(s.c), CT_U32(S), CT_F32(inv_m),
                          CT_F32(unbias), CT_F32(p->eps), CT_F32(p->momentum), CT_U32(flags)));
        CT_TRY(ct_launch(ctx, k, "bn_finalize", 1, &s.c, NULL));
    } else {
        CT_REQUIRE(running_mean && running_var, CT_ERR_INVALID_ARG,
                   "batchnorm: eval mode needs running_mean and running_var");
        CT_TRY(ct_kernel_get(ctx, "norm.cl", "bn_eval_coef", NULL, &k));
        CT_TRY(CT_SETARGS(k, "bn_eval_coef", CT_T(gamma ? gamma : any), CT_T(beta ? beta : any),
                          CT_T(running_mean), CT_T(running_var), CT_MEM(coef), CT_U32(s.c),
                          CT_F32(p->eps), CT_U32(affine)));
        CT_TRY(ct_launch(ctx, k, "bn_eval_coef", 1, &s.c, NULL));
    }

    if (s.hw == 1) {
        ct_arg args[] = {CT_T(x), CT_T(y), CT_MEM(coef), CT_U32(s.n), CT_U32(s.c)};
        CT_TRY(bn_rows(ctx, "bn_apply_2d", "bn_apply_1d", &s, 5, args));
    } else {
        ct_arg args[] = {CT_T(x), CT_T(y), CT_MEM(coef), CT_U32(s.n), CT_U32(s.c), CT_U32(s.hw)};
        CT_TRY(bn_rows(ctx, "bn_apply_2d", "bn_apply_1d", &s, 6, args));
    }
cleanup:
    return st;
}

ct_status ct_batchnorm_backward(ct_context *ctx, const ct_tensor *x, const ct_tensor *gamma,
                                const ct_tensor *save_mean, const ct_tensor *save_invstd,
                                const ct_tensor *dy, ct_tensor *dx, ct_tensor *dgamma,
                                ct_tensor *dbeta)
{
    ct_status st = CT_SUCCESS;
    cl_kernel k = NULL;
    cl_mem part = NULL, part2 = NULL, coef = NULL;
    bn_shape s;
    CT_REQUIRE(ctx && x && save_mean && save_invstd && dy, CT_ERR_INVALID_ARG,
               "batchnorm backward: NULL argument");
    CT_TRY(bn_shape_of(x, &s));
    CT_TRY(ct_tensor_expect(dy, "batchnorm dy", x->ndim, x->shape));
    if (dx)
        CT_TRY(ct_tensor_expect(dx, "batchnorm dx", x->ndim, x->shape));
    CT_TRY(expect_channels(gamma, "gamma", s.c));
    CT_TRY(expect_channels(save_mean, "save_mean", s.c));
    CT_TRY(expect_channels(save_invstd, "save_invstd", s.c));
    CT_TRY(expect_channels(dgamma, "dgamma", s.c));
    CT_TRY(expect_channels(dbeta, "dbeta", s.c));
    if (!dx && !dgamma && !dbeta)
        goto cleanup;

    size_t m = s.n * s.hw, S = bn_slices(&s);
    size_t g2[2] = {S, s.c};
    float inv_m = (float)(1.0 / (double)m);
    const ct_tensor *any = x;
    CT_TRY(ct_scratch_get(ctx, SLOT_PART, S * s.c * sizeof(float), &part));
    CT_TRY(ct_scratch_get(ctx, SLOT_PART2, S * s.c * sizeof(float), &part2));
    CT_TRY(ct_scratch_get(ctx, SLOT_COEF, 4 * s.c * sizeof(float), &coef));

    CT_TRY(ct_kernel_get(ctx, "norm.cl", "bn_bwd_part", NULL, &k));
    CT_TRY(CT_SETARGS(k, "bn_bwd_part", CT_T(x), CT_T(dy), CT_T(save_mean), CT_MEM(part),
                      CT_MEM(part2), CT_U32(s.n), CT_U32(s.c), CT_U32(s.hw), CT_U32(S)));
    CT_TRY(ct_launch(ctx, k, "bn_bwd_part", 2, g2, NULL));

    cl_uint flags = (gamma ? 1u : 0u) | (dgamma ? 2u : 0u) | (dbeta ? 4u : 0u);
    CT_TRY(ct_kernel_get(ctx, "norm.cl", "bn_bwd_finalize", NULL, &k));
    CT_TRY(CT_SETARGS(k, "bn_bwd_finalize", CT_MEM(part), CT_MEM(part2),
                      CT_T(gamma ? gamma : any), CT_T(save_mean), CT_T(save_invstd),
                      CT_T(dgamma ? dgamma : save_mean), CT_T(dbeta ? dbeta : save_mean),
                      CT_MEM(coef), CT_U32(s.c), CT_U32(S), CT_F32(inv_m), CT_U32(flags)));
    CT_TRY(ct_launch(ctx, k, "bn_bwd_finalize", 1, &s.c, NULL));

    if (dx && s.hw == 1) {
        ct_arg args[] = {CT_T(x), CT_T(dy), CT_T(dx), CT_MEM(coef), CT_U32(s.n), CT_U32(s.c)};
        CT_TRY(bn_rows(ctx, "bn_bwd_apply_2d", "bn_bwd_apply_1d", &s, 6, args));
    } else if (dx) {
        ct_arg args[] = {CT_T(x),      CT_T(dy),     CT_T(dx),     CT_MEM(coef),
                         CT_U32(s.n),  CT_U32(s.c),  CT_U32(s.hw)};
        CT_TRY(bn_rows(ctx, "bn_bwd_apply_2d", "bn_bwd_apply_1d", &s, 7, args));
    }
cleanup:
    return st;
}
