/* Fused 3x3 edge gradients of one plane for fastconv.filters (scikit-image's sobel /
 * prewitt / scharr): one pass over the image computes, per output pixel, both gradients
 *
 *   gx = S_cols(D_rows(x)),  D_rows: x[r+1][c] - x[r-1][c]  (derivative along axis 0)
 *   gy = S_rows(D_cols(x)),  D_cols: x[r][c+1] - x[r][c-1]  (derivative along axis 1)
 *   S: s0 * v[-1] + s1 * v[0] + s0 * v[+1], summed in that order (s0, s1 the integer weights)
 *
 * and stores only the result: the magnitude factor * sqrt(gx^2 + gy^2) (squares summed in the
 * output type, as NumPy on the two passes' results), or one of factor * gx, factor * gy.
 * These are the sums of fastconv's two separable 1-D passes (the derivative's zero tap
 * skipped), in the same order, so results match them bitwise for sobel/prewitt (whose
 * weights make every product exact) and within rounding for scharr (the passes' taps are
 * fused multiply-adds on AVX-512; here every product is rounded, in every code path).
 *
 * Types (SFX: input, arithmetic, output): f (float, float, float), d (double, double, double),
 * fd (float, float, double: integer images converted to float32 by the caller), u8 / u16
 * (uint8 / uint16 read directly and converted in registers, float, double: the gradients of
 * small integers are exact in float32; magnitude in double).
 *
 * Boundaries: a task (output rows [r0, r1)) takes its three source rows per output row from
 * the row map (rmap[r + k], k = 0..2: extended row r - 1 + k; < 0 means the caller's row of
 * fill values); the interior columns [1, W - 1) are read in place, the border columns 0 and
 * W - 1 through the column map (cmap[c + k], < 0 means the fill value), one pixel at a time.
 * Each pixel is computed by the same operations whatever the thread or row block.
 */
#ifndef FASTCONV_EDGE_PLANES_H
#define FASTCONV_EDGE_PLANES_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "_multiversion.h"

/* No contraction of a * b + c into fused multiply-adds here (GCC contracts across statements
 * and intrinsics by default): the squares of the magnitude are rounded before their sum, as
 * NumPy's on the separable passes, and the smoothing's products before their sums, in every
 * code path (the same bits whichever computes a pixel). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define FC_EDGE_MAG 0
#define FC_EDGE_GX 1
#define FC_EDGE_GY 2

/* The two gradients from the 8 samples a0..a2 (row r-1), b0, b2 (row r), c0..c2 (row r+1). */
#define FC_EDGE_GRAD(T, gx, gy)                                                            \
    T gx = s0 * (c0 - a0);                                                                 \
    gx = s1 * (c1 - a1) + gx;                                                              \
    gx = s0 * (c2 - a2) + gx;                                                              \
    T gy = s0 * (a2 - a0);                                                                 \
    gy = s1 * (b2 - b0) + gy;                                                              \
    gy = s0 * (c2 - c0) + gy;

#define FC_EDGE_OUT(TOUT, SQRT, gx, gy)                                                    \
    (which == FC_EDGE_MAG                                                                  \
         ? SQRT((TOUT)gx * (TOUT)gx + (TOUT)gy * (TOUT)gy) * factor                       \
         : (which == FC_EDGE_GX ? (TOUT)gx : (TOUT)gy) * factor)

