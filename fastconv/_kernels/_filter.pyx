"""'valid' 2-D correlation of a stack of single planes with one kernel (fastconv.signal,
fastconv.filter2d): x (N, Hp, Wp) already extended by its boundary, w (kh, kw), out
(N, Hp - kh + 1, Wp - kw + 1). Tasks are blocks of output rows of one plane, spread over
the threads by a static schedule; each output row is summed by one thread in a fixed tap
order (deterministic for any thread count). The row loops are in _filter_planes.h.
Caller allocates (non-empty arrays), kernel fills; nothing is checked here.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc

cdef extern from "_filter_planes.h":
    void fc_filter_rows_f(const float* x, Py_ssize_t ldi, const float* w, Py_ssize_t kh,
                          Py_ssize_t kw, float* out, Py_ssize_t ow, Py_ssize_t r0,
                          Py_ssize_t r1) noexcept nogil
    void fc_filter_rows_d(const double* x, Py_ssize_t ldi, const double* w, Py_ssize_t kh,
                          Py_ssize_t kw, double* out, Py_ssize_t ow, Py_ssize_t r0,
                          Py_ssize_t r1) noexcept nogil
    void fc_extend_rows_f(const float* x, Py_ssize_t W, const Py_ssize_t* rmap,
                          const Py_ssize_t* cmap, Py_ssize_t left, Py_ssize_t wp, float fill,
                          Py_ssize_t e0, Py_ssize_t e1, float* buf) noexcept nogil
    void fc_extend_rows_d(const double* x, Py_ssize_t W, const Py_ssize_t* rmap,
                          const Py_ssize_t* cmap, Py_ssize_t left, Py_ssize_t wp, double fill,
                          Py_ssize_t e0, Py_ssize_t e1, double* buf) noexcept nogil


def correlate_valid(const floating[:, :, ::1] x, const floating[:, ::1] w, floating[:, :, ::1] out,
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


def correlate_extended(const floating[:, :, ::1] x, const Py_ssize_t[::1] rmap, const Py_ssize_t[::1] cmap,
                       Py_ssize_t left, floating fill, const floating[:, ::1] w, floating[:, :, ::1] out,
                       int n_threads):
    """As correlate_valid on x (N, H, W) extended on the fly: extended row e of a plane is
    source row rmap[e] (all ``fill`` when < 0; len Hp), extended column c is source column
    c - left inside and cmap[c] at the borders (``fill`` when < 0; len Wp). Each task
    extends the kh - 1 + ROWS rows it reads into a per-thread buffer (no extended copy of
    the whole image in memory)."""
    cdef Py_ssize_t N = out.shape[0], oh = out.shape[1], ow = out.shape[2]
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], wp = cmap.shape[0]
    cdef Py_ssize_t kh = w.shape[0], kw = w.shape[1]
    cdef Py_ssize_t ROWS_PER_TASK = 16  # output rows per task
    cdef Py_ssize_t blocks = (oh + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    cdef Py_ssize_t t, n, r0, r1
    cdef floating* buf
    cdef const floating* xp
    with nogil, parallel(num_threads=n_threads):
        buf = <floating*> malloc((ROWS_PER_TASK + kh - 1) * wp * sizeof(floating))
        if buf == NULL:
            with gil:
                raise MemoryError("correlate_extended: no memory for the row buffer")
        for t in prange(N * blocks, schedule="static"):
            n = t // blocks
            r0 = (t % blocks) * ROWS_PER_TASK
            r1 = r0 + ROWS_PER_TASK
            if r1 > oh:
                r1 = oh
            xp = &x[n, 0, 0] if H > 0 and W > 0 else NULL
            if floating is float:
                fc_extend_rows_f(xp, W, &rmap[0], &cmap[0], left, wp, fill, r0, r1 + kh - 1, buf)
                fc_filter_rows_f(buf, wp, &w[0, 0], kh, kw, &out[n, 0, 0] + r0 * ow, ow, 0, r1 - r0)
            else:
                fc_extend_rows_d(xp, W, &rmap[0], &cmap[0], left, wp, fill, r0, r1 + kh - 1, buf)
                fc_filter_rows_d(buf, wp, &w[0, 0], kh, kw, &out[n, 0, 0] + r0 * ow, ow, 0, r1 - r0)
        free(buf)
