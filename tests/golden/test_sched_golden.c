/* Learning-rate schedules against PyTorch 1.13's get_last_lr() sequences
 * (tests/golden/gen_optim.py -> data/sched.txt, doubles), two groups starting at lr 0.1
 * and 0.05.
 *
 * Tolerance: the C code evaluates the same double expressions in the same order, so the
 * values agree to the bit where libm's cos and pow are the same as Python's (here they
 * are the same glibc); another libm may differ by an ulp per call, compounded over at
 * most 45 recursive steps: rtol 1e-13. That is still far below the difference between
 * the recursive form PyTorch steps with and the closed form for the chained case
 * (chain_exp_cos), and any wrong branch changes a value by > 1e-3 relative. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "testutil.h"

#define RTOL 1e-13

static const double LRS[2] = {0.1, 0.05};

typedef struct sched_case {
    const char *name;
    ct_sched_options o;
    bool adam; /* OneCycleLR cycling beta1 (same values, another name) */
} sched_case;

static sched_case make(const char *name, ct_sched_kind kind)
{
    sched_case c = {.name = name, .o = ct_sched_defaults(kind)};
    return c;
}

static const size_t MS1[] = {2, 5, 5, 9}, MS0[] = {0, 3}, MS2[] = {3, 6};
static const double MAXLR2[] = {0.5, 0.2}, MINLR2[] = {0.01, 0.02};

static size_t build_cases(sched_case *c)
{
    size_t n = 0;
    c[n] = make("step", CT_SCHED_STEP);
    c[n].o.step_size = 3, c[n].o.gamma = 0.5, n++;
    c[n] = make("multistep", CT_SCHED_MULTISTEP);
    c[n].o.milestones = MS1, c[n].o.n_milestones = 4, c[n].o.gamma = 0.3, n++;
    c[n] = make("multistep_zero", CT_SCHED_MULTISTEP);
    c[n].o.milestones = MS0, c[n].o.n_milestones = 2, n++;
    c[n] = make("exponential", CT_SCHED_EXPONENTIAL);
    c[n].o.gamma = 0.9, n++;
    c[n] = make("cosine", CT_SCHED_COSINE);
    c[n].o.t_max = 10, c[n].o.eta_min = 0.001, n++;
    c[n] = make("cosine_eta0", CT_SCHED_COSINE);
    c[n].o.t_max = 7, n++;
    c[n] = make("linear", CT_SCHED_LINEAR);
    c[n].o.start_factor = 0.25, c[n].o.total_iters = 6, n++;
    c[n] = make("linear_decay", CT_SCHED_LINEAR);
    c[n].o.start_factor = 1.0, c[n].o.end_factor = 0.1, c[n].o.total_iters = 8, n++;
    c[n] = make("warmup_cosine", CT_SCHED_COSINE);
    c[n].o.t_max = 20, c[n].o.eta_min = 1e-4, c[n].o.warmup_iters = 5;
    c[n].o.warmup_start_factor = 0.1, n++;
    c[n] = make("warmup_step", CT_SCHED_STEP);
    c[n].o.step_size = 4, c[n].o.gamma = 0.5, c[n].o.warmup_iters = 3;
    c[n].o.warmup_start_factor = 0.2, n++;
    c[n] = make("warmup_multistep", CT_SCHED_MULTISTEP);
    c[n].o.milestones = MS2, c[n].o.n_milestones = 2, c[n].o.warmup_iters = 2;
    c[n].o.warmup_start_factor = 0.5, n++;
    c[n] = make("warmup_exp", CT_SCHED_EXPONENTIAL);
    c[n].o.gamma = 0.95, c[n].o.warmup_iters = 4, n++; /* default factor 1/3 */
    c[n] = make("warmup_linear", CT_SCHED_LINEAR);
    c[n].o.start_factor = 1.0, c[n].o.end_factor = 0.5, c[n].o.total_iters = 4;
    c[n].o.warmup_iters = 3, c[n].o.warmup_start_factor = 0.5, n++;
    c[n] = make("onecycle_cos", CT_SCHED_ONECYCLE);
    c[n].o.max_lrs = MAXLR2, c[n].o.total_steps = 30, n++;
    c[n] = make("onecycle_linear", CT_SCHED_ONECYCLE);
    c[n].o.max_lr = 0.3, c[n].o.total_steps = 40, c[n].o.pct_start = 0.25;
    c[n].o.anneal = CT_ANNEAL_LINEAR, c[n].o.div_factor = 10, c[n].o.final_div_factor = 100, n++;
    c[n] = make("onecycle_three", CT_SCHED_ONECYCLE);
    c[n].o.max_lr = 0.4, c[n].o.total_steps = 30, c[n].o.three_phase = true, n++;
    c[n] = make("onecycle_adam", CT_SCHED_ONECYCLE);
    c[n].o.max_lr = 0.01, c[n].o.total_steps = 20, c[n].o.base_momentum = 0.8;
    c[n].o.max_momentum = 0.9, c[n].adam = true, n++;
    c[n] = make("onecycle_nomom", CT_SCHED_ONECYCLE);
    c[n].o.max_lr = 0.1, c[n].o.total_steps = 25, c[n].o.cycle_momentum = false, n++;
    c[n] = make("plateau_min_rel", CT_SCHED_PLATEAU);
    c[n].o.factor = 0.5, c[n].o.patience = 2, c[n].o.threshold = 1e-2, c[n].o.cooldown = 1;
    c[n].o.min_lrs = MINLR2, n++;
    c[n] = make("plateau_min_abs", CT_SCHED_PLATEAU);
    c[n].o.patience = 1, c[n].o.threshold = 0.05, c[n].o.threshold_abs = true, n++;
    c[n] = make("plateau_max_rel", CT_SCHED_PLATEAU);
    c[n].o.mode_max = true, c[n].o.factor = 0.3, c[n].o.patience = 0, c[n].o.cooldown = 2, n++;
    c[n] = make("plateau_max_abs", CT_SCHED_PLATEAU);
    c[n].o.mode_max = true, c[n].o.factor = 0.5, c[n].o.patience = 1, c[n].o.threshold = 0.1;
    c[n].o.threshold_abs = true, c[n].o.min_lr = 0.004, n++;
    c[n] = make("plateau_eps", CT_SCHED_PLATEAU);
    c[n].o.factor = 0.5, c[n].o.patience = 0, c[n].o.eps = 0.01, n++;
    return n;
}

