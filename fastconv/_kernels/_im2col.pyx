"""im2col / col2im and the im2col + GEMM convolution (forward and backward).

Layout: one image's column matrix for output rows [oh0, oh1) is row-major
``col[(c*kh + i)*kw + j, (oh - oh0)*OW + ow] = x_pad[c, oh*sh + i*dh, ow*sw + j*dw]``, so a
group's slice is a contiguous (K_g, P_chunk) block and the forward pass is one GEMM
``y_g (C_out/g, P) = w_g (C_out/g, K_g) @ col_g``.

Every kernel here trusts its caller (``fastconv.functional``): shapes, strides and scratch
sizes are validated there. Work is split over images (and output-row chunks in the forward
pass); BLAS must be pinned to one thread by the caller because GEMM runs inside prange.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.string cimport memcpy, memset

from ._common cimport gemm_rm, valid_lo, valid_hi


cdef void im2col_rows(const floating* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                      Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                      Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                      Py_ssize_t OW, Py_ssize_t oh0, Py_ssize_t oh1,
                      floating* col) noexcept nogil:
    """Fill col (C*kh*kw, (oh1-oh0)*OW) from one image x (C, H, W) with implicit zero padding."""
    cdef Py_ssize_t pc = (oh1 - oh0) * OW
    cdef Py_ssize_t c, i, j, oh, ow, ih, lo, hi, off_w
    cdef floating* dst
    cdef const floating* src
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                off_w = j * dw - pw
                lo = valid_lo(off_w, sw, OW)
                hi = valid_hi(off_w, sw, W, OW, lo)
                dst = col + ((c * kh + i) * kw + j) * pc
                for oh in range(oh0, oh1):
                    ih = oh * sh + i * dh - ph
                    if ih < 0 or ih >= H:
                        memset(dst, 0, OW * sizeof(floating))
                    else:
                        src = x + (c * H + ih) * W + (off_w + lo * sw)
                        if lo > 0:
                            memset(dst, 0, lo * sizeof(floating))
                        if sw == 1:
                            memcpy(dst + lo, src, (hi - lo) * sizeof(floating))
                        else:
                            for ow in range(hi - lo):
                                dst[lo + ow] = src[ow * sw]
                        if hi < OW:
                            memset(dst + hi, 0, (OW - hi) * sizeof(floating))
                    dst += OW


cdef void col2im_rows(const floating* col, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                      Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                      Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                      Py_ssize_t OW, Py_ssize_t oh0, Py_ssize_t oh1,
                      floating* x) noexcept nogil:
    """Adjoint of im2col_rows: x (C, H, W) += scatter of col; padded entries are dropped."""
    cdef Py_ssize_t pc = (oh1 - oh0) * OW
    cdef Py_ssize_t c, i, j, oh, ow, ih, lo, hi, off_w
    cdef const floating* src
    cdef floating* dst
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                off_w = j * dw - pw
                lo = valid_lo(off_w, sw, OW)
                hi = valid_hi(off_w, sw, W, OW, lo)
                src = col + ((c * kh + i) * kw + j) * pc
                for oh in range(oh0, oh1):
                    ih = oh * sh + i * dh - ph
                    if 0 <= ih < H:
                        dst = x + (c * H + ih) * W + (off_w + lo * sw)
                        if sw == 1:
                            for ow in range(hi - lo):
                                dst[ow] += src[lo + ow]
                        else:
                            for ow in range(hi - lo):
                                dst[ow * sw] += src[lo + ow]
                    src += OW


def im2col(const floating[:, :, :, ::1] x, floating[:, :, ::1] col,
           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
           Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
           Py_ssize_t OH, Py_ssize_t OW, int n_threads):
    """col (N, C*kh*kw, OH*OW) <- columns of x (N, C, H, W)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3], n
    with nogil:
        for n in prange(N, schedule="static", num_threads=n_threads):
            im2col_rows(&x[n, 0, 0, 0], C, H, W, kh, kw, sh, sw, ph, pw, dh, dw,
                        OW, 0, OH, &col[n, 0, 0])


