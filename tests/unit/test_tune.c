/* Stored CLBlast parameters (cltrain/tune.h, lib/core/clblast_params.c, tune_file.c): the
 * strict parser accepts a valid file and refuses every malformed variant; a refused file
 * falls back to the built-in set with the reason visible; writes are atomic and round-trip;
 * the file name follows the device; a context reports where its parameters come from. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "testutil.h"

static ct_device_info fake_device(int gpu)
{
    ct_device_info d;
    memset(&d, 0, sizeof d);
    snprintf(d.name, sizeof d.name, "Test CPU 9000");
    snprintf(d.platform, sizeof d.platform, "Test Platform");
    snprintf(d.driver, sizeof d.driver, "1.2.3");
    d.is_gpu = gpu;
    d.is_cpu = !gpu;
    return d;
}

/* The header of a file for fake_device(); the family lines follow. */
static void valid_text(char *buf, size_t cap)
{
    ct_clblast_params p;
    char fam[1024];
    ct_clblast_params_builtin(&p);
    cr_assert_eq(ct_clblast_params_format(&p, fam, sizeof fam), CT_SUCCESS);
    snprintf(buf, cap,
             "cltrain-clblast-params 1\n# a comment\ndevice Test CPU 9000\nplatform Test "
             "Platform\ndriver 1.2.3\nclblast %s\ndate 2026-11-25T00:00:00Z\nshapes "
             "64x128x3136:NT\n\n%s",
             ct_clblast_version(), fam);
}

