/* The stored convolution path of a device (cltrain/tune.h): which passes run as im2col +
 * GEMM (CONV_GEMM), as `cltrain tune --conv` measured it; the file, and a context's
 * choice. Host-only, like tune_file.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#define CONV_MAGIC "cltrain-conv-path 1"

enum { K_DEVICE, K_PLATFORM, K_DRIVER, K_DATE, K_MEASURED, K_COUNT };
static const char *const keys[K_COUNT] = {"device", "platform", "driver", "date", "measured"};

unsigned ct_conv_path_default(const ct_device_info *dev)
{
    /* every pass as GEMMs on GPUs, where a conv_bwd_w_flat work-item holds too many
     * accumulators (H200, CIFAR-shaped model: 58.1 ms per step with the CPU kernels, 23.0
     * with the weight gradient as GEMMs, 19.3 with the input gradient too, 16.3 with the
     * forward pass too, its pools then apart); on CPUs the kernels (the same model on
     * PoCL, 2 cores: 372 ms, and 857 / 1478 / 2057 ms) */
    return dev && dev->is_gpu ? 7u : 0u;
}

unsigned ct_conv_gemm_default(const ct_context *ctx)
{
    return ct_conv_path_default(&ctx->info);
}

ct_status ct_conv_path_file(const ct_device_info *dev, char *buf, size_t cap)
{
    return ct_device_file(dev, "cltrain conv path", "conv", buf, cap);
}

ct_status ct_conv_path_parse(const char *text, size_t len, unsigned *conv_gemm,
                             ct_tune_file_info *info)
{
    ct_status st = CT_SUCCESS;
    ct_tune_file_info fi;
    bool have[K_COUNT] = {false}, have_value = false;
    unsigned value = 0;
    size_t at = 0, lineno = 0;
    memset(&fi, 0, sizeof fi);
    CT_REQUIRE(text != NULL && conv_gemm != NULL, CT_ERR_INVALID_ARG,
               "ct_conv_path_parse: NULL argument");
    CT_TRY(ct_text_check(text, len, CONV_MAGIC));
    size_t n = 0;
    for (const char *s; (s = ct_next_line(text, len, &at, &lineno, &n));) {
        static const char value_key[] = "CONV_GEMM=";
        if (n >= sizeof value_key - 1 && memcmp(s, value_key, sizeof value_key - 1) == 0) {
            CT_REQUIRE(!have_value, CT_ERR_FORMAT, "line %zu: CONV_GEMM given twice", lineno);
            const char *v = s + sizeof value_key - 1;
            CT_REQUIRE(n == sizeof value_key && *v >= '0' && *v <= '7', CT_ERR_FORMAT,
                       "line %zu: '%.*s' is not CONV_GEMM=0..7", lineno, (int)(n < 40 ? n : 40), s);
            value = (unsigned)(*v - '0');
            have_value = true;
            continue;
        }
        const char *sp = memchr(s, ' ', n);
        size_t kl = sp ? (size_t)(sp - s) : n, rl = sp ? n - kl - 1 : 0;
        int k = -1;
        for (int i = 0; i < K_COUNT; i++)
            if (strlen(keys[i]) == kl && memcmp(keys[i], s, kl) == 0)
                k = i;
        CT_REQUIRE(k >= 0, CT_ERR_FORMAT,
                   "line %zu: unknown line '%.*s' (expected a header key or CONV_GEMM=N)", lineno,
                   (int)(kl < 40 ? kl : 40), s);
        CT_REQUIRE(!have[k], CT_ERR_FORMAT, "line %zu: '%s' given twice", lineno, keys[k]);
        char *dst[K_COUNT] = {fi.device, fi.platform, fi.driver, fi.date, fi.shapes};
        size_t cap[K_COUNT] = {sizeof fi.device, sizeof fi.platform, sizeof fi.driver,
                               sizeof fi.date, sizeof fi.shapes};
        CT_REQUIRE(rl < cap[k], CT_ERR_FORMAT, "line %zu: the %s is longer than %zu bytes", lineno,
                   keys[k], cap[k] - 1);
        memcpy(dst[k], sp ? sp + 1 : s + n, rl);
        dst[k][rl] = '\0';
        have[k] = true;
    }
    for (int k = 0; k < K_COUNT; k++)
        CT_REQUIRE(have[k], CT_ERR_FORMAT, "no '%s' line (truncated?)", keys[k]);
    CT_REQUIRE(have_value, CT_ERR_FORMAT, "no CONV_GEMM line (truncated?)");
    *conv_gemm = value;
    if (info)
        *info = fi;
cleanup:
    return st;
}

