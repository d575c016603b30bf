/* Learning-rate schedules on the host, no device: option validation, the recursive forms
 * against closed forms written out here (an independent reference: the two agree to
 * rounding, ~1e-15 per step, so rtol 1e-12 over <= 60 steps), OneCycleLR's landmarks,
 * a hand-traced ReduceLROnPlateau run, and exact resumption from saved state. The
 * bit-level match with PyTorch's sequences is tests/golden/test_sched_golden.c. */
#include <math.h>
#include <string.h>

#include "testutil.h"

#define RTOL 1e-12

static const double PI_ = 3.141592653589793;

static ct_sched *detached(const ct_sched_options *o, double lr0)
{
    ct_sched *s = NULL;
    double lrs[2] = {lr0, lr0 / 2};
    TU_OK(ct_sched_create_detached(o, 2, lrs, true, &s));
    return s;
}

static double lr_of(const ct_sched *s, size_t g)
{
    double v;
    TU_OK(ct_sched_get_lr(s, g, &v));
    return v;
}

static void close_rel(const char *what, long e, double got, double want)
{
    cr_assert(fabs(got - want) <= RTOL * fabs(want) + 1e-300, "%s at epoch %ld: %.17g vs %.17g",
              what, e, got, want);
}

Test(sched, closed_forms)
{
    const double base = 0.1;
    ct_sched_options o = ct_sched_defaults(CT_SCHED_STEP);
    o.step_size = 3;
    o.gamma = 0.5;
    ct_sched *s = detached(&o, base);
    for (long e = 0; e <= 30; e++) {
        if (e)
            TU_OK(ct_sched_step(s, 0));
        close_rel("StepLR", e, lr_of(s, 0), base * pow(0.5, (double)(e / 3)));
        close_rel("StepLR group 1", e, lr_of(s, 1), base / 2 * pow(0.5, (double)(e / 3)));
    }
    ct_sched_free(s);

    o = ct_sched_defaults(CT_SCHED_EXPONENTIAL);
    o.gamma = 0.93;
    s = detached(&o, base);
    for (long e = 0; e <= 40; e++) {
        if (e)
            TU_OK(ct_sched_step(s, 0));
        close_rel("ExponentialLR", e, lr_of(s, 0), base * pow(0.93, (double)e));
    }
    ct_sched_free(s);

    static const size_t ms[] = {4, 2, 7, 7};
    o = ct_sched_defaults(CT_SCHED_MULTISTEP);
    o.milestones = ms;
    o.n_milestones = 4;
    s = detached(&o, base);
    for (long e = 0; e <= 12; e++) {
        if (e)
            TU_OK(ct_sched_step(s, 0));
        int k = (e >= 2) + (e >= 4) + 2 * (e >= 7);
        close_rel("MultiStepLR", e, lr_of(s, 0), base * pow(0.1, k));
    }
    ct_sched_free(s);

    /* cosine over two periods: eta_min + (base - eta_min)(1 + cos(pi e / T)) / 2 */
    o = ct_sched_defaults(CT_SCHED_COSINE);
    o.t_max = 9;
    o.eta_min = 0.002;
    s = detached(&o, base);
    for (long e = 0; e <= 36; e++) {
        if (e)
            TU_OK(ct_sched_step(s, 0));
        double want = 0.002 + (base - 0.002) * (1 + cos(PI_ * (double)e / 9)) / 2;
        cr_assert(fabs(lr_of(s, 0) - want) <= 1e-12 * base, "cosine at %ld: %.17g vs %.17g", e,
                  lr_of(s, 0), want);
    }
    ct_sched_free(s);

    o = ct_sched_defaults(CT_SCHED_LINEAR);
    o.start_factor = 0.2;
    o.end_factor = 0.9;
    o.total_iters = 7;
    s = detached(&o, base);
    for (long e = 0; e <= 12; e++) {
        if (e)
            TU_OK(ct_sched_step(s, 0));
        double f = 0.2 + (0.9 - 0.2) * (double)(e < 7 ? e : 7) / 7;
        close_rel("LinearLR", e, lr_of(s, 0), base * f);
    }
    ct_sched_free(s);
}

