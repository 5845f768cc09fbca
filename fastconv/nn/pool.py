"""Max and average pooling layers over :mod:`fastconv.functional`."""
import numpy as np

from .. import functional as F
from .._validation import check_array, check_bool, check_pair
from .module import Module


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
