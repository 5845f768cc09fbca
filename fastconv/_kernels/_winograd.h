/* Winograd F(2x2, 3x3) transforms for 3x3, stride-1, undilated convolutions.
 *
 * A 2x2 block of outputs ("tile") needs a 4x4 patch d of the padded input; with
 * V = B^T d B (per input channel), U = G g G^T (per weight, done by the caller) and
 * M[xi] = U[xi] @ V[xi] (16 GEMMs over channels, xi = 4*k + l the 16 positions of the
 * 4x4 transform), the outputs are Y = A^T M A. That is 16 multiplies per tile and channel
 * pair instead of 36: 2.25x fewer FLOPs, spent in GEMMs (the only O(C_in*C_out) part).
 *
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T = [1 1 1 0; 0 1 -1 -1]
 *
 * Layouts (row-major, per chunk of images): V[16][C][T] and M[16][Co][T], T = the
 * chunk's tiles (image-major, then tile row, then tile column), so each GEMM is
 * (Co x C) @ (C x T) with contiguous rows and the transforms run along t. The transforms
 * are plain loops (auto-vectorised; FC_MULTIVERSION for the wide-SIMD builds).
 */
#ifndef FASTCONV_WINOGRAD_H
#define FASTCONV_WINOGRAD_H
#include <stddef.h>
#include <string.h>
#include "_multiversion.h"
#include "_avx2_lanes.h"

/* The transform of channel c from its 8 planes q (below) into V[xi*xis + c*ld + t0 + t]. */
#define FC_WINO_TRANSFORM(T)                                                                   \
    {                                                                                          \
            /* d[k][l] = Q[(k&1)*4 + (l&1)*2 + (l>>1)] + (k>>1)*tw */                          \
            const T *d00 = q, *d01 = q + 2 * qs, *d02 = q + qs, *d03 = q + 3 * qs;             \
            const T *d10 = q + 4 * qs, *d11 = q + 6 * qs, *d12 = q + 5 * qs, *d13 = q + 7 * qs; \
            const T *d20 = d00 + tw, *d21 = d01 + tw, *d22 = d02 + tw, *d23 = d03 + tw;         \
            const T *d30 = d10 + tw, *d31 = d11 + tw, *d32 = d12 + tw, *d33 = d13 + tw;         \
            T* v = V + c * ld + t0;                                                            \
            FC_PRAGMA(GCC ivdep) /* v (V) never overlaps q */                                  \
            for (ptrdiff_t t = 0; t < nt; ++t) {                                               \
                /* rows: e0 = d0 - d2, e1 = d1 + d2, e2 = d2 - d1, e3 = d1 - d3 */             \
                T e[4][4];                                                                     \
                e[0][0] = d00[t] - d20[t]; e[0][1] = d01[t] - d21[t];                          \
                e[0][2] = d02[t] - d22[t]; e[0][3] = d03[t] - d23[t];                          \
                e[1][0] = d10[t] + d20[t]; e[1][1] = d11[t] + d21[t];                          \
                e[1][2] = d12[t] + d22[t]; e[1][3] = d13[t] + d23[t];                          \
                e[2][0] = d20[t] - d10[t]; e[2][1] = d21[t] - d11[t];                          \
                e[2][2] = d22[t] - d12[t]; e[2][3] = d23[t] - d13[t];                          \
                e[3][0] = d10[t] - d30[t]; e[3][1] = d11[t] - d31[t];                          \
                e[3][2] = d12[t] - d32[t]; e[3][3] = d13[t] - d33[t];                          \
                for (int k = 0; k < 4; ++k) {                                                  \
                    v[(4 * k + 0) * xis + t] = e[k][0] - e[k][2];                              \
                    v[(4 * k + 1) * xis + t] = e[k][1] + e[k][2];                              \
                    v[(4 * k + 2) * xis + t] = e[k][2] - e[k][1];                              \
                    v[(4 * k + 3) * xis + t] = e[k][1] - e[k][3];                              \
                }                                                                              \
            }                                                                                  \
    }

