"""fastconv model -> ONNX file, with the ``onnx`` helper API (one exporter per layer class).

Each exporter takes ``(ctx, module, name, x)`` -- the export context, the layer, its dotted
name in the model and the :class:`Value` it reads -- adds its nodes and initializers to
``ctx`` and returns the :class:`Value` it produces. A value carries a *probe*: the layer's
real output for a zero input of the export's ``input_shape`` (eval mode), which gives
every exporter the static shapes it needs (pool windows, Maxout reshapes, adaptive bins)
and checks that the model accepts that input.
"""
import json
import os
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import nn
from .._atomic import atomic_write
from .._version import __version__
from ..functional.pool import adaptive_pool_geometry
from .registry import add_exporter, find_exporter, unique_name

#: opsets the exporter writes (the ops it uses changed their form at 13 and 18)
OPSETS = range(13, 23)
#: numpy dtype -> ONNX element type of the model's tensors
ELEM_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}
INPUT_NAME = "input"
OUTPUT_NAME = "output"
#: metadata_props key holding the model's config (JSON), read back by fastconv.onnx.load
CONFIG_KEY = "fastconv.config"


class Value:
    """An ONNX value: its name and a probe array (its value for the zero input)."""

    __slots__ = ("name", "probe")

    def __init__(self, name, probe):
        self.name = name
        self.probe = probe

    @property
    def shape(self):
        return self.probe.shape


class ExportContext:
    """The graph under construction: nodes, initializers and unique names."""

    def __init__(self, opset, dtype):
        self.opset = opset
        self.dtype = np.dtype(dtype)
        self.nodes = []
        self.initializers = []
        self._names = {INPUT_NAME, OUTPUT_NAME}

    def unique(self, base):
        """``base``, or ``base_1``, ``base_2``... if taken."""
        return unique_name(base, self._names)

    def initializer(self, name, array):
        """Add ``array`` as an initializer named ``name`` (a state-dict key); returns its name."""
        name = self.unique(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, name, values):
        """An int64 1-D initializer (shapes, pads, axes)."""
        return self.initializer(name, np.asarray(values, np.int64).reshape(-1))

    def node(self, op_type, inputs, name, probe, **attrs):
        """Add a node with one output; returns its :class:`Value` (probe: its value)."""
        out = self.unique(f"{name}/{op_type}_output" if name else f"{op_type}_output")
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=self.unique(f"{name}/{op_type}"),
                                           **attrs))
        return Value(out, probe)

    def node_multi(self, op_type, inputs, name, probes, **attrs):
        """Add a node with ``len(probes)`` outputs; returns their :class:`Value` list."""
        outs = [self.unique(f"{name}/{op_type}_output_{i}") for i in range(len(probes))]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.unique(f"{name}/{op_type}"),
                                           **attrs))
        return [Value(o, p) for o, p in zip(outs, probes)]

    def pad(self, x, pads, mode, name, value=0.0, probe=None):
        """``x`` (its last two axes) padded by ``pads = (left, right, top, bottom)``
        (torch.nn.functional.pad's order; negative entries crop) in ``mode``
        (fastconv.pad's names): a Pad node over the positive parts, then a Slice for the
        crops (output ``j`` reads padded ``j - before`` in every mode, as fastconv.pad)."""
        if probe is None:
            from ..functional import pad as fpad

            p4 = x.probe if x.probe.ndim == 4 else x.probe[None]
            probe = fpad(p4, tuple(pads), mode, value)
            probe = probe if x.probe.ndim == 4 else probe[0]
        left, right, top, bottom = pads
        rank = x.probe.ndim
        if mode == "circular":  # no wrap mode before opset 19: slices and concatenations
            return self._pad_circular(x, pads, name, probe)
        onnx_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}[mode]
        pos = [max(p, 0) for p in (left, right, top, bottom)]
        cur = x
        if any(pos):
            lead = [0] * (rank - 2)
            begin_end = lead + [pos[2], pos[0]] + lead + [pos[3], pos[1]]
            inputs = [x.name, self.ints(f"{name}.pads", begin_end)]
            if mode == "constant" and value != 0:
                inputs.append(self.initializer(f"{name}.value", np.array(value, self.dtype)))
            shape = list(x.shape)
            shape[-2] += pos[2] + pos[3]
            shape[-1] += pos[0] + pos[1]
            cur = self.node("Pad", inputs, name, np.empty(shape, probe.dtype), mode=onnx_mode)
        if min(pads) < 0:
            H, W = cur.shape[-2:]
            starts = [max(-top, 0), max(-left, 0)]
            ends = [H - max(-bottom, 0), W - max(-right, 0)]
            inputs = [cur.name, self.ints(f"{name}.starts", starts), self.ints(f"{name}.ends", ends),
                      self.ints(f"{name}.axes", [rank - 2, rank - 1])]
            cur = self.node("Slice", inputs, name, probe)
        if cur is x:  # no padding at all
            return self.node("Identity", [x.name], name, probe)
        return Value(cur.name, probe)

    def _slice(self, x, axis, start, end, name, probe):
        inputs = [x.name, self.ints(f"{name}.starts", [start]), self.ints(f"{name}.ends", [end]),
                  self.ints(f"{name}.axes", [axis])]
        return self.node("Slice", inputs, name, probe)

    def _pad_circular(self, x, pads, name, probe):
        left, right, top, bottom = pads
        rank = x.probe.ndim
        cur = x
        for axis, before, after in ((rank - 2, top, bottom), (rank - 1, left, right)):
            if before == 0 and after == 0:
                continue
            # as fastconv.pad (PyTorch): circular crops first, then wraps what is left
            n = cur.shape[axis]
            shape = list(cur.shape)
            lo, hi = max(0, -before), n - max(0, -after)
            if (lo, hi) != (0, n):
                shape[axis] = hi - lo
                cur = self._slice(cur, axis, lo, hi, name, np.empty(shape, cur.probe.dtype))
            n = hi - lo
            parts = []
            if before > 0:
                shape[axis] = before
                parts.append(self._slice(cur, axis, n - before, n, name, np.empty(shape, cur.probe.dtype)))
            parts.append(cur)
            if after > 0:
                shape[axis] = after
                parts.append(self._slice(cur, axis, 0, after, name, np.empty(shape, cur.probe.dtype)))
            shape[axis] = sum(p.shape[axis] for p in parts)
            if len(parts) == 1:
                cur = parts[0]
            else:
                cur = self.node("Concat", [p.name for p in parts], name, np.empty(shape, cur.probe.dtype),
                                axis=axis)
        if cur is x:
            return self.node("Identity", [x.name], name, probe)
        return Value(cur.name, probe)