static char *temp_dir(void)
{
    static char dir[] = "/tmp/ct_tune_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    setenv("CLTRAIN_CACHE_DIR", dir, 1);
    unsetenv("CLTRAIN_CACHE");
    unsetenv("CLTRAIN_CLBLAST_TUNE");
    return dir;
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(text, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

Test(tune_params, builtin_passes_the_constraints_and_formats)
{
    ct_clblast_params p;
    char buf[1024];
    ct_clblast_params_builtin(&p);
    cr_assert_eq(ct_clblast_params_check(&p), CT_SUCCESS, "%s", ct_last_error());
    cr_assert_eq(ct_clblast_params_format(&p, buf, sizeof buf), CT_SUCCESS);
    cr_assert(strstr(buf, "Xgemm GEMMK=0 KREG=1 KWG=64 KWI=8 ") == buf, "%s", buf);
    cr_assert(strstr(buf, "\nGemmRoutine XGEMM_MIN_INDIRECT_SIZE=128\n") != NULL, "%s", buf);
    cr_assert_eq(ct_clblast_params_get(&p, CT_CLBLAST_XGEMM_DIRECT, "WGD"), 32);
    cr_assert_eq(ct_clblast_params_format(&p, buf, 40), CT_ERR_INVALID_ARG);
}

Test(tune_params, set_and_constraints)
{
    ct_clblast_params p, q;
    ct_clblast_params_builtin(&p);
    q = p;
    cr_assert(ct_clblast_params_equal(&p, &q));
    cr_assert_eq(ct_clblast_params_set(&p, "Xgemm", "KWI", 2), CT_SUCCESS);
    cr_assert_not(ct_clblast_params_equal(&p, &q));
    cr_assert_eq(ct_clblast_params_check(&p), CT_SUCCESS, "%s", ct_last_error());
    cr_assert_eq(ct_clblast_params_set(&p, "Xgemm", "NOPE", 2), CT_ERR_NOT_FOUND);
    cr_assert_eq(ct_clblast_params_set(&p, "Xgemv", "KWI", 2), CT_ERR_NOT_FOUND);
    /* KWG 64 is not a multiple of KWI 3 */
    cr_assert_eq(ct_clblast_params_set(&p, "Xgemm", "KWI", 3), CT_SUCCESS);
    cr_assert_eq(ct_clblast_params_check(&p), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "KWI") != NULL, "%s", ct_last_error());
    /* MWG 64 is not a multiple of MDIMC*VWM = 16*8 */
    p = q;
    ct_clblast_params_set(&p, "Xgemm", "MDIMC", 16);
    cr_assert_eq(ct_clblast_params_check(&p), CT_ERR_INVALID_ARG);
    /* a vector width of 3 */
    p = q;
    ct_clblast_params_set(&p, "XgemmDirect", "VWMD", 3);
    cr_assert_eq(ct_clblast_params_check(&p), CT_ERR_INVALID_ARG);
    /* WGD 32 is not a multiple of MDIMCD*VWMD = 16*4 */
    p = q;
    ct_clblast_params_set(&p, "XgemmDirect", "MDIMCD", 16);
    cr_assert_eq(ct_clblast_params_check(&p), CT_ERR_INVALID_ARG);
    p = q;
    ct_clblast_params_set(&p, "GemmRoutine", "XGEMM_MIN_INDIRECT_SIZE", 0);
    cr_assert_eq(ct_clblast_params_check(&p), CT_ERR_INVALID_ARG);
}

Test(tune_file, parses_a_valid_file)
{
    char text[4096];
    ct_clblast_params p, b;
    ct_tune_file_info info;
    valid_text(text, sizeof text);
    cr_assert_eq(ct_tune_file_parse(text, strlen(text), &p, &info), CT_SUCCESS, "%s",
                 ct_last_error());
    ct_clblast_params_builtin(&b);
    cr_assert(ct_clblast_params_equal(&p, &b));
    cr_assert_str_eq(info.device, "Test CPU 9000");
    cr_assert_str_eq(info.platform, "Test Platform");
    cr_assert_str_eq(info.driver, "1.2.3");
    cr_assert_str_eq(info.clblast, ct_clblast_version());
    cr_assert_str_eq(info.shapes, "64x128x3136:NT");
    /* families in another order, parameters in another order, extra spaces */
    char other[4096];
    snprintf(other, sizeof other,
             "cltrain-clblast-params 1\nGemmRoutine XGEMM_MIN_INDIRECT_SIZE=256\nshapes x\n"
             "date d\nclblast 1\ndriver d\nplatform p\ndevice n\n"
             "XgemmDirect WGD=16 KWID=2  MDIMAD=8 MDIMCD=8 NDIMBD=8 NDIMCD=8 PADA=1 PADB=1 "
             "VWMD=2 VWND=2\n"
             "Xgemm VWN=4 VWM=4 GEMMK=0 KREG=1 KWG=32 KWI=2 MDIMA=8 MDIMC=8 MWG=64 NDIMB=8 "
             "NDIMC=8 NWG=64 SA=0 SB=0 STRM=0 STRN=0\n");
    cr_assert_eq(ct_tune_file_parse(other, strlen(other), &p, NULL), CT_SUCCESS, "%s",
                 ct_last_error());
    cr_assert_eq(ct_clblast_params_get(&p, CT_CLBLAST_GEMM_ROUTINE, "XGEMM_MIN_INDIRECT_SIZE"),
                 256);
    cr_assert_eq(ct_clblast_params_get(&p, CT_CLBLAST_XGEMM_DIRECT, "WGD"), 16);
    cr_assert_eq(ct_clblast_params_get(&p, CT_CLBLAST_XGEMM, "KWG"), 32);
}

/* Replaces the first `from` in text with `to` (into out) and expects a refusal whose
 * message contains `why`. */
static void expect_refused(const char *text, const char *from, const char *to, const char *why)
{
    char out[16384];
    const char *at = strstr(text, from);
    cr_assert_not_null(at, "'%s' not in the text", from);
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    ct_clblast_params p, before;
    memset(&p, 0x5a, sizeof p);
    before = p;
    ct_status st = ct_tune_file_parse(out, strlen(out), &p, NULL);
    cr_assert_eq(st, CT_ERR_FORMAT, "'%s' -> '%s' accepted (%s)", from, to, ct_status_str(st));
    cr_assert(strstr(ct_last_error(), why) != NULL, "'%s' -> '%s': message '%s' lacks '%s'", from,
              to, ct_last_error(), why);
    cr_assert_eq(memcmp(&p, &before, sizeof p), 0, "a refused file changed the output");
}

Test(tune_file, refuses_each_malformed_variant)
{
    char text[4096], longer[1024];
    valid_text(text, sizeof text);
    expect_refused(text, "Xgemm GEMMK", "Xgemv GEMMK", "unknown line 'Xgemv'");
    expect_refused(text, "KWI=8", "KWX=8", "Xgemm has no parameter 'KWX'");
    expect_refused(text, "MWG=64", "MWG=6x4", "not a whole number");
    expect_refused(text, "MWG=64", "MWG=-64", "not a whole number");
    expect_refused(text, "MWG=64", "MWG=", "not a whole number");
    expect_refused(text, "MWG=64", "MWG=99999999999999999999", "not a whole number");
    expect_refused(text, "MWG=64", "MWG=70000", "larger than");
    expect_refused(text, "MWG=64", "MWG", "not NAME=VALUE");
    expect_refused(text, "MWG=64", "MWG=64 MWG=64", "given twice");
    expect_refused(text, "KWI=8 ", "", "lacks KWI");
    expect_refused(text, "KWI=8", "KWI=3", "KWI"); /* breaks KWG % KWI */
    expect_refused(text, "GemmRoutine", "Xgemm", "given twice");
    expect_refused(text, "cltrain-clblast-params 1", "cltrain-clblast-params 2", "line 1");
    expect_refused(text, "driver 1.2.3\n", "", "no 'driver' line");
    expect_refused(text, "date", "dote", "unknown line");
    expect_refused(text, "device Test", "device\tTest", "control character");
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    expect_refused(text, "2026-11-25T00:00:00Z", longer, "longer than");

    /* empty, and every truncation of the file (at any byte) */
    ct_clblast_params p;
    cr_assert_eq(ct_tune_file_parse("", 0, &p, NULL), CT_ERR_FORMAT);
    cr_assert(strstr(ct_last_error(), "empty") != NULL, "%s", ct_last_error());
    size_t n = strlen(text);
    for (size_t cut = 1; cut < n; cut++)
        cr_assert_eq(ct_tune_file_parse(text, cut, &p, NULL), CT_ERR_FORMAT,
                     "truncated at %zu of %zu bytes: accepted", cut, n);
    /* a NUL inside, and bytes past the size limit */
    char nul[4096];
    memcpy(nul, text, n + 1);
    nul[30] = '\0';
    cr_assert_eq(ct_tune_file_parse(nul, n, &p, NULL), CT_ERR_FORMAT);
    char *big = malloc(CT_TUNE_FILE_MAX + 2);
    cr_assert_not_null(big);
    memset(big, '#', CT_TUNE_FILE_MAX + 1);
    big[CT_TUNE_FILE_MAX + 1] = '\n';
    cr_assert_eq(ct_tune_file_parse(big, CT_TUNE_FILE_MAX + 2, &p, NULL), CT_ERR_FORMAT);
    free(big);
}

Test(tune_file, name_differs_per_device)
{
    temp_dir();
    ct_device_info a = fake_device(0), b = a;
    char pa[4200], pb[4200];
    cr_assert_eq(ct_tune_file_path(&a, pa, sizeof pa), CT_SUCCESS);
    cr_assert_eq(ct_tune_file_path(&b, pb, sizeof pb), CT_SUCCESS);
    cr_assert_str_eq(pa, pb);
    cr_assert(strstr(pa, getenv("CLTRAIN_CACHE_DIR")) == pa, "%s", pa);
    cr_assert(strstr(pa, "/clblast-") != NULL && strstr(pa, ".txt") != NULL, "%s", pa);
    snprintf(b.name, sizeof b.name, "Test CPU 9001");
    cr_assert_eq(ct_tune_file_path(&b, pb, sizeof pb), CT_SUCCESS);
    cr_assert_str_neq(pa, pb);
    b = a;
    snprintf(b.driver, sizeof b.driver, "1.2.4");
    cr_assert_eq(ct_tune_file_path(&b, pb, sizeof pb), CT_SUCCESS);
    cr_assert_str_neq(pa, pb);
    b = a;
    snprintf(b.platform, sizeof b.platform, "Other Platform");
    cr_assert_eq(ct_tune_file_path(&b, pb, sizeof pb), CT_SUCCESS);
    cr_assert_str_neq(pa, pb);
    setenv("CLTRAIN_CACHE", "0", 1);
    cr_assert_eq(ct_tune_file_path(&a, pa, sizeof pa), CT_ERR_UNSUPPORTED);
}

Test(tune_file, atomic_write_round_trip)
{
    char *dir = temp_dir();
    char sub[512], path[600];
    ct_device_info d = fake_device(0);
    ct_clblast_params p, q;
    ct_tune_file_info info;
    snprintf(sub, sizeof sub, "%s/made/here", dir);
    snprintf(path, sizeof path, "%s/params.txt", sub);
    ct_clblast_params_builtin(&p);
    ct_clblast_params_set(&p, "Xgemm", "KWI", 2);
    cr_assert_eq(ct_tune_file_write(path, &d, &p, "64x128x3136:NT 64x3136x128:NN"), CT_SUCCESS,
                 "%s", ct_last_error());
    cr_assert_eq(ct_tune_file_read(path, &d, &q, &info), CT_SUCCESS, "%s", ct_last_error());
    cr_assert(ct_clblast_params_equal(&p, &q));
    cr_assert_str_eq(info.shapes, "64x128x3136:NT 64x3136x128:NN");
    cr_assert_str_eq(info.device, d.name);
    /* overwritten in place; no temporary file is left */
    ct_clblast_params_builtin(&p);
    cr_assert_eq(ct_tune_file_write(path, &d, &p, NULL), CT_SUCCESS, "%s", ct_last_error());
    cr_assert_eq(ct_tune_file_read(path, &d, &q, NULL), CT_SUCCESS, "%s", ct_last_error());
    cr_assert(ct_clblast_params_equal(&p, &q));
    DIR *dd = opendir(sub);
    cr_assert_not_null(dd);
    size_t entries = 0;
    for (struct dirent *e; (e = readdir(dd));)
        if (e->d_name[0] != '.')
            entries++;
    closedir(dd);
    cr_assert_eq(entries, 1, "leftover files in %s", sub);
    /* a set that breaks the constraints is never written */
    ct_clblast_params_set(&p, "Xgemm", "KWI", 3);
    cr_assert_eq(ct_tune_file_write(path, &d, &p, NULL), CT_ERR_INVALID_ARG);
    /* stale: another driver, another device, another CLBlast */
    ct_device_info other = d;
    snprintf(other.driver, sizeof other.driver, "9.9");
    cr_assert_eq(ct_tune_file_read(path, &other, &q, NULL), CT_ERR_FORMAT);
    cr_assert(strstr(ct_last_error(), "driver 1.2.3") != NULL, "%s", ct_last_error());
    other = d;
    snprintf(other.name, sizeof other.name, "Another");
    cr_assert_eq(ct_tune_file_read(path, &other, &q, NULL), CT_ERR_FORMAT);
    char text[4096];
    valid_text(text, sizeof text);
    char *v = strstr(text, "clblast ");
    v[8] = '0';
    write_file(path, text, strlen(text));
    cr_assert_eq(ct_tune_file_read(path, &d, &q, NULL), CT_ERR_FORMAT);
    cr_assert(strstr(ct_last_error(), "CLBlast") != NULL, "%s", ct_last_error());
    unlink(path);
    cr_assert_eq(ct_tune_file_read(path, &d, &q, NULL), CT_ERR_NOT_FOUND);
}

Test(tune_file, resolve_falls_back_and_says_why)
{
    temp_dir();
    ct_device_info cpu = fake_device(0), gpu = fake_device(1);
    ct_clblast_params p, b;
    char src[2048], path[4200], text[4096];
    ct_clblast_params_builtin(&b);

    /* no file: built-in on CPUs, CLBlast's database on GPUs */
    cr_assert(ct_tune_resolve(&cpu, &p, src, sizeof src));
    cr_assert(ct_clblast_params_equal(&p, &b));
    cr_assert_str_eq(src, "built-in");
    cr_assert_not(ct_tune_resolve(&gpu, &p, src, sizeof src));
    cr_assert_str_eq(src, "CLBlast's database (GPU)");

    /* a valid stored file wins, also on a GPU */
    cr_assert_eq(ct_tune_file_path(&cpu, path, sizeof path), CT_SUCCESS);
    valid_text(text, sizeof text);
    char *kwi = strstr(text, "KWI=8");
    kwi[4] = '4';
    write_file(path, text, strlen(text));
    cr_assert(ct_tune_resolve(&cpu, &p, src, sizeof src));
    cr_assert_eq(ct_clblast_params_get(&p, CT_CLBLAST_XGEMM, "KWI"), 4);
    cr_assert(strncmp(src, "stored: ", 8) == 0 && strcmp(src + 8, path) == 0, "%s", src);

    /* malformed: the built-in set, and the reason */
    static const char *const bad[] = {"", "garbage\n", "cltrain-clblast-params 1\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i], strlen(bad[i]));
        cr_assert(ct_tune_resolve(&cpu, &p, src, sizeof src));
        cr_assert(ct_clblast_params_equal(&p, &b));
        cr_assert(strstr(src, "built-in (ignored ") == src && strstr(src, path), "%s", src);
        cr_assert(strstr(src, "(CT_ERR") == NULL, "the reason keeps its status suffix: %s", src);
    }
    cr_assert(strstr(src, "no 'device' line") != NULL, "%s", src);

    /* a stored file for this GPU with a problem: CLBlast's database */
    cr_assert_eq(ct_tune_file_path(&gpu, path, sizeof path), CT_SUCCESS);
    write_file(path, "junk\n", 5);
    cr_assert_not(ct_tune_resolve(&gpu, &p, src, sizeof src));
    cr_assert(strstr(src, "CLBlast's database (GPU; ignored ") == src, "%s", src);

    setenv("CLTRAIN_CLBLAST_TUNE", "0", 1);
    cr_assert_not(ct_tune_resolve(&cpu, &p, src, sizeof src));
    cr_assert(strstr(src, "CLTRAIN_CLBLAST_TUNE=0") != NULL, "%s", src);
}

/* A context on the real device reads the file for its own device and applies it. */
Test(tune_context, uses_the_stored_file)
{
    temp_dir();
    ct_context *ctx = tu_context();
    const ct_device_info *dev = ct_context_device(ctx);
    char path[4200];
    ct_clblast_params p, got;
    TU_OK(ct_tune_file_path(dev, path, sizeof path));
    ct_clblast_params_builtin(&p);
    ct_clblast_params_set(&p, "GemmRoutine", "XGEMM_MIN_INDIRECT_SIZE", 192);
    TU_OK(ct_tune_file_write(path, dev, &p, "test"));
    const char *src = ct_context_clblast_source(ctx);
    cr_assert(strncmp(src, "stored: ", 8) == 0 && strcmp(src + 8, path) == 0, "%s", src);
    cr_assert(ct_context_clblast_params(ctx, &got));
    cr_assert(ct_clblast_params_equal(&p, &got));

    /* apply refuses what breaks the constraints or the device's limits, keeps the set */
    ct_clblast_params bad = p;
    ct_clblast_params_set(&bad, "Xgemm", "KWI", 3);
    cr_assert_eq(ct_context_clblast_apply(ctx, &bad), CT_ERR_INVALID_ARG);
    bad = p;
    ct_clblast_params_set(&bad, "XgemmDirect", "WGD", 4096);
    ct_clblast_params_set(&bad, "XgemmDirect", "PADA", 1);
    cr_assert_eq(ct_context_clblast_apply(ctx, &bad), CT_ERR_INVALID_ARG);
    cr_assert(ct_context_clblast_params(ctx, &got));
    cr_assert(ct_clblast_params_equal(&p, &got));
    ct_context_free(ctx);
}

/* ---- the stored convolution path (lib/core/conv_path.c) ----------------------------- */

#define CONV_HEADER(version)                                                                       \
    "cltrain-conv-path " version "\n# a comment\ndevice Test CPU 9000\nplatform Test "             \
    "Platform\ndriver 1.2.3\ndate 2026-11-26T00:00:00Z\nmeasured minicnn batch 64\n\n"

static const char conv_valid[] = CONV_HEADER("2") "CONV_GEMM=5\n"
                                                  "layer 1x28x28 k32 r3x3 s1x1 p1x1 d1x1 g1 "
                                                  "CONV_GEMM=0\n"
                                                  "layer 32x14x14 k64 r3x5 s2x1 p0x2 d1x3 g2 "
                                                  "CONV_GEMM=7\n";

/* MiniCNN's two convolutions */
static const ct_conv_shape conv1 = {1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1};
static const ct_conv_shape conv2 = {32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1};

Test(conv_path, parses_a_valid_file_and_refuses_the_rest)
{
    ct_conv_path cp, before;
    ct_tune_file_info info;
    char buf[128];
    cr_assert_eq(ct_conv_path_parse(conv_valid, strlen(conv_valid), &cp, &info), CT_SUCCESS, "%s",
                 ct_last_error());
    cr_assert_eq(cp.conv_gemm, 5);
    cr_assert_eq(cp.nlayers, 2);
    cr_assert_str_eq(info.device, "Test CPU 9000");
    cr_assert_str_eq(info.shapes, "minicnn batch 64");
    cr_assert_eq(ct_conv_path_lookup(&cp, &conv1), 0);
    cr_assert_eq(ct_conv_path_lookup(&cp, &conv2), 5, "a shape not listed: the file's CONV_GEMM");
    const ct_conv_shape odd = {32, 14, 14, 64, 3, 5, 2, 1, 0, 2, 1, 3, 2};
    cr_assert_eq(ct_conv_path_lookup(&cp, &odd), 7);
    TU_OK(ct_conv_shape_format(&odd, buf, sizeof buf));
    cr_assert_str_eq(buf, "32x14x14 k64 r3x5 s2x1 p0x2 d1x3 g2");
    cr_assert_eq(ct_conv_shape_format(&odd, buf, 10), CT_ERR_INVALID_ARG);

    static const struct {
        const char *text, *why;
    } bad[] = {
        {"", "empty"},
        {"cltrain-conv-path 3\n", "line 1"},
        {"cltrain-conv-path 2\ndevice a\nplatform b\ndriver c\ndate d\nmeasured e\n",
         "no CONV_GEMM line"},
        {"cltrain-conv-path 2\ndevice a\nplatform b\ndriver c\ndate d\nCONV_GEMM=1\n",
         "no 'measured' line"},
        {"cltrain-conv-path 2\ndevice a\ndevice a\n", "'device' given twice"},
        {"cltrain-conv-path 2\nCONV_GEMM=8\n", "not CONV_GEMM=0..7"},
        {"cltrain-conv-path 2\nCONV_GEMM=12\n", "not CONV_GEMM=0..7"},
        {"cltrain-conv-path 2\nCONV_GEMM=\n", "not CONV_GEMM=0..7"},
        {"cltrain-conv-path 2\nCONV_GEMM=1\nCONV_GEMM=1\n", "given twice"},
        {"cltrain-conv-path 2\nCONV_KV=1\n", "unknown line"},
        {"cltrain-conv-path 2\ndevice a\tb\n", "control character"},
        {"cltrain-conv-path 2\ndevice a", "newline"},
        /* layer lines: exactly what ct_conv_shape_format writes, values in range */
        {"cltrain-conv-path 2\nlayer 1x28x28 k32 r3x3 s1x1 p1x1 d1x1 g1 CONV_GEMM=8\n",
         "line 2: 'layer 1x28x28"},
        {"cltrain-conv-path 2\nlayer 1x28x28 k32 r3x3 s1x1 p1x1 d1x1 CONV_GEMM=1\n",
         "is not 'layer CxHxW"},
        {"cltrain-conv-path 2\nlayer 1x28x28 k32 r3x3 s1x1 p1x1 d1x1 g1 CONV_GEMM=1 \n",
         "is not 'layer"},
        {"cltrain-conv-path 2\nlayer  1x28x28 k32 r3x3 s1x1 p1x1 d1x1 g1 CONV_GEMM=1\n",
         "is not 'layer"},
        {"cltrain-conv-path 2\nlayer 01x28x28 k32 r3x3 s1x1 p1x1 d1x1 g1 CONV_GEMM=1\n",
         "is not 'layer"},
        {"cltrain-conv-path 2\nlayer +1x28x28 k32 r3x3 s1x1 p1x1 d1x1 g1 CONV_GEMM=1\n",
         "is not 'layer"},
        {"cltrain-conv-path 2\nlayer 1x28x28 k0 r3x3 s1x1 p1x1 d1x1 g1 CONV_GEMM=1\n",
         "is not 'layer"},
        {"cltrain-conv-path 2\nlayer 1x28x28 k32 r3x3 s1x1 p1x1 d1x1 g1 CONV_GEMM=1\n"
         "layer 1x28x28 k32 r3x3 s1x1 p1x1 d1x1 g1 CONV_GEMM=2\n",
         "line 3: the shape is given twice"},
        /* version 1 has no layer lines */
        {"cltrain-conv-path 1\nlayer 1x28x28 k32 r3x3 s1x1 p1x1 d1x1 g1 CONV_GEMM=1\n",
         "unknown line"},
    };
    /* the fuzzing corpus's seeds: a version 1 file, and one with layer lines */
    static const char *const seeds[] = {"conv-valid.txt", "conv-layers.txt"};
    for (size_t i = 0; i < 2; i++) {
        char seed[600], text[2048];
        snprintf(seed, sizeof seed, "%s/../../fuzz/corpus/tune/%s", CT_GOLDEN_DIR, seeds[i]);
        FILE *f = fopen(seed, "rb");
        cr_assert_not_null(f, "%s", seed);
        size_t n = fread(text, 1, sizeof text, f);
        fclose(f);
        cr_assert_eq(ct_conv_path_parse(text, n, &cp, NULL), CT_SUCCESS, "%s: %s", seeds[i],
                     ct_last_error());
        cr_assert_eq(cp.nlayers, i == 0 ? 0 : 2, "%s", seeds[i]);
    }
    memset(&before, 0xa5, sizeof before);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cp = before;
        cr_assert_eq(ct_conv_path_parse(bad[i].text, strlen(bad[i].text), &cp, NULL), CT_ERR_FORMAT,
                     "case %zu accepted", i);
        cr_assert(strstr(ct_last_error(), bad[i].why) != NULL, "case %zu: %s", i, ct_last_error());
        cr_assert(memcmp(&cp, &before, sizeof cp) == 0, "case %zu: output touched", i);
    }
}

