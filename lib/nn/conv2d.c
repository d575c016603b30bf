/* lib/nn/conv2d.c — 2-D convolution forward and backward (kernels/conv.cl).
 *
 * Every pass but one is a direct convolution over a zero-padded scratch copy of its input,
 * so the kernels' hot loops need no bounds checks:
 *   forward        conv_pad(x) -> xp, conv_wt_fwd(w) -> wt, direct(xp, wt, b) -> y
 *   backward-data  conv_pad(dy upsampled by the stride) -> dyp, conv_wt_bwd(w) -> wt2,
 *                  direct(dyp, wt2) at stride 1 -> dx
 *   backward-wt    conv_pad(x) -> xp, conv_bwd_w(xp, dy) -> dw (+=), through a partial
 *                  buffer and conv_reduce when the batch is split into chunks; at stride
 *                  1 with >= 32 taps per output channel dy is padded to x's row pitch too
 *                  and conv_bwd_w_flat runs instead; where the output channels fill
 *                  conv_kv's vectors (CPUs, CONV_BWK), conv_dyt(dy) -> dyt (channels
 *                  innermost) and conv_bwd_w_kv(x, dyt) -> dw, any stride, reading x
 *                  itself (the one pass without a padded copy: its taps' rows are looked
 *                  up once per output row, its columns checked at the rows' ends); when
 *                  the input gradient runs conv_kv at stride 1 too, conv_dyt writes dyt
 *                  once, with the backward-data pass's padding, and both passes read it
 *   backward-bias  summed by conv_bwd_w_kv and conv_bwd_w_pool beside dw (partial sums
 *                  per chunk, reduced with dw's), else conv_bwd_b(dy) -> db (+=), once
 *                  over the whole batch
 * The direct pass runs as conv_kv (vectors over output channels) when the output channels
 * fill its vectors, else as conv_direct (vectors over pixels). Measured on PoCL 3.1, 2-core
 * AVX-512 (MiniCNN conv2, batch 64): conv_kv ~110 GFLOP/s per core, conv_direct ~45.
 * A conv fused with its ReLU and a 2x2 max pool (ct_conv2d_pool_*) runs conv_kv_pool, or
 * conv_direct_pool below CONV_POOL_TAPS (32) taps per output channel, and its backward
 * starts from the pooled gradient (conv_unpool, conv_bwd_w_pool).
 * The passes run over the batch in slices whose padded copies fit CONV_SLICE KiB (CPUs:
 * 1.5 MiB; GPUs: no limit): the copies stay in a CPU's caches and device memory stays near
 * what the model itself needs (MiniCNN at batch 64: 13.8 MiB in use instead of 18.3).
 * Scratch slots: 0 the backward passes' padded x, 1 transformed weights, 2 the forward
 * pass's padded x or the backward passes' padded dy (or dyt): no pass needs both, 3 partial
 * sums of dw (and db); conv_kv's tap offsets and a row of zeros live in constant buffers of
 * the context (ct_const_buffer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"

enum { SLOT_XPAD = 0, SLOT_WT = 1, SLOT_DYPAD = 2, SLOT_PART = 3, SLOT_COL = 4, SLOT_GOUT = 5 };
enum { CONV_GEMM_W = 1, CONV_GEMM_F = 2, CONV_GEMM_D = 4 };

/* Tunables shared with kernels/conv.cl: read from the device's tuning table when it names
 * them, else these defaults; then handed to the kernels as -D options, so both agree. */
typedef struct conv_tune {
    unsigned kt;    /* CONV_KT: output channels per work-item of conv_direct */
    unsigned qv;    /* CONV_QV: pixels per work-item (vector width), 8 or 16 */
    unsigned pt;    /* CONV_PT: output rows per work-item of conv_direct */
    unsigned kv;    /* CONV_KV: float16 vectors of output channels per work-item of conv_kv */
    unsigned px;    /* CONV_PX: output pixels per work-item of conv_kv; 0 = per layer */
    unsigned bw_kt; /* CONV_BW_KT: output channels per work-item of conv_bwd_w */
    unsigned bw_st; /* CONV_BW_ST: (c, r, s) taps per work-item of conv_bwd_w */
    unsigned pp;    /* CONV_PP: pooled pixels per work-item of conv_kv_pool */
    unsigned bwp_kt, bwp_st; /* CONV_BWP_KT/ST: conv_bwd_w_pool's tile */
    unsigned bwk;            /* CONV_BWK: 1 conv_bwd_w_kv where it applies (CPUs), 0 never */
    unsigned bwk_t;          /* CONV_BWK_T: taps per work-item of conv_bwd_w_kv */
    unsigned rs_r, rs_s;     /* CONV_R, CONV_S: the layer's kernel size where conv_kv,
                              * conv_kv_pool, conv_direct_pool and conv_bwd_w_kv unroll a
                              * channel's taps (stride and dilation 1, up to KV_RS_MAX
                              * taps), else 0 (host only: from the layer's shape) */
    unsigned rs_pw;          /* CONV_PW: with them, the layer's padding along the width
                              * (conv_bwd_w_kv's row ends), else 0 */
    unsigned wg;             /* CONV_WG: work-group size along the pixel dimension (host only) */
    unsigned bw_cache;       /* CONV_BW_CACHE: KiB of x and dy per backward-weight chunk, 0 no
                              * limit (host only) */
    unsigned slice;          /* CONV_SLICE: KiB of padded copies per batch slice, forward and
                              * backward, 0 no limit (host only) */
    unsigned gemm;           /* CONV_GEMM: the passes run as im2col + GEMM (ungrouped layers):
                              * 1 weight gradient, 2 forward (a model then keeps its pools
                              * apart), 4 input gradient (GPUs: 7, CPUs: 0) */
    unsigned gemm_mb;        /* CONV_GEMM_MB: MiB of gathered operands per chunk of images */
    unsigned bw_wg; /* CONV_BW_WG: conv_bwd_w_wg's work-group size (a power of two up to 1024)
                     * for weight gradients of fewer than 32 taps from a dense dy; 1: off */
    unsigned bb_wg; /* CONV_BB_WG: conv_bwd_b_wg's work-group size (a power of two up to
                     * 1024); 1: conv_bwd_b, one work-item per channel */
    char options[256];
} conv_tune;

/* The -D options of conv.cl for tuning t with conv_kv's pixel run px. */
static void conv_options(const conv_tune *t, unsigned px, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "-DCONV_KT=%u -DCONV_QV=%u -DCONV_PT=%u -DCONV_KV=%u -DCONV_PX=%u -DCONV_BW_KT=%u "
             "-DCONV_BW_ST=%u -DCONV_PP=%u -DCONV_BWP_KT=%u -DCONV_BWP_ST=%u -DCONV_BWK_T=%u "
             "-DCONV_BB_WG=%u -DCONV_BW_WG=%u -DCONV_R=%u -DCONV_S=%u -DCONV_PW=%u",
             t->kt, t->qv, t->pt, t->kv, px, t->bw_kt, t->bw_st, t->pp, t->bwp_kt, t->bwp_st,
             t->bwk_t, t->bb_wg, t->bw_wg, t->rs_r, t->rs_s, t->rs_pw);
}

/* A work-group size tunable: a power of two up to 1024, else the device's default (GPUs:
 * 256; CPUs: 1, the kernel's work-group form off). */
static unsigned wg_size(const ct_context *ctx, const char *name)
{
    unsigned dflt = ctx->info.is_gpu ? 256 : 1, v = ct_tune_value(ctx, name, dflt);
    return v > 1024 || (v & (v - 1)) ? dflt : v;
}

/* The direct kernels unroll a channel's taps (conv.cl, CONV_R and CONV_S) when there are
 * at most this many (up to 5x5); a larger kernel keeps the loop over conv_taps' table. */
#define KV_RS_MAX 25

/* The tunables for a convolution of shape `shape` (its CONV_GEMM may be its own). */
static void conv_tune_get(const ct_context *ctx, const ct_conv_shape *shape, conv_tune *t)
{
    t->kt = ct_tune_value(ctx, "CONV_KT", 8);
    t->qv = ct_tune_value(ctx, "CONV_QV", 16);
    if (t->qv != 8 && t->qv != 16)
        t->qv = 16;
    t->pt = ct_tune_value(ctx, "CONV_PT", 2);
    t->kv = ct_tune_value(ctx, "CONV_KV", 2);
    t->px = ct_tune_value(ctx, "CONV_PX", 0); /* 0: chosen per layer (direct_plan_make) */
    t->bw_kt = ct_tune_value(ctx, "CONV_BW_KT", 4);
    t->bw_st = ct_tune_value(ctx, "CONV_BW_ST", 6);
    t->pp = ct_tune_value(ctx, "CONV_PP", 2);
    t->bwp_kt = ct_tune_value(ctx, "CONV_BWP_KT", 2);
    t->bwp_st = ct_tune_value(ctx, "CONV_BWP_ST", 9);
    t->bwk = ct_tune_flags(ctx, "CONV_BWK", ctx->info.is_gpu ? 0 : 1);
    t->bwk_t = ct_tune_value(ctx, "CONV_BWK_T", 9);
    t->wg = ct_tune_value(ctx, "CONV_WG", ctx->info.is_gpu ? 64 : 4);
    t->bw_cache = ct_tune_value(ctx, "CONV_BW_CACHE", ctx->info.is_gpu ? 0 : 1024);
    /* CPUs: a slice's copies stay in the caches (L2: 2 MiB a core here) and device memory
     * stays near what the model itself needs (MiniCNN at batch 64: 3 backward slices of
     * conv2's 4 MiB padded gradient, 2 forward slices of its 2.25 MiB padded input) */
    t->slice = ct_tune_flags(ctx, "CONV_SLICE", ctx->info.is_gpu ? 0 : 1536);
    /* the device's stored choice for this shape, or its default (lib/core/conv_path.c) */
    t->gemm = ct_context_conv_gemm(ctx, shape);
    t->gemm_mb = ct_tune_value(ctx, "CONV_GEMM_MB", 64);
    /* one work-item summing a whole channel's bias gradient took 0.44 ms per layer on an
     * H200 (MiniCNN, batch 64); on a CPU that is the fastest order */
    t->bb_wg = wg_size(ctx, "CONV_BB_WG");
    /* conv_bwd_w's few long work-items took 0.17 ms of MiniCNN's 1.49 ms step on an H200
     * (conv1's weight gradient), 0.89 of the CIFAR-shaped model's 14 */
    t->bw_wg = wg_size(ctx, "CONV_BW_WG");
    /* the kernel size as build constants: a channel's taps unroll at constant offsets, no
     * tap-table loads, broadcasts shared between taps (MiniCNN conv2 at batch 64: its
     * fused forward 1.59-1.62 -> 1.47-1.58 ms, input gradient 1.57-1.60 -> 1.42-1.51,
     * weight gradient 1.69-1.83 -> 1.58-1.62; the CIFAR-shaped model's step 230 -> 197).
     * Every conv.cl kernel of the layer shares the one build. */
    const bool rs = shape->stride_h == 1 && shape->stride_w == 1 && shape->dil_h == 1 &&
                    shape->dil_w == 1 && shape->r * shape->s <= KV_RS_MAX;
    t->rs_r = rs ? shape->r : 0;
    t->rs_s = rs ? shape->s : 0;
    t->rs_pw = rs ? shape->pad_w : 0;
    conv_options(t, t->px ? t->px : 7, t->options, sizeof t->options);
}

