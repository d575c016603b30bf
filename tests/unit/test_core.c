/* Core layer: status names, device choice, tensors and views, the program cache. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/internal.h"
#include "testutil.h"

Test(status, names_reuse_opencl_and_clblast_numbers)
{
    cr_assert_str_eq(ct_status_str(CT_SUCCESS), "CT_SUCCESS");
    cr_assert_str_eq(ct_status_str(-54), "CL_INVALID_WORK_GROUP_SIZE");
    cr_assert_str_eq(ct_status_str(CL_OUT_OF_RESOURCES), "CL_OUT_OF_RESOURCES");
    cr_assert_str_eq(ct_status_str(-1016), "CLBlastInvalidLeadDimA");
    cr_assert_str_eq(ct_status_str(CT_ERR_SHAPE), "CT_ERR_SHAPE");
    cr_assert_str_eq(ct_status_str(12345), "unknown status");
}

Test(status, message_names_call_and_error)
{
    ct_status st = ct_error_cl(CL_INVALID_WORK_GROUP_SIZE, "clEnqueueNDRangeKernel(q, k, ...)",
                               "x.c", 7);
    cr_assert_eq(st, CL_INVALID_WORK_GROUP_SIZE);
    cr_assert(strstr(ct_last_error(), "clEnqueueNDRangeKernel failed") != NULL, "%s", ct_last_error());
    cr_assert(strstr(ct_last_error(), "CL_INVALID_WORK_GROUP_SIZE") != NULL, "%s", ct_last_error());
}

Test(device, list_and_choose)
{
    ct_device_info *list = NULL;
    size_t n = 0;
    ct_status st = ct_device_list(&list, &n);
    if (st == CT_ERR_NO_DEVICE)
        cr_skip_test("no OpenCL device: %s", ct_last_error());
    TU_OK(st);
    cr_assert_gt(n, 0);
    cr_assert_gt(strlen(list[0].name), 0);
    cr_assert_gt(list[0].global_mem, 0);
    cr_assert_gt(list[0].max_alloc, 0);

    ct_device_info d;
    TU_OK(ct_device_choose("0", &d));
    cr_assert_str_eq(d.name, list[0].name);
    /* a case-insensitive substring of the name picks the same device */
    char sub[8] = {0};
    for (size_t i = 0; i < 3 && list[0].name[i]; i++)
        sub[i] = (char)(list[0].name[i] ^ ((list[0].name[i] >= 'a' && list[0].name[i] <= 'z') ? 0x20 : 0));
    TU_OK(ct_device_choose(sub, &d));

    st = ct_device_choose("no-such-device-xyz", &d);
    cr_assert_eq(st, CT_ERR_NOT_FOUND);
    cr_assert(strstr(ct_last_error(), "no-such-device-xyz") != NULL, "%s", ct_last_error());
    cr_assert(strstr(ct_last_error(), list[0].name) != NULL, "lists devices: %s", ct_last_error());
    char idx[32];
    snprintf(idx, sizeof idx, "%zu", n);
    cr_assert_eq(ct_device_choose(idx, &d), CT_ERR_NOT_FOUND);
    ct_device_list_free(list);
}

Test(device, env_choice)
{
    setenv("CLTRAIN_DEVICE", "definitely-not-a-device", 1);
    ct_context *ctx = NULL;
    ct_status st = ct_context_create(NULL, 0, &ctx);
    if (st == CT_ERR_NO_DEVICE)
        cr_skip_test("no OpenCL device");
    cr_assert_eq(st, CT_ERR_NOT_FOUND);
    cr_assert(strstr(ct_last_error(), "CLTRAIN_DEVICE") != NULL, "%s", ct_last_error());
    cr_assert_null(ctx);
}

/* CLTRAIN_GEMM takes own or clblast; anything else is refused when the context is made,
 * naming the value, rather than quietly running the default. */
