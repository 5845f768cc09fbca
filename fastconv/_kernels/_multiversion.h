/* Portable wide SIMD for the C helpers: on x86-64 Linux with GCC, a function marked
 * FC_MULTIVERSION is compiled three times (x86-64-v4 = AVX-512, x86-64-v3 = AVX2+FMA,
 * baseline) and the loader picks the best for the running CPU (target_clones / ifunc).
 * Elsewhere it compiles once for the build's target flags.
 */
#ifndef FASTCONV_MULTIVERSION_H
#define FASTCONV_MULTIVERSION_H
#include <limits.h> /* defines __GLIBC__ on glibc */

#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__) \
    && !defined(FASTCONV_NO_MULTIVERSION)
#define FC_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FC_MULTIVERSION
#endif

#define FC_PRAGMA(x) _Pragma(#x)

#endif
