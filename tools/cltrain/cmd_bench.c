/* cltrain bench — how fast a model trains and infers on a device, and where the time goes.
 *
 * Sections, in order, all on synthetic data made on the host from a fixed seed and
 * uploaded once (no input pipeline is measured):
 *   peak     the device's FP32 peak from kernels/peak.cl (bench_peak.c)
 *   train    training steps as the library runs them (ct_trainer_step: zero_grad,
 *            forward, cross-entropy, backward, optimizer step) at --batch: median and best
 *            of --runs runs of --steps steps after --warmup steps; images/s and GFLOP/s
 *   infer    eval-mode forward passes at --batch, timed the same way
 *   memory   ct_context_mem_in_use after training, next to the sizes of parameters,
 *            gradients, optimizer state and saved activations (bench_gemm.c)
 *   gemm     CLBlast GEMMs at the exact shapes of the linear layers (bench_gemm.c)
 *   layers   device time per layer group and per kernel (bench_profile.c)
 *   sweep    training and inference at each of --batches: the per-image cost, in rounds
 *            that run every batch once, so that drift in the machine's load hits all alike
 *   startup  only with --startup: a fresh process to its first training step, with warm
 *            and with empty kernel caches (bench_startup.c)
 * FLOPs are those of the convolutions and linear layers, 2 per multiply-add; element-wise
 * work is not counted. Percentages are of the best peak launch.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_peak.h"
#include "cmd_bench.h"

/* Same for eval-mode forward passes. */
static ct_status time_infer(ct_context *ctx, bench_rig *r, const bench_data *d, size_t warmup,
                            size_t runs, size_t steps, double *t)
{
    ct_status st = CT_SUCCESS;
    ct_tensor *y = NULL;
    ct_model_set_training(r->m, false);
    for (size_t i = 0; i < warmup && !st; i++)
        st = ct_model_forward(r->m, d->x, &y);
    if (!st)
        st = ct_context_finish(ctx);
    for (size_t run = 0; run < runs && !st; run++) {
        double t0 = bench_now();
        for (size_t i = 0; i < steps && !st; i++)
            st = ct_model_forward(r->m, d->x, &y);
        if (!st)
            st = ct_context_finish(ctx);
        t[run] = (bench_now() - t0) / (double)steps;
    }
    ct_model_set_training(r->m, true);
    return st;
}

/* ---- options ---------------------------------------------------------------------------- */

static void usage(FILE *to)
{
    fprintf(to, "usage: cltrain bench [options]\n"
                "\n"
                "Training-step and inference throughput of a model on synthetic data resident on\n"
                "the device, per-layer and per-kernel device times, GEMM at the model's shapes,\n"
                "memory, and the device's FP32 peak (see tools/cltrain/cmd_bench.c).\n"
                "\n"
                "  --model SPEC       layer spec or builtin name (default minicnn)\n"
                "  --input C,H,W      per-sample input shape, or F for features (default 1,28,28)\n"
                "  --batch N          batch of the main measurements (default 64)\n"
                "  --batches LIST     batch sweep, comma-separated (default 16,32,64,128,256,512;\n"
                "                     0 turns the sweep off); timed in --runs rounds, each a\n"
                "                     warm-up step and a run of every batch\n"
                "  --steps N          timed steps per run at --batch (default 10; the sweep keeps\n"
                "                     the images per run about the same)\n"
                "  --runs N           timed runs; medians are over these (default 5)\n"
                "  --warmup N         untimed steps first (default 3)\n"
                "  --optimizer NAME   sgd, adam, adamw, rmsprop, adagrad (default adam)\n"
                "  --lr X             learning rate (default 1e-3)\n"
                "  --seed N           data and initialisation seed (default 1)\n"
                "  --device D         device index or name substring\n"
                "  --threads T        sets POCL_MAX_PTHREAD_COUNT=T for PoCL's CPU device\n"
                "  --csv FILE         also write every number as section,item,batch,metric,value\n"
                "  --startup          also time a fresh process to its first step, warm and cold\n"
                "  --peak-gflops X    percentages of X instead of the measured peak\n"
                "  --no-peak --no-layers --no-gemm --no-memory --no-train\n"
                "                     skip a section\n");
}

