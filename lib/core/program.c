/* Runtime kernel compilation: sources (embedded or from $CLTRAIN_KERNEL_DIR), the
 * per-context program cache, and the on-disk program-binary cache.
 *
 * Disk cache entry, one file per program, named by a 64-bit hash of the key:
 *   "CTPCACHE" | u32 format | u64 key hash A | u64 key hash B | u64 size | binary | u64 sum
 * The key is the full source text, the build options, the device name, the driver version
 * and the platform name and version. Two independent hashes of it are stored and
 * compared, and the binary carries a checksum: a corrupt, truncated, stale or colliding
 * entry is ignored and rebuilt. Entries are written to a temporary file in the cache folder
 * and renamed into place, so a reader never sees half a file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"

#define CACHE_FORMAT 1u
#define CACHE_MAGIC "CTPCACHE"
#define MAX_CACHE_BINARY (256u << 20)

typedef struct kernel_entry {
    char name[96];
    cl_kernel k;
} kernel_entry;

struct ct_program_entry {
    struct ct_program_entry *next;
    char *file;
    char *options;
    cl_program prog;
    kernel_entry *kernels;
    size_t nkernels;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static ct_status read_file(const char *path, char **out, size_t *len)
{
    ct_status st = CT_SUCCESS;
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    CT_REQUIRE(f != NULL, CT_ERR_NOT_FOUND, "cannot open kernel file %s: %s", path, strerror(errno));
    CT_REQUIRE(fseek(f, 0, SEEK_END) == 0, CT_ERR_IO, "cannot seek %s: %s", path, strerror(errno));
    long n = ftell(f);
    CT_REQUIRE(n >= 0, CT_ERR_IO, "cannot size %s: %s", path, strerror(errno));
    rewind(f);
    buf = malloc((size_t)n + 1);
    CT_REQUIRE(buf != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory reading %s", path);
    CT_REQUIRE(fread(buf, 1, (size_t)n, f) == (size_t)n, CT_ERR_IO, "short read on %s", path);
    buf[n] = '\0';
    *out = buf;
    *len = (size_t)n;
    buf = NULL;
cleanup:
    free(buf);
    if (f)
        fclose(f);
    return st;
}

ct_status ct_kernel_source_load(const char *file, char **out, size_t *len)
{
    ct_status st = CT_SUCCESS;
    const char *dir = getenv("CLTRAIN_KERNEL_DIR");
    CT_REQUIRE(file && out && len, CT_ERR_INVALID_ARG, "ct_kernel_source_load: NULL argument");
    if (dir && *dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, file);
        CT_TRY(read_file(path, out, len));
        goto cleanup;
    }
    for (size_t i = 0; i < ct_kernel_source_count; i++) {
        if (strcmp(ct_kernel_sources[i].name, file) == 0) {
            *out = malloc(ct_kernel_sources[i].length + 1);
            CT_REQUIRE(*out != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
            memcpy(*out, ct_kernel_sources[i].text, ct_kernel_sources[i].length);
            (*out)[ct_kernel_sources[i].length] = '\0';
            *len = ct_kernel_sources[i].length;
            goto cleanup;
        }
    }
    CT_FAIL(CT_ERR_NOT_FOUND, "no kernel file '%s' is embedded in this build", file);
cleanup:
    return st;
}

/* ---- on-disk cache --------------------------------------------------------------- */

typedef struct cache_key {
    uint64_t a, b;
} cache_key;

static cache_key make_key(const ct_context *ctx, const char *src, size_t len, const char *opts)
{
    const char *parts[] = {"cltrain program cache", opts, ctx->info.name, ctx->info.driver,
                           ctx->info.platform, ctx->info.platform_version};
    cache_key k = {CT_HASH64_INIT, 0x84222325cbf29ce4ULL};
    k.a = ct_hash64(k.a, src, len);
    k.b = ct_hash64(k.b, src, len);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        k.a = ct_hash64(k.a, parts[i], strlen(parts[i]) + 1);
        k.b = ct_hash64(k.b ^ 0x5bd1e995u, parts[i], strlen(parts[i]) + 1);
    }
    return k;
}

static void cache_path(char *buf, size_t n, const char *dir, cache_key k)
{
    snprintf(buf, n, "%s/%016llx.bin", dir, (unsigned long long)k.a);
}

