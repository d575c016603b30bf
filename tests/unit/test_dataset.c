/* tests/unit/test_dataset.c — the dataset API: the real Fashion-MNIST files (counts, shape,
 * label histogram, first labels, a CRC-32 of every pixel and label computed here straight
 * from the .gz files with zlib), MNIST-format directories generated here (label range,
 * count mismatch, raw vs gzip), datasets from memory, subsets, splits, float batches and
 * the seeded permutation (against values from an independent Python implementation of
 * the recipe documented in cltrain/data.h). */
#include <math.h>

#include "data_fixture.h"
#include "testutil.h"

#define FASHION_DIR CT_DATA_DEFAULT_ROOT "/fashion-mnist"

TestSuite(dataset, .init = tu_tmpdir_setup, .fini = tu_tmpdir_teardown);

/* ---- the real Fashion-MNIST ------------------------------------------------------------- */

static int fashion_present(void)
{
    struct stat sb;
    return stat(FASHION_DIR, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* CRC-32 of a gzip file's content after skipping `skip` bytes, read with zlib's gz*
 * functions (not the library's reader); *n gets the number of bytes covered. */
static uLong gz_crc(const char *path, size_t skip, size_t *n)
{
    gzFile g = gzopen(path, "rb");
    cr_assert(g != NULL, "gzopen %s", path);
    unsigned char buf[65536];
    uLong crc = crc32(0L, Z_NULL, 0);
    size_t total = 0;
    int r;
    while ((r = gzread(g, buf, sizeof buf)) > 0) {
        size_t from = total < skip ? (skip - total < (size_t)r ? skip - total : (size_t)r) : 0;
        crc = crc32(crc, buf + from, (uInt)((size_t)r - from));
        total += (size_t)r;
    }
    cr_assert(r == 0, "gzread %s failed", path);
    gzclose(g);
    *n = total - skip;
    return crc;
}

static void check_fashion(ct_split split, const char *prefix, size_t count,
                          const uint8_t *first_labels, double mean_ref, double std_ref)
{
    if (!fashion_present())
        cr_skip_test("Fashion-MNIST not installed: %s is absent", FASHION_DIR);
    ct_dataset *ds = NULL;
    /* NULL dir: the default location, which is where these files are. */
    ct_status st = ct_dataset_load("fashion-mnist", NULL, split, &ds);
    cr_assert(st == CT_SUCCESS, "%s", ct_last_error());
    size_t shape[4];
    ct_dataset_shape(ds, shape);
    cr_assert(shape[0] == count && shape[1] == 1 && shape[2] == 28 && shape[3] == 28,
              "shape %zu %zu %zu %zu", shape[0], shape[1], shape[2], shape[3]);
    cr_assert_eq(ct_dataset_count(ds), count);
    cr_assert_eq(ct_dataset_num_classes(ds), 10);
    cr_assert_str_eq(ct_dataset_name(ds), "fashion-mnist");
    static const char *names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    for (size_t k = 0; k < 10; k++)
        cr_assert_str_eq(ct_dataset_class_name(ds, k), names[k]);

    const uint8_t *lb = ct_dataset_labels(ds);
    size_t hist[10] = {0};
    for (size_t i = 0; i < count; i++) {
        cr_assert(lb[i] < 10);
        hist[lb[i]]++;
    }
    for (size_t k = 0; k < 10; k++)
        cr_assert_eq(hist[k], count / 10, "class %zu has %zu samples", k, hist[k]);
    for (size_t i = 0; i < 12; i++)
        cr_assert_eq(lb[i], first_labels[i], "label %zu", i);

    char path[512];
    size_t n;
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", FASHION_DIR, prefix);
    uLong want = gz_crc(path, 16, &n);
    cr_assert_eq(n, count * 784);
    cr_assert_eq(crc32(crc32(0L, Z_NULL, 0), ct_dataset_images(ds), (uInt)n), want,
                 "pixel CRC differs");
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", FASHION_DIR, prefix);
    want = gz_crc(path, 8, &n);
    cr_assert_eq(n, count);
    cr_assert_eq(crc32(crc32(0L, Z_NULL, 0), lb, (uInt)n), want, "label CRC differs");

    /* References from numpy (float64, pairwise sums) over the same files: both sides are
     * double computations of ~47M terms, agreeing to ~1e-15; 1e-12 leaves room. */
    cr_assert(fabs(ct_dataset_mean(ds, 0) - mean_ref) < 1e-12, "mean %.17g",
              ct_dataset_mean(ds, 0));
    cr_assert(fabs(ct_dataset_std(ds, 0) - std_ref) < 1e-12, "std %.17g", ct_dataset_std(ds, 0));
    ct_dataset_free(ds);
}

Test(dataset, fashion_mnist_train)
{
    static const uint8_t first[12] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9};
    /* numpy: x.mean(), x.std() of the pixels / 255 (the usual 0.2860, 0.3530). */
    check_fashion(CT_SPLIT_TRAIN, "train", 60000, first, 0.2860405969887955, 0.35302424451492237);
}

Test(dataset, fashion_mnist_test)
{
    static const uint8_t first[12] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5};
    check_fashion(CT_SPLIT_TEST, "t10k", 10000, first, 0.2868492807122849, 0.35244415324744005);
}

/* ---- MNIST-format directories made here ------------------------------------------------ */

/* Writes <prefix>-images-idx3-ubyte and -labels-idx1-ubyte (gzip when gz) with n images of
 * h x w and n_labels labels (label i = i % 10 unless bad_label >= 0 replaces label 2). */
static void write_mnist(const char *prefix, int gz, size_t n, uint32_t h, uint32_t w,
                        size_t n_labels, int bad_label, uint8_t *pixels_out)
{
    uint32_t idims[3] = {(uint32_t)n, h, w}, ldims[1] = {(uint32_t)n_labels};
    size_t count = n * h * w, len, gzlen;
    uint8_t *px = malloc(count), *lab = malloc(n_labels);
    df_fill(px, count, n + h, 256);
    for (size_t i = 0; i < n_labels; i++)
        lab[i] = (uint8_t)(i % 10);
    if (bad_label >= 0)
        lab[2] = (uint8_t)bad_label;
    if (pixels_out)
        memcpy(pixels_out, px, count);
    char name[64];
    for (int f = 0; f < 2; f++) {
        uint8_t *b =
            f == 0 ? df_idx(3, idims, px, count, &len) : df_idx(1, ldims, lab, n_labels, &len);
        snprintf(name, sizeof name, "%s-%s%s", prefix,
                 f == 0 ? "images-idx3-ubyte" : "labels-idx1-ubyte", gz ? ".gz" : "");
        if (gz) {
            uint8_t *z = df_gzip(b, len, &gzlen);
            df_write(name, z, gzlen);
            free(z);
        } else {
            df_write(name, b, len);
        }
        free(b);
    }
    free(px);
    free(lab);
}

Test(dataset, mnist_raw_and_gzip)
{
    uint8_t px[20 * 6 * 5];
    write_mnist("train", 0, 20, 6, 5, 20, -1, px);
    write_mnist("t10k", 1, 7, 4, 4, 7, -1, NULL);
    ct_dataset *tr = NULL, *te = NULL;
    ct_status st = ct_dataset_load("mnist", tu_tmpdir(), CT_SPLIT_TRAIN, &tr);
    cr_assert(st == CT_SUCCESS, "%s", ct_last_error());
    st = ct_dataset_load("mnist", tu_tmpdir(), CT_SPLIT_TEST, &te);
    cr_assert(st == CT_SUCCESS, "%s", ct_last_error());
    size_t shape[4];
    ct_dataset_shape(tr, shape);
    cr_assert(shape[0] == 20 && shape[1] == 1 && shape[2] == 6 && shape[3] == 5);
    cr_assert(memcmp(ct_dataset_images(tr), px, sizeof px) == 0);
    for (size_t i = 0; i < 20; i++)
        cr_assert_eq(ct_dataset_labels(tr)[i], i % 10);
    cr_assert_str_eq(ct_dataset_class_name(tr, 3), "3");
    cr_assert_eq(ct_dataset_count(te), 7);
    ct_dataset_free(tr);
    ct_dataset_free(te);
}

Test(dataset, gzip_file_is_preferred)
{
    /* Both forms present with different contents: the .gz one is read. */
    write_mnist("train", 0, 10, 3, 3, 10, -1, NULL);
    uint8_t px[12 * 2 * 2];
    write_mnist("train", 1, 12, 2, 2, 12, -1, px);
    ct_dataset *ds = NULL;
    ct_status st = ct_dataset_load("mnist", tu_tmpdir(), CT_SPLIT_TRAIN, &ds);
    cr_assert(st == CT_SUCCESS, "%s", ct_last_error());
    cr_assert_eq(ct_dataset_count(ds), 12);
    cr_assert(memcmp(ct_dataset_images(ds), px, sizeof px) == 0);
    ct_dataset_free(ds);
}

Test(dataset, label_out_of_range)
{
    for (int bad = 10; bad < 256; bad += 49) {
        write_mnist("train", 1, 5, 2, 2, 5, bad, NULL);
        ct_dataset *ds = NULL;
        char part[64];
        snprintf(part, sizeof part, "label %d at index 2", bad);
        df_expect(ct_dataset_load("fashion-mnist", tu_tmpdir(), CT_SPLIT_TRAIN, &ds), CT_ERR_FORMAT,
                  tu_tmp_path("train-labels-idx1-ubyte.gz"), part, "label out of range");
        cr_assert_null(ds);
    }
}

Test(dataset, counts_disagree)
{
    write_mnist("train", 1, 6, 2, 2, 5, -1, NULL);
    ct_dataset *ds = NULL;
    ct_status st = ct_dataset_load("mnist", tu_tmpdir(), CT_SPLIT_TRAIN, &ds);
    df_expect(st, CT_ERR_FORMAT, tu_tmp_path("train-images-idx3-ubyte.gz"), "6 images", "count");
    df_expect(st, CT_ERR_FORMAT, tu_tmp_path("train-labels-idx1-ubyte.gz"), "5 labels", "count");
    cr_assert_null(ds);
}

Test(dataset, wrong_ranks)
{
    /* Images stored as 2-D, labels as 2-D. */
    static const uint32_t d2[2] = {4, 9};
    uint8_t px[36] = {0};
    size_t len;
    write_mnist("train", 0, 4, 3, 3, 4, -1, NULL);
    uint8_t *b = df_idx(2, d2, px, 36, &len);
    const char *p = df_write("train-images-idx3-ubyte", b, len);
    ct_dataset *ds = NULL;
    df_expect(ct_dataset_load("mnist", tu_tmpdir(), CT_SPLIT_TRAIN, &ds), CT_ERR_FORMAT, p,
              "expected 3 (N, H, W)", "2-D images");
    free(b);
    write_mnist("train", 0, 4, 3, 3, 4, -1, NULL);
    static const uint32_t l2[2] = {4, 1};
    b = df_idx(2, l2, px, 4, &len);
    p = df_write("train-labels-idx1-ubyte", b, len);
    df_expect(ct_dataset_load("mnist", tu_tmpdir(), CT_SPLIT_TRAIN, &ds), CT_ERR_FORMAT, p,
              "expected 1 (N)", "2-D labels");
    free(b);
}

Test(dataset, missing_files_and_bad_arguments)
{
    ct_dataset *ds = NULL;
    df_expect(ct_dataset_load("mnist", tu_tmpdir(), CT_SPLIT_TRAIN, &ds), CT_ERR_IO,
              tu_tmp_path("train-images-idx3-ubyte.gz"), "train-images-idx3-ubyte",
              "missing images");
    write_mnist("t10k", 0, 3, 2, 2, 3, -1, NULL);
    cr_assert(unlink(tu_tmp_path("t10k-labels-idx1-ubyte")) == 0);
    df_expect(ct_dataset_load("mnist", tu_tmpdir(), CT_SPLIT_TEST, &ds), CT_ERR_IO,
              tu_tmp_path("t10k-labels-idx1-ubyte"), NULL, "missing labels");
    /* A malformed file met through the loader keeps its own message. */
    const char *p = df_write("t10k-labels-idx1-ubyte", "\0\0\x08", 3);
    df_expect(ct_dataset_load("mnist", tu_tmpdir(), CT_SPLIT_TEST, &ds), CT_ERR_FORMAT, p,
              "truncated IDX header", "truncated labels");
    cr_assert_eq(ct_dataset_load("imagenet", tu_tmpdir(), CT_SPLIT_TEST, &ds), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "imagenet") != NULL);
    cr_assert_eq(ct_dataset_load("mnist", tu_tmpdir(), (ct_split)7, &ds), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_dataset_load(NULL, tu_tmpdir(), CT_SPLIT_TEST, &ds), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_dataset_load("mnist", tu_tmpdir(), CT_SPLIT_TEST, NULL), CT_ERR_INVALID_ARG);
    cr_assert_null(ds);
}

