"""ONNX file -> fastconv model: one converter per operator and version (registry).

The file is parsed without loading external data (refused), checked (opset, initializers'
dtypes and sizes, topological order, cycles, missing values), then its nodes are visited
in topological order. Constants (initializers, Constant nodes and the small shape
computations exporters emit for Reshape, folded with NumPy) stay constants; every other
value gets a *probe*, its value for a zero input of the graph input's shape (batch 1 where
the batch is symbolic), computed by the fastconv module just built: that gives the shapes
later converters need, and a node the module refuses is reported when the file is loaded.
Converters emit fastconv nodes ``(name, module, inputs, outputs)``; a chain becomes a
:class:`~fastconv.nn.Sequential`, anything else a :class:`~fastconv.nn.Graph`.
"""
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from .. import nn
from .registry import CONVERTERS, unique_name

#: default-domain opsets the importer reads
OPSETS = range(9, 24)
#: largest probe (values of one tensor at batch 1) and largest initializer accepted
MAX_PROBE_ELEMENTS = 2**26
MAX_TENSOR_BYTES = 2**31
#: the largest file read (protobuf's own limit)
MAX_FILE_BYTES = 2**31 - 1
FLOAT_TYPES: Dict[int, np.dtype] = {TensorProto.FLOAT: np.dtype(np.float32), TensorProto.DOUBLE: np.dtype(np.float64)}
INT_TYPES: Dict[int, np.dtype] = {TensorProto.INT64: np.dtype(np.int64), TensorProto.INT32: np.dtype(np.int32)}
CONFIG_KEY = "fastconv.config"


class ONNXModelError(ValueError):
    """An ONNX file that cannot be read or converted: malformed, hostile, or using an
    operator or attribute fastconv does not support (the message names the node)."""


class Batch:
    """The symbolic batch size in folded shape computations (``Shape`` of a value whose
    first axis is the graph input's symbolic batch)."""

    def __repr__(self):
        return "N"


BATCH = Batch()


def _node_label(node):
    return f"node {node.name!r} ({node.op_type})" if node.name else f"a {node.op_type} node (no name)"


def _fail(node, why):
    return ONNXModelError(f"{_node_label(node)}: {why}")


# --- reading the file -----------------------------------------------------------------------

