/* lib/ref/optim_ref.h — plain-C double-precision references for the optimizers and
 * gradient clipping (lib/train/optim.c, clip.c).
 *
 * Textbook forms of torch.optim's algorithms (the pseudo-code boxes of PyTorch's
 * documentation), in double and in the natural order, so they are an independent answer
 * for the float32 kernels, which follow PyTorch's float32 operation order instead.
 * Groups and ranges mean what they mean in cltrain/optim.h; elements outside every range
 * are left alone.
 */
#ifndef CLTRAIN_REF_OPTIM_REF_H
#define CLTRAIN_REF_OPTIM_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cltrain/optim.h"

typedef struct ct_ref_optim {
    ct_optim_options o; /* groups/ranges pointers not kept */
    size_t n;
    int *group; /* per element: its group, or -1 */
    size_t n_groups;
    double lr[CT_OPTIM_MAX_GROUPS], wd[CT_OPTIM_MAX_GROUPS], mom[CT_OPTIM_MAX_GROUPS];
    bool ready[CT_OPTIM_MAX_GROUPS]; /* SGD: momentum buffer exists */
    /* state, n each: SGD momentum_buffer; Adam exp_avg, exp_avg_sq, max_exp_avg_sq;
     * RMSprop square_avg, momentum_buffer, grad_avg; Adagrad sum */
    double *s0, *s1, *s2;
    uint64_t step;
} ct_ref_optim;

/* 0 on success, -1 on a bad range or allocation failure. Options are trusted otherwise. */
int ct_ref_optim_init(ct_ref_optim *r, const ct_optim_options *o, size_t n);
void ct_ref_optim_free(ct_ref_optim *r);
/* One step: p (n) updated in place from g (n). */
void ct_ref_optim_step(ct_ref_optim *r, double *p, const double *g);

/* sqrt(sum x^2), accumulated in long double */
double ct_ref_l2norm(const double *x, size_t n);

#endif
