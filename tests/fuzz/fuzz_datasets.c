/* tests/fuzz/fuzz_datasets.c — libFuzzer targets for the IDX (raw and gzip) and CIFAR-10
 * readers; FUZZ_READER selects which (idx or cifar) at build time.
 *
 * The readers take paths, so each input is written to a file under $TMPDIR (a tmpfs on
 * most systems) and read back. A reader must return CT_SUCCESS or CT_ERR_FORMAT with a
 * message naming the file — never crash, leak, read out of bounds, or allocate more than
 * the 64 MiB cap given to it (libFuzzer's -rss_limit_mb catches runaway growth from a
 * gzip bomb). Whatever is accepted must be self-consistent.
 * Build: CC=clang meson setup -Dfuzz=true build-fuzz && meson compile -C build-fuzz
 * Run:   build-fuzz/tests/fuzz/fuzz_idx tests/fuzz/corpus/idx */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/data_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[256];

static void write_input(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/cltrain-fuzz-%ld.bin", dir ? dir : "/tmp", (long)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort(); /* the harness itself failed, not the reader */
}

static void check_error(ct_status st)
{
    if (st != CT_ERR_FORMAT && st != CT_ERR_OUT_OF_MEMORY)
        abort();
    if (strstr(ct_last_error(), path) == NULL)
        abort(); /* the message must name the file */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    write_input(data, size);
    const uint64_t cap = 64u << 20;
#if FUZZ_READER_IDX
    ct_idx idx = {0};
    ct_status st = ct_idx_read(path, cap, &idx);
    if (st != CT_SUCCESS) {
        check_error(st);
        return 0;
    }
    size_t n = 1;
    for (size_t i = 0; i < idx.ndim; i++)
        n *= idx.dims[i];
    if (idx.ndim < 1 || idx.ndim > CT_IDX_MAX_DIMS || n != idx.count || idx.count > cap)
        abort();
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < idx.count; i++)
        sink ^= idx.data[i];
    (void)sink;
    ct_idx_release(&idx);
#else
    size_t count = 0;
    uint8_t *images = NULL, *labels = NULL;
    ct_status st = ct_cifar_append(path, cap, &count, &images, &labels);
    if (st != CT_SUCCESS) {
        check_error(st);
        if (count != 0)
            abort();
    } else {
        if (count == 0 || count * CT_CIFAR_RECORD != size)
            abort();
        for (size_t i = 0; i < count; i++)
            if (labels[i] >= 10)
                abort();
    }
    free(images);
    free(labels);
#endif
    return 0;
}
