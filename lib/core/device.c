/* Enumerating OpenCL devices and choosing one. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

/* From cl_khr_icd: what the ICD loader answers when no vendor is installed. */
#ifndef CL_PLATFORM_NOT_FOUND_KHR
#define CL_PLATFORM_NOT_FOUND_KHR -1001
#endif

static void info_str(cl_device_id d, cl_device_info what, char *buf, size_t size)
{
    if (clGetDeviceInfo(d, what, size, buf, NULL) != CL_SUCCESS)
        snprintf(buf, size, "?");
    buf[size - 1] = '\0';
}

static void fill_info(cl_platform_id p, cl_device_id d, ct_device_info *o)
{
    info_str(d, CL_DEVICE_NAME, o->name, sizeof o->name);
    info_str(d, CL_DEVICE_VENDOR, o->vendor, sizeof o->vendor);
    info_str(d, CL_DRIVER_VERSION, o->driver, sizeof o->driver);
    info_str(d, CL_DEVICE_OPENCL_C_VERSION, o->opencl_c, sizeof o->opencl_c);
    if (clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof o->platform, o->platform, NULL))
        snprintf(o->platform, sizeof o->platform, "?");
    if (clGetPlatformInfo(p, CL_PLATFORM_VERSION, sizeof o->platform_version,
                          o->platform_version, NULL))
        snprintf(o->platform_version, sizeof o->platform_version, "?");
    o->platform[sizeof o->platform - 1] = '\0';
    o->platform_version[sizeof o->platform_version - 1] = '\0';

    cl_device_type type = 0;
    cl_uint cu = 0;
    cl_ulong gmem = 0, amax = 0, lmem = 0;
    size_t wg = 0;
    cl_device_fp_config fp64 = 0;
    char ext[8192] = "";
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gmem, &gmem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof amax, &amax, NULL);
    clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lmem, &lmem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    clGetDeviceInfo(d, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp64, &fp64, NULL);
    clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, sizeof ext - 1, ext, NULL);
    o->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    o->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
    o->compute_units = cu;
    o->global_mem = gmem;
    o->max_alloc = amax;
    o->local_mem = lmem;
    o->max_work_group = wg;
    o->fp64 = fp64 != 0 || strstr(ext, "cl_khr_fp64") != NULL;
    o->fp16 = strstr(ext, "cl_khr_fp16") != NULL;
}

/* Walks every device; calls fn(platform, device, info) for each. */
static ct_status walk(ct_device_info **out, size_t *count, cl_platform_id *want_p,
                      cl_device_id *want_d, size_t want_index)
{
    ct_status st = CT_SUCCESS;
    cl_platform_id *plats = NULL;
    cl_device_id *devs = NULL;
    ct_device_info *list = NULL;
    size_t n = 0, cap = 0;
    cl_uint np = 0;

    cl_int e = clGetPlatformIDs(0, NULL, &np);
    if (e == CL_PLATFORM_NOT_FOUND_KHR || (e == CL_SUCCESS && np == 0))
        CT_FAIL(CT_ERR_NO_DEVICE, "no OpenCL platform found (is an ICD such as "
                                  "pocl-opencl-icd installed? OCL_ICD_VENDORS=%s)",
                getenv("OCL_ICD_VENDORS") ? getenv("OCL_ICD_VENDORS") : "unset");
    CT_CL_ERR(e, "clGetPlatformIDs");
    plats = calloc(np, sizeof *plats);
    CT_REQUIRE(plats != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    CT_CL(clGetPlatformIDs(np, plats, NULL));
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        e = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd);
        if (e == CL_DEVICE_NOT_FOUND || nd == 0)
            continue;
        CT_CL_ERR(e, "clGetDeviceIDs");
        free(devs);
        devs = calloc(nd, sizeof *devs);
        CT_REQUIRE(devs != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
        CT_CL(clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, devs, NULL));
        for (cl_uint d = 0; d < nd; d++) {
            if (want_d && n == want_index) {
                *want_p = plats[p];
                *want_d = devs[d];
                goto cleanup;
            }
            if (out) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 4;
                    ct_device_info *grown = realloc(list, cap * sizeof *list);
                    CT_REQUIRE(grown != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
                    list = grown;
                }
                memset(&list[n], 0, sizeof list[n]);
                fill_info(plats[p], devs[d], &list[n]);
                list[n].index = n;
                list[n].platform_index = p;
            }
            n++;
        }
    }
    if (want_d)
        CT_FAIL(CT_ERR_NOT_FOUND, "device %zu vanished while opening it", want_index);
    if (n == 0)
        CT_FAIL(CT_ERR_NO_DEVICE, "OpenCL platforms exist but none has a device");
cleanup:
    free(plats);
    free(devs);
    if (out) {
        if (st == CT_SUCCESS) {
            *out = list;
            *count = n;
        } else {
            free(list);
        }
    }
    return st;
}

ct_status ct_device_list(ct_device_info **out, size_t *count)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(out != NULL && count != NULL, CT_ERR_INVALID_ARG, "ct_device_list: NULL output");
    *out = NULL;
    *count = 0;
    st = walk(out, count, NULL, NULL, 0);
cleanup:
    return st;
}

void ct_device_list_free(ct_device_info *list)
{
    free(list);
}

static int contains_nocase(const char *hay, const char *needle)
{
    size_t nl = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < nl && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == nl)
            return 1;
    }
    return nl == 0;
}

ct_status ct_device_choose(const char *choice, ct_device_info *out)
{
    ct_status st = CT_SUCCESS;
    ct_device_info *list = NULL;
    size_t n = 0;
    const char *source = "--device";

    CT_REQUIRE(out != NULL, CT_ERR_INVALID_ARG, "ct_device_choose: NULL output");
    if (!choice || !*choice) {
        choice = getenv("CLTRAIN_DEVICE");
        source = "CLTRAIN_DEVICE";
    }
    CT_TRY(ct_device_list(&list, &n));
    if (!choice || !*choice) {
        size_t pick = 0;
        for (size_t i = 0; i < n; i++)
            if (list[i].is_gpu) {
                pick = i;
                break;
            }
        *out = list[pick];
        goto cleanup;
    }
    char *end = NULL;
    unsigned long idx = strtoul(choice, &end, 10);
    if (end != choice && *end == '\0') {
        if (idx < n) {
            *out = list[idx];
            goto cleanup;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            char hay[800];
            snprintf(hay, sizeof hay, "%s %s %s", list[i].name, list[i].vendor, list[i].platform);
            if (contains_nocase(hay, choice)) {
                *out = list[i];
                goto cleanup;
            }
        }
    }
    {
        char avail[2048] = "";
        size_t used = 0;
        for (size_t i = 0; i < n && used < sizeof avail; i++)
            used += (size_t)snprintf(avail + used, sizeof avail - used, "%s%zu: %s (%s)",
                                     i ? "; " : "", i, list[i].name, list[i].platform);
        CT_FAIL(CT_ERR_NOT_FOUND, "%s '%s' matches no OpenCL device; available: %s", source,
                choice, avail);
    }
cleanup:
    free(list);
    return st;
}

/* Used by context.c: the platform and device handles of list entry `index`. */
ct_status ct_device_handles(size_t index, cl_platform_id *p, cl_device_id *d)
{
    return walk(NULL, NULL, p, d, index);
}
