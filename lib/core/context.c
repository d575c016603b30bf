/* The context: one device, one in-order queue, device memory accounting, scratch
 * buffers and profiling records. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

struct ct_profile_rec {
    char label[64];
    cl_event ev;
    cl_event from; /* a marker enqueued before the work (ct_profile_add_span), or NULL */
};

void ct_program_cache_free(ct_context *ctx); /* program.c */

ct_status ct_context_create(const char *choice, unsigned flags, ct_context **out)
{
    ct_status st = CT_SUCCESS;
    ct_context *ctx = NULL;
    cl_int e = CL_SUCCESS;

    CT_REQUIRE(out != NULL, CT_ERR_INVALID_ARG, "ct_context_create: NULL output");
    *out = NULL;
    ctx = calloc(1, sizeof *ctx);
    CT_REQUIRE(ctx != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    const char *gemm = getenv("CLTRAIN_GEMM");
    CT_REQUIRE(!gemm || !*gemm || strcmp(gemm, "own") == 0 || strcmp(gemm, "clblast") == 0,
               CT_ERR_INVALID_ARG, "CLTRAIN_GEMM=%s: expected own or clblast", gemm);
    CT_TRY(ct_tune_env_check());
    ctx->flags = flags;
    CT_TRY(ct_device_choose(choice, &ctx->info));
    CT_TRY(ct_device_handles(ctx->info.index, &ctx->platform, &ctx->device));

    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)ctx->platform, 0};
    ctx->cl = clCreateContext(props, 1, &ctx->device, NULL, NULL, &e);
    CT_CL_ERR(e, "clCreateContext");
    cl_command_queue_properties qp = (flags & CT_CONTEXT_PROFILING) ? CL_QUEUE_PROFILING_ENABLE : 0;
    ctx->queue = clCreateCommandQueue(ctx->cl, ctx->device, qp, &e);
    CT_CL_ERR(e, "clCreateCommandQueue");
    ct_tune_select(ctx);
    *out = ctx;
    ctx = NULL;
cleanup:
    ct_context_free(ctx);
    return st;
}

void ct_context_free(ct_context *ctx)
{
    if (!ctx)
        return;
    if (ctx->queue)
        clFinish(ctx->queue);
    ct_profile_reset(ctx);
    free(ctx->prof);
    for (unsigned i = 0; i < CT_SCRATCH_SLOTS; i++)
        if (ctx->scratch[i])
            ct_buffer_free(ctx, ctx->scratch[i], ctx->scratch_bytes[i]);
    for (unsigned i = 0; i < CT_CONST_SLOTS; i++)
        if (ctx->const_mem[i])
            ct_buffer_free(ctx, ctx->const_mem[i], ctx->const_bytes[i]);
    ct_program_cache_free(ctx);
    if (ctx->queue)
        clReleaseCommandQueue(ctx->queue);
    if (ctx->cl)
        clReleaseContext(ctx->cl);
    free(ctx);
}

ct_status ct_context_finish(ct_context *ctx)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(ctx != NULL, CT_ERR_INVALID_ARG, "ct_context_finish: NULL context");
    CT_CL(clFinish(ctx->queue));
cleanup:
    return st;
}

const ct_device_info *ct_context_device(const ct_context *ctx)
{
    return ctx ? &ctx->info : NULL;
}

uint64_t ct_context_mem_in_use(const ct_context *ctx)
{
    return ctx ? ctx->mem_in_use : 0;
}

ct_build_stats ct_context_build_stats(const ct_context *ctx)
{
    ct_build_stats none = {0};
    return ctx ? ctx->stats : none;
}

void ct_context_set_build_notify(ct_context *ctx, ct_build_notify_fn fn, void *user)
{
    if (!ctx)
        return;
    ctx->notify = fn;
    ctx->notify_user = user;
}

static void fmt_bytes(char *buf, size_t n, uint64_t b)
{
    snprintf(buf, n, "%.1f MiB", (double)b / (1024.0 * 1024.0));
}

