/* Padding of one plane through per-axis source maps, forward and adjoint (see _pad.pyx).
 *
 * rmap[oh] / cmap[ow]: the input row / column an output row / column copies, -1 for the
 * constant. The interior of an axis is the run of outputs [o0, o0 + n) that copies inputs
 * [s0, s0 + n) in order. Only the parameters are restrict: row pointers are based on
 * them, so the compiler knows input and output never alias while rows of one array may.
 *
 * Rows are short (28 floats for MNIST-sized planes), so the per-row cost is what counts:
 * a memcpy call per row cost about as much as the copy, and a vectorised loop's
 * epilogue (8 + 4 scalar moves after a 16-wide one) nearly as much again. With AVX-512
 * a row is whole masked vectors (two for 28 floats); elsewhere an inline loop.
 */
#ifndef FASTCONV_PAD_PLANES_H
#define FASTCONV_PAD_PLANES_H
#include <stddef.h>
#include "_multiversion.h"

/* Keep GCC from turning the portable row loops back into memcpy calls. */
#if defined(__GNUC__) && !defined(__clang__)
#define FC_INLINE_COPIES __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define FC_INLINE_COPIES
#endif

#define FC_PORTABLE_COPY(T, d, s, n)                                                           \
    do {                                                                                       \
        for (ptrdiff_t j_ = 0; j_ < (n); ++j_)                                                 \
            (d)[j_] = (s)[j_];                                                                 \
    } while (0)
#define FC_PORTABLE_ADD(T, d, s, n)                                                            \
    do {                                                                                       \
        for (ptrdiff_t j_ = 0; j_ < (n); ++j_)                                                 \
            (d)[j_] += (s)[j_];                                                                \
    } while (0)

/* fc_pad_plane_NAME: out (OH, OW) <- x (., W) padded through the maps.
 * fc_pad_plane_backward_NAME: gi (H, W) <- adjoint applied to go (OH, OW); gi may be
 * uninitialised. Input rows copied by interior output rows get that row's interior and
 * zeros around it, then its border columns; then the border output rows are added, top
 * to bottom: a fixed order. */
