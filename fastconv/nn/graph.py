"""``Graph``: a module made of named nodes wired by named values (a DAG), with explicit
backward in reverse topological order. It is what :func:`fastconv.onnx.load` builds, and
what expresses networks that :class:`Sequential`, :class:`Residual` and :class:`Concat`
do not (several inputs or outputs, a value used by many nodes, ops with two outputs).
"""
from __future__ import annotations

import heapq
import numbers
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple, Union

import numpy as np

from .._parallel import blas_single_thread
from .._validation import check_allocation
from .container import Container, _sum_grads
from .module import Module, _grad_flags_changed, _grad_flags_version, state_restored

if TYPE_CHECKING:
    from .._typing import DTypeLike, FloatArray, Shape

    #: what forward returns: one array for one output, else a tuple
    Outputs = Union[FloatArray, Tuple[FloatArray, ...]]
    #: what backward takes (None: zero) and returns (None: not needed)
    Gradients = Union[Optional[FloatArray], Sequence[Optional[FloatArray]]]

#: ``(name, module, inputs)`` or ``(name, module, inputs, outputs)``
NodeSpec = Sequence[Any]
Names = Union[str, Sequence[str]]


class GraphNode(NamedTuple):
    """One node of a :class:`Graph`: its name (the child module's name), its module, the
    names of the values it reads and of those it produces."""

    name: str
    module: Module
    inputs: tuple
    outputs: tuple


def _names(value: Any, what: str, allow_empty: bool = False) -> Tuple[str, ...]:
    """A tuple of value names from a str or a sequence of str."""
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{what} must be a str or a list of str, got {type(value).__name__} {value!r}")
    for v in value:
        if not isinstance(v, str):
            raise TypeError(f"{what} must be value names (str), got {type(v).__name__} {v!r} in {list(value)!r}")
        if not v:
            raise ValueError(f"{what} must be non-empty names, got {list(value)!r}")
    if not value and not allow_empty:
        raise ValueError(f"{what} must name at least one value, got []")
    return tuple(value)


def _shape(value: Any, what: str) -> Tuple[int, ...]:
    if isinstance(value, np.ndarray):
        value = tuple(value.tolist())
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{what} must be a tuple of ints (batch included), got {type(value).__name__} {value!r}")
    for v in value:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{what} must be a tuple of ints (batch included), got {tuple(value)!r}")
        if v < 0:
            raise ValueError(f"{what} must have sizes >= 0, got {tuple(value)!r}")
    return tuple(int(v) for v in value)


def _wrap_error(e: Exception, prefix: str) -> Exception:
    """The same kind of error (ValueError or TypeError) with ``prefix`` in front."""
    cls = TypeError if isinstance(e, TypeError) else ValueError
    return cls(f"{prefix}: {e}")


