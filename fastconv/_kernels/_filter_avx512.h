/* AVX-512 row blocks of the single-plane 'valid' correlation (_filter_planes.h), written
 * once for both float types: _filter_planes.h includes this file twice, with
 * FC_T = float / double and FC_SFX = f / d defined (not a header of its own).
 *
 * A block is R output rows x V vectors of outputs, all R*V sums in registers over every
 * tap. Each input vector loaded (input row ii of the block, tap column j) feeds every
 * output row q of the block it reaches (kernel row i = ii - q), so a small kernel is not
 * load-bound and the weights are broadcast once per use. Per output the taps are still
 * summed in row-major order (i, then j), one fused multiply-add each, from 0: the same
 * operations whatever the block shape, mask or thread, so results do not depend on where
 * an output falls in a block.
 *
 * rows[e] (e < R + kh - 1) is the input row the block's row e reads, column `col` of it
 * the first input of the block's first output; outputs go to out[q * ldo + v * L + lane].
 */
#define FC_AVX_NAME(n) FC_CAT(n, FC_SFX)

#if defined(FC_FLOAT_IS_DOUBLE)
#define FC_VEC __m512d
#define FC_MASK __mmask8
#define FC_L 8
#define FC_LOADU(p) _mm512_loadu_pd(p)
#define FC_MLOADU(m, p) _mm512_maskz_loadu_pd(m, p)
#define FC_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define FC_SET1(x) _mm512_set1_pd(x)
#define FC_ZERO() _mm512_setzero_pd()
#define FC_STOREU(p, v) _mm512_storeu_pd(p, v)
#define FC_MSTOREU(p, m, v) _mm512_mask_storeu_pd(p, m, v)
#define FC_LANES(n) ((__mmask8)((n) >= 8 ? 0xFFu : (1u << (n)) - 1u))
#else
#define FC_VEC __m512
#define FC_MASK __mmask16
#define FC_L 16
#define FC_LOADU(p) _mm512_loadu_ps(p)
#define FC_MLOADU(m, p) _mm512_maskz_loadu_ps(m, p)
#define FC_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define FC_SET1(x) _mm512_set1_ps(x)
#define FC_ZERO() _mm512_setzero_ps()
#define FC_STOREU(p, v) _mm512_storeu_ps(p, v)
#define FC_MSTOREU(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define FC_LANES(n) fc_lanes16(n)
#endif

/* One block. KH/KW: the kernel size when fixed at compile time (loops fully unrolled,
 * the row conditions folded away), 0 for the runtime kh/kw. MASKED: the last of the V
 * vectors is partial (lanes `m`), its loads and stores masked. */
