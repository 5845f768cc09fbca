/* AVX2 + FMA GEMM blocks (float32) for small products on CPUs without AVX-512: the
 * counterpart of _gemm_avx512.h's axpy block, for the 16 products of a Winograd step
 * (C_out x tiles x C_in, e.g. 16 x 196 x 16 for one 28 x 28 image), where a BLAS call's
 * packing and dispatch cost as much as the FLOPs.
 *
 * One block is 6 rows x 16 columns of C: 12 ymm accumulators, the two vectors of B's row
 * and one broadcast of A fill 15 of the 16 registers. Each k costs 2 loads and 6
 * broadcasts for 12 FMAs. Columns past N (the last block) are loaded and stored partially
 * (_avx2_lanes.h), never read or written; rows past M repeat the last row and are not
 * written. Each C[i][j] is the sum over k in order (deterministic, independent of the
 * block it falls in).
 */
#ifndef FASTCONV_GEMM_AVX2_H
#define FASTCONV_GEMM_AVX2_H
#include <stddef.h>
#include "_multiversion.h"
#include "_avx2_lanes.h"

#if FC_HAVE_AVX512 /* x86-64 with target attributes: the AVX2 code compiles too */

/* One 6 x 16 block at (i0, j0): C[i][j] = sum_k A(i, k) B[k*ldb + j] with
 * A(i, k) = a[i*ars + k*aks]. */
FC_TARGET_AVX2 static void fc_sgemm_axpy_block_avx2(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                                                    const float* a, ptrdiff_t ars,
                                                    ptrdiff_t aks, const float* b,
                                                    ptrdiff_t ldb, float* c, ptrdiff_t ldc,
                                                    ptrdiff_t i0, ptrdiff_t j0)
{
#define FC_G2_ROW(R)                                                                           \
    const float* a##R = a + (i0 + R < M ? i0 + R : M - 1) * ars;                               \
    __m256 c##R##0 = _mm256_setzero_ps(), c##R##1 = c##R##0
    FC_G2_ROW(0); FC_G2_ROW(1); FC_G2_ROW(2); FC_G2_ROW(3); FC_G2_ROW(4); FC_G2_ROW(5);
#undef FC_G2_ROW
#define FC_G2_FMA(R)                                                                           \
    do {                                                                                       \
        const __m256 v = _mm256_set1_ps(a##R[ak]);                                             \
        c##R##0 = _mm256_fmadd_ps(v, u0, c##R##0);                                             \
        c##R##1 = _mm256_fmadd_ps(v, u1, c##R##1);                                             \
    } while (0)
#define FC_G2_STEP                                                                             \
    FC_G2_FMA(0); FC_G2_FMA(1); FC_G2_FMA(2); FC_G2_FMA(3); FC_G2_FMA(4); FC_G2_FMA(5)
    const float* bk = b + j0;
    const ptrdiff_t nj = N - j0;
    if (nj >= 16) {
        for (ptrdiff_t k = 0, ak = 0; k < K; ++k, ak += aks, bk += ldb) {
            const __m256 u0 = _mm256_loadu_ps(bk), u1 = _mm256_loadu_ps(bk + 8);
            FC_G2_STEP;
        }
    } else { /* the last block of columns */
        for (ptrdiff_t k = 0, ak = 0; k < K; ++k, ak += aks, bk += ldb) {
            const __m256 u0 = fc_loadu_first8(bk, nj), u1 = fc_loadu_first8(bk + 8, nj - 8);
            FC_G2_STEP;
        }
    }
#undef FC_G2_STEP
#undef FC_G2_FMA
#define FC_G2_PUT(R)                                                                           \
    if (i0 + R < M) {                                                                          \
        float* cr = c + (i0 + R) * ldc + j0;                                                   \
        fc_storeu_first8(cr, c##R##0, nj);                                                     \
        if (nj > 8) fc_storeu_first8(cr + 8, c##R##1, nj - 8);                                 \
    }
    FC_G2_PUT(0) FC_G2_PUT(1) FC_G2_PUT(2) FC_G2_PUT(3) FC_G2_PUT(4) FC_G2_PUT(5)
#undef FC_G2_PUT
}

#else /* the Cython side calls this only when fc_have_avx2() */

static void fc_sgemm_axpy_block_avx2(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, const float* a,
                                     ptrdiff_t ars, ptrdiff_t aks, const float* b,
                                     ptrdiff_t ldb, float* c, ptrdiff_t ldc, ptrdiff_t i0,
                                     ptrdiff_t j0)
{
}

#endif
#endif
