/* lib/train/safetensors.c — the safetensors format: the strict reader and the typed
 * getters (the writer is lib/train/safetensors_write.c).
 *
 * Layout (see include/cltrain/checkpoint.h for the full list of what is rejected):
 *     [0, 8)          N, little-endian uint64
 *     [8, 8 + N)      UTF-8 JSON object, space-padded
 *     [8 + N, end)    the data buffer; every tensor's data_offsets index it
 *
 * Reading takes the whole file into one allocation of its real size (fstat), then
 * checks the header against that size before anything else is allocated; the tensors'
 * data pointers point into that allocation. Validation order: length field, UTF-8,
 * JSON, each entry on its own (fields, dtype, shape, offsets, byte count), then the
 * entries together (sorted by begin: no overlap, no gap, nothing after the last).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "train/st_internal.h"

/* ---- dtypes ----------------------------------------------------------------------- */

static const struct {
    const char *name;
    size_t bits;
} st_dtypes[CT_ST_DTYPE_COUNT] = {
    [CT_ST_BOOL] = {"BOOL", 8},       [CT_ST_F4] = {"F4", 4},
    [CT_ST_F6_E2M3] = {"F6_E2M3", 6}, [CT_ST_F6_E3M2] = {"F6_E3M2", 6},
    [CT_ST_U8] = {"U8", 8},           [CT_ST_I8] = {"I8", 8},
    [CT_ST_F8_E5M2] = {"F8_E5M2", 8}, [CT_ST_F8_E4M3] = {"F8_E4M3", 8},
    [CT_ST_F8_E8M0] = {"F8_E8M0", 8}, [CT_ST_I16] = {"I16", 16},
    [CT_ST_U16] = {"U16", 16},        [CT_ST_F16] = {"F16", 16},
    [CT_ST_BF16] = {"BF16", 16},      [CT_ST_I32] = {"I32", 32},
    [CT_ST_U32] = {"U32", 32},        [CT_ST_F32] = {"F32", 32},
    [CT_ST_C64] = {"C64", 64},        [CT_ST_F64] = {"F64", 64},
    [CT_ST_I64] = {"I64", 64},        [CT_ST_U64] = {"U64", 64},
};

const char *ct_st_dtype_name(ct_st_dtype dtype)
{
    return (unsigned)dtype < CT_ST_DTYPE_COUNT ? st_dtypes[dtype].name : "?";
}

size_t ct_st_dtype_bits(ct_st_dtype dtype)
{
    return (unsigned)dtype < CT_ST_DTYPE_COUNT ? st_dtypes[dtype].bits : 0;
}

static int dtype_from_name(const char *s)
{
    for (int i = 0; i < CT_ST_DTYPE_COUNT; i++)
        if (strcmp(s, st_dtypes[i].name) == 0)
            return i;
    return -1;
}

/* ---- small helpers ---------------------------------------------------------------- */

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

size_t ct_st_utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0;
            if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90;
            if (c == 0xF4)
                hi = 0x8F;
        } else {
            return i;
        }
        if (len - i <= n)
            return i;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k <= n; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
        i += n + 1;
    }
    return len;
}

const char *ct_st_fmt_shape(char *buf, size_t cap, size_t ndim, const size_t *shape)
{
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (size_t i = 0; i < ndim && used < cap; i++) {
        if (used + 24 >= cap) {
            snprintf(buf + used, cap - used, "...");
            used = cap;
            break;
        }
        used += (size_t)snprintf(buf + used, cap - used, "%s%zu", i ? ", " : "", shape[i]);
    }
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
    return buf;
}

/* A short printable rendering of a JSON value for messages. */
static const char *fmt_json(char *buf, size_t cap, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) {
        snprintf(buf, cap, "?");
        return buf;
    }
    if (strlen(s) >= cap && cap > 4)
        snprintf(buf, cap, "%.*s...", (int)(cap - 4), s);
    else
        snprintf(buf, cap, "%s", s);
    free(s);
    return buf;
}

const char *ct_st_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* ---- the file object -------------------------------------------------------------- */

typedef struct st_entry {
    ct_st_tensor t;
    uint64_t begin, end;
} st_entry;

