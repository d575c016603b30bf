/* The fault-injection driver: a complete small training run — device, dataset loader,
 * model, loss, optimizer, two steps, a read of the loss — through the public API only,
 * with every handle released on every path.
 *
 * Exit status: 0 when everything succeeded, 3 when a call failed cleanly (a status and a
 * non-empty message), anything else (a signal, an abort) is a failure of the library.
 * tests/fault/run_faults.sh runs it under tests/fault/shim.c, failing each allocation,
 * enqueue and build in turn. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cltrain/cltrain.h"

#define TRY(expr)                                                                          \
    do {                                                                                   \
        st = (expr);                                                                       \
        if (st != CT_SUCCESS) {                                                            \
            what = #expr;                                                                  \
            goto done;                                                                     \
        }                                                                                  \
    } while (0)

int main(void)
{
    ct_status st = CT_SUCCESS;
    const char *what = NULL;
    ct_context *ctx = NULL;
    ct_dataset *ds = NULL;
    ct_loader *loader = NULL;
    ct_model *model = NULL;
    ct_loss *loss = NULL;
    ct_optim *opt = NULL;
    ct_tensor *loss_value = NULL, *dlogits = NULL;
    enum { N = 12, C = 1, H = 8, W = 8 };
    uint8_t images[N * C * H * W], labels[N];
    for (size_t i = 0; i < sizeof images; i++)
        images[i] = (uint8_t)(i * 37u);
    for (size_t i = 0; i < N; i++)
        labels[i] = (uint8_t)(i % 3);

    TRY(ct_context_create(NULL, 0, &ctx));
    TRY(ct_dataset_create("fault", N, C, H, W, 3, images, labels, NULL, &ds));
    ct_loader_options lo = {.batch_size = 6, .shuffle = true, .seed = 1, .normalize = true,
                            .crop_pad = 1, .hflip = true};
    TRY(ct_loader_create(ctx, ds, &lo, &loader));
    TRY(ct_model_create_spec(ctx, "conv(4,3,pad=1) relu maxpool(2) conv(4,3) bn relu flatten "
                                  "dropout(0.25) linear(3)",
                             3, (size_t[]){C, H, W}, 7, &model));
    ct_loss_options lopt = ct_loss_options_default(CT_LOSS_CROSS_ENTROPY);
    TRY(ct_loss_create(ctx, &lopt, &loss));
    ct_optim_options oo = ct_optim_defaults(CT_OPTIM_ADAM);
    TRY(ct_optim_create(ctx, &oo, ct_model_params(model), ct_model_grads(model), &opt));
    TRY(ct_tensor_create(ctx, 1, (size_t[]){1}, &loss_value));
    TRY(ct_tensor_create(ctx, 2, (size_t[]){6, 3}, &dlogits));
    TRY(ct_loader_start_epoch(loader, 0));
    for (size_t b = 0; b < 2; b++) {
        ct_tensor *x = NULL, *y = NULL, *logits = NULL;
        TRY(ct_loader_batch(loader, b, &x, &y));
        TRY(ct_model_zero_grad(model));
        TRY(ct_model_forward(model, x, &logits));
        TRY(ct_loss_forward_backward(loss, logits, y, loss_value, dlogits));
        TRY(ct_model_backward(model, dlogits));
        TRY(ct_clip_grad_norm(ctx, ct_model_grads(model), 1.0, NULL));
        TRY(ct_optim_step(opt));
    }
    float value = 0;
    TRY(ct_tensor_download(loss_value, &value, 1));
    TRY(ct_context_finish(ctx));
done:
    ct_tensor_free(loss_value);
    ct_tensor_free(dlogits);
    ct_optim_free(opt);
    ct_loss_free(loss);
    ct_model_free(model);
    ct_loader_free(loader);
    ct_dataset_free(ds);
    ct_context_free(ctx);
    if (st == CT_SUCCESS) {
        printf("ok: loss %g\n", (double)value);
        return 0;
    }
    const char *msg = ct_last_error();
    printf("failed cleanly at %s: %s\n", what, msg);
    return (msg && *msg && strcmp(msg, "no error recorded") != 0) ? 3 : 1;
}