static int parse_args(int argc, char **argv, bench_opts *o)
{
    memset(o, 0, sizeof *o);
    bench_model_defaults(o);
    static const size_t sweep[] = {16, 32, 64, 128, 256, 512};
    memcpy(o->batches, sweep, sizeof sweep);
    o->nbatches = sizeof sweep / sizeof sweep[0];
    o->steps = 10;
    o->runs = 5;
    o->warmup = 3;
    o->optim = CT_OPTIM_ADAM;
    o->lr = 1e-3;
    o->seed = 1;
    o->peak = o->train = o->layers = o->gemm = o->memory = o->sweep = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t x = 0;
        bool takes = true, ok = true;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (bench_model_option(a, v, o, &ok)) {
            /* --model, --input, --batch, --device, --threads */
        } else if (strcmp(a, "--batches") == 0) {
            if (v && strcmp(v, "0") == 0) {
                o->sweep = false;
                o->nbatches = 0;
            } else {
                ok = bench_parse_list(v, 1u << 20, o->batches, BENCH_MAX_BATCHES, &o->nbatches);
            }
        } else if (strcmp(a, "--steps") == 0) {
            ok = bench_parse_uint(v, 1, 1u << 20, &o->steps);
        } else if (strcmp(a, "--runs") == 0) {
            ok = bench_parse_uint(v, 1, 1000, &o->runs);
        } else if (strcmp(a, "--warmup") == 0) {
            ok = bench_parse_uint(v, 0, 1u << 20, &o->warmup);
        } else if (strcmp(a, "--seed") == 0) {
            ok = bench_parse_uint(v, 0, SIZE_MAX, &x);
            o->seed = x;
        } else if (strcmp(a, "--lr") == 0) {
            char *end = NULL;
            o->lr = v ? strtod(v, &end) : 0;
            ok = v && end != v && !*end && o->lr > 0 && isfinite(o->lr);
        } else if (strcmp(a, "--peak-gflops") == 0) {
            char *end = NULL;
            o->peak_gflops = v ? strtod(v, &end) : 0;
            ok = v && end != v && !*end && o->peak_gflops > 0 && isfinite(o->peak_gflops);
        } else if (strcmp(a, "--optimizer") == 0) {
            ok = false;
            for (int k = CT_OPTIM_SGD; v && k <= CT_OPTIM_ADAGRAD && !ok; k++)
                if (strcmp(v, ct_optim_kind_name((ct_optim_kind)k)) == 0) {
                    o->optim = (ct_optim_kind)k;
                    ok = true;
                }
        } else if (strcmp(a, "--csv") == 0) {
            ok = v && *v;
            o->csv = v;
        } else {
            takes = false;
            if (strcmp(a, "--startup") == 0)
                o->startup = true;
            else if (strcmp(a, "--startup-child") == 0)
                o->startup_child = true;
            else if (strcmp(a, "--no-peak") == 0)
                o->peak = false;
            else if (strcmp(a, "--no-layers") == 0)
                o->layers = false;
            else if (strcmp(a, "--no-gemm") == 0)
                o->gemm = false;
            else if (strcmp(a, "--no-memory") == 0)
                o->memory = false;
            else if (strcmp(a, "--no-train") == 0)
                o->train = false;
            else {
                fprintf(stderr, "cltrain bench: unknown option '%s' (see cltrain bench --help)\n",
                        a);
                return 2;
            }
        }
        if (!ok) {
            fprintf(stderr, "cltrain bench: bad or missing value for %s: '%s'\n", a,
                    v ? v : "(nothing)");
            return 2;
        }
        if (takes)
            i++;
    }
    return -1; /* go on */
}

/* ---- the command -------------------------------------------------------------------------- */