/* Launches a kernel of conv.cl over `n` work-items, with the conv options. */
static ct_status conv_run1d(ct_context *ctx, const conv_tune *t, const char *name, size_t n,
                            size_t local, size_t nargs, const ct_arg *args)
{
    ct_status st = CT_SUCCESS;
    cl_kernel k = NULL;
    if (!local)
        local = ctx->info.is_gpu ? 64 : 16;
    CT_TRY(ct_kernel_get(ctx, "conv.cl", name, t->options, &k));
    CT_TRY(ct_kernel_setargs(k, name, nargs, args));
    CT_TRY(ct_launch(ctx, k, name, 1, &n, &local));
cleanup:
    return st;
}
#define CONV_RUN1D_LOCAL(ctx, t, name, n, local, ...)                                              \
    conv_run1d((ctx), (t), (name), (n), (local), sizeof((ct_arg[]){__VA_ARGS__}) / sizeof(ct_arg), \
               (ct_arg[]){__VA_ARGS__})
#define CONV_RUN1D(ctx, t, name, n, ...) CONV_RUN1D_LOCAL(ctx, t, name, n, 0, __VA_ARGS__)

static size_t round_up(size_t v, size_t m)
{
    return (v + m - 1) / m * m;
}

size_t ct_conv_out_size(size_t in, size_t k, size_t stride, size_t pad, size_t dil)
{
    if (k == 0 || stride == 0 || dil == 0)
        return 0;
    size_t span = dil * (k - 1) + 1;
    if (in + 2 * pad < span)
        return 0;
    return (in + 2 * pad - span) / stride + 1;
}

/* The sizes of one convolution, checked against its tensors. */
typedef struct conv_geom {
    size_t n, c, h, w, k, r, s, p, q, g, cg, kg;
} conv_geom;

/* The key of a convolution's path (cltrain/tune.h), for conv_tune_get. */
static ct_conv_shape conv_shape(const conv_geom *d, const ct_conv2d_params *p)
{
    return (ct_conv_shape){.c = (unsigned)d->c,
                           .h = (unsigned)d->h,
                           .w = (unsigned)d->w,
                           .k = (unsigned)d->k,
                           .r = (unsigned)d->r,
                           .s = (unsigned)d->s,
                           .stride_h = (unsigned)p->stride_h,
                           .stride_w = (unsigned)p->stride_w,
                           .pad_h = (unsigned)p->pad_h,
                           .pad_w = (unsigned)p->pad_w,
                           .dil_h = (unsigned)p->dil_h,
                           .dil_w = (unsigned)p->dil_w,
                           .groups = (unsigned)d->g};
}

static void conv_tune_for(const ct_context *ctx, const conv_geom *d, const ct_conv2d_params *p,
                          conv_tune *t)
{
    const ct_conv_shape cs = conv_shape(d, p);
    conv_tune_get(ctx, &cs, t);
}

static ct_status conv_geom_check(const ct_tensor *x, const ct_tensor *w, const ct_conv2d_params *p,
                                 conv_geom *o)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(x != NULL && w != NULL && p != NULL, CT_ERR_INVALID_ARG,
               "conv2d: x, w and params are required");
    CT_REQUIRE(p->stride_h >= 1 && p->stride_w >= 1 && p->dil_h >= 1 && p->dil_w >= 1 &&
                   p->groups >= 1,
               CT_ERR_INVALID_ARG, "conv2d: stride, dilation and groups must be >= 1");
    CT_REQUIRE(x->ndim == 4, CT_ERR_SHAPE, "conv2d: x must be (N, C, H, W), has %zu dims", x->ndim);
    CT_REQUIRE(w->ndim == 4, CT_ERR_SHAPE, "conv2d: w must be (K, C/groups, R, S), has %zu dims",
               w->ndim);
    o->n = x->shape[0], o->c = x->shape[1], o->h = x->shape[2], o->w = x->shape[3];
    o->k = w->shape[0], o->r = w->shape[2], o->s = w->shape[3], o->g = p->groups;
    CT_REQUIRE(o->c % o->g == 0 && o->k % o->g == 0, CT_ERR_SHAPE,
               "conv2d: groups=%zu must divide C=%zu and K=%zu", o->g, o->c, o->k);
    o->cg = o->c / o->g, o->kg = o->k / o->g;
    CT_REQUIRE(w->shape[1] == o->cg, CT_ERR_SHAPE,
               "conv2d: w has %zu input channels, expected C/groups = %zu", w->shape[1], o->cg);
    o->p = ct_conv_out_size(o->h, o->r, p->stride_h, p->pad_h, p->dil_h);
    o->q = ct_conv_out_size(o->w, o->s, p->stride_w, p->pad_w, p->dil_w);
    CT_REQUIRE(o->p > 0 && o->q > 0, CT_ERR_SHAPE,
               "conv2d: a %zux%zu kernel (dilation %zux%zu) does not fit a %zux%zu input padded "
               "by %zux%zu",
               o->r, o->s, p->dil_h, p->dil_w, o->h, o->w, p->pad_h, p->pad_w);
cleanup:
    return st;
}

/* Rows and row pitch of a padded input read by a kernel that produces `out_rows` x
 * `out_cols` outputs in tiles of `rows` rows x `run` pixels: the last tile reaches
 * round_up(out_rows, rows) rows and round_up(out_cols, run) columns. */
static void pad_dims(size_t rows, size_t run, size_t out_rows, size_t out_cols, size_t r, size_t s,
                     size_t sh, size_t sw, size_t dh, size_t dw, size_t *hp, size_t *wp)
{
    *hp = (round_up(out_rows, rows) - 1) * sh + (r - 1) * dh + 1;
    *wp = (round_up(out_cols, run) - 1) * sw + (s - 1) * dw + 1;
}

/* Images [n0, n0 + nn) of t, a batch-first tensor, as a tensor on the stack (no view
 * object: kernels only read mem, offset and sizes). */
static ct_tensor batch_slice(const ct_tensor *t, size_t n0, size_t nn)
{
    ct_tensor s = *t;
    size_t per = t->numel / t->shape[0];
    s.offset += n0 * per;
    s.shape[0] = nn;
    s.numel = nn * per;
    return s;
}

/* Images per batch slice of a layer whose input x is (N, C, H, W) when each image's padded
 * copies take `per_image` bytes: the whole batch, unless the copies would exceed both
 * CONV_SLICE KiB and the size of x itself. A layer's copies thus take at most as much
 * memory as its input (MiniCNN at batch 64: conv2's 4 MiB of padded gradient in 3 slices
 * next to its 1.5 MiB input), and a large layer gets few slices, each of which re-reads
 * its weights (the CIFAR-shaped model, PoCL, 2 cores: slices of 1.5 MiB cost 9%, of its
 * inputs' size 0-3%). */
static size_t slice_images(const conv_tune *t, const conv_geom *d, size_t per_image)
{
    size_t budget = (size_t)t->slice * 1024, x_bytes = d->n * d->c * d->h * d->w * sizeof(float);
    if (budget && budget < x_bytes)
        budget = x_bytes;
    if (!budget || !per_image || d->n * per_image <= budget)
        return d->n;
    return budget / per_image > 1 ? budget / per_image : 1;
}

/* Writes x zero-padded into scratch slot SLOT_XPAD: (N, C, hp, wp) plus slack for the
 * strided vector loads that read one run past the last column. */
static ct_status pad_input(ct_context *ctx, const conv_tune *t, const ct_tensor *src, size_t planes,
                           size_t hs, size_t ws, size_t hp, size_t wp, long off_h, long off_w,
                           size_t ups_h, size_t ups_w, unsigned slot, size_t base, cl_mem *out)
{
    ct_status st = CT_SUCCESS;
    size_t elems = base + planes * hp * wp;
    CT_REQUIRE(elems + 4 * t->qv < 0xffffffffu, CT_ERR_UNSUPPORTED,
               "conv2d: padded input of %zu elements exceeds the kernels' 32-bit indices", elems);
    CT_TRY(ct_scratch_get(ctx, slot, (elems + 4 * t->qv) * sizeof(float), out));
    CT_TRY(CONV_RUN1D(ctx, t, "conv_pad", planes, CT_MEM(*out), CT_U32(base), CT_T(src),
                      CT_U32(planes), CT_U32(hs), CT_U32(ws), CT_U32(hp), CT_U32(wp), CT_I32(off_h),
                      CT_I32(off_w), CT_U32(ups_h), CT_U32(ups_w)));
cleanup:
    return st;
}

/* conv_kv's tap offsets for ci input channels in planes of hp x wp pixels of tl channels
 * each (1: planar; conv_dyt's tiles) and an r x s kernel (dilation dh, dw): the same for
 * every call with that geometry, so computed once into a constant buffer of the context. */
static ct_status tap_offsets(ct_context *ctx, const conv_tune *t, size_t ci, size_t r, size_t s,
                             size_t hp, size_t wp, size_t dh, size_t dw, size_t tl, cl_mem *taps)
{
    ct_status st = CT_SUCCESS;
    size_t geo[] = {ci, r, s, hp, wp, dh, dw, tl};
    uint64_t key = ct_hash64(ct_hash64(CT_HASH64_INIT, "conv_taps", 9), geo, sizeof geo);
    size_t crs = ci * r * s;
    bool fresh = false;
    CT_TRY(ct_const_buffer(ctx, key, crs * sizeof(cl_uint), taps, &fresh));
    if (fresh) {
        st = CONV_RUN1D(ctx, t, "conv_taps", crs, CT_MEM(*taps), CT_U32(ci), CT_U32(r), CT_U32(s),
                        CT_U32(hp), CT_U32(wp), CT_U32(dh), CT_U32(dw), CT_U32(tl));
        if (st != CT_SUCCESS)
            ct_const_buffer_drop(ctx, *taps); /* never filled: not for the next call */
    }
cleanup:
    return st;
}

