/* Learning-rate schedules: torch.optim.lr_scheduler's StepLR, MultiStepLR, ExponentialLR,
 * CosineAnnealingLR, LinearLR (alone or as a SequentialLR warm-up), OneCycleLR and
 * ReduceLROnPlateau, in plain C on the host.
 *
 * Every formula is written in the operation order of PyTorch 1.13's Python source so the
 * double results are the same bits: `a * b / c` is (a * b) / c in both languages, ints
 * convert to double where Python mixes them with floats, `x ** k` is pow(), and Python's
 * `%` (never negative for a positive divisor) is py_mod(). When stepping, PyTorch uses
 * the recursive forms (get_lr, from the group's current lr); the closed forms only serve
 * SequentialLR's milestone (scheduler.step(0)).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cltrain/sched.h"
#include "core/internal.h"

static const double PI = 3.141592653589793; /* Python's math.pi */

struct ct_sched {
    ct_sched_options o; /* milestones/max_lrs/min_lrs pointers cleared: copies below */
    size_t *milestones;
    ct_optim *opt; /* NULL when detached */
    size_t n;
    bool has_momentum; /* the optimizer has momentum or beta1 (OneCycleLR cycling) */
    double *lr;        /* per group: current values (read from the optimizer when attached) */
    double *base;      /* initial_lr */
    double *mom;       /* OneCycleLR: momentum / beta1 */
    double *max_lr;    /* OneCycleLR */
    double *min_lr;    /* OneCycleLR: initial_lr / final_div_factor; plateau: min_lrs */
    int64_t last_epoch;
    double best;
    int64_t num_bad_epochs, cooldown_counter;
};

ct_sched_options ct_sched_defaults(ct_sched_kind kind)
{
    ct_sched_options o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    if (kind == CT_SCHED_STEP || kind == CT_SCHED_MULTISTEP)
        o.gamma = 0.1;
    o.start_factor = 1.0 / 3;
    o.end_factor = 1.0;
    o.total_iters = 5;
    o.pct_start = 0.3;
    o.anneal = CT_ANNEAL_COS;
    o.cycle_momentum = true;
    o.base_momentum = 0.85;
    o.max_momentum = 0.95;
    o.div_factor = 25.0;
    o.final_div_factor = 1e4;
    o.factor = 0.1;
    o.patience = 10;
    o.threshold = 1e-4;
    o.eps = 1e-8;
    o.warmup_start_factor = 1.0 / 3;
    return o;
}

static bool finite_pos(double x)
{
    return x > 0 && isfinite(x);
}

static bool finite_nonneg(double x)
{
    return x >= 0 && isfinite(x);
}

