/* tests/unit/test_safetensors.c — the safetensors reader and writer, host only.
 *
 * References, all independent of the code under test:
 *   - files written by Python's safetensors package (tests/golden/gen_safetensors.py) and
 *     their values as printed by PyTorch (tests/golden/data/safetensors.txt); values are
 *     compared bit for bit (a float32 printed by repr() reads back exactly; F16/BF16 are
 *     widened exactly, so there is no tolerance anywhere in this file);
 *   - the Python files' own bytes: reading one and writing its tensors and metadata back
 *     must reproduce it byte for byte (entry order, compact JSON, space padding);
 *   - malformed files built here by editing a valid header, each of which must be refused
 *     with CT_ERR_FORMAT and a message naming the file and the fault;
 *   - the fuzzing corpus (tests/fuzz/corpus/safetensors), replayed, and a deterministic
 *     byte-flipping loop over a valid file: every input is either read or refused with
 *     CT_ERR_FORMAT;
 *   - atomicity: a write refused by the system (a read-only folder, a file size limit)
 *     leaves the previous file byte-identical and no temporary file; a writer killed with
 *     SIGKILL at random moments of repeated saves always leaves the old or the new file.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cltrain/cltrain.h"
#include "golden.h"
#include "testutil.h"

#define ST_DIR     CT_GOLDEN_DIR "/safetensors"
#define CORPUS_DIR CT_GOLDEN_DIR "/../../fuzz/corpus/safetensors"

/* ---- helpers ---------------------------------------------------------------------- */

TestSuite(safetensors, .init = tu_tmpdir_setup, .fini = tu_tmpdir_teardown);

static ct_safetensors *read_ok(const char *path)
{
    ct_safetensors *f = NULL;
    ct_status st = ct_safetensors_read(path, &f);
    cr_assert(st == CT_SUCCESS, "%s: %s: %s", path, ct_status_str(st), ct_last_error());
    return f;
}

static void assert_shape(const ct_st_tensor *t, size_t ndim, const size_t *shape)
{
    cr_assert_eq(t->ndim, ndim, "%s: ndim %zu, expected %zu", t->name, t->ndim, ndim);
    for (size_t i = 0; i < ndim; i++)
        cr_assert_eq(t->shape[i], shape[i], "%s: dim %zu", t->name, i);
}

/* Bitwise float comparison against a golden record (NaN matches NaN of any payload). */
static void assert_floats_equal(const char *what, const float *got, const tu_gold_tensor *g)
{
    for (size_t i = 0; i < g->numel; i++) {
        float want = (float)g->v[i];
        if (isnan(want)) {
            cr_assert(isnan(got[i]), "%s[%zu] = %a, expected NaN", what, i, (double)got[i]);
            continue;
        }
        cr_assert(memcmp(&got[i], &want, 4) == 0, "%s[%zu] = %a, expected %a", what, i,
                  (double)got[i], (double)want);
    }
}

static void assert_format_error(ct_status st, const char *path, const char *needle,
                                const char *what)
{
    cr_assert(st == CT_ERR_FORMAT, "%s: expected CT_ERR_FORMAT, got %s (%s)", what,
              ct_status_str(st), ct_last_error());
    cr_assert(strstr(ct_last_error(), path) != NULL, "%s: message does not name %s: %s", what, path,
              ct_last_error());
    cr_assert(strstr(ct_last_error(), needle) != NULL, "%s: message lacks '%s': %s", what, needle,
              ct_last_error());
}

/* A file image: 8-byte length (or `len_override` when not ~0), header, `data_len`
 * patterned data bytes. */
static unsigned char *image(const char *header, size_t data_len, uint64_t len_override,
                            size_t *out_len)
{
    size_t hl = strlen(header);
    unsigned char *b = malloc(8 + hl + data_len + 1);
    uint64_t n = len_override != UINT64_MAX ? len_override : hl;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(n >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++)
        b[8 + hl + i] = (unsigned char)(i * 37 + 11);
    *out_len = 8 + hl + data_len;
    return b;
}

/* ---- files written by Python ------------------------------------------------------ */

