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
import math
import time
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from . import functional as F
from . import nn
from ._kernels import _direct, _im2col, _plan
from ._parallel import blas_single_thread, get_num_threads
from ._validation import FLOAT_DTYPES, check_float_dtype
from .nn.module import Module

__all__ = ["compile", "CompiledModel"]

_COLS = {**_plan.COMMON}
_KIND = _plan.KINDS
_FIELD_GROUP = {"conv": "conv", "linear": "linear", "maxpool": "pool", "avgpool": "pool",
                "adaptive_avg": "pool", "adaptive_max": "pool", "relu": "elementwise",
                "add": "elementwise", "affine": "affine", "copy": "copy", "py": "py",
                "winograd": "winograd"}
_FIELD_COLS = {group: {name: _plan.ARG0 + i for i, name in enumerate(names)}
               for group, names in _plan.FIELDS.items()}


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
    """Whether convolution ``g`` runs on the AVX-512 pixel tile (float32, <= 8 output
    channels per group, stride 1 along rows) with even output height and width, so that a
    following 2x2 / stride 2 max pooling can be done on the tile's two rows."""
    return (dtype == np.float32 and g.OH % 2 == 0 and g.OW % 2 == 0
            and _direct.forward_tile(False, g.C_out // g.groups, g.OW, g.kw, g.sw, g.dw)[0]
            == _direct.PIXEL_TILE and _direct.pixel_tiles_fit(False, g.C_out // g.groups, g.sw))


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


# -- from ops to the executor's tables -----------------------------------------------------
class _Plan:
    """The executable plan for one input shape and thread count."""

    def __init__(self, snapshot, shape, dtype, n_threads, measure=True, chunked=False,
                 force_algorithm=None):
        self.shape = shape
        self.dtype = dtype
        self.n_threads = n_threads
        # chunked: one set of buffers per thread, every step serial (run_chunked)
        self.chunked = chunked
        self.replicas = max(1, n_threads) if chunked else 1
        builder = _Builder(dtype)
        self.input_value = _Value(shape)
        out = builder.lower(snapshot, self.input_value, "")
        if out.root is self.input_value:  # the network only reshapes: copy, never alias x
            out = builder.emit("py", [out], out.shape, "copy",
                               fn=lambda xa, o: np.copyto(o, xa))
        self.ops = builder.ops
        self.holder: list = [None]  # the current input, for Python steps
        self.blas = False
        for op in self.ops:
            if op.kind == "conv":
                # force_algorithm (tests): every convolution that has it uses it
                # ("winograd_axpy": Winograd with its products by the AVX-512 blocks)
                forced = "winograd" if force_algorithm == "winograd_axpy" else force_algorithm
                op.algorithm = ("direct" if forced not in self._conv_alternatives(op) else forced)
                # (only where the AVX-512 blocks exist: a portable build or another CPU has
                # empty stand-ins, so it falls back to BLAS's products, as measuring does)
                op.winograd_axpy = (force_algorithm == "winograd_axpy" and dtype == np.float32
                                    and _direct.use_avx512())
        self._allocate(out)
        self._tables()
        self.executor = _plan.Executor(self.steps, self.slots, self.py_steps)
        if measure:
            if self._choose_algorithms():
                self._tables()
                self.executor = _plan.Executor(self.steps, self.slots, self.py_steps)
            if not chunked:
                self._choose_threads()

    def _choose_algorithms(self):
        """For each convolution with another algorithm (Winograd for 3x3 stride 1, a kernel
        step with the same epilogue; im2col for 1x1, a Python step plus an epilogue step),
        time it against the direct step and keep the faster (im2col must win by 10 %: it
        also pays a separate epilogue pass; chunked plans consider Winograd only). Returns
        whether the tables must be rebuilt."""
        x = np.random.default_rng(0).standard_normal(self.shape).astype(self.dtype)
        self.run(x)
        self.holder[0] = x
        rebuild = False
        with blas_single_thread():
            for i, op in enumerate(self.step_ops):
                alternatives = self._conv_alternatives(op) if op.kind == "conv" else ()
                if self.chunked:
                    alternatives = tuple(a for a in alternatives if a == "winograd")
                if not alternatives:
                    continue
                pick = 0 if self.chunked else -1  # chunked plans: serial steps
                direct_row = self.steps[i].copy()
                nt = int(direct_row[_COLS["threads"]])
                cpu = self.n_threads <= 1
                first = self.executor.time_step(i, nt, 1, cpu)
                reps = int(min(15, max(3, 2e6 // max(first, 1.0))))
                times: dict = {"direct": []}
                if alternatives == ("winograd",):
                    # Winograd with its 16 products by BLAS, and (float32, AVX-512) by the
                    # AVX-512 blocks of _gemm_avx512.h (no per-call overhead; wasteful when
                    # a product has few tiles)
                    variants = [False] + ([True] if self.dtype == np.float32 and _direct.use_avx512() else [])
                    rows_w = {}
                    op.algorithm = "winograd"
                    for axpy in variants:
                        op.winograd_axpy = axpy
                        wrow = direct_row.copy()
                        wconfigs = self._table_winograd(op, wrow)
                        wt, wtasks, _ = wconfigs[pick]
                        wrow[_COLS["threads"]], wrow[_COLS["tasks"]] = wt, wtasks
                        rows_w[axpy] = (wrow, wconfigs, wt)
                        times[axpy] = []
                    op.algorithm = "direct"
                    for _ in range(3):
                        self.steps[i] = direct_row
                        times["direct"].append(self.executor.time_step(i, nt, reps, cpu))
                        for axpy, (wrow, _, wt) in rows_w.items():
                            self.steps[i] = wrow
                            times[axpy].append(self.executor.time_step(i, wt, reps, cpu))
                    self.steps[i] = direct_row
                    med = {k: (min(v) if cpu else sorted(v)[1]) for k, v in times.items()}
                    best = min(med, key=lambda k: med[k])
                    if best != "direct":
                        op.algorithm = "winograd"
                        op.winograd_axpy = best
                        self.steps[i] = rows_w[best][0]
                        self.configs[i] = rows_w[best][1]
                    continue
                fn = self._conv_alternative_fn(op, "im2col")
                times["im2col"] = []
                clock = _clock(self.n_threads)
                for _ in range(3):
                    times["direct"].append(self.executor.time_step(i, nt, reps, cpu))
                    fn()
                    ts = []
                    for _ in range(reps):
                        t0 = clock()
                        fn()
                        ts.append(clock() - t0)
                    times["im2col"].append(min(ts) if cpu else sorted(ts)[len(ts) // 2])
                stat = min if cpu else (lambda v: sorted(v)[1])
                if stat(times["im2col"]) < 0.9 * stat(times["direct"]):
                    op.algorithm = "im2col"
                    rebuild = True
        self.holder[0] = None
        return rebuild

    # buffers: one per value that owns one; slot 0 is the input
    def _allocate(self, out):
        self.arrays = {}  # root value -> ndarray (replica 0's)
        self.replica_arrays = []  # the other replicas' buffers, kept alive
        self.slot_of = {self.input_value: 0}
        for op in self.ops:
            self.slot_of[op.output] = len(self.slot_of)
        self.slots = np.zeros((self.replicas, len(self.slot_of)), np.intp)
        for r in range(self.replicas):
            for op in self.ops:
                a = np.zeros(op.output.shape, self.dtype)
                if r == 0:
                    self.arrays[op.output] = a
                else:
                    self.replica_arrays.append(a)
                self.slots[r, self.slot_of[op.output]] = a.ctypes.data
        self.output = self.arrays[out.root].reshape(out.shape)
        self.output_slot = self.slot_of[out.root]

    def _array(self, v):
        """A function returning value v's array (the input's changes every call)."""
        root = v.root
        if root is self.input_value:
            holder, shape = self.holder, v.shape
            return lambda: holder[0].reshape(shape)
        a = self.arrays[root].reshape(v.shape)
        return lambda: a

    def _tables(self):
        self.keep = []
        rows: list = []
        self.py_steps: list = []
        self.configs: list = []
        self.step_ops: list = []
        for op in self.ops:
            for part in range(len(op.inputs) if op.kind == "copy" else 1):
                row: Any = np.zeros(_plan.N_COLS, np.intp)
                row[_COLS["kind"]] = _KIND[op.kind]
                row[_COLS["double"]] = self.dtype == np.float64
                row[_COLS["input"]] = self.slot_of[op.inputs[part].root]
                row[_COLS["output"]] = self.slot_of[op.output]
                row[_COLS["residual"]] = (-1 if op.residual is None
                                          else self.slot_of[op.residual.root])
                row[_COLS["relu"]] = op.relu
                if op.kind == "copy":
                    configs = self._table_copy(op, row, part)
                elif op.kind == "conv" and op.algorithm == "im2col":
                    self._table_conv_alternative(op, row, rows)
                    continue
                else:
                    configs = getattr(self, "_table_" + op.kind)(op, row)
                rows.append(row)
                self.configs.append(configs)
                self.step_ops.append(op)
        self.steps = np.array(rows, np.intp).reshape(len(rows), _plan.N_COLS)
        for i, configs in enumerate(self.configs):
            # the parallel configuration until measured; chunked plans run steps serially
            self._apply(i, configs[0] if self.chunked else configs[-1])

    def _set(self, row, group, **fields):
        cols = _FIELD_COLS[group]
        for k, v in fields.items():
            row[cols[k]] = v

    def _apply(self, i, config):
        threads, tasks, fields = config
        row = self.steps[i]
        row[_COLS["threads"]] = threads
        row[_COLS["tasks"]] = tasks
        self._set(row, _FIELD_GROUP[self._kind_name(row)], **fields)

    @staticmethod
    def _kind_name(row):
        k = int(row[_COLS["kind"]])
        return next(name for name, v in _KIND.items() if v == k)

    def _serial_parallel(self, serial, parallel):
        """The configurations to try: (threads, tasks, fields), serial first."""
        if self.n_threads <= 1:
            return [serial]
        return [serial, parallel]

    def _buffer(self, a):
        self.keep.append(a)
        return a.ctypes.data

    # -- per kind
    def _table_winograd(self, op, row):
        """conv ``op`` by Winograd F(2x2, 3x3) (3x3, stride 1, one group) as a kernel step:
        the transforms of _winograd.h, 16 GEMMs per chunk of images, the epilogue fused."""
        g, dt = op.geometry, self.dtype
        row[_COLS["kind"]] = _KIND["winograd"]
        self.blas = True
        u = np.ascontiguousarray(F.conv._winograd_weight(np.ascontiguousarray(op.weight.astype(dt))))
        bias = np.ascontiguousarray(op.bias.astype(dt))
        tiles = ((g.OH + 1) // 2) * ((g.OW + 1) // 2)
        chunk = max(1, min(g.N, round(F.conv.WINOGRAD_CHUNK_TILES / tiles)))
        slen = _direct.winograd_scratch_len(g.C_in, g.C_out, g.OH, g.OW, chunk)
        scratch = np.empty((max(1, self.n_threads), slen), dt)
        self._set(row, "winograd", u=self._buffer(u), b=self._buffer(bias),
                  scratch=self._buffer(scratch), slen=slen, n=g.N, c=g.C_in, h=g.H, w=g.W,
                  cout=g.C_out, oh=g.OH, ow=g.OW, pt=g.pad_top, pl=g.pad_left, chunk=chunk,
                  avx=dt == np.float32 and _direct.use_avx512(),
                  axpy=getattr(op, "winograd_axpy", False))
        n_chunks = -(-g.N // chunk)
        return self._serial_parallel((1, n_chunks, {}), (self.n_threads, n_chunks, {}))

    def _table_conv(self, op, row):
        if op.algorithm == "winograd":
            return self._table_winograd(op, row)
        g, dt = op.geometry, self.dtype
        is_double = dt == np.float64
        cig, cog = g.C_in // g.groups, g.C_out // g.groups
        tile, cb, owb = _direct.forward_tile(is_double, cog, g.OW, g.kw, g.sw, g.dw)
        hp = (g.OH - 1) * g.sh + (g.kh - 1) * g.dh + 1
        wp = (-(-g.OW // owb) * owb - 1) * g.sw + (g.kw - 1) * g.dw + 1
        w5 = np.ascontiguousarray(op.weight.astype(dt)).reshape(g.groups, cog, cig, g.kh, g.kw)
        packed = np.empty((g.groups, -(-cog // cb) * cig * g.kh * g.kw * cb), dt)
        _direct.pack_weight_blocked(w5, packed, cb, 1)
        bias = np.ascontiguousarray(op.bias.astype(dt))
        xpad = np.empty((max(1, self.n_threads), cig * hp * wp), dt)
        op.tile = (tile, cb, owb)
        self._set(row, "conv", w=self._buffer(packed), b=self._buffer(bias),
                  xpad=self._buffer(xpad), xpad_len=xpad.shape[1], n=g.N, cin=g.C_in, h=g.H,
                  w_in=g.W, cout=g.C_out, groups=g.groups, tile=tile, cb=cb, hp=hp, wp=wp,
                  kh=g.kh, kw=g.kw, sh=g.sh, sw=g.sw, pt=g.pad_top, pl=g.pad_left, dh=g.dh,
                  dw=g.dw, oh=g.OH, ow=g.OW, wgl=packed.shape[1],
                  direct=g.pad_top == 0 and g.pad_left == 0 and hp <= g.H and wp <= g.W,
                  pool=getattr(op, "pooled", False))
        images = g.N * g.groups
        serial = (1, images, dict(rows=g.OH, chunks=1))
        if images >= self.n_threads or g.OH < 2:
            parallel = (self.n_threads, images, dict(rows=g.OH, chunks=1))
        else:  # fewer (image, group) pairs than threads: split the output rows too
            chunks = min(g.OH, -(-self.n_threads // images))
            rows = -(-g.OH // chunks)
            rows += rows % 2  # the two-row tiles
            chunks = -(-g.OH // rows)
            parallel = (self.n_threads, images * chunks, dict(rows=rows, chunks=chunks))
        return self._serial_parallel(serial, parallel)

    def _conv_alternative_fn(self, op, algorithm):
        """A function running conv ``op`` by im2col + GEMM (``_im2col``'s kernel) on
        preallocated arrays (bias included, no epilogue)."""
        g, dt = op.geometry, self.dtype
        n_threads = max(1, self.n_threads)
        w = np.ascontiguousarray(op.weight.astype(dt))
        bias = np.ascontiguousarray(op.bias.astype(dt))
        get_in, get_out = self._array(op.inputs[0]), self._array(op.output)
        rows = F._im2col_rows_per_chunk(g, dt.itemsize, n_threads, parallel_rows=True)
        nt = max(1, min(n_threads, g.N * -(-g.OH // rows)))
        scratch = np.empty((nt, g.C_in * g.kh * g.kw * rows * g.OW), dt)
        args = g.kernel_args + (g.groups, nt)
        return lambda: _im2col.conv2d_im2col_forward(get_in(), w, bias, get_out(), scratch, rows,
                                                     *args)

    @staticmethod
    def _conv_alternatives(op):
        g = op.geometry
        if getattr(op, "pooled", False):  # the pixel tile with pooling fused, only
            return ()
        if F.conv.winograd_fits(g):
            return ("winograd",)
        if g.kh == g.kw == 1 and g.groups == 1 and F.conv._im2col_fits_blas(g):
            return ("im2col",)
        return ()

    def _table_conv_alternative(self, op, row, rows):
        """conv ``op`` as a Python step (its algorithm through fastconv.functional's
        kernels), then its epilogue (residual add, ReLU) as a step of its own."""
        self.blas = True
        fn = self._conv_alternative_fn(op, op.algorithm)
        py = row.copy()
        py[_COLS["kind"]] = _KIND["py"]
        self._set(py, "py", index=len(self.py_steps))
        self.py_steps.append(fn)
        rows.append(py)
        self.configs.append([(1, 1, {})])
        self.step_ops.append(op)
        if op.residual is None and not op.relu:
            return
        epi = row.copy()
        out = self.slot_of[op.output]
        epi[_COLS["input"]] = out
        epi[_COLS["kind"]] = _KIND["relu" if op.residual is None else "add"]
        rows.append(epi)
        self.configs.append(self._elementwise(math.prod(op.output.shape)))
        self.step_ops.append(_EpilogueLabel(op))

    def _table_linear(self, op, row):
        dt = self.dtype
        n, m = op.output.shape
        k = op.inputs[0].shape[1]
        w = np.ascontiguousarray(op.weight.astype(dt))
        bias = np.ascontiguousarray(op.bias.astype(dt))
        avx = dt == np.float32 and _direct.use_avx512()
        self._set(row, "linear", w=self._buffer(w), b=self._buffer(bias), n=n, k=k, m=m, avx=avx)
        if avx:
            tasks = -(-m // 8) if n == 1 else -(-n // 4) * -(-m // 4)
            return self._serial_parallel((1, tasks, dict(rows=n)), (self.n_threads, tasks, dict(rows=n)))
        self.blas = True
        rows = -(-n // max(1, self.n_threads))
        return self._serial_parallel((1, 1, dict(rows=n)),
                                     (self.n_threads, -(-n // rows), dict(rows=rows)))

    def _pool_fields(self, op, row, idx_len):
        g = op.geometry
        kargs = getattr(g, "kernel_args", (0,) * 6)
        idx = np.empty(max(1, idx_len), np.int64)
        self._set(row, "pool", idx=self._buffer(idx), nc=g.N * g.C, h=g.H, w=g.W, oh=g.OH,
                  ow=g.OW, kh=kargs[0], kw=kargs[1], sh=kargs[2], sw=kargs[3], ph=kargs[4],
                  pw=kargs[5], cip=getattr(op, "count_include_pad", True))
        return g.N * g.C

    def _table_maxpool(self, op, row):
        g = op.geometry
        nc = self._pool_fields(op, row, max(1, self.n_threads) * g.OH * g.OW)
        # the "cip" column of max pooling: the 2x2 / stride 2 AVX-512 kernel without indices
        fast = (self.dtype == np.float32 and _direct.use_avx512() and g.kernel_args == (2, 2, 2, 2, 0, 0)
                and 2 * g.OH <= g.H and 2 * g.OW <= g.W)
        self._set(row, "pool", cip=fast)
        return self._serial_parallel((1, nc, {}), (self.n_threads, nc, {}))

    def _table_avgpool(self, op, row):
        nc = self._pool_fields(op, row, 1)
        return self._serial_parallel((1, nc, {}), (self.n_threads, nc, {}))

    def _table_adaptive_avg(self, op, row):
        g = op.geometry
        nc = self._pool_fields(op, row, max(1, self.n_threads) * g.N * g.C * g.OH * g.OW)
        per = max(1, -(-nc // (4 * max(1, self.n_threads))))
        return self._serial_parallel((1, 1, dict(per=max(1, nc))),
                                     (self.n_threads, -(-nc // per), dict(per=per)))

    _table_adaptive_max = _table_adaptive_avg

    def _elementwise(self, size):
        per = max(16, -(-size // (4 * max(1, self.n_threads))))
        per = -(-per // 16) * 16
        return self._serial_parallel((1, 1, dict(size=size, per=max(1, size))),
                                     (self.n_threads, -(-size // per), dict(size=size, per=per)))

    def _table_relu(self, op, row):
        return self._elementwise(math.prod(op.output.shape))

    def _table_add(self, op, row):
        row[_COLS["residual"]] = self.slot_of[op.inputs[1].root]
        return self._elementwise(math.prod(op.output.shape))

    def _table_affine(self, op, row):
        dt = self.dtype
        s = np.ascontiguousarray(op.scale.astype(dt))
        t = np.ascontiguousarray(op.shift.astype(dt))
        n, c = op.output.shape[:2]
        self._set(row, "affine", s=self._buffer(s), t=self._buffer(t), n=n, c=c, plane=op.plane)
        return self._serial_parallel((1, n * c, {}), (self.n_threads, n * c, {}))

    def _table_copy(self, op, row, part):
        """Branch ``part`` of a concatenation: its runs into their place in the output."""
        axis, src = op.axis, op.inputs[part].shape
        inner = math.prod(op.output.shape[axis + 1:])
        offset = sum(v.shape[axis] for v in op.inputs[:part]) * inner
        outer = math.prod(src[:axis])
        fields = dict(outer=outer, src=math.prod(src[axis:]), dst=math.prod(op.output.shape[axis:]),
                      off=offset)
        per = -(-outer // max(1, self.n_threads))
        return self._serial_parallel((1, 1, dict(fields, per=max(1, outer))),
                                     (self.n_threads, -(-outer // per), dict(fields, per=per)))

    def _table_py(self, op, row):
        fn, get_out = op.fn, self._array(op.output)
        gets = [self._array(v) for v in op.inputs]
        self._set(row, "py", index=len(self.py_steps))
        if len(gets) == 1:
            get_in = gets[0]
            self.py_steps.append(lambda: fn(get_in(), get_out()))
        else:
            self.py_steps.append(lambda: fn(*[g() for g in gets], get_out()))
        return [(1, 1, {})]

    # -- thread counts, measured
    def _choose_threads(self):
        x = np.random.default_rng(0).standard_normal(self.shape).astype(self.dtype)
        self.run(x)
        self.holder[0] = x
        budget = 2e6  # ns of timing per configuration and step
        for i, configs in enumerate(self.configs):
            if len(configs) < 2:
                continue
            self._apply(i, configs[0])
            first = self.executor.time_step(i, configs[0][0], 1)
            reps = int(min(15, max(3, budget // max(first, 1.0))))
            best, best_time = None, None
            times: dict = {}
            for _ in range(3):  # interleaved rounds: load changes affect both alike
                for j, config in enumerate(configs):
                    self._apply(i, config)
                    times.setdefault(j, []).append(self.executor.time_step(i, config[0], reps))
            # several threads only when clearly faster (their cost on a busy machine has a
            # long tail: a preempted thread holds the step's barrier)
            serial = sorted(times[0])[1]
            parallel = sorted(times[1])[2]
            best, best_time = (1, sorted(times[1])[1]) if parallel < 0.8 * serial else (0, serial)
            self._apply(i, configs[best])
            self.step_ops[i].time_ns = best_time
        self.holder[0] = None

    @property
    def ops_output(self):
        return self.output

    def run(self, x):
        self.holder[0] = x
        if self.blas:
            with blas_single_thread():
                self.executor.run(x)
        else:
            self.executor.run(x)
        self.holder[0] = None
        return self.output

    def describe(self):
        lines = []
        for i, op in enumerate(self.step_ops):
            threads = int(self.steps[i, _COLS["threads"]])
            extra = []
            if op.relu:
                extra.append("+relu")
            if op.kind == "conv":
                extra.append(f"tile {op.tile[0]}" if op.algorithm == "direct" else op.algorithm)
            if op.kind == "conv" and op.residual is not None and op.algorithm == "im2col":
                pass
            t = getattr(op, "time_ns", None)
            timing = f", {t / 1000:.1f} us" if t is not None else ""
            lines.append(f"  {i}: {op.label} {' '.join(extra)} -> {op.output.shape} "
                         f"[{threads} thread{'s' if threads != 1 else ''}{timing}]")
        return "\n".join(lines)


class _ChunkedPlan:
    """A batch run as chunks of ``chunk`` images, each through the whole network on one
    thread (one parallel region per call: no barrier between layers, and each chunk's
    activations stay in that core's cache)."""

    def __init__(self, snapshot, shape, dtype, n_threads, chunk, measure=True,
                 force_algorithm=None):
        self.shape, self.chunk, self.n_threads = shape, chunk, n_threads
        self.sub = _Plan(snapshot, (chunk,) + shape[1:], dtype, n_threads, measure=measure,
                         chunked=True, force_algorithm=force_algorithm)
        self.n_chunks = shape[0] // chunk
        self.output = np.zeros((shape[0],) + self.sub.output.shape[1:], dtype)
        self.in_bytes = math.prod((chunk,) + shape[1:]) * dtype.itemsize
        self.out_bytes = self.sub.output.nbytes

    @staticmethod
    def fits(plan):
        """Whether ``plan``'s network can run chunked (no Python steps)."""
        return not any(op.kind == "py" for op in plan.ops)

    def run(self, x):
        sub = self.sub
        args = (x, self.output, self.n_chunks, self.in_bytes, self.out_bytes, sub.output_slot,
                self.n_threads)
        if sub.blas:
            with blas_single_thread():
                sub.executor.run_chunked(*args)
        else:
            sub.executor.run_chunked(*args)
        return self.output

    def describe(self):
        return (f"  {self.n_chunks} chunks of {self.chunk} image{'s' if self.chunk > 1 else ''}, "
                f"each through every step on one of {self.n_threads} thread"
                f"{'s' if self.n_threads > 1 else ''}:\n" + self.sub.describe())


def _clock(n_threads):
    """The clock of the measured choices: with one thread this thread's CPU time (robust to
    other processes taking the core for a while), else wall time."""
    return time.thread_time_ns if n_threads <= 1 else time.perf_counter_ns


def _time_runs(plan, x, reps, clock):
    """The times of ``reps`` runs of ``plan`` on ``x`` (ns)."""
    ts = []
    for _ in range(reps):
        t0 = clock()
        plan.run(x)
        ts.append(clock() - t0)
    return ts


#: Chunk sizes a batch may be split into (those that divide it, leave a chunk for every
#: thread and are smaller than the batch), each timed against the layer-by-layer plan.
CHUNK_SIZES = (1, 2, 4, 8, 16)


def _choose_plan(snapshot, shape, dtype, n_threads, measure):
    """The plan for ``shape``, measured among: the layer-by-layer plan, chunked plans (each
    chunk through the whole network on one thread), and with several threads the same on
    one thread (layer by layer, and chunked). A plan using threads must beat the best
    single-thread one clearly, in its median and in its slow runs (90th percentile): on a
    busy machine each parallel region can wait for a thread the OS runs late."""
    plan = _Plan(snapshot, shape, dtype, n_threads, measure)
    n = shape[0]
    if not measure:
        return plan
    fits = _ChunkedPlan.fits(plan)
    sizes = [c for c in CHUNK_SIZES if n % c == 0 and n // c >= max(1, n_threads) and c < n]
    candidates: list = [plan]
    if fits:
        candidates += [_ChunkedPlan(snapshot, shape, dtype, n_threads, c) for c in sizes]
    if n_threads > 1:
        candidates.append(_Plan(snapshot, shape, dtype, 1, measure))
        if fits and sizes:
            candidates.append(_ChunkedPlan(snapshot, shape, dtype, 1, sizes[-1]))
    if len(candidates) == 1:
        return plan
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    clock = _clock(n_threads)  # wall time as soon as any candidate has threads
    first = min(min(_time_runs(c, x, 1, clock)) for c in candidates)
    reps = int(min(15, max(3, 2e7 // max(first, 1))))
    runs: list = [[] for _ in candidates]
    for _ in range(3):  # interleaved rounds
        for j, c in enumerate(candidates):
            runs[j] += _time_runs(c, x, reps, clock)
    if n_threads <= 1:  # CPU time: the fastest run (others sharing the core only slow it)
        score = [min(r) for r in runs]
        best = min(range(len(candidates)), key=score.__getitem__)
        return candidates[best] if score[best] < 0.95 * score[0] else plan
    med = [float(np.median(r)) for r in runs]
    p90 = [float(np.percentile(r, 90)) for r in runs]
    single = [j for j, c in enumerate(candidates) if c.n_threads <= 1]
    multi = [j for j in range(len(candidates)) if j not in single]
    best_single = min(single, key=med.__getitem__)
    best_multi = min(multi, key=med.__getitem__)
    if med[best_multi] < 0.85 * med[best_single] and p90[best_multi] < p90[best_single]:
        return candidates[best_multi]
    return candidates[best_single]


class _EpilogueLabel:
    """Stands for the epilogue step of a convolution run by another algorithm."""

    kind = "epilogue"

    def __init__(self, op):
        self.label = op.label.split(":")[0] + ": epilogue" + (" +residual" if op.residual is not None else "")
        self.relu = op.relu
        self.output = op.output


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