static ct_status check_options(const ct_sched_options *o, size_t n_groups)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(n_groups >= 1, CT_ERR_INVALID_ARG, "ct_sched_create: no parameter groups");
    switch (o->kind) {
    case CT_SCHED_STEP:
        CT_REQUIRE(o->step_size >= 1, CT_ERR_INVALID_ARG, "StepLR: step_size must be >= 1, got %zu",
                   o->step_size);
        CT_REQUIRE(finite_pos(o->gamma), CT_ERR_INVALID_ARG, "StepLR: gamma must be > 0, got %g",
                   o->gamma);
        break;
    case CT_SCHED_MULTISTEP:
        CT_REQUIRE(finite_pos(o->gamma), CT_ERR_INVALID_ARG,
                   "MultiStepLR: gamma must be > 0, got %g", o->gamma);
        CT_REQUIRE(o->n_milestones == 0 || o->milestones != NULL, CT_ERR_INVALID_ARG,
                   "MultiStepLR: n_milestones is %zu but milestones is NULL", o->n_milestones);
        break;
    case CT_SCHED_EXPONENTIAL:
        CT_REQUIRE(finite_pos(o->gamma), CT_ERR_INVALID_ARG,
                   "ExponentialLR: gamma must be > 0, got %g", o->gamma);
        break;
    case CT_SCHED_COSINE:
        CT_REQUIRE(o->t_max >= 1, CT_ERR_INVALID_ARG,
                   "CosineAnnealingLR: t_max must be >= 1, got %zu", o->t_max);
        CT_REQUIRE(finite_nonneg(o->eta_min), CT_ERR_INVALID_ARG,
                   "CosineAnnealingLR: eta_min must be >= 0, got %g", o->eta_min);
        break;
    case CT_SCHED_LINEAR:
        CT_REQUIRE(o->start_factor > 0 && o->start_factor <= 1, CT_ERR_INVALID_ARG,
                   "LinearLR: start_factor must be in (0, 1], got %g", o->start_factor);
        CT_REQUIRE(o->end_factor >= 0 && o->end_factor <= 1, CT_ERR_INVALID_ARG,
                   "LinearLR: end_factor must be in [0, 1], got %g", o->end_factor);
        CT_REQUIRE(o->total_iters >= 1, CT_ERR_INVALID_ARG,
                   "LinearLR: total_iters must be >= 1, got %zu", o->total_iters);
        break;
    case CT_SCHED_ONECYCLE:
        CT_REQUIRE(o->total_steps >= 1, CT_ERR_INVALID_ARG,
                   "OneCycleLR: total_steps must be >= 1, got %zu", o->total_steps);
        CT_REQUIRE(o->pct_start >= 0 && o->pct_start <= 1, CT_ERR_INVALID_ARG,
                   "OneCycleLR: pct_start must be in [0, 1], got %g", o->pct_start);
        CT_REQUIRE(o->anneal == CT_ANNEAL_COS || o->anneal == CT_ANNEAL_LINEAR,
                   CT_ERR_INVALID_ARG, "OneCycleLR: unknown anneal strategy %d", (int)o->anneal);
        if (o->max_lrs) {
            for (size_t g = 0; g < n_groups; g++)
                CT_REQUIRE(finite_pos(o->max_lrs[g]), CT_ERR_INVALID_ARG,
                           "OneCycleLR: max_lrs[%zu] must be > 0, got %g", g, o->max_lrs[g]);
        } else {
            CT_REQUIRE(finite_pos(o->max_lr), CT_ERR_INVALID_ARG,
                       "OneCycleLR: max_lr must be > 0, got %g", o->max_lr);
        }
        CT_REQUIRE(finite_pos(o->div_factor), CT_ERR_INVALID_ARG,
                   "OneCycleLR: div_factor must be > 0, got %g", o->div_factor);
        CT_REQUIRE(finite_pos(o->final_div_factor), CT_ERR_INVALID_ARG,
                   "OneCycleLR: final_div_factor must be > 0, got %g", o->final_div_factor);
        if (o->cycle_momentum) {
            CT_REQUIRE(finite_nonneg(o->base_momentum), CT_ERR_INVALID_ARG,
                       "OneCycleLR: base_momentum must be >= 0, got %g", o->base_momentum);
            CT_REQUIRE(finite_nonneg(o->max_momentum), CT_ERR_INVALID_ARG,
                       "OneCycleLR: max_momentum must be >= 0, got %g", o->max_momentum);
        }
        break;
    case CT_SCHED_PLATEAU:
        CT_REQUIRE(o->factor > 0 && o->factor < 1, CT_ERR_INVALID_ARG,
                   "ReduceLROnPlateau: factor must be in (0, 1), got %g", o->factor);
        CT_REQUIRE(finite_nonneg(o->threshold), CT_ERR_INVALID_ARG,
                   "ReduceLROnPlateau: threshold must be >= 0, got %g", o->threshold);
        CT_REQUIRE(finite_nonneg(o->eps), CT_ERR_INVALID_ARG,
                   "ReduceLROnPlateau: eps must be >= 0, got %g", o->eps);
        if (o->min_lrs) {
            for (size_t g = 0; g < n_groups; g++)
                CT_REQUIRE(finite_nonneg(o->min_lrs[g]), CT_ERR_INVALID_ARG,
                           "ReduceLROnPlateau: min_lrs[%zu] must be >= 0, got %g", g,
                           o->min_lrs[g]);
        } else {
            CT_REQUIRE(finite_nonneg(o->min_lr), CT_ERR_INVALID_ARG,
                       "ReduceLROnPlateau: min_lr must be >= 0, got %g", o->min_lr);
        }
        break;
    default: CT_FAIL(CT_ERR_INVALID_ARG, "ct_sched_create: unknown schedule kind %d", (int)o->kind);
    }
    if (o->warmup_iters > 0) {
        CT_REQUIRE(o->kind != CT_SCHED_ONECYCLE && o->kind != CT_SCHED_PLATEAU,
                   CT_ERR_INVALID_ARG,
                   "warmup_iters: a warm-up goes in front of StepLR, MultiStepLR, ExponentialLR, "
                   "CosineAnnealingLR or LinearLR only (got kind %d)",
                   (int)o->kind);
        CT_REQUIRE(o->warmup_start_factor > 0 && o->warmup_start_factor <= 1, CT_ERR_INVALID_ARG,
                   "warmup_start_factor must be in (0, 1], got %g", o->warmup_start_factor);
    }
