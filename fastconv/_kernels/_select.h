/* Branch-free selects that vectorise on every target.
 *
 * GCC keeps `c ? a : b` on floats as a branch under its default -ftrapping-math unless the
 * target has mask registers (AVX-512): the AVX2 and SSE2 clones then ran scalar code. The
 * same select done on the bit patterns is plain integer logic, which the vectoriser takes.
 */
#ifndef FASTCONV_SELECT_H
#define FASTCONV_SELECT_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* c ? a : b for floats / doubles (c is 0 or 1). */
static inline float fc_select_f(int c, float a, float b)
{
    union { float f; uint32_t u; } x, y;
    x.f = a;
    y.f = b;
    const uint32_t m = (uint32_t)0 - (uint32_t)(c != 0);
    x.u = (x.u & m) | (y.u & ~m);
    return x.f;
}

static inline double fc_select_d(int c, double a, double b)
{
    union { double f; uint64_t u; } x, y;
    x.f = a;
    y.f = b;
    const uint64_t m = (uint64_t)0 - (uint64_t)(c != 0);
    x.u = (x.u & m) | (y.u & ~m);
    return x.f;
}

/* NaN-propagating maximum: v where v > m or v is NaN, else m. */
static inline float fc_nanmax_f(float m, float v) { return fc_select_f((v > m) | (v != v), v, m); }
static inline double fc_nanmax_d(double m, double v) { return fc_select_d((v > m) | (v != v), v, m); }

/* NaN-propagating maximum of a run of n >= 1, as an integer max reduction (which GCC
 * vectorises; a select-based float reduction it does not): floats map to integers of the
 * same order by flipping the magnitude bits of negatives, and NaNs are noted by a second
 * (OR) reduction. The maximum is exact, so the order of the reduction does not matter. */
static inline float fc_max_run_f(const float* restrict x, ptrdiff_t n)
{
    int32_t km = INT32_MIN, nan = 0;
    for (ptrdiff_t c = 0; c < n; ++c) {
        int32_t i;
        memcpy(&i, x + c, sizeof i);
        nan |= (i & INT32_MAX) > 0x7F800000;
        const int32_t k = i ^ ((i >> 31) & INT32_MAX);
        km = k > km ? k : km;
    }
    if (nan) return NAN;
    const int32_t i = km ^ ((km >> 31) & INT32_MAX);
    float m;
    memcpy(&m, &i, sizeof m);
    return m;
}

static inline double fc_max_run_d(const double* restrict x, ptrdiff_t n)
{
    int64_t km = INT64_MIN, nan = 0;
    for (ptrdiff_t c = 0; c < n; ++c) {
        int64_t i;
        memcpy(&i, x + c, sizeof i);
        nan |= (i & INT64_MAX) > 0x7FF0000000000000LL;
        const int64_t k = i ^ ((i >> 63) & INT64_MAX);
        km = k > km ? k : km;
    }
    if (nan) return NAN;
    const int64_t i = km ^ ((km >> 63) & INT64_MAX);
    double m;
    memcpy(&m, &i, sizeof m);
    return m;
}

#endif
