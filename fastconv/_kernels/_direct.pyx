"""Direct (no column buffer) convolution: forward, grad_input and grad_weight.

The forward pass and grad_weight are the register-blocked kernels of ``_conv_blocked.h``
(the caller reuses the forward kernel for grad_input at stride 1, as a convolution with
flipped, transposed weights). grad_input for other strides uses row-wise loops over the
range where the input index is inside the image, computed once, so padding costs no
branches; each of its tasks owns one input plane, so no two threads write the same place.
Callers (``fastconv.functional``) validate everything; these trust their arguments.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.string cimport memcpy, memset

from ._common cimport valid_lo, valid_hi

cdef extern from "_conv_blocked.h":
    int fc_blocked_owb(Py_ssize_t cb, int is_double) noexcept nogil
    void fc_conv_blocked_f16(const float* xpad, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                             const float* wpack, const float* bias, Py_ssize_t cout, float* out,
                             Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh, Py_ssize_t kw,
                             Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw) noexcept nogil
    void fc_conv_blocked_f8(const float* xpad, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                            const float* wpack, const float* bias, Py_ssize_t cout, float* out,
                            Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh, Py_ssize_t kw,
                            Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw) noexcept nogil
    void fc_conv_blocked_d8(const double* xpad, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                            const double* wpack, const double* bias, Py_ssize_t cout, double* out,
                            Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh, Py_ssize_t kw,
                            Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw) noexcept nogil
    void fc_conv_blocked_d4(const double* xpad, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                            const double* wpack, const double* bias, Py_ssize_t cout, double* out,
                            Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh, Py_ssize_t kw,
                            Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw) noexcept nogil

    int FC_WGRAD_MAX_JB
    void fc_wgrad_blocked_f(Py_ssize_t cb, const float* xpad, Py_ssize_t C, Py_ssize_t Hp,
                            Py_ssize_t Wp, const float* gyt, Py_ssize_t n_blocks, float* gw,
                            Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh, Py_ssize_t kw,
                            Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw) noexcept nogil
    void fc_wgrad_blocked_d(Py_ssize_t cb, const double* xpad, Py_ssize_t C, Py_ssize_t Hp,
                            Py_ssize_t Wp, const double* gyt, Py_ssize_t n_blocks, double* gw,
                            Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh, Py_ssize_t kw,
                            Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw) noexcept nogil

#: Kernel columns per grad_weight register block: the padded input needs
#: (WGRAD_MAX_JB - 1) * dilation zeroed elements of slack after it.
WGRAD_MAX_JB = FC_WGRAD_MAX_JB


def blocked_channel_block(bint is_double, Py_ssize_t cout_per_group):
    """Output channels per register block (CB) used for this dtype and group width."""
    if is_double:
        return 8 if cout_per_group > 4 else 4
    return 16 if cout_per_group > 8 else 8


def blocked_pixel_block(bint is_double, Py_ssize_t cb):
    """Output pixels per register block (OWB): the padded input must cover whole blocks."""
    return fc_blocked_owb(cb, is_double)


cdef void pad_image(const floating* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                    floating* xp, Py_ssize_t Hp, Py_ssize_t Wp,
                    Py_ssize_t pt, Py_ssize_t pl) noexcept nogil:
    """xp (C, Hp, Wp) <- x (C, H, W) shifted by (pt, pl), zeros elsewhere, clipped to xp."""
    cdef Py_ssize_t c, ih, r, ncols = min(W, Wp - pl)
    memset(xp, 0, C * Hp * Wp * sizeof(floating))
    if ncols <= 0:
        return
    for c in range(C):
        for ih in range(H):
            r = ih + pt
            if r >= Hp:
                break
            memcpy(xp + (c * Hp + r) * Wp + pl, x + (c * H + ih) * W, ncols * sizeof(floating))


def conv2d_direct_forward(const floating[:, :, :, ::1] x, const floating[:, ::1] wpack,
                          const floating[::1] bias, floating[:, :, :, ::1] out,
                          floating[:, ::1] xpad_scratch, Py_ssize_t cb, Py_ssize_t Hp, Py_ssize_t Wp,
                          Py_ssize_t kh, Py_ssize_t kw,
                          Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                          Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups, int n_threads):
    """out (N, C_out, OH, OW) = conv(x (N, C_in, H, W)) + bias with the register-blocked kernel.

    wpack: (groups, n_cblocks*C_in/g*kh*kw*cb), weights repacked by the caller as
    [group][channel block][C_in/g][kh][kw][cb] (zero rows pad the last block).
    xpad_scratch: (n_threads, C_in/g*Hp*Wp), one padded image per thread.
    Parallel over (image, group) pairs; every output element is written by one thread.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t C_out = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t cig = C // groups, cog = C_out // groups
    cdef Py_ssize_t t, n, g
    cdef floating* xp
    with nogil, parallel(num_threads=n_threads):
        xp = &xpad_scratch[threadid(), 0]
        for t in prange(N * groups, schedule="static"):
            n = t // groups
            g = t % groups
            pad_image(&x[n, g * cig, 0, 0], cig, H, W, xp, Hp, Wp, pt, pl)
            if floating is float:
                if cb == 16:
                    fc_conv_blocked_f16(xp, cig, Hp, Wp, &wpack[g, 0], &bias[g * cog], cog,
                                        &out[n, g * cog, 0, 0], OH, OW, kh, kw, sh, sw, dh, dw)
                else:
                    fc_conv_blocked_f8(xp, cig, Hp, Wp, &wpack[g, 0], &bias[g * cog], cog,
                                       &out[n, g * cog, 0, 0], OH, OW, kh, kw, sh, sw, dh, dw)
            else:
                if cb == 8:
                    fc_conv_blocked_d8(xp, cig, Hp, Wp, &wpack[g, 0], &bias[g * cog], cog,
                                       &out[n, g * cog, 0, 0], OH, OW, kh, kw, sh, sw, dh, dw)
                else:
                    fc_conv_blocked_d4(xp, cig, Hp, Wp, &wpack[g, 0], &bias[g * cog], cog,
                                       &out[n, g * cog, 0, 0], OH, OW, kh, kw, sh, sw, dh, dw)