/* How a direct pass with `ko` output channels per group is tiled. */
typedef struct direct_plan {
    bool kv;          /* conv_kv, else conv_direct */
    size_t kop;       /* output channels per group, padded to the kernel's tile */
    size_t rows, run; /* output tile: rows x pixels */
} direct_plan;

/* conv_kv's pixel run for rows of q outputs: CONV_PX when the table or CLTRAIN_TUNE sets
 * it, else the run of 4..8 that computes the fewest pixels past the row's end (ties: the
 * longer run). MiniCNN's 14 and 28 wide rows get 7, CIFAR's 32, 16 and 8 wide rows 8: a
 * run of 7 on an 8-wide row computed 14 pixels for 8 (the 256-channel layers ran at half
 * speed). Each run length is its own build of conv.cl. */
static size_t kv_run(const conv_tune *t, size_t q)
{
    if (t->px)
        return t->px;
    size_t best = 8;
    for (size_t px = 8; px >= 4; px--)
        if (round_up(q, px) < round_up(q, best))
            best = px;
    return best;
}

/* The tiling of a direct pass with `ko` output channels per group over rows of q outputs. */
static direct_plan direct_plan_make(const conv_tune *t, size_t ko, size_t q)
{
    direct_plan d;
    size_t kvw = 16 * (size_t)t->kv;
    /* conv_kv when padding the channels to its vectors wastes at most a fifth */
    d.kv = round_up(ko, kvw) * 4 <= ko * 5;
    d.kop = d.kv ? round_up(ko, kvw) : round_up(ko, t->kt);
    d.rows = d.kv ? 1 : t->pt;
    d.run = d.kv ? kv_run(t, q) : t->qv;
    return d;
}

/* The channel tile of the weight layout a direct pass reads (conv.cl, conv_wt_fwd). */
static size_t plan_tile(const conv_tune *t, const direct_plan *pl)
{
    return pl->kv ? 16 * (size_t)t->kv : pl->kop;
}

/* The direct pass over a padded input xp (N, G*ci, hp, wp) with weights wt
 * (G, ci*R*S, plan->kop), writing y (N, G*ko, p, q). With tl > 1 (conv_kv at stride 1
 * only) xp holds conv_dyt's layout instead: planes of hp x wp pixels of tl channels. */
static ct_status run_direct(ct_context *ctx, const conv_tune *t, const direct_plan *pl, cl_mem xp,
                            size_t xp_off, cl_mem wt, const ct_tensor *b, ct_tensor *y, size_t n,
                            size_t g, size_t ci, size_t ko, size_t hp, size_t wp, size_t r,
                            size_t s, size_t sh, size_t sw, size_t dh, size_t dw, size_t p,
                            size_t q, size_t tl, unsigned flags)
{
    ct_status st = CT_SUCCESS;
    cl_kernel k = NULL;
    cl_mem taps = NULL;
    size_t nqr = (q + pl->run - 1) / pl->run, npt = (p + pl->rows - 1) / pl->rows;
    size_t global[3] = {npt * nqr, g * pl->kop, n};
    size_t local[3] = {t->wg, 1, 1};
    if (pl->kv) {
        size_t crs = ci * r * s;
        char opts[256];
        conv_options(t, (unsigned)pl->run, opts, sizeof opts);
        CT_TRY(tap_offsets(ctx, t, ci, r, s, hp, wp, dh, dw, tl, &taps));
        CT_TRY(ct_kernel_get(ctx, "conv.cl", "conv_kv", opts, &k));
        /* conv_kv's arithmetic on tiles: an image is ceil(ci/tl) "planes" of hp rows of
         * wp*tl floats, pixels tl floats apart */
        CT_TRY(CT_SETARGS(k, "conv_kv", CT_MEM(xp), CT_U32(xp_off), CT_MEM(wt), CT_MEM(taps),
                          CT_T(b ? b : y), CT_T(y), CT_U32((ci + tl - 1) / tl), CT_U32(ko),
                          CT_U32(pl->kop), CT_U32(g), CT_U32(hp), CT_U32(wp * tl), CT_U32(crs),
                          CT_U32(sh), CT_U32(sw * tl), CT_U32(p), CT_U32(q), CT_U32(nqr),
                          CT_U32(flags)));
        global[1] /= 16 * (size_t)t->kv;
        CT_TRY(ct_launch(ctx, k, "conv_kv", 3, global, local));
    } else {
        CT_TRY(ct_kernel_get(ctx, "conv.cl", "conv_direct", t->options, &k));
        CT_TRY(CT_SETARGS(k, "conv_direct", CT_MEM(xp), CT_U32(xp_off), CT_MEM(wt), CT_T(b ? b : y),
                          CT_T(y), CT_U32(ci), CT_U32(ko), CT_U32(pl->kop), CT_U32(g), CT_U32(hp),
                          CT_U32(wp), CT_U32(r), CT_U32(s), CT_U32(sh), CT_U32(sw), CT_U32(dh),
                          CT_U32(dw), CT_U32(p), CT_U32(q), CT_U32(nqr), CT_U32(flags)));
        global[1] /= t->kt;
        CT_TRY(ct_launch(ctx, k, "conv_direct", 3, global, local));
    }
cleanup:
    return st;
}

/* For a direct pass whose output (p x q, or the conv rows/columns a fused pool reads) is
 * covered by tiles of rows x run: the padded input's planes (hp x wp), the images per
 * forward slice (nb: their padded copies fit CONV_SLICE), and w transformed into SLOT_WT
 * (kop output channels, tiles of tw). forward_pad then pads each slice of x. */
static ct_status forward_prepare(ct_context *ctx, const conv_tune *t, const conv_geom *d,
                                 const ct_conv2d_params *p, const ct_tensor *w, size_t kop,
                                 size_t tw, size_t rows, size_t run, size_t out_rows,
                                 size_t out_cols, size_t *hp, size_t *wp, size_t *nb, cl_mem *wt)
{
    ct_status st = CT_SUCCESS;
    pad_dims(rows, run, out_rows, out_cols, d->r, d->s, p->stride_h, p->stride_w, p->dil_h,
             p->dil_w, hp, wp);
    *nb = slice_images(t, d, d->c * *hp * *wp * sizeof(float));
    size_t nwt = d->g * d->cg * d->r * d->s * kop;
    CT_TRY(ct_scratch_get(ctx, SLOT_WT, nwt * sizeof(float), wt));
    CT_TRY(CONV_RUN1D(ctx, t, "conv_wt_fwd", nwt / tw, CT_MEM(*wt), CT_T(w), CT_U32(d->g),
                      CT_U32(d->cg), CT_U32(d->kg), CT_U32(kop), CT_U32(d->r * d->s), CT_U32(tw)));
cleanup:
    return st;
}

/* Images n0.. of x (nn of them, with y's images at the same place) padded to hp x wp
 * planes, in the slot of the backward passes' padded dy: forward and backward passes never
 * overlap. */
static ct_status forward_pad(ct_context *ctx, const conv_tune *t, const conv_geom *d,
                             const ct_conv2d_params *p, const ct_tensor *xs, size_t hp, size_t wp,
                             cl_mem *xp)
{
    return pad_input(ctx, t, xs, xs->shape[0] * d->c, d->h, d->w, hp, wp, (long)p->pad_h,
                     (long)p->pad_w, 1, 1, SLOT_DYPAD, 0, xp);
}

/* ---- passes as im2col + GEMM (CONV_GEMM) ----------------------------------------------- */

/* Where im2col reads: image n, channel c is the plane at off + (n * chans + c) * plane, h
 * rows of w elements at a pitch; reads at (row - pad_h, column - pad_w) outside it are 0. */
typedef struct col_src {
    cl_mem mem;
    size_t off, chans, plane, pitch, h, w;
    size_t pad_h, pad_w;
} col_src;

static col_src tensor_src(const ct_tensor *t, size_t pad_h, size_t pad_w)
{
    col_src c = {t->mem,      t->offset,   t->shape[1], t->shape[2] * t->shape[3],
                 t->shape[3], t->shape[2], t->shape[3], pad_h,
                 pad_w};
    return c;
}

/* A scratch buffer as a rows x cols tensor (ct_gemm reads mem, offset and numel). */
static ct_tensor scratch_matrix(ct_context *ctx, cl_mem mem, size_t rows, size_t cols)
{
    ct_tensor m = {0};
    m.ctx = ctx;
    m.mem = mem;
    m.capacity = m.numel = rows * cols;
    m.ndim = 2;
    m.shape[0] = rows;
    m.shape[1] = cols;
    return m;
}

/* Images per chunk when each image needs `floats` of gathered operands (CONV_GEMM_MB). */
static size_t gemm_chunk(const conv_tune *t, size_t n, size_t floats)
{
    size_t nb = (size_t)t->gemm_mb * 1024 * 1024 / (floats * sizeof(float));
    return nb < 1 ? 1 : nb > n ? n : nb;
}

/* col (chans*R*S x nb*P*Q) for images [n0, n0 + nb) of src: row (c, r, s), column
 * (n, p, q) holds src at row p*sh + r*dh - pad_h, column q*sw + s*dw - pad_w. */
static ct_status im2col(ct_context *ctx, const conv_tune *t, cl_mem col, const col_src *src,
                        size_t n0, size_t nb, size_t r, size_t s, size_t sh, size_t sw, size_t dh,
                        size_t dw, size_t p, size_t q)
{
    ct_status st = CT_SUCCESS;
    cl_kernel k = NULL;
    const char *name = "conv_im2col";
    size_t rows = src->chans * r * s;
    CT_REQUIRE(rows * nb * p * q < 0xffffffffu &&
                   src->off + (n0 + nb) * src->chans * src->plane < 0xffffffffu,
               CT_ERR_UNSUPPORTED, "conv2d: im2col of %zu elements exceeds 32-bit indices",
               rows * nb * p * q);
    size_t local[2] = {ctx->info.is_gpu ? 64 : 16, 1};
    size_t global[2] = {round_up(p * q, local[0]), rows * nb};
    CT_TRY(ct_kernel_get(ctx, "conv.cl", name, t->options, &k));
    CT_TRY(CT_SETARGS(
        k, name, CT_MEM(col), CT_MEM(src->mem), CT_U32(src->off + n0 * src->chans * src->plane),
        CT_U32(rows), CT_U32(src->chans), CT_U32(src->plane), CT_U32(src->pitch), CT_U32(src->h),
        CT_U32(src->w), CT_U32(src->pad_h), CT_U32(src->pad_w), CT_U32(nb), CT_U32(p), CT_U32(q),
        CT_U32(r), CT_U32(s), CT_U32(sh), CT_U32(sw), CT_U32(dh), CT_U32(dw)));
    CT_TRY(ct_launch(ctx, k, name, 2, global, local));
cleanup:
    return st;
}