def _read(path):
    if isinstance(path, (bytes, bytearray)):
        raise TypeError("path must be a str or os.PathLike naming an .onnx file, got bytes")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike naming an .onnx file, got {type(path).__name__}")
    path = Path(os.fspath(path))
    if not path.is_file():
        raise ONNXModelError(f"{path}: no such ONNX file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ONNXModelError(f"{path}: {size} bytes is larger than an ONNX protobuf can be (2 GiB)")
    data = path.read_bytes()
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError, whatever the protobuf runtime
        raise ONNXModelError(f"{path}: not an ONNX model (truncated or corrupt protobuf: {e})") from e
    if not proto.HasField("graph") or not proto.graph.node:
        raise ONNXModelError(f"{path}: not an ONNX model, or an empty one (no graph nodes)")
    return path, proto


def _itemsize(t, where):
    if t.data_type in FLOAT_TYPES:
        return FLOAT_TYPES[t.data_type]
    if t.data_type in INT_TYPES:
        return INT_TYPES[t.data_type]
    try:
        name = TensorProto.DataType.Name(t.data_type)
    except ValueError:
        name = str(t.data_type)
    raise ONNXModelError(f"{where}: tensor {t.name!r} has dtype {name}; fastconv reads FLOAT, "
                         "DOUBLE, INT64 and INT32 tensors")


def _external(t, where, folder, dtype, count, dims):
    """The data of a tensor stored in an external file, which must be a regular file
    inside the model's folder (a path leading outside it, through '..', an absolute path
    or a link, is refused)."""
    if folder is None:
        raise ONNXModelError(f"{where}: tensor {t.name!r} refers to external data, which is only read "
                             "for initializers")
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    if not location or "\0" in location:
        raise ONNXModelError(f"{where}: tensor {t.name!r} has external data without a location")
    base = folder.resolve()
    target = (base / location).resolve()
    if Path(location).is_absolute() or base not in target.parents or not target.is_file():
        raise ONNXModelError(f"{where}: tensor {t.name!r} refers to external data {location!r}, which is not "
                             f"a file inside the model's folder {str(base)!r}: refused")
    try:
        offset = int(info.get("offset", 0))
        length = int(info.get("length", count * dtype.itemsize))
    except ValueError:
        raise ONNXModelError(f"{where}: tensor {t.name!r} has a malformed external data offset/length") from None
    size = target.stat().st_size
    if length != count * dtype.itemsize or offset < 0 or offset + length > size:
        raise ONNXModelError(f"{where}: tensor {t.name!r} declares dims {dims} ({count} values) but its external "
                             f"data is {length} bytes at offset {offset} of a {size}-byte file")
    with open(target, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    return np.frombuffer(data, dtype.newbyteorder("<")).astype(dtype).reshape(dims)


def _check_tensor(t, where, folder=None):
    """A tensor's array; refuses tensors whose declared size does not match their data and
    external data outside the model's folder."""
    if t.HasField("segment"):
        raise ONNXModelError(f"{where}: tensor {t.name!r} is segmented, which is not supported")
    dims = list(t.dims)
    if any(d < 0 for d in dims):
        raise ONNXModelError(f"{where}: tensor {t.name!r} has negative dims {dims}")
    count = 1
    for d in dims:
        count *= int(d)
    dtype = _itemsize(t, where)
    itemsize = dtype.itemsize
    if count * itemsize > MAX_TENSOR_BYTES:
        raise ONNXModelError(f"{where}: tensor {t.name!r} has dims {dims} ({count} values), too large")
    if t.data_location == TensorProto.EXTERNAL or t.external_data:
        return _external(t, where, folder, dtype, count, dims)
    if t.HasField("raw_data") or t.raw_data:
        have = len(t.raw_data) // itemsize
        if len(t.raw_data) != count * itemsize:
            raise ONNXModelError(f"{where}: tensor {t.name!r} declares dims {dims} ({count} values) but "
                                 f"holds {len(t.raw_data)} bytes ({have} values)")
    else:
        field = {TensorProto.FLOAT: t.float_data, TensorProto.DOUBLE: t.double_data,
                 TensorProto.INT64: t.int64_data, TensorProto.INT32: t.int32_data}[t.data_type]
        if len(field) != count:
            raise ONNXModelError(f"{where}: tensor {t.name!r} declares dims {dims} ({count} values) but "
                                 f"holds {len(field)} values")
    try:
        a = numpy_helper.to_array(t)
    except Exception as e:  # onnx's own checks
        raise ONNXModelError(f"{where}: tensor {t.name!r} cannot be read: {e}") from e
    return np.array(a)  # owned, writeable


def _check_strings(proto):
    """Refuse names that are not valid UTF-8 (protobuf then hands out bytes)."""
    g = proto.graph

    def bad(where, *values):
        for v in values:
            if not isinstance(v, str):
                raise ONNXModelError(f"{where} holds a name that is not valid UTF-8: {v!r}")

    for e in proto.opset_import:
        bad("opset_import", e.domain)
    for p in proto.metadata_props:
        bad("metadata_props", p.key, p.value)
    for node in g.node:
        bad("a node", node.name, node.op_type, node.domain, *node.input, *node.output,
            *(a.name for a in node.attribute))
    for v in (*g.input, *g.output, *g.value_info):
        bad("a graph input/output", v.name)
    for t in g.initializer:
        bad("an initializer", t.name, *(x for e in t.external_data for x in (e.key, e.value)))


def _opset(proto):
    version = None
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            version = int(entry.version)
    if version is None:
        raise ONNXModelError("the model imports no default-domain (ai.onnx) opset")
    if version not in OPSETS:
        raise ONNXModelError(f"the model's opset {version} is not supported (fastconv reads ai.onnx opsets "
                             f"{OPSETS.start} to {OPSETS.stop - 1})")
    return version


def _topological(graph, known):
    """The nodes in topological order; ONNXModelError on a cycle or a missing value."""
    producer = {}
    for i, node in enumerate(graph.node):
        for o in node.output:
            if not o:
                continue
            if o in producer or o in known:
                raise _fail(node, f"output {o!r} is already produced by another node or is a graph "
                                  "input / initializer")
            producer[o] = i
    deps = []
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise _fail(node, f"operator domain {node.domain!r} is not supported (only ai.onnx)")
        d = set()
        for v in node.input:
            if not v:
                continue  # an omitted optional input
            if v in producer:
                d.add(producer[v])
            elif v not in known:
                raise _fail(node, f"input {v!r} is neither a graph input, an initializer nor any "
                                  "node's output (a missing initializer?)")
        deps.append(d)
    order, state = [], [0] * len(graph.node)  # 0 new, 1 on the stack, 2 done
    for start in range(len(graph.node)):
        if state[start]:
            continue
        stack = [(start, iter(sorted(deps[start])))]
        state[start] = 1
        path = [start]
        while stack:
            i, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[i] = 2
                order.append(i)
            elif state[nxt] == 1:
                cycle = path[path.index(nxt):]
                names = " -> ".join(repr(graph.node[j].name or graph.node[j].op_type) for j in cycle)
                raise _fail(graph.node[nxt], f"the graph has a cycle through nodes {names}")
            elif state[nxt] == 0:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(sorted(deps[nxt]))))
    return [graph.node[i] for i in order]


