/* The device loader against the host gather of cltrain/data.h (ct_dataset_batch, an
 * independent implementation of ToTensor + Normalize) and a plain-C model of the crop and
 * flip. Conversions are the same float32 operations on both sides, so x must match
 * exactly (atol 0); labels are small integers, exact too. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static ct_dataset *make_dataset(size_t n, size_t c, size_t h, size_t w)
{
    uint8_t *img = malloc(n * c * h * w), *lab = malloc(n);
    cr_assert(img && lab);
    tu_rng r = {42};
    for (size_t i = 0; i < n * c * h * w; i++)
        img[i] = (uint8_t)(tu_rng_next(&r) & 0xff);
    for (size_t i = 0; i < n; i++)
        lab[i] = (uint8_t)(i % 10);
    ct_dataset *ds = NULL;
    TU_OK(ct_dataset_create("synthetic", n, c, h, w, 10, img, lab, NULL, &ds));
    free(img);
    free(lab);
    return ds;
}

static void check_epoch(ct_context *ctx, ct_dataset *ds, ct_loader_options o, uint64_t epoch)
{
    size_t shape[4];
    ct_dataset_shape(ds, shape);
    ct_loader *l = NULL;
    TU_OK(ct_loader_create(ctx, ds, &o, &l));
    TU_OK(ct_loader_start_epoch(l, epoch));
    size_t *perm = malloc(shape[0] * sizeof *perm);
    if (o.shuffle) {
        ct_shuffle_permutation(o.seed, epoch, shape[0], perm);
    } else {
        for (size_t i = 0; i < shape[0]; i++)
            perm[i] = i;
    }
    size_t per = shape[1] * shape[2] * shape[3];
    size_t nb = ct_loader_batch_count(l);
    size_t expect_nb = o.drop_last ? shape[0] / o.batch_size
                                   : (shape[0] + o.batch_size - 1) / o.batch_size;
    cr_assert_eq(nb, expect_nb);
    float mean[4], sd[4];
    for (size_t c = 0; c < shape[1]; c++) {
        mean[c] = (float)ct_dataset_mean(ds, c);
        sd[c] = (float)ct_dataset_std(ds, c);
    }
    for (size_t b = 0; b < nb; b++) {
        ct_tensor *x = NULL, *y = NULL;
        TU_OK(ct_loader_batch(l, b, &x, &y));
        size_t n = ct_tensor_dim(x, 0);
        size_t start = b * o.batch_size;
        cr_assert_eq(n, start + o.batch_size <= shape[0] ? o.batch_size : shape[0] - start);
        float *gx = tu_download(x), *gy = tu_download(y);
        float *rx = malloc(n * per * sizeof *rx), *ry = malloc(n * sizeof *ry);
        TU_OK(ct_dataset_batch(ds, perm + start, n, o.normalize ? mean : NULL,
                               o.normalize ? sd : NULL, rx, ry));
        tu_assert_close_f("labels", gy, ry, n, 0, 0);
        if (o.crop_pad == 0 && !o.hflip) {
            tu_assert_close_f("pixels", gx, rx, n * per, 0, 0);
        } else {
            /* every output row must be the reference row shifted by one (dy, dx) and maybe
             * mirrored, with the padding value where the shift leaves the image */
            size_t H = shape[2], W = shape[3], C = shape[1];
            int pad = (int)o.crop_pad;
            for (size_t r = 0; r < n; r++) {
                int found = 0;
                for (int flip = 0; flip <= (o.hflip ? 1 : 0) && !found; flip++)
                    for (int dy = -pad; dy <= pad && !found; dy++)
                        for (int dx = -pad; dx <= pad && !found; dx++) {
                            int ok = 1;
                            for (size_t c = 0; c < C && ok; c++)
                                for (size_t h = 0; h < H && ok; h++)
                                    for (size_t w = 0; w < W && ok; w++) {
                                        int sh = (int)h + dy;
                                        int sw = (int)(flip ? W - 1 - w : w) + dx;
                                        float want = (sh >= 0 && sh < (int)H && sw >= 0 && sw < (int)W)
                                            ? rx[((r * C + c) * H + (size_t)sh) * W + (size_t)sw]
                                            : (o.normalize ? (0.0f - mean[c]) / sd[c] : 0.0f);
                                        ok = gx[((r * C + c) * H + h) * W + w] == want;
                                    }
                            found = ok;
                        }
                cr_assert(found, "batch %zu row %zu is no crop/flip of its sample", b, r);
            }
        }
        free(gx);
        free(gy);
        free(rx);
        free(ry);
    }
    free(perm);
    ct_loader_free(l);
}

