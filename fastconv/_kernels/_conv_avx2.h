/* AVX2 + FMA register tiles for the direct convolution (forward), for x86-64 CPUs without
 * AVX-512 (Haswell-era Intel, AMD Zen 1-3).
 *
 * Included by _conv_avx512.h, whose generic tile macro (FC_DEFINE_CONV_VEC) and data
 * layout they share; the tiles here are sized for the 16 ymm registers instead of 32 zmm.
 * _conv_blocked.h's portable 16 x 6 tile, compiled by target_clones for x86-64-v3, is the
 * same register shape as the general tile below, but it writes its tile out element by
 * element and re-broadcasts every input value once per kernel column.
 *
 * Two kinds of tile, index -> (NV, OWB, KW, SW) in fc_avx2_tiles:
 * - KW 0 (SW 0), any kernel, stride and dilation: NV vectors of 8 output channels x OWB
 *   pixels of one row (NV * OWB + NV + 1 <= 16 registers).
 * - KW 3 or 5 at stride SW 1, or KW 3 at stride 2, no dilation along the row: the
 *   "diagonal" row-reuse tile. For each (channel, kernel row) all KW weight vectors stay
 *   in registers and each of the (OWB - 1) * SW + KW input values of the row segment is
 *   broadcast once and feeds every output pixel it touches (up to KW / SW FMAs per
 *   broadcast, against one in the general tile). NV * (OWB + KW) + 1 <= 16.
 *
 * grad_weight: _conv_avx512.h's whole-kernel tile at one vector of channels (9 accumulators
 * for 3x3; two vectors would need 18 registers). It measured 1.07-1.19x the portable
 * 16-channel kernel's time on ResNet-8's 3x3 layers at batch 128 on AMD Zen 1 and
 * 0.92-0.99x on Zen 3 (1 thread; float64 0.78x), so which one runs is measured per machine
 * (functional/conv.py, the "wgrad-tile" plan).
 *
 * Tile indices start at FC_AVX2_TILE_BASE so that they never collide with the AVX-512
 * table's; callers (forward_tile in _direct.pyx) pick them only when fc_have_avx2() says
 * the running CPU has AVX2 and FMA and the AVX-512 tiles are not in use.
 */
#ifndef FASTCONV_CONV_AVX2_H
#define FASTCONV_CONV_AVX2_H
#include <stddef.h>
#include "_conv_blocked.h"
#include "_multiversion.h"
#include "_avx2_lanes.h"

#define FC_AVX2_TILE_BASE 64

#if FC_HAVE_AVX512 /* x86-64 with target attributes: the AVX2 tiles compile too */

FC_DEFINE_STORE_TILE_SCALAR(fc_store_tile_scalar_f8, float, 8)
FC_DEFINE_STORE_TILE_SCALAR(fc_store_tile_d4, double, 4)

/* 8 x 8 transpose of r[0..7] (rows) into columns, in registers. */
FC_TARGET_AVX2 static inline void fc_transpose8_ps(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 4; ++i) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; ++i) {
        u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int j = 0; j < 4; ++j) {
        r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}

/* tmp[q][c] (owb pixels x nv*8 channels) -> o[c*ocs + q*ops], c < nco, q < nq. At pixel
 * stride 1, each 8 x 8 block (8 pixels of 8 channels) is transposed in registers and
 * written with one (partial) store a channel; other strides element by element. */
FC_TARGET_AVX2 static inline void fc_store_tile_avx2_f(const float* tmp, int owb, int nv,
                                                       ptrdiff_t nco, ptrdiff_t nq, float* o,
                                                       ptrdiff_t ocs, ptrdiff_t ops)
{
    if (ops != 1) {
        fc_store_tile_scalar_f8(tmp, owb, nv, nco, nq, o, ocs, ops);
        return;
    }
    const int cb = 8 * nv;
    for (ptrdiff_t p0 = 0; p0 < nq; p0 += 8) {
        const ptrdiff_t np = (nq - p0) < 8 ? (nq - p0) : 8;
        for (int v = 0; v < nv && v * 8 < nco; ++v) {
            __m256 r[8];
            for (int k = 0; k < 8; ++k)
                r[k] = p0 + k < owb ? _mm256_load_ps(tmp + (p0 + k) * cb + v * 8) : _mm256_setzero_ps();
            fc_transpose8_ps(r);
            const ptrdiff_t nl = (nco - v * 8) < 8 ? (nco - v * 8) : 8;
            float* ov = o + v * 8 * ocs + p0;
            for (ptrdiff_t l = 0; l < nl; ++l) fc_storeu_first8(ov + l * ocs, r[l], np);
        }
    }
}