/* warm-up then cosine: linear from f*base to base over W steps, then the cosine from base */
Test(sched, warmup)
{
    const double base = 0.2, f = 0.1;
    const size_t W = 4, T = 10;
    ct_sched_options o = ct_sched_defaults(CT_SCHED_COSINE);
    o.t_max = T;
    o.warmup_iters = W;
    o.warmup_start_factor = f;
    ct_sched *s = detached(&o, base);
    for (long e = 0; e <= 20; e++) {
        if (e)
            TU_OK(ct_sched_step(s, 0));
        double want = e < (long)W ? base * (f + (1 - f) * (double)e / (double)W)
                                  : base * (1 + cos(PI_ * (double)(e - (long)W) / (double)T)) / 2;
        cr_assert(fabs(lr_of(s, 0) - want) <= 1e-12 * base, "warm-up cosine at %ld: %.17g vs %.17g",
                  e, lr_of(s, 0), want);
    }
    ct_sched_free(s);
}

Test(sched, onecycle_landmarks)
{
    ct_sched_options o = ct_sched_defaults(CT_SCHED_ONECYCLE);
    o.max_lr = 1.0;
    o.total_steps = 100;
    o.pct_start = 0.3;
    ct_sched *s = detached(&o, 123.0); /* the optimizer's lr is irrelevant */
    double m;
    for (long e = 0; e < 100; e++) {
        if (e)
            TU_OK(ct_sched_step(s, 0));
        TU_OK(ct_sched_get_momentum(s, 0, &m));
        if (e == 0) {
            close_rel("OneCycle start", e, lr_of(s, 0), 1.0 / 25);
            close_rel("OneCycle start momentum", e, m, 0.95);
        }
        if (e == 29) { /* end of phase 1: pct_start * total - 1 */
            close_rel("OneCycle peak", e, lr_of(s, 0), 1.0);
            close_rel("OneCycle peak momentum", e, m, 0.85);
        }
        if (e == 99) {
            close_rel("OneCycle end", e, lr_of(s, 0), 1.0 / 25 / 1e4);
            close_rel("OneCycle end momentum", e, m, 0.95);
        }
        cr_assert(lr_of(s, 0) > 0 && lr_of(s, 0) <= 1.0);
    }
    TU_OK(ct_sched_step(s, 0)); /* epoch == total_steps is allowed, as in PyTorch */
    cr_assert(ct_sched_step(s, 0) == CT_ERR_INVALID_ARG);
    ct_sched_free(s);

    /* momentum cycling needs an optimizer with momentum */
    ct_sched *bad = NULL;
    cr_assert(ct_sched_create_detached(&o, 1, (double[]){0.1}, false, &bad) ==
              CT_ERR_INVALID_ARG);
    cr_assert(bad == NULL);
    cr_assert(strstr(ct_last_error(), "cycle_momentum") != NULL);
}

/* patience 1, cooldown 1, factor 0.5, threshold 0 (abs), min_lr 0.02 */
Test(sched, plateau_trace)
{
    ct_sched_options o = ct_sched_defaults(CT_SCHED_PLATEAU);
    o.factor = 0.5;
    o.patience = 1;
    o.cooldown = 1;
    o.threshold = 0;
    o.threshold_abs = true;
    o.min_lr = 0.02;
    ct_sched *s = detached(&o, 0.1);
    static const double metric[] = {5, 4, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3};
    /* best 5 | 4 | bad1 | bad2 -> 0.05, cooldown | cooldown (bad reset) | bad1 | better 3 |
     * bad1 | bad2 -> 0.025 | cooldown | bad1 | bad2 -> max(0.0125, 0.02) = 0.02 */
    static const double want[] = {0.1,  0.1,  0.1,   0.05,  0.05,  0.05,
                                  0.05, 0.05, 0.025, 0.025, 0.025, 0.02};
    for (size_t i = 0; i < sizeof metric / sizeof metric[0]; i++) {
        TU_OK(ct_sched_step(s, metric[i]));
        cr_assert(lr_of(s, 0) == want[i], "step %zu: lr %.17g, want %.17g", i, lr_of(s, 0),
                  want[i]);
    }
    ct_sched_free(s);
}

