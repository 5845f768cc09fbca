/* grad_input of a stride-1 convolution with few input channels on AVX2 + FMA, as products
 * and a scatter: for each input channel c and kernel tap (i, j),
 *     T[i][j][p] = sum over output channels o of w[o][c][i][j] * gy[o][p]
 * over the flat pixels p of grad_output (vectors of 8 float32 / 4 float64 pixels that run
 * across row ends), then gi[c][h - pt + i*dh][w - pl + j*dw] += T[i][j][h*OW + w] where
 * that lands inside the input. No multiply-add falls on padding of the gradient (only on
 * the kernel columns padded to a multiple of 5 and the last vector of a band): the
 * forward kernel on the transposed problem (_direct_grad_input) correlates the
 * zero-padded gradient and, with
 * 6 input channels as lenet_c3's, fills 6 of a channel vector's 8 lanes; on lenet_c3
 * (10 x 10 gradients padded to 18 x 18 for 14 x 14 inputs) 38 % of its multiply-adds were
 * useful.
 *
 * The products run in blocks of 5 kernel columns x 2 pixel vectors (10 accumulators, the
 * two gy vectors and a broadcast weight: 13 of the 16 ymm registers), over the pixels of a
 * band of whole gradient rows (T stays in L1). gy is one image's gradient of one group,
 * copied by the caller into planes of Ppad pixels (a whole number of blocks, zeros past
 * OH*OW): every load is a full one. wpack[c][i][o][jb] holds the weights with the kernel
 * columns padded to a multiple of 5 with zeros.
 *
 * The scatter adds each T row segment to its input row in the fixed order (i, j, row): the
 * sums of one image do not depend on the thread that runs it.
 */
#ifndef FASTCONV_GRAD_INPUT_AVX2_H
#define FASTCONV_GRAD_INPUT_AVX2_H
#include <stddef.h>
#include <string.h>
#include "_multiversion.h"
#include "_avx2_lanes.h"

/* Kernel columns per product block: wpack's columns are padded to a multiple of it. */
#define FC_GIX_JB 5

#if FC_HAVE_AVX512 /* x86-64 with target attributes */

#define FC_GIX_J(X, A, B) X(0, A, B) X(1, A, B) X(2, A, B) X(3, A, B) X(4, A, B)
#define FC_GIX_ZERO(J, VT, _) VT a##J = (VT){0}, b##J = (VT){0};
#define FC_GIX_FMA(J, SET1, FMA)                                                               \
    {                                                                                          \
        const __typeof__(g0) wv = SET1(wo[J]);                                                 \
        a##J = FMA(wv, g0, a##J);                                                              \
        b##J = FMA(wv, g1, b##J);                                                              \
    }
