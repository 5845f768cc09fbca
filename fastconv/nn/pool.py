"""Max and average pooling layers over :mod:`fastconv.functional`."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from .._typing import FloatArray, IntPair
from .._validation import check_array, check_bool, check_int, check_pair
from .module import Module



def _check_grad_output(grad_output, shape, dtype):
    """grad_output as a C-contiguous array, which must have the forward output's shape and dtype."""
    grad_output = check_array(grad_output, "grad_output", 4, str(shape))
    if grad_output.shape != shape or grad_output.dtype != dtype:
        raise ValueError(
            f"grad_output must have shape {shape} and dtype {dtype}, "
            f"got {grad_output.shape} {grad_output.dtype}"
        )
    return grad_output

class _Pool2d(Module):
    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                 ceil_mode: bool = False) -> None:
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
        self._key: Any = None
        self._geometry: Any = None

    def _geometry_for(self, x):
        if x.shape != self._key:
            self._geometry = F.pool_geometry(x.shape, self.kernel_size, self.stride, self.padding,
                                             self.ceil_mode)
            self._key = x.shape
        return self._geometry

    def _check_grad(self, grad_output, dtype):
        return _check_grad_output(grad_output, self._geometry.output_shape, dtype)

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        return s + (", ceil_mode=True" if self.ceil_mode else "")


class MaxPool2d(_Pool2d):
    """2-D max pooling, as ``torch.nn.MaxPool2d`` (-inf padding; NaN propagates)."""

    def forward(self, x: FloatArray) -> FloatArray:
        x = check_array(x, "x", 4, "(N, C, H, W)")
        g = self._geometry_for(x)
        self._indices = None  # our own reference would keep the workspace from reusing it
        ws = self._workspace
        out = ws.empty("out", g.output_shape, x.dtype)
        indices = ws.empty("indices", g.output_shape, np.int64)
        out, self._indices = F._max_pool2d_unchecked(x, g, out, indices)
        self._dtype = x.dtype
        return out

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        if self._indices is None:
            raise RuntimeError("MaxPool2d.backward called before forward (each forward allows one backward)")
        grad_output = self._check_grad(grad_output, self._dtype)
        g = self._geometry
        indices, self._indices = self._indices, None
        gi = self._workspace.empty("grad_input", (g.N, g.C, g.H, g.W), self._dtype)
        return F._max_pool2d_backward_unchecked(grad_output, indices, g, gi)


class AvgPool2d(_Pool2d):
    """2-D average pooling, as ``torch.nn.AvgPool2d``."""

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = check_bool(count_include_pad, "count_include_pad")

    def forward(self, x: FloatArray) -> FloatArray:
        x = check_array(x, "x", 4, "(N, C, H, W)")
        self._geometry_for(x)
        self._shape, self._dtype = x.shape, x.dtype
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        grad_output = self._check_grad(grad_output, self._dtype)
        return F.avg_pool2d_backward(grad_output, self._shape, self.kernel_size, self.stride,
                                     self.padding, self.ceil_mode, self.count_include_pad)


class _AdaptivePool2d(Module):
    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        F.pool._parse_output_size(output_size)  # TypeError/ValueError naming output_size
        self.output_size = output_size
        self._key: Any = None
        self._geometry: Any = None

    def _geometry_for(self, x):
        if x.shape != self._key:
            self._geometry = F.adaptive_pool_geometry(x.shape, self.output_size)
            self._key = x.shape
        return self._geometry

    def _check_grad(self, grad_output, dtype):
        return _check_grad_output(grad_output, self._geometry.output_shape, dtype)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(_AdaptivePool2d):
    """2-D adaptive average pooling, as ``torch.nn.AdaptiveAvgPool2d``.

    ``output_size`` is an int or a pair whose entries may be None (keep that input size);
    ``AdaptiveAvgPool2d(1)`` is global average pooling.
    """

    def forward(self, x: FloatArray) -> FloatArray:
        x = check_array(x, "x", 4, "(N, C, H, W)")
        g = self._geometry_for(x)
        self._dtype = x.dtype
        out = self._workspace.empty("out", g.output_shape, x.dtype)
        return F._adaptive_avg_pool2d_unchecked(x, g, out)

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        if self._geometry is None:
            raise RuntimeError("AdaptiveAvgPool2d.backward called before forward")
        grad_output = self._check_grad(grad_output, self._dtype)
        g = self._geometry
        gi = self._workspace.empty("grad_input", (g.N, g.C, g.H, g.W), self._dtype)
        return F._adaptive_avg_pool2d_backward_unchecked(grad_output, g, gi)


