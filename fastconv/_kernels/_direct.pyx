"""Direct (no column buffer) convolution: forward, grad_input and grad_weight.

Each kernel owns a disjoint slice of its output, so no thread ever writes where another
does and no reduction crosses threads; results are bitwise identical for any thread count.
Inner loops run along an output row (contiguous when the stride is 1) over the range
where the input index is inside the image, computed once, so padding costs no branches.
Callers (``fastconv.functional``) validate everything; these trust their arguments.
"""
from cython cimport floating
from cython.parallel cimport prange

from ._common cimport valid_lo, valid_hi

cdef extern from "_simd.h":
    float fc_dot_f(const float* a, const float* b, Py_ssize_t n, Py_ssize_t b_stride) noexcept nogil
    double fc_dot_d(const double* a, const double* b, Py_ssize_t n, Py_ssize_t b_stride) noexcept nogil


cdef inline floating dot(const floating* a, const floating* b, Py_ssize_t n,
                         Py_ssize_t b_stride) noexcept nogil:
    if floating is float:
        return fc_dot_f(a, b, n, b_stride)
    else:
        return fc_dot_d(a, b, n, b_stride)


def conv2d_direct_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] weight,
                          const floating[::1] bias, floating[:, :, :, ::1] out,
                          Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                          Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups, int n_threads):
    """out (N, C_out, OH, OW) = conv(x (N, C_in, H, W), weight (C_out, C_in/g, kh, kw)) + bias.

    Parallel over (image, output channel) planes.
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t C_out = weight.shape[0], cig = weight.shape[1]
    cdef Py_ssize_t kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t cog = C_out // groups
    cdef Py_ssize_t t, n, co, ci, c, i, j, oh, ow, ih, lo, hi, oh_lo, oh_hi, off_w
    cdef floating wv, bval
    cdef floating* y
    cdef floating* yrow
    cdef const floating* xrow
    with nogil:
        for t in prange(N * C_out, schedule="static", num_threads=n_threads):
            n = t // C_out
            co = t % C_out
            y = &out[n, co, 0, 0]
            bval = bias[co]
            for oh in range(OH * OW):
                y[oh] = bval
            for c in range(cig):
                ci = (co // cog) * cig + c
                for i in range(kh):
                    oh_lo = valid_lo(i * dh - ph, sh, OH)
                    oh_hi = valid_hi(i * dh - ph, sh, H, OH, oh_lo)
                    for j in range(kw):
                        wv = weight[co, c, i, j]
                        off_w = j * dw - pw
                        lo = valid_lo(off_w, sw, OW)
                        hi = valid_hi(off_w, sw, W, OW, lo)
                        for oh in range(oh_lo, oh_hi):
                            ih = oh * sh + i * dh - ph
                            yrow = y + oh * OW + lo
                            xrow = &x[n, ci, ih, 0] + (off_w + lo * sw)
                            if sw == 1:
                                for ow in range(hi - lo):
                                    yrow[ow] += wv * xrow[ow]
                            else:
                                for ow in range(hi - lo):
                                    yrow[ow] += wv * xrow[ow * sw]


def conv2d_direct_grad_input(const floating[:, :, :, ::1] grad_output,
                             const floating[:, :, :, ::1] weight,
                             floating[:, :, :, ::1] grad_input,
                             Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                             Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups, int n_threads):
    """grad_input (N, C_in, H, W) = conv_transpose(grad_output, weight); must be zeroed.

    Parallel over (image, input channel) planes: each plane gathers from its group's
    output channels, so writes never collide.
    """
    cdef Py_ssize_t N = grad_input.shape[0], C_in = grad_input.shape[1]
    cdef Py_ssize_t H = grad_input.shape[2], W = grad_input.shape[3]
    cdef Py_ssize_t C_out = weight.shape[0], cig = weight.shape[1]
    cdef Py_ssize_t kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t OH = grad_output.shape[2], OW = grad_output.shape[3]
    cdef Py_ssize_t cog = C_out // groups
    cdef Py_ssize_t t, n, ci, c, co, k, i, j, oh, ow, ih, lo, hi, oh_lo, oh_hi, off_w
    cdef floating wv
    cdef floating* dxrow
    cdef const floating* gyrow
    with nogil:
        for t in prange(N * C_in, schedule="static", num_threads=n_threads):
            n = t // C_in
            ci = t % C_in
            c = ci % cig
            for k in range(cog):
                co = (ci // cig) * cog + k
                for i in range(kh):
                    oh_lo = valid_lo(i * dh - ph, sh, OH)
                    oh_hi = valid_hi(i * dh - ph, sh, H, OH, oh_lo)
                    for j in range(kw):
                        wv = weight[co, c, i, j]
                        off_w = j * dw - pw
                        lo = valid_lo(off_w, sw, OW)
                        hi = valid_hi(off_w, sw, W, OW, lo)
                        for oh in range(oh_lo, oh_hi):
                            ih = oh * sh + i * dh - ph
                            dxrow = &grad_input[n, ci, ih, 0] + (off_w + lo * sw)
                            gyrow = &grad_output[n, co, oh, 0] + lo
                            if sw == 1:
                                for ow in range(hi - lo):
                                    dxrow[ow] += wv * gyrow[ow]
                            else:
                                for ow in range(hi - lo):
                                    dxrow[ow * sw] += wv * gyrow[ow]


def conv2d_direct_grad_weight(const floating[:, :, :, ::1] grad_output,
                              const floating[:, :, :, ::1] x,
                              floating[:, :, :, ::1] grad_weight,
                              Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                              Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups, int n_threads):
    """grad_weight (C_out, C_in/g, kh, kw) = correlation of x with grad_output over the batch.

    Parallel over (output channel, input channel) pairs; each pair sums over the batch in
    image order, which is what makes the result independent of the thread count.
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t C_out = grad_weight.shape[0], cig = grad_weight.shape[1]
    cdef Py_ssize_t kh = grad_weight.shape[2], kw = grad_weight.shape[3]
    cdef Py_ssize_t OH = grad_output.shape[2], OW = grad_output.shape[3]
    cdef Py_ssize_t cog = C_out // groups
    cdef Py_ssize_t t, n, co, c, ci, i, j, oh, ih, lo, hi, oh_lo, oh_hi, off_w
    cdef floating acc
    with nogil:
        for t in prange(C_out * cig, schedule="static", num_threads=n_threads):
            co = t // cig
            c = t % cig
            ci = (co // cog) * cig + c
            for i in range(kh):
                oh_lo = valid_lo(i * dh - ph, sh, OH)
                oh_hi = valid_hi(i * dh - ph, sh, H, OH, oh_lo)
                for j in range(kw):
                    off_w = j * dw - pw
                    lo = valid_lo(off_w, sw, OW)
                    hi = valid_hi(off_w, sw, W, OW, lo)
                    acc = 0
                    if hi > lo:
                        for n in range(N):
                            for oh in range(oh_lo, oh_hi):
                                ih = oh * sh + i * dh - ph
                                acc = acc + dot(&grad_output[n, co, oh, lo],
                                                &x[n, ci, ih, 0] + (off_w + lo * sw),
                                                hi - lo, sw)
                    grad_weight[co, c, i, j] = acc
