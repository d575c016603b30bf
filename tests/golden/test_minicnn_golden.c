/* tests/golden/test_minicnn_golden.c — MiniCNN ("minicnn" spec) against PyTorch.
 *
 * tests/golden/gen_minicnn.py builds the same torch.nn.Sequential, loads the weights that
 * ct_model_init_params(seed) documents (re-implemented in Python), and records the
 * float64 forward, the cross-entropy loss, d loss/d logits and every parameter gradient
 * for a fixed batch of 8 MNIST-shaped images, plus the forward of the same spec on a
 * CIFAR-shaped batch. The model here is built only through the public API.
 *
 * Tolerances (|got - ref| <= atol + rtol*|ref|, ref in float64, got in float32):
 *   - initial weights: exact. Same integer stream, same double arithmetic, one rounding
 *     to float32 on both sides.
 *   - logits: the deepest dot product is Linear(3136->128), a float32 sum of 3136 terms
 *     of size |w*a| <~ 0.02, after the conv layers' 9- and 288-term sums. Rounding grows
 *     like sqrt(K)*2^-24 relative per sum in practice: ~1e-6 at worst on logits of size
 *     ~0.2 (measured on PoCL: 3.9e-7). atol 1e-5 + rtol 1e-4 keeps a margin of >= 10 and
 *     still fails on any indexing, fusion or layout error (those move logits by >= 1e-3).
 *   - gradients (~1e-2): sums over the batch and the positions, 6272 terms for conv 0,
 *     1568 for conv 3, 8 for the linears, of products that already carry the forward's
 *     rounding (measured worst 1.2e-7). atol 2e-6 + rtol 1e-4 keeps a margin of >= 10
 *     and fails on a wrong ReLU mask, max routing or missing accumulation (>= 1e-4).
 *   - row/column sums of the 128x3136 gradient (up to |32.8|, sums of 3136 gradients,
 *     summed here in double): atol 2e-5 + rtol 1e-4 (measured worst 3.8e-6 on 32.8).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "testutil.h"

#define SEED_MNIST 1234
#define SEED_CIFAR 99
#define SUB_STRIDE 61 /* gen_minicnn.py: sub.grad.<p> = flat[::61] */

#define LOGIT_ATOL   1e-5
#define LOGIT_RTOL   1e-4
#define GRAD_ATOL    2e-6
#define GRAD_RTOL    1e-4
#define GRADSUM_ATOL 2e-5

static ct_model *make_model(ct_context *ctx, size_t c, size_t h, size_t w, uint64_t seed)
{
    ct_model *m = NULL;
    TU_OK(ct_model_create_spec(ctx, "minicnn", 3, (size_t[]){c, h, w}, seed, &m));
    return m;
}

/* The model's parameters are exactly the ones gen_minicnn.py generated. */
static void check_init(const tu_golden *g, const char *prefix, ct_model *m)
{
    float *p = tu_model_params(m);
    cr_assert_eq(ct_model_param_count(m), 8);
    for (size_t i = 0; i < ct_model_param_count(m); i++) {
        const char *name;
        size_t ndim, shape[CT_MAX_DIMS], off;
        TU_OK(ct_model_param_info(m, i, &name, &ndim, shape, &off));
        size_t n = 1;
        for (size_t d = 0; d < ndim; d++)
            n *= shape[d];
        char key[96];
        snprintf(key, sizeof key, "%sinit_head.%s", prefix, name);
        tu_assert_close(key, p + off, tu_golden_get(g, key)->v, 8, 0.0, 0.0);
        snprintf(key, sizeof key, "%sinit_tail.%s", prefix, name);
        tu_assert_close(key, p + off + n - 8, tu_golden_get(g, key)->v, 8, 0.0, 0.0);
        double sum = 0.0;
        for (size_t j = 0; j < n; j++)
            sum += p[off + j];
        snprintf(key, sizeof key, "%sinit_sum.%s", prefix, name);
        float fsum = (float)sum;
        /* the recorded sum is a float64 sum rounded to float32 */
        tu_assert_close(key, &fsum, tu_golden_get(g, key)->v, 1, 1e-6, 1e-7);
    }
    free(p);
}