cleanup:
    return st;
}

/* Python's a % m for m > 0 */
static int64_t py_mod(int64_t a, int64_t m)
{
    int64_t r = a % m;
    return r < 0 ? r + m : r;
}

static size_t count_milestone(const ct_sched *s, int64_t e)
{
    size_t c = 0;
    for (size_t i = 0; i < s->o.n_milestones; i++)
        if ((int64_t)s->milestones[i] == e)
            c++;
    return c;
}

/* bisect_right(sorted(milestones), e): how many milestones are <= e */
static size_t milestones_upto(const ct_sched *s, int64_t e)
{
    size_t c = 0;
    for (size_t i = 0; i < s->o.n_milestones; i++)
        if ((int64_t)s->milestones[i] <= e)
            c++;
    return c;
}

/* LinearLR.get_lr at epoch e from the group's current lr */
static double linear_recursive(double lr, int64_t e, double sf, double ef, double T)
{
    if (e == 0)
        return lr * sf;
    if ((double)e > T)
        return lr;
    return lr * (1. + (ef - sf) / (T * sf + (double)(e - 1) * (ef - sf)));
}

/* get_lr() of the main schedule at its epoch e */
static double recursive_lr(const ct_sched *s, int64_t e, double lr, double base)
{
    const ct_sched_options *o = &s->o;
    switch (o->kind) {
    case CT_SCHED_STEP:
        if (e == 0 || e % (int64_t)o->step_size != 0)
            return lr;
        return lr * o->gamma;
    case CT_SCHED_MULTISTEP: {
        size_t c = count_milestone(s, e);
        if (c == 0)
            return lr;
        return lr * pow(o->gamma, (double)c);
    }
    case CT_SCHED_EXPONENTIAL:
        if (e == 0)
            return lr;
        return lr * o->gamma;
    case CT_SCHED_COSINE: {
        const double T = (double)o->t_max;
        if (e == 0)
            return lr;
        if (py_mod(e - 1 - (int64_t)o->t_max, 2 * (int64_t)o->t_max) == 0)
            return lr + (base - o->eta_min) * (1 - cos(PI / T)) / 2;
        return (1 + cos(PI * (double)e / T)) / (1 + cos(PI * (double)(e - 1) / T)) *
                   (lr - o->eta_min) +
               o->eta_min;
    }
    case CT_SCHED_LINEAR:
        return linear_recursive(lr, e, o->start_factor, o->end_factor, (double)o->total_iters);
    default: return lr;
    }
}

/* _get_closed_form_lr() of the main schedule at epoch e */
static double closed_lr(const ct_sched *s, int64_t e, double base)
{
    const ct_sched_options *o = &s->o;
    switch (o->kind) {
    case CT_SCHED_STEP: return base * pow(o->gamma, (double)(e / (int64_t)o->step_size));
    case CT_SCHED_MULTISTEP: return base * pow(o->gamma, (double)milestones_upto(s, e));
    case CT_SCHED_EXPONENTIAL: return base * pow(o->gamma, (double)e);
    case CT_SCHED_COSINE:
        return o->eta_min +
               (base - o->eta_min) * (1 + cos(PI * (double)e / (double)o->t_max)) / 2;
    case CT_SCHED_LINEAR: {
        const double T = (double)o->total_iters;
        const double m = (double)(e < (int64_t)o->total_iters ? e : (int64_t)o->total_iters);
        return base * (o->start_factor + (o->end_factor - o->start_factor) * m / T);
    }
    default: return base;
    }
}

