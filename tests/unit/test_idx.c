/* tests/unit/test_idx.c — the IDX reader on files generated here: valid raw and gzip files
 * of 1 to 4 dimensions read back byte for byte, and every malformed case rejected with
 * CT_ERR_FORMAT and a message that names the file. The reference is the bytes this test
 * wrote, so comparisons are exact. */
#include "data_fixture.h"

#include "data/data_internal.h"

TestSuite(idx, .init = tu_tmpdir_setup, .fini = tu_tmpdir_teardown);

/* A valid (3, 5, 7) file: 16-byte header + 105 bytes. */
static uint8_t *valid_3d(size_t *len, uint8_t *payload)
{
    static const uint32_t dims[3] = {3, 5, 7};
    df_fill(payload, 105, 11, 256);
    return df_idx(3, dims, payload, 105, len);
}

static void read_ok(const char *path, size_t ndim, const uint32_t *dims, const uint8_t *payload,
                    size_t count)
{
    ct_idx idx;
    ct_status st = ct_idx_read(path, CT_DATA_MAX_BYTES, &idx);
    cr_assert(st == CT_SUCCESS, "%s: %s: %s", path, ct_status_str(st), ct_last_error());
    cr_assert_eq(idx.ndim, ndim);
    cr_assert_eq(idx.count, count);
    for (size_t i = 0; i < ndim; i++)
        cr_assert_eq(idx.dims[i], dims[i], "dim %zu", i);
    cr_assert(memcmp(idx.data, payload, count) == 0, "%s: data differs", path);
    ct_idx_release(&idx);
}

static ct_status try_read(const char *path)
{
    ct_idx idx;
    ct_status st = ct_idx_read(path, CT_DATA_MAX_BYTES, &idx);
    if (st == CT_SUCCESS)
        ct_idx_release(&idx);
    return st;
}

Test(idx, valid_raw_and_gzip_1_to_4_dims)
{
    static const uint32_t dims[4] = {4, 3, 2, 5};
    uint8_t payload[120];
    df_fill(payload, sizeof payload, 3, 256);
    for (size_t nd = 1; nd <= 4; nd++) {
        size_t count = 1, len, gzlen;
        for (size_t i = 0; i < nd; i++)
            count *= dims[i];
        uint8_t *b = df_idx(nd, dims, payload, count, &len);
        read_ok(df_write("raw.idx", b, len), nd, dims, payload, count);
        uint8_t *gz = df_gzip(b, len, &gzlen);
        read_ok(df_write("gz.idx", gz, gzlen), nd, dims, payload, count);
        free(gz);
        free(b);
    }
}

Test(idx, gzip_with_two_members_is_one_stream)
{
    uint8_t payload[105];
    size_t len, g1, g2;
    uint8_t *b = valid_3d(&len, payload);
    uint8_t *a = df_gzip(b, 40, &g1);
    uint8_t *c = df_gzip(b + 40, len - 40, &g2);
    uint8_t *both = malloc(g1 + g2);
    memcpy(both, a, g1);
    memcpy(both + g1, c, g2);
    static const uint32_t dims[3] = {3, 5, 7};
    read_ok(df_write("two.gz", both, g1 + g2), 3, dims, payload, 105);
    free(a);
    free(c);
    free(both);
    free(b);
}

Test(idx, larger_than_the_input_buffer)
{
    /* 300 KB of data crosses the reader's 64 KiB input buffer several times and, for
     * gzip, the growth of the output buffer. */
    static const uint32_t dims[3] = {300, 40, 25};
    size_t count = 300 * 40 * 25, len, gzlen;
    uint8_t *payload = malloc(count);
    df_fill(payload, count, 5, 7); /* small alphabet: compressible but not trivial */
    uint8_t *b = df_idx(3, dims, payload, count, &len);
    read_ok(df_write("big.idx", b, len), 3, dims, payload, count);
    uint8_t *gz = df_gzip(b, len, &gzlen);
    read_ok(df_write("big.idx.gz", gz, gzlen), 3, dims, payload, count);
    free(gz);
    free(b);
    free(payload);
}

