/* kernels/conv.cl — 2-D convolution (lib/nn/conv2d.c): forward, backward-data and
 * backward-weight as register-tiled direct convolutions over a zero-padded copy of the
 * input, so that the hot loops carry no bounds checks (all but conv_bwd_w_kv, which reads
 * x itself and checks the ends of its rows).
 *
 * Layouts (all dense, row-major; "raw" buffers are scratch without an offset):
 *   x   (N, G*CI, H, W)      tensor        the image, CI channels per group
 *   xp  (N, G*CI, HP, WP)    raw           padded copy written by conv_pad: every element
 *                                          outside the image is 0, so loads need no masks
 *   wt  (G, CI*R*S, KOP)     raw           weights with the output channel innermost,
 *                                          padded with zeros to KOP = KO rounded up to the
 *                                          kernel's channel tile (conv_wt_fwd / conv_wt_bwd);
 *                                          for conv_kv in tiles of 16*CONV_KV channels, each
 *                                          tile's rows contiguous (conv_wt_fwd)
 *   y   (N, G*KO, P, Q)      tensor        the output, KO channels per group
 *
 * The direct kernels compute
 *   y[n, g*KO+k, p, q] = b + sum_{c<CI, r<R, s<S} wt[g, (c*R+r)*S+s, k] *
 *                              xp[n, g*CI+c, p*SH + r*DH, q*SW + s*DW]
 * and serve both passes: the forward pass (xp = padded x, wt = w with k innermost) and
 * the backward-data pass, which is the same sum over dy zero-upsampled by the stride and
 * padded by (R-1)*DH - pad, with the weights flipped and in/out channels swapped
 * (conv_wt_bwd), at stride 1.
 *
 * Work split (PoCL runs a work-group as a loop and does not vectorise across work-items,
 * so each work-item owns a register tile and vectorises itself):
 *   conv_kv:     one work-item = 16*CONV_KV output channels (float16 vectors) x CONV_PX
 *     consecutive pixels of one output row; global (P*NQR, G*KOP/(16*KV), N). The fast
 *     one: used whenever the output channels fill its vectors.
 *   conv_direct: one work-item = CONV_KT output channels x CONV_PT rows x CONV_QV
 *     consecutive pixels (vectors over pixels); for layers with few output channels.
 *   conv_bwd_w_flat (stride 1) / conv_bwd_w (any stride): one work-item = CONV_BW_KT
 *     output channels x CONV_BW_ST consecutive (c, r, s) taps of dw, reducing over the
 *     images of one batch chunk and all their pixels in a fixed order (the lanes of the
 *     vector accumulators are summed last, in a fixed tree). Chunks land in a partial
 *     buffer reduced by conv_reduce, in order: no atomics, the same bits on every run.
 *   conv_bwd_w_kv: dw with vectors over 16*CONV_KV output channels (the layout of
 *     conv_kv turned to the weight gradient): one work-item = a channel tile x
 *     CONV_BWK_T taps, over the pixels of a batch chunk, from the output gradient with
 *     the channels of each tile innermost (conv_dyt); no lane sums, no padded columns,
 *     and no padded copy of x (MiniCNN conv2, batch 64: 0.15 ms of conv_pad and 2 MiB
 *     saved for 0.2 ms more here, its rows' end pixels checked).
 *     conv_kv reads the same layout for the input gradient (taps from conv_taps with TL),
 *     so that one copy of dy, padded, serves both.
 *     The fast one on CPUs whenever the output channels fill its vectors.
 *   conv_im2col, conv_gemm_out: the passes as GEMMs (CONV_GEMM, GPUs): the operand
 *                matrix of a chunk of images, and the GEMM's output back in NCHW order
 *                with bias and ReLU; one work-item per element.
 *   conv_bwd_w_wg: dw by work-groups, one per element of dw (GPUs, CONV_BW_WG).
 *   conv_bwd_b:  one work-item per output channel (CPUs); conv_bwd_b_wg: one work-group
 *                of CONV_BB_WG per output channel, a tree sum in local memory (GPUs).
 *                conv_bwd_w_kv and conv_bwd_w_pool sum the bias gradient themselves (in
 *                their first tap tile's work-items, from the gradient they just read),
 *                into the chunks' partial sums beside dw's.
 * A conv followed by (its ReLU and) a 2x2 max pool at stride 2 can run fused: conv_kv_pool
 * (conv_kv over a 2-row tile, pooled in registers; stores the pooled output and one
 * argmax byte per window), or conv_direct_pool for layers with few taps (vectors over
 * pixels, so the stores are vectors too), then in backward conv_unpool (the conv output
 * gradient, in conv_pad's padded layout, straight from the pooled one) or conv_bwd_w_pool
 * (dw with the gradient unpooled in registers, for a first layer that needs no dx).
 * Tunables (-D, defaults below): CONV_KV, CONV_PX, CONV_KT, CONV_PT, CONV_QV (8 or 16),
 * CONV_BW_KT, CONV_BW_ST, CONV_PP, CONV_BWP_KT, CONV_BWP_ST, CONV_BWK_T, CONV_BB_WG,
 * CONV_BW_WG. The host reads the same
 * names from the tuning table (or CLTRAIN_TUNE) and passes them all explicitly, so both
 * sides agree. Not tunables but the layer's shape: CONV_R, CONV_S, its kernel size at
 * stride and dilation 1 (conv_kv, conv_kv_pool, conv_direct_pool and conv_bwd_w_kv unroll a
 * channel's taps; 0 or unset: the taps from conv_taps' table), and CONV_PW, its padding
 * along the width then (conv_bwd_w_kv's row ends).
 */

#ifndef CONV_KT
#define CONV_KT 8
#endif
#ifndef CONV_QV
#define CONV_QV 16
#endif
#ifndef CONV_PT
#define CONV_PT 2
#endif
#ifndef CONV_KV
#define CONV_KV 2
#endif
#ifndef CONV_PX
#define CONV_PX 7
#endif
#ifndef CONV_BW_KT
#define CONV_BW_KT 4
#endif
#ifndef CONV_BW_ST
#define CONV_BW_ST 6
#endif
#ifndef CONV_PP
#define CONV_PP 2
#endif
/* The layer's kernel height and width as constants, or 0: the taps' offsets from
 * conv_taps' table. The host sets them for layers of stride and dilation 1, and with
 * them CONV_PW, the layer's padding along the width (0 otherwise). */
#ifndef CONV_R
#define CONV_R 0
#endif
#ifndef CONV_S
#define CONV_S 0
#endif
#ifndef CONV_BWP_KT
#define CONV_BWP_KT 2
#endif
#ifndef CONV_BWP_ST
#define CONV_BWP_ST 9
#endif
#ifndef CONV_BWK_T
#define CONV_BWK_T 9
#endif

#if CONV_QV == 16
#define VT float16
#define VLOAD(p) vload16(0, (p))
#define VSTORE(v, p) vstore16((v), 0, (p))
#define VSTORE_G(v, p) CT_GSTORE16((v), (p))
/* two loads of 16, the even lanes of each: 16 pixels at stride 2 */
#define VLOAD_S2(p) ((float16)(vload16(0, (p)).even, vload16(1, (p)).even))
/* half a vector: the pooled pixels under CONV_QV conv pixels */
#define HV float8
#define HI int8
#define HVLOAD(p) vload8(0, (p))
#define HILOAD(p) convert_int8(vload8(0, (p)))
#define HVLOAD_I(p) vload8(0, (p))
#define HVSTORE(v, p) vstore8((v), 0, (p))
#define HVSTORE_G(v, p) CT_GSTORE8((v), (p))
#define HVSTORE_I(v, p) vstore8((v), 0, (p))
#define INTERLEAVE ((uint16)(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15))
#define LANE_IDX ((int8)(0, 1, 2, 3, 4, 5, 6, 7))
#define HN 8
#define EVEN_IDX ((uint8)(0, 2, 4, 6, 8, 10, 12, 14))
#define ODD_IDX ((uint8)(1, 3, 5, 7, 9, 11, 13, 15))
/* the argmax bytes of CONV_QV/2 pooled pixels (int lanes v) at p, byte-aligned */
#define HSTORE_UC(v, p) CT_GSTORE_UC8(convert_uchar8(v), (p))
#elif CONV_QV == 8
#define VT float8
#define VLOAD(p) vload8(0, (p))
#define VSTORE(v, p) vstore8((v), 0, (p))
#define VSTORE_G(v, p) CT_GSTORE8((v), (p))
#define VLOAD_S2(p) (vload16(0, (p)).even)
#define HV float4
#define HI int4
#define HVLOAD(p) vload4(0, (p))
#define HILOAD(p) convert_int4(vload4(0, (p)))
#define HVLOAD_I(p) vload4(0, (p))
#define HVSTORE(v, p) vstore4((v), 0, (p))
#define HVSTORE_G(v, p) CT_GSTORE4((v), (p))
#define HVSTORE_I(v, p) vstore4((v), 0, (p))
#define INTERLEAVE ((uint8)(0, 4, 1, 5, 2, 6, 3, 7))
#define LANE_IDX ((int4)(0, 1, 2, 3))
#define HN 4
#define EVEN_IDX ((uint4)(0, 2, 4, 6))
#define ODD_IDX ((uint4)(1, 3, 5, 7))
#define HSTORE_UC(v, p) CT_GSTORE_UC4(convert_uchar4(v), (p))
#else
#error "CONV_QV must be 8 or 16"
#endif

/* CONV_QV pixels at any stride, one by one. */
CT_INLINE VT vload_strided(__global const float *p, uint stride)
{
    float t[CONV_QV];
    for (int j = 0; j < CONV_QV; j++)
        t[j] = p[j * stride];
    return VLOAD((const float *)t);
}

/* The first `n` (< CONV_QV) elements at p, the other lanes 0: a row's last pixel run
 * without reading past the row (or the buffer). */
CT_INLINE VT vload_tail(__global const float *p, uint n)
{
    float t[CONV_QV];
    for (int j = 0; j < CONV_QV; j++)
        t[j] = (uint)j < n ? p[j] : 0.0f;
    return VLOAD((const float *)t);
}

/* Sum of the lanes in a fixed tree order (common.cl's ct_sum16 for float16). */
CT_INLINE float vsum(VT v)
{
#if CONV_QV == 16
    return ct_sum16(v);
#else
    const float4 b = v.lo + v.hi;
    const float2 c = b.lo + b.hi;
    return c.x + c.y;
#endif
}

/* unpool_run: CONV_QV conv-output gradients of one row (row parity `odd`), rebuilt from
 * the n (<= CONV_QV/2) pooled gradients g of a 2x2 max pool at stride 2 above it: lane
 * 2u+e gets g[u] when window u's first maximum (ia[u]: 0..3 in scan order) sits at
 * (odd, e), else 0; with `relu` also 0 where the pooled output yv[u] is <= 0 (the ReLU
 * before the pool cut it; a NaN passes, as in torch's ReLU backward). Lanes of windows
 * u >= n are 0. `room` elements may be read at g, yv and ia (to the end of their plane):
 * with room for a whole vector the lanes past n are loaded and masked, else (a plane's
 * last row) only the first n are read. unpool_load reads the windows once, unpool_row
 * makes either row from them. */
