/* lib/data/dataset.c — named datasets on disk, datasets from memory, subsets and splits,
 * per-channel statistics and float batches. Host memory only. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/internal.h"
#include "data/data_internal.h"

#define CT_PATH_MAX 4096

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                              "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                              "Bag",         "Ankle boot"};
static const char *const mnist_names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
static const char *const cifar_names[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                            "dog",      "frog",       "horse", "ship", "truck"};

/* ---- construction ------------------------------------------------------------------- */

void ct_dataset_free(ct_dataset *ds)
{
    if (ds == NULL)
        return;
    free(ds->images);
    free(ds->labels);
    free(ds->class_names);
    free(ds->mean);
    free(ds->std);
    free(ds);
}

/* Mean and population std per channel of p / 255, from exact per-channel histograms: the
 * sums over 256 bins are short, so the result does not depend on the pixel count. */
static ct_status dataset_stats(ct_dataset *ds)
{
    ct_status st = CT_SUCCESS;
    uint64_t *hist = calloc(ds->c * 256, sizeof *hist);
    size_t plane = ds->h * ds->w;
    CT_REQUIRE(hist != NULL, CT_ERR_OUT_OF_MEMORY, "dataset statistics: no memory");
    for (size_t i = 0; i < ds->n; i++) {
        for (size_t c = 0; c < ds->c; c++) {
            const uint8_t *p = ds->images + (i * ds->c + c) * plane;
            uint64_t *hc = hist + c * 256;
            for (size_t k = 0; k < plane; k++)
                hc[p[k]]++;
        }
    }
    for (size_t c = 0; c < ds->c; c++) {
        const uint64_t *hc = hist + c * 256;
        double total = (double)ds->n * (double)plane;
        double sum = 0.0, ss = 0.0;
        for (int v = 0; v < 256; v++)
            sum += (double)hc[v] * (v / 255.0);
        double mean = sum / total;
        for (int v = 0; v < 256; v++) {
            double d = v / 255.0 - mean;
            ss += (double)hc[v] * d * d;
        }
        ds->mean[c] = mean;
        ds->std[c] = sqrt(ss / total);
    }
cleanup:
    free(hist);
    return st;
}

/* What ct_dataset_adopt and ct_dataset_create check first; *out = NULL once out is known
 * to be valid. `who` begins the messages. */
static ct_status check_args(const char *who, size_t n, size_t c, size_t h, size_t w,
                            const uint8_t *images, const uint8_t *labels, ct_dataset **out)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(out != NULL, CT_ERR_INVALID_ARG, "%s: out is NULL", who);
    *out = NULL;
    CT_REQUIRE(images != NULL && labels != NULL, CT_ERR_INVALID_ARG, "%s: images or labels is NULL",
               who);
    CT_REQUIRE(n > 0 && c > 0 && h > 0 && w > 0, CT_ERR_INVALID_ARG,
               "%s: shape (%zu, %zu, %zu, %zu) has a zero dimension", who, n, c, h, w);
cleanup:
    return st;
}

