/* cltrain/device.h — OpenCL devices, the context and its in-order command queue.
 *
 * A ct_context owns one OpenCL context on one device with one in-order queue: every
 * operation of the library enqueues on it and none waits, except ct_context_finish()
 * and the calls documented as reading a value back to the host.
 */
#ifndef CLTRAIN_DEVICE_H
#define CLTRAIN_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "cltrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_device_info {
    size_t index;          /* position in the flat list over all platforms */
    size_t platform_index; /* position of the platform */
    char name[256];
    char vendor[256];
    char platform[256];         /* platform name */
    char platform_version[256]; /* e.g. "OpenCL 3.0 PoCL 3.1+debian ..." */
    char driver[128];           /* CL_DRIVER_VERSION */
    char opencl_c[128];         /* CL_DEVICE_OPENCL_C_VERSION */
    int is_gpu;
    int is_cpu;
    unsigned compute_units;
    uint64_t global_mem;     /* bytes */
    uint64_t max_alloc;      /* bytes, CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    uint64_t local_mem;      /* bytes */
    size_t max_work_group;   /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    int fp16;
    int fp64;
} ct_device_info;

/* Every device of every platform. *out is allocated; free it with ct_device_list_free().
 * No platform at all is CT_ERR_NO_DEVICE. */
ct_status ct_device_list(ct_device_info **out, size_t *count);
void ct_device_list_free(ct_device_info *list);

/* Picks a device from a choice string: a decimal index into ct_device_list(), or a
 * case-insensitive substring of "name vendor platform". NULL or "" falls back to the
 * CLTRAIN_DEVICE environment variable, then to the first GPU, then to the first device.
 * An unknown choice is CT_ERR_NOT_FOUND and the message lists the devices. */
ct_status ct_device_choose(const char *choice, ct_device_info *out);

typedef struct ct_context ct_context;

enum {
    CT_CONTEXT_PROFILING = 1u << 0 /* record an event for every launch (see ct_profile_*) */
};

/* Creates a context on the chosen device (choice as for ct_device_choose). The caller
 * owns *out and frees it with ct_context_free(), after every tensor made on it. */
ct_status ct_context_create(const char *choice, unsigned flags, ct_context **out);
void ct_context_free(ct_context *ctx);

/* The one synchronisation point: waits until everything enqueued so far has finished. */
ct_status ct_context_finish(ct_context *ctx);

const ct_device_info *ct_context_device(const ct_context *ctx);

/* Bytes of device memory currently allocated through this context. */
uint64_t ct_context_mem_in_use(const ct_context *ctx);

/* Counters of how programs were obtained, to prove the on-disk cache works. */
typedef struct ct_build_stats {
    unsigned from_source;     /* compiled from OpenCL C */
    unsigned from_disk_cache; /* loaded as a binary from the on-disk cache */
    unsigned from_memory;     /* already built in this context */
    double build_seconds;     /* wall time spent building, both kinds */
} ct_build_stats;
ct_build_stats ct_context_build_stats(const ct_context *ctx);

/* Called before a program is compiled from source (not when it comes from a cache), so
 * a tool can say "compiling kernels for <device>, first run only". */
typedef void (*ct_build_notify_fn)(void *user, const char *device, const char *kernel_file);
void ct_context_set_build_notify(ct_context *ctx, ct_build_notify_fn fn, void *user);

/* Profiling (only with CT_CONTEXT_PROFILING): totals per launch label since the last
 * reset. Calls ct_context_finish() first. *out is allocated; free() it. */
typedef struct ct_profile_entry {
    char label[64];
    unsigned launches;
    double total_ms;
} ct_profile_entry;
ct_status ct_profile_collect(ct_context *ctx, ct_profile_entry **out, size_t *count);
void ct_profile_reset(ct_context *ctx);

#ifdef __cplusplus
}
#endif
#endif
