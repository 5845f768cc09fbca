"""Executor of compiled inference plans (:mod:`fastconv.inference`).

A plan is a table of steps (one row of ``Py_ssize_t`` each, columns below) over a table
of buffer addresses ("slots"; slot 0 is the input of the current call). :meth:`Executor.run`
walks the whole table in C, without returning to Python between layers, except for the
steps the plan leaves to Python (``K_PY``: layers without a kernel here, and algorithms
such as Winograd that run through ``fastconv.functional``).

Kernels: the direct convolution tiles of ``_conv_avx512.h`` / ``_conv_blocked.h`` (the
same register tiles ``_direct`` runs; the headers' functions are static, so this module
has its own copies) with an epilogue applied to each task's output while it is still in
cache: the (folded) bias is already in the accumulators; a residual add and ReLU follow.
Fully connected layers: the dot-form AVX-512 blocks of ``_gemm_avx512.h`` (float32), a
one-row kernel for batch 1 (``_plan.h``), else BLAS; bias and ReLU again in the epilogue.
Pooling: ``_pool_planes.h`` and ``_adaptive_planes.h``.

Each step carries its own thread count (chosen by the planner by timing the step with one
thread and with all: at batch 1 an OpenMP fork/join can cost more than a small layer); a
step with one thread runs without entering a parallel region. Every output element is
written by one task, so results do not depend on the thread count or on which thread
runs a task (tasks are handed out dynamically; scratch is per thread). The planner validates
everything: these functions trust the tables.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.stdint cimport int64_t
from libc.string cimport memcpy
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release, PyBUF_ANY_CONTIGUOUS,
                            PyBUF_WRITABLE)

from ._common cimport gemm_rm
from ._gemm_avx2 cimport fc_sgemm_axpy_block_avx2

cdef extern from "_conv_avx512.h":
    void fc_conv_tile_f(int tile, Py_ssize_t cb, const float* xpad, Py_ssize_t C,
                        Py_ssize_t Hp, Py_ssize_t Wp, const float* wpack, const float* bias,
                        Py_ssize_t cout, float* out, Py_ssize_t OH, Py_ssize_t OW,
                        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t ocs, Py_ssize_t ors,
                        Py_ssize_t ops) noexcept nogil
    void fc_conv_tile_d(int tile, Py_ssize_t cb, const double* xpad, Py_ssize_t C,
                        Py_ssize_t Hp, Py_ssize_t Wp, const double* wpack, const double* bias,
                        Py_ssize_t cout, double* out, Py_ssize_t OH, Py_ssize_t OW,
                        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t ocs, Py_ssize_t ors,
                        Py_ssize_t ops) noexcept nogil

cdef extern from "_gemm_avx512.h":
    void fc_sgemm_dot_block(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float* a,
                            Py_ssize_t lda, const float* b, Py_ssize_t ldb, const float* bias,
                            float* c, Py_ssize_t ldc, Py_ssize_t i0, Py_ssize_t j0) noexcept nogil
    void fc_sgemm_axpy_block(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float* a,
                             Py_ssize_t ars, Py_ssize_t aks, const float* b, Py_ssize_t ldb,
                             float* c, Py_ssize_t ldc, int accumulate, Py_ssize_t i0,
                             Py_ssize_t j0) noexcept nogil

cdef extern from "_pool_planes.h":
    void fc_max_pool_plane_f(const float* x, Py_ssize_t H, Py_ssize_t W, float* out,
                             int64_t* idx, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh,
                             Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                             Py_ssize_t pw) noexcept nogil
    void fc_max_pool_plane_d(const double* x, Py_ssize_t H, Py_ssize_t W, double* out,
                             int64_t* idx, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh,
                             Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                             Py_ssize_t pw) noexcept nogil

cdef extern from "_adaptive_planes.h":
    void fc_adaptive_avg_f(const float* x, Py_ssize_t n_planes, Py_ssize_t H, Py_ssize_t W,
                           float* out, Py_ssize_t OH, Py_ssize_t OW) noexcept nogil
    void fc_adaptive_avg_d(const double* x, Py_ssize_t n_planes, Py_ssize_t H, Py_ssize_t W,
                           double* out, Py_ssize_t OH, Py_ssize_t OW) noexcept nogil
    void fc_adaptive_max_f(const float* x, Py_ssize_t n_planes, Py_ssize_t H, Py_ssize_t W,
                           float* out, int64_t* idx, Py_ssize_t OH, Py_ssize_t OW) noexcept nogil
    void fc_adaptive_max_d(const double* x, Py_ssize_t n_planes, Py_ssize_t H, Py_ssize_t W,
                           double* out, int64_t* idx, Py_ssize_t OH, Py_ssize_t OW) noexcept nogil

from ._winograd cimport (
    fc_wino_input_f, fc_wino_input_d, fc_wino_output_f, fc_wino_output_d, fc_wino_scatter_f,
    fc_wino_scatter_d, fc_wino_input_avx512_f, fc_wino_scatter_avx512_f, fc_wino_input_avx2_f,
    fc_wino_scatter_avx2_f)

cdef extern from "_plan.h":
    void fc_plan_dot_row_f(Py_ssize_t N, Py_ssize_t K, const float* a, const float* b,
                           Py_ssize_t ldb, const float* bias, float* c, Py_ssize_t j0) noexcept nogil
    void fc_plan_dot_row_avx2_f(Py_ssize_t N, Py_ssize_t K, const float* a, const float* b,
                                Py_ssize_t ldb, const float* bias, float* c,
                                Py_ssize_t j0) noexcept nogil
    void fc_plan_dot_block2x6_avx2_f(Py_ssize_t N, Py_ssize_t M, Py_ssize_t K, const float* x,
                                     const float* w, const float* bias, float* out,
                                     Py_ssize_t i0, Py_ssize_t j0) noexcept nogil
    void fc_plan_dot_block4x3_avx2_f(Py_ssize_t N, Py_ssize_t M, Py_ssize_t K, const float* x,
                                     const float* w, const float* bias, float* out,
                                     Py_ssize_t i0, Py_ssize_t j0) noexcept nogil
    void fc_plan_conv_pixels_f(const float* xpad, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                               const float* wpack, const float* bias, Py_ssize_t cout, float* out,
                               Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh, Py_ssize_t kw,
                               Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw,
                               Py_ssize_t ocs, Py_ssize_t ors, Py_ssize_t ops, int relu) noexcept nogil
    void fc_plan_max_pool_2x2_f(const float* x, Py_ssize_t W, float* out, Py_ssize_t OH,
                                Py_ssize_t OW) noexcept nogil
    void fc_plan_conv_pixels_pool_f(const float* xpad, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                                    const float* wpack, const float* bias, Py_ssize_t cout,
                                    float* out, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh,
                                    Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh,
                                    Py_ssize_t dw, Py_ssize_t ocs, Py_ssize_t ors, Py_ssize_t ops,
                                    int relu) noexcept nogil
    int FC_AVX512_PIXEL_TILE
    int FC_AVX2_TILE_BASE
    int FC_AVX2_PIXEL_TILE
    # _conv_avx2.h: the AVX2 pixel tile with its epilogue (ReLU; 2x2 max pooling when
    # pool), and 2x2 / stride 2 max pooling without indices
    void fc_conv_avx2_pixels_run(const float* xpad, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                                 const float* wpack, const float* bias, Py_ssize_t cout,
                                 float* out, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh,
                                 Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh,
                                 Py_ssize_t dw, Py_ssize_t ocs, Py_ssize_t ors, Py_ssize_t ops,
                                 int relu, int pool) noexcept nogil
    void fc_max_pool_2x2_avx2_f(const float* x, Py_ssize_t W, float* out, Py_ssize_t OH,
                                Py_ssize_t OW) noexcept nogil
    void fc_plan_epilogue_f(float* o, const float* r, Py_ssize_t n, int relu) noexcept nogil
    void fc_plan_epilogue_d(double* o, const double* r, Py_ssize_t n, int relu) noexcept nogil
    void fc_plan_add_f(const float* a, const float* b, float* out, Py_ssize_t n, int relu) noexcept nogil
    void fc_plan_add_d(const double* a, const double* b, double* out, Py_ssize_t n, int relu) noexcept nogil
    void fc_plan_affine_f(const float* x, float* out, Py_ssize_t n, float s, float t, int relu) noexcept nogil
    void fc_plan_affine_d(const double* x, double* out, Py_ssize_t n, double s, double t, int relu) noexcept nogil


# -- the step table ----------------------------------------------------------------------
# Step kinds.
cdef enum:
    K_CONV = 1, K_LINEAR, K_MAXPOOL, K_AVGPOOL, K_ADAPTIVE_AVG, K_ADAPTIVE_MAX, K_RELU, K_ADD
    K_AFFINE, K_COPY, K_PY, K_WINOGRAD

# Columns every step has; the kind's own start at A (A + i below).
cdef enum:
    C_KIND, C_DOUBLE, C_THREADS, C_IN, C_OUT, C_RES, C_RELU, C_TASKS, A, N_COLUMNS = 40

# Kind-specific columns (offsets from A).
cdef enum:
    # K_CONV
    CV_W, CV_B, CV_XPAD, CV_XPAD_LEN, CV_N, CV_CIN, CV_H, CV_W_IN, CV_COUT, CV_GROUPS,
    CV_TILE, CV_CB, CV_HP, CV_WP, CV_KH, CV_KW, CV_SH, CV_SW, CV_PT, CV_PL, CV_DH, CV_DW,
    CV_OH, CV_OW, CV_WGL, CV_ROWS, CV_CHUNKS, CV_DIRECT, CV_POOL
cdef enum:
    # K_LINEAR: W (M, K), bias (M,) or 0; AVX: the AVX-512 float32 blocks, else BLAS rows
    LN_W = 0, LN_B, LN_N, LN_K, LN_M, LN_AVX, LN_ROWS
cdef enum:
    # pooling over NC planes H x W -> OH x OW; PL_IDX scratch: (threads, OH*OW) for max
    # pooling, (threads, NC*OH*OW) for adaptive max; PL_PER planes per task (adaptive)
    PL_IDX = 0, PL_NC, PL_H, PL_W, PL_OH, PL_OW, PL_KH, PL_KW, PL_SH, PL_SW, PL_PH, PL_PW,
    PL_CIP, PL_PER
cdef enum:
    # K_RELU / K_ADD: EL_SIZE elements, EL_PER per task
    EL_SIZE = 0, EL_PER
cdef enum:
    # K_AFFINE: scale, shift (C,); N*C planes of S
    AF_S = 0, AF_T, AF_N, AF_C, AF_PLANE
cdef enum:
    # K_COPY: OUTER runs of SRC elements to offset OFF of runs of DST elements
    CP_OUTER = 0, CP_SRC, CP_DST, CP_OFF, CP_PER
cdef enum:
    # K_PY: index into the executor's list of callables
    PY_INDEX = 0
cdef enum:
    # K_WINOGRAD: U (16, C_out, C_in) transformed weights, bias, per-thread scratch
    # (threads, SLEN), chunks of CHUNK images; AVX: the AVX-512 input transform / scatter;
    # AXPY: the products by _gemm_avx512.h's blocks (float32, AVX-512), else BLAS
    WG_U = 0, WG_B, WG_SCRATCH, WG_SLEN, WG_N, WG_C, WG_H, WG_W, WG_COUT, WG_OH, WG_OW,
    WG_PT, WG_PL, WG_CHUNK, WG_AVX, WG_AXPY

#: Column layout, for the planner (fastconv/inference.py).
KINDS = dict(conv=K_CONV, linear=K_LINEAR, maxpool=K_MAXPOOL, avgpool=K_AVGPOOL,
             adaptive_avg=K_ADAPTIVE_AVG, adaptive_max=K_ADAPTIVE_MAX, relu=K_RELU, add=K_ADD,
             affine=K_AFFINE, copy=K_COPY, py=K_PY, winograd=K_WINOGRAD)
COMMON = dict(kind=C_KIND, double=C_DOUBLE, threads=C_THREADS, input=C_IN, output=C_OUT,
              residual=C_RES, relu=C_RELU, tasks=C_TASKS)
N_COLS = N_COLUMNS
ARG0 = A
FIELDS = dict(
    conv=("w", "b", "xpad", "xpad_len", "n", "cin", "h", "w_in", "cout", "groups", "tile", "cb",
          "hp", "wp", "kh", "kw", "sh", "sw", "pt", "pl", "dh", "dw", "oh", "ow", "wgl", "rows",
          "chunks", "direct", "pool"),
    linear=("w", "b", "n", "k", "m", "avx", "rows"),
    pool=("idx", "nc", "h", "w", "oh", "ow", "kh", "kw", "sh", "sw", "ph", "pw", "cip", "per"),
    elementwise=("size", "per"),
    affine=("s", "t", "n", "c", "plane"),
    copy=("outer", "src", "dst", "off", "per"),
    py=("index",),
    winograd=("u", "b", "scratch", "slen", "n", "c", "h", "w", "cout", "oh", "ow", "pt", "pl",
              "chunk", "avx", "axpy"),
)
assert len(FIELDS["conv"]) == CV_POOL + 1 and A + CV_POOL < N_COLUMNS


cdef inline void pad_rows(const floating* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                          floating* xp, Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t pt,
                          Py_ssize_t pl, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """Rows [r0, r1) of xp (C, Hp, Wp) <- x (C, H, W) shifted by (pt, pl). Only the cells
    that hold x are written: the planner allocates every padded buffer zeroed and nothing
    else writes to it, so the border stays zero (at batch 1 the border memsets were a third
    of the copy's libc calls, ~2 us of a 20 us convolution)."""
    cdef Py_ssize_t c, r, ih
    cdef Py_ssize_t src_col = max(0, -pl), dst_col = max(0, pl)
    cdef Py_ssize_t ncols = max(0, min(W - src_col, Wp - dst_col))
    cdef Py_ssize_t rfirst = max(r0, pt), rlast = min(r1, H + pt)  # the rows that hold x
    if ncols == 0:
        return
    for c in range(C):
        for r in range(rfirst, rlast):
            ih = r - pt
            memcpy(xp + (c * Hp + r) * Wp + dst_col, x + (c * H + ih) * W + src_col,
                   ncols * sizeof(floating))


cdef inline void conv_task(const Py_ssize_t* p, const Py_ssize_t* slots, Py_ssize_t t,
                           int tid, floating* tag) noexcept nogil:
    """Task t of a convolution: one (image, group, chunk of output rows), then its epilogue."""
    cdef const Py_ssize_t* q = p + A
    cdef Py_ssize_t groups = q[CV_GROUPS], chunks = q[CV_CHUNKS], rows = q[CV_ROWS]
    cdef Py_ssize_t n = t // (groups * chunks), rem = t % (groups * chunks)
    cdef Py_ssize_t g = rem // chunks, r0 = (rem % chunks) * rows
    cdef Py_ssize_t OH = q[CV_OH], OW = q[CV_OW], r1 = min(OH, r0 + rows)
    cdef Py_ssize_t cin = q[CV_CIN], H = q[CV_H], W = q[CV_W_IN], cout = q[CV_COUT]
    cdef Py_ssize_t cig = cin // groups, cog = cout // groups
    cdef Py_ssize_t hp = q[CV_HP], wp = q[CV_WP], sh = q[CV_SH], kh = q[CV_KH], dh = q[CV_DH]
    cdef Py_ssize_t plane = OH * OW, co
    cdef const floating* x = (<const floating*>slots[p[C_IN]]) + (n * cin + g * cig) * H * W
    cdef floating* xp = (<floating*>q[CV_XPAD]) + tid * q[CV_XPAD_LEN]
    cdef floating* out = (<floating*>slots[p[C_OUT]]) + (n * cout + g * cog) * plane
    cdef const floating* w = (<const floating*>q[CV_W]) + g * q[CV_WGL]
    cdef const floating* b = (<const floating*>q[CV_B]) + g * cog
    cdef const floating* res = NULL
    if r1 <= r0:
        return
    if q[CV_DIRECT]:
        # no padding and every row and column the tiles read lies inside x: read x itself
        xp = <floating*>x
        hp = H
        wp = W
    else:
        pad_rows(x, cig, H, W, xp, hp, wp, q[CV_PT], q[CV_PL], r0 * sh,
                 min(hp, (r1 - 1) * sh + (kh - 1) * dh + 1))
    cdef int relu = <int>p[C_RELU]
    if floating is float:
        if q[CV_POOL]:  # the pixel tile + ReLU + 2x2 max pooling: out is the pooled planes
            if q[CV_TILE] == FC_AVX512_PIXEL_TILE:
                fc_plan_conv_pixels_pool_f(xp + r0 * sh * wp, cig, hp, wp, w, b, cog,
                                           (<float*>slots[p[C_OUT]]) + (n * cout + g * cog) * (plane // 4)
                                           + (r0 // 2) * (OW // 2), r1 - r0, OW, kh, q[CV_KW], sh,
                                           q[CV_SW], dh, q[CV_DW], plane // 4, OW // 2, 1, relu)
            else:  # the AVX2 pixel tile
                fc_conv_avx2_pixels_run(xp + r0 * sh * wp, cig, hp, wp, w, b, cog,
                                        (<float*>slots[p[C_OUT]]) + (n * cout + g * cog) * (plane // 4)
                                        + (r0 // 2) * (OW // 2), r1 - r0, OW, kh, q[CV_KW], sh,
                                        q[CV_SW], dh, q[CV_DW], plane // 4, OW // 2, 1, relu, 1)
            return
        if q[CV_TILE] == FC_AVX2_TILE_BASE + FC_AVX2_PIXEL_TILE:
            # the AVX2 pixel tile with the ReLU in registers (a residual needs the add first)
            fc_conv_avx2_pixels_run(xp + r0 * sh * wp, cig, hp, wp, w, b, cog, out + r0 * OW,
                                    r1 - r0, OW, kh, q[CV_KW], sh, q[CV_SW], dh, q[CV_DW],
                                    plane, OW, 1, relu and p[C_RES] < 0, 0)
            if p[C_RES] < 0:
                return
        elif q[CV_TILE] == FC_AVX512_PIXEL_TILE:
            # the pixel tile with the ReLU in registers (a residual needs the add first)
            fc_plan_conv_pixels_f(xp + r0 * sh * wp, cig, hp, wp, w, b, cog, out + r0 * OW,
                                  r1 - r0, OW, kh, q[CV_KW], sh, q[CV_SW], dh, q[CV_DW],
                                  plane, OW, 1, relu and p[C_RES] < 0)
            if p[C_RES] < 0:
                return
        else:
            fc_conv_tile_f(<int>q[CV_TILE], q[CV_CB], xp + r0 * sh * wp, cig, hp, wp, w, b, cog,
                           out + r0 * OW, r1 - r0, OW, kh, q[CV_KW], sh, q[CV_SW], dh, q[CV_DW],
                           plane, OW, 1)
    else:
        fc_conv_tile_d(<int>q[CV_TILE], q[CV_CB], xp + r0 * sh * wp, cig, hp, wp, w, b, cog,
                       out + r0 * OW, r1 - r0, OW, kh, q[CV_KW], sh, q[CV_SW], dh, q[CV_DW],
                       plane, OW, 1)
    if p[C_RES] >= 0 or p[C_RELU]:
        if p[C_RES] >= 0:
            res = (<const floating*>slots[p[C_RES]]) + (n * cout + g * cog) * plane
        for co in range(cog):
            if floating is float:
                fc_plan_epilogue_f(out + co * plane + r0 * OW,
                                   res + co * plane + r0 * OW if res != NULL else NULL,
                                   (r1 - r0) * OW, <int>p[C_RELU])
            else:
                fc_plan_epilogue_d(out + co * plane + r0 * OW,
                                   res + co * plane + r0 * OW if res != NULL else NULL,
                                   (r1 - r0) * OW, <int>p[C_RELU])


cdef inline void winograd_task(const Py_ssize_t* p, const Py_ssize_t* slots, Py_ssize_t k,
                               int tid, floating* tag) noexcept nogil:
    """Chunk k of a 3x3 stride-1 convolution by Winograd F(2x2, 3x3), as
    ``_direct.conv2d_winograd_forward`` does it, then the epilogue on the chunk's planes."""
    cdef const Py_ssize_t* q = p + A
    cdef Py_ssize_t N = q[WG_N], C = q[WG_C], H = q[WG_H], W = q[WG_W], Co = q[WG_COUT]
    cdef Py_ssize_t OH = q[WG_OH], OW = q[WG_OW], pt = q[WG_PT], pl = q[WG_PL]
    cdef Py_ssize_t chunk = q[WG_CHUNK]
    cdef Py_ssize_t th = (OH + 1) // 2, tw = (OW + 1) // 2, ti = th * tw
    cdef Py_ssize_t hp = 2 * th + 2, wp = 2 * tw + 2, tc = chunk * ti
    cdef Py_ssize_t n0 = k * chunk, nc = min(chunk, N - n0), nt = nc * ti, i, xi, co
    # the transforms' vector versions (float32): WG_AVX 1 AVX-512, 2 AVX2
    cdef bint avx_in = q[WG_AVX] == 1 and tw <= 15
    cdef bint avx_out = q[WG_AVX] == 1 and tw <= 8
    cdef bint avx2 = q[WG_AVX] == 2
    cdef const floating* x = <const floating*>slots[p[C_IN]]
    cdef floating* out = <floating*>slots[p[C_OUT]]
    cdef const floating* u = <const floating*>q[WG_U]
    cdef const floating* bias = <const floating*>q[WG_B]
    cdef const floating* res = NULL
    cdef floating* xp = (<floating*>q[WG_SCRATCH]) + tid * q[WG_SLEN]
    cdef floating* e = xp + C * hp * wp
    cdef floating* V = e + 8 * (th + 1) * tw
    cdef floating* M = V + 16 * C * tc
    cdef floating* y = M + 16 * Co * tc
    cdef Py_ssize_t plane = OH * OW
    if nc <= 0:
        return
    for i in range(nc):
        if floating is float:
            if avx_in:
                fc_wino_input_avx512_f(x + (n0 + i) * C * H * W, C, H, W, pt, pl, th, tw, V, nt,
                                       C * nt, i * ti, e)
                continue
        pad_rows(x + (n0 + i) * C * H * W, C, H, W, xp, hp, wp, pt, pl, 0, hp)
        if floating is float:
            if avx2:
                fc_wino_input_avx2_f(xp, C, hp, wp, th, tw, V, nt, C * nt, i * ti, e)
            else:
                fc_wino_input_f(xp, C, hp, wp, th, tw, V, nt, C * nt, i * ti, e)
        else:
            fc_wino_input_d(xp, C, hp, wp, th, tw, V, nt, C * nt, i * ti, e)
    cdef Py_ssize_t bi, bj
    for xi in range(16):
        if floating is float:
            if q[WG_AXPY] == 2:  # the same by the AVX2 blocks of _gemm_avx2.h
                for bi in range(0, Co, 6):
                    for bj in range(0, nt, 16):
                        fc_sgemm_axpy_block_avx2(Co, nt, C, u + xi * Co * C, C, 1,
                                                 V + xi * C * nt, nt, M + xi * Co * nt, nt, bi, bj)
                continue
            if q[WG_AXPY]:
                # the 16 small products (C_out x tiles x C_in) by the AVX-512 axpy blocks of
                # _gemm_avx512.h: no BLAS call, packing or threading overhead per product
                for bi in range(0, Co, 8):
                    for bj in range(0, nt, 32):
                        fc_sgemm_axpy_block(Co, nt, C, u + xi * Co * C, C, 1, V + xi * C * nt, nt,
                                            M + xi * Co * nt, nt, 0, bi, bj)
                continue
        gemm_rm(78, 78, <int>Co, <int>nt, <int>C, <floating>1, u + xi * Co * C, <int>C,
                V + xi * C * nt, <int>nt, <floating>0, M + xi * Co * nt, <int>nt)
    for co in range(Co):
        if floating is float:
            fc_wino_output_f(M + co * nt, Co * nt, nt, bias[co], y)
            for i in range(nc):
                if avx_out:
                    fc_wino_scatter_avx512_f(y, nt, i * ti, th, tw, out + ((n0 + i) * Co + co) * plane,
                                             OH, OW, OW)
                elif avx2:
                    fc_wino_scatter_avx2_f(y, nt, i * ti, th, tw, out + ((n0 + i) * Co + co) * plane,
                                           OH, OW, OW)
                else:
                    fc_wino_scatter_f(y, nt, i * ti, th, tw, out + ((n0 + i) * Co + co) * plane,
                                      OH, OW, OW)
        else:
            fc_wino_output_d(M + co * nt, Co * nt, nt, bias[co], y)
            for i in range(nc):
                fc_wino_scatter_d(y, nt, i * ti, th, tw, out + ((n0 + i) * Co + co) * plane, OH,
                                  OW, OW)
    if p[C_RES] >= 0 or p[C_RELU]:
        if p[C_RES] >= 0:
            res = (<const floating*>slots[p[C_RES]]) + n0 * Co * plane
        if floating is float:
            fc_plan_epilogue_f(out + n0 * Co * plane, res, nc * Co * plane, <int>p[C_RELU])
        else:
            fc_plan_epilogue_d(out + n0 * Co * plane, res, nc * Co * plane, <int>p[C_RELU])


def linear_blocks(Py_ssize_t n, Py_ssize_t m, int avx):
    """The (rows, columns) of x @ W^T that one task of a fully connected layer computes
    with the vector kernels (``avx`` 1: AVX-512, 2: AVX2), x (n, k), W (m, k): what
    linear_task decodes a task index into."""
    if n == 1:
        return 1, 8
    if avx == 2:
        return (2, 6) if n == 2 else (4, 3)
    return 4, 4


cdef inline void linear_task(const Py_ssize_t* p, const Py_ssize_t* slots, Py_ssize_t t,
                             floating* tag) noexcept nogil:
    """Task t of a fully connected layer out (N, M) = x (N, K) @ W^T + b, then ReLU."""
    cdef const Py_ssize_t* q = p + A
    cdef Py_ssize_t N = q[LN_N], K = q[LN_K], M = q[LN_M], i0, i1, j0, i, j, jj, n_jb
    cdef const floating* x = <const floating*>slots[p[C_IN]]
    cdef floating* out = <floating*>slots[p[C_OUT]]
    cdef const floating* w = <const floating*>q[LN_W]
    cdef const floating* b = <const floating*>q[LN_B]
    cdef floating v
    if floating is float:
        if q[LN_AVX]:  # 1: the AVX-512 kernels; 2: AVX2 (task blocks: linear_blocks)
            if N == 1:  # one row: blocks of 8 columns
                j0 = t * 8
                if q[LN_AVX] == 2:
                    fc_plan_dot_row_avx2_f(M, K, x, w, K, b, out, j0)
                else:
                    fc_plan_dot_row_f(M, K, x, w, K, b, out, j0)
                i0, i1, j = 0, 1, min(M, j0 + 8)
            elif q[LN_AVX] == 2 and N == 2:
                n_jb = (M + 5) // 6
                i0, j0 = (t // n_jb) * 2, (t % n_jb) * 6
                fc_plan_dot_block2x6_avx2_f(N, M, K, x, w, b, out, i0, j0)
                i1, j = min(N, i0 + 2), min(M, j0 + 6)
            elif q[LN_AVX] == 2:
                n_jb = (M + 2) // 3
                i0, j0 = (t // n_jb) * 4, (t % n_jb) * 3
                fc_plan_dot_block4x3_avx2_f(N, M, K, x, w, b, out, i0, j0)
                i1, j = min(N, i0 + 4), min(M, j0 + 3)
            else:
                n_jb = (M + 3) // 4
                i0 = (t // n_jb) * 4
                j0 = (t % n_jb) * 4
                fc_sgemm_dot_block(N, M, K, x, K, w, K, b, out, M, i0, j0)
                i1, j = min(N, i0 + 4), min(M, j0 + 4)
            if p[C_RELU]:
                for i in range(i0, i1):
                    for jj in range(j0, j):
                        v = out[i * M + jj]
                        out[i * M + jj] = 0 if v <= 0 else v
            return
    i0 = t * q[LN_ROWS]
    i1 = min(N, i0 + q[LN_ROWS])
    if i1 <= i0:
        return
    gemm_rm(78, 84, <int>(i1 - i0), <int>M, <int>K, <floating>1, x + i0 * K, <int>K, w, <int>K,
            <floating>0, out + i0 * M, <int>M)
    for i in range(i0, i1):
        for j in range(M):
            v = out[i * M + j] + (b[j] if b != NULL else 0)
            out[i * M + j] = (0 if v <= 0 else v) if p[C_RELU] else v


cdef inline void pool_task(const Py_ssize_t* p, const Py_ssize_t* slots, Py_ssize_t t,
                           int tid, floating* tag) noexcept nogil:
    cdef const Py_ssize_t* q = p + A
    cdef Py_ssize_t H = q[PL_H], W = q[PL_W], OH = q[PL_OH], OW = q[PL_OW], NC = q[PL_NC]
    cdef Py_ssize_t kh = q[PL_KH], kw = q[PL_KW], sh = q[PL_SH], sw = q[PL_SW]
    cdef Py_ssize_t ph = q[PL_PH], pw = q[PL_PW], p0, nplanes
    cdef Py_ssize_t oh, ow, ih, iw, h0, h1, w0, w1, eh, ew, count
    cdef const floating* x = <const floating*>slots[p[C_IN]]
    cdef floating* out = <floating*>slots[p[C_OUT]]
    cdef int64_t* idx = <int64_t*>q[PL_IDX]
    cdef floating acc
    cdef int kind = <int>p[C_KIND]
    if kind == K_MAXPOOL:
        if floating is float:
            # (set by the planner: 2x2 / stride 2, whole windows; 1 AVX-512, 2 AVX2)
            if q[PL_CIP] == 1:
                fc_plan_max_pool_2x2_f(x + t * H * W, W, out + t * OH * OW, OH, OW)
                return
            if q[PL_CIP] == 2:
                fc_max_pool_2x2_avx2_f(x + t * H * W, W, out + t * OH * OW, OH, OW)
                return
            fc_max_pool_plane_f(x + t * H * W, H, W, out + t * OH * OW, idx + tid * OH * OW,
                                OH, OW, kh, kw, sh, sw, ph, pw)
        else:
            fc_max_pool_plane_d(x + t * H * W, H, W, out + t * OH * OW, idx + tid * OH * OW,
                                OH, OW, kh, kw, sh, sw, ph, pw)
    elif kind == K_AVGPOOL:  # as _pooling.avg_pool2d_forward
        x = x + t * H * W
        out = out + t * OH * OW
        for oh in range(OH):
            h0 = oh * sh - ph
            h1 = min(h0 + kh, H + ph)
            eh = h1 - h0
            h0 = max(h0, 0)
            h1 = min(h1, H)
            for ow in range(OW):
                w0 = ow * sw - pw
                w1 = min(w0 + kw, W + pw)
                ew = w1 - w0
                w0 = max(w0, 0)
                w1 = min(w1, W)
                acc = 0
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        acc = acc + x[ih * W + iw]
                count = eh * ew if q[PL_CIP] else (h1 - h0) * (w1 - w0)
                out[oh * OW + ow] = acc / count
    else:
        p0 = t * q[PL_PER]
        nplanes = min(q[PL_PER], NC - p0)
        if nplanes <= 0:
            return
        if kind == K_ADAPTIVE_AVG:
            if floating is float:
                fc_adaptive_avg_f(x + p0 * H * W, nplanes, H, W, out + p0 * OH * OW, OH, OW)
            else:
                fc_adaptive_avg_d(x + p0 * H * W, nplanes, H, W, out + p0 * OH * OW, OH, OW)
        else:
            if floating is float:
                fc_adaptive_max_f(x + p0 * H * W, nplanes, H, W, out + p0 * OH * OW,
                                  idx + (tid * NC + p0) * OH * OW, OH, OW)
            else:
                fc_adaptive_max_d(x + p0 * H * W, nplanes, H, W, out + p0 * OH * OW,
                                  idx + (tid * NC + p0) * OH * OW, OH, OW)


cdef inline void elementwise_task(const Py_ssize_t* p, const Py_ssize_t* slots, Py_ssize_t t,
                                  floating* tag) noexcept nogil:
    cdef const Py_ssize_t* q = p + A
    cdef int kind = <int>p[C_KIND]
    cdef const floating* x = <const floating*>slots[p[C_IN]]
    cdef floating* out = <floating*>slots[p[C_OUT]]
    cdef Py_ssize_t i0, n, o, c
    if kind == K_AFFINE:  # plane t = (image, channel)
        c = t % q[AF_C]
        if floating is float:
            fc_plan_affine_f(x + t * q[AF_PLANE], out + t * q[AF_PLANE], q[AF_PLANE],
                             (<const float*>q[AF_S])[c], (<const float*>q[AF_T])[c],
                             <int>p[C_RELU])
        else:
            fc_plan_affine_d(x + t * q[AF_PLANE], out + t * q[AF_PLANE], q[AF_PLANE],
                             (<const double*>q[AF_S])[c], (<const double*>q[AF_T])[c],
                             <int>p[C_RELU])
        return
    if kind == K_COPY:  # runs t*per .. of the outer index
        for o in range(t * q[CP_PER], min(q[CP_OUTER], (t + 1) * q[CP_PER])):
            memcpy(out + o * q[CP_DST] + q[CP_OFF], x + o * q[CP_SRC],
                   q[CP_SRC] * sizeof(floating))
        return
    i0 = t * q[EL_PER]
    n = min(q[EL_PER], q[EL_SIZE] - i0)
    if n <= 0:
        return
    if kind == K_ADD:
        if floating is float:
            fc_plan_add_f(x + i0, (<const float*>slots[p[C_RES]]) + i0, out + i0, n, <int>p[C_RELU])
        else:
            fc_plan_add_d(x + i0, (<const double*>slots[p[C_RES]]) + i0, out + i0, n, <int>p[C_RELU])
    else:  # K_RELU (out may be x)
        if x != out:
            memcpy(out + i0, x + i0, n * sizeof(floating))
        if floating is float:
            fc_plan_epilogue_f(out + i0, NULL, n, 1)
        else:
            fc_plan_epilogue_d(out + i0, NULL, n, 1)


cdef inline void run_task(const Py_ssize_t* p, const Py_ssize_t* slots, Py_ssize_t t,
                          int tid, floating* tag) noexcept nogil:
    cdef int kind = <int>p[C_KIND]
    if kind == K_CONV:
        conv_task(p, slots, t, tid, tag)
    elif kind == K_WINOGRAD:
        winograd_task(p, slots, t, tid, tag)
    elif kind == K_LINEAR:
        linear_task(p, slots, t, tag)
    elif kind <= K_ADAPTIVE_MAX:
        pool_task(p, slots, t, tid, tag)
    else:
        elementwise_task(p, slots, t, tag)


cdef void run_step(const Py_ssize_t* p, const Py_ssize_t* slots, int n_threads,
                   int tid0) noexcept nogil:
    """All tasks of one step: serially with one thread (no parallel region; scratch row
    tid0), else handed out dynamically to n_threads (a thread the OS delays does not hold
    the others' tasks up; each task writes its own outputs, computed the same way by any
    thread, so results do not depend on the thread count or the schedule)."""
    cdef Py_ssize_t t, T = p[C_TASKS]
    cdef bint dbl = p[C_DOUBLE] != 0
    cdef int tid
    if n_threads <= 1 or T <= 1:
        for t in range(T):
            if dbl:
                run_task(p, slots, t, tid0, <double*>NULL)
            else:
                run_task(p, slots, t, tid0, <float*>NULL)
        return
    with parallel(num_threads=n_threads):
        tid = threadid()
        for t in prange(T, schedule="dynamic"):
            if dbl:
                run_task(p, slots, t, tid, <double*>NULL)
            else:
                run_task(p, slots, t, tid, <float*>NULL)


cdef extern from "<time.h>" nogil:
    int CLOCK_THREAD_CPUTIME_ID


cdef double now_ns(bint cpu) noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_THREAD_CPUTIME_ID if cpu else CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1e9 + ts.tv_nsec


cdef class Executor:
    """Runs a step table. ``steps``: (n_steps, N_COLS) intp; ``slots``: (replicas, n_slots)
    intp buffer addresses (slot 0: the input, set by the runs; one row of buffers per
    thread for :meth:`run_chunked`, else one row); ``py_steps``: callables of the ``K_PY``
    steps. The owner keeps every buffer the tables point to alive."""

    cdef Py_ssize_t[:, ::1] steps
    cdef Py_ssize_t[:, ::1] slots
    cdef list py_steps

    def __init__(self, Py_ssize_t[:, ::1] steps, Py_ssize_t[:, ::1] slots, list py_steps):
        assert steps.shape[1] == N_COLUMNS and slots.shape[0] >= 1
        self.steps = steps
        self.slots = slots
        self.py_steps = py_steps

    cdef void _run_range(self, Py_ssize_t i0, Py_ssize_t i1) except *:
        cdef Py_ssize_t i
        cdef const Py_ssize_t* p
        for i in range(i0, i1):
            p = &self.steps[i, 0]
            if p[C_KIND] == K_PY:
                self.py_steps[p[A + PY_INDEX]]()
            else:
                with nogil:
                    run_step(p, &self.slots[0, 0], <int>p[C_THREADS], 0)

    def run(self, object x):
        """Run every step on ``x``, a contiguous array of the plan's input shape and dtype
        (the caller checks that)."""
        cdef Py_buffer view
        PyObject_GetBuffer(x, &view, PyBUF_ANY_CONTIGUOUS)
        try:
            self.slots[0, 0] = <Py_ssize_t>view.buf
            self._run_range(0, self.steps.shape[0])
        finally:
            PyBuffer_Release(&view)

    def run_chunked(self, object x, object out, Py_ssize_t n_chunks, Py_ssize_t in_bytes,
                    Py_ssize_t out_bytes, Py_ssize_t out_slot, int n_threads):
        """The whole network chunk by chunk: chunk k of x (``in_bytes`` from byte
        k*in_bytes, one plan input) goes through every step on the buffers of the thread
        that takes it (row ``threadid()`` of the slots), and its output (slot ``out_slot``)
        is copied to byte k*out_bytes of ``out``. One parallel region for the whole call;
        chunks are handed out dynamically (a thread the OS delays does not hold the others
        up), each computed whole by one thread the same way, so results do not depend on
        the thread count. Only for tables without Python steps."""
        cdef Py_buffer xv, ov
        cdef Py_ssize_t n_steps = self.steps.shape[0], ns = self.slots.shape[1], k, i
        cdef const Py_ssize_t* steps0 = &self.steps[0, 0]
        cdef Py_ssize_t* slots0 = &self.slots[0, 0]
        cdef Py_ssize_t* s
        cdef char* xb
        cdef char* ob
        cdef int tid
        assert n_threads <= self.slots.shape[0]
        for i in range(n_steps):
            assert steps0[i * N_COLUMNS + C_KIND] != K_PY
        PyObject_GetBuffer(x, &xv, PyBUF_ANY_CONTIGUOUS)
        try:
            PyObject_GetBuffer(out, &ov, PyBUF_ANY_CONTIGUOUS | PyBUF_WRITABLE)
            try:
                xb = <char*>xv.buf
                ob = <char*>ov.buf
                with nogil:
                    if n_threads <= 1:
                        for k in range(n_chunks):
                            slots0[0] = <Py_ssize_t>(xb + k * in_bytes)
                            for i in range(n_steps):
                                run_step(steps0 + i * N_COLUMNS, slots0, 1, 0)
                            memcpy(ob + k * out_bytes, <char*>slots0[out_slot], out_bytes)
                    else:
                        with parallel(num_threads=n_threads):
                            tid = threadid()
                            for k in prange(n_chunks, schedule="dynamic"):
                                s = slots0 + tid * ns
                                s[0] = <Py_ssize_t>(xb + k * in_bytes)
                                for i in range(n_steps):
                                    run_step(steps0 + i * N_COLUMNS, s, 1, tid)
                                memcpy(ob + k * out_bytes, <char*>s[out_slot], out_bytes)
            finally:
                PyBuffer_Release(&ov)
        finally:
            PyBuffer_Release(&xv)

    def run_steps(self, Py_ssize_t input_address, Py_ssize_t start, Py_ssize_t stop):
        """Run steps [start, stop) (for tests and for timing)."""
        self.slots[0, 0] = input_address
        self._run_range(start, stop)

    def time_step(self, Py_ssize_t i, int n_threads, int reps, bint cpu=False):
        """Nanoseconds of ``reps`` runs of C step i with ``n_threads`` threads (its inputs
        must hold data: run the steps before it first): the median of wall times, or with
        ``cpu`` the minimum of this thread's CPU times (for one thread on a busy machine,
        where a process sharing the core slows some runs down)."""
        cdef const Py_ssize_t* p = &self.steps[i, 0]
        cdef double t0
        cdef list times = []
        cdef int r
        assert p[C_KIND] != K_PY
        for r in range(reps):
            with nogil:
                t0 = now_ns(cpu)
                run_step(p, &self.slots[0, 0], n_threads, 0)
                t0 = now_ns(cpu) - t0
            times.append(t0)
        times.sort()
        return times[0] if cpu else times[len(times) // 2]