/* Input transform of one padded image (C x Hp x Wp, Hp >= 2*th + 2, Wp >= 2*tw + 2):
 * V[xi*xis + c*ld + t0 + ty*tw + tx] = (B^T d B)[xi] of the patch at (2ty, 2tx).
 *
 * Patch element d[k][l] of tile (ty, tx) is xp[2ty + k][2tx + l]. Per channel the image is
 * first split into 8 planes Q[a][b][h] (th+1 rows x tw columns, row stride tw):
 * Q[a][b][h][r][s] = xp[2r + a][2(s + h) + b], so that d[k][l] over all tiles is the
 * contiguous run Q[k&1][l&1][l>>1] + (k>>1)*tw, t = ty*tw + tx: the transform is then
 * one loop along t over whole images (vectorised), with no stride-2 access in it.
 * q: scratch of 8*(th+1)*tw. */
#define FC_DEFINE_WINO_INPUT(NAME, T)                                                          \
    FC_MULTIVERSION static void NAME(const T* xp, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp,     \
                                     ptrdiff_t th, ptrdiff_t tw, T* V, ptrdiff_t ld,           \
                                     ptrdiff_t xis, ptrdiff_t t0, T* q)                        \
    {                                                                                          \
        const ptrdiff_t qs = (th + 1) * tw, nt = th * tw;                                      \
        for (ptrdiff_t c = 0; c < C; ++c) {                                                    \
            const T* xc = xp + c * Hp * Wp;                                                    \
            for (int a = 0; a < 2; ++a)                                                        \
                for (ptrdiff_t r = 0; r <= th; ++r) {                                          \
                    const T* row = xc + (2 * r + a) * Wp;                                      \
                    T* q0 = q + (a * 4 + 0) * qs + r * tw; /* b 0, h 0 */                      \
                    T* q1 = q + (a * 4 + 1) * qs + r * tw; /* b 0, h 1 */                      \
                    T* q2 = q + (a * 4 + 2) * qs + r * tw; /* b 1, h 0 */                      \
                    T* q3 = q + (a * 4 + 3) * qs + r * tw; /* b 1, h 1 */                      \
                    for (ptrdiff_t s = 0; s < tw; ++s) {                                       \
                        q0[s] = row[2 * s]; q1[s] = row[2 * s + 2];                            \
                        q2[s] = row[2 * s + 1]; q3[s] = row[2 * s + 3];                        \
                    }                                                                          \
                }                                                                              \
            FC_WINO_TRANSFORM(T)                                                               \
        }                                                                                      \
    }
FC_DEFINE_WINO_INPUT(fc_wino_input_f, float)
FC_DEFINE_WINO_INPUT(fc_wino_input_d, double)

/* Output transform of one output channel over a chunk: y[q][t] (q = 2*row + col of the
 * tile's 2x2 outputs) = (A^T M A) + bias, from M[xi*xis + t], t < nt. y: 4 x nt. */
#define FC_DEFINE_WINO_OUTPUT(NAME, T)                                                         \
    FC_MULTIVERSION static void NAME(const T* M, ptrdiff_t xis, ptrdiff_t nt, T bias, T* y)    \
    {                                                                                          \
        T* y0 = y; T* y1 = y + nt; T* y2 = y + 2 * nt; T* y3 = y + 3 * nt;                     \
        const T *m0 = M, *m1 = M + xis, *m2 = M + 2 * xis, *m3 = M + 3 * xis;                  \
        const T *m4 = M + 4 * xis, *m5 = M + 5 * xis, *m6 = M + 6 * xis, *m7 = M + 7 * xis;    \
        const T *m8 = M + 8 * xis, *m9 = M + 9 * xis, *m10 = M + 10 * xis, *m11 = M + 11 * xis; \
        const T *m12 = M + 12 * xis, *m13 = M + 13 * xis, *m14 = M + 14 * xis;                 \
        const T *m15 = M + 15 * xis;                                                           \
        FC_PRAGMA(GCC ivdep) /* y never overlaps M */                                          \
        for (ptrdiff_t t = 0; t < nt; ++t) {                                                   \
            /* rows: s0 = m[0] + m[1] + m[2], s1 = m[1] - m[2] - m[3] (per column l) */        \
            const T s00 = m0[t] + m4[t] + m8[t], s10 = m4[t] - m8[t] - m12[t];                 \
            const T s01 = m1[t] + m5[t] + m9[t], s11 = m5[t] - m9[t] - m13[t];                 \
            const T s02 = m2[t] + m6[t] + m10[t], s12 = m6[t] - m10[t] - m14[t];               \
            const T s03 = m3[t] + m7[t] + m11[t], s13 = m7[t] - m11[t] - m15[t];               \
            y0[t] = s00 + s01 + s02 + bias; y1[t] = s01 - s02 - s03 + bias;                    \
            y2[t] = s10 + s11 + s12 + bias; y3[t] = s11 - s12 - s13 + bias;                    \
        }                                                                                      \
    }