class ExportError(ValueError):
    """What the export of one layer cannot express (a ValueError)."""


def _fail(name, module, why):
    return ExportError(f"cannot export layer {name or '(the model)'!r} ({type(module).__name__}) "
                       f"to ONNX: {why}")


def _run(module, name, *xs):
    """The layer's eval-mode output for the probes (a fastconv error names the layer)."""
    try:
        return module(*(x.probe for x in xs))
    except (ValueError, TypeError) as e:
        shapes = ", ".join(str(x.shape) for x in xs)
        raise _fail(name, module, f"it rejects its input of shape {shapes}: {e}") from e


def _key(name, attr):
    return f"{name}.{attr}" if name else attr


def export_module(ctx, module, name, *xs):
    """Dispatch to the registered exporter of ``module`` (several inputs: Graph ops)."""
    fn = find_exporter(module)
    if fn is None:
        raise _fail(name, module, "no ONNX exporter is registered for this layer type")
    if len(xs) != 1 and not getattr(fn, "multi_input", False):
        raise _fail(name, module, f"it takes one input, got {len(xs)}")
    return fn(ctx, module, name, *xs)


def _multi_input(fn):
    fn.multi_input = True
    return fn


# --- layers -----------------------------------------------------------------------------

@add_exporter(nn.Conv2d)
def _conv2d(ctx, m, name, x):
    probe = _run(m, name, x)
    kh, kw = m.kernel_size
    m._geometry_for(x.probe)
    g, pg = m._geometry, m._pad_geometry
    pads = [g.pad_top, g.pad_left, g.pad_bottom, g.pad_right]
    src = x
    if pg is not None:  # other padding modes: a Pad node, then a convolution without padding
        src = ctx.pad(x, (pg.left, pg.right, pg.top, pg.bottom), pg.mode, name)
    inputs = [src.name, ctx.initializer(_key(name, "weight"), m.weight.data)]
    if m.bias is not None:
        inputs.append(ctx.initializer(_key(name, "bias"), m.bias.data))
    return ctx.node("Conv", inputs, name, probe, kernel_shape=[kh, kw], strides=list(m.stride),
                    pads=pads, dilations=list(m.dilation), group=m.groups)


