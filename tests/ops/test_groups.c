/* "No weight decay on biases and norm parameters": the ranges from ct_model_decay_ranges
 * drive a two-group SGD step, checked against the update computed on the host in double:
 * with a zero gradient, weight decay alone moves the weights, p <- p - lr*wd*p, and must
 * leave biases and batch-norm parameters exactly as they were. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

Test(groups, biases_and_norm_parameters_do_not_decay)
{
    ct_context *ctx = tu_context();
    ct_model *m = NULL;
    TU_OK(ct_model_create_spec(ctx, "conv(4,3) bn relu flatten linear(3)", 3,
                               (size_t[]){2, 5, 5}, 3, &m));
    ct_optim_range ranges[8];
    size_t n = 0;
    TU_OK(ct_model_decay_ranges(m, ranges, 8, &n));
    /* 0.weight 0.bias 1.weight 1.bias 4.weight 4.bias */
    cr_assert_eq(n, 6);
    const size_t want_group[6] = {0, 1, 1, 1, 0, 1};
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(ranges[i].group, want_group[i], "parameter %zu", i);
    cr_assert_eq(ct_model_decay_ranges(m, ranges, 5, &n), CT_ERR_INVALID_ARG);

    size_t total = ct_model_param_numel(m);
    float *before = malloc(total * sizeof *before), *after = malloc(total * sizeof *after);
    TU_OK(ct_model_get_params(m, before, total));
    TU_OK(ct_model_zero_grad(m));
    ct_optim_options o = ct_optim_defaults(CT_OPTIM_SGD);
    ct_optim_group groups[2] = {{.lr = 0.5, .weight_decay = 0.1}, {.lr = 0.5, .weight_decay = 0.0}};
    o.groups = groups;
    o.n_groups = 2;
    o.ranges = ranges;
    o.n_ranges = 6;
    ct_optim *opt = NULL;
    TU_OK(ct_optim_create(ctx, &o, ct_model_params(m), ct_model_grads(m), &opt));
    TU_OK(ct_optim_step(opt));
    TU_OK(ct_model_get_params(m, after, total));
    double *ref = malloc(total * sizeof *ref);
    for (size_t i = 0; i < 6; i++)
        for (size_t j = ranges[i].offset; j < ranges[i].offset + ranges[i].length; j++)
            ref[j] = ranges[i].group == 0 ? before[j] - 0.5 * 0.1 * before[j] : before[j];
    /* one float32 multiply-add per element: half an ulp of |p| */
    tu_assert_close("parameters after a decay-only step", after, ref, total, 0, 1.2e-7);
    size_t decayed = 0;
    for (size_t j = 0; j < total; j++)
        decayed += after[j] != before[j];
    cr_assert_gt(decayed, 0, "no weight decayed at all");
    ct_optim_free(opt);
    ct_model_free(m);
    free(before);
    free(after);
    free(ref);
    ct_context_free(ctx);
}
