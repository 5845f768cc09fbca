"""Padding of planes (constant, reflect, replicate, circular), forward and adjoint.

Planes: x (NC, H, W) -> out (NC, OH, OW). The caller describes each axis by a source map
(``rmap[oh]``, ``cmap[ow]``: the input row/column an output row/column copies, or -1 for
the constant ``value``) and by its interior, the run of outputs ``[o0, o0 + n)`` that copy
inputs ``[s0, s0 + n)`` in order. Every padding mode and negative pads (crops) are maps
of this form, so one forward and one backward kernel serve them all.

Forward, per output row: the interior by a vectorised copy, the few border columns
through cmap. Backward (the exact adjoint), per plane: each input row that an interior
output row copies gets that row's interior and zeros elsewhere, then the gradients of its
border columns; then the border output rows are added into their source rows. Each plane
belongs to one thread and is summed in a fixed order: deterministic for any thread count.
(The plane loops are in _pad_planes.h.)
"""
from cython cimport floating
from cython.parallel cimport prange

cdef extern from "_multiversion.h":
    int fc_have_avx512() noexcept nogil

cdef extern from "_pad_planes.h":
    void fc_pad_plane_f(const float* x, Py_ssize_t W, float* out, Py_ssize_t OH, Py_ssize_t OW,
                        const Py_ssize_t* rmap, const Py_ssize_t* cmap, Py_ssize_t co0,
                        Py_ssize_t cs0, Py_ssize_t cn, float value, int use_avx512) noexcept nogil
    void fc_pad_plane_d(const double* x, Py_ssize_t W, double* out, Py_ssize_t OH,
                        Py_ssize_t OW, const Py_ssize_t* rmap, const Py_ssize_t* cmap,
                        Py_ssize_t co0, Py_ssize_t cs0, Py_ssize_t cn, double value,
                        int use_avx512) noexcept nogil
    void fc_pad_plane_backward_f(const float* go, Py_ssize_t OH, Py_ssize_t OW, float* gi,
                                 Py_ssize_t H, Py_ssize_t W, const Py_ssize_t* rmap,
                                 Py_ssize_t ro0, Py_ssize_t rs0, Py_ssize_t rn,
                                 const Py_ssize_t* cmap, Py_ssize_t co0, Py_ssize_t cs0,
                                 Py_ssize_t cn, int copies, int use_avx512) noexcept nogil
    void fc_pad_plane_backward_d(const double* go, Py_ssize_t OH, Py_ssize_t OW, double* gi,
                                 Py_ssize_t H, Py_ssize_t W, const Py_ssize_t* rmap,
                                 Py_ssize_t ro0, Py_ssize_t rs0, Py_ssize_t rn,
                                 const Py_ssize_t* cmap, Py_ssize_t co0, Py_ssize_t cs0,
                                 Py_ssize_t cn, int copies, int use_avx512) noexcept nogil

# The AVX-512 row loops run where the CPU has AVX-512 (asked once, at import).
AVX512_AVAILABLE = bool(fc_have_avx512())
cdef int _use_avx512 = AVX512_AVAILABLE


def use_avx512(enabled=None):
    """Query or switch the AVX-512 row loops (where available); returns the previous
    setting. For tests and benchmarks of the portable loops on an AVX-512 machine."""
    global _use_avx512
    previous = bool(_use_avx512)
    if enabled is not None:
        _use_avx512 = bool(enabled) and AVX512_AVAILABLE
    return previous

# Below this many elements moved a parallel region costs more than it saves.
cdef Py_ssize_t PARALLEL_MIN = 65536


cdef inline int _threads(Py_ssize_t n_planes, Py_ssize_t plane_size, int n_threads) noexcept nogil:
    if n_planes * plane_size < PARALLEL_MIN:
        return 1
    return <int>min(<Py_ssize_t>n_threads, n_planes)


def pad_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                const Py_ssize_t[::1] rmap, const Py_ssize_t[::1] cmap,
                Py_ssize_t co0, Py_ssize_t cs0, Py_ssize_t cn, double value, int n_threads):
    """out (NC, OH, OW) <- x (NC, H, W) padded: ``out[p, oh, ow] = x[p, rmap[oh], cmap[ow]]``,
    or ``value`` where either map is -1.

    Columns ``[co0, co0 + cn)`` are the interior (copying x columns ``[cs0, cs0 + cn)``).
    The caller handles empty inputs and outputs (nothing is written for them here).
    """
    cdef Py_ssize_t NC = out.shape[0], OH = out.shape[1], OW = out.shape[2]
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t p
    if NC == 0 or OH == 0 or OW == 0 or H == 0 or W == 0:
        return
    cdef const floating* x0 = &x[0, 0, 0]
    cdef floating* out0 = &out[0, 0, 0]
    cdef const Py_ssize_t* rm = &rmap[0]
    cdef const Py_ssize_t* cm = &cmap[0]
    with nogil:
        for p in prange(NC, schedule="static", num_threads=_threads(NC, H * W + OH * OW, n_threads)):
            if floating is float:
                fc_pad_plane_f(x0 + p * H * W, W, out0 + p * OH * OW, OH, OW, rm, cm, co0, cs0,
                               cn, <float>value, _use_avx512)
            else:
                fc_pad_plane_d(x0 + p * H * W, W, out0 + p * OH * OW, OH, OW, rm, cm, co0, cs0,
                               cn, value, _use_avx512)


def pad_backward(const floating[:, :, ::1] grad_output, floating[:, :, ::1] grad_input,
                 const Py_ssize_t[::1] rmap, Py_ssize_t ro0, Py_ssize_t rs0, Py_ssize_t rn,
                 const Py_ssize_t[::1] cmap, Py_ssize_t co0, Py_ssize_t cs0, Py_ssize_t cn,
                 bint copies, int n_threads):
    """grad_input (NC, H, W) <- the adjoint of :func:`pad_forward` applied to grad_output
    (NC, OH, OW): each output's gradient added to the input it copies.

    grad_input may be uninitialised (every element is written); the caller zeroes it
    instead when grad_output is empty. Rows ``[ro0, ro0 + rn)`` of the output are the row
    interior (copying input rows ``[rs0, rs0 + rn)``), likewise the columns; ``rmap`` and
    ``cmap`` as in :func:`pad_forward`. ``copies``: whether any border output copies an
    input (every mode but "constant"); without, the border gradients are skipped unread.
    """
    cdef Py_ssize_t NC = grad_input.shape[0], H = grad_input.shape[1], W = grad_input.shape[2]
    cdef Py_ssize_t OH = grad_output.shape[1], OW = grad_output.shape[2]
    cdef Py_ssize_t p
    if NC == 0 or H == 0 or W == 0 or OH == 0 or OW == 0:
        return
    cdef floating* gi0 = &grad_input[0, 0, 0]
    cdef const floating* go0 = &grad_output[0, 0, 0]
    cdef const Py_ssize_t* rm = &rmap[0]
    cdef const Py_ssize_t* cm = &cmap[0]
    with nogil:
        for p in prange(NC, schedule="static", num_threads=_threads(NC, H * W + OH * OW, n_threads)):
            if floating is float:
                fc_pad_plane_backward_f(go0 + p * OH * OW, OH, OW, gi0 + p * H * W, H, W, rm,
                                        ro0, rs0, rn, cm, co0, cs0, cn, copies,
                                        _use_avx512)
            else:
                fc_pad_plane_backward_d(go0 + p * OH * OW, OH, OW, gi0 + p * H * W, H, W, rm,
                                        ro0, rs0, rn, cm, co0, cs0, cn, copies,
                                        _use_avx512)