Test(safetensors, python_f32_ranks_empty_and_metadata)
{
    ct_safetensors *f = read_ok(ST_DIR "/basic.safetensors");
    tu_golden *g = tu_golden_load("safetensors.txt");
    static const char *names[] = {"w", "conv.weight", "b", "scalar", "empty", "empty1d", "cube"};
    cr_assert_eq(ct_safetensors_count(f), 7);
    for (size_t k = 0; k < 7; k++) {
        char gname[64];
        snprintf(gname, sizeof gname, "basic.%s", names[k]);
        const tu_gold_tensor *gt = tu_golden_get(g, gname);
        const ct_st_tensor *t = ct_safetensors_find(f, names[k]);
        cr_assert(t != NULL, "no tensor %s", names[k]);
        cr_assert_eq(t->dtype, CT_ST_F32);
        assert_shape(t, gt->ndim, gt->shape);
        cr_assert_eq(t->nbytes, 4 * gt->numel);
        float *v = malloc(4 * gt->numel + 4);
        cr_assert(ct_safetensors_get_f32(f, names[k], gt->ndim, gt->shape, v, gt->numel) ==
                      CT_SUCCESS,
                  "%s", ct_last_error());
        assert_floats_equal(gname, v, gt);
        free(v);
    }
    /* rank 0 is one element; an empty tensor has no bytes */
    cr_assert_eq(ct_safetensors_find(f, "scalar")->ndim, 0);
    cr_assert_eq(ct_safetensors_find(f, "scalar")->nbytes, 4);
    cr_assert_eq(ct_safetensors_find(f, "empty")->nbytes, 0);
    cr_assert_null(ct_safetensors_find(f, "nope"));
    cr_assert_null(ct_safetensors_find(f, "__metadata__"));

    cr_assert_eq(ct_safetensors_metadata_count(f), 2);
    cr_assert_str_eq(ct_safetensors_metadata_get(f, "format"), "pt");
    cr_assert_str_eq(ct_safetensors_metadata_get(f, "note"), "\xc3\xbc"
                                                             "n"
                                                             "\xc3\xaf"
                                                             "c"
                                                             "\xc3\xb6"
                                                             "d"
                                                             "\xc3\xa9"
                                                             " \xe2\x9c\x93");
    cr_assert_null(ct_safetensors_metadata_get(f, "missing"));

    /* tensors come in data order: each begins where the previous ends */
    const unsigned char *end = NULL;
    for (size_t i = 0; i < ct_safetensors_count(f); i++) {
        const ct_st_tensor *t = ct_safetensors_at(f, i);
        if (end)
            cr_assert(t->data == end, "tensor %s is not contiguous with the previous", t->name);
        end = (const unsigned char *)t->data + t->nbytes;
    }
    tu_golden_free(g);
    ct_safetensors_free(f);
}

Test(safetensors, getters_name_file_shape_and_count_errors)
{
    const char *path = ST_DIR "/basic.safetensors";
    ct_safetensors *f = read_ok(path);
    float v[12];
    ct_status st = ct_safetensors_get_f32(f, "w", 2, (size_t[]){4, 3}, v, 12);
    cr_assert_eq(st, CT_ERR_SHAPE, "%s", ct_last_error());
    cr_assert(strstr(ct_last_error(), path) && strstr(ct_last_error(), "[3, 4]") &&
                  strstr(ct_last_error(), "[4, 3]"),
              "%s", ct_last_error());
    cr_assert_eq(ct_safetensors_get_f32(f, "w", 0, NULL, v, 11), CT_ERR_SHAPE);
    st = ct_safetensors_get_f32(f, "absent", 0, NULL, v, 1);
    cr_assert_eq(st, CT_ERR_NOT_FOUND);
    cr_assert(strstr(ct_last_error(), "absent") && strstr(ct_last_error(), path), "%s",
              ct_last_error());
    /* shape NULL: only the count is checked */
    cr_assert_eq(ct_safetensors_get_f32(f, "w", 0, NULL, v, 12), CT_SUCCESS);
    ct_safetensors_free(f);
}

