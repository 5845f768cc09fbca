"""Ops with several inputs or outputs, for :class:`~fastconv.nn.Graph` nodes: ``Add``
(element-wise sum), ``Cat`` (concatenation) and ``Split``, with explicit backward.

``Add`` and ``Cat`` take their inputs as separate arguments (``add(a, b)``) and their
``backward`` returns a tuple with one gradient per input; ``Split`` returns a tuple and
its ``backward`` takes a tuple of gradients (None for an output that got none).
"""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._validation import FLOAT_DTYPES, check_int
from .module import Module

if TYPE_CHECKING:
    from .._typing import FloatArray

# Add/Cat.backward return a tuple (one gradient per input) and Split's forward/backward
# return/take tuples: their signatures differ from Module's one-array ones.


def _check_inputs(xs: Sequence[Any], who: str, minimum: int) -> np.dtype:
    if len(xs) < minimum:
        raise ValueError(f"{who} needs at least {minimum} inputs, got {len(xs)}")
    for i, x in enumerate(xs):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{who} input {i} must be a numpy.ndarray, got {type(x).__name__}")
        if x.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{who} input {i} must be a float32 or float64 array, got {x.dtype}")
    first = xs[0].dtype
    for i, x in enumerate(xs[1:], start=1):
        if x.dtype != first:
            raise TypeError(f"{who} inputs must share one dtype: input 0 is {first}, input {i} is {x.dtype}")
    return first


def _check_grad(grad_output: Any, shape: Tuple[int, ...], dtype: np.dtype, name: str = "grad_output") -> FloatArray:
    if not isinstance(grad_output, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(grad_output).__name__}")
    if grad_output.shape != shape or grad_output.dtype != dtype:
        raise ValueError(
            f"{name} must have shape {shape} and dtype {dtype} (the forward output's), got "
            f"{grad_output.shape} {grad_output.dtype}"
        )
    return grad_output


def _check_dim(dim: int, ndim: int, who: str) -> int:
    if not -ndim <= dim < ndim:
        raise ValueError(f"{who} dim={dim} is out of range for inputs of {ndim} dims")
    return dim % ndim


class Add(Module):
    """The element-wise sum of two or more arrays (ONNX ``Add`` / ``Sum``; ``a + b``).

    ``forward(*xs)``: arrays of one float dtype whose shapes broadcast as NumPy's (a
    ``(C, 1, 1)`` or ``(1, C, 1, 1)`` operand added to ``(N, C, H, W)``, as ONNX Add with a
    bias); the result has the broadcast shape. ``backward(grad_output)`` returns a tuple,
    one gradient per input, each of its input's shape (summed over the axes it was
    broadcast along); a tuple of None when no input gradient is needed.
    """

    num_outputs = 1

    def __init__(self) -> None:
        super().__init__()
        self._shapes: Optional[Tuple[Tuple[int, ...], ...]] = None

    def __call__(self, *xs: FloatArray) -> FloatArray:
        return self.forward(*xs)

    def forward(self, *xs: FloatArray) -> FloatArray:
        dtype = _check_inputs(xs, "Add", 2)
        shapes = tuple(x.shape for x in xs)
        try:
            shape = np.broadcast_shapes(*shapes)
        except ValueError:
            raise ValueError(f"Add inputs must have broadcastable shapes, got {list(shapes)} "
                             f"(input {self._first_mismatch(shapes)} does not fit)") from None
        out = self._workspace.empty("out", shape, dtype)
        np.add(xs[0], xs[1], out=out)
        for x in xs[2:]:
            np.add(out, x, out=out)
        self._shapes = shapes
        self._shape, self._dtype = shape, dtype
        return out

    @staticmethod
    def _first_mismatch(shapes: Sequence[Tuple[int, ...]]) -> int:
        for i in range(1, len(shapes)):
            try:
                np.broadcast_shapes(*shapes[: i + 1])
            except ValueError:
                return i
        return len(shapes) - 1  # pragma: no cover

    def backward(self, grad_output: FloatArray) -> Tuple[Optional[FloatArray], ...]:
        if self._shapes is None:
            raise RuntimeError("Add.backward called before forward")
        g = _check_grad(grad_output, self._shape, self._dtype)
        if not self._input_grad_needed():
            return (None,) * len(self._shapes)
        return tuple(self._reduce(g, s) for s in self._shapes)

    @staticmethod
    def _reduce(g: FloatArray, shape: Tuple[int, ...]) -> FloatArray:
        if g.shape == shape:
            return g
        lead = g.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
        return np.array(g.sum(axis=axes, keepdims=True).reshape(shape), order="C")  # a new array, 0-d kept


