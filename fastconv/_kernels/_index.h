/* Index arithmetic shared by the Cython kernels (through _common.pxd) and the C helpers.
 *
 * Output positions o in [fc_valid_lo, fc_valid_hi) have input index o*stride + offset in
 * [0, size). Computing the range once lets inner loops run without bounds tests (padding
 * is implicit outside it). These return values rather than writing through pointers on
 * purpose: Cython makes a prange variable thread-private only if the loop body assigns it.
 */
#ifndef FASTCONV_INDEX_H
#define FASTCONV_INDEX_H
#include <stddef.h>

static inline ptrdiff_t fc_valid_lo(ptrdiff_t offset, ptrdiff_t stride, ptrdiff_t out_size)
{
    ptrdiff_t a = offset < 0 ? (-offset + stride - 1) / stride : 0;
    return a < out_size ? a : out_size;
}

static inline ptrdiff_t fc_valid_hi(ptrdiff_t offset, ptrdiff_t stride, ptrdiff_t size,
                                    ptrdiff_t out_size, ptrdiff_t lo)
{
    ptrdiff_t b = size - 1 - offset >= 0 ? (size - 1 - offset) / stride + 1 : 0;
    if (b > out_size) b = out_size;
    return b > lo ? b : lo;
}

#endif