/* Returns a malloc'd binary for `k`, or NULL when there is no valid entry. */
static unsigned char *cache_load(const char *path, cache_key k, size_t *size)
{
    FILE *f = fopen(path, "rb");
    unsigned char *bin = NULL;
    if (!f)
        return NULL;
    char magic[8];
    uint32_t fmt = 0;
    uint64_t ka = 0, kb = 0, n = 0, sum = 0;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, CACHE_MAGIC, 8) != 0 ||
        fread(&fmt, sizeof fmt, 1, f) != 1 || fmt != CACHE_FORMAT ||
        fread(&ka, sizeof ka, 1, f) != 1 || fread(&kb, sizeof kb, 1, f) != 1 || ka != k.a ||
        kb != k.b || fread(&n, sizeof n, 1, f) != 1 || n == 0 || n > MAX_CACHE_BINARY)
        goto bad;
    bin = malloc((size_t)n);
    if (!bin || fread(bin, 1, (size_t)n, f) != n || fread(&sum, sizeof sum, 1, f) != 1 ||
        sum != ct_hash64(CT_HASH64_INIT, bin, (size_t)n) || fgetc(f) != EOF)
        goto bad;
    fclose(f);
    *size = (size_t)n;
    return bin;
bad:
    free(bin);
    fclose(f);
    return NULL;
}

/* Best effort: a cache that cannot be written only costs a rebuild next time. */
static void cache_store(const char *dir, const char *path, cache_key k, cl_program prog)
{
    size_t n = 0;
    unsigned char *bin = NULL;
    FILE *f = NULL;
    char tmp[4200];
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof n, &n, NULL) != CL_SUCCESS ||
        n == 0 || n > MAX_CACHE_BINARY)
        return;
    bin = malloc(n);
    if (!bin || clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) != CL_SUCCESS)
        goto done;
    if (ct_mkdir_p(dir) != 0)
        goto done;
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%ld", path, (long)getpid(), (long)time(NULL));
    f = fopen(tmp, "wb");
    if (!f)
        goto done;
    uint32_t fmt = CACHE_FORMAT;
    uint64_t n64 = n, sum = ct_hash64(CT_HASH64_INIT, bin, n);
    int ok = fwrite(CACHE_MAGIC, 1, 8, f) == 8 && fwrite(&fmt, sizeof fmt, 1, f) == 1 &&
             fwrite(&k.a, sizeof k.a, 1, f) == 1 && fwrite(&k.b, sizeof k.b, 1, f) == 1 &&
             fwrite(&n64, sizeof n64, 1, f) == 1 && fwrite(bin, 1, n, f) == n &&
             fwrite(&sum, sizeof sum, 1, f) == 1 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    f = NULL;
    if (!ok || rename(tmp, path) != 0)
        unlink(tmp);
done:
    free(bin);
}

/* ---- building -------------------------------------------------------------------- */

static ct_status build_log_error(ct_context *ctx, cl_program prog, const char *file,
                                 const char *options)
{
    size_t n = 0;
    char *log = NULL;
    clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n);
    log = malloc(n + 1);
    if (log && clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, n, log, NULL) == CL_SUCCESS)
        log[n] = '\0';
    else if (log)
        log[0] = '\0';
    ct_status st = ct_error_set(CT_ERR_BUILD, __FILE__, __LINE__,
                                "building kernels/%s for %s failed (options: %s); build log:\n%s",
                                file, ctx->info.name, options, log ? log : "(unavailable)");
    free(log);
    return st;
}

