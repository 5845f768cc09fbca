"""Softmax and log-softmax along one axis and their gradients, as ``torch.nn.functional``'s."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .._kernels import _softmax
from .._parallel import get_num_threads
from .._typing import FloatArray
from .._validation import FLOAT_DTYPES, check_same_dtype


def _check_float_nd(x, name):
    """``x`` as a C-contiguous native float32/float64 array with at least one dimension.

    As :func:`fastconv._validation.check_array`, for any number of dimensions.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of float32 or float64, got {type(x).__name__}")
    if x.ndim < 1:
        raise ValueError(f"{name} must have at least 1 dimension, got a 0-d array")
    if x.dtype not in FLOAT_DTYPES:
        if x.dtype.kind == "f" and x.dtype.itemsize in (4, 8):  # non-native byte order
            x = x.astype(x.dtype.newbyteorder("="))
        else:
            raise TypeError(f"{name} must have dtype float32 or float64, got {x.dtype}")
    return np.ascontiguousarray(x)


def _check_dim(dim, ndim):
    """``dim`` as an axis in [0, ndim), from an int in [-ndim, ndim)."""
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"dim must be an int, got {type(dim).__name__} {dim!r}")
    dim = int(dim)
    if not -ndim <= dim < ndim:
        raise ValueError(f"dim must be in [{-ndim}, {ndim}) for a {ndim}-D array, got {dim}")
    return dim % ndim


def _lines(shape, dim):
    """(outer, C, inner): the view the kernels take, reducing over the middle axis."""
    outer = math.prod(shape[:dim])  # math.prod: np.prod costs microseconds on a tuple
    inner = math.prod(shape[dim + 1:])
    return (outer, shape[dim], inner)


def _softmax_unchecked(x, dim, log, out=None):
    """Softmax (``log``: log-softmax) of the C-contiguous float array x over axis ``dim``
    (already in [0, x.ndim)); writes ``out`` when given."""
    if out is None:
        out = np.empty(x.shape, x.dtype)
    if out.size:
        lines = _lines(x.shape, dim)
        _softmax.softmax_forward(x.reshape(lines), out.reshape(lines), log, get_num_threads())
    return out


def _softmax_backward_unchecked(grad_output, y, dim, log, grad_input=None):
    if grad_input is None:
        grad_input = np.empty(y.shape, y.dtype)
    if y.size:
        lines = _lines(y.shape, dim)
        _softmax.softmax_backward(grad_output.reshape(lines), y.reshape(lines),
                                  grad_input.reshape(lines), log, get_num_threads())
    return grad_input


def softmax(x: FloatArray, dim: int = 1) -> FloatArray:
    """Softmax along ``dim``, as ``torch.nn.functional.softmax``.

    ``y = exp(x - max) / sum(exp(x - max))`` over the axis: the maximum is subtracted
    first, so large inputs do not overflow. As in PyTorch, a line (the entries that share
    every index but ``dim``) holding NaN or +inf, or only -inf, becomes NaN; other -inf
    entries give 0.

    Parameters
    ----------
    x : ndarray, any shape with at least 1 dimension, float32 or float64
    dim : int
        The axis to normalise over; negative values count from the end.

    Returns
    -------
    y : ndarray, the shape and dtype of x
        Each line sums to 1.

    Notes
    -----
    Sums run in float64 for both dtypes. float32 uses a vectorised exp accurate to
    about 1 ulp, whose results below exp(-104) (under the smallest subnormal) are 0.
    """
    x = _check_float_nd(x, "x")
    return _softmax_unchecked(x, _check_dim(dim, x.ndim), False)


def log_softmax(x: FloatArray, dim: int = 1) -> FloatArray:
    """Log-softmax along ``dim``, as ``torch.nn.functional.log_softmax``.

    ``y = (x - max) - log(sum(exp(x - max)))``: stable for large inputs, and finite
    where ``log(softmax(x))`` would underflow to -inf. NaN, +inf and all -inf lines
    give NaN (as :func:`softmax`); other -inf entries give -inf.

    Parameters
    ----------
    x : ndarray, any shape with at least 1 dimension, float32 or float64
    dim : int
        The axis to normalise over; negative values count from the end.

    Returns
    -------
    y : ndarray, the shape and dtype of x
    """
    x = _check_float_nd(x, "x")
    return _softmax_unchecked(x, _check_dim(dim, x.ndim), True)


def _check_backward(grad_output, y, dim):
    grad_output = _check_float_nd(grad_output, "grad_output")
    y = _check_float_nd(y, "y")
    check_same_dtype(grad_output=grad_output, y=y)
    if grad_output.shape != y.shape:
        raise ValueError(
            f"grad_output must have the shape of y {y.shape}, got {grad_output.shape}"
        )
    return grad_output, y, _check_dim(dim, y.ndim)


def softmax_backward(grad_output: FloatArray, y: FloatArray, dim: int = 1) -> FloatArray:
    """Gradient of :func:`softmax` with respect to its input.

    ``grad_input = y * (grad_output - sum(grad_output * y, dim))``.

    Parameters
    ----------
    grad_output : ndarray, the shape of y
    y : ndarray
        The forward output ``softmax(x, dim)`` (not its input).
    dim : int
        As given to :func:`softmax`.

    Returns
    -------
    grad_input : ndarray, the shape and dtype of y
    """
    grad_output, y, dim = _check_backward(grad_output, y, dim)
    return _softmax_backward_unchecked(grad_output, y, dim, False)


def log_softmax_backward(grad_output: FloatArray, y: FloatArray, dim: int = 1) -> FloatArray:
    """Gradient of :func:`log_softmax` with respect to its input.

    ``grad_input = grad_output - exp(y) * sum(grad_output, dim)``.

    Parameters
    ----------
    grad_output : ndarray, the shape of y
    y : ndarray
        The forward output ``log_softmax(x, dim)`` (not its input).
    dim : int
        As given to :func:`log_softmax`.

    Returns
    -------
    grad_input : ndarray, the shape and dtype of y
    """
    grad_output, y, dim = _check_backward(grad_output, y, dim)
    return _softmax_backward_unchecked(grad_output, y, dim, True)
