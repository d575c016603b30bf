/* The per-device tuning table: one place where tile sizes and vector widths are chosen,
 * handed to every kernel as -D options, and the CLBlast parameters for devices CLBlast
 * has no database entry for (PoCL's CPU device among them). */
#include <clblast_c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

typedef struct tune_entry {
    int gpu;             /* 1: GPUs, 0: CPUs and others */
    const char *options; /* -D options for every kernel file */
} tune_entry;

static const tune_entry table[] = {
    /* CPUs (PoCL): one work-item runs a whole register tile; PoCL does not vectorise
     * across work-items, so kernels use explicit vectors of CT_VEC floats. */
    {0, "-DCT_CPU=1 -DCT_GPU=0 -DCT_VEC=8"},
    /* GPUs: many small work-items, local-memory tiles. */
    {1, "-DCT_CPU=0 -DCT_GPU=1 -DCT_VEC=4"},
};

void ct_tune_select(ct_context *ctx)
{
    const tune_entry *e = &table[ctx->info.is_gpu ? 1 : 0];
    snprintf(ctx->tune_options, sizeof ctx->tune_options, "%s", e->options);
}

typedef struct clblast_params {
    const char *kernel;
    size_t count;
    const char *names[16];
    size_t values[16];
} clblast_params;

/* Measured on PoCL 3.1 / AVX-512 (2 cores): the untuned defaults give 6-8 GFLOP/s; these
 * (bench/clblast_gemm.c, bench/README.md) 55-61 GFLOP/s at 256^3 and 512^3 and 1.1-1.4 ms
 * for MiniCNN's 64x128x3136 linear forward. No local memory (SA=SB=0): PoCL's work-group
 * loops make it a copy. */
static const clblast_params cpu_params[] = {
    {"Xgemm", 16,
     {"GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB", "NDIMC", "NWG", "SA",
      "SB", "STRM", "STRN", "VWM", "VWN"},
     {0, 1, 64, 8, 4, 4, 64, 4, 4, 64, 0, 0, 0, 0, 8, 8}},
    {"XgemmDirect", 10,
     {"KWID", "MDIMAD", "MDIMCD", "NDIMBD", "NDIMCD", "PADA", "PADB", "VWMD", "VWND", "WGD"},
     {2, 8, 8, 8, 8, 0, 0, 4, 4, 32}},
    {"GemmRoutine", 1, {"XGEMM_MIN_INDIRECT_SIZE"}, {128}},
};

void ct_tune_clblast(ct_context *ctx)
{
    if (ctx->clblast_tuned)
        return;
    ctx->clblast_tuned = 1;
    const char *env = getenv("CLTRAIN_CLBLAST_TUNE");
    if (ctx->info.is_gpu || (env && strcmp(env, "0") == 0))
        return; /* GPUs: CLBlast's own database knows them */
    for (size_t i = 0; i < sizeof cpu_params / sizeof cpu_params[0]; i++) {
        const clblast_params *p = &cpu_params[i];
        /* Failure here only means CLBlast's defaults are used: slower, still correct. */
        const char *names[16];
        memcpy(names, p->names, sizeof names);
        (void)CLBlastOverrideParameters(ctx->device, p->kernel, CLBlastPrecisionSingle, p->count,
                                        names, p->values);
    }
}

unsigned ct_tune_value(const ct_context *ctx, const char *name, unsigned dflt)
{
    char key[48];
    snprintf(key, sizeof key, "-D%s=", name);
    /* CLTRAIN_TUNE="-DCONV_KV=1 ..." overrides the table, for experiments */
    const char *env = getenv("CLTRAIN_TUNE");
    const char *at = env ? strstr(env, key) : NULL;
    if (!at)
        at = strstr(ctx->tune_options, key);
    if (!at)
        return dflt;
    unsigned long v = strtoul(at + strlen(key), NULL, 10);
    return v > 0 && v < 1024 ? (unsigned)v : dflt;
}