#define FC_EDGE_PORTABLE(SFX, TIN, T, TOUT, SQRT)                                          \
    /* One pixel from three row pointers and three column indices (< 0: fill). */          \
    static inline TOUT fc_edge_px_##SFX(const TIN *const *rows, const ptrdiff_t *cs, T fill, \
                                        T s0, T s1, TOUT factor, int which)                \
    {                                                                                      \
        T v[3][3];                                                                         \
        for (int k = 0; k < 3; k++)                                                        \
            for (int j = 0; j < 3; j++)                                                    \
                v[k][j] = cs[j] < 0 ? fill : (T)rows[k][cs[j]];                            \
        const T a0 = v[0][0], a1 = v[0][1], a2 = v[0][2], b0 = v[1][0], b2 = v[1][2];      \
        const T c0 = v[2][0], c1 = v[2][1], c2 = v[2][2];                                  \
        FC_EDGE_GRAD(T, gx, gy)                                                            \
        return FC_EDGE_OUT(TOUT, SQRT, gx, gy);                                            \
    }                                                                                      \
    /* Interior columns [x0, x1) of one output row (1 <= x0, x1 <= W - 1). */              \
    FC_MULTIVERSION static void fc_edge_row_portable_##SFX(                                \
        const TIN *restrict a, const TIN *restrict b, const TIN *restrict c, T s0, T s1,   \
        TOUT factor, int which, TOUT *restrict o, ptrdiff_t x0, ptrdiff_t x1)              \
    {                                                                                      \
        if (which == FC_EDGE_MAG) {                                                        \
            FC_PRAGMA(omp simd)                                                            \
            for (ptrdiff_t x = x0; x < x1; x++) {                                          \
                const T a0 = (T)a[x - 1], a1 = (T)a[x], a2 = (T)a[x + 1];                  \
                const T b0 = (T)b[x - 1], b2 = (T)b[x + 1];                                \
                const T c0 = (T)c[x - 1], c1 = (T)c[x], c2 = (T)c[x + 1];                  \
                FC_EDGE_GRAD(T, gx, gy)                                                    \
                const TOUT X = (TOUT)gx, Y = (TOUT)gy;                                     \
                o[x] = SQRT(X * X + Y * Y) * factor;                                       \
            }                                                                              \
        } else if (which == FC_EDGE_GX) {                                                  \
            FC_PRAGMA(omp simd)                                                            \
            for (ptrdiff_t x = x0; x < x1; x++) {                                          \
                const T a0 = (T)a[x - 1], a1 = (T)a[x], a2 = (T)a[x + 1];                  \
                const T c0 = (T)c[x - 1], c1 = (T)c[x], c2 = (T)c[x + 1];                  \
                T gx = s0 * (c0 - a0);                                                     \
                gx = s1 * (c1 - a1) + gx;                                                  \
                gx = s0 * (c2 - a2) + gx;                                                  \
                o[x] = (TOUT)gx * factor;                                                  \
            }                                                                              \
        } else {                                                                           \
            FC_PRAGMA(omp simd)                                                            \
            for (ptrdiff_t x = x0; x < x1; x++) {                                          \
                const T a0 = (T)a[x - 1], a2 = (T)a[x + 1];                                \
                const T b0 = (T)b[x - 1], b2 = (T)b[x + 1];                                \
                const T c0 = (T)c[x - 1], c2 = (T)c[x + 1];                                \
                T gy = s0 * (a2 - a0);                                                     \
                gy = s1 * (b2 - b0) + gy;                                                  \
                gy = s0 * (c2 - c0) + gy;                                                  \
                o[x] = (TOUT)gy * factor;                                                  \
            }                                                                              \
        }                                                                                  \
    }

FC_EDGE_PORTABLE(f, float, float, float, sqrtf)
FC_EDGE_PORTABLE(d, double, double, double, sqrt)
FC_EDGE_PORTABLE(fd, float, float, double, sqrt)
FC_EDGE_PORTABLE(u8, uint8_t, float, double, sqrt)
FC_EDGE_PORTABLE(u16, uint16_t, float, double, sqrt)

#if FC_HAVE_AVX512
/* AVX-512 interior rows: vectors of L outputs at x0, x0 + L, ..., the last one moved back to
 * end at x1 (it recomputes a few outputs by the same operations); rows shorter than one
 * vector go through the portable loop. The same operations as the portable code (products
 * rounded, then summed: no fused multiply-adds), so a pixel's value does not depend on which
 * path computes it (a tile of the image, as fastconv.dask's chunks, gives the same bits). */
