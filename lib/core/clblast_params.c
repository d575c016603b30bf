/* CLBlast GEMM parameter sets (cltrain/tune.h): the names CLBlast 1.5.3 expects per
 * kernel family, the built-in CPU set, CLBlast's constraints between the values, and the
 * strict parser of the stored file's text. Host-only: no OpenCL, no file access (so the
 * parser can be tested and fuzzed on its own). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#define FILE_MAGIC "cltrain-clblast-params 1"
#define VALUE_MAX  65536u /* no CLBlast parameter is larger; keeps products far from overflow */

typedef struct family {
    const char *kernel;
    size_t count;
    const char *names[CT_CLBLAST_MAX_PARAMS]; /* CLBlast's names, sorted as its database */
} family;

static const family families[CT_CLBLAST_KERNEL_COUNT] = {
    {"Xgemm",
     16,
     {"GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB", "NDIMC", "NWG", "SA", "SB",
      "STRM", "STRN", "VWM", "VWN"}},
    {"XgemmDirect",
     10,
     {"KWID", "MDIMAD", "MDIMCD", "NDIMBD", "NDIMCD", "PADA", "PADB", "VWMD", "VWND", "WGD"}},
    {"GemmRoutine", 1, {"XGEMM_MIN_INDIRECT_SIZE"}},
};

/* Measured on PoCL 3.1 / AVX-512 (2 cores): the untuned defaults give 6-8 GFLOP/s; these
 * (bench/clblast_gemm.c, bench/README.md) 55-61 GFLOP/s at 256^3 and 512^3 and 1.1-1.4 ms
 * for MiniCNN's 64x128x3136 linear forward. No local memory (SA=SB=0): PoCL's work-group
 * loops make it a copy. Same order as `families`. */
static const size_t builtin[CT_CLBLAST_KERNEL_COUNT][CT_CLBLAST_MAX_PARAMS] = {
    {0, 1, 64, 8, 4, 4, 64, 4, 4, 64, 0, 0, 0, 0, 8, 8},
    {2, 8, 8, 8, 8, 0, 0, 4, 4, 32},
    {128},
};

const char *ct_clblast_kernel_name(ct_clblast_kernel k)
{
    return (unsigned)k < CT_CLBLAST_KERNEL_COUNT ? families[k].kernel : NULL;
}

size_t ct_clblast_param_count(ct_clblast_kernel k)
{
    return (unsigned)k < CT_CLBLAST_KERNEL_COUNT ? families[k].count : 0;
}

const char *ct_clblast_param_name(ct_clblast_kernel k, size_t i)
{
    return i < ct_clblast_param_count(k) ? families[k].names[i] : NULL;
}

void ct_clblast_params_builtin(ct_clblast_params *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->value, builtin, sizeof builtin);
}

static int find_kernel(const char *name, size_t len)
{
    for (int k = 0; k < CT_CLBLAST_KERNEL_COUNT; k++)
        if (strlen(families[k].kernel) == len && memcmp(families[k].kernel, name, len) == 0)
            return k;
    return -1;
}

static int find_param(int k, const char *name, size_t len)
{
    for (size_t i = 0; i < families[k].count; i++)
        if (strlen(families[k].names[i]) == len && memcmp(families[k].names[i], name, len) == 0)
            return (int)i;
    return -1;
}

ct_status ct_clblast_params_set(ct_clblast_params *p, const char *kernel, const char *name,
                                size_t value)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(p && kernel && name, CT_ERR_INVALID_ARG, "ct_clblast_params_set: NULL argument");
    int k = find_kernel(kernel, strlen(kernel));
    CT_REQUIRE(k >= 0, CT_ERR_NOT_FOUND,
               "unknown CLBlast kernel '%s' (expected Xgemm, XgemmDirect or GemmRoutine)", kernel);
    int i = find_param(k, name, strlen(name));
    CT_REQUIRE(i >= 0, CT_ERR_NOT_FOUND, "%s has no parameter '%s'", kernel, name);
    p->value[k][i] = value;