FC_DEFINE_WINO_OUTPUT(fc_wino_output_f, float)
FC_DEFINE_WINO_OUTPUT(fc_wino_output_d, double)

/* Scatter one image's y (4 x nt, this image's tiles at y + t0) into its output plane
 * (OH x OW, row stride ors): the last tile row/column may be half outside. */
#define FC_DEFINE_WINO_SCATTER(NAME, T)                                                        \
    FC_MULTIVERSION static void NAME(const T* y, ptrdiff_t nt, ptrdiff_t t0, ptrdiff_t th,             \
                            ptrdiff_t tw, T* o, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t ors)     \
    {                                                                                          \
        const T* y0 = y + t0; const T* y1 = y0 + nt; const T* y2 = y1 + nt; const T* y3 = y2 + nt; \
        const ptrdiff_t full = OW / 2;                                                         \
        for (ptrdiff_t ty = 0; ty < th; ++ty) {                                                \
            T* o0 = o + 2 * ty * ors;                                                          \
            const ptrdiff_t b = ty * tw;                                                       \
            for (ptrdiff_t tx = 0; tx < full; ++tx) {                                          \
                o0[2 * tx] = y0[b + tx]; o0[2 * tx + 1] = y1[b + tx];                          \
            }                                                                                  \
            if (OW & 1) o0[OW - 1] = y0[b + full];                                             \
            if (2 * ty + 1 < OH) {                                                             \
                T* o1 = o0 + ors;                                                              \
                for (ptrdiff_t tx = 0; tx < full; ++tx) {                                      \
                    o1[2 * tx] = y2[b + tx]; o1[2 * tx + 1] = y3[b + tx];                      \
                }                                                                              \
                if (OW & 1) o1[OW - 1] = y2[b + full];                                         \
            }                                                                                  \
        }                                                                                      \
    }
FC_DEFINE_WINO_SCATTER(fc_wino_scatter_f, float)
FC_DEFINE_WINO_SCATTER(fc_wino_scatter_d, double)

/* grad_weight (the adjoint of the forward pass): dU[xi] = sum over tiles of
 * (A dY A^T)[xi] * V[xi], i.e. 16 GEMMs GY[xi] (Co x T) @ V[xi]^T (T x C), then
 * grad_weight = G^T dU G (the caller). V is the forward input transform; the gradient
 * tiles (2x2, zero where a tile is half outside the output) are gathered into y (4 x nt)
 * and transformed along t: A dY A^T, A = [1 0; 1 1; 1 -1; 0 -1]. */
#define FC_DEFINE_WINO_GATHER(NAME, T)                                                         \
    FC_MULTIVERSION static void NAME(const T* g, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t th,     \
                                     ptrdiff_t tw, T* y, ptrdiff_t nt, ptrdiff_t t0)           \
    {                                                                                          \
        T* y0 = y + t0; T* y1 = y0 + nt; T* y2 = y1 + nt; T* y3 = y2 + nt;                     \
        const ptrdiff_t full = OW / 2;                                                         \
        for (ptrdiff_t ty = 0; ty < th; ++ty) {                                                \
            const T* g0 = g + 2 * ty * OW;                                                     \
            const T* g1 = g0 + OW;                                                             \
            const int row1 = 2 * ty + 1 < OH;                                                  \
            const ptrdiff_t b = ty * tw;                                                       \
            for (ptrdiff_t tx = 0; tx < full; ++tx) {                                          \
                y0[b + tx] = g0[2 * tx]; y1[b + tx] = g0[2 * tx + 1];                          \
            }                                                                                  \
            if (row1)                                                                          \
                for (ptrdiff_t tx = 0; tx < full; ++tx) {                                      \
                    y2[b + tx] = g1[2 * tx]; y3[b + tx] = g1[2 * tx + 1];                      \
                }                                                                              \
            else                                                                               \
                for (ptrdiff_t tx = 0; tx < full; ++tx) y2[b + tx] = y3[b + tx] = 0;           \
            if (OW & 1) {                                                                      \
                y0[b + full] = g0[OW - 1]; y1[b + full] = 0;                                   \
                y2[b + full] = row1 ? g1[OW - 1] : 0; y3[b + full] = 0;                        \
            }                                                                                  \
        }                                                                                      \
    }