Test(safetensors, python_dtypes_widened_or_refused)
{
    const char *path = ST_DIR "/dtypes.safetensors";
    ct_safetensors *f = read_ok(path);
    tu_golden *g = tu_golden_load("safetensors.txt");
    float h[12], bf[14];
    cr_assert_eq(ct_safetensors_find(f, "h")->dtype, CT_ST_F16);
    cr_assert_eq(ct_safetensors_find(f, "bf")->dtype, CT_ST_BF16);
    cr_assert_eq(ct_safetensors_get_f32(f, "h", 1, (size_t[]){12}, h, 12), CT_SUCCESS, "%s",
                 ct_last_error());
    assert_floats_equal("h", h, tu_golden_get(g, "dtypes.h"));
    cr_assert_eq(ct_safetensors_get_f32(f, "bf", 2, (size_t[]){2, 7}, bf, 14), CT_SUCCESS);
    assert_floats_equal("bf", bf, tu_golden_get(g, "dtypes.bf"));
    /* -0 keeps its sign through F16 and BF16 */
    cr_assert(signbit(h[1]) && signbit(bf[1]));

    /* F64 is not widened to float: refused by name */
    float d4[4];
    ct_status st = ct_safetensors_get_f32(f, "d", 1, (size_t[]){4}, d4, 4);
    cr_assert_eq(st, CT_ERR_UNSUPPORTED);
    cr_assert(strstr(ct_last_error(), "unsupported dtype F64 for tensor d; cltrain reads F32"),
              "%s", ct_last_error());
    cr_assert(strstr(ct_last_error(), path), "%s", ct_last_error());
    cr_assert_eq(ct_safetensors_get_f32(f, "i64", 1, (size_t[]){4}, d4, 4), CT_ERR_UNSUPPORTED);

    double d[4];
    cr_assert_eq(ct_safetensors_get_f64(f, "d", 1, (size_t[]){4}, d, 4), CT_SUCCESS);
    const tu_gold_tensor *gd = tu_golden_get(g, "dtypes.d");
    for (size_t i = 0; i < 4; i++)
        cr_assert(d[i] == gd->v[i], "d[%zu] = %.17g, expected %.17g", i, d[i], gd->v[i]);
    cr_assert_eq(ct_safetensors_get_f64(f, "i64", 1, (size_t[]){4}, d, 4), CT_SUCCESS);
    cr_assert(d[0] == -7 && d[1] == 0 && d[2] == 123456 && d[3] == 16777216);

    int64_t i64[4], i32[4], i16[2], i8[3], u8[3], fl[3], count;
    cr_assert_eq(ct_safetensors_get_i64(f, "i64", 1, (size_t[]){4}, i64, 4), CT_SUCCESS);
    cr_assert(i64[0] == -7 && i64[1] == 0 && i64[2] == 123456 && i64[3] == 16777216);
    cr_assert_eq(ct_safetensors_get_i64(f, "i32", 2, (size_t[]){2, 2}, i32, 4), CT_SUCCESS);
    cr_assert(i32[0] == INT32_MIN && i32[1] == 5 && i32[2] == 77 && i32[3] == INT32_MAX);
    cr_assert_eq(ct_safetensors_get_i64(f, "i16", 1, (size_t[]){2}, i16, 2), CT_SUCCESS);
    cr_assert(i16[0] == -32768 && i16[1] == 32767);
    cr_assert_eq(ct_safetensors_get_i64(f, "i8", 1, (size_t[]){3}, i8, 3), CT_SUCCESS);
    cr_assert(i8[0] == -128 && i8[1] == 127 && i8[2] == 3);
    cr_assert_eq(ct_safetensors_get_i64(f, "u8", 1, (size_t[]){3}, u8, 3), CT_SUCCESS);
    cr_assert(u8[0] == 0 && u8[1] == 255 && u8[2] == 17);
    cr_assert_eq(ct_safetensors_find(f, "flags")->dtype, CT_ST_BOOL);
    cr_assert_eq(ct_safetensors_get_i64(f, "flags", 1, (size_t[]){3}, fl, 3), CT_SUCCESS);
    cr_assert(fl[0] == 1 && fl[1] == 0 && fl[2] == 1);
    cr_assert_eq(ct_safetensors_get_i64(f, "count", 0, NULL, &count, 1), CT_SUCCESS);
    cr_assert_eq(count, 42);
    cr_assert_eq(ct_safetensors_get_i64(f, "h", 1, (size_t[]){12}, i64, 12), CT_ERR_UNSUPPORTED);
    tu_golden_free(g);
    ct_safetensors_free(f);
}

/* The writer must reproduce the Python package's bytes from the same tensors. */
static void rewrite_identical(const char *name)
{
    char src[512];
    snprintf(src, sizeof src, "%s/%s", ST_DIR, name);
    ct_safetensors *f = read_ok(src);
    size_t n = ct_safetensors_count(f);
    ct_st_tensor *ts = calloc(n + 1, sizeof *ts);
    for (size_t i = 0; i < n; i++)
        ts[i] = *ct_safetensors_at(f, i);
    char *meta = NULL;
    if (ct_safetensors_metadata_count(f) > 0) {
        json_t *o = json_object();
        for (size_t i = 0; i < ct_safetensors_metadata_count(f); i++) {
            const char *k, *v;
            cr_assert_eq(ct_safetensors_metadata_at(f, i, &k, &v), CT_SUCCESS);
            json_object_set_new(o, k, json_string(v));
        }
        meta = json_dumps(o, JSON_COMPACT);
        json_decref(o);
    }
    const char *dst = tu_tmp_path(name);
    cr_assert_eq(ct_safetensors_write(dst, n, ts, meta), CT_SUCCESS, "%s", ct_last_error());
    size_t la, lb;
    unsigned char *a = tu_read_file(src, &la), *b = tu_read_file(dst, &lb);
    cr_assert_eq(lb, la, "%s: %zu bytes written, Python wrote %zu", name, lb, la);
    for (size_t i = 0; i < la; i++)
        cr_assert_eq(a[i], b[i], "%s: byte %zu differs (0x%02x vs Python's 0x%02x)", name, i, b[i],
                     a[i]);
    free(a);
    free(b);
    free(meta);
    free(ts);
    ct_safetensors_free(f);
}

Test(safetensors, writer_reproduces_python_bytes)
{
    rewrite_identical("basic.safetensors");
    rewrite_identical("dtypes.safetensors");
    rewrite_identical("model.safetensors");
}

/* ---- round trips ------------------------------------------------------------------ */

