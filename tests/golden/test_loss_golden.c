/* Every loss option combination against PyTorch 1.13's own float32 values and autograd
 * gradients (tests/golden/gen_loss.py -> tests/golden/data/loss.txt): the loss, the fused
 * gradient (grad_output 1) and ct_loss_backward() with a random grad_output, for the three
 * reductions of each case.
 *
 * Tolerances, |got - torch| <= atol + rtol*|torch|. Both sides are float32 and compute
 * the same formulas in a different order (log-sum-exp, the reductions' summation order,
 * 1/D folded in before or after the product), so they differ by a few float32 roundings
 * of the largest intermediate: rtol 1e-5 is ~100 ulps, room for sums of up to 72 terms
 * and the (m - x) + log(sum) rearrangement at |x| = 1e4. atol covers values that should
 * be 0 and come out as rounding noise: 1e-6 for the losses and 1e-6 for the gradients,
 * whose entries are probabilities/N-sized (~0.01-1), where one rounding of a
 * probability-sized intermediate is 6e-8. NaN must match NaN (all-ignored means).
 * A wrong formula (weight, smoothing or denominator rule) is off by percent, far outside
 * these. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cltrain/cltrain.h"
#include "golden.h"
#include "testutil.h"

#define LOSS_ATOL 1e-6
#define LOSS_RTOL 1e-5
#define GRAD_ATOL 1e-6
#define GRAD_RTOL 1e-5

static const char *red_names[3] = {"mean", "sum", "none"};

/* Runs golden case `name` (the prefix of its records) for every reduction. */
static void run_case(ct_context *ctx, const tu_golden *g, const char *name)
{
    char key[256], what[300];
#define REC(suffix) (snprintf(key, sizeof key, "%s.%s", name, suffix), tu_golden_get(g, key))
    const tu_gold_tensor *op = REC("opts");
    cr_assert_eq(op->numel, 8, "%s.opts has %zu values", name, op->numel);
    ct_loss_options o = ct_loss_options_default((ct_loss_kind)op->v[0]);
    o.ignore_index = (int32_t)op->v[1];
    o.label_smoothing = (float)op->v[2];
    o.beta = (float)op->v[3];
    o.delta = (float)op->v[4];
    float *w = NULL, *pw = NULL;
    if (op->v[6] != 0.0) {
        const tu_gold_tensor *r = REC("w");
        w = tu_gold_floats(r);
        o.weight = w;
        o.weight_ndim = r->ndim;
        for (size_t i = 0; i < r->ndim; i++)
            o.weight_shape[i] = r->shape[i];
    }
    if (op->v[7] != 0.0) {
        const tu_gold_tensor *r = REC("pw");
        pw = tu_gold_floats(r);
        o.pos_weight = pw;
        o.pos_weight_ndim = r->ndim;
        for (size_t i = 0; i < r->ndim; i++)
            o.pos_weight_shape[i] = r->shape[i];
    }
    ct_tensor *x = tu_gold_upload(ctx, REC("x"));
    ct_tensor *t = tu_gold_upload(ctx, REC("t"));
    ct_tensor *grad = NULL;
    size_t xshape[CT_MAX_DIMS];
    for (size_t i = 0; i < ct_tensor_ndim(x); i++)
        xshape[i] = ct_tensor_dim(x, i);
    TU_OK(ct_tensor_create(ctx, ct_tensor_ndim(x), xshape, &grad));

    for (int red = 0; red < 3; red++) {
        char sub[64];
        o.reduction = (ct_reduction)red;
        ct_loss *loss = NULL;
        TU_OK(ct_loss_create(ctx, &o, &loss));
        snprintf(sub, sizeof sub, "%s.out", red_names[red]);
        ct_tensor *out = tu_gold_upload(ctx, REC(sub)); /* right shape; overwritten */
        const tu_gold_tensor *ref_out = tu_golden_get(g, key);
        snprintf(sub, sizeof sub, "%s.go", red_names[red]);
        ct_tensor *go = tu_gold_upload(ctx, REC(sub));

        TU_OK(ct_tensor_fill(out, 12345.0f));
        TU_OK(ct_loss_forward(loss, x, t, out));
        snprintf(what, sizeof what, "%s.%s forward", name, red_names[red]);
        tu_gold_expect(what, out, ref_out, LOSS_ATOL, LOSS_RTOL);

        TU_OK(ct_tensor_fill(out, 12345.0f));
        TU_OK(ct_tensor_fill(grad, 12345.0f));
        TU_OK(ct_loss_forward_backward(loss, x, t, out, grad));
        snprintf(what, sizeof what, "%s.%s forward_backward loss", name, red_names[red]);
        tu_gold_expect(what, out, ref_out, LOSS_ATOL, LOSS_RTOL);
        snprintf(what, sizeof what, "%s.%s forward_backward grad", name, red_names[red]);
        snprintf(sub, sizeof sub, "%s.grad", red_names[red]);
        tu_gold_expect(what, grad, REC(sub), GRAD_ATOL, GRAD_RTOL);

        TU_OK(ct_tensor_fill(grad, 12345.0f));
        TU_OK(ct_loss_backward(loss, x, t, go, grad));
        snprintf(what, sizeof what, "%s.%s backward(grad_output)", name, red_names[red]);
        snprintf(sub, sizeof sub, "%s.grad_go", red_names[red]);
        tu_gold_expect(what, grad, REC(sub), GRAD_ATOL, GRAD_RTOL);

        /* every golden target is valid: the device flag must stay clear */
        ct_loss_report rep;
        TU_OK(ct_loss_check(loss, &rep));
        cr_assert_eq(rep.errors, 0u, "%s: error bits %u", name, rep.errors);

        ct_tensor_free(go);
        ct_tensor_free(out);
        ct_loss_free(loss);
    }
#undef REC
    ct_tensor_free(grad);
    ct_tensor_free(t);
    ct_tensor_free(x);
    free(w);
    free(pw);
}

