/* AVX-512 register tiles for the direct convolution (forward and grad_weight).
 *
 * Same data layout and contract as _conv_blocked.h, but the tiles are sized for the 32
 * zmm registers: about 20-28 independent accumulators keep both FMA pipes busy (fewer
 * leave them waiting on the 4-cycle FMA latency; more spill). Measured on one Zen 5
 * core, vgg_3x3 per image: the portable 16 x 6 tile 142 GFLOP/s, the 32 x 14 tile below
 * 252 GFLOP/s, against an FMA-only loop's 270.
 *
 * The forward output is addressed through element strides as in _conv_blocked.h.
 *
 * Forward tile: NV vectors of output channels (CB = NV * lanes) x OWB output pixels of
 * one row. grad_weight tile: NV vectors of output channels x the whole KH x KW
 * kernel of one input channel, streaming a chunk of output pixels.
 *
 * Compiled with a target attribute and chosen at run time (fc_have_avx512, in
 * _multiversion.h), so the default build stays portable; where the compiler lacks the
 * attribute (or not on x86-64) the functions are stubs never called, and callers use
 * _conv_blocked.h.
 */
#ifndef FASTCONV_CONV_AVX512_H
#define FASTCONV_CONV_AVX512_H
#include <stddef.h>
#include "_conv_blocked.h"
#include "_multiversion.h"

/* The parameters of a vector grad_weight tile (kernel size fixed by the tile) and the
 * matching argument list: every tile, its dispatcher and its stub take these. */
#define FC_WGRAD_VEC_PARAMS(T)                                                                 \
    int tile, const T *xpad, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp, const T *gyt,            \
        ptrdiff_t n_blocks, T *gw, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t sh, ptrdiff_t sw,     \
        ptrdiff_t dh, ptrdiff_t dw
#define FC_WGRAD_VEC_ARGS xpad, C, Hp, Wp, gyt, n_blocks, gw, OH, OW, sh, sw, dh, dw

#if FC_HAVE_AVX512

/* Writing a finished tile: tmp[q][c] (owb pixels x nv*LANES channels, row-major) goes to
 * o[c*ocs + q*ops] for c < nco, q < nq. Scalar, element by element, this cost a fifth of
 * lenet_c1's forward pass and a tenth of resnet_s2's grad_input phases; for float at pixel
 * strides 1 and 2 each block of 16 channels is transposed in registers instead (16 x 16,
 * four shuffle stages) and written with one or two masked stores per channel. */
#define FC_DEFINE_STORE_TILE_SCALAR(NAME, T, LANES)                                            \
    static inline void NAME(const T* tmp, int owb, int nv, ptrdiff_t nco, ptrdiff_t nq, T* o,  \
                            ptrdiff_t ocs, ptrdiff_t ops)                                      \
    {                                                                                          \
        const int cb = LANES * nv;                                                             \
        (void)owb;                                                                             \
        for (ptrdiff_t l = 0; l < nco; ++l)                                                    \
            for (ptrdiff_t q = 0; q < nq; ++q) o[l * ocs + q * ops] = tmp[q * cb + l];         \
    }
FC_DEFINE_STORE_TILE_SCALAR(fc_store_tile_scalar_f, float, 16)
FC_DEFINE_STORE_TILE_SCALAR(fc_store_tile_d, double, 8)

FC_TARGET_AVX512 static inline void fc_transpose16_ps(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* r[4i + j], 128-bit lane k: column 4k + j of rows 4i..4i+3 */
    for (int i = 0; i < 4; ++i) {
        r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    /* gather lane k of r[j], r[4+j], r[8+j], r[12+j] into column 4k + j */
    for (int j = 0; j < 4; ++j) {
        const __m512 s0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
        const __m512 s1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
        const __m512 s2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
        const __m512 s3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
        t[j] = _mm512_shuffle_f32x4(s0, s2, 0x88);
        t[4 + j] = _mm512_shuffle_f32x4(s1, s3, 0x88);
        t[8 + j] = _mm512_shuffle_f32x4(s0, s2, 0xDD);
        t[12 + j] = _mm512_shuffle_f32x4(s1, s3, 0xDD);
    }
    for (int i = 0; i < 16; ++i) r[i] = t[i];
}

FC_TARGET_AVX512 static inline void fc_store_tile_f(const float* tmp, int owb, int nv,
                                                    ptrdiff_t nco, ptrdiff_t nq, float* o,
                                                    ptrdiff_t ocs, ptrdiff_t ops)
{
    if (ops != 1 && ops != 2) {
        fc_store_tile_scalar_f(tmp, owb, nv, nco, nq, o, ocs, ops);
        return;
    }
    const int cb = 16 * nv;
    const __mmask16 m1 = (__mmask16)((1u << nq) - 1u); /* nq <= owb <= 16 */
    /* stride 2: pixels 0-7 to even lanes of the first 16 floats, 8-15 of the next 16 */
    const __m512i spread_lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512i spread_hi = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
                                                14, 14, 15, 15);
    const unsigned even_lo = 0x5555u & ((1u << (2 * (nq < 8 ? nq : 8))) - 1u);
    const unsigned even_hi = nq > 8 ? 0x5555u & ((1u << (2 * (nq - 8))) - 1u) : 0u;
    for (int v = 0; v < nv && v * 16 < nco; ++v) {
        __m512 r[16];
        for (int q = 0; q < 16; ++q)
            r[q] = q < owb ? _mm512_load_ps(tmp + q * cb + v * 16) : _mm512_setzero_ps();
        fc_transpose16_ps(r);
        const ptrdiff_t nl = (nco - v * 16) < 16 ? (nco - v * 16) : 16;
        float* ov = o + v * 16 * ocs;
        if (ops == 1) {
            for (ptrdiff_t l = 0; l < nl; ++l) _mm512_mask_storeu_ps(ov + l * ocs, m1, r[l]);
        } else {
            for (ptrdiff_t l = 0; l < nl; ++l) {
                _mm512_mask_storeu_ps(ov + l * ocs, (__mmask16)even_lo,
                                      _mm512_permutexvar_ps(spread_lo, r[l]));
                if (even_hi)
                    _mm512_mask_storeu_ps(ov + l * ocs + 16, (__mmask16)even_hi,
                                          _mm512_permutexvar_ps(spread_hi, r[l]));
            }
        }
    }
}