Test(safetensors, roundtrip_every_dtype_rank_and_empty)
{
    enum { NT = 9 };
    static const size_t s0[1] = {0}, s1[1] = {5}, s2[2] = {3, 4}, s5[5] = {2, 1, 2, 1, 3},
                        se[3] = {4, 0, 2}, sf4[1] = {6};
    const struct {
        const char *name;
        ct_st_dtype dt;
        size_t ndim;
        const size_t *shape;
    } spec[NT] = {
        {"a.weight", CT_ST_F32, 2, s2}, {"a.bias", CT_ST_F32, 1, s1}, {"rank0", CT_ST_F32, 0, NULL},
        {"steps", CT_ST_I64, 0, NULL},  {"d", CT_ST_F64, 5, s5},      {"halves", CT_ST_F16, 2, s2},
        {"none", CT_ST_F32, 3, se},     {"z", CT_ST_U8, 1, s0},       {"packed", CT_ST_F4, 1, sf4},
    };
    ct_st_tensor ts[NT];
    unsigned char *bufs[NT];
    uint64_t seed = 12345;
    for (size_t i = 0; i < NT; i++) {
        size_t numel = 1;
        for (size_t d = 0; d < spec[i].ndim; d++)
            numel *= spec[i].shape[d];
        size_t nb = numel * ct_st_dtype_bits(spec[i].dt) / 8;
        bufs[i] = malloc(nb + 1);
        for (size_t b = 0; b < nb; b++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            bufs[i][b] = (unsigned char)(seed >> 56);
        }
        ts[i] = (ct_st_tensor){spec[i].name, spec[i].dt, spec[i].ndim, spec[i].shape, bufs[i], nb};
    }
    const char *p = tu_tmp_path("rt.safetensors");
    cr_assert_eq(
        ct_safetensors_write(p, NT, ts, "{\"epoch\":\"3\",\"name\":\"r\\u00e9sum\\u00e9\"}"),
        CT_SUCCESS, "%s", ct_last_error());
    ct_safetensors *f = read_ok(p);
    cr_assert_eq(ct_safetensors_count(f), NT);
    for (size_t i = 0; i < NT; i++) {
        const ct_st_tensor *t = ct_safetensors_find(f, spec[i].name);
        cr_assert(t != NULL, "%s missing", spec[i].name);
        cr_assert_eq(t->dtype, spec[i].dt);
        assert_shape(t, spec[i].ndim, spec[i].shape);
        cr_assert_eq(t->nbytes, ts[i].nbytes);
        cr_assert(ts[i].nbytes == 0 || memcmp(t->data, bufs[i], ts[i].nbytes) == 0,
                  "%s: bytes differ", spec[i].name);
    }
    cr_assert_str_eq(ct_safetensors_metadata_get(f, "epoch"), "3");
    cr_assert_str_eq(ct_safetensors_metadata_get(f, "name"), "r\xc3\xa9sum\xc3\xa9");
    /* header length is a multiple of 8 and the header ends in spaces, not NULs */
    size_t len;
    unsigned char *raw = tu_read_file(p, &len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | raw[i];
    cr_assert_eq(hl % 8, 0);
    cr_assert(raw[8 + hl - 1] == '}' || raw[8 + hl - 1] == ' ');
    free(raw);
    ct_safetensors_free(f);

    /* without metadata there is no __metadata__ entry; zero tensors is a valid file */
    cr_assert_eq(ct_safetensors_write(p, 0, NULL, NULL), CT_SUCCESS);
    raw = tu_read_file(p, &len);
    cr_assert_eq(len, 16);
    cr_assert(memcmp(raw, "\x08\0\0\0\0\0\0\0{}      ", 16) == 0);
    free(raw);
    f = read_ok(p);
    cr_assert_eq(ct_safetensors_count(f), 0);
    cr_assert_eq(ct_safetensors_metadata_count(f), 0);
    ct_safetensors_free(f);
    for (size_t i = 0; i < NT; i++)
        free(bufs[i]);
}

Test(safetensors, writer_refuses_bad_arguments)
{
    float x[4] = {0};
    const size_t s4[1] = {4}, s3[1] = {3};
    const char *p = tu_tmp_path("bad.safetensors");
    ct_st_tensor dup[2] = {{"x", CT_ST_F32, 1, s4, x, 16}, {"x", CT_ST_I32, 1, s4, x, 16}};
    cr_assert_eq(ct_safetensors_write(p, 2, dup, NULL), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "two tensors are named 'x'"), "%s", ct_last_error());
    ct_st_tensor wrong = {"x", CT_ST_F32, 1, s3, x, 16};
    cr_assert_eq(ct_safetensors_write(p, 1, &wrong, NULL), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "needs 12"), "%s", ct_last_error());
    ct_st_tensor reserved = {"__metadata__", CT_ST_F32, 1, s4, x, 16};
    cr_assert_eq(ct_safetensors_write(p, 1, &reserved, NULL), CT_ERR_INVALID_ARG);
    ct_st_tensor badutf = {"a\xff", CT_ST_F32, 1, s4, x, 16};
    cr_assert_eq(ct_safetensors_write(p, 1, &badutf, NULL), CT_ERR_INVALID_ARG);
    ct_st_tensor ok = {"x", CT_ST_F32, 1, s4, x, 16};
    cr_assert_eq(ct_safetensors_write(p, 1, &ok, "{\"a\":1}"), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_safetensors_write(p, 1, &ok, "[\"a\"]"), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_safetensors_write(p, 1, &ok, "{\"a\":\"1\",\"a\":\"2\"}"), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_safetensors_write(p, 1, &ok, "{"), CT_ERR_INVALID_ARG);
    /* nothing was created by the refused calls */
    cr_assert_eq(access(p, F_OK), -1);
    cr_assert_eq(ct_safetensors_write(p, 1, &ok, "{}"), CT_SUCCESS, "%s", ct_last_error());
}