FC_DEFINE_WINO_GATHER(fc_wino_gather_f, float)
FC_DEFINE_WINO_GATHER(fc_wino_gather_d, double)

#define FC_DEFINE_WINO_GY(NAME, T)                                                             \
    FC_MULTIVERSION static void NAME(const T* y, ptrdiff_t nt, T* GY, ptrdiff_t xis)           \
    {                                                                                          \
        const T *y0 = y, *y1 = y + nt, *y2 = y + 2 * nt, *y3 = y + 3 * nt;                     \
        FC_PRAGMA(GCC ivdep) /* GY never overlaps y */                                         \
        for (ptrdiff_t t = 0; t < nt; ++t) {                                                   \
            /* rows of A dY: (a, b), (a + c, b + d), (a - c, b - d), (-c, -d); each row  */    \
            /* (p, q) times A^T: p, p + q, p - q, -q */                                        \
            const T a = y0[t], b = y1[t], c = y2[t], d = y3[t];                                \
            const T p[4] = {a, a + c, a - c, -c}, q[4] = {b, b + d, b - d, -d};                \
            for (int k = 0; k < 4; ++k) {                                                      \
                GY[(4 * k + 0) * xis + t] = p[k];                                              \
                GY[(4 * k + 1) * xis + t] = p[k] + q[k];                                       \
                GY[(4 * k + 2) * xis + t] = p[k] - q[k];                                       \
                GY[(4 * k + 3) * xis + t] = -q[k];                                             \
            }                                                                                  \
        }                                                                                      \
    }
FC_DEFINE_WINO_GY(fc_wino_gy_f, float)
FC_DEFINE_WINO_GY(fc_wino_gy_d, double)

#if FC_HAVE_AVX512
/* float32, AVX-512, tw <= 15 (padded rows of <= 32): the same transform straight from the
 * unpadded image x (C x H x W, padding pt, pl; rows and columns outside are zeros). Each
 * padded row is two masked loads (no padded copy) split into its four Q rows by
 * two-source permutes instead of stride-2 scalar copies: at 7x7 images the scalar split
 * and the padded copy took longer than the transform itself. */
FC_TARGET_AVX512 static void fc_wino_input_avx512_f(const float* x, ptrdiff_t C, ptrdiff_t H,
                                                    ptrdiff_t W, ptrdiff_t pt, ptrdiff_t pl,
                                                    ptrdiff_t th, ptrdiff_t tw, float* V,
                                                    ptrdiff_t ld, ptrdiff_t xis, ptrdiff_t t0,
                                                    float* q)
{
    typedef float T;
    const ptrdiff_t qs = (th + 1) * tw, nt = th * tw;
    /* lanes w of the padded row [0, 32) with 0 <= w - pl < W */
    const ptrdiff_t w_lo = pl > 0 ? pl : 0, w_hi = (pl + W) < 32 ? (pl + W) : 32;
    unsigned long long bits = 0;
    for (ptrdiff_t w = w_lo; w < w_hi; ++w) bits |= 1ull << w;
    const __mmask16 m_lo = (__mmask16)(bits & 0xFFFFu), m_hi = (__mmask16)(bits >> 16);
    const __mmask16 m_tw = fc_lanes16(tw);
    const __m512i i_e0 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i i_e2 = _mm512_setr_epi32(2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 30);
    const __m512i i_o1 = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512i i_o3 = _mm512_setr_epi32(3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 31);
    for (ptrdiff_t c = 0; c < C; ++c) {
        const float* xc = x + c * H * W;
        for (int a = 0; a < 2; ++a)
            for (ptrdiff_t r = 0; r <= th; ++r) {
                const ptrdiff_t ih = 2 * r + a - pt;
                __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
                if (ih >= 0 && ih < H) {
                    const float* row = xc + ih * W - pl; /* masked-off lanes are not read */
                    lo = _mm512_maskz_loadu_ps(m_lo, row);
                    hi = _mm512_maskz_loadu_ps(m_hi, row + 16);
                }
                float* qr = q + a * 4 * qs + r * tw;
                _mm512_mask_storeu_ps(qr, m_tw, _mm512_permutex2var_ps(lo, i_e0, hi));
                _mm512_mask_storeu_ps(qr + qs, m_tw, _mm512_permutex2var_ps(lo, i_e2, hi));
                _mm512_mask_storeu_ps(qr + 2 * qs, m_tw, _mm512_permutex2var_ps(lo, i_o1, hi));
                _mm512_mask_storeu_ps(qr + 3 * qs, m_tw, _mm512_permutex2var_ps(lo, i_o3, hi));
            }
        FC_WINO_TRANSFORM(T)
    }
}

