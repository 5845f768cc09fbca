/* Small helpers of the inference executor (_plan.pyx): a one-row dot-form product for
 * batch-1 fully connected layers, and the conv epilogue (residual add, ReLU).
 *
 * fc_sgemm_dot_block (_gemm_avx512.h) computes a 4 x 4 block of x @ W^T; with one row of
 * x (batch 1) it repeats that row four times. fc_plan_dot_row_f computes one row against
 * 8 rows of W: 8 vector accumulators, x loaded once per step (fc_plan_dot_row_avx2_f: the
 * same on CPUs with AVX2 but not AVX-512).
 */
#ifndef FASTCONV_PLAN_H
#define FASTCONV_PLAN_H
#include <stddef.h>
#include "_multiversion.h"
#include "_conv_avx512.h"

#if FC_HAVE_AVX512
/* c[j] = sum_k a[k] * b[j*ldb + k] (+ bias[j]) for j in [j0, min(j0 + 8, N)). */
FC_TARGET_AVX512 static void fc_plan_dot_row_f(ptrdiff_t N, ptrdiff_t K, const float* a,
                                               const float* b, ptrdiff_t ldb, const float* bias,
                                               float* c, ptrdiff_t j0)
{
    const float* r[8];
    for (int s = 0; s < 8; ++s) r[s] = b + (j0 + s < N ? j0 + s : N - 1) * ldb;
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    for (ptrdiff_t k = 0; k < K; k += 16) {
        const __mmask16 m = fc_lanes16(K - k);
        const __m512 v = _mm512_maskz_loadu_ps(m, a + k);
        c0 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, r[0] + k), c0);
        c1 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, r[1] + k), c1);
        c2 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, r[2] + k), c2);
        c3 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, r[3] + k), c3);
        c4 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, r[4] + k), c4);
        c5 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, r[5] + k), c5);
        c6 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, r[6] + k), c6);
        c7 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, r[7] + k), c7);
    }
    float s[8] = {_mm512_reduce_add_ps(c0), _mm512_reduce_add_ps(c1), _mm512_reduce_add_ps(c2),
                  _mm512_reduce_add_ps(c3), _mm512_reduce_add_ps(c4), _mm512_reduce_add_ps(c5),
                  _mm512_reduce_add_ps(c6), _mm512_reduce_add_ps(c7)};
    for (int t = 0; t < 8 && j0 + t < N; ++t) c[j0 + t] = bias ? s[t] + bias[j0 + t] : s[t];
}

/* The same with AVX2 + FMA (CPUs without AVX-512): 8 accumulators of 8 lanes, the K % 8
 * tail by scalar FMAs after the lane sums (a fixed order: deterministic). Through BLAS,
 * LeNet-5's 400 -> 120 layer at batch 1 took 46 us on an AMD Zen 1. */
FC_TARGET_AVX2 static inline float fc_plan_hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

FC_TARGET_AVX2 static void fc_plan_dot_row_avx2_f(ptrdiff_t N, ptrdiff_t K, const float* a,
                                                  const float* b, ptrdiff_t ldb,
                                                  const float* bias, float* c, ptrdiff_t j0)
{
    const float* r[8];
    for (int s = 0; s < 8; ++s) r[s] = b + (j0 + s < N ? j0 + s : N - 1) * ldb;
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    ptrdiff_t k = 0;
    for (; k + 8 <= K; k += 8) {
        const __m256 v = _mm256_loadu_ps(a + k);
        c0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(r[0] + k), c0);
        c1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(r[1] + k), c1);
        c2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(r[2] + k), c2);
        c3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(r[3] + k), c3);
        c4 = _mm256_fmadd_ps(v, _mm256_loadu_ps(r[4] + k), c4);
        c5 = _mm256_fmadd_ps(v, _mm256_loadu_ps(r[5] + k), c5);
        c6 = _mm256_fmadd_ps(v, _mm256_loadu_ps(r[6] + k), c6);
        c7 = _mm256_fmadd_ps(v, _mm256_loadu_ps(r[7] + k), c7);
    }
    float s[8] = {fc_plan_hsum8(c0), fc_plan_hsum8(c1), fc_plan_hsum8(c2), fc_plan_hsum8(c3),
                  fc_plan_hsum8(c4), fc_plan_hsum8(c5), fc_plan_hsum8(c6), fc_plan_hsum8(c7)};
    for (; k < K; ++k)
        for (int t = 0; t < 8; ++t) s[t] += a[k] * r[t][k];
    for (int t = 0; t < 8 && j0 + t < N; ++t) c[j0 + t] = bias ? s[t] + bias[j0 + t] : s[t];
}