# --- attributes ---------------------------------------------------------------------------

def _short_float(v):
    """A float32 attribute as the shortest decimal that rounds to it (1e-05, not 9.99e-06)."""
    return float(str(np.float32(v)))


def attributes(node):
    """``{name: value}`` of a node's attributes (ints, floats, strings, tensors)."""
    out: Dict[str, Any] = {}
    for a in node.attribute:
        t = a.type
        if t == onnx.AttributeProto.INT:
            out[a.name] = int(a.i)
        elif t == onnx.AttributeProto.FLOAT:
            out[a.name] = _short_float(a.f)
        elif t == onnx.AttributeProto.STRING:
            out[a.name] = a.s.decode("utf-8", "replace")
        elif t == onnx.AttributeProto.INTS:
            out[a.name] = [int(v) for v in a.ints]
        elif t == onnx.AttributeProto.FLOATS:
            out[a.name] = [_short_float(v) for v in a.floats]
        elif t == onnx.AttributeProto.TENSOR:
            out[a.name] = _check_tensor(a.t, _node_label(node))
        else:
            raise _fail(node, f"attribute {a.name!r} has a type fastconv does not read "
                              f"({onnx.AttributeProto.AttributeType.Name(t)})")
    return out


class Attrs:
    """A node's attributes; :meth:`check` refuses any not listed as understood."""

    def __init__(self, node):
        self.node = node
        self.values = attributes(node)

    def get(self, name, default=None):
        return self.values.get(name, default)

    def check(self, **allowed):
        """Each keyword is an attribute name mapped to None (any value) or a predicate /
        set of accepted values; unknown attributes or refused values raise."""
        for name, value in self.values.items():
            if name not in allowed:
                raise _fail(self.node, f"attribute {name}={value!r} is not supported")
            rule = allowed[name]
            if rule is None:
                continue
            ok = rule(value) if callable(rule) else value in rule
            if not ok:
                raise _fail(self.node, f"attribute {name}={value!r} is not supported")


# --- the conversion context -------------------------------------------------------------