CT_INLINE void unpool_load(__global const float *g, __global const float *yv,
                           __global const uchar *ia, const uint n, const uint room,
                           const uint relu, HV *gvp, HI *ap)
{
    HV gv, y;
    HI a;
    if (room >= CONV_QV / 2) {
        gv = HVLOAD(g);
        y = HVLOAD(yv);
        a = HILOAD(ia);
        if (n < CONV_QV / 2)
            a = select((HI)(4), a, LANE_IDX < (HI)(n)); /* 4 matches no position */
    } else {
        float tg[CONV_QV / 2], ty[CONV_QV / 2];
        int ta[CONV_QV / 2];
        for (uint u = 0; u < CONV_QV / 2; u++) {
            tg[u] = u < n ? g[u] : 0.0f;
            ty[u] = u < n ? yv[u] : 0.0f;
            ta[u] = u < n ? (int)ia[u] : 4;
        }
        gv = HVLOAD((const float *)tg);
        y = HVLOAD((const float *)ty);
        a = HVLOAD_I((const int *)ta);
    }
    if (relu)
        gv = select(gv, (HV)(0.0f), islessequal(y, (HV)(0.0f)));
    *gvp = gv;
    *ap = a;
}

/* Row `odd`'s CONV_QV gradients from unpool_load's windows. */
CT_INLINE VT unpool_row(const HV gv, const HI a, const uint odd)
{
    const HI r = (HI)(2 * (int)odd);
    return shuffle2(select((HV)(0.0f), gv, a == r), select((HV)(0.0f), gv, a == r + 1),
                    INTERLEAVE);
}

CT_INLINE VT unpool_run(__global const float *g, __global const float *yv,
                        __global const uchar *ia, const uint n, const uint room, const uint odd,
                        const uint relu)
{
    HV gv;
    HI a;
    unpool_load(g, yv, ia, n, room, relu, &gv, &a);
    return unpool_row(gv, a, odd);
}

/* ---- layout transforms ------------------------------------------------------------ */

/* d[0, n) = s[0, n): runs of 8, the last one moved back to end at n (PoCL leaves a plain
 * loop scalar), short rows one by one. */
CT_INLINE void copy_run(__global float *d, __global const float *s, const int n)
{
    if (n < 8) {
        for (int v = 0; v < n; v++)
            d[v] = s[v];
        return;
    }
    for (int v = 0;; v += 8) {
        v = min(v, n - 8);
        CT_GSTORE8(vload8(0, s + v), d + v);
        if (v + 8 >= n)
            break;
    }
}

/* d[0, n) = 0, the same way. */
CT_INLINE void zero_run(__global float *d, const int n)
{
    if (n < 8) {
        for (int v = 0; v < n; v++)
            d[v] = 0.0f;
        return;
    }
    for (int v = 0;; v += 8) {
        v = min(v, n - 8);
        CT_GSTORE8((float8)(0.0f), d + v);
        if (v + 8 >= n)
            break;
    }
}

/* dst: (NC, HP, WP) raw. Row t of plane i holds src row u = (t - off_h) / ups_h when
 * t >= off_h, the division is exact and u < HS, else zeros; likewise columns. Forward:
 * off = pad, ups = 1. Backward-data: off = (R-1)*dil - pad (may be < 0), ups = stride.
 * One work-item per destination plane, rows copied in vectors of 8. */
__kernel void conv_pad(CT_ARG(dst), CT_CARG(src), const uint NC, const uint HS,
                       const uint WS, const uint HP, const uint WP, const int off_h,
                       const int off_w, const uint ups_h, const uint ups_w)
{
    const uint plane = get_global_id(0);
    if (plane >= NC)
        return;
    src += src_off + (size_t)plane * HS * WS;
    dst += dst_off;
    /* destination columns [lo, hi) hold source columns (v - off_w) / ups_w */
    const int lo = clamp(off_w, 0, (int)WP);
    const int hi = clamp(off_w + (int)((WS - 1) * ups_w + 1), 0, (int)WP);
    for (uint t = 0; t < HP; t++) {
        __global float *d = dst + ((size_t)plane * HP + t) * WP;
        const int u = (int)t - off_h;
        if (u < 0 || (uint)u % ups_h != 0 || (uint)u / ups_h >= HS) {
            zero_run(d, (int)WP);
            continue;
        }
        __global const float *s = src + (size_t)((uint)u / ups_h) * WS;
        zero_run(d, lo);
        if (ups_w == 1) {
            copy_run(d + lo, s + (lo - off_w), hi - lo);
        } else {
            for (int v = lo; v < hi; v++) {
                const uint z = (uint)(v - off_w);
                d[v] = z % ups_w == 0 ? s[z / ups_w] : 0.0f;
            }
        }
        zero_run(d + hi, (int)WP - hi);
    }
}

/* dst: (NC, HP, WP) raw, overwritten: the gradient of a conv output that went through
 * its ReLU (`relu`) and a 2x2 max pool at stride 2 (conv_kv_pool), rebuilt from the
 * pooled gradient gp, pooled output yv and argmax bytes idx ((NC, PH, PW) each) as
 * unpool_run does, at rows off_h + [0, 2*PH) and columns off_w + [0, 2*PW); zeros
 * everywhere else. That is conv_pad's layout of the conv output gradient, written
 * without the dense gradient ever existing. One work-item per plane. */
__kernel void conv_unpool(CT_ARG(dst), CT_CARG(gp), CT_CARG(yv), __global const uchar *idx,
                          const uint idx_off, const uint NC, const uint PH, const uint PW,
                          const uint HP, const uint WP, const uint off_h, const uint off_w,
                          const uint relu)
{
    const uint plane = get_global_id(0);
    if (plane >= NC)
        return;
    const size_t src = (size_t)plane * PH * PW;
    gp += gp_off + src;
    yv += yv_off + src;
    idx += idx_off + src;
    __global float *d = dst + dst_off + (size_t)plane * HP * WP;
    for (uint t = 0; t < HP; t++, d += WP) {
        if (t < off_h || t >= off_h + 2 * PH) {
            zero_run(d, (int)WP);
            continue;
        }
        /* rows t (even in the pool) and t + 1 */
        const uint ph = (t - off_h) / 2;
        zero_run(d, (int)off_w);
        zero_run(d + WP, (int)off_w);
        for (uint u0 = 0; u0 < PW; u0 += CONV_QV / 2) {
            const uint nu = min((uint)CONV_QV / 2, PW - u0);
            const uint at = ph * PW + u0;
            /* a short run's zero lanes may spill past the row: into the next row's left
             * padding (zeros) when 2*u0 + CONV_QV <= WP, and the row below is rewritten
             * later by this work-item if it is inside the plane */
            const bool spill_ok = 2 * u0 + CONV_QV <= WP;
            for (uint e = 0; e < 2; e++) {
                const VT v =
                    unpool_run(gp + at, yv + at, idx + at, nu, PH * PW - at, e, relu);
                __global float *o = d + e * WP + off_w + 2 * u0;
                if (nu == CONV_QV / 2 || (spill_ok && t + e + 1 < HP)) {
                    VSTORE_G(v, o);
                } else {
                    float tmp[CONV_QV];
                    VSTORE(v, tmp);
                    for (uint j = 0; j < 2 * nu; j++)
                        o[j] = tmp[j];
                }
            }
        }
        zero_run(d + off_w + 2 * PW, (int)(WP - off_w - 2 * PW));
        zero_run(d + WP + off_w + 2 * PW, (int)(WP - off_w - 2 * PW));
        t++;
        d += WP;
    }
}

/* The weight layouts of the direct passes: output channels innermost, in tiles of TW
 * channels (a divisor of KOP), each tile's CRS rows contiguous:
 *   wt[g, k / TW, j, k % TW] for tap j = (c*R + r)*S + s, channel k < KOP.
 * With TW = KOP that is one (G, CRS, KOP) matrix (conv_direct, the GEMM passes); conv_kv
 * takes TW = 16*CONV_KV, so that a work-item's weights are one contiguous run: rows of
 * KOP at a 1 KiB pitch (256 channels) used only 2 cache lines each, the same 256 of L2's
 * 2048 sets, and a 256-channel layer's 2304 rows overflowed them (conv_kv at 60% of the
 * speed of 128 input channels). */

/* wt (tiles of TW) = w[g*KG + k, c, r, s], zero for KG <= k < KOP. w: (G*KG, CG, R, S).
 * One work-item per row of a tile (G*(KOP/TW)*CG*R*S of them), TW elements each. */
__kernel void conv_wt_fwd(__global float *wt, CT_CARG(w), const uint G, const uint CG,
                          const uint KG, const uint KOP, const uint RS, const uint TW)
{
    const uint CRS = CG * RS, NT = KOP / TW;
    const uint row = get_global_id(0);
    if (row >= G * NT * CRS)
        return;
    const uint j = row % CRS, tile = (row / CRS) % NT, g = row / CRS / NT;
    __global const float *src = w + w_off + (size_t)g * KG * CRS + j;
    __global float *o = wt + (size_t)row * TW;
    for (uint kk = 0, k = tile * TW; kk < TW; kk++, k++)
        o[kk] = k < KG ? src[(size_t)k * CRS] : 0.0f;
}

/* Weights of the backward-data pass: in and out channels swapped, taps flipped; tiles
 * of TW input channels: wt[g, c / TW, (k*R + r)*S + s, c % TW] = w[g*KG + k, c, R-1-r,
 * S-1-s], zero for CG <= c < CGP. One work-item per row of a tile (G*(CGP/TW)*KG*R*S of
 * them), TW elements each. */
__kernel void conv_wt_bwd(__global float *wt, CT_CARG(w), const uint G, const uint CG,
                          const uint KG, const uint CGP, const uint R, const uint S,
                          const uint TW)
{
    const uint KRS = KG * R * S, NT = CGP / TW;
    const uint row = get_global_id(0);
    if (row >= G * NT * KRS)
        return;
    const uint krs = row % KRS, tile = (row / KRS) % NT, g = row / KRS / NT;
    const uint k = krs / (R * S), r = (krs / S) % R, s = krs % S;
    __global const float *src =
        w + w_off + (size_t)(g * KG + k) * CG * R * S + (R - 1 - r) * S + (S - 1 - s);
    __global float *o = wt + (size_t)row * TW;
    for (uint cc = 0, c = tile * TW; cc < TW; cc++, c++)
        o[cc] = c < CG ? src[(size_t)c * R * S] : 0.0f;
}

