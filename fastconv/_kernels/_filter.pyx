"""'valid' 2-D correlation of a stack of single planes with one kernel (fastconv.signal,
fastconv.filter2d): x (N, Hp, Wp) already extended by its boundary (correlate_valid) or
extended on the fly through row/column source maps (correlate_extended), w (kh, kw), out
(N, oh, ow). Tasks are blocks of ROWS_PER_TASK output rows of one plane, spread over the
threads by a static schedule; each output is summed by one thread in a fixed tap order, by
the same operations whichever thread or block computes it (deterministic for any thread
count). Calls with little work run on fewer threads (MIN_WORK_PER_THREAD multiply-adds a
thread), a single one without a parallel region. The loops are in _filter_planes.h.
Caller allocates (non-empty arrays), kernel fills; nothing is checked here.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc

cdef extern from "_filter_planes.h":
    int fc_filter_have_avx512() noexcept nogil
    size_t fc_filter_scratch_bytes(Py_ssize_t rows, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t W,
                                   Py_ssize_t left, Py_ssize_t ow, size_t tsize) noexcept nogil
    void fc_filter_task_f(const float* x, Py_ssize_t W, const Py_ssize_t* rmap, const Py_ssize_t* cmap,
                          Py_ssize_t left, float fill, const float* w, Py_ssize_t kh, Py_ssize_t kw,
                          float* out, Py_ssize_t ow, Py_ssize_t r0, Py_ssize_t r1, void* scratch,
                          int avx512) noexcept nogil
    void fc_filter_task_d(const double* x, Py_ssize_t W, const Py_ssize_t* rmap, const Py_ssize_t* cmap,
                          Py_ssize_t left, double fill, const double* w, Py_ssize_t kh, Py_ssize_t kw,
                          double* out, Py_ssize_t ow, Py_ssize_t r0, Py_ssize_t r1, void* scratch,
                          int avx512) noexcept nogil

cdef extern from "<stdlib.h>" nogil:
    void* aligned_alloc(size_t alignment, size_t size)

#: Whether this CPU (and build) runs the AVX-512 row blocks of ``_filter_avx512.h``.
AVX512_AVAILABLE = bool(fc_filter_have_avx512())
cdef bint _use_avx512 = AVX512_AVAILABLE

#: Output rows per task.
ROWS_PER_TASK = 32
cdef Py_ssize_t _ROWS = ROWS_PER_TASK
# Multiply-adds per thread a call needs before it takes one more thread (waking a thread
# costs more than a small call: a 32x32 3x3 call was ~15x slower on 2 threads).
cdef Py_ssize_t _min_work = 1 << 20


def min_work_per_thread(value=None):
    """Query or set the multiply-adds per thread below which a call runs on fewer threads
    (1: always all of them, for tests of the parallel path); returns the previous value."""
    global _min_work
    previous = int(_min_work)
    if value is not None:
        _min_work = max(1, int(value))
    return previous


def use_avx512(enabled=None):
    """Query or switch the AVX-512 row blocks (where available); returns the previous
    setting. For tests and benchmarks of the portable path on an AVX-512 machine."""
    global _use_avx512
    previous = bool(_use_avx512)
    if enabled is not None:
        _use_avx512 = bool(enabled) and AVX512_AVAILABLE
    return previous


cdef int _threads_for(Py_ssize_t tasks, Py_ssize_t work, int n_threads) noexcept nogil:
    cdef Py_ssize_t nt = work // _min_work
    if nt > n_threads:
        nt = n_threads
    if nt > tasks:
        nt = tasks
    return <int>nt if nt > 1 else 1


cdef inline void _one_task(Py_ssize_t t, Py_ssize_t blocks, const floating* x, Py_ssize_t plane,
                           Py_ssize_t W, const Py_ssize_t* rmap, const Py_ssize_t* cmap, Py_ssize_t left,
                           floating fill, const floating* w, Py_ssize_t kh, Py_ssize_t kw, floating* out,
                           Py_ssize_t oh, Py_ssize_t ow, void* buf, int avx) noexcept nogil:
    """Task t: output rows [r0, r1) of plane t // blocks (the same code serial and parallel)."""
    cdef Py_ssize_t n = t // blocks
    cdef Py_ssize_t r0 = (t % blocks) * _ROWS
    cdef Py_ssize_t r1 = min(r0 + _ROWS, oh)
    if floating is float:
        fc_filter_task_f(x + n * plane, W, rmap, cmap, left, fill, w, kh, kw,
                         out + n * oh * ow, ow, r0, r1, buf, avx)
    else:
        fc_filter_task_d(x + n * plane, W, rmap, cmap, left, fill, w, kh, kw,
                         out + n * oh * ow, ow, r0, r1, buf, avx)


