"""Softmax and log-softmax along one axis, forward and backward.

Arrays are viewed as (outer, C, inner) and reduced over C. Rows (inner == 1) are split
into chunks of whole rows; otherwise the tasks are blocks of up to FC_SM_BLOCK lines of
one outer slice. Each line belongs to one task and its arithmetic does not depend on the
split, so results do not depend on the thread count. Small arrays run on one thread.
The loops are in _softmax_lines.h; the caller validates and allocates.
"""
from cython cimport floating
from cython.parallel cimport prange


cdef extern from "_softmax_lines.h":
    enum: FC_SM_BLOCK
    void fc_softmax_rows_f(const float* x, Py_ssize_t rows, Py_ssize_t C, float* y,
                           int log_out) noexcept nogil
    void fc_softmax_rows_d(const double* x, Py_ssize_t rows, Py_ssize_t C, double* y,
                           int log_out) noexcept nogil
    void fc_softmax_cols_f(const float* x, Py_ssize_t C, Py_ssize_t inner, Py_ssize_t i0,
                           Py_ssize_t n, float* y, int log_out) noexcept nogil
    void fc_softmax_cols_d(const double* x, Py_ssize_t C, Py_ssize_t inner, Py_ssize_t i0,
                           Py_ssize_t n, double* y, int log_out) noexcept nogil
    void fc_softmax_backward_rows_f(const float* g, const float* y, Py_ssize_t rows,
                                    Py_ssize_t C, float* gi, int log_out) noexcept nogil
    void fc_softmax_backward_rows_d(const double* g, const double* y, Py_ssize_t rows,
                                    Py_ssize_t C, double* gi, int log_out) noexcept nogil
    void fc_softmax_backward_cols_f(const float* g, const float* y, Py_ssize_t C,
                                    Py_ssize_t inner, Py_ssize_t i0, Py_ssize_t n, float* gi,
                                    int log_out) noexcept nogil
    void fc_softmax_backward_cols_d(const double* g, const double* y, Py_ssize_t C,
                                    Py_ssize_t inner, Py_ssize_t i0, Py_ssize_t n, double* gi,
                                    int log_out) noexcept nogil


# Below this many elements, one thread; a chunk of rows holds at least a quarter of it.
cdef Py_ssize_t PARALLEL_MIN = 32768


cdef inline Py_ssize_t _rows_per_chunk(Py_ssize_t rows, Py_ssize_t C, int n_threads) noexcept nogil:
    cdef Py_ssize_t per
    if n_threads <= 1 or rows * C < PARALLEL_MIN:
        return rows if rows > 0 else 1
    per = (rows + 4 * n_threads - 1) // (4 * n_threads)
    if per * C < PARALLEL_MIN // 4:
        per = (PARALLEL_MIN // 4 + C - 1) // C
    return per if per > 0 else 1


cdef inline int _team(Py_ssize_t n_tasks, Py_ssize_t size, int n_threads) noexcept nogil:
    if n_tasks <= 1 or size < PARALLEL_MIN:
        return 1
    return n_threads if n_threads < n_tasks else <int>n_tasks


def softmax_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, bint log_out,
                    int n_threads):
    """y (outer, C, inner) <- softmax of x over axis 1 (log-softmax if ``log_out``); C >= 1."""
    cdef Py_ssize_t outer = x.shape[0], C = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t per, n_tasks, t, r0, nb, o, i0
    cdef int team
    if inner == 1:
        per = _rows_per_chunk(outer, C, n_threads)
        n_tasks = (outer + per - 1) // per
        team = _team(n_tasks, outer * C, n_threads)
        with nogil:
            for t in prange(n_tasks, schedule="static", num_threads=team):
                r0 = t * per
                if floating is float:
                    fc_softmax_rows_f(&x[r0, 0, 0], min(per, outer - r0), C, &y[r0, 0, 0], log_out)
                else:
                    fc_softmax_rows_d(&x[r0, 0, 0], min(per, outer - r0), C, &y[r0, 0, 0], log_out)
        return
    nb = (inner + FC_SM_BLOCK - 1) // FC_SM_BLOCK
    n_tasks = outer * nb
    team = _team(n_tasks, outer * C * inner, n_threads)
    with nogil:
        for t in prange(n_tasks, schedule="static", num_threads=team):
            o = t // nb
            i0 = (t % nb) * FC_SM_BLOCK
            if floating is float:
                fc_softmax_cols_f(&x[o, 0, 0], C, inner, i0, min(FC_SM_BLOCK, inner - i0),
                                  &y[o, 0, 0], log_out)
            else:
                fc_softmax_cols_d(&x[o, 0, 0], C, inner, i0, min(FC_SM_BLOCK, inner - i0),
                                  &y[o, 0, 0], log_out)


def softmax_backward(const floating[:, :, ::1] grad_output, const floating[:, :, ::1] y,
                     floating[:, :, ::1] grad_input, bint log_out, int n_threads):
    """grad_input <- y*(g - sum(g*y)) over axis 1, or g - exp(y)*sum(g) if ``log_out``
    (y the forward output); every element written."""
    cdef Py_ssize_t outer = y.shape[0], C = y.shape[1], inner = y.shape[2]
    cdef Py_ssize_t per, n_tasks, t, r0, nb, o, i0
    cdef int team
    if inner == 1:
        per = _rows_per_chunk(outer, C, n_threads)
        n_tasks = (outer + per - 1) // per
        team = _team(n_tasks, outer * C, n_threads)
        with nogil:
            for t in prange(n_tasks, schedule="static", num_threads=team):
                r0 = t * per
                if floating is float:
                    fc_softmax_backward_rows_f(&grad_output[r0, 0, 0], &y[r0, 0, 0],
                                               min(per, outer - r0), C, &grad_input[r0, 0, 0],
                                               log_out)
                else:
                    fc_softmax_backward_rows_d(&grad_output[r0, 0, 0], &y[r0, 0, 0],
                                               min(per, outer - r0), C, &grad_input[r0, 0, 0],
                                               log_out)
        return
    nb = (inner + FC_SM_BLOCK - 1) // FC_SM_BLOCK
    n_tasks = outer * nb
    team = _team(n_tasks, outer * C * inner, n_threads)
    with nogil:
        for t in prange(n_tasks, schedule="static", num_threads=team):
            o = t // nb
            i0 = (t % nb) * FC_SM_BLOCK
            if floating is float:
                fc_softmax_backward_cols_f(&grad_output[o, 0, 0], &y[o, 0, 0], C, inner, i0,
                                           min(FC_SM_BLOCK, inner - i0), &grad_input[o, 0, 0],
                                           log_out)
            else:
                fc_softmax_backward_cols_d(&grad_output[o, 0, 0], &y[o, 0, 0], C, inner, i0,
                                           min(FC_SM_BLOCK, inner - i0), &grad_input[o, 0, 0],
                                           log_out)