/* A block of rows [i0, i0 + R) of x (N, K) against rows [j0, j0 + J) of W (M, K) (rows past
 * the ends repeat the last one; only the real ones are written), for small batches (a chunk
 * of a few images) on AVX2 CPUs: each loaded vector of W feeds R rows of x, which the
 * one-row kernel cannot share, and R x J = 12 accumulators hide the FMA latency with room
 * for the operands in the 16 ymm registers. LeNet-5's 400 -> 120 layer on an AMD Zen 1,
 * per row: 6.1 us one row at a time, 4.9 in 2 x 6 blocks at batch 2, 4.2 in 4 x 3 blocks at
 * batch 4. Each output is summed as fc_plan_dot_row_avx2_f sums it (8 lanes over k, the
 * lanes' sum, the scalar tail, the bias), so a row's result does not depend on the batch
 * it is in. */
#define FC_DEFINE_PLAN_DOT_BLOCK_AVX2(NAME, R, J)                                              \
    FC_TARGET_AVX2 static void NAME(ptrdiff_t N, ptrdiff_t M, ptrdiff_t K, const float* x,     \
                                    const float* w, const float* bias, float* out,             \
                                    ptrdiff_t i0, ptrdiff_t j0)                                \
    {                                                                                          \
        const float* xr[R];                                                                    \
        const float* wr[J];                                                                    \
        __m256 acc[R][J];                                                                      \
        for (int r = 0; r < R; ++r) xr[r] = x + (i0 + r < N ? i0 + r : N - 1) * K;             \
        for (int s = 0; s < J; ++s) wr[s] = w + (j0 + s < M ? j0 + s : M - 1) * K;             \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; ++r)                                    \
            _Pragma("GCC unroll 8") for (int s = 0; s < J; ++s) acc[r][s] = _mm256_setzero_ps(); \
        ptrdiff_t k = 0;                                                                       \
        for (; k + 8 <= K; k += 8) {                                                           \
            __m256 wv[J];                                                                      \
            _Pragma("GCC unroll 8") for (int s = 0; s < J; ++s) wv[s] = _mm256_loadu_ps(wr[s] + k); \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; ++r) {                              \
                const __m256 v = _mm256_loadu_ps(xr[r] + k);                                   \
                _Pragma("GCC unroll 8") for (int s = 0; s < J; ++s)                            \
                    acc[r][s] = _mm256_fmadd_ps(v, wv[s], acc[r][s]);                          \
            }                                                                                  \
        }                                                                                      \
        for (int r = 0; r < R && i0 + r < N; ++r)                                              \
            for (int s = 0; s < J && j0 + s < M; ++s) {                                        \
                float t = fc_plan_hsum8(acc[r][s]);                                            \
                for (ptrdiff_t kk = k; kk < K; ++kk) t += xr[r][kk] * wr[s][kk];               \
                out[(i0 + r) * M + j0 + s] = bias ? t + bias[j0 + s] : t;                      \
            }                                                                                  \
    }
FC_DEFINE_PLAN_DOT_BLOCK_AVX2(fc_plan_dot_block2x6_avx2_f, 2, 6)
FC_DEFINE_PLAN_DOT_BLOCK_AVX2(fc_plan_dot_block4x3_avx2_f, 4, 3)
#else
static void fc_plan_dot_row_f(ptrdiff_t N, ptrdiff_t K, const float* a, const float* b,
                              ptrdiff_t ldb, const float* bias, float* c, ptrdiff_t j0)
{
}
static void fc_plan_dot_row_avx2_f(ptrdiff_t N, ptrdiff_t K, const float* a, const float* b,
                                   ptrdiff_t ldb, const float* bias, float* c, ptrdiff_t j0)
{
}
static void fc_plan_dot_block2x6_avx2_f(ptrdiff_t N, ptrdiff_t M, ptrdiff_t K, const float* x,
                                        const float* w, const float* bias, float* out,
                                        ptrdiff_t i0, ptrdiff_t j0)
{
}
static void fc_plan_dot_block4x3_avx2_f(ptrdiff_t N, ptrdiff_t M, ptrdiff_t K, const float* x,
                                        const float* w, const float* bias, float* out,
                                        ptrdiff_t i0, ptrdiff_t j0)
{
}
#endif

#if FC_HAVE_AVX512
/* ReLU of a vector keeping NaN (0 where v <= 0). */
FC_TARGET_AVX512 static inline __m512 fc_plan_relu16(__m512 v)
{
    const __m512 z = _mm512_setzero_ps();
    return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, z, _CMP_LE_OQ), z);
}

/* The pixel tile of _conv_avx512.h (fc_conv_avx512_f20: 8 channels x 16 pixels x 2 rows,
 * stride 1 along rows, the same sums by fc_pixels_sums_f) with its epilogue in registers:
 * ReLU when relu, and each channel's row of 16 pixels written by one masked store (the
 * original copies the tile out element by element: for LeNet's C1, one input channel,
 * that copy cost about as much as the sums). */
