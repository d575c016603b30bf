/* cltrain bench: device time per layer group and per kernel, from profiling events.
 *
 * Profiling labels name kernels, not layers, so the time of layer group g is the
 * difference between two prefix models, label by label: the model's first layers up to
 * the end of g, minus those up to the end of g-1. A prefix runs exactly like the front of
 * the whole model only when it does not cut a fusion (lib/nn/model.c): a conv or linear
 * and the ReLU after it, or a ReLU and the maxpool after it (the pool does the ReLU's
 * backward), stay in one group.
 *
 * Each time is the FASTEST of --runs profiled runs: on cores shared with other processes a
 * kernel is only ever slowed down by them, and the fastest run is the least disturbed.
 * The throughput figures of cmd_bench.c are medians of wall-clock time instead. A group
 * whose difference is within the noise of the earlier groups' launches of the same kernel
 * (under FAINT of their time) gets its times marked `~` and no rates.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MAX_LABELS 128

typedef struct labtab {
    size_t n;
    char name[MAX_LABELS][64];
} labtab;

static size_t lab_id(labtab *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->name[i], name) == 0)
            return i;
    if (t->n == MAX_LABELS)
        return MAX_LABELS - 1; /* lumps any excess together rather than failing */
    snprintf(t->name[t->n], sizeof t->name[0], "%s", name);
    return t->n++;
}

/* Adds what was recorded since the last reset into ms[label] and launches[label]. */
static ct_status collect(ct_context *ctx, labtab *t, double *ms, double *launches)
{
    ct_profile_entry *e = NULL;
    size_t n = 0;
    ct_status st = ct_profile_collect(ctx, &e, &n);
    for (size_t i = 0; i < n && !st; i++) {
        size_t id = lab_id(t, e[i].label);
        ms[id] += e[i].total_ms;
        launches[id] += e[i].launches;
    }
    free(e);
    ct_profile_reset(ctx);
    return st;
}

enum { PH_ZERO, PH_FWD, PH_LOSS, PH_BWD, PH_OPT, PH_COUNT };
static const char *const phase_name[PH_COUNT] = {"zero_grad", "forward", "loss", "backward",
                                                 "optimizer"};

/* Fastest device ms per phase and label over the runs, and launches per run. */
typedef struct profile {
    double ms[PH_COUNT][MAX_LABELS];
    double launches[PH_COUNT][MAX_LABELS];
} profile;

/* A model of the first `count` layers, profiled run after run. With `full` a run is a
 * whole training step (cross-entropy and optimizer included); otherwise forward, then
 * backward from a fixed random output gradient. */
typedef struct prefix {
    size_t count;
    bool full;
    ct_model *m;
    ct_optim *opt;
    ct_loss *loss;
    ct_tensor *dy, *lv;
    profile best; /* fastest of the runs so far, per phase and label; -1: none yet */
} prefix;

static void prefix_free(prefix *p)
{
    ct_tensor_free(p->dy);
    ct_tensor_free(p->lv);
    ct_loss_free(p->loss);
    ct_optim_free(p->opt);
    ct_model_free(p->m);
    p->dy = p->lv = NULL;
    p->loss = NULL;
    p->opt = NULL;
    p->m = NULL;
}

