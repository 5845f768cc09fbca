/* Small reductions that the compiler may vectorise: `omp simd reduction` licenses
 * reassociation of this one sum (no global -ffast-math).  Works with -fopenmp or
 * -fopenmp-simd; without either the pragma is ignored and the loop is scalar. */
#ifndef FASTCONV_SIMD_H
#define FASTCONV_SIMD_H
#include <stddef.h>

static inline float fc_dot_f(const float* a, const float* b, ptrdiff_t n, ptrdiff_t b_stride) {
    float s = 0.0f;
    if (b_stride == 1) {
        #pragma omp simd reduction(+:s)
        for (ptrdiff_t i = 0; i < n; ++i) s += a[i] * b[i];
    } else {
        #pragma omp simd reduction(+:s)
        for (ptrdiff_t i = 0; i < n; ++i) s += a[i] * b[i * b_stride];
    }
    return s;
}

static inline double fc_dot_d(const double* a, const double* b, ptrdiff_t n, ptrdiff_t b_stride) {
    double s = 0.0;
    if (b_stride == 1) {
        #pragma omp simd reduction(+:s)
        for (ptrdiff_t i = 0; i < n; ++i) s += a[i] * b[i];
    } else {
        #pragma omp simd reduction(+:s)
        for (ptrdiff_t i = 0; i < n; ++i) s += a[i] * b[i * b_stride];
    }
    return s;
}
#endif
