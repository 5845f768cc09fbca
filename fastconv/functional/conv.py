"""Convolution: ``conv2d``, its backward, ``im2col`` / ``col2im``, and the algorithm choice.

Semantics follow PyTorch (``torch.nn.functional.conv2d``): NCHW layout, cross-correlation,
``weight: (C_out, C_in/groups, kH, kW)``. Inputs may be any float32/float64 ndarray layout
(they are copied to C order when needed); outputs are new C-contiguous arrays of the input
dtype. The kernels behind these functions check nothing, so everything is checked here.
"""
from __future__ import annotations

import math

import numpy as np

from .._kernels import _direct, _im2col
from typing import Any

from . import _autotune

from .._typing import DTypeLike, FloatArray, IntPair, Shape
from .._parallel import blas_single_thread, get_num_threads
from .._validation import (check_allocation, check_array, check_bool, check_choice, check_pair,
                           check_same_dtype, choice_error)
from ._geometry import ConvGeometry, _check_shape4, conv_geometry
from .pad import conv_padding, pad_backward_unchecked, pad_unchecked

ALGORITHMS = ("auto", "direct", "im2col", "winograd")

#: Per-thread budget for the im2col column buffer. The batch (and, for large images, the
#: output rows) is processed in chunks so that extra memory never exceeds
#: ``threads * IM2COL_CHUNK_BYTES`` (times two in the backward pass: columns and their
#: gradient), whatever the batch size.
IM2COL_CHUNK_BYTES = 4 * 2**20

_INT32_MAX = 2**31 - 1  # BLAS dimensions are 32-bit ints

#: choose_algorithm takes Winograd from this many (input, output) channel pairs on.
WINOGRAD_MIN_CHANNEL_PAIRS = 1024

#: Winograd tiles (2x2 outputs each) per chunk of images: the GEMMs' width. The chunk is
#: a whole number of images, fixed by the shape alone (not the thread count).
WINOGRAD_CHUNK_TILES = 192

X_DOC = "(N, C_in, H, W)"
W_DOC = "(C_out, C_in/groups, kH, kW)"


# --------------------------------------------------------------------------------------
# Algorithm choice
# --------------------------------------------------------------------------------------
def winograd_fits(g: ConvGeometry) -> bool:
    """Whether Winograd F(2x2, 3x3) takes the forward pass of ``g`` (and, the same test,
    its grad_input, a 3x3 stride-1 correlation of grad_output): 3x3 kernels, stride 1, no
    dilation, one group, BLAS-sized products."""
    return (g.kh == g.kw == 3 and g.sh == g.sw == 1 and g.dh == g.dw == 1 and g.groups == 1
            and 16 * max(g.C_in, g.C_out) * (g.OH + 1) * (g.OW + 1) <= _INT32_MAX)


def _winograd_tiles_waste(g):
    """Whether, with the AVX2 tiles in use, Winograd's 2x2 output tiles would pad the
    output area by more than a quarter (odd sides of a few pixels; see
    :func:`table_algorithm`)."""
    padded = (g.OH + g.OH % 2) * (g.OW + g.OW % 2)
    return _direct.kernel_isa() == "avx2" and 4 * padded > 5 * g.OH * g.OW


def _im2col_fits_blas(g):
    """BLAS takes 32-bit dimensions; the im2col path needs every GEMM size below 2**31."""
    k = (g.C_in // g.groups) * g.kh * g.kw
    return g.OH * g.OW <= _INT32_MAX and k * g.OH * g.OW <= _INT32_MAX and g.C_out <= _INT32_MAX


def choose_algorithm(g: ConvGeometry, dtype: DTypeLike = np.float32, op: str = "forward") -> str:
    """The algorithm ``"auto"`` picks for geometry ``g`` and one operation, at the current
    thread count.

    Under :func:`fastconv.set_autotune` ``"measure"`` (the default; ``$FASTCONV_AUTOTUNE``)
    the eligible algorithms are timed once per (op, geometry, dtype, threads, ISA) key and
    the winner is cached in memory and in the plan file (:mod:`fastconv.autotune`); the
    static table below (:func:`table_algorithm`) is kept unless another algorithm is
    clearly faster. ``"cache"`` uses cached plans only; ``"off"`` the table only.
    Algorithms agree to rounding, not bitwise; a key's choice never changes within a
    process, and for bitwise reproducibility on fresh machines use ``"off"``.

    Parameters
    ----------
    g : ConvGeometry
    dtype : numpy dtype
    op : {"forward", "grad_input", "grad_weight"}
    """
    check_choice(op, "op", _AUTOTUNE_OPS)
    mode = _autotune._mode
    if mode is None:
        mode = _autotune.get_autotune()
    if mode != "off":
        # a key already decided in this process: _autotune.choose's memo entry, looked up
        # without building the table's choice and the candidates first (~10 us a call, five
        # calls per step of a two-convolution network)
        name = _DTYPE_NAMES.get(dtype)
        if name is not None:
            hit = _autotune._memo.get((op, g, name, get_num_threads(), _direct.kernel_isa()))
            if hit is not None:
                if _autotune._record is not None:
                    _autotune._record.append(hit[1])
                return hit[0]
    table = table_algorithm(g, dtype, op)
    if mode == "off":
        return table
    # measuring allocates inputs and outputs of the shape again: not for huge layers
    elements = 2 * g.N * g.C_in * g.H * g.W + 2 * g.N * g.C_out * g.OH * g.OW
    eligible = eligible_algorithms(g) if elements * np.dtype(dtype).itemsize <= AUTOTUNE_MAX_BYTES else (table,)
    return _autotune.choose(g, dtype, op, get_num_threads(), table, eligible,
                            lambda names: _candidate_runs(g, np.dtype(dtype), op, names))


_AUTOTUNE_OPS = ("forward", "grad_input", "grad_weight")
_DTYPE_NAMES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}

#: Layers whose measuring arrays (input, output and their gradients) would take more than
#: this many bytes keep the table's choice (no measurement).
AUTOTUNE_MAX_BYTES = 256 * 2**20


def eligible_algorithms(g: ConvGeometry) -> tuple[str, ...]:
    """The algorithms that can run geometry ``g`` (every operation): direct always, im2col
    while its GEMM sizes fit BLAS, Winograd for 3x3 stride-1 undilated single-group."""
    names = ["direct"]
    if _im2col_fits_blas(g):
        names.append("im2col")
    if winograd_fits(g):
        names.append("winograd")
    return tuple(names)


