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

#if FC_HAVE_AVX512
/* The 2x2 / stride 2 fast path (every window whole) for float with AVX-512: 16 windows a
 * step, the last one masked. The portable loop leaves a 14-wide row (LeNet's) entirely to
 * the scalar epilogue of a 16-lane vector loop, which branched on every compare and ran
 * 3x slower on ReLU output (its ties mispredict). Same selects as the portable loop. */
FC_TARGET_AVX512 static void fc_max_pool_2x2_avx512_f(const float* x, ptrdiff_t W, float* out,
                                                       int64_t* idx, ptrdiff_t OH, ptrdiff_t OW)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i step2 = _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                                              10, 11, 12, 13, 14, 15), 1);
    for (ptrdiff_t oh = 0; oh < OH; ++oh) {
        const float* x0 = x + 2 * oh * W;
        const float* x1 = x0 + W;
        for (ptrdiff_t o0 = 0; o0 < OW; o0 += 16) {
            const ptrdiff_t n = (OW - o0) < 16 ? (OW - o0) : 16;
            const __mmask16 m_out = (__mmask16)((1u << n) - 1u);
            const ptrdiff_t n_in = 2 * n; /* input elements of this step: 2..32 */
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
            /* best = v where v > best or v is NaN (NaN propagates, the first NaN kept) */
            __m512 best = a;
            best = _mm512_mask_mov_ps(best, _mm512_cmp_ps_mask(b, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q), b);
            best = _mm512_mask_mov_ps(best, _mm512_cmp_ps_mask(c, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q), c);
            best = _mm512_mask_mov_ps(best, _mm512_cmp_ps_mask(d, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q), d);
            /* first window position holding best (or a NaN), by overwriting from the last */
            __m512i at = _mm512_set1_epi32((int)(W + 1));
            at = _mm512_mask_mov_epi32(at, _mm512_cmp_ps_mask(c, best, _CMP_EQ_OQ) | _mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q), _mm512_set1_epi32((int)W));
            at = _mm512_mask_mov_epi32(at, _mm512_cmp_ps_mask(b, best, _CMP_EQ_OQ) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q), _mm512_set1_epi32(1));
            at = _mm512_mask_mov_epi32(at, _mm512_cmp_ps_mask(a, best, _CMP_EQ_OQ) | _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), _mm512_setzero_si512());
            at = _mm512_add_epi32(at, step2); /* + 2*(o - o0) */
            _mm512_mask_storeu_ps(out + oh * OW + o0, m_out, best);
            const __m512i base = _mm512_set1_epi64((long long)(2 * oh * W + 2 * o0));
            const __m512i lo = _mm512_add_epi64(base, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(at)));
            const __m512i hi = _mm512_add_epi64(base, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(at, 1)));
            _mm512_mask_storeu_epi64(idx + oh * OW + o0, (__mmask8)(m_out & 0xFF), lo);
            _mm512_mask_storeu_epi64(idx + oh * OW + o0 + 8, (__mmask8)(m_out >> 8), hi);
        }
    }
}
#endif

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
            if (FC_POOL_2X2_AVX512(T, x, W, out, idx, OH, OW)) return;                         \
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

/* Runs the AVX-512 2x2 kernel and returns 1 when T is float, the CPU has AVX-512 and the
 * window offsets fit its 32-bit lanes. */
#if FC_HAVE_AVX512
#define FC_POOL_2X2_AVX512(T, x, W, out, idx, OH, OW)                                          \
    (sizeof(T) == sizeof(float) && (W) < ((ptrdiff_t)1 << 30) && fc_have_avx512()              \
     && (fc_max_pool_2x2_avx512_f((const float*)(x), W, (float*)(out), idx, OH, OW), 1))
#else
#define FC_POOL_2X2_AVX512(T, x, W, out, idx, OH, OW) 0
#endif

FC_DEFINE_MAX_POOL_PLANE(fc_max_pool_plane_f, float)
FC_DEFINE_MAX_POOL_PLANE(fc_max_pool_plane_d, double)

#endif