/* ---- direct convolution (forward and backward-data) -------------------------------- */

/* The reduction over (c, r, s) for one work-item, with LOAD fetching CONV_QV input
 * pixels of one row at the output stride; CONV_PT output rows share each weight load. */
#define CONV_DIRECT_LOOP(LOAD, PT, RR, SS, DDH, DDW)                                       \
    for (uint c = 0; c < CI; c++) {                                                        \
        for (uint r = 0; r < (RR); r++) {                                                  \
            __global const float *xr = xb + ((size_t)c * HP + r * (DDH)) * WP;             \
            for (uint s = 0; s < (SS); s++) {                                              \
                VT xv[PT];                                                            \
                _Pragma("unroll") for (int t = 0; t < PT; t++) xv[t] =                \
                    LOAD(xr + t * SH * WP + s * (DDW));                                    \
                _Pragma("unroll") for (int i = 0; i < CONV_KT; i++) {                      \
                    const VT wv = (VT)(wb[i]);                                             \
                    _Pragma("unroll") for (int t = 0; t < PT; t++) acc[t][i] =        \
                        fma(wv, xv[t], acc[t][i]);                                         \
                }                                                                          \
                wb += KOP;                                                                 \
            }                                                                              \
        }                                                                                  \
    }

#define LOAD_S1(p) VLOAD(p)
#define LOAD_SG(p) vload_strided((p), SW)

/* flags: bit 0 add the bias b (G*KO), bit 1 apply ReLU (x < 0 ? 0 : x: NaN and -0 stay, as
 * torch.relu; every fused ReLU here does the same). Without a bias, b may be any
 * buffer; it is not read. NQR = pixel runs per output row = ceil(Q / CONV_QV); NPT =
 * groups of CONV_PT rows = ceil(P / CONV_PT) (xp has rows for all of them). */
__kernel void conv_direct(CT_CARG(xp), __global const float *wt, CT_CARG(b),
                          CT_ARG(y), const uint CI, const uint KO, const uint KOP, const uint G,
                          const uint HP, const uint WP, const uint R, const uint S,
                          const uint SH, const uint SW, const uint DH, const uint DW,
                          const uint P, const uint Q, const uint NQR, const uint flags)
{
    const uint pq = get_global_id(0);
    const uint gk = get_global_id(1);
    const uint n = get_global_id(2);
    const uint NPT = (P + CONV_PT - 1) / CONV_PT;
    if (pq >= NPT * NQR)
        return;
    xp += xp_off;
    b += b_off;
    y += y_off;
    const uint nkt = KOP / CONV_KT;
    const uint g = gk / nkt, k0 = (gk % nkt) * CONV_KT;
    const uint p0 = pq / NQR * CONV_PT, q0 = (pq % NQR) * CONV_QV;

    __global const float *xb = xp + ((size_t)(n * G + g) * CI * HP + p0 * SH) * WP + q0 * SW;
    __global const float *wb = wt + (size_t)g * CI * R * S * KOP + k0;

    VT acc[CONV_PT][CONV_KT];
#pragma unroll
    for (int i = 0; i < CONV_KT; i++) {
        const float b0 = (flags & 1u) && k0 + i < KO ? b[g * KO + k0 + i] : 0.0f;
#pragma unroll
        for (int t = 0; t < CONV_PT; t++)
            acc[t][i] = (VT)(b0);
    }

    if (SW == 1) {
        CONV_DIRECT_LOOP(LOAD_S1, CONV_PT, R, S, DH, DW)
    } else if (SW == 2) {
        CONV_DIRECT_LOOP(VLOAD_S2, CONV_PT, R, S, DH, DW)
    } else {
        CONV_DIRECT_LOOP(LOAD_SG, CONV_PT, R, S, DH, DW)
    }

    const uint nq = min((uint)CONV_QV, Q - q0);
    /* guarded, not `break`: loops with an exit cannot be unrolled, and acc must stay in
     * registers */
#pragma unroll
    for (int t = 0; t < CONV_PT; t++) {
#pragma unroll
        for (int i = 0; i < CONV_KT; i++) {
            if (p0 + t < P && k0 + i < KO) {
                VT v = acc[t][i];
                if (flags & 2u)
                    v = v < (VT)(0.0f) ? (VT)(0.0f) : v;
                __global float *yo =
                    y + (((size_t)n * G * KO + g * KO + k0 + i) * P + p0 + t) * Q + q0;
                if (nq == CONV_QV) {
                    VSTORE_G(v, yo);
                } else {
                    float tmp[CONV_QV];
                    VSTORE(v, tmp);
                    for (uint j = 0; j < nq; j++)
                        yo[j] = tmp[j];
                }
            }
        }
    }
}

#define MAX_STEP_HN(N, m, idx, v, pos) MAX_STEP(N, m, idx, v, pos)

/* conv_direct (vectors over pixels) with its ReLU (flags bit 1) and a 2x2 max pool at
 * stride 2, as conv_kv_pool does it: one work-item computes CONV_KT output channels for
 * 2 rows x CONV_QV pixels, pools them in registers into CONV_QV/2 pooled pixels of row ph
 * (pool.cl's rule) and stores them with the argmax bytes (flags bit 2) as vectors: for
 * layers with few taps (a first layer), where conv_kv_pool's per-channel stores would
 * cost more than its arithmetic. Runs of CONV_QV/2 pooled pixels; the last run is moved
 * back to end at PW (it recomputes and rewrites a few values) unless the row is shorter
 * than one run. Same y and idx as conv_kv_pool, wt as conv_direct's (KOP a multiple of
 * CONV_KT). global (PH*NQR, G*KOP/CONV_KT, N), NQR = ceil(PW / (CONV_QV/2)). */
__kernel void conv_direct_pool(__global const float *xp, __global const float *wt, CT_CARG(b),
                               CT_ARG(y), __global uchar *idx, const uint idx_off,
                               const uint CI, const uint KO, const uint KOP, const uint G,
                               const uint HP, const uint WP, const uint R, const uint S,
                               const uint SH, const uint SW, const uint DH, const uint DW,
                               const uint PH, const uint PW, const uint NQR, const uint flags)
{
    const uint pq = get_global_id(0);
    const uint gk = get_global_id(1);
    const uint n = get_global_id(2);
    if (pq >= PH * NQR)
        return;
    b += b_off;
    y += y_off;
    idx += idx_off;
    const uint nkt = KOP / CONV_KT;
    const uint g = gk / nkt, k0 = (gk % nkt) * CONV_KT;
    const uint ph = pq / NQR;
    const uint full = PW >= CONV_QV / 2;
    const uint u0 = full ? min((pq % NQR) * (CONV_QV / 2), PW - CONV_QV / 2) : 0;
    const uint p0 = 2 * ph, q0 = 2 * u0;

    __global const float *xb = xp + ((size_t)(n * G + g) * CI * HP + p0 * SH) * WP + q0 * SW;
    __global const float *wb = wt + (size_t)g * CI * R * S * KOP + k0;

    VT acc[2][CONV_KT];
#pragma unroll
    for (int i = 0; i < CONV_KT; i++) {
        const float b0 = (flags & 1u) && k0 + i < KO ? b[g * KO + k0 + i] : 0.0f;
        acc[0][i] = acc[1][i] = (VT)(b0);
    }

#if CONV_R > 0
    CONV_DIRECT_LOOP(LOAD_S1, 2, CONV_R, CONV_S, 1, 1) /* stride and dilation 1 */
#else
    if (SW == 1) {
        CONV_DIRECT_LOOP(LOAD_S1, 2, R, S, DH, DW)
    } else if (SW == 2) {
        CONV_DIRECT_LOOP(VLOAD_S2, 2, R, S, DH, DW)
    } else {
        CONV_DIRECT_LOOP(LOAD_SG, 2, R, S, DH, DW)
    }
#endif

    const uint nu = full ? CONV_QV / 2 : PW;
#pragma unroll
    for (int i = 0; i < CONV_KT; i++) {
        if (k0 + i >= KO)
            continue;
        VT r0 = acc[0][i], r1 = acc[1][i];
        if (flags & 2u) {
            r0 = r0 < (VT)(0.0f) ? (VT)(0.0f) : r0;
            r1 = r1 < (VT)(0.0f) ? (VT)(0.0f) : r1;
        }
        /* the first position taken as it is: MAX_STEP from -INFINITY gives the same */
        HV m = shuffle(r0, EVEN_IDX);
        HI a = (HI)(0);
        MAX_STEP_HN(HN, m, a, shuffle(r0, ODD_IDX), 1);
        MAX_STEP_HN(HN, m, a, shuffle(r1, EVEN_IDX), 2);
        MAX_STEP_HN(HN, m, a, shuffle(r1, ODD_IDX), 3);
        const size_t at = (((size_t)n * G * KO + g * KO + k0 + i) * PH + ph) * PW + u0;
        if (nu == CONV_QV / 2) {
            HVSTORE_G(m, y + at);
            if (flags & 4u)
                HSTORE_UC(a, idx + at);
        } else {
            float tm[CONV_QV / 2];
            int ta[CONV_QV / 2];
            HVSTORE(m, tm);
            HVSTORE_I(a, ta);
            for (uint u = 0; u < nu; u++) {
                y[at + u] = tm[u];
                if (flags & 4u)
                    idx[at + u] = (uchar)ta[u];
            }
        }
    }
}

/* ---- direct convolution, vectors over output channels ------------------------------- */

/* xo[(c*R + r)*S + s] = ((c/TL)*HP*WP + r*DH*WP + s*DW)*TL + c%TL: where each tap of
 * the CI input channels starts, relative to an output pixel's top-left input, in planes
 * of HP x WP pixels of TL channels each: TL = 1 is the planar layout, (c*HP + r*DH)*WP +
 * s*DW; TL = 16*CONV_KV conv_dyt's channel tiles. One work-item per tap. */
__kernel void conv_taps(__global uint *xo, const uint CI, const uint R, const uint S,
                        const uint HP, const uint WP, const uint DH, const uint DW,
                        const uint TL)
{
    const uint j = get_global_id(0);
    if (j >= CI * R * S)
        return;
    const uint c = j / (R * S), r = (j / S) % R, s = j % S;
    xo[j] = ((c / TL) * HP * WP + r * DH * WP + s * DW) * TL + c % TL;
}

/* Bias of output channels k0..k0+15 of a group whose biases start at b[gb] (KO of them),
 * 0 past KO or without `has` (b not read then): conv_kv's accumulators start from it. */
CT_INLINE float16 kv_bias(__global const float *b, const uint gb, const uint k0, const uint KO,
                          const uint has)
{
    float t[16];
    for (int l = 0; l < 16; l++)
        t[l] = has && k0 + l < KO ? b[gb + k0 + l] : 0.0f;
    return vload16(0, (const float *)t);
}

