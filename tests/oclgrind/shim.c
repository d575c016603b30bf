/* tests/oclgrind/shim.c — preloaded in front of Oclgrind's runtime by .ci/oclgrind, to
 * work around three bugs of Oclgrind 21.10 (Debian 12) that make --uninitialized report
 * values that are initialized and crash runs that are correct. Each was reduced to a
 * 20-line OpenCL program; the stage's header and the report of issue 7 list them.
 *
 * First: host stores into PART of a buffer. Uninitialized::hostMemoryStore() calls
 * allocAndStoreShadowMemory(), whose ShadowMemory::allocate() throws away the shadow of
 * the WHOLE buffer and allocates a new one of only the stored size; the store itself is
 * then skipped unless it starts at offset 0, and every load past the new size reads as
 * uninitialized. ct_tensor_upload() into a view, a copy between two views of one buffer
 * (a model's activation arena) and ANY clEnqueueFillBuffer (stored pattern by pattern)
 * all do that, after which every kernel read of the buffer is reported. The shim turns
 * each of them into one whole-buffer write: it reads the buffer back (after the wait
 * list), applies the write, fill or copy on the host and writes the whole buffer again
 * (blocking; the event, when asked for, is the write's). What is lost: bytes of such a
 * buffer that nothing ever initialized count as initialized from then on. Scratch,
 * outputs and padding lanes that kernels read before writing are still caught: the host
 * does not write those buffers. Whole-buffer writes and copies pass through; rectangular
 * transfers and maps, which neither cltrain nor CLBlast's GEMM uses, are left alone. */
#define _GNU_SOURCE
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

/* The next definition of `name` (Oclgrind's), looked up once. */
#define REAL(name)                                                                                 \
    static __typeof__(&name) real_##name;                                                          \
    if (!real_##name)                                                                              \
    *(void **)&real_##name = dlsym(RTLD_NEXT, #name)

static size_t mem_size(cl_mem m)
{
    size_t s = 0;
    if (clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof s, &s, NULL) != CL_SUCCESS)
        return 0;
    return s;
}

/* Reads all of `m` into a new host array after the wait list; NULL on failure (*err). */
static unsigned char *read_all(cl_command_queue q, cl_mem m, size_t size, cl_uint nwait,
                               const cl_event *wait, cl_int *err)
{
    unsigned char *h = malloc(size ? size : 1);
    if (!h) {
        *err = CL_OUT_OF_HOST_MEMORY;
        return NULL;
    }
    *err = clEnqueueReadBuffer(q, m, CL_TRUE, 0, size, h, nwait, wait, NULL);
    if (*err != CL_SUCCESS) {
        free(h);
        return NULL;
    }
    return h;
}

/* Writes the patched image back as one whole-buffer store, then frees it. */
static cl_int write_all(cl_command_queue q, cl_mem m, size_t size, unsigned char *h,
                        cl_event *event)
{
    REAL(clEnqueueWriteBuffer);
    cl_int e = real_clEnqueueWriteBuffer(q, m, CL_TRUE, 0, size, h, 0, NULL, event);
    free(h);
    return e;
}

cl_int clEnqueueWriteBuffer(cl_command_queue q, cl_mem m, cl_bool blocking, size_t offset,
                            size_t size, const void *ptr, cl_uint nwait, const cl_event *wait,
                            cl_event *event)
{
    REAL(clEnqueueWriteBuffer);
    const size_t total = mem_size(m);
    if (!ptr || offset + size > total || (offset == 0 && size == total))
        return real_clEnqueueWriteBuffer(q, m, blocking, offset, size, ptr, nwait, wait, event);
    cl_int e;
    unsigned char *h = read_all(q, m, total, nwait, wait, &e);
    if (!h)
        return e;
    memcpy(h + offset, ptr, size);
    return write_all(q, m, total, h, event);
}

