"""Parameter and Module: explicit forward/backward in PyTorch's vocabulary."""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Mapping

from typing import TYPE_CHECKING, Any, Iterable, Iterator, TypeVar

import numpy as np

from .._workspace import Workspace

if TYPE_CHECKING:
    from .._summary import Summary
    from .._typing import ArrayLike, DTypeLike, FloatArray, NDArray, Shape

_M = TypeVar("_M", bound="Module")


# Bumped whenever something that decides which gradients a backward pass computes changes
# (a parameter's requires_grad, a module's needs_input_grad, a child added): containers
# re-plan their children's gradient flags only then, not on every step.
_grad_flags_version = [0]


def _grad_flags_changed():
    _grad_flags_version[0] += 1


class StateDictError(KeyError, ValueError):
    """A state dict that does not fit a module (:meth:`Module.load_state_dict`): every
    missing or unexpected key, shape and dtype mismatch in one message; ``problems`` lists
    them one by one. A ``KeyError`` and a ``ValueError``, so either ``except`` catches it."""

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@contextlib.contextmanager
def state_restored(model: Module) -> Iterator[list[Module]]:
    """Run probe passes (shape checks, summaries) inside this block without a trace.

    Yields the model's distinct modules; on leaving, every module's attributes (training
    flags, what forward saved for backward, cached plans), its reused workspace arrays and
    every writeable buffer are as they were, so a backward of an earlier forward still works.
    """
    modules = list({id(m): m for m in model.modules()}.values())
    saved = [(m, dict(m.__dict__), dict(m._workspace._arrays)) for m in modules]
    buffers = [(b, b.copy()) for b in {id(b): b for b in model.buffers()}.values()]
    try:
        yield modules
    finally:
        for m, attrs, arrays in saved:
            m.__dict__.clear()
            m.__dict__.update(attrs)
            m._workspace._arrays.clear()
            m._workspace._arrays.update(arrays)
        for b, values in buffers:
            if b.flags.writeable:
                b[...] = values


