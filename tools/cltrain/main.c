/* cltrain — the command-line tool. Each subcommand lives in its own file; this one
 * dispatches and holds what they share (device option, error reporting). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_bench.h"
#include "cltrain/cltrain.h"

static void usage(FILE *to)
{
    fprintf(to,
            "usage: cltrain COMMAND [OPTIONS]\n"
            "\n"
            "Train convolutional networks on any OpenCL device.\n"
            "\n"
            "commands:\n"
            "  train              train a model (MiniCNN on Fashion-MNIST by default)\n"
            "  compare            train the same model with several optimizer settings and\n"
            "                     compare their loss curves, accuracy and speed\n"
            "  eval               accuracy, per-class accuracy and confusion matrix of a\n"
            "                     checkpoint on a test set\n"
            "  bench              training and inference speed, per-layer times, GFLOP/s\n"
            "                     against the device's measured FP32 peak, memory, start-up\n"
            "  tune               search CLBlast's GEMM parameters for the device at a model's\n"
            "                     shapes and store the fastest set for later runs\n"
            "  devices            list every OpenCL platform and device\n"
            "  gemm               run a GEMM on the device (kernels/gemm.cl on CPUs, CLBlast on\n"
            "                     GPUs), check it against the CPU and print GFLOP/s\n"
            "  help               this text\n"
            "  version            the version\n"
            "\n"
            "common options:\n"
            "  --device D         device index or case-insensitive name substring\n"
            "                     (default: $CLTRAIN_DEVICE, else the first GPU, else device 0)\n"
            "\n"
            "environment:\n"
            "  CLTRAIN_DEVICE     default device choice\n"
            "  CLTRAIN_CACHE_DIR  compiled-kernel cache (default $XDG_CACHE_HOME/cltrain or\n"
            "                     ~/.cache/cltrain); CLTRAIN_CACHE=0 turns the cache off\n"
            "  CLTRAIN_KERNEL_DIR load kernels/*.cl from this folder instead of the built-in copy\n"
            "  CLTRAIN_CLBLAST_TUNE=0  CLBlast's own GEMM parameters, not cltrain's (stored by\n"
            "                     'cltrain tune', else built-in for CPUs)\n"
            "  CLTRAIN_GEMM       GEMM implementation: own (kernels/gemm.cl, the default on\n"
            "                     CPU devices) or clblast (the default on GPUs)\n"
            "  CLTRAIN_TUNE       kernel tunables over the device's table, for experiments,\n"
            "                     e.g. \"-DCONV_KV=1 -DGEMM_MT=6\" (README lists the names)\n"
            "  NO_COLOR           no colour in terminal output\n"
            "\n"
            "Run 'cltrain COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("cltrain %s\n", CLTRAIN_VERSION_STRING);
        return 0;
    }
    if (strcmp(cmd, "train") == 0)
        return cli_train(argc - 1, argv + 1);
    if (strcmp(cmd, "compare") == 0)
        return cli_compare(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0)
        return cli_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return cli_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "tune") == 0)
        return cli_tune(argc - 1, argv + 1);
    if (strcmp(cmd, "devices") == 0)
        return cli_devices(argc - 1, argv + 1);
    if (strcmp(cmd, "gemm") == 0)
        return cli_gemm(argc - 1, argv + 1);
    fprintf(stderr,
            "cltrain: unknown command '%s' (expected train, compare, eval, bench, tune, devices, "
            "gemm, help or version)\n",
            cmd);
    return 2;
}

int cli_fail(const char *what, ct_status st)
{
    fprintf(stderr, "cltrain: %s: %s\n", what, ct_last_error());
    (void)st;
    return 1;
}

static int quiet;

void cli_set_quiet(int q)
{
    quiet = q;
}

static void on_build(void *user, const char *device, const char *file)
{
    int *said = user;
    if (!*said && !quiet) {
        fprintf(stderr, "cltrain: compiling kernels for %s, first run only (%s)...\n", device,
                file);
        *said = 1;
    }
}

ct_status cli_context(const char *device, unsigned flags, ct_context **out)
{
    static int said;
    ct_status st = ct_context_create(device, flags, out);
    if (st == CT_SUCCESS)
        ct_context_set_build_notify(*out, on_build, &said);
    return st;
}

void cli_note_gemm_build(ct_context *ctx)
{
    static int said;
    if (said || quiet || ct_context_build_stats(ctx).from_source == 0 ||
        ct_gemm_backend(ctx) != CT_GEMM_CLBLAST)
        return;
    said = 1;
    fprintf(stderr, "cltrain: compiling CLBlast GEMM kernels for %s, first run only...\n",
            ct_context_device(ctx)->name);
}
