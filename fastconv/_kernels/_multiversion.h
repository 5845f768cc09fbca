/* Portable wide SIMD for the C helpers: on x86-64 Linux with GCC, a function marked
 * FC_MULTIVERSION is compiled three times (x86-64-v4 = AVX-512, x86-64-v3 = AVX2+FMA,
 * baseline) and the loader picks the best for the running CPU (target_clones / ifunc).
 * Elsewhere it compiles once for the build's target flags.
 */
#ifndef FASTCONV_MULTIVERSION_H
#define FASTCONV_MULTIVERSION_H
#include <limits.h> /* defines __GLIBC__ on glibc */
#include <stddef.h>

#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__) \
    && !defined(FASTCONV_NO_MULTIVERSION)
#define FC_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FC_MULTIVERSION
#endif

#if defined(_MSC_VER) && !defined(__clang__)
/* MSVC's C compiler takes the C99 `restrict` and `_Pragma` only in /std:c11 mode; its own
 * spellings work in every mode (unknown pragmas such as GCC unroll are ignored). */
#ifndef restrict
#define restrict __restrict
#endif
#define FC_PRAGMA(x) __pragma(x)
#else
#define FC_PRAGMA(x) _Pragma(#x)
#endif

/* Hand-written AVX-512 kernels (intrinsics) where the compiler takes a target attribute,
 * called only when fc_have_avx512() says the running CPU has it. Elsewhere
 * FC_HAVE_AVX512 is 0 and the portable code runs. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(FASTCONV_NO_MULTIVERSION)
#define FC_HAVE_AVX512 1
#include <immintrin.h>
#define FC_TARGET_AVX512 __attribute__((target("avx512f")))
static inline int fc_have_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f"); /* also checks that the OS saves zmm state */
}

/* AVX2 + FMA tiles (_conv_avx2.h), for x86-64 CPUs without AVX-512: Haswell-era Intel,
 * AMD Zen 1-3. */
#define FC_TARGET_AVX2 __attribute__((target("avx2,fma")))
static inline int fc_have_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* The mask of the first n of 16 float lanes (n clamped to 0..16), for loop tails. */
static inline __mmask16 fc_lanes16(ptrdiff_t n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}
#else
#define FC_HAVE_AVX512 0
static inline int fc_have_avx512(void) { return 0; }
static inline int fc_have_avx2(void) { return 0; }
#endif

#endif
