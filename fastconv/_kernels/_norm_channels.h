/* The element loops of batch normalisation (_norm.pyx), over one block of an input viewed
 * as (N, C, S): rows n in [0, nn) at `row` elements apart (row = C*S), channels c in
 * [0, nc) at S elements apart, S contiguous elements per (row, channel). The caller
 * offsets the pointers to the block's first row and channel, and the per-channel arrays
 * to its first channel.
 *
 * Two shapes of loop: S > 1 (images, sequences) runs channel by channel with the S
 * elements innermost; S == 1 ((N, C) input) runs row by row with the channels innermost,
 * so that both stream contiguous memory and vectorise.
 *
 * The normalising passes (apply) run over the rows last to first: they follow a sums pass
 * over the same channel, and the rows it read last are the likeliest to be still cached
 * when a channel (g, x and the output: 1.2 MB at 128 x 28 x 28 float32) outgrows the L2;
 * in first-to-last order every line written would evict the oldest input line, the one
 * read next. (A cache argument; on the shared 2-core machine the measured difference was
 * within the noise.)
 *
 * Sums are float64 for either input type, in a fixed order for a given binary (the
 * `omp simd` reductions combine their lanes in an order fixed at compile time), so the
 * result of a block never depends on the thread that computes it. Compiled for AVX-512 /
 * AVX2 / baseline (FC_MULTIVERSION).
 */
#ifndef FASTCONV_NORM_CHANNELS_H
#define FASTCONV_NORM_CHANNELS_H
#include <stddef.h>
#include "_multiversion.h"

/* s[c] = sum of (x - K[c]), q[c] = sum of (x - K[c])^2 over the block (overwritten).
 * Shifting by a value of the channel (K) keeps the variance accurate for large means. */
