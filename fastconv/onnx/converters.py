"""One converter per ONNX operator (and per version whose form differs), registered with
:func:`fastconv.onnx.registry.add_converter`. Each takes ``(ctx, node)``: it reads the
node's attributes (refusing those it does not understand), folds constants or emits
fastconv nodes through ``ctx`` (see :class:`fastconv.onnx.importer.ImportContext`)."""
import numpy as np

from .. import nn
from ..functional._geometry import conv_output_size
from .importer import BATCH, FOLDERS, MAX_FOLDED_ELEMENTS, Attrs, _fail
from .registry import add_converter

_any = None


def _ints_of(ctx, node, i, what):
    a = ctx.const(node, i, what, "int")
    if a.ndim > 1:
        raise _fail(node, f"{what} must be a 1-D tensor, got shape {a.shape}")
    return [v if v is BATCH else int(v) for v in a.reshape(-1).tolist()]


def _is_ones(v):
    return all(int(x) == 1 for x in v)


def _spatial(node, probe, what="input"):
    if probe.ndim != 4:
        raise _fail(node, f"fastconv supports 2-D {node.op_type} on (N, C, H, W) input only, got {what} "
                          f"of shape {probe.shape}")


# --- constants and shape computations (folded) --------------------------------------------

@add_converter("Constant", 9, 11, 12, 13, 19, 21, 23)
def _constant(ctx, node):
    attrs = Attrs(node)
    attrs.check(value=_any, value_float=_any, value_floats=_any, value_int=_any, value_ints=_any)
    if len(attrs.values) != 1:
        raise _fail(node, "needs exactly one of value, value_float(s), value_int(s)")
    (key, v), = attrs.values.items()
    if key == "value":
        a = v
    elif key.startswith("value_float"):
        a = np.array(v, ctx.dtype)
    else:
        a = np.array(v, np.int64)
    ctx.set_const(node.output[0], a)


@add_converter("Identity", 1, 13, 14, 16, 19, 21, 23)
def _identity(ctx, node):
    Attrs(node).check()
    ctx.alias[node.output[0]] = ctx.resolve(node.input[0])


def _all_const(ctx, node):
    return all(ctx.is_const(v) for v in node.input if v)


@add_converter("Shape", 1, 13, 15, 19, 21, 23)
def _shape(ctx, node):
    attrs = Attrs(node)
    attrs.check(start=_any, end=_any)
    v = ctx.resolve(node.input[0])
    if v in ctx.constants:
        shape = list(ctx.constants[v].shape)
    else:
        shape = list(ctx.probes[v].shape)
        if ctx.batch_symbolic and shape:
            shape[0] = BATCH
    n = len(shape)
    start, end = attrs.get("start", 0), attrs.get("end", n)
    ctx.set_const(node.output[0], np.array(shape[slice(start, end)], dtype=object))


def _fold(ctx, node, fn):
    """Evaluate ``fn(*constant inputs)`` for a node whose inputs are all constants."""
    if not _all_const(ctx, node):
        raise _fail(node, "fastconv folds this operator on constants (shape computations) only; here "
                          "it reads a value computed from the graph input")
    args = [ctx.constants[ctx.resolve(v)] if v else None for v in node.input]
    try:
        out = fn(*args)
    except (ValueError, TypeError, IndexError) as e:
        raise _fail(node, f"cannot fold it: {e}") from e
    ctx.set_const(node.output[0], out)


def _axes_input_or_attr(ctx, node, attrs, index):
    if "axes" in attrs.values:
        return list(attrs.get("axes"))
    if len(node.input) > index and node.input[index]:
        return _ints_of(ctx, node, index, "axes")
    return None


@add_converter("Gather", 1, 11, 13)
def _gather(ctx, node):
    attrs = Attrs(node)
    attrs.check(axis=_any)
    axis = attrs.get("axis", 0)
    _fold(ctx, node, lambda data, idx: np.take(data, np.asarray(idx).astype(np.int64), axis=axis))


@add_converter("Unsqueeze", 1, 11, 13, 21, 23)
def _unsqueeze(ctx, node):
    attrs = Attrs(node)
    attrs.check(axes=_any)
    axes = _axes_input_or_attr(ctx, node, attrs, 1)
    if axes is None:
        raise _fail(node, "axes are missing")

    def fn(data, *_):
        out = np.asarray(data)
        rank = out.ndim + len(axes)
        for a in sorted(x % rank for x in axes):
            out = np.expand_dims(out, a)
        return out

    _fold(ctx, node, fn)