/* ---- malformed files -------------------------------------------------------------- */

#define T1(off) "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" off "}}"

typedef struct bad_case {
    const char *what;
    const char *header;
    size_t data_len;
    uint64_t len_override; /* UINT64_MAX: the header's real length */
    const char *needle;    /* must appear in the message */
} bad_case;

static const bad_case bad_cases[] = {
    {"header length over 100 MB", T1("[0,8]"), 8, 100000001, "exceeds the format's limit"},
    {"header length 2^64-1", T1("[0,8]"), 8, UINT64_MAX - 1, "exceeds the format's limit"},
    {"header length beyond the file", T1("[0,8]"), 8, 200, "runs past the end of the file"},
    {"header length zero", T1("[0,8]"), 8, 0, "header length is 0"},
    {"invalid UTF-8 (0xff)", "{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
     8, UINT64_MAX, "not valid UTF-8"},
    {"overlong UTF-8", "{\"a\xc0\xaf\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
     8, UINT64_MAX, "not valid UTF-8"},
    {"UTF-16 surrogate in UTF-8", "{\"\xed\xa0\x80\":{}}", 0, UINT64_MAX, "not valid UTF-8"},
    {"truncated UTF-8 sequence", "{\"a\":{}}\xe2\x9c", 0, UINT64_MAX, "not valid UTF-8"},
    {"header not starting with {", " " T1("[0,8]"), 8, UINT64_MAX, "expected '{'"},
    {"header is an array", "[1]", 0, UINT64_MAX, "expected '{'"},
    {"invalid JSON: unclosed", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8,
     UINT64_MAX, "not valid JSON"},
    {"invalid JSON: trailing comma",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", 8, UINT64_MAX,
     "not valid JSON"},
    {"invalid JSON: NUL padding", T1("[0,8]") "\0\0", 8, UINT64_MAX, "not valid JSON"},
    {"integer beyond int64", T1("[0,99999999999999999999]"), 8, UINT64_MAX, "not valid JSON"},
    {"duplicate tensor key",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
     8, UINT64_MAX, "duplicate"},
    {"duplicate field key",
     "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     UINT64_MAX, "duplicate"},
    {"duplicate metadata key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, UINT64_MAX,
     "duplicate"},
    {"negative begin", T1("[-4,4]"), 8, UINT64_MAX, "negative"},
    {"negative end", T1("[0,-8]"), 8, UINT64_MAX, "negative"},
    {"reversed offsets", T1("[8,0]"), 8, UINT64_MAX, "reversed"},
    {"overlapping tensors",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
     12, UINT64_MAX, "tensor 'b': data_offsets [4, 12] overlap tensor 'a'"},
    {"identical ranges",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
     8, UINT64_MAX, "overlap"},
    {"gap between tensors",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
     12, UINT64_MAX, "tensor 'b': data_offsets [8, 12] leave a gap of 4 bytes after tensor 'a'"},
    {"gap at the start", T1("[4,12]"), 12, UINT64_MAX, "gap of 4 bytes after the start"},
    {"trailing bytes", T1("[0,8]"), 12, UINT64_MAX, "4 trailing bytes"},
    {"data past the end", T1("[0,8]"), 4, UINT64_MAX, "run past the end"},
    {"bytes != shape x dtype", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
     8, UINT64_MAX, "shape [3] of F32 needs 12 bytes"},
    {"rank 0 with 8 bytes", "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,8]}}", 8,
     UINT64_MAX, "needs 4 bytes"},
    {"shape product overflows",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,8]}}", 8,
     UINT64_MAX, "overflows 64 bits"},
    {"bytes overflow",
     "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 8,
     UINT64_MAX, "overflows 64 bits"},
    {"product wraps to the byte count",
     "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,0]}}", 0,
     UINT64_MAX, "overflows"},
    {"sub-byte elements", "{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]}}", 1,
     UINT64_MAX, "do not fill whole bytes"},
    {"unknown dtype", "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     UINT64_MAX, "tensor 'a': unknown dtype \"F33\""},
    {"lower-case dtype", "{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     UINT64_MAX, "unknown dtype"},
    {"dtype not a string", "{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     UINT64_MAX, "dtype is an integer"},
    {"shape not an array", "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
     UINT64_MAX, "shape is an integer"},
    {"shape of strings", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
     UINT64_MAX, "shape element 0"},
    {"negative dimension", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
     UINT64_MAX, "expected an integer >= 0"},
    {"real dimension", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8,
     UINT64_MAX, "shape element 0 is 2.0"},
    {"missing dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, UINT64_MAX,
     "tensor 'a': missing field 'dtype'"},
    {"missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, UINT64_MAX,
     "missing field 'shape'"},
    {"missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, UINT64_MAX,
     "missing field 'data_offsets'"},
    {"unknown field", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8,
     UINT64_MAX, "unknown field 'x'"},
    {"one offset", T1("[0]"), 8, UINT64_MAX, "expected [begin, end]"},
    {"three offsets", T1("[0,4,8]"), 8, UINT64_MAX, "expected [begin, end]"},
    {"offsets not integers", T1("[0,8.5]"), 8, UINT64_MAX, "not two integers"},
    {"entry not an object", "{\"a\":[1,2]}", 0, UINT64_MAX, "entry is an array"},
    {"metadata not an object", "{\"__metadata__\":\"x\"}", 0, UINT64_MAX,
     "__metadata__ is a string"},
    {"metadata value not a string", "{\"__metadata__\":{\"k\":1}}", 0, UINT64_MAX,
     "__metadata__ entry 'k' is an integer"},
    {"NUL escape in a name", "{\"a\\u0000b\":{}}", 0, UINT64_MAX, "not valid JSON"},
};

Test(safetensors, every_malformed_case_is_a_format_error_naming_the_file)
{
    size_t ncases = sizeof bad_cases / sizeof bad_cases[0];
    for (size_t i = 0; i < ncases; i++) {
        const bad_case *c = &bad_cases[i];
        size_t len;
        char name[64];
        /* strlen stops at the NUL-padding case's first NUL; count it explicitly */
        unsigned char *b;
        if (strcmp(c->what, "invalid JSON: NUL padding") == 0) {
            const char *h = T1("[0,8]");
            size_t hl = strlen(h) + 2;
            b = calloc(1, 8 + hl + 8);
            for (int k = 0; k < 8; k++)
                b[k] = (unsigned char)((uint64_t)hl >> (8 * k));
            memcpy(b + 8, h, hl - 2);
            len = 8 + hl + 8;
        } else {
            b = image(c->header, c->data_len, c->len_override, &len);
        }
        snprintf(name, sizeof name, "bad%02zu.safetensors", i);
        const char *p = tu_tmp_path(name);
        tu_write_file(p, b, len);
        ct_safetensors *f = NULL;
        ct_status st = ct_safetensors_read(p, &f);
        assert_format_error(st, p, c->needle, c->what);
        cr_assert_null(f, "%s: *out set on failure", c->what);
        /* the same bytes from memory, under a label */
        st = ct_safetensors_parse(b, len, "mem-label", &f);
        assert_format_error(st, "mem-label", c->needle, c->what);
        free(b);
    }
}

Test(safetensors, short_files_and_edge_cases_that_are_valid)
{
    const char *p = tu_tmp_path("short.safetensors");
    for (size_t n = 0; n < 8; n++) {
        tu_write_file(p, "\x10\0\0\0\0\0\0", n);
        ct_safetensors *f = NULL;
        assert_format_error(ct_safetensors_read(p, &f), p, "shorter than the 8-byte", "short");
    }
    /* A huge dimension times 0 is an empty tensor, and valid; so are zero-length tensors
     * sharing an offset with a non-empty one, and whitespace after the JSON. */
    size_t len;
    unsigned char *b =
        image("{\"e\":{\"dtype\":\"F64\",\"shape\":[9223372036854775807,0],"
              "\"data_offsets\":[0,0]},"
              "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}  \n\t ",
              8, UINT64_MAX, &len);
    ct_safetensors *f = NULL;
    cr_assert_eq(ct_safetensors_parse(b, len, "edge", &f), CT_SUCCESS, "%s", ct_last_error());
    cr_assert_eq(ct_safetensors_count(f), 4);
    cr_assert_eq(ct_safetensors_find(f, "e")->nbytes, 0);
    cr_assert_eq(ct_safetensors_find(f, "e")->shape[0], (size_t)INT64_MAX);
    ct_safetensors_free(f);
    free(b);
    /* a folder is not a file */
    cr_assert_eq(ct_safetensors_read(tu_tmpdir(), &f), CT_ERR_IO);
    cr_assert(strstr(ct_last_error(), tu_tmpdir()), "%s", ct_last_error());
    cr_assert_eq(ct_safetensors_read(tu_tmp_path("absent.safetensors"), &f), CT_ERR_IO);
    cr_assert(strstr(ct_last_error(), "absent.safetensors"), "%s", ct_last_error());
}

Test(safetensors, integers_out_of_range_for_the_getters)
{
    /* U64 2^63 does not fit int64; I64 2^53 + 1 is not exact as a double */
    size_t len;
    unsigned char *b = image("{\"u\":{\"dtype\":\"U64\",\"shape\":[],\"data_offsets\":[0,8]},"
                             "\"i\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]}}",
                             16, UINT64_MAX, &len);
    size_t hl = len - 16;
    const uint64_t u = (uint64_t)1 << 63, i = ((uint64_t)1 << 53) + 1;
    for (int k = 0; k < 8; k++) {
        b[hl + k] = (unsigned char)(u >> (8 * k));
        b[hl + 8 + k] = (unsigned char)(i >> (8 * k));
    }
    ct_safetensors *f = NULL;
    cr_assert_eq(ct_safetensors_parse(b, len, "ints", &f), CT_SUCCESS, "%s", ct_last_error());
    int64_t v;
    double d;
    cr_assert_eq(ct_safetensors_get_i64(f, "u", 0, NULL, &v, 1), CT_ERR_UNSUPPORTED);
    cr_assert_eq(ct_safetensors_get_i64(f, "i", 0, NULL, &v, 1), CT_SUCCESS);
    cr_assert_eq(v, (int64_t)i);
    cr_assert_eq(ct_safetensors_get_f64(f, "i", 0, NULL, &d, 1), CT_ERR_UNSUPPORTED);
    cr_assert(strstr(ct_last_error(), "not exact as a double"), "%s", ct_last_error());
    ct_safetensors_free(f);
    free(b);
}

/* ---- robustness: corpus replay and byte flips ------------------------------------- */

static void must_read_or_refuse(const unsigned char *b, size_t len, const char *label)
{
    ct_safetensors *f = NULL;
    ct_status st = ct_safetensors_parse(b, len, label, &f);
    cr_assert(st == CT_SUCCESS || st == CT_ERR_FORMAT, "%s: %s: %s", label, ct_status_str(st),
              ct_last_error());
    if (st != CT_SUCCESS) {
        cr_assert(strstr(ct_last_error(), label), "%s: message does not name it: %s", label,
                  ct_last_error());
        return;
    }
    size_t total = 0;
    for (size_t i = 0; i < ct_safetensors_count(f); i++) {
        const ct_st_tensor *t = ct_safetensors_at(f, i);
        cr_assert(ct_safetensors_find(f, t->name) == t);
        total += t->nbytes;
    }
    cr_assert(total <= len);
    ct_safetensors_free(f);
}

Test(safetensors, fuzz_corpus_replays_cleanly)
{
    DIR *d = opendir(CORPUS_DIR);
    cr_assert(d != NULL, "cannot open %s", CORPUS_DIR);
    struct dirent *e;
    size_t count = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", CORPUS_DIR, e->d_name);
        size_t len;
        unsigned char *b = tu_read_file(p, &len);
        must_read_or_refuse(b, len, e->d_name);
        free(b);
        count++;
    }
    closedir(d);
    cr_assert(count >= 5, "only %zu corpus files in %s", count, CORPUS_DIR);
}