#define FC_DEFINE_BN_SUMS(NAME, T)                                                             \
    FC_MULTIVERSION static void NAME(const T* restrict x, ptrdiff_t nn, ptrdiff_t nc,          \
                                     ptrdiff_t S, ptrdiff_t row, const double* restrict K,     \
                                     double* restrict s, double* restrict q)                   \
    {                                                                                          \
        if (S == 1) {                                                                          \
            for (ptrdiff_t c = 0; c < nc; ++c)                                                 \
                s[c] = q[c] = 0.0;                                                             \
            for (ptrdiff_t n = 0; n < nn; ++n) {                                               \
                const T* restrict p = x + n * row;                                             \
                FC_PRAGMA(omp simd)                                                            \
                for (ptrdiff_t c = 0; c < nc; ++c) {                                           \
                    const double d = (double)p[c] - K[c];                                      \
                    s[c] += d;                                                                 \
                    q[c] += d * d;                                                             \
                }                                                                              \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (ptrdiff_t c = 0; c < nc; ++c) {                                                   \
            const double k = K[c];                                                             \
            double sc = 0.0, qc = 0.0;                                                         \
            for (ptrdiff_t n = 0; n < nn; ++n) {                                               \
                const T* restrict p = x + n * row + c * S;                                     \
                FC_PRAGMA(omp simd reduction(+ : sc, qc))                                      \
                for (ptrdiff_t i = 0; i < S; ++i) {                                            \
                    const double d = (double)p[i] - k;                                         \
                    sc += d;                                                                   \
                    qc += d * d;                                                               \
                }                                                                              \
            }                                                                                  \
            s[c] = sc;                                                                         \
            q[c] = qc;                                                                         \
        }                                                                                      \
    }

/* sg[c] = sum of g, sgd[c] = sum of g * (x - mean[c]) over the block (overwritten). */
#define FC_DEFINE_BN_GRAD_SUMS(NAME, T)                                                        \
    FC_MULTIVERSION static void NAME(const T* restrict g, const T* restrict x, ptrdiff_t nn,    \
                                     ptrdiff_t nc, ptrdiff_t S, ptrdiff_t row,                 \
                                     const double* restrict mean, double* restrict sg,         \
                                     double* restrict sgd)                                     \
    {                                                                                          \
        if (S == 1) {                                                                          \
            for (ptrdiff_t c = 0; c < nc; ++c)                                                 \
                sg[c] = sgd[c] = 0.0;                                                          \
            for (ptrdiff_t n = 0; n < nn; ++n) {                                               \
                const T* restrict pg = g + n * row;                                            \
                const T* restrict px = x + n * row;                                            \
                FC_PRAGMA(omp simd)                                                            \
                for (ptrdiff_t c = 0; c < nc; ++c) {                                           \
                    const double gv = (double)pg[c];                                           \
                    sg[c] += gv;                                                               \
                    sgd[c] += gv * ((double)px[c] - mean[c]);                                  \
                }                                                                              \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (ptrdiff_t c = 0; c < nc; ++c) {                                                   \
            const double m = mean[c];                                                          \
            double a = 0.0, b = 0.0;                                                           \
            for (ptrdiff_t n = 0; n < nn; ++n) {                                               \
                const T* restrict pg = g + n * row + c * S;                                    \
                const T* restrict px = x + n * row + c * S;                                    \
                FC_PRAGMA(omp simd reduction(+ : a, b))                                        \
                for (ptrdiff_t i = 0; i < S; ++i) {                                            \
                    const double gv = (double)pg[i];                                           \
                    a += gv;                                                                   \
                    b += gv * ((double)px[i] - m);                                             \
                }                                                                              \
            }                                                                                  \
            sg[c] = a;                                                                         \
            sgd[c] = b;                                                                        \
        }                                                                                      \
    }

/* y = (x - center[c]) * scale[c] + shift[c], in T (center is a value of type T, so the
 * subtraction is nearly exact for x near the mean; scale and shift are rounded to T). */
#define FC_DEFINE_BN_APPLY(NAME, T)                                                            \
    FC_MULTIVERSION static void NAME(const T* restrict x, T* restrict y, ptrdiff_t nn,         \
                                     ptrdiff_t nc, ptrdiff_t S, ptrdiff_t row,                 \
                                     const double* restrict center,                            \
                                     const double* restrict scale,                             \
                                     const double* restrict shift)                             \
    {                                                                                          \
        if (S == 1) {                                                                          \
            for (ptrdiff_t n = nn - 1; n >= 0; --n) {                                          \
                const T* restrict p = x + n * row;                                             \
                T* restrict o = y + n * row;                                                   \
                FC_PRAGMA(omp simd)                                                            \
                for (ptrdiff_t c = 0; c < nc; ++c)                                             \
                    o[c] = (p[c] - (T)center[c]) * (T)scale[c] + (T)shift[c];                  \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (ptrdiff_t c = 0; c < nc; ++c) {                                                   \
            const T k = (T)center[c], a = (T)scale[c], b = (T)shift[c];                        \
            for (ptrdiff_t n = nn - 1; n >= 0; --n) {                                          \
                const T* restrict p = x + n * row + c * S;                                     \
                T* restrict o = y + n * row + c * S;                                           \
                FC_PRAGMA(omp simd)                                                            \
                for (ptrdiff_t i = 0; i < S; ++i)                                              \
                    o[i] = (p[i] - k) * a + b;                                                 \
            }                                                                                  \
        }                                                                                      \
    }

/* gi = A[c] * g + B[c] * (x - center[c]) + Cc[c], in T: the batch-statistics gradient
 * with its per-channel constants folded (see _norm.pyx). */
#define FC_DEFINE_BN_GRAD_APPLY(NAME, T)                                                       \
    FC_MULTIVERSION static void NAME(const T* restrict g, const T* restrict x,                 \
                                     T* restrict gi, ptrdiff_t nn, ptrdiff_t nc, ptrdiff_t S,  \
                                     ptrdiff_t row, const double* restrict A,                  \
                                     const double* restrict center,                            \
                                     const double* restrict B, const double* restrict Cc)      \
    {                                                                                          \
        if (S == 1) {                                                                          \
            for (ptrdiff_t n = nn - 1; n >= 0; --n) {                                          \
                const T* restrict pg = g + n * row;                                            \
                const T* restrict px = x + n * row;                                            \
                T* restrict o = gi + n * row;                                                  \
                FC_PRAGMA(omp simd)                                                            \
                for (ptrdiff_t c = 0; c < nc; ++c)                                             \
                    o[c] = pg[c] * (T)A[c] + ((px[c] - (T)center[c]) * (T)B[c] + (T)Cc[c]);    \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (ptrdiff_t c = 0; c < nc; ++c) {                                                   \
            const T a = (T)A[c], k = (T)center[c], b = (T)B[c], cc = (T)Cc[c];                 \
            for (ptrdiff_t n = nn - 1; n >= 0; --n) {                                          \
                const T* restrict pg = g + n * row + c * S;                                    \
                const T* restrict px = x + n * row + c * S;                                    \
                T* restrict o = gi + n * row + c * S;                                          \
                FC_PRAGMA(omp simd)                                                            \
                for (ptrdiff_t i = 0; i < S; ++i)                                              \
                    o[i] = pg[i] * a + ((px[i] - k) * b + cc);                                 \
            }                                                                                  \
        }                                                                                      \
    }

FC_DEFINE_BN_SUMS(fc_bn_sums_portable_f, float)
FC_DEFINE_BN_SUMS(fc_bn_sums_d, double)
FC_DEFINE_BN_GRAD_SUMS(fc_bn_grad_sums_portable_f, float)
FC_DEFINE_BN_GRAD_SUMS(fc_bn_grad_sums_d, double)
FC_DEFINE_BN_APPLY(fc_bn_apply_portable_f, float)
FC_DEFINE_BN_APPLY(fc_bn_apply_d, double)
FC_DEFINE_BN_GRAD_APPLY(fc_bn_grad_apply_portable_f, float)
FC_DEFINE_BN_GRAD_APPLY(fc_bn_grad_apply_d, double)

#if FC_HAVE_AVX512
/* float32 with S > 1 on AVX-512. The portable sums kept one vector accumulator per sum,
 * a chain of dependent adds, and reduced it across lanes at the end of every (row,
 * channel) run: ~1.2 cycles an element, ~4x that for 7x7 images. Here eight float64
 * accumulators stay in registers over the whole channel and are reduced once, in a fixed
 * order; run tails are masked vectors instead of scalar epilogues. */
#define FC_LO_PD(v) _mm512_cvtps_pd(_mm512_castps512_ps256(v))
#define FC_HI_PD(v) _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))

FC_TARGET_AVX512 static double fc_sum8x4_pd(__m512d a, __m512d b, __m512d c, __m512d d)
{
    return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a, b), _mm512_add_pd(c, d)));
}

FC_TARGET_AVX512 static void fc_bn_sums_avx512_f(const float* x, ptrdiff_t nn, ptrdiff_t nc,
                                                 ptrdiff_t S, ptrdiff_t row, const double* K,
                                                 double* s, double* q)
{
    for (ptrdiff_t c = 0; c < nc; ++c) {
        const __m512d k = _mm512_set1_pd(K[c]);
        __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
        __m512d q0 = s0, q1 = s0, q2 = s0, q3 = s0;
        for (ptrdiff_t n = 0; n < nn; ++n) {
            const float* p = x + n * row + c * S;
            ptrdiff_t i = 0;
            for (; i + 32 <= S; i += 32) {
                const __m512 a = _mm512_loadu_ps(p + i), b = _mm512_loadu_ps(p + i + 16);
                const __m512d d0 = _mm512_sub_pd(FC_LO_PD(a), k), d1 = _mm512_sub_pd(FC_HI_PD(a), k);
                const __m512d d2 = _mm512_sub_pd(FC_LO_PD(b), k), d3 = _mm512_sub_pd(FC_HI_PD(b), k);
                s0 = _mm512_add_pd(s0, d0); s1 = _mm512_add_pd(s1, d1);
                s2 = _mm512_add_pd(s2, d2); s3 = _mm512_add_pd(s3, d3);
                q0 = _mm512_fmadd_pd(d0, d0, q0); q1 = _mm512_fmadd_pd(d1, d1, q1);
                q2 = _mm512_fmadd_pd(d2, d2, q2); q3 = _mm512_fmadd_pd(d3, d3, q3);
            }
            for (; i < S; i += 16) {
                const __mmask16 m = fc_lanes16(S - i);
                const __m512 a = _mm512_maskz_loadu_ps(m, p + i);
                const __m512d d0 = _mm512_maskz_sub_pd((__mmask8)(m & 0xFF), FC_LO_PD(a), k);
                const __m512d d1 = _mm512_maskz_sub_pd((__mmask8)(m >> 8), FC_HI_PD(a), k);
                s0 = _mm512_add_pd(s0, d0); s1 = _mm512_add_pd(s1, d1);
                q0 = _mm512_fmadd_pd(d0, d0, q0); q1 = _mm512_fmadd_pd(d1, d1, q1);
            }
        }
        s[c] = fc_sum8x4_pd(s0, s1, s2, s3);
        q[c] = fc_sum8x4_pd(q0, q1, q2, q3);
    }
}

FC_TARGET_AVX512 static void fc_bn_grad_sums_avx512_f(const float* g, const float* x,
                                                      ptrdiff_t nn, ptrdiff_t nc, ptrdiff_t S,
                                                      ptrdiff_t row, const double* mean,
                                                      double* sg, double* sgd)
{
    for (ptrdiff_t c = 0; c < nc; ++c) {
        const __m512d mu = _mm512_set1_pd(mean[c]);
        __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
        __m512d b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (ptrdiff_t n = 0; n < nn; ++n) {
            const float* pg = g + n * row + c * S;
            const float* px = x + n * row + c * S;
            ptrdiff_t i = 0;
            for (; i + 32 <= S; i += 32) {
                const __m512 ga = _mm512_loadu_ps(pg + i), gb = _mm512_loadu_ps(pg + i + 16);
                const __m512 xa = _mm512_loadu_ps(px + i), xb = _mm512_loadu_ps(px + i + 16);
                const __m512d g0 = FC_LO_PD(ga), g1 = FC_HI_PD(ga), g2 = FC_LO_PD(gb), g3 = FC_HI_PD(gb);
                a0 = _mm512_add_pd(a0, g0); a1 = _mm512_add_pd(a1, g1);
                a2 = _mm512_add_pd(a2, g2); a3 = _mm512_add_pd(a3, g3);
                b0 = _mm512_fmadd_pd(g0, _mm512_sub_pd(FC_LO_PD(xa), mu), b0);
                b1 = _mm512_fmadd_pd(g1, _mm512_sub_pd(FC_HI_PD(xa), mu), b1);
                b2 = _mm512_fmadd_pd(g2, _mm512_sub_pd(FC_LO_PD(xb), mu), b2);
                b3 = _mm512_fmadd_pd(g3, _mm512_sub_pd(FC_HI_PD(xb), mu), b3);
            }
            for (; i < S; i += 16) {
                const __mmask16 m = fc_lanes16(S - i);
                const __mmask8 lo = (__mmask8)(m & 0xFF), hi = (__mmask8)(m >> 8);
                const __m512 ga = _mm512_maskz_loadu_ps(m, pg + i), xa = _mm512_maskz_loadu_ps(m, px + i);
                const __m512d g0 = FC_LO_PD(ga), g1 = FC_HI_PD(ga);
                a0 = _mm512_add_pd(a0, g0); a1 = _mm512_add_pd(a1, g1);
                b0 = _mm512_fmadd_pd(g0, _mm512_maskz_sub_pd(lo, FC_LO_PD(xa), mu), b0);
                b1 = _mm512_fmadd_pd(g1, _mm512_maskz_sub_pd(hi, FC_HI_PD(xa), mu), b1);
            }
        }
        sg[c] = fc_sum8x4_pd(a0, a1, a2, a3);
        sgd[c] = fc_sum8x4_pd(b0, b1, b2, b3);
    }
}

FC_TARGET_AVX512 static void fc_bn_apply_avx512_f(const float* x, float* y, ptrdiff_t nn,
                                                  ptrdiff_t nc, ptrdiff_t S, ptrdiff_t row,
                                                  const double* center, const double* scale,
                                                  const double* shift)
{
    for (ptrdiff_t c = 0; c < nc; ++c) {
        const __m512 k = _mm512_set1_ps((float)center[c]), a = _mm512_set1_ps((float)scale[c]);
        const __m512 b = _mm512_set1_ps((float)shift[c]);
        for (ptrdiff_t n = nn - 1; n >= 0; --n) {
            const float* p = x + n * row + c * S;
            float* o = y + n * row + c * S;
            ptrdiff_t i = 0;
            for (; i + 16 <= S; i += 16)
                _mm512_storeu_ps(o + i, _mm512_fmadd_ps(_mm512_sub_ps(_mm512_loadu_ps(p + i), k), a, b));
            if (i < S) {
                const __mmask16 m = fc_lanes16(S - i);
                _mm512_mask_storeu_ps(o + i, m, _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p + i), k), a, b));
            }
        }
    }
}

FC_TARGET_AVX512 static void fc_bn_grad_apply_avx512_f(const float* g, const float* x, float* gi,
                                                       ptrdiff_t nn, ptrdiff_t nc, ptrdiff_t S,
                                                       ptrdiff_t row, const double* A,
                                                       const double* center, const double* B,
                                                       const double* Cc)
{
    for (ptrdiff_t c = 0; c < nc; ++c) {
        const __m512 a = _mm512_set1_ps((float)A[c]), k = _mm512_set1_ps((float)center[c]);
        const __m512 b = _mm512_set1_ps((float)B[c]), cc = _mm512_set1_ps((float)Cc[c]);
        for (ptrdiff_t n = nn - 1; n >= 0; --n) {
            const float* pg = g + n * row + c * S;
            const float* px = x + n * row + c * S;
            float* o = gi + n * row + c * S;
            ptrdiff_t i = 0;
            for (; i + 16 <= S; i += 16) {
                const __m512 t = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_loadu_ps(px + i), k), b, cc);
                _mm512_storeu_ps(o + i, _mm512_fmadd_ps(_mm512_loadu_ps(pg + i), a, t));
            }
            if (i < S) {
                const __mmask16 m = fc_lanes16(S - i);
                const __m512 t = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, px + i), k), b, cc);
                _mm512_mask_storeu_ps(o + i, m, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, pg + i), a, t));
            }
        }
    }
}
#undef FC_LO_PD
#undef FC_HI_PD
#define FC_BN_AVX512(use, S) ((use) && (S) > 1)
#else
#define FC_BN_AVX512(use, S) 0
#define fc_bn_sums_avx512_f fc_bn_sums_portable_f
#define fc_bn_grad_sums_avx512_f fc_bn_grad_sums_portable_f
#define fc_bn_apply_avx512_f fc_bn_apply_portable_f
#define fc_bn_grad_apply_avx512_f fc_bn_grad_apply_portable_f
#endif