/* ---- datasets from memory, subsets, splits ------------------------------------------- */

/* n images of (2, 3, 4) with pixel values from df_fill and labels i % k. */
static ct_dataset *small_dataset(size_t n, size_t k, uint8_t *images, uint8_t *labels)
{
    df_fill(images, n * 24, 77, 256);
    for (size_t i = 0; i < n; i++)
        labels[i] = (uint8_t)(i % k);
    ct_dataset *ds = NULL;
    ct_status st = ct_dataset_create("toy", n, 2, 3, 4, k, images, labels, NULL, &ds);
    cr_assert(st == CT_SUCCESS, "%s", ct_last_error());
    return ds;
}

static void check_stats(const ct_dataset *ds)
{
    /* Two-pass double over the pixels (not a histogram): rounding-level agreement. */
    size_t s[4];
    ct_dataset_shape(ds, s);
    size_t plane = s[2] * s[3];
    for (size_t c = 0; c < s[1]; c++) {
        double sum = 0, ss = 0, cnt = (double)(s[0] * plane);
        for (size_t i = 0; i < s[0]; i++)
            for (size_t k = 0; k < plane; k++)
                sum += ct_dataset_images(ds)[(i * s[1] + c) * plane + k] / 255.0;
        double mean = sum / cnt;
        for (size_t i = 0; i < s[0]; i++)
            for (size_t k = 0; k < plane; k++) {
                double d = ct_dataset_images(ds)[(i * s[1] + c) * plane + k] / 255.0 - mean;
                ss += d * d;
            }
        cr_assert(fabs(ct_dataset_mean(ds, c) - mean) <= 1e-13, "mean[%zu]", c);
        cr_assert(fabs(ct_dataset_std(ds, c) - sqrt(ss / cnt)) <= 1e-13, "std[%zu]", c);
    }
    cr_assert_eq(ct_dataset_mean(ds, s[1]), 0.0);
}