#define FC_DEFINE_PAD_PLANES(NAME, T, ATTR, COPY, ADD, BLOCK)                                         \
    ATTR static void fc_pad_plane_##NAME(                                                      \
        const T* restrict x, ptrdiff_t W, T* restrict out, ptrdiff_t OH, ptrdiff_t OW,         \
        const ptrdiff_t* restrict rmap, const ptrdiff_t* restrict cmap, ptrdiff_t co0,         \
        ptrdiff_t cs0, ptrdiff_t cn, T value)                                                  \
    {                                                                                          \
        const ptrdiff_t ce = co0 + cn; /* end of the column interior */                        \
        for (ptrdiff_t oh = 0; oh < OH; ++oh) {                                                \
            T* dst = out + oh * OW;                                                            \
            const ptrdiff_t r = rmap[oh];                                                      \
            if (r < 0) {                                                                       \
                for (ptrdiff_t o = 0; o < OW; ++o)                                             \
                    dst[o] = value;                                                            \
                continue;                                                                      \
            }                                                                                  \
            const T* src = x + r * W;                                                          \
            for (ptrdiff_t o = 0; o < co0; ++o) {                                              \
                const ptrdiff_t c = cmap[o];                                                   \
                dst[o] = c < 0 ? value : src[c];                                               \
            }                                                                                  \
            COPY(T, dst + co0, src + cs0, cn);                                                 \
            for (ptrdiff_t o = ce; o < OW; ++o) {                                              \
                const ptrdiff_t c = cmap[o];                                                   \
                dst[o] = c < 0 ? value : src[c];                                               \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    ATTR static void fc_pad_plane_backward_##NAME(                                             \
        const T* restrict go, ptrdiff_t OH, ptrdiff_t OW, T* restrict gi, ptrdiff_t H,         \
        ptrdiff_t W, const ptrdiff_t* restrict rmap, ptrdiff_t ro0, ptrdiff_t rs0,             \
        ptrdiff_t rn, const ptrdiff_t* restrict cmap, ptrdiff_t co0, ptrdiff_t cs0,            \
        ptrdiff_t cn, int copies)                                                              \
    {                                                                                          \
        const ptrdiff_t ce = co0 + cn, se = cs0 + cn;                                          \
        /* constant mode (!copies: no border output copies an input) with whole input rows   \
         * from the interior: those rows are one contiguous block of gi, maybe at once */     \
        const int block = !copies && cs0 == 0 && cn == W                                       \
                          && BLOCK(gi + rs0 * W, go + ro0 * OW + co0, W, OW, rn);              \
        for (ptrdiff_t r = 0; r < H; ++r) {                                                    \
            T* dst = gi + r * W;                                                               \
            if (r < rs0 || r >= rs0 + rn) {                                                    \
                for (ptrdiff_t j = 0; j < W; ++j)                                              \
                    dst[j] = 0;                                                                \
                continue;                                                                      \
            }                                                                                  \
            if (block) { /* done: on past the interior rows */                                 \
                r = rs0 + rn - 1;                                                              \
                continue;                                                                      \
            }                                                                                  \
            const T* src = go + (r - rs0 + ro0) * OW;                                          \
            for (ptrdiff_t j = 0; j < cs0; ++j)                                                \
                dst[j] = 0;                                                                    \
            COPY(T, dst + cs0, src + co0, cn);                                                 \
            for (ptrdiff_t j = se; j < W; ++j)                                                 \
                dst[j] = 0;                                                                    \
            if (!copies)                                                                       \
                continue;                                                                      \
            for (ptrdiff_t o = 0; o < co0; ++o)                                                \
                if (cmap[o] >= 0)                                                              \
                    dst[cmap[o]] += src[o];                                                    \
            for (ptrdiff_t o = ce; o < OW; ++o)                                                \
                if (cmap[o] >= 0)                                                              \
                    dst[cmap[o]] += src[o];                                                    \
        }                                                                                      \
        for (ptrdiff_t oh = 0; oh < OH && copies; ++oh) {                                      \
            const ptrdiff_t r = rmap[oh];                                                      \
            if ((oh >= ro0 && oh < ro0 + rn) || r < 0)                                         \
                continue;                                                                      \
            T* dst = gi + r * W;                                                               \
            const T* src = go + oh * OW;                                                       \
            ADD(T, dst + cs0, src + co0, cn);                                                  \
            for (ptrdiff_t o = 0; o < co0; ++o)                                                \
                if (cmap[o] >= 0)                                                              \
                    dst[cmap[o]] += src[o];                                                    \
            for (ptrdiff_t o = ce; o < OW; ++o)                                                \
                if (cmap[o] >= 0)                                                              \
                    dst[cmap[o]] += src[o];                                                    \
        }                                                                                      \
    }

#define FC_NO_BLOCK(d, s, W, OW, rows) 0
FC_DEFINE_PAD_PLANES(portable_f, float, FC_MULTIVERSION FC_INLINE_COPIES, FC_PORTABLE_COPY,
                     FC_PORTABLE_ADD, FC_NO_BLOCK)
FC_DEFINE_PAD_PLANES(portable_d, double, FC_MULTIVERSION FC_INLINE_COPIES, FC_PORTABLE_COPY,
                     FC_PORTABLE_ADD, FC_NO_BLOCK)

#if FC_HAVE_AVX512
/* Whole masked vectors: 16 floats or 8 doubles a step, the last one masked. */
#define FC_AVX512_ROWS(T, d, s, n, LANES, MASK_T, LOAD, STORE, OP)                             \
    do {                                                                                       \
        for (ptrdiff_t j_ = 0; j_ < (n); j_ += LANES) {                                        \
            const ptrdiff_t left_ = (n) - j_;                                                  \
            const MASK_T m_ = (MASK_T)(left_ >= LANES ? (MASK_T)~0u : (MASK_T)((1u << left_) - 1u)); \
            STORE((d) + j_, m_, OP(LOAD(m_, (s) + j_), (d) + j_, m_));                        \
        }                                                                                      \
    } while (0)
/* A copy of n >= LANES elements: whole vectors, then one more ending at n that overlaps
 * the previous (rewriting a few elements with the same values): no masked store. */
#define FC_AVX512_COPY_ROWS(d, s, n, LANES, MASK_T, LOADU, STOREU, MLOAD, MSTORE)              \
    do {                                                                                       \
        if ((n) >= LANES) {                                                                    \
            ptrdiff_t j_ = 0;                                                                  \
            for (; j_ + LANES <= (n); j_ += LANES)                                             \
                STOREU((d) + j_, LOADU((s) + j_));                                             \
            if (j_ < (n))                                                                      \
                STOREU((d) + (n) - LANES, LOADU((s) + (n) - LANES));                           \
        } else if ((n) > 0) {                                                                  \
            const MASK_T m_ = (MASK_T)((1u << (n)) - 1u);                                      \
            MSTORE((d), m_, MLOAD(m_, (s)));                                                   \
        }                                                                                      \
    } while (0)
#define FC_PLUS_PS(v, d, m) _mm512_add_ps((v), _mm512_maskz_loadu_ps((m), (d)))
#define FC_PLUS_PD(v, d, m) _mm512_add_pd((v), _mm512_maskz_loadu_pd((m), (d)))
#define FC_AVX512_COPY_F(T, d, s, n)                                                           \
    FC_AVX512_COPY_ROWS(d, s, n, 16, __mmask16, _mm512_loadu_ps, _mm512_storeu_ps,             \
                        _mm512_maskz_loadu_ps, _mm512_mask_storeu_ps)
#define FC_AVX512_ADD_F(T, d, s, n)                                                            \
    FC_AVX512_ROWS(T, d, s, n, 16, __mmask16, _mm512_maskz_loadu_ps, _mm512_mask_storeu_ps, FC_PLUS_PS)
#define FC_AVX512_COPY_D(T, d, s, n)                                                           \
    FC_AVX512_COPY_ROWS(d, s, n, 8, __mmask8, _mm512_loadu_pd, _mm512_storeu_pd,               \
                        _mm512_maskz_loadu_pd, _mm512_mask_storeu_pd)
#define FC_AVX512_ADD_D(T, d, s, n)                                                            \
    FC_AVX512_ROWS(T, d, s, n, 8, __mmask8, _mm512_maskz_loadu_pd, _mm512_mask_storeu_pd, FC_PLUS_PD)

/* d[k] = s[(k / W) * OW + k % W] for k < rows * W (W >= LANES): the gradient's interior
 * rows into a contiguous block of gi by whole vectors, aligned on the destination (a
 * vector that spans two rows is two masked loads); the row-by-row copy stored each
 * 28-float row as two vectors, most of them split across cache lines. Returns 0 (did
 * nothing) when the rows are narrower than a vector. */
#define FC_DEFINE_PAD_BLOCK(SUFFIX, T, LANES, MASK_T, VEC, LOADU, LOAD_Z, LOAD_M, STORE,        \
                            STORE_M)                                                           \
    /* len < LANES elements from row r, column c on (the next row too if they run out) */     \
    FC_TARGET_AVX512 static inline void fc_pad_block_part_##SUFFIX(                            \
        T* d, const T* s, ptrdiff_t W, ptrdiff_t OW, ptrdiff_t len, ptrdiff_t* r, ptrdiff_t* c) \
    {                                                                                          \
        const ptrdiff_t left = W - *c;                                                         \
        const MASK_T m = (MASK_T)((1u << len) - 1u);                                           \
        VEC v;                                                                                 \
        if (left >= len) {                                                                     \
            v = LOAD_Z(m, s + *r * OW + *c);                                                   \
            *c += len;                                                                         \
        } else {                                                                               \
            const MASK_T lo = (MASK_T)((1u << left) - 1u);                                     \
            v = LOAD_Z(lo, s + *r * OW + *c);                                                  \
            v = LOAD_M(v, (MASK_T)(m & ~lo), s + (*r + 1) * OW - left);                        \
            ++*r;                                                                              \
            *c = len - left;                                                                   \
        }                                                                                      \
        if (*c == W) {                                                                         \
            *c = 0;                                                                            \
            ++*r;                                                                              \
        }                                                                                      \
        STORE_M(d, m, v);                                                                      \
    }                                                                                          \
    FC_TARGET_AVX512 static inline int fc_pad_block_##SUFFIX(T* d, const T* s, ptrdiff_t W,    \
                                                             ptrdiff_t OW, ptrdiff_t rows)     \
    {                                                                                          \
        if (W < LANES)                                                                         \
            return 0;                                                                          \
        const ptrdiff_t n = rows * W;                                                          \
        ptrdiff_t k = (ptrdiff_t)((64 - ((size_t)d & 63)) & 63) / (ptrdiff_t)sizeof(T);        \
        ptrdiff_t r = 0, c = 0; /* the next element: row r, column c of the block */          \
        if (k > n)                                                                             \
            k = n;                                                                             \
        if (k > 0) /* up to the first aligned vector of d */                                   \
            fc_pad_block_part_##SUFFIX(d, s, W, OW, k, &r, &c);                                \
        for (; k + LANES <= n; k += LANES) {                                                   \
            const ptrdiff_t left = W - c;                                                      \
            VEC v;                                                                             \
            if (left >= LANES) {                                                               \
                v = LOADU(s + r * OW + c);                                                     \
                c += LANES;                                                                    \
                if (c == W) {                                                                  \
                    c = 0;                                                                     \
                    ++r;                                                                       \
                }                                                                              \
            } else {                                                                           \
                const MASK_T lo = (MASK_T)((1u << left) - 1u);                                 \
                v = LOAD_Z(lo, s + r * OW + c);                                                \
                v = LOAD_M(v, (MASK_T)~lo, s + (r + 1) * OW - left);                           \
                ++r;                                                                           \
                c = LANES - left;                                                              \
            }                                                                                  \
            STORE(d + k, v);                                                                   \
        }                                                                                      \
        if (k < n)                                                                             \
            fc_pad_block_part_##SUFFIX(d + k, s, W, OW, n - k, &r, &c);                        \
        return 1;                                                                              \
    }

