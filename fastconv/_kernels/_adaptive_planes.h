/* Adaptive average/max pooling over planes and maxout over channel runs (C helpers of
 * _adaptive_pool.pyx).
 *
 * Bins follow PyTorch: output row i covers input rows [floor(i*H/OH), ceil((i+1)*H/OH)),
 * likewise for columns; bins may overlap when OH does not divide H.
 *
 * Sums run in double over eight independent lanes (each whole group of eight in a bin row
 * goes to lanes 0..7, a row's remainder to a ninth accumulator), which the compiler turns
 * into vectors of doubles; the lanes are added in a fixed tree at the end. The arithmetic
 * is spelled out lane by lane, so the result does not depend on the vector width a target
 * clone picks, nor on how planes are split between threads: deterministic, and for
 * float32 far more accurate than a float accumulator.
 *
 * Maxima propagate NaN (a vectorised integer max over each bin row, _select.h) and the
 * argmax is the first position, in row-major order, holding the maximum (or the first
 * NaN), as max_pool2d.
 */
#ifndef FASTCONV_ADAPTIVE_PLANES_H
#define FASTCONV_ADAPTIVE_PLANES_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "_multiversion.h"
#include "_select.h"

#define FC_AP_LANES 8
/* The fixed order in which the eight lanes are added. */
#define FC_AP_TREE(a) ((((a)[0] + (a)[1]) + ((a)[2] + (a)[3])) + (((a)[4] + (a)[5]) + ((a)[6] + (a)[7])))

static inline ptrdiff_t fc_bin_start(ptrdiff_t i, ptrdiff_t in, ptrdiff_t out)
{
    return (i * in) / out;
}

static inline ptrdiff_t fc_bin_end(ptrdiff_t i, ptrdiff_t in, ptrdiff_t out)
{
    return ((i + 1) * in + out - 1) / out;
}

/* Sum of a rows x cols block (row stride ld). A row's remainder (< 8) goes to its own
 * accumulator so that the lanes are only ever indexed by constants and stay in registers. */
#define FC_DEFINE_BLOCK_SUM(SUF, T)                                                            \
    static inline double fc_block_sum_##SUF(const T* restrict x, ptrdiff_t rows,               \
                                            ptrdiff_t cols, ptrdiff_t ld)                      \
    {                                                                                          \
        double acc[FC_AP_LANES] = {0}, rest = 0.0;                                             \
        for (ptrdiff_t r = 0; r < rows; ++r) {                                                 \
            const T* restrict xr = x + r * ld;                                                 \
            ptrdiff_t c = 0;                                                                   \
            for (; c + FC_AP_LANES <= cols; c += FC_AP_LANES)                                  \
                for (int l = 0; l < FC_AP_LANES; ++l) acc[l] += (double)xr[c + l];             \
            for (; c < cols; ++c) rest += (double)xr[c];                                       \
        }                                                                                      \
        return FC_AP_TREE(acc) + rest;                                                         \
    }

FC_DEFINE_BLOCK_SUM(f, float)
FC_DEFINE_BLOCK_SUM(d, double)