cleanup:
    return st;
}

size_t ct_clblast_params_get(const ct_clblast_params *p, ct_clblast_kernel kernel, const char *name)
{
    if (!p || !name || (unsigned)kernel >= CT_CLBLAST_KERNEL_COUNT)
        return 0;
    int i = find_param((int)kernel, name, strlen(name));
    return i >= 0 ? p->value[kernel][i] : 0;
}

bool ct_clblast_params_equal(const ct_clblast_params *a, const ct_clblast_params *b)
{
    for (int k = 0; k < CT_CLBLAST_KERNEL_COUNT; k++)
        for (size_t i = 0; i < families[k].count; i++)
            if (a->value[k][i] != b->value[k][i])
                return false;
    return true;
}

static size_t get(const ct_clblast_params *p, int k, const char *name)
{
    return ct_clblast_params_get(p, (ct_clblast_kernel)k, name);
}

static bool pow2(size_t v)
{
    return v && v <= 16 && (v & (v - 1)) == 0;
}

/* a % b == 0 with b > 0 */
static bool divides(size_t b, size_t a)
{
    return b != 0 && a % b == 0;
}

ct_status ct_clblast_params_check(const ct_clblast_params *p)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(p != NULL, CT_ERR_INVALID_ARG, "ct_clblast_params_check: NULL set");
    for (int k = 0; k < CT_CLBLAST_KERNEL_COUNT; k++)
        for (size_t i = 0; i < families[k].count; i++)
            CT_REQUIRE(p->value[k][i] <= VALUE_MAX, CT_ERR_INVALID_ARG,
                       "%s %s=%zu is larger than %u", families[k].kernel, families[k].names[i],
                       p->value[k][i], VALUE_MAX);
    {
        const int X = CT_CLBLAST_XGEMM;
        size_t gemmk = get(p, X, "GEMMK"), kreg = get(p, X, "KREG"), kwg = get(p, X, "KWG"),
               kwi = get(p, X, "KWI"), mdima = get(p, X, "MDIMA"), mdimc = get(p, X, "MDIMC"),
               mwg = get(p, X, "MWG"), ndimb = get(p, X, "NDIMB"), ndimc = get(p, X, "NDIMC"),
               nwg = get(p, X, "NWG"), vwm = get(p, X, "VWM"), vwn = get(p, X, "VWN");
        CT_REQUIRE(gemmk <= 1 && get(p, X, "SA") <= 1 && get(p, X, "SB") <= 1 &&
                       get(p, X, "STRM") <= 1 && get(p, X, "STRN") <= 1,
                   CT_ERR_INVALID_ARG, "Xgemm: GEMMK, SA, SB, STRM and STRN must be 0 or 1");
        CT_REQUIRE(pow2(vwm) && pow2(vwn), CT_ERR_INVALID_ARG,
                   "Xgemm: VWM=%zu and VWN=%zu must be 1, 2, 4, 8 or 16", vwm, vwn);
        CT_REQUIRE(kreg && kwg && kwi && mdima && mdimc && mwg && ndimb && ndimc && nwg,
                   CT_ERR_INVALID_ARG, "Xgemm: tile sizes and thread counts must be >= 1");
        CT_REQUIRE(divides(kwi, kwg), CT_ERR_INVALID_ARG,
                   "Xgemm: KWG=%zu must be a multiple of KWI=%zu", kwg, kwi);
        CT_REQUIRE(divides(mdimc * vwm, mwg) && divides(mdima * vwm, mwg), CT_ERR_INVALID_ARG,
                   "Xgemm: MWG=%zu must be a multiple of MDIMC*VWM=%zu and MDIMA*VWM=%zu", mwg,
                   mdimc * vwm, mdima * vwm);
        CT_REQUIRE(divides(ndimc * vwn, nwg) && divides(ndimb * vwn, nwg), CT_ERR_INVALID_ARG,
                   "Xgemm: NWG=%zu must be a multiple of NDIMC*VWN=%zu and NDIMB*VWN=%zu", nwg,
                   ndimc * vwn, ndimb * vwn);
        if (gemmk == 0) {
            /* the A and B tiles are loaded by the MDIMC*NDIMC threads re-shaped as
             * KDIMA x MDIMA and KDIMB x NDIMB */
            CT_REQUIRE(divides(mdima, mdimc * ndimc) && divides(ndimb, mdimc * ndimc) &&
                           divides(mdimc * ndimc / mdima, kwg) &&
                           divides(mdimc * ndimc / ndimb, kwg),
                       CT_ERR_INVALID_ARG,
                       "Xgemm: KWG=%zu must be a multiple of MDIMC*NDIMC/MDIMA and "
                       "MDIMC*NDIMC/NDIMB (MDIMC %zu, NDIMC %zu, MDIMA %zu, NDIMB %zu)",
                       kwg, mdimc, ndimc, mdima, ndimb);
        } else {
            CT_REQUIRE(divides(vwn, kreg) && mdima == mdimc && ndimb == ndimc, CT_ERR_INVALID_ARG,
                       "Xgemm (GEMMK=1): KREG must be a multiple of VWN, MDIMA equal MDIMC and "
                       "NDIMB equal NDIMC");
        }
    }
    {
        const int D = CT_CLBLAST_XGEMM_DIRECT;
        size_t kwid = get(p, D, "KWID"), mdimad = get(p, D, "MDIMAD"), mdimcd = get(p, D, "MDIMCD"),
               ndimbd = get(p, D, "NDIMBD"), ndimcd = get(p, D, "NDIMCD"), vwmd = get(p, D, "VWMD"),
               vwnd = get(p, D, "VWND"), wgd = get(p, D, "WGD");
        CT_REQUIRE(get(p, D, "PADA") <= 1 && get(p, D, "PADB") <= 1, CT_ERR_INVALID_ARG,
                   "XgemmDirect: PADA and PADB must be 0 or 1");
        CT_REQUIRE(pow2(vwmd) && pow2(vwnd), CT_ERR_INVALID_ARG,
                   "XgemmDirect: VWMD=%zu and VWND=%zu must be 1, 2, 4, 8 or 16", vwmd, vwnd);
        CT_REQUIRE(kwid && mdimad && mdimcd && ndimbd && ndimcd && wgd, CT_ERR_INVALID_ARG,
                   "XgemmDirect: tile sizes and thread counts must be >= 1");
        CT_REQUIRE(divides(kwid, wgd), CT_ERR_INVALID_ARG,
                   "XgemmDirect: WGD=%zu must be a multiple of KWID=%zu", wgd, kwid);
        CT_REQUIRE(divides(mdimcd * vwmd, wgd) && divides(ndimcd * vwnd, wgd) &&
                       divides(mdimad * vwmd, wgd) && divides(ndimbd * vwnd, wgd),
                   CT_ERR_INVALID_ARG,
                   "XgemmDirect: WGD=%zu must be a multiple of MDIMCD*VWMD, NDIMCD*VWND, "
                   "MDIMAD*VWMD and NDIMBD*VWND",
                   wgd);
        CT_REQUIRE(divides(mdimad, mdimcd * ndimcd) && divides(ndimbd, mdimcd * ndimcd) &&
                       divides(mdimcd * ndimcd / mdimad, wgd) &&
                       divides(mdimcd * ndimcd / ndimbd, wgd),
                   CT_ERR_INVALID_ARG,
                   "XgemmDirect: WGD=%zu must be a multiple of MDIMCD*NDIMCD/MDIMAD and "
                   "MDIMCD*NDIMCD/NDIMBD",
                   wgd);
    }
    CT_REQUIRE(p->value[CT_CLBLAST_GEMM_ROUTINE][0] >= 1, CT_ERR_INVALID_ARG,
               "GemmRoutine: XGEMM_MIN_INDIRECT_SIZE must be >= 1");