Test(dataset, create_copies_and_checks_labels)
{
    uint8_t im[10 * 24], lb[10];
    ct_dataset *ds = small_dataset(10, 3, im, lb);
    im[0] ^= 1; /* the dataset holds its own copy */
    cr_assert_neq(ct_dataset_images(ds)[0], im[0]);
    cr_assert_str_eq(ct_dataset_name(ds), "toy");
    cr_assert_eq(ct_dataset_num_classes(ds), 3);
    cr_assert_str_eq(ct_dataset_class_name(ds, 2), "2");
    check_stats(ds);
    ct_dataset_free(ds);

    static const char *names[2] = {"cat", "dog"};
    uint8_t one[24] = {0}, l1 = 1, l2 = 2;
    ct_status st = ct_dataset_create(NULL, 1, 2, 3, 4, 2, one, &l1, names, &ds);
    cr_assert(st == CT_SUCCESS, "%s", ct_last_error());
    cr_assert_str_eq(ct_dataset_class_name(ds, 1), "dog");
    cr_assert_str_eq(ct_dataset_name(ds), "custom");
    cr_assert_eq(ct_dataset_std(ds, 0), 0.0);
    ct_dataset_free(ds);
    ds = NULL;
    cr_assert_eq(ct_dataset_create("x", 1, 2, 3, 4, 2, one, &l2, names, &ds), CT_ERR_FORMAT);
    cr_assert(strstr(ct_last_error(), "label 2 at index 0") != NULL, "%s", ct_last_error());
    cr_assert_eq(ct_dataset_create("x", 0, 2, 3, 4, 2, one, &l1, names, &ds), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_dataset_create("x", 1, 2, 3, 4, 0, one, &l1, names, &ds), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_dataset_create("x", 1, 2, 3, 4, 257, one, &l1, NULL, &ds), CT_ERR_INVALID_ARG);
    cr_assert_null(ds);
    ct_dataset_free(NULL);
}

