"""Inverted dropout."""
from __future__ import annotations

from typing import Any

import numpy as np

from .._random import get_rng
from .._typing import FloatArray, RNGLike
from .module import Module


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability p and scale the
    rest by 1/(1-p); identity in eval mode.

    Parameters
    ----------
    p : float in [0, 1]
    rng : numpy.random.Generator or int, optional
    """

    def __init__(self, p: float = 0.5, *, rng: RNGLike = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
            raise TypeError(f"p must be a float in [0, 1], got {type(p).__name__}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = float(p)
        self._rng = rng
        self._mask: Any = None

    def forward(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x)
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        keep = get_rng(self._rng).random(x.shape) >= self.p
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        self._mask = (keep * scale).astype(x.dtype)
        return x * self._mask

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        return grad_output if self._mask is None else grad_output * self._mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