ct_status ct_dataset_adopt(const char *name, size_t n, size_t c, size_t h, size_t w,
                           size_t num_classes, uint8_t *images, uint8_t *labels,
                           const char *const *class_names, ct_dataset **out)
{
    ct_status st = CT_SUCCESS;
    ct_dataset *ds = NULL;
    char numbers[256][4];
    const char *generated[256];
    size_t text = 0;

    CT_TRY(check_args("dataset", n, c, h, w, images, labels, out));
    CT_REQUIRE(num_classes >= 1 && num_classes <= 256, CT_ERR_INVALID_ARG,
               "dataset: %zu classes, expected 1 to 256", num_classes);
    for (size_t i = 0; i < n; i++)
        CT_REQUIRE(labels[i] < num_classes, CT_ERR_FORMAT,
                   "dataset %s: label %u at index %zu is out of range, expected 0..%zu",
                   name ? name : "custom", labels[i], i, num_classes - 1);
    if (class_names == NULL) {
        for (size_t k = 0; k < num_classes; k++) {
            snprintf(numbers[k], sizeof numbers[k], "%zu", k);
            generated[k] = numbers[k];
        }
        class_names = generated;
    }
    for (size_t k = 0; k < num_classes; k++) {
        CT_REQUIRE(class_names[k] != NULL, CT_ERR_INVALID_ARG, "dataset: class name %zu is NULL",
                   k);
        text += strlen(class_names[k]) + 1;
    }

    ds = calloc(1, sizeof *ds);
    CT_REQUIRE(ds != NULL, CT_ERR_OUT_OF_MEMORY, "dataset: no memory");
    snprintf(ds->name, sizeof ds->name, "%s", name ? name : "custom");
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->num_classes = num_classes;
    ds->images = images;
    ds->labels = labels;
    images = NULL;
    labels = NULL;
    /* One block: the pointer array, then the strings. */
    ds->class_names = malloc(num_classes * sizeof(char *) + text);
    ds->mean = calloc(c, sizeof(double));
    ds->std = calloc(c, sizeof(double));
    CT_REQUIRE(ds->class_names != NULL && ds->mean != NULL && ds->std != NULL, CT_ERR_OUT_OF_MEMORY,
               "dataset: no memory");
    {
        char *p = (char *)(ds->class_names + num_classes);
        for (size_t k = 0; k < num_classes; k++) {
            size_t len = strlen(class_names[k]) + 1;
            memcpy(p, class_names[k], len);
            ds->class_names[k] = p;
            p += len;
        }
    }
    CT_TRY(dataset_stats(ds));
    *out = ds;
    ds = NULL;
cleanup:
    free(images);
    free(labels);
    ct_dataset_free(ds);
    return st;
}

ct_status ct_dataset_create(const char *name, size_t n, size_t c, size_t h, size_t w,
                            size_t num_classes, const uint8_t *images, const uint8_t *labels,
                            const char *const *class_names, ct_dataset **out)
{
    ct_status st = CT_SUCCESS;
    uint8_t *im = NULL, *lb = NULL;
    size_t per = 0;

    CT_TRY(check_args("ct_dataset_create", n, c, h, w, images, labels, out));
    CT_REQUIRE(c <= SIZE_MAX / h && c * h <= SIZE_MAX / w && c * h * w <= SIZE_MAX / n,
               CT_ERR_INVALID_ARG, "ct_dataset_create: shape (%zu, %zu, %zu, %zu) overflows size_t",
               n, c, h, w);
    per = c * h * w;
    im = malloc(n * per);
    lb = malloc(n);
    CT_REQUIRE(im != NULL && lb != NULL, CT_ERR_OUT_OF_MEMORY,
               "ct_dataset_create: no memory for %zu images", n);
    memcpy(im, images, n * per);
    memcpy(lb, labels, n);
    st = ct_dataset_adopt(name, n, c, h, w, num_classes, im, lb, class_names, out);
    im = NULL;
    lb = NULL;
cleanup:
    free(im);
    free(lb);
    return st;
}

ct_status ct_dataset_subset(const ct_dataset *ds, const size_t *indices, size_t count,
                            ct_dataset **out)
{
    ct_status st = CT_SUCCESS;
    uint8_t *im = NULL, *lb = NULL;
    size_t per = 0;

    CT_REQUIRE(out != NULL, CT_ERR_INVALID_ARG, "ct_dataset_subset: out is NULL");
    *out = NULL;
    CT_REQUIRE(ds != NULL && indices != NULL, CT_ERR_INVALID_ARG,
               "ct_dataset_subset: ds or indices is NULL");
    CT_REQUIRE(count > 0, CT_ERR_INVALID_ARG, "ct_dataset_subset: empty subset");
    for (size_t i = 0; i < count; i++)
        CT_REQUIRE(indices[i] < ds->n, CT_ERR_INVALID_ARG,
                   "ct_dataset_subset: index %zu at position %zu, the dataset has %zu samples",
                   indices[i], i, ds->n);
    per = ds->c * ds->h * ds->w;
    CT_REQUIRE(count <= SIZE_MAX / per, CT_ERR_INVALID_ARG,
               "ct_dataset_subset: %zu samples overflow size_t", count);
    im = malloc(count * per);
    lb = malloc(count);
    CT_REQUIRE(im != NULL && lb != NULL, CT_ERR_OUT_OF_MEMORY,
               "ct_dataset_subset: no memory for %zu images", count);
    for (size_t i = 0; i < count; i++) {
        memcpy(im + i * per, ds->images + indices[i] * per, per);
        lb[i] = ds->labels[indices[i]];
    }
    st = ct_dataset_adopt(ds->name, count, ds->c, ds->h, ds->w, ds->num_classes, im, lb,
                          (const char *const *)ds->class_names, out);
    im = NULL;
    lb = NULL;
cleanup:
    free(im);
    free(lb);
    return st;
}