Test(device, gemm_choice_is_checked)
{
    ct_context *ctx = NULL;
    setenv("CLTRAIN_GEMM", "fastest", 1);
    cr_assert_eq(ct_context_create(NULL, 0, &ctx), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "CLTRAIN_GEMM=fastest") != NULL, "%s", ct_last_error());
    cr_assert_null(ctx);
    setenv("CLTRAIN_GEMM", "clblast", 1);
    ct_status st = ct_context_create(NULL, 0, &ctx);
    if (st == CT_ERR_NO_DEVICE)
        cr_skip_test("no OpenCL device");
    cr_assert_eq(st, CT_SUCCESS, "%s", ct_last_error());
    cr_assert_eq(ct_gemm_backend(ctx), CT_GEMM_CLBLAST);
    unsetenv("CLTRAIN_GEMM");
    ct_context_free(ctx);
}

Test(tensor, upload_download_fill_copy)
{
    ct_context *ctx = tu_context();
    float h[37], back[37];
    tu_fill_uniform(h, 37, 1, -1, 1);
    ct_tensor *a = tu_tensor(ctx, TU_SHAPE(37), h);
    ct_tensor *b = NULL;
    TU_OK(ct_tensor_zeros(ctx, 1, (size_t[]){37}, &b));
    TU_OK(ct_tensor_download(b, back, 37));
    for (int i = 0; i < 37; i++)
        cr_assert_eq(back[i], 0.0f);
    TU_OK(ct_tensor_copy(b, a));
    TU_OK(ct_tensor_download(b, back, 37));
    cr_assert_arr_eq(back, h, sizeof h);
    TU_OK(ct_tensor_fill(a, 2.5f));
    TU_OK(ct_tensor_download(a, back, 37));
    for (int i = 0; i < 37; i++)
        cr_assert_eq(back[i], 2.5f, "element %d", i);
    cr_assert_eq(ct_context_mem_in_use(ctx), 2 * 37 * sizeof(float));
    ct_tensor_free(a);
    ct_tensor_free(b);
    cr_assert_eq(ct_context_mem_in_use(ctx), 0);
    ct_context_free(ctx);
}

Test(tensor, views_touch_only_their_range)
{
    ct_context *ctx = tu_context();
    float h[20];
    for (int i = 0; i < 20; i++)
        h[i] = (float)i;
    ct_tensor *base = tu_tensor(ctx, TU_SHAPE(20), h);
    ct_tensor *v = NULL, *vv = NULL;
    TU_OK(ct_tensor_view(base, 3, 2, (size_t[]){2, 5}, &v)); /* elements 3..12 */
    TU_OK(ct_tensor_view(v, 1, 1, (size_t[]){3}, &vv));       /* elements 4..6 */
    TU_OK(ct_tensor_fill(v, -1.0f));
    TU_OK(ct_tensor_fill(vv, 7.0f));
    float back[20];
    TU_OK(ct_tensor_download(base, back, 20));
    for (int i = 0; i < 20; i++) {
        float want = (i >= 4 && i <= 6) ? 7.0f : (i >= 3 && i <= 12) ? -1.0f : (float)i;
        cr_assert_eq(back[i], want, "element %d: %g", i, back[i]);
    }
    float part[3];
    TU_OK(ct_tensor_download(vv, part, 3));
    cr_assert_eq(part[0], 7.0f);
    /* out of range views and shape mismatches are errors, not crashes */
    ct_tensor *bad = NULL;
    cr_assert_eq(ct_tensor_view(base, 15, 1, (size_t[]){6}, &bad), CT_ERR_SHAPE);
    cr_assert_eq(ct_tensor_view(v, 8, 1, (size_t[]){3}, &bad), CT_ERR_SHAPE);
    cr_assert_null(bad);
    cr_assert_eq(ct_tensor_upload(v, h, 20), CT_ERR_SHAPE);
    cr_assert_eq(ct_tensor_reshape(v, 2, (size_t[]){5, 2}), CT_SUCCESS);
    cr_assert_eq(ct_tensor_reshape(v, 2, (size_t[]){5, 3}), CT_ERR_SHAPE);
    cr_assert_eq(ct_tensor_create(ctx, 5, (size_t[]){1, 1, 1, 1, 1}, &bad), CT_ERR_SHAPE);
    cr_assert_eq(ct_tensor_create(ctx, 2, (size_t[]){3, 0}, &bad), CT_ERR_SHAPE);
    ct_tensor_free(vv);
    ct_tensor_free(v);
    ct_tensor_free(base);
    ct_context_free(ctx);
}

