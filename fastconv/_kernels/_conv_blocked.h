/* Register-blocked direct convolution (forward) for one image and one group.
 *
 * Each step keeps a block of CB output channels x OWB output pixels of one output row in
 * accumulators (acc[OWB][CB]: vector registers once the compiler unrolls q and
 * vectorises l), and streams the repacked weights wpack[cblock][C][kh][kw][CB] once per
 * block. Compared with im2col + GEMM this writes no column matrix and packs nothing,
 * which is what dominates at LeNet-sized layers (16 output channels, 100-800 pixels).
 *
 * The output is addressed through element strides (ocs channel, ors row, ops pixel), so
 * grad_input can write one stride phase of its image in place (see functional.py).
 *
 * The input arrives zero-padded (xpad: C x Hp x Wp, with enough extra columns that the
 * last pixel block may read past OW), so the inner loops have no bounds tests.
 *
 * Portable wide SIMD: on x86-64 Linux with GCC the functions are compiled three times
 * (x86-64-v4 = AVX-512, x86-64-v3 = AVX2+FMA, baseline SSE2) and the loader picks the
 * best for the running CPU (target_clones / ifunc). Elsewhere they compile once for the
 * build's target flags.
 */
#ifndef FASTCONV_CONV_BLOCKED_H
#define FASTCONV_CONV_BLOCKED_H
#include <stddef.h>
#include "_multiversion.h"

/* The parameters of every forward tile kernel (these and _conv_avx512.h's), and the call
 * passing them on. */
#define FC_CONV_PARAMS(T)                                                                      \
    const T *xpad, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp, const T *wpack, const T *bias,     \
        ptrdiff_t cout, T *out, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t kh, ptrdiff_t kw,        \
        ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw, ptrdiff_t ocs, ptrdiff_t ors,  \
        ptrdiff_t ops
#define FC_CONV_ARGS                                                                           \
    xpad, C, Hp, Wp, wpack, bias, cout, out, OH, OW, kh, kw, sh, sw, dh, dw, ocs, ors, ops

