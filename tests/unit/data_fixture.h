/* tests/unit/data_fixture.h — files for the dataset reader tests, made at run time in the
 * test's temporary folder (tu_tmpdir_setup in tests/common/testutil.h): IDX headers, gzip
 * streams (zlib, gzip wrapper), CIFAR-10 records, and a check that a call failed with the
 * expected status and a message naming the file. Header-only (static functions): each
 * suite includes it once. */
#ifndef CLTRAIN_DATA_FIXTURE_H
#define CLTRAIN_DATA_FIXTURE_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cltrain/cltrain.h"
#include "cltrain/data.h"
#include "testutil.h"

/* Writes `name` inside the test's temporary folder (tu_tmpdir_setup); returns its path
 * (tu_tmp_path's storage). */
static inline const char *df_write(const char *name, const void *bytes, size_t len)
{
    const char *p = tu_tmp_path(name);
    tu_write_file(p, bytes, len);
    return p;
}

static inline void df_mkdir(const char *name)
{
    cr_assert(mkdir(tu_tmp_path(name), 0700) == 0, "mkdir %s", name);
}

/* One gzip member holding in[0..len), malloc'd; *out_len its size. */
static inline uint8_t *df_gzip(const void *in, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    cr_assert(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    size_t cap = deflateBound(&z, (uLong)len) + 64;
    uint8_t *out = malloc(cap);
    cr_assert(out != NULL);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    cr_assert(deflate(&z, Z_FINISH) == Z_STREAM_END);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* An IDX file image: header for `ndim` dims (dtype 0x08) then `payload_len` bytes of
 * payload. malloc'd; *len its size. */
static inline uint8_t *df_idx(size_t ndim, const uint32_t *dims, const uint8_t *payload,
                              size_t payload_len, size_t *len)
{
    size_t hdr = 4 + 4 * ndim;
    uint8_t *b = malloc(hdr + payload_len + 1);
    cr_assert(b != NULL);
    b[0] = 0;
    b[1] = 0;
    b[2] = 0x08;
    b[3] = (uint8_t)ndim;
    for (size_t i = 0; i < ndim; i++) {
        b[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        b[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        b[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        b[7 + 4 * i] = (uint8_t)dims[i];
    }
    if (payload_len)
        memcpy(b + hdr, payload, payload_len);
    *len = hdr + payload_len;
    return b;
}

/* Deterministic bytes below `mod` (splitmix64, tu_rng). */
static inline void df_fill(uint8_t *x, size_t n, uint64_t seed, unsigned mod)
{
    tu_rng r = {seed};
    for (size_t i = 0; i < n; i++)
        x[i] = (uint8_t)(tu_rng_next(&r) % mod);
}

/* Asserts that `st` is `want` and that the last error names `path` and contains `part`
 * (part may be NULL). `what` describes the case in the failure report. */
static inline void df_expect(ct_status st, ct_status want, const char *path, const char *part,
                             const char *what)
{
    const char *msg = ct_last_error();
    cr_assert(st == want, "%s: got %s, expected %s (message: %s)", what, ct_status_str(st),
              ct_status_str(want), msg);
    cr_assert(strstr(msg, path) != NULL, "%s: message does not name %s: %s", what, path, msg);
    if (part != NULL)
        cr_assert(strstr(msg, part) != NULL, "%s: message lacks \"%s\": %s", what, part, msg);
}

#endif
