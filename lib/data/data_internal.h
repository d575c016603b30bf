/* lib/data/data_internal.h — what the dataset files share: a bounded byte source that
 * reads raw or gzip files, the IDX and CIFAR-10 readers, and the dataset struct.
 * No OpenCL here: lib/data only reads files and shuffles indices. */
#ifndef CLTRAIN_DATA_INTERNAL_H
#define CLTRAIN_DATA_INTERNAL_H

#include <stdint.h>
#include <stdio.h>
#include <zlib.h>

#include "cltrain/data.h"

/* Largest payload a reader accepts from one file (a guard against headers that declare
 * absurd sizes; Fashion-MNIST's train images are 47 MB, CIFAR-10's train set 154 MB). */
#define CT_DATA_MAX_BYTES ((uint64_t)1 << 32)

/* ---- byte source (source.c) --------------------------------------------------------- */

/* Decompressed bytes of a file, read in order through a fixed-size input buffer: a gzip
 * file (magic 1f 8b; several concatenated members allowed, as gunzip does) is inflated
 * incrementally, anything else is passed through. Memory use does not depend on the
 * file's contents. */
typedef struct ct_src {
    const char *path;
    FILE *f;
    int gz;         /* the file starts with the gzip magic */
    int z_live;     /* inflateInit2 succeeded */
    int member_end; /* the current gzip member reached its end (CRC checked) */
    int in_eof;     /* fread reached the end of the file */
    int size_known; /* file_size is valid (a regular file) */
    uint64_t file_size;
    uint64_t produced; /* decompressed bytes handed out so far */
    z_stream z;        /* next_in/avail_in index `in` in both modes */
    unsigned char *in;
    size_t in_cap;
} ct_src;

/* Opens `path` (kept by pointer: it must outlive the source). Errors: CT_ERR_IO. */
ct_status ct_src_open(ct_src *s, const char *path);
/* Reads up to `want` bytes. *got < want only at the clean end of the data; a truncated or
 * corrupt gzip stream or trailing garbage after one is CT_ERR_FORMAT, a read error
 * CT_ERR_IO, both naming the file. */
ct_status ct_src_read(ct_src *s, void *buf, size_t want, size_t *got);
void ct_src_close(ct_src *s);
/* "the file" or "the decompressed data", for messages. */
const char *ct_src_what(const ct_src *s);

/* ---- IDX (idx.c) -------------------------------------------------------------------- */

#define CT_IDX_MAX_DIMS 4

typedef struct ct_idx {
    size_t ndim;
    size_t dims[CT_IDX_MAX_DIMS];
    size_t count;  /* product of dims: bytes of data */
    uint8_t *data; /* malloc'd, count bytes */
} ct_idx;

/* Reads an IDX file of unsigned bytes (raw or gzip). The header is validated before any
 * allocation sized from it; the data buffer grows with the data actually read, never past
 * the declared size, and the read stops as soon as the data runs past it. Every deviation
 * is CT_ERR_FORMAT naming the file: wrong magic, dtype other than 0x08, 0 or more than 4
 * dimensions, a zero dimension, a size that overflows size_t or exceeds max_bytes,
 * truncation anywhere, trailing data. Release with ct_idx_release(). */
ct_status ct_idx_read(const char *path, uint64_t max_bytes, ct_idx *out);
void ct_idx_release(ct_idx *idx);

/* ---- CIFAR-10 (cifar.c) ------------------------------------------------------------- */

#define CT_CIFAR_SIDE   32
#define CT_CIFAR_PIXELS (3 * CT_CIFAR_SIDE * CT_CIFAR_SIDE)
#define CT_CIFAR_RECORD (1 + CT_CIFAR_PIXELS)

/* Appends the records of one CIFAR-10 binary batch to *images (n, 3, 32, 32) and *labels
 * (n), growing both with realloc; *count is updated. Empty files, sizes that are not a
 * multiple of 3073 and labels >= 10 are CT_ERR_FORMAT naming the file. On error the
 * arrays keep what they held before the call (possibly moved) and *count is unchanged. */
ct_status ct_cifar_append(const char *path, uint64_t max_bytes, size_t *count, uint8_t **images,
                          uint8_t **labels);

/* ---- datasets (dataset.c) ----------------------------------------------------------- */

struct ct_dataset {
    char name[32];
    size_t n, c, h, w;
    size_t num_classes;
    char **class_names; /* num_classes strings, one malloc'd block (see dataset.c) */
    uint8_t *images;    /* (n, c, h, w) */
    uint8_t *labels;    /* (n) */
    double *mean, *std; /* (c) */
};

/* Takes ownership of images and labels (malloc'd; freed on failure too), checks labels
 * against num_classes, copies the names and computes the statistics. */
ct_status ct_dataset_adopt(const char *name, size_t n, size_t c, size_t h, size_t w,
                           size_t num_classes, uint8_t *images, uint8_t *labels,
                           const char *const *class_names, ct_dataset **out);

#endif
