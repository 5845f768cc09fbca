"""``fastconv.summary``: a Keras-style table of a model for one input shape.

One row per leaf layer (a module without children), in the order the forward pass calls
them: dotted name and type, output shape, parameter count, multiply-adds and receptive
field. Shapes come from one forward pass on zeros in eval mode (no dropout, BatchNorm uses
and keeps its running statistics); the model is left as it was (training flags, cached
forward state, reused arrays, buffers).

Conventions
-----------
Multiply-adds (for one forward pass of ``input_shape``, batch included; biases are not
counted):

* Conv2d: ``N * C_out * OH * OW * (C_in / groups) * kH * kW``;
* Linear: ``N * in_features * out_features`` (times any extra leading axes);
* BatchNorm1d/2d: one per output element (eval mode folds it into ``x * a + b``);
* pooling, activations, dropout, softmax, reshapes, padding, Maxout: 0 (comparisons,
  additions and transcendental functions are not multiply-adds);
* unknown layers: 0, unless a rule is registered (:func:`register_layer_rule`).

Receptive field, per spatial axis of the input (``input_shape[2:]``), in input pixels:
its size ``r`` and its jump ``j`` (the distance in input pixels between neighbouring
outputs), starting at ``r = j = 1``. A window layer (convolution, pooling: kernel ``k``,
stride ``s``, dilation ``d``) gives ``r + (k - 1) * d * j`` and ``j * s`` (padding shifts
the field but does not change its size, so sizes count padded pixels too); element-wise
layers keep it; global / adaptive pooling (output size other than the input's), Flatten
and Linear make it the whole input (reported as the input's size, flag ``whole_input``),
and it stays whole from there on; parallel branches (Residual, Concat) take the maximum
over their paths, the identity shortcut counting as a path, and so do layers with several
inputs (a Graph's Add and Cat nodes: the maximum over the paths into them).
"""
import numbers
from typing import Any, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import nn
from ._validation import check_allocation, check_float_dtype
from .nn.module import Module, state_restored


class Window(NamedTuple):
    """What a sliding-window layer does to the receptive field (per spatial axis)."""

    # per-axis tuples, or ints taken for every axis
    kernel: Union[int, Tuple[int, ...]]
    stride: Union[int, Tuple[int, ...]]
    dilation: Union[int, Tuple[int, ...]]


#: the receptive field is unchanged (element-wise layers)
KEEP = "keep"
#: every output depends on the whole input (global pooling, Flatten, Linear)
WHOLE = "whole"

_RULES = {}


def register_layer_rule(cls):
    """Decorator registering how :func:`summary` counts a layer class.

    Parameters
    ----------
    cls : type or str
        A Module subclass, or a class name (a layer looked up by name, so that rules may
        exist before the class does; subclasses inherit their base's rule).

    The decorated function is called as ``rule(layer, input_shape, output_shape)`` and
    returns ``(mult_adds, effect)``: an int, and :data:`KEEP`, :data:`WHOLE` or a
    :class:`Window` of per-axis ``(kernel, stride, dilation)`` tuples (ints are taken for
    every axis).
    """
    if isinstance(cls, str):
        if not cls.isidentifier():
            raise ValueError(f"cls must be a class or a class name, got {cls!r}")
    elif not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"cls must be a Module subclass or a class name, got {cls!r}")

    def decorate(rule):
        if not callable(rule):
            raise TypeError(f"a layer rule must be callable, got {type(rule).__name__}")
        _RULES[cls] = rule
        return rule

    return decorate


def _rule_for(layer):
    for klass in type(layer).__mro__:
        if klass is Module or klass is object:
            break
        rule = _RULES.get(klass) or _RULES.get(klass.__name__)
        if rule is not None:
            return rule
    return _generic_rule


def _generic_rule(layer, input_shape, output_shape):
    # sliding windows (convolutions, pools) by their attributes, else element-wise
    kernel = getattr(layer, "kernel_size", None)
    if kernel is None:
        return 0, KEEP
    return 0, Window(kernel, getattr(layer, "stride", None) or 1, getattr(layer, "dilation", None) or 1)


def _prod(values):
    out = 1
    for v in values:
        out *= int(v)
    return out


