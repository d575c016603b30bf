/* lib/train/safetensors_write.c — the safetensors writer: what Python's package writes
 * for the same tensors, replaced atomically.
 *
 * Header: entries sorted by dtype alignment (largest first) then name, compact JSON with
 * __metadata__ first, padded with spaces to a multiple of 8 bytes. The bytes go to
 * ".NAME.<pid>.<n>.tmp" beside NAME (O_EXCL, mode 0666 less the umask), which is written
 * with plain write() calls (no stdio buffer to flush), fsync'd, closed, renamed over NAME;
 * then the folder is fsync'd so that the rename survives a power cut. Any failure removes
 * the temporary file and leaves NAME as it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "train/st_internal.h"

static atomic_uint tmp_counter;

/* Writes all of buf to fd. Returns 0 or an errno value. */
static int write_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len < CT_ST_IO_CHUNK ? len : CT_ST_IO_CHUNK);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        if (w == 0)
            return EIO;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

typedef struct st_piece {
    const void *p;
    size_t len;
} st_piece;

/* Replaces `path` by the concatenation of the pieces, atomically. */
static ct_status write_atomic(const char *path, const st_piece *pieces, size_t npieces)
{
    ct_status st = CT_SUCCESS;
    char *dir = NULL, *tmp = NULL;
    const char *base;
    int fd = -1, dfd = -1, err;
    bool created = false;

    const char *slash = strrchr(path, '/');
    if (slash) {
        size_t dl = (size_t)(slash - path);
        dir = malloc(dl + 2);
        CT_REQUIRE(dir != NULL, CT_ERR_OUT_OF_MEMORY, "writing %s: out of memory", path);
        memcpy(dir, path, dl ? dl : 1); /* "/x" lives in "/" */
        dir[dl ? dl : 1] = '\0';
        base = slash + 1;
    } else {
        dir = strdup(".");
        CT_REQUIRE(dir != NULL, CT_ERR_OUT_OF_MEMORY, "writing %s: out of memory", path);
        base = path;
    }
    CT_REQUIRE(base[0] != '\0', CT_ERR_INVALID_ARG, "cannot write %s: the path names a folder",
               path);
    size_t tl = strlen(dir) + strlen(base) + 64;
    tmp = malloc(tl);
    CT_REQUIRE(tmp != NULL, CT_ERR_OUT_OF_MEMORY, "writing %s: out of memory", path);
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        unsigned k = atomic_fetch_add(&tmp_counter, 1u);
        snprintf(tmp, tl, "%s/.%s.%ld.%u.tmp", dir, base, (long)getpid(), k);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    CT_REQUIRE(fd >= 0, CT_ERR_IO, "cannot write %s: creating a temporary file in %s: %s", path,
               dir, strerror(errno));
    created = true;
    for (size_t i = 0; i < npieces; i++) {
        if (pieces[i].len == 0)
            continue;
        err = write_all(fd, pieces[i].p, pieces[i].len);
        CT_REQUIRE(err == 0, CT_ERR_IO, "cannot write %s: writing %s: %s", path, tmp,
                   strerror(err));
    }
    CT_REQUIRE(fsync(fd) == 0, CT_ERR_IO, "cannot write %s: fsync of %s: %s", path, tmp,
               strerror(errno));
    err = close(fd) == 0 ? 0 : errno;
    fd = -1;
    CT_REQUIRE(err == 0, CT_ERR_IO, "cannot write %s: closing %s: %s", path, tmp, strerror(err));
    CT_REQUIRE(rename(tmp, path) == 0, CT_ERR_IO, "cannot write %s: renaming %s over it: %s", path,
               tmp, strerror(errno));
    created = false;
    /* Makes the rename itself durable. Some file systems cannot sync a folder; they
     * answer EINVAL, which leaves nothing to do. */
    dfd = open(dir, O_RDONLY | O_CLOEXEC);
    CT_REQUIRE(dfd >= 0, CT_ERR_IO, "wrote %s, but cannot open its folder %s to sync it: %s", path,
               dir, strerror(errno));
    CT_REQUIRE(fsync(dfd) == 0 || errno == EINVAL, CT_ERR_IO,
               "wrote %s, but syncing its folder %s failed: %s", path, dir, strerror(errno));
cleanup:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    if (created)
        unlink(tmp);
    free(tmp);
    free(dir);
    return st;
}

