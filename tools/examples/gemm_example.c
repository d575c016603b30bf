/* A program that uses the installed library: build it with
 *     cc gemm_example.c $(pkg-config --cflags --libs cltrain)
 * It multiplies two small matrices on the default OpenCL device and checks the result. */
#include <cltrain/cltrain.h>
#include <stdio.h>

int main(void)
{
    const float a[6] = {1, 2, 3, 4, 5, 6};    /* 2x3 */
    const float b[6] = {7, 8, 9, 10, 11, 12}; /* 3x2 */
    const float want[4] = {58, 64, 139, 154};
    float c[4] = {0};
    ct_context *ctx = NULL;
    ct_tensor *ta = NULL, *tb = NULL, *tc = NULL;
    int rc = 1;
    if (ct_context_create(NULL, 0, &ctx) != CT_SUCCESS ||
        ct_tensor_create(ctx, 2, (size_t[]){2, 3}, &ta) != CT_SUCCESS ||
        ct_tensor_create(ctx, 2, (size_t[]){3, 2}, &tb) != CT_SUCCESS ||
        ct_tensor_create(ctx, 2, (size_t[]){2, 2}, &tc) != CT_SUCCESS ||
        ct_tensor_upload(ta, a, 6) != CT_SUCCESS || ct_tensor_upload(tb, b, 6) != CT_SUCCESS ||
        ct_gemm(ctx, false, false, 2, 2, 3, 1.0f, ta, 3, tb, 2, 0.0f, tc, 2) != CT_SUCCESS ||
        ct_tensor_download(tc, c, 4) != CT_SUCCESS) {
        fprintf(stderr, "gemm_example: %s\n", ct_last_error());
        goto done;
    }
    rc = 0;
    for (int i = 0; i < 4; i++)
        if (c[i] != want[i])
            rc = 1;
    printf("%s: [%g %g; %g %g] on %s\n", rc ? "WRONG" : "ok", c[0], c[1], c[2], c[3],
           ct_context_device(ctx)->name);
done:
    ct_tensor_free(ta);
    ct_tensor_free(tb);
    ct_tensor_free(tc);
    ct_context_free(ctx);
    return rc;
}
