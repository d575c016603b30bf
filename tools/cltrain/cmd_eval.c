/* cltrain eval — a checkpoint's accuracy, per-class accuracy and confusion matrix. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "plot.h"

#define CMD "eval"

static const char *const split_names[] = {"test", "train", NULL};

static void help(void)
{
    printf("usage: cltrain eval --checkpoint FILE [OPTIONS]\n"
           "\n"
           "Evaluates a checkpoint written by 'cltrain train --save' (or a torch.nn.Sequential\n"
           "state_dict saved with safetensors): loss, accuracy, per-class accuracy and the\n"
           "confusion matrix (rows: true class, columns: predicted class).\n"
           "The model, task and normalisation come from the checkpoint's state file when it\n"
           "has one; the options below override them (and are needed for a bare weights\n"
           "file).\n"
           "\n"
           "  --checkpoint FILE     the weights file (required)\n"
           "  --split test|train    which part of the dataset (default test)\n"
           "  --model SPEC          model spec (default: the checkpoint's, else minicnn)\n"
           "  --loss ce|bce|mse     loss reported (default: the checkpoint's, else ce)\n"
           "  --device D            device index or name substring\n"
           "  --plot FILE.svg       the confusion matrix as a heatmap\n"
           "\n");
    cli_data_help(stdout, false);
}

int cli_eval(int argc, char **argv)
{
    cli_data_opts dopt;
    cli_data data;
    cli_kv kv;
    ct_context *ctx = NULL;
    ct_loader *loader = NULL;
    ct_layer_desc *layers = NULL;
    ct_model *model = NULL;
    ct_optim *optim = NULL;
    ct_trainer *tr = NULL;
    ct_eval_result res;
    size_t nl = 0;
    const char *ckpt = NULL, *model_spec = NULL, *device = NULL, *plot = NULL;
    int loss = 0, split = 0, rc = CLI_OK;
    bool loss_given = false, dataset_given = false, unused_on = false, unused_off = false;
    bool has_state = false;
    opt_def defs[24];
    ct_status st;

    cli_data_defaults(&dopt);
    memset(&data, 0, sizeof data);
    memset(&res, 0, sizeof res);
    size_t n = cli_data_defs(&dopt, false, &unused_on, &unused_off, defs);
    for (size_t i = 0; i < n; i++)
        if (strcmp(defs[i].name, "--dataset") == 0)
            defs[i].given = &dataset_given;
    defs[n++] = (opt_def){.name = "--checkpoint", .kind = OPT_STRING, .dst = &ckpt};
    defs[n++] =
        (opt_def){.name = "--split", .kind = OPT_CHOICE, .dst = &split, .choices = split_names};
    defs[n++] = (opt_def){.name = "--model", .kind = OPT_STRING, .dst = &model_spec};
    defs[n++] = (opt_def){.name = "--loss",
                          .kind = OPT_CHOICE,
                          .dst = &loss,
                          .choices = cli_loss_names,
                          .given = &loss_given};
    defs[n++] = (opt_def){.name = "--device", .kind = OPT_STRING, .dst = &device};
    defs[n++] = (opt_def){.name = "--plot", .kind = OPT_STRING, .dst = &plot};
    rc = opts_parse(CMD, argc, argv, defs, n);
    if (rc == CLI_HELP) {
        help();
        return 0;
    }
    if (rc == CLI_OK)
        rc = cli_data_finish(CMD, &dopt, false, false);
    if (rc != CLI_OK)
        return rc;
    if (!ckpt)
        return cli_usage_error(CMD, "--checkpoint FILE is required");

    /* the checkpoint's own description of its task, unless overridden */
    rc = cli_kv_from_checkpoint(CMD, "--checkpoint", ckpt, &kv, &has_state);
    if (rc != CLI_OK)
        return rc;
    const char *v;
    if (!dataset_given && (v = cli_kv_get(&kv, "dataset")) != NULL)
        for (int i = 0; cli_dataset_names[i]; i++)
            if (strcmp(v, cli_dataset_names[i]) == 0)
                dopt.dataset = i;
    if (!loss_given && (v = cli_kv_get(&kv, "loss")) != NULL)
        for (int i = 0; cli_loss_names[i]; i++)
            if (strcmp(v, cli_loss_names[i]) == 0)
                loss = i;
    if (!dopt.classes && (v = cli_kv_get(&kv, "classes")) != NULL && strcmp(v, "all") != 0)
        dopt.classes = v;
    if (!dopt.classes && loss == 1)
        dopt.classes = "0,6";
    if (!dopt.no_normalize && !dopt.mean && !dopt.std) {
        const char *nz = cli_kv_get(&kv, "normalize");
        if (nz && strcmp(nz, "0") == 0) {
            dopt.no_normalize = true;
        } else {
            dopt.mean = cli_kv_get(&kv, "mean");
            dopt.std = cli_kv_get(&kv, "std");
        }
    }
    if (!model_spec)
        model_spec = cli_kv_get(&kv, "model");
    if (!model_spec)
        model_spec = "minicnn";

    /* the training split is needed for its statistics when the checkpoint has none */
    bool need_train = split == 1 || (!dopt.no_normalize && (!dopt.mean || !dopt.std));
    rc = cli_data_load(CMD, &dopt, need_train, &data);
    if (rc != CLI_OK)
        goto done;
    size_t outputs = cli_task_outputs(loss, data.classes);
    rc = cli_model_layers(CMD, model_spec, outputs, data.in_shape, &layers, &nl);
    if (rc != CLI_OK)
        goto done;
    st = cli_context(device, 0, &ctx);
    if (st != CT_SUCCESS) {
        rc = cli_fail("opening the device", st);
        goto done;
    }
    st = ct_model_create(ctx, layers, nl, 3, data.in_shape, 0, &model);
    if (st == CT_SUCCESS)
        st = ct_checkpoint_load(ckpt, model, NULL, NULL);
    if (st != CT_SUCCESS) {
        rc = cli_fail("loading the checkpoint", st);
        goto done;
    }
    {
        /* the trainer's evaluation pass needs an optimizer object; plain SGD keeps no state */
        ct_optim_options oo = ct_optim_defaults(CT_OPTIM_SGD);
        ct_trainer_options to = ct_trainer_defaults();
        to.loss = cli_loss_kind(loss);
        st = ct_optim_create(ctx, &oo, ct_model_params(model), ct_model_grads(model), &optim);
        if (st == CT_SUCCESS)
            st = ct_trainer_create(model, optim, NULL, CT_SCHED_PER_EPOCH, &to, &tr);
    }
    const ct_dataset *ds = split == 1 ? data.train : data.test;
    if (st == CT_SUCCESS)
        st = cli_loader(ctx, &data, &dopt, ds, false, &loader);
    if (st == CT_SUCCESS) {
        cli_note_gemm_build(ctx);
        st = ct_trainer_evaluate(tr, loader, &res);
    }
    if (st != CT_SUCCESS) {
        rc = cli_fail("evaluating", st);
        goto done;
    }

    size_t K = res.num_classes;
    const char *names[256];
    for (size_t k = 0; k < K; k++)
        names[k] = k < data.classes && data.class_name[k] ? data.class_name[k] : "?";
    if (outputs == 1) { /* the binary task's two classes */
        names[0] = data.class_name[0];
        names[1] = data.class_name[1];
    }
    printf("%s: %s split of %s, %zu images\n", ckpt, split_names[split],
           cli_dataset_names[dopt.dataset], res.count);
    printf("accuracy %.2f%% (%zu/%zu), loss %.4f\n\n", 100.0 * res.accuracy, res.correct, res.count,
           res.loss);
    size_t w = 5;
    for (size_t k = 0; k < K; k++)
        if (strlen(names[k]) > w)
            w = strlen(names[k]);
    printf("%-*s  %8s  %7s\n", (int)w, "class", "accuracy", "images");
    for (size_t k = 0; k < K; k++) {
        uint64_t row = 0;
        for (size_t j = 0; j < K; j++)
            row += res.confusion[k * K + j];
        if (row)
            printf("%-*s  %7.2f%%  %7llu\n", (int)w, names[k],
                   100.0 * (double)res.confusion[k * K + k] / (double)row, (unsigned long long)row);
        else
            printf("%-*s  %8s  %7d\n", (int)w, names[k], "-", 0);
    }
    printf("\nconfusion matrix (rows: true class, columns: predicted class)\n");
    size_t cw = 4;
    for (size_t i = 0; i < K * K; i++) {
        char tmp[32];
        size_t l = (size_t)snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)res.confusion[i]);
        if (l + 1 > cw)
            cw = l + 1;
    }
    printf("%*s", (int)w + 2, "");
    for (size_t j = 0; j < K; j++)
        printf("%*zu", (int)cw, j);
    printf("\n");
    for (size_t k = 0; k < K; k++) {
        printf("%-*s %zu", (int)w, names[k], k);
        for (size_t j = 0; j < K; j++)
            printf("%*llu", (int)cw, (unsigned long long)res.confusion[k * K + j]);
        printf("\n");
    }
    if (!has_state)
        fprintf(stderr,
                "cltrain eval: %s has no state file; used the options' model, task and "
                "normalisation\n",
                ckpt);

    if (plot) {
        long long *counts = malloc(K * K * sizeof *counts);
        char title[512];
        snprintf(title, sizeof title, "confusion matrix: %s (%.2f%% accuracy)", ckpt,
                 100.0 * res.accuracy);
        char *svg = NULL;
        if (counts) {
            for (size_t i = 0; i < K * K; i++)
                counts[i] = (long long)res.confusion[i];
            svg = plot_confusion_svg(counts, K, names, title);
        }
        if (!svg || plot_save(plot, svg) != 0) {
            fprintf(stderr, "cltrain eval: --plot %s: %s\n", plot,
                    svg ? strerror(errno) : "out of memory");
            rc = CLI_RUNTIME;
        }
        free(svg);
        free(counts);
    }
done:
    ct_eval_result_free(&res);
    ct_loader_free(loader);
    ct_trainer_free(tr);
    ct_optim_free(optim);
    ct_model_free(model);
    free(layers);
    cli_data_free(&data);
    ct_context_free(ctx);
    return rc;
}