/* Save the state mid-way, build a fresh schedule, restore, continue: same values. */
Test(sched, resume)
{
    static const size_t ms[] = {3, 8};
    ct_sched_options opts[4];
    opts[0] = ct_sched_defaults(CT_SCHED_COSINE);
    opts[0].t_max = 7, opts[0].warmup_iters = 3;
    opts[1] = ct_sched_defaults(CT_SCHED_MULTISTEP);
    opts[1].milestones = ms, opts[1].n_milestones = 2;
    opts[2] = ct_sched_defaults(CT_SCHED_ONECYCLE);
    opts[2].max_lr = 0.5, opts[2].total_steps = 30;
    opts[3] = ct_sched_defaults(CT_SCHED_PLATEAU);
    opts[3].patience = 1;
    for (int k = 0; k < 4; k++) {
        ct_sched *a = detached(&opts[k], 0.1), *b = NULL;
        for (int e = 1; e <= 25; e++) {
            double metric = 1.0 / (1 + e % 5);
            if (e == 12) {
                ct_sched_state st;
                double lrs[2], moms[2] = {0, 0};
                TU_OK(ct_sched_state_get(a, &st));
                for (size_t g = 0; g < 2; g++) {
                    lrs[g] = lr_of(a, g);
                    if (k == 2)
                        TU_OK(ct_sched_get_momentum(a, g, &moms[g]));
                }
                b = detached(&opts[k], 0.1);
                TU_OK(ct_sched_state_set(b, &st, lrs, moms));
            }
            TU_OK(ct_sched_step(a, metric));
            if (b) {
                TU_OK(ct_sched_step(b, metric));
                for (size_t g = 0; g < 2; g++)
                    cr_assert(lr_of(a, g) == lr_of(b, g), "schedule %d epoch %d group %zu", k, e,
                              g);
            }
        }
        ct_sched_free(a);
        ct_sched_free(b);
    }
}

static void expect_invalid(ct_sched_options o, const char *option)
{
    ct_sched *s = NULL;
    ct_status st = ct_sched_create_detached(&o, 1, (double[]){0.1}, true, &s);
    cr_assert(st == CT_ERR_INVALID_ARG, "bad %s accepted", option);
    cr_assert(s == NULL);
    cr_assert(strstr(ct_last_error(), option) != NULL, "message '%s' does not name %s",
              ct_last_error(), option);
}

Test(sched, validation)
{
    ct_sched_options o = ct_sched_defaults(CT_SCHED_STEP);
    expect_invalid(o, "step_size"); /* no default */
    o.step_size = 2;
    o.gamma = 0;
    expect_invalid(o, "gamma");
    expect_invalid(ct_sched_defaults(CT_SCHED_EXPONENTIAL), "gamma");
    expect_invalid(ct_sched_defaults(CT_SCHED_COSINE), "t_max");
    o = ct_sched_defaults(CT_SCHED_COSINE);
    o.t_max = 3;
    o.eta_min = -1;
    expect_invalid(o, "eta_min");
    o = ct_sched_defaults(CT_SCHED_LINEAR);
    o.start_factor = 0;
    expect_invalid(o, "start_factor");
    o.start_factor = 0.5;
    o.end_factor = 1.5;
    expect_invalid(o, "end_factor");
    o.end_factor = 1;
    o.total_iters = 0;
    expect_invalid(o, "total_iters");
    o = ct_sched_defaults(CT_SCHED_ONECYCLE);
    o.total_steps = 10;
    expect_invalid(o, "max_lr");
    o.max_lr = 1;
    o.pct_start = 1.5;
    expect_invalid(o, "pct_start");
    o.pct_start = 0.3;
    o.total_steps = 0;
    expect_invalid(o, "total_steps");
    o.total_steps = 10;
    o.div_factor = 0;
    expect_invalid(o, "div_factor");
    o = ct_sched_defaults(CT_SCHED_PLATEAU);
    o.factor = 1.0;
    expect_invalid(o, "factor");
    o.factor = 0.1;
    o.threshold = -1;
    expect_invalid(o, "threshold");
    o.threshold = 0;
    o.warmup_iters = 3;
    expect_invalid(o, "warmup_iters");
    o = ct_sched_defaults(CT_SCHED_EXPONENTIAL);
    o.gamma = 0.9;
    o.warmup_iters = 3;
    o.warmup_start_factor = 0;
    expect_invalid(o, "warmup_start_factor");
}
