/* cltrain/loader.h — mini-batches gathered on the device.
 *
 * The loader uploads a dataset's uint8 pixels and labels to the device once; each batch
 * is then one kernel that gathers the samples of the epoch's order, converts them exactly
 * as torchvision's ToTensor + Normalize do in float32 (v = p/255; x = (v - mean)/std) and
 * applies the optional augmentation. Per epoch the only host-to-device traffic is the
 * order (N uint32, one write).
 *
 * Order: with shuffle, epoch e visits ct_shuffle_permutation(seed, e, N) (cltrain/data.h);
 * without, 0..N-1. Augmentation draws from a counter-based hash of (seed, epoch, position
 * in the epoch), so a run resumed at any batch sees the same images as an uninterrupted
 * one. */
#ifndef CLTRAIN_LOADER_H
#define CLTRAIN_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cltrain/data.h"
#include "cltrain/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_loader_options {
    size_t batch_size;  /* >= 1 */
    bool shuffle;       /* a new seeded order every epoch */
    uint64_t seed;
    bool drop_last;     /* drop a last batch smaller than batch_size */
    bool normalize;     /* (v - mean) / std per channel */
    const float *mean;  /* C values; NULL with normalize: the dataset's own statistics */
    const float *std;   /* C values, each > 0; NULL with normalize: the dataset's own */
    size_t crop_pad;    /* random crop: zero-pad by this many pixels, crop back (0: off) */
    bool hflip;         /* random horizontal flip with probability 1/2 */
} ct_loader_options;

typedef struct ct_loader ct_loader;

/* The loader keeps no pointer to `ds` after this returns (the data are on the device).
 * Frees with ct_loader_free() before the context. */
ct_status ct_loader_create(ct_context *ctx, const ct_dataset *ds, const ct_loader_options *o,
                           ct_loader **out);
void ct_loader_free(ct_loader *l);

/* Sets the order for `epoch` (0-based). Must precede ct_loader_batch() for that epoch. */
ct_status ct_loader_start_epoch(ct_loader *l, uint64_t epoch);

size_t ct_loader_batch_count(const ct_loader *l);
size_t ct_loader_sample_count(const ct_loader *l); /* N */

/* Gathers batch b (0 <= b < batch_count) of the current epoch: *x (n, C, H, W) and *y (n)
 * float class indices, n = batch_size except possibly for the last batch. Both tensors
 * are owned by the loader and valid until its next ct_loader_batch() call. Enqueued only. */
ct_status ct_loader_batch(ct_loader *l, size_t b, ct_tensor **x, ct_tensor **y);

/* The normalisation in use (C values each), for reports. */
const float *ct_loader_mean(const ct_loader *l);
const float *ct_loader_std(const ct_loader *l);

#ifdef __cplusplus
}
#endif
#endif