#define FC_DEFINE_CONV_BLOCKED(NAME, T, CB, OWB)                                               \
    FC_MULTIVERSION static void NAME(FC_CONV_PARAMS(T))                                        \
    {                                                                                          \
        const ptrdiff_t K = C * kh * kw;                                                       \
        for (ptrdiff_t cb = 0; cb * CB < cout; ++cb) {                                         \
            const T* wp = wpack + cb * K * CB;                                                 \
            const ptrdiff_t nco = (cout - cb * CB) < CB ? (cout - cb * CB) : CB;               \
            T bv[CB];                                                                          \
            for (int l = 0; l < CB; ++l) bv[l] = l < nco ? bias[cb * CB + l] : (T)0;           \
            for (ptrdiff_t oh = 0; oh < OH; ++oh) {                                            \
                for (ptrdiff_t ow0 = 0; ow0 < OW; ow0 += OWB) {                                \
                    T acc[OWB][CB];                                                            \
                    FC_PRAGMA(GCC unroll 16)                                                   \
                    for (int q = 0; q < OWB; ++q)                                              \
                        for (int l = 0; l < CB; ++l) acc[q][l] = bv[l];                        \
                    for (ptrdiff_t c = 0; c < C; ++c) {                                        \
                        for (ptrdiff_t i = 0; i < kh; ++i) {                                   \
                            const T* xr = xpad + (c * Hp + oh * sh + i * dh) * Wp + ow0 * sw;  \
                            const T* wr = wp + (c * kh + i) * kw * CB;                         \
                            for (ptrdiff_t j = 0; j < kw; ++j) {                               \
                                const T* xj = xr + j * dw;                                     \
                                const T* wj = wr + j * CB;                                     \
                                FC_PRAGMA(GCC unroll 16)                                       \
                                for (int q = 0; q < OWB; ++q) {                                \
                                    const T xv = xj[q * sw];                                   \
                                    FC_PRAGMA(omp simd)                                        \
                                    for (int l = 0; l < CB; ++l) acc[q][l] += xv * wj[l];      \
                                }                                                              \
                            }                                                                  \
                        }                                                                      \
                    }                                                                          \
                    const ptrdiff_t nq = (OW - ow0) < OWB ? (OW - ow0) : OWB;                  \
                    for (ptrdiff_t l = 0; l < nco; ++l) {                                      \
                        T* o = out + (cb * CB + l) * ocs + oh * ors + ow0 * ops;               \
                        for (ptrdiff_t q = 0; q < nq; ++q) o[q * ops] = acc[q][l];             \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

/* (CB, OWB) per dtype: CB channels fill one AVX-512 vector (two AVX2, four SSE) or half
 * of one; OWB independent accumulators hide the FMA latency while staying within the 16
 * AVX2 registers (CB=16 x 6 pixels = 12 ymm, CB=8 x 8 pixels = 8 ymm). */
FC_DEFINE_CONV_BLOCKED(fc_conv_blocked_f16, float, 16, 6)
FC_DEFINE_CONV_BLOCKED(fc_conv_blocked_f8, float, 8, 8)
FC_DEFINE_CONV_BLOCKED(fc_conv_blocked_d8, double, 8, 6)
FC_DEFINE_CONV_BLOCKED(fc_conv_blocked_d4, double, 4, 8)

/* The portable forward kernel with CB channels per block. */
static inline void fc_conv_blocked_f(ptrdiff_t cb, FC_CONV_PARAMS(float))
{
    if (cb == 16) fc_conv_blocked_f16(FC_CONV_ARGS);
    else fc_conv_blocked_f8(FC_CONV_ARGS);
}
static inline void fc_conv_blocked_d(ptrdiff_t cb, FC_CONV_PARAMS(double))
{
    if (cb == 8) fc_conv_blocked_d8(FC_CONV_ARGS);
    else fc_conv_blocked_d4(FC_CONV_ARGS);
}

/* OWB of the variant with CB channels (the wide variants use 6, the narrow ones 8). */
static inline int fc_blocked_owb(ptrdiff_t cb, int is_double)
{
    return (is_double ? cb == 8 : cb == 16) ? 6 : 8;
}

/* grad_weight of one image and group, accumulated into gw[block][C][kh][kw][CB].
 *
 * gyt is the image's grad_output transposed to (OH*OW, n_blocks*CB), channel-minor, so one
 * vector load gives a block of output channels at a pixel; acc[JB][CB] holds JB kernel
 * columns of one (c, i) at once, so each gradient vector feeds JB FMAs. JB is fixed per
 * variant: when kw is not a multiple of JB the extra columns are computed from the
 * zeroed slack after xpad and discarded.
 */
#define FC_DEFINE_WGRAD_BLOCKED(NAME, T, CB, JB)                                               \
    FC_MULTIVERSION static void NAME(const T* xpad, ptrdiff_t C, ptrdiff_t Hp, ptrdiff_t Wp,   \
                                     const T* gyt, ptrdiff_t n_blocks, T* gw, ptrdiff_t OH,    \
                                     ptrdiff_t OW, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,   \
                                     ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw)                 \
    {                                                                                          \
        const ptrdiff_t ld = n_blocks * CB;                                                    \
        for (ptrdiff_t cb = 0; cb < n_blocks; ++cb) {                                          \
            for (ptrdiff_t c = 0; c < C; ++c) {                                                \
                for (ptrdiff_t i = 0; i < kh; ++i) {                                           \
                    for (ptrdiff_t j0 = 0; j0 < kw; j0 += JB) {                                \
                        T acc[JB][CB];                                                         \
                        FC_PRAGMA(GCC unroll 16)                                               \
                        for (int q = 0; q < JB; ++q)                                           \
                            for (int l = 0; l < CB; ++l) acc[q][l] = 0;                        \
                        for (ptrdiff_t oh = 0; oh < OH; ++oh) {                                \
                            const T* xr = xpad + (c * Hp + oh * sh + i * dh) * Wp + j0 * dw;   \
                            const T* gr = gyt + oh * OW * ld + cb * CB;                        \
                            for (ptrdiff_t ow = 0; ow < OW; ++ow) {                            \
                                const T* gv = gr + ow * ld;                                    \
                                const T* xo = xr + ow * sw;                                    \
                                FC_PRAGMA(GCC unroll 16)                                       \
                                for (int q = 0; q < JB; ++q) {                                 \
                                    const T xv = xo[q * dw];                                   \
                                    FC_PRAGMA(omp simd)                                        \
                                    for (int l = 0; l < CB; ++l) acc[q][l] += xv * gv[l];      \
                                }                                                              \
                            }                                                                  \
                        }                                                                      \
                        const ptrdiff_t nj = (kw - j0) < JB ? (kw - j0) : JB;                  \
                        T* dst = gw + (((cb * C + c) * kh + i) * kw + j0) * CB;                \
                        for (ptrdiff_t q = 0; q < nj; ++q)                                     \
                            for (int l = 0; l < CB; ++l) dst[q * CB + l] += acc[q][l];         \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

/* JB = 5 and 3 fit the common 5x5 and 3x3 kernels exactly; JB = 4 serves every other kw. */
FC_DEFINE_WGRAD_BLOCKED(fc_wgrad_blocked_f16_j5, float, 16, 5)
FC_DEFINE_WGRAD_BLOCKED(fc_wgrad_blocked_f16_j3, float, 16, 3)
FC_DEFINE_WGRAD_BLOCKED(fc_wgrad_blocked_f16_j4, float, 16, 4)
FC_DEFINE_WGRAD_BLOCKED(fc_wgrad_blocked_f8_j5, float, 8, 5)
FC_DEFINE_WGRAD_BLOCKED(fc_wgrad_blocked_f8_j3, float, 8, 3)
FC_DEFINE_WGRAD_BLOCKED(fc_wgrad_blocked_f8_j4, float, 8, 4)
FC_DEFINE_WGRAD_BLOCKED(fc_wgrad_blocked_d8_j5, double, 8, 5)
FC_DEFINE_WGRAD_BLOCKED(fc_wgrad_blocked_d8_j3, double, 8, 3)
FC_DEFINE_WGRAD_BLOCKED(fc_wgrad_blocked_d8_j4, double, 8, 4)
FC_DEFINE_WGRAD_BLOCKED(fc_wgrad_blocked_d4_j5, double, 4, 5)
FC_DEFINE_WGRAD_BLOCKED(fc_wgrad_blocked_d4_j3, double, 4, 3)
FC_DEFINE_WGRAD_BLOCKED(fc_wgrad_blocked_d4_j4, double, 4, 4)

/* Dispatch on (CB, kw); the Cython side calls these two. */
static inline int fc_wgrad_jb(ptrdiff_t kw) { return kw == 5 ? 5 : (kw == 3 ? 3 : 4); }

#define FC_WGRAD_DISPATCH(FN, T, CBA, CBB, PREFIX_A, PREFIX_B)                                 \
    static inline void FN(ptrdiff_t cbsize, const T* xpad, ptrdiff_t C, ptrdiff_t Hp,          \
                          ptrdiff_t Wp, const T* gyt, ptrdiff_t n_blocks, T* gw, ptrdiff_t OH, \
                          ptrdiff_t OW, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh,              \
                          ptrdiff_t sw, ptrdiff_t dh, ptrdiff_t dw)                            \
    {                                                                                          \
        int jb = fc_wgrad_jb(kw);                                                              \
        if (cbsize == CBA) {                                                                   \
            if (jb == 5) PREFIX_A##_j5(xpad, C, Hp, Wp, gyt, n_blocks, gw, OH, OW, kh, kw, sh, sw, dh, dw); \
            else if (jb == 3) PREFIX_A##_j3(xpad, C, Hp, Wp, gyt, n_blocks, gw, OH, OW, kh, kw, sh, sw, dh, dw); \
            else PREFIX_A##_j4(xpad, C, Hp, Wp, gyt, n_blocks, gw, OH, OW, kh, kw, sh, sw, dh, dw); \
        } else {                                                                               \
            if (jb == 5) PREFIX_B##_j5(xpad, C, Hp, Wp, gyt, n_blocks, gw, OH, OW, kh, kw, sh, sw, dh, dw); \
            else if (jb == 3) PREFIX_B##_j3(xpad, C, Hp, Wp, gyt, n_blocks, gw, OH, OW, kh, kw, sh, sw, dh, dw); \
            else PREFIX_B##_j4(xpad, C, Hp, Wp, gyt, n_blocks, gw, OH, OW, kh, kw, sh, sw, dh, dw); \
        }                                                                                      \
    }

FC_WGRAD_DISPATCH(fc_wgrad_blocked_f, float, 16, 8, fc_wgrad_blocked_f16, fc_wgrad_blocked_f8)
FC_WGRAD_DISPATCH(fc_wgrad_blocked_d, double, 8, 4, fc_wgrad_blocked_d8, fc_wgrad_blocked_d4)

/* Largest JB: xpad scratch needs (FC_WGRAD_MAX_JB - 1) * dw zeroed elements of slack. */
#define FC_WGRAD_MAX_JB 5

#endif