#define FC_EDGE_AVX_ROW(SFX, TIN, T, TOUT, L, VT, LOAD, SUB, MUL, ADD, SET1, STORE_MAG, STORE_ONE) \
    FC_TARGET_AVX512 static void fc_edge_row_avx512_##SFX(                                 \
        const TIN *restrict a, const TIN *restrict b, const TIN *restrict c, T s0, T s1,   \
        TOUT factor, int which, TOUT *restrict o, ptrdiff_t x0, ptrdiff_t x1)              \
    {                                                                                      \
        if (x1 - x0 < L) {                                                                 \
            fc_edge_row_portable_##SFX(a, b, c, s0, s1, factor, which, o, x0, x1);         \
            return;                                                                        \
        }                                                                                  \
        const VT w0 = SET1(s0), w1 = SET1(s1);                                             \
        for (ptrdiff_t x = x0;; x += L) {                                                  \
            if (x + L > x1)                                                                \
                x = x1 - L;                                                                \
            const VT a0 = LOAD(a + x - 1), a2 = LOAD(a + x + 1);                           \
            const VT c0 = LOAD(c + x - 1), c2 = LOAD(c + x + 1);                           \
            VT gx = w0, gy = w0;                                                           \
            if (which != FC_EDGE_GY) {                                                     \
                const VT a1 = LOAD(a + x), c1 = LOAD(c + x);                               \
                gx = MUL(w0, SUB(c0, a0));                                                 \
                gx = ADD(MUL(w1, SUB(c1, a1)), gx);                                             \
                gx = ADD(MUL(w0, SUB(c2, a2)), gx);                                             \
            }                                                                              \
            if (which != FC_EDGE_GX) {                                                     \
                const VT b0 = LOAD(b + x - 1), b2 = LOAD(b + x + 1);                       \
                gy = MUL(w0, SUB(a2, a0));                                                 \
                gy = ADD(MUL(w1, SUB(b2, b0)), gy);                                             \
                gy = ADD(MUL(w0, SUB(c2, c0)), gy);                                             \
            }                                                                              \
            if (which == FC_EDGE_MAG)                                                      \
                STORE_MAG(o + x, gx, gy, factor);                                          \
            else                                                                           \
                STORE_ONE(o + x, which == FC_EDGE_GX ? gx : gy, factor);                   \
            if (x + L >= x1)                                                               \
                break;                                                                     \
        }                                                                                  \
    }

/* float arithmetic */
#define FC_E_LOAD_F(p) _mm512_loadu_ps(p)
#define FC_E_LOAD_U8(p) _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p))))
#define FC_E_LOAD_U16(p) \
    _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))))
FC_TARGET_AVX512 static inline void fc_edge_store_mag_ff(float *o, __m512 gx, __m512 gy, float f)
{
    __m512 s = _mm512_add_ps(_mm512_mul_ps(gx, gx), _mm512_mul_ps(gy, gy));
    _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_sqrt_ps(s), _mm512_set1_ps(f)));
}
FC_TARGET_AVX512 static inline void fc_edge_store_one_ff(float *o, __m512 g, float f)
{
    _mm512_storeu_ps(o, _mm512_mul_ps(g, _mm512_set1_ps(f)));
}
FC_TARGET_AVX512 static inline __m512d fc_edge_lo_pd(__m512 v)
{
    return _mm512_cvtps_pd(_mm512_castps512_ps256(v));
}
FC_TARGET_AVX512 static inline __m512d fc_edge_hi_pd(__m512 v)
{
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}
FC_TARGET_AVX512 static inline __m512d fc_edge_mag_pd(__m512d gx, __m512d gy, __m512d f)
{
    return _mm512_mul_pd(_mm512_sqrt_pd(_mm512_add_pd(_mm512_mul_pd(gx, gx), _mm512_mul_pd(gy, gy))), f);
}
FC_TARGET_AVX512 static inline void fc_edge_store_mag_fd(double *o, __m512 gx, __m512 gy, double f)
{
    const __m512d fv = _mm512_set1_pd(f);
    _mm512_storeu_pd(o, fc_edge_mag_pd(fc_edge_lo_pd(gx), fc_edge_lo_pd(gy), fv));
    _mm512_storeu_pd(o + 8, fc_edge_mag_pd(fc_edge_hi_pd(gx), fc_edge_hi_pd(gy), fv));
}
FC_TARGET_AVX512 static inline void fc_edge_store_one_fd(double *o, __m512 g, double f)
{
    const __m512d fv = _mm512_set1_pd(f);
    _mm512_storeu_pd(o, _mm512_mul_pd(fc_edge_lo_pd(g), fv));
    _mm512_storeu_pd(o + 8, _mm512_mul_pd(fc_edge_hi_pd(g), fv));
}
FC_TARGET_AVX512 static inline void fc_edge_store_mag_dd(double *o, __m512d gx, __m512d gy, double f)
{
    _mm512_storeu_pd(o, fc_edge_mag_pd(gx, gy, _mm512_set1_pd(f)));
}
FC_TARGET_AVX512 static inline void fc_edge_store_one_dd(double *o, __m512d g, double f)
{
    _mm512_storeu_pd(o, _mm512_mul_pd(g, _mm512_set1_pd(f)));
}

