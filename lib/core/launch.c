/* Setting kernel arguments and enqueueing kernels on the context's queue. */
#include "core/internal.h"

ct_status ct_kernel_setargs(cl_kernel k, const char *name, size_t n, const ct_arg *args)
{
    return ct_kernel_setargs_at(k, name, 0, n, args);
}

ct_status ct_kernel_setargs_at(cl_kernel k, const char *name, cl_uint first, size_t n,
                               const ct_arg *args)
{
    ct_status st = CT_SUCCESS;
    cl_uint idx = first;
    CT_REQUIRE(k != NULL, CT_ERR_INVALID_ARG, "%s: NULL kernel", name);
    for (size_t i = 0; i < n; i++, idx++) {
        const ct_arg *a = &args[i];
        cl_int e = CL_SUCCESS;
        switch (a->kind) {
        case CT_ARG_TENSOR: {
            const ct_tensor *t = a->v.t;
            CT_REQUIRE(t != NULL, CT_ERR_INVALID_ARG, "%s: tensor argument %zu is NULL", name, i);
            CT_REQUIRE(t->offset <= 0xffffffffu, CT_ERR_UNSUPPORTED,
                       "%s: tensor offset %zu does not fit the kernels' 32-bit offsets", name,
                       t->offset);
            cl_uint off = (cl_uint)t->offset;
            e = clSetKernelArg(k, idx, sizeof(cl_mem), &t->mem);
            if (e == CL_SUCCESS)
                e = clSetKernelArg(k, ++idx, sizeof off, &off);
            break;
        }
        case CT_ARG_MEM: e = clSetKernelArg(k, idx, sizeof(cl_mem), &a->v.mem); break;
        case CT_ARG_U32: e = clSetKernelArg(k, idx, sizeof(cl_uint), &a->v.u32); break;
        case CT_ARG_I32: e = clSetKernelArg(k, idx, sizeof(cl_int), &a->v.i32); break;
        case CT_ARG_F32: e = clSetKernelArg(k, idx, sizeof(cl_float), &a->v.f32); break;
        case CT_ARG_U64: e = clSetKernelArg(k, idx, sizeof(cl_ulong), &a->v.u64); break;
        case CT_ARG_LOCAL: e = clSetKernelArg(k, idx, a->v.local_bytes, NULL); break;
        }
        if (e != CL_SUCCESS)
            CT_FAIL((ct_status)e, "clSetKernelArg(%s, parameter %u) failed", name, (unsigned)idx);
    }
cleanup:
    return st;
}

ct_status ct_launch(ct_context *ctx, cl_kernel k, const char *label, cl_uint dims,
                    const size_t *global, const size_t *local)
{
    ct_status st = CT_SUCCESS;
    size_t g[3] = {1, 1, 1};
    cl_event ev = NULL;
    CT_REQUIRE(ctx && k && global && dims >= 1 && dims <= 3, CT_ERR_INVALID_ARG,
               "ct_launch(%s): bad arguments", label ? label : "?");
    for (cl_uint d = 0; d < dims; d++) {
        if (global[d] == 0)
            goto cleanup; /* nothing to do: an empty range is not an error */
        g[d] = global[d];
        if (local && local[d])
            g[d] = (g[d] + local[d] - 1) / local[d] * local[d];
    }
    cl_int e = clEnqueueNDRangeKernel(ctx->queue, k, dims, NULL, g, local, 0, NULL,
                                      CT_PROF_EVENT(ctx, &ev));
    if (e != CL_SUCCESS)
        CT_FAIL((ct_status)e, "clEnqueueNDRangeKernel(%s) failed", label ? label : "?");
    ct_profile_add(ctx, label, ev);
cleanup:
    return st;
}

ct_status ct_run1d(ct_context *ctx, const char *file, const char *name, size_t n, size_t nargs,
                   const ct_arg *args)
{
    ct_status st = CT_SUCCESS;
    cl_kernel k = NULL;
    CT_TRY(ct_kernel_get(ctx, file, name, NULL, &k));
    CT_TRY(ct_kernel_setargs(k, name, nargs, args));
    CT_TRY(ct_launch(ctx, k, name, 1, &n, NULL));
cleanup:
    return st;
}
