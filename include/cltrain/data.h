/* cltrain/data.h — image classification datasets held in host memory.
 *
 * A ct_dataset is N images of C x H x W unsigned bytes, one uint8 label each, the class
 * count and names, and the per-channel mean and standard deviation of the pixels scaled to
 * [0, 1]. Nothing here touches a device: a training loop gathers a batch to floats with
 * ct_dataset_batch() and uploads it with ct_tensor_upload().
 *
 * Readers (strict: any deviation from the format is CT_ERR_FORMAT, the message naming the
 * file, what was found and what was expected):
 *   - IDX (MNIST, Fashion-MNIST): raw or gzip (detected by the magic 1f 8b, not by the
 *     name), unsigned-byte data, images (N, H, W) and labels (N).
 *   - CIFAR-10 binary batches: records of 1 label byte + 3072 pixel bytes (R, G, B planes
 *     of 32 x 32, row-major), so the file size is a multiple of 3073.
 */
#ifndef CLTRAIN_DATA_H
#define CLTRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "cltrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_dataset ct_dataset;

typedef enum ct_split { CT_SPLIT_TRAIN = 0, CT_SPLIT_TEST = 1 } ct_split;

/* Where ct_dataset_load() looks when dir is NULL: CT_DATA_DEFAULT_ROOT "/" name, e.g.
 * /usr/share/datasets/fashion-mnist. */
#define CT_DATA_DEFAULT_ROOT "/usr/share/datasets"

/* Loads a named dataset from `dir` (NULL: the default above) into a new dataset that the
 * caller frees with ct_dataset_free().
 *   "fashion-mnist", "mnist": {train,t10k}-images-idx3-ubyte and -labels-idx1-ubyte, each
 *       either gzip (".gz" appended, tried first) or raw. Images (N, 1, H, W), 10 classes.
 *   "cifar10": data_batch_1.bin .. data_batch_5.bin (train) or test_batch.bin (test), in
 *       dir or in dir/cifar-10-batches-bin. Images (N, 3, 32, 32), 10 classes.
 * Missing files are CT_ERR_IO naming the paths tried; malformed files, labels >= 10 and
 * image and label counts that disagree are CT_ERR_FORMAT naming the file(s); an unknown
 * name is CT_ERR_INVALID_ARG. */
ct_status ct_dataset_load(const char *name, const char *dir, ct_split split, ct_dataset **out);

/* A dataset from memory: copies images (n, c, h, w) and labels (n); every label must be
 * < num_classes (1..256). class_names may be NULL ("0", "1", ...); otherwise num_classes
 * strings, copied. `name` may be NULL ("custom"). */
ct_status ct_dataset_create(const char *name, size_t n, size_t c, size_t h, size_t w,
                            size_t num_classes, const uint8_t *images, const uint8_t *labels,
                            const char *const *class_names, ct_dataset **out);

/* A new dataset holding the samples indices[0..count) of ds, in that order (an index may
 * repeat); its mean and std are recomputed over those samples. */
ct_status ct_dataset_subset(const ct_dataset *ds, const size_t *indices, size_t count,
                            ct_dataset **out);

/* Splits ds into a training part and a validation part of `val_count` samples
 * (0 < val_count < N). Without shuffle the validation part is the last val_count samples.
 * With shuffle it is the last val_count entries of ct_shuffle_permutation(seed, 0, N), in
 * that order; the training part then keeps the remaining samples in their original order.
 * Both are new datasets (statistics recomputed); ds is left as it is. */
ct_status ct_dataset_split(const ct_dataset *ds, size_t val_count, int shuffle, uint64_t seed,
                           ct_dataset **train_out, ct_dataset **val_out);

void ct_dataset_free(ct_dataset *ds);

const char *ct_dataset_name(const ct_dataset *ds); /* "fashion-mnist", ... */
size_t ct_dataset_count(const ct_dataset *ds);     /* N */
/* shape[0..3] = N, C, H, W. */
void ct_dataset_shape(const ct_dataset *ds, size_t shape[4]);
size_t ct_dataset_num_classes(const ct_dataset *ds);
/* Name of class k, or NULL when k >= num_classes. */
const char *ct_dataset_class_name(const ct_dataset *ds, size_t k);
/* Pixels (N, C, H, W) and labels (N), owned by the dataset. */
const uint8_t *ct_dataset_images(const ct_dataset *ds);
const uint8_t *ct_dataset_labels(const ct_dataset *ds);

/* Mean and population standard deviation (divided by the count, not count - 1) of channel
 * c over every pixel of the set, with pixels scaled to [0, 1] (p / 255). Computed in
 * double from an exact histogram. 0 when c >= C. */
double ct_dataset_mean(const ct_dataset *ds, size_t c);
double ct_dataset_std(const ct_dataset *ds, size_t c);

/* Gathers samples indices[0..count) into x (count, C, H, W) as float32 and, when y is not
 * NULL, their labels into y (count) as float class indices. Each pixel becomes exactly
 * what torchvision's ToTensor + Normalize(mean, std) gives in float32:
 *     v = (float)p / 255.0f;  x = (v - mean[c]) / std[c]
 * mean and std hold C floats each; both NULL means no normalization (x = v). An index
 * >= N or a std <= 0 is CT_ERR_INVALID_ARG (nothing written). */
ct_status ct_dataset_batch(const ct_dataset *ds, const size_t *indices, size_t count,
                           const float *mean, const float *std, float *x, float *y);

/* Fills perm[0..n) with a permutation of 0..n-1 that depends only on (seed, stream) and n,
 * the same on every platform. Use the epoch number as `stream` for a new order each epoch.
 * Algorithm (so other implementations can reproduce it):
 *   - splitmix64 with state z = seed ^ (stream * 0xD1342543DE82EF95) (mod 2^64): each call
 *     does z += 0x9E3779B97F4A7C15; r = z; r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9;
 *     r = (r ^ (r >> 27)) * 0x94D049BB133111EB; returns r ^ (r >> 31).
 *   - its first four outputs seed xoshiro256** (s0..s3; if all four are zero, s0 = 1).
 *   - perm[i] = i; then for i = n-1 down to 1: j = uniform(i + 1), swap perm[i], perm[j],
 *     where uniform(b) draws x from xoshiro256** until x >= (2^64 mod b), returns x mod b
 *     (no modulo bias). */
void ct_shuffle_permutation(uint64_t seed, uint64_t stream, size_t n, size_t *perm);

#ifdef __cplusplus
}
#endif
#endif