/* TARGET: the function's target attribute (also used by _conv_avx2.h's tiles); VT: vector
 * type; LANES; LOAD/STORE/SET1/FMA: the intrinsics of that type. */
#define FC_DEFINE_CONV_VEC(NAME, TARGET, T, VT, LANES, LOAD, STORE, SET1, FMA, STORE_TILE, NV, OWB) \
    TARGET static void NAME(FC_CONV_PARAMS(T))                                                 \
    {                                                                                          \
        enum { CB = NV * LANES };                                                              \
        const ptrdiff_t K = C * kh * kw;                                                       \
        T tmp[OWB][CB] __attribute__((aligned(64)));                                           \
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
                        FC_PRAGMA(GCC unroll 4)                                                \
                        for (int v = 0; v < NV; ++v) acc[q][v] = LOAD(bv + v * LANES);         \
                    for (ptrdiff_t c = 0; c < C; ++c) {                                        \
                        for (ptrdiff_t i = 0; i < kh; ++i) {                                   \
                            const T* xr = xpad + (c * Hp + oh * sh + i * dh) * Wp + ow0 * sw;  \
                            const T* wr = wp + (c * kh + i) * kw * CB;                         \
                            for (ptrdiff_t j = 0; j < kw; ++j) {                               \
                                const T* xj = xr + j * dw;                                     \
                                VT w[NV];                                                      \
                                FC_PRAGMA(GCC unroll 4)                                        \
                                for (int v = 0; v < NV; ++v) w[v] = LOAD(wr + j * CB + v * LANES); \
                                FC_PRAGMA(GCC unroll 16)                                       \
                                for (int q = 0; q < OWB; ++q) {                                \
                                    const VT xb = SET1(xj[q * sw]);                            \
                                    FC_PRAGMA(GCC unroll 4)                                    \
                                    for (int v = 0; v < NV; ++v)                               \
                                        acc[q][v] = FMA(xb, w[v], acc[q][v]);                  \
                                }                                                              \
                            }                                                                  \
                        }                                                                      \
                    }                                                                          \
                    FC_PRAGMA(GCC unroll 16)                                                   \
                    for (int q = 0; q < OWB; ++q)                                              \
                        FC_PRAGMA(GCC unroll 4)                                                \
                        for (int v = 0; v < NV; ++v) STORE(&tmp[q][v * LANES], acc[q][v]);     \
                    /* the last pixel block may overrun OW: store what exists */               \
                    const ptrdiff_t nq = (OW - ow0) < OWB ? (OW - ow0) : OWB;                  \
                    STORE_TILE(&tmp[0][0], OWB, NV, nco, nq, out + cb * CB * ocs + oh * ors + ow0 * ops, \
                               ocs, ops);                                                      \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

#define FC_DEFINE_CONV_AVX512_F(NAME, NV, OWB)                                                 \
    FC_DEFINE_CONV_VEC(NAME, FC_TARGET_AVX512, float, __m512, 16, _mm512_loadu_ps,             \
                       _mm512_store_ps, _mm512_set1_ps, _mm512_fmadd_ps, fc_store_tile_f, NV, OWB)
#define FC_DEFINE_CONV_AVX512_D(NAME, NV, OWB)                                                 \
    FC_DEFINE_CONV_VEC(NAME, FC_TARGET_AVX512, double, __m512d, 8, _mm512_loadu_pd,            \
                       _mm512_store_pd, _mm512_set1_pd, _mm512_fmadd_pd, fc_store_tile_d, NV, OWB)

/* One vector of channels, stride 1, no dilation, kernel width KW known at compile time:
 * each input row segment a tile needs (OWB + KW - 1 values) is broadcast once per (c, i)
 * and reused by all KW kernel columns from registers, instead of OWB broadcasts per
 * column. Loads per FMA fall from (OWB + 1) / OWB to about (OWB + 2*KW) / (OWB*KW):
 * lenet_c3 (KW 5) went from 198 to 229 GFLOP/s on one core, lenet_c1 from 56 to 76. */
#define FC_DEFINE_CONV_AVX512_ROWS(NAME, T, VT, LANES, LOAD, STORE, SET1, FMA, STORE_TILE, OWB, KW) \
    FC_TARGET_AVX512 static void NAME(FC_CONV_PARAMS(T))                                       \
    {                                                                                          \
        enum { CB = LANES };                                                                   \
        const ptrdiff_t K = C * kh * KW;                                                       \
        T tmp[OWB][CB] __attribute__((aligned(64)));                                           \
        (void)kw; (void)sw; (void)dw; /* KW, 1 and 1 */                                        \
        for (ptrdiff_t cb = 0; cb * CB < cout; ++cb) {                                         \
            const T* wp = wpack + cb * K * CB;                                                 \
            const ptrdiff_t nco = (cout - cb * CB) < CB ? (cout - cb * CB) : CB;               \
            T bv[CB] __attribute__((aligned(64)));                                             \
            for (int l = 0; l < CB; ++l) bv[l] = l < nco ? bias[cb * CB + l] : (T)0;           \
            for (ptrdiff_t oh = 0; oh < OH; ++oh) {                                            \
                for (ptrdiff_t ow0 = 0; ow0 < OW; ow0 += OWB) {                                \
                    VT acc[OWB];                                                               \
                    FC_PRAGMA(GCC unroll 16)                                                   \
                    for (int q = 0; q < OWB; ++q) acc[q] = LOAD(bv);                           \
                    for (ptrdiff_t c = 0; c < C; ++c) {                                        \
                        for (ptrdiff_t i = 0; i < kh; ++i) {                                   \
                            const T* xr = xpad + (c * Hp + oh * sh + i * dh) * Wp + ow0;       \
                            const T* wr = wp + (c * kh + i) * KW * CB;                         \
                            VT bx[OWB + KW - 1];                                               \
                            FC_PRAGMA(GCC unroll 32)                                           \
                            for (int t = 0; t < OWB + KW - 1; ++t) bx[t] = SET1(xr[t]);        \
                            FC_PRAGMA(GCC unroll 8)                                            \
                            for (int j = 0; j < KW; ++j) {                                     \
                                const VT w = LOAD(wr + j * CB);                                \
                                FC_PRAGMA(GCC unroll 16)                                       \
                                for (int q = 0; q < OWB; ++q) acc[q] = FMA(bx[q + j], w, acc[q]); \
                            }                                                                  \
                        }                                                                      \
                    }                                                                          \
                    FC_PRAGMA(GCC unroll 16)                                                   \
                    for (int q = 0; q < OWB; ++q) STORE(tmp[q], acc[q]);                       \
                    const ptrdiff_t nq = (OW - ow0) < OWB ? (OW - ow0) : OWB;                  \
                    STORE_TILE(&tmp[0][0], OWB, 1, nco, nq, out + cb * CB * ocs + oh * ors + ow0 * ops, \
                               ocs, ops);                                                      \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }
#define FC_DEFINE_CONV_AVX512_ROWS_F(NAME, OWB, KW)                                            \
    FC_DEFINE_CONV_AVX512_ROWS(NAME, float, __m512, 16, _mm512_loadu_ps, _mm512_store_ps,      \
                               _mm512_set1_ps, _mm512_fmadd_ps, fc_store_tile_f, OWB, KW)
#define FC_DEFINE_CONV_AVX512_ROWS_D(NAME, OWB, KW)                                            \
    FC_DEFINE_CONV_AVX512_ROWS(NAME, double, __m512d, 8, _mm512_loadu_pd, _mm512_store_pd,     \
                               _mm512_set1_pd, _mm512_fmadd_pd, fc_store_tile_d, OWB, KW)

/* Pixel tiles (float32), for few output channels at stride 1: the other way round from
 * the tiles above, a vector holds 16 neighbouring output pixels of one channel and the
 * weights are broadcast, so 8 channels fill 8 accumulators per output row instead of 8 of
 * a channel vector's 16 lanes. Two output rows share each weight broadcast (16
 * accumulators); an odd last row is computed twice and stored once. Pixel blocks are
 * whole vectors (the caller pads the input to them); the valid part of a finished tile is
 * copied out element by element. The transposed convolutions of grad_input with 6 input
 * channels (lenet_c3) ran on im2col at ~100 GFLOP/s; lenet_c1's forward filled 6 of 16
 * lanes. */
#define FC_PIXELS_FOR8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define FC_PIXELS_INIT(L) __m512 a##L = _mm512_set1_ps(bv[L]), b##L = a##L;
#define FC_PIXELS_FMA(L)                                                                       \
    {                                                                                          \
        const __m512 w = _mm512_set1_ps(wr[j * 8 + L]);                                        \
        a##L = _mm512_fmadd_ps(w, u0, a##L);                                                   \
        b##L = _mm512_fmadd_ps(w, u1, b##L);                                                   \
    }
#define FC_PIXELS_SAVE(L) _mm512_store_ps(acc[0][L], a##L); _mm512_store_ps(acc[1][L], b##L);

/* The sums of one tile (acc[row][channel][pixel]) in a function of its own, the
 * accumulators named variables: inlined into the loops around it, or as an array, gcc 12
 * kept half of them in memory (3x slower). */
FC_TARGET_AVX512 __attribute__((noinline)) static void fc_pixels_sums_f(
    const float* x0, const float* x1, const float* wp, const float* bv, ptrdiff_t C,
    ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t plane, ptrdiff_t row_step, ptrdiff_t dw,
    float acc[2][8][16])
{
    FC_PIXELS_FOR8(FC_PIXELS_INIT)
    for (ptrdiff_t c = 0; c < C; ++c) {
        for (ptrdiff_t i = 0; i < kh; ++i) {
            const float* r0 = x0 + c * plane + i * row_step;
            const float* r1 = x1 + c * plane + i * row_step;
            const float* wr = wp + (c * kh + i) * kw * 8;
            for (ptrdiff_t j = 0; j < kw; ++j) {
                const __m512 u0 = _mm512_loadu_ps(r0 + j * dw), u1 = _mm512_loadu_ps(r1 + j * dw);
                FC_PIXELS_FOR8(FC_PIXELS_FMA)
            }
        }
    }
    FC_PIXELS_FOR8(FC_PIXELS_SAVE)
}

FC_TARGET_AVX512 static void fc_conv_avx512_f20(FC_CONV_PARAMS(float))
{
    enum { CB = 8, LANES = 16 };
    const ptrdiff_t K = C * kh * kw;
    float acc[2][CB][LANES] __attribute__((aligned(64)));
    (void)sw; /* 1 */
    for (ptrdiff_t cb = 0; cb * CB < cout; ++cb) {
        const float* wp = wpack + cb * K * CB;
        const ptrdiff_t nco = (cout - cb * CB) < CB ? (cout - cb * CB) : CB;
        float bv[CB];
        for (int l = 0; l < CB; ++l) bv[l] = l < nco ? bias[cb * CB + l] : 0.0f;
        for (ptrdiff_t oh = 0; oh < OH; oh += 2) {
            const ptrdiff_t oh1 = oh + 1 < OH ? oh + 1 : oh;
            for (ptrdiff_t ow0 = 0; ow0 < OW; ow0 += LANES) {
                fc_pixels_sums_f(xpad + oh * sh * Wp + ow0, xpad + oh1 * sh * Wp + ow0, wp, bv, C,
                                 kh, kw, Hp * Wp, dh * Wp, dw, acc);
                const ptrdiff_t nq = (OW - ow0) < LANES ? (OW - ow0) : LANES;
                float* o = out + cb * CB * ocs + oh * ors + ow0 * ops;
                for (ptrdiff_t r = 0; r < 1 + (oh1 != oh); ++r)
                    for (ptrdiff_t l = 0; l < nco; ++l)
                        for (ptrdiff_t q = 0; q < nq; ++q)
                            o[l * ocs + r * ors + q * ops] = acc[r][l][q];
            }
        }
    }
}

/* The tile table: index -> (NV, OWB, KW). Two vectors of channels for more than one
 * vector's worth of output channels, else one; five pixel widths so that common widths
 * (7, 10, 14, 28, 56, 112, 224...) split exactly. KW 0: any kernel, stride and dilation;
 * KW 3 or 5: the row-reuse tiles above. One-vector tiles stay one row high: two rows of
 * 10 pixels (20 accumulators) ran at 163 GFLOP/s on lenet_c3 against 194 for one row. */
#define FC_AVX512_N_TILES 21
static const int fc_avx512_tiles[FC_AVX512_N_TILES][3] = {
    {2, 14, 0}, {2, 12, 0}, {2, 10, 0}, {2, 8, 0}, {2, 7, 0},
    {1, 14, 0}, {1, 12, 0}, {1, 10, 0}, {1, 8, 0}, {1, 7, 0},
    {1, 14, 3}, {1, 12, 3}, {1, 10, 3}, {1, 8, 3}, {1, 7, 3},
    {1, 14, 5}, {1, 12, 5}, {1, 10, 5}, {1, 8, 5}, {1, 7, 5},
    {0, 0, 0}, /* the pixel tile (float32): 8 channels x 16 pixels x 2 rows, stride 1 */
};
#define FC_AVX512_PIXEL_TILE 20

FC_DEFINE_CONV_AVX512_F(fc_conv_avx512_f0, 2, 14)
FC_DEFINE_CONV_AVX512_F(fc_conv_avx512_f1, 2, 12)
FC_DEFINE_CONV_AVX512_F(fc_conv_avx512_f2, 2, 10)
FC_DEFINE_CONV_AVX512_F(fc_conv_avx512_f3, 2, 8)
FC_DEFINE_CONV_AVX512_F(fc_conv_avx512_f4, 2, 7)
FC_DEFINE_CONV_AVX512_F(fc_conv_avx512_f5, 1, 14)
FC_DEFINE_CONV_AVX512_F(fc_conv_avx512_f6, 1, 12)
FC_DEFINE_CONV_AVX512_F(fc_conv_avx512_f7, 1, 10)
FC_DEFINE_CONV_AVX512_F(fc_conv_avx512_f8, 1, 8)
FC_DEFINE_CONV_AVX512_F(fc_conv_avx512_f9, 1, 7)
FC_DEFINE_CONV_AVX512_ROWS_F(fc_conv_avx512_f10, 14, 3)
FC_DEFINE_CONV_AVX512_ROWS_F(fc_conv_avx512_f11, 12, 3)
FC_DEFINE_CONV_AVX512_ROWS_F(fc_conv_avx512_f12, 10, 3)
FC_DEFINE_CONV_AVX512_ROWS_F(fc_conv_avx512_f13, 8, 3)
FC_DEFINE_CONV_AVX512_ROWS_F(fc_conv_avx512_f14, 7, 3)
FC_DEFINE_CONV_AVX512_ROWS_F(fc_conv_avx512_f15, 14, 5)
FC_DEFINE_CONV_AVX512_ROWS_F(fc_conv_avx512_f16, 12, 5)
FC_DEFINE_CONV_AVX512_ROWS_F(fc_conv_avx512_f17, 10, 5)
FC_DEFINE_CONV_AVX512_ROWS_F(fc_conv_avx512_f18, 8, 5)
FC_DEFINE_CONV_AVX512_ROWS_F(fc_conv_avx512_f19, 7, 5)
FC_DEFINE_CONV_AVX512_D(fc_conv_avx512_d0, 2, 14)
FC_DEFINE_CONV_AVX512_D(fc_conv_avx512_d1, 2, 12)
FC_DEFINE_CONV_AVX512_D(fc_conv_avx512_d2, 2, 10)
FC_DEFINE_CONV_AVX512_D(fc_conv_avx512_d3, 2, 8)
FC_DEFINE_CONV_AVX512_D(fc_conv_avx512_d4, 2, 7)
FC_DEFINE_CONV_AVX512_D(fc_conv_avx512_d5, 1, 14)
FC_DEFINE_CONV_AVX512_D(fc_conv_avx512_d6, 1, 12)
FC_DEFINE_CONV_AVX512_D(fc_conv_avx512_d7, 1, 10)
FC_DEFINE_CONV_AVX512_D(fc_conv_avx512_d8, 1, 8)
FC_DEFINE_CONV_AVX512_D(fc_conv_avx512_d9, 1, 7)
FC_DEFINE_CONV_AVX512_ROWS_D(fc_conv_avx512_d10, 14, 3)
FC_DEFINE_CONV_AVX512_ROWS_D(fc_conv_avx512_d11, 12, 3)
FC_DEFINE_CONV_AVX512_ROWS_D(fc_conv_avx512_d12, 10, 3)
FC_DEFINE_CONV_AVX512_ROWS_D(fc_conv_avx512_d13, 8, 3)
FC_DEFINE_CONV_AVX512_ROWS_D(fc_conv_avx512_d14, 7, 3)
FC_DEFINE_CONV_AVX512_ROWS_D(fc_conv_avx512_d15, 14, 5)
FC_DEFINE_CONV_AVX512_ROWS_D(fc_conv_avx512_d16, 12, 5)
FC_DEFINE_CONV_AVX512_ROWS_D(fc_conv_avx512_d17, 10, 5)
FC_DEFINE_CONV_AVX512_ROWS_D(fc_conv_avx512_d18, 8, 5)
FC_DEFINE_CONV_AVX512_ROWS_D(fc_conv_avx512_d19, 7, 5)

/* Two output rows of 7 pixels x 2 vectors of channels (28 accumulators): for images 7
 * pixels wide (ResNet-8's last stage, 32->64 stride 2, and the stride-2 grad_input
 * phases landing there) the one-row 7-pixel tile keeps only 14 accumulators, too few
 * to cover the FMA latency with the loads in between. An odd last row goes through
 * those 14 alone (half the FMAs of computing it twice: a 7-row image's last block). */
/* The FMA loops of the tile below over every (channel, kernel row, kernel column):
 * ROWS (a literal 1 or 2) output rows oh and oh1; the ROWS == 2 lines fold away for 1. */
#define FC_CONV_R2_ACCUMULATE(T, VT, LANES, LOAD, SET1, FMA, ROWS)                             \
    for (ptrdiff_t c = 0; c < C; ++c) {                                                        \
        for (ptrdiff_t i = 0; i < kh; ++i) {                                                   \
            const T* x0 = xpad + (c * Hp + oh * sh + i * dh) * Wp + ow0 * sw;                  \
            const T* x1 = x0 + (oh1 - oh) * sh * Wp;                                           \
            const T* wr = wp + (c * kh + i) * kw * CB;                                         \
            for (ptrdiff_t j = 0; j < kw; ++j) {                                               \
                const VT w0 = LOAD(wr + j * CB), w1 = LOAD(wr + j * CB + LANES);               \
                FC_PRAGMA(GCC unroll 8)                                                        \
                for (int q = 0; q < OWB; ++q) {                                                \
                    const VT b0 = SET1(x0[j * dw + q * sw]);                                   \
                    acc[0][q][0] = FMA(b0, w0, acc[0][q][0]);                                  \
                    acc[0][q][1] = FMA(b0, w1, acc[0][q][1]);                                  \
                    if (ROWS == 2) {                                                           \
                        const VT b1 = SET1(x1[j * dw + q * sw]);                               \
                        acc[1][q][0] = FMA(b1, w0, acc[1][q][0]);                              \
                        acc[1][q][1] = FMA(b1, w1, acc[1][q][1]);                              \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

#define FC_DEFINE_CONV_AVX512_R2(NAME, T, VT, LANES, LOAD, STORE, SET1, FMA, STORE_TILE)       \
    FC_TARGET_AVX512 static void NAME(FC_CONV_PARAMS(T))                                       \
    {                                                                                          \
        enum { NV = 2, OWB = 7, CB = NV * LANES };                                             \
        const ptrdiff_t K = C * kh * kw;                                                       \
        T tmp[2][OWB][CB] __attribute__((aligned(64)));                                        \
        for (ptrdiff_t cb = 0; cb * CB < cout; ++cb) {                                         \
            const T* wp = wpack + cb * K * CB;                                                 \
            const ptrdiff_t nco = (cout - cb * CB) < CB ? (cout - cb * CB) : CB;               \
            T bv[CB] __attribute__((aligned(64)));                                             \
            for (int l = 0; l < CB; ++l) bv[l] = l < nco ? bias[cb * CB + l] : (T)0;           \
            for (ptrdiff_t oh = 0; oh < OH; oh += 2) {                                         \
                const ptrdiff_t oh1 = oh + 1 < OH ? oh + 1 : oh;                               \
                for (ptrdiff_t ow0 = 0; ow0 < OW; ow0 += OWB) {                                \
                    VT acc[2][OWB][NV];                                                        \
                    FC_PRAGMA(GCC unroll 2)                                                    \
                    for (int r = 0; r < 2; ++r)                                                \
                        FC_PRAGMA(GCC unroll 8)                                                \
                        for (int q = 0; q < OWB; ++q)                                          \
                            FC_PRAGMA(GCC unroll 2)                                            \
                            for (int v = 0; v < NV; ++v) acc[r][q][v] = LOAD(bv + v * LANES);  \
                    if (oh1 != oh)                                                             \
                        FC_CONV_R2_ACCUMULATE(T, VT, LANES, LOAD, SET1, FMA, 2)                \
                    else                                                                       \
                        FC_CONV_R2_ACCUMULATE(T, VT, LANES, LOAD, SET1, FMA, 1)                \
                    FC_PRAGMA(GCC unroll 2)                                                    \
                    for (int r = 0; r < 2; ++r)                                                \
                        FC_PRAGMA(GCC unroll 8)                                                \
                        for (int q = 0; q < OWB; ++q)                                          \
                            FC_PRAGMA(GCC unroll 2)                                            \
                            for (int v = 0; v < NV; ++v) STORE(&tmp[r][q][v * LANES], acc[r][q][v]); \
                    const ptrdiff_t nq = (OW - ow0) < OWB ? (OW - ow0) : OWB;                  \
                    T* o = out + cb * CB * ocs + ow0 * ops;                                    \
                    STORE_TILE(&tmp[0][0][0], OWB, NV, nco, nq, o + oh * ors, ocs, ops);       \
                    if (oh1 != oh)                                                             \
                        STORE_TILE(&tmp[1][0][0], OWB, NV, nco, nq, o + oh1 * ors, ocs, ops);  \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }
FC_DEFINE_CONV_AVX512_R2(fc_conv_avx512_f21, float, __m512, 16, _mm512_loadu_ps, _mm512_store_ps,
                         _mm512_set1_ps, _mm512_fmadd_ps, fc_store_tile_f)
FC_DEFINE_CONV_AVX512_R2(fc_conv_avx512_d21, double, __m512d, 8, _mm512_loadu_pd, _mm512_store_pd,
                         _mm512_set1_pd, _mm512_fmadd_pd, fc_store_tile_d)
/* Its index (outside the table: forward_tile picks it by width, see _direct.pyx). */
#define FC_AVX512_ROWS2_TILE 21

#define FC_DEFINE_CONV_AVX512_DISPATCH(FN, T, P, PIXELS)                                       \
    static void FN(int tile, FC_CONV_PARAMS(T))                                                \
    {                                                                                          \
        switch (tile) {                                                                        \
        case 0: P##0(FC_CONV_ARGS); break;                                                     \
        case 1: P##1(FC_CONV_ARGS); break;                                                     \
        case 2: P##2(FC_CONV_ARGS); break;                                                     \
        case 3: P##3(FC_CONV_ARGS); break;                                                     \
        case 4: P##4(FC_CONV_ARGS); break;                                                     \
        case 5: P##5(FC_CONV_ARGS); break;                                                     \
        case 6: P##6(FC_CONV_ARGS); break;                                                     \
        case 7: P##7(FC_CONV_ARGS); break;                                                     \
        case 8: P##8(FC_CONV_ARGS); break;                                                     \
        case 9: P##9(FC_CONV_ARGS); break;                                                     \
        case 10: P##10(FC_CONV_ARGS); break;                                                   \
        case 11: P##11(FC_CONV_ARGS); break;                                                   \
        case 12: P##12(FC_CONV_ARGS); break;                                                   \
        case 13: P##13(FC_CONV_ARGS); break;                                                   \
        case 14: P##14(FC_CONV_ARGS); break;                                                   \
        case 15: P##15(FC_CONV_ARGS); break;                                                   \
        case 16: P##16(FC_CONV_ARGS); break;                                                   \
        case 17: P##17(FC_CONV_ARGS); break;                                                   \
        case 18: P##18(FC_CONV_ARGS); break;                                                   \
        case 19: P##19(FC_CONV_ARGS); break;                                                   \
        case 21: P##21(FC_CONV_ARGS); break;                                                   \
        default: PIXELS(FC_CONV_ARGS); break;                                                  \
        }                                                                                      \
    }
FC_DEFINE_CONV_AVX512_DISPATCH(fc_conv_avx512_f, float, fc_conv_avx512_f, fc_conv_avx512_f20)
/* float64 has no pixel tile (forward_tile never picks one): with 8 lanes it measured no
 * faster than the channel tiles on the LeNet shapes, and slower on lenet_c3's grad_input */
FC_DEFINE_CONV_AVX512_DISPATCH(fc_conv_avx512_d, double, fc_conv_avx512_d, fc_conv_avx512_d19)

/* grad_weight of one image and group, accumulated into gw[block][C][KH][KW][CB]; gyt is
 * the gradient channel-minor (OH*OW, n_blocks*CB) as in _conv_blocked.h. The pixels go in
 * chunks of whole output rows, one block's share of a chunk of gyt (FC_WGRAD_CHUNK_BYTES)
 * staying in L1 while every channel passes over it. Each chunk loads and stores all of gw,
 * so chunks are as large as L1 allows: with 128-pixel chunks resnet_s2's 1.2 MB gw went
 * through L2 twice per image. */
#define FC_WGRAD_CHUNK_BYTES 32768
#define FC_DEFINE_WGRAD_VEC(NAME, TARGET, T, VT, LANES, LOAD, STORE, SET1, FMA, NV, KH, KW)   \
    TARGET static void NAME(const T* xpad, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp,  \
                                      const T* gyt, ptrdiff_t n_blocks, T* gw, ptrdiff_t OH,   \
                                      ptrdiff_t OW, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t dh,  \
                                      ptrdiff_t dw)                                            \
    {                                                                                          \
        enum { CB = NV * LANES };                                                              \
        const ptrdiff_t ld = n_blocks * CB;                                                    \
        const ptrdiff_t row_bytes = OW * CB * (ptrdiff_t)sizeof(T);                            \
        const ptrdiff_t rows = row_bytes >= FC_WGRAD_CHUNK_BYTES ? 1 : FC_WGRAD_CHUNK_BYTES / row_bytes; \
        for (ptrdiff_t oh0 = 0; oh0 < OH; oh0 += rows) {                                       \
            const ptrdiff_t oh1 = (oh0 + rows) < OH ? (oh0 + rows) : OH;                       \
            for (ptrdiff_t cb = 0; cb < n_blocks; ++cb) {                                      \
                for (ptrdiff_t c = 0; c < C; ++c) {                                            \
                    T* dst = gw + (cb * C + c) * (KH * KW * CB);                               \
                    VT acc[KH * KW][NV];                                                       \
                    FC_PRAGMA(GCC unroll 32)                                                   \
                    for (int t = 0; t < KH * KW; ++t)                                          \
                        FC_PRAGMA(GCC unroll 4)                                                \
                        for (int v = 0; v < NV; ++v) acc[t][v] = LOAD(dst + t * CB + v * LANES); \
                    for (ptrdiff_t oh = oh0; oh < oh1; ++oh) {                                 \
                        const T* xr = xpad + (c * Hp + oh * sh) * Wp;                          \
                        const T* gr = gyt + oh * OW * ld + cb * CB;                            \
                        for (ptrdiff_t ow = 0; ow < OW; ++ow) {                                \
                            const T* xo = xr + ow * sw;                                        \
                            VT g[NV];                                                          \
                            FC_PRAGMA(GCC unroll 4)                                            \
                            for (int v = 0; v < NV; ++v) g[v] = LOAD(gr + ow * ld + v * LANES); \
                            FC_PRAGMA(GCC unroll 8)                                            \
                            for (int i = 0; i < KH; ++i)                                       \
                                FC_PRAGMA(GCC unroll 8)                                        \
                                for (int j = 0; j < KW; ++j) {                                 \
                                    const VT xb = SET1(xo[i * dh * Wp + j * dw]);              \
                                    FC_PRAGMA(GCC unroll 4)                                    \
                                    for (int v = 0; v < NV; ++v)                               \
                                        acc[i * KW + j][v] = FMA(xb, g[v], acc[i * KW + j][v]); \
                                }                                                              \
                        }                                                                      \
                    }                                                                          \
                    FC_PRAGMA(GCC unroll 32)                                                   \
                    for (int t = 0; t < KH * KW; ++t)                                          \
                        FC_PRAGMA(GCC unroll 4)                                                \
                        for (int v = 0; v < NV; ++v) STORE(dst + t * CB + v * LANES, acc[t][v]); \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

/* Unaligned stores: gw rows are only element-aligned. */
#define FC_DEFINE_WGRAD_AVX512_F(NAME, NV, KH, KW)                                             \
    FC_DEFINE_WGRAD_VEC(NAME, FC_TARGET_AVX512, float, __m512, 16, _mm512_loadu_ps,            \
                        _mm512_storeu_ps, _mm512_set1_ps, _mm512_fmadd_ps, NV, KH, KW)
#define FC_DEFINE_WGRAD_AVX512_D(NAME, NV, KH, KW)                                             \
    FC_DEFINE_WGRAD_VEC(NAME, FC_TARGET_AVX512, double, __m512d, 8, _mm512_loadu_pd,           \
                        _mm512_storeu_pd, _mm512_set1_pd, _mm512_fmadd_pd, NV, KH, KW)

/* grad_weight tiles: 3x3 kernels with 2 vectors of channels (18 accumulators) or 1, and
 * 5x5 kernels with 1 vector (25 accumulators). Index -> (NV, KH, KW). */
#define FC_AVX512_N_WGRAD_TILES 3
static const int fc_avx512_wgrad_tiles[FC_AVX512_N_WGRAD_TILES][3] = {
    {2, 3, 3}, {1, 3, 3}, {1, 5, 5},
};
FC_DEFINE_WGRAD_AVX512_F(fc_wgrad_avx512_f0, 2, 3, 3)
FC_DEFINE_WGRAD_AVX512_F(fc_wgrad_avx512_f1, 1, 3, 3)
FC_DEFINE_WGRAD_AVX512_F(fc_wgrad_avx512_f2, 1, 5, 5)
FC_DEFINE_WGRAD_AVX512_D(fc_wgrad_avx512_d0, 2, 3, 3)
FC_DEFINE_WGRAD_AVX512_D(fc_wgrad_avx512_d1, 1, 3, 3)
FC_DEFINE_WGRAD_AVX512_D(fc_wgrad_avx512_d2, 1, 5, 5)

#define FC_DEFINE_WGRAD_AVX512_DISPATCH(FN, T, P)                                              \
    static void FN(FC_WGRAD_VEC_PARAMS(T))                                                     \
    {                                                                                          \
        switch (tile) {                                                                        \
        case 0: P##0(FC_WGRAD_VEC_ARGS); break;                                                \
        case 1: P##1(FC_WGRAD_VEC_ARGS); break;                                                \
        default: P##2(FC_WGRAD_VEC_ARGS); break;                                               \
        }                                                                                      \
    }
FC_DEFINE_WGRAD_AVX512_DISPATCH(fc_wgrad_avx512_f, float, fc_wgrad_avx512_f)
FC_DEFINE_WGRAD_AVX512_DISPATCH(fc_wgrad_avx512_d, double, fc_wgrad_avx512_d)

/* grad_weight for few output channels (float32, stride 1 along rows), the pixel way:
 * gw[co][c][i][j] = sum over pixels of gy[co][p] * xpad[c][row(p) + i*dh][col(p) + j*dw],
 * with a vector of 16 neighbouring pixels of a row per step. A block of 4 output channels
 * x 5 kernel columns is 20 accumulators, fed by 4 loads of gy and 5 of xpad; the lanes
 * are not reduced here but added to vpart[co][c][i][j][16] (per thread; the caller sums
 * lanes and threads in a fixed order). gy is one image's gradient for one group
 * (cog, OH, OW), used as it lies: no channel-minor copy. Partial channel and column
 * blocks repeat their last channel / column and keep only the valid sums. lenet_c1's
 * 6-channel grad_weight ran on the portable 8-channel tile at ~56 GFLOP/s. */
#define FC_WPIX_FOR_J(X, C) X(C, 0) X(C, 1) X(C, 2) X(C, 3) X(C, 4)
#define FC_WPIX_FOR_CJ(X) FC_WPIX_FOR_J(X, 0) FC_WPIX_FOR_J(X, 1) FC_WPIX_FOR_J(X, 2) FC_WPIX_FOR_J(X, 3)
#define FC_WPIX_ZERO(C, J) __m512 s##C##J = _mm512_setzero_ps();
#define FC_WPIX_FMA(C, J) s##C##J = _mm512_fmadd_ps(g##C, u##J, s##C##J);
#define FC_WPIX_SAVE(C, J)                                                                     \
    if (C < nco && J < njc) {                                                                  \
        float* d = vpart + ((((co0 + C) * Cin + c) * kh + i) * kw + j0 + J) * 16;             \
        _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), s##C##J));                      \
    }
FC_TARGET_AVX512 __attribute__((noinline)) static void fc_wgrad_pixels_block(
    const float* xpad, ptrdiff_t Cin, ptrdiff_t Hp, ptrdiff_t Wp, const float* gy, ptrdiff_t cog,
    float* vpart, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,
    ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t c, ptrdiff_t i, ptrdiff_t co0, ptrdiff_t j0)
{
    const ptrdiff_t nco = cog - co0 < 4 ? cog - co0 : 4, njc = kw - j0 < 5 ? kw - j0 : 5;
    /* a partial block repeats channel co0 (its sums are not kept) */
    const float* p0 = gy + co0 * OH * OW;
    const float* p1 = gy + (co0 + (nco > 1 ? 1 : 0)) * OH * OW;
    const float* p2 = gy + (co0 + (nco > 2 ? 2 : 0)) * OH * OW;
    const float* p3 = gy + (co0 + (nco > 3 ? 3 : 0)) * OH * OW;
    ptrdiff_t xo[5];
    for (int J = 0; J < 5; ++J) xo[J] = (j0 + (J < njc ? J : 0)) * dw;
    FC_WPIX_FOR_CJ(FC_WPIX_ZERO)
    for (ptrdiff_t oh = 0; oh < OH; ++oh) {
        const float* xr = xpad + (c * Hp + oh * sh + i * dh) * Wp;
        const ptrdiff_t go = oh * OW;
        for (ptrdiff_t ow0 = 0; ow0 < OW; ow0 += 16) {
            const __mmask16 m = fc_lanes16(OW - ow0);
            const __m512 g0 = _mm512_maskz_loadu_ps(m, p0 + go + ow0);
            const __m512 g1 = _mm512_maskz_loadu_ps(m, p1 + go + ow0);
            const __m512 g2 = _mm512_maskz_loadu_ps(m, p2 + go + ow0);
            const __m512 g3 = _mm512_maskz_loadu_ps(m, p3 + go + ow0);
            const __m512 u0 = _mm512_maskz_loadu_ps(m, xr + ow0 + xo[0]);
            const __m512 u1 = _mm512_maskz_loadu_ps(m, xr + ow0 + xo[1]);
            const __m512 u2 = _mm512_maskz_loadu_ps(m, xr + ow0 + xo[2]);
            const __m512 u3 = _mm512_maskz_loadu_ps(m, xr + ow0 + xo[3]);
            const __m512 u4 = _mm512_maskz_loadu_ps(m, xr + ow0 + xo[4]);
            FC_WPIX_FOR_CJ(FC_WPIX_FMA)
        }
    }
    FC_WPIX_FOR_CJ(FC_WPIX_SAVE)
}

/* grad_bias of one image and group: bias[co] += sum of gy[co][0:P] (float32 vector sums of
 * one image, then float64 across images). */
FC_TARGET_AVX512 static void fc_channel_sums_f(const float* gy, ptrdiff_t cog, ptrdiff_t P,
                                               double* bias)
{
    for (ptrdiff_t co = 0; co < cog; ++co) {
        const float* g = gy + co * P;
        __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
        ptrdiff_t p = 0;
        for (; p + 32 <= P; p += 32) {
            a = _mm512_add_ps(a, _mm512_loadu_ps(g + p));
            b = _mm512_add_ps(b, _mm512_loadu_ps(g + p + 16));
        }
        for (; p < P; p += 16) a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(fc_lanes16(P - p), g + p));
        bias[co] += (double)_mm512_reduce_add_ps(_mm512_add_ps(a, b));
    }
}

/* Every block of one image and group: vpart[cog][Cin][kh][kw][16] += its sums. */
FC_TARGET_AVX512 static void fc_wgrad_pixels_f(const float* xpad, ptrdiff_t Cin, ptrdiff_t Hp,
                                               ptrdiff_t Wp, const float* gy, ptrdiff_t cog,
                                               float* vpart, ptrdiff_t OH, ptrdiff_t OW,
                                               ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,
                                               ptrdiff_t dh, ptrdiff_t dw)
{
    for (ptrdiff_t c = 0; c < Cin; ++c)
        for (ptrdiff_t i = 0; i < kh; ++i)
            for (ptrdiff_t co0 = 0; co0 < cog; co0 += 4)
                for (ptrdiff_t j0 = 0; j0 < kw; j0 += 5)
                    fc_wgrad_pixels_block(xpad, Cin, Hp, Wp, gy, cog, vpart, OH, OW, kh, kw, sh,
                                          dh, dw, c, i, co0, j0);
}

#else /* no AVX-512 kernels in this build: the callers never select a tile */
#define FC_AVX512_N_TILES 1
#define FC_AVX512_PIXEL_TILE 0
#define FC_AVX512_ROWS2_TILE 0
#define FC_AVX512_N_WGRAD_TILES 1
static const int fc_avx512_tiles[1][3] = {{1, 1, 0}};
static const int fc_avx512_wgrad_tiles[1][3] = {{1, 1, 1}};
#define FC_STUB_CONV(FN, T) static void FN(int tile, FC_CONV_PARAMS(T)) {}
#define FC_STUB_WGRAD(FN, T) static void FN(FC_WGRAD_VEC_PARAMS(T)) {}
FC_STUB_CONV(fc_conv_avx512_f, float)
FC_STUB_CONV(fc_conv_avx512_d, double)
FC_STUB_WGRAD(fc_wgrad_avx512_f, float)
FC_STUB_WGRAD(fc_wgrad_avx512_d, double)
static void fc_wgrad_pixels_f(const float* xpad, ptrdiff_t Cin, ptrdiff_t Hp, ptrdiff_t Wp,
                              const float* gy, ptrdiff_t cog, float* vpart, ptrdiff_t OH,
                              ptrdiff_t OW, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,
                              ptrdiff_t dh, ptrdiff_t dw) {}
static void fc_channel_sums_f(const float* gy, ptrdiff_t cog, ptrdiff_t P, double* bias) {}
#endif

#include "_conv_avx2.h"

/* What the Cython side calls: an AVX2 tile (tile >= FC_AVX2_TILE_BASE, from
 * _conv_avx2.h's tables), an AVX-512 tile (tile >= 0, from the tables above) or the
 * portable kernel with cb channels per block; forward and grad_weight alike. */
#define FC_DEFINE_CONV_TILE(FN, T, AVX512, AVX2, PORTABLE)                                     \
    static inline void FN(int tile, ptrdiff_t cb, FC_CONV_PARAMS(T))                           \
    {                                                                                          \
        if (tile >= FC_AVX2_TILE_BASE) AVX2(tile - FC_AVX2_TILE_BASE, FC_CONV_ARGS);           \
        else if (tile >= 0) AVX512(tile, FC_CONV_ARGS);                                        \
        else PORTABLE(cb, FC_CONV_ARGS);                                                       \
    }
FC_DEFINE_CONV_TILE(fc_conv_tile_f, float, fc_conv_avx512_f, fc_conv_avx2_f, fc_conv_blocked_f)
FC_DEFINE_CONV_TILE(fc_conv_tile_d, double, fc_conv_avx512_d, fc_conv_avx2_d, fc_conv_blocked_d)

#define FC_DEFINE_WGRAD_TILE(FN, T, AVX512, AVX2, PORTABLE)                                    \
    static inline void FN(int tile, ptrdiff_t cb, const T* xpad, ptrdiff_t C, ptrdiff_t Hp,    \
                          ptrdiff_t Wp, const T* gyt, ptrdiff_t n_blocks, T* gw, ptrdiff_t OH, \
                          ptrdiff_t OW, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, \
                          ptrdiff_t dh, ptrdiff_t dw)                                          \
    {                                                                                          \
        if (tile >= FC_AVX2_TILE_BASE) AVX2(tile - FC_AVX2_TILE_BASE, FC_WGRAD_VEC_ARGS);      \
        else if (tile >= 0) AVX512(tile, FC_WGRAD_VEC_ARGS);                                   \
        else PORTABLE(cb, xpad, C, Hp, Wp, gyt, n_blocks, gw, OH, OW, kh, kw, sh, sw, dh, dw); \
    }
FC_DEFINE_WGRAD_TILE(fc_wgrad_tile_f, float, fc_wgrad_avx512_f, fc_wgrad_avx2_f, fc_wgrad_blocked_f)
FC_DEFINE_WGRAD_TILE(fc_wgrad_tile_d, double, fc_wgrad_avx512_d, fc_wgrad_avx2_d, fc_wgrad_blocked_d)

#endif