Test(dataset, subset_and_split)
{
    uint8_t im[10 * 24], lb[10];
    ct_dataset *ds = small_dataset(10, 4, im, lb);
    ct_dataset *sub = NULL, *tr = NULL, *va = NULL;
    static const size_t pick[4] = {9, 0, 9, 4};
    ct_status st = ct_dataset_subset(ds, pick, 4, &sub);
    cr_assert(st == CT_SUCCESS, "%s", ct_last_error());
    for (size_t i = 0; i < 4; i++) {
        cr_assert(memcmp(ct_dataset_images(sub) + i * 24, im + pick[i] * 24, 24) == 0);
        cr_assert_eq(ct_dataset_labels(sub)[i], lb[pick[i]]);
    }
    check_stats(sub);
    ct_dataset_free(sub);
    static const size_t bad[2] = {3, 10};
    sub = NULL;
    cr_assert_eq(ct_dataset_subset(ds, bad, 2, &sub), CT_ERR_INVALID_ARG);
    cr_assert_null(sub);

    /* Without shuffle: the last 3 are validation. */
    st = ct_dataset_split(ds, 3, 0, 0, &tr, &va);
    cr_assert(st == CT_SUCCESS, "%s", ct_last_error());
    cr_assert_eq(ct_dataset_count(tr), 7);
    cr_assert_eq(ct_dataset_count(va), 3);
    cr_assert(memcmp(ct_dataset_images(tr), im, 7 * 24) == 0);
    cr_assert(memcmp(ct_dataset_images(va), im + 7 * 24, 3 * 24) == 0);
    check_stats(tr);
    check_stats(va);
    ct_dataset_free(tr);
    ct_dataset_free(va);

    /* With shuffle (seed 42): ct_shuffle_permutation(42, 0, 10) is
     * [7, 3, 8, 9, 5, 6, 4, 1, 0, 2] (see the permutation test), so validation is
     * samples 1, 0, 2 in that order and training the others ascending. */
    st = ct_dataset_split(ds, 3, 1, 42, &tr, &va);
    cr_assert(st == CT_SUCCESS, "%s", ct_last_error());
    static const size_t va_idx[3] = {1, 0, 2}, tr_idx[7] = {3, 4, 5, 6, 7, 8, 9};
    for (size_t i = 0; i < 3; i++)
        cr_assert(memcmp(ct_dataset_images(va) + i * 24, im + va_idx[i] * 24, 24) == 0, "val %zu",
                  i);
    for (size_t i = 0; i < 7; i++) {
        cr_assert(memcmp(ct_dataset_images(tr) + i * 24, im + tr_idx[i] * 24, 24) == 0, "train %zu",
                  i);
        cr_assert_eq(ct_dataset_labels(tr)[i], lb[tr_idx[i]]);
    }
    ct_dataset_free(tr);
    ct_dataset_free(va);

    tr = va = NULL;
    cr_assert_eq(ct_dataset_split(ds, 0, 0, 0, &tr, &va), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_dataset_split(ds, 10, 0, 0, &tr, &va), CT_ERR_INVALID_ARG);
    cr_assert(tr == NULL && va == NULL);
    ct_dataset_free(ds);
}