static ct_status prefix_make(ct_context *ctx, const bench *b, size_t count, bool full, size_t n,
                             prefix *p)
{
    ct_status st = CT_SUCCESS;
    float *host = NULL;
    size_t ond, oshape[4] = {n, 0, 0, 0};
    memset(p, 0, sizeof *p);
    p->count = count;
    p->full = full;
    for (size_t ph = 0; ph < PH_COUNT; ph++)
        for (size_t l = 0; l < MAX_LABELS; l++)
            p->best.ms[ph][l] = -1;
    if ((st =
             ct_model_create(ctx, b->layers, count, b->o.in_ndim, b->o.in_shape, b->o.seed, &p->m)))
        goto done;
    ct_model_output_shape(p->m, &ond, oshape + 1);
    if (full) {
        ct_optim_options oo = ct_optim_defaults(b->o.optim);
        oo.lr = b->o.lr;
        ct_loss_options lo = ct_loss_options_default(CT_LOSS_CROSS_ENTROPY);
        if ((st =
                 ct_optim_create(ctx, &oo, ct_model_params(p->m), ct_model_grads(p->m), &p->opt)) ||
            (st = ct_loss_create(ctx, &lo, &p->loss)) ||
            (st = ct_tensor_create(ctx, 1, (size_t[]){1}, &p->lv)))
            goto done;
    }
    size_t nout = bench_prod(ond + 1, oshape);
    host = malloc(nout * sizeof *host);
    if (!host) {
        st = CT_ERR_OUT_OF_MEMORY;
        goto done;
    }
    uint64_t s = b->o.seed ^ 0x5eedULL;
    for (size_t i = 0; i < nout; i++)
        host[i] = bench_uniform(&s) * 1e-3f;
    if ((st = ct_tensor_create(ctx, ond + 1, oshape, &p->dy)) ||
        (st = ct_tensor_upload(p->dy, host, nout)))
        goto done;
done:
    free(host);
    if (st)
        prefix_free(p);
    return st;
}

/* One profiled run; `keep` folds it into p->best (false: a warm-up run). */
static ct_status prefix_run(ct_context *ctx, prefix *p, const bench_data *d, labtab *t,
                            profile *run, bool keep)
{
    ct_status st = CT_SUCCESS;
    ct_tensor *y = NULL;
    memset(run, 0, sizeof *run);
    ct_profile_reset(ctx);
    if ((st = ct_model_zero_grad(p->m)) ||
        (st = collect(ctx, t, run->ms[PH_ZERO], run->launches[PH_ZERO])) ||
        (st = ct_model_forward(p->m, d->x, &y)) ||
        (st = collect(ctx, t, run->ms[PH_FWD], run->launches[PH_FWD])))
        return st;
    if (p->full && ((st = ct_loss_forward_backward(p->loss, y, d->y, p->lv, p->dy)) ||
                    (st = collect(ctx, t, run->ms[PH_LOSS], run->launches[PH_LOSS]))))
        return st;
    if ((st = ct_model_backward(p->m, p->dy)) ||
        (st = collect(ctx, t, run->ms[PH_BWD], run->launches[PH_BWD])))
        return st;
    if (p->full && ((st = ct_optim_step(p->opt)) ||
                    (st = collect(ctx, t, run->ms[PH_OPT], run->launches[PH_OPT]))))
        return st;
    if (keep)
        for (size_t ph = 0; ph < PH_COUNT; ph++)
            for (size_t l = 0; l < t->n; l++)
                if (p->best.ms[ph][l] < 0 || run->ms[ph][l] < p->best.ms[ph][l]) {
                    p->best.ms[ph][l] = run->ms[ph][l];
                    p->best.launches[ph][l] = run->launches[ph][l];
                }
    return st;
}

/* Ends the runs: no negative times from the prefix differences. */
static void prefix_finish(prefix *p)
{
    for (size_t ph = 0; ph < PH_COUNT; ph++)
        for (size_t l = 0; l < MAX_LABELS; l++)
            p->best.ms[ph][l] = p->best.ms[ph][l] < 0 ? 0 : p->best.ms[ph][l];
}

/* Labels whose work is the FLOPs counted for conv and linear layers: lib/nn/conv2d.c's
 * convolution kernels (conv_kv*, conv_direct*: forward, with a fused pool, and input
 * gradient; conv_bwd_w*: weight gradient) and the GEMMs. The rest is padding, weight re-layout,
 * bias, pooling, element-wise. Follow conv2d.c's launch labels when they change; the kernel table
 * names the labels that matched. */