cdef int _run_tasks(const floating* x, Py_ssize_t plane, Py_ssize_t W, const Py_ssize_t* rmap,
                     const Py_ssize_t* cmap, Py_ssize_t left, floating fill, const floating* w,
                     Py_ssize_t kh, Py_ssize_t kw, floating* out, Py_ssize_t oh, Py_ssize_t ow,
                     Py_ssize_t N, int n_threads) except -1 nogil:
    """Every task of N planes (plane: elements per input plane) on up to n_threads threads."""
    cdef Py_ssize_t blocks = (oh + _ROWS - 1) // _ROWS
    cdef Py_ssize_t tasks = N * blocks
    cdef size_t nbytes = fc_filter_scratch_bytes(_ROWS, kh, kw, W, left, ow, sizeof(floating))
    cdef int avx = _use_avx512
    cdef int nt = _threads_for(tasks, N * oh * ow * kh * kw, n_threads)
    cdef Py_ssize_t t
    cdef void* buf
    nbytes = (nbytes + 63) // 64 * 64
    if nt == 1:
        buf = aligned_alloc(64, nbytes)
        if buf == NULL:
            with gil:
                raise MemoryError("correlate: no memory for the row tables")
        for t in range(tasks):
            _one_task(t, blocks, x, plane, W, rmap, cmap, left, fill, w, kh, kw, out, oh, ow, buf, avx)
        free(buf)
        return 0
    with parallel(num_threads=nt):
        buf = aligned_alloc(64, nbytes)
        if buf == NULL:
            with gil:
                raise MemoryError("correlate: no memory for the row tables")
        for t in prange(tasks, schedule="static"):
            _one_task(t, blocks, x, plane, W, rmap, cmap, left, fill, w, kh, kw, out, oh, ow, buf, avx)
        free(buf)
    return 0


def correlate_valid(const floating[:, :, ::1] x, const floating[:, ::1] w, floating[:, :, ::1] out,
                    int n_threads):
    """'valid' correlation of planes x (N, Hp, Wp) with w (kh, kw) into out (N, Hp - kh + 1,
    Wp - kw + 1)."""
    cdef Py_ssize_t N = out.shape[0], oh = out.shape[1], ow = out.shape[2]
    cdef Py_ssize_t Hp = x.shape[1], Wp = x.shape[2]
    with nogil:
        _run_tasks(&x[0, 0, 0], Hp * Wp, Wp, NULL, NULL, 0, 0, &w[0, 0], w.shape[0], w.shape[1],
                   &out[0, 0, 0], oh, ow, N, n_threads)


def correlate_extended(const floating[:, :, ::1] x, const Py_ssize_t[::1] rmap, const Py_ssize_t[::1] cmap,
                       Py_ssize_t left, floating fill, const floating[:, ::1] w, floating[:, :, ::1] out,
                       int n_threads):
    """As correlate_valid on x (N, H, W) extended on the fly: extended row e of a plane is
    source row rmap[e] (all ``fill`` when < 0; len Hp), extended column c is source column
    c - left inside and cmap[c] at the borders (``fill`` when < 0; len Wp). Source rows are
    read in place; only the border columns are copied, into a per-thread strip (no extended
    copy of the image in memory)."""
    cdef Py_ssize_t N = out.shape[0], oh = out.shape[1], ow = out.shape[2]
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2]
    cdef const floating* xp = &x[0, 0, 0] if H > 0 and W > 0 else NULL
    with nogil:
        _run_tasks(xp, H * W, W, &rmap[0], &cmap[0], left, fill, &w[0, 0], w.shape[0], w.shape[1],
                   &out[0, 0, 0], oh, ow, N, n_threads)


# --- fused 3x3 edge gradients (fastconv.filters' sobel / prewitt / scharr): _edge_planes.h ---

cdef extern from "_edge_planes.h":
    void fc_edge_task_f(const float* x, Py_ssize_t W, const Py_ssize_t* rmap, const Py_ssize_t* cmap,
                        const float* fillrow, float fill, float s0, float s1, float factor, int which,
                        float* out, Py_ssize_t r0, Py_ssize_t r1, int avx512) noexcept nogil
    void fc_edge_task_d(const double* x, Py_ssize_t W, const Py_ssize_t* rmap, const Py_ssize_t* cmap,
                        const double* fillrow, double fill, double s0, double s1, double factor, int which,
                        double* out, Py_ssize_t r0, Py_ssize_t r1, int avx512) noexcept nogil
    void fc_edge_task_fd(const float* x, Py_ssize_t W, const Py_ssize_t* rmap, const Py_ssize_t* cmap,
                         const float* fillrow, float fill, float s0, float s1, double factor, int which,
                         double* out, Py_ssize_t r0, Py_ssize_t r1, int avx512) noexcept nogil
    void fc_edge_task_u8(const unsigned char* x, Py_ssize_t W, const Py_ssize_t* rmap, const Py_ssize_t* cmap,
                         const unsigned char* fillrow, float fill, float s0, float s1, double factor, int which,
                         double* out, Py_ssize_t r0, Py_ssize_t r1, int avx512) noexcept nogil
    void fc_edge_task_u16(const unsigned short* x, Py_ssize_t W, const Py_ssize_t* rmap, const Py_ssize_t* cmap,
                          const unsigned short* fillrow, float fill, float s0, float s1, double factor, int which,
                          double* out, Py_ssize_t r0, Py_ssize_t r1, int avx512) noexcept nogil