/* A table of shapes: set adds or replaces, refuses bad values and a full table. */
Test(conv_path, set_and_lookup)
{
    ct_conv_path cp;
    ct_conv_path_init(&cp, 7);
    cr_assert_eq(ct_conv_path_lookup(&cp, &conv1), 7);
    cr_assert_eq(ct_conv_path_lookup(&cp, NULL), 7);
    TU_OK(ct_conv_path_set(&cp, &conv1, 1));
    TU_OK(ct_conv_path_set(&cp, &conv1, 5));
    cr_assert_eq(cp.nlayers, 1, "replaced, not added");
    cr_assert_eq(ct_conv_path_lookup(&cp, &conv1), 5);
    cr_assert_eq(ct_conv_path_lookup(&cp, &conv2), 7);
    cr_assert_eq(ct_conv_path_set(&cp, &conv2, 8), CT_ERR_INVALID_ARG);
    ct_conv_shape zero = conv2;
    zero.dil_w = 0;
    cr_assert_eq(ct_conv_path_set(&cp, &zero, 1), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "1..65535") != NULL, "%s", ct_last_error());
    ct_conv_shape s = conv2;
    for (unsigned i = 1; i < CT_CONV_PATH_MAX_LAYERS; i++) {
        s.h = 100 + i;
        TU_OK(ct_conv_path_set(&cp, &s, 2));
    }
    s.h = 99;
    cr_assert_eq(ct_conv_path_set(&cp, &s, 2), CT_ERR_INVALID_ARG, "the table is full");
    cr_assert(strstr(ct_last_error(), "at most") != NULL, "%s", ct_last_error());
    TU_OK(ct_conv_path_set(&cp, &conv1, 0)); /* a listed shape still changes */
    cr_assert_eq(ct_conv_path_lookup(&cp, &conv1), 0);
}

