/* Single-plane 'valid' correlation rows for fastconv.signal / filter2d.
 *
 * out[r][x] = sum_{i<kh} sum_{j<kw} w[i*kw + j] * ext[r + i][x + j] for the output rows of
 * one task, ext being the plane extended by its boundary: every tap multiplied (zeros
 * included, so NaN/inf propagate), taps summed in row-major order from 0 (a fixed order:
 * deterministic, whichever thread or code path computes an output).
 *
 * A task reads the source rows in place through a table of row pointers (a row outside
 * the plane points at its source row, or at a row of fill values), so the rows' extension
 * costs nothing; only the few output columns whose taps reach past the left or right edge
 * are computed from a small extended strip of those columns.
 *
 * The row loops: on an AVX-512 CPU, blocks of FC_FILTER_R rows x FC_FILTER_V vectors of
 * outputs held in registers, each loaded input vector feeding every output row of the
 * block it reaches (_filter_avx512.h; a table of specialised kernel sizes: 3x3);
 * elsewhere portable loops over FC_FILTER_BLOCK outputs of one row (FC_MULTIVERSION:
 * AVX2 / baseline).
 */
#ifndef FASTCONV_FILTER_PLANES_H
#define FASTCONV_FILTER_PLANES_H
#include <stddef.h>
#include <stdint.h>
#include "_multiversion.h"

#define FC_CAT_(a, b) a##b
#define FC_CAT(a, b) FC_CAT_(a, b)

/* Portable path: outputs of one row per register block (4 zmm of float, 8 of double). */
#define FC_FILTER_BLOCK 64
/* AVX-512 path: output rows x vectors per register block (16 accumulators). */
#ifndef FC_FILTER_R
#define FC_FILTER_R 4
#endif
#ifndef FC_FILTER_V
#define FC_FILTER_V 4
#endif

/* rows function: output rows [0, nrows) x columns [x0, x1) of out (row stride ldo); output
 * (r, x) reads rows[r + i][coff + x + j]. */
typedef void (*fc_frows_fn_float)(const float *const *, ptrdiff_t, const float *, ptrdiff_t,
                                  ptrdiff_t, float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t);
typedef void (*fc_frows_fn_double)(const double *const *, ptrdiff_t, const double *, ptrdiff_t,
                                   ptrdiff_t, double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t);
#define fc_frows_fn_t(T) FC_CAT(fc_frows_fn_, T)

