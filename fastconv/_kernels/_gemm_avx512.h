/* Small float32 matrix products with AVX-512, for the fully connected layers.
 *
 * At LeNet-5's sizes (64 x 400 x 120) single-threaded OpenBLAS (its AVX2 kernels on this
 * class of CPU) reached ~110 GFLOP/s, and ~8 us of every call went to packing; a layer's
 * three products were the largest part of a training step that did not scale with
 * threads. These kernels read the operands where they lie (no packing: the matrices fit
 * in L2) and split their blocks between the OpenMP threads of the caller.
 *
 * Two blockings cover the three products of a Linear layer:
 *  - dot form, C[i][j] = sum_k A[i][k] * B[j][k] (both operands contiguous in k: the
 *    forward x @ W^T). A 4 x 4 block of C is 16 vector accumulators over k, reduced at the
 *    end.
 *  - axpy form, C[i][j] (+)= sum_k A(i, k) * B[k][j] with B's rows contiguous in j and A
 *    at any strides (grad_input = gy @ W; grad_weight += gy^T @ x). An 8 x 32 block of C
 *    is 16 vector accumulators, updated by a broadcast of A(i, k) times a row of B.
 * Partial blocks read their last valid row again (clamped pointers) and store only the
 * valid rows and columns (masks), so no scratch and no tail loops. Every element of C is
 * summed by one thread in a fixed order: results do not depend on the thread count.
 */
#ifndef FASTCONV_GEMM_AVX512_H
#define FASTCONV_GEMM_AVX512_H
#include <stddef.h>
#include "_multiversion.h"

#if FC_HAVE_AVX512

static inline ptrdiff_t fc_clamp_row(ptrdiff_t r, ptrdiff_t last) { return r < last ? r : last; }

/* The accumulators are named variables, not arrays: gcc 12 kept an __m512 acc[4][4]
 * array in memory and stored all of it on every step of the k loop (4x slower). */

/* Dot form, one 4 x 4 block at (i0, j0): C[i][j] = sum_k A[i*lda + k] * B[j*ldb + k]
 * (+ bias[j] when bias is not NULL). */
