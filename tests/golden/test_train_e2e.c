/* tests/golden/test_train_e2e.c — MiniCNN trained for 5 full steps against PyTorch.
 *
 * Each step is the library's training loop exactly as a user writes it: zero_grad,
 * forward, CrossEntropyLoss (mean) forward+backward on the device, model backward,
 * optimizer step; nothing is read back until the end (the 5 losses go to views of one
 * device tensor). tests/golden/gen_minicnn.py runs the same 5 steps in float64 PyTorch
 * from the same initial weights (ct_model_init_params(1234), re-implemented there) on the
 * same batch of 8 images (x, target of minicnn.txt), for torch.optim.Adam(lr=1e-3) and
 * torch.optim.SGD(lr=1e-2, momentum=0.9), and records the losses and the final weights
 * (7.weight, 128x3136, as a strided subset plus row and column sums).
 *
 * Tolerances (|got - ref| <= atol + rtol*|ref|; measured worst on PoCL in brackets):
 *   - losses: float32 forward rounding (~1e-6, see test_minicnn_golden.c) plus what the
 *     earlier steps changed in the weights: atol 1e-5 + rtol 1e-4 [3.6e-7].
 *   - SGD weights: a step moves a weight by lr * (grad + momentum) ~ 1e-4, with the
 *     float32 gradient error ~1e-7 relative, plus the float32 rounding of the weights
 *     themselves (~3e-8 at |w| ~ 0.3): atol 1e-6 + rtol 1e-5 [6e-8].
 *   - Adam weights: Adam moves every weight with a non-zero gradient by ~lr = 1e-3 per
 *     step whatever the gradient's size (m / sqrt(v) ~ its sign), so a gradient's
 *     absolute float32 error (~5e-9) matters relative to the gradient itself: a weight
 *     whose gradient is ~1e-6 gets an update off by ~5e-3 * lr, ~5e-6 after 5 steps.
 *     atol 1e-5 + rtol 1e-5 [9e-7]; a wrong bias correction or a missing step shifts
 *     weights by >= 1e-4.
 *   - row/column sums of 7.weight (up to 3136 weights, summed here in double): atol
 *     5e-5 [Adam 5.7e-6, SGD 4.8e-7].
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "testutil.h"

#define SEED       1234
#define STEPS      5
#define SUB_STRIDE 61

#define LOSS_ATOL   1e-5
#define LOSS_RTOL   1e-4
#define SGD_W_ATOL  1e-6
#define ADAM_W_ATOL 1e-5
#define W_RTOL      1e-5
#define WSUM_ATOL   5e-5

/* Compares the model's weights with <opt>.final.<name> (or the sub./rowsum./colsum.
 * records of a big tensor). */
static void check_weights(const tu_golden *g, const char *opt, ct_model *m, double w_atol)
{
    float *w = tu_model_params(m);
    for (size_t i = 0; i < ct_model_param_count(m); i++) {
        const char *name;
        size_t ndim, shape[CT_MAX_DIMS], off;
        TU_OK(ct_model_param_info(m, i, &name, &ndim, shape, &off));
        char prefix[32], key[96];
        snprintf(prefix, sizeof prefix, "%s.", opt);
        snprintf(key, sizeof key, "final.%s", name);
        tu_golden_check_param(g, prefix, key, w + off, ndim, shape, SUB_STRIDE, w_atol, WSUM_ATOL,
                              W_RTOL);
    }
    free(w);
}

static void train_and_check(const char *opt_name, const ct_optim_options *oo, double w_atol)
{
    ct_context *ctx = tu_context();
    tu_golden *data = tu_golden_load("minicnn.txt");
    tu_golden *g = tu_golden_load("minicnn_train.txt");
    ct_model *m = NULL;
    ct_loss *loss = NULL;
    ct_optim *opt = NULL;
    TU_OK(ct_model_create_spec(ctx, "minicnn", 3, (size_t[]){1, 28, 28}, SEED, &m));
    ct_loss_options lo = ct_loss_options_default(CT_LOSS_CROSS_ENTROPY);
    TU_OK(ct_loss_create(ctx, &lo, &loss));
    TU_OK(ct_optim_create(ctx, oo, ct_model_params(m), ct_model_grads(m), &opt));

    ct_tensor *x = tu_gold_upload(ctx, tu_golden_get(data, "x"));
    ct_tensor *target = tu_gold_upload(ctx, tu_golden_get(data, "target"));
    ct_tensor *dlogits = NULL, *losses = NULL, *lv[STEPS] = {NULL};
    TU_OK(ct_tensor_create(ctx, 2, (size_t[]){8, 10}, &dlogits));
    TU_OK(ct_tensor_create(ctx, 1, (size_t[]){STEPS}, &losses));
    for (size_t s = 0; s < STEPS; s++)
        TU_OK(ct_tensor_view(losses, s, 1, (size_t[]){1}, &lv[s]));

    for (size_t s = 0; s < STEPS; s++) {
        ct_tensor *logits = NULL;
        TU_OK(ct_model_zero_grad(m));
        TU_OK(ct_model_forward(m, x, &logits));
        TU_OK(ct_loss_forward_backward(loss, logits, target, lv[s], dlogits));
        TU_OK(ct_model_backward(m, dlogits));
        TU_OK(ct_optim_step(opt));
    }
    TU_OK(ct_loss_check(loss, NULL));

    float got[STEPS];
    TU_OK(ct_tensor_download(losses, got, STEPS));
    char key[64];
    snprintf(key, sizeof key, "%s.loss", opt_name);
    tu_assert_close(key, got, tu_golden_get(g, key)->v, STEPS, LOSS_ATOL, LOSS_RTOL);
    /* training on one batch must lower its loss */
    cr_assert(got[STEPS - 1] < got[0], "%s: loss went from %g to %g", opt_name, (double)got[0],
              (double)got[STEPS - 1]);
    check_weights(g, opt_name, m, w_atol);

    for (size_t s = 0; s < STEPS; s++)
        ct_tensor_free(lv[s]);
    ct_tensor_free(losses);
    ct_tensor_free(dlogits);
    ct_tensor_free(target);
    ct_tensor_free(x);
    ct_optim_free(opt);
    ct_loss_free(loss);
    ct_model_free(m);
    tu_golden_free(g);
    tu_golden_free(data);
    ct_context_free(ctx);
}

Test(train_e2e, cross_entropy_adam)
{
    ct_optim_options o = ct_optim_defaults(CT_OPTIM_ADAM);
    o.lr = 1e-3;
    train_and_check("adam", &o, ADAM_W_ATOL);
}

Test(train_e2e, cross_entropy_sgd_momentum)
{
    ct_optim_options o = ct_optim_defaults(CT_OPTIM_SGD);
    o.lr = 1e-2;
    o.momentum = 0.9;
    train_and_check("sgd", &o, SGD_W_ATOL);
}