static ct_status build_program(ct_context *ctx, const char *file, const char *options,
                               cl_program *out)
{
    ct_status st = CT_SUCCESS;
    char *common = NULL, *body = NULL, *src = NULL;
    unsigned char *bin = NULL;
    size_t clen = 0, blen = 0, len = 0, binlen = 0;
    cl_program prog = NULL;
    cl_int e = CL_SUCCESS;
    char dir[4096], path[4200];
    double t0 = now_seconds();

    CT_TRY(ct_kernel_source_load("common.cl", &common, &clen));
    CT_TRY(ct_kernel_source_load(file, &body, &blen));
    len = clen + blen + 32;
    src = malloc(len);
    CT_REQUIRE(src != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    len = (size_t)snprintf(src, len, "%s\n#line 1\n%s", common, body);

    int use_cache = ct_cache_dir(dir, sizeof dir);
    cache_key key = make_key(ctx, src, len, options);
    if (use_cache) {
        cache_path(path, sizeof path, dir, key);
        bin = cache_load(path, key, &binlen);
        if (bin) {
            const unsigned char *bins[1] = {bin};
            cl_int bin_status = CL_SUCCESS;
            prog = clCreateProgramWithBinary(ctx->cl, 1, &ctx->device, &binlen, bins, &bin_status, &e);
            if (e == CL_SUCCESS && bin_status == CL_SUCCESS &&
                clBuildProgram(prog, 1, &ctx->device, options, NULL, NULL) == CL_SUCCESS) {
                ctx->stats.from_disk_cache++;
                goto done;
            }
            /* Rejected binary (e.g. a driver update): fall through and rebuild. */
            if (prog)
                clReleaseProgram(prog);
            prog = NULL;
        }
    }
    if (ctx->notify)
        ctx->notify(ctx->notify_user, ctx->info.name, file);
    {
        const char *srcs[1] = {src};
        prog = clCreateProgramWithSource(ctx->cl, 1, srcs, &len, &e);
        CT_CL_ERR(e, "clCreateProgramWithSource");
    }
    e = clBuildProgram(prog, 1, &ctx->device, options, NULL, NULL);
    if (e == CL_BUILD_PROGRAM_FAILURE || e == CL_INVALID_BUILD_OPTIONS) {
        st = build_log_error(ctx, prog, file, options);
        goto cleanup;
    }
    CT_CL_ERR(e, "clBuildProgram");
    ctx->stats.from_source++;
    if (use_cache)
        cache_store(dir, path, key, prog);
done:
    ctx->stats.build_seconds += now_seconds() - t0;
    *out = prog;
    prog = NULL;
cleanup:
    if (prog)
        clReleaseProgram(prog);
    free(common);
    free(body);
    free(src);
    free(bin);
    return st;
}

ct_status ct_kernel_get(ct_context *ctx, const char *file, const char *name,
                        const char *options, cl_kernel *out)
{
    ct_status st = CT_SUCCESS;
    ct_program_entry *p = NULL, *fresh = NULL;
    char opts[2048];
    cl_int e = CL_SUCCESS;
    cl_kernel k = NULL;

    CT_REQUIRE(ctx && file && name && out, CT_ERR_INVALID_ARG, "ct_kernel_get: NULL argument");
    /* CLTRAIN_BUILD_OPTIONS adds options to every build (e.g. -cl-opt-disable under
     * Oclgrind, whose uninitialized-memory checker cannot follow optimised code). */
    const char *extra = getenv("CLTRAIN_BUILD_OPTIONS");
    snprintf(opts, sizeof opts, "-cl-std=CL1.2 %s %s %s", ctx->tune_options,
             options ? options : "", extra ? extra : "");
    for (p = ctx->programs; p; p = p->next)
        if (strcmp(p->file, file) == 0 && strcmp(p->options, opts) == 0)
            break;
    if (!p) {
        fresh = calloc(1, sizeof *fresh);
        CT_REQUIRE(fresh != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
        fresh->file = strdup(file);
        fresh->options = strdup(opts);
        CT_REQUIRE(fresh->file && fresh->options, CT_ERR_OUT_OF_MEMORY, "out of host memory");
        CT_TRY(build_program(ctx, file, opts, &fresh->prog));
        fresh->next = ctx->programs;
        ctx->programs = fresh;
        p = fresh;
        fresh = NULL;
    } else {
        ctx->stats.from_memory++;
    }
    for (size_t i = 0; i < p->nkernels; i++)
        if (strcmp(p->kernels[i].name, name) == 0) {
            *out = p->kernels[i].k;
            goto cleanup;
        }
    k = clCreateKernel(p->prog, name, &e);
    if (e == CL_INVALID_KERNEL_NAME)
        CT_FAIL(CT_ERR_NOT_FOUND, "kernels/%s has no kernel named '%s'", file, name);
    CT_CL_ERR(e, "clCreateKernel");
    {
        kernel_entry *grown = realloc(p->kernels, (p->nkernels + 1) * sizeof *grown);
        CT_REQUIRE(grown != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
        p->kernels = grown;
        snprintf(grown[p->nkernels].name, sizeof grown[p->nkernels].name, "%s", name);
        grown[p->nkernels].k = k;
        p->nkernels++;
        *out = k;
        k = NULL;
    }
cleanup:
    if (k)
        clReleaseKernel(k);
    if (fresh) {
        free(fresh->file);
        free(fresh->options);
        free(fresh);
    }
    return st;
}

void ct_program_cache_free(ct_context *ctx)
{
    ct_program_entry *p = ctx->programs;
    while (p) {
        ct_program_entry *next = p->next;
        for (size_t i = 0; i < p->nkernels; i++)
            clReleaseKernel(p->kernels[i].k);
        free(p->kernels);
        if (p->prog)
            clReleaseProgram(p->prog);
        free(p->file);
        free(p->options);
        free(p);
        p = next;
    }
    ctx->programs = NULL;
}