static void check_row(const char *name, const char *what, size_t row, const double *got,
                      const double *want, size_t n)
{
    for (size_t g = 0; g < n; g++) {
        double tol = RTOL * fabs(want[g]);
        cr_assert(fabs(got[g] - want[g]) <= tol || got[g] == want[g],
                  "%s: %s[%zu][%zu] = %.17g, PyTorch %.17g", name, what, row, g, got[g],
                  want[g]);
    }
}

static size_t g_exact, g_total; /* bit-identical values, reported */

static void count_exact(const double *got, const double *want, size_t n)
{
    for (size_t g = 0; g < n; g++) {
        g_total++;
        g_exact += memcmp(&got[g], &want[g], sizeof *got) == 0;
    }
}

static void run_case(const tu_golden *gold, const sched_case *c)
{
    char key[128];
    snprintf(key, sizeof key, "%s.lr", c->name);
    const tu_gold_tensor *lr = tu_golden_get(gold, key);
    cr_assert(lr->ndim == 2 && lr->shape[1] == 2);
    snprintf(key, sizeof key, "%s.mom", c->name);
    const tu_gold_tensor *mom = tu_golden_find(gold, key);
    ct_sched *s = NULL;
    TU_OK(ct_sched_create_detached(&c->o, 2, LRS, true, &s));
    double got[2], gm[2];
    if (c->o.kind == CT_SCHED_PLATEAU) {
        snprintf(key, sizeof key, "%s.metric", c->name);
        const tu_gold_tensor *metric = tu_golden_get(gold, key);
        for (size_t r = 0; r < metric->numel; r++) {
            TU_OK(ct_sched_step(s, metric->v[r]));
            for (size_t g = 0; g < 2; g++)
                TU_OK(ct_sched_get_lr(s, g, &got[g]));
            check_row(c->name, "lr", r, got, lr->v + 2 * r, 2);
            count_exact(got, lr->v + 2 * r, 2);
        }
    } else {
        for (size_t r = 0; r < lr->shape[0]; r++) {
            if (r > 0)
                TU_OK(ct_sched_step(s, 0));
            for (size_t g = 0; g < 2; g++)
                TU_OK(ct_sched_get_lr(s, g, &got[g]));
            check_row(c->name, "lr", r, got, lr->v + 2 * r, 2);
            count_exact(got, lr->v + 2 * r, 2);
            if (mom) {
                for (size_t g = 0; g < 2; g++)
                    TU_OK(ct_sched_get_momentum(s, g, &gm[g]));
                check_row(c->name, "momentum", r, gm, mom->v + 2 * r, 2);
                count_exact(gm, mom->v + 2 * r, 2);
            }
        }
        if (c->o.kind == CT_SCHED_ONECYCLE) /* PyTorch raises past total_steps */
            cr_assert(ct_sched_step(s, 0) == CT_ERR_INVALID_ARG,
                      "%s: stepping past total_steps accepted", c->name);
    }
    ct_sched_free(s);
}

