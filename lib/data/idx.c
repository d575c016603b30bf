/* lib/data/idx.c — the IDX format of MNIST and Fashion-MNIST, read strictly.
 *
 * Layout (all integers big-endian):
 *     bytes 0-1   zero
 *     byte  2     data type: 0x08 unsigned byte (the only one accepted here; 0x09 signed
 *                 byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64 are named in
 *                 the error)
 *     byte  3     number of dimensions d (1..4 accepted)
 *     4*d bytes   the dimensions, uint32 each
 *     then        exactly dim0 * ... * dim{d-1} data bytes, row-major, nothing after.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "data/data_internal.h"

/* First allocation for gzip data (its final size is unknown until inflated). */
#define CT_IDX_FIRST_CHUNK ((size_t)1 << 20)

static const char *idx_type_name(unsigned t)
{
    switch (t) {
    case 0x08:
        return "unsigned byte";
    case 0x09:
        return "signed byte";
    case 0x0B:
        return "int16";
    case 0x0C:
        return "int32";
    case 0x0D:
        return "float32";
    case 0x0E:
        return "float64";
    default:
        return "not an IDX type";
    }
}

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void ct_idx_release(ct_idx *idx)
{
    if (idx == NULL)
        return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}

ct_status ct_idx_read(const char *path, uint64_t max_bytes, ct_idx *out)
{
    ct_status st = CT_SUCCESS;
    ct_src src;
    int src_open = 0;
    unsigned char hdr[4 + 4 * CT_IDX_MAX_DIMS];
    uint8_t *data = NULL;
    size_t cap = 0, filled = 0, got = 0;
    size_t ndim = 0, count = 1, hdr_len = 4;
    size_t dims[CT_IDX_MAX_DIMS] = {0};

    CT_REQUIRE(out != NULL, CT_ERR_INVALID_ARG, "ct_idx_read: out is NULL");
    memset(out, 0, sizeof *out);
    CT_TRY(ct_src_open(&src, path));
    src_open = 1;

    CT_TRY(ct_src_read(&src, hdr, 4, &got));
    CT_REQUIRE(got == 4, CT_ERR_FORMAT,
               "%s: truncated IDX header: %s ends after %zu bytes, expected at least 4 (the magic)",
               path, ct_src_what(&src), got);
    CT_REQUIRE(hdr[0] == 0 && hdr[1] == 0, CT_ERR_FORMAT,
               "%s: not an IDX file: magic %02x %02x %02x %02x, expected 00 00 08 0N", path, hdr[0],
               hdr[1], hdr[2], hdr[3]);
    CT_REQUIRE(hdr[2] == 0x08, CT_ERR_FORMAT,
               "%s: IDX data type 0x%02x (%s), expected 0x08 (unsigned byte)", path, hdr[2],
               idx_type_name(hdr[2]));
    ndim = hdr[3];
    CT_REQUIRE(ndim >= 1 && ndim <= CT_IDX_MAX_DIMS, CT_ERR_FORMAT,
               "%s: IDX header declares %zu dimensions, expected 1 to %d", path, ndim,
               CT_IDX_MAX_DIMS);
    hdr_len = 4 + 4 * ndim;

    CT_TRY(ct_src_read(&src, hdr + 4, 4 * ndim, &got));
    CT_REQUIRE(got == 4 * ndim, CT_ERR_FORMAT,
               "%s: truncated IDX header: %s ends after %zu bytes, the header of %zu dimensions "
               "needs %zu",
               path, ct_src_what(&src), 4 + got, ndim, hdr_len);
    for (size_t i = 0; i < ndim; i++) {
        uint32_t d = be32(hdr + 4 + 4 * i);
        CT_REQUIRE(d > 0, CT_ERR_FORMAT, "%s: IDX dimension %zu is 0, expected at least 1", path,
                   i);
        CT_REQUIRE(
            count <= SIZE_MAX / d, CT_ERR_FORMAT,
            "%s: IDX dimensions overflow size_t (the product reaches dimension %zu = %" PRIu32 ")",
            path, i, d);
        dims[i] = d;
        count *= d;
    }
    CT_REQUIRE((uint64_t)count <= max_bytes, CT_ERR_FORMAT,
               "%s: IDX header declares %zu bytes of data, more than the %" PRIu64 "-byte limit",
               path, count, max_bytes);

    /* A raw file's size settles it before anything is allocated. */
    if (!src.gz && src.size_known) {
        uint64_t have = src.file_size - hdr_len;
        CT_REQUIRE(have >= count, CT_ERR_FORMAT,
                   "%s: IDX header declares %zu bytes of data, the file holds only %" PRIu64, path,
                   count, have);
        CT_REQUIRE(have == count, CT_ERR_FORMAT,
                   "%s: %" PRIu64 " trailing bytes after the %zu bytes of data the IDX header "
                   "declares",
                   path, have - count, count);
    }

    /* The buffer grows with the data actually read (at most doubling), never past count. */
    cap = (!src.gz && src.size_known) || count < CT_IDX_FIRST_CHUNK ? count : CT_IDX_FIRST_CHUNK;
    data = malloc(cap);
    CT_REQUIRE(data != NULL, CT_ERR_OUT_OF_MEMORY, "%s: no memory for %zu bytes", path, cap);
    for (;;) {
        CT_TRY(ct_src_read(&src, data + filled, cap - filled, &got));
        filled += got;
        CT_REQUIRE(filled == cap, CT_ERR_FORMAT,
                   "%s: IDX header declares %zu bytes of data, %s holds only %zu", path, count,
                   ct_src_what(&src), filled);
        if (filled == count)
            break;
        size_t grown = cap > count / 2 ? count : 2 * cap;
        uint8_t *bigger = realloc(data, grown);
        CT_REQUIRE(bigger != NULL, CT_ERR_OUT_OF_MEMORY, "%s: no memory for %zu bytes", path,
                   grown);
        data = bigger;
        cap = grown;
    }

    /* Anything after the declared data, including a gzip stream that inflates further (a
     * decompression bomb), stops the read at the first extra byte. Reading to the end also
     * checks the gzip trailer (CRC-32 and length) and detects a truncated one. */
    {
        unsigned char extra;
        CT_TRY(ct_src_read(&src, &extra, 1, &got));
        CT_REQUIRE(got == 0, CT_ERR_FORMAT,
                   "%s: %s continues past the %zu bytes of data the IDX header declares "
                   "(trailing bytes)",
                   path, ct_src_what(&src), count);
    }

    out->ndim = ndim;
    memcpy(out->dims, dims, sizeof dims);
    out->count = count;
    out->data = data;
    data = NULL;
cleanup:
    if (src_open)
        ct_src_close(&src);
    free(data);
    return st;
}
