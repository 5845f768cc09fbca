# Declarations shared by the kernel modules: index arithmetic and a row-major GEMM.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


# Output positions o in [valid_lo, valid_hi) have input index o*stride + offset in [0, size).
# Computing the range once lets inner loops run without bounds tests (padding is implicit
# zeros outside it). These return values rather than writing through pointers on purpose:
# Cython makes a prange variable thread-private only if the loop body assigns it.
cdef inline Py_ssize_t valid_lo(Py_ssize_t offset, Py_ssize_t stride,
                                Py_ssize_t out_size) noexcept nogil:
    cdef Py_ssize_t a = 0
    if offset < 0:
        a = (-offset + stride - 1) // stride
    return a if a < out_size else out_size


cdef inline Py_ssize_t valid_hi(Py_ssize_t offset, Py_ssize_t stride, Py_ssize_t size,
                                Py_ssize_t out_size, Py_ssize_t lo) noexcept nogil:
    cdef Py_ssize_t b = 0
    if size - 1 - offset >= 0:
        b = (size - 1 - offset) // stride + 1
    if b > out_size:
        b = out_size
    return b if b > lo else lo


cdef inline void gemm_rm(char transa, char transb, int m, int n, int k, floating alpha,
                         const floating* a, int lda, const floating* b, int ldb,
                         floating beta, floating* c, int ldc) noexcept nogil:
    """C (m x n) = alpha * op(A) @ op(B) + beta * C for row-major operands.

    BLAS is column-major; a row-major matrix is its column-major transpose, so we ask
    for C^T = op(B)^T op(A)^T, which swaps the operands but keeps the transpose flags.
    The caller pins BLAS to one thread when this runs inside prange.
    """
    if floating is float:
        sgemm(&transb, &transa, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&transb, &transa, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda,
              &beta, c, &ldc)
