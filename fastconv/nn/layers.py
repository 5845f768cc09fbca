"""Convolution, pooling, linear, dropout and flatten layers over fastconv.functional."""
import math

import numpy as np

from .. import functional as F
from .._random import get_rng
from .._validation import FLOAT_DTYPES, check_array, check_bool, check_int, check_pair
from .module import Module, Parameter


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _uniform(rng, bound, shape, dtype):
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class Conv2d(Module):
    """2-D convolution layer (cross-correlation), as ``torch.nn.Conv2d``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, dilation : int or (int, int)
    padding : int, (int, int), "valid" or "same"
    groups : int
    bias : bool
    algorithm : {"auto", "direct", "im2col"}
    needs_input_grad : bool
        False skips grad_input in backward (returns None): a network's first layer.
    rng : numpy.random.Generator or int, optional
        For initialisation; defaults to fastconv's global generator (``manual_seed``).
    dtype : float32 (default) or float64

    Weights and bias are initialised U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    ``fan_in = in_channels/groups * kH * kW`` (PyTorch's default).
    Input ``(N, in_channels, H, W)``; output ``(N, out_channels, OH, OW)``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, algorithm="auto", *, needs_input_grad=True, rng=None,
                 dtype=np.float32):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        self.kernel_size = check_pair(kernel_size, "kernel_size")
        self.stride = check_pair(stride, "stride")
        self.dilation = check_pair(dilation, "dilation")
        self.groups = check_int(groups, "groups")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be an int, a pair of ints, 'valid' or 'same'; got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("padding='same' is only supported with stride 1 (as in PyTorch)")
            self.padding = padding
        else:
            self.padding = check_pair(padding, "padding", minimum=0)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"in_channels ({self.in_channels}) and out_channels ({self.out_channels}) must "
                f"both be divisible by groups ({self.groups})"
            )
        if algorithm not in F.ALGORITHMS:
            raise ValueError(f"algorithm must be one of {F.ALGORITHMS}, got {algorithm!r}")
        self.algorithm = algorithm
        self.needs_input_grad = check_bool(needs_input_grad, "needs_input_grad")
        dtype = _check_dtype(dtype)
        rng = get_rng(rng)
        kh, kw = self.kernel_size
        fan_in = self.in_channels // self.groups * kh * kw
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = Parameter(_uniform(rng, bound, (self.out_channels, self.in_channels // self.groups, kh, kw), dtype))
        self.bias = Parameter(_uniform(rng, bound, (self.out_channels,), dtype)) if check_bool(bias, "bias") else None
        self._x = None
        self._geometry_key = None
        self._geometry = None

    def _geometry_for(self, x):
        # Validation of the geometry runs once per input shape, not on every batch.
        key = x.shape
        if key != self._geometry_key:
            if x.shape[1] != self.in_channels:
                raise ValueError(
                    f"{type(self).__name__} expects x with {self.in_channels} channels "
                    f"(N, {self.in_channels}, H, W), got shape {x.shape}"
                )
            self._geometry = F.conv_geometry(x.shape, self.weight.data.shape, self.stride,
                                             self.padding, self.dilation, self.groups)
            self._geometry_key = key
        return self._geometry

    def forward(self, x):
        x = check_array(x, "x", 4, f"(N, {self.in_channels}, H, W)")
        w = self.weight.data
        if x.dtype != w.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the layer's weight is {w.dtype}")
        g = self._geometry_for(x)
        self._x = x
        b = self.bias.data if self.bias is not None else None
        out = self._workspace.empty("out", g.output_shape, x.dtype)
        return F.conv2d_forward_unchecked(x, w, b, g, self.algorithm, out)

    def backward(self, grad_output):
        if self._x is None:
            raise RuntimeError("Conv2d.backward called before forward (each forward allows one backward)")
        g = self._geometry
        grad_output = check_array(grad_output, "grad_output", 4, str(g.output_shape))
        if grad_output.shape != g.output_shape or grad_output.dtype != self._x.dtype:
            raise ValueError(
                f"grad_output must have shape {g.output_shape} and dtype {self._x.dtype}, "
                f"got {grad_output.shape} {grad_output.dtype}"
            )
        x, self._x = self._x, None  # like PyTorch, free what forward saved once it is used
        gi = self._workspace.empty("grad_input", x.shape, x.dtype) if self.needs_input_grad else None
        gi, gw, gb = F.conv2d_backward_unchecked(grad_output, x, self.weight.data, g,
                                                 self.algorithm, self.needs_input_grad, gi)
        self.weight.grad += gw
        if self.bias is not None:
            self.bias.grad += gb
        return gi

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.kernel_size = check_pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else check_pair(stride, "stride")
        self.padding = check_pair(padding, "padding", minimum=0)
        if 2 * self.padding[0] > self.kernel_size[0] or 2 * self.padding[1] > self.kernel_size[1]:
            raise ValueError(
                f"padding should be at most half of kernel_size, got padding {self.padding} "
                f"for kernel_size {self.kernel_size}"
            )
        self.ceil_mode = check_bool(ceil_mode, "ceil_mode")
        self._key = None
        self._geometry = None

    def _geometry_for(self, x):
        if x.shape != self._key:
            self._geometry = F.pool_geometry(x.shape, self.kernel_size, self.stride, self.padding,
                                             self.ceil_mode)
            self._key = x.shape
        return self._geometry

    def _check_grad(self, grad_output, dtype):
        g = self._geometry
        grad_output = check_array(grad_output, "grad_output", 4, str(g.output_shape))
        if grad_output.shape != g.output_shape or grad_output.dtype != dtype:
            raise ValueError(
                f"grad_output must have shape {g.output_shape} and dtype {dtype}, "
                f"got {grad_output.shape} {grad_output.dtype}"
            )
        return grad_output

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        return s + (", ceil_mode=True" if self.ceil_mode else "")


class MaxPool2d(_Pool2d):
    """2-D max pooling, as ``torch.nn.MaxPool2d`` (-inf padding; NaN propagates)."""

    def forward(self, x):
        x = check_array(x, "x", 4, "(N, C, H, W)")
        g = self._geometry_for(x)
        self._indices = None  # our own reference would keep the workspace from reusing it
        ws = self._workspace
        out = ws.empty("out", g.output_shape, x.dtype)
        indices = ws.empty("indices", g.output_shape, np.int64)
        out, self._indices = F._max_pool2d_unchecked(x, g, out, indices)
        self._dtype = x.dtype
        return out

    def backward(self, grad_output):
        if self._indices is None:
            raise RuntimeError("MaxPool2d.backward called before forward (each forward allows one backward)")
        grad_output = self._check_grad(grad_output, self._dtype)
        g = self._geometry
        indices, self._indices = self._indices, None
        gi = self._workspace.empty("grad_input", (g.N, g.C, g.H, g.W), self._dtype)
        return F._max_pool2d_backward_unchecked(grad_output, indices, g, gi)


class AvgPool2d(_Pool2d):
    """2-D average pooling, as ``torch.nn.AvgPool2d``."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = check_bool(count_include_pad, "count_include_pad")

    def forward(self, x):
        x = check_array(x, "x", 4, "(N, C, H, W)")
        self._geometry_for(x)
        self._shape, self._dtype = x.shape, x.dtype
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def backward(self, grad_output):
        grad_output = self._check_grad(grad_output, self._dtype)
        return F.avg_pool2d_backward(grad_output, self._shape, self.kernel_size, self.stride,
                                     self.padding, self.ceil_mode, self.count_include_pad)


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

    def __init__(self, in_features, out_features, bias=True, *, rng=None, dtype=np.float32):
        super().__init__()
        self.in_features = check_int(in_features, "in_features")
        self.out_features = check_int(out_features, "out_features")
        dtype = _check_dtype(dtype)
        rng = get_rng(rng)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = Parameter(_uniform(rng, bound, (self.out_features, self.in_features), dtype))
        self.bias = Parameter(_uniform(rng, bound, (self.out_features,), dtype)) if check_bool(bias, "bias") else None
        self._x = None

    def forward(self, x):
        x = check_array(x, "x", 2, f"(N, {self.in_features})")
        if x.shape[1] != self.in_features:
            raise ValueError(f"Linear expects x of shape (N, {self.in_features}), got {x.shape}")
        if x.dtype != self.weight.data.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the layer's weight is {self.weight.data.dtype}")
        self._x = x
        return F._linear_forward_unchecked(x, self.weight.data,
                                           self.bias.data if self.bias is not None else None)

    def backward(self, grad_output):
        if self._x is None:
            raise RuntimeError("Linear.backward called before forward (each forward allows one backward)")
        grad_output = check_array(grad_output, "grad_output", 2, f"(N, {self.out_features})")
        if grad_output.shape != (self._x.shape[0], self.out_features):
            raise ValueError(
                f"grad_output must have shape {(self._x.shape[0], self.out_features)}, got {grad_output.shape}"
            )
        x, self._x = self._x, None  # free what forward saved once it is used
        return F._linear_backward_unchecked(grad_output, x, self.weight.data, self.weight.grad,
                                            self.bias.grad if self.bias is not None else None)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability p and scale the
    rest by 1/(1-p); identity in eval mode.

    Parameters
    ----------
    p : float in [0, 1]
    rng : numpy.random.Generator or int, optional
    """

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
            raise TypeError(f"p must be a float in [0, 1], got {type(p).__name__}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = float(p)
        self._rng = rng
        self._mask = None

    def forward(self, x):
        x = np.asarray(x)
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        keep = get_rng(self._rng).random(x.shape) >= self.p
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        self._mask = (keep * scale).astype(x.dtype)
        return x * self._mask

    def backward(self, grad_output):
        return grad_output if self._mask is None else grad_output * self._mask

    def extra_repr(self):
        return f"p={self.p}"


class Flatten(Module):
    """Flatten dimensions from ``start_dim`` on: (N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim=1):
        super().__init__()
        self.start_dim = check_int(start_dim, "start_dim", minimum=1)
        self._shape = None

    def forward(self, x):
        x = np.asarray(x)
        if x.ndim <= self.start_dim:
            raise ValueError(f"Flatten(start_dim={self.start_dim}) needs x with more than {self.start_dim} dims, got shape {x.shape}")
        self._shape = x.shape
        return x.reshape(*x.shape[: self.start_dim], -1)

    def backward(self, grad_output):
        return np.asarray(grad_output).reshape(self._shape)

    def extra_repr(self):
        return f"start_dim={self.start_dim}"