static double anneal(const ct_sched *s, double start, double end, double pct)
{
    if (s->o.anneal == CT_ANNEAL_LINEAR)
        return (end - start) * pct + start;
    const double cos_out = cos(PI * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
}

/* OneCycleLR.get_lr at step e: lr (and momentum) of every group */
static ct_status onecycle(ct_sched *s, int64_t e)
{
    ct_status st = CT_SUCCESS;
    const ct_sched_options *o = &s->o;
    const double total = (double)o->total_steps;
    CT_REQUIRE(e <= (int64_t)o->total_steps, CT_ERR_INVALID_ARG,
               "OneCycleLR: tried to step %lld times, total_steps is %zu", (long long)(e + 1),
               o->total_steps);
    /* phase ends and which values each phase goes from/to:
     * 0 initial_lr, 1 max_lr, 2 min_lr; momentum 0 max, 1 base */
    double end[3];
    int lr_from[3], lr_to[3], m_from[3], m_to[3];
    int nph;
    if (o->three_phase) {
        nph = 3;
        end[0] = o->pct_start * total - 1;
        end[1] = 2 * o->pct_start * total - 2;
        end[2] = total - 1;
        lr_from[0] = 0, lr_to[0] = 1, m_from[0] = 0, m_to[0] = 1;
        lr_from[1] = 1, lr_to[1] = 0, m_from[1] = 1, m_to[1] = 0;
        lr_from[2] = 0, lr_to[2] = 2, m_from[2] = 0, m_to[2] = 0;
    } else {
        nph = 2;
        end[0] = o->pct_start * total - 1;
        end[1] = total - 1;
        lr_from[0] = 0, lr_to[0] = 1, m_from[0] = 0, m_to[0] = 1;
        lr_from[1] = 1, lr_to[1] = 2, m_from[1] = 1, m_to[1] = 0;
    }
    for (size_t g = 0; g < s->n; g++) {
        const double lrv[3] = {s->base[g], s->max_lr[g], s->min_lr[g]};
        const double mv[2] = {o->max_momentum, o->base_momentum};
        double start_step = 0;
        for (int i = 0; i < nph; i++) {
            if ((double)e <= end[i] || i == nph - 1) {
                CT_REQUIRE(end[i] - start_step != 0, CT_ERR_INVALID_ARG,
                           "OneCycleLR: phase %d has zero length (total_steps %zu, pct_start %g)",
                           i, o->total_steps, o->pct_start);
                const double pct = ((double)e - start_step) / (end[i] - start_step);
                s->lr[g] = anneal(s, lrv[lr_from[i]], lrv[lr_to[i]], pct);
                if (o->cycle_momentum)
                    s->mom[g] = anneal(s, mv[m_from[i]], mv[m_to[i]], pct);
                break;
            }
            start_step = end[i];
        }
    }
cleanup:
    return st;
}

static ct_status read_lrs(ct_sched *s)
{
    ct_status st = CT_SUCCESS;
    if (s->opt)
        for (size_t g = 0; g < s->n; g++)
            CT_TRY(ct_optim_get_lr(s->opt, g, &s->lr[g]));
cleanup:
    return st;
}

static ct_status write_values(ct_sched *s)
{
    ct_status st = CT_SUCCESS;
    if (!s->opt)
        goto cleanup;
    for (size_t g = 0; g < s->n; g++)
        CT_TRY(ct_optim_set_lr(s->opt, g, s->lr[g]));
    if (s->o.kind == CT_SCHED_ONECYCLE && s->o.cycle_momentum)
        for (size_t g = 0; g < s->n; g++)
            CT_TRY(ct_optim_set_momentum(s->opt, g, s->mom[g]));
cleanup:
    return st;
}

static bool is_better(const ct_sched *s, double a, double best)
{
    const ct_sched_options *o = &s->o;
    if (!o->mode_max && !o->threshold_abs) {
        double rel_epsilon = 1. - o->threshold;
        return a < best * rel_epsilon;
    }
    if (!o->mode_max && o->threshold_abs)
        return a < best - o->threshold;
    if (o->mode_max && !o->threshold_abs) {
        double rel_epsilon = o->threshold + 1.;
        return a > best * rel_epsilon;
    }
    return a > best + o->threshold;
}

static ct_status plateau_step(ct_sched *s, double current)
{
    ct_status st = CT_SUCCESS;
    CT_TRY(read_lrs(s));
    s->last_epoch += 1;
    if (is_better(s, current, s->best)) {
        s->best = current;
        s->num_bad_epochs = 0;
    } else {
        s->num_bad_epochs += 1;
    }
    if (s->cooldown_counter > 0) {
        s->cooldown_counter -= 1;
        s->num_bad_epochs = 0;
    }
    if (s->num_bad_epochs > (int64_t)s->o.patience) {
        for (size_t g = 0; g < s->n; g++) {
            const double old_lr = s->lr[g];
            double new_lr = old_lr * s->o.factor;
            if (s->min_lr[g] > new_lr) /* Python's max(new_lr, min_lr) keeps the first on ties */
                new_lr = s->min_lr[g];
            if (old_lr - new_lr > s->o.eps)
                s->lr[g] = new_lr;
        }
        s->cooldown_counter = (int64_t)s->o.cooldown;
        s->num_bad_epochs = 0;
    }
    CT_TRY(write_values(s));
cleanup:
    return st;
}

/* _LRScheduler.step() / SequentialLR.step() without an epoch argument */
static ct_status epoch_step(ct_sched *s)
{
    ct_status st = CT_SUCCESS;
    CT_TRY(read_lrs(s));
    const int64_t e = s->last_epoch + 1;
    if (s->o.kind == CT_SCHED_ONECYCLE) {
        CT_TRY(onecycle(s, e));
    } else {
        const int64_t w = (int64_t)s->o.warmup_iters;
        for (size_t g = 0; g < s->n; g++) {
            if (w > 0 && e < w)
                s->lr[g] = linear_recursive(s->lr[g], e, s->o.warmup_start_factor, 1.0, (double)w);
            else if (w > 0 && e == w)
                s->lr[g] = closed_lr(s, 0, s->base[g]);
            else
                s->lr[g] = recursive_lr(s, e - w, s->lr[g], s->base[g]);
        }
    }
    s->last_epoch = e;
    CT_TRY(write_values(s));
cleanup:
    return st;
}

static ct_status create(const ct_sched_options *o, ct_optim *opt, size_t n,
                        const double *initial_lrs, bool has_momentum, ct_sched **out)
{
    ct_status st = CT_SUCCESS;
    ct_sched *s = NULL;
    CT_REQUIRE(out != NULL, CT_ERR_INVALID_ARG, "ct_sched_create: out is NULL");
    *out = NULL;
    CT_REQUIRE(o != NULL, CT_ERR_INVALID_ARG, "ct_sched_create: options are NULL");
    CT_TRY(check_options(o, n));
    CT_REQUIRE(!(o->kind == CT_SCHED_ONECYCLE && o->cycle_momentum && !has_momentum),
               CT_ERR_INVALID_ARG,
               "OneCycleLR: cycle_momentum needs an optimizer with momentum or betas (%s has "
               "neither)",
               opt ? ct_optim_kind_name(ct_optim_get_kind(opt)) : "the detached schedule");

    s = calloc(1, sizeof *s);
    CT_REQUIRE(s != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    s->o = *o;
    s->o.milestones = NULL;
    s->o.max_lrs = NULL;
    s->o.min_lrs = NULL;
    s->opt = opt;
    s->n = n;
    s->has_momentum = has_momentum;
    s->lr = calloc(5 * n, sizeof *s->lr);
    CT_REQUIRE(s->lr != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    s->base = s->lr + n;
    s->mom = s->lr + 2 * n;
    s->max_lr = s->lr + 3 * n;
    s->min_lr = s->lr + 4 * n;
    if (o->n_milestones) {
        s->milestones = malloc(o->n_milestones * sizeof *s->milestones);
        CT_REQUIRE(s->milestones != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
        memcpy(s->milestones, o->milestones, o->n_milestones * sizeof *s->milestones);
    }
    if (opt)
        CT_TRY(read_lrs(s));
    else
        memcpy(s->lr, initial_lrs, n * sizeof *s->lr);

    switch (o->kind) {
    case CT_SCHED_PLATEAU:
        for (size_t g = 0; g < n; g++)
            s->min_lr[g] = o->min_lrs ? o->min_lrs[g] : o->min_lr;
        s->last_epoch = 0;
        s->best = o->mode_max ? -INFINITY : INFINITY;
        break;
    case CT_SCHED_ONECYCLE:
        for (size_t g = 0; g < n; g++) {
            s->max_lr[g] = o->max_lrs ? o->max_lrs[g] : o->max_lr;
            s->base[g] = s->max_lr[g] / o->div_factor;
            s->min_lr[g] = s->base[g] / o->final_div_factor;
            s->mom[g] = o->max_momentum;
        }
        if (o->cycle_momentum && opt) /* PyTorch sets max_momentum before the first step */
            for (size_t g = 0; g < n; g++)
                CT_TRY(ct_optim_set_momentum(opt, g, s->mom[g]));
        s->last_epoch = -1;
        CT_TRY(epoch_step(s));
        break;
    default:
        memcpy(s->base, s->lr, n * sizeof *s->lr);
        s->last_epoch = -1;
        CT_TRY(epoch_step(s));
        break;
    }
    *out = s;
    s = NULL;
cleanup:
    ct_sched_free(s);
    return st;
}

ct_status ct_sched_create(const ct_sched_options *o, ct_optim *opt, ct_sched **out)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(opt != NULL, CT_ERR_INVALID_ARG, "ct_sched_create: optimizer is NULL");
    ct_optim_kind k = ct_optim_get_kind(opt);
    CT_TRY(create(o, opt, ct_optim_group_count(opt), NULL, k != CT_OPTIM_ADAGRAD, out));
cleanup:
    return st;
}

ct_status ct_sched_create_detached(const ct_sched_options *o, size_t n_groups,
                                   const double *initial_lrs, bool has_momentum,
                                   ct_sched **out)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(initial_lrs != NULL || n_groups == 0, CT_ERR_INVALID_ARG,
               "ct_sched_create_detached: initial_lrs is NULL");
    CT_TRY(create(o, NULL, n_groups, initial_lrs, has_momentum, out));
cleanup:
    return st;
}

void ct_sched_free(ct_sched *s)
{
    if (!s)
        return;
    free(s->milestones);
    free(s->lr);
    free(s);
}

ct_status ct_sched_step(ct_sched *s, double metric)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(s != NULL, CT_ERR_INVALID_ARG, "ct_sched_step: NULL schedule");
    if (s->o.kind == CT_SCHED_PLATEAU)
        CT_TRY(plateau_step(s, metric));
    else
        CT_TRY(epoch_step(s));
cleanup:
    return st;
}

size_t ct_sched_group_count(const ct_sched *s)
{
    return s ? s->n : 0;
}

ct_status ct_sched_get_lr(const ct_sched *s, size_t group, double *lr)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(s && lr, CT_ERR_INVALID_ARG, "ct_sched_get_lr: NULL argument");
    CT_REQUIRE(group < s->n, CT_ERR_INVALID_ARG, "ct_sched_get_lr: group %zu of %zu", group,
               s->n);
    *lr = s->lr[group];
cleanup:
    return st;
}

