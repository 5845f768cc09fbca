# Declaration of the AVX2 GEMM block in _gemm_avx2.h, cimported by the kernel modules that
# run it (_direct, _plan): one copy of the C signature. Call it only where fc_have_avx2().

cdef extern from "_gemm_avx2.h":
    void fc_sgemm_axpy_block_avx2(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float* a,
                                  Py_ssize_t ars, Py_ssize_t aks, const float* b, Py_ssize_t ldb,
                                  float* c, Py_ssize_t ldc, Py_ssize_t i0,
                                  Py_ssize_t j0) noexcept nogil