Test(safetensors, random_byte_flips_are_read_or_refused)
{
    size_t len;
    unsigned char *orig = tu_read_file(ST_DIR "/model.safetensors", &len);
    unsigned char *b = malloc(len);
    uint64_t s = 99;
    size_t refused = 0;
    for (int trial = 0; trial < 3000; trial++) {
        memcpy(b, orig, len);
        int flips = 1 + trial % 4;
        for (int k = 0; k < flips; k++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            /* mostly the length field and the header, where the structure is */
            size_t at = (size_t)(s >> 33) % (trial % 5 == 0 ? len : 8 + 400);
            b[at] ^= (unsigned char)(1u << ((s >> 20) & 7));
        }
        ct_safetensors *f = NULL;
        ct_status st = ct_safetensors_parse(b, len, "flip", &f);
        if (st == CT_SUCCESS)
            ct_safetensors_free(f);
        else
            refused++;
        must_read_or_refuse(b, len, "flip");
    }
    cr_log_info("byte flips: %zu of 3000 refused", refused);
    cr_assert(refused > 1000);
    free(b);
    free(orig);
}

/* ---- atomicity -------------------------------------------------------------------- */

static void write_version(const char *p, size_t n, unsigned char fillbyte)
{
    unsigned char *buf = malloc(n);
    memset(buf, fillbyte, n);
    size_t shape[1] = {n};
    ct_st_tensor t = {"blob", CT_ST_U8, 1, shape, buf, n};
    char meta[64];
    snprintf(meta, sizeof meta, "{\"version\":\"%u\"}", fillbyte);
    ct_status st = ct_safetensors_write(p, 1, &t, meta);
    free(buf);
    cr_assert_eq(st, CT_SUCCESS, "%s", ct_last_error());
}