Test(minicnn_golden, names_shapes_and_init)
{
    ct_context *ctx = tu_context();
    tu_golden *g = tu_golden_load("minicnn.txt");
    ct_model *m = make_model(ctx, 1, 28, 28, SEED_MNIST);

    static const char *names[8] = {"0.weight", "0.bias", "3.weight", "3.bias",
                                   "7.weight", "7.bias", "9.weight", "9.bias"};
    static const size_t shapes[8][4] = {{32, 1, 3, 3}, {32},  {64, 32, 3, 3}, {64},
                                        {128, 3136},   {128}, {10, 128},      {10}};
    static const size_t ndims[8] = {4, 1, 4, 1, 2, 1, 2, 1};
    size_t expect_off = 0;
    for (size_t i = 0; i < 8; i++) {
        const char *name;
        size_t ndim, shape[CT_MAX_DIMS], off;
        TU_OK(ct_model_param_info(m, i, &name, &ndim, shape, &off));
        cr_assert_str_eq(name, names[i]);
        cr_assert_eq(ndim, ndims[i], "%s ndim", name);
        size_t n = 1;
        for (size_t d = 0; d < ndim; d++) {
            cr_assert_eq(shape[d], shapes[i][d], "%s dim %zu", name, d);
            n *= shape[d];
        }
        cr_assert_eq(off, expect_off, "%s offset", name);
        expect_off += n;
    }
    cr_assert_eq(ct_model_param_numel(m), expect_off);
    cr_assert_eq(ct_model_param_numel(m), 421642);
    cr_assert_eq(ct_model_buffer_count(m), 0);
    check_init(g, "", m);

    ct_model_free(m);
    tu_golden_free(g);
    ct_context_free(ctx);
}

static void check_grads(const tu_golden *g, ct_model *m)
{
    float *gr = tu_download(ct_model_grads(m));
    for (size_t i = 0; i < ct_model_param_count(m); i++) {
        const char *name;
        size_t ndim, shape[CT_MAX_DIMS], off;
        TU_OK(ct_model_param_info(m, i, &name, &ndim, shape, &off));
        char key[96];
        snprintf(key, sizeof key, "grad.%s", name);
        /* grad.<name>, or for the big 2-D gradient a strided subset and its row/column sums */
        tu_golden_check_param(g, "", key, gr + off, ndim, shape, SUB_STRIDE, GRAD_ATOL,
                              GRADSUM_ATOL, GRAD_RTOL);
    }
    free(gr);
}

/* The forward, the loss and its gradient from our logits, and the backward, against
 * PyTorch; `tune` (CLTRAIN_TUNE) picks the kernels' paths, NULL the device's default. */
