/* cltrain/checkpoint.h — safetensors files, and training checkpoints made of them.
 *
 * ---- safetensors ------------------------------------------------------------------
 * The format of huggingface/safetensors, byte for byte:
 *     8 bytes   N, the header length, unsigned little-endian
 *     N bytes   a UTF-8 JSON object: {"__metadata__": {"k": "v", ...},        (optional)
 *               "NAME": {"dtype": "F32", "shape": [2, 3], "data_offsets": [B, E]}, ...}
 *     the rest  the byte buffer; tensor NAME is bytes [B, E) of it, row-major, little-endian
 *
 * Reading is strict. A file is rejected with CT_ERR_FORMAT, and a one-line message naming
 * the file, the tensor when there is one, what was found and what was expected, when:
 * it is shorter than 8 bytes; N exceeds 100,000,000 or the rest of the file; the header
 * is not valid UTF-8, does not start with '{', is not JSON, or repeats a key; an entry
 * is not an object of exactly the fields dtype, shape and data_offsets; the dtype is not
 * one of the names below; shape is not an array of integers >= 0; data_offsets is not
 * two integers >= 0 with begin <= end; the byte count E - B differs from the product of
 * the shape times the element size (products are overflow-checked); the ranges, in order
 * of their begin, overlap, leave a gap, or do not end exactly at the end of the file;
 * __metadata__ is not an object of strings. Memory and time stay bounded by the file's
 * size: nothing is allocated from a number in the file before it is checked against it.
 *
 * dtypes: every dtype of the format is read and its bytes handed out as they are (so
 * PyTorch's I64 num_batches_tracked or an F64 scalar load). Converting getters give
 * floats: ct_safetensors_get_f32 reads F32, and widens F16 and BF16 exactly; every other
 * dtype is refused there with "unsupported dtype X for tensor NAME; cltrain reads F32
 * (F16 and BF16 are widened)". ct_safetensors_get_f64 reads F64, F32, F16, BF16 and the
 * integer dtypes whose values are exact in a double; ct_safetensors_get_i64 reads the
 * integer dtypes (and BOOL) whose values fit an int64_t.
 *
 * Writing produces what the Python package writes for the same tensors (byte for byte;
 * metadata entries keep the caller's order, where Python's order is a hash map's):
 * entries sorted by element alignment, largest first, then by name; compact JSON with
 * __metadata__ first; the header padded with spaces to a multiple of 8 bytes. The write
 * is atomic: the bytes go to a temporary file ".NAME.<pid>.<n>.tmp" in the destination
 * folder with plain write() calls (no stdio buffer), which is fsync'd and renamed over
 * NAME, and the folder is fsync'd. On any failure (disk full, permission denied, ...)
 * the message names the path and the system's error text, the temporary file is removed
 * and a previous NAME is untouched; a process killed mid-write leaves at most such a
 * temporary file behind (nothing removes it later), never a partial NAME.
 *
 * ---- checkpoints ------------------------------------------------------------------
 * ct_checkpoint_save(path, ...) writes two safetensors files:
 *   `path`       the weights, as torch.nn.Sequential's state_dict names and shapes them:
 *                "0.weight", "0.bias", "3.running_mean", "3.running_var" (F32) and
 *                "3.num_batches_tracked" (I64, rank 0), so that in Python
 *                model.load_state_dict(safetensors.torch.load_file(path)) accepts it with
 *                strict=True, and a state_dict saved by PyTorch loads here;
 *   the state    at ct_checkpoint_state_path(path): `path` with a final ".safetensors"
 *                replaced by ".state.safetensors" ("run/m.safetensors" ->
 *                "run/m.state.safetensors"), or with ".state.safetensors" appended when
 *                it does not end so ("ckpt" -> "ckpt.state.safetensors"). It holds the
 *                model's identity and spec, epoch, step, seeds, the dropout counter, the
 *                optimizer's state tensors ("optim.<name>", see optim.h) and the
 *                hyper-parameters, as __metadata__ strings ("train.epoch",
 *                "hparam.lr", ...; the full list is in lib/train/checkpoint.c) and
 *                tensors, plus a hash of the weights file, which ties the two together.
 * The weights are written first, then the state. A crash between the two renames leaves
 * new weights beside the old state, whose hash disagrees; ct_checkpoint_load refuses the
 * pair when asked for the state, naming both files. Loading the weights alone still
 * works.
 */