FC_DEFINE_PAD_BLOCK(f, float, 16, __mmask16, __m512, _mm512_loadu_ps, _mm512_maskz_loadu_ps,
                    _mm512_mask_loadu_ps, _mm512_storeu_ps, _mm512_mask_storeu_ps)
FC_DEFINE_PAD_BLOCK(d, double, 8, __mmask8, __m512d, _mm512_loadu_pd, _mm512_maskz_loadu_pd,
                    _mm512_mask_loadu_pd, _mm512_storeu_pd, _mm512_mask_storeu_pd)

FC_DEFINE_PAD_PLANES(avx512_f, float, FC_TARGET_AVX512 FC_INLINE_COPIES, FC_AVX512_COPY_F,
                     FC_AVX512_ADD_F, fc_pad_block_f)
FC_DEFINE_PAD_PLANES(avx512_d, double, FC_TARGET_AVX512 FC_INLINE_COPIES, FC_AVX512_COPY_D,
                     FC_AVX512_ADD_D, fc_pad_block_d)
#endif

/* The entry points _pad.pyx calls: the AVX-512 loops when use_avx512 (the caller asked
 * fc_have_avx512() once), else the portable ones. */
#if FC_HAVE_AVX512
#define FC_PAD_PICK(NAME, SUFFIX, ARGS)                                                        \
    if (use_avx512) {                                                                          \
        fc_pad_plane_##NAME##avx512_##SUFFIX ARGS;                                             \
        return;                                                                                \
    }                                                                                          \
    fc_pad_plane_##NAME##portable_##SUFFIX ARGS;