def col2im(const floating[:, :, ::1] col, floating[:, :, :, ::1] x,
           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
           Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
           Py_ssize_t OH, Py_ssize_t OW, int n_threads):
    """x (N, C, H, W) += col2im(col (N, C*kh*kw, OH*OW)); x must be zeroed for a plain col2im."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3], n
    with nogil:
        for n in prange(N, schedule="static", num_threads=n_threads):
            col2im_rows(&col[n, 0, 0], C, H, W, kh, kw, sh, sw, ph, pw, dh, dw,
                        OW, 0, OH, &x[n, 0, 0, 0])


def conv2d_im2col_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] weight,
                          const floating[::1] bias, floating[:, :, :, ::1] out,
                          floating[:, ::1] scratch, Py_ssize_t rows_per_chunk,
                          Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                          Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups, int n_threads):
    """out (N, C_out, OH, OW) = conv(x (N, C_in, H, W), weight (C_out, C_in/g, kh, kw)) + bias.

    scratch: (n_threads, C_in*kh*kw*rows_per_chunk*OW), one column buffer per thread, so the
    extra memory is bounded by the chunk size whatever the batch.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t C_out = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t OH = out.shape[2], OW = out.shape[3], P = OH * OW
    cdef Py_ssize_t cog = C_out // groups, kg = weight.shape[1] * kh * kw
    cdef Py_ssize_t n_chunks = (OH + rows_per_chunk - 1) // rows_per_chunk
    cdef Py_ssize_t t, n, ch, oh0, oh1, pc, co, p, g
    cdef floating* col
    cdef floating* y
    cdef floating bval
    with nogil, parallel(num_threads=n_threads):
        col = &scratch[threadid(), 0]
        for t in prange(N * n_chunks, schedule="static"):
            n = t // n_chunks
            ch = t % n_chunks
            oh0 = ch * rows_per_chunk
            oh1 = min(oh0 + rows_per_chunk, OH)
            pc = (oh1 - oh0) * OW
            for co in range(C_out):
                y = &out[n, co, 0, 0] + oh0 * OW
                bval = bias[co]
                for p in range(pc):
                    y[p] = bval
            im2col_rows(&x[n, 0, 0, 0], C, H, W, kh, kw, sh, sw, ph, pw, dh, dw,
                        OW, oh0, oh1, col)
            for g in range(groups):
                gemm_rm(c'N', c'N', <int>cog, <int>pc, <int>kg, 1.0,
                        &weight[g * cog, 0, 0, 0], <int>kg, col + g * kg * pc, <int>pc,
                        1.0, &out[n, g * cog, 0, 0] + oh0 * OW, <int>P)


def conv2d_im2col_backward(const floating[:, :, :, ::1] grad_output,
                           const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] weight,
                           floating[:, :, :, ::1] grad_input, floating[:, ::1] grad_weight_partial,
                           floating[:, ::1] col_scratch, floating[:, ::1] dcol_scratch,
                           Py_ssize_t rows_per_chunk,
                           Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                           Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups,
                           bint need_input, bint need_weight, int n_threads):
    """Gradients of the im2col convolution, parallel over images.

    grad_input (N, C_in, H, W) must be zeroed (col2im accumulates into it).
    grad_weight_partial (n_threads, C_out*K_g) must be zeroed; thread t accumulates the
    images statically assigned to it, and the caller sums the rows in thread order so the
    result is identical from run to run.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t C_out = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t OH = grad_output.shape[2], OW = grad_output.shape[3], P = OH * OW
    cdef Py_ssize_t cog = C_out // groups, kg = weight.shape[1] * kh * kw
    cdef Py_ssize_t n_chunks = (OH + rows_per_chunk - 1) // rows_per_chunk
    cdef Py_ssize_t n, ch, oh0, oh1, pc, g
    cdef int tid
    cdef floating* col
    cdef floating* dcol
    cdef floating* gw
    cdef const floating* gy
    with nogil, parallel(num_threads=n_threads):
        tid = threadid()
        col = &col_scratch[tid, 0]
        dcol = &dcol_scratch[tid, 0]
        gw = &grad_weight_partial[tid, 0]
        for n in prange(N, schedule="static"):
            for ch in range(n_chunks):
                oh0 = ch * rows_per_chunk
                oh1 = min(oh0 + rows_per_chunk, OH)
                pc = (oh1 - oh0) * OW
                if need_weight:
                    im2col_rows(&x[n, 0, 0, 0], C, H, W, kh, kw, sh, sw, ph, pw, dh, dw,
                                OW, oh0, oh1, col)
                    for g in range(groups):
                        gy = &grad_output[n, g * cog, 0, 0] + oh0 * OW
                        gemm_rm(c'N', c'T', <int>cog, <int>kg, <int>pc, 1.0,
                                gy, <int>P, col + g * kg * pc, <int>pc,
                                1.0, gw + g * cog * kg, <int>kg)
                if need_input:
                    for g in range(groups):
                        gy = &grad_output[n, g * cog, 0, 0] + oh0 * OW
                        gemm_rm(c'T', c'N', <int>kg, <int>pc, <int>cog, 1.0,
                                &weight[g * cog, 0, 0, 0], <int>kg, gy, <int>P,
                                0.0, dcol + g * kg * pc, <int>pc)
                    col2im_rows(dcol, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw,
                                OW, oh0, oh1, &grad_input[n, 0, 0, 0])