static void print_header(bench *b, const ct_device_info *dev)
{
    size_t params = 0;
    ct_layers_check(b->layers, b->nlayers, b->o.in_ndim, b->o.in_shape, NULL, NULL, &params);
    const char *threads = getenv("POCL_MAX_PTHREAD_COUNT");
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1)
            load = -1;
        fclose(f);
    }
    printf("cltrain bench: %s\n", b->o.model);
    printf("  input (%zu", b->o.in_shape[0]);
    for (size_t i = 1; i < b->o.in_ndim; i++)
        printf(",%zu", b->o.in_shape[i]);
    printf("), %zu classes, %zu layers, %zu parameters; %.4f GFLOP per image forward, %.4f "
           "backward\n",
           b->classes, b->nlayers, params, b->flops_fwd * 1e-9, b->flops_bwd * 1e-9);
    printf("  optimizer %s lr %g, synthetic data (seed %llu) resident on the device\n",
           ct_optim_kind_name(b->o.optim), b->o.lr, (unsigned long long)b->o.seed);
    printf("  device: %s (%s), %u compute units, %s\n", dev->name, dev->platform,
           dev->compute_units, dev->driver);
    printf("  GEMM: %s\n",
           b->gemm_clblast ? "CLBlast" : "kernels/gemm.cl (CLTRAIN_GEMM=clblast for CLBlast)");
    if (threads)
        printf("  POCL_MAX_PTHREAD_COUNT=%s\n", threads);
    if (load >= 0)
        printf("  load average at start: %.2f (other processes share the device's cores)\n", load);
}

/* Rounds rather than one batch after another: each round times one run of every batch (a
 * warm-up step first, as the model's buffers follow the batch), so a change in what else
 * runs on the cores while the sweep goes shifts every batch alike and the per-image
 * comparison between batches stays fair. */
static int section_sweep(bench *b, ct_context *ctx, bench_rig *r)
{
    const size_t nb = b->o.nbatches, runs = b->o.runs;
    char pb[16];
    printf("\nbatch sweep (median of %zu rounds, each a run of every batch in turn; per-image "
           "cost should stay flat or fall)\n",
           runs);
    printf("  %6s %12s %11s %8s %7s %12s %11s %8s\n", "batch", "train ms", "train img/s", "us/img",
           "%peak", "infer ms", "infer img/s", "us/img");
    bench_data *d = calloc(nb, sizeof *d);
    double *tr = calloc(nb * runs, sizeof *tr), *inf = calloc(nb * runs, sizeof *inf);
    size_t steps[BENCH_MAX_BATCHES];
    ct_status st = CT_SUCCESS;
    if (!d || !tr || !inf) {
        fprintf(stderr, "cltrain bench: batch sweep: out of host memory\n");
        free(d), free(tr), free(inf);
        return 1;
    }
    for (size_t i = 0; i < nb && !st; i++) {
        /* about as many images per run as --steps at --batch, at least 2 steps */
        size_t n = b->o.batches[i];
        steps[i] = (b->o.steps * b->o.batch + n - 1) / n;
        steps[i] = steps[i] < 2 ? 2 : steps[i];
        st = bench_data_make(ctx, b, n, b->o.seed + n, &d[i]);
    }
    for (size_t run = 0; run < runs && !st; run++)
        for (size_t i = 0; i < nb && !st; i++) {
            st = bench_time_train(ctx, r, &d[i], 1, 1, steps[i], &tr[i * runs + run]);
            if (!st)
                st = time_infer(ctx, r, &d[i], 1, 1, steps[i], &inf[i * runs + run]);
        }
    for (size_t i = 0; i < nb && !st; i++) {
        size_t n = b->o.batches[i];
        double t = bench_median(tr + i * runs, runs), ti = bench_median(inf + i * runs, runs);
        double g = (b->flops_fwd + b->flops_bwd) * (double)n / t * 1e-9;
        printf("  %6zu %12.3f %11.0f %8.1f %7s %12.3f %11.0f %8.1f\n", n, t * 1e3, n / t,
               t / n * 1e6, bench_fmt_pct(pb, sizeof pb, bench_pct(b, g)), ti * 1e3, n / ti,
               ti / n * 1e6);
        bench_csv(b, "sweep", "train", n, "images_per_s", n / t);
        bench_csv(b, "sweep", "infer", n, "images_per_s", n / ti);
    }
    for (size_t i = 0; i < nb; i++)
        bench_data_free(&d[i]);
    free(d);
    free(tr);
    free(inf);
    return st ? bench_fail("batch sweep") : 0;
}