/* fc_wino_scatter_f for tw <= 8 (OW <= 16): each output row is two rows of y
 * interleaved by one permute, written with one masked store. */
FC_TARGET_AVX512 static void fc_wino_scatter_avx512_f(const float* y, ptrdiff_t nt, ptrdiff_t t0,
                                                      ptrdiff_t th, ptrdiff_t tw, float* o,
                                                      ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t ors)
{
    const float* y0 = y + t0; const float* y1 = y0 + nt; const float* y2 = y1 + nt;
    const float* y3 = y2 + nt;
    const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __mmask16 m_tw = fc_lanes16(tw), m_ow = fc_lanes16(OW);
    for (ptrdiff_t ty = 0; ty < th; ++ty) {
        const ptrdiff_t b = ty * tw;
        float* o0 = o + 2 * ty * ors;
        _mm512_mask_storeu_ps(o0, m_ow, _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(m_tw, y0 + b), il,
                                                               _mm512_maskz_loadu_ps(m_tw, y1 + b)));
        if (2 * ty + 1 < OH)
            _mm512_mask_storeu_ps(o0 + ors, m_ow,
                                  _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(m_tw, y2 + b), il,
                                                         _mm512_maskz_loadu_ps(m_tw, y3 + b)));
    }
}

/* fc_wino_input_f with AVX2 (float32): the same planes and transform, the split of each
 * padded row into its four Q rows by even/odd deinterleaves of 16 values (two shuffles and
 * two lane permutes) instead of stride-2 scalar copies, which took 60 % of the transform's
 * time (ResNet-8's 16 channels at 28^2, AMD Zen 1: 14.5 of 24 us). Loads past the padded
 * row and stores past tw are partial (_avx2_lanes.h). */
FC_TARGET_AVX2 static void fc_wino_input_avx2_f(const float* xp, ptrdiff_t C, ptrdiff_t Hp,
                                                ptrdiff_t Wp, ptrdiff_t th, ptrdiff_t tw,
                                                float* V, ptrdiff_t ld, ptrdiff_t xis,
                                                ptrdiff_t t0, float* q)
{
    typedef float T;
    const ptrdiff_t qs = (th + 1) * tw, nt = th * tw;
    for (ptrdiff_t c = 0; c < C; ++c) {
        const float* xc = xp + c * Hp * Wp;
        for (int a = 0; a < 2; ++a)
            for (ptrdiff_t r = 0; r <= th; ++r) {
                const float* row = xc + (2 * r + a) * Wp;
                float* q0 = q + (a * 4 + 0) * qs + r * tw; /* row[2s] */
                float* q1 = q + (a * 4 + 1) * qs + r * tw; /* row[2s + 2] */
                float* q2 = q + (a * 4 + 2) * qs + r * tw; /* row[2s + 1] */
                float* q3 = q + (a * 4 + 3) * qs + r * tw; /* row[2s + 3] */
                for (ptrdiff_t s0 = 0; s0 < tw; s0 += 8) {
                    const ptrdiff_t o = 2 * s0, n = tw - s0; /* row[o, o + 18) feeds 8 of each */
                    __m256 l0, h0, l2, h2;
                    if (o + 18 <= Wp) {
                        l0 = _mm256_loadu_ps(row + o); h0 = _mm256_loadu_ps(row + o + 8);
                        l2 = _mm256_loadu_ps(row + o + 2); h2 = _mm256_loadu_ps(row + o + 10);
                    } else {
                        l0 = fc_loadu_first8(row + o, Wp - o);
                        h0 = fc_loadu_first8(row + o + 8, Wp - o - 8);
                        l2 = fc_loadu_first8(row + o + 2, Wp - o - 2);
                        h2 = fc_loadu_first8(row + o + 10, Wp - o - 10);
                    }
                    __m256 e0, d0, e2, d2;
                    fc_deinterleave8(l0, h0, &e0, &d0);
                    fc_deinterleave8(l2, h2, &e2, &d2);
                    fc_storeu_first8(q0 + s0, e0, n);
                    fc_storeu_first8(q1 + s0, e2, n);
                    fc_storeu_first8(q2 + s0, d0, n);
                    fc_storeu_first8(q3 + s0, d2, n);
                }
            }
        FC_WINO_TRANSFORM(T)
    }
}