class Cat(Module):
    """Concatenation of the inputs along ``dim`` (``torch.cat(xs, dim)``, ONNX ``Concat``).

    Parameters
    ----------
    dim : int, default 1
        Negative counts from the end. The inputs must agree on every other axis and on
        the dtype.

    ``backward(grad_output)`` returns a tuple of the input-sized pieces of grad_output
    (C-contiguous copies); a tuple of None when no input gradient is needed. One input is
    allowed (a copy).
    """

    num_outputs = 1

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=-(2**31))
        self._sizes: Optional[List[int]] = None

    def __call__(self, *xs: FloatArray) -> FloatArray:
        return self.forward(*xs)

    def forward(self, *xs: FloatArray) -> FloatArray:
        dtype = _check_inputs(xs, "Cat", 1)
        first = xs[0]
        axis = _check_dim(self.dim, first.ndim, "Cat")
        for i, x in enumerate(xs[1:], start=1):
            if (x.ndim != first.ndim or x.shape[:axis] != first.shape[:axis]
                    or x.shape[axis + 1:] != first.shape[axis + 1:]):
                raise ValueError(
                    f"Cat inputs must have the same shape except along dim {self.dim}: input 0 "
                    f"has shape {first.shape}, input {i} has shape {x.shape}"
                )
        shape = list(first.shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        out = self._workspace.empty("out", tuple(shape), dtype)
        np.concatenate(xs, axis=axis, out=out)
        self._sizes = [x.shape[axis] for x in xs]
        self._axis, self._shape, self._dtype = axis, out.shape, dtype
        return out

    def backward(self, grad_output: FloatArray) -> Tuple[Optional[FloatArray], ...]:
        if self._sizes is None:
            raise RuntimeError("Cat.backward called before forward")
        g = _check_grad(grad_output, self._shape, self._dtype)
        if not self._input_grad_needed():
            return (None,) * len(self._sizes)
        index = [slice(None)] * g.ndim
        grads, start = [], 0
        for size in self._sizes:
            index[self._axis] = slice(start, start + size)
            start += size
            grads.append(np.ascontiguousarray(g[tuple(index)]))
        return tuple(grads)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Split(Module):
    """Splits its input along ``dim`` into a tuple of arrays (``torch.split`` with sizes,
    ONNX ``Split``).

    Parameters
    ----------
    sections : int or sequence of int
        An int: that many equal parts (the axis must divide evenly, as ``np.split``); a
        sequence: the size of each part (>= 0, summing to the axis' size).
    dim : int, default 1
        Negative counts from the end.

    ``forward(x)`` returns a tuple of new C-contiguous arrays. ``backward(grads)`` takes a
    tuple with one gradient per output, None for an output that got none (zeros), and
    returns the input gradient (None when it is not needed).
    """

    sections: Union[int, List[int]]

    def __init__(self, sections: Union[int, Sequence[int]], dim: int = 1) -> None:
        super().__init__()
        if isinstance(sections, (tuple, list, np.ndarray)):
            sizes = list(sections.tolist() if isinstance(sections, np.ndarray) else sections)
            if not sizes:
                raise ValueError("sections must be a positive int or a non-empty sequence of sizes, got []")
            for s in sizes:
                if isinstance(s, (bool, np.bool_)) or not isinstance(s, numbers.Integral):
                    raise TypeError(f"sections must be a positive int or a sequence of ints, got "
                                    f"{type(s).__name__} {s!r} in {sizes!r}")
                if s < 0:
                    raise ValueError(f"sections must be sizes >= 0, got {sizes!r}")
            self.sections = [int(s) for s in sizes]
        elif isinstance(sections, (bool, np.bool_)) or not isinstance(sections, numbers.Integral):
            raise TypeError(f"sections must be a positive int or a sequence of ints, got "
                            f"{type(sections).__name__} {sections!r}")
        else:
            self.sections = check_int(sections, "sections")
        self.dim = check_int(dim, "dim", minimum=-(2**31))
        self._in_shape = None

    @property
    def num_outputs(self) -> int:
        """How many arrays forward returns."""
        return self.sections if isinstance(self.sections, int) else len(self.sections)

    def _sizes_for(self, n: int) -> List[int]:
        if isinstance(self.sections, int):
            if n % self.sections:
                raise ValueError(f"Split sections={self.sections} does not divide dim {self.dim} "
                                 f"of size {n} into equal parts")
            return [n // self.sections] * self.sections
        if sum(self.sections) != n:
            raise ValueError(f"Split sections {self.sections} sum to {sum(self.sections)}, but dim "
                             f"{self.dim} has size {n}")
        return self.sections

    def forward(self, x: FloatArray) -> Tuple[FloatArray, ...]:
        _check_inputs((x,), "Split", 1)
        axis = _check_dim(self.dim, x.ndim, "Split")
        sizes = self._sizes_for(x.shape[axis])
        index = [slice(None)] * x.ndim
        outs, start = [], 0
        for i, size in enumerate(sizes):
            index[axis] = slice(start, start + size)
            start += size
            shape = x.shape[:axis] + (size,) + x.shape[axis + 1:]
            out = self._workspace.empty(i, shape, x.dtype)
            out[...] = x[tuple(index)]
            outs.append(out)
        self._in_shape, self._dtype, self._axis, self._sizes = x.shape, x.dtype, axis, sizes
        self._out_shapes = [o.shape for o in outs]
        return tuple(outs)

    def backward(self, grads: Sequence[Optional[FloatArray]]) -> Optional[FloatArray]:
        if self._in_shape is None:
            raise RuntimeError("Split.backward called before forward")
        if isinstance(grads, np.ndarray) or not isinstance(grads, (tuple, list)):
            raise TypeError(f"Split.backward takes a tuple of {len(self._sizes)} gradients (None "
                            f"for an unused output), got {type(grads).__name__}")
        if len(grads) != len(self._sizes):
            raise ValueError(f"Split.backward takes {len(self._sizes)} gradients, one per output, "
                             f"got {len(grads)}")
        for i, (g, shape) in enumerate(zip(grads, self._out_shapes)):
            if g is not None:
                _check_grad(g, shape, self._dtype, f"grads[{i}]")
        if not self._input_grad_needed():
            return None
        gi = self._workspace.empty("grad_input", self._in_shape, self._dtype)
        index = [slice(None)] * len(self._in_shape)
        start = 0
        for g, size in zip(grads, self._sizes):
            index[self._axis] = slice(start, start + size)
            start += size
            if g is None:
                gi[tuple(index)] = 0
            else:
                gi[tuple(index)] = g
        return gi

    def extra_repr(self) -> str:
        return f"sections={self.sections}, dim={self.dim}"