Test(idx, wrong_magic_and_dtype)
{
    static const struct {
        uint8_t m[4];
        const char *part;
    } cases[] = {
        {{0x01, 0x00, 0x08, 0x01}, "not an IDX file"},
        {{0x00, 0x01, 0x08, 0x01}, "not an IDX file"},
        {{0x50, 0x4b, 0x03, 0x04}, "not an IDX file"}, /* a zip file */
        {{0x00, 0x00, 0x0D, 0x01}, "0x0d (float32)"},
        {{0x00, 0x00, 0x09, 0x01}, "0x09 (signed byte)"},
        {{0x00, 0x00, 0x0C, 0x01}, "0x0c (int32)"},
        {{0x00, 0x00, 0x07, 0x01}, "expected 0x08"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t b[9];
        memcpy(b, cases[i].m, 4);
        memcpy(b + 4, "\x00\x00\x00\x01\x2a", 5); /* dim 1, one byte of data */
        const char *p = df_write("magic.idx", b, sizeof b);
        df_expect(try_read(p), CT_ERR_FORMAT, p, cases[i].part, "bad magic");
        size_t gzlen;
        uint8_t *gz = df_gzip(b, sizeof b, &gzlen);
        p = df_write("magic.idx.gz", gz, gzlen);
        df_expect(try_read(p), CT_ERR_FORMAT, p, cases[i].part, "bad magic (gzip)");
        free(gz);
    }
}

Test(idx, zero_or_too_many_dimensions)
{
    uint8_t b[4 + 4 * 5 + 1];
    memset(b, 0, sizeof b);
    b[2] = 0x08;
    for (unsigned nd = 0; nd < 256; nd++) {
        if (nd >= 1 && nd <= 4)
            continue;
        b[3] = (uint8_t)nd;
        for (size_t i = 0; i < 5; i++)
            b[7 + 4 * i] = 1; /* every dim 1 */
        b[sizeof b - 1] = 0;
        const char *p = df_write("nd.idx", b, sizeof b);
        df_expect(try_read(p), CT_ERR_FORMAT, p, "dimensions, expected 1 to 4", "ndim");
    }
}

Test(idx, zero_dimension)
{
    static const uint32_t dims[3] = {2, 0, 3};
    size_t len;
    uint8_t *b = df_idx(3, dims, NULL, 0, &len);
    const char *p = df_write("zero.idx", b, len);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "dimension 1 is 0", "zero dim");
    free(b);
}

Test(idx, dimensions_that_overflow_size_t)
{
    /* (2^32-1)^3 > 2^64: the product overflows at the third dimension. The file holds
     * nothing after the header, so the reader must not try to allocate. */
    static const uint32_t dims[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    size_t len;
    uint8_t *b = df_idx(4, dims, NULL, 0, &len);
    const char *p = df_write("overflow.idx", b, len);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "overflow size_t", "overflow");
    size_t gzlen;
    uint8_t *gz = df_gzip(b, len, &gzlen);
    p = df_write("overflow.idx.gz", gz, gzlen);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "overflow size_t", "overflow (gzip)");
    free(gz);
    free(b);
}

Test(idx, declared_size_over_the_limit)
{
    /* 2^32 - 1 bytes declared, 0 present; and a caller limit smaller than a valid file. */
    static const uint32_t huge[2] = {0xFFFFFFFFu, 2};
    size_t len;
    uint8_t *b = df_idx(2, huge, NULL, 0, &len);
    const char *p = df_write("huge.idx", b, len);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "limit", "over CT_DATA_MAX_BYTES");
    free(b);

    uint8_t payload[105];
    b = valid_3d(&len, payload);
    p = df_write("small_limit.idx", b, len);
    ct_idx idx;
    df_expect(ct_idx_read(p, 104, &idx), CT_ERR_FORMAT, p, "104-byte limit", "caller limit");
    cr_assert(ct_idx_read(p, 105, &idx) == CT_SUCCESS, "%s", ct_last_error());
    ct_idx_release(&idx);
    free(b);
}

Test(idx, declared_size_larger_than_the_data)
{
    static const uint32_t dims[3] = {1000, 28, 28}; /* 784000 declared, 784 present */
    uint8_t payload[784];
    size_t len, gzlen;
    df_fill(payload, sizeof payload, 1, 256);
    uint8_t *b = df_idx(3, dims, payload, sizeof payload, &len);
    const char *p = df_write("short.idx", b, len);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "holds only 784", "short raw");
    uint8_t *gz = df_gzip(b, len, &gzlen);
    p = df_write("short.idx.gz", gz, gzlen);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "holds only 784", "short gzip");
    free(gz);
    free(b);
}

Test(idx, trailing_bytes)
{
    uint8_t payload[105];
    size_t len, gzlen;
    uint8_t *b = valid_3d(&len, payload);
    uint8_t *longer = malloc(len + 3);
    memcpy(longer, b, len);
    memcpy(longer + len, "abc", 3);
    const char *p = df_write("trail.idx", longer, len + 3);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "3 trailing bytes", "raw trailing");
    uint8_t *gz = df_gzip(longer, len + 1, &gzlen);
    p = df_write("trail.idx.gz", gz, gzlen);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "continues past the 105 bytes", "gzip trailing");
    free(gz);
    free(longer);
    free(b);
}

Test(idx, truncated_at_every_byte)
{
    /* Every proper prefix of a valid file, raw and as a complete gzip stream of the prefix:
     * inside the magic, inside each dimension, inside the data. */
    uint8_t payload[105];
    size_t len;
    uint8_t *b = valid_3d(&len, payload);
    for (size_t k = 0; k < len; k++) {
        char what[64];
        const char *part = k < 16 ? "truncated IDX header" : "holds only";
        snprintf(what, sizeof what, "raw prefix of %zu bytes", k);
        const char *p = df_write("cut.idx", b, k);
        df_expect(try_read(p), CT_ERR_FORMAT, p, part, what);
        size_t gzlen;
        uint8_t *gz = df_gzip(b, k, &gzlen);
        snprintf(what, sizeof what, "gzip of a prefix of %zu bytes", k);
        p = df_write("cut.idx.gz", gz, gzlen);
        df_expect(try_read(p), CT_ERR_FORMAT, p, part, what);
        free(gz);
    }
    free(b);
}

