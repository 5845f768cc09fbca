# Declarations shared by the kernel modules: index arithmetic and a row-major GEMM.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


# valid_lo/valid_hi: the output range whose input index is inside the image (_index.h,
# shared with the C helpers).
cdef extern from "_index.h":
    Py_ssize_t valid_lo "fc_valid_lo"(Py_ssize_t offset, Py_ssize_t stride,
                                       Py_ssize_t out_size) noexcept nogil
    Py_ssize_t valid_hi "fc_valid_hi"(Py_ssize_t offset, Py_ssize_t stride, Py_ssize_t size,
                                       Py_ssize_t out_size, Py_ssize_t lo) noexcept nogil


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