Test(tensor, oversized_allocation_is_refused_with_numbers)
{
    ct_context *ctx = tu_context();
    ct_tensor *t = NULL;
    size_t huge = (size_t)(ct_context_device(ctx)->max_alloc / sizeof(float)) + 1;
    ct_status st = ct_tensor_create(ctx, 1, &huge, &t);
    cr_assert_eq(st, CT_ERR_OUT_OF_MEMORY);
    cr_assert(strstr(ct_last_error(), "max buffer") != NULL, "%s", ct_last_error());
    cr_assert(strstr(ct_last_error(), "in use") != NULL, "%s", ct_last_error());
    cr_assert_null(t);
    ct_context_free(ctx);
}

/* ---- program cache ----------------------------------------------------------------- */

static char cache_root[256];

static void fresh_cache(void)
{
    snprintf(cache_root, sizeof cache_root, "/tmp/cltrain-test-cache-XXXXXX");
    cr_assert_not_null(mkdtemp(cache_root));
    setenv("CLTRAIN_CACHE_DIR", cache_root, 1);
    unsetenv("CLTRAIN_CACHE");
    unsetenv("CLTRAIN_KERNEL_DIR");
}

static ct_build_stats build_fill(void)
{
    ct_context *ctx = tu_context();
    ct_tensor *t = NULL;
    TU_OK(ct_tensor_zeros(ctx, 1, (size_t[]){5}, &t));
    TU_OK(ct_context_finish(ctx));
    ct_build_stats s = ct_context_build_stats(ctx);
    ct_tensor_free(t);
    ct_context_free(ctx);
    return s;
}

static int count_entries(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ls %s/*.bin 2>/dev/null | wc -l", cache_root);
    FILE *p = popen(cmd, "r");
    int n = -1;
    cr_assert(p && fscanf(p, "%d", &n) == 1);
    pclose(p);
    return n;
}

Test(cache, second_process_reuses_the_binary)
{
    fresh_cache();
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        ct_build_stats s = build_fill();
        _exit(s.from_source == 1 && s.from_disk_cache == 0 ? 0 : 3);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "first process should compile");
    cr_assert_eq(count_entries(), 1);
    ct_build_stats s = build_fill();
    cr_assert_eq(s.from_source, 0, "second process compiled again");
    cr_assert_eq(s.from_disk_cache, 1);
}

Test(cache, corrupt_entry_is_ignored_and_rebuilt)
{
    fresh_cache();
    build_fill();
    cr_assert_eq(count_entries(), 1);
    char cmd[512];
    /* flip bytes in the middle of the entry, then truncate another copy */
    snprintf(cmd, sizeof cmd,
             "f=$(ls %s/*.bin); printf 'garbage' | dd of=$f bs=1 seek=200 conv=notrunc 2>/dev/null",
             cache_root);
    cr_assert_eq(system(cmd), 0);
    ct_build_stats s = build_fill();
    cr_assert_eq(s.from_source, 1, "a corrupt entry must not be loaded");
    s = build_fill();
    cr_assert_eq(s.from_disk_cache, 1, "the rebuilt entry replaces the corrupt one");
    snprintf(cmd, sizeof cmd, "f=$(ls %s/*.bin); truncate -s 30 $f", cache_root);
    cr_assert_eq(system(cmd), 0);
    s = build_fill();
    cr_assert_eq(s.from_source, 1, "a truncated entry must not be loaded");
}

Test(cache, off_switch)
{
    fresh_cache();
    setenv("CLTRAIN_CACHE", "0", 1);
    build_fill();
    ct_build_stats s = build_fill();
    cr_assert_eq(s.from_source, 1);
    cr_assert_eq(count_entries(), 0);
}