#ifndef CLTRAIN_CHECKPOINT_H
#define CLTRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "cltrain/model.h"
#include "cltrain/optim.h"
#include "cltrain/sched.h"
#include "cltrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- safetensors ------------------------------------------------------------------ */

/* The format's dtypes, in the order of the format's own alignment ranking (the writer
 * sorts by it). Sub-byte dtypes (F4, F6_*) pack their elements: a tensor's bit count
 * must be a multiple of 8. */
typedef enum ct_st_dtype {
    CT_ST_BOOL = 0,
    CT_ST_F4,
    CT_ST_F6_E2M3,
    CT_ST_F6_E3M2,
    CT_ST_U8,
    CT_ST_I8,
    CT_ST_F8_E5M2,
    CT_ST_F8_E4M3,
    CT_ST_F8_E8M0,
    CT_ST_I16,
    CT_ST_U16,
    CT_ST_F16,
    CT_ST_BF16,
    CT_ST_I32,
    CT_ST_U32,
    CT_ST_F32,
    CT_ST_C64,
    CT_ST_F64,
    CT_ST_I64,
    CT_ST_U64,
    CT_ST_DTYPE_COUNT
} ct_st_dtype;

/* "F32", "BF16", ... ("?" for an invalid value). */
const char *ct_st_dtype_name(ct_st_dtype dtype);
/* Bits per element: 4 for F4, 6 for F6_*, 8 * bytes for the others; 0 when invalid. */
size_t ct_st_dtype_bits(ct_st_dtype dtype);

/* One tensor. For writing, the caller fills every field (data may be NULL when nbytes
 * is 0); for reading, the library does and the pointers stay valid until
 * ct_safetensors_free. data holds the elements row-major in little-endian byte order
 * (the native order of every host cltrain runs on); nbytes = numel * bits / 8, where
 * numel is the product of the shape (1 for rank 0, 0 when any dimension is 0). */
typedef struct ct_st_tensor {
    const char *name; /* UTF-8, unique in a file, not "__metadata__" */
    ct_st_dtype dtype;
    size_t ndim;         /* 0 for a scalar; any rank */
    const size_t *shape; /* ndim sizes (NULL allowed when ndim is 0) */
    const void *data;
    size_t nbytes;
} ct_st_tensor;

/* Writes `n` tensors to `path`, atomically (see above). metadata_json is NULL or the
 * text of a JSON object whose values are strings ({"format": "pt"}); it becomes the
 * __metadata__ entry. Invalid arguments (duplicate or invalid names, a byte count that
 * disagrees with dtype and shape, metadata that is not an object of strings) are
 * CT_ERR_INVALID_ARG; system errors CT_ERR_IO. */
ct_status ct_safetensors_write(const char *path, size_t n, const ct_st_tensor *tensors,
                               const char *metadata_json);

typedef struct ct_safetensors ct_safetensors;

/* Reads and validates a whole file (see above). The caller frees *out with
 * ct_safetensors_free. CT_ERR_IO when it cannot be opened or read, CT_ERR_FORMAT when it
 * is malformed. */
ct_status ct_safetensors_read(const char *path, ct_safetensors **out);
/* Same from memory (copied); `label` stands for the file name in messages. */
ct_status ct_safetensors_parse(const void *bytes, size_t len, const char *label,
                               ct_safetensors **out);
void ct_safetensors_free(ct_safetensors *f);

/* The path (or label) the file was read from. */
const char *ct_safetensors_path(const ct_safetensors *f);
/* Tensors, in the order of their data in the file. */
size_t ct_safetensors_count(const ct_safetensors *f);
const ct_st_tensor *ct_safetensors_at(const ct_safetensors *f, size_t i);
/* The tensor named `name`, or NULL. */
const ct_st_tensor *ct_safetensors_find(const ct_safetensors *f, const char *name);

/* __metadata__: entries in file order; value of `key` or NULL. */
size_t ct_safetensors_metadata_count(const ct_safetensors *f);
ct_status ct_safetensors_metadata_at(const ct_safetensors *f, size_t i, const char **key,
                                     const char **value);