#define FC_GIX_STORE(J, STOREU, _)                                                             \
    STOREU(t + J * tstride, a##J);                                                             \
    STOREU(t + J * tstride + LANES, b##J);

/* t[j][0 : 2*LANES] = sum over o < Co of w[o*wstride + j] * gy[o*Ppad + 0 : 2*LANES],
 * j < FC_GIX_JB (wpack's zero columns past kw give zero sums, never read). */
#define FC_DEFINE_GIX_BLOCK(NAME, T, VT, LANES_, LOADU, STOREU, SET1, FMA)                     \
    FC_TARGET_AVX2 static inline void NAME(const T* gy, ptrdiff_t Ppad, const T* w,            \
                                           ptrdiff_t Co, ptrdiff_t wstride, T* t,              \
                                           ptrdiff_t tstride)                                  \
    {                                                                                          \
        enum { LANES = LANES_ };                                                               \
        VT g0, g1;                                                                             \
        FC_GIX_J(FC_GIX_ZERO, VT, _)                                                           \
        for (ptrdiff_t o = 0; o < Co; ++o) {                                                   \
            const T* wo = w + o * wstride;                                                     \
            g0 = LOADU(gy + o * Ppad);                                                         \
            g1 = LOADU(gy + o * Ppad + LANES);                                                 \
            FC_GIX_J(FC_GIX_FMA, SET1, FMA)                                                    \
        }                                                                                      \
        FC_GIX_J(FC_GIX_STORE, STOREU, _)                                                      \
    }
FC_DEFINE_GIX_BLOCK(fc_gix_block_f, float, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps,
                    _mm256_set1_ps, _mm256_fmadd_ps)
FC_DEFINE_GIX_BLOCK(fc_gix_block_d, double, __m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd,
                    _mm256_set1_pd, _mm256_fmadd_pd)

/* gi row y (W values) += sum over kernel columns j of T[j] row r shifted by dx_j = j*dw - pl:
 * gi[y][x] += T[j][r*OW + x - dx_j] where 0 <= x - dx_j < OW. Each vector of gi columns
 * gathers its kw terms in a register and is stored once (adding each j's shifted segment to
 * gi in turn stored vectors that the next j's overlapping loads had to wait for). Lanes
 * outside the T row are cleared by an AND with mask[LANES + s0 : ...], mask (OW + 4*LANES
 * values) all-ones bits on [LANES, LANES + OW) and zeros up to OW + 2*LANES: the unaligned
 * loads may reach a neighbouring row or the scratch's slack, values that never count. The
 * tail mask after it (LANES all-ones values, LANES zeros) keeps the first W - x0 lanes of a
 * row's last vector, which is stored whole except on a plane's last row. */
#define FC_DEFINE_GIX_ROW(NAME, T, VT, LANES_, LOADU, LOADN, STOREU, STOREN, ADD, AND, ZERO)  \
    /* acc += the masked T terms of the gi column vector at x (T column s0 of tj) */          \
    FC_TARGET_AVX2 static inline VT NAME##_term(VT acc, const T* tj, const T* mask,            \
                                                ptrdiff_t s0, ptrdiff_t OW)                    \
    {                                                                                          \
        s0 = s0 < -LANES_ ? -LANES_ : s0 > OW ? OW : s0; /* (then every lane masked off) */    \
        return ADD(acc, AND(LOADU(tj + s0), LOADU(mask + LANES_ + s0)));                       \
    }                                                                                          \
    /* gi_row[x : x + LANES] += acc, the lanes past W left as they are; room: the values   \
     * from gi_row to the end of its plane */                                                 \
    FC_TARGET_AVX2 static inline void NAME##_put(T* gi_row, ptrdiff_t x, ptrdiff_t W, VT acc,  \
                                                 const T* mask, ptrdiff_t OW, ptrdiff_t room)  \
    {                                                                                          \
        if (x + LANES_ <= W) {                                                                 \
            STOREU(gi_row + x, ADD(LOADU(gi_row + x), acc));                                   \
        } else if (x + LANES_ <= room) {                                                       \
            /* the lanes past W are later rows' first values of the same plane (this task's,  \
             * sums from the zeroed plane, never -0): they get + 0 */                          \
            STOREU(gi_row + x, ADD(LOADU(gi_row + x), AND(acc, LOADU(mask + OW + 3 * LANES_ - (W - x))))); \
        } else {                                                                               \
            STOREN(gi_row + x, ADD(LOADN(gi_row + x, W - x), acc), W - x);                     \
        }                                                                                      \
    }                                                                                          \
    FC_TARGET_AVX2 static inline void NAME(const T* t, ptrdiff_t tstride, ptrdiff_t r,         \
                                           ptrdiff_t OW, ptrdiff_t kw, ptrdiff_t dw,           \
                                           ptrdiff_t pl, const T* mask, T* gi_row, ptrdiff_t W, \
                                           ptrdiff_t room)                                     \
    {                                                                                          \
        /* up to 4 vectors of gi columns at a time, each its own chain of adds */             \
        for (ptrdiff_t x0 = 0; x0 < W; x0 += 4 * LANES_) {                                     \
            const ptrdiff_t nx = (W - x0 + LANES_ - 1) / LANES_;                               \
            VT a0 = ZERO(), a1 = ZERO(), a2 = ZERO(), a3 = ZERO();                             \
            for (ptrdiff_t j = 0; j < kw; ++j) {                                               \
                const T* tj = t + j * tstride + r * OW;                                        \
                const ptrdiff_t s0 = x0 + pl - j * dw; /* T column of gi column x0 */          \
                a0 = NAME##_term(a0, tj, mask, s0, OW);                                        \
                if (nx > 1) a1 = NAME##_term(a1, tj, mask, s0 + LANES_, OW);                   \
                if (nx > 2) a2 = NAME##_term(a2, tj, mask, s0 + 2 * LANES_, OW);               \
                if (nx > 3) a3 = NAME##_term(a3, tj, mask, s0 + 3 * LANES_, OW);               \
            }                                                                                  \
            NAME##_put(gi_row, x0, W, a0, mask, OW, room);                                     \
            if (nx > 1) NAME##_put(gi_row, x0 + LANES_, W, a1, mask, OW, room);                \
            if (nx > 2) NAME##_put(gi_row, x0 + 2 * LANES_, W, a2, mask, OW, room);            \
            if (nx > 3) NAME##_put(gi_row, x0 + 3 * LANES_, W, a3, mask, OW, room);            \
        }                                                                                      \
    }