@register_layer_rule(nn.Conv2d)
def _conv2d_rule(layer, input_shape, output_shape):
    macs = (_prod(output_shape) * (layer.in_channels // layer.groups) * _prod(layer.kernel_size))
    return macs, Window(layer.kernel_size, layer.stride, layer.dilation)


@register_layer_rule(nn.Linear)
def _linear_rule(layer, input_shape, output_shape):
    return _prod(output_shape) * layer.in_features, WHOLE


@register_layer_rule(nn.Flatten)
def _flatten_rule(layer, input_shape, output_shape):
    return 0, WHOLE


@register_layer_rule(nn.MaxPool2d)
@register_layer_rule(nn.AvgPool2d)
def _pool2d_rule(layer, input_shape, output_shape):
    return 0, Window(layer.kernel_size, layer.stride, getattr(layer, "dilation", 1))


@register_layer_rule("AdaptiveAvgPool2d")
@register_layer_rule("AdaptiveMaxPool2d")
def _adaptive_pool_rule(layer, input_shape, output_shape):
    # an output as large as the input is the identity; otherwise (global pooling and the
    # uneven windows of other sizes) the whole input, an upper bound for some sizes
    return 0, KEEP if tuple(output_shape[2:]) == tuple(input_shape[2:]) else WHOLE


@register_layer_rule("BatchNorm1d")
@register_layer_rule("BatchNorm2d")
def _batchnorm_rule(layer, input_shape, output_shape):
    return _prod(output_shape), KEEP


@register_layer_rule("Add")  # the merge ops: no multiply-adds, the field of their inputs
@register_layer_rule("Cat")
@register_layer_rule("Split")
@register_layer_rule("_Pad2d")  # ZeroPad2d ... CircularPad2d: the field is shifted, not grown
@register_layer_rule("Softmax")
@register_layer_rule("LogSoftmax")
@register_layer_rule("Identity")
@register_layer_rule("Maxout")  # channels / num_pieces (shape from the pass), field unchanged
@register_layer_rule(nn.Dropout)
def _elementwise_rule(layer, input_shape, output_shape):
    return 0, KEEP


# -- receptive-field arithmetic ------------------------------------------------------------
# A field is (sizes, jumps, whole) with one entry per spatial axis, or None where there is
# no spatial axis (a 2-D input) or the axes no longer line up with the input's.

def _per_axis(value, n):
    if isinstance(value, numbers.Integral):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        return None
    return value


def _apply(effect, rf, layer, full):
    if rf is None or effect == KEEP:
        return rf
    if rf[2] or effect == WHOLE:
        return (full, full, True)
    if not isinstance(effect, Window):
        raise TypeError(
            f"the summary rule of {type(layer).__name__} returned {effect!r}; expected KEEP, "
            "WHOLE or a Window"
        )
    n = len(full)
    k, s, d = (_per_axis(v, n) for v in effect)
    if k is None or s is None or d is None:
        return None
    sizes, jumps, _ = rf
    return (tuple(r + (ki - 1) * di * j for r, ki, di, j in zip(sizes, k, d, jumps)),
            tuple(j * si for j, si in zip(jumps, s)), False)


def _combine(rfs, full):
    """The maximum over parallel paths."""
    if not rfs or any(r is None for r in rfs):
        return None
    if any(r[2] for r in rfs):
        return (full, full, True)
    return (tuple(max(axis) for axis in zip(*(r[0] for r in rfs))),
            tuple(max(axis) for axis in zip(*(r[1] for r in rfs))), False)


class _Tracer:
    """Wraps every module's forward for one pass and records what flows through it."""

    def __init__(self, names, full):
        self.names = names
        self.full = full
        self.rf = {}  # id(array) -> field of that array
        self.keep = []  # the arrays of self.rf, kept alive so that their ids stay unique
        self.stack = []  # for each container being run: its direct children's fields
        self.last = None
        self.rows = []
        self.activation_bytes = 0

    def mark(self, array, field):
        self.rf[id(array)] = field
        self.keep.append(array)
        self.last = field

    def field_of(self, x):
        a = x
        while isinstance(a, np.ndarray):
            if id(a) in self.rf:
                return self.rf[id(a)]
            a = a.base
        return self.last  # made by code outside any module: assume it follows the last

    def wrap(self, module, forward):
        def traced(*args, **kwargs):
            # several array arguments (Add, Cat, a Graph node with k inputs): the field is
            # the maximum over them; several outputs (Split, a Graph): each gets the field
            x = args[0] if args else None
            arrays = [a for a in args if isinstance(a, np.ndarray)]
            fields = [self.field_of(a) for a in arrays] or [self.last]
            rf_in = fields[0] if len(fields) == 1 else _combine(fields, self.full)
            leaf = not module._modules
            if not leaf:
                self.stack.append([])
            try:
                y = forward(*args, **kwargs)
            finally:
                children = None if leaf else self.stack.pop()
            outs = tuple(y) if isinstance(y, tuple) else (y,)
            if not outs or not all(isinstance(a, np.ndarray) for a in outs):
                return y
            for a in {id(a): a for a in outs}.values():
                if id(a) not in self.rf and not any(np.may_share_memory(a, b) for b in arrays):
                    self.activation_bytes += a.nbytes
            out_shape = outs[0].shape if len(outs) == 1 else tuple(a.shape for a in outs)
            if leaf:
                macs, effect = _rule_for(module)(module, tuple(np.shape(x)), out_shape)
                rf_out = _apply(effect, rf_in, module, self.full)
                in_shape = tuple(np.shape(x)) if len(arrays) < 2 else tuple(a.shape for a in arrays)
                self._row(module, in_shape, out_shape, int(macs), rf_out)
                for a in outs:
                    self.mark(a, rf_out)
            elif all(id(a) in self.rf for a in outs):
                # children's outputs passed on (Sequential, Graph)
                passed = [self.rf[id(a)] for a in outs]
                rf_out = passed[0] if len(passed) == 1 else _combine(passed, self.full)
                for a in outs:
                    self.mark(a, self.rf[id(a)])
            else:
                rf_out = _combine((children or []) + [rf_in], self.full)
                for a in outs:
                    self.mark(a, rf_out)
            if self.stack:
                self.stack[-1].append(rf_out)
            return y

        return traced

    def _row(self, module, input_shape, output_shape, macs, rf):
        params = list(module._parameters.values())
        self.rows.append({
            "name": self.names.get(id(module), ""),
            "type": type(module).__name__,
            "input_shape": input_shape,
            "output_shape": output_shape,
            "params": sum(p.data.size for p in params),
            "trainable_params": sum(p.data.size for p in params if p.requires_grad),
            "mult_adds": macs,
            "receptive_field": None if rf is None else rf[0],
            "jump": None if rf is None or rf[2] else rf[1],
            "whole_input": bool(rf is not None and rf[2]),
        })


class Summary:
    """What :func:`summary` returns: ``str()`` is the table; the numbers are fields.

    Attributes
    ----------
    rows : list of dict
        One per leaf layer call: ``name``, ``type``, ``input_shape``, ``output_shape``,
        ``params``, ``trainable_params``, ``mult_adds``, ``receptive_field`` (tuple of sizes
        per spatial axis, or None without spatial axes), ``jump`` (tuple, or None once the
        field is the whole input), ``whole_input``.
    total_params, trainable_params, frozen_params : int
        Over the model's distinct parameters (buffers not counted; see ``total_buffers``).
    total_mult_adds : int
    activation_bytes : int
        Bytes of the arrays the modules' forward passes create (outputs that are not views
        of their input) for ``input_shape``.
    param_bytes : int
    input_shape, output_shape : tuple
        A tuple of shapes for a model with several inputs / outputs (a Graph); so are a
        row's ``input_shape`` for a layer with several inputs (Add, Cat) and its
        ``output_shape`` for one with several outputs (Split).
    dtype : numpy.dtype
    """

    def __init__(self, model, rows, input_shape, output_shape, dtype, activation_bytes):
        params = {id(p): p for p in model.parameters()}.values()
        self.model_type = type(model).__name__
        self.rows = rows
        self.total_params = sum(p.data.size for p in params)
        self.trainable_params = sum(p.data.size for p in params if p.requires_grad)
        self.frozen_params = self.total_params - self.trainable_params
        self.param_bytes = sum(p.data.nbytes for p in params)
        self.total_buffers = sum(b.size for b in {id(b): b for b in model.buffers()}.values())
        self.total_mult_adds = sum(r["mult_adds"] for r in rows)
        self.activation_bytes = activation_bytes
        self.input_shape = input_shape
        self.output_shape = output_shape
        self.dtype = dtype
        several = bool(input_shape) and isinstance(input_shape[0], tuple)
        self._batch = input_shape[0][0] if several else input_shape[0]

    @staticmethod
    def _field_text(row):
        rf = row["receptive_field"]
        if rf is None:
            return "-"
        size = "x".join(map(str, rf)) if len(set(rf)) > 1 else str(rf[0])
        if row["whole_input"]:
            return f"whole ({size})"
        jump = row["jump"]
        return f"{size} / " + ("x".join(map(str, jump)) if len(set(jump)) > 1 else str(jump[0]))

    def __str__(self):
        head = ("Layer (type)", "Output shape", "Param #", "Mult-adds", "RF / jump")
        body = []
        for r in self.rows:
            name = f"{r['name']} ({r['type']})" if r["name"] else r["type"]
            params = f"{r['params']:,}"
            frozen = r["params"] - r["trainable_params"]
            if frozen:
                params += " (frozen)" if frozen == r["params"] else f" ({frozen:,} frozen)"
            body.append((name, str(r["output_shape"]), params, f"{r['mult_adds']:,}", self._field_text(r)))
        widths = [max(len(line[i]) for line in [head] + body) for i in range(len(head))]

        def fmt(line):
            left = f"{line[0]:<{widths[0]}}  {line[1]:<{widths[1]}}"
            right = "  ".join(f"{v:>{w}}" for v, w in zip(line[2:4], widths[2:4]))
            return f"{left}  {right}  {line[4]:>{widths[4]}}"

        width = sum(widths) + 2 * (len(widths) - 1)
        lines = [f"{self.model_type} summary, input {self.input_shape} {self.dtype}", "=" * width,
                 fmt(head), "=" * width, *map(fmt, body), "=" * width,
                 f"Total params: {self.total_params:,}",
                 f"Trainable params: {self.trainable_params:,}",
                 f"Non-trainable params: {self.frozen_params:,}"]
        if self.total_buffers:
            lines.append(f"Buffer values (not parameters): {self.total_buffers:,}")
        lines += [f"Total mult-adds: {self.total_mult_adds:,} ({self.total_mult_adds / 1e6:.2f} M)",
                  f"Output shape: {self.output_shape}",
                  f"Activation memory: {_bytes_text(self.activation_bytes)} (forward, N={self._batch})",
                  f"Parameter memory: {_bytes_text(self.param_bytes)}",
                  "=" * width]
        return "\n".join(lines)

    def __repr__(self):
        return (f"<Summary of {self.model_type} for input {self.input_shape}: {len(self.rows)} layers, "
                f"{self.total_params:,} params ({self.trainable_params:,} trainable), "
                f"{self.total_mult_adds:,} mult-adds>")


def _bytes_text(n):
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def _check_input_shape(input_shape):
    if not isinstance(input_shape, (tuple, list)):
        raise TypeError(f"input_shape must be a tuple of ints (N, C, H, W), got {type(input_shape).__name__}")
    shape = []
    for v in input_shape:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
            raise TypeError(f"input_shape must be a tuple of ints (N, C, H, W), got {tuple(input_shape)!r}")
        if v < 1:
            raise ValueError(f"input_shape must have positive sizes, got {tuple(input_shape)!r}")
        shape.append(int(v))
    if len(shape) < 2:
        raise ValueError(f"input_shape must have at least 2 dims (N, features...), got {tuple(shape)!r}")
    return tuple(shape)


def summary(model: Module, input_shape: Union[Sequence[int], Sequence[Sequence[int]]], *,
            dtype: Any = np.float32) -> Summary:
    """A Keras-style summary of ``model`` for inputs of ``input_shape``.

    Parameters
    ----------
    model : Module
    input_shape : tuple of int, or a list of them
        The whole input shape, batch included, e.g. ``(1, 1, 28, 28)`` (N = 1 is the usual
        choice; multiply-adds and activation memory scale with N). For a model with several
        inputs (a :class:`~fastconv.nn.Graph`), one shape per input; receptive fields are
        then in pixels of the first input.
    dtype : float32 (default) or float64
        Of the zeros the forward pass runs on (the model's parameters' dtype).

    Returns
    -------
    Summary
        ``print(summary(...))`` shows the table; ``rows``, ``total_params``,
        ``trainable_params``, ``total_mult_adds`` ... hold the numbers. See the module
        docstring for how multiply-adds and receptive fields are counted.

    One forward pass on zeros runs in eval mode; afterwards every module's attributes
    (training flags, what forward saved for backward, its reused arrays) and buffers are
    as they were, so a backward of an earlier forward still works. Nothing is printed.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a fastconv.nn.Module, got {type(model).__name__}")
    several = (isinstance(input_shape, (tuple, list)) and len(input_shape) > 0
               and all(isinstance(s, (tuple, list)) for s in input_shape))
    shapes = [_check_input_shape(s) for s in input_shape] if several else [_check_input_shape(input_shape)]
    shape = tuple(shapes) if several else shapes[0]
    dtype = check_float_dtype(dtype)
    for s in shapes:
        check_allocation(s, dtype, "summary's input")

    names: dict[int, str] = {}
    for name, m in model.named_modules():
        names.setdefault(id(m), name)
    full = shapes[0][2:]
    tracer = _Tracer(names, full)
    xs = [np.zeros(s, dtype) for s in shapes]
    with state_restored(model) as modules:
        for m in modules:
            object.__setattr__(m, "forward", tracer.wrap(m, m.forward))
            object.__setattr__(m, "training", False)
        for x in xs:
            n = len(x.shape[2:])
            tracer.mark(x, ((1,) * n, (1,) * n, False) if n and n == len(full) else None)
        y = model(*xs)
    out_shape: Optional[tuple]
    if isinstance(y, tuple) and all(isinstance(a, np.ndarray) for a in y):
        out_shape = tuple(tuple(a.shape) for a in y)  # several outputs
    else:
        out_shape = tuple(y.shape) if isinstance(y, np.ndarray) else None
    return Summary(model, tracer.rows, shape, out_shape, dtype, tracer.activation_bytes)