ct_status ct_conv_path_read(const char *path, const ct_device_info *dev, unsigned *conv_gemm)
{
    ct_status st = CT_SUCCESS;
    char *text = NULL;
    size_t n = 0;
    unsigned v = 0;
    ct_tune_file_info fi;
    CT_REQUIRE(path && dev && conv_gemm, CT_ERR_INVALID_ARG, "ct_conv_path_read: NULL argument");
    CT_TRY(ct_read_small_file(path, &text, &n));
    CT_TRY(ct_conv_path_parse(text, n, &v, &fi));
    CT_TRY(ct_tune_file_same_device(&fi, dev, "cltrain tune --conv"));
    *conv_gemm = v;
cleanup:
    free(text);
    return st;
}

ct_status ct_conv_path_write(const char *path, const ct_device_info *dev, unsigned conv_gemm,
                             const char *measured)
{
    ct_status st = CT_SUCCESS;
    char date[64], name[256], platform[256], driver[128], what[CT_TUNE_LINE_MAX - 10],
        text[CT_TUNE_FILE_MAX];
    CT_REQUIRE(path && dev, CT_ERR_INVALID_ARG, "ct_conv_path_write: NULL argument");
    CT_REQUIRE(conv_gemm <= 7, CT_ERR_INVALID_ARG, "CONV_GEMM=%u is not 0..7", conv_gemm);
    ct_utc_date(date, sizeof date);
    ct_one_line(name, sizeof name, dev->name);
    ct_one_line(platform, sizeof platform, dev->platform);
    ct_one_line(driver, sizeof driver, dev->driver);
    ct_one_line(what, sizeof what, measured && *measured ? measured : "unknown");
    int n = snprintf(
        text, sizeof text,
        CONV_MAGIC "\n"
                   "# The convolution path of this device, from 'cltrain tune --conv' (measured)\n"
                   "# or --conv-set (CONV_GEMM: 1 weight gradient, 2 forward, 4 input gradient\n"
                   "# as GEMMs); 'cltrain tune --conv --reset' or deleting the file returns to\n"
                   "# the default.\n"
                   "device %s\nplatform %s\ndriver %s\ndate %s\nmeasured %s\nCONV_GEMM=%u\n",
        name, platform, driver, date, what, conv_gemm);
    CT_REQUIRE(n > 0 && (size_t)n < sizeof text, CT_ERR_INVALID_ARG, "the file would be too long");
    CT_TRY(ct_write_text_atomic(path, text));
cleanup:
    return st;
}

unsigned ct_conv_path_resolve(const ct_device_info *dev, char *source, size_t cap)
{
    char path[4200], why[1024];
    unsigned dflt = ct_conv_path_default(dev), v = 0;
    snprintf(source, cap, "default (CONV_GEMM=%u)", dflt);
    if (ct_conv_path_file(dev, path, sizeof path) != CT_SUCCESS) {
        ct_error_clear();
        return dflt;
    }
    ct_status st = ct_conv_path_read(path, dev, &v);
    if (st == CT_SUCCESS)
        snprintf(source, cap, "stored: %s (CONV_GEMM=%u)", path, v);
    else if (st != CT_ERR_NOT_FOUND) {
        ct_error_reason(why, sizeof why);
        snprintf(source, cap, "default (CONV_GEMM=%u; ignored %s: %s)", dflt, path, why);
    }
    ct_error_clear();
    return st == CT_SUCCESS ? v : dflt;
}

void ct_conv_path_apply(ct_context *ctx)
{
    unsigned v =
        ct_conv_path_resolve(&ctx->info, ctx->conv_path_source, sizeof ctx->conv_path_source);
    ctx->host_tunables[0] = '\0';
    if (strncmp(ctx->conv_path_source, "stored: ", 8) == 0)
        snprintf(ctx->host_tunables, sizeof ctx->host_tunables, "-DCONV_GEMM=%u", v);
}

const char *ct_context_conv_path_source(const ct_context *ctx)
{
    return ctx ? ctx->conv_path_source : "";
}
