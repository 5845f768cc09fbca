"""'valid' 2-D correlation of a stack of single planes with one kernel (fastconv.signal,
fastconv.filter2d): x (N, Hp, Wp) already extended by its boundary, w (kh, kw), out
(N, Hp - kh + 1, Wp - kw + 1). Tasks are blocks of output rows of one plane, spread over
the threads by a static schedule; each output row is summed by one thread in a fixed tap
order (deterministic for any thread count). The row loops are in _filter_planes.h.
Caller allocates (non-empty arrays), kernel fills; nothing is checked here.
"""
from cython cimport floating
from cython.parallel cimport prange

cdef extern from "_filter_planes.h":
    void fc_filter_rows_f(const float* x, Py_ssize_t ldi, const float* w, Py_ssize_t kh,
                          Py_ssize_t kw, float* out, Py_ssize_t ow, Py_ssize_t r0,
                          Py_ssize_t r1) noexcept nogil
    void fc_filter_rows_d(const double* x, Py_ssize_t ldi, const double* w, Py_ssize_t kh,
                          Py_ssize_t kw, double* out, Py_ssize_t ow, Py_ssize_t r0,
                          Py_ssize_t r1) noexcept nogil


def correlate_valid(floating[:, :, ::1] x, floating[:, ::1] w, floating[:, :, ::1] out,
                    int n_threads):
    cdef Py_ssize_t N = out.shape[0], oh = out.shape[1], ow = out.shape[2]
    cdef Py_ssize_t ldi = x.shape[2], kh = w.shape[0], kw = w.shape[1]
    cdef Py_ssize_t ROWS_PER_TASK = 8  # output rows per task
    cdef Py_ssize_t blocks = (oh + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    cdef Py_ssize_t t, n, r0, r1
    with nogil:
        for t in prange(N * blocks, num_threads=n_threads, schedule="static"):
            n = t // blocks
            r0 = (t % blocks) * ROWS_PER_TASK
            r1 = r0 + ROWS_PER_TASK
            if r1 > oh:
                r1 = oh
            if floating is float:
                fc_filter_rows_f(&x[n, 0, 0], ldi, &w[0, 0], kh, kw, &out[n, 0, 0], ow, r0, r1)
            else:
                fc_filter_rows_d(&x[n, 0, 0], ldi, &w[0, 0], kh, kw, &out[n, 0, 0], ow, r0, r1)