const char *ct_safetensors_metadata_get(const ct_safetensors *f, const char *key);

/* Copies tensor `name` into dst as floats (F32; F16 and BF16 widened exactly). When
 * `shape` is not NULL the tensor must have exactly that shape (ndim values), else
 * CT_ERR_SHAPE naming the file, tensor and both shapes; `count` must equal its numel.
 * CT_ERR_NOT_FOUND when absent, CT_ERR_UNSUPPORTED for another dtype. */
ct_status ct_safetensors_get_f32(const ct_safetensors *f, const char *name, size_t ndim,
                                 const size_t *shape, float *dst, size_t count);
/* Same into doubles (F64, F32, F16, BF16; integer dtypes whose values are within
 * +-2^53). */
ct_status ct_safetensors_get_f64(const ct_safetensors *f, const char *name, size_t ndim,
                                 const size_t *shape, double *dst, size_t count);
/* Same into int64_t (BOOL, I8..I64, U8..U32, and U64 values below 2^63). */
ct_status ct_safetensors_get_i64(const ct_safetensors *f, const char *name, size_t ndim,
                                 const size_t *shape, int64_t *dst, size_t count);

/* ---- checkpoints ------------------------------------------------------------------ */

/* What a training loop needs besides weights and optimizer state to resume exactly.
 * For ct_checkpoint_save every pointer field is read only (NULL allowed). After
 * ct_checkpoint_load the string fields are malloc'd (NULL when the checkpoint had none):
 * release them with ct_train_state_clear. */
typedef struct ct_train_state {
    uint64_t epoch;       /* epochs completed */
    uint64_t step;        /* optimizer steps taken, over all epochs */
    uint64_t batch;       /* batches done in the current epoch (0 at an epoch boundary) */
    uint64_t data_seed;   /* seed of the training set's shuffle */
    double best_metric;   /* e.g. best validation accuracy so far (any value, NaN and inf too) */
    bool has_sched;       /* whether `sched` holds a schedule's state */
    ct_sched_state sched; /* from ct_sched_state_get; give it to ct_sched_state_set */
    char *spec;           /* the text spec the model was built from, or NULL */
    char *hparams_json;   /* hyper-parameters: a JSON object of string values, or NULL;
                             each entry is stored as metadata "hparam.<key>" */
} ct_train_state;

/* Frees the strings a load put in *s and zeroes it. */
void ct_train_state_clear(ct_train_state *s);

/* Writes the companion state path of `path` (see above) into buf; CT_ERR_INVALID_ARG
 * when it does not fit in cap bytes (with the NUL). */
ct_status ct_checkpoint_state_path(const char *path, char *buf, size_t cap);

/* Saves weights (and buffers) to `path` and the state to its companion file, both
 * atomically. `optim` and `state` may be NULL (then none is saved). Waits for the
 * device (parameters are read back). */
ct_status ct_checkpoint_save(const char *path, ct_model *model, ct_optim *optim,
                             const ct_train_state *state);

/* Loads `path` into `model`: every parameter and buffer must be present with the
 * model's shape, and nothing else may be (as load_state_dict(strict=True)): a missing
 * or unexpected tensor is CT_ERR_FORMAT, a wrong shape CT_ERR_SHAPE, each naming the
 * file and the tensor. When `optim` or `state` is not NULL the companion state file is
 * read too: it must belong to the same save (weights hash), to a model of the same
 * structure (else CT_ERR_SHAPE: "checkpoint X was saved for model A, this model is B";
 * the structure is what the layers compute, every option of each, not how a device runs
 * them, so a checkpoint moves between a GPU that keeps conv and pool apart and a CPU that
 * fuses them)
 * and to an optimizer of the same kind and state layout; then the optimizer state, the
 * model's dropout RNG and *state are restored. With both NULL only the weights are read
 * (so files written by PyTorch load), and the model identity is still checked when a
 * state file exists. Everything is validated before anything is changed. *state is
 * overwritten without freeing what it held (call ct_train_state_clear first when it holds
 * strings of an earlier load). */
ct_status ct_checkpoint_load(const char *path, ct_model *model, ct_optim *optim,
                             ct_train_state *state);

#ifdef __cplusplus
}
#endif
#endif
