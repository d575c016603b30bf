/* Optimizer trajectories, final optimizer state and gradient clipping against PyTorch
 * 1.13 (tests/golden/gen_optim.py -> data/optim.txt): every configuration in the file
 * (each option on and off, parameter groups, schedules and clipping driving an
 * optimizer) runs 20 steps from the same start with the same gradients, compared after
 * every step.
 *
 * Tolerances. Both sides compute in float32 in the same operation order (fma where
 * PyTorch's CPU kernels fuse), so on a device with correctly rounded sqrt and division
 * the trajectories agree to the bit (PoCL does; the suite reports the largest difference
 * seen). OpenCL allows sqrt and division 3 and 2.5 ulp, which can move an update by a few
 * ulp and a parameter by one ulp per step: over 20 steps a random walk of at most ~20 ulp
 * of |p| <= 2, i.e. 1e-6 + 4e-6*|ref| with margin. State buffers: the same relative
 * bound, atol 1e-9 (their values are >= 1e-6 where they matter). A formula error moves a
 * parameter by at least lr * 1e-2 = 1e-4 in 20 steps.
 *
 * On PoCL's CPU device (IEEE sqrt and division, hardware or exact software fma) the
 * suite demands the bits themselves for every configuration without norm clipping, so
 * a change in the order of operations fails too. Norm clipping cannot be bit-exact:
 * torch sums per-tensor norms, the flat buffer has no tensors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "testutil.h"

#define P_ATOL 1e-6
#define P_RTOL 4e-6
#define S_ATOL 1e-9
#define S_RTOL 4e-6

static ct_optim_options cfg_options(const tu_gold_tensor *c)
{
    cr_assert(c->numel == 15, "%s: 15 values expected", c->name);
    const double *v = c->v;
    ct_optim_options o = ct_optim_defaults((ct_optim_kind)(int)v[0]);
    o.lr = v[1];
    o.weight_decay = v[2];
    o.maximize = v[3] != 0;
    o.momentum = v[4];
    o.dampening = v[5];
    o.nesterov = v[6] != 0;
    o.beta1 = v[7];
    o.beta2 = v[8];
    o.eps = v[9];
    o.amsgrad = v[10] != 0;
    o.alpha = v[11];
    o.centered = v[12] != 0;
    o.lr_decay = v[13];
    o.initial_accumulator_value = v[14];
    return o;
}

/* How far from PyTorch's bits the trajectories are, for the log: the largest difference
 * in ulps of the reference, and the configuration where it happened. */
static double g_max_ulp;
static char g_worst[128];
static size_t g_exact_configs;

static double ulp_diff(float got, double ref)
{
    float r = (float)ref;
    if (got == r || (isnan(got) && isnan(r)))
        return 0;
    return fabs((double)got - ref) / fmax(nextafterf(fabsf(r), INFINITY) - fabsf(r), 1e-45);
}

static double note_diff(const char *name, const float *got, const double *ref, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, ulp_diff(got[i], ref[i]));
    if (worst > g_max_ulp) {
        g_max_ulp = worst;
        snprintf(g_worst, sizeof g_worst, "%s", name);
    }
    return worst;
}

/* PoCL on a CPU: the device the bit-exact promise is made for */
static bool strict_device(ct_context *ctx)
{
    const ct_device_info *d = ct_context_device(ctx);
    return d->is_cpu && (strstr(d->platform, "Portable Computing Language") != NULL ||
                         strstr(d->platform_version, "PoCL") != NULL);
}

