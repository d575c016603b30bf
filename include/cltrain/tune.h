/* cltrain/tune.h — the CLBlast GEMM parameters a context uses, and the per-device file
 * `cltrain tune` stores them in.
 *
 * CLBlast 1.5.3 has no tuning for some devices (PoCL's CPU device reports the vendor
 * "AuthenticAMD" and gets untuned defaults). cltrain passes parameters through
 * CLBlastOverrideParameters before a context's first GEMM, chosen in this order:
 *   1. CLTRAIN_CLBLAST_TUNE=0: none, CLBlast's own choice;
 *   2. the device's stored file, when present and valid (also on GPUs);
 *   3. on CPUs, the built-in set (lib/core/tune.c); on GPUs, CLBlast's own database.
 * A stored file that cannot be used (malformed, for another device, driver or CLBlast
 * version, parameters that break CLBlast's constraints) is ignored; the reason is in
 * ct_context_clblast_source(). Nothing here makes a GEMM fail.
 *
 * The stored file, <cache dir>/clblast-<16 hex digits>.txt (the cache dir of the kernel
 * cache: CLTRAIN_CACHE_DIR, else $XDG_CACHE_HOME/cltrain, else ~/.cache/cltrain; none
 * with CLTRAIN_CACHE=0), named by a hash of device name, driver version and platform:
 *
 *     cltrain-clblast-params 1
 *     device Intel(R) Xeon(R) ...                 must equal the device's name
 *     platform Portable Computing Language        ... its platform name
 *     driver 3.1+debian                           ... its driver version
 *     clblast 1.5.3                               ... the CLBlast cltrain was built with
 *     date 2026-11-25T23:40:00Z                   free text (what tune wrote)
 *     shapes 64x128x3136:NT 64x3136x128:NN ...    free text (what tune measured)
 *     Xgemm GEMMK=0 KREG=1 KWG=64 ...             every parameter of the family, once
 *     XgemmDirect KWID=2 MDIMAD=8 ...
 *     GemmRoutine XGEMM_MIN_INDIRECT_SIZE=128
 *
 * Lines are at most CT_TUNE_LINE_MAX bytes, the file at most CT_TUNE_FILE_MAX; '#' starts
 * a comment line. Every header key and every family appear exactly once, in any order;
 * values are decimal whole numbers.
 */
#ifndef CLTRAIN_TUNE_H
#define CLTRAIN_TUNE_H

#include <stdbool.h>
#include <stddef.h>

#include "cltrain/device.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CT_TUNE_LINE_MAX 512
#define CT_TUNE_FILE_MAX 8192

/* The kernel families cltrain sets, and their parameters (CLBlast 1.5.3's names). */
typedef enum ct_clblast_kernel {
    CT_CLBLAST_XGEMM,        /* the indirect GEMM kernel (large products) */
    CT_CLBLAST_XGEMM_DIRECT, /* the direct kernel (products below the indirect size) */
    CT_CLBLAST_GEMM_ROUTINE, /* XGEMM_MIN_INDIRECT_SIZE: direct when m*n*k < its cube */
    CT_CLBLAST_KERNEL_COUNT
} ct_clblast_kernel;

#define CT_CLBLAST_MAX_PARAMS 16

/* One complete set: value[k][i] is parameter i (ct_clblast_param_name(k, i)) of family k. */
typedef struct ct_clblast_params {
    size_t value[CT_CLBLAST_KERNEL_COUNT][CT_CLBLAST_MAX_PARAMS];
} ct_clblast_params;

const char *ct_clblast_kernel_name(ct_clblast_kernel k); /* "Xgemm"; NULL out of range */
size_t ct_clblast_param_count(ct_clblast_kernel k);
const char *ct_clblast_param_name(ct_clblast_kernel k, size_t i); /* NULL out of range */

/* The built-in set for CPU devices (measured on PoCL 3.1, AVX-512; bench/README.md). */
void ct_clblast_params_builtin(ct_clblast_params *out);
/* Sets kernel's parameter `name` ("Xgemm", "MWG"); CT_ERR_NOT_FOUND for unknown names. */
ct_status ct_clblast_params_set(ct_clblast_params *p, const char *kernel, const char *name,
                                size_t value);
/* Kernel's parameter `name`; 0 for unknown names. */
size_t ct_clblast_params_get(const ct_clblast_params *p, ct_clblast_kernel kernel,
                             const char *name);
bool ct_clblast_params_equal(const ct_clblast_params *a, const ct_clblast_params *b);
/* CLBlast's constraints between the values (tile sizes divisible by thread counts times
 * vector widths, and so on): CT_ERR_INVALID_ARG naming the first one broken. Device
 * limits (work-group size, local memory) are checked by ct_context_clblast_apply. */
