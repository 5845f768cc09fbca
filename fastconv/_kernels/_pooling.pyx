"""Max and average pooling over planes, forward and backward.

Inputs are viewed as planes: x (N*C, H, W). Parallel over planes; every plane's output and
gradient belong to one thread. Window bounds follow PyTorch: a window starts at
``o*stride - pad`` and is clipped to the image (max pool pads with -inf, so clipped
elements never win; average pool's divisor depends on ``count_include_pad``).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memset


cdef extern from "_pool_planes.h":
    void fc_max_pool_plane_f(const float* x, Py_ssize_t H, Py_ssize_t W, float* out,
                             int64_t* idx, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh,
                             Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                             Py_ssize_t pw) noexcept nogil
    void fc_max_pool_plane_d(const double* x, Py_ssize_t H, Py_ssize_t W, double* out,
                             int64_t* idx, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh,
                             Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                             Py_ssize_t pw) noexcept nogil


def max_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                       int64_t[:, :, ::1] indices,
                       Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t ph, Py_ssize_t pw, int n_threads):
    """out, indices (NC, OH, OW) <- max over windows of x (NC, H, W).

    indices are flat ``ih*W + iw`` within the plane. The first maximum in row-major window
    order wins ties; a NaN wins over any number and the first NaN is kept, so NaN
    propagates and its gradient goes to it. (The loop is in _pool_planes.h.)
    """
    cdef Py_ssize_t NC = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2]
    cdef Py_ssize_t p
    with nogil:
        for p in prange(NC, schedule="static", num_threads=n_threads):
            if floating is float:
                fc_max_pool_plane_f(&x[p, 0, 0], H, W, &out[p, 0, 0], &indices[p, 0, 0],
                                    OH, OW, kh, kw, sh, sw, ph, pw)
            else:
                fc_max_pool_plane_d(&x[p, 0, 0], H, W, &out[p, 0, 0], &indices[p, 0, 0],
                                    OH, OW, kh, kw, sh, sw, ph, pw)


cdef inline Py_ssize_t scatter_plane(floating* gi, const floating* go, const int64_t* idx,
                                     Py_ssize_t HW, Py_ssize_t P) noexcept nogil:
    """gi (HW) <- zeros, then each go[o] added at idx[o]; returns how many idx[o] fall
    outside [0, HW) (those are skipped)."""
    cdef Py_ssize_t o, bad = 0
    cdef int64_t k
    memset(gi, 0, HW * sizeof(floating))
    for o in range(P):
        k = idx[o]
        if k < 0 or k >= HW:
            bad = bad + 1
        else:
            gi[k] = gi[k] + go[o]
    return bad


def max_pool2d_backward(const floating[:, :, ::1] grad_output, const int64_t[:, :, ::1] indices,
                        floating[:, :, ::1] grad_input, int n_threads):
    """grad_input (NC, H, W) <- scatter of grad_output to the argmax positions; returns the
    number of indices outside [0, H*W) (skipped: the caller raises), so that checking
    caller-given indices costs no pass of its own.

    grad_input may be uninitialised: each thread zeroes its own planes while they are in
    its cache, instead of the caller zeroing the whole array first. (Writing each element
    once instead, window by window, measured 3-10x slower than memset + scatter: the
    element-wise first-touch stores of the 2 x 2 pool's 1.2 MB input gradient.)
    """
    cdef Py_ssize_t NC = grad_output.shape[0], OH = grad_output.shape[1]
    cdef Py_ssize_t OW = grad_output.shape[2], H = grad_input.shape[1], W = grad_input.shape[2]
    cdef Py_ssize_t p, bad = 0
    with nogil:
        for p in prange(NC, schedule="static", num_threads=n_threads):
            bad += scatter_plane(&grad_input[p, 0, 0], &grad_output[p, 0, 0], &indices[p, 0, 0],
                                 H * W, OH * OW)
    return bad


def avg_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                       Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad, int n_threads):
    """out (NC, OH, OW) <- mean over windows of x (NC, H, W)."""
    cdef Py_ssize_t NC = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2]
    cdef Py_ssize_t p, oh, ow, ih, iw, h0, h1, w0, w1, ph_ext, pw_ext, count
    cdef floating acc
    with nogil:
        for p in prange(NC, schedule="static", num_threads=n_threads):
            for oh in range(OH):
                # PyTorch divides by the window clipped to the *padded* input
                # when count_include_pad, else by the part inside the input.
                h0 = oh * sh - ph
                h1 = min(h0 + kh, H + ph)
                ph_ext = h1 - h0
                h0 = max(h0, 0)
                h1 = min(h1, H)
                for ow in range(OW):
                    w0 = ow * sw - pw
                    w1 = min(w0 + kw, W + pw)
                    pw_ext = w1 - w0
                    w0 = max(w0, 0)
                    w1 = min(w1, W)
                    acc = 0
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            acc = acc + x[p, ih, iw]
                    if count_include_pad:
                        count = ph_ext * pw_ext
                    else:
                        count = (h1 - h0) * (w1 - w0)
                    out[p, oh, ow] = acc / count


def avg_pool2d_backward(const floating[:, :, ::1] grad_output, floating[:, :, ::1] grad_input,
                        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad, int n_threads):
    """grad_input (NC, H, W) += each output's gradient spread evenly over its window; zeroed."""
    cdef Py_ssize_t NC = grad_input.shape[0], H = grad_input.shape[1], W = grad_input.shape[2]
    cdef Py_ssize_t OH = grad_output.shape[1], OW = grad_output.shape[2]
    cdef Py_ssize_t p, oh, ow, ih, iw, h0, h1, w0, w1, ph_ext, pw_ext, count
    cdef floating g
    with nogil:
        for p in prange(NC, schedule="static", num_threads=n_threads):
            for oh in range(OH):
                # PyTorch divides by the window clipped to the *padded* input
                # when count_include_pad, else by the part inside the input.
                h0 = oh * sh - ph
                h1 = min(h0 + kh, H + ph)
                ph_ext = h1 - h0
                h0 = max(h0, 0)
                h1 = min(h1, H)
                for ow in range(OW):
                    w0 = ow * sw - pw
                    w1 = min(w0 + kw, W + pw)
                    pw_ext = w1 - w0
                    w0 = max(w0, 0)
                    w1 = min(w1, W)
                    if count_include_pad:
                        count = ph_ext * pw_ext
                    else:
                        count = (h1 - h0) * (w1 - w0)
                    g = grad_output[p, oh, ow] / count
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            grad_input[p, ih, iw] += g
