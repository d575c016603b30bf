/* lib/ref/elem_ref.h — plain-C double-precision references for linear, activations,
 * softmax, dropout and batch norm (the ops of lib/nn/linear.c, act.c, dropout.c, norm.c).
 *
 * Written for clarity, not speed: they exist so the tests have an independent answer.
 * Inputs are float (what the device sees), outputs double. Shapes as in lib/nn/ops.h;
 * everything is dense row-major. Gradient functions follow the same contract as the
 * device ops: dx is overwritten, parameter gradients are ACCUMULATED (+=).
 */
#ifndef CLTRAIN_REF_ELEM_REF_H
#define CLTRAIN_REF_ELEM_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- linear ----------------------------------------------------------------------- */

/* y = x w^T + b, then max(y, 0) when relu.  x: (n, in)  w: (out, in)  b: (out) or NULL
 * y: (n, out) */
void ct_ref_linear_forward(const float *x, const float *w, const float *b, bool relu,
                           size_t n, size_t in, size_t out, double *y);
/* dy: (n, out). dx (n, in) = dy w (overwritten, may be NULL); dw (out, in) += dy^T x;
 * db (out) += column sums of dy (may be NULL). */
void ct_ref_linear_backward(const float *x, const float *w, const float *dy, size_t n,
                            size_t in, size_t out, double *dx, double *dw, double *db);

/* ---- activations ------------------------------------------------------------------ */

/* Kinds as ct_act_kind in lib/nn/ops.h: 0 ReLU, 1 LeakyReLU, 2 Sigmoid, 3 Tanh. */
enum { CT_REF_RELU, CT_REF_LEAKY_RELU, CT_REF_SIGMOID, CT_REF_TANH };

double ct_ref_act(int kind, double slope, double x);
/* d act(x) / dx, with PyTorch's choice at the kinks: ReLU'(0) = 0, LeakyReLU'(0) = slope. */
double ct_ref_act_grad(int kind, double slope, double x);
void ct_ref_act_forward(int kind, double slope, const float *x, size_t n, double *y);
void ct_ref_act_backward(int kind, double slope, const float *x, const float *dy, size_t n,
                         double *dx);

/* Row-wise softmax (or log-softmax) of x: (n, f). */
void ct_ref_softmax(const float *x, size_t n, size_t f, bool log, double *y);

/* ---- dropout ---------------------------------------------------------------------- */

/* Philox-4x32-10 (Salmon et al., SC'11; Random123's philox4x32 with 10 rounds):
 * out = philox(ctr[4], key[2]). */
void ct_ref_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* The dropout stream of cltrain (see kernels/dropout.cl): element i of a tensor uses word
 * i % 4 of philox(ctr = {i/4 low, i/4 high, counter low, counter high},
 * key = {seed low, seed high}) and is kept when that word < ct_ref_dropout_threshold(p). */
uint32_t ct_ref_dropout_threshold(float p);
/* keep[i] = 1 or 0 for i < n. */
void ct_ref_dropout_mask(size_t n, float p, uint64_t seed, uint64_t counter,
                         unsigned char *keep);
/* The float factor kept elements are multiplied by: (float)(1 / (1 - p)). */
float ct_ref_dropout_scale(float p);

/* ---- batch norm ------------------------------------------------------------------- */

/* x: (n, c, hw) with hw = H*W (1 for BatchNorm1d). gamma/beta (c) may be NULL.
 * Training: normalises with the batch mean and biased variance, writes mean and
 * invstd = 1/sqrt(var + eps) (c), and updates running_mean/var (c, may be NULL) with
 * momentum using the unbiased variance. Eval: normalises with the running stats. */
void ct_ref_batchnorm_forward(const float *x, const float *gamma, const float *beta, size_t n,
                              size_t c, size_t hw, double eps, double momentum, bool training,
                              double *running_mean, double *running_var, double *mean,
                              double *invstd, double *y);
/* Training-mode backward from the batch statistics of x. dx overwritten (may be NULL),
 * dgamma/dbeta += (may be NULL). */
void ct_ref_batchnorm_backward(const float *x, const float *gamma, const float *dy, size_t n,
                               size_t c, size_t hw, double eps, double *dx, double *dgamma,
                               double *dbeta);

#endif