Test(dataset, float_batch_matches_to_tensor_and_normalize)
{
    uint8_t im[10 * 24], lb[10];
    ct_dataset *ds = small_dataset(10, 5, im, lb);
    static const size_t idx[3] = {8, 2, 8};
    const float mean[2] = {0.25f, 0.5f}, sd[2] = {0.3f, 0.125f};
    float x[3 * 24], y[3];
    ct_status st = ct_dataset_batch(ds, idx, 3, mean, sd, x, y);
    cr_assert(st == CT_SUCCESS, "%s", ct_last_error());
    /* Reference in double: float32 p/255, minus, divide each round once (<= 0.5 ulp), so
     * |x - ref| <= 3 ulp of values below 10: rtol 1e-6 plus atol 1e-6 covers it. */
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(y[i], (float)lb[idx[i]]);
        for (size_t c = 0; c < 2; c++)
            for (size_t k = 0; k < 12; k++) {
                uint8_t p = im[idx[i] * 24 + c * 12 + k];
                double ref = ((double)p / 255.0 - (double)mean[c]) / (double)sd[c];
                double got = x[i * 24 + c * 12 + k];
                cr_assert(fabs(got - ref) <= 1e-6 + 1e-6 * fabs(ref),
                          "x[%zu][%zu][%zu] %.9g vs %.9g", i, c, k, got, ref);
            }
    }
    /* No normalization: exactly (float)p / 255.0f, as torchvision's ToTensor. */
    st = ct_dataset_batch(ds, idx, 3, NULL, NULL, x, NULL);
    cr_assert(st == CT_SUCCESS, "%s", ct_last_error());
    for (size_t j = 0; j < 24; j++)
        cr_assert_eq(x[24 + j], (float)im[2 * 24 + j] / 255.0f);

    static const size_t out_of_range[1] = {10};
    cr_assert_eq(ct_dataset_batch(ds, out_of_range, 1, NULL, NULL, x, y), CT_ERR_INVALID_ARG);
    const float zero[2] = {1.0f, 0.0f};
    cr_assert_eq(ct_dataset_batch(ds, idx, 3, mean, zero, x, y), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_dataset_batch(ds, idx, 3, mean, NULL, x, y), CT_ERR_INVALID_ARG);
    ct_dataset_free(ds);
}

