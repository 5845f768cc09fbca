"""Lowering: a module tree into the planned path's intermediate form.

One function per layer type (:data:`_LOWERINGS`) turns a module into values and ops on a
:class:`_Builder`, fusing what follows a kernel into its epilogue (BatchNorm folded into the
convolution or fully connected layer before it, ReLU, a Residual's add). The ops are then
turned into the executor's tables by :mod:`fastconv.inference._planning`.
"""
import math
from typing import Tuple

import numpy as np

from .. import functional as F
from .. import nn
from .._kernels import _direct


# -- the intermediate form: values and ops -------------------------------------------------
class _Value:
    """An array of the network: its shape, and the value whose buffer it views (Flatten)."""

    __slots__ = ("shape", "base", "producer", "uses", "pinned")

    def __init__(self, shape, base=None, producer=None):
        self.shape = tuple(int(s) for s in shape)
        self.base = base  # None: owns a buffer (or is the input)
        self.producer = producer
        self.uses = 0
        self.pinned = False  # read by later consumers too (a Graph value): never fused into

    @property
    def root(self):
        v = self
        while v.base is not None:
            v = v.base
        return v


class _Op:
    """One step: ``kind`` (a key of ``_plan.KINDS``), its inputs and output, and its fields."""

    def __init__(self, kind, inputs, out_shape, label, **fields):
        self.kind = kind
        self.inputs = list(inputs)
        for v in self.inputs:
            v.uses += 1
        self.output = _Value(out_shape, producer=self)
        self.label = label
        self.relu = False
        self.residual = None
        self.__dict__.update(fields)

    def fuse_residual(self, value):
        self.residual = value
        value.uses += 1


def _fusable(x, kinds, after_pool=False):
    """The op that produced ``x`` when nothing else reads ``x`` yet and it is one of ``kinds``
    (so a following BatchNorm / ReLU / add may join its epilogue). A convolution with max
    pooling fused takes only a ReLU (``after_pool``: they commute)."""
    op = x.producer
    if op is None or x.uses or x.pinned or x.base is not None or op.kind not in kinds:
        return None
    if getattr(op, "pooled", False) and not after_pool:
        return None
    return op


class _Builder:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.ops = []

    def emit(self, kind, inputs, out_shape, label, **fields):
        op = _Op(kind, inputs, out_shape, label, **fields)
        self.ops.append(op)
        return op.output

    def lower(self, module, x, name):
        for cls in type(module).__mro__:
            fn = _LOWERINGS.get(cls)
            if fn is not None:
                return fn(self, module, x, name)
        raise ValueError(
            f"fastconv.inference.compile: layer {name or '(model)'} ({type(module).__name__}) "
            f"is not supported; supported: {', '.join(sorted(c.__name__ for c in _LOWERINGS))}"
        )


def _need_ndim(x, ndim, module, name, doc):
    if len(x.shape) != ndim:
        raise ValueError(f"layer {name} ({type(module).__name__}) expects input {doc}, "
                         f"got shape {x.shape}")


def _join(name, child):
    return f"{name}.{child}" if name else str(child)


# -- lowerings, one per layer type ---------------------------------------------------------
def _lower_sequential(b, seq, x, name):
    for child_name, layer in seq._modules.items():
        x = b.lower(layer, x, _join(name, child_name))
    return x


def _lower_conv(b, m, x, name):
    _need_ndim(x, 4, m, name, f"(N, {m.in_channels}, H, W)")
    if x.shape[1] != m.in_channels:
        raise ValueError(f"layer {name} (Conv2d) expects {m.in_channels} input channels, "
                         f"got shape {x.shape}")
    w = m.weight.data
    g = F.conv_geometry(x.shape, w.shape, m.stride, m.padding, m.dilation, m.groups)
    padded = F.conv_padding(m.padding_mode, g, b.dtype)
    label = f"{name}: conv {m.in_channels}->{m.out_channels} {g.kh}x{g.kw}"
    if padded is not None:  # pad in that mode (a Python step), then convolve without padding
        pg, g = padded
        x = b.emit("py", [x], pg.output_shape, f"{name}: pad {m.padding_mode}",
                   fn=lambda xa, out, pg=pg: F.pad_unchecked(xa, pg, out=out))
    bias = np.zeros(g.C_out) if m.bias is None else m.bias.data.astype(np.float64)
    return b.emit("conv", [x], g.output_shape, label, geometry=g,
                  weight=w.astype(np.float64), bias=bias)