FC_DEFINE_GIX_ROW(fc_gix_row_f, float, __m256, 8, _mm256_loadu_ps, fc_loadu_first8,
                  _mm256_storeu_ps, fc_storeu_first8, _mm256_add_ps, _mm256_and_ps,
                  _mm256_setzero_ps)
FC_DEFINE_GIX_ROW(fc_gix_row_d, double, __m256d, 4, _mm256_loadu_pd, fc_loadu_first4d,
                  _mm256_storeu_pd, fc_storeu_first4d, _mm256_add_pd, _mm256_and_pd,
                  _mm256_setzero_pd)

/* fc_grad_input_scatter's scratch, in values: the masks (OW + 4*LANES), slack before a
 * product buffer, then two product buffers of kw rounded up to FC_GIX_JB rows of tstride,
 * each followed by slack. fc_gix_row's loads, their T column clamped into [-LANES, OW],
 * reach at most LANES values before or after a buffer's rows; the slack is larger. */
static inline ptrdiff_t fc_gix_front(ptrdiff_t OW, ptrdiff_t kw, ptrdiff_t dw, ptrdiff_t lanes)
{
    return OW + 4 * lanes + (kw - 1) * dw + lanes;
}
static inline ptrdiff_t fc_gix_tbuf(ptrdiff_t kw, ptrdiff_t tstride, ptrdiff_t W, ptrdiff_t pl,
                                    ptrdiff_t dw, ptrdiff_t lanes)
{
    const ptrdiff_t kwp = (kw + FC_GIX_JB - 1) / FC_GIX_JB * FC_GIX_JB;
    return kwp * tstride + W + pl + lanes + (kw - 1) * dw + lanes;
}
static inline ptrdiff_t fc_gix_scratch_len(ptrdiff_t OW, ptrdiff_t kw, ptrdiff_t tstride,
                                           ptrdiff_t W, ptrdiff_t pl, ptrdiff_t dw,
                                           ptrdiff_t lanes)
{
    return fc_gix_front(OW, kw, dw, lanes) + 2 * fc_gix_tbuf(kw, tstride, W, pl, dw, lanes);
}

/* One image and group: gi (Ci, H, W), written whole (zeroed, then every tap's sums added).
 * gy: (Co, Ppad) as described above; scratch: fc_gix_scratch_len values; tstride >= the
 * pixels of one band rounded up to a block (band_rows * OW -> multiple of 2*LANES). */