class ImportContext:
    """State of one load: constants, probes of runtime values, emitted fastconv nodes."""

    def __init__(self, graph, order, opset, dtype, batch_symbolic):
        self.graph = graph
        self.order = order
        self.opset = opset
        self.dtype = dtype
        self.batch_symbolic = batch_symbolic
        self.constants = {}
        self.probes = {}
        self.alias = {}
        self.nodes = []  # (name, module, inputs, outputs)
        self.skip = set()  # ids of ONNX nodes folded into an earlier conversion
        self.fused_pad = {}  # id(Conv node) -> (pads (l, r, t, b), padding_mode)
        self._names = set()
        self.consumers: Dict[str, List[Any]] = {}
        for node in order:
            for v in node.input:
                if v:
                    self.consumers.setdefault(v, []).append(node)
        self.graph_outputs = {o.name for o in graph.output}

    # values
    def resolve(self, v):
        while v in self.alias:
            v = self.alias[v]
        return v

    def is_const(self, v):
        return self.resolve(v) in self.constants

    def const(self, node, i, what, dtype_kind=None, optional=False):
        """Input ``i`` of ``node`` as a constant array (None if omitted and optional)."""
        if i >= len(node.input) or not node.input[i]:
            if optional:
                return None
            raise _fail(node, f"{what} (input {i}) is missing")
        v = self.resolve(node.input[i])
        if v not in self.constants:
            raise _fail(node, f"{what} (input {node.input[i]!r}) must be a constant (an initializer), "
                              "not a value computed from the graph input")
        a = self.constants[v]
        if dtype_kind == "float":
            if isinstance(a, np.ndarray) and a.dtype == object:
                raise _fail(node, f"{what} must be a float tensor")
            if a.dtype != self.dtype:
                raise _fail(node, f"{what} {node.input[i]!r} has dtype {a.dtype}, but the model's input is "
                                  f"{self.dtype} (wrong initializer dtype)")
        elif dtype_kind == "int":
            if a.dtype.kind not in "iu" and a.dtype != object:
                raise _fail(node, f"{what} {node.input[i]!r} must be an integer tensor, got {a.dtype}")
        return a

    def probe(self, node, i):
        """The probe of runtime input ``i`` (a constant operand here is refused)."""
        if i >= len(node.input) or not node.input[i]:
            raise _fail(node, f"input {i} is missing")
        v = self.resolve(node.input[i])
        if v in self.constants:
            raise _fail(node, f"input {node.input[i]!r} is a constant; fastconv supports this operator on "
                              "values computed from the graph input only")
        return self.probes[v]

    def runtime_inputs(self, node):
        return [v for v in node.input if v and not self.is_const(v)]

    def used_outputs(self, node):
        return [o for o in node.output if o and (o in self.consumers or o in self.graph_outputs)]

    def sole_consumer(self, v):
        users = self.consumers.get(v, [])
        if len(users) == 1 and v not in self.graph_outputs:
            return users[0]
        return None

    def set_const(self, name, value):
        self.constants[name] = value

    # fastconv nodes
    def node_name(self, node, suffix="", module=None):
        """A child-module name for ``node``: the prefix of its weight's initializer name
        when that reads as a state-dict key (``3.body.0.weight`` -> ``3_body_0``, so the
        weights stay recognisable), else the node's name; sanitised (no ".") and unique."""
        base = ""
        if module is not None and not suffix and module._parameters:
            for v in node.input[1:]:
                v = self.resolve(v) if v else ""
                if v in self.constants and re.fullmatch(r"[0-9A-Za-z_.]+\.weight", v):
                    base = v[: -len(".weight")]
                    break
        base = re.sub(r"[^0-9A-Za-z_]+", "_", base or node.name or "").strip("_") or node.op_type.lower()
        return unique_name(base + suffix, self._names)

    def emit(self, node, module, inputs=None, outputs=None, suffix=""):
        """Add a fastconv node running ``module`` on ``inputs`` (default: the ONNX node's
        runtime input) producing ``outputs`` (default: its first output); computes and
        stores the outputs' probes. Returns the output names."""
        if inputs is None:
            inputs = [self.resolve(v) for v in self.runtime_inputs(node)][:1]
        inputs = [self.resolve(v) for v in inputs]
        if outputs is None:
            outputs = [node.output[0]]
        for v in inputs:
            if v in self.constants:
                raise _fail(node, f"input {v!r} is a constant; fastconv supports this operator on values "
                                  "computed from the graph input only")
        xs = [self.probes[v] for v in inputs]
        module.eval()  # the probe must not update BatchNorm statistics
        try:
            out = module(*xs)
        except (ValueError, TypeError, MemoryError) as e:
            shapes = ", ".join(str(x.shape) for x in xs)
            raise _fail(node, f"{type(module).__name__} refuses its input of shape {shapes}: {e}") from e
        outs = out if isinstance(out, tuple) else (out,)
        for o, p in zip(outputs, outs):
            if p.size > MAX_PROBE_ELEMENTS:
                raise _fail(node, f"output {o!r} of shape {p.shape} is too large")
            self.probes[o] = np.array(p)  # own copy: modules reuse their output arrays
        self.nodes.append((self.node_name(node, suffix, module), module, list(inputs), list(outputs)))
        return outputs

    def make(self, node, cls, *args, **kwargs):
        """``cls(*args, **kwargs)`` with fastconv's argument errors naming the node."""
        try:
            return cls(*args, **kwargs)
        except (ValueError, TypeError) as e:
            raise _fail(node, f"cannot build {cls.__name__}: {e}") from e