ct_status ct_dataset_split(const ct_dataset *ds, size_t val_count, int shuffle, uint64_t seed,
                           ct_dataset **train_out, ct_dataset **val_out)
{
    ct_status st = CT_SUCCESS;
    size_t *perm = NULL;
    unsigned char *in_val = NULL;
    ct_dataset *tr = NULL, *va = NULL;
    size_t n_train = 0;

    CT_REQUIRE(train_out != NULL && val_out != NULL, CT_ERR_INVALID_ARG,
               "ct_dataset_split: an out-parameter is NULL");
    *train_out = NULL;
    *val_out = NULL;
    CT_REQUIRE(ds != NULL, CT_ERR_INVALID_ARG, "ct_dataset_split: ds is NULL");
    CT_REQUIRE(val_count > 0 && val_count < ds->n, CT_ERR_INVALID_ARG,
               "ct_dataset_split: %zu validation samples, expected 1 to %zu (the dataset has %zu)",
               val_count, ds->n - 1, ds->n);
    n_train = ds->n - val_count;
    perm = malloc(ds->n * sizeof *perm);
    in_val = calloc(ds->n, 1);
    CT_REQUIRE(perm != NULL && in_val != NULL, CT_ERR_OUT_OF_MEMORY, "ct_dataset_split: no memory");
    if (shuffle) {
        ct_shuffle_permutation(seed, 0, ds->n, perm);
    } else {
        for (size_t i = 0; i < ds->n; i++)
            perm[i] = i;
    }
    for (size_t i = n_train; i < ds->n; i++)
        in_val[perm[i]] = 1;
    CT_TRY(ct_dataset_subset(ds, perm + n_train, val_count, &va));
    /* The training part in the original order: overwrite perm's head with the ascending
     * indices not taken (its tail was already consumed above). */
    {
        size_t k = 0;
        for (size_t i = 0; i < ds->n; i++)
            if (!in_val[i])
                perm[k++] = i;
    }
    CT_TRY(ct_dataset_subset(ds, perm, n_train, &tr));
    *train_out = tr;
    *val_out = va;
    tr = NULL;
    va = NULL;
cleanup:
    ct_dataset_free(tr);
    ct_dataset_free(va);
    free(perm);
    free(in_val);
    return st;
}

/* ---- loading ------------------------------------------------------------------------ */

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode);
}

static ct_status join_path(char *out, const char *dir, const char *a, const char *b)
{
    ct_status st = CT_SUCCESS;
    int len = snprintf(out, CT_PATH_MAX, "%s/%s%s", dir, a, b);
    CT_REQUIRE(len > 0 && len < CT_PATH_MAX, CT_ERR_INVALID_ARG, "path %s/%s%s is too long", dir, a,
               b);
cleanup:
    return st;
}

/* dir/base.gz if it exists, else dir/base if it exists, else CT_ERR_IO naming both. */
static ct_status find_idx(const char *dir, const char *base, char *path)
{
    ct_status st = CT_SUCCESS;
    CT_TRY(join_path(path, dir, base, ".gz"));
    if (file_exists(path))
        goto cleanup;
    CT_TRY(join_path(path, dir, base, ""));
    CT_REQUIRE(file_exists(path), CT_ERR_IO, "no %s/%s.gz or %s/%s", dir, base, dir, base);
cleanup:
    return st;
}