static bool main_kernel(const char *label)
{
    return strncmp(label, "conv_kv", 7) == 0 || strncmp(label, "conv_direct", 11) == 0 ||
           strncmp(label, "conv_bwd_w", 10) == 0 || strcmp(label, "gemm") == 0;
}

static double sum_phase(const profile *p, size_t phase, const labtab *t, bool main_only)
{
    double s = 0;
    for (size_t l = 0; l < t->n; l++)
        if (!main_only || main_kernel(t->name[l]))
            s += p->ms[phase][l];
    return s;
}

/* Whether a prefix model may end after layer i (see the file comment). */
static bool group_ends_after(const bench *b, size_t i)
{
    if (i + 1 >= b->nlayers)
        return true;
    ct_layer_kind k = b->layers[i].kind, next = b->layers[i + 1].kind;
    if ((k == CT_LAYER_CONV2D || k == CT_LAYER_LINEAR) && next == CT_LAYER_RELU)
        return false;
    return !(k == CT_LAYER_RELU && next == CT_LAYER_MAXPOOL2D);
}

/* A group's share of a kernel label smaller than this fraction of the earlier groups'
 * time on that label is taken as noise (group_row). */
#define FAINT 0.1

/* One row of the group table: the difference cur - prev, label by label; sets *faint_rows
 * when its times are marked as noise. */
static void group_row(bench *b, size_t start, size_t end, const profile *cur, const profile *prev,
                      const labtab *t, bool *faint_rows)
{
    char name[160] = "", one[48], pb[16], range[24], mainbuf[24] = "";
    double ff = 0, fb = 0, fms = 0, bms = 0, fmain = 0, bmain = 0;
    bool faint = false; /* a difference below the noise of what it is taken from */
    for (size_t j = start; j <= end; j++) {
        double f, bw;
        bench_layer_flops(b, j, &f, &bw);
        ff += f * (double)b->o.batch;
        fb += bw * (double)b->o.batch;
        bench_layer_name(b, j, one, sizeof one);
        size_t len = strlen(name);
        snprintf(name + len, sizeof name - len, "%s%s", j > start ? ", " : "", one);
    }
    for (size_t l = 0; l < t->n; l++) {
        /* Only labels the group launches more often count: launch counts are exact, times
         * are not, and the earlier groups' kernels would otherwise leave their noise here. */
        double df = 0, db = 0;
        if (cur->launches[PH_FWD][l] > prev->launches[PH_FWD][l])
            df = cur->ms[PH_FWD][l] - prev->ms[PH_FWD][l];
        if (cur->launches[PH_BWD][l] > prev->launches[PH_BWD][l])
            db = cur->ms[PH_BWD][l] - prev->ms[PH_BWD][l];
        df = df > 0 ? df : 0; /* still possible when the earlier launches ran slower */
        db = db > 0 ? db : 0;
        /* the earlier groups' launches of the label vary by a few % from run to run: a
         * group adding less than FAINT of their time is within that noise (linear
         * 128->10 after linear 3136->128: 0.000-0.028 ms of gemm in repeated runs) */
        if ((cur->launches[PH_FWD][l] > prev->launches[PH_FWD][l] &&
             df < FAINT * prev->ms[PH_FWD][l]) ||
            (cur->launches[PH_BWD][l] > prev->launches[PH_BWD][l] &&
             db < FAINT * prev->ms[PH_BWD][l]))
            faint = true;
        fms += df;
        bms += db;
        if (main_kernel(t->name[l])) {
            fmain += df;
            bmain += db;
        }
    }
    double gf = fms > 0 ? ff / fms * 1e-6 : 0, gb = bms > 0 ? fb / bms * 1e-6 : 0;
    double gall = fms + bms > 0 ? (ff + fb) / (fms + bms) * 1e-6 : 0;
    double gmain = fmain + bmain > 0 ? (ff + fb) / (fmain + bmain) * 1e-6 : 0;
    snprintf(range, sizeof range, start == end ? "%zu" : "%zu-%zu", start, end);
    if (faint) {
        /* its times are printed, marked; rates from them would be noise */
        printf("  %-6s %-36.36s %7.3f~ %7.3f~ %8.4f %8s %8s %8s %9s %7s\n", range, name, fms, bms,
               (ff + fb) * 1e-9, "-", "-", "-", "-", "-");
        *faint_rows = true;
    } else {
        if (ff + fb > 0)
            snprintf(mainbuf, sizeof mainbuf, "%.1f", gmain);
        printf("  %-6s %-36.36s %8.3f %8.3f %8.4f %8.1f %8.1f %8.1f %9s %7s\n", range, name, fms,
               bms, (ff + fb) * 1e-9, gf, gb, gall, mainbuf,
               ff + fb > 0 ? bench_fmt_pct(pb, sizeof pb, bench_pct(b, gall)) : "");
    }
    bench_csv(b, "layers", range, b->o.batch, "fwd_ms", fms);
    bench_csv(b, "layers", range, b->o.batch, "bwd_ms", bms);
    if (ff + fb > 0 && !faint) {
        bench_csv(b, "layers", range, b->o.batch, "gflops", gall);
        bench_csv(b, "layers", range, b->o.batch, "gflops_conv_gemm_kernels", gmain);
    }
}