/* y (N, M, P, Q) = a convolution as GEMMs, chunk by chunk: col = im2col(src), Y (M x
 * nb*P*Q) = op(A) col with op(A) M x rows (A^T when trans_a: A rows x lda), then y =
 * Y + b, ReLU (flags 1, 2) in NCHW order. The forward pass (A = w) and the input gradient
 * (src = the padded, upsampled dy; A = the flipped weights of conv_wt_bwd). */
static ct_status direct_by_gemm(ct_context *ctx, const conv_tune *t, const col_src *src,
                                const ct_tensor *a, bool trans_a, size_t lda, size_t m,
                                const ct_tensor *b, unsigned flags, ct_tensor *y, size_t n,
                                size_t r, size_t s, size_t sh, size_t sw, size_t dh, size_t dw,
                                size_t p, size_t q)
{
    ct_status st = CT_SUCCESS;
    cl_mem col = NULL, out = NULL;
    cl_kernel k = NULL;
    const char *name = "conv_gemm_out";
    size_t rows = src->chans * r * s, pq = p * q;
    size_t nb = gemm_chunk(t, n, (rows + m) * pq);
    CT_TRY(ct_scratch_get(ctx, SLOT_COL, rows * nb * pq * sizeof(float), &col));
    CT_TRY(ct_scratch_get(ctx, SLOT_GOUT, m * nb * pq * sizeof(float), &out));
    CT_TRY(ct_kernel_get(ctx, "conv.cl", name, t->options, &k));
    for (size_t n0 = 0; n0 < n; n0 += nb) {
        size_t cnt = n - n0 < nb ? n - n0 : nb;
        CT_TRY(im2col(ctx, t, col, src, n0, cnt, r, s, sh, sw, dh, dw, p, q));
        ct_tensor bm = scratch_matrix(ctx, col, rows, cnt * pq);
        ct_tensor om = scratch_matrix(ctx, out, m, cnt * pq);
        CT_TRY(ct_gemm(ctx, trans_a, false, m, cnt * pq, rows, 1.0f, a, lda, &bm, cnt * pq, 0.0f,
                       &om, cnt * pq));
        size_t local[2] = {ctx->info.is_gpu ? 64 : 16, 1};
        size_t global[2] = {round_up(pq, local[0]), m * cnt};
        CT_TRY(CT_SETARGS(k, name, CT_MEM(out), CT_T(b ? b : y), CT_MEM(y->mem),
                          CT_U32(y->offset + n0 * m * pq), CT_U32(m), CT_U32(cnt), CT_U32(pq),
                          CT_U32(flags)));
        CT_TRY(ct_launch(ctx, k, name, 2, global, local));
    }
cleanup:
    return st;
}

/* dw (K x C*R*S) += dy^T im2col(x) over chunks of images: dyt = dy's rows (K x nb*P*Q)
 * from `dys`, col from x; one GEMM per chunk accumulating into dw. */
static ct_status weight_by_gemm(ct_context *ctx, const conv_tune *t, const conv_geom *d,
                                const ct_conv2d_params *p, const ct_tensor *x, const col_src *dys,
                                ct_tensor *dw)
{
    ct_status st = CT_SUCCESS;
    cl_mem col = NULL, dyt = NULL;
    size_t crs = d->c * d->r * d->s, pq = d->p * d->q;
    size_t nb = gemm_chunk(t, d->n, (crs + d->k) * pq);
    col_src xs = tensor_src(x, p->pad_h, p->pad_w);
    CT_TRY(ct_scratch_get(ctx, SLOT_COL, crs * nb * pq * sizeof(float), &col));
    CT_TRY(ct_scratch_get(ctx, SLOT_GOUT, d->k * nb * pq * sizeof(float), &dyt));
    for (size_t n0 = 0; n0 < d->n; n0 += nb) {
        size_t cnt = d->n - n0 < nb ? d->n - n0 : nb, inner = cnt * pq;
        CT_TRY(im2col(ctx, t, dyt, dys, n0, cnt, 1, 1, 1, 1, 1, 1, d->p, d->q));
        CT_TRY(im2col(ctx, t, col, &xs, n0, cnt, d->r, d->s, p->stride_h, p->stride_w, p->dil_h,
                      p->dil_w, d->p, d->q));
        ct_tensor am = scratch_matrix(ctx, dyt, d->k, inner);
        ct_tensor bm = scratch_matrix(ctx, col, crs, inner);
        CT_TRY(ct_gemm(ctx, false, true, d->k, crs, inner, 1.0f, &am, inner, &bm, inner, 1.0f, dw,
                       crs));
    }
cleanup:
    return st;
}

ct_status ct_conv2d_forward(ct_context *ctx, const ct_tensor *x, const ct_tensor *w,
                            const ct_tensor *b, const ct_conv2d_params *p, bool relu, ct_tensor *y)
{
    ct_status st = CT_SUCCESS;
    conv_geom d = {0};
    conv_tune t;
    cl_mem xp = NULL, wt = NULL;
    CT_REQUIRE(ctx != NULL, CT_ERR_INVALID_ARG, "conv2d_forward: NULL context");
    CT_TRY(conv_geom_check(x, w, p, &d));
    if (b)
        CT_TRY(ct_tensor_expect(b, "conv2d bias", 1, (size_t[]){d.k}));
    CT_TRY(ct_tensor_expect(y, "conv2d output y", 4, (size_t[]){d.n, d.k, d.p, d.q}));
    conv_tune_for(ctx, &d, p, &t);
    if ((t.gemm & CONV_GEMM_F) && d.g == 1) {
        col_src xs = tensor_src(x, p->pad_h, p->pad_w);
        CT_TRY(direct_by_gemm(ctx, &t, &xs, w, false, d.c * d.r * d.s, d.k, b,
                              (b ? 1u : 0u) | (relu ? 2u : 0u), y, d.n, d.r, d.s, p->stride_h,
                              p->stride_w, p->dil_h, p->dil_w, d.p, d.q));
        goto cleanup;
    }

    direct_plan pl = direct_plan_make(&t, d.kg, d.q);
    size_t hp, wp, nb;
    CT_TRY(forward_prepare(ctx, &t, &d, p, w, pl.kop, plan_tile(&t, &pl), pl.rows, pl.run, d.p, d.q,
                           &hp, &wp, &nb, &wt));
    for (size_t n0 = 0; n0 < d.n; n0 += nb) {
        size_t nn = d.n - n0 < nb ? d.n - n0 : nb;
        ct_tensor xs = batch_slice(x, n0, nn), ys = batch_slice(y, n0, nn);
        CT_TRY(forward_pad(ctx, &t, &d, p, &xs, hp, wp, &xp));
        CT_TRY(run_direct(ctx, &t, &pl, xp, 0, wt, b, &ys, nn, d.g, d.cg, d.kg, hp, wp, d.r, d.s,
                          p->stride_h, p->stride_w, p->dil_h, p->dil_w, d.p, d.q, 1,
                          (b ? 1u : 0u) | (relu ? 2u : 0u)));
    }
cleanup:
    return st;
}

/* ---- conv + ReLU + 2x2 max pool, fused ------------------------------------------------ */

/* Where the backward-data pass wants the output gradient: padded by (R-1)*dil - pad at
 * the top and left, in planes of hp x wp (the stride-1 direct pass's input). */
static void dgrad_dims(const conv_tune *t, const conv_geom *d, const ct_conv2d_params *p,
                       size_t *hp, size_t *wp, long *off_h, long *off_w)
{
    direct_plan pl = direct_plan_make(t, d->cg, d->w);
    pad_dims(pl.rows, pl.run, d->h, d->w, d->r, d->s, 1, 1, p->dil_h, p->dil_w, hp, wp);
    *off_h = (long)((d->r - 1) * p->dil_h) - (long)p->pad_h;
    *off_w = (long)((d->s - 1) * p->dil_w) - (long)p->pad_w;
}

/* The geometry of one image through a convolution, without tensors: what the model asks
 * about before it has any (d.p or d.q 0 when the kernel does not fit). */
static conv_geom conv_geom_of(const size_t in_chw[3], size_t k, size_t r, size_t s,
                              const ct_conv2d_params *p)
{
    conv_geom d = {.n = 1,
                   .c = in_chw[0],
                   .h = in_chw[1],
                   .w = in_chw[2],
                   .k = k,
                   .r = r,
                   .s = s,
                   .g = p->groups,
                   .cg = in_chw[0] / p->groups,
                   .kg = k / p->groups};
    d.p = ct_conv_out_size(d.h, r, p->stride_h, p->pad_h, p->dil_h);
    d.q = ct_conv_out_size(d.w, s, p->stride_w, p->pad_w, p->dil_w);
    return d;
}

bool ct_conv2d_pool_fusable(const ct_context *ctx, const size_t in_chw[3], size_t k, size_t r,
                            size_t s, const ct_conv2d_params *p)
{
    if (!ctx || !p || p->stride_h != 1 || p->stride_w != 1 || p->groups < 1 || k % p->groups)
        return false;
    conv_tune t;
    conv_geom d = conv_geom_of(in_chw, k, r, s, p);
    conv_tune_for(ctx, &d, p, &t);
    if (d.p < 2 || d.q < 2 || !direct_plan_make(&t, d.kg, d.q).kv)
        return false;
    size_t hp, wp;
    long off_h, off_w;
    dgrad_dims(&t, &d, p, &hp, &wp, &off_h, &off_w);
    return off_h >= 0 && off_w >= 0; /* the unpooled gradient lands inside the padding */
}

