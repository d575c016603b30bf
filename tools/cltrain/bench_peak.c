/* cltrain bench: the FP32 peak micro-kernel (kernels/peak.cl) run through OpenCL. */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_peak.h"
#include "bench_peak_cl.h" /* BENCH_PEAK_CL: kernels/peak.cl as a string (generated) */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The OpenCL handles of entry dev->index of ct_device_list(): platforms in order, each
 * platform's devices in order (how lib/core/device.c numbers them). */
static int find_device(const ct_device_info *dev, cl_device_id *out, char *err, size_t cap)
{
    cl_platform_id plats[32];
    cl_uint np = 0;
    if (clGetPlatformIDs(32, plats, &np) != CL_SUCCESS || np == 0) {
        snprintf(err, cap, "no OpenCL platform");
        return -1;
    }
    size_t base = 0;
    for (cl_uint p = 0; p < np && p <= dev->platform_index; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS)
            nd = 0;
        if (p == dev->platform_index) {
            cl_device_id ids[64];
            size_t local = dev->index - base;
            if (nd > 64 || dev->index < base || local >= nd ||
                clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, ids, NULL) != CL_SUCCESS)
                break;
            char name[256] = "";
            clGetDeviceInfo(ids[local], CL_DEVICE_NAME, sizeof name, name, NULL);
            if (strcmp(name, dev->name) != 0)
                break;
            *out = ids[local];
            return 0;
        }
        base += nd;
    }
    snprintf(err, cap, "device %zu (%s) not found again through OpenCL", dev->index, dev->name);
    return -1;
}

/* One timed launch: device seconds from the profiling event. */
static int launch(cl_command_queue q, cl_kernel k, size_t global, size_t local, double *seconds)
{
    cl_event ev = NULL;
    cl_ulong t0 = 0, t1 = 0;
    int ok =
        clEnqueueNDRangeKernel(q, k, 1, NULL, &global, &local, 0, NULL, &ev) == CL_SUCCESS &&
        clWaitForEvents(1, &ev) == CL_SUCCESS &&
        clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) ==
            CL_SUCCESS &&
        clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) == CL_SUCCESS;
    if (ev)
        clReleaseEvent(ev);
    *seconds = (double)(t1 - t0) * 1e-9;
    return ok && t1 > t0 ? 0 : -1;
}

int bench_peak_run(const ct_device_info *dev, double launch_s, size_t launches,
                   bench_peak_result *out, char *err, size_t errcap)
{
    static const unsigned chain_counts[] = {8, 12};
    int rc = -1;
    cl_int e = CL_SUCCESS;
    cl_device_id d = NULL;
    cl_context ctx = NULL;
    cl_command_queue q = NULL;
    cl_program prog[2] = {NULL, NULL};
    cl_kernel kern = NULL;
    cl_mem buf = NULL;
    double *t = calloc(launches ? launches : 1, sizeof *t);
    const char *src = BENCH_PEAK_CL;

    memset(out, 0, sizeof *out);
    if (!t || launches == 0) {
        snprintf(err, errcap, "out of host memory");
        goto done;
    }
    if (find_device(dev, &d, err, errcap) != 0)
        goto done;
    ctx = clCreateContext(NULL, 1, &d, NULL, NULL, &e);
    if (e == CL_SUCCESS)
        q = clCreateCommandQueue(ctx, d, CL_QUEUE_PROFILING_ENABLE, &e);
    /* a CPU: a few one-item work-groups per core (PoCL runs a work-group on one thread);
     * a GPU: enough 128-item groups to fill every multiprocessor many times over */
    size_t cus = dev->compute_units ? dev->compute_units : 1;
    size_t local = dev->is_gpu ? 128 : 1;
    size_t global = dev->is_gpu ? cus * 2048 : cus * 4;
    if (e == CL_SUCCESS)
        buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE, global * sizeof(float), NULL, &e);
    if (e != CL_SUCCESS) {
        snprintf(err, errcap, "OpenCL context for the peak kernel: error %d", (int)e);
        goto done;
    }
    out->work_items = global;
    out->launches = launches;
    for (size_t v = 0; v < sizeof chain_counts / sizeof chain_counts[0]; v++) {
        unsigned chains = chain_counts[v];
        char opts[64];
        snprintf(opts, sizeof opts, "-DPEAK_ACC=%u", chains);
        prog[v] = clCreateProgramWithSource(ctx, 1, &src, NULL, &e);
        if (e == CL_SUCCESS)
            e = clBuildProgram(prog[v], 1, &d, opts, NULL, NULL);
        if (e != CL_SUCCESS) {
            char log[2048] = "";
            if (prog[v])
                clGetProgramBuildInfo(prog[v], d, CL_PROGRAM_BUILD_LOG, sizeof log, log, NULL);
            snprintf(err, errcap, "building peak.cl (%s): error %d: %s", opts, (int)e, log);
            goto done;
        }
        if (kern)
            clReleaseKernel(kern);
        kern = clCreateKernel(prog[v], "peak_fma", &e);
        cl_uint off = 0, iters = 4096;
        cl_float m = 0.9999999f, c = 1e-6f;
        if (e == CL_SUCCESS)
            e = clSetKernelArg(kern, 0, sizeof buf, &buf) |
                clSetKernelArg(kern, 1, sizeof off, &off) |
                clSetKernelArg(kern, 2, sizeof iters, &iters) |
                clSetKernelArg(kern, 3, sizeof m, &m) | clSetKernelArg(kern, 4, sizeof c, &c);
        if (e != CL_SUCCESS) {
            snprintf(err, errcap, "peak kernel arguments: error %d", (int)e);
            goto done;
        }
        /* calibrate: grow iters until one launch takes about launch_s */
        double s = 0;
        for (int tries = 0; tries < 20; tries++) {
            if (launch(q, kern, global, local, &s) != 0) {
                snprintf(err, errcap, "peak kernel launch failed");
                goto done;
            }
            if (s >= launch_s * 0.5 || iters >= (1u << 30))
                break;
            double grow = s > 0 ? launch_s / s : 16.0;
            grow = grow > 16.0 ? 16.0 : grow < 2.0 ? 2.0 : grow;
            iters = (cl_uint)((double)iters * grow);
            clSetKernelArg(kern, 2, sizeof iters, &iters);
        }
        double flops = 2.0 * 16.0 * chains * (double)iters * (double)global;
        for (size_t r = 0; r < launches; r++)
            if (launch(q, kern, global, local, &t[r]) != 0) {
                snprintf(err, errcap, "peak kernel launch failed");
                goto done;
            }
        qsort(t, launches, sizeof *t, cmp_double);
        double best = flops / t[0] * 1e-9;
        if (best > out->best_gflops) {
            out->best_gflops = best;
            out->median_gflops = flops / t[launches / 2] * 1e-9;
            out->chains = chains;
            out->launch_ms = t[launches / 2] * 1e3;
        }
    }
    rc = 0;
done:
    if (kern)
        clReleaseKernel(kern);
    for (size_t v = 0; v < 2; v++)
        if (prog[v])
            clReleaseProgram(prog[v]);
    if (buf)
        clReleaseMemObject(buf);
    if (q)
        clReleaseCommandQueue(q);
    if (ctx)
        clReleaseContext(ctx);
    free(t);
    return rc;
}
