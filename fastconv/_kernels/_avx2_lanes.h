/* Partial AVX2 vectors for loop tails: the first n of 8 float lanes loaded or stored with
 * plain 128/64/32-bit moves, nothing past them read or written. (AVX2's vmaskmovps does the
 * same, but AMD Zen 1/2 microcode it: about 12 cycles a masked store and 10 a masked load,
 * against 1-2 here, measured on a Zen 1.) Shared by _conv_avx2.h, _gemm_avx2.h and _winograd.h. */
#ifndef FASTCONV_AVX2_LANES_H
#define FASTCONV_AVX2_LANES_H
#include <stddef.h>
#include "_multiversion.h"

#if FC_HAVE_AVX512 /* x86-64 with target attributes */
/* The first n lanes of v (all 8 when n >= 8, none when n <= 0) stored to p. */
FC_TARGET_AVX2 static inline void fc_storeu_first8(float* p, __m256 v, ptrdiff_t n)
{
    if (n >= 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    if (n <= 0) return; /* (the bit tests below would take -1 for 7 lanes) */
    __m128 h = _mm256_castps256_ps128(v);
    if (n & 4) {
        _mm_storeu_ps(p, h);
        h = _mm256_extractf128_ps(v, 1);
        p += 4;
    }
    if (n & 2) {
        _mm_storel_pi((__m64*)p, h);
        h = _mm_movehl_ps(h, h);
        p += 2;
    }
    if (n & 1) _mm_store_ss(p, h);
}

/* The first n floats at p (all 8 when n >= 8, none when n <= 0); the other lanes 0. */
FC_TARGET_AVX2 static inline __m256 fc_loadu_first8(const float* p, ptrdiff_t n)
{
    if (n >= 8) return _mm256_loadu_ps(p);
    if (n <= 0) return _mm256_setzero_ps();
    const float* q = n >= 4 ? p + 4 : p;
    __m128 t = _mm_setzero_ps();
    if (n & 2) t = _mm_castpd_ps(_mm_load_sd((const double*)q));
    if (n & 1) t = (n & 2) ? _mm_movelh_ps(t, _mm_load_ss(q + 2)) : _mm_load_ss(q);
    /* (insertf128 rather than _mm256_set_m128, which GCC has only from version 8) */
    return n >= 4 ? _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p)), t, 1)
                  : _mm256_insertf128_ps(_mm256_castps128_ps256(t), _mm_setzero_ps(), 1);
}

/* The first n lanes of v (all 4 when n >= 4, none when n <= 0) stored to p. */
FC_TARGET_AVX2 static inline void fc_storeu_first4d(double* p, __m256d v, ptrdiff_t n)
{
    if (n >= 4) {
        _mm256_storeu_pd(p, v);
        return;
    }
    if (n <= 0) return;
    __m128d h = _mm256_castpd256_pd128(v);
    if (n & 2) {
        _mm_storeu_pd(p, h);
        h = _mm256_extractf128_pd(v, 1);
        p += 2;
    }
    if (n & 1) _mm_store_sd(p, h);
}

/* The first n doubles at p (all 4 when n >= 4, none when n <= 0); the other lanes 0. */
FC_TARGET_AVX2 static inline __m256d fc_loadu_first4d(const double* p, ptrdiff_t n)
{
    if (n >= 4) return _mm256_loadu_pd(p);
    if (n <= 0) return _mm256_setzero_pd();
    const __m128d lo = n >= 2 ? _mm_loadu_pd(p) : _mm_load_sd(p);
    const __m128d hi = n == 3 ? _mm_load_sd(p + 2) : _mm_setzero_pd();
    return _mm256_insertf128_pd(_mm256_castpd128_pd256(lo), hi, 1);
}

/* The even and odd lanes of the 16 values lo:hi, in order (shuffle_ps works within 128-bit
 * halves; permute4x64 puts the halves back in sequence): 2x2 pooling's horizontal pairs,
 * Winograd's split of a row into its even and odd columns. */
FC_TARGET_AVX2 static inline void fc_deinterleave8(__m256 lo, __m256 hi, __m256* ev, __m256* od)
{
    *ev = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
    *od = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
}
#endif
#endif