Test(conv_path, write_read_resolve)
{
    temp_dir();
    ct_device_info cpu = fake_device(0), gpu = fake_device(1), other = cpu;
    char path[4200], gpath[4200], src[1400];
    ct_conv_path cp, got;
    TU_OK(ct_conv_path_file(&cpu, path, sizeof path));
    TU_OK(ct_conv_path_file(&gpu, gpath, sizeof gpath));
    cr_assert(strstr(path, "/conv-") != NULL && strstr(path, ".txt") != NULL, "%s", path);
    /* the defaults: kernels on CPUs, every pass as GEMMs on GPUs */
    cr_assert_eq(ct_conv_path_resolve(&cpu, &got, src, sizeof src), 0);
    cr_assert_str_eq(src, "default (CONV_GEMM=0)");
    cr_assert_eq(got.nlayers, 0);
    cr_assert_eq(ct_conv_path_resolve(&gpu, NULL, src, sizeof src), 7);
    cr_assert_str_eq(src, "default (CONV_GEMM=7)");
    /* written, read back, resolved; another device's or driver's file is refused */
    ct_conv_path_init(&cp, 5);
    TU_OK(ct_conv_path_set(&cp, &conv2, 1));
    TU_OK(ct_conv_path_write(path, &cpu, &cp, "a model, batch 8"));
    TU_OK(ct_conv_path_read(path, &cpu, &got));
    cr_assert(memcmp(&cp, &got, sizeof cp) == 0, "read back as written");
    cr_assert_eq(ct_conv_path_resolve(&cpu, &got, src, sizeof src), 5);
    cr_assert_eq(ct_conv_path_lookup(&got, &conv2), 1);
    cr_assert(strncmp(src, "stored: ", 8) == 0 && strstr(src, path) &&
                  strstr(src, "(CONV_GEMM=5, 1 layer shape of its own)"),
              "%s", src);
    snprintf(other.driver, sizeof other.driver, "9.9");
    cr_assert_eq(ct_conv_path_read(path, &other, &got), CT_ERR_FORMAT);
    cr_assert(strstr(ct_last_error(), "driver 1.2.3") != NULL, "%s", ct_last_error());
    cp.conv_gemm = 8;
    cr_assert_eq(ct_conv_path_write(path, &cpu, &cp, NULL), CT_ERR_INVALID_ARG);
    cp.conv_gemm = 5;
    cp.layer_gemm[0] = 9;
    cr_assert_eq(ct_conv_path_write(path, &cpu, &cp, NULL), CT_ERR_INVALID_ARG);
    /* a full table fits a file */
    ct_conv_path_init(&cp, 2);
    ct_conv_shape s = {65535, 65535, 65535, 65535, 65535, 65535, 65535,
                       65535, 65535, 65535, 65535, 65535, 65535};
    for (unsigned i = 0; i < CT_CONV_PATH_MAX_LAYERS; i++) {
        s.c = 60000 + i;
        TU_OK(ct_conv_path_set(&cp, &s, i % 8));
    }
    TU_OK(ct_conv_path_write(path, &cpu, &cp, "the largest table"));
    TU_OK(ct_conv_path_read(path, &cpu, &got));
    cr_assert(memcmp(&cp, &got, sizeof cp) == 0, "the full table read back");
    /* damaged: the default, and why */
    write_file(path, "cltrain-conv-path 2\nCONV_GEMM=9\n", 32);
    cr_assert_eq(ct_conv_path_resolve(&cpu, &got, src, sizeof src), 0);
    cr_assert_eq(got.nlayers, 0);
    cr_assert(strstr(src, "default (CONV_GEMM=0; ignored ") == src && strstr(src, "line 2"), "%s",
              src);
    unlink(path);
    cr_assert_eq(ct_conv_path_read(path, &cpu, &got), CT_ERR_NOT_FOUND);
}