class Parameter:
    """A trainable array and its gradient (both NumPy arrays of the same shape and dtype).

    Parameters
    ----------
    data : ndarray
        Initial value (copied to a C-contiguous float array).
    requires_grad : bool, default True
        False freezes the parameter (transfer learning): layers compute no gradient for it
        and optimizers leave it unchanged. See :meth:`Module.requires_grad_`.
    """

    __slots__ = ("data", "grad", "_requires_grad")

    def __init__(self, data: ArrayLike, requires_grad: bool = True) -> None:
        data = np.array(data, copy=True, order="C")
        if data.dtype.kind != "f":
            raise TypeError(f"Parameter data must be a float array, got {data.dtype}")
        self.data = data
        self.grad = np.zeros_like(data)
        self._requires_grad = True
        self.requires_grad = requires_grad

    @property
    def requires_grad(self) -> bool:
        """Whether backward computes this parameter's gradient and optimizers update it."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"requires_grad must be a bool, got {type(flag).__name__} {flag!r}")
        if bool(flag) != self._requires_grad:
            self._requires_grad = bool(flag)
            _grad_flags_changed()

    @property
    def shape(self) -> Shape:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    def __repr__(self):
        frozen = "" if self._requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}{frozen})"


class Module:
    """Base class of layers: ``y = m(x)``, then ``grad_x = m.backward(grad_y)``.

    ``backward`` must follow the matching ``forward`` (layers cache what they need) and
    accumulates parameter gradients into ``.grad``; call :meth:`zero_grad` between steps.

    Which gradients a backward pass computes, as autograd would decide it:

    * a parameter with ``requires_grad=False`` gets none (a layer whose parameters are all
      frozen computes no weight gradient);
    * a module returns its input gradient only when someone needs it: its own
      ``needs_input_grad`` (default True; the models in :mod:`fastconv.models` set it False,
      since nothing needs the gradient of the images) and, inside a container, whether any
      trainable parameter lies between it and the container's input. Where none is needed,
      ``backward`` returns None and containers stop there.

    State: parameters (:class:`Parameter`) and buffers (:meth:`register_buffer`: arrays
    such as BatchNorm's running statistics, saved in :meth:`state_dict` but never seen by
    optimizers), with PyTorch's dotted names (``0.body.1.weight``).
    """

    # set in __init__ (through object.__setattr__, past the registering __setattr__)
    _parameters: OrderedDict[str, Parameter]
    _buffers: OrderedDict[str, NDArray[Any] | None]
    _modules: OrderedDict[str, Module]
    training: bool
    needs_input_grad: bool
    _upstream_needs_grad: bool
    _workspace: Workspace
    # the builder's name and arguments, on the models of fastconv.models (and those loaded
    # from model files); other modules have none (getattr(module, "config", None))
    config: dict[str, Any]

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "needs_input_grad", True)
        # Set by the enclosing container: whether a trainable parameter lies upstream.
        object.__setattr__(self, "_upstream_needs_grad", True)
        # Output and gradient arrays reused across steps when unshared (see _workspace).
        object.__setattr__(self, "_workspace", Workspace())

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if params is None:
            raise AttributeError("Module.__init__() must be called before assigning attributes")
        if isinstance(value, Parameter):
            params[name] = value
            self._modules.pop(name, None)
            _grad_flags_changed()
        elif isinstance(value, Module):
            self._modules[name] = value
            params.pop(name, None)
            _grad_flags_changed()
        elif name in params and value is None:
            del params[name]
            _grad_flags_changed()
        elif name in self._buffers:
            self._buffers[name] = value
        elif name == "needs_input_grad":
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"needs_input_grad must be a bool, got {type(value).__name__} {value!r}")
            value = bool(value)
            _grad_flags_changed()
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, array: NDArray[Any] | None) -> None:
        """Add a state array that is not a parameter (BatchNorm's running statistics).

        Buffers are saved and loaded by :meth:`state_dict` / :meth:`load_state_dict` and
        converted by :meth:`astype` (float ones), but optimizers never see them. Assigning
        ``self.name = new_array`` later replaces the buffer; ``None`` is allowed (an
        absent buffer, left out of the state dict).
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"buffer name must be an identifier string, got {name!r}")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"attribute {name!r} already exists as a parameter or module")
        if array is not None and not isinstance(array, np.ndarray):
            raise TypeError(f"buffer {name!r} must be a numpy.ndarray or None, got {type(array).__name__}")
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    # -- computation ------------------------------------------------------------------
    def forward(self, x: FloatArray) -> FloatArray:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def __call__(self, x: FloatArray) -> FloatArray:
        return self.forward(x)

    # -- parameters and state ---------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield ``(name, Parameter)`` pairs, this module's first, then its children's."""
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m.named_parameters(prefix + name + ".")

    def parameters(self) -> list[Parameter]:
        """Return the list of all parameters (for an optimizer)."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, NDArray[Any]]]:
        """Yield ``(name, array)`` for every buffer, this module's first, then its children's."""
        for name, b in self._buffers.items():
            if b is not None:
                yield prefix + name, b
        for name, m in self._modules.items():
            yield from m.named_buffers(prefix + name + ".")

    def buffers(self) -> list[NDArray[Any]]:
        """Return the list of all buffers."""
        return [b for _, b in self.named_buffers()]

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Yield ``(name, module)`` for the direct children."""
        yield from self._modules.items()

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Yield ``(dotted name, module)`` for this module ("") and all its descendants."""
        yield prefix.rstrip("."), self
        for name, m in self._modules.items():
            yield from m.named_modules(prefix + name + ".")

    def requires_grad_(self: _M, requires_grad: bool = True) -> _M:
        """Set ``requires_grad`` on every parameter (False freezes them); returns self."""
        if not isinstance(requires_grad, (bool, np.bool_)):
            raise TypeError(f"requires_grad must be a bool, got {type(requires_grad).__name__}")
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def has_trainable_parameters(self) -> bool:
        """Whether any parameter of this module or its descendants requires a gradient."""
        return any(p.requires_grad for _, p in self.named_parameters())

    def _input_grad_needed(self) -> bool:
        """Whether backward must return the input gradient (see the class docstring)."""
        return self.needs_input_grad and self._upstream_needs_grad

    def _set_upstream_needs_grad(self, flag):
        object.__setattr__(self, "_upstream_needs_grad", flag)

    def children(self) -> list[Module]:
        return list(self._modules.values())

    def modules(self) -> Iterator[Module]:
        """This module and all its descendants, depth first."""
        yield self
        for m in self._modules.values():
            yield from m.modules()

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero."""
        for p in self.parameters():
            p.grad[...] = 0

    def train(self: _M, mode: bool = True) -> _M:
        """Set training mode (dropout on) on this module and its children; returns self."""
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"mode must be a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self: _M) -> _M:
        """Set evaluation mode (dropout off); returns self."""
        return self.train(False)

    def _named_state(self, prefix=""):
        """(name, array) of parameters then buffers, module by module (PyTorch's order)."""
        for name, p in self._parameters.items():
            yield prefix + name, p.data
        for name, b in self._buffers.items():
            if b is not None:
                yield prefix + name, b
        for name, m in self._modules.items():
            yield from m._named_state(prefix + name + ".")

    def state_dict(self) -> OrderedDict[str, NDArray[Any]]:
        """Ordered ``{name: array copy}`` of all parameters and buffers, with PyTorch's keys
        and order (each module's parameters, then its buffers, then its children's)."""
        return OrderedDict((name, a.copy()) for name, a in self._named_state())

    def load_state_dict(self, state_dict: Mapping[str, ArrayLike], strict: bool = True) -> None:
        """Copy arrays from ``state_dict`` into the parameters and buffers.

        Parameters
        ----------
        state_dict : mapping of str to ndarray
            As :meth:`state_dict` returns (PyTorch's keys; a PyTorch ``state_dict()`` turned
            into NumPy arrays loads into the equivalent fastconv model).
        strict : bool
            If True, the keys must match :meth:`state_dict`'s exactly.

        Values are copied into the existing arrays with a cast, as PyTorch does: a float
        parameter or buffer takes a float32 or float64 array, an integer buffer (BatchNorm's
        ``num_batches_tracked``) an integer array.

        Raises
        ------
        StateDictError
            (a ``KeyError`` and a ``ValueError``) everything that does not fit, in one
            message: missing and unexpected keys (strict), shape mismatches and unsupported
            dtypes (float16, an integer array for a float parameter, ...). Nothing is copied
            then.
        TypeError
            ``state_dict`` is not a mapping.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of str to ndarray, got {type(state_dict).__name__}")
        own = OrderedDict(self._named_state())
        problems = []
        if strict:
            missing = [k for k in own if k not in state_dict]
            unexpected = [k for k in state_dict if k not in own]
            if missing:
                problems.append(f"missing keys {missing}")
            if unexpected:
                problems.append(f"unexpected keys {unexpected}")
        checked = []
        for name, target in own.items():
            if name not in state_dict:
                continue
            value = np.asarray(state_dict[name])
            wrong = []
            if target.dtype.kind == "f" and value.dtype not in (np.float32, np.float64):
                wrong.append(f"dtype {value.dtype} (expected float32 or float64)")
            elif target.dtype.kind in "iu" and value.dtype.kind not in "iu":
                wrong.append(f"dtype {value.dtype} (expected an integer dtype)")
            if value.shape != target.shape:
                wrong.append(f"shape {value.shape}, but the model's has shape {target.shape}")
            if wrong:
                problems.append(f"state_dict[{name!r}] has " + " and ".join(wrong))
            else:
                checked.append((target, value))
        if problems:
            raise StateDictError(f"state_dict does not match {type(self).__name__}: " + "; ".join(problems),
                                 problems)
        for target, value in checked:  # all checked first: a failed load changes nothing
            target[...] = value

    def astype(self: _M, dtype: DTypeLike) -> _M:
        """Convert all parameters (and their gradients) to ``dtype`` (float32 or float64); returns self."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = p.grad.astype(dtype)
        for m in self.modules():
            for name, b in list(m._buffers.items()):
                if b is not None and b.dtype.kind == "f":
                    setattr(m, name, b.astype(dtype))
        return self

    def double(self: _M) -> _M:
        return self.astype(np.float64)

    def float(self: _M) -> _M:
        return self.astype(np.float32)

    def summary(self, input_shape: Shape, **kwargs: Any) -> Summary:
        """Keras-style table of this model for inputs of ``input_shape``: see
        :func:`fastconv.summary`."""
        from .._summary import summary

        return summary(self, input_shape, **kwargs)

    # -- printing ---------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        if self._modules:
            for name, m in self._modules.items():
                child = repr(m).replace("\n", "\n  ")
                lines.append(f"  ({name}): {child}")
            return "\n".join(lines) + "\n)"
        return lines[0] + ")"
