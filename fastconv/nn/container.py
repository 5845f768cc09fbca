"""Containers: modules made of child modules, with explicit backward."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .._parallel import blas_single_thread
from .._typing import FloatArray
from .._validation import check_int
from .module import Module, _grad_flags_version


class Container(Module):
    """Base of modules built from children: routes the gradient flags to them.

    Before a forward pass a container tells each child whether its input gradient is
    needed, by the chains of children its data flows through (see :meth:`_plan_grads`):
    :meth:`_plan_children_grads` for one chain (:class:`Sequential`: a child's input
    gradient is needed when this container's is, or when a trainable parameter lies in an
    earlier child), :meth:`_plan_branches_grads` for parallel branches that all read this
    container's input (:class:`Residual`, :class:`Concat`: a branch's input gradient is
    needed exactly when this container's is). Recomputed only when some ``requires_grad``
    / ``needs_input_grad`` / structure changed (a version counter).
    """

    _grad_plan_key: Any

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "_grad_plan_key", None)

    def _plan_grads(self, chains):
        """Set the flags of the modules in ``chains``: sequences of children (each in input
        to output order) that all start from this container's input."""
        needed_here = self._input_grad_needed()
        key = (_grad_flags_version[0], needed_here)
        if key == self._grad_plan_key:
            return
        for chain in chains:
            needed = needed_here
            for child in chain:
                child._set_upstream_needs_grad(needed)
                trainable = child.has_trainable_parameters()
                # whether calling child.backward computes anything: an input gradient
                # someone needs, or a gradient of a trainable parameter
                object.__setattr__(child, "_backward_active", child._input_grad_needed() or trainable)
                needed = needed or trainable
        object.__setattr__(self, "_grad_plan_key", key)

    def _plan_children_grads(self, chain):
        """Set the flags of the modules in ``chain`` (input to output order)."""
        self._plan_grads((chain,))

    def _plan_branches_grads(self, branches):
        """Set the flags of parallel ``branches``, each applied to this container's input:
        a branch's upstream flag is this container's own :meth:`_input_grad_needed`."""
        self._plan_grads([(branch,) for branch in branches])

    def _set_upstream_needs_grad(self, flag):
        if flag != self._upstream_needs_grad:
            super()._set_upstream_needs_grad(flag)
            object.__setattr__(self, "_grad_plan_key", None)

    @staticmethod
    def _backward_needed(child):
        """Whether calling ``child.backward`` computes anything (set by the last plan)."""
        return child.__dict__.get("_backward_active", True)

    def __repr__(self):
        # as torch.nn.Module: extra_repr on its own line above the children
        extra = self.extra_repr()
        if not self._modules:
            return f"{type(self).__name__}({extra})"
        lines = [extra] if extra else []
        for name, m in self._modules.items():
            lines.append(f"({name}): " + repr(m).replace("\n", "\n  "))
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