/* One bin's maximum and its first position (flat within the plane, row stride W). */
#define FC_DEFINE_BIN_MAX(SUF, T)                                                              \
    static inline void fc_bin_max_##SUF(const T* restrict x, ptrdiff_t W, ptrdiff_t h0,        \
                                        ptrdiff_t h1, ptrdiff_t w0, ptrdiff_t w1,              \
                                        T* restrict out, int64_t* restrict idx)                \
    {                                                                                          \
        T m = fc_max_run_##SUF(x + h0 * W + w0, w1 - w0);                                      \
        for (ptrdiff_t h = h0 + 1; h < h1; ++h)                                                \
            m = fc_nanmax_##SUF(m, fc_max_run_##SUF(x + h * W + w0, w1 - w0));                 \
        /* second pass: the first position holding m (or a NaN when m is NaN) */              \
        const int is_nan = m != m;                                                             \
        for (ptrdiff_t h = h0; h < h1; ++h) {                                                  \
            const T* xr = x + h * W;                                                           \
            for (ptrdiff_t w = w0; w < w1; ++w) {                                              \
                const T v = xr[w];                                                             \
                if (is_nan ? v != v : v == m) {                                                \
                    *out = v;                                                                  \
                    *idx = (int64_t)(h * W + w);                                               \
                    return;                                                                    \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        *out = m; /* unreachable: m is one of the values */                                    \
        *idx = (int64_t)(h0 * W + w0);                                                         \
    }

FC_DEFINE_BIN_MAX(f, float)
FC_DEFINE_BIN_MAX(d, double)

/* Plane-range kernels: n_planes consecutive planes of H x W in, OH x OW out. */
#define FC_DEFINE_ADAPTIVE(SUF, T)                                                             \
    FC_MULTIVERSION static void fc_adaptive_avg_##SUF(const T* restrict x, ptrdiff_t n_planes, \
                                                      ptrdiff_t H, ptrdiff_t W,                \
                                                      T* restrict out, ptrdiff_t OH,           \
                                                      ptrdiff_t OW)                            \
    {                                                                                          \
        if (OH == 1 && OW == 1) {                                                              \
            /* global pooling: each plane is one contiguous run */                            \
            const ptrdiff_t n = H * W;                                                         \
            const double inv = 1.0 / (double)n;                                                \
            for (ptrdiff_t p = 0; p < n_planes; ++p)                                           \
                out[p] = (T)(fc_block_sum_##SUF(x + p * n, 1, n, n) * inv);                    \
            return;                                                                            \
        }                                                                                      \
        for (ptrdiff_t p = 0; p < n_planes; ++p) {                                             \
            const T* xp = x + p * H * W;                                                       \
            T* op = out + p * OH * OW;                                                         \
            for (ptrdiff_t oh = 0; oh < OH; ++oh) {                                            \
                const ptrdiff_t h0 = fc_bin_start(oh, H, OH), h1 = fc_bin_end(oh, H, OH);      \
                for (ptrdiff_t ow = 0; ow < OW; ++ow) {                                        \
                    const ptrdiff_t w0 = fc_bin_start(ow, W, OW), w1 = fc_bin_end(ow, W, OW);  \
                    const double s = fc_block_sum_##SUF(xp + h0 * W + w0, h1 - h0, w1 - w0, W); \
                    op[oh * OW + ow] = (T)(s / (double)((h1 - h0) * (w1 - w0)));               \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    /* grad_input planes (fully written) <- each output gradient spread over its bin. */      \
    FC_MULTIVERSION static void fc_adaptive_avg_backward_##SUF(                                \
        const T* restrict go, ptrdiff_t n_planes, ptrdiff_t OH, ptrdiff_t OW,                  \
        T* restrict gi, ptrdiff_t H, ptrdiff_t W)                                              \
    {                                                                                          \
        if (OH == 1 && OW == 1) {                                                              \
            const ptrdiff_t n = H * W;                                                         \
            for (ptrdiff_t p = 0; p < n_planes; ++p) {                                         \
                const T g = (T)((double)go[p] / (double)n);                                    \
                T* restrict gp = gi + p * n;                                                   \
                for (ptrdiff_t k = 0; k < n; ++k) gp[k] = g;                                   \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (ptrdiff_t p = 0; p < n_planes; ++p) {                                             \
            const T* gop = go + p * OH * OW;                                                   \
            T* gp = gi + p * H * W;                                                            \
            memset(gp, 0, (size_t)(H * W) * sizeof(T));                                        \
            for (ptrdiff_t oh = 0; oh < OH; ++oh) {                                            \
                const ptrdiff_t h0 = fc_bin_start(oh, H, OH), h1 = fc_bin_end(oh, H, OH);      \
                for (ptrdiff_t ow = 0; ow < OW; ++ow) {                                        \
                    const ptrdiff_t w0 = fc_bin_start(ow, W, OW), w1 = fc_bin_end(ow, W, OW);  \
                    const T g = (T)((double)gop[oh * OW + ow] / (double)((h1 - h0) * (w1 - w0))); \
                    for (ptrdiff_t h = h0; h < h1; ++h) {                                      \
                        T* restrict gr = gp + h * W;                                           \
                        for (ptrdiff_t w = w0; w < w1; ++w) gr[w] += g;                        \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    FC_MULTIVERSION static void fc_adaptive_max_##SUF(const T* restrict x, ptrdiff_t n_planes, \
                                                      ptrdiff_t H, ptrdiff_t W,                \
                                                      T* restrict out, int64_t* restrict idx,  \
                                                      ptrdiff_t OH, ptrdiff_t OW)              \
    {                                                                                          \
        for (ptrdiff_t p = 0; p < n_planes; ++p) {                                             \
            const T* xp = x + p * H * W;                                                       \
            for (ptrdiff_t oh = 0; oh < OH; ++oh) {                                            \
                const ptrdiff_t h0 = fc_bin_start(oh, H, OH), h1 = fc_bin_end(oh, H, OH);      \
                for (ptrdiff_t ow = 0; ow < OW; ++ow) {                                        \
                    const ptrdiff_t w0 = fc_bin_start(ow, W, OW), w1 = fc_bin_end(ow, W, OW);  \
                    const ptrdiff_t o = p * OH * OW + oh * OW + ow;                            \
                    if (OH == 1 && OW == 1) /* global: the plane as one run */                 \
                        fc_bin_max_##SUF(xp, H * W, 0, 1, 0, H * W, out + o, idx + o);         \
                    else                                                                       \
                        fc_bin_max_##SUF(xp, W, h0, h1, w0, w1, out + o, idx + o);             \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    /* Maxout over rows of k pieces: x (rows, k, inner) -> out, idx (rows, inner); idx is      \
     * the winning piece j in [0, k). Two branch-free sweeps (max, then the first piece       \
     * holding it, found by overwriting from the last piece down). */                         \
    FC_MULTIVERSION static void fc_maxout_##SUF(const T* restrict x, ptrdiff_t rows,           \
                                                ptrdiff_t k, ptrdiff_t inner,                  \
                                                T* restrict out, int64_t* restrict idx)        \
    {                                                                                          \
        if (inner == 1) {                                                                      \
            /* (rows, k): one short run per output; loop rows innermost (strided loads) */    \
            for (ptrdiff_t r = 0; r < rows; ++r) out[r] = x[r * k];                            \
            for (ptrdiff_t j = 1; j < k; ++j)                                                  \
                for (ptrdiff_t r = 0; r < rows; ++r)                                           \
                    out[r] = fc_nanmax_##SUF(out[r], x[r * k + j]);                            \
            for (ptrdiff_t r = 0; r < rows; ++r) idx[r] = k;                                   \
            for (ptrdiff_t j = k - 1; j >= 0; --j)                                             \
                for (ptrdiff_t r = 0; r < rows; ++r) {                                         \
                    const T v = x[r * k + j];                                                  \
                    idx[r] = (v == out[r]) | (v != v) ? j : idx[r];                            \
                }                                                                              \
            return;                                                                            \
        }                                                                                      \
        for (ptrdiff_t r = 0; r < rows; ++r) {                                                 \
            const T* restrict xr = x + r * k * inner;                                          \
            T* restrict m = out + r * inner;                                                   \
            int64_t* restrict a = idx + r * inner;                                             \
            for (ptrdiff_t i = 0; i < inner; ++i) m[i] = xr[i];                                \
            for (ptrdiff_t j = 1; j < k; ++j) {                                                \
                const T* restrict xj = xr + j * inner;                                         \
                for (ptrdiff_t i = 0; i < inner; ++i) m[i] = fc_nanmax_##SUF(m[i], xj[i]);     \
            }                                                                                  \
            for (ptrdiff_t i = 0; i < inner; ++i) a[i] = k;                                    \
            for (ptrdiff_t j = k - 1; j >= 0; --j) {                                           \
                const T* restrict xj = xr + j * inner;                                         \
                for (ptrdiff_t i = 0; i < inner; ++i) {                                        \
                    const T v = xj[i];                                                         \
                    a[i] = (v == m[i]) | (v != v) ? j : a[i];                                  \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    /* gi (rows, k, inner), fully written <- go (rows, inner) at the winning piece. */        \
    FC_MULTIVERSION static void fc_maxout_backward_##SUF(const T* restrict go,                 \
                                                         const int64_t* restrict idx,          \
                                                         ptrdiff_t rows, ptrdiff_t k,          \
                                                         ptrdiff_t inner, T* restrict gi)      \
    {                                                                                          \
        for (ptrdiff_t r = 0; r < rows; ++r) {                                                 \
            const T* restrict g = go + r * inner;                                              \
            const int64_t* restrict a = idx + r * inner;                                       \
            for (ptrdiff_t j = 0; j < k; ++j) {                                                \
                T* restrict gj = gi + (r * k + j) * inner;                                     \
                for (ptrdiff_t i = 0; i < inner; ++i) {                                        \
                    const T v = g[i]; /* load first, then select: no branch */                \
                    gj[i] = a[i] == j ? v : (T)0;                                              \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

FC_DEFINE_ADAPTIVE(f, float)
FC_DEFINE_ADAPTIVE(d, double)

#endif
