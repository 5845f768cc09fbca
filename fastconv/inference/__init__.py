"""Planned inference: a model compiled once into a table of kernel calls.

``plan = fastconv.inference.compile(model, input_shape)`` returns a :class:`CompiledModel`;
``plan(x)`` computes ``model.eval()(x)`` with everything decided once, at compile time:

* the geometry of every layer is validated once (a call checks only ``x``'s shape and
  dtype);
* BatchNorm (eval mode, running statistics) is folded into the preceding convolution or
  fully connected layer: new weights ``w * gamma / sqrt(var + eps)`` and bias
  ``(b - mean) * gamma / sqrt(var + eps) + beta``, computed in float64, then rounded to the
  model's dtype once; a BatchNorm with no such layer before it becomes one per-channel
  affine step;
* bias, ReLU and a Residual's add (with the ReLU after it) are fused into the epilogue of
  the convolution or fully connected kernel, applied to each task's output while it is
  still in cache; Dropout and Identity disappear, Flatten is a view;
* every output and scratch buffer is allocated once per batch size and reused;
* the whole step list runs inside one call of a Cython executor
  (``fastconv._kernels._plan``): no Python between layers (layers without a kernel there,
  such as Tanh or Softmax, run as Python steps on preallocated arrays);
* measured choices, made when a plan is built (by timing, not by a table): each step's
  thread count (one thread or all of ``fastconv.get_num_threads()``; at batch 1 an OpenMP
  fork/join can cost more than a small layer, and with few images a convolution splits
  its output rows between threads), each 3x3 stride-1 convolution's algorithm (the direct
  tiles or Winograd F(2x2, 3x3), both executor steps with the epilogue fused; 1x1
  convolutions may go to im2col + GEMM), and how a batch runs: layer by layer over the
  whole batch, or in chunks of 1 to 16 images that each go through the whole network on
  one thread (one parallel region per call, activations kept in that core's cache).
  With one thread the choices compare CPU time, so a busy machine disturbs them less.

Weights are a snapshot: the plan copies the model when it is compiled, so later changes to
the model (training, ``load_state_dict``) do not reach it until :meth:`CompiledModel.refresh`
(or a new :func:`compile`). The model itself is never modified, its training flags included.

A new batch size builds (and caches) a plan of its own; so does a new thread count.
"""
import copy
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from .._parallel import get_num_threads
from .._validation import FLOAT_DTYPES, check_float_dtype
from ..nn.module import Module
from ._lowering import fold_batch_norm  # noqa: F401  (documented helper)
from ._planning import _ChunkedPlan, _choose_plan, _Plan  # noqa: F401  (tests build plans directly)

__all__ = ["compile", "CompiledModel"]


# -- public API -----------------------------------------------------------------------------
def _model_dtype(model):
    for p in model.parameters():
        return p.data.dtype
    for _, b in model.named_buffers():
        if b is not None and b.dtype in FLOAT_DTYPES:
            return b.dtype
    return np.dtype(np.float32)


def _check_input_shape(input_shape):
    if isinstance(input_shape, np.ndarray):
        input_shape = tuple(input_shape.tolist())
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 2:
        raise TypeError(f"input_shape must be a tuple of ints (N, C, ...), batch first, got {input_shape!r}")
    out = []
    for s in input_shape:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"input_shape must be a tuple of ints (N, C, ...), got {input_shape!r}")
        if s < 1:
            raise ValueError(f"input_shape entries must be positive, got {tuple(input_shape)}")
        out.append(int(s))
    return tuple(out)