#define FC_BLOCK_BODY(UNROLL_TAPS)                                                         \
    FC_VEC acc[FC_FILTER_R][FC_FILTER_V]; /* [R][V] used */                                \
    FC_PRAGMA(GCC unroll 8)                                                                \
    for (int q = 0; q < R; q++) {                                                          \
        FC_PRAGMA(GCC unroll 8)                                                            \
        for (int v = 0; v < V; v++)                                                        \
            acc[q][v] = FC_ZERO();                                                         \
    }                                                                                      \
    const ptrdiff_t nh = KH ? KH : kh, nw = KW ? KW : kw;                                  \
    UNROLL_TAPS                                                                            \
    for (ptrdiff_t ii = 0; ii < R + nh - 1; ii++) {                                        \
        const FC_T *restrict s = rows[ii] + col;                                           \
        UNROLL_TAPS                                                                        \
        for (ptrdiff_t j = 0; j < nw; j++) {                                               \
            FC_VEC in[FC_FILTER_V];                                                        \
            FC_PRAGMA(GCC unroll 8)                                                        \
            for (int v = 0; v < V; v++)                                                    \
                in[v] = (MASKED && v == V - 1) ? FC_MLOADU(m, s + j + v * FC_L)            \
                                               : FC_LOADU(s + j + v * FC_L);               \
            FC_PRAGMA(GCC unroll 8)                                                        \
            for (int q = 0; q < R; q++) {                                                  \
                const ptrdiff_t i = ii - q;                                                \
                if (i >= 0 && i < nh) {                                                    \
                    const FC_VEC wv = FC_SET1(w[i * nw + j]);                              \
                    FC_PRAGMA(GCC unroll 8)                                                \
                    for (int v = 0; v < V; v++)                                            \
                        acc[q][v] = FC_FMA(wv, in[v], acc[q][v]);                          \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
    FC_PRAGMA(GCC unroll 8)                                                                \
    for (int q = 0; q < R; q++) {                                                          \
        FC_PRAGMA(GCC unroll 8)                                                            \
        for (int v = 0; v < V; v++) {                                                      \
            if (MASKED && v == V - 1)                                                      \
                FC_MSTOREU(out + q * ldo + v * FC_L, m, acc[q][v]);                        \
            else                                                                           \
                FC_STOREU(out + q * ldo + v * FC_L, acc[q][v]);                            \
        }                                                                                  \
    }

FC_TARGET_AVX512 static inline __attribute__((always_inline)) void FC_AVX_NAME(fc_fblock_fixed_)(
    const FC_T *const *restrict rows, ptrdiff_t col, const FC_T *restrict w, ptrdiff_t kh,
    ptrdiff_t kw, FC_T *restrict out, ptrdiff_t ldo, FC_MASK m, const int R, const int V,
    const int KH, const int KW, const int MASKED)
{
    FC_BLOCK_BODY(FC_PRAGMA(GCC unroll 16))
}

FC_TARGET_AVX512 static inline __attribute__((always_inline)) void FC_AVX_NAME(fc_fblock_any_)(
    const FC_T *const *restrict rows, ptrdiff_t col, const FC_T *restrict w, ptrdiff_t kh,
    ptrdiff_t kw, FC_T *restrict out, ptrdiff_t ldo, FC_MASK m, const int R, const int V,
    const int KH, const int KW, const int MASKED)
{
    FC_BLOCK_BODY()
}

/* Output columns [x0, x1) of R rows: blocks of FC_FILTER_V vectors, then single vectors,
 * the last one masked. Input column of output x: coff + x. */
#define FC_COLS_BODY(BLOCK)                                                                \
    ptrdiff_t x = x0;                                                                      \
    for (; x + FC_FILTER_V * FC_L <= x1; x += FC_FILTER_V * FC_L)                          \
        BLOCK(rows, coff + x, w, kh, kw, out + x, ldo, (FC_MASK)0, R, FC_FILTER_V, KH, KW, 0); \
    for (; x < x1; x += FC_L)                                                              \
        BLOCK(rows, coff + x, w, kh, kw, out + x, ldo, FC_LANES(x1 - x), R, 1, KH, KW, 1);

FC_TARGET_AVX512 static inline __attribute__((always_inline)) void FC_AVX_NAME(fc_fcols_)(
    const FC_T *const *restrict rows, ptrdiff_t coff, const FC_T *restrict w, ptrdiff_t kh,
    ptrdiff_t kw, FC_T *restrict out, ptrdiff_t ldo, ptrdiff_t x0, ptrdiff_t x1, const int R,
    const int KH, const int KW)
{
    if (KH) {
        FC_COLS_BODY(FC_AVX_NAME(fc_fblock_fixed_))
    } else {
        FC_COLS_BODY(FC_AVX_NAME(fc_fblock_any_))
    }
}

/* Rows [0, nrows) x columns [x0, x1): groups of FC_FILTER_R rows, then single rows. */
#define FC_DEFINE_AVX_ROWS(NAME, KH, KW)                                                   \
    FC_TARGET_AVX512 static void NAME(const FC_T *const *restrict rows, ptrdiff_t coff,    \
                                      const FC_T *restrict w, ptrdiff_t kh, ptrdiff_t kw,  \
                                      FC_T *restrict out, ptrdiff_t ldo, ptrdiff_t nrows,  \
                                      ptrdiff_t x0, ptrdiff_t x1)                          \
    {                                                                                      \
        ptrdiff_t r = 0;                                                                   \
        for (; r + FC_FILTER_R <= nrows; r += FC_FILTER_R)                                 \
            FC_AVX_NAME(fc_fcols_)(rows + r, coff, w, kh, kw, out + r * ldo, ldo, x0, x1,  \
                                   FC_FILTER_R, KH, KW);                                   \
        for (; r < nrows; r++)                                                             \
            FC_AVX_NAME(fc_fcols_)(rows + r, coff, w, kh, kw, out + r * ldo, ldo, x0, x1,  \
                                   1, KH, KW);                                             \
    }

FC_DEFINE_AVX_ROWS(FC_AVX_NAME(fc_frows_avx512_3x3_), 3, 3)
FC_DEFINE_AVX_ROWS(FC_AVX_NAME(fc_frows_avx512_any_), 0, 0)

/* The rows function for a kernel size: a specialised one where there is one. Measured
 * (2048x2048 and 512x512 float32, 1 thread): the fixed 3x3 (taps unrolled, its 9 weights
 * in registers) is ~10% faster than the generic blocks; fixed 5x5 and 7x7 were 20-50%
 * SLOWER than the generic ones (GCC hoists and spills the 25/49 broadcast weights, then
 * reloads a whole vector per FMA), so they are not in the table. */
static fc_frows_fn_t(FC_T) FC_AVX_NAME(fc_frows_avx512_)(ptrdiff_t kh, ptrdiff_t kw)
{
    static const struct { ptrdiff_t kh, kw; fc_frows_fn_t(FC_T) fn; } table[] = {
        {3, 3, FC_AVX_NAME(fc_frows_avx512_3x3_)},
    };
    for (size_t t = 0; t < sizeof table / sizeof table[0]; t++)
        if (table[t].kh == kh && table[t].kw == kw)
            return table[t].fn;
    return FC_AVX_NAME(fc_frows_avx512_any_);
}

#undef FC_VEC
#undef FC_MASK
#undef FC_L
#undef FC_LOADU
#undef FC_MLOADU
#undef FC_FMA
#undef FC_SET1
#undef FC_ZERO
#undef FC_STOREU
#undef FC_MSTOREU
#undef FC_LANES
#undef FC_BLOCK_BODY
#undef FC_COLS_BODY
#undef FC_DEFINE_AVX_ROWS
#undef FC_AVX_NAME
