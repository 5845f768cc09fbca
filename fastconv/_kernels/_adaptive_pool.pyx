"""Adaptive average/max pooling over planes, and maxout over runs of channels.

Inputs are viewed as planes x (N*C, H, W) (maxout: rows (N*C_out, k, inner)). Work is
split into chunks of whole planes (rows), each written by one thread, so results do not
depend on the thread count. Small arrays run on one thread, where starting the OpenMP
team costs more than the loop. The loops are in _adaptive_planes.h (vectorised, with
AVX-512/AVX2 clones); the caller validates shapes and allocates (it checks nothing here).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t


cdef extern from "_adaptive_planes.h":
    void fc_adaptive_avg_f(const float* x, Py_ssize_t n_planes, Py_ssize_t H, Py_ssize_t W,
                           float* out, Py_ssize_t OH, Py_ssize_t OW) noexcept nogil
    void fc_adaptive_avg_d(const double* x, Py_ssize_t n_planes, Py_ssize_t H, Py_ssize_t W,
                           double* out, Py_ssize_t OH, Py_ssize_t OW) noexcept nogil
    void fc_adaptive_avg_backward_f(const float* go, Py_ssize_t n_planes, Py_ssize_t OH,
                                    Py_ssize_t OW, float* gi, Py_ssize_t H,
                                    Py_ssize_t W) noexcept nogil
    void fc_adaptive_avg_backward_d(const double* go, Py_ssize_t n_planes, Py_ssize_t OH,
                                    Py_ssize_t OW, double* gi, Py_ssize_t H,
                                    Py_ssize_t W) noexcept nogil
    void fc_adaptive_max_f(const float* x, Py_ssize_t n_planes, Py_ssize_t H, Py_ssize_t W,
                           float* out, int64_t* idx, Py_ssize_t OH, Py_ssize_t OW) noexcept nogil
    void fc_adaptive_max_d(const double* x, Py_ssize_t n_planes, Py_ssize_t H, Py_ssize_t W,
                           double* out, int64_t* idx, Py_ssize_t OH, Py_ssize_t OW) noexcept nogil
    void fc_maxout_f(const float* x, Py_ssize_t rows, Py_ssize_t k, Py_ssize_t inner,
                     float* out, int64_t* idx) noexcept nogil
    void fc_maxout_d(const double* x, Py_ssize_t rows, Py_ssize_t k, Py_ssize_t inner,
                     double* out, int64_t* idx) noexcept nogil
    void fc_maxout_backward_f(const float* go, const int64_t* idx, Py_ssize_t rows,
                              Py_ssize_t k, Py_ssize_t inner, float* gi) noexcept nogil
    void fc_maxout_backward_d(const double* go, const int64_t* idx, Py_ssize_t rows,
                              Py_ssize_t k, Py_ssize_t inner, double* gi) noexcept nogil


# Below this many elements touched, one thread; chunks hold at least this many too.
cdef Py_ssize_t PARALLEL_MIN = 32768


cdef inline Py_ssize_t _chunk(Py_ssize_t n_items, Py_ssize_t item_size, int n_threads) noexcept nogil:
    """Items per chunk: four chunks a thread when there is enough work, else all in one."""
    cdef Py_ssize_t total = n_items * item_size, per
    if n_threads <= 1 or total < PARALLEL_MIN:
        return n_items if n_items > 0 else 1
    per = (n_items + 4 * n_threads - 1) // (4 * n_threads)
    if per * item_size < PARALLEL_MIN // 4:
        per = (PARALLEL_MIN // 4 + item_size - 1) // item_size
    return per if per > 0 else 1


cdef inline int _team(Py_ssize_t n_chunks, int n_threads) noexcept nogil:
    return 1 if n_chunks <= 1 else (n_threads if n_threads < n_chunks else <int>n_chunks)


def adaptive_avg_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                                int n_threads):
    """out (NC, OH, OW) <- means of x (NC, H, W) over PyTorch's adaptive bins (sums in double)."""
    cdef Py_ssize_t NC = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2]
    cdef Py_ssize_t per = _chunk(NC, H * W, n_threads)
    cdef Py_ssize_t n_chunks = (NC + per - 1) // per, c, p0, n
    with nogil:
        for c in prange(n_chunks, schedule="static", num_threads=_team(n_chunks, n_threads)):
            p0 = c * per
            n = min(per, NC - p0)
            if floating is float:
                fc_adaptive_avg_f(&x[p0, 0, 0], n, H, W, &out[p0, 0, 0], OH, OW)
            else:
                fc_adaptive_avg_d(&x[p0, 0, 0], n, H, W, &out[p0, 0, 0], OH, OW)