#: op_type -> ``fn(attrs, *arrays) -> array``: operators evaluated with NumPy when all
#: their inputs are constants (the shape and pad computations exporters emit)
FOLDERS: Dict[str, Callable[..., Any]] = {}
MAX_FOLDED_ELEMENTS = 2**20


def _fold_constants(ctx, node):
    """Evaluate a node whose inputs are all constants, if it is a foldable operator;
    returns whether it did."""
    fn = FOLDERS.get(node.op_type)
    if fn is None or not all(ctx.is_const(v) for v in node.input if v):
        return False
    attrs = attributes(node)
    args = [ctx.constants[ctx.resolve(v)] if v else None for v in node.input]
    try:
        out = fn(attrs, *args)
    except (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError, MemoryError) as e:
        raise _fail(node, f"cannot fold this constant computation: {e}") from e
    out = np.asarray(out)
    if out.size > MAX_FOLDED_ELEMENTS:
        raise _fail(node, f"folds to a constant of shape {out.shape}, too large")
    if len([o for o in node.output if o]) != 1:
        raise _fail(node, "a folded operator must have one output")
    ctx.set_const(node.output[0], out)
    return True


def _convert(ctx, node):
    from onnx import defs

    if _fold_constants(ctx, node):
        return

    try:
        since = defs.get_schema(node.op_type, ctx.opset, "").since_version
    except Exception:
        raise _fail(node, f"operator {node.op_type!r} is not an ai.onnx operator of opset {ctx.opset}") from None
    fn = CONVERTERS.get((node.op_type, since))
    if fn is None:
        versions = sorted(v for op, v in CONVERTERS if op == node.op_type)
        if versions:
            raise _fail(node, f"version {since} of {node.op_type} (opset {ctx.opset}) is not supported; "
                              f"fastconv converts versions {versions}")
        raise _fail(node, f"operator {node.op_type!r} is not supported")
    fn(ctx, node)


# --- the public entry point -------------------------------------------------------------

