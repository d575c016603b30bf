/* lib/core/internal.h — what the library's own files share and users never see:
 * the error macros, the context and tensor structs, and kernel launch helpers.
 *
 * Error handling shape (every function that allocates):
 *
 *     ct_status st = CT_SUCCESS;
 *     float *tmp = NULL;
 *     CT_REQUIRE(x != NULL, CT_ERR_INVALID_ARG, "x is NULL");
 *     CT_TRY(ct_something(...));
 *     CT_CL(clFinish(q));
 * cleanup:
 *     free(tmp);
 *     return st;
 */
#ifndef CLTRAIN_INTERNAL_H
#define CLTRAIN_INTERNAL_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <stdint.h>

#include "cltrain/cltrain.h"

/* ---- errors ---------------------------------------------------------------------- */

/* Records `status` with a printf-style message and file:line; returns `status`. */
ct_status ct_error_set(ct_status status, const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Records an OpenCL failure: "clEnqueueNDRangeKernel(conv_fwd): CL_INVALID_WORK_GROUP_SIZE". */
ct_status ct_error_cl(cl_int err, const char *what, const char *file, int line);
/* Prefixes the current message with context: "loading foo.idx: <old message>". */
void ct_error_prefix(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
const char *ct_cl_error_name(cl_int err);

#define CT_TRY(expr)                                                                       \
    do {                                                                                   \
        st = (expr);                                                                       \
        if (st != CT_SUCCESS)                                                              \
            goto cleanup;                                                                  \
    } while (0)

#define CT_CL(call)                                                                        \
    do {                                                                                   \
        cl_int ct_e_ = (call);                                                             \
        if (ct_e_ != CL_SUCCESS) {                                                         \
            st = ct_error_cl(ct_e_, #call, __FILE__, __LINE__);                            \
            goto cleanup;                                                                  \
        }                                                                                  \
    } while (0)

/* For calls that report through an out-parameter: CT_CL_ERR(e, "clCreateBuffer"). */
#define CT_CL_ERR(err, what)                                                               \
    do {                                                                                   \
        if ((err) != CL_SUCCESS) {                                                         \
            st = ct_error_cl((err), (what), __FILE__, __LINE__);                           \
            goto cleanup;                                                                  \
        }                                                                                  \
    } while (0)

#define CT_FAIL(code, ...)                                                                 \
    do {                                                                                   \
        st = ct_error_set((code), __FILE__, __LINE__, __VA_ARGS__);                        \
        goto cleanup;                                                                      \
    } while (0)

#define CT_REQUIRE(cond, code, ...)                                                        \
    do {                                                                                   \
        if (!(cond))                                                                       \
            CT_FAIL((code), __VA_ARGS__);                                                  \
    } while (0)

/* ---- context and tensors ---------------------------------------------------------- */

#define CT_SCRATCH_SLOTS 8
#define CT_CONST_SLOTS   16

typedef struct ct_program_entry ct_program_entry; /* lib/core/program.c */
typedef struct ct_profile_rec ct_profile_rec;     /* lib/core/context.c */

struct ct_context {
    ct_device_info info;
    cl_platform_id platform;
    cl_device_id device;
    cl_context cl;
    cl_command_queue queue;
    unsigned flags;
    uint64_t mem_in_use;
    ct_program_entry *programs; /* built programs of this context, a linked list */
    ct_build_stats stats;
    ct_build_notify_fn notify;
    void *notify_user;
    char tune_options[512]; /* the per-device -D table entry (lib/core/tune.c) */
    ct_profile_rec *prof;   /* growable array of (label, event) */
    size_t prof_len, prof_cap;
    int clblast_tuned;      /* CLBlast parameters resolved and applied (lib/core/tune.c) */
    int clblast_override;   /* 1: clblast_params are in use; 0: CLBlast's own choice */
    ct_clblast_params clblast_params;
    char clblast_source[1200]; /* ct_context_clblast_source() */
    ct_conv_path conv_path;    /* stored by `cltrain tune --conv`, or set (conv_path.c) */
    char conv_path_source[1300]; /* ct_context_conv_path_source() */
    cl_mem scratch[CT_SCRATCH_SLOTS];
    size_t scratch_bytes[CT_SCRATCH_SLOTS];
    /* small constant tables kept across calls (ct_const_buffer), used round robin */
    uint64_t const_key[CT_CONST_SLOTS];
    cl_mem const_mem[CT_CONST_SLOTS];
    size_t const_bytes[CT_CONST_SLOTS];
    unsigned const_next;
};

struct ct_tensor {
    ct_context *ctx;
    cl_mem mem;         /* storage; owned unless `base` is set */
    struct ct_tensor *base; /* non-NULL for views */
    size_t offset;      /* element offset into mem */
    size_t capacity;    /* elements in mem (for views: the base's) */
    size_t ndim;
    size_t shape[CT_MAX_DIMS];
    size_t numel;
};

/* Platform and device handles of entry `index` of ct_device_list() (lib/core/device.c). */
ct_status ct_device_handles(size_t index, cl_platform_id *p, cl_device_id *d);

/* Allocates a raw device buffer of `bytes`, checked against the device limits, and
 * counts it in mem_in_use. Release with ct_buffer_free(ctx, mem, bytes). */
ct_status ct_buffer_alloc(ct_context *ctx, size_t bytes, cl_mem *out);
void ct_buffer_free(ct_context *ctx, cl_mem mem, size_t bytes);

/* Checks that a tensor has exactly the given shape; the message names `what`. */
ct_status ct_tensor_expect(const ct_tensor *t, const char *what, size_t ndim, const size_t *shape);

/* ---- kernels --------------------------------------------------------------------- */

/* Returns kernel `name` from kernels/<file> (e.g. "loss.cl"), building the program on
 * first use with the device's tuning -D options plus `options` (may be NULL). The kernel
 * belongs to the context: set its arguments and launch it right away. */
ct_status ct_kernel_get(ct_context *ctx, const char *file, const char *name,
                        const char *options, cl_kernel *out);

/* One kernel argument. CT_ARG_TENSOR occupies two consecutive kernel parameters:
 * `__global float *x, const uint x_off`. */
typedef struct ct_arg {
    enum { CT_ARG_TENSOR, CT_ARG_MEM, CT_ARG_U32, CT_ARG_I32, CT_ARG_F32, CT_ARG_U64, CT_ARG_LOCAL } kind;
    union {
        const ct_tensor *t;
        cl_mem mem;
        cl_uint u32;
        cl_int i32;
        cl_float f32;
        cl_ulong u64;
        size_t local_bytes;
    } v;
} ct_arg;

#define CT_T(x) ((ct_arg){.kind = CT_ARG_TENSOR, .v.t = (x)})
#define CT_MEM(x) ((ct_arg){.kind = CT_ARG_MEM, .v.mem = (x)})
#define CT_U32(x) ((ct_arg){.kind = CT_ARG_U32, .v.u32 = (cl_uint)(x)})
#define CT_I32(x) ((ct_arg){.kind = CT_ARG_I32, .v.i32 = (cl_int)(x)})
#define CT_F32(x) ((ct_arg){.kind = CT_ARG_F32, .v.f32 = (cl_float)(x)})
#define CT_U64(x) ((ct_arg){.kind = CT_ARG_U64, .v.u64 = (cl_ulong)(x)})
#define CT_LOCAL(bytes) ((ct_arg){.kind = CT_ARG_LOCAL, .v.local_bytes = (bytes)})

ct_status ct_kernel_setargs(cl_kernel k, const char *name, size_t n, const ct_arg *args);
#define CT_SETARGS(k, name, ...)                                                           \
    ct_kernel_setargs((k), (name), sizeof((ct_arg[]){__VA_ARGS__}) / sizeof(ct_arg),     \
                      (ct_arg[]){__VA_ARGS__})
/* Same, starting at kernel parameter `first` (after parameters set some other way). */
ct_status ct_kernel_setargs_at(cl_kernel k, const char *name, cl_uint first, size_t n,
                               const ct_arg *args);
#define CT_SETARGS_AT(k, name, first, ...)                                                 \
    ct_kernel_setargs_at((k), (name), (first),                                             \
                         sizeof((ct_arg[]){__VA_ARGS__}) / sizeof(ct_arg),                 \
                         (ct_arg[]){__VA_ARGS__})

/* Enqueues `k` over `global` (dims 1..3; each rounded up to a multiple of local when
 * local is given — kernels must bounds-check). `label` names it in errors and profiles. */
ct_status ct_launch(ct_context *ctx, cl_kernel k, const char *label, cl_uint dims,
                    const size_t *global, const size_t *local);

/* Convenience: file + kernel + args + 1-D launch over `n` work-items, in one call. */
#define CT_RUN1D(ctx, file, name, n, ...)                                                  \
    ct_run1d((ctx), (file), (name), (n), sizeof((ct_arg[]){__VA_ARGS__}) / sizeof(ct_arg), \
             (ct_arg[]){__VA_ARGS__})
ct_status ct_run1d(ct_context *ctx, const char *file, const char *name, size_t n, size_t nargs,
                   const ct_arg *args);

/* Records a profiling event for work enqueued outside ct_launch (e.g. CLBlast). Takes
 * ownership of `ev`; releases it when profiling is off. */
void ct_profile_add(ct_context *ctx, const char *label, cl_event ev);
/* The same for work of several kernels (a library's): from `from` (a marker enqueued
 * before it; its end) to the end of `ev` (its last kernel). Takes ownership of both. */
void ct_profile_add_span(ct_context *ctx, const char *label, cl_event from, cl_event ev);
/* Pointer to pass as the event out-parameter of an enqueue, or NULL without profiling. */
#define CT_PROF_EVENT(ctx, evp) (((ctx)->flags & CT_CONTEXT_PROFILING) ? (evp) : NULL)

/* Scratch memory: slot `slot` (0..CT_SCRATCH_SLOTS-1) of the context, grown to at least
 * `bytes` (never shrunk), freed with the context. Ops use distinct slots for buffers
 * they need at the same time; contents do not survive across ops. */
ct_status ct_scratch_get(ct_context *ctx, unsigned slot, size_t bytes, cl_mem *out);

/* A device buffer of `bytes` for constant data identified by `key` (a hash of everything
 * its contents depend on), kept across calls: *fresh is true when it was just made and
 * the caller must fill it (in queue order, before using it). At most CT_CONST_SLOTS keys
 * live at once; the oldest is released to make room. */
ct_status ct_const_buffer(ct_context *ctx, uint64_t key, size_t bytes, cl_mem *out, bool *fresh);
/* Forgets the constant buffer `mem` (e.g. when filling it failed): the next request for
 * its key makes a new one. */
void ct_const_buffer_drop(ct_context *ctx, cl_mem mem);

/* c (m x n) = a (m x k) b^T (b: n x k), dense row-major, then + bias[j] and ReLU in the
 * same kernel when ct_gemm's own kernels run (*fused set); with CLBlast only the product
 * (the caller applies bias and ReLU). lib/core/gemm.c */
ct_status ct_gemm_nt_bias_act(ct_context *ctx, size_t m, size_t n, size_t k, const ct_tensor *a,
                              const ct_tensor *b, const ct_tensor *bias, bool relu, ct_tensor *c,
                              bool *fused);

/* Per-device tuning table (lib/core/tune.c): fills ctx->tune_options. */
void ct_tune_select(ct_context *ctx);
/* A kernel tunable NAME: from CLTRAIN_TUNE ("-DNAME=v ..."), else what `cltrain tune
 * --conv` stored for the device, else the device's table, else dflt (values 1..2^20-1). The host passes the value to the kernel as -DNAME=v, so
 * both sides agree. lib/core/tune.c */
unsigned ct_tune_value(const ct_context *ctx, const char *name, unsigned dflt);
/* The same for a tunable that may be 0 (a switch or bit mask): 0..2^20-1. */
unsigned ct_tune_flags(const ct_context *ctx, const char *name, unsigned dflt);
/* CLTRAIN_TUNE, if set, as whitespace-separated -DNAME=N with NAME one the library reads
 * and N a whole number below 2^20; else CT_ERR_INVALID_ARG naming the first bad word.
 * ct_context_create checks it. */
ct_status ct_tune_env_check(void);

/* The stored files' common parts (lib/core/tune_file.c): `src` as one line of printable
 * text; the last error's message without its "(STATUS, file.c:N)" suffixes; the UTC time
 * as 2026-11-26T01:02:03Z; and writing a file whole (a temporary file in the same folder,
 * created if missing, synced, then renamed over `path`). */
void ct_one_line(char *dst, size_t cap, const char *src);
void ct_error_reason(char *buf, size_t cap);
void ct_utc_date(char *buf, size_t cap);
ct_status ct_write_text_atomic(const char *path, const char *text);
/* <cache dir>/<prefix>-<16 hex digits>.txt, hashed over `tag` and the device's name,
 * driver and platform. */
ct_status ct_device_file(const ct_device_info *dev, const char *tag, const char *prefix,
                         char *buf, size_t cap);
/* The whole file (at most CT_TUNE_FILE_MAX bytes), malloc'd into *text: CT_ERR_NOT_FOUND,
 * CT_ERR_IO or CT_ERR_FORMAT (too large) otherwise. */
ct_status ct_read_small_file(const char *path, char **text, size_t *len);
/* The checks every line of a stored file passes before it is parsed: not empty, within
 * CT_TUNE_FILE_MAX, newline-terminated, lines under CT_TUNE_LINE_MAX bytes of printable
 * text, line 1 equal to `magic`. */
ct_status ct_text_check(const char *text, size_t len, const char *magic);
/* The next line with content of a text ct_text_check passed, from *at (advanced), *lineno
 * counting: line 1, empty lines and '#' comments skipped; *n its length. NULL at the end. */
const char *ct_next_line(const char *text, size_t len, size_t *at, size_t *lineno, size_t *n);
/* CT_ERR_FORMAT unless the header names this device, platform and driver ("run `again`
 * again" in the message). */
ct_status ct_tune_file_same_device(const ct_tune_file_info *fi, const ct_device_info *dev,
                                   const char *again);
/* Reads the device's stored convolution path into ctx->conv_path and says where it came
 * from in ctx->conv_path_source (lib/core/conv_path.c); never fails. */
void ct_conv_path_apply(ct_context *ctx);
/* Applies the CLBlast parameters of ct_tune_resolve once per context (tune.c); called
 * before the first GEMM. */
void ct_tune_clblast(ct_context *ctx);

/* The on-disk cache folder (lib/core/cachedir.c): CLTRAIN_CACHE_DIR, $XDG_CACHE_HOME/cltrain
 * or ~/.cache/cltrain. Returns 0 when there is none (CLTRAIN_CACHE=0, nothing set, or the
 * path does not fit). ct_mkdir_p creates a folder and its parents: 0 or -1 (errno set). */
int ct_cache_dir(char *buf, size_t n);
int ct_mkdir_p(const char *path);

/* Embedded kernel sources (generated at build time by tools/embed). */
typedef struct ct_kernel_source {
    const char *name; /* "conv.cl" */
    const char *text;
    size_t length;
} ct_kernel_source;
extern const ct_kernel_source ct_kernel_sources[];
extern const size_t ct_kernel_source_count;

/* Kernel source text for `file`: from $CLTRAIN_KERNEL_DIR when set, else embedded.
 * *out is malloc'd and NUL-terminated. */
ct_status ct_kernel_source_load(const char *file, char **out, size_t *len);

/* 64-bit FNV-1a, for program-cache keys and the checkpoints' weights hash: checkpoints
 * store its value, so it must stay FNV-1a (test_core pins it to the reference vectors). */
uint64_t ct_hash64(uint64_t h, const void *data, size_t len);
#define CT_HASH64_INIT 0xcbf29ce484222325ULL

#endif
