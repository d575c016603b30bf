/* The per-device tuning table: one place where tile sizes and vector widths are chosen,
 * handed to every kernel as -D options; and applying the CLBlast parameters a context's
 * GEMMs use (chosen by ct_tune_resolve in tune_file.c: the device's file stored by
 * `cltrain tune`, else the built-in CPU set of clblast_params.c, else CLBlast's own). */
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
    /* Division and sqrt correctly rounded wherever the device offers it, as on the host
     * and in PyTorch: OpenCL allows 2.5 ulp (3 for sqrt) by default, and NVIDIA's driver
     * uses that, so (p / 255 - mean) / std and Adam's m / (sqrt(v) + eps) would differ
     * from PyTorch's in the last bits. */
    cl_device_fp_config fp = 0;
    int exact = clGetDeviceInfo(ctx->device, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL) ==
                    CL_SUCCESS &&
                (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT);
    snprintf(ctx->tune_options, sizeof ctx->tune_options, "%s%s", e->options,
             exact ? " -cl-fp32-correctly-rounded-divide-sqrt" : "");
    ct_conv_path_apply(ctx);
}

/* Overrides CLBlast's parameters of the three families with `p` (no cache clearing). */
static ct_status override(ct_context *ctx, const ct_clblast_params *p)
{
    ct_status st = CT_SUCCESS;
    for (int k = 0; k < CT_CLBLAST_KERNEL_COUNT; k++) {
        const char *names[CT_CLBLAST_MAX_PARAMS];
        size_t n = ct_clblast_param_count((ct_clblast_kernel)k);
        for (size_t i = 0; i < n; i++)
            names[i] = ct_clblast_param_name((ct_clblast_kernel)k, i);
        const char *kernel = ct_clblast_kernel_name((ct_clblast_kernel)k);
        CLBlastStatusCode s = CLBlastOverrideParameters(ctx->device, kernel, CLBlastPrecisionSingle,
                                                        n, names, p->value[k]);
        if (s != CLBlastSuccess)
            CT_FAIL((ct_status)s, "CLBlastOverrideParameters(%s) failed", kernel);
    }
cleanup:
    return st;
}

/* The device limits ct_clblast_params_check cannot know: threads per work-group and
 * local memory (Xgemm's SA/SB tiles of KWG x MWG and KWG x NWG floats; XgemmDirect's two
 * WGD x (WGD + PAD) tiles). */
static ct_status check_device(const ct_context *ctx, const ct_clblast_params *p)
{
    ct_status st = CT_SUCCESS;
#define X(name) ct_clblast_params_get(p, CT_CLBLAST_XGEMM, name)
#define D(name) ct_clblast_params_get(p, CT_CLBLAST_XGEMM_DIRECT, name)
    size_t wg = X("MDIMC") * X("NDIMC"), wgd = D("MDIMCD") * D("NDIMCD");
    size_t lmem = 4 * X("KWG") * (X("SA") * X("MWG") + X("SB") * X("NWG"));
    size_t lmemd = 4 * D("WGD") * (2 * D("WGD") + D("PADA") + D("PADB"));
#undef X
#undef D
    size_t maxwg = ctx->info.max_work_group;
    CT_REQUIRE(wg <= maxwg && wgd <= maxwg, CT_ERR_INVALID_ARG,
               "work-groups of %zu (Xgemm) and %zu (XgemmDirect) threads exceed the device's %zu",
               wg, wgd, maxwg);
    CT_REQUIRE(lmem <= ctx->info.local_mem && lmemd <= ctx->info.local_mem, CT_ERR_INVALID_ARG,
               "%zu (Xgemm) and %zu (XgemmDirect) bytes of local memory exceed the device's %llu",
               lmem, lmemd, (unsigned long long)ctx->info.local_mem);
cleanup:
    return st;
}

void ct_tune_clblast(ct_context *ctx)
{
    if (ctx->clblast_tuned)
        return;
    ctx->clblast_tuned = 1;
    ct_clblast_params p;
    char source[sizeof ctx->clblast_source];
    ctx->clblast_override = ct_tune_resolve(&ctx->info, &p, source, sizeof source);
    snprintf(ctx->clblast_source, sizeof ctx->clblast_source, "%s", source);
    if (ctx->clblast_override && strncmp(source, "stored: ", 8) == 0 &&
        check_device(ctx, &p) != CT_SUCCESS) {
        /* a stored set this device cannot run is ignored like a malformed file */
        snprintf(ctx->clblast_source, sizeof ctx->clblast_source,
                 "%s (ignored %s: beyond the device's limits)",
                 ctx->info.is_gpu ? "CLBlast's database" : "built-in", source + 8);
        ct_clblast_params_builtin(&p);
        ctx->clblast_override = !ctx->info.is_gpu;
    }
    if (ctx->clblast_override) {
        ctx->clblast_params = p;
        /* A failure only means CLBlast's defaults are used: slower, still correct. */
        if (override(ctx, &p) != CT_SUCCESS) {
            size_t n = strlen(ctx->clblast_source);
            snprintf(ctx->clblast_source + n, sizeof ctx->clblast_source - n,
                     "; CLBlast refused it: %s", ct_last_error());
            ctx->clblast_override = 0;
        }
        ct_error_clear();
    }
}