def _input_spec(graph, initializer_names):
    inputs = [i for i in graph.input if i.name not in initializer_names]
    if not inputs:
        raise ONNXModelError("the graph has no input (besides initializers)")
    specs = []
    for i in inputs:
        t = i.type
        if not t.HasField("tensor_type"):
            raise ONNXModelError(f"graph input {i.name!r} is not a tensor")
        elem = t.tensor_type.elem_type
        if elem not in FLOAT_TYPES:
            raise ONNXModelError(f"graph input {i.name!r} has element type "
                                 f"{TensorProto.DataType.Name(elem) if elem in TensorProto.DataType.values() else elem}; "
                                 "fastconv reads FLOAT or DOUBLE inputs")
        if not t.tensor_type.HasField("shape"):
            raise ONNXModelError(f"graph input {i.name!r} has no shape; fastconv needs its static sizes")
        dims, symbolic = [], False
        for k, d in enumerate(t.tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            elif k == 0:
                dims.append(1)
                symbolic = True
            else:
                raise ONNXModelError(f"graph input {i.name!r} has a symbolic or zero size on axis {k}; "
                                     "fastconv needs static sizes except for the batch (axis 0)")
        count = 1
        for d in dims:
            count *= d
        if not dims or count > MAX_PROBE_ELEMENTS:
            raise ONNXModelError(f"graph input {i.name!r} has shape {dims}, which is empty or too large "
                                 f"(over {MAX_PROBE_ELEMENTS} values per sample)")
        specs.append((i.name, FLOAT_TYPES[elem], tuple(dims), symbolic))
    return specs


def load(path):
    """See :func:`fastconv.onnx.load`."""
    path, proto = _read(path)
    try:
        return _build(proto, path.parent)
    except ONNXModelError as e:
        raise ONNXModelError(f"{path}: {e}") from None
    except RecursionError:
        raise ONNXModelError(f"{path}: the graph is nested too deeply") from None


def _build(proto, folder):
    _check_strings(proto)
    opset = _opset(proto)
    graph = proto.graph
    if graph.sparse_initializer:
        raise ONNXModelError("sparse initializers are not supported")
    initializers = {}
    for t in graph.initializer:
        if t.name in initializers:
            raise ONNXModelError(f"initializer {t.name!r} is defined twice")
        initializers[t.name] = t
    specs = _input_spec(graph, set(initializers))
    dtypes = {s[1] for s in specs}
    if len(dtypes) > 1:
        raise ONNXModelError("the graph inputs have different float types")
    dtype = dtypes.pop()
    known = set(initializers) | {s[0] for s in specs}
    order = _topological(graph, known)
    for o in graph.output:
        if o.name not in known and not any(o.name in n.output for n in graph.node):
            raise ONNXModelError(f"graph output {o.name!r} is produced by no node")
    ctx = ImportContext(graph, order, opset, dtype, any(s[3] for s in specs))
    for name, t in initializers.items():
        ctx.set_const(name, _check_tensor(t, f"initializer {name!r}", folder))
    for name, dt, dims, symbolic in specs:
        ctx.probes[name] = np.zeros(dims, dt)
    live = _live_nodes(order, [o.name for o in graph.output])
    for node in order:
        if id(node) in ctx.skip or id(node) not in live:
            continue
        _convert(ctx, node)
    model = _assemble(ctx, [s[0] for s in specs], [o.name for o in graph.output])
    model.eval()
    config = {}
    for prop in proto.metadata_props:
        if prop.key == CONFIG_KEY:
            try:
                value = json.loads(prop.value)
            except (ValueError, RecursionError):
                value = None
            if isinstance(value, dict):
                config = value
    model.config = config
    return model


def _live_nodes(order, outputs):
    """ids of the nodes the graph outputs depend on (the others are not converted)."""
    producer = {o: node for node in order for o in node.output if o}
    live, stack = set(), list(outputs)
    while stack:
        node = producer.get(stack.pop())
        if node is not None and id(node) not in live:
            live.add(id(node))
            stack.extend(v for v in node.input if v)
    return live


def _assemble(ctx, inputs, outputs):
    outs = [ctx.resolve(o) for o in outputs]
    for o, r in zip(outputs, outs):
        if r in ctx.constants:
            raise ONNXModelError(f"graph output {o!r} is a constant, not computed from the input")
    if not ctx.nodes:  # the output is the input (Identity nodes only)
        ctx.nodes.append(("identity", nn.Identity(), [outs[0]], ["__identity_output"]))
        outs = ["__identity_output"] + outs[1:]
    # a chain: one input, each node reads the previous node's only output, nothing else
    # reads the values in between, and the last node's output is the graph's only output
    chain = len(inputs) == 1 and len(outs) == 1
    prev = inputs[0]
    uses: Dict[str, int] = {}
    for _, _, ins, _ in ctx.nodes:
        for v in ins:
            uses[v] = uses.get(v, 0) + 1
    for name, module, ins, node_outs in ctx.nodes if chain else ():
        if ins != [prev] or len(node_outs) != 1 or uses.get(prev, 0) != 1:
            chain = False
            break
        prev = node_outs[0]
    if chain and prev == outs[0]:
        return nn.Sequential(*(m for _, m, _, _ in ctx.nodes))
    try:
        return nn.Graph([(n, m, i, o) for n, m, i, o in ctx.nodes], inputs=inputs, outputs=outs)
    except (ValueError, TypeError) as e:
        raise ONNXModelError(f"cannot build the fastconv Graph: {e}") from e


from . import converters  # noqa: E402,F401  (registers the converters)