/* CRC-32 of float32 bit patterns serialized little-endian (numpy's tobytes() on x86). */
static uLong float_crc(const float *x, size_t n)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                              (unsigned char)(u >> 24)};
        crc = crc32(crc, b, 4);
    }
    return crc;
}

Test(dataset, float_batch_is_bit_exact_with_torchvision)
{
    /* Every byte value in two channels, against PyTorch 1.13 (x.to(float32).div(255), then
     * .sub(mean).div(std) with float32 mean/std, as ToTensor + Normalize do), by CRC-32 of
     * the 512 float32 results; generated with
     *   x = torch.arange(256, dtype=torch.uint8).reshape(1,1,16,16).repeat(1,2,1,1)
     *   v = x.float().div(255); y = v.sub(mean).div(std)   # mean, std as (2,1,1) float32
     *   zlib.crc32(y.numpy().tobytes()), zlib.crc32(v.numpy().tobytes())
     * Exact equality is the contract: multiplying by 1/std instead changes 3 of the 512. */
    uint8_t im[512], lb = 0;
    for (size_t i = 0; i < 512; i++)
        im[i] = (uint8_t)(i % 256);
    ct_dataset *ds = NULL;
    TU_OK(ct_dataset_create("bytes", 1, 2, 16, 16, 1, im, &lb, NULL, &ds));
    const float mean[2] = {0.2860406f, 0.5f}, sd[2] = {0.3530242f, 0.125f};
    float x[512];
    static const size_t zero = 0;
    TU_OK(ct_dataset_batch(ds, &zero, 1, mean, sd, x, NULL));
    cr_assert_float_eq(x[0], -0.8102577328681946f, 0.0f);
    cr_assert_float_eq(x[485], 3.1843137741088867f, 0.0f);
    cr_assert_eq(float_crc(x, 512), 0x2fd9c9caUL, "normalized batch differs from torchvision");
    TU_OK(ct_dataset_batch(ds, &zero, 1, NULL, NULL, x, NULL));
    cr_assert_eq(float_crc(x, 512), 0x331d503bUL, "ToTensor values differ from torchvision");
    ct_dataset_free(ds);
}

