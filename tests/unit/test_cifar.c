/* tests/unit/test_cifar.c — the CIFAR-10 binary reader and the "cifar10" dataset on batches
 * generated here: layout (label byte, then R, G, B planes), concatenation of the five train
 * batches, the optional cifar-10-batches-bin/ level, and every malformed case with
 * CT_ERR_FORMAT (or CT_ERR_IO for missing files) and a message naming the file. References
 * are the bytes written here (exact), and statistics recomputed here in double. */
#include <math.h>

#include "data_fixture.h"

#include "data/data_internal.h"

TestSuite(cifar, .init = tu_tmpdir_setup, .fini = tu_tmpdir_teardown);

#define REC CT_CIFAR_RECORD

/* `n` records with labels (seed + i) % 10 and pseudo-random pixels. malloc'd. */
static uint8_t *make_batch(size_t n, uint64_t seed)
{
    uint8_t *b = malloc(n * REC);
    cr_assert(b != NULL);
    df_fill(b, n * REC, seed, 256);
    for (size_t i = 0; i < n; i++)
        b[i * REC] = (uint8_t)((seed + i) % 10);
    return b;
}

static ct_status append(const char *path, size_t *n, uint8_t **im, uint8_t **lb)
{
    return ct_cifar_append(path, CT_DATA_MAX_BYTES, n, im, lb);
}

Test(cifar, reads_records_in_chw_order)
{
    uint8_t *b = make_batch(3, 4);
    const char *p = df_write("b.bin", b, 3 * REC);
    uint8_t *im = NULL, *lb = NULL;
    size_t n = 0;
    ct_status st = append(p, &n, &im, &lb);
    cr_assert(st == CT_SUCCESS, "%s", ct_last_error());
    cr_assert_eq(n, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(lb[i], (4 + i) % 10);
        cr_assert(memcmp(im + i * 3072, b + i * REC + 1, 3072) == 0, "record %zu", i);
    }
    /* A second file appends after the first. */
    uint8_t *b2 = make_batch(2, 7);
    p = df_write("b2.bin", b2, 2 * REC);
    st = append(p, &n, &im, &lb);
    cr_assert(st == CT_SUCCESS, "%s", ct_last_error());
    cr_assert_eq(n, 5);
    cr_assert_eq(lb[3], 7);
    cr_assert(memcmp(im + 4 * 3072, b2 + REC + 1, 3072) == 0);
    free(im);
    free(lb);
    free(b);
    free(b2);
}

Test(cifar, size_not_a_multiple_of_the_record)
{
    uint8_t *b = make_batch(2, 1);
    size_t sizes[] = {1, 2, 3072, 3074, 2 * REC - 1, 2 * REC - 3072};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        uint8_t *im = NULL, *lb = NULL;
        size_t n = 0;
        char what[48];
        snprintf(what, sizeof what, "size %zu", sizes[s]);
        const char *p = df_write("cut.bin", b, sizes[s]);
        df_expect(append(p, &n, &im, &lb), CT_ERR_FORMAT, p, "not a multiple of the 3073", what);
        cr_assert_eq(n, 0, "%s: count changed on failure", what);
        free(im);
        free(lb);
        /* The same through gzip, where the size is only known at the end. */
        size_t gzlen;
        uint8_t *gz = df_gzip(b, sizes[s], &gzlen);
        p = df_write("cut.bin.gz", gz, gzlen);
        im = NULL;
        lb = NULL;
        df_expect(append(p, &n, &im, &lb), CT_ERR_FORMAT, p, "not a multiple of the 3073", what);
        free(gz);
        free(im);
        free(lb);
    }
    free(b);
}

Test(cifar, truncated_at_every_byte_of_the_last_record)
{
    uint8_t *b = make_batch(2, 9);
    for (size_t k = REC + 1; k < 2 * REC; k++) {
        uint8_t *im = NULL, *lb = NULL;
        size_t n = 0;
        char what[48];
        snprintf(what, sizeof what, "truncated to %zu bytes", k);
        const char *p = df_write("t.bin", b, k);
        df_expect(append(p, &n, &im, &lb), CT_ERR_FORMAT, p, "not a multiple", what);
        free(im);
        free(lb);
    }
    free(b);
}