int cli_bench(int argc, char **argv)
{
    bench b;
    memset(&b, 0, sizeof b);
    int rc = parse_args(argc, argv, &b.o);
    if (rc >= 0)
        return rc;
    rc = 1;
    ct_context *ctx = NULL;
    bench_rig r = {0};
    bench_data d = {0};
    double *t = NULL;
    char pb[16];
    const size_t *shape = b.o.in_shape;
    size_t ond = 0, oshape[3] = {0, 0, 0};

    if (ct_spec_parse(b.o.model, &b.layers, &b.nlayers) != CT_SUCCESS ||
        ct_layers_check(b.layers, b.nlayers, b.o.in_ndim, shape, &ond, oshape, NULL) !=
            CT_SUCCESS) {
        rc = bench_fail("model");
        goto done;
    }
    if (ond != 1 || oshape[0] < 2) {
        fprintf(stderr, "cltrain bench: the model must end in (N, classes) with at least 2 "
                        "classes for cross-entropy\n");
        rc = 2;
        goto done;
    }
    b.classes = oshape[0];
    for (size_t i = 0; i < b.nlayers; i++) {
        double f, bw;
        bench_layer_flops(&b, i, &f, &bw);
        b.flops_fwd += f;
        b.flops_bwd += bw;
    }
    if (b.o.startup_child) {
        rc = bench_startup_child(&b);
        goto done;
    }
    if (b.o.csv) {
        b.csv = fopen(b.o.csv, "w");
        if (!b.csv) {
            fprintf(stderr, "cltrain bench: cannot write %s: %s\n", b.o.csv, strerror(errno));
            goto done;
        }
        fprintf(b.csv, "section,item,batch,metric,value\n");
    }
    t = calloc(b.o.runs, sizeof *t);
    if (!t)
        goto done;
    if (ct_context_create(b.o.device, 0, &ctx) != CT_SUCCESS) {
        rc = bench_fail("opening the device");
        goto done;
    }
    b.gemm_clblast = ct_gemm_backend(ctx) == CT_GEMM_CLBLAST;
    print_header(&b, ct_context_device(ctx));
    printf("  CLBlast parameters: %s\n", ct_context_clblast_source(ctx));
    printf("  conv path: %s\n", ct_context_conv_path_source(ctx));

    if (b.o.peak_gflops > 0) {
        b.peak_gflops = b.o.peak_gflops;
        printf("\nFP32 peak: %.1f GFLOP/s as given (--peak-gflops)\n", b.peak_gflops);
    } else if (b.o.peak) {
        bench_peak_result pk;
        char err[512];
        if (bench_peak_run(ct_context_device(ctx), 0.005, 40, &pk, err, sizeof err) != 0) {
            fprintf(stderr, "cltrain bench: peak: %s\n", err);
            goto done;
        }
        b.peak_gflops = pk.best_gflops;
        printf("\nFP32 peak (kernels/peak.cl: %u float16 FMA chains per work-item, %zu "
               "work-items, %zu launches of %.1f ms)\n"
               "  best %.1f GFLOP/s = %.1f per compute unit, median %.1f GFLOP/s (percentages "
               "below are\n  of the best: the launch least disturbed by other processes)\n",
               pk.chains, pk.work_items, pk.launches, pk.launch_ms, pk.best_gflops,
               pk.best_gflops / (ct_context_device(ctx)->compute_units
                                     ? ct_context_device(ctx)->compute_units
                                     : 1),
               pk.median_gflops);
        bench_csv(&b, "peak", "fma", 0, "gflops_best", pk.best_gflops);
        bench_csv(&b, "peak", "fma", 0, "gflops_median", pk.median_gflops);
    }

    if (bench_rig_make(ctx, &b, &r) != CT_SUCCESS ||
        bench_data_make(ctx, &b, b.o.batch, b.o.seed, &d)) {
        rc = bench_fail("building the model");
        goto done;
    }
    if (b.o.train) {
        if (bench_time_train(ctx, &r, &d, b.o.warmup, b.o.runs, b.o.steps, t)) {
            rc = bench_fail("training");
            goto done;
        }
        double best = bench_min(t, b.o.runs), med = bench_median(t, b.o.runs);
        b.step_ms = med * 1e3;
        double fl = (b.flops_fwd + b.flops_bwd) * (double)b.o.batch;
        ct_step_info info;
        if (ct_trainer_read(r.tr, &info) != CT_SUCCESS) {
            rc = bench_fail("reading the loss");
            goto done;
        }
        printf("\ntraining step (zero_grad, forward, cross-entropy, backward, %s step), batch "
               "%zu,\n%zu runs of %zu steps after %zu warm-up steps (loss now %.4f)\n",
               ct_optim_kind_name(b.o.optim), b.o.batch, b.o.runs, b.o.steps, b.o.warmup,
               info.loss);
        printf("  median %.3f ms/step = %.0f images/s; best %.3f ms = %.0f images/s\n", med * 1e3,
               b.o.batch / med, best * 1e3, b.o.batch / best);
        printf("  %.1f GFLOP/s (median) = %s of peak\n", fl / med * 1e-9,
               bench_fmt_pct(pb, sizeof pb, bench_pct(&b, fl / med * 1e-9)));
        bench_csv(&b, "train", "step", b.o.batch, "ms_median", med * 1e3);
        bench_csv(&b, "train", "step", b.o.batch, "ms_best", best * 1e3);
        bench_csv(&b, "train", "step", b.o.batch, "images_per_s", b.o.batch / med);
        bench_csv(&b, "train", "step", b.o.batch, "gflops", fl / med * 1e-9);

        if (time_infer(ctx, &r, &d, b.o.warmup, b.o.runs, b.o.steps, t)) {
            rc = bench_fail("inference");
            goto done;
        }
        best = bench_min(t, b.o.runs);
        med = bench_median(t, b.o.runs);
        fl = b.flops_fwd * (double)b.o.batch;
        printf("inference (eval-mode forward), batch %zu\n", b.o.batch);
        printf("  median %.3f ms/batch = %.0f images/s; best %.3f ms = %.0f images/s; %.1f "
               "GFLOP/s = %s of peak\n",
               med * 1e3, b.o.batch / med, best * 1e3, b.o.batch / best, fl / med * 1e-9,
               bench_fmt_pct(pb, sizeof pb, bench_pct(&b, fl / med * 1e-9)));
        bench_csv(&b, "infer", "forward", b.o.batch, "ms_median", med * 1e3);
        bench_csv(&b, "infer", "forward", b.o.batch, "images_per_s", b.o.batch / med);
    }
    if (b.o.memory) {
        if (!b.o.train && (ct_trainer_step(r.tr, d.x, d.y, NULL) || ct_context_finish(ctx))) {
            rc = bench_fail("training");
            goto done;
        }
        bench_section_memory(&b, ctx, &r, &d);
    }
    if (b.o.gemm && bench_section_gemm(&b, ctx) != 0)
        goto done;
    if (b.o.layers && bench_section_layers(&b) != 0)
        goto done;
    if (b.o.sweep && b.o.nbatches && section_sweep(&b, ctx, &r) != 0)
        goto done;
    if (b.o.startup) {
        bench_data_free(&d);
        bench_rig_free(&r);
        ct_context_free(ctx);
        ctx = NULL;
        if (bench_section_startup(&b) != 0)
            goto done;
    }
    rc = 0;
done:
    bench_data_free(&d);
    bench_rig_free(&r);
    ct_context_free(ctx);
    if (b.csv && fclose(b.csv) != 0) {
        fprintf(stderr, "cltrain bench: writing %s failed\n", b.o.csv);
        rc = 1;
    }
    free(b.layers);
    free(t);
    return rc;
}