/* ---- permutations -------------------------------------------------------------------- */

Test(dataset, permutation_matches_the_documented_recipe)
{
    /* Expected values from an independent Python implementation of the recipe in
     * cltrain/data.h (arbitrary-precision integers masked to 64 bits). */
    static const struct {
        uint64_t seed, stream;
        size_t n;
        size_t want[16];
    } cases[] = {
        {42, 0, 10, {7, 3, 8, 9, 5, 6, 4, 1, 0, 2}},
        {42, 1, 10, {5, 9, 2, 3, 7, 1, 8, 0, 4, 6}},
        {0, 0, 16, {10, 5, 13, 6, 3, 8, 0, 1, 11, 15, 7, 9, 12, 14, 2, 4}},
        {0xDEADBEEFCAFEF00DULL, 7, 12, {8, 1, 2, 6, 7, 0, 5, 11, 10, 9, 4, 3}},
    };
    size_t got[16];
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        ct_shuffle_permutation(cases[t].seed, cases[t].stream, cases[t].n, got);
        for (size_t i = 0; i < cases[t].n; i++)
            cr_assert_eq(got[i], cases[t].want[i], "case %zu position %zu", t, i);
    }
    size_t *big = malloc(60000 * sizeof *big);
    ct_shuffle_permutation(1, 0, 60000, big);
    static const size_t head[4] = {47643, 3725, 49898, 17263},
                        tail[4] = {3674, 50448, 21926, 59557};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(big[i], head[i]);
        cr_assert_eq(big[60000 - 4 + i], tail[i]);
    }
    /* A permutation: every index exactly once. */
    unsigned char *seen = calloc(60000, 1);
    for (size_t i = 0; i < 60000; i++) {
        cr_assert(big[i] < 60000 && !seen[big[i]]);
        seen[big[i]] = 1;
    }
    free(seen);
    free(big);
    ct_shuffle_permutation(5, 0, 0, got); /* n = 0 and 1 are fine */
    ct_shuffle_permutation(5, 0, 1, got);
    cr_assert_eq(got[0], 0);
}

Test(dataset, permutation_is_uniform)
{
    /* Where element 0 lands over 20000 seeds of n = 5: each position 4000 expected,
     * binomial sd = sqrt(20000 * 0.2 * 0.8) ~ 57; allow 5 sd (a biased shuffle such as
     * "swap with any of n" misses this by far). */
    size_t counts[5] = {0}, p[5];
    for (uint64_t s = 0; s < 20000; s++) {
        ct_shuffle_permutation(s, 3, 5, p);
        for (size_t i = 0; i < 5; i++)
            if (p[i] == 0)
                counts[i]++;
    }
    for (size_t i = 0; i < 5; i++)
        cr_assert(counts[i] > 4000 - 285 && counts[i] < 4000 + 285, "position %zu: %zu", i,
                  counts[i]);
}
