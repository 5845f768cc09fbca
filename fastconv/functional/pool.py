"""Max and average pooling and their gradients, as ``torch.nn.functional``'s."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Literal, Optional, Tuple, Union, overload

import numpy as np

from .._kernels import _adaptive_pool, _pooling
from .._parallel import get_num_threads
from .._validation import check_allocation, check_array, check_bool, check_int, check_same_dtype
from .._typing import FloatArray, IndexArray, IntPair, Shape
from ._geometry import PoolGeometry, _check_shape4, _planes, pool_geometry

#: An adaptive pool's output size: an int, or (OH, OW) with None keeping that input size.
OutputSize = Union[int, Tuple[Optional[int], Optional[int]]]

@overload
def max_pool2d(x: FloatArray, kernel_size: IntPair, stride: IntPair | None = ..., padding: IntPair = ...,
               ceil_mode: bool = ..., return_indices: Literal[False] = ...) -> FloatArray: ...
@overload
def max_pool2d(x: FloatArray, kernel_size: IntPair, stride: IntPair | None = ..., padding: IntPair = ...,
               ceil_mode: bool = ..., *, return_indices: Literal[True]) -> tuple[FloatArray, IndexArray]: ...
@overload
def max_pool2d(x: FloatArray, kernel_size: IntPair, stride: IntPair | None = ..., padding: IntPair = ...,
               ceil_mode: bool = ..., return_indices: bool = ...) -> FloatArray | tuple[FloatArray, IndexArray]: ...
def max_pool2d(x: FloatArray, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
               ceil_mode: bool = False, return_indices: bool = False) -> FloatArray | tuple[FloatArray, IndexArray]:
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        Implicit -inf padding, at most half the kernel size.
    ceil_mode : bool
        Round the output size up (the last window must start inside the input or left padding).
    return_indices : bool
        Also return the argmax of each window as a flat ``h*W + w`` index into its plane.

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW)
    indices : ndarray of int64, same shape (only if ``return_indices``)

    Notes
    -----
    A window containing NaN yields NaN. On ties, the first maximum in row-major window
    order is returned (and receives the gradient).
    """
    x = check_array(x, "x", 4, "(N, C, H, W)")
    g = pool_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    return_indices = check_bool(return_indices, "return_indices")
    check_allocation(g.output_shape, x.dtype, "max_pool2d output")
    out, indices = _max_pool2d_unchecked(x, g)
    return (out, indices) if return_indices else out


def _max_pool2d_unchecked(x: FloatArray, g: PoolGeometry, out: FloatArray | None = None,
                          indices: IndexArray | None = None) -> tuple[FloatArray, IndexArray]:
    if out is None:
        out = np.empty(g.output_shape, x.dtype)
    if indices is None:
        indices = np.empty(g.output_shape, np.int64)
    if out.size:
        _pooling.max_pool2d_forward(_planes(x), _planes(out), _planes(indices), *g.kernel_args,
                                    get_num_threads())
    return out, indices


def max_pool2d_backward(grad_output: FloatArray, x: FloatArray, kernel_size: IntPair,
                        stride: IntPair | None = None, padding: IntPair = 0, ceil_mode: bool = False,
                        indices: IndexArray | None = None) -> FloatArray:
    """Gradient of :func:`max_pool2d` with respect to ``x``.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, OH, OW)
    x : ndarray, shape (N, C, H, W)
        The forward input (used for the shape, and for the argmax when ``indices`` is None).
    kernel_size, stride, padding, ceil_mode
        As given to :func:`max_pool2d`.
    indices : ndarray of ints, shape (N, C, OH, OW), optional
        From ``max_pool2d(..., return_indices=True)``; recomputed from ``x`` if omitted.

    Returns
    -------
    grad_input : ndarray, shape (N, C, H, W)
        Each output's gradient added at its window's argmax.
    """
    x = check_array(x, "x", 4, "(N, C, H, W)")
    grad_output = check_array(grad_output, "grad_output", 4, "(N, C, OH, OW)")
    check_same_dtype(grad_output=grad_output, x=x)
    g = pool_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    _check_grad_output_shape(grad_output, g, "max_pool2d")
    if indices is None:
        _, indices = _max_pool2d_unchecked(x, g)
    else:
        indices = _check_indices(indices, g)
    return _max_pool2d_backward_unchecked(grad_output, indices, g)


