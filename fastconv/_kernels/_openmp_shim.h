/* Lets the kernels use OpenMP's API whether or not the compiler has OpenMP.
 * Cython's prange/parallel already degrade to serial loops without _OPENMP;
 * this header does the same for the few runtime calls we make. */
#ifndef FASTCONV_OPENMP_SHIM_H
#define FASTCONV_OPENMP_SHIM_H
#ifdef _OPENMP
#include <omp.h>
#define FASTCONV_HAVE_OPENMP 1
#else
#define FASTCONV_HAVE_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif
#endif
