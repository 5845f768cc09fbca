"""Matrix products of the fully connected layers.

float32 on an AVX-512 CPU: the kernels of ``_gemm_avx512.h``, blocks of each product
shared between the OpenMP threads (``linear_forward_avx512``, ``linear_backward_avx512``).
Elsewhere, BLAS: at LeNet sizes (64 x 120 x 400) one OpenBLAS call runs on one thread
(the layers pin it there: its own spinning pool fights the kernels' OpenMP threads), so
Linear's two independent backward products run each on its own OpenMP thread, as one
single-threaded BLAS call (``gemm_pair``). Callers (``fastconv.functional``) validate
everything.
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


# Callers use these only where _direct.use_avx512() says the CPU has AVX-512 (one switch
# for every AVX-512 kernel); in builds without it they are empty stubs.
cdef extern from "_gemm_avx512.h":
    void fc_sgemm_dot_block(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float* a,
                            Py_ssize_t lda, const float* b, Py_ssize_t ldb, const float* bias,
                            float* c, Py_ssize_t ldc, Py_ssize_t i0, Py_ssize_t j0) noexcept nogil
    void fc_column_sums(Py_ssize_t M, Py_ssize_t N, const float* g, Py_ssize_t ldg,
                        float* gb) noexcept nogil
    void fc_sgemm_axpy_block(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float* a,
                             Py_ssize_t ars, Py_ssize_t aks, const float* b, Py_ssize_t ldb,
                             float* c, Py_ssize_t ldc, int accumulate, Py_ssize_t i0,
                             Py_ssize_t j0) noexcept nogil


def linear_forward_avx512(const float[:, ::1] x, const float[:, ::1] weight,
                          const float[::1] bias, float[:, ::1] out, int n_threads):
    """out (N, out_features) = x (N, in_features) @ weight (out_features, in_features)^T
    + bias (out_features,), or without bias when it is None.

    AVX-512 only; every dimension >= 1. 4 x 4 blocks of out are
    shared between the threads; each is summed whole by one of them.
    """
    cdef Py_ssize_t M = x.shape[0], N = weight.shape[0], K = x.shape[1]
    cdef Py_ssize_t n_jb = (N + 3) // 4, n_tasks = ((M + 3) // 4) * n_jb, t
    cdef const float* b = &bias[0] if bias is not None else NULL
    with nogil:
        for t in prange(n_tasks, schedule="static", num_threads=max(n_threads, 1)):
            # row-block major: a thread's consecutive blocks share rows of x
            fc_sgemm_dot_block(M, N, K, &x[0, 0], K, &weight[0, 0], K, b, &out[0, 0], N,
                               (t // n_jb) * 4, (t % n_jb) * 4)


def linear_backward_avx512(const float[:, ::1] grad_output, const float[:, ::1] x,
                           const float[:, ::1] weight, float[:, ::1] grad_weight,
                           float[::1] grad_bias, float[:, ::1] grad_input, int n_threads):
    """grad_input (N, in) = grad_output (N, out) @ weight (out, in),
    grad_weight (out, in) += grad_output^T @ x (N, in) and, unless it is None,
    grad_bias (out,) += the column sums of grad_output, in one parallel region.

    AVX-512 only; every dimension >= 1. The 8 x 32 blocks of both
    results are handed out one at a time (their costs differ); each is summed whole by
    one thread, so the results do not depend on the thread count.
    """
    cdef Py_ssize_t n = grad_output.shape[0], n_out = grad_output.shape[1]
    cdef Py_ssize_t n_in = x.shape[1]
    cdef Py_ssize_t n_jb = (n_in + 31) // 32
    cdef Py_ssize_t gi_ib = (n + 7) // 8, gw_ib = (n_out + 7) // 8
    cdef Py_ssize_t gi_tasks = gi_ib * n_jb, t, u
    cdef Py_ssize_t first = 1 if grad_bias is not None else 0  # task 0: grad_bias
    cdef float* gb = &grad_bias[0] if grad_bias is not None else NULL
    with nogil:
        for t in prange(first + gi_tasks + gw_ib * n_jb, schedule="dynamic",
                        num_threads=max(n_threads, 1)):
            u = t - first
            if u < 0:
                fc_column_sums(n, n_out, &grad_output[0, 0], n_out, gb)
            # column-panel major: consecutive blocks share a panel of the right operand
            elif u < gi_tasks:
                fc_sgemm_axpy_block(n, n_in, n_out, &grad_output[0, 0], n_out, 1,
                                    &weight[0, 0], n_in, &grad_input[0, 0], n_in, 0,
                                    (u % gi_ib) * 8, (u // gi_ib) * 32)
            else:
                u = u - gi_tasks
                fc_sgemm_axpy_block(n_out, n_in, n, &grad_output[0, 0], 1, n_out,
                                    &x[0, 0], n_in, &grad_weight[0, 0], n_in, 1,
                                    (u % gw_ib) * 8, (u // gw_ib) * 32)