ct_status ct_clblast_params_check(const ct_clblast_params *p);
/* The family lines of the file format, "Xgemm GEMMK=0 ...\n..." (CT_ERR_INVALID_ARG when
 * `cap` is too small). */
ct_status ct_clblast_params_format(const ct_clblast_params *p, char *buf, size_t cap);

/* ---- the stored file ----------------------------------------------------------------- */

typedef struct ct_tune_file_info {
    char device[256];
    char platform[256];
    char driver[128];
    char clblast[32];
    char date[64];
    char shapes[CT_TUNE_LINE_MAX];
} ct_tune_file_info;

/* The CLBlast version cltrain was built with, "1.5.3". */
const char *ct_clblast_version(void);

/* Path of `dev`'s file. CT_ERR_UNSUPPORTED when there is no cache folder (CLTRAIN_CACHE=0,
 * or neither CLTRAIN_CACHE_DIR, XDG_CACHE_HOME nor HOME set). */
ct_status ct_tune_file_path(const ct_device_info *dev, char *buf, size_t cap);

/* Parses a file's text (`len` bytes; need not be NUL-terminated). Strict: CT_ERR_FORMAT with
 * "line N: what" as the last error for anything the format above does not allow, and for
 * values that break ct_clblast_params_check. `info` may be NULL. */
ct_status ct_tune_file_parse(const char *text, size_t len, ct_clblast_params *out,
                             ct_tune_file_info *info);

/* Reads and parses `path`, then checks that it was made for `dev` and for this CLBlast
 * version (CT_ERR_FORMAT otherwise, the message says which). CT_ERR_NOT_FOUND when the
 * file does not exist, CT_ERR_IO when it cannot be read. */
ct_status ct_tune_file_read(const char *path, const ct_device_info *dev, ct_clblast_params *out,
                            ct_tune_file_info *info);

/* Writes `p` for `dev` to `path`: a temporary file in the same folder (created if
 * missing), flushed and synced, then renamed over `path`, so readers see the old file or
 * the new one and never a part. `shapes` is the free-text shapes line (may be NULL). */
ct_status ct_tune_file_write(const char *path, const ct_device_info *dev,
                             const ct_clblast_params *p, const char *shapes);

/* What a context on `dev` would use (the order at the top of this header): fills *out and
 * returns true when cltrain overrides CLBlast's parameters, false when CLBlast chooses.
 * `source` receives "stored: PATH", "built-in", "built-in (ignored PATH: REASON)",
 * "CLBlast's database (GPU)" or "CLBlast's defaults (CLTRAIN_CLBLAST_TUNE=0)". Reads the
 * file; never fails. */
bool ct_tune_resolve(const ct_device_info *dev, ct_clblast_params *out, char *source, size_t cap);

/* ---- a context's parameters -------------------------------------------------------- */

/* Where the parameters of this context's GEMMs come from (see ct_tune_resolve), applying
 * them now if no GEMM has run yet. The string belongs to the context. */
const char *ct_context_clblast_source(ct_context *ctx);

/* The set in use; false (and *out untouched) while CLBlast chooses its own. */
bool ct_context_clblast_params(ct_context *ctx, ct_clblast_params *out);

/* Makes the following GEMMs use `p`: checks it (constraints, the device's work-group size
 * and local memory), clears CLBlast's compiled-kernel cache (for the whole process: the
 * next GEMM of every context compiles again) and overrides the three families. A failure
 * leaves CLBlast's state unknown until the next successful call. For `cltrain tune`. */
ct_status ct_context_clblast_apply(ct_context *ctx, const ct_clblast_params *p);

/* ---- the stored convolution path (`cltrain tune --conv`) ----------------------------
 *
 * Convolutions run either on cltrain's own kernels or as im2col + GEMM, per pass (the
 * tunable CONV_GEMM, a bit mask: 1 weight gradient, 2 forward, 4 input gradient; by
 * default 0 on CPUs, 7 on GPUs), and per layer shape. `cltrain tune --conv` times a
 * model's training step with each choice for every convolution, then each convolution's
 * own choice with the others fixed, and stores what beats the default for the device in
 * <cache dir>/conv-<16 hex digits>.txt (named like the CLBlast file):
 *
 *     cltrain-conv-path 2
 *     device ...             must equal the device's name
 *     platform ...           ... its platform name
 *     driver ...             ... its driver version
 *     date ...               free text
 *     measured ...           free text (what tune timed)
 *     CONV_GEMM=7            0..7: every convolution not listed below
 *     layer 32x14x14 k64 r3x3 s1x1 p1x1 d1x1 g1 CONV_GEMM=5
 *                            0..7 for one shape (ct_conv_shape_format), any number of
 *                            such lines up to CT_CONV_PATH_MAX_LAYERS, each shape once
 *
 * Every header key exactly once, '#' starts a comment line, lines at most CT_TUNE_LINE_MAX
 * bytes. Version 1 files (no layer lines) are read too. A context reads the file when it
 * is made; CLTRAIN_TUNE's CONV_GEMM still overrides every layer. A file that cannot be
 * used is ignored, the reason in ct_context_conv_path_source(). */

