"""Queries of the OpenMP runtime the kernels were built against."""


def openmp_enabled():
    """True if the kernels were compiled with OpenMP (else they run serially)."""
    return bool(FASTCONV_HAVE_OPENMP)


def omp_max_threads():
    """``omp_get_max_threads()``: follows OMP_NUM_THREADS and threadpoolctl; 1 without OpenMP."""
    return omp_get_max_threads()