def adaptive_avg_pool2d_backward(const floating[:, :, ::1] grad_output,
                                 floating[:, :, ::1] grad_input, int n_threads):
    """grad_input (NC, H, W) <- each output gradient / bin size, summed over the bins
    holding each element. grad_input may be uninitialised (every element is written)."""
    cdef Py_ssize_t NC = grad_input.shape[0], H = grad_input.shape[1], W = grad_input.shape[2]
    cdef Py_ssize_t OH = grad_output.shape[1], OW = grad_output.shape[2]
    cdef Py_ssize_t per = _chunk(NC, H * W, n_threads)
    cdef Py_ssize_t n_chunks = (NC + per - 1) // per, c, p0, n
    with nogil:
        for c in prange(n_chunks, schedule="static", num_threads=_team(n_chunks, n_threads)):
            p0 = c * per
            n = min(per, NC - p0)
            if floating is float:
                fc_adaptive_avg_backward_f(&grad_output[p0, 0, 0], n, OH, OW,
                                           &grad_input[p0, 0, 0], H, W)
            else:
                fc_adaptive_avg_backward_d(&grad_output[p0, 0, 0], n, OH, OW,
                                           &grad_input[p0, 0, 0], H, W)


def adaptive_max_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                                int64_t[:, :, ::1] indices, int n_threads):
    """out, indices (NC, OH, OW) <- maxima of x (NC, H, W) over the adaptive bins.

    indices are flat ``h*W + w`` within the plane; NaN propagates (the first NaN's index),
    ties go to the first maximum in row-major order.
    """
    cdef Py_ssize_t NC = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2]
    cdef Py_ssize_t per = _chunk(NC, H * W, n_threads)
    cdef Py_ssize_t n_chunks = (NC + per - 1) // per, c, p0, n
    with nogil:
        for c in prange(n_chunks, schedule="static", num_threads=_team(n_chunks, n_threads)):
            p0 = c * per
            n = min(per, NC - p0)
            if floating is float:
                fc_adaptive_max_f(&x[p0, 0, 0], n, H, W, &out[p0, 0, 0], &indices[p0, 0, 0],
                                  OH, OW)
            else:
                fc_adaptive_max_d(&x[p0, 0, 0], n, H, W, &out[p0, 0, 0], &indices[p0, 0, 0],
                                  OH, OW)


def maxout_forward(const floating[:, :, ::1] x, floating[:, ::1] out,
                   int64_t[:, ::1] indices, int n_threads):
    """out, indices (R, inner) <- max over the k pieces of x (R, k, inner); indices in [0, k)."""
    cdef Py_ssize_t R = x.shape[0], k = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t per = _chunk(R, k * inner, n_threads)
    cdef Py_ssize_t n_chunks = (R + per - 1) // per, c, r0, n
    with nogil:
        for c in prange(n_chunks, schedule="static", num_threads=_team(n_chunks, n_threads)):
            r0 = c * per
            n = min(per, R - r0)
            if floating is float:
                fc_maxout_f(&x[r0, 0, 0], n, k, inner, &out[r0, 0], &indices[r0, 0])
            else:
                fc_maxout_d(&x[r0, 0, 0], n, k, inner, &out[r0, 0], &indices[r0, 0])


def maxout_backward(const floating[:, ::1] grad_output, const int64_t[:, ::1] indices,
                    floating[:, :, ::1] grad_input, int n_threads):
    """grad_input (R, k, inner) <- grad_output (R, inner) at the winning piece, 0 elsewhere
    (every element written)."""
    cdef Py_ssize_t R = grad_input.shape[0], k = grad_input.shape[1], inner = grad_input.shape[2]
    cdef Py_ssize_t per = _chunk(R, k * inner, n_threads)
    cdef Py_ssize_t n_chunks = (R + per - 1) // per, c, r0, n
    with nogil:
        for c in prange(n_chunks, schedule="static", num_threads=_team(n_chunks, n_threads)):
            r0 = c * per
            n = min(per, R - r0)
            if floating is float:
                fc_maxout_backward_f(&grad_output[r0, 0], &indices[r0, 0], n, k, inner,
                                     &grad_input[r0, 0, 0])
            else:
                fc_maxout_backward_d(&grad_output[r0, 0], &indices[r0, 0], n, k, inner,
                                     &grad_input[r0, 0, 0])