static ct_status load_idx_dataset(const char *name, const char *dir, ct_split split,
                                  const char *const *class_names, ct_dataset **out)
{
    ct_status st = CT_SUCCESS;
    const char *prefix = split == CT_SPLIT_TRAIN ? "train" : "t10k";
    char base[64];
    char ipath[CT_PATH_MAX], lpath[CT_PATH_MAX];
    ct_idx im = {0}, lb = {0};

    snprintf(base, sizeof base, "%s-images-idx3-ubyte", prefix);
    CT_TRY(find_idx(dir, base, ipath));
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", prefix);
    CT_TRY(find_idx(dir, base, lpath));

    CT_TRY(ct_idx_read(lpath, CT_DATA_MAX_BYTES, &lb));
    CT_REQUIRE(lb.ndim == 1, CT_ERR_FORMAT, "%s: labels file has %zu dimensions, expected 1 (N)",
               lpath, lb.ndim);
    for (size_t i = 0; i < lb.count; i++)
        CT_REQUIRE(lb.data[i] < 10, CT_ERR_FORMAT,
                   "%s: label %u at index %zu is out of range, expected 0..9", lpath, lb.data[i],
                   i);
    CT_TRY(ct_idx_read(ipath, CT_DATA_MAX_BYTES, &im));
    CT_REQUIRE(im.ndim == 3, CT_ERR_FORMAT,
               "%s: images file has %zu dimensions, expected 3 (N, H, W)", ipath, im.ndim);
    CT_REQUIRE(im.dims[0] == lb.dims[0], CT_ERR_FORMAT,
               "%s holds %zu images but %s holds %zu labels", ipath, im.dims[0], lpath, lb.dims[0]);
    st = ct_dataset_adopt(name, im.dims[0], 1, im.dims[1], im.dims[2], 10, im.data, lb.data,
                          class_names, out);
    im.data = NULL;
    lb.data = NULL;
cleanup:
    ct_idx_release(&im);
    ct_idx_release(&lb);
    return st;
}

static ct_status load_cifar10(const char *dir, ct_split split, ct_dataset **out)
{
    ct_status st = CT_SUCCESS;
    const char *first = split == CT_SPLIT_TRAIN ? "data_batch_1.bin" : "test_batch.bin";
    char root[CT_PATH_MAX], path[CT_PATH_MAX];
    uint8_t *images = NULL, *labels = NULL;
    size_t n = 0;

    /* The official archive unpacks into cifar-10-batches-bin/: accept either level. */
    CT_TRY(join_path(path, dir, first, ""));
    if (file_exists(path)) {
        snprintf(root, sizeof root, "%s", dir);
    } else {
        CT_TRY(join_path(root, dir, "cifar-10-batches-bin", ""));
        CT_TRY(join_path(path, root, first, ""));
        CT_REQUIRE(file_exists(path), CT_ERR_IO, "no %s/%s or %s", dir, first, path);
    }
    if (split == CT_SPLIT_TRAIN) {
        for (int b = 1; b <= 5; b++) {
            char file[32];
            snprintf(file, sizeof file, "data_batch_%d.bin", b);
            CT_TRY(join_path(path, root, file, ""));
            CT_REQUIRE(file_exists(path), CT_ERR_IO, "no %s (CIFAR-10 train batch %d of 5)", path,
                       b);
            CT_TRY(ct_cifar_append(path, CT_DATA_MAX_BYTES, &n, &images, &labels));
        }
    } else {
        CT_TRY(ct_cifar_append(path, CT_DATA_MAX_BYTES, &n, &images, &labels));
    }
    st = ct_dataset_adopt("cifar10", n, 3, CT_CIFAR_SIDE, CT_CIFAR_SIDE, 10, images, labels,
                          cifar_names, out);
    images = NULL;
    labels = NULL;
cleanup:
    free(images);
    free(labels);
    return st;
}

ct_status ct_dataset_load(const char *name, const char *dir, ct_split split, ct_dataset **out)
{
    ct_status st = CT_SUCCESS;
    char def[CT_PATH_MAX];

    CT_REQUIRE(out != NULL, CT_ERR_INVALID_ARG, "ct_dataset_load: out is NULL");
    *out = NULL;
    CT_REQUIRE(name != NULL, CT_ERR_INVALID_ARG, "ct_dataset_load: name is NULL");
    CT_REQUIRE(split == CT_SPLIT_TRAIN || split == CT_SPLIT_TEST, CT_ERR_INVALID_ARG,
               "ct_dataset_load: split %d, expected CT_SPLIT_TRAIN or CT_SPLIT_TEST", (int)split);
    CT_REQUIRE(strcmp(name, "fashion-mnist") == 0 || strcmp(name, "mnist") == 0 ||
                   strcmp(name, "cifar10") == 0,
               CT_ERR_INVALID_ARG,
               "unknown dataset \"%s\", expected fashion-mnist, mnist or cifar10", name);
    if (dir == NULL) {
        CT_TRY(join_path(def, CT_DATA_DEFAULT_ROOT, name, ""));
        dir = def;
    }
    if (strcmp(name, "fashion-mnist") == 0)
        CT_TRY(load_idx_dataset(name, dir, split, fashion_names, out));
    else if (strcmp(name, "mnist") == 0)
        CT_TRY(load_idx_dataset(name, dir, split, mnist_names, out));
    else
        CT_TRY(load_cifar10(dir, split, out));
cleanup:
    return st;
}

