"""Element-wise activations with explicit backward."""
import numpy as np

from .module import Module


def _check_float(x, name="x"):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name} must be a float array, got {x.dtype}")
    return x


class ReLU(Module):
    """max(x, 0); the gradient at 0 is 0 (as PyTorch)."""

    def forward(self, x):
        x = _check_float(x)
        self._mask = x > 0
        return np.where(self._mask, x, x.dtype.type(0))

    def backward(self, grad_output):
        return np.where(self._mask, grad_output, grad_output.dtype.type(0))


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float, np.floating)):
            raise TypeError(f"negative_slope must be a float, got {type(negative_slope).__name__}")
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        x = _check_float(x)
        self._mask = x > 0
        return np.where(self._mask, x, x * x.dtype.type(self.negative_slope))

    def backward(self, grad_output):
        return np.where(self._mask, grad_output, grad_output * grad_output.dtype.type(self.negative_slope))

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """x if x > 0 else alpha * (exp(x) - 1)."""

    def __init__(self, alpha=1.0):
        super().__init__()
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)):
            raise TypeError(f"alpha must be a float, got {type(alpha).__name__}")
        self.alpha = float(alpha)

    def forward(self, x):
        x = _check_float(x)
        self._mask = x > 0
        self._neg = self.alpha * np.expm1(np.minimum(x, 0)).astype(x.dtype)
        return np.where(self._mask, x, self._neg)

    def backward(self, grad_output):
        return np.where(self._mask, grad_output, grad_output * (self._neg + self.alpha))

    def extra_repr(self):
        return f"alpha={self.alpha}"


class Tanh(Module):
    def forward(self, x):
        self._y = np.tanh(_check_float(x))
        return self._y

    def backward(self, grad_output):
        return grad_output * (1 - self._y * self._y)


class Sigmoid(Module):
    def forward(self, x):
        x = _check_float(x)
        # exp of a non-positive number only: no overflow for large |x|
        e = np.exp(-np.abs(x))
        self._y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)
        return self._y

    def backward(self, grad_output):
        return grad_output * self._y * (1 - self._y)
