/* tests/fuzz/fuzz_tune.c — libFuzzer target for the parsers of the stored CLBlast
 * parameters (ct_tune_file_parse, lib/core/clblast_params.c) and of the stored convolution
 * path (ct_conv_path_parse, lib/core/conv_path.c), the same bytes to both. Whatever the bytes, it
 * must return CT_SUCCESS or CT_ERR_FORMAT, never crash or read past `size`, and leave the output
 * untouched when it refuses. What it accepts must pass CLBlast's constraints and read back
 * the same after formatting.
 * Build: CC=clang meson setup -Dfuzz=true build-fuzz && meson compile -C build-fuzz
 * Run:   build-fuzz/tests/fuzz/fuzz_tune tests/fuzz/corpus/tune */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy, so any read past the end is caught by ASan */
    char *text = malloc(size ? size : 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    ct_clblast_params p, before;
    ct_tune_file_info info;
    memset(&p, 0xa5, sizeof p);
    before = p;
    ct_status st = ct_tune_file_parse(text, size, &p, &info);
    /* the convolution path: CT_SUCCESS with values 0..7 and distinct, valid shapes (each
     * one ct_conv_path_set accepts and adds), or CT_ERR_FORMAT leaving cp alone */
    ct_conv_path cp, cp0, rebuilt;
    memset(&cp, 0x5a, sizeof cp);
    cp0 = cp;
    ct_status cst = ct_conv_path_parse(text, size, &cp, &info);
    if (cst != CT_SUCCESS && (cst != CT_ERR_FORMAT || memcmp(&cp, &cp0, sizeof cp) != 0))
        abort();
    if (cst == CT_SUCCESS) {
        if (cp.conv_gemm > 7 || cp.nlayers > CT_CONV_PATH_MAX_LAYERS)
            abort();
        ct_conv_path_init(&rebuilt, cp.conv_gemm);
        for (size_t i = 0; i < cp.nlayers; i++)
            if (ct_conv_path_set(&rebuilt, &cp.layer[i], cp.layer_gemm[i]) != CT_SUCCESS ||
                rebuilt.nlayers != i + 1)
                abort();
    }
    free(text);
    if (st != CT_SUCCESS) {
        if (st != CT_ERR_FORMAT || memcmp(&p, &before, sizeof p) != 0)
            abort();
        return 0;
    }
    char fam[1024], again[4096];
    if (ct_clblast_params_check(&p) != CT_SUCCESS ||
        ct_clblast_params_format(&p, fam, sizeof fam) != CT_SUCCESS)
        abort();
    int n = snprintf(again, sizeof again,
                     "cltrain-clblast-params 1\ndevice d\nplatform p\ndriver v\nclblast c\n"
                     "date t\nshapes s\n%s",
                     fam);
    ct_clblast_params q;
    if (n < 0 || (size_t)n >= sizeof again ||
        ct_tune_file_parse(again, (size_t)n, &q, NULL) != CT_SUCCESS ||
        !ct_clblast_params_equal(&p, &q))
        abort();
    return 0;
}