Test(cifar, empty_file)
{
    uint8_t *im = NULL, *lb = NULL;
    size_t n = 0;
    const char *p = df_write("empty.bin", "", 0);
    df_expect(append(p, &n, &im, &lb), CT_ERR_FORMAT, p, "empty", "empty file");
    free(im);
    free(lb);
}

Test(cifar, label_out_of_range)
{
    static const uint8_t bad_labels[] = {10, 11, 255};
    for (size_t t = 0; t < sizeof bad_labels; t++) {
        uint8_t *b = make_batch(3, 0);
        b[REC] = bad_labels[t]; /* record 1 */
        uint8_t *im = NULL, *lb = NULL;
        size_t n = 0;
        char part[48];
        snprintf(part, sizeof part, "record 1 has label %u", bad_labels[t]);
        const char *p = df_write("lab.bin", b, 3 * REC);
        df_expect(append(p, &n, &im, &lb), CT_ERR_FORMAT, p, part, "bad label");
        free(im);
        free(lb);
        free(b);
    }
}

Test(cifar, missing_file)
{
    uint8_t *im = NULL, *lb = NULL;
    size_t n = 0;
    const char *p = tu_tmp_path("nope.bin");
    df_expect(append(p, &n, &im, &lb), CT_ERR_IO, p, NULL, "missing");
}

/* Writes the five train batches (2, 3, 1, 2, 2 records) and a test batch of 3 into
 * `sub` (relative to the temp dir; "" for the dir itself). */
static void write_cifar_dir(const char *sub, uint8_t *batches[6], size_t counts[6])
{
    static const size_t n[6] = {2, 3, 1, 2, 2, 3};
    char name[64];
    for (int b = 0; b < 6; b++) {
        batches[b] = make_batch(n[b], (uint64_t)(10 * b + 3));
        counts[b] = n[b];
        if (b < 5)
            snprintf(name, sizeof name, "%s%sdata_batch_%d.bin", sub, *sub ? "/" : "", b + 1);
        else
            snprintf(name, sizeof name, "%s%stest_batch.bin", sub, *sub ? "/" : "");
        df_write(name, batches[b], n[b] * REC);
    }
}

static void check_stats(const ct_dataset *ds)
{
    /* Two-pass double mean and population std straight over the pixels: a different
     * method from the library's histogram, so only rounding (~1e-15) may differ. */
    size_t shape[4];
    ct_dataset_shape(ds, shape);
    const uint8_t *im = ct_dataset_images(ds);
    size_t plane = shape[2] * shape[3];
    for (size_t c = 0; c < shape[1]; c++) {
        double sum = 0, ss = 0, cnt = (double)(shape[0] * plane);
        for (size_t i = 0; i < shape[0]; i++)
            for (size_t k = 0; k < plane; k++)
                sum += im[(i * shape[1] + c) * plane + k] / 255.0;
        double mean = sum / cnt;
        for (size_t i = 0; i < shape[0]; i++)
            for (size_t k = 0; k < plane; k++) {
                double d = im[(i * shape[1] + c) * plane + k] / 255.0 - mean;
                ss += d * d;
            }
        double sd = sqrt(ss / cnt);
        cr_assert(fabs(ct_dataset_mean(ds, c) - mean) <= 1e-12, "mean[%zu] %.17g vs %.17g", c,
                  ct_dataset_mean(ds, c), mean);
        cr_assert(fabs(ct_dataset_std(ds, c) - sd) <= 1e-12, "std[%zu] %.17g vs %.17g", c,
                  ct_dataset_std(ds, c), sd);
    }
}