static void run_config(ct_context *ctx, const tu_golden *gold, const char *name)
{
    char key[256];
    snprintf(key, sizeof key, "%s.cfg", name);
    ct_optim_options o = cfg_options(tu_golden_get(gold, key));
    ct_optim_group groups[CT_OPTIM_MAX_GROUPS];
    ct_optim_range ranges[64];
    snprintf(key, sizeof key, "%s.groups", name);
    const tu_gold_tensor *gr = tu_golden_find(gold, key);
    if (gr) {
        o.n_groups = gr->shape[0];
        cr_assert(o.n_groups <= CT_OPTIM_MAX_GROUPS);
        for (size_t k = 0; k < o.n_groups; k++)
            groups[k] = (ct_optim_group){gr->v[2 * k], gr->v[2 * k + 1]};
        o.groups = groups;
        snprintf(key, sizeof key, "%s.ranges", name);
        const tu_gold_tensor *rg = tu_golden_get(gold, key);
        o.n_ranges = rg->shape[0];
        cr_assert(o.n_ranges <= 64);
        for (size_t r = 0; r < o.n_ranges; r++)
            ranges[r] = (ct_optim_range){(size_t)rg->v[3 * r], (size_t)rg->v[3 * r + 1],
                                         (size_t)rg->v[3 * r + 2]};
        o.ranges = ranges;
    }
    const tu_gold_tensor *p0 = tu_golden_get(gold, "p0"), *grads = tu_golden_get(gold, "grads");
    const size_t n = p0->numel, steps = grads->shape[0];
    float *hp = tu_gold_floats(p0), *hg = tu_gold_floats(grads);
    ct_tensor *p = tu_tensor(ctx, TU_SHAPE(n), hp), *g = tu_tensor(ctx, TU_SHAPE(n), NULL);
    ct_optim *opt = NULL;
    TU_OK(ct_optim_create(ctx, &o, p, g, &opt));

    ct_sched *sched = NULL;
    snprintf(key, sizeof key, "%s.sched", name);
    const tu_gold_tensor *sc = tu_golden_find(gold, key);
    if (sc) {
        ct_sched_options so;
        if (sc->v[0] == 1) {
            so = ct_sched_defaults(CT_SCHED_ONECYCLE);
            so.max_lr = sc->v[1];
            so.total_steps = (size_t)sc->v[2];
            so.pct_start = sc->v[3];
            so.three_phase = sc->v[4] != 0;
            so.anneal = sc->v[5] != 0 ? CT_ANNEAL_LINEAR : CT_ANNEAL_COS;
        } else {
            cr_assert(sc->v[0] == 2, "%s: unknown schedule code %g", name, sc->v[0]);
            so = ct_sched_defaults(CT_SCHED_STEP);
            so.step_size = (size_t)sc->v[1];
            so.gamma = sc->v[2];
            so.warmup_iters = (size_t)sc->v[3];
            so.warmup_start_factor = sc->v[4];
        }
        TU_OK(ct_sched_create(&so, opt, &sched));
    }
    snprintf(key, sizeof key, "%s.clip", name);
    const tu_gold_tensor *clip = tu_golden_find(gold, key);

    snprintf(key, sizeof key, "%s.traj", name);
    const tu_gold_tensor *traj = tu_golden_get(gold, key);
    cr_assert(traj->shape[0] == steps && traj->shape[1] == n);
    double worst = 0;
    for (size_t s = 0; s < steps; s++) {
        TU_OK(ct_tensor_upload(g, hg + s * n, n));
        if (clip)
            TU_OK(ct_clip_grad_norm(ctx, g, clip->v[0], NULL));
        TU_OK(ct_optim_step(opt));
        if (sched)
            TU_OK(ct_sched_step(sched, 0));
        float *got = tu_download(p);
        char what[300];
        snprintf(what, sizeof what, "%s after step %zu", name, s + 1);
        tu_assert_close(what, got, traj->v + s * n, n, P_ATOL, P_RTOL);
        worst = fmax(worst, note_diff(name, got, traj->v + s * n, n));
        free(got);
    }
    cr_assert(ct_optim_get_step(opt) == steps);
    g_exact_configs += worst == 0;
    if (!clip && strict_device(ctx))
        cr_assert(worst == 0, "%s: %g ulp from PyTorch's bits on PoCL, where they should match",
                  name, worst);
    if (getenv("CT_OPTIM_GOLDEN_VERBOSE"))
        cr_log_info("%s: %g ulp", name, worst);

    /* final state: the same buffers as torch's optimizer.state, with the same values */
    size_t compared = 0;
    for (size_t e = 0; e < ct_optim_state_count(opt); e++) {
        ct_optim_state_info info;
        TU_OK(ct_optim_state_info_at(opt, e, &info));
        if (info.dtype != CT_STATE_F32)
            continue;
        snprintf(key, sizeof key, "%s.state.%s", name, info.name);
        const tu_gold_tensor *want = tu_golden_get(gold, key);
        float *st = malloc(n * sizeof *st);
        cr_assert(st);
        TU_OK(ct_optim_state_get(opt, info.name, st, n));
        tu_assert_close(key, st, want->v, n, S_ATOL, S_RTOL);
        free(st);
        compared++;
    }
    size_t expected = 0;
    snprintf(key, sizeof key, "%s.state.", name);
    for (size_t i = 0; i < gold->count; i++)
        if (strncmp(gold->t[i].name, key, strlen(key)) == 0)
            expected++;
    cr_assert(compared == expected, "%s: %zu state buffers here, torch has %zu", name, compared,
              expected);

    ct_sched_free(sched);
    ct_optim_free(opt);
    ct_tensor_free(p);
    ct_tensor_free(g);
    free(hp);
    free(hg);
}