class AdaptiveMaxPool2d(_AdaptivePool2d):
    """2-D adaptive max pooling, as ``torch.nn.AdaptiveMaxPool2d`` (NaN propagates).

    With ``return_indices=True``, forward returns ``(y, indices)`` (flat ``h*W + w``
    argmax per plane) as PyTorch does; backward still takes only ``grad_output`` and uses
    the indices it saved.
    """

    def __init__(self, output_size: int | tuple[int | None, int | None], return_indices: bool = False) -> None:
        super().__init__(output_size)
        self.return_indices = check_bool(return_indices, "return_indices")
        self._indices = None

    def forward(self, x: FloatArray) -> FloatArray:
        x = check_array(x, "x", 4, "(N, C, H, W)")
        g = self._geometry_for(x)
        self._indices = None  # our own reference would keep the workspace from reusing it
        ws = self._workspace
        out = ws.empty("out", g.output_shape, x.dtype)
        indices = ws.empty("indices", g.output_shape, np.int64)
        out, self._indices = F._adaptive_max_pool2d_unchecked(x, g, out, indices)
        self._dtype = x.dtype
        return (out, self._indices) if self.return_indices else out

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        if self._indices is None:
            raise RuntimeError(
                "AdaptiveMaxPool2d.backward called before forward (each forward allows one backward)"
            )
        grad_output = self._check_grad(grad_output, self._dtype)
        g = self._geometry
        indices, self._indices = self._indices, None
        gi = self._workspace.empty("grad_input", (g.N, g.C, g.H, g.W), self._dtype)
        return F._max_pool2d_backward_unchecked(grad_output, indices, g, gi)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (", return_indices=True" if self.return_indices else "")


class Maxout(Module):
    """Maxout over channels, ``(N, C*k, ...) -> (N, C, ...)`` with k = ``num_pieces``:
    output channel c is the maximum of input channels c*k .. c*k+k-1 (see
    :func:`fastconv.functional.maxout`). The gradient goes to the first maximum."""

    def __init__(self, num_pieces: int) -> None:
        super().__init__()
        self.num_pieces = check_int(num_pieces, "num_pieces")
        self._key = None
        self._indices = None

    def forward(self, x: FloatArray) -> FloatArray:
        if not isinstance(x, np.ndarray) or x.shape != self._key:
            x, _ = F.pool._check_maxout(x, self.num_pieces)
            self._key = x.shape
            self._out_shape = F.pool._maxout_shapes(x.shape, self.num_pieces)[2]
        else:
            x = check_array(x, "x", x.ndim, "(N, C*num_pieces, ...)")
        self._indices = None  # our own reference would keep the workspace from reusing it
        ws = self._workspace
        out = ws.empty("out", self._out_shape, x.dtype)
        indices = ws.empty("indices", self._out_shape, np.int64)
        out, self._indices = F._maxout_unchecked(x, self.num_pieces, out, indices)
        self._dtype = x.dtype
        return out

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        if self._indices is None:
            raise RuntimeError("Maxout.backward called before forward (each forward allows one backward)")
        if not isinstance(grad_output, np.ndarray):
            raise TypeError(f"grad_output must be a numpy.ndarray, got {type(grad_output).__name__}")
        if grad_output.shape != self._out_shape or grad_output.dtype != self._dtype:
            raise ValueError(
                f"grad_output must have shape {self._out_shape} and dtype {self._dtype}, "
                f"got {grad_output.shape} {grad_output.dtype}"
            )
        grad_output = np.ascontiguousarray(grad_output)
        indices, self._indices = self._indices, None
        gi = self._workspace.empty("grad_input", self._key, self._dtype)
        return F._maxout_backward_unchecked(grad_output, indices, self._key, self.num_pieces, gi)

    def extra_repr(self) -> str:
        return f"num_pieces={self.num_pieces}"
