"""Padding: ``pad`` and its adjoint ``pad_backward``, as ``torch.nn.functional.pad`` on
4-D input, and the non-zero ``padding_mode`` of the convolutions built on them.

Each padded axis is a *source map* (the input index every output index copies, or -1 for
the constant), computed once per (size, pads, mode) and cached; the kernels in
``_kernels/_pad.pyx`` copy rows through these maps (interior by memcpy) and add gradients
back through them in backward.

Semantics of negative pads (crops), as PyTorch 2.x: "constant", "reflect" and "replicate"
pad as if the pad were zero and then crop, so a reflection or an edge is taken from the
uncropped input; "circular" crops first and wraps around the cropped input.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
import numbers
from typing import Any, Callable, Sequence

import numpy as np

from .._kernels import _pad
from .._parallel import get_num_threads
from .._typing import DTypeLike, FloatArray, Shape
from .._validation import check_allocation, check_array, check_choice
from ._geometry import ConvGeometry, _check_shape4, _planes

X_DOC = "(N, C, H, W)"


# --------------------------------------------------------------------------------------
# One axis: limits and source maps per mode
# --------------------------------------------------------------------------------------
def _limits_constant(n, before, after, axis):
    # negative pads crop, but (as PyTorch) together by at most the size of the dimension
    if n + min(before, 0) + min(after, 0) < 0:
        raise ValueError(
            f"pad {(before, after)} crops more than {axis} = {n} holds (mode='constant')"
        )


def _limits_reflect(n, before, after, axis):
    for p in (before, after):
        if p > 0 and p >= n:
            raise ValueError(
                f"pad: mode='reflect' needs each pad < the size of its dimension (the edge is "
                f"not repeated), got pad {(before, after)} for {axis} = {n}"
            )


def _limits_replicate(n, before, after, axis):
    if n == 0 and (before > 0 or after > 0):
        raise ValueError(
            f"pad: mode='replicate' cannot pad an empty dimension, got pad {(before, after)} "
            f"for {axis} = 0"
        )


def _limits_circular(n, before, after, axis):
    kept = n + min(before, 0) + min(after, 0)  # circular crops first, then wraps
    for p in (before, after):
        if p > 0 and p > kept:
            what = f"{axis} = {n}" if kept == n else f"{axis} = {n} cropped to {kept}"
            raise ValueError(
                f"pad: mode='circular' needs each pad <= the size of its dimension (it wraps "
                f"around at most once), got pad {(before, after)} for {what}"
            )


def _source_constant(i, n):
    return np.where((i >= 0) & (i < n), i, -1)


def _source_reflect(i, n):
    i = np.abs(i)  # before the start: mirrored about element 0
    return np.where(i >= n, 2 * (n - 1) - i, i)  # past the end: mirrored about element n-1


def _source_replicate(i, n):
    return np.clip(i, 0, max(n - 1, 0))


#: mode -> (limits check, source index of output index o - before in the uncropped input;
#: circular's map is built from the cropped input instead, see _axis_map)
MODES: dict[str, tuple[Callable[..., Any], Any]] = {
    "constant": (_limits_constant, _source_constant),
    "reflect": (_limits_reflect, _source_reflect),
    "replicate": (_limits_replicate, _source_replicate),
    "circular": (_limits_circular, None),
}


def _check_mode(mode):
    return check_choice(mode, "mode", MODES)


@lru_cache(maxsize=512)
def _axis_map(n, before, after, mode):
    """(source map, interior start o0, its source start s0, interior length) of one axis.

    ``map[o]`` is the input index output ``o`` copies (-1: the constant); outputs
    ``[o0, o0 + length)`` copy inputs ``[s0, s0 + length)``. The map is read-only (cached).
    """
    m = n + before + after
    o = np.arange(m, dtype=np.intp)
    c0 = max(-before, 0)  # inputs cropped at the start
    kept = n + min(before, 0) + min(after, 0)  # inputs the output keeps
    o0 = min(max(before, 0), m)
    length = max(kept, 0)
    s0 = min(c0, n)  # an empty interior (a crop past the size) stays inside the input
    if mode == "circular":
        src = c0 + (o - max(before, 0)) % kept if kept > 0 else np.full(m, 0, np.intp)
    else:
        src = MODES[mode][1](o - before, n)
    src = np.ascontiguousarray(src, dtype=np.intp)
    src.flags.writeable = False
    return src, o0, s0, length


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PadGeometry:
    """Validated arguments of one :func:`pad`: input shape, pads, mode, output size."""

    N: int
    C: int
    H: int
    W: int
    left: int
    right: int
    top: int
    bottom: int
    mode: str
    OH: int
    OW: int

    @property
    def input_shape(self):
        return (self.N, self.C, self.H, self.W)

    @property
    def output_shape(self):
        return (self.N, self.C, self.OH, self.OW)

    @property
    def row_map(self):
        return _axis_map(self.H, self.top, self.bottom, self.mode)

    @property
    def col_map(self):
        return _axis_map(self.W, self.left, self.right, self.mode)


def _check_pad(pad):
    """(left, right, top, bottom) from a sequence of 2 or 4 ints."""
    if not isinstance(pad, (tuple, list)):
        raise TypeError(
            f"pad must be a tuple of 2 or 4 ints (left, right[, top, bottom]), got "
            f"{type(pad).__name__} {pad!r}"
        )
    if len(pad) not in (2, 4):
        raise ValueError(
            f"pad must have 2 or 4 ints (left, right[, top, bottom]) for 4-D input, got "
            f"{len(pad)}: {tuple(pad)!r}"
        )
    for p in pad:
        if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Integral):
            raise TypeError(
                f"pad must be a tuple of ints (left, right[, top, bottom]), got "
                f"{type(p).__name__} {p!r} in {tuple(pad)!r}"
            )
    pad = tuple(int(p) for p in pad)
    return pad if len(pad) == 4 else pad + (0, 0)


def pad_geometry(input_shape: Shape, pad: Sequence[int], mode: str = "constant") -> PadGeometry:
    """Validate :func:`pad` arguments against ``input_shape``; return a :class:`PadGeometry`.

    Parameters
    ----------
    input_shape : tuple of 4 ints, (N, C, H, W)
    pad : tuple of 2 or 4 ints, (left, right[, top, bottom])
    mode : {"constant", "reflect", "replicate", "circular"}
    """
    N, C, H, W = input_shape
    left, right, top, bottom = _check_pad(pad)
    limits = _check_mode(mode)[0]
    OH, OW = H + top + bottom, W + left + right
    if OH < 0 or OW < 0:
        raise ValueError(
            f"pad {(left, right, top, bottom)} crops more than the input has: output (H, W) "
            f"would be {(OH, OW)} for input shape {tuple(input_shape)}"
        )
    limits(H, top, bottom, "H")
    limits(W, left, right, "W")
    return PadGeometry(N, C, H, W, left, right, top, bottom, mode, OH, OW)


def _check_value(value, mode):
    if value is None:
        return 0.0
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"value must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if mode != "constant" and value != 0.0:
        raise ValueError(
            f"value is only used with mode='constant' (as in PyTorch), got value={value!r} "
            f"with mode={mode!r}"
        )
    return value


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------
def pad(x: FloatArray, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> FloatArray:
    """Pad the last two axes of a batch of images, as ``torch.nn.functional.pad``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
        Any memory layout.
    pad : tuple of 2 or 4 ints, (left, right) or (left, right, top, bottom)
        Elements added before/after W (and H). Negative pads crop.
    mode : {"constant", "reflect", "replicate", "circular"}
        * "constant": ``value`` outside the input.
        * "reflect": mirrored about the edge element, which is not repeated
          (``np.pad(..., "reflect")``); each pad must be < the size of its dimension.
        * "replicate": the edge element repeated (``np.pad(..., "edge")``).
        * "circular": the input repeated periodically (``np.pad(..., "wrap")``); each pad
          must be <= the size of its dimension (after any crop: circular crops first).
    value : float, default 0.0
        Fill of mode "constant"; other modes accept only 0 (or None), as PyTorch.

    Returns
    -------
    y : ndarray, shape (N, C, H + top + bottom, W + left + right)
        A new C-contiguous array of x's dtype.

    Notes
    -----
    PyTorch accepts ``(left, right)`` for 4-D input in mode "constant" only; here every
    mode takes it (the H axis is left alone). Pads of N and C (6 or 8 values) are not
    supported.
    """
    x = check_array(x, "x", 4, X_DOC)
    g = pad_geometry(x.shape, pad, mode)
    value = _check_value(value, g.mode)
    check_allocation(g.output_shape, x.dtype, "pad output")
    return pad_unchecked(x, g, value)


def pad_unchecked(x: FloatArray, g: PadGeometry, value: float = 0.0, out: FloatArray | None = None) -> FloatArray:
    """:func:`pad` for a C-contiguous x already validated into ``g`` (the layers' fast path).

    ``out``, if given, is a C-contiguous array of ``g.output_shape`` and x's dtype.
    """
    if out is None:
        out = np.empty(g.output_shape, x.dtype)
    if out.size == 0:
        return out
    if x.size == 0:  # only mode "constant" gets here with a non-empty output
        out.fill(value)
        return out
    rmap = g.row_map[0]
    cmap, co0, cs0, cn = g.col_map
    _pad.pad_forward(_planes(x), _planes(out), rmap, cmap, co0, cs0, cn, value,
                     get_num_threads())
    return out


def pad_backward(grad_output: FloatArray, input_shape: Shape, pad: Sequence[int],
                 mode: str = "constant") -> FloatArray:
    """Gradient of :func:`pad` with respect to its input (the adjoint of the padding).

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, H + top + bottom, W + left + right)
    input_shape : tuple of 4 ints, (N, C, H, W)
        Shape of the forward input.
    pad, mode
        As given to :func:`pad` (``value`` does not affect the gradient).

    Returns
    -------
    grad_input : ndarray, shape input_shape
        Each output's gradient added to the input element it copies: the interior, plus
        (reflect, replicate, circular) the border elements' gradients accumulated into
        their sources; mode "constant" drops the padding's gradient.
    """
    grad_output = check_array(grad_output, "grad_output", 4, "(N, C, OH, OW)")
    input_shape = _check_shape4(input_shape, "input_shape")
    g = pad_geometry(input_shape, pad, mode)
    if grad_output.shape != g.output_shape:
        raise ValueError(
            f"grad_output must have shape {g.output_shape} (the pad output for input_shape "
            f"{input_shape} and pad {(g.left, g.right, g.top, g.bottom)}), got {grad_output.shape}"
        )
    check_allocation(input_shape, grad_output.dtype, "pad_backward output")
    return pad_backward_unchecked(grad_output, g)


def pad_backward_unchecked(grad_output: FloatArray, g: PadGeometry, out: FloatArray | None = None) -> FloatArray:
    """:func:`pad_backward` for a C-contiguous grad_output already validated against ``g``.

    ``out``, if given, is a C-contiguous array of ``g.input_shape`` to fill (any contents).
    """
    if out is None:
        out = np.empty(g.input_shape, grad_output.dtype)
    if out.size == 0:
        return out
    if grad_output.size == 0:
        out.fill(0)
        return out
    rmap, ro0, rs0, rn = g.row_map
    cmap, co0, cs0, cn = g.col_map
    _pad.pad_backward(_planes(grad_output), _planes(out), rmap, ro0, rs0, rn, cmap, co0, cs0,
                      cn, g.mode != "constant", get_num_threads())
    return out


# --------------------------------------------------------------------------------------
# padding_mode of the convolutions
# --------------------------------------------------------------------------------------
#: conv2d's padding_mode -> pad mode (None: the convolution kernels pad with zeros)
CONV_PADDING_MODES = {"zeros": None, "reflect": "reflect", "replicate": "replicate",
                      "circular": "circular"}


def check_padding_mode(padding_mode: str) -> str | None:
    """Return the pad mode for conv2d's ``padding_mode`` (None for "zeros")."""
    return check_choice(padding_mode, "padding_mode", CONV_PADDING_MODES)


def conv_padding(padding_mode: str, g: ConvGeometry,
                 dtype: DTypeLike = np.float32) -> tuple[PadGeometry, ConvGeometry] | None:
    """How to run convolution ``g`` (a ConvGeometry) with ``padding_mode``.

    Returns None for "zeros" (the convolution pads itself); otherwise ``(pg, g0)``: the
    :class:`PadGeometry` that pads x by g's padding in that mode, and the geometry of the
    convolution of the padded input with padding 0 (same output).
    """
    mode = check_padding_mode(padding_mode)
    if mode is None:
        return None
    pg = pad_geometry((g.N, g.C_in, g.H, g.W), (g.pad_left, g.pad_right, g.pad_top, g.pad_bottom),
                      mode)
    check_allocation(pg.output_shape, dtype, "padded input")
    g0 = replace(g, H=pg.OH, W=pg.OW, pad_top=0, pad_bottom=0, pad_left=0, pad_right=0)
    return pg, g0
