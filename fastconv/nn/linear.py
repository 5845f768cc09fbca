"""Fully connected layer, and Flatten, which feeds it."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import functional as F
from .._random import get_rng
from .._typing import DTypeLike, FloatArray, RNGLike
from .._validation import check_array, check_bool, check_int
from .init import _check_dtype, _uniform
from .module import Module, Parameter


class Linear(Module):
    """Fully connected layer ``y = x @ weight.T + bias``, as ``torch.nn.Linear``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    rng, dtype
        As in :class:`Conv2d`; init U(-1/sqrt(in_features), 1/sqrt(in_features)).

    Input ``(N, in_features)``; output ``(N, out_features)``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, rng: RNGLike = None,
                 dtype: DTypeLike = np.float32) -> None:
        super().__init__()
        self.in_features = check_int(in_features, "in_features")
        self.out_features = check_int(out_features, "out_features")
        dtype = _check_dtype(dtype)
        rng = get_rng(rng)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = Parameter(_uniform(rng, bound, (self.out_features, self.in_features), dtype))
        self.bias = Parameter(_uniform(rng, bound, (self.out_features,), dtype)) if check_bool(bias, "bias") else None
        self._x: Any = None

    def forward(self, x: FloatArray) -> FloatArray:
        x = check_array(x, "x", 2, f"(N, {self.in_features})")
        if x.shape[1] != self.in_features:
            raise ValueError(f"Linear expects x of shape (N, {self.in_features}), got {x.shape}")
        if x.dtype != self.weight.data.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the layer's weight is {self.weight.data.dtype}")
        if self.bias is not None and self.bias.data.dtype != x.dtype:  # a reassigned .data
            raise TypeError(f"the layer's bias has dtype {self.bias.data.dtype} but its weight is {x.dtype}")
        self._x = x
        return F._linear_forward_unchecked(x, self.weight.data,
                                           self.bias.data if self.bias is not None else None)

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        if self._x is None:
            raise RuntimeError("Linear.backward called before forward (each forward allows one backward)")
        grad_output = check_array(grad_output, "grad_output", 2, f"(N, {self.out_features})")
        if grad_output.shape != (self._x.shape[0], self.out_features):
            raise ValueError(
                f"grad_output must have shape {(self._x.shape[0], self.out_features)}, got {grad_output.shape}"
            )
        x, self._x = self._x, None  # free what forward saved once it is used
        needs_input = self._input_grad_needed()
        w = self.weight
        b = self.bias if self.bias is not None and self.bias.requires_grad else None
        if w.requires_grad and needs_input:
            return F._linear_backward_unchecked(grad_output, x, w.data, w.grad,
                                                b.grad if b is not None else None)
        return F._linear_backward_partial(grad_output, x, w.data,
                                          w.grad if w.requires_grad else None,
                                          b.grad if b is not None else None, needs_input)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Flatten dimensions from ``start_dim`` on: (N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        self.start_dim = check_int(start_dim, "start_dim", minimum=1)
        self._shape: Any = None

    def forward(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x)
        if x.ndim <= self.start_dim:
            raise ValueError(f"Flatten(start_dim={self.start_dim}) needs x with more than {self.start_dim} dims, got shape {x.shape}")
        self._shape = x.shape
        return x.reshape(*x.shape[: self.start_dim], -1)

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        return np.asarray(grad_output).reshape(self._shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}"
