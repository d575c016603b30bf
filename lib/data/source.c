/* lib/data/source.c — the decompressed bytes of a raw or gzip file, read through one
 * fixed 64 KiB input buffer, so that nothing a file declares decides how much memory is
 * used. gzip is inflated with zlib (windowBits 15 + 16: gzip wrapper only, CRC-32 and length
 * trailer checked at the end of each member). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/internal.h"
#include "data/data_internal.h"

#define CT_SRC_CHUNK ((size_t)64 * 1024)

/* Moves the unread input to the front of the buffer and fills the rest from the file. */
static ct_status src_refill(ct_src *s)
{
    ct_status st = CT_SUCCESS;
    if (s->in_eof)
        goto cleanup;
    if (s->z.avail_in > 0 && s->z.next_in != s->in)
        memmove(s->in, s->z.next_in, s->z.avail_in);
    s->z.next_in = s->in;
    size_t room = s->in_cap - s->z.avail_in;
    size_t n = fread(s->in + s->z.avail_in, 1, room, s->f);
    s->z.avail_in += (uInt)n;
    if (n < room) {
        CT_REQUIRE(!ferror(s->f), CT_ERR_IO, "reading %s: %s", s->path, strerror(errno));
        s->in_eof = 1;
    }
cleanup:
    return st;
}

ct_status ct_src_open(ct_src *s, const char *path)
{
    ct_status st = CT_SUCCESS;
    struct stat sb;
    memset(s, 0, sizeof *s);
    s->path = path;
    CT_REQUIRE(path != NULL, CT_ERR_INVALID_ARG, "ct_src_open: path is NULL");
    s->f = fopen(path, "rb");
    CT_REQUIRE(s->f != NULL, CT_ERR_IO, "opening %s: %s", path, strerror(errno));
    CT_REQUIRE(fstat(fileno(s->f), &sb) == 0, CT_ERR_IO, "stat %s: %s", path, strerror(errno));
    CT_REQUIRE(!S_ISDIR(sb.st_mode), CT_ERR_IO, "opening %s: is a directory", path);
    if (S_ISREG(sb.st_mode)) {
        s->size_known = 1;
        s->file_size = (uint64_t)sb.st_size;
    }
    s->in_cap = CT_SRC_CHUNK;
    s->in = malloc(s->in_cap);
    CT_REQUIRE(s->in != NULL, CT_ERR_OUT_OF_MEMORY, "reading %s: no memory for a %zu-byte buffer",
               path, s->in_cap);
    s->z.next_in = s->in;
    s->z.avail_in = 0;
    CT_TRY(src_refill(s));
    s->gz = s->z.avail_in >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b;
    if (s->gz) {
        int r = inflateInit2(&s->z, 15 + 16);
        CT_REQUIRE(r == Z_OK, r == Z_MEM_ERROR ? CT_ERR_OUT_OF_MEMORY : CT_ERR_INTERNAL,
                   "reading %s: inflateInit2 failed (%s)", path, zError(r));
        s->z_live = 1;
    }
cleanup:
    if (st != CT_SUCCESS)
        ct_src_close(s);
    return st;
}

void ct_src_close(ct_src *s)
{
    if (s->z_live)
        inflateEnd(&s->z);
    if (s->f)
        fclose(s->f);
    free(s->in);
    s->z_live = 0;
    s->f = NULL;
    s->in = NULL;
}

const char *ct_src_what(const ct_src *s)
{
    return s->gz ? "the decompressed data" : "the file";
}

static ct_status raw_read(ct_src *s, unsigned char *buf, size_t want, size_t *got)
{
    ct_status st = CT_SUCCESS;
    size_t done = 0;
    while (done < want) {
        if (s->z.avail_in > 0) {
            size_t n = want - done < s->z.avail_in ? want - done : s->z.avail_in;
            memcpy(buf + done, s->z.next_in, n);
            s->z.next_in += n;
            s->z.avail_in -= (uInt)n;
            done += n;
            continue;
        }
        if (s->in_eof)
            break;
        if (want - done >= s->in_cap) {
            /* Large reads skip the buffer. */
            size_t room = want - done;
            size_t n = fread(buf + done, 1, room, s->f);
            done += n;
            if (n < room) {
                CT_REQUIRE(!ferror(s->f), CT_ERR_IO, "reading %s: %s", s->path, strerror(errno));
                s->in_eof = 1;
            }
            continue;
        }
        CT_TRY(src_refill(s));
    }
cleanup:
    *got = done;
    return st;
}

static ct_status gz_read(ct_src *s, unsigned char *buf, size_t want, size_t *got)
{
    ct_status st = CT_SUCCESS;
    size_t done = 0;
    while (done < want) {
        if (s->member_end) {
            /* Another member may follow (gunzip concatenates them); anything else is an
             * error rather than silently ignored. */
            if (s->z.avail_in < 2)
                CT_TRY(src_refill(s));
            if (s->z.avail_in == 0)
                break;
            CT_REQUIRE(s->z.avail_in >= 2 && s->z.next_in[0] == 0x1f && s->z.next_in[1] == 0x8b,
                       CT_ERR_FORMAT,
                       "%s: trailing bytes after the gzip stream (found %02x, expected the end "
                       "of the file or another gzip member starting 1f 8b)",
                       s->path, s->z.next_in[0]);
            CT_REQUIRE(inflateReset(&s->z) == Z_OK, CT_ERR_INTERNAL, "%s: inflateReset failed",
                       s->path);
            s->member_end = 0;
        }
        if (s->z.avail_in == 0) {
            CT_TRY(src_refill(s));
            CT_REQUIRE(s->z.avail_in > 0, CT_ERR_FORMAT,
                       "%s: truncated gzip stream: the compressed data ends after %llu "
                       "decompressed bytes, before the end-of-stream marker and checksum",
                       s->path, (unsigned long long)(s->produced + done));
        }
        size_t chunk = want - done > UINT_MAX ? UINT_MAX : want - done;
        s->z.next_out = buf + done;
        s->z.avail_out = (uInt)chunk;
        int r = inflate(&s->z, Z_NO_FLUSH);
        done += chunk - s->z.avail_out;
        if (r == Z_STREAM_END) {
            s->member_end = 1;
        } else if (r == Z_BUF_ERROR) {
            /* No progress without more input: the loop refills or reports truncation. */
            CT_REQUIRE(s->z.avail_in == 0, CT_ERR_INTERNAL, "%s: inflate made no progress",
                       s->path);
        } else if (r == Z_MEM_ERROR) {
            CT_FAIL(CT_ERR_OUT_OF_MEMORY, "%s: inflate: out of memory", s->path);
        } else if (r != Z_OK) {
            CT_FAIL(CT_ERR_FORMAT, "%s: corrupt gzip stream after %llu decompressed bytes (%s)",
                    s->path, (unsigned long long)(s->produced + done),
                    s->z.msg ? s->z.msg : zError(r));
        }
    }
cleanup:
    *got = done;
    return st;
}

ct_status ct_src_read(ct_src *s, void *buf, size_t want, size_t *got)
{
    ct_status st = s->gz ? gz_read(s, buf, want, got) : raw_read(s, buf, want, got);
    s->produced += *got;
    return st;
}