/* A context on the real device applies the stored choice to its convolutions, per shape;
 * a program may set its own; CLTRAIN_TUNE still overrides every layer. */
Test(conv_path, a_context_uses_the_stored_choice)
{
    temp_dir();
    ct_device_info dev;
    char path[4200];
    TU_OK(ct_device_choose(NULL, &dev));
    TU_OK(ct_conv_path_file(&dev, path, sizeof path));
    const unsigned dflt = ct_conv_path_default(&dev), want = dflt == 5 ? 1 : 5;
    ct_conv_path cp;
    ct_conv_path_init(&cp, want);
    TU_OK(ct_conv_path_set(&cp, &conv2, 3));
    TU_OK(ct_conv_path_write(path, &dev, &cp, "test"));
    unsetenv("CLTRAIN_TUNE");
    ct_context *ctx = tu_context();
    const char *src = ct_context_conv_path_source(ctx);
    cr_assert(strncmp(src, "stored: ", 8) == 0 && strstr(src, path), "%s", src);
    cr_assert_eq(ct_context_conv_gemm(ctx, &conv1), want);
    cr_assert_eq(ct_context_conv_gemm(ctx, &conv2), 3);
    setenv("CLTRAIN_TUNE", "-DCONV_GEMM=2", 1);
    cr_assert_eq(ct_context_conv_gemm(ctx, &conv1), 2);
    cr_assert_eq(ct_context_conv_gemm(ctx, &conv2), 2);
    unsetenv("CLTRAIN_TUNE");
    /* the program's own path, then back to the stored one */
    ct_conv_path mine;
    ct_conv_path_init(&mine, 6);
    TU_OK(ct_conv_path_set(&mine, &conv1, 4));
    TU_OK(ct_context_set_conv_path(ctx, &mine));
    cr_assert_str_eq(ct_context_conv_path_source(ctx),
                     "set by the program (CONV_GEMM=6, 1 layer shape of its own)");
    cr_assert_eq(ct_context_conv_gemm(ctx, &conv1), 4);
    cr_assert_eq(ct_context_conv_gemm(ctx, &conv2), 6);
    mine.layer_gemm[0] = 8;
    cr_assert_eq(ct_context_set_conv_path(ctx, &mine), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_context_conv_gemm(ctx, &conv1), 4, "a refused path changes nothing");
    mine.layer_gemm[0] = 4;
    mine.layer[1] = mine.layer[0]; /* a shape twice: refused too */
    mine.layer_gemm[1] = 5;
    mine.nlayers = 2;
    cr_assert_eq(ct_context_set_conv_path(ctx, &mine), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "given twice") != NULL, "%s", ct_last_error());
    cr_assert_eq(ct_context_conv_gemm(ctx, &conv1), 4);
    TU_OK(ct_context_set_conv_path(ctx, NULL));
    cr_assert_eq(ct_context_conv_gemm(ctx, &conv2), 3);
    cr_assert(strncmp(ct_context_conv_path_source(ctx), "stored: ", 8) == 0);
    ct_context_free(ctx);
    unlink(path);
    ctx = tu_context();
    cr_assert_eq(ct_context_conv_gemm(ctx, &conv2), dflt, "no file: the device's default");
    ct_context_free(ctx);
}

