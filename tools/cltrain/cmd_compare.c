/* cltrain compare — one model, several optimizer settings: the same initial weights and
 * the same batches for each, then their loss curves in one plot, one CSV and a table. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "csvlog.h"
#include "options.h"
#include "plot.h"

#define CMD    "compare"
#define SMOOTH 50 /* steps in the running mean that --threshold is compared with */

static const char *const default_configs[] = {"adam,lr=1e-3", "sgd,lr=1e-2,momentum=0.9",
                                              "sgd,lr=1e-2,momentum=0.9,wd=5e-4"};

static void help(void)
{
    printf("usage: cltrain compare [OPTIONS]\n"
           "\n"
           "Trains the same model from the same initial weights on the same sequence of\n"
           "batches once per optimizer setting, then prints a table: the final training loss\n"
           "(mean over the last epoch), the test accuracy, the steps until the loss reached\n"
           "--threshold (its running mean over the last %d batches), an oscillation measure\n"
           "(the standard deviation of the batch-to-batch loss changes over the last epoch)\n"
           "and the time. Every batch's loss is recorded on the device and read once per\n"
           "epoch.\n"
           "\n"
           "  --config SPEC         an optimizer setting, repeatable: the optimizer, then\n"
           "                        key=value with keys lr, momentum, nesterov, wd, beta1,\n"
           "                        beta2, eps, alpha, centered, amsgrad, nodecay (no\n"
           "                        weight decay on biases and norm parameters), e.g.\n"
           "                        \"adam,lr=1e-3\" or \"sgd,lr=0.1,momentum=0.9,nesterov=1\".\n"
           "                        Default: adam,lr=1e-3; sgd,lr=1e-2,momentum=0.9;\n"
           "                        sgd,lr=1e-2,momentum=0.9,wd=5e-4\n"
           "  --threshold X         loss level for the steps-to-threshold column (default 0.5)\n"
           "  --epochs N            epochs per setting (default 2)\n"
           "  --max-steps N         stop each setting after N steps\n"
           "  --model SPEC          as for train (default minicnn)\n"
           "  --loss ce|bce|mse     as for train (default ce)\n"
           "  --clip-norm X         clip the gradient norm (every setting)\n"
           "  --device D            device index or name substring\n"
           "  --plot FILE.svg       all loss curves in one plot\n"
           "  --log FILE.csv        every batch of every setting, with a leading run column\n"
           "  --quiet               no progress lines on stderr\n"
           "\n",
           SMOOTH);
    cli_data_help(stdout, true);
}

typedef struct outcome {
    char name[128];
    float *loss; /* every step's loss */
    size_t n;
    double epoch_step[1024], epoch_acc[1024];
    size_t nepochs;
    size_t last_epoch_start; /* index in loss of the last epoch's first step */
    double train_loss, test_acc, seconds;
    long long to_threshold; /* -1: never */
    double oscillation;
} outcome;

static void analyse(outcome *o, double threshold)
{
    double sum = 0;
    o->to_threshold = -1;
    for (size_t i = 0; i < o->n; i++) {
        sum += o->loss[i];
        if (i >= SMOOTH)
            sum -= o->loss[i - SMOOTH];
        size_t w = i + 1 < SMOOTH ? i + 1 : SMOOTH;
        if (o->to_threshold < 0 && sum / (double)w <= threshold)
            o->to_threshold = (long long)i + 1;
    }
    size_t a = o->last_epoch_start, m = o->n - a;
    double mean = 0, dmean = 0, dvar = 0;
    for (size_t i = a; i < o->n; i++)
        mean += o->loss[i] / (double)m;
    o->train_loss = m ? mean : NAN;
    if (m >= 2) {
        for (size_t i = a + 1; i < o->n; i++)
            dmean += (o->loss[i] - o->loss[i - 1]) / (double)(m - 1);
        for (size_t i = a + 1; i < o->n; i++) {
            double d = o->loss[i] - o->loss[i - 1] - dmean;
            dvar += d * d / (double)(m - 1);
        }
        o->oscillation = sqrt(dvar);
    } else {
        o->oscillation = NAN;
    }
}