FC_TARGET_AVX512 static void fc_plan_conv_pixels_f(FC_CONV_PARAMS(float), int relu)
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
                const ptrdiff_t n_rows = 1 + (oh1 != oh);
                if (ops == 1) {
                    const __mmask16 m = fc_lanes16(nq);
                    for (ptrdiff_t r = 0; r < n_rows; ++r)
                        for (ptrdiff_t l = 0; l < nco; ++l) {
                            __m512 v = _mm512_load_ps(acc[r][l]);
                            if (relu) v = fc_plan_relu16(v);
                            _mm512_mask_storeu_ps(o + l * ocs + r * ors, m, v);
                        }
                } else {
                    for (ptrdiff_t r = 0; r < n_rows; ++r)
                        for (ptrdiff_t l = 0; l < nco; ++l)
                            for (ptrdiff_t q = 0; q < nq; ++q) {
                                const float v = acc[r][l][q];
                                o[l * ocs + r * ors + q * ops] = relu && v <= 0 ? 0.0f : v;
                            }
                }
            }
        }
    }
}

/* max(a, b) lane by lane with NaN propagated (b wins when greater or NaN). */
FC_TARGET_AVX512 static inline __m512 fc_plan_nanmax16(__m512 a, __m512 b)
{
    return _mm512_mask_mov_ps(a, _mm512_cmp_ps_mask(b, a, _CMP_GT_OQ) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q), b);
}

/* The pixel tile followed by ReLU (when relu) and 2x2 / stride 2 max pooling, in registers:
 * the tile's two output rows are exactly one row of pooling windows, so only the pooled
 * output (cout, OH/2, OW/2) is written (channel stride ocs, row stride ors). OH and OW
 * even. ReLU and max commute (both keep NaN), so the max comes first. */
FC_TARGET_AVX512 static void fc_plan_conv_pixels_pool_f(FC_CONV_PARAMS(float), int relu)
{
    enum { CB = 8, LANES = 16 };
    const ptrdiff_t K = C * kh * kw;
    float acc[2][CB][LANES] __attribute__((aligned(64)));
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 1, 1, 1, 1, 1, 1, 1, 1);
    (void)sw; (void)ops;
    for (ptrdiff_t cb = 0; cb * CB < cout; ++cb) {
        const float* wp = wpack + cb * K * CB;
        const ptrdiff_t nco = (cout - cb * CB) < CB ? (cout - cb * CB) : CB;
        float bv[CB];
        for (int l = 0; l < CB; ++l) bv[l] = l < nco ? bias[cb * CB + l] : 0.0f;
        for (ptrdiff_t oh = 0; oh + 1 < OH; oh += 2) {
            for (ptrdiff_t ow0 = 0; ow0 < OW; ow0 += LANES) {
                fc_pixels_sums_f(xpad + oh * sh * Wp + ow0, xpad + (oh + 1) * sh * Wp + ow0, wp, bv,
                                 C, kh, kw, Hp * Wp, dh * Wp, dw, acc);
                const ptrdiff_t nq = (OW - ow0) < LANES ? (OW - ow0) : LANES;
                const __mmask16 m = fc_lanes16(nq / 2);
                float* o = out + cb * CB * ocs + (oh / 2) * ors + ow0 / 2;
                for (ptrdiff_t l = 0; l < nco; ++l) {
                    const __m512 v = fc_plan_nanmax16(_mm512_load_ps(acc[0][l]), _mm512_load_ps(acc[1][l]));
                    __m512 pooled = fc_plan_nanmax16(_mm512_permutexvar_ps(even, v),
                                                     _mm512_permutexvar_ps(odd, v));
                    if (relu) pooled = fc_plan_relu16(pooled);
                    _mm512_mask_storeu_ps(o + l * ocs, m, pooled);
                }
            }
        }
    }
}

/* 2x2 / stride 2 max pooling of one plane without indices (inference needs none): the
 * selects of fc_max_pool_2x2_avx512_f (NaN propagates), 16 outputs a step. */