bool ct_conv2d_forward_as_gemm(const ct_context *ctx, const size_t in_chw[3], size_t k, size_t r,
                               size_t s, const ct_conv2d_params *p)
{
    if (!ctx || !p || !in_chw || p->groups < 1)
        return false;
    conv_tune t;
    conv_geom d = conv_geom_of(in_chw, k, r, s, p);
    conv_tune_for(ctx, &d, p, &t);
    return (t.gemm & CONV_GEMM_F) && p->groups == 1;
}

/* The pooled tensors of a fused conv + pool: y (N, K, P/2, Q/2) and idx, at least as
 * many floats as y has elements / 4 (one byte per pooled element). */
static ct_status pool_tensors_check(const conv_geom *d, const ct_tensor *y, const char *yname,
                                    const ct_tensor *idx, size_t *ph, size_t *pw)
{
    ct_status st = CT_SUCCESS;
    *ph = d->p / 2, *pw = d->q / 2;
    CT_TRY(ct_tensor_expect(y, yname, 4, (size_t[]){d->n, d->k, *ph, *pw}));
    if (idx) {
        size_t bytes = d->n * d->k * *ph * *pw;
        CT_REQUIRE(idx->numel * sizeof(float) >= bytes, CT_ERR_SHAPE,
                   "conv2d+maxpool: idx holds %zu bytes, needs %zu (one per pooled element)",
                   idx->numel * sizeof(float), bytes);
        CT_REQUIRE(idx->offset * sizeof(float) + bytes <= 0xffffffffu, CT_ERR_UNSUPPORTED,
                   "conv2d+maxpool: idx offset does not fit the kernels' 32-bit offsets");
    }
cleanup:
    return st;
}

ct_status ct_conv2d_pool_forward(ct_context *ctx, const ct_tensor *x, const ct_tensor *w,
                                 const ct_tensor *b, const ct_conv2d_params *p, bool relu,
                                 ct_tensor *y, ct_tensor *idx)
{
    ct_status st = CT_SUCCESS;
    conv_geom d = {0};
    conv_tune t;
    cl_mem xp = NULL, wt = NULL, taps = NULL;
    cl_kernel k = NULL;
    size_t ph, pw;
    CT_REQUIRE(ctx != NULL, CT_ERR_INVALID_ARG, "conv2d_pool_forward: NULL context");
    CT_TRY(conv_geom_check(x, w, p, &d));
    CT_REQUIRE(ct_conv2d_pool_fusable(ctx, x->shape + 1, d.k, d.r, d.s, p), CT_ERR_UNSUPPORTED,
               "conv2d+maxpool: this convolution has no fused kernel (stride 1, output channels "
               "filling vectors, padding <= (kernel-1)*dilation)");
    if (b)
        CT_TRY(ct_tensor_expect(b, "conv2d bias", 1, (size_t[]){d.k}));
    CT_TRY(pool_tensors_check(&d, y, "conv2d+maxpool output y", idx, &ph, &pw));
    conv_tune_for(ctx, &d, p, &t);

    size_t hp, wp, nb, crs = d.cg * d.r * d.s;
    unsigned flags = (b ? 1u : 0u) | (relu ? 2u : 0u) | (idx ? 4u : 0u);
    cl_mem idx_mem = idx ? idx->mem : y->mem;
    size_t idx_off = idx ? idx->offset * sizeof(float) : 0;
    /* few taps: vectors over pixels, vector stores (conv_direct_pool); else conv_kv_pool */
    const bool few = crs < ct_tune_value(ctx, "CONV_POOL_TAPS", 32);
    const char *name = few ? "conv_direct_pool" : "conv_kv_pool";
    size_t kop = round_up(d.kg, t.kt), hv = t.qv / 2, nqr = (pw + hv - 1) / hv, wi_k = t.kt;
    if (few) {
        CT_TRY(forward_prepare(ctx, &t, &d, p, w, kop, kop, 2, t.qv, 2 * ph, 2 * pw, &hp, &wp, &nb,
                               &wt));
    } else {
        direct_plan pl = direct_plan_make(&t, d.kg, d.q);
        kop = pl.kop;
        nqr = (pw + t.pp - 1) / t.pp;
        wi_k = 16 * (size_t)t.kv;
        CT_TRY(forward_prepare(ctx, &t, &d, p, w, kop, plan_tile(&t, &pl), 2, 2 * (size_t)t.pp,
                               2 * ph, 2 * pw, &hp, &wp, &nb, &wt));
        CT_TRY(tap_offsets(ctx, &t, d.cg, d.r, d.s, hp, wp, p->dil_h, p->dil_w, 1, &taps));
    }
    CT_TRY(ct_kernel_get(ctx, "conv.cl", name, t.options, &k));
    for (size_t n0 = 0; n0 < d.n; n0 += nb) {
        size_t nn = d.n - n0 < nb ? d.n - n0 : nb;
        ct_tensor xs = batch_slice(x, n0, nn), ys = batch_slice(y, n0, nn);
        size_t io = idx_off + n0 * d.k * ph * pw; /* argmax bytes before this slice's */
        CT_REQUIRE(io <= 0xffffffffu, CT_ERR_UNSUPPORTED,
                   "conv2d+maxpool: idx offset does not fit the kernels' 32-bit offsets");
        CT_TRY(forward_pad(ctx, &t, &d, p, &xs, hp, wp, &xp));
        if (few)
            CT_TRY(CT_SETARGS(k, name, CT_MEM(xp), CT_MEM(wt), CT_T(b ? b : &ys), CT_T(&ys),
                              CT_MEM(idx_mem), CT_U32(io), CT_U32(d.cg), CT_U32(d.kg), CT_U32(kop),
                              CT_U32(d.g), CT_U32(hp), CT_U32(wp), CT_U32(d.r), CT_U32(d.s),
                              CT_U32(p->stride_h), CT_U32(p->stride_w), CT_U32(p->dil_h),
                              CT_U32(p->dil_w), CT_U32(ph), CT_U32(pw), CT_U32(nqr),
                              CT_U32(flags)));
        else
            CT_TRY(CT_SETARGS(k, name, CT_MEM(xp), CT_MEM(wt), CT_MEM(taps), CT_T(b ? b : &ys),
                              CT_T(&ys), CT_MEM(idx_mem), CT_U32(io), CT_U32(d.cg), CT_U32(d.kg),
                              CT_U32(kop), CT_U32(d.g), CT_U32(hp), CT_U32(wp), CT_U32(crs),
                              CT_U32(ph), CT_U32(pw), CT_U32(nqr), CT_U32(flags)));
        size_t global[3] = {ph * nqr, d.g * kop / wi_k, nn};
        size_t local[3] = {t.wg, 1, 1};
        CT_TRY(ct_launch(ctx, k, name, 3, global, local));
    }
cleanup:
    return st;
}

/* ---- backward --------------------------------------------------------------------------- */

/* How a batch slice's weight gradient joins the others': the partial-sum chunks all
 * slices share (chosen by the first), whether this is the first slice (it stores the
 * partial sums, later ones add to them) and the last (it folds them into dw). */
typedef struct wsum {
    size_t chunks;
    bool first, last;
    ct_tensor *db; /* the bias gradient, summed by the weight-gradient kernel; or NULL */
} wsum;

/* The output gradient as the backward kernels receive it: dense dy (N, K, P, Q), or, for
 * a fused pool, the pooled gradient with the pooled output and argmax bytes. */
typedef struct dy_src {
    const ct_tensor *dy;
    const ct_tensor *y, *idx; /* set for a fused pool */
    size_t idx_skip;          /* fused pool: bytes of idx before this batch slice's */
    bool relu;                /* fused pool: the ReLU before it cuts where y <= 0 */
    size_t ph, pw;            /* fused pool: the pooled size */
} dy_src;

/* A copy of the output gradient in scratch slot SLOT_DYPAD: planes of hp x wp from element
 * `base` on, the gradient at rows off_h.., columns off_w.. (upsampled by ups), zeros
 * around it. */
typedef struct dy_layout {
    cl_mem mem;
    size_t base; /* elements before the first plane */
    size_t hp, wp;
    long off_h, off_w;
    size_t tl; /* 0: planar (conv_pad, conv_unpool); else conv_dyt's tiles of tl channels */
} dy_layout;

/* Whether the weight gradient runs as im2col + GEMM (CONV_GEMM bit 1): ungrouped layers
 * of >= 32 taps. With few taps (a first layer) the GEMM's output is tiny and its inner
 * dimension the whole batch's pixels, which spreads badly over a GPU (H200, MiniCNN at
 * batch 64: 4.17 ms per step with conv 1->32's weight gradient as a 32 x 9 x 50176 GEMM,
 * 2.09 ms with only conv 32->64's as a GEMM). */
static bool weight_by_gemm_applies(const conv_tune *t, const conv_geom *d)
{
    return (t->gemm & CONV_GEMM_W) && d->g == 1 && d->cg * d->r * d->s >= 32;
}

/* Whether the weight gradient runs conv_bwd_w_kv (its own kernels, not the GEMM): the
 * output channels fill conv_kv's vectors (at most a fifth padding), >= 32 taps. */
static bool weight_by_kv(const conv_tune *t, const conv_geom *d)
{
    size_t tkv = 16 * (size_t)t->kv;
    return t->bwk && !weight_by_gemm_applies(t, d) && d->cg * d->r * d->s >= 32 &&
           round_up(d->kg, tkv) * 4 <= d->kg * 5;
}

/* Whether the weight gradient runs conv_bwd_w_flat (on copies of x and dy padded to one
 * row pitch): stride 1, >= 32 taps, neither the GEMM nor conv_bwd_w_kv. */
static bool weight_by_flat(const conv_tune *t, const conv_geom *d, const ct_conv2d_params *p)
{
    return !weight_by_gemm_applies(t, d) && !weight_by_kv(t, d) && p->stride_h == 1 &&
           p->stride_w == 1 && d->cg * d->r * d->s >= 32;
}

/* The weight-gradient kernel backward_weight runs (W_GEMM: im2col + GEMMs). */
typedef enum { W_GEMM, W_WG, W_KV, W_FLAT, W_POOL, W_ROWS } weight_kernel;

static weight_kernel weight_kernel_for(const conv_tune *t, const conv_geom *d,
                                       const ct_conv2d_params *p, const dy_src *src)
{
    if (weight_by_gemm_applies(t, d))
        return W_GEMM;
    /* a work-group per element of dw where few taps leave conv_bwd_w's work-items few
     * and long (GPUs: a first layer) */
    if (t->bw_wg > 1 && !src->y && d->cg * d->r * d->s < 32)
        return W_WG;
    return weight_by_kv(t, d) ? W_KV : weight_by_flat(t, d, p) ? W_FLAT : src->y ? W_POOL : W_ROWS;
}