@add_exporter(nn.BatchNorm1d, nn.BatchNorm2d)
def _batch_norm(ctx, m, name, x):
    probe = _run(m, name, x)
    if not m.track_running_stats:
        return _batch_norm_batch_stats(ctx, m, name, x, probe)
    C = m.num_features
    dt = m.running_mean.dtype
    scale = ctx.initializer(_key(name, "weight"), m.weight.data) if m.affine else \
        ctx.initializer(_key(name, "weight"), np.ones(C, dt))
    bias = ctx.initializer(_key(name, "bias"), m.bias.data) if m.affine else \
        ctx.initializer(_key(name, "bias"), np.zeros(C, dt))
    mean = ctx.initializer(_key(name, "running_mean"), m.running_mean)
    var = ctx.initializer(_key(name, "running_var"), m.running_var)
    momentum = 0.9 if m.momentum is None else 1.0 - m.momentum  # ONNX weighs the old value
    return ctx.node("BatchNormalization", [x.name, scale, bias, mean, var], name, probe,
                    epsilon=float(m.eps), momentum=float(momentum))


def _reduce_mean(ctx, x, axes, name, probe):
    if ctx.opset >= 18:
        return ctx.node("ReduceMean", [x.name, ctx.ints(f"{name}.axes", axes)], name, probe, keepdims=1)
    return ctx.node("ReduceMean", [x.name], name, probe, axes=axes, keepdims=1)


def _batch_norm_batch_stats(ctx, m, name, x, probe):
    """BatchNorm without running statistics normalises with the batch's mean and biased
    variance in evaluation mode too: ReduceMean / Sub / Mul / Sqrt / Div (+ the affine)."""
    axes = [0] + list(range(2, x.probe.ndim))
    stat_shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
    dt = x.probe.dtype
    stat = np.empty(stat_shape, dt)
    mean = _reduce_mean(ctx, x, axes, name, stat)
    centred = ctx.node("Sub", [x.name, mean.name], name, np.empty(x.shape, dt))
    square = ctx.node("Mul", [centred.name, centred.name], name, np.empty(x.shape, dt))
    var = _reduce_mean(ctx, square, axes, name, stat)
    eps = ctx.initializer(f"{name}.eps", np.array(m.eps, dt))
    std = ctx.node("Sqrt", [ctx.node("Add", [var.name, eps], name, stat).name], name, stat)
    y = ctx.node("Div", [centred.name, std.name], name, np.empty(x.shape, dt) if m.affine else probe)
    if not m.affine:
        return y
    shape = (m.num_features,) + (1,) * (x.probe.ndim - 2)
    w = ctx.initializer(_key(name, "weight"), m.weight.data.reshape(shape))
    b = ctx.initializer(_key(name, "bias"), m.bias.data.reshape(shape))
    scaled = ctx.node("Mul", [y.name, w], name, np.empty(x.shape, dt))
    return ctx.node("Add", [scaled.name, b], name, probe)


def _pool_end_extra(size, k, s, p, out):
    """Extra padding at the end of an axis for which a floor-mode window count equals the
    layer's (ceil-mode) output size ``out``: ``(out - 1) * s + k - (size + 2p)``, >= 0."""
    return max(0, (out - 1) * s + k - (size + 2 * p))


@add_exporter(nn.MaxPool2d, nn.AvgPool2d)
def _pool2d(ctx, m, name, x):
    probe = _run(m, name, x)
    (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
    H, W = x.shape[2:]
    OH, OW = probe.shape[2:]
    # ceil_mode as PyTorch's rule (the last window starts inside the input or the left
    # padding), written as floor mode over extra end padding that no window counts
    eh = _pool_end_extra(H, kh, sh, ph, OH)
    ew = _pool_end_extra(W, kw, sw, pw, OW)
    attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw])
    if isinstance(m, nn.MaxPool2d):
        return ctx.node("MaxPool", [x.name], name, probe, pads=[ph, pw, ph + eh, pw + ew], **attrs)
    if m.count_include_pad and (ph or pw) and (eh or ew):
        # the padding counts, the extra end padding does not: pad explicitly with zeros
        src = ctx.pad(x, (pw, pw, ph, ph), "constant", name)
        return ctx.node("AveragePool", [src.name], name, probe, pads=[0, 0, eh, ew],
                        count_include_pad=0, **attrs)
    include = int(m.count_include_pad and (eh == 0 and ew == 0))
    return ctx.node("AveragePool", [x.name], name, probe, pads=[ph, pw, ph + eh, pw + ew],
                    count_include_pad=include, **attrs)