#else
#define FC_PAD_PICK(NAME, SUFFIX, ARGS)                                                        \
    (void)use_avx512;                                                                          \
    fc_pad_plane_##NAME##portable_##SUFFIX ARGS;
#endif

#define FC_DEFINE_PAD_ENTRIES(SUFFIX, T)                                                       \
    static void fc_pad_plane_##SUFFIX(const T* x, ptrdiff_t W, T* out, ptrdiff_t OH,           \
                                      ptrdiff_t OW, const ptrdiff_t* rmap,                     \
                                      const ptrdiff_t* cmap, ptrdiff_t co0, ptrdiff_t cs0,     \
                                      ptrdiff_t cn, T value, int use_avx512)                   \
    {                                                                                          \
        FC_PAD_PICK(, SUFFIX, (x, W, out, OH, OW, rmap, cmap, co0, cs0, cn, value))            \
    }                                                                                          \
    static void fc_pad_plane_backward_##SUFFIX(const T* go, ptrdiff_t OH, ptrdiff_t OW, T* gi, \
                                               ptrdiff_t H, ptrdiff_t W, const ptrdiff_t* rmap, \
                                               ptrdiff_t ro0, ptrdiff_t rs0, ptrdiff_t rn,     \
                                               const ptrdiff_t* cmap, ptrdiff_t co0,           \
                                               ptrdiff_t cs0, ptrdiff_t cn, int copies,        \
                                               int use_avx512)                                 \
    {                                                                                          \
        FC_PAD_PICK(backward_, SUFFIX,                                                         \
                    (go, OH, OW, gi, H, W, rmap, ro0, rs0, rn, cmap, co0, cs0, cn, copies))    \
    }

FC_DEFINE_PAD_ENTRIES(f, float)
FC_DEFINE_PAD_ENTRIES(d, double)

#endif