@add_converter("Squeeze", 1, 11, 13, 21, 23)
def _squeeze(ctx, node):
    attrs = Attrs(node)
    attrs.check(axes=_any)
    axes = _axes_input_or_attr(ctx, node, attrs, 1)
    _fold(ctx, node, lambda data, *_: np.squeeze(data, axis=None if axes is None else tuple(axes)))


@add_converter("Concat", 4, 11, 13)
def _concat(ctx, node):
    attrs = Attrs(node)
    attrs.check(axis=_any)
    axis = attrs.get("axis")
    if axis is None:
        raise _fail(node, "attribute axis is missing")
    if _all_const(ctx, node):
        _fold(ctx, node, lambda *xs: np.concatenate([np.asarray(x) for x in xs], axis=axis))
        return
    ins = [v for v in node.input if v]
    for v in ins:
        if ctx.is_const(v):
            raise _fail(node, f"input {v!r} is a constant; fastconv concatenates computed values only")
    ctx.emit(node, ctx.make(node, nn.Cat, axis), inputs=ins)


@add_converter("Cast", 6, 9, 13, 19, 21, 23)
def _cast(ctx, node):
    attrs = Attrs(node)
    attrs.check(to=_any, saturate=_any, round_mode=_any)
    to = attrs.get("to")
    from onnx import TensorProto

    types = {TensorProto.INT64: np.int64, TensorProto.INT32: np.int32, TensorProto.FLOAT: np.float32,
             TensorProto.DOUBLE: np.float64}
    if to not in types:
        raise _fail(node, f"attribute to={to} is not supported")

    def fn(x):
        x = np.asarray(x)
        if x.dtype == object:  # a shape with the symbolic batch stays symbolic
            if types[to] in (np.int64, np.int32):
                return x
            raise ValueError("cannot cast a symbolic shape to float")
        return x.astype(types[to])

    _fold(ctx, node, fn)


def _slice_as_crop(ctx, node):
    """A Slice of a computed value along its last two axes with step 1: a crop, which is
    a ZeroPad2d with negative padding."""
    x = ctx.probe(node, 0)
    starts = _ints_of(ctx, node, 1, "starts")
    ends = _ints_of(ctx, node, 2, "ends")
    axes = _ints_of(ctx, node, 3, "axes") if len(node.input) > 3 and node.input[3] else list(range(len(starts)))
    steps = _ints_of(ctx, node, 4, "steps") if len(node.input) > 4 and node.input[4] else [1] * len(starts)
    rank = x.ndim
    crop = {rank - 2: (0, 0), rank - 1: (0, 0)}
    for a, b, e, st in zip(axes, starts, ends, steps):
        a %= rank
        if a not in crop or st != 1 or rank not in (3, 4):
            raise _fail(node, "fastconv converts a Slice of a computed value along the last two axes of 3-D "
                              f"or 4-D input with step 1 only (a crop), got axes {axes} steps {steps} for shape "
                              f"{x.shape}")
        n = x.shape[a]
        lo, hi = slice(b, e).indices(n)[:2]
        hi = max(hi, lo)
        crop[a] = (lo, n - hi)
    (top, bottom), (left, right) = crop[rank - 2], crop[rank - 1]
    ctx.emit(node, ctx.make(node, nn.ZeroPad2d, (-left, -right, -top, -bottom)))


@add_converter("Slice", 10, 11, 13)
def _slice(ctx, node):
    Attrs(node).check()
    if not ctx.is_const(node.input[0]):
        _slice_as_crop(ctx, node)
        return

    def fn(data, starts, ends, axes=None, steps=None):
        data = np.asarray(data)
        axes = range(len(starts)) if axes is None else [int(a) for a in axes]
        steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
        index = [slice(None)] * data.ndim
        for a, s, e, st in zip(axes, starts, ends, steps):
            big = 2**62
            s, e = int(max(min(int(s), big), -big)), int(max(min(int(e), big), -big))
            index[a] = slice(s, e, st)
        return data[tuple(index)]

    _fold(ctx, node, fn)


# --- layers -------------------------------------------------------------------------------