typedef struct st_name_ref {
    const char *name;
    size_t index;
} st_name_ref;

struct ct_safetensors {
    char *path;
    unsigned char *bytes; /* the whole file */
    size_t len;
    uint64_t hash;
    st_entry *e; /* sorted by data offset */
    size_t n;
    st_name_ref *by_name; /* sorted by name */
    char **meta;          /* key0, value0, key1, value1, ... (malloc'd each) */
    size_t nmeta;
};

void ct_safetensors_free(ct_safetensors *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free((void *)f->e[i].t.name);
        free((void *)f->e[i].t.shape);
    }
    for (size_t i = 0; i < 2 * f->nmeta; i++)
        free(f->meta[i]);
    free(f->meta);
    free(f->e);
    free(f->by_name);
    free(f->bytes);
    free(f->path);
    free(f);
}

static int entry_cmp(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->t.name, y->t.name);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const st_name_ref *)a)->name, ((const st_name_ref *)b)->name);
}

/* Parses one tensor entry `name: v` into *e. */
static ct_status parse_entry(const char *label, const char *name, json_t *v, st_entry *e)
{
    ct_status st = CT_SUCCESS;
    char jb[96], sb[160];
    json_t *jdtype = NULL, *jshape = NULL, *joff = NULL;
    size_t *shape = NULL;
    uint64_t numel = 1, bits = 0;
    size_t nd = 0;

    CT_REQUIRE(json_is_object(v), CT_ERR_FORMAT,
               "%s: tensor '%s': entry is %s (%s), expected an object with dtype, shape and "
               "data_offsets",
               label, name, ct_st_json_kind(v), fmt_json(jb, sizeof jb, v));
    const char *key;
    json_t *field;
    json_object_foreach(v, key, field)
    {
        if (strcmp(key, "dtype") == 0)
            jdtype = field;
        else if (strcmp(key, "shape") == 0)
            jshape = field;
        else if (strcmp(key, "data_offsets") == 0)
            joff = field;
        else
            CT_FAIL(CT_ERR_FORMAT,
                    "%s: tensor '%s': unknown field '%s' (expected only dtype, shape, "
                    "data_offsets)",
                    label, name, key);
    }
    CT_REQUIRE(jdtype != NULL, CT_ERR_FORMAT, "%s: tensor '%s': missing field 'dtype'", label,
               name);
    CT_REQUIRE(jshape != NULL, CT_ERR_FORMAT, "%s: tensor '%s': missing field 'shape'", label,
               name);
    CT_REQUIRE(joff != NULL, CT_ERR_FORMAT, "%s: tensor '%s': missing field 'data_offsets'", label,
               name);

    CT_REQUIRE(json_is_string(jdtype), CT_ERR_FORMAT,
               "%s: tensor '%s': dtype is %s (%s), expected a string such as \"F32\"", label, name,
               ct_st_json_kind(jdtype), fmt_json(jb, sizeof jb, jdtype));
    int dt = dtype_from_name(json_string_value(jdtype));
    CT_REQUIRE(dt >= 0, CT_ERR_FORMAT,
               "%s: tensor '%s': unknown dtype %s (expected one of BOOL, U8, I8, I16, U16, "
               "I32, U32, I64, U64, F16, BF16, F32, F64, C64, F8_E5M2, F8_E4M3, F8_E8M0, F4, "
               "F6_E2M3, F6_E3M2)",
               label, name, fmt_json(jb, sizeof jb, jdtype));

    CT_REQUIRE(json_is_array(jshape), CT_ERR_FORMAT,
               "%s: tensor '%s': shape is %s (%s), expected an array of integers >= 0", label, name,
               ct_st_json_kind(jshape), fmt_json(jb, sizeof jb, jshape));
    nd = json_array_size(jshape);
    if (nd > 0) {
        shape = malloc(nd * sizeof *shape);
        CT_REQUIRE(shape != NULL, CT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
    }
    bool overflow = false;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(jshape, i);
        CT_REQUIRE(json_is_integer(d) && json_integer_value(d) >= 0, CT_ERR_FORMAT,
                   "%s: tensor '%s': shape element %zu is %s, expected an integer >= 0 (shape "
                   "%s)",
                   label, name, i, fmt_json(jb, sizeof jb, d), fmt_json(sb, sizeof sb, jshape));
        uint64_t dim = (uint64_t)json_integer_value(d);
        CT_REQUIRE(dim <= SIZE_MAX, CT_ERR_FORMAT,
                   "%s: tensor '%s': dimension %" PRIu64 " does not fit this machine's size_t",
                   label, name, dim);
        shape[i] = (size_t)dim;
        if (dim != 0 && numel > UINT64_MAX / dim)
            overflow = true;
        else
            numel *= dim;
    }
    /* A zero dimension makes the product 0 however large the others are. */
    for (size_t i = 0; i < nd; i++)
        if (shape[i] == 0)
            overflow = false, numel = 0;
    uint64_t eb = st_dtypes[dt].bits;
    CT_REQUIRE(!overflow && numel <= UINT64_MAX / eb, CT_ERR_FORMAT,
               "%s: tensor '%s': shape %s times %" PRIu64 " bits per %s element overflows 64 "
               "bits",
               label, name, ct_st_fmt_shape(sb, sizeof sb, nd, shape), eb, st_dtypes[dt].name);
    bits = numel * eb;
    CT_REQUIRE(bits % 8 == 0, CT_ERR_FORMAT,
               "%s: tensor '%s': %" PRIu64 " %s elements of %" PRIu64 " bits do not fill whole "
               "bytes",
               label, name, numel, st_dtypes[dt].name, eb);

    CT_REQUIRE(json_is_array(joff) && json_array_size(joff) == 2, CT_ERR_FORMAT,
               "%s: tensor '%s': data_offsets is %s, expected [begin, end]", label, name,
               fmt_json(jb, sizeof jb, joff));
    json_t *jb0 = json_array_get(joff, 0), *jb1 = json_array_get(joff, 1);
    CT_REQUIRE(json_is_integer(jb0) && json_is_integer(jb1), CT_ERR_FORMAT,
               "%s: tensor '%s': data_offsets %s are not two integers", label, name,
               fmt_json(jb, sizeof jb, joff));
    CT_REQUIRE(json_integer_value(jb0) >= 0 && json_integer_value(jb1) >= 0, CT_ERR_FORMAT,
               "%s: tensor '%s': data_offsets %s are negative, expected integers >= 0", label, name,
               fmt_json(jb, sizeof jb, joff));
    e->begin = (uint64_t)json_integer_value(jb0);
    e->end = (uint64_t)json_integer_value(jb1);
    CT_REQUIRE(e->begin <= e->end, CT_ERR_FORMAT,
               "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] are reversed, expected "
               "begin <= end",
               label, name, e->begin, e->end);
    CT_REQUIRE(e->end - e->begin == bits / 8, CT_ERR_FORMAT,
               "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
               " bytes, but shape %s of %s needs %" PRIu64 " bytes",
               label, name, e->begin, e->end, e->end - e->begin,
               ct_st_fmt_shape(sb, sizeof sb, nd, shape), st_dtypes[dt].name, bits / 8);

    e->t.name = strdup(name);
    CT_REQUIRE(e->t.name != NULL, CT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
    e->t.dtype = (ct_st_dtype)dt;
    e->t.ndim = nd;
    e->t.shape = shape;
    e->t.nbytes = (size_t)(bits / 8);
    shape = NULL;
cleanup:
    free(shape);
    return st;
}

static ct_status parse_metadata(ct_safetensors *f, json_t *meta)
{
    ct_status st = CT_SUCCESS;
    char jb[96];
    const char *key;
    json_t *v;
    CT_REQUIRE(json_is_object(meta), CT_ERR_FORMAT,
               "%s: __metadata__ is %s (%s), expected an object of strings", f->path,
               ct_st_json_kind(meta), fmt_json(jb, sizeof jb, meta));
    size_t n = json_object_size(meta);
    f->meta = calloc(2 * n + 1, sizeof *f->meta);
    CT_REQUIRE(f->meta != NULL, CT_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    json_object_foreach(meta, key, v)
    {
        CT_REQUIRE(json_is_string(v), CT_ERR_FORMAT,
                   "%s: __metadata__ entry '%s' is %s (%s), expected a string", f->path, key,
                   ct_st_json_kind(v), fmt_json(jb, sizeof jb, v));
        f->meta[2 * f->nmeta] = strdup(key);
        f->meta[2 * f->nmeta + 1] = strdup(json_string_value(v));
        f->nmeta++;
        CT_REQUIRE(f->meta[2 * f->nmeta - 2] && f->meta[2 * f->nmeta - 1], CT_ERR_OUT_OF_MEMORY,
                   "%s: out of memory", f->path);
    }
cleanup:
    return st;
}

/* Validates f->bytes[0, f->len) and fills the tables. */
static ct_status parse_all(ct_safetensors *f)
{
    ct_status st = CT_SUCCESS;
    json_t *root = NULL;
    json_error_t jerr;
    const char *label = f->path;

    CT_REQUIRE(f->len >= 8, CT_ERR_FORMAT,
               "%s: file is %zu bytes, shorter than the 8-byte header length field", label, f->len);
    uint64_t n = le64(f->bytes);
    CT_REQUIRE(n <= CT_ST_MAX_HEADER, CT_ERR_FORMAT,
               "%s: header length %" PRIu64 " exceeds the format's limit of %u bytes", label, n,
               CT_ST_MAX_HEADER);
    CT_REQUIRE(n <= f->len - 8, CT_ERR_FORMAT,
               "%s: header length %" PRIu64 " runs past the end of the file (%zu bytes follow "
               "the length field)",
               label, n, f->len - 8);
    const unsigned char *hdr = f->bytes + 8;
    size_t bad = ct_st_utf8_invalid_at(hdr, (size_t)n);
    CT_REQUIRE(bad == (size_t)n, CT_ERR_FORMAT,
               "%s: header is not valid UTF-8: byte 0x%02x at file offset %zu", label, hdr[bad],
               8 + bad);
    CT_REQUIRE(n > 0, CT_ERR_FORMAT, "%s: header length is 0, expected a JSON object", label);
    CT_REQUIRE(hdr[0] == '{', CT_ERR_FORMAT,
               "%s: header starts with byte 0x%02x, expected '{' (a JSON object)", label, hdr[0]);

    root = json_loadb((const char *)hdr, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    CT_REQUIRE(root != NULL, CT_ERR_FORMAT,
               "%s: header is not valid JSON: %s (header byte %d, line %d, column %d)", label,
               jerr.text, jerr.position, jerr.line, jerr.column);
    CT_REQUIRE(json_is_object(root), CT_ERR_FORMAT, "%s: header is %s, expected a JSON object",
               label, ct_st_json_kind(root));

    size_t count = json_object_size(root);
    f->e = calloc(count ? count : 1, sizeof *f->e);
    CT_REQUIRE(f->e != NULL, CT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "__metadata__") == 0) {
            CT_TRY(parse_metadata(f, v));
            continue;
        }
        CT_TRY(parse_entry(label, key, v, &f->e[f->n]));
        f->n++;
    }

    /* The ranges, sorted by begin, must tile [0, data_len) exactly. */
    uint64_t data_len = f->len - 8 - n;
    qsort(f->e, f->n, sizeof *f->e, entry_cmp);
    uint64_t at = 0;
    for (size_t i = 0; i < f->n; i++) {
        const st_entry *e = &f->e[i];
        const char *prev = i ? f->e[i - 1].t.name : NULL;
        CT_REQUIRE(e->begin >= at, CT_ERR_FORMAT,
                   "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] overlap tensor "
                   "'%s', which ends at %" PRIu64 " (expected begin = %" PRIu64 ")",
                   label, e->t.name, e->begin, e->end, prev ? prev : "?", at, at);
        CT_REQUIRE(e->begin == at, CT_ERR_FORMAT,
                   "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                   "] leave a gap of %" PRIu64 " bytes after %s%s%s (expected begin = %" PRIu64 ")",
                   label, e->t.name, e->begin, e->end, e->begin - at,
                   prev ? "tensor '" : "the start of the data", prev ? prev : "", prev ? "'" : "",
                   at);
        CT_REQUIRE(e->end <= data_len, CT_ERR_FORMAT,
                   "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] run past the end of "
                   "the file's data (%" PRIu64 " bytes)",
                   label, e->t.name, e->begin, e->end, data_len);
        at = e->end;
    }
    CT_REQUIRE(at == data_len, CT_ERR_FORMAT,
               "%s: %" PRIu64 " trailing bytes after the last tensor (the tensors cover %" PRIu64
               " bytes of the %" PRIu64 "-byte data buffer)",
               label, data_len - at, at, data_len);

    const unsigned char *data = f->bytes + 8 + n;
    for (size_t i = 0; i < f->n; i++)
        f->e[i].t.data = data + f->e[i].begin;

    f->by_name = malloc((f->n ? f->n : 1) * sizeof *f->by_name);
    CT_REQUIRE(f->by_name != NULL, CT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
    for (size_t i = 0; i < f->n; i++)
        f->by_name[i] = (st_name_ref){f->e[i].t.name, i};
    qsort(f->by_name, f->n, sizeof *f->by_name, name_cmp);
cleanup:
    json_decref(root);
    return st;
}

/* Takes ownership of bytes (malloc'd) in every case. */
static ct_status st_open(unsigned char *bytes, size_t len, const char *label, ct_safetensors **out)
{
    ct_status st = CT_SUCCESS;
    ct_safetensors *f = calloc(1, sizeof *f);
    if (!f) {
        free(bytes);
        return ct_error_set(CT_ERR_OUT_OF_MEMORY, __FILE__, __LINE__, "%s: out of memory", label);
    }
    f->bytes = bytes;
    f->len = len;
    f->path = strdup(label);
    CT_REQUIRE(f->path != NULL, CT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
    f->hash = ct_hash64(CT_HASH64_INIT, bytes, len);
    CT_TRY(parse_all(f));
    *out = f;
    f = NULL;
cleanup:
    ct_safetensors_free(f);
    return st;
}

ct_status ct_safetensors_parse(const void *bytes, size_t len, const char *label,
                               ct_safetensors **out)
{
    ct_status st = CT_SUCCESS;
    unsigned char *copy = NULL;
    CT_REQUIRE(out != NULL && (bytes != NULL || len == 0), CT_ERR_INVALID_ARG,
               "safetensors_parse: NULL argument");
    *out = NULL;
    if (!label)
        label = "<memory>";
    copy = malloc(len ? len : 1);
    CT_REQUIRE(copy != NULL, CT_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes", label, len);
    if (len)
        memcpy(copy, bytes, len);
    st = st_open(copy, len, label, out);
    copy = NULL;
cleanup:
    free(copy);
    return st;
}

ct_status ct_safetensors_read(const char *path, ct_safetensors **out)
{
    ct_status st = CT_SUCCESS;
    unsigned char *bytes = NULL;
    int fd = -1;
    struct stat sb;
    CT_REQUIRE(path != NULL && out != NULL, CT_ERR_INVALID_ARG, "safetensors_read: NULL argument");
    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    CT_REQUIRE(fd >= 0, CT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    CT_REQUIRE(fstat(fd, &sb) == 0, CT_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    CT_REQUIRE(S_ISREG(sb.st_mode), CT_ERR_IO, "%s is not a regular file", path);
    CT_REQUIRE(sb.st_size >= 0 && (uint64_t)sb.st_size <= SIZE_MAX - 1, CT_ERR_OUT_OF_MEMORY,
               "%s: %lld bytes do not fit in memory", path, (long long)sb.st_size);
    size_t len = (size_t)sb.st_size, got = 0;
    bytes = malloc(len ? len : 1);
    CT_REQUIRE(bytes != NULL, CT_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes", path, len);
    while (got < len) {
        size_t want = len - got < CT_ST_IO_CHUNK ? len - got : CT_ST_IO_CHUNK;
        ssize_t r = read(fd, bytes + got, want);
        if (r < 0 && errno == EINTR)
            continue;
        CT_REQUIRE(r >= 0, CT_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        CT_REQUIRE(r > 0, CT_ERR_IO, "%s shrank from %zu to %zu bytes while being read", path, len,
                   got);
        got += (size_t)r;
    }
    close(fd);
    fd = -1;
    st = st_open(bytes, len, path, out);
    bytes = NULL;
cleanup:
    if (fd >= 0)
        close(fd);
    free(bytes);
    return st;
}

const char *ct_safetensors_path(const ct_safetensors *f)
{
    return f ? f->path : NULL;
}

size_t ct_safetensors_count(const ct_safetensors *f)
{
    return f ? f->n : 0;
}

const ct_st_tensor *ct_safetensors_at(const ct_safetensors *f, size_t i)
{
    return f && i < f->n ? &f->e[i].t : NULL;
}

const ct_st_tensor *ct_safetensors_find(const ct_safetensors *f, const char *name)
{
    if (!f || !name)
        return NULL;
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->by_name[mid].name);
        if (c == 0)
            return &f->e[f->by_name[mid].index].t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t ct_safetensors_metadata_count(const ct_safetensors *f)
{
    return f ? f->nmeta : 0;
}

ct_status ct_safetensors_metadata_at(const ct_safetensors *f, size_t i, const char **key,
                                     const char **value)
{
    if (!f || i >= f->nmeta)
        return ct_error_set(CT_ERR_INVALID_ARG, __FILE__, __LINE__,
                            "metadata entry %zu does not exist (the file has %zu)", i,
                            f ? f->nmeta : 0);
    if (key)
        *key = f->meta[2 * i];
    if (value)
        *value = f->meta[2 * i + 1];
    return CT_SUCCESS;
}

const char *ct_safetensors_metadata_get(const ct_safetensors *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (size_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[2 * i], key) == 0)
            return f->meta[2 * i + 1];
    return NULL;
}

uint64_t ct_st_file_hash(const ct_safetensors *f)
{
    return f ? f->hash : 0;
}

/* ---- typed getters ---------------------------------------------------------------- */

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        /* Subnormal half: normalise into a float32 normal (all of them fit exactly). */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while ((man & 0x400) == 0);
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3FF) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint64_t load_le(const unsigned char *p, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = bytes; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

typedef enum { GET_F32, GET_F64, GET_I64 } get_kind;

static ct_status get_common(const ct_safetensors *f, const char *name, size_t ndim,
                            const size_t *shape, size_t count, const ct_st_tensor **out)
{
    ct_status st = CT_SUCCESS;
    char a[160], b[160];
    CT_REQUIRE(f != NULL && name != NULL, CT_ERR_INVALID_ARG, "safetensors get: NULL argument");
    const ct_st_tensor *t = ct_safetensors_find(f, name);
    CT_REQUIRE(t != NULL, CT_ERR_NOT_FOUND, "%s: no tensor '%s'", f->path, name);
    if (shape) {
        bool same = t->ndim == ndim;
        for (size_t i = 0; same && i < ndim; i++)
            same = t->shape[i] == shape[i];
        CT_REQUIRE(same, CT_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", f->path, name,
                   ct_st_fmt_shape(a, sizeof a, t->ndim, t->shape),
                   ct_st_fmt_shape(b, sizeof b, ndim, shape));
    }
    size_t numel = t->nbytes * 8 / st_dtypes[t->dtype].bits;
    CT_REQUIRE(count == numel, CT_ERR_SHAPE,
               "%s: tensor '%s' has %zu elements, the destination holds %zu", f->path, name, numel,
               count);
    *out = t;
cleanup:
    return st;
}

static ct_status get_any(const ct_safetensors *f, const char *name, size_t ndim,
                         const size_t *shape, void *dst, size_t count, get_kind kind)
{
    ct_status st = CT_SUCCESS;
    const ct_st_tensor *t = NULL;
    CT_TRY(get_common(f, name, ndim, shape, count, &t));
    CT_REQUIRE(dst != NULL || count == 0, CT_ERR_INVALID_ARG, "safetensors get: dst is NULL");
    const unsigned char *p = t->data;
    ct_st_dtype dt = t->dtype;
    size_t es = st_dtypes[dt].bits / 8;
    bool is_float = dt == CT_ST_F32 || dt == CT_ST_F16 || dt == CT_ST_BF16 || dt == CT_ST_F64;
    bool is_int = dt == CT_ST_BOOL || dt == CT_ST_U8 || dt == CT_ST_I8 || dt == CT_ST_I16 ||
                  dt == CT_ST_U16 || dt == CT_ST_I32 || dt == CT_ST_U32 || dt == CT_ST_I64 ||
                  dt == CT_ST_U64;
    bool is_signed = dt == CT_ST_I8 || dt == CT_ST_I16 || dt == CT_ST_I32 || dt == CT_ST_I64;
    if (kind == GET_F32)
        CT_REQUIRE(dt == CT_ST_F32 || dt == CT_ST_F16 || dt == CT_ST_BF16, CT_ERR_UNSUPPORTED,
                   "%s: unsupported dtype %s for tensor %s; cltrain reads F32 (F16 and BF16 are "
                   "widened)",
                   f->path, st_dtypes[dt].name, name);
    else if (kind == GET_F64)
        CT_REQUIRE(is_float || (is_int && dt != CT_ST_BOOL), CT_ERR_UNSUPPORTED,
                   "%s: unsupported dtype %s for tensor %s; read as double: F64, F32, F16, BF16 "
                   "and integers",
                   f->path, st_dtypes[dt].name, name);
    else
        CT_REQUIRE(is_int, CT_ERR_UNSUPPORTED,
                   "%s: unsupported dtype %s for tensor %s; read as int64: integer dtypes and "
                   "BOOL",
                   f->path, st_dtypes[dt].name, name);

    for (size_t i = 0; i < count; i++, p += es) {
        uint64_t raw = load_le(p, es);
        double dv = 0;
        float fv = 0;
        int64_t iv = 0;
        if (is_float) {
            if (dt == CT_ST_F32) {
                uint32_t u = (uint32_t)raw;
                memcpy(&fv, &u, 4);
            } else if (dt == CT_ST_F16) {
                fv = f16_to_f32((uint16_t)raw);
            } else if (dt == CT_ST_BF16) {
                uint32_t u = (uint32_t)raw << 16;
                memcpy(&fv, &u, 4);
            }
            if (dt == CT_ST_F64)
                memcpy(&dv, &raw, 8);
            else
                dv = fv;
        } else {
            if (dt == CT_ST_BOOL) {
                iv = raw != 0;
            } else if (is_signed) {
                /* Sign-extend from es bytes. */
                unsigned shift = (unsigned)(64 - 8 * es);
                iv = (int64_t)(raw << shift) >> shift;
            } else {
                CT_REQUIRE(raw <= (uint64_t)INT64_MAX, CT_ERR_UNSUPPORTED,
                           "%s: tensor %s element %zu = %" PRIu64 " does not fit an int64", f->path,
                           name, i, raw);
                iv = (int64_t)raw;
            }
            if (kind == GET_F64) {
                const int64_t lim = (int64_t)1 << 53;
                CT_REQUIRE(iv >= -lim && iv <= lim, CT_ERR_UNSUPPORTED,
                           "%s: tensor %s element %zu = %" PRId64 " is not exact as a double",
                           f->path, name, i, iv);
                dv = (double)iv;
            }
        }
        if (kind == GET_F32)
            ((float *)dst)[i] = fv;
        else if (kind == GET_F64)
            ((double *)dst)[i] = dv;
        else
            ((int64_t *)dst)[i] = iv;
    }
cleanup:
    return st;
}

ct_status ct_safetensors_get_f32(const ct_safetensors *f, const char *name, size_t ndim,
                                 const size_t *shape, float *dst, size_t count)
{
    return get_any(f, name, ndim, shape, dst, count, GET_F32);
}

ct_status ct_safetensors_get_f64(const ct_safetensors *f, const char *name, size_t ndim,
                                 const size_t *shape, double *dst, size_t count)
{
    return get_any(f, name, ndim, shape, dst, count, GET_F64);
}

ct_status ct_safetensors_get_i64(const ct_safetensors *f, const char *name, size_t ndim,
                                 const size_t *shape, int64_t *dst, size_t count)
{
    return get_any(f, name, ndim, shape, dst, count, GET_I64);
}
