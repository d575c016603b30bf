/* The training loop of the textbook, in C: MiniCNN on Fashion-MNIST with cross-entropy and
 * Adam, step by step as PyTorch writes it. Build against the installed library:
 *     cc train_loop.c $(pkg-config --cflags --libs cltrain)
 * Usage: train_loop [STEPS]   (default 200; the loss is read back every 50 steps) */
#include <cltrain/cltrain.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(expr)                                                                        \
    do {                                                                                   \
        if ((expr) != CT_SUCCESS) {                                                        \
            fprintf(stderr, "train_loop: %s\n", ct_last_error());                         \
            goto done;                                                                     \
        }                                                                                  \
    } while (0)

int main(int argc, char **argv)
{
    size_t steps = argc > 1 ? strtoul(argv[1], NULL, 10) : 200;
    int rc = 1;
    float first = 0, last = 0;
    ct_context *ctx = NULL;
    ct_dataset *train = NULL;
    ct_loader *loader = NULL;
    ct_model *model = NULL;
    ct_loss *criterion = NULL;
    ct_optim *optimizer = NULL;
    ct_tensor *loss = NULL, *dout = NULL;

    CHECK(ct_context_create(NULL, 0, &ctx));
    CHECK(ct_dataset_load("fashion-mnist", NULL, CT_SPLIT_TRAIN, &train));
    ct_loader_options lo = {.batch_size = 64, .shuffle = true, .seed = 1, .normalize = true};
    CHECK(ct_loader_create(ctx, train, &lo, &loader));

    /* model = MiniCNN(); criterion = nn.CrossEntropyLoss();
     * optimizer = optim.Adam(model.parameters(), lr=0.001) */
    CHECK(ct_model_create_spec(ctx, "minicnn", 3, (size_t[]){1, 28, 28}, 1, &model));
    ct_loss_options lopt = ct_loss_options_default(CT_LOSS_CROSS_ENTROPY);
    CHECK(ct_loss_create(ctx, &lopt, &criterion));
    ct_optim_options oopt = ct_optim_defaults(CT_OPTIM_ADAM);
    oopt.lr = 1e-3;
    CHECK(ct_optim_create(ctx, &oopt, ct_model_params(model), ct_model_grads(model), &optimizer));
    CHECK(ct_tensor_create(ctx, 1, (size_t[]){1}, &loss));
    CHECK(ct_tensor_create(ctx, 2, (size_t[]){64, 10}, &dout));

    CHECK(ct_loader_start_epoch(loader, 0));
    for (size_t step = 0; step < steps && step < ct_loader_batch_count(loader); step++) {
        ct_tensor *images, *labels, *outputs;
        CHECK(ct_loader_batch(loader, step, &images, &labels));
        CHECK(ct_model_zero_grad(model));                        /* optimizer.zero_grad() */
        CHECK(ct_model_forward(model, images, &outputs));        /* outputs = model(images) */
        CHECK(ct_loss_forward_backward(criterion, outputs, labels, loss, dout));
                                                                 /* loss = criterion(...) */
        CHECK(ct_model_backward(model, dout));                   /* loss.backward() */
        CHECK(ct_optim_step(optimizer));                         /* optimizer.step() */
        if (step % 50 == 0 || step + 1 == steps) {               /* loss.item() */
            CHECK(ct_tensor_download(loss, &last, 1));
            if (step == 0)
                first = last;
            printf("step %4zu  loss %.4f\n", step, (double)last);
        }
    }
    rc = last < first ? 0 : 1;
    if (rc)
        fprintf(stderr, "train_loop: the loss did not fall (%.4f -> %.4f)\n", (double)first,
                (double)last);
done:
    ct_tensor_free(loss);
    ct_tensor_free(dout);
    ct_optim_free(optimizer);
    ct_loss_free(criterion);
    ct_model_free(model);
    ct_loader_free(loader);
    ct_dataset_free(train);
    ct_context_free(ctx);
    return rc;
}
