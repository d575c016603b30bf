/* cltrain devices — the table of OpenCL devices. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_devices(int argc, char **argv)
{
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: cltrain devices [--verbose]\n\nLists every OpenCL platform and device "
                   "with the index --device accepts.\n--verbose also says which CLBlast GEMM "
                   "parameters each device uses and why\n(stored by 'cltrain tune', built-in, or "
                   "CLBlast's own), and which convolution passes\nrun as GEMMs (CONV_GEMM: stored "
                   "by 'cltrain tune --conv', or the default).\n");
            return 0;
        }
        if (strcmp(argv[i], "--verbose") == 0) {
            verbose = true;
            continue;
        }
        fprintf(stderr, "cltrain devices: unknown option '%s' (it takes only --verbose)\n",
                argv[i]);
        return 2;
    }
    ct_device_info *list = NULL;
    size_t n = 0;
    ct_status st = ct_device_list(&list, &n);
    if (st != CT_SUCCESS)
        return cli_fail("listing devices", st);
    ct_device_info chosen;
    int have_default = ct_device_choose(NULL, &chosen) == CT_SUCCESS;
    for (size_t i = 0; i < n; i++) {
        const ct_device_info *d = &list[i];
        printf("%s[%zu] %s\n", have_default && chosen.index == i ? "*" : " ", i, d->name);
        printf("      type          %s\n", d->is_gpu ? "GPU" : d->is_cpu ? "CPU" : "other");
        printf("      vendor        %s\n", d->vendor);
        printf("      platform      %s (%s)\n", d->platform, d->platform_version);
        printf("      driver        %s\n", d->driver);
        printf("      OpenCL C      %s\n", d->opencl_c);
        printf("      compute units %u\n", d->compute_units);
        printf("      global memory %.1f MiB\n", (double)d->global_mem / 1048576.0);
        printf("      max buffer    %.1f MiB\n", (double)d->max_alloc / 1048576.0);
        printf("      fp16 / fp64   %s / %s\n", d->fp16 ? "yes" : "no", d->fp64 ? "yes" : "no");
        if (verbose) {
            ct_clblast_params p;
            char source[2048];
            ct_tune_resolve(d, &p, source, sizeof source);
            printf("      CLBlast GEMM  %s\n", source);
            ct_conv_path cp;
            char shape[128];
            ct_conv_path_resolve(d, &cp, source, sizeof source);
            printf("      conv path     %s\n", source);
            for (size_t j = 0; j < cp.nlayers; j++)
                if (ct_conv_shape_format(&cp.layer[j], shape, sizeof shape) == CT_SUCCESS)
                    printf("        layer %s CONV_GEMM=%u\n", shape, cp.layer_gemm[j]);
        }
    }
    if (have_default)
        printf("* default device (--device or CLTRAIN_DEVICE to choose another)\n");
    ct_device_list_free(list);
    return 0;
}
