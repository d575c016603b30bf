/* lib/data/cifar.c — CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin).
 *
 * A batch is a sequence of 3073-byte records and nothing else:
 *     byte 0        label, 0..9
 *     bytes 1-1024  red plane, 32 x 32 row-major; then 1024 green, then 1024 blue
 * so the pixels of a record are already one (3, 32, 32) image in CHW order. The official
 * batches hold 10000 records each; any non-zero count is accepted.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "data/data_internal.h"

#define CT_CIFAR_CLASSES 10

ct_status ct_cifar_append(const char *path, uint64_t max_bytes, size_t *count, uint8_t **images,
                          uint8_t **labels)
{
    ct_status st = CT_SUCCESS;
    ct_src src;
    int src_open = 0;
    unsigned char rec[CT_CIFAR_RECORD];
    size_t n = *count, cap = *count, got = 0;
    uint64_t bytes = 0;

    CT_TRY(ct_src_open(&src, path));
    src_open = 1;
    if (!src.gz && src.size_known) {
        CT_REQUIRE(src.file_size > 0, CT_ERR_FORMAT,
                   "%s: empty file, expected CIFAR-10 records of %d bytes", path, CT_CIFAR_RECORD);
        CT_REQUIRE(src.file_size % CT_CIFAR_RECORD == 0, CT_ERR_FORMAT,
                   "%s: size %" PRIu64 " bytes is not a multiple of the %d-byte CIFAR-10 record "
                   "(%" PRIu64 " whole records and %" PRIu64 " bytes left over)",
                   path, src.file_size, CT_CIFAR_RECORD, src.file_size / CT_CIFAR_RECORD,
                   src.file_size % CT_CIFAR_RECORD);
        CT_REQUIRE(src.file_size <= max_bytes, CT_ERR_FORMAT,
                   "%s: %" PRIu64 " bytes, more than the %" PRIu64 "-byte limit", path,
                   src.file_size, max_bytes);
    }
    for (;;) {
        CT_TRY(ct_src_read(&src, rec, sizeof rec, &got));
        if (got == 0)
            break;
        CT_REQUIRE(got == sizeof rec, CT_ERR_FORMAT,
                   "%s: size %" PRIu64 " bytes is not a multiple of the %d-byte CIFAR-10 record "
                   "(the last record has %zu bytes)",
                   path, bytes + got, CT_CIFAR_RECORD, got);
        CT_REQUIRE(rec[0] < CT_CIFAR_CLASSES, CT_ERR_FORMAT,
                   "%s: record %zu has label %u, expected 0..%d", path, n - *count, rec[0],
                   CT_CIFAR_CLASSES - 1);
        bytes += got;
        CT_REQUIRE(bytes <= max_bytes, CT_ERR_FORMAT, "%s: more than the %" PRIu64 "-byte limit",
                   path, max_bytes);
        if (n == cap) {
            size_t grown = cap < 1024 ? 1024 : 2 * cap;
            uint8_t *im = realloc(*images, grown * CT_CIFAR_PIXELS);
            CT_REQUIRE(im != NULL, CT_ERR_OUT_OF_MEMORY, "%s: no memory for %zu images", path,
                       grown);
            *images = im;
            uint8_t *lb = realloc(*labels, grown);
            CT_REQUIRE(lb != NULL, CT_ERR_OUT_OF_MEMORY, "%s: no memory for %zu labels", path,
                       grown);
            *labels = lb;
            cap = grown;
        }
        (*labels)[n] = rec[0];
        memcpy(*images + n * CT_CIFAR_PIXELS, rec + 1, CT_CIFAR_PIXELS);
        n++;
    }
    CT_REQUIRE(n > *count, CT_ERR_FORMAT, "%s: empty %s, expected CIFAR-10 records of %d bytes",
               path, src.gz ? "gzip stream" : "file", CT_CIFAR_RECORD);
    *count = n;
cleanup:
    if (src_open)
        ct_src_close(&src);
    return st;
}