def _candidate_runs(g, dtype, op, names):
    """Zero-argument runs of ``op`` on random arrays of ``g``'s shapes, one per algorithm."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((g.N, g.C_in, g.H, g.W)).astype(dtype)
    w = rng.standard_normal((g.C_out, g.C_in // g.groups, g.kh, g.kw)).astype(dtype)
    b = np.zeros(g.C_out, dtype)
    runs = {}
    if op == "forward":
        out = np.empty(g.output_shape, dtype)
        for a in names:
            runs[a] = lambda a=a: conv2d_forward_unchecked(x, w, b, g, a, out)
    else:
        go = rng.standard_normal(g.output_shape).astype(dtype)
        gi = np.empty(x.shape, dtype)
        want_input = op == "grad_input"
        for a in names:
            runs[a] = lambda a=a: conv2d_backward_unchecked(go, x, w, g, a, want_input,
                                                            gi if want_input else None, not want_input)
    return runs


def table_algorithm(g: ConvGeometry, dtype: DTypeLike = np.float32, op: str = "forward") -> str:
    """The static table's algorithm for geometry ``g`` and one operation (what
    ``set_autotune("off")`` uses, and the incumbent a measured choice must clearly beat).

    Parameters
    ----------
    g : ConvGeometry
    dtype : numpy dtype
    op : {"forward", "grad_input", "grad_weight"}

    Notes
    -----
    Measured medians (ms, float32, 2 threads, AMD EPYC Zen 5 with the AVX-512 tiles,
    OpenBLAS 0.3.30) behind the rules; in brackets the portable tiles (``_direct.use_avx512(False)``):

    ============  =================  ===================  ===================
    shape         forward d / i      grad_weight d / i    grad_input d / i
    ============  =================  ===================  ===================
    lenet_c1      0.08 / 0.38        0.18 / 0.54          0.35 / 0.31
    lenet_c3      0.10 / 0.38        0.12 / 0.44          0.27 / 0.38
    vgg_3x3       8.1 (14.5) / 20.0  9.2 (27.5) / 21.1    8.2 (14.2) / 18.2
    resnet_s2     3.9 (8.6) / 8.5    4.8 (14.8) / 8.6     6.5 (~10) / 8.7
    ============  =================  ===================  ===================

    * forward and grad_input, 3x3 stride 1 (one group) with C_in * C_out >= 1024:
      Winograd F(2x2, 3x3), 2.25x fewer multiplies in 16 GEMMs; the transforms cost
      per channel, the GEMMs per channel pair, so few channels stay direct. Minimum of 40,
      ms, 1 thread, batch 128 (ResNet-8 stages): 32->32 at 14x14 direct 4.9 / Winograd
      3.3, 64->64 at 7x7 5.5 / 4.3, 16->16 at 28x28 5.0 / 5.0.
      With the AVX2 tiles (no AVX-512) the direct kernel's row-reuse tile keeps images
      whose 2x2 tiles would pad the area by more than a quarter (7x7: 64 for 49 pixels;
      AMD Zen 1, batch 128, ms, 1 / 2 threads: 64->64 at 7x7 forward direct 13.6 / 6.8,
      Winograd 14.1 / 8.1; grad_input 13.7 / 7.0 against 14.7 / 8.4; 32->32 at 14x14
      stays Winograd: 10.7 / 6.2 against 14.2 / 7.2).
    * forward, 1x1 kernels with >= 16 input channels (one group): im2col, a GEMM over
      pixels (ResNet-8's stride-2 projections, min of 40, ms, 1 thread, batch 128:
      16->32 at 28x28 direct 1.48 / im2col 0.96; 32->64 at 14x14 1.44 / 0.90).
    * forward otherwise: the register-blocked direct kernel wins everywhere (no column
      matrix, no GEMM packing).
    * grad_weight: im2col for 1x1 kernels (the projections above: direct 3.03 / im2col
      1.25, 2.21 / 1.32) and for reductions C_in/g*kh*kw < 16 that the pixel kernel does
      not take (ResNet-8's 1->16 first layer, 3x3: 2.26 / 1.45; the per-image
      channel-minor copy of grad_output dominates the direct kernel there). Otherwise
      direct when an AVX-512 whole-kernel tile fits (3x3, 5x5) or while a
      group's reduction length C_in/g*kh*kw is short (< 256); otherwise GEMM's cache
      blocking wins.
    * grad_input: direct with the AVX2 kernels (no AVX-512) at stride 1 with <= 8 input
      channels per group and kernels 4, 5, 8-10, 12-15, ... wide: products and a scatter
      (lenet_c3, batch 64, 1 thread, AMD Zen 1: im2col 2.2 / scatter 1.6 ms).
    * grad_input otherwise: direct (stride phases through the forward kernel) when each group has
      >= 16 input channels to fill a channel block, at stride 1 or with the AVX-512 tiles,
      or at stride 1 with 4 to 8 (float32, AVX-512: the pixel tile, 8 channels a block;
      lenet_c1's one channel fills too little of it); otherwise im2col + col2im.
    """
    cig = g.C_in // g.groups
    if (op in ("forward", "grad_input") and winograd_fits(g)
            and g.C_in * g.C_out >= WINOGRAD_MIN_CHANNEL_PAIRS and not _winograd_tiles_waste(g)):
        return "winograd"
    one_by_one = g.kh == g.kw == 1 and g.groups == 1 and _im2col_fits_blas(g)
    if op == "forward":
        return "im2col" if one_by_one and g.C_in >= 16 else "direct"
    if not _im2col_fits_blas(g):
        return "direct"
    if op == "grad_weight":
        cog = g.C_out // g.groups
        if one_by_one or (cig * g.kh * g.kw < 16
                          and not _direct.grad_weight_pixels_fit(dtype == np.float64, cog, g.sw, g.OW)):
            return "im2col"
        # (the AVX-512 tiles: the table predates the AVX2 one, whose use is measured)
        wide_tile = _direct.grad_weight_tile(dtype == np.float64, cog, g.kh, g.kw, False)[0] >= 0
        return "direct" if wide_tile or cig * g.kh * g.kw < 256 else "im2col"
    if op == "grad_input":
        stride_1 = g.sh == g.sw == 1
        if _direct.grad_input_scatter_fit(dtype == np.float64, cig, g.sh, g.sw, g.kw):
            return "direct"
        if stride_1 and cig >= 4 and _direct.pixel_tiles_fit(dtype == np.float64, cig, 1):
            return "direct"
        wide_tile = _direct.forward_tile(dtype == np.float64, cig, g.W)[0] >= 0
        return "direct" if cig >= 16 and (wide_tile or stride_1) else "im2col"
    raise choice_error("op", _AUTOTUNE_OPS, op)


def _resolve_algorithm(algorithm, g, dtype):
    """Validate ``algorithm``; "auto" stays "auto" (resolved per operation)."""
    check_choice(algorithm, "algorithm", ALGORITHMS)
    if algorithm == "winograd" and not winograd_fits(g):
        raise ValueError(
            "algorithm='winograd' needs a 3x3 kernel, stride 1, dilation 1 and groups=1; "
            "use 'direct', 'im2col' or 'auto'"
        )
    if algorithm == "im2col" and not _im2col_fits_blas(g):
        raise ValueError(
            "algorithm='im2col' needs GEMM sizes below 2**31 for this shape; use 'direct' or 'auto'"
        )
    return algorithm


def _im2col_rows_per_chunk(g, itemsize, n_threads, parallel_rows):
    """Output rows per column-buffer chunk: within IM2COL_CHUNK_BYTES per thread.

    When ``parallel_rows`` (forward pass) and the batch has fewer images than threads,
    images are split into row chunks so that every thread gets work.
    """
    row_bytes = g.C_in * g.kh * g.kw * g.OW * itemsize
    rows = max(1, min(g.OH, IM2COL_CHUNK_BYTES // row_bytes))
    if parallel_rows and g.N < n_threads:
        rows = min(rows, -(-g.OH // -(-n_threads // g.N)))
    return rows


def im2col_workspace_bytes(g: ConvGeometry, itemsize: int, n_threads: int, backward: bool = False) -> int:
    """Extra bytes the im2col path allocates for geometry ``g`` (bounded by chunking)."""
    rows = _im2col_rows_per_chunk(g, itemsize, n_threads, parallel_rows=not backward)
    col = g.C_in * g.kh * g.kw * rows * g.OW * itemsize
    n_tasks = g.N * -(-g.OH // rows) if not backward else g.N
    threads = max(1, min(n_threads, n_tasks))
    if backward:
        return threads * (2 * col + g.C_out * (g.C_in // g.groups) * g.kh * g.kw * itemsize)
    return threads * col


# --------------------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------------------
def _check_conv_inputs(x, weight):
    x = check_array(x, "x", 4, X_DOC)
    weight = check_array(weight, "weight", 4, W_DOC)
    return x, weight


def conv2d(x: FloatArray, weight: FloatArray, bias: FloatArray | None = None, stride: IntPair = 1,
           padding: IntPair | str = 0, dilation: IntPair = 1, groups: int = 1, *,
           padding_mode: str = "zeros", algorithm: str = "auto") -> FloatArray:
    """2-D cross-correlation (the CNN "convolution"), as ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W), float32 or float64
    weight : ndarray, shape (C_out, C_in/groups, kH, kW), same dtype as x
    bias : ndarray, shape (C_out,), optional
    stride, dilation : int or (int, int)
    padding : int, (int, int), "valid" or "same"
        "same" (stride 1 only) keeps H and W; an odd total puts the extra row/column at
        the bottom/right.
    groups : int
        Input and output channels are split into this many independent groups.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
        What the padding holds, as ``torch.nn.Conv2d``'s argument: the other modes pad x
        with :func:`fastconv.pad` first (its limits apply: reflect needs padding < H, W).
    algorithm : {"auto", "direct", "im2col", "winograd"}
        "auto" uses :func:`choose_algorithm`. "winograd" (F(2x2, 3x3): 3x3 kernels, stride
        1, no dilation, one group).

    Returns
    -------
    y : ndarray, shape (N, C_out, OH, OW)
        ``OH = floor((H + pad_top + pad_bottom - dH*(kH-1) - 1)/sH) + 1``, likewise OW.
    """
    x, weight = _check_conv_inputs(x, weight)
    if bias is not None:
        bias = check_array(bias, "bias", 1, "(C_out,)")
    dtype = check_same_dtype(x=x, weight=weight, bias=bias)
    g = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    if bias is not None and bias.shape != (g.C_out,):
        raise ValueError(f"bias must have shape ({g.C_out},) to match weight, got {bias.shape}")
    algo = _resolve_algorithm(algorithm, g, dtype)
    padded = conv_padding(padding_mode, g, dtype)
    if padded is not None:  # pad in that mode, then a convolution without padding
        pg, g = padded
        x = pad_unchecked(x, pg)
    check_allocation(g.output_shape, dtype, "conv2d output")
    return conv2d_forward_unchecked(x, weight, bias, g, algo)


def conv2d_forward_unchecked(x: FloatArray, weight: FloatArray, bias: FloatArray | None, g: ConvGeometry,
                             algorithm: str, out: FloatArray | None = None) -> FloatArray:
    """Forward pass for arguments already validated into geometry ``g`` (layers' hot path).

    ``out``, if given, is a C-contiguous array of ``g.output_shape`` and x's dtype.
    """
    dtype = x.dtype
    if g.N == 0 or g.C_out == 0:
        return np.zeros(g.output_shape, dtype)
    if bias is None:
        bias = np.zeros(g.C_out, dtype)
    if out is None:
        out = np.empty(g.output_shape, dtype)
    n_threads = get_num_threads()
    if algorithm == "auto":
        algorithm = choose_algorithm(g, dtype, "forward")
    if algorithm == "direct":
        return _direct_forward(x, weight, bias, g, out, n_threads)
    if algorithm == "winograd":
        return _winograd_forward(x, weight, bias, g.pad_top, g.pad_left, out, n_threads)
    rows = _im2col_rows_per_chunk(g, dtype.itemsize, n_threads, parallel_rows=True)
    n_threads = max(1, min(n_threads, g.N * -(-g.OH // rows)))
    scratch = np.empty((n_threads, g.C_in * g.kh * g.kw * rows * g.OW), dtype)
    with blas_single_thread():
        _im2col.conv2d_im2col_forward(x, weight, bias, out, scratch, rows, *g.kernel_args,
                                      g.groups, n_threads)
    return out


def _pack_weight_blocked(w5, cb, n_threads):
    """(groups, C_out/g, C_in/g, kh, kw) view -> (groups, n_blocks*C_in/g*kh*kw*cb).

    Layout [group][channel block][c][i][j][cb] for the blocked kernel; zeros pad the last
    block. Done in a kernel: NumPy's strided transposing copy took 0.5 ms for the
    resnet_s2 weight, an eighth of the convolution.
    """
    groups, co, ci, kh, kw = w5.shape
    packed = np.empty((groups, -(-co // cb) * ci * kh * kw * cb), w5.dtype)
    _direct.pack_weight_blocked(w5, packed, cb, n_threads)
    return packed


def _direct_forward(x, weight, bias, g, out, n_threads):
    """out (N, C_out, OH, OW) = conv(x, weight) + bias with the blocked kernel."""
    w5 = weight.reshape(g.groups, g.C_out // g.groups, g.C_in // g.groups, g.kh, g.kw)
    _direct_forward_jobs(x, [(w5, g, 0, g.OW, 1)], bias, out, n_threads)
    return out


def _direct_forward_jobs(x, jobs, bias, out, n_threads):
    """Run blocked-kernel convolutions of x, each into a strided part of ``out``.

    out: C-contiguous (N, C_out, ., .). jobs: [(w5, g, out_offset, out_row_stride,
    out_pixel_stride[, transposed])], w5 the job's weights as
    a (groups, C_out/g, C_in/g, kh, kw) view, g its geometry (g.OH x g.OW outputs written
    at ``out[n, co].flat[out_offset + r*out_row_stride + q*out_pixel_stride]``).
    ``transposed`` (tile, cb, owb, span) runs a row phase of a stride-2 grad_input on the
    transposed tile (:func:`_transposed_jobs`): g.OW is then the input width, g.pad_left
    the zero columns of the copy.
    """
    is_double = x.dtype == np.float64
    rows, packs, w_offset, xpad_len = [], [], 0, 1
    for w5, g, out_offset, out_row_stride, out_pixel_stride, *transposed in jobs:
        # rows the kernel reads
        hp = (g.OH - 1) * g.sh + (g.kh - 1) * g.dh + 1
        if transposed:  # (tile, cb, owb, span) of _direct.transposed_tile: its own columns
            tile, cb, owb, span = transposed[0]
            wp = (-(-g.OW // owb) - 1) * owb // 2 + span
        else:
            tile, cb, owb = _direct.forward_tile(is_double, g.C_out // g.groups, g.OW, g.kw,
                                                 g.sw, g.dw)
            # columns: whole pixel blocks, so the last block may overrun OW
            wp = (-(-g.OW // owb) * owb - 1) * g.sw + (g.kw - 1) * g.dw + 1
        wpack = _pack_weight_blocked(w5, cb, n_threads)
        rows.append((tile, cb, hp, wp, g.kh, g.kw, g.sh, g.sw, g.pad_top, g.pad_left, g.dh,
                     g.dw, g.OH, g.OW, out_offset, out_row_stride, out_pixel_stride, w_offset,
                     wpack.shape[1]))  # in the order of _direct.JOB_FIELDS
        packs.append(wpack.reshape(-1))
        w_offset += wpack.size
        xpad_len = max(xpad_len, (g.C_in // g.groups) * hp * wp)
    n_threads = max(1, min(n_threads, x.shape[0] * jobs[0][1].groups))
    xpad = np.empty((n_threads, xpad_len), x.dtype)
    wpack = packs[0] if len(packs) == 1 else np.concatenate(packs)
    _direct.conv2d_direct_forward(x, wpack, bias, out, xpad, np.array(rows, np.intp),
                                  jobs[0][1].groups, n_threads)


def _winograd_weight(weight):
    """(C_out, C_in, 3, 3) -> U (16, C_out, C_in), U[4k + l] = (G g G^T)[k, l]."""
    G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], weight.dtype)
    t = np.tensordot(weight, G, axes=([3], [1]))  # (C_out, C_in, 3, 4): columns
    t = np.tensordot(G, t, axes=([1], [2]))  # (4, C_out, C_in, 4): rows
    return np.ascontiguousarray(t.transpose(0, 3, 1, 2)).reshape(16, *weight.shape[:2])


def _winograd_forward(x, weight, bias, pt, pl, out, n_threads):
    """out (N, C_out, OH, OW) = 3x3 stride-1 correlation of x, zero-padded by pt rows
    above and pl columns left (rows/columns past x's end are zeros; negative pads crop),
    plus bias, by Winograd F(2x2, 3x3). weight: (C_out, C_in, 3, 3), any strides."""
    N, C = x.shape[:2]
    C_out, OH, OW = out.shape[1:]
    tiles = ((OH + 1) // 2) * ((OW + 1) // 2)
    chunk = max(1, min(N, round(WINOGRAD_CHUNK_TILES / tiles)))
    n_threads = max(1, min(n_threads, -(-N // chunk)))
    scratch = np.empty((n_threads, _direct.winograd_scratch_len(C, C_out, OH, OW, chunk)),
                       x.dtype)
    with blas_single_thread():  # (the weight transform's tensordot included)
        _direct.conv2d_winograd_forward(x, _winograd_weight(weight), bias, out, scratch, pt, pl,
                                        chunk, n_threads)
    return out


def _winograd_grad_weight(grad_output, x, g, n_threads):
    """(grad_weight, grad_bias) of a 3x3 stride-1 convolution by Winograd F(2x2, 3x3): the
    per-thread dU partials summed in thread order, then grad_weight = G^T dU G."""
    N, C, Co = g.N, g.C_in, g.C_out
    tiles = ((g.OH + 1) // 2) * ((g.OW + 1) // 2)
    chunk = max(1, min(N, round(WINOGRAD_CHUNK_TILES / tiles)))
    n_threads = max(1, min(n_threads, -(-N // chunk)))
    scratch = np.empty((n_threads, _direct.winograd_scratch_len(C, Co, g.OH, g.OW, chunk)),
                       x.dtype)
    partial = np.zeros((n_threads, 16 * Co * C), x.dtype)
    G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], x.dtype)
    with blas_single_thread():
        _direct.conv2d_winograd_grad_weight(grad_output, x, partial, scratch, g.pad_top,
                                            g.pad_left, chunk, n_threads)
        du = _sum_in_thread_order(partial).reshape(4, 4, Co, C)
        t = np.tensordot(G, du, axes=([0], [0]))  # (3, 4, Co, C): rows
        t = np.tensordot(t, G, axes=([1], [0]))  # (3, Co, C, 3): columns
    grad_weight = np.ascontiguousarray(t.transpose(1, 2, 0, 3))
    grad_bias = grad_output.reshape(N, Co, g.OH * g.OW).sum(axis=2).sum(axis=0)
    return grad_weight, grad_bias


def _phase_taps(phase, stride, pad, dilation, k, size_in, size_out):
    """One axis of one stride phase of grad_input, as a stride-1 forward convolution.

    Input index ``phase + stride*u`` receives the gradient of kernel taps ``i`` with
    ``(phase + pad - i*dilation) % stride == 0``, from output index ``u + e_i`` where
    ``e_i = (phase + pad - i*dilation) // stride``. Read in increasing ``e``, the taps are
    the kernel reversed, ``dilation / gcd(stride, dilation)`` apart: a correlation of
    grad_output with the flipped sub-kernel. Returns (taps in that order, phase length,
    sub-kernel dilation, padding before, padding after); negative padding crops.
    """
    taps = [i for i in range(k - 1, -1, -1) if (phase + pad - i * dilation) % stride == 0]
    length = len(range(phase, size_in, stride))
    if not taps or length == 0:
        return taps, length, 1, 0, 0
    sub_dilation = dilation // math.gcd(stride, dilation)
    before = -((phase + pad - taps[0] * dilation) // stride)
    after = length - size_out - before + sub_dilation * (len(taps) - 1)
    return taps, length, sub_dilation, before, after


def _taps_slice(taps, step):
    """The descending taps [t0, t0 - step, ...] of :func:`_phase_taps` as a slice."""
    stop = taps[-1] - step
    return slice(taps[0], stop if stop >= 0 else None, -step)


def _direct_grad_input(grad_output: FloatArray, weight: FloatArray, g: ConvGeometry, grad_input: FloatArray,
                       n_threads: int, algorithm: str = "direct") -> FloatArray:
    """grad_input (N x C_in x H x W, any contents: every element is written) of the direct
    algorithm, or with ``algorithm="winograd"`` (stride 1) of Winograd F(2x2, 3x3).

    Each of the sh x sw stride phases of grad_input (``grad_input[:, :, a::sh, b::sw]``) is a
    stride-1 forward convolution of grad_output with a flipped sub-kernel and the in/out
    channels swapped (:func:`_phase_taps`). The blocked forward kernel runs all phases of
    an image back to back, each straight into its strided part of grad_input (which stays
    in cache between them): no zero-inserted gradient, no column matrix.
    """
    cig, cog = g.C_in // g.groups, g.C_out // g.groups
    if algorithm == "winograd":
        # stride 1: one phase, the correlation of grad_output with the flipped kernel,
        # channels swapped, padded by (k - 1 - pad)
        w_t = weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
        return _winograd_forward(grad_output, w_t, np.zeros(g.C_in, grad_output.dtype),
                                 2 - g.pad_top, 2 - g.pad_left, grad_input, n_threads)
    if _direct.grad_input_scatter_fit(grad_output.dtype == np.float64, cig, g.sh, g.sw, g.kw):
        return _scatter_grad_input(grad_output, weight, g, grad_input, n_threads)
    # With < 4 input channels per group the transposed convolution would fill at most 4
    # of a channel block's >= 4 lanes: the row-wise kernel (vectorised along rows) wins.
    # ... unless the pixel tile (float32, AVX-512) takes the phases: 0.53 -> 0.33 ms on
    # lenet_c1's grad_input.
    if cig < 4 and not _direct.pixel_tiles_fit(grad_output.dtype == np.float64, cig, 1):
        grad_input.fill(0)  # the row-wise kernel accumulates
        _direct.conv2d_direct_grad_input(grad_output, weight, grad_input, *g.kernel_args,
                                         g.groups, n_threads)
        return grad_input
    # (groups, C_in/g, C_out/g, kh, kw): each group's weights with in/out channels swapped
    w_t = weight.reshape(g.groups, cog, cig, g.kh, g.kw).transpose(0, 2, 1, 3, 4)
    step_h = g.sh // math.gcd(g.sh, g.dh)  # kernel rows between taps of one phase
    step_w = g.sw // math.gcd(g.sw, g.dw)
    transposed = _direct.transposed_tile(grad_output.dtype == np.float64, cig, g.W, g.kw, g.sw,
                                         g.dw, g.pad_left)
    if transposed is not None:
        jobs = _transposed_jobs(w_t, g, grad_input, step_h, transposed)
        if jobs:
            _direct_forward_jobs(grad_output, jobs, np.zeros(g.C_in, grad_output.dtype),
                                 grad_input, n_threads)
        return grad_input
    jobs = []
    for a in range(g.sh):
        rows, hu, sdh, pt, pb = _phase_taps(a, g.sh, g.pad_top, g.dh, g.kh, g.H, g.OH)
        for b in range(g.sw):
            cols, wu, sdw, pl, pr = _phase_taps(b, g.sw, g.pad_left, g.dw, g.kw, g.W, g.OW)
            if not rows or not cols or hu == 0 or wu == 0:
                grad_input[:, :, a::g.sh, b::g.sw] = 0  # no kernel tap reaches these inputs
                continue
            # the taps run down the kernel in steps: a flipped, strided view, no copy
            sub = w_t[:, :, :, _taps_slice(rows, step_h)][:, :, :, :, _taps_slice(cols, step_w)]
            pg = ConvGeometry(g.N, g.C_out, g.OH, g.OW, g.C_in, len(rows), len(cols), 1, 1,
                              pt, pb, pl, pr, sdh, sdw, g.groups, hu, wu)
            jobs.append((sub, pg, a * g.W + b, g.sh * g.W, g.sw))
    if jobs:
        _direct_forward_jobs(grad_output, jobs, np.zeros(g.C_in, grad_output.dtype), grad_input,
                             n_threads)
    return grad_input


def _transposed_jobs(w_t, g, grad_input, step_h, transposed):
    """The jobs of a 3-wide, column-stride-2 grad_input on the AVX2 transposed tile: one per
    row phase (rows as :func:`_phase_taps` gives them), each writing whole rows of its
    phase with every kernel column at once, so the gradient is read once per row phase
    rather than once per (row, column) phase and nothing is stored pixel by pixel.
    Measured on AMD Zen 1 at batch 128: see :func:`_direct.transposed_tile`."""
    tile, cb, owb, left, span = transposed
    jobs = []
    for a in range(g.sh):
        rows, hu, sdh, pt, pb = _phase_taps(a, g.sh, g.pad_top, g.dh, g.kh, g.H, g.OH)
        if not rows or hu == 0:
            grad_input[:, :, a::g.sh] = 0  # no kernel row reaches these inputs
            continue
        sub = w_t[:, :, :, _taps_slice(rows, step_h)]  # every column, in kernel order
        pg = ConvGeometry(g.N, g.C_out, g.OH, g.OW, g.C_in, len(rows), g.kw, 1, g.sw,
                          pt, pb, left, 0, sdh, g.dw, g.groups, hu, g.W)
        jobs.append((sub, pg, a * g.W, g.sh * g.W, 1, (tile, cb, owb, span)))
    return jobs


#: The scatter grad_input keeps one band of gradient planes and its two product buffers
#: within about this many bytes (L1: each tap row reads every output channel's band).
SCATTER_BAND_BYTES = 24 * 1024


def _scatter_grad_input(grad_output, weight, g, grad_input, n_threads):
    """grad_input of a stride-1 convolution by products and a scatter (AVX2, few input
    channels per group; see ``_grad_input_avx2.h``): no zero-padded gradient (the only
    wasted multiply-adds are the kernel columns padded to a multiple of 5 and the last
    vector of a band). Fills every element of grad_input."""
    dtype = grad_output.dtype
    cig, cog = g.C_in // g.groups, g.C_out // g.groups
    jb = _direct.SCATTER_JB
    kwp = -(-g.kw // jb) * jb
    # [group][c][i][o][kwp]: the weights of one (c, i) for every (o, j), columns padded
    w6 = weight.reshape(g.groups, cog, cig, g.kh, g.kw).transpose(0, 2, 3, 1, 4)
    wpack = np.zeros((g.groups, cig, g.kh, cog, kwp), dtype)
    wpack[..., :g.kw] = w6
    block = (8 if dtype == np.float64 else 16)  # pixels of one product block: 2 vectors
    band_rows = max(1, min(g.OH, SCATTER_BAND_BYTES // ((cog + 2 * kwp) * dtype.itemsize * g.OW)))
    tstride = -(-band_rows * g.OW // block) * block
    last = (g.OH - 1) // band_rows * band_rows  # the last band's first row
    ppad = last * g.OW + -(-(g.OH - last) * g.OW // block) * block
    n_threads = max(1, min(n_threads, g.N * g.groups))
    gy_scratch = np.empty((n_threads, cog * ppad), dtype)
    t_scratch = np.empty((n_threads, _direct.grad_input_scatter_len(
        dtype == np.float64, g.OW, g.kw, tstride, g.W, g.pad_left, g.dw)), dtype)
    _direct.conv2d_direct_grad_input_scatter(grad_output, wpack.reshape(-1), grad_input,
                                             gy_scratch, t_scratch, ppad, band_rows, tstride,
                                             g.kh, g.kw, g.pad_top, g.pad_left, g.dh, g.dw,
                                             g.groups, n_threads)
    return grad_input


def _unpack_weight_blocked(packed, g, cb):
    """Inverse of :func:`_pack_weight_blocked`: -> (C_out, C_in/g, kh, kw)."""
    cig, cog = g.C_in // g.groups, g.C_out // g.groups
    n_blocks = -(-cog // cb)
    w = packed.reshape(g.groups, n_blocks, cig * g.kh * g.kw, cb).transpose(0, 1, 3, 2)
    w = w.reshape(g.groups, n_blocks * cb, cig * g.kh * g.kw)[:, :cog]
    return np.ascontiguousarray(w).reshape(g.C_out, cig, g.kh, g.kw)


def _sum_in_thread_order(partials):
    """partials[0] + partials[1] + ... (one row per thread), in that order: the sum is
    deterministic for a given thread count. Returns a new array."""
    total = partials[0].copy()
    for row in partials[1:]:
        total += row
    return total


#: The AVX2 grad_weight tile's static answer (autotuning off): on, as measured on an AMD
#: EPYC Zen 3 (1 thread, batch 128, ResNet-8's 3x3 layers: 16->16 at 28^2 7.4 -> 6.9 ms,
#: 32->32 at 14^2 7.3 -> 6.9, 64->64 at 7^2 7.5 -> 7.3). Zen 1 had measured it 7-19 % slower
#: than the portable kernel, hence the measurement (:func:`_wgrad_avx2_tile`).
WGRAD_AVX2_TILE_STATIC = True
_WGRAD_TILE_CHOICES = _autotune.OTHER_OPS["wgrad-tile"]


def _wgrad_avx2_tile(dtype: Any) -> bool:
    """Whether grad_weight may use the AVX2 whole-kernel tile (see
    :func:`_direct.grad_weight_tile`): the autotune plan ``wgrad-tile <dtype> avx2``,
    measured once per machine (:func:`_measure_wgrad_tile`) in "measure" mode, else
    :data:`WGRAD_AVX2_TILE_STATIC`. Only asked where the AVX2 kernels are in use."""
    name = np.dtype(dtype).name
    e = _autotune.cached_plan(f"wgrad-tile {name} {_direct.kernel_isa()}",
                              lambda: _measure_wgrad_tile(name))
    return WGRAD_AVX2_TILE_STATIC if e is None else e["algorithm"] == "avx2-tile"


def _measure_wgrad_tile(dtype_name: str) -> dict:
    """The ``wgrad-tile`` plan entry: both grad_weight kernels timed on one thread (CPU time)
    on ResNet-8's middle 3x3 layer (32->32 at 14^2, 8 images); the faster one wins."""
    rng = np.random.default_rng(0)
    dtype: np.dtype[Any] = np.dtype(dtype_name)
    x = rng.standard_normal((8, 32, 14, 14)).astype(dtype)
    g = conv_geometry(x.shape, (32, 32, 3, 3), 1, 1, 1, 1)
    gy = rng.standard_normal((8, 32, 14, 14)).astype(dtype)
    runs = {name: (lambda tile=(name == "avx2-tile"): _direct_grad_weight(gy, x, g, 1, tile))
            for name in _WGRAD_TILE_CHOICES}
    _, best = _autotune._measure_one_thread(runs, "avx2-tile")
    return {"op": "wgrad-tile", "algorithm": min(best, key=best.__getitem__), "table":
            "avx2-tile" if WGRAD_AVX2_TILE_STATIC else "portable",
            "times_us": {a: round(t * 1e6, 2) for a, t in best.items()},
            "timing": "1 thread, CPU time"}


def _direct_grad_weight(grad_output: FloatArray, x: FloatArray, g: ConvGeometry,
                        n_threads: int, avx2_tile: bool | None = None) -> tuple[FloatArray, FloatArray]:
    """(grad_weight, grad_bias) of the direct algorithm: blocked kernel, per-thread partials
    summed in thread order (grad_bias summed while grad_output is copied channel-minor).
    ``avx2_tile``: allow the AVX2 tile (None: :func:`_wgrad_avx2_tile` decides)."""
    dtype = x.dtype
    cig, cog = g.C_in // g.groups, g.C_out // g.groups
    if _direct.grad_weight_pixels_fit(dtype == np.float64, cog, g.sw, g.OW):
        return _direct_grad_weight_pixels(grad_output, x, g, n_threads)
    tile, cb = _direct.grad_weight_tile(dtype == np.float64, cog, g.kh, g.kw, avx2_tile is not False)
    if avx2_tile is None and tile >= _direct.AVX2_TILE_BASE and not _wgrad_avx2_tile(dtype):
        tile, cb = _direct.grad_weight_tile(dtype == np.float64, cog, g.kh, g.kw, False)
    n_blocks = -(-cog // cb)
    hp = (g.OH - 1) * g.sh + (g.kh - 1) * g.dh + 1
    wp = (g.OW - 1) * g.sw + (g.kw - 1) * g.dw + 1
    slack = (_direct.WGRAD_MAX_JB - 1) * g.dw
    n_threads = max(1, min(n_threads, g.N * g.groups))
    xpad = np.zeros((n_threads, cig * hp * wp + slack), dtype)
    gyt = np.empty((n_threads, g.OH * g.OW * n_blocks * cb), dtype)
    partial = np.zeros((n_threads, g.groups * n_blocks * cig * g.kh * g.kw * cb), dtype)
    bias_partial = np.zeros((n_threads, g.C_out))
    _direct.conv2d_direct_grad_weight_blocked(grad_output, x, partial, bias_partial, xpad, gyt,
                                              tile, cb, hp, wp, g.kh, g.kw, *g.kernel_args,
                                              g.groups, n_threads)
    packed, grad_bias = _sum_in_thread_order(partial), _sum_in_thread_order(bias_partial)
    return _unpack_weight_blocked(packed, g, cb), grad_bias.astype(dtype)


def _direct_grad_weight_pixels(grad_output, x, g, n_threads):
    """(grad_weight, grad_bias) by pixel vectors (<= 8 channels, stride 1 along rows, where
    :func:`_direct.grad_weight_pixels_fit` says): lanes, then per-thread partials, summed in
    a fixed order."""
    dtype = x.dtype
    cig = g.C_in // g.groups
    hp = (g.OH - 1) * g.sh + (g.kh - 1) * g.dh + 1
    n_threads = max(1, min(n_threads, g.N * g.groups))
    if _direct.pixel_tiles_fit(dtype == np.float64, g.C_out // g.groups, g.sw):  # AVX-512
        ow_padded, gy_len = g.OW, 1
    else:  # AVX2: whole vectors of pixels, grad_output copied into zero-padded rows
        lanes = 4 if dtype == np.float64 else 8
        ow_padded = -(-g.OW // lanes) * lanes
        gy_len = g.C_out // g.groups * g.OH * ow_padded
    wp = ow_padded + (g.kw - 1) * g.dw
    xpad = np.empty((n_threads, cig * hp * wp), dtype)
    gy_scratch = np.empty((n_threads, gy_len), dtype)
    vpart = np.zeros((n_threads, g.C_out * cig * g.kh * g.kw * 16), dtype)
    bias_partial = np.zeros((n_threads, g.C_out))
    _direct.conv2d_direct_grad_weight_pixels(grad_output, x, vpart, bias_partial, xpad,
                                             gy_scratch, ow_padded, hp, wp, g.kh, g.kw, g.sh,
                                             g.pad_top, g.pad_left, g.dh, g.dw, g.groups,
                                             n_threads)
    grad_weight = _sum_in_thread_order(vpart.reshape(n_threads, -1, 16).sum(axis=2))
    grad_bias = _sum_in_thread_order(bias_partial)
    return grad_weight.reshape(g.C_out, cig, g.kh, g.kw), grad_bias.astype(dtype)


def conv2d_backward(grad_output: FloatArray, x: FloatArray, weight: FloatArray, stride: IntPair = 1,
                    padding: IntPair | str = 0, dilation: IntPair = 1, groups: int = 1, *,
                    padding_mode: str = "zeros", algorithm: str = "auto", needs_input_grad: bool = True,
                    ) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    """Gradients of :func:`conv2d` with respect to its input, weight and bias.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C_out, OH, OW)
        Gradient of the loss with respect to ``conv2d(x, weight, ...)``.
    x, weight, stride, padding, dilation, groups, padding_mode, algorithm
        As given to :func:`conv2d`.
    needs_input_grad : bool
        If False, ``grad_input`` is not computed (returned as None); a network's first
        layer never needs it.

    Returns
    -------
    grad_input : ndarray (N, C_in, H, W) or None
    grad_weight : ndarray (C_out, C_in/groups, kH, kW)
    grad_bias : ndarray (C_out,)
        ``grad_output.sum((0, 2, 3))``.
    """
    x, weight = _check_conv_inputs(x, weight)
    grad_output = check_array(grad_output, "grad_output", 4, "(N, C_out, OH, OW)")
    dtype = check_same_dtype(grad_output=grad_output, x=x, weight=weight)
    g = conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    if grad_output.shape != g.output_shape:
        raise ValueError(
            f"grad_output must have shape {g.output_shape} (the conv2d output for x {x.shape} "
            f"and weight {weight.shape}), got {grad_output.shape}"
        )
    needs_input_grad = check_bool(needs_input_grad, "needs_input_grad")
    algo = _resolve_algorithm(algorithm, g, dtype)
    check_allocation(x.shape, dtype, "grad_input")
    padded = conv_padding(padding_mode, g, dtype)
    if padded is None:
        return conv2d_backward_unchecked(grad_output, x, weight, g, algo, needs_input_grad)
    # the gradient of the padded input, then the adjoint of the padding
    pg, g = padded
    gi, gw, gb = conv2d_backward_unchecked(grad_output, pad_unchecked(x, pg), weight, g, algo,
                                           needs_input_grad)
    return (None if gi is None else pad_backward_unchecked(gi, pg)), gw, gb


def conv2d_backward_unchecked(grad_output, x, weight, g, algorithm, needs_input_grad=True,
                              grad_input=None, needs_weight_grad=True):
    """Backward pass for arguments already validated into geometry ``g``.

    ``grad_input``, if given, is a C-contiguous array of x's shape and dtype to fill.
    With ``needs_weight_grad=False`` (frozen weights) grad_weight and grad_bias are not
    computed and returned as None.
    """
    dtype = x.dtype
    if g.N == 0 or g.C_out == 0:
        grad_input = np.zeros(x.shape, dtype) if needs_input_grad else None
        if not needs_weight_grad:
            return grad_input, None, None
        return grad_input, np.zeros(weight.shape, dtype), np.zeros(g.C_out, dtype)
    if not (needs_weight_grad or needs_input_grad):
        return None, None, None
    if algorithm == "auto":  # only the gradients wanted (autotune measures per operation)
        weight_algo: str | None = choose_algorithm(g, dtype, "grad_weight") if needs_weight_grad else None
        input_algo = choose_algorithm(g, dtype, "grad_input") if needs_input_grad else "direct"
    else:
        weight_algo = input_algo = algorithm
    if not needs_weight_grad:
        weight_algo = None  # frozen weights: nothing to compute
    n_threads = get_num_threads()
    if not needs_input_grad:
        grad_input = None
    elif grad_input is None:
        # the direct path writes (or zeroes) every element itself
        grad_input = np.zeros(x.shape, dtype) if input_algo == "im2col" else np.empty(x.shape, dtype)
    elif input_algo == "im2col":
        grad_input.fill(0)
    grad_weight = grad_bias = None
    if weight_algo == "winograd":
        grad_weight, grad_bias = _winograd_grad_weight(grad_output, x, g, n_threads)
    elif weight_algo == "direct":
        grad_weight, grad_bias = _direct_grad_weight(grad_output, x, g, n_threads)
    elif weight_algo == "im2col":
        # Contiguous last-axis reductions first: NumPy's sum over axes (0, 2, 3) at once is
        # several times slower on a (64, 6, 28, 28) gradient.
        grad_bias = grad_output.reshape(g.N, g.C_out, g.OH * g.OW).sum(axis=2).sum(axis=0)
    if needs_input_grad and input_algo != "im2col":
        grad_input = _direct_grad_input(grad_output, weight, g, grad_input, n_threads, input_algo)
    need_im2col_input = needs_input_grad and input_algo == "im2col"
    if weight_algo == "im2col" or need_im2col_input:
        gw = _im2col_backward(grad_output, x, weight, g, grad_input if need_im2col_input else None,
                              weight_algo == "im2col", n_threads)
        if weight_algo == "im2col":
            grad_weight = gw
    return grad_input, grad_weight, grad_bias


def _im2col_backward(grad_output: FloatArray, x: FloatArray, weight: FloatArray, g: ConvGeometry,
                     grad_input: FloatArray | None, need_weight: bool, n_threads: int) -> Any:
    """im2col + GEMM gradients: fills grad_input (if given, zeroed) and returns grad_weight."""
    dtype = x.dtype
    need_input = grad_input is not None
    rows = _im2col_rows_per_chunk(g, dtype.itemsize, n_threads, parallel_rows=False)
    n_threads = max(1, min(n_threads, g.N))
    col_size = g.C_in * g.kh * g.kw * rows * g.OW
    col = np.empty((n_threads, col_size if need_weight else 1), dtype)
    dcol = np.empty((n_threads, col_size if need_input else 1), dtype)
    # One partial grad_weight per thread, summed below in thread order: deterministic.
    partial = np.zeros((n_threads, weight.size if need_weight else 1), dtype)
    gi = grad_input if need_input else np.empty((1, 1, 1, 1), dtype)
    with blas_single_thread():
        _im2col.conv2d_im2col_backward(grad_output, x, weight, gi, partial, col, dcol, rows,
                                       *g.kernel_args, g.groups, need_input, need_weight,
                                       n_threads)
    if not need_weight:
        return None
    return _sum_in_thread_order(partial).reshape(weight.shape)


# Below this many multiply-adds per product, Linear's two backward products stay on one

def im2col(x: FloatArray, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0,
           dilation: IntPair = 1) -> FloatArray:
    """Unfold sliding windows into columns, as ``torch.nn.functional.unfold``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kernel_size, stride, dilation : int or (int, int)
    padding : int, (int, int), "valid" or "same"

    Returns
    -------
    col : ndarray, shape (N, C*kH*kW, OH*OW)
        ``col[n, (c*kH + i)*kW + j, oh*OW + ow] = x_padded[n, c, oh*sH + i*dH, ow*sW + j*dW]``.
    """
    x = check_array(x, "x", 4, "(N, C, H, W)")
    kh, kw = check_pair(kernel_size, "kernel_size")
    g = conv_geometry(x.shape, (1, x.shape[1], kh, kw), stride, padding, dilation, 1)
    shape = (g.N, g.C_in * kh * kw, g.OH * g.OW)
    check_allocation(shape, x.dtype, "im2col output")
    col = np.empty(shape, x.dtype)
    if g.N:
        _im2col.im2col(x, col, kh, kw, *g.kernel_args, g.OH, g.OW, get_num_threads())
    return col


def col2im(col: FloatArray, input_shape: Shape, kernel_size: IntPair, stride: IntPair = 1,
           padding: IntPair = 0, dilation: IntPair = 1) -> FloatArray:
    """Sum columns back into an image: the adjoint (transpose) of :func:`im2col`.

    Parameters
    ----------
    col : ndarray, shape (N, C*kH*kW, OH*OW)
    input_shape : tuple of 4 ints, (N, C, H, W)
    kernel_size, stride, padding, dilation
        As given to :func:`im2col`.

    Returns
    -------
    x : ndarray, shape input_shape
        Overlapping windows add up; padded positions are dropped.
    """
    col = check_array(col, "col", 3, "(N, C*kH*kW, OH*OW)")
    input_shape = _check_shape4(input_shape, "input_shape")
    kh, kw = check_pair(kernel_size, "kernel_size")
    g = conv_geometry(input_shape, (1, input_shape[1], kh, kw), stride, padding, dilation, 1)
    expected = (g.N, g.C_in * kh * kw, g.OH * g.OW)
    if col.shape != expected:
        raise ValueError(f"col must have shape {expected} for input_shape {input_shape}, got {col.shape}")
    check_allocation(input_shape, col.dtype, "col2im output")
    x = np.zeros(input_shape, col.dtype)
    if g.N:
        _im2col.col2im(col, x, kh, kw, *g.kernel_args, g.OH, g.OW, get_num_threads())
    return x