Test(idx, truncated_gzip_at_every_byte)
{
    /* Every proper prefix of the gzip stream of a valid file: in the gzip header, in the
     * deflate data, in the CRC-32/length trailer. Prefixes of 0 and 1 bytes are not gzip
     * at all (no 1f 8b magic) and fail as IDX headers. */
    uint8_t payload[105];
    size_t len, gzlen;
    uint8_t *b = valid_3d(&len, payload);
    uint8_t *gz = df_gzip(b, len, &gzlen);
    for (size_t k = 0; k < gzlen; k++) {
        char what[64];
        snprintf(what, sizeof what, "gzip stream cut at %zu of %zu bytes", k, gzlen);
        const char *p = df_write("cut.gz", gz, k);
        df_expect(try_read(p), CT_ERR_FORMAT, p, k < 2 ? NULL : "gzip", what);
    }
    const char *p = df_write("whole.gz", gz, gzlen);
    cr_assert(try_read(p) == CT_SUCCESS, "%s", ct_last_error());
    free(gz);
    free(b);
}

Test(idx, gzip_that_inflates_beyond_the_declared_size)
{
    /* A header declaring (1, 28, 28) followed by 64 MiB of zeros: ~64 KB compressed. The
     * compressed stream is then cut short, so a reader that inflated it to the end would
     * report a truncated stream; the expected message proves the read stopped at the
     * first byte past the declared 784. */
    static const uint32_t dims[3] = {1, 28, 28};
    size_t big = (size_t)64 << 20, len, gzlen;
    uint8_t *b = df_idx(3, dims, NULL, 0, &len);
    uint8_t *bomb = calloc(len + big, 1);
    memcpy(bomb, b, len);
    uint8_t *gz = df_gzip(bomb, len + big, &gzlen);
    cr_assert(gzlen > 1000);
    const char *p = df_write("bomb.gz", gz, gzlen - 500);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "continues past the 784 bytes", "gzip bomb");
    p = df_write("bomb_whole.gz", gz, gzlen);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "continues past the 784 bytes", "whole gzip bomb");
    free(gz);
    free(bomb);
    free(b);
}

Test(idx, corrupt_gzip)
{
    uint8_t payload[105];
    size_t len, gzlen;
    uint8_t *b = valid_3d(&len, payload);
    uint8_t *gz = df_gzip(b, len, &gzlen);
    uint8_t *bad = malloc(gzlen + 8);

    /* CRC-32 trailer (bytes gzlen-8..gzlen-5) changed: zlib reports the data check. */
    memcpy(bad, gz, gzlen);
    bad[gzlen - 8] ^= 0xFF;
    const char *p = df_write("crc.gz", bad, gzlen);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "incorrect data check", "bad CRC");

    /* ISIZE trailer changed. */
    memcpy(bad, gz, gzlen);
    bad[gzlen - 1] ^= 0x01;
    p = df_write("isize.gz", bad, gzlen);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "corrupt gzip", "bad length");

    /* Compression method byte not 8 (deflate). */
    memcpy(bad, gz, gzlen);
    bad[2] = 7;
    p = df_write("method.gz", bad, gzlen);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "corrupt gzip", "bad method");

    /* Garbage after a complete gzip member, and a lone 1f after it. */
    memcpy(bad, gz, gzlen);
    memcpy(bad + gzlen, "\0\0\0\0", 4);
    p = df_write("garbage.gz", bad, gzlen + 4);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "trailing bytes after the gzip stream", "garbage");
    bad[gzlen] = 0x1f;
    p = df_write("lone.gz", bad, gzlen + 1);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "trailing bytes after the gzip stream", "lone 1f");

    /* Every byte of the deflate data flipped in turn: never accepted silently (the CRC
     * catches what the decoder does not). */
    for (size_t k = 10; k < gzlen - 8; k++) {
        memcpy(bad, gz, gzlen);
        bad[k] ^= 0x55;
        p = df_write("flip.gz", bad, gzlen);
        char what[48];
        snprintf(what, sizeof what, "byte %zu flipped", k);
        cr_assert(try_read(p) == CT_ERR_FORMAT, "%s: %s", what, ct_last_error());
        cr_assert(strstr(ct_last_error(), p) != NULL, "%s: %s", what, ct_last_error());
    }
    free(bad);
    free(gz);
    free(b);
}

Test(idx, missing_file_empty_file_directory)
{
    const char *p = tu_tmp_path("absent.idx");
    df_expect(try_read(p), CT_ERR_IO, p, "No such file", "missing");
    p = df_write("empty.idx", "", 0);
    df_expect(try_read(p), CT_ERR_FORMAT, p, "ends after 0 bytes", "empty");
    df_mkdir("adir");
    p = tu_tmp_path("adir");
    df_expect(try_read(p), CT_ERR_IO, p, "directory", "directory");
}