static void kernel_table(bench *b, const profile *full, const labtab *t)
{
    char pb[16], pb2[16];
    double phase_ms[PH_COUNT], all = 0;
    for (size_t p = 0; p < PH_COUNT; p++) {
        phase_ms[p] = sum_phase(full, p, t, false);
        all += phase_ms[p];
    }
    printf("\nper kernel, one training step at batch %zu (device ms, fastest of %zu runs)\n",
           b->o.batch, b->o.runs);
    printf("  %-22s", "kernel");
    for (size_t p = 0; p < PH_COUNT; p++)
        printf(" %9s", phase_name[p]);
    printf(" %8s %6s\n", "launches", "share");
    for (size_t l = 0; l < t->n; l++) {
        double row = 0, n = 0;
        for (size_t p = 0; p < PH_COUNT; p++) {
            row += full->ms[p][l];
            n += full->launches[p][l];
        }
        if (n == 0)
            continue;
        printf("  %-22.22s", t->name[l]);
        for (size_t p = 0; p < PH_COUNT; p++) {
            if (full->launches[p][l] > 0)
                printf(" %9.3f", full->ms[p][l]);
            else
                printf(" %9s", "");
        }
        printf(" %8.0f %5.1f%%\n", n, all > 0 ? 100.0 * row / all : 0.0);
        bench_csv(b, "kernels", t->name[l], b->o.batch, "ms", row);
    }
    if (!b->gemm_clblast)
        printf("  (gemm: kernels/gemm.cl, one kernel per product)\n");
    else
        printf("  (gemm: CLBlast, from a marker enqueued before each call to its last kernel's "
               "end)\n");
    printf("  %-22s", "total");
    for (size_t p = 0; p < PH_COUNT; p++)
        printf(" %9.3f", phase_ms[p]);
    printf("\n");
    double fl = (b->flops_fwd + b->flops_bwd) * (double)b->o.batch;
    double dev_g = all > 0 ? fl / all * 1e-6 : 0;
    double main_ms = sum_phase(full, PH_FWD, t, true) + sum_phase(full, PH_BWD, t, true);
    double main_g = main_ms > 0 ? fl / main_ms * 1e-6 : 0;
    printf("  conv/GEMM kernels:");
    for (size_t l = 0; l < t->n; l++)
        if (main_kernel(t->name[l]))
            printf(" %s", t->name[l]);
    printf("\n  device busy %.3f ms per step", all);
    if (b->step_ms > 0)
        printf(" (median wall-clock step: %.3f ms)", b->step_ms);
    printf("\n  GFLOP/s over the device time %.1f (%s of peak); over the conv/GEMM kernels' "
           "time %.1f (%s)\n",
           dev_g, bench_fmt_pct(pb, sizeof pb, bench_pct(b, dev_g)), main_g,
           bench_fmt_pct(pb2, sizeof pb2, bench_pct(b, main_g)));
    bench_csv(b, "kernels", "total", b->o.batch, "device_ms", all);
    bench_csv(b, "kernels", "total", b->o.batch, "gflops_device", dev_g);
    bench_csv(b, "kernels", "conv_gemm", b->o.batch, "gflops", main_g);
}

