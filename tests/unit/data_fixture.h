/* tests/unit/data_fixture.h — files for the dataset reader tests, made at run time in a
 * fresh temporary directory: IDX headers, gzip streams (zlib, gzip wrapper), CIFAR-10
 * records, and a check that a call failed with the expected status and a message naming
 * the file. Header-only (static functions): each suite includes it once. */
#ifndef CLTRAIN_DATA_FIXTURE_H
#define CLTRAIN_DATA_FIXTURE_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cltrain/cltrain.h"
#include "cltrain/data.h"

static char df_dir[256];

static inline void df_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[1024];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            df_rmtree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static inline void df_setup(void)
{
    snprintf(df_dir, sizeof df_dir, "/tmp/ct_data_test_XXXXXX");
    cr_assert(mkdtemp(df_dir) != NULL, "mkdtemp failed");
}

static inline void df_teardown(void)
{
    df_rmtree(df_dir);
}

/* Path of `name` inside the temporary directory (static storage, 4 rotating slots). */
static inline const char *df_path(const char *name)
{
    static char slots[4][512];
    static int next;
    char *p = slots[next++ & 3];
    snprintf(p, 512, "%s/%s", df_dir, name);
    return p;
}

static inline const char *df_write(const char *name, const void *bytes, size_t len)
{
    const char *p = df_path(name);
    FILE *f = fopen(p, "wb");
    cr_assert(f != NULL, "cannot create %s", p);
    cr_assert(len == 0 || fwrite(bytes, 1, len, f) == len, "cannot write %s", p);
    cr_assert(fclose(f) == 0);
    return p;
}

static inline void df_mkdir(const char *name)
{
    cr_assert(mkdir(df_path(name), 0700) == 0, "mkdir %s", name);
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

/* Deterministic bytes below `mod` (splitmix64). */
static inline void df_fill(uint8_t *x, size_t n, uint64_t seed, unsigned mod)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        x[i] = (uint8_t)((z ^ (z >> 31)) % mod);
    }
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
