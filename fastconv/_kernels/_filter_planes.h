/* Single-plane 'valid' correlation rows for fastconv.signal / filter2d.
 *
 * out[r][x] = sum_{i<kh} sum_{j<kw} w[i*kw + j] * in[(r + i)*ldi + x + j], for rows r in
 * [r0, r1) of one plane: every tap multiplied (zeros included, so NaN/inf propagate), taps
 * summed in row-major order (a fixed order: deterministic). Outputs go in blocks of
 * FC_FILTER_BLOCK held in registers over all taps (FC_MULTIVERSION: AVX-512/AVX2/baseline).
 */
#ifndef FASTCONV_FILTER_PLANES_H
#define FASTCONV_FILTER_PLANES_H
#include <stddef.h>
#include "_multiversion.h"

/* Outputs per register block: the accumulators of one block stay in vector registers
 * across all the taps (4 zmm for float, 8 for double), stored once. */
#define FC_FILTER_BLOCK 64

#define FC_FILTER_ROWS(T, NAME)                                                            \
    FC_MULTIVERSION static void NAME(const T *restrict in, ptrdiff_t ldi,                 \
                                     const T *restrict w, ptrdiff_t kh, ptrdiff_t kw,     \
                                     T *restrict out, ptrdiff_t ow, ptrdiff_t r0,         \
                                     ptrdiff_t r1)                                        \
    {                                                                                      \
        for (ptrdiff_t r = r0; r < r1; r++) {                                              \
            T *restrict o = out + r * ow;                                                  \
            const T *restrict base = in + r * ldi;                                         \
            ptrdiff_t x0 = 0;                                                              \
            for (; x0 + FC_FILTER_BLOCK <= ow; x0 += FC_FILTER_BLOCK) {                    \
                T acc[FC_FILTER_BLOCK];                                                    \
                for (int x = 0; x < FC_FILTER_BLOCK; x++)                                  \
                    acc[x] = 0;                                                            \
                for (ptrdiff_t i = 0; i < kh; i++) {                                       \
                    for (ptrdiff_t j = 0; j < kw; j++) {                                   \
                        const T wv = w[i * kw + j];                                        \
                        const T *restrict s = base + i * ldi + j + x0;                     \
                        FC_PRAGMA(omp simd)                                                \
                        for (int x = 0; x < FC_FILTER_BLOCK; x++)                          \
                            acc[x] += wv * s[x];                                           \
                    }                                                                      \
                }                                                                          \
                for (int x = 0; x < FC_FILTER_BLOCK; x++)                                  \
                    o[x0 + x] = acc[x];                                                    \
            }                                                                              \
            if (x0 < ow) { /* the tail: same order of taps per output */                   \
                for (ptrdiff_t x = x0; x < ow; x++)                                        \
                    o[x] = 0;                                                              \
                for (ptrdiff_t i = 0; i < kh; i++) {                                       \
                    for (ptrdiff_t j = 0; j < kw; j++) {                                   \
                        const T wv = w[i * kw + j];                                        \
                        const T *restrict s = base + i * ldi + j;                          \
                        for (ptrdiff_t x = x0; x < ow; x++)                                \
                            o[x] += wv * s[x];                                             \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }

FC_FILTER_ROWS(float, fc_filter_rows_f)
FC_FILTER_ROWS(double, fc_filter_rows_d)


/* Extended rows [e0, e1) of one plane x (H, W) into buf (rows of wp = left + W + right):
 * extended row e copies source row rmap[e] (or is all fill when rmap[e] < 0), its border
 * columns c < left and c >= left + W copy source columns cmap[c] (fill when < 0). */
#define FC_EXTEND_ROWS(T, NAME)                                                            \
    static void NAME(const T *restrict x, ptrdiff_t W, const ptrdiff_t *restrict rmap,    \
                     const ptrdiff_t *restrict cmap, ptrdiff_t left, ptrdiff_t wp, T fill, \
                     ptrdiff_t e0, ptrdiff_t e1, T *restrict buf)                         \
    {                                                                                      \
        for (ptrdiff_t e = e0; e < e1; e++) {                                              \
            T *restrict b = buf + (e - e0) * wp;                                           \
            const ptrdiff_t src = rmap[e];                                                 \
            if (src < 0) {                                                                 \
                for (ptrdiff_t c = 0; c < wp; c++)                                         \
                    b[c] = fill;                                                           \
                continue;                                                                  \
            }                                                                              \
            const T *restrict row = x + src * W;                                           \
            for (ptrdiff_t c = 0; c < left; c++)                                           \
                b[c] = cmap[c] < 0 ? fill : row[cmap[c]];                                  \
            for (ptrdiff_t c = 0; c < W; c++)                                              \
                b[left + c] = row[c];                                                      \
            for (ptrdiff_t c = left + W; c < wp; c++)                                      \
                b[c] = cmap[c] < 0 ? fill : row[cmap[c]];                                  \
        }                                                                                  \
    }

FC_EXTEND_ROWS(float, fc_extend_rows_f)
FC_EXTEND_ROWS(double, fc_extend_rows_d)

#endif