/* With the layer's kernel size constant (CONV_R > 0: stride and dilation 1), the taps of
 * NC input channels in planes of HP x WP pixels of TL floats from XB (TL = 1 planar, or
 * conv_dyt's tiles): the body (the variadic arguments) once per tap j = (c*R + r)*S + s,
 * with x0 its input, a channel's taps unrolled at constant offsets from its rows. No
 * tap-table loads, and the compiler shares a broadcast between taps (conv_kv_pool on
 * MiniCNN's conv2: 1.59-1.67 -> 1.42-1.53 ms). conv_kv and conv_kv_pool. */
#define KV_RS_TAPS(NC, XB, TL, ...)                                                        \
    for (uint c = 0; c < (NC); c++) {                                                      \
        __global const float *xc_ = (XB) + (c / (TL)) * HP * WP + c % (TL);                \
        _Pragma("unroll") for (uint rs = 0; rs < CONV_R * CONV_S; rs++) {                  \
            const uint j = c * (CONV_R * CONV_S) + rs;                                     \
            __global const float *x0 = xc_ + (rs / CONV_S) * WP + (rs % CONV_S) * (TL);    \
            __VA_ARGS__                                                                    \
        }                                                                                  \
    }

/* The same sum as conv_direct, tiled the other way round: one work-item computes
 * 16*CONV_KV output channels (float16 vectors, one contiguous row of its channel tile of wt
 * per tap) for CONV_PX consecutive pixels of one output row (each input pixel broadcast to
 * all lanes). One loop over the CI*R*S taps (offsets from conv_taps) carries CONV_KV
 * vector loads and CONV_PX broadcasts for CONV_KV*CONV_PX FMAs, and rows need not be
 * multiples of a vector width. Requires KOP % (16*CONV_KV) == 0.
 * global (P*NQR, G*KOP/(16*CONV_KV), N) with NQR = ceil(Q / CONV_PX). */
__kernel void conv_kv(CT_CARG(xp), __global const float *wt,
                      __global const uint *xo, CT_CARG(b), CT_ARG(y), const uint CI,
                      const uint KO, const uint KOP, const uint G, const uint HP, const uint WP,
                      const uint CRS, const uint SH, const uint SW, const uint P, const uint Q,
                      const uint NQR, const uint flags)
{
    const uint pq = get_global_id(0);
    const uint gk = get_global_id(1);
    const uint n = get_global_id(2);
    if (pq >= P * NQR)
        return;
    xp += xp_off;
    b += b_off;
    y += y_off;
    const uint nkv = KOP / (16 * CONV_KV);
    const uint g = gk / nkv, k0 = (gk % nkv) * 16 * CONV_KV;
    const uint p = pq / NQR, q0 = (pq % NQR) * CONV_PX;

    __global const float *xb = xp + ((size_t)(n * G + g) * CI * HP + p * SH) * WP + q0 * SW;
    __global const float *wb = wt + (size_t)g * CRS * KOP + (size_t)k0 * CRS;

    float16 acc[CONV_KV][CONV_PX];
#pragma unroll
    for (int v = 0; v < CONV_KV; v++) {
        const float16 bias = kv_bias(b, g * KO, k0 + 16 * v, KO, flags & 1u);
#pragma unroll
        for (int x = 0; x < CONV_PX; x++)
            acc[v][x] = bias;
    }

    /* one tap j at input xj, pixels STRIDE floats apart */
#define KV_TAP(xj, STRIDE)                                                                 \
    {                                                                                      \
        float16 w[CONV_KV];                                                                \
        _Pragma("unroll") for (int v = 0; v < CONV_KV; v++) w[v] =                         \
            vload16(v, wb + (size_t)j * (16 * CONV_KV));                                   \
        _Pragma("unroll") for (int x = 0; x < CONV_PX; x++) {                              \
            const float16 xs = (float16)((xj)[x * (STRIDE)]);                              \
            _Pragma("unroll") for (int v = 0; v < CONV_KV; v++) acc[v][x] =                \
                fma(w[v], xs, acc[v][x]);                                                  \
        }                                                                                  \
    }
#if CONV_R > 0
    /* the layer's kernel size as constants (stride 1, so SW is the channels per plane: 1
     * or conv_dyt's 16*CONV_KV) */
#define KV_TAPS_RS(TL) KV_RS_TAPS(CRS / (CONV_R * CONV_S), xb, TL, KV_TAP(x0, TL))
    const bool rs_taps = SW == 1 || SW == 16 * CONV_KV;
#else
#define KV_TAPS_RS(TL)
    const bool rs_taps = false;
#endif
#define CONV_KV_LOOP(STRIDE)                                                               \
    _Pragma("unroll 2") for (uint j = 0; j < CRS; j++) KV_TAP(xb + xo[j], STRIDE)
    if (rs_taps && SW == 1) {
        KV_TAPS_RS(1)
    } else if (rs_taps) {
        KV_TAPS_RS(16 * CONV_KV)
    } else if (SW == 1) {
        CONV_KV_LOOP(1)
    } else if (SW == 16 * CONV_KV) { /* conv_dyt's tiles: the stride as a constant */
        CONV_KV_LOOP(16 * CONV_KV)
    } else {
        CONV_KV_LOOP(SW)
    }
#undef CONV_KV_LOOP
#undef KV_TAPS_RS
#undef KV_TAP

    /* transpose through private memory: each channel's CONV_PX pixels are contiguous in y */
    const uint nq = min((uint)CONV_PX, Q - q0);
    const uint nk = min((uint)(16 * CONV_KV), KO - min(k0, KO));
    float t[CONV_PX][16 * CONV_KV];
#pragma unroll
    for (int x = 0; x < CONV_PX; x++)
#pragma unroll
        for (int v = 0; v < CONV_KV; v++) {
            float16 a = acc[v][x];
            if (flags & 2u)
                a = a < (float16)(0.0f) ? (float16)(0.0f) : a;
            vstore16(a, v, t[x]);
        }
    __global float *yo = y + ((((size_t)n * G + g) * KO + k0) * P + p) * Q + q0;
    const size_t pqs = (size_t)P * Q;
    for (uint l = 0; l < nk; l++, yo += pqs)
        for (uint x = 0; x < nq; x++)
            yo[x] = t[x][l];
}

/* conv_kv, its ReLU (flags bit 1) and a 2x2 max pool at stride 2 in one pass: a
 * work-item computes 16*CONV_KV output channels of a 2 x 2*CONV_PP block of conv outputs
 * (rows 2*ph and 2*ph+1), pools it in registers by pool.cl's rule (MAX_STEP: first
 * maximum in scan order, NaN wins) and stores CONV_PP pooled pixels of row ph; with
 * flags bit 2 also each window's first maximum (0..3 in scan order) as one byte of idx,
 * for the backward pass. The conv output itself is never written. The conv's stride is 1
 * (ct_conv2d_pool_fusable): the taps' pixel offsets are constants, which keeps the tap
 * loop's addresses in registers (a stride argument cost four reloads from the stack per
 * tap, 37 instructions per 16 FMAs against 33).
 * y: (N, G*KO, PH, PW) tensor; idx: (N, G*KO, PH, PW) bytes at byte offset idx_off.
 * global (PH*NQR, G*KOP/(16*CONV_KV), N) with NQR = ceil(PW / CONV_PP). */
__kernel void conv_kv_pool(__global const float *xp, __global const float *wt,
                           __global const uint *xo, CT_CARG(b), CT_ARG(y), __global uchar *idx,
                           const uint idx_off, const uint CI, const uint KO, const uint KOP,
                           const uint G, const uint HP, const uint WP, const uint CRS,
                           const uint PH, const uint PW, const uint NQR, const uint flags)
{
    const uint pq = get_global_id(0);
    const uint gk = get_global_id(1);
    const uint n = get_global_id(2);
    if (pq >= PH * NQR)
        return;
    b += b_off;
    y += y_off;
    idx += idx_off;
    const uint nkv = KOP / (16 * CONV_KV);
    const uint g = gk / nkv, k0 = (gk % nkv) * 16 * CONV_KV;
    const uint ph = pq / NQR, u0 = (pq % NQR) * CONV_PP;

    __global const float *xb = xp + ((size_t)(n * G + g) * CI * HP + 2 * ph) * WP + 2 * u0;
    __global const float *wb = wt + (size_t)g * CRS * KOP + (size_t)k0 * CRS;

    /* The taps: the body once per tap j with x0 its input at the block's top-left conv
     * output (KV_RS_TAPS with the kernel size constant, else conv_taps' table). */
#if CONV_R > 0
#define KV_POOL_TAPS(...) KV_RS_TAPS(CI, xc, 1, __VA_ARGS__)
#else
#define KV_POOL_TAPS(...)                                                                  \
    for (uint j = 0; j < CRS; j++) {                                                       \
        __global const float *x0 = xc + xo[j];                                             \
        __VA_ARGS__                                                                        \
    }
#endif
    /* NPP pooled columns from column c0 of the run into t and ti: bias, the taps, ReLU,
     * pool, transposed through private memory as conv_kv does */
#define KV_POOL_RUN(NPP, c0)                                                               \
    {                                                                                      \
        float16 acc[CONV_KV][2][2 * (NPP)];                                                \
        _Pragma("unroll") for (int v = 0; v < CONV_KV; v++) {                              \
            const float16 bias = kv_bias(b, g * KO, k0 + 16 * v, KO, flags & 1u);          \
            _Pragma("unroll") for (int r = 0; r < 2; r++)                                  \
                _Pragma("unroll") for (int x = 0; x < 2 * (NPP); x++) acc[v][r][x] = bias; \
        }                                                                                  \
        __global const float *xc = xb + 2 * (c0);                                          \
        KV_POOL_TAPS({                                                                     \
            __global const float *xj[2] = {x0, x0 + WP};                                   \
            float16 w[CONV_KV];                                                            \
            _Pragma("unroll") for (int v = 0; v < CONV_KV; v++) w[v] =                     \
                vload16(v, wb + (size_t)j * (16 * CONV_KV));                               \
            _Pragma("unroll") for (int r = 0; r < 2; r++)                                  \
                _Pragma("unroll") for (int x = 0; x < 2 * (NPP); x++) {                    \
                const float16 xs = (float16)(xj[r][x]);                                    \
                _Pragma("unroll") for (int v = 0; v < CONV_KV; v++) acc[v][r][x] =         \
                    fma(w[v], xs, acc[v][r][x]);                                           \
            }                                                                              \
        })                                                                                 \
        _Pragma("unroll") for (int v = 0; v < CONV_KV; v++)                                \
            _Pragma("unroll") for (int u = 0; u < (NPP); u++) {                            \
            float16 c[4] = {acc[v][0][2 * u], acc[v][0][2 * u + 1], acc[v][1][2 * u],      \
                            acc[v][1][2 * u + 1]};                                         \
            _Pragma("unroll") for (int e = 0; e < 4; e++) if (flags & 2u) c[e] =           \
                c[e] < (float16)(0.0f) ? (float16)(0.0f) : c[e];                           \
            float16 m = c[0]; /* as MAX_STEP from -INFINITY */                             \
            int16 a = (int16)(0);                                                          \
            _Pragma("unroll") for (int e = 1; e < 4; e++) MAX_STEP(16, m, a, c[e], e);     \
            vstore16(m, v, t[(c0) + u]);                                                   \
            vstore16(convert_uchar16(a), v, ti[(c0) + u]);                                 \
        }                                                                                  \
    }
    float t[CONV_PP][16 * CONV_KV];
    uchar ti[CONV_PP][16 * CONV_KV];
    /* a row's last run may hold fewer columns (MiniCNN's 7 in runs of 2): it computes
     * only those, one at a time, rather than a whole run past the row's end */
    const uint nq = min((uint)CONV_PP, PW - u0);
    if (nq == CONV_PP) {
        KV_POOL_RUN(CONV_PP, 0)
    } else {
        for (uint u = 0; u < nq; u++)
            KV_POOL_RUN(1, u)
    }
#undef KV_POOL_RUN
#undef KV_POOL_TAPS
    const uint nk = min((uint)(16 * CONV_KV), KO - min(k0, KO));
    const size_t first = ((((size_t)n * G + g) * KO + k0) * PH + ph) * PW + u0;
    const size_t plane = (size_t)PH * PW;
    for (uint l = 0; l < nk; l++)
        for (uint x = 0; x < nq; x++)
            y[first + l * plane + x] = t[x][l];
    if (flags & 4u)
        for (uint l = 0; l < nk; l++)
            for (uint x = 0; x < nq; x++)
                idx[first + l * plane + x] = ti[x][l];
}