class CompiledModel:
    """An eval-mode model compiled for inputs of one shape (any batch size).

    Create with :func:`compile`. Calling it runs the whole network::

        y = plan(x)   # x: (N, *input_shape[1:]), the plan's dtype

    Attributes
    ----------
    input_shape : tuple of int
        The shape given to :func:`compile` (its batch size is planned eagerly; others
        are planned, and cached, on first use).
    dtype : numpy.dtype
    copy : bool
        Whether a call returns a new array (default) or the plan's own output buffer.
    """

    def __init__(self, model: Module, input_shape: Tuple[int, ...], dtype: np.dtype,
                 copy_output: bool, measure: bool) -> None:
        self._model = model
        self.input_shape = input_shape
        self.dtype = dtype
        self.copy = copy_output
        self._measure = measure
        self._plans: dict = {}
        self.refresh()

    def refresh(self) -> "CompiledModel":
        """Take a new snapshot of the model's weights and buffers and drop every plan
        (they are rebuilt on the next call). Needed after the model changed: a plan uses
        the weights it was compiled with."""
        snapshot = copy.deepcopy(self._model)
        snapshot.eval()
        # built against the copy: the model is never touched (its training flags included)
        self._snapshot = snapshot
        self._plans = {}
        self._plan_for(self.input_shape)
        return self

    def _plan_for(self, shape):
        n_threads = get_num_threads()
        key = (shape, n_threads)
        plan = self._plans.get(key)
        if plan is None:
            if shape[1:] != self.input_shape[1:] or len(shape) != len(self.input_shape):
                raise ValueError(
                    f"x must have shape (N, {', '.join(map(str, self.input_shape[1:]))}) for this "
                    f"plan (compiled for input_shape {self.input_shape}), got {shape}")
            if shape[0] < 1:
                raise ValueError(f"x must have at least one sample, got shape {shape}")
            plan = _choose_plan(self._snapshot, shape, self.dtype, n_threads, self._measure)
            self._plans[key] = plan
        return plan

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if type(x) is not np.ndarray:
            if not isinstance(x, np.ndarray):
                raise TypeError(f"x must be a numpy.ndarray of {self.dtype}, got {type(x).__name__}")
        if x.dtype != self.dtype:
            if x.dtype.kind == "f" and x.dtype.itemsize == self.dtype.itemsize:  # byte order
                x = x.astype(self.dtype)
            else:
                raise TypeError(f"x must have dtype {self.dtype} (the plan's), got {x.dtype}")
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        plan = self._plans.get((x.shape, get_num_threads()))
        if plan is None:
            plan = self._plan_for(x.shape)
        out = plan.run(x)
        return out.copy() if self.copy else out

    @property
    def output_shape(self) -> Tuple[int, ...]:
        return self._plan_for(self.input_shape).output.shape

    def steps(self, batch_size: Optional[int] = None) -> str:
        """The step list of the plan for ``batch_size`` (default: input_shape's), as text."""
        shape = self.input_shape if batch_size is None else (int(batch_size),) + self.input_shape[1:]
        return self._plan_for(shape).describe()

    def __repr__(self) -> str:
        plan = self._plan_for(self.input_shape)
        return (f"CompiledModel(input_shape={self.input_shape}, dtype={self.dtype}, "
                f"threads={plan.n_threads}, copy={self.copy}, steps=[\n{plan.describe()}\n])")


def compile(model: Module, input_shape: Sequence[int], *, dtype: Any = None, copy: bool = True,  # noqa: A001
            measure: bool = True) -> CompiledModel:
    """Compile ``model`` (eval mode) into a :class:`CompiledModel` for inputs of ``input_shape``.

    Parameters
    ----------
    model : Module
        Built from Sequential, Residual, Concat, Conv2d, BatchNorm1d/2d, Linear, ReLU,
        MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, Flatten, Dropout,
        Identity (kernel steps) and Tanh, Sigmoid, LeakyReLU, ELU, Softmax, LogSoftmax,
        Maxout (Python steps). Anything else: ValueError naming the layer.
    input_shape : tuple of int
        The whole input shape, batch first, e.g. ``(1, 1, 28, 28)``. Other batch sizes
        work too (each is planned on first use and cached).
    dtype : float32 or float64, optional
        Of the inputs; defaults to the model's parameters' (float32 for a model without
        parameters). Must match the parameters when given.
    copy : bool, default True
        True: each call returns a new array. False: each call returns the plan's own
        output buffer, overwritten by the next call with the same batch size (saves one
        small copy; keep it only if you consume the result before the next call). The
        default is the safe one: ``y1 = plan(a); y2 = plan(b)`` never changes ``y1``.
    measure : bool, default True
        Choose each step's thread count by timing it (one thread vs all) when a plan is
        built; False keeps all threads for every step (faster to build, for tests).

    Returns
    -------
    CompiledModel
        ``plan(x)`` equals ``model.eval()(x)`` up to float rounding (BatchNorm folding and
        the direct convolution kernels round differently from the layer-by-layer path).
        The plan snapshots the weights: call ``plan.refresh()`` after changing the model.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a fastconv.nn.Module, got {type(model).__name__}")
    shape = _check_input_shape(input_shape)
    if not isinstance(copy, (bool, np.bool_)):
        raise TypeError(f"copy must be a bool, got {type(copy).__name__}")
    if not isinstance(measure, (bool, np.bool_)):
        raise TypeError(f"measure must be a bool, got {type(measure).__name__}")
    model_dtype = _model_dtype(model)
    if dtype is None:
        dtype = model_dtype
    else:
        dtype = check_float_dtype(dtype)
        if any(True for _ in model.parameters()) and dtype != model_dtype:
            raise TypeError(f"dtype {dtype} does not match the model's parameters ({model_dtype})")
    return CompiledModel(model, shape, dtype, bool(copy), bool(measure))