int bench_section_layers(bench *b)
{
    int rc = 1;
    ct_context *ctx = NULL;
    bench_data d = {0};
    labtab *t = calloc(1, sizeof *t);
    profile *run = calloc(1, sizeof *run), *zero = calloc(1, sizeof *zero);
    /* prefixes: one per layer group ending before the last, the whole model (forward and
     * backward only, for the last group), and the whole training step (for the kernel
     * table) */
    prefix *pre = calloc(b->nlayers + 2, sizeof *pre);
    size_t npre = 0;
    if (!t || !run || !zero || !pre) {
        fprintf(stderr, "cltrain bench: out of host memory\n");
        goto done;
    }
    if (ct_context_create(b->o.device, CT_CONTEXT_PROFILING, &ctx)) {
        rc = bench_fail("opening the device with profiling");
        goto done;
    }
    if (bench_data_make(ctx, b, b->o.batch, b->o.seed, &d)) {
        rc = bench_fail("making the synthetic batch");
        goto done;
    }
    if (prefix_make(ctx, b, b->nlayers, true, d.n, &pre[npre++])) {
        rc = bench_fail("building the model");
        goto done;
    }
    for (size_t i = 0; i < b->nlayers; i++)
        if (group_ends_after(b, i) && prefix_make(ctx, b, i + 1, false, d.n, &pre[npre++])) {
            rc = bench_fail("building a prefix of the model");
            goto done;
        }
    /* runs outermost: a change of load over time then touches every prefix alike */
    for (size_t r = 0; r <= b->o.runs; r++)
        for (size_t k = 0; k < npre; k++)
            if (prefix_run(ctx, &pre[k], &d, t, run, r > 0)) {
                rc = bench_fail("profiling");
                goto done;
            }
    for (size_t k = 0; k < npre; k++)
        prefix_finish(&pre[k]);

    printf("\nper layer group, batch %zu (device time from profiling events, fastest of %zu "
           "runs; GFLOP/s\nover the group's time, and over its conv/GEMM kernels' time alone)\n",
           b->o.batch, b->o.runs);
    printf("  %-6s %-36s %8s %8s %8s %8s %8s %8s %9s %7s\n", "layers", "", "fwd ms", "bwd ms",
           "GFLOP", "fwd GF/s", "bwd GF/s", "GF/s", "conv/gemm", "%peak");
    size_t start = 0;
    const profile *prev = zero;
    bool faint_rows = false;
    for (size_t k = 1; k < npre; k++) {
        size_t end = pre[k].count - 1;
        group_row(b, start, end, &pre[k].best, prev, t, &faint_rows);
        prev = &pre[k].best;
        start = end + 1;
    }
    if (faint_rows)
        printf("  ~ a difference of two fastest runs under %.0f%% of the same kernels' time in "
               "the groups\n    before it: within their run-to-run noise, so no rates are "
               "given\n",
               FAINT * 100);
    kernel_table(b, &pre[0].best, t);
    rc = 0;
done:
    for (size_t k = 0; k < npre; k++)
        prefix_free(&pre[k]);
    bench_data_free(&d);
    ct_context_free(ctx);
    free(t);
    free(run);
    free(zero);
    free(pre);
    return rc;
}