ct_status ct_buffer_alloc(ct_context *ctx, size_t bytes, cl_mem *out)
{
    ct_status st = CT_SUCCESS;
    cl_int e = CL_SUCCESS;
    char req[32], maxb[32], dev[32], used[32];

    CT_REQUIRE(ctx != NULL && out != NULL, CT_ERR_INVALID_ARG, "ct_buffer_alloc: NULL argument");
    CT_REQUIRE(bytes > 0, CT_ERR_INVALID_ARG, "ct_buffer_alloc: zero bytes requested");
    /* Some implementations (PoCL among them) accept oversized buffers and fail later
     * inside an enqueue, so the limits are checked here. */
    fmt_bytes(req, sizeof req, bytes);
    fmt_bytes(maxb, sizeof maxb, ctx->info.max_alloc);
    fmt_bytes(dev, sizeof dev, ctx->info.global_mem);
    fmt_bytes(used, sizeof used, ctx->mem_in_use);
    CT_REQUIRE(bytes <= ctx->info.max_alloc && ctx->mem_in_use + bytes <= ctx->info.global_mem,
               CT_ERR_OUT_OF_MEMORY,
               "device buffer too large: requested %s, max buffer %s, device memory %s, in use %s",
               req, maxb, dev, used);
    *out = clCreateBuffer(ctx->cl, CL_MEM_READ_WRITE, bytes, NULL, &e);
    CT_CL_ERR(e, "clCreateBuffer");
    ctx->mem_in_use += bytes;
cleanup:
    return st;
}

void ct_buffer_free(ct_context *ctx, cl_mem mem, size_t bytes)
{
    if (!mem)
        return;
    clReleaseMemObject(mem);
    if (ctx)
        ctx->mem_in_use -= bytes <= ctx->mem_in_use ? bytes : ctx->mem_in_use;
}

ct_status ct_scratch_get(ct_context *ctx, unsigned slot, size_t bytes, cl_mem *out)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(ctx != NULL && out != NULL, CT_ERR_INVALID_ARG, "ct_scratch_get: NULL argument");
    CT_REQUIRE(slot < CT_SCRATCH_SLOTS, CT_ERR_INVALID_ARG, "scratch slot %u out of range (max %d)",
               slot, CT_SCRATCH_SLOTS - 1);
    if (bytes == 0)
        bytes = 4;
    if (ctx->scratch_bytes[slot] < bytes) {
        cl_mem fresh = NULL;
        CT_TRY(ct_buffer_alloc(ctx, bytes, &fresh));
        /* The queue is in order: releasing the old buffer here is safe, OpenCL keeps it
         * alive until enqueued work that uses it has finished. */
        ct_buffer_free(ctx, ctx->scratch[slot], ctx->scratch_bytes[slot]);
        ctx->scratch[slot] = fresh;
        ctx->scratch_bytes[slot] = bytes;
    }
    *out = ctx->scratch[slot];
cleanup:
    return st;
}

void ct_profile_add(ct_context *ctx, const char *label, cl_event ev)
{
    if (!ev)
        return;
    if (!(ctx->flags & CT_CONTEXT_PROFILING)) {
        clReleaseEvent(ev);
        return;
    }
    if (ctx->prof_len == ctx->prof_cap) {
        size_t cap = ctx->prof_cap ? ctx->prof_cap * 2 : 256;
        ct_profile_rec *grown = realloc(ctx->prof, cap * sizeof *grown);
        if (!grown) { /* profiling is best effort: drop the record rather than fail work */
            clReleaseEvent(ev);
            return;
        }
        ctx->prof = grown;
        ctx->prof_cap = cap;
    }
    ct_profile_rec *r = &ctx->prof[ctx->prof_len++];
    snprintf(r->label, sizeof r->label, "%s", label ? label : "?");
    r->ev = ev;
    r->from = NULL;
}

void ct_profile_add_span(ct_context *ctx, const char *label, cl_event from, cl_event ev)
{
    size_t before = ctx->prof_len;
    ct_profile_add(ctx, label, ev);
    if (from && ctx->prof_len > before)
        ctx->prof[before].from = from;
    else if (from)
        clReleaseEvent(from);
}

