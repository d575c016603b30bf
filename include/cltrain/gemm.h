/* cltrain/gemm.h — matrix products: CLBlast on GPUs, cltrain's own register-tiled
 * kernels (kernels/gemm.cl) on CPU devices; CLTRAIN_GEMM=clblast or =own overrides.
 *
 * Row-major: C(m x n) = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T. `lda` is the
 * row stride of A as stored (>= k without transpose, >= m with), likewise ldb and ldc.
 * Each matrix starts at its tensor's first element and must lie within the tensor's
 * elements (its shape is not otherwise used, so a flat tensor or view serves).
 */
#ifndef CLTRAIN_GEMM_H
#define CLTRAIN_GEMM_H

#include <stdbool.h>

#include "cltrain/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

ct_status ct_gemm(ct_context *ctx, bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                  float alpha, const ct_tensor *a, size_t lda, const ct_tensor *b, size_t ldb,
                  float beta, ct_tensor *c, size_t ldc);

/* `batch` independent products; matrix i of A starts i*stride_a elements after A's
 * offset, likewise B and C. */
ct_status ct_gemm_batched(ct_context *ctx, bool trans_a, bool trans_b, size_t m, size_t n,
                          size_t k, float alpha, const ct_tensor *a, size_t lda, size_t stride_a,
                          const ct_tensor *b, size_t ldb, size_t stride_b, float beta,
                          ct_tensor *c, size_t ldc, size_t stride_c, size_t batch);

/* Which implementation ct_gemm uses on ctx's device. */
typedef enum ct_gemm_backend_kind { CT_GEMM_CLBLAST, CT_GEMM_OWN } ct_gemm_backend_kind;
ct_gemm_backend_kind ct_gemm_backend(const ct_context *ctx);

#ifdef __cplusplus
}
#endif
#endif