/* Whether that kernel also sums the bias gradient (conv_bwd_w_kv and conv_bwd_w_pool, from
 * the gradient they have just read: MiniCNN at batch 64, conv_bwd_b's 0.11 ms of reading
 * conv1's and conv2's gradients again gone). */
static bool weight_sums_bias(weight_kernel wk)
{
    return wk == W_KV || wk == W_POOL;
}

/* x padded exactly as far as an r x s kernel's taps reach from every output pixel, into
 * SLOT_XPAD (conv_bwd_w_wg). */
static ct_status pad_x_for_taps(ct_context *ctx, const conv_tune *t, const conv_geom *d,
                                const ct_conv2d_params *p, const ct_tensor *x, size_t *hp,
                                size_t *wp, cl_mem *xp)
{
    pad_dims(1, 1, d->p, d->q, d->r, d->s, p->stride_h, p->stride_w, p->dil_h, p->dil_w, hp, wp);
    return pad_input(ctx, t, x, d->n * d->c, d->h, d->w, *hp, *wp, (long)p->pad_h, (long)p->pad_w,
                     1, 1, SLOT_XPAD, 0, xp);
}

/* A buffer of at least `count` zero floats, kept by the context (ct_const_buffer). */
static ct_status zero_row(ct_context *ctx, size_t count, cl_mem *out)
{
    ct_status st = CT_SUCCESS;
    bool fresh = false;
    size_t bytes = round_up(count ? count : 1, 256) * sizeof(float);
    uint64_t key = ct_hash64(CT_HASH64_INIT, "conv zeros", 10);
    CT_TRY(ct_const_buffer(ctx, key, bytes, out, &fresh));
    if (fresh) {
        const float zero = 0.0f;
        cl_int e =
            clEnqueueFillBuffer(ctx->queue, *out, &zero, sizeof zero, 0, bytes, 0, NULL, NULL);
        if (e != CL_SUCCESS) {
            ct_const_buffer_drop(ctx, *out); /* never filled: not for the next call */
            CT_CL_ERR(e, "clEnqueueFillBuffer");
        }
    }
cleanup:
    return st;
}

/* conv_dyt into SLOT_DYPAD: the output gradient in channel tiles, planes of lay->hp x
 * lay->wp pixels with the gradient at (off_h, off_w). */
static ct_status write_dyt(ct_context *ctx, const conv_tune *t, const conv_geom *d,
                           const dy_src *src, dy_layout *lay)
{
    ct_status st = CT_SUCCESS;
    cl_kernel k = NULL;
    size_t tkv = 16 * (size_t)t->kv, nkt = (d->kg + tkv - 1) / tkv;
    size_t elems = d->n * d->g * nkt * lay->hp * lay->wp * tkv;
    const ct_tensor *yv = src->y ? src->y : src->dy;
    const ct_tensor *ix = src->y ? src->idx : src->dy;
    CT_REQUIRE(elems < 0xffffffffu && lay->off_h >= 0 && lay->off_w >= 0, CT_ERR_UNSUPPORTED,
               "conv2d: output gradient of %zu elements exceeds the kernels' 32-bit indices",
               elems);
    CT_TRY(ct_scratch_get(ctx, SLOT_DYPAD, elems * sizeof(float), &lay->mem));
    lay->base = 0;
    lay->tl = tkv;
    CT_TRY(ct_kernel_get(ctx, "conv.cl", "conv_dyt", t->options, &k));
    CT_TRY(CT_SETARGS(k, "conv_dyt", CT_MEM(lay->mem), CT_T(src->dy), CT_T(yv), CT_MEM(ix->mem),
                      CT_U32(src->y ? ix->offset * sizeof(float) + src->idx_skip : 0), CT_U32(d->g),
                      CT_U32(d->kg), CT_U32(d->p), CT_U32(d->q), CT_U32(src->ph), CT_U32(src->pw),
                      CT_U32(lay->hp), CT_U32(lay->wp), CT_U32(lay->off_h), CT_U32(lay->off_w),
                      CT_U32(src->y != NULL), CT_U32(src->relu)));
    size_t global[3] = {lay->hp * ((d->q + t->qv - 1) / t->qv), d->g * nkt, d->n};
    CT_TRY(ct_launch(ctx, k, "conv_dyt", 3, global, (size_t[]){1, 1, 1}));
cleanup:
    return st;
}

static ct_status write_dy(ct_context *ctx, const conv_tune *t, const conv_geom *d,
                          const dy_src *src, size_t ups_h, size_t ups_w, dy_layout *lay)
{
    ct_status st = CT_SUCCESS;
    if (!src->y) {
        CT_TRY(pad_input(ctx, t, src->dy, d->n * d->k, d->p, d->q, lay->hp, lay->wp, lay->off_h,
                         lay->off_w, ups_h, ups_w, SLOT_DYPAD, lay->base, &lay->mem));
        goto cleanup;
    }
    /* fused pool: stride 1 and offsets >= 0 (ct_conv2d_pool_fusable) */
    size_t planes = d->n * d->k, elems = lay->base + planes * lay->hp * lay->wp;
    CT_REQUIRE(elems + 4 * t->qv < 0xffffffffu && lay->off_h >= 0 && lay->off_w >= 0,
               CT_ERR_UNSUPPORTED, "conv2d+maxpool: gradient layout of %zu elements unsupported",
               elems);
    CT_TRY(ct_scratch_get(ctx, SLOT_DYPAD, (elems + 4 * t->qv) * sizeof(float), &lay->mem));
    CT_TRY(CONV_RUN1D(ctx, t, "conv_unpool", planes, CT_MEM(lay->mem), CT_U32(lay->base),
                      CT_T(src->dy), CT_T(src->y), CT_MEM(src->idx->mem),
                      CT_U32(src->idx->offset * sizeof(float) + src->idx_skip), CT_U32(planes),
                      CT_U32(src->ph), CT_U32(src->pw), CT_U32(lay->hp), CT_U32(lay->wp),
                      CT_U32(lay->off_h), CT_U32(lay->off_w), CT_U32(src->relu)));
cleanup:
    return st;
}

/* dx = the transposed convolution of dy: a stride-1 direct convolution of dy, upsampled
 * by the stride and padded by (R-1)*dil - pad (written into `lay`), with flipped,
 * channel-swapped weights (written into SLOT_WT unless `wt_ready`: a later batch slice
 * finds them there). */
static ct_status backward_data(ct_context *ctx, const conv_tune *t, const conv_geom *d,
                               const ct_conv2d_params *p, const ct_tensor *w, const dy_src *src,
                               bool wt_ready, dy_layout *lay, ct_tensor *dx)
{
    ct_status st = CT_SUCCESS;
    cl_mem wt = NULL;
    direct_plan pl = direct_plan_make(t, d->cg, d->w);
    size_t cgp = pl.kop;
    dgrad_dims(t, d, p, &lay->hp, &lay->wp, &lay->off_h, &lay->off_w);
    size_t nwt = d->g * d->kg * d->r * d->s * cgp;
    const bool by_gemm = (t->gemm & CONV_GEMM_D) && d->g == 1;
    /* where the weight gradient reads conv_dyt's tiles, this pass reads them too, padded:
     * one copy of dy serves both (MiniCNN conv2: conv_unpool's 0.24 ms gone) */
    const bool tiles = weight_by_kv(t, d) && pl.kv && !by_gemm && p->stride_h == 1 &&
                       p->stride_w == 1 && lay->off_h >= 0 && lay->off_w >= 0;
    if (tiles) {
        CT_TRY(write_dyt(ctx, t, d, src, lay));
    } else {
        /* shifted so that the gradient's first element, where backward_weight's flat view
         * starts, sits on a vector boundary: its loads there are then aligned */
        long first = lay->off_h * (long)lay->wp + lay->off_w;
        lay->base = first >= 0 ? (t->qv - (size_t)first % t->qv) % t->qv : 0;
        CT_TRY(write_dy(ctx, t, d, src, p->stride_h, p->stride_w, lay));
    }
    const size_t tw = by_gemm ? cgp : plan_tile(t, &pl);
    CT_TRY(ct_scratch_get(ctx, SLOT_WT, nwt * sizeof(float), &wt));
    if (!wt_ready)
        CT_TRY(CONV_RUN1D(ctx, t, "conv_wt_bwd", nwt / tw, CT_MEM(wt), CT_T(w), CT_U32(d->g),
                          CT_U32(d->cg), CT_U32(d->kg), CT_U32(cgp), CT_U32(d->r), CT_U32(d->s),
                          CT_U32(tw)));
    if (by_gemm) {
        /* wt: (K*R*S) x cgp, flipped; the GEMM takes its transpose */
        col_src ds = {lay->mem, lay->base, d->k, lay->hp * lay->wp, lay->wp, lay->hp,
                      lay->wp,  0,         0};
        ct_tensor wm = scratch_matrix(ctx, wt, d->k * d->r * d->s, cgp);
        CT_TRY(direct_by_gemm(ctx, t, &ds, &wm, true, cgp, d->c, NULL, 0, dx, d->n, d->r, d->s, 1,
                              1, p->dil_h, p->dil_w, d->h, d->w));
        goto cleanup;
    }
    CT_TRY(run_direct(ctx, t, &pl, lay->mem, lay->base, wt, NULL, dx, d->n, d->g, d->kg, d->cg,
                      lay->hp, lay->wp, d->r, d->s, 1, 1, p->dil_h, p->dil_w, d->h, d->w,
                      tiles ? lay->tl : 1, 0));
cleanup:
    return st;
}

/* How many runs of images (chunks) the weight gradient's reduction is cut into: enough
 * work-items to fill the device (64 per compute unit), and few enough images per run that
 * its x and dy stay in a CPU's cache (CONV_BW_CACHE). */