/* ---- backward-weight ---------------------------------------------------------------- */

/* Adds a plane of PQ gradients d to the lanes of acc (tail: the last PQ % CONV_QV); with
 * `masked` only those whose mask element is not <= 0 (a NaN passes: torch's ReLU
 * backward passes it): d a pooled gradient, mask the pooled output after a ReLU (the sum
 * of the unpooled gradient is the sum of the pooled one). The bias gradient's sum
 * (conv_bwd_b, conv_bwd_w_pool). */
CT_INLINE void bias_plane_sum(__global const float *d, __global const float *mk, const uint PQ,
                              const uint masked, VT *acc, float *tail)
{
    const uint full = PQ / CONV_QV * CONV_QV;
    if (masked) {
        for (uint i = 0; i < full; i += CONV_QV)
            *acc += select(VLOAD(d + i), (VT)(0.0f), islessequal(VLOAD(mk + i), (VT)(0.0f)));
        for (uint i = full; i < PQ; i++)
            *tail += mk[i] <= 0.0f ? 0.0f : d[i];
    } else {
        for (uint i = 0; i < full; i += CONV_QV)
            *acc += VLOAD(d + i);
        for (uint i = full; i < PQ; i++)
            *tail += d[i];
    }
}

/* The backward-weight macros work on a register tile of BWW_KT output channels x BWW_ST
 * taps, defined before each kernel (CONV_BW_KT/ST, or CONV_BWP_KT/ST for
 * conv_bwd_w_pool, whose unpooling costs per channel and favours fewer channels x more
 * taps). */
#define BWW_KT CONV_BW_KT
#define BWW_ST CONV_BW_ST

/* The row-by-row reduction of conv_bwd_w and conv_bwd_w_pool over images n0..n1, output
 * rows p < P and runs of CONV_QV pixels; DLOAD(d) fills d[i], the output gradient of
 * channel k0+i at (n, p, q0..), from whatever the kernel holds (dy itself, or the
 * pooled gradient above it). */