/* Runs every case whose name starts with one of `prefixes` (NULL-terminated); asserts at
 * least `min_cases` ran, so a truncated golden file cannot pass. */
static void run_family(const char *const *prefixes, size_t min_cases)
{
    ct_context *ctx = tu_context();
    tu_golden *g = tu_golden_load("loss.txt");
    size_t ran = 0;
    for (size_t i = 0; i < g->count; i++) {
        const char *nm = g->t[i].name;
        size_t len = strlen(nm);
        if (len < 6 || strcmp(nm + len - 5, ".opts") != 0)
            continue;
        int match = 0;
        for (const char *const *p = prefixes; *p; p++)
            match |= strncmp(nm, *p, strlen(*p)) == 0;
        if (!match)
            continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(len - 5), nm);
        run_case(ctx, g, name);
        ran++;
    }
    cr_assert_geq(ran, min_cases, "only %zu golden cases ran", ran);
    tu_golden_free(g);
    ct_context_free(ctx);
}

Test(loss_golden, cross_entropy_class_indices)
{
    /* plain, weights, ignore_index (also a valid class), smoothing with every mix, all
     * ignored (NaN mean), zero-weight targets, N = 1, C = 1, logits of ±80 and ±1e4,
     * (N, C, d1) and (N, C, d1, d2) */
    static const char *const p[] = {"ce_plain", "ce_w", "ce_ign", "ce_ls", "ce_allign",
                                    "ce_n1", "ce_c1", "ce_x", "ce_3d", "ce_4d", NULL};
    run_family(p, 27);
}

Test(loss_golden, cross_entropy_probabilities)
{
    static const char *const p[] = {"ce_soft", NULL};
    run_family(p, 7);
}

Test(loss_golden, nll)
{
    static const char *const p[] = {"nll_", NULL};
    run_family(p, 8);
}

Test(loss_golden, bce_with_logits)
{
    static const char *const p[] = {"bce_", NULL};
    run_family(p, 13);
}

Test(loss_golden, regression)
{
    static const char *const p[] = {"mse_", "l1_", "smoothl1_", "huber_", NULL};
    run_family(p, 11);
}
