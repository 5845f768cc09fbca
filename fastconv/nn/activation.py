"""Element-wise activations with explicit backward; softmax, log-softmax and identity."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import functional as F
from .._kernels import _elementwise
from .._parallel import get_num_threads
from .._typing import FloatArray
from .._validation import FLOAT_DTYPES
from .module import Module


def _check_float(x, name="x"):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a float32 or float64 array, got {x.dtype}")
    return x


def _check_grad(grad_output, saved, layer):
    """grad_output as a contiguous array of the forward's shape and dtype."""
    if saved is None:
        raise RuntimeError(f"{type(layer).__name__}.backward called before forward")
    if not isinstance(grad_output, np.ndarray):
        raise TypeError(f"grad_output must be a numpy.ndarray, got {type(grad_output).__name__}")
    if grad_output.shape != saved.shape or grad_output.dtype != saved.dtype:
        raise ValueError(
            f"grad_output must have shape {saved.shape} and dtype {saved.dtype} (the forward "
            f"output's), got {grad_output.shape} {grad_output.dtype}"
        )
    return np.ascontiguousarray(grad_output)


class ReLU(Module):
    """max(x, 0); NaN propagates; the gradient at 0 is 0 (as PyTorch)."""

    def forward(self, x: FloatArray) -> FloatArray:
        x = np.ascontiguousarray(_check_float(x))
        self._y: Any = None  # our own reference would keep the workspace from reusing it
        self._y = y = self._workspace.empty("out", x.shape, x.dtype)
        _elementwise.relu_forward(x.reshape(-1), y.reshape(-1), get_num_threads())
        return y

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        g = _check_grad(grad_output, getattr(self, '_y', None), self)
        grad_input = self._workspace.empty("grad_input", g.shape, g.dtype)
        _elementwise.relu_backward(g.reshape(-1), self._y.reshape(-1), grad_input.reshape(-1),
                                   get_num_threads())
        return grad_input


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float, np.floating)):
            raise TypeError(f"negative_slope must be a float, got {type(negative_slope).__name__}")
        self.negative_slope = float(negative_slope)

    def forward(self, x: FloatArray) -> FloatArray:
        self._x = x = np.ascontiguousarray(_check_float(x))
        y = np.empty_like(x)
        _elementwise.leaky_relu_forward(x.reshape(-1), y.reshape(-1), self.negative_slope,
                                        get_num_threads())
        return y

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        g = _check_grad(grad_output, getattr(self, '_x', None), self)
        grad_input = np.empty_like(g)
        _elementwise.leaky_relu_backward(g.reshape(-1), self._x.reshape(-1), grad_input.reshape(-1),
                                         self.negative_slope, get_num_threads())
        return grad_input

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """x if x > 0 else alpha * (exp(x) - 1)."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)):
            raise TypeError(f"alpha must be a float, got {type(alpha).__name__}")
        self.alpha = float(alpha)

    def forward(self, x: FloatArray) -> FloatArray:
        x = _check_float(x)
        self._mask = x > 0
        self._neg = self.alpha * np.expm1(np.minimum(x, 0)).astype(x.dtype)
        return np.where(self._mask, x, self._neg)

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        return np.where(self._mask, grad_output, grad_output * (self._neg + self.alpha))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Tanh(Module):
    def forward(self, x: FloatArray) -> FloatArray:
        self._y = np.tanh(_check_float(x))
        return self._y

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        return grad_output * (1 - self._y * self._y)


class Sigmoid(Module):
    def forward(self, x: FloatArray) -> FloatArray:
        x = _check_float(x)
        # exp of a non-positive number only: no overflow for large |x|
        e = np.exp(-np.abs(x))
        self._y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)
        return self._y

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        return grad_output * self._y * (1 - self._y)


class _Softmax(Module):
    _log = False

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"dim must be an int, got {type(dim).__name__} {dim!r}")
        self.dim: int = int(dim)
        self._key: Any = None
        self._y: Any = None

    def forward(self, x: FloatArray) -> FloatArray:
        x = F.activation._check_float_nd(x, "x")
        if x.ndim != self._key:
            self._axis = F.activation._check_dim(self.dim, x.ndim)
            self._key = x.ndim
        self._y = None  # our own reference would keep the workspace from reusing it
        self._y = y = self._workspace.empty("out", x.shape, x.dtype)
        return F._softmax_unchecked(x, self._axis, self._log, y)

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        g = _check_grad(grad_output, self._y, self)
        grad_input = self._workspace.empty("grad_input", g.shape, g.dtype)
        return F._softmax_backward_unchecked(g, self._y, self._axis, self._log, grad_input)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_Softmax):
    """Softmax along ``dim``, as ``torch.nn.Softmax`` (see :func:`fastconv.functional.softmax`).

    Unlike PyTorch, ``dim`` defaults to 1 (the channel axis) instead of an implicit choice.
    """


class LogSoftmax(_Softmax):
    """Log-softmax along ``dim``, as ``torch.nn.LogSoftmax``
    (see :func:`fastconv.functional.log_softmax`); ``dim`` defaults to 1."""

    _log = True


class Identity(Module):
    """Returns its input unchanged, and the gradient likewise (``torch.nn.Identity``).

    Any constructor arguments are accepted and ignored, as in PyTorch.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._forwarded = False

    def forward(self, x: FloatArray) -> FloatArray:
        self._forwarded = True
        return x

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        if not self._forwarded:
            raise RuntimeError("Identity.backward called before forward")
        return grad_output
