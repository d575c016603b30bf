/* Double-precision reference optimizers: see optim_ref.h. */
#include "ref/optim_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ct_ref_optim_init(ct_ref_optim *r, const ct_optim_options *o, size_t n)
{
    memset(r, 0, sizeof *r);
    r->o = *o;
    r->o.groups = NULL;
    r->o.ranges = NULL;
    r->n = n;
    r->n_groups = o->n_groups ? o->n_groups : 1;
    for (size_t k = 0; k < r->n_groups; k++) {
        r->lr[k] = o->n_groups ? o->groups[k].lr : o->lr;
        r->wd[k] = o->n_groups ? o->groups[k].weight_decay : o->weight_decay;
        r->mom[k] = (o->kind == CT_OPTIM_ADAM || o->kind == CT_OPTIM_ADAMW) ? o->beta1
                                                                            : o->momentum;
    }
    r->group = malloc(n * sizeof *r->group);
    r->s0 = calloc(n, sizeof *r->s0);
    r->s1 = calloc(n, sizeof *r->s1);
    r->s2 = calloc(n, sizeof *r->s2);
    if (!r->group || !r->s0 || !r->s1 || !r->s2) {
        ct_ref_optim_free(r);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        r->group[i] = -1;
    if (o->n_ranges == 0) {
        for (size_t i = 0; i < n; i++)
            r->group[i] = 0;
    }
    for (size_t j = 0; j < o->n_ranges; j++) {
        const ct_optim_range *rg = &o->ranges[j];
        if (rg->offset + rg->length > n) {
            ct_ref_optim_free(r);
            return -1;
        }
        for (size_t i = rg->offset; i < rg->offset + rg->length; i++)
            r->group[i] = (int)rg->group;
    }
    if (o->kind == CT_OPTIM_ADAGRAD)
        for (size_t i = 0; i < n; i++)
            r->s0[i] = o->initial_accumulator_value;
    return 0;
}

void ct_ref_optim_free(ct_ref_optim *r)
{
    free(r->group);
    free(r->s0);
    free(r->s1);
    free(r->s2);
    r->group = NULL;
    r->s0 = r->s1 = r->s2 = NULL;
}

void ct_ref_optim_step(ct_ref_optim *r, double *p, const double *g)
{
    const ct_optim_options *o = &r->o;
    const double t = (double)(r->step + 1);
    for (size_t i = 0; i < r->n; i++) {
        if (r->group[i] < 0)
            continue;
        const int k = r->group[i];
        const double lr = r->lr[k], wd = r->wd[k], mom = r->mom[k];
        double d = o->maximize ? -g[i] : g[i];
        switch (o->kind) {
        case CT_OPTIM_SGD:
            if (wd != 0)
                d += wd * p[i];
            if (mom != 0) {
                r->s0[i] = r->ready[k] ? mom * r->s0[i] + (1 - o->dampening) * d : d;
                d = o->nesterov ? d + mom * r->s0[i] : r->s0[i];
            }
            p[i] -= lr * d;
            break;
        case CT_OPTIM_ADAM:
        case CT_OPTIM_ADAMW: {
            if (o->kind == CT_OPTIM_ADAMW)
                p[i] *= 1 - lr * wd;
            else if (wd != 0)
                d += wd * p[i];
            r->s0[i] = mom * r->s0[i] + (1 - mom) * d;
            r->s1[i] = o->beta2 * r->s1[i] + (1 - o->beta2) * d * d;
            double v = r->s1[i];
            if (o->amsgrad) {
                r->s2[i] = fmax(r->s2[i], r->s1[i]);
                v = r->s2[i];
            }
            const double bc1 = 1 - pow(mom, t), bc2 = 1 - pow(o->beta2, t);
            const double m_hat = r->s0[i] / bc1, v_hat = v / bc2;
            /* PyTorch's eps sits outside the bias correction of sqrt(v):
             * denom = sqrt(v)/sqrt(bc2) + eps */
            p[i] -= lr * m_hat / (sqrt(v_hat) + o->eps);
            break;
        }
        case CT_OPTIM_RMSPROP: {
            if (wd != 0)
                d += wd * p[i];
            r->s0[i] = o->alpha * r->s0[i] + (1 - o->alpha) * d * d;
            double var = r->s0[i];
            if (o->centered) {
                r->s2[i] = o->alpha * r->s2[i] + (1 - o->alpha) * d;
                var -= r->s2[i] * r->s2[i];
            }
            const double avg = sqrt(var) + o->eps;
            if (mom > 0) {
                r->s1[i] = mom * r->s1[i] + d / avg;
                p[i] -= lr * r->s1[i];
            } else {
                p[i] -= lr * d / avg;
            }
            break;
        }
        case CT_OPTIM_ADAGRAD: {
            if (wd != 0)
                d += wd * p[i];
            const double clr = lr / (1 + (t - 1) * o->lr_decay);
            r->s0[i] += d * d;
            p[i] -= clr * d / (sqrt(r->s0[i]) + o->eps);
            break;
        }
        }
    }
    r->step++;
    if (o->kind == CT_OPTIM_SGD)
        for (size_t k = 0; k < r->n_groups; k++)
            if (r->mom[k] != 0)
                r->ready[k] = true;
}

double ct_ref_l2norm(const double *x, size_t n)
{
    long double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (long double)x[i] * x[i];
    return (double)sqrtl(s);
}