def _conv_pads(node, attrs, probe, kernel, strides, dilations):
    """(top, bottom, left, right) of a Conv / pool from pads or auto_pad."""
    auto = attrs.get("auto_pad", "NOTSET")
    pads = attrs.get("pads")
    if auto in ("NOTSET", "VALID") or auto == "":
        if auto == "VALID":
            return (0, 0, 0, 0)
        pads = pads or [0, 0, 0, 0]
        if len(pads) != 4:
            raise _fail(node, f"attribute pads={pads} must have 4 entries for a 2-D operator")
        if any(p < 0 for p in pads):
            raise _fail(node, f"attribute pads={pads} is not supported (negative padding)")
        return (pads[0], pads[2], pads[1], pads[3])
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for size, k, s, d in zip(probe.shape[2:], kernel, strides, dilations):
            o = -(-size // s)
            total = max(0, (o - 1) * s + d * (k - 1) + 1 - size)
            small, big = total // 2, total - total // 2
            out += [small, big] if auto == "SAME_UPPER" else [big, small]
        return tuple(out)
    raise _fail(node, f"attribute auto_pad={auto!r} is not supported")


def _symmetric_or_same(pads, kernel, dilations, strides):
    """Conv2d's padding for (top, bottom, left, right): a pair, "same", or None."""
    t, b, l, r = pads
    if t == b and l == r:
        return (t, l)
    if tuple(strides) == (1, 1):
        same = []
        for k, d in zip(kernel, dilations):
            total = d * (k - 1)
            same += [total // 2, total - total // 2]
        if list(pads) == same:
            return "same"
    return None


@add_converter("Conv", 1, 11, 22)
def _conv(ctx, node):
    attrs = Attrs(node)
    attrs.check(auto_pad={"NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER", ""}, dilations=_any, group=_any,
                kernel_shape=_any, pads=_any, strides=_any)
    x = ctx.probe(node, 0)
    _spatial(node, x)
    w = ctx.const(node, 1, "weight", "float")
    b = ctx.const(node, 2, "bias", "float", optional=True)
    if w.ndim != 4:
        raise _fail(node, f"weight must be 4-D (C_out, C_in/groups, kH, kW), got shape {w.shape}")
    kernel = tuple(w.shape[2:])
    if attrs.get("kernel_shape") not in (None, list(kernel)):
        raise _fail(node, f"attribute kernel_shape={attrs.get('kernel_shape')} does not match the weight's "
                          f"{list(kernel)}")
    strides = tuple(attrs.get("strides", [1, 1]))
    dilations = tuple(attrs.get("dilations", [1, 1]))
    groups = attrs.get("group", 1)
    if len(strides) != 2 or len(dilations) != 2:
        raise _fail(node, "strides and dilations must have 2 entries for a 2-D convolution")
    if b is not None and b.shape != (w.shape[0],):
        raise _fail(node, f"bias must have shape ({w.shape[0]},), got {b.shape}")
    pads = _conv_pads(node, attrs, x, kernel, strides, dilations)
    padding_mode = "zeros"
    src = None
    fused = ctx.fused_pad.pop(id(node), None)
    if fused is not None:  # a reflect / edge / wrap Pad folded into this convolution
        (left, right, top, bottom), padding_mode = fused
        pads = (top, bottom, left, right)
    padding = _symmetric_or_same(pads, kernel, dilations, strides)
    if padding is None or (padding == "same" and padding_mode != "zeros"):
        if padding_mode != "zeros":
            raise _fail(node, "asymmetric padding in a non-zero padding mode is not supported")
        # asymmetric zero padding: a ZeroPad2d node, then the convolution without padding
        t, bt, l, r = pads
        src = ctx.emit(node, ctx.make(node, nn.ZeroPad2d, (l, r, t, bt)), outputs=[node.output[0] + "__pad"],
                       suffix="_pad")[0]
        padding = (0, 0)
    C_in = w.shape[1] * groups
    m = ctx.make(node, nn.Conv2d, C_in, w.shape[0], kernel, stride=strides, padding=padding, dilation=dilations,
                 groups=groups, bias=b is not None, padding_mode=padding_mode, rng=0, dtype=ctx.dtype)
    m.weight.data[...] = w
    if b is not None:
        m.bias.data[...] = b
    ctx.emit(node, m, inputs=[src] if src else None)


@add_converter("Gemm", 7, 9, 11, 13)
def _gemm(ctx, node):
    attrs = Attrs(node)
    attrs.check(alpha=_any, beta=_any, transA={0}, transB={0, 1}, broadcast=_any)
    x = ctx.probe(node, 0)
    if x.ndim != 2:
        raise _fail(node, f"Gemm's input must be 2-D, got shape {x.shape}")
    w = ctx.const(node, 1, "weight (B)", "float")
    c = ctx.const(node, 2, "bias (C)", "float", optional=True)
    if w.ndim != 2:
        raise _fail(node, f"B must be 2-D, got shape {w.shape}")
    w = w if attrs.get("transB", 0) else w.T
    out_f, in_f = w.shape
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    bias = None
    if c is not None:
        try:
            bias = np.broadcast_to(c, (1, out_f)).reshape(out_f) if c.ndim <= 2 and (c.ndim < 2 or c.shape[0] == 1) \
                else None
        except ValueError:
            bias = None
        if bias is None:
            raise _fail(node, f"C of shape {c.shape} is not a bias (out_features,) = ({out_f},)")
    _linear(ctx, node, w * alpha if alpha != 1 else w, None if bias is None else bias * beta)


def _linear(ctx, node, w, bias, output=None, inputs=None):
    out_f, in_f = w.shape
    m = ctx.make(node, nn.Linear, in_f, out_f, bias=bias is not None, rng=0, dtype=ctx.dtype)
    m.weight.data[...] = w
    if bias is not None:
        m.bias.data[...] = bias
    ctx.emit(node, m, inputs=inputs, outputs=[output or node.output[0]])


@add_converter("MatMul", 1, 9, 13)
def _matmul(ctx, node):
    Attrs(node).check()
    x = ctx.probe(node, 0)
    w = ctx.const(node, 1, "B", "float")
    if x.ndim != 2 or w.ndim != 2:
        raise _fail(node, f"fastconv converts MatMul of a 2-D input by a 2-D constant (a Linear layer), got "
                          f"shapes {x.shape} and {w.shape}")
    output, bias = node.output[0], None
    add = ctx.sole_consumer(node.output[0])
    if add is not None and add.op_type == "Add" and len(add.input) == 2:
        other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        if ctx.is_const(other):
            c = ctx.constants[ctx.resolve(other)]
            if c.dtype == ctx.dtype and c.size == w.shape[1] and c.ndim <= 2 and c.shape[-1] == w.shape[1]:
                bias, output = c.reshape(-1), add.output[0]
                ctx.skip.add(id(add))
    _linear(ctx, node, np.ascontiguousarray(w.T), bias, output=output)


@add_converter("BatchNormalization", 7, 9, 14, 15)
def _batch_norm(ctx, node):
    attrs = Attrs(node)
    attrs.check(epsilon=_any, momentum=_any, training_mode={0}, spatial={1})
    if len(ctx.used_outputs(node)) > 1 or (node.output and node.output[0] not in ctx.used_outputs(node)):
        raise _fail(node, "only the normalised output (inference mode) is supported; the running statistics "
                          "outputs are used")
    x = ctx.probe(node, 0)
    scale, bias, mean, var = (ctx.const(node, i, what, "float") for i, what in
                              enumerate(("scale", "B", "input_mean", "input_var"), start=1))
    if x.ndim < 2:
        raise _fail(node, f"input must be at least 2-D, got shape {x.shape}")
    C = x.shape[1]
    for a, what in ((scale, "scale"), (bias, "B"), (mean, "input_mean"), (var, "input_var")):
        if a.shape != (C,):
            raise _fail(node, f"{what} must have shape ({C},), got {a.shape}")
    cls = nn.BatchNorm2d if x.ndim == 4 else nn.BatchNorm1d
    momentum = 1.0 - attrs.get("momentum", 0.9)
    m = ctx.make(node, cls, C, eps=attrs.get("epsilon", 1e-5), momentum=min(max(momentum, 0.0), 1.0),
                 dtype=ctx.dtype)
    m.weight.data[...] = scale
    m.bias.data[...] = bias
    m.running_mean[...] = mean
    m.running_var[...] = var
    ctx.emit(node, m)


def _unary(op, versions, factory, **allowed):
    @add_converter(op, *versions)
    def convert(ctx, node):
        attrs = Attrs(node)
        attrs.check(**allowed)
        ctx.probe(node, 0)
        ctx.emit(node, ctx.make(node, lambda: factory(attrs)))

    convert.__name__ = f"_{op.lower()}"
    return convert


_unary("Relu", (6, 13, 14), lambda a: nn.ReLU())
_unary("Tanh", (6, 13), lambda a: nn.Tanh())
_unary("Sigmoid", (6, 13), lambda a: nn.Sigmoid())
_unary("LeakyRelu", (6, 16), lambda a: nn.LeakyReLU(a.get("alpha", 0.01)), alpha=_any)
_unary("Elu", (6, 22), lambda a: nn.ELU(a.get("alpha", 1.0)), alpha=_any)


def _softmax_like(op, cls):
    @add_converter(op, 1, 11, 13)
    def convert(ctx, node):
        attrs = Attrs(node)
        attrs.check(axis=_any)
        x = ctx.probe(node, 0)
        if ctx.opset >= 13:
            axis = attrs.get("axis", -1)
        else:  # before opset 13: over the flattened axes from ``axis`` on
            axis = attrs.get("axis", 1)
            if axis % x.ndim != x.ndim - 1:
                raise _fail(node, f"attribute axis={axis} (opset {ctx.opset}: over all axes from {axis} on) is "
                                  "supported on the last axis only")
        ctx.emit(node, ctx.make(node, cls, axis))

    convert.__name__ = f"_{op.lower()}"
    return convert


_softmax_like("Softmax", nn.Softmax)
_softmax_like("LogSoftmax", nn.LogSoftmax)


@add_converter("Dropout", 7, 10, 12, 13, 22)
def _dropout(ctx, node):
    attrs = Attrs(node)
    attrs.check(ratio=_any, seed=_any, is_test=_any)
    if len(ctx.used_outputs(node)) > 1 or node.output[0] not in ctx.used_outputs(node):
        raise _fail(node, "its mask output is used, which is not supported")
    ratio = attrs.get("ratio", 0.5)
    if len(node.input) > 1 and node.input[1]:
        ratio = float(np.asarray(ctx.const(node, 1, "ratio")).reshape(-1)[0])
    if len(node.input) > 2 and node.input[2]:
        training = ctx.const(node, 2, "training_mode")
        if bool(np.asarray(training).reshape(-1)[0]):
            raise _fail(node, "training_mode=True is not supported (fastconv's Dropout follows train()/eval())")
    ctx.probe(node, 0)
    ctx.emit(node, ctx.make(node, nn.Dropout, ratio))


def _pool_conversion(ctx, node, is_max):
    attrs = Attrs(node)
    allowed = dict(auto_pad={"NOTSET", "VALID", ""}, kernel_shape=_any, pads=_any, strides=_any,
                   ceil_mode={0, 1}, dilations=_is_ones)
    if is_max:
        allowed["storage_order"] = {0}
    else:
        allowed["count_include_pad"] = {0, 1}
    attrs.check(**allowed)
    if is_max and len(ctx.used_outputs(node)) > 1:
        raise _fail(node, "its Indices output is used, which is not supported")
    x = ctx.probe(node, 0)
    _spatial(node, x)
    kernel = attrs.get("kernel_shape")
    if kernel is None or len(kernel) != 2:
        raise _fail(node, f"attribute kernel_shape={kernel} must have 2 entries")
    strides = attrs.get("strides", [1, 1])
    if len(strides) != 2:
        raise _fail(node, f"attribute strides={strides} must have 2 entries")
    t, b, l, r = _conv_pads(node, attrs, x, kernel, strides, (1, 1))
    ceil = bool(attrs.get("ceil_mode", 0))
    include = bool(attrs.get("count_include_pad", 0))
    fused = ctx.fused_pad.pop(id(node), None)
    H, W = x.shape[2:]
    if fused is not None:  # Pad(zeros) + AveragePool(pads at the end only, not counted)
        H, W = H + 2 * fused[0], W + 2 * fused[1]
    # the output size ONNX gives (ceil mode: the last window starts inside the input or
    # the begin padding, as PyTorch)
    want = tuple(conv_output_size(n, k, s, (pb, pe), 1, ceil) for n, k, s, pb, pe in
                 ((H, kernel[0], strides[0], t, b), (W, kernel[1], strides[1], l, r)))
    if fused is not None:
        candidates = [(fused, c, True) for c in (False, True)]
        H, W = x.shape[2:]
    elif (t, l) == (b, r):
        candidates = [((t, l), ceil, include)]
    elif not ceil and b >= t and r >= l and (is_max or not include):
        # extra end padding that no window counts: fastconv's ceil mode over the begin padding
        candidates = [((t, l), c, include) for c in (True, False)]
    else:
        raise _fail(node, f"asymmetric pads {attrs.get('pads')} are not supported here")
    for padding, ceil_mode, count_pad in candidates:
        got = tuple(conv_output_size(n, k, s, p, 1, ceil_mode) for n, k, s, p in
                    ((H, kernel[0], strides[0], padding[0]), (W, kernel[1], strides[1], padding[1])))
        if got == want:
            break
    else:
        raise _fail(node, f"pads {attrs.get('pads')} with ceil_mode={int(ceil)} give an output size {want} that "
                          f"fastconv's pooling does not (it gives {got})")
    if is_max:
        m = ctx.make(node, nn.MaxPool2d, tuple(kernel), tuple(strides), padding, ceil_mode=ceil_mode)
    else:
        m = ctx.make(node, nn.AvgPool2d, tuple(kernel), tuple(strides), padding, ceil_mode=ceil_mode,
                     count_include_pad=count_pad)
    ctx.emit(node, m)


def _avg_pool_takes_pad(ctx, pool, x, top, left):
    """Whether Pad(zeros, symmetric (top, left)) + this AveragePool is fastconv's AvgPool2d
    with that padding counted (count_include_pad) in floor or ceil mode: how
    fastconv.onnx.export writes PyTorch's ceil-mode average pooling."""
    attrs = Attrs(pool)
    pads = attrs.get("pads", [0, 0, 0, 0])
    kernel, strides = attrs.get("kernel_shape"), attrs.get("strides", [1, 1])
    if (attrs.get("count_include_pad", 0) or attrs.get("ceil_mode", 0) or len(pads) != 4 or pads[:2] != [0, 0]
            or attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "") or not kernel or len(kernel) != 2
            or len(strides) != 2 or 2 * top > kernel[0] or 2 * left > kernel[1]
            or not _is_ones(attrs.get("dilations", [1, 1]))):
        return False
    H, W = x.shape[2:]
    want = tuple(conv_output_size(n + 2 * p, k, s, (0, e), 1, False) for n, p, k, s, e in
                 ((H, top, kernel[0], strides[0], pads[2]), (W, left, kernel[1], strides[1], pads[3])))
    return any(tuple(conv_output_size(n, k, s, p, 1, c) for n, p, k, s in
                     ((H, top, kernel[0], strides[0]), (W, left, kernel[1], strides[1]))) == want
               for c in (False, True))


@add_converter("MaxPool", 8, 10, 11, 12, 22)
def _max_pool(ctx, node):
    _pool_conversion(ctx, node, True)


@add_converter("AveragePool", 7, 10, 11, 19, 22)
def _avg_pool(ctx, node):
    _pool_conversion(ctx, node, False)


@add_converter("GlobalAveragePool", 1, 22)
def _global_avg_pool(ctx, node):
    Attrs(node).check()
    _spatial(node, ctx.probe(node, 0))
    ctx.emit(node, nn.AdaptiveAvgPool2d(1))


@add_converter("GlobalMaxPool", 1, 22)
def _global_max_pool(ctx, node):
    Attrs(node).check()
    _spatial(node, ctx.probe(node, 0))
    ctx.emit(node, nn.AdaptiveMaxPool2d(1))


def _reduce(ctx, node, cls, attr_axes_until):
    attrs = Attrs(node)
    attrs.check(axes=_any, keepdims={0, 1}, noop_with_empty_axes={0})
    x = ctx.probe(node, 0)
    axes = attrs.get("axes") if ctx.opset < attr_axes_until else (
        _ints_of(ctx, node, 1, "axes") if len(node.input) > 1 and node.input[1] else None)
    if x.ndim != 4 or axes is None or sorted(a % 4 for a in axes) != [2, 3]:
        raise _fail(node, f"fastconv converts {node.op_type} over the spatial axes (2, 3) of 4-D input only "
                          f"(global pooling), got axes {axes} for shape {x.shape}")
    out = ctx.emit(node, cls(1), outputs=[node.output[0] + "__keep"] if not attrs.get("keepdims", 1) else None)
    if not attrs.get("keepdims", 1):
        ctx.emit(node, nn.Flatten(1), inputs=out, suffix="_flatten")


@add_converter("ReduceMean", 1, 11, 13, 18)
def _reduce_mean(ctx, node):
    _reduce(ctx, node, nn.AdaptiveAvgPool2d, 18)


@add_converter("ReduceMax", 1, 11, 12, 13, 18, 20)
def _reduce_max(ctx, node):
    _reduce(ctx, node, nn.AdaptiveMaxPool2d, 18)


@add_converter("Flatten", 1, 9, 11, 13, 21, 23)
def _flatten(ctx, node):
    attrs = Attrs(node)
    attrs.check(axis={1})
    ctx.probe(node, 0)
    ctx.emit(node, nn.Flatten(1))


def _resolve_reshape(node, shape, target, allowzero):
    """The output shape of Reshape (the batch symbol kept), or a ValueError."""
    out, infer = [], None
    for i, t in enumerate(target):
        if t is BATCH:
            out.append(shape[0])
        elif t == 0 and not allowzero:
            if i >= len(shape):
                raise _fail(node, f"shape {target} copies axis {i}, which the input of shape {shape} lacks")
            out.append(shape[i])
        elif t == -1:
            if infer is not None:
                raise _fail(node, f"shape {target} has two -1 entries")
            infer = i
            out.append(None)
        elif t < 0 or t == 0:
            raise _fail(node, f"shape {target} is not supported (zero or negative sizes)")
        else:
            out.append(int(t))
    total = int(np.prod(shape))
    if infer is not None:
        known = int(np.prod([d for d in out if d is not None]))
        if known == 0 or total % known:
            raise _fail(node, f"shape {target} does not fit an input of shape {shape}")
        out[infer] = total // known
    if int(np.prod(out)) != total:
        raise _fail(node, f"shape {target} does not fit an input of shape {shape}")
    return out


@add_converter("Reshape", 5, 13, 14, 19, 21, 23)
def _reshape(ctx, node):
    attrs = Attrs(node)
    attrs.check(allowzero={0, 1})
    x = ctx.probe(node, 0)
    target = _ints_of(ctx, node, 1, "shape")
    shape = list(x.shape)
    out = _resolve_reshape(node, shape, target, attrs.get("allowzero", 0))
    batch_kept = (target[0] is BATCH or (target[0] == 0 and not attrs.get("allowzero", 0))
                  or (target[0] == -1 and int(np.prod(out[1:])) == int(np.prod(shape[1:])))
                  or (not ctx.batch_symbolic and target[0] == shape[0]))
    if batch_kept:
        for k in range(1, len(shape)):  # a flatten from axis k on
            if out == shape[:k] + [int(np.prod(shape[k:]))]:
                ctx.emit(node, nn.Flatten(k))
                return
        # a Maxout: (N, C*k, ...) -> (N, C, k, ...) reduced by ReduceMax over axis 2
        red = ctx.sole_consumer(node.output[0])
        if (red is not None and red.op_type == "ReduceMax" and len(out) == len(shape) + 1
                and out[3:] == shape[2:] and out[1] * out[2] == shape[1]):
            rattrs = Attrs(red)
            axes = rattrs.get("axes")
            if axes is None and len(red.input) > 1 and red.input[1] and ctx.is_const(red.input[1]):
                axes = [int(a) for a in np.asarray(ctx.constants[ctx.resolve(red.input[1])]).reshape(-1)]
            if axes is not None and [a % len(out) for a in axes] == [2] and rattrs.get("keepdims", 1) == 0:
                ctx.skip.add(id(red))
                ctx.emit(node, ctx.make(node, nn.Maxout, out[2]), outputs=[red.output[0]])
                return
    raise _fail(node, f"fastconv converts Reshape where it is a flatten (keeping the batch axis) or a Maxout; "
                      f"here it reshapes {tuple(shape)} to {target}")


@add_converter("Add", 7, 13, 14)
def _add(ctx, node):
    Attrs(node).check()
    ins = [v for v in node.input if v]
    for v in ins:
        if ctx.is_const(v):
            raise _fail(node, f"input {v!r} is a constant; fastconv adds computed values only (a bias is "
                              "converted with the MatMul / Conv before it)")
    ctx.emit(node, nn.Add(), inputs=ins)


@add_converter("Sum", 6, 8, 13)
def _sum(ctx, node):
    Attrs(node).check()
    ins = [v for v in node.input if v]
    if len(ins) == 1:
        ctx.alias[node.output[0]] = ctx.resolve(ins[0])
        return
    for v in ins:
        if ctx.is_const(v):
            raise _fail(node, f"input {v!r} is a constant; fastconv adds computed values only")
    ctx.emit(node, nn.Add(), inputs=ins)


@add_converter("Split", 2, 11, 13, 18)
def _split(ctx, node):
    attrs = Attrs(node)
    attrs.check(axis=_any, split=_any, num_outputs=_any)
    x = ctx.probe(node, 0)
    axis = attrs.get("axis", 0)
    if not -x.ndim <= axis < x.ndim:
        raise _fail(node, f"attribute axis={axis} is out of range for shape {x.shape}")
    sizes = attrs.get("split")
    if sizes is None and len(node.input) > 1 and node.input[1]:
        sizes = _ints_of(ctx, node, 1, "split")
    n_out = len(node.output)
    if sizes is None:
        n = x.shape[axis]
        if ctx.opset >= 18 and n % n_out:  # num_outputs: the last part smaller
            part = -(-n // n_out)
            sizes = [part] * (n_out - 1) + [n - part * (n_out - 1)]
        else:
            if n % n_out:
                raise _fail(node, f"axis {axis} of size {n} does not split into {n_out} equal parts")
            sizes = [n // n_out] * n_out
    if len(sizes) != n_out:
        raise _fail(node, f"{len(sizes)} split sizes for {n_out} outputs")
    ctx.emit(node, ctx.make(node, nn.Split, list(sizes), axis), outputs=list(node.output))


_PAD_LAYERS = {"constant": nn.ConstantPad2d, "reflect": nn.ReflectionPad2d, "edge": nn.ReplicationPad2d,
               "wrap": nn.CircularPad2d}
_PADDING_MODES = {"reflect": "reflect", "edge": "replicate", "wrap": "circular"}


@add_converter("Pad", 2, 11, 13, 18, 19, 21, 23)
def _pad(ctx, node):
    attrs = Attrs(node)
    attrs.check(mode=set(_PAD_LAYERS), pads=_any, value=_any)
    x = ctx.probe(node, 0)
    mode = attrs.get("mode", "constant")
    if ctx.opset < 11:
        pads, value = attrs.get("pads"), attrs.get("value", 0.0)
        axes = None
    else:
        pads = _ints_of(ctx, node, 1, "pads")
        value = 0.0
        if len(node.input) > 2 and node.input[2]:
            value = float(np.asarray(ctx.const(node, 2, "constant_value")).reshape(-1)[0])
        axes = _ints_of(ctx, node, 3, "axes") if len(node.input) > 3 and node.input[3] else None
    rank = x.ndim
    if pads is None:
        raise _fail(node, "pads are missing")
    axes = list(range(rank)) if axes is None else [a % rank for a in axes]
    if len(pads) != 2 * len(axes):
        raise _fail(node, f"pads {pads} must have 2 entries per padded axis ({len(axes)} axes)")
    full = [0] * (2 * rank)
    for i, a in enumerate(axes):
        full[a], full[rank + a] = pads[i], pads[len(axes) + i]
    if rank not in (3, 4) or any(full[a] or full[rank + a] for a in range(rank - 2)):
        raise _fail(node, f"fastconv pads the last two axes of 3-D or 4-D input only, got pads {pads} for "
                          f"shape {x.shape}")
    top, left, bottom, right = full[rank - 2], full[rank - 1], full[2 * rank - 2], full[2 * rank - 1]
    # folded into the next convolution when it is its only reader and pads symmetrically
    conv = ctx.sole_consumer(node.output[0])
    if (conv is not None and conv.op_type == "Conv" and conv.input[0] == node.output[0] and rank == 4
            and min(full) >= 0 and (mode in _PADDING_MODES or value == 0) and top == bottom and left == right):
        cattrs = Attrs(conv)
        if not any(cattrs.get("pads", [0])) and cattrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID", ""):
            ctx.fused_pad[id(conv)] = ((left, right, top, bottom), _PADDING_MODES.get(mode, "zeros"))
            ctx.alias[node.output[0]] = ctx.resolve(node.input[0])
            return
    if (conv is not None and conv.op_type == "AveragePool" and rank == 4 and mode == "constant" and value == 0
            and min(full) >= 0 and top == bottom and left == right
            and _avg_pool_takes_pad(ctx, conv, x, top, left)):
        ctx.fused_pad[id(conv)] = (top, left)
        ctx.alias[node.output[0]] = ctx.resolve(node.input[0])
        return
    cls = _PAD_LAYERS[mode]
    padding = (left, right, top, bottom)
    layer = ctx.make(node, cls, padding, value) if cls is nn.ConstantPad2d else ctx.make(node, cls, padding)
    ctx.emit(node, layer)


# --- constant folding (all inputs constant) ---------------------------------------------

def _int_div(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        if np.any(b == 0):
            raise ZeroDivisionError("integer division by zero")
        return (np.trunc(a / b)).astype(np.result_type(a, b))  # ONNX: towards zero
    return a / b


def _constant_of_shape(attrs, shape):
    shape = [int(d) for d in np.asarray(shape).reshape(-1)]
    if any(d < 0 for d in shape) or int(np.prod(shape)) > MAX_FOLDED_ELEMENTS:
        raise ValueError(f"shape {shape} is negative or too large")
    value = attrs.get("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return np.full(shape, value[0], value.dtype)


def _fold_reshape(attrs, data, shape):
    data = np.asarray(data)
    shape = [int(d) for d in np.asarray(shape).reshape(-1)]
    if not attrs.get("allowzero", 0):
        shape = [data.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return data.reshape(shape)


FOLDERS.update({
    "Add": lambda a, x, y: np.asarray(x) + np.asarray(y),
    "Sub": lambda a, x, y: np.asarray(x) - np.asarray(y),
    "Mul": lambda a, x, y: np.asarray(x) * np.asarray(y),
    "Div": lambda a, x, y: _int_div(x, y),
    "Neg": lambda a, x: -np.asarray(x),
    "ConstantOfShape": _constant_of_shape,
    "Transpose": lambda a, x: np.transpose(np.asarray(x), a.get("perm")),
    "Reshape": _fold_reshape,
})