cl_int clEnqueueFillBuffer(cl_command_queue q, cl_mem m, const void *pattern, size_t psize,
                           size_t offset, size_t size, cl_uint nwait, const cl_event *wait,
                           cl_event *event)
{
    REAL(clEnqueueFillBuffer);
    const size_t total = mem_size(m);
    if (!pattern || psize == 0 || offset % psize || size % psize || offset + size > total)
        return real_clEnqueueFillBuffer(q, m, pattern, psize, offset, size, nwait, wait, event);
    /* even a fill of the whole buffer: Oclgrind stores the pattern piece by piece, each
     * piece a host store that resets the buffer's shadow to its own size */
    cl_int e;
    unsigned char *h = read_all(q, m, total, nwait, wait, &e);
    if (!h)
        return e;
    for (size_t i = 0; i < size; i += psize)
        memcpy(h + offset + i, pattern, psize);
    return write_all(q, m, total, h, event);
}

cl_int clEnqueueCopyBuffer(cl_command_queue q, cl_mem src, cl_mem dst, size_t src_off,
                           size_t dst_off, size_t size, cl_uint nwait, const cl_event *wait,
                           cl_event *event)
{
    REAL(clEnqueueCopyBuffer);
    const size_t total = mem_size(dst), stotal = mem_size(src);
    if (dst_off + size > total || src_off + size > stotal || (dst_off == 0 && size == total))
        return real_clEnqueueCopyBuffer(q, src, dst, src_off, dst_off, size, nwait, wait, event);
    cl_int e;
    unsigned char *h = read_all(q, dst, total, nwait, wait, &e);
    if (!h)
        return e;
    if (src == dst) { /* between two views of one buffer (a model's activation arena) */
        memmove(h + dst_off, h + src_off, size);
    } else {
        e = clEnqueueReadBuffer(q, src, CL_TRUE, src_off, size, h + dst_off, 0, NULL, NULL);
        if (e != CL_SUCCESS) {
            free(h);
            return e;
        }
    }
    return write_all(q, dst, total, h, event);
}

/* Second problem: the plugin never drops the shadow of a released buffer, and Oclgrind
 * hands the released buffer's number to the next allocation, which then inherits the
 * stale shadow: a never-written new buffer reads as initialized (missed findings), and a
 * larger one, fully written by a kernel, reads as uninitialized past the old size (kernel
 * stores outside the stale shadow are dropped). So the last reference of a buffer is
 * never released: every allocation gets a fresh number, whose shadow the plugin creates
 * poisoned at its first kernel launch, as it should. Tiny shapes keep the kept memory
 * small; it goes with the process (Criterion runs each test in its own). */
cl_int clReleaseMemObject(cl_mem m)
{
    REAL(clReleaseMemObject);
    cl_uint refs = 0;
    if (clGetMemObjectInfo(m, CL_MEM_REFERENCE_COUNT, sizeof refs, &refs, NULL) == CL_SUCCESS &&
        refs == 1)
        return CL_SUCCESS;
    return real_clReleaseMemObject(m);
}

/* Third problem, Oclgrind's and not the plugin's: its runtime keeps the API call stack
 * used in its error messages in a thread_local std::stack, which the C++ runtime destroys
 * before other libraries' static destructors run. CLBlast's program cache is one of
 * those: at exit it releases its programs through clReleaseProgram, which pushes onto
 * the freed stack (valgrind: "Invalid write ... inside a block free'd by
 * std::stack<char const*>::~stack()"), corrupting the heap ("corrupted double-linked
 * list" at exit, depending on the heap's layout). So CLBlast's cache is emptied while the
 * application releases a context, long before exit. `busy` stops the recursion through
 * the releases that clearing the cache makes. */
cl_int clReleaseContext(cl_context c)
{
    REAL(clReleaseContext);
    static int busy;
    int (*clear_cache)(void) = NULL;
    *(void **)&clear_cache = dlsym(RTLD_DEFAULT, "CLBlastClearCache");
    if (clear_cache && !busy) {
        busy = 1;
        (void)clear_cache();
        busy = 0;
    }
    return real_clReleaseContext(c);
}
