/* Small helpers of the inference executor (_plan.pyx): a one-row dot-form product for
 * batch-1 fully connected layers, and the conv epilogue (residual add, ReLU).
 *
 * fc_sgemm_dot_block (_gemm_avx512.h) computes a 4 x 4 block of x @ W^T; with one row of
 * x (batch 1) it repeats that row four times. fc_plan_dot_row_f computes one row against
 * 8 rows of W: 8 vector accumulators, x loaded once per step.
 */
#ifndef FASTCONV_PLAN_H
#define FASTCONV_PLAN_H
#include <stddef.h>
#include "_multiversion.h"

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
#else
static void fc_plan_dot_row_f(ptrdiff_t N, ptrdiff_t K, const float* a, const float* b,
                              ptrdiff_t ldb, const float* bias, float* c, ptrdiff_t j0)
{
}
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