/* ---- access ------------------------------------------------------------------------- */

const char *ct_dataset_name(const ct_dataset *ds)
{
    return ds ? ds->name : NULL;
}

size_t ct_dataset_count(const ct_dataset *ds)
{
    return ds ? ds->n : 0;
}

void ct_dataset_shape(const ct_dataset *ds, size_t shape[4])
{
    shape[0] = ds ? ds->n : 0;
    shape[1] = ds ? ds->c : 0;
    shape[2] = ds ? ds->h : 0;
    shape[3] = ds ? ds->w : 0;
}

size_t ct_dataset_num_classes(const ct_dataset *ds)
{
    return ds ? ds->num_classes : 0;
}

const char *ct_dataset_class_name(const ct_dataset *ds, size_t k)
{
    return ds && k < ds->num_classes ? ds->class_names[k] : NULL;
}

const uint8_t *ct_dataset_images(const ct_dataset *ds)
{
    return ds ? ds->images : NULL;
}

const uint8_t *ct_dataset_labels(const ct_dataset *ds)
{
    return ds ? ds->labels : NULL;
}

double ct_dataset_mean(const ct_dataset *ds, size_t c)
{
    return ds && c < ds->c ? ds->mean[c] : 0.0;
}

double ct_dataset_std(const ct_dataset *ds, size_t c)
{
    return ds && c < ds->c ? ds->std[c] : 0.0;
}

ct_status ct_dataset_batch(const ct_dataset *ds, const size_t *indices, size_t count,
                           const float *mean, const float *std, float *x, float *y)
{
    ct_status st = CT_SUCCESS;
    float *table = NULL; /* (C, 256): the float value of every byte in every channel */
    size_t plane = 0;

    CT_REQUIRE(ds != NULL && indices != NULL && x != NULL, CT_ERR_INVALID_ARG,
               "ct_dataset_batch: ds, indices or x is NULL");
    CT_REQUIRE((mean == NULL) == (std == NULL), CT_ERR_INVALID_ARG,
               "ct_dataset_batch: give both mean and std, or neither");
    for (size_t c = 0; std != NULL && c < ds->c; c++)
        CT_REQUIRE(std[c] > 0.0f, CT_ERR_INVALID_ARG,
                   "ct_dataset_batch: std[%zu] = %g, expected > 0", c, (double)std[c]);
    for (size_t i = 0; i < count; i++)
        CT_REQUIRE(indices[i] < ds->n, CT_ERR_INVALID_ARG,
                   "ct_dataset_batch: index %zu at position %zu, the dataset has %zu samples",
                   indices[i], i, ds->n);
    table = malloc(ds->c * 256 * sizeof *table);
    CT_REQUIRE(table != NULL, CT_ERR_OUT_OF_MEMORY, "ct_dataset_batch: no memory");
    for (size_t c = 0; c < ds->c; c++) {
        for (int p = 0; p < 256; p++) {
            float v = (float)p / 255.0f;
            table[c * 256 + (size_t)p] = mean ? (v - mean[c]) / std[c] : v;
        }
    }
    plane = ds->h * ds->w;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *src = ds->images + indices[i] * ds->c * plane;
        float *dst = x + i * ds->c * plane;
        for (size_t c = 0; c < ds->c; c++) {
            const float *t = table + c * 256;
            for (size_t k = 0; k < plane; k++)
                dst[c * plane + k] = t[src[c * plane + k]];
        }
        if (y != NULL)
            y[i] = (float)ds->labels[indices[i]];
    }
cleanup:
    free(table);
    return st;
}
