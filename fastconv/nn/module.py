"""Parameter and Module: explicit forward/backward in PyTorch's vocabulary."""
from collections import OrderedDict

import numpy as np

from .._workspace import Workspace


class Parameter:
    """A trainable array and its gradient (both NumPy arrays of the same shape and dtype).

    Parameters
    ----------
    data : ndarray
        Initial value (copied to a C-contiguous float array).
    """

    __slots__ = ("data", "grad")

    def __init__(self, data):
        data = np.array(data, copy=True, order="C")
        if data.dtype.kind != "f":
            raise TypeError(f"Parameter data must be a float array, got {data.dtype}")
        self.data = data
        self.grad = np.zeros_like(data)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of layers: ``y = m(x)``, then ``grad_x = m.backward(grad_y)``.

    ``backward`` must follow the matching ``forward`` (layers cache what they need) and
    accumulates parameter gradients into ``.grad``; call :meth:`zero_grad` between steps.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        # Output and gradient arrays reused across steps when unshared (see _workspace).
        object.__setattr__(self, "_workspace", Workspace())

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if params is None:
            raise AttributeError("Module.__init__() must be called before assigning attributes")
        if isinstance(value, Parameter):
            params[name] = value
            self._modules.pop(name, None)
        elif isinstance(value, Module):
            self._modules[name] = value
            params.pop(name, None)
        elif name in params and value is None:
            del params[name]
        object.__setattr__(self, name, value)

    # -- computation ------------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad_output):
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def __call__(self, x):
        return self.forward(x)

    # -- parameters and state ---------------------------------------------------------
    def named_parameters(self, prefix=""):
        """Yield ``(name, Parameter)`` pairs, this module's first, then its children's."""
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m.named_parameters(prefix + name + ".")

    def parameters(self):
        """Return the list of all parameters (for an optimizer)."""
        return [p for _, p in self.named_parameters()]

    def children(self):
        return list(self._modules.values())

    def modules(self):
        """This module and all its descendants, depth first."""
        yield self
        for m in self._modules.values():
            yield from m.modules()

    def zero_grad(self):
        """Set every parameter's gradient to zero."""
        for p in self.parameters():
            p.grad[...] = 0

    def train(self, mode=True):
        """Set training mode (dropout on) on this module and its children; returns self."""
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"mode must be a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Set evaluation mode (dropout off); returns self."""
        return self.train(False)

    def state_dict(self):
        """Ordered ``{name: array copy}`` of all parameters."""
        return OrderedDict((name, p.data.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays from ``state_dict`` into the parameters.

        Parameters
        ----------
        state_dict : mapping of str to ndarray
        strict : bool
            If True, the keys must match :meth:`state_dict`'s exactly.

        Raises
        ------
        KeyError
            Missing or unexpected keys (strict), naming them.
        ValueError
            A shape mismatch, naming the parameter and both shapes.
        TypeError
            A non-numeric array.
        """
        own = OrderedDict(self.named_parameters())
        if strict:
            missing = [k for k in own if k not in state_dict]
            unexpected = [k for k in state_dict if k not in own]
            if missing or unexpected:
                raise KeyError(
                    f"state_dict does not match {type(self).__name__}: missing keys {missing}, "
                    f"unexpected keys {unexpected}"
                )
        for name, p in own.items():
            if name not in state_dict:
                continue
            value = np.asarray(state_dict[name])
            if value.dtype.kind not in "fiu":
                raise TypeError(f"state_dict[{name!r}] must be a numeric array, got {value.dtype}")
            if value.shape != p.data.shape:
                raise ValueError(
                    f"state_dict[{name!r}] has shape {value.shape}, but the parameter has shape {p.data.shape}"
                )
            p.data[...] = value

    def astype(self, dtype):
        """Convert all parameters (and their gradients) to ``dtype`` (float32 or float64); returns self."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = p.grad.astype(dtype)
        return self

    def double(self):
        return self.astype(np.float64)

    def float(self):
        return self.astype(np.float32)

    # -- printing ---------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        if self._modules:
            for name, m in self._modules.items():
                child = repr(m).replace("\n", "\n  ")
                lines.append(f"  ({name}): {child}")
            return "\n".join(lines) + "\n)"
        return lines[0] + ")"