/* float32 entry points: the AVX-512 loops where asked for (use_avx512, which the caller
 * sets only where the CPU has it) and S > 1, else the portable ones. */
static void fc_bn_sums_f(const float* x, ptrdiff_t nn, ptrdiff_t nc, ptrdiff_t S, ptrdiff_t row,
                         const double* K, double* s, double* q, int use_avx512)
{
    if (FC_BN_AVX512(use_avx512, S))
        fc_bn_sums_avx512_f(x, nn, nc, S, row, K, s, q);
    else
        fc_bn_sums_portable_f(x, nn, nc, S, row, K, s, q);
}

static void fc_bn_grad_sums_f(const float* g, const float* x, ptrdiff_t nn, ptrdiff_t nc,
                              ptrdiff_t S, ptrdiff_t row, const double* mean, double* sg,
                              double* sgd, int use_avx512)
{
    if (FC_BN_AVX512(use_avx512, S))
        fc_bn_grad_sums_avx512_f(g, x, nn, nc, S, row, mean, sg, sgd);
    else
        fc_bn_grad_sums_portable_f(g, x, nn, nc, S, row, mean, sg, sgd);
}

static void fc_bn_apply_f(const float* x, float* y, ptrdiff_t nn, ptrdiff_t nc, ptrdiff_t S,
                          ptrdiff_t row, const double* center, const double* scale,
                          const double* shift, int use_avx512)
{
    if (FC_BN_AVX512(use_avx512, S))
        fc_bn_apply_avx512_f(x, y, nn, nc, S, row, center, scale, shift);
    else
        fc_bn_apply_portable_f(x, y, nn, nc, S, row, center, scale, shift);
}

static void fc_bn_grad_apply_f(const float* g, const float* x, float* gi, ptrdiff_t nn,
                               ptrdiff_t nc, ptrdiff_t S, ptrdiff_t row, const double* A,
                               const double* center, const double* B, const double* Cc,
                               int use_avx512)
{
    if (FC_BN_AVX512(use_avx512, S))
        fc_bn_grad_apply_avx512_f(g, x, gi, nn, nc, S, row, A, center, B, Cc);
    else
        fc_bn_grad_apply_portable_f(g, x, gi, nn, nc, S, row, A, center, B, Cc);
}

#endif
