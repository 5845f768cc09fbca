"""Padding layers, as ``torch.nn.ZeroPad2d`` / ``ConstantPad2d`` / ``ReflectionPad2d`` /
``ReplicationPad2d`` / ``CircularPad2d``, over :func:`fastconv.functional.pad` and its
adjoint :func:`fastconv.functional.pad_backward`."""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Optional, Sequence, Tuple, Union

import numpy as np

from .. import functional as F
from .._validation import check_allocation, check_array
from .module import Module

if TYPE_CHECKING:
    from .._typing import FloatArray
    from ..functional.pad import PadGeometry

#: an int (every side) or (left, right, top, bottom)
Padding = Union[int, Sequence[int]]


def _check_padding(padding: Any) -> Tuple[int, ...]:
    """(left, right, top, bottom) from an int or a sequence of 4 ints (PyTorch's forms)."""
    if isinstance(padding, np.ndarray) and padding.ndim == 1:
        padding = tuple(padding.tolist())
    if isinstance(padding, (tuple, list)):
        if len(padding) != 4:
            raise ValueError(
                f"padding must be an int or a tuple of 4 ints (left, right, top, bottom), got "
                f"a sequence of length {len(padding)}: {tuple(padding)!r}"
            )
        for p in padding:
            if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Integral):
                raise TypeError(
                    f"padding must be an int or a tuple of 4 ints (left, right, top, bottom), "
                    f"got {type(p).__name__} {p!r} in {tuple(padding)!r}"
                )
        return tuple(int(p) for p in padding)
    if isinstance(padding, (bool, np.bool_)) or not isinstance(padding, numbers.Integral):
        raise TypeError(
            f"padding must be an int or a tuple of 4 ints (left, right, top, bottom), got "
            f"{type(padding).__name__} {padding!r}"
        )
    return (int(padding),) * 4


class _Pad2d(Module):
    """Pads the last two axes of (N, C, H, W) or (C, H, W) input by ``padding``.

    Attributes
    ----------
    padding : tuple of 4 ints, (left, right, top, bottom)
        Negative entries crop, as in PyTorch.
    mode : {"constant", "reflect", "replicate", "circular"}
        The :func:`fastconv.functional.pad` mode.
    value : float
        The fill of mode "constant" (0 for the other modes).
    """

    mode = "constant"
    _geometry: Optional[PadGeometry]

    def __init__(self, padding: Padding) -> None:
        super().__init__()
        self.padding = _check_padding(padding)
        self.value = 0.0
        self._key: Any = None
        self._geometry = None
        self._in_shape: Optional[Tuple[int, ...]] = None

    def _geometry_for(self, shape: Tuple[int, ...], dtype: np.dtype) -> PadGeometry:
        g = self._geometry
        if g is None or (shape, dtype) != self._key:
            g = self._geometry = F.pad_geometry(shape, self.padding, self.mode)
            check_allocation(g.output_shape, dtype, f"{type(self).__name__} output")
            self._key = (shape, dtype)
        return g

    def forward(self, x: FloatArray) -> FloatArray:
        if isinstance(x, np.ndarray) and x.ndim == 3:  # (C, H, W), as PyTorch
            x4 = check_array(x, "x", 3, "(N, C, H, W) or (C, H, W)")[None]
        else:
            x4 = check_array(x, "x", 4, "(N, C, H, W) or (C, H, W)")
        g = self._geometry_for(x4.shape, x4.dtype)
        out = self._workspace.empty("out", g.output_shape, x4.dtype)
        F.pad_unchecked(x4, g, self.value, out)
        self._in_shape = x.shape
        self._dtype = x4.dtype
        return out if x.ndim == 4 else out[0]

    def backward(self, grad_output: FloatArray) -> Optional[FloatArray]:
        g = self._geometry
        if self._in_shape is None or g is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        squeeze = len(self._in_shape) == 3
        want = g.output_shape[1:] if squeeze else g.output_shape
        if not isinstance(grad_output, np.ndarray):
            raise TypeError(f"grad_output must be a numpy.ndarray, got {type(grad_output).__name__}")
        if grad_output.shape != want or grad_output.dtype != self._dtype:
            raise ValueError(
                f"grad_output must have shape {want} and dtype {self._dtype} (the forward "
                f"output's), got {grad_output.shape} {grad_output.dtype}"
            )
        if not self._input_grad_needed():
            return None
        g4 = check_array(grad_output[None] if squeeze else grad_output, "grad_output", 4, str(want))
        gi = self._workspace.empty("grad_input", g.input_shape, self._dtype)
        F.pad_backward_unchecked(g4, g, gi)
        return gi[0] if squeeze else gi

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad2d(_Pad2d):
    """Zeros around the image, as ``torch.nn.ZeroPad2d(padding)``.

    Parameters
    ----------
    padding : int or tuple of 4 ints, (left, right, top, bottom)
        Negative values crop.

    Shapes: (N, C, H, W) -> (N, C, H + top + bottom, W + left + right); (C, H, W) inputs
    are accepted too.
    """


class ConstantPad2d(_Pad2d):
    """``value`` around the image, as ``torch.nn.ConstantPad2d(padding, value)``.

    Parameters
    ----------
    padding : int or tuple of 4 ints, (left, right, top, bottom)
    value : float
    """

    def __init__(self, padding: Padding, value: float) -> None:
        super().__init__(padding)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"value must be a real number, got {type(value).__name__} {value!r}")
        self.value = float(value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ReflectionPad2d(_Pad2d):
    """The image mirrored about its edge (the edge not repeated), as
    ``torch.nn.ReflectionPad2d(padding)``: each pad must be smaller than its axis."""

    mode = "reflect"


class ReplicationPad2d(_Pad2d):
    """The edge pixels repeated, as ``torch.nn.ReplicationPad2d(padding)``."""

    mode = "replicate"


class CircularPad2d(_Pad2d):
    """The image repeated periodically, as ``torch.nn.CircularPad2d(padding)``: each pad at
    most the size of its axis."""

    mode = "circular"
