/* Max-pool forward of one plane, vectorisable.
 *
 * The loop runs window-major over a whole output row: for each window offset (i, j) it
 * sweeps every output column, comparing with selects rather than branches. With restrict
 * pointers the compiler vectorises the sweep (strided loads for stride 2); the per-window
 * scalar loop this replaces mispredicted on random data and ran ~8x slower.
 *
 * Semantics (as PyTorch): windows start at o*stride - pad and are clipped to the plane;
 * the first maximum in row-major window order wins ties; a NaN wins over any number and
 * the first NaN is kept. idx is the flat position ih*W + iw within the plane.
 */
#ifndef FASTCONV_POOL_PLANES_H
#define FASTCONV_POOL_PLANES_H
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include "_index.h"
#include "_multiversion.h"

/* Two passes, each a branch-free sweep the compiler vectorises: first the NaN-propagating
 * maximum (m = v when v > m or v is NaN), then the argmax as the first window position
 * holding that maximum, or holding a NaN when the maximum is NaN. A one-pass
 * max-with-index loop was compiled to branches and ran ~5x slower on random data. */
#define FC_DEFINE_MAX_POOL_PLANE(NAME, T)                                                      \
    FC_MULTIVERSION static void NAME(const T* restrict x, ptrdiff_t H, ptrdiff_t W,            \
                                     T* restrict out, int64_t* restrict idx, ptrdiff_t OH,     \
                                     ptrdiff_t OW, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,   \
                                     ptrdiff_t sw, ptrdiff_t ph, ptrdiff_t pw)                 \
    {                                                                                          \
        if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0                     \
            && 2 * OH <= H && 2 * OW <= W) {                                                   \
            /* The CNN default, every window whole: both passes in registers. */              \
            for (ptrdiff_t oh = 0; oh < OH; ++oh) {                                            \
                const T* restrict x0 = x + 2 * oh * W;                                         \
                const T* restrict x1 = x0 + W;                                                 \
                T* restrict m = out + oh * OW;                                                 \
                int64_t* restrict k = idx + oh * OW;                                           \
                const int64_t base = 2 * oh * W;                                               \
                for (ptrdiff_t o = 0; o < OW; ++o) {                                           \
                    const T a = x0[2 * o], b = x0[2 * o + 1], c = x1[2 * o], d = x1[2 * o + 1]; \
                    T best = a;                                                                \
                    best = (b > best) | (b != b) ? b : best;                                   \
                    best = (c > best) | (c != c) ? c : best;                                   \
                    best = (d > best) | (d != d) ? d : best;                                   \
                    int64_t at = W + 1;                                                        \
                    at = (c == best) | (c != c) ? W : at;                                      \
                    at = (b == best) | (b != b) ? 1 : at;                                      \
                    at = (a == best) | (a != a) ? 0 : at;                                      \
                    m[o] = best;                                                               \
                    k[o] = base + 2 * o + at;                                                  \
                }                                                                              \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (ptrdiff_t oh = 0; oh < OH; ++oh) {                                                \
            T* restrict m = out + oh * OW;                                                     \
            int64_t* restrict k = idx + oh * OW;                                               \
            for (ptrdiff_t o = 0; o < OW; ++o) {                                               \
                m[o] = -(T)INFINITY; /* every window holds at least one element */            \
                k[o] = -1;                                                                     \
            }                                                                                  \
            for (int pass = 0; pass < 2; ++pass) {                                             \
                for (ptrdiff_t i = 0; i < kh; ++i) {                                           \
                    const ptrdiff_t ih = oh * sh - ph + i;                                     \
                    if (ih < 0 || ih >= H) continue;                                           \
                    const T* restrict xr = x + ih * W;                                         \
                    for (ptrdiff_t j = 0; j < kw; ++j) {                                       \
                        const ptrdiff_t off = j - pw;                                          \
                        const ptrdiff_t lo = fc_valid_lo(off, sw, OW);                         \
                        const ptrdiff_t hi = fc_valid_hi(off, sw, W, OW, lo);                  \
                        if (pass == 0) {                                                       \
                            for (ptrdiff_t o = lo; o < hi; ++o) {                              \
                                const T v = xr[o * sw + off];                                  \
                                m[o] = (v > m[o]) | (v != v) ? v : m[o];                       \
                            }                                                                  \
                        } else {                                                               \
                            const int64_t base = (int64_t)(ih * W + off);                      \
                            for (ptrdiff_t o = lo; o < hi; ++o) {                              \
                                const T v = xr[o * sw + off];                                  \
                                const int hit = (k[o] < 0) & ((v == m[o]) | (v != v));         \
                                k[o] = hit ? base + (int64_t)(o * sw) : k[o];                  \
                            }                                                                  \
                        }                                                                      \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

FC_DEFINE_MAX_POOL_PLANE(fc_max_pool_plane_f, float)
FC_DEFINE_MAX_POOL_PLANE(fc_max_pool_plane_d, double)

#endif
