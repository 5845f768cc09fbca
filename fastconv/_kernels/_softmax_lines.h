/* Softmax and log-softmax along one axis, forward and backward (C helpers of _softmax.pyx).
 *
 * The array is viewed as (outer, C, inner) and reduced over C. With inner == 1 each line
 * is a contiguous row (fc_softmax_rows_*); otherwise a block of up to FC_SM_BLOCK
 * neighbouring lines of one outer slice is processed together (fc_softmax_cols_*), so that
 * every sweep over C reads contiguous runs and vectorises across the lines.
 *
 * Forward: m = max (NaN-propagating), s = sum exp(x - m) in double, then
 * y = exp(x - m) / s or y = (x - m) - log(s). As in PyTorch, a line holding NaN or +inf,
 * or only -inf, gives NaN; -inf entries give 0 (log: -inf) otherwise.
 * Backward: softmax gi = y * (g - sum(g*y)); log_softmax gi = g - exp(y) * sum(g).
 * Reductions run in double over fixed lanes, in a fixed order: deterministic.
 */
#ifndef FASTCONV_SOFTMAX_LINES_H
#define FASTCONV_SOFTMAX_LINES_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "_multiversion.h"
#include "_select.h"

#define FC_SM_LANES 8
#define FC_SM_BLOCK 128
#define FC_SM_TREE(a) ((((a)[0] + (a)[1]) + ((a)[2] + (a)[3])) + (((a)[4] + (a)[5]) + ((a)[6] + (a)[7])))

/* exp for float without calls or branches, so that loops over it vectorise (glibc's
 * vector expf needs -ffast-math). Cephes' expf: x = n ln2 + r with |r| <= ln2/2 (n
 * rounded by the 1.5*2^23 trick, clamped by bit selects), a degree-6 polynomial in r (about 1 ulp), then 2^n
 * applied as two factors so that subnormal results and overflow to inf come out
 * rounded correctly. NaN propagates, exp(-inf) = 0, exp(inf) = inf. */
static inline float fc_expf(float x)
{
    union { float f; uint32_t u; } t, s1, s2;
    float xc = fc_select_f(x < -104.0f, -104.0f, x); /* exp(-104) rounds to 0 */
    xc = fc_select_f(xc > 88.8f, 88.8f, xc);          /* exp(88.8) overflows to inf */
    t.f = xc * 1.44269504088896341f + 12582912.0f;
    const float n = t.f - 12582912.0f;
    const int32_t ni = (int32_t)(t.u - 0x4B400000u); /* n as an int (garbage for NaN) */
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * (r * r) + r + 1.0f;
    const int32_t n1 = ni >> 1, n2 = ni - n1;
    s1.u = (uint32_t)(n1 + 127) << 23;
    s2.u = (uint32_t)(n2 + 127) << 23;
    return y * s1.f * s2.f;
}

static inline double fc_exp_d(double x) { return exp(x); }
static inline float fc_exp_f(float x) { return fc_expf(x); }