ct_status ct_sched_get_momentum(const ct_sched *s, size_t group, double *momentum)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(s && momentum, CT_ERR_INVALID_ARG, "ct_sched_get_momentum: NULL argument");
    CT_REQUIRE(group < s->n, CT_ERR_INVALID_ARG, "ct_sched_get_momentum: group %zu of %zu",
               group, s->n);
    CT_REQUIRE(s->o.kind == CT_SCHED_ONECYCLE && s->o.cycle_momentum, CT_ERR_UNSUPPORTED,
               "ct_sched_get_momentum: only OneCycleLR with cycle_momentum sets a momentum");
    *momentum = s->mom[group];
cleanup:
    return st;
}

ct_status ct_sched_state_get(const ct_sched *s, ct_sched_state *out)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(s && out, CT_ERR_INVALID_ARG, "ct_sched_state_get: NULL argument");
    out->last_epoch = s->last_epoch;
    out->best = s->best;
    out->num_bad_epochs = s->num_bad_epochs;
    out->cooldown_counter = s->cooldown_counter;
cleanup:
    return st;
}

ct_status ct_sched_state_set(ct_sched *s, const ct_sched_state *in, const double *lrs,
                             const double *momentums)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(s && in, CT_ERR_INVALID_ARG, "ct_sched_state_set: NULL argument");
    CT_REQUIRE(in->last_epoch >= -1 && in->num_bad_epochs >= 0 && in->cooldown_counter >= 0,
               CT_ERR_INVALID_ARG,
               "ct_sched_state_set: negative counters (last_epoch %lld, num_bad_epochs %lld, "
               "cooldown_counter %lld)",
               (long long)in->last_epoch, (long long)in->num_bad_epochs,
               (long long)in->cooldown_counter);
    s->last_epoch = in->last_epoch;
    s->best = in->best;
    s->num_bad_epochs = in->num_bad_epochs;
    s->cooldown_counter = in->cooldown_counter;
    if (lrs)
        memcpy(s->lr, lrs, s->n * sizeof *s->lr);
    if (momentums)
        memcpy(s->mom, momentums, s->n * sizeof *s->mom);
    CT_TRY(read_lrs(s));
cleanup:
    return st;
}