static size_t weight_chunks(const ct_context *ctx, const conv_tune *t, const conv_geom *d,
                            size_t crs, size_t kt, size_t ts, bool kvw)
{
    size_t tiles = (crs + ts - 1) / ts * d->g * ((d->kg + kt - 1) / kt);
    size_t want = 64 * (size_t)(ctx->info.compute_units ? ctx->info.compute_units : 1);
    size_t chunks = tiles >= want ? 1 : (want + tiles - 1) / tiles;
    if (chunks > d->n)
        chunks = d->n;
    size_t npc = (d->n + chunks - 1) / chunks;
    /* every tile of a chunk reads the chunk's x and dy again: on a CPU they should stay
     * in its cache (MiniCNN conv2 at batch 64, PoCL, 2 cores: 8 images per chunk instead
     * of all 64 took the flat kernel from 2.6 to 2.1 ms); conv_bwd_w_kv's consecutive
     * work-items share a channel tile's slice of dy, so its x alone counts */
    size_t per_image = kvw ? sizeof(float) * d->c * d->h * d->w
                           : sizeof(float) * (d->c * (d->h + d->r) * (d->w + d->s) +
                                              d->k * (d->p + d->r) * (d->q + d->s));
    size_t cap = (size_t)t->bw_cache * 1024 / per_image;
    if (t->bw_cache && npc > cap)
        npc = cap > 1 ? cap : 1;
    return (d->n + npc - 1) / npc;
}

/* dw += sum over the batch of dy (x) x, in a fixed order: the batch is cut into `chunks`
 * runs of images (enough work-items to fill the device), each run summed by one
 * work-item per tile, the runs then added in order. At stride 1 the sums run over x and
 * dy flattened to a common row pitch (conv_bwd_w_flat), dy taken from the backward-data
 * pass's padded copy (`have`) when its layout serves; other strides walk row by row
 * (conv_bwd_w, or conv_bwd_w_pool unpooling a fused pool's gradient in registers). With
 * ws->db, db += the sum of dy per channel too, chunk by chunk as dw. */
static ct_status backward_weight(ct_context *ctx, const conv_tune *t, const conv_geom *d,
                                 const ct_conv2d_params *p, const ct_tensor *x, const dy_src *src,
                                 const dy_layout *have, wsum *ws, ct_tensor *dw)
{
    ct_status st = CT_SUCCESS;
    cl_mem xp = NULL, part = NULL;
    cl_kernel k = NULL;
    size_t crs = d->cg * d->r * d->s, m = d->k * crs;
    /* the flat kernel pays for a padded copy of dy (a read and a write of it, unless the
     * backward-data pass made one) and wins it back on the loads of the CG*R*S taps each
     * dy element feeds: with few taps (a first layer, CG = 1) the row-by-row kernel is
     * faster (MiniCNN conv 1->32: 1.25 -> 1.05 ms of CPU time for dw + db, PoCL, 2 cores) */
    const weight_kernel wk = weight_kernel_for(t, d, p, src);
    if (wk == W_GEMM) {
        /* dy's rows: the dense gradient, else (a fused pool) the backward-data pass's
         * unpooled copy (stride 1, inside its padding), else one unpooled here */
        col_src dys = tensor_src(src->dy, 0, 0);
        if (src->y) {
            dy_layout lay = {0};
            if (have && have->mem && !have->tl) {
                lay = *have;
            } else {
                lay.hp = d->p, lay.wp = d->q;
                CT_TRY(write_dy(ctx, t, d, src, 1, 1, &lay));
            }
            dys = (col_src){lay.mem, lay.base + (size_t)lay.off_h * lay.wp + (size_t)lay.off_w,
                            d->k,    lay.hp * lay.wp,
                            lay.wp,  d->p,
                            d->q,    0,
                            0};
        }
        CT_TRY(weight_by_gemm(ctx, t, d, p, x, &dys, dw));
        goto cleanup;
    }
    if (wk == W_WG) {
        size_t hp, wp;
        CT_TRY(pad_x_for_taps(ctx, t, d, p, x, &hp, &wp, &xp));
        CT_TRY(CONV_RUN1D_LOCAL(ctx, t, "conv_bwd_w_wg", m * t->bw_wg, t->bw_wg, CT_MEM(xp),
                                CT_T(src->dy), CT_T(dw), CT_U32(d->cg), CT_U32(d->kg), CT_U32(d->g),
                                CT_U32(hp), CT_U32(wp), CT_U32(d->r), CT_U32(d->s),
                                CT_U32(p->stride_h), CT_U32(p->stride_w), CT_U32(p->dil_h),
                                CT_U32(p->dil_w), CT_U32(d->p), CT_U32(d->q), CT_U32(d->n)));
        goto cleanup;
    }
    /* vectors over the output channels when they fill them, as conv_kv: no lane sums and
     * no padded columns (PoCL, 2 cores, batch 64: MiniCNN conv2 1.39 ms + 0.40 for
     * conv_dyt against conv_bwd_w_flat's 2.01; conv 256->256 on 8x8, 19.2 ms against 35.0) */
    const size_t tkv = 16 * (size_t)t->kv;
    const bool kvw = wk == W_KV, flat = wk == W_FLAT;
    const char *name = kvw      ? "conv_bwd_w_kv"
                       : flat   ? "conv_bwd_w_flat"
                       : src->y ? "conv_bwd_w_pool"
                                : "conv_bwd_w";
    const size_t kt = kvw ? tkv : !flat && src->y ? t->bwp_kt : t->bw_kt;
    const size_t ts = kvw ? t->bwk_t : !flat && src->y ? t->bwp_st : t->bw_st;
    cl_mem zeros = NULL; /* conv_bwd_w_kv reads x itself, and a row of zeros past it */
    if (kvw)
        CT_TRY(zero_row(ctx, d->q * p->stride_w + d->s, &zeros));

    /* the first batch slice chooses the chunks (later slices add to the same partial sums) */
    if (!ws->chunks)
        ws->chunks = weight_chunks(ctx, t, d, crs, kt, ts, kvw);
    const size_t chunks = ws->chunks, npc = (d->n + chunks - 1) / chunks;
    /* with one chunk the kernel adds straight into dw (and db), else it stores partial
     * sums (adds, after the first batch slice), the bias's after all of dw's, which the
     * last slice folds into dw and db */
    const bool add = chunks == 1 || !ws->first;
    const size_t kb = ws->db ? d->k : 0;
    cl_mem dst = dw->mem, bdst = ws->db ? ws->db->mem : dw->mem;
    size_t dst_off = dw->offset, bdst_off = ws->db ? ws->db->offset : 0;
    if (chunks > 1) {
        CT_TRY(ct_scratch_get(ctx, SLOT_PART, chunks * (m + kb) * sizeof(float), &part));
        dst = bdst = part;
        dst_off = 0;
        bdst_off = chunks * m;
    }
    CT_REQUIRE(dst_off <= 0xffffffffu, CT_ERR_UNSUPPORTED,
               "conv2d: dw offset %zu does not fit the kernels' 32-bit offsets", dst_off);
    CT_REQUIRE(bdst_off <= 0xffffffffu, CT_ERR_UNSUPPORTED,
               "conv2d: db offset %zu does not fit the kernels' 32-bit offsets", bdst_off);

    CT_TRY(ct_kernel_get(ctx, "conv.cl", name, t->options, &k));
    if (kvw) {
        /* dy in channel tiles: the backward-data pass's padded copy, else one made here
         * (unpadded) in SLOT_DYPAD, which that pass, done by now, no longer needs */
        dy_layout lay = {0};
        if (have && have->tl) {
            lay = *have;
        } else {
            lay.hp = d->p, lay.wp = d->q;
            CT_TRY(write_dyt(ctx, t, d, src, &lay));
        }
        CT_TRY(CT_SETARGS(k, name, CT_T(x), CT_MEM(zeros), CT_MEM(lay.mem), CT_MEM(dst),
                          CT_U32(dst_off), CT_MEM(bdst), CT_U32(bdst_off), CT_U32(d->cg),
                          CT_U32(d->kg), CT_U32(d->g), CT_U32(d->h), CT_U32(d->w), CT_U32(d->r),
                          CT_U32(d->s), CT_U32(p->stride_h), CT_U32(p->stride_w), CT_U32(p->dil_h),
                          CT_U32(p->dil_w), CT_I32((int32_t)p->pad_h), CT_I32((int32_t)p->pad_w),
                          CT_U32(d->p), CT_U32(d->q), CT_U32(lay.hp), CT_U32(lay.wp),
                          CT_U32(lay.off_h), CT_U32(lay.off_w), CT_U32(d->n), CT_U32(npc),
                          CT_U32(add), CT_U32(kb > 0)));
    } else if (flat) {
        /* common pitch wp; lp pixels per plane (P*wp rounded up to a vector); xp gets
         * zero rows below the image so that the farthest tap of the last vector stays
         * inside its plane; dy sits at element `off` of planes of dpl elements with
         * zeros in columns Q.. and after row P up to lp */
        dy_layout lay = {0};
        size_t wp = 0, lp = 0, off = 0;
        if (have && !have->tl && have->off_h >= 0 && have->off_w >= 0 &&
            d->q + (d->s - 1) * p->dil_w <= have->wp) {
            wp = have->wp;
            lp = round_up(d->p * wp, t->qv);
            off = (size_t)have->off_h * wp + (size_t)have->off_w;
            if (off + lp <= have->hp * wp) {
                lay = *have;
                off += have->base;
            }
        }
        if (!lay.mem) {
            lay.wp = wp = d->q + (d->s - 1) * p->dil_w;
            lp = round_up(d->p * wp, t->qv);
            lay.hp = (lp + wp - 1) / wp;
            lay.off_h = lay.off_w = 0;
            lay.base = off = 0;
            CT_TRY(write_dy(ctx, t, d, src, 1, 1, &lay));
        }
        size_t hpx = (lp + (d->r - 1) * p->dil_h * wp + (d->s - 1) * p->dil_w + wp - 1) / wp;
        CT_TRY(pad_input(ctx, t, x, d->n * d->c, d->h, d->w, hpx, wp, (long)p->pad_h,
                         (long)p->pad_w, 1, 1, SLOT_XPAD, 0, &xp));
        CT_TRY(CT_SETARGS(k, name, CT_MEM(xp), CT_MEM(lay.mem), CT_U32(off), CT_MEM(dst),
                          CT_U32(dst_off), CT_U32(d->cg), CT_U32(d->kg), CT_U32(d->g),
                          CT_U32(hpx * wp), CT_U32(lay.hp * lay.wp), CT_U32(lp), CT_U32(wp),
                          CT_U32(d->r), CT_U32(d->s), CT_U32(p->dil_h), CT_U32(p->dil_w),
                          CT_U32(d->n), CT_U32(npc), CT_U32(add)));
    } else {
        /* a fused pool's gradient exists only under its windows: rows 2*ph, columns 2*pw */
        size_t op = src->y ? 2 * src->ph : d->p, oq = src->y ? 2 * src->pw : d->q;
        size_t hp, wp;
        pad_dims(1, t->qv, op, oq, d->r, d->s, p->stride_h, p->stride_w, p->dil_h, p->dil_w, &hp,
                 &wp);
        CT_TRY(pad_input(ctx, t, x, d->n * d->c, d->h, d->w, hp, wp, (long)p->pad_h, (long)p->pad_w,
                         1, 1, SLOT_XPAD, 0, &xp));
        if (src->y)
            CT_TRY(
                CT_SETARGS(k, name, CT_MEM(xp), CT_T(src->dy), CT_T(src->y), CT_MEM(src->idx->mem),
                           CT_U32(src->idx->offset * sizeof(float) + src->idx_skip), CT_MEM(dst),
                           CT_U32(dst_off), CT_U32(d->cg), CT_U32(d->kg), CT_U32(d->g), CT_U32(hp),
                           CT_U32(wp), CT_U32(d->r), CT_U32(d->s), CT_U32(p->stride_h),
                           CT_U32(p->stride_w), CT_U32(p->dil_h), CT_U32(p->dil_w), CT_U32(src->ph),
                           CT_U32(src->pw), CT_U32(d->n), CT_U32(npc), CT_U32(src->relu),
                           CT_U32(add), CT_MEM(bdst), CT_U32(bdst_off), CT_U32(kb > 0)));
        else
            CT_TRY(CT_SETARGS(k, name, CT_MEM(xp), CT_T(src->dy), CT_MEM(dst), CT_U32(dst_off),
                              CT_U32(d->cg), CT_U32(d->kg), CT_U32(d->g), CT_U32(hp), CT_U32(wp),
                              CT_U32(d->r), CT_U32(d->s), CT_U32(p->stride_h), CT_U32(p->stride_w),
                              CT_U32(p->dil_h), CT_U32(p->dil_w), CT_U32(d->p), CT_U32(d->q),
                              CT_U32(d->n), CT_U32(npc), CT_U32(add)));
    }
    {
        size_t global[3] = {(crs + ts - 1) / ts, d->g * ((d->kg + kt - 1) / kt), chunks};
        size_t local[3] = {4, 1, 1};
        CT_TRY(ct_launch(ctx, k, name, 3, global, local));
    }
    if (chunks > 1 && ws->last)
        CT_TRY(CONV_RUN1D(ctx, t, "conv_reduce", m + kb, CT_MEM(part), CT_T(dw), CT_U32(m),
                          CT_U32(chunks), ws->db ? CT_T(ws->db) : CT_T(dw), CT_U32(kb)));
cleanup:
    return st;
}