cleanup:
    return st;
}

ct_status ct_clblast_params_format(const ct_clblast_params *p, char *buf, size_t cap)
{
    ct_status st = CT_SUCCESS;
    size_t at = 0;
    CT_REQUIRE(p && buf && cap, CT_ERR_INVALID_ARG, "ct_clblast_params_format: NULL argument");
    buf[0] = '\0';
    for (int k = 0; k < CT_CLBLAST_KERNEL_COUNT; k++) {
        int n = snprintf(buf + at, cap - at, "%s", families[k].kernel);
        for (size_t i = 0; n >= 0 && (size_t)n < cap - at && i < families[k].count; i++)
            n += snprintf(buf + at + n, cap - at - (size_t)n, " %s=%zu", families[k].names[i],
                          p->value[k][i]);
        if (n >= 0 && (size_t)n < cap - at)
            n += snprintf(buf + at + n, cap - at - (size_t)n, "\n");
        CT_REQUIRE(n >= 0 && (size_t)n < cap - at, CT_ERR_INVALID_ARG,
                   "ct_clblast_params_format: %zu bytes are not enough", cap);
        at += (size_t)n;
    }
cleanup:
    return st;
}

/* ---- the file's text ----------------------------------------------------------------- */

enum { H_DEVICE, H_PLATFORM, H_DRIVER, H_CLBLAST, H_DATE, H_SHAPES, H_COUNT };
static const char *const header_keys[H_COUNT] = {"device",  "platform", "driver",
                                                 "clblast", "date",     "shapes"};