class Sequential(Container):
    """Layers applied in order; ``backward`` runs them in reverse.

    Backward stops (and returns None) at the first layer, going backwards, below which no
    gradient is needed: a first layer that skips grad_input, or the top of a frozen
    prefix (transfer learning: only the layers after the last frozen one do any work).
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential layer {i} must be a Module, got {type(layer).__name__}")
            setattr(self, str(i), layer)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def forward(self, x: FloatArray) -> FloatArray:
        layers = self._modules.values()
        self._plan_children_grads(layers)
        # BLAS single-threaded across the whole pass: pinning once here makes the layers'
        # own pins (Linear, im2col) nearly free, and OpenBLAS's spinning pool would
        # otherwise fight the kernels' OpenMP threads (measured 4x slower LeNet-5 steps).
        with blas_single_thread():
            for layer in layers:
                x = layer(x)
        return x

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        with blas_single_thread():
            for layer in reversed(self._modules.values()):
                if not self._backward_needed(layer):
                    return None
                grad_output = layer.backward(grad_output)
                if grad_output is None:
                    return None
        return grad_output


def _check_output(y, who):
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{who} must return a numpy.ndarray, got {type(y).__name__}")
    return y


def _sum_grads(grads, workspace, key):
    """The sum of the non-None arrays in ``grads`` (None if there are none).

    One array is returned as it is; two or more are added into this container's own
    workspace array, never into a child's (which the child may still need)."""
    present = [g for g in grads if g is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    first = present[0]
    for g in present[1:]:
        if g.shape != first.shape:
            raise ValueError(f"input gradients of different shapes {first.shape} and {g.shape}")
    out = workspace.empty(key, first.shape, np.result_type(*present))
    np.add(present[0], present[1], out=out)
    for g in present[2:]:
        np.add(out, g, out=out)
    return out


class Residual(Container):
    """``body(x) + shortcut(x)``: a residual connection (He et al. 2015).

    Parameters
    ----------
    body : Module
        The residual branch (registered as child ``body``).
    shortcut : Module or None
        The projection branch (child ``shortcut``, e.g. a strided 1x1 convolution), or None
        for the identity ``x``. Both branches must give outputs of the same shape and dtype.

    ``backward`` sums both branches' input gradients; a branch that needs none (frozen,
    nothing trainable upstream) is not called. Returns None when this module's input
    gradient is not needed. State dict keys read ``body.1.weight``, ``shortcut.0.weight``
    (``0.body.1.weight`` inside a :class:`Sequential`), as in PyTorch.
    """

    def __init__(self, body: Module, shortcut: Module | None = None) -> None:
        super().__init__()
        if not isinstance(body, Module):
            raise TypeError(f"Residual body must be a Module, got {type(body).__name__}")
        if shortcut is not None and not isinstance(shortcut, Module):
            raise TypeError(f"Residual shortcut must be a Module or None, got {type(shortcut).__name__}")
        self.body = body
        if shortcut is not None:
            self.shortcut = shortcut
        else:
            object.__setattr__(self, "shortcut", None)
        self._out_shape: Any = None

    def _branches(self):
        shortcut = self.__dict__.get("shortcut")
        return (self.body,) if shortcut is None else (self.body, shortcut)

    def forward(self, x: FloatArray) -> FloatArray:
        self._plan_branches_grads(self._branches())
        shortcut = self.shortcut
        with blas_single_thread():
            a = _check_output(self.body(x), "Residual body")
            b = x if shortcut is None else _check_output(shortcut(x), "Residual shortcut")
        if not isinstance(b, np.ndarray):
            raise TypeError(f"Residual input must be a numpy.ndarray, got {type(b).__name__}")
        if a.shape != b.shape:
            other = "input (identity shortcut)" if shortcut is None else "shortcut output"
            raise ValueError(
                f"Residual body output shape {a.shape} does not match the {other} shape {b.shape}"
            )
        if a.dtype != b.dtype:
            raise TypeError(f"Residual body output has dtype {a.dtype} but the shortcut's is {b.dtype}")
        # into this module's own array: the body's output may be a child's saved state
        out = self._workspace.empty("out", a.shape, a.dtype)
        np.add(a, b, out=out)
        self._out_shape = out.shape
        return out

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        if self._out_shape is None:
            raise RuntimeError("Residual.backward called before forward")
        if not isinstance(grad_output, np.ndarray):
            raise TypeError(f"grad_output must be a numpy.ndarray, got {type(grad_output).__name__}")
        if grad_output.shape != self._out_shape:
            raise ValueError(f"grad_output must have shape {self._out_shape}, got {grad_output.shape}")
        shortcut = self.shortcut
        with blas_single_thread():
            gb = self.body.backward(grad_output) if self._backward_needed(self.body) else None
            if shortcut is None:
                gs = grad_output if self._input_grad_needed() else None
            else:
                gs = shortcut.backward(grad_output) if self._backward_needed(shortcut) else None
        if not self._input_grad_needed():
            return None
        return _sum_grads((gb, gs), self._workspace, "grad_input")


class Concat(Container):
    """Branches applied to the same input, their outputs concatenated along ``dim``
    (an Inception-style block; ``torch.cat([b(x) for b in branches], dim)``).

    Parameters
    ----------
    *branches : Module
        At least one; registered as children ``"0"``, ``"1"``, ...
    dim : int, default 1
        The axis to concatenate along (negative counts from the end); the branches'
        outputs must agree on every other axis.

    ``backward`` splits grad_output along ``dim`` and sums the branches' input gradients;
    a branch that needs no backward (frozen, nothing trainable upstream) is not called.
    """

    def __init__(self, *branches: Module, dim: int = 1) -> None:
        super().__init__()
        if not branches:
            raise ValueError("Concat needs at least one branch")
        for i, branch in enumerate(branches):
            if not isinstance(branch, Module):
                raise TypeError(f"Concat branch {i} must be a Module, got {type(branch).__name__}")
        self.dim = check_int(dim, "dim", minimum=-(2**31))
        for i, branch in enumerate(branches):
            setattr(self, str(i), branch)
        self._sizes: Any = None

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def forward(self, x: FloatArray) -> FloatArray:
        branches = tuple(self._modules.values())
        self._plan_branches_grads(branches)
        with blas_single_thread():
            outs = [_check_output(b(x), f"Concat branch {i}") for i, b in enumerate(branches)]
        first = outs[0]
        ndim = first.ndim
        if not -ndim <= self.dim < ndim:
            raise ValueError(f"Concat dim={self.dim} is out of range for outputs of {ndim} dims (shape {first.shape})")
        axis = self.dim % ndim
        for i, y in enumerate(outs[1:], start=1):
            if (y.ndim != ndim or y.shape[:axis] != first.shape[:axis]
                    or y.shape[axis + 1:] != first.shape[axis + 1:]):
                raise ValueError(
                    f"Concat branch outputs must match except along dim {self.dim}: branch 0 "
                    f"gave shape {first.shape}, branch {i} gave shape {y.shape}"
                )
            if y.dtype != first.dtype:
                raise TypeError(f"Concat branch 0 gave dtype {first.dtype}, branch {i} gave {y.dtype}")
        shape = list(first.shape)
        shape[axis] = sum(y.shape[axis] for y in outs)
        out = self._workspace.empty("out", tuple(shape), first.dtype)
        np.concatenate(outs, axis=axis, out=out)
        self._sizes = [y.shape[axis] for y in outs]
        self._axis = axis
        self._out_shape = out.shape
        return out

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        if self._sizes is None:
            raise RuntimeError("Concat.backward called before forward")
        if not isinstance(grad_output, np.ndarray):
            raise TypeError(f"grad_output must be a numpy.ndarray, got {type(grad_output).__name__}")
        if grad_output.shape != self._out_shape:
            raise ValueError(f"grad_output must have shape {self._out_shape}, got {grad_output.shape}")
        index = [slice(None)] * grad_output.ndim
        grads, start = [], 0
        with blas_single_thread():
            for branch, size in zip(self._modules.values(), self._sizes):
                index[self._axis] = slice(start, start + size)
                start += size
                if self._backward_needed(branch):
                    # a contiguous piece: layers may rely on (or would copy to) C order
                    grads.append(branch.backward(np.ascontiguousarray(grad_output[tuple(index)])))
        if not self._input_grad_needed():
            return None
        return _sum_grads(grads, self._workspace, "grad_input")

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