def _max_pool2d_backward_unchecked(grad_output, indices, g, grad_input=None):
    if not grad_output.size:
        return np.zeros((g.N, g.C, g.H, g.W), grad_output.dtype)
    # The kernel zeroes each plane itself (cache-hot), so no np.zeros pass here.
    if grad_input is None:
        grad_input = np.empty((g.N, g.C, g.H, g.W), grad_output.dtype)
    bad = _pooling.max_pool2d_backward(_planes(grad_output), _planes(indices), _planes(grad_input),
                                       get_num_threads())
    if bad:
        raise ValueError(f"indices must be flat positions in [0, H*W) = [0, {g.H * g.W}) (as "
                         f"max_pool2d returns them), got {bad} outside that range")
    return grad_input


def _check_grad_output_shape(grad_output, g, fname):
    if grad_output.shape != g.output_shape:
        raise ValueError(
            f"grad_output must have shape {g.output_shape} (the {fname} output for input "
            f"{(g.N, g.C, g.H, g.W)}), got {grad_output.shape}"
        )


def _check_indices(indices, g):
    """indices as int64, C-contiguous, after type and shape checks. Their range is checked
    by the backward scatter itself, in its one pass (:func:`_max_pool2d_backward_unchecked`)."""
    if not isinstance(indices, np.ndarray):
        raise TypeError(f"indices must be a numpy.ndarray of int64, got {type(indices).__name__}")
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices must have an integer dtype, got {indices.dtype}")
    if indices.shape != g.output_shape:
        raise ValueError(f"indices must have shape {g.output_shape}, got {indices.shape}")
    return np.ascontiguousarray(indices, dtype=np.int64)


