/* Fault-injection shim, loaded with LD_PRELOAD in front of the OpenCL ICD loader.
 *
 * CT_FAULT_ALLOC=N    the N-th clCreateBuffer (1-based) fails with
 *                     CL_MEM_OBJECT_ALLOCATION_FAILURE
 * CT_FAULT_ENQUEUE=N  the N-th enqueue (kernel launch, buffer read/write/copy/fill)
 *                     fails with CL_OUT_OF_RESOURCES
 * CT_FAULT_BUILD=N    the N-th clBuildProgram fails with CL_BUILD_PROGRAM_FAILURE
 * At exit the shim writes the counts it saw to $CT_FAULT_REPORT (when set), so a driver
 * knows how many points there are to fail. Everything else passes through unchanged. */
#define _GNU_SOURCE
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static long counts[3];
static long limits[3] = {-1, -1, -1};
static int ready;

static void report(void)
{
    const char *path = getenv("CT_FAULT_REPORT");
    if (!path)
        return;
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "alloc %ld\nenqueue %ld\nbuild %ld\n", counts[0], counts[1], counts[2]);
        fclose(f);
    }
}

static void setup(void)
{
    if (ready)
        return;
    ready = 1;
    const char *names[3] = {"CT_FAULT_ALLOC", "CT_FAULT_ENQUEUE", "CT_FAULT_BUILD"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(names[i]);
        if (v && *v)
            limits[i] = strtol(v, NULL, 10);
    }
    atexit(report);
}

/* 1 when this call is the one to fail */
static int hit(int kind)
{
    setup();
    counts[kind]++;
    return counts[kind] == limits[kind];
}

/* The next definition of `name` (the ICD loader's), looked up once. */
#define REAL(name)                                                                         \
    static __typeof__(&name) real_##name;                                                  \
    if (!real_##name)                                                                      \
    *(void **)&real_##name = dlsym(RTLD_NEXT, #name)

cl_mem clCreateBuffer(cl_context c, cl_mem_flags f, size_t size, void *host, cl_int *err)
{
    REAL(clCreateBuffer);
    if (hit(0)) {
        if (err)
            *err = CL_MEM_OBJECT_ALLOCATION_FAILURE;
        return NULL;
    }
    return real_clCreateBuffer(c, f, size, host, err);
}

cl_int clBuildProgram(cl_program p, cl_uint n, const cl_device_id *d, const char *o,
                      void(CL_CALLBACK *cb)(cl_program, void *), void *u)
{
    REAL(clBuildProgram);
    if (hit(2))
        return CL_BUILD_PROGRAM_FAILURE;
    return real_clBuildProgram(p, n, d, o, cb, u);
}

cl_int clEnqueueNDRangeKernel(cl_command_queue q, cl_kernel k, cl_uint dim, const size_t *off,
                              const size_t *g, const size_t *l, cl_uint nw, const cl_event *w,
                              cl_event *e)
{
    REAL(clEnqueueNDRangeKernel);
    if (hit(1))
        return CL_OUT_OF_RESOURCES;
    return real_clEnqueueNDRangeKernel(q, k, dim, off, g, l, nw, w, e);
}

cl_int clEnqueueWriteBuffer(cl_command_queue q, cl_mem m, cl_bool b, size_t off, size_t n,
                            const void *p, cl_uint nw, const cl_event *w, cl_event *e)
{
    REAL(clEnqueueWriteBuffer);
    if (hit(1))
        return CL_OUT_OF_RESOURCES;
    return real_clEnqueueWriteBuffer(q, m, b, off, n, p, nw, w, e);
}

cl_int clEnqueueReadBuffer(cl_command_queue q, cl_mem m, cl_bool b, size_t off, size_t n,
                           void *p, cl_uint nw, const cl_event *w, cl_event *e)
{
    REAL(clEnqueueReadBuffer);
    if (hit(1))
        return CL_OUT_OF_RESOURCES;
    return real_clEnqueueReadBuffer(q, m, b, off, n, p, nw, w, e);
}

cl_int clEnqueueCopyBuffer(cl_command_queue q, cl_mem s, cl_mem d, size_t so, size_t dof,
                           size_t n, cl_uint nw, const cl_event *w, cl_event *e)
{
    REAL(clEnqueueCopyBuffer);
    if (hit(1))
        return CL_OUT_OF_RESOURCES;
    return real_clEnqueueCopyBuffer(q, s, d, so, dof, n, nw, w, e);
}