#define CT_CONV_PATH_MAX_LAYERS 64

/* A convolution's geometry, the key of a per-layer choice: the per-sample input (c, h, w),
 * k output channels, an r x s kernel, stride, padding, dilation and groups (the batch is
 * not part of it). */
typedef struct ct_conv_shape {
    unsigned c, h, w, k, r, s, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
} ct_conv_shape;

/* A device's convolution path: CONV_GEMM for every convolution, and for some shapes their
 * own (layer[i] uses layer_gemm[i]). */
typedef struct ct_conv_path {
    unsigned conv_gemm;
    size_t nlayers;
    ct_conv_shape layer[CT_CONV_PATH_MAX_LAYERS];
    unsigned layer_gemm[CT_CONV_PATH_MAX_LAYERS];
} ct_conv_path;

/* The device's CONV_GEMM without a stored file: 7 on GPUs, 0 on CPUs. */
unsigned ct_conv_path_default(const ct_device_info *dev);
/* A path with `conv_gemm` for every convolution and no layer of its own. */
void ct_conv_path_init(ct_conv_path *cp, unsigned conv_gemm);
/* The CONV_GEMM of a convolution of shape `s` under `cp`. */
unsigned ct_conv_path_lookup(const ct_conv_path *cp, const ct_conv_shape *s);
/* Gives shape `s` its own CONV_GEMM (replacing an earlier one). CT_ERR_INVALID_ARG when
 * `conv_gemm` > 7, a field of `s` is 0 or above 65535 (pad: above 65535 only), or the
 * table is full. */
ct_status ct_conv_path_set(ct_conv_path *cp, const ct_conv_shape *s, unsigned conv_gemm);
/* "32x14x14 k64 r3x3 s1x1 p1x1 d1x1 g1": input c x h x w, k, kernel, stride, padding,
 * dilation, groups (CT_ERR_INVALID_ARG when `cap` is too small). */
ct_status ct_conv_shape_format(const ct_conv_shape *s, char *buf, size_t cap);
/* Path of `dev`'s file (CT_ERR_UNSUPPORTED without a cache folder). */
ct_status ct_conv_path_file(const ct_device_info *dev, char *buf, size_t cap);
/* Parses a file's text (`len` bytes). Strict: CT_ERR_FORMAT, "line N: what" as the last
 * error, `out` untouched. info->shapes receives the measured line; info->clblast stays
 * empty. */
ct_status ct_conv_path_parse(const char *text, size_t len, ct_conv_path *out,
                             ct_tune_file_info *info);
/* Reads `path` and checks it was made for `dev` (CT_ERR_FORMAT otherwise; CT_ERR_NOT_FOUND
 * when there is no file, CT_ERR_IO when it cannot be read). */
ct_status ct_conv_path_read(const char *path, const ct_device_info *dev, ct_conv_path *out);
/* Writes the choice for `dev` whole (as ct_tune_file_write); `measured` may be NULL. */
ct_status ct_conv_path_write(const char *path, const ct_device_info *dev, const ct_conv_path *cp,
                             const char *measured);
/* The path a context on `dev` would use (into `out` when not NULL), and where it comes from
 * in `source` (as ct_context_conv_path_source). Reads the file; never fails. Returns the
 * CONV_GEMM of the convolutions not listed. */
unsigned ct_conv_path_resolve(const ct_device_info *dev, ct_conv_path *out, char *source,
                              size_t cap);
/* Where this context's convolution path comes from: "stored: PATH (CONV_GEMM=N)",
 * "default (CONV_GEMM=N)", "default (CONV_GEMM=N; ignored PATH: REASON)" or "set by the
 * program (CONV_GEMM=N)"; ", M layer shapes of their own" after N when the path lists
 * some. Belongs to the context. */
const char *ct_context_conv_path_source(const ct_context *ctx);
/* Makes `cp` this context's path (NULL: back to the stored file or the default), for the
 * models and convolutions set up after it (a model plans its fusions when it is made).
 * CT_ERR_INVALID_ARG for a value above 7, or layer shapes invalid or given twice. */
ct_status ct_context_set_conv_path(ct_context *ctx, const ct_conv_path *cp);
/* The CONV_GEMM this context uses for a convolution of shape `s`: CLTRAIN_TUNE's
 * CONV_GEMM when it sets one, else the path's. */
unsigned ct_context_conv_gemm(const ct_context *ctx, const ct_conv_shape *s);

#ifdef __cplusplus
}
#endif
#endif
