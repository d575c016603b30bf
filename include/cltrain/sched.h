/* cltrain/sched.h — learning-rate schedules (host-side, no device work).
 *
 * Each schedule reproduces torch.optim.lr_scheduler's get_last_lr() sequence: the same
 * formulas in the same double-precision operation order, including the recursive
 * ("chainable") forms PyTorch uses when stepping, which differ from the closed forms in
 * the last bits and follow any change made to the learning rate between steps. Like
 * PyTorch, creating a schedule performs its first step (epoch 0): LinearLR and
 * OneCycleLR change the learning rate right away.
 *
 * Attached to an optimizer, a schedule reads each group's current learning rate before
 * a step and writes the new one into the optimizer (and, for OneCycleLR with
 * cycle_momentum, the momentum or Adam's beta1). Detached, it keeps its own per-group
 * values, which ct_sched_get_lr() reports. Call ct_sched_step() after ct_optim_step(),
 * once per epoch or per batch as the schedule intends.
 */
#ifndef CLTRAIN_SCHED_H
#define CLTRAIN_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "cltrain/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ct_sched_kind {
    CT_SCHED_STEP = 0,   /* StepLR(step_size, gamma) */
    CT_SCHED_MULTISTEP,  /* MultiStepLR(milestones, gamma) */
    CT_SCHED_EXPONENTIAL, /* ExponentialLR(gamma) */
    CT_SCHED_COSINE,     /* CosineAnnealingLR(T_max, eta_min) */
    CT_SCHED_LINEAR,     /* LinearLR(start_factor, end_factor, total_iters): a warm-up */
    CT_SCHED_ONECYCLE,   /* OneCycleLR */
    CT_SCHED_PLATEAU     /* ReduceLROnPlateau: ct_sched_step takes the metric */
} ct_sched_kind;

typedef enum ct_anneal { CT_ANNEAL_COS = 0, CT_ANNEAL_LINEAR } ct_anneal;

typedef struct ct_sched_options {
    ct_sched_kind kind;
    /* StepLR, MultiStepLR, ExponentialLR */
    double gamma;             /* > 0; default 0.1 (ExponentialLR has none: set it) */
    size_t step_size;         /* StepLR, >= 1 (no default) */
    const size_t *milestones; /* MultiStepLR (copied; repeats multiply again, as Counter) */
    size_t n_milestones;
    /* CosineAnnealingLR */
    size_t t_max;   /* >= 1 (no default) */
    double eta_min; /* default 0 */
    /* LinearLR */
    double start_factor; /* (0, 1], default 1/3 */
    double end_factor;   /* [0, 1], default 1 */
    size_t total_iters;  /* >= 1, default 5 */
    /* OneCycleLR */
    double max_lr;          /* > 0, every group (no default) ... */
    const double *max_lrs;  /* ... or one per group when not NULL (copied) */
    size_t total_steps;     /* >= 1 (epochs * steps_per_epoch) */
    double pct_start;       /* [0, 1], default 0.3 */
    ct_anneal anneal;       /* default cos */
    bool three_phase;       /* default false */
    bool cycle_momentum;    /* default true: needs an optimizer with momentum or betas */
    double base_momentum;   /* default 0.85 */
    double max_momentum;    /* default 0.95 */
    double div_factor;      /* > 0, default 25: initial_lr = max_lr / div_factor */
    double final_div_factor; /* > 0, default 1e4: min_lr = initial_lr / final_div_factor */
    /* ReduceLROnPlateau */
    bool mode_max;       /* false: 'min' (default), true: 'max' */
    double factor;       /* in (0, 1), default 0.1 */
    size_t patience;     /* default 10 */
    double threshold;    /* >= 0, default 1e-4 */
    bool threshold_abs;  /* false: 'rel' (default), true: 'abs' */
    size_t cooldown;     /* default 0 */
    double min_lr;       /* >= 0, default 0, every group ... */
    const double *min_lrs; /* ... or one per group when not NULL (copied) */
    double eps;          /* >= 0, default 1e-8 */
    /* Warm-up in front of StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR or
     * LinearLR: warmup_iters > 0 behaves exactly as
     *   SequentialLR([LinearLR(start_factor=warmup_start_factor, end_factor=1,
     *                          total_iters=warmup_iters), <schedule>],
     *                milestones=[warmup_iters])
     * (the schedule starts at epoch 0 of its own at the milestone). */
    size_t warmup_iters;        /* default 0: none */
    double warmup_start_factor; /* (0, 1], default 1/3 */
} ct_sched_options;

/* PyTorch's defaults for `kind` (fields without a default are left 0 and rejected). */
ct_sched_options ct_sched_defaults(ct_sched_kind kind);

typedef struct ct_sched ct_sched;

/* A schedule driving `opt`: the groups' current learning rates become the initial ones
 * (PyTorch's initial_lr), then epoch 0 is applied to the optimizer. The caller owns *out
 * (ct_sched_free) and keeps `opt` alive as long as the schedule. */
ct_status ct_sched_create(const ct_sched_options *o, ct_optim *opt, ct_sched **out);
/* A schedule over `n_groups` values of its own, starting from `initial_lrs` (copied).
 * `has_momentum` says whether the optimizer it stands for has a momentum or beta1, which
 * OneCycleLR's cycle_momentum requires (torch raises otherwise). */
ct_status ct_sched_create_detached(const ct_sched_options *o, size_t n_groups,
                                   const double *initial_lrs, bool has_momentum,
                                   ct_sched **out);
void ct_sched_free(ct_sched *s);

/* One scheduler step (PyTorch's scheduler.step()); `metric` is the monitored value for
 * ReduceLROnPlateau and ignored otherwise. Stepping OneCycleLR past total_steps is
 * CT_ERR_INVALID_ARG, as PyTorch raises. */
ct_status ct_sched_step(ct_sched *s, double metric);

size_t ct_sched_group_count(const ct_sched *s);
/* get_last_lr()[group] */
ct_status ct_sched_get_lr(const ct_sched *s, size_t group, double *lr);
/* OneCycleLR with cycle_momentum: the momentum (or beta1) last set; else CT_ERR_UNSUPPORTED */
ct_status ct_sched_get_momentum(const ct_sched *s, size_t group, double *momentum);

/* What a checkpoint needs to resume a schedule built from the same options (the learning
 * rates themselves are the optimizer's state, or set with ct_sched_state_set's lrs for a
 * detached schedule). */
typedef struct ct_sched_state {
    int64_t last_epoch;       /* PyTorch's last_epoch (SequentialLR's for warm-up) */
    double best;              /* ReduceLROnPlateau */
    int64_t num_bad_epochs;   /* ReduceLROnPlateau */
    int64_t cooldown_counter; /* ReduceLROnPlateau */
} ct_sched_state;
ct_status ct_sched_state_get(const ct_sched *s, ct_sched_state *out);
/* `lrs` and `momentums` (n_groups each, may be NULL) restore a detached schedule's values;
 * an attached one reads them from its optimizer. */
ct_status ct_sched_state_set(ct_sched *s, const ct_sched_state *st, const double *lrs,
                             const double *momentums);

#ifdef __cplusplus
}
#endif
#endif
