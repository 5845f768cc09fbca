# Declarations of the Winograd F(2x2, 3x3) transforms in _winograd.h, cimported by the
# kernel modules that run them (_direct, _plan): one copy of the C signatures.

cdef extern from "_winograd.h":
    void fc_wino_input_f(const float* xp, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                         Py_ssize_t th, Py_ssize_t tw, float* V, Py_ssize_t ld, Py_ssize_t xis,
                         Py_ssize_t t0, float* e) noexcept nogil
    void fc_wino_input_d(const double* xp, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                         Py_ssize_t th, Py_ssize_t tw, double* V, Py_ssize_t ld, Py_ssize_t xis,
                         Py_ssize_t t0, double* e) noexcept nogil
    void fc_wino_output_f(const float* M, Py_ssize_t xis, Py_ssize_t nt, float bias,
                          float* y) noexcept nogil
    void fc_wino_output_d(const double* M, Py_ssize_t xis, Py_ssize_t nt, double bias,
                          double* y) noexcept nogil
    void fc_wino_scatter_f(const float* y, Py_ssize_t nt, Py_ssize_t t0, Py_ssize_t th,
                           Py_ssize_t tw, float* o, Py_ssize_t OH, Py_ssize_t OW,
                           Py_ssize_t ors) noexcept nogil
    void fc_wino_input_avx512_f(const float* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                                Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t th, Py_ssize_t tw,
                                float* V, Py_ssize_t ld, Py_ssize_t xis, Py_ssize_t t0,
                                float* q) noexcept nogil
    void fc_wino_scatter_avx512_f(const float* y, Py_ssize_t nt, Py_ssize_t t0, Py_ssize_t th,
                                  Py_ssize_t tw, float* o, Py_ssize_t OH, Py_ssize_t OW,
                                  Py_ssize_t ors) noexcept nogil
    void fc_wino_input_avx2_f(const float* xp, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                              Py_ssize_t th, Py_ssize_t tw, float* V, Py_ssize_t ld,
                              Py_ssize_t xis, Py_ssize_t t0, float* q) noexcept nogil
    void fc_wino_scatter_avx2_f(const float* y, Py_ssize_t nt, Py_ssize_t t0, Py_ssize_t th,
                                Py_ssize_t tw, float* o, Py_ssize_t OH, Py_ssize_t OW,
                                Py_ssize_t ors) noexcept nogil
    void fc_wino_gather_f(const float* g, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t th,
                          Py_ssize_t tw, float* y, Py_ssize_t nt, Py_ssize_t t0) noexcept nogil
    void fc_wino_gather_d(const double* g, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t th,
                          Py_ssize_t tw, double* y, Py_ssize_t nt, Py_ssize_t t0) noexcept nogil
    void fc_wino_gy_f(const float* y, Py_ssize_t nt, float* GY, Py_ssize_t xis) noexcept nogil
    void fc_wino_gy_d(const double* y, Py_ssize_t nt, double* GY, Py_ssize_t xis) noexcept nogil
    void fc_wino_scatter_d(const double* y, Py_ssize_t nt, Py_ssize_t t0, Py_ssize_t th,
                           Py_ssize_t tw, double* o, Py_ssize_t OH, Py_ssize_t OW,
                           Py_ssize_t ors) noexcept nogil