/* Counts the files in the temporary folder other than `keep`; the first one found is named in
 * `first`. */
static size_t stray_files(const char *keep, char *first, size_t cap)
{
    DIR *d = opendir(tu_tmpdir());
    struct dirent *e;
    size_t n = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            strcmp(e->d_name, keep) == 0)
            continue;
        if (n++ == 0 && first)
            snprintf(first, cap, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

/* Runs ct_safetensors_write in a child under a restriction; the child exits with 0 when
 * the write failed with CT_ERR_IO and a message naming the path and `errtext`, with 3 when
 * the restriction cannot be set up here (then false is returned and the case is logged as
 * not run). */
static bool failing_write_in_child(const char *p, int restriction, const char *errtext)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (restriction == 0) {
            /* a read-only folder; root ignores permissions, so act as nobody */
            if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
                _exit(3);
        } else {
            /* the disk fills up: a file size limit makes write() fail with EFBIG */
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {4096, 4096};
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
                _exit(3);
        }
        unsigned char *buf = calloc(1, 1 << 16);
        size_t shape[1] = {1 << 16};
        ct_st_tensor t = {"blob", CT_ST_U8, 1, shape, buf, (size_t)1 << 16};
        ct_status st = ct_safetensors_write(p, 1, &t, NULL);
        const char *msg = ct_last_error();
        if (write(fds[1], msg, strlen(msg)) < 0)
            _exit(4);
        _exit(st == CT_ERR_IO && strstr(msg, p) && strstr(msg, errtext) ? 0 : 1);
    }
    close(fds[1]);
    char msg[4096] = "";
    ssize_t got = 0, r;
    while ((r = read(fds[0], msg + got, sizeof msg - 1 - (size_t)got)) > 0)
        got += r;
    msg[got] = '\0';
    close(fds[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
        cr_log_warn("restriction %d cannot be set up on this machine; case not run", restriction);
        return false;
    }
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the write did not fail as expected (exit %d): %s", WEXITSTATUS(status), msg);
    return true;
}