Test(loader, plain_order_and_normalisation)
{
    ct_context *ctx = tu_context();
    ct_dataset *ds = make_dataset(23, 1, 5, 7);
    check_epoch(ctx, ds, (ct_loader_options){.batch_size = 8, .normalize = true}, 0);
    check_epoch(ctx, ds, (ct_loader_options){.batch_size = 8, .drop_last = true}, 0);
    check_epoch(ctx, ds, (ct_loader_options){.batch_size = 1, .normalize = true}, 0);
    check_epoch(ctx, ds, (ct_loader_options){.batch_size = 64}, 0);
    ct_dataset_free(ds);
    ct_context_free(ctx);
}

Test(loader, shuffled_epochs_follow_the_documented_permutation)
{
    ct_context *ctx = tu_context();
    ct_dataset *ds = make_dataset(50, 3, 4, 4);
    for (uint64_t e = 0; e < 3; e++)
        check_epoch(ctx, ds, (ct_loader_options){.batch_size = 16, .shuffle = true, .seed = 7,
                                                 .normalize = true}, e);
    ct_dataset_free(ds);
    ct_context_free(ctx);
}

Test(loader, crop_and_flip_are_shifts_and_mirrors)
{
    ct_context *ctx = tu_context();
    ct_dataset *ds = make_dataset(12, 3, 6, 5);
    check_epoch(ctx, ds, (ct_loader_options){.batch_size = 5, .shuffle = true, .seed = 3,
                                             .normalize = true, .crop_pad = 2, .hflip = true}, 1);
    check_epoch(ctx, ds, (ct_loader_options){.batch_size = 12, .hflip = true}, 0);
    ct_dataset_free(ds);
    ct_context_free(ctx);
}

Test(loader, augmentation_is_random_but_reproducible)
{
    ct_context *ctx = tu_context();
    ct_dataset *ds = make_dataset(64, 1, 8, 8);
    ct_loader_options o = {.batch_size = 64, .crop_pad = 2, .hflip = true, .seed = 11};
    float *a[3];
    for (int run = 0; run < 3; run++) {
        ct_loader *l = NULL;
        TU_OK(ct_loader_create(ctx, ds, &o, &l));
        TU_OK(ct_loader_start_epoch(l, run == 2 ? 1 : 0));
        ct_tensor *x, *y;
        TU_OK(ct_loader_batch(l, 0, &x, &y));
        a[run] = tu_download(x);
        ct_loader_free(l);
    }
    cr_assert(memcmp(a[0], a[1], 64 * 64 * sizeof(float)) == 0, "same seed and epoch differ");
    cr_assert(memcmp(a[0], a[2], 64 * 64 * sizeof(float)) != 0, "another epoch gives the same crops");
    for (int run = 0; run < 3; run++)
        free(a[run]);
    ct_dataset_free(ds);
    ct_context_free(ctx);
}

Test(loader, bad_options_are_errors)
{
    ct_context *ctx = tu_context();
    ct_dataset *ds = make_dataset(4, 1, 3, 3);
    ct_loader *l = NULL;
    cr_assert_eq(ct_loader_create(ctx, ds, &(ct_loader_options){.batch_size = 0}, &l), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_loader_create(ctx, ds, &(ct_loader_options){.batch_size = 2, .crop_pad = 3}, &l),
                 CT_ERR_INVALID_ARG);
    float m = 0.5f, s = 0.0f;
    cr_assert_eq(ct_loader_create(ctx, ds, &(ct_loader_options){.batch_size = 2, .normalize = true,
                                                                .mean = &m, .std = &s}, &l),
                 CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "std") != NULL, "%s", ct_last_error());
    TU_OK(ct_loader_create(ctx, ds, &(ct_loader_options){.batch_size = 2}, &l));
    ct_tensor *x, *y;
    cr_assert_eq(ct_loader_batch(l, 0, &x, &y), CT_ERR_INVALID_ARG); /* no epoch started */
    TU_OK(ct_loader_start_epoch(l, 0));
    cr_assert_eq(ct_loader_batch(l, 2, &x, &y), CT_ERR_INVALID_ARG);
    ct_loader_free(l);
    ct_dataset_free(ds);
    ct_context_free(ctx);
}