Test(optim_golden, trajectories)
{
    ct_context *ctx = tu_context();
    tu_golden *gold = tu_golden_load("optim.txt");
    size_t configs = 0;
    for (size_t i = 0; i < gold->count; i++) {
        const char *nm = gold->t[i].name;
        size_t len = strlen(nm);
        if (len > 4 && strcmp(nm + len - 4, ".cfg") == 0) {
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(len - 4), nm);
            run_config(ctx, gold, name);
            configs++;
        }
    }
    cr_assert(configs >= 30, "only %zu configurations in optim.txt", configs);
    cr_log_info("%zu optimizer configurations x 20 steps, %zu bit-identical to PyTorch; "
                "largest difference %g ulp (%s)",
                configs, g_exact_configs, g_max_ulp, g_max_ulp > 0 ? g_worst : "-");
    tu_golden_free(gold);
    ct_context_free(ctx);
}

/* norm: exact for inf/NaN, else relative (the flat sum and torch's norm of per-tensor
 * norms differ in summation order: ~1e-7 relative; rtol 2e-6). */
static void check_norm(const char *what, float got, double want)
{
    if (isnan(want))
        cr_assert(isnan(got), "%s: got %g, want NaN", what, got);
    else if (isinf(want))
        cr_assert(got == want, "%s: got %g, want %g", what, got, want);
    else
        tu_assert_close(what, &got, &want, 1, 0, 2e-6);
}

Test(optim_golden, clip_grad_norm)
{
    static const char *cases[] = {"clips", "below", "large", "zero", "tiny", "inf", "nan"};
    ct_context *ctx = tu_context();
    tu_golden *gold = tu_golden_load("optim.txt");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char key[128];
        snprintf(key, sizeof key, "clip.%s.in", cases[c]);
        const tu_gold_tensor *in = tu_golden_get(gold, key);
        snprintf(key, sizeof key, "clip.%s.max_norm", cases[c]);
        double max_norm = tu_golden_get(gold, key)->v[0];
        snprintf(key, sizeof key, "clip.%s.norm", cases[c]);
        double want_norm = tu_golden_get(gold, key)->v[0];
        snprintf(key, sizeof key, "clip.%s.out", cases[c]);
        const tu_gold_tensor *out = tu_golden_get(gold, key);
        float *h = tu_gold_floats(in);
        ct_tensor *g = tu_tensor(ctx, TU_SHAPE(in->numel), h);
        ct_tensor *norm = tu_tensor(ctx, TU_SHAPE(1), NULL);
        TU_OK(ct_clip_grad_norm(ctx, g, max_norm, norm));
        float got_norm;
        TU_OK(ct_tensor_download(norm, &got_norm, 1));
        check_norm(key, got_norm, want_norm);
        float *got = tu_download(g);
        /* the coefficient inherits the norm's 2e-6, plus one rounding of the product */
        tu_assert_close(key, got, out->v, out->numel, 1e-30, 2.5e-6);
        free(got);
        free(h);
        ct_tensor_free(g);
        ct_tensor_free(norm);
    }
    tu_golden_free(gold);
    ct_context_free(ctx);
}

Test(optim_golden, clip_grad_value)
{
    ct_context *ctx = tu_context();
    tu_golden *gold = tu_golden_load("optim.txt");
    const tu_gold_tensor *in = tu_golden_get(gold, "clipv.in");
    const tu_gold_tensor *out = tu_golden_get(gold, "clipv.out");
    float *h = tu_gold_floats(in);
    ct_tensor *g = tu_tensor(ctx, TU_SHAPE(in->numel), h);
    TU_OK(ct_clip_grad_value(ctx, g, tu_golden_get(gold, "clipv.value")->v[0]));
    float *got = tu_download(g);
    tu_assert_close("clip_grad_value", got, out->v, out->numel, 0, 0); /* a clamp is exact */
    free(got);
    free(h);
    ct_tensor_free(g);
    tu_golden_free(gold);
    ct_context_free(ctx);
}