Test(safetensors, refused_write_leaves_the_old_file)
{
    const char *p = tu_tmp_path("ckpt.safetensors");
    write_version(p, 1000, 0x11);
    size_t la, lb;
    unsigned char *before = tu_read_file(p, &la);

    cr_assert_eq(chmod(tu_tmpdir(), 0555), 0);
    int ran = failing_write_in_child(p, 0, strerror(EACCES));
    cr_assert_eq(chmod(tu_tmpdir(), 0755), 0);
    unsigned char *after = tu_read_file(p, &lb);
    cr_assert(la == lb && memcmp(before, after, la) == 0, "old file changed");
    free(after);

    ran += failing_write_in_child(p, 1, strerror(EFBIG));
    cr_assert(ran > 0, "neither refusal could be arranged on this machine");
    after = tu_read_file(p, &lb);
    cr_assert(la == lb && memcmp(before, after, la) == 0, "old file changed");
    char stray[256];
    cr_assert_eq(stray_files("ckpt.safetensors", stray, sizeof stray), 0,
                 "temporary file left behind: %s", stray);
    free(after);
    free(before);

    /* a missing folder is an I/O error naming the path */
    const char *q = tu_tmp_path("no/such/dir/x.safetensors");
    size_t one[1] = {1};
    unsigned char z = 0;
    ct_st_tensor t = {"z", CT_ST_U8, 1, one, &z, 1};
    cr_assert_eq(ct_safetensors_write(q, 1, &t, NULL), CT_ERR_IO);
    cr_assert(strstr(ct_last_error(), q) && strstr(ct_last_error(), strerror(ENOENT)), "%s",
              ct_last_error());
}

Test(safetensors, writer_killed_at_random_moments_leaves_old_or_new, .timeout = 600)
{
    enum { SIZE = 3 << 20, TRIALS = 50 };
    char p[512];
    snprintf(p, sizeof p, "%s", tu_tmp_path("big.safetensors"));
    /* the two versions every surviving file must equal */
    write_version(p, SIZE, 0xA1);
    size_t la, lb;
    unsigned char *va = tu_read_file(p, &la);
    write_version(p, SIZE, 0xB2);
    unsigned char *vb = tu_read_file(p, &lb);
    cr_assert_eq(la, lb);

    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t s = (uint64_t)ts.tv_nsec ^ 0x9E3779B97F4A7C15ULL;
    size_t saw_a = 0, saw_b = 0, interrupted = 0;
    for (int trial = 0; trial < TRIALS; trial++) {
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            for (unsigned k = 0;; k++)
                write_version(p, SIZE, (k & 1) ? 0xA1 : 0xB2);
        }
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        struct timespec nap = {0, (long)((s >> 33) % 40000000)}; /* 0..40 ms */
        nanosleep(&nap, NULL);
        kill(pid, SIGKILL);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status), "the writer exited on its own (status %d)", status);

        ct_safetensors *f = NULL;
        ct_status st = ct_safetensors_read(p, &f);
        cr_assert_eq(st, CT_SUCCESS, "trial %d: %s", trial, ct_last_error());
        ct_safetensors_free(f);
        size_t lc;
        unsigned char *vc = tu_read_file(p, &lc);
        bool is_a = lc == la && memcmp(vc, va, la) == 0;
        bool is_b = lc == lb && memcmp(vc, vb, lb) == 0;
        cr_assert(is_a || is_b, "trial %d: the file is neither version", trial);
        saw_a += is_a;
        saw_b += is_b;
        free(vc);

        /* a kill during a write leaves only a temporary file, named as documented */
        char stray[256];
        while (stray_files("big.safetensors", stray, sizeof stray) > 0) {
            cr_assert(strncmp(stray, ".big.safetensors.", 17) == 0 &&
                          strcmp(stray + strlen(stray) - 4, ".tmp") == 0,
                      "unexpected file %s", stray);
            interrupted++;
            unlink(tu_tmp_path(stray));
        }
    }
    cr_log_info("kill test: %zu old, %zu new, %zu interrupted writes", saw_a, saw_b, interrupted);
    free(va);
    free(vb);
}