ctypedef fused edge_in:
    float
    double
    unsigned char
    unsigned short

ctypedef fused edge_out:
    float
    double

#: Output rows per task of gradient_planes, and the pixels a call needs per thread it takes.
EDGE_ROWS_PER_TASK = 32
cdef Py_ssize_t _EDGE_ROWS = EDGE_ROWS_PER_TASK
cdef Py_ssize_t _EDGE_MIN_PIXELS = 1 << 16


cdef inline void _edge_task(const edge_in* x, Py_ssize_t W, const Py_ssize_t* rmap, const Py_ssize_t* cmap,
                            const edge_in* fillrow, double fill, double s0, double s1, double factor,
                            int which, edge_out* out, Py_ssize_t r0, Py_ssize_t r1, int avx) noexcept nogil:
    if edge_in is float and edge_out is float:
        fc_edge_task_f(x, W, rmap, cmap, fillrow, <float>fill, <float>s0, <float>s1, <float>factor, which,
                       out, r0, r1, avx)
    elif edge_in is float and edge_out is double:
        fc_edge_task_fd(x, W, rmap, cmap, fillrow, <float>fill, <float>s0, <float>s1, factor, which,
                        out, r0, r1, avx)
    elif edge_in is double and edge_out is double:
        fc_edge_task_d(x, W, rmap, cmap, fillrow, fill, s0, s1, factor, which, out, r0, r1, avx)
    elif edge_in is "unsigned char" and edge_out is double:
        fc_edge_task_u8(x, W, rmap, cmap, fillrow, <float>fill, <float>s0, <float>s1, factor, which,
                        out, r0, r1, avx)
    elif edge_in is "unsigned short" and edge_out is double:
        fc_edge_task_u16(x, W, rmap, cmap, fillrow, <float>fill, <float>s0, <float>s1, factor, which,
                         out, r0, r1, avx)


def gradient_planes(const edge_in[:, ::1] x, const Py_ssize_t[::1] rmap, const Py_ssize_t[::1] cmap,
                    const edge_in[::1] fillrow, double fill, double s0, double s1, double factor, int which,
                    edge_out[:, ::1] out, int n_threads):
    """Fused 3x3 gradients of x (H, W) into out (H, W) (_edge_planes.h): which 0 the magnitude
    factor * sqrt(gx**2 + gy**2), 1 factor * gx (derivative along axis 0), 2 factor * gy;
    smoothing weights (s0, s1, s0). rmap (H + 2) / cmap (W + 2): source row / column of each
    extended index -1 .. n (< 0: the fill value); fillrow: W fill values of x's type. Input /
    output types: float32 -> float32 or float64, float64 -> float64, uint8 / uint16 -> float64."""
    cdef Py_ssize_t H = x.shape[0], W = x.shape[1]
    cdef Py_ssize_t tasks = (H + _EDGE_ROWS - 1) // _EDGE_ROWS
    cdef Py_ssize_t nt = H * W // _EDGE_MIN_PIXELS
    cdef int avx = _use_avx512
    cdef Py_ssize_t t, r0, r1
    if edge_in is double and edge_out is float or edge_in is "unsigned char" and edge_out is float \
            or edge_in is "unsigned short" and edge_out is float:
        raise TypeError(f"gradient_planes: no {x.base.dtype} -> float32 kernel")
    if H == 0 or W == 0:
        return
    nt = min(nt, n_threads, tasks)
    with nogil:
        if nt <= 1:
            _edge_task(&x[0, 0], W, &rmap[0], &cmap[0], &fillrow[0], fill, s0, s1, factor, which,
                       &out[0, 0], 0, H, avx)
        else:
            for t in prange(tasks, schedule="static", num_threads=nt):
                r0 = t * _EDGE_ROWS
                r1 = min(r0 + _EDGE_ROWS, H)
                _edge_task(&x[0, 0], W, &rmap[0], &cmap[0], &fillrow[0], fill, s0, s1, factor, which,
                           &out[0, 0], r0, r1, avx)
