"""Batch normalisation, forward (batch or running statistics) and backward.

The input is viewed as (N, C, S): S = H*W for images, L for sequences, 1 for (N, C).
Work is split into tasks, each a block of channels (one channel when S > 1) times a
chunk of the rows (images); ``chunks`` per channel block is 1 unless there are fewer
channel blocks than threads. With one chunk a task owns its channels outright and runs
the statistics pass and the normalising pass back to back, while the channel is still in
its core's cache; with several, a pass of partial sums, a serial sum of the chunks in a
fixed order, then a normalising pass. Either way every number depends only on the tasks,
never on which thread ran them: bitwise the same run to run, and the same across thread
counts whenever the chunking is (at least as many channel blocks as threads).

Statistics are float64 for float32 input too, from sums shifted by the channel's first
value (accurate for large means; see _norm_channels.h for the loops). The caller
(``fastconv.functional.norm``) validates every argument, guarantees a non-empty input
with more than one value per channel in training, and sizes ``work`` to
(2 * chunks + 4, C). Absent weight, bias or running statistics are passed as empty
arrays.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt


cdef extern from "_multiversion.h":
    int fc_have_avx512() noexcept nogil


cdef extern from "_norm_channels.h":
    void fc_bn_sums_f(const float* x, Py_ssize_t nn, Py_ssize_t nc, Py_ssize_t S,
                      Py_ssize_t row, const double* K, double* s, double* q,
                      int use_avx512) noexcept nogil
    void fc_bn_sums_d(const double* x, Py_ssize_t nn, Py_ssize_t nc, Py_ssize_t S,
                      Py_ssize_t row, const double* K, double* s, double* q) noexcept nogil
    void fc_bn_grad_sums_f(const float* g, const float* x, Py_ssize_t nn, Py_ssize_t nc,
                           Py_ssize_t S, Py_ssize_t row, const double* mean, double* sg,
                           double* sgd, int use_avx512) noexcept nogil
    void fc_bn_grad_sums_d(const double* g, const double* x, Py_ssize_t nn, Py_ssize_t nc,
                           Py_ssize_t S, Py_ssize_t row, const double* mean, double* sg,
                           double* sgd) noexcept nogil
    void fc_bn_apply_f(const float* x, float* y, Py_ssize_t nn, Py_ssize_t nc, Py_ssize_t S,
                       Py_ssize_t row, const double* center, const double* scale,
                       const double* shift, int use_avx512) noexcept nogil
    void fc_bn_apply_d(const double* x, double* y, Py_ssize_t nn, Py_ssize_t nc, Py_ssize_t S,
                       Py_ssize_t row, const double* center, const double* scale,
                       const double* shift) noexcept nogil
    void fc_bn_grad_apply_f(const float* g, const float* x, float* gi, Py_ssize_t nn,
                            Py_ssize_t nc, Py_ssize_t S, Py_ssize_t row, const double* A,
                            const double* center, const double* B, const double* Cc,
                            int use_avx512) noexcept nogil
    void fc_bn_grad_apply_d(const double* g, const double* x, double* gi, Py_ssize_t nn,
                            Py_ssize_t nc, Py_ssize_t S, Py_ssize_t row, const double* A,
                            const double* center, const double* B,
                            const double* Cc) noexcept nogil


# The AVX-512 loops (float32, S > 1) run where the CPU has AVX-512 (asked once, at import).
AVX512_AVAILABLE = bool(fc_have_avx512())
cdef int _use_avx512 = AVX512_AVAILABLE


def use_avx512(enabled=None):
    """Query or switch the AVX-512 loops (where available); returns the previous setting.
    For tests and benchmarks of the portable loops on an AVX-512 machine."""
    global _use_avx512
    previous = bool(_use_avx512)
    if enabled is not None:
        _use_avx512 = bool(enabled) and AVX512_AVAILABLE
    return previous


cdef struct Plan:
    Py_ssize_t N, C, S, CB, P
    double* w      # the work table, (2P + 4, C)


cdef struct Block:
    Py_ssize_t c0, nc, n0, nn, p, offset


cdef inline Block block_of(const Plan* pl, Py_ssize_t t) noexcept nogil:
    """Channels [c0, c0+nc) and rows [n0, n0+nn) of task t (chunk p of its channel block)."""
    cdef Block b
    b.p = t % pl.P
    b.c0 = (t // pl.P) * pl.CB
    b.nc = min(pl.CB, pl.C - b.c0)
    b.n0 = pl.N * b.p // pl.P
    b.nn = pl.N * (b.p + 1) // pl.P - b.n0
    b.offset = b.n0 * pl.C * pl.S + b.c0 * pl.S
    return b


cdef inline double* row_of(const Plan* pl, Py_ssize_t r, Py_ssize_t c0) noexcept nogil:
    return pl.w + r * pl.C + c0


cdef inline Py_ssize_t n_tasks(const Plan* pl) noexcept nogil:
    return (pl.C + pl.CB - 1) // pl.CB * pl.P


cdef Plan make_plan(Py_ssize_t N, Py_ssize_t C, Py_ssize_t S, Py_ssize_t CB, Py_ssize_t P,
                    double[:, ::1] work) noexcept:
    cdef Plan pl
    pl.N, pl.C, pl.S, pl.CB, pl.P = N, C, S, max(CB, 1), max(P, 1)
    pl.w = &work[0, 0]
    return pl


cdef void sum_chunks(const Plan* pl) noexcept nogil:
    """Rows 0 and P of the work table <- the sums over the chunks, in chunk order."""
    cdef Py_ssize_t c, p
    for p in range(1, pl.P):
        for c in range(pl.C):
            pl.w[c] += pl.w[p * pl.C + c]
            pl.w[pl.P * pl.C + c] += pl.w[(pl.P + p) * pl.C + c]


# -- forward --------------------------------------------------------------------------

cdef void fwd_sums(const Plan* pl, const floating* x, Block b) noexcept nogil:
    cdef double* K = row_of(pl, 2 * pl.P, b.c0)
    cdef double* s = row_of(pl, b.p, b.c0)
    cdef double* q = row_of(pl, pl.P + b.p, b.c0)
    if floating is float:
        fc_bn_sums_f(x + b.offset, b.nn, b.nc, pl.S, pl.C * pl.S, K, s, q, _use_avx512)
    else:
        fc_bn_sums_d(x + b.offset, b.nn, b.nc, pl.S, pl.C * pl.S, K, s, q)


cdef void fwd_apply(const Plan* pl, const floating* x, floating* y, Block b) noexcept nogil:
    cdef Py_ssize_t r = 2 * pl.P
    if floating is float:
        fc_bn_apply_f(x + b.offset, y + b.offset, b.nn, b.nc, pl.S, pl.C * pl.S,
                      row_of(pl, r + 1, b.c0), row_of(pl, r + 2, b.c0), row_of(pl, r + 3, b.c0),
                      _use_avx512)
    else:
        fc_bn_apply_d(x + b.offset, y + b.offset, b.nn, b.nc, pl.S, pl.C * pl.S,
                      row_of(pl, r + 1, b.c0), row_of(pl, r + 2, b.c0), row_of(pl, r + 3, b.c0))


cdef void set_coefficients(const Plan* pl, const floating* weight, const floating* bias,
                           Py_ssize_t c, double mean, double invstd) noexcept nogil:
    """y = (x - center) * scale + shift for channel c, with center = mean rounded to the
    input type: x - center is then nearly exact for x near the mean, and the remainder of
    the mean goes into the shift (computed in float64)."""
    cdef Py_ssize_t r = 2 * pl.P
    cdef double w = weight[c] if weight != NULL else 1.0
    cdef double b = bias[c] if bias != NULL else 0.0
    cdef double center = <floating>mean
    cdef double scale = w * invstd
    pl.w[(r + 1) * pl.C + c] = center
    pl.w[(r + 2) * pl.C + c] = scale
    pl.w[(r + 3) * pl.C + c] = b + scale * (center - mean)


cdef void fwd_finish(const Plan* pl, const floating* weight, const floating* bias,
                     floating* running_mean, floating* running_var, double momentum,
                     double eps, double* save_mean, double* save_invstd, Py_ssize_t c0,
                     Py_ssize_t nc) noexcept nogil:
    """Batch statistics of channels [c0, c0+nc) from the summed rows 0 and P; running
    statistics updated with the unbiased variance; the normalising coefficients."""
    cdef Py_ssize_t c
    cdef double M = <double>(pl.N * pl.S)
    cdef double m, var, mean, invstd
    for c in range(c0, c0 + nc):
        m = pl.w[c] / M
        mean = pl.w[2 * pl.P * pl.C + c] + m
        var = pl.w[pl.P * pl.C + c] / M - m * m
        if var < 0:  # rounding; a NaN stays NaN
            var = 0
        invstd = 1.0 / sqrt(var + eps)
        save_mean[c] = mean
        save_invstd[c] = invstd
        if running_mean != NULL:
            running_mean[c] = <floating>((1.0 - momentum) * running_mean[c] + momentum * mean)
            running_var[c] = <floating>((1.0 - momentum) * running_var[c]
                                        + momentum * var * (M / (M - 1.0)))
        set_coefficients(pl, weight, bias, c, mean, invstd)


def batch_norm_train_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                             const floating[::1] weight, const floating[::1] bias,
                             floating[::1] running_mean, floating[::1] running_var,
                             double momentum, double eps, double[::1] save_mean,
                             double[::1] save_invstd, double[:, ::1] work,
                             Py_ssize_t channel_block, Py_ssize_t chunks, int n_threads):
    """out <- batch-normalised x (N, C, S) with the batch's mean and biased variance.

    save_mean, save_invstd (C,) <- the batch mean and 1/sqrt(var + eps). When running_mean
    and running_var are non-empty they are updated in place:
    running = (1 - momentum) * running + momentum * batch (unbiased variance).
    """
    cdef Plan pl = make_plan(x.shape[0], x.shape[1], x.shape[2], channel_block, chunks, work)
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* yp = &out[0, 0, 0]
    cdef const floating* wp = &weight[0] if weight.shape[0] else NULL
    cdef const floating* bp = &bias[0] if bias.shape[0] else NULL
    cdef floating* rm = &running_mean[0] if running_mean.shape[0] else NULL
    cdef floating* rv = &running_var[0] if running_var.shape[0] else NULL
    cdef double* sm = &save_mean[0]
    cdef double* si = &save_invstd[0]
    cdef Py_ssize_t t, c, T = n_tasks(&pl)
    cdef Block b
    with nogil:
        for c in range(pl.C):  # the shift of each channel's sums: its first value
            pl.w[2 * pl.P * pl.C + c] = xp[c * pl.S]
        if pl.P == 1:
            for t in prange(T, schedule="static", num_threads=n_threads):
                b = block_of(&pl, t)
                fwd_sums(&pl, xp, b)
                fwd_finish(&pl, wp, bp, rm, rv, momentum, eps, sm, si, b.c0, b.nc)
                fwd_apply(&pl, xp, yp, b)
        else:
            for t in prange(T, schedule="static", num_threads=n_threads):
                fwd_sums(&pl, xp, block_of(&pl, t))
            sum_chunks(&pl)
            fwd_finish(&pl, wp, bp, rm, rv, momentum, eps, sm, si, 0, pl.C)
            for t in prange(T, schedule="static", num_threads=n_threads):
                fwd_apply(&pl, xp, yp, block_of(&pl, t))


def batch_norm_eval_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                            const floating[::1] weight, const floating[::1] bias,
                            const floating[::1] running_mean, const floating[::1] running_var,
                            double eps, double[::1] save_mean, double[::1] save_invstd,
                            double[:, ::1] work, Py_ssize_t channel_block, Py_ssize_t chunks,
                            int n_threads):
    """out <- x (N, C, S) normalised with the running statistics (one pass);
    save_mean, save_invstd (C,) <- running_mean and 1/sqrt(running_var + eps)."""
    cdef Plan pl = make_plan(x.shape[0], x.shape[1], x.shape[2], channel_block, chunks, work)
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* yp = &out[0, 0, 0]
    cdef const floating* wp = &weight[0] if weight.shape[0] else NULL
    cdef const floating* bp = &bias[0] if bias.shape[0] else NULL
    cdef Py_ssize_t t, c, T = n_tasks(&pl)
    with nogil:
        for c in range(pl.C):
            save_mean[c] = running_mean[c]
            save_invstd[c] = 1.0 / sqrt(<double>running_var[c] + eps)
            set_coefficients(&pl, wp, bp, c, save_mean[c], save_invstd[c])
        for t in prange(T, schedule="static", num_threads=n_threads):
            fwd_apply(&pl, xp, yp, block_of(&pl, t))


# -- backward -------------------------------------------------------------------------

cdef void bwd_sums(const Plan* pl, const floating* g, const floating* x, const double* mean,
                   Block b) noexcept nogil:
    cdef double* sg = row_of(pl, b.p, b.c0)
    cdef double* sgd = row_of(pl, pl.P + b.p, b.c0)
    if floating is float:
        fc_bn_grad_sums_f(g + b.offset, x + b.offset, b.nn, b.nc, pl.S, pl.C * pl.S,
                          mean + b.c0, sg, sgd, _use_avx512)
    else:
        fc_bn_grad_sums_d(g + b.offset, x + b.offset, b.nn, b.nc, pl.S, pl.C * pl.S,
                          mean + b.c0, sg, sgd)


cdef void bwd_finish(const Plan* pl, const floating* weight, const double* mean,
                     const double* invstd, bint training, bint have_sums, double* sum_g,
                     double* sum_gxhat, Py_ssize_t c0, Py_ssize_t nc) noexcept nogil:
    """Per-channel constants of grad_input = A*g + B*(x - center) + Cc (rows 2P..2P+3),
    and the sums of g and g*xhat (the bias and weight gradients) from rows 0 and P into
    sum_g and sum_gxhat unless they are NULL.

    Training: grad_input = w*invstd * (g - mean(g) - xhat * mean(g*xhat)), with
    xhat = (x - mean)*invstd, so A = w*invstd, B = -A*invstd^2*mean(g*(x - mean)) and
    Cc = B*(center - mean) - A*mean(g). Evaluation: A = w*invstd, B = Cc = 0.
    """
    cdef Py_ssize_t c, r = 2 * pl.P
    cdef double M = <double>(pl.N * pl.S)
    cdef double w, A, B, center, istd, sg = 0, sgd = 0
    for c in range(c0, c0 + nc):
        w = weight[c] if weight != NULL else 1.0
        istd = invstd[c]
        A = w * istd
        if have_sums:
            sg = pl.w[c]
            sgd = pl.w[pl.P * pl.C + c]
            if sum_g != NULL:
                sum_g[c] = sg
                sum_gxhat[c] = istd * sgd
        if training:
            center = <floating>mean[c]
            B = -A * istd * istd * sgd / M
            pl.w[(r + 1) * pl.C + c] = center
            pl.w[(r + 2) * pl.C + c] = B
            pl.w[(r + 3) * pl.C + c] = B * (center - mean[c]) - A * sg / M
        else:
            pl.w[(r + 1) * pl.C + c] = 0.0
            pl.w[(r + 3) * pl.C + c] = 0.0
        pl.w[r * pl.C + c] = A


cdef void bwd_apply(const Plan* pl, const floating* g, const floating* x, floating* gi,
                    bint training, Block b) noexcept nogil:
    cdef Py_ssize_t r = 2 * pl.P
    if training:
        if floating is float:
            fc_bn_grad_apply_f(g + b.offset, x + b.offset, gi + b.offset, b.nn, b.nc, pl.S,
                               pl.C * pl.S, row_of(pl, r, b.c0), row_of(pl, r + 1, b.c0),
                               row_of(pl, r + 2, b.c0), row_of(pl, r + 3, b.c0), _use_avx512)
        else:
            fc_bn_grad_apply_d(g + b.offset, x + b.offset, gi + b.offset, b.nn, b.nc, pl.S,
                               pl.C * pl.S, row_of(pl, r, b.c0), row_of(pl, r + 1, b.c0),
                               row_of(pl, r + 2, b.c0), row_of(pl, r + 3, b.c0))
    else:  # gi = (g - 0) * A + 0
        if floating is float:
            fc_bn_apply_f(g + b.offset, gi + b.offset, b.nn, b.nc, pl.S, pl.C * pl.S,
                          row_of(pl, r + 1, b.c0), row_of(pl, r, b.c0), row_of(pl, r + 3, b.c0),
                          _use_avx512)
        else:
            fc_bn_apply_d(g + b.offset, gi + b.offset, b.nn, b.nc, pl.S, pl.C * pl.S,
                          row_of(pl, r + 1, b.c0), row_of(pl, r, b.c0), row_of(pl, r + 3, b.c0))


def batch_norm_backward(const floating[:, :, ::1] grad_output, const floating[:, :, ::1] x,
                        const floating[::1] weight, const double[::1] mean,
                        const double[::1] invstd, bint training,
                        floating[:, :, ::1] grad_input, bint need_input, bint need_sums,
                        double[::1] sum_g, double[::1] sum_gxhat, double[:, ::1] work,
                        Py_ssize_t channel_block, Py_ssize_t chunks, int n_threads):
    """Gradients of batch normalisation of x (N, C, S) for grad_output of the same shape.

    need_input: grad_input <- the input gradient (through the batch statistics when
    training, else the affine one). need_sums: sum_g, sum_gxhat (C,) <- the sums of
    grad_output and of grad_output * (x - mean) * invstd (the bias and weight gradients).
    mean, invstd: the statistics the forward pass normalised with.
    """
    cdef Plan pl = make_plan(x.shape[0], x.shape[1], x.shape[2], channel_block, chunks, work)
    cdef const floating* gp = &grad_output[0, 0, 0]
    cdef const floating* xp = &x[0, 0, 0]
    cdef floating* gip = &grad_input[0, 0, 0] if need_input else NULL
    cdef const floating* wp = &weight[0] if weight.shape[0] else NULL
    cdef const double* mp = &mean[0]
    cdef const double* ip = &invstd[0]
    cdef double* sgp = &sum_g[0] if need_sums else NULL
    cdef double* sxp = &sum_gxhat[0] if need_sums else NULL
    cdef bint sums = need_sums or (training and need_input)
    cdef Py_ssize_t t, T = n_tasks(&pl)
    cdef Block b
    if not sums and not need_input:
        return
    with nogil:
        if sums and pl.P == 1:
            for t in prange(T, schedule="static", num_threads=n_threads):
                b = block_of(&pl, t)
                bwd_sums(&pl, gp, xp, mp, b)
                bwd_finish(&pl, wp, mp, ip, training, True, sgp, sxp, b.c0, b.nc)
                if need_input:
                    bwd_apply(&pl, gp, xp, gip, training, b)
        else:
            if sums:
                for t in prange(T, schedule="static", num_threads=n_threads):
                    bwd_sums(&pl, gp, xp, mp, block_of(&pl, t))
                sum_chunks(&pl)
            bwd_finish(&pl, wp, mp, ip, training, sums, sgp, sxp, 0, pl.C)
            if need_input:
                for t in prange(T, schedule="static", num_threads=n_threads):
                    bwd_apply(&pl, gp, xp, gip, training, block_of(&pl, t))