FC_EDGE_AVX_ROW(f, float, float, float, 16, __m512, FC_E_LOAD_F, _mm512_sub_ps, _mm512_mul_ps,
                _mm512_add_ps, _mm512_set1_ps, fc_edge_store_mag_ff, fc_edge_store_one_ff)
FC_EDGE_AVX_ROW(fd, float, float, double, 16, __m512, FC_E_LOAD_F, _mm512_sub_ps, _mm512_mul_ps,
                _mm512_add_ps, _mm512_set1_ps, fc_edge_store_mag_fd, fc_edge_store_one_fd)
FC_EDGE_AVX_ROW(u8, uint8_t, float, double, 16, __m512, FC_E_LOAD_U8, _mm512_sub_ps, _mm512_mul_ps,
                _mm512_add_ps, _mm512_set1_ps, fc_edge_store_mag_fd, fc_edge_store_one_fd)
FC_EDGE_AVX_ROW(u16, uint16_t, float, double, 16, __m512, FC_E_LOAD_U16, _mm512_sub_ps, _mm512_mul_ps,
                _mm512_add_ps, _mm512_set1_ps, fc_edge_store_mag_fd, fc_edge_store_one_fd)
FC_EDGE_AVX_ROW(d, double, double, double, 8, __m512d, _mm512_loadu_pd, _mm512_sub_pd, _mm512_mul_pd,
                _mm512_add_pd, _mm512_set1_pd, fc_edge_store_mag_dd, fc_edge_store_one_dd)
#define FC_EDGE_PICK(SFX) (avx512 ? fc_edge_row_avx512_##SFX : fc_edge_row_portable_##SFX)
#else
#define FC_EDGE_PICK(SFX) ((void)avx512, fc_edge_row_portable_##SFX)
#endif

/* Output rows [r0, r1) of the plane x (H, W) into out (H, W). */
#define FC_EDGE_TASK(SFX, TIN, T, TOUT)                                                    \
    static void fc_edge_task_##SFX(const TIN *x, ptrdiff_t W, const ptrdiff_t *rmap,       \
                                   const ptrdiff_t *cmap, const TIN *fillrow, T fill, T s0,  \
                                   T s1, TOUT factor, int which, TOUT *out, ptrdiff_t r0,  \
                                   ptrdiff_t r1, int avx512)                               \
    {                                                                                      \
        void (*rowfn)(const TIN *restrict, const TIN *restrict, const TIN *restrict, T, T, \
                      TOUT, int, TOUT *restrict, ptrdiff_t, ptrdiff_t) = FC_EDGE_PICK(SFX); \
        for (ptrdiff_t r = r0; r < r1; r++) {                                              \
            const TIN *rows[3];                                                            \
            for (int k = 0; k < 3; k++) {                                                  \
                const ptrdiff_t src = rmap[r + k];                                         \
                rows[k] = src < 0 ? fillrow : x + src * W;                                 \
            }                                                                              \
            TOUT *o = out + r * W;                                                         \
            if (W > 2)                                                                     \
                rowfn(rows[0], rows[1], rows[2], s0, s1, factor, which, o, 1, W - 1);      \
            for (ptrdiff_t col = 0; col < W; col += (W > 1 ? W - 1 : 1))                   \
                o[col] = fc_edge_px_##SFX(rows, cmap + col, fill, s0, s1, factor, which);   \
        }                                                                                  \
    }

FC_EDGE_TASK(f, float, float, float)
FC_EDGE_TASK(d, double, double, double)
FC_EDGE_TASK(fd, float, float, double)
FC_EDGE_TASK(u8, uint8_t, float, double)
FC_EDGE_TASK(u16, uint16_t, float, double)

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
#endif