#define FC_DEFINE_GIX(NAME, BLOCK, ROW, T, LANES)                                              \
    FC_TARGET_AVX2 static void NAME(const T* gy, ptrdiff_t Co, ptrdiff_t OH, ptrdiff_t OW,     \
                                    ptrdiff_t Ppad, const T* wpack, ptrdiff_t kh,              \
                                    ptrdiff_t kw, T* gi, ptrdiff_t Ci, ptrdiff_t H,            \
                                    ptrdiff_t W, ptrdiff_t pt, ptrdiff_t pl, ptrdiff_t dh,     \
                                    ptrdiff_t dw, ptrdiff_t band_rows, T* scratch,             \
                                    ptrdiff_t tstride)                                         \
    {                                                                                          \
        const ptrdiff_t kwp = (kw + FC_GIX_JB - 1) / FC_GIX_JB * FC_GIX_JB;                    \
        const ptrdiff_t tbuf = fc_gix_tbuf(kw, tstride, W, pl, dw, LANES);                     \
        T* mask = scratch;                                                                     \
        T* t = scratch + fc_gix_front(OW, kw, dw, LANES);                                      \
        memset(mask, 0, (size_t)(OW + 4 * LANES) * sizeof(T));                                 \
        memset(mask + LANES, 0xff, (size_t)OW * sizeof(T));                                    \
        memset(mask + OW + 2 * LANES, 0xff, (size_t)LANES * sizeof(T));                        \
        memset(gi, 0, (size_t)(Ci * H * W) * sizeof(T));                                       \
        for (ptrdiff_t h0 = 0; h0 < OH; h0 += band_rows) {                                     \
            const ptrdiff_t h1 = h0 + band_rows < OH ? h0 + band_rows : OH;                    \
            const ptrdiff_t p0 = h0 * OW, np = (h1 - h0) * OW;                                 \
            /* products of tap row q = c*kh + i into buffer q % 2, scattered one tap row       \
             * later: the sums' stores have left the store buffer by the time the row's        \
             * unaligned loads read them (read at once, each load waited on two stores) */     \
            for (ptrdiff_t q = 0; q <= Ci * kh; ++q) {                                         \
                if (q < Ci * kh) {                                                             \
                    const T* wci = wpack + q * Co * kwp;                                       \
                    T* tq = t + (q & 1) * tbuf;                                                \
                    /* T[j][p] for every kernel column j, FC_GIX_JB at a time */               \
                    for (ptrdiff_t j0 = 0; j0 < kw; j0 += FC_GIX_JB)                           \
                        for (ptrdiff_t p = 0; p < np; p += 2 * LANES)                          \
                            BLOCK(gy + p0 + p, Ppad, wci + j0, Co, kwp, tq + j0 * tstride + p, \
                                  tstride);                                                    \
                }                                                                              \
                if (q == 0) continue;                                                          \
                const ptrdiff_t c = (q - 1) / kh, i = (q - 1) % kh;                            \
                const T* tp = t + ((q - 1) & 1) * tbuf;                                        \
                for (ptrdiff_t h = h0; h < h1; ++h) {                                          \
                    const ptrdiff_t y = h - pt + i * dh;                                       \
                    if (y >= 0 && y < H)                                                       \
                        ROW(tp, tstride, h - h0, OW, kw, dw, pl, mask, gi + (c * H + y) * W, W,   \
                            (H - y) * W);                                              \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }
FC_DEFINE_GIX(fc_grad_input_scatter_avx2_f, fc_gix_block_f, fc_gix_row_f, float, 8)
FC_DEFINE_GIX(fc_grad_input_scatter_avx2_d, fc_gix_block_d, fc_gix_row_d, double, 4)

#else /* no x86 target attributes: the callers never select these kernels */
static inline ptrdiff_t fc_gix_scratch_len(ptrdiff_t OW, ptrdiff_t kw, ptrdiff_t tstride,
                                           ptrdiff_t W, ptrdiff_t pl, ptrdiff_t dw,
                                           ptrdiff_t lanes) { return 1; }
#define FC_STUB_GIX(NAME, T)                                                                   \
    static void NAME(const T* gy, ptrdiff_t Co, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t Ppad,    \
                     const T* wpack, ptrdiff_t kh, ptrdiff_t kw, T* gi, ptrdiff_t Ci,          \
                     ptrdiff_t H, ptrdiff_t W, ptrdiff_t pt, ptrdiff_t pl, ptrdiff_t dh,       \
                     ptrdiff_t dw, ptrdiff_t band_rows, T* scratch, ptrdiff_t tstride) {}
FC_STUB_GIX(fc_grad_input_scatter_avx2_f, float)
FC_STUB_GIX(fc_grad_input_scatter_avx2_d, double)
#endif
#endif
