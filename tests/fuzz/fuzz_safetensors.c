/* tests/fuzz/fuzz_safetensors.c — libFuzzer target for the safetensors reader.
 *
 * Feeds arbitrary bytes to ct_safetensors_parse. The reader must return CT_SUCCESS or
 * CT_ERR_FORMAT (never crash, leak, read out of bounds or allocate beyond the input's
 * size), and whatever it accepts must be self-consistent: every tensor's bytes lie inside
 * the input, lookups by name find each tensor, and writing nothing else is needed.
 * Build: CC=clang meson setup -Dfuzz=true build-fuzz && meson compile -C build-fuzz
 * Run:   build-fuzz/tests/fuzz/fuzz_safetensors tests/fuzz/corpus/safetensors
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cltrain/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ct_safetensors *f = NULL;
    ct_status st = ct_safetensors_parse(data, size, "fuzz", &f);
    if (st != CT_SUCCESS) {
        if (st != CT_ERR_FORMAT && st != CT_ERR_OUT_OF_MEMORY)
            abort();
        if (strstr(ct_last_error(), "fuzz") == NULL)
            abort();
        return 0;
    }
    size_t total = 0;
    for (size_t i = 0; i < ct_safetensors_count(f); i++) {
        const ct_st_tensor *t = ct_safetensors_at(f, i);
        if (ct_safetensors_find(f, t->name) != t)
            abort();
        total += t->nbytes;
        /* Touch every byte so the sanitizer sees any out-of-bounds pointer. */
        volatile unsigned char sink = 0;
        for (size_t b = 0; b < t->nbytes; b++)
            sink ^= ((const unsigned char *)t->data)[b];
        (void)sink;
        float one;
        if (t->nbytes > 0 && t->dtype == CT_ST_F32 && t->nbytes == 4)
            (void)ct_safetensors_get_f32(f, t->name, t->ndim, t->shape, &one, 1);
    }
    if (total > size)
        abort();
    for (size_t i = 0; i < ct_safetensors_metadata_count(f); i++) {
        const char *k = NULL, *v = NULL;
        if (ct_safetensors_metadata_at(f, i, &k, &v) != CT_SUCCESS ||
            ct_safetensors_metadata_get(f, k) == NULL)
            abort();
    }
    ct_safetensors_free(f);
    return 0;
}