static void forward_cross_entropy_backward(const char *tune)
{
    if (tune)
        setenv("CLTRAIN_TUNE", tune, 1);
    ct_context *ctx = tu_context();
    tu_golden *g = tu_golden_load("minicnn.txt");
    ct_model *m = make_model(ctx, 1, 28, 28, SEED_MNIST);
    ct_tensor *x = tu_gold_upload(ctx, tu_golden_get(g, "x"));
    const tu_gold_tensor *tgt = tu_golden_get(g, "target");
    const tu_gold_tensor *gl = tu_golden_get(g, "logits");
    const size_t n = 8, k = 10;

    ct_tensor *y = NULL;
    TU_OK(ct_model_zero_grad(m));
    TU_OK(ct_model_forward(m, x, &y));
    cr_assert(ct_tensor_ndim(y) == 2 && ct_tensor_dim(y, 0) == n && ct_tensor_dim(y, 1) == k);
    float *logits = tu_download(y);
    tu_assert_close("logits", logits, gl->v, n * k, LOGIT_ATOL, LOGIT_RTOL);

    /* Cross-entropy (mean) and its gradient, in double on the host from our logits:
     * d/dz_ij = (softmax(z_i)_j - [j == t_i]) / N. Same tolerance as the logits: both are
     * smooth functions of them with derivatives below 1. */
    double loss = 0.0, dl[80];
    float dlf[80], lossf;
    for (size_t i = 0; i < n; i++) {
        double mx = -INFINITY, s = 0.0;
        for (size_t j = 0; j < k; j++)
            mx = fmax(mx, logits[i * k + j]);
        for (size_t j = 0; j < k; j++)
            s += exp(logits[i * k + j] - mx);
        size_t t = (size_t)tgt->v[i];
        loss += (log(s) + mx - logits[i * k + t]) / (double)n;
        for (size_t j = 0; j < k; j++)
            dl[i * k + j] = (exp(logits[i * k + j] - mx) / s - (j == t)) / (double)n;
    }
    lossf = (float)loss;
    for (size_t i = 0; i < n * k; i++)
        dlf[i] = (float)dl[i];
    tu_assert_close("loss", &lossf, tu_golden_get(g, "loss")->v, 1, LOGIT_ATOL, LOGIT_RTOL);
    tu_assert_close("dlogits", dlf, tu_golden_get(g, "dlogits")->v, n * k, LOGIT_ATOL, LOGIT_RTOL);

    /* Backward from PyTorch's float32 dlogits, so the gradients test backward alone. */
    ct_tensor *dy = tu_gold_upload(ctx, tu_golden_get(g, "dlogits"));
    TU_OK(ct_model_backward(m, dy));
    check_grads(g, m);

    free(logits);
    ct_tensor_free(dy);
    ct_tensor_free(x);
    ct_model_free(m);
    tu_golden_free(g);
    ct_context_free(ctx);
    unsetenv("CLTRAIN_TUNE");
}

Test(minicnn_golden, forward_cross_entropy_backward)
{
    forward_cross_entropy_backward(NULL);
}

/* Every convolution pass as im2col + GEMM (the model then fuses no pool): the same
 * numbers within the same tolerances (the sums run in another order). */
Test(minicnn_golden, forward_cross_entropy_backward_as_gemm)
{
    forward_cross_entropy_backward("-DCONV_GEMM=7 -DCONV_GEMM_MB=1");
}

/* The same spec adapts to 3x32x32 (Linear in-features 64*8*8). Train and eval mode
 * give the same logits: MiniCNN has neither dropout nor batch norm. */
Test(minicnn_golden, cifar_shaped_forward)
{
    ct_context *ctx = tu_context();
    tu_golden *g = tu_golden_load("minicnn.txt");
    ct_model *m = make_model(ctx, 3, 32, 32, SEED_CIFAR);
    check_init(g, "c.", m);
    const char *name;
    size_t ndim, shape[CT_MAX_DIMS];
    TU_OK(ct_model_param_info(m, 4, &name, &ndim, shape, NULL));
    cr_assert(ndim == 2 && shape[0] == 128 && shape[1] == 4096, "7.weight is not (128, 4096)");

    ct_tensor *x = tu_gold_upload(ctx, tu_golden_get(g, "c.x"));
    const tu_gold_tensor *gl = tu_golden_get(g, "c.logits");
    ct_tensor *y = NULL;
    for (int mode = 0; mode < 2; mode++) {
        ct_model_set_training(m, mode == 0);
        TU_OK(ct_model_forward(m, x, &y));
        cr_assert(ct_tensor_dim(y, 0) == 4 && ct_tensor_dim(y, 1) == 10);
        float *logits = tu_download(y);
        tu_assert_close(mode ? "c.logits (eval)" : "c.logits (train)", logits, gl->v, 40,
                        LOGIT_ATOL, LOGIT_RTOL);
        free(logits);
    }
    ct_tensor_free(x);
    ct_model_free(m);
    tu_golden_free(g);
    ct_context_free(ctx);
}
