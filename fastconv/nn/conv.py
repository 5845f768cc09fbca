"""2-D convolution layer over :mod:`fastconv.functional`."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import functional as F
from .._random import get_rng
from .._typing import DTypeLike, FloatArray, IntPair, RNGLike
from .._validation import check_array, check_bool, check_choice, check_int, check_pair
from .init import _check_dtype, _uniform
from .module import Module, Parameter


class Conv2d(Module):
    """2-D convolution layer (cross-correlation), as ``torch.nn.Conv2d``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, dilation : int or (int, int)
    padding : int, (int, int), "valid" or "same"
    groups : int
    bias : bool
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
        What the padding holds (as ``torch.nn.Conv2d``): other modes than "zeros" pad the
        input with :func:`fastconv.pad` and convolve it without padding.
    algorithm : {"auto", "direct", "im2col"}
    needs_input_grad : bool
        False skips grad_input in backward (returns None): a network's first layer. Inside
        a container it is also skipped when no trainable parameter lies upstream (see
        :class:`fastconv.nn.Module`); frozen weights (``requires_grad=False``) skip
        grad_weight / grad_bias.
    rng : numpy.random.Generator or int, optional
        For initialisation; defaults to fastconv's global generator (``manual_seed``).
    dtype : float32 (default) or float64

    Weights and bias are initialised U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    ``fan_in = in_channels/groups * kH * kW`` (PyTorch's default).
    Input ``(N, in_channels, H, W)``; output ``(N, out_channels, OH, OW)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair | str = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", algorithm: str = "auto", *,
                 needs_input_grad: bool = True, rng: RNGLike = None, dtype: DTypeLike = np.float32) -> None:
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
            self.padding: str | tuple[int, int] = padding
        else:
            self.padding = check_pair(padding, "padding", minimum=0)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"in_channels ({self.in_channels}) and out_channels ({self.out_channels}) must "
                f"both be divisible by groups ({self.groups})"
            )
        self.algorithm = check_choice(algorithm, "algorithm", F.ALGORITHMS)
        F.check_padding_mode(padding_mode)
        self.padding_mode = padding_mode
        self.needs_input_grad = check_bool(needs_input_grad, "needs_input_grad")
        dtype = _check_dtype(dtype)
        rng = get_rng(rng)
        kh, kw = self.kernel_size
        fan_in = self.in_channels // self.groups * kh * kw
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = Parameter(_uniform(rng, bound, (self.out_channels, self.in_channels // self.groups, kh, kw), dtype))
        self.bias = Parameter(_uniform(rng, bound, (self.out_channels,), dtype)) if check_bool(bias, "bias") else None
        self._x: Any = None
        self._geometry_key: Any = None
        self._geometry: Any = None
        self._pad_geometry: Any = None  # padding_mode other than "zeros": how x is padded

    def _geometry_for(self, x):
        # Validation of the geometry runs once per input shape, not on every batch.
        key = x.shape
        if key != self._geometry_key:
            if x.shape[1] != self.in_channels:
                raise ValueError(
                    f"{type(self).__name__} expects x with {self.in_channels} channels "
                    f"(N, {self.in_channels}, H, W), got shape {x.shape}"
                )
            g = F.conv_geometry(x.shape, self.weight.data.shape, self.stride, self.padding,
                                self.dilation, self.groups)
            padded = F.conv_padding(self.padding_mode, g, x.dtype)
            # other padding modes: pad x, then a convolution of the padded x without padding
            self._pad_geometry, self._geometry = (None, g) if padded is None else padded
            self._geometry_key = key
        return self._geometry

    def forward(self, x: FloatArray) -> FloatArray:
        x = check_array(x, "x", 4, f"(N, {self.in_channels}, H, W)")
        w = self.weight.data
        if x.dtype != w.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the layer's weight is {w.dtype}")
        if self.bias is not None and self.bias.data.dtype != w.dtype:  # a reassigned .data
            raise TypeError(f"the layer's bias has dtype {self.bias.data.dtype} but its weight is {w.dtype}")
        g = self._geometry_for(x)
        pg = self._pad_geometry
        if pg is not None:
            xp = self._workspace.empty("x_padded", pg.output_shape, x.dtype)
            x = F.pad_unchecked(x, pg, out=xp)
        self._x = x
        b = self.bias.data if self.bias is not None else None
        out = self._workspace.empty("out", g.output_shape, x.dtype)
        return F.conv2d_forward_unchecked(x, w, b, g, self.algorithm, out)

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
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
        needs_input = self._input_grad_needed()
        bias = self.bias if self.bias is not None and self.bias.requires_grad else None
        needs_weight = self.weight.requires_grad or bias is not None
        pg = self._pad_geometry
        key = "grad_input" if pg is None else "grad_input_padded"
        gi = self._workspace.empty(key, x.shape, x.dtype) if needs_input else None
        gi, gw, gb = F.conv2d_backward_unchecked(grad_output, x, self.weight.data, g,
                                                 self.algorithm, needs_input, gi, needs_weight)
        if pg is not None and gi is not None:  # the padding's adjoint
            out = self._workspace.empty("grad_input", pg.input_shape, x.dtype)
            gi = F.pad_backward_unchecked(gi, pg, out)
        if needs_weight and self.weight.requires_grad:
            self.weight.grad += gw
        if bias is not None:
            bias.grad += gb
        return gi

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s