/* CLTRAIN_TUNE: whitespace-separated -DNAME=N with known names pass; anything else makes
 * ct_context_create fail with one line naming the bad word, and no context. */
Test(tune_env, refuses_malformed_words)
{
    static const char *const good[] = {"",
                                       "  ",
                                       "-DCONV_KV=1",
                                       " -DCONV_KV=1\t-DGEMM_MT=6 ",
                                       "-DCONV_GEMM=0 -DCONV_BWK=0",
                                       "-DGEMM_NV=1048575"};
    static const struct {
        const char *env, *word;
    } bad[] = {
        {"-DCONV_KX=2", "'-DCONV_KX=2'"},
        {"CONV_KV=2", "'CONV_KV=2'"},
        {"-DCONV_KV", "'-DCONV_KV'"},
        {"-DCONV_KV=abc", "'-DCONV_KV=abc'"},
        {"-DCONV_KV=", "'-DCONV_KV='"},
        {"-DCONV_KV=-1", "'-DCONV_KV=-1'"},
        {"-DCONV_KV=2x", "'-DCONV_KV=2x'"},
        {"-DCONV_KV=1048576", "'-DCONV_KV=1048576'"},
        {"-DCONV_KV=1 -Dconv_kv=1", "'-Dconv_kv=1'"},
        {"-DCONV_K=1", "'-DCONV_K=1'"},
        {"-DCONV_KVX=1", "'-DCONV_KVX=1'"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        setenv("CLTRAIN_TUNE", good[i], 1);
        cr_assert_eq(ct_tune_env_check(), CT_SUCCESS, "'%s': %s", good[i], ct_last_error());
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("CLTRAIN_TUNE", bad[i].env, 1);
        ct_context *ctx = NULL;
        cr_assert_eq(ct_context_create(NULL, 0, &ctx), CT_ERR_INVALID_ARG, "'%s'", bad[i].env);
        cr_assert_null(ctx);
        const char *msg = ct_last_error();
        cr_assert(strstr(msg, "CLTRAIN_TUNE") && strstr(msg, bad[i].word) && !strchr(msg, '\n'),
                  "'%s': %s", bad[i].env, msg);
    }
    unsetenv("CLTRAIN_TUNE");
}

/* The fuzzing corpus (tests/fuzz/corpus/tune) replayed: the valid seeds parse, the others
 * are refused with CT_ERR_FORMAT. */
Test(tune_file, corpus_is_read_or_refused_cleanly)
{
    static const struct {
        const char *name;
        bool valid;
    } seeds[] = {{"valid.txt", true},         {"gemmk1.txt", true},
                 {"constraint.txt", false},   {"unknown-kernel.txt", false},
                 {"not-a-number.txt", false}, {"truncated.txt", false},
                 {"empty.txt", false}};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[1024], text[CT_TUNE_FILE_MAX + 1];
        snprintf(path, sizeof path, "%s/../../fuzz/corpus/tune/%s", CT_GOLDEN_DIR, seeds[i].name);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "%s missing", path);
        size_t n = fread(text, 1, sizeof text, f);
        fclose(f);
        ct_clblast_params p;
        ct_status st = ct_tune_file_parse(text, n, &p, NULL);
        cr_assert_eq(st, seeds[i].valid ? CT_SUCCESS : CT_ERR_FORMAT, "%s: %s", seeds[i].name,
                     ct_last_error());
    }
}