/* fc_wino_scatter_f with AVX2 (float32): each output row is two rows of y interleaved
 * (unpack and a 128-bit lane permute), 16 outputs a step, the row's tail stored
 * partially. */
FC_TARGET_AVX2 static void fc_wino_scatter_avx2_f(const float* y, ptrdiff_t nt, ptrdiff_t t0,
                                                  ptrdiff_t th, ptrdiff_t tw, float* o,
                                                  ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t ors)
{
    const float* y0 = y + t0; const float* y1 = y0 + nt; const float* y2 = y1 + nt;
    const float* y3 = y2 + nt;
    for (ptrdiff_t ty = 0; ty < th; ++ty) {
        const ptrdiff_t b = ty * tw;
        float* o0 = o + 2 * ty * ors;
        const int second = 2 * ty + 1 < OH;
        for (ptrdiff_t x0 = 0; x0 < tw; x0 += 8) {
            const ptrdiff_t n = tw - x0, m = OW - 2 * x0; /* tiles and outputs left */
            for (int r = 0; r < 1 + second; ++r) {
                const __m256 u = fc_loadu_first8((r ? y2 : y0) + b + x0, n);
                const __m256 v = fc_loadu_first8((r ? y3 : y1) + b + x0, n);
                const __m256 lo = _mm256_unpacklo_ps(u, v), hi = _mm256_unpackhi_ps(u, v);
                float* orow = o0 + r * ors + 2 * x0;
                fc_storeu_first8(orow, _mm256_permute2f128_ps(lo, hi, 0x20), m);
                if (m > 8) fc_storeu_first8(orow + 8, _mm256_permute2f128_ps(lo, hi, 0x31), m - 8);
            }
        }
    }
}
#else /* never called: the callers check fc_have_avx512() / fc_have_avx2() */
static void fc_wino_input_avx512_f(const float* x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,
                                   ptrdiff_t pt, ptrdiff_t pl, ptrdiff_t th, ptrdiff_t tw,
                                   float* V, ptrdiff_t ld, ptrdiff_t xis, ptrdiff_t t0, float* q) {}
static void fc_wino_scatter_avx512_f(const float* y, ptrdiff_t nt, ptrdiff_t t0, ptrdiff_t th,
                                     ptrdiff_t tw, float* o, ptrdiff_t OH, ptrdiff_t OW,
                                     ptrdiff_t ors) {}
static void fc_wino_input_avx2_f(const float* xp, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp,
                                 ptrdiff_t th, ptrdiff_t tw, float* V, ptrdiff_t ld,
                                 ptrdiff_t xis, ptrdiff_t t0, float* q) {}
static void fc_wino_scatter_avx2_f(const float* y, ptrdiff_t nt, ptrdiff_t t0, ptrdiff_t th,
                                   ptrdiff_t tw, float* o, ptrdiff_t OH, ptrdiff_t OW,
                                   ptrdiff_t ors) {}
#endif

#endif
