"""Two independent GEMMs at once, for the fully connected layers' backward pass.

At LeNet sizes (64 x 120 x 400) one OpenBLAS call runs on one thread (the layers pin it
there: its own spinning pool fights the kernels' OpenMP threads), and grad_weight and
grad_input were the largest part of a training step that did not scale with threads.
They do not depend on each other, so here each runs on its own OpenMP thread, as one
single-threaded BLAS call. Callers (``fastconv.functional``) validate everything.
"""
from cython cimport floating
from cython.parallel cimport prange

from ._common cimport gemm_rm


cdef void gemm_task(const floating[:, ::1] a, bint trans_a, const floating[:, ::1] b,
                    bint trans_b, floating[:, ::1] c, floating beta) noexcept nogil:
    """c (M, N) = op(a) @ op(b) + beta * c for C-contiguous operands, all dimensions > 0."""
    cdef int M = c.shape[0], N = c.shape[1]
    cdef int K = a.shape[0] if trans_a else a.shape[1]
    cdef char ta = 84 if trans_a else 78  # 'T' / 'N'
    cdef char tb = 84 if trans_b else 78
    cdef floating one = 1
    gemm_rm(ta, tb, M, N, K, one, &a[0, 0], <int>a.shape[1], &b[0, 0], <int>b.shape[1],
            beta, &c[0, 0], <int>c.shape[1])


def gemm_pair(const floating[:, ::1] a1, bint trans_a1, const floating[:, ::1] b1,
              bint trans_b1, floating[:, ::1] c1, floating beta1,
              const floating[:, ::1] a2, bint trans_a2, const floating[:, ::1] b2,
              bint trans_b2, floating[:, ::1] c2, floating beta2, int n_threads):
    """c1 = op(a1) @ op(b1) + beta1*c1 and c2 = op(a2) @ op(b2) + beta2*c2, concurrently.

    Each product is computed whole by one thread, so the results do not depend on the
    thread count. BLAS must be pinned to one thread by the caller.
    """
    cdef int t
    with nogil:
        for t in prange(2, schedule="static", num_threads=min(max(n_threads, 1), 2)):
            if t == 0:
                gemm_task(a1, trans_a1, b1, trans_b1, c1, beta1)
            else:
                gemm_task(a2, trans_a2, b2, trans_b2, c2, beta2)