/* Copies [s, s+n) to a NUL-terminated field; false when it does not fit. */
static bool copy_field(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return false;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

/* "NAME=digits" words of a family line, from `s` (n bytes, no newline). */
static ct_status parse_family(int k, const char *s, size_t n, size_t lineno, ct_clblast_params *p)
{
    ct_status st = CT_SUCCESS;
    bool seen[CT_CLBLAST_MAX_PARAMS] = {false};
    size_t nseen = 0, at = 0;
    while (at < n) {
        while (at < n && s[at] == ' ')
            at++;
        if (at == n)
            break;
        size_t w = at;
        while (at < n && s[at] != ' ')
            at++;
        const char *word = s + w, *eq = memchr(word, '=', at - w);
        CT_REQUIRE(eq != NULL, CT_ERR_FORMAT, "line %zu: '%.*s' is not NAME=VALUE", lineno,
                   (int)(at - w), word);
        int i = find_param(k, word, (size_t)(eq - word));
        CT_REQUIRE(i >= 0, CT_ERR_FORMAT, "line %zu: %s has no parameter '%.*s'", lineno,
                   families[k].kernel, (int)(eq - word), word);
        CT_REQUIRE(!seen[i], CT_ERR_FORMAT, "line %zu: %s %s given twice", lineno,
                   families[k].kernel, families[k].names[i]);
        const char *v = eq + 1, *end = word + (at - w);
        size_t value = 0;
        CT_REQUIRE(v < end && end - v <= 6, CT_ERR_FORMAT,
                   "line %zu: %s=%.*s is not a whole number up to %u", lineno, families[k].names[i],
                   (int)(end - v), v, VALUE_MAX);
        for (const char *c = v; c < end; c++) {
            CT_REQUIRE(*c >= '0' && *c <= '9', CT_ERR_FORMAT,
                       "line %zu: %s=%.*s is not a whole number", lineno, families[k].names[i],
                       (int)(end - v), v);
            value = value * 10 + (size_t)(*c - '0');
        }
        CT_REQUIRE(value <= VALUE_MAX, CT_ERR_FORMAT, "line %zu: %s=%zu is larger than %u", lineno,
                   families[k].names[i], value, VALUE_MAX);
        p->value[k][i] = value;
        seen[i] = true;
        nseen++;
    }
    if (nseen != families[k].count) {
        size_t miss = 0;
        while (seen[miss])
            miss++;
        CT_FAIL(CT_ERR_FORMAT, "line %zu: %s lacks %s (all %zu parameters are required)", lineno,
                families[k].kernel, families[k].names[miss], families[k].count);
    }
cleanup:
    return st;
}

ct_status ct_tune_file_parse(const char *text, size_t len, ct_clblast_params *out,
                             ct_tune_file_info *info)
{
    ct_status st = CT_SUCCESS;
    ct_clblast_params p;
    ct_tune_file_info fi;
    bool have_header[H_COUNT] = {false}, have_family[CT_CLBLAST_KERNEL_COUNT] = {false};
    size_t at = 0, lineno = 0;
    memset(&p, 0, sizeof p);
    memset(&fi, 0, sizeof fi);
    CT_REQUIRE(text != NULL && out != NULL, CT_ERR_INVALID_ARG,
               "ct_tune_file_parse: NULL argument");
    CT_TRY(ct_text_check(text, len, FILE_MAGIC));
    size_t n = 0;
    for (const char *s; (s = ct_next_line(text, len, &at, &lineno, &n));) {
        const char *sp = memchr(s, ' ', n);
        size_t kl = sp ? (size_t)(sp - s) : n;
        const char *rest = sp ? sp + 1 : s + n;
        size_t rl = sp ? n - kl - 1 : 0;
        int h = -1;
        for (int i = 0; i < H_COUNT; i++)
            if (strlen(header_keys[i]) == kl && memcmp(header_keys[i], s, kl) == 0)
                h = i;
        if (h >= 0) {
            CT_REQUIRE(!have_header[h], CT_ERR_FORMAT, "line %zu: '%s' given twice", lineno,
                       header_keys[h]);
            char *dst[H_COUNT] = {fi.device,  fi.platform, fi.driver,
                                  fi.clblast, fi.date,     fi.shapes};
            size_t cap[H_COUNT] = {sizeof fi.device,  sizeof fi.platform, sizeof fi.driver,
                                   sizeof fi.clblast, sizeof fi.date,     sizeof fi.shapes};
            CT_REQUIRE(copy_field(dst[h], cap[h], rest, rl), CT_ERR_FORMAT,
                       "line %zu: the %s is longer than %zu bytes", lineno, header_keys[h],
                       cap[h] - 1);
            have_header[h] = true;
            continue;
        }
        int k = find_kernel(s, kl);
        CT_REQUIRE(k >= 0, CT_ERR_FORMAT,
                   "line %zu: unknown line '%.*s' (expected a header key or Xgemm, XgemmDirect, "
                   "GemmRoutine)",
                   lineno, (int)(kl < 40 ? kl : 40), s);
        CT_REQUIRE(!have_family[k], CT_ERR_FORMAT, "line %zu: %s given twice", lineno,
                   families[k].kernel);
        CT_TRY(parse_family(k, rest, rl, lineno, &p));
        have_family[k] = true;
    }
    for (int h = 0; h < H_COUNT; h++)
        CT_REQUIRE(have_header[h], CT_ERR_FORMAT, "no '%s' line (truncated?)", header_keys[h]);
    for (int k = 0; k < CT_CLBLAST_KERNEL_COUNT; k++)
        CT_REQUIRE(have_family[k], CT_ERR_FORMAT, "no %s line (truncated?)", families[k].kernel);
    if (ct_clblast_params_check(&p) != CT_SUCCESS)
        CT_FAIL(CT_ERR_FORMAT, "%s", ct_last_error());
    *out = p;
    if (info)
        *info = fi;
cleanup:
    return st;
}