class Graph(Container):
    """A network of named nodes, each a module applied to named values (a DAG).

    Parameters
    ----------
    nodes : sequence of tuples
        ``(name, module, inputs)`` or ``(name, module, inputs, outputs)``:

        * ``name`` (str, no ``"."``, unique): the module's name as a child, so its state
          dict keys read ``name.weight``; ``graph.name`` and ``graph["name"]`` return it;
        * ``module``: any :class:`Module` (each instance in one node only);
        * ``inputs``: the names of the values it reads: graph inputs or outputs of other
          nodes (listed in any order: the graph runs them in a topological order, stable
          with respect to the given one). One input calls ``module.forward(x)``, several
          ``module.forward(*xs)`` (its backward then returns one gradient per input);
        * ``outputs`` (default ``[name]``): the names of the values it produces. Several
          outputs: ``module.forward`` returns a tuple of that length, and its backward
          takes a tuple of gradients (None for an output that got none).
    inputs : str or sequence of str, default ("input",)
        Names of the graph's input values, in the order :meth:`forward` takes them.
    outputs : str or sequence of str, optional
        Names of the values :meth:`forward` returns; default the outputs of the last node
        in the topological order.
    input_shapes : sequence of shapes, optional
        One shape per graph input (batch included; a single shape for a one-input graph):
        the graph then runs once on zeros, in eval mode, when it is built (every module's
        state left as it was), and a node that refuses its inputs' shapes is reported then.

    Raises
    ------
    ValueError
        Naming the node: a duplicate node or value name, an input that is neither a graph
        input nor any node's output, a cycle (naming the nodes on it; the nodes after it are
        unreachable from the inputs), a graph output nobody produces, a malformed node
        tuple, an outputs count different from the module's ``num_outputs``, and with
        ``input_shapes`` the first node that refuses its inputs' shapes.
    TypeError
        A node's module is not a Module, or names are not strings.

    Attributes
    ----------
    inputs, outputs : tuple of str
        The graph's input and output value names.
    nodes : tuple of GraphNode
        ``(name, module, inputs, outputs)`` in execution order (what an exporter walks).

    See :meth:`value_shapes` for every value's shape for given input shapes.

    Notes
    -----
    :meth:`forward` returns one array for one output, else a tuple. :meth:`backward` takes
    one gradient per output (None: zero) and returns the gradient of the one input, or a
    tuple with one per graph input; gradients of a value read by several nodes are summed.
    An input no path to the outputs reads gets zeros; None is returned where the graph's
    input gradient is not needed (``needs_input_grad`` False, or no trainable parameter
    upstream inside an enclosing container) or where the nodes reading an input returned
    None for it (their own ``needs_input_grad`` False).
    Nodes run backwards only where something needs it: a node none of whose inputs needs a
    gradient (a frozen prefix, a graph input whose gradient is not needed) is told so, and
    a node with nothing trainable at or before it, or whose outputs got no gradient, is not
    called. A node whose output nobody reads still runs forward (it may be a graph output
    of interest or update BatchNorm statistics).

    Examples
    --------
    >>> g = Graph([
    ...     ("conv1", nn.Conv2d(3, 8, 3, padding=1), ["input"]),
    ...     ("relu1", nn.ReLU(), ["conv1"]),
    ...     ("conv2", nn.Conv2d(8, 8, 3, padding=1), ["relu1"]),
    ...     ("add", nn.Add(), ["conv2", "conv1"]),
    ... ])
    >>> y = g(x); gx = g.backward(gy)
    """

    inputs: Tuple[str, ...]
    outputs: Tuple[str, ...]
    _order: Tuple[Tuple[str, Tuple[str, ...], Tuple[str, ...]], ...]
    _meta: Optional[Dict[str, Tuple[Tuple[int, ...], np.dtype]]]
    _value_needs: Optional[Dict[str, bool]]
    _tupled: Set[str]

    def __init__(self, nodes: Sequence[NodeSpec], inputs: Names = ("input",), outputs: Optional[Names] = None,
                 *, input_shapes: Optional[Sequence[Any]] = None) -> None:
        super().__init__()
        graph_inputs = _names(inputs, "inputs")
        seen = set()
        for v in graph_inputs:
            if v in seen:
                raise ValueError(f"inputs name {v!r} twice: {list(graph_inputs)!r}")
            seen.add(v)
        if isinstance(nodes, (str, bytes)) or not isinstance(nodes, (tuple, list)):
            raise TypeError(f"nodes must be a list of (name, module, inputs[, outputs]) tuples, got "
                            f"{type(nodes).__name__}")
        if not nodes:
            raise ValueError("nodes must hold at least one (name, module, inputs[, outputs]) tuple")
        parsed = [self._parse_node(i, entry) for i, entry in enumerate(nodes)]

        by_name: Dict[str, GraphNode] = {}
        by_module: Dict[int, str] = {}
        producer: Dict[str, Optional[str]] = {v: None for v in graph_inputs}
        for node in parsed:
            if node.name in by_name:
                raise ValueError(f"node {node.name!r}: duplicate node name (two nodes are called {node.name!r})")
            by_name[node.name] = node
            other = by_module.get(id(node.module))
            if other is not None:
                raise ValueError(f"node {node.name!r}: its module is already used by node {other!r} (a module "
                                 "keeps the state of one call for its backward: give each node its own)")
            by_module[id(node.module)] = node.name
            for v in node.outputs:
                if v in producer:
                    who = "a graph input" if producer[v] is None else f"an output of node {producer[v]!r}"
                    raise ValueError(f"node {node.name!r}: output value {v!r} is already {who}")
                producer[v] = node.name
        for node in parsed:
            for v in node.inputs:
                if v not in producer:
                    raise ValueError(f"node {node.name!r}: input {v!r} is neither a graph input "
                                     f"{list(graph_inputs)!r} nor an output of any node")
        order = self._topological_order(parsed, producer)
        if outputs is None:
            graph_outputs = order[-1].outputs
        else:
            graph_outputs = _names(outputs, "outputs")
            for v in graph_outputs:
                if v not in producer:
                    raise ValueError(f"graph output {v!r} is produced by no node (and is not a graph input)")

        for node in parsed:  # registered in the given order (state dict order)
            self._modules[node.name] = node.module
        _grad_flags_changed()
        self.inputs = graph_inputs
        self.outputs = tuple(graph_outputs)
        self._order = tuple((n.name, n.inputs, n.outputs) for n in order)
        self._value_needs = None
        self._meta = None
        self._io_values = tuple(dict.fromkeys(self.inputs + self.outputs))
        if input_shapes is not None:
            self.value_shapes(input_shapes)

    # -- construction ---------------------------------------------------------------------
    @staticmethod
    def _parse_node(i: int, entry: Any) -> GraphNode:
        if not isinstance(entry, (tuple, list)) or len(entry) not in (3, 4):
            label = f"node {entry[0]!r}" if isinstance(entry, (tuple, list)) and entry and isinstance(entry[0], str) else f"node {i}"
            raise ValueError(f"{label}: each node must be a tuple (name, module, inputs) or (name, module, "
                             f"inputs, outputs), got {type(entry).__name__} of length "
                             f"{len(entry) if isinstance(entry, (tuple, list)) else '-'}")
        name, module, inputs = entry[:3]
        if not isinstance(name, str):
            raise TypeError(f"node {i}: the name must be a str, got {type(name).__name__} {name!r}")
        if not name or "." in name:
            raise ValueError(f"node {i}: the name must be a non-empty str without '.', got {name!r}")
        if not isinstance(module, Module):
            raise TypeError(f"node {name!r}: the module must be a fastconv.nn.Module, got {type(module).__name__}")
        ins = _names(inputs, f"node {name!r}: inputs")
        outs = (name,) if len(entry) == 3 or entry[3] is None else _names(entry[3], f"node {name!r}: outputs")
        if len(set(outs)) != len(outs):
            raise ValueError(f"node {name!r}: outputs name a value twice: {list(outs)!r}")
        expected = getattr(module, "num_outputs", None)
        if isinstance(expected, numbers.Integral) and not isinstance(expected, bool) and expected != len(outs):
            raise ValueError(f"node {name!r}: {type(module).__name__} gives {expected} outputs, but the node "
                             f"names {len(outs)}: {list(outs)!r}")
        expected = getattr(module, "num_inputs", None)
        if isinstance(expected, numbers.Integral) and not isinstance(expected, bool) and expected != len(ins):
            raise ValueError(f"node {name!r}: {type(module).__name__} takes {expected} inputs, but the node "
                             f"names {len(ins)}: {list(ins)!r}")
        return GraphNode(name, module, ins, outs)

    @staticmethod
    def _topological_order(nodes: List[GraphNode], producer: Dict[str, Optional[str]]) -> List[GraphNode]:
        """Kahn's algorithm taking the earliest-listed ready node first."""
        index = {n.name: i for i, n in enumerate(nodes)}
        deps: Dict[str, Set[str]] = {n.name: {p for p in (producer[v] for v in n.inputs) if p is not None}
                                     for n in nodes}
        users: Dict[str, List[str]] = {n.name: [] for n in nodes}
        for n in nodes:
            for d in deps[n.name]:
                users[d].append(n.name)
        waiting = {name: len(d) for name, d in deps.items()}
        ready = [index[name] for name, k in waiting.items() if k == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            node = nodes[heapq.heappop(ready)]
            order.append(node)
            for u in users[node.name]:
                waiting[u] -= 1
                if waiting[u] == 0:
                    heapq.heappush(ready, index[u])
        if len(order) < len(nodes):
            left = {name for name, k in waiting.items() if k > 0}
            # every node left waits for another node left: walk back until one repeats
            def position(n: str) -> int:
                return index[n]

            start = min(left, key=position)
            path: List[str] = []
            at = start
            while at not in path:
                path.append(at)
                at = min((d for d in deps[at] if d in left), key=position)
            cycle = path[path.index(at):][::-1]  # in data-flow order, from its first-listed node
            first = cycle.index(min(cycle, key=position))
            cycle = cycle[first:] + cycle[:first]
            text = " -> ".join(repr(c) for c in cycle + [cycle[0]])
            rest = sorted(left - set(cycle), key=position)
            more = f"; nodes {rest!r} depend on it (unreachable from the inputs)" if rest else ""
            raise ValueError(f"node {cycle[0]!r}: the graph has a cycle through nodes {text}{more}")
        return order

    # -- structure --------------------------------------------------------------------------
    @property
    def nodes(self) -> Tuple[GraphNode, ...]:
        """The nodes as :class:`GraphNode` tuples, in execution (topological) order."""
        return tuple(GraphNode(name, self._modules[name], ins, outs) for name, ins, outs in self._order)

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def __getattr__(self, name: str) -> Module:
        modules = self.__dict__.get("_modules")
        if modules is not None and name in modules:
            return modules[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getitem__(self, name: str) -> Module:
        try:
            return self._modules[name]
        except (KeyError, TypeError):
            raise KeyError(f"Graph has no node {name!r}; its nodes are {list(self._modules)}") from None

    def __len__(self) -> int:
        return len(self._modules)

    def __call__(self, *xs: FloatArray) -> Outputs:
        return self.forward(*xs)

    # -- gradient flags ---------------------------------------------------------------------
    def _plan_graph_grads(self) -> None:
        needed_here = self._input_grad_needed()
        key = (_grad_flags_version[0], needed_here)
        if key == self._grad_plan_key:
            return
        needs = {v: needed_here for v in self.inputs}
        for name, ins, outs in self._order:
            m = self._modules[name]
            upstream = any(needs[v] for v in ins)
            m._set_upstream_needs_grad(upstream)
            trainable = m.has_trainable_parameters()
            object.__setattr__(m, "_backward_active", m._input_grad_needed() or trainable)
            for v in outs:
                needs[v] = upstream or trainable
        object.__setattr__(self, "_value_needs", needs)
        object.__setattr__(self, "_grad_plan_key", key)

    # -- computation ------------------------------------------------------------------------
    # forward/backward take and return tuples for several inputs/outputs (unlike the
    # one-array signatures of Module.forward/backward)
    def forward(self, *xs: FloatArray) -> Outputs:
        """Run the nodes in topological order; one array for one output, else a tuple."""
        if len(xs) != len(self.inputs):
            raise TypeError(f"Graph.forward takes {len(self.inputs)} input(s) {list(self.inputs)}, got {len(xs)}")
        for v, x in zip(self.inputs, xs):
            if not isinstance(x, np.ndarray):
                raise TypeError(f"Graph input {v!r} must be a numpy.ndarray, got {type(x).__name__}")
        self._plan_graph_grads()
        values = dict(zip(self.inputs, xs))
        modules = self._modules
        tupled: Set[str] = set()
        with blas_single_thread():
            for name, ins, outs in self._order:
                module = modules[name]
                try:
                    if len(ins) == 1:
                        y = module.forward(values[ins[0]])
                    else:
                        y = module.forward(*[values[v] for v in ins])
                except (ValueError, TypeError) as e:
                    shapes = [tuple(values[v].shape) for v in ins]
                    raise _wrap_error(e, f"node {name!r} ({type(module).__name__}) on inputs of shapes "
                                         f"{shapes}") from e
                if len(outs) == 1:
                    if not isinstance(y, np.ndarray):
                        if isinstance(y, (tuple, list)) and len(y) == 1 and isinstance(y[0], np.ndarray):
                            y = y[0]  # one output in a tuple (Split into 1): a tuple in backward too
                            tupled.add(name)
                        else:
                            raise TypeError(f"node {name!r} ({type(module).__name__}): forward must return a "
                                            f"numpy.ndarray for its one output, got {type(y).__name__}")
                    values[outs[0]] = y
                else:
                    if not isinstance(y, (tuple, list)) or len(y) != len(outs):
                        got = f"{type(y).__name__} of length {len(y)}" if isinstance(y, (tuple, list)) else type(y).__name__
                        raise TypeError(f"node {name!r} ({type(module).__name__}): forward must return a "
                                        f"tuple of {len(outs)} arrays {list(outs)}, got {got}")
                    for v, a in zip(outs, y):
                        if not isinstance(a, np.ndarray):
                            raise TypeError(f"node {name!r} ({type(module).__name__}): output {v!r} must be a "
                                            f"numpy.ndarray, got {type(a).__name__}")
                        values[v] = a
        # shapes for backward; the arrays themselves are not kept (the layers reuse theirs)
        # (set past Module.__setattr__: plain attributes, on every step)
        if self.__dict__.get("_record_all"):  # value_shapes
            object.__setattr__(self, "_meta", {v: (a.shape, a.dtype) for v, a in values.items()})
        else:
            object.__setattr__(self, "_meta", {v: (values[v].shape, values[v].dtype) for v in self._io_values})
        object.__setattr__(self, "_tupled", tupled)
        result = tuple(values[v] for v in self.outputs)
        return result[0] if len(result) == 1 else result

    def _gather(self, contributions: Dict[str, List[Any]], v: str) -> Any:
        grads = contributions.pop(v, None)
        if not grads:
            return None
        return _sum_grads(grads, self._workspace, ("grad", v))

    def backward(self, grad_output: Gradients) -> Gradients:
        """Gradients of the graph inputs from those of the outputs (one array, or a tuple
        with one per output; None counts as zero). Returns one array for a one-input graph,
        else a tuple (None where a gradient is not needed)."""
        meta = self._meta
        needs = self._value_needs
        if meta is None or needs is None:
            raise RuntimeError("Graph.backward called before forward")
        k = len(self.outputs)
        if k == 1 and not isinstance(grad_output, (tuple, list)):
            grads = (grad_output,)
        elif isinstance(grad_output, (tuple, list)) and len(grad_output) == k:
            grads = tuple(grad_output)
        else:
            raise TypeError(f"grad_output must be {'an array' if k == 1 else f'a tuple of {k} arrays'} "
                            f"(None for zero), one per graph output {list(self.outputs)}, got "
                            f"{type(grad_output).__name__}")
        contributions: Dict[str, List[Any]] = {}
        for v, g in zip(self.outputs, grads):
            if g is None:
                continue
            if not isinstance(g, np.ndarray):
                raise TypeError(f"the gradient of graph output {v!r} must be a numpy.ndarray or None, got "
                                f"{type(g).__name__}")
            shape, dtype = meta[v]
            if g.shape != shape or g.dtype != dtype:
                raise ValueError(f"the gradient of graph output {v!r} must have shape {shape} and dtype "
                                 f"{dtype}, got {g.shape} {g.dtype}")
            contributions.setdefault(v, []).append(g)
        modules = self._modules
        declined: Set[str] = set()  # values a node that got a gradient returned none for
        tupled = self._tupled
        workspace = self._workspace
        with blas_single_thread():
            for name, ins, outs in reversed(self._order):
                if len(outs) == 1:
                    grads_in = contributions.pop(outs[0], None)
                    if grads_in is None:
                        continue  # nothing reached this node's output
                    g = grads_in[0] if len(grads_in) == 1 else _sum_grads(grads_in, workspace, ("grad", outs[0]))
                    arg = (g,) if name in tupled else g
                else:
                    if not any(v in contributions for v in outs):
                        continue
                    arg = tuple(self._gather(contributions, v) for v in outs)
                module = modules[name]
                if not module.__dict__.get("_backward_active", True):  # Container._backward_needed
                    declined.update(ins)
                    continue
                try:
                    r = module.backward(arg)
                except (ValueError, TypeError) as e:
                    raise _wrap_error(e, f"node {name!r} ({type(module).__name__}) backward") from e
                if r is None:
                    declined.update(ins)
                    continue
                if len(ins) == 1:
                    if needs[ins[0]]:
                        contributions.setdefault(ins[0], []).append(r)
                    continue
                if not isinstance(r, (tuple, list)) or len(r) != len(ins):
                    raise TypeError(f"node {name!r} ({type(module).__name__}): backward must return a tuple "
                                    f"of {len(ins)} gradients (one per input), got {type(r).__name__}")
                for v, g in zip(ins, r):
                    if g is None:
                        declined.add(v)
                    elif needs[v]:
                        contributions.setdefault(v, []).append(g)
            if not self._input_grad_needed():
                return None if len(self.inputs) == 1 else (None,) * len(self.inputs)
            result = []
            for v in self.inputs:
                g = self._gather(contributions, v)
                if g is None and v not in declined:  # no path reaches this input: zero
                    shape, dtype = meta[v]
                    g = np.zeros(shape, dtype)
                result.append(g)
        return result[0] if len(result) == 1 else tuple(result)

    # -- shapes -----------------------------------------------------------------------------
    def _check_input_shapes(self, input_shapes: Any) -> List[Tuple[int, ...]]:
        if (len(self.inputs) == 1 and isinstance(input_shapes, (tuple, list))
                and not any(isinstance(v, (tuple, list, np.ndarray)) for v in input_shapes)):
            input_shapes = [input_shapes]  # one shape for the one input
        if isinstance(input_shapes, (str, bytes)) or not isinstance(input_shapes, (tuple, list)):
            raise TypeError(f"input_shapes must be a list of shapes, one per graph input {list(self.inputs)}, "
                            f"got {type(input_shapes).__name__}")
        if len(input_shapes) != len(self.inputs):
            raise ValueError(f"input_shapes must hold {len(self.inputs)} shape(s), one per graph input "
                             f"{list(self.inputs)}, got {len(input_shapes)}")
        return [_shape(s, f"input_shapes[{i}]") for i, s in enumerate(input_shapes)]

    def value_shapes(self, input_shapes: Sequence[Any],
                     dtype: Optional[DTypeLike] = None) -> OrderedDict[str, Shape]:
        """The shape of every value for inputs of ``input_shapes``, from one forward pass on
        zeros in eval mode that leaves every module as it was (flags, saved state, buffers).

        Parameters
        ----------
        input_shapes : sequence of shapes
            One per graph input, batch included (a single shape for a one-input graph).
        dtype : float32 or float64, optional
            Of the zeros; default the dtype of the first parameter (float32 without any).

        Returns
        -------
        OrderedDict of str to tuple
            Graph inputs first, then every node's outputs in execution order.

        Raises
        ------
        ValueError
            Naming the first node that refuses its inputs' shapes, and those shapes.
        """
        shapes = self._check_input_shapes(input_shapes)
        if dtype is None:
            dtype = next((p.data.dtype for p in self.parameters()), np.dtype(np.float32))
        zeros_dtype = np.dtype(dtype)
        if zeros_dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {zeros_dtype}")
        for i, s in enumerate(shapes):
            check_allocation(s, zeros_dtype, f"input_shapes[{i}] zeros")
        try:
            with state_restored(self) as modules:
                for m in modules:
                    object.__setattr__(m, "training", False)
                object.__setattr__(self, "_record_all", True)
                self.forward(*[np.zeros(s, zeros_dtype) for s in shapes])
                meta = self._meta
        except (ValueError, TypeError) as e:
            raise ValueError(f"Graph refuses input_shapes {shapes}: {e}") from e
        assert meta is not None  # set by the forward pass
        return OrderedDict((v, tuple(shape)) for v, (shape, _) in meta.items())

    # -- printing ---------------------------------------------------------------------------
    def __repr__(self):
        lines = [f"inputs={list(self.inputs)}, outputs={list(self.outputs)}"]
        for name, ins, outs in self._order:
            child = repr(self._modules[name]).replace("\n", "\n  ")
            wiring = ", ".join(ins) + ("" if outs == (name,) else " -> " + ", ".join(outs))
            lines.append(f"({name}) <- {wiring}: {child}")
        return "Graph(\n  " + "\n  ".join(lines) + "\n)"