static void write_text(const char *path, const char *text)
{
    tu_write_file(path, text, strlen(text));
}

Test(cache, build_failure_carries_the_log)
{
    fresh_cache();
    char dir[300];
    snprintf(dir, sizeof dir, "%s/kernels", cache_root);
    mkdir(dir, 0755);
    char path[400];
    snprintf(path, sizeof path, "%s/common.cl", dir);
    write_text(path, "/* empty */\n");
    snprintf(path, sizeof path, "%s/tensor.cl", dir);
    write_text(path, "__kernel void ct_fill(__global float *x) { x[0] = undeclared_name; }\n");
    setenv("CLTRAIN_KERNEL_DIR", dir, 1);
    ct_context *ctx = tu_context();
    ct_tensor *t = NULL;
    TU_OK(ct_tensor_create(ctx, 1, (size_t[]){4}, &t));
    ct_status st = ct_tensor_fill(t, 1.0f);
    cr_assert_eq(st, CT_ERR_BUILD);
    cr_assert(strstr(ct_last_error(), "tensor.cl") != NULL, "%s", ct_last_error());
    cr_assert(strstr(ct_last_error(), "undeclared_name") != NULL, "log missing: %s", ct_last_error());
    /* a missing kernel name is its own clear error */
    snprintf(path, sizeof path, "%s/tensor.cl", dir);
    write_text(path, "__kernel void other(__global float *x) { x[0] = 1.0f; }\n");
    cl_kernel k = NULL;
    st = ct_kernel_get(ctx, "tensor.cl", "ct_fill", "-DNEW_KEY=1", &k);
    cr_assert_eq(st, CT_ERR_NOT_FOUND);
    cr_assert(strstr(ct_last_error(), "ct_fill") != NULL, "%s", ct_last_error());
    st = ct_kernel_get(ctx, "missing.cl", "x", NULL, &k);
    cr_assert_eq(st, CT_ERR_NOT_FOUND);
    cr_assert(strstr(ct_last_error(), "missing.cl") != NULL, "%s", ct_last_error());
    ct_tensor_free(t);
    ct_context_free(ctx);
}

Test(profile, events_are_collected_per_label)
{
    fresh_cache();
    ct_context *ctx = tu_context_flags(CT_CONTEXT_PROFILING);
    ct_tensor *t = NULL;
    TU_OK(ct_tensor_create(ctx, 1, (size_t[]){1000}, &t));
    for (int i = 0; i < 3; i++)
        TU_OK(ct_tensor_fill(t, (float)i));
    ct_profile_entry *e = NULL;
    size_t n = 0;
    TU_OK(ct_profile_collect(ctx, &e, &n));
    cr_assert_eq(n, 1);
    cr_assert_str_eq(e[0].label, "ct_fill");
    cr_assert_eq(e[0].launches, 3);
    cr_assert_geq(e[0].total_ms, 0.0);
    free(e);
    ct_tensor_free(t);
    ct_context_free(ctx);
}

/* ct_hash64 keys the program cache and is also the hash a checkpoint's state file keeps
 * of its weights file (weights.fnv1a64), so it must stay 64-bit FNV-1a: the published
 * test vectors (offset basis 0xcbf29ce484222325, prime 0x100000001b3). */
Test(hash, ct_hash64_is_fnv1a_64)
{
    cr_assert_eq(ct_hash64(CT_HASH64_INIT, "", 0), 0xcbf29ce484222325ULL);
    cr_assert_eq(ct_hash64(CT_HASH64_INIT, "a", 1), 0xaf63dc4c8601ec8cULL);
    cr_assert_eq(ct_hash64(CT_HASH64_INIT, "foobar", 6), 0x85944171f73967e8ULL);
    /* continued in pieces, as the safetensors writer does */
    cr_assert_eq(ct_hash64(ct_hash64(CT_HASH64_INIT, "foo", 3), "bar", 3), 0x85944171f73967e8ULL);
}