/* The diagonal row-reuse tile (see the top of the file). */
#define FC_DEFINE_CONV_AVX2_DIAG(NAME, T, VT, LANES, LOAD, STORE, SET1, FMA, STORE_TILE, NV, OWB, KW, SW) \
    FC_TARGET_AVX2 static void NAME(FC_CONV_PARAMS(T))                                         \
    {                                                                                          \
        enum { CB = NV * LANES };                                                              \
        const ptrdiff_t K = C * kh * KW;                                                       \
        T tmp[OWB][CB] __attribute__((aligned(64)));                                           \
        enum { SPAN = (OWB - 1) * SW + KW }; /* the input values one row of the tile reads */ \
        (void)kw; (void)sw; (void)dw; /* KW, SW and 1 */                                       \
        for (ptrdiff_t cb = 0; cb * CB < cout; ++cb) {                                         \
            const T* wp = wpack + cb * K * CB;                                                 \
            const ptrdiff_t nco = (cout - cb * CB) < CB ? (cout - cb * CB) : CB;               \
            T bv[CB] __attribute__((aligned(64)));                                             \
            for (int l = 0; l < CB; ++l) bv[l] = l < nco ? bias[cb * CB + l] : (T)0;           \
            for (ptrdiff_t oh = 0; oh < OH; ++oh) {                                            \
                for (ptrdiff_t ow0 = 0; ow0 < OW; ow0 += OWB) {                                \
                    VT acc[OWB][NV];                                                           \
                    FC_PRAGMA(GCC unroll 16)                                                   \
                    for (int q = 0; q < OWB; ++q)                                              \
                        FC_PRAGMA(GCC unroll 2)                                                \
                        for (int v = 0; v < NV; ++v) acc[q][v] = LOAD(bv + v * LANES);         \
                    for (ptrdiff_t c = 0; c < C; ++c) {                                        \
                        for (ptrdiff_t i = 0; i < kh; ++i) {                                   \
                            const T* xr = xpad + (c * Hp + oh * sh + i * dh) * Wp + ow0 * SW;  \
                            const T* wr = wp + (c * kh + i) * KW * CB;                         \
                            VT w[KW][NV];                                                      \
                            FC_PRAGMA(GCC unroll 8)                                            \
                            for (int j = 0; j < KW; ++j)                                       \
                                FC_PRAGMA(GCC unroll 2)                                        \
                                for (int v = 0; v < NV; ++v) w[j][v] = LOAD(wr + j * CB + v * LANES); \
                            FC_PRAGMA(GCC unroll 32)                                           \
                            for (int t = 0; t < SPAN; ++t) {                                   \
                                const VT xb = SET1(xr[t]);                                     \
                                FC_PRAGMA(GCC unroll 8)                                        \
                                for (int j = 0; j < KW; ++j) {                                 \
                                    /* output pixel q reads input q * SW + j */                \
                                    const int q = (t - j) / SW;                                \
                                    if (t < j || (t - j) % SW || q >= OWB) continue;           \
                                    FC_PRAGMA(GCC unroll 2)                                    \
                                    for (int v = 0; v < NV; ++v)                               \
                                        acc[q][v] = FMA(xb, w[j][v], acc[q][v]);               \
                                }                                                              \
                            }                                                                  \
                        }                                                                      \
                    }                                                                          \
                    FC_PRAGMA(GCC unroll 16)                                                   \
                    for (int q = 0; q < OWB; ++q)                                              \
                        FC_PRAGMA(GCC unroll 2)                                                \
                        for (int v = 0; v < NV; ++v) STORE(&tmp[q][v * LANES], acc[q][v]);     \
                    const ptrdiff_t nq = (OW - ow0) < OWB ? (OW - ow0) : OWB;                  \
                    STORE_TILE(&tmp[0][0], OWB, NV, nco, nq, out + cb * CB * ocs + oh * ors + ow0 * ops, \
                               ocs, ops);                                                      \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

/* The transposed row-reuse tile: the column direction of a stride-2, 3-wide convolution's
 * grad_input, all three kernel columns at once (rows go by stride phase, as the other
 * tiles' grad_input jobs do). Output pixel q of the block at ow0 (even) is input column
 * ow0 + q; it gathers the gradient columns t of the padded row at ow0 / 2 with
 * q = 2t + j - R (R = 2 * left padding of the copy + the convolution's pad_left), so each
 * broadcast gradient value feeds the 1 or 2 output pixels per kernel column it reaches and
 * nothing is multiplied by inserted zeros. The four column-phase jobs this replaces each
 * wrote every other pixel of a row (a scalar store per element) from 1- or 2-tap
 * sub-kernels. NV * (OWB + 3) + 1 <= 16; OWB even. */
#define FC_DEFINE_CONV_AVX2_TDIAG(NAME, T, VT, LANES, LOAD, STORE, SET1, FMA, STORE_TILE, NV, OWB, R) \
    FC_TARGET_AVX2 static void NAME(FC_CONV_PARAMS(T))                                         \
    {                                                                                          \
        enum { CB = NV * LANES, KW = 3 };                                                      \
        enum { SPAN = (OWB - 1 + R) / 2 + 1 }; /* gradient columns one block reads */          \
        const ptrdiff_t K = C * kh * KW;                                                       \
        T tmp[OWB][CB] __attribute__((aligned(64)));                                           \
        (void)kw; (void)sw; (void)dw; /* 3, 2 and 1 */                                         \
        for (ptrdiff_t cb = 0; cb * CB < cout; ++cb) {                                         \
            const T* wp = wpack + cb * K * CB;                                                 \
            const ptrdiff_t nco = (cout - cb * CB) < CB ? (cout - cb * CB) : CB;               \
            T bv[CB] __attribute__((aligned(64)));                                             \
            for (int l = 0; l < CB; ++l) bv[l] = l < nco ? bias[cb * CB + l] : (T)0;           \
            for (ptrdiff_t oh = 0; oh < OH; ++oh) {                                            \
                for (ptrdiff_t ow0 = 0; ow0 < OW; ow0 += OWB) {                                \
                    VT acc[OWB][NV];                                                           \
                    FC_PRAGMA(GCC unroll 16)                                                   \
                    for (int q = 0; q < OWB; ++q)                                              \
                        FC_PRAGMA(GCC unroll 2)                                                \
                        for (int v = 0; v < NV; ++v) acc[q][v] = LOAD(bv + v * LANES);         \
                    for (ptrdiff_t c = 0; c < C; ++c) {                                        \
                        for (ptrdiff_t i = 0; i < kh; ++i) {                                   \
                            const T* xr = xpad + (c * Hp + oh * sh + i * dh) * Wp + ow0 / 2;   \
                            const T* wr = wp + (c * kh + i) * KW * CB;                         \
                            VT w[KW][NV];                                                      \
                            FC_PRAGMA(GCC unroll 4)                                            \
                            for (int j = 0; j < KW; ++j)                                       \
                                FC_PRAGMA(GCC unroll 2)                                        \
                                for (int v = 0; v < NV; ++v) w[j][v] = LOAD(wr + j * CB + v * LANES); \
                            FC_PRAGMA(GCC unroll 16)                                           \
                            for (int t = 0; t < SPAN; ++t) {                                   \
                                if (2 * t + KW - 1 - R < 0) continue; /* reaches no pixel */   \
                                const VT xb = SET1(xr[t]);                                     \
                                FC_PRAGMA(GCC unroll 4)                                        \
                                for (int j = 0; j < KW; ++j) {                                 \
                                    const int q = 2 * t + j - R;                               \
                                    if (q < 0 || q >= OWB) continue;                           \
                                    FC_PRAGMA(GCC unroll 2)                                    \
                                    for (int v = 0; v < NV; ++v)                               \
                                        acc[q][v] = FMA(xb, w[j][v], acc[q][v]);               \
                                }                                                              \
                            }                                                                  \
                        }                                                                      \
                    }                                                                          \
                    FC_PRAGMA(GCC unroll 16)                                                   \
                    for (int q = 0; q < OWB; ++q)                                              \
                        FC_PRAGMA(GCC unroll 2)                                                \
                        for (int v = 0; v < NV; ++v) STORE(&tmp[q][v * LANES], acc[q][v]);     \
                    const ptrdiff_t nq = (OW - ow0) < OWB ? (OW - ow0) : OWB;                  \
                    STORE_TILE(&tmp[0][0], OWB, NV, nco, nq, out + cb * CB * ocs + oh * ors + ow0 * ops, \
                               ocs, ops);                                                      \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

#define FC_DEFINE_CONV_AVX2_F(NAME, NV, OWB)                                                   \
    FC_DEFINE_CONV_VEC(NAME, FC_TARGET_AVX2, float, __m256, 8, _mm256_loadu_ps, _mm256_store_ps, \
                       _mm256_set1_ps, _mm256_fmadd_ps, fc_store_tile_avx2_f, NV, OWB)
#define FC_DEFINE_CONV_AVX2_D(NAME, NV, OWB)                                                   \
    FC_DEFINE_CONV_VEC(NAME, FC_TARGET_AVX2, double, __m256d, 4, _mm256_loadu_pd,              \
                       _mm256_store_pd, _mm256_set1_pd, _mm256_fmadd_pd, fc_store_tile_d4, NV, OWB)
#define FC_DEFINE_CONV_AVX2_DIAG_F(NAME, NV, OWB, KW, SW)                                      \
    FC_DEFINE_CONV_AVX2_DIAG(NAME, float, __m256, 8, _mm256_loadu_ps, _mm256_store_ps,         \
                             _mm256_set1_ps, _mm256_fmadd_ps, fc_store_tile_avx2_f, NV, OWB, KW, SW)
#define FC_DEFINE_CONV_AVX2_DIAG_D(NAME, NV, OWB, KW, SW)                                      \
    FC_DEFINE_CONV_AVX2_DIAG(NAME, double, __m256d, 4, _mm256_loadu_pd, _mm256_store_pd,       \
                             _mm256_set1_pd, _mm256_fmadd_pd, fc_store_tile_d4, NV, OWB, KW, SW)

#define FC_DEFINE_CONV_AVX2_TDIAG_F(NAME, NV, OWB, R)                                         \
    FC_DEFINE_CONV_AVX2_TDIAG(NAME, float, __m256, 8, _mm256_loadu_ps, _mm256_store_ps,        \
                              _mm256_set1_ps, _mm256_fmadd_ps, fc_store_tile_avx2_f, NV, OWB, R)
#define FC_DEFINE_CONV_AVX2_TDIAG_D(NAME, NV, OWB, R)                                         \
    FC_DEFINE_CONV_AVX2_TDIAG(NAME, double, __m256d, 4, _mm256_loadu_pd, _mm256_store_pd,      \
                              _mm256_set1_pd, _mm256_fmadd_pd, fc_store_tile_d4, NV, OWB, R)

/* Pixel tile (float32), for up to 8 output channels at stride 1 along rows: as the
 * AVX-512 pixel tile (_conv_avx512.h), a vector holds 8 neighbouring output pixels of one
 * channel and each weight is broadcast, so 6 channels (LeNet-5's C1, the 6-channel
 * transposed convolutions of C3's grad_input) fill 6 accumulators instead of 6 of a
 * channel vector's 8 lanes. One output row, one vector of pixels: 8 (or 6, or 4)
 * accumulators hide the FMA latency, and the 16 ymm registers hold them with the input
 * vector. Variants by channel count skip the FMAs of empty channels. */
#define FC_PX2_FOR8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define FC_PX2_FOR6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define FC_PX2_FOR4(X) X(0) X(1) X(2) X(3)
#define FC_PX2_INIT(L) __m256 a##L = _mm256_set1_ps(bv[L]);
#define FC_PX2_FMA(L) a##L = _mm256_fmadd_ps(_mm256_set1_ps(wr[j * 8 + L]), u, a##L);
#define FC_PX2_SAVE(L) _mm256_store_ps(acc[L], a##L);
/* acc[l][q] = bv[l] + the sums of output pixel q (of 8 from x0) of channel l. A function
 * of its own with named accumulators, as fc_pixels_sums_f (gcc spills an array of them). */
#define FC_DEFINE_PX2_SUMS(NAME, FOR)                                                          \
    FC_TARGET_AVX2 __attribute__((noinline)) static void NAME(                                 \
        const float* x0, const float* wp, const float* bv, ptrdiff_t C, ptrdiff_t kh,          \
        ptrdiff_t kw, ptrdiff_t plane, ptrdiff_t row_step, ptrdiff_t dw, float acc[8][8])      \
    {                                                                                          \
        FOR(FC_PX2_INIT)                                                                       \
        for (ptrdiff_t c = 0; c < C; ++c)                                                      \
            for (ptrdiff_t i = 0; i < kh; ++i) {                                               \
                const float* r = x0 + c * plane + i * row_step;                                \
                const float* wr = wp + (c * kh + i) * kw * 8;                                  \
                for (ptrdiff_t j = 0; j < kw; ++j) {                                           \
                    const __m256 u = _mm256_loadu_ps(r + j * dw);                              \
                    FOR(FC_PX2_FMA)                                                            \
                }                                                                              \
            }                                                                                  \
        FOR(FC_PX2_SAVE)                                                                       \
    }
FC_DEFINE_PX2_SUMS(fc_px2_sums8, FC_PX2_FOR8)
FC_DEFINE_PX2_SUMS(fc_px2_sums6, FC_PX2_FOR6)
FC_DEFINE_PX2_SUMS(fc_px2_sums4, FC_PX2_FOR4)

typedef void (*fc_px2_sums_fn)(const float*, const float*, const float*, ptrdiff_t, ptrdiff_t,
                               ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, float[8][8]);

/* max(a, b) lane by lane, NaN propagated from either side (maxps alone returns b when a
 * is NaN). */
FC_TARGET_AVX2 static inline __m256 fc_nanmax8(__m256 a, __m256 b)
{
    return _mm256_blendv_ps(_mm256_max_ps(a, b), a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
}

/* Two output rows at once for the pooled epilogue (up to 6 channels: 2 x 6 accumulators,
 * two input vectors and a broadcast fill 15 of the 16 ymm registers): each broadcast weight
 * feeds both rows, which halves the broadcasts an FMA needs (the loads, not the FMAs, bound
 * the one-row sums on a 6-channel tile). The rows' maximum (row 0 first, NaN propagated as
 * fc_nanmax8) is what acc[l] receives: the vertical half of 2x2 pooling. x1 is row 1's
 * input. */
#define FC_PX2R_INIT(L) __m256 a##L = _mm256_set1_ps(bv[L]), b##L = a##L;
#define FC_PX2R_FMA(L)                                                                         \
    {                                                                                          \
        const __m256 wv = _mm256_set1_ps(wr[j * 8 + L]);                                       \
        a##L = _mm256_fmadd_ps(wv, u, a##L);                                                   \
        b##L = _mm256_fmadd_ps(wv, v, b##L);                                                   \
    }
#define FC_PX2R_SAVE(L) _mm256_store_ps(acc[L], fc_nanmax8(a##L, b##L));
#define FC_DEFINE_PX2_ROWS_MAX(NAME, FOR)                                                      \
    FC_TARGET_AVX2 __attribute__((noinline)) static void NAME(                                 \
        const float* x0, const float* x1, const float* wp, const float* bv, ptrdiff_t C,       \
        ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t plane, ptrdiff_t row_step, ptrdiff_t dw,         \
        float acc[8][8])                                                                       \
    {                                                                                          \
        FOR(FC_PX2R_INIT)                                                                      \
        for (ptrdiff_t c = 0; c < C; ++c)                                                      \
            for (ptrdiff_t i = 0; i < kh; ++i) {                                               \
                const float* r = x0 + c * plane + i * row_step;                                \
                const float* s = x1 + c * plane + i * row_step;                                \
                const float* wr = wp + (c * kh + i) * kw * 8;                                  \
                for (ptrdiff_t j = 0; j < kw; ++j) {                                           \
                    const __m256 u = _mm256_loadu_ps(r + j * dw);                              \
                    const __m256 v = _mm256_loadu_ps(s + j * dw);                              \
                    FOR(FC_PX2R_FMA)                                                           \
                }                                                                              \
            }                                                                                  \
        FOR(FC_PX2R_SAVE)                                                                      \
    }
FC_DEFINE_PX2_ROWS_MAX(fc_px2_rows_max6, FC_PX2_FOR6)
FC_DEFINE_PX2_ROWS_MAX(fc_px2_rows_max4, FC_PX2_FOR4)
typedef void (*fc_px2_rows_max_fn)(const float*, const float*, const float*, const float*, ptrdiff_t,
                                   ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, float[8][8]);

/* The max of each pair of neighbouring pixels of lo:hi (16 pixels -> 8, in order; NaN
 * propagated): the horizontal half of 2x2 pooling. */
FC_TARGET_AVX2 static inline __m256 fc_pair_max8(__m256 lo, __m256 hi)
{
    __m256 ev, od;
    fc_deinterleave8(lo, hi, &ev, &od);
    return fc_nanmax8(ev, od);
}

/* ReLU keeping NaN (0 where v <= 0). */
FC_TARGET_AVX2 static inline __m256 fc_relu8(__m256 v)
{
    return _mm256_andnot_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LE_OQ), v);
}

/* The pixel tile with an epilogue: ReLU (NaN kept) when relu; with pool, ReLU'd 2x2 /
 * stride 2 max pooling of each pair of output rows (OH and OW even), where only the
 * pooled planes are written (channel stride ocs, row stride ors of the pooled output).
 * Without pool the output pixel stride is ops. The input is padded to whole vectors of
 * pixels (forward_tile's owb, 8). */
FC_TARGET_AVX2 static void fc_conv_avx2_pixels_run(FC_CONV_PARAMS(float), int relu, int pool)
{
    enum { CB = 8, LANES = 8 };
    const ptrdiff_t K = C * kh * kw;
    float acc[4][CB][LANES] __attribute__((aligned(32)));
    (void)sw; /* 1 */
    for (ptrdiff_t cb = 0; cb * CB < cout; ++cb) {
        const float* wp = wpack + cb * K * CB;
        const ptrdiff_t nco = (cout - cb * CB) < CB ? (cout - cb * CB) : CB;
        const fc_px2_sums_fn sums = nco > 6 ? fc_px2_sums8 : nco > 4 ? fc_px2_sums6 : fc_px2_sums4;
        const fc_px2_rows_max_fn rows_max = nco > 6 ? NULL : nco > 4 ? fc_px2_rows_max6 : fc_px2_rows_max4;
        float bv[CB];
        for (int l = 0; l < CB; ++l) bv[l] = l < nco ? bias[cb * CB + l] : 0.0f;
        if (!pool) {
            for (ptrdiff_t oh = 0; oh < OH; ++oh)
                for (ptrdiff_t ow0 = 0; ow0 < OW; ow0 += LANES) {
                    sums(xpad + oh * sh * Wp + ow0, wp, bv, C, kh, kw, Hp * Wp, dh * Wp, dw, acc[0]);
                    const ptrdiff_t nq = (OW - ow0) < LANES ? (OW - ow0) : LANES;
                    float* o = out + cb * CB * ocs + oh * ors + ow0 * ops;
                    if (ops == 1) {
                        for (ptrdiff_t l = 0; l < nco; ++l) {
                            __m256 v = _mm256_load_ps(acc[0][l]);
                            if (relu) v = fc_relu8(v);
                            fc_storeu_first8(o + l * ocs, v, nq);
                        }
                    } else {
                        for (ptrdiff_t l = 0; l < nco; ++l)
                            for (ptrdiff_t q = 0; q < nq; ++q) {
                                const float v = acc[0][l][q];
                                o[l * ocs + q * ops] = relu && v <= 0 ? 0.0f : v;
                            }
                    }
                }
            continue;
        }
        /* pooled: 16 pixels of two rows (acc[0], acc[1]: row oh; acc[2], acc[3]: oh + 1)
         * give 8 pooled outputs a channel */
        for (ptrdiff_t oh = 0; oh + 1 < OH; oh += 2)
            for (ptrdiff_t ow0 = 0; ow0 < OW; ow0 += 2 * LANES) {
                const int second = ow0 + LANES < OW; /* the padded input covers it */
                const float* x0 = xpad + oh * sh * Wp + ow0;
                const float* x1 = x0 + sh * Wp;
                if (rows_max) {
                    rows_max(x0, x1, wp, bv, C, kh, kw, Hp * Wp, dh * Wp, dw, acc[0]);
                    if (second) rows_max(x0 + LANES, x1 + LANES, wp, bv, C, kh, kw, Hp * Wp, dh * Wp, dw, acc[1]);
                } else {
                    for (int r = 0; r < 2; ++r) {
                        const float* xr = r ? x1 : x0;
                        sums(xr, wp, bv, C, kh, kw, Hp * Wp, dh * Wp, dw, acc[2 * r]);
                        if (second) sums(xr + LANES, wp, bv, C, kh, kw, Hp * Wp, dh * Wp, dw, acc[2 * r + 1]);
                    }
                    for (ptrdiff_t l = 0; l < nco; ++l) {
                        _mm256_store_ps(acc[0][l], fc_nanmax8(_mm256_load_ps(acc[0][l]), _mm256_load_ps(acc[2][l])));
                        if (second) /* (acc[1], acc[3] hold nothing otherwise) */
                            _mm256_store_ps(acc[1][l], fc_nanmax8(_mm256_load_ps(acc[1][l]), _mm256_load_ps(acc[3][l])));
                    }
                }
                const ptrdiff_t n_out = ((OW - ow0) < 2 * LANES ? (OW - ow0) : 2 * LANES) / 2;
                float* o = out + cb * CB * ocs + (oh / 2) * ors + ow0 / 2;
                for (ptrdiff_t l = 0; l < nco; ++l) {
                    /* acc[0], acc[1]: the rows' maximum of pixels ow0.., ow0 + 8.. */
                    const __m256 lo = _mm256_load_ps(acc[0][l]);
                    const __m256 hi = second ? _mm256_load_ps(acc[1][l]) : lo;
                    __m256 v = fc_pair_max8(lo, hi);
                    if (relu) v = fc_relu8(v);
                    fc_storeu_first8(o + l * ocs, v, n_out);
                }
            }
    }
}

/* The pixel tile in the tile table (no epilogue; the caller's epilogue pass follows). */
FC_TARGET_AVX2 static void fc_conv_avx2_pixels_f(FC_CONV_PARAMS(float))
{
    fc_conv_avx2_pixels_run(FC_CONV_ARGS, 0, 0);
}

/* 2x2 / stride 2 max pooling of one plane without indices (inference), NaN propagated,
 * 8 outputs a step: the AVX2 counterpart of fc_plan_max_pool_2x2_f. */
FC_TARGET_AVX2 __attribute__((unused)) static void fc_max_pool_2x2_avx2_f(const float* x, ptrdiff_t W, float* out,
                                                  ptrdiff_t OH, ptrdiff_t OW)
{
    for (ptrdiff_t oh = 0; oh < OH; ++oh) {
        const float* x0 = x + 2 * oh * W;
        const float* x1 = x0 + W;
        ptrdiff_t o0 = 0;
        for (; o0 + 8 <= OW; o0 += 8) {
            const __m256 lo = fc_nanmax8(_mm256_loadu_ps(x0 + 2 * o0), _mm256_loadu_ps(x1 + 2 * o0));
            const __m256 hi = fc_nanmax8(_mm256_loadu_ps(x0 + 2 * o0 + 8), _mm256_loadu_ps(x1 + 2 * o0 + 8));
            _mm256_storeu_ps(out + oh * OW + o0, fc_pair_max8(lo, hi));
        }
        if (o0 < OW) { /* the last OW % 8 outputs: partial loads (nothing past the row is
                        * read) and store, the same comparisons (LeNet-5's 10 x 10 planes
                        * are all tail) */
            const ptrdiff_t n = 2 * (OW - o0);
            const __m256 lo = fc_nanmax8(fc_loadu_first8(x0 + 2 * o0, n), fc_loadu_first8(x1 + 2 * o0, n));
            const __m256 hi = fc_nanmax8(fc_loadu_first8(x0 + 2 * o0 + 8, n - 8),
                                         fc_loadu_first8(x1 + 2 * o0 + 8, n - 8));
            fc_storeu_first8(out + oh * OW + o0, fc_pair_max8(lo, hi), OW - o0);
        }
    }
}

/* grad_weight for few output channels at stride 1 along rows, the pixel way, as
 * _conv_avx512.h's fc_wgrad_pixels_block: gw[co][c][i][j] = sum over pixels of
 * gy[co][p] * xpad[c][row(p) + i*dh][col(p) + j*dw], a vector of 8 (float32) or 4 (float64)
 * neighbouring pixels of a row per step. Blocks of 2 output channels x 5 kernel columns: 10
 * accumulators, 2 gy vectors and the xpad vector of one column in flight (13-14 of the 16
 * ymm registers; 4 x 5 as on AVX-512 would spill). The lanes are added, unreduced, to the
 * first LANES of vpart[co][c][i][j][16] (the caller sums the 16 and then the threads in a
 * fixed order). OW is a whole number of vectors: the caller copies gy into rows padded
 * with zeros to that width (pad_rows in _direct.pyx), and xpad's rows are wide enough for
 * it, so every load is a full one (the partial loads of the last vector of a row cost as
 * much as the row's other FMAs at OW 28). The padded lanes multiply gy's zeros by real
 * input columns, which may be Inf or NaN: the last vector of each row (when ow_valid < OW)
 * runs as a block of its own whose padded lanes are masked off before they are added.
 * Partial channel / column blocks
 * repeat their first channel / column and keep only the valid sums. On the portable
 * 8-channel tile, lenet_c1's 6-channel grad_weight ran at ~9 GFLOP/s on one AMD Zen 1 core. */
#define FC_WPX2_CJ(X, A) X(0, 0, A) X(1, 0, A) X(0, 1, A) X(1, 1, A) X(0, 2, A) X(1, 2, A)   \
    X(0, 3, A) X(1, 3, A) X(0, 4, A) X(1, 4, A)
#define FC_WPX2_J(X, A, B) X(0, A, B) X(1, A, B) X(2, A, B) X(3, A, B) X(4, A, B)
/* One kernel column: its xpad vector, loaded just before its two FMAs (10 accumulators, 2
 * gy vectors and one column's vector fit the 16 registers; with the five columns' loads
 * first one accumulator spilled, a store-to-load chain through every iteration). */
#define FC_WPX2_COLUMN(J, LOADU, FMA)                                                               \
    {                                                                                          \
        __typeof__(g0) u = LOADU(xr + ow0 + xo[J]);                                            \
        __asm__("" : "+x"(u)); /* one load for both FMAs, not one folded into each */           \
        s0##J = FMA(g0, u, s0##J);                                                             \
        s1##J = FMA(g1, u, s1##J);                                                             \
    }
#define FC_WPX2_ZERO(C, J, VT) VT s##C##J = (VT){0};
#define FC_WPX2_SAVE(C, J, ADD_TO)                                                             \
    if (C < nco && J < njc)                                                                    \
        ADD_TO(vpart + ((((co0 + C) * Cin + c) * kh + i) * kw + j0 + J) * 16, s##C##J, valid);
/* The sums of pixel vectors ow_begin, ow_begin + LANES, ... < ow_end of every row; only
 * their first `valid` lanes are added to vpart. */
#define FC_DEFINE_WPX2_BLOCK(NAME, T, VT, LANES, LOADU, FMA, ADD_TO)                           \
    FC_TARGET_AVX2 __attribute__((noinline)) static void NAME(                                 \
        const T* xpad, ptrdiff_t Cin, ptrdiff_t Hp, ptrdiff_t Wp, const T* gy, ptrdiff_t cog,  \
        T* vpart, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,        \
        ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t c, ptrdiff_t i, ptrdiff_t co0, ptrdiff_t j0,     \
        ptrdiff_t ow_begin, ptrdiff_t ow_end, ptrdiff_t valid)                                 \
    {                                                                                          \
        const ptrdiff_t nco = cog - co0 < 2 ? cog - co0 : 2, njc = kw - j0 < 5 ? kw - j0 : 5;  \
        const T* p0 = gy + co0 * OH * OW;                                                      \
        const T* p1 = gy + (co0 + (nco > 1 ? 1 : 0)) * OH * OW;                                \
        ptrdiff_t xo[5];                                                                       \
        for (int J = 0; J < 5; ++J) xo[J] = (j0 + (J < njc ? J : 0)) * dw;                     \
        FC_WPX2_CJ(FC_WPX2_ZERO, VT)                                                           \
        for (ptrdiff_t oh = 0; oh < OH; ++oh) {                                                \
            const T* xr = xpad + (c * Hp + oh * sh + i * dh) * Wp;                             \
            const T* q0 = p0 + oh * OW;                                                        \
            const T* q1 = p1 + oh * OW;                                                        \
            for (ptrdiff_t ow0 = ow_begin; ow0 < ow_end; ow0 += LANES) {                       \
                VT g0 = LOADU(q0 + ow0), g1 = LOADU(q1 + ow0);                                 \
                FC_WPX2_J(FC_WPX2_COLUMN, LOADU, FMA)                                           \
            }                                                                                  \
        }                                                                                      \
        FC_WPX2_CJ(FC_WPX2_SAVE, ADD_TO)                                                       \
    }
/* d[0:LANES] += s, lanes from `valid` on cleared first */
FC_TARGET_AVX2 static inline void fc_wpx2_add_to_f(float* d, __m256 s, ptrdiff_t valid)
{
    if (valid < 8)
        s = _mm256_and_ps(s, _mm256_cmp_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7),
                                           _mm256_set1_ps((float)valid), _CMP_LT_OQ));
    _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), s));
}
FC_TARGET_AVX2 static inline void fc_wpx2_add_to_d(double* d, __m256d s, ptrdiff_t valid)
{
    if (valid < 4)
        s = _mm256_and_pd(s, _mm256_cmp_pd(_mm256_setr_pd(0, 1, 2, 3),
                                           _mm256_set1_pd((double)valid), _CMP_LT_OQ));
    _mm256_storeu_pd(d, _mm256_add_pd(_mm256_loadu_pd(d), s));
}
FC_DEFINE_WPX2_BLOCK(fc_wgrad_pixels_block_avx2_f, float, __m256, 8, _mm256_loadu_ps,
                     _mm256_fmadd_ps, fc_wpx2_add_to_f)
FC_DEFINE_WPX2_BLOCK(fc_wgrad_pixels_block_avx2_d, double, __m256d, 4, _mm256_loadu_pd,
                     _mm256_fmadd_pd, fc_wpx2_add_to_d)

/* Every block of one image and group: vpart[cog][Cin][kh][kw][16] += its sums. OW: gy's
 * padded row width (whole vectors); ow_valid: the real one. */
#define FC_DEFINE_WPX2(NAME, BLOCK, T, LANES)                                                  \
    FC_TARGET_AVX2 static void NAME(const T* xpad, ptrdiff_t Cin, ptrdiff_t Hp, ptrdiff_t Wp,  \
                                    const T* gy, ptrdiff_t cog, T* vpart, ptrdiff_t OH,        \
                                    ptrdiff_t OW, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,    \
                                    ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t ow_valid)            \
    {                                                                                          \
        const ptrdiff_t full = ow_valid / LANES * LANES; /* vectors without padded lanes */    \
        for (ptrdiff_t c = 0; c < Cin; ++c)                                                    \
            for (ptrdiff_t i = 0; i < kh; ++i)                                                 \
                for (ptrdiff_t co0 = 0; co0 < cog; co0 += 2)                                   \
                    for (ptrdiff_t j0 = 0; j0 < kw; j0 += 5) {                                 \
                        if (full > 0)                                                          \
                            BLOCK(xpad, Cin, Hp, Wp, gy, cog, vpart, OH, OW, kh, kw, sh, dh,   \
                                  dw, c, i, co0, j0, 0, full, LANES);                          \
                        if (full < ow_valid)                                                   \
                            BLOCK(xpad, Cin, Hp, Wp, gy, cog, vpart, OH, OW, kh, kw, sh, dh,   \
                                  dw, c, i, co0, j0, full, full + LANES, ow_valid - full);     \
                    }                                                                          \
    }
FC_DEFINE_WPX2(fc_wgrad_pixels_avx2_f, fc_wgrad_pixels_block_avx2_f, float, 8)
FC_DEFINE_WPX2(fc_wgrad_pixels_avx2_d, fc_wgrad_pixels_block_avx2_d, double, 4)

/* grad_bias of one image and group: bias[co] += sum of gy[co][0:P] (vector sums in the
 * input's type within an image, as fc_channel_sums_f, then float64 across images). */
#define FC_DEFINE_CHANNEL_SUMS_AVX2(NAME, T, VT, LANES, LOADU, LOADN, ADD, ZERO, STOREU)       \
    FC_TARGET_AVX2 static void NAME(const T* gy, ptrdiff_t cog, ptrdiff_t P, double* bias)     \
    {                                                                                          \
        for (ptrdiff_t co = 0; co < cog; ++co) {                                               \
            const T* g = gy + co * P;                                                          \
            VT a = ZERO(), b = ZERO();                                                         \
            ptrdiff_t p = 0;                                                                   \
            for (; p + 2 * LANES <= P; p += 2 * LANES) {                                       \
                a = ADD(a, LOADU(g + p));                                                      \
                b = ADD(b, LOADU(g + p + LANES));                                              \
            }                                                                                  \
            for (; p < P; p += LANES) a = ADD(a, LOADN(g + p, P - p));                         \
            T lanes[LANES];                                                                    \
            STOREU(lanes, ADD(a, b));                                                          \
            T sum = 0;                                                                         \
            for (int l = 0; l < LANES; ++l) sum += lanes[l];                                   \
            bias[co] += (double)sum;                                                           \
        }                                                                                      \
    }
FC_DEFINE_CHANNEL_SUMS_AVX2(fc_channel_sums_avx2_f, float, __m256, 8, _mm256_loadu_ps,
                            fc_loadu_first8, _mm256_add_ps, _mm256_setzero_ps, _mm256_storeu_ps)
FC_DEFINE_CHANNEL_SUMS_AVX2(fc_channel_sums_avx2_d, double, __m256d, 4, _mm256_loadu_pd,
                            fc_loadu_first4d, _mm256_add_pd, _mm256_setzero_pd, _mm256_storeu_pd)

/* The tile table: index, kind, (NV, OWB, KW, SW). General tiles: two vectors of channels x
 * 6, 5 or 4 pixels (12, 10, 8 accumulators), one vector x 8 or 7; diagonal tiles at stride
 * 1, one vector of channels, x 8 or 7 pixels for 3-wide kernels, x 10, 8 or 7 for 5-wide
 * ones; at stride 2 (3-wide), one vector x 8 or 7. Widths 7,
 * 14, 28 and 56 split exactly. Measured on one AMD EPYC Zen 1 core (AVX2, 2 FMA pipes of
 * 128 bits), single forward kernel calls, float32, us (float64 alike):
 *   16->16 3x3 at 28^2: portable 136, 2x6 126, diagonal 1x7 116 (2x4 120, 1x12 142);
 *   64->64 3x3 at 7^2: portable 210, 2x4 128, diagonal 1x7 104 (2x4 103);
 *   64->64 3x3 at 56^2: portable 7631, 2x6 6691, diagonal 1x8 6702 (2x4 6547);
 *   32->64 3x3 stride 2 to 7^2: portable 107, 2x4 74; lenet_c3 (5x5 to 10^2, 8 images):
 *   portable 176, diagonal 1x10 122; lenet_c1: portable 168, diagonal 1x8 103;
 *   stride 2, 32->64 to 7^2: general 2x4 72, diagonal 1x7 58 (two vectors x 4: 69);
 *   16->32 to 14^2: general 2x5 73, diagonal 1x7 70.
 * Wider one-vector tiles (12 or 10 pixels with a 3-wide kernel, 12 or 10 general) need
 * 14-16 registers and spilled (1.2-1.8x slower); two-vector diagonal tiles were no faster
 * than one-vector ones (within 2 % at float32, slower at float64). */
#define FC_AVX2_TILES(X)                                                                       \
    X(0, GEN, 2, 6, 0, 0) X(1, GEN, 2, 5, 0, 0) X(2, GEN, 2, 4, 0, 0) X(3, GEN, 1, 8, 0, 0)    \
    X(4, GEN, 1, 7, 0, 0)                                                                      \
    X(5, DIAG, 1, 8, 3, 1) X(6, DIAG, 1, 7, 3, 1)                                              \
    X(7, DIAG, 1, 10, 5, 1) X(8, DIAG, 1, 8, 5, 1) X(9, DIAG, 1, 7, 5, 1)                      \
    X(10, DIAG, 1, 8, 3, 2) X(11, DIAG, 1, 7, 3, 2)

#define FC_AVX2_DEFINE_GEN(I, NV, OWB, KW, SW)                                                 \
    FC_DEFINE_CONV_AVX2_F(fc_conv_avx2_f##I, NV, OWB)                                          \
    FC_DEFINE_CONV_AVX2_D(fc_conv_avx2_d##I, NV, OWB)
#define FC_AVX2_DEFINE_DIAG(I, NV, OWB, KW, SW)                                                \
    FC_DEFINE_CONV_AVX2_DIAG_F(fc_conv_avx2_f##I, NV, OWB, KW, SW)                             \
    FC_DEFINE_CONV_AVX2_DIAG_D(fc_conv_avx2_d##I, NV, OWB, KW, SW)
#define FC_AVX2_DEFINE(I, KIND, NV, OWB, KW, SW) FC_AVX2_DEFINE_##KIND(I, NV, OWB, KW, SW)
FC_AVX2_TILES(FC_AVX2_DEFINE)

/* grad_weight tiles: _conv_avx512.h's whole-kernel tile at one vector of channels (8
 * float32, 4 float64): a 3x3 kernel's 9 accumulators, each gradient vector loaded once per
 * pixel and each of the 9 input values broadcast once. Index -> (NV, KH, KW), at
 * FC_AVX2_TILE_BASE + index. */
#define FC_AVX2_WGRAD_TILES(X) X(0, 1, 3, 3)
#define FC_AVX2_DEFINE_WGRAD(I, NV, KH, KW)                                                    \
    FC_DEFINE_WGRAD_VEC(fc_wgrad_avx2_f##I, FC_TARGET_AVX2, float, __m256, 8, _mm256_loadu_ps, \
                        _mm256_storeu_ps, _mm256_set1_ps, _mm256_fmadd_ps, NV, KH, KW)         \
    FC_DEFINE_WGRAD_VEC(fc_wgrad_avx2_d##I, FC_TARGET_AVX2, double, __m256d, 4,                \
                        _mm256_loadu_pd, _mm256_storeu_pd, _mm256_set1_pd, _mm256_fmadd_pd,    \
                        NV, KH, KW)
FC_AVX2_WGRAD_TILES(FC_AVX2_DEFINE_WGRAD)
#define FC_AVX2_WGRAD_ROW(I, NV, KH, KW) {NV, KH, KW},
static const int fc_avx2_wgrad_tiles[][3] = {FC_AVX2_WGRAD_TILES(FC_AVX2_WGRAD_ROW)};
#define FC_AVX2_N_WGRAD_TILES ((int)(sizeof fc_avx2_wgrad_tiles / sizeof fc_avx2_wgrad_tiles[0]))
#define FC_AVX2_WGRAD_CASE_F(I, NV, KH, KW) case I: fc_wgrad_avx2_f##I(FC_WGRAD_VEC_ARGS); break;
#define FC_AVX2_WGRAD_CASE_D(I, NV, KH, KW) case I: fc_wgrad_avx2_d##I(FC_WGRAD_VEC_ARGS); break;
#define FC_DEFINE_WGRAD_AVX2_DISPATCH(FN, T, CASE)                                             \
    static void FN(FC_WGRAD_VEC_PARAMS(T))                                                     \
    {                                                                                          \
        switch (tile) {                                                                        \
            FC_AVX2_WGRAD_TILES(CASE)                                                          \
            default: break;                                                                    \
        }                                                                                      \
    }
FC_DEFINE_WGRAD_AVX2_DISPATCH(fc_wgrad_avx2_f, float, FC_AVX2_WGRAD_CASE_F)
FC_DEFINE_WGRAD_AVX2_DISPATCH(fc_wgrad_avx2_d, double, FC_AVX2_WGRAD_CASE_D)

/* 4 x 4 transpose of r[0..3] (rows of 4 doubles) into columns, in registers. */
FC_TARGET_AVX2 static inline void fc_transpose4_pd(__m256d r[4])
{
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

/* grad_weight's channel-minor copy of one image's gradient: dst[p * ld + k] = src[k * P + p]
 * for k < cog, 0 for cog <= k < ld (ld a whole number of vectors: the channel blocks are),
 * by LANES x LANES blocks transposed in registers. The element-by-element copy it replaces
 * took a fifth of the blocked grad_weight's time (16->16 3x3 at 28^2, AMD Zen 3). */
#define FC_DEFINE_CHANNEL_MINOR_AVX2(NAME, T, VT, LANES, LOADU, STOREU, ZERO, TRANSPOSE)      \
    FC_TARGET_AVX2 static void NAME(const T* src, ptrdiff_t cog, ptrdiff_t P, ptrdiff_t ld,   \
                                    T* dst)                                                    \
    {                                                                                          \
        ptrdiff_t p = 0;                                                                       \
        for (; p + LANES <= P; p += LANES)                                                     \
            for (ptrdiff_t k = 0; k < ld; k += LANES) {                                        \
                VT r[LANES];                                                                   \
                FC_PRAGMA(GCC unroll 8)                                                        \
                for (int l = 0; l < LANES; ++l)                                                \
                    r[l] = k + l < cog ? LOADU(src + (k + l) * P + p) : ZERO();                \
                TRANSPOSE(r);                                                                  \
                FC_PRAGMA(GCC unroll 8)                                                        \
                for (int l = 0; l < LANES; ++l) STOREU(dst + (p + l) * ld + k, r[l]);          \
            }                                                                                  \
        for (; p < P; ++p)                                                                     \
            for (ptrdiff_t k = 0; k < ld; ++k) dst[p * ld + k] = k < cog ? src[k * P + p] : (T)0; \
    }
FC_DEFINE_CHANNEL_MINOR_AVX2(fc_channel_minor_avx2_f, float, __m256, 8, _mm256_loadu_ps,
                             _mm256_storeu_ps, _mm256_setzero_ps, fc_transpose8_ps)
FC_DEFINE_CHANNEL_MINOR_AVX2(fc_channel_minor_avx2_d, double, __m256d, 4, _mm256_loadu_pd,
                             _mm256_storeu_pd, _mm256_setzero_pd, fc_transpose4_pd)

/* The transposed tiles (grad_input of 3-wide kernels at column stride 2), index -> (NV,
 * OWB, R), at FC_AVX2_TRANSPOSED_BASE + index: one vector of channels x 8, 10 or 12
 * output pixels, for R 2 (pad_left 0 or 2) and 3 (pad_left 1). */
#define FC_AVX2_TRANSPOSED_BASE 32
#define FC_AVX2_TTILES(X)                                                                      \
    X(0, 1, 12, 3) X(1, 1, 10, 3) X(2, 1, 8, 3) X(3, 1, 12, 2) X(4, 1, 10, 2) X(5, 1, 8, 2)
#define FC_AVX2_DEFINE_T(I, NV, OWB, R)                                                        \
    FC_DEFINE_CONV_AVX2_TDIAG_F(fc_conv_avx2_tf##I, NV, OWB, R)                                \
    FC_DEFINE_CONV_AVX2_TDIAG_D(fc_conv_avx2_td##I, NV, OWB, R)
FC_AVX2_TTILES(FC_AVX2_DEFINE_T)
#define FC_AVX2_TROW(I, NV, OWB, R) {NV, OWB, R},
static const int fc_avx2_ttiles[][3] = {FC_AVX2_TTILES(FC_AVX2_TROW)};
#define FC_AVX2_N_TTILES ((int)(sizeof fc_avx2_ttiles / sizeof fc_avx2_ttiles[0]))
#define FC_AVX2_TCASE_F(I, NV, OWB, R)                                                         \
    case FC_AVX2_TRANSPOSED_BASE + I: fc_conv_avx2_tf##I(FC_CONV_ARGS); break;
#define FC_AVX2_TCASE_D(I, NV, OWB, R)                                                         \
    case FC_AVX2_TRANSPOSED_BASE + I: fc_conv_avx2_td##I(FC_CONV_ARGS); break;

#define FC_AVX2_ROW(I, KIND, NV, OWB, KW, SW) {NV, OWB, KW, SW},
static const int fc_avx2_tiles[][4] = {FC_AVX2_TILES(FC_AVX2_ROW)};
#define FC_AVX2_N_TILES ((int)(sizeof fc_avx2_tiles / sizeof fc_avx2_tiles[0]))

#define FC_AVX2_CASE_F(I, KIND, NV, OWB, KW, SW)                                               \
    case I: fc_conv_avx2_f##I(FC_CONV_ARGS); break;
#define FC_AVX2_CASE_D(I, KIND, NV, OWB, KW, SW)                                               \
    case I: fc_conv_avx2_d##I(FC_CONV_ARGS); break;
/* The pixel tile's index: after the table's. */
#define FC_AVX2_PIXEL_TILE FC_AVX2_N_TILES
static void fc_conv_avx2_f(int tile, FC_CONV_PARAMS(float))
{
    if (tile == FC_AVX2_PIXEL_TILE) {
        fc_conv_avx2_pixels_f(FC_CONV_ARGS);
        return;
    }
    switch (tile) {
        FC_AVX2_TILES(FC_AVX2_CASE_F)
        FC_AVX2_TTILES(FC_AVX2_TCASE_F)
        default: break;
    }
}
static void fc_conv_avx2_d(int tile, FC_CONV_PARAMS(double))
{
    switch (tile) {
        FC_AVX2_TILES(FC_AVX2_CASE_D)
        FC_AVX2_TTILES(FC_AVX2_TCASE_D)
        default: break;
    }
}

#else /* no x86 target attributes: forward_tile never picks an AVX2 tile */
#define FC_STUB_WPX2(NAME, T)                                                                  \
    static void NAME(const T* xpad, ptrdiff_t Cin, ptrdiff_t Hp, ptrdiff_t Wp, const T* gy,    \
                     ptrdiff_t cog, T* vpart, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t kh,        \
                     ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t dh, ptrdiff_t dw,                   \
                     ptrdiff_t ow_valid) {}
FC_STUB_WPX2(fc_wgrad_pixels_avx2_f, float)
FC_STUB_WPX2(fc_wgrad_pixels_avx2_d, double)
static void fc_channel_sums_avx2_f(const float* gy, ptrdiff_t cog, ptrdiff_t P, double* bias) {}
static void fc_channel_sums_avx2_d(const double* gy, ptrdiff_t cog, ptrdiff_t P, double* bias) {}
#define FC_AVX2_N_TILES 1
#define FC_AVX2_PIXEL_TILE 1
static const int fc_avx2_tiles[1][4] = {{1, 1, 0, 0}};
#define FC_AVX2_TRANSPOSED_BASE 32
#define FC_AVX2_N_TTILES 1
static const int fc_avx2_ttiles[1][3] = {{1, 8, 3}};
static void fc_conv_avx2_pixels_run(FC_CONV_PARAMS(float), int relu, int pool) {}
static void fc_max_pool_2x2_avx2_f(const float* x, ptrdiff_t W, float* out, ptrdiff_t OH,
                                   ptrdiff_t OW) {}
static void fc_conv_avx2_f(int tile, FC_CONV_PARAMS(float)) {}
static void fc_conv_avx2_d(int tile, FC_CONV_PARAMS(double)) {}
#define FC_AVX2_N_WGRAD_TILES 1
static const int fc_avx2_wgrad_tiles[1][3] = {{1, 1, 1}};
static void fc_wgrad_avx2_f(FC_WGRAD_VEC_PARAMS(float)) {}
static void fc_wgrad_avx2_d(FC_WGRAD_VEC_PARAMS(double)) {}
static void fc_channel_minor_avx2_f(const float* src, ptrdiff_t cog, ptrdiff_t P, ptrdiff_t ld,
                                    float* dst) {}
static void fc_channel_minor_avx2_d(const double* src, ptrdiff_t cog, ptrdiff_t P,
                                    ptrdiff_t ld, double* dst) {}
#endif

#endif