/* The three backward passes from either form of the output gradient. */

static ct_status backward_slice(ct_context *ctx, const conv_tune *t, const conv_geom *d,
                                const ct_conv2d_params *p, const ct_tensor *x, const ct_tensor *w,
                                const dy_src *src, wsum *ws, ct_tensor *dx, ct_tensor *dw)
{
    ct_status st = CT_SUCCESS;
    dy_layout lay = {0};
    if (dx)
        CT_TRY(backward_data(ctx, t, d, p, w, src, !ws->first, &lay, dx));
    if (dw)
        CT_TRY(backward_weight(ctx, t, d, p, x, src, dx ? &lay : NULL, ws, dw));
cleanup:
    return st;
}

/* db += the sum of the output gradient per channel (a fused pool's: the pooled gradient
 * where the pooled output passed the ReLU). No copies: one pass over the whole batch. For
 * the weight-gradient kernels that do not sum it (weight_sums_bias), or no dw. */
static ct_status backward_bias(ct_context *ctx, const conv_tune *t, const conv_geom *d,
                               const dy_src *src, ct_tensor *db)
{
    ct_status st = CT_SUCCESS;
    const ct_tensor *mask = src->y && src->relu ? src->y : src->dy;
    size_t pq = src->y ? src->ph * src->pw : d->p * d->q;
    const bool wg = t->bb_wg > 1;
    CT_TRY(CONV_RUN1D_LOCAL(ctx, t, wg ? "conv_bwd_b_wg" : "conv_bwd_b",
                            wg ? d->k * t->bb_wg : d->k, wg ? t->bb_wg : 0, CT_T(src->dy),
                            CT_T(mask), CT_T(db), CT_U32(d->n), CT_U32(d->k), CT_U32(pq),
                            CT_U32(mask != src->dy)));
cleanup:
    return st;
}

/* Bytes per image of the padded copies the backward passes write (about: the exact
 * layouts are the passes' own): dy's, for the input gradient (padded by the kernel's
 * reach) or for a weight-gradient kernel that reads a copy, and x's, padded by the taps'
 * reach, unless the weight gradient runs as GEMMs (which gather their own chunks). */
static size_t backward_copy_bytes(const conv_tune *t, const conv_geom *d, const ct_conv2d_params *p,
                                  const dy_src *src, bool dx)
{
    size_t bytes = 0;
    if (dx) {
        size_t hp, wp;
        long oh, ow;
        dgrad_dims(t, d, p, &hp, &wp, &oh, &ow);
        bytes += d->k * hp * wp;
    } else if (weight_by_kv(t, d) || weight_by_flat(t, d, p) ||
               (src->y && weight_by_gemm_applies(t, d))) {
        bytes += d->k * (d->p + d->r) * (d->q + d->s);
    }
    if (!weight_by_gemm_applies(t, d) && !weight_by_kv(t, d))
        bytes += d->c * (d->h + d->r) * (d->w + d->s);
    return bytes * sizeof(float);
}

/* The backward passes, over the batch in slices whose padded copies of the output
 * gradient and the input take at most max(CONV_SLICE KiB, the size of x) (slice_images;
 * 0 = the whole batch at once), so that what one pass writes the next reads from cache
 * and the copies stay as small as the layer's input. The weight gradient accumulates over
 * the slices (wsum), and the bias gradient with it where its kernel sums that too, else
 * in one pass over the whole batch. MiniCNN at batch
 * 512: conv2's unpooled, padded gradient is 33 MB in one piece, 12.8 MB a slice; at batch
 * 64, 4 MB and 1.5 MB. */
static ct_status backward_all(ct_context *ctx, const conv_geom *d, const ct_conv2d_params *p,
                              const ct_tensor *x, const ct_tensor *w, const dy_src *src,
                              ct_tensor *dx, ct_tensor *dw, ct_tensor *db)
{
    ct_status st = CT_SUCCESS;
    conv_tune t;
    if (dw)
        CT_TRY(ct_tensor_expect(dw, "conv2d weight gradient dw", 4, w->shape));
    if (dx)
        CT_TRY(ct_tensor_expect(dx, "conv2d input gradient dx", 4, x->shape));
    if (db)
        CT_TRY(ct_tensor_expect(db, "conv2d bias gradient db", 1, (size_t[]){d->k}));
    conv_tune_for(ctx, d, p, &t);

    size_t slice = slice_images(&t, d, backward_copy_bytes(&t, d, p, src, dx != NULL));
    wsum ws = {0};
    if (db && dw && weight_sums_bias(weight_kernel_for(&t, d, p, src)))
        ws.db = db;
    else if (db)
        CT_TRY(backward_bias(ctx, &t, d, src, db));
    for (size_t n0 = 0; n0 < d->n; n0 += slice) {
        size_t nn = d->n - n0 < slice ? d->n - n0 : slice;
        conv_geom ds = *d;
        ds.n = nn;
        ct_tensor xs = batch_slice(x, n0, nn), dys = batch_slice(src->dy, n0, nn), ys, dxs;
        dy_src ss = *src;
        ss.dy = &dys;
        if (src->y) {
            ys = batch_slice(src->y, n0, nn);
            ss.y = &ys;
            ss.idx_skip = src->idx_skip + n0 * d->k * src->ph * src->pw;
        }
        if (dx)
            dxs = batch_slice(dx, n0, nn);
        ws.first = n0 == 0;
        ws.last = n0 + nn >= d->n;
        CT_TRY(backward_slice(ctx, &t, &ds, p, &xs, w, &ss, &ws, dx ? &dxs : NULL, dw));
    }
cleanup:
    return st;
}

ct_status ct_conv2d_backward(ct_context *ctx, const ct_tensor *x, const ct_tensor *w,
                             const ct_tensor *dy, const ct_conv2d_params *p, ct_tensor *dx,
                             ct_tensor *dw, ct_tensor *db)
{
    ct_status st = CT_SUCCESS;
    conv_geom d = {0};
    CT_REQUIRE(ctx != NULL, CT_ERR_INVALID_ARG, "conv2d_backward: NULL context");
    CT_TRY(conv_geom_check(x, w, p, &d));
    CT_TRY(ct_tensor_expect(dy, "conv2d output gradient dy", 4, (size_t[]){d.n, d.k, d.p, d.q}));
    CT_TRY(backward_all(ctx, &d, p, x, w, &(dy_src){.dy = dy}, dx, dw, db));
cleanup:
    return st;
}

ct_status ct_conv2d_pool_backward(ct_context *ctx, const ct_tensor *x, const ct_tensor *w,
                                  const ct_tensor *dy, const ct_tensor *y, const ct_tensor *idx,
                                  const ct_conv2d_params *p, bool relu, ct_tensor *dx,
                                  ct_tensor *dw, ct_tensor *db)
{
    ct_status st = CT_SUCCESS;
    conv_geom d = {0};
    dy_src src = {.dy = dy, .y = y, .idx = idx, .relu = relu};
    CT_REQUIRE(ctx != NULL, CT_ERR_INVALID_ARG, "conv2d_pool_backward: NULL context");
    CT_TRY(conv_geom_check(x, w, p, &d));
    CT_REQUIRE(idx != NULL && y != NULL, CT_ERR_INVALID_ARG,
               "conv2d_pool_backward: the pooled output y and its idx are required");
    CT_REQUIRE(ct_conv2d_pool_fusable(ctx, x->shape + 1, d.k, d.r, d.s, p), CT_ERR_UNSUPPORTED,
               "conv2d+maxpool: this convolution has no fused kernel");
    CT_TRY(pool_tensors_check(&d, y, "conv2d+maxpool output y", idx, &src.ph, &src.pw));
    CT_TRY(ct_tensor_expect(dy, "conv2d+maxpool output gradient dy", 4, y->shape));
    CT_TRY(backward_all(ctx, &d, p, x, w, &src, dx, dw, db));
cleanup:
    return st;
}