#define FC_DEFINE_SOFTMAX(SUF, T)                                                              \
    /* Sum of a contiguous run in double: eight lanes, the remainder apart, fixed order. */   \
    static inline double fc_sm_rowsum_##SUF(const T* restrict x, ptrdiff_t n)                  \
    {                                                                                          \
        double acc[FC_SM_LANES] = {0}, rest = 0.0;                                             \
        ptrdiff_t c = 0;                                                                       \
        for (; c + FC_SM_LANES <= n; c += FC_SM_LANES)                                         \
            for (int l = 0; l < FC_SM_LANES; ++l) acc[l] += (double)x[c + l];                  \
        for (; c < n; ++c) rest += (double)x[c];                                               \
        return FC_SM_TREE(acc) + rest;                                                         \
    }                                                                                          \
                                                                                               \
    /* rows x C contiguous -> y, along each row. */                                            \
    FC_MULTIVERSION static void fc_softmax_rows_##SUF(const T* restrict x, ptrdiff_t rows,     \
                                                      ptrdiff_t C, T* restrict y, int log_out) \
    {                                                                                          \
        for (ptrdiff_t r = 0; r < rows; ++r) {                                                 \
            const T* restrict xr = x + r * C;                                                  \
            T* restrict yr = y + r * C;                                                        \
            const T m = fc_max_run_##SUF(xr, C);                                             \
            /* exp into y first (a plain loop vectorises; with the sum fused it did not),   \
             * then the sum in double lanes; log-softmax overwrites y afterwards. */        \
            for (ptrdiff_t c = 0; c < C; ++c) yr[c] = fc_exp_##SUF(xr[c] - m);                 \
            const double s = fc_sm_rowsum_##SUF(yr, C);                                        \
            if (log_out) {                                                                     \
                const T ls = (T)log(s);                                                        \
                for (ptrdiff_t c = 0; c < C; ++c) yr[c] = (xr[c] - m) - ls;                    \
            } else {                                                                           \
                const T inv = (T)(1.0 / s);                                                    \
                for (ptrdiff_t c = 0; c < C; ++c) yr[c] *= inv;                                \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    /* Lines i0 .. i0+n-1 (n <= FC_SM_BLOCK) of one (C, inner) slice x -> y. */                \
    FC_MULTIVERSION static void fc_softmax_cols_##SUF(const T* restrict x, ptrdiff_t C,        \
                                                      ptrdiff_t inner, ptrdiff_t i0,           \
                                                      ptrdiff_t n, T* restrict y, int log_out) \
    {                                                                                          \
        T m[FC_SM_BLOCK], f[FC_SM_BLOCK];                                                      \
        double s[FC_SM_BLOCK];                                                                 \
        x += i0;                                                                               \
        y += i0;                                                                               \
        for (ptrdiff_t i = 0; i < n; ++i) m[i] = x[i];                                         \
        for (ptrdiff_t c = 1; c < C; ++c) {                                                    \
            const T* restrict xc = x + c * inner;                                              \
            for (ptrdiff_t i = 0; i < n; ++i) m[i] = fc_nanmax_##SUF(m[i], xc[i]);          \
        }                                                                                      \
        for (ptrdiff_t i = 0; i < n; ++i) s[i] = 0.0;                                          \
        for (ptrdiff_t c = 0; c < C; ++c) {                                                    \
            const T* restrict xc = x + c * inner;                                              \
            T* restrict yc = y + c * inner;                                                    \
            if (log_out) {                                                                     \
                for (ptrdiff_t i = 0; i < n; ++i) s[i] += (double)fc_exp_##SUF(xc[i] - m[i]);  \
            } else {                                                                           \
                for (ptrdiff_t i = 0; i < n; ++i) {                                            \
                    const T e = fc_exp_##SUF(xc[i] - m[i]);                                    \
                    yc[i] = e;                                                                 \
                    s[i] += (double)e;                                                         \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        if (log_out) {                                                                         \
            for (ptrdiff_t i = 0; i < n; ++i) f[i] = (T)log(s[i]);                             \
            for (ptrdiff_t c = 0; c < C; ++c) {                                                \
                const T* restrict xc = x + c * inner;                                          \
                T* restrict yc = y + c * inner;                                                \
                for (ptrdiff_t i = 0; i < n; ++i) yc[i] = (xc[i] - m[i]) - f[i];               \
            }                                                                                  \
        } else {                                                                               \
            for (ptrdiff_t i = 0; i < n; ++i) f[i] = (T)(1.0 / s[i]);                          \
            for (ptrdiff_t c = 0; c < C; ++c) {                                                \
                T* restrict yc = y + c * inner;                                                \
                for (ptrdiff_t i = 0; i < n; ++i) yc[i] *= f[i];                               \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    /* Backward along rows: softmax (y the output) or log_softmax (y the log output). */       \
    FC_MULTIVERSION static void fc_softmax_backward_rows_##SUF(                                \
        const T* restrict g, const T* restrict y, ptrdiff_t rows, ptrdiff_t C,                 \
        T* restrict gi, int log_out)                                                           \
    {                                                                                          \
        for (ptrdiff_t r = 0; r < rows; ++r) {                                                 \
            const T* restrict gr = g + r * C;                                                  \
            const T* restrict yr = y + r * C;                                                  \
            T* restrict out = gi + r * C;                                                      \
            double acc[FC_SM_LANES] = {0}, rest = 0.0;                                         \
            ptrdiff_t c = 0;                                                                   \
            if (log_out) {                                                                     \
                for (; c + FC_SM_LANES <= C; c += FC_SM_LANES)                                 \
                    for (int l = 0; l < FC_SM_LANES; ++l) acc[l] += (double)gr[c + l];         \
                for (; c < C; ++c) rest += (double)gr[c];                                      \
                const T sg = (T)(FC_SM_TREE(acc) + rest);                                      \
                for (c = 0; c < C; ++c) out[c] = gr[c] - fc_exp_##SUF(yr[c]) * sg;             \
            } else {                                                                           \
                for (; c + FC_SM_LANES <= C; c += FC_SM_LANES)                                 \
                    for (int l = 0; l < FC_SM_LANES; ++l)                                      \
                        acc[l] += (double)gr[c + l] * (double)yr[c + l];                       \
                for (; c < C; ++c) rest += (double)gr[c] * (double)yr[c];                      \
                const T dot = (T)(FC_SM_TREE(acc) + rest);                                     \
                for (c = 0; c < C; ++c) out[c] = yr[c] * (gr[c] - dot);                        \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    FC_MULTIVERSION static void fc_softmax_backward_cols_##SUF(                                \
        const T* restrict g, const T* restrict y, ptrdiff_t C, ptrdiff_t inner, ptrdiff_t i0,  \
        ptrdiff_t n, T* restrict gi, int log_out)                                              \
    {                                                                                          \
        double s[FC_SM_BLOCK];                                                                 \
        T f[FC_SM_BLOCK];                                                                      \
        g += i0;                                                                               \
        y += i0;                                                                               \
        gi += i0;                                                                              \
        for (ptrdiff_t i = 0; i < n; ++i) s[i] = 0.0;                                          \
        for (ptrdiff_t c = 0; c < C; ++c) {                                                    \
            const T* restrict gc = g + c * inner;                                              \
            const T* restrict yc = y + c * inner;                                              \
            if (log_out)                                                                       \
                for (ptrdiff_t i = 0; i < n; ++i) s[i] += (double)gc[i];                       \
            else                                                                               \
                for (ptrdiff_t i = 0; i < n; ++i) s[i] += (double)gc[i] * (double)yc[i];       \
        }                                                                                      \
        for (ptrdiff_t i = 0; i < n; ++i) f[i] = (T)s[i];                                      \
        for (ptrdiff_t c = 0; c < C; ++c) {                                                    \
            const T* restrict gc = g + c * inner;                                              \
            const T* restrict yc = y + c * inner;                                              \
            T* restrict oc = gi + c * inner;                                                   \
            if (log_out)                                                                       \
                for (ptrdiff_t i = 0; i < n; ++i) oc[i] = gc[i] - fc_exp_##SUF(yc[i]) * f[i];  \
            else                                                                               \
                for (ptrdiff_t i = 0; i < n; ++i) oc[i] = yc[i] * (gc[i] - f[i]);              \
        }                                                                                      \
    }

FC_DEFINE_SOFTMAX(f, float)
FC_DEFINE_SOFTMAX(d, double)

#endif