#define CONV_BWW_LOOP(LOAD, DLOAD)                                                         \
    for (uint n = n0; n < n1; n++) {                                                       \
        __global const float *xn = xp + (size_t)(n * G + g) * CG * HP * WP;                \
        for (uint p = 0; p < P; p++) {                                                     \
            for (uint q0 = 0; q0 < Q; q0 += CONV_QV) {                                     \
                __global const float *xq = xn + (size_t)p * SH * WP + q0 * SW;             \
                VT d[BWW_KT];                                                          \
                DLOAD(d);                                                                  \
                _Pragma("unroll") for (int j = 0; j < BWW_ST; j++) {                   \
                    const VT xv = LOAD(xq + xo[j]);                                        \
                    _Pragma("unroll") for (int i = 0; i < BWW_KT; i++) acc[i][j] =     \
                        fma(d[i], xv, acc[i][j]);                                          \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }

/* The two backward-weight kernels' register tile acc (BWW_KT output channels k0.. of
 * group g, BWW_ST taps j0..): cleared, and at the end reduced lane-wise and stored
 * into the chunk's slice of dst, or added to it with `accumulate`; rows past KG and
 * columns past CRS are not stored. */
#define CONV_BWW_ZERO(acc)                                                                 \
    _Pragma("unroll") for (int i = 0; i < BWW_KT; i++)                                 \
        _Pragma("unroll") for (int j = 0; j < BWW_ST; j++) (acc)[i][j] = (VT)(0.0f)

/* The row-by-row kernels' tile (conv_bwd_w, conv_bwd_w_pool): output channels k0.. of
 * group g, taps j0.., images n0..n1 of chunk ch; xo[j], where tap j's pixels start inside
 * an image of xp; dyo[i], output channel k0+i's plane (PLANE elements each) in the
 * gradient (clamped: lanes past the last tap or channel compute something finite, never
 * stored); acc cleared. */
#define CONV_BWW_SETUP(PLANE)                                                              \
    const uint nkt = (KG + BWW_KT - 1) / BWW_KT;                                           \
    const uint g = gk / nkt, k0 = (gk % nkt) * BWW_KT;                                     \
    const uint n0 = ch * NPC, n1 = min(N, n0 + NPC);                                       \
    uint xo[BWW_ST], dyo[BWW_KT];                                                          \
    _Pragma("unroll") for (int j = 0; j < BWW_ST; j++) {                                   \
        const uint crs = min(j0 + j, CRS - 1);                                             \
        const uint c = crs / (R * S), r = (crs / S) % R, s = crs % S;                      \
        xo[j] = (c * HP + r * DH) * WP + s * DW;                                           \
    }                                                                                      \
    _Pragma("unroll") for (int i = 0; i < BWW_KT; i++) dyo[i] = min(k0 + i, KG - 1) * (PLANE); \
    VT acc[BWW_KT][BWW_ST];                                                                \
    CONV_BWW_ZERO(acc)

#define CONV_BWW_STORE(acc)                                                                \
    do {                                                                                   \
        __global float *o = dst + (size_t)ch * G * KG * CRS;                               \
        _Pragma("unroll") for (int i = 0; i < BWW_KT; i++) {                           \
            _Pragma("unroll") for (int j = 0; j < BWW_ST; j++) {                       \
                if (k0 + i < KG && j0 + j < CRS) {                                         \
                    const size_t at = (size_t)(g * KG + k0 + i) * CRS + j0 + j;            \
                    const float sum = vsum((acc)[i][j]);                                   \
                    o[at] = accumulate ? o[at] + sum : sum;                                \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* dy: (N, G*KG, P, Q); xp: (N, G*CG, HP, WP) padded x, zero beyond each row's data as
 * far as the last pixel run reaches, so tail lanes (where dy is 0) read finite values.
 * Chunk `ch` = get_global_id(2) reduces images [ch*NPC, min(N, (ch+1)*NPC)) into
 * dst + ch*G*KG*CG*R*S (dw itself for one chunk, else the chunk's partial sums): added
 * to what is there with `accumulate` (dw; partial sums of earlier batch slices), else
 * stored. */
__kernel void conv_bwd_w(__global const float *xp, CT_CARG(dy), CT_ARG(dst), const uint CG,
                         const uint KG, const uint G, const uint HP, const uint WP, const uint R,
                         const uint S, const uint SH, const uint SW, const uint DH, const uint DW,
                         const uint P, const uint Q, const uint N, const uint NPC,
                         const uint accumulate)
{
    const uint CRS = CG * R * S;
    const uint j0 = get_global_id(0) * CONV_BW_ST;
    const uint gk = get_global_id(1);
    const uint ch = get_global_id(2);
    if (j0 >= CRS)
        return;
    dy += dy_off;
    dst += dst_off;
    CONV_BWW_SETUP(P * Q);

#define DLOAD_DENSE(d)                                                                     \
    do {                                                                                   \
        __global const float *dq = dy + ((size_t)n * G * KG + g * KG) * P * Q + p * Q + q0; \
        if (q0 + CONV_QV <= Q) {                                                           \
            _Pragma("unroll") for (int i = 0; i < CONV_BW_KT; i++) d[i] =                  \
                VLOAD(dq + dyo[i]);                                                        \
        } else {                                                                           \
            _Pragma("unroll") for (int i = 0; i < CONV_BW_KT; i++) d[i] =                  \
                vload_tail(dq + dyo[i], Q - q0);                                           \
        }                                                                                  \
    } while (0)
    if (SW == 1) {
        CONV_BWW_LOOP(LOAD_S1, DLOAD_DENSE)
    } else if (SW == 2) {
        CONV_BWW_LOOP(VLOAD_S2, DLOAD_DENSE)
    } else {
        CONV_BWW_LOOP(LOAD_SG, DLOAD_DENSE)
    }
#undef DLOAD_DENSE

    CONV_BWW_STORE(acc);
}

/* conv_bwd_w for a conv whose output went through its ReLU (`relu`) and a 2x2 max pool
 * at stride 2 fused into conv_kv_pool: the output gradient is rebuilt in registers
 * (unpool_run) from the pooled gradient gp, the pooled output yv and the argmax bytes
 * idx, all (N, G*KG, PH, PW), and never exists in memory. Only the conv outputs under a
 * window (rows < 2*PH, columns < 2*PW) have a gradient; the loops stop there. Work
 * split, chunks and dst as conv_bwd_w; `bias` and bdst as conv_bwd_w_kv. */
#undef BWW_KT
#undef BWW_ST
#define BWW_KT CONV_BWP_KT
#define BWW_ST CONV_BWP_ST
__kernel void conv_bwd_w_pool(__global const float *xp, CT_CARG(gp), CT_CARG(yv),
                              __global const uchar *idx, const uint idx_off, CT_ARG(dst),
                              const uint CG, const uint KG, const uint G, const uint HP,
                              const uint WP, const uint R, const uint S, const uint SH,
                              const uint SW, const uint DH, const uint DW, const uint PH,
                              const uint PW, const uint N, const uint NPC, const uint relu,
                              const uint accumulate, CT_ARG(bdst), const uint bias)
{
    const uint CRS = CG * R * S;
    const uint j0 = get_global_id(0) * CONV_BWP_ST;
    const uint gk = get_global_id(1);
    const uint ch = get_global_id(2);
    if (j0 >= CRS)
        return;
    gp += gp_off;
    yv += yv_off;
    idx += idx_off;
    dst += dst_off;
    bdst += bdst_off;
    const uint P = 2 * PH, Q = 2 * PW;
    CONV_BWW_SETUP(PH * PW);

    /* the run of windows above conv pixels q0.. of pooled row PR of image n: its offset
     * `at` in channel k0's plane, its nu windows, and the room to its plane's end */
#define POOL_RUN_AT(PR)                                                                    \
    const size_t at = ((size_t)n * G * KG + g * KG) * PH * PW + (PR) * PW + q0 / 2;        \
    const uint nu = min((uint)CONV_QV / 2, PW - q0 / 2);                                    \
    const uint room = PH * PW - ((PR) * PW + q0 / 2)
#if CONV_R > 0 && CONV_R * CONV_S == CONV_BWP_ST
    /* stride and dilation 1 and a work-item's taps one input channel's (j0 a multiple of
     * CONV_R*CONV_S): the two conv rows under a pooled row at once, their gradients from
     * one read of the pooled gradient, output and argmax bytes, and the CONV_R + 1 input
     * rows they reach loaded once for both. The products are those of the row-by-row
     * loop, added in another fixed order where a row holds more than one run (run by
     * run over the row pair, not row by row): the last bits differ from that loop's,
     * not from run to run. MiniCNN conv1's weight gradient 0.35-0.38 -> 0.26 ms. */
    const size_t xc = (size_t)(j0 / (CONV_R * CONV_S)) * HP * WP;
    for (uint n = n0; n < n1; n++) {
        __global const float *xn = xp + (size_t)(n * G + g) * CG * HP * WP + xc;
        for (uint ph = 0; ph < PH; ph++) {
            for (uint q0 = 0; q0 < Q; q0 += CONV_QV) {
                __global const float *xq = xn + (size_t)(2 * ph) * WP + q0;
                POOL_RUN_AT(ph);
                VT d0[CONV_BWP_KT], d1[CONV_BWP_KT];
#pragma unroll
                for (int i = 0; i < CONV_BWP_KT; i++) {
                    HV gv;
                    HI a;
                    unpool_load(gp + at + dyo[i], yv + at + dyo[i], idx + at + dyo[i], nu, room,
                                relu, &gv, &a);
                    d0[i] = unpool_row(gv, a, 0);
                    d1[i] = unpool_row(gv, a, 1);
                }
#pragma unroll
                for (int r = 0; r <= CONV_R; r++)
#pragma unroll
                    for (int s = 0; s < CONV_S; s++) {
                        const VT xv = VLOAD(xq + (size_t)r * WP + s);
#pragma unroll
                        for (int i = 0; i < CONV_BWP_KT; i++) {
                            if (r < CONV_R)
                                acc[i][r * CONV_S + s] = fma(d0[i], xv, acc[i][r * CONV_S + s]);
                            if (r > 0)
                                acc[i][(r - 1) * CONV_S + s] =
                                    fma(d1[i], xv, acc[i][(r - 1) * CONV_S + s]);
                        }
                    }
            }
        }
    }
#else
#define DLOAD_POOL(d)                                                                      \
    do {                                                                                   \
        POOL_RUN_AT(p / 2);                                                                \
        _Pragma("unroll") for (int i = 0; i < CONV_BWP_KT; i++) d[i] =                      \
            unpool_run(gp + at + dyo[i], yv + at + dyo[i], idx + at + dyo[i], nu, room,    \
                       p & 1u, relu);                                                      \
    } while (0)
    if (SW == 1) {
        CONV_BWW_LOOP(LOAD_S1, DLOAD_POOL)
    } else if (SW == 2) {
        CONV_BWW_LOOP(VLOAD_S2, DLOAD_POOL)
    } else {
        CONV_BWW_LOOP(LOAD_SG, DLOAD_POOL)
    }
#undef DLOAD_POOL
#endif
#undef POOL_RUN_AT

    CONV_BWW_STORE(acc);

    /* the bias gradient of the tile's channels over the chunk, by the first tap tile's
     * work-items: the pooled gradient where the pooled output passed the ReLU (just read
     * above, in cache), no unpooling */
    if (!bias || j0 != 0)
        return;
#pragma unroll
    for (int i = 0; i < BWW_KT; i++) {
        if (k0 + i >= KG)
            continue;
        VT bacc = (VT)(0.0f);
        float tail = 0.0f;
        for (uint n = n0; n < n1; n++) {
            const size_t e = ((size_t)n * G * KG + g * KG) * PH * PW + dyo[i];
            bias_plane_sum(gp + e, yv + e, PH * PW, relu, &bacc, &tail);
        }
        const size_t at = (size_t)ch * G * KG + g * KG + k0 + i;
        const float sum = vsum(bacc) + tail;
        bdst[at] = accumulate ? bdst[at] + sum : sum;
    }
}

#undef BWW_KT
#undef BWW_ST
#define BWW_KT CONV_BW_KT
#define BWW_ST CONV_BW_ST

/* Backward-weight at stride 1, as 1-D correlations. With x padded to row pitch WP and dy
 * copied to the same pitch (zeros in columns Q.. and after the last row), output pixel
 * (p, q) sits at i = p*WP + q in dyp and its tap (r, s) at i + r*DH*WP + s*DW in xp, so
 *   dw[k, c, r, s] += sum_n sum_{i < LP} dyp[n, k, i] * xp[n, c, i + r*DH*WP + s*DW]
 * with plain contiguous vector loads and no tails: LP is P*WP rounded up to CONV_QV, and
 * every plane of xp has enough zero rows below the image that i + offset stays inside it.
 * xp: (N, G*CG, XPL) raw, dyp: (N, G*KG, DPL) raw (XPL, DPL: plane sizes). Work split,
 * chunks and dst as conv_bwd_w. */
__kernel void conv_bwd_w_flat(__global const float *xp, CT_CARG(dyp), CT_ARG(dst),
                              const uint CG, const uint KG, const uint G, const uint XPL,
                              const uint DPL, const uint LP, const uint WP, const uint R,
                              const uint S, const uint DH, const uint DW, const uint N,
                              const uint NPC, const uint accumulate)
{
    const uint CRS = CG * R * S;
    const uint j0 = get_global_id(0) * CONV_BW_ST;
    const uint gk = get_global_id(1);
    const uint ch = get_global_id(2);
    if (j0 >= CRS)
        return;
    dyp += dyp_off;
    dst += dst_off;
    const uint nkt = (KG + CONV_BW_KT - 1) / CONV_BW_KT;
    const uint g = gk / nkt, k0 = (gk % nkt) * CONV_BW_KT;
    const uint n0 = ch * NPC, n1 = min(N, n0 + NPC);

    uint xo[CONV_BW_ST], dyo[CONV_BW_KT];
#pragma unroll
    for (int j = 0; j < CONV_BW_ST; j++) {
        const uint crs = min(j0 + j, CRS - 1);
        const uint c = crs / (R * S), r = (crs / S) % R, s = crs % S;
        xo[j] = c * XPL + r * DH * WP + s * DW;
    }
#pragma unroll
    for (int i = 0; i < CONV_BW_KT; i++)
        dyo[i] = min(k0 + i, KG - 1) * DPL;

    VT acc[CONV_BW_KT][CONV_BW_ST];
    CONV_BWW_ZERO(acc);

    for (uint n = n0; n < n1; n++) {
        __global const float *xn = xp + (size_t)(n * G + g) * CG * XPL;
        __global const float *dn = dyp + ((size_t)n * G * KG + g * KG) * DPL;
        for (uint i0 = 0; i0 < LP; i0 += CONV_QV) {
            VT d[CONV_BW_KT];
#pragma unroll
            for (int i = 0; i < CONV_BW_KT; i++)
                d[i] = VLOAD(dn + dyo[i] + i0);
#pragma unroll
            for (int j = 0; j < CONV_BW_ST; j++) {
                const VT xv = VLOAD(xn + xo[j] + i0);
#pragma unroll
                for (int i = 0; i < CONV_BW_KT; i++)
                    acc[i][j] = fma(d[i], xv, acc[i][j]);
            }
        }
    }

    CONV_BWW_STORE(acc);
}

/* r[i] lane j becomes r[j] lane i: a 16 x 16 transpose in four butterfly stages, each
 * swapping the off-diagonal b x b blocks of every 2b x 2b block (b = 1, 2, 4, 8) with
 * shuffle2 on constant masks (one permute instruction each where the compiler has them:
 * 64 in all, against 256 scalar stores and loads through private memory). */
#define TRANSPOSE_STAGE(b, MA, MC)                                                         \
    _Pragma("unroll") for (int i = 0; i < 16; i++) if (!(i & (b))) {                       \
        const float16 a = r[i], c = r[i + (b)];                                            \
        r[i] = shuffle2(a, c, (uint16)MA);                                                 \
        r[i + (b)] = shuffle2(a, c, (uint16)MC);                                           \
    }
CT_INLINE void transpose16(float16 r[16])
{
    TRANSPOSE_STAGE(1, (0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30),
                    (1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31))
    TRANSPOSE_STAGE(2, (0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29),
                    (2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31))
    TRANSPOSE_STAGE(4, (0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27),
                    (4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31))
    TRANSPOSE_STAGE(8, (0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
                    (8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31))
}
#undef TRANSPOSE_STAGE

/* dyt (N, G, NKT, HPD*WPD, 16*CONV_KV) with NKT = ceil(KG / (16*CONV_KV)): the output
 * gradient with the channels of each tile innermost, 0 for channels >= KG, in planes of
 * HPD x WPD pixels with the gradient at rows OH.., columns OW.. and zeros around it (the
 * backward-data pass's padding; HPD = P, WPD = Q and no offsets for the weight gradient
 * alone). From the dense dy (N, G*KG, P, Q); or with `pooled` rebuilt by unpool_run
 * (conv_unpool's rule) from a fused 2x2 max pool's gradient dy, pooled output yv and
 * argmax bytes idx ((N, G*KG, PH, PW) each; rows and columns past 2*PH, 2*PW get 0).
 * One work-item = a run of CONV_QV pixels of one plane row (above, below or in the
 * gradient's rows) x a channel tile: a vector per channel in, transposed in private
 * memory, a row of 16*CONV_KV channels per pixel out; a row's first and last run also
 * write its left and right zeros. global (HPD * ceil(Q / CONV_QV), G*NKT, N). */
__kernel void conv_dyt(__global float *dyt, CT_CARG(dy), CT_CARG(yv), __global const uchar *idx,
                       const uint idx_off, const uint G, const uint KG, const uint P,
                       const uint Q, const uint PH, const uint PW, const uint HPD,
                       const uint WPD, const uint OH, const uint OW, const uint pooled,
                       const uint relu)
{
    const uint TKV = 16 * CONV_KV, NKT = (KG + TKV - 1) / TKV;
    const uint NQR = (Q + CONV_QV - 1) / CONV_QV;
    const uint pr = get_global_id(0), gk = get_global_id(1), n = get_global_id(2);
    if (pr >= HPD * NQR)
        return;
    dy += dy_off;
    yv += yv_off;
    idx += idx_off;
    const uint row = pr / NQR, q0 = (pr % NQR) * CONV_QV, nq = min((uint)CONV_QV, Q - q0);
    const uint g = gk / NKT, kt = gk % NKT;
    __global float *o =
        dyt + (((size_t)(n * G + g) * NKT + kt) * HPD * WPD + (size_t)row * WPD) * TKV;
    const float16 zero = (float16)(0.0f);
    /* this run's share of the row's zeros: left of the gradient, right of it */
    if (q0 == 0)
        for (uint x = 0; x < OW; x++)
#pragma unroll
            for (int v = 0; v < CONV_KV; v++)
                CT_GSTORE16(zero, o + (size_t)x * TKV + 16 * v);
    if (q0 + nq == Q)
        for (uint x = OW + Q; x < WPD; x++)
#pragma unroll
            for (int v = 0; v < CONV_KV; v++)
                CT_GSTORE16(zero, o + (size_t)x * TKV + 16 * v);
    o += (size_t)(OW + q0) * TKV;
    if (row < OH || row >= OH + P) {
        for (uint x = 0; x < nq; x++)
#pragma unroll
            for (int v = 0; v < CONV_KV; v++)
                CT_GSTORE16(zero, o + (size_t)x * TKV + 16 * v);
        return;
    }
    const uint p = row - OH;
    /* channel l's run of pixels */
#define DYT_RUN(l, v)                                                                      \
    do {                                                                                   \
        const uint k = kt * TKV + (l);                                                     \
        v = (VT)(0.0f);                                                                    \
        if (k < KG) {                                                                      \
            const size_t plane = (size_t)(n * G + g) * KG + k;                             \
            if (!pooled) {                                                                 \
                __global const float *d = dy + plane * P * Q + p * Q + q0;                 \
                v = nq == CONV_QV ? VLOAD(d) : vload_tail(d, nq);                          \
            } else if (p < 2 * PH && q0 < 2 * PW) {                                        \
                const uint at = (p / 2) * PW + q0 / 2;                                     \
                const size_t e = plane * PH * PW + at;                                     \
                v = unpool_run(dy + e, yv + e, idx + e, min((uint)CONV_QV / 2, PW - q0 / 2), \
                               PH * PW - at, p & 1u, relu);                                \
            }                                                                              \
        }                                                                                  \
    } while (0)
#if CONV_QV == 16
    /* 16 channels x 16 pixels at a time, transposed in registers (transpose16) */
    for (int v = 0; v < CONV_KV; v++) {
        float16 r[16];
#pragma unroll
        for (int i = 0; i < 16; i++)
            DYT_RUN(16 * v + i, r[i]);
        transpose16(r);
        if (nq == 16) {
#pragma unroll
            for (int x = 0; x < 16; x++)
                CT_GSTORE16(r[x], o + (size_t)x * TKV + 16 * v);
        } else {
            for (uint x = 0; x < nq; x++)
                CT_GSTORE16(r[x], o + (size_t)x * TKV + 16 * v);
        }
    }
#else
    float t[CONV_QV][16 * CONV_KV];
    for (uint l = 0; l < TKV; l++) {
        VT v;
        DYT_RUN(l, v);
        float tv[CONV_QV];
        VSTORE(v, tv);
        for (uint x = 0; x < CONV_QV; x++)
            t[x][l] = tv[x];
    }
    for (uint x = 0; x < nq; x++)
#pragma unroll
        for (int v = 0; v < CONV_KV; v++)
            CT_GSTORE16(vload16(v, t[x]), o + (size_t)x * TKV + 16 * v);
#endif
#undef DYT_RUN
}

/* dw (G*KG, CG*R*S) += sum over the images of chunk ch = get_global_id(2) (NPC each)
 * and their pixels (n, p, q in that order) of dyt[n, g, tile, (p + OH)*WPD + q + OW, :]
 * (conv_dyt's planes of HPD x WPD pixels) x
 * x[n, g*CG + c, p*SH + r*DH - PH0, q*SW + s*DW - PW0], x unpadded (N, G*CG, H, W): a
 * tap outside it reads 0. One work-item = 16*CONV_KV output channels (float16 vectors,
 * one per lane) x CONV_BWK_T consecutive taps: per pixel CONV_KV vector loads and
 * CONV_BWK_T broadcasts for CONV_KV*CONV_BWK_T FMAs, and at the end each lane is one
 * channel's sum. No padded copy of x: per output row each tap's input row is looked up
 * once (a tap whose row falls outside x reads the row `zeros`, Q*SW + S floats of 0), and
 * only the pixels at the row's ends whose taps leave x sideways check their columns (in
 * a row narrower than the taps' reach, every pixel checks both ends).
 * dst and `accumulate` as conv_bwd_w; with `bias` also each channel's sum of the chunk's
 * gradient into bdst + ch*G*KG (db itself for one chunk, else the chunk's bias partial
 * sums), stored or added as dst. global (ceil(CRS / CONV_BWK_T), G*NKT, chunks). */
__kernel void conv_bwd_w_kv(CT_CARG(x), __global const float *zeros, __global const float *dyt,
                            CT_ARG(dst), CT_ARG(bdst), const uint CG, const uint KG,
                            const uint G, const uint H, const uint W, const uint R,
                            const uint S, const uint SH, const uint SW, const uint DH,
                            const uint DW, const int PH0, const int PW0, const uint P,
                            const uint Q, const uint HPD, const uint WPD, const uint OH,
                            const uint OW, const uint N, const uint NPC, const uint accumulate,
                            const uint bias)
{
    const uint TKV = 16 * CONV_KV, NKT = (KG + TKV - 1) / TKV, CRS = CG * R * S;
    const uint j0 = get_global_id(0) * CONV_BWK_T;
    const uint gk = get_global_id(1);
    const uint ch = get_global_id(2);
    if (j0 >= CRS)
        return;
    x += x_off;
    dst += dst_off;
    bdst += bdst_off;
    const uint g = gk / NKT, kt = gk % NKT, k0 = kt * TKV;
    const uint n0 = ch * NPC, n1 = min(N, n0 + NPC);
    /* each tap's input channel plane, row and column offsets; [qlo, qhi): the pixels
     * whose columns every tap finds inside x (lanes past CRS repeat the last tap) */
    uint xc[CONV_BWK_T];
    int ro[CONV_BWK_T], co[CONV_BWK_T], lo[CONV_BWK_T], hi[CONV_BWK_T];
    int qlo = 0, qhi = (int)Q;
#pragma unroll
    for (int j = 0; j < CONV_BWK_T; j++) {
        const uint crs = min(j0 + j, CRS - 1);
        const uint c = crs / (R * S), r = (crs / S) % R, s = crs % S;
        xc[j] = c * H * W;
        ro[j] = (int)(r * DH) - PH0;
        co[j] = (int)(s * DW) - PW0;
        lo[j] = co[j] >= 0 ? 0 : (-co[j] + (int)SW - 1) / (int)SW;
        hi[j] = (int)W - 1 - co[j] < 0 ? 0 : ((int)W - 1 - co[j]) / (int)SW + 1;
        qlo = max(qlo, lo[j]);
        qhi = min(qhi, hi[j]);
    }
    /* a row so narrow that no pixel has every tap inside x: some of the first pixels'
     * taps leave it on the right too, so every pixel checks both ends */
    const bool narrow = qhi < qlo;
    qlo = min(qlo, (int)Q);
    qhi = max(qhi, qlo);
    float16 acc[CONV_KV][CONV_BWK_T];
#pragma unroll
    for (int v = 0; v < CONV_KV; v++)
#pragma unroll
        for (int j = 0; j < CONV_BWK_T; j++)
            acc[v][j] = (float16)(0.0f);

    /* With the layer's CONV_R x CONV_S constant (stride and dilation 1) and a work-item's
     * taps one channel's (CONV_BWK_T = R*S): stride 1 as a constant and a row pointer per
     * kernel row, 3 pointers and constant offsets rather than 9 pointers for 3x3. */
#if CONV_R > 0 && CONV_R * CONV_S == CONV_BWK_T
#define BWK_RS 1
#define BWK_SW 1
#else
#define BWK_RS 0
#define BWK_SW SW
#endif
    /* one pixel q of the row: CHECK tests each tap's column (the row's ends) */
#define BWK_PIXEL(CHECK)                                                                   \
    {                                                                                      \
        float16 d[CONV_KV];                                                                \
        _Pragma("unroll") for (int v = 0; v < CONV_KV; v++) d[v] = vload16(v, dn);         \
        _Pragma("unroll") for (int j = 0; j < CONV_BWK_T; j++) {                           \
            const float16 xs = (float16)((CHECK ? xr[j] : zeros)[q * BWK_SW]);             \
            _Pragma("unroll") for (int v = 0; v < CONV_KV; v++) acc[v][j] =                \
                fma(d[v], xs, acc[v][j]);                                                  \
        }                                                                                  \
    }
    for (uint n = n0; n < n1; n++) {
        __global const float *xn = x + (size_t)(n * G + g) * CG * H * W;
        __global const float *dplane = dyt + ((size_t)(n * G + g) * NKT + kt) * HPD * WPD * TKV;
        for (uint p = 0; p < P; p++) {
            /* xr[j][q*BWK_SW]: tap j's input at pixel q (its column checked at the ends) */
            __global const float *xr[CONV_BWK_T];
#if BWK_RS
            /* a pointer per kernel row, the row's taps at constant offsets along it */
            __global const float *xrow[CONV_R];
#pragma unroll
            for (int r = 0; r < CONV_R; r++) {
                const int row = (int)p + ro[r * CONV_S];
                xrow[r] = row >= 0 && row < (int)H ? xn + xc[0] + (size_t)row * W - PW0 : zeros;
            }
#pragma unroll
            for (int j = 0; j < CONV_BWK_T; j++)
                xr[j] = xrow[j / CONV_S] + j % CONV_S;
#else
#pragma unroll
            for (int j = 0; j < CONV_BWK_T; j++) {
                const int row = (int)(p * SH) + ro[j];
                xr[j] = row >= 0 && row < (int)H ? xn + xc[j] + (size_t)row * W + co[j] : zeros;
            }
#endif
            __global const float *dn = dplane + ((size_t)(p + OH) * WPD + OW) * TKV;
            uint q = 0;
            if (narrow) {
                for (; q < Q; q++, dn += TKV)
                    BWK_PIXEL((int)q >= lo[j] && (int)q < hi[j])
                continue;
            }
#if BWK_RS && defined(CONV_PW)
            /* the padding a constant too (stride 1, Q = W + 2*PW - S + 1): CONV_PW pixels at
             * each end, whose taps' checks are constants once unrolled (MiniCNN's conv2:
             * 1.49-1.52 -> 1.35-1.37 ms) */
#pragma unroll
            for (int t = 0; t < CONV_PW; t++, q++, dn += TKV)
                BWK_PIXEL(t >= CONV_PW - j % CONV_S)
            for (; q < Q - CONV_PW; q++, dn += TKV)
                BWK_PIXEL(true)
#pragma unroll
            for (int t = 0; t < CONV_PW; t++, q++, dn += TKV)
                BWK_PIXEL(t < CONV_S - 1 - j % CONV_S)
            continue;
#endif
            for (; q < (uint)qlo; q++, dn += TKV)
                BWK_PIXEL((int)q >= lo[j])
            for (; q < (uint)qhi; q++, dn += TKV)
                BWK_PIXEL(true)
            for (; q < Q; q++, dn += TKV)
                BWK_PIXEL((int)q < hi[j])
        }
    }
#undef BWK_PIXEL
#undef BWK_SW
#undef BWK_RS

    __global float *o = dst + (size_t)ch * G * KG * CRS;
#pragma unroll
    for (int v = 0; v < CONV_KV; v++)
#pragma unroll
        for (int j = 0; j < CONV_BWK_T; j++) {
            float t[16];
            vstore16(acc[v][j], 0, t);
            for (uint l = 0; l < 16; l++) {
                const uint k = k0 + 16 * v + l;
                if (k < KG && j0 + j < CRS) {
                    const size_t at = (size_t)(g * KG + k) * CRS + j0 + j;
                    o[at] = accumulate ? o[at] + t[l] : t[l];
                }
            }
        }

    /* the bias gradient of the tile's channels over the chunk: a second pass over the
     * dyt rows just read (in cache), by the first tap tile's work-items only, so that the
     * tap loop above carries no extra add */
    if (!bias || j0 != 0)
        return;
    float16 bacc[CONV_KV];
#pragma unroll
    for (int v = 0; v < CONV_KV; v++)
        bacc[v] = (float16)(0.0f);
    for (uint n = n0; n < n1; n++)
        for (uint p = 0; p < P; p++) {
            __global const float *dn =
                dyt + ((((size_t)(n * G + g) * NKT + kt) * HPD + p + OH) * WPD + OW) * TKV;
            for (uint q = 0; q < Q; q++, dn += TKV)
#pragma unroll
                for (int v = 0; v < CONV_KV; v++)
                    bacc[v] += vload16(v, dn);
        }
    __global float *ob = bdst + (size_t)ch * G * KG + g * KG;
#pragma unroll
    for (int v = 0; v < CONV_KV; v++) {
        float t[16];
        vstore16(bacc[v], 0, t);
        for (uint l = 0; l < 16; l++) {
            const uint k = k0 + 16 * v + l;
            if (k < KG)
                ob[k] = accumulate ? ob[k] + t[l] : t[l];
        }
    }
}

/* dw[i] += sum over chunks ch = 0, 1, ... of part[ch*M + i], in that order; and with
 * KB > 0, db[i] += the same of part[chunks*M + ch*KB + i] (the bias sums of the
 * weight-gradient kernels that make them). One work-item per element of dw, then of db
 * (M + KB). */
__kernel void conv_reduce(__global const float *part, CT_ARG(dw), const uint M,
                          const uint chunks, CT_ARG(db), const uint KB)
{
    const uint i = get_global_id(0);
    float sum = 0.0f;
    if (i < M) {
        for (uint ch = 0; ch < chunks; ch++)
            sum += part[(size_t)ch * M + i];
        dw[dw_off + i] += sum;
    } else if (i < M + KB) {
        part += (size_t)chunks * M;
        for (uint ch = 0; ch < chunks; ch++)
            sum += part[(size_t)ch * KB + i - M];
        db[db_off + i - M] += sum;
    }
}

/* db[k] += sum over n, then the P*Q plane of dy[n, k] (dy: (N, K, PQ)): vector lanes over
 * the plane, summed in a fixed order at the end; with `masked`, only where mask (like dy)
 * passes (bias_plane_sum). For the weight-gradient kernels that do not sum the bias
 * themselves. One work-item per channel k. */
__kernel void conv_bwd_b(CT_CARG(dy), CT_CARG(mask), CT_ARG(db), const uint N, const uint K,
                         const uint PQ, const uint masked)
{
    const uint k = get_global_id(0);
    if (k >= K)
        return;
    dy += dy_off;
    mask += mask_off;
    db += db_off;
    VT acc = (VT)(0.0f);
    float tail = 0.0f;
    for (uint n = 0; n < N; n++) {
        const size_t e = ((size_t)n * K + k) * PQ;
        bias_plane_sum(dy + e, mask + e, PQ, masked, &acc, &tail);
    }
    db[k] += vsum(acc) + tail;
}

/* col[j][n * P*Q + p*Q + q] = src at row p*sh + r*dh - pad_h, column q*sw + s*dw - pad_w
 * of plane n * chans + c (0 outside its H x W), for rows j = (c, r, s) < rows and images
 * n < nb; the planes are `plane` elements apart from src[off], rows `pitch` apart. */
__kernel void conv_im2col(__global float *col, __global const float *src, const uint off,
                          const uint rows, const uint chans, const uint plane, const uint pitch,
                          const uint H, const uint W, const uint pad_h, const uint pad_w,
                          const uint nb, const uint P, const uint Q, const uint R, const uint S,
                          const uint sh, const uint sw, const uint dh, const uint dw)
{
    const uint pq = get_global_id(0), jn = get_global_id(1);
    if (pq >= P * Q || jn >= rows * nb)
        return;
    const uint j = jn / nb, n = jn - j * nb;
    const uint c = j / (R * S), tap = j - c * (R * S);
    const uint p = pq / Q, q = pq - p * Q;
    const int ih = (int)(p * sh + (tap / S) * dh) - (int)pad_h;
    const int iw = (int)(q * sw + (tap % S) * dw) - (int)pad_w;
    float v = 0.0f;
    if (ih >= 0 && ih < (int)H && iw >= 0 && iw < (int)W)
        v = src[off + (n * chans + c) * plane + (uint)ih * pitch + (uint)iw];
    col[((size_t)j * nb + n) * P * Q + pq] = v;
}

/* y (NCHW, images from y_off on) = g (M x nb*PQ, a GEMM's output, row k holding images
 * n < nb) + b[k] (flags 1), then ReLU (flags 2). */
__kernel void conv_gemm_out(__global const float *g, CT_CARG(b), CT_ARG(y), const uint M,
                            const uint nb, const uint PQ, const uint flags)
{
    const uint pq = get_global_id(0), kn = get_global_id(1);
    if (pq >= PQ || kn >= M * nb)
        return;
    const uint k = kn / nb, n = kn - k * nb;
    float v = g[(size_t)kn * PQ + pq];
    if (flags & 1u)
        v += b[b_off + k];
    if (flags & 2u)
        v = v < 0.0f ? 0.0f : v;
    y[y_off + ((size_t)n * M + k) * PQ + pq] = v;
}

#ifndef CONV_BB_WG
#define CONV_BB_WG 256
#endif
#ifndef CONV_BW_WG
#define CONV_BW_WG 256
#endif

/* Every work-item of a work-group of n (a power of two) puts its sum in part[l]; part[0]
 * is then the group's total, added in a fixed tree order (the same bits on every run).
 * All work-items call it. */
CT_INLINE void wg_tree_sum(__local float *part, const uint l, const uint n, const float acc)
{
    part[l] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint h = n / 2; h > 0; h >>= 1) {
        if (l < h)
            part[l] += part[l + h];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

__kernel __attribute__((reqd_work_group_size(CONV_BB_WG, 1, 1))) void
conv_bwd_b_wg(CT_CARG(dy), CT_CARG(mask), CT_ARG(db), const uint N, const uint K, const uint PQ,
              const uint masked)
{
    __local float part[CONV_BB_WG];
    const uint k = get_group_id(0), l = get_local_id(0);
    dy += dy_off;
    mask += mask_off;
    db += db_off;
    float acc = 0.0f;
    for (uint i = l; i < N * PQ; i += CONV_BB_WG) {
        const uint n = i / PQ;
        const size_t at = ((size_t)n * K + k) * PQ + (i - n * PQ);
        const float v = dy[at];
        acc += masked && mask[at] <= 0.0f ? 0.0f : v;
    }
    wg_tree_sum(part, l, CONV_BB_WG, acc);
    if (l == 0 && k < K)
        db[k] += part[0];
}

/* dw[m] += sum over n < N, p < P, q < Q of dy[n, gk, p, q] * xp[n, g*CG + c, p*SH + r*DH,
 * q*SW + s*DW] for m = gk*CRS + (c*R + r)*S + s, gk = g*KG + k: one work-group of CONV_BW_WG
 * per element of dw, each work-item summing every CONV_BW_WG-th term, then a tree sum in
 * local memory (a fixed order: the same bits on every run). For GPUs, where conv_bwd_w's
 * few long work-items left the device idle (a first layer's 9 or 27 taps). dy: (N, G*KG,
 * P, Q); xp: (N, G*CG, HP, WP) padded. global (G*KG*CRS*CONV_BW_WG). */
__kernel __attribute__((reqd_work_group_size(CONV_BW_WG, 1, 1))) void
conv_bwd_w_wg(__global const float *xp, CT_CARG(dy), CT_ARG(dw), const uint CG, const uint KG,
              const uint G, const uint HP, const uint WP, const uint R, const uint S,
              const uint SH, const uint SW, const uint DH, const uint DW, const uint P,
              const uint Q, const uint N)
{
    __local float part[CONV_BW_WG];
    const uint CRS = CG * R * S, m = get_group_id(0), l = get_local_id(0);
    const uint gk = m / CRS, crs = m % CRS, g = gk / KG;
    const uint c = crs / (R * S), r = (crs / S) % R, s = crs % S;
    const uint PQ = P * Q;
    dy += dy_off;
    dw += dw_off;
    float acc = 0.0f;
    for (uint i = l; i < N * PQ; i += CONV_BW_WG) {
        const uint n = i / PQ, pq = i - n * PQ, p = pq / Q, q = pq - p * Q;
        const float d = dy[((size_t)n * G * KG + gk) * PQ + pq];
        const float x = xp[(((size_t)n * G + g) * CG + c) * HP * WP + (p * SH + r * DH) * WP +
                           q * SW + s * DW];
        acc = fma(d, x, acc);
    }
    wg_tree_sum(part, l, CONV_BW_WG, acc);
    if (l == 0)
        dw[m] += part[0];
}