void ct_profile_reset(ct_context *ctx)
{
    if (!ctx)
        return;
    for (size_t i = 0; i < ctx->prof_len; i++) {
        clReleaseEvent(ctx->prof[i].ev);
        if (ctx->prof[i].from)
            clReleaseEvent(ctx->prof[i].from);
    }
    ctx->prof_len = 0;
}

ct_status ct_profile_collect(ct_context *ctx, ct_profile_entry **out, size_t *count)
{
    ct_status st = CT_SUCCESS;
    ct_profile_entry *list = NULL;
    size_t n = 0;

    CT_REQUIRE(ctx != NULL && out != NULL && count != NULL, CT_ERR_INVALID_ARG,
               "ct_profile_collect: NULL argument");
    CT_REQUIRE(ctx->flags & CT_CONTEXT_PROFILING, CT_ERR_INVALID_ARG,
               "profiling was not enabled for this context (CT_CONTEXT_PROFILING)");
    CT_CL(clFinish(ctx->queue));
    list = calloc(ctx->prof_len ? ctx->prof_len : 1, sizeof *list);
    CT_REQUIRE(list != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    for (size_t i = 0; i < ctx->prof_len; i++) {
        cl_ulong t0 = 0, t1 = 0;
        /* a span starts where its marker completed: the in-order queue starts the work
         * after it */
        if (ctx->prof[i].from)
            CT_CL(clGetEventProfilingInfo(ctx->prof[i].from, CL_PROFILING_COMMAND_END, sizeof t0,
                                          &t0, NULL));
        else
            CT_CL(clGetEventProfilingInfo(ctx->prof[i].ev, CL_PROFILING_COMMAND_START, sizeof t0,
                                          &t0, NULL));
        CT_CL(clGetEventProfilingInfo(ctx->prof[i].ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL));
        size_t j = 0;
        while (j < n && strcmp(list[j].label, ctx->prof[i].label) != 0)
            j++;
        if (j == n) {
            snprintf(list[n].label, sizeof list[n].label, "%s", ctx->prof[i].label);
            n++;
        }
        list[j].launches++;
        list[j].total_ms += (double)(t1 - t0) * 1e-6;
    }
    *out = list;
    *count = n;
    list = NULL;
cleanup:
    free(list);
    return st;
}

ct_status ct_const_buffer(ct_context *ctx, uint64_t key, size_t bytes, cl_mem *out, bool *fresh)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(ctx != NULL && out != NULL && fresh != NULL, CT_ERR_INVALID_ARG,
               "ct_const_buffer: NULL argument");
    *fresh = false;
    for (unsigned i = 0; i < CT_CONST_SLOTS; i++)
        if (ctx->const_mem[i] && ctx->const_key[i] == key && ctx->const_bytes[i] == bytes) {
            *out = ctx->const_mem[i];
            goto cleanup;
        }
    unsigned slot = ctx->const_next;
    cl_mem mem = NULL;
    CT_TRY(ct_buffer_alloc(ctx, bytes ? bytes : 4, &mem));
    /* in-order queue: work already enqueued with the old buffer keeps it alive */
    if (ctx->const_mem[slot])
        ct_buffer_free(ctx, ctx->const_mem[slot], ctx->const_bytes[slot]);
    ctx->const_mem[slot] = mem;
    ctx->const_bytes[slot] = bytes ? bytes : 4;
    ctx->const_key[slot] = key;
    ctx->const_next = (slot + 1) % CT_CONST_SLOTS;
    *out = mem;
    *fresh = true;
cleanup:
    return st;
}

void ct_const_buffer_drop(ct_context *ctx, cl_mem mem)
{
    if (!ctx || !mem)
        return;
    for (unsigned i = 0; i < CT_CONST_SLOTS; i++)
        if (ctx->const_mem[i] == mem) {
            ct_buffer_free(ctx, mem, ctx->const_bytes[i]);
            ctx->const_mem[i] = NULL;
            ctx->const_bytes[i] = 0;
        }
}