def _bn_coefficients(m, name):
    if not m.track_running_stats:
        return None
    invstd = 1.0 / np.sqrt(m.running_var.astype(np.float64) + m.eps)
    gamma = m.weight.data.astype(np.float64) if m.affine else 1.0
    beta = m.bias.data.astype(np.float64) if m.affine else 0.0
    scale = gamma * invstd
    shift = beta - m.running_mean.astype(np.float64) * scale
    return scale, shift


def fold_batch_norm(weight: np.ndarray, bias: np.ndarray, scale: np.ndarray,
                    shift: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(weight', bias') of a convolution / fully connected layer followed by the per-channel
    map ``y * scale + shift`` (an eval-mode BatchNorm), in float64: ``weight' = weight *
    scale`` along the output channels, ``bias' = bias * scale + shift``."""
    weight = np.asarray(weight, np.float64)
    scale = np.asarray(scale, np.float64)
    w = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    return w, np.asarray(bias, np.float64) * scale + np.asarray(shift, np.float64)


def _lower_batch_norm(b, m, x, name):
    if len(x.shape) not in m._ndims or x.shape[1] != m.num_features:
        raise ValueError(f"layer {name} ({type(m).__name__}) expects {m.num_features} channels, "
                         f"got shape {x.shape}")
    coef = _bn_coefficients(m, name)
    if coef is None:  # batch statistics in eval mode too: a Python step
        w = m.weight.data if m.affine else None
        bb = m.bias.data if m.affine else None
        return b.emit("py", [x], x.shape, f"{name}: batch_norm (batch statistics)",
                      fn=lambda xa, out: F.batch_norm_unchecked(xa, None, None, w, bb, True, 0.0,
                                                                m.eps, out))
    scale, shift = coef
    op = _fusable(x, ("conv", "linear"))
    if op is not None and op.residual is None and not op.relu:
        op.weight, op.bias = fold_batch_norm(op.weight, op.bias, scale, shift)
        op.label += " +bn"
        return x
    plane = math.prod(x.shape[2:])
    return b.emit("affine", [x], x.shape, f"{name}: batch_norm (affine)", scale=scale,
                  shift=shift, plane=plane)


def _lower_relu(b, m, x, name):
    op = _fusable(x, ("conv", "linear", "add", "affine"), after_pool=True)
    if op is not None and not op.relu:
        op.relu = True
        return x
    return b.emit("relu", [x], x.shape, f"{name}: relu")


def _lower_linear(b, m, x, name):
    _need_ndim(x, 2, m, name, f"(N, {m.in_features})")
    if x.shape[1] != m.in_features:
        raise ValueError(f"layer {name} (Linear) expects input (N, {m.in_features}), got shape {x.shape}")
    w = m.weight.data
    bias = np.zeros(m.out_features) if m.bias is None else m.bias.data.astype(np.float64)
    return b.emit("linear", [x], (x.shape[0], m.out_features),
                  f"{name}: linear {m.in_features}->{m.out_features}",
                  weight=w.astype(np.float64), bias=bias)


def _lower_flatten(b, m, x, name):
    if len(x.shape) <= m.start_dim:
        raise ValueError(f"layer {name} (Flatten) needs more than {m.start_dim} dims, got shape {x.shape}")
    shape = x.shape[:m.start_dim] + (math.prod(x.shape[m.start_dim:]),)
    return _Value(shape, base=x)


def _lower_identity(b, m, x, name):
    return x


def _lower_pool(b, m, x, name):
    _need_ndim(x, 4, m, name, "(N, C, H, W)")
    g = F.pool_geometry(x.shape, m.kernel_size, m.stride, m.padding, m.ceil_mode)
    kind = "maxpool" if isinstance(m, nn.MaxPool2d) else "avgpool"
    cip = getattr(m, "count_include_pad", True)
    op = _fusable(x, ("conv",), after_pool=False) if kind == "maxpool" else None
    if (op is not None and op.residual is None and g.kernel_args == (2, 2, 2, 2, 0, 0)
            and _pixel_tile_pool_fits(op.geometry, b.dtype)):
        # 2x2 max pooling in the pixel tile's registers: only the pooled planes are written
        op.pooled = True
        op.output.shape = g.output_shape
        op.label += " +maxpool"
        return op.output
    return b.emit(kind, [x], g.output_shape, f"{name}: {kind} {g.kh}x{g.kw}/{g.sh}",
                  geometry=g, count_include_pad=cip)


def _pixel_tile_pool_fits(g, dtype):
    """Whether convolution ``g`` runs on a pixel tile (float32, <= 8 output channels per
    group, stride 1 along rows: the AVX-512 one, or on a CPU with AVX2 only the AVX2 one)
    with even output height and width, so that a following 2x2 / stride 2 max pooling can
    be done on the tile's rows. (On AMD Zen 1, LeNet-5's C1 + pool at batch 1: the diagonal
    tile and a pooling step 18.9 + 6.8 us, the AVX2 pixel tile with the pool fused 13.)"""
    cog = g.C_out // g.groups
    if dtype != np.float32 or g.OH % 2 or g.OW % 2:
        return False
    if _direct.use_avx512():
        return (_direct.forward_tile(False, cog, g.OW, g.kw, g.sw, g.dw)[0] == _direct.PIXEL_TILE
                and _direct.pixel_tiles_fit(False, cog, g.sw))
    return _direct.use_avx2() and cog <= 8 and g.sw == 1


def _lower_adaptive(b, m, x, name):
    _need_ndim(x, 4, m, name, "(N, C, H, W)")
    if getattr(m, "return_indices", False):
        raise ValueError(f"layer {name} (AdaptiveMaxPool2d) with return_indices=True is not "
                         "supported (a plan returns one array)")
    g = F.adaptive_pool_geometry(x.shape, m.output_size)
    kind = "adaptive_avg" if isinstance(m, nn.AdaptiveAvgPool2d) else "adaptive_max"
    return b.emit(kind, [x], g.output_shape, f"{name}: {kind} -> {g.OH}x{g.OW}", geometry=g)


def _lower_python_layer(b, m, x, name):
    """Layers without a kernel in the executor: the module's own eval forward on a
    preallocated output (a Python step)."""
    try:
        probe = m.forward(np.zeros(x.shape, b.dtype))
    except (TypeError, ValueError) as e:
        raise ValueError(f"layer {name} ({type(m).__name__}) does not take input of shape "
                         f"{x.shape}: {e}") from e
    if not isinstance(probe, np.ndarray):
        raise ValueError(f"layer {name} ({type(m).__name__}) does not return one array")

    def fn(xa, out):
        np.copyto(out, m.forward(xa))
    return b.emit("py", [x], probe.shape, f"{name}: {type(m).__name__.lower()} (python)", fn=fn)


def _lower_residual(b, m, x, name):
    shortcut = m.__dict__.get("shortcut")
    s = x if shortcut is None else b.lower(shortcut, x, _join(name, "shortcut"))
    y = b.lower(m.body, x, _join(name, "body"))
    if y.shape != s.shape:
        raise ValueError(f"layer {name} (Residual): body output shape {y.shape} does not match "
                         f"the shortcut's {s.shape}")
    op = _fusable(y, ("conv",))
    if op is not None and op.residual is None and not op.relu:
        op.fuse_residual(s)
        op.label += " +residual"
        return y
    return b.emit("add", [y, s], y.shape, f"{name}: add")


def _lower_concat(b, m, x, name):
    outs = [b.lower(branch, x, _join(name, i)) for i, branch in m._modules.items()]
    first = outs[0].shape
    ndim = len(first)
    if not -ndim <= m.dim < ndim:
        raise ValueError(f"layer {name} (Concat): dim={m.dim} is out of range for outputs of shape {first}")
    axis = m.dim % ndim
    for i, v in enumerate(outs[1:], start=1):
        if len(v.shape) != ndim or v.shape[:axis] != first[:axis] or v.shape[axis + 1:] != first[axis + 1:]:
            raise ValueError(f"layer {name} (Concat): branch outputs must match except along "
                             f"dim {m.dim}: branch 0 gave {first}, branch {i} gave {v.shape}")
    shape = list(first)
    shape[axis] = sum(v.shape[axis] for v in outs)
    return b.emit("copy", outs, tuple(shape), f"{name}: concat dim {axis}", axis=axis)


def _lower_graph(b, g, x, name):
    """A one-input, one-output Graph: its nodes in execution order over named values. A
    value read by more than one node (or a graph output read by a node) is pinned: no
    BatchNorm, ReLU or add is fused into the op that produced it."""
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise ValueError(f"layer {name or '(model)'} (Graph) has {len(g.inputs)} inputs and "
                         f"{len(g.outputs)} outputs; a plan takes one of each")
    readers: dict = {}
    for node in g.nodes:
        for v in node.inputs:
            readers[v] = readers.get(v, 0) + 1
    for v in g.outputs:
        readers[v] = readers.get(v, 0) + 1
    values = {g.inputs[0]: x}
    for node in g.nodes:
        node_name = _join(name, node.name)
        if len(node.outputs) != 1:
            raise ValueError(f"layer {node_name} ({type(node.module).__name__}) has "
                             f"{len(node.outputs)} outputs, which plans do not support")
        ins = [values[v] for v in node.inputs]
        if len(ins) == 1:
            y = b.lower(node.module, ins[0], node_name)
        else:
            fn = _MULTI_INPUT.get(type(node.module))
            if fn is None:
                raise ValueError(f"layer {node_name} ({type(node.module).__name__}) with "
                                 f"{len(ins)} inputs is not supported")
            y = fn(b, node.module, ins, node_name)
        if readers.get(node.outputs[0], 0) > 1:
            y.pinned = True
        values[node.outputs[0]] = y
    return values[g.outputs[0]]


def _lower_add(b, m, ins, name):
    shapes = {v.shape for v in ins}
    if len(shapes) == 1:  # kernel adds, the first of them fusable into a conv's epilogue
        y = ins[0]
        for i, v in enumerate(ins[1:]):
            op = _fusable(y, ("conv",)) if i == 0 else None
            if op is not None and op.residual is None and not op.relu:
                op.fuse_residual(v)
                op.label += " +residual"
            else:
                y = b.emit("add", [y, v], y.shape, f"{name}: add")
        return y
    shape = np.broadcast_shapes(*[v.shape for v in ins])
    return b.emit("py", ins, shape, f"{name}: add (broadcast, python)",
                  fn=lambda *arrays: _add_into(arrays[-1], arrays[:-1]))


def _add_into(out, arrays):
    np.add(arrays[0], arrays[1], out=out)
    for a in arrays[2:]:
        np.add(out, a, out=out)


def _lower_cat(b, m, ins, name):
    first = ins[0].shape
    axis = m.dim % len(first)
    shape = list(first)
    shape[axis] = sum(v.shape[axis] for v in ins)
    return b.emit("copy", ins, tuple(shape), f"{name}: cat dim {axis}", axis=axis)


_MULTI_INPUT = {}

_LOWERINGS = {
    nn.Sequential: _lower_sequential,
    nn.Conv2d: _lower_conv,
    nn.BatchNorm2d: _lower_batch_norm,
    nn.BatchNorm1d: _lower_batch_norm,
    nn.ReLU: _lower_relu,
    nn.Linear: _lower_linear,
    nn.Flatten: _lower_flatten,
    nn.Dropout: _lower_identity,
    nn.Identity: _lower_identity,
    nn.MaxPool2d: _lower_pool,
    nn.AvgPool2d: _lower_pool,
    nn.AdaptiveAvgPool2d: _lower_adaptive,
    nn.AdaptiveMaxPool2d: _lower_adaptive,
    nn.Residual: _lower_residual,
    nn.Concat: _lower_concat,
    nn.Tanh: _lower_python_layer,
    nn.Sigmoid: _lower_python_layer,
    nn.LeakyReLU: _lower_python_layer,
    nn.ELU: _lower_python_layer,
    nn.Softmax: _lower_python_layer,
    nn.LogSoftmax: _lower_python_layer,
    nn.Maxout: _lower_python_layer,
}
if hasattr(nn, "Graph"):  # the DAG container and its merge / pad layers
    _LOWERINGS[nn.Graph] = _lower_graph
    _MULTI_INPUT.update({nn.Add: _lower_add, nn.Cat: _lower_cat})
    for _name in ("ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d",
                  "CircularPad2d"):
        _LOWERINGS[getattr(nn, _name)] = _lower_python_layer
