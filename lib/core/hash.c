/* 64-bit FNV-1a (declared in core/internal.h): program-cache keys and the checkpoints'
 * weights hash. Its own file so that host-only code (the fuzz targets) can link it without
 * the OpenCL parts of core. */
#include "core/internal.h"

uint64_t ct_hash64(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