Test(sched_golden, sequences)
{
    tu_golden *gold = tu_golden_load("sched.txt");
    sched_case cases[32];
    size_t n = build_cases(cases);
    for (size_t i = 0; i < n; i++)
        run_case(gold, &cases[i]);
    /* every schedule in the file has a case here */
    size_t records = 0;
    for (size_t i = 0; i < gold->count; i++) {
        const char *nm = gold->t[i].name;
        size_t len = strlen(nm);
        if (len > 3 && strcmp(nm + len - 3, ".lr") == 0 && strncmp(nm, "chain_", 6) != 0)
            records++;
    }
    cr_assert(records == n, "sched.txt has %zu schedules, the test knows %zu", records, n);
    cr_log_info("%zu of %zu values bit-identical to PyTorch", g_exact, g_total);
    tu_golden_free(gold);
}

/* Two schedules stepping the same optimizer compose through the optimizer's lr, which
 * only the recursive forms do: ExponentialLR(0.9) then CosineAnnealingLR(8, 0.01). Also
 * checks that an attached schedule writes the optimizer's lr. */
Test(sched_golden, chained_on_optimizer)
{
    ct_context *ctx = tu_context();
    tu_golden *gold = tu_golden_load("sched.txt");
    const tu_gold_tensor *want = tu_golden_get(gold, "chain_exp_cos.lr");
    ct_tensor *p = tu_tensor(ctx, TU_SHAPE(2), NULL), *g = tu_tensor(ctx, TU_SHAPE(2), NULL);
    ct_optim_options o = ct_optim_defaults(CT_OPTIM_SGD);
    ct_optim_group groups[2] = {{LRS[0], 0}, {LRS[1], 0}};
    ct_optim_range ranges[2] = {{0, 1, 0}, {1, 1, 1}};
    o.groups = groups, o.n_groups = 2, o.ranges = ranges, o.n_ranges = 2;
    ct_optim *opt = NULL;
    TU_OK(ct_optim_create(ctx, &o, p, g, &opt));
    ct_sched_options e = ct_sched_defaults(CT_SCHED_EXPONENTIAL), c =
                                                                      ct_sched_defaults(
                                                                          CT_SCHED_COSINE);
    e.gamma = 0.9;
    c.t_max = 8;
    c.eta_min = 0.01;
    ct_sched *s1 = NULL, *s2 = NULL;
    TU_OK(ct_sched_create(&e, opt, &s1));
    TU_OK(ct_sched_create(&c, opt, &s2));
    for (size_t r = 0; r < want->shape[0]; r++) {
        if (r > 0) {
            TU_OK(ct_sched_step(s1, 0));
            TU_OK(ct_sched_step(s2, 0));
        }
        double got[2];
        for (size_t k = 0; k < 2; k++)
            TU_OK(ct_optim_get_lr(opt, k, &got[k]));
        check_row("chain_exp_cos", "lr", r, got, want->v + 2 * r, 2);
    }
    ct_sched_free(s1);
    ct_sched_free(s2);
    ct_optim_free(opt);
    ct_tensor_free(p);
    ct_tensor_free(g);
    tu_golden_free(gold);
    ct_context_free(ctx);
}
