/* lib/train/st_internal.h — what the safetensors reader (safetensors.c), writer
 * (safetensors_write.c) and checkpoints (checkpoint.c) share beyond the public API: the
 * format's limits and helpers for validation and messages. The hash that ties a
 * checkpoint's two files together is core's 64-bit FNV-1a, ct_hash64 from CT_HASH64_INIT. */
#ifndef CLTRAIN_TRAIN_ST_INTERNAL_H
#define CLTRAIN_TRAIN_ST_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "cltrain/checkpoint.h"

/* The largest header the format allows (the Python package's limit). */
#define CT_ST_MAX_HEADER 100000000u
/* One read() or write() call moves at most this much (Linux caps a call below 2 GiB). */
#define CT_ST_IO_CHUNK ((size_t)1 << 30)

/* Offset of the first byte that is not part of valid UTF-8 (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF), or len when all of it is valid. */
size_t ct_st_utf8_invalid_at(const unsigned char *s, size_t len);

/* "[2, 3]" into buf (shortened with "..." when long); returns buf. */
const char *ct_st_fmt_shape(char *buf, size_t cap, size_t ndim, const size_t *shape);

/* "an object", "an integer", ... for messages. */
const char *ct_st_json_kind(const json_t *v);

/* ct_safetensors_write, also giving the 64-bit FNV-1a hash of every byte written. */
ct_status ct_st_write_hashed(const char *path, size_t n, const ct_st_tensor *tensors,
                             const char *metadata_json, uint64_t *hash);

/* FNV-1a hash of all the bytes a file was read or parsed from. */
uint64_t ct_st_file_hash(const ct_safetensors *f);

#endif
