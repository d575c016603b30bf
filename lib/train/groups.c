/* The usual two parameter groups: weights that decay, and biases and normalisation
 * parameters that do not. */
#include "cltrain/trainer.h"
#include "core/internal.h"

ct_status ct_model_decay_ranges(const ct_model *m, ct_optim_range *ranges, size_t cap,
                                size_t *count)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(m && count, CT_ERR_INVALID_ARG, "ct_model_decay_ranges: NULL argument");
    size_t n = ct_model_param_count(m);
    CT_REQUIRE(ranges != NULL || cap == 0, CT_ERR_INVALID_ARG,
               "ct_model_decay_ranges: NULL ranges with capacity %zu", cap);
    *count = n;
    CT_REQUIRE(cap >= n, CT_ERR_INVALID_ARG,
               "ct_model_decay_ranges: room for %zu ranges, the model has %zu parameters", cap, n);
    for (size_t i = 0; i < n; i++) {
        const char *name = NULL;
        size_t ndim = 0, offset = 0, shape[CT_MAX_DIMS] = {0};
        CT_TRY(ct_model_param_info(m, i, &name, &ndim, shape, &offset));
        size_t numel = 1;
        for (size_t d = 0; d < ndim; d++)
            numel *= shape[d];
        /* conv and linear weights have 2 or more dimensions; biases and batch-norm
         * weights and biases have one */
        ranges[i] = (ct_optim_range){.offset = offset, .length = numel, .group = ndim >= 2 ? 0 : 1};
    }
cleanup:
    return st;
}