FC_TARGET_AVX512 static void fc_sgemm_dot_block(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                                                const float* a, ptrdiff_t lda, const float* b,
                                                ptrdiff_t ldb, const float* bias, float* c,
                                                ptrdiff_t ldc, ptrdiff_t i0, ptrdiff_t j0)
{
    const float* a0 = a + fc_clamp_row(i0, M - 1) * lda;
    const float* a1 = a + fc_clamp_row(i0 + 1, M - 1) * lda;
    const float* a2 = a + fc_clamp_row(i0 + 2, M - 1) * lda;
    const float* a3 = a + fc_clamp_row(i0 + 3, M - 1) * lda;
    const float* b0 = b + fc_clamp_row(j0, N - 1) * ldb;
    const float* b1 = b + fc_clamp_row(j0 + 1, N - 1) * ldb;
    const float* b2 = b + fc_clamp_row(j0 + 2, N - 1) * ldb;
    const float* b3 = b + fc_clamp_row(j0 + 3, N - 1) * ldb;
#define FC_ROW4(R) __m512 c##R##0 = _mm512_setzero_ps(), c##R##1 = c##R##0, c##R##2 = c##R##0, \
                          c##R##3 = c##R##0
    FC_ROW4(0); FC_ROW4(1); FC_ROW4(2); FC_ROW4(3);
#undef FC_ROW4
    for (ptrdiff_t k = 0; k < K; k += 16) {
        const __mmask16 m = fc_lanes16(K - k);
        const __m512 u0 = _mm512_maskz_loadu_ps(m, b0 + k), u1 = _mm512_maskz_loadu_ps(m, b1 + k);
        const __m512 u2 = _mm512_maskz_loadu_ps(m, b2 + k), u3 = _mm512_maskz_loadu_ps(m, b3 + k);
#define FC_FMA4(R)                                                                             \
    do {                                                                                       \
        const __m512 v = _mm512_maskz_loadu_ps(m, a##R + k);                                  \
        c##R##0 = _mm512_fmadd_ps(v, u0, c##R##0);                                             \
        c##R##1 = _mm512_fmadd_ps(v, u1, c##R##1);                                             \
        c##R##2 = _mm512_fmadd_ps(v, u2, c##R##2);                                             \
        c##R##3 = _mm512_fmadd_ps(v, u3, c##R##3);                                             \
    } while (0)
        FC_FMA4(0); FC_FMA4(1); FC_FMA4(2); FC_FMA4(3);
#undef FC_FMA4
    }
#define FC_PUT(R, S)                                                                           \
    do {                                                                                       \
        const float v = _mm512_reduce_add_ps(c##R##S);                                         \
        if (i0 + R < M && j0 + S < N)                                                          \
            c[(i0 + R) * ldc + j0 + S] = bias ? v + bias[j0 + S] : v;                          \
    } while (0)
#define FC_PUT4(R) FC_PUT(R, 0); FC_PUT(R, 1); FC_PUT(R, 2); FC_PUT(R, 3)
    FC_PUT4(0); FC_PUT4(1); FC_PUT4(2); FC_PUT4(3);
#undef FC_PUT4
#undef FC_PUT
}

/* Axpy form, one 8 x 32 block at (i0, j0): C[i][j] = beta*C[i][j] + sum_k A(i, k) B[k*ldb + j]
 * with A(i, k) = a[i*ars + k*aks]; beta is 0 or 1. */
FC_TARGET_AVX512 static void fc_sgemm_axpy_block(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                                                 const float* a, ptrdiff_t ars, ptrdiff_t aks,
                                                 const float* b, ptrdiff_t ldb, float* c,
                                                 ptrdiff_t ldc, int accumulate, ptrdiff_t i0,
                                                 ptrdiff_t j0)
{
#define FC_ROW(R) const float* a##R = a + fc_clamp_row(i0 + R, M - 1) * ars; \
                  __m512 c##R##0 = _mm512_setzero_ps(), c##R##1 = c##R##0
    FC_ROW(0); FC_ROW(1); FC_ROW(2); FC_ROW(3); FC_ROW(4); FC_ROW(5); FC_ROW(6); FC_ROW(7);
#undef FC_ROW
    const __mmask16 m0 = fc_lanes16(N - j0), m1 = fc_lanes16(N - j0 - 16);
    const float* bk = b + j0;
    for (ptrdiff_t k = 0, ak = 0; k < K; ++k, ak += aks, bk += ldb) {
        const __m512 u0 = _mm512_maskz_loadu_ps(m0, bk);
        const __m512 u1 = _mm512_maskz_loadu_ps(m1, bk + 16);
#define FC_FMA(R)                                                                              \
    do {                                                                                       \
        const __m512 v = _mm512_set1_ps(a##R[ak]);                                             \
        c##R##0 = _mm512_fmadd_ps(v, u0, c##R##0);                                             \
        c##R##1 = _mm512_fmadd_ps(v, u1, c##R##1);                                             \
    } while (0)
        FC_FMA(0); FC_FMA(1); FC_FMA(2); FC_FMA(3); FC_FMA(4); FC_FMA(5); FC_FMA(6); FC_FMA(7);
#undef FC_FMA
    }
#define FC_PUT(R)                                                                              \
    if (i0 + R < M) {                                                                          \
        float* cr = c + (i0 + R) * ldc + j0;                                                   \
        if (accumulate) {                                                                      \
            c##R##0 = _mm512_add_ps(c##R##0, _mm512_maskz_loadu_ps(m0, cr));                  \
            c##R##1 = _mm512_add_ps(c##R##1, _mm512_maskz_loadu_ps(m1, cr + 16));             \
        }                                                                                      \
        _mm512_mask_storeu_ps(cr, m0, c##R##0);                                                \
        _mm512_mask_storeu_ps(cr + 16, m1, c##R##1);                                           \
    }
    FC_PUT(0) FC_PUT(1) FC_PUT(2) FC_PUT(3) FC_PUT(4) FC_PUT(5) FC_PUT(6) FC_PUT(7)
#undef FC_PUT
}

/* grad_bias: gb[j] += sum_i g[i*ldg + j] over M rows, in row order. */
FC_TARGET_AVX512 static void fc_column_sums(ptrdiff_t M, ptrdiff_t N, const float* g,
                                            ptrdiff_t ldg, float* gb)
{
    for (ptrdiff_t j0 = 0; j0 < N; j0 += 16) {
        const __mmask16 m = fc_lanes16(N - j0);
        __m512 acc = _mm512_setzero_ps();
        for (ptrdiff_t i = 0; i < M; ++i) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, g + i * ldg + j0));
        _mm512_mask_storeu_ps(gb + j0, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, gb + j0), acc));
    }
}

#else /* the Cython side calls these only when fc_have_avx512() */

static void fc_sgemm_dot_block(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float* a,
                               ptrdiff_t lda, const float* b, ptrdiff_t ldb, const float* bias,
                               float* c, ptrdiff_t ldc, ptrdiff_t i0, ptrdiff_t j0)
{
}

static void fc_column_sums(ptrdiff_t M, ptrdiff_t N, const float* g, ptrdiff_t ldg, float* gb)
{
}

static void fc_sgemm_axpy_block(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float* a,
                                ptrdiff_t ars, ptrdiff_t aks, const float* b, ptrdiff_t ldb,
                                float* c, ptrdiff_t ldc, int accumulate, ptrdiff_t i0,
                                ptrdiff_t j0)
{
}

#endif
#endif