static void check_loaded(const char *dir, uint8_t *batches[6], size_t counts[6])
{
    ct_dataset *tr = NULL, *te = NULL;
    ct_status st = ct_dataset_load("cifar10", dir, CT_SPLIT_TRAIN, &tr);
    cr_assert(st == CT_SUCCESS, "train: %s", ct_last_error());
    st = ct_dataset_load("cifar10", dir, CT_SPLIT_TEST, &te);
    cr_assert(st == CT_SUCCESS, "test: %s", ct_last_error());
    size_t shape[4];
    ct_dataset_shape(tr, shape);
    cr_assert(shape[0] == 10 && shape[1] == 3 && shape[2] == 32 && shape[3] == 32,
              "train shape %zu %zu %zu %zu", shape[0], shape[1], shape[2], shape[3]);
    cr_assert_eq(ct_dataset_count(te), 3);
    cr_assert_eq(ct_dataset_num_classes(tr), 10);
    cr_assert_str_eq(ct_dataset_class_name(tr, 0), "airplane");
    cr_assert_str_eq(ct_dataset_class_name(tr, 1), "automobile");
    cr_assert_str_eq(ct_dataset_class_name(tr, 9), "truck");
    cr_assert_null(ct_dataset_class_name(tr, 10));
    cr_assert_str_eq(ct_dataset_name(tr), "cifar10");
    /* Train = batches 1..5 in order. */
    size_t at = 0;
    for (int b = 0; b < 5; b++) {
        for (size_t i = 0; i < counts[b]; i++, at++) {
            cr_assert_eq(ct_dataset_labels(tr)[at], batches[b][i * REC], "sample %zu", at);
            cr_assert(memcmp(ct_dataset_images(tr) + at * 3072, batches[b] + i * REC + 1, 3072) ==
                          0,
                      "sample %zu", at);
        }
    }
    for (size_t i = 0; i < 3; i++)
        cr_assert(memcmp(ct_dataset_images(te) + i * 3072, batches[5] + i * REC + 1, 3072) == 0);
    check_stats(tr);
    check_stats(te);
    ct_dataset_free(tr);
    ct_dataset_free(te);
}

Test(cifar, dataset_from_a_directory)
{
    uint8_t *batches[6];
    size_t counts[6];
    write_cifar_dir("", batches, counts);
    check_loaded(tu_tmpdir(), batches, counts);
    for (int b = 0; b < 6; b++)
        free(batches[b]);
}

Test(cifar, dataset_from_the_archive_subdirectory)
{
    uint8_t *batches[6];
    size_t counts[6];
    df_mkdir("cifar-10-batches-bin");
    write_cifar_dir("cifar-10-batches-bin", batches, counts);
    check_loaded(tu_tmpdir(), batches, counts);
    for (int b = 0; b < 6; b++)
        free(batches[b]);
}

Test(cifar, dataset_with_a_missing_or_bad_batch)
{
    uint8_t *batches[6];
    size_t counts[6];
    ct_dataset *ds = NULL;
    write_cifar_dir("", batches, counts);

    /* Batch 4 with a bad label: the error names that file. */
    batches[3][0] = 42;
    const char *p = df_write("data_batch_4.bin", batches[3], counts[3] * REC);
    df_expect(ct_dataset_load("cifar10", tu_tmpdir(), CT_SPLIT_TRAIN, &ds), CT_ERR_FORMAT, p,
              "label 42", "bad batch 4");
    cr_assert_null(ds);

    cr_assert(unlink(tu_tmp_path("data_batch_3.bin")) == 0);
    df_expect(ct_dataset_load("cifar10", tu_tmpdir(), CT_SPLIT_TRAIN, &ds), CT_ERR_IO,
              tu_tmp_path("data_batch_3.bin"), NULL, "missing batch 3");
    cr_assert(unlink(tu_tmp_path("test_batch.bin")) == 0);
    df_expect(ct_dataset_load("cifar10", tu_tmpdir(), CT_SPLIT_TEST, &ds), CT_ERR_IO,
              tu_tmp_path("test_batch.bin"), NULL, "missing test batch");
    for (int b = 0; b < 6; b++)
        free(batches[b]);
}