int cli_compare(int argc, char **argv)
{
    cli_data_opts dopt;
    cli_data data;
    cli_strlist configs;
    cli_optim_opts optims[16];
    cli_sched_opts sched;
    outcome *out = NULL;
    ct_context *ctx = NULL;
    ct_loader *tl = NULL, *el = NULL;
    ct_layer_desc *layers = NULL;
    csvlog *log = NULL;
    size_t nl = 0, epochs = 2, max_steps = 0, nconf = 0;
    const char *model = "minicnn", *device = NULL, *plot = NULL, *logpath = NULL;
    int loss = 0, rc = CLI_OK;
    double threshold = 0.5, clip = 0;
    bool aug_on = false, aug_off = false, quiet = false;
    opt_def defs[40];
    ct_status st;

    cli_data_defaults(&dopt);
    cli_sched_defaults(&sched);
    memset(&configs, 0, sizeof configs);
    memset(&data, 0, sizeof data);
    size_t n = cli_data_defs(&dopt, true, &aug_on, &aug_off, defs);
    defs[n++] = (opt_def){.name = "--config", .kind = OPT_LIST, .dst = &configs};
    defs[n++] = (opt_def){.name = "--threshold",
                          .kind = OPT_DOUBLE,
                          .dst = &threshold,
                          .lo = -INFINITY,
                          .hi = INFINITY};
    defs[n++] =
        (opt_def){.name = "--epochs", .kind = OPT_SIZE, .dst = &epochs, .lo = 1, .hi = 1000};
    defs[n++] = (opt_def){
        .name = "--max-steps", .kind = OPT_SIZE, .dst = &max_steps, .lo = 1, .hi = 0xffffffffu};
    defs[n++] = (opt_def){.name = "--model", .kind = OPT_STRING, .dst = &model};
    defs[n++] =
        (opt_def){.name = "--loss", .kind = OPT_CHOICE, .dst = &loss, .choices = cli_loss_names};
    defs[n++] = (opt_def){.name = "--clip-norm",
                          .kind = OPT_DOUBLE,
                          .dst = &clip,
                          .lo = 0,
                          .lo_open = true,
                          .hi = INFINITY};
    defs[n++] = (opt_def){.name = "--device", .kind = OPT_STRING, .dst = &device};
    defs[n++] = (opt_def){.name = "--plot", .kind = OPT_STRING, .dst = &plot};
    defs[n++] = (opt_def){.name = "--log", .kind = OPT_STRING, .dst = &logpath};
    defs[n++] = (opt_def){.name = "--quiet", .kind = OPT_FLAG, .dst = &quiet};
    rc = opts_parse(CMD, argc, argv, defs, n);
    if (rc == CLI_HELP) {
        help();
        return 0;
    }
    if (rc == CLI_OK)
        rc = cli_data_finish(CMD, &dopt, aug_on, aug_off);
    if (rc != CLI_OK)
        return rc;
    cli_set_quiet(quiet);
    if (loss == 1 && !dopt.classes)
        dopt.classes = "0,6";
    if (!configs.n) {
        for (size_t i = 0; i < 3; i++)
            configs.item[configs.n++] = default_configs[i];
    }
    nconf = configs.n;
    for (size_t i = 0; i < nconf; i++) {
        ct_optim_options check;
        rc = cli_optim_parse_config(CMD, configs.item[i], &optims[i]);
        if (rc == CLI_OK)
            rc = cli_optim_resolve(CMD, &optims[i], &check);
        if (rc != CLI_OK)
            return rc;
    }

    rc = cli_data_load(CMD, &dopt, true, &data);
    if (rc != CLI_OK)
        goto done;
    size_t outputs = cli_task_outputs(loss, data.classes);
    rc = cli_model_layers(CMD, model, outputs, data.in_shape, &layers, &nl);
    if (rc != CLI_OK)
        goto done;
    st = cli_context(device, 0, &ctx);
    if (st == CT_SUCCESS)
        st = cli_loader(ctx, &data, &dopt, data.train, true, &tl);
    if (st == CT_SUCCESS && data.test)
        st = cli_loader(ctx, &data, &dopt, data.test, false, &el);
    if (st != CT_SUCCESS) {
        rc = cli_fail("setting up", st);
        goto done;
    }
    size_t nb = ct_loader_batch_count(tl);
    size_t total = epochs * nb;
    if (max_steps && max_steps < total)
        total = max_steps;
    out = calloc(nconf, sizeof *out);
    if (!out) {
        fprintf(stderr, "cltrain compare: out of memory\n");
        rc = CLI_RUNTIME;
        goto done;
    }
    if (logpath && csvlog_open(logpath, 1, &log) != 0) {
        fprintf(stderr, "cltrain compare: --log %s: %s\n", logpath, strerror(errno));
        rc = CLI_RUNTIME;
        goto done;
    }

    for (size_t ci = 0; ci < nconf; ci++) {
        outcome *o = &out[ci];
        cli_run r;
        ct_trainer_options to = ct_trainer_defaults();
        to.loss = cli_loss_kind(loss);
        to.clip_norm = clip;
        to.check_every = nb; /* the history is read at each epoch's end anyway */
        to.history = nb;
        snprintf(o->name, sizeof o->name, "%s", configs.item[ci]);
        o->loss = malloc(total * sizeof *o->loss);
        if (!o->loss) {
            fprintf(stderr, "cltrain compare: out of memory\n");
            rc = CLI_RUNTIME;
            goto done;
        }
        rc = cli_run_create(CMD, ctx, layers, nl, data.in_shape, dopt.seed, &optims[ci], &sched,
                            epochs, nb, &to, &r);
        if (rc != CLI_OK)
            goto done;
        if (ci == 0)
            cli_note_gemm_build(ctx);
        double t0 = cli_now();
        for (size_t e = 0; e < epochs && o->n < total; e++) {
            double te = cli_now();
            size_t first = o->n;
            st = ct_loader_start_epoch(tl, e);
            if (st == CT_SUCCESS)
                st = ct_trainer_begin_epoch(r.trainer);
            for (size_t b = 0; st == CT_SUCCESS && b < nb && o->n < total; b++) {
                ct_tensor *x = NULL, *y = NULL;
                st = ct_loader_batch(tl, b, &x, &y);
                if (st == CT_SUCCESS) {
                    st = ct_trainer_step(r.trainer, x, y, NULL);
                    if (st == CT_SUCCESS || st == CT_ERR_NUMERIC)
                        o->n++; /* a step that revealed a NaN was still taken */
                }
            }
            size_t done_steps = o->n - first;
            ct_step_info info;
            if (st == CT_SUCCESS)
                st = ct_trainer_history(r.trainer, o->loss + first, done_steps);
            if (st == CT_SUCCESS)
                st = ct_trainer_read(r.trainer, &info);
            if (st == CT_ERR_NUMERIC) {
                /* a diverging setting is a result, not a failure of the comparison */
                if (!quiet)
                    fprintf(stderr, "cltrain compare: %s: %s\n", o->name, ct_last_error());
                ct_trainer_history(r.trainer, o->loss + first, done_steps);
                o->last_epoch_start = first;
                o->test_acc = NAN;
                st = CT_SUCCESS;
                break;
            }
            double train_s = cli_now() - te;
            ct_eval_result res;
            memset(&res, 0, sizeof res);
            if (st == CT_SUCCESS && el)
                st = ct_trainer_evaluate(r.trainer, el, &res);
            if (st != CT_SUCCESS) {
                cli_run_free(&r);
                rc = cli_fail(o->name, st);
                goto done;
            }
            o->last_epoch_start = first;
            o->test_acc = el ? res.accuracy : NAN;
            if (o->nepochs < 1024) {
                o->epoch_step[o->nepochs] = (double)o->n;
                o->epoch_acc[o->nepochs++] = o->test_acc;
            }
            double elapsed = cli_now() - t0;
            for (size_t i = first; log && i < o->n; i++) {
                /* per-step times are not measured (no host sync inside an epoch):
                 * the epoch's throughput, and its training time (before the evaluation
                 * that `elapsed` includes) interpolated linearly */
                double frac = (double)(i - first + 1) / (double)done_steps;
                double ips = (double)(done_steps * dopt.batch_size) / train_s;
                double lr = NAN;
                ct_optim_get_lr(r.optim, 0, &lr);
                if (csvlog_batch(log, o->name, (int)e + 1, (long long)i + 1, o->loss[i], lr, ips,
                                 (te - t0) + train_s * frac) != 0)
                    break;
            }
            if (log)
                csvlog_epoch(log, o->name, (int)e + 1, (long long)o->n, elapsed, info.epoch_loss,
                             el ? res.loss : NAN, o->test_acc);
            if (!quiet)
                fprintf(stderr, "%s: epoch %zu/%zu  loss %.4f  test accuracy %.2f%%  %.1f s\n",
                        o->name, e + 1, epochs, info.epoch_loss, 100.0 * o->test_acc, train_s);
            ct_eval_result_free(&res);
        }
        o->seconds = cli_now() - t0;
        cli_run_free(&r);
        analyse(o, threshold);
    }

    /* the table: the first column as wide as the longest setting's name */
    int width = 7; /* "setting" */
    for (size_t ci = 0; ci < nconf; ci++) {
        size_t len = strlen(out[ci].name);
        if (len > (size_t)width)
            width = len > 200 ? 200 : (int)len;
    }
    printf("%-*s %10s %9s %10s %11s %8s\n", width, "setting", "train loss", "test acc",
           "steps<thr", "oscillation", "time s");
    for (size_t ci = 0; ci < nconf; ci++) {
        const outcome *o = &out[ci];
        char steps[32];
        if (o->to_threshold < 0)
            snprintf(steps, sizeof steps, "never");
        else
            snprintf(steps, sizeof steps, "%lld", o->to_threshold);
        printf("%-*s %10.4f %8.2f%% %10s %11.4f %8.1f\n", width, o->name, o->train_loss,
               100.0 * o->test_acc, steps, o->oscillation, o->seconds);
    }
    printf("(train loss: mean over the last epoch; steps<thr: first step where the mean of the "
           "last %d losses <= %g; oscillation: std of batch-to-batch loss changes over the last "
           "epoch)\n",
           SMOOTH, threshold);

    if (plot) {
        plot_series ps[16];
        double *steps = malloc(total * sizeof *steps),
               *losses = malloc(nconf * total * sizeof *losses);
        if (!steps || !losses) {
            free(steps);
            free(losses);
            fprintf(stderr, "cltrain compare: out of memory\n");
            rc = CLI_RUNTIME;
            goto done;
        }
        for (size_t i = 0; i < total; i++)
            steps[i] = (double)(i + 1);
        for (size_t ci = 0; ci < nconf; ci++) {
            for (size_t i = 0; i < out[ci].n; i++)
                losses[ci * total + i] = out[ci].loss[i];
            ps[ci] = (plot_series){out[ci].name,        steps,
                                   losses + ci * total, out[ci].n,
                                   out[ci].epoch_step,  out[ci].epoch_acc,
                                   out[ci].nepochs};
        }
        plot_options po;
        memset(&po, 0, sizeof po);
        char sub[256];
        snprintf(sub, sizeof sub, "%s on %s, batch %zu, %zu epoch(s), seed %llu", model,
                 cli_dataset_names[dopt.dataset], dopt.batch_size, epochs,
                 (unsigned long long)dopt.seed);
        po.title = "optimizer comparison";
        po.subtitle = sub;
        char *svg = plot_loss_svg(ps, nconf, &po);
        if (!svg || plot_save(plot, svg) != 0) {
            fprintf(stderr, "cltrain compare: --plot %s: %s\n", plot,
                    svg ? strerror(errno) : "out of memory");
            rc = CLI_RUNTIME;
        }
        free(svg);
        free(steps);
        free(losses);
    }
done:
    if (log && csvlog_close(log) != 0 && rc == CLI_OK) {
        fprintf(stderr, "cltrain compare: writing %s: %s\n", logpath, strerror(errno));
        rc = CLI_RUNTIME;
    }
    if (out)
        for (size_t ci = 0; ci < nconf; ci++)
            free(out[ci].loss);
    free(out);
    ct_loader_free(tl);
    ct_loader_free(el);
    free(layers);
    cli_data_free(&data);
    ct_context_free(ctx);
    return rc;
}