def avg_pool2d(x: FloatArray, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> FloatArray:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    kernel_size, stride, padding, ceil_mode
        As in :func:`max_pool2d` (zero padding).
    count_include_pad : bool
        Divide by the window size including padding (True) or only the elements inside
        the input (False). As in PyTorch, a ceil_mode window that runs past the padding
        is divided by its size clipped to the padded input.

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW)
    """
    x = check_array(x, "x", 4, "(N, C, H, W)")
    g = pool_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    check_allocation(g.output_shape, x.dtype, "avg_pool2d output")
    out = np.empty(g.output_shape, x.dtype)
    if out.size:
        _pooling.avg_pool2d_forward(_planes(x), _planes(out), *g.kernel_args, count_include_pad,
                                    get_num_threads())
    return out


def avg_pool2d_backward(grad_output: FloatArray, input_shape: Shape, kernel_size: IntPair,
                        stride: IntPair | None = None, padding: IntPair = 0, ceil_mode: bool = False,
                        count_include_pad: bool = True) -> FloatArray:
    """Gradient of :func:`avg_pool2d` with respect to its input.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, OH, OW)
    input_shape : tuple of 4 ints
        Shape (N, C, H, W) of the forward input.
    kernel_size, stride, padding, ceil_mode, count_include_pad
        As given to :func:`avg_pool2d`.

    Returns
    -------
    grad_input : ndarray, shape input_shape
    """
    grad_output = check_array(grad_output, "grad_output", 4, "(N, C, OH, OW)")
    input_shape = _check_shape4(input_shape, "input_shape")
    g = pool_geometry(input_shape, kernel_size, stride, padding, ceil_mode)
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    _check_grad_output_shape(grad_output, g, "avg_pool2d")
    check_allocation(input_shape, grad_output.dtype, "grad_input")
    grad_input = np.zeros(input_shape, grad_output.dtype)
    if grad_output.size:
        _pooling.avg_pool2d_backward(_planes(grad_output), _planes(grad_input), *g.kernel_args,
                                     count_include_pad, get_num_threads())
    return grad_input


# -- adaptive pooling -----------------------------------------------------------------------
@dataclass(frozen=True)
class AdaptivePoolGeometry:
    """Validated shapes of one adaptive pooling: input (N, C, H, W), output (OH, OW)."""

    N: int
    C: int
    H: int
    W: int
    OH: int
    OW: int

    @property
    def output_shape(self):
        return (self.N, self.C, self.OH, self.OW)


def _parse_output_size(output_size):
    """(OH, OW) with None entries kept, from an int or a pair of ints/None."""
    def entry(v):
        return None if v is None else check_int(v, "output_size")

    if isinstance(output_size, np.ndarray) and output_size.shape == (2,):
        output_size = tuple(output_size.tolist())
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(
                f"output_size must be an int or a pair of ints (or None), got a sequence of "
                f"length {len(output_size)}"
            )
        return (entry(output_size[0]), entry(output_size[1]))
    if output_size is None or isinstance(output_size, (bool, np.bool_)) or not isinstance(
            output_size, numbers.Integral):
        raise TypeError(
            f"output_size must be an int or a pair of ints (or None), got "
            f"{type(output_size).__name__} {output_size!r}"
        )
    v = check_int(output_size, "output_size")
    return (v, v)


def adaptive_pool_geometry(x_shape: Shape, output_size: OutputSize) -> AdaptivePoolGeometry:
    """Validate ``output_size`` against ``x_shape`` and return an :class:`AdaptivePoolGeometry`."""
    N, C, H, W = x_shape
    OH, OW = _parse_output_size(output_size)
    if H == 0 or W == 0:
        raise ValueError(
            f"x must have non-zero H and W (only N and C may be empty), got shape {tuple(x_shape)}"
        )
    return AdaptivePoolGeometry(N, C, H, W, H if OH is None else OH, W if OW is None else OW)


def _adaptive_avg_pool2d_unchecked(x, g, out=None):
    if out is None:
        out = np.empty(g.output_shape, x.dtype)
    if out.size:
        _adaptive_pool.adaptive_avg_pool2d_forward(_planes(x), _planes(out), get_num_threads())
    return out


def _adaptive_avg_pool2d_backward_unchecked(grad_output, g, grad_input=None):
    if grad_input is None:
        grad_input = np.empty((g.N, g.C, g.H, g.W), grad_output.dtype)
    if grad_input.size:  # the kernel writes every element
        _adaptive_pool.adaptive_avg_pool2d_backward(_planes(grad_output), _planes(grad_input),
                                                    get_num_threads())
    return grad_input


def _adaptive_max_pool2d_unchecked(x, g, out=None, indices=None):
    if out is None:
        out = np.empty(g.output_shape, x.dtype)
    if indices is None:
        indices = np.empty(g.output_shape, np.int64)
    if out.size:
        _adaptive_pool.adaptive_max_pool2d_forward(_planes(x), _planes(out), _planes(indices),
                                                   get_num_threads())
    return out, indices


def adaptive_avg_pool2d(x: FloatArray, output_size: OutputSize) -> FloatArray:
    """2-D adaptive average pooling, as ``torch.nn.functional.adaptive_avg_pool2d``.

    Output row ``i`` averages input rows ``floor(i*H/OH)`` to ``ceil((i+1)*H/OH) - 1``
    (likewise columns), so bins overlap when OH does not divide H, and an output larger
    than the input repeats elements.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    output_size : int or (int or None, int or None)
        (OH, OW); an int means a square output, None keeps that input size.

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW)

    Notes
    -----
    Sums are accumulated in float64 for both dtypes, in a fixed order (deterministic).
    ``output_size=1`` (global average pooling) takes a fast path: one sum per plane.
    """
    x = check_array(x, "x", 4, "(N, C, H, W)")
    g = adaptive_pool_geometry(x.shape, output_size)
    check_allocation(g.output_shape, x.dtype, "adaptive_avg_pool2d output")
    return _adaptive_avg_pool2d_unchecked(x, g)


def adaptive_avg_pool2d_backward(grad_output: FloatArray, input_shape: Shape,
                                 output_size: OutputSize) -> FloatArray:
    """Gradient of :func:`adaptive_avg_pool2d` with respect to its input.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, OH, OW)
    input_shape : tuple of 4 ints
        Shape (N, C, H, W) of the forward input.
    output_size
        As given to :func:`adaptive_avg_pool2d`.

    Returns
    -------
    grad_input : ndarray, shape input_shape
        Each output's gradient divided by its bin's size, added over its bin.
    """
    grad_output = check_array(grad_output, "grad_output", 4, "(N, C, OH, OW)")
    input_shape = _check_shape4(input_shape, "input_shape")
    g = adaptive_pool_geometry(input_shape, output_size)
    _check_grad_output_shape(grad_output, g, "adaptive_avg_pool2d")
    check_allocation(input_shape, grad_output.dtype, "grad_input")
    return _adaptive_avg_pool2d_backward_unchecked(grad_output, g)


@overload
def adaptive_max_pool2d(x: FloatArray, output_size: OutputSize,
                        return_indices: Literal[False] = ...) -> FloatArray: ...
@overload
def adaptive_max_pool2d(x: FloatArray, output_size: OutputSize, *, return_indices: Literal[True]) -> tuple[FloatArray, IndexArray]: ...
@overload
def adaptive_max_pool2d(x: FloatArray, output_size: OutputSize,
                        return_indices: bool = ...) -> FloatArray | tuple[FloatArray, IndexArray]: ...
def adaptive_max_pool2d(x: FloatArray, output_size: OutputSize,
                        return_indices: bool = False) -> FloatArray | tuple[FloatArray, IndexArray]:
    """2-D adaptive max pooling, as ``torch.nn.functional.adaptive_max_pool2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    output_size : int or (int or None, int or None)
        As in :func:`adaptive_avg_pool2d` (the same bins).
    return_indices : bool
        Also return the argmax of each bin as a flat ``h*W + w`` index into its plane
        (as :func:`max_pool2d`).

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW)
    indices : ndarray of int64, same shape (only if ``return_indices``)

    Notes
    -----
    A bin containing NaN yields NaN, and its index is the first NaN's (PyTorch's CPU
    kernel reports the last one). On ties the first maximum in row-major order wins (and
    receives the gradient).
    """
    x = check_array(x, "x", 4, "(N, C, H, W)")
    g = adaptive_pool_geometry(x.shape, output_size)
    return_indices = check_bool(return_indices, "return_indices")
    check_allocation(g.output_shape, x.dtype, "adaptive_max_pool2d output")
    out, indices = _adaptive_max_pool2d_unchecked(x, g)
    return (out, indices) if return_indices else out


def adaptive_max_pool2d_backward(grad_output: FloatArray, x: FloatArray, output_size: OutputSize,
                                 indices: IndexArray | None = None) -> FloatArray:
    """Gradient of :func:`adaptive_max_pool2d` with respect to ``x``.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, OH, OW)
    x : ndarray, shape (N, C, H, W)
        The forward input (used for the shape, and for the argmax when ``indices`` is None).
    output_size
        As given to :func:`adaptive_max_pool2d`.
    indices : ndarray of ints, shape (N, C, OH, OW), optional
        From ``adaptive_max_pool2d(..., return_indices=True)``; recomputed if omitted.

    Returns
    -------
    grad_input : ndarray, shape (N, C, H, W)
        Each output's gradient added at its bin's argmax.
    """
    x = check_array(x, "x", 4, "(N, C, H, W)")
    grad_output = check_array(grad_output, "grad_output", 4, "(N, C, OH, OW)")
    check_same_dtype(grad_output=grad_output, x=x)
    g = adaptive_pool_geometry(x.shape, output_size)
    _check_grad_output_shape(grad_output, g, "adaptive_max_pool2d")
    if indices is None:
        _, indices = _adaptive_max_pool2d_unchecked(x, g)
    else:
        indices = _check_indices(indices, g)
    # the scatter of max_pool2d's backward: argmax positions are flat per plane alike
    return _max_pool2d_backward_unchecked(grad_output, indices, g)


# -- maxout (max over runs of channels; its kernels live in _adaptive_pool) --------------------------------------------------
def _check_maxout(x, num_pieces, name="x"):
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy.ndarray of shape (N, C*num_pieces, ...), got {type(x).__name__}"
        )
    if x.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions (N, C*num_pieces, ...), got shape {x.shape}")
    x = check_array(x, name, x.ndim, "(N, C*num_pieces, ...)")
    num_pieces = check_int(num_pieces, "num_pieces")
    if x.shape[1] % num_pieces:
        raise ValueError(
            f"{name} channels ({x.shape[1]}) must be divisible by num_pieces ({num_pieces})"
        )
    return x, num_pieces


def _maxout_shapes(shape, k):
    """((rows, k, inner) of the input, (rows, inner) of the output, the output shape)."""
    N, Ck = shape[0], shape[1]
    inner = math.prod(shape[2:])
    rows = N * (Ck // k)
    return (rows, k, inner), (rows, inner), (N, Ck // k) + tuple(shape[2:])


def _maxout_unchecked(x, k, out=None, indices=None):
    xin, oin, out_shape = _maxout_shapes(x.shape, k)
    if out is None:
        out = np.empty(out_shape, x.dtype)
    if indices is None:
        indices = np.empty(out_shape, np.int64)
    if out.size:
        _adaptive_pool.maxout_forward(x.reshape(xin), out.reshape(oin), indices.reshape(oin),
                               get_num_threads())
    return out, indices


def _maxout_backward_unchecked(grad_output, indices, input_shape, k, grad_input=None):
    xin, oin, _ = _maxout_shapes(input_shape, k)
    if grad_input is None:
        grad_input = np.empty(input_shape, grad_output.dtype)
    if grad_input.size:  # the kernel writes every element
        _adaptive_pool.maxout_backward(grad_output.reshape(oin), indices.reshape(oin),
                                grad_input.reshape(xin), get_num_threads())
    return grad_input


@overload
def maxout(x: FloatArray, num_pieces: int, return_indices: Literal[False] = ...) -> FloatArray: ...
@overload
def maxout(x: FloatArray, num_pieces: int, *, return_indices: Literal[True]) -> tuple[FloatArray, IndexArray]: ...
@overload
def maxout(x: FloatArray, num_pieces: int, return_indices: bool = ...) -> FloatArray | tuple[FloatArray, IndexArray]: ...
def maxout(x: FloatArray, num_pieces: int, return_indices: bool = False) -> FloatArray | tuple[FloatArray, IndexArray]:
    """Maxout over channels: ``(N, C*k, ...) -> (N, C, ...)``, k = ``num_pieces``.

    Output channel ``c`` is the maximum of input channels ``c*k`` to ``c*k + k - 1``
    (Goodfellow et al., 2013), at every other index.

    Parameters
    ----------
    x : ndarray, shape (N, C*num_pieces, ...) with at least 2 dimensions, float32 or float64
    num_pieces : int
        k, the number of consecutive channels each output takes the maximum of.
    return_indices : bool
        Also return which piece won: ``indices[n, c, ...] = j`` means input channel
        ``c*k + j``.

    Returns
    -------
    y : ndarray, shape (N, C, ...)
    indices : ndarray of int64 in [0, num_pieces), same shape (only if ``return_indices``)

    Notes
    -----
    NaN propagates (the first NaN's piece is reported); on ties the first piece wins (and
    receives the gradient).
    """
    x, k = _check_maxout(x, num_pieces)
    return_indices = check_bool(return_indices, "return_indices")
    check_allocation(_maxout_shapes(x.shape, k)[2], x.dtype, "maxout output")
    out, indices = _maxout_unchecked(x, k)
    return (out, indices) if return_indices else out


def maxout_backward(grad_output: FloatArray, x: FloatArray, num_pieces: int,
                    indices: IndexArray | None = None) -> FloatArray:
    """Gradient of :func:`maxout` with respect to ``x``.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, ...)
    x : ndarray, shape (N, C*num_pieces, ...)
        The forward input (used for the shape, and for the winners when ``indices`` is None).
    num_pieces : int
        As given to :func:`maxout`.
    indices : ndarray of ints in [0, num_pieces), shape (N, C, ...), optional
        From ``maxout(..., return_indices=True)``; recomputed from ``x`` if omitted.

    Returns
    -------
    grad_input : ndarray, the shape of x
        Each output's gradient at its winning channel, 0 at the others.
    """
    x, k = _check_maxout(x, num_pieces)
    if not isinstance(grad_output, np.ndarray):
        raise TypeError(f"grad_output must be a numpy.ndarray, got {type(grad_output).__name__}")
    _, _, out_shape = _maxout_shapes(x.shape, k)
    grad_output = check_array(grad_output, "grad_output", grad_output.ndim, str(out_shape))
    check_same_dtype(grad_output=grad_output, x=x)
    if grad_output.shape != out_shape:
        raise ValueError(
            f"grad_output must have shape {out_shape} (the maxout output for input {x.shape}), "
            f"got {grad_output.shape}"
        )
    if indices is None:
        _, indices = _maxout_unchecked(x, k)
    else:
        if not isinstance(indices, np.ndarray):
            raise TypeError(f"indices must be a numpy.ndarray of int64, got {type(indices).__name__}")
        if indices.dtype.kind not in "iu":
            raise TypeError(f"indices must have an integer dtype, got {indices.dtype}")
        if indices.shape != out_shape:
            raise ValueError(f"indices must have shape {out_shape}, got {indices.shape}")
        indices = np.ascontiguousarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= k):
            raise ValueError(
                f"indices must be piece numbers in [0, num_pieces) = [0, {k}), "
                f"got values in [{indices.min()}, {indices.max()}]"
            )
    return _maxout_backward_unchecked(grad_output, indices, x.shape, k)