def conv2d_direct_grad_input(const floating[:, :, :, ::1] grad_output,
                             const floating[:, :, :, ::1] weight,
                             floating[:, :, :, ::1] grad_input,
                             Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                             Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups, int n_threads):
    """grad_input (N, C_in, H, W) = conv_transpose(grad_output, weight); must be zeroed.

    Parallel over (image, input channel) planes: each plane gathers from its group's
    output channels, so writes never collide.
    """
    cdef Py_ssize_t N = grad_input.shape[0], C_in = grad_input.shape[1]
    cdef Py_ssize_t H = grad_input.shape[2], W = grad_input.shape[3]
    cdef Py_ssize_t C_out = weight.shape[0], cig = weight.shape[1]
    cdef Py_ssize_t kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t OH = grad_output.shape[2], OW = grad_output.shape[3]
    cdef Py_ssize_t cog = C_out // groups
    cdef Py_ssize_t t, n, ci, c, co, k, i, j, oh, ow, ih, lo, hi, oh_lo, oh_hi, off_w
    cdef floating wv
    cdef floating* dxrow
    cdef const floating* gyrow
    with nogil:
        for t in prange(N * C_in, schedule="static", num_threads=n_threads):
            n = t // C_in
            ci = t % C_in
            c = ci % cig
            for k in range(cog):
                co = (ci // cig) * cog + k
                for i in range(kh):
                    oh_lo = valid_lo(i * dh - ph, sh, OH)
                    oh_hi = valid_hi(i * dh - ph, sh, H, OH, oh_lo)
                    for j in range(kw):
                        wv = weight[co, c, i, j]
                        off_w = j * dw - pw
                        lo = valid_lo(off_w, sw, OW)
                        hi = valid_hi(off_w, sw, W, OW, lo)
                        for oh in range(oh_lo, oh_hi):
                            ih = oh * sh + i * dh - ph
                            dxrow = &grad_input[n, ci, ih, 0] + (off_w + lo * sw)
                            gyrow = &grad_output[n, co, oh, 0] + lo
                            if sw == 1:
                                for ow in range(hi - lo):
                                    dxrow[ow] += wv * gyrow[ow]
                            else:
                                for ow in range(hi - lo):
                                    dxrow[ow * sw] += wv * gyrow[ow]


def conv2d_direct_grad_weight_blocked(const floating[:, :, :, ::1] grad_output,
                                      const floating[:, :, :, ::1] x,
                                      floating[:, ::1] partial, floating[:, ::1] xpad_scratch,
                                      floating[:, ::1] gyt_scratch, Py_ssize_t cb,
                                      Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t kh, Py_ssize_t kw,
                                      Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                                      Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups,
                                      int n_threads):
    """Per-thread partial grad_weight, packed [group][block][C_in/g][kh][kw][cb].

    partial (n_threads, groups*n_blocks*C_in/g*kh*kw*cb) must be zeroed; the caller sums the
    rows in thread order (static schedule: the same images go to the same thread each run).
    xpad_scratch (n_threads, >= C_in/g*Hp*Wp + slack) must have its slack zeroed;
    gyt_scratch: (n_threads, OH*OW*n_blocks*cb).
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t C_out = grad_output.shape[1], OH = grad_output.shape[2]
    cdef Py_ssize_t OW = grad_output.shape[3], P = OH * OW
    cdef Py_ssize_t cig = C // groups, cog = C_out // groups
    cdef Py_ssize_t n_blocks = (cog + cb - 1) // cb, ld = n_blocks * cb
    cdef Py_ssize_t per_group = n_blocks * cig * kh * kw * cb
    cdef Py_ssize_t t, n, g, k, p
    cdef floating* xp
    cdef floating* gt
    cdef floating* part
    cdef const floating* src
    with nogil, parallel(num_threads=n_threads):
        xp = &xpad_scratch[threadid(), 0]
        gt = &gyt_scratch[threadid(), 0]
        part = &partial[threadid(), 0]
        for t in prange(N * groups, schedule="static"):
            n = t // groups
            g = t % groups
            pad_image(&x[n, g * cig, 0, 0], cig, H, W, xp, Hp, Wp, pt, pl)
            # channel-minor copy of this group's gradient; padding channels are zero
            for k in range(ld):
                if k < cog:
                    src = &grad_output[n, g * cog + k, 0, 0]
                    for p in range(P):
                        gt[p * ld + k] = src[p]
                else:
                    for p in range(P):
                        gt[p * ld + k] = 0
            if floating is float:
                fc_wgrad_blocked_f(cb, xp, cig, Hp, Wp, gt, n_blocks, part + g * per_group,
                                   OH, OW, kh, kw, sh, sw, dh, dw)
            else:
                fc_wgrad_blocked_d(cb, xp, cig, Hp, Wp, gt, n_blocks, part + g * per_group,
                                   OH, OW, kh, kw, sh, sw, dh, dw)