static int write_order(const void *a, const void *b)
{
    const ct_st_tensor *x = *(const ct_st_tensor *const *)a, *y = *(const ct_st_tensor *const *)b;
    if (x->dtype != y->dtype)
        return x->dtype > y->dtype ? -1 : 1; /* larger alignment first */
    return strcmp(x->name, y->name);
}

ct_status ct_st_write_hashed(const char *path, size_t n, const ct_st_tensor *tensors,
                             const char *metadata_json, uint64_t *hash)
{
    ct_status st = CT_SUCCESS;
    json_t *root = NULL, *meta = NULL;
    json_error_t jerr;
    const ct_st_tensor **order = NULL;
    char *header = NULL;
    st_piece *pieces = NULL;
    char sb[160];

    CT_REQUIRE(path != NULL && (tensors != NULL || n == 0), CT_ERR_INVALID_ARG,
               "safetensors_write: NULL argument");
    for (size_t i = 0; i < n; i++) {
        const ct_st_tensor *t = &tensors[i];
        CT_REQUIRE(t->name != NULL, CT_ERR_INVALID_ARG, "writing %s: tensor %zu has no name", path,
                   i);
        size_t nl = strlen(t->name);
        CT_REQUIRE(ct_st_utf8_invalid_at((const unsigned char *)t->name, nl) == nl,
                   CT_ERR_INVALID_ARG, "writing %s: tensor %zu: name is not valid UTF-8", path, i);
        CT_REQUIRE(strcmp(t->name, "__metadata__") != 0, CT_ERR_INVALID_ARG,
                   "writing %s: '__metadata__' is reserved and cannot name a tensor", path);
        CT_REQUIRE((unsigned)t->dtype < CT_ST_DTYPE_COUNT, CT_ERR_INVALID_ARG,
                   "writing %s: tensor '%s': invalid dtype %d", path, t->name, (int)t->dtype);
        CT_REQUIRE(t->shape != NULL || t->ndim == 0, CT_ERR_INVALID_ARG,
                   "writing %s: tensor '%s': shape is NULL", path, t->name);
        uint64_t numel = 1;
        bool zero = false, overflow = false;
        for (size_t d = 0; d < t->ndim; d++) {
            CT_REQUIRE(t->shape[d] <= (uint64_t)INT64_MAX, CT_ERR_INVALID_ARG,
                       "writing %s: tensor '%s': dimension %zu is too large", path, t->name, d);
            if (t->shape[d] == 0)
                zero = true;
            else if (numel > UINT64_MAX / t->shape[d])
                overflow = true;
            else
                numel *= t->shape[d];
        }
        if (zero)
            numel = 0, overflow = false;
        uint64_t eb = ct_st_dtype_bits(t->dtype);
        CT_REQUIRE(
            !overflow && numel <= UINT64_MAX / eb && (numel * eb) % 8 == 0, CT_ERR_INVALID_ARG,
            "writing %s: tensor '%s': shape %s of %s is not a whole number of bytes", path, t->name,
            ct_st_fmt_shape(sb, sizeof sb, t->ndim, t->shape), ct_st_dtype_name(t->dtype));
        CT_REQUIRE(numel * eb / 8 == t->nbytes, CT_ERR_INVALID_ARG,
                   "writing %s: tensor '%s': nbytes is %zu, shape %s of %s needs %" PRIu64, path,
                   t->name, t->nbytes, ct_st_fmt_shape(sb, sizeof sb, t->ndim, t->shape),
                   ct_st_dtype_name(t->dtype), numel * eb / 8);
        CT_REQUIRE(t->data != NULL || t->nbytes == 0, CT_ERR_INVALID_ARG,
                   "writing %s: tensor '%s': data is NULL", path, t->name);
    }

    order = malloc((n ? n : 1) * sizeof *order);
    CT_REQUIRE(order != NULL, CT_ERR_OUT_OF_MEMORY, "writing %s: out of memory", path);
    for (size_t i = 0; i < n; i++)
        order[i] = &tensors[i];
    qsort(order, n, sizeof *order, write_order);

    root = json_object();
    CT_REQUIRE(root != NULL, CT_ERR_OUT_OF_MEMORY, "writing %s: out of memory", path);
    if (metadata_json) {
        meta = json_loads(metadata_json, JSON_REJECT_DUPLICATES, &jerr);
        CT_REQUIRE(meta != NULL, CT_ERR_INVALID_ARG, "writing %s: metadata is not JSON: %s", path,
                   jerr.text);
        CT_REQUIRE(json_is_object(meta), CT_ERR_INVALID_ARG,
                   "writing %s: metadata is %s, expected an object of strings", path,
                   ct_st_json_kind(meta));
        const char *key;
        json_t *v;
        json_object_foreach(meta, key, v)
        {
            CT_REQUIRE(json_is_string(v), CT_ERR_INVALID_ARG,
                       "writing %s: metadata '%s' is %s, expected a string", path, key,
                       ct_st_json_kind(v));
        }
        CT_REQUIRE(json_object_set(root, "__metadata__", meta) == 0, CT_ERR_OUT_OF_MEMORY,
                   "writing %s: out of memory", path);
    }
    uint64_t off = 0;
    for (size_t k = 0; k < n; k++) {
        const ct_st_tensor *t = order[k];
        CT_REQUIRE(json_object_get(root, t->name) == NULL, CT_ERR_INVALID_ARG,
                   "writing %s: two tensors are named '%s'", path, t->name);
        json_t *shape = json_array(), *e = json_object();
        json_t *offs = json_pack("[II]", (json_int_t)off, (json_int_t)(off + t->nbytes));
        bool ok = shape && e && offs;
        for (size_t d = 0; ok && d < t->ndim; d++)
            ok = json_array_append_new(shape, json_integer((json_int_t)t->shape[d])) == 0;
        ok = ok && json_object_set_new(e, "dtype", json_string(ct_st_dtype_name(t->dtype))) == 0;
        ok = ok && json_object_set(e, "shape", shape) == 0;
        ok = ok && json_object_set(e, "data_offsets", offs) == 0;
        ok = ok && json_object_set(root, t->name, e) == 0;
        json_decref(shape);
        json_decref(offs);
        json_decref(e);
        CT_REQUIRE(ok, CT_ERR_OUT_OF_MEMORY, "writing %s: out of memory", path);
        off += t->nbytes;
    }
    header = json_dumps(root, JSON_COMPACT);
    CT_REQUIRE(header != NULL, CT_ERR_OUT_OF_MEMORY, "writing %s: out of memory", path);
    size_t hl = strlen(header), padded = (hl + 7) / 8 * 8;
    CT_REQUIRE(padded <= CT_ST_MAX_HEADER, CT_ERR_INVALID_ARG,
               "writing %s: the header would be %zu bytes, over the format's limit of %u", path,
               padded, CT_ST_MAX_HEADER);
    char *grown = realloc(header, padded + 1);
    CT_REQUIRE(grown != NULL, CT_ERR_OUT_OF_MEMORY, "writing %s: out of memory", path);
    header = grown;
    memset(header + hl, ' ', padded - hl);
    unsigned char lenbytes[8];
    for (int i = 0; i < 8; i++)
        lenbytes[i] = (unsigned char)((uint64_t)padded >> (8 * i));

    pieces = malloc((n + 2) * sizeof *pieces);
    CT_REQUIRE(pieces != NULL, CT_ERR_OUT_OF_MEMORY, "writing %s: out of memory", path);
    pieces[0] = (st_piece){lenbytes, 8};
    pieces[1] = (st_piece){header, padded};
    for (size_t k = 0; k < n; k++)
        pieces[k + 2] = (st_piece){order[k]->data, order[k]->nbytes};
    if (hash) {
        uint64_t h = CT_HASH64_INIT;
        for (size_t k = 0; k < n + 2; k++)
            h = pieces[k].len ? ct_hash64(h, pieces[k].p, pieces[k].len) : h;
        *hash = h;
    }
    CT_TRY(write_atomic(path, pieces, n + 2));
cleanup:
    json_decref(meta);
    json_decref(root);
    free(header);
    free(order);
    free(pieces);
    return st;
}

ct_status ct_safetensors_write(const char *path, size_t n, const ct_st_tensor *tensors,
                               const char *metadata_json)
{
    return ct_st_write_hashed(path, n, tensors, metadata_json, NULL);
}