#define FC_FILTER_ROWS(T, NAME)                                                            \
    FC_MULTIVERSION static void NAME(const T *const *restrict rows, ptrdiff_t coff,       \
                                     const T *restrict w, ptrdiff_t kh, ptrdiff_t kw,     \
                                     T *restrict out, ptrdiff_t ldo, ptrdiff_t nrows,     \
                                     ptrdiff_t x0, ptrdiff_t x1)                          \
    {                                                                                      \
        for (ptrdiff_t r = 0; r < nrows; r++) {                                            \
            T *restrict o = out + r * ldo;                                                 \
            ptrdiff_t x = x0;                                                              \
            for (; x + FC_FILTER_BLOCK <= x1; x += FC_FILTER_BLOCK) {                      \
                T acc[FC_FILTER_BLOCK];                                                    \
                for (int k = 0; k < FC_FILTER_BLOCK; k++)                                  \
                    acc[k] = 0;                                                            \
                for (ptrdiff_t i = 0; i < kh; i++) {                                       \
                    const T *restrict s = rows[r + i] + coff + x;                          \
                    for (ptrdiff_t j = 0; j < kw; j++) {                                   \
                        const T wv = w[i * kw + j];                                        \
                        FC_PRAGMA(omp simd)                                                \
                        for (int k = 0; k < FC_FILTER_BLOCK; k++)                          \
                            acc[k] += wv * s[j + k];                                       \
                    }                                                                      \
                }                                                                          \
                for (int k = 0; k < FC_FILTER_BLOCK; k++)                                  \
                    o[x + k] = acc[k];                                                     \
            }                                                                              \
            if (x < x1) { /* the tail: same order of taps per output */                    \
                for (ptrdiff_t k = x; k < x1; k++)                                         \
                    o[k] = 0;                                                              \
                for (ptrdiff_t i = 0; i < kh; i++) {                                       \
                    const T *restrict s = rows[r + i] + coff;                              \
                    for (ptrdiff_t j = 0; j < kw; j++) {                                   \
                        const T wv = w[i * kw + j];                                        \
                        for (ptrdiff_t k = x; k < x1; k++)                                 \
                            o[k] += wv * s[j + k];                                         \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }

FC_FILTER_ROWS(float, fc_frows_portable_f)
FC_FILTER_ROWS(double, fc_frows_portable_d)

#if FC_HAVE_AVX512
#define FC_T float
#define FC_SFX f
#include "_filter_avx512.h"
#undef FC_T
#undef FC_SFX
#define FC_T double
#define FC_SFX d
#define FC_FLOAT_IS_DOUBLE
#include "_filter_avx512.h"
#undef FC_FLOAT_IS_DOUBLE
#undef FC_T
#undef FC_SFX
#endif

/* Whether the AVX-512 blocks exist in this build and run on this CPU. */
static int fc_filter_have_avx512(void) { return FC_HAVE_AVX512 && fc_have_avx512(); }

/* Output columns [xa, xb) whose taps all fall inside a plane of width W (extended by
 * `left` columns before it): read in place; [0, xa) and [xb, ow) go through strips. */
static void fc_filter_interior(ptrdiff_t W, ptrdiff_t left, ptrdiff_t kw, ptrdiff_t ow,
                               ptrdiff_t *xa, ptrdiff_t *xb)
{
    ptrdiff_t a = left < ow ? left : ow;
    ptrdiff_t b = W - kw + 1 + left;
    b = b < ow ? b : ow;
    *xa = a;
    *xb = b > a ? b : a;
}

#define FC_ALIGN64(n) (((n) + 63) & ~(size_t)63)

/* Bytes of one thread's scratch for tasks of up to `rows` output rows: two row-pointer
 * tables, a row of fill values and the widest column strip. */
static size_t fc_filter_scratch_bytes(ptrdiff_t rows, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t W,
                                      ptrdiff_t left, ptrdiff_t ow, size_t tsize)
{
    ptrdiff_t xa, xb;
    fc_filter_interior(W, left, kw, ow, &xa, &xb);
    const ptrdiff_t ne = rows + kh - 1;
    const ptrdiff_t sl = xa > 0 ? xa + kw - 1 : 0, sr = ow > xb ? ow + kw - 1 - xb : 0;
    const ptrdiff_t sw = sl > sr ? sl : sr;
    return FC_ALIGN64(2 * (size_t)ne * sizeof(void *)) + FC_ALIGN64((size_t)W * tsize)
           + (size_t)ne * (size_t)sw * tsize + 64;
}

/* Output rows [r0, r1) of one plane x (H, W). With rmap: x extended on the fly, extended
 * row e being source row rmap[e] (all fill when < 0) and extended column c source column
 * cmap[c] (fill when < 0; interior columns c - left). Without (rmap NULL): x is already
 * extended (its rows are the extended rows, W the extended width). out: (., ow) of the
 * plane. scratch: fc_filter_scratch_bytes(r1 - r0, ...) bytes, 64-byte aligned. */
#define FC_FILTER_TASK(T, NAME, PORTABLE, AVX)                                             \
    static void NAME(const T *x, ptrdiff_t W, const ptrdiff_t *rmap, const ptrdiff_t *cmap, \
                     ptrdiff_t left, T fill, const T *w, ptrdiff_t kh, ptrdiff_t kw, T *out, \
                     ptrdiff_t ow, ptrdiff_t r0, ptrdiff_t r1, void *scratch, int avx512)   \
    {                                                                                      \
        const ptrdiff_t n = r1 - r0, ne = n + kh - 1;                                      \
        const T **rows = (const T **)scratch;                                              \
        const T **srows = rows + ne;                                                       \
        T *fillrow = (T *)((char *)scratch + FC_ALIGN64(2 * (size_t)ne * sizeof(void *))); \
        T *strip = (T *)((char *)fillrow + FC_ALIGN64((size_t)W * sizeof(T)));             \
        fc_frows_fn_t(T) rowsfn = PORTABLE;                                                \
        AVX                                                                                \
        T *o = out + r0 * ow;                                                              \
        if (rmap == NULL) {                                                                \
            for (ptrdiff_t e = 0; e < ne; e++)                                             \
                rows[e] = x + (r0 + e) * W;                                                \
            rowsfn(rows, 0, w, kh, kw, o, ow, n, 0, ow);                                   \
            return;                                                                        \
        }                                                                                  \
        int need_fill = 0;                                                                 \
        for (ptrdiff_t e = 0; e < ne; e++) {                                               \
            const ptrdiff_t src = rmap[r0 + e];                                            \
            need_fill |= src < 0;                                                          \
            rows[e] = src < 0 ? fillrow : x + src * W;                                     \
        }                                                                                  \
        if (need_fill)                                                                     \
            for (ptrdiff_t c = 0; c < W; c++)                                              \
                fillrow[c] = fill;                                                         \
        ptrdiff_t xa, xb;                                                                  \
        fc_filter_interior(W, left, kw, ow, &xa, &xb);                                     \
        if (xb > xa)                                                                       \
            rowsfn(rows, -left, w, kh, kw, o, ow, n, xa, xb);                              \
        for (int side = 0; side < 2; side++) { /* the border columns, through a strip */   \
            const ptrdiff_t o0 = side ? xb : 0, o1 = side ? ow : xa;                       \
            if (o1 <= o0)                                                                  \
                continue;                                                                  \
            const ptrdiff_t c0 = o0, sw = o1 + kw - 1 - o0;                                \
            for (ptrdiff_t e = 0; e < ne; e++) {                                           \
                T *b = strip + e * sw;                                                     \
                const ptrdiff_t src = rmap[r0 + e];                                        \
                srows[e] = b;                                                              \
                for (ptrdiff_t c = 0; c < sw; c++) {                                       \
                    const ptrdiff_t sc = cmap[c0 + c];                                     \
                    b[c] = src < 0 || sc < 0 ? fill : x[src * W + sc];                     \
                }                                                                          \
            }                                                                              \
            rowsfn(srows, -c0, w, kh, kw, o, ow, n, o0, o1);                               \
        }                                                                                  \
    }

#if FC_HAVE_AVX512
FC_FILTER_TASK(float, fc_filter_task_f, fc_frows_portable_f,
               if (avx512) rowsfn = fc_frows_avx512_f(kh, kw);)
FC_FILTER_TASK(double, fc_filter_task_d, fc_frows_portable_d,
               if (avx512) rowsfn = fc_frows_avx512_d(kh, kw);)
#else
FC_FILTER_TASK(float, fc_filter_task_f, fc_frows_portable_f, (void)avx512;)
FC_FILTER_TASK(double, fc_filter_task_d, fc_frows_portable_d, (void)avx512;)
#endif

#endif