def _regular_bins(size, out):
    """(kernel, stride) when adaptive pooling of ``size`` into ``out`` bins is a regular
    pool (all bins of one size, evenly spaced), else None."""
    starts = [(i * size) // out for i in range(out)]
    ends = [-((-(i + 1) * size) // out) for i in range(out)]
    k = ends[0] - starts[0]
    s = starts[1] - starts[0] if out > 1 else 1
    if all(e - b == k for b, e in zip(starts, ends)) and all(b == i * s for i, b in enumerate(starts)):
        return k, s
    return None


@add_exporter(nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
def _adaptive_pool2d(ctx, m, name, x):
    is_max = isinstance(m, nn.AdaptiveMaxPool2d)
    if is_max and m.return_indices:
        raise _fail(name, m, "return_indices=True returns the indices too, which the export does not write")
    if len(x.shape) != 4:
        raise _fail(name, m, f"expects 4-D input, got shape {x.shape}")
    probe = _run(m, name, x)
    g = adaptive_pool_geometry(x.shape, m.output_size)
    if (g.OH, g.OW) == (1, 1):
        return ctx.node("GlobalMaxPool" if is_max else "GlobalAveragePool", [x.name], name, probe)
    bh, bw = _regular_bins(g.H, g.OH), _regular_bins(g.W, g.OW)
    if bh is None or bw is None:
        raise _fail(name, m, f"output size {(g.OH, g.OW)} from input {(g.H, g.W)} has bins of "
                             "different sizes or spacings, which no regular ONNX pool expresses "
                             "(export with an input size divisible by the output size)")
    (kh, sh), (kw, sw) = bh, bw
    return ctx.node("MaxPool" if is_max else "AveragePool", [x.name], name, probe,
                    kernel_shape=[kh, kw], strides=[sh, sw], pads=[0, 0, 0, 0])


@add_exporter(nn.Linear)
def _linear(ctx, m, name, x):
    probe = _run(m, name, x)
    inputs = [x.name, ctx.initializer(_key(name, "weight"), m.weight.data)]
    if m.bias is not None:
        inputs.append(ctx.initializer(_key(name, "bias"), m.bias.data))
    return ctx.node("Gemm", inputs, name, probe, transB=1)


@add_exporter(nn.Flatten)
def _flatten(ctx, m, name, x):
    probe = _run(m, name, x)
    if m.start_dim == 1:
        return ctx.node("Flatten", [x.name], name, probe, axis=1)
    shape = ctx.ints(f"{name}.shape", [0] * m.start_dim + [-1])
    return ctx.node("Reshape", [x.name, shape], name, probe)


_ACTIVATIONS = {nn.ReLU: "Relu", nn.Tanh: "Tanh", nn.Sigmoid: "Sigmoid"}


@add_exporter(*_ACTIVATIONS)
def _activation(ctx, m, name, x):
    probe = _run(m, name, x)
    for cls, op in _ACTIVATIONS.items():
        if isinstance(m, cls):
            return ctx.node(op, [x.name], name, probe)
    raise AssertionError(type(m))  # pragma: no cover


@add_exporter(nn.LeakyReLU)
def _leaky_relu(ctx, m, name, x):
    return ctx.node("LeakyRelu", [x.name], name, _run(m, name, x), alpha=float(m.negative_slope))


@add_exporter(nn.ELU)
def _elu(ctx, m, name, x):
    return ctx.node("Elu", [x.name], name, _run(m, name, x), alpha=float(m.alpha))


@add_exporter(nn.Softmax, nn.LogSoftmax)
def _softmax(ctx, m, name, x):
    probe = _run(m, name, x)
    op = "LogSoftmax" if isinstance(m, nn.LogSoftmax) else "Softmax"
    return ctx.node(op, [x.name], name, probe, axis=int(m.dim))


@add_exporter(nn.Identity, nn.Dropout)
def _identity(ctx, m, name, x):
    # Dropout is the identity in evaluation mode: no node, the value passes through
    return Value(x.name, _run(m, name, x))


@add_exporter(nn.Maxout)
def _maxout(ctx, m, name, x):
    probe = _run(m, name, x)
    k = m.num_pieces
    C = x.shape[1] // k
    shape = ctx.ints(f"{name}.shape", [0, C, k, *x.shape[2:]])
    pieces = ctx.node("Reshape", [x.name, shape], name, np.empty((x.shape[0], C, k, *x.shape[2:]), probe.dtype))
    if ctx.opset >= 18:
        return ctx.node("ReduceMax", [pieces.name, ctx.ints(f"{name}.axes", [2])], name, probe, keepdims=0)
    return ctx.node("ReduceMax", [pieces.name], name, probe, axes=[2], keepdims=0)


# --- containers -------------------------------------------------------------------------

@add_exporter(nn.Sequential)
def _sequential(ctx, m, name, x):
    for child_name, child in m.named_children():
        x = export_module(ctx, child, _key(name, child_name), x)
    return x


@add_exporter(nn.Residual)
def _residual(ctx, m, name, x):
    a = export_module(ctx, m.body, _key(name, "body"), x)
    shortcut = m.__dict__.get("shortcut")
    b = x if shortcut is None else export_module(ctx, shortcut, _key(name, "shortcut"), x)
    if a.shape != b.shape:
        raise _fail(name, m, f"the body gives shape {a.shape} and the shortcut {b.shape}")
    return ctx.node("Add", [a.name, b.name], name, a.probe + b.probe)


@add_exporter(nn.Concat)
def _concat(ctx, m, name, x):
    outs = [export_module(ctx, child, _key(name, child_name), x) for child_name, child in m.named_children()]
    ndim = outs[0].probe.ndim
    if not -ndim <= m.dim < ndim:
        raise _fail(name, m, f"dim={m.dim} is out of range for outputs of {ndim} dims")
    try:
        probe = np.concatenate([o.probe for o in outs], axis=m.dim)
    except ValueError as e:
        raise _fail(name, m, f"branch outputs do not concatenate: {e}") from e
    return ctx.node("Concat", [o.name for o in outs], name, probe, axis=int(m.dim))


# --- Graph and its ops, pad layers -----------------------------------------------------

@add_exporter(nn.Add)
@_multi_input
def _add(ctx, m, name, *xs):
    probe = _run(m, name, *xs)
    return ctx.node("Add" if len(xs) == 2 else "Sum", [x.name for x in xs], name, probe)


@add_exporter(nn.Cat)
@_multi_input
def _cat(ctx, m, name, *xs):
    probe = _run(m, name, *xs)
    return ctx.node("Concat", [x.name for x in xs], name, probe, axis=int(m.dim))


@add_exporter(nn.Split)
def _split(ctx, m, name, x):
    probes = _run(m, name, x)
    axis = m.dim % x.probe.ndim
    sizes = ctx.ints(f"{name}.split", [p.shape[axis] for p in probes])
    return tuple(ctx.node_multi("Split", [x.name, sizes], name, list(probes), axis=int(m.dim)))


@add_exporter(nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d, nn.CircularPad2d)
def _pad2d(ctx, m, name, x):
    probe = _run(m, name, x)
    return ctx.pad(x, m.padding, m.mode, name, value=float(m.value), probe=probe)


@add_exporter(nn.Graph)
def _graph(ctx, m, name, *xs):
    if len(xs) != len(m.inputs):
        raise _fail(name, m, f"it takes {len(m.inputs)} inputs {list(m.inputs)}, got {len(xs)}")
    values = dict(zip(m.inputs, xs))
    for node in m.nodes:
        outs = export_module(ctx, node.module, _key(name, node.name), *(values[v] for v in node.inputs))
        outs = outs if isinstance(outs, tuple) else (outs,)
        if len(outs) != len(node.outputs):
            raise _fail(_key(name, node.name), node.module,
                        f"it gives {len(outs)} outputs, the node names {len(node.outputs)}")
        values.update(zip(node.outputs, outs))
    result = tuple(values[v] for v in m.outputs)
    return result[0] if len(result) == 1 else result


_graph.multi_input = True


# --- the public entry point -------------------------------------------------------------

def _check_input_shape(input_shape):
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__iter__"):
        raise TypeError(f"input_shape must be a tuple of ints such as (1, 1, 28, 28), got {input_shape!r}")
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in shape):
        raise TypeError(f"input_shape must be a non-empty tuple of ints, got {input_shape!r}")
    if any(d < 1 for d in shape):
        raise ValueError(f"input_shape must have positive sizes, got {shape}")
    if int(np.prod(shape, dtype=np.float64)) > 2**28:
        raise ValueError(f"input_shape {shape} is too large for an export probe (over 2**28 values)")
    return tuple(int(d) for d in shape)


def _model_dtype(model):
    dtypes = {p.data.dtype for p in model.parameters()}
    if len(dtypes) > 1:
        raise ValueError(f"model has parameters of several dtypes {sorted(str(d) for d in dtypes)}")
    dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
    if dtype not in ELEM_TYPES:
        raise TypeError(f"model parameters must be float32 or float64, got {dtype}")
    return dtype


def build_model_proto(model, input_shape, *, dynamic_batch=True, opset=17):
    """The ``onnx.ModelProto`` of ``model`` (see :func:`export`)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a fastconv.nn.Module, got {type(model).__name__}")
    shape = _check_input_shape(input_shape)
    if not isinstance(dynamic_batch, (bool, np.bool_)):
        raise TypeError(f"dynamic_batch must be a bool, got {type(dynamic_batch).__name__}")
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an int, got {type(opset).__name__}")
    if int(opset) not in OPSETS:
        raise ValueError(f"opset must be in [{OPSETS.start}, {OPSETS.stop - 1}], got {opset}")
    dtype = _model_dtype(model)
    ctx = ExportContext(int(opset), dtype)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        x = Value(INPUT_NAME, np.zeros(shape, dtype))
        y = export_module(ctx, model, "", x)
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    ys = y if isinstance(y, tuple) else (y,)
    for v in ys:
        if not isinstance(v.probe, np.ndarray):
            raise ExportError(f"the model returns {type(v.probe).__name__}, not arrays")
    names = [OUTPUT_NAME] if len(ys) == 1 else [f"{OUTPUT_NAME}_{i}" for i in range(len(ys))]
    _name_outputs(ctx, [v.name for v in ys], names)
    elem = ELEM_TYPES[dtype]
    batch = "N" if dynamic_batch else shape[0]
    inp = helper.make_tensor_value_info(INPUT_NAME, elem, [batch, *shape[1:]])
    outs = []
    for name, v in zip(names, ys):
        dims = list(v.probe.shape)
        if dynamic_batch and dims and dims[0] == shape[0]:
            dims[0] = "N"
        outs.append(helper.make_tensor_value_info(name, elem, dims))
    graph = helper.make_graph(ctx.nodes, type(model).__name__, [inp], outs, ctx.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                              producer_name="fastconv", producer_version=__version__)
    # ir_version: what this opset needs at least (onnxruntime refuses newer IRs than it knows)
    proto.ir_version = min(proto.ir_version, _ir_version_for(int(opset)))
    config = getattr(model, "config", None)
    if isinstance(config, dict):
        try:
            helper.set_model_props(proto, {CONFIG_KEY: json.dumps(config)})
        except (TypeError, ValueError):
            pass  # a config that is not JSON is not stored
    return proto


def _name_outputs(ctx, values, names):
    """Give the graph outputs ``values`` the names ``names``: the producing node's output
    (and its readers' inputs) renamed, or an Identity node where the value is the graph
    input, an initializer or an output already."""
    produced = {o: node for node in ctx.nodes for o in node.output}
    done = set()
    for v, name in zip(values, names):
        if v in produced and v not in done:
            for node in ctx.nodes:
                for field in (node.input, node.output):
                    for i, item in enumerate(field):
                        if item == v:
                            field[i] = name
            done.add(v)
            produced[name] = produced.pop(v)
            continue
        src = v if v not in done else names[values.index(v)]
        ctx.nodes.append(helper.make_node("Identity", [src], [name], name=ctx.unique(f"{name}/Identity")))


def _ir_version_for(opset):
    table: Any = helper.VERSION_TABLE  # rows (release, ir_version, ai.onnx opset, ...)
    for entry in table:
        if entry[2] >= opset:
            return int(entry[1])
    return onnx.IR_VERSION  # pragma: no cover


def export(model, path, input_shape, *, dynamic_batch=True, opset=17):
    """Write ``model`` (evaluation-mode semantics) to ``path`` as an ONNX file.

    See :func:`fastconv.onnx.export` for the parameters.
    """
    proto = build_model_proto(model, input_shape, dynamic_batch=dynamic_batch, opset=opset)
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    return atomic_write(os.fspath(path), lambda f: f.write(data))
