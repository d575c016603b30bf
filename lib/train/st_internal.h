/* lib/train/st_internal.h — what checkpoint.c needs from safetensors.c beyond the public
 * API: the hash of a file's bytes, which ties a checkpoint's two files together. */
#ifndef CLTRAIN_TRAIN_ST_INTERNAL_H
#define CLTRAIN_TRAIN_ST_INTERNAL_H

#include <stdint.h>

#include "cltrain/checkpoint.h"

/* ct_safetensors_write, also giving the 64-bit FNV-1a hash of every byte written. */
ct_status ct_st_write_hashed(const char *path, size_t n, const ct_st_tensor *tensors,
                             const char *metadata_json, uint64_t *hash);

/* FNV-1a hash of all the bytes a file was read or parsed from. */
uint64_t ct_st_file_hash(const ct_safetensors *f);

#endif