/* Every name the library passes to ct_tune_value / ct_tune_flags: what CLTRAIN_TUNE may
 * set. The kernels' own -D names are among them (kernels/conv.cl, kernels/gemm.cl). */
static const char *const tunables[] = {
    "CONV_BB_WG", "CONV_BWK",       "CONV_BWK_T", "CONV_BWP_KT", "CONV_BWP_ST",  "CONV_BW_CACHE",
    "CONV_BW_KT", "CONV_BW_ST",     "CONV_BW_WG", "CONV_GEMM",   "CONV_GEMM_MB", "CONV_KT",
    "CONV_KV",    "CONV_POOL_TAPS", "CONV_PP",    "CONV_PT",     "CONV_PX",      "CONV_QV",
    "CONV_SLICE", "CONV_WG",        "GEMM_DM",    "GEMM_DN",     "GEMM_MT",      "GEMM_NV",
};

static bool known_tunable(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof tunables / sizeof tunables[0]; i++)
        if (strlen(tunables[i]) == n && strncmp(name, tunables[i], n) == 0)
            return true;
    return false;
}

ct_status ct_tune_env_check(void)
{
    ct_status st = CT_SUCCESS;
    const char *env = getenv("CLTRAIN_TUNE");
    for (const char *p = env ? env : ""; *p;) {
        if (*p == ' ' || *p == '\t') {
            p++;
            continue;
        }
        size_t len = strcspn(p, " \t");
        const char *eq = memchr(p, '=', len);
        CT_REQUIRE(eq && eq - p > 2 && strncmp(p, "-D", 2) == 0 &&
                       known_tunable(p + 2, (size_t)(eq - p) - 2),
                   CT_ERR_INVALID_ARG,
                   "CLTRAIN_TUNE: '%.*s' is not -DNAME=N with a known NAME (the CONV_* and "
                   "GEMM_* names in README, Devices)",
                   (int)len, p);
        char *end = NULL;
        unsigned long v = strtoul(eq + 1, &end, 10);
        CT_REQUIRE(eq[1] >= '0' && eq[1] <= '9' && end == p + len && v < (1u << 20),
                   CT_ERR_INVALID_ARG, "CLTRAIN_TUNE: '%.*s': N must be a whole number below %u",
                   (int)len, p, 1u << 20);
        p += len;
    }
cleanup:
    return st;
}

static unsigned tune_lookup(const ct_context *ctx, const char *name, unsigned dflt, unsigned min)
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
    char *end = NULL;
    unsigned long v = strtoul(at + strlen(key), &end, 10);
    return end != at + strlen(key) && v >= min && v < (1u << 20) ? (unsigned)v : dflt;
}

unsigned ct_tune_value(const ct_context *ctx, const char *name, unsigned dflt)
{
    return tune_lookup(ctx, name, dflt, 1);
}

unsigned ct_tune_flags(const ct_context *ctx, const char *name, unsigned dflt)
{
    return tune_lookup(ctx, name, dflt, 0);
}

unsigned ct_context_conv_gemm(const ct_context *ctx, const ct_conv_shape *s)
{
    /* CLTRAIN_TUNE's CONV_GEMM, for experiments, over every layer's */
    return ct_tune_flags(ctx, "CONV_GEMM", ct_conv_path_lookup(&ctx->conv_path, s)) & 7u;
}

const char *ct_context_clblast_source(ct_context *ctx)
{
    if (!ctx)
        return "";
    ct_tune_clblast(ctx);
    return ctx->clblast_source;
}

bool ct_context_clblast_params(ct_context *ctx, ct_clblast_params *out)
{
    if (!ctx || !out)
        return false;
    ct_tune_clblast(ctx);
    if (ctx->clblast_override)
        *out = ctx->clblast_params;
    return ctx->clblast_override != 0;
}

ct_status ct_context_clblast_apply(ct_context *ctx, const ct_clblast_params *p)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(ctx && p, CT_ERR_INVALID_ARG, "ct_context_clblast_apply: NULL argument");
    CT_TRY(ct_clblast_params_check(p));
    CT_TRY(check_device(ctx, p));
    ctx->clblast_tuned = 1;
    ctx->clblast_override = 0;
    snprintf(ctx->clblast_source, sizeof ctx->clblast_source, "set by the program");
    CLBlastStatusCode s = CLBlastClearCache();
    if (s != CLBlastSuccess)
        CT_FAIL((ct_status)s, "CLBlastClearCache failed");
    CT_TRY(override(ctx, p));
    ctx->clblast_params = *p;
    ctx->clblast_override = 1;
cleanup:
    return st;
}