FC_TARGET_AVX512 static void fc_plan_max_pool_2x2_f(const float* x, ptrdiff_t W, float* out,
                                                     ptrdiff_t OH, ptrdiff_t OW)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (ptrdiff_t oh = 0; oh < OH; ++oh) {
        const float* x0 = x + 2 * oh * W;
        const float* x1 = x0 + W;
        for (ptrdiff_t o0 = 0; o0 < OW; o0 += 16) {
            const ptrdiff_t n = (OW - o0) < 16 ? (OW - o0) : 16;
            const __mmask16 m_out = (__mmask16)((1u << n) - 1u);
            const ptrdiff_t n_in = 2 * n;
            const __mmask16 m_lo = (__mmask16)(n_in >= 16 ? 0xFFFFu : (1u << n_in) - 1u);
            const __mmask16 m_hi = (__mmask16)(n_in <= 16 ? 0u : (1u << (n_in - 16)) - 1u);
            const float* p0 = x0 + 2 * o0;
            const float* p1 = x1 + 2 * o0;
            const __m512 r0a = _mm512_maskz_loadu_ps(m_lo, p0), r0b = _mm512_maskz_loadu_ps(m_hi, p0 + 16);
            const __m512 r1a = _mm512_maskz_loadu_ps(m_lo, p1), r1b = _mm512_maskz_loadu_ps(m_hi, p1 + 16);
            const __m512 a = _mm512_permutex2var_ps(r0a, even, r0b);
            const __m512 b = _mm512_permutex2var_ps(r0a, odd, r0b);
            const __m512 c = _mm512_permutex2var_ps(r1a, even, r1b);
            const __m512 d = _mm512_permutex2var_ps(r1a, odd, r1b);
            __m512 best = a;
            best = _mm512_mask_mov_ps(best, _mm512_cmp_ps_mask(b, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q), b);
            best = _mm512_mask_mov_ps(best, _mm512_cmp_ps_mask(c, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q), c);
            best = _mm512_mask_mov_ps(best, _mm512_cmp_ps_mask(d, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q), d);
            _mm512_mask_storeu_ps(out + oh * OW + o0, m_out, best);
        }
    }
}
#else
static void fc_plan_conv_pixels_f(FC_CONV_PARAMS(float), int relu) {}
static void fc_plan_conv_pixels_pool_f(FC_CONV_PARAMS(float), int relu) {}
static void fc_plan_max_pool_2x2_f(const float* x, ptrdiff_t W, float* out, ptrdiff_t OH,
                                   ptrdiff_t OW) {}
#endif

/* The epilogue of one output span: o[k] (+= r[k] when r) then ReLU (NaN kept) when relu. */
#define FC_DEFINE_EPILOGUE(NAME, T)                                                            \
    FC_MULTIVERSION static void NAME(T* restrict o, const T* restrict r, ptrdiff_t n, int relu) \
    {                                                                                          \
        if (r && relu) {                                                                       \
            for (ptrdiff_t k = 0; k < n; ++k) {                                                \
                const T v = o[k] + r[k];                                                       \
                o[k] = v <= 0 ? (T)0 : v;                                                      \
            }                                                                                  \
        } else if (r) {                                                                        \
            for (ptrdiff_t k = 0; k < n; ++k) o[k] = o[k] + r[k];                              \
        } else if (relu) {                                                                     \
            for (ptrdiff_t k = 0; k < n; ++k) {                                                \
                const T v = o[k];                                                              \
                o[k] = v <= 0 ? (T)0 : v;                                                      \
            }                                                                                  \
        }                                                                                      \
    }
FC_DEFINE_EPILOGUE(fc_plan_epilogue_f, float)
FC_DEFINE_EPILOGUE(fc_plan_epilogue_d, double)

/* out[k] = a[k] + b[k] (ReLU'd when relu); out may alias a or b (element-wise). */
#define FC_DEFINE_ADD(NAME, T)                                                                 \
    FC_MULTIVERSION static void NAME(const T* a, const T* b, T* out, ptrdiff_t n, int relu)    \
    {                                                                                          \
        if (relu) {                                                                            \
            for (ptrdiff_t k = 0; k < n; ++k) {                                                \
                const T v = a[k] + b[k];                                                       \
                out[k] = v <= 0 ? (T)0 : v;                                                    \
            }                                                                                  \
        } else {                                                                               \
            for (ptrdiff_t k = 0; k < n; ++k) out[k] = a[k] + b[k];                            \
        }                                                                                      \
    }
FC_DEFINE_ADD(fc_plan_add_f, float)
FC_DEFINE_ADD(fc_plan_add_d, double)

/* One plane of a per-channel affine map (folded BatchNorm): out = x * s + t, ReLU'd when relu. */
#define FC_DEFINE_AFFINE(NAME, T)                                                              \
    FC_MULTIVERSION static void NAME(const T* x, T* out, ptrdiff_t n, T s, T t, int relu)      \
    {                                                                                          \
        if (relu) {                                                                            \
            for (ptrdiff_t k = 0; k < n; ++k) {                                                \
                const T v = x[k] * s + t;                                                      \
                out[k] = v <= 0 ? (T)0 : v;                                                    \
            }                                                                                  \
        } else {                                                                               \
            for (ptrdiff_t k = 0; k < n; ++k) out[k] = x[k] * s + t;                           \
        }                                                                                      \
    }
FC_DEFINE_AFFINE(fc_plan_affine_f, float)
FC_DEFINE_AFFINE(fc_plan_affine_d, double)
#endif
